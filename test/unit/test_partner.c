/*
 * test_partner.c - the partner side (scheduler/partner.c) driven through
 * its three interfaces by fakes:
 *   - a store holding t_job, t_task, components and push records, whose
 *     statements (compare-and-sets included) run only when the test
 *     completes them;
 *   - task ops that record launches and kills (the runner's part);
 *   - peers that record calls and answer when the test says so.
 * The attestation key is real (container callbacks carry launch tokens it
 * minted).  Every request's reply callback frees its requester, as the
 * HTTP layer frees its request: a second reply, or any use after the one
 * reply, is a use after free under ASan.
 *
 * Set TEST_LOG=1 to see the partner's log lines.
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
#include <time.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "container/attest.h"
#include "container/runner.h"
#include "gateway/cfg.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "routes/route.h"
#include "scheduler/dag.h"
#include "scheduler/partner.h"
#include "scheduler/state.h"

#define ME "JG0100001100000010"
#define B "JG0100001100000071"
#define C3 "JG0100001100000072"
#define DIGEST "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define STORAGE "/tmp/test_partner_storage"

/* ---- the trace: every call the fakes receive, and every reply, in order --- */

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

/* JSON written with ' for ". */
static char *q(const char *tmpl)
{
    char *s = gw_xstrdup(tmpl);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    return s;
}

static cJSON *qj(const char *tmpl)
{
    char *s = q(tmpl);
    cJSON *j = cJSON_Parse(s);
    if (!j)
        fail_msg("test bug: malformed JSON: %s", s);
    free(s);
    return j;
}

/* ---- the fake store ----------------------------------------------------------- */

struct pjob {
    char job[32], role[16], status[12], sched[32], sync[16];
    char *dag, *config, *digest;
};
struct pcomp {
    const char *provider, *name, *version, *desc, *digest, *image;
};
struct ptask {
    char job[32], task[32], name[64], role[16];
    int idx;
    char status[12], cid[64], token[96], claimed[12], error[256], exit_code[16];
    char *spec;
};
struct ppush {
    char job[32], task[32], acked[12], error[256];
};

static struct pjob Jobs[8];
static int Jn;
static struct ptask Tasks[16];
static int Tn;
static struct ppush Pushes[16];
static int Pn;

static const char PSI_DESC[] =
    "{\"componentName\":\"psi\",\"roleList\":[\"guest\",\"host\"],"
    "\"inputData\":[{\"name\":\"data\"}],\"outputData\":[{\"name\":\"out\",\"category\":\"dataset\"}]}";
static const char LR_DESC[] =
    "{\"componentName\":\"lr\",\"roleList\":[\"guest\",\"host\"],"
    "\"inputData\":[{\"name\":\"train\"}],\"outputData\":[]}";
static const struct pcomp Comps[] = {
    {"demo", "psi", "1.0.0", PSI_DESC, DIGEST, "demo/psi:1.0.0"},
    {"demo", "lr", "1.0.0", LR_DESC, DIGEST, "demo/lr:1.0.0"},
};

enum pkind {
    P_JOB_CREATE, P_JOB_START, P_TASK_CONTEXT, P_TASK_INSERT, P_TASK_SET, P_TASK_CLAIM,
    P_TASK_LOGS, P_PUSH_STATE, P_PUSH_RECORD, P_PUSH_PENDING, P_NKIND
};
static const char *const pname[] = {"job_create", "job_start",  "task_context", "task_insert",
                                    "task_set",   "task_claim", "task_logs",    "push_state",
                                    "push_record", "push_pending"};

/* A statement waiting for the test, with copies of what it was given. */
struct pst {
    enum pkind kind;
    char job[32], task[32], name[64], role[16], sched[32], sync[16];
    int idx;
    enum task_state to;
    enum task_sel sel;
    bool claim, finish_job, has_token;
    char *s1, *s2, *s3; /* job_create: dag, config, roles; insert: rows; set: token, error */
    db_rows_cb cb;
    store_change_cb ccb;
    void *arg;
    bool answered;
};

#define PMAX 256
static struct pst Pq[PMAX];
static int Pqn;

static struct pst *p_add(enum pkind k, db_rows_cb cb, void *arg)
{
    assert_true(Pqn < PMAX);
    struct pst *c = &Pq[Pqn++];
    memset(c, 0, sizeof(*c));
    c->kind = k;
    c->cb = cb;
    c->arg = arg;
    return c;
}

#define CP(dst, src) snprintf((dst), sizeof(dst), "%s", (src) ? (src) : "")

static int fs_job_create(void *ctx, const struct job_new *n, db_rows_cb cb, void *arg)
{
    (void)ctx;
    struct pst *c = p_add(P_JOB_CREATE, cb, arg);
    CP(c->job, n->job_id);
    CP(c->sched, n->scheduler);
    CP(c->sync, n->sync_type);
    c->s1 = gw_xstrdup(n->dag);
    c->s2 = gw_xstrdup(n->config);
    c->s3 = gw_xstrdup(n->roles);
    tr("S:job_create");
    return 0;
}

static int fs_job_start(void *ctx, const char *job_id, const char *by, db_rows_cb cb, void *arg)
{
    (void)ctx;
    (void)by;
    CP(p_add(P_JOB_START, cb, arg)->job, job_id);
    tr("S:job_start");
    return 0;
}

static int fs_task_context(void *ctx, const char *job_id, const char *task_name, db_rows_cb cb,
                           void *arg)
{
    (void)ctx;
    struct pst *c = p_add(P_TASK_CONTEXT, cb, arg);
    CP(c->job, job_id);
    CP(c->name, task_name);
    tr("S:task_context");
    return 0;
}

static int fs_task_insert(void *ctx, const char *job_id, const char *task_id,
                          const char *task_name, const char *component, const char *provider,
                          const char *version, const char *rows_json, db_rows_cb cb, void *arg)
{
    (void)ctx;
    (void)component;
    (void)provider;
    (void)version;
    struct pst *c = p_add(P_TASK_INSERT, cb, arg);
    CP(c->job, job_id);
    CP(c->task, task_id);
    CP(c->name, task_name);
    c->s1 = gw_xstrdup(rows_json);
    tr("S:task_insert");
    return 0;
}

static int fs_task_set(void *ctx, const struct task_change *tc, db_rows_cb cb, void *arg)
{
    (void)ctx;
    struct pst *c = p_add(P_TASK_SET, cb, arg);
    c->sel = tc->sel;
    CP(c->job, tc->job_id);
    CP(c->task, tc->task_id);
    CP(c->role, tc->role);
    CP(c->name, tc->task_name);
    c->idx = tc->role_index;
    c->to = tc->to;
    c->claim = tc->claim;
    c->finish_job = tc->finish_job;
    c->has_token = tc->token_jti != NULL;
    c->s1 = gw_xstrdup(tc->token_jti ? tc->token_jti : "");
    c->s2 = gw_xstrdup(tc->error_text ? tc->error_text : "");
    tr("S:task_set");
    return 0;
}

static int fs_task_claim(void *ctx, const char *task_id, const char *role, int role_index,
                         enum task_state status, db_rows_cb cb, void *arg)
{
    (void)ctx;
    struct pst *c = p_add(P_TASK_CLAIM, cb, arg);
    CP(c->task, task_id);
    CP(c->role, role);
    c->idx = role_index;
    c->to = status;
    tr("S:task_claim");
    return 0;
}

static int fs_task_logs(void *ctx, const char *task_id, db_rows_cb cb, void *arg)
{
    (void)ctx;
    CP(p_add(P_TASK_LOGS, cb, arg)->task, task_id);
    tr("S:task_logs");
    return 0;
}

static int fs_push_state(void *ctx, const char *job_id, const char *task_id, db_rows_cb cb,
                         void *arg)
{
    (void)ctx;
    struct pst *c = p_add(P_PUSH_STATE, cb, arg);
    CP(c->job, job_id);
    CP(c->task, task_id);
    tr("S:push_state");
    return 0;
}

static int fs_push_record(void *ctx, const char *job_id, const char *task_id,
                          const char *acked_status, const char *error, store_change_cb cb,
                          void *arg)
{
    (void)ctx;
    struct pst *c = p_add(P_PUSH_RECORD, NULL, arg);
    c->ccb = cb;
    CP(c->job, job_id);
    CP(c->task, task_id);
    /* the contract: error only matters when nothing was acknowledged */
    c->s1 = gw_xstrdup(acked_status ? acked_status : "");
    c->s2 = gw_xstrdup(acked_status ? "" : error ? error : "");
    tr("S:push_record");
    return 0;
}

static int fs_push_pending(void *ctx, int window_s, int limit, db_rows_cb cb, void *arg)
{
    (void)ctx;
    (void)window_s;
    (void)limit;
    p_add(P_PUSH_PENDING, cb, arg);
    tr("S:push_pending");
    return 0;
}

static const struct partner_store_ops fake_store = {
    .job_create = fs_job_create,
    .job_start = fs_job_start,
    .task_context = fs_task_context,
    .task_insert = fs_task_insert,
    .task_set = fs_task_set,
    .task_claim = fs_task_claim,
    .task_logs = fs_task_logs,
    .push_state = fs_push_state,
    .push_record = fs_push_record,
    .push_pending = fs_push_pending,
};

/* Rows under construction: values borrowed from the tables or from num. */
static struct {
    const char *v[32 * 11];
    char num[32 * 11][24];
    int n, cols, k;
} RB;

static void rb_init(int cols)
{
    RB.n = 0;
    RB.k = 0;
    RB.cols = cols;
}

static void rb_put(const char *s)
{
    assert_true(RB.k < (int)GW_ARRAY_LEN(RB.v));
    RB.v[RB.k++] = s;
    if (RB.k % RB.cols == 0)
        RB.n++;
}

static void rb_num(long long x)
{
    snprintf(RB.num[RB.k], sizeof(RB.num[RB.k]), "%lld", x);
    rb_put(RB.num[RB.k]);
}

static void rb_reply(struct pst *c)
{
    assert_int_equal(RB.k, RB.n * RB.cols);
    struct db_rows r = {.n = RB.n, .cols = RB.cols, .v = RB.v};
    c->cb(c->arg, &r);
}

static const struct pcomp *comp_of(const char *dag, const char *task_name)
{
    cJSON *d = cJSON_Parse(dag);
    const cJSON *x;
    const struct pcomp *found = NULL;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(d, "components"))
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(x, "name");
        if (!task_name || (cJSON_IsString(nm) && strcmp(nm->valuestring, task_name) == 0)) {
            const char *cn = cJSON_GetObjectItemCaseSensitive(x, "componentName")->valuestring;
            for (size_t i = 0; i < GW_ARRAY_LEN(Comps); i++)
                if (strcmp(Comps[i].name, cn) == 0)
                    found = &Comps[i];
            break;
        }
    }
    cJSON_Delete(d);
    return found;
}

static struct ptask *task_find(const char *job, const char *task, const char *role, int idx)
{
    for (int i = 0; i < Tn; i++)
        if ((!job || strcmp(Tasks[i].job, job) == 0) && strcmp(Tasks[i].task, task) == 0 &&
            (!role || !*role || strcmp(Tasks[i].role, role) == 0) && (idx < 0 || Tasks[i].idx == idx))
            return &Tasks[i];
    return NULL;
}

static bool live(const char *st)
{
    return strcmp(st, "PENDING") == 0 || strcmp(st, "READY") == 0 || strcmp(st, "RUNNING") == 0;
}

static void run_job_create(struct pst *c)
{
    /* the request's digest: what a repeat must match */
    char *now = gw_xasprintf("%s|%s|%s|%s", c->s1, c->s2, c->s3, c->sched);
    const char *old = NULL;
    for (int i = 0; i < Jn; i++)
        if (strcmp(Jobs[i].job, c->job) == 0)
            old = Jobs[i].digest;
    int inserted = 0;
    if (!old) {
        cJSON *roles = cJSON_Parse(c->s3);
        const cJSON *r;
        cJSON_ArrayForEach(r, roles)
        {
            assert_true(Jn < (int)GW_ARRAY_LEN(Jobs));
            struct pjob *j = &Jobs[Jn++];
            memset(j, 0, sizeof(*j));
            CP(j->job, c->job);
            CP(j->role, r->valuestring);
            CP(j->status, "READY");
            CP(j->sched, c->sched);
            CP(j->sync, c->sync);
            j->dag = gw_xstrdup(c->s1);
            j->config = gw_xstrdup(c->s2);
            j->digest = gw_xstrdup(now);
            inserted++;
        }
        cJSON_Delete(roles);
    }
    rb_init(4);
    rb_num(inserted);
    rb_put(NULL); /* every component is registered here */
    rb_put(old);
    rb_put(now);
    rb_reply(c);
    free(now);
}

static void run_job_start(struct pst *c)
{
    long long total = 0, finished = 0, moved = 0;
    for (int i = 0; i < Jn; i++) {
        struct pjob *j = &Jobs[i];
        if (strcmp(j->job, c->job) != 0)
            continue;
        total++;
        enum job_state s;
        assert_true(job_state_parse(j->status, &s));
        if (job_step_ok(s, JOB_STATE_RUNNING)) {
            CP(j->status, "RUNNING");
            moved++;
        }
        finished += job_state_is_terminal(s);
    }
    rb_init(3);
    rb_num(total);
    rb_num(finished);
    rb_num(moved);
    rb_reply(c);
}

static void run_task_context(struct pst *c)
{
    const struct ptask *prior = NULL;
    for (int i = 0; i < Tn; i++)
        if (strcmp(Tasks[i].job, c->job) == 0 && strcmp(Tasks[i].name, c->name) == 0) {
            prior = &Tasks[i];
            break;
        }
    rb_init(11);
    for (int i = 0; i < Jn; i++) {
        const struct pjob *j = &Jobs[i];
        if (strcmp(j->job, c->job) != 0)
            continue;
        const struct pcomp *cp = comp_of(j->dag, c->name);
        rb_put(j->role);
        rb_put(j->status);
        rb_put(j->dag);
        rb_put(j->config);
        rb_put(cp ? cp->desc : NULL);
        rb_put(cp ? cp->digest : NULL);
        rb_put(cp ? cp->provider : NULL);
        rb_put(cp ? cp->version : NULL);
        rb_put(cp ? cp->image : NULL);
        rb_put(j->sched);
        rb_put(prior ? prior->task : NULL);
    }
    rb_reply(c);
}

static void run_task_insert(struct pst *c)
{
    cJSON *rows = cJSON_Parse(c->s1);
    assert_true(cJSON_IsArray(rows));
    const cJSON *x;
    cJSON_ArrayForEach(x, rows)
    {
        const char *role = cJSON_GetObjectItemCaseSensitive(x, "role")->valuestring;
        int idx = cJSON_GetObjectItemCaseSensitive(x, "role_index")->valueint;
        bool job_live = false;
        for (int i = 0; i < Jn; i++)
            job_live |= strcmp(Jobs[i].job, c->job) == 0 && strcmp(Jobs[i].role, role) == 0 &&
                        strcmp(Jobs[i].status, "FINISHED") != 0 &&
                        strcmp(Jobs[i].status, "REJECTED") != 0;
        if (!job_live || task_find(c->job, c->task, role, idx))
            continue;
        assert_true(Tn < (int)GW_ARRAY_LEN(Tasks));
        struct ptask *t = &Tasks[Tn++];
        memset(t, 0, sizeof(*t));
        CP(t->job, c->job);
        CP(t->task, c->task);
        CP(t->name, c->name);
        CP(t->role, role);
        t->idx = idx;
        CP(t->status, "READY");
        t->spec = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(x, "spec"));
    }
    cJSON_Delete(rows);
    rb_init(2);
    for (int i = 0; i < Tn; i++)
        if (strcmp(Tasks[i].job, c->job) == 0 && strcmp(Tasks[i].task, c->task) == 0 &&
            strcmp(Tasks[i].status, "READY") == 0) {
            rb_put(Tasks[i].role);
            rb_num(Tasks[i].idx);
        }
    rb_reply(c);
}

/* store_task_set: summary (t_job rows, selected, moved), then the rows written. */
static void run_task_set(struct pst *c)
{
    static char olds[16][12];
    struct ptask *sel[16];
    int ns = 0;
    for (int i = 0; i < Tn; i++) {
        struct ptask *t = &Tasks[i];
        bool in;
        switch (c->sel) {
        case TASK_SEL_JOB:
            in = strcmp(t->job, c->job) == 0;
            break;
        case TASK_SEL_TASK:
            in = strcmp(t->task, c->task) == 0 && (!c->role[0] || strcmp(t->role, c->role) == 0) &&
                 (c->idx < 0 || t->idx == c->idx);
            break;
        default:
            fail_msg("the fake store has no selector %d", (int)c->sel);
            return;
        }
        if (in && c->has_token && strcmp(t->token, c->s1) != 0)
            in = false;
        if (in)
            sel[ns++] = t;
    }
    long long jobs = 0;
    for (int i = 0; i < Jn; i++)
        if (strcmp(Jobs[i].job, c->job) == 0) {
            jobs++;
            enum job_state s;
            assert_true(job_state_parse(Jobs[i].status, &s));
            if (c->finish_job && job_step_ok(s, JOB_STATE_FINISHED))
                CP(Jobs[i].status, "FINISHED");
        }
    int moved = 0;
    struct ptask *mv[16];
    for (int i = 0; i < ns; i++) {
        enum task_state from;
        assert_true(task_state_parse(sel[i]->status, &from));
        if (c->claim)
            CP(sel[i]->claimed, task_state_name(c->to));
        if (!task_step_ok(from, c->to))
            continue;
        CP(olds[moved], sel[i]->status);
        CP(sel[i]->status, task_state_name(c->to));
        if (!sel[i]->error[0])
            CP(sel[i]->error, c->s2);
        mv[moved++] = sel[i];
    }
    rb_init(7);
    rb_num(jobs);
    rb_num(ns);
    rb_num(moved);
    for (int k = 0; k < 4; k++)
        rb_put(NULL);
    for (int i = 0; i < moved; i++) {
        rb_put(mv[i]->job);
        rb_put(mv[i]->task);
        rb_put(mv[i]->role);
        rb_num(mv[i]->idx);
        rb_put(mv[i]->cid[0] ? mv[i]->cid : NULL);
        rb_put(olds[i]);
        rb_put(mv[i]->status);
    }
    rb_reply(c);
}

static void run_task_claim(struct pst *c)
{
    long long rows = 0, nlive = 0;
    for (int i = 0; i < Tn; i++) {
        struct ptask *t = &Tasks[i];
        if (strcmp(t->task, c->task) != 0 || (c->role[0] && strcmp(t->role, c->role) != 0) ||
            (c->idx >= 0 && t->idx != c->idx))
            continue;
        rows++;
        nlive += live(t->status);
        if (c->to != TASK_STATE_RUNNING && strcmp(t->status, "RUNNING") == 0)
            CP(t->claimed, task_state_name(c->to));
    }
    rb_init(2);
    rb_num(rows);
    rb_num(nlive);
    rb_reply(c);
}

/* bfia_task_agg over the rows of one task (spec §3.3). */
static const char *agg(const char *job, const char *task)
{
    bool seen[TASK_STATE_COUNT] = {false};
    int n = 0, distinct = 0;
    enum task_state first = TASK_STATE_PENDING;
    for (int i = 0; i < Tn; i++)
        if (strcmp(Tasks[i].job, job) == 0 && strcmp(Tasks[i].task, task) == 0) {
            enum task_state s;
            assert_true(task_state_parse(Tasks[i].status, &s));
            if (!n++)
                first = s;
            seen[s] = true;
        }
    if (!n)
        return NULL;
    for (int s = 0; s < TASK_STATE_COUNT; s++)
        distinct += seen[s];
    if (seen[TASK_STATE_FAILED])
        return "FAILED";
    if (distinct == 1)
        return task_state_name(first);
    if (seen[TASK_STATE_RUNNING])
        return "RUNNING";
    if (seen[TASK_STATE_READY])
        return "READY";
    if (seen[TASK_STATE_PENDING])
        return "PENDING";
    return "SUCCESS";
}

static void run_push_state(struct pst *c)
{
    static char roles[64], errors[512];
    const char *st = agg(c->job, c->task);
    const struct pjob *j = NULL;
    roles[0] = errors[0] = '\0';
    for (int i = 0; i < Tn; i++) {
        const struct ptask *t = &Tasks[i];
        if (strcmp(t->job, c->job) != 0 || strcmp(t->task, c->task) != 0)
            continue;
        for (int k = 0; k < Jn; k++)
            if (strcmp(Jobs[k].job, t->job) == 0 && strcmp(Jobs[k].role, t->role) == 0)
                j = &Jobs[k];
        if (!strstr(roles, t->role)) {
            size_t o = strlen(roles);
            snprintf(roles + o, sizeof(roles) - o, "%s%s", o ? "," : "", t->role);
        }
        if (t->error[0]) {
            size_t o = strlen(errors);
            snprintf(errors + o, sizeof(errors) - o, "%s%s", o ? "; " : "", t->error);
        }
    }
    rb_init(8);
    if (st && j) {
        rb_put(j->sched);
        rb_put(j->sync);
        rb_put(c->task);
        rb_put(st);
        rb_put(roles);
        rb_put(errors[0] ? errors : NULL);
        rb_put(NULL);
        rb_put("");
    }
    rb_reply(c);
}

static void run_push_record(struct pst *c)
{
    assert_true(Pn < (int)GW_ARRAY_LEN(Pushes));
    struct ppush *p = &Pushes[Pn++];
    CP(p->job, c->job);
    CP(p->task, c->task);
    CP(p->acked, c->s1);
    CP(p->error, c->s2);
    struct store_change r = {.changed = true, .job_id = c->job, .count = 1};
    if (c->ccb)
        c->ccb(c->arg, &r);
}

static void run_no_rows(struct pst *c)
{
    rb_init(1);
    rb_reply(c);
}

static int p_pending(enum pkind k)
{
    int n = 0;
    for (int i = 0; i < Pqn; i++)
        n += Pq[i].kind == k && !Pq[i].answered;
    return n;
}

static struct pst *p_find(enum pkind k)
{
    for (int i = 0; i < Pqn; i++)
        if (Pq[i].kind == k && !Pq[i].answered)
            return &Pq[i];
    fail_msg("no %s statement pending; calls: %s", pname[k], trace);
    return NULL;
}

/* Complete the oldest statement of kind k (run now: the CAS sees the
 * tables as they are at completion, as in the database). */
static struct pst *p_answer(enum pkind k)
{
    struct pst *c = p_find(k);
    c->answered = true;
    switch (k) {
    case P_JOB_CREATE: run_job_create(c); break;
    case P_JOB_START: run_job_start(c); break;
    case P_TASK_CONTEXT: run_task_context(c); break;
    case P_TASK_INSERT: run_task_insert(c); break;
    case P_TASK_SET: run_task_set(c); break;
    case P_TASK_CLAIM: run_task_claim(c); break;
    case P_PUSH_STATE: run_push_state(c); break;
    case P_PUSH_RECORD: run_push_record(c); break;
    case P_TASK_LOGS:
    case P_PUSH_PENDING: run_no_rows(c); break;
    case P_NKIND: fail();
    }
    return c;
}

/* Complete whatever is pending, in order, until nothing is. */
static void p_drain(void)
{
    for (bool any = true; any;) {
        any = false;
        for (int i = 0; i < Pqn; i++)
            if (!Pq[i].answered) {
                p_answer(Pq[i].kind);
                any = true;
                break;
            }
    }
}

struct pcall;
static int c_pending(void);
static struct pcall *c_answer(int err, int code, const char *msg);

/* Let every statement and peer call in flight complete (peers acknowledge):
 * the partner does not own its pushes once started, so a case ends with
 * none in flight. */
static void settle(void)
{
    while (c_pending() || Pqn > 0) {
        p_drain();
        if (!c_pending())
            break;
        c_answer(0, 0, "success");
    }
}

/* ---- fake task ops (the runner) and fake peers ----------------------------- */

static struct {
    char what[8], task[32], role[16], cid[64];
    int idx;
} Ops[32];
static int On;

static void ft_launch(void *ctx, const struct runner_key *k)
{
    (void)ctx;
    assert_true(On < (int)GW_ARRAY_LEN(Ops));
    CP(Ops[On].what, "launch");
    CP(Ops[On].task, k->task_id);
    CP(Ops[On].role, k->role);
    Ops[On].idx = k->role_index;
    On++;
    tr("T:launch:%s:%s.%d", k->task_id, k->role, k->role_index);
}

static void ft_kill(void *ctx, const struct runner_key *k, const char *container_id)
{
    (void)ctx;
    assert_true(On < (int)GW_ARRAY_LEN(Ops));
    CP(Ops[On].what, "kill");
    CP(Ops[On].task, k->task_id);
    CP(Ops[On].role, k->role);
    CP(Ops[On].cid, container_id);
    Ops[On].idx = k->role_index;
    On++;
    tr("T:kill:%s:%s.%d", k->task_id, k->role, k->role_index);
}

static int ft_logs(void *ctx, const char *container_id, int tail,
                   void (*cb)(void *arg, int err, const char *text, size_t len), void *arg)
{
    (void)ctx;
    (void)container_id;
    (void)tail;
    (void)cb;
    (void)arg;
    return GW_EDOCKER;
}

static const struct partner_task_ops fake_tasks = {
    .launch = ft_launch, .kill = ft_kill, .logs = ft_logs};

struct pcall {
    char node[32], method[8], path[96];
    cJSON *body;
    peer_cb cb;
    void *arg;
    bool answered;
};
static struct pcall Calls[32];
static int Cn;

static int fp_call(void *ctx, const char *node, const char *method, const char *path,
                   const cJSON *body, int retries, peer_cb cb, void *arg)
{
    (void)ctx;
    (void)retries;
    assert_true(Cn < (int)GW_ARRAY_LEN(Calls));
    struct pcall *c = &Calls[Cn++];
    memset(c, 0, sizeof(*c));
    CP(c->node, node);
    CP(c->method, method);
    CP(c->path, path);
    c->body = body ? cJSON_Duplicate(body, true) : NULL;
    c->cb = cb;
    c->arg = arg;
    tr("P:%s", path);
    return 0;
}

static enum peer_profile fp_profile(void *ctx, const char *node)
{
    (void)ctx;
    (void)node;
    return PEER_STANDARD;
}

static bool fp_routable(void *ctx, const char *node)
{
    (void)ctx;
    (void)node;
    return true;
}

static const struct sched_peer_ops fake_peers = {
    .call = fp_call, .profile = fp_profile, .routable = fp_routable};

static int c_pending(void)
{
    int n = 0;
    for (int i = 0; i < Cn; i++)
        n += !Calls[i].answered;
    return n;
}

/* The peer answers the oldest unanswered call: err (transport) or a code. */
static struct pcall *c_answer(int err, int code, const char *msg)
{
    for (int i = 0; i < Cn; i++) {
        struct pcall *c = &Calls[i];
        if (c->answered)
            continue;
        c->answered = true;
        cJSON *data = cJSON_CreateObject();
        struct peer_resp r = {.err = err, .code = code, .msg = msg, .data = data, .node = c->node};
        c->cb(c->arg, &r);
        cJSON_Delete(data);
        return c;
    }
    fail_msg("no peer call pending; calls: %s", trace);
    return NULL;
}

/* ---- requesters: each is freed by its one reply ------------------------------ */

struct reply {
    int n;      /* replies received: exactly one */
    int err;
    int code;   /* the BFIA code of err (routes/route.c's table) */
    char msg[512];
};
static struct reply Rep[32];
static int Rq;

struct requester {
    int id;
};

static void on_reply(void *arg, const struct sched_reply *r)
{
    struct requester *rq = arg;
    struct reply *p = &Rep[rq->id];
    p->n++;
    p->err = r->err;
    int http;
    p->code = route_code_for(r->err, &http);
    CP(p->msg, r->msg);
    tr("R%d:%d", rq->id, p->code);
    free(rq);
}

static struct requester *rq_new(int *id)
{
    assert_true(Rq < (int)GW_ARRAY_LEN(Rep));
    struct requester *rq = gw_xcalloc(1, sizeof(*rq));
    rq->id = Rq++;
    *id = rq->id;
    return rq;
}

/* ---- harness ----------------------------------------------------------------- */

static struct event_base *base;
static struct gw_cfg *cfg;
static struct partner *P;
static struct attest *A;
static char keydir[64];

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
    memset(Jobs, 0, sizeof(Jobs));
    Jn = Tn = Pn = Pqn = On = Cn = Rq = 0;
    memset(Tasks, 0, sizeof(Tasks));
    memset(Pq, 0, sizeof(Pq));
    memset(Rep, 0, sizeof(Rep));
    trace[0] = '\0';
    base = event_base_new();
    cfg = cfg_new_defaults();
    free(cfg->node_id);
    cfg->node_id = gw_xstrdup(ME);
    struct partner_env env = {.base = base,
                              .cfg = &cfg,
                              .store = &fake_store,
                              .tasks = &fake_tasks,
                              .attest = A,
                              .peer = &fake_peers,
                              .storage_dir = STORAGE};
    P = partner_new(&env);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    partner_free(P);
    for (int i = 0; i < Pqn; i++) {
        free(Pq[i].s1);
        free(Pq[i].s2);
        free(Pq[i].s3);
    }
    for (int i = 0; i < Jn; i++) {
        free(Jobs[i].dag);
        free(Jobs[i].config);
        free(Jobs[i].digest);
    }
    for (int i = 0; i < Tn; i++)
        cJSON_free(Tasks[i].spec);
    for (int i = 0; i < Cn; i++)
        cJSON_Delete(Calls[i].body);
    memset(Pq, 0, sizeof(Pq));
    memset(Calls, 0, sizeof(Calls));
    cfg_free(cfg);
    event_base_free(base);
    leak_check();
    return 0;
}

/*
 * The job: ME plays guest.0 and host.1, B (initiator and scheduler) host.0.
 * psi_1 then lr_1.  %s: sync type; %s: the guest's resources.
 */
static cJSON *job_body(const char *sync, const char *guest_res)
{
    char *t = gw_xasprintf(
        "{'dag':{'components':["
        "{'name':'psi_1','componentName':'psi','provider':'demo','version':'1.0.0',"
        " 'input':[],'output':[{'type':'dataset','key':'out'}]},"
        "{'name':'lr_1','componentName':'lr','provider':'demo','version':'1.0.0',"
        " 'input':[{'type':'dataset','key':'psi_1.out'}],'output':[]}]},"
        "'config':{'initiator':{'role':'host','node_id':'" B "'},"
        " 'role':{'guest':['" ME "'],'host':['" B "','" ME "']},"
        " 'job_params':{'common':{'sync_type':'%s'},"
        "  'guest':{'0':{'resources':%s}},'host':{'1':{'resources':{'cpu':-1,'memory_mb':512}}}},"
        " 'task_params':{'common':{'psi_1':{'bins':10}},"
        "  'guest':{'0':{'psi_1':{'dataset_id':'ns#guest_data'}}},"
        "  'host':{'0':{'psi_1':{'dataset_id':'ns#b_data'}},'1':{'psi_1':{'dataset_id':'ns#host_data'}}}}}}",
        sync, guest_res);
    cJSON *j = qj(t);
    free(t);
    return j;
}

static struct dag *job_dag(const char *sync, const char *guest_res)
{
    cJSON *body = job_body(sync, guest_res);
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    struct dag *d = dag_parse(body, &eb);
    cJSON_Delete(body);
    if (!d)
        fail_msg("dag_parse: %s", eb.msg);
    return d;
}

/* job/create; returns the request id (the reply comes with the store's answer). */
static int create(const char *job_id, struct dag *d, struct gw_errbuf *eb, int *rc)
{
    int id;
    struct requester *rq = rq_new(&id);
    struct partner_create_in in = {.job_id = job_id, .flow_id = "", .dag = d, .caller = B};
    gw_errbuf_clear(eb);
    *rc = partner_job_create(P, &in, eb, on_reply, rq);
    if (*rc != 0)
        free(rq); /* no reply will come */
    return id;
}

/* A created and started job J1 (its store answers given). */
static void job_ready(const char *sync, bool started)
{
    struct gw_errbuf eb;
    int rc;
    int id = create("J1", job_dag(sync, "{'cpu':2,'memory':4}"), &eb, &rc);
    assert_int_equal(rc, 0);
    p_answer(P_JOB_CREATE);
    assert_int_equal(Rep[id].n, 1);
    assert_int_equal(Rep[id].err, 0);
    if (started) {
        struct requester *rq = rq_new(&id);
        assert_int_equal(partner_job_start(P, "J1", B, &eb, on_reply, rq), 0);
        p_answer(P_JOB_START);
        assert_int_equal(Rep[id].err, 0);
    }
    trace[0] = '\0';
}

static int task_start(const char *task_id, const char *name)
{
    int id;
    struct requester *rq = rq_new(&id);
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    assert_int_equal(partner_task_start(P, "J1", task_id, name, &eb, on_reply, rq), 0);
    return id;
}

static struct ptask *add_task(const char *task, const char *name, const char *role, int idx,
                              const char *status, const char *cid)
{
    assert_true(Tn < (int)GW_ARRAY_LEN(Tasks));
    struct ptask *t = &Tasks[Tn++];
    memset(t, 0, sizeof(*t));
    CP(t->job, "J1");
    CP(t->task, task);
    CP(t->name, name);
    CP(t->role, role);
    t->idx = idx;
    CP(t->status, status);
    CP(t->cid, cid);
    return t;
}

static bool env_has(const cJSON *env, const char *entry)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, env) if (cJSON_IsString(e) && strcmp(e->valuestring, entry) == 0) return true;
    return false;
}

static double num_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        fail_msg("%s is not a number", k);
    return v->valuedouble;
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v))
        fail_msg("%s is not a string", k);
    return v->valuestring;
}

/* ---- tests: resources (pure) --------------------------------------------------- */

static void test_resources_table(void **state)
{
    (void)state;
    /* defaults: cpu 1000 m (10..4000), memory 1024 MiB (6..16384) */
    static const struct {
        const char *res; /* job_params.guest.0.resources, or NULL: absent */
        int ok;
        double nano, mem_mb;
        const char *field; /* named when refused */
    } cases[] = {
        {NULL, 1, 1e9, 1024, NULL},
        {"null", 1, 1e9, 1024, NULL},
        {"{}", 1, 1e9, 1024, NULL},
        {"{'cpu':-1,'memory':-1,'memory_mb':-1}", 1, 1e9, 1024, NULL},
        {"{'cpu':2}", 1, 2e9, 1024, NULL},
        {"{'cpu':0.01}", 1, 1e7, 1024, NULL},
        {"{'cpu':4}", 1, 4e9, 1024, NULL},
        {"{'memory':4}", 1, 1e9, 4096, NULL},
        {"{'memory':16}", 1, 1e9, 16384, NULL},
        {"{'memory_mb':6}", 1, 1e9, 6, NULL},
        {"{'memory_mb':512,'cpu':1.5}", 1, 1.5e9, 512, NULL},
        {"{'cpu':4.001}", 0, 0, 0, "config.job_params.guest.0.resources.cpu"},
        {"{'cpu':0.009}", 0, 0, 0, "config.job_params.guest.0.resources.cpu"},
        {"{'cpu':0}", 0, 0, 0, "config.job_params.guest.0.resources.cpu"},
        {"{'cpu':-5}", 0, 0, 0, "config.job_params.guest.0.resources.cpu"},
        {"{'cpu':1e12}", 0, 0, 0, "config.job_params.guest.0.resources.cpu"},
        {"{'cpu':'2'}", 0, 0, 0, "config.job_params.guest.0.resources.cpu"},
        {"{'cpu':true}", 0, 0, 0, "config.job_params.guest.0.resources.cpu"},
        {"{'cpu':[2]}", 0, 0, 0, "config.job_params.guest.0.resources.cpu"},
        {"{'memory':'4G'}", 0, 0, 0, "config.job_params.guest.0.resources.memory"},
        {"{'memory':16.001}", 0, 0, 0, "config.job_params.guest.0.resources.memory"},
        {"{'memory':1e12}", 0, 0, 0, "config.job_params.guest.0.resources.memory"},
        {"{'memory_mb':5}", 0, 0, 0, "config.job_params.guest.0.resources.memory_mb"},
        {"{'memory_mb':16385}", 0, 0, 0, "config.job_params.guest.0.resources.memory_mb"},
        {"{'memory_mb':-5}", 0, 0, 0, "config.job_params.guest.0.resources.memory_mb"},
        {"'big'", 0, 0, 0, "config.job_params.guest.0.resources: expected an object"},
        {"[1,2]", 0, 0, 0, "config.job_params.guest.0.resources: expected an object"},
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(cases); i++) {
        char *t = cases[i].res
                      ? gw_xasprintf("{'job_params':{'guest':{'0':{'resources':%s}}}}", cases[i].res)
                      : gw_xstrdup("{'job_params':{'guest':{'0':{}}}}");
        cJSON *config = qj(t);
        free(t);
        double nano = -7, mem = -7;
        struct gw_errbuf eb;
        gw_errbuf_clear(&eb);
        int rc = partner_resources(cfg, config, "guest", 0, &nano, &mem, &eb);
        cJSON_Delete(config);
        if (cases[i].ok) {
            if (rc != 0)
                fail_msg("case %s refused: %s", cases[i].res ? cases[i].res : "(absent)", eb.msg);
            assert_true(nano == cases[i].nano);
            assert_true(mem == cases[i].mem_mb * 1024.0 * 1024.0);
        } else {
            if (rc != GW_EINVAL || strncmp(eb.msg, cases[i].field, strlen(cases[i].field)) != 0)
                fail_msg("case %s: rc %d msg '%s', want '%s'", cases[i].res, rc, eb.msg,
                         cases[i].field);
            assert_true(nano == -7 && mem == -7); /* nothing written on refusal */
        }
    }
    /* an index map entry "0|1" applies to index 1; another role's entry does not */
    cJSON *config = qj("{'job_params':{'host':{'0|1':{'resources':{'cpu':3}}},"
                       "'guest':{'1':{'resources':{'cpu':99}}}}}");
    double nano = 0, mem = 0;
    assert_int_equal(partner_resources(cfg, config, "host", 1, &nano, &mem, NULL), 0);
    assert_true(nano == 3e9);
    assert_int_equal(partner_resources(cfg, config, "host", 2, &nano, &mem, NULL), 0);
    assert_true(nano == 1e9);
    cJSON_Delete(config);
}

/* ---- tests: job/create ---------------------------------------------------------- */

static void test_job_create(void **state)
{
    (void)state;
    struct gw_errbuf eb;
    int rc;
    int id = create("J1", job_dag("callback", "{'cpu':2}"), &eb, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(Rep[id].n, 0); /* answered with the store */
    struct pst *c = p_find(P_JOB_CREATE);
    assert_string_equal(c->s3, "[\"guest\",\"host\"]"); /* the roles ME plays */
    assert_string_equal(c->sched, B);                  /* the initiator schedules */
    assert_string_equal(c->sync, "callback");
    p_answer(P_JOB_CREATE);
    assert_int_equal(Rep[id].n, 1);
    assert_int_equal(Rep[id].err, 0);
    assert_int_equal(Jn, 2);

    /* an identical repeat (a retry after a lost reply) succeeds */
    id = create("J1", job_dag("callback", "{'cpu':2}"), &eb, &rc);
    assert_int_equal(rc, 0);
    p_answer(P_JOB_CREATE);
    assert_int_equal(Rep[id].err, 0);
    assert_int_equal(Jn, 2);

    /* a repeat that differs is refused: 5003 naming job_id, nothing stored */
    char *before = gw_xstrdup(Jobs[0].config);
    id = create("J1", job_dag("callback", "{'cpu':3}"), &eb, &rc);
    assert_int_equal(rc, 0);
    p_answer(P_JOB_CREATE);
    assert_int_equal(Rep[id].n, 1);
    assert_int_equal(Rep[id].err, GW_ECONFLICT);
    assert_int_equal(Rep[id].code, 5003);
    assert_true(strncmp(Rep[id].msg, "job_id: job J1 already exists", 29) == 0);
    assert_int_equal(Jn, 2);
    assert_string_equal(Jobs[0].config, before);
    free(before);
    /* another scheduler named by the caller is a different job too */
    struct requester *rq = rq_new(&id);
    struct partner_create_in in = {.job_id = "J1", .scheduler = C3,
                                   .dag = job_dag("callback", "{'cpu':2}"), .caller = B};
    assert_int_equal(partner_job_create(P, &in, &eb, on_reply, rq), 0);
    p_answer(P_JOB_CREATE);
    assert_int_equal(Rep[id].code, 5003);
}

/* Refused before the store: a node that plays no role, and resources
 * outside this node's policy (bad input: nothing is written). */
static void test_job_create_refused(void **state)
{
    (void)state;
    struct gw_errbuf eb;
    int rc;
    free(cfg->node_id);
    cfg->node_id = gw_xstrdup(C3); /* not in config.role */
    create("J1", job_dag("poll", "{'cpu':2}"), &eb, &rc);
    assert_int_equal(rc, GW_EINVAL);
    int http;
    assert_int_equal(route_code_for(rc, &http), 5001);
    assert_string_equal(eb.msg, "config.role: node " C3 " is not a party of job J1");
    free(cfg->node_id);
    cfg->node_id = gw_xstrdup(ME);

    create("J1", job_dag("poll", "{'cpu':64}"), &eb, &rc);
    assert_int_equal(rc, GW_EINVAL);
    assert_true(strncmp(eb.msg, "config.job_params.guest.0.resources.cpu:", 40) == 0);
    create("J1", job_dag("poll", "{'memory':'lots'}"), &eb, &rc);
    assert_int_equal(rc, GW_EINVAL);
    assert_true(strncmp(eb.msg, "config.job_params.guest.0.resources.memory:", 43) == 0);
    assert_int_equal(Pqn, 0); /* the store was never asked */
    assert_int_equal(Jn, 0);
}

/* ---- tests: task/start ---------------------------------------------------------- */

static void test_task_start(void **state)
{
    (void)state;
    job_ready("callback", true);
    int id = task_start("T1", "psi_1");
    p_answer(P_TASK_CONTEXT);
    assert_int_equal(On, 0);
    struct pst *ins = p_find(P_TASK_INSERT);
    assert_string_equal(ins->task, "T1");
    assert_string_equal(ins->name, "psi_1");
    cJSON *rows = cJSON_Parse(ins->s1);
    assert_int_equal(cJSON_GetArraySize(rows), 2); /* one per local (role, index) */
    const cJSON *g = cJSON_GetArrayItem(rows, 0), *h = cJSON_GetArrayItem(rows, 1);
    assert_string_equal(str_of(g, "role"), "guest");
    assert_int_equal((int)num_of(g, "role_index"), 0);
    assert_string_equal(str_of(g, "container_name"), "guest-" ME "-T1-0");
    assert_string_equal(str_of(h, "role"), "host");
    assert_int_equal((int)num_of(h, "role_index"), 1);
    assert_string_equal(str_of(h, "container_name"), "host-" ME "-T1-0");
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(g, "spec");
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(h, "spec");
    assert_string_equal(str_of(gs, "image_digest"), DIGEST);
    assert_string_equal(str_of(gs, "image"), "demo/psi:1.0.0");
    assert_string_equal(str_of(gs, "component"), "psi");
    assert_string_equal(str_of(gs, "provider"), "demo");
    assert_string_equal(str_of(gs, "task_name"), "psi_1");
    /* this node's resources: guest.0 asked 2 cores and 4 GiB, host.1 the
     * default CPU and 512 MiB */
    assert_true(num_of(gs, "nano_cpus") == 2e9);
    assert_true(num_of(gs, "memory_bytes") == 4.0 * 1024 * 1024 * 1024);
    assert_true(num_of(hs, "nano_cpus") == 1e9);
    assert_true(num_of(hs, "memory_bytes") == 512.0 * 1024 * 1024);
    /* the BFIA environment of each */
    const cJSON *ge = cJSON_GetObjectItemCaseSensitive(gs, "env");
    const cJSON *he = cJSON_GetObjectItemCaseSensitive(hs, "env");
    assert_true(env_has(ge, "config.self_role=guest.0"));
    assert_true(env_has(he, "config.self_role=host.1"));
    assert_true(env_has(ge, "config.task_id=T1"));
    assert_true(env_has(ge, "runtime.component.name=psi"));
    assert_true(env_has(ge, "runtime.component.parameter.bins=10"));
    assert_true(env_has(ge, "config.node_id.guest.0=" ME));
    assert_true(env_has(ge, "config.node_id.host.0=" B));
    assert_true(env_has(ge, "config.node_id.host.1=" ME));
    assert_true(env_has(ge, "system.storage=file://" STORAGE));
    assert_true(env_has(ge, "system.callback=http://127.0.0.1:8080/v1/platform/schedule/task/callback"));
    assert_true(env_has(ge, "runtime.component.input.data={\"name\": \"guest_data\", \"namespace\": \"ns\"}"));
    assert_true(env_has(he, "runtime.component.input.data={\"name\": \"host_data\", \"namespace\": \"ns\"}"));
    cJSON_Delete(rows);

    assert_int_equal(Rep[id].n, 0);
    p_answer(P_TASK_INSERT);
    /* launched through the task ops once the rows exist, then answered */
    assert_string_equal(trace, "S:task_context S:task_insert T:launch:T1:guest.0 "
                               "T:launch:T1:host.1 R2:0");
    assert_int_equal(Rep[id].n, 1);
    assert_int_equal(Tn, 2);
}

static void test_task_start_refused(void **state)
{
    (void)state;
    /* before job/start: 5003 */
    job_ready("poll", false);
    int id = task_start("T1", "psi_1");
    p_answer(P_TASK_CONTEXT);
    assert_int_equal(Rep[id].code, 5003);
    assert_non_null(strstr(Rep[id].msg, "job/start comes first"));
    assert_int_equal(p_pending(P_TASK_INSERT), 0);

    /* an unknown job: 5002 */
    struct requester *rq = rq_new(&id);
    struct gw_errbuf eb;
    assert_int_equal(partner_task_start(P, "J9", "T1", "psi_1", &eb, on_reply, rq), 0);
    p_answer(P_TASK_CONTEXT);
    assert_int_equal(Rep[id].code, 5002);
    assert_string_equal(Rep[id].msg, "job_id: no such job on this node");

    struct requester *rs = rq_new(&id);
    assert_int_equal(partner_job_start(P, "J1", B, &eb, on_reply, rs), 0);
    p_answer(P_JOB_START);
    assert_int_equal(Rep[id].err, 0);

    /* psi_1 runs as T1; the same name under another task id: 5003 */
    id = task_start("T1", "psi_1");
    p_drain();
    assert_int_equal(Rep[id].err, 0);
    id = task_start("T2", "psi_1");
    p_answer(P_TASK_CONTEXT);
    assert_int_equal(Rep[id].code, 5003);
    assert_string_equal(Rep[id].msg, "task_name: psi_1 already started on this node as task T1");

    /* a name that is not in the DAG: 5002 */
    id = task_start("T3", "nope");
    p_answer(P_TASK_CONTEXT);
    assert_int_equal(Rep[id].code, 5002);
    assert_string_equal(Rep[id].msg, "task_name: 'nope' is not a component of job J1");

    assert_int_equal(p_pending(P_TASK_INSERT), 0);
    assert_int_equal(On, 2); /* only T1's two launches */
    assert_int_equal(Tn, 2);
}

/* ---- tests: job/stop -------------------------------------------------------------- */

static void test_job_stop(void **state)
{
    (void)state;
    job_ready("callback", true);
    add_task("T0", "psi_1", "guest", 0, "SUCCESS", "cid-0");
    add_task("T1", "lr_1", "guest", 0, "RUNNING", "cid-1");
    add_task("T1", "lr_1", "host", 1, "READY", "");
    int id;
    struct requester *rq = rq_new(&id);
    struct gw_errbuf eb;
    assert_int_equal(partner_job_stop(P, "J1", NULL, B, &eb, on_reply, rq), 0);
    struct pst *c = p_find(P_TASK_SET);
    assert_int_equal(c->sel, TASK_SEL_JOB);
    assert_true(c->finish_job);
    assert_int_equal(c->to, TASK_STATE_FAILED);
    p_answer(P_TASK_SET);
    /* the moved rows' containers are killed (T0 had ended: left alone) */
    assert_int_equal(On, 2);
    assert_string_equal(Ops[0].what, "kill");
    assert_string_equal(Ops[0].task, "T1");
    assert_string_equal(Ops[0].role, "guest");
    assert_string_equal(Ops[0].cid, "cid-1");
    assert_string_equal(Ops[1].role, "host");
    assert_int_equal(Ops[1].idx, 1);
    assert_string_equal(Ops[1].cid, ""); /* no container yet: the runner goes by name */
    assert_int_equal(Rep[id].n, 1);
    assert_int_equal(Rep[id].err, 0);
    assert_string_equal(Tasks[0].status, "SUCCESS");
    assert_string_equal(Tasks[1].status, "FAILED");
    assert_string_equal(Tasks[2].status, "FAILED");
    assert_string_equal(Tasks[1].error, "stopped: job stopped by " B);
    for (int i = 0; i < Jn; i++)
        assert_string_equal(Jobs[i].status, "FINISHED");

    /* callback mode: the scheduler hears of it */
    while (p_pending(P_PUSH_STATE))
        p_answer(P_PUSH_STATE);
    assert_true(c_pending() >= 1); /* one per moved row today; one would do */
    for (int i = 1; i < Cn; i++)
        assert_string_equal(str_of(Calls[i].body, "status"), "FAILED");
    const struct pcall *pc = &Calls[0];
    assert_string_equal(pc->node, B);
    assert_string_equal(pc->method, "POST");
    assert_string_equal(pc->path, "/v1/interconn/schedule/task/callback");
    assert_string_equal(str_of(pc->body, "task_id"), "T1");
    assert_string_equal(str_of(pc->body, "status"), "FAILED");
    /* the errors of the task's rows, as the store aggregates them */
    assert_non_null(strstr(str_of(pc->body, "error_text"), "stopped: job stopped by " B));
    while (c_pending())
        c_answer(0, 0, "success");
    p_drain();

    /* an unknown job: 5002 */
    rq = rq_new(&id);
    assert_int_equal(partner_job_stop(P, "J9", NULL, B, &eb, on_reply, rq), 0);
    p_answer(P_TASK_SET);
    assert_int_equal(Rep[id].code, 5002);
    assert_string_equal(Rep[id].msg, "job_id: no such job on this node");
}

/* ---- tests: the container callback ---------------------------------------------- */

static char *mint_for(const char *task, const char *role, int idx, char **jti)
{
    cJSON *env = cJSON_CreateArray();
    struct attest_launch in = {.job_id = "J1", .task_id = task, .task_name = "lr_1", .role = role,
                               .role_index = idx, .component = "lr", .provider = "demo",
                               .version = "1.0.0", .image_ref = "demo/lr:1.0.0",
                               .image_digest = DIGEST, .container_name = "c", .container_id = "cid-1",
                               .env = env, .now = (long long)time(NULL), .ttl_s = 600};
    char *tok = NULL;
    assert_int_equal(attest_mint_launch(A, &in, &tok, jti), 0);
    cJSON_Delete(env);
    return tok;
}

static void test_callback_token(void **state)
{
    (void)state;
    job_ready("callback", true);
    struct ptask *t = add_task("T1", "lr_1", "guest", 0, "RUNNING", "cid-1");
    char *jti = NULL;
    char *tok = mint_for("T1", "guest", 0, &jti);
    CP(t->token, jti);
    struct gw_errbuf eb;
    int id;
    int asked = Pqn;

    /* a bad token: 5004 at once, nothing asked or written */
    const char *bad[] = {"not-a-token", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA", ""};
    for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
        struct partner_callback_in in = {.task_id = "T1", .role = "guest", .role_index = 0,
                                         .status = TASK_STATE_SUCCESS, .token = bad[i]};
        struct requester *rq = rq_new(&id);
        gw_errbuf_clear(&eb);
        int rc = partner_container_callback(P, &in, &eb, on_reply, rq);
        assert_int_equal(rc, GW_EAUTH);
        int http;
        assert_int_equal(route_code_for(rc, &http), 5004);
        assert_true(strncmp(eb.msg, "Authorization: ", 15) == 0);
        free(rq);
    }
    /* a good token of another task is bad for this one */
    char *jti2 = NULL;
    char *tok2 = mint_for("T2", "guest", 0, &jti2);
    struct partner_callback_in in2 = {.task_id = "T1", .role = "guest", .role_index = 0,
                                      .status = TASK_STATE_SUCCESS, .token = tok2};
    struct requester *rq = rq_new(&id);
    assert_int_equal(partner_container_callback(P, &in2, &eb, on_reply, rq), GW_EAUTH);
    free(rq);
    assert_int_equal(Pqn, asked);
    assert_string_equal(t->status, "RUNNING");

    /* its own live token: applied at once, and pushed (callback mode) */
    struct partner_callback_in in = {.task_id = "T1", .role = "guest", .role_index = 0,
                                     .status = TASK_STATE_SUCCESS, .token = tok};
    rq = rq_new(&id);
    assert_int_equal(partner_container_callback(P, &in, &eb, on_reply, rq), 0);
    struct pst *c = p_find(P_TASK_SET);
    assert_string_equal(c->s1, jti);
    assert_true(c->claim);
    p_answer(P_TASK_SET);
    assert_int_equal(Rep[id].err, 0);
    assert_string_equal(t->status, "SUCCESS");
    assert_int_equal(p_pending(P_PUSH_STATE), 1);

    /* the same token once the row holds another (refreshed or revoked): 5004 */
    CP(t->token, "another-jti");
    rq = rq_new(&id);
    assert_int_equal(partner_container_callback(P, &in, &eb, on_reply, rq), 0);
    p_answer(P_TASK_SET);
    assert_int_equal(Rep[id].code, 5004);
    settle();
    free(tok);
    free(jti);
    free(tok2);
    free(jti2);
}

/* Without a token: held as a claim (the exit code decides), nothing moves. */
static void test_callback_claim(void **state)
{
    (void)state;
    job_ready("callback", true);
    struct ptask *t = add_task("T1", "lr_1", "guest", 0, "RUNNING", "cid-1");
    add_task("T0", "psi_1", "guest", 0, "SUCCESS", "cid-0");
    struct gw_errbuf eb;
    int id;
    struct partner_callback_in in = {.task_id = "T1", .role = "guest", .role_index = 0,
                                     .status = TASK_STATE_SUCCESS, .token = NULL};
    struct requester *rq = rq_new(&id);
    assert_int_equal(partner_container_callback(P, &in, &eb, on_reply, rq), 0);
    struct pst *c = p_find(P_TASK_CLAIM);
    assert_int_equal(c->to, TASK_STATE_SUCCESS);
    p_answer(P_TASK_CLAIM);
    assert_int_equal(Rep[id].err, 0);
    assert_string_equal(t->status, "RUNNING");
    assert_string_equal(t->claimed, "SUCCESS");
    assert_int_equal(p_pending(P_TASK_SET), 0);
    assert_int_equal(p_pending(P_PUSH_STATE), 0); /* nothing changed: nothing pushed */

    in.task_id = "T0"; /* finished already: 5003 */
    rq = rq_new(&id);
    assert_int_equal(partner_container_callback(P, &in, &eb, on_reply, rq), 0);
    p_answer(P_TASK_CLAIM);
    assert_int_equal(Rep[id].code, 5003);
    in.task_id = "T9"; /* unknown: 5002 */
    rq = rq_new(&id);
    assert_int_equal(partner_container_callback(P, &in, &eb, on_reply, rq), 0);
    p_answer(P_TASK_CLAIM);
    assert_int_equal(Rep[id].code, 5002);
}

/* ---- tests: pushes to the scheduler ------------------------------------------------ */

static void test_push(void **state)
{
    (void)state;
    job_ready("callback", true);
    add_task("T1", "lr_1", "guest", 0, "RUNNING", "cid-1");
    add_task("T1", "lr_1", "host", 1, "RUNNING", "cid-2");

    /* a change: {task_id, status, role} to the job's scheduler */
    partner_task_changed(P, "J1", "T1");
    p_answer(P_PUSH_STATE);
    assert_int_equal(c_pending(), 1);
    const struct pcall *pc = &Calls[0];
    assert_string_equal(pc->node, B);
    assert_string_equal(pc->path, "/v1/interconn/schedule/task/callback");
    assert_string_equal(str_of(pc->body, "task_id"), "T1");
    assert_string_equal(str_of(pc->body, "status"), "RUNNING");
    assert_string_equal(str_of(pc->body, "role"), "guest,host");
    assert_null(cJSON_GetObjectItemCaseSensitive(pc->body, "error_text")); /* not terminal */
    /* acknowledged: acked_status recorded */
    c_answer(0, 0, "success");
    p_answer(P_PUSH_RECORD);
    assert_int_equal(Pn, 1);
    assert_string_equal(Pushes[0].acked, "RUNNING");
    assert_string_equal(Pushes[0].error, "");

    /* terminal: the details go too; a refusal is recorded as the error */
    CP(Tasks[0].status, "FAILED");
    CP(Tasks[0].error, "container exited with code 3");
    partner_task_changed(P, "J1", "T1");
    p_answer(P_PUSH_STATE);
    pc = &Calls[1];
    assert_string_equal(str_of(pc->body, "status"), "FAILED");
    assert_string_equal(str_of(pc->body, "error_text"), "container exited with code 3");
    c_answer(0, 5002, "task_id: unknown task");
    p_answer(P_PUSH_RECORD);
    assert_int_equal(Pn, 2);
    assert_string_equal(Pushes[1].acked, "");
    assert_string_equal(Pushes[1].error, "refused: task_id: unknown task");

    /* unreachable: recorded, to be pushed again by the sweep */
    partner_task_changed(P, "J1", "T1");
    p_answer(P_PUSH_STATE);
    c_answer(GW_EPEER, 0, "connection refused");
    p_answer(P_PUSH_RECORD);
    assert_string_equal(Pushes[2].acked, "");
    assert_string_equal(Pushes[2].error, "connection refused");

    /* READY is not pushed */
    CP(Tasks[0].status, "READY");
    CP(Tasks[1].status, "READY");
    partner_task_changed(P, "J1", "T1");
    p_answer(P_PUSH_STATE);
    assert_int_equal(c_pending(), 0);
    assert_int_equal(Cn, 3);
}

static void test_push_poll_mode(void **state)
{
    (void)state;
    job_ready("poll", true);
    add_task("T1", "lr_1", "guest", 0, "SUCCESS", "cid-1");
    partner_task_changed(P, "J1", "T1");
    p_answer(P_PUSH_STATE);
    assert_int_equal(Cn, 0); /* the scheduler polls: nothing pushed */
    assert_int_equal(p_pending(P_PUSH_RECORD), 0);
    /* a task this node does not have: nothing either */
    partner_task_changed(P, "J1", "T9");
    p_answer(P_PUSH_STATE);
    assert_int_equal(Cn, 0);
}

/* ---- tests: answers that arrive late --------------------------------------------- */

/*
 * Requests whose store answers arrive late, after a job/stop overtook them
 * and after their requesters would have given up (the client went away:
 * the HTTP layer still needs the one reply to free its request): each is
 * answered exactly once, from the state at completion.  The reply frees
 * the requester, so a second reply, or any use of it after, aborts under
 * ASan.
 */
static void test_late_answers(void **state)
{
    (void)state;
    job_ready("callback", true);
    struct gw_errbuf eb;
    int id_start, id_stop, id_claim;
    /* task/start: context answered, the insert in flight */
    struct requester *rq = rq_new(&id_start);
    assert_int_equal(partner_task_start(P, "J1", "T1", "psi_1", &eb, on_reply, rq), 0);
    p_answer(P_TASK_CONTEXT);
    assert_int_equal(p_pending(P_TASK_INSERT), 1);
    /* a claim in flight */
    add_task("T0", "lr_1", "guest", 0, "RUNNING", "cid-0");
    struct partner_callback_in in = {.task_id = "T0", .role = "", .role_index = -1,
                                     .status = TASK_STATE_FAILED};
    struct requester *rc = rq_new(&id_claim);
    assert_int_equal(partner_container_callback(P, &in, &eb, on_reply, rc), 0);
    /* job/stop overtakes both */
    struct requester *rs = rq_new(&id_stop);
    assert_int_equal(partner_job_stop(P, "J1", NULL, B, &eb, on_reply, rs), 0);
    p_answer(P_TASK_SET);
    assert_int_equal(Rep[id_stop].n, 1);
    assert_int_equal(Rep[id_start].n + Rep[id_claim].n, 0);

    /* the late answers: the job finished, nothing is inserted or launched,
     * and each requester gets its one reply */
    p_answer(P_TASK_INSERT);
    assert_int_equal(Rep[id_start].n, 1);
    assert_int_equal(Rep[id_start].err, 0);
    assert_int_equal(Tn, 1); /* only T0 */
    p_answer(P_TASK_CLAIM);
    assert_int_equal(Rep[id_claim].n, 1);
    assert_int_equal(Rep[id_claim].code, 5003); /* T0 was stopped meanwhile */
    for (int i = 0; i < On; i++)
        assert_string_equal(Ops[i].what, "kill");
    /* the stop's pushes and their records complete after all that */
    while (p_pending(P_PUSH_STATE) || c_pending() || p_pending(P_PUSH_RECORD)) {
        if (c_pending())
            c_answer(0, 0, "success");
        else
            p_drain();
    }
    for (int i = 0; i < Rq; i++)
        assert_int_equal(Rep[i].n, 1);
}

int main(void)
{
    json_init();
    int devnull = -1;
    if (!getenv("TEST_LOG")) {
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        log_set_fd(devnull);
    }
    snprintf(keydir, sizeof(keydir), "/tmp/test_partner_key.XXXXXX");
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
        cmocka_unit_test_setup_teardown(test_resources_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_create_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_start_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_poll_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_answers, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    attest_free(A);
    unlink(key);
    rmdir(keydir);
    if (devnull >= 0)
        close(devnull);
    return rc;
}
