/*
 * jws.c - JWS Compact with ES256/Ed25519 on OpenSSL 3 EVP, and the strict
 * attestation-token verifier (spec/attestation.md 2.2-2.10).
 *
 * The verifier never trusts cJSON's leniency: every header and payload is
 * first run through a strict RFC 8259 grammar check (UTF-8, no trailing
 * data, no "\u0000", bounded depth, and a note of any non-integer number),
 * then parsed by cJSON, then checked for duplicate member names, which cJSON
 * would silently accept (V38: a second "exp" far in the future).
 */
#include "jws.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

/* ======================================================================== */
/* base64url                                                                 */

static const char b64url_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63 for the alphabet, 0xff for everything else (incl. '=', '+', '/'). */
static const uint8_t b64url_rev[256] = {
    ['A'] = 0,  ['B'] = 1,  ['C'] = 2,  ['D'] = 3,  ['E'] = 4,  ['F'] = 5,  ['G'] = 6,
    ['H'] = 7,  ['I'] = 8,  ['J'] = 9,  ['K'] = 10, ['L'] = 11, ['M'] = 12, ['N'] = 13,
    ['O'] = 14, ['P'] = 15, ['Q'] = 16, ['R'] = 17, ['S'] = 18, ['T'] = 19, ['U'] = 20,
    ['V'] = 21, ['W'] = 22, ['X'] = 23, ['Y'] = 24, ['Z'] = 25, ['a'] = 26, ['b'] = 27,
    ['c'] = 28, ['d'] = 29, ['e'] = 30, ['f'] = 31, ['g'] = 32, ['h'] = 33, ['i'] = 34,
    ['j'] = 35, ['k'] = 36, ['l'] = 37, ['m'] = 38, ['n'] = 39, ['o'] = 40, ['p'] = 41,
    ['q'] = 42, ['r'] = 43, ['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47, ['w'] = 48,
    ['x'] = 49, ['y'] = 50, ['z'] = 51, ['0'] = 52, ['1'] = 53, ['2'] = 54, ['3'] = 55,
    ['4'] = 56, ['5'] = 57, ['6'] = 58, ['7'] = 59, ['8'] = 60, ['9'] = 61, ['-'] = 62,
    ['_'] = 63,
};

/* The table above leaves non-alphabet entries at 0, which is also 'A'; this
 * predicate is the real membership test. */
static bool is_b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

size_t jws_b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_alpha[(v >> 18) & 63];
        out[o++] = b64url_alpha[(v >> 12) & 63];
        out[o++] = b64url_alpha[(v >> 6) & 63];
        out[o++] = b64url_alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url_alpha[(v >> 18) & 63];
        out[o++] = b64url_alpha[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url_alpha[(v >> 18) & 63];
        out[o++] = b64url_alpha[(v >> 12) & 63];
        out[o++] = b64url_alpha[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

char *jws_b64url_encode_alloc(const uint8_t *in, size_t n)
{
    char *s = gw_xmalloc(JWS_B64URL_ENC_LEN(n) + 1);
    jws_b64url_encode(in, n, s);
    return s;
}

int jws_b64url_decode(const char *in, size_t n, uint8_t *out, size_t *outlen)
{
    if (n % 4 == 1)
        return GW_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!is_b64url_char((unsigned char)in[i]))
            return GW_EINVAL;
    size_t o = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t v = (uint32_t)b64url_rev[(unsigned char)in[i]] << 18 |
                     (uint32_t)b64url_rev[(unsigned char)in[i + 1]] << 12 |
                     (uint32_t)b64url_rev[(unsigned char)in[i + 2]] << 6 |
                     b64url_rev[(unsigned char)in[i + 3]];
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    size_t rest = n - i;
    if (rest == 2) {
        uint32_t a = b64url_rev[(unsigned char)in[i]], b = b64url_rev[(unsigned char)in[i + 1]];
        if (b & 0x0f) /* non-canonical: unused bits set */
            return GW_EINVAL;
        out[o++] = (uint8_t)(a << 2 | b >> 4);
    } else if (rest == 3) {
        uint32_t a = b64url_rev[(unsigned char)in[i]], b = b64url_rev[(unsigned char)in[i + 1]],
                 c = b64url_rev[(unsigned char)in[i + 2]];
        if (c & 0x03)
            return GW_EINVAL;
        out[o++] = (uint8_t)(a << 2 | b >> 4);
        out[o++] = (uint8_t)((b & 0x0f) << 4 | c >> 2);
    }
    *outlen = o;
    return 0;
}

/* ======================================================================== */
/* Strict JSON                                                               */

#define JSTRICT_MAX_DEPTH 32

struct jstrict {
    const uint8_t *p, *end;
    int depth;
    bool has_float;
};

static void js_ws(struct jstrict *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One \uXXXX; returns the code unit or -1. */
static long js_u4(struct jstrict *j)
{
    if (j->end - j->p < 4)
        return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(j->p[k]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    j->p += 4;
    return v;
}

/* One UTF-8 sequence (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
static int js_utf8(struct jstrict *j)
{
    uint8_t c = *j->p;
    size_t need;
    uint32_t cp, min;
    if (c < 0x80) {
        j->p++;
        return 0;
    } else if ((c & 0xe0) == 0xc0) {
        need = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        need = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        need = 3, cp = c & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if ((size_t)(j->end - j->p) <= need)
        return -1;
    for (size_t k = 1; k <= need; k++) {
        if ((j->p[k] & 0xc0) != 0x80)
            return -1;
        cp = cp << 6 | (j->p[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    j->p += need + 1;
    return 0;
}

static int js_string(struct jstrict *j)
{
    j->p++; /* opening quote */
    while (j->p < j->end) {
        uint8_t c = *j->p;
        if (c == '"') {
            j->p++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end)
                return -1;
            c = *j->p++;
            if (c == 'u') {
                long u = js_u4(j);
                /* \u0000 would truncate cJSON's C strings: refuse it. */
                if (u <= 0)
                    return -1;
                if (u >= 0xdc00 && u <= 0xdfff)
                    return -1; /* lone low surrogate */
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                        return -1;
                    j->p += 2;
                    long lo = js_u4(j);
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return -1;
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
                return -1;
            }
            continue;
        }
        if (js_utf8(j) < 0)
            return -1;
    }
    return -1;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static int js_number(struct jstrict *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end || !is_digit(*j->p))
        return -1;
    if (*j->p == '0')
        j->p++;
    else
        while (j->p < j->end && is_digit(*j->p))
            j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->has_float = true;
        j->p++;
        if (j->p >= j->end || !is_digit(*j->p))
            return -1;
        while (j->p < j->end && is_digit(*j->p))
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->has_float = true;
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || !is_digit(*j->p))
            return -1;
        while (j->p < j->end && is_digit(*j->p))
            j->p++;
    }
    return 0;
}

static int js_lit(struct jstrict *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return -1;
    j->p += n;
    return 0;
}

static int js_value(struct jstrict *j);

static int js_container(struct jstrict *j, bool obj)
{
    if (++j->depth > JSTRICT_MAX_DEPTH)
        return -1;
    j->p++;
    js_ws(j);
    uint8_t close = obj ? '}' : ']';
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 0;
    }
    for (;;) {
        if (obj) {
            if (j->p >= j->end || *j->p != '"' || js_string(j) < 0)
                return -1;
            js_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return -1;
            j->p++;
            js_ws(j);
        }
        if (js_value(j) < 0)
            return -1;
        js_ws(j);
        if (j->p >= j->end)
            return -1;
        if (*j->p == ',') {
            j->p++;
            js_ws(j);
            continue;
        }
        if (*j->p != close)
            return -1;
        j->p++;
        j->depth--;
        return 0;
    }
}

static int js_value(struct jstrict *j)
{
    if (j->p >= j->end)
        return -1;
    switch (*j->p) {
    case '{':
        return js_container(j, true);
    case '[':
        return js_container(j, false);
    case '"':
        return js_string(j);
    case 't':
        return js_lit(j, "true");
    case 'f':
        return js_lit(j, "false");
    case 'n':
        return js_lit(j, "null");
    default:
        return js_number(j);
    }
}

/* Members of every object are unique (byte comparison after unescaping). */
static bool json_has_dup(const cJSON *item)
{
    for (const cJSON *c = item ? item->child : NULL; c; c = c->next) {
        if (cJSON_IsObject(item))
            for (const cJSON *d = c->next; d; d = d->next)
                if (strcmp(c->string, d->string) == 0)
                    return true;
        if (c->child && json_has_dup(c))
            return true;
    }
    return false;
}

/*
 * Parse buf strictly: exactly one JSON value with optional surrounding
 * whitespace, valid UTF-8, no duplicate members.  Returns the root (owned
 * by the caller) or NULL; *has_float tells whether any number had a
 * fraction or exponent.
 */
static cJSON *json_strict_parse(const uint8_t *buf, size_t n, bool *has_float)
{
    struct jstrict j = {.p = buf, .end = buf + n};
    js_ws(&j);
    if (js_value(&j) < 0)
        return NULL;
    js_ws(&j);
    if (j.p != j.end)
        return NULL;
    cJSON *root = cJSON_ParseWithLength((const char *)buf, n);
    if (!root)
        return NULL;
    if (json_has_dup(root)) {
        cJSON_Delete(root);
        return NULL;
    }
    if (has_float)
        *has_float = j.has_float;
    return root;
}

/* ======================================================================== */
/* Keys                                                                      */

struct jws_key {
    EVP_PKEY *pk;
    /*
     * ES256 only: a context initialised once for EVP_PKEY_verify over a
     * SHA-256 digest.  EVP_DigestVerifyInit_ex fetches the algorithms from
     * the provider store on every call, which costs ~25 % of a P-256
     * verification in OpenSSL 3.0; EVP_PKEY_verify may be called repeatedly
     * on one initialised context (EVP_PKEY_verify(3)).
     */
    EVP_PKEY_CTX *vctx;
    enum jws_alg alg;
    bool priv;
    uint8_t x[32], y[32]; /* public coordinates (EC) or public key (Ed25519: x) */
    char kid[JWS_KID_MAX + 1];
};

/* P-256 group order n, big-endian. */
static const uint8_t p256_order[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

const char *jws_alg_name(enum jws_alg alg)
{
    switch (alg) {
    case JWS_ALG_ES256:
        return "ES256";
    case JWS_ALG_ED25519:
        return "Ed25519";
    case JWS_ALG_NONE:
        break;
    }
    return "none";
}

enum jws_alg jws_alg_from_name(const char *name)
{
    if (!name)
        return JWS_ALG_NONE;
    if (strcmp(name, "ES256") == 0)
        return JWS_ALG_ES256;
    if (strcmp(name, "Ed25519") == 0)
        return JWS_ALG_ED25519;
    return JWS_ALG_NONE;
}

/* SHA-256 over s, base64url into out (JWS_THUMBPRINT_LEN + 1). */
static void sha256_b64url(const char *s, size_t n, char *out)
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, n, md);
    jws_b64url_encode(md, sizeof(md), out);
}

/* Canonical JWK thumbprint input from the raw public key. */
static void key_compute_kid(struct jws_key *k)
{
    char x[JWS_B64URL_ENC_LEN(32) + 1], y[JWS_B64URL_ENC_LEN(32) + 1];
    char buf[256];
    int n;
    jws_b64url_encode(k->x, 32, x);
    if (k->alg == JWS_ALG_ES256) {
        jws_b64url_encode(k->y, 32, y);
        n = snprintf(buf, sizeof(buf), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                     x, y);
    } else {
        n = snprintf(buf, sizeof(buf), "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    }
    sha256_b64url(buf, (size_t)n, k->kid);
}

/* Fill alg, x, y, priv and kid from k->pk.  Refuses other key types. */
static int key_fill(struct jws_key *k, bool priv)
{
    if (EVP_PKEY_is_a(k->pk, "ED25519")) {
        size_t len = sizeof(k->x);
        if (EVP_PKEY_get_raw_public_key(k->pk, k->x, &len) != 1 || len != 32)
            return GW_EINVAL;
        k->alg = JWS_ALG_ED25519;
    } else if (EVP_PKEY_is_a(k->pk, "EC")) {
        char grp[64];
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(k->pk, grp, sizeof(grp), &glen) != 1 ||
            (strcmp(grp, "prime256v1") != 0 && strcmp(grp, "P-256") != 0))
            return GW_EINVAL;
        BIGNUM *bx = NULL, *by = NULL;
        int ok = EVP_PKEY_get_bn_param(k->pk, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1 &&
                 EVP_PKEY_get_bn_param(k->pk, OSSL_PKEY_PARAM_EC_PUB_Y, &by) == 1 &&
                 BN_bn2binpad(bx, k->x, 32) == 32 && BN_bn2binpad(by, k->y, 32) == 32;
        BN_free(bx);
        BN_free(by);
        if (!ok)
            return GW_EINVAL;
        k->alg = JWS_ALG_ES256;
    } else {
        return GW_EINVAL;
    }
    k->priv = priv;
    key_compute_kid(k);
    if (k->alg == JWS_ALG_ES256) {
        k->vctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pk, NULL);
        if (!k->vctx || EVP_PKEY_verify_init(k->vctx) != 1 ||
            EVP_PKEY_CTX_set_signature_md(k->vctx, EVP_sha256()) != 1)
            return GW_EINTERNAL;
    }
    return 0;
}

/* Wrap pk (ownership moves) into a key; NULL (and pk freed) if unusable. */
static struct jws_key *key_wrap_take(EVP_PKEY *pk, bool priv)
{
    if (!pk)
        return NULL;
    struct jws_key *k = gw_xcalloc(1, sizeof(*k));
    k->pk = pk;
    if (key_fill(k, priv) < 0) {
        jws_key_free(k);
        return NULL;
    }
    return k;
}

struct jws_key *jws_key_generate(enum jws_alg alg)
{
    EVP_PKEY *pk = NULL;
    if (alg == JWS_ALG_ES256)
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    else if (alg == JWS_ALG_ED25519)
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    else
        return NULL;
    return key_wrap_take(pk, true);
}

void jws_key_free(struct jws_key *key)
{
    if (!key)
        return;
    EVP_PKEY_CTX_free(key->vctx);
    EVP_PKEY_free(key->pk);
    free(key);
}

const char *jws_key_kid(const struct jws_key *key)
{
    return key->kid;
}

enum jws_alg jws_key_alg(const struct jws_key *key)
{
    return key->alg;
}

bool jws_key_has_private(const struct jws_key *key)
{
    return key->priv;
}

int jws_hkdf_sha256(const void *ikm, size_t ikmlen, const void *salt, size_t saltlen,
                    const void *info, size_t infolen, uint8_t *out, size_t outlen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t ol = outlen;
    bool ok = c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_CTX_set_hkdf_md(c, EVP_sha256()) == 1 &&
              EVP_PKEY_CTX_set1_hkdf_salt(c, salt, (int)saltlen) == 1 &&
              EVP_PKEY_CTX_set1_hkdf_key(c, ikm, (int)ikmlen) == 1 &&
              EVP_PKEY_CTX_add1_hkdf_info(c, info, (int)infolen) == 1 &&
              EVP_PKEY_derive(c, out, &ol) == 1 && ol == outlen;
    EVP_PKEY_CTX_free(c);
    return ok ? 0 : -1;
}

int jws_key_derive_secret(const struct jws_key *key, const char *label, uint8_t out[32])
{
    if (!key || !key->priv)
        return -1;
    uint8_t d[32];
    size_t dl = sizeof(d);
    bool ok;
    if (key->alg == JWS_ALG_ED25519) {
        ok = EVP_PKEY_get_raw_private_key(key->pk, d, &dl) == 1 && dl == 32;
    } else {
        BIGNUM *bn = NULL;
        ok = EVP_PKEY_get_bn_param(key->pk, OSSL_PKEY_PARAM_PRIV_KEY, &bn) == 1 &&
             BN_bn2binpad(bn, d, 32) == 32;
        BN_clear_free(bn);
    }
    static const char salt[] = "BFIA-GW node key derivation v1";
    if (ok)
        ok = jws_hkdf_sha256(d, 32, salt, sizeof(salt) - 1, label, strlen(label), out, 32) == 0;
    OPENSSL_cleanse(d, sizeof(d));
    return ok ? 0 : -1;
}

static int key_write(const struct jws_key *key, const char *path, bool durable,
                     struct gw_errbuf *eb)
{
    if (!key || !key->priv)
        return gw_errf(eb, GW_EINVAL, "key has no private part to save");
    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem)
        return gw_errf(eb, GW_EINTERNAL, "BIO_new failed");
    int rc = 0;
    /* PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY") in 3.x. */
    if (PEM_write_bio_PrivateKey(mem, key->pk, NULL, NULL, 0, NULL, NULL) != 1) {
        BIO_free(mem);
        return gw_errf(eb, GW_EINTERNAL, "cannot encode key as PEM");
    }
    char *data = NULL;
    long len = BIO_get_mem_data(mem, &data);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = gw_errf(eb, GW_EINTERNAL, "open %s: %s", path, strerror(errno));
        goto out;
    }
    /* The file may have existed with a looser mode: tighten before writing. */
    if (fchmod(fd, 0600) < 0) {
        rc = gw_errf(eb, GW_EINTERNAL, "fchmod %s: %s", path, strerror(errno));
        goto out;
    }
    for (long off = 0; off < len;) {
        ssize_t w = write(fd, data + off, (size_t)(len - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = gw_errf(eb, GW_EINTERNAL, "write %s: %s", path, strerror(errno));
            goto out;
        }
        off += w;
    }
    if (durable && fsync(fd) < 0) /* banned-ok: start-up and bfiactl only (see jws.h) */
        rc = gw_errf(eb, GW_EINTERNAL, "fsync %s: %s", path, strerror(errno));
out:
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = gw_errf(eb, GW_EINTERNAL, "close %s: %s", path, strerror(errno));
    OPENSSL_cleanse(data, (size_t)len);
    BIO_free(mem);
    return rc;
}

int jws_key_save_pem(const struct jws_key *key, const char *path, struct gw_errbuf *eb)
{
    return key_write(key, path, true, eb);
}

int jws_key_write_pem(const struct jws_key *key, const char *path, struct gw_errbuf *eb)
{
    return key_write(key, path, false, eb);
}

int jws_key_load_pem(const char *path, struct jws_key **out, struct gw_errbuf *eb)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return gw_errf(eb, errno == ENOENT ? GW_ENOTFOUND : GW_EINVAL, "open %s: %s", path,
                       strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > 16384) {
        close(fd);
        return gw_errf(eb, GW_EINVAL, "%s: not a regular file of 1..16384 bytes", path);
    }
    char buf[16384];
    size_t len = 0;
    while (len < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    BIO *mem = BIO_new_mem_buf(buf, (int)len);
    EVP_PKEY *pk = mem ? PEM_read_bio_PrivateKey(mem, NULL, NULL, NULL) : NULL;
    BIO_free(mem);
    OPENSSL_cleanse(buf, len);
    ERR_clear_error();
    if (!pk)
        return gw_errf(eb, GW_EINVAL, "%s: not a PEM private key", path);
    *out = key_wrap_take(pk, true);
    if (!*out)
        return gw_errf(eb, GW_EINVAL, "%s: not a P-256 or Ed25519 key", path);
    return 0;
}

/* A base64url JWK member that must decode to exactly 32 bytes. */
static int jwk_b64_32(const cJSON *jwk, const char *name, uint8_t out[32], bool required,
                      bool *present, struct gw_errbuf *eb)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(jwk, name);
    if (present)
        *present = it != NULL;
    if (!it)
        return required ? gw_errf(eb, GW_EINVAL, "JWK member '%s' is required", name) : 0;
    uint8_t tmp[48];
    size_t n = 0;
    if (!cJSON_IsString(it) || strlen(it->valuestring) != 43 ||
        jws_b64url_decode(it->valuestring, 43, tmp, &n) < 0 || n != 32)
        return gw_errf(eb, GW_EINVAL, "JWK member '%s' is not 32 bytes of base64url", name);
    memcpy(out, tmp, 32);
    return 0;
}

static const char *jwk_str(const cJSON *jwk, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(jwk, name);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Run EVP_PKEY_public_check (and the pair-wise check for private keys). */
static bool pkey_checks(EVP_PKEY *pk, bool priv)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    bool ok = c && EVP_PKEY_public_check(c) == 1 && (!priv || EVP_PKEY_pairwise_check(c) == 1);
    EVP_PKEY_CTX_free(c);
    return ok;
}

static EVP_PKEY *ec_from_xyd(const uint8_t x[32], const uint8_t y[32], const uint8_t *d)
{
    uint8_t pub[65];
    pub[0] = 0x04;
    memcpy(pub + 1, x, 32);
    memcpy(pub + 33, y, 32);
    EVP_PKEY *pk = NULL;
    BIGNUM *bd = d ? BN_bin2bn(d, 32, NULL) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!bld || !c || (d && !bd) ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)) != 1 ||
        (bd && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bd) != 1))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    if (!params || EVP_PKEY_fromdata_init(c) != 1 ||
        EVP_PKEY_fromdata(c, &pk, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(c);
    BN_clear_free(bd);
    return pk;
}

int jws_key_from_jwk(const cJSON *jwk, struct jws_key **out, struct gw_errbuf *eb)
{
    *out = NULL;
    if (!cJSON_IsObject(jwk))
        return gw_errf(eb, GW_EINVAL, "JWK is not an object");
    const char *kty = jwk_str(jwk, "kty"), *crv = jwk_str(jwk, "crv");
    uint8_t x[32], y[32], d[32];
    bool has_d = false;
    int rc;
    EVP_PKEY *pk = NULL;
    enum jws_alg alg;
    if (kty && crv && strcmp(kty, "EC") == 0 && strcmp(crv, "P-256") == 0) {
        alg = JWS_ALG_ES256;
        if ((rc = jwk_b64_32(jwk, "x", x, true, NULL, eb)) < 0 ||
            (rc = jwk_b64_32(jwk, "y", y, true, NULL, eb)) < 0 ||
            (rc = jwk_b64_32(jwk, "d", d, false, &has_d, eb)) < 0)
            return rc;
        pk = ec_from_xyd(x, y, has_d ? d : NULL);
    } else if (kty && crv && strcmp(kty, "OKP") == 0 && strcmp(crv, "Ed25519") == 0) {
        alg = JWS_ALG_ED25519;
        if ((rc = jwk_b64_32(jwk, "x", x, true, NULL, eb)) < 0 ||
            (rc = jwk_b64_32(jwk, "d", d, false, &has_d, eb)) < 0)
            return rc;
        pk = has_d ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, 32)
                   : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32);
    } else {
        return gw_errf(eb, GW_EINVAL, "JWK kty/crv is not EC/P-256 or OKP/Ed25519");
    }
    OPENSSL_cleanse(d, sizeof(d));
    if (!pk || !pkey_checks(pk, has_d)) {
        EVP_PKEY_free(pk);
        ERR_clear_error();
        return gw_errf(eb, GW_EINVAL, "JWK is not a valid %s key", jws_alg_name(alg));
    }
    struct jws_key *k = key_wrap_take(pk, has_d);
    if (!k)
        return gw_errf(eb, GW_EINVAL, "JWK is not a valid %s key", jws_alg_name(alg));
    /* Ed25519: the public key derived from d must be the published x. */
    if (memcmp(k->x, x, 32) != 0) {
        jws_key_free(k);
        return gw_errf(eb, GW_EINVAL, "JWK 'd' does not match 'x'");
    }
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(jwk, "alg");
    if (a && (!cJSON_IsString(a) || jws_alg_from_name(a->valuestring) != alg)) {
        jws_key_free(k);
        return gw_errf(eb, GW_EINVAL, "JWK 'alg' is not %s", jws_alg_name(alg));
    }
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(jwk, "kid");
    if (kid && (!cJSON_IsString(kid) || strcmp(kid->valuestring, k->kid) != 0)) {
        jws_key_free(k);
        return gw_errf(eb, GW_EINVAL, "JWK 'kid' is not its RFC 7638 thumbprint");
    }
    *out = k;
    return 0;
}

cJSON *jws_key_to_jwk(const struct jws_key *key)
{
    char x[JWS_B64URL_ENC_LEN(32) + 1], y[JWS_B64URL_ENC_LEN(32) + 1];
    cJSON *j = cJSON_CreateObject();
    bool ec = key->alg == JWS_ALG_ES256;
    cJSON_AddStringToObject(j, "kty", ec ? "EC" : "OKP");
    cJSON_AddStringToObject(j, "crv", ec ? "P-256" : "Ed25519");
    jws_b64url_encode(key->x, 32, x);
    cJSON_AddStringToObject(j, "x", x);
    if (ec) {
        jws_b64url_encode(key->y, 32, y);
        cJSON_AddStringToObject(j, "y", y);
    }
    cJSON_AddStringToObject(j, "kid", key->kid);
    cJSON_AddStringToObject(j, "use", "sig");
    cJSON_AddStringToObject(j, "alg", jws_alg_name(key->alg));
    return j;
}

/* A thumbprint member value: printable ASCII needing no JSON escaping. */
static const char *tp_member(const cJSON *jwk, const char *name)
{
    const char *s = jwk_str(jwk, name);
    if (!s || !*s)
        return NULL;
    for (const char *p = s; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
            return NULL;
    return s;
}

int jws_jwk_thumbprint(const cJSON *jwk, char *out)
{
    const char *kty = tp_member(jwk, "kty");
    if (!kty)
        return GW_EINVAL;
    /* RFC 7638 section 3.2: the required members, lexicographic order. */
    static const char *const ec[] = {"crv", "kty", "x", "y", NULL};
    static const char *const okp[] = {"crv", "kty", "x", NULL};
    static const char *const rsa[] = {"e", "kty", "n", NULL};
    const char *const *names = strcmp(kty, "EC") == 0    ? ec
                               : strcmp(kty, "OKP") == 0 ? okp
                               : strcmp(kty, "RSA") == 0 ? rsa
                                                         : NULL;
    if (!names)
        return GW_EINVAL;
    size_t cap = 64, len = 0;
    for (size_t i = 0; names[i]; i++) {
        const char *v = tp_member(jwk, names[i]);
        if (!v)
            return GW_EINVAL;
        cap += strlen(names[i]) + strlen(v) + 8;
    }
    char *buf = gw_xmalloc(cap);
    buf[len++] = '{';
    for (size_t i = 0; names[i]; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\":\"%s\"", i ? "," : "", names[i],
                                tp_member(jwk, names[i]));
    buf[len++] = '}';
    sha256_b64url(buf, len, out);
    free(buf);
    return 0;
}

/* ======================================================================== */
/* Key sets                                                                  */

#define JWS_KEYSET_MAX 64

struct jws_keyset {
    size_t n;
    struct jws_key *keys[JWS_KEYSET_MAX];
};

struct jws_keyset *jws_keyset_new(void)
{
    return gw_xcalloc(1, sizeof(struct jws_keyset));
}

void jws_keyset_free(struct jws_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++)
        jws_key_free(ks->keys[i]);
    free(ks);
}

const struct jws_key *jws_keyset_find(const struct jws_keyset *ks, const char *kid)
{
    if (!ks || !kid)
        return NULL;
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->keys[i]->kid, kid) == 0)
            return ks->keys[i];
    return NULL;
}

int jws_keyset_add_take(struct jws_keyset *ks, struct jws_key *key)
{
    if (jws_keyset_find(ks, key->kid))
        return GW_ECONFLICT;
    if (ks->n >= JWS_KEYSET_MAX)
        return GW_ETOOBIG;
    ks->keys[ks->n++] = key;
    return 0;
}

size_t jws_keyset_count(const struct jws_keyset *ks)
{
    return ks ? ks->n : 0;
}

const struct jws_key *jws_keyset_get(const struct jws_keyset *ks, size_t i)
{
    return ks && i < ks->n ? ks->keys[i] : NULL;
}

int jws_keyset_from_jwks(const cJSON *jwks, struct jws_keyset **out, struct gw_errbuf *eb)
{
    *out = NULL;
    const cJSON *arr = cJSON_IsObject(jwks) ? cJSON_GetObjectItemCaseSensitive(jwks, "keys") : NULL;
    if (!cJSON_IsArray(arr))
        return gw_errf(eb, GW_EINVAL, "JWKS has no 'keys' array");
    static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"};
    struct jws_keyset *ks = jws_keyset_new();
    int i = 0, rc = 0;
    for (const cJSON *jwk = arr->child; jwk; jwk = jwk->next, i++) {
        gw_err_where(eb, "keys[%d]", i);
        if (!cJSON_IsObject(jwk)) {
            rc = gw_errf(eb, GW_EINVAL, "JWKS key is not an object");
            break;
        }
        for (size_t m = 0; m < GW_ARRAY_LEN(private_members); m++)
            if (cJSON_GetObjectItemCaseSensitive(jwk, private_members[m]))
                rc = gw_errf(eb, GW_EINVAL, "JWKS key carries private member '%s'",
                             private_members[m]);
        if (rc < 0)
            break;
        const char *use = jwk_str(jwk, "use");
        if (!use || strcmp(use, "sig") != 0) {
            rc = gw_errf(eb, GW_EINVAL, "JWKS key 'use' is not \"sig\"");
            break;
        }
        if (!jwk_str(jwk, "alg") || !jwk_str(jwk, "kid")) {
            rc = gw_errf(eb, GW_EINVAL, "JWKS key lacks 'alg' or 'kid'");
            break;
        }
        struct jws_key *k = NULL;
        if ((rc = jws_key_from_jwk(jwk, &k, eb)) < 0)
            break;
        if (jws_keyset_add_take(ks, k) < 0) {
            jws_key_free(k);
            rc = gw_errf(eb, GW_EINVAL, "JWKS has a duplicate kid or too many keys");
            break;
        }
    }
    if (rc < 0) {
        jws_keyset_free(ks);
        return rc;
    }
    if (eb)
        eb->where[0] = '\0';
    *out = ks;
    return 0;
}

cJSON *jws_jwks_build(const struct jws_key *const *keys, size_t n)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "keys");
    for (size_t i = 0; i < n; i++)
        if (keys[i])
            cJSON_AddItemToArray(arr, jws_key_to_jwk(keys[i]));
    return root;
}

cJSON *jws_keyset_to_jwks(const struct jws_keyset *ks)
{
    return jws_jwks_build((const struct jws_key *const *)ks->keys, ks->n);
}

/* ======================================================================== */
/* Sign and verify                                                           */

int jws_sign_raw(const struct jws_key *key, const uint8_t *msg, size_t len, uint8_t *sig,
                 size_t *siglen)
{
    if (!key->priv)
        return GW_EINVAL;
    int rc = GW_EINTERNAL;
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    uint8_t der[80];
    size_t dlen = sizeof(der);
    const char *md = key->alg == JWS_ALG_ES256 ? "SHA256" : NULL;
    if (!mc || EVP_DigestSignInit_ex(mc, NULL, md, NULL, NULL, key->pk, NULL) != 1 ||
        EVP_DigestSign(mc, der, &dlen, msg, len) != 1)
        goto out;
    if (key->alg == JWS_ALG_ED25519) {
        if (dlen != 64)
            goto out;
        memcpy(sig, der, 64);
    } else {
        /* OpenSSL speaks DER ECDSA-Sig-Value; JWS wants fixed R||S. */
        const unsigned char *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
        const BIGNUM *r = NULL, *s = NULL;
        if (!es)
            goto out;
        ECDSA_SIG_get0(es, &r, &s);
        bool ok = BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32;
        ECDSA_SIG_free(es);
        if (!ok)
            goto out;
    }
    *siglen = 64;
    rc = 0;
out:
    EVP_MD_CTX_free(mc);
    if (rc < 0)
        ERR_clear_error();
    return rc;
}

/* 0 < v < n for a 32-byte big-endian scalar. */
static bool scalar_in_range(const uint8_t v[32])
{
    static const uint8_t zero[32];
    return memcmp(v, zero, 32) != 0 && memcmp(v, p256_order, 32) < 0;
}

bool jws_verify_raw(const struct jws_key *key, const uint8_t *msg, size_t len,
                    const uint8_t *sig, size_t siglen)
{
    if (!key || siglen != 64)
        return false;
    uint8_t der[80];
    const uint8_t *vsig = sig;
    size_t vlen = 64;
    if (key->alg == JWS_ALG_ES256) {
        if (!scalar_in_range(sig) || !scalar_in_range(sig + 32))
            return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
        if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            return false;
        }
        unsigned char *p = der;
        int n = i2d_ECDSA_SIG(es, &p); /* at most 72 bytes for P-256 */
        ECDSA_SIG_free(es);
        if (n <= 0)
            return false;
        vsig = der;
        vlen = (size_t)n;
    }
    bool ok;
    if (key->alg == JWS_ALG_ES256) {
        uint8_t md[SHA256_DIGEST_LENGTH];
        SHA256(msg, len, md);
        /* Anything but exactly 1 is a failure: 0 is a bad signature, <0 an error. */
        ok = EVP_PKEY_verify(key->vctx, vsig, vlen, md, sizeof(md)) == 1;
    } else {
        EVP_MD_CTX *mc = EVP_MD_CTX_new();
        ok = mc && EVP_DigestVerifyInit_ex(mc, NULL, NULL, NULL, NULL, key->pk, NULL) == 1 &&
             EVP_DigestVerify(mc, vsig, vlen, msg, len) == 1;
        EVP_MD_CTX_free(mc);
    }
    if (!ok)
        ERR_clear_error();
    return ok;
}

int jws_sign(const struct jws_key *key, const char *typ, const cJSON *payload, char **out)
{
    *out = NULL;
    if (!key->priv || !cJSON_IsObject(payload))
        return GW_EINVAL;
    cJSON *hdr = cJSON_CreateObject();
    cJSON_AddStringToObject(hdr, "alg", jws_alg_name(key->alg));
    if (typ)
        cJSON_AddStringToObject(hdr, "typ", typ);
    cJSON_AddStringToObject(hdr, "kid", key->kid);
    char *h = cJSON_PrintUnformatted(hdr);
    char *p = cJSON_PrintUnformatted(payload);
    cJSON_Delete(hdr);
    if (!h || !p) {
        cJSON_free(h);
        cJSON_free(p);
        return GW_EINTERNAL;
    }
    size_t hl = strlen(h), pl = strlen(p);
    size_t cap = JWS_B64URL_ENC_LEN(hl) + JWS_B64URL_ENC_LEN(pl) + JWS_B64URL_ENC_LEN(64) + 3;
    char *tok = gw_xmalloc(cap);
    size_t n = jws_b64url_encode((const uint8_t *)h, hl, tok);
    tok[n++] = '.';
    n += jws_b64url_encode((const uint8_t *)p, pl, tok + n);
    cJSON_free(h);
    cJSON_free(p);
    uint8_t sig[64];
    size_t slen = 0;
    int rc = jws_sign_raw(key, (const uint8_t *)tok, n, sig, &slen);
    if (rc < 0) {
        free(tok);
        return rc;
    }
    tok[n++] = '.';
    jws_b64url_encode(sig, slen, tok + n);
    *out = tok;
    return 0;
}

/* ======================================================================== */
/* Replay cache                                                              */

#define JWS_REPLAY_MAX (1u << 20)
#define REPLAY_EMPTY UINT32_MAX

struct replay_ent {
    uint64_t hash;
    long long expiry;
    char iss[JWS_KID_MAX + 1];
    char jti[JWS_KID_MAX + 1];
};

/*
 * Dense entry array plus an open-addressing index (linear probing, load <=
 * 1/2).  Deletion happens only in the sweep, which compacts the array and
 * rebuilds the index, so the probe sequences never see tombstones.
 */
struct jws_replay {
    size_t max, count;
    size_t mask; /* index size - 1 */
    struct replay_ent *ents;
    uint32_t *index;
};

static uint64_t replay_hash(const char *iss, const char *jti)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (const char *p = iss; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull; /* separator that no string byte equals */
    for (const char *p = jti; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h;
}

struct jws_replay *jws_replay_new(size_t max_entries)
{
    if (max_entries == 0 || max_entries > JWS_REPLAY_MAX)
        return NULL;
    size_t slots = 2;
    while (slots < 2 * max_entries)
        slots <<= 1;
    struct jws_replay *rc = gw_xcalloc(1, sizeof(*rc));
    rc->max = max_entries;
    rc->mask = slots - 1;
    rc->ents = gw_xcalloc(max_entries, sizeof(*rc->ents));
    rc->index = gw_xmalloc(slots * sizeof(*rc->index));
    memset(rc->index, 0xff, slots * sizeof(*rc->index));
    return rc;
}

void jws_replay_free(struct jws_replay *rc)
{
    if (!rc)
        return;
    free(rc->ents);
    free(rc->index);
    free(rc);
}

size_t jws_replay_count(const struct jws_replay *rc)
{
    return rc ? rc->count : 0;
}

/* The index slot holding (iss, jti), or the empty slot where it would go. */
static size_t replay_slot(const struct jws_replay *rc, uint64_t h, const char *iss,
                          const char *jti)
{
    for (size_t i = (size_t)h & rc->mask;; i = (i + 1) & rc->mask) {
        uint32_t e = rc->index[i];
        if (e == REPLAY_EMPTY)
            return i;
        const struct replay_ent *en = &rc->ents[e];
        if (en->hash == h && strcmp(en->iss, iss) == 0 && strcmp(en->jti, jti) == 0)
            return i;
    }
}

size_t jws_replay_sweep(struct jws_replay *rc, long long now)
{
    size_t kept = 0, before = rc->count;
    for (size_t i = 0; i < rc->count; i++)
        if (rc->ents[i].expiry > now)
            rc->ents[kept++] = rc->ents[i];
    rc->count = kept;
    memset(rc->index, 0xff, (rc->mask + 1) * sizeof(*rc->index));
    for (size_t i = 0; i < kept; i++) {
        size_t s = (size_t)rc->ents[i].hash & rc->mask;
        while (rc->index[s] != REPLAY_EMPTY)
            s = (s + 1) & rc->mask;
        rc->index[s] = (uint32_t)i;
    }
    return before - kept;
}

bool jws_replay_seen(const struct jws_replay *rc, const char *iss, const char *jti,
                     long long now)
{
    if (strlen(iss) > JWS_KID_MAX || strlen(jti) > JWS_KID_MAX)
        return false;
    size_t s = replay_slot(rc, replay_hash(iss, jti), iss, jti);
    return rc->index[s] != REPLAY_EMPTY && rc->ents[rc->index[s]].expiry > now;
}

int jws_replay_insert(struct jws_replay *rc, const char *iss, const char *jti, long long expiry,
                      long long now)
{
    if (strlen(iss) > JWS_KID_MAX || strlen(jti) > JWS_KID_MAX)
        return GW_EINVAL;
    uint64_t h = replay_hash(iss, jti);
    size_t s = replay_slot(rc, h, iss, jti);
    if (rc->index[s] != REPLAY_EMPTY) {
        struct replay_ent *en = &rc->ents[rc->index[s]];
        if (en->expiry > now)
            return GW_ECONFLICT;
        en->expiry = expiry; /* expired entry for the same pair: reuse it */
        return 0;
    }
    if (rc->count >= rc->max) {
        jws_replay_sweep(rc, now);
        if (rc->count >= rc->max)
            return GW_EBUSY;
        s = replay_slot(rc, h, iss, jti);
    }
    struct replay_ent *en = &rc->ents[rc->count];
    en->hash = h;
    en->expiry = expiry;
    snprintf(en->iss, sizeof(en->iss), "%s", iss);
    snprintf(en->jti, sizeof(en->jti), "%s", jti);
    rc->index[s] = (uint32_t)rc->count++;
    return 0;
}

/* ======================================================================== */
/* Verification                                                              */

const char *jws_error_name(enum jws_error e)
{
    switch (e) {
    case JWS_OK: return "OK";
    case JWS_E_SIZE: return "E_SIZE";
    case JWS_E_FORMAT: return "E_FORMAT";
    case JWS_E_B64: return "E_B64";
    case JWS_E_JSON: return "E_JSON";
    case JWS_E_HDR_PARAM: return "E_HDR_PARAM";
    case JWS_E_ALG: return "E_ALG";
    case JWS_E_TYP: return "E_TYP";
    case JWS_E_KID: return "E_KID";
    case JWS_E_SIG: return "E_SIG";
    case JWS_E_CLAIM_MISSING: return "E_CLAIM_MISSING";
    case JWS_E_CLAIM_TYPE: return "E_CLAIM_TYPE";
    case JWS_E_PROFILE: return "E_PROFILE";
    case JWS_E_ISS: return "E_ISS";
    case JWS_E_AUD: return "E_AUD";
    case JWS_E_EXP: return "E_EXP";
    case JWS_E_NBF: return "E_NBF";
    case JWS_E_IAT: return "E_IAT";
    case JWS_E_TTL: return "E_TTL";
    case JWS_E_BINDING: return "E_BINDING";
    case JWS_E_NONCE: return "E_NONCE";
    case JWS_E_REPLAY: return "E_REPLAY";
    case JWS_E_BUSY: return "E_BUSY";
    case JWS_E_ARG: return "E_ARG";
    }
    return "E_UNKNOWN";
}

void jws_verify_ctx_init(struct jws_verify_ctx *ctx, enum jws_typ typ, long long now)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->typ = typ;
    ctx->now = now;
    ctx->leeway = JWS_LEEWAY_S;
    ctx->expected_profile = JWS_EAT_PROFILE;
    ctx->alg_allowlist = JWS_ALG_ES256;
}

/* [A-Za-z0-9_-]{min,max} */
static bool is_token_str(const char *s, size_t min, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= max || !is_b64url_char((unsigned char)s[n]))
            return false;
    return n >= min;
}

/* ^sha256:[0-9a-f]{64}$ */
static bool is_digest(const char *s)
{
    if (strncmp(s, "sha256:", 7) != 0)
        return false;
    s += 7;
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == 64;
}

/* An eat_nonce text: 8..88 characters (bytes; nonces are ASCII). */
static bool is_nonce_text(const cJSON *it)
{
    if (!cJSON_IsString(it))
        return false;
    size_t n = strlen(it->valuestring);
    return n >= 8 && n <= 88;
}

static bool is_nonce(const cJSON *it)
{
    if (cJSON_IsString(it))
        return is_nonce_text(it);
    if (!cJSON_IsArray(it))
        return false;
    int n = 0;
    for (const cJSON *c = it->child; c; c = c->next, n++)
        if (!is_nonce_text(c))
            return false;
    return n >= 2 && n <= 4;
}

/* Non-negative JSON integer that a double holds exactly (<= 2^53 - 1). */
static bool get_time(const cJSON *it, long long *out)
{
    if (!cJSON_IsNumber(it))
        return false;
    double v = it->valuedouble;
    if (!(v >= 0 && v <= 9007199254740991.0) || v != (double)(long long)v)
        return false;
    *out = (long long)v;
    return true;
}

static const char *get_s(const cJSON *obj, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static bool has(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name) != NULL;
}

/* An expected binding value: NULL = unchecked, else must equal got. */
static bool bind_ok(const char *want, const char *got)
{
    return !want || (got && strcmp(want, got) == 0);
}

/* The three decoded segments of a compact token. */
struct jws_parts {
    uint8_t hdr[JWS_B64URL_DEC_MAX(JWS_MAX_TOKEN)];
    uint8_t pay[JWS_B64URL_DEC_MAX(JWS_MAX_TOKEN)];
    uint8_t sig[JWS_B64URL_DEC_MAX(JWS_MAX_TOKEN)];
    size_t hlen, plen, slen;
};

/* Checks 2 to 4: header, key, and the signature over the signing input. */
static enum jws_error check_header_sig(const struct jws_parts *pt, const uint8_t *input,
                                       size_t ilen, const struct jws_verify_ctx *ctx)
{
    cJSON *hdr = json_strict_parse(pt->hdr, pt->hlen, NULL);
    if (!hdr || !cJSON_IsObject(hdr)) {
        cJSON_Delete(hdr);
        return JWS_E_JSON;
    }
    enum jws_error err = JWS_OK;
    for (const cJSON *m = hdr->child; m; m = m->next)
        if (!cJSON_IsString(m) ||
            (strcmp(m->string, "alg") != 0 && strcmp(m->string, "typ") != 0 &&
             strcmp(m->string, "kid") != 0))
            err = JWS_E_HDR_PARAM;
    const char *alg = get_s(hdr, "alg"), *typ = get_s(hdr, "typ"), *kid = get_s(hdr, "kid");
    const char *want_typ = ctx->typ == JWS_TYP_LAUNCH ? JWS_TYP_LAUNCH_STR : JWS_TYP_PRESENT_STR;
    enum jws_alg a = jws_alg_from_name(alg);
    const struct jws_key *key = NULL;
    if (err)
        ;
    else if (a == JWS_ALG_NONE || !(ctx->alg_allowlist & (unsigned)a))
        err = JWS_E_ALG;
    else if (!typ || strcmp(typ, want_typ) != 0)
        err = JWS_E_TYP;
    else if (!kid || !is_token_str(kid, 1, JWS_KID_MAX))
        err = JWS_E_KID;
    else if (!(key = jws_keyset_find(ctx->keys, kid))) /* only the expected issuer's set */
        err = JWS_E_KID;
    else if (key->alg != a)
        err = JWS_E_ALG;
    cJSON_Delete(hdr);
    if (err)
        return err;
    /* Over the received bytes "seg0.seg1", never a re-serialization (V43). */
    if (!jws_verify_raw(key, input, ilen, pt->sig, pt->slen))
        return JWS_E_SIG;
    return JWS_OK;
}

/* Check 5: presence, then types. */
static enum jws_error check_claims(const cJSON *c, bool has_float, enum jws_typ typ)
{
    static const char *const required[] = {"iss", "sub",         "aud",       "iat",  "nbf",
                                           "exp", "jti",         "eat_profile", "eat_nonce",
                                           "bfia"};
    static const char *const bfia_required[] = {"ver",        "node_id",   "job_id",
                                                "task_id",    "self_role", "session_id",
                                                "component",  "image",     "attester"};
    for (size_t i = 0; i < GW_ARRAY_LEN(required); i++)
        if (!has(c, required[i]))
            return JWS_E_CLAIM_MISSING;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(c, "bfia");
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(b, "image");
    if (cJSON_IsObject(b)) {
        for (size_t i = 0; i < GW_ARRAY_LEN(bfia_required); i++)
            if (!has(b, bfia_required[i]))
                return JWS_E_CLAIM_MISSING;
        if (!has(b, typ == JWS_TYP_LAUNCH ? "container" : "launch_jti"))
            return JWS_E_CLAIM_MISSING;
        if (cJSON_IsObject(img) && (!has(img, "manifest_digest") || !has(img, "config_digest")))
            return JWS_E_CLAIM_MISSING;
    }

    /* Types.  Floating time is forbidden by EAT; any float is refused. */
    long long t;
    if (has_float || !cJSON_IsObject(b) || !get_s(c, "iss") || !get_s(c, "sub") ||
        !get_s(c, "aud") || !get_s(c, "eat_profile") ||
        !get_time(cJSON_GetObjectItemCaseSensitive(c, "iat"), &t) ||
        !get_time(cJSON_GetObjectItemCaseSensitive(c, "nbf"), &t) ||
        !get_time(cJSON_GetObjectItemCaseSensitive(c, "exp"), &t) || !get_s(c, "jti") ||
        !is_token_str(get_s(c, "jti"), 22, 64) ||
        !is_nonce(cJSON_GetObjectItemCaseSensitive(c, "eat_nonce")))
        return JWS_E_CLAIM_TYPE;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(b, "ver");
    if (!cJSON_IsNumber(ver) || ver->valuedouble != 1.0)
        return JWS_E_CLAIM_TYPE;
    static const char *const bfia_strings[] = {"node_id", "job_id", "task_id", "self_role",
                                               "session_id", "attester"};
    for (size_t i = 0; i < GW_ARRAY_LEN(bfia_strings); i++)
        if (!get_s(b, bfia_strings[i]))
            return JWS_E_CLAIM_TYPE;
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(b, "component")) || !cJSON_IsObject(img))
        return JWS_E_CLAIM_TYPE;
    const char *md = get_s(img, "manifest_digest"), *cd = get_s(img, "config_digest");
    if (!md || !cd || !is_digest(md) || !is_digest(cd))
        return JWS_E_CLAIM_TYPE;
    if (typ == JWS_TYP_LAUNCH) {
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(b, "container");
        if (!cJSON_IsObject(ct) || !get_s(ct, "name"))
            return JWS_E_CLAIM_TYPE;
    } else {
        const char *lj = get_s(b, "launch_jti");
        if (!lj || !is_token_str(lj, 22, 64))
            return JWS_E_CLAIM_TYPE;
    }
    return JWS_OK;
}

/* sub == job_id "/" task_id "/" self_role */
static bool sub_matches(const char *sub, const char *job, const char *task, const char *role)
{
    size_t lj = strlen(job), lt = strlen(task);
    return strncmp(sub, job, lj) == 0 && sub[lj] == '/' && strncmp(sub + lj + 1, task, lt) == 0 &&
           sub[lj + 1 + lt] == '/' && strcmp(sub + lj + lt + 2, role) == 0;
}

/* Checks 6 to 9 on a payload whose types are known to be right. */
static enum jws_error check_semantics(const cJSON *c, const struct jws_verify_ctx *ctx)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(c, "bfia");
    const char *iss = get_s(c, "iss");
    if (strcmp(get_s(c, "eat_profile"), ctx->expected_profile) != 0)
        return JWS_E_PROFILE;
    if (strcmp(iss, ctx->expected_iss) != 0 || strcmp(get_s(b, "node_id"), iss) != 0)
        return JWS_E_ISS;
    if (strcmp(get_s(c, "aud"), ctx->expected_aud) != 0)
        return JWS_E_AUD;

    long long iat = 0, nbf = 0, exp = 0, now = ctx->now, lw = ctx->leeway;
    (void)get_time(cJSON_GetObjectItemCaseSensitive(c, "iat"), &iat); /* checked already */
    (void)get_time(cJSON_GetObjectItemCaseSensitive(c, "nbf"), &nbf);
    (void)get_time(cJSON_GetObjectItemCaseSensitive(c, "exp"), &exp);
    if (now - lw >= exp) /* exp is exclusive (RFC 7519 4.1.4) */
        return JWS_E_EXP;
    if (now + lw < nbf)
        return JWS_E_NBF;
    if (iat > now + lw || exp <= iat)
        return JWS_E_IAT;
    if (exp - iat > (ctx->typ == JWS_TYP_LAUNCH ? JWS_LAUNCH_MAX_TTL_S : JWS_PRESENT_MAX_TTL_S))
        return JWS_E_TTL;

    const struct jws_binding *w = &ctx->binding;
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(b, "image");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(b, "container");
    const char *job = get_s(b, "job_id"), *task = get_s(b, "task_id"), *role = get_s(b, "self_role");
    if (!bind_ok(w->job_id, job) || !bind_ok(w->task_id, task) || !bind_ok(w->self_role, role) ||
        !bind_ok(w->session_id, get_s(b, "session_id")) ||
        !bind_ok(w->manifest_digest, get_s(img, "manifest_digest")) ||
        !bind_ok(w->config_digest, get_s(img, "config_digest")) ||
        !bind_ok(w->container_name, get_s(ct, "name")) ||
        !bind_ok(w->launch_jti, get_s(b, "launch_jti")) ||
        !sub_matches(get_s(c, "sub"), job, task, role))
        return JWS_E_BINDING;

    const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(c, "eat_nonce");
    if (ctx->typ == JWS_TYP_PRESENT && ctx->introspect) {
        return JWS_OK; /* introspection: the audience's own checks are not ours */
    } else if (ctx->typ == JWS_TYP_PRESENT) {
        if (!cJSON_IsString(nonce) || strcmp(nonce->valuestring, ctx->expected_nonce) != 0)
            return JWS_E_NONCE;
    } else if (ctx->expected_nonce) {
        bool found = cJSON_IsString(nonce) && strcmp(nonce->valuestring, ctx->expected_nonce) == 0;
        for (const cJSON *n = cJSON_IsArray(nonce) ? nonce->child : NULL; n && !found; n = n->next)
            found = strcmp(n->valuestring, ctx->expected_nonce) == 0;
        if (!found)
            return JWS_E_NONCE;
    }

    if (ctx->typ == JWS_TYP_PRESENT) {
        /* Keyed on (iss, jti): a malleated (r, n-s) copy has the same jti (S02). */
        const char *jti = get_s(c, "jti");
        if (jws_replay_seen(ctx->replay, iss, jti, now))
            return JWS_E_REPLAY;
        int rc = jws_replay_insert(ctx->replay, iss, jti, exp + lw, now);
        if (rc == GW_ECONFLICT)
            return JWS_E_REPLAY;
        if (rc < 0)
            return JWS_E_BUSY;
    }
    return JWS_OK;
}

enum jws_error jws_verify(const char *token, size_t len, const struct jws_verify_ctx *ctx,
                          cJSON **claims)
{
    if (claims)
        *claims = NULL;
    if (!token || !ctx || !ctx->keys || !ctx->expected_iss || !ctx->expected_aud ||
        !ctx->expected_profile || ctx->leeway < 0 || ctx->leeway > 3600 ||
        (ctx->typ == JWS_TYP_PRESENT && !ctx->introspect &&
         (!ctx->replay || !ctx->expected_nonce)))
        return JWS_E_ARG;

    /* 1. Size and shape. */
    if (len > JWS_MAX_TOKEN)
        return JWS_E_SIZE;
    size_t dots[2], nd = 0;
    for (size_t i = 0; i < len; i++) {
        if (token[i] != '.')
            continue;
        if (nd == 2)
            return JWS_E_FORMAT;
        dots[nd++] = i;
    }
    if (nd != 2 || dots[0] == 0 || dots[1] == dots[0] + 1 || dots[1] + 1 == len)
        return JWS_E_FORMAT;
    /* Every segment is checked as base64url before anything is parsed. */
    struct jws_parts *pt = gw_xmalloc(sizeof(*pt));
    size_t l1 = dots[1] - dots[0] - 1, l2 = len - dots[1] - 1;
    cJSON *c = NULL;
    enum jws_error err;
    if (jws_b64url_decode(token, dots[0], pt->hdr, &pt->hlen) < 0 ||
        jws_b64url_decode(token + dots[0] + 1, l1, pt->pay, &pt->plen) < 0 ||
        jws_b64url_decode(token + dots[1] + 1, l2, pt->sig, &pt->slen) < 0) {
        err = JWS_E_B64;
        goto out;
    }

    /* 2-4. Header, key, signature. */
    err = check_header_sig(pt, (const uint8_t *)token, dots[1], ctx);
    if (err)
        goto out;

    /* 5. Payload. */
    bool has_float = false;
    c = json_strict_parse(pt->pay, pt->plen, &has_float);
    if (!c || !cJSON_IsObject(c)) {
        err = JWS_E_JSON;
        goto out;
    }
    err = check_claims(c, has_float, ctx->typ);
    if (!err)
        err = check_semantics(c, ctx);
out:
    free(pt);
    if (err || !claims)
        cJSON_Delete(c);
    else
        *claims = c;
    return err;
}
