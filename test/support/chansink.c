/*
 * chansink.c - the baseline of the transport benchmarks: a bare libevent
 * HTTP server on loopback that reads each request body and answers 200
 * with two bytes.  What one plain HTTP hop costs, measured in the same run
 * as the gateway path.
 *
 *   chansink PORT
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>

static void on_req(struct evhttp_request *r, void *arg)
{
    (void)arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(r);
    evbuffer_drain(in, evbuffer_get_length(in));
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "ok", 2);
    evhttp_send_reply(r, 200, "OK", b);
    evbuffer_free(b);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    struct event_base *base = event_base_new();
    struct evhttp *h = evhttp_new(base);
    evhttp_set_max_body_size(h, 256 * 1024 * 1024);
    evhttp_set_gencb(h, on_req, NULL);
    if (evhttp_bind_socket(h, "127.0.0.1", (ev_uint16_t)atoi(argv[1])) != 0) {
        fprintf(stderr, "chansink: cannot listen on %s\n", argv[1]);
        return 1;
    }
    event_base_dispatch(base);
    return 0;
}
