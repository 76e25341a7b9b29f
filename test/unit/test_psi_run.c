/* test_psi_run.c - both parties of an ECDH-PSI task in one process (two
 * threads), each the whole component (CSV in, link, protocol, CSV and
 * report out) configured through the container environment, talking
 * through the in-process transport.  Every output is compared with the
 * plain set intersection computed here.
 *
 * Sets: 100,000 x 80,000 IDs with 30,000 shared (25 and 20 batches each
 * way, well past the ACK window of 10); an empty side; duplicates,
 * non-ASCII and multi-column IDs; result_to_rank 0 and 1; spilling to
 * disk; both SM2 suites; mismatched suites; a peer that dies and a peer
 * that goes quiet mid-run (the other fails within a bounded time). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "psi_component.h"
#include "psi_config.h"
#include "psi_run.h"
#include "psi_transport.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/psi-run.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- a growable text -------------------------------------------------------------- */

struct text {
    char *s;
    size_t n, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->n : NULL, t->s ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (t->s && (size_t)n < t->cap - t->n) {
            t->n += (size_t)n;
            return;
        }
        t->cap = (t->cap + (size_t)n + 1) * 2;
        t->s = realloc(t->s, t->cap);
        assert_non_null(t->s);
        if (t->n == 0)
            t->s[0] = '\0';
    }
}

static void write_text(const char *path, const struct text *t)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(t->s, 1, t->n, f), t->n);
    assert_int_equal(fclose(f), 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* ---- one party ---------------------------------------------------------------------- */

struct party {
    const char *role;   /* "guest.0" or "host.0" */
    char ns[64];        /* input and output namespaces under tmpdir */
    const char *params[12];
    struct psi_transport *t;
    struct psi_config cfg;
    struct psi_component_out out;
    int rc;
    char err[1024];
    double secs;
};

static char storage_kv[300];

static void party_config(struct party *p, const char *tag)
{
    snprintf(p->ns, sizeof(p->ns), "%s-%s", tag, p->role);
    snprintf(storage_kv, sizeof(storage_kv), "system.storage=file://%s", tmpdir);
    char in[200], out[200];
    snprintf(in, sizeof(in), "runtime.component.input.train_data={\"name\": \"ids\", \"namespace\": \"%s\"}",
             p->ns);
    snprintf(out, sizeof(out),
             "runtime.component.output.train_data={\"name\": \"task-out\", \"namespace\": \"%s-out\"}",
             p->ns);
    char role[64];
    snprintf(role, sizeof(role), "config.self_role=%s", p->role);
    const char *env[40] = {storage_kv,
                           role,
                           in,
                           out,
                           "config.task_id=task_t",
                           "config.node_id.guest.0=NODE_A",
                           "config.inst_id.guest.0=NODE_A",
                           "config.node_id.host.0=NODE_A", /* both parties on one node */
                           "config.inst_id.host.0=NODE_A",
                           "config.session_id=session_job_t",
                           "config.token=t",
                           "system.transport=127.0.0.1:1",
                           "runtime.component.parameter.threads=2"};
    int n = 13;
    for (int i = 0; p->params[i]; i++)
        env[n++] = p->params[i];
    env[n] = NULL;
    char err[512];
    if (psi_config_load((char *const *)(uintptr_t)env, &p->cfg, err, sizeof(err)) != 0)
        fail_msg("config of %s: %s", p->role, err);
}

static void *party_main(void *arg)
{
    struct party *p = arg;
    double t0 = now_s();
    p->rc = psi_component_run(&p->cfg, p->t, &p->out, p->err, sizeof(p->err));
    p->secs = now_s() - t0;
    return NULL;
}

/* Run guest.0 and host.0 at once; the hub is freed afterwards. */
static void run_pair(struct party *g, struct party *h, void (*faults)(struct party *, struct party *))
{
    struct psi_mem_hub *hub = psi_mem_hub_new();
    g->t = psi_transport_mem_new(hub);
    h->t = psi_transport_mem_new(hub);
    if (faults)
        faults(g, h);
    pthread_t tg, th;
    assert_int_equal(pthread_create(&tg, NULL, party_main, g), 0);
    assert_int_equal(pthread_create(&th, NULL, party_main, h), 0);
    pthread_join(tg, NULL);
    pthread_join(th, NULL);
    psi_transport_free(g->t);
    psi_transport_free(h->t);
    psi_mem_hub_free(hub);
}

static void input_path(const struct party *p, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s/ids/data", tmpdir, p->ns);
}

static void output_path(const struct party *p, char *out, size_t cap, const char *file)
{
    snprintf(out, cap, "%s/%s-out/task-out/%s", tmpdir, p->ns, file);
}

/* ---- expected results ------------------------------------------------------------------ */

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The item of a line: column col, stripped of ASCII whitespace (malloc'd). */
static char *item_of(const char *line, int col)
{
    const char *p = line;
    for (int i = 0; i < col && p; i++) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    if (!p)
        return strdup("\x01missing");
    const char *e = strchr(p, ',');
    if (!e)
        e = p + strlen(p);
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    return strndup(p, (size_t)(e - p));
}

/* Items of a CSV text (header skipped). */
static char **items_of(const char *csv, int col, size_t *n)
{
    char *copy = strdup(csv);
    size_t cap = 1024, k = 0;
    char **v = malloc(cap * sizeof(char *));
    char *save = NULL;
    char *line = strtok_r(copy, "\n", &save); /* header */
    while (line && (line = strtok_r(NULL, "\n", &save))) {
        if (k == cap) {
            char **nv = realloc(v, (cap *= 2) * sizeof(char *));
            assert_non_null(nv);
            v = nv;
        }
        v[k++] = item_of(line, col);
    }
    free(copy);
    *n = k;
    return v;
}

static void free_items(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The header and the rows of mine whose item is among theirs, in order:
 * the plain set intersection, computed without any cryptography. */
static char *expected_output(const char *mine, int mcol, const char *theirs, int tcol)
{
    size_t nt;
    char **t = items_of(theirs, tcol, &nt);
    qsort(t, nt, sizeof(char *), cmp_str);
    struct text out = {0};
    char *copy = strdup(mine);
    char *save = NULL;
    char *line = strtok_r(copy, "\n", &save);
    put(&out, "%s\n", line);
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *key = item_of(line, mcol);
        if (bsearch(&key, t, nt, sizeof(char *), cmp_str))
            put(&out, "%s\n", line);
        free(key);
    }
    free(copy);
    free_items(t, nt);
    return out.s;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void check_output(const struct party *p, const char *mine, int mcol, const char *theirs,
                         int tcol)
{
    char path[512];
    output_path(p, path, sizeof(path), "data");
    char *got = slurp(path);
    char *want = expected_output(mine, mcol, theirs, tcol);
    if (!got)
        fail_msg("%s: no output at %s", p->role, path);
    if (strcmp(got, want) != 0)
        fail_msg("%s: output differs from the plain intersection (%zu vs %zu lines)", p->role,
                 count_lines(got), count_lines(want));
    assert_int_equal(p->out.intersection_count, (int64_t)count_lines(want) - 1);
    output_path(p, path, sizeof(path), "report.json");
    char *rep = slurp(path);
    assert_non_null(rep);
    char wrep[128];
    snprintf(wrep, sizeof(wrep), "{\"original_count\":%llu,\"intersection_count\":%lld}\n",
             (unsigned long long)p->out.original_count, (long long)p->out.intersection_count);
    assert_string_equal(rep, wrep);
    free(rep);
    free(got);
    free(want);
}

static void no_output(const struct party *p)
{
    char path[512];
    output_path(p, path, sizeof(path), "data");
    assert_int_equal(access(path, F_OK), -1);
}

static void expect_ok(const struct party *p)
{
    if (p->rc != 0)
        fail_msg("%s failed (%d): %s", p->role, p->rc, p->err);
}

/* deterministic pseudo-random */
static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_100k_x_80k(void **state)
{
    (void)state;
    struct party g = {.role = "guest.0"}, h = {.role = "host.0"};
    party_config(&g, "big");
    party_config(&h, "big");
    /* 30,000 shared ids; the rest distinct; shuffled positions; extra columns */
    struct text tg = {0}, th = {0};
    put(&tg, "id,amount\n");
    put(&th, "age,id\n");
    int gi = 0, hi = 0, shared = 0;
    while (gi < 100000 || hi < 80000) {
        uint64_t r = rnd();
        if (shared < 30000 && r % 10 < 3 && gi < 100000 && hi < 80000) {
            put(&tg, "s%llx,%d\n", (unsigned long long)(r >> 8), gi);
            put(&th, "%d, s%llx\n", hi % 90, (unsigned long long)(r >> 8));
            gi++, hi++, shared++;
        } else if (gi < 100000 && (r & 1 || hi >= 80000)) {
            put(&tg, "g%d,%d\n", gi, gi);
            gi++;
        } else if (hi < 80000) {
            put(&th, "%d,h%d\n", hi % 90, hi);
            hi++;
        }
    }
    assert_int_equal(shared, 30000);
    char path[512];
    input_path(&g, path, sizeof(path));
    write_text(path, &tg);
    input_path(&h, path, sizeof(path));
    write_text(path, &th);
    /* host's ids are in column 1: field_names "id" (the default) finds it */
    run_pair(&g, &h, NULL);
    expect_ok(&g);
    expect_ok(&h);
    assert_int_equal(g.out.original_count, 100000);
    assert_int_equal(h.out.original_count, 80000);
    assert_int_equal(g.out.peer_count, 80000);
    assert_int_equal(g.out.intersection_count, 30000);
    assert_int_equal(h.out.intersection_count, 30000);
    /* 25 + 1 enc and 20 + 1 dual.enc batches from guest, more than the window */
    assert_int_equal(g.out.link.sent, 26 + 21);
    assert_int_equal(h.out.link.sent, 21 + 26);
    assert_int_equal(g.out.link.acks_received, g.out.link.sent);
    assert_int_equal(g.out.finish, PSI_LINK_DONE);
    assert_int_equal(h.out.finish, PSI_LINK_DONE);
    assert_int_equal(g.out.spilled_bytes, 0);
    check_output(&g, tg.s, 0, th.s, 1);
    check_output(&h, th.s, 1, tg.s, 0);
    free(tg.s);
    free(th.s);
}

/* Write both inputs, run, return nothing: the caller checks. */
static void run_texts(struct party *g, struct party *h, const char *tag, const char *gcsv,
                      const char *hcsv, void (*faults)(struct party *, struct party *))
{
    party_config(g, tag);
    party_config(h, tag);
    char path[512];
    struct text t = {0};
    put(&t, "%s", gcsv);
    input_path(g, path, sizeof(path));
    write_text(path, &t);
    t.n = 0;
    put(&t, "%s", hcsv);
    input_path(h, path, sizeof(path));
    write_text(path, &t);
    free(t.s);
    run_pair(g, h, faults);
}

static void test_empty_side(void **state)
{
    (void)state;
    const char *gcsv = "id\na\nb\nc\n";
    const char *hcsv = "id\n";
    struct party g = {.role = "guest.0"}, h = {.role = "host.0"};
    run_texts(&g, &h, "empty", gcsv, hcsv, NULL);
    expect_ok(&g);
    expect_ok(&h);
    assert_int_equal(h.out.original_count, 0);
    assert_int_equal(g.out.peer_count, 0);
    check_output(&g, gcsv, 0, hcsv, 0);
    check_output(&h, hcsv, 0, gcsv, 0);
    assert_int_equal(g.out.intersection_count, 0);
    /* the empty side sent only its terminating batches */
    assert_int_equal(h.out.link.sent, 1 + 2);
    /* both empty */
    struct party g2 = {.role = "guest.0"}, h2 = {.role = "host.0"};
    run_texts(&g2, &h2, "empty2", hcsv, hcsv, NULL);
    expect_ok(&g2);
    expect_ok(&h2);
    check_output(&g2, hcsv, 0, hcsv, 0);
}

/* Duplicates, non-ASCII, whitespace, several ID columns in field_names order. */
static void test_duplicates_nonascii_columns(void **state)
{
    (void)state;
    const char *gcsv = "name,id,x\n"
                       " 张三 ,1,a\n"
                       "Zoë,2,b\n"
                       "张三,1,dup-of-first\n"
                       "bob,3,c\n"
                       "\n"
                       "BOB,3,case differs\n"
                       "émile,4,d\r\n"
                       "noone,9,e\n";
    const char *hcsv = "id,name\n"
                       "1,张三\n"
                       "1, 张三\n"
                       "2,Zoe\n"
                       "3,bob\n"
                       "4,émile\n"
                       "5,x\n";
    struct party g = {.role = "guest.0", .params = {"runtime.component.parameter.field_names=id, name",
                                                    NULL}},
                 h = {.role = "host.0", .params = {"runtime.component.parameter.field_names=id,name",
                                                   NULL}};
    run_texts(&g, &h, "dups", gcsv, hcsv, NULL);
    expect_ok(&g);
    expect_ok(&h);
    char path[512];
    output_path(&g, path, sizeof(path), "data");
    char *got = slurp(path);
    /* guest: both 张三 rows, bob, émile (CRLF kept); not Zoë (ë != e), not BOB */
    assert_string_equal(got, "name,id,x\n 张三 ,1,a\n张三,1,dup-of-first\nbob,3,c\némile,4,d\r\n");
    free(got);
    assert_int_equal(g.out.original_count, 7); /* the blank line is no item */
    assert_int_equal(g.out.intersection_count, 4);
    output_path(&h, path, sizeof(path), "data");
    got = slurp(path);
    assert_string_equal(got, "id,name\n1,张三\n1, 张三\n3,bob\n4,émile\n");
    free(got);
    assert_int_equal(h.out.intersection_count, 4);
}

static void test_result_to_rank(void **state)
{
    (void)state;
    const char *gcsv = "id\na\nb\nc\nd\n";
    const char *hcsv = "id\nc\nd\ne\n";
    for (int rank = 0; rank <= 1; rank++) {
        char kv[64];
        snprintf(kv, sizeof(kv), "runtime.component.parameter.result_to_rank=%d", rank);
        struct party g = {.role = "guest.0", .params = {kv, NULL}},
                     h = {.role = "host.0", .params = {kv, NULL}};
        char tag[16];
        snprintf(tag, sizeof(tag), "rank%d", rank);
        run_texts(&g, &h, tag, gcsv, hcsv, NULL);
        expect_ok(&g);
        expect_ok(&h);
        /* guest.0 is rank 0 */
        struct party *gets = rank == 0 ? &g : &h, *not = rank == 0 ? &h : &g;
        check_output(gets, rank == 0 ? gcsv : hcsv, 0, rank == 0 ? hcsv : gcsv, 0);
        assert_int_equal(gets->out.intersection_count, 2);
        assert_int_equal(not->out.intersection_count, -1);
        no_output(not);
        /* the one without the result still answered every batch, and only
         * the receiver got dual values */
        assert_int_equal(not->out.link.sent, 2 + 2);
        assert_int_equal(gets->out.link.sent, 2);
        /* its report says -1 */
        char path[512];
        output_path(not, path, sizeof(path), "report.json");
        char *rep = slurp(path);
        assert_non_null(rep);
        assert_non_null(strstr(rep, "\"intersection_count\":-1"));
        free(rep);
    }
}

/* Everything spilled to disk: the same answer. */
static void test_spill(void **state)
{
    (void)state;
    struct text tg = {0}, th = {0};
    put(&tg, "id\n");
    put(&th, "id\n");
    for (int i = 0; i < 20000; i++) {
        put(&tg, "%d\n", i * 3);
        put(&th, "%d\n", i * 5);
    }
    const char *p0 = "runtime.component.parameter.spill_threshold_mb=0";
    struct party g = {.role = "guest.0", .params = {p0, NULL}},
                 h = {.role = "host.0", .params = {p0, NULL}};
    run_texts(&g, &h, "spill", tg.s, th.s, NULL);
    expect_ok(&g);
    expect_ok(&h);
    assert_true(g.out.spilled_bytes >= 20000 * 28);
    assert_true(h.out.spilled_bytes >= 20000 * 28);
    check_output(&g, tg.s, 0, th.s, 0);
    check_output(&h, th.s, 0, tg.s, 0);
    assert_int_equal(g.out.intersection_count, 4000); /* multiples of 15 below 60000 */
    free(tg.s);
    free(th.s);
}

static void test_sm2_suites(void **state)
{
    (void)state;
    struct text tg = {0}, th = {0};
    put(&tg, "id\n");
    put(&th, "id\n");
    for (int i = 0; i < 300; i++)
        put(&tg, "u%d\n", i);
    for (int i = 200; i < 400; i++)
        put(&th, "u%d\n", i);
    const char *suites[2][3] = {{"runtime.component.parameter.curve_type=sm2", NULL, NULL},
                                {"runtime.component.parameter.curve_type=sm2",
                                 "runtime.component.parameter.hash_type=sm3",
                                 "runtime.component.parameter.hash2curve_strategy=try_and_increment"}};
    for (int s = 0; s < 2; s++) {
        struct party g = {.role = "guest.0", .params = {suites[s][0], suites[s][1], suites[s][2], NULL}},
                     h = {.role = "host.0", .params = {suites[s][0], suites[s][1], suites[s][2], NULL}};
        run_texts(&g, &h, s ? "sm3" : "sm2", tg.s, th.s, NULL);
        expect_ok(&g);
        expect_ok(&h);
        assert_int_equal(g.out.intersection_count, 100);
        check_output(&g, tg.s, 0, th.s, 0);
        check_output(&h, th.s, 0, tg.s, 0);
    }
    free(tg.s);
    free(th.s);
}

/* Parties configured with different suites: both fail, naming the batch. */
static void test_mismatched_suites(void **state)
{
    (void)state;
    struct party g = {.role = "guest.0", .params = {"runtime.component.parameter.curve_type=sm2", NULL}},
                 h = {.role = "host.0", .params = {"runtime.component.parameter.recv_timeout_s=3", NULL}};
    run_texts(&g, &h, "mismatch", "id\na\nb\n", "id\na\n", NULL);
    assert_int_equal(g.rc, PSI_FAIL_PEER);
    assert_int_equal(h.rc, PSI_FAIL_PEER);
    assert_true(strstr(g.err, "holds") || strstr(h.err, "holds"));
    no_output(&g);
    no_output(&h);
}

/* host.0 dies after a few messages: it fails at once, guest.0 within its
 * receive timeout (4 s), and nobody leaves an output. */
static void kill_host(struct party *g, struct party *h)
{
    (void)g;
    psi_transport_mem_fail_after(h->t, 3); /* connect, a batch, an ACK */
}

/* host.0's messages stop arriving but it believes it sends (a partition):
 * both fail by timeout. */
static void mute_host(struct party *g, struct party *h)
{
    (void)g;
    psi_transport_mem_drop_after(h->t, 3);
}

static void test_peer_stops(void **state)
{
    (void)state;
    struct text tg = {0}, th = {0};
    put(&tg, "id\n");
    put(&th, "id\n");
    for (int i = 0; i < 60000; i++) {
        put(&tg, "x%d\n", i);
        put(&th, "x%d\n", i + 1000);
    }
    const char *t2 = "runtime.component.parameter.recv_timeout_s=4";
    void (*faults[2])(struct party *, struct party *) = {kill_host, mute_host};
    for (int f = 0; f < 2; f++) {
        struct party g = {.role = "guest.0", .params = {t2, NULL}},
                     h = {.role = "host.0", .params = {t2, NULL}};
        double t0 = now_s();
        run_texts(&g, &h, f ? "mute" : "dies", tg.s, th.s, faults[f]);
        double dt = now_s() - t0;
        assert_int_equal(g.rc, PSI_FAIL_PEER);
        assert_int_equal(h.rc, PSI_FAIL_PEER);
        if (f == 0 && !strstr(h.err, "fault injection"))
            fail_msg("host: %s", h.err);
        if (!strstr(g.err, "timed out") && !strstr(g.err, "acknowledgement"))
            fail_msg("guest: %s", g.err);
        /* bounded: about the receive timeout (4 s), far below a hang */
        if (dt > 20.0)
            fail_msg("took %.1f s", dt);
        no_output(&g);
        no_output(&h);
    }
    free(tg.s);
    free(th.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_100k_x_80k),
        cmocka_unit_test(test_empty_side),
        cmocka_unit_test(test_duplicates_nonascii_columns),
        cmocka_unit_test(test_result_to_rank),
        cmocka_unit_test(test_spill),
        cmocka_unit_test(test_sm2_suites),
        cmocka_unit_test(test_mismatched_suites),
        cmocka_unit_test(test_peer_stops),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
