/*
 * store.c - all SQL of the scheduler, the partner side and the runner.
 * See store.h for the contract; the statements below are the only writers
 * of job and task statuses and of their t_event rows.
 */
#include "store.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container/runner.h"
#include "gateway/db.h"
#include "gateway/log.h"
#include "gateway/metrics.h"

struct call;

struct store {
    struct db_pool *db;
    struct metrics *m;
    const char *node_id;
    struct call *live; /* statements in flight: freed by store_free when the pool
                          dropped them unanswered (shutdown) */
};

struct store *store_new(struct db_pool *db, struct metrics *m, const char *node_id)
{
    struct store *st = gw_xcalloc(1, sizeof(*st));
    st->db = db;
    st->m = m;
    st->node_id = node_id;
    return st;
}

static void call_free(struct call *c);

void store_free(struct store *st)
{
    if (!st)
        return;
    while (st->live)
        call_free(st->live);
    free(st);
}

/* ---- plumbing ------------------------------------------------------------------
 * One context per statement: the caller's callback, how to read the result
 * and, for status changes, what to log and count once it committed. */

enum shape { SHAPE_ROWS, SHAPE_CHANGE, SHAPE_SJOB, SHAPE_TASKS };

struct call {
    struct store *st;
    enum shape shape;
    db_rows_cb rows_cb;
    store_change_cb change_cb;
    sjob_view_cb view_cb;
    void *arg;
    /* a transition: entity and target, logged and counted when it moved */
    const char *entity;
    const char *to;
    char *log_id;
    char *reason;
    int moved_col; /* SHAPE_ROWS: row 0's column counting rows moved (0: none) */
    /* store_change column layout: old, changed, job_id, parties, count */
    struct call *prev, *next; /* on st->live while the statement runs */
};

static void call_free(struct call *c)
{
    if (c->st) {
        if (c->prev)
            c->prev->next = c->next;
        else if (c->st->live == c)
            c->st->live = c->next;
        if (c->next)
            c->next->prev = c->prev;
    }
    free(c->log_id);
    free(c->reason);
    free(c);
}

static const char *res_get(const struct db_res *res, int row, int col)
{
    return res && row < db_res_rows(res) && col < db_res_cols(res) ? db_res_get(res, row, col)
                                                                    : NULL;
}

/* A committed transition: its log line and its metric, written here only.
 * to_static: the state's own name (the metric keeps the pointer), or NULL
 * for a status this build does not know (logged, not counted). */
static void note_change(const struct call *c, const struct log_ctx *lc, const char *entity,
                        const char *id, const char *from, const char *to,
                        const char *to_static, long long rows)
{
    char n[24];
    snprintf(n, sizeof(n), "%lld", rows);
    log_kv(LOG_LEVEL_INFO, lc, "state.change", c->reason ? c->reason : "", "entity", entity, "id",
           id ? id : "", "to", to, "rows", n, from ? "from" : NULL, from, NULL);
    if (c->st->m && to_static)
        metrics_state(c->st->m, entity, to_static, rows > 0 ? rows : 1);
}

static void deliver_rows(struct call *c, int err, const struct db_res *res, const char *errmsg)
{
    struct db_rows r = {.err = err, .msg = err ? errmsg : ""};
    const char **v = NULL;
    const char *moved = c->moved_col > 0 && !err ? res_get(res, 0, c->moved_col) : NULL;
    long long nmoved = moved ? atoll(moved) : 0;
    if (nmoved > 0 && c->entity) {
        struct log_ctx lc = {.node_id = c->st->node_id, .job_id = c->log_id};
        note_change(c, &lc, c->entity, c->log_id, NULL, c->to, c->to, nmoved);
    }
    if (!err && res) {
        r.n = db_res_rows(res);
        r.cols = db_res_cols(res);
        v = gw_xcalloc((size_t)r.n * (size_t)r.cols + 1, sizeof(char *));
        for (int i = 0; i < r.n; i++)
            for (int j = 0; j < r.cols; j++)
                v[i * r.cols + j] = db_res_get(res, i, j);
    }
    r.v = v;
    c->rows_cb(c->arg, &r);
    free(v);
}

/* Status changes answer one row: old, changed ('t'/'f'), job_id, parties,
 * count (rows moved, cascades included). */
static void deliver_change(struct call *c, int err, const struct db_res *res, const char *errmsg)
{
    struct store_change r = {.err = err, .msg = err ? errmsg : ""};
    if (!err) {
        r.old = res_get(res, 0, 0);
        const char *ch = res_get(res, 0, 1);
        r.changed = ch && strcmp(ch, "t") == 0;
        r.job_id = res_get(res, 0, 2);
        r.parties = res_get(res, 0, 3);
        const char *n = res_get(res, 0, 4);
        r.count = n ? atoll(n) : 0;
    }
    if (!err && r.changed && c->entity) {
        struct log_ctx lc = {.node_id = c->st->node_id, .job_id = r.job_id};
        note_change(c, &lc, c->entity, c->log_id, r.old ? r.old : "", c->to, c->to, r.count);
    }
    if (c->change_cb)
        c->change_cb(c->arg, &r);
}

static void deliver_view(struct call *c, int err, const struct db_res *res, const char *errmsg);

/* store_task_set's rows: the summary, then (job_id, task_id, role,
 * role_index, container_id, old, new) per row written; each row whose
 * status moved gets its log line and metric once committed. */
static void deliver_tasks(struct call *c, int err, const struct db_res *res, const char *errmsg)
{
    const char *jobs = err ? NULL : res_get(res, 0, 3); /* t_job rows finished with it */
    long long njobs = jobs ? atoll(jobs) : 0;
    if (njobs > 0) {
        struct log_ctx lc = {.node_id = c->st->node_id,
                             .job_id = c->log_id ? c->log_id : res_get(res, 1, 0)};
        const char *fin = job_state_name(JOB_STATE_FINISHED);
        note_change(c, &lc, "job", lc.job_id, NULL, fin, fin, njobs);
    }
    if (!err) {
        for (int i = 1; i < db_res_rows(res); i++) {
            const char *old = res_get(res, i, 5), *nw = res_get(res, i, 6);
            if (!nw || (old && strcmp(old, nw) == 0))
                continue;
            struct log_ctx lc = {.node_id = c->st->node_id,
                                 .job_id = res_get(res, i, 0),
                                 .task_id = res_get(res, i, 1)};
            enum task_state ts;
            const char *known = task_state_parse(nw, &ts) ? task_state_name(ts) : NULL;
            char *id = gw_xasprintf("%s.%s", res_get(res, i, 2), res_get(res, i, 3));
            note_change(c, &lc, "task", id, old ? old : "", nw, known, 1);
            free(id);
        }
    }
    deliver_rows(c, err, res, errmsg);
}

static void on_result(void *arg, int err, const struct db_res *res, const char *errmsg,
                      const char *sqlstate)
{
    (void)sqlstate;
    struct call *c = arg;
    switch (c->shape) {
    case SHAPE_ROWS: deliver_rows(c, err, res, errmsg); break;
    case SHAPE_CHANGE: deliver_change(c, err, res, errmsg); break;
    case SHAPE_SJOB: deliver_view(c, err, res, errmsg); break;
    case SHAPE_TASKS: deliver_tasks(c, err, res, errmsg); break;
    }
    call_free(c);
}

static int run(struct store *st, struct call *c, const char *sql, int n, const char *const *p)
{
    c->st = st;
    c->next = st->live;
    if (st->live)
        st->live->prev = c;
    st->live = c;
    int rc = db_query(st->db, sql, n, p, on_result, c, NULL);
    if (rc != 0)
        call_free(c);
    return rc;
}

static int run_rows(struct store *st, const char *sql, int n, const char *const *p,
                    db_rows_cb cb, void *arg)
{
    struct call *c = gw_xcalloc(1, sizeof(*c));
    c->shape = SHAPE_ROWS;
    c->rows_cb = cb;
    c->arg = arg;
    return run(st, c, sql, n, p);
}

static int run_change(struct store *st, const char *sql, int n, const char *const *p,
                      store_change_cb cb, void *arg)
{
    struct call *c = gw_xcalloc(1, sizeof(*c));
    c->shape = SHAPE_CHANGE;
    c->change_cb = cb;
    c->arg = arg;
    return run(st, c, sql, n, p);
}

/* A status change: as run_change, logged and counted when it commits. */
static int run_transition(struct store *st, const char *sql, int n, const char *const *p,
                          const char *entity, const char *to, char *log_id_take,
                          const char *reason, store_change_cb cb, void *arg)
{
    struct call *c = gw_xcalloc(1, sizeof(*c));
    c->shape = SHAPE_CHANGE;
    c->change_cb = cb;
    c->arg = arg;
    c->entity = entity;
    c->to = to;
    c->log_id = log_id_take;
    c->reason = reason ? gw_xstrdup(reason) : NULL;
    return run(st, c, sql, n, p);
}

/* ---- scheduler side: the view of a job ----------------------------------------- */

static void deliver_view(struct call *c, int err, const struct db_res *res, const char *errmsg)
{
    struct sjob_view v = {.err = err, .msg = err ? errmsg : ""};
    cJSON *parties = NULL, *tasks = NULL;
    struct sjob_task_view *tv = NULL;
    if (!err && db_res_rows(res) > 0) {
        v.found = true;
        if (!job_state_parse(res_get(res, 0, 0), &v.status)) {
            v.err = GW_EINTERNAL;
            v.msg = "unknown job status in t_schedule_job";
        }
        const char *sync = res_get(res, 0, 1);
        v.poll_mode = sync && strcmp(sync, "poll") == 0;
        parties = cJSON_Parse(res_get(res, 0, 2) ? res_get(res, 0, 2) : "[]");
        v.parties = parties;
        const char *tmo = res_get(res, 0, 3);
        v.timed_out_s = tmo ? atoll(tmo) : 0;
        tasks = cJSON_Parse(res_get(res, 0, 4) ? res_get(res, 0, 4) : "[]");
        int n = cJSON_GetArraySize(tasks);
        tv = gw_xcalloc((size_t)n + 1, sizeof(*tv));
        const cJSON *t;
        int i = 0;
        cJSON_ArrayForEach(t, tasks)
        {
            struct sjob_task_view *x = &tv[i++];
            x->name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "name"));
            x->task_id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "task_id"));
            if (!task_state_parse(
                    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "status")),
                    &x->status))
                x->status = TASK_STATE_PENDING;
            x->sendable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "sendable"));
            x->deps = cJSON_GetObjectItemCaseSensitive(t, "deps");
            x->fail_node = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "fail_node"));
            x->fail_error =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "fail_error"));
        }
        v.ntasks = i;
        v.tasks = tv;
    }
    c->view_cb(c->arg, &v);
    free(tv);
    cJSON_Delete(tasks);
    cJSON_Delete(parties);
}

int store_sjob_load(struct store *st, const char *job_id, long long default_timeout_s,
                    sjob_view_cb cb, void *arg)
{
    /* Per task name: the status over every party (bfia_task_agg, the one
     * definition of §3.3), whether a READY party still waits for task/start,
     * the upstream names and the first failed party. */
    static const char sql[] =
        "SELECT j.status, j.sync_type, j.parties::text,"
        /* the job's timeout in seconds when it has passed, else 0 */
        " (SELECT CASE WHEN j.status = 'RUNNING' AND x.t > 0"
        "   AND j.start_time < now() - make_interval(secs => x.t) THEN x.t ELSE 0 END"
        "  FROM (SELECT CASE WHEN jsonb_typeof(j.config #> '{job_params,common,timeout_s}')"
        "   = 'number' THEN (j.config #>> '{job_params,common,timeout_s}')::bigint"
        "   ELSE $2::bigint END AS t) x)::text,"
        " (SELECT json_agg(json_build_object('name', g.task_name, 'task_id', g.task_id,"
        "   'status', g.st, 'sendable', g.sendable, 'deps', g.deps, 'fail_node', g.fail_node,"
        "   'fail_error', g.fail_error) ORDER BY g.task_name)"
        "  FROM (SELECT t.task_name, min(t.task_id) AS task_id,"
        "   bfia_task_agg(array_agg(t.status::text)) AS st,"
        "   bool_or(t.status = 'READY' AND t.start_sent_at IS NULL) AS sendable,"
        "   (array_agg(t.depends_on))[1] AS deps,"
        "   (array_agg(t.node_id ORDER BY t.node_id) FILTER (WHERE t.status = 'FAILED'))[1]"
        "    AS fail_node,"
        "   (array_agg(t.error_text ORDER BY t.node_id) FILTER (WHERE t.status = 'FAILED'))[1]"
        "    AS fail_error"
        "   FROM t_schedule_task t WHERE t.job_id = j.job_id GROUP BY t.task_name) g)::text"
        " FROM t_schedule_job j WHERE j.job_id = $1";
    char tmo[24];
    snprintf(tmo, sizeof(tmo), "%lld", default_timeout_s);
    const char *p[2] = {job_id, tmo};
    struct call *c = gw_xcalloc(1, sizeof(*c));
    c->shape = SHAPE_SJOB;
    c->view_cb = cb;
    c->arg = arg;
    return run(st, c, sql, 2, p);
}

/* ---- scheduler side: transitions ------------------------------------------------ */

int store_sjob_set(struct store *st, const struct sjob_change *c, store_change_cb cb, void *arg)
{
    /* The job row is locked first (o), so old is the status the CAS saw. */
    static const char sql[] =
        "WITH o AS (SELECT status AS old, parties FROM t_schedule_job WHERE job_id = $1"
        "  FOR UPDATE)"
        ", u AS (UPDATE t_schedule_job SET status = $2::text,"
        "  outcome = CASE WHEN $2::text = 'FINISHED' THEN $3::text ELSE outcome END,"
        "  error_text = CASE WHEN $2::text IN ('FINISHED','REJECTED') AND error_text = '' THEN $4::text"
        "   ELSE error_text END,"
        "  wait_reason = '',"
        "  progress = CASE WHEN $2::text = 'FINISHED' THEN 100 ELSE progress END,"
        "  start_time = CASE WHEN $2::text IN ('RUNNING','FINISHED') THEN coalesce(start_time, now())"
        "   ELSE start_time END,"
        "  end_time = CASE WHEN $2::text IN ('FINISHED','REJECTED') THEN now() ELSE end_time END,"
        "  updated_at = now()"
        "  WHERE job_id = $1 AND status = ANY ($5::text[]) RETURNING 1)"
        ", tl AS (SELECT task_id, node_id, status AS old FROM t_schedule_task"
        "  WHERE job_id = $1 AND $2::text IN ('FINISHED','REJECTED') AND status = ANY ($7::text[])"
        "  AND EXISTS (SELECT 1 FROM u) FOR UPDATE)"
        ", t AS (UPDATE t_schedule_task s SET status = 'FAILED', status_channel = $6::text,"
        "  error_text = CASE WHEN s.error_text = '' THEN $8::text ELSE s.error_text END,"
        "  wait_reason = '', end_time = now(), updated_at = now() FROM tl"
        "  WHERE s.job_id = $1 AND s.task_id = tl.task_id AND s.node_id = tl.node_id"
        "  RETURNING s.task_id, s.node_id, tl.old)"
        ", e AS (INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
        "  SELECT 'schedule_job', $1, o.old, $2::text, $6::text, $4::text FROM u, o"
        "  UNION ALL SELECT 'schedule_task', $1 || '/' || task_id || '@' || node_id, old,"
        "  'FAILED', $6::text, $8::text FROM t)"
        " SELECT o.old, EXISTS (SELECT 1 FROM u), $1::text, o.parties::text,"
        "  (SELECT count(*) FROM u) + (SELECT count(*) FROM t) FROM o";
    const char *outcome = c->to == JOB_STATE_FINISHED ? job_outcome_name(c->outcome) : NULL;
    if (outcome && !*outcome)
        outcome = "failed";
    char *task_error =
        c->task_error ? gw_xstrdup(c->task_error)
                      : gw_xasprintf("stopped: job %s: %s", outcome ? outcome : "rejected",
                                     c->reason ? c->reason : "");
    const char *p[8] = {c->job_id,
                        job_state_name(c->to),
                        outcome,
                        c->reason ? c->reason : "",
                        job_from_set(c->to),
                        state_channel_name(c->channel),
                        task_live_set(),
                        task_error};
    int rc = run_transition(st, sql, 8, p, "schedule_job", job_state_name(c->to),
                            gw_xstrdup(c->job_id), c->reason, cb, arg);
    free(task_error);
    return rc;
}

int store_sjob_wait(struct store *st, const char *job_id, const char *reason, store_change_cb cb,
                    void *arg)
{
    static const char sql[] =
        "WITH u AS (UPDATE t_schedule_job SET wait_reason = $2, updated_at = now()"
        "  WHERE job_id = $1 AND status IN ('PENDING','READY','RUNNING') RETURNING status)"
        " SELECT (SELECT status FROM u), EXISTS (SELECT 1 FROM u), $1::text, NULL, 0";
    const char *p[2] = {job_id, reason};
    return run_change(st, sql, 2, p, cb, arg);
}

int store_stask_set(struct store *st, const struct stask_change *c, store_change_cb cb, void *arg)
{
    /* o locks the party row (by job, or by task id and node for a partner's
     * callback); the CAS takes the states task_from_set(to) allows, or, with
     * refresh_terminal, a repeat of the current terminal status (a push
     * after a poll: the details may be new).  Events only for real moves. */
    static const char sql[] =
        "WITH o AS (SELECT job_id, task_id, node_id, status AS old FROM t_schedule_task"
        "  WHERE task_id = $2 AND node_id = $3 AND ($1::text IS NULL OR job_id = $1)"
        "  LIMIT 1 FOR UPDATE)"
        ", u AS (UPDATE t_schedule_task t SET status = $4::text,"
        "  status_channel = CASE WHEN t.status = $4::text THEN t.status_channel ELSE $5::text END,"
        "  wait_reason = '', error_text = coalesce(left($7::text, 4000), t.error_text),"
        "  exit_code = CASE WHEN $4::text IN ('SUCCESS','FAILED') THEN coalesce($8::int, t.exit_code)"
        "   ELSE NULL END,"
        "  log_tail = coalesce(right($9::text, 8192), t.log_tail),"
        "  start_time = CASE WHEN $4::text = 'READY' THEN t.start_time"
        "   ELSE coalesce(t.start_time, now()) END,"
        "  end_time = CASE WHEN t.status = $4::text THEN t.end_time"
        "   WHEN $4::text IN ('SUCCESS','FAILED') THEN now() ELSE NULL END,"
        "  updated_at = now() FROM o"
        "  WHERE t.job_id = o.job_id AND t.task_id = o.task_id AND t.node_id = o.node_id"
        "  AND (($10::text = 'f' OR EXISTS (SELECT 1 FROM t_schedule_job sj WHERE sj.job_id = t.job_id"
        "   AND sj.status = 'RUNNING')) AND (t.status = ANY ($6::text[])"
        "   OR ($11::text = 't' AND t.status = $4::text AND $4::text IN ('SUCCESS','FAILED')"
        "    AND $8::int IS NOT NULL)))"
        "  RETURNING o.old)"
        ", e AS (INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
        "  SELECT 'schedule_task', o.job_id || '/' || o.task_id || '@' || o.node_id, o.old, $4::text,"
        "  $5::text, $12::text FROM o, u WHERE u.old <> $4::text)"
        " SELECT o.old, EXISTS (SELECT 1 FROM u WHERE old <> $4::text), o.job_id, NULL,"
        "  (SELECT count(*) FROM u WHERE old <> $4::text) FROM o";
    const char *p[12] = {c->job_id,
                         c->task_id,
                         c->node,
                         task_state_name(c->to),
                         state_channel_name(c->channel),
                         task_from_set(c->to),
                         c->error_text,
                         c->exit_code,
                         c->log_tail,
                         c->job_running ? "t" : "f",
                         c->refresh_terminal ? "t" : "f",
                         c->reason ? c->reason : ""};
    return run_transition(st, sql, 12, p, "schedule_task", task_state_name(c->to),
                          gw_xasprintf("%s@%s", c->task_id, c->node), c->reason, cb, arg);
}

int store_stask_note(struct store *st, const char *job_id, const char *task_id, const char *node,
                     const char *wait_reason, bool unclaim, int stale_s, store_change_cb cb,
                     void *arg)
{
    static const char sql[] =
        "WITH u AS (UPDATE t_schedule_task SET wait_reason = coalesce($4::text, wait_reason),"
        "  start_sent_at = CASE WHEN $5::text = 't' AND status = 'READY'"
        "   AND ($6::int <= 0 OR start_sent_at < now() - make_interval(secs => $6::int))"
        "   THEN NULL ELSE start_sent_at END,"
        "  updated_at = now()"
        "  WHERE job_id = $1 AND task_id = $2 AND node_id = $3"
        "  AND status IN ('PENDING','READY','RUNNING')"
        "  AND ($5::text = 'f' OR (status = 'READY' AND start_sent_at IS NOT NULL AND ($6::int <= 0"
        "   OR start_sent_at < now() - make_interval(secs => $6::int))))"
        "  RETURNING status)"
        " SELECT (SELECT status FROM u), $5::text = 't' AND EXISTS (SELECT 1 FROM u), $1::text, NULL,"
        "  (SELECT count(*) FROM u)";
    char stale[16];
    snprintf(stale, sizeof(stale), "%d", stale_s);
    const char *p[6] = {job_id, task_id, node, wait_reason, unclaim ? "t" : "f", stale};
    return run_change(st, sql, 6, p, cb, arg);
}

int store_stask_claim(struct store *st, const char *job_id, const char *task_id,
                      db_rows_cb cb, void *arg)
{
    /* The claim: only the pass whose UPDATE sets start_sent_at sends. */
    static const char sql[] =
        "UPDATE t_schedule_task SET start_sent_at = now(), wait_reason = '', updated_at = now()"
        " WHERE job_id = $1 AND task_id = $2 AND status = 'READY' AND start_sent_at IS NULL"
        " RETURNING node_id";
    const char *p[2] = {job_id, task_id};
    return run_rows(st, sql, 2, p, cb, arg);
}

int store_stask_poll_targets(struct store *st, const char *job_id, int stale_s, db_rows_cb cb,
                             void *arg)
{
    static const char sql[] =
        "SELECT task_id, node_id, (status = 'READY' AND start_sent_at < now()"
        "  - make_interval(secs => $2::int)), roles->>0 FROM t_schedule_task WHERE job_id = $1"
        " AND (status = 'RUNNING' OR (status = 'READY' AND start_sent_at IS NOT NULL))";
    char stale[16];
    snprintf(stale, sizeof(stale), "%d", stale_s);
    const char *p[2] = {job_id, stale};
    return run_rows(st, sql, 2, p, cb, arg);
}

int store_sjob_live(struct store *st, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT job_id FROM t_schedule_job WHERE status IN ('READY','RUNNING')";
    return run_rows(st, sql, 0, NULL, cb, arg);
}

int store_sjob_stops_pending(struct store *st, int window_s, int limit, db_rows_cb cb,
                             void *arg)
{
    static const char sql[] =
        "SELECT job_id, (SELECT coalesce(jsonb_agg(p), '[]') FROM"
        "  jsonb_array_elements_text(parties) p WHERE NOT stop_acked ? p)::text"
        " FROM t_schedule_job WHERE NOT stop_done AND status IN ('FINISHED','REJECTED')"
        " AND updated_at > now() - make_interval(secs => $2::int) ORDER BY updated_at"
        " LIMIT $1::int";
    char lim[16], win[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(win, sizeof(win), "%d", window_s);
    const char *p[2] = {lim, win};
    return run_rows(st, sql, 2, p, cb, arg);
}

int store_sjob_stop_acked(struct store *st, const char *job_id, const char *node,
                          store_change_cb cb, void *arg)
{
    static const char sql[] =
        "WITH u AS (UPDATE t_schedule_job SET stop_acked = stop_acked || jsonb_build_array($2::text)"
        "  WHERE job_id = $1 AND NOT stop_acked ? $2 RETURNING 1)"
        " SELECT NULL, EXISTS (SELECT 1 FROM u), $1::text, NULL, (SELECT count(*) FROM u)";
    const char *p[2] = {job_id, node};
    return run_change(st, sql, 2, p, cb, arg);
}

int store_component_roles(struct store *st, const char *components_json, db_rows_cb cb,
                          void *arg)
{
    static const char sql[] =
        "SELECT c.role_list::text FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(v, ord)"
        " LEFT JOIN t_component c ON c.component_name = x.v->>'componentName'"
        " AND c.provider = x.v->>'provider' AND c.version = x.v->>'version' ORDER BY x.ord";
    const char *p[1] = {components_json};
    return run_rows(st, sql, 1, p, cb, arg);
}

int store_sjob_insert(struct store *st, const struct sjob_new *n, store_change_cb cb, void *arg)
{
    static const char sql[] =
        "WITH j AS (INSERT INTO t_schedule_job (job_id, flow_id, old_job_id, dag, config, initiator,"
        "  scheduler, parties, sync_type, requires_approval, status, wait_reason)"
        "  VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $8::jsonb, $9, $10::boolean,"
        "  CASE WHEN $10::boolean THEN 'PENDING' ELSE 'READY' END,"
        "  CASE WHEN $10::boolean THEN 'awaiting approval: job/audit_confirm with READY or"
        " REJECTED' ELSE '' END)"
        "  ON CONFLICT (job_id) DO NOTHING RETURNING job_id, status)"
        ", t AS (INSERT INTO t_schedule_task (job_id, task_id, node_id, task_name, component,"
        "  provider, version, roles, depends_on, status)"
        "  SELECT $1, x.task_id, x.node_id, x.task_name, x.component, x.provider, x.version,"
        "  x.roles, x.depends_on, 'READY' FROM jsonb_to_recordset($11::jsonb) AS x(task_id text,"
        "  node_id text, task_name text, component text, provider text, version text, roles jsonb,"
        "  depends_on jsonb) WHERE EXISTS (SELECT 1 FROM j) RETURNING 1)"
        ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'schedule_job', $1, status, 'api', 'create_all from ' || $12 FROM j)"
        " SELECT NULL, EXISTS (SELECT 1 FROM j), $1::text, $8, (SELECT count(*) FROM t)";
    const char *p[12] = {n->job_id,    n->flow_id,   n->old_job_id, n->dag,
                         n->config,    n->initiator, n->scheduler,  n->parties,
                         n->sync_type, n->approval ? "true" : "false", n->tasks,
                         n->by};
    return run_transition(st, sql, 12, p, "schedule_job", n->approval ? "PENDING" : "READY",
                          gw_xstrdup(n->job_id), "job created", cb, arg);
}

/* ---- reads for the API ------------------------------------------------------------ */

int store_sjob_status(struct store *st, const char *job_id, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT j.status,"
        " (SELECT json_object_agg(task_name, st) FROM (SELECT task_name,"
        "   bfia_task_agg(array_agg(status::text)) AS st FROM t_schedule_task"
        "   WHERE job_id = j.job_id GROUP BY task_name) x)::text,"
        " coalesce((SELECT json_object_agg(task_id, st) FROM (SELECT task_id,"
        "   bfia_task_agg(array_agg(status::text)) AS st FROM t_schedule_task"
        "   WHERE job_id = j.job_id GROUP BY task_id) y), '{}')::text"
        " FROM t_schedule_job j WHERE j.job_id = $1";
    const char *p[1] = {job_id};
    return run_rows(st, sql, 1, p, cb, arg);
}

int store_job_detail(struct store *st, const char *job_id, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT coalesce("
        " (SELECT json_build_object('job_id', j.job_id, 'job_status', j.status,"
        "  'outcome', coalesce(j.outcome, ''), 'scheduler', j.scheduler, 'sync_type', j.sync_type,"
        "  'progress', CASE WHEN j.status = 'FINISHED' THEN 100 ELSE coalesce((SELECT"
        "   (100 * count(*) FILTER (WHERE status IN ('SUCCESS','FAILED')) / count(*))::int"
        "   FROM t_schedule_task WHERE job_id = j.job_id), 0) END,"
        "  'wait_reason', j.wait_reason, 'error_text', j.error_text,"
        "  'status', coalesce((SELECT json_object_agg(task_id, st) FROM (SELECT task_id,"
        "    bfia_task_agg(array_agg(status::text)) AS st FROM t_schedule_task"
        "    WHERE job_id = j.job_id GROUP BY task_id) y), '{}'),"
        "  'tasks', coalesce((SELECT json_agg(json_build_object('task_id', t.task_id,"
        "    'task_name', t.task_name, 'component', t.component, 'node_id', t.node_id,"
        "    'roles', t.roles, 'status', t.status, 'channel', coalesce(t.status_channel, ''),"
        "    'wait_reason', t.wait_reason, 'error_text', t.error_text,"
        "    'exit_code', t.exit_code, 'log_tail', t.log_tail) ORDER BY t.created_at, t.task_name,"
        "    t.node_id) FROM t_schedule_task t WHERE t.job_id = j.job_id), '[]'))"
        "  FROM t_schedule_job j WHERE j.job_id = $1),"
        " (SELECT json_build_object('job_id', $1::text, 'job_status', min(j.status),"
        "  'outcome', '', 'scheduler', min(j.scheduler), 'sync_type', min(j.sync_type),"
        "  'progress', 0, 'wait_reason', '', 'error_text', '',"
        "  'status', coalesce((SELECT json_object_agg(task_id, st) FROM (SELECT task_id,"
        "    bfia_task_agg(array_agg(status::text)) AS st FROM t_task WHERE job_id = $1"
        "    GROUP BY task_id) y), '{}'),"
        "  'tasks', coalesce((SELECT json_agg(json_build_object('task_id', t.task_id,"
        "    'task_name', t.task_name, 'component', t.component, 'node_id', $2::text,"
        "    'roles', json_build_array(t.role || '.' || t.role_index), 'status', t.status,"
        "    'channel', coalesce(t.status_channel, ''), 'wait_reason', t.wait_reason,"
        "    'error_text', t.error_text, 'exit_code', t.exit_code, 'log_tail', t.log_tail)"
        "    ORDER BY t.created_at) FROM t_task t WHERE t.job_id = $1), '[]'))"
        "  FROM t_job j WHERE j.job_id = $1 HAVING count(*) > 0))::text";
    const char *p[2] = {job_id, st->node_id};
    return run_rows(st, sql, 2, p, cb, arg);
}

int store_job_list(struct store *st, const char *flow_id, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT job_id, status FROM t_schedule_job WHERE ($1::text IS NULL OR flow_id = $1)"
        " UNION SELECT job_id, min(status) FROM t_job WHERE ($1::text IS NULL OR flow_id = $1)"
        "  AND job_id NOT IN (SELECT job_id FROM t_schedule_job) GROUP BY job_id"
        " ORDER BY 1 DESC LIMIT 10000";
    const char *p[1] = {flow_id};
    return run_rows(st, sql, 1, p, cb, arg);
}

int store_scheduler_of(struct store *st, const char *job_id, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT scheduler FROM t_schedule_job WHERE job_id = $1"
        " UNION ALL SELECT scheduler FROM t_job WHERE job_id = $1 LIMIT 1";
    const char *p[1] = {job_id};
    return run_rows(st, sql, 1, p, cb, arg);
}

/* ---- partner side ------------------------------------------------------------------ */

int store_job_create(struct store *st, const struct job_new *n, db_rows_cb cb, void *arg)
{
    /* A job is created once: when any row of it exists, nothing is
     * inserted, and the caller compares the stored DAG, config and roles
     * with the request's (an identical repeat is a retry; anything else is
     * refused).  jsonb's text form is canonical, so the digests compare
     * meaning, not spelling. */
    static const char sql[] =
        "WITH comps AS (SELECT x->>'name' AS name, x->>'componentName' AS cn,"
        "  x->>'provider' AS pv, x->>'version' AS ver"
        "  FROM jsonb_array_elements($3::jsonb->'components') x)"
        ", missing AS (SELECT string_agg(c.pv || '/' || c.cn || '@' || c.ver, ', ') AS m FROM comps c"
        "  WHERE NOT EXISTS (SELECT 1 FROM t_component t WHERE t.component_name = c.cn"
        "  AND t.provider = c.pv AND t.version = c.ver))"
        ", old AS (SELECT md5(min(dag::text) || min(config::text) ||"
        "  jsonb_agg(role ORDER BY role)::text || min(scheduler)) AS d FROM t_job WHERE job_id = $1"
        "  HAVING count(*) > 0)"
        ", ins AS (INSERT INTO t_job (job_id, role, flow_id, dag, config, initiator, scheduler,"
        "  sync_type, status)"
        "  SELECT $1, r, $2, $3::jsonb, $4::jsonb, $5, $6, $7, 'READY'"
        "  FROM jsonb_array_elements_text($8::jsonb) r WHERE (SELECT m FROM missing) IS NULL"
        "  AND NOT EXISTS (SELECT 1 FROM old)"
        "  ON CONFLICT (job_id, role) DO NOTHING RETURNING role)"
        ", ev AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'job', $1 || '/' || role, 'READY', 'api', 'job/create from ' || $9 FROM ins)"
        " SELECT (SELECT count(*) FROM ins), (SELECT m FROM missing), (SELECT d FROM old),"
        "  md5($3::jsonb::text || $4::jsonb::text || (SELECT jsonb_agg(r ORDER BY r)"
        "  FROM jsonb_array_elements_text($8::jsonb) r)::text || $6::text)";
    const char *p[9] = {n->job_id,    n->flow_id,   n->dag,       n->config, n->initiator,
                        n->scheduler, n->sync_type, n->roles,     n->by};
    return run_rows(st, sql, 9, p, cb, arg);
}

int store_job_start(struct store *st, const char *job_id, const char *by, db_rows_cb cb,
                    void *arg)
{
    static const char sql[] =
        "WITH u AS (UPDATE t_job SET status = 'RUNNING', start_time = now(), updated_at = now()"
        "  WHERE job_id = $1 AND status = ANY ($2::text[]) RETURNING role)"
        ", ev AS (INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
        "  SELECT 'job', $1 || '/' || role, 'READY', 'RUNNING', 'api', 'job/start by ' || $3"
        "  FROM u)"
        " SELECT count(*), count(*) FILTER (WHERE status IN ('FINISHED','REJECTED')),"
        "  (SELECT count(*) FROM u) FROM t_job WHERE job_id = $1";
    const char *p[3] = {job_id, job_from_set(JOB_STATE_RUNNING), by};
    struct call *c = gw_xcalloc(1, sizeof(*c));
    c->shape = SHAPE_ROWS;
    c->rows_cb = cb;
    c->arg = arg;
    c->entity = "job";
    c->to = job_state_name(JOB_STATE_RUNNING);
    c->log_id = gw_xstrdup(job_id);
    c->reason = gw_xasprintf("job/start by %s", by);
    c->moved_col = 2;
    return run(st, c, sql, 3, p);
}

int store_task_context(struct store *st, const char *job_id, const char *task_name,
                       db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT j.role, j.status, j.dag::text, j.config::text, c.description::text, p.image_digest,"
        " c.provider, c.version, p.image, j.scheduler,"
        " (SELECT t.task_id FROM t_task t WHERE t.job_id = $1 AND t.task_name = $2 LIMIT 1)"
        " FROM t_job j"
        " LEFT JOIN LATERAL (SELECT x FROM jsonb_array_elements(j.dag->'components') x"
        "   WHERE x->>'name' = $2 LIMIT 1) comp ON true"
        " LEFT JOIN t_component c ON c.component_name = comp.x->>'componentName'"
        "   AND c.provider = comp.x->>'provider' AND c.version = comp.x->>'version'"
        " LEFT JOIN t_provider p ON p.name = c.provider AND p.version = c.version"
        "   AND p.device = c.device"
        " WHERE j.job_id = $1 ORDER BY j.role";
    const char *p[2] = {job_id, task_name};
    return run_rows(st, sql, 2, p, cb, arg);
}

int store_task_insert(struct store *st, const char *job_id, const char *task_id,
                      const char *task_name, const char *component, const char *provider,
                      const char *version, const char *rows_json, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "WITH r AS (SELECT * FROM jsonb_to_recordset($5::jsonb) AS x(role text, role_index int,"
        "  container_name text, spec jsonb))"
        ", ins AS (INSERT INTO t_task (job_id, task_id, role, role_index, task_name, component,"
        "  provider, version, spec, status, container_name)"
        "  SELECT $1, $2, r.role, r.role_index, $3, $4, $6, $7, r.spec, 'READY', r.container_name"
        "  FROM r JOIN t_job j ON j.job_id = $1 AND j.role = r.role"
        "  AND j.status NOT IN ('FINISHED','REJECTED')"
        "  ON CONFLICT (job_id, task_id, role, role_index) DO NOTHING"
        "  RETURNING role, role_index)"
        ", ev AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'task', $1 || '/' || $2 || '/' || role || '.' || role_index, 'READY', 'api',"
        "  'task/start' FROM ins)"
        " SELECT role, role_index FROM ins"
        " UNION SELECT role, role_index FROM t_task WHERE job_id = $1 AND task_id = $2"
        "  AND status = 'READY'";
    const char *p[7] = {job_id, task_id, task_name, component, rows_json, provider, version};
    return run_rows(st, sql, 7, p, cb, arg);
}

int store_task_poll(struct store *st, const char *task_id, const char *role, int role_index,
                    db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT bfia_task_agg(array_agg(status::text)),"
        " string_agg(NULLIF(error_text, ''), '; '), max(exit_code) FILTER (WHERE exit_code <> 0),"
        " min(exit_code), right(string_agg(NULLIF(log_tail, ''), E'\\n'), 2048)"
        " FROM t_task WHERE task_id = $1"
        " AND ($2 = '' OR role = $2) AND ($3::int < 0 OR role_index = $3::int)";
    char ix[16];
    snprintf(ix, sizeof(ix), "%d", role_index);
    const char *p[3] = {task_id, role, ix};
    return run_rows(st, sql, 3, p, cb, arg);
}

/* The rows a task_change selects, locked: sel(job_id, task_id, role,
 * role_index, old).  Fixed fragments chosen by c->sel: no text of the
 * request ever becomes SQL. */
static const char *const task_sel_sql[] = {
    [TASK_SEL_ROW] =
        "sel AS (SELECT job_id, task_id, role, role_index, status AS old FROM t_task"
        "  WHERE job_id = $1::text AND task_id = $2::text AND role = $3::text AND role_index = $4::int"
        "  AND ($9::text IS NULL OR $9::text IN (token_id, prev_token_id, env_token_id)) FOR UPDATE)",
    [TASK_SEL_TASK] =
        "sel AS (SELECT job_id, task_id, role, role_index, status AS old FROM t_task"
        "  WHERE task_id = $2::text AND ($3::text = '' OR role = $3::text) AND ($4::int < 0 OR role_index = $4::int)"
        "  AND ($9::text IS NULL OR $9::text IN (token_id, prev_token_id, env_token_id)) FOR UPDATE)",
    [TASK_SEL_JOB] =
        "sel AS (SELECT job_id, task_id, role, role_index, status AS old FROM t_task"
        "  WHERE job_id = $1::text AND ($9::text IS NULL OR $9::text IN (token_id, prev_token_id,"
        "  env_token_id)) FOR UPDATE)",
    [TASK_SEL_DOWN] =
        "jd AS (SELECT dag FROM t_job WHERE job_id = $1::text LIMIT 1)"
        ", edges AS (SELECT c->>'name' AS task, split_part(i->>'key', '.', 1) AS up"
        "  FROM jd, jsonb_array_elements(jd.dag->'components') c,"
        "  jsonb_array_elements(coalesce(c->'input', '[]'::jsonb)) i)"
        ", live AS (SELECT count(*) AS n FROM t_task WHERE job_id = $1::text AND task_name = $5::text"
        "  AND status IN ('PENDING','READY','RUNNING'))"
        ", down(task) AS (SELECT $5::text WHERE (SELECT n FROM live) > 0"
        "  UNION SELECT e.task FROM edges e JOIN down d ON e.up = d.task)"
        ", sel AS (SELECT job_id, task_id, role, role_index, status AS old FROM t_task"
        "  WHERE job_id = $1::text AND task_name IN (SELECT task FROM down)"
        "  AND ($9::text IS NULL OR $9::text IN (token_id, prev_token_id, env_token_id)) FOR UPDATE)",
    [TASK_SEL_LIST] =
        "l AS (SELECT * FROM jsonb_to_recordset($18::jsonb) AS x(job_id text, task_id text,"
        "  role text, role_index int))"
        ", sel AS (SELECT t.job_id, t.task_id, t.role, t.role_index, t.status AS old FROM t_task t"
        "  JOIN l ON t.job_id = l.job_id AND t.task_id = l.task_id AND t.role = l.role"
        "  AND t.role_index = l.role_index FOR UPDATE OF t)",
};

/*
 * The write, common to every selector.  target: $6, or FAILED when the
 * runner's exit code says SUCCESS but the component claimed FAILED.  A row
 * moves when its status is in the from-set ($7), or (by exit code) when it
 * was SUCCESS and the exit code says otherwise; with by_exit_code ($12) the
 * details are written to every selected row.
 */
static const char task_set_tail[] =
    /* every parameter has a type whichever selector is in use */
    ", args AS (SELECT $1::text, $2::text, $3::text, $4::int, $5::text, $9::text, $18::jsonb)"
    ", w AS (SELECT t.job_id, t.task_id, t.role, t.role_index, sel.old,"
    "  CASE WHEN $12::text = 't' AND $6::text = 'SUCCESS' AND t.claimed_status = 'FAILED' THEN 'FAILED'"
    "   ELSE $6::text END AS target FROM t_task t JOIN sel USING (job_id, task_id, role, role_index))"
    ", m AS (SELECT w.*, (w.old = ANY ($7::text[]) OR ($12::text = 't' AND w.old = 'SUCCESS'"
    "  AND w.target = 'FAILED')) AS moves FROM w)"
    ", u AS (UPDATE t_task t SET"
    "  status = CASE WHEN m.moves THEN m.target ELSE t.status END,"
    "  status_channel = CASE WHEN m.moves THEN $8::text ELSE t.status_channel END,"
    "  claimed_status = CASE WHEN $10::text = 't' THEN $6::text ELSE t.claimed_status END,"
    "  container_id = coalesce($13::text, t.container_id),"
    "  token_id = coalesce($14::text, t.token_id),"
    "  prev_token_id = CASE WHEN $14::text IS NOT NULL THEN NULL ELSE t.prev_token_id END,"
    "  env_token_id = coalesce($15::text, t.env_token_id),"
    "  exit_code = CASE WHEN $16::int IS NOT NULL THEN $16::int ELSE t.exit_code END,"
    "  oom_killed = coalesce($17::boolean, t.oom_killed),"
    "  log_tail = coalesce($19::text, t.log_tail),"
    "  error_text = CASE WHEN t.error_text = '' THEN coalesce(CASE WHEN $12::text = 't'"
    "   AND m.target = 'FAILED' AND $6::text = 'SUCCESS' THEN 'the component reported FAILED'"
    "   ELSE $11::text END, '') ELSE t.error_text END,"
    "  start_time = CASE WHEN m.moves AND m.target = 'RUNNING' THEN coalesce(t.start_time, now())"
    "   ELSE t.start_time END,"
    "  end_time = CASE WHEN (m.moves AND m.target IN ('SUCCESS','FAILED')) OR $12::text = 't'"
    "   THEN coalesce(t.end_time, now()) ELSE t.end_time END,"
    "  status_updated_at = now()"
    "  FROM m WHERE t.job_id = m.job_id AND t.task_id = m.task_id AND t.role = m.role"
    "  AND t.role_index = m.role_index AND (m.moves OR $12::text = 't')"
    "  RETURNING t.job_id, t.task_id, t.role, t.role_index, t.container_id, m.old,"
    "  t.status::text AS new)"
    ", j AS (UPDATE t_job SET status = 'FINISHED', end_time = now(),"
    "  start_time = coalesce(start_time, now()), updated_at = now()"
    "  WHERE $20::text = 't' AND job_id = $1::text AND status = ANY ($21::text[]) RETURNING role, status)"
    ", ev AS (INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
    "  SELECT 'task', job_id || '/' || task_id || '/' || role || '.' || role_index, old, new,"
    "  $8::text, $22::text FROM u WHERE old IS DISTINCT FROM new"
    "  UNION ALL SELECT 'job', $1::text || '/' || role, NULL, 'FINISHED', $8::text, $22::text FROM j)"
    " SELECT (SELECT count(*) FROM t_job WHERE job_id = $1::text)::text,"
    "  (SELECT count(*) FROM sel)::text, (SELECT count(*) FROM u WHERE old IS DISTINCT FROM new)::text,"
    "  (SELECT count(*) FROM j)::text, NULL, NULL, NULL"
    " UNION ALL SELECT job_id, task_id, role, role_index::text, container_id, old, new FROM u";

int store_task_set(struct store *st, const struct task_change *c, db_rows_cb cb, void *arg)
{
    static char *sql[GW_ARRAY_LEN(task_sel_sql)];
    if ((unsigned)c->sel >= GW_ARRAY_LEN(task_sel_sql))
        return GW_EINVAL;
    if (!sql[c->sel])
        sql[c->sel] = gw_xasprintf("WITH RECURSIVE %s%s", task_sel_sql[c->sel], task_set_tail);
    char ix[16];
    snprintf(ix, sizeof(ix), "%d", c->role_index);
    const char *p[22] = {c->job_id,
                         c->task_id,
                         c->role ? c->role : "",
                         ix,
                         c->task_name,
                         task_state_name(c->to),
                         task_from_set(c->to),
                         state_channel_name(c->channel),
                         c->token_jti,
                         c->claim ? "t" : "f",
                         c->error_text,
                         c->by_exit_code ? "t" : "f",
                         c->container_id,
                         c->token_id,
                         c->env_token_id,
                         c->exit_code,
                         c->oom,
                         c->list,
                         c->log_tail,
                         c->finish_job ? "t" : "f",
                         job_from_set(JOB_STATE_FINISHED),
                         c->reason ? c->reason : ""};
    struct call *k = gw_xcalloc(1, sizeof(*k));
    k->shape = SHAPE_TASKS;
    k->rows_cb = cb;
    k->arg = arg;
    k->entity = "task";
    k->to = task_state_name(c->to);
    k->log_id = c->job_id && *c->job_id ? gw_xstrdup(c->job_id) : NULL;
    k->reason = c->reason ? gw_xstrdup(c->reason) : NULL;
    return run(st, k, sql[c->sel], 22, p);
}

int store_task_claim(struct store *st, const char *task_id, const char *role, int role_index,
                     enum task_state status, db_rows_cb cb, void *arg)
{
    /* Not a status change: the claim waits in claimed_status for the exit
     * code, and the event says so. */
    static const char sql[] =
        "WITH m AS (SELECT job_id, task_id, role, role_index, status FROM t_task WHERE task_id = $1"
        "  AND ($2 = '' OR role = $2) AND ($3::int < 0 OR role_index = $3::int))"
        ", u AS (UPDATE t_task t SET claimed_status = $4, status_updated_at = now()"
        "  FROM m WHERE $4 <> 'RUNNING' AND t.job_id = m.job_id AND t.task_id = m.task_id"
        "  AND t.role = m.role AND t.role_index = m.role_index AND t.status = 'RUNNING'"
        "  RETURNING t.job_id)"
        ", ev AS (INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
        "  SELECT 'task', m.job_id || '/' || m.task_id || '/' || m.role || '.' || m.role_index,"
        "  m.status, m.status, 'callback', 'container claims ' || $4 || ' (held until exit code)'"
        "  FROM m WHERE m.status = 'RUNNING' AND $4 <> 'RUNNING')"
        " SELECT count(*), count(*) FILTER (WHERE status IN ('READY','RUNNING')) FROM m";
    char ix[16];
    snprintf(ix, sizeof(ix), "%d", role_index);
    const char *p[4] = {task_id, role, ix, task_state_name(status)};
    return run_rows(st, sql, 4, p, cb, arg);
}

int store_task_logs(struct store *st, const char *task_id, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT status, container_id, log_tail FROM t_task WHERE task_id = $1"
        " ORDER BY role, role_index";
    const char *p[1] = {task_id};
    return run_rows(st, sql, 1, p, cb, arg);
}

int store_push_state(struct store *st, const char *job_id, const char *task_id, db_rows_cb cb,
                     void *arg)
{
    static const char sql[] =
        "SELECT j.scheduler, j.sync_type, t.task_id, bfia_task_agg(array_agg(t.status::text)),"
        " string_agg(DISTINCT t.role, ','), string_agg(NULLIF(t.error_text, ''), '; '),"
        " coalesce(max(t.exit_code) FILTER (WHERE t.exit_code <> 0), min(t.exit_code)),"
        " right(string_agg(NULLIF(t.log_tail, ''), E'\\n'), 2048) FROM t_task t"
        " JOIN t_job j ON j.job_id = t.job_id AND j.role = t.role"
        " WHERE t.job_id = $1 AND t.task_id = $2 GROUP BY j.scheduler, j.sync_type, t.task_id"
        " LIMIT 1";
    const char *p[2] = {job_id, task_id};
    return run_rows(st, sql, 2, p, cb, arg);
}

int store_push_record(struct store *st, const char *job_id, const char *task_id,
                      const char *acked_status, const char *error, store_change_cb cb, void *arg)
{
    static const char ack_sql[] =
        "WITH u AS (INSERT INTO t_task_push (job_id, task_id, acked_status) VALUES ($1, $2, $3)"
        " ON CONFLICT (job_id, task_id) DO UPDATE SET acked_status = $3, last_error = '',"
        " updated_at = now() RETURNING 1)"
        " SELECT NULL, true, $1::text, NULL, (SELECT count(*) FROM u)";
    static const char err_sql[] =
        "WITH u AS (INSERT INTO t_task_push (job_id, task_id, last_error) VALUES ($1, $2, $3)"
        " ON CONFLICT (job_id, task_id) DO UPDATE SET last_error = $3, updated_at = now()"
        " RETURNING 1)"
        " SELECT NULL, true, $1::text, NULL, (SELECT count(*) FROM u)";
    const char *p[3] = {job_id, task_id, acked_status ? acked_status : error};
    return run_change(st, acked_status ? ack_sql : err_sql, 3, p, cb, arg);
}

int store_push_pending(struct store *st, int window_s, int limit, db_rows_cb cb, void *arg)
{
    /* Every task of a callback-mode job whose aggregate status (RUNNING,
     * SUCCESS or FAILED) the scheduler has not acknowledged, once its last
     * change is a few seconds old (the first push had its chance); jobs
     * changed in the last day only. */
    static const char sql[] =
        "SELECT t.job_id, t.task_id FROM t_task t"
        " JOIN t_job j ON j.job_id = t.job_id AND j.role = t.role AND j.sync_type = 'callback'"
        " LEFT JOIN t_task_push p ON p.job_id = t.job_id AND p.task_id = t.task_id"
        " WHERE t.status_updated_at > now() - make_interval(secs => $2::int)"
        " GROUP BY t.job_id, t.task_id, p.acked_status"
        " HAVING max(t.status_updated_at) < now() - interval '3 seconds'"
        "  AND bfia_task_agg(array_agg(t.status::text)) IN ('RUNNING', 'SUCCESS', 'FAILED')"
        "  AND bfia_task_agg(array_agg(t.status::text)) IS DISTINCT FROM p.acked_status"
        " LIMIT $1::int";
    char lim[16], win[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(win, sizeof(win), "%d", window_s);
    const char *p[2] = {lim, win};
    return run_rows(st, sql, 2, p, cb, arg);
}

/* ---- the runner's rows ---------------------------------------------------------------- */

int store_task_spec(struct store *st, const char *job_id, const char *task_id, const char *role,
                    int role_index, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT container_name, spec::text FROM t_task WHERE job_id = $1 AND task_id = $2"
        " AND role = $3 AND role_index = $4::int AND status = 'READY'"
        " AND container_name IS NOT NULL";
    char ix[16];
    snprintf(ix, sizeof(ix), "%d", role_index);
    const char *p[4] = {job_id, task_id, role, ix};
    return run_rows(st, sql, 4, p, cb, arg);
}

int store_task_token(struct store *st, const char *job_id, const char *task_id, const char *role,
                     int role_index, const char *container_id, const char *jti, db_rows_cb cb,
                     void *arg)
{
    static const char sql[] =
        "UPDATE t_task SET prev_token_id = token_id, token_id = $6"
        " WHERE job_id = $1 AND task_id = $2 AND role = $3 AND role_index = $4::int"
        " AND status = 'RUNNING' AND container_id = $5 RETURNING 1";
    char ix[16];
    snprintf(ix, sizeof(ix), "%d", role_index);
    const char *p[6] = {job_id, task_id, role, ix, container_id, jti};
    return run_rows(st, sql, 6, p, cb, arg);
}

int store_task_containers(struct store *st, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "SELECT job_id, task_id, role, role_index, status, container_name, spec::text FROM t_task"
        " WHERE status IN ('READY','RUNNING') OR container_name IS NOT NULL AND"
        " end_time > now() - interval '7 days'";
    return run_rows(st, sql, 0, NULL, cb, arg);
}

int store_orphans(struct store *st, const char *names_json, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
        " SELECT 'container', n, 'running', 'removed', 'reconcile', 'orphan: no live task row'"
        " FROM jsonb_array_elements_text($1::jsonb) n RETURNING 1";
    const char *p[1] = {names_json};
    return run_rows(st, sql, 1, p, cb, arg);
}

/* ---- the runner's store interface (container/runner.h) ----------------------- */

static int rs_spec(void *ctx, const struct runner_key *k, db_rows_cb cb, void *arg)
{
    return store_task_spec(ctx, k->job_id, k->task_id, k->role, k->role_index, cb, arg);
}

static int rs_running(void *ctx, const struct runner_launch_rec *l, db_rows_cb cb, void *arg)
{
    char *reason = gw_xasprintf("container %s", l->container_name ? l->container_name : "");
    struct task_change c = {.sel = TASK_SEL_ROW,
                            .job_id = l->k->job_id,
                            .task_id = l->k->task_id,
                            .role = l->k->role,
                            .role_index = l->k->role_index,
                            .to = TASK_STATE_RUNNING,
                            .channel = STATE_CHANNEL_API,
                            .reason = reason,
                            .container_id = l->container_id,
                            .token_id = l->token_jti,
                            .env_token_id = l->env_token_jti};
    int rc = store_task_set(ctx, &c, cb, arg);
    free(reason);
    return rc;
}

static int rs_finished(void *ctx, const struct runner_outcome *o, db_rows_cb cb, void *arg)
{
    enum task_state to;
    if (!task_state_parse(o->status, &to) || !task_state_is_terminal(to))
        return GW_EINVAL;
    struct task_change c = {.sel = TASK_SEL_ROW,
                            .job_id = o->k->job_id,
                            .task_id = o->k->task_id,
                            .role = o->k->role,
                            .role_index = o->k->role_index,
                            .to = to,
                            .channel = STATE_CHANNEL_EXIT_CODE,
                            .reason = o->reason && *o->reason ? o->reason : "container exited",
                            .error_text = o->reason,
                            .by_exit_code = true,
                            .exit_code = o->exit_code,
                            .oom = o->oom ? "true" : "false",
                            .log_tail = o->logs};
    return store_task_set(ctx, &c, cb, arg);
}

static int rs_token(void *ctx, const struct runner_key *k, const char *container_id,
                    const char *jti, db_rows_cb cb, void *arg)
{
    return store_task_token(ctx, k->job_id, k->task_id, k->role, k->role_index, container_id,
                            jti, cb, arg);
}

static int rs_containers(void *ctx, db_rows_cb cb, void *arg)
{
    return store_task_containers(ctx, cb, arg);
}

static int rs_lost(void *ctx, const char *rows_json, db_rows_cb cb, void *arg)
{
    struct task_change c = {.sel = TASK_SEL_LIST,
                            .list = rows_json,
                            .role_index = -1,
                            .to = TASK_STATE_FAILED,
                            .channel = STATE_CHANNEL_RECONCILE,
                            .reason = "container lost",
                            .error_text = "container lost: it no longer exists on the engine "
                                          "(removed while the gateway was down)"};
    return store_task_set(ctx, &c, cb, arg);
}

static int rs_orphans(void *ctx, const char *names_json, db_rows_cb cb, void *arg)
{
    return store_orphans(ctx, names_json, cb, arg);
}

const struct runner_store_ops store_runner_ops = {
    .spec = rs_spec,
    .running = rs_running,
    .finished = rs_finished,
    .token = rs_token,
    .containers = rs_containers,
    .lost = rs_lost,
    .orphans = rs_orphans,
};

int store_job_parties(struct store *st, char side, bool by_task, const char *key,
                      db_rows_cb cb, void *arg)
{
    static const char sched_job[] =
        "SELECT job_id, scheduler, initiator, parties::text FROM t_schedule_job WHERE job_id = $1";
    static const char sched_task[] =
        "SELECT j.job_id, j.scheduler, j.initiator, j.parties::text FROM t_schedule_job j"
        " WHERE j.job_id = (SELECT job_id FROM t_schedule_task WHERE task_id = $1 LIMIT 1)";
    /* a partner's parties: every node of config.role */
    static const char part_job[] =
        "SELECT j.job_id, j.scheduler, j.initiator, (SELECT coalesce(jsonb_agg(DISTINCT n), '[]')"
        "  FROM jsonb_each(j.config->'role') r, jsonb_array_elements_text(r.value) n)::text"
        " FROM t_job j WHERE j.job_id = $1 LIMIT 1";
    static const char part_task[] =
        "SELECT j.job_id, j.scheduler, j.initiator, (SELECT coalesce(jsonb_agg(DISTINCT n), '[]')"
        "  FROM jsonb_each(j.config->'role') r, jsonb_array_elements_text(r.value) n)::text"
        " FROM t_job j WHERE j.job_id = (SELECT job_id FROM t_task WHERE task_id = $1 LIMIT 1)"
        " LIMIT 1";
    const char *sql = side == 's' ? (by_task ? sched_task : sched_job)
                                  : (by_task ? part_task : part_job);
    const char *p[1] = {key};
    return run_rows(st, sql, 1, p, cb, arg);
}

/* ---- task outputs registered as datasets ---------------------------------------- */

int store_task_outputs(struct store *st, const char *job_id, const char *task_id, db_rows_cb cb,
                       void *arg)
{
    /* "runtime.component.output." is 25 bytes; the value after the first
     * '=' is the {"name", "namespace"} JSON taskenv.c wrote. */
    static const char sql[] =
        "WITH o AS (SELECT t.role, t.role_index, t.task_name, t.provider, t.version, t.component,"
        "  split_part(substr(e, 26), '=', 1) AS out_name,"
        "  substr(e, strpos(e, '=') + 1)::jsonb AS addr"
        "  FROM t_task t, jsonb_array_elements_text(CASE WHEN jsonb_typeof(t.spec->'env') = 'array'"
        "   THEN t.spec->'env' ELSE '[]'::jsonb END) e"
        "  WHERE t.job_id = $1 AND t.task_id = $2 AND t.status = 'SUCCESS' AND t.exit_code = 0"
        "  AND starts_with(e, 'runtime.component.output.') AND strpos(e, '=') > 26)"
        " SELECT o.addr->>'namespace', o.addr->>'name', o.role, o.role_index, o.task_name, o.out_name"
        " FROM o WHERE jsonb_typeof(o.addr) = 'object'"
        " AND EXISTS (SELECT 1 FROM t_component c, jsonb_array_elements(CASE WHEN"
        "   jsonb_typeof(c.description->'outputData') = 'array' THEN c.description->'outputData'"
        "   ELSE '[]'::jsonb END) d WHERE c.provider = o.provider AND c.version = o.version"
        "   AND c.component_name = o.component AND d->>'name' = o.out_name"
        "   AND d->>'category' IN ('dataset', 'training_set', 'test_set'))"
        " AND NOT EXISTS (SELECT 1 FROM t_dataset x WHERE x.namespace = o.addr->>'namespace'"
        "   AND x.name = o.addr->>'name')"
        " ORDER BY o.role, o.role_index, o.out_name";
    const char *p[2] = {job_id, task_id};
    return run_rows(st, sql, 2, p, cb, arg);
}

int store_dataset_output(struct store *st, const struct dataset_out *o, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "WITH d AS (INSERT INTO t_dataset (namespace, name, uri, size_bytes, meta)"
        "  VALUES ($1, $2, $3, $4::bigint, $5::jsonb) ON CONFLICT (namespace, name) DO NOTHING"
        "  RETURNING 1)"
        ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'dataset', $1 || '#' || $2, 'stored', 'exit_code', $6 FROM d)"
        " SELECT 1 FROM d";
    const char *p[6] = {o->ns, o->name, o->uri, o->size, o->meta, o->reason};
    return run_rows(st, sql, 6, p, cb, arg);
}

int store_dataset_digest(struct store *st, const char *ns, const char *name, const char *uri,
                         const char *size, const char *sha256, db_rows_cb cb, void *arg)
{
    static const char sql[] =
        "UPDATE t_dataset SET sha256 = $5, updated_at = now() WHERE namespace = $1 AND name = $2"
        " AND uri = $3 AND size_bytes = $4::bigint AND sha256 IS NULL RETURNING 1";
    const char *p[5] = {ns, name, uri, size, sha256};
    return run_rows(st, sql, 5, p, cb, arg);
}
