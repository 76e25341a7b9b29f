/*
 * sched.c - the scheduler side of jobs.  See sched.h for the model.
 *
 * PostgreSQL holds all job state; struct sjob only coalesces kicks, holds
 * the poll timer and remembers since when a party has been unreachable.
 * Every decision is re-derived from the rows at each pass, and every write
 * is a compare-and-set in store.c, so two passes racing (or a pass after a
 * restart) cannot start a task twice or move a terminal state.
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

#include "gateway/cfg.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "scheduler/dag.h"

#define ID_MAX 128

/*
 * Every context a call in flight carries (a peer call's, a statement's)
 * begins with a struct slink and sits on s->calls from its allocation to
 * its free.  At exit the pool and the HTTP client drop their callbacks
 * without running them; sched_free then frees what they left.
 */
struct slink {
    struct slink *prev, *next;
    struct sched *s;
    void (*drop)(void *self); /* frees the context's members, then scall_free */
};

/* A party that failed to answer, and since when (monotonic ms). */
struct unreach {
    struct unreach *next;
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
    int interval_ms;     /* the poll interval the last pass chose */
    struct event *timer;
    struct unreach *un;
    struct log_ctx log;
};

struct sched {
    struct sched_env env;
    struct sjob *jobs;        /* live jobs and retired ones still referenced */
    struct sjob *dead;        /* released: freed by the reaper event */
    struct event *reaper;
    int held;
    unsigned counter;
    struct event *stop_timer; /* resends job/stop to parties that missed it */
    bool sweeping;
    struct slink *calls;      /* contexts of calls in flight (freed at exit) */
};

static const struct gw_cfg *cfg_of(const struct sched *s)
{
    return *s->env.cfg;
}

static const char *self_id(const struct sched *s)
{
    return cfg_of(s)->node_id;
}

static void *scall_new(struct sched *s, size_t size, void (*drop)(void *self))
{
    struct slink *l = gw_xcalloc(1, size);
    l->s = s;
    l->drop = drop;
    l->next = s->calls;
    if (s->calls)
        s->calls->prev = l;
    s->calls = l;
    return l;
}

static void scall_free(void *p)
{
    struct slink *l = p;
    if (l->prev)
        l->prev->next = l->next;
    else
        l->s->calls = l->next;
    if (l->next)
        l->next->prev = l->prev;
    free(l);
}

/* ---- the two interfaces ------------------------------------------------------ */

#define ST(s) ((s)->env.store)
#define STX(s) ((s)->env.store_ctx)

static int peer_send(struct sched *s, const char *node, const char *path, const cJSON *body,
                     int retries, peer_cb cb, void *arg)
{
    return s->env.peer->call(s->env.peer_ctx, node, "POST", path, body, retries, cb, arg);
}

static enum peer_profile profile_of(const struct sched *s, const char *node)
{
    return s->env.peer->profile(s->env.peer_ctx, node);
}

/* ---- ids ------------------------------------------------------------------- */

/* Lowercase RFC 1123 (no '_'): Kuscia makes each task id the name of a
 * Kubernetes object (kuscia-wire.md §0.7); every other peer takes any id.
 * A failing random source refuses the job rather than guess. */
static int new_task_id(char *out, size_t cap)
{
    unsigned char r[12];
    if (RAND_bytes(r, sizeof(r)) != 1)
        return GW_EINTERNAL;
    int n = snprintf(out, cap, "task-");
    for (size_t i = 0; i < sizeof(r) && (size_t)n + 2 < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%02x", r[i]);
    return 0;
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
    j->timer = evtimer_new(s->env.base, on_timer, j);
    if (!j->timer)
        abort();
    j->log.node_id = self_id(s);
    j->log.job_id = j->job_id;
    j->next = s->jobs;
    if (s->jobs)
        s->jobs->prev = j;
    s->jobs = j;
    s->held++;
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
    j->s->held--;
    event_free(j->timer);
    while (j->un) {
        struct unreach *u = j->un;
        j->un = u->next;
        free(u->node);
        free(u);
    }
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

int sched_jobs_held(const struct sched *s)
{
    return s->held;
}

int sched_job_interval_ms(const struct sched *s, const char *job_id)
{
    const struct sjob *j = sjob_find((struct sched *)s, job_id);
    return j ? j->interval_ms : -1;
}

/* Unreachable-party bookkeeping: returns ms since the party first failed. */
static long long unreach_mark(struct sjob *j, const char *node)
{
    long long now = gw_now_mono_ms();
    for (struct unreach *u = j->un; u; u = u->next)
        if (strcmp(u->node, node) == 0)
            return now - u->since_ms;
    struct unreach *u = gw_xcalloc(1, sizeof(*u));
    u->node = gw_xstrdup(node);
    u->since_ms = now;
    u->next = j->un;
    j->un = u;
    return 0;
}

static void unreach_clear(struct sjob *j, const char *node)
{
    for (struct unreach **pp = &j->un; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->node, node) == 0) {
            struct unreach *u = *pp;
            *pp = u->next;
            free(u->node);
            free(u);
            return;
        }
    }
}

static bool past_deadline(const struct sched *s, long long ms)
{
    return ms > (long long)cfg_of(s)->sched_party_deadline_s * 1000;
}

/* Completion of a background write: failures are logged, nothing waits. */
static void on_bg(void *arg, const struct store_change *r)
{
    const char *what = arg;
    if (r->err)
        log_kv(LOG_LEVEL_ERROR, NULL, "sched.db", "scheduler write failed", "what", what, "err",
               r->msg, NULL);
}

/* ---- stop delivery ------------------------------------------------------------- */

struct stopack {
    struct slink link;
    struct sched *s;
    char *job_id;
};

static void stopack_free(void *p)
{
    struct stopack *a = p;
    free(a->job_id);
    scall_free(a);
}

static struct stopack *stopack_new(struct sched *s, const char *job_id)
{
    struct stopack *a = scall_new(s, sizeof(*a), stopack_free);
    a->s = s;
    a->job_id = gw_xstrdup(job_id);
    return a;
}

/* A party answered job/stop: record it, so the retry sweep leaves it
 * alone.  A refusal is an answer too (sending it again changes nothing; a
 * FATE-Flow peer may refuse to stop a job it finished); only an unreachable
 * party, a refused signature or a transient error (6000 and up: internal,
 * database, busy, draining) is worth another try. */
static void on_stop_sent(void *arg, const struct peer_resp *r)
{
    struct stopack *a = arg;
    if (r->err || r->code == 5004 || r->code >= 6000) {
        struct log_ctx lc = {.node_id = self_id(a->s), .job_id = a->job_id};
        log_kv(LOG_LEVEL_WARN, &lc, "job.stop", "job/stop to a party failed; will be sent again",
               "node", r->node, "err", r->msg, NULL);
    } else if (ST(a->s)->stop_acked(STX(a->s), a->job_id, r->node, on_bg,
                                    (void *)"job/stop acknowledged") != 0) {
        log_kv(LOG_LEVEL_WARN, NULL, "job.stop", "database busy: acknowledgement not recorded",
               NULL);
    }
    stopack_free(a);
}

static void send_stop(struct sched *s, const char *job_id, const char *parties_json)
{
    cJSON *parties = cJSON_Parse(parties_json ? parties_json : "[]");
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "job_id", job_id);
    const cJSON *n;
    cJSON_ArrayForEach(n, parties)
    {
        if (!cJSON_IsString(n))
            continue;
        struct stopack *a = stopack_new(s, job_id);
        if (peer_send(s, n->valuestring, "/v1/interconn/schedule/job/stop", b, -1, on_stop_sent,
                      a) != 0) {
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
    struct timeval tv = {cfg_of(s)->sched_stop_retry_s, 0};
    evtimer_add(s->stop_timer, &tv);
}

static void on_stop_rows(void *arg, const struct db_rows *r)
{
    struct sched *s = arg;
    s->sweeping = false;
    if (r->err)
        log_kv(LOG_LEVEL_WARN, NULL, "job.stop", "cannot read undelivered stops", "err", r->msg,
               NULL);
    for (int i = 0; !r->err && i < r->n; i++)
        send_stop(s, db_rows_get(r, i, 0), db_rows_get(r, i, 1));
    arm_stop_sweep(s);
}

static void on_stop_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sched *s = arg;
    if (s->sweeping ||
        ST(s)->stops_pending(STX(s), cfg_of(s)->sched_sweep_window_s, cfg_of(s)->sched_sweep_limit,
                             on_stop_rows, s) != 0) {
        arm_stop_sweep(s);
        return;
    }
    s->sweeping = true;
}

/* ---- finishing ------------------------------------------------------------------ */

struct fin {
    struct slink link;
    struct sched *s;
    char *job_id;
    char *outcome;
};

static void fin_free(void *p)
{
    struct fin *f = p;
    free(f->job_id);
    free(f->outcome);
    scall_free(f);
}

static void on_finished(void *arg, const struct store_change *r)
{
    struct fin *f = arg;
    if (r->err) {
        log_kv(LOG_LEVEL_ERROR, NULL, "job.finish", "cannot finish the job; trying again", "job",
               f->job_id, "err", r->msg, NULL);
        sched_kick(f->s, f->job_id);
    } else if (r->changed) {
        /* We won the CAS: tell every party. */
        struct log_ctx lc = {.node_id = self_id(f->s), .job_id = f->job_id};
        log_kv(LOG_LEVEL_INFO, &lc, "job.finish", "job finished", "outcome", f->outcome, NULL);
        send_stop(f->s, f->job_id, r->parties);
    }
    fin_free(f);
}

/* CAS the job to FINISHED with outcome; live task rows become FAILED. */
static void finish_job(struct sched *s, const char *job_id, enum job_outcome outcome,
                       const char *reason)
{
    struct fin *f = scall_new(s, sizeof(*f), fin_free);
    f->s = s;
    f->job_id = gw_xstrdup(job_id);
    f->outcome = gw_xstrdup(job_outcome_name(outcome));
    struct sjob_change c = {.job_id = job_id,
                            .to = JOB_STATE_FINISHED,
                            .outcome = outcome,
                            .channel = STATE_CHANNEL_API,
                            .reason = reason};
    if (ST(s)->job_set(STX(s), &c, on_finished, f) != 0) {
        log_kv(LOG_LEVEL_ERROR, NULL, "job.finish", "database unavailable", "job", job_id, NULL);
        fin_free(f);
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
    struct slink link;
    struct sjob *j;
    char *node;
};

static void jcall_free(void *p)
{
    struct jcall *c = p;
    free(c->node);
    scall_free(c);
}

static void on_job_cas(void *arg, const struct store_change *r)
{
    struct sjob *j = arg;
    j->starting_job = false;
    if (r->err) {
        /* tried again on the next tick, not at once: a database that fails
         * every statement must not turn into a job/start storm */
        log_kv(LOG_LEVEL_ERROR, &j->log, "job.start", "cannot mark the job RUNNING", "err",
               r->msg, NULL);
        arm_timer(j, cfg_of(j->s)->sched_poll_ms);
    } else {
        sched_kick(j->s, j->job_id);
    }
    sjob_release(j);
}

static void on_wait_written(void *arg, const struct store_change *r)
{
    struct sjob *j = arg;
    if (r->err)
        log_kv(LOG_LEVEL_WARN, &j->log, "sched.db", "cannot record the wait reason", "err",
               r->msg, NULL);
    sjob_release(j);
}

static void on_job_started(void *arg, const struct peer_resp *r)
{
    struct jcall *c = arg;
    struct sjob *j = c->j;
    struct sched *s = j->s;
    if (r->err) {
        long long ms = unreach_mark(j, c->node);
        free(j->job_start_err);
        j->job_start_err = gw_xasprintf("job/start: node %s unreachable for %llds: %s", c->node,
                                        ms / 1000, r->msg);
        if (past_deadline(s, ms))
            j->job_start_failed = true;
    } else if (r->code != 0) {
        free(j->job_start_err);
        j->job_start_err = gw_xasprintf("job/start refused by node %s: code %d: %s", c->node,
                                        r->code, r->msg);
        j->job_start_failed = true;
    } else if (*c->node) {
        unreach_clear(j, c->node);
    }
    jcall_free(c);
    if (--j->job_start_pending > 0) {
        sjob_release(j);
        return;
    }
    /* the last answer: this call's reference moves to the next step */
    if (j->job_start_failed) {
        j->starting_job = false;
        finish_job(s, j->job_id, JOB_OUTCOME_FAILED, j->job_start_err);
        sjob_release(j);
        return;
    }
    if (j->job_start_err) {
        /* Someone was unreachable: say so and retry on the next tick. */
        j->starting_job = false;
        arm_timer(j, cfg_of(s)->sched_poll_ms);
        if (ST(s)->job_wait(STX(s), j->job_id, j->job_start_err, on_wait_written, j) != 0)
            sjob_release(j);
        free(j->job_start_err);
        j->job_start_err = NULL;
        return;
    }
    struct sjob_change ch = {.job_id = j->job_id,
                             .to = JOB_STATE_RUNNING,
                             .channel = STATE_CHANNEL_API,
                             .reason = "every party accepted job/start"};
    if (ST(s)->job_set(STX(s), &ch, on_job_cas, j) != 0) {
        j->starting_job = false;
        arm_timer(j, cfg_of(s)->sched_poll_ms);
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
    /* a guard answer (node "") ends the fan-out even when every call
     * completes inside this loop */
    j->job_start_pending = 1;
    const cJSON *n;
    cJSON_ArrayForEach(n, parties)
    {
        if (!cJSON_IsString(n))
            continue;
        struct jcall *c = scall_new(j->s, sizeof(*c), jcall_free);
        c->j = sjob_hold(j);
        c->node = gw_xstrdup(n->valuestring);
        j->job_start_pending++;
        if (peer_send(j->s, n->valuestring, "/v1/interconn/schedule/job/start", b, -1,
                      on_job_started, c) != 0) {
            struct peer_resp r = {.err = GW_EPEER, .msg = "no route to the node", .node = c->node};
            on_job_started(c, &r);
        }
    }
    cJSON_Delete(b);
    struct peer_resp ok = {.err = 0, .code = 0, .node = ""};
    struct jcall *g = scall_new(j->s, sizeof(*g), jcall_free);
    g->j = sjob_hold(j);
    g->node = gw_xstrdup("");
    on_job_started(g, &ok);
}

/* task/start to the parties of one task */
struct tcall {
    struct slink link;
    struct sjob *j;
    char *task_id, *node, *task_name;
};

static void tcall_drop(void *p)
{
    struct tcall *c = p;
    free(c->task_id);
    free(c->node);
    free(c->task_name);
    scall_free(c);
}

static struct tcall *tcall_new(struct sjob *j, const char *task_id, const char *task_name,
                               const char *node)
{
    struct tcall *c = scall_new(j->s, sizeof(*c), tcall_drop);
    c->j = sjob_hold(j);
    c->task_id = gw_xstrdup(task_id);
    c->task_name = gw_xstrdup(task_name);
    c->node = node ? gw_xstrdup(node) : NULL;
    return c;
}

static void tcall_free(struct tcall *c)
{
    sjob_release(c->j);
    tcall_drop(c);
}

static void on_task_row_done(void *arg, const struct store_change *r)
{
    struct tcall *c = arg;
    if (r->err)
        log_kv(LOG_LEVEL_ERROR, &c->j->log, "task.start", "cannot record the task/start reply",
               "err", r->msg, NULL);
    sched_kick(c->j->s, c->j->job_id);
    tcall_free(c);
}

static void on_task_started(void *arg, const struct peer_resp *r)
{
    struct tcall *c = arg;
    struct sjob *j = c->j;
    struct sched *s = j->s;
    char reason[600];
    int rc;
    if (r->err) {
        long long ms = unreach_mark(j, c->node);
        snprintf(reason, sizeof(reason), "task/start: node %s unreachable for %llds: %.400s",
                 c->node, ms / 1000, r->msg);
        arm_timer(j, cfg_of(s)->sched_poll_ms);
        if (past_deadline(s, ms)) {
            struct stask_change ch = {.job_id = j->job_id, .task_id = c->task_id,
                                      .node = c->node, .to = TASK_STATE_FAILED,
                                      .channel = STATE_CHANNEL_API, .reason = reason,
                                      .error_text = reason};
            rc = ST(s)->task_set(STX(s), &ch, on_task_row_done, c);
        } else {
            /* retried on the next tick (task/start is idempotent) */
            rc = ST(s)->task_note(STX(s), j->job_id, c->task_id, c->node, reason, true, 0,
                                  on_task_row_done, c);
        }
    } else if (r->code != 0) {
        snprintf(reason, sizeof(reason), "task/start refused by node %s: code %d: %.400s", c->node,
                 r->code, r->msg);
        struct stask_change ch = {.job_id = j->job_id, .task_id = c->task_id, .node = c->node,
                                  .to = TASK_STATE_FAILED, .channel = STATE_CHANNEL_API,
                                  .reason = reason, .error_text = reason};
        rc = ST(s)->task_set(STX(s), &ch, on_task_row_done, c);
    } else {
        unreach_clear(j, c->node);
        snprintf(reason, sizeof(reason), "task/start accepted by %s", c->node);
        struct stask_change ch = {.job_id = j->job_id, .task_id = c->task_id, .node = c->node,
                                  .to = TASK_STATE_RUNNING, .channel = STATE_CHANNEL_API,
                                  .reason = reason};
        rc = ST(s)->task_set(STX(s), &ch, on_task_row_done, c);
    }
    if (rc != 0)
        tcall_free(c);
}

static void on_claimed(void *arg, const struct db_rows *r)
{
    struct tcall *c0 = arg;
    struct sjob *j = c0->j;
    if (r->err) {
        log_kv(LOG_LEVEL_ERROR, &j->log, "task.start", "cannot claim the task", "err", r->msg,
               NULL);
        tcall_free(c0);
        return;
    }
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "job_id", j->job_id);
    json_add_str(b, "task_id", c0->task_id);
    json_add_str(b, "task_name", c0->task_name);
    for (int i = 0; i < r->n; i++) {
        struct tcall *c = tcall_new(j, c0->task_id, c0->task_name, db_rows_get(r, i, 0));
        log_kv(LOG_LEVEL_INFO, &j->log, "task.start", "sending task/start", "task", c->task_name,
               "node", c->node, NULL);
        if (peer_send(j->s, c->node, "/v1/interconn/schedule/task/start", b, 0, on_task_started,
                      c) != 0) {
            struct peer_resp pr = {.err = GW_EPEER, .msg = "no route to the node",
                                   .node = c->node};
            on_task_started(c, &pr);
        }
    }
    cJSON_Delete(b);
    tcall_free(c0);
}

static void start_task(struct sjob *j, const char *task_id, const char *task_name)
{
    struct tcall *c = tcall_new(j, task_id, task_name, NULL);
    if (ST(j->s)->claim(STX(j->s), j->job_id, task_id, on_claimed, c) != 0) {
        arm_timer(j, cfg_of(j->s)->sched_poll_ms);
        tcall_free(c);
    }
}

/* task/poll */
struct pcall {
    struct slink link;
    struct sjob *j;
    char *task_id, *node;
    bool resend_ok;
};

static void pcall_drop(void *p)
{
    struct pcall *c = p;
    free(c->task_id);
    free(c->node);
    scall_free(c);
}

static void pcall_free(struct pcall *c)
{
    struct sjob *j = c->j;
    j->polls--;
    pcall_drop(c);
    sjob_release(j);
}

static void on_poll_written(void *arg, const struct store_change *r)
{
    struct pcall *c = arg;
    struct sjob *j = c->j;
    if (r->err)
        log_kv(LOG_LEVEL_WARN, &j->log, "task.poll", "cannot record a poll answer", "err", r->msg,
               NULL);
    if (!r->err && r->changed)
        sched_kick(j->s, j->job_id);
    pcall_free(c);
}

static void on_polled(void *arg, const struct peer_resp *r)
{
    struct pcall *c = arg;
    struct sjob *j = c->j;
    struct sched *s = j->s;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r->data, "status");
    enum task_state ts;
    bool known = cJSON_IsString(st) && task_state_parse(st->valuestring, &ts);
    /* A party that refuses to answer (a non-zero code) about a task it
     * runs is as stuck as one that cannot be reached: say so, and fail the
     * task after the same deadline.  (Not for a READY task it may not know
     * yet: that gets task/start again, below.) */
    bool refused = !r->err && (r->code != 0 || !cJSON_IsString(st)) && !c->resend_ok;
    int rc = -1;
    if (r->err || refused) {
        long long ms = unreach_mark(j, c->node);
        char reason[600];
        if (refused)
            snprintf(reason, sizeof(reason), "poll: node %s refused for %llds: code %d: %.400s",
                     c->node, ms / 1000, r->code, r->msg ? r->msg : "");
        else
            snprintf(reason, sizeof(reason), "poll: node %s unreachable for %llds: %.400s",
                     c->node, ms / 1000, r->msg);
        if (past_deadline(s, ms)) {
            struct stask_change ch = {.job_id = j->job_id, .task_id = c->task_id,
                                      .node = c->node, .to = TASK_STATE_FAILED,
                                      .channel = STATE_CHANNEL_POLL, .reason = reason,
                                      .error_text = reason};
            rc = ST(s)->task_set(STX(s), &ch, on_poll_written, c);
        } else {
            rc = ST(s)->task_note(STX(s), j->job_id, c->task_id, c->node, reason, false, 0,
                                  on_poll_written, c);
        }
    } else if (r->code == 0 && known) {
        unreach_clear(j, c->node);
        const cJSON *et = cJSON_GetObjectItemCaseSensitive(r->data, "error_text");
        const cJSON *ec = cJSON_GetObjectItemCaseSensitive(r->data, "exit_code");
        const cJSON *lt = cJSON_GetObjectItemCaseSensitive(r->data, "log_tail");
        char ecs[24];
        snprintf(ecs, sizeof(ecs), "%d", cJSON_IsNumber(ec) ? ec->valueint : 0);
        struct stask_change ch = {.job_id = j->job_id,
                                  .task_id = c->task_id,
                                  .node = c->node,
                                  .to = ts,
                                  .channel = STATE_CHANNEL_POLL,
                                  .reason = "task/poll",
                                  .error_text = cJSON_IsString(et) ? et->valuestring : NULL,
                                  .exit_code = cJSON_IsNumber(ec) ? ecs : NULL,
                                  .log_tail = cJSON_IsString(lt) ? lt->valuestring : NULL};
        rc = ST(s)->task_set(STX(s), &ch, on_poll_written, c);
    } else if (r->code == 0) {
        log_kv(LOG_LEVEL_WARN, &j->log, "task.poll", "party answered an unknown status", "node",
               c->node, "status", cJSON_IsString(st) ? st->valuestring : "", NULL);
    } else if (c->resend_ok) {
        /* The party does not know the task although we sent task/start
         * long ago (a crash between our claim and the call): send again. */
        rc = ST(s)->task_note(STX(s), j->job_id, c->task_id, c->node,
                              "task/start not seen by the party; resending", true,
                              cfg_of(s)->sched_resend_after_s,
                              on_poll_written, c);
    }
    if (rc != 0)
        pcall_free(c);
}

static void poll_task(struct sjob *j, const char *task_id, const char *node, const char *role,
                      bool resend_ok)
{
    struct pcall *c = scall_new(j->s, sizeof(*c), pcall_drop);
    c->j = sjob_hold(j);
    c->task_id = gw_xstrdup(task_id);
    c->node = gw_xstrdup(node);
    c->resend_ok = resend_ok;
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "task_id", task_id);
    /* "" asks for every role the party plays (standard, FATE-Flow, ours);
     * Kuscia refuses an empty role (code 400) and answers per role name
     * (kuscia-wire.md §4, §10.7): ask for the party's first role there. */
    json_add_str(b, "role", profile_of(j->s, node) == PEER_KUSCIA && role ? role : "");
    j->polls++;
    if (peer_send(j->s, node, "/v1/interconn/schedule/task/poll", b, 0, on_polled, c) != 0) {
        struct peer_resp r = {.err = GW_EPEER, .msg = "no route to the node", .node = node};
        on_polled(c, &r);
    }
    cJSON_Delete(b);
}

/* Whether some party of the job never pushes its status (FATE-Flow): then
 * the backstop is the only way to learn of a change, so it runs at the
 * poll interval whatever the job's sync type. */
static bool silent_party(const struct sched *s, const cJSON *parties)
{
    const cJSON *n;
    cJSON_ArrayForEach(n, parties)
    {
        if (cJSON_IsString(n) && strcmp(n->valuestring, self_id(s)) != 0 &&
            profile_of(s, n->valuestring) == PEER_FATE_FLOW)
            return true;
    }
    return false;
}

static int find_name(const struct sjob_view *v, const char *name)
{
    for (int q = 0; q < v->ntasks; q++)
        if (v->tasks[q].name && strcmp(v->tasks[q].name, name) == 0)
            return q;
    return -1;
}

/* RUNNING: fail, succeed, or start every task whose upstream tasks all
 * succeeded.  Returns whether the job is now finishing. */
static bool run_tasks(struct sjob *j, const struct sjob_view *v)
{
    struct sched *s = j->s;
    const struct sjob_task_view *failed = NULL;
    bool all_success = v->ntasks > 0;
    for (int k = 0; k < v->ntasks; k++) {
        if (v->tasks[k].status == TASK_STATE_FAILED && !failed)
            failed = &v->tasks[k];
        all_success &= v->tasks[k].status == TASK_STATE_SUCCESS;
    }
    if (failed) {
        const char *node = failed->fail_node ? failed->fail_node : "?";
        const char *err = failed->fail_error ? failed->fail_error : "";
        char *why = gw_xasprintf("task %s failed on node %s%s%s", failed->name, node,
                                 *err ? ": " : "", err);
        finish_job(s, j->job_id, JOB_OUTCOME_FAILED, why);
        free(why);
        return true;
    }
    if (all_success) {
        finish_job(s, j->job_id, JOB_OUTCOME_SUCCESS, "");
        return true;
    }
    for (int k = 0; k < v->ntasks; k++) {
        const struct sjob_task_view *t = &v->tasks[k];
        if (!t->sendable || !t->name || !t->task_id)
            continue;
        bool ready = true;
        const cJSON *d;
        cJSON_ArrayForEach(d, t->deps)
        {
            int q = cJSON_IsString(d) ? find_name(v, d->valuestring) : -1;
            if (q < 0 || v->tasks[q].status != TASK_STATE_SUCCESS)
                ready = false;
        }
        if (ready)
            start_task(j, t->task_id, t->name);
    }
    return false;
}

static void on_pass(void *arg, const struct sjob_view *v)
{
    struct sjob *j = arg;
    struct sched *s = j->s;
    const struct gw_cfg *cfg = cfg_of(s);
    j->loading = false;
    if (v->err) {
        log_kv(LOG_LEVEL_WARN, &j->log, "sched.pass", "cannot read the job; retrying", "err",
               v->msg, NULL);
        arm_timer(j, cfg->sched_poll_ms);
        sjob_release(j);
        return;
    }
    bool finished = !v->found || job_state_is_terminal(v->status);
    if (finished || v->status == JOB_STATE_PENDING) {
        /* nothing to do: ended, or awaiting audit_confirm */
    } else if (v->status == JOB_STATE_READY) {
        start_job(j, v->parties);
    } else if (v->timed_out_s > 0) {
        /* A job running past its deadline (sched.job_timeout_s, or the
         * job's config.job_params.common.timeout_s) fails instead of
         * waiting for ever. */
        char *why = gw_xasprintf("timed out: still running after %lld s (timeout_s)",
                                 v->timed_out_s);
        finish_job(s, j->job_id, JOB_OUTCOME_FAILED, why);
        free(why);
        finished = true;
    } else {
        finished = run_tasks(j, v);
        j->interval_ms = v->poll_mode || silent_party(s, v->parties) ? cfg->sched_poll_ms
                                                                     : cfg->sched_backstop_ms;
        if (!finished)
            arm_timer(j, j->interval_ms);
    }
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
    if (ST(j->s)->load(STX(j->s), j->job_id, cfg_of(j->s)->sched_job_timeout_s, on_pass, j) !=
        0) {
        j->loading = false;
        arm_timer(j, cfg_of(j->s)->sched_poll_ms);
        sjob_release(j);
    }
}

/* The timer: poll every live party row, then run a pass (retries of
 * job/start and task/start that could not reach a party). */
static void on_poll_rows(void *arg, const struct db_rows *r)
{
    struct sjob *j = arg;
    j->polls--;
    if (!r->err && !j->retired)
        for (int i = 0; i < r->n; i++) {
            const char *resend = db_rows_get(r, i, 2);
            poll_task(j, db_rows_get(r, i, 0), db_rows_get(r, i, 1),
                      db_rows_get(r, i, 3), resend && strcmp(resend, "t") == 0);
        }
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
    j->polls++;
    if (ST(j->s)->poll_targets(STX(j->s), j->job_id, cfg_of(j->s)->sched_resend_after_s,
                               on_poll_rows, sjob_hold(j)) != 0) {
        j->polls--;
        arm_timer(j, cfg_of(j->s)->sched_poll_ms);
        sjob_release(j);
    }
}

/* ---- lifetime / resume -------------------------------------------------------- */

struct sched *sched_new(const struct sched_env *env)
{
    struct sched *s = gw_xcalloc(1, sizeof(*s));
    s->env = *env;
    s->stop_timer = evtimer_new(env->base, on_stop_sweep, s);
    s->reaper = event_new(env->base, -1, 0, on_reap, s);
    if (!s->stop_timer || !s->reaper)
        abort();
    arm_stop_sweep(s);
    return s;
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    /* The pool and the HTTP client dropped every callback already: free the
     * contexts they left (without touching jobs), then the jobs. */
    while (s->calls)
        s->calls->drop(s->calls);
    while (s->jobs) {
        struct sjob *j = s->jobs;
        sjob_unlink(j);
        sjob_free(j);
    }
    on_reap(-1, 0, s);
    event_free(s->reaper);
    event_free(s->stop_timer);

    free(s);
}

struct resume {
    struct slink link;
    struct sched *s;
    void (*done)(void *arg, int err, const char *msg);
    void *arg;
};

static void on_resume_rows(void *arg, const struct db_rows *r)
{
    struct resume *rs = arg;
    for (int i = 0; !r->err && i < r->n; i++)
        sched_kick(rs->s, db_rows_get(r, i, 0));
    rs->done(rs->arg, r->err, r->err ? r->msg : "");
    scall_free(rs);
}

void sched_resume(struct sched *s, void (*done)(void *arg, int err, const char *msg), void *arg)
{
    struct resume *rs = scall_new(s, sizeof(*rs), scall_free);
    rs->s = s;
    rs->done = done;
    rs->arg = arg;
    if (ST(s)->live(STX(s), on_resume_rows, rs) != 0) {
        scall_free(rs);
        done(arg, GW_EDB, "database unavailable");
    }
}

/* ---- requests: shared ------------------------------------------------------------ */

/* A request in flight: the caller's callback, and what the steps need. */
struct sreq {
    struct slink link;
    struct sched *s;
    sched_reply_cb cb;
    void *arg;
    char *job_id;
    char *want;      /* audit: READY/REJECTED; callback: the status */
    struct dag *d;   /* create */
    char *flow_id, *old_job_id, *caller;
    bool approval;
    cJSON *parties;  /* create: JSON array */
    int pending;     /* create: job/create answers outstanding */
    char *refusal;   /* create: the first refusal */
};

static void sreq_free(struct sreq *q);

static void sreq_drop(void *p)
{
    sreq_free(p);
}

static struct sreq *sreq_new(struct sched *s, sched_reply_cb cb, void *arg)
{
    struct sreq *q = scall_new(s, sizeof(*q), sreq_drop);
    q->s = s;
    q->cb = cb;
    q->arg = arg;
    return q;
}

static void sreq_free(struct sreq *q)
{
    free(q->job_id);
    free(q->want);
    dag_free(q->d);
    free(q->flow_id);
    free(q->old_job_id);
    free(q->caller);
    cJSON_Delete(q->parties);
    free(q->refusal);
    scall_free(q);
}

/* Answer and free: data is borrowed by the callback. */
static void sreq_answer(struct sreq *q, int err, int code, const char *msg, const cJSON *data)
{
    struct sched_reply r = {.err = err, .code = code, .msg = msg, .data = data};
    q->cb(q->arg, &r);
    sreq_free(q);
}

static void sreq_done(struct sreq *q, int err, const char *msg, const cJSON *data)
{
    sreq_answer(q, err, -1, msg, data);
}

static void sreq_done_job(struct sreq *q, int err, const char *msg)
{
    cJSON *d = cJSON_CreateObject();
    json_add_str(d, "job_id", q->job_id);
    sreq_done(q, err, msg, d);
    cJSON_Delete(d);
}

/* A store call that could not start becomes the request's synchronous error. */
static int start_failed(struct sreq *q, int rc, struct gw_errbuf *eb)
{
    sreq_free(q);
    return gw_errf(eb, rc == GW_EBUSY ? GW_EBUSY : GW_EDB,
                   rc == GW_EBUSY ? "database wait queue is full; retry later"
                                  : "database unavailable");
}

/* The database's answer, as the caller may see it: never its text. */
static bool db_failed(struct sreq *q, int err, const char *what)
{
    if (!err)
        return false;
    log_kv(LOG_LEVEL_WARN, NULL, "sched.db", what, "err", gw_strerror(err), NULL);
    sreq_done(q, err == GW_ETIMEOUT ? GW_ETIMEOUT : GW_EDB,
              err == GW_ETIMEOUT ? "database query timed out" : "database error; retry later",
              NULL);
    return true;
}

/* ---- create_all (interconn) --------------------------------------------------- */

static void kuscia_dag(cJSON *dag);
static void kuscia_config(cJSON *config);

static void create_done(struct sreq *q)
{
    struct sched *s = q->s;
    if (q->refusal) {
        /* Nothing may stay startable: finish the job, which stops the
         * parties that accepted. */
        finish_job(s, q->job_id, JOB_OUTCOME_FAILED, q->refusal);
        char *m = gw_xstrdup(q->refusal);
        sreq_done_job(q, GW_EREFUSED, m);
        free(m);
        return;
    }
    if (!q->approval)
        sched_kick(s, q->job_id);
    struct log_ctx lc = {.node_id = self_id(s), .job_id = q->job_id};
    log_kv(LOG_LEVEL_INFO, &lc, "job.create", "every party accepted job/create", NULL);
    sreq_done_job(q, 0, "success");
}

struct ccall {
    struct slink link;
    struct sreq *q;
    char *node;
};

static void ccall_free(void *p)
{
    struct ccall *cc = p;
    free(cc->node);
    scall_free(cc);
}

static void on_party_created(void *arg, const struct peer_resp *r)
{
    struct ccall *cc = arg;
    struct sreq *q = cc->q;
    if ((r->err || r->code != 0) && !q->refusal)
        q->refusal = r->err ? gw_xasprintf("job/create: node %s unreachable: %s", cc->node, r->msg)
                            : gw_xasprintf("job/create refused by node %s: %s", cc->node, r->msg);
    ccall_free(cc);
    if (--q->pending == 0)
        create_done(q);
}

static void on_create_written(void *arg, const struct store_change *r)
{
    struct sreq *q = arg;
    struct sched *s = q->s;
    if (db_failed(q, r->err, "cannot store the job"))
        return;
    if (!r->changed) {
        /* Repeated create_all of a known job: nothing changes. */
        sreq_done_job(q, 0, "success");
        return;
    }
    /* Fan job/create out to every party in parallel. */
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "job_id", q->job_id);
    json_add_str(b, "flow_id", q->flow_id);
    json_add_str(b, "old_job_id", q->old_job_id);
    cJSON_AddItemToObject(b, "dag", cJSON_Duplicate(dag_json(q->d), true));
    cJSON_AddItemToObject(b, "config", cJSON_Duplicate(dag_config(q->d), true));
    json_add_str(b, "scheduler", self_id(s));
    q->pending = 1;
    const cJSON *n;
    cJSON_ArrayForEach(n, q->parties)
    {
        struct ccall *cc = scall_new(s, sizeof(*cc), ccall_free);
        cc->q = q;
        cc->node = gw_xstrdup(n->valuestring);
        q->pending++;
        /* A Kuscia node finds a component by code (its AppImage, here the
         * provider) and module_name (kuscia-wire.md 5.1, 10.7). */
        cJSON *bk = NULL;
        if (profile_of(s, n->valuestring) == PEER_KUSCIA) {
            bk = cJSON_Duplicate(b, true);
            kuscia_dag(cJSON_GetObjectItemCaseSensitive(bk, "dag"));
            kuscia_config(cJSON_GetObjectItemCaseSensitive(bk, "config"));
        }
        int rc = peer_send(s, n->valuestring, "/v1/interconn/schedule/job/create", bk ? bk : b, -1,
                           on_party_created, cc);
        cJSON_Delete(bk);
        if (rc != 0) {
            struct peer_resp pr = {.err = GW_EPEER, .msg = "no route to the node",
                                   .node = cc->node};
            on_party_created(cc, &pr);
        }
    }
    cJSON_Delete(b);
    if (--q->pending == 0)
        create_done(q);
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

/* The party rows of every task: one per node that plays a role of it. */
static int build_task_rows(struct sreq *q, const struct db_rows *r, cJSON *rows, char *msg,
                           size_t cap)
{
    struct dag *d = q->d;
    for (int i = 0; i < dag_ntasks(d); i++) {
        const struct dag_task *t = dag_task(d, i);
        const char *rl = i < r->n ? db_rows_get(r, i, 0) : NULL;
        if (!rl) {
            snprintf(msg, cap,
                     "dag.components[%d]: component %.100s/%.100s@%.40s is not registered on the "
                     "scheduler %.64s",
                     i, t->provider, t->component, t->version, self_id(q->s));
            return GW_ENOTFOUND;
        }
        cJSON *desc = cJSON_CreateObject();
        cJSON_AddItemToObject(desc, "roleList", cJSON_Parse(rl));
        cJSON *nodes = dag_task_nodes(d, desc);
        cJSON_Delete(desc);
        cJSON *uniq = cJSON_CreateArray();
        const cJSON *rr, *n;
        cJSON_ArrayForEach(rr, nodes) cJSON_ArrayForEach(n, rr)
        {
            bool have = false;
            const cJSON *e;
            cJSON_ArrayForEach(e, uniq) have |= strcmp(e->valuestring, n->valuestring) == 0;
            if (!have)
                cJSON_AddItemToArray(uniq, cJSON_CreateString(n->valuestring));
        }
        char tid[48];
        int rc = 0;
        if (cJSON_GetArraySize(uniq) == 0) {
            snprintf(msg, cap,
                     "dag.components[%d]: no node of config.role plays a role of component "
                     "%.100s (roleList %.200s)",
                     i, t->component, rl);
            rc = GW_EINVAL;
        } else if (new_task_id(tid, sizeof(tid)) != 0) {
            snprintf(msg, cap, "no random task id could be made (the system's random source "
                               "failed); retry");
            rc = GW_EINTERNAL;
        }
        if (rc != 0) {
            cJSON_Delete(uniq);
            cJSON_Delete(nodes);
            return rc;
        }
        cJSON *deps = cJSON_CreateArray();
        for (int u = 0; u < t->n_ups; u++)
            cJSON_AddItemToArray(deps, cJSON_CreateString(dag_task(d, t->ups[u])->name));
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
    return 0;
}

static void on_components(void *arg, const struct db_rows *r)
{
    struct sreq *q = arg;
    struct sched *s = q->s;
    if (db_failed(q, r->err, "cannot read the components"))
        return;
    char msg[600];
    cJSON *rows = cJSON_CreateArray();
    int rc = build_task_rows(q, r, rows, msg, sizeof(msg));
    if (rc != 0) {
        cJSON_Delete(rows);
        sreq_done(q, rc, msg, NULL);
        return;
    }
    char *dj = json_print(dag_json(q->d)), *cj = json_print(dag_config(q->d)),
         *pj = json_print(q->parties), *rj = json_print(rows);
    struct sjob_new n = {.job_id = q->job_id,
                         .flow_id = q->flow_id,
                         .old_job_id = q->old_job_id,
                         .dag = dj,
                         .config = cj,
                         .initiator = dag_initiator(q->d),
                         .scheduler = self_id(s),
                         .parties = pj,
                         .sync_type = dag_sync_type(q->d),
                         .approval = q->approval,
                         .tasks = rj,
                         .by = q->caller ? q->caller : "local"};
    rc = ST(s)->insert(STX(s), &n, on_create_written, q);
    cJSON_free(dj);
    cJSON_free(cj);
    cJSON_free(pj);
    cJSON_free(rj);
    cJSON_Delete(rows);
    if (rc != 0)
        sreq_done(q, rc == GW_EBUSY ? GW_EBUSY : GW_EDB,
                  rc == GW_EBUSY ? "database wait queue is full; retry later"
                                 : "database unavailable",
                  NULL);
}

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

int sched_check_profiles(struct sched *s, const struct dag *d, char *msg, size_t cap)
{
    cJSON *parties = dag_parties(d);
    const cJSON *n;
    const char *kus = NULL, *foreign = NULL;
    cJSON_ArrayForEach(n, parties)
    {
        enum peer_profile pr = profile_of(s, n->valuestring);
        if (!kus && pr == PEER_KUSCIA)
            kus = n->valuestring;
        if (!foreign && (pr == PEER_FATE_FLOW || pr == PEER_KUSCIA))
            foreign = n->valuestring;
    }
    int rc = 0;
    const char *sched_node = dag_scheduler(d);
    if (foreign && sched_node && strcmp(sched_node, self_id(s)) != 0) {
        /* FATE-Flow and Kuscia send stop_all and status_all to the
         * initiator whatever the job says (spec §5.4): with a third-party
         * scheduler those calls would reach a node that does not schedule
         * the job. */
        snprintf(msg, cap,
                 "config.job_params.common.scheduler: a third-party scheduler needs every party "
                 "to be a gateway like this one; node %.64s speaks the %s profile, which always "
                 "treats the initiator as the scheduler (leave the scheduler unset)",
                 foreign, profile_of(s, foreign) == PEER_KUSCIA ? "kuscia" : "fate-flow");
        rc = GW_EINVAL;
    }
    /* Kuscia turns every parameter into an environment variable: a list or
     * null value makes it accept the job and never schedule the task
     * (kuscia-wire.md §4).  With a Kuscia party, refuse such a value. */
    const cJSON *tp = kus && rc == 0
                          ? cJSON_GetObjectItemCaseSensitive(dag_config(d), "task_params")
                          : NULL;
    const cJSON *role, *idx;
    char where[100];
    cJSON_ArrayForEach(role, tp)
    {
        if (rc != 0)
            break;
        if (strcmp(role->string, "common") == 0) {
            if (list_or_null(role, "config.task_params.common", kus, msg, cap))
                rc = GW_EINVAL;
            continue;
        }
        cJSON_ArrayForEach(idx, role)
        {
            snprintf(where, sizeof(where), "config.task_params.%.20s.%.8s", role->string,
                     idx->string);
            if (rc == 0 && list_or_null(idx, where, kus, msg, cap))
                rc = GW_EINVAL;
        }
    }
    cJSON_Delete(parties);
    return rc;
}

int sched_create(struct sched *s, struct sched_create_in *in, struct gw_errbuf *eb,
                 sched_reply_cb cb, void *arg)
{
    char msg[400];
    if (sched_check_profiles(s, in->dag, msg, sizeof(msg)) != 0) {
        dag_free(in->dag);
        in->dag = NULL;
        return gw_errf(eb, GW_EINVAL, "%s", msg);
    }
    /* Every party must be routable (or be this node). */
    cJSON *parties = dag_parties(in->dag);
    const cJSON *n;
    cJSON_ArrayForEach(n, parties)
    {
        if (!s->env.peer->routable(s->env.peer_ctx, n->valuestring)) {
            int rc = gw_errf(eb, GW_EINVAL, "config.role: node %.64s is not in the route table",
                             n->valuestring);
            cJSON_Delete(parties);
            dag_free(in->dag);
            in->dag = NULL;
            return rc;
        }
    }
    struct sreq *q = sreq_new(s, cb, arg);
    q->job_id = gw_xstrdup(in->job_id);
    q->flow_id = gw_xstrdup(in->flow_id ? in->flow_id : "");
    q->old_job_id = gw_xstrdup(in->old_job_id ? in->old_job_id : "");
    q->caller = in->caller ? gw_xstrdup(in->caller) : NULL;
    q->d = in->dag;
    in->dag = NULL;
    q->parties = parties;
    q->approval = in->approval;
    /* Component lookup by (provider, version, componentName). */
    char *comps = json_print(cJSON_GetObjectItemCaseSensitive(dag_json(q->d), "components"));
    int rc = ST(s)->component_roles(STX(s), comps, on_components, q);
    cJSON_free(comps);
    if (rc != 0)
        return start_failed(q, rc, eb);
    return 0;
}

/* ---- platform create_all: new id, forwarded to the scheduler ------------------ */

static void on_forwarded(void *arg, const struct peer_resp *r)
{
    struct sreq *q = arg;
    if (r->err) {
        sreq_done_job(q, r->err, r->msg);
        return;
    }
    cJSON *data = r->data ? cJSON_Duplicate(r->data, true) : cJSON_CreateObject();
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        data = cJSON_CreateObject();
    }
    if (!cJSON_GetObjectItemCaseSensitive(data, "job_id"))
        json_add_str(data, "job_id", q->job_id);
    /* the scheduler's own code and message travel as they are */
    sreq_answer(q, r->code == 0 ? 0 : GW_EREFUSED, r->code, r->code == 0 ? "success" : r->msg,
                data);
    cJSON_Delete(data);
}

int sched_submit(struct sched *s, struct dag *d, const char *flow_id, const char *old_job_id,
                 struct gw_errbuf *eb, sched_reply_cb cb, void *arg)
{
    char msg[400];
    if (sched_check_profiles(s, d, msg, sizeof(msg)) != 0) {
        dag_free(d);
        return gw_errf(eb, GW_EINVAL, "%s", msg);
    }
    if (strcmp(dag_initiator(d), self_id(s)) != 0) {
        /* the scheduler takes create_all only from the initiator it names */
        int rc = gw_errf(eb, GW_EINVAL,
                         "config.initiator.node_id: %.64s is another node; this node (%s) "
                         "initiates its own jobs only",
                         dag_initiator(d), self_id(s));
        dag_free(d);
        return rc;
    }
    const char *sched_node = dag_scheduler(d) ? dag_scheduler(d) : self_id(s);
    if (!s->env.peer->routable(s->env.peer_ctx, sched_node)) {
        int rc = gw_errf(eb, GW_EINVAL, "config.job_params.common.scheduler: no route to node %s",
                         sched_node);
        dag_free(d);
        return rc;
    }
    char jid[40];
    new_job_id(s, jid, sizeof(jid));
    struct sreq *q = sreq_new(s, cb, arg);
    q->job_id = gw_xstrdup(jid);
    /* FATE-Flow's null trap: always send flow_id and old_job_id as strings. */
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "job_id", jid);
    json_add_str(b, "flow_id", flow_id ? flow_id : "");
    json_add_str(b, "old_job_id", old_job_id ? old_job_id : "");
    cJSON_AddItemToObject(b, "dag", cJSON_Duplicate(dag_json(d), true));
    cJSON_AddItemToObject(b, "config", cJSON_Duplicate(dag_config(d), true));
    int rc = peer_send(s, sched_node, "/v1/interconn/schedule/job/create_all", b, 0, on_forwarded,
                       q);
    cJSON_Delete(b);
    if (rc != 0) {
        /* sched_node may point into d: free d only after the message */
        rc = gw_errf(eb, GW_EINVAL, "config.job_params.common.scheduler: no route to node %s",
                     sched_node);
        sreq_free(q);
    }
    dag_free(d);
    return rc;
}

/* ---- stop_all ------------------------------------------------------------------- */

static void on_stop_all(void *arg, const struct store_change *r)
{
    struct sreq *q = arg;
    if (db_failed(q, r->err, "cannot stop the job"))
        return;
    if (!r->old) {
        sreq_done(q, GW_ENOTFOUND, "job_id: this node schedules no such job", NULL);
        return;
    }
    if (r->changed) {
        struct log_ctx lc = {.node_id = self_id(q->s), .job_id = q->job_id};
        log_kv(LOG_LEVEL_INFO, &lc, "job.stop", "job stopped", "by",
               q->caller ? q->caller : "local", NULL);
    }
    /* Stop on every party even when already finished: a repeated stop_all
     * is harmless and covers a party that missed the first one. */
    send_stop(q->s, q->job_id, r->parties);
    sreq_done(q, 0, "success", NULL);
}

int sched_stop(struct sched *s, const char *job_id, const char *task_name, const char *caller,
               struct gw_errbuf *eb, sched_reply_cb cb, void *arg)
{
    struct sreq *q = sreq_new(s, cb, arg);
    q->job_id = gw_xstrdup(job_id);
    q->caller = caller ? gw_xstrdup(caller) : NULL;
    char *why = gw_xasprintf("stopped by %s%s%s", caller ? caller : "the platform",
                             task_name ? " at task " : "", task_name ? task_name : "");
    struct sjob_change c = {.job_id = job_id,
                            .to = JOB_STATE_FINISHED,
                            .outcome = JOB_OUTCOME_STOPPED,
                            .channel = STATE_CHANNEL_API,
                            .reason = why,
                            .task_error = why};
    int rc = ST(s)->job_set(STX(s), &c, on_stop_all, q);
    free(why);
    if (rc != 0)
        return start_failed(q, rc, eb);
    return 0;
}

/* ---- audit_confirm ----------------------------------------------------------------- */

static void on_audit(void *arg, const struct store_change *r)
{
    struct sreq *q = arg;
    if (db_failed(q, r->err, "cannot record the audit decision"))
        return;
    if (!r->old) {
        sreq_done(q, GW_ENOTFOUND, "job_id: this node schedules no such job", NULL);
        return;
    }
    if (r->changed) {
        if (strcmp(q->want, "READY") == 0)
            sched_kick(q->s, q->job_id);
        else
            send_stop(q->s, q->job_id, r->parties);
        sreq_done(q, 0, "success", NULL);
        return;
    }
    if (strcmp(r->old, q->want) == 0 ||
        (strcmp(q->want, "READY") == 0 && strcmp(r->old, "RUNNING") == 0)) {
        sreq_done(q, 0, "success", NULL);
        return;
    }
    char *m = gw_xasprintf("status: the job is %s; only a PENDING job can be confirmed or rejected",
                           r->old);
    sreq_done(q, GW_EREFUSED, m, NULL);
    free(m);
}

int sched_audit(struct sched *s, const char *job_id, const char *status, const char *caller,
                struct gw_errbuf *eb, sched_reply_cb cb, void *arg)
{
    enum job_state to;
    if (!job_state_parse(status, &to) || (to != JOB_STATE_READY && to != JOB_STATE_REJECTED))
        return gw_errf(eb, GW_EINVAL, "status: expected READY or REJECTED");
    struct sreq *q = sreq_new(s, cb, arg);
    q->job_id = gw_xstrdup(job_id);
    q->want = gw_xstrdup(status);
    char *why = gw_xasprintf("audit_confirm %s by %s", status, caller ? caller : "local");
    char *rej = gw_xasprintf("rejected by %s", caller ? caller : "local");
    struct sjob_change c = {.job_id = job_id,
                            .to = to,
                            .channel = STATE_CHANNEL_API,
                            .reason = to == JOB_STATE_REJECTED ? rej : why,
                            .task_error = "job rejected"};
    int rc = ST(s)->job_set(STX(s), &c, on_audit, q);
    free(why);
    free(rej);
    if (rc != 0)
        return start_failed(q, rc, eb);
    return 0;
}

/* ---- callback from a partner --------------------------------------------------- */

static void on_cb(void *arg, const struct store_change *r)
{
    struct sreq *q = arg;
    if (db_failed(q, r->err, "cannot record the callback"))
        return;
    if (!r->old) {
        sreq_done(q, GW_ENOTFOUND, "task_id: no such task for the calling node", NULL);
        return;
    }
    if (r->changed)
        sched_kick(q->s, r->job_id);
    if (r->changed || strcmp(r->old, q->want) == 0) {
        sreq_done(q, 0, "success", NULL); /* a repeated identical callback is a success */
        return;
    }
    char *m = gw_xasprintf("status: %s -> %s is not an allowed transition", r->old, q->want);
    sreq_done(q, GW_EREFUSED, m, NULL);
    free(m);
}

int sched_callback(struct sched *s, const struct sched_callback_in *in, struct gw_errbuf *eb,
                   sched_reply_cb cb, void *arg)
{
    struct sreq *q = sreq_new(s, cb, arg);
    q->want = gw_xstrdup(task_state_name(in->status));
    struct stask_change c = {.task_id = in->task_id,
                             .node = in->node,
                             .to = in->status,
                             .channel = STATE_CHANNEL_CALLBACK,
                             .reason = "task/callback",
                             .error_text = in->error_text,
                             .exit_code = in->exit_code,
                             .log_tail = in->log_tail,
                             .job_running = true,
                             .refresh_terminal = true};
    int rc = ST(s)->task_set(STX(s), &c, on_cb, q);
    if (rc != 0)
        return start_failed(q, rc, eb);
    return 0;
}

/* ---- the production store table ---------------------------------------------- */

static int op_load(void *ctx, const char *job_id, long long t, sjob_view_cb cb, void *arg)
{
    return store_sjob_load(ctx, job_id, t, cb, arg);
}
static int op_job_set(void *ctx, const struct sjob_change *c, store_change_cb cb, void *arg)
{
    return store_sjob_set(ctx, c, cb, arg);
}
static int op_job_wait(void *ctx, const char *job_id, const char *reason, store_change_cb cb,
                       void *arg)
{
    return store_sjob_wait(ctx, job_id, reason, cb, arg);
}
static int op_task_set(void *ctx, const struct stask_change *c, store_change_cb cb, void *arg)
{
    return store_stask_set(ctx, c, cb, arg);
}
static int op_task_note(void *ctx, const char *job_id, const char *task_id, const char *node,
                        const char *wait_reason, bool unclaim, int stale_s, store_change_cb cb,
                        void *arg)
{
    return store_stask_note(ctx, job_id, task_id, node, wait_reason, unclaim, stale_s, cb, arg);
}
static int op_claim(void *ctx, const char *job_id, const char *task_id, db_rows_cb cb,
                    void *arg)
{
    return store_stask_claim(ctx, job_id, task_id, cb, arg);
}
static int op_poll_targets(void *ctx, const char *job_id, int stale_s, db_rows_cb cb,
                           void *arg)
{
    return store_stask_poll_targets(ctx, job_id, stale_s, cb, arg);
}
static int op_live(void *ctx, db_rows_cb cb, void *arg)
{
    return store_sjob_live(ctx, cb, arg);
}
static int op_stops_pending(void *ctx, int window_s, int limit, db_rows_cb cb, void *arg)
{
    return store_sjob_stops_pending(ctx, window_s, limit, cb, arg);
}
static int op_stop_acked(void *ctx, const char *job_id, const char *node, store_change_cb cb,
                         void *arg)
{
    return store_sjob_stop_acked(ctx, job_id, node, cb, arg);
}
static int op_component_roles(void *ctx, const char *comps, db_rows_cb cb, void *arg)
{
    return store_component_roles(ctx, comps, cb, arg);
}
static int op_insert(void *ctx, const struct sjob_new *n, store_change_cb cb, void *arg)
{
    return store_sjob_insert(ctx, n, cb, arg);
}

const struct sched_store_ops store_sched_ops = {
    .load = op_load,
    .job_set = op_job_set,
    .job_wait = op_job_wait,
    .task_set = op_task_set,
    .task_note = op_task_note,
    .claim = op_claim,
    .poll_targets = op_poll_targets,
    .live = op_live,
    .stops_pending = op_stops_pending,
    .stop_acked = op_stop_acked,
    .component_roles = op_component_roles,
    .insert = op_insert,
};
