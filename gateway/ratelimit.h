/*
 * ratelimit.h - token buckets keyed by short strings (a task and role, a
 * node id): `rate` tokens per second, at most `burst` saved up.  A fixed
 * table; when it is full, the bucket idle longest is reused (it would have
 * refilled anyway after burst/rate seconds).  No I/O, no clock of its own:
 * the caller passes the time.
 */
#ifndef GW_GATEWAY_RATELIMIT_H
#define GW_GATEWAY_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>

struct ratelimit;

/** rate > 0 per second, burst >= 1, room for max_keys live keys. */
struct ratelimit *ratelimit_new(double rate, double burst, size_t max_keys);
void ratelimit_free(struct ratelimit *rl);

/** Take one token for key at now_ms: true if there was one. */
bool ratelimit_take(struct ratelimit *rl, const char *key, long long now_ms);

#endif
