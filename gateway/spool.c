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
#include <event2/http.h>
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
#define NBUCKETS 256

enum mp_state { MP_PREAMBLE, MP_AFTER_DELIM, MP_HEADERS, MP_DATA, MP_END, MP_ERROR };

/* One upload being streamed, keyed by its connection's input buffer. */
struct spconn {
    struct spool *sp;
    struct evbuffer *in;        /* the connection's input (the key) */
    struct bufferevent *bev;    /* known once the handler took it */
    char *head;                 /* request line and headers for evhttp */
    size_t head_len;
    bool expect;                /* the client waits for 100 Continue */
    long long left;             /* body bytes still to come */
    enum mp_state mp;
    char delim[80];             /* CRLF "--" boundary */
    size_t dlen;
    char *w;                    /* parse buffer */
    size_t wl;
    bool in_file, had_file;
    char *field_name;
    char *field;
    size_t field_len;
    int fd;
    long long synced;
    EVP_MD_CTX *md;
    struct spool_upload *cur;   /* the upload; handed over when done */
    bool done;                  /* every body byte has arrived */
    bool discard;               /* the request was answered first: drop the body */
    struct evbuffer *stash;     /* bytes after the body, held until the reply */
    spool_ready_cb cb;          /* the handler waiting for the body */
    void *cbarg;
    struct spconn *hnext;
};

struct spool {
    struct gw_app *app;
    char *dir;  /* <storage>/.spool */
    bool busy;  /* inside the input callback (it modifies its own buffer) */
    struct spconn *buckets[NBUCKETS];
};

static size_t bucket_of(const struct evbuffer *b)
{
    uintptr_t v = (uintptr_t)b;
    return (size_t)((v >> 4) ^ (v >> 12)) % NBUCKETS;
}

static struct spconn *find(struct spool *sp, const struct evbuffer *b)
{
    for (struct spconn *c = sp->buckets[bucket_of(b)]; c; c = c->hnext)
        if (c->in == b)
            return c;
    return NULL;
}

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

/* ---- the multipart body, as it streams --------------------------------------- */

static void body_error(struct spconn *c, const char *msg)
{
    if (!c->cur->error)
        c->cur->error = gw_xstrdup(msg);
    c->mp = MP_ERROR;
}

static void part_end(struct spconn *c)
{
    if (c->in_file) {
        c->in_file = false;
    } else if (c->field_name) {
        char *v = gw_xstrndup(c->field ? c->field : "", c->field_len);
        cJSON_DeleteItemFromObjectCaseSensitive(c->cur->fields, c->field_name);
        cJSON_AddStringToObject(c->cur->fields, c->field_name, v);
        free(v);
    }
    free(c->field_name);
    c->field_name = NULL;
    free(c->field);
    c->field = NULL;
    c->field_len = 0;
}

static void part_data(struct spconn *c, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (c->in_file) {
        EVP_DigestUpdate(c->md, p, n);
        for (size_t off = 0; off < n;) {
            ssize_t k = write(c->fd, p + off, n - off);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                body_error(c, "file: cannot write the upload to disk");
                return;
            }
            off += (size_t)k;
        }
        c->cur->size += (long long)n;
        if (c->cur->size - c->synced >= SYNC_EVERY) {
            /* Start writeback without waiting for it (never stall the
             * loop); the fdatasync at the end then has little left to do. */
            if (sync_file_range(c->fd, c->synced, c->cur->size - c->synced,
                                SYNC_FILE_RANGE_WRITE) != 0) {
                body_error(c, "file: cannot write the upload to disk");
                return;
            }
            c->synced = c->cur->size;
        }
        return;
    }
    if (c->field_len + n > FIELD_MAX) {
        body_error(c, "body: a form field is larger than 64 KiB");
        return;
    }
    c->field = realloc(c->field, c->field_len + n + 1);
    if (!c->field)
        abort();
    memcpy(c->field + c->field_len, p, n);
    c->field_len += n;
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

static void part_begin(struct spconn *c, const char *hdr, size_t len)
{
    char *name = disp_param(hdr, len, "name"), *fn = disp_param(hdr, len, "filename");
    if (!name) {
        body_error(c, "body: multipart part without a name");
    } else if (fn || strcmp(name, "file") == 0) {
        if (c->had_file) {
            body_error(c, "file: more than one file part");
        } else {
            c->had_file = c->in_file = true;
        }
    } else {
        c->field_name = name;
        name = NULL;
    }
    free(name);
    free(fn);
}

static void drop(struct spconn *c, size_t n)
{
    memmove(c->w, c->w + n, c->wl - n);
    c->wl -= n;
}

/* Parse what is in c->w; keep the bytes that may start a delimiter. */
static void parse(struct spconn *c)
{
    for (;;) {
        switch (c->mp) {
        case MP_PREAMBLE: {
            const char *p = memmem(c->w, c->wl, c->delim, c->dlen);
            if (!p) {
                if (c->wl >= c->dlen)
                    drop(c, c->wl - (c->dlen - 1));
                return;
            }
            drop(c, (size_t)(p - c->w) + c->dlen);
            c->mp = MP_AFTER_DELIM;
            break;
        }
        case MP_AFTER_DELIM:
            if (c->wl < 2)
                return;
            if (c->w[0] == '-' && c->w[1] == '-') {
                c->mp = MP_END;
            } else if (c->w[0] == '\r' && c->w[1] == '\n') {
                drop(c, 2);
                c->mp = MP_HEADERS;
            } else {
                body_error(c, "body: malformed multipart delimiter");
            }
            break;
        case MP_HEADERS: {
            const char *p = memmem(c->w, c->wl, "\r\n\r\n", 4);
            if (!p) {
                if (c->wl > PART_HDR_MAX)
                    body_error(c, "body: multipart part without a header end");
                return;
            }
            part_begin(c, c->w, (size_t)(p - c->w));
            drop(c, (size_t)(p - c->w) + 4);
            if (c->mp != MP_ERROR)
                c->mp = MP_DATA;
            break;
        }
        case MP_DATA: {
            const char *p = memmem(c->w, c->wl, c->delim, c->dlen);
            if (!p) {
                if (c->wl >= c->dlen) {
                    size_t n = c->wl - (c->dlen - 1);
                    part_data(c, c->w, n);
                    drop(c, n);
                }
                return;
            }
            part_data(c, c->w, (size_t)(p - c->w));
            if (c->mp == MP_ERROR)
                break;
            part_end(c);
            drop(c, (size_t)(p - c->w) + c->dlen);
            c->mp = MP_AFTER_DELIM;
            break;
        }
        case MP_END:
        case MP_ERROR:
            c->wl = 0;
            return;
        }
    }
}

/* ---- one request to spool ---------------------------------------------------- */

static void body_reset(struct spconn *c)
{
    free(c->head);
    c->head = NULL;
    free(c->w);
    c->w = NULL;
    c->wl = 0;
    free(c->field_name);
    c->field_name = NULL;
    free(c->field);
    c->field = NULL;
    c->field_len = 0;
    c->in_file = c->had_file = false;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
    spool_upload_free(c->cur);
    c->cur = NULL;
}

/* The body is complete: close the file and hand the upload over. */
static void body_done(struct spconn *c)
{
    if (c->mp != MP_END && c->mp != MP_ERROR)
        body_error(c, c->mp == MP_PREAMBLE ? "body: no multipart boundary found"
                                           : "body: multipart part not terminated");
    if (!c->cur->error && !c->had_file)
        body_error(c, "file: no file part in the form");
    if (!c->cur->error && (fdatasync(c->fd) != 0 || close(c->fd) != 0))
        body_error(c, "file: cannot write the upload to disk");
    else if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    unsigned char dg[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(c->md, dg, &dl);
    for (int i = 0; i < 32; i++)
        snprintf(c->cur->sha256 + 2 * i, 3, "%02x", dg[i]);
    if (c->cur->error && c->cur->path) {
        unlink(c->cur->path);
        free(c->cur->path);
        c->cur->path = NULL;
    }
    c->done = true;
}

/* Header value of name in the block [h, h+len), or NULL; *dup counts repeats. */
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
 * src starts with a complete request head of hlen bytes (through the empty
 * line).  If it is an upload to stream, take it: returns true and the state
 * is C_BODY.  Otherwise false (it passes through).
 */
static bool try_take(struct spconn *c, const char *h, size_t hlen)
{
    const struct gw_cfg *cfg = c->sp->app->cfg;
    const char *le = memmem(h, hlen, "\r\n", 2);
    size_t pl = sizeof(UPLOAD_PATH) - 1;
    if (!le || (size_t)(le - h) < 5 + pl || memcmp(h + 5, UPLOAD_PATH, pl) != 0 ||
        (h[5 + pl] != ' ' && h[5 + pl] != '?'))
        return false;
    /* Only a head evhttp will surely accept is taken over (otherwise it
     * would drop the connection with the upload half-read): HTTP/1.x, a
     * target of visible characters, "Name: value" lines of text. */
    size_t rl = (size_t)(le - h);
    if (rl < 9 || (memcmp(le - 9, " HTTP/1.1", 9) != 0 && memcmp(le - 9, " HTTP/1.0", 9) != 0))
        return false;
    for (const char *p = h + 5; p < le - 9; p++)
        if (*p <= ' ' || *p > '~')
            return false;
    const char *hs = le + 2;
    size_t hl = hlen - (size_t)(hs - h) - 2; /* without the final CRLF */
    for (const char *l = hs; l < hs + hl;) {
        const char *e = memmem(l, (size_t)(hs + hl - l), "\r\n", 2);
        if (!e)
            e = hs + hl;
        const char *colon = memchr(l, ':', (size_t)(e - l));
        if (!colon || colon == l)
            return false;
        for (const char *p = l; p < e; p++)
            if ((p < colon && (*p <= ' ' || *p > '~')) || (*p != '\t' && (unsigned char)*p < ' '))
                return false;
        l = e + 2;
    }
    size_t vl = 0;
    int n = 0;
    const char *te = hdr_find(hs, hl, "Transfer-Encoding", &vl, &n);
    if (te)
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
    if (bl == 0 || bl > 70)
        return false; /* the handler names the fault */

    /* Take it: a spool file, and the head evhttp will see afterwards. */
    char id[40];
    unsigned char rnd[12];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return false;
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    char *path = gw_xasprintf("%s/%s", c->sp->dir, id);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_kv(LOG_LEVEL_WARN, NULL, "dataset.spool", "cannot create a spool file; upload "
                                                     "buffered in memory", "dir", c->sp->dir, NULL);
        free(path);
        return false;
    }
    c->cur = gw_xcalloc(1, sizeof(*c->cur));
    c->cur->path = path;
    c->cur->fields = cJSON_CreateObject();
    c->fd = fd;
    c->synced = 0;
    c->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
    c->dlen = (size_t)snprintf(c->delim, sizeof(c->delim), "\r\n--%.*s", (int)bl, b);
    c->w = gw_xmalloc(WORK + PART_HDR_MAX + sizeof(c->delim) + 2);
    memcpy(c->w, "\r\n", 2); /* so a delimiter at the very start matches */
    c->wl = 2;
    c->mp = MP_PREAMBLE;
    c->left = len;

    /* The head again, without the framing of the body it no longer has. */
    size_t cap = hlen + 64;
    c->head = gw_xmalloc(cap);
    size_t o = (size_t)(hs - h);
    memcpy(c->head, h, o);
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
            memcpy(c->head + o, l, ll);
            o += ll;
            memcpy(c->head + o, "\r\n", 2);
            o += 2;
        }
        l = e + 2;
    }
    o += (size_t)snprintf(c->head + o, cap - o, "Content-Length: 0\r\n\r\n");
    c->head_len = o;
    c->expect = expect; /* answered in spool_take, when the socket is known */
    return true;
}

/* ---- the connection's input ---------------------------------------------------- */

static void in_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);

static void conn_free(struct spconn *c)
{
    struct spconn **pp = &c->sp->buckets[bucket_of(c->in)];
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = c->hnext;
    body_reset(c);
    if (c->stash)
        evbuffer_free(c->stash);
    free(c);
}

/* Take body bytes from the front of buf; when the body is complete, keep
 * what follows (pipelined requests) aside until the reply is sent. */
static void feed(struct spconn *c, struct evbuffer *buf)
{
    while (c->left > 0 && evbuffer_get_length(buf) > 0) {
        size_t m = evbuffer_get_length(buf);
        if (m > WORK)
            m = WORK;
        if ((long long)m > c->left)
            m = (size_t)c->left;
        int got = evbuffer_remove(buf, c->w + c->wl, m);
        if (got <= 0)
            break;
        c->wl += (size_t)got;
        c->left -= got;
        parse(c);
    }
    if (c->left > 0 || c->done)
        return;
    body_done(c);
    if (c->discard) { /* answered already: the body only had to be read */
        struct evbuffer *rest = c->stash;
        c->stash = NULL;
        conn_free(c);
        if (rest) {
            evbuffer_prepend_buffer(buf, rest);
            evbuffer_free(rest);
        }
        return;
    }
    if (evbuffer_get_length(buf) > 0) {
        c->stash = evbuffer_new();
        evbuffer_add_buffer(c->stash, buf);
    }
    if (c->bev) /* evhttp must not read on while its request is answered */
        bufferevent_disable(c->bev, EV_READ);
    if (c->cb) {
        spool_ready_cb cb = c->cb;
        c->cb = NULL;
        struct spool_upload *u = c->cur;
        c->cur = NULL;
        cb(c->cbarg, u, NULL);
    }
}

/* A new request starts at the front of buf: stream it if it is an upload. */
static void at_start(struct spool *sp, struct evbuffer *buf)
{
    static const char pre[] = "POST " UPLOAD_PATH;
    size_t n = evbuffer_get_length(buf);
    char peek[sizeof(pre)];
    size_t k = n < sizeof(pre) - 1 ? n : sizeof(pre) - 1;
    evbuffer_copyout(buf, peek, k);
    if (memcmp(peek, pre, k) != 0) {
        evbuffer_remove_cb(buf, in_cb, sp); /* not ours: look again after the reply */
        return;
    }
    struct evbuffer_ptr at = evbuffer_search(buf, "\r\n\r\n", 4, NULL);
    if (at.pos < 0) {
        if (n > (size_t)sp->app->cfg->http_header_max)
            evbuffer_remove_cb(buf, in_cb, sp);
        return; /* the rest of the head is coming (evhttp may take it: then it is not streamed) */
    }
    size_t hlen = (size_t)at.pos + 4;
    char *h = gw_xmalloc(hlen);
    evbuffer_copyout(buf, h, hlen);
    struct spconn *c = gw_xcalloc(1, sizeof(*c));
    c->sp = sp;
    c->in = buf;
    c->fd = -1;
    bool taken = try_take(c, h, hlen);
    free(h);
    if (!taken) {
        body_reset(c);
        free(c);
        evbuffer_remove_cb(buf, in_cb, sp);
        return;
    }
    size_t b = bucket_of(buf);
    c->hnext = sp->buckets[b];
    sp->buckets[b] = c;
    evbuffer_drain(buf, hlen);
    feed(c, buf);
    /* evhttp sees the head with an empty body and dispatches it now (the
     * body bytes that came with it are taken; what follows the body is in
     * the stash until the reply). */
    evbuffer_prepend(buf, c->head, c->head_len);
    free(c->head);
    c->head = NULL;
}

static void in_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct spool *sp = arg;
    if (sp->busy || info->n_added == 0)
        return;
    sp->busy = true;
    struct spconn *c = find(sp, buf);
    if (!c)
        at_start(sp, buf);
    else if (!c->done)
        feed(c, buf);
    else if (evbuffer_get_length(buf) > 0) {
        /* more pipelined bytes before the reply: keep them with the rest */
        if (!c->stash)
            c->stash = evbuffer_new();
        evbuffer_add_buffer(c->stash, buf);
    }
    sp->busy = false;
}

static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
    struct spool *sp = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;
    /* evhttp's read callback only when there is something for it: while an
     * upload streams, its bytes are taken before evhttp looks. */
    bufferevent_setwatermark(bev, EV_READ, 1, 0);
    /* An upload whose connection vanished unseen (no close callback ever
     * ran) must not be taken for this new connection's: its buffer may sit
     * at the same address. */
    struct spconn *stale = find(sp, bufferevent_get_input(bev));
    if (stale)
        conn_free(stale);
    evbuffer_add_cb(bufferevent_get_input(bev), in_cb, sp);
    return bev;
}

/* ---- the server's side ------------------------------------------------------------ */

struct spool *spool_new(struct gw_app *app, struct evhttp *http)
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
    evhttp_set_bevcb(http, bevcb, sp);
    return sp;
}

void spool_free(struct spool *sp)
{
    if (!sp)
        return;
    for (size_t i = 0; i < NBUCKETS; i++)
        while (sp->buckets[i])
            conn_free(sp->buckets[i]);
    free(sp->dir);
    free(sp);
}

static struct evbuffer *input_of(struct evhttp_request *ev, struct bufferevent **bev)
{
    struct evhttp_connection *evcon = ev ? evhttp_request_get_connection(ev) : NULL;
    *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return *bev ? bufferevent_get_input(*bev) : NULL;
}

void spool_request_done(struct spool *sp, struct evhttp_request *ev)
{
    struct bufferevent *bev;
    struct evbuffer *in = sp ? input_of(ev, &bev) : NULL;
    if (!in)
        return;
    struct spconn *c = find(sp, in);
    if (c && !c->done) {
        /* Answered (refused) before its body was in: read the rest of the
         * body and drop it, then go on with the next request. */
        c->discard = true;
        c->cb = NULL;
        body_error(c, "body: dropped (the request was answered before it arrived)");
        return;
    }
    bool pipelined = evbuffer_get_length(in) > 0;
    if (c) {
        if (c->stash && evbuffer_get_length(c->stash) > 0) {
            pipelined = true;
            sp->busy = true; /* not a new arrival: no callback work */
            evbuffer_prepend_buffer(in, c->stash);
            sp->busy = false;
        }
        conn_free(c);
    }
    /* Look at the next request only if its first byte is still to come. */
    evbuffer_remove_cb(in, in_cb, sp);
    if (!pipelined)
        evbuffer_add_cb(in, in_cb, sp);
}

void spool_conn_closed(struct spool *sp, struct evhttp_connection *evcon)
{
    struct bufferevent *bev = sp && evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    struct spconn *c = bev ? find(sp, bufferevent_get_input(bev)) : NULL;
    if (!c)
        return;
    if (c->cb) {
        spool_ready_cb cb = c->cb;
        c->cb = NULL;
        cb(c->cbarg, NULL, "body: the client went away before the upload was complete");
    }
    conn_free(c);
}

int spool_take(struct spool *sp, struct gw_req *req, spool_ready_cb cb, void *arg,
               struct spool_upload **out)
{
    *out = NULL;
    struct bufferevent *bev;
    struct evbuffer *in = sp ? input_of(req->ev, &bev) : NULL;
    struct spconn *c = in ? find(sp, in) : NULL;
    if (!c || c->cb)
        return 0;
    c->bev = bev;
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
        evutil_socket_t fd = bufferevent_getfd(bev);
        if (fd >= 0 && send(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL | MSG_DONTWAIT) != 25)
            log_kv(LOG_LEVEL_DEBUG, &req->log, "dataset.spool", "could not send 100 Continue",
                   NULL);
    }
    /* evhttp stopped reading when it dispatched; the body is still coming. */
    bufferevent_enable(bev, EV_READ);
    return 2;
}
