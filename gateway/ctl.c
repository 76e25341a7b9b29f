/*
 * ctl.c - bfiactl, the command-line client of a gateway node.
 *
 * Blocking libcurl is fine here: this is a short-lived CLI, not the loop.
 *
 * Exit codes (stable, scripts rely on them):
 *   0  success
 *   1  the gateway answered with a non-zero BFIA code (or not ready); for
 *      `job status --wait`, the job finished without success; for `peer
 *      check`, a step failed
 *   2  usage error (missing arguments, unreadable file, malformed JSON/YAML)
 *   3  the gateway could not be reached or answered garbage
 *   4  `job status --wait` timed out
 */
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "gateway/compat.h"
#include "gateway/json.h"
#include "gateway/jws.h"
#include "gateway/reqsig.h"

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3, EXIT_TIMEOUT = 4 };

#define CTL_BODY_MAX (64 * 1024 * 1024)
#define CTL_FILE_MAX (64 * 1024 * 1024) /* job and provider documents */
#define CTL_CODE_NOTFOUND 5002

struct ctl {
    const char *url; /* base URL of the node */
    bool json;       /* machine-readable output */
    long timeout_s;
    bool timeout_set; /* --timeout given explicitly */
};

struct buf {
    char *p;
    size_t n;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t add = size * nmemb;
    if (b->n + add > CTL_BODY_MAX)
        return 0;
    b->p = gw_xrealloc(b->p, b->n + add + 1);
    memcpy(b->p + b->n, data, add);
    b->n += add;
    b->p[b->n] = '\0';
    return add;
}

/* ---- HTTP ----------------------------------------------------------------------- */

struct http_opts {
    const char *method;           /* CUSTOMREQUEST, or NULL */
    const char *body;             /* JSON body, or NULL */
    curl_mime *mime;              /* multipart body (owned by the caller), or NULL */
    const char *const *headers;   /* extra headers, NULL-terminated, or NULL */
    long timeout_s;               /* 0: no limit */
    long connect_timeout_s;       /* 0: libcurl's default */
    bool connect_only;            /* TCP connect only */
};

/* One transfer on h; errbuf has CURL_ERROR_SIZE bytes. */
static CURLcode http_do(CURL *h, const char *url, const struct http_opts *o, long *status,
                        struct buf *out, char *errbuf)
{
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
    if (!o->mime)
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
    for (size_t i = 0; o->headers && o->headers[i]; i++)
        hdr = curl_slist_append(hdr, o->headers[i]);
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, o->timeout_s);
    if (o->connect_timeout_s > 0)
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s);
    if (o->connect_only) {
        curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
        if (o->mime)
            curl_easy_setopt(h, CURLOPT_MIMEPOST, o->mime);
        else if (o->body)
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, o->body);
        if (o->method)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, o->method);
    }
    CURLcode rc = curl_easy_perform(h);
    if (status) {
        *status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdr);
    return rc;
}

/* One call to the node (h: a handle to use, or NULL for a fresh one);
 * returns an exit code and fills status and out. */
static int call_h(const struct ctl *c, CURL *h, const char *method, const char *path,
                  const char *body, curl_mime *mime, long timeout_s, long *status, struct buf *out)
{
    CURL *own = h ? NULL : curl_easy_init();
    if (!h && !own)
        return EXIT_UNREACHABLE;
    char *url = gw_xasprintf("%s%s", c->url, path);
    char errbuf[CURL_ERROR_SIZE];
    struct http_opts o = {.method = mime ? NULL : method, .body = body, .mime = mime,
                          .timeout_s = timeout_s};
    CURLcode rc = http_do(h ? h : own, url, &o, status, out, errbuf);
    if (own)
        curl_easy_cleanup(own);
    free(url);
    if (rc != CURLE_OK) {
        fprintf(stderr, "bfiactl: cannot reach %s: %s\n", c->url,
                errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return EXIT_UNREACHABLE;
    }
    return EXIT_OK;
}

static int call(const struct ctl *c, const char *method, const char *path, const char *body,
                long *status, struct buf *out)
{
    return call_h(c, NULL, method, path, body, NULL, c->timeout_s, status, out);
}

/* Percent-encode s for a query string (RFC 3986 unreserved kept). */
static void put_escaped(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char tmp[4];
        size_t n = 0;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            tmp[n++] = (char)ch;
        } else {
            tmp[n++] = '%';
            tmp[n++] = hex[ch >> 4];
            tmp[n++] = hex[ch & 15];
        }
        on_write(tmp, 1, n, b);
    }
}

/* path?k1=v1&k2=v2...: npairs pairs of key and value in kv; a NULL value
 * skips its pair.  Result freed with free(). */
static char *with_query(const char *path, const char *const *kv, size_t npairs)
{
    struct buf b = {NULL, 0};
    on_write((char *)path, 1, strlen(path), &b);
    char sep = '?';
    for (size_t i = 0; i < npairs; i++) {
        const char *k = kv[2 * i], *v = kv[2 * i + 1];
        if (!v)
            continue;
        on_write(&sep, 1, 1, &b);
        on_write((char *)k, 1, strlen(k), &b);
        on_write("=", 1, 1, &b);
        put_escaped(&b, v);
        sep = '&';
    }
    return b.p;
}

/* path?key=val (nothing added when val is NULL). */
static char *with_query1(const char *path, const char *key, const char *val)
{
    const char *kv[2] = {key, val};
    return with_query(path, kv, 1);
}

/* ---- BFIA envelope --------------------------------------------------------------- */

struct env {
    char *raw;         /* the answer as received */
    cJSON *root;       /* parsed */
    long status;       /* HTTP status */
    int code;          /* BFIA code */
    bool ok;           /* code means success */
    const char *msg;   /* borrowed from root, never NULL */
    const cJSON *data; /* borrowed from root, may be NULL */
};

static void env_free(struct env *e)
{
    cJSON_Delete(e->root);
    free(e->raw);
    memset(e, 0, sizeof(*e));
}

/* Take out (an answer with HTTP status) into e. */
static int env_parse(const struct ctl *c, long status, struct buf *out, struct env *e)
{
    memset(e, 0, sizeof(*e));
    e->raw = out->p ? out->p : gw_xstrdup("");
    out->p = NULL;
    e->status = status;
    struct gw_errbuf eb;
    e->root = json_parse(e->raw, out->n, &eb);
    const cJSON *code = e->root ? cJSON_GetObjectItemCaseSensitive(e->root, "code") : NULL;
    if (!e->root || !cJSON_IsNumber(code)) {
        fprintf(stderr, "bfiactl: %s answered HTTP %ld without a BFIA envelope\n", c->url, status);
        env_free(e);
        return EXIT_UNREACHABLE;
    }
    e->code = code->valueint;
    e->ok = e->code == 0 || (e->code == 200 && status == 200);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e->root, "msg");
    e->msg = cJSON_IsString(msg) ? msg->valuestring : "(no message)";
    e->data = cJSON_GetObjectItemCaseSensitive(e->root, "data");
    return EXIT_OK;
}

/* Call an endpoint answering the BFIA envelope. */
static int env_fetch(const struct ctl *c, const char *method, const char *path, const char *body,
                     struct env *e)
{
    long status = 0;
    struct buf out = {NULL, 0};
    memset(e, 0, sizeof(*e));
    int rc = call(c, method, path, body, &status, &out);
    if (rc != EXIT_OK) {
        free(out.p);
        return rc;
    }
    return env_parse(c, status, &out, e);
}

/*
 * The common ending: with --json print the raw answer; a refusal prints its
 * code and message.  Returns the exit code, or -1 when the caller is to print
 * e->data itself (human output of a success).
 */
static int env_report(const struct ctl *c, const struct env *e)
{
    if (c->json) {
        fputs(e->raw, stdout);
        fputc('\n', stdout);
        return e->ok ? EXIT_OK : EXIT_REFUSED;
    }
    if (!e->ok) {
        fprintf(stderr, "error %d: %s\n", e->code, e->msg);
        return EXIT_REFUSED;
    }
    return -1;
}

/* Call an endpoint answering the BFIA envelope and print data. */
static int call_envelope(const struct ctl *c, const char *method, const char *path,
                         const char *body)
{
    struct env e;
    int rc = env_fetch(c, method, path, body, &e);
    if (rc != EXIT_OK)
        return rc;
    if (c->json) {
        rc = env_report(c, &e);
    } else {
        if (!e.ok)
            fprintf(stderr, "error %d: %s\n", e.code, e.msg);
        if (e.data && !(cJSON_IsObject(e.data) && !e.data->child)) {
            char *s = cJSON_Print(e.data);
            puts(s);
            cJSON_free(s);
        } else if (e.ok) {
            puts("ok");
        }
        rc = e.ok ? EXIT_OK : EXIT_REFUSED;
    }
    env_free(&e);
    return rc;
}

/* Borrowed string member, "" when absent or not a string. */
static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int cmd_metrics(const struct ctl *c)
{
    long status = 0;
    struct buf out = {NULL, 0};
    int rc = call(c, "GET", "/metrics", NULL, &status, &out);
    if (rc == EXIT_OK)
        fputs(out.p ? out.p : "", stdout);
    free(out.p);
    return rc == EXIT_OK && status != 200 ? EXIT_REFUSED : rc;
}

/* ---- arguments -------------------------------------------------------------------- */

struct subopt {
    const char *name; /* "--wait" */
    const char **val; /* where a value goes, or NULL for a flag */
    bool *flag;       /* set when the flag is present */
};

/* Split a command's arguments into positionals (at most maxpos) and options. */
static bool parse_args(int n, char **a, const struct subopt *opts, const char **pos, int minpos,
                       int maxpos, int *npos)
{
    *npos = 0;
    bool dashdash = false;
    for (int i = 0; i < n; i++) {
        const char *s = a[i];
        if (!dashdash && strcmp(s, "--") == 0) {
            dashdash = true;
            continue;
        }
        if (!dashdash && s[0] == '-' && s[1] != '\0') {
            const struct subopt *o = opts;
            size_t nl = strcspn(s, "=");
            for (; o && o->name; o++)
                if (strlen(o->name) == nl && strncmp(o->name, s, nl) == 0)
                    break;
            if (!o || !o->name) {
                fprintf(stderr, "bfiactl: unknown option '%s'\n", s);
                return false;
            }
            if (!o->val) {
                if (s[nl] == '=') {
                    fprintf(stderr, "bfiactl: option '%s' takes no value\n", o->name);
                    return false;
                }
                *o->flag = true;
            } else if (s[nl] == '=') {
                *o->val = s + nl + 1;
            } else if (i + 1 < n) {
                *o->val = a[++i];
            } else {
                fprintf(stderr, "bfiactl: option '%s' needs a value\n", o->name);
                return false;
            }
            continue;
        }
        if (*npos >= maxpos) {
            fprintf(stderr, "bfiactl: unexpected argument '%s'\n", s);
            return false;
        }
        pos[(*npos)++] = s;
    }
    if (*npos < minpos) {
        fprintf(stderr, "bfiactl: missing argument (see bfiactl --help)\n");
        return false;
    }
    for (int i = 0; i < *npos; i++)
        if (!pos[i][0]) {
            fprintf(stderr, "bfiactl: empty argument\n");
            return false;
        }
    return true;
}

static bool parse_count(const char *opt, const char *s, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0) {
        fprintf(stderr, "bfiactl: %s: expected a non-negative integer, got '%s'\n", opt, s);
        return false;
    }
    *out = v;
    return true;
}

/* ---- JSON / YAML documents -------------------------------------------------------- */

/* The whole of path ("-": standard input), NUL-terminated; NULL after printing why. */
static char *read_all(const char *path, size_t *len)
{
    bool in = strcmp(path, "-") == 0;
    FILE *f = in ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bfiactl: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    struct buf b = {gw_xstrdup(""), 0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.n + n > CTL_FILE_MAX) {
            fprintf(stderr, "bfiactl: %s: larger than %d MiB\n", in ? "standard input" : path,
                    CTL_FILE_MAX >> 20);
            free(b.p);
            if (!in)
                fclose(f);
            return NULL;
        }
        on_write(chunk, 1, n, &b);
    }
    int err = ferror(f) ? errno : 0;
    if (!in)
        fclose(f);
    if (err) {
        fprintf(stderr, "bfiactl: cannot read %s: %s\n", in ? "standard input" : path,
                strerror(err));
        free(b.p);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

#define Y_MAX_DEPTH 128
#define Y_MAX_NODES 1000000L /* also bounds alias expansion ("billion laughs") */

struct y_anchor {
    char *name;
    const cJSON *node; /* owned by the tree being built */
};

struct yconv {
    yaml_parser_t p;
    struct y_anchor *anch;
    size_t nanch;
    long nodes;
    bool failed;
    char err[320];
};

static void y_fail(struct yconv *y, const yaml_mark_t *m, const char *fmt, ...) GW_PRINTF(3, 4);
static void y_fail(struct yconv *y, const yaml_mark_t *m, const char *fmt, ...)
{
    if (y->failed)
        return;
    y->failed = true;
    int n = snprintf(y->err, sizeof(y->err), "line %zu column %zu: ", (size_t)m->line + 1,
                     (size_t)m->column + 1);
    if (n < 0 || (size_t)n >= sizeof(y->err))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(y->err + n, sizeof(y->err) - (size_t)n, fmt, ap);
    va_end(ap);
}

static bool y_next(struct yconv *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->p, ev))
        return true;
    const char *ctx = y->p.context;
    y_fail(y, &y->p.problem_mark, "%s%s%s", y->p.problem ? y->p.problem : "syntax error",
           ctx ? " " : "", ctx ? ctx : "");
    return false;
}

static long count_nodes(const cJSON *n)
{
    long k = 1;
    for (const cJSON *c = n->child; c; c = c->next)
        k += count_nodes(c);
    return k;
}

/* The whole of s matches JSON's number grammar (so it can go out verbatim). */
static bool json_number_ok(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return false;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* YAML 1.2 core schema numbers: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?,
 * 0x[0-9a-fA-F]+ and 0o[0-7]+.  NULL when s is not one. */
static cJSON *y_number(const char *s)
{
    if (json_number_ok(s))
        return cJSON_CreateRaw(s); /* exact, even beyond a double's precision */
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o') && s[2]) {
        int base = s[1] == 'x' ? 16 : 8;
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s + 2, &end, base);
        if (errno || *end || s[2] == '-' || s[2] == '+' || s[2] == ' ')
            return NULL;
        return cJSON_CreateNumber((double)v);
    }
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    size_t ip = strspn(p, "0123456789");
    p += ip;
    size_t fp = 0;
    if (*p == '.') {
        p++;
        fp = strspn(p, "0123456789");
        p += fp;
    }
    if (ip == 0 && fp == 0)
        return NULL;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        size_t ep = strspn(p, "0123456789");
        if (ep == 0)
            return NULL;
        p += ep;
    }
    if (*p)
        return NULL;
    double d = strtod(s, NULL);
    return isfinite(d) ? cJSON_CreateNumber(d) : NULL;
}

static bool is_one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

static const char *const y_nulls[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const y_trues[] = {"true", "True", "TRUE", NULL};
static const char *const y_falses[] = {"false", "False", "FALSE", NULL};

#define Y_TAG "tag:yaml.org,2002:"

static cJSON *y_scalar(struct yconv *y, const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    const char *t = tag && strncmp(tag, Y_TAG, strlen(Y_TAG)) == 0 ? tag + strlen(Y_TAG) : NULL;
    if ((tag && strcmp(tag, "!") == 0) || (t && strcmp(t, "str") == 0))
        return cJSON_CreateString(v);
    if (t && strcmp(t, "null") == 0)
        return cJSON_CreateNull();
    if (t && strcmp(t, "bool") == 0) {
        if (is_one_of(v, y_trues))
            return cJSON_CreateTrue();
        if (is_one_of(v, y_falses))
            return cJSON_CreateFalse();
        y_fail(y, &ev->start_mark, "'%s' is not a boolean", v);
        return NULL;
    }
    if (t && (strcmp(t, "int") == 0 || strcmp(t, "float") == 0)) {
        cJSON *n = y_number(v);
        if (!n)
            y_fail(y, &ev->start_mark, "'%s' is not a number", v);
        return n;
    }
    if (!plain)
        return cJSON_CreateString(v); /* quoted and block scalars stay strings */
    if (is_one_of(v, y_nulls))
        return cJSON_CreateNull();
    if (is_one_of(v, y_trues))
        return cJSON_CreateTrue();
    if (is_one_of(v, y_falses))
        return cJSON_CreateFalse();
    cJSON *n = y_number(v);
    return n ? n : cJSON_CreateString(v);
}

/* Build the node that starts with ev (consumed).  NULL with y->err on error. */
static cJSON *y_node(struct yconv *y, yaml_event_t *ev, int depth)
{
    cJSON *out = NULL;
    const yaml_char_t *anchor = NULL;
    if (depth > Y_MAX_DEPTH) {
        y_fail(y, &ev->start_mark, "nested deeper than %d levels", Y_MAX_DEPTH);
        goto done;
    }
    if (++y->nodes > Y_MAX_NODES) {
        y_fail(y, &ev->start_mark, "more than %ld nodes", Y_MAX_NODES);
        goto done;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        const cJSON *target = NULL;
        for (size_t i = y->nanch; i-- > 0;)
            if (strcmp(y->anch[i].name, name) == 0) {
                target = y->anch[i].node;
                break;
            }
        if (!target) {
            y_fail(y, &ev->start_mark, "alias *%s names no (complete) anchor", name);
            break;
        }
        y->nodes += count_nodes(target);
        if (y->nodes > Y_MAX_NODES) {
            y_fail(y, &ev->start_mark, "aliases expand to more than %ld nodes", Y_MAX_NODES);
            break;
        }
        out = cJSON_Duplicate(target, true);
        break;
    }
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        out = y_scalar(y, ev);
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        out = cJSON_CreateArray();
        for (;;) {
            yaml_event_t e;
            if (!y_next(y, &e)) {
                cJSON_Delete(out);
                out = NULL;
                break;
            }
            if (e.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&e);
                break;
            }
            cJSON *item = y_node(y, &e, depth + 1);
            if (!item) {
                cJSON_Delete(out);
                out = NULL;
                break;
            }
            cJSON_AddItemToArray(out, item);
        }
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        out = cJSON_CreateObject();
        for (;;) {
            yaml_event_t k, v;
            if (!y_next(y, &k))
                goto bad_map;
            if (k.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&k);
                break;
            }
            if (k.type != YAML_SCALAR_EVENT) {
                y_fail(y, &k.start_mark, "a mapping key must be a scalar (it becomes a JSON key)");
                yaml_event_delete(&k);
                goto bad_map;
            }
            char *key = gw_xstrdup((const char *)k.data.scalar.value);
            if (cJSON_GetObjectItemCaseSensitive(out, key)) {
                y_fail(y, &k.start_mark, "duplicate key '%s'", key);
                yaml_event_delete(&k);
                free(key);
                goto bad_map;
            }
            yaml_event_delete(&k);
            cJSON *val = y_next(y, &v) ? y_node(y, &v, depth + 1) : NULL;
            if (!val) {
                free(key);
                goto bad_map;
            }
            cJSON_AddItemToObject(out, key, val);
            free(key);
        }
        break;
    bad_map:
        cJSON_Delete(out);
        out = NULL;
        break;
    default:
        y_fail(y, &ev->start_mark, "unexpected YAML structure");
        break;
    }
    if (out && anchor) {
        y->anch = gw_xrealloc(y->anch, (y->nanch + 1) * sizeof(*y->anch));
        y->anch[y->nanch].name = gw_xstrdup((const char *)anchor);
        y->anch[y->nanch].node = out;
        y->nanch++;
    }
done:
    yaml_event_delete(ev);
    return out;
}

/* One YAML document as JSON; NULL with err filled. */
static cJSON *yaml_to_json(const char *text, size_t len, char *err, size_t errlen)
{
    struct yconv y;
    memset(&y, 0, sizeof(y));
    cJSON *root = NULL;
    yaml_event_t ev;
    if (!yaml_parser_initialize(&y.p)) {
        snprintf(err, errlen, "cannot initialise the YAML parser");
        return NULL;
    }
    yaml_parser_set_input_string(&y.p, (const unsigned char *)text, len);
    if (!y_next(&y, &ev)) /* stream start */
        goto out;
    yaml_event_delete(&ev);
    if (!y_next(&y, &ev))
        goto out;
    if (ev.type != YAML_DOCUMENT_START_EVENT) {
        y_fail(&y, &ev.start_mark, "empty document");
        yaml_event_delete(&ev);
        goto out;
    }
    yaml_event_delete(&ev);
    if (!y_next(&y, &ev))
        goto out;
    root = y_node(&y, &ev, 0);
    if (!root)
        goto out;
    if (!y_next(&y, &ev)) /* document end */
        goto fail;
    yaml_event_delete(&ev);
    if (!y_next(&y, &ev))
        goto fail;
    if (ev.type != YAML_STREAM_END_EVENT) {
        y_fail(&y, &ev.start_mark, "more than one YAML document");
        yaml_event_delete(&ev);
        goto fail;
    }
    yaml_event_delete(&ev);
    goto out;
fail:
    cJSON_Delete(root);
    root = NULL;
out:
    if (!root)
        snprintf(err, errlen, "%s", y.failed ? y.err : "malformed YAML");
    for (size_t i = 0; i < y.nanch; i++)
        free(y.anch[i].name);
    free(y.anch);
    yaml_parser_delete(&y.p);
    return root;
}

/* FILE ("-": standard input) as JSON, or else as YAML; NULL after printing why. */
static cJSON *load_doc(const char *path)
{
    size_t len = 0;
    char *text = read_all(path, &len);
    if (!text)
        return NULL;
    const char *name = strcmp(path, "-") == 0 ? "standard input" : path;
    size_t ws = strspn(text, " \t\r\n");
    if (ws == len) {
        fprintf(stderr, "bfiactl: %s is empty\n", name);
        free(text);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (root && text + len - end > (ptrdiff_t)strspn(end, " \t\r\n")) {
        cJSON_Delete(root); /* trailing data: not JSON */
        root = NULL;
    }
    if (root) {
        free(text);
        return root;
    }
    size_t jpos = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
    char yerr[400];
    root = yaml_to_json(text, len, yerr, sizeof(yerr));
    if (!root) {
        size_t pl = strlen(path);
        bool looks_json = text[ws] == '{' || text[ws] == '[' ||
                          (pl > 5 && strcmp(path + pl - 5, ".json") == 0);
        if (looks_json) {
            size_t line = 1, col = 1;
            for (size_t i = 0; i < jpos; i++) {
                if (text[i] == '\n') {
                    line++;
                    col = 1;
                } else {
                    col++;
                }
            }
            fprintf(stderr, "bfiactl: %s: malformed JSON at line %zu column %zu\n", name, line,
                    col);
        } else {
            fprintf(stderr, "bfiactl: %s: malformed YAML: %s\n", name, yerr);
        }
    }
    free(text);
    return root;
}

/* ---- job ---------------------------------------------------------------------------- */

static int cmd_job_submit(const struct ctl *c, int n, char **a)
{
    const char *pos[1];
    int np;
    if (!parse_args(n, a, NULL, pos, 1, 1, &np))
        return EXIT_USAGE;
    cJSON *doc = load_doc(pos[0]);
    if (!doc)
        return EXIT_USAGE;
    const char *name = strcmp(pos[0], "-") == 0 ? "standard input" : pos[0];
    const cJSON *flow = cJSON_GetObjectItemCaseSensitive(doc, "flow_id");
    const char *bad = NULL;
    if (!cJSON_IsObject(doc))
        bad = "expected a mapping/object holding dag and config";
    else if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "dag")))
        bad = "'dag' must be present and a mapping/object";
    else if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "config")))
        bad = "'config' must be present and a mapping/object";
    else if (flow && !cJSON_IsString(flow) && !cJSON_IsNull(flow))
        bad = "'flow_id' must be a string";
    if (bad) {
        fprintf(stderr, "bfiactl: %s: %s\n", name, bad);
        cJSON_Delete(doc);
        return EXIT_USAGE;
    }
    if (cJSON_IsNull(flow))
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "flow_id");
    char *body = json_print(doc);
    cJSON_Delete(doc);
    struct env e;
    int rc = env_fetch(c, "POST", "/v1/platform/schedule/job/create_all", body, &e);
    cJSON_free(body);
    if (rc != EXIT_OK)
        return rc;
    rc = env_report(c, &e);
    if (rc < 0) {
        const char *jid = jstr(e.data, "job_id");
        if (*jid) {
            puts(jid);
        } else {
            char *s = e.data ? cJSON_Print(e.data) : NULL;
            puts(s ? s : "ok");
            cJSON_free(s);
        }
        rc = EXIT_OK;
    }
    env_free(&e);
    return rc;
}

/* Write text with every line after the first indented by ind spaces. */
static void put_indented(FILE *f, const char *label, const char *text, int ind)
{
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    fprintf(f, "%*s%s", ind, "", label);
    for (size_t i = 0; i < n; i++) {
        fputc(text[i], f);
        if (text[i] == '\n')
            fprintf(f, "%*s", ind + (int)strlen(label), "");
    }
    fputc('\n', f);
}

static int maxw(int w, const char *s)
{
    int l = (int)strlen(s);
    return l > w ? l : w;
}

static void render_status(FILE *f, const char *job_id, const cJSON *d)
{
    const char *js = jstr(d, "job_status"), *oc = jstr(d, "outcome");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(d, "progress");
    double p = cJSON_IsNumber(pr) ? pr->valuedouble : 0;
    if (p < 0)
        p = 0;
    if (p > 100)
        p = 100;
    char bar[11];
    int filled = (int)(p / 10);
    for (int i = 0; i < 10; i++)
        bar[i] = i < filled ? '#' : '-';
    bar[10] = '\0';
    fprintf(f, "job %s  status %s  outcome %s  [%s] %d%%\n", job_id, *js ? js : "?",
            *oc ? oc : "-", bar, (int)p);
    if (*jstr(d, "wait_reason"))
        put_indented(f, "waiting: ", jstr(d, "wait_reason"), 2);
    if (*jstr(d, "error_text"))
        put_indented(f, "error: ", jstr(d, "error_text"), 2);
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(d, "tasks");
    if (!cJSON_IsArray(tasks) || !tasks->child) {
        fprintf(f, "  (no tasks yet)\n");
        return;
    }
    int w1 = 4, w2 = 4, w3 = 6, w4 = 7;
    const cJSON *t;
    cJSON_ArrayForEach(t, tasks)
    {
        w1 = maxw(w1, jstr(t, "task_name"));
        w2 = maxw(w2, jstr(t, "node_id"));
        w3 = maxw(w3, jstr(t, "status"));
        w4 = maxw(w4, jstr(t, "channel"));
    }
    fprintf(f, "  %-*s  %-*s  %-*s  %-*s  %s\n", w1, "TASK", w2, "NODE", w3, "STATUS", w4,
            "CHANNEL", "EXIT");
    cJSON_ArrayForEach(t, tasks)
    {
        const cJSON *ec = cJSON_GetObjectItemCaseSensitive(t, "exit_code");
        char ecs[24] = "-";
        if (cJSON_IsNumber(ec))
            snprintf(ecs, sizeof(ecs), "%d", ec->valueint);
        const char *ch = jstr(t, "channel");
        fprintf(f, "  %-*s  %-*s  %-*s  %-*s  %s\n", w1, jstr(t, "task_name"), w2,
                jstr(t, "node_id"), w3, jstr(t, "status"), w4, *ch ? ch : "-", ecs);
        if (*jstr(t, "wait_reason"))
            put_indented(f, "waiting: ", jstr(t, "wait_reason"), 6);
        if (*jstr(t, "error_text"))
            put_indented(f, "error: ", jstr(t, "error_text"), 6);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int cmd_job_status(const struct ctl *c, int n, char **a)
{
    const char *pos[1], *tmo = NULL;
    bool wait = false;
    int np;
    const struct subopt opts[] = {{"--wait", NULL, &wait}, {"--timeout", &tmo, NULL}, {NULL, NULL, NULL}};
    if (!parse_args(n, a, opts, pos, 1, 1, &np))
        return EXIT_USAGE;
    double limit_s = 600;
    if (tmo) {
        char *end = NULL;
        limit_s = strtod(tmo, &end);
        if (end == tmo || *end || !isfinite(limit_s) || limit_s <= 0) {
            fprintf(stderr, "bfiactl: --timeout: expected a positive number of seconds, got '%s'\n",
                    tmo);
            return EXIT_USAGE;
        }
    }
    if (tmo && !wait) {
        fprintf(stderr, "bfiactl: --timeout needs --wait\n");
        return EXIT_USAGE;
    }
    char *path = with_query1("/v1/platform/schedule/job/status_all", "job_id", pos[0]);
    long long deadline = gw_now_mono_ms() + (long long)(limit_s * 1000);
    char *last = NULL;
    int rc;
    for (;;) {
        struct env e;
        rc = env_fetch(c, "GET", path, NULL, &e);
        if (rc != EXIT_OK)
            break;
        if (!e.ok || !wait) {
            rc = env_report(c, &e);
            if (rc < 0) {
                render_status(stdout, pos[0], e.data);
                rc = EXIT_OK;
            }
            env_free(&e);
            break;
        }
        /* Print only what changed. */
        char *now = NULL;
        if (c->json) {
            now = e.data ? json_print(e.data) : gw_xstrdup("null");
        } else {
            size_t sz = 0;
            FILE *m = open_memstream(&now, &sz);
            if (!m)
                abort();
            render_status(m, pos[0], e.data);
            fclose(m);
        }
        if (!last || strcmp(last, now) != 0) {
            if (c->json) {
                fputs(e.raw, stdout);
                fputc('\n', stdout);
            } else {
                if (last)
                    fputc('\n', stdout);
                fputs(now, stdout);
            }
            fflush(stdout);
        }
        free(last);
        last = now;
        const char *js = jstr(e.data, "job_status");
        if (strcmp(js, "FINISHED") == 0 || strcmp(js, "REJECTED") == 0) {
            rc = strcmp(jstr(e.data, "outcome"), "success") == 0 ? EXIT_OK : EXIT_REFUSED;
            env_free(&e);
            break;
        }
        long long left = deadline - gw_now_mono_ms();
        if (left <= 0) {
            fprintf(stderr, "bfiactl: job %s is still %s after %g s\n", pos[0], *js ? js : "?",
                    limit_s);
            rc = EXIT_TIMEOUT;
            env_free(&e);
            break;
        }
        env_free(&e);
        sleep_ms(left < 500 ? (long)left : 500);
    }
    free(last);
    free(path);
    return rc;
}

static int cmd_job_stop(const struct ctl *c, int n, char **a)
{
    const char *pos[1];
    int np;
    if (!parse_args(n, a, NULL, pos, 1, 1, &np))
        return EXIT_USAGE;
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "job_id", pos[0]);
    char *s = json_print(b);
    cJSON_Delete(b);
    struct env e;
    int rc = env_fetch(c, "POST", "/v1/platform/schedule/job/stop_all", s, &e);
    cJSON_free(s);
    if (rc != EXIT_OK)
        return rc;
    rc = env_report(c, &e);
    if (rc < 0) {
        printf("job %s stopped\n", pos[0]);
        rc = EXIT_OK;
    }
    env_free(&e);
    return rc;
}

static int cmd_job_list(const struct ctl *c, int n, char **a)
{
    const char *pos[1] = {NULL};
    int np;
    if (!parse_args(n, a, NULL, pos, 0, 1, &np))
        return EXIT_USAGE;
    char *path = with_query1("/v1/platform/schedule/job/query_job_list", "flow_id", pos[0]);
    struct env e;
    int rc = env_fetch(c, "GET", path, NULL, &e);
    free(path);
    if (rc != EXIT_OK)
        return rc;
    rc = env_report(c, &e);
    if (rc < 0) {
        const cJSON *jl = cJSON_GetObjectItemCaseSensitive(e.data, "job_list");
        const cJSON *j;
        cJSON_ArrayForEach(j, jl)
        {
            if (cJSON_IsObject(j)) /* [{job_id, status}] from other implementations */
                printf("%s %s\n", jstr(j, "job_id"), jstr(j, "status"));
            else if (j->string)
                printf("%s %s\n", j->string, cJSON_IsString(j) ? j->valuestring : "?");
        }
        rc = EXIT_OK;
    }
    env_free(&e);
    return rc;
}

static int cmd_job_logs(const struct ctl *c, int n, char **a)
{
    const char *pos[1], *start = NULL, *length = NULL;
    int np;
    const struct subopt opts[] = {{"--start", &start, NULL}, {"--length", &length, NULL},
                                  {NULL, NULL, NULL}};
    if (!parse_args(n, a, opts, pos, 1, 1, &np))
        return EXIT_USAGE;
    long long v;
    if ((start && !parse_count("--start", start, &v)) ||
        (length && !parse_count("--length", length, &v)))
        return EXIT_USAGE;
    const char *kv[] = {"task_id", pos[0], "log_level", "info", "start", start ? start : "0",
                        "length", length};
    char *path = with_query("/v1/platform/schedule/task/get_log", kv, GW_ARRAY_LEN(kv) / 2);
    struct env e;
    int rc = env_fetch(c, "GET", path, NULL, &e);
    free(path);
    if (rc != EXIT_OK)
        return rc;
    rc = env_report(c, &e);
    if (rc < 0) {
        fputs(jstr(e.data, "data"), stdout);
        rc = EXIT_OK;
    }
    env_free(&e);
    return rc;
}

/* ---- provider ------------------------------------------------------------------------ */

static int cmd_provider_register(const struct ctl *c, int n, char **a)
{
    const char *pos[1];
    int np;
    if (!parse_args(n, a, NULL, pos, 1, 1, &np))
        return EXIT_USAGE;
    cJSON *doc = load_doc(pos[0]);
    if (!doc)
        return EXIT_USAGE;
    if (!cJSON_IsObject(doc)) {
        fprintf(stderr, "bfiactl: %s: expected an object (name, version, device, metadata...)\n",
                strcmp(pos[0], "-") == 0 ? "standard input" : pos[0]);
        cJSON_Delete(doc);
        return EXIT_USAGE;
    }
    char *body = json_print(doc);
    cJSON_Delete(doc);
    struct env e;
    int rc = env_fetch(c, "POST", "/v2/provider/register", body, &e);
    cJSON_free(body);
    if (rc != EXIT_OK)
        return rc;
    rc = env_report(c, &e);
    if (rc < 0) {
        const char *dg = jstr(e.data, "image_digest");
        printf("%s: %s %s image_digest %s\n", e.msg, jstr(e.data, "name"),
               jstr(e.data, "version"), *dg ? dg : "-");
        rc = EXIT_OK;
    }
    env_free(&e);
    return rc;
}

static int cmd_provider_list(const struct ctl *c, int n, char **a)
{
    const char *pos[1];
    int np;
    if (!parse_args(n, a, NULL, pos, 0, 0, &np))
        return EXIT_USAGE;
    struct env e;
    int rc = env_fetch(c, "GET", "/v2/provider/query", NULL, &e);
    if (rc != EXIT_OK)
        return rc;
    rc = env_report(c, &e);
    if (rc < 0) {
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(e.data, "providers");
        const cJSON *p;
        int w1 = 4, w2 = 7, w3 = 5, w4 = 6;
        cJSON_ArrayForEach(p, ps)
        {
            w1 = maxw(w1, jstr(p, "name"));
            w2 = maxw(w2, jstr(p, "version"));
            w3 = maxw(w3, jstr(p, "image"));
            w4 = maxw(w4, jstr(p, "image_digest"));
        }
        if (cJSON_GetArraySize(ps) > 0)
            printf("%-*s  %-*s  %-*s  %-*s  %s\n", w1, "NAME", w2, "VERSION", w3, "IMAGE", w4,
                   "DIGEST", "COMPONENTS");
        else
            puts("(no providers registered)");
        cJSON_ArrayForEach(p, ps)
        {
            const char *dg = jstr(p, "image_digest");
            printf("%-*s  %-*s  %-*s  %-*s  ", w1, jstr(p, "name"), w2, jstr(p, "version"), w3,
                   jstr(p, "image"), w4, *dg ? dg : "-");
            const cJSON *comps = cJSON_GetObjectItemCaseSensitive(p, "components");
            const cJSON *k;
            bool first = true;
            cJSON_ArrayForEach(k, comps)
            {
                const char *nm = k->string ? k->string : cJSON_IsString(k) ? k->valuestring : "?";
                printf("%s%s", first ? "" : ",", nm);
                first = false;
            }
            puts(first ? "-" : "");
        }
        rc = EXIT_OK;
    }
    env_free(&e);
    return rc;
}

/* ---- dataset --------------------------------------------------------------------------- */

static int cmd_dataset_upload(const struct ctl *c, int n, char **a)
{
    const char *pos[3];
    int np;
    if (!parse_args(n, a, NULL, pos, 3, 3, &np))
        return EXIT_USAGE;
    const char *file = pos[0];
    int fd = open(file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "bfiactl: cannot open %s: %s\n", file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return EXIT_USAGE;
    }
    close(fd);
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "bfiactl: %s is not a regular file\n", file);
        return EXIT_USAGE;
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    CURL *h = curl_easy_init();
    if (!h)
        return EXIT_UNREACHABLE;
    curl_mime *mime = curl_mime_init(h);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "namespace");
    curl_mime_data(part, pos[1], CURL_ZERO_TERMINATED);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "name");
    curl_mime_data(part, pos[2], CURL_ZERO_TERMINATED);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    if (curl_mime_filedata(part, file) != CURLE_OK) {
        fprintf(stderr, "bfiactl: cannot read %s\n", file);
        curl_mime_free(mime);
        curl_easy_cleanup(h);
        return EXIT_USAGE;
    }
    curl_mime_filename(part, base);
    curl_mime_type(part, "application/octet-stream");
    /* An upload takes as long as it takes unless --timeout says otherwise. */
    long status = 0;
    struct buf out = {NULL, 0};
    int rc = call_h(c, h, "POST", "/v2/component/upload/file", NULL, mime,
                    c->timeout_set ? c->timeout_s : 0, &status, &out);
    curl_mime_free(mime);
    curl_easy_cleanup(h);
    if (rc != EXIT_OK) {
        free(out.p);
        return rc;
    }
    struct env e;
    rc = env_parse(c, status, &out, &e);
    if (rc != EXIT_OK)
        return rc;
    rc = env_report(c, &e);
    if (rc < 0) {
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(e.data, "size");
        printf("%s %.0f %s\n", jstr(e.data, "dataset_id"), cJSON_IsNumber(sz) ? sz->valuedouble : 0,
               jstr(e.data, "sha256"));
        rc = EXIT_OK;
    }
    env_free(&e);
    return rc;
}

static int cmd_dataset_list(const struct ctl *c, int n, char **a)
{
    const char *pos[1] = {NULL};
    int np;
    if (!parse_args(n, a, NULL, pos, 0, 1, &np))
        return EXIT_USAGE;
    char *path = with_query1("/v2/component/dataset/list", "namespace", pos[0]);
    struct env e;
    int rc = env_fetch(c, "GET", path, NULL, &e);
    free(path);
    if (rc != EXIT_OK)
        return rc;
    rc = env_report(c, &e);
    if (rc < 0) {
        const cJSON *ds = cJSON_GetObjectItemCaseSensitive(e.data, "datasets");
        const cJSON *d;
        int w1 = 10, w2 = 4;
        char num[32];
        cJSON_ArrayForEach(d, ds)
        {
            const cJSON *sz = cJSON_GetObjectItemCaseSensitive(d, "size");
            snprintf(num, sizeof(num), "%.0f", cJSON_IsNumber(sz) ? sz->valuedouble : 0);
            w1 = maxw(w1, jstr(d, "dataset_id"));
            w2 = maxw(w2, num);
        }
        if (cJSON_GetArraySize(ds) > 0)
            printf("%-*s  %*s  %-64s  %s\n", w1, "DATASET_ID", w2, "SIZE", "SHA256", "URI");
        else
            puts("(no datasets)");
        cJSON_ArrayForEach(d, ds)
        {
            const cJSON *sz = cJSON_GetObjectItemCaseSensitive(d, "size");
            snprintf(num, sizeof(num), "%.0f", cJSON_IsNumber(sz) ? sz->valuedouble : 0);
            printf("%-*s  %*s  %-64s  %s\n", w1, jstr(d, "dataset_id"), w2, num,
                   jstr(d, "sha256"), jstr(d, "uri"));
        }
        rc = EXIT_OK;
    }
    env_free(&e);
    return rc;
}

/* ---- peer check ------------------------------------------------------------------------- */

struct steps {
    const struct ctl *c;
    cJSON *arr; /* --json: the steps */
};

static void step(struct steps *s, bool ok, const char *name, const char *fmt, ...) GW_PRINTF(4, 5);
static void step(struct steps *s, bool ok, const char *name, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (s->c->json) {
        cJSON *o = cJSON_CreateObject();
        json_add_str(o, "step", name);
        cJSON_AddBoolToObject(o, "ok", ok);
        json_add_str(o, "detail", detail);
        cJSON_AddItemToArray(s->arr, o);
    } else {
        printf("%-4s %s: %s\n", ok ? "ok" : "FAIL", name, detail);
        fflush(stdout);
    }
}

static int peer_check(const struct ctl *c, struct steps *s, const char *node)
{
    /* (1) resolve, on the local node */
    char *path = with_query1("/v1/platform/route/get", "node_id", node);
    struct env e;
    int rc = env_fetch(c, "GET", path, NULL, &e);
    free(path);
    if (rc != EXIT_OK) {
        step(s, false, "resolve", "cannot ask the local gateway %s", c->url);
        return rc;
    }
    if (!e.ok) {
        if (e.code == CTL_CODE_NOTFOUND)
            step(s, false, "resolve", "%s is not in the route table", node);
        else
            step(s, false, "resolve", "error %d: %s", e.code, e.msg);
        env_free(&e);
        return EXIT_REFUSED;
    }
    const char *host = jstr(e.data, "host"), *scheme = jstr(e.data, "scheme");
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(e.data, "port");
    long port = cJSON_IsNumber(pj) ? (long)pj->valuedouble : 0;
    if (!*scheme)
        scheme = "http";
    if (!*host || port <= 0 || port > 65535) {
        step(s, false, "resolve", "the route of %s has no usable host/port", node);
        env_free(&e);
        return EXIT_REFUSED;
    }
    bool v6 = strchr(host, ':') != NULL;
    char *hp = gw_xasprintf("%s%s%s:%ld", v6 ? "[" : "", host, v6 ? "]" : "", port);
    char *base = gw_xasprintf("%s://%s", scheme, hp);
    step(s, true, "resolve", "%s -> %s (profile %s)", node, base,
         *jstr(e.data, "profile") ? jstr(e.data, "profile") : "-");
    env_free(&e);

    char errbuf[CURL_ERROR_SIZE];
    long status = 0;
    struct buf out = {NULL, 0};
    rc = EXIT_REFUSED;
    /* (2) TCP connect */
    CURL *h = curl_easy_init();
    if (!h)
        goto out;
    char *tcp = gw_xasprintf("http://%s/", hp);
    struct http_opts co = {.connect_only = true, .connect_timeout_s = 3, .timeout_s = 3};
    long long t0 = gw_now_mono_ms();
    CURLcode cr = http_do(h, tcp, &co, NULL, NULL, errbuf);
    long long ms = gw_now_mono_ms() - t0;
    curl_easy_cleanup(h);
    free(tcp);
    if (cr != CURLE_OK) {
        step(s, false, "connect", "%s: %s", hp, errbuf[0] ? errbuf : curl_easy_strerror(cr));
        goto out;
    }
    step(s, true, "connect", "%s (%lld ms)", hp, ms);

    /* (3) HTTP: any status will do */
    long tmo = c->timeout_s < 10 ? c->timeout_s : 10;
    h = curl_easy_init();
    if (!h)
        goto out;
    char *url = gw_xasprintf("%s/healthz", base);
    struct http_opts ho = {.method = "GET", .connect_timeout_s = 3, .timeout_s = tmo};
    cr = http_do(h, url, &ho, &status, &out, errbuf);
    curl_easy_cleanup(h);
    free(url);
    free(out.p);
    out.p = NULL;
    out.n = 0;
    if (cr != CURLE_OK) {
        step(s, false, "http", "GET %s/healthz: %s", base,
             errbuf[0] ? errbuf : curl_easy_strerror(cr));
        goto out;
    }
    step(s, true, "http", "GET /healthz answered HTTP %ld", status);

    /* (4) protocol: an interconn call must answer a BFIA envelope */
    rc = env_fetch(c, "GET", "/version", NULL, &e);
    if (rc != EXIT_OK) {
        step(s, false, "protocol", "cannot read the local node id from %s/version", c->url);
        goto out;
    }
    char *me = gw_xstrdup(e.ok ? jstr(e.data, "node_id") : "");
    env_free(&e);
    rc = EXIT_REFUSED;
    if (!*me) {
        step(s, false, "protocol", "the local gateway did not tell its node id (/version)");
        free(me);
        goto out;
    }
    char h1[256], h2[256], h3[256];
    snprintf(h1, sizeof(h1), "x-node-id: %s", me);
    snprintf(h2, sizeof(h2), "x-source-node-id: %s", me);
    snprintf(h3, sizeof(h3), "x-target-node-id: %s", node);
    free(me);
    const char *hdrs[] = {h1, h2, h3, NULL};
    h = curl_easy_init();
    if (!h)
        goto out;
    url = gw_xasprintf("%s/v1/interconn/schedule/task/poll", base);
    struct http_opts po = {.method = "POST",
                           .body = "{\"task_id\":\"bfiactl-ping\",\"role\":\"\"}",
                           .headers = hdrs,
                           .connect_timeout_s = 3,
                           .timeout_s = tmo};
    cr = http_do(h, url, &po, &status, &out, errbuf);
    curl_easy_cleanup(h);
    free(url);
    if (cr != CURLE_OK) {
        step(s, false, "protocol", "POST /v1/interconn/schedule/task/poll: %s",
             errbuf[0] ? errbuf : curl_easy_strerror(cr));
        goto out;
    }
    struct gw_errbuf eb;
    cJSON *root = json_parse(out.p ? out.p : "", out.n, &eb);
    const cJSON *code = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "code") : NULL;
    if (!cJSON_IsNumber(code)) {
        step(s, false, "protocol", "answer is not a BFIA envelope (HTTP %ld, %zu bytes)", status,
             out.n);
    } else {
        step(s, true, "protocol", "task/poll answered code %d (%s)", code->valueint,
             jstr(root, "msg"));
        rc = EXIT_OK;
    }
    cJSON_Delete(root);
out:
    free(out.p);
    free(hp);
    free(base);
    return rc;
}

static int cmd_peer_check(const struct ctl *c, int n, char **a)
{
    const char *pos[1];
    int np;
    if (!parse_args(n, a, NULL, pos, 1, 1, &np))
        return EXIT_USAGE;
    struct steps s = {c, c->json ? cJSON_CreateArray() : NULL};
    int rc = peer_check(c, &s, pos[0]);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        json_add_str(o, "node_id", pos[0]);
        cJSON_AddBoolToObject(o, "ok", rc == EXIT_OK);
        cJSON_AddItemToObject(o, "steps", s.arr);
        char *txt = cJSON_Print(o);
        puts(txt);
        cJSON_free(txt);
        cJSON_Delete(o);
    }
    return rc;
}

/*
 * token verify FILE|-: verify a launch token (a task container's
 * /run/bfia/attest/token.jwt) against the node's published JWKS, with the
 * node's id as issuer and audience, and print the verdict and the binding.
 */
static int cmd_token_verify(const struct ctl *c, int n, char **a)
{
    if (n != 1) {
        fprintf(stderr, "usage: bfiactl token verify FILE|-\n");
        return EXIT_USAGE;
    }
    size_t len = 0;
    char *tok = read_all(a[0], &len);
    if (!tok) {
        fprintf(stderr, "bfiactl: cannot read %s\n", a[0]);
        return EXIT_USAGE;
    }
    while (len > 0 && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
        tok[--len] = '\0';
    struct env ver;
    int rc = env_fetch(c, "GET", "/version", NULL, &ver);
    if (rc != EXIT_OK) {
        free(tok);
        return rc;
    }
    char *node = gw_xstrdup(jstr(ver.data, "node_id"));
    env_free(&ver);
    long status = 0;
    struct buf out = {NULL, 0};
    rc = call(c, "GET", "/.well-known/jwks.json", NULL, &status, &out);
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    cJSON *jwks = rc == EXIT_OK ? json_parse(out.p ? out.p : "", out.n, &eb) : NULL;
    free(out.p);
    struct jws_keyset *ks = NULL;
    if (!jwks || jws_keyset_from_jwks(jwks, &ks, &eb) != 0) {
        fprintf(stderr, "bfiactl: the node's JWKS is unusable: %s\n", eb.msg);
        cJSON_Delete(jwks);
        free(tok);
        free(node);
        return rc != EXIT_OK ? rc : EXIT_REFUSED;
    }
    cJSON_Delete(jwks);
    struct jws_verify_ctx ctx;
    jws_verify_ctx_init(&ctx, JWS_TYP_LAUNCH, (long long)time(NULL));
    ctx.keys = ks;
    ctx.expected_iss = node;
    ctx.expected_aud = node;
    cJSON *claims = NULL;
    enum jws_error e = jws_verify(tok, len, &ctx, &claims);
    if (e != JWS_OK) {
        printf("REFUSED %s\n", jws_error_name(e));
        rc = EXIT_REFUSED;
    } else if (c->json) {
        char *s = cJSON_PrintUnformatted(claims);
        puts(s);
        cJSON_free(s);
        rc = EXIT_OK;
    } else {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(claims, "bfia");
        const cJSON *img = cJSON_GetObjectItemCaseSensitive(b, "image");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(b, "container");
        printf("OK issuer %s\n  job %s task %s role %s\n  image %s\n  container %s\n",
               jstr(claims, "iss"), jstr(b, "job_id"), jstr(b, "task_id"), jstr(b, "self_role"),
               jstr(img, "config_digest"), jstr(ct, "name"));
        rc = EXIT_OK;
    }
    cJSON_Delete(claims);
    jws_keyset_free(ks);
    free(tok);
    free(node);
    return rc;
}

/*
 * request sign: the headers a node-to-node request needs, signed with a
 * node key file (the README's canonical form).  For calling a peer by hand
 * with curl, and for checking a peer's implementation of the signature.
 *   bfiactl request sign --key PEM --from NODE --to NODE [--timestamp MS]
 *                        [--nonce N] [--body-mac-key KEY] METHOD TARGET [BODYFILE|-]
 *   --body-mac-key: the receiver's x-bfia-body-mac-key key; the body goes under
 *   a MAC (reqsig.h) and x-bfia-body-mac is printed too
 */
static int cmd_request_sign(int n, char **a)
{
    const char *key = NULL, *from = NULL, *to = NULL, *ts = NULL, *nonce = NULL, *bkey = NULL;
    int i = 0;
    for (; i + 1 < n && strncmp(a[i], "--", 2) == 0; i += 2) {
        if (strcmp(a[i], "--key") == 0)
            key = a[i + 1];
        else if (strcmp(a[i], "--from") == 0)
            from = a[i + 1];
        else if (strcmp(a[i], "--to") == 0)
            to = a[i + 1];
        else if (strcmp(a[i], "--timestamp") == 0)
            ts = a[i + 1];
        else if (strcmp(a[i], "--nonce") == 0)
            nonce = a[i + 1];
        else if (strcmp(a[i], "--body-mac-key") == 0)
            bkey = a[i + 1];
        else
            break;
    }
    if (!key || !from || !to || n - i < 2 || n - i > 3) {
        fprintf(stderr, "usage: bfiactl request sign --key PEM --from NODE --to NODE "
                        "[--timestamp MS] [--nonce N] [--body-mac-key KEY] METHOD TARGET "
                        "[BODYFILE|-]\n");
        return EXIT_USAGE;
    }
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    struct jws_key *k = NULL;
    if (jws_key_load_pem(key, &k, &eb) != 0) {
        fprintf(stderr, "bfiactl: %s: %s\n", key, eb.msg);
        return EXIT_USAGE;
    }
    size_t len = 0;
    char *body = n - i == 3 ? read_all(a[i + 2], &len) : NULL;
    if (n - i == 3 && !body) {
        fprintf(stderr, "bfiactl: cannot read %s\n", a[i + 2]);
        jws_key_free(k);
        return EXIT_USAGE;
    }
    char tsb[24], nb[23];
    if (!ts) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        snprintf(tsb, sizeof(tsb), "%lld", (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000);
        ts = tsb;
    }
    if (!nonce) {
        reqsig_nonce(nb);
        nonce = nb;
    }
    char *canon = NULL, line[REQSIG_BMAC_HDR_MAX] = "";
    if (bkey && nonce != nb) {
        fprintf(stderr, "bfiactl: --body-mac-key takes a fresh nonce: leave --nonce out\n");
        free(body);
        jws_key_free(k);
        return EXIT_USAGE;
    }
    if (bkey) {
        /* the body under a MAC for the receiver's body key (reqsig.h) */
        EVP_PKEY *x = NULL;
        char pub[REQSIG_BMAC_KEY_B64 + 1];
        uint8_t sh[32], tag[REQSIG_BMAC_TAG];
        if (reqsig_bmac_key(k, &x, pub) != 0 || reqsig_bmac_shared(x, bkey, sh) != 0 ||
            reqsig_bmac_tag(sh, a[i], a[i + 1], from, to, ts, nonce, pub, bkey, body, len, tag) !=
                0) {
            fprintf(stderr, "bfiactl: --body-mac-key: not a usable key (43 chars of base64url "
                            "from x-bfia-body-mac-key)\n");
            EVP_PKEY_free(x);
            free(body);
            jws_key_free(k);
            return EXIT_USAGE;
        }
        EVP_PKEY_free(x);
        reqsig_bmac_line(pub, bkey, tag, line);
        canon = reqsig_canonical_line(a[i], a[i + 1], from, to, ts, nonce, line);
    } else {
        canon = reqsig_canonical(a[i], a[i + 1], from, to, ts, nonce, body, len);
    }
    char sig[REQSIG_HDR_MAX];
    int rc = reqsig_sign(k, canon, sig);
    if (rc == 0) {
        printf("x-source-node-id: %s\nx-target-node-id: %s\nx-timestamp: %s\nx-nonce: %s\n"
               "x-auth-sign: %s\n", from, to, ts, nonce, sig);
        if (*line)
            printf("x-bfia-body-mac: %s\n", line);
    } else {
        fprintf(stderr, "bfiactl: signing failed\n");
    }
    free(canon);
    free(body);
    jws_key_free(k);
    return rc == 0 ? EXIT_OK : EXIT_REFUSED;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bfiactl [--url URL] [--json] [--timeout S] COMMAND [ARGS]\n"
            "  health               is the node's loop alive (/healthz)\n"
            "  ready                is the node ready to serve (/readyz: DB, schema, not draining)\n"
            "  version              gateway version, node id, schema version\n"
            "  metrics              Prometheus metrics text\n"
            "  route list           peers in the route table\n"
            "  route get NODE_ID    one peer's route\n"
            "  job submit FILE|-    create a job from JSON or YAML {dag, config, flow_id?}\n"
            "  job status JOB_ID [--wait] [--timeout S]\n"
            "                       job and per-task status; --wait polls until FINISHED or\n"
            "                       REJECTED (exit 0 success, 1 otherwise, 4 after S s, default 600)\n"
            "  job stop JOB_ID      stop a job on every party\n"
            "  job list [FLOW_ID]   \"job_id status\" lines\n"
            "  job logs TASK_ID [--start N] [--length N]\n"
            "                       a task's log lines on this node\n"
            "  provider register FILE   register a provider (JSON or YAML)\n"
            "  provider list        registered providers and their components\n"
            "  dataset upload FILE NAMESPACE NAME   upload a file as a dataset\n"
            "  dataset list [NAMESPACE]\n"
            "  peer check NODE_ID   resolve, TCP connect, HTTP, BFIA protocol ping\n"
            "  token verify FILE|-  verify a task launch token against the node's JWKS\n"
            "  key rotate [--now]   new node key: published now, signing after\n"
            "                       attest.key_publish_s (--now: at once, for a compromise)\n"
            "  key jwk PEM          the public JWK of a key file (for a route's key pin)\n"
            "  request sign --key PEM --from NODE --to NODE [--timestamp MS] [--nonce N]\n"
            "               [--body-mac-key KEY] METHOD TARGET [BODYFILE|-]\n"
            "                       x-* headers of a signed node-to-node request\n"
            "URL defaults to $BFIA_URL or http://127.0.0.1:8080.  --timeout S before the\n"
            "command is the HTTP timeout of each call (default 30).\n"
            "Exit codes: 0 ok, 1 refused by the gateway (or failed), 2 usage, 3 unreachable,\n"
            "4 timed out waiting.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ctl c = {getenv("BFIA_URL") ? getenv("BFIA_URL") : "http://127.0.0.1:8080", false, 30,
                    false};
    int opt;
    while ((opt = getopt_long(argc, argv, "+u:jt:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u': c.url = optarg; break;
        case 'j': c.json = true; break;
        case 't':
            c.timeout_s = atol(optarg) > 0 ? atol(optarg) : 30;
            c.timeout_set = atol(optarg) > 0;
            break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    json_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    const char *sub = nargs > 0 ? args[0] : "";
    int rc;
    if (strcmp(cmd, "health") == 0 && nargs == 0) {
        rc = call_envelope(&c, "GET", "/healthz", NULL);
    } else if (strcmp(cmd, "ready") == 0 && nargs == 0) {
        rc = call_envelope(&c, "GET", "/readyz", NULL);
    } else if (strcmp(cmd, "version") == 0 && nargs == 0) {
        rc = call_envelope(&c, "GET", "/version", NULL);
    } else if (strcmp(cmd, "metrics") == 0 && nargs == 0) {
        rc = cmd_metrics(&c);
    } else if (strcmp(cmd, "route") == 0 && nargs == 1 && strcmp(args[0], "list") == 0) {
        rc = call_envelope(&c, "GET", "/v1/platform/route/list", NULL);
    } else if (strcmp(cmd, "route") == 0 && nargs == 2 && strcmp(args[0], "get") == 0) {
        cJSON *b = cJSON_CreateObject();
        json_add_str(b, "node_id", args[1]);
        char *s = json_print(b);
        cJSON_Delete(b);
        rc = call_envelope(&c, "POST", "/v1/platform/route/get", s);
        cJSON_free(s);
    } else if (strcmp(cmd, "job") == 0 && strcmp(sub, "submit") == 0) {
        rc = cmd_job_submit(&c, nargs - 1, args + 1);
    } else if (strcmp(cmd, "job") == 0 && strcmp(sub, "status") == 0) {
        rc = cmd_job_status(&c, nargs - 1, args + 1);
    } else if (strcmp(cmd, "job") == 0 && strcmp(sub, "stop") == 0) {
        rc = cmd_job_stop(&c, nargs - 1, args + 1);
    } else if (strcmp(cmd, "job") == 0 && strcmp(sub, "list") == 0) {
        rc = cmd_job_list(&c, nargs - 1, args + 1);
    } else if (strcmp(cmd, "job") == 0 && strcmp(sub, "logs") == 0) {
        rc = cmd_job_logs(&c, nargs - 1, args + 1);
    } else if (strcmp(cmd, "provider") == 0 && strcmp(sub, "register") == 0) {
        rc = cmd_provider_register(&c, nargs - 1, args + 1);
    } else if (strcmp(cmd, "provider") == 0 && strcmp(sub, "list") == 0) {
        rc = cmd_provider_list(&c, nargs - 1, args + 1);
    } else if (strcmp(cmd, "dataset") == 0 && strcmp(sub, "upload") == 0) {
        rc = cmd_dataset_upload(&c, nargs - 1, args + 1);
    } else if (strcmp(cmd, "dataset") == 0 && strcmp(sub, "list") == 0) {
        rc = cmd_dataset_list(&c, nargs - 1, args + 1);
    } else if (strcmp(cmd, "peer") == 0 && strcmp(sub, "check") == 0) {
        rc = cmd_peer_check(&c, nargs - 1, args + 1);
    } else if (strcmp(cmd, "request") == 0 && strcmp(sub, "sign") == 0) {
        rc = cmd_request_sign(nargs - 1, args + 1);
    } else if (strcmp(cmd, "key") == 0 && strcmp(sub, "jwk") == 0 && nargs == 2) {
        struct gw_errbuf eb;
        gw_errbuf_clear(&eb);
        struct jws_key *k = NULL;
        if (jws_key_load_pem(args[1], &k, &eb) != 0) {
            fprintf(stderr, "bfiactl: %s: %s\n", args[1], eb.msg);
            rc = EXIT_USAGE;
        } else {
            cJSON *j = jws_key_to_jwk(k);
            char *s = cJSON_PrintUnformatted(j);
            puts(s);
            cJSON_free(s);
            cJSON_Delete(j);
            jws_key_free(k);
            rc = EXIT_OK;
        }
    } else if (strcmp(cmd, "key") == 0 && strcmp(sub, "rotate") == 0 &&
               (nargs == 1 || (nargs == 2 && strcmp(args[1], "--now") == 0))) {
        rc = call_envelope(&c, "POST", "/v1/platform/attest/key/rotate",
                           nargs == 2 ? "{\"now\":true}" : "{}");
    } else if (strcmp(cmd, "token") == 0 && strcmp(sub, "verify") == 0) {
        rc = cmd_token_verify(&c, nargs - 1, args + 1);
    } else {
        usage(stderr);
        rc = EXIT_USAGE;
    }
    curl_global_cleanup();
    return rc;
}
