/*
 * server.h - the HTTP server (libevent evhttp) and the request object.
 *
 * The server accepts connections, enforces the header/body caps and the
 * in-flight cap, builds a struct gw_req per request and hands it to the
 * dispatch callback (the route table in routes/).  Whatever happens, each
 * request gets exactly one reply through server_reply(): when the client
 * disconnects early, the reply is dropped by libevent, but the request is
 * still accounted and freed exactly once.
 *
 * Loop-thread only.
 */
#ifndef GW_GATEWAY_SERVER_H
#define GW_GATEWAY_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "compat.h"
#include "err.h"
#include "log.h"
#include "spool.h"

struct gw_app;
struct server;
struct evhttp_request;
struct evkeyvalq;
struct evhttp_bound_socket;
struct cJSON;
struct conn;

enum gw_method {
    GW_GET = 1 << 0,
    GW_POST = 1 << 1,
    GW_PUT = 1 << 2,
    GW_DELETE = 1 << 3,
    GW_HEAD = 1 << 4,
    GW_OTHER = 1 << 5,
};

struct gw_req {
    struct gw_app *app;
    struct server *srv;
    struct evhttp_request *ev; /* borrowed from libevent; gets exactly one reply */
    enum gw_method method;
    const char *method_name;
    char *path;                /* decoded path without the query string */
    struct evkeyvalq *query;   /* parsed query string (owned) */
    char *body;                /* request body, NUL-terminated copy (owned) */
    size_t body_len;
    struct cJSON *params;      /* query + JSON body merged, built by server_req_params() */
    char req_id[24];
    char *trace_id;            /* from x-trace-id, owned */
    char *caller;              /* caller node id from x-source-node-id/x-node-id/x_node_id */
    bool bmac_advert;          /* answer names this node's body key (reqsig.h: a signed caller) */
    char *agent_sock;          /* task-socket server only: the socket's path ("" unknown) */
    struct log_ctx log;
    long long start_us;
    int route_idx;             /* set by the dispatcher, for metrics */
    const char *route_name;
    bool client_gone;          /* the connection closed before the reply */
    struct conn *conn;         /* its connection's guard state until the reply (conn.h) */
    bool replied;
    struct gw_req *prev, *next; /* in-flight list */
    void *ctx;                 /* handler state, freed with ctx_free at req free */
    void (*ctx_free)(void *ctx);
};

typedef void (*server_dispatch_cb)(struct gw_req *req);

/** Create the server (not yet listening).  Never NULL. */
struct server *server_new(struct gw_app *app, server_dispatch_cb dispatch);

/** Bind and listen on host:port.  GW_EINVAL with eb on failure. */
int server_listen(struct server *srv, const char *host, int port, struct gw_errbuf *eb) GW_MUSTCHECK;

/** Apply reloadable limits from app->cfg (body cap, timeouts, max in-flight). */
void server_apply_cfg(struct server *srv);

/**
 * Task sockets (attestation.md 2.10): a server marked as the agent server
 * tags every request with the path of the Unix socket it arrived on
 * (req->agent_sock), which names the one container that can reach it.
 */
void server_set_agent(struct server *srv);

/** Listen on a new Unix socket at path (0666; a stale file is replaced).
 *  NULL with eb on failure (including a path too long for sun_path). */
struct evhttp_bound_socket *server_listen_unix(struct server *srv, const char *path,
                                               struct gw_errbuf *eb);

/** Stop listening on s (NULL-safe).  The socket file is the caller's. */
void server_unlisten(struct server *srv, struct evhttp_bound_socket *s);

/** Stop accepting new connections (SIGTERM). In-flight requests continue. */
void server_stop_accepting(struct server *srv);

/** Requests received and not yet replied to. */
int server_inflight(const struct server *srv);

/** The JSON body of server_abort_inflight's 503 answers (copied): the
 *  envelope is routes/' business (route_abort_body()). */
void server_set_abort_body(struct server *srv, const char *json);

/**
 * Answer every in-flight request with 503 (end of the drain deadline).  The
 * handlers' pending callbacks must then be cancelled by their owners; their
 * later replies are ignored.
 */
void server_abort_inflight(struct server *srv);

/** Free the server; requests still in flight are freed without reply (NULL-safe). */
void server_free(struct server *srv);

/**
 * Send the one reply to req and free req: the caller must not touch req
 * afterwards.  body is copied.  extra_headers is a NULL-terminated list of
 * name, value pairs (may be NULL).  A second call on a replied request is a
 * programming error and is ignored with a log line.
 */
void server_reply(struct gw_req *req, int http_status, const char *content_type, const char *body,
                  size_t len, const char *const *extra_headers);

/**
 * Stream multipart uploads to <storage>/.spool from now on (gateway/spool.h);
 * needs app->storage_dir.
 */
void server_enable_spool(struct server *srv);

/** spool_take() for req: 0 none, 1 complete (*out), 2 arriving (cb later). */
int server_spool_take(struct gw_req *req, spool_ready_cb cb, void *arg, struct spool_upload **out);

/**
 * Take the request body: the malloc'd, NUL-terminated block (length in
 * *len) now belongs to the caller; req->body becomes an empty string.  Lets
 * the transport keep a message without copying it again.
 */
char *server_req_body_take(struct gw_req *req, size_t *len);

/* One piece of a reply body: copied, or (with release set) referenced until
 * it is sent and then handed to release(p). */
struct server_part {
    const void *p;
    size_t n;
    void (*release)(void *p);
};

/** server_reply() with the body given as parts (large payloads are not copied). */
void server_reply_parts(struct gw_req *req, int http_status, const char *content_type,
                        const struct server_part *parts, size_t nparts);

/**
 * Whether the client of a request still waits for its answer: false when
 * its connection was closed (a peek at the socket sees end of file).  For
 * long waits, where libevent does not notice a closed connection.
 */
bool server_req_alive(const struct gw_req *req);

/**
 * Send this request's answer without Nagle's delay (TCP_NODELAY on its
 * connection): a large answer written in pieces must not hold back its last
 * small segment for the client's delayed ACK.
 */
void server_req_nodelay(const struct gw_req *req);

/** Set the body cap of this server alone (the transport listener). */
void server_set_body_max(struct server *srv, size_t max);

/** The caller's numeric address ("127.0.0.1", "::1"), or NULL. Borrowed. */
const char *server_req_peer(const struct gw_req *req);

/** A request header (case-insensitive), or NULL. Borrowed. */
const char *server_req_header(const struct gw_req *req, const char *name);

/**
 * Build req->params from the query string and the body: a JSON object body
 * is the base and query parameters not already in it are added as strings
 * (FATE-Flow sends GET with a JSON body; the standard puts them in the
 * query).  An empty body is fine.  A body that is not a JSON object is
 * GW_EINVAL with eb naming the problem.  Idempotent.
 */
int server_req_params(struct gw_req *req, struct gw_errbuf *eb) GW_MUSTCHECK;

#endif
