/*
 * spool.h - multipart uploads streamed to disk as they arrive.
 *
 * libevent 2.1's evhttp reads a whole request body into memory before the
 * handler runs and offers no per-request hook before the body (that came
 * with 2.2).  So the connection guard (gateway/conn.h), which sees every
 * connection's input first, hands each complete and checked request head to
 * spool_begin().  One request shape is taken over: a POST to
 * /v2/component/upload/file with a Content-Length within upload.max and a
 * multipart/form-data boundary.  Its head goes on to evhttp with
 * "Content-Length: 0", so the handler runs at once, while the body is taken
 * from the input buffer as it arrives, before evhttp sees it: the form fields
 * are kept (64 KiB each at most), the file part is written to
 * <storage>/.spool/<random> with its SHA-256 computed on the way, and memory
 * stays flat whatever the size.  The handler gets the upload when the last
 * byte is in (spool_take).  Anything else passes through untouched, and
 * evhttp buffers it as usual.
 *
 * The multipart parser itself (struct spool_body) is pure: it takes bytes in
 * any split and hands the file part to a sink; the fuzzer and the unit tests
 * drive it directly.
 *
 * Loop-thread only.
 */
#ifndef GW_GATEWAY_SPOOL_H
#define GW_GATEWAY_SPOOL_H

#include <stdbool.h>
#include <stddef.h>

struct gw_app;
struct gw_req;
struct cJSON;
struct bufferevent;
struct spool;
struct spool_conn;
struct spool_body;

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

/* ---- the multipart parser (pure) ------------------------------------------- */

/**
 * Where the file part's bytes go: NULL when they were taken, or a message
 * (static text) that becomes the upload's error.
 */
typedef const char *(*spool_sink_cb)(void *arg, const char *p, size_t n);

/**
 * A parser for one multipart/form-data body with the given boundary (1..70
 * bytes, without the leading "--"); NULL for a boundary out of range.  The
 * form fields other than the file (a part named "file" or with a filename)
 * are collected as strings, 64 KiB at most each; the one file part goes to
 * sink as it is parsed.
 */
struct spool_body *spool_body_new(const char *boundary, size_t blen, spool_sink_cb sink,
                                  void *arg);
void spool_body_free(struct spool_body *b);
/** Parse n more bytes of the body (any split; copied as needed). */
void spool_body_feed(struct spool_body *b, const char *p, size_t n);
/** The body ended: checks the closing delimiter and that a file part came. */
void spool_body_end(struct spool_body *b);
/** The first fault found ("body: ...", "file: ..."), or NULL. Borrowed. */
const char *spool_body_error(const struct spool_body *b);
/** Record a fault found outside the parser (disk errors); the first one stays. */
void spool_body_fail(struct spool_body *b, const char *msg);
/** Bytes of the file part so far. */
long long spool_body_size(const struct spool_body *b);
/** The form fields (an object of strings); ownership moves to the caller. */
struct cJSON *spool_body_fields_take(struct spool_body *b);

/* ---- streaming uploads of one server ---------------------------------------- */

/** Per-server state: a spool directory under app->storage_dir (emptied).
 *  NULL if it cannot be made (uploads are then buffered by evhttp). */
struct spool *spool_new(struct gw_app *app);
/** Free, after every spool_conn of it. NULL-safe. */
void spool_free(struct spool *sp);

/**
 * The input of bev starts with a complete request head of hlen bytes that
 * the connection guard has checked.  If it is an upload to stream, take it
 * over: the head evhttp sees is replaced by one without a body, the body
 * bytes already there are taken, and the new per-request state is returned
 * (owned by the caller, freed with spool_conn_free).  Otherwise NULL and
 * nothing changes.
 */
struct spool_conn *spool_begin(struct spool *sp, struct bufferevent *bev, size_t hlen);

/**
 * More bytes arrived on the connection: take the body's.  Returns true once
 * the whole body is in.  Bytes after the body (a pipelined request) are kept
 * aside until the reply is sent, or, when the request was answered already,
 * left in the input buffer for the next request.
 */
bool spool_feed(struct spool_conn *c);

/** True when the body's last byte came (then spool_feed has nothing to do). */
bool spool_done(const struct spool_conn *c);

/**
 * The reply to the request was sent.  Returns true when c is finished (the
 * bytes kept aside are back in the input buffer; free c), false when the
 * body is still arriving: it is read and dropped from now on, and
 * spool_feed says when it ended.
 */
bool spool_reply_sent(struct spool_conn *c);

/** The connection closes: a handler waiting for the body hears so. */
void spool_conn_closed(struct spool_conn *c);

/** Free the state of one streamed request (NULL-safe). */
void spool_conn_free(struct spool_conn *c);

/**
 * The spooled upload of req's connection (c may be NULL): 0 = none (the body
 * came the usual way), 1 = complete (*out, owned by the caller), 2 = still
 * arriving (cb runs once, later, with it or with the reason there is none).
 */
int spool_take(struct spool_conn *c, struct gw_req *req, spool_ready_cb cb, void *arg,
               struct spool_upload **out);

/** Free an upload (and delete its file unless it was moved away). */
void spool_upload_free(struct spool_upload *u);

#endif
