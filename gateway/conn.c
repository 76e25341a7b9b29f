/*
 * conn.c - the connection guard (see conn.h).
 *
 * Life of a connection here:
 *   bevcb        evhttp accepted a socket and asks for its bufferevent: the
 *                conn is made, its input buffer watched, the budget checked
 *   adopt        (deferred to the same loop turn, once evhttp made its
 *                connection object) the close callback is set and the
 *                client's address counted
 *   HEAD         bytes of a request head arrive: checked, held back until
 *                the head is complete, then released to evhttp at once
 *   BODY         counted against the body deadline (or streamed by spool)
 *   BUSY         the handler works; nothing is read
 *   IDLE         the reply went out; waiting for the next request
 *   LINGER       refused: the answer is out, input is dropped, the
 *                connection ends when the client closes or after 1 s
 *   close        evhttp frees the connection (client gone, timeout, our
 *                close) and calls our close callback: the conn goes away
 *
 * Why evbuffer callbacks and not a filter bufferevent: a callback on the
 * input buffer runs synchronously while the socket is read, before evhttp's
 * read callback (the read watermark keeps evhttp away from an input buffer
 * we emptied), and costs no copy of the bytes.
 */
#include "conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app.h"
#include "cfg.h"
#include "compat.h"
#include "httphead.h"
#include "log.h"
#include "server.h"
#include "spool.h"

enum phase { PH_HEAD, PH_BODY, PH_BUSY, PH_IDLE, PH_LINGER };

#define LINGER_MS 1000   /* a refused connection's answer gets this long to leave */
#define PAUSE_MS 100     /* accept paused after EMFILE with nothing to shed */
#define SHED_BATCH 8     /* connections shed per accept failure */
#define ADDR_BUCKETS 1024
#define MAX_LISTENERS 4096
#define LOG_EVERY_MS 10000

struct addr_slot {
    int family;
    unsigned char a[16];
    int n;
    struct addr_slot *next;
};

struct conn {
    struct conn_guard *g;
    struct bufferevent *bev;
    struct evbuffer *in;
    struct evbuffer_cb_entry *cbe;
    struct evhttp_connection *evcon; /* once adopted */
    struct addr_slot *addr;          /* its client address's counter, or NULL */
    struct gw_req *req;              /* dispatched and not yet answered */
    struct spool_conn *spc;          /* an upload streaming */
    enum phase phase;
    long long phase_ms;              /* when the phase (the deadline's clock) began */
    long long rx;                    /* bytes of the current request received */
    long long body_left;             /* -1: chunked, ends at dispatch */
    bool replied;                    /* the reply left while the body still streamed */
    bool adopted;
    struct hh hh;
    struct evbuffer *hold;           /* a partial head held back from evhttp */
    struct conn *prev, *next;        /* every connection */
    struct conn *lprev, *lnext;      /* sheddable ones (IDLE, or HEAD without a request), oldest first */
    bool in_lru;
    struct conn *hnext;              /* hash chain, keyed by bev */
    struct conn *anext;              /* waiting for adoption */
};

/* One kind of log line, at most once per LOG_EVERY_MS with a count. */
struct lograte {
    long long last_ms;
    unsigned long suppressed;
};

struct conn_guard {
    struct gw_app *app;
    struct evhttp *http;
    bool tcp;
    struct spool *spool;
    struct conn *all;
    int n;
    struct conn *lru_head, *lru_tail;
    struct conn **hash;
    size_t hsize;
    struct conn *adopt_q;
    struct event *adopt_ev, *sweep_ev, *resume_ev;
    struct addr_slot *addrs[ADDR_BUCKETS];
    int budget;                /* connections at once (0 = no budget) */
    struct evconnlistener **lev;
    int nlev;
    bool paused;
    bool busy;                 /* inside an input callback that edits its own buffer */
    struct lograte lr_head, lr_timeout, lr_refused, lr_fd, lr_shed;
};

/*
 * libevent calls a listener's error callback with the listener's own
 * argument (the evhttp) and offers no slot for ours, so the guards are
 * found through this table.  It changes only at start-up and shutdown.
 */
static struct conn_guard *registry[4];

static bool rate_ok(struct lograte *lr, unsigned long *suppressed)
{
    long long now = gw_now_mono_ms();
    if (lr->last_ms && now - lr->last_ms < LOG_EVERY_MS) {
        lr->suppressed++;
        return false;
    }
    *suppressed = lr->suppressed;
    lr->suppressed = 0;
    lr->last_ms = now;
    return true;
}

/* ---- bookkeeping ----------------------------------------------------------- */

static size_t hash_of(const struct conn_guard *g, const void *p)
{
    uintptr_t v = (uintptr_t)p;
    return (size_t)((v >> 4) ^ (v >> 13)) & (g->hsize - 1);
}

static void hash_insert(struct conn_guard *g, struct conn *c)
{
    if ((size_t)g->n * 2 > g->hsize) {
        size_t ns = g->hsize * 2;
        struct conn **nh = gw_xcalloc(ns, sizeof(*nh));
        struct conn **old = g->hash;
        size_t os = g->hsize;
        g->hash = nh;
        g->hsize = ns;
        for (size_t i = 0; i < os; i++)
            for (struct conn *x = old[i], *nx; x; x = nx) {
                nx = x->hnext;
                size_t b = hash_of(g, x->bev);
                x->hnext = g->hash[b];
                g->hash[b] = x;
            }
        free(old);
    }
    size_t b = hash_of(g, c->bev);
    c->hnext = g->hash[b];
    g->hash[b] = c;
}

static void hash_remove(struct conn_guard *g, struct conn *c)
{
    struct conn **pp = &g->hash[hash_of(g, c->bev)];
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = c->hnext;
}

static void lru_remove(struct conn_guard *g, struct conn *c)
{
    if (!c->in_lru)
        return;
    if (c->lprev)
        c->lprev->lnext = c->lnext;
    else
        g->lru_head = c->lnext;
    if (c->lnext)
        c->lnext->lprev = c->lprev;
    else
        g->lru_tail = c->lprev;
    c->lprev = c->lnext = NULL;
    c->in_lru = false;
}

static void lru_append(struct conn_guard *g, struct conn *c)
{
    lru_remove(g, c);
    if (!c->adopted)
        return; /* only a connection evhttp fully set up can be shed */
    c->lprev = g->lru_tail;
    c->lnext = NULL;
    if (g->lru_tail)
        g->lru_tail->lnext = c;
    else
        g->lru_head = c;
    g->lru_tail = c;
    c->in_lru = true;
}

static void set_phase(struct conn *c, enum phase ph)
{
    c->phase = ph;
    c->phase_ms = gw_now_mono_ms();
    /* Sheddable: nothing in progress that a handler or a body depends on. */
    if ((ph == PH_IDLE || ph == PH_HEAD) && !c->req && !c->spc)
        lru_append(c->g, c);
    else
        lru_remove(c->g, c);
}

static struct addr_slot *addr_get(struct conn_guard *g, const struct sockaddr *sa)
{
    int fam;
    unsigned char a[16];
    memset(a, 0, sizeof(a));
    if (sa && sa->sa_family == AF_INET) {
        fam = AF_INET;
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        fam = AF_INET6;
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, v4mapped, 12) == 0) { /* an IPv4 client on a dual-stack socket */
            fam = AF_INET;
            memmove(a, a + 12, 4);
            memset(a + 4, 0, 12);
        }
    } else {
        return NULL;
    }
    uint32_t h = 2166136261u ^ (uint32_t)fam;
    for (int i = 0; i < 16; i++)
        h = (h ^ a[i]) * 16777619u;
    struct addr_slot **b = &g->addrs[h % ADDR_BUCKETS];
    for (struct addr_slot *s = *b; s; s = s->next)
        if (s->family == fam && memcmp(s->a, a, 16) == 0)
            return s;
    struct addr_slot *s = gw_xcalloc(1, sizeof(*s));
    s->family = fam;
    memcpy(s->a, a, 16);
    s->next = *b;
    *b = s;
    return s;
}

static void addr_put(struct conn_guard *g, struct addr_slot *s)
{
    if (!s || --s->n > 0)
        return;
    uint32_t h = 2166136261u ^ (uint32_t)s->family;
    for (int i = 0; i < 16; i++)
        h = (h ^ s->a[i]) * 16777619u;
    struct addr_slot **pp = &g->addrs[h % ADDR_BUCKETS];
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    free(s);
}

static void addr_text(const struct addr_slot *s, char *out, size_t cap)
{
    char buf[64] = "?";
    if (s && s->family == AF_INET)
        snprintf(buf, sizeof(buf), "%u.%u.%u.%u", s->a[0], s->a[1], s->a[2], s->a[3]);
    else if (s)
        for (int i = 0, o = 0; i < 16 && o < 60; i += 2)
            o += snprintf(buf + o, sizeof(buf) - (size_t)o, "%s%x", i ? ":" : "",
                          (unsigned)(s->a[i] << 8 | s->a[i + 1]));
    snprintf(out, cap, "%s", buf);
}

/* ---- answering and closing -------------------------------------------------- */

/* A short answer written straight to the socket: the connection has no
 * reply queued (it is between requests, or evhttp never saw this one). */
static void answer(struct conn *c, int status, const char *reason, int code, const char *msg,
                   const char *extra)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd < 0)
        return;
    char body[400], esc[300], out[900];
    log_escape(esc, sizeof(esc), msg, strlen(msg));
    int bl = snprintf(body, sizeof(body), "{\"code\":%d,\"msg\":\"%s\",\"data\":{}}", code, esc);
    if (bl < 0 || (size_t)bl >= sizeof(body))
        bl = snprintf(body, sizeof(body), "{\"code\":%d,\"msg\":\"refused\",\"data\":{}}", code);
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     "%sContent-Length: %d\r\n\r\n%s",
                     status, reason, extra ? extra : "", bl, body);
    if (n > 0 && (size_t)n < sizeof(out))
        (void)!send(fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT); /* best effort */
}

/* Close now.  Only from a clean stack (a timer, the adopt event, the
 * listener): never from inside this connection's own callbacks. */
static void close_now(struct conn *c)
{
    if (c->evcon && !c->req) {
        evhttp_connection_free(c->evcon); /* runs on_close: c is gone */
        return;
    }
    /* A handler holds a request on it: end the connection the way a client
     * that left ends it, so the request is detached and answered into the
     * void through the usual path.  Whatever still arrives is dropped
     * (evhttp must never be handed bytes while it writes a reply). */
    if (c->phase != PH_LINGER)
        set_phase(c, PH_LINGER);
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    bufferevent_enable(c->bev, EV_READ);
}

/* Refuse from inside the input callback: answer, stop reading what the
 * client sends, close once the answer had a moment to leave. */
static void refuse_linger(struct conn *c, int status, const char *reason, int code,
                          const char *msg)
{
    answer(c, status, reason, code, msg, NULL);
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd >= 0)
        shutdown(fd, SHUT_WR);
    if (c->hold)
        evbuffer_drain(c->hold, evbuffer_get_length(c->hold));
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    set_phase(c, PH_LINGER);
}

/* ---- the input -------------------------------------------------------------------- */

static void head_start(struct conn *c)
{
    hh_init(&c->hh);
    c->rx = 0;
    c->body_left = 0;
    c->replied = false;
}

static void body_bytes(struct conn *c, size_t n);

/* A complete head is at the front of the input (hlen bytes); what follows
 * in the buffer (extra bytes) is body or the next request. */
static void head_done(struct conn *c, size_t hlen)
{
    long long bl = hh_body_length(&c->hh);
    size_t extra = evbuffer_get_length(c->in) - hlen;
    c->spc = spool_begin(c->g->spool, c->bev, hlen);
    if (c->spc) {
        c->body_left = bl;
        set_phase(c, spool_done(c->spc) ? PH_BUSY : PH_BODY);
        c->rx = (long long)extra;
        return;
    }
    c->body_left = bl;
    if (bl == 0) {
        set_phase(c, PH_BUSY);
        return;
    }
    set_phase(c, PH_BODY);
    c->rx = 0; /* from here: body bytes, for the body deadline */
    body_bytes(c, extra);
}

/* n more bytes while in BODY: count them; a complete body means the
 * request is evhttp's (and the handler's) now. */
static void body_bytes(struct conn *c, size_t n)
{
    c->rx += (long long)n;
    if (c->spc) {
        if (!spool_feed(c->spc))
            return;
        if (!c->replied) {
            set_phase(c, PH_BUSY);
            return;
        }
        /* Answered before the body ended; the bytes after it (if any) are
         * the next request, already in the buffer. */
        spool_conn_free(c->spc);
        c->spc = NULL;
        head_start(c);
        set_phase(c, PH_IDLE);
        return;
    }
    if (c->body_left > 0) {
        long long k = (long long)n < c->body_left ? (long long)n : c->body_left;
        c->body_left -= k;
        if (c->body_left == 0)
            set_phase(c, PH_BUSY);
    }
}

/* Scan the input as the head of a new request (it starts at the front). */
static void scan_head(struct conn *c)
{
    struct conn_guard *g = c->g;
    size_t max = (size_t)g->app->cfg->http_header_max;
    size_t len = evbuffer_get_length(c->in), off = 0;
    if (len == 0)
        return;
    if (c->phase == PH_IDLE) {
        head_start(c);
        set_phase(c, PH_HEAD); /* the head deadline runs from its first byte */
    }
    size_t held = c->hold ? evbuffer_get_length(c->hold) : 0;
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(c->in, &pos, 0, EVBUFFER_PTR_SET);
    enum hh_verdict v = HH_MORE;
    while (off < len && v == HH_MORE) {
        struct evbuffer_iovec iov[8];
        int ni = evbuffer_peek(c->in, -1, &pos, iov, 8);
        if (ni <= 0)
            break;
        size_t step = 0;
        for (int i = 0; i < ni && i < 8 && v == HH_MORE; i++) {
            size_t used = 0;
            v = hh_feed(&c->hh, iov[i].iov_base, iov[i].iov_len, max, &used);
            step += used;
        }
        off += step;
        if (evbuffer_ptr_set(c->in, &pos, off, EVBUFFER_PTR_SET) != 0)
            break;
    }
    if (v == HH_MORE) {
        c->rx += (long long)len;
        /* Not complete: keep it from evhttp until it is (a slow head never
         * reaches evhttp's parser, and a bad one is refused whole). */
        if (!c->hold)
            c->hold = evbuffer_new();
        evbuffer_add_buffer(c->hold, c->in);
        return;
    }
    if (v == HH_BAD) {
        struct conn_guard *gg = c->g;
        unsigned long sup = 0;
        if (rate_ok(&gg->lr_head, &sup)) {
            char a[64], s[24];
            addr_text(c->addr, a, sizeof(a));
            snprintf(s, sizeof(s), "%lu", sup);
            log_kv(LOG_LEVEL_WARN, NULL, "http.bad_head", "request head refused", "peer", a,
                   "err", c->hh.why, "suppressed", s, NULL);
        }
        refuse_linger(c, c->hh.status, c->hh.status == 431 ? "Request Header Fields Too Large"
                                                           : "Bad Request",
                      c->hh.status == 431 ? 5005 : 5001, c->hh.why);
        return;
    }
    /* Complete and sound: evhttp gets the whole head at once. */
    c->rx += (long long)off;
    if (held) {
        evbuffer_prepend_buffer(c->in, c->hold);
        off += held;
    }
    head_done(c, off);
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    struct conn *c = arg;
    struct conn_guard *g = c->g;
    if (g->busy || info->n_added == 0)
        return;
    g->busy = true;
    switch (c->phase) {
    case PH_LINGER:
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
        break;
    case PH_IDLE:
    case PH_HEAD:
        scan_head(c);
        break;
    case PH_BODY:
        body_bytes(c, info->n_added);
        if (c->phase == PH_IDLE)
            scan_head(c); /* the next request, after a body read to its end */
        break;
    case PH_BUSY:
        /* Pipelined bytes: evhttp reads them after the reply, and they are
         * checked then (conn_request_done).  An upload keeps them aside. */
        if (c->spc)
            (void)spool_feed(c->spc);
        break;
    }
    g->busy = false;
}

/* ---- connections come and go ------------------------------------------------------ */

static void listeners_pause(struct conn_guard *g, int resume_ms);

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct conn *c = arg;
    struct conn_guard *g = c->g;
    if (c->req) {
        c->req->client_gone = true;
        c->req->conn = NULL;
        c->req = NULL;
    }
    if (c->spc) {
        spool_conn_closed(c->spc);
        spool_conn_free(c->spc);
        c->spc = NULL;
    }
    /* No callback of ours may run on the buffer while evhttp frees it. */
    evbuffer_remove_cb_entry(c->in, c->cbe);
    lru_remove(g, c);
    hash_remove(g, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    addr_put(g, c->addr);
    if (c->hold)
        evbuffer_free(c->hold);
    g->n--;
    free(c);
    if (g->paused && g->budget && g->n < g->budget)
        listeners_pause(g, 0); /* room again: accept at once */
}

/* Shed the oldest connection that has nothing in progress; false if none. */
static bool shed_one(struct conn_guard *g, const char *why)
{
    struct conn *v = g->lru_head;
    if (!v)
        return false;
    unsigned long sup = 0;
    if (rate_ok(&g->lr_shed, &sup)) {
        char n[16], s[24];
        snprintf(n, sizeof(n), "%d", g->n);
        snprintf(s, sizeof(s), "%lu", sup);
        log_kv(LOG_LEVEL_WARN, NULL, "http.shed", "closing the oldest idle connection", "why",
               why, "connections", n, "suppressed", s, NULL);
    }
    close_now(v);
    return true;
}

static void adopt(struct conn *c)
{
    struct conn_guard *g = c->g;
    void *arg = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, NULL, &arg);
    c->evcon = arg;
    c->adopted = c->evcon != NULL;
    if (!c->adopted)
        return;
    evhttp_connection_set_closecb(c->evcon, on_close, c);
    if ((c->phase == PH_HEAD || c->phase == PH_IDLE) && !c->req && !c->spc)
        lru_append(g, c);
    if (!g->tcp)
        return;
    c->addr = addr_get(g, evhttp_connection_get_addr(c->evcon));
    if (!c->addr)
        return;
    c->addr->n++;
    int cap = g->app->cfg->http_max_conns_per_addr;
    if (cap > 0 && c->addr->n > cap) {
        unsigned long sup = 0;
        if (rate_ok(&g->lr_refused, &sup)) {
            char a[64], n[16], s[24];
            addr_text(c->addr, a, sizeof(a));
            snprintf(n, sizeof(n), "%d", cap);
            snprintf(s, sizeof(s), "%lu", sup);
            log_kv(LOG_LEVEL_WARN, NULL, "http.conn_refused",
                   "too many connections from one address", "peer", a,
                   "http.max_conns_per_addr", n, "suppressed", s, NULL);
        }
        answer(c, 503, "Service Unavailable", 6004,
               "too many connections from this address (http.max_conns_per_addr); retry later",
               "Retry-After: 1\r\n");
        close_now(c);
    }
}

static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn_guard *g = arg;
    while (g->adopt_q) {
        struct conn *c = g->adopt_q;
        g->adopt_q = c->anext;
        c->anext = NULL;
        adopt(c);
    }
}

static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
    struct conn_guard *g = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        abort(); /* out of memory: evhttp would make an unguarded one */
    /* evhttp's read callback only when there is something for it: a head
     * held back or a body streamed by the spool leaves the buffer empty. */
    bufferevent_setwatermark(bev, EV_READ, 1, 0);
    struct conn *c = gw_xcalloc(1, sizeof(*c));
    c->g = g;
    c->bev = bev;
    c->in = bufferevent_get_input(bev);
    c->cbe = evbuffer_add_cb(c->in, on_input, c);
    head_start(c);
    c->phase = PH_HEAD; /* a fresh connection owes its head from now on */
    c->phase_ms = gw_now_mono_ms();
    c->next = g->all;
    if (g->all)
        g->all->prev = c;
    g->all = c;
    g->n++;
    hash_insert(g, c);
    c->anext = g->adopt_q;
    g->adopt_q = c;
    event_active(g->adopt_ev, EV_TIMEOUT, 0);
    if (g->budget && g->n > g->budget && !shed_one(g, "descriptor budget"))
        listeners_pause(g, -1); /* until a connection ends */
    return bev;
}

/* ---- deadlines ----------------------------------------------------------------------- */

static void timeout(struct conn *c, const char *what)
{
    struct conn_guard *g = c->g;
    unsigned long sup = 0;
    if (rate_ok(&g->lr_timeout, &sup)) {
        char a[64], s[24];
        addr_text(c->addr, a, sizeof(a));
        snprintf(s, sizeof(s), "%lu", sup);
        log_kv(LOG_LEVEL_INFO, NULL, "http.timeout", what, "peer", a, "suppressed", s, NULL);
    }
    /* A client that sent nothing yet is closed silently; one whose request
     * was answered already (a refused upload still sending) gets no
     * second answer. */
    if ((c->rx > 0 || c->phase == PH_BODY) && !c->replied)
        answer(c, 408, "Request Timeout", 6003, what, NULL);
    close_now(c);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn_guard *g = arg;
    const struct gw_cfg *cfg = g->app->cfg;
    long long now = gw_now_mono_ms();
    long long head_ms = cfg->http_header_timeout_s * 1000LL;
    long long body_ms = cfg->http_body_timeout_s * 1000LL;
    long long rate = cfg->http_body_min_rate;
    for (struct conn *c = g->all, *next; c; c = next) {
        next = c->next; /* c may be freed below */
        if (!c->adopted)
            continue;
        long long age = now - c->phase_ms;
        if (c->phase == PH_HEAD && age > head_ms) {
            timeout(c, c->rx > 0 ? "request head not complete within http.header_timeout_s"
                                 : "no request within http.header_timeout_s");
        } else if (c->phase == PH_BODY &&
                   age > body_ms + (rate > 0 ? c->rx * 1000 / rate : 0)) {
            timeout(c, "request body not complete within http.body_timeout_s (plus one "
                       "second per http.body_min_rate bytes)");
        } else if (c->phase == PH_LINGER && age > LINGER_MS) {
            close_now(c);
        }
    }
}

/* ---- listeners ----------------------------------------------------------------------- */

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    listeners_pause(arg, 0);
}

/* resume_ms 0: accept again now; > 0: pause that long; < 0: pause until a
 * connection ends. */
static void listeners_pause(struct conn_guard *g, int resume_ms)
{
    if (resume_ms == 0) {
        if (!g->paused)
            return;
        g->paused = false;
        event_del(g->resume_ev);
        for (int i = 0; i < g->nlev; i++)
            evconnlistener_enable(g->lev[i]);
        return;
    }
    if (!g->paused) {
        g->paused = true;
        for (int i = 0; i < g->nlev; i++)
            evconnlistener_disable(g->lev[i]);
    }
    /* A budget pause resumes when a connection closes; a timer too, in case
     * the connections that hold it are all busy for long. */
    struct timeval tv = {0, (resume_ms > 0 ? resume_ms : PAUSE_MS * 5) * 1000};
    event_add(g->resume_ev, &tv);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    struct conn_guard *g = NULL;
    for (size_t i = 0; i < GW_ARRAY_LEN(registry); i++)
        if (registry[i] && registry[i]->http == arg)
            g = registry[i];
    if (!g) {
        evconnlistener_disable(lev); /* cannot happen: never spin regardless */
        return;
    }
    unsigned long sup = 0;
    if (rate_ok(&g->lr_fd, &sup)) {
        char n[16], b[16], s[24];
        snprintf(n, sizeof(n), "%d", g->n);
        snprintf(b, sizeof(b), "%d", g->budget);
        snprintf(s, sizeof(s), "%lu", sup);
        log_kv(LOG_LEVEL_WARN, NULL, "http.descriptors",
               err == EMFILE || err == ENFILE
                   ? "out of file descriptors: accept paused, oldest idle connections shed"
                   : "accept failed: paused",
               "err", strerror(err), "connections", n, "budget", b, "suppressed", s, NULL);
    }
    int shed = 0;
    if (err == EMFILE || err == ENFILE)
        while (shed < SHED_BATCH && shed_one(g, "out of file descriptors"))
            shed++;
    if (shed == 0)
        listeners_pause(g, PAUSE_MS); /* the pending connections wait in the backlog */
}

void conn_guard_watch(struct conn_guard *g, struct evconnlistener *lev)
{
    if (!lev || g->nlev >= MAX_LISTENERS)
        return;
    if (g->nlev % 16 == 0)
        g->lev = gw_xrealloc(g->lev, (size_t)(g->nlev + 16) * sizeof(*g->lev));
    g->lev[g->nlev++] = lev;
    evconnlistener_set_error_cb(lev, on_accept_error);
    if (g->paused)
        evconnlistener_disable(lev);
}

void conn_guard_unwatch(struct conn_guard *g, struct evconnlistener *lev)
{
    for (int i = 0; i < g->nlev; i++)
        if (g->lev[i] == lev) {
            g->lev[i] = g->lev[--g->nlev];
            return;
        }
}

/* ---- the guard ------------------------------------------------------------------------ */

/* Connections allowed at once: the descriptor limit less a reserve for the
 * database pool, libcurl, files, task sockets and the loop itself. */
static int budget_of_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    long long cur = (long long)rl.rlim_cur;
    long long reserve = cur / 8;
    if (reserve < 32)
        reserve = 32;
    if (reserve > 1024)
        reserve = 1024;
    long long b = cur - reserve;
    if (b < 8)
        b = 8;
    return b > 1000000 ? 1000000 : (int)b;
}

struct conn_guard *conn_guard_new(struct gw_app *app, struct evhttp *http, bool tcp)
{
    struct conn_guard *g = gw_xcalloc(1, sizeof(*g));
    g->app = app;
    g->http = http;
    g->tcp = tcp;
    g->hsize = 256;
    g->hash = gw_xcalloc(g->hsize, sizeof(*g->hash));
    g->adopt_ev = event_new(app->base, -1, 0, on_adopt, g);
    g->sweep_ev = event_new(app->base, -1, EV_PERSIST, on_sweep, g);
    g->resume_ev = evtimer_new(app->base, on_resume, g);
    struct timeval sec = {1, 0};
    event_add(g->sweep_ev, &sec);
    g->budget = tcp ? budget_of_limit() : 0;
    for (size_t i = 0; i < GW_ARRAY_LEN(registry); i++)
        if (!registry[i]) {
            registry[i] = g;
            break;
        }
    evhttp_set_bevcb(http, bevcb, g);
    return g;
}

void conn_guard_free(struct conn_guard *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < GW_ARRAY_LEN(registry); i++)
        if (registry[i] == g)
            registry[i] = NULL;
    /* evhttp_free ended every connection (each ran on_close); whatever is
     * left never got that far. */
    while (g->all) {
        struct conn *c = g->all;
        g->all = c->next;
        spool_conn_free(c->spc);
        if (c->hold)
            evbuffer_free(c->hold);
        free(c);
    }
    for (size_t i = 0; i < ADDR_BUCKETS; i++)
        while (g->addrs[i]) {
            struct addr_slot *s = g->addrs[i];
            g->addrs[i] = s->next;
            free(s);
        }
    event_free(g->adopt_ev);
    event_free(g->sweep_ev);
    event_free(g->resume_ev);
    free(g->lev);
    free(g->hash);
    free(g);
}

void conn_guard_set_spool(struct conn_guard *g, struct spool *sp) { g->spool = sp; }

struct conn *conn_find(struct conn_guard *g, struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev)
        return NULL;
    for (struct conn *c = g->hash[hash_of(g, bev)]; c; c = c->hnext)
        if (c->bev == bev)
            return c;
    return NULL;
}

void conn_request_start(struct conn *c, struct gw_req *req)
{
    if (!c)
        return;
    if (!c->adopted)
        on_adopt(-1, 0, c->g); /* cannot happen (adoption precedes reads); be safe */
    c->req = req;
    req->conn = c;
    /* A chunked body ends here; a streamed upload's body goes on. */
    if (c->phase == PH_BODY && !c->spc)
        set_phase(c, PH_BUSY);
    else if (c->phase == PH_HEAD || c->phase == PH_IDLE)
        set_phase(c, PH_BUSY);
    else
        lru_remove(c->g, c);
}

void conn_request_detach(struct conn *c)
{
    if (!c || !c->req)
        return;
    c->req->conn = NULL;
    c->req = NULL;
}

void conn_request_done(struct conn *c)
{
    if (!c)
        return;
    struct conn_guard *g = c->g;
    conn_request_detach(c);
    if (c->phase == PH_LINGER)
        return;
    if (c->spc) {
        g->busy = true; /* the stash goes back: not a new arrival */
        bool finished = spool_reply_sent(c->spc);
        g->busy = false;
        if (!finished) {
            c->replied = true; /* the body is still coming: read and dropped */
            return;
        }
        spool_conn_free(c->spc);
        c->spc = NULL;
    }
    head_start(c);
    set_phase(c, PH_IDLE);
    /* Bytes of a pipelined request: check them before evhttp reads on. */
    if (evbuffer_get_length(c->in) > 0) {
        g->busy = true;
        scan_head(c);
        g->busy = false;
    }
}

struct spool_conn *conn_spool(const struct conn *c) { return c ? c->spc : NULL; }

int conn_guard_count(const struct conn_guard *g) { return g->n; }

int conn_guard_budget(const struct conn_guard *g) { return g->budget; }
