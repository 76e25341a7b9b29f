/*
 * db.c - asynchronous libpq pool driven by libevent.
 *
 * Each connection is a small state machine:
 *
 *   DOWN --timer--> CONNECTING --PQconnectPoll OK--> SETUP --version read--> IDLE
 *                                                                       <--> BUSY
 *   any state --error/EOF--> DOWN (backoff 100 ms doubling to 5 s)
 *
 * SETUP reads max(schema_migrations.version) so readiness can tell a database
 * that was restored or re-migrated behind our back.  An idle connection keeps
 * an EV_READ event armed: PostgreSQL closing it (restart, admin kill) is
 * noticed at once, not when the next query fails.
 */
#include "db.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_SETUP, CONN_IDLE, CONN_BUSY };

struct db_query {
    struct db_pool *pool;
    struct db_query *next; /* wait queue link */
    char *sql;
    int nparams;
    char **params;
    db_cb cb; /* NULL once cancelled */
    void *arg;
    long long queued_at_ms;
    bool internal; /* the set-up version probe, or LISTEN */
    bool listen;   /* internal: the LISTEN statement */
    bool preparing; /* its statement is being prepared on the connection first */
    unsigned long long hash;
};

/* Statements are prepared once per connection and then executed by name:
 * the SQL texts are constants of the program, so the set is small and
 * bounded, and PostgreSQL skips parse and plan on every later call. */
#define DB_PREP_MAX 128
struct db_prep {
    unsigned long long hash;
    char *sql;
};

struct db_conn {
    struct db_pool *pool;
    int idx;
    enum conn_state state;
    PGconn *pg;
    struct event *ev;    /* socket event; re-assigned when the socket changes */
    struct event *timer; /* reconnect backoff, connect deadline, query deadline */
    int fd;
    short ev_what;
    long backoff_ms;
    struct db_query *q; /* the running query, if BUSY or SETUP */
    PGresult *res;      /* the last result of the running query */
    struct db_prep prep[DB_PREP_MAX];
    int nprep;
};

struct db_res {
    PGresult *r;
};

struct db_pool {
    struct event_base *base;
    char **kw; /* connection keywords/values for PQconnectStartParams */
    char **vals;
    int size;
    int queue_max;
    int statement_timeout_ms;
    int connect_timeout_s;
    int schema_version;
    struct db_conn *conns;
    struct db_query *qhead, *qtail;
    int queued;
    struct event *janitor;
    char last_error[256];
    bool schema_ok;
    int schema_seen;
    long long queries, failures, reconnects;
    char *listen_channel; /* NULL: no LISTEN */
    db_notify_cb notify_cb;
    void *notify_arg;
    bool listening;
};

static void conn_start(struct db_conn *c);
static void conn_down(struct db_conn *c, const char *why);
static void prep_forget_all(struct db_conn *c);
static void conn_on_socket(evutil_socket_t fd, short what, void *arg);
static void pool_dispatch(struct db_pool *p);

static void query_free(struct db_query *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->sql);
    free(q);
}

static void set_last_error(struct db_pool *p, const char *msg)
{
    snprintf(p->last_error, sizeof(p->last_error), "%s", msg ? msg : "");
    /* libpq messages end in a newline; keep log lines and /readyz tidy */
    size_t n = strlen(p->last_error);
    while (n > 0 && (p->last_error[n - 1] == '\n' || p->last_error[n - 1] == ' '))
        p->last_error[--n] = '\0';
}

/* (Re)arm the socket event for what libpq wants next. */
static void conn_watch(struct db_conn *c, short what)
{
    int fd = PQsocket(c->pg);
    if (fd != c->fd || what != c->ev_what || !event_pending(c->ev, EV_READ | EV_WRITE, NULL)) {
        event_del(c->ev);
        event_assign(c->ev, c->pool->base, fd, what, conn_on_socket, c);
        c->fd = fd;
        c->ev_what = what;
        event_add(c->ev, NULL);
    }
}

static void conn_timer_ms(struct db_conn *c, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_del(c->timer);
    evtimer_add(c->timer, &tv);
}

static void finish_query(struct db_conn *c, int err, const char *msg, const char *sqlstate)
{
    struct db_query *q = c->q;
    PGresult *res = c->res;
    c->q = NULL;
    c->res = NULL;
    evtimer_del(c->timer);
    if (!q) {
        PQclear(res);
        return;
    }
    struct db_pool *p = c->pool;
    if (q->internal && q->listen) {
        if (err == 0) {
            p->listening = true;
            p->notify_cb(p->notify_arg, NULL); /* anything before now was missed */
        } else {
            log_kv(LOG_LEVEL_WARN, NULL, "db.listen", "LISTEN failed", "err", msg ? msg : "",
                   NULL);
        }
    } else if (q->internal) {
        /* Set-up probe: the version decides readiness. */
        if (err == 0 && res && PQntuples(res) == 1) {
            p->schema_seen = atoi(PQgetvalue(res, 0, 0));
            p->schema_ok = p->schema_version == 0 || p->schema_seen == p->schema_version;
            if (!p->schema_ok)
                log_kv(LOG_LEVEL_ERROR, NULL, "db.schema", "schema version mismatch", "expected",
                       p->schema_version ? "set" : "none", NULL);
        } else if (err == 0) {
            p->schema_ok = p->schema_version == 0;
        }
    } else {
        p->queries++;
        if (err)
            p->failures++;
        if (q->cb) {
            struct db_res view = {res};
            q->cb(q->arg, err, err ? NULL : &view, msg ? msg : "", sqlstate ? sqlstate : "");
        }
    }
    PQclear(res);
    query_free(q);
}

static void conn_down(struct db_conn *c, const char *why)
{
    struct db_pool *p = c->pool;
    bool was_up = c->state == CONN_IDLE || c->state == CONN_BUSY || c->state == CONN_SETUP;
    if (why && *why)
        set_last_error(p, why);
    if (was_up || c->state == CONN_CONNECTING)
        log_kv(was_up ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, NULL, "db.conn_lost",
               was_up ? "database connection lost" : "database connection attempt failed", "err",
               p->last_error, NULL);
    event_del(c->ev);
    c->fd = -1;
    if (c->idx == 0 && p->listening) {
        p->listening = false;
        p->notify_cb(p->notify_arg, NULL);
    }
    if (c->q)
        finish_query(c, GW_EDB, p->last_error[0] ? p->last_error : "connection lost", "08006");
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    prep_forget_all(c); /* prepared statements die with their session */
    c->state = CONN_DOWN;
    conn_timer_ms(c, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > 5000 ? 5000 : c->backoff_ms * 2;
    /* Nothing can be served while every connection is down: fail the waiters
     * now instead of letting them sit until their deadline. */
    bool any_alive = false;
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].state != CONN_DOWN)
            any_alive = true;
    if (!any_alive) {
        while (p->qhead) {
            struct db_query *q = p->qhead;
            p->qhead = q->next;
            p->queued--;
            p->failures++;
            if (q->cb)
                q->cb(q->arg, GW_EDB, NULL, "database unavailable", "08006");
            query_free(q);
        }
        p->qtail = NULL;
    }
}

/*
 * Send q on an idle connection.  Returns -1, with nothing sent, q not
 * attached and no callback run, when libpq refuses (the connection died while
 * idle): the caller re-queues q and takes the connection down.  A failed
 * flush is left for the socket event to report, so no callback ever runs
 * inside this function.
 */
static unsigned long long sql_hash(const char *s)
{
    unsigned long long h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int prep_find(const struct db_conn *c, const struct db_query *q)
{
    for (int i = 0; i < c->nprep; i++)
        if (c->prep[i].hash == q->hash && strcmp(c->prep[i].sql, q->sql) == 0)
            return i;
    return -1;
}

static void prep_forget_all(struct db_conn *c)
{
    for (int i = 0; i < c->nprep; i++)
        free(c->prep[i].sql);
    c->nprep = 0;
}

/* Queue the statement on libpq: by name when prepared, else prepare it
 * first (the result of that comes back through conn_read), else unnamed. */
static int conn_dispatch_query(struct db_conn *c, struct db_query *q)
{
    const char *const *params = (const char *const *)q->params;
    if (q->internal)
        return PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, params, NULL, NULL, 0);
    int idx = prep_find(c, q);
    char name[16];
    if (idx >= 0) {
        snprintf(name, sizeof(name), "gw%d", idx);
        return PQsendQueryPrepared(c->pg, name, q->nparams, params, NULL, NULL, 0);
    }
    if (c->nprep < DB_PREP_MAX) {
        snprintf(name, sizeof(name), "gw%d", c->nprep);
        q->preparing = true;
        return PQsendPrepare(c->pg, name, q->sql, q->nparams, NULL);
    }
    return PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, params, NULL, NULL, 0);
}

/*
 * Send q on an idle connection.  Returns -1, with nothing sent, q not
 * attached and no callback run, when libpq refuses (the connection died while
 * idle): the caller re-queues q and takes the connection down.  A failed
 * flush is left for the socket event to report, so no callback ever runs
 * inside this function.
 */
static int conn_send(struct db_conn *c, struct db_query *q)
{
    q->preparing = false;
    if (!conn_dispatch_query(c, q))
        return -1;
    c->q = q;
    c->res = NULL;
    c->state = q->internal ? CONN_SETUP : CONN_BUSY;
    /* Client-side deadline in case the server stops answering entirely. */
    conn_timer_ms(c, c->pool->statement_timeout_ms + 5000L);
    int f = PQflush(c->pg);
    conn_watch(c, f != 0 ? (EV_READ | EV_WRITE | EV_PERSIST) : (EV_READ | EV_PERSIST));
    return 0;
}

static void conn_idle(struct db_conn *c)
{
    c->state = CONN_IDLE;
    evtimer_del(c->timer);
    conn_watch(c, EV_READ | EV_PERSIST);
}

/* Read whatever arrived; completes the running query when libpq has it all. */
static void conn_read(struct db_conn *c)
{
    if (!PQconsumeInput(c->pg)) {
        conn_down(c, PQerrorMessage(c->pg));
        return;
    }
    PGnotify *note;
    while ((note = PQnotifies(c->pg)) != NULL) {
        if (c->pool->listening && c->pool->notify_cb)
            c->pool->notify_cb(c->pool->notify_arg, note->extra ? note->extra : "");
        PQfreemem(note);
    }
    if (c->state == CONN_IDLE) {
        /* Unsolicited input on an idle connection: a notification (handled
         * above), a notice, or the server telling us it is going away. */
        if (PQstatus(c->pg) == CONNECTION_BAD)
            conn_down(c, PQerrorMessage(c->pg));
        return;
    }
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r)
            break; /* the statement is complete */
        PQclear(c->res);
        c->res = r;
    }
    if (PQisBusy(c->pg))
        return;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_down(c, PQerrorMessage(c->pg));
        return;
    }
    PGresult *r = c->res;
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    bool internal = c->q && c->q->internal;
    bool was_listen = c->q && c->q->listen;
    if (c->q && c->q->preparing && st == PGRES_COMMAND_OK) {
        /* Prepared: remember it and run it, same connection, same query. */
        struct db_query *q = c->q;
        c->prep[c->nprep].hash = q->hash;
        c->prep[c->nprep].sql = gw_xstrdup(q->sql);
        c->nprep++;
        PQclear(c->res);
        c->res = NULL;
        q->preparing = false;
        char name[16];
        snprintf(name, sizeof(name), "gw%d", c->nprep - 1);
        if (!PQsendQueryPrepared(c->pg, name, q->nparams, (const char *const *)q->params, NULL,
                                 NULL, 0)) {
            conn_down(c, PQerrorMessage(c->pg));
            return;
        }
        int f = PQflush(c->pg);
        conn_watch(c, f != 0 ? (EV_READ | EV_WRITE | EV_PERSIST) : (EV_READ | EV_PERSIST));
        return;
    }
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        finish_query(c, 0, NULL, NULL);
    } else {
        char msg[512];
        char state[8];
        const char *pm = r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg);
        const char *ss = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        snprintf(msg, sizeof(msg), "%s", pm ? pm : "query failed");
        size_t n = strlen(msg);
        while (n > 0 && msg[n - 1] == '\n')
            msg[--n] = '\0';
        snprintf(state, sizeof(state), "%s", ss ? ss : "");
        finish_query(c, GW_EDB, msg, state);
    }
    if (c->state == CONN_DOWN || !c->pg)
        return;
    if (internal && !was_listen) {
        c->pool->reconnects++;
        if (c->idx == 0 && c->pool->listen_channel) {
            /* Still in set-up: LISTEN before the connection takes queries. */
            struct db_query *lq = gw_xcalloc(1, sizeof(*lq));
            lq->pool = c->pool;
            lq->internal = true;
            lq->listen = true;
            lq->sql = gw_xasprintf("LISTEN %s", c->pool->listen_channel);
            if (conn_send(c, lq) != 0) {
                query_free(lq);
                conn_down(c, PQerrorMessage(c->pg));
            }
            return;
        }
    }
    conn_idle(c);
    pool_dispatch(c->pool);
}

static void conn_poll_connect(struct db_conn *c)
{
    PostgresPollingStatusType ps = PQconnectPoll(c->pg);
    switch (ps) {
    case PGRES_POLLING_READING:
        conn_watch(c, EV_READ);
        return;
    case PGRES_POLLING_WRITING:
        conn_watch(c, EV_WRITE);
        return;
    case PGRES_POLLING_OK: {
        if (PQsetnonblocking(c->pg, 1) != 0) {
            conn_down(c, PQerrorMessage(c->pg));
            return;
        }
        c->backoff_ms = 100;
        struct db_query *q = gw_xcalloc(1, sizeof(*q));
        q->pool = c->pool;
        q->internal = true;
        /* to_regclass keeps the probe valid on an empty database */
        q->sql = gw_xstrdup("SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN 0 "
                            "ELSE (SELECT coalesce(max(version), 0) FROM schema_migrations) END");
        if (conn_send(c, q) != 0) {
            query_free(q);
            conn_down(c, PQerrorMessage(c->pg));
        }
        return;
    }
    case PGRES_POLLING_FAILED:
    default:
        conn_down(c, PQerrorMessage(c->pg));
        return;
    }
}

static void conn_on_socket(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct db_conn *c = arg;
    if (c->state == CONN_CONNECTING) {
        conn_poll_connect(c);
        return;
    }
    if (what & EV_WRITE) {
        int f = PQflush(c->pg);
        if (f < 0) {
            conn_down(c, PQerrorMessage(c->pg));
            return;
        }
        if (f == 0)
            conn_watch(c, EV_READ | EV_PERSIST);
    }
    if (what & EV_READ)
        conn_read(c);
}

static void conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct db_conn *c = arg;
    switch (c->state) {
    case CONN_DOWN:
        conn_start(c);
        break;
    case CONN_CONNECTING:
        conn_down(c, "connection attempt timed out");
        break;
    case CONN_SETUP:
    case CONN_BUSY: {
        /* The server did not answer within the statement timeout plus a
         * margin: the connection is unusable.  Report a timeout, not EDB. */
        struct db_query *q = c->q;
        if (q) {
            c->q = NULL;
            if (q->cb && !q->internal) {
                c->pool->queries++;
                c->pool->failures++;
                q->cb(q->arg, GW_ETIMEOUT, NULL, "query deadline passed", "57014");
            }
            query_free(q);
        }
        conn_down(c, "query deadline passed");
        break;
    }
    case CONN_IDLE:
        break;
    }
}

/* libpq prints server notices (and "terminating connection" errors on idle
 * connections) to stderr by default; route them into the JSON log. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", message);
    msg[strcspn(msg, "\n")] = '\0';
    log_kv(LOG_LEVEL_INFO, NULL, "db.notice", msg, NULL);
}

static void conn_start(struct db_conn *c)
{
    struct db_pool *p = c->pool;
    c->pg = PQconnectStartParams((const char *const *)p->kw, (const char *const *)p->vals, 0);
    if (!c->pg) {
        log_msg(LOG_LEVEL_ERROR, NULL, "process.oom", "libpq could not allocate a connection");
        abort();
    }
    PQsetNoticeProcessor(c->pg, on_notice, NULL);
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_down(c, PQerrorMessage(c->pg));
        return;
    }
    c->state = CONN_CONNECTING;
    c->fd = -1;
    conn_timer_ms(c, p->connect_timeout_s * 1000L);
    conn_poll_connect(c);
}

/* Hand queued queries to idle connections, oldest first. */
static void pool_dispatch(struct db_pool *p)
{
    for (int i = 0; i < p->size && p->qhead; i++) {
        struct db_conn *c = &p->conns[i];
        if (c->state != CONN_IDLE)
            continue;
        struct db_query *q = p->qhead;
        p->qhead = q->next;
        if (!p->qhead)
            p->qtail = NULL;
        p->queued--;
        q->next = NULL;
        if (conn_send(c, q) != 0) {
            /* Died while idle: the query goes back to the front. */
            q->next = p->qhead;
            p->qhead = q;
            if (!p->qtail)
                p->qtail = q;
            p->queued++;
            conn_down(c, PQerrorMessage(c->pg));
            if (!p->qhead)
                return; /* conn_down failed every waiter: nothing alive */
        }
    }
}

/* Once a second: fail queued queries that waited longer than the statement
 * timeout (the pool is saturated or reconnecting). */
static void pool_janitor(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct db_pool *p = arg;
    long long now = gw_now_mono_ms();
    struct db_query **pp = &p->qhead;
    p->qtail = NULL;
    while (*pp) {
        struct db_query *q = *pp;
        if (now - q->queued_at_ms > p->statement_timeout_ms) {
            *pp = q->next;
            p->queued--;
            p->failures++;
            if (q->cb)
                q->cb(q->arg, GW_ETIMEOUT, NULL, "timed out waiting for a database connection",
                      "57014");
            query_free(q);
        } else {
            p->qtail = q;
            pp = &q->next;
        }
    }
}

void db_pool_set_queue_max(struct db_pool *p, int queue_max)
{
    p->queue_max = queue_max > 0 ? queue_max : 1;
}

struct db_pool *db_pool_new(struct event_base *base, const struct db_pool_opts *o)
{
    struct db_pool *p = gw_xcalloc(1, sizeof(*p));
    p->base = base;
    p->size = o->size > 0 ? o->size : 1;
    p->queue_max = o->queue_max > 0 ? o->queue_max : 1;
    p->statement_timeout_ms = o->statement_timeout_ms > 0 ? o->statement_timeout_ms : 30000;
    p->connect_timeout_s = o->connect_timeout_s > 0 ? o->connect_timeout_s : 5;
    p->schema_version = o->schema_version;

    /* Expand the conninfo into keyword/value arrays so we can add our own
     * options (statement_timeout, application_name) to any DSN form. */
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(o->dsn ? o->dsn : "", &perr);
    size_t n = 0;
    for (PQconninfoOption *it = opts; it && it->keyword; it++)
        if (it->val && strcmp(it->keyword, "options") != 0 &&
            strcmp(it->keyword, "application_name") != 0)
            n++;
    p->kw = gw_xcalloc(n + 3, sizeof(char *));
    p->vals = gw_xcalloc(n + 3, sizeof(char *));
    size_t k = 0;
    for (PQconninfoOption *it = opts; it && it->keyword; it++) {
        if (it->val && strcmp(it->keyword, "options") != 0 &&
            strcmp(it->keyword, "application_name") != 0) {
            p->kw[k] = gw_xstrdup(it->keyword);
            p->vals[k] = gw_xstrdup(it->val);
            k++;
        }
    }
    p->kw[k] = gw_xstrdup("options");
    p->vals[k] = gw_xasprintf("-c statement_timeout=%d", p->statement_timeout_ms);
    k++;
    p->kw[k] = gw_xstrdup("application_name");
    p->vals[k] = gw_xstrdup("bfia-gateway");
    if (perr) {
        set_last_error(p, perr);
        PQfreemem(perr);
    }
    PQconninfoFree(opts);

    p->conns = gw_xcalloc((size_t)p->size, sizeof(*p->conns));
    for (int i = 0; i < p->size; i++) {
        struct db_conn *c = &p->conns[i];
        c->pool = p;
        c->idx = i;
        c->fd = -1;
        c->backoff_ms = 100;
        c->ev = event_new(base, -1, 0, conn_on_socket, c);
        c->timer = evtimer_new(base, conn_on_timer, c);
        if (!c->ev || !c->timer)
            abort();
        c->state = CONN_DOWN;
        conn_timer_ms(c, 0); /* connect from the loop, never inside new */
    }
    p->janitor = event_new(base, -1, EV_PERSIST, pool_janitor, p);
    struct timeval one = {1, 0};
    event_add(p->janitor, &one);
    return p;
}

void db_pool_free(struct db_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->size; i++) {
        struct db_conn *c = &p->conns[i];
        if (c->q)
            c->q->cb = NULL;
        PQclear(c->res);
        c->res = NULL;
        query_free(c->q);
        c->q = NULL;
        if (c->pg)
            PQfinish(c->pg);
        prep_forget_all(c);
        event_free(c->ev);
        event_free(c->timer);
    }
    while (p->qhead) {
        struct db_query *q = p->qhead;
        p->qhead = q->next;
        query_free(q);
    }
    event_free(p->janitor);
    for (size_t i = 0; p->kw[i]; i++) {
        free(p->kw[i]);
        free(p->vals[i]);
    }
    free(p->kw);
    free(p->vals);
    free(p->conns);
    free(p->listen_channel);
    free(p);
}

int db_query(struct db_pool *p, const char *sql, int nparams, const char *const *params, db_cb cb,
             void *arg, struct db_query **out)
{
    if (!p || !sql || nparams < 0 || nparams > 64 || !cb)
        return GW_EINVAL;
    int idle = -1, alive = 0;
    for (int i = 0; i < p->size; i++) {
        if (p->conns[i].state == CONN_IDLE && idle < 0)
            idle = i;
        if (p->conns[i].state != CONN_DOWN)
            alive++;
    }
    if (alive == 0)
        return GW_EDB;
    if (idle < 0 && p->queued >= p->queue_max)
        return GW_EBUSY;

    struct db_query *q = gw_xcalloc(1, sizeof(*q));
    q->pool = p;
    q->sql = gw_xstrdup(sql);
    q->hash = sql_hash(sql);
    q->nparams = nparams;
    q->params = gw_xcalloc((size_t)nparams + 1, sizeof(char *));
    for (int i = 0; i < nparams; i++)
        q->params[i] = params[i] ? gw_xstrdup(params[i]) : NULL;
    q->cb = cb;
    q->arg = arg;
    q->queued_at_ms = gw_now_mono_ms();
    if (out)
        *out = q;
    if (idle >= 0 && !p->qhead) {
        struct db_conn *c = &p->conns[idle];
        if (conn_send(c, q) == 0)
            return 0;
        /* The connection died while idle.  The queue is empty, so taking it
         * down runs no callback; queue q for the others if any remain. */
        conn_down(c, PQerrorMessage(c->pg));
        bool any = false;
        for (int i = 0; i < p->size; i++)
            if (p->conns[i].state != CONN_DOWN)
                any = true;
        if (!any) {
            query_free(q);
            if (out)
                *out = NULL;
            return GW_EDB;
        }
    }
    if (p->qtail)
        p->qtail->next = q;
    else
        p->qhead = q;
    p->qtail = q;
    p->queued++;
    return 0;
}

void db_query_cancel(struct db_query *q)
{
    if (q)
        q->cb = NULL;
}

int db_res_rows(const struct db_res *r) { return r && r->r ? PQntuples(r->r) : 0; }
int db_res_cols(const struct db_res *r) { return r && r->r ? PQnfields(r->r) : 0; }

const char *db_res_get(const struct db_res *r, int row, int col)
{
    if (!r || !r->r || row < 0 || col < 0 || row >= PQntuples(r->r) || col >= PQnfields(r->r))
        return NULL;
    if (PQgetisnull(r->r, row, col))
        return NULL;
    return PQgetvalue(r->r, row, col);
}

long long db_res_affected(const struct db_res *r)
{
    if (!r || !r->r)
        return 0;
    const char *s = PQcmdTuples(r->r);
    return s && *s ? atoll(s) : 0;
}

void db_pool_stats(const struct db_pool *p, struct db_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->size = p->size;
    for (int i = 0; i < p->size; i++) {
        switch (p->conns[i].state) {
        case CONN_IDLE: st->idle++; break;
        case CONN_BUSY: st->busy++; break;
        case CONN_CONNECTING:
        case CONN_SETUP: st->connecting++; break;
        case CONN_DOWN: st->down++; break;
        }
    }
    st->queued = p->queued;
    st->queue_max = p->queue_max;
    st->queries = p->queries;
    st->failures = p->failures;
    st->reconnects = p->reconnects;
    st->schema_ok = p->schema_ok;
}

bool db_pool_ready(const struct db_pool *p, const char **reason)
{
    int up = 0;
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].state == CONN_IDLE || p->conns[i].state == CONN_BUSY)
            up++;
    if (up == 0) {
        if (reason)
            *reason = "no live database connection";
        return false;
    }
    if (!p->schema_ok) {
        if (reason)
            *reason = "database schema version does not match this gateway";
        return false;
    }
    return true;
}

const char *db_pool_last_error(const struct db_pool *p) { return p->last_error; }

void db_pool_listen(struct db_pool *p, const char *channel, db_notify_cb cb, void *arg)
{
    free(p->listen_channel);
    p->listen_channel = gw_xstrdup(channel);
    p->notify_cb = cb;
    p->notify_arg = arg;
    /* A first connection already up (or setting up) LISTENs on its next
     * (re)connect; drop it now so that happens at once. */
    if (p->conns[0].state == CONN_IDLE)
        conn_down(&p->conns[0], "re-connecting to LISTEN");
}

bool db_pool_listening(const struct db_pool *p) { return p->listening; }
