/*
 * chan.c - the BFIA channel API over HTTP (spec bfia-transport.md):
 *
 *   container-facing  POST /v1/interconn/chan/push | pop | peek | release
 *                     (the transport listener, transport.port; system.transport)
 *   node-to-node      POST /v1/interconn/chan/invoke and /transport (http.port)
 *
 * Every answer is HTTP 200 with the transport envelope in the request's own
 * dialect (routes/chanwire.h); codes are spec §7's.  Container calls carry
 * the task's capability in x-ptp-token (container/chan.h): the token must
 * be live, the session the task's own, the target a party of the task, and
 * a pop reads only this node's queues of that session (and task scope).
 * An invoke's source must be a party of the job that owns the session.
 */
#include <cjson/cJSON.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container/chan.h"
#include "container/chanbatch.h"
#include "container/chanq.h"
#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/httpc.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "gateway/peer.h"
#include "route.h"
#include "routes/chanwire.h"

struct cctx {
    struct gw_req *req;
    int api;
    int dialect;           /* of the answer */
    char *session, *topic, *target, *peer, *scope, *trace, *provider;
    char *job_id, *task_id;
    char *src_inst, *dst_inst;
    void *payload;         /* owned until queued or relayed */
    size_t len;
    long long wait_ms;
    bool topic_given;
    struct chanq_waiter *w;
    struct chan_relay *relay;
    struct chan_send *send;    /* a push on its way to a gateway of ours */
    struct bstate *batch;      /* an incoming batch (invoke) */
    bool batch_form;           /* answer in the batch form (container/chanbatch.h) */
    int relay_form;        /* CHANWIRE_RAW / CHANWIRE_PROTO: how the peer answers */
    bool waiting_pop;
    bool nowait;               /* an invoke of ours that does not wait for room */
    const char *h[16];         /* the request's headers by H_* (borrowed from it) */
    struct cctx *prev, *next; /* waiting pops, for the liveness sweep */
};

/* Waiting pops of the process (their clients are checked once a second). */
static struct cctx *waiting;

static void relay_push(struct cctx *x);
static void batch_free(struct cctx *x);

static void unlist(struct cctx *x)
{
    if (!x->waiting_pop)
        return;
    if (x->prev)
        x->prev->next = x->next;
    else
        waiting = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    x->waiting_pop = false;
}

static void cctx_free(void *p)
{
    struct cctx *x = p;
    struct chan *c = x->req->app->chan;
    unlist(x);
    if (x->w && c)
        chanq_cancel(chan_queues(c), x->w);
    if (x->relay && c)
        chan_relay_cancel(c, x->relay);
    if (x->send && c)
        chan_send_cancel(c, x->send);
    if (x->batch)
        batch_free(x);
    free(x->session);
    free(x->topic);
    free(x->target);
    free(x->peer);
    free(x->scope);
    free(x->trace);
    free(x->provider);
    free(x->job_id);
    free(x->task_id);
    free(x->src_inst);
    free(x->dst_inst);
    free(x->payload);
    free(x);
}

/* ---- headers and answers ------------------------------------------------------ */

/* The x-ptp-* headers of a request (and Content-Type), read in one pass
 * over its headers: a name compares case-insensitively, with '_' for '-'
 * (MESH accepts both; the '-' spelling wins when both come). */
enum { H_TOPIC, H_SESSION, H_TARGET, H_TARGET_INST, H_TRACE, H_PROVIDER, H_PROVIDER_TYPO,
       H_SOURCE_INST, H_TOKEN, H_TIMEOUT, H_VERSION, H_SOURCE, H_FROM, H_URI, H_CTYPE, H_MAX };
static const char *const hnames[H_MAX] = {
    "x-ptp-topic", "x-ptp-session-id", "x-ptp-target-node-id", "x-ptp-target-inst-id",
    "x-ptp-trace-id", "x-ptp-tech-provider-code", "x-ptp-tecn-provider-code",
    "x-ptp-source-inst-id", "x-ptp-token", "x-ptp-timeout", "x-ptp-version",
    "x-ptp-source-node-id", "x-ptp-from-node-id", "x-ptp-uri", "content-type"};

static void hscan(struct cctx *x)
{
    const struct evkeyvalq *q = x->req->ev ? evhttp_request_get_input_headers(x->req->ev) : NULL;
    unsigned under = 0;
    for (const struct evkeyval *kv = q ? q->tqh_first : NULL; kv; kv = kv->next.tqe_next) {
        const char *k = kv->key;
        char norm[32];
        size_t n = 0;
        bool u = false;
        for (; k[n] && n < sizeof(norm) - 1; n++) {
            char ch = k[n];
            if (ch == '_') {
                ch = '-';
                u = true;
            }
            norm[n] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        if (k[n] || n < 9)
            continue;
        norm[n] = '\0';
        for (int i = 0; i < H_MAX; i++) {
            if (strcmp(norm, hnames[i]) != 0)
                continue;
            if (i == H_CTYPE && u)
                break;
            if (!x->h[i] || ((under >> i) & 1u && !u)) {
                x->h[i] = kv->value;
                under = u ? under | (1u << i) : under & ~(1u << i);
            }
            break;
        }
    }
}

static const char *qget(const struct gw_req *req, const char *key)
{
    for (struct evkeyval *kv = req->query->tqh_first; kv; kv = kv->next.tqe_next)
        if (strcmp(kv->key, key) == 0)
            return kv->value;
    return NULL;
}

struct parts {
    struct server_part p[8];
    size_t n;
    char *buf;
    size_t blen, bcap;
};

static void flush_copy(struct parts *ps)
{
    if (!ps->blen)
        return;
    ps->p[ps->n++] = (struct server_part){ps->buf, ps->blen, free};
    ps->buf = NULL;
    ps->blen = ps->bcap = 0;
}

static void ps_append(void *arg, const void *p, size_t n)
{
    struct parts *ps = arg;
    if (ps->blen + n > ps->bcap) {
        ps->bcap = (ps->blen + n) * 2 + 64;
        ps->buf = gw_xrealloc(ps->buf, ps->bcap);
    }
    memcpy(ps->buf + ps->blen, p, n);
    ps->blen += n;
}

static void ps_take(void *arg, void *payload, size_t n)
{
    struct parts *ps = arg;
    flush_copy(ps);
    ps->p[ps->n++] = (struct server_part){payload, n, free};
}

/* Answer x's request: code, message, payload (taken, may be NULL). */
static void answer(struct cctx *x, const char *code, const char *msg, void *payload, size_t len)
{
    struct gw_req *req = x->req;
    struct chan *c = req->app->chan;
    chan_count(c, x->api, code);
    if (strcmp(code, CHAN_OK) != 0) {
        enum log_level lv = strcmp(code, CHAN_E_SERVER) == 0 ? LOG_LEVEL_WARN
                            : x->api == CHAN_API_INVOKE && x->nowait &&
                                      strcmp(code, CHAN_E_FULL) == 0
                                ? LOG_LEVEL_DEBUG /* the sender asks again */
                                : LOG_LEVEL_INFO;
        if (log_enabled(lv))
            log_kv(lv, &req->log, "transport.refused", msg, "code", code, "path", req->path,
                   "session", x->session, "topic", x->topic, NULL);
    }
    if (x->batch_form) {
        /* a batch refused as a whole: the sender reads the batch form */
        size_t bl;
        void *b = chanbatch_answer(code, msg, NULL, 0, &bl);
        struct server_part p = {b, bl, NULL};
        free(payload);
        unlist(x);
        server_reply_parts(req, 200, CHANBATCH_ANSWER_TYPE, &p, 1);
        free(b);
        return;
    }
    if (payload && len > 1400)
        server_req_nodelay(req); /* answered in several writes: no Nagle wait at the end */
    struct parts ps = {0};
    struct chanwire_sink sink = {ps_append, ps_take, &ps};
    chanwire_reply(x->dialect ? x->dialect : CHANWIRE_JSON, code, msg, payload, len, &sink);
    flush_copy(&ps);
    unlist(x);
    server_reply_parts(req, 200, chanwire_content_type(x->dialect ? x->dialect : CHANWIRE_JSON),
                       ps.p, ps.n);
}

static struct cctx *cctx_new(struct gw_req *req, int api)
{
    struct cctx *x = gw_xcalloc(1, sizeof(*x));
    x->req = req;
    x->api = api;
    x->dialect = CHANWIRE_JSON;
    req->ctx = x;
    req->ctx_free = cctx_free;
    return x;
}

static bool oversized(struct cctx *x)
{
    const struct gw_cfg *cfg = x->req->app->cfg;
    if ((long long)x->req->body_len <= cfg->transport_body_max)
        return false;
    char m[160];
    snprintf(m, sizeof(m), "body of %zu bytes is over transport.body_max (%lld)",
             x->req->body_len, cfg->transport_body_max);
    answer(x, CHAN_E_TOOBIG, m, NULL, 0);
    return true;
}

/* ---- queue outcomes --------------------------------------------------------------- */

static const char *code_of(int st, const char **msg)
{
    switch (st) {
    case CHANQ_OK: *msg = "success"; return CHAN_OK;
    case CHANQ_TIMEOUT: *msg = "buffer full: no room within the timeout"; return CHAN_E_FULL;
    case CHANQ_FULL: *msg = "buffer full"; return CHAN_E_FULL;
    case CHANQ_RELEASED: *msg = "session released"; return CHAN_E_RELEASED;
    case CHANQ_TOOBIG: *msg = "message larger than a session may hold"; return CHAN_E_TOOBIG;
    case CHANQ_LIMIT: *msg = "too many sessions, topics or waiting requests"; return CHAN_E_FULL;
    default: *msg = "gateway shutting down"; return CHAN_E_SERVER;
    }
}

static void on_push_done(void *arg, int st, void *data, size_t len)
{
    (void)data;
    (void)len;
    struct cctx *x = arg;
    x->w = NULL;
    const char *msg;
    const char *code = code_of(st, &msg);
    answer(x, code, msg, NULL, 0);
}

/* Queue x's payload here: a local push (target = this node) or an invoke. */
static void enqueue(struct cctx *x)
{
    struct chan *c = x->req->app->chan;
    struct chanq_addr a = {x->session, x->scope ? x->scope : "", x->topic ? x->topic : "",
                           x->peer};
    long long now = chan_now();
    int st = chanq_push(chan_queues(c), &a, x->payload, x->len, now, now + x->wait_ms,
                        on_push_done, x, &x->w);
    if (st == CHANQ_OK || st == CHANQ_WAITING)
        x->payload = NULL; /* the queue has it */
    if (st == CHANQ_WAITING) {
        chan_arm(c);
        return;
    }
    const char *msg;
    const char *code = code_of(st, &msg);
    answer(x, code, msg, NULL, 0);
}

/* ---- pop and peek ------------------------------------------------------------------ */

static void on_pop_done(void *arg, int st, void *data, size_t len)
{
    struct cctx *x = arg;
    x->w = NULL;
    if (st == CHANQ_OK && !server_req_alive(x->req)) {
        /* its reader left while it waited: the message stays for the next pop */
        struct chanq_addr a = {x->session, x->scope, x->topic ? x->topic : "", x->peer};
        chanq_requeue(chan_queues(x->req->app->chan), &a, data, len, chan_now());
        answer(x, CHAN_OK, "reader gone", NULL, 0); /* dropped by libevent */
        return;
    }
    if (st == CHANQ_OK)
        answer(x, CHAN_OK, "success", data, len);
    else if (st == CHANQ_TIMEOUT)
        answer(x, CHAN_OK, "no message within the timeout", NULL, 0);
    else if (st == CHANQ_RELEASED)
        answer(x, CHAN_E_RELEASED, "session released", NULL, 0);
    else
        answer(x, CHAN_E_SERVER, "gateway shutting down", NULL, 0);
}

static void sweep_waiting(void *arg)
{
    (void)arg;
    for (struct cctx *x = waiting, *n; x; x = n) {
        n = x->next;
        if (!server_req_alive(x->req)) {
            chanq_cancel(chan_queues(x->req->app->chan), x->w);
            x->w = NULL;
            answer(x, CHAN_OK, "reader gone", NULL, 0);
        }
    }
}

/* ---- the container-facing calls, once the token is known ------------------------------- */

static void container_go(struct cctx *x, const struct chan_cap *cap)
{
    struct gw_req *req = x->req;
    struct gw_app *app = req->app;
    struct chan *c = app->chan;
    const char *me = app->cfg->node_id;
    char m[320];
    if (strcmp(x->session, cap->session) != 0) {
        snprintf(m, sizeof(m), "x-ptp-session-id: %.128s is not the session of this task's job "
                 "(config.session_id)", x->session);
        answer(x, CHAN_E_AUTH, m, NULL, 0);
        return;
    }
    x->job_id = gw_xstrdup(cap->job_id);
    x->task_id = gw_xstrdup(cap->task_id);
    x->scope = gw_xstrdup(cap->scoped ? cap->task_id : "");
    if (x->api == CHAN_API_PUSH) {
        if (strcmp(x->target, me) != 0 && !peers_find(app->peers, x->target)) {
            snprintf(m, sizeof(m), "x-ptp-target-node-id: node %.64s is not in the route table",
                     x->target);
            answer(x, CHAN_E_NONET, m, NULL, 0);
            return;
        }
        if (!chan_cap_has_party(cap, x->target)) {
            snprintf(m, sizeof(m), "x-ptp-target-node-id: %.64s is not a party of this task",
                     x->target);
            answer(x, CHAN_E_AUTH, m, NULL, 0);
            return;
        }
        if (strcmp(x->target, me) == 0) {
            x->peer = gw_xstrdup(me);
            enqueue(x);
            return;
        }
        /* a remote party: relay to its gateway */
        relay_push(x);
        return;
    }
    /* pop, peek, release: only this node's queues, of this task's session */
    const char *peer = x->target && strcmp(x->target, me) != 0 ? x->target : "";
    if (*peer && !chan_cap_has_party(cap, peer)) {
        snprintf(m, sizeof(m), "x-ptp-target-node-id: %.64s is not a party of this task", peer);
        answer(x, CHAN_E_AUTH, m, NULL, 0);
        return;
    }
    x->peer = gw_xstrdup(peer);
    struct chanq *q = chan_queues(c);
    if (x->api == CHAN_API_RELEASE) {
        /* a task's own slice is remembered as released; the spec's unscoped
         * session may be used by the job's next task, so it is only emptied */
        chanq_release(q, x->session, x->scope, x->topic_given ? x->topic : NULL,
                      !x->topic_given && *x->scope, chan_now());
        answer(x, CHAN_OK, "success", NULL, 0);
        return;
    }
    struct chanq_addr a = {x->session, x->scope, x->topic ? x->topic : "", x->peer};
    long long now = chan_now();
    long long dl = x->api == CHAN_API_POP ? now + x->wait_ms : now;
    void *data;
    size_t len;
    int st = chanq_pop(q, &a, now, dl, on_pop_done, x, &x->w, &data, &len);
    switch (st) {
    case CHANQ_OK: answer(x, CHAN_OK, "success", data, len); return;
    case CHANQ_EMPTY: answer(x, CHAN_OK, "no message", NULL, 0); return;
    case CHANQ_WAITING:
        x->waiting_pop = true;
        x->next = waiting;
        if (waiting)
            waiting->prev = x;
        waiting = x;
        chan_arm(c);
        return;
    default: {
        const char *msg;
        const char *code = code_of(st, &msg);
        answer(x, code, msg, NULL, 0);
    }
    }
}

static void on_cap(void *arg, const struct chan_cap *cap, const char *code, const char *msg)
{
    struct cctx *x = arg;
    if (!cap) {
        answer(x, code, msg, NULL, 0);
        return;
    }
    container_go(x, cap);
}

static void container_call(struct gw_req *req, int api)
{
    struct cctx *x = cctx_new(req, api);
    struct chan *c = req->app->chan;
    hscan(x);
    const char *th = x->h[H_TOPIC];
    x->dialect = chanwire_dialect_of(x->h[H_CTYPE], th != NULL);
    if (!c) {
        answer(x, CHAN_E_SERVER, "the transport is not running on this node", NULL, 0);
        return;
    }
    if (x->dialect == CHANWIRE_NONE) {
        answer(x, CHAN_E_BAD, "Content-Type: use application/json or application/x-protobuf, "
               "or send x-ptp-topic with a raw body", NULL, 0);
        return;
    }
    if (oversized(x))
        return;
    const char *s = x->h[H_SESSION];
    if (!s || !*s) {
        answer(x, CHAN_E_BAD, "x-ptp-session-id: missing", NULL, 0);
        return;
    }
    if (strlen(s) > 256) {
        answer(x, CHAN_E_BAD, "x-ptp-session-id: longer than 256 bytes", NULL, 0);
        return;
    }
    x->session = gw_xstrdup(s);
    const char *t = x->h[H_TARGET];
    if (!t || !*t)
        t = x->h[H_TARGET_INST]; /* our inst ids are node ids */
    if (t && *t) {
        if (!json_is_id(t, 64)) {
            answer(x, CHAN_E_BAD, "x-ptp-target-node-id: not a node id", NULL, 0);
            return;
        }
        x->target = gw_xstrdup(t);
    }
    x->trace = gw_xstrdup(x->h[H_TRACE]);
    x->provider = gw_xstrdup(x->h[H_PROVIDER]);
    if (!x->provider)
        x->provider = gw_xstrdup(x->h[H_PROVIDER_TYPO]); /* YACL's spelling */
    x->src_inst = gw_xstrdup(x->h[H_SOURCE_INST]);
    x->dst_inst = gw_xstrdup(x->h[H_TARGET_INST]);
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    long long body_timeout = -1;
    if (x->dialect == CHANWIRE_RAW) {
        if (!*th) {
            answer(x, CHAN_E_BAD, "x-ptp-topic: empty", NULL, 0);
            return;
        }
        if (api == CHAN_API_PUSH)
            x->payload = server_req_body_take(req, &x->len);
    } else {
        int op = api == CHAN_API_PUSH ? CHANWIRE_PUSH : api == CHAN_API_POP ? CHANWIRE_POP
                 : api == CHAN_API_PEEK                                    ? CHANWIRE_PEEK
                                                                           : CHANWIRE_RELEASE;
        struct chanwire_req b;
        /* old MESH clients pop with GET and no body */
        if (chanwire_parse(x->dialect, op, req->body, req->body_len, &b, &eb) != 0) {
            answer(x, x->dialect == CHANWIRE_PROTO ? CHAN_E_CODEC : CHAN_E_BAD, eb.msg, NULL, 0);
            return;
        }
        if (b.topic) {
            x->topic = b.topic;
            b.topic = NULL;
            x->topic_given = true;
        }
        x->payload = b.payload;
        x->len = b.len;
        b.payload = NULL;
        body_timeout = b.timeout;
        chanwire_req_cleanup(&b);
    }
    if (th) { /* MESH: the header names the topic too, and wins */
        free(x->topic);
        x->topic = gw_xstrdup(th);
        x->topic_given = *th != '\0';
    }
    if (!x->topic && qget(req, "topic")) {
        x->topic = gw_xstrdup(qget(req, "topic"));
        x->topic_given = true;
    }
    if (x->topic && strlen(x->topic) > 1024) {
        answer(x, CHAN_E_BAD, "topic: longer than 1024 bytes", NULL, 0);
        return;
    }
    if (api == CHAN_API_PUSH && !x->target) {
        answer(x, CHAN_E_BAD, "x-ptp-target-node-id: missing (the receiving party's node)", NULL,
               0);
        return;
    }
    long long def = api == CHAN_API_PUSH
                        ? req->app->cfg->transport_push_wait_s * 1000LL
                        : 120000; /* pop: the spec's 120 s; release: not waited on */
    if (chanwire_timeout_ms(qget(req, "timeout"), x->h[H_TIMEOUT], body_timeout, def,
                            &x->wait_ms, &eb) != 0) {
        answer(x, CHAN_E_BAD, eb.msg, NULL, 0);
        return;
    }
    const char *token = x->h[H_TOKEN];
    const struct chan_cap *cap = token ? chan_cap_cached(c, token) : NULL;
    if (cap) {
        container_go(x, cap);
        return;
    }
    const char *msg = NULL;
    const char *code = chan_cap_load(c, token, on_cap, x, &msg);
    if (code)
        answer(x, code, msg, NULL, 0);
}

void chan_push(struct gw_req *req) { container_call(req, CHAN_API_PUSH); }
void chan_pop(struct gw_req *req) { container_call(req, CHAN_API_POP); }
void chan_peek(struct gw_req *req) { container_call(req, CHAN_API_PEEK); }
void chan_release(struct gw_req *req) { container_call(req, CHAN_API_RELEASE); }

/* ---- relay of a push to another node ----------------------------------------------------- */

static void on_relayed(void *arg, const struct httpc_resp *hr)
{
    struct cctx *x = arg;
    struct chan *c = x->req->app->chan;
    x->relay = NULL;
    char code[32], msg[256];
    if (hr->err) {
        snprintf(code, sizeof(code), "%s", CHAN_E_UNREACHABLE);
        snprintf(msg, sizeof(msg), "node %.64s unreachable after %d attempts: %.150s", x->target,
                 hr->attempts, hr->errmsg);
    } else if (chanwire_parse_answer(x->relay_form, hr->body, hr->body_len, code, msg,
                                     sizeof(msg)) != 0) {
        snprintf(code, sizeof(code), "%s", CHAN_E_UNREACHABLE);
        snprintf(msg, sizeof(msg), "node %.64s answered HTTP %ld without a transport answer",
                 x->target, hr->status);
    }
    chan_relay_done(c, strcmp(code, CHAN_OK) == 0);
    answer(x, code, msg, NULL, 0);
}

static void on_sent(void *arg, const char *code, const char *msg)
{
    struct cctx *x = arg;
    x->send = NULL;
    answer(x, code, msg, NULL, 0);
}

static void hdr(char ***v, size_t *n, const char *name, const char *val)
{
    if (!val || !*val)
        return;
    *v = gw_xrealloc(*v, (*n + 2) * sizeof(char *));
    (*v)[(*n)++] = gw_xasprintf("%s: %s", name, val);
    (*v)[*n] = NULL;
}

static void relay_push(struct cctx *x)
{
    struct gw_app *app = x->req->app;
    const struct peer_route *rt = peers_find(app->peers, x->target);
    if (!rt) {
        char m[160];
        snprintf(m, sizeof(m), "x-ptp-target-node-id: node %.64s is not in the route table",
                 x->target);
        answer(x, CHAN_E_NONET, m, NULL, 0);
        return;
    }
    const char *me = app->cfg->node_id;
    const char *topic = x->topic ? x->topic : "";
    if (rt->profile == PEER_STANDARD) {
        /* a gateway of ours: batched with the other pushes for it (chan.h) */
        struct chan_send_req sr = {.peer = x->target, .session = x->session, .scope = x->scope,
                                   .topic = topic, .trace = x->trace, .provider = x->provider,
                                   .timeout_ms = x->wait_ms, .data = x->payload, .len = x->len};
        x->payload = NULL;
        const char *code = chan_send(app->chan, &sr, on_sent, x, &x->send);
        if (code)
            answer(x, code, "no route to the target node", NULL, 0);
        return;
    }
    char **h = NULL;
    size_t nh = 0;
    char tos[24];
    snprintf(tos, sizeof(tos), "%lld", x->wait_ms);
    hdr(&h, &nh, "x-ptp-tech-provider-code", x->provider ? x->provider : "BFIA-GW");
    hdr(&h, &nh, "x-ptp-trace-id", x->trace);
    /* x-ptp-token to peers: the session id (FATE-Flow's value); the task's
     * capability never leaves this node */
    hdr(&h, &nh, "x-ptp-token", x->session);
    hdr(&h, &nh, "x-ptp-session-id", x->session);
    hdr(&h, &nh, "x-ptp-source-node-id", me);
    hdr(&h, &nh, "x-ptp-target-node-id", x->target);
    hdr(&h, &nh, "x-ptp-source-inst-id", x->src_inst ? x->src_inst : me);
    hdr(&h, &nh, "x-ptp-target-inst-id", x->dst_inst ? x->dst_inst : x->target);
    hdr(&h, &nh, "x-ptp-timeout", tos);
    struct chan_relay_req r = {.peer = x->target, .timeout_ms = (long)(x->wait_ms +
                                                                       app->cfg->peer_timeout_ms)};
    char *path;
    if (rt->profile == PEER_FATE_FLOW) {
        /* the standard's encapsulated form (FATE's OSX, MESH) */
        const char *meta[] = {"x-ptp-session-id", x->session, "x-ptp-source-node-id", me,
                              "x-ptp-target-node-id", x->target, "x-ptp-uri",
                              "https://ptp.bfia/v1/interconn/chan/push", NULL};
        r.data = chanwire_build_encap(meta, topic, x->payload, x->len, &r.len);
        free(x->payload);
        hdr(&h, &nh, "Content-Type", "application/x-protobuf");
        hdr(&h, &nh, "x-ptp-version", "2");
        hdr(&h, &nh, "x-ptp-uri", "https://ptp.bfia/v1/interconn/chan/push");
        x->relay_form = CHANWIRE_PROTO;
        path = gw_xstrdup("/v1/interconn/chan/invoke");
    } else {
        /* raw (dialect B, Kuscia's form) */
        r.data = x->payload;
        r.len = x->len;
        hdr(&h, &nh, "Content-Type", "application/octet-stream");
        hdr(&h, &nh, "x-ptp-topic", *topic ? topic : "-");
        x->relay_form = CHANWIRE_RAW;
        long long ws = (x->wait_ms + 999) / 1000;
        path = gw_xasprintf("/v1/interconn/chan/invoke?timeout=%lld", ws);
    }
    x->payload = NULL;
    r.path_query = path;
    r.headers = (const char *const *)h;
    const char *code = chan_relay(app->chan, &r, on_relayed, x, &x->relay);
    free(path);
    for (size_t i = 0; i < nh; i++)
        free(h[i]);
    free(h);
    if (code)
        answer(x, code, strcmp(code, CHAN_E_NONET) == 0 ? "no route to the target node"
                                                         : "cannot relay now", NULL, 0);
}

/* ---- invoke: a message from a peer node ------------------------------------------------------ */

static void invoke_go(struct cctx *x, const struct chan_job *j)
{
    char m[256];
    if (j->state == CHAN_JOB_NONE) {
        snprintf(m, sizeof(m), "x-ptp-session-id: %.128s belongs to no job on this node",
                 x->session);
        answer(x, CHAN_E_AUTH, m, NULL, 0);
        return;
    }
    if (j->state == CHAN_JOB_ENDED) {
        answer(x, CHAN_E_RELEASED, "session released: its job has ended on this node", NULL, 0);
        return;
    }
    if (!chan_job_has_party(j, x->peer)) {
        snprintf(m, sizeof(m), "node %.64s is not a party of the job of session %.128s", x->peer,
                 x->session);
        answer(x, CHAN_E_AUTH, m, NULL, 0);
        return;
    }
    if (!j->scoped) {
        free(x->scope);
        x->scope = gw_xstrdup("");
    }
    enqueue(x);
}

static void on_job(void *arg, const struct chan_job *j, const char *code, const char *msg)
{
    struct cctx *x = arg;
    if (!j) {
        answer(x, code, msg, NULL, 0);
        return;
    }
    invoke_go(x, j);
}

/* ---- invoke, batched: several messages from a gateway of ours ----------------------------- */

struct bitem {
    struct cctx *x;
    struct chanq_waiter *w;
    size_t idx;
};

struct bstate {
    struct chanbatch dec;      /* payloads point into the request body */
    struct chanbatch_res *res;
    struct bitem *items;
    size_t next;               /* the message being decided; earlier ones are */
    size_t pending;            /* pushes waiting for room */
    bool loading;              /* a job lookup for message next is under way */
    bool any_full;             /* some message found its queue full */
};

static void batch_free(struct cctx *x)
{
    struct bstate *b = x->batch;
    struct chan *c = x->req->app->chan;
    for (size_t i = 0; i < b->dec.n; i++)
        if (b->items[i].w && c)
            chanq_cancel(chan_queues(c), b->items[i].w);
    chanbatch_cleanup(&b->dec);
    free(b->res);
    free(b->items);
    free(b);
    x->batch = NULL;
}

static void bres(struct cctx *x, size_t i, const char *code, const char *msg)
{
    struct bstate *b = x->batch;
    snprintf(b->res[i].code, sizeof(b->res[i].code), "%s", code);
    snprintf(b->res[i].msg, sizeof(b->res[i].msg), "%s", msg ? msg : "");
    bool full = strcmp(code, CHAN_E_FULL) == 0;
    if (full)
        b->any_full = true;
    chan_count(x->req->app->chan, CHAN_API_INVOKE, code);
    if (strcmp(code, CHAN_OK) != 0) {
        /* a full queue is asked again by the sender (it parks the message):
         * not a line per attempt */
        enum log_level lv = strcmp(code, CHAN_E_SERVER) == 0 ? LOG_LEVEL_WARN
                            : full && b->dec.m[i].timeout_ms == 0 ? LOG_LEVEL_DEBUG
                                                                   : LOG_LEVEL_INFO;
        if (log_enabled(lv))
            log_kv(lv, &x->req->log, "transport.refused", msg, "code", code, "path",
                   x->req->path, "session", b->dec.m[i].session, "topic", b->dec.m[i].topic,
                   NULL);
    }
}

/* Answer once every message has its outcome. */
static void batch_maybe_answer(struct cctx *x)
{
    struct bstate *b = x->batch;
    if (b->loading || b->next < b->dec.n || b->pending)
        return;
    size_t bl;
    void *body = chanbatch_answer(CHAN_OK, CHANBATCH_NOWAIT, b->res, b->dec.n, &bl);
    struct server_part p = {body, bl, NULL};
    unlist(x);
    server_reply_parts(x->req, 200, CHANBATCH_ANSWER_TYPE, &p, 1);
    free(body);
}

static void on_bpush_done(void *arg, int st, void *data, size_t len)
{
    (void)data;
    (void)len;
    struct bitem *it = arg;
    struct cctx *x = it->x;
    it->w = NULL;
    const char *msg;
    const char *code = code_of(st, &msg);
    bres(x, it->idx, code, msg);
    x->batch->pending--;
    batch_maybe_answer(x);
}

/* Decide message b->next, whose job is j: the checks of a single invoke. */
static void batch_one(struct cctx *x, const struct chan_job *j)
{
    struct bstate *b = x->batch;
    size_t i = b->next++;
    const struct chanbatch_msg *m = &b->dec.m[i];
    char e[320];
    if (j->state == CHAN_JOB_NONE) {
        snprintf(e, sizeof(e), "x-ptp-session-id: %.128s belongs to no job on this node",
                 m->session);
        bres(x, i, CHAN_E_AUTH, e);
        return;
    }
    if (j->state == CHAN_JOB_ENDED) {
        bres(x, i, CHAN_E_RELEASED, "session released: its job has ended on this node");
        return;
    }
    if (!chan_job_has_party(j, x->peer)) {
        snprintf(e, sizeof(e), "node %.64s is not a party of the job of session %.128s", x->peer,
                 m->session);
        bres(x, i, CHAN_E_AUTH, e);
        return;
    }
    const char *scope = j->scoped ? m->scope : "";
    if (*scope && !json_is_id(scope, 128)) {
        bres(x, i, CHAN_E_BAD, "task: not a task id");
        return;
    }
    /* a queue that refused an earlier message of this batch takes none of
     * its later ones (the sender asks again in order) */
    for (size_t k = 0; b->any_full && k < i; k++) {
        const struct chanbatch_msg *o = &b->dec.m[k];
        if (strcmp(b->res[k].code, CHAN_E_FULL) == 0 && strcmp(o->session, m->session) == 0 &&
            strcmp(o->scope, m->scope) == 0 && strcmp(o->topic, m->topic) == 0) {
            bres(x, i, CHAN_E_FULL, "buffer full: an earlier message of its queue found no room");
            return;
        }
    }
    struct chan *c = x->req->app->chan;
    long long wait = m->timeout_ms > 300000 ? 300000 : m->timeout_ms;
    long long now = chan_now();
    struct chanq_addr a = {m->session, scope, m->topic, x->peer};
    void *d = gw_xmalloc(m->len ? m->len : 1);
    memcpy(d, m->payload, m->len);
    b->items[i] = (struct bitem){x, NULL, i};
    int st = chanq_push(chan_queues(c), &a, d, m->len, now, now + wait, on_bpush_done,
                        &b->items[i], &b->items[i].w);
    if (st == CHANQ_WAITING) {
        b->pending++;
        chan_arm(c);
        return;
    }
    if (st != CHANQ_OK)
        free(d); /* not taken */
    const char *msg;
    const char *code = code_of(st, &msg);
    bres(x, i, code, msg);
}

static void batch_step(struct cctx *x);

static void on_batch_job(void *arg, const struct chan_job *j, const char *code, const char *msg)
{
    struct cctx *x = arg;
    struct bstate *b = x->batch;
    b->loading = false;
    if (j)
        batch_one(x, j);
    else
        bres(x, b->next++, code, msg);
    batch_step(x);
}

/* Decide the messages in order (a job lookup suspends the walk), so the
 * messages of one (session, topic) are enqueued in the order they came. */
static void batch_step(struct cctx *x)
{
    struct bstate *b = x->batch;
    struct chan *c = x->req->app->chan;
    while (b->next < b->dec.n) {
        const char *session = b->dec.m[b->next].session;
        const char *job = chan_session_job(session);
        if (!job) {
            char e[256];
            snprintf(e, sizeof(e), "x-ptp-session-id: %.128s belongs to no job on this node",
                     session);
            bres(x, b->next++, CHAN_E_AUTH, e);
            continue;
        }
        const struct chan_job *j = chan_job_cached(c, job);
        if (j) {
            batch_one(x, j);
            continue;
        }
        const char *msg = NULL;
        const char *code = chan_job_load(c, job, on_batch_job, x, &msg);
        if (code) {
            bres(x, b->next++, code, msg);
            continue;
        }
        b->loading = true;
        return;
    }
    batch_maybe_answer(x);
}

static void invoke_batch(struct cctx *x, const struct peer_route *rt)
{
    struct gw_req *req = x->req;
    if (!rt || rt->profile != PEER_STANDARD) {
        answer(x, CHAN_E_NOTPERMIT, "Content-Type: batches are taken only from gateways of this "
               "kind (routes of the standard profile)", NULL, 0);
        return;
    }
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    struct bstate *b = gw_xcalloc(1, sizeof(*b));
    if (chanbatch_decode(req->body, req->body_len, CHANBATCH_MAX_MSGS, &b->dec, &eb) != 0) {
        free(b);
        answer(x, CHAN_E_BAD, eb.msg, NULL, 0);
        return;
    }
    b->res = gw_xcalloc(b->dec.n, sizeof(*b->res));
    b->items = gw_xcalloc(b->dec.n, sizeof(*b->items));
    x->batch = b;
    batch_step(x);
}

/* A value from the signed query or else the header; both present must agree. */
static int pick(struct cctx *x, const char *q, const char *h, const char *what, char **out)
{
    if (q && h && strcmp(q, h) != 0) {
        char m[160];
        snprintf(m, sizeof(m), "%s: the header and the signed query disagree", what);
        answer(x, CHAN_E_BAD, m, NULL, 0);
        return -1;
    }
    const char *v = q ? q : h;
    *out = v ? gw_xstrdup(v) : NULL;
    return 0;
}

void chan_invoke(struct gw_req *req)
{
    struct cctx *x = cctx_new(req, CHAN_API_INVOKE);
    struct gw_app *app = req->app;
    struct chan *c = app->chan;
    hscan(x);
    const char *th = x->h[H_TOPIC];
    int mode = chanwire_invoke_mode(x->h[H_VERSION], th);
    int ct = chanwire_dialect_of(x->h[H_CTYPE], false);
    x->dialect = mode == CHANWIRE_M_RAW ? CHANWIRE_RAW : ct ? ct : CHANWIRE_JSON;
    const char *ctype = x->h[H_CTYPE];
    x->batch_form = ctype && strncasecmp(ctype, CHANBATCH_CONTENT_TYPE,
                                         sizeof(CHANBATCH_CONTENT_TYPE) - 1) == 0;
    if (!c) {
        answer(x, CHAN_E_SERVER, "the transport is not running on this node", NULL, 0);
        return;
    }
    if (oversized(x))
        return;
    /* Who sends: the signed caller (route auth checked it), or, from a peer
     * that signs nothing, the node it names; a node whose route requires
     * signatures cannot be named without one. */
    const char *src = x->h[H_SOURCE];
    if (!src)
        src = x->h[H_FROM];
    const char *caller = req->caller;
    if (caller && src && strcmp(caller, src) != 0) {
        answer(x, CHAN_E_AUTH, "x-ptp-source-node-id: differs from the calling node", NULL, 0);
        return;
    }
    const char *from = caller ? caller : src;
    if (!from || !*from) {
        answer(x, CHAN_E_BAD, "x-ptp-source-node-id: missing", NULL, 0);
        return;
    }
    const struct peer_route *rt = peers_find(app->peers, from);
    if (!rt && strcmp(from, app->cfg->node_id) != 0) {
        answer(x, CHAN_E_AUTH, "x-ptp-source-node-id: not a node of this node's route table",
               NULL, 0);
        return;
    }
    if (!caller && rt && strcmp(rt->auth, "required") == 0) {
        answer(x, CHAN_E_AUTH, "x-ptp-source-node-id: this node accepts only signed requests "
               "from that node", NULL, 0);
        return;
    }
    x->peer = gw_xstrdup(from);
    const char *tgt = x->h[H_TARGET];
    if (tgt && *tgt && strcmp(tgt, app->cfg->node_id) != 0) {
        answer(x, CHAN_E_NONET, "x-ptp-target-node-id: not this node (messages are not routed "
               "further)", NULL, 0);
        return;
    }
    if (x->batch_form) {
        invoke_batch(x, rt);
        return;
    }
    /* Our gateways put session, topic and task in the query, which their
     * signature covers (checked per the route's auth policy before this). */
    bool ours = rt && rt->profile == PEER_STANDARD;
    const char *qs = ours ? qget(req, "session") : NULL;
    const char *qt = ours ? qget(req, "topic") : NULL;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (mode == CHANWIRE_M_RAW) {
        if (pick(x, qs, x->h[H_SESSION], "x-ptp-session-id", &x->session) ||
            pick(x, qt, th, "x-ptp-topic", &x->topic))
            return;
        x->payload = server_req_body_take(req, &x->len);
    } else {
        int op = chanwire_uri_op(x->h[H_URI]);
        if (op != CHANWIRE_PUSH && !(op < 0 && !x->h[H_URI])) {
            answer(x, CHAN_E_NOTPERMIT, "x-ptp-uri: only pushes may be invoked here (a peer "
                   "never reads this node's queues)", NULL, 0);
            return;
        }
        struct chanwire_req b;
        if (chanwire_parse_invoke(mode, ct, req->body, req->body_len, &b, &eb) != 0) {
            answer(x, ct == CHANWIRE_PROTO ? CHAN_E_CODEC : CHAN_E_BAD, eb.msg, NULL, 0);
            return;
        }
        const char *s = x->h[H_SESSION];
        x->session = gw_xstrdup(s ? s : chanwire_meta(&b, "x-ptp-session-id"));
        x->topic = b.topic;
        b.topic = NULL;
        x->payload = b.payload;
        x->len = b.len;
        b.payload = NULL;
        chanwire_req_cleanup(&b);
    }
    if (!x->session || !*x->session) {
        answer(x, CHAN_E_BAD, "x-ptp-session-id: missing", NULL, 0);
        return;
    }
    const char *task = ours ? qget(req, "task") : NULL;
    if (task && *task && !json_is_id(task, 128)) {
        answer(x, CHAN_E_BAD, "task: not a task id", NULL, 0);
        return;
    }
    x->scope = gw_xstrdup(task ? task : "");
    if (chanwire_timeout_ms(qget(req, "timeout"), x->h[H_TIMEOUT], -1,
                            app->cfg->transport_push_wait_s * 1000LL, &x->wait_ms, &eb) != 0) {
        answer(x, CHAN_E_BAD, eb.msg, NULL, 0);
        return;
    }
    /* a gateway of ours waits for room itself (container/chan.c parks the
     * message): a full queue answers at once */
    const char *nw = ours ? qget(req, "nowait") : NULL;
    if (nw && strcmp(nw, "1") != 0 && strcmp(nw, "0") != 0) {
        answer(x, CHAN_E_BAD, "nowait: use 1 or 0", NULL, 0);
        return;
    }
    if (nw && *nw == '1') {
        x->wait_ms = 0;
        x->nowait = true;
    }
    const char *job = chan_session_job(x->session);
    if (!job) {
        char m[256];
        snprintf(m, sizeof(m), "x-ptp-session-id: %.128s belongs to no job on this node",
                 x->session);
        answer(x, CHAN_E_AUTH, m, NULL, 0);
        return;
    }
    x->job_id = gw_xstrdup(job);
    const struct chan_job *j = chan_job_cached(c, x->job_id);
    if (j) {
        invoke_go(x, j);
        return;
    }
    const char *msg = NULL;
    const char *code = chan_job_load(c, x->job_id, on_job, x, &msg);
    if (code)
        answer(x, code, msg, NULL, 0);
}

static int raw_answer(const void *body, size_t len, char code[32], char *msg, size_t msgsz)
{
    return chanwire_parse_answer(CHANWIRE_RAW, body, len, code, msg, msgsz);
}

void chan_routes_start(struct gw_app *app)
{
    if (app->chan) {
        chan_set_sweep_hook(app->chan, sweep_waiting, NULL);
        chan_set_raw_answer(app->chan, raw_answer);
    }
}
