/*
 * httpc.c - libcurl multi driven by libevent (the hiperfifo pattern).
 *
 * Each request owns one easy handle for its whole life, including retries:
 * on a retryable failure the handle is removed from the multi, a backoff
 * timer runs, and the same handle is added again.  Completions found by
 * curl_multi_info_read are never delivered from inside curl; they are
 * queued and delivered from a zero-timeout event, so a callback may freely
 * start or cancel other requests.
 */
#include "httpc.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "err.h"

#define HTTPC_DEFAULT_MAX (16u * 1024 * 1024)

struct httpc {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;   /* curl's single timeout */
    struct event *deliver; /* zero-timeout: runs finished callbacks */
    struct httpc_req *reqs; /* every live request */
    int n;
    bool in_curl; /* inside curl_multi_socket_action */
};

struct httpc_req {
    struct httpc *hc;
    struct httpc_req *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    char *resp;
    size_t resp_len, resp_cap, resp_max;
    bool too_big;
    bool stream_stop;
    bool (*on_data)(void *arg, const char *buf, size_t len);
    void (*on_headers)(void *arg, long status);
    struct event *hdr_ev; /* defers on_headers out of curl */
    long hdr_status;
    bool hdr_fired;
    char *cap_name;       /* opts.capture_header */
    char captured[256];
    bool has_captured;
    httpc_done_cb done;
    void *arg;
    int retries_left;
    int attempts;
    long backoff_ms;
    bool retry_on_5xx;
    struct event *retry_timer;
    long long started_us;
    bool in_multi;
    bool finished; /* waiting in the delivery queue */
    struct httpc_resp result;
    char errbuf[CURL_ERROR_SIZE];
};

struct sock_ctx {
    struct event *ev;
    curl_socket_t fd;
    struct httpc *hc;
};

static void check_done(struct httpc *hc);

static void req_unlink(struct httpc *hc, struct httpc_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (hc->reqs == r)
        hc->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    hc->n--;
}

static void req_free(struct httpc_req *r)
{
    if (r->in_multi)
        curl_multi_remove_handle(r->hc->multi, r->easy);
    if (r->retry_timer)
        event_free(r->retry_timer);
    if (r->hdr_ev)
        event_free(r->hdr_ev);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r->resp);
    free(r->cap_name);
    free(r);
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct httpc *hc = arg;
    int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    hc->in_curl = true;
    curl_multi_socket_action(hc->multi, fd, action, &running);
    hc->in_curl = false;
    check_done(hc);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct httpc *hc = arg;
    int running;
    hc->in_curl = true;
    curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    hc->in_curl = false;
    check_done(hc);
}

static int cb_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    struct httpc *hc = userp;
    struct sock_ctx *sc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            event_free(sc->ev);
            free(sc);
            curl_multi_assign(hc->multi, s, NULL);
        }
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (!sc) {
        sc = gw_xcalloc(1, sizeof(*sc));
        sc->fd = s;
        sc->hc = hc;
        sc->ev = event_new(hc->base, s, kind, on_socket_event, hc);
        if (!sc->ev)
            abort();
        curl_multi_assign(hc->multi, s, sc);
    } else {
        event_del(sc->ev);
        event_assign(sc->ev, hc->base, s, kind, on_socket_event, hc);
    }
    event_add(sc->ev, NULL);
    return 0;
}

static int cb_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    struct httpc *hc = userp;
    if (timeout_ms < 0) {
        evtimer_del(hc->timer);
    } else {
        /* 0 means "as soon as possible": the next loop turn, never re-enter curl here */
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(hc->timer, &tv);
    }
    return 0;
}

static size_t cb_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct httpc_req *r = userp;
    size_t n = size * nmemb;
    if (r->on_data) {
        if (!r->on_data(r->arg, data, n)) {
            r->stream_stop = true;
            return 0; /* abort the transfer; done still fires */
        }
        return n;
    }
    if (r->resp_len + n > r->resp_max) {
        r->too_big = true;
        return 0;
    }
    if (r->resp_len + n + 1 > r->resp_cap) {
        size_t nc = r->resp_cap ? r->resp_cap : 4096;
        while (nc < r->resp_len + n + 1)
            nc *= 2;
        r->resp = gw_xrealloc(r->resp, nc);
        r->resp_cap = nc;
    }
    memcpy(r->resp + r->resp_len, data, n);
    r->resp_len += n;
    r->resp[r->resp_len] = '\0';
    return n;
}

static void on_headers_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct httpc_req *r = arg;
    if (!r->finished && r->on_headers)
        r->on_headers(r->arg, r->hdr_status);
}

/* Header lines arrive one by one; the blank line ends the block.  Interim
 * 1xx blocks are skipped. */
static size_t cb_header(char *data, size_t size, size_t nmemb, void *userp)
{
    struct httpc_req *r = userp;
    size_t n = size * nmemb;
    if (r->cap_name) {
        size_t cl = strlen(r->cap_name);
        if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
            r->has_captured = false; /* a new response (a retry): its own headers */
        } else if (n > cl && data[cl] == ':' && strncasecmp(data, r->cap_name, cl) == 0) {
            const char *v = data + cl + 1, *e = data + n;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            size_t vl = (size_t)(e - v);
            if (vl < sizeof(r->captured)) {
                memcpy(r->captured, v, vl);
                r->captured[vl] = '\0';
                r->has_captured = true;
            }
        }
    }
    if (r->hdr_ev && !r->hdr_fired && (n == 2 && data[0] == '\r' && data[1] == '\n')) {
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            r->hdr_fired = true;
            r->hdr_status = status;
            event_active(r->hdr_ev, 0, 0);
        }
    }
    return n;
}

static void deliver_one(struct httpc_req *r)
{
    struct httpc *hc = r->hc;
    req_unlink(hc, r);
    r->result.body = r->resp ? r->resp : "";
    r->result.captured = r->has_captured ? r->captured : NULL;
    r->result.body_len = r->resp_len;
    r->result.attempts = r->attempts;
    r->result.dur_us = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->result.dur_us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - r->started_us;
    httpc_done_cb done = r->done;
    void *arg = r->arg;
    struct httpc_resp res = r->result;
    done(arg, &res);
    req_free(r);
}

/* Deliver finished requests from the loop, outside curl. */
static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct httpc *hc = arg;
    for (;;) {
        struct httpc_req *r;
        for (r = hc->reqs; r && !r->finished; r = r->next)
            ;
        if (!r)
            break;
        deliver_one(r);
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct httpc_req *r = arg;
    r->resp_len = 0;
    if (r->resp)
        r->resp[0] = '\0';
    r->too_big = false;
    r->errbuf[0] = '\0';
    r->attempts++;
    if (curl_multi_add_handle(r->hc->multi, r->easy) == CURLM_OK) {
        r->in_multi = true;
    } else {
        r->result.err = GW_EPEER;
        r->result.errmsg = "cannot restart transfer";
        r->finished = true;
        event_active(r->hc->deliver, 0, 0);
    }
}

static void finish(struct httpc_req *r, CURLcode code)
{
    struct httpc *hc = r->hc;
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(hc->multi, r->easy);
    r->in_multi = false;
    int err = 0;
    if (r->too_big)
        err = GW_ETOOBIG;
    else if (code == CURLE_OK || (r->stream_stop && code == CURLE_WRITE_ERROR))
        err = 0;
    else if (code == CURLE_OPERATION_TIMEDOUT)
        err = GW_ETIMEOUT;
    else
        err = GW_EPEER;
    bool retryable = (err == GW_EPEER || err == GW_ETIMEOUT) ||
                     (err == 0 && r->retry_on_5xx && status >= 500);
    if (retryable && r->retries_left > 0 && !r->on_data) {
        r->retries_left--;
        struct timeval tv = {r->backoff_ms / 1000, (r->backoff_ms % 1000) * 1000};
        r->backoff_ms *= 2;
        if (!r->retry_timer)
            r->retry_timer = evtimer_new(hc->base, on_retry, r);
        evtimer_add(r->retry_timer, &tv);
        return;
    }
    r->result.err = err;
    r->result.curl_code = (int)code;
    r->result.status = status;
    if (err == GW_ETOOBIG)
        r->result.errmsg = "response larger than the configured cap";
    else if (err)
        r->result.errmsg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
    else
        r->result.errmsg = "";
    r->finished = true;
    event_active(hc->deliver, 0, 0);
}

static void check_done(struct httpc *hc)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(hc->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct httpc_req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode code = msg->data.result;
        if (r)
            finish(r, code);
    }
}

struct httpc *httpc_new(struct event_base *base)
{
    /* curl_global_init is reference-counted; main also calls it before
     * anything else runs, which is when it must happen (not thread-safe). */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct httpc *hc = gw_xcalloc(1, sizeof(*hc));
    hc->base = base;
    hc->multi = curl_multi_init();
    if (!hc->multi)
        abort();
    hc->timer = evtimer_new(base, on_timer, hc);
    hc->deliver = event_new(base, -1, 0, on_deliver, hc);
    if (!hc->timer || !hc->deliver)
        abort();
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, cb_socket);
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, cb_timer);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc);
    curl_multi_setopt(hc->multi, CURLMOPT_MAXCONNECTS, 64L);
    return hc;
}

void httpc_free(struct httpc *hc)
{
    if (!hc)
        return;
    while (hc->reqs) {
        struct httpc_req *r = hc->reqs;
        req_unlink(hc, r);
        req_free(r);
    }
    curl_multi_cleanup(hc->multi); /* frees the socket contexts through cb_socket */
    event_free(hc->timer);
    event_free(hc->deliver);
    free(hc);
    curl_global_cleanup();
}

int httpc_send(struct httpc *hc, const struct httpc_opts *o, httpc_done_cb done, void *arg,
               struct httpc_req **out)
{
    if (!hc || !o || !o->url || !done)
        return GW_EINVAL;
    if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)
        return GW_EINVAL;
    struct httpc_req *r = gw_xcalloc(1, sizeof(*r));
    r->hc = hc;
    r->easy = curl_easy_init();
    if (!r->easy)
        abort();
    r->done = done;
    r->arg = arg;
    r->on_data = o->on_data;
    r->on_headers = o->on_headers;
    r->resp_max = o->resp_max ? o->resp_max : HTTPC_DEFAULT_MAX;
    r->retries_left = o->retries > 0 ? o->retries : 0;
    r->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 100;
    r->retry_on_5xx = o->retry_on_5xx;
    r->attempts = 1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->started_us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;

    CURL *e = r->easy;
    long timeout = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    long ctimeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : (timeout < 5000 ? timeout : 5000);
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ctimeout);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, cb_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (o->on_headers) {
        r->hdr_ev = event_new(hc->base, -1, 0, on_headers_event, r);
        if (!r->hdr_ev)
            abort();
    }
    if (o->capture_header)
        r->cap_name = gw_xstrdup(o->capture_header);
    if (o->on_headers || o->capture_header) {
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, cb_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    }
    if (o->unix_socket)
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, o->unix_socket);
    if (o->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    if (o->cert_file)
        curl_easy_setopt(e, CURLOPT_SSLCERT, o->cert_file);
    if (o->key_file)
        curl_easy_setopt(e, CURLOPT_SSLKEY, o->key_file);

    r->headers = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; o->headers && o->headers[i]; i++)
        r->headers = curl_slist_append(r->headers, o->headers[i]);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);

    const char *method = o->method ? o->method : (o->body ? "POST" : "GET");
    if (o->body && o->body_borrow) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body);
    } else if (o->body) {
        r->body = gw_xmalloc(o->body_len + 1);
        memcpy(r->body, o->body, o->body_len);
        r->body[o->body_len] = '\0';
        r->body_len = o->body_len;
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    if (strcmp(method, "GET") == 0 && !o->body)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);

    /* link before adding: curl may call back into cb_socket/cb_timer at once */
    r->next = hc->reqs;
    if (hc->reqs)
        hc->reqs->prev = r;
    hc->reqs = r;
    hc->n++;
    if (curl_multi_add_handle(hc->multi, e) != CURLM_OK) {
        req_unlink(hc, r);
        req_free(r);
        return GW_EINVAL;
    }
    r->in_multi = true;
    if (out)
        *out = r;
    return 0;
}

void httpc_cancel(struct httpc_req *r)
{
    if (!r)
        return;
    struct httpc *hc = r->hc;
    req_unlink(hc, r);
    req_free(r);
}

int httpc_inflight(const struct httpc *hc) { return hc->n; }
