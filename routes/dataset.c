/*
 * dataset.c - datasets under the node's storage root (file:// storage).
 *
 *   POST /v2/component/upload       {file, namespace, name, head?, meta?}: a file on
 *                                   this machine, under upload.source_dir
 *   POST /v2/component/upload/file  multipart/form-data: fields namespace, name
 *                                   (and meta, a JSON object), one file part
 *   GET|POST /v2/component/dataset/query   {namespace, name}
 *   GET|POST /v2/component/dataset/list    {namespace?}
 *   POST /v2/component/dataset/delete      {namespace, name}
 *
 * A dataset lives at <storage>/<namespace>/<name>/data, the layout the
 * components read through system.storage; jobs reference it as
 * dataset_id "<namespace>#<name>".  Names are identifiers without '/' and
 * not starting with '.', so nothing can escape the storage root.  Bytes are
 * written to a temporary file in 1 MiB steps (one per loop turn, so the loop
 * keeps serving), hashed with SHA-256, then renamed into place; the
 * t_dataset row is written last.
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

struct upload {
    struct gw_req *req;
    char *ns, *name, *meta;
    /* source: an fd, or a memory range of the request body */
    int src_fd;
    const char *mem;
    size_t mem_len, mem_off;
    int dst_fd;
    char *tmp, *final_dir, *final;
    long long size;
    EVP_MD_CTX *md;
    struct event *ev;
    char *buf;
    struct spool_upload *spooled; /* a multipart body already on disk */
};

static void upload_free(void *p)
{
    struct upload *u = p;
    if (u->ev)
        event_free(u->ev);
    if (u->src_fd >= 0)
        close(u->src_fd);
    if (u->dst_fd >= 0)
        close(u->dst_fd);
    if (u->tmp) {
        unlink(u->tmp); /* no-op once renamed */
        free(u->tmp);
    }
    EVP_MD_CTX_free(u->md);
    free(u->ns);
    free(u->name);
    free(u->meta);
    free(u->final_dir);
    free(u->final);
    free(u->buf);
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
    char *uri = gw_xasprintf("file://%s", u->final);
    json_add_str(d, "uri", uri);
    free(uri);
    json_add_int(d, "size", u->size);
    json_add_str(d, "sha256", db_res_get(res, 0, 0));
    log_kv(LOG_LEVEL_INFO, &u->req->log, "dataset.upload", "dataset stored", "namespace", u->ns,
           "name", u->name, NULL);
    route_reply_ok(u->req, d);
}

static void fail(struct upload *u, int err, const char *what)
{
    char *m = gw_xasprintf("%s: %s", what, strerror(errno));
    route_reply_err(u->req, err, m);
    free(m);
}

static void record(struct upload *u, const char *hex);

static void finish_upload(struct upload *u)
{
    unsigned char dg[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(u->md, dg, &dl);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", dg[i]);
    if (fsync(u->dst_fd) != 0 || close(u->dst_fd) != 0) {
        u->dst_fd = -1;
        fail(u, GW_EINTERNAL, "cannot write the dataset");
        return;
    }
    u->dst_fd = -1;
    if (rename(u->tmp, u->final) != 0) {
        fail(u, GW_EINTERNAL, "cannot move the dataset into place");
        return;
    }
    record(u, hex);
}

/* The dataset is in place: its row (and event) last. */
static void record(struct upload *u, const char *hex)
{
    static const char sql[] =
        "WITH d AS (INSERT INTO t_dataset (namespace, name, uri, size_bytes, sha256, meta)"
        "  VALUES ($1, $2, $3, $4::bigint, $5, $6::jsonb) ON CONFLICT (namespace, name) DO UPDATE"
        "  SET uri = EXCLUDED.uri, size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256,"
        "  meta = EXCLUDED.meta, updated_at = now() RETURNING sha256)"
        ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'dataset', $1 || '#' || $2, 'stored', 'api', $4 || ' bytes' FROM d)"
        " SELECT sha256 FROM d";
    char *uri = gw_xasprintf("file://%s", u->final);
    char size[24];
    snprintf(size, sizeof(size), "%lld", u->size);
    const char *p[6] = {u->ns, u->name, uri, size, hex, u->meta ? u->meta : "{}"};
    int rc = db_query(u->req->app->db, sql, 6, p, on_row_written, u, NULL);
    free(uri);
    if (rc)
        route_reply_err(u->req, rc, "database unavailable");
}

static void on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct upload *u = arg;
    const char *chunk;
    ssize_t n;
    if (u->src_fd >= 0) {
        n = read(u->src_fd, u->buf, STEP);
        if (n < 0) {
            fail(u, GW_EINTERNAL, "file: cannot read");
            return;
        }
        chunk = u->buf;
    } else {
        size_t left = u->mem_len - u->mem_off;
        n = (ssize_t)(left < STEP ? left : STEP);
        chunk = u->mem + u->mem_off;
        u->mem_off += (size_t)n;
    }
    if (n == 0) {
        finish_upload(u);
        return;
    }
    u->size += n;
    if (u->size > u->req->app->cfg->upload_max) {
        char *m = gw_xasprintf("file: larger than upload.max (%lld bytes)",
                               u->req->app->cfg->upload_max);
        route_reply_err(u->req, GW_ETOOBIG, m);
        free(m);
        return;
    }
    EVP_DigestUpdate(u->md, chunk, (size_t)n);
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(u->dst_fd, chunk + off, (size_t)(n - off));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fail(u, GW_EINTERNAL, "cannot write the dataset");
            return;
        }
        off += w;
    }
    /* Flush each step as it goes, so the final fsync (on the loop) never
     * has a whole upload to write back at once. */
    if (fdatasync(u->dst_fd) != 0) {
        fail(u, GW_EINTERNAL, "cannot write the dataset");
        return;
    }
    event_active(u->ev, EV_TIMEOUT, 0); /* next step on the next loop turn */
}

static int mkdir1(const char *p)
{
    return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* Create directories and the temporary file, then start stepping. */
static int make_dirs(struct upload *u)
{
    struct gw_app *app = u->req->app;
    char *nsdir = gw_xasprintf("%s/%s", app->storage_dir, u->ns);
    u->final_dir = gw_xasprintf("%s/%s", nsdir, u->name);
    u->final = gw_xasprintf("%s/data", u->final_dir);
    int rc = mkdir1(app->storage_dir) || mkdir1(nsdir) || mkdir1(u->final_dir);
    free(nsdir);
    if (rc)
        fail(u, GW_EINTERNAL, "cannot create the dataset directory");
    return rc;
}

static void begin(struct upload *u)
{
    struct gw_app *app = u->req->app;
    if (make_dirs(u) != 0)
        return;
    u->tmp = gw_xasprintf("%s/.upload-%s", u->final_dir, u->req->req_id);
    u->dst_fd = open(u->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (u->dst_fd < 0) {
        fail(u, GW_EINTERNAL, "cannot create the dataset file");
        return;
    }
    u->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(u->md, EVP_sha256(), NULL);
    if (u->src_fd >= 0)
        u->buf = gw_xmalloc(STEP);
    u->ev = event_new(app->base, -1, 0, on_step, u);
    event_active(u->ev, EV_TIMEOUT, 0);
}

static struct upload *upload_new(struct gw_req *req, const char *ns, const char *name,
                                 const cJSON *meta)
{
    struct upload *u = gw_xcalloc(1, sizeof(*u));
    u->req = req;
    u->src_fd = -1;
    u->dst_fd = -1;
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
    /* The file must be a regular file under upload.source_dir (the data
     * directory's import/ by default), reached without "..". */
    if (strstr(file, "..") || file[0] == '\0') {
        route_reply_err(req, GW_EINVAL, "file: must not contain '..'");
        return;
    }
    char *src = file[0] == '/' ? gw_xstrdup(file) : gw_xasprintf("%s/import/%s", req->app->cfg->data_dir, file);
    char *root = realpath(req->app->cfg->data_dir, NULL);
    char *real = realpath(src, NULL);
    char *imp = root ? gw_xasprintf("%s/import/", root) : NULL;
    bool inside = real && imp && strncmp(real, imp, strlen(imp)) == 0;
    free(root);
    free(imp);
    if (!real) {
        char *m = gw_xasprintf("file: %s does not exist on this node", src);
        route_reply_err(req, GW_ENOTFOUND, m);
        free(m);
        free(src);
        return;
    }
    free(src);
    if (!inside) {
        route_reply_err(req, GW_EINVAL,
                        "file: only files under <data_dir>/import/ can be uploaded by path");
        free(real);
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    free(real);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        route_reply_err(req, GW_EINVAL, "file: not a readable regular file");
        return;
    }
    struct upload *u = upload_new(req, ns, name, meta);
    u->src_fd = fd;
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
 * check the fields, then move the file into place. */
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
    if (make_dirs(u) != 0)
        return;
    if (rename(sp->path, u->final) != 0) {
        fail(u, GW_EINTERNAL, "cannot move the dataset into place");
        return;
    }
    free(sp->path);
    sp->path = NULL;
    record(u, sp->sha256);
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
    u->mem = file_data;
    u->mem_len = file_len;
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
