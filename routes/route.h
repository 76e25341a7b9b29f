/*
 * route.h - the route table and the BFIA reply envelope.
 *
 * Every endpoint is one row: (methods, path pattern, handler, body limit,
 * auth policy, name).  routes/ is the only layer that knows HTTP status
 * codes and the {"code","msg","data"} envelope; handlers report outcomes as
 * gw_err values and the table below turns them into codes.
 */
#ifndef GW_ROUTES_ROUTE_H
#define GW_ROUTES_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/compat.h"
#include "gateway/db.h"
#include "gateway/err.h"
#include "gateway/server.h"

struct cJSON;

enum route_auth {
    ROUTE_AUTH_NONE,  /* ops endpoints: anyone may call */
    ROUTE_AUTH_LOCAL, /* platform API: this node's own UI/CLI and containers */
    ROUTE_AUTH_TASK,  /* as LOCAL, and also served on the per-container task sockets */
    ROUTE_AUTH_PEER,  /* interconn/partner API: a node in the route table */
    ROUTE_AUTH_CHAN,  /* transport, container-facing: the task's capability (x-ptp-token),
                       * checked by the handler; served on the transport listener */
};

/*
 * Who may call an interconn endpoint (routes/authz.c), checked after the
 * signature and before the handler, for every ROUTE_AUTH_PEER row.  Every
 * caller must first be a node of the route table.  "The job" is found by
 * the request's job_id (or task_id), on this node's scheduler side (s) or
 * partner side (p); a job this node does not know passes to the handler,
 * which answers that it does not exist.
 */
enum route_who {
    WHO_ROUTE,           /* any node in the route table */
    WHO_INITIATOR_BODY,  /* the caller is the body's config.initiator.node_id (create_all) */
    WHO_SCHEDULER_BODY,  /* the caller is the body's scheduler, or its initiator (job/create) */
    WHO_PARTY,           /* s, by job_id: a party of the job (stop_all, status_all, audit) */
    WHO_TASK_PARTY,      /* s, by task_id: a party of the task's job (task/callback) */
    WHO_SCHEDULER,       /* p, by job_id: the job's scheduler (job/start, task/start, job/stop) */
    WHO_TASK_SCHEDULER,  /* p, by task_id: the job's scheduler (task/stop) */
    WHO_TASK_SCHED_PARTY, /* p, by task_id: the scheduler or a party (task/poll) */
};

typedef void (*route_handler)(struct gw_req *req);

struct route {
    unsigned methods;     /* enum gw_method bits */
    const char *pattern;  /* exact path; a segment "{x}" matches one non-empty segment */
    route_handler handler;
    size_t body_max;      /* 0 = http.body_max */
    enum route_auth auth;
    enum route_who who;   /* ROUTE_AUTH_PEER rows: who may call (WHO_ROUTE when unset) */
};

/* The authorization check of route r for req (routes/authz.c): runs the
 * handler, or answers 5004 naming why the caller may not. */
struct route;
void authz_check(struct gw_req *req, const struct route *r);

/* The cache of who has business with which job (jobs' parties never
 * change once created). */
struct authz;
struct authz *authz_new(void);
void authz_free(struct authz *a);

/* BFIA codes.  Numbers are part of the wire contract: never renumber. */
enum route_code {
    ROUTE_CODE_OK = 0,
    ROUTE_CODE_FAILED = 1,       /* generic refusal, as FATE-Flow's code 1 */
    ROUTE_CODE_PEER = 104,       /* a peer could not be reached (FATE-Flow uses 104) */
    ROUTE_CODE_BAD_PARAM = 5001, /* missing or invalid field (FATE-Flow's 5001) */
    ROUTE_CODE_NOT_FOUND = 5002, /* unknown job/task/node/provider id */
    ROUTE_CODE_CONFLICT = 5003,  /* state forbids the request */
    ROUTE_CODE_AUTH = 5004,      /* authentication failed (the message says why) */
    ROUTE_CODE_TOO_BIG = 5005,   /* body over the route's cap */
    ROUTE_CODE_NO_ROUTE = 5006,  /* no such endpoint */
    ROUTE_CODE_METHOD = 5007,    /* endpoint exists, wrong HTTP method */
    ROUTE_CODE_INTERNAL = 6000,  /* bug or unexpected failure (FATE-Flow's 6000) */
    ROUTE_CODE_DB = 6001,        /* PostgreSQL unavailable or failed */
    ROUTE_CODE_DOCKER = 6002,    /* Docker engine unavailable or failed */
    ROUTE_CODE_TIMEOUT = 6003,   /* a deadline passed */
    ROUTE_CODE_BUSY = 6004,      /* overloaded: retry later (HTTP 503) */
    ROUTE_CODE_DRAINING = 6005,  /* shutting down (HTTP 503) */
};

/** Map a gw_err to its BFIA code and HTTP status (200 except busy/draining: 503). */
int route_code_for(int err, int *http_status);

/** The table: rows and count.  Metrics label routes by their pattern. */
const struct route *route_table(size_t *n);

/**
 * Find the row for (method, path).  Returns its index, or -1 with
 * *path_known telling whether the path exists under another method.
 * Pure: unit-tested directly.
 */
int route_match(const struct route *table, size_t n, enum gw_method method, const char *path,
                bool *path_known);

/** The envelope of a request answered by the shutdown deadline (server.h). */
const char *route_abort_body(void);

/** The dispatcher given to server_new(). */
void route_dispatch(struct gw_req *req);

/** Reply {"code":0,"msg":"success","data":data}; takes data (NULL = {}). */
void route_reply_ok(struct gw_req *req, struct cJSON *data);

/** Reply with an error envelope for err; msg is the human text (copied). */
void route_reply_err(struct gw_req *req, int err, const char *msg);

/** As route_reply_err, with data (taken; NULL = {}). */
void route_reply_err_data(struct gw_req *req, int err, const char *msg, struct cJSON *data);

/** Reply with an explicit envelope (code, msg, data taken; NULL data = {}): HTTP 200, or
 *  503 with Retry-After for the busy and draining codes. */
void route_reply(struct gw_req *req, int code, const char *msg, struct cJSON *data);

/*
 * Handler helpers, one definition for every API file.  Each answers the
 * request itself when it fails (and returns false / non-zero):
 *   route_params     builds req->params (query + JSON body);
 *   route_get_id     an identifier field (json_get_id rules, <= 128 bytes);
 *   route_db         starts a query, answering busy/unavailable at once;
 *   route_db_failed  the common first line of a query callback.
 */
bool route_params(struct gw_req *req);
bool route_get_id(struct gw_req *req, const char *key, bool required, const char **out);
int route_db(struct gw_req *req, const char *sql, int n, const char *const *params, db_cb cb,
             void *arg);
bool route_db_failed(struct gw_req *req, int err, const char *errmsg);
/** A store.h call's return code: true when started; otherwise answered (busy or down). */
bool route_store_started(struct gw_req *req, int rc);

/*
 * The route table in t_route (routes/routedb.c): sync_file loads the routes
 * file into t_route then refreshes the cache of gateway/peer.h; refresh
 * re-reads t_route.  done (may be NULL) runs once with 0 or an error.
 */
typedef void (*route_db_done)(void *arg, int err, const char *msg);
struct gw_app;
void route_table_sync_file(struct gw_app *app, const char *path, route_db_done done, void *arg);
void route_table_refresh(struct gw_app *app, route_db_done done, void *arg);

/* body_max value meaning "upload.max" (dataset uploads). */
#define ROUTE_BODY_UPLOAD ((size_t)-1)
/* body_max value meaning "transport.body_max, answered by the handler" (E0000000413). */
#define ROUTE_BODY_CHAN ((size_t)-2)

/* Handlers, one file per API group. */
void ops_healthz(struct gw_req *req);
void ops_readyz(struct gw_req *req);
void ops_metrics(struct gw_req *req);
void ops_version(struct gw_req *req);
void ops_jwks(struct gw_req *req);
void ops_key_rotate(struct gw_req *req);
void attest_token_exchange(struct gw_req *req);
void attest_token_verify(struct gw_req *req);
void attest_evidence(struct gw_req *req);
void attest_introspect_ep(struct gw_req *req);
void platform_route_get(struct gw_req *req);
void platform_route_list(struct gw_req *req);
void platform_route_set(struct gw_req *req);
void platform_route_delete(struct gw_req *req);
void platform_stop_task(struct gw_req *req);
void platform_job_create_all(struct gw_req *req);
void platform_job_stop_all(struct gw_req *req);
void platform_job_status_all(struct gw_req *req);
void platform_job_list(struct gw_req *req);
void interconn_job_create_all(struct gw_req *req);
void interconn_job_stop_all(struct gw_req *req);
void interconn_job_status_all(struct gw_req *req);
void interconn_task_callback(struct gw_req *req);
void interconn_job_audit_confirm(struct gw_req *req);
void partner_ep_job_create(struct gw_req *req);
void partner_ep_job_start(struct gw_req *req);
void partner_ep_task_start(struct gw_req *req);
void partner_ep_task_poll(struct gw_req *req);
void partner_ep_job_stop(struct gw_req *req);
void partner_ep_task_stop(struct gw_req *req);
void partner_ep_container_callback(struct gw_req *req);
void partner_get_log_line(struct gw_req *req);
void partner_get_log(struct gw_req *req);
void provider_register(struct gw_req *req);
void provider_component_register(struct gw_req *req);
void provider_query(struct gw_req *req);
void provider_delete(struct gw_req *req);
void dataset_upload_path(struct gw_req *req);
void dataset_upload_file(struct gw_req *req);
void dataset_query(struct gw_req *req);
void dataset_list(struct gw_req *req);
void dataset_delete(struct gw_req *req);
void chan_push(struct gw_req *req);
void chan_pop(struct gw_req *req);
void chan_peek(struct gw_req *req);
void chan_release(struct gw_req *req);
void chan_invoke(struct gw_req *req);
/* The transport's HTTP side: arm its once-a-second check of waiting pops. */
void chan_routes_start(struct gw_app *app);


#endif
