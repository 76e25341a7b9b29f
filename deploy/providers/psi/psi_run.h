/*
 * psi_run.h - the main run of ECDH-PSI between two ranks (spec
 * bfia-ecdh-psi.md §6.2), as the reference runs it with the handshake
 * disabled (BFIA mode): three concurrent flows per party,
 *
 *   MaskSelf   own items in batches of 4096: enc = key * H(item), sent as
 *              EcdhPsiCipherBatch{type "enc", batch_index k} on channel
 *              "root" (throttled by the ACK window), then one empty batch
 *              {is_last_batch, count 0} ending the stream;
 *   MaskPeer   the peer's enc batches in order: key * point, truncated to
 *              the last 12 bytes; kept for the intersection if we get the
 *              result, sent back as {type "dual.enc", batch_index k} on
 *              channel "root-0" in the order received if the peer gets it,
 *              ending with an empty dual.enc batch;
 *   RecvDual   (if we get the result) the dual.enc batches of our own items,
 *              item j of batch k being own item k * 4096 + j.
 *
 * Scalar multiplications run on a psi_pool whose workers hold
 * psi_suite_ws workspaces of the same suite.  The next own batch is hashed
 * and masked while earlier ones are in flight.
 */
#ifndef PSI_RUN_H
#define PSI_RUN_H

#include <stddef.h>
#include <stdint.h>

struct psi_items;
struct psi_link;
struct psi_pool;
struct psi_store;
struct psi_suite;

#define PSI_BATCH_SIZE 4096

/* Failure classes: also the component's exit codes. */
enum psi_fail {
    PSI_FAIL_NONE = 0,
    PSI_FAIL_CONFIG = 2,   /* a parameter or variable is wrong */
    PSI_FAIL_DATA = 3,     /* the input or output cannot be read or written */
    PSI_FAIL_PEER = 4,     /* the peer or the transport failed (timeout, bad data) */
    PSI_FAIL_INTERNAL = 5, /* memory, threads, OpenSSL */
};

/** Fill it (cleared first) with the next own items; returns how many (0 at
 * the end) or -1 with the reason in err. */
typedef long (*psi_source_cb)(void *arg, struct psi_items *it, char *err, size_t errlen);

struct psi_run_opts {
    int self_rank, peer_rank;
    int result_to_rank;   /* -1 both, else the rank that gets the result */
    size_t batch_size;    /* PSI_BATCH_SIZE */
    const char *who;      /* for the log */
};

struct psi_run_stats {
    uint64_t self_items, peer_items;
    uint64_t self_batches, peer_batches;
};

/** Run the three flows to their end.  The link must be started and
 * connected.  store receives the peer's and our dual values when we get
 * the result (NULL otherwise).  On failure the link is failed too, so the
 * caller must not psi_link_finish() it.  Returns PSI_FAIL_NONE or a class
 * with the reason in err. */
int psi_run(const struct psi_run_opts *o, const struct psi_suite *suite, struct psi_pool *pool,
            struct psi_link *link, psi_source_cb src, void *src_arg, struct psi_store *store,
            struct psi_run_stats *st, char *err, size_t errlen);

/** Pool callbacks that give each worker a workspace of the suite passed as
 * arg (psi_pool_new(n, psi_run_ws_new, psi_run_ws_free, suite)). */
void *psi_run_ws_new(void *suite, int i);
void psi_run_ws_free(void *ws);

#endif
