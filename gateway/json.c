/* json.c - typed getters over cJSON that name the offending field. */
#include "json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *json_malloc(size_t n) { return gw_xmalloc(n); }

void json_init(void)
{
    cJSON_Hooks hooks = {json_malloc, free};
    cJSON_InitHooks(&hooks);
}

/*
 * The first \u0000 escape in a JSON text, reported with the path of the
 * member that holds it ("config.role.guest[1]"), or 0 when there is none.
 * cJSON keeps strings NUL-terminated, so "a\u0000b" would silently become
 * "a": such a text is refused instead.  The scan follows strings, objects
 * and arrays just enough to name the place; cJSON parses for real.
 */
static int nul_escape(const char *buf, size_t len, struct gw_errbuf *eb)
{
    enum { DEPTH = 32 };
    struct {
        bool obj;
        int idx;
        char key[48];
    } st[DEPTH];
    int depth = -1;
    bool in_str = false, is_key = false;
    char key[48];
    size_t kl = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\' && i + 1 < len) {
                if (buf[i + 1] == 'u' && i + 5 < len && strncmp(buf + i + 2, "0000", 4) == 0) {
                    char path[256];
                    size_t pl = 0;
                    path[0] = '\0';
                    for (int d = 0; d <= depth && d < DEPTH && pl < sizeof(path) - 64; d++) {
                        if (st[d].obj && !st[d].key[0])
                            continue; /* the key being read: added below */
                        if (st[d].obj)
                            pl += (size_t)snprintf(path + pl, sizeof(path) - pl, "%s%s",
                                                   pl ? "." : "", st[d].key);
                        else
                            pl += (size_t)snprintf(path + pl, sizeof(path) - pl, "[%d]",
                                                   st[d].idx);
                    }
                    if (is_key && pl < sizeof(path) - 64) {
                        key[kl] = '\0';
                        snprintf(path + pl, sizeof(path) - pl, "%s%s", pl ? "." : "", key);
                    }
                    return gw_errf(eb, GW_EINVAL,
                                   "%s: a string holds \\u0000 (NUL), which no field may contain",
                                   path[0] ? path : "(top level)");
                }
                if (is_key && kl < sizeof(key) - 2)
                    key[kl++] = buf[i + 1];
                i++;
                continue;
            }
            if (c == '"') {
                in_str = false;
                if (is_key && depth >= 0 && depth < DEPTH) {
                    key[kl] = '\0';
                    snprintf(st[depth].key, sizeof(st[depth].key), "%s", key);
                }
                continue;
            }
            if (is_key && kl < sizeof(key) - 1)
                key[kl++] = c;
            continue;
        }
        switch (c) {
        case '"':
            in_str = true;
            is_key = depth >= 0 && depth < DEPTH && st[depth].obj && st[depth].key[0] == '\0';
            kl = 0;
            break;
        case '{':
        case '[':
            depth++;
            if (depth < DEPTH) {
                st[depth].obj = c == '{';
                st[depth].idx = 0;
                st[depth].key[0] = '\0';
            }
            break;
        case '}':
        case ']':
            depth--;
            break;
        case ',':
            if (depth >= 0 && depth < DEPTH) {
                if (st[depth].obj)
                    st[depth].key[0] = '\0';
                else
                    st[depth].idx++;
            }
            break;
        default:
            break;
        }
    }
    return 0;
}

struct cJSON *json_parse(const char *buf, size_t len, struct gw_errbuf *eb)
{
    if (!buf || len == 0) {
        gw_errf(eb, GW_EINVAL, "request body is empty, expected a JSON object");
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    if (!root) {
        size_t off = end ? (size_t)(end - buf) : 0;
        gw_errf(eb, GW_EINVAL, "malformed JSON at byte %zu", off);
        return NULL;
    }
    /* Allow trailing whitespace only: "{}garbage" is not JSON. */
    size_t off = (size_t)(end - buf);
    while (off < len && (buf[off] == ' ' || buf[off] == '\n' || buf[off] == '\r' ||
                         buf[off] == '\t' || buf[off] == '\0'))
        off++;
    if (off < len) {
        cJSON_Delete(root);
        gw_errf(eb, GW_EINVAL, "malformed JSON: trailing data at byte %zu", off);
        return NULL;
    }
    if (memmem(buf, len, "\\u0000", 6) && nul_escape(buf, len, eb) != 0) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

const char *json_type_name(const struct cJSON *it)
{
    if (!it)
        return "nothing";
    if (cJSON_IsString(it))
        return "a string";
    if (cJSON_IsNumber(it))
        return "a number";
    if (cJSON_IsBool(it))
        return "a boolean";
    if (cJSON_IsNull(it))
        return "null";
    if (cJSON_IsArray(it))
        return "an array";
    if (cJSON_IsObject(it))
        return "an object";
    return "an invalid value";
}

/* Look up key; returns 1 found, 0 absent (or null), <0 error. */
static int lookup(const struct cJSON *obj, const char *key, bool required, const cJSON **it,
                  struct gw_errbuf *eb)
{
    *it = NULL;
    if (obj && !cJSON_IsObject(obj))
        return gw_errf(eb, GW_EINVAL, "expected a JSON object holding field '%s', got %s", key,
                       json_type_name(obj));
    const cJSON *x = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!x || cJSON_IsNull(x)) {
        if (required) {
            gw_err_where(eb, "%s", key);
            return gw_errf(eb, GW_EINVAL, "field '%s' is required", key);
        }
        return 0;
    }
    *it = x;
    return 1;
}

static int wrong_type(struct gw_errbuf *eb, const char *key, const char *want, const cJSON *got)
{
    gw_err_where(eb, "%s", key);
    return gw_errf(eb, GW_EINVAL, "field '%s': expected %s, got %s", key, want,
                   json_type_name(got));
}

int json_get_str(const struct cJSON *obj, const char *key, bool required, size_t maxlen,
                 const char **out, struct gw_errbuf *eb)
{
    const cJSON *it;
    int r = lookup(obj, key, required, &it, eb);
    if (r <= 0)
        return r;
    if (!cJSON_IsString(it))
        return wrong_type(eb, key, "a string", it);
    size_t n = strlen(it->valuestring);
    if (maxlen && n > maxlen) {
        gw_err_where(eb, "%s", key);
        return gw_errf(eb, GW_EINVAL, "field '%s': longer than %zu bytes", key, maxlen);
    }
    *out = it->valuestring;
    return 0;
}

bool json_is_id(const char *s, size_t maxlen)
{
    size_t n = 0;
    if (!s || !*s || *s == '.')
        return false;
    for (; s[n]; n++) {
        char ch = s[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '.' || ch == ':' || ch == '#' || ch == '-';
        if (!ok || n >= maxlen)
            return false;
    }
    return true;
}

int json_get_id(const struct cJSON *obj, const char *key, bool required, size_t maxlen,
                const char **out, struct gw_errbuf *eb)
{
    const char *s = NULL;
    int rc = json_get_str(obj, key, required, 0, &s, eb);
    if (rc != 0 || !s)
        return rc;
    if (!json_is_id(s, maxlen)) {
        gw_err_where(eb, "%s", key);
        return gw_errf(eb, GW_EINVAL,
                       "field '%s': must be 1..%zu characters of A-Z a-z 0-9 _ . : # - "
                       "(not starting with '.')",
                       key, maxlen);
    }
    *out = s;
    return 0;
}

int json_get_int(const struct cJSON *obj, const char *key, bool required, long long min,
                 long long max, long long *out, struct gw_errbuf *eb)
{
    const cJSON *it;
    int r = lookup(obj, key, required, &it, eb);
    if (r <= 0)
        return r;
    long long v;
    if (cJSON_IsNumber(it)) {
        double d = it->valuedouble;
        if (!isfinite(d) || d != floor(d) || d < -9.2e18 || d > 9.2e18)
            return wrong_type(eb, key, "an integer", it);
        v = (long long)d;
    } else if (cJSON_IsString(it)) {
        char *end;
        errno = 0;
        v = strtoll(it->valuestring, &end, 10);
        if (errno || end == it->valuestring || *end != '\0')
            return wrong_type(eb, key, "an integer", it);
    } else {
        return wrong_type(eb, key, "an integer", it);
    }
    if (v < min || v > max) {
        gw_err_where(eb, "%s", key);
        return gw_errf(eb, GW_EINVAL, "field '%s': %lld is outside %lld..%lld", key, v, min, max);
    }
    *out = v;
    return 0;
}

int json_get_bool(const struct cJSON *obj, const char *key, bool required, bool *out,
                  struct gw_errbuf *eb)
{
    const cJSON *it;
    int r = lookup(obj, key, required, &it, eb);
    if (r <= 0)
        return r;
    if (cJSON_IsBool(it)) {
        *out = cJSON_IsTrue(it);
        return 0;
    }
    if (cJSON_IsString(it)) {
        if (strcasecmp(it->valuestring, "true") == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(it->valuestring, "false") == 0) {
            *out = false;
            return 0;
        }
    }
    return wrong_type(eb, key, "a boolean", it);
}

int json_get_obj(const struct cJSON *obj, const char *key, bool required,
                 const struct cJSON **out, struct gw_errbuf *eb)
{
    const cJSON *it;
    int r = lookup(obj, key, required, &it, eb);
    if (r <= 0)
        return r;
    if (!cJSON_IsObject(it))
        return wrong_type(eb, key, "an object", it);
    *out = it;
    return 0;
}

int json_get_arr(const struct cJSON *obj, const char *key, bool required,
                 const struct cJSON **out, struct gw_errbuf *eb)
{
    const cJSON *it;
    int r = lookup(obj, key, required, &it, eb);
    if (r <= 0)
        return r;
    if (!cJSON_IsArray(it))
        return wrong_type(eb, key, "an array", it);
    *out = it;
    return 0;
}

void json_add_str(struct cJSON *obj, const char *key, const char *val)
{
    cJSON_AddItemToObject(obj, key, cJSON_CreateString(val ? val : ""));
}

void json_add_int(struct cJSON *obj, const char *key, long long val)
{
    cJSON_AddItemToObject(obj, key, cJSON_CreateNumber((double)val));
}

char *json_print(const struct cJSON *item)
{
    char *s = cJSON_PrintUnformatted(item);
    if (!s)
        return gw_xstrdup("null"); /* only on OOM, which gw_xmalloc already aborts on */
    return s;
}

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned cp;
    if (c >= 0x01 && c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0; /* NUL, continuation, C0/C1 leads, F5.. */
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

char *json_utf8_clean(const char *s, size_t n)
{
    /* each bad byte becomes 3 bytes at most */
    char *out = gw_xmalloc(3 * n + 1);
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(p + i, n - i);
        if (l == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, p + i, l);
        o += l;
        i += l;
    }
    out[o] = '\0';
    return out;
}
