/* test_psi_data.c - the component's data and configuration: ID
 * preprocessing (spec bfia-ecdh-psi.md §4), the CSV reader and the output
 * writer (§7), the environment contract and its refusals (§8, §9), the
 * address JSON, the second-stage store with and without spilling, and the
 * worker pool. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "psi_config.h"
#include "psi_data.h"
#include "psi_pool.h"
#include "psi_store.h"
#include "psi_suite.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/psi-data.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(content, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_item_rules(void **state)
{
    (void)state;
    char out[64];
    size_t n;
    int c01[2] = {0, 1}, c10[2] = {1, 0}, c2[1] = {2};
    /* §10 (5): " a , b " -> "a,b" */
    assert_int_equal(psi_data_item(" a , b ", 7, c01, 2, out, sizeof(out), &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "a,b", 3);
    /* field_names order, not column order */
    assert_int_equal(psi_data_item("x,y,z", 5, c10, 2, out, sizeof(out), &n), 0);
    assert_memory_equal(out, "y,x", 3);
    /* tabs and a CR before the line end are whitespace; inner spaces stay */
    assert_int_equal(psi_data_item("1,2,\tJohn  Smith \r", 18, c2, 1, out, sizeof(out), &n), 0);
    assert_int_equal(n, 11);
    assert_memory_equal(out, "John  Smith", 11);
    /* no case folding, UTF-8 as it is */
    assert_int_equal(psi_data_item("Äb,张三", strlen("Äb,张三"), c10, 2, out, sizeof(out), &n), 0);
    assert_int_equal(n, 10);
    assert_memory_equal(out, "张三,Äb", 10);
    /* an empty field is an empty item part */
    assert_int_equal(psi_data_item(",b", 2, c01, 2, out, sizeof(out), &n), 0);
    assert_memory_equal(out, ",b", 2);
    /* too few fields, too long */
    assert_int_equal(psi_data_item("a,b", 3, c2, 1, out, sizeof(out), &n), -1);
    assert_int_equal(psi_data_item("abcdef", 6, c01, 1, out, 3, &n), -1);
    assert_true(psi_data_blank(" \t\r", 3));
    assert_true(psi_data_blank("", 0));
    assert_false(psi_data_blank(" ,", 2));
}

static void test_columns(void **state)
{
    (void)state;
    int cols[PSI_DATA_MAX_FIELDS];
    char err[512];
    const char *h = "id , name,age\r";
    assert_int_equal(psi_data_columns(h, strlen(h), "id", cols, err, sizeof(err)), 1);
    assert_int_equal(cols[0], 0);
    assert_int_equal(psi_data_columns(h, strlen(h), " age , id ", cols, err, sizeof(err)), 2);
    assert_int_equal(cols[0], 2);
    assert_int_equal(cols[1], 0);
    assert_int_equal(psi_data_columns(h, strlen(h), "ID", cols, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "field_names: column 'ID' is not in the input header"));
    assert_int_equal(psi_data_columns(h, strlen(h), "id,,age", cols, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "empty column name"));
    assert_int_equal(psi_data_columns(h, strlen(h), "", cols, err, sizeof(err)), -1);
    assert_int_equal(psi_data_columns(h, strlen(h), NULL, cols, err, sizeof(err)), -1);
    char many[200] = "id";
    for (int i = 0; i < PSI_DATA_MAX_FIELDS; i++)
        strcat(many, ",id");
    assert_int_equal(psi_data_columns(h, strlen(h), many, cols, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than"));
}

static void test_reader_and_output(void **state)
{
    (void)state;
    char in[300], out[300], err[512];
    snprintf(in, sizeof(in), "%s/in.csv", tmpdir);
    snprintf(out, sizeof(out), "%s/ns/name/data", tmpdir);
    /* a BOM, CRLF lines, a blank line, duplicates, a last line without \n */
    write_file(in, "\xef\xbb\xbfid,v\r\n a ,1\r\nb,2\r\n\r\n  \na,3\r\nc,4");
    struct psi_reader *r = psi_reader_open(in, "id", err, sizeof(err));
    assert_non_null(r);
    struct psi_items it;
    assert_int_equal(psi_items_init(&it, 2), 0);
    assert_int_equal(psi_reader_next(r, &it, err, sizeof(err)), 2);
    assert_memory_equal(it.buf + it.off[0], "a", it.len[0]);
    assert_memory_equal(it.buf + it.off[1], "b", it.len[1]);
    assert_int_equal(psi_reader_next(r, &it, err, sizeof(err)), 2);
    assert_memory_equal(it.buf + it.off[0], "a", it.len[0]);
    assert_memory_equal(it.buf + it.off[1], "c", it.len[1]);
    assert_int_equal(psi_reader_next(r, &it, err, sizeof(err)), 0);
    assert_int_equal(psi_reader_count(r), 4);
    psi_reader_close(r);
    /* rows 0 and 2 (both "a") and 3 match: verbatim, header first, file order */
    unsigned char bm[1] = {0x0d};
    uint64_t w;
    assert_int_equal(psi_data_write_output(in, out, bm, 4, &w, err, sizeof(err)), 0);
    assert_int_equal(w, 3);
    assert_string_equal(read_file(out), "\xef\xbb\xbfid,v\r\n a ,1\r\na,3\r\nc,4\n");
    /* none */
    bm[0] = 0;
    assert_int_equal(psi_data_write_output(in, out, bm, 4, &w, err, sizeof(err)), 0);
    assert_int_equal(w, 0);
    assert_string_equal(read_file(out), "\xef\xbb\xbfid,v\r\n");
    /* the input changed under us */
    assert_int_equal(psi_data_write_output(in, out, bm, 3, &w, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "changed"));
    assert_int_equal(psi_data_write_output(in, out, bm, 9, &w, err, sizeof(err)), -1);
    /* no temporary file left behind */
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/ns/name", tmpdir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *e; (e = readdir(d));)
        files += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 1);

    /* bad inputs: missing, empty, no such column, a short row */
    snprintf(out, sizeof(out), "%s/missing.csv", tmpdir);
    assert_null(psi_reader_open(out, "id", err, sizeof(err)));
    assert_non_null(strstr(err, "missing.csv"));
    write_file(in, "");
    assert_null(psi_reader_open(in, "id", err, sizeof(err)));
    assert_non_null(strstr(err, "header"));
    write_file(in, "x,y\n1,2\n");
    assert_null(psi_reader_open(in, "id", err, sizeof(err)));
    assert_non_null(strstr(err, "field_names"));
    write_file(in, "id,k\n1,2\n3\n");
    r = psi_reader_open(in, "k", err, sizeof(err));
    assert_non_null(r);
    assert_int_equal(psi_reader_next(r, &it, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "input line 3"));
    psi_reader_close(r);
    /* a header only: zero items */
    write_file(in, "id\n");
    r = psi_reader_open(in, "id", err, sizeof(err));
    assert_int_equal(psi_reader_next(r, &it, err, sizeof(err)), 0);
    psi_reader_close(r);
    psi_items_cleanup(&it);
}

static void test_json_address(void **state)
{
    (void)state;
    char v[64];
    assert_int_equal(psi_config_json_str("{\"name\": \"a\", \"namespace\": \"b\"}", "namespace", v,
                                         sizeof(v)),
                     0);
    assert_string_equal(v, "b");
    assert_int_equal(psi_config_json_str("{\"namespace\":\"x\\\"y\",\"name\":\"\\u5f20\\n\"}", "name",
                                         v, sizeof(v)),
                     0);
    assert_string_equal(v, "张\n");
    assert_int_equal(psi_config_json_str(" {\"n\":1,\"name\":\"z\"} ", "name", v, sizeof(v)), 0);
    assert_string_equal(v, "z");
    const char *bad[] = {"", "[]", "{}", "{\"name\":1}", "{\"name\":\"a\"", "{\"name\":\"a\",}",
                         "{\"name\":\"a\"} x", "{name:\"a\"}", "{\"name\":\"\\ud800\"}",
                         "{\"name\":{\"a\":1}}", "{\"name\":\"a\\q\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(psi_config_json_str(bad[i], "name", v, sizeof(v)), -1);
    assert_int_equal(psi_config_json_str("{\"name\":\"0123456789\"}", "name", v, 5), -1);
    assert_int_equal(psi_config_json_str(NULL, "name", v, sizeof(v)), -1);

    char out[4096], err[512], root[300];
    snprintf(root, sizeof(root), "file://%s/", tmpdir);
    assert_int_equal(psi_config_resolve(root, "in", "{\"namespace\":\"ns\",\"name\":\"n\"}", false,
                                        out, sizeof(out), err, sizeof(err)),
                     0);
    char want[400];
    snprintf(want, sizeof(want), "%s/ns/n/data", tmpdir);
    assert_string_equal(out, want);
    /* the reference's layout: <root>/<ns>/<name> as a file */
    snprintf(want, sizeof(want), "%s/ref", tmpdir);
    mkdir(want, 0777);
    snprintf(want, sizeof(want), "%s/ref/psi_1.csv", tmpdir);
    write_file(want, "id\n");
    assert_int_equal(psi_config_resolve(root, "in", "{\"namespace\":\"ref\",\"name\":\"psi_1.csv\"}",
                                        true, out, sizeof(out), err, sizeof(err)),
                     0);
    assert_string_equal(out, want);
    /* hostile names, other storage */
    const char *hostile[] = {"{\"namespace\":\"..\",\"name\":\"x\"}",
                             "{\"namespace\":\"a/b\",\"name\":\"x\"}",
                             "{\"namespace\":\"a\",\"name\":\"../../etc\"}",
                             "{\"namespace\":\"a\",\"name\":\".hidden\"}",
                             "{\"namespace\":\"a\",\"name\":\"\"}"};
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        assert_int_equal(psi_config_resolve(root, "runtime.component.input.train_data", hostile[i],
                                            true, out, sizeof(out), err, sizeof(err)),
                         -1);
        assert_non_null(strstr(err, "runtime.component.input.train_data"));
    }
    assert_int_equal(psi_config_resolve("s3://1.2.3.4:9000?bucket=x", "in", "{}", true, out,
                                        sizeof(out), err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "system.storage"));
}

/* An environment as our gateway writes it (FATE-Flow's JSON spacing). */
static char **env_of(const char *const *extra)
{
    static char storage[300];
    snprintf(storage, sizeof(storage), "system.storage=file://%s", tmpdir);
    static const char *base[] = {
        "system.storage=",
        "config.task_id=task_1",
        "config.self_role=host.0",
        "config.node_id.guest.0=NODE_G",
        "config.inst_id.guest.0=INST_G",
        "config.node_id.host.0=NODE_H",
        "config.inst_id.host.0=INST_H",
        "config.session_id=session_job_1",
        "config.token=tok",
        "config.trace_id=tr",
        "system.transport=127.0.0.1:7304",
        "system.callback=http://127.0.0.1:8080/v1/platform/schedule/task/callback",
        "runtime.component.name=ecdh_psi",
        "runtime.component.input.train_data={\"name\": \"in\", \"namespace\": \"data\"}",
        "runtime.component.output.train_data={\"name\": \"task_1-train_data\", \"namespace\": \"job-host-0\"}",
        NULL};
    static char *env[64];
    int n = 0;
    base[0] = storage;
    /* an extra "KEY=" replaces the base entry of that key; "KEY" alone removes it */
    for (int i = 0; base[i]; i++) {
        size_t kl = strcspn(base[i], "=");
        int overridden = 0;
        for (int j = 0; extra && extra[j]; j++)
            if (strncmp(extra[j], base[i], kl) == 0 && (extra[j][kl] == '=' || extra[j][kl] == '\0'))
                overridden = 1;
        if (!overridden)
            env[n++] = (char *)(uintptr_t)base[i];
    }
    for (int j = 0; extra && extra[j]; j++)
        if (strchr(extra[j], '='))
            env[n++] = (char *)(uintptr_t)extra[j];
    env[n] = NULL;
    return env;
}

static int load(const char *const *extra, struct psi_config *c, char *err, size_t errlen)
{
    return psi_config_load(env_of(extra), c, err, errlen);
}

static void test_config_defaults_and_ranks(void **state)
{
    (void)state;
    struct psi_config *c = calloc(1, sizeof(*c));
    char err[512];
    assert_int_equal(load(NULL, c, err, sizeof(err)), 0);
    /* guest.0 < host.0: host is rank 1 */
    assert_int_equal(c->self_rank, 1);
    assert_int_equal(c->peer_rank, 0);
    assert_string_equal(c->peer_party, "guest.0");
    assert_string_equal(c->self_node, "NODE_H");
    assert_string_equal(c->peer_node, "NODE_G");
    assert_string_equal(c->peer_inst, "INST_G");
    assert_int_equal(c->curve, PSI_CURVE_CURVE25519);
    assert_int_equal(c->hash, PSI_HASH_SHA_256);
    assert_int_equal(c->h2c, PSI_H2C_DIRECT_HASH_AS_POINT_X);
    assert_int_equal(c->fmt, PSI_FMT_UNCOMPRESSED);
    assert_int_equal(c->result_to_rank, -1);
    assert_int_equal(c->trunc_bits, -1);
    assert_string_equal(c->field_names, "id");
    assert_int_equal(c->spill_bytes, 64u << 20);
    assert_int_equal(c->recv_timeout_ms, 60000);
    assert_int_equal(c->connect_timeout_ms, 120000);
    char want[400];
    snprintf(want, sizeof(want), "%s/data/in/data", tmpdir);
    assert_string_equal(c->input_path, want);
    snprintf(want, sizeof(want), "%s/job-host-0/task_1-train_data/data", tmpdir);
    assert_string_equal(c->output_path, want);
    snprintf(want, sizeof(want), "%s/job-host-0/task_1-train_data/report.json", tmpdir);
    assert_string_equal(c->report_path, want);
    assert_string_equal(c->transport, "127.0.0.1:7304");
    assert_string_equal(c->trace_id, "tr");

    /* three parties sort as arbiter.0 < guest.0 < host.0: refused (two only) */
    const char *three[] = {"config.node_id.arbiter.0=NODE_A", NULL};
    assert_int_equal(load(three, c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exactly two parties, the task has 3"));
    assert_string_equal(c->task_id, "task_1"); /* still known for the FAILED callback */
    assert_string_equal(c->self_party, "host.0");
    /* SM2: the other parameters follow the curve when absent; as the reference names them */
    const char *sm2[] = {"runtime.component.parameter.curve_type=SM2",
                         "runtime.component.parameter.result_to_rank=1.0",
                         "runtime.component.parameter.field_names=id, name",
                         "runtime.component.parameter.bit_length_after_truncated=96", NULL};
    assert_int_equal(load(sm2, c, err, sizeof(err)), 0);
    assert_int_equal(c->curve, PSI_CURVE_SM2);
    assert_int_equal(c->h2c, PSI_H2C_TRY_AND_REHASH);
    assert_int_equal(c->fmt, PSI_FMT_X962_COMPRESSED);
    assert_int_equal(c->result_to_rank, 1);
    assert_int_equal(c->trunc_bits, 96);
    assert_string_equal(c->field_names, "id, name");
    const char *sm3[] = {"runtime.component.parameter.curve_type=sm2",
                         "runtime.component.parameter.hash_type=sm3", NULL};
    assert_int_equal(load(sm3, c, err, sizeof(err)), 0);
    assert_int_equal(c->h2c, PSI_H2C_TRY_AND_INCREMENT);
    /* the peer gets the result: no output address needed */
    const char *peer[] = {"runtime.component.parameter.result_to_rank=0",
                          "runtime.component.output.train_data", NULL};
    assert_int_equal(load(peer, c, err, sizeof(err)), 0);
    assert_false(psi_config_gets_result(c, c->self_rank));
    assert_string_equal(c->output_path, "");
    assert_string_equal(c->report_path, "");
    /* ... but we do with -1 */
    const char *noout[] = {"runtime.component.output.train_data", NULL};
    assert_int_equal(load(noout, c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "runtime.component.output.train_data is missing"));
    /* an explicit report address; a bare None parameter means the default */
    const char *rep[] = {"runtime.component.output.report={\"namespace\":\"r\",\"name\":\"rep\"}",
                         "runtime.component.parameter.curve_type=", NULL};
    assert_int_equal(load(rep, c, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "%s/r/rep/data", tmpdir);
    assert_string_equal(c->report_path, want);
    assert_int_equal(c->curve, PSI_CURVE_CURVE25519);
    /* missing inst ids fall back to node ids; no trace id is fine */
    const char *noinst[] = {"config.inst_id.guest.0", "config.inst_id.host.0", "config.trace_id",
                            NULL};
    assert_int_equal(load(noinst, c, err, sizeof(err)), 0);
    assert_string_equal(c->peer_inst, "NODE_G");
    assert_string_equal(c->trace_id, "");
    free(c);
}

static void test_config_refusals_name_the_field(void **state)
{
    (void)state;
    struct psi_config *c = calloc(1, sizeof(*c));
    char err[512];
    const struct {
        const char *kv, *kv2, *want;
    } cases[] = {
        {"runtime.component.parameter.curve_type=ed25519", NULL, "curve_type: 'ed25519'"},
        {"runtime.component.parameter.curve_type=p256", NULL, "curve_type: 'p256'"},
        {"runtime.component.parameter.hash_type=sm3", NULL, "hash_type: 'sm3' is not supported"},
        {"runtime.component.parameter.hash_type=md5", NULL, "hash_type: 'md5'"},
        {"runtime.component.parameter.hash2curve_strategy=try_and_rehash", NULL,
         "hash2curve_strategy: 'try_and_rehash' is not supported"},
        {"runtime.component.parameter.hash2curve_strategy=irtf_ell2_ro", NULL, "hash2curve_strategy:"},
        {"runtime.component.parameter.curve_type=sm2",
         "runtime.component.parameter.point_octet_format=uncompressed", "point_octet_format:"},
        {"runtime.component.parameter.point_octet_format=x962_hybrid", NULL, "point_octet_format:"},
        {"runtime.component.parameter.point_octet_format=weird", NULL, "point_octet_format: 'weird'"},
        {"runtime.component.parameter.algo=ss_lr", NULL, "algo: 'ss_lr'"},
        {"runtime.component.parameter.protocol_families=ecc,phe", NULL, "protocol_families: 'phe'"},
        {"runtime.component.parameter.result_to_rank=2", NULL, "result_to_rank: '2'"},
        {"runtime.component.parameter.result_to_rank=guest", NULL, "result_to_rank: 'guest'"},
        {"runtime.component.parameter.result_to_rank=0.5", NULL, "result_to_rank"},
        {"runtime.component.parameter.bit_length_after_truncated=90", NULL,
         "bit_length_after_truncated: 90"},
        {"runtime.component.parameter.bit_length_after_truncated=0", NULL,
         "bit_length_after_truncated"},
        {"runtime.component.parameter.spill_threshold_mb=-5", NULL, "spill_threshold_mb"},
        {"runtime.component.parameter.recv_timeout_s=0", NULL, "recv_timeout_s"},
        {"runtime.component.parameter.threads=1000", NULL, "threads"},
        {"config.self_role=guest.0,host.0", NULL, "config.self_role"},
        {"config.self_role=arbiter.0", NULL, "config.self_role: 'arbiter.0' is not one of"},
        {"config.self_role", NULL, "config.self_role is missing"},
        {"config.node_id.guest.0", NULL, "exactly two parties, the task has 1"},
        {"config.node_id.guest.0=", NULL, "config.node_id.guest.0 is empty"},
        {"config.node_id.guest 0=x", NULL, "not a role.index party name"},
        {"system.transport", NULL, "system.transport is missing"},
        {"system.transport=", NULL, "system.transport is missing"},
        {"config.session_id", NULL, "config.session_id is missing"},
        {"config.token", NULL, "config.token is missing"},
        {"system.storage=s3://h:1?bucket=b", NULL, "system.storage"},
        {"runtime.component.input.train_data", NULL, "runtime.component.input.train_data is missing"},
        {"runtime.component.input.train_data={\"name\":\"../x\",\"namespace\":\"d\"}", NULL,
         "runtime.component.input.train_data: namespace and name must be plain"},
        {"runtime.component.output.train_data=[1]", NULL, "runtime.component.output.train_data"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *extra[] = {cases[i].kv, cases[i].kv2, NULL};
        int rc = load(extra, c, err, sizeof(err));
        if (rc != -1 || !strstr(err, cases[i].want))
            fail_msg("case %zu (%s): rc %d, err '%s'", i, cases[i].kv, rc, err);
    }
    free(c);
}

/* The store gives the same answer in memory and spilled, and cleans up. */
static void check_store(size_t limit, uint64_t *spilled)
{
    struct psi_store *s = psi_store_new(tmpdir, limit);
    assert_non_null(s);
    enum { N = 5000 };
    unsigned char *peer = malloc(N * 12), *self = malloc(N * 12);
    /* own item i matches iff i % 3 == 0 (peer holds those values, twice
     * for some), plus peer values nobody has */
    for (int i = 0; i < N; i++) {
        for (int b = 0; b < 12; b++) {
            self[i * 12 + b] = (unsigned char)((i * 2654435761u) >> (b % 4 * 8)) ^ (unsigned char)(b * 31);
            peer[i * 12 + b] = (unsigned char)(0xa5 ^ (i * 40503u >> (b % 3 * 5)) ^ b);
        }
    }
    for (int i = 0; i < N; i += 3)
        memcpy(peer + (size_t)(i / 3) * 12, self + (size_t)i * 12, 12);
    memcpy(peer + 4000 * 12, self + 0, 12); /* a duplicate peer value */
    for (int off = 0; off < N; off += 700) {
        int n = off + 700 > N ? N - off : 700;
        assert_int_equal(psi_store_add_peer(s, peer + (size_t)off * 12, (size_t)n), 0);
        assert_int_equal(psi_store_add_self(s, (uint64_t)off, self + (size_t)off * 12, (size_t)n), 0);
    }
    unsigned char bm[N / 8 + 1];
    memset(bm, 0, sizeof(bm));
    uint64_t m;
    assert_int_equal(psi_store_intersect(s, bm, N, &m), 0);
    assert_int_equal(m, (N + 2) / 3);
    for (int i = 0; i < N; i++)
        assert_int_equal(!!(bm[i / 8] & (1 << (i % 8))), i % 3 == 0);
    *spilled = psi_store_spilled(s);
    /* an own index beyond the items is caught */
    memset(bm, 0, sizeof(bm));
    assert_int_equal(psi_store_intersect(s, bm, 100, &m), -1);
    psi_store_free(s);
    free(peer);
    free(self);
    DIR *d = opendir(tmpdir);
    for (struct dirent *e; (e = readdir(d));)
        assert_null(strstr(e->d_name, "psi-spill"));
    closedir(d);
}

static void test_store_memory_and_spill(void **state)
{
    (void)state;
    uint64_t sp;
    check_store(64u << 20, &sp);
    assert_int_equal(sp, 0);
    check_store(0, &sp); /* every batch spilled */
    assert_true(sp >= 5000 * (12 + 16));
    check_store(60000, &sp); /* some in files, some in memory */
    assert_true(sp > 0);
    /* a spill directory that cannot be made */
    struct psi_store *s = psi_store_new("/nonexistent-dir-for-psi", 0);
    unsigned char v[12] = {1};
    assert_int_equal(psi_store_add_peer(s, v, 1), -1);
    assert_non_null(strstr(psi_store_error(s), "spill directory"));
    psi_store_free(s);
}

static int sum_task(void *job, void *st, size_t b, size_t e)
{
    long *out = job;
    int *id = st;
    for (size_t i = b; i < e; i++) {
        if (i == 77777)
            return 7; /* a failing item */
        __atomic_add_fetch(&out[0], (long)i, __ATOMIC_RELAXED);
        __atomic_add_fetch(&out[1 + *id], 1, __ATOMIC_RELAXED);
    }
    return 0;
}

static int ids[4];
static void *pool_init(void *arg, int i)
{
    (void)arg;
    ids[i] = i;
    return &ids[i];
}

static void test_pool(void **state)
{
    (void)state;
    struct psi_pool *p = psi_pool_new(4, pool_init, NULL, NULL);
    assert_non_null(p);
    assert_int_equal(psi_pool_size(p), 4);
    long out[5] = {0};
    assert_int_equal(psi_pool_run(p, sum_task, out, 10000, 64), 0);
    assert_int_equal(out[0], 10000L * 9999 / 2);
    assert_int_equal(out[1] + out[2] + out[3] + out[4], 10000);
    memset(out, 0, sizeof(out));
    assert_int_equal(psi_pool_run(p, sum_task, out, 100000, 1000), 7);
    assert_int_equal(psi_pool_run(p, sum_task, out, 0, 10), 0);
    psi_pool_free(p);
    assert_null(psi_pool_new(0, NULL, NULL, NULL));
    assert_true(psi_pool_cpus() >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_item_rules),
        cmocka_unit_test(test_columns),
        cmocka_unit_test(test_reader_and_output),
        cmocka_unit_test(test_json_address),
        cmocka_unit_test(test_config_defaults_and_ranks),
        cmocka_unit_test(test_config_refusals_name_the_field),
        cmocka_unit_test(test_store_memory_and_spill),
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
