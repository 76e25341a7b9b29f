/*
 * sched.c - the scheduler side of jobs.  See sched.h for the model.
 *
 * PostgreSQL holds all job state; struct sjob only coalesces kicks, holds
 * the poll timer and remembers since when a party has been unreachable.
 * Every decision is re-derived from the rows at each pass, and every write
 * is a compare-and-set, so two passes racing (or a pass after a restart)
 * cannot start a task twice or move a terminal state.
 */
#include "sched.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/db.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "gateway/peer.h"
#include "routes/route.h"
#include "scheduler/dag.h"

#define ID_MAX 128
#define UNREACH_MAX 16

struct unreach {
    char *node;
    long long since_ms;
};

/*
 * Lifetime of a struct sjob: one reference is the job table's (s->jobs, by
 * job_id) while the job is live; every asynchronous call that carries the
 * sjob (a query, a peer call) holds one more, taken when the call starts and
 * released by its completion, whatever the completion does.  A pass that
 * sees the job ended retires it: it leaves the table (a later kick makes a
 * fresh one), its timer stops, and the table's reference goes.  The last
 * release never frees in place: the object moves to s->dead and a zero-delay
 * event frees it once the callback that dropped it has returned (Redis'
 * freeClientAsync, PgBouncer's justfree).
 */
struct sjob {
    struct sched *s;
    struct sjob *prev, *next;
    int refs;
    bool retired;        /* out of the table; only in-flight calls hold it */
    char *job_id;
    bool loading, dirty;
    bool starting_job;   /* job/start fan-out in flight */
    int job_start_pending;
    bool job_start_failed;
    char *job_start_err;
    int polls;           /* poll calls in flight */
    struct event *timer;
    struct unreach un[UNREACH_MAX];
    struct log_ctx log;
};

struct sched {
    struct gw_app *app;
    struct sjob *jobs;        /* live jobs and retired ones still referenced */
    struct sjob *dead;        /* released: freed by the reaper event */
    struct event *reaper;
    unsigned counter;
    struct event *stop_timer; /* resends job/stop to parties that missed it */
    bool sweeping;
    struct stopack *stops;    /* job/stop calls in flight */
};

/* ---- helpers ---------------------------------------------------------------- */

/* Statement without a reply to wait for; errors are logged. */
static void on_bg(void *arg, int err, const struct db_res *res, const char *errmsg,
                  const char *sqlstate)
{
    (void)res;
    (void)sqlstate;
    const char *what = arg;
    if (err)
        log_kv(LOG_LEVEL_ERROR, NULL, "sched.db", "scheduler write failed", "what", what, "err",
               errmsg, NULL);
}

static void bg(struct sched *s, const char *what, const char *sql, int n, const char *const *p)
{
    if (db_query(s->app->db, sql, n, p, on_bg, (void *)what, NULL) != 0)
        log_kv(LOG_LEVEL_ERROR, NULL, "sched.db", "database unavailable", "what", what, NULL);
}

/* FATE-Flow's aggregation (§3.3), as bfia_task_agg in SQL. */
static const char *agg2(const char *acc, const char *st)
{
    if (!acc)
        return st;
    if (strcmp(acc, st) == 0)
        return acc;
    static const char *const order[] = {"FAILED", "RUNNING", "READY", "PENDING", "SUCCESS"};
    for (int i = 0; i < 5; i++)
        if (strcmp(acc, order[i]) == 0 || strcmp(st, order[i]) == 0)
            return order[i];
    return acc;
}

static void new_task_id(char *out, size_t cap)
{
    unsigned char r[12];
    if (RAND_bytes(r, sizeof(r)) != 1) {
        for (size_t i = 0; i < sizeof(r); i++)
            r[i] = (unsigned char)random();
    }
    /* Lowercase RFC 1123 (no '_'): Kuscia makes each task id the name of a
     * Kubernetes object (kuscia-wire.md §0.7); every other peer takes any id. */
    int n = snprintf(out, cap, "task-");
    for (size_t i = 0; i < sizeof(r) && (size_t)n + 2 < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%02x", r[i]);
}

/* FATE-Flow's job id shape: YYYYMMDDhhmmss + microseconds + a counter digit
 * (21 characters: fits FATE-Flow's VARCHAR(25) columns). */
static void new_job_id(struct sched *s, char *out, size_t cap)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(out, cap, "%04d%02d%02d%02d%02d%02d%06ld%u", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec, s->counter++ % 10);
}

/* ---- job objects ------------------------------------------------------------ */

static struct sjob *sjob_find(struct sched *s, const char *job_id)
{
    for (struct sjob *j = s->jobs; j; j = j->next)
        if (!j->retired && strcmp(j->job_id, job_id) == 0)
            return j;
    return NULL;
}

static void on_timer(evutil_socket_t fd, short what, void *arg);

static struct sjob *sjob_get(struct sched *s, const char *job_id)
{
    struct sjob *j = sjob_find(s, job_id);
    if (j)
        return j;
    j = gw_xcalloc(1, sizeof(*j));
    j->s = s;
    j->refs = 1; /* the table's */
    j->job_id = gw_xstrdup(job_id);
    j->timer = evtimer_new(s->app->base, on_timer, j);
    j->log.node_id = s->app->cfg->node_id;
    j->log.job_id = j->job_id;
    j->next = s->jobs;
    if (s->jobs)
        s->jobs->prev = j;
    s->jobs = j;
    return j;
}

static void sjob_unlink(struct sjob *j)
{
    struct sched *s = j->s;
    if (j->prev)
        j->prev->next = j->next;
    else
        s->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->prev = j->next = NULL;
}

static void sjob_free(struct sjob *j)
{
    event_free(j->timer);
    for (int i = 0; i < UNREACH_MAX; i++)
        free(j->un[i].node);
    free(j->job_start_err);
    free(j->job_id);
    free(j);
}

static struct sjob *sjob_hold(struct sjob *j)
{
    j->refs++;
    return j;
}

/* Drop one reference; the last one hands the object to the reaper. */
static void sjob_release(struct sjob *j)
{
    if (--j->refs > 0)
        return;
    struct sched *s = j->s;
    sjob_unlink(j);
    j->next = s->dead;
    s->dead = j;
    event_active(s->reaper, EV_TIMEOUT, 0);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sched *s = arg;
    while (s->dead) {
        struct sjob *j = s->dead;
        s->dead = j->next;
        sjob_free(j);
    }
}

/* The job ended: later kicks make a fresh object; this one lives on only
 * as long as calls still in flight hold it. */
static void sjob_retire(struct sjob *j)
{
    if (j->retired)
        return;
    j->retired = true;
    event_del(j->timer);
    sjob_release(j);
}

/* Unreachable-party bookkeeping: returns ms since the party first failed. */
static long long unreach_mark(struct sjob *j, const char *node)
{
    long long now = gw_now_mono_ms();
    int free_slot = -1;
    for (int i = 0; i < UNREACH_MAX; i++) {
        if (j->un[i].node && strcmp(j->un[i].node, node) == 0)
            return now - j->un[i].since_ms;
        if (!j->un[i].node && free_slot < 0)
            free_slot = i;
    }
    if (free_slot >= 0) {
        j->un[free_slot].node = gw_xstrdup(node);
        j->un[free_slot].since_ms = now;
    }
    return 0;
}

static void unreach_clear(struct sjob *j, const char *node)
{
    for (int i = 0; i < UNREACH_MAX; i++)
        if (j->un[i].node && strcmp(j->un[i].node, node) == 0) {
            free(j->un[i].node);
            j->un[i].node = NULL;
        }
}

/* ---- finishing ------------------------------------------------------------------ */

struct stopack {
    struct sched *s;
    char *job_id;
    struct stopack *prev, *next;
};

static void stopack_free(struct stopack *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        a->s->stops = a->next;
    if (a->next)
        a->next->prev = a->prev;
    free(a->job_id);
    free(a);
}

/* A party answered job/stop: record it, so the retry sweep leaves it
 * alone.  A refusal is an answer too (sending it again changes nothing; a
 * FATE-Flow peer may refuse to stop a job it finished); only an unreachable
 * party, a refused signature or a transient error (6000 and up: internal,
 * database, busy, draining) is worth another try. */
static void on_stop_sent(void *arg, const struct peer_resp *r)
{
    struct stopack *a = arg;
    if (r->err || r->code == ROUTE_CODE_AUTH || r->code >= ROUTE_CODE_INTERNAL) {
        struct log_ctx lc = {.node_id = a->s->app->cfg->node_id, .job_id = a->job_id};
        log_kv(LOG_LEVEL_WARN, &lc, "job.stop", "job/stop to a party failed; will be sent again",
               "node", r->node, "err", r->msg, NULL);
    } else {
        static const char sql[] =
            "UPDATE t_schedule_job SET stop_acked = stop_acked || jsonb_build_array($2::text)"
            " WHERE job_id = $1 AND NOT stop_acked ? $2";
        const char *p[2] = {a->job_id, r->node};
        bg(a->s, "job/stop acknowledged", sql, 2, p);
    }
    stopack_free(a);
}

static void send_stop(struct sched *s, const char *job_id, const char *parties_json)
{
    cJSON *parties = cJSON_Parse(parties_json);
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "job_id", job_id);
    const cJSON *n;
    cJSON_ArrayForEach(n, parties)
    {
        if (!cJSON_IsString(n))
            continue;
        struct stopack *a = gw_xcalloc(1, sizeof(*a));
        a->s = s;
        a->job_id = gw_xstrdup(job_id);
        a->next = s->stops;
        if (s->stops)
            s->stops->prev = a;
        s->stops = a;
        if (peer_call(s->app, n->valuestring, "POST", "/v1/interconn/schedule/job/stop", b, -1,
                      on_stop_sent, a, NULL) != 0) {
            log_kv(LOG_LEVEL_WARN, NULL, "job.stop", "no route to a party", "node", n->valuestring,
                   NULL);
            stopack_free(a);
        }
    }
    cJSON_Delete(b);
    cJSON_Delete(parties);
}

/* Every sched.stop_retry_s: job/stop again to the parties of jobs that ended
 * in the last day and have not answered it (down at the time, or this node
 * restarted before they answered). */
static void arm_stop_sweep(struct sched *s)
{
    struct timeval tv = {s->app->cfg->sched_stop_retry_s, 0};
    evtimer_add(s->stop_timer, &tv);
}

static void on_stop_rows(void *arg, int err, const struct db_res *res, const char *errmsg,
                         const char *sqlstate)
{
    (void)sqlstate;
    struct sched *s = arg;
    s->sweeping = false;
    if (err)
        log_kv(LOG_LEVEL_WARN, NULL, "job.stop", "cannot read undelivered stops", "err", errmsg,
               NULL);
    for (int i = 0; !err && i < db_res_rows(res); i++)
        send_stop(s, db_res_get(res, i, 0), db_res_get(res, i, 1));
    arm_stop_sweep(s);
}

static void on_stop_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sched *s = arg;
    static const char sql[] =
        "SELECT job_id, (SELECT coalesce(jsonb_agg(p), '[]') FROM"
        "  jsonb_array_elements_text(parties) p WHERE NOT stop_acked ? p)::text"
        " FROM t_schedule_job WHERE NOT stop_done AND status IN ('FINISHED','REJECTED')"
        " AND updated_at > now() - interval '1 day' ORDER BY updated_at LIMIT 200";
    if (s->sweeping || db_query(s->app->db, sql, 0, NULL, on_stop_rows, s, NULL) != 0) {
        arm_stop_sweep(s);
        return;
    }
    s->sweeping = true;
}

struct fin {
    struct sched *s;
    char *job_id;
    char *outcome;
};

static void on_finished(void *arg, int err, const struct db_res *res, const char *errmsg,
                        const char *sqlstate)
{
    (void)sqlstate;
    struct fin *f = arg;
    if (err) {
        log_kv(LOG_LEVEL_ERROR, NULL, "job.finish", "cannot finish the job; trying again", "job",
               f->job_id, "err", errmsg, NULL);
        sched_kick(f->s, f->job_id);
    } else if (db_res_rows(res) > 0) {
        /* We won the CAS: tell every party. */
        struct log_ctx lc = {.node_id = f->s->app->cfg->node_id, .job_id = f->job_id};
        log_kv(LOG_LEVEL_INFO, &lc, "job.finish", "job finished", "outcome", f->outcome, NULL);
        send_stop(f->s, f->job_id, db_res_get(res, 0, 0));
    }
    free(f->job_id);
    free(f->outcome);
    free(f);
}

/* CAS the job to FINISHED with outcome; live task rows become FAILED. */
static void finish_job(struct sched *s, const char *job_id, const char *outcome, const char *reason)
{
    struct fin *f = gw_xcalloc(1, sizeof(*f));
    f->s = s;
    f->job_id = gw_xstrdup(job_id);
    f->outcome = gw_xstrdup(outcome);
    static const char sql[] =
        "WITH u AS (UPDATE t_schedule_job SET status = 'FINISHED', outcome = $2,"
        "  error_text = CASE WHEN error_text = '' THEN $3 ELSE error_text END,"
        "  wait_reason = '', progress = 100, end_time = now(),"
        "  start_time = coalesce(start_time, now()), updated_at = now()"
        "  WHERE job_id = $1 AND status IN ('PENDING','READY','RUNNING')"
        "  RETURNING parties, status)"
        ", t AS (UPDATE t_schedule_task SET status = 'FAILED', status_channel = 'api',"
        "  error_text = CASE WHEN error_text = '' THEN 'stopped: job ' || $2 || ': ' || $3"
        "  ELSE error_text END, end_time = now(), updated_at = now()"
        "  WHERE job_id = $1 AND status IN ('PENDING','READY','RUNNING') AND EXISTS (SELECT 1 FROM u)"
        "  RETURNING 1)"
        ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'schedule_job', $1, 'FINISHED', 'api', $2 || ': ' || $3 FROM u)"
        " SELECT parties::text FROM u";
    const char *p[3] = {job_id, outcome, reason};
    if (db_query(s->app->db, sql, 3, p, on_finished, f, NULL) != 0) {
        log_kv(LOG_LEVEL_ERROR, NULL, "job.finish", "database unavailable", "job", job_id, NULL);
        free(f->job_id);
        free(f->outcome);
        free(f);
    }
}

/* ---- passes --------------------------------------------------------------------- */

static void pass_load(struct sjob *j);

void sched_kick(struct sched *s, const char *job_id)
{
    struct sjob *j = sjob_get(s, job_id);
    if (j->loading) {
        j->dirty = true;
        return;
    }
    pass_load(j);
}

static void arm_timer(struct sjob *j, int ms)
{
    if (j->retired)
        return;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (!evtimer_pending(j->timer, NULL))
        evtimer_add(j->timer, &tv);
}

/* job/start fan-out */
struct jcall {
    struct sjob *j;
    char *node;
};

static void on_job_cas(void *arg, int err, const struct db_res *res, const char *errmsg,
                       const char *sqlstate)
{
    (void)res;
    (void)sqlstate;
    struct sjob *j = arg;
    if (err)
        log_kv(LOG_LEVEL_ERROR, &j->log, "job.start", "cannot mark the job RUNNING", "err", errmsg,
               NULL);
    j->starting_job = false;
    sched_kick(j->s, j->job_id);
    sjob_release(j);
}

static void on_job_started(void *arg, const struct peer_resp *r)
{
    struct jcall *c = arg;
    struct sjob *j = c->j;
    if (r->err) {
        long long ms = unreach_mark(j, c->node);
        free(j->job_start_err);
        j->job_start_err = gw_xasprintf("job/start: node %s unreachable for %llds: %s", c->node,
                                        ms / 1000, r->msg);
        if (ms > (long long)j->s->app->cfg->sched_party_deadline_s * 1000)
            j->job_start_failed = true;
    } else if (r->code != 0) {
        free(j->job_start_err);
        j->job_start_err = gw_xasprintf("job/start refused by node %s: code %d: %s", c->node,
                                        r->code, r->msg);
        j->job_start_failed = true;
    } else {
        unreach_clear(j, c->node);
    }
    free(c->node);
    free(c);
    if (--j->job_start_pending > 0) {
        sjob_release(j);
        return;
    }
    struct sched *s = j->s;
    if (j->job_start_failed) {
        j->starting_job = false;
        finish_job(s, j->job_id, "failed", j->job_start_err);
        sjob_release(j);
        return;
    }
    if (j->job_start_err) {
        /* Someone was unreachable: say so and retry on the next tick. */
        const char *p[2] = {j->job_id, j->job_start_err};
        bg(s, "wait_reason",
           "UPDATE t_schedule_job SET wait_reason = $2, updated_at = now() WHERE job_id = $1", 2,
           p);
        free(j->job_start_err);
        j->job_start_err = NULL;
        j->starting_job = false;
        arm_timer(j, s->app->cfg->sched_poll_ms);
        sjob_release(j);
        return;
    }
    static const char sql[] =
        "WITH u AS (UPDATE t_schedule_job SET status = 'RUNNING', start_time = now(),"
        "  wait_reason = '', updated_at = now() WHERE job_id = $1 AND status = 'READY' RETURNING 1)"
        " INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
        " SELECT 'schedule_job', $1, 'READY', 'RUNNING', 'api', 'every party accepted job/start'"
        " FROM u";
    const char *p[1] = {j->job_id};
    /* this call's reference moves to the CAS */
    if (db_query(s->app->db, sql, 1, p, on_job_cas, j, NULL) != 0) {
        j->starting_job = false;
        sjob_release(j);
    }
}

static void start_job(struct sjob *j, const cJSON *parties)
{
    if (j->starting_job)
        return;
    j->starting_job = true;
    j->job_start_failed = false;
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "job_id", j->job_id);
    j->job_start_pending = 1;
    const cJSON *n;
    cJSON_ArrayForEach(n, parties)
    {
        struct jcall *c = gw_xcalloc(1, sizeof(*c));
        c->j = sjob_hold(j);
        c->node = gw_xstrdup(n->valuestring);
        j->job_start_pending++;
        if (peer_call(j->s->app, n->valuestring, "POST", "/v1/interconn/schedule/job/start", b, -1,
                      on_job_started, c, NULL) != 0) {
            struct peer_resp r = {.err = GW_EPEER, .msg = "no route to the node", .node = c->node};
            on_job_started(c, &r);
        }
    }
    cJSON_Delete(b);
    /* drop the guard reference */
    struct peer_resp ok = {.err = 0, .code = 0, .node = ""};
    struct jcall *g = gw_xcalloc(1, sizeof(*g));
    g->j = sjob_hold(j);
    g->node = gw_xstrdup("");
    on_job_started(g, &ok);
}

/* task/start to the nodes of one task */
struct tcall {
    struct sjob *j;
    char *task_id, *node, *task_name;
};

static void tcall_free(struct tcall *c)
{
    sjob_release(c->j);
    free(c->task_id);
    free(c->node);
    free(c->task_name);
    free(c);
}

static void on_task_row_done(void *arg, int err, const struct db_res *res, const char *errmsg,
                             const char *sqlstate)
{
    (void)res;
    (void)sqlstate;
    struct tcall *c = arg;
    if (err)
        log_kv(LOG_LEVEL_ERROR, &c->j->log, "task.start", "cannot record the task/start reply",
               "err", errmsg, NULL);
    sched_kick(c->j->s, c->j->job_id);
    tcall_free(c);
}

static void on_task_started(void *arg, const struct peer_resp *r)
{
    struct tcall *c = arg;
    struct sjob *j = c->j;
    struct gw_app *app = j->s->app;
    char reason[600];
    const char *sql;
    if (r->err) {
        long long ms = unreach_mark(j, c->node);
        bool dead = ms > (long long)app->cfg->sched_party_deadline_s * 1000;
        snprintf(reason, sizeof(reason), "task/start: node %s unreachable for %llds: %.400s",
                 c->node, ms / 1000, r->msg);
        /* Retried on the next tick (task/start is idempotent), or failed
         * after the deadline. */
        sql = dead ? "WITH u AS (UPDATE t_schedule_task SET status = 'FAILED', status_channel = 'api',"
                     " error_text = $4, wait_reason = '', end_time = now(), updated_at = now()"
                     " WHERE job_id = $1 AND task_id = $2 AND node_id = $3"
                     " AND status IN ('PENDING','READY') RETURNING 1)"
                     " INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
                     " SELECT 'schedule_task', $1 || '/' || $2 || '@' || $3, 'FAILED', 'api', $4 FROM u"
                   : "UPDATE t_schedule_task SET start_sent_at = NULL, wait_reason = $4,"
                     " updated_at = now() WHERE job_id = $1 AND task_id = $2 AND node_id = $3"
                     " AND status = 'READY'";
        arm_timer(j, app->cfg->sched_poll_ms);
    } else if (r->code != 0) {
        snprintf(reason, sizeof(reason), "task/start refused by node %s: code %d: %.400s", c->node,
                 r->code, r->msg);
        sql = "WITH u AS (UPDATE t_schedule_task SET status = 'FAILED', status_channel = 'api',"
              " error_text = $4, wait_reason = '', end_time = now(), updated_at = now()"
              " WHERE job_id = $1 AND task_id = $2 AND node_id = $3"
              " AND status IN ('PENDING','READY','RUNNING') RETURNING 1)"
              " INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
              " SELECT 'schedule_task', $1 || '/' || $2 || '@' || $3, 'FAILED', 'api', $4 FROM u";
    } else {
        unreach_clear(j, c->node);
        snprintf(reason, sizeof(reason), "task/start accepted by %s", c->node);
        sql = "WITH u AS (UPDATE t_schedule_task SET status = 'RUNNING', status_channel = 'api',"
              " wait_reason = '', start_time = coalesce(start_time, now()), updated_at = now()"
              " WHERE job_id = $1 AND task_id = $2 AND node_id = $3 AND status IN ('PENDING','READY')"
              " RETURNING 1)"
              " INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
              " SELECT 'schedule_task', $1 || '/' || $2 || '@' || $3, 'READY', 'RUNNING', 'api', $4"
              " FROM u";
    }
    const char *p[4] = {j->job_id, c->task_id, c->node, reason};
    if (db_query(app->db, sql, 4, p, on_task_row_done, c, NULL) != 0)
        tcall_free(c);
}

static void on_claimed(void *arg, int err, const struct db_res *res, const char *errmsg,
                       const char *sqlstate)
{
    (void)sqlstate;
    struct tcall *c0 = arg;
    struct sjob *j = c0->j;
    if (err) {
        log_kv(LOG_LEVEL_ERROR, &j->log, "task.start", "cannot claim the task", "err", errmsg,
               NULL);
        tcall_free(c0);
        return;
    }
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "job_id", j->job_id);
    json_add_str(b, "task_id", c0->task_id);
    json_add_str(b, "task_name", c0->task_name);
    for (int i = 0; i < db_res_rows(res); i++) {
        struct tcall *c = gw_xcalloc(1, sizeof(*c));
        c->j = sjob_hold(j);
        c->task_id = gw_xstrdup(c0->task_id);
        c->task_name = gw_xstrdup(c0->task_name);
        c->node = gw_xstrdup(db_res_get(res, i, 0));
        log_kv(LOG_LEVEL_INFO, &j->log, "task.start", "sending task/start", "task", c->task_name,
               "node", c->node, NULL);
        if (peer_call(j->s->app, c->node, "POST", "/v1/interconn/schedule/task/start", b, 0,
                      on_task_started, c, NULL) != 0) {
            struct peer_resp r = {.err = GW_EPEER, .msg = "no route to the node", .node = c->node};
            on_task_started(c, &r);
        }
    }
    cJSON_Delete(b);
    tcall_free(c0);
}

static void start_task(struct sjob *j, const char *task_id, const char *task_name)
{
    struct tcall *c = gw_xcalloc(1, sizeof(*c));
    c->j = sjob_hold(j);
    c->task_id = gw_xstrdup(task_id);
    c->task_name = gw_xstrdup(task_name);
    /* The claim: only the pass whose UPDATE sets start_sent_at sends. */
    static const char sql[] =
        "UPDATE t_schedule_task SET start_sent_at = now(), wait_reason = '', updated_at = now()"
        " WHERE job_id = $1 AND task_id = $2 AND status = 'READY' AND start_sent_at IS NULL"
        " RETURNING node_id";
    const char *p[2] = {j->job_id, task_id};
    if (db_query(j->s->app->db, sql, 2, p, on_claimed, c, NULL) != 0)
        tcall_free(c);
}

/* task/poll */
struct pcall2 {
    struct sjob *j;
    char *task_id, *node;
    bool resend_ok;
};

static void on_poll_written(void *arg, int err, const struct db_res *res, const char *errmsg,
                            const char *sqlstate)
{
    (void)sqlstate;
    struct pcall2 *c = arg;
    struct sjob *j = c->j;
    if (err)
        log_kv(LOG_LEVEL_WARN, &j->log, "task.poll", "cannot record a poll answer", "err", errmsg,
               NULL);
    bool changed = !err && db_res_rows(res) > 0 && atoll(db_res_get(res, 0, 0)) > 0;
    j->polls--;
    if (changed)
        sched_kick(j->s, j->job_id);
    free(c->task_id);
    free(c->node);
    free(c);
    sjob_release(j);
}

static void on_polled(void *arg, const struct peer_resp *r)
{
    struct pcall2 *c = arg;
    struct sjob *j = c->j;
    struct gw_app *app = j->s->app;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r->data, "status");
    /* A party that refuses to answer (a non-zero code) about a task it
     * runs is as stuck as one that cannot be reached: say so, and fail the
     * task after the same deadline.  (Not for a READY task it may not know
     * yet: that gets task/start again, below.) */
    bool refused = !r->err && (r->code != 0 || !cJSON_IsString(st)) && !c->resend_ok;
    if (r->err || refused) {
        long long ms = unreach_mark(j, c->node);
        char reason[600];
        if (refused)
            snprintf(reason, sizeof(reason), "poll: node %s refused for %llds: code %d: %.400s",
                     c->node, ms / 1000, r->code, r->msg ? r->msg : "");
        else
            snprintf(reason, sizeof(reason), "poll: node %s unreachable for %llds: %.400s",
                     c->node, ms / 1000, r->msg);
        bool dead = ms > (long long)app->cfg->sched_party_deadline_s * 1000;
        static const char dead_sql[] =
            "WITH u AS (UPDATE t_schedule_task SET status = 'FAILED', status_channel = 'poll',"
            " error_text = $4, wait_reason = '', end_time = now(), updated_at = now()"
            " WHERE job_id = $1 AND task_id = $2 AND node_id = $3"
            " AND status IN ('PENDING','READY','RUNNING') RETURNING 1)"
            ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
            " SELECT 'schedule_task', $1 || '/' || $2 || '@' || $3, 'FAILED', 'poll', $4 FROM u)"
            " SELECT count(*) FROM u";
        const char *p[4] = {j->job_id, c->task_id, c->node, reason};
        if (dead) {
            if (db_query(app->db, dead_sql, 4, p, on_poll_written, c, NULL) == 0)
                return;
        } else {
            static const char wsql[] =
                "WITH u AS (UPDATE t_schedule_task SET wait_reason = $4 WHERE job_id = $1"
                " AND task_id = $2 AND node_id = $3 AND status IN ('READY','RUNNING') RETURNING 1)"
                " SELECT 0";
            if (db_query(app->db, wsql, 4, p, on_poll_written, c, NULL) == 0)
                return;
        }
    } else if (r->code == 0 && cJSON_IsString(st)) {
        unreach_clear(j, c->node);
        const cJSON *et = cJSON_GetObjectItemCaseSensitive(r->data, "error_text");
        const cJSON *ec = cJSON_GetObjectItemCaseSensitive(r->data, "exit_code");
        const cJSON *lt = cJSON_GetObjectItemCaseSensitive(r->data, "log_tail");
        char ecs[24];
        snprintf(ecs, sizeof(ecs), "%d", cJSON_IsNumber(ec) ? ec->valueint : 0);
        static const char sql[] =
            "WITH o AS (SELECT status AS old FROM t_schedule_task WHERE job_id = $1 AND task_id = $2"
            "  AND node_id = $3 FOR UPDATE)"
            ", u AS (UPDATE t_schedule_task t SET status = $4, status_channel = 'poll',"
            "  wait_reason = '', error_text = coalesce($5, t.error_text),"
            "  exit_code = CASE WHEN $4 IN ('SUCCESS','FAILED') THEN $6::int ELSE NULL END,"
            "  log_tail = coalesce($7, t.log_tail),"
            "  start_time = coalesce(t.start_time, now()),"
            "  end_time = CASE WHEN $4 IN ('SUCCESS','FAILED') THEN now() ELSE NULL END,"
            "  updated_at = now() FROM o"
            "  WHERE t.job_id = $1 AND t.task_id = $2 AND t.node_id = $3"
            "  AND bfia_task_step_ok(t.status, $4) RETURNING o.old)"
            ", e AS (INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
            "  SELECT 'schedule_task', $1 || '/' || $2 || '@' || $3, old, $4, 'poll', 'task/poll'"
            "  FROM u)"
            " SELECT count(*) FROM u";
        const char *p[7] = {j->job_id,
                            c->task_id,
                            c->node,
                            st->valuestring,
                            cJSON_IsString(et) ? et->valuestring : NULL,
                            cJSON_IsNumber(ec) ? ecs : NULL,
                            cJSON_IsString(lt) ? lt->valuestring : NULL};
        if (strcmp(st->valuestring, "PENDING") && strcmp(st->valuestring, "READY") &&
            strcmp(st->valuestring, "RUNNING") && strcmp(st->valuestring, "SUCCESS") &&
            strcmp(st->valuestring, "FAILED")) {
            log_kv(LOG_LEVEL_WARN, &j->log, "task.poll", "party answered an unknown status", "node",
                   c->node, "status", st->valuestring, NULL);
        } else if (db_query(app->db, sql, 7, p, on_poll_written, c, NULL) == 0) {
            return;
        }
    } else if (r->code != 0 && c->resend_ok) {
        /* The party does not know the task although we sent task/start
         * long ago (a crash between our claim and the call): send again. */
        static const char sql[] =
            "WITH u AS (UPDATE t_schedule_task SET start_sent_at = NULL,"
            "  wait_reason = 'task/start not seen by the party; resending' WHERE job_id = $1"
            "  AND task_id = $2 AND node_id = $3 AND status = 'READY'"
            "  AND start_sent_at < now() - interval '5 seconds' RETURNING 1)"
            " SELECT count(*) FROM u";
        const char *p[3] = {j->job_id, c->task_id, c->node};
        if (db_query(app->db, sql, 3, p, on_poll_written, c, NULL) == 0)
            return;
    }
    j->polls--;
    free(c->task_id);
    free(c->node);
    free(c);
    sjob_release(j);
}

static void poll_task(struct sjob *j, const char *task_id, const char *node, const char *role,
                      bool resend_ok)
{
    struct pcall2 *c = gw_xcalloc(1, sizeof(*c));
    c->j = sjob_hold(j);
    c->task_id = gw_xstrdup(task_id);
    c->node = gw_xstrdup(node);
    c->resend_ok = resend_ok;
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "task_id", task_id);
    /* "" asks for every role the party plays (standard, FATE-Flow, ours);
     * Kuscia refuses an empty role (code 400) and answers per role name
     * (kuscia-wire.md §4, §10.7): ask for the party's first role there. */
    json_add_str(b, "role",
                 peers_profile(j->s->app->peers, node) == PEER_KUSCIA && role ? role : "");
    j->polls++;
    if (peer_call(j->s->app, node, "POST", "/v1/interconn/schedule/task/poll", b, 0, on_polled, c,
                  NULL) != 0) {
        struct peer_resp r = {.err = GW_EPEER, .msg = "no route to the node", .node = node};
        on_polled(c, &r);
    }
    cJSON_Delete(b);
}

/*
 * One pass over the rows.  rows: status, sync_type, parties, tasks(json),
 * where tasks is an array of {task_id, node, name, status, sent, age, deps,
 * error}.
 */
static void on_pass(void *arg, int err, const struct db_res *res, const char *errmsg,
                    const char *sqlstate)
{
    (void)sqlstate;
    struct sjob *j = arg;
    struct sched *s = j->s;
    j->loading = false;
    if (err) {
        log_kv(LOG_LEVEL_WARN, &j->log, "sched.pass", "cannot read the job; retrying", "err",
               errmsg, NULL);
        arm_timer(j, s->app->cfg->sched_poll_ms);
        sjob_release(j);
        return;
    }
    if (db_res_rows(res) == 0) {
        sjob_retire(j);
        sjob_release(j);
        return;
    }
    const char *status = db_res_get(res, 0, 0), *sync = db_res_get(res, 0, 1);
    cJSON *parties = cJSON_Parse(db_res_get(res, 0, 2));
    cJSON *tasks = cJSON_Parse(db_res_get(res, 0, 3) ? db_res_get(res, 0, 3) : "[]");
    bool finished = strcmp(status, "FINISHED") == 0 || strcmp(status, "REJECTED") == 0;
    bool poll_mode = strcmp(sync, "poll") == 0;
    if (finished || strcmp(status, "PENDING") == 0)
        goto out;
    if (strcmp(status, "READY") == 0) {
        start_job(j, parties);
        goto out;
    }
    /* A job running past its deadline (sched.job_timeout_s, or the job's
     * config.job_params.common.timeout_s) fails instead of waiting for ever. */
    if (db_res_get(res, 0, 4) && strcmp(db_res_get(res, 0, 4), "0") != 0) {
        char *why = gw_xasprintf("timed out: still running after %s s (timeout_s)",
                                 db_res_get(res, 0, 4));
        finish_job(s, j->job_id, "failed", why);
        free(why);
        goto out;
    }
    /* RUNNING: aggregate per task name. */
    {
        int n = cJSON_GetArraySize(tasks);
        const char **names = gw_xcalloc((size_t)(n + 1), sizeof(char *));
        const char **agg = gw_xcalloc((size_t)(n + 1), sizeof(char *));
        const char **tids = gw_xcalloc((size_t)(n + 1), sizeof(char *));
        const cJSON **deps = gw_xcalloc((size_t)(n + 1), sizeof(cJSON *));
        bool *sendable = gw_xcalloc((size_t)(n + 1), sizeof(bool));
        int nn = 0;
        const char *fail_reason = NULL, *fail_task = NULL, *fail_node = NULL;
        const cJSON *t;
        cJSON_ArrayForEach(t, tasks)
        {
            const char *name = cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring;
            const char *st = cJSON_GetObjectItemCaseSensitive(t, "status")->valuestring;
            int k;
            for (k = 0; k < nn; k++)
                if (strcmp(names[k], name) == 0)
                    break;
            if (k == nn) {
                names[nn] = name;
                tids[nn] = cJSON_GetObjectItemCaseSensitive(t, "task_id")->valuestring;
                deps[nn] = cJSON_GetObjectItemCaseSensitive(t, "deps");
                nn++;
            }
            agg[k] = agg2(agg[k], st);
            if (strcmp(st, "READY") == 0 &&
                !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "sent")))
                sendable[k] = true;
            if (strcmp(st, "FAILED") == 0 && !fail_task) {
                fail_task = name;
                fail_node = cJSON_GetObjectItemCaseSensitive(t, "node")->valuestring;
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(t, "error");
                fail_reason = cJSON_IsString(e) ? e->valuestring : "";
            }
        }
        int all_success = nn > 0;
        for (int k = 0; k < nn; k++)
            all_success &= strcmp(agg[k], "SUCCESS") == 0;
        if (fail_task) {
            char *why = gw_xasprintf("task %s failed on node %s%s%s", fail_task, fail_node,
                                     fail_reason && *fail_reason ? ": " : "",
                                     fail_reason ? fail_reason : "");
            finish_job(s, j->job_id, "failed", why);
            free(why);
            finished = true;
        } else if (all_success) {
            finish_job(s, j->job_id, "success", "");
            finished = true;
        } else {
            for (int k = 0; k < nn; k++) {
                if (!sendable[k])
                    continue;
                bool ready = true;
                const cJSON *d;
                cJSON_ArrayForEach(d, deps[k])
                {
                    int q;
                    for (q = 0; q < nn; q++)
                        if (strcmp(names[q], d->valuestring) == 0)
                            break;
                    if (q == nn || strcmp(agg[q], "SUCCESS") != 0)
                        ready = false;
                }
                if (ready)
                    start_task(j, tids[k], names[k]);
            }
        }
        free(names);
        free(agg);
        free(tids);
        free(deps);
        free(sendable);
    }
    if (!finished)
        arm_timer(j, poll_mode ? s->app->cfg->sched_poll_ms : s->app->cfg->sched_backstop_ms);
out:
    cJSON_Delete(parties);
    cJSON_Delete(tasks);
    if (j->dirty && !finished) {
        j->dirty = false;
        pass_load(j);
    } else if (finished) {
        sjob_retire(j);
    }
    sjob_release(j); /* the pass's own */
}

static void pass_load(struct sjob *j)
{
    j->loading = true;
    sjob_hold(j);
    static const char sql[] =
        "SELECT j.status, j.sync_type, j.parties::text,"
        " (SELECT json_agg(json_build_object('task_id', t.task_id, 'node', t.node_id,"
        "   'name', t.task_name, 'status', t.status, 'sent', t.start_sent_at IS NOT NULL,"
        "   'deps', t.depends_on, 'error', t.error_text) ORDER BY t.task_name, t.node_id)"
        "  FROM t_schedule_task t WHERE t.job_id = j.job_id)::text,"
        /* the job's timeout in seconds when it has passed, else 0 */
        " (SELECT CASE WHEN j.status = 'RUNNING' AND x.t > 0"
        "   AND j.start_time < now() - make_interval(secs => x.t) THEN x.t ELSE 0 END"
        "  FROM (SELECT CASE WHEN jsonb_typeof(j.config #> '{job_params,common,timeout_s}')"
        "   = 'number' THEN (j.config #>> '{job_params,common,timeout_s}')::bigint"
        "   ELSE $2::bigint END AS t) x)::text"
        " FROM t_schedule_job j WHERE j.job_id = $1";
    char tmo[24];
    snprintf(tmo, sizeof(tmo), "%d", j->s->app->cfg->sched_job_timeout_s);
    const char *p[2] = {j->job_id, tmo};
    if (db_query(j->s->app->db, sql, 2, p, on_pass, j, NULL) != 0) {
        j->loading = false;
        arm_timer(j, j->s->app->cfg->sched_poll_ms);
        sjob_release(j);
    }
}

/* The timer: poll every live party row, then run a pass (retries of
 * job/start and task/start that could not reach a party). */
static void on_poll_rows(void *arg, int err, const struct db_res *res, const char *errmsg,
                         const char *sqlstate)
{
    (void)sqlstate;
    (void)errmsg;
    struct sjob *j = arg;
    j->polls--;
    if (!err && !j->retired)
        for (int i = 0; i < db_res_rows(res); i++)
            poll_task(j, db_res_get(res, i, 0), db_res_get(res, i, 1), db_res_get(res, i, 3),
                      strcmp(db_res_get(res, i, 2), "t") == 0);
    sched_kick(j->s, j->job_id);
    sjob_release(j);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sjob *j = arg;
    if (j->polls > 0) { /* previous round still out: wait for it */
        sched_kick(j->s, j->job_id);
        return;
    }
    static const char sql[] =
        "SELECT task_id, node_id, (status = 'READY' AND start_sent_at < now() - interval '5 seconds'),"
        " roles->>0 FROM t_schedule_task WHERE job_id = $1 AND (status = 'RUNNING'"
        " OR (status = 'READY' AND start_sent_at IS NOT NULL))";
    const char *p[1] = {j->job_id};
    j->polls++;
    if (db_query(j->s->app->db, sql, 1, p, on_poll_rows, sjob_hold(j), NULL) != 0) {
        j->polls--;
        arm_timer(j, j->s->app->cfg->sched_poll_ms);
        sjob_release(j);
    }
}

/* ---- lifetime / resume -------------------------------------------------------- */

struct sched *sched_new(struct gw_app *app)
{
    struct sched *s = gw_xcalloc(1, sizeof(*s));
    s->app = app;
    s->stop_timer = evtimer_new(app->base, on_stop_sweep, s);
    s->reaper = event_new(app->base, -1, 0, on_reap, s);
    if (!s->stop_timer || !s->reaper)
        abort();
    arm_stop_sweep(s);
    return s;
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    /* The pool and the HTTP client dropped every callback already. */
    while (s->jobs) {
        struct sjob *j = s->jobs;
        sjob_unlink(j);
        sjob_free(j);
    }
    on_reap(-1, 0, s);
    event_free(s->reaper);
    event_free(s->stop_timer);
    while (s->stops) /* their calls are cancelled with the HTTP client */
        stopack_free(s->stops);
    free(s);
}

struct resume {
    struct sched *s;
    void (*done)(void *arg, int err, const char *msg);
    void *arg;
};

static void on_resume_rows(void *arg, int err, const struct db_res *res, const char *errmsg,
                           const char *sqlstate)
{
    (void)sqlstate;
    struct resume *r = arg;
    if (!err)
        for (int i = 0; i < db_res_rows(res); i++)
            sched_kick(r->s, db_res_get(res, i, 0));
    r->done(r->arg, err, err ? errmsg : "");
    free(r);
}

void sched_resume(struct sched *s, void (*done)(void *arg, int err, const char *msg), void *arg)
{
    struct resume *r = gw_xcalloc(1, sizeof(*r));
    r->s = s;
    r->done = done;
    r->arg = arg;
    static const char sql[] =
        "SELECT job_id FROM t_schedule_job WHERE status IN ('READY','RUNNING')";
    if (db_query(s->app->db, sql, 0, NULL, on_resume_rows, r, NULL) != 0) {
        free(r);
        done(arg, GW_EDB, "database unavailable");
    }
}

/* ---- create_all (interconn) --------------------------------------------------- */

struct create {
    struct gw_req *req;
    struct dag *d;
    char *job_id;
    char *flow_id, *old_job_id;
    cJSON *parties;
    int pending;
    cJSON *accepted;
    char *refusal;
    bool approval;
};

static void create_free(void *p)
{
    struct create *c = p;
    dag_free(c->d);
    free(c->job_id);
    free(c->flow_id);
    free(c->old_job_id);
    cJSON_Delete(c->parties);
    cJSON_Delete(c->accepted);
    free(c->refusal);
    free(c);
}

static void create_done(struct create *c)
{
    struct gw_req *req = c->req;
    struct sched *s = req->app->sched;
    if (c->refusal) {
        /* Nothing may stay startable: finish the job and undo the parties
         * that accepted. */
        finish_job(s, c->job_id, "failed", c->refusal);
        cJSON *data = cJSON_CreateObject();
        json_add_str(data, "job_id", c->job_id);
        route_reply(req, ROUTE_CODE_FAILED, c->refusal, data);
        return;
    }
    if (!c->approval)
        sched_kick(s, c->job_id);
    struct log_ctx lc = {.node_id = req->app->cfg->node_id, .job_id = c->job_id};
    log_kv(LOG_LEVEL_INFO, &lc, "job.create", "every party accepted job/create", NULL);
    cJSON *data = cJSON_CreateObject();
    json_add_str(data, "job_id", c->job_id);
    route_reply_ok(req, data);
}

struct ccall {
    struct create *c;
    char *node;
};

static void kuscia_dag(cJSON *dag);
static void kuscia_config(cJSON *config);

static void on_party_created(void *arg, const struct peer_resp *r)
{
    struct ccall *cc = arg;
    struct create *c = cc->c;
    if (r->err || r->code != 0) {
        if (!c->refusal)
            c->refusal = r->err ? gw_xasprintf("job/create: node %s unreachable: %s", cc->node,
                                               r->msg)
                                : gw_xasprintf("job/create refused by node %s: %s", cc->node,
                                               r->msg);
    } else {
        cJSON_AddItemToArray(c->accepted, cJSON_CreateString(cc->node));
    }
    free(cc->node);
    free(cc);
    if (--c->pending == 0)
        create_done(c);
}

static void on_create_written(void *arg, int err, const struct db_res *res, const char *errmsg,
                              const char *sqlstate)
{
    (void)sqlstate;
    struct create *c = arg;
    struct gw_req *req = c->req;
    if (route_db_failed(req, err, errmsg))
        return;
    if (atoll(db_res_get(res, 0, 0)) == 0) {
        /* Repeated create_all of a known job: nothing changes. */
        cJSON *data = cJSON_CreateObject();
        json_add_str(data, "job_id", c->job_id);
        route_reply_ok(req, data);
        return;
    }
    /* Fan job/create out to every party in parallel. */
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "job_id", c->job_id);
    json_add_str(b, "flow_id", c->flow_id);
    json_add_str(b, "old_job_id", c->old_job_id);
    cJSON_AddItemToObject(b, "dag", cJSON_Duplicate(dag_json(c->d), true));
    cJSON_AddItemToObject(b, "config", cJSON_Duplicate(dag_config(c->d), true));
    json_add_str(b, "scheduler", req->app->cfg->node_id);
    c->pending = 1;
    const cJSON *n;
    cJSON_ArrayForEach(n, c->parties)
    {
        struct ccall *cc = gw_xcalloc(1, sizeof(*cc));
        cc->c = c;
        cc->node = gw_xstrdup(n->valuestring);
        c->pending++;
        /* A Kuscia node finds a component by code (its AppImage, here the
         * provider) and module_name (kuscia-wire.md 5.1, 10.7). */
        cJSON *bk = NULL;
        if (peers_profile(req->app->peers, n->valuestring) == PEER_KUSCIA) {
            bk = cJSON_Duplicate(b, true);
            kuscia_dag(cJSON_GetObjectItemCaseSensitive(bk, "dag"));
            kuscia_config(cJSON_GetObjectItemCaseSensitive(bk, "config"));
        }
        int rc = peer_call(req->app, n->valuestring, "POST", "/v1/interconn/schedule/job/create",
                           bk ? bk : b, -1, on_party_created, cc, NULL);
        cJSON_Delete(bk);
        if (rc != 0) {
            struct peer_resp r = {.err = GW_EPEER, .msg = "no route to the node", .node = cc->node};
            on_party_created(cc, &r);
        }
    }
    cJSON_Delete(b);
    if (--c->pending == 0)
        create_done(c);
}

/* Kuscia's DAG shape next to the standard one: code and module_name. */
static void kuscia_dag(cJSON *dag)
{
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(dag, "components"))
    {
        const cJSON *prov = cJSON_GetObjectItemCaseSensitive(c, "provider");
        const cJSON *cn = cJSON_GetObjectItemCaseSensitive(c, "componentName");
        if (!cJSON_GetObjectItemCaseSensitive(c, "code") && cJSON_IsString(prov))
            cJSON_AddStringToObject(c, "code", prov->valuestring);
        if (!cJSON_GetObjectItemCaseSensitive(c, "module_name") && cJSON_IsString(cn))
            cJSON_AddStringToObject(c, "module_name", cn->valuestring);
    }
}

/* Kuscia reads a root component's input from per-party "namespace" and
 * "name" (kuscia-wire.md §4, §10.7): spell out "dataset_id": "ns#name". */
static void kuscia_config(cJSON *config)
{
    cJSON *role, *idx, *comp;
    cJSON_ArrayForEach(role, cJSON_GetObjectItemCaseSensitive(config, "task_params"))
    {
        if (strcmp(role->string, "common") == 0)
            continue;
        cJSON_ArrayForEach(idx, role) cJSON_ArrayForEach(comp, idx)
        {
            const cJSON *ds = cJSON_GetObjectItemCaseSensitive(comp, "dataset_id");
            const char *hash = cJSON_IsString(ds) ? strchr(ds->valuestring, '#') : NULL;
            if (!hash || cJSON_GetObjectItemCaseSensitive(comp, "namespace") ||
                cJSON_GetObjectItemCaseSensitive(comp, "name"))
                continue;
            char *ns = gw_xstrndup(ds->valuestring, (size_t)(hash - ds->valuestring));
            cJSON_AddStringToObject(comp, "namespace", ns);
            cJSON_AddStringToObject(comp, "name", hash + 1);
            free(ns);
        }
    }
}

static void on_components(void *arg, int err, const struct db_res *res, const char *errmsg,
                          const char *sqlstate)
{
    (void)sqlstate;
    struct create *c = arg;
    struct gw_req *req = c->req;
    if (route_db_failed(req, err, errmsg))
        return;
    struct dag *d = c->d;
    cJSON *rows = cJSON_CreateArray();
    for (int i = 0; i < dag_ntasks(d); i++) {
        const struct dag_task *t = dag_task(d, i);
        const char *rl = i < db_res_rows(res) ? db_res_get(res, i, 0) : NULL;
        if (!rl) {
            char *m = gw_xasprintf("dag.components[%d]: component %s/%s@%s is not registered on "
                                   "the scheduler %s",
                                   i, t->provider, t->component, t->version,
                                   req->app->cfg->node_id);
            route_reply_err(req, GW_ENOTFOUND, m);
            free(m);
            cJSON_Delete(rows);
            return;
        }
        cJSON *desc = cJSON_CreateObject();
        cJSON_AddItemToObject(desc, "roleList", cJSON_Parse(rl));
        cJSON *nodes = dag_task_nodes(d, desc);
        cJSON_Delete(desc);
        cJSON *uniq = cJSON_CreateArray();
        const cJSON *r;
        cJSON_ArrayForEach(r, nodes)
        {
            const cJSON *n;
            cJSON_ArrayForEach(n, r)
            {
                bool have = false;
                const cJSON *e;
                cJSON_ArrayForEach(e, uniq) have |= strcmp(e->valuestring, n->valuestring) == 0;
                if (!have)
                    cJSON_AddItemToArray(uniq, cJSON_CreateString(n->valuestring));
            }
        }
        if (cJSON_GetArraySize(uniq) == 0) {
            char *m = gw_xasprintf("dag.components[%d]: no node of config.role plays a role of "
                                   "component %s (roleList %s)",
                                   i, t->component, rl);
            route_reply_err(req, GW_EINVAL, m);
            free(m);
            cJSON_Delete(rows);
            cJSON_Delete(uniq);
            cJSON_Delete(nodes);
            return;
        }
        char tid[48];
        new_task_id(tid, sizeof(tid));
        cJSON *deps = cJSON_CreateArray();
        for (int q = 0; q < t->n_ups; q++)
            cJSON_AddItemToArray(deps, cJSON_CreateString(dag_task(d, t->ups[q])->name));
        const cJSON *n;
        cJSON_ArrayForEach(n, uniq)
        {
            cJSON *row = cJSON_CreateObject();
            json_add_str(row, "task_id", tid);
            json_add_str(row, "node_id", n->valuestring);
            json_add_str(row, "task_name", t->name);
            json_add_str(row, "component", t->component);
            json_add_str(row, "provider", t->provider);
            json_add_str(row, "version", t->version);
            cJSON *rl2 = cJSON_CreateArray();
            const cJSON *rr;
            cJSON_ArrayForEach(rr, nodes)
            {
                const cJSON *x;
                cJSON_ArrayForEach(x, rr) if (strcmp(x->valuestring, n->valuestring) == 0)
                    cJSON_AddItemToArray(rl2, cJSON_CreateString(rr->string));
            }
            cJSON_AddItemToObject(row, "roles", rl2);
            cJSON_AddItemToObject(row, "depends_on", cJSON_Duplicate(deps, true));
            cJSON_AddItemToArray(rows, row);
        }
        cJSON_Delete(deps);
        cJSON_Delete(uniq);
        cJSON_Delete(nodes);
    }
    /* Every party must be routable (or be this node). */
    const cJSON *n;
    cJSON_ArrayForEach(n, c->parties)
    {
        if (!peers_find(req->app->peers, n->valuestring) &&
            strcmp(n->valuestring, req->app->cfg->node_id) != 0) {
            char *m = gw_xasprintf("config.role: node %s is not in the route table",
                                   n->valuestring);
            route_reply_err(req, GW_EINVAL, m);
            free(m);
            cJSON_Delete(rows);
            return;
        }
    }
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
        " SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM t)";
    char *dj = json_print(dag_json(d)), *cj = json_print(dag_config(d)),
         *pj = json_print(c->parties), *rj = json_print(rows);
    const char *sched_node = req->app->cfg->node_id;
    const char *p[12] = {c->job_id,           c->flow_id, c->old_job_id, dj, cj,
                         dag_initiator(d),    sched_node, pj,            dag_sync_type(d),
                         c->approval ? "true" : "false",  rj,
                         req->caller ? req->caller : "local"};
    route_db(req, sql, 12, p, on_create_written, c);
    cJSON_free(dj);
    cJSON_free(cj);
    cJSON_free(pj);
    cJSON_free(rj);
    cJSON_Delete(rows);
}

/*
 * Kuscia turns every parameter into an environment variable: a list or null
 * value makes it accept the job and never schedule the task (kuscia-wire.md
 * §4).  With a Kuscia party, refuse such a value at create, naming it.
 */
/* The first list or null parameter of comps ({component: {key: value}}),
 * described in out as "<where>.<component>.<key>: ..."; false if none. */
static bool list_or_null(const cJSON *comps, const char *where, const char *node, char *out,
                         size_t cap)
{
    const cJSON *comp, *v;
    cJSON_ArrayForEach(comp, comps) cJSON_ArrayForEach(v, comp)
    {
        if (!cJSON_IsArray(v) && !cJSON_IsNull(v))
            continue;
        snprintf(out, cap,
                 "%s.%.40s.%.40s: a %s value cannot go to node %.40s (kuscia profile passes "
                 "every parameter as an environment variable); use a string",
                 where, comp->string, v->string, cJSON_IsNull(v) ? "null" : "list", node);
        return true;
    }
    return false;
}

static bool kuscia_params_bad(struct gw_app *app, const struct dag *d, char *out, size_t cap)
{
    cJSON *parties = dag_parties(d);
    const cJSON *n;
    const char *kus = NULL;
    cJSON_ArrayForEach(n, parties)
    {
        if (!kus && peers_profile(app->peers, n->valuestring) == PEER_KUSCIA)
            kus = n->valuestring;
    }
    bool bad = false;
    const cJSON *tp =
        kus ? cJSON_GetObjectItemCaseSensitive(dag_config(d), "task_params") : NULL;
    const cJSON *role, *idx;
    char where[100];
    /* common.<component>.<key>, or <role>.<index>.<component>.<key> */
    cJSON_ArrayForEach(role, tp)
    {
        if (strcmp(role->string, "common") == 0) {
            bad = bad || list_or_null(role, "config.task_params.common", kus, out, cap);
            continue;
        }
        cJSON_ArrayForEach(idx, role)
        {
            snprintf(where, sizeof(where), "config.task_params.%.20s.%.8s", role->string,
                     idx->string);
            bad = bad || list_or_null(idx, where, kus, out, cap);
        }
    }
    cJSON_Delete(parties);
    return bad;
}

void sched_create_all(struct gw_req *req)
{
    const char *job_id = NULL, *flow = "", *old = "";
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "flow_id", false, 128, &flow, &eb) != 0 ||
        json_get_str(req->params, "old_job_id", false, 128, &old, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    struct dag *d = dag_parse(req->params, &eb);
    if (!d) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    bool approval = false;
    const cJSON *common = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(dag_config(d), "job_params"), "common");
    if (json_get_bool(common, "require_approval", false, &approval, &eb) != 0) {
        char *m = gw_xasprintf("config.job_params.common.%s", eb.msg);
        route_reply_err(req, GW_EINVAL, m);
        free(m);
        dag_free(d);
        return;
    }
    const cJSON *tmo = cJSON_GetObjectItemCaseSensitive(common, "timeout_s");
    if (tmo && (!cJSON_IsNumber(tmo) || tmo->valuedouble < 1 || tmo->valuedouble > 86400.0 * 365 ||
                tmo->valuedouble != (double)(long long)tmo->valuedouble)) {
        route_reply_err(req, GW_EINVAL, "config.job_params.common.timeout_s: expected whole "
                                        "seconds as a number, 1 to 31536000");
        dag_free(d);
        return;
    }
    char bad[300];
    if (kuscia_params_bad(req->app, d, bad, sizeof(bad))) {
        route_reply_err(req, GW_EINVAL, bad);
        dag_free(d);
        return;
    }
    struct create *c = gw_xcalloc(1, sizeof(*c));
    c->req = req;
    c->d = d;
    c->job_id = gw_xstrdup(job_id);
    c->flow_id = gw_xstrdup(flow);
    c->old_job_id = gw_xstrdup(old);
    c->parties = dag_parties(d);
    c->accepted = cJSON_CreateArray();
    c->approval = approval;
    req->ctx = c;
    req->ctx_free = create_free;
    /* Component lookup by (provider, version, componentName). */
    static const char sql[] =
        "SELECT c.role_list::text FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(v, ord)"
        " LEFT JOIN t_component c ON c.component_name = x.v->>'componentName'"
        " AND c.provider = x.v->>'provider' AND c.version = x.v->>'version' ORDER BY x.ord";
    char *comps = json_print(cJSON_GetObjectItemCaseSensitive(dag_json(d), "components"));
    const char *p[1] = {comps};
    route_db(req, sql, 1, p, on_components, c);
    cJSON_free(comps);
}

/* ---- platform create_all: new id, forwarded to the scheduler ------------------ */

struct fwd {
    struct gw_req *req;
    char *job_id;
    char *sched;  /* platform stop_all: the job's scheduler */
    int stopped;  /* platform stop_all: tasks stopped here first */
};

static void fwd_free(void *p)
{
    struct fwd *f = p;
    free(f->job_id);
    free(f->sched);
    free(f);
}

static void on_forwarded(void *arg, const struct peer_resp *r)
{
    struct fwd *f = arg;
    if (r->err) {
        route_reply_err(f->req, r->err, r->msg);
        return;
    }
    cJSON *data = r->data ? cJSON_Duplicate(r->data, true) : cJSON_CreateObject();
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        data = cJSON_CreateObject();
    }
    if (f->job_id && !cJSON_GetObjectItemCaseSensitive(data, "job_id"))
        json_add_str(data, "job_id", f->job_id);
    route_reply(f->req, r->code, r->code == 0 ? "success" : r->msg, data);
}

void sched_platform_create_all(struct gw_req *req)
{
    if (!route_params(req))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    struct dag *d = dag_parse(req->params, &eb);
    if (!d) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    const char *flow = "", *old = "";
    if (json_get_str(req->params, "flow_id", false, 128, &flow, &eb) != 0 ||
        json_get_str(req->params, "old_job_id", false, 128, &old, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        dag_free(d);
        return;
    }
    const char *sched_node = dag_scheduler(d) ? dag_scheduler(d) : req->app->cfg->node_id;
    if (strcmp(sched_node, req->app->cfg->node_id) != 0) {
        /* FATE-Flow and Kuscia send stop_all and status_all to the initiator
         * whatever the job says (spec §5.4): with a third-party scheduler
         * those calls would reach a node that does not schedule the job. */
        cJSON *parties = dag_parties(d);
        const cJSON *n;
        const char *foreign = NULL;
        cJSON_ArrayForEach(n, parties)
        {
            enum peer_profile pr = peers_profile(req->app->peers, n->valuestring);
            if (!foreign && (pr == PEER_FATE_FLOW || pr == PEER_KUSCIA))
                foreign = n->valuestring;
        }
        if (foreign) {
            char *m = gw_xasprintf(
                "config.job_params.common.scheduler: a third-party scheduler needs every party to "
                "be a gateway like this one; node %s speaks the %s profile, which always treats "
                "the initiator as the scheduler (leave the scheduler unset)",
                foreign,
                peers_profile(req->app->peers, foreign) == PEER_KUSCIA ? "kuscia" : "fate-flow");
            route_reply_err(req, GW_EINVAL, m);
            free(m);
            cJSON_Delete(parties);
            dag_free(d);
            return;
        }
        cJSON_Delete(parties);
    }
    char jid[40];
    new_job_id(req->app->sched, jid, sizeof(jid));
    struct fwd *f = gw_xcalloc(1, sizeof(*f));
    f->req = req;
    f->job_id = gw_xstrdup(jid);
    req->ctx = f;
    req->ctx_free = fwd_free;
    /* FATE-Flow's null trap: always send flow_id and old_job_id as strings. */
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "job_id", jid);
    json_add_str(b, "flow_id", flow);
    json_add_str(b, "old_job_id", old);
    cJSON_AddItemToObject(b, "dag", cJSON_Duplicate(dag_json(d), true));
    cJSON_AddItemToObject(b, "config", cJSON_Duplicate(dag_config(d), true));
    int rc = peer_call(req->app, sched_node, "POST", "/v1/interconn/schedule/job/create_all", b, 0,
                       on_forwarded, f, NULL);
    cJSON_Delete(b);
    if (rc != 0) {
        /* sched_node may point into d: free d only after the message */
        char *m = gw_xasprintf("config.job_params.common.scheduler: no route to node %s",
                               sched_node);
        route_reply_err(req, GW_EINVAL, m);
        free(m);
    }
    dag_free(d);
}

/* ---- stop_all ------------------------------------------------------------------- */

static void on_stop_all(void *arg, int err, const struct db_res *res, const char *errmsg,
                        const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    if (db_res_rows(res) == 0) {
        route_reply_err(req, GW_ENOTFOUND, "job_id: this node schedules no such job");
        return;
    }
    const char *parties = db_res_get(res, 0, 0);
    bool changed = strcmp(db_res_get(res, 0, 1), "t") == 0;
    const char *job_id = NULL;
    if (json_get_id(req->params, "job_id", true, ID_MAX, &job_id, NULL) != 0)
        job_id = NULL;
    if (changed && job_id) {
        struct log_ctx lc = {.node_id = req->app->cfg->node_id, .job_id = job_id};
        log_kv(LOG_LEVEL_INFO, &lc, "job.stop", "job stopped", "by",
               req->caller ? req->caller : "local", NULL);
    }
    /* Stop on every party even when already finished: a repeated stop_all
     * is harmless and covers a party that missed the first one. */
    if (job_id)
        send_stop(req->app->sched, job_id, parties);
    route_reply_ok(req, NULL);
}

/*
 * stop_all {job_id, task_name?}: the job is FINISHED/stopped and every
 * party stops it (as FATE-Flow does, a task_name still stops the whole job:
 * its downstream tasks could never run and the job could not succeed).
 */
void sched_stop_all(struct gw_req *req)
{
    const char *job_id = NULL, *task_name = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id) ||
        !route_get_id(req, "task_name", false, &task_name))
        return;
    char *why = gw_xasprintf("stopped by %s%s%s", req->caller ? req->caller : "the platform",
                             task_name ? " at task " : "", task_name ? task_name : "");
    static const char sql[] =
        "WITH u AS (UPDATE t_schedule_job SET status = 'FINISHED', outcome = 'stopped',"
        "  error_text = CASE WHEN error_text = '' THEN $2 ELSE error_text END, wait_reason = '',"
        "  end_time = now(), start_time = coalesce(start_time, now()), updated_at = now()"
        "  WHERE job_id = $1 AND status IN ('PENDING','READY','RUNNING') RETURNING 1)"
        ", t AS (UPDATE t_schedule_task SET status = 'FAILED', status_channel = 'api',"
        "  error_text = CASE WHEN error_text = '' THEN $2 ELSE error_text END, end_time = now(),"
        "  updated_at = now() WHERE job_id = $1 AND status IN ('PENDING','READY','RUNNING')"
        "  RETURNING 1)"
        ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'schedule_job', $1, 'FINISHED', 'api', $2 FROM u)"
        " SELECT parties::text, EXISTS (SELECT 1 FROM u) FROM t_schedule_job WHERE job_id = $1";
    const char *p[2] = {job_id, why};
    route_db(req, sql, 2, p, on_stop_all, req);
    free(why);
}

/* The scheduler's answer to a platform stop_all forwarded by a partner:
 * the job is stopped here either way; say whether the scheduler knows. */
static void on_stop_told(void *arg, const struct peer_resp *r)
{
    struct fwd *f = arg;
    cJSON *d = cJSON_CreateObject();
    json_add_str(d, "job_id", f->job_id);
    json_add_int(d, "stopped_here", f->stopped);
    json_add_str(d, "scheduler", f->sched);
    if (r->err || r->code != 0) {
        char m[600];
        snprintf(m, sizeof(m), "%s: %.400s", r->err ? "not reached" : "refused",
                 r->msg ? r->msg : "");
        json_add_str(d, "scheduler_error", m);
        route_reply(f->req, ROUTE_CODE_OK,
                    "stopped on this node; the scheduler was not told (it sees the stopped "
                    "tasks at its next poll)", d);
        return;
    }
    route_reply_ok(f->req, d);
}

static void on_stopped_here(void *arg, int err, const char *msg, int stopped)
{
    struct fwd *f = arg;
    if (err) {
        route_reply_err(f->req, GW_EDB, msg);
        return;
    }
    f->stopped = stopped;
    /* Kuscia serves no stop_all; its job/stop stops the whole job. */
    bool kus = peers_profile(f->req->app->peers, f->sched) == PEER_KUSCIA;
    cJSON *b = kus ? cJSON_CreateObject() : cJSON_Duplicate(f->req->params, true);
    if (kus)
        json_add_str(b, "job_id", f->job_id);
    if (peer_call(f->req->app, f->sched, "POST",
                  kus ? "/v1/interconn/schedule/job/stop" : "/v1/interconn/schedule/job/stop_all",
                  b, -1, on_stop_told, f, NULL) != 0) {
        struct peer_resp r = {.err = GW_EPEER, .msg = "no route to the node", .node = f->sched};
        on_stop_told(f, &r);
    }
    cJSON_Delete(b);
}

static void on_sched_of(void *arg, int err, const struct db_res *res, const char *errmsg,
                        const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    if (db_res_rows(res) == 0) {
        route_reply_err(req, GW_ENOTFOUND, "job_id: no such job on this node");
        return;
    }
    struct fwd *f = gw_xcalloc(1, sizeof(*f));
    f->req = req;
    req->ctx = f;
    req->ctx_free = fwd_free;
    const char *sched = db_res_get(res, 0, 0);
    if (strcmp(sched, req->app->cfg->node_id) != 0) {
        /* A partner here: stop this node's tasks first, as FATE-Flow does,
         * so the stop holds even if the scheduler cannot be told now. */
        f->sched = gw_xstrdup(sched);
        const char *job_id = NULL;
        if (json_get_id(req->params, "job_id", true, ID_MAX, &job_id, NULL) != 0)
            job_id = ""; /* checked by sched_platform_stop_all already */
        f->job_id = gw_xstrdup(job_id);
        if (partner_stop_local(req->app, f->job_id, "the platform", on_stopped_here, f) != 0)
            route_reply_err(req, GW_EBUSY, "database busy; retry");
        return;
    }
    cJSON *b = cJSON_Duplicate(req->params, true);
    int rc = peer_call(req->app, sched, "POST", "/v1/interconn/schedule/job/stop_all", b, -1,
                       on_forwarded, f, NULL);
    cJSON_Delete(b);
    if (rc != 0)
        route_reply_err(req, GW_EPEER, "no route to the job's scheduler");
}

void sched_platform_stop_all(struct gw_req *req)
{
    const char *job_id = NULL, *task_name = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id) ||
        !route_get_id(req, "task_name", false, &task_name))
        return;
    static const char sql[] =
        "SELECT scheduler FROM t_schedule_job WHERE job_id = $1"
        " UNION ALL SELECT scheduler FROM t_job WHERE job_id = $1 LIMIT 1";
    const char *p[1] = {job_id};
    route_db(req, sql, 1, p, on_sched_of, req);
}

/* ---- status ---------------------------------------------------------------------- */

static void on_status_all(void *arg, int err, const struct db_res *res, const char *errmsg,
                          const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    if (db_res_rows(res) == 0) {
        route_reply_err(req, GW_ENOTFOUND, "job_id: this node schedules no such job");
        return;
    }
    cJSON *data = cJSON_CreateObject();
    cJSON *st = cJSON_Parse(db_res_get(res, 0, 1) ? db_res_get(res, 0, 1) : "{}");
    if (peers_profile(req->app->peers, req->caller) == PEER_KUSCIA) {
        /* Kuscia reads every object member of data as {task_id: status}
         * and stops at the first non-object: send only the map. */
        cJSON_AddItemToObject(data, "status", cJSON_Parse(db_res_get(res, 0, 2)));
        cJSON_Delete(st);
    } else {
        json_add_str(data, "job_status", db_res_get(res, 0, 0));
        cJSON_AddItemToObject(data, "status", st);
    }
    route_reply_ok(req, data);
}

/* Interconn status_all: GET or POST, job_id in query or body; status keyed
 * by task_name (FATE-Flow and the east-west view). */
void sched_status_all(struct gw_req *req)
{
    const char *job_id = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id))
        return;
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
    route_db(req, sql, 1, p, on_status_all, req);
}

static void on_platform_status(void *arg, int err, const struct db_res *res, const char *errmsg,
                               const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    const char *doc = db_res_rows(res) ? db_res_get(res, 0, 0) : NULL;
    if (!doc) {
        route_reply_err(req, GW_ENOTFOUND, "job_id: no such job on this node");
        return;
    }
    route_reply_ok(req, cJSON_Parse(doc));
}

/*
 * Platform status_all: the standard's data.job_status and data.status
 * {task_id: status}, plus the detail of "one place to see why": outcome,
 * progress, wait reason, and per task and party the status, the channel
 * that reported it, wait reason, error text, exit code and log tail.  On a
 * node that does not schedule the job, the local rows answer.
 */
void sched_platform_status_all(struct gw_req *req)
{
    const char *job_id = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id))
        return;
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
    const char *p[2] = {job_id, req->app->cfg->node_id};
    route_db(req, sql, 2, p, on_platform_status, req);
}

/* ---- callback from a partner --------------------------------------------------- */

static void on_cb(void *arg, int err, const struct db_res *res, const char *errmsg,
                  const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    if (db_res_rows(res) == 0) {
        route_reply_err(req, GW_ENOTFOUND, "task_id: no such task for the calling node");
        return;
    }
    const char *job_id = db_res_get(res, 0, 0);
    const char *cur = db_res_get(res, 0, 1);
    bool changed = strcmp(db_res_get(res, 0, 2), "t") == 0;
    const char *want = NULL;
    if (json_get_str(req->params, "status", true, 16, &want, NULL) != 0)
        want = NULL;
    if (changed)
        sched_kick(req->app->sched, job_id);
    if (changed || (want && strcmp(cur, want) == 0)) {
        route_reply_ok(req, NULL); /* a repeated identical callback is a success */
        return;
    }
    char *m = gw_xasprintf("status: %s -> %s is not an allowed transition", cur, want ? want : "");
    route_reply(req, ROUTE_CODE_FAILED, m, NULL);
    free(m);
}

void sched_task_callback(struct gw_req *req)
{
    const char *task_id = NULL, *status = NULL, *role = "";
    if (!route_params(req) || !route_get_id(req, "task_id", true, &task_id))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "status", true, 16, &status, &eb) != 0 ||
        json_get_str(req->params, "role", false, 64, &role, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (strcmp(status, "PENDING") && strcmp(status, "READY") && strcmp(status, "RUNNING") &&
        strcmp(status, "SUCCESS") && strcmp(status, "FAILED")) {
        route_reply_err(req, GW_EINVAL, "status: expected PENDING, READY, RUNNING, SUCCESS or FAILED");
        return;
    }
    if (!req->caller) {
        route_reply_err(req, GW_EINVAL,
                        "x-node-id: the calling node's id is required (x-node-id, x_node_id or "
                        "x-source-node-id)");
        return;
    }
    const cJSON *et = cJSON_GetObjectItemCaseSensitive(req->params, "error_text");
    const cJSON *ec = cJSON_GetObjectItemCaseSensitive(req->params, "exit_code");
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(req->params, "log_tail");
    char ecs[24];
    snprintf(ecs, sizeof(ecs), "%d", cJSON_IsNumber(ec) ? ec->valueint : 0);
    static const char sql[] =
        "WITH o AS (SELECT job_id, status AS old FROM t_schedule_task WHERE task_id = $1"
        "  AND node_id = $2 FOR UPDATE)"
        ", u AS (UPDATE t_schedule_task t SET status = $3,"
        "  status_channel = CASE WHEN t.status = $3 THEN t.status_channel ELSE 'callback' END,"
        "  wait_reason = '', error_text = coalesce(left($4, 4000), t.error_text),"
        "  exit_code = CASE WHEN $3 IN ('SUCCESS','FAILED') THEN $5::int ELSE NULL END,"
        "  log_tail = coalesce(right($6, 8192), t.log_tail),"
        "  start_time = coalesce(t.start_time, now()),"
        "  end_time = CASE WHEN t.status = $3 THEN t.end_time"
        "   WHEN $3 IN ('SUCCESS','FAILED') THEN now() ELSE NULL END,"
        "  updated_at = now() FROM o"
        "  WHERE t.task_id = $1 AND t.node_id = $2 AND ((bfia_task_step_ok(t.status, $3)"
        "  AND EXISTS (SELECT 1 FROM t_schedule_job sj WHERE sj.job_id = t.job_id"
        "   AND sj.status = 'RUNNING'))"
        "  OR (t.status = $3 AND $3 IN ('SUCCESS','FAILED') AND $5::int IS NOT NULL))"
        "  RETURNING o.old)"
        ", e AS (INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
        "  SELECT 'schedule_task', (SELECT job_id FROM o) || '/' || $1 || '@' || $2, old, $3,"
        "  'callback', 'task/callback' FROM u WHERE old <> $3)"
        " SELECT o.job_id, o.old, EXISTS (SELECT 1 FROM u WHERE old <> $3) FROM o";
    const char *p[6] = {task_id, req->caller, status, cJSON_IsString(et) ? et->valuestring : NULL,
                        cJSON_IsNumber(ec) ? ecs : NULL, cJSON_IsString(lt) ? lt->valuestring : NULL};
    route_db(req, sql, 6, p, on_cb, req);
}

/* ---- audit_confirm ----------------------------------------------------------------- */

static void on_audit(void *arg, int err, const struct db_res *res, const char *errmsg,
                     const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    if (db_res_rows(res) == 0) {
        route_reply_err(req, GW_ENOTFOUND, "job_id: this node schedules no such job");
        return;
    }
    const char *cur = db_res_get(res, 0, 0);
    bool changed = strcmp(db_res_get(res, 0, 1), "t") == 0;
    const char *want = NULL, *job_id = NULL;
    if (json_get_str(req->params, "status", true, 16, &want, NULL) != 0)
        want = NULL;
    if (json_get_id(req->params, "job_id", true, ID_MAX, &job_id, NULL) != 0)
        job_id = NULL;
    if (changed) {
        if (strcmp(want, "READY") == 0)
            sched_kick(req->app->sched, job_id);
        else
            send_stop(req->app->sched, job_id, db_res_get(res, 0, 2));
        route_reply_ok(req, NULL);
        return;
    }
    if (strcmp(cur, want) == 0 || (strcmp(want, "READY") == 0 && strcmp(cur, "RUNNING") == 0)) {
        route_reply_ok(req, NULL);
        return;
    }
    char *m = gw_xasprintf("status: the job is %s; only a PENDING job can be confirmed or rejected",
                           cur);
    route_reply(req, ROUTE_CODE_FAILED, m, NULL);
    free(m);
}

void sched_audit_confirm(struct gw_req *req)
{
    const char *job_id = NULL, *status = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "status", true, 16, &status, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (strcmp(status, "READY") && strcmp(status, "REJECTED")) {
        route_reply_err(req, GW_EINVAL, "status: expected READY or REJECTED");
        return;
    }
    static const char sql[] =
        "WITH o AS (SELECT status AS old FROM t_schedule_job WHERE job_id = $1 FOR UPDATE)"
        ", u AS (UPDATE t_schedule_job SET status = $2::text, wait_reason = '',"
        "  error_text = CASE WHEN $2 = 'REJECTED' THEN 'rejected by ' || $3 ELSE error_text END,"
        "  updated_at = now() WHERE job_id = $1 AND status = 'PENDING' RETURNING 1)"
        ", t AS (UPDATE t_schedule_task SET status = 'FAILED', error_text = 'job rejected',"
        "  end_time = now() WHERE job_id = $1 AND $2 = 'REJECTED' AND EXISTS (SELECT 1 FROM u)"
        "  RETURNING 1)"
        ", e AS (INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
        "  SELECT 'schedule_job', $1, 'PENDING', $2, 'api', 'audit_confirm by ' || $3 FROM u)"
        " SELECT o.old, EXISTS (SELECT 1 FROM u), (SELECT parties::text FROM t_schedule_job"
        "  WHERE job_id = $1) FROM o";
    const char *p[3] = {job_id, status, req->caller ? req->caller : "local"};
    route_db(req, sql, 3, p, on_audit, req);
}

/* ---- query_job_list ------------------------------------------------------------- */

static void on_job_list(void *arg, int err, const struct db_res *res, const char *errmsg,
                        const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    cJSON *data = cJSON_CreateObject();
    cJSON *jl = cJSON_AddObjectToObject(data, "job_list");
    for (int i = 0; i < db_res_rows(res); i++)
        json_add_str(jl, db_res_get(res, i, 0), db_res_get(res, i, 1));
    route_reply_ok(req, data);
}

void sched_query_job_list(struct gw_req *req)
{
    const char *flow = NULL;
    if (!route_params(req))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "flow_id", false, 128, &flow, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    static const char sql[] =
        "SELECT job_id, status FROM t_schedule_job WHERE ($1::text IS NULL OR flow_id = $1)"
        " UNION SELECT job_id, min(status) FROM t_job WHERE ($1::text IS NULL OR flow_id = $1)"
        "  AND job_id NOT IN (SELECT job_id FROM t_schedule_job) GROUP BY job_id"
        " ORDER BY 1 DESC LIMIT 10000";
    const char *p[1] = {flow};
    route_db(req, sql, 1, p, on_job_list, req);
}
