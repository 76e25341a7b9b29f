/*
 * spool.h - multipart uploads streamed to disk as they arrive.
 *
 * libevent 2.1's evhttp reads a whole request body into memory before the
 * handler runs and offers no per-request hook before the body (that came
 * with 2.2).  So every connection's input buffer gets a callback (the
 * bufferevent comes from evhttp_set_bevcb) that looks at the first bytes of
 * each request.  One request shape is taken over: a POST to
 * /v2/component/upload/file with a Content-Length within upload.max and a
 * multipart/form-data boundary.  Its head goes on to evhttp with
 * "Content-Length: 0", so the handler runs at once, while the body is taken
 * from the input buffer as it arrives, before evhttp sees it: the form fields
 * are kept (64 KiB each at most), the file part is written to
 * <storage>/.spool/<random> with its SHA-256 computed on the way, and memory
 * stays flat whatever the size.  The handler gets the upload when the last
 * byte is in (spool_take).
 *
 * Only a request whose first byte arrives when nothing else is pending on
 * the connection is looked at (a fresh connection, or after a reply with no
 * pipelined bytes behind it): then that byte starts a request line and is
 * never body bytes.  A head split across reads, chunked bodies and anything
 * else pass through untouched, and evhttp buffers them as usual.
 */
#ifndef GW_GATEWAY_SPOOL_H
#define GW_GATEWAY_SPOOL_H

#include <stdbool.h>

struct gw_app;
struct gw_req;
struct cJSON;
struct evhttp;
struct evhttp_connection;
struct evhttp_request;
struct spool;

/** An upload spooled to disk, handed to the handler of its request. */
struct spool_upload {
    char *path;           /* the file part, under <storage>/.spool/; NULL on error */
    long long size;
    char sha256[65];      /* lowercase hex */
    struct cJSON *fields; /* the form fields as strings: namespace, name, meta... */
    char *error;          /* a message naming what is wrong with the body, or NULL */
};

/** The body is in (u, owned by the callee), or the client left (u NULL, why). */
typedef void (*spool_ready_cb)(void *arg, struct spool_upload *u, const char *why);

/** Per-server state; installs itself on http (evhttp_set_bevcb).  NULL if
 * the spool directory cannot be made (uploads are then buffered). */
struct spool *spool_new(struct gw_app *app, struct evhttp *http);
/** Free, after evhttp_free (the connections use it). */
void spool_free(struct spool *sp);

/** The reply to ev was sent: its connection may start a new request. */
void spool_request_done(struct spool *sp, struct evhttp_request *ev);
/** evcon is closing: an upload on it ends (its waiter hears so). */
void spool_conn_closed(struct spool *sp, struct evhttp_connection *evcon);

/**
 * The spooled upload of req: 0 = none (the body came the usual way), 1 =
 * complete (*out, owned by the caller), 2 = still arriving (cb runs once,
 * later, with it or with the reason there is none).
 */
int spool_take(struct spool *sp, struct gw_req *req, spool_ready_cb cb, void *arg,
               struct spool_upload **out);

/** Free an upload (and delete its file unless it was moved away). */
void spool_upload_free(struct spool_upload *u);

#endif
