/*
 * test_runner.c - the task runner (container/runner.c) driven through its
 * two interfaces by fakes:
 *   - an engine that keeps a table of containers (create, start, exit,
 *     remove change it; inspect and list read it) and answers each call
 *     only when the test says so;
 *   - a store holding t_task rows whose statements (the compare-and-sets
 *     included) run only when the test completes them, so a stop can land
 *     between two steps of a launch.
 * A real event_base is turned with EVLOOP_NONBLOCK so the deferred reaper
 * runs, and a real node key mints the launch tokens into a temporary
 * attest directory.  Under ASan a use after free aborts the test, and
 * LeakSanitizer is asked after every case.  The cases whose runs end also
 * check runner_runs_held() == 0 once the loop turned: a reference that is
 * never released keeps a run alive (runner_free would hide that leak).
 * The refresh timer (80 % of attest.token_ttl_s, at least 8 s) is not
 * waited for (no sleeps): reconcile's adoption refreshes at once, and
 * that is the path the refresh races use.
 *
 * Set TEST_LOG=1 to see the runner's log lines.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "container/attest.h"
#include "container/docker.h"
#include "container/runner.h"
#include "gateway/cfg.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "scheduler/state.h"

#define ME "JG0100001100000010"
#define INST "0123456789abcdef" /* this installation (t_site.install_id) */
#define DIGEST "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define OTHER "sha256:2222222222222222222222222222222222222222222222222222222222222222"

/* ---- the trace: every call either fake receives, in order ----------------- */

static char trace[16384];

static void tr(const char *fmt, ...) GW_PRINTF(1, 2);
static void tr(const char *fmt, ...)
{
    size_t l = strlen(trace);
    if (l > 0 && l + 1 < sizeof(trace)) {
        trace[l++] = ' ';
        trace[l] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(trace + l, sizeof(trace) - l, fmt, ap);
    va_end(ap);
}

/* ---- the fake engine: containers, and calls answered on demand ------------ */

struct ctr {
    bool used;
    char id[64], name[160], image[128], state[16];
    cJSON *labels;
    long exit_code;
    bool oom;
};

static struct ctr Ctr[32];

static struct ctr *ctr_find(const char *ref)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(Ctr); i++)
        if (Ctr[i].used && (strcmp(Ctr[i].id, ref) == 0 || strcmp(Ctr[i].name, ref) == 0))
            return &Ctr[i];
    return NULL;
}

static struct ctr *ctr_add(const char *id, const char *name, const char *image, const char *state,
                           const cJSON *labels)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(Ctr); i++)
        if (!Ctr[i].used) {
            struct ctr *c = &Ctr[i];
            memset(c, 0, sizeof(*c));
            c->used = true;
            snprintf(c->id, sizeof(c->id), "%s", id);
            snprintf(c->name, sizeof(c->name), "%s", name);
            snprintf(c->image, sizeof(c->image), "%s", image);
            snprintf(c->state, sizeof(c->state), "%s", state);
            c->labels = labels ? cJSON_Duplicate(labels, true) : cJSON_CreateObject();
            return c;
        }
    fail_msg("test bug: container table full");
    return NULL;
}

static void ctr_del(struct ctr *c)
{
    cJSON_Delete(c->labels);
    memset(c, 0, sizeof(*c));
}

/* GET /containers/{id}/json as the engine shapes it (the fields used). */
static char *ctr_inspect_json(const struct ctr *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "Id", c->id);
    char nm[170];
    snprintf(nm, sizeof(nm), "/%s", c->name);
    cJSON_AddStringToObject(j, "Name", nm);
    cJSON_AddStringToObject(j, "Image", c->image);
    cJSON *cf = cJSON_AddObjectToObject(j, "Config");
    cJSON_AddItemToObject(cf, "Labels", cJSON_Duplicate(c->labels, true));
    cJSON *st = cJSON_AddObjectToObject(j, "State");
    cJSON_AddStringToObject(st, "Status", c->state);
    cJSON_AddBoolToObject(st, "Running", strcmp(c->state, "running") == 0);
    cJSON_AddBoolToObject(st, "OOMKilled", c->oom);
    cJSON_AddNumberToObject(st, "ExitCode", (double)c->exit_code);
    cJSON_AddStringToObject(st, "Error", "");
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

enum ekind { E_CREATE, E_INSPECT, E_START, E_WAIT, E_LOGS, E_KILL, E_REMOVE, E_LIST, E_NKIND };
static const char *const ename[] = {"create", "inspect", "start",  "wait",
                                    "logs",   "kill",    "remove", "list"};

struct ecall {
    enum ekind kind;
    char ref[192];  /* name, id or label filter */
    char opt[32];   /* wait condition, kill signal */
    int tail;       /* logs */
    cJSON *body;    /* create: a copy */
    runner_docker_cb cb;
    void (*on_armed)(void *arg);
    void *arg;
    bool answered, cancelled, armed;
};

#define EMAX 256
static struct ecall E[EMAX];
static int En;

static struct ecall *e_add(enum ekind k, const char *ref, runner_docker_cb cb, void *arg)
{
    assert_true(En < EMAX);
    struct ecall *c = &E[En++];
    memset(c, 0, sizeof(*c));
    c->kind = k;
    snprintf(c->ref, sizeof(c->ref), "%s", ref ? ref : "");
    c->cb = cb;
    c->arg = arg;
    tr("E:%s", ename[k]);
    return c;
}

static int fe_create(void *ctx, const char *name, const cJSON *body, runner_docker_cb cb,
                     void *arg)
{
    (void)ctx;
    struct ecall *c = e_add(E_CREATE, name, cb, arg);
    c->body = cJSON_Duplicate(body, true);
    return 0;
}

static int fe_inspect(void *ctx, const char *ref, runner_docker_cb cb, void *arg)
{
    (void)ctx;
    e_add(E_INSPECT, ref, cb, arg);
    return 0;
}

static int fe_start(void *ctx, const char *id, runner_docker_cb cb, void *arg)
{
    (void)ctx;
    e_add(E_START, id, cb, arg);
    return 0;
}

static int fe_wait(void *ctx, const char *id, const char *condition, void (*on_armed)(void *arg),
                   runner_docker_cb cb, void *arg, struct docker_call **out)
{
    (void)ctx;
    struct ecall *c = e_add(E_WAIT, id, cb, arg);
    snprintf(c->opt, sizeof(c->opt), "%s", condition);
    c->on_armed = on_armed;
    *out = (struct docker_call *)(void *)c;
    return 0;
}

static int fe_logs(void *ctx, const char *id, int tail, runner_docker_cb cb, void *arg)
{
    (void)ctx;
    e_add(E_LOGS, id, cb, arg)->tail = tail;
    return 0;
}

static int fe_kill(void *ctx, const char *id, const char *signal, runner_docker_cb cb, void *arg)
{
    (void)ctx;
    struct ecall *c = e_add(E_KILL, id, cb, arg);
    snprintf(c->opt, sizeof(c->opt), "%s", signal);
    return 0;
}

static int fe_remove(void *ctx, const char *id, runner_docker_cb cb, void *arg)
{
    (void)ctx;
    e_add(E_REMOVE, id, cb, arg);
    return 0;
}

static int fe_list(void *ctx, const char *label, runner_docker_cb cb, void *arg)
{
    (void)ctx;
    e_add(E_LIST, label, cb, arg);
    return 0;
}

/* docker_cancel's contract: no callback afterwards.  Cancelling a call
 * whose callback already ran would be a bug of the runner. */
static void fe_cancel(void *ctx, struct docker_call *call)
{
    (void)ctx;
    if (!call)
        return;
    struct ecall *c = (struct ecall *)(void *)call;
    assert_true(c >= E && c < E + En);
    assert_false(c->answered);
    assert_false(c->cancelled);
    c->cancelled = true;
    tr("E:cancel-%s", ename[c->kind]);
}

static const struct runner_engine_ops fake_engine = {
    .create = fe_create,
    .inspect = fe_inspect,
    .start = fe_start,
    .wait = fe_wait,
    .logs = fe_logs,
    .kill = fe_kill,
    .remove = fe_remove,
    .list = fe_list,
    .cancel = fe_cancel,
};

static int e_pending(enum ekind k)
{
    int n = 0;
    for (int i = 0; i < En; i++)
        n += E[i].kind == k && !E[i].answered && !E[i].cancelled;
    return n;
}

/* The oldest call of kind k (on ref, when not NULL) waiting for its answer. */
static struct ecall *e_find(enum ekind k, const char *ref)
{
    for (int i = 0; i < En; i++)
        if (E[i].kind == k && !E[i].answered && !E[i].cancelled &&
            (!ref || strcmp(E[i].ref, ref) == 0))
            return &E[i];
    fail_msg("no %s call on %s pending; calls: %s", ename[k], ref ? ref : "(any)", trace);
    return NULL;
}

static void e_answer(struct ecall *c, int err, const char *msg, const char *json,
                     const char *text, size_t len)
{
    assert_false(c->answered);
    assert_false(c->cancelled);
    c->answered = true;
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    if (json)
        assert_non_null(j);
    struct docker_result r = {.err = err,
                              .status = err == 0 ? 200 : err == GW_ENOTFOUND ? 404 : 500,
                              .msg = msg ? msg : "",
                              .json = j,
                              .text = text,
                              .text_len = len};
    c->cb(c->arg, &r);
    cJSON_Delete(j);
}

/* The engine created the container: it exists now, as the create body says. */
static void e_create_ok(struct ecall *c, const char *id)
{
    assert_int_equal(c->kind, E_CREATE);
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(c->body, "Image");
    ctr_add(id, c->ref, cJSON_IsString(img) ? img->valuestring : "",
            "created", cJSON_GetObjectItemCaseSensitive(c->body, "Labels"));
    char js[128];
    snprintf(js, sizeof(js), "{\"Id\":\"%s\",\"Warnings\":[]}", id);
    e_answer(c, 0, NULL, js, NULL, 0);
}

static void e_inspect_ok(struct ecall *c)
{
    assert_int_equal(c->kind, E_INSPECT);
    struct ctr *ct = ctr_find(c->ref);
    if (!ct) {
        e_answer(c, GW_ENOTFOUND, "No such container", NULL, NULL, 0);
        return;
    }
    char *js = ctr_inspect_json(ct);
    e_answer(c, 0, NULL, js, NULL, 0);
    cJSON_free(js);
}

static void e_start_ok(struct ecall *c)
{
    assert_int_equal(c->kind, E_START);
    struct ctr *ct = ctr_find(c->ref);
    assert_non_null(ct);
    if (strcmp(ct->state, "created") == 0)
        snprintf(ct->state, sizeof(ct->state), "running");
    e_answer(c, 0, NULL, NULL, NULL, 0);
}

/* The engine registered the wait (its 200 headers arrived). */
static void e_arm(struct ecall *c)
{
    assert_int_equal(c->kind, E_WAIT);
    assert_false(c->armed);
    assert_false(c->cancelled);
    c->armed = true;
    c->on_armed(c->arg);
}

/* The container ends: the pending wait on it returns. */
static void ctr_exit(const char *id, long code, bool oom)
{
    struct ctr *ct = ctr_find(id);
    assert_non_null(ct);
    snprintf(ct->state, sizeof(ct->state), "exited");
    ct->exit_code = code;
    ct->oom = oom;
    char js[64];
    snprintf(js, sizeof(js), "{\"StatusCode\":%ld}", code);
    e_answer(e_find(E_WAIT, id), 0, NULL, js, NULL, 0);
}

static void e_logs_ok(struct ecall *c, const char *text, size_t len)
{
    assert_int_equal(c->kind, E_LOGS);
    e_answer(c, 0, NULL, NULL, text, len);
}

static void e_remove_ok(struct ecall *c)
{
    assert_int_equal(c->kind, E_REMOVE);
    struct ctr *ct = ctr_find(c->ref);
    if (ct)
        ctr_del(ct);
    e_answer(c, 0, NULL, NULL, NULL, 0);
}

/* GET /containers/json?all=1&filters={"label":["k=v"]} over the table. */
static void e_list_ok(struct ecall *c)
{
    assert_int_equal(c->kind, E_LIST);
    char key[sizeof(c->ref)];
    snprintf(key, sizeof(key), "%s", c->ref);
    char *eq = strchr(key, '=');
    assert_non_null(eq);
    *eq = '\0';
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < GW_ARRAY_LEN(Ctr); i++) {
        const struct ctr *ct = &Ctr[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ct->labels, key);
        if (!ct->used || !cJSON_IsString(v) || strcmp(v->valuestring, eq + 1) != 0)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "Id", ct->id);
        char nm[170];
        snprintf(nm, sizeof(nm), "/%s", ct->name);
        cJSON *names = cJSON_AddArrayToObject(o, "Names");
        cJSON_AddItemToArray(names, cJSON_CreateString(nm));
        cJSON_AddStringToObject(o, "Image", ct->image);
        cJSON_AddStringToObject(o, "State", ct->state);
        cJSON_AddItemToObject(o, "Labels", cJSON_Duplicate(ct->labels, true));
        cJSON_AddItemToArray(arr, o);
    }
    char *js = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    e_answer(c, 0, NULL, js, NULL, 0);
    cJSON_free(js);
}

/* ---- the fake store: t_task rows, statements completed on demand ---------- */

struct frow {
    char job[32], task[32], role[16];
    int idx;
    char status[12];
    char name[160];
    char *spec;
    char cid[96], jti[96], exit_code[24], error[512];
    bool oom;
    char *logs;
};

static struct frow Rows[16];
static int Rn;

enum skind { S_SPEC, S_RUNNING, S_FINISHED, S_TOKEN, S_CONTAINERS, S_LOST, S_ORPHANS, S_NKIND };
static const char *const sname[] = {"spec", "running", "finished", "token",
                                    "containers", "lost", "orphans"};

struct scall {
    enum skind kind;
    char job[32], task[32], role[16];
    int idx;
    char cid[96], jti[96], name[160];
    char status[12], exit_code[24], reason[512];
    bool has_exit, oom;
    char *text; /* logs; the lost rows or orphan names (JSON) */
    db_rows_cb cb;
    void *arg;
    bool answered;
};

#define SMAX 256
static struct scall Sq[SMAX];
static int Sn;
static int store_fail[S_NKIND]; /* the next completion of that kind fails with this */
static char orphans_recorded[512];

static struct scall *s_add(enum skind k, const struct runner_key *key, db_rows_cb cb, void *arg)
{
    assert_true(Sn < SMAX);
    struct scall *c = &Sq[Sn++];
    memset(c, 0, sizeof(*c));
    c->kind = k;
    if (key) {
        snprintf(c->job, sizeof(c->job), "%s", key->job_id);
        snprintf(c->task, sizeof(c->task), "%s", key->task_id);
        snprintf(c->role, sizeof(c->role), "%s", key->role);
        c->idx = key->role_index;
    }
    c->cb = cb;
    c->arg = arg;
    tr("S:%s", sname[k]);
    return c;
}

static int fs_spec(void *ctx, const struct runner_key *k, db_rows_cb cb, void *arg)
{
    (void)ctx;
    s_add(S_SPEC, k, cb, arg);
    return 0;
}

static int fs_running(void *ctx, const struct runner_launch_rec *l, db_rows_cb cb, void *arg)
{
    (void)ctx;
    struct scall *c = s_add(S_RUNNING, l->k, cb, arg);
    snprintf(c->cid, sizeof(c->cid), "%s", l->container_id ? l->container_id : "");
    snprintf(c->jti, sizeof(c->jti), "%s", l->token_jti ? l->token_jti : "");
    snprintf(c->name, sizeof(c->name), "%s", l->container_name ? l->container_name : "");
    return 0;
}

static int fs_finished(void *ctx, const struct runner_outcome *o, db_rows_cb cb, void *arg)
{
    (void)ctx;
    struct scall *c = s_add(S_FINISHED, o->k, cb, arg);
    snprintf(c->status, sizeof(c->status), "%s", o->status);
    c->has_exit = o->exit_code != NULL;
    snprintf(c->exit_code, sizeof(c->exit_code), "%s", o->exit_code ? o->exit_code : "");
    snprintf(c->reason, sizeof(c->reason), "%s", o->reason ? o->reason : "");
    c->oom = o->oom;
    c->text = gw_xstrdup(o->logs ? o->logs : "");
    return 0;
}

static int fs_token(void *ctx, const struct runner_key *k, const char *container_id,
                    const char *jti, db_rows_cb cb, void *arg)
{
    (void)ctx;
    struct scall *c = s_add(S_TOKEN, k, cb, arg);
    snprintf(c->cid, sizeof(c->cid), "%s", container_id);
    snprintf(c->jti, sizeof(c->jti), "%s", jti);
    return 0;
}

static int fs_containers(void *ctx, db_rows_cb cb, void *arg)
{
    (void)ctx;
    s_add(S_CONTAINERS, NULL, cb, arg);
    return 0;
}

static int fs_lost(void *ctx, const char *rows_json, db_rows_cb cb, void *arg)
{
    (void)ctx;
    s_add(S_LOST, NULL, cb, arg)->text = gw_xstrdup(rows_json);
    return 0;
}

static int fs_orphans(void *ctx, const char *names_json, db_rows_cb cb, void *arg)
{
    (void)ctx;
    s_add(S_ORPHANS, NULL, cb, arg)->text = gw_xstrdup(names_json);
    return 0;
}

static const struct runner_store_ops fake_store = {
    .spec = fs_spec,
    .running = fs_running,
    .finished = fs_finished,
    .token = fs_token,
    .containers = fs_containers,
    .lost = fs_lost,
    .orphans = fs_orphans,
};

static struct frow *row_find(const char *job, const char *task, const char *role, int idx)
{
    for (int i = 0; i < Rn; i++)
        if (strcmp(Rows[i].job, job) == 0 && strcmp(Rows[i].task, task) == 0 &&
            strcmp(Rows[i].role, role) == 0 && Rows[i].idx == idx)
            return &Rows[i];
    return NULL;
}

static bool is_live(const char *st)
{
    return strcmp(st, "READY") == 0 || strcmp(st, "RUNNING") == 0;
}

/* Rows of store_task_set: a summary (t_job rows, rows selected, rows moved),
 * then (job_id, task_id, role, role_index, container_id, old, new) per row
 * written. */
struct setres {
    const char *v[8 * 7];
    char num[3][16];
    char idx[8][12];
    char old[8][12];
    int n, moved, selected;
};

static void setres_row(struct setres *s, const struct frow *w, const char *old)
{
    int i = s->n++;
    assert_true(s->n <= 8);
    snprintf(s->idx[i], sizeof(s->idx[i]), "%d", w->idx);
    snprintf(s->old[i], sizeof(s->old[i]), "%s", old);
    const char **v = &s->v[i * 7];
    v[0] = w->job;
    v[1] = w->task;
    v[2] = w->role;
    v[3] = s->idx[i];
    v[4] = w->cid[0] ? w->cid : NULL;
    v[5] = s->old[i];
    v[6] = w->status;
}

static void setres_reply(struct setres *s, struct scall *c)
{
    /* the summary goes first: shift the rows down by one */
    const char *all[9 * 7];
    snprintf(s->num[0], sizeof(s->num[0]), "1");
    snprintf(s->num[1], sizeof(s->num[1]), "%d", s->selected);
    snprintf(s->num[2], sizeof(s->num[2]), "%d", s->moved);
    for (int k = 0; k < 7; k++)
        all[k] = k < 3 ? s->num[k] : NULL;
    memcpy(all + 7, s->v, (size_t)s->n * 7 * sizeof(all[0]));
    struct db_rows r = {.n = s->n + 1, .cols = 7, .v = all};
    c->cb(c->arg, &r);
}

static void s_answer(struct scall *c)
{
    assert_false(c->answered);
    c->answered = true;
    if (store_fail[c->kind]) {
        struct db_rows r = {.err = store_fail[c->kind], .msg = "scripted database failure"};
        store_fail[c->kind] = 0;
        c->cb(c->arg, &r);
        return;
    }
    struct frow *w = c->job[0] ? row_find(c->job, c->task, c->role, c->idx) : NULL;
    switch (c->kind) {
    case S_SPEC: {
        const char *v[2] = {w ? w->name : NULL, w ? w->spec : NULL};
        struct db_rows r = {.n = w && strcmp(w->status, "READY") == 0 ? 1 : 0, .cols = 2, .v = v};
        c->cb(c->arg, &r);
        return;
    }
    case S_RUNNING: {
        /* CAS READY -> RUNNING with the container and token ids */
        struct setres s = {.selected = w != NULL};
        if (w && strcmp(w->status, "READY") == 0) {
            snprintf(w->status, sizeof(w->status), "RUNNING");
            snprintf(w->cid, sizeof(w->cid), "%s", c->cid);
            snprintf(w->jti, sizeof(w->jti), "%s", c->jti);
            s.moved = 1;
            setres_row(&s, w, "READY");
        }
        setres_reply(&s, c);
        return;
    }
    case S_FINISHED: {
        /* by exit code: a live row moves; the details are written whatever
         * the status (a stopped row keeps FAILED but gets its exit code) */
        struct setres s = {.selected = w != NULL};
        if (w) {
            char old[12];
            snprintf(old, sizeof(old), "%s", w->status);
            enum task_state from, to;
            assert_true(task_state_parse(old, &from));
            assert_true(task_state_parse(c->status, &to));
            if (task_step_ok(from, to) ||
                (from == TASK_STATE_SUCCESS && to == TASK_STATE_FAILED)) {
                snprintf(w->status, sizeof(w->status), "%s", c->status);
                s.moved = 1;
            }
            snprintf(w->exit_code, sizeof(w->exit_code), "%s", c->exit_code);
            w->oom = c->oom;
            if (!w->error[0])
                snprintf(w->error, sizeof(w->error), "%s", c->reason);
            free(w->logs);
            w->logs = gw_xstrdup(c->text);
            setres_row(&s, w, old);
        }
        setres_reply(&s, c);
        return;
    }
    case S_TOKEN: {
        const char *v[1] = {"1"};
        bool ok = w && strcmp(w->status, "RUNNING") == 0 && strcmp(w->cid, c->cid) == 0;
        if (ok)
            snprintf(w->jti, sizeof(w->jti), "%s", c->jti);
        struct db_rows r = {.n = ok ? 1 : 0, .cols = 1, .v = v};
        c->cb(c->arg, &r);
        return;
    }
    case S_CONTAINERS: {
        const char *v[16 * 7];
        char idx[16][12];
        int n = 0;
        for (int i = 0; i < Rn; i++) {
            const struct frow *x = &Rows[i];
            if (!is_live(x->status) && !x->name[0])
                continue;
            snprintf(idx[n], sizeof(idx[n]), "%d", x->idx);
            const char **p = &v[n * 7];
            p[0] = x->job;
            p[1] = x->task;
            p[2] = x->role;
            p[3] = idx[n];
            p[4] = x->status;
            p[5] = x->name[0] ? x->name : NULL;
            p[6] = x->spec;
            n++;
        }
        struct db_rows r = {.n = n, .cols = 7, .v = v};
        c->cb(c->arg, &r);
        return;
    }
    case S_LOST: {
        cJSON *l = cJSON_Parse(c->text);
        assert_true(cJSON_IsArray(l));
        struct setres s = {0};
        const cJSON *e;
        cJSON_ArrayForEach(e, l)
        {
            const cJSON *ri = cJSON_GetObjectItemCaseSensitive(e, "role_index");
            struct frow *x = row_find(
                cJSON_GetObjectItemCaseSensitive(e, "job_id")->valuestring,
                cJSON_GetObjectItemCaseSensitive(e, "task_id")->valuestring,
                cJSON_GetObjectItemCaseSensitive(e, "role")->valuestring, ri->valueint);
            if (!x)
                continue;
            s.selected++;
            if (is_live(x->status)) {
                char old[12];
                snprintf(old, sizeof(old), "%s", x->status);
                snprintf(x->status, sizeof(x->status), "FAILED");
                snprintf(x->error, sizeof(x->error), "container lost");
                s.moved++;
                setres_row(&s, x, old);
            }
        }
        cJSON_Delete(l);
        setres_reply(&s, c);
        return;
    }
    case S_ORPHANS: {
        cJSON *l = cJSON_Parse(c->text);
        assert_true(cJSON_IsArray(l));
        const char *v[16];
        int n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, l)
        {
            size_t o = strlen(orphans_recorded);
            snprintf(orphans_recorded + o, sizeof(orphans_recorded) - o, "%s%s", o ? "," : "",
                     e->valuestring);
            v[n++] = "1";
        }
        cJSON_Delete(l);
        struct db_rows r = {.n = n, .cols = 1, .v = v};
        c->cb(c->arg, &r);
        return;
    }
    case S_NKIND:
        break;
    }
    fail();
}

static int s_pending(enum skind k)
{
    int n = 0;
    for (int i = 0; i < Sn; i++)
        n += Sq[i].kind == k && !Sq[i].answered;
    return n;
}

/* The oldest statement of kind k (for task, when not NULL) not completed. */
static struct scall *s_find(enum skind k, const char *task)
{
    for (int i = 0; i < Sn; i++)
        if (Sq[i].kind == k && !Sq[i].answered && (!task || strcmp(Sq[i].task, task) == 0))
            return &Sq[i];
    fail_msg("no %s statement for %s pending; calls: %s", sname[k], task ? task : "(any)",
             trace);
    return NULL;
}

/* ---- harness ------------------------------------------------------------------ */

static struct event_base *base;
static struct gw_cfg *cfg;
static struct runner *R;
static struct attest *A;
static char keydir[64], adir[64];
static int notified;

static void turn(void)
{
    event_base_loop(base, EVLOOP_NONBLOCK);
}

static void on_notify(void *ctx, const char *job_id, const char *task_id)
{
    (void)ctx;
    (void)job_id;
    notified++;
    tr("N:%s", task_id);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    (void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct frow *add_row(const char *task, const char *role, int idx, const char *status)
{
    assert_true(Rn < (int)GW_ARRAY_LEN(Rows));
    struct frow *w = &Rows[Rn++];
    memset(w, 0, sizeof(*w));
    snprintf(w->job, sizeof(w->job), "J1");
    snprintf(w->task, sizeof(w->task), "%s", task);
    snprintf(w->role, sizeof(w->role), "%s", role);
    w->idx = idx;
    snprintf(w->status, sizeof(w->status), "%s", status);
    char *nm = runner_container_name(role, ME, task, 0);
    snprintf(w->name, sizeof(w->name), "%s", nm);
    free(nm);
    w->spec = gw_xasprintf(
        "{\"image_digest\":\"" DIGEST "\",\"image\":\"demo/psi:1.0\",\"task_name\":\"psi_1\","
        "\"component\":\"psi\",\"provider\":\"demo\",\"version\":\"1.0\",\"attempt\":0,"
        "\"nano_cpus\":2000000000,\"memory_bytes\":536870912,"
        "\"env\":[\"system.job_id=J1\",\"system.task_id=%s\",\"runtime.component.name=psi\","
        "\"runtime.component.parameter.x=1\"]}",
        task);
    return w;
}

static struct runner_key key_of(const struct frow *w)
{
    struct runner_key k = {w->job, w->task, w->role, w->idx};
    return k;
}

/* Containers labelled as the runner labels them (a previous run's). */
static struct ctr *ctr_of_row(const struct frow *w, const char *id, const char *state)
{
    cJSON *lab = cJSON_CreateObject();
    cJSON_AddStringToObject(lab, "org.bfia.managed", "true");
    cJSON_AddStringToObject(lab, "org.bfia.node", ME);
    cJSON_AddStringToObject(lab, "org.bfia.install", INST);
    cJSON_AddStringToObject(lab, "org.bfia.job", w->job);
    cJSON_AddStringToObject(lab, "org.bfia.task", w->task);
    struct ctr *c = ctr_add(id, w->name, DIGEST, state, lab);
    cJSON_Delete(lab);
    return c;
}

#if defined(__SANITIZE_ADDRESS__)
static void __attribute__((noinline)) scrub_stack(void)
{
    volatile char pad[64 * 1024];
    memset((char *)pad, 0, sizeof(pad));
}
#endif

/* LeakSanitizer now, so a leak is reported against the case that made it
 * (once: the ones after would report it again; the exit-time check runs
 * in any case).  The stack the case used is zeroed first: a stale pointer
 * there would hide a leak. */
static void __attribute__((noinline)) leak_check(void)
{
#if defined(__SANITIZE_ADDRESS__)
    static bool reported;
    if (reported)
        return;
    scrub_stack();
    reported = __lsan_do_recoverable_leak_check() != 0;
    assert_false(reported);
#endif
}

static int setup(void **state)
{
    (void)state;
    memset(E, 0, sizeof(E));
    En = 0;
    memset(Sq, 0, sizeof(Sq));
    Sn = 0;
    memset(store_fail, 0, sizeof(store_fail));
    memset(Rows, 0, sizeof(Rows));
    Rn = 0;
    memset(Ctr, 0, sizeof(Ctr));
    trace[0] = '\0';
    orphans_recorded[0] = '\0';
    notified = 0;
    base = event_base_new();
    cfg = cfg_new_defaults();
    free(cfg->node_id);
    cfg->node_id = gw_xstrdup(ME);
    snprintf(adir, sizeof(adir), "/tmp/test_runner.XXXXXX");
    assert_non_null(mkdtemp(adir));
    struct runner_env env = {.base = base,
                             .cfg = &cfg,
                             .engine = &fake_engine,
                             .attest = A,
                             .attest_dir = adir,
                             .install_id = INST,
                             .store = &fake_store};
    R = runner_new(&env);
    runner_set_notify(R, on_notify, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    runner_free(R);
    R = NULL;
    for (int i = 0; i < En; i++)
        cJSON_Delete(E[i].body);
    for (int i = 0; i < Sn; i++)
        free(Sq[i].text);
    for (int i = 0; i < Rn; i++) {
        free(Rows[i].spec);
        free(Rows[i].logs);
    }
    for (size_t i = 0; i < GW_ARRAY_LEN(Ctr); i++)
        if (Ctr[i].used)
            ctr_del(&Ctr[i]);
    rm_rf(adir);
    cfg_free(cfg);
    event_base_free(base);
    /* The fakes' tables point at what the calls carried: cleared, whatever
     * the runner leaked is unreachable, and LeakSanitizer names this case. */
    memset(E, 0, sizeof(E));
    memset(Sq, 0, sizeof(Sq));
    leak_check();
    return 0;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v))
        fail_msg("member %s is not a string", k);
    return v->valuestring;
}

static bool env_has(const cJSON *env, const char *entry, bool prefix)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, env)
    {
        if (cJSON_IsString(e) && (prefix ? strncmp(e->valuestring, entry, strlen(entry)) == 0
                                         : strcmp(e->valuestring, entry) == 0))
            return true;
    }
    return false;
}

/* The host directory mounted at /run/bfia/attest, from a create body. */
static const char *tokdir_of(const cJSON *body)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(
                              cJSON_GetObjectItemCaseSensitive(body, "HostConfig"), "Mounts"))
    {
        if (strcmp(jstr(m, "Target"), ATTEST_MOUNT) == 0)
            return jstr(m, "Source");
    }
    fail_msg("no attest mount in the create body");
    return NULL;
}

static bool file_exists(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

/* The attest directory the runner uses for a container name (runner.c's
 * tokdir_for: the first 80 bits of SHA-256(name) in hex), made with an
 * old launch token in it: what a launch before the restart left. */
static void make_tokdir(const char *name)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    assert_true(EVP_Digest(name, strlen(name), md, &mdlen, EVP_sha256(), NULL));
    char p[256];
    int o = snprintf(p, sizeof(p), "%s/", adir);
    for (int i = 0; i < 10; i++)
        o += snprintf(p + o, sizeof(p) - (size_t)o, "%02x", md[i]);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p + o, sizeof(p) - (size_t)o, "/token.jwt");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("old-token", f);
    fclose(f);
}

static const char *count_want;
static int count_hits;

static int count_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (strcmp(path + ftw->base, count_want) == 0)
        count_hits++;
    return 0;
}

/* Files called name anywhere under dir. */
static int count_named(const char *dir, const char *name)
{
    count_want = name;
    count_hits = 0;
    assert_int_equal(nftw(dir, count_entry, 16, FTW_PHYS), 0);
    return count_hits;
}

/* Launch w: spec read, create (as id), inspect, the row RUNNING, the wait
 * armed, start answered. */
static void drive_started(struct frow *w, const char *id)
{
    s_answer(s_find(S_SPEC, w->task));
    e_create_ok(e_find(E_CREATE, w->name), id);
    e_inspect_ok(e_find(E_INSPECT, id));
    s_answer(s_find(S_RUNNING, w->task));
    e_arm(e_find(E_WAIT, id));
    e_start_ok(e_find(E_START, id));
}

/* The container exits, inspect and logs answer: the final write is pending. */
static struct scall *drive_exit(const struct frow *w, const char *id, long code, bool oom,
                                const char *logs)
{
    ctr_exit(id, code, oom);
    e_inspect_ok(e_find(E_INSPECT, id));
    e_logs_ok(e_find(E_LOGS, id), logs, strlen(logs));
    return s_find(S_FINISHED, w->task);
}

/* ---- tests ------------------------------------------------------------------ */

/* Every step, one answer at a time, and the calls in their order. */
static void test_happy_path(void **state)
{
    (void)state;
    struct frow *w = add_row("T1", "guest", 0, "READY");
    struct runner_key k = key_of(w);
    runner_launch(R, &k);
    runner_launch(R, &k); /* a repeat while the row is driven: no second run */
    assert_int_equal(runner_active(R), 1);
    assert_string_equal(trace, "S:spec");

    s_answer(s_find(S_SPEC, "T1"));
    assert_string_equal(trace, "S:spec E:create");
    struct ecall *c = e_find(E_CREATE, w->name);
    /* launched by the pinned digest, labelled, limited, unprivileged */
    const cJSON *b = c->body;
    assert_string_equal(jstr(b, "Image"), DIGEST);
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(b, "Labels");
    assert_string_equal(jstr(lab, "org.bfia.managed"), "true");
    assert_string_equal(jstr(lab, "org.bfia.node"), ME);
    assert_string_equal(jstr(lab, "org.bfia.install"), INST);
    assert_string_equal(jstr(lab, "org.bfia.job"), "J1");
    assert_string_equal(jstr(lab, "org.bfia.task"), "T1");
    assert_string_equal(jstr(lab, "org.bfia.role"), "guest");
    assert_string_equal(jstr(lab, "org.bfia.role_index"), "0");
    assert_true(strlen(jstr(lab, "org.bfia.attest.jti")) > 0);
    const cJSON *hc = cJSON_GetObjectItemCaseSensitive(b, "HostConfig");
    assert_true(cJSON_GetObjectItemCaseSensitive(hc, "Memory")->valuedouble == 536870912.0);
    assert_true(cJSON_GetObjectItemCaseSensitive(hc, "NanoCpus")->valuedouble == 2e9);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(hc, "Privileged")));
    assert_string_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(hc, "CapDrop"), 0)->valuestring,
        "ALL");
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(b, "Env");
    assert_true(env_has(env, "system.task_id=T1", false));
    assert_true(env_has(env, "config.attest.token_file=" ATTEST_TOKEN_FILE, false));
    assert_true(env_has(env, "config.attest.token=ey", true));
    char tokdir[256];
    snprintf(tokdir, sizeof(tokdir), "%s", tokdir_of(b));
    assert_true(strncmp(tokdir, adir, strlen(adir)) == 0);

    e_create_ok(c, "cid-1");
    assert_string_equal(trace, "S:spec E:create E:inspect");
    assert_string_equal(e_find(E_INSPECT, NULL)->ref, "cid-1");
    e_inspect_ok(e_find(E_INSPECT, "cid-1"));
    /* the image is the pinned one: the launch token is written, the row moves */
    assert_string_equal(trace, "S:spec E:create E:inspect S:running");
    assert_true(file_exists(tokdir, "token.jwt"));
    assert_non_null(runner_token(R, &k));
    assert_int_equal(e_pending(E_WAIT), 0); /* nothing runs before the row says RUNNING */

    s_answer(s_find(S_RUNNING, "T1"));
    assert_string_equal(w->status, "RUNNING");
    assert_string_equal(w->cid, "cid-1");
    assert_true(strlen(w->jti) > 0);
    struct ecall *wt = e_find(E_WAIT, "cid-1");
    assert_string_equal(wt->opt, "next-exit");
    assert_int_equal(e_pending(E_START), 0); /* start only once the wait is armed */
    e_arm(wt);
    assert_int_equal(e_pending(E_START), 1);
    e_start_ok(e_find(E_START, "cid-1"));
    assert_int_equal(notified, 1);

    ctr_exit("cid-1", 0, false);
    e_inspect_ok(e_find(E_INSPECT, "cid-1"));
    struct ecall *lg = e_find(E_LOGS, "cid-1");
    assert_int_equal(lg->tail, cfg->docker_log_tail);
    e_logs_ok(lg, "step 1\nstep 2\n", 14);

    struct scall *f = s_find(S_FINISHED, "T1");
    assert_string_equal(f->status, "SUCCESS");
    assert_true(f->has_exit);
    assert_string_equal(f->exit_code, "0");
    assert_string_equal(f->reason, "");
    assert_false(f->oom);
    assert_string_equal(f->text, "step 1\nstep 2\n");
    /* revoked with the end: no token file, no token */
    assert_false(file_exists(tokdir, "token.jwt"));
    assert_null(runner_token(R, &k));
    assert_int_equal(e_pending(E_REMOVE), 0); /* removed only once the outcome is stored */

    s_answer(f);
    assert_string_equal(w->status, "SUCCESS");
    assert_string_equal(w->exit_code, "0");
    assert_int_equal(notified, 2);
    e_remove_ok(e_find(E_REMOVE, "cid-1"));
    assert_null(ctr_find("cid-1"));
    assert_int_equal(runner_active(R), 0);
    turn();
    assert_int_equal(runner_runs_held(R), 0);
    assert_string_equal(trace, "S:spec E:create E:inspect S:running E:wait E:start N:T1 "
                               "E:inspect E:logs S:finished N:T1 E:remove");
}

/* A non-zero exit and an OOM kill are FAILED with the reason and the code. */
static void test_exit_codes(void **state)
{
    (void)state;
    struct frow *w1 = add_row("T1", "guest", 0, "READY");
    struct frow *w2 = add_row("T2", "guest", 0, "READY");
    struct runner_key k1 = key_of(w1), k2 = key_of(w2);
    runner_launch(R, &k1);
    runner_launch(R, &k2);
    drive_started(w1, "cid-1");
    drive_started(w2, "cid-2");

    struct scall *f = drive_exit(w1, "cid-1", 3, false, "Traceback: boom\n");
    assert_string_equal(f->status, "FAILED");
    assert_string_equal(f->exit_code, "3");
    assert_string_equal(f->reason, "container exited with code 3");
    assert_false(f->oom);
    s_answer(f);
    assert_string_equal(w1->status, "FAILED");
    assert_string_equal(w1->error, "container exited with code 3");

    f = drive_exit(w2, "cid-2", 137, true, "");
    assert_string_equal(f->status, "FAILED");
    assert_string_equal(f->exit_code, "137");
    assert_true(f->oom);
    assert_non_null(strstr(f->reason, "out of memory"));
    assert_non_null(strstr(f->reason, "137"));
    s_answer(f);
    assert_string_equal(w2->status, "FAILED");

    e_remove_ok(e_find(E_REMOVE, "cid-1"));
    e_remove_ok(e_find(E_REMOVE, "cid-2"));
    turn();
    assert_int_equal(runner_runs_held(R), 0);
}

/* The engine refuses create: the reason is recorded, nothing starts, and
 * there is no container to remove.  A missing image names the digest. */
static void test_create_refused(void **state)
{
    (void)state;
    struct frow *w1 = add_row("T1", "guest", 0, "READY");
    struct frow *w2 = add_row("T2", "guest", 0, "READY");
    struct runner_key k1 = key_of(w1), k2 = key_of(w2);
    runner_launch(R, &k1);
    runner_launch(R, &k2);
    s_answer(s_find(S_SPEC, "T1"));
    s_answer(s_find(S_SPEC, "T2"));

    e_answer(e_find(E_CREATE, w1->name), GW_EDOCKER, "no space left on device", NULL, NULL, 0);
    struct scall *f = s_find(S_FINISHED, "T1");
    assert_string_equal(f->status, "FAILED");
    assert_false(f->has_exit);
    assert_string_equal(f->reason, "engine refused to create the container: no space left on device");
    s_answer(f);
    assert_string_equal(w1->status, "FAILED");

    e_answer(e_find(E_CREATE, w2->name), GW_ENOTFOUND, "No such image: " DIGEST, NULL, NULL, 0);
    f = s_find(S_FINISHED, "T2");
    assert_non_null(strstr(f->reason, "image " DIGEST " is not on the engine"));
    s_answer(f);

    assert_int_equal(e_pending(E_START) + e_pending(E_WAIT) + e_pending(E_INSPECT), 0);
    assert_int_equal(s_pending(S_RUNNING), 0);
    assert_null(strstr(trace, "E:start"));
    assert_null(strstr(trace, "E:remove")); /* nothing was created */
    assert_int_equal(runner_active(R), 0);
    turn();
    assert_int_equal(runner_runs_held(R), 0);
}

/* The engine refuses start once the wait is armed: the wait is cancelled,
 * the refusal recorded, the container removed. */
static void test_start_refused(void **state)
{
    (void)state;
    struct frow *w = add_row("T1", "guest", 0, "READY");
    struct runner_key k = key_of(w);
    runner_launch(R, &k);
    s_answer(s_find(S_SPEC, "T1"));
    e_create_ok(e_find(E_CREATE, w->name), "cid-1");
    e_inspect_ok(e_find(E_INSPECT, "cid-1"));
    s_answer(s_find(S_RUNNING, "T1"));
    struct ecall *wt = e_find(E_WAIT, "cid-1");
    e_arm(wt);
    e_answer(e_find(E_START, "cid-1"), GW_EDOCKER, "exec format error", NULL, NULL, 0);
    assert_true(wt->cancelled);
    struct scall *f = s_find(S_FINISHED, "T1");
    assert_string_equal(f->status, "FAILED");
    assert_string_equal(f->reason, "engine refused to start the container: exec format error");
    s_answer(f);
    assert_string_equal(w->status, "FAILED");
    e_remove_ok(e_find(E_REMOVE, "cid-1"));
    assert_int_equal(runner_active(R), 0);
    turn();
    assert_int_equal(runner_runs_held(R), 0);
}

/* The container does not run the pinned image (a tag moved): FAILED, never
 * started, never RUNNING, and the container is removed. */
static void test_image_mismatch(void **state)
{
    (void)state;
    struct frow *w = add_row("T1", "guest", 0, "READY");
    struct runner_key k = key_of(w);
    runner_launch(R, &k);
    s_answer(s_find(S_SPEC, "T1"));
    e_create_ok(e_find(E_CREATE, w->name), "cid-1");
    snprintf(ctr_find("cid-1")->image, sizeof(ctr_find("cid-1")->image), "%s", OTHER);
    e_inspect_ok(e_find(E_INSPECT, "cid-1"));

    struct scall *f = s_find(S_FINISHED, "T1");
    assert_string_equal(f->status, "FAILED");
    assert_string_equal(f->reason, "image check failed: container runs " OTHER
                                   ", the provider pins " DIGEST);
    assert_int_equal(s_pending(S_RUNNING), 0);
    s_answer(f);
    e_remove_ok(e_find(E_REMOVE, "cid-1"));
    assert_null(strstr(trace, "E:start"));
    assert_null(strstr(trace, "E:wait"));
    assert_string_equal(w->status, "FAILED");
    turn();
    assert_int_equal(runner_runs_held(R), 0);
}

/* A stop while create is in flight: the stop's write made the row FAILED
 * first, so the CAS to RUNNING moves nothing and the container is removed
 * without ever being started. */
static void test_stop_during_create(void **state)
{
    (void)state;
    struct frow *w = add_row("T1", "guest", 0, "READY");
    struct runner_key k = key_of(w);
    runner_launch(R, &k);
    s_answer(s_find(S_SPEC, "T1"));
    struct ecall *c = e_find(E_CREATE, w->name);
    char tokdir[256];
    snprintf(tokdir, sizeof(tokdir), "%s", tokdir_of(c->body));

    /* the partner side's job/stop: row FAILED, then runner_kill */
    snprintf(w->status, sizeof(w->status), "FAILED");
    runner_kill(R, &k, NULL);
    assert_int_equal(e_pending(E_KILL), 0); /* no container to kill yet */

    e_create_ok(c, "cid-1");
    e_inspect_ok(e_find(E_INSPECT, "cid-1"));
    struct scall *run = s_find(S_RUNNING, "T1");
    s_answer(run); /* moved 0 */
    assert_string_equal(w->status, "FAILED");
    assert_int_equal(e_pending(E_WAIT), 0);
    e_remove_ok(e_find(E_REMOVE, "cid-1"));
    assert_null(strstr(trace, "E:start"));
    assert_null(strstr(trace, "E:wait"));
    assert_int_equal(runner_active(R), 0);
    turn();
    assert_int_equal(runner_runs_held(R), 0);
    assert_string_equal(trace, "S:spec E:create E:inspect S:running E:remove");
    /* the launch token minted for it went too (the container never ran) */
    assert_int_equal(count_named(adir, "token.jwt"), 0);
    assert_false(file_exists(tokdir, ""));
}

/* A stop of a running container: SIGKILL to its id; its exit is then
 * recorded on the row the stop already made FAILED. */
static void test_stop_while_running(void **state)
{
    (void)state;
    struct frow *w = add_row("T1", "guest", 0, "READY");
    struct runner_key k = key_of(w);
    runner_launch(R, &k);
    drive_started(w, "cid-1");
    snprintf(w->status, sizeof(w->status), "FAILED");
    runner_kill(R, &k, "cid-1");
    struct ecall *kl = e_find(E_KILL, "cid-1");
    assert_string_equal(kl->opt, "SIGKILL");
    e_answer(kl, 0, NULL, NULL, NULL, 0);
    struct scall *f = drive_exit(w, "cid-1", 137, false, "killed\n");
    assert_string_equal(f->exit_code, "137");
    s_answer(f);
    assert_string_equal(w->status, "FAILED"); /* terminal rows never move */
    assert_string_equal(w->exit_code, "137");
    e_remove_ok(e_find(E_REMOVE, "cid-1"));
    turn();
    assert_int_equal(runner_runs_held(R), 0);
}

/* The final write fails: the container is kept (no remove) for reconcile,
 * and the run still ends and is freed. */
static void test_final_write_refused(void **state)
{
    (void)state;
    struct frow *w = add_row("T1", "guest", 0, "READY");
    struct runner_key k = key_of(w);
    runner_launch(R, &k);
    drive_started(w, "cid-1");
    struct scall *f = drive_exit(w, "cid-1", 0, false, "ok\n");
    store_fail[S_FINISHED] = GW_EDB;
    s_answer(f);
    assert_string_equal(w->status, "RUNNING");
    assert_int_equal(e_pending(E_REMOVE), 0);
    assert_null(strstr(trace, "E:remove"));
    assert_non_null(ctr_find("cid-1"));
    assert_int_equal(runner_active(R), 0);
    turn();
    assert_int_equal(runner_runs_held(R), 0);
}

/* docker.launch_slots = 2: five launches, two in flight, the rest in FIFO
 * order as slots free (a slot is held from the spec read to the start). */
static void test_launch_slots(void **state)
{
    (void)state;
    cfg->docker_launch_slots = 2;
    struct frow *w[5];
    char task[16];
    for (int i = 0; i < 5; i++) {
        snprintf(task, sizeof(task), "T%d", i + 1);
        w[i] = add_row(task, "guest", 0, "READY");
    }
    for (int i = 0; i < 5; i++) {
        struct runner_key k = key_of(w[i]);
        runner_launch(R, &k);
    }
    assert_int_equal(runner_active(R), 5);
    assert_int_equal(s_pending(S_SPEC), 2);
    s_answer(s_find(S_SPEC, "T1"));
    s_answer(s_find(S_SPEC, "T2"));
    assert_int_equal(e_pending(E_CREATE), 2);
    assert_int_equal(s_pending(S_SPEC), 0);

    /* T2 starts first: T3 takes its slot */
    e_create_ok(e_find(E_CREATE, w[1]->name), "c2");
    e_inspect_ok(e_find(E_INSPECT, "c2"));
    s_answer(s_find(S_RUNNING, "T2"));
    e_arm(e_find(E_WAIT, "c2"));
    assert_int_equal(s_pending(S_SPEC), 0); /* not freed before the start answered */
    e_start_ok(e_find(E_START, "c2"));
    assert_int_equal(s_pending(S_SPEC), 1);
    s_answer(s_find(S_SPEC, "T3"));
    assert_int_equal(e_pending(E_CREATE), 2); /* T1 and T3 */

    /* T1's create fails: once its outcome is stored its end frees its slot,
     * for T4 (not T5) */
    e_answer(e_find(E_CREATE, w[0]->name), GW_EDOCKER, "engine error", NULL, NULL, 0);
    assert_int_equal(s_pending(S_SPEC), 0);
    s_answer(s_find(S_FINISHED, "T1"));
    assert_int_equal(s_pending(S_SPEC), 1); /* only T4: two in flight */
    assert_non_null(s_find(S_SPEC, "T4"));
    s_answer(s_find(S_SPEC, "T4"));
    assert_int_equal(e_pending(E_CREATE), 2); /* T3 and T4 */

    /* T3 starts: T5, last */
    e_create_ok(e_find(E_CREATE, w[2]->name), "c3");
    e_inspect_ok(e_find(E_INSPECT, "c3"));
    s_answer(s_find(S_RUNNING, "T3"));
    e_arm(e_find(E_WAIT, "c3"));
    e_start_ok(e_find(E_START, "c3"));
    s_answer(s_find(S_SPEC, "T5"));
    assert_int_equal(e_pending(E_CREATE), 2);

    /* the spec reads (each launch's first call) went out in launch order */
    int order[5], n = 0;
    for (int i = 0; i < Sn; i++)
        if (Sq[i].kind == S_SPEC)
            order[n++] = Sq[i].task[1] - '0';
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(order[i], i + 1);
    turn();
}

/* The stored log tail: at most docker.log_tail_bytes of the end of the
 * log, valid UTF-8: a Chinese line survives whole; the multibyte character
 * the cut went through becomes U+FFFD (one per orphaned byte). */
static void test_log_tail_utf8(void **state)
{
    (void)state;
    cfg->docker_log_tail_bytes = 256;
    struct frow *w = add_row("T1", "guest", 0, "READY");
    struct runner_key k = key_of(w);
    runner_launch(R, &k);
    drive_started(w, "cid-1");

    /* 100 x '中' (3 bytes each), then a Chinese line; the cut lands one byte
     * into a '中', leaving two continuation bytes */
    const char *line = "\n任务完成：交集 1024 行\n";
    char log[1024];
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        memcpy(log + n, "中", 3);
        n += 3;
    }
    size_t ll = strlen(line);
    memcpy(log + n, line, ll);
    n += ll;
    log[n] = '\0';
    size_t cut = n - 256;
    /* a '中' starts every 3 bytes: move the start so the cut is 1 byte in */
    size_t shift = (cut % 3 == 1) ? 0 : (cut % 3 == 0 ? 2 : 1);
    char *text = log + shift;
    size_t tn = n - shift;
    assert_int_equal((tn - 256 + shift) % 3, 1);

    ctr_exit("cid-1", 0, false);
    e_inspect_ok(e_find(E_INSPECT, "cid-1"));
    e_logs_ok(e_find(E_LOGS, "cid-1"), text, tn);
    struct scall *f = s_find(S_FINISHED, "T1");
    const char *kept = text + tn - 256;
    /* two replacement characters, then the kept bytes from the next '中' */
    char want[1024];
    snprintf(want, sizeof(want), "\xEF\xBF\xBD\xEF\xBF\xBD%s", kept + 2);
    assert_string_equal(f->text, want);
    assert_non_null(strstr(f->text, "任务完成：交集 1024 行\n"));
    assert_true(strlen(f->text) <= 256 + 4);
    s_answer(f);
    assert_string_equal(w->logs, want);
    e_remove_ok(e_find(E_REMOVE, "cid-1"));
    turn();
    assert_int_equal(runner_runs_held(R), 0);
}

/* The container exits before the start call has answered (a very short
 * task): the run ends while the start is in flight, which holds it. */
static void test_exit_before_start_answer(void **state)
{
    (void)state;
    struct frow *w = add_row("T1", "guest", 0, "READY");
    struct runner_key k = key_of(w);
    runner_launch(R, &k);
    s_answer(s_find(S_SPEC, "T1"));
    e_create_ok(e_find(E_CREATE, w->name), "cid-1");
    e_inspect_ok(e_find(E_INSPECT, "cid-1"));
    s_answer(s_find(S_RUNNING, "T1"));
    e_arm(e_find(E_WAIT, "cid-1"));
    struct ecall *st = e_find(E_START, "cid-1");
    snprintf(ctr_find("cid-1")->state, sizeof(ctr_find("cid-1")->state), "running");
    struct scall *f = drive_exit(w, "cid-1", 0, false, "done\n");
    s_answer(f);
    e_remove_ok(e_find(E_REMOVE, "cid-1"));
    assert_int_equal(runner_active(R), 0);
    turn();
    assert_int_equal(runner_runs_held(R), 1); /* the start still holds it */
    e_answer(st, 0, NULL, NULL, NULL, 0);
    turn();
    assert_int_equal(runner_runs_held(R), 0);
    assert_string_equal(w->status, "SUCCESS");
}

/* The start call fails (a client-side timeout, say) after the container
 * ran and its exit was recorded: the exit code decides, the outcome stands
 * and is written once. */
static void test_start_error_after_exit(void **state)
{
    (void)state;
    struct frow *w = add_row("T1", "guest", 0, "READY");
    struct runner_key k = key_of(w);
    runner_launch(R, &k);
    s_answer(s_find(S_SPEC, "T1"));
    e_create_ok(e_find(E_CREATE, w->name), "cid-1");
    e_inspect_ok(e_find(E_INSPECT, "cid-1"));
    s_answer(s_find(S_RUNNING, "T1"));
    e_arm(e_find(E_WAIT, "cid-1"));
    struct ecall *st = e_find(E_START, "cid-1");
    snprintf(ctr_find("cid-1")->state, sizeof(ctr_find("cid-1")->state), "running");
    struct scall *f = drive_exit(w, "cid-1", 0, false, "done\n");
    e_answer(st, GW_ETIMEOUT, "timed out", NULL, NULL, 0); /* before the outcome is stored */
    s_answer(f);
    e_remove_ok(e_find(E_REMOVE, "cid-1"));
    turn();
    assert_int_equal(s_pending(S_FINISHED) + e_pending(E_REMOVE), 0);
    assert_null(strstr(strstr(trace, "S:finished") + 1, "S:finished"));
    assert_string_equal(w->status, "SUCCESS");
    assert_int_equal(runner_runs_held(R), 0);
}

/* Reconcile after a restart: a RUNNING row whose container runs is adopted
 * (its wait re-armed, its token refreshed), a RUNNING row whose container
 * vanished is recorded lost, a labelled container without a row is removed
 * and recorded, a READY row without a container is launched, and a
 * finished row's leftover container is removed. */
static int rec_calls, rec_err;
static char rec_msg[256];

static void on_reconciled(void *arg, int err, const char *msg)
{
    (void)arg;
    rec_calls++;
    rec_err = err;
    snprintf(rec_msg, sizeof(rec_msg), "%s", msg);
}

static void test_reconcile(void **state)
{
    (void)state;
    rec_calls = 0;
    struct frow *adopt = add_row("T1", "guest", 0, "RUNNING");
    struct frow *lost = add_row("T2", "guest", 0, "RUNNING");
    struct frow *ready = add_row("T3", "guest", 0, "READY");
    struct frow *done = add_row("T4", "guest", 0, "SUCCESS");
    snprintf(adopt->cid, sizeof(adopt->cid), "cid-a");
    ctr_of_row(adopt, "cid-a", "running");
    make_tokdir(adopt->name);
    ctr_of_row(done, "cid-d", "exited");
    struct frow ghost = {.job = "J0", .task = "T9", .role = "host", .idx = 1};
    char *gn = runner_container_name("host", ME, "T9", 0);
    snprintf(ghost.name, sizeof(ghost.name), "%s", gn);
    free(gn);
    ctr_of_row(&ghost, "cid-o", "exited");
    /* another node's container on the same engine is none of ours */
    struct ctr *foreign = ctr_add("cid-x", "other-node-task", DIGEST, "running", NULL);
    cJSON_AddStringToObject(foreign->labels, "org.bfia.node", "JG0100001100000071");
    /* this node id's containers that are not this installation's: one of
     * an older version (no installation label) and another installation's
     * exited one; neither is removed nor recorded */
    struct frow old = {.job = "J0", .task = "T8", .role = "host", .idx = 0};
    char *on = runner_container_name("host", ME, "T8", 0);
    snprintf(old.name, sizeof(old.name), "%s", on);
    free(on);
    struct ctr *unl = ctr_of_row(&old, "cid-u", "exited");
    cJSON_DeleteItemFromObject(unl->labels, "org.bfia.install");
    struct frow other = {.job = "J0", .task = "T7", .role = "host", .idx = 0};
    on = runner_container_name("host", ME, "T7", 0);
    snprintf(other.name, sizeof(other.name), "%s", on);
    free(on);
    struct ctr *oth = ctr_of_row(&other, "cid-y", "exited");
    cJSON_ReplaceItemInObject(oth->labels, "org.bfia.install", cJSON_CreateString("fedcba9876543210"));

    runner_reconcile(R, on_reconciled, NULL);
    struct ecall *ls = e_find(E_LIST, NULL);
    assert_string_equal(ls->ref, "org.bfia.node=" ME);
    e_list_ok(ls);
    s_answer(s_find(S_CONTAINERS, NULL));

    /* adopted: the wait on the running container, not-running this time,
     * and a fresh token for it */
    struct ecall *wt = e_find(E_WAIT, "cid-a");
    assert_string_equal(wt->opt, "not-running");
    assert_int_equal(s_pending(S_TOKEN), 1);
    /* lost, orphan and leftover */
    struct scall *l = s_find(S_LOST, NULL);
    assert_string_equal(l->text, "[{\"job_id\":\"J1\",\"task_id\":\"T2\",\"role\":\"guest\","
                                 "\"role_index\":0}]");
    assert_int_equal(e_pending(E_REMOVE), 2);
    assert_non_null(e_find(E_REMOVE, "cid-o"));
    assert_non_null(e_find(E_REMOVE, "cid-d"));
    assert_null(strstr(trace, "cid-x"));
    struct scall *o = s_find(S_ORPHANS, NULL);
    assert_string_equal(o->text, "[\"host-" ME "-T9-0\"]");
    /* the READY row without a container is launched */
    assert_non_null(s_find(S_SPEC, ready->task));
    assert_int_equal(runner_active(R), 2);

    assert_int_equal(rec_calls, 0); /* done once every step answered */
    s_answer(l);
    assert_string_equal(lost->status, "FAILED");
    assert_int_equal(notified, 1); /* the partner side hears of the lost row */
    s_answer(o);
    assert_string_equal(orphans_recorded, "host-" ME "-T9-0");
    e_remove_ok(e_find(E_REMOVE, "cid-o"));
    assert_int_equal(rec_calls, 0);
    e_remove_ok(e_find(E_REMOVE, "cid-d"));
    assert_int_equal(rec_calls, 1);
    assert_int_equal(rec_err, 0);
    assert_null(ctr_find("cid-o"));
    assert_null(ctr_find("cid-d"));
    assert_non_null(ctr_find("cid-x"));
    assert_non_null(ctr_find("cid-u"));
    assert_non_null(ctr_find("cid-y"));
    assert_null(strstr(trace, "cid-u"));
    assert_null(strstr(trace, "cid-y"));

    /* the token refresh of the adopted container is recorded */
    struct scall *tk = s_find(S_TOKEN, "T1");
    assert_string_equal(tk->cid, "cid-a");
    s_answer(tk);
    assert_string_equal(adopt->jti, tk->jti);
    assert_non_null(runner_token(R, &(struct runner_key){"J1", "T1", "guest", 0}));

    /* the adopted container ends: its real exit code is recorded */
    struct scall *f = drive_exit(adopt, "cid-a", 0, false, "resumed\n");
    assert_string_equal(f->status, "SUCCESS");
    s_answer(f);
    e_remove_ok(e_find(E_REMOVE, "cid-a"));
    assert_string_equal(adopt->status, "SUCCESS");
    turn();
    assert_int_equal(runner_runs_held(R), 1); /* T3, still launching */
    assert_int_equal(rec_calls, 1);
}

/* Another installation of this node id has a container running on the
 * engine: reconciliation stops with GW_ECONFLICT naming it, before the
 * store is asked anything, and touches no container. */
static void test_reconcile_other_installation(void **state)
{
    (void)state;
    rec_calls = 0;
    struct frow *mine = add_row("T1", "guest", 0, "RUNNING");
    snprintf(mine->cid, sizeof(mine->cid), "cid-a");
    ctr_of_row(mine, "cid-a", "running");
    struct frow other = {.job = "J0", .task = "T7", .role = "host", .idx = 0};
    char *on = runner_container_name("host", ME, "T7", 0);
    snprintf(other.name, sizeof(other.name), "%s", on);
    free(on);
    struct ctr *oth = ctr_of_row(&other, "cid-y", "running");
    cJSON_ReplaceItemInObject(oth->labels, "org.bfia.install", cJSON_CreateString("fedcba9876543210"));

    runner_reconcile(R, on_reconciled, NULL);
    e_list_ok(e_find(E_LIST, NULL));
    turn();
    assert_int_equal(rec_calls, 1);
    assert_int_equal(rec_err, GW_ECONFLICT);
    assert_non_null(strstr(rec_msg, "install id fedcba9876543210"));
    assert_non_null(strstr(rec_msg, "host-" ME "-T7-0"));
    assert_int_equal(s_pending(S_CONTAINERS), 0);
    assert_int_equal(e_pending(E_REMOVE) + e_pending(E_WAIT), 0);
    assert_string_equal(ctr_find("cid-y")->state, "running");
    assert_string_equal(mine->status, "RUNNING");
}

/* A token refresh whose write is in flight when the run ends: its
 * completion arrives after the end (and after the reaper had its chance). */
static struct frow *adopt_running(const char *id)
{
    struct frow *w = add_row("T1", "guest", 0, "RUNNING");
    snprintf(w->cid, sizeof(w->cid), "%s", id);
    ctr_of_row(w, id, "running");
    make_tokdir(w->name);
    rec_calls = 0;
    runner_reconcile(R, on_reconciled, NULL);
    e_list_ok(e_find(E_LIST, NULL));
    s_answer(s_find(S_CONTAINERS, NULL));
    assert_int_equal(rec_calls, 1);
    assert_int_equal(s_pending(S_TOKEN), 1);
    return w;
}

static void test_refresh_after_end(void **state)
{
    (void)state;
    struct frow *w = adopt_running("cid-a");
    struct scall *tk = s_find(S_TOKEN, "T1");
    struct scall *f = drive_exit(w, "cid-a", 0, false, "");
    s_answer(f);
    e_remove_ok(e_find(E_REMOVE, "cid-a"));
    assert_int_equal(runner_active(R), 0);
    turn();
    assert_int_equal(runner_runs_held(R), 1); /* the refresh write holds it */
    s_answer(tk); /* the row is SUCCESS now: nothing recorded */
    assert_int_equal(runner_runs_held(R), 0); /* released: freed by the reaper */
    turn();
    assert_int_equal(runner_runs_held(R), 0);
    assert_string_equal(w->status, "SUCCESS");
}

/* The refresh write completes between the end of the container and the
 * final write's answer: the revoked token stays revoked (no token, no
 * token file written back). */
static void test_refresh_during_final_write(void **state)
{
    (void)state;
    struct frow *w = adopt_running("cid-a");
    struct runner_key k = key_of(w);
    struct scall *tk = s_find(S_TOKEN, "T1");
    struct scall *f = drive_exit(w, "cid-a", 0, false, "");
    assert_int_equal(count_named(adir, "token.jwt"), 0);
    s_answer(tk);
    assert_null(runner_token(R, &k));
    assert_int_equal(count_named(adir, "token.jwt"), 0);
    s_answer(f);
    e_remove_ok(e_find(E_REMOVE, "cid-a"));
    turn();
    assert_int_equal(runner_runs_held(R), 0);
    assert_int_equal(count_named(adir, "token.jwt"), 0);
}

/* runner_free while calls of every kind are in flight: everything the
 * runner allocated is freed (LeakSanitizer), the waits are cancelled. */
static void test_free_in_flight(void **state)
{
    (void)state;
    cfg->docker_launch_slots = 3;
    struct frow *w[5];
    for (int i = 0; i < 5; i++) {
        char task[16];
        snprintf(task, sizeof(task), "T%d", i + 1);
        w[i] = add_row(task, "guest", 0, "READY");
        struct runner_key k = key_of(w[i]);
        runner_launch(R, &k);
    }
    /* T1 running with a wait, T2 with its create in flight, T3 reading its
     * spec, T4 and T5 queued */
    drive_started(w[0], "cid-1");
    s_answer(s_find(S_SPEC, "T2"));
    assert_int_equal(e_pending(E_CREATE), 1);
    struct ecall *wt = e_find(E_WAIT, "cid-1");
    assert_int_equal(runner_runs_held(R), 5);
    runner_free(R);
    R = NULL;
    assert_true(wt->cancelled);
    /* teardown's runner_free(NULL) is a no-op; the fakes drop their calls */
}

int main(void)
{
    json_init();
    int devnull = -1;
    if (!getenv("TEST_LOG")) {
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        log_set_fd(devnull);
    }
    snprintf(keydir, sizeof(keydir), "/tmp/test_runner_key.XXXXXX");
    if (!mkdtemp(keydir))
        return 1;
    char key[128];
    snprintf(key, sizeof(key), "%s/node.pem", keydir);
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    A = attest_open(ME, key, &eb);
    if (!A) {
        fprintf(stderr, "attest_open: %s\n", eb.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_happy_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_during_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_while_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_final_write_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launch_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_tail_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_before_start_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_error_after_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_other_installation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_after_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_during_final_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    attest_free(A);
    rm_rf(keydir);
    if (devnull >= 0)
        close(devnull);
    return rc;
}
