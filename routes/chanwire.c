/* chanwire.c - the channel API's bodies: dialect A (JSON, protobuf), dialect B
 * (raw), the invoke forms, answers; protobuf through protobuf-c. */
#include "chanwire.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/json.h"
#include "routes/proto/ptp.pb-c.h"
#include "routes/proto/ptp_raw.pb-c.h"

#define TOPIC_MAX 1024
#define META_MAX 64

/* ---- base64 ------------------------------------------------------------------ */

static const char b64s[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *chanwire_b64_encode(const void *in, size_t n, size_t *outlen)
{
    const unsigned char *p = in;
    size_t olen = (n + 2) / 3 * 4;
    char *o = gw_xmalloc(olen + 1), *w = o;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *w++ = b64s[v >> 18];
        *w++ = b64s[(v >> 12) & 63];
        *w++ = b64s[(v >> 6) & 63];
        *w++ = b64s[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *w++ = b64s[v >> 18];
        *w++ = b64s[(v >> 12) & 63];
        *w++ = i + 1 < n ? b64s[(v >> 6) & 63] : '=';
        *w++ = '=';
    }
    *w = '\0';
    if (outlen)
        *outlen = olen;
    return o;
}

static int b64v(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int chanwire_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen)
{
    while (n > 0 && in[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64v((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *outlen = o;
    return 0;
}

/* ---- dialects and modes --------------------------------------------------------- */

/* The media type of a Content-Type value, without parameters. */
static bool media_is(const char *ct, const char *want)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strlen(want);
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

int chanwire_dialect_of(const char *content_type, bool has_topic_header)
{
    if (media_is(content_type, "application/json"))
        return CHANWIRE_JSON;
    if (media_is(content_type, "application/x-protobuf") ||
        media_is(content_type, "application/protobuf"))
        return CHANWIRE_PROTO;
    return has_topic_header ? CHANWIRE_RAW : CHANWIRE_NONE;
}

const char *chanwire_content_type(int d)
{
    switch (d) {
    case CHANWIRE_PROTO: return "application/x-protobuf";
    case CHANWIRE_RAW: return "application/proto";
    default: return "application/json";
    }
}

int chanwire_invoke_mode(const char *version, const char *topic_header)
{
    if (topic_header)
        return CHANWIRE_M_RAW;
    if (version && strcmp(version, "1") == 0)
        return CHANWIRE_M_PASS;
    return CHANWIRE_M_ENCAP;
}

int chanwire_uri_op(const char *uri)
{
    if (!uri)
        return -1;
    const char *p = uri;
    const char *sch = strstr(p, "://");
    if (sch) {
        p = strchr(sch + 3, '/');
        if (!p)
            return -1;
    }
    size_t n = strcspn(p, "?#");
    static const struct {
        const char *path;
        int op;
    } ops[] = {{"/v1/interconn/chan/push", CHANWIRE_PUSH},
               {"/v1/interconn/chan/pop", CHANWIRE_POP},
               {"/v1/interconn/chan/peek", CHANWIRE_PEEK},
               {"/v1/interconn/chan/release", CHANWIRE_RELEASE}};
    for (size_t i = 0; i < GW_ARRAY_LEN(ops); i++)
        if (strlen(ops[i].path) == n && strncmp(p, ops[i].path, n) == 0)
            return ops[i].op;
    return -1;
}

void chanwire_req_cleanup(struct chanwire_req *r)
{
    free(r->topic);
    free(r->payload);
    if (r->meta)
        for (char **m = r->meta; *m; m++)
            free(*m);
    free(r->meta);
    memset(r, 0, sizeof(*r));
    r->timeout = -1;
}

static bool key_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a == '_' ? '-' : (char)tolower((unsigned char)*a);
        char y = *b == '_' ? '-' : (char)tolower((unsigned char)*b);
        if (x != y)
            return false;
    }
    return *a == *b;
}

const char *chanwire_meta(const struct chanwire_req *r, const char *key)
{
    if (!r->meta)
        return NULL;
    for (char **m = r->meta; m[0] && m[1]; m += 2)
        if (key_eq(m[0], key))
            return m[1];
    return NULL;
}

static int set_topic(struct chanwire_req *out, const char *t, size_t n, struct gw_errbuf *eb)
{
    if (n > TOPIC_MAX)
        return gw_errf(eb, GW_EINVAL, "topic: longer than %d bytes", TOPIC_MAX);
    if (memchr(t, '\0', n))
        return gw_errf(eb, GW_EINVAL, "topic: contains a NUL byte");
    free(out->topic);
    out->topic = n ? gw_xstrndup(t, n) : NULL;
    return 0;
}

/* ---- dialect A, JSON ----------------------------------------------------------------- */

static int json_bytes(const cJSON *v, const char *name, void **out, size_t *len, struct gw_errbuf *eb)
{
    if (!cJSON_IsString(v))
        return gw_errf(eb, GW_EINVAL, "%s: expected a base64 string, got %s", name,
                       json_type_name(v));
    size_t n = strlen(v->valuestring);
    unsigned char *b = gw_xmalloc(n / 4 * 3 + 4);
    size_t bl = 0;
    if (chanwire_b64_decode(v->valuestring, n, b, &bl) != 0) {
        free(b);
        return gw_errf(eb, GW_EINVAL, "%s: not valid base64", name);
    }
    *out = b;
    *len = bl;
    return 0;
}

static int parse_json(int op, const void *body, size_t len, struct chanwire_req *out,
                      struct gw_errbuf *eb)
{
    const char *s = body;
    size_t i = 0;
    while (i < len && isspace((unsigned char)s[i]))
        i++;
    if (i == len)
        goto empty;
    cJSON *root = json_parse(s, len, eb);
    if (!root)
        return GW_EINVAL;
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = gw_errf(eb, GW_EINVAL, "body: expected a JSON object, got %s", json_type_name(root));
        goto done;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "topic");
    if (t && !cJSON_IsNull(t)) {
        if (!cJSON_IsString(t)) {
            rc = gw_errf(eb, GW_EINVAL, "topic: expected a string, got %s", json_type_name(t));
            goto done;
        }
        if ((rc = set_topic(out, t->valuestring, strlen(t->valuestring), eb)) != 0)
            goto done;
    }
    if (op == CHANWIRE_POP || op == CHANWIRE_RELEASE) {
        long long to;
        const cJSON *tv = cJSON_GetObjectItemCaseSensitive(root, "timeout");
        if (tv && !cJSON_IsNull(tv)) {
            if ((rc = json_get_int(root, "timeout", false, 0, 2147483647LL, &to, eb)) != 0)
                goto done;
            out->timeout = to;
        }
    }
    if (op == CHANWIRE_PUSH) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
        if (md && !cJSON_IsNull(md) && !cJSON_IsObject(md)) {
            rc = gw_errf(eb, GW_EINVAL, "metadata: expected an object, got %s",
                         json_type_name(md));
            goto done;
        }
        /* The spec's field table says content; the proto and MESH say payload. */
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "payload");
        const char *pname = "payload";
        if (!p || cJSON_IsNull(p)) {
            p = cJSON_GetObjectItemCaseSensitive(root, "content");
            pname = "content";
        }
        if (p && !cJSON_IsNull(p)) {
            if ((rc = json_bytes(p, pname, &out->payload, &out->len, eb)) != 0)
                goto done;
        }
    }
done:
    cJSON_Delete(root);
    if (rc)
        return rc;
empty:
    if (op == CHANWIRE_PUSH && !out->payload)
        out->payload = gw_xmalloc(1);
    return 0;
}

/* ---- dialect A, protobuf --------------------------------------------------------------- */

/* Move a protobuf-c bytes field's block out of the unpacked message. */
static void steal_bytes(ProtobufCBinaryData *bd, void **out, size_t *len)
{
    *out = bd->data ? bd->data : gw_xmalloc(1);
    *len = bd->len;
    bd->data = NULL;
    bd->len = 0;
}

static int parse_proto(int op, const void *body, size_t len, struct chanwire_req *out,
                       struct gw_errbuf *eb)
{
    const uint8_t *b = body;
    int rc = 0;
    switch (op) {
    case CHANWIRE_PUSH: {
        Org__Ppc__Ptp__PushInbound *m = org__ppc__ptp__push_inbound__unpack(NULL, len, b);
        if (!m)
            return gw_errf(eb, GW_EINVAL, "body: not a protobuf PushInbound");
        rc = set_topic(out, m->topic, strlen(m->topic), eb);
        if (!rc)
            steal_bytes(&m->payload, &out->payload, &out->len);
        org__ppc__ptp__push_inbound__free_unpacked(m, NULL);
        return rc;
    }
    case CHANWIRE_POP: {
        Org__Ppc__Ptp__PopInbound *m = org__ppc__ptp__pop_inbound__unpack(NULL, len, b);
        if (!m)
            return gw_errf(eb, GW_EINVAL, "body: not a protobuf PopInbound");
        rc = set_topic(out, m->topic, strlen(m->topic), eb);
        out->timeout = m->timeout < 0 ? 0 : m->timeout;
        org__ppc__ptp__pop_inbound__free_unpacked(m, NULL);
        return rc;
    }
    case CHANWIRE_PEEK: {
        Org__Ppc__Ptp__PeekInbound *m = org__ppc__ptp__peek_inbound__unpack(NULL, len, b);
        if (!m)
            return gw_errf(eb, GW_EINVAL, "body: not a protobuf PeekInbound");
        rc = set_topic(out, m->topic, strlen(m->topic), eb);
        org__ppc__ptp__peek_inbound__free_unpacked(m, NULL);
        return rc;
    }
    default: {
        Org__Ppc__Ptp__ReleaseInbound *m = org__ppc__ptp__release_inbound__unpack(NULL, len, b);
        if (!m)
            return gw_errf(eb, GW_EINVAL, "body: not a protobuf ReleaseInbound");
        rc = set_topic(out, m->topic, strlen(m->topic), eb);
        out->timeout = m->timeout < 0 ? 0 : m->timeout;
        org__ppc__ptp__release_inbound__free_unpacked(m, NULL);
        return rc;
    }
    }
}

int chanwire_parse(int dialect, int op, const void *body, size_t len, struct chanwire_req *out,
                   struct gw_errbuf *eb)
{
    memset(out, 0, sizeof(*out));
    out->timeout = -1;
    int rc;
    if (dialect == CHANWIRE_JSON)
        rc = parse_json(op, body, len, out, eb);
    else if (dialect == CHANWIRE_PROTO)
        rc = parse_proto(op, body, len, out, eb);
    else
        rc = gw_errf(eb, GW_EINVAL, "no typed body in this dialect");
    if (rc)
        chanwire_req_cleanup(out);
    return rc;
}

/* ---- invoke ---------------------------------------------------------------------------- */

static char **meta_copy(size_t n, char *const *keys, char *const *vals, size_t stride_unused)
{
    (void)stride_unused;
    char **m = gw_xcalloc(2 * n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        m[2 * i] = gw_xstrdup(keys[i]);
        m[2 * i + 1] = gw_xstrdup(vals[i]);
    }
    return m;
}

int chanwire_parse_invoke(int mode, int dialect, const void *body, size_t len,
                          struct chanwire_req *out, struct gw_errbuf *eb)
{
    memset(out, 0, sizeof(*out));
    out->timeout = -1;
    if (dialect != CHANWIRE_JSON && dialect != CHANWIRE_PROTO)
        return gw_errf(eb, GW_EINVAL, "Content-Type: the pass-through and encapsulated forms "
                                      "need application/json or application/x-protobuf");
    if (mode == CHANWIRE_M_PASS)
        return chanwire_parse(dialect, CHANWIRE_PUSH, body, len, out, eb);
    /* Encapsulated: Inbound{metadata, payload = the push body}. */
    void *inner = NULL;
    size_t inner_len = 0;
    char **meta = NULL;
    if (dialect == CHANWIRE_PROTO) {
        Org__Ppc__Ptp__Inbound *m = org__ppc__ptp__inbound__unpack(NULL, len, body);
        if (!m)
            return gw_errf(eb, GW_EINVAL, "body: not a protobuf Inbound");
        if (m->n_metadata > META_MAX) {
            org__ppc__ptp__inbound__free_unpacked(m, NULL);
            return gw_errf(eb, GW_EINVAL, "metadata: more than %d entries", META_MAX);
        }
        char *keys[META_MAX], *vals[META_MAX];
        for (size_t i = 0; i < m->n_metadata; i++) {
            keys[i] = m->metadata[i]->key;
            vals[i] = m->metadata[i]->value;
        }
        meta = meta_copy(m->n_metadata, keys, vals, 0);
        steal_bytes(&m->payload, &inner, &inner_len);
        org__ppc__ptp__inbound__free_unpacked(m, NULL);
    } else {
        cJSON *root = json_parse(body, len, eb);
        if (!root)
            return GW_EINVAL;
        int rc = 0;
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "payload");
        if (!cJSON_IsObject(root))
            rc = gw_errf(eb, GW_EINVAL, "body: expected a JSON object");
        else if (md && !cJSON_IsNull(md) && !cJSON_IsObject(md))
            rc = gw_errf(eb, GW_EINVAL, "metadata: expected an object");
        else if (cJSON_GetArraySize(md) > META_MAX)
            rc = gw_errf(eb, GW_EINVAL, "metadata: more than %d entries", META_MAX);
        else if (!p || cJSON_IsNull(p))
            rc = gw_errf(eb, GW_EINVAL, "payload: missing (the encapsulated push body)");
        else
            rc = json_bytes(p, "payload", &inner, &inner_len, eb);
        if (!rc && md) {
            char *keys[META_MAX], *vals[META_MAX];
            size_t n = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, md)
            {
                if (!cJSON_IsString(e)) {
                    rc = gw_errf(eb, GW_EINVAL, "metadata.%.64s: expected a string", e->string);
                    break;
                }
                keys[n] = e->string;
                vals[n] = e->valuestring;
                n++;
            }
            if (!rc)
                meta = meta_copy(n, keys, vals, 0);
        }
        cJSON_Delete(root);
        if (rc) {
            free(inner);
            return rc;
        }
    }
    int rc = chanwire_parse(dialect, CHANWIRE_PUSH, inner, inner_len, out, eb);
    free(inner);
    if (rc) {
        if (meta)
            for (char **x = meta; *x; x++)
                free(*x);
        free(meta);
        return rc;
    }
    out->meta = meta;
    return 0;
}

/* ---- timeouts ------------------------------------------------------------------------------ */

static int num(const char *s, const char *what, long long *out, struct gw_errbuf *eb)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < 0)
        return gw_errf(eb, GW_EINVAL, "%s: expected a non-negative integer, got '%.32s'", what, s);
    *out = v;
    return 0;
}

int chanwire_timeout_ms(const char *query_s, const char *header_ms, long long body, long long def_ms,
                        long long *out, struct gw_errbuf *eb)
{
    long long ms = 0, v;
    if (query_s && *query_s) {
        if (num(query_s, "timeout (query, seconds)", &v, eb))
            return GW_EINVAL;
        ms = v > 1000000 ? 1000000000LL : v * 1000;
    } else if (header_ms && *header_ms) {
        if (num(header_ms, "x-ptp-timeout (milliseconds)", &v, eb))
            return GW_EINVAL;
        ms = v;
    } else if (body > 0) {
        ms = body <= 3600 ? body * 1000 : body;
    }
    if (ms <= 0)
        ms = def_ms;
    if (ms < 1000)
        ms = 1000;
    if (ms > 300000)
        ms = 300000;
    *out = ms;
    return 0;
}

/* ---- answers ---------------------------------------------------------------------------------- */

struct pbsink {
    ProtobufCBuffer base;
    const struct chanwire_sink *sink;
    void *payload; /* handed over when protobuf-c appends it */
};

static void pb_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    struct pbsink *s = (struct pbsink *)b;
    if (s->payload && data == s->payload && s->sink->take_payload) {
        void *p = s->payload;
        s->payload = NULL;
        s->sink->take_payload(s->sink->arg, p, len);
        return;
    }
    s->sink->append(s->sink->arg, data, len);
}

void chanwire_reply(int d, const char *code, const char *message, void *payload, size_t len,
                    const struct chanwire_sink *sink)
{
    if (d == CHANWIRE_PROTO || d == CHANWIRE_RAW) {
        struct pbsink s = {{pb_append}, sink, payload && len ? payload : NULL};
        if (d == CHANWIRE_PROTO) {
            Org__Ppc__Ptp__TransportOutbound m = ORG__PPC__PTP__TRANSPORT_OUTBOUND__INIT;
            m.code = (char *)code;
            m.message = (char *)message;
            m.payload.data = payload;
            m.payload.len = payload ? len : 0;
            org__ppc__ptp__transport_outbound__pack_to_buffer(&m, &s.base);
        } else {
            Bfia__Ptpraw__TransportOutbound m = BFIA__PTPRAW__TRANSPORT_OUTBOUND__INIT;
            m.code = (char *)code;
            m.message = (char *)message;
            m.payload.data = payload;
            m.payload.len = payload ? len : 0;
            bfia__ptpraw__transport_outbound__pack_to_buffer(&m, &s.base);
        }
        if (s.payload || (payload && !len))
            free(payload); /* not handed over (empty) */
        else if (payload && !sink->take_payload)
            free(payload);
        return;
    }
    /* JSON: {"code","message"[,"payload"]}, MESH's field names. */
    cJSON *o = cJSON_CreateObject();
    json_add_str(o, "code", code);
    json_add_str(o, "message", message);
    char *js = json_print(o);
    cJSON_Delete(o);
    size_t jl = strlen(js);
    if (payload && len) {
        sink->append(sink->arg, js, jl - 1); /* without the closing brace */
        static const char k[] = ",\"payload\":\"";
        sink->append(sink->arg, k, sizeof(k) - 1);
        size_t bl;
        char *b = chanwire_b64_encode(payload, len, &bl);
        sink->append(sink->arg, b, bl);
        free(b);
        sink->append(sink->arg, "\"}", 2);
    } else {
        sink->append(sink->arg, js, jl);
    }
    cJSON_free(js);
    free(payload);
}

struct membuf {
    char *p;
    size_t n, cap;
};

static void mb_append(void *arg, const void *p, size_t n)
{
    struct membuf *b = arg;
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = gw_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void chanwire_reply_buf(int d, const char *code, const char *message, const void *payload,
                        size_t len, char **out, size_t *outlen)
{
    struct membuf b = {0};
    struct chanwire_sink sink = {mb_append, NULL, &b};
    void *copy = NULL;
    if (payload && len) {
        copy = gw_xmalloc(len);
        memcpy(copy, payload, len);
    }
    chanwire_reply(d, code, message, copy, len, &sink);
    if (!b.p)
        mb_append(&b, "", 0);
    *out = b.p;
    *outlen = b.n;
}

static void copy_str(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

int chanwire_parse_answer(int d, const void *body, size_t len, char code[32], char *msg,
                          size_t msgcap)
{
    code[0] = '\0';
    if (msgcap)
        msg[0] = '\0';
    if (d == CHANWIRE_RAW) {
        Bfia__Ptpraw__TransportOutbound *m =
            bfia__ptpraw__transport_outbound__unpack(NULL, len, body);
        if (!m)
            return GW_EINVAL;
        copy_str(code, 32, m->code);
        copy_str(msg, msgcap, m->message);
        bfia__ptpraw__transport_outbound__free_unpacked(m, NULL);
    } else if (d == CHANWIRE_PROTO) {
        Org__Ppc__Ptp__Outbound *m = org__ppc__ptp__outbound__unpack(NULL, len, body);
        if (!m)
            return GW_EINVAL;
        copy_str(code, 32, m->code);
        copy_str(msg, msgcap, m->message);
        org__ppc__ptp__outbound__free_unpacked(m, NULL);
    } else {
        cJSON *root = json_parse(body, len, NULL);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "code");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
        if (!cJSON_IsString(c)) {
            cJSON_Delete(root);
            return GW_EINVAL;
        }
        copy_str(code, 32, c->valuestring);
        copy_str(msg, msgcap, cJSON_IsString(m) ? m->valuestring : "");
        cJSON_Delete(root);
    }
    /* A code must look like one (E + 10 digits) to count as an answer. */
    if (strlen(code) != 11 || code[0] != 'E' || strspn(code + 1, "0123456789") != 10)
        return GW_EINVAL;
    return 0;
}

void *chanwire_build_push(int dialect, const char *topic, const void *payload, size_t len,
                          size_t *outlen)
{
    if (dialect == CHANWIRE_JSON) {
        size_t bl;
        char *b = chanwire_b64_encode(payload, len, &bl);
        cJSON *o = cJSON_CreateObject();
        json_add_str(o, "topic", topic);
        cJSON_AddItemToObject(o, "payload", cJSON_CreateString(b));
        free(b);
        char *js = json_print(o);
        cJSON_Delete(o);
        *outlen = strlen(js);
        char *r = gw_xstrdup(js);
        cJSON_free(js);
        return r;
    }
    Org__Ppc__Ptp__PushInbound m = ORG__PPC__PTP__PUSH_INBOUND__INIT;
    m.topic = (char *)(topic ? topic : "");
    m.payload.data = (uint8_t *)payload;
    m.payload.len = len;
    size_t n = org__ppc__ptp__push_inbound__get_packed_size(&m);
    uint8_t *buf = gw_xmalloc(n ? n : 1);
    *outlen = org__ppc__ptp__push_inbound__pack(&m, buf);
    return buf;
}

void *chanwire_build_encap(const char *const *meta, const char *topic, const void *payload,
                           size_t len, size_t *outlen)
{
    size_t inner_len;
    void *inner = chanwire_build_push(CHANWIRE_PROTO, topic, payload, len, &inner_len);
    size_t n = 0;
    while (meta && meta[2 * n] && meta[2 * n + 1])
        n++;
    Org__Ppc__Ptp__Inbound__MetadataEntry *ents = gw_xcalloc(n ? n : 1, sizeof(*ents));
    Org__Ppc__Ptp__Inbound__MetadataEntry **ptrs = gw_xcalloc(n ? n : 1, sizeof(*ptrs));
    for (size_t i = 0; i < n; i++) {
        org__ppc__ptp__inbound__metadata_entry__init(&ents[i]);
        ents[i].key = (char *)meta[2 * i];
        ents[i].value = (char *)meta[2 * i + 1];
        ptrs[i] = &ents[i];
    }
    Org__Ppc__Ptp__Inbound m = ORG__PPC__PTP__INBOUND__INIT;
    m.n_metadata = n;
    m.metadata = ptrs;
    m.payload.data = inner;
    m.payload.len = inner_len;
    size_t sz = org__ppc__ptp__inbound__get_packed_size(&m);
    uint8_t *buf = gw_xmalloc(sz ? sz : 1);
    *outlen = org__ppc__ptp__inbound__pack(&m, buf);
    free(inner);
    free(ents);
    free(ptrs);
    return buf;
}
