/*
 * keys.h - the node key's life cycle on the loop: recorded in
 * t_attest_key, rotated on request, retired keys kept published for
 * verification until every token they signed has expired.
 *
 * Rotation (spec attestation.md 2.8): the next key is generated and
 * published in the JWKS at once, and starts signing attest.key_publish_s
 * later (default 330 s: longer than the 300 s a peer may cache our JWKS), so
 * no peer ever sees a signature by a key it has not had the chance to
 * fetch.  The old key is then retired: its private half is gone, its public
 * half stays in the JWKS for KEYS_KEEP_S (launch token lifetime 3600 s +
 * leeway 60 s + JWKS max-age 300 s, rounded up to 2 h), so running tasks'
 * tokens keep verifying.  "now" is for a compromised key: the new key signs
 * at once and the old one is withdrawn from the JWKS immediately.
 */
#ifndef GW_CONTAINER_KEYS_H
#define GW_CONTAINER_KEYS_H

#include <stdbool.h>

#include "gateway/compat.h"
#include "gateway/err.h"

struct gw_app;
struct keys;

#define KEYS_KEEP_S 7200

struct keys *keys_new(struct gw_app *app);
void keys_free(struct keys *k);

/** Record the active key and republish retired ones (after the DB is up). */
void keys_startup(struct keys *k);

/**
 * Start a rotation (now: activate at once and withdraw the old key).
 * Returns 0, or an error with eb.  *activate_in_s says when the new key
 * starts signing.
 */
int keys_rotate(struct keys *k, bool now, int *activate_in_s, struct gw_errbuf *eb) GW_MUSTCHECK;

#endif
