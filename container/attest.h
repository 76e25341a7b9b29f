/*
 * attest.h - the node's signing key and per-task launch tokens
 * (spec attestation.md §2.4-2.9).
 *
 * The node key is ES256 (P-256), generated on first start and kept in a
 * 0600 PEM file under <data_dir>/keys/; its kid is the RFC 7638 thumbprint.
 * Its public half is published as a JWKS.  A launch token is minted for
 * every task container after create (when the container id and the image
 * it really runs are known) and written to a per-container directory that is
 * mounted read-only at /run/bfia/attest; config.attest.token_file names it.
 * The token binds issuer, job, task, role and index, session, component,
 * image digest, container name and id, and a digest of the
 * runtime.component.* environment.
 */
#ifndef GW_CONTAINER_ATTEST_H
#define GW_CONTAINER_ATTEST_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/compat.h"
#include "gateway/err.h"

struct cJSON;
struct attest;
struct fileio;
struct jws_key;
struct jws_keyset;

#define ATTEST_MOUNT "/run/bfia/attest"
#define ATTEST_TOKEN_FILE ATTEST_MOUNT "/token.jwt"
#define ATTEST_AGENT_SOCK "agent.sock" /* the task socket, in the same directory */

/** Load the key at path, or generate and store it (0600). Blocking: start-up only. */
struct attest *attest_open(const char *node_id, const char *key_path, struct gw_errbuf *eb);
void attest_free(struct attest *a);

/**
 * From now on (the loop runs), key files are made durable and renamed on
 * the file I/O thread (fileio.h), in order, instead of on the caller's
 * thread: a rotation never waits for the disk on the loop.  Without it
 * (start-up, bfiactl, tests) they are synchronous.
 */
void attest_set_fileio(struct attest *a, struct fileio *fio);

const char *attest_kid(const struct attest *a);
/** The active key's PEM file. */
const char *attest_key_path(const struct attest *a);
/** The kid of the key waiting to become active, or NULL. */
const char *attest_next_kid(const struct attest *a);

/**
 * Rotation, step 1: generate the next key, store it at <key_path>.next
 * (0600) and publish its public half (it verifies, it does not sign yet).
 * A pending next key is kept (0).  Writes a few hundred bytes; the fsync
 * runs on the file I/O thread when one is set.
 */
int attest_rotate_begin(struct attest *a, struct gw_errbuf *eb) GW_MUSTCHECK;

/**
 * Rotation, step 2: the next key becomes the signing key (its file renamed
 * over the old one, so the old private key is gone; with a file I/O
 * thread the rename is queued there after the new file's fsync, and a
 * failure is logged).  The old public key
 * stays published as retired (until attest_expire drops it), or is dropped
 * at once with drop_old (a compromised key).
 */
int attest_rotate_activate(struct attest *a, bool drop_old, long long now_s,
                           struct gw_errbuf *eb) GW_MUSTCHECK;

/** Publish a retired public key again (from t_attest_key after a restart). */
int attest_add_retired(struct attest *a, const char *jwk_text, long long retired_s,
                       struct gw_errbuf *eb) GW_MUSTCHECK;

/** Drop retired keys retired more than keep_s ago; returns how many. */
size_t attest_expire(struct attest *a, long long now_s, long long keep_s);

/** The active signing key (borrowed). */
const struct jws_key *attest_signing_key(const struct attest *a);
/** Every key this node's signatures may verify with (active, next, retired). */
const struct jws_keyset *attest_keyset(const struct attest *a);
/** {"keys":[...]} of the verification keys. Caller frees. */
struct cJSON *attest_jwks(const struct attest *a);
/** The public JWK as JSON text (for t_attest_key). free() it. */
char *attest_public_jwk_text(const struct attest *a);

struct attest_launch {
    const char *job_id, *task_id, *task_name, *role;
    int role_index;
    const char *component, *provider, *version;
    const char *image_ref, *image_digest;
    const char *container_name, *container_id;
    const struct cJSON *env; /* array of "K=V": runtime.component.* are digested */
    long long now;           /* seconds */
    int ttl_s;
};

/**
 * bfia.runtime_digest of spec 2.4: SHA-256 over "bfia-runtime-digest-v1" 0x00
 * and, for each runtime.component.* entry of env (an array of "K=V") sorted
 * by key bytes, u32be(len K) K u32be(len V) V; "sha256:" + hex into out.
 */
void attest_runtime_digest(const struct cJSON *env, char out[72]);

/** Mint a launch token; *jti receives its id.  Both freed by the caller. */
int attest_mint_launch(const struct attest *a, const struct attest_launch *in, char **token,
                       char **jti) GW_MUSTCHECK;

/**
 * Verify a launch token presented by a container for (job, task, role.idx).
 * Returns 0 and the token's jti (caller frees), or GW_EAUTH with eb naming
 * the verdict (E_SIG, E_BINDING, ...).
 */
int attest_verify_launch(const struct attest *a, const char *token, const char *job_id,
                         const char *task_id, const char *self_role, long long now, char **jti,
                         struct gw_errbuf *eb) GW_MUSTCHECK;

/**
 * Introspection (spec 2.10, RFC 7662): is token a presentation token this
 * node issued for audience aud, intact and unexpired?  Checks the signature
 * with this node's keys, typ, issuer, audience and times; no nonce or replay
 * check, nothing consumed.  Returns JWS_OK (0, *claims set, caller frees)
 * or the enum jws_error of the first failing check.
 */
int attest_introspect(const struct attest *a, const char *token, const char *aud, long long now,
                      struct cJSON **claims);

/**
 * Verify a launch token of this node without a binding (the exchange and
 * verify endpoints learn the task from it).  0 and the verified claims
 * (caller frees), or GW_EAUTH with eb naming the verdict.
 */
int attest_check_launch(const struct attest *a, const char *token, long long now,
                        struct cJSON **claims, struct gw_errbuf *eb) GW_MUSTCHECK;

/**
 * Mint a presentation token (bfia-present+jwt, spec 2.5) from verified
 * launch claims: aud one partner node, eat_nonce the partner's challenge,
 * ttl_s (<= 300), a new jti, bfia.launch_jti the launch token's jti.
 */
int attest_mint_present(const struct attest *a, const struct cJSON *launch, const char *aud,
                        const char *nonce, int ttl_s, long long now, char **token) GW_MUSTCHECK;

#endif
