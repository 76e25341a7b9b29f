/* chanbatch.c - the batched relay's wire form (see chanbatch.h). */
#include "chanbatch.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>


static const unsigned char req_magic[4] = {'B', 'C', 'B', '1'};
static const unsigned char ans_magic[4] = {'B', 'C', 'A', '1'};

static unsigned char *put16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
    return p + 2;
}

static unsigned char *put32(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return p + 4;
}

static unsigned char *putstr(unsigned char *p, const char *s, size_t n)
{
    p = put16(p, n);
    memcpy(p, s, n);
    return p + n;
}

static size_t cut(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    return n > max ? max : n;
}

size_t chanbatch_rec_size(const struct chanbatch_out *m)
{
    return 2 + cut(m->session, 0xffff) + 2 + cut(m->scope, 0xffff) + 2 + cut(m->topic, 0xffff) +
           4 + 4 + m->len;
}

void chanbatch_put_header(unsigned char *p, uint32_t count)
{
    memcpy(p, req_magic, 4);
    put32(p + 4, count);
}

unsigned char *chanbatch_put_rec(unsigned char *p, const struct chanbatch_out *m)
{
    p = putstr(p, m->session ? m->session : "", cut(m->session, 0xffff));
    p = putstr(p, m->scope ? m->scope : "", cut(m->scope, 0xffff));
    p = putstr(p, m->topic ? m->topic : "", cut(m->topic, 0xffff));
    long long t = m->timeout_ms < 0 ? 0 : m->timeout_ms > 0xffffffffLL ? 0xffffffffLL : m->timeout_ms;
    p = put32(p, (size_t)t);
    p = put32(p, m->len);
    if (m->len)
        memcpy(p, m->payload, m->len);
    return p + m->len;
}

void *chanbatch_encode(const struct chanbatch_out *m, size_t n, size_t *len)
{
    size_t total = CHANBATCH_HDR;
    for (size_t i = 0; i < n; i++)
        total += chanbatch_rec_size(&m[i]);
    unsigned char *b = gw_xmalloc(total), *p = b + CHANBATCH_HDR;
    chanbatch_put_header(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        p = chanbatch_put_rec(p, &m[i]);
    *len = total;
    return b;
}

/* ---- decoding ---------------------------------------------------------------- */

struct rd {
    const unsigned char *p, *end;
};

static bool get16(struct rd *r, size_t *v)
{
    if (r->end - r->p < 2)
        return false;
    *v = ((size_t)r->p[0] << 8) | r->p[1];
    r->p += 2;
    return true;
}

static bool get32(struct rd *r, size_t *v)
{
    if (r->end - r->p < 4)
        return false;
    *v = ((size_t)r->p[0] << 24) | ((size_t)r->p[1] << 16) | ((size_t)r->p[2] << 8) | r->p[3];
    r->p += 4;
    return true;
}

/* A length-prefixed string of at most max bytes with no NUL, copied to *dst
 * (advanced past its terminator). */
static bool getstr(struct rd *r, size_t max, char **dst, const char **out)
{
    size_t n;
    if (!get16(r, &n) || n > max || (size_t)(r->end - r->p) < n || memchr(r->p, 0, n))
        return false;
    memcpy(*dst, r->p, n);
    (*dst)[n] = '\0';
    *out = *dst;
    *dst += n + 1;
    r->p += n;
    return true;
}

int chanbatch_decode(const void *body, size_t len, size_t max_msgs, struct chanbatch *out,
                     struct gw_errbuf *eb)
{
    memset(out, 0, sizeof(*out));
    struct rd r = {body, (const unsigned char *)body + len};
    size_t n;
    if (len < CHANBATCH_HDR || memcmp(body, req_magic, 4) != 0)
        return gw_errf(eb, GW_EINVAL, "batch: not a batch (magic)");
    r.p += 4;
    if (!get32(&r, &n) || n == 0)
        return gw_errf(eb, GW_EINVAL, "batch: count is 0");
    if (n > max_msgs)
        return gw_errf(eb, GW_EINVAL, "batch: %zu messages, more than %zu", n, max_msgs);
    /* every record takes at least 14 bytes: a count beyond what the body can
     * hold is refused before anything is allocated for it */
    if (n > (len - CHANBATCH_HDR) / 14)
        return gw_errf(eb, GW_EINVAL, "batch: count %zu does not fit a body of %zu bytes", n, len);
    out->m = gw_xcalloc(n, sizeof(*out->m));
    /* the strings of every record fit in the body's length plus terminators */
    out->strings = gw_xmalloc(len + 3 * n);
    char *dst = out->strings;
    for (size_t i = 0; i < n; i++) {
        struct chanbatch_msg *m = &out->m[i];
        size_t t, pl;
        const char *what = NULL;
        if (!getstr(&r, CHANBATCH_SESSION_MAX, &dst, &m->session))
            what = "session";
        else if (!getstr(&r, CHANBATCH_SCOPE_MAX, &dst, &m->scope))
            what = "scope";
        else if (!getstr(&r, CHANBATCH_TOPIC_MAX, &dst, &m->topic))
            what = "topic";
        else if (!get32(&r, &t))
            what = "timeout";
        else if (!get32(&r, &pl) || (size_t)(r.end - r.p) < pl)
            what = "payload";
        if (what) {
            chanbatch_cleanup(out);
            return gw_errf(eb, GW_EINVAL, "batch: message %zu: %s truncated, too long or not text",
                           i, what);
        }
        if (!*m->session) {
            chanbatch_cleanup(out);
            return gw_errf(eb, GW_EINVAL, "batch: message %zu: session empty", i);
        }
        m->timeout_ms = (long long)t;
        m->payload = r.p;
        m->len = pl;
        r.p += pl;
        out->n = i + 1;
    }
    if (r.p != r.end) {
        size_t extra = (size_t)(r.end - r.p);
        chanbatch_cleanup(out);
        return gw_errf(eb, GW_EINVAL, "batch: %zu bytes after the last message", extra);
    }
    return 0;
}

void chanbatch_cleanup(struct chanbatch *b)
{
    free(b->m);
    free(b->strings);
    memset(b, 0, sizeof(*b));
}

/* ---- answers ------------------------------------------------------------------ */

static unsigned char *putcode(unsigned char *p, const char *code)
{
    char c[11];
    memset(c, '0', sizeof(c));
    size_t n = cut(code, 11);
    memcpy(c, code, n);
    memcpy(p, c, 11);
    return p + 11;
}

void *chanbatch_answer(const char *code, const char *msg, const struct chanbatch_res *res,
                       size_t n, size_t *len)
{
    size_t total = 4 + 11 + 2 + cut(msg, CHANBATCH_MSG_MAX) + 4;
    for (size_t i = 0; i < n; i++)
        total += 11 + 2 + cut(res[i].msg, CHANBATCH_MSG_MAX);
    unsigned char *b = gw_xmalloc(total), *p = b;
    memcpy(p, ans_magic, 4);
    p = putcode(p + 4, code);
    p = putstr(p, msg ? msg : "", cut(msg, CHANBATCH_MSG_MAX));
    p = put32(p, n);
    for (size_t i = 0; i < n; i++) {
        p = putcode(p, res[i].code);
        p = putstr(p, res[i].msg, cut(res[i].msg, CHANBATCH_MSG_MAX));
    }
    *len = total;
    return b;
}

/* A code: 'E' and ten digits. */
static bool getcode(struct rd *r, char out[12])
{
    if (r->end - r->p < 11 || r->p[0] != 'E')
        return false;
    for (int i = 1; i < 11; i++)
        if (r->p[i] < '0' || r->p[i] > '9')
            return false;
    memcpy(out, r->p, 11);
    out[11] = '\0';
    r->p += 11;
    return true;
}

static bool getmsg(struct rd *r, char out[CHANBATCH_MSG_MAX + 1])
{
    size_t n;
    if (!get16(r, &n) || n > CHANBATCH_MSG_MAX || (size_t)(r->end - r->p) < n)
        return false;
    memcpy(out, r->p, n);
    out[n] = '\0';
    r->p += n;
    return true;
}

int chanbatch_parse_answer(const void *body, size_t len, size_t n, struct chanbatch_res *whole,
                           struct chanbatch_res *res)
{
    struct rd r = {body, (const unsigned char *)body + len};
    size_t count;
    if (!body || len < 4 || memcmp(body, ans_magic, 4) != 0)
        return GW_EINVAL;
    r.p += 4;
    if (!getcode(&r, whole->code) || !getmsg(&r, whole->msg) || !get32(&r, &count))
        return GW_EINVAL;
    bool ok = strcmp(whole->code, "E0000000000") == 0;
    if (ok ? count != n : count != 0)
        return GW_EINVAL;
    for (size_t i = 0; i < count; i++)
        if (!getcode(&r, res[i].code) || !getmsg(&r, res[i].msg))
            return GW_EINVAL;
    return r.p == r.end ? 0 : GW_EINVAL;
}
