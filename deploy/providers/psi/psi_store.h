/*
 * psi_store.h - the second-stage values a result-receiving party keeps
 * until the intersection: the peer's (12 bytes each, from MaskPeer) and
 * its own (index + 12 bytes, from the dual.enc batches).
 *
 * Values are hash-partitioned into buckets (64, as the reference's
 * HashBucketEcPointStore).  While a side holds less than its share of the
 * memory limit the buckets stay in memory; above it they are appended to
 * bucket files in a private spill directory and the memory is released.
 * The intersection then loads one bucket at a time: peak memory is about
 * the limit plus one peer bucket's hash table plus the result bitmap.
 *
 * Threads: psi_store_add_peer() from one thread and psi_store_add_self()
 * from one other thread may run at the same time; psi_store_intersect()
 * after both are done.
 */
#ifndef PSI_STORE_H
#define PSI_STORE_H

#include <stddef.h>
#include <stdint.h>

struct psi_store;

/** A store that spills under base_dir (a directory that exists; the spill
 * directory "psi-spill.XXXXXX" inside it is made on the first spill and
 * removed by psi_store_free()) once a side exceeds mem_limit / 2 bytes.
 * mem_limit 0 spills every batch (tests).  Returns NULL on a bad argument. */
struct psi_store *psi_store_new(const char *base_dir, size_t mem_limit);

/** NULL-safe: removes the spill files and directory. */
void psi_store_free(struct psi_store *s);

/** Keep n peer values (12 bytes each, consecutive at v).  Returns 0, or -1
 * with text in psi_store_error() (I/O). */
int psi_store_add_peer(struct psi_store *s, const unsigned char *v, size_t n);

/** Keep n own values for own items first, first + 1, ...  Returns 0 or -1. */
int psi_store_add_self(struct psi_store *s, uint64_t first, const unsigned char *v, size_t n);

/** Set bit i of bitmap ((nself + 7) / 8 bytes, zeroed by the caller) for
 * every own item i whose value is among the peer's, and count them in
 * *matches.  Own indices must be < nself.  Returns 0 or -1. */
int psi_store_intersect(struct psi_store *s, unsigned char *bitmap, uint64_t nself,
                        uint64_t *matches);

/** Bytes written to spill files so far (both sides). */
uint64_t psi_store_spilled(const struct psi_store *s);

/** The last error's text. */
const char *psi_store_error(const struct psi_store *s);

#endif
