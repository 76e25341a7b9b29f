/*
 * db.h - asynchronous PostgreSQL on the event loop: a bounded connection pool
 * with a bounded wait queue, and the start-up migration runner.
 *
 * Connections are opened with PQconnectStartParams and driven by
 * PQconnectPoll on socket events; queries use PQsendQueryParams, PQflush and
 * PQconsumeInput/PQisBusy/PQgetResult, so no libpq call ever blocks the loop.
 * A connection that breaks (PostgreSQL restarted, network cut) is closed and
 * reopened with exponential backoff; the pool keeps serving on the others.
 *
 * Every state change in this project is one SQL statement (a compare-and-set
 * UPDATE, possibly inside a data-modifying CTE that also writes t_event): a
 * single statement is its own transaction, so no multi-round-trip
 * transaction API is needed on the loop.
 *
 * Loop-thread only.
 */
#ifndef GW_GATEWAY_DB_H
#define GW_GATEWAY_DB_H

#include <stdbool.h>
#include <stddef.h>

#include "compat.h"
#include "err.h"

struct event_base;
struct db_pool;
struct db_query;
struct db_res;

/*
 * Query completion.  err is 0 or GW_EDB (statement failed or connection lost:
 * errmsg holds PostgreSQL's text and sqlstate its code, both borrowed),
 * GW_ETIMEOUT (the client-side deadline passed) or GW_EBUSY/GW_EDRAINING.
 * res is NULL unless err == 0 and is valid only during the call.
 */
typedef void (*db_cb)(void *arg, int err, const struct db_res *res, const char *errmsg,
                      const char *sqlstate);

/*
 * Rows as text, for layers above the pool that hand results on (store.h,
 * the runner's store interface): value (row, col) is v[row * cols + col],
 * NULL for SQL NULL.  err 0 or a gw_err with msg.  Valid during the
 * callback only.
 */
struct db_rows {
    int err;
    const char *msg;
    int n, cols;
    const char *const *v;
};
typedef void (*db_rows_cb)(void *arg, const struct db_rows *r);

static inline const char *db_rows_get(const struct db_rows *r, int row, int col)
{
    return r->v[row * r->cols + col];
}

struct db_pool_opts {
    const char *dsn;           /* libpq conninfo string or URI (borrowed during new) */
    int size;                  /* connections to keep open, >= 1 */
    int queue_max;             /* queries allowed to wait for a connection */
    int statement_timeout_ms;  /* sent as -c statement_timeout; client deadline adds 5 s */
    int connect_timeout_s;     /* per connection attempt */
    int schema_version;        /* expected max(schema_migrations.version); 0 = no check */
};

/** Create the pool and start connecting (asynchronously).  Never NULL. */
struct db_pool *db_pool_new(struct event_base *base, const struct db_pool_opts *opts);

/**
 * Close every connection and free the pool (NULL-safe).  Pending and queued
 * queries are dropped without their callbacks.
 */
void db_pool_free(struct db_pool *p);

/** A new db.queue_max (SIGHUP): queries already waiting stay queued. */
void db_pool_set_queue_max(struct db_pool *p, int queue_max);

/**
 * Run one statement with text parameters ($1..$n; NULL pointer = SQL NULL).
 * sql and params are copied.  Returns 0 and calls cb exactly once later (never
 * inside this call), or returns GW_EBUSY (wait queue full), GW_EDB (no
 * connection can be made right now; errbuf-free: use db_pool_last_error) or
 * GW_EINVAL, and never calls cb.  If out is not NULL it receives a handle for
 * db_query_cancel(), valid until cb runs.
 */
int db_query(struct db_pool *p, const char *sql, int nparams, const char *const *params, db_cb cb,
             void *arg, struct db_query **out) GW_MUSTCHECK;

/** Guarantee cb will not run; a statement already sent still completes. */
void db_query_cancel(struct db_query *q);

/* Result views: valid during the callback only. */
int db_res_rows(const struct db_res *r);
int db_res_cols(const struct db_res *r);
/** Value as text, or NULL for SQL NULL or out of range. */
const char *db_res_get(const struct db_res *r, int row, int col);
/** Rows affected by INSERT/UPDATE/DELETE (0 when not applicable). */
long long db_res_affected(const struct db_res *r);

struct db_stats {
    int size;        /* configured connections */
    int idle;        /* connected, not running a query */
    int busy;        /* running a query */
    int connecting;  /* handshake or set-up in progress */
    int down;        /* waiting to reconnect */
    int queued;      /* queries waiting for a connection */
    int queue_max;
    long long queries;     /* completed since start */
    long long failures;    /* completed with an error */
    long long reconnects;  /* connections (re)established */
    bool schema_ok;  /* last connection to finish set-up saw the expected version */
};

void db_pool_stats(const struct db_pool *p, struct db_stats *st);

/**
 * Ready for traffic: at least one connection is up and the schema version it
 * read matches.  When false, reason (if not NULL) gets a borrowed
 * explanation suitable for /readyz.
 */
bool db_pool_ready(const struct db_pool *p, const char **reason);

/*
 * Notifications.  db_pool_listen makes the pool's first connection run
 * LISTEN channel after every (re)connect and hands each notification's
 * payload to cb.  cb(arg, NULL) means "notifications may have been missed"
 * (the listening connection came up, went down or was never up): a cache fed
 * by them must forget everything.  Call once, before the loop runs.
 */
typedef void (*db_notify_cb)(void *arg, const char *payload);
void db_pool_listen(struct db_pool *p, const char *channel, db_notify_cb cb, void *arg);

/** LISTEN is in effect now: every later commit's notification will arrive. */
bool db_pool_listening(const struct db_pool *p);

/** Last connection error text (borrowed; "" when none). */
const char *db_pool_last_error(const struct db_pool *p);

/**
 * Start-up migration runner (blocking: call before the event loop starts).
 * Waits up to wait_s for PostgreSQL to accept connections (backoff), takes an
 * advisory lock so concurrent gateways on one database serialise, creates
 * schema_migrations, applies every dir/NNNN_*.sql not yet recorded, each in
 * its own transaction, in numeric order.  Refuses (GW_ECONFLICT) a database
 * whose schema is newer than the newest file, or one that belongs to another
 * node (t_site: the first node_id to start on it; NULL skips the check).  On success stores the schema
 * version in *version and, with node_id, this installation's id (t_site.install_id, the label of
 * its task containers) in install_id (install_cap bytes; may be NULL).
 */
int db_migrate(const char *dsn, const char *dir, int wait_s, const char *node_id, int *version,
               char *install_id, size_t install_cap, struct gw_errbuf *eb) GW_MUSTCHECK;

/** Highest NNNN among dir/NNNN_*.sql (0 if none, <0 on error). */
int db_migrations_latest(const char *dir, struct gw_errbuf *eb);

#endif
