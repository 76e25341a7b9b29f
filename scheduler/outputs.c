/*
 * outputs.c - task outputs registered as datasets.  See outputs.h.
 *
 * One scan per change of a task (store_task_outputs says which outputs are
 * due), then per output: open it under the storage root (no symbolic link
 * followed), insert its row with the size of the opened file, and hash that
 * same descriptor 1 MiB per loop turn; the digest is written only if the
 * row still names that file and size.  Every object in flight is on a list
 * of the registry, so outputs_free() can end them all.
 */
#include "outputs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/compat.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "scheduler/store.h"

#define STEP (1024 * 1024)

struct oscan;
struct oitem;

struct outputs {
    struct event_base *base;
    struct store *st;
    char *storage_dir;
    struct oscan *scans;
    struct oitem *items;
};

struct oscan {
    struct outputs *o;
    struct oscan *prev, *next;
    char *job_id, *task_id;
};

struct oitem {
    struct outputs *o;
    struct oitem *prev, *next;
    char *job_id, *task_id;
    char *ns, *name, *uri;
    char size[24];
    long long len, done;
    int fd;
    EVP_MD_CTX *md;
    struct event *ev;
    unsigned char *buf;
};

struct outputs *outputs_new(struct event_base *base, struct store *st, const char *storage_dir)
{
    struct outputs *o = gw_xcalloc(1, sizeof(*o));
    o->base = base;
    o->st = st;
    o->storage_dir = gw_xstrdup(storage_dir ? storage_dir : "");
    return o;
}

static void scan_free(struct oscan *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        s->o->scans = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s->job_id);
    free(s->task_id);
    free(s);
}

static void item_free(struct oitem *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        it->o->items = it->next;
    if (it->next)
        it->next->prev = it->prev;
    if (it->ev)
        event_free(it->ev);
    if (it->fd >= 0)
        close(it->fd);
    EVP_MD_CTX_free(it->md);
    free(it->buf);
    free(it->job_id);
    free(it->task_id);
    free(it->ns);
    free(it->name);
    free(it->uri);
    free(it);
}

void outputs_free(struct outputs *o)
{
    if (!o)
        return;
    while (o->scans)
        scan_free(o->scans);
    while (o->items)
        item_free(o->items);
    free(o->storage_dir);
    free(o);
}

static void item_log(const struct oitem *it, enum log_level lv, const char *msg, const char *err)
{
    struct log_ctx lc = {.job_id = it->job_id, .task_id = it->task_id};
    log_kv(lv, &lc, "dataset.output", msg, "namespace", it->ns, "name", it->name, "err",
           err ? err : "", NULL);
}

/* t_dataset's own rule for a namespace or name: no '/', no leading '.',
 * so <storage>/<ns>/<name>/data cannot leave the storage root. */
static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 128 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* <storage>/<ns>/<name>/data, every component opened without following a
 * symbolic link; a regular file or -1. */
static int open_output(const char *root, const char *ns, const char *name, struct stat *sb)
{
    int d0 = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d0 < 0)
        return -1;
    int d1 = openat(d0, ns, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(d0);
    if (d1 < 0)
        return -1;
    int d2 = openat(d1, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(d1);
    if (d2 < 0)
        return -1;
    int fd = openat(d2, "data", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    close(d2);
    if (fd < 0)
        return -1;
    if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void on_digest(void *arg, const struct db_rows *r)
{
    struct oitem *it = arg;
    if (r->err)
        item_log(it, LOG_LEVEL_WARN, "cannot record the digest of a task output", r->msg);
    else if (r->n == 0)
        item_log(it, LOG_LEVEL_INFO, "task output changed while it was hashed; digest not recorded",
                 NULL);
    item_free(it);
}

/* One step of the hash: at most STEP bytes per loop turn. */
static void on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct oitem *it = arg;
    ssize_t n = read(it->fd, it->buf, STEP);
    if (n < 0 && errno == EINTR) {
        struct timeval now0 = {0, 0};
        event_add(it->ev, &now0);
        return;
    }
    if (n < 0) {
        item_log(it, LOG_LEVEL_WARN, "cannot read a task output to hash it", strerror(errno));
        item_free(it);
        return;
    }
    if (n > 0) {
        EVP_DigestUpdate(it->md, it->buf, (size_t)n);
        it->done += n;
        struct timeval now0 = {0, 0};
        event_add(it->ev, &now0);
        return;
    }
    if (it->done != it->len) {
        item_log(it, LOG_LEVEL_INFO, "task output changed while it was hashed; digest not recorded",
                 NULL);
        item_free(it);
        return;
    }
    unsigned char dg[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(it->md, dg, &dl);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", dg[i]);
    close(it->fd);
    it->fd = -1;
    if (store_dataset_digest(it->o->st, it->ns, it->name, it->uri, it->size, hex, on_digest, it) !=
        0) {
        item_log(it, LOG_LEVEL_WARN, "cannot record the digest of a task output",
                 "database unavailable");
        item_free(it);
    }
}

static void on_inserted(void *arg, const struct db_rows *r)
{
    struct oitem *it = arg;
    if (r->err) {
        item_log(it, LOG_LEVEL_WARN, "cannot register a task output as a dataset", r->msg);
        item_free(it);
        return;
    }
    if (r->n == 0) { /* registered meanwhile (another scan), or a dataset of that name */
        item_free(it);
        return;
    }
    item_log(it, LOG_LEVEL_INFO, "task output registered as a dataset", NULL);
    it->md = EVP_MD_CTX_new();
    it->buf = gw_xmalloc(STEP);
    it->ev = evtimer_new(it->o->base, on_step, it);
    if (!it->md || !it->ev || EVP_DigestInit_ex(it->md, EVP_sha256(), NULL) != 1) {
        item_log(it, LOG_LEVEL_WARN, "cannot hash a task output", "out of resources");
        item_free(it);
        return;
    }
    struct timeval now0 = {0, 0};
    event_add(it->ev, &now0);
}

static void register_row(struct outputs *o, const struct oscan *s, const struct db_rows *r, int i)
{
    /* rows: namespace, name, role, role_index, task_name, output name */
    const char *ns = db_rows_get(r, i, 0), *name = db_rows_get(r, i, 1);
    const char *role = db_rows_get(r, i, 2), *idx = db_rows_get(r, i, 3);
    const char *tname = db_rows_get(r, i, 4), *out = db_rows_get(r, i, 5);
    struct log_ctx lc = {.job_id = s->job_id, .task_id = s->task_id};
    if (!name_ok(ns) || !name_ok(name)) {
        log_kv(LOG_LEVEL_WARN, &lc, "dataset.output",
               "task output address is not a dataset name; not registered", "namespace",
               ns ? ns : "", "name", name ? name : "", NULL);
        return;
    }
    struct stat sb;
    int fd = open_output(o->storage_dir, ns, name, &sb);
    if (fd < 0) {
        /* e.g. a PSI party that gets no result writes no output */
        log_kv(LOG_LEVEL_DEBUG, &lc, "dataset.output", "no output file; not registered",
               "namespace", ns, "name", name, NULL);
        return;
    }
    struct oitem *it = gw_xcalloc(1, sizeof(*it));
    it->o = o;
    it->fd = fd;
    it->job_id = gw_xstrdup(s->job_id);
    it->task_id = gw_xstrdup(s->task_id);
    it->ns = gw_xstrdup(ns);
    it->name = gw_xstrdup(name);
    it->uri = gw_xasprintf("file://%s/%s/%s/data", o->storage_dir, ns, name);
    it->len = (long long)sb.st_size;
    snprintf(it->size, sizeof(it->size), "%lld", it->len);
    it->next = o->items;
    if (o->items)
        o->items->prev = it;
    o->items = it;

    cJSON *m = cJSON_CreateObject();
    json_add_str(m, "source", "task");
    json_add_str(m, "job_id", s->job_id);
    json_add_str(m, "task_id", s->task_id);
    json_add_str(m, "task_name", tname ? tname : "");
    json_add_str(m, "role", role ? role : "");
    json_add_int(m, "role_index", idx ? atoll(idx) : 0);
    json_add_str(m, "output", out ? out : "");
    char *meta = json_print(m);
    cJSON_Delete(m);
    char *reason = gw_xasprintf("output %s of task %s (%s.%s)", out ? out : "",
                                tname ? tname : "", role ? role : "", idx ? idx : "0");
    struct dataset_out d = {.ns = ns, .name = name, .uri = it->uri, .size = it->size,
                            .meta = meta, .reason = reason};
    if (store_dataset_output(o->st, &d, on_inserted, it) != 0) {
        item_log(it, LOG_LEVEL_WARN, "cannot register a task output as a dataset",
                 "database unavailable");
        item_free(it);
    }
    cJSON_free(meta);
    free(reason);
}

static void on_outputs(void *arg, const struct db_rows *r)
{
    struct oscan *s = arg;
    if (r->err) {
        struct log_ctx lc = {.job_id = s->job_id, .task_id = s->task_id};
        log_kv(LOG_LEVEL_WARN, &lc, "dataset.output", "cannot read a task's outputs", "err",
               r->msg, NULL);
    }
    for (int i = 0; !r->err && i < r->n; i++)
        register_row(s->o, s, r, i);
    scan_free(s);
}

void outputs_task_changed(struct outputs *o, const char *job_id, const char *task_id)
{
    if (!o || !job_id || !task_id)
        return;
    struct oscan *s = gw_xcalloc(1, sizeof(*s));
    s->o = o;
    s->job_id = gw_xstrdup(job_id);
    s->task_id = gw_xstrdup(task_id);
    s->next = o->scans;
    if (o->scans)
        o->scans->prev = s;
    o->scans = s;
    if (store_task_outputs(o->st, job_id, task_id, on_outputs, s) != 0)
        scan_free(s); /* the database is busy or down: the next change scans again */
}
