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

#include "gateway/compat.h"
#include "gateway/err.h"

struct cJSON;
struct attest;

#define ATTEST_MOUNT "/run/bfia/attest"
#define ATTEST_TOKEN_FILE ATTEST_MOUNT "/token.jwt"

/** Load the key at path, or generate and store it (0600). Blocking: start-up only. */
struct attest *attest_open(const char *node_id, const char *key_path, struct gw_errbuf *eb);
void attest_free(struct attest *a);

const char *attest_kid(const struct attest *a);
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

#endif
