/*
 * dataset.c - datasets under the node's storage root (file:// storage).
 *
 *   POST /v2/component/upload       {file, namespace, name, head?, meta?}: a file on
 *                                   this machine, under <data_dir>/import/
 *   POST /v2/component/upload/file  multipart/form-data: fields namespace, name
 *                                   (and meta, a JSON object), one file part
 *   GET|POST /v2/component/dataset/query   {namespace, name}
 *   GET|POST /v2/component/dataset/list    {namespace?}
 *   POST /v2/component/dataset/delete      {namespace, name}
 *
 * A dataset lives at <storage>/<namespace>/<name>/data, the layout the
 * components read through system.storage; jobs reference it as
 * dataset_id "<namespace>#<name>".  Names are identifiers without '/' and
 * not starting with '.', so nothing can escape the storage root.
 *
 * No file I/O of size runs on the loop: the bytes are copied to a temporary
 * file in 1 MiB steps on the file I/O thread (gateway/fileio.h), hashed
 * with SHA-256 on the way; the last step makes the file durable (fdatasync)
 * and renames it into place; the t_dataset row is written last, back on the
 * loop.  A multipart body streamed to a spool file (gateway/spool.h) only
 * needs that last step.
 *
 * A path upload opens the named file with O_NONBLOCK | O_NOFOLLOW and looks
 * at what it opened: only a regular file with a single link is accepted,
 * so a FIFO cannot hang the node, a symbolic link cannot point elsewhere
 * and a hard link cannot smuggle in a file from outside import/ (such as
 * the node's private key).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/db.h"
#include "gateway/fileio.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "gateway/server.h"
#include "gateway/spool.h"
#include "route.h"

#define STEP (1024 * 1024)

static bool part_ok(const char *s)
{
    return json_is_id(s, 128) && !strchr(s, '#') && !strchr(s, ':');
}

/*
 * What the file I/O thread works on: everything a step touches lives here,
 * never in the request, so the request may go (shutdown) while a step runs;
 * then the cancelled step's iost is freed when the step ends.
 */
struct iost {
    int src_fd;          /* source: a file... */
    char *mem_owned;     /* ...or a request body taken from the request */
    const char *mem;
    size_t mem_len, mem_off;
    int dst_fd;          /* the temporary file; -1 once closed */
    char *tmp, *final, *final_dir;
    char *buf;
    EVP_MD_CTX *md;
    long long step_bytes; /* what the last step copied */
    const char *stage;    /* what the last failing call was doing */
};

struct upload {
    struct gw_req *req;
    char *ns, *name, *meta;
    struct iost *io;
    struct fileio_job *job; /* a step on the I/O thread */
    long long size;
    struct spool_upload *spooled; /* a multipart body already on disk */
    char *sha256;
};

static void iost_free(void *p)
{
    struct iost *io = p;
    if (!io)
        return;
    if (io->src_fd >= 0)
        close(io->src_fd);
    if (io->dst_fd >= 0)
        close(io->dst_fd);
    if (io->tmp) {
        unlink(io->tmp); /* no-op once renamed */
        free(io->tmp);
    }
    free(io->mem_owned);
    free(io->final);
    free(io->final_dir);
    free(io->buf);
    EVP_MD_CTX_free(io->md);
    free(io);
}

static void upload_free(void *p)
{
    struct upload *u = p;
    if (u->job)
        fileio_cancel(u->job, iost_free); /* the step may still use u->io */
    else
        iost_free(u->io);
    free(u->ns);
    free(u->name);
    free(u->meta);
    free(u->sha256);
    spool_upload_free(u->spooled);
    free(u);
}

static void on_row_written(void *arg, int err, const struct db_res *res, const char *errmsg,
                           const char *sqlstate)
{
    (void)res;
    (void)sqlstate;
    struct upload *u = arg;
    if (err) {
        route_reply_err(u->req, err, errmsg);
        return;
    }
    cJSON *d = cJSON_CreateObject();
    json_add_str(d, "namespace", u->ns);
    json_add_str(d, "name", u->name);
    char *id = gw_xasprintf("%s#%s", u->ns, u->name);
    json_add_str(d, "dataset_id", id);
    free(id);
    char *uri = gw_xasprintf("file://%s", u->io->final);
    json_add_str(d, "uri", uri);
    free(uri);
    json_add_int(d, "size", u->size);
    json_add_str(d, "sha256", db_res_get(res, 0, 0));
    log_kv(LOG_LEVEL_INFO, &u->req->log, "dataset.upload", "dataset stored", "namespace", u->ns,
           "name", u->name, NULL);
    route_reply_ok(u->req, d);
}

static void fail_errno(struct upload *u, int err, const char *what, int e)
{
    char *m = gw_xasprintf("%s: %s", what, strerror(e));
    route_reply_err(u->req, err, m);
    free(m);
}

/* The dataset is in place: its row (and event) last. */
static void record(struct upload *u)
{
    static const char sql[] =
        "WITH d AS (INSERT INTO t_dataset (namespace, name, uri, size_bytes, sha256, meta)"
        "  VALUES ($1, $2, $3, $4::bigint, $5, $6::jsonb) ON CONFLICT (namespace, name) DO UPDATE"
        "  SET uri = EXCLUDED.uri, size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256,"
        "  meta = EXCLUDED.meta, updated_at = now() RETURNING sha256)"
        ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'dataset', $1 || '#' || $2, 'stored', 'api', $4 || ' bytes' FROM d)"
        " SELECT sha256 FROM d";
    char *uri = gw_xasprintf("file://%s", u->io->final);
    char size[24];
    snprintf(size, sizeof(size), "%lld", u->size);
    const char *p[6] = {u->ns, u->name, uri, size, u->sha256, u->meta ? u->meta : "{}"};
    int rc = db_query(u->req->app->db, sql, 6, p, on_row_written, u, NULL);
    free(uri);
    if (rc)
        route_reply_err(u->req, rc, "database unavailable");
}

/* ---- on the file I/O thread --------------------------------------------------- */

/* One step: up to 1 MiB from the source to the temporary file. */
static long long work_step(void *ctx)
{
    struct iost *io = ctx;
    const char *chunk;
    ssize_t n;
    if (io->src_fd >= 0) {
        do
            n = read(io->src_fd, io->buf, STEP);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            io->stage = "file: cannot read";
            return -errno;
        }
        chunk = io->buf;
    } else {
        size_t left = io->mem_len - io->mem_off;
        n = (ssize_t)(left < STEP ? left : STEP);
        chunk = io->mem + io->mem_off;
        io->mem_off += (size_t)n;
    }
    io->step_bytes = n;
    if (n == 0)
        return 0;
    EVP_DigestUpdate(io->md, chunk, (size_t)n);
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(io->dst_fd, chunk + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            io->stage = "cannot write the dataset";
            return -errno;
        }
        off += w;
    }
    return n;
}

/* The last step: make the bytes durable, then move them into place. */
static long long work_finish(void *ctx)
{
    struct iost *io = ctx;
    int fd = io->dst_fd;
    if (fd < 0) {
        /* a spooled upload: the spool closed its file */
        fd = open(io->tmp, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            io->stage = "cannot open the uploaded file";
            return -errno;
        }
    }
    int rc = fdatasync(fd); /* banned-ok: work_finish runs on the file I/O thread */
    int e = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    io->dst_fd = -1;
    if (rc != 0) {
        io->stage = "cannot write the dataset";
        return -e;
    }
    if (rename(io->tmp, io->final) != 0) {
        io->stage = "cannot move the dataset into place";
        return -errno;
    }
    free(io->tmp);
    io->tmp = NULL;
    /* The new directory entry survives a crash too. */
    int dfd = open(io->final_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)!fsync(dfd); /* banned-ok: file I/O thread */
        close(dfd);
    }
    return 0;
}

/* ---- back on the loop ---------------------------------------------------------- */

static void on_step(void *arg, long long r);

static void on_finished(void *arg, long long r)
{
    struct upload *u = arg;
    u->job = NULL;
    if (r < 0) {
        fail_errno(u, GW_EINTERNAL, u->io->stage, (int)-r);
        return;
    }
    record(u);
}

static void finish(struct upload *u)
{
    u->job = fileio_submit(u->req->app->fileio, work_finish, u->io, on_finished, u);
}

static void on_step(void *arg, long long r)
{
    struct upload *u = arg;
    u->job = NULL;
    if (r < 0) {
        fail_errno(u, GW_EINTERNAL, u->io->stage, (int)-r);
        return;
    }
    if (r == 0) {
        unsigned char dg[32];
        unsigned int dl = 0;
        EVP_DigestFinal_ex(u->io->md, dg, &dl);
        u->sha256 = gw_xmalloc(65);
        for (int i = 0; i < 32; i++)
            snprintf(u->sha256 + 2 * i, 3, "%02x", dg[i]);
        finish(u);
        return;
    }
    u->size += r;
    if (u->size > u->req->app->cfg->upload_max) {
        char *m = gw_xasprintf("file: larger than upload.max (%lld bytes)",
                               u->req->app->cfg->upload_max);
        route_reply_err(u->req, GW_ETOOBIG, m);
        free(m);
        return;
    }
    u->job = fileio_submit(u->req->app->fileio, work_step, u->io, on_step, u);
}

static int mkdir1(const char *p)
{
    return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* Create the directories (small metadata calls, fine on the loop). */
static int make_dirs(struct upload *u)
{
    struct gw_app *app = u->req->app;
    char *nsdir = gw_xasprintf("%s/%s", app->storage_dir, u->ns);
    u->io->final_dir = gw_xasprintf("%s/%s", nsdir, u->name);
    u->io->final = gw_xasprintf("%s/data", u->io->final_dir);
    int rc = mkdir1(app->storage_dir) || mkdir1(nsdir) || mkdir1(u->io->final_dir);
    int e = errno;
    free(nsdir);
    if (rc)
        fail_errno(u, GW_EINTERNAL, "cannot create the dataset directory", e);
    return rc;
}

static void begin(struct upload *u)
{
    if (make_dirs(u) != 0)
        return;
    struct iost *io = u->io;
    io->tmp = gw_xasprintf("%s/.upload-%s", io->final_dir, u->req->req_id);
    io->dst_fd = open(io->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (io->dst_fd < 0) {
        fail_errno(u, GW_EINTERNAL, "cannot create the dataset file", errno);
        return;
    }
    io->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(io->md, EVP_sha256(), NULL);
    if (io->src_fd >= 0)
        io->buf = gw_xmalloc(STEP);
    u->job = fileio_submit(u->req->app->fileio, work_step, io, on_step, u);
}

static struct upload *upload_new(struct gw_req *req, const char *ns, const char *name,
                                 const cJSON *meta)
{
    struct upload *u = gw_xcalloc(1, sizeof(*u));
    u->req = req;
    u->io = gw_xcalloc(1, sizeof(*u->io));
    u->io->src_fd = -1;
    u->io->dst_fd = -1;
    u->ns = gw_xstrdup(ns);
    u->name = gw_xstrdup(name);
    u->meta = meta ? json_print(meta) : NULL;
    if (u->meta) {
        char *m = gw_xstrdup(u->meta);
        cJSON_free(u->meta);
        u->meta = m;
    }
    req->ctx = u;
    req->ctx_free = upload_free;
    return u;
}

static bool names(struct gw_req *req, const cJSON *o, const char **ns, const char **name)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(o, "namespace", true, 128, ns, &eb) != 0 ||
        json_get_str(o, "name", true, 128, name, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return false;
    }
    if (!part_ok(*ns)) {
        route_reply_err(req, GW_EINVAL,
                        "namespace: 1..128 of [A-Za-z0-9_.-], not starting with '.'");
        return false;
    }
    if (!part_ok(*name)) {
        route_reply_err(req, GW_EINVAL, "name: 1..128 of [A-Za-z0-9_.-], not starting with '.'");
        return false;
    }
    return true;
}

/* What a non-regular file is, for the refusal. */
static const char *kind_of(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

/*
 * Open the file named by a path upload for reading, or reply with the
 * reason and return -1.  It must be under <data_dir>/import/ (its directory
 * resolved), not a symbolic link, a regular file, and have no other link.
 */
static int open_import(struct gw_req *req, const char *file)
{
    if (strstr(file, "..") || file[0] == '\0') {
        route_reply_err(req, GW_EINVAL, "file: must not contain '..'");
        return -1;
    }
    char *src = file[0] == '/' ? gw_xstrdup(file)
                               : gw_xasprintf("%s/import/%s", req->app->cfg->data_dir, file);
    /* The directory part resolved must lie inside import/ (a symlinked
     * directory cannot lead out); the last part is opened without
     * following a link. */
    char *dir = gw_xstrdup(src);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    char *root = realpath(req->app->cfg->data_dir, NULL);
    char *rdir = realpath(slash ? dir : ".", NULL);
    char *imp = root ? gw_xasprintf("%s/import", root) : NULL;
    bool inside = rdir && imp && (strcmp(rdir, imp) == 0 ||
                                  (strncmp(rdir, imp, strlen(imp)) == 0 && rdir[strlen(imp)] == '/'));
    free(root);
    free(rdir);
    free(imp);
    free(dir);
    if (!inside) {
        route_reply_err(req, GW_EINVAL,
                        "file: only files under <data_dir>/import/ can be uploaded by path");
        free(src);
        return -1;
    }
    /* O_NONBLOCK: opening a FIFO with no writer must not wait (and a FIFO
     * with one is refused below all the same); O_NOCTTY: a terminal device
     * never becomes ours. */
    int fd = open(src, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
    int e = errno;
    struct stat st;
    char *m = NULL;
    if (fd < 0 && e == ELOOP)
        m = gw_xasprintf("file: %s is a symbolic link; copy the file into import/", file);
    else if (fd < 0 && e == ENOENT)
        m = gw_xasprintf("file: %s does not exist on this node", src);
    else if (fd < 0)
        m = gw_xasprintf("file: cannot open %s: %s", file, strerror(e));
    else if (fstat(fd, &st) != 0)
        m = gw_xasprintf("file: cannot stat %s: %s", file, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        m = gw_xasprintf("file: %s is %s, not a regular file", file, kind_of(st.st_mode));
    else if (st.st_nlink != 1)
        m = gw_xasprintf("file: %s has %lu hard links; only a file with a single link is "
                         "accepted (copy it into import/ instead of linking)",
                         file, (unsigned long)st.st_nlink);
    free(src);
    if (m) {
        route_reply_err(req, fd < 0 && e == ENOENT ? GW_ENOTFOUND : GW_EINVAL, m);
        free(m);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* A regular file: reads block on the disk, not on a writer; clear the
     * flag all the same so a short read is never taken for the end. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

void dataset_upload_path(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *file = NULL, *ns = NULL, *name = NULL;
    const cJSON *meta = NULL;
    if (server_req_params(req, &eb) != 0 ||
        json_get_str(req->params, "file", true, 4096, &file, &eb) != 0 ||
        json_get_obj(req->params, "meta", false, &meta, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (!names(req, req->params, &ns, &name))
        return;
    int fd = open_import(req, file);
    if (fd < 0)
        return;
    struct upload *u = upload_new(req, ns, name, meta);
    u->io->src_fd = fd;
    begin(u);
}

/* ---- multipart ---------------------------------------------------------------- */

static const char *memfind(const char *h, size_t hl, const char *n, size_t nl)
{
    if (nl == 0 || hl < nl)
        return NULL;
    const char *end = h + hl - nl;
    for (const char *p = h; p <= end; p++) {
        p = memchr(p, n[0], (size_t)(end - p) + 1);
        if (!p)
            return NULL;
        if (memcmp(p, n, nl) == 0)
            return p;
    }
    return NULL;
}

/* Value of a header parameter: name="value" in a Content-Disposition line. */
static char *disp_param(const char *hdr, size_t len, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof(pat), "%s=\"", key);
    const char *p = memfind(hdr, len, pat, strlen(pat));
    if (!p || (p > hdr && p[-1] != ' ' && p[-1] != ';'))
        return NULL;
    p += strlen(pat);
    const char *e = memchr(p, '"', len - (size_t)(p - hdr));
    return e ? gw_xstrndup(p, (size_t)(e - p)) : NULL;
}

/* The optional form field meta: a JSON object.  Replies on error. */
static bool form_meta(struct gw_req *req, const cJSON *fields, cJSON **meta)
{
    *meta = NULL;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(fields, "meta");
    if (!cJSON_IsString(ms))
        return true;
    *meta = cJSON_Parse(ms->valuestring);
    if (!cJSON_IsObject(*meta)) {
        route_reply_err(req, GW_EINVAL, "meta: expected a JSON object");
        cJSON_Delete(*meta);
        *meta = NULL;
        return false;
    }
    return true;
}

/* The body was streamed to a spool file as it arrived (gateway/spool.h):
 * check the fields, then make the file durable and move it into place. */
static void upload_spooled(struct gw_req *req, struct spool_upload *sp)
{
    const char *ns = NULL, *name = NULL;
    cJSON *meta = NULL;
    if (sp->error) {
        route_reply_err(req, GW_EINVAL, sp->error);
        spool_upload_free(sp);
        return;
    }
    if (!names(req, sp->fields, &ns, &name) || !form_meta(req, sp->fields, &meta)) {
        spool_upload_free(sp);
        return;
    }
    struct upload *u = upload_new(req, ns, name, meta);
    cJSON_Delete(meta);
    u->spooled = sp;
    u->size = sp->size;
    u->sha256 = gw_xstrdup(sp->sha256);
    if (make_dirs(u) != 0)
        return;
    /* The I/O thread renames it: the spool no longer owns the file. */
    u->io->tmp = sp->path;
    sp->path = NULL;
    finish(u);
}

/* The streamed body is in (or the client left before it was). */
static void on_spool_ready(void *arg, struct spool_upload *sp, const char *why)
{
    struct gw_req *req = arg;
    if (!sp) {
        route_reply_err(req, GW_EINVAL, why);
        return;
    }
    upload_spooled(req, sp);
}

void dataset_upload_file(struct gw_req *req)
{
    struct spool_upload *sp = NULL;
    switch (server_spool_take(req, on_spool_ready, req, &sp)) {
    case 1:
        upload_spooled(req, sp);
        return;
    case 2:
        return; /* the body is still arriving */
    default:
        break;
    }
    const char *ct = server_req_header(req, "Content-Type");
    const char *b = ct ? strstr(ct, "boundary=") : NULL;
    if (!ct || strncmp(ct, "multipart/form-data", 19) != 0 || !b) {
        route_reply_err(req, GW_EINVAL,
                        "Content-Type: expected multipart/form-data with a boundary");
        return;
    }
    b += 9;
    char bnd[200];
    size_t bl = strcspn(b, "; ");
    if (*b == '"') {
        b++;
        bl = strcspn(b, "\"");
    }
    if (bl == 0 || bl > 70) {
        route_reply_err(req, GW_EINVAL, "Content-Type: boundary must be 1..70 characters");
        return;
    }
    snprintf(bnd, sizeof(bnd), "--%.*s", (int)bl, b);
    size_t dl = strlen(bnd);
    const char *body = req->body ? req->body : "", *end = body + req->body_len;
    cJSON *fields = cJSON_CreateObject();
    const char *file_data = NULL;
    size_t file_len = 0;
    const char *p = memfind(body, req->body_len, bnd, dl);
    const char *err = NULL;
    if (!p)
        err = "body: no multipart boundary found";
    while (p && !err) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break; /* closing delimiter */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            err = "body: malformed multipart delimiter";
            break;
        }
        p += 2;
        const char *he = memfind(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!he) {
            err = "body: multipart part without a header end";
            break;
        }
        char *nm = disp_param(p, (size_t)(he - p), "name");
        char *fn = disp_param(p, (size_t)(he - p), "filename");
        const char *data = he + 4;
        char delim[210];
        snprintf(delim, sizeof(delim), "\r\n%s", bnd);
        const char *next = memfind(data, (size_t)(end - data), delim, dl + 2);
        if (!next || !nm) {
            err = next ? "body: multipart part without a name" : "body: multipart part not terminated";
            free(nm);
            free(fn);
            break;
        }
        size_t len = (size_t)(next - data);
        if (fn || strcmp(nm, "file") == 0) {
            if (file_data)
                err = "file: more than one file part";
            file_data = data;
            file_len = len;
        } else if (len <= 65536) {
            char *v = gw_xstrndup(data, len);
            cJSON_DeleteItemFromObjectCaseSensitive(fields, nm);
            cJSON_AddStringToObject(fields, nm, v);
            free(v);
        } else {
            err = "body: a form field is larger than 64 KiB";
        }
        free(nm);
        free(fn);
        p = next + 2;
    }
    if (!err && !file_data)
        err = "file: no file part in the form";
    if (err) {
        route_reply_err(req, GW_EINVAL, err);
        cJSON_Delete(fields);
        return;
    }
    const char *ns = NULL, *name = NULL;
    if (!names(req, fields, &ns, &name)) {
        cJSON_Delete(fields);
        return;
    }
    cJSON *meta = NULL;
    if (!form_meta(req, fields, &meta)) {
        cJSON_Delete(fields);
        return;
    }
    struct upload *u = upload_new(req, ns, name, meta);
    cJSON_Delete(meta);
    cJSON_Delete(fields);
    /* The I/O thread reads the file part from the body: the body moves
     * from the request to the upload's I/O state. */
    u->io->mem_owned = req->body;
    u->io->mem = file_data;
    u->io->mem_len = file_len;
    req->body = NULL;
    req->body_len = 0;
    begin(u);
}

/* ---- query / list / delete ------------------------------------------------------ */

static void on_ds(void *arg, int err, const struct db_res *res, const char *errmsg,
                  const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (err) {
        route_reply_err(req, err, errmsg);
        return;
    }
    const char *doc = db_res_rows(res) ? db_res_get(res, 0, 0) : NULL;
    if (!doc) {
        route_reply_err(req, GW_ENOTFOUND, "namespace/name: no such dataset");
        return;
    }
    route_reply_ok(req, cJSON_Parse(doc));
}

void dataset_query(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *ns = NULL, *name = NULL;
    if (server_req_params(req, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (!names(req, req->params, &ns, &name))
        return;
    static const char sql[] =
        "SELECT json_build_object('namespace', namespace, 'name', name, 'dataset_id',"
        " namespace || '#' || name, 'uri', uri, 'size', size_bytes, 'sha256', sha256, 'meta', meta,"
        " 'created_at', created_at)::text FROM t_dataset WHERE namespace = $1 AND name = $2";
    const char *p[2] = {ns, name};
    int rc = db_query(req->app->db, sql, 2, p, on_ds, req, NULL);
    if (rc)
        route_reply_err(req, rc, "database unavailable");
}

void dataset_list(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *ns = NULL;
    if (server_req_params(req, &eb) != 0 ||
        json_get_str(req->params, "namespace", false, 128, &ns, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    static const char sql[] =
        "SELECT json_build_object('datasets', coalesce(json_agg(json_build_object("
        " 'namespace', namespace, 'name', name, 'dataset_id', namespace || '#' || name, 'uri', uri,"
        " 'size', size_bytes, 'sha256', sha256) ORDER BY namespace, name), '[]'))::text"
        " FROM t_dataset WHERE ($1::text IS NULL OR namespace = $1)";
    const char *p[1] = {ns};
    int rc = db_query(req->app->db, sql, 1, p, on_ds, req, NULL);
    if (rc)
        route_reply_err(req, rc, "database unavailable");
}

static void on_ds_deleted(void *arg, int err, const struct db_res *res, const char *errmsg,
                          const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (err) {
        route_reply_err(req, err, errmsg);
        return;
    }
    if (db_res_rows(res) == 0) {
        route_reply_err(req, GW_ENOTFOUND, "namespace/name: no such dataset");
        return;
    }
    const char *uri = db_res_get(res, 0, 0);
    if (uri && strncmp(uri, "file://", 7) == 0) {
        /* only a file inside our storage root */
        const char *path = uri + 7;
        size_t rl = strlen(req->app->storage_dir);
        if (strncmp(path, req->app->storage_dir, rl) == 0 && path[rl] == '/' && !strstr(path, "..")) {
            unlink(path);
            char *dir = gw_xstrdup(path);
            char *slash = strrchr(dir, '/');
            if (slash) {
                *slash = '\0';
                rmdir(dir);
            }
            free(dir);
        }
    }
    route_reply_ok(req, NULL);
}

void dataset_delete(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *ns = NULL, *name = NULL;
    if (server_req_params(req, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (!names(req, req->params, &ns, &name))
        return;
    static const char sql[] =
        "WITH d AS (DELETE FROM t_dataset WHERE namespace = $1 AND name = $2 RETURNING uri)"
        ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'dataset', $1 || '#' || $2, 'deleted', 'api', 'dataset/delete' FROM d)"
        " SELECT uri FROM d";
    const char *p[2] = {ns, name};
    int rc = db_query(req->app->db, sql, 2, p, on_ds_deleted, req, NULL);
    if (rc)
        route_reply_err(req, rc, "database unavailable");
}
