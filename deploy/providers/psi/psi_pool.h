/*
 * psi_pool.h - a fixed pool of worker threads for the scalar
 * multiplications.  Several threads may submit jobs at once (the party's
 * own batches and the peer's): chunks of all submitted jobs are served in
 * submission order, so every core stays busy while either flow has work.
 *
 * Each worker owns a private state made by init_cb when the pool is
 * created (OpenSSL contexts: no locking on the hot path).
 */
#ifndef PSI_POOL_H
#define PSI_POOL_H

#include <stddef.h>

/** Make the private state of worker i; NULL fails the pool creation. */
typedef void *(*psi_pool_init_cb)(void *arg, int i);
/** Free a worker state. */
typedef void (*psi_pool_fini_cb)(void *state);
/** Process items [begin, end) of job with the worker's state; non-zero
 * marks the job failed (the first non-zero value is its result). */
typedef int (*psi_pool_task_cb)(void *job, void *state, size_t begin, size_t end);

struct psi_pool;

/** nthreads workers (1..256).  Returns NULL on a bad argument or when a
 * state or thread cannot be made.  The caller owns the pool. */
struct psi_pool *psi_pool_new(int nthreads, psi_pool_init_cb init, psi_pool_fini_cb fini, void *arg);

/** Run fn over [0, n) in chunks of grain items, blocking the caller until
 * every chunk finished.  Thread-safe.  Returns 0 or the first non-zero
 * chunk result (the remaining chunks are skipped). */
int psi_pool_run(struct psi_pool *p, psi_pool_task_cb fn, void *job, size_t n, size_t grain);

/** Number of workers. */
int psi_pool_size(const struct psi_pool *p);

/** Stop and join the workers, free their states.  No job may be running.
 * NULL-safe. */
void psi_pool_free(struct psi_pool *p);

/** Cores this process may use: the CPU affinity set, capped by a cgroup v2
 * cpu.max or v1 cfs quota when one is set (a container's CPU limit). */
int psi_pool_cpus(void);

#endif
