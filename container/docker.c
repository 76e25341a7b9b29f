/*
 * docker.c - Docker Engine API client.
 *
 * One struct docker_call per API call.  Before the first versioned call the
 * client asks GET /version (unversioned) and negotiates; calls made meanwhile
 * wait in a short list and go out once the version is known.  Every call
 * then runs as one httpc request whose completion maps the HTTP status to a
 * gw_err and hands the parsed body to the caller.
 */
#include "docker.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/httpc.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "gateway/metrics.h"

#define DOCKER_LOGS_KEEP (64 * 1024)
#define DOCKER_FRAME_MAX (1024 * 1024)
#define DOCKER_LINE_MAX (1024 * 1024)
#define DOCKER_LONG_POLL_MS (7L * 24 * 3600 * 1000) /* waits and streams: no practical limit */

enum call_kind {
    K_PLAIN,
    K_START,  /* 304 is success */
    K_STOP,   /* 304 is success */
    K_KILL,   /* 409 not running is success */
    K_REMOVE, /* 404 is success */
    K_LOGS,   /* body is 8-byte framed */
    K_PULL,   /* body is NDJSON progress; scan for errors */
    K_EVENTS, /* streaming NDJSON */
    K_VERSION,
};

struct docker {
    struct httpc *hc;
    struct metrics *m;
    char *base;      /* "http://localhost" or "http://h:p" / "https://h:p" */
    char *unix_path; /* NULL for TCP */
    char *host;      /* as configured, for messages */
    long timeout_ms;
    char *ca_file, *cert_file, *key_file;
    char *registry_auth;
    char version[16];
    bool negotiating;
    struct docker_call *waiting; /* calls held until the version is known */
    struct docker_call *calls;   /* every live call (for docker_free) */
};

struct docker_call {
    struct docker *d;
    struct docker_call *next_wait;
    struct docker_call *prev, *next;
    enum call_kind kind;
    char *method;
    char *path; /* without the version prefix, e.g. "/containers/x/start" */
    char *query;
    char *body;
    size_t body_len;
    bool versioned;
    long timeout_ms;
    docker_cb cb;
    void *arg;
    void (*on_armed)(void *arg);
    void (*on_event)(void *arg, const cJSON *ev);
    struct httpc_req *req;
    char *line; /* NDJSON accumulator for events */
    size_t line_len;
};

/* ---- pure helpers ----------------------------------------------------------- */

static bool parse_ver(const char *s, long *maj, long *min)
{
    if (!s || !isdigit((unsigned char)*s))
        return false;
    char *end;
    *maj = strtol(s, &end, 10);
    if (*end != '.' || !isdigit((unsigned char)end[1]))
        return false;
    *min = strtol(end + 1, &end, 10);
    return *end == '\0';
}

int docker_version_cmp(const char *a, const char *b)
{
    long am, an, bm, bn;
    bool ao = parse_ver(a, &am, &an), bo = parse_ver(b, &bm, &bn);
    if (!ao || !bo)
        return (int)ao - (int)bo;
    if (am != bm)
        return am < bm ? -1 : 1;
    if (an != bn)
        return an < bn ? -1 : 1;
    return 0;
}

int docker_version_negotiate(const char *engine_max, const char *engine_min, char *out, size_t cap,
                             struct gw_errbuf *eb)
{
    long m, n;
    if (!parse_ver(engine_max, &m, &n))
        return gw_errf(eb, GW_EDOCKER, "engine reported no usable API version ('%s')",
                       engine_max ? engine_max : "");
    const char *use = docker_version_cmp(engine_max, DOCKER_API_MAX) < 0 ? engine_max : DOCKER_API_MAX;
    const char *floor = DOCKER_API_MIN;
    if (engine_min && parse_ver(engine_min, &m, &n) && docker_version_cmp(engine_min, floor) > 0)
        floor = engine_min;
    if (docker_version_cmp(use, floor) < 0)
        return gw_errf(eb, GW_EDOCKER,
                       "no common Docker API version: engine supports %s..%s, this gateway %s..%s",
                       engine_min ? engine_min : "?", engine_max, DOCKER_API_MIN, DOCKER_API_MAX);
    snprintf(out, cap, "%s", use);
    return 0;
}

void docker_demux_init(struct docker_demux *dm, size_t cap)
{
    memset(dm, 0, sizeof(*dm));
    dm->cap = cap ? cap : DOCKER_LOGS_KEEP;
    dm->out = gw_xmalloc(dm->cap + 1);
    dm->out[0] = '\0';
}

/* Keep the last cap bytes: when full, drop the oldest half at once. */
static void demux_append(struct docker_demux *dm, const char *p, size_t n)
{
    if (n >= dm->cap) {
        memcpy(dm->out, p + n - dm->cap, dm->cap);
        dm->len = dm->cap;
    } else {
        if (dm->len + n > dm->cap) {
            size_t drop = dm->len + n - dm->cap;
            memmove(dm->out, dm->out + drop, dm->len - drop);
            dm->len -= drop;
        }
        memcpy(dm->out + dm->len, p, n);
        dm->len += n;
    }
    dm->out[dm->len] = '\0';
}

bool docker_demux_feed(struct docker_demux *dm, const char *buf, size_t len)
{
    while (len > 0 && !dm->corrupt) {
        if (dm->payload_left == 0) {
            size_t take = 8 - dm->hdr_have;
            if (take > len)
                take = len;
            memcpy(dm->hdr + dm->hdr_have, buf, take);
            dm->hdr_have += take;
            buf += take;
            len -= take;
            if (dm->hdr_have < 8)
                break;
            dm->hdr_have = 0;
            dm->stream = dm->hdr[0];
            size_t plen = (size_t)dm->hdr[4] << 24 | (size_t)dm->hdr[5] << 16 |
                          (size_t)dm->hdr[6] << 8 | dm->hdr[7];
            if (dm->stream > 2 || dm->hdr[1] || dm->hdr[2] || dm->hdr[3] || plen > DOCKER_FRAME_MAX) {
                dm->corrupt = true;
                break;
            }
            dm->payload_left = plen;
            continue;
        }
        size_t take = dm->payload_left < len ? dm->payload_left : len;
        if (dm->stream == 1 || dm->stream == 2)
            demux_append(dm, buf, take);
        dm->payload_left -= take;
        buf += take;
        len -= take;
    }
    return !dm->corrupt;
}

void docker_demux_cleanup(struct docker_demux *dm)
{
    free(dm->out);
    dm->out = NULL;
}

void docker_error_text(long status, const char *body, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    if (body && len) {
        struct gw_errbuf eb;
        cJSON *j = json_parse(body, len, &eb);
        const cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;
        if (cJSON_IsString(m) && m->valuestring[0]) {
            snprintf(out, cap, "%s", m->valuestring);
        } else if (!j) {
            /* text/plain middleware errors ("client version ... is too old") */
            size_t a = 0, b = len;
            while (a < b && isspace((unsigned char)body[a]))
                a++;
            while (b > a && isspace((unsigned char)body[b - 1]))
                b--;
            snprintf(out, cap, "%.*s", (int)(b - a), body + a);
        }
        cJSON_Delete(j);
    }
    if (!out[0])
        snprintf(out, cap, "HTTP %ld", status);
}

/* ---- names and URLs ------------------------------------------------------------ */

static bool valid_name(const char *s)
{
    if (!s || !isalnum((unsigned char)s[0]) || strlen(s) > 128)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
            return false;
    return true;
}

static bool valid_image(const char *s)
{
    if (!s || !*s || strlen(s) > 512 || s[0] == '/' || s[0] == '.' || strstr(s, ".."))
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._/:@-", *p))
            return false;
    return true;
}

static char *url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *o = gw_xmalloc(strlen(s) * 3 + 1);
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || strchr("-_.~", *p)) {
            o[n++] = (char)*p;
        } else {
            o[n++] = '%';
            o[n++] = hex[*p >> 4];
            o[n++] = hex[*p & 15];
        }
    }
    o[n] = '\0';
    return o;
}

/* ---- the client ------------------------------------------------------------------ */

struct docker *docker_new(struct httpc *hc, struct metrics *m, const struct docker_opts *o,
                          struct gw_errbuf *eb)
{
    const char *h = o && o->host ? o->host : "";
    struct docker *d = gw_xcalloc(1, sizeof(*d));
    if (strncmp(h, "unix://", 7) == 0 && h[7] == '/' && strlen(h) > 8) {
        if (strlen(h + 7) > 107) {
            free(d);
            gw_errf(eb, GW_EINVAL, "docker.host: unix socket path longer than 107 bytes");
            return NULL;
        }
        d->unix_path = gw_xstrdup(h + 7);
        d->base = gw_xstrdup("http://localhost");
    } else if (strncmp(h, "tcp://", 6) == 0 && h[6] && !strchr(h + 6, '/')) {
        d->base = gw_xasprintf("http://%s", h + 6);
    } else if (strncmp(h, "https://", 8) == 0 && h[8] && !strchr(h + 8, '/')) {
        d->base = gw_xstrdup(h);
    } else {
        free(d);
        gw_errf(eb, GW_EINVAL,
                "docker.host: expected unix:///path, tcp://host:port or https://host:port, got '%.128s'",
                h);
        return NULL;
    }
    d->hc = hc;
    d->m = m;
    d->host = gw_xstrdup(h);
    d->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    d->ca_file = gw_xstrdup(o->ca_file);
    d->cert_file = gw_xstrdup(o->cert_file);
    d->key_file = gw_xstrdup(o->key_file);
    if (o->registry_auth && *o->registry_auth) {
        /* The engine decodes base64url *with* padding, and silently treats
         * an undecodable header as anonymous: restore padding left off. */
        size_t n = strlen(o->registry_auth), pad = (4 - n % 4) % 4;
        d->registry_auth = gw_xmalloc(n + pad + 1);
        memcpy(d->registry_auth, o->registry_auth, n);
        memset(d->registry_auth + n, '=', pad);
        d->registry_auth[n + pad] = '\0';
    }
    return d;
}

static void call_free(struct docker_call *c)
{
    struct docker *d = c->d;
    if (c->prev)
        c->prev->next = c->next;
    else if (d->calls == c)
        d->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->method);
    free(c->path);
    free(c->query);
    free(c->body);
    free(c->line);
    free(c);
}

void docker_set_timeout(struct docker *d, long timeout_ms)
{
    if (d)
        d->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
}

void docker_free(struct docker *d)
{
    if (!d)
        return;
    while (d->calls) {
        struct docker_call *c = d->calls;
        httpc_cancel(c->req);
        call_free(c);
    }
    free(d->base);
    free(d->unix_path);
    free(d->host);
    free(d->ca_file);
    free(d->cert_file);
    free(d->key_file);
    free(d->registry_auth);
    free(d);
}

const char *docker_api_version(const struct docker *d) { return d->version; }

static int call_send(struct docker_call *c);

static void deliver(struct docker_call *c, int err, long status, const char *msg, const cJSON *json,
                    const char *text, size_t text_len)
{
    if (c->d->m)
        metrics_count(c->d->m, err ? METRICS_DOCKER_FAIL : METRICS_DOCKER_OK);
    if (err)
        log_kv(LOG_LEVEL_DEBUG, NULL, "docker.call", msg, "path", c->path, NULL);
    struct docker_result r = {err, status, msg ? msg : "", json, text ? text : "", text_len};
    docker_cb cb = c->cb;
    void *arg = c->arg;
    call_free(c);
    if (cb)
        cb(arg, &r);
}

static int map_status(enum call_kind kind, long status, const char *msg)
{
    if (status >= 200 && status < 300)
        return 0;
    if (status == 304 && (kind == K_START || kind == K_STOP))
        return 0;
    if (status == 409 && kind == K_KILL && msg && strstr(msg, "not running"))
        return 0;
    if (status == 404 && kind == K_REMOVE)
        return 0;
    if (status == 404)
        return GW_ENOTFOUND;
    if (status == 409)
        return GW_ECONFLICT;
    if (status == 400)
        return GW_EINVAL;
    return GW_EDOCKER;
}

static void on_version_done(struct docker_call *c, const cJSON *j, int err, const char *msg);

static void on_http_done(void *arg, const struct httpc_resp *resp)
{
    struct docker_call *c = arg;
    c->req = NULL;
    char msg[512];
    if (resp->err) {
        int err = resp->err == GW_ETIMEOUT ? GW_ETIMEOUT : GW_EDOCKER;
        snprintf(msg, sizeof(msg), "cannot reach the Docker engine at %s: %s", c->d->host,
                 resp->errmsg && *resp->errmsg ? resp->errmsg : gw_strerror(resp->err));
        if (c->kind == K_VERSION) {
            on_version_done(c, NULL, err, msg);
            return;
        }
        deliver(c, err, 0, msg, NULL, NULL, 0);
        return;
    }
    int err = 0;
    msg[0] = '\0';
    if (resp->status >= 300)
        docker_error_text(resp->status, resp->body, resp->body_len, msg, sizeof(msg));
    err = map_status(c->kind, resp->status, msg);
    if (err == 0 && resp->status >= 300)
        msg[0] = '\0'; /* a tolerated status: not an error to report */

    if (c->kind == K_LOGS && !err) {
        struct docker_demux dm;
        docker_demux_init(&dm, DOCKER_LOGS_KEEP);
        bool framed = resp->body_len >= 8 && (unsigned char)resp->body[0] <= 2 &&
                      resp->body[1] == 0 && resp->body[2] == 0 && resp->body[3] == 0;
        if (framed)
            docker_demux_feed(&dm, resp->body, resp->body_len);
        else
            demux_append(&dm, resp->body, resp->body_len); /* Tty=true: raw */
        deliver(c, 0, resp->status, "", NULL, dm.out, dm.len);
        docker_demux_cleanup(&dm);
        return;
    }
    if (c->kind == K_PULL && !err) {
        /* errors after the 200 header arrive as {"error":...} lines */
        const char *p = resp->body;
        while (p && *p) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            struct gw_errbuf eb;
            cJSON *line = n ? json_parse(p, n, &eb) : NULL;
            const cJSON *e = line ? cJSON_GetObjectItemCaseSensitive(line, "error") : NULL;
            if (cJSON_IsString(e)) {
                snprintf(msg, sizeof(msg), "pull failed: %s", e->valuestring);
                err = GW_EDOCKER;
            }
            cJSON_Delete(line);
            if (err)
                break;
            p = nl ? nl + 1 : NULL;
        }
        deliver(c, err, resp->status, msg, NULL, NULL, 0);
        return;
    }
    cJSON *j = NULL;
    if (resp->body_len && (resp->body[0] == '{' || resp->body[0] == '[')) {
        struct gw_errbuf eb;
        j = json_parse(resp->body, resp->body_len, &eb);
    }
    if (c->kind == K_VERSION) {
        on_version_done(c, j, err, msg);
        cJSON_Delete(j);
        return;
    }
    deliver(c, err, resp->status, msg, j, resp->body, resp->body_len);
    cJSON_Delete(j);
}

/* The version probe finished: release or fail the waiting calls. */
static void on_version_done(struct docker_call *c, const cJSON *j, int err, const char *msg)
{
    struct docker *d = c->d;
    char why[512];
    snprintf(why, sizeof(why), "%s", msg ? msg : "");
    if (!err) {
        const cJSON *mx = j ? cJSON_GetObjectItemCaseSensitive(j, "ApiVersion") : NULL;
        const cJSON *mn = j ? cJSON_GetObjectItemCaseSensitive(j, "MinAPIVersion") : NULL;
        struct gw_errbuf eb;
        gw_errbuf_clear(&eb);
        err = docker_version_negotiate(cJSON_IsString(mx) ? mx->valuestring : NULL,
                                       cJSON_IsString(mn) ? mn->valuestring : NULL, d->version,
                                       sizeof(d->version), &eb);
        if (err) {
            snprintf(why, sizeof(why), "%s", eb.msg);
            d->version[0] = '\0';
        } else {
            log_kv(LOG_LEVEL_INFO, NULL, "docker.version", "negotiated Docker API version",
                   "version", d->version, "host", d->host, NULL);
        }
    }
    d->negotiating = false;
    struct docker_call *w = d->waiting;
    d->waiting = NULL;
    /* the probe itself answers docker_ping callers */
    deliver(c, err, 0, err ? why : d->version, NULL, NULL, 0);
    while (w) {
        struct docker_call *next = w->next_wait;
        w->next_wait = NULL;
        if (err || call_send(w) != 0)
            deliver(w, err ? err : GW_EDOCKER, 0, err ? why : "cannot send request", NULL, NULL, 0);
        w = next;
    }
}

static bool on_stream_data(void *arg, const char *buf, size_t len)
{
    struct docker_call *c = arg;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n') {
            if (c->line_len >= DOCKER_LINE_MAX)
                return false; /* corrupt stream: abort, the caller reconnects */
            if ((c->line_len & 1023) == 0)
                c->line = gw_xrealloc(c->line, c->line_len + 1024 + 1);
            c->line[c->line_len++] = buf[i];
            continue;
        }
        if (c->line_len) {
            struct gw_errbuf eb;
            cJSON *ev = json_parse(c->line, c->line_len, &eb);
            c->line_len = 0;
            if (ev && c->on_event)
                c->on_event(c->arg, ev);
            cJSON_Delete(ev);
        }
    }
    return true;
}

static void on_wait_headers(void *arg, long status)
{
    (void)status;
    struct docker_call *c = arg;
    if (c->on_armed) {
        void (*f)(void *) = c->on_armed;
        c->on_armed = NULL;
        f(c->arg);
    }
}

static int call_send(struct docker_call *c)
{
    struct docker *d = c->d;
    char *url = c->versioned ? gw_xasprintf("%s/v%s%s%s%s", d->base, d->version, c->path,
                                            c->query ? "?" : "", c->query ? c->query : "")
                             : gw_xasprintf("%s%s%s%s", d->base, c->path, c->query ? "?" : "",
                                            c->query ? c->query : "");
    char *auth = NULL;
    const char *headers[4] = {NULL, NULL, NULL, NULL};
    int nh = 0;
    if (c->body)
        headers[nh++] = "Content-Type: application/json";
    if (c->kind == K_PULL && d->registry_auth) {
        auth = gw_xasprintf("X-Registry-Auth: %s", d->registry_auth);
        headers[nh++] = auth;
    }
    struct httpc_opts o = {
        .method = c->method,
        .url = url,
        .unix_socket = d->unix_path,
        .headers = headers,
        .body = c->body,
        .body_len = c->body_len,
        .timeout_ms = c->timeout_ms,
        .connect_timeout_ms = 2000,
        .resp_max = 64u * 1024 * 1024,
        .ca_file = d->ca_file,
        .cert_file = d->cert_file,
        .key_file = d->key_file,
        .on_data = c->kind == K_EVENTS ? on_stream_data : NULL,
        .on_headers = c->on_armed ? on_wait_headers : NULL,
    };
    int rc = httpc_send(d->hc, &o, on_http_done, c, &c->req);
    free(url);
    free(auth);
    return rc;
}

static int call_go(struct docker_call *c);

/* Start a call: negotiate first if the version is not known yet.  hooks, if
 * not NULL, fills the call's stream hooks before anything is sent. */
static int call_start_hooks(struct docker *d, enum call_kind kind, const char *method,
                            char *path_take, char *query_take, const cJSON *body, long timeout_ms,
                            docker_cb cb, void *arg, void (*on_armed)(void *),
                            void (*on_event)(void *, const cJSON *), struct docker_call **out)
{
    struct docker_call *c = gw_xcalloc(1, sizeof(*c));
    c->d = d;
    c->kind = kind;
    c->method = gw_xstrdup(method);
    c->path = path_take;
    c->query = query_take;
    c->versioned = kind != K_VERSION;
    c->timeout_ms = timeout_ms ? timeout_ms : d->timeout_ms;
    c->cb = cb;
    c->arg = arg;
    c->on_armed = on_armed;
    c->on_event = on_event;
    if (body) {
        c->body = json_print(body);
        c->body_len = strlen(c->body);
    }
    c->next = d->calls;
    if (d->calls)
        d->calls->prev = c;
    d->calls = c;
    if (out)
        *out = c;
    return call_go(c);
}

static int call_go(struct docker_call *c)
{
    struct docker *d = c->d;
    if (c->versioned && !d->version[0]) {
        c->next_wait = d->waiting;
        d->waiting = c;
        if (!d->negotiating) {
            d->negotiating = true;
            struct docker_call *v = NULL;
            int rc = call_start_hooks(d, K_VERSION, "GET", gw_xstrdup("/version"), NULL, NULL, 0,
                                      NULL, NULL, NULL, NULL, &v);
            if (rc != 0) {
                d->negotiating = false;
                d->waiting = c->next_wait;
                call_free(c);
                return rc;
            }
        }
        return 0;
    }
    int rc = call_send(c);
    if (rc != 0)
        call_free(c);
    return rc;
}

static int call_start(struct docker *d, enum call_kind kind, const char *method, char *path_take,
                      char *query_take, const cJSON *body, long timeout_ms, docker_cb cb, void *arg,
                      struct docker_call **out)
{
    return call_start_hooks(d, kind, method, path_take, query_take, body, timeout_ms, cb, arg, NULL,
                            NULL, out);
}

void docker_cancel(struct docker_call *c)
{
    if (!c)
        return;
    struct docker *d = c->d;
    for (struct docker_call **pp = &d->waiting; *pp; pp = &(*pp)->next_wait) {
        if (*pp == c) {
            *pp = c->next_wait;
            break;
        }
    }
    httpc_cancel(c->req);
    call_free(c);
}

int docker_ping(struct docker *d, docker_cb cb, void *arg)
{
    /* Always re-negotiate: the engine may have been upgraded or restarted. */
    if (d->negotiating) {
        /* piggy-back: a versioned no-op would also wait; simplest is to wait too */
        return call_start(d, K_PLAIN, "GET", gw_xstrdup("/_ping"), NULL, NULL, 0, cb, arg, NULL);
    }
    d->version[0] = '\0';
    d->negotiating = true;
    struct docker_call *v = NULL;
    int rc = call_start(d, K_VERSION, "GET", gw_xstrdup("/version"), NULL, NULL, 0, cb, arg, &v);
    if (rc != 0)
        d->negotiating = false;
    return rc;
}

int docker_image_inspect(struct docker *d, const char *name, docker_cb cb, void *arg)
{
    if (!valid_image(name))
        return GW_EINVAL;
    return call_start(d, K_PLAIN, "GET", gw_xasprintf("/images/%s/json", name), NULL, NULL, 0, cb,
                      arg, NULL);
}

int docker_image_pull(struct docker *d, const char *ref, docker_cb cb, void *arg)
{
    if (!valid_image(ref))
        return GW_EINVAL;
    /* Without a tag or digest the engine pulls every tag of the repository:
     * name :latest explicitly, as the docker CLI does. */
    const char *last = strrchr(ref, '/');
    last = last ? last + 1 : ref;
    bool tagged = strchr(last, ':') || strchr(ref, '@');
    char *e = url_escape(ref);
    char *q = gw_xasprintf("fromImage=%s%s", e, tagged ? "" : "&tag=latest");
    free(e);
    return call_start(d, K_PULL, "POST", gw_xstrdup("/images/create"), q, NULL,
                      DOCKER_LONG_POLL_MS, cb, arg, NULL);
}

int docker_container_create(struct docker *d, const char *name, const cJSON *body, docker_cb cb,
                            void *arg)
{
    if (!valid_name(name) || !body)
        return GW_EINVAL;
    return call_start(d, K_PLAIN, "POST", gw_xstrdup("/containers/create"),
                      gw_xasprintf("name=%s", name), body, 0, cb, arg, NULL);
}

static int id_call(struct docker *d, enum call_kind kind, const char *method, const char *id,
                   const char *suffix, char *query, long timeout, docker_cb cb, void *arg,
                   struct docker_call **out)
{
    if (!valid_name(id)) {
        free(query);
        return GW_EINVAL;
    }
    return call_start(d, kind, method, gw_xasprintf("/containers/%s%s", id, suffix), query, NULL,
                      timeout, cb, arg, out);
}

int docker_container_start(struct docker *d, const char *id, docker_cb cb, void *arg)
{
    return id_call(d, K_START, "POST", id, "/start", NULL, 60000, cb, arg, NULL);
}

int docker_container_wait(struct docker *d, const char *id, const char *condition,
                          void (*on_armed)(void *arg), docker_cb cb, void *arg,
                          struct docker_call **out)
{
    if (condition && strcmp(condition, "not-running") != 0 && strcmp(condition, "next-exit") != 0 &&
        strcmp(condition, "removed") != 0)
        return GW_EINVAL;
    if (!valid_name(id))
        return GW_EINVAL;
    return call_start_hooks(d, K_PLAIN, "POST", gw_xasprintf("/containers/%s/wait", id),
                            gw_xasprintf("condition=%s", condition ? condition : "not-running"),
                            NULL, DOCKER_LONG_POLL_MS, cb, arg, on_armed, NULL, out);
}

int docker_container_inspect(struct docker *d, const char *id, docker_cb cb, void *arg)
{
    return id_call(d, K_PLAIN, "GET", id, "/json", NULL, 0, cb, arg, NULL);
}

int docker_container_logs(struct docker *d, const char *id, int tail, docker_cb cb, void *arg)
{
    char *q = tail > 0 ? gw_xasprintf("stdout=1&stderr=1&tail=%d", tail)
                       : gw_xstrdup("stdout=1&stderr=1&tail=all");
    return id_call(d, K_LOGS, "GET", id, "/logs", q, 0, cb, arg, NULL);
}

int docker_container_stop(struct docker *d, const char *id, int t, docker_cb cb, void *arg)
{
    if (t < 0)
        t = 0;
    return id_call(d, K_STOP, "POST", id, "/stop", gw_xasprintf("t=%d", t), (t + 30) * 1000L, cb,
                   arg, NULL);
}

int docker_container_kill(struct docker *d, const char *id, const char *signal, docker_cb cb,
                          void *arg)
{
    const char *s = signal ? signal : "SIGKILL";
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p))
            return GW_EINVAL;
    return id_call(d, K_KILL, "POST", id, "/kill", gw_xasprintf("signal=%s", s), 0, cb, arg, NULL);
}

int docker_container_remove(struct docker *d, const char *id, docker_cb cb, void *arg)
{
    return id_call(d, K_REMOVE, "DELETE", id, "", gw_xstrdup("force=1&v=1"), 0, cb, arg, NULL);
}

static char *label_filter(const char *label, bool events)
{
    cJSON *f = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(f, "label");
    cJSON_AddItemToArray(arr, cJSON_CreateString(label));
    if (events) {
        cJSON *t = cJSON_AddArrayToObject(f, "type");
        cJSON_AddItemToArray(t, cJSON_CreateString("container"));
    }
    char *s = json_print(f);
    cJSON_Delete(f);
    char *e = url_escape(s);
    cJSON_free(s);
    return e;
}

int docker_container_list(struct docker *d, const char *label, docker_cb cb, void *arg)
{
    if (!label || !*label || strlen(label) > 256)
        return GW_EINVAL;
    char *f = label_filter(label, false);
    char *q = gw_xasprintf("all=1&filters=%s", f);
    free(f);
    return call_start(d, K_PLAIN, "GET", gw_xstrdup("/containers/json"), q, NULL, 0, cb, arg, NULL);
}

int docker_events(struct docker *d, const char *label,
                  void (*on_event)(void *arg, const cJSON *ev), docker_cb cb, void *arg,
                  struct docker_call **out)
{
    if (!label || !*label || strlen(label) > 256 || !on_event)
        return GW_EINVAL;
    char *f = label_filter(label, true);
    char *q = gw_xasprintf("filters=%s", f);
    free(f);
    return call_start_hooks(d, K_EVENTS, "GET", gw_xstrdup("/events"), q, NULL,
                            DOCKER_LONG_POLL_MS, cb, arg, NULL, on_event, out);
}
