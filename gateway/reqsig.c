/*
 * reqsig.c - signed node-to-node requests.  See reqsig.h for the wire form.
 */
#include "reqsig.h"

#include <cjson/cJSON.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cfg.h"
#include "httpc.h"
#include "json.h"
#include "jws.h"
#include "log.h"
#include "peer.h"
#include "server.h"

/* ---- canonical form ---------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The query's pairs sorted bytewise, joined with '&'; empty pieces dropped. */
static char *sorted_query(const char *q)
{
    if (!q || !*q)
        return gw_xstrdup("");
    char *copy = gw_xstrdup(q);
    size_t n = 1;
    for (const char *p = q; *p; p++)
        n += *p == '&';
    char **v = gw_xcalloc(n, sizeof(char *));
    size_t k = 0;
    for (char *save = NULL, *t = strtok_r(copy, "&", &save); t; t = strtok_r(NULL, "&", &save))
        v[k++] = t;
    qsort(v, k, sizeof(char *), cmp_str);
    char *out = gw_xmalloc(strlen(q) + 1);
    size_t len = 0;
    for (size_t i = 0; i < k; i++) {
        size_t l = strlen(v[i]);
        if (i)
            out[len++] = '&';
        memcpy(out + len, v[i], l);
        len += l;
    }
    out[len] = '\0';
    free(v);
    free(copy);
    return out;
}

char *reqsig_canonical_line(const char *method, const char *target, const char *source,
                            const char *dest, const char *timestamp, const char *nonce,
                            const char *bodyline)
{
    const char *qm = strchr(target, '?');
    size_t plen = qm ? (size_t)(qm - target) : strlen(target);
    char *q = sorted_query(qm ? qm + 1 : NULL);
    char *out = gw_xasprintf("BFIA-SIGN-V1\n%s\n%.*s\n%s\n%s\n%s\n%s\n%s\n%s", method, (int)plen,
                             target, q, source, dest, timestamp, nonce, bodyline);
    free(q);
    return out;
}

char *reqsig_canonical(const char *method, const char *target, const char *source,
                       const char *dest, const char *timestamp, const char *nonce,
                       const void *body, size_t len)
{
    unsigned char dg[32];
    unsigned int dl = 0;
    EVP_Digest(len ? body : "", len, dg, &dl, EVP_sha256(), NULL);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", dg[i]);
    return reqsig_canonical_line(method, target, source, dest, timestamp, nonce, hex);
}

/* ---- large bodies: GMAC under a per-request key -------------------------------- */
int reqsig_bmac_key(const struct jws_key *node_key, EVP_PKEY **out,
                    char pub[REQSIG_BMAC_KEY_B64 + 1])
{
    uint8_t d[32], p[32];
    size_t pl = sizeof(p);
    EVP_PKEY *x = NULL;
    *out = NULL;
    if (jws_key_derive_secret(node_key, REQSIG_BMAC_SCHEME " key", d) == 0)
        x = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, d, sizeof(d));
    OPENSSL_cleanse(d, sizeof(d));
    if (!x || EVP_PKEY_get_raw_public_key(x, p, &pl) != 1 || pl != 32) {
        EVP_PKEY_free(x);
        return -1;
    }
    jws_b64url_encode(p, 32, pub);
    *out = x;
    return 0;
}

/* The 32 bytes of the body key named by the first 43 chars of s (base64url). */
static bool key_decode(const char *s, uint8_t raw[JWS_B64URL_DEC_MAX(REQSIG_BMAC_KEY_B64)])
{
    size_t n = 0;
    return strnlen(s, REQSIG_BMAC_KEY_B64) == REQSIG_BMAC_KEY_B64 &&
           jws_b64url_decode(s, REQSIG_BMAC_KEY_B64, raw, &n) == 0 && n == 32;
}

int reqsig_bmac_shared(EVP_PKEY *own, const char *peer, uint8_t k[32])
{
    uint8_t raw[JWS_B64URL_DEC_MAX(REQSIG_BMAC_KEY_B64)];
    if (strlen(peer) != REQSIG_BMAC_KEY_B64 || !key_decode(peer, raw))
        return -1;
    EVP_PKEY *pp = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, raw, 32);
    EVP_PKEY_CTX *c = pp ? EVP_PKEY_CTX_new(own, NULL) : NULL;
    size_t kl = 32;
    /* OpenSSL refuses an all-zero result (a low-order peer point) */
    bool ok = c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, pp) == 1 &&
              EVP_PKEY_derive(c, k, &kl) == 1 && kl == 32;
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(pp);
    return ok ? 0 : -1;
}

int reqsig_bmac_tag(const uint8_t shared[32], const char *method, const char *target,
                    const char *source, const char *dest, const char *timestamp,
                    const char *nonce, const char *from, const char *to, const void *body,
                    size_t len, uint8_t tag[REQSIG_BMAC_TAG])
{
    /* one key per request: the nonce is new for every request (and the
     * receiver refuses a repeated one), so a fixed IV is never reused; the
     * rest of the request's identity is in the key too, should a nonce ever
     * repeat */
    char *info = gw_xasprintf("%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s", REQSIG_BMAC_SCHEME, method, target,
                              source, dest, timestamp, from, to);
    uint8_t k[32];
    static const uint8_t iv[12];
    int rc = jws_hkdf_sha256(shared, 32, nonce, strlen(nonce), info, strlen(info), k, sizeof(k));
    free(info);
    if (rc != 0)
        return -1;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    bool ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, k, iv) == 1;
    OPENSSL_cleanse(k, sizeof(k));
    const unsigned char *p = body;
    for (size_t off = 0; ok && off < len;) {
        int n = len - off > (1u << 30) ? 1 << 30 : (int)(len - off), ol = 0;
        ok = EVP_EncryptUpdate(c, NULL, &ol, p + off, n) == 1; /* AAD only: GMAC */
        off += (size_t)n;
    }
    int ol = 0;
    uint8_t none[16];
    ok = ok && EVP_EncryptFinal_ex(c, none, &ol) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, REQSIG_BMAC_TAG, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

/* One "<43 chars of base64url>" + sep at *v into out; advances *v. */
static bool take_key(const char **v, const char *sep, char out[REQSIG_BMAC_KEY_B64 + 1])
{
    size_t kl = REQSIG_BMAC_KEY_B64, sl = strlen(sep);
    uint8_t raw[JWS_B64URL_DEC_MAX(REQSIG_BMAC_KEY_B64)];
    if (!key_decode(*v, raw) || strncmp(*v + kl, sep, sl) != 0)
        return false;
    memcpy(out, *v, kl);
    out[kl] = '\0';
    *v += kl + sl;
    return true;
}

int reqsig_bmac_parse(const char *value, char from[REQSIG_BMAC_KEY_B64 + 1],
                      char to[REQSIG_BMAC_KEY_B64 + 1], uint8_t tag[REQSIG_BMAC_TAG],
                      struct gw_errbuf *eb)
{
    /* exactly  GMAC-X25519;from=<43>;to=<43>;tag=<22>  (base64url, no padding) */
    static const char pre[] = REQSIG_BMAC_SCHEME ";from=";
    const char *v = value + (strncmp(value, pre, sizeof(pre) - 1) == 0 ? sizeof(pre) - 1 : 0);
    uint8_t raw[JWS_B64URL_DEC_MAX(REQSIG_BMAC_TAG_B64)];
    size_t n = 0;
    if (v != value && take_key(&v, ";to=", from) && take_key(&v, ";tag=", to) &&
        strlen(v) == REQSIG_BMAC_TAG_B64 && jws_b64url_decode(v, strlen(v), raw, &n) == 0 &&
        n == REQSIG_BMAC_TAG) {
        memcpy(tag, raw, REQSIG_BMAC_TAG);
        return 0;
    }
    return gw_errf(eb, GW_EINVAL,
                   "x-bfia-body-mac must be \"" REQSIG_BMAC_SCHEME
                   ";from=<key>;to=<key>;tag=<tag>\" (32-byte keys, 16-byte tag, base64url)");
}

void reqsig_bmac_line(const char *from, const char *to, const uint8_t tag[REQSIG_BMAC_TAG],
                      char out[REQSIG_BMAC_HDR_MAX])
{
    char tb[REQSIG_BMAC_TAG_B64 + 1];
    jws_b64url_encode(tag, REQSIG_BMAC_TAG, tb);
    snprintf(out, REQSIG_BMAC_HDR_MAX, "%s;from=%s;to=%s;tag=%s", REQSIG_BMAC_SCHEME, from, to, tb);
}

int reqsig_sign(const struct jws_key *key, const char *canonical, char out[REQSIG_HDR_MAX])
{
    uint8_t sig[64];
    size_t sl = 0;
    if (jws_sign_raw(key, (const uint8_t *)canonical, strlen(canonical), sig, &sl) != 0)
        return GW_EINTERNAL;
    char b64[JWS_B64URL_ENC_LEN(64) + 1];
    jws_b64url_encode(sig, sl, b64);
    snprintf(out, REQSIG_HDR_MAX, "%s;kid=%s;sig=%s", jws_alg_name(jws_key_alg(key)),
             jws_key_kid(key), b64);
    return 0;
}

static bool kid_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

int reqsig_parse(const char *value, char kid[65], uint8_t sig[64], struct gw_errbuf *eb)
{
    if (strncmp(value, "ES256;kid=", 10) != 0)
        return gw_errf(eb, GW_EINVAL,
                       "x-auth-sign must be \"ES256;kid=<kid>;sig=<base64url>\" (see the README)");
    const char *k = value + 10, *s = strstr(k, ";sig=");
    size_t kl = s ? (size_t)(s - k) : 0;
    if (!s || kl == 0 || kl > JWS_KID_MAX)
        return gw_errf(eb, GW_EINVAL, "x-auth-sign: kid missing or longer than 64 chars");
    for (size_t i = 0; i < kl; i++)
        if (!kid_char(k[i]))
            return gw_errf(eb, GW_EINVAL, "x-auth-sign: kid has a character outside [A-Za-z0-9_-]");
    memcpy(kid, k, kl);
    kid[kl] = '\0';
    s += 5;
    uint8_t buf[JWS_B64URL_DEC_MAX(100)];
    size_t sl = strlen(s), out = 0;
    if (sl > 100 || jws_b64url_decode(s, sl, buf, &out) != 0 || out != 64)
        return gw_errf(eb, GW_EINVAL, "x-auth-sign: sig is not 64 bytes of base64url");
    memcpy(sig, buf, 64);
    return 0;
}

void reqsig_nonce(char out[23])
{
    uint8_t r[16];
    if (RAND_bytes(r, sizeof(r)) != 1) {
        /* Not reachable with a seeded OpenSSL; still never reuse a constant. */
        long long t = gw_now_mono_us() ^ gw_now_wall_ms();
        memcpy(r, &t, sizeof(t));
        memcpy(r + 8, &out, sizeof(void *) < 8 ? sizeof(void *) : 8);
    }
    jws_b64url_encode(r, sizeof(r), out);
}

int reqsig_pin_check(const char *text, struct gw_errbuf *eb)
{
    cJSON *j = json_parse(text, strlen(text), eb);
    if (!j)
        return GW_EINVAL;
    struct jws_key *k = NULL;
    int rc = 0;
    if (!cJSON_IsObject(j))
        rc = gw_errf(eb, GW_EINVAL, "key: expected a JWK object (JSON text)");
    else if (cJSON_GetObjectItemCaseSensitive(j, "d"))
        rc = gw_errf(eb, GW_EINVAL, "key: a private key was given; pin the public JWK only");
    else if (jws_key_from_jwk(j, &k, eb) != 0)
        rc = GW_EINVAL;
    jws_key_free(k);
    cJSON_Delete(j);
    return rc;
}

/* ---- outgoing ---------------------------------------------------------------- */

static const struct jws_key *own_signing_key(const struct reqsig *rs);
/* one of this node's body MAC keys (reqsig.h) */
struct bmac_own {
    char kid[JWS_KID_MAX + 1];
    EVP_PKEY *x;
    char pub[REQSIG_BMAC_KEY_B64 + 1];
    long long retired_ms; /* when a newer key replaced it (monotonic), 0 = current */
};
static const struct bmac_own *bmac_current(struct reqsig *rs);
static int bmac_shared_key(struct reqsig *rs, const char *own, const char *peer, uint8_t k[32]);
static const char *bmac_peer_key(const struct reqsig *rs, const char *node);

void reqsig_outgoing(struct gw_app *app, const char *method, const char *target, const char *dest,
                     const void *body, size_t len, bool sign, bool ts_unit_s, bool body_mac,
                     struct reqsig_out *out)
{
    long long now = gw_now_wall_ms();
    char ts[24], nonce[23];
    snprintf(ts, sizeof(ts), "%lld", ts_unit_s ? now / 1000 : now);
    reqsig_nonce(nonce);
    snprintf(out->ts, sizeof(out->ts), "x-timestamp: %s", ts);
    snprintf(out->nonce, sizeof(out->nonce), "x-nonce: %s", nonce);
    out->sign[0] = '\0';
    out->bmac[0] = '\0';
    struct reqsig *rs = app->reqsig;
    const struct jws_key *key = own_signing_key(rs);
    if (!sign || ts_unit_s || !key)
        return;
    char *c = NULL;
    const struct bmac_own *bo = body_mac && len >= REQSIG_BMAC_MIN ? bmac_current(rs) : NULL;
    const char *peer = bo ? bmac_peer_key(rs, dest) : NULL;
    uint8_t k[32], tag[REQSIG_BMAC_TAG];
    if (peer && bmac_shared_key(rs, bo->pub, peer, k) == 0 &&
        reqsig_bmac_tag(k, method, target, app->cfg->node_id, dest, ts, nonce, bo->pub, peer, body,
                        len, tag) == 0) {
        char line[REQSIG_BMAC_HDR_MAX];
        reqsig_bmac_line(bo->pub, peer, tag, line);
        snprintf(out->bmac, sizeof(out->bmac), "x-bfia-body-mac: %s", line);
        c = reqsig_canonical_line(method, target, app->cfg->node_id, dest, ts, nonce, line);
    }
    OPENSSL_cleanse(k, sizeof(k));
    if (!c)
        c = reqsig_canonical(method, target, app->cfg->node_id, dest, ts, nonce, body, len);
    char v[REQSIG_HDR_MAX];
    if (reqsig_sign(key, c, v) == 0)
        snprintf(out->sign, sizeof(out->sign), "x-auth-sign: %s", v);
    else
        out->bmac[0] = '\0'; /* no signature: no body MAC either */
    free(c);
}

bool reqsig_bmac_ready(struct reqsig *rs, const char *node, size_t len)
{
    return rs && len >= REQSIG_BMAC_MIN && bmac_current(rs) && bmac_peer_key(rs, node);
}

/* ---- the verifier -------------------------------------------------------------- */

struct waiter {
    struct gw_req *req;
    reqsig_done done;      /* a request check, or */
    reqsig_keys_cb kcb;    /* a key lookup for node/kid */
    char *node, *kid;
    struct waiter *next;
};

static void waiter_free(struct waiter *w)
{
    free(w->node);
    free(w->kid);
    free(w);
}

/* What this node knows of one peer's keys. */
struct peer_keys {
    char *node;
    struct jws_keyset *jwks;  /* last good JWKS fetched, or NULL */
    long long fetched_ms;     /* when jwks was fetched (monotonic), 0 = never */
    long long attempt_ms;     /* last fetch attempt, for the refetch limit */
    char *fetch_err;          /* why the last fetch failed, or NULL */
    bool fetching;
    struct waiter *waiters;
    char *pin_text;           /* the route's key pin pin_ks was parsed from */
    struct jws_keyset *pin_ks; /* that pinned key alone, or NULL if unusable */
    struct peer_keys *next;
};

/* Body MAC keys (reqsig.h): ours, derived from the node key (the current
 * one first, then those it replaced in this process's life, which peers may
 * still name for a while); the shared secrets computed lately; and the key
 * each peer last said it takes. */
#define BMAC_OWN_MAX 4
#define BMAC_SHARED_MAX 32
/* A replaced body key is taken this long: requests signed before the caller
 * saw the new one (it learns it from the next answer) */
#define BMAC_GRACE_MS 60000
struct bmac_shared {
    char own[REQSIG_BMAC_KEY_B64 + 1], peer[REQSIG_BMAC_KEY_B64 + 1];
    uint8_t k[32];
    unsigned long long used;
};
struct bmac_peer {
    char *node;
    char pub[REQSIG_BMAC_KEY_B64 + 1];
    struct bmac_peer *next;
};

struct reqsig {
    struct gw_app *app;
    struct reqsig_keysrc own;
    struct peer_keys *peers;
    struct jws_replay *replay;
    struct bmac_own bown[BMAC_OWN_MAX];
    struct bmac_shared bshared[BMAC_SHARED_MAX];
    unsigned long long bclock;
    struct bmac_peer *bpeers;
    char badvert[sizeof(REQSIG_BMAC_SCHEME) + 5 + REQSIG_BMAC_KEY_B64 + 8];
    char bfail_kid[JWS_KID_MAX + 1]; /* a node key no body key derives from (not asked again) */
    unsigned long long bmac_ok, bmac_sha, bmac_refused; /* signed bodies >= REQSIG_BMAC_MIN */
};

/* Our current body MAC key (derived once per node key), or NULL. */
static const struct bmac_own *bmac_current(struct reqsig *rs)
{
    const struct jws_key *key = own_signing_key(rs);
    if (!key)
        return NULL;
    const char *kid = jws_key_kid(key);
    if (rs->bown[0].x && strcmp(rs->bown[0].kid, kid) == 0)
        return &rs->bown[0];
    if (strcmp(rs->bfail_kid, kid) == 0)
        return NULL;
    EVP_PKEY *x = NULL;
    char pub[REQSIG_BMAC_KEY_B64 + 1];
    if (reqsig_bmac_key(key, &x, pub) != 0) {
        snprintf(rs->bfail_kid, sizeof(rs->bfail_kid), "%s", kid);
        return NULL;
    }
    EVP_PKEY_free(rs->bown[BMAC_OWN_MAX - 1].x);
    memmove(&rs->bown[1], &rs->bown[0], sizeof(rs->bown[0]) * (BMAC_OWN_MAX - 1));
    if (rs->bown[1].x)
        rs->bown[1].retired_ms = gw_now_mono_ms();
    struct bmac_own *o = &rs->bown[0];
    o->retired_ms = 0;
    snprintf(o->kid, sizeof(o->kid), "%s", kid);
    o->x = x;
    memcpy(o->pub, pub, sizeof(o->pub));
    snprintf(rs->badvert, sizeof(rs->badvert), "%s;key=%s", REQSIG_BMAC_SCHEME, o->pub);
    return o;
}

void reqsig_bmac_counts(const struct reqsig *rs, unsigned long long *mac, unsigned long long *sha,
                        unsigned long long *refused)
{
    *mac = rs ? rs->bmac_ok : 0;
    *sha = rs ? rs->bmac_sha : 0;
    *refused = rs ? rs->bmac_refused : 0;
}

const char *reqsig_bmac_advert(struct reqsig *rs)
{
    return bmac_current(rs) ? rs->badvert : NULL;
}

/* X25519(own, peer) for two base64url public keys, from the cache or
 * computed; 0 or -1 (unknown own key, bad peer key, a low-order point). */
static int bmac_shared_key(struct reqsig *rs, const char *own, const char *peer, uint8_t k[32])
{
    /* our key first: current, or replaced within the grace time */
    const struct bmac_own *o = NULL;
    long long now = gw_now_mono_ms();
    for (size_t i = 0; i < BMAC_OWN_MAX && !o; i++)
        if (rs->bown[i].x && strcmp(rs->bown[i].pub, own) == 0 &&
            (!rs->bown[i].retired_ms || now - rs->bown[i].retired_ms <= BMAC_GRACE_MS))
            o = &rs->bown[i];
    if (!o)
        return -1;
    struct bmac_shared *old = &rs->bshared[0];
    for (size_t i = 0; i < BMAC_SHARED_MAX; i++) {
        struct bmac_shared *e = &rs->bshared[i];
        if (e->used && strcmp(e->own, own) == 0 && strcmp(e->peer, peer) == 0) {
            e->used = ++rs->bclock;
            memcpy(k, e->k, 32);
            return 0;
        }
        if (e->used < old->used)
            old = e;
    }
    if (reqsig_bmac_shared(o->x, peer, k) != 0)
        return -1;
    snprintf(old->own, sizeof(old->own), "%s", own);
    snprintf(old->peer, sizeof(old->peer), "%s", peer);
    memcpy(old->k, k, 32);
    old->used = ++rs->bclock;
    return 0;
}

void reqsig_bmac_learn(struct reqsig *rs, const char *node, const char *value)
{
    if (!rs || !node)
        return;
    static const char pre[] = REQSIG_BMAC_SCHEME ";key=";
    char pub[REQSIG_BMAC_KEY_B64 + 1] = "";
    uint8_t raw[JWS_B64URL_DEC_MAX(REQSIG_BMAC_KEY_B64)];
    const char *k = value && strncmp(value, pre, sizeof(pre) - 1) == 0 ? value + sizeof(pre) - 1 : NULL;
    if (k && strlen(k) == REQSIG_BMAC_KEY_B64 && key_decode(k, raw))
        memcpy(pub, k, sizeof(pub));
    struct bmac_peer **pp = &rs->bpeers;
    while (*pp && strcmp((*pp)->node, node) != 0)
        pp = &(*pp)->next;
    if (!*pp) {
        if (!*pub)
            return;
        *pp = gw_xcalloc(1, sizeof(**pp));
        (*pp)->node = gw_xstrdup(node);
    }
    /* no header (or a malformed one): the peer does not take body MACs (an
     * older gateway of ours, or one rolled back), SHA-256 from now on */
    memcpy((*pp)->pub, pub, sizeof(pub));
}

static const char *bmac_peer_key(const struct reqsig *rs, const char *node)
{
    for (const struct bmac_peer *p = rs->bpeers; p; p = p->next)
        if (strcmp(p->node, node) == 0)
            return *p->pub ? p->pub : NULL;
    return NULL;
}

struct reqsig *reqsig_new(struct gw_app *app, const struct reqsig_keysrc *own)
{
    struct reqsig *rs = gw_xcalloc(1, sizeof(*rs));
    rs->app = app;
    rs->own = *own;
    rs->replay = jws_replay_new(1u << 20);
    return rs;
}

static const struct jws_key *own_signing_key(const struct reqsig *rs)
{
    return rs && rs->own.signing ? rs->own.signing(rs->own.ctx) : NULL;
}

static void peer_keys_free(struct peer_keys *pk)
{
    /* Parked requests are answered before a cache entry may go. */
    for (struct waiter *w = pk->waiters, *n; w; w = n) {
        n = w->next;
        if (w->kcb)
            w->kcb(w->req, NULL, "node keys were reloaded; retry");
        else
            w->done(w->req, GW_EAUTH, "node keys were reloaded; retry");
        waiter_free(w);
    }
    jws_keyset_free(pk->jwks);
    jws_keyset_free(pk->pin_ks);
    free(pk->pin_text);
    free(pk->fetch_err);
    free(pk->node);
    free(pk);
}

void reqsig_forget(struct reqsig *rs)
{
    struct peer_keys **pp = &rs->peers;
    while (*pp) {
        struct peer_keys *pk = *pp;
        if (pk->fetching) { /* its fetch callback still holds it */
            pk->fetched_ms = 0;
            pp = &pk->next;
            continue;
        }
        *pp = pk->next;
        peer_keys_free(pk);
    }
}

void reqsig_free(struct reqsig *rs)
{
    if (!rs)
        return;
    for (struct peer_keys *pk = rs->peers, *n; pk; pk = n) {
        n = pk->next;
        for (struct waiter *w = pk->waiters, *wn; w; w = wn) {
            wn = w->next;
            waiter_free(w);
        }
        pk->waiters = NULL;
        peer_keys_free(pk);
    }
    jws_replay_free(rs->replay);
    for (size_t i = 0; i < BMAC_OWN_MAX; i++)
        EVP_PKEY_free(rs->bown[i].x);
    OPENSSL_cleanse(rs->bshared, sizeof(rs->bshared));
    for (struct bmac_peer *p = rs->bpeers, *n; p; p = n) {
        n = p->next;
        free(p->node);
        free(p);
    }
    free(rs);
}

static struct peer_keys *keys_of(struct reqsig *rs, const char *node)
{
    for (struct peer_keys *pk = rs->peers; pk; pk = pk->next)
        if (strcmp(pk->node, node) == 0)
            return pk;
    struct peer_keys *pk = gw_xcalloc(1, sizeof(*pk));
    pk->node = gw_xstrdup(node);
    pk->next = rs->peers;
    rs->peers = pk;
    return pk;
}

static const char *header(struct gw_req *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

static bool nonce_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < REQSIG_NONCE_MIN || n > REQSIG_NONCE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!kid_char(s[i]))
            return false;
    return true;
}

static void check(struct reqsig *rs, struct gw_req *req, reqsig_done done, bool may_fetch);
static void node_keys(struct reqsig *rs, struct gw_req *req, const char *node, const char *kid,
                      reqsig_keys_cb cb, bool may_fetch);

static void on_jwks(void *arg, const struct httpc_resp *hr)
{
    struct peer_keys *pk = arg;
    pk->fetching = false;
    free(pk->fetch_err);
    pk->fetch_err = NULL;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (hr->err || hr->status != 200) {
        pk->fetch_err = hr->err ? gw_xasprintf("unreachable: %s", hr->errmsg)
                                : gw_xasprintf("HTTP %ld", hr->status);
    } else {
        cJSON *j = json_parse(hr->body, hr->body_len, &eb);
        struct jws_keyset *ks = NULL;
        if (!j || jws_keyset_from_jwks(j, &ks, &eb) != 0) {
            pk->fetch_err = gw_xasprintf("JWKS refused: %s", eb.msg);
        } else {
            jws_keyset_free(pk->jwks);
            pk->jwks = ks;
            pk->fetched_ms = gw_now_mono_ms();
        }
        cJSON_Delete(j);
    }
    if (pk->fetch_err)
        log_kv(LOG_LEVEL_WARN, NULL, "auth.jwks", "cannot fetch a peer's JWKS", "node", pk->node,
               "err", pk->fetch_err, NULL);
    struct waiter *w = pk->waiters;
    pk->waiters = NULL;
    while (w) {
        struct waiter *n = w->next;
        if (w->kcb)
            node_keys(w->req->app->reqsig, w->req, w->node, w->kid, w->kcb, false);
        else
            check(w->req->app->reqsig, w->req, w->done, false);
        waiter_free(w);
        w = n;
    }
}

/* Park req until node's JWKS arrives. */
static void fetch_and_wait(struct reqsig *rs, struct peer_keys *pk, struct waiter *w)
{
    w->next = pk->waiters;
    pk->waiters = w;
    if (pk->fetching)
        return;
    pk->attempt_ms = gw_now_mono_ms();
    int rc = peer_fetch(rs->app, pk->node, "/v1/interconn/attest/jwks", on_jwks, pk);
    if (rc != 0) {
        struct httpc_resp hr = {.err = rc, .errmsg = "no route"};
        on_jwks(pk, &hr);
        return;
    }
    pk->fetching = true;
}

/*
 * The keys node's signatures and tokens verify with: this node's own, the
 * route's pinned key, or node's JWKS (fetched when stale, or when kid is not
 * in it and the refetch limit allows).  FOUND sets *ks (borrowed) and *pinned;
 * NONE writes why; PARKED took w, which runs again when the JWKS arrives.
 */
enum lookup { LK_FOUND, LK_NONE, LK_PARKED };

static enum lookup lookup_keys(struct reqsig *rs, const char *node, const char *kid, bool may_fetch,
                               struct waiter *w, const struct jws_keyset **ks, bool *pinned,
                               char *why, size_t whylen)
{
    struct gw_app *app = rs->app;
    *ks = NULL;
    *pinned = false;
    if (strcmp(node, app->cfg->node_id) == 0) {
        *ks = rs->own.keyset ? rs->own.keyset(rs->own.ctx) : NULL;
        return *ks ? LK_FOUND : LK_NONE;
    }
    const struct peer_route *rt = peers_find(app->peers, node);
    if (!rt) {
        snprintf(why, whylen, "unknown node %.128s: not in this node's route table", node);
        return LK_NONE;
    }
    struct peer_keys *pk = keys_of(rs, node);
    if (rt->key_pin && *rt->key_pin) {
        if (!pk->pin_text || strcmp(pk->pin_text, rt->key_pin) != 0) {
            jws_keyset_free(pk->pin_ks);
            pk->pin_ks = NULL;
            free(pk->pin_text);
            pk->pin_text = gw_xstrdup(rt->key_pin);
            struct gw_errbuf eb;
            gw_errbuf_clear(&eb);
            struct jws_key *k = NULL;
            cJSON *j = json_parse(rt->key_pin, strlen(rt->key_pin), &eb);
            if (j && jws_key_from_jwk(j, &k, &eb) == 0) {
                pk->pin_ks = jws_keyset_new();
                if (jws_keyset_add_take(pk->pin_ks, k) != 0) {
                    jws_keyset_free(pk->pin_ks);
                    pk->pin_ks = NULL;
                }
            }
            cJSON_Delete(j);
        }
        if (!pk->pin_ks) {
            snprintf(why, whylen,
                     "the key pinned for node %.128s in the route table is not a usable JWK", node);
            return LK_NONE;
        }
        *ks = pk->pin_ks;
        *pinned = true;
        return LK_FOUND;
    }
    long long mono = gw_now_mono_ms();
    bool stale = !pk->jwks || mono - pk->fetched_ms >= app->cfg->auth_jwks_max_age_s * 1000LL;
    bool known = pk->jwks && (!kid || jws_keyset_find(pk->jwks, kid));
    bool may_refetch = pk->attempt_ms == 0 ||
                       mono - pk->attempt_ms >= app->cfg->auth_jwks_refetch_s * 1000LL;
    if (may_fetch && (stale || (!known && may_refetch))) {
        fetch_and_wait(rs, pk, w);
        return LK_PARKED;
    }
    if (!pk->jwks) {
        snprintf(why, whylen, "node %.128s's JWKS could not be fetched (%.200s)", node,
                 pk->fetch_err ? pk->fetch_err : "no answer");
        return LK_NONE;
    }
    *ks = pk->jwks;
    return LK_FOUND;
}

static void refuse(struct gw_req *req, reqsig_done done, const char *fmt, ...)
    GW_PRINTF(3, 4);

static void refuse(struct gw_req *req, reqsig_done done, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_kv(LOG_LEVEL_WARN, &req->log, "auth.refused", msg, "path", req->path, NULL);
    done(req, GW_EAUTH, msg);
}

static void check(struct reqsig *rs, struct gw_req *req, reqsig_done done, bool may_fetch)
{
    struct gw_app *app = rs->app;
    const char *me = app->cfg->node_id;
    const char *caller = req->caller;
    const char *src = server_req_peer(req);
    if (!caller || !*caller) {
        /* Unidentified: a node whose route accepts unsigned requests may
         * be recognised by its address (a FATE-Flow peer behind a proxy
         * that drops x-* headers, spec bfia-control-layer.md §1.2); anyone
         * else is nobody. */
        const struct peer_route *by_addr = peers_unsigned_at(app->peers, src);
        if (!by_addr) {
            refuse(req, done, "request names no caller node (x-node-id, x_node_id or "
                              "x-source-node-id) and comes from %.64s, the address of no route "
                              "that accepts unsigned requests",
                   src ? src : "an unknown address");
            return;
        }
        free(req->caller);
        req->caller = gw_xstrdup(by_addr->node_id);
        caller = req->caller;
    }
    bool self = strcmp(caller, me) == 0;
    const struct peer_route *rt = peers_find(app->peers, caller);
    if (!rt && !self) {
        refuse(req, done, "unknown node %.128s: not in this node's route table", caller);
        return;
    }
    const char *policy = rt ? rt->auth : "required";
    const char *sign = header(req, "x-auth-sign");
    if (strcmp(policy, "off") == 0 || (strcmp(policy, "optional") == 0 && !sign)) {
        /* what an unsigned request can prove: its address, when the
         * operator asks for it (auth.source_check) and the route names an
         * address rather than a host name */
        if (app->cfg->auth_source_check && !peer_route_at(rt, src, true)) {
            refuse(req, done, "unsigned request from node %.128s comes from %.64s, not from its "
                              "route's host %.128s (auth.source_check)",
                   caller, src ? src : "an unknown address", rt->host);
            return;
        }
        done(req, 0, NULL);
        return;
    }
    const char *ts = header(req, "x-timestamp"), *nonce = header(req, "x-nonce"),
               *target = header(req, "x-target-node-id");
    if (!sign) {
        refuse(req, done, "unsigned request from node %s: x-auth-sign is required", caller);
        return;
    }
    if (!ts || !nonce || !target) {
        refuse(req, done, "signed request from node %s lacks %s", caller,
               !ts ? "x-timestamp" : !nonce ? "x-nonce" : "x-target-node-id");
        return;
    }
    if (strcmp(target, me) != 0) {
        refuse(req, done, "request was signed for node %.128s, not for this node %s", target, me);
        return;
    }
    char *end = NULL;
    long long t = strtoll(ts, &end, 10);
    long long now = gw_now_wall_ms(), win = (long long)app->cfg->auth_window_s * 1000;
    if (!*ts || *end || t <= 0) {
        refuse(req, done, "x-timestamp must be Unix milliseconds");
        return;
    }
    if (t < now - win || t > now + win) {
        refuse(req, done, "stale timestamp: x-timestamp is %lld s from this node's clock (window "
                          "+-%d s)", (t - now) / 1000, app->cfg->auth_window_s);
        return;
    }
    if (!nonce_ok(nonce)) {
        refuse(req, done, "x-nonce must be 8-64 chars of [A-Za-z0-9_-]");
        return;
    }
    char kid[65];
    uint8_t sig[64];
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (reqsig_parse(sign, kid, sig, &eb) != 0) {
        refuse(req, done, "%s", eb.msg);
        return;
    }

    /* The key: ours, the route's pin, or the caller's JWKS. */
    struct waiter *w = gw_xcalloc(1, sizeof(*w));
    w->req = req;
    w->done = done;
    const struct jws_keyset *ks;
    bool pinned;
    char why[400];
    enum lookup lk = lookup_keys(rs, caller, kid, may_fetch, w, &ks, &pinned, why, sizeof(why));
    if (lk == LK_PARKED)
        return;
    waiter_free(w);
    if (lk == LK_NONE) {
        refuse(req, done, "cannot check the signature: %s", why);
        return;
    }
    const struct jws_key *key = jws_keyset_find(ks, kid);
    if (!key) {
        if (pinned)
            refuse(req, done, "unknown key: node %s signed with kid %s, the route table pins %s",
                   caller, kid, jws_key_kid(jws_keyset_get(ks, 0)));
        else
            refuse(req, done, "unknown key: kid %s is not in node %s's keys", kid, caller);
        return;
    }
    const char *raw = evhttp_request_get_uri(req->ev);
    const char *bmac = header(req, "x-bfia-body-mac");
    char *c;
    char from[REQSIG_BMAC_KEY_B64 + 1], to[REQSIG_BMAC_KEY_B64 + 1];
    uint8_t tag[REQSIG_BMAC_TAG];
    if (bmac) {
        /* the body under a MAC keyed by this node's key and the caller's
         * (reqsig.h): the signature covers the header's value (checked
         * first, so unsigned junk costs no body pass), then the tag */
        gw_errbuf_clear(&eb);
        if (reqsig_bmac_parse(bmac, from, to, tag, &eb) != 0) {
            refuse(req, done, "%s", eb.msg);
            return;
        }
        c = reqsig_canonical_line(req->method_name, raw ? raw : req->path, caller, target, ts,
                                  nonce, bmac);
    } else {
        c = reqsig_canonical(req->method_name, raw ? raw : req->path, caller, target, ts, nonce,
                             req->body, req->body_len);
    }
    bool ok = jws_verify_raw(key, (const uint8_t *)c, strlen(c), sig, 64);
    free(c);
    if (!ok) {
        refuse(req, done, "bad signature: x-auth-sign does not verify with node %s's key %s",
               caller, kid);
        return;
    }
    if (bmac) {
        uint8_t k[32], mine[REQSIG_BMAC_TAG];
        bmac_current(rs);
        if (bmac_shared_key(rs, to, from, k) != 0) {
            rs->bmac_refused++;
            /* the refusal names the current key: the caller's next request
             * is keyed right (nothing secret in it) */
            req->bmac_advert = true;
            refuse(req, done, "x-bfia-body-mac is keyed for %s, which is not this node's body key "
                              "(%s; the node key changed?): send again, the answer names the "
                              "current one", to, rs->bown[0].x ? rs->bown[0].pub : "none");
            return;
        }
        int trc = reqsig_bmac_tag(k, req->method_name, raw ? raw : req->path, caller, target, ts,
                                  nonce, from, to, req->body, req->body_len, mine);
        OPENSSL_cleanse(k, sizeof(k));
        if (trc != 0 || CRYPTO_memcmp(tag, mine, sizeof(tag)) != 0) {
            rs->bmac_refused++;
            refuse(req, done, "body does not match x-bfia-body-mac (altered on the way?)");
            return;
        }
    }
    int rc = jws_replay_insert(rs->replay, caller, nonce, (t + win) / 1000 + 1, now / 1000);
    if (rc == GW_ECONFLICT) {
        refuse(req, done, "replayed nonce: node %s already used x-nonce %s", caller, nonce);
        return;
    }
    if (rc != 0) {
        refuse(req, done, "replay cache is full; retry later");
        return;
    }
    if (bmac)
        rs->bmac_ok++;
    else if (req->body_len >= REQSIG_BMAC_MIN)
        rs->bmac_sha++;
    /* a signed caller learns which body key this node takes (reqsig.h) */
    req->bmac_advert = true;
    done(req, 0, NULL);
}

void reqsig_check(struct reqsig *rs, struct gw_req *req, reqsig_done done)
{
    check(rs, req, done, true);
}

/* ---- keys of a node, for token verification ------------------------------------ */

static void node_keys(struct reqsig *rs, struct gw_req *req, const char *node, const char *kid,
                      reqsig_keys_cb cb, bool may_fetch)
{
    struct waiter *w = gw_xcalloc(1, sizeof(*w));
    w->req = req;
    w->kcb = cb;
    w->node = gw_xstrdup(node);
    w->kid = kid ? gw_xstrdup(kid) : NULL;
    const struct jws_keyset *ks;
    bool pinned;
    char why[400];
    enum lookup lk = lookup_keys(rs, node, kid, may_fetch, w, &ks, &pinned, why, sizeof(why));
    if (lk == LK_PARKED)
        return;
    waiter_free(w);
    cb(req, ks, lk == LK_FOUND ? NULL : why);
}

void reqsig_node_keys(struct reqsig *rs, struct gw_req *req, const char *node, const char *kid,
                      reqsig_keys_cb cb)
{
    node_keys(rs, req, node, kid, cb, true);
}
