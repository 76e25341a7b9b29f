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
#define REQSIG_NONCE_MAX 64

/* ---- pure parts (unit-tested, used by bfiactl too) ------------------------ */

/**
 * The canonical string for a request.  target is the request-target as sent
 * ("/path?query"); body may be NULL when len is 0.  Caller frees.
 */
char *reqsig_canonical(const char *method, const char *target, const char *source,
                       const char *dest, const char *timestamp, const char *nonce,
                       const void *body, size_t len);

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
 * Headers for an outgoing call to dest, signed with the node key: four
 * "Name: value" lines written into the caller's buffers (x-timestamp,
 * x-nonce, x-auth-sign, and nothing else).  ts_unit_s: send seconds
 * (kuscia) instead of milliseconds; such calls are not signed.
 */
struct reqsig_out {
    char ts[48];
    char nonce[48];
    char sign[REQSIG_HDR_MAX + 16];
};
void reqsig_outgoing(struct gw_app *app, const char *method, const char *target, const char *dest,
                     const void *body, size_t len, bool sign, bool ts_unit_s,
                     struct reqsig_out *out);

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

/** Forget cached JWKS documents (after a route edit). */
void reqsig_forget(struct reqsig *rs);

#endif
