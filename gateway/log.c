/* log.c - JSON-lines logger with one escaper for every string. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Process-wide sink settings: set once at start-up (and on SIGHUP for the
 * level) from the loop thread; the only mutable statics in the core. */
static enum log_level g_level = LOG_LEVEL_INFO;
static int g_fd = 2;

#define LOG_LINE_MAX 8192
#define LOG_VALUE_MAX 2048

const char *log_level_name(enum log_level lv)
{
    switch (lv) {
    case LOG_LEVEL_ERROR: return "error";
    case LOG_LEVEL_WARN: return "warn";
    case LOG_LEVEL_INFO: return "info";
    case LOG_LEVEL_DEBUG: return "debug";
    }
    return "info";
}

bool log_level_parse(const char *s, enum log_level *out)
{
    static const enum log_level all[] = {LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO,
                                         LOG_LEVEL_DEBUG};
    for (size_t i = 0; s && i < GW_ARRAY_LEN(all); i++) {
        if (strcmp(s, log_level_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    }
    return false;
}

void log_set_level(enum log_level lv) { g_level = lv; }
bool log_enabled(enum log_level lv) { return lv <= g_level; }
void log_set_fd(int fd) { g_fd = fd; }

bool log_is_secret_key(const char *key)
{
    static const char *const secret[] = {"dsn", "password", "token", "x-auth-sign", "secret",
                                         "key", "private_key", "authorization"};
    for (size_t i = 0; i < GW_ARRAY_LEN(secret); i++)
        if (strcasecmp(key, secret[i]) == 0)
            return true;
    return false;
}

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 if the bytes
 * there are not one (overlong forms, surrogates and > U+10FFFF included). */
static size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned int cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

size_t log_escape(char *out, size_t cap, const char *s, size_t len)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        char tmp[8];
        const char *rep = tmp;
        size_t rlen;
        size_t adv = 1;
        unsigned char c = p[i];
        if (c == '"') {
            rep = "\\\"";
            rlen = 2;
        } else if (c == '\\') {
            rep = "\\\\";
            rlen = 2;
        } else if (c == '\n') {
            rep = "\\n";
            rlen = 2;
        } else if (c == '\r') {
            rep = "\\r";
            rlen = 2;
        } else if (c == '\t') {
            rep = "\\t";
            rlen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            rlen = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        } else if (c < 0x80) {
            tmp[0] = (char)c;
            rlen = 1;
        } else {
            size_t n = utf8_seq_len(p + i, len - i);
            if (n == 0) {
                rep = "\\ufffd";
                rlen = 6;
            } else {
                rep = (const char *)p + i;
                rlen = n;
                adv = n;
            }
        }
        if (o + rlen >= cap)
            break; /* truncate on a character boundary */
        memcpy(out + o, rep, rlen);
        o += rlen;
        i += adv;
    }
    out[o] = '\0';
    return o;
}

struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
};

/*
 * Append ,"key":"value".  The key must fit whole or the field is dropped;
 * the value is escaped into what is left and cut on a character boundary, so
 * the line is always one valid JSON object however long the inputs are.
 */
static void put_field(struct line *l, const char *key, const char *val)
{
    if (!key || !val)
        return;
    if (log_is_secret_key(key))
        val = "***";
    size_t klen = strlen(key);
    size_t need = klen * 6 + 8; /* worst-case escaped key plus punctuation */
    if (l->len + need + 3 > sizeof(l->buf))
        return;
    l->buf[l->len++] = ',';
    l->buf[l->len++] = '"';
    l->len += log_escape(l->buf + l->len, klen * 6 + 1, key, klen);
    l->buf[l->len++] = '"';
    l->buf[l->len++] = ':';
    l->buf[l->len++] = '"';
    size_t room = sizeof(l->buf) - l->len - 4; /* closing quote, brace, newline, NUL */
    if (room > LOG_VALUE_MAX)
        room = LOG_VALUE_MAX; /* one huge value must not crowd out the ids after it */
    l->len += log_escape(l->buf + l->len, room, val, strlen(val));
    l->buf[l->len++] = '"';
}

static void emit(enum log_level lv, const struct log_ctx *ctx, const char *event, const char *msg,
                 va_list *kv)
{
    struct line l;
    l.len = 0;
    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t k = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, sizeof(ts) - k, ".%03ldZ", now.tv_nsec / 1000000);

    l.len = (size_t)snprintf(l.buf, sizeof(l.buf), "{\"ts\":\"%s\",\"level\":\"%s\"", ts,
                             log_level_name(lv));
    put_field(&l, "event", event ? event : "log");
    put_field(&l, "msg", msg ? msg : "");
    if (ctx) {
        put_field(&l, "req_id", ctx->req_id);
        put_field(&l, "trace_id", ctx->trace_id);
        put_field(&l, "job_id", ctx->job_id);
        put_field(&l, "task_id", ctx->task_id);
        put_field(&l, "node_id", ctx->node_id);
        put_field(&l, "peer", ctx->peer);
    }
    if (kv) {
        for (int i = 0; i < 64; i++) {
            const char *key = va_arg(*kv, const char *);
            if (!key)
                break;
            const char *val = va_arg(*kv, const char *);
            put_field(&l, key, val);
        }
    }
    l.buf[l.len++] = '}';
    l.buf[l.len++] = '\n';
    /* One write per line so concurrent writers (several gateways sharing a
     * terminal in tests) never interleave inside a line. */
    const char *p = l.buf;
    size_t left = l.len;
    while (left > 0) {
        ssize_t w = write(g_fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
}

void log_kv(enum log_level lv, const struct log_ctx *ctx, const char *event, const char *msg, ...)
{
    if (!log_enabled(lv))
        return;
    va_list ap;
    va_start(ap, msg);
    emit(lv, ctx, event, msg, &ap);
    va_end(ap);
}

void log_msg(enum log_level lv, const struct log_ctx *ctx, const char *event, const char *fmt, ...)
{
    if (!log_enabled(lv))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(lv, ctx, event, msg, NULL);
}
