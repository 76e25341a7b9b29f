/* test_httpc.c - the async HTTP client against a real in-process evhttp
 * server on 127.0.0.1 and on a unix socket, one event loop for both. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gateway/err.h"
#include "gateway/httpc.h"

struct fx {
    struct event_base *base;
    struct evhttp *http;
    struct httpc *hc;
    int port;
    char sockdir[64];
    char sockpath[128];
    int fail_count; /* /flaky answers 503 this many times */
    struct evhttp_request *held; /* /hang never answers */
};

struct got {
    int calls;
    struct httpc_resp r;
    char body[4096];
    char errmsg[256];
    char cap[256];
    bool has_cap;
};

static void on_request(struct evhttp_request *req, void *arg)
{
    struct fx *f = arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *out = evbuffer_new();
    if (strncmp(uri, "/hang", 5) == 0) {
        f->held = req; /* answered at teardown */
        evbuffer_free(out);
        return;
    }
    if (strncmp(uri, "/cap", 4) == 0) {
        /* the failed attempt names one value, the answer another */
        struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
        if (f->fail_count > 0) {
            f->fail_count--;
            evhttp_add_header(oh, "x-cap", "stale");
            evhttp_send_reply(req, 503, "busy", out);
        } else {
            evhttp_add_header(oh, "X-Cap-Other", "no");
            if (strncmp(uri, "/capgone", 8) != 0)
                evhttp_add_header(oh, "X-CAP", "  fresh value\t");
            evhttp_send_reply(req, 200, "OK", out);
        }
        evbuffer_free(out);
        return;
    }
    if (strncmp(uri, "/flaky", 6) == 0 && f->fail_count > 0) {
        f->fail_count--;
        evhttp_send_reply(req, 503, "busy", out);
        evbuffer_free(out);
        return;
    }
    if (strncmp(uri, "/big", 4) == 0) {
        char chunk[1024];
        memset(chunk, 'x', sizeof(chunk));
        for (int i = 0; i < 200; i++)
            evbuffer_add(out, chunk, sizeof(chunk));
        evhttp_send_reply(req, 200, "OK", out);
        evbuffer_free(out);
        return;
    }
    /* echo: METHOD|x-test header|body */
    const char *m = "OTHER";
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET: m = "GET"; break;
    case EVHTTP_REQ_POST: m = "POST"; break;
    case EVHTTP_REQ_DELETE: m = "DELETE"; break;
    default: break;
    }
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "x-test");
    evbuffer_add_printf(out, "%s|%s|", m, h ? h : "");
    evbuffer_add_buffer(out, evhttp_request_get_input_buffer(req));
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    f->http = evhttp_new(f->base);
    evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(f->http, on_request, f);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
    assert_non_null(bs);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl);
    f->port = ntohs(sa.sin_port);
    /* the same server on a unix socket */
    snprintf(f->sockdir, sizeof(f->sockdir), "/tmp/httpc-XXXXXX");
    assert_non_null(mkdtemp(f->sockdir));
    snprintf(f->sockpath, sizeof(f->sockpath), "%s/s.sock", f->sockdir);
    struct sockaddr_un su;
    memset(&su, 0, sizeof(su));
    su.sun_family = AF_UNIX;
    assert_true(strlen(f->sockpath) < sizeof(su.sun_path));
    memcpy(su.sun_path, f->sockpath, strlen(f->sockpath) + 1);
    struct evconnlistener *l = evconnlistener_new_bind(
        f->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
        (struct sockaddr *)&su, sizeof(su));
    assert_non_null(l);
    assert_non_null(evhttp_bind_listener(f->http, l));
    f->hc = httpc_new(f->base);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->held)
        evhttp_send_reply(f->held, 200, "late", NULL);
    httpc_free(f->hc);
    evhttp_free(f->http);
    event_base_free(f->base);
    unlink(f->sockpath);
    rmdir(f->sockdir);
    free(f);
    return 0;
}

static void done_cb(void *arg, const struct httpc_resp *r)
{
    struct got *g = arg;
    g->calls++;
    g->r = *r;
    snprintf(g->body, sizeof(g->body), "%.*s", (int)r->body_len, r->body);
    snprintf(g->errmsg, sizeof(g->errmsg), "%s", r->errmsg ? r->errmsg : "");
    g->has_cap = r->captured != NULL;
    snprintf(g->cap, sizeof(g->cap), "%s", r->captured ? r->captured : "");
    g->r.captured = NULL;
    g->r.body = NULL; /* borrowed: gone after the callback */
    g->r.errmsg = NULL;
}

/* Run the loop until *calls reaches want, or 10 s pass. */
static void run_turns(struct fx *f, int *calls, int want, int turns)
{
    for (int i = 0; i < turns && *calls < want; i++) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(f->base, &tv);
        event_base_dispatch(f->base);
    }
}

static void run_until(struct fx *f, int *calls, int want) { run_turns(f, calls, want, 1000); }

static char *url(struct fx *f, const char *path)
{
    static char u[256];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d%s", f->port, path);
    return u;
}

static void test_get_post_delete(void **state)
{
    struct fx *f = *state;
    struct got g = {0};
    const char *hdrs[] = {"x-test: hello", NULL};
    struct httpc_opts o = {.url = url(f, "/echo"), .headers = hdrs};
    assert_int_equal(httpc_send(f->hc, &o, done_cb, &g, NULL), 0);
    assert_int_equal(g.calls, 0); /* never inside send */
    run_until(f, &g.calls, 1);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.err, 0);
    assert_int_equal(g.r.status, 200);
    assert_string_equal(g.body, "GET|hello|");

    struct got p = {0};
    struct httpc_opts po = {.url = url(f, "/echo"), .body = "{\"a\":1}", .body_len = 7};
    assert_int_equal(httpc_send(f->hc, &po, done_cb, &p, NULL), 0);
    run_until(f, &p.calls, 1);
    assert_string_equal(p.body, "POST||{\"a\":1}");

    struct got d = {0};
    struct httpc_opts dopt = {.url = url(f, "/echo"), .method = "DELETE"};
    assert_int_equal(httpc_send(f->hc, &dopt, done_cb, &d, NULL), 0);
    run_until(f, &d.calls, 1);
    assert_string_equal(d.body, "DELETE||");
    assert_int_equal(httpc_inflight(f->hc), 0);
}

static void test_unix_socket(void **state)
{
    struct fx *f = *state;
    struct got g = {0};
    struct httpc_opts o = {.url = "http://localhost/echo", .unix_socket = f->sockpath,
                           .body = "x", .body_len = 1};
    assert_int_equal(httpc_send(f->hc, &o, done_cb, &g, NULL), 0);
    run_until(f, &g.calls, 1);
    assert_int_equal(g.r.err, 0);
    assert_string_equal(g.body, "POST||x");
}

static void test_cap_and_timeout(void **state)
{
    struct fx *f = *state;
    struct got g = {0};
    struct httpc_opts o = {.url = url(f, "/big"), .resp_max = 10000};
    assert_int_equal(httpc_send(f->hc, &o, done_cb, &g, NULL), 0);
    run_until(f, &g.calls, 1);
    assert_int_equal(g.r.err, GW_ETOOBIG);

    struct got t = {0};
    struct httpc_opts to = {.url = url(f, "/hang"), .timeout_ms = 300};
    assert_int_equal(httpc_send(f->hc, &to, done_cb, &t, NULL), 0);
    run_until(f, &t.calls, 1);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.r.err, GW_ETIMEOUT);
}

static void test_refused_with_retries(void **state)
{
    struct fx *f = *state;
    /* a port that was just free: bind, read it, close */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&sa, sizeof(sa));
    socklen_t sl = sizeof(sa);
    getsockname(s, (struct sockaddr *)&sa, &sl);
    close(s);
    char u[128];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", ntohs(sa.sin_port));
    struct got g = {0};
    struct httpc_opts o = {.url = u, .retries = 2, .backoff_ms = 20};
    assert_int_equal(httpc_send(f->hc, &o, done_cb, &g, NULL), 0);
    run_until(f, &g.calls, 1);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.r.err, GW_EPEER);
    assert_int_equal(g.r.attempts, 3);
    assert_true(strlen(g.errmsg) > 0); /* curl's reason reaches the caller */
}

static void test_retry_on_5xx(void **state)
{
    struct fx *f = *state;
    f->fail_count = 2;
    struct got g = {0};
    struct httpc_opts o = {.url = url(f, "/flaky"), .retries = 3, .backoff_ms = 10,
                           .retry_on_5xx = true};
    assert_int_equal(httpc_send(f->hc, &o, done_cb, &g, NULL), 0);
    run_until(f, &g.calls, 1);
    assert_int_equal(g.r.status, 200);
    assert_int_equal(g.r.attempts, 3);
    /* without retry_on_5xx a 503 is an answer, not a failure */
    f->fail_count = 1;
    struct got h = {0};
    struct httpc_opts ho = {.url = url(f, "/flaky"), .retries = 3};
    assert_int_equal(httpc_send(f->hc, &ho, done_cb, &h, NULL), 0);
    run_until(f, &h.calls, 1);
    assert_int_equal(h.r.err, 0);
    assert_int_equal(h.r.status, 503);
    assert_int_equal(h.r.attempts, 1);
}

/* capture_header: case-insensitive, trimmed, the last response's only */
static void test_capture_header(void **state)
{
    struct fx *f = *state;
    f->fail_count = 1;
    struct got g = {0};
    struct httpc_opts o = {.url = url(f, "/cap"), .retries = 2, .backoff_ms = 10,
                           .retry_on_5xx = true, .capture_header = "x-cap"};
    assert_int_equal(httpc_send(f->hc, &o, done_cb, &g, NULL), 0);
    run_until(f, &g.calls, 1);
    assert_int_equal(g.r.status, 200);
    assert_int_equal(g.r.attempts, 2);
    assert_true(g.has_cap);
    assert_string_equal(g.cap, "fresh value");
    /* an answer without it: NULL, also when the failed attempt had it */
    f->fail_count = 1;
    struct got h = {0};
    struct httpc_opts ho = {.url = url(f, "/capgone"), .retries = 2, .backoff_ms = 10,
                            .retry_on_5xx = true, .capture_header = "x-cap"};
    assert_int_equal(httpc_send(f->hc, &ho, done_cb, &h, NULL), 0);
    run_until(f, &h.calls, 1);
    assert_int_equal(h.r.status, 200);
    assert_int_equal(h.r.attempts, 2);
    assert_false(h.has_cap);
    struct got k = {0};
    struct httpc_opts ko = {.url = url(f, "/echo"), .capture_header = "x-cap"};
    assert_int_equal(httpc_send(f->hc, &ko, done_cb, &k, NULL), 0);
    run_until(f, &k.calls, 1);
    assert_false(k.has_cap);
}

static void test_cancel(void **state)
{
    struct fx *f = *state;
    struct got g = {0};
    struct httpc_req *req = NULL;
    struct httpc_opts o = {.url = url(f, "/echo")};
    assert_int_equal(httpc_send(f->hc, &o, done_cb, &g, &req), 0);
    httpc_cancel(req);
    int dummy = 0;
    run_turns(f, &dummy, 1, 30); /* ~300 ms of loop turns: nothing may arrive */
    assert_int_equal(g.calls, 0);
    assert_int_equal(httpc_inflight(f->hc), 0);
    /* bad options are refused without a callback */
    struct httpc_opts bad = {.url = "ftp://127.0.0.1/x"};
    assert_int_equal(httpc_send(f->hc, &bad, done_cb, &g, NULL), GW_EINVAL);
    assert_int_equal(httpc_send(f->hc, NULL, done_cb, &g, NULL), GW_EINVAL);
    assert_int_equal(g.calls, 0);
}

static int total_calls;
static void count_cb(void *arg, const struct httpc_resp *r)
{
    int *n = arg;
    (*n)++;
    if (r->err == 0 && r->status == 200)
        total_calls++;
}

static void test_many_concurrent(void **state)
{
    struct fx *f = *state;
    enum { N = 200 };
    int counts[N] = {0};
    total_calls = 0;
    struct httpc_opts o = {.url = url(f, "/echo")};
    for (int i = 0; i < N; i++)
        assert_int_equal(httpc_send(f->hc, &o, count_cb, &counts[i], NULL), 0);
    int seen = 0;
    for (int k = 0; k < 1000 && seen < N; k++) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(f->base, &tv);
        event_base_dispatch(f->base);
        seen = 0;
        for (int i = 0; i < N; i++)
            seen += counts[i];
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(counts[i], 1); /* each exactly once */
    assert_int_equal(total_calls, N);
}

struct stream {
    size_t bytes;
    int chunks;
};

static bool on_data(void *arg, const char *buf, size_t len)
{
    (void)buf;
    struct got *g = arg;
    struct stream *s = (struct stream *)(g + 1);
    s->bytes += len;
    s->chunks++;
    return true;
}

static void test_streaming(void **state)
{
    struct fx *f = *state;
    struct {
        struct got g;
        struct stream s;
    } st;
    memset(&st, 0, sizeof(st));
    struct httpc_opts o = {.url = url(f, "/big"), .on_data = on_data, .resp_max = 100};
    assert_int_equal(httpc_send(f->hc, &o, done_cb, &st.g, NULL), 0);
    run_until(f, &st.g.calls, 1);
    assert_int_equal(st.g.r.err, 0); /* the cap applies to buffered bodies only */
    assert_int_equal(st.s.bytes, 200 * 1024);
    assert_true(st.s.chunks >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_post_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_with_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_on_5xx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streaming, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
