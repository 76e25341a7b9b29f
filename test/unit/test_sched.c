/*
 * test_sched.c - the scheduler (scheduler/sched.c) driven through its two
 * interfaces by fakes: an in-memory store whose statements complete only
 * when the test says so, and peers whose answers the test delivers in any
 * order.  This is how reply-ordering races are reproduced deterministically
 * (the integration test t_races does the same with real gateways and
 * scripted partners).  Under ASan a use after free aborts the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/cfg.h"
#include "gateway/json.h"
#include "scheduler/dag.h"
#include "scheduler/sched.h"

#define ME "JG0100001100000010"
#define X "JG0100001100000071"
#define Y "JG0100001100000072"

/* ---- the fake store: party rows in memory, completions on demand ---------- */

struct row {
    char task_id[32], name[32], node[32], deps[64];
    enum task_state st;
    bool sent;
};

struct fake {
    enum job_state job;
    enum job_outcome outcome;
    bool poll_mode;
    char parties[128];
    struct row rows[8];
    int nrows;
    /* statements waiting for the test to complete them */
    struct pending {
        void (*run)(struct fake *f, struct pending *p);
        void *cb, *arg;
        char a[64], b[64], c[64];
        int to;
        int outcome;
    } q[256];
    int nq;
    int job_sets, task_sets, claims;
    /* peer calls waiting for an answer */
    struct call {
        char node[32], path[64];
        peer_cb cb;
        void *arg;
        bool answered;
    } calls[256];
    int ncalls;
    enum peer_profile profile_y;
};

static struct fake F;

static struct pending *enqueue(void (*run)(struct fake *, struct pending *), void *cb, void *arg)
{
    assert_true(F.nq < 256);
    struct pending *p = &F.q[F.nq++];
    memset(p, 0, sizeof(*p));
    p->run = run;
    p->cb = cb;
    p->arg = arg;
    return p;
}

/* Complete the statements queued now, oldest first; the ones their
 * callbacks queue wait for the next call.  Returns how many completed. */
static int drain_store(void)
{
    int n = F.nq;
    struct pending now[256];
    memcpy(now, F.q, (size_t)n * sizeof(now[0]));
    memmove(F.q, F.q + n, (size_t)(F.nq - n) * sizeof(F.q[0]));
    F.nq -= n;
    for (int i = 0; i < n; i++)
        now[i].run(&F, &now[i]);
    return n;
}

static enum task_state agg(const char *name)
{
    /* bfia-control-layer.md §3.3 (the store's SQL does this in production) */
    bool seen[TASK_STATE_COUNT] = {false};
    int n = 0;
    enum task_state first = TASK_STATE_PENDING;
    for (int i = 0; i < F.nrows; i++)
        if (strcmp(F.rows[i].name, name) == 0) {
            if (!n)
                first = F.rows[i].st;
            seen[F.rows[i].st] = true;
            n++;
        }
    int distinct = 0;
    for (int s = 0; s < TASK_STATE_COUNT; s++)
        distinct += seen[s];
    if (seen[TASK_STATE_FAILED])
        return TASK_STATE_FAILED;
    if (distinct == 1)
        return first;
    if (seen[TASK_STATE_RUNNING])
        return TASK_STATE_RUNNING;
    if (seen[TASK_STATE_READY])
        return TASK_STATE_READY;
    if (seen[TASK_STATE_PENDING])
        return TASK_STATE_PENDING;
    return TASK_STATE_SUCCESS;
}

static void run_load(struct fake *f, struct pending *p)
{
    struct sjob_view v = {.found = true, .status = f->job, .poll_mode = f->poll_mode};
    cJSON *parties = cJSON_Parse(f->parties);
    v.parties = parties;
    struct sjob_task_view tv[8];
    cJSON *deps[8] = {NULL};
    int n = 0;
    for (int i = 0; i < f->nrows; i++) {
        int k;
        for (k = 0; k < n; k++)
            if (strcmp(tv[k].name, f->rows[i].name) == 0)
                break;
        if (k == n) {
            memset(&tv[n], 0, sizeof(tv[n]));
            tv[n].name = f->rows[i].name;
            tv[n].task_id = f->rows[i].task_id;
            deps[n] = cJSON_Parse(f->rows[i].deps);
            tv[n].deps = deps[n];
            tv[n].status = agg(f->rows[i].name);
            n++;
        }
        if (f->rows[i].st == TASK_STATE_READY && !f->rows[i].sent)
            tv[k].sendable = true;
        if (f->rows[i].st == TASK_STATE_FAILED && !tv[k].fail_node)
            tv[k].fail_node = f->rows[i].node;
    }
    v.ntasks = n;
    v.tasks = tv;
    ((sjob_view_cb)p->cb)(p->arg, &v);
    for (int i = 0; i < n; i++)
        cJSON_Delete(deps[i]);
    cJSON_Delete(parties);
}

static int f_load(void *ctx, const char *job_id, long long t, sjob_view_cb cb, void *arg)
{
    (void)ctx;
    (void)job_id;
    (void)t;
    enqueue(run_load, (void *)cb, arg);
    return 0;
}

static void run_job_set(struct fake *f, struct pending *p)
{
    struct store_change r = {.old = job_state_name(f->job), .parties = f->parties};
    if (job_step_ok(f->job, (enum job_state)p->to)) {
        f->job = (enum job_state)p->to;
        f->outcome = (enum job_outcome)p->outcome;
        r.changed = true;
        if (f->job == JOB_STATE_FINISHED || f->job == JOB_STATE_REJECTED)
            for (int i = 0; i < f->nrows; i++)
                if (!task_state_is_terminal(f->rows[i].st))
                    f->rows[i].st = TASK_STATE_FAILED;
    }
    ((store_change_cb)p->cb)(p->arg, &r);
}

static int f_job_set(void *ctx, const struct sjob_change *c, store_change_cb cb, void *arg)
{
    (void)ctx;
    F.job_sets++;
    struct pending *p = enqueue(run_job_set, (void *)cb, arg);
    p->to = c->to;
    p->outcome = c->outcome;
    return 0;
}

static void run_change_ok(struct fake *f, struct pending *p)
{
    (void)f;
    struct store_change r = {.changed = false};
    if (p->cb)
        ((store_change_cb)p->cb)(p->arg, &r);
}

static int f_job_wait(void *ctx, const char *job_id, const char *reason, store_change_cb cb,
                      void *arg)
{
    (void)ctx;
    (void)job_id;
    (void)reason;
    enqueue(run_change_ok, (void *)cb, arg);
    return 0;
}

static struct row *row_of(const char *task_id, const char *node)
{
    for (int i = 0; i < F.nrows; i++)
        if (strcmp(F.rows[i].task_id, task_id) == 0 && strcmp(F.rows[i].node, node) == 0)
            return &F.rows[i];
    return NULL;
}

static void run_task_set(struct fake *f, struct pending *p)
{
    (void)f;
    struct row *rw = row_of(p->a, p->b);
    struct store_change r = {.job_id = "J1"};
    if (rw) {
        r.old = task_state_name(rw->st);
        if (task_step_ok(rw->st, (enum task_state)p->to)) {
            rw->st = (enum task_state)p->to;
            r.changed = true;
        }
    }
    ((store_change_cb)p->cb)(p->arg, &r);
}

static int f_task_set(void *ctx, const struct stask_change *c, store_change_cb cb, void *arg)
{
    (void)ctx;
    F.task_sets++;
    struct pending *p = enqueue(run_task_set, (void *)cb, arg);
    snprintf(p->a, sizeof(p->a), "%s", c->task_id);
    snprintf(p->b, sizeof(p->b), "%s", c->node);
    p->to = c->to;
    return 0;
}

static int f_task_note(void *ctx, const char *job_id, const char *task_id, const char *node,
                       const char *wait_reason, bool unclaim, int stale_s, store_change_cb cb,
                       void *arg)
{
    (void)ctx;
    (void)job_id;
    (void)wait_reason;
    (void)stale_s;
    struct row *rw = row_of(task_id, node);
    if (rw && unclaim && rw->st == TASK_STATE_READY)
        rw->sent = false;
    enqueue(run_change_ok, (void *)cb, arg);
    return 0;
}

static void run_claim(struct fake *f, struct pending *p)
{
    const char *v[8];
    int n = 0;
    for (int i = 0; i < f->nrows; i++)
        if (strcmp(f->rows[i].task_id, p->a) == 0 && f->rows[i].st == TASK_STATE_READY &&
            !f->rows[i].sent) {
            f->rows[i].sent = true;
            v[n++] = f->rows[i].node;
        }
    struct db_rows r = {.n = n, .cols = 1, .v = v};
    ((db_rows_cb)p->cb)(p->arg, &r);
}

static int f_claim(void *ctx, const char *job_id, const char *task_id, db_rows_cb cb, void *arg)
{
    (void)ctx;
    (void)job_id;
    F.claims++;
    struct pending *p = enqueue(run_claim, (void *)cb, arg);
    snprintf(p->a, sizeof(p->a), "%s", task_id);
    return 0;
}

static void run_no_rows(struct fake *f, struct pending *p)
{
    (void)f;
    struct db_rows r = {.n = 0, .cols = 1, .v = NULL};
    ((db_rows_cb)p->cb)(p->arg, &r);
}

static int f_rows_none(void *ctx, const char *job_id, int stale_s, db_rows_cb cb, void *arg)
{
    (void)ctx;
    (void)job_id;
    (void)stale_s;
    enqueue(run_no_rows, (void *)cb, arg);
    return 0;
}

static int f_live(void *ctx, db_rows_cb cb, void *arg)
{
    (void)ctx;
    enqueue(run_no_rows, (void *)cb, arg);
    return 0;
}

static int f_stops(void *ctx, int window_s, int limit, db_rows_cb cb, void *arg)
{
    (void)ctx;
    (void)window_s;
    (void)limit;
    enqueue(run_no_rows, (void *)cb, arg);
    return 0;
}

static int f_stop_acked(void *ctx, const char *job_id, const char *node, store_change_cb cb,
                        void *arg)
{
    (void)ctx;
    (void)job_id;
    (void)node;
    enqueue(run_change_ok, (void *)cb, arg);
    return 0;
}

static const struct sched_store_ops fake_store = {
    .load = f_load,
    .job_set = f_job_set,
    .job_wait = f_job_wait,
    .task_set = f_task_set,
    .task_note = f_task_note,
    .claim = f_claim,
    .poll_targets = f_rows_none,
    .live = f_live,
    .stops_pending = f_stops,
    .stop_acked = f_stop_acked,
};

/* ---- fake peers -------------------------------------------------------- */

static int p_call(void *ctx, const char *node, const char *method, const char *path,
                  const cJSON *body, int retries, peer_cb cb, void *arg)
{
    (void)ctx;
    (void)method;
    (void)body;
    (void)retries;
    assert_true(F.ncalls < 256);
    struct call *c = &F.calls[F.ncalls++];
    snprintf(c->node, sizeof(c->node), "%s", node);
    snprintf(c->path, sizeof(c->path), "%s", path);
    c->cb = cb;
    c->arg = arg;
    c->answered = false;
    return 0;
}

static enum peer_profile p_profile(void *ctx, const char *node)
{
    (void)ctx;
    return strcmp(node, Y) == 0 ? F.profile_y : PEER_STANDARD;
}

static bool p_routable(void *ctx, const char *node)
{
    (void)ctx;
    (void)node;
    return true;
}

static const struct sched_peer_ops fake_peers = {
    .call = p_call, .profile = p_profile, .routable = p_routable};

/* Answer the oldest unanswered call to node on path (code 0 success, else a
 * refusal; err != 0 unreachable). */
static bool answer(const char *node, const char *path_end, int err, int code)
{
    for (int i = 0; i < F.ncalls; i++) {
        struct call *c = &F.calls[i];
        size_t pl = strlen(c->path), el = strlen(path_end);
        if (c->answered || strcmp(c->node, node) != 0 || pl < el ||
            strcmp(c->path + pl - el, path_end) != 0)
            continue;
        c->answered = true;
        cJSON *data = cJSON_CreateObject();
        struct peer_resp r = {.err = err,
                              .code = code,
                              .msg = err ? "connection refused" : code ? "refused" : "success",
                              .data = data,
                              .node = node};
        c->cb(c->arg, &r);
        cJSON_Delete(data);
        return true;
    }
    return false;
}

static int unanswered(const char *path_end)
{
    int n = 0;
    for (int i = 0; i < F.ncalls; i++) {
        size_t pl = strlen(F.calls[i].path), el = strlen(path_end);
        if (!F.calls[i].answered && pl >= el &&
            strcmp(F.calls[i].path + pl - el, path_end) == 0)
            n++;
    }
    return n;
}

/* ---- harness --------------------------------------------------------------- */

static struct event_base *base;
static struct gw_cfg *cfg;
static struct sched *S;

/* Let deferred events (the reaper) run. */
static void turn(void)
{
    event_base_loop(base, EVLOOP_NONBLOCK);
}

static void add_row(const char *task_id, const char *name, const char *node, const char *deps)
{
    struct row *r = &F.rows[F.nrows++];
    snprintf(r->task_id, sizeof(r->task_id), "%s", task_id);
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->node, sizeof(r->node), "%s", node);
    snprintf(r->deps, sizeof(r->deps), "%s", deps);
    r->st = TASK_STATE_READY;
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    base = event_base_new();
    cfg = cfg_new_defaults();
    free(cfg->node_id);
    cfg->node_id = gw_xstrdup(ME);
    struct sched_env env = {.base = base,
                            .cfg = &cfg,
                            .store = &fake_store,
                            .store_ctx = &F,
                            .peer = &fake_peers,
                            .peer_ctx = &F};
    S = sched_new(&env);
    /* a RUNNING job: task t1 on X and Y, then t2 (after t1) on X */
    F.job = JOB_STATE_RUNNING;
    F.poll_mode = true;
    snprintf(F.parties, sizeof(F.parties), "[\"%s\",\"%s\"]", X, Y);
    add_row("task-1", "t1", X, "[]");
    add_row("task-1", "t1", Y, "[]");
    add_row("task-2", "t2", X, "[\"t1\"]");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sched_free(S);
    cfg_free(cfg);
    event_base_free(base);
    return 0;
}

/* Pass, claim and task/start of t1 to both parties. */
static void start_t1(void)
{
    sched_kick(S, "J1");
    drain_store(); /* load -> claim */
    drain_store(); /* claim -> two task/start calls */
    assert_int_equal(unanswered("/task/start"), 2);
}

/* ---- tests ----------------------------------------------------------------- */

/* issue 11 item 1: X refuses task/start at once, the job fails and ends, Y
 * answers afterwards about a job the scheduler has finished. */
static void test_refusal_then_late_answer(void **state)
{
    (void)state;
    start_t1();
    assert_true(answer(X, "/task/start", 0, 1)); /* refused */
    drain_store();                               /* FAILED -> kick */
    drain_store();                               /* pass: t1 FAILED -> finish_job */
    drain_store();                               /* job FINISHED */
    assert_int_equal(F.job, JOB_STATE_FINISHED);
    assert_int_equal(F.outcome, JOB_OUTCOME_FAILED);
    turn();
    /* the job left the table, but Y's call still holds it */
    assert_true(sched_jobs_held(S) >= 1);
    assert_true(answer(Y, "/task/start", 0, 0)); /* late success */
    while (drain_store() > 0)
        ;
    turn();
    /* the late answer changed nothing, and every object is gone */
    assert_int_equal(row_of("task-1", Y)->st, TASK_STATE_FAILED);
    assert_int_equal(sched_jobs_held(S), 0);
    /* job/stop went to both parties once the job finished */
    assert_int_equal(unanswered("/job/stop"), 2);
}

/* The same answers in the opposite order: Y first, then X's refusal. */
static void test_late_answer_first(void **state)
{
    (void)state;
    start_t1();
    assert_true(answer(Y, "/task/start", 0, 0));
    drain_store(); /* Y RUNNING -> kick -> load */
    drain_store();
    assert_true(answer(X, "/task/start", 0, 1));
    while (drain_store() > 0)
        ;
    turn();
    assert_int_equal(F.job, JOB_STATE_FINISHED);
    assert_int_equal(sched_jobs_held(S), 0);
}

static void on_reply(void *arg, const struct sched_reply *r)
{
    int *got = arg;
    *got = r->err == 0 ? 1 : -1;
}

/* A stop while task/start calls are in flight; they answer afterwards. */
static void test_stop_during_starts(void **state)
{
    (void)state;
    start_t1();
    struct gw_errbuf eb;
    int got = 0;
    assert_int_equal(sched_stop(S, "J1", NULL, X, &eb, on_reply, &got), 0);
    while (drain_store() > 0)
        ;
    assert_int_equal(got, 1);
    assert_int_equal(F.job, JOB_STATE_FINISHED);
    assert_int_equal(F.outcome, JOB_OUTCOME_STOPPED);
    assert_true(answer(X, "/task/start", 0, 0));
    assert_true(answer(Y, "/task/start", 1 /* GW error */, 0));
    while (drain_store() > 0)
        ;
    turn();
    assert_int_equal(row_of("task-1", X)->st, TASK_STATE_FAILED);
    assert_int_equal(row_of("task-1", Y)->st, TASK_STATE_FAILED);
    assert_int_equal(sched_jobs_held(S), 0);
}

/* Fifty kicks while a pass is loading coalesce into one more pass. */
static void test_kicks_coalesce(void **state)
{
    (void)state;
    sched_kick(S, "J1");
    for (int i = 0; i < 50; i++)
        sched_kick(S, "J1");
    assert_int_equal(F.nq, 1); /* one load in flight */
    drain_store();             /* the pass claims t1 ... and loads once more */
    assert_int_equal(F.nq, 2);
    while (drain_store() > 0)
        ;
    assert_int_equal(F.claims, 1); /* the second pass finds t1 claimed */
    assert_int_equal(unanswered("/task/start"), 2); /* claimed once: sent once */
}

/* t2 starts only when t1 succeeded on every party. */
static void test_dependency_order(void **state)
{
    (void)state;
    start_t1();
    assert_true(answer(X, "/task/start", 0, 0));
    assert_true(answer(Y, "/task/start", 0, 0));
    while (drain_store() > 0)
        ;
    row_of("task-1", X)->st = TASK_STATE_SUCCESS;
    sched_kick(S, "J1");
    while (drain_store() > 0)
        ;
    assert_int_equal(unanswered("/task/start"), 0); /* Y still RUNNING: t2 waits */
    row_of("task-1", Y)->st = TASK_STATE_SUCCESS;
    sched_kick(S, "J1");
    while (drain_store() > 0)
        ;
    assert_int_equal(unanswered("/task/start"), 1);
    assert_true(answer(X, "/task/start", 0, 0));
    while (drain_store() > 0)
        ;
    row_of("task-2", X)->st = TASK_STATE_SUCCESS;
    sched_kick(S, "J1");
    while (drain_store() > 0)
        ;
    assert_int_equal(F.job, JOB_STATE_FINISHED);
    assert_int_equal(F.outcome, JOB_OUTCOME_SUCCESS);
}

/* job/start: one party unreachable makes the job wait (not fail, not run). */
static void test_job_start_unreachable_waits(void **state)
{
    (void)state;
    F.job = JOB_STATE_READY;
    sched_kick(S, "J1");
    drain_store(); /* pass: job/start to both */
    assert_int_equal(unanswered("/job/start"), 2);
    assert_true(answer(X, "/job/start", 0, 0));
    assert_true(answer(Y, "/job/start", -7 /* GW_EPEER */, 0));
    while (drain_store() > 0)
        ;
    assert_int_equal(F.job, JOB_STATE_READY);
    assert_int_equal(F.job_sets, 0);
    turn();
    assert_int_equal(sched_jobs_held(S), 1); /* still live: retried on its timer */
}

/* A FATE-Flow party never pushes: its job is polled at sched.poll_ms even
 * in callback mode (issue 11 item 7); others at sched.backstop_ms. */
static void test_silent_party_polled_fast(void **state)
{
    (void)state;
    F.poll_mode = false;
    sched_kick(S, "J1");
    while (drain_store() > 0)
        ;
    assert_int_equal(sched_job_interval_ms(S, "J1"), cfg->sched_backstop_ms);
    F.profile_y = PEER_FATE_FLOW;
    sched_kick(S, "J1");
    while (drain_store() > 0)
        ;
    assert_int_equal(sched_job_interval_ms(S, "J1"), cfg->sched_poll_ms);
}

int main(void)
{
    json_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refusal_then_late_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_answer_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_during_starts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kicks_coalesce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dependency_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_start_unreachable_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_party_polled_fast, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
