/*
 * server.c - evhttp server and the request object.
 *
 * Client disconnects: libevent detaches a request whose connection failed
 * before the reply (req->evcon = NULL) and frees it when we finally reply, so
 * the rule "reply exactly once" is also what keeps memory right.  The close
 * callback only sets client_gone, for logs and so handlers can skip work.
 */
#include "server.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "app.h"
#include "cfg.h"
#include "conn.h"
#include "json.h"
#include "metrics.h"
#include "reqsig.h"
#include "spool.h"
#include <event2/listener.h>

struct bound {
    struct evhttp_bound_socket *sock;
    struct bound *next;
};

struct server {
    struct gw_app *app;
    char *abort_body;   /* the 503 answer of server_abort_inflight (routes/ writes it) */
    struct evhttp *http;
    server_dispatch_cb dispatch;
    struct bound *bound;
    struct gw_req *inflight; /* list head */
    int ninflight;
    unsigned long long seq;
    unsigned int boot_tag;
    struct spool *spool; /* multipart uploads streamed to disk, or NULL */
    struct conn_guard *guard; /* deadlines, head checks, caps (conn.h) */
    bool agent;          /* serves the per-container task sockets */
    size_t body_max;     /* server_set_body_max(): its own cap, 0 = from the config */
};

static void req_unlink(struct server *srv, struct gw_req *req)
{
    if (req->prev)
        req->prev->next = req->next;
    else if (srv->inflight == req)
        srv->inflight = req->next;
    if (req->next)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
}

static void req_free(struct gw_req *req)
{
    conn_request_detach(req->conn);
    if (req->ctx_free)
        req->ctx_free(req->ctx);
    if (req->query) {
        evhttp_clear_headers(req->query);
        free(req->query);
    }
    cJSON_Delete(req->params);
    free(req->path);
    free(req->body);
    free(req->trace_id);
    free(req->caller);
    free(req->agent_sock);
    free(req);
}

/* evhttp wrote a reply of ours: the connection may take its next request. */
static void on_reply_sent(struct evhttp_request *ev, void *arg)
{
    struct server *srv = arg;
    conn_request_done(conn_find(srv->guard, evhttp_request_get_connection(ev)));
}

static enum gw_method map_method(enum evhttp_cmd_type t, const char **name)
{
    switch (t) {
    case EVHTTP_REQ_GET: *name = "GET"; return GW_GET;
    case EVHTTP_REQ_POST: *name = "POST"; return GW_POST;
    case EVHTTP_REQ_PUT: *name = "PUT"; return GW_PUT;
    case EVHTTP_REQ_DELETE: *name = "DELETE"; return GW_DELETE;
    case EVHTTP_REQ_HEAD: *name = "HEAD"; return GW_HEAD;
    case EVHTTP_REQ_OPTIONS: *name = "OPTIONS"; return GW_OTHER;
    case EVHTTP_REQ_PATCH: *name = "PATCH"; return GW_OTHER;
    default: *name = "OTHER"; return GW_OTHER;
    }
}

static char *header_copy(struct evkeyvalq *h, const char *const *names)
{
    for (size_t i = 0; names[i]; i++) {
        const char *v = evhttp_find_header(h, names[i]);
        if (v && *v)
            return gw_xstrndup(v, 128);
    }
    return NULL;
}

static void on_request(struct evhttp_request *ev, void *arg)
{
    struct server *srv = arg;
    struct gw_req *req = gw_xcalloc(1, sizeof(*req));
    req->app = srv->app;
    req->srv = srv;
    req->ev = ev;
    req->start_us = gw_now_mono_us();
    req->route_idx = -1;
    req->method = map_method(evhttp_request_get_command(ev), &req->method_name);
    snprintf(req->req_id, sizeof(req->req_id), "%08x-%llx", srv->boot_tag, ++srv->seq);

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *p = uri ? evhttp_uri_get_path(uri) : NULL;
    req->path = gw_xstrdup(p && *p ? p : "/");
    req->query = gw_xcalloc(1, sizeof(*req->query));
    req->query->tqh_first = NULL;
    req->query->tqh_last = &req->query->tqh_first;
    const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
    if (qs && evhttp_parse_query_str(qs, req->query) != 0) {
        /* A query string that does not decode is bad input; keep what was
         * parsed and let server_req_params report it. */
        evhttp_clear_headers(req->query);
        evhttp_add_header(req->query, "\001" "bad", "1");
    }

    struct evbuffer *in = evhttp_request_get_input_buffer(ev);
    size_t n = evbuffer_get_length(in);
    req->body = gw_xmalloc(n + 1);
    if (n)
        evbuffer_copyout(in, req->body, n);
    req->body[n] = '\0';
    req->body_len = n;

    struct evkeyvalq *h = evhttp_request_get_input_headers(ev);
    static const char *const trace_h[] = {"x-trace-id", "x_trace_id", NULL};
    static const char *const caller_h[] = {"x-source-node-id", "x-node-id", "x_node_id", NULL};
    req->trace_id = header_copy(h, trace_h);
    req->caller = header_copy(h, caller_h);
    req->log.req_id = req->req_id;
    req->log.trace_id = req->trace_id;
    req->log.peer = req->caller;

    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    conn_request_start(conn_find(srv->guard, evcon), req);
    if (srv->agent && evcon) {
        /* Which task socket: an accepted AF_UNIX connection reports the
         * listening socket's path as its own address. */
        struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
        struct sockaddr_un sun;
        socklen_t sl = sizeof(sun);
        memset(&sun, 0, sizeof(sun));
        if (bev && getsockname(bufferevent_getfd(bev), (struct sockaddr *)&sun, &sl) == 0 &&
            sun.sun_family == AF_UNIX && sl > offsetof(struct sockaddr_un, sun_path) &&
            sun.sun_path[0])
            req->agent_sock = gw_xstrndup(sun.sun_path, sizeof(sun.sun_path));
        else
            req->agent_sock = gw_xstrdup(""); /* never matches a task */
    }
    evhttp_request_set_on_complete_cb(ev, on_reply_sent, srv);

    req->next = srv->inflight;
    if (srv->inflight)
        srv->inflight->prev = req;
    srv->inflight = req;
    srv->ninflight++;
    srv->dispatch(req);
}

struct server *server_new(struct gw_app *app, server_dispatch_cb dispatch)
{
    struct server *srv = gw_xcalloc(1, sizeof(*srv));
    srv->app = app;
    srv->dispatch = dispatch;
    srv->http = evhttp_new(app->base);
    if (!srv->http)
        abort();
    srv->boot_tag = (unsigned int)(gw_now_wall_ms() & 0xffffffffu);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                              EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(srv->http, on_request, srv);
    srv->guard = conn_guard_new(app, srv->http, true);
    server_apply_cfg(srv);
    return srv;
}

void server_apply_cfg(struct server *srv)
{
    const struct gw_cfg *cfg = srv->app->cfg;
    /* (an invoke on http.port is read up to this too: transport.body_max
     * above it is answered by evhttp's HTTP 413, not by E0000000413) */
    long long cap = cfg->upload_max > cfg->http_body_max ? cfg->upload_max : cfg->http_body_max;
    if (srv->body_max)
        cap = (long long)srv->body_max;
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)cap);
    evhttp_set_max_headers_size(srv->http, (ev_ssize_t)cfg->http_header_max);
    struct timeval tv = {cfg->http_timeout_s, 0};
    evhttp_set_timeout_tv(srv->http, &tv);
}

int server_listen(struct server *srv, const char *host, int port, struct gw_errbuf *eb)
{
    struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(srv->http, host, (ev_uint16_t)port);
    if (!s)
        return gw_errf(eb, GW_EINVAL, "cannot listen on %s:%d (address in use or not local?)",
                       host, port);
    struct bound *b = gw_xcalloc(1, sizeof(*b));
    b->sock = s;
    b->next = srv->bound;
    srv->bound = b;
    conn_guard_watch(srv->guard, evhttp_bound_socket_get_listener(s));
    return 0;
}

void server_set_agent(struct server *srv)
{
    srv->agent = true;
    /* Task sockets are Unix sockets, one per container: no client address
     * to count and no share of the descriptor budget. */
    conn_guard_free(srv->guard);
    srv->guard = conn_guard_new(srv->app, srv->http, false);
}

void server_set_body_max(struct server *srv, size_t max)
{
    srv->body_max = max;
    server_apply_cfg(srv);
}

struct evhttp_bound_socket *server_listen_unix(struct server *srv, const char *path,
                                               struct gw_errbuf *eb)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof(sun.sun_path)) {
        gw_errf(eb, GW_EINVAL, "socket path of %zu bytes is over the limit of %zu (shorten data_dir)",
                n, sizeof(sun.sun_path) - 1);
        return NULL;
    }
    memcpy(sun.sun_path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        gw_errf(eb, GW_EINTERNAL, "socket: %s", strerror(errno));
        return NULL;
    }
    unlink(path); /* a socket left by an earlier run of this gateway */
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || chmod(path, 0666) != 0 ||
        listen(fd, 16) != 0) {
        gw_errf(eb, GW_EINTERNAL, "cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return NULL;
    }
    struct evhttp_bound_socket *s = evhttp_accept_socket_with_handle(srv->http, fd);
    if (!s) {
        gw_errf(eb, GW_EINTERNAL, "cannot serve %s", path);
        close(fd);
        unlink(path);
        return NULL;
    }
    conn_guard_watch(srv->guard, evhttp_bound_socket_get_listener(s));
    return s;
}

void server_unlisten(struct server *srv, struct evhttp_bound_socket *s)
{
    if (!s)
        return;
    conn_guard_unwatch(srv->guard, evhttp_bound_socket_get_listener(s));
    evhttp_del_accept_socket(srv->http, s);
}

void server_stop_accepting(struct server *srv)
{
    while (srv->bound) {
        struct bound *b = srv->bound;
        srv->bound = b->next;
        conn_guard_unwatch(srv->guard, evhttp_bound_socket_get_listener(b->sock));
        evhttp_del_accept_socket(srv->http, b->sock);
        free(b);
    }
}

int server_inflight(const struct server *srv) { return srv->ninflight; }

void server_set_abort_body(struct server *srv, const char *json)
{
    free(srv->abort_body);
    srv->abort_body = gw_xstrdup(json);
}

void server_abort_inflight(struct server *srv)
{
    const char *body = srv->abort_body ? srv->abort_body : "";
    for (struct gw_req *r = srv->inflight; r; r = r->next) {
        if (r->replied)
            continue;
        struct evkeyvalq *oh = evhttp_request_get_output_headers(r->ev);
        evhttp_add_header(oh, "Content-Type", "application/json");
        evhttp_add_header(oh, "Retry-After", "1");
        struct evbuffer *b = evbuffer_new();
        evbuffer_add(b, body, strlen(body));
        conn_request_detach(r->conn);
        evhttp_send_reply(r->ev, 503, "Service Unavailable", b);
        evbuffer_free(b);
        r->replied = true; /* stays listed until its handler lets go */
        r->ev = NULL;
    }
}

void server_free(struct server *srv)
{
    if (!srv)
        return;
    server_stop_accepting(srv);
    while (srv->inflight) {
        struct gw_req *r = srv->inflight;
        req_unlink(srv, r);
        req_free(r); /* detaches it from its connection first */
    }
    evhttp_free(srv->http);
    conn_guard_free(srv->guard); /* after the connections it watched */
    spool_free(srv->spool);      /* after the uploads that use it */
    free(srv->abort_body);
    free(srv);
}

void server_enable_spool(struct server *srv)
{
    if (!srv->spool) {
        srv->spool = spool_new(srv->app);
        conn_guard_set_spool(srv->guard, srv->spool);
    }
}

int server_spool_take(struct gw_req *req, spool_ready_cb cb, void *arg, struct spool_upload **out)
{
    *out = NULL;
    return req->ev ? spool_take(conn_spool(req->conn), req, cb, arg, out) : 0;
}

void server_reply(struct gw_req *req, int http_status, const char *content_type, const char *body,
                  size_t len, const char *const *extra_headers)
{
    struct server *srv = req->srv;
    if (req->replied) {
        /* Answered by server_abort_inflight(); the handler is done now. */
        req_unlink(srv, req);
        srv->ninflight--;
        req_free(req);
        return;
    }
    req->replied = true;
    struct evhttp_request *ev = req->ev;
    conn_request_detach(req->conn);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(ev);
    if (content_type)
        evhttp_add_header(oh, "Content-Type", content_type);
    evhttp_add_header(oh, "X-Request-Id", req->req_id);
    for (size_t i = 0; extra_headers && extra_headers[i] && extra_headers[i + 1]; i += 2)
        evhttp_add_header(oh, extra_headers[i], extra_headers[i + 1]);
    const char *adv = req->bmac_advert ? reqsig_bmac_advert(srv->app->reqsig) : NULL;
    if (adv)
        evhttp_add_header(oh, "x-bfia-body-mac-key", adv);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    if (len && req->method != GW_HEAD)
        evbuffer_add(b, body, len);
    evhttp_send_reply(ev, http_status, NULL, b);
    evbuffer_free(b);

    long long dur = gw_now_mono_us() - req->start_us;
    metrics_http_done(srv->app->metrics, req->route_idx, http_status, dur);
    enum log_level lv = req->route_name && strncmp(req->route_name, "/v", 2) != 0
                            ? LOG_LEVEL_DEBUG /* probes and metrics scrapes */
                            : LOG_LEVEL_INFO;
    if (log_enabled(lv)) {
        char st[8], ms[32];
        snprintf(st, sizeof(st), "%d", http_status);
        snprintf(ms, sizeof(ms), "%.3f", (double)dur / 1000.0);
        log_kv(lv, &req->log, "http.request", req->client_gone ? "client gone" : "served",
               "method", req->method_name, "path", req->path, "route",
               req->route_name ? req->route_name : "unmatched", "status", st, "dur_ms", ms, NULL);
    }
    req_unlink(srv, req);
    srv->ninflight--;
    req_free(req);
}

const char *server_req_header(const struct gw_req *req, const char *name)
{
    if (!req->ev)
        return NULL;
    return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

int server_req_params(struct gw_req *req, struct gw_errbuf *eb)
{
    if (req->params)
        return 0;
    cJSON *root = NULL;
    size_t i = 0;
    while (i < req->body_len && (req->body[i] == ' ' || req->body[i] == '\n' ||
                                 req->body[i] == '\r' || req->body[i] == '\t'))
        i++;
    if (i < req->body_len) {
        root = json_parse(req->body, req->body_len, eb);
        if (!root)
            return GW_EINVAL;
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            return gw_errf(eb, GW_EINVAL, "request body must be a JSON object");
        }
    } else {
        root = cJSON_CreateObject();
    }
    for (struct evkeyval *kv = req->query->tqh_first; kv; kv = kv->next.tqe_next) {
        if (kv->key[0] == '\x01') {
            cJSON_Delete(root);
            return gw_errf(eb, GW_EINVAL, "malformed query string");
        }
        if (!cJSON_GetObjectItemCaseSensitive(root, kv->key))
            cJSON_AddItemToObject(root, kv->key, cJSON_CreateString(kv->value));
    }
    req->params = root;
    return 0;
}

const char *server_req_peer(const struct gw_req *req)
{
    struct evhttp_connection *evcon = req->ev ? evhttp_request_get_connection(req->ev) : NULL;
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (evcon)
        evhttp_connection_get_peer(evcon, &addr, &port);
    return addr;
}

char *server_req_body_take(struct gw_req *req, size_t *len)
{
    char *b = req->body;
    *len = req->body_len;
    req->body = gw_xstrdup("");
    req->body_len = 0;
    return b;
}

static void part_cleanup(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    const struct server_part *pt = arg;
    pt->release((void *)pt->p);
    free(arg);
}

void server_reply_parts(struct gw_req *req, int http_status, const char *content_type,
                        const struct server_part *parts, size_t nparts)
{
    if (req->replied || !req->ev) {
        for (size_t i = 0; i < nparts; i++)
            if (parts[i].release)
                parts[i].release((void *)parts[i].p);
        server_reply(req, http_status, content_type, NULL, 0, NULL);
        return;
    }
    /* Build the body in the request's output buffer and send with an empty
     * extra body: evhttp sends what the output buffer holds. */
    struct evbuffer *ob = evhttp_request_get_output_buffer(req->ev);
    for (size_t i = 0; i < nparts; i++) {
        if (!parts[i].n) {
            if (parts[i].release)
                parts[i].release((void *)parts[i].p);
            continue;
        }
        if (parts[i].release) {
            struct server_part *keep = gw_xmalloc(sizeof(*keep));
            *keep = parts[i];
            if (evbuffer_add_reference(ob, parts[i].p, parts[i].n, part_cleanup, keep) != 0)
                abort();
        } else {
            evbuffer_add(ob, parts[i].p, parts[i].n);
        }
    }
    server_reply(req, http_status, content_type, NULL, 0, NULL);
}

bool server_req_alive(const struct gw_req *req)
{
    if (req->client_gone || !req->ev)
        return false;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req->ev);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev)
        return false;
    char c;
    ssize_t n = recv(bufferevent_getfd(bev), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return false; /* the client closed its side */
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return false;
    return true;
}

void server_req_nodelay(const struct gw_req *req)
{
    struct evhttp_connection *evcon = req->ev ? evhttp_request_get_connection(req->ev) : NULL;
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev)
        return;
    int one = 1;
    /* fails harmlessly on a unix socket */
    (void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
