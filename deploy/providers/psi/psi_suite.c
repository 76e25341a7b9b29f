/*
 * psi_suite.c - ECDH-PSI suites on OpenSSL libcrypto (X25519 through EVP,
 * SM2 through EC_POINT, SHA-256 and SM3 through EVP_MD).
 */
#include "psi_suite.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define H2C_MAX_TRIES 100

struct psi_suite {
    int curve, hash, h2c, fmt;
    size_t point_len;
    unsigned char x25519_key[32];
    BIGNUM *sm2_key; /* in [1, n-1] */
};

struct psi_suite_ws {
    const struct psi_suite *s;
    EVP_MD *md;
    EVP_MD_CTX *mdctx;
    /* X25519: our key in a derive context, and one peer key object whose
     * public value is replaced for every point (no allocation per item) */
    EVP_PKEY *priv;
    EVP_PKEY_CTX *dctx;
    EVP_PKEY *peer;
    /* SM2 */
    EC_GROUP *group;
    BN_CTX *bn;
    BIGNUM *p, *x;
    EC_POINT *pt, *res;
};

/* ---- enum names ------------------------------------------------------------ */

struct enum_name {
    int v;
    const char *name;
};

static const struct enum_name curves[] = {
    {PSI_CURVE_CURVE25519, "curve25519"}, {PSI_CURVE_SM2, "sm2"}, {PSI_CURVE_ED25519, "ed25519"},
    {0, NULL}};
static const struct enum_name hashes[] = {
    {PSI_HASH_SM3, "sm3"},           {PSI_HASH_SHA_224, "sha_224"},   {PSI_HASH_SHA_256, "sha_256"},
    {PSI_HASH_SHA_384, "sha_384"},   {PSI_HASH_SHA_512, "sha_512"},   {PSI_HASH_SHA3_224, "sha3_224"},
    {PSI_HASH_SHA3_256, "sha3_256"}, {PSI_HASH_SHA3_384, "sha3_384"}, {PSI_HASH_SHA3_512, "sha3_512"},
    {PSI_HASH_SHAKE_256, "shake_256"}, {0, NULL}};
static const struct enum_name h2cs[] = {{PSI_H2C_TRY_AND_INCREMENT, "try_and_increment"},
                                        {PSI_H2C_TRY_AND_REHASH, "try_and_rehash"},
                                        {PSI_H2C_DIRECT_HASH_AS_POINT_X, "direct_hash_as_point_x"},
                                        {PSI_H2C_IRTF_SSWU_RO, "irtf_sswu_ro"},
                                        {PSI_H2C_IRTF_SSWU_NU, "irtf_sswu_nu"},
                                        {PSI_H2C_IRTF_ELL2_RO, "irtf_ell2_ro"},
                                        {PSI_H2C_IRTF_ELL2_NU, "irtf_ell2_nu"},
                                        {0, NULL}};
static const struct enum_name fmts[] = {{PSI_FMT_UNCOMPRESSED, "uncompressed"},
                                        {PSI_FMT_X962_COMPRESSED, "x962_compressed"},
                                        {PSI_FMT_X962_UNCOMPRESSED, "x962_uncompressed"},
                                        {PSI_FMT_X962_HYBRID, "x962_hybrid"},
                                        {0, NULL}};

static const char *name_of(const struct enum_name *t, int v)
{
    for (; t->name; t++)
        if (t->v == v)
            return t->name;
    return "?";
}

/* Case-insensitive, with or without the enum's prefix.  PPCA calls the
 * direct strategy DIRECT_HASH: accepted as an alias. */
static int parse_of(const struct enum_name *t, const char *prefix, const char *s)
{
    if (!s)
        return -1;
    size_t pl = strlen(prefix);
    if (strncasecmp(s, prefix, pl) == 0)
        s += pl;
    for (; t->name; t++)
        if (strcasecmp(s, t->name) == 0)
            return t->v;
    return -1;
}

const char *psi_curve_name(int v) { return name_of(curves, v); }
const char *psi_hash_name(int v) { return name_of(hashes, v); }
const char *psi_h2c_name(int v) { return name_of(h2cs, v); }
const char *psi_fmt_name(int v) { return name_of(fmts, v); }

int psi_curve_parse(const char *s) { return parse_of(curves, "CURVE_TYPE_", s); }
int psi_hash_parse(const char *s) { return parse_of(hashes, "HASH_TYPE_", s); }

int psi_h2c_parse(const char *s)
{
    if (s && (strcasecmp(s, "direct_hash") == 0 ||
              strcasecmp(s, "HASH_TO_CURVE_STRATEGY_DIRECT_HASH") == 0))
        return PSI_H2C_DIRECT_HASH_AS_POINT_X;
    return parse_of(h2cs, "HASH_TO_CURVE_STRATEGY_", s);
}

int psi_fmt_parse(const char *s) { return parse_of(fmts, "POINT_OCTET_FORMAT_", s); }

/* ---- supported suites ---------------------------------------------------------- */

#define SUITES_TEXT                                                                        \
    "supported suites: curve25519/sha_256/direct_hash_as_point_x/uncompressed, "          \
    "sm2/sha_256/try_and_rehash/x962_compressed, sm2/sm3/try_and_increment/x962_compressed"

int psi_suite_check(int curve, int hash, int h2c, int fmt, char *err, size_t errlen)
{
    int want_hash_ok, want_h2c, want_fmt;
    if (curve == PSI_CURVE_CURVE25519) {
        want_hash_ok = hash == PSI_HASH_SHA_256;
        want_h2c = PSI_H2C_DIRECT_HASH_AS_POINT_X;
        want_fmt = PSI_FMT_UNCOMPRESSED;
    } else if (curve == PSI_CURVE_SM2) {
        want_hash_ok = hash == PSI_HASH_SHA_256 || hash == PSI_HASH_SM3;
        want_h2c = hash == PSI_HASH_SM3 ? PSI_H2C_TRY_AND_INCREMENT : PSI_H2C_TRY_AND_REHASH;
        want_fmt = PSI_FMT_X962_COMPRESSED;
    } else {
        snprintf(err, errlen, "curve_type: '%s' is not supported (%s)", psi_curve_name(curve),
                 SUITES_TEXT);
        return -1;
    }
    if (!want_hash_ok) {
        snprintf(err, errlen, "hash_type: '%s' is not supported with curve_type %s (%s)",
                 psi_hash_name(hash), psi_curve_name(curve), SUITES_TEXT);
        return -1;
    }
    if (h2c != want_h2c) {
        snprintf(err, errlen,
                 "hash2curve_strategy: '%s' is not supported with curve_type %s and hash_type %s "
                 "(use %s; %s)",
                 psi_h2c_name(h2c), psi_curve_name(curve), psi_hash_name(hash),
                 psi_h2c_name(want_h2c), SUITES_TEXT);
        return -1;
    }
    if (fmt != want_fmt) {
        snprintf(err, errlen,
                 "point_octet_format: '%s' is not supported with curve_type %s (use %s; %s)",
                 psi_fmt_name(fmt), psi_curve_name(curve), psi_fmt_name(want_fmt), SUITES_TEXT);
        return -1;
    }
    return 0;
}

/* ---- suite ----------------------------------------------------------------- */

struct psi_suite *psi_suite_new(int curve, int hash, int h2c, int fmt, const unsigned char *key,
                                size_t keylen, char *err, size_t errlen)
{
    if (psi_suite_check(curve, hash, h2c, fmt, err, errlen) != 0)
        return NULL;
    struct psi_suite *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->curve = curve;
    s->hash = hash;
    s->h2c = h2c;
    s->fmt = fmt;
    if (curve == PSI_CURVE_CURVE25519) {
        s->point_len = 32;
        if (key) {
            if (keylen != 32) {
                snprintf(err, errlen, "an X25519 key has 32 bytes, got %zu", keylen);
                free(s);
                return NULL;
            }
            memcpy(s->x25519_key, key, 32);
        } else if (RAND_priv_bytes(s->x25519_key, 32) != 1) {
            snprintf(err, errlen, "no random bytes for the key");
            free(s);
            return NULL;
        }
        return s;
    }
    s->point_len = 33;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_sm2);
    s->sm2_key = BN_secure_new();
    if (!g || !s->sm2_key) {
        snprintf(err, errlen, "OpenSSL has no SM2 curve");
        EC_GROUP_free(g);
        psi_suite_free(s);
        return NULL;
    }
    const BIGNUM *n = EC_GROUP_get0_order(g);
    int ok;
    if (key) {
        BN_CTX *bn = BN_CTX_new();
        ok = bn && BN_bin2bn(key, (int)keylen, s->sm2_key) && BN_nnmod(s->sm2_key, s->sm2_key, n, bn) &&
             !BN_is_zero(s->sm2_key);
        BN_CTX_free(bn);
    } else {
        do {
            ok = BN_priv_rand_range(s->sm2_key, n);
        } while (ok && BN_is_zero(s->sm2_key));
    }
    EC_GROUP_free(g);
    if (!ok) {
        snprintf(err, errlen, key ? "the SM2 key is zero modulo the group order"
                                  : "no random bytes for the key");
        psi_suite_free(s);
        return NULL;
    }
    return s;
}

void psi_suite_free(struct psi_suite *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s->x25519_key, sizeof(s->x25519_key));
    BN_clear_free(s->sm2_key);
    free(s);
}

size_t psi_suite_point_len(const struct psi_suite *s) { return s->point_len; }

struct psi_suite_ws *psi_suite_ws_new(const struct psi_suite *s)
{
    struct psi_suite_ws *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->s = s;
    ws->md = EVP_MD_fetch(NULL, s->hash == PSI_HASH_SM3 ? "SM3" : "SHA256", NULL);
    ws->mdctx = EVP_MD_CTX_new();
    if (!ws->md || !ws->mdctx)
        goto fail;
    if (s->curve == PSI_CURVE_CURVE25519) {
        static const unsigned char nine[32] = {9};
        ws->priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, s->x25519_key, 32);
        ws->peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, nine, 32);
        if (!ws->priv || !ws->peer)
            goto fail;
        ws->dctx = EVP_PKEY_CTX_new(ws->priv, NULL);
        if (!ws->dctx || EVP_PKEY_derive_init(ws->dctx) != 1)
            goto fail;
        return ws;
    }
    ws->group = EC_GROUP_new_by_curve_name(NID_sm2);
    ws->bn = BN_CTX_new();
    ws->p = BN_new();
    ws->x = BN_new();
    if (!ws->group || !ws->bn || !ws->p || !ws->x)
        goto fail;
    ws->pt = EC_POINT_new(ws->group);
    ws->res = EC_POINT_new(ws->group);
    if (!ws->pt || !ws->res || !EC_GROUP_get_curve(ws->group, ws->p, NULL, NULL, ws->bn))
        goto fail;
    return ws;
fail:
    psi_suite_ws_free(ws);
    return NULL;
}

void psi_suite_ws_free(struct psi_suite_ws *ws)
{
    if (!ws)
        return;
    EVP_MD_free(ws->md);
    EVP_MD_CTX_free(ws->mdctx);
    EVP_PKEY_CTX_free(ws->dctx);
    EVP_PKEY_free(ws->priv);
    EVP_PKEY_free(ws->peer);
    EC_POINT_free(ws->pt);
    EC_POINT_free(ws->res);
    BN_free(ws->p);
    BN_free(ws->x);
    BN_CTX_free(ws->bn);
    EC_GROUP_free(ws->group);
    free(ws);
}

static int digest(struct psi_suite_ws *ws, const void *d, size_t n, unsigned char out[32])
{
    unsigned int ol = 0;
    if (EVP_DigestInit_ex2(ws->mdctx, ws->md, NULL) != 1 || EVP_DigestUpdate(ws->mdctx, d, n) != 1 ||
        EVP_DigestFinal_ex(ws->mdctx, out, &ol) != 1 || ol != 32)
        return -1;
    return 0;
}

/* u-coordinate multiplication: out = X25519(key, u).  OpenSSL refuses an
 * all-zero result (a small-order u), as libsodium does in the reference. */
static int x25519(struct psi_suite_ws *ws, const unsigned char *u, unsigned char *out)
{
    size_t ol = 32;
    if (EVP_PKEY_set1_encoded_public_key(ws->peer, u, 32) != 1 ||
        EVP_PKEY_derive_set_peer_ex(ws->dctx, ws->peer, 0) != 1 ||
        EVP_PKEY_derive(ws->dctx, out, &ol) != 1 || ol != 32) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* SM2 hash-to-curve into ws->pt. */
static int sm2_hash_to_point(struct psi_suite_ws *ws, const void *id, size_t n, int *tries)
{
    unsigned char buf[32];
    if (digest(ws, id, n, buf) != 0)
        return -1;
    if (!BN_bin2bn(buf, 32, ws->x) || !BN_nnmod(ws->x, ws->x, ws->p, ws->bn))
        return -1;
    for (int i = 0; i < H2C_MAX_TRIES; i++) {
        /* y_bit 0: the point with the even y */
        ERR_set_mark();
        int ok = EC_POINT_set_compressed_coordinates(ws->group, ws->pt, ws->x, 0, ws->bn);
        ERR_pop_to_mark();
        if (ok == 1) {
            if (tries)
                *tries = i;
            return 0;
        }
        if (ws->s->h2c == PSI_H2C_TRY_AND_REHASH) {
            if (digest(ws, buf, 32, buf) != 0 || !BN_bin2bn(buf, 32, ws->x) ||
                !BN_nnmod(ws->x, ws->x, ws->p, ws->bn))
                return -1;
        } else { /* TRY_AND_INCREMENT */
            if (!BN_add_word(ws->x, 1) || !BN_nnmod(ws->x, ws->x, ws->p, ws->bn))
                return -1;
        }
    }
    return -1;
}

static int sm2_out(struct psi_suite_ws *ws, const EC_POINT *pt, unsigned char *out)
{
    if (EC_POINT_is_at_infinity(ws->group, pt))
        return -1;
    return EC_POINT_point2oct(ws->group, pt, POINT_CONVERSION_COMPRESSED, out, 33, ws->bn) == 33 ? 0
                                                                                                : -1;
}

int psi_suite_hash_point(const struct psi_suite *s, struct psi_suite_ws *ws, const void *id,
                         size_t n, unsigned char *out, int *tries)
{
    if (s->curve == PSI_CURVE_CURVE25519) {
        if (tries)
            *tries = 0;
        return digest(ws, id, n, out);
    }
    if (sm2_hash_to_point(ws, id, n, tries) != 0)
        return -1;
    return sm2_out(ws, ws->pt, out);
}

int psi_suite_mask_id(const struct psi_suite *s, struct psi_suite_ws *ws, const void *id, size_t n,
                      unsigned char *out)
{
    if (s->curve == PSI_CURVE_CURVE25519) {
        unsigned char u[32];
        if (digest(ws, id, n, u) != 0)
            return -1;
        return x25519(ws, u, out);
    }
    if (sm2_hash_to_point(ws, id, n, NULL) != 0 ||
        EC_POINT_mul(ws->group, ws->res, NULL, ws->pt, s->sm2_key, ws->bn) != 1)
        return -1;
    return sm2_out(ws, ws->res, out);
}

int psi_suite_mask_point(const struct psi_suite *s, struct psi_suite_ws *ws,
                         const unsigned char *in, unsigned char *out)
{
    if (s->curve == PSI_CURVE_CURVE25519) {
        unsigned char u[32];
        memcpy(u, in, 32);
        return x25519(ws, u, out);
    }
    ERR_set_mark();
    int ok = EC_POINT_oct2point(ws->group, ws->pt, in, 33, ws->bn) == 1 &&
             EC_POINT_mul(ws->group, ws->res, NULL, ws->pt, s->sm2_key, ws->bn) == 1;
    ERR_pop_to_mark();
    if (!ok)
        return -1;
    return sm2_out(ws, ws->res, out);
}
