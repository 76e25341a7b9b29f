/*
 * httpc.h - the gateway's only way to make outgoing HTTP calls.
 *
 * One libcurl multi handle driven by libevent (socket callbacks create one
 * event per socket, the timer callback arms one evtimer; the pattern of
 * curl's docs/examples/hiperfifo.c).  Works for TCP peers and for a unix
 * socket (the Docker engine).  Loop-thread only.
 *
 * Contract: httpc_send() returns 0 and later calls done exactly once, never
 * from inside httpc_send(); or returns an error and never calls done.
 * httpc_cancel() guarantees done is not called.
 */
#ifndef GW_GATEWAY_HTTPC_H
#define GW_GATEWAY_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#include "compat.h"

struct event_base;
struct httpc;
struct httpc_req;

/* Outcome of one transfer. Borrowed by the callback; valid only during it. */
struct httpc_resp {
    int err;             /* 0, or GW_ETIMEOUT / GW_ETOOBIG / GW_EPEER (transport failure) */
    int curl_code;       /* CURLcode, 0 on success */
    const char *errmsg;  /* curl's text when err != 0, else "" */
    long status;         /* HTTP status, 0 when no response */
    const char *body;    /* NUL-terminated response body (may contain NULs before len) */
    size_t body_len;
    long long dur_us;    /* wall time of the transfer */
    int attempts;        /* 1 + retries used */
    const char *captured; /* opts.capture_header's value, or NULL if absent */
};

typedef void (*httpc_done_cb)(void *arg, const struct httpc_resp *resp);

/* Options of one request; strings are copied by httpc_send(). */
struct httpc_opts {
    const char *method;      /* "GET", "POST", "DELETE"...; NULL = GET, or POST with a body */
    const char *url;         /* full URL; for unix sockets the host part is ignored */
    const char *unix_socket; /* path, or NULL for TCP */
    const char *const *headers; /* NULL-terminated "Name: value" lines, may be NULL */
    const char *body;        /* request body or NULL */
    size_t body_len;
    bool body_borrow;        /* body is not copied: it must stay valid until done runs or the
                              * request is cancelled (large transport messages) */
    long timeout_ms;         /* whole transfer per attempt; 0 = 30000 */
    long connect_timeout_ms; /* 0 = min(timeout_ms, 5000) */
    size_t resp_max;         /* response body cap; 0 = 16 MiB; over it -> GW_ETOOBIG */
    int retries;             /* extra attempts on transport failure or 5xx (not on 4xx) */
    long backoff_ms;         /* first retry delay, doubled each time; 0 = 100 */
    bool retry_on_5xx;       /* also retry when the status is >= 500 */
    /* TLS (peers over https): file paths, NULL = system defaults */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    /* Streaming: if set, called for each chunk of the body instead of
     * buffering it (for the Docker /events stream and logs); return false to
     * abort the transfer.  The done callback still fires at the end. */
    bool (*on_data)(void *arg, const char *buf, size_t len);
    /* If set, called once from the loop (never from inside curl) when the
     * status line and headers of a 2xx response have arrived, before the
     * body: for long polls whose registration matters (Docker's wait). */
    void (*on_headers)(void *arg, long status);
    /* If set, the value of this response header (the last response's, up to
     * 255 bytes, trimmed) is handed to done as resp->captured. */
    const char *capture_header;
};

/** Create the client on base.  Never NULL. Free with httpc_free(). */
struct httpc *httpc_new(struct event_base *base);

/** Cancel every transfer (no callbacks) and free (NULL-safe). */
void httpc_free(struct httpc *hc);

/**
 * Start a request.  On success returns 0 and, if out is not NULL, stores a
 * handle usable with httpc_cancel() until done fires.  Errors: GW_EINVAL
 * (bad options).
 */
int httpc_send(struct httpc *hc, const struct httpc_opts *opts, httpc_done_cb done, void *arg,
               struct httpc_req **out) GW_MUSTCHECK;

/** Abort a request; its callback will not run.  NULL-safe. */
void httpc_cancel(struct httpc_req *req);

/** Number of requests in flight (including those waiting to retry). */
int httpc_inflight(const struct httpc *hc);

#endif
