/*
 * psi_transport_http.c - dialect B of the BFIA channel API (spec
 * bfia-transport.md §3.6, §8), as the reference implementation's client
 * (YACL brpc_blackbox_link) speaks it:
 *
 *   POST {system.transport}/v1/interconn/chan/push          raw body
 *   POST {system.transport}/v1/interconn/chan/pop?timeout=S  empty body
 *   headers x-ptp-tech-provider-code, x-ptp-trace-id, x-ptp-token,
 *           x-ptp-session-id, x-ptp-source-node-id, x-ptp-target-node-id
 *           (the peer, on push and pop), x-ptp-source-inst-id,
 *           x-ptp-target-inst-id, x-ptp-topic
 *   answer  protobuf TransportOutbound{payload=1, code=2, message=3}
 *
 * Push and pop each keep their own keep-alive connection (the link pushes
 * from one thread and pops from another).
 */
#include "psi_transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "psi_http.h"
#include "psi_wire.h"

#define CODE_OK "E0000000000"
#define CODE_NOT_FOUND "E0000000404"
#define CODE_QUEUE_FULL "E0000000700"
/* The answer of a pop carries at most one message; the gateway caps bodies
 * at 128 MiB by default. */
#define MAX_ANSWER (160u * 1024 * 1024)
#define PUSH_HTTP_TIMEOUT_MS 20000 /* as the reference's http_timeout_ms */
#define PUSH_PATH "/v1/interconn/chan/push"
#define POP_PATH "/v1/interconn/chan/pop?timeout="

struct http_tr {
    struct psi_http_conn *push_c, *pop_c;
    char *fixed;            /* the x-ptp-* headers every request carries, CRLF-joined */
    int push_deadline_ms;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Codes worth retrying: the gateway or the route is momentarily unable. */
static int transient_code(const char *code)
{
    static const char *const t[] = {"E0000000500", "E0000000503", "E0000000520", "E0000000601",
                                    "E0000000602", "E0000000607", CODE_QUEUE_FULL, NULL};
    for (int i = 0; t[i]; i++)
        if (strcmp(code, t[i]) == 0)
            return 1;
    return 0;
}

/* The request head: shared by call() and psi_transport_http_head(). */
static int format_head(const struct http_tr *h, const struct psi_http_conn *c, const char *path,
                       const char *topic, size_t blen, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "POST %s%s HTTP/1.1\r\nHost: %s\r\n%sx-ptp-topic: %s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     psi_http_conn_path(c), path, psi_http_conn_hostport(c), h->fixed, topic, blen);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* One request; classifies the outcome.  On PSI_TRANSPORT_OK *o holds the
 * parsed answer (payload owned by the caller). */
static int call(struct http_tr *h, struct psi_http_conn *c, const char *path, const char *topic,
                const unsigned char *body, size_t blen, int timeout_ms,
                struct psi_wire_outbound *o, char *err, size_t errlen)
{
    char head[8192];
    if (!psi_http_header_safe(topic) || format_head(h, c, path, topic, blen, head, sizeof(head)) < 0) {
        snprintf(err, errlen, "request headers too long or topic not a header value");
        return PSI_TRANSPORT_FATAL;
    }
    struct psi_http_resp r;
    char herr[256];
    if (psi_http_request(c, head, body, blen, timeout_ms, MAX_ANSWER, &r, herr, sizeof(herr)) != 0) {
        snprintf(err, errlen, "%s%s: %s", psi_http_conn_hostport(c), path, herr);
        return PSI_TRANSPORT_RETRY;
    }
    if (r.status != 200) {
        int st = r.status;
        snprintf(err, errlen, "%s%s answered HTTP %d%s", psi_http_conn_hostport(c), path, st,
                 st == 404 ? " (does this gateway serve the BFIA channel API?)" : "");
        psi_http_resp_cleanup(&r);
        return st >= 500 || st == 429 ? PSI_TRANSPORT_RETRY : PSI_TRANSPORT_FATAL;
    }
    int rc = psi_wire_outbound_unpack(r.body, r.len, o);
    psi_http_resp_cleanup(&r);
    if (rc != 0 || !o->code[0]) {
        free(o->payload);
        o->payload = NULL;
        snprintf(err, errlen, "%s%s: the answer is not a dialect-B TransportOutbound",
                 psi_http_conn_hostport(c), path);
        return PSI_TRANSPORT_FATAL;
    }
    return PSI_TRANSPORT_OK;
}

static int http_push(void *impl, const char *topic, const unsigned char *buf, size_t len, char *err,
                     size_t errlen)
{
    struct http_tr *h = impl;
    long long deadline = now_ms() + h->push_deadline_ms;
    long backoff = 200;
    for (;;) {
        struct psi_wire_outbound o;
        int rc = call(h, h->push_c, PUSH_PATH, topic, buf, len, PUSH_HTTP_TIMEOUT_MS,
                      &o, err, errlen);
        if (rc == PSI_TRANSPORT_OK) {
            free(o.payload);
            if (strcmp(o.code, CODE_OK) == 0)
                return PSI_TRANSPORT_OK;
            snprintf(err, errlen, "push refused: %s %s", o.code, o.message);
            rc = transient_code(o.code) ? PSI_TRANSPORT_RETRY : PSI_TRANSPORT_FATAL;
        }
        if (rc == PSI_TRANSPORT_FATAL)
            return rc;
        /* A retried push may arrive twice: the link layer drops duplicates
         * by sequence number, as the reference does. */
        if (now_ms() + backoff > deadline)
            return PSI_TRANSPORT_FATAL;
        sleep_ms(backoff);
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
    }
}

static int http_pop(void *impl, const char *topic, int timeout_ms, unsigned char **buf, size_t *len,
                    char *err, size_t errlen)
{
    struct http_tr *h = impl;
    int secs = (timeout_ms + 999) / 1000;
    if (secs < 1)
        secs = 1;
    char path[64];
    snprintf(path, sizeof(path), POP_PATH "%d", secs);
    struct psi_wire_outbound o;
    int rc = call(h, h->pop_c, path, topic, NULL, 0, secs * 1000 + 5000, &o, err, errlen);
    if (rc != PSI_TRANSPORT_OK)
        return rc;
    if (strcmp(o.code, CODE_NOT_FOUND) == 0 || (strcmp(o.code, CODE_OK) == 0 && !o.len)) {
        free(o.payload);
        return PSI_TRANSPORT_OK; /* nothing yet */
    }
    if (strcmp(o.code, CODE_OK) != 0) {
        free(o.payload);
        snprintf(err, errlen, "pop refused: %s %s", o.code, o.message);
        return transient_code(o.code) ? PSI_TRANSPORT_RETRY : PSI_TRANSPORT_FATAL;
    }
    *buf = o.payload;
    *len = o.len;
    return PSI_TRANSPORT_GOT;
}

static void http_free(void *impl)
{
    struct http_tr *h = impl;
    if (!h)
        return;
    psi_http_conn_free(h->push_c);
    psi_http_conn_free(h->pop_c);
    free(h->fixed);
    free(h);
}

/* No wake: a pop ends within its 1 s timeout anyway, and interrupting a
 * socket that another thread may be reopening is not worth the risk. */
static const struct psi_transport_ops http_ops = {http_push, http_pop, http_free, NULL};

struct psi_transport *psi_transport_http_new(const struct psi_transport_http_cfg *cfg, char *err,
                                             size_t errlen)
{
    const struct {
        const char *name, *v;
    } vals[] = {{"config.session_id", cfg->session_id}, {"config.token", cfg->token},
                {"config.trace_id", cfg->trace_id},     {"provider code", cfg->provider},
                {"own node id", cfg->self_node},        {"peer node id", cfg->peer_node},
                {"own inst id", cfg->self_inst},        {"peer inst id", cfg->peer_inst}};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        if (!vals[i].v || !psi_http_header_safe(vals[i].v)) {
            snprintf(err, errlen, "%s: missing or holds a line break", vals[i].name);
            return NULL;
        }
    }
    struct http_tr *h = calloc(1, sizeof(*h));
    struct psi_transport *t = calloc(1, sizeof(*t));
    if (!h || !t) {
        free(h);
        free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char cerr[256];
    h->push_c = psi_http_conn_new(cfg->address, cerr, sizeof(cerr));
    h->pop_c = h->push_c ? psi_http_conn_new(cfg->address, cerr, sizeof(cerr)) : NULL;
    if (!h->pop_c) {
        snprintf(err, errlen, "system.transport: %s", cerr);
        http_free(h);
        free(t);
        return NULL;
    }
    if (asprintf(&h->fixed,
                 "x-ptp-tech-provider-code: %s\r\nx-ptp-trace-id: %s\r\nx-ptp-token: %s\r\n"
                 "x-ptp-session-id: %s\r\nx-ptp-source-node-id: %s\r\nx-ptp-target-node-id: %s\r\n"
                 "x-ptp-source-inst-id: %s\r\nx-ptp-target-inst-id: %s\r\n",
                 cfg->provider, cfg->trace_id, cfg->token, cfg->session_id, cfg->self_node,
                 cfg->peer_node, cfg->self_inst, cfg->peer_inst) < 0) {
        h->fixed = NULL;
        http_free(h);
        free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->push_deadline_ms = cfg->push_deadline_ms > 0 ? cfg->push_deadline_ms : 60000;
    t->ops = &http_ops;
    t->impl = h;
    return t;
}

int psi_transport_http_head(const struct psi_transport *t, bool push, const char *topic, size_t blen,
                            int pop_timeout_s, char *out, size_t cap)
{
    const struct http_tr *h = t->impl;
    char path[64];
    if (push)
        snprintf(path, sizeof(path), PUSH_PATH);
    else
        snprintf(path, sizeof(path), POP_PATH "%d", pop_timeout_s);
    return format_head(h, push ? h->push_c : h->pop_c, path, topic, blen, out, cap);
}

void psi_transport_free(struct psi_transport *t)
{
    if (!t)
        return;
    if (t->ops && t->ops->free)
        t->ops->free(t->impl);
    free(t);
}
