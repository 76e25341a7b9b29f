/*
 * psi_suite.h - the cryptographic suites of ECDH-PSI (spec bfia-ecdh-psi.md
 * §2, §3): hash an ID to a curve point, multiply a point by the party's
 * private scalar, serialise points.
 *
 * Suites (curve, hash, hash-to-curve, point format):
 *   CURVE25519 / SHA_256 / DIRECT_HASH_AS_POINT_X / UNCOMPRESSED
 *       H(id) = SHA-256(id) used as the 32-byte X25519 u-coordinate;
 *       scalar_mul = X25519 (RFC 7748); 32-byte points.  As the reference.
 *   SM2 / SHA_256 / TRY_AND_REHASH / X962_COMPRESSED
 *       buf = SHA-256(id); up to 100 times: x = int(buf) mod p, accept the
 *       point (x, y even) if x is on the curve, else buf = SHA-256(buf);
 *       33-byte compressed points.  As the reference (YACL 2024).
 *   SM2 / SM3 / TRY_AND_INCREMENT / X962_COMPRESSED
 *       x = int(SM3(id)) mod p; up to 100 times: accept (x, y even) if on
 *       the curve, else x = x + 1 mod p.  The standards give no exact rule;
 *       this is the convention of spec §2.4 [REC] (big-endian, y even,
 *       at most 100 tries, increment the integer x), not a reference
 *       behaviour: a peer with another convention gets no matches.
 *
 * Thread use: a suite is immutable after psi_suite_new() and may be shared
 * by threads; every thread that hashes or multiplies needs its own
 * workspace (psi_suite_ws_new()).
 */
#ifndef PSI_SUITE_H
#define PSI_SUITE_H

#include <stdbool.h>
#include <stddef.h>

/* Field values of the standard's enums (spec §2.1); the numbers never change. */
enum psi_curve {
    PSI_CURVE_UNSPECIFIED = 0,
    PSI_CURVE_CURVE25519 = 1,
    PSI_CURVE_SM2 = 2,
    PSI_CURVE_ED25519 = 3,
};

enum psi_hash {
    PSI_HASH_UNSPECIFIED = 0,
    PSI_HASH_SM3 = 1,
    PSI_HASH_SHA_224 = 10,
    PSI_HASH_SHA_256 = 11,
    PSI_HASH_SHA_384 = 12,
    PSI_HASH_SHA_512 = 13,
    PSI_HASH_SHA3_224 = 20,
    PSI_HASH_SHA3_256 = 21,
    PSI_HASH_SHA3_384 = 22,
    PSI_HASH_SHA3_512 = 23,
    PSI_HASH_SHAKE_256 = 30,
};

enum psi_h2c {
    PSI_H2C_UNSPECIFIED = 0,
    PSI_H2C_TRY_AND_INCREMENT = 1,
    PSI_H2C_TRY_AND_REHASH = 2,
    PSI_H2C_DIRECT_HASH_AS_POINT_X = 3,
    PSI_H2C_IRTF_SSWU_RO = 10,
    PSI_H2C_IRTF_SSWU_NU = 11,
    PSI_H2C_IRTF_ELL2_RO = 12,
    PSI_H2C_IRTF_ELL2_NU = 13,
};

enum psi_fmt {
    PSI_FMT_UNSPECIFIED = 0,
    PSI_FMT_UNCOMPRESSED = 1,
    PSI_FMT_X962_COMPRESSED = 2,
    PSI_FMT_X962_UNCOMPRESSED = 3,
    PSI_FMT_X962_HYBRID = 4,
};

/* Bytes of the second-stage ("dual.enc") value: the last 12 bytes of the
 * serialised point, whatever bit_length_after_truncated says (spec §3 [REF]). */
#define PSI_DUAL_LEN 12

/* The largest serialised point of any suite. */
#define PSI_POINT_MAX 33

/** Lower-case parameter spelling of an enum value ("curve25519", "sha_256",
 * "direct_hash_as_point_x", "uncompressed"); "?" for an unknown value.
 * The result is a static string. */
const char *psi_curve_name(int v);
const char *psi_hash_name(int v);
const char *psi_h2c_name(int v);
const char *psi_fmt_name(int v);

/** Parse a parameter value, case-insensitively, in the reference's short
 * form ("sm2", "SHA_256") or with the enum prefix ("CURVE_TYPE_SM2").
 * Returns the enum value, or -1 when the text names no value of the enum
 * (0, "unspecified", is refused too). */
int psi_curve_parse(const char *s);
int psi_hash_parse(const char *s);
int psi_h2c_parse(const char *s);
int psi_fmt_parse(const char *s);

/** Check that (curve, hash, h2c, fmt) is one of the three supported suites.
 * Returns 0, or -1 with a message in err that starts with the name of the
 * first offending parameter (curve_type, hash_type, hash2curve_strategy,
 * point_octet_format) and lists the supported suites. */
int psi_suite_check(int curve, int hash, int h2c, int fmt, char *err, size_t errlen);

struct psi_suite;
struct psi_suite_ws;

/** A suite with a private scalar.  key == NULL draws a fresh random one
 * (the normal case); otherwise keylen bytes are used: for Curve25519 the
 * 32 raw X25519 scalar bytes (clamped by X25519 itself), for SM2 a
 * big-endian integer taken mod the group order.  Returns NULL on an
 * unsupported suite, a bad key (zero mod n, wrong length) or an OpenSSL
 * failure; err says which.  The caller owns the result. */
struct psi_suite *psi_suite_new(int curve, int hash, int h2c, int fmt, const unsigned char *key,
                                size_t keylen, char *err, size_t errlen);

/** NULL-safe; wipes the key. */
void psi_suite_free(struct psi_suite *s);

/** Bytes of one serialised point: 32 (Curve25519) or 33 (SM2). */
size_t psi_suite_point_len(const struct psi_suite *s);

/** A per-thread workspace (OpenSSL contexts) for s; s must outlive it.
 * Returns NULL on an OpenSSL failure.  The caller owns it. */
struct psi_suite_ws *psi_suite_ws_new(const struct psi_suite *s);

/** NULL-safe. */
void psi_suite_ws_free(struct psi_suite_ws *ws);

/** H(id): the serialised hash-to-curve point of the n bytes at id, into
 * out (point_len bytes).  *tries (may be NULL) gets the number of extra
 * rounds the strategy needed (0 for DIRECT_HASH).  Returns 0, or -1 when
 * no point was found in 100 rounds. */
int psi_suite_hash_point(const struct psi_suite *s, struct psi_suite_ws *ws, const void *id,
                         size_t n, unsigned char *out, int *tries);

/** enc(id) = key * H(id), serialised into out (point_len bytes).
 * Returns 0 or -1 (no point found; X25519 of a small-order point). */
int psi_suite_mask_id(const struct psi_suite *s, struct psi_suite_ws *ws, const void *id, size_t n,
                      unsigned char *out);

/** key * P for the serialised point P at in (point_len bytes), serialised
 * into out (point_len bytes; may equal in).  Returns 0, or -1 when in is
 * not a valid point or the product is the identity. */
int psi_suite_mask_point(const struct psi_suite *s, struct psi_suite_ws *ws,
                         const unsigned char *in, unsigned char *out);

#endif
