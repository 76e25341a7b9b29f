/*
 * spool.c - multipart uploads streamed to disk (see spool.h).
 */
#include "spool.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "cfg.h"
#include "compat.h"
#include "log.h"
#include "server.h"

#define UPLOAD_PATH "/v2/component/upload/file"
#define WORK (256 * 1024)        /* bytes parsed per step */
#define FIELD_MAX (64 * 1024)    /* a form field other than the file */
#define PART_HDR_MAX (16 * 1024) /* the headers of one part */
#define SYNC_EVERY (8LL << 20)   /* start writeback as the file grows */

/* ---- the multipart body, as it streams (pure) --------------------------------- */

enum mp_state { MP_PREAMBLE, MP_AFTER_DELIM, MP_HEADERS, MP_DATA, MP_END, MP_ERROR };

struct spool_body {
    enum mp_state mp;
    char delim[80]; /* CRLF "--" boundary */
    size_t dlen;
    char *w;        /* parse buffer: what may still start a delimiter, plus new bytes */
    size_t wl;
    bool in_file, had_file;
    char *field_name;
    char *field;
    size_t field_len;
    cJSON *fields;
    long long size;
    char *error;
    spool_sink_cb sink;
    void *sink_arg;
};

#define W_CAP (WORK + PART_HDR_MAX + 80 + 2)

struct spool_body *spool_body_new(const char *boundary, size_t blen, spool_sink_cb sink, void *arg)
{
    if (blen == 0 || blen > 70)
        return NULL;
    struct spool_body *b = gw_xcalloc(1, sizeof(*b));
    b->dlen = (size_t)snprintf(b->delim, sizeof(b->delim), "\r\n--%.*s", (int)blen, boundary);
    b->w = gw_xmalloc(W_CAP);
    memcpy(b->w, "\r\n", 2); /* so a delimiter at the very start matches */
    b->wl = 2;
    b->mp = MP_PREAMBLE;
    b->fields = cJSON_CreateObject();
    b->sink = sink;
    b->sink_arg = arg;
    return b;
}

void spool_body_free(struct spool_body *b)
{
    if (!b)
        return;
    free(b->w);
    free(b->field_name);
    free(b->field);
    cJSON_Delete(b->fields);
    free(b->error);
    free(b);
}

void spool_body_fail(struct spool_body *b, const char *msg)
{
    if (!b->error)
        b->error = gw_xstrdup(msg);
    b->mp = MP_ERROR;
}

const char *spool_body_error(const struct spool_body *b) { return b->error; }
long long spool_body_size(const struct spool_body *b) { return b->size; }

struct cJSON *spool_body_fields_take(struct spool_body *b)
{
    cJSON *f = b->fields;
    b->fields = NULL;
    return f;
}

static void part_end(struct spool_body *b)
{
    if (b->in_file) {
        b->in_file = false;
    } else if (b->field_name) {
        char *v = gw_xstrndup(b->field ? b->field : "", b->field_len);
        cJSON_DeleteItemFromObjectCaseSensitive(b->fields, b->field_name);
        cJSON_AddStringToObject(b->fields, b->field_name, v);
        free(v);
    }
    free(b->field_name);
    b->field_name = NULL;
    free(b->field);
    b->field = NULL;
    b->field_len = 0;
}

static void part_data(struct spool_body *b, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (b->in_file) {
        const char *err = b->sink(b->sink_arg, p, n);
        if (err) {
            spool_body_fail(b, err);
            return;
        }
        b->size += (long long)n;
        return;
    }
    if (b->field_len + n > FIELD_MAX) {
        spool_body_fail(b, "body: a form field is larger than 64 KiB");
        return;
    }
    b->field = gw_xrealloc(b->field, b->field_len + n + 1);
    memcpy(b->field + b->field_len, p, n);
    b->field_len += n;
}

/* name="value" of a part's Content-Disposition, or NULL. */
static char *disp_param(const char *hdr, size_t len, const char *key)
{
    char pat[32];
    int pl = snprintf(pat, sizeof(pat), "%s=\"", key);
    const char *p = memmem(hdr, len, pat, (size_t)pl);
    while (p && p > hdr && p[-1] != ' ' && p[-1] != ';')
        p = memmem(p + 1, len - (size_t)(p + 1 - hdr), pat, (size_t)pl);
    if (!p)
        return NULL;
    p += pl;
    const char *e = memchr(p, '"', len - (size_t)(p - hdr));
    return e ? gw_xstrndup(p, (size_t)(e - p)) : NULL;
}

static void part_begin(struct spool_body *b, const char *hdr, size_t len)
{
    char *name = disp_param(hdr, len, "name"), *fn = disp_param(hdr, len, "filename");
    if (!name) {
        spool_body_fail(b, "body: multipart part without a name");
    } else if (fn || strcmp(name, "file") == 0) {
        if (b->had_file) {
            spool_body_fail(b, "file: more than one file part");
        } else {
            b->had_file = b->in_file = true;
        }
    } else {
        b->field_name = name;
        name = NULL;
    }
    free(name);
    free(fn);
}

static void drop(struct spool_body *b, size_t n)
{
    memmove(b->w, b->w + n, b->wl - n);
    b->wl -= n;
}

/* Parse what is in b->w; keep the bytes that may start a delimiter. */
static void parse(struct spool_body *b)
{
    for (;;) {
        switch (b->mp) {
        case MP_PREAMBLE: {
            const char *p = memmem(b->w, b->wl, b->delim, b->dlen);
            if (!p) {
                if (b->wl >= b->dlen)
                    drop(b, b->wl - (b->dlen - 1));
                return;
            }
            drop(b, (size_t)(p - b->w) + b->dlen);
            b->mp = MP_AFTER_DELIM;
            break;
        }
        case MP_AFTER_DELIM:
            if (b->wl < 2)
                return;
            if (b->w[0] == '-' && b->w[1] == '-') {
                b->mp = MP_END;
            } else if (b->w[0] == '\r' && b->w[1] == '\n') {
                drop(b, 2);
                b->mp = MP_HEADERS;
            } else {
                spool_body_fail(b, "body: malformed multipart delimiter");
            }
            break;
        case MP_HEADERS: {
            /* Headers of more than PART_HDR_MAX bytes are refused whether
             * their end arrived in the same read or not. */
            const char *p = memmem(b->w, b->wl, "\r\n\r\n", 4);
            if (p ? (size_t)(p - b->w) > PART_HDR_MAX : b->wl > PART_HDR_MAX + 3) {
                spool_body_fail(b, "body: multipart part headers larger than 16 KiB or without an end");
                break;
            }
            if (!p)
                return;
            part_begin(b, b->w, (size_t)(p - b->w));
            drop(b, (size_t)(p - b->w) + 4);
            if (b->mp != MP_ERROR)
                b->mp = MP_DATA;
            break;
        }
        case MP_DATA: {
            const char *p = memmem(b->w, b->wl, b->delim, b->dlen);
            if (!p) {
                if (b->wl >= b->dlen) {
                    size_t n = b->wl - (b->dlen - 1);
                    part_data(b, b->w, n);
                    if (b->mp == MP_ERROR)
                        break;
                    drop(b, n);
                }
                return;
            }
            part_data(b, b->w, (size_t)(p - b->w));
            if (b->mp == MP_ERROR)
                break;
            part_end(b);
            drop(b, (size_t)(p - b->w) + b->dlen);
            b->mp = MP_AFTER_DELIM;
            break;
        }
        case MP_END:
        case MP_ERROR:
            b->wl = 0;
            return;
        }
    }
}

void spool_body_feed(struct spool_body *b, const char *p, size_t n)
{
    while (n > 0) {
        size_t room = W_CAP - b->wl, k = n < WORK ? n : WORK;
        if (k > room)
            k = room; /* parse() always leaves less than PART_HDR_MAX + delim */
        memcpy(b->w + b->wl, p, k);
        b->wl += k;
        p += k;
        n -= k;
        parse(b);
    }
}

void spool_body_end(struct spool_body *b)
{
    if (b->mp != MP_END && b->mp != MP_ERROR)
        spool_body_fail(b, b->mp == MP_PREAMBLE ? "body: no multipart boundary found"
                                                : "body: multipart part not terminated");
    if (!b->error && !b->had_file)
        spool_body_fail(b, "file: no file part in the form");
}

/* ---- one request to spool ----------------------------------------------------- */

struct spool {
    struct gw_app *app;
    char *dir; /* <storage>/.spool */
};

struct spool_conn {
    struct spool *sp;
    struct bufferevent *bev;
    struct evbuffer *in;
    struct spool_body *body;
    bool expect;                /* the client waits for 100 Continue */
    long long left;             /* body bytes still to come */
    int fd;                     /* the spool file */
    long long synced;
    EVP_MD_CTX *md;
    struct spool_upload *cur;   /* the upload; handed over when done */
    bool done;                  /* every body byte has arrived */
    bool discard;               /* the request was answered first: drop the body */
    struct evbuffer *stash;     /* bytes after the body, held until the reply */
    spool_ready_cb cb;          /* the handler waiting for the body */
    void *cbarg;
};

void spool_upload_free(struct spool_upload *u)
{
    if (!u)
        return;
    if (u->path) {
        unlink(u->path); /* nothing once the handler renamed it */
        free(u->path);
    }
    cJSON_Delete(u->fields);
    free(u->error);
    free(u);
}

/* The file part, on its way to the spool file. */
static const char *to_file(void *arg, const char *p, size_t n)
{
    struct spool_conn *c = arg;
    if (c->discard)
        return NULL; /* nobody will read it */
    EVP_DigestUpdate(c->md, p, n);
    for (size_t off = 0; off < n;) {
        ssize_t k = write(c->fd, p + off, n - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return "file: cannot write the upload to disk";
        off += (size_t)k;
    }
    long long size = spool_body_size(c->body) + (long long)n;
    if (size - c->synced >= SYNC_EVERY) {
        /* Start writeback without waiting for it (never stall the loop);
         * the handler's fdatasync, off the loop, then has little left. */
        if (sync_file_range(c->fd, c->synced, size - c->synced, SYNC_FILE_RANGE_WRITE) != 0)
            return "file: cannot write the upload to disk";
        c->synced = size;
    }
    return NULL;
}

void spool_conn_free(struct spool_conn *c)
{
    if (!c)
        return;
    spool_body_free(c->body);
    if (c->fd >= 0)
        close(c->fd);
    EVP_MD_CTX_free(c->md);
    spool_upload_free(c->cur);
    if (c->stash)
        evbuffer_free(c->stash);
    free(c);
}

/* The body is complete: close the file and finish the upload. */
static void body_done(struct spool_conn *c)
{
    spool_body_end(c->body);
    /* No fdatasync here: it would wait for the disk on the loop.  The
     * handler makes the file durable on the file I/O thread before it
     * records the dataset (routes/dataset.c). */
    if (close(c->fd) != 0)
        spool_body_fail(c->body, "file: cannot write the upload to disk");
    c->fd = -1;
    unsigned char dg[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(c->md, dg, &dl);
    for (int i = 0; i < 32; i++)
        snprintf(c->cur->sha256 + 2 * i, 3, "%02x", dg[i]);
    c->cur->size = spool_body_size(c->body);
    c->cur->fields = spool_body_fields_take(c->body);
    const char *err = spool_body_error(c->body);
    if (err) {
        c->cur->error = gw_xstrdup(err);
        if (c->cur->path) {
            unlink(c->cur->path);
            free(c->cur->path);
            c->cur->path = NULL;
        }
    }
    c->done = true;
}

/* Header value of name in the block [h, h+len), or NULL; *count counts repeats. */
static const char *hdr_find(const char *h, size_t len, const char *name, size_t *vlen, int *count)
{
    size_t nl = strlen(name);
    const char *found = NULL, *end = h + len;
    *count = 0;
    for (const char *l = h; l < end;) {
        const char *e = memmem(l, (size_t)(end - l), "\r\n", 2);
        if (!e)
            e = end;
        if ((size_t)(e - l) > nl && l[nl] == ':' && strncasecmp(l, name, nl) == 0) {
            const char *v = l + nl + 1;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = e;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            found = v;
            *vlen = (size_t)(ve - v);
            (*count)++;
        }
        l = e + 2;
    }
    return found;
}

/*
 * h is a complete request head of hlen bytes (through the empty line) that
 * the guard checked (httphead.h).  If it is an upload to stream, set c up:
 * returns true.  Otherwise false (it passes through).
 */
static bool try_take(struct spool_conn *c, const char *h, size_t hlen, char **newhead,
                     size_t *newlen)
{
    const struct gw_cfg *cfg = c->sp->app->cfg;
    const char *le = memmem(h, hlen, "\r\n", 2);
    size_t pl = sizeof(UPLOAD_PATH) - 1;
    if (!le || (size_t)(le - h) < 5 + pl || memcmp(h, "POST ", 5) != 0 ||
        memcmp(h + 5, UPLOAD_PATH, pl) != 0 || (h[5 + pl] != ' ' && h[5 + pl] != '?'))
        return false;
    const char *hs = le + 2;
    size_t hl = hlen - (size_t)(hs - h) - 2; /* without the final CRLF */
    size_t vl = 0;
    int n = 0;
    if (hdr_find(hs, hl, "Transfer-Encoding", &vl, &n))
        return false;
    const char *cl = hdr_find(hs, hl, "Content-Length", &vl, &n);
    if (!cl || n != 1 || vl == 0 || vl > 15)
        return false;
    long long len = 0;
    for (size_t i = 0; i < vl; i++) {
        if (cl[i] < '0' || cl[i] > '9')
            return false;
        len = len * 10 + (cl[i] - '0');
    }
    if (len > cfg->upload_max || len == 0)
        return false; /* evhttp refuses it (or there is nothing to spool) */
    const char *ct = hdr_find(hs, hl, "Content-Type", &vl, &n);
    if (!ct || n != 1 || vl < 19 || strncasecmp(ct, "multipart/form-data", 19) != 0)
        return false;
    char ctv[256];
    if (vl >= sizeof(ctv))
        return false;
    memcpy(ctv, ct, vl);
    ctv[vl] = '\0';
    const char *b = strstr(ctv, "boundary=");
    if (!b)
        return false;
    b += 9;
    size_t bl = strcspn(b, "; ");
    if (*b == '"') {
        b++;
        bl = strcspn(b, "\"");
    }
    c->body = spool_body_new(b, bl, to_file, c);
    if (!c->body)
        return false; /* the handler names the fault */

    /* Take it: a spool file, and the head evhttp will see afterwards. */
    char id[40];
    unsigned char rnd[12];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return false;
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    char *path = gw_xasprintf("%s/%s", c->sp->dir, id);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        log_kv(LOG_LEVEL_WARN, NULL, "dataset.spool", "cannot create a spool file; upload "
                                                     "buffered in memory", "dir", c->sp->dir, NULL);
        free(path);
        return false;
    }
    c->cur = gw_xcalloc(1, sizeof(*c->cur));
    c->cur->path = path;
    c->fd = fd;
    c->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
    c->left = len;

    /* The head again, without the framing of the body it no longer has. */
    size_t cap = hlen + 64;
    char *nh = gw_xmalloc(cap);
    size_t o = (size_t)(hs - h);
    memcpy(nh, h, o);
    bool expect = false;
    for (const char *l = hs; l < hs + hl;) {
        const char *e = memmem(l, (size_t)(hs + hl - l), "\r\n", 2);
        if (!e)
            e = hs + hl;
        size_t ll = (size_t)(e - l);
        if (ll >= 15 && strncasecmp(l, "Content-Length:", 15) == 0) {
            /* replaced below */
        } else if (ll >= 7 && strncasecmp(l, "Expect:", 7) == 0) {
            expect = true;
        } else if (ll > 0) {
            memcpy(nh + o, l, ll);
            o += ll;
            memcpy(nh + o, "\r\n", 2);
            o += 2;
        }
        l = e + 2;
    }
    o += (size_t)snprintf(nh + o, cap - o, "Content-Length: 0\r\n\r\n");
    *newhead = nh;
    *newlen = o;
    c->expect = expect; /* answered in spool_take, when the handler is there */
    return true;
}

/* Take body bytes from the front of the input. */
static void take_body(struct spool_conn *c)
{
    struct evbuffer *buf = c->in;
    while (c->left > 0 && evbuffer_get_length(buf) > 0) {
        size_t m = evbuffer_get_length(buf);
        if (m > WORK)
            m = WORK;
        if ((long long)m > c->left)
            m = (size_t)c->left;
        /* Parse straight from the buffer's chains: the parser copies what
         * it must keep, nothing is linearised first. */
        struct evbuffer_iovec v[16];
        int nv = evbuffer_peek(buf, (ev_ssize_t)m, NULL, v, 16);
        size_t took = 0;
        for (int i = 0; i < nv && i < 16 && took < m; i++) {
            size_t k = v[i].iov_len < m - took ? v[i].iov_len : m - took;
            spool_body_feed(c->body, v[i].iov_base, k);
            took += k;
        }
        evbuffer_drain(buf, took);
        c->left -= (long long)took;
        if (took == 0)
            break;
    }
}

bool spool_feed(struct spool_conn *c)
{
    if (c->done) {
        /* more pipelined bytes before the reply: keep them with the rest */
        if (!c->discard && evbuffer_get_length(c->in) > 0) {
            if (!c->stash)
                c->stash = evbuffer_new();
            evbuffer_add_buffer(c->stash, c->in);
        }
        return true;
    }
    take_body(c);
    if (c->left > 0)
        return false;
    body_done(c);
    if (c->discard)
        return true; /* answered already: what follows is the next request */
    if (evbuffer_get_length(c->in) > 0) {
        c->stash = evbuffer_new();
        evbuffer_add_buffer(c->stash, c->in);
    }
    /* evhttp must not read on while its request is answered */
    bufferevent_disable(c->bev, EV_READ);
    if (c->cb) {
        spool_ready_cb cb = c->cb;
        c->cb = NULL;
        struct spool_upload *u = c->cur;
        c->cur = NULL;
        cb(c->cbarg, u, NULL);
    }
    return true;
}

bool spool_done(const struct spool_conn *c) { return c->done; }

struct spool_conn *spool_begin(struct spool *sp, struct bufferevent *bev, size_t hlen)
{
    if (!sp)
        return NULL;
    struct evbuffer *in = bufferevent_get_input(bev);
    static const char pre[] = "POST " UPLOAD_PATH;
    if (hlen < sizeof(pre) - 1 || evbuffer_get_length(in) < hlen)
        return NULL;
    char peek[sizeof(pre)];
    evbuffer_copyout(in, peek, sizeof(pre) - 1);
    if (memcmp(peek, pre, sizeof(pre) - 1) != 0)
        return NULL; /* the usual case: not an upload */
    char *h = gw_xmalloc(hlen);
    evbuffer_copyout(in, h, hlen);
    struct spool_conn *c = gw_xcalloc(1, sizeof(*c));
    c->sp = sp;
    c->bev = bev;
    c->in = in;
    c->fd = -1;
    char *nh = NULL;
    size_t nl = 0;
    bool taken = try_take(c, h, hlen, &nh, &nl);
    free(h);
    if (!taken) {
        spool_conn_free(c);
        return NULL;
    }
    evbuffer_drain(in, hlen);
    (void)spool_feed(c); /* the body bytes that came with the head */
    /* evhttp sees the head with an empty body and dispatches it now (what
     * follows the body, if it is all in, is in the stash until the reply). */
    evbuffer_prepend(in, nh, nl);
    free(nh);
    return c;
}

bool spool_reply_sent(struct spool_conn *c)
{
    if (!c->done) {
        /* Answered (refused) before its body was in: read the rest of the
         * body and drop it, then go on with the next request. */
        c->discard = true;
        c->cb = NULL;
        spool_body_fail(c->body, "body: dropped (the request was answered before it arrived)");
        return false;
    }
    if (c->stash && evbuffer_get_length(c->stash) > 0)
        evbuffer_prepend_buffer(c->in, c->stash);
    return true;
}

void spool_conn_closed(struct spool_conn *c)
{
    if (c && c->cb) {
        spool_ready_cb cb = c->cb;
        c->cb = NULL;
        cb(c->cbarg, NULL, "body: the client went away before the upload was complete");
    }
}

int spool_take(struct spool_conn *c, struct gw_req *req, spool_ready_cb cb, void *arg,
               struct spool_upload **out)
{
    *out = NULL;
    if (!c || c->cb || c->discard)
        return 0;
    if (c->done) {
        *out = c->cur;
        c->cur = NULL;
        return *out ? 1 : 0;
    }
    c->cb = cb;
    c->cbarg = arg;
    if (c->expect) {
        /* The client waits for this before it sends the body; evhttp has
         * nothing queued on this connection, so write it straight out. */
        c->expect = false;
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        if (fd >= 0 &&
            send(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL | MSG_DONTWAIT) != 25)
            log_kv(LOG_LEVEL_DEBUG, &req->log, "dataset.spool", "could not send 100 Continue",
                   NULL);
    }
    /* evhttp stopped reading when it dispatched; the body is still coming. */
    bufferevent_enable(c->bev, EV_READ);
    return 2;
}

/* ---- the server's side ------------------------------------------------------------ */

struct spool *spool_new(struct gw_app *app)
{
    struct spool *sp = gw_xcalloc(1, sizeof(*sp));
    sp->app = app;
    sp->dir = gw_xasprintf("%s/.spool", app->storage_dir);
    if ((mkdir(app->storage_dir, 0755) != 0 && errno != EEXIST) ||
        (mkdir(sp->dir, 0700) != 0 && errno != EEXIST)) {
        log_kv(LOG_LEVEL_WARN, NULL, "dataset.spool",
               "no spool directory; multipart uploads are buffered in memory", "dir", sp->dir,
               NULL);
        free(sp->dir);
        free(sp);
        return NULL;
    }
    /* Spool files of a previous run belong to requests that never finished. */
    DIR *d = opendir(sp->dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char *f = gw_xasprintf("%s/%s", sp->dir, e->d_name);
        unlink(f);
        free(f);
    }
    if (d)
        closedir(d);
    return sp;
}

void spool_free(struct spool *sp)
{
    if (!sp)
        return;
    free(sp->dir);
    free(sp);
}
