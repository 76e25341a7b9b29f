/*
 * reqsig.h - signed node-to-node requests (x-auth-sign).
 *
 * The BFIA standard requires x-auth-sign on every node-to-node call but
 * leaves the canonical form, the algorithm and the key to "the node
 * contract".  This module fixes them for gateways like this one:
 *
 *   canonical = "BFIA-SIGN-V1" LF
 *               METHOD LF                   "GET", "POST"
 *               path LF                     as sent, without the query
 *               query LF                    the raw "k=v" pairs sorted bytewise,
 *                                           joined with "&" (empty if none)
 *               x-source-node-id LF
 *               x-target-node-id LF
 *               x-timestamp LF              Unix milliseconds, decimal
 *               x-nonce LF                  8-64 chars of [A-Za-z0-9_-]
 *               hex(SHA-256(body))          of the exact body bytes
 *
 *   x-auth-sign: ES256;kid=<kid>;sig=<base64url R||S>
 *
 * The key is the node key (the one in the node's JWKS).  A receiver takes
 * the caller's key from the pin in its route table, or from the caller's
 * JWKS fetched over the node-to-node channel (GET /v1/interconn/attest/jwks
 * at the address the route table gives for that node id, never an address
 * from the request).  It checks x-target-node-id is itself, the timestamp
 * within +-auth.window_s, the signature, and that the (caller, nonce) pair
 * is new (kept until the timestamp leaves the window).
 *
 * Large bodies (REQSIG_BMAC_MIN and more) between gateways like this one
 * are not hashed with SHA-256 but authenticated with a MAC, which costs a
 * fifth of it (the hash of a 1 MiB body at both ends was a third of the
 * gateways' CPU on the transport path).  Each node has an X25519 key pair
 * derived from its node key, and names its public half in every answer to
 * a signed request:
 *
 *   x-bfia-body-mac-key: GMAC-X25519;key=<base64url 32 bytes>
 *
 * A caller that has seen it may send, instead of hashing the body,
 *
 *   x-bfia-body-mac: GMAC-X25519;from=<its key>;to=<the receiver's key>;tag=<16 bytes>
 *
 *   shared = X25519(own private, peer public)
 *   k      = HKDF-SHA256(ikm = shared, salt = x-nonce,
 *                        info = "GMAC-X25519" LF method LF request-target LF
 *                               source LF target node LF x-timestamp LF from LF to)
 *   tag    = AES-256-GCM tag under k, IV 0^96, the body as additional data
 *            and no plaintext (GMAC, NIST SP 800-38D)
 *
 * and the canonical's last line is then that header's value instead of
 * hex(SHA-256(body)).  The nonce is new per request (the receiver refuses a
 * repeated one), so each key authenticates one body.  Only the two nodes can
 * compute k: the receiver checks the signature over the line, then the tag,
 * so a changed body, tag or key fails.  What is lost against SHA-256: a third
 * party cannot check the body against the signature (the caller could not
 * bind itself to one body before a judge), and whoever steals the
 * receiver's node key can also alter, on the way, the bodies others send it
 * (with SHA-256 it could only forge its own node's requests); transport
 * messages need no such proof, and a stolen node key is rotated at once
 * (`key rotate --now`).  A replaced body key is still taken for 60 s (the
 * requests in flight), then no more.  A node that does not name a key (a gateway of ours from before, a
 * peer of another vendor) gets SHA-256 as before; a request keyed for a key
 * this node no longer has (its node key changed and the process restarted,
 * or it was rolled back) is refused naming the current key (or none), and
 * the transport relay sends it once more keyed so (container/chan.c): no
 * message is lost.  Control-plane calls (peer_call) never use the MAC.
 *
 * Policy per caller comes from its route's `auth`: required (default for the
 * standard profile), optional (checked when present) or off (fate-flow and
 * kuscia peers, which sign nothing).  A request that names no caller is
 * accepted only when some route is `off` (it could be such a peer, whose
 * underscore header a proxy dropped); otherwise it is refused.
 */
#ifndef GW_GATEWAY_REQSIG_H
#define GW_GATEWAY_REQSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "err.h"

struct gw_app;
struct gw_req;
struct jws_key;
struct jws_keyset;

#define REQSIG_HDR_MAX 192 /* x-auth-sign value: "ES256;kid=" 43 ";sig=" 86 */
#define REQSIG_NONCE_MIN 8
#define REQSIG_BMAC_MIN (64 * 1024)  /* bodies this large may go under a body MAC */
#define REQSIG_BMAC_SCHEME "GMAC-X25519"
#define REQSIG_BMAC_KEY_B64 43       /* base64url of 32 bytes */
#define REQSIG_BMAC_TAG 16
#define REQSIG_BMAC_TAG_B64 22
#define REQSIG_BMAC_HDR_MAX 160      /* the x-bfia-body-mac value: 11 + 6 + 43 + 4 + 43 + 5 + 22 */
#define REQSIG_NONCE_MAX 64

/* ---- pure parts (unit-tested, used by bfiactl too) ------------------------ */

/**
 * The canonical string for a request.  target is the request-target as sent
 * ("/path?query"); body may be NULL when len is 0.  Caller frees.
 */
char *reqsig_canonical(const char *method, const char *target, const char *source,
                       const char *dest, const char *timestamp, const char *nonce,
                       const void *body, size_t len);

/** The canonical string with bodyline as its last line (the body MAC form). */
char *reqsig_canonical_line(const char *method, const char *target, const char *source,
                            const char *dest, const char *timestamp, const char *nonce,
                            const char *bodyline);

/**
 * A node's body MAC key pair, derived from its node key (stable for the
 * key): *out (EVP_PKEY_free) and the public half in base64url.  0 or -1.
 */
typedef struct evp_pkey_st EVP_PKEY;
int reqsig_bmac_key(const struct jws_key *node_key, EVP_PKEY **out,
                    char pub[REQSIG_BMAC_KEY_B64 + 1]) GW_MUSTCHECK;

/** X25519(own, peer public in base64url) into k.  0, or -1 for a bad key. */
int reqsig_bmac_shared(EVP_PKEY *own, const char *peer, uint8_t k[32]) GW_MUSTCHECK;

/** The body MAC tag (see above) under the X25519 secret shared. 0 or -1. */
int reqsig_bmac_tag(const uint8_t shared[32], const char *method, const char *target,
                    const char *source, const char *dest, const char *timestamp,
                    const char *nonce, const char *from, const char *to, const void *body,
                    size_t len, uint8_t tag[REQSIG_BMAC_TAG]) GW_MUSTCHECK;

/** The x-bfia-body-mac value for these keys and tag (the canonical's last line). */
void reqsig_bmac_line(const char *from, const char *to, const uint8_t tag[REQSIG_BMAC_TAG],
                      char out[REQSIG_BMAC_HDR_MAX]);

/** Split an x-bfia-body-mac value.  0, or GW_EINVAL with eb saying what is wrong. */
int reqsig_bmac_parse(const char *value, char from[REQSIG_BMAC_KEY_B64 + 1],
                      char to[REQSIG_BMAC_KEY_B64 + 1], uint8_t tag[REQSIG_BMAC_TAG],
                      struct gw_errbuf *eb) GW_MUSTCHECK;

/** Sign canonical with key into out ("ES256;kid=...;sig=..."). */
int reqsig_sign(const struct jws_key *key, const char *canonical, char out[REQSIG_HDR_MAX]) GW_MUSTCHECK;

/**
 * Split an x-auth-sign value into its kid and 64 signature bytes.  Returns
 * 0, or GW_EINVAL with eb saying what is malformed.
 */
int reqsig_parse(const char *value, char kid[65], uint8_t sig[64], struct gw_errbuf *eb) GW_MUSTCHECK;

/** Check a route's key pin: a public JWK (JSON text) of a usable key. */
int reqsig_pin_check(const char *text, struct gw_errbuf *eb) GW_MUSTCHECK;

/** A fresh random nonce (22 base64url chars) into out[23]. */
void reqsig_nonce(char out[23]);

/* ---- the node's verifier ---------------------------------------------------- */

struct reqsig;

/* This node's own keys, as signing and verifying need them.  The node key
 * is container/attest.h's; main.c passes these two functions, so the core
 * knows nothing of containers. */
struct jws_key;
struct jws_keyset;
struct reqsig_keysrc {
    const struct jws_key *(*signing)(void *ctx);   /* the active signing key, or NULL */
    const struct jws_keyset *(*keyset)(void *ctx); /* every key our signatures verify with */
    void *ctx;
};

/** own is copied. */
struct reqsig *reqsig_new(struct gw_app *app, const struct reqsig_keysrc *own);
void reqsig_free(struct reqsig *rs);

/**
 * Headers for an outgoing call to dest, signed with the node key:
 * "Name: value" lines written into the caller's buffers (x-timestamp,
 * x-nonce, x-auth-sign and, when body_mac and the body is large and the node
 * named its body key, x-bfia-body-mac; nothing else).  ts_unit_s: send seconds
 * (kuscia) instead of milliseconds; such calls are not signed.
 */
struct reqsig_out {
    char ts[48];
    char nonce[48];
    char sign[REQSIG_HDR_MAX + 16];
    char bmac[REQSIG_BMAC_HDR_MAX + 24]; /* "x-bfia-body-mac: ...", or empty: send it too */
};
void reqsig_outgoing(struct gw_app *app, const char *method, const char *target, const char *dest,
                     const void *body, size_t len, bool sign, bool ts_unit_s, bool body_mac,
                     struct reqsig_out *out);

/**
 * Whether a signed request of len body bytes to node goes under a body MAC
 * (body_mac asked, node named its key): such a request refused for its
 * signature may be sent once more, keyed as the refusal says.
 */
bool reqsig_bmac_ready(struct reqsig *rs, const char *node, size_t len);

/**
 * Check the credentials of a peer request per the caller's policy.  done
 * runs exactly once, now or after the caller's JWKS is fetched, with 0 or
 * GW_EAUTH and a message naming what is wrong (unknown node, missing header,
 * wrong target, stale timestamp, unknown key, bad signature, replayed nonce).
 */
typedef void (*reqsig_done)(struct gw_req *req, int err, const char *msg);
void reqsig_check(struct reqsig *rs, struct gw_req *req, reqsig_done done);

/**
 * The key set node's tokens verify with: this node's own keys, the route's
 * pinned key, or node's JWKS (cached; fetched over the node-to-node channel
 * when stale or when kid is not in it, at most once per auth.jwks_refetch_s).
 * cb runs exactly once, now or later, with the set (borrowed for the call)
 * or NULL and a message saying why there is none.
 */
typedef void (*reqsig_keys_cb)(struct gw_req *req, const struct jws_keyset *ks, const char *err);
void reqsig_node_keys(struct reqsig *rs, struct gw_req *req, const char *node, const char *kid,
                      reqsig_keys_cb cb);

/**
 * What node said of its body key in an answer to a request of ours: the
 * x-bfia-body-mac-key value, or NULL when the answer had none (then the
 * node gets SHA-256 until it names one again).
 */
void reqsig_bmac_learn(struct reqsig *rs, const char *node, const char *value);

/** This node's x-bfia-body-mac-key value (borrowed), or NULL with no node key. */
const char *reqsig_bmac_advert(struct reqsig *rs);

/** Signed bodies >= REQSIG_BMAC_MIN checked by MAC, by SHA-256, and refused by MAC. */
void reqsig_bmac_counts(const struct reqsig *rs, unsigned long long *mac, unsigned long long *sha,
                        unsigned long long *refused);

/** Forget cached JWKS documents (after a route edit). */
void reqsig_forget(struct reqsig *rs);

#endif
