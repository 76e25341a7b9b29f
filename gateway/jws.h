/*
 * jws.h - attestation tokens: JWS Compact (RFC 7515) signing and the strict
 * verifier of spec/attestation.md section 2.9.
 *
 * What lives here:
 *   - base64url without padding (strict decoder: alphabet, length, canonical
 *     trailing bits);
 *   - signing keys (ES256 on P-256, mandatory; Ed25519 optional): generate,
 *     PKCS#8 PEM load/save, JWK import/export, RFC 7638 thumbprint as kid;
 *   - key sets (the JWKS of one issuer) and the JWKS document builder;
 *   - jws_sign(): header {alg,typ,kid} + payload -> "h.p.s";
 *   - jws_verify(): the normative check order, answering the exact error
 *     identifiers of the test vectors (E_SIZE ... E_REPLAY);
 *   - a bounded replay cache keyed on (iss, jti), never on signature bytes
 *     (ECDSA signatures are malleable).
 *
 * Nothing here keeps global state and nothing does I/O except the two PEM
 * file functions, so the module can be used from the loop thread (verify
 * costs one ECDSA verification, ~50-65 us) and from bfiactl alike.  Objects
 * are not shared between threads: an ES256 key keeps an initialised OpenSSL
 * verification context that each verification reuses (and so mutates), even
 * through a const pointer.
 *
 * Minting the BFIA claim set (job/task binding, measres, ...) belongs to the
 * attestation layer on top; this module only knows the generic JWS layer
 * plus the claim checks a verifier must make.
 */
#ifndef GW_GATEWAY_JWS_H
#define GW_GATEWAY_JWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "err.h"

struct cJSON;

/* ------------------------------------------------------------------------ */
/* Profile constants (spec 2.3-2.5, vectors "profile")                       */

#define JWS_TYP_LAUNCH_STR "bfia-launch+jwt"
#define JWS_TYP_PRESENT_STR "bfia-present+jwt"
#define JWS_EAT_PROFILE "tag:bfia-gw.example,2025:attest/v1"
#define JWS_LEEWAY_S 60
#define JWS_LAUNCH_MAX_TTL_S 3600
#define JWS_PRESENT_MAX_TTL_S 300
#define JWS_MAX_TOKEN 8192 /* bytes of the compact form */
#define JWS_KID_MAX 64     /* [A-Za-z0-9_-]{1,64} */
#define JWS_THUMBPRINT_LEN 43 /* base64url of a SHA-256 digest */

/* ------------------------------------------------------------------------ */
/* base64url (RFC 4648 section 5, no padding)                                */

/** Characters jws_b64url_encode() writes for n input bytes (without NUL). */
#define JWS_B64URL_ENC_LEN(n) ((((n) / 3) * 4) + ((n) % 3 ? ((n) % 3) + 1 : 0))
/** Upper bound of the bytes jws_b64url_decode() writes for n characters. */
#define JWS_B64URL_DEC_MAX(n) ((((n) + 3) / 4) * 3)

/**
 * Encode n bytes of in into out, which must hold JWS_B64URL_ENC_LEN(n) + 1
 * chars; out is NUL-terminated.  Returns the length written (without NUL).
 */
size_t jws_b64url_encode(const uint8_t *in, size_t n, char *out);

/** Encode into a new NUL-terminated string, freed by the caller with free(). */
char *jws_b64url_encode_alloc(const uint8_t *in, size_t n);

/**
 * Strict decode of n chars (need not be NUL-terminated) into out, which must
 * hold JWS_B64URL_DEC_MAX(n) bytes.  Refuses '=' padding, any char outside
 * [A-Za-z0-9_-], a length = 1 mod 4 and non-zero unused trailing bits (so every
 * byte string has exactly one accepted encoding).  An empty input decodes to
 * zero bytes.  Returns 0 and sets *outlen, or GW_EINVAL.
 */
int jws_b64url_decode(const char *in, size_t n, uint8_t *out, size_t *outlen) GW_MUSTCHECK;

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */

/** Signature algorithms known to this module.  Values are bit flags. */
enum jws_alg {
    JWS_ALG_NONE = 0,    /* unknown / not allowed */
    JWS_ALG_ES256 = 1,   /* ECDSA P-256 SHA-256, raw R||S (mandatory) */
    JWS_ALG_ED25519 = 2, /* Ed25519, RFC 9864 fully specified name */
};

/** JOSE name of alg ("ES256", "Ed25519"), or "none". */
const char *jws_alg_name(enum jws_alg alg);

/** The alg for a JOSE name; JWS_ALG_NONE for anything else (incl. "EdDSA"). */
enum jws_alg jws_alg_from_name(const char *name);

/** A public or private signing key plus its kid (opaque). */
struct jws_key;

/**
 * Generate a fresh key (ES256: P-256; Ed25519).  The kid is its RFC 7638
 * thumbprint.  Returns NULL for an unknown alg or when OpenSSL fails.  The
 * result is owned by the caller (jws_key_free).
 */
struct jws_key *jws_key_generate(enum jws_alg alg);

/** Free a key (NULL-safe). */
void jws_key_free(struct jws_key *key);

/** The key's kid (thumbprint), borrowed, valid while the key lives. */
const char *jws_key_kid(const struct jws_key *key);

/** The key's algorithm. */
enum jws_alg jws_key_alg(const struct jws_key *key);

/** Whether the key holds private material (can sign). */
bool jws_key_has_private(const struct jws_key *key);

/**
 * HKDF-SHA256 (RFC 5869) of ikm with salt and info into out[outlen].
 * Returns 0, or -1 when OpenSSL fails.
 */
int jws_hkdf_sha256(const void *ikm, size_t ikmlen, const void *salt, size_t saltlen,
                    const void *info, size_t infolen, uint8_t *out, size_t outlen) GW_MUSTCHECK;

/**
 * A 32-byte secret derived from the key's private part and label (HKDF over
 * the private scalar or seed, label as info): stable for the key, different
 * per label, and telling nothing of the key.  -1 for a public-only key.
 */
int jws_key_derive_secret(const struct jws_key *key, const char *label, uint8_t out[32]) GW_MUSTCHECK;

/**
 * Write the private key as PKCS#8 PEM to path, mode 0600 (created with
 * O_CREAT|O_TRUNC|O_NOFOLLOW and fchmod'ed, so an existing file with looser
 * permissions is tightened before the secret is written), then fsync.
 * Blocking file I/O: not on the loop thread.  Errors: GW_EINVAL (public-only
 * key), GW_EINTERNAL (I/O or OpenSSL; detail in eb).
 */
int jws_key_save_pem(const struct jws_key *key, const char *path,
                     struct gw_errbuf *eb) GW_MUSTCHECK;

/**
 * The same without the fsync: a few hundred bytes into the page cache, fit
 * for the loop; the caller makes the file durable off the loop
 * (fileio_sync_path on the file I/O thread).
 */
int jws_key_write_pem(const struct jws_key *key, const char *path,
                      struct gw_errbuf *eb) GW_MUSTCHECK;

/**
 * Load a PEM private key (PKCS#8 or traditional EC) from path; only P-256
 * and Ed25519 keys are accepted.  *out is owned by the caller.  Blocking file
 * I/O.  Errors: GW_ENOTFOUND (no file), GW_EINVAL (not a usable key).
 */
int jws_key_load_pem(const char *path, struct jws_key **out, struct gw_errbuf *eb) GW_MUSTCHECK;

/**
 * Import a JWK object (borrowed): EC/P-256 with x, y, or OKP/Ed25519 with x;
 * an optional d makes it a private key.  The point is checked with
 * EVP_PKEY_public_check (and d against it).  If the JWK carries "alg" it must
 * be the one for its curve, and a "kid" must equal the recomputed thumbprint.
 * *out is owned by the caller.  Errors: GW_EINVAL with detail in eb.
 */
int jws_key_from_jwk(const struct cJSON *jwk, struct jws_key **out,
                     struct gw_errbuf *eb) GW_MUSTCHECK;

/**
 * The public JWK of a key: {kty, crv, x, [y,] kid, use:"sig", alg}.  Never
 * contains private members.  Owned by the caller (cJSON_Delete).
 */
struct cJSON *jws_key_to_jwk(const struct jws_key *key);

/**
 * RFC 7638 thumbprint of a JWK object (borrowed): SHA-256 over the required
 * members in lexicographic order without whitespace ({"crv","kty","x","y"}
 * for EC, {"crv","kty","x"} for OKP, {"e","kty","n"} for RSA), base64url.
 * out must hold JWS_THUMBPRINT_LEN + 1 chars.  Errors: GW_EINVAL (unknown kty
 * or a required member missing or not a string).
 */
int jws_jwk_thumbprint(const struct cJSON *jwk, char *out) GW_MUSTCHECK;

/* ------------------------------------------------------------------------ */
/* Key sets (the JWKS of one issuer)                                         */

/** A set of public keys with unique kids (opaque). */
struct jws_keyset;

/** An empty key set, owned by the caller (jws_keyset_free). */
struct jws_keyset *jws_keyset_new(void);

/** Free a key set and every key in it (NULL-safe). */
void jws_keyset_free(struct jws_keyset *ks);

/**
 * Add key to the set; ownership moves to the set on success.  A private key
 * is accepted (the node's own set) but only its public half is ever
 * exported.  Errors: GW_ECONFLICT (kid already present; the caller still
 * owns key), GW_ETOOBIG (more than 64 keys).
 */
int jws_keyset_add_take(struct jws_keyset *ks, struct jws_key *key) GW_MUSTCHECK;

/** Key by kid, borrowed from the set; NULL if absent. */
const struct jws_key *jws_keyset_find(const struct jws_keyset *ks, const char *kid);

/** Number of keys, and key i (0-based, borrowed). */
size_t jws_keyset_count(const struct jws_keyset *ks);
const struct jws_key *jws_keyset_get(const struct jws_keyset *ks, size_t i);

/**
 * Load a JWKS document {"keys":[...]} (borrowed) received from a peer.  The
 * whole document is refused on any violation of spec 2.9 "JWKS validation":
 * kty/crv not EC/P-256 or OKP/Ed25519, alg missing or not the curve's, use
 * not "sig", private members (d, p, q, dp, dq, qi, k, oth), kid not equal to
 * the thumbprint, duplicate kids, or a point that fails the public check.
 * *out is owned by the caller.  Errors: GW_EINVAL with detail in eb.
 */
int jws_keyset_from_jwks(const struct cJSON *jwks, struct jws_keyset **out,
                         struct gw_errbuf *eb) GW_MUSTCHECK;

/**
 * Build the JWKS document {"keys":[public JWK, ...]} of n keys (borrowed;
 * NULL entries are skipped) in the given order.  Owned by the caller.
 */
struct cJSON *jws_jwks_build(const struct jws_key *const *keys, size_t n);

/** The JWKS document of every key in a set, in insertion order. */
struct cJSON *jws_keyset_to_jwks(const struct jws_keyset *ks);

/* ------------------------------------------------------------------------ */
/* Signing                                                                   */

/**
 * Raw signature over msg: 64-byte R||S for ES256 (each half left-padded to
 * 32 bytes, converted from OpenSSL's DER), 64 bytes for Ed25519.  sig must
 * hold 64 bytes.  Errors: GW_EINVAL (public-only key), GW_EINTERNAL.
 */
int jws_sign_raw(const struct jws_key *key, const uint8_t *msg, size_t len, uint8_t *sig,
                 size_t *siglen) GW_MUSTCHECK;

/**
 * Check a raw JWS signature over msg with key: exactly 64 bytes; for ES256
 * 0 < r < n and 0 < s < n, then EVP_DigestVerify must return exactly 1.
 * Returns true only for a valid signature.
 */
bool jws_verify_raw(const struct jws_key *key, const uint8_t *msg, size_t len,
                    const uint8_t *sig, size_t siglen);

/**
 * Sign payload (borrowed, printed unformatted) as JWS Compact with the
 * protected header {"alg":<key alg>,"typ":typ,"kid":<key kid>} (typ may be
 * NULL to omit it).  *out is a new NUL-terminated string freed with free().
 * Errors: GW_EINVAL (public-only key, payload not an object), GW_EINTERNAL.
 */
int jws_sign(const struct jws_key *key, const char *typ, const struct cJSON *payload,
             char **out) GW_MUSTCHECK;

/* ------------------------------------------------------------------------ */
/* Replay cache                                                              */

/**
 * A bounded set of (iss, jti) pairs, each kept until its expiry (token exp +
 * leeway).  Expired entries are swept when the cache is full; if it is still
 * full the verifier refuses the token (E_BUSY) rather than forget a jti.
 */
struct jws_replay;

/** A cache for at most max_entries live pairs (1..1<<20); NULL otherwise. */
struct jws_replay *jws_replay_new(size_t max_entries);

/** Free a replay cache (NULL-safe). */
void jws_replay_free(struct jws_replay *rc);

/** Number of pairs currently stored (expired ones included until swept). */
size_t jws_replay_count(const struct jws_replay *rc);

/** Drop every pair whose expiry is <= now; returns how many were dropped. */
size_t jws_replay_sweep(struct jws_replay *rc, long long now);

/** Whether (iss, jti) is stored and unexpired at now. */
bool jws_replay_seen(const struct jws_replay *rc, const char *iss, const char *jti,
                     long long now);

/**
 * Record (iss, jti) until expiry.  Errors: GW_ECONFLICT (already stored and
 * unexpired: a replay), GW_EBUSY (full of live pairs), GW_EINVAL (iss or jti
 * longer than 64 chars).
 */
int jws_replay_insert(struct jws_replay *rc, const char *iss, const char *jti, long long expiry,
                      long long now) GW_MUSTCHECK;

/* ------------------------------------------------------------------------ */
/* Verification                                                              */

/** Token profiles (spec 2.5); they are mutually exclusive by typ. */
enum jws_typ {
    JWS_TYP_LAUNCH,  /* bfia-launch+jwt: aud = own node, ttl <= 3600 s */
    JWS_TYP_PRESENT, /* bfia-present+jwt: aud = one partner, nonce, single use */
};

/**
 * Verification verdicts, in the normative check order (the first failing
 * check wins).  The names are the vectors' identifiers and never change.
 */
enum jws_error {
    JWS_OK = 0,
    JWS_E_SIZE,          /* token over 8192 bytes */
    JWS_E_FORMAT,        /* not three non-empty dot-separated segments */
    JWS_E_B64,           /* a segment is not strict base64url */
    JWS_E_JSON,          /* header or payload not strict JSON (dup keys, trailing data) */
    JWS_E_HDR_PARAM,     /* header member outside {alg,typ,kid} or not a string */
    JWS_E_ALG,           /* alg not allowlisted, or not the JWK's alg */
    JWS_E_TYP,           /* typ is not the expected profile */
    JWS_E_KID,           /* kid malformed, or not in the expected issuer's JWKS */
    JWS_E_SIG,           /* signature invalid */
    JWS_E_CLAIM_MISSING, /* a required claim or bfia field is absent */
    JWS_E_CLAIM_TYPE,    /* a claim has the wrong type or form (floats included) */
    JWS_E_PROFILE,       /* eat_profile differs */
    JWS_E_ISS,           /* iss or bfia.node_id is not the expected issuer */
    JWS_E_AUD,           /* aud is not the expected audience */
    JWS_E_EXP,           /* expired: now - leeway >= exp */
    JWS_E_NBF,           /* not yet valid: now + leeway < nbf */
    JWS_E_IAT,           /* iat in the future or exp <= iat */
    JWS_E_TTL,           /* exp - iat over the profile maximum */
    JWS_E_BINDING,       /* bfia job/task/role/session/image or sub mismatch */
    JWS_E_NONCE,         /* eat_nonce is not the expected challenge */
    JWS_E_REPLAY,        /* (iss, jti) already seen */
    JWS_E_BUSY,          /* replay cache full of live entries: refused, try later */
    JWS_E_ARG,           /* the caller's context is incomplete (a bug, not input) */
};

/** Stable name of a verdict ("OK", "E_SIG", ...), never NULL. */
const char *jws_error_name(enum jws_error e);

/**
 * The values a token must be bound to.  Each field is borrowed; NULL means
 * "not checked".  Verifiers take them from their own copy of the job (DAG,
 * role map, agreed component digest), never from the token.
 */
struct jws_binding {
    const char *job_id;
    const char *task_id;
    const char *self_role;
    const char *session_id;
    const char *manifest_digest; /* bfia.image.manifest_digest */
    const char *config_digest;   /* bfia.image.config_digest */
    const char *container_name;  /* bfia.container.name (launch tokens) */
    const char *launch_jti;      /* bfia.launch_jti (presentation tokens) */
};

/**
 * Everything a verification needs.  Fill it with jws_verify_ctx_init() and
 * then set the expectations; all pointers are borrowed for the call.
 */
struct jws_verify_ctx {
    enum jws_typ typ;
    const struct jws_keyset *keys; /* JWKS of expected_iss only, never chosen by kid */
    const char *expected_iss;      /* required */
    const char *expected_aud;      /* required */
    const char *expected_profile;  /* default JWS_EAT_PROFILE */
    const char *expected_nonce;    /* required for PRESENT; for LAUNCH optional:
                                      must equal eat_nonce or be one of its entries */
    struct jws_binding binding;
    long long now;                 /* seconds since the epoch (injected clock) */
    long long leeway;              /* seconds, default JWS_LEEWAY_S */
    unsigned alg_allowlist;        /* enum jws_alg flags, default ES256 only */
    struct jws_replay *replay;     /* required for PRESENT; ignored for LAUNCH */
    bool introspect;               /* the issuer looking at its own PRESENT token
                                      (RFC 7662): no nonce or replay check, nothing
                                      consumed; expected_nonce and replay unused */
};

/** Defaults for typ: profile, leeway 60, allowlist ES256; everything else NULL/0. */
void jws_verify_ctx_init(struct jws_verify_ctx *ctx, enum jws_typ typ, long long now);

/**
 * Verify a compact token of len bytes (need not be NUL-terminated) in the
 * order of spec 2.9: size, shape, base64url, header JSON, header members,
 * alg allowlist, typ, kid form, key lookup, JWK alg pin, signature over the
 * received bytes, payload JSON, claim presence, claim types, profile,
 * issuer, audience, exp, nbf, iat, ttl, binding, nonce, replay.  For a
 * presentation token that passes every check, (iss, jti) is inserted into
 * ctx->replay until exp + leeway.
 *
 * Returns JWS_OK and, if claims is not NULL, sets *claims to the verified
 * payload (owned by the caller, cJSON_Delete); otherwise the first failing
 * check and *claims = NULL.  JWS_E_ARG means ctx lacks a required field
 * (keys, expected_iss/aud/profile; nonce and replay for PRESENT) or has a
 * leeway outside 0..3600.
 */
enum jws_error jws_verify(const char *token, size_t len, const struct jws_verify_ctx *ctx,
                          struct cJSON **claims) GW_MUSTCHECK;

#endif
