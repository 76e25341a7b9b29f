/*
 * compat.h - compiler attributes and the abort-on-OOM allocators.
 *
 * Every module includes this first.  The allocators never return NULL: a
 * gateway that cannot allocate a few bytes cannot answer anyone correctly, so
 * it logs and aborts (the Redis/h2o choice) instead of threading ENOMEM
 * through every call site.
 */
#ifndef GW_GATEWAY_COMPAT_H
#define GW_GATEWAY_COMPAT_H

#include <stddef.h>

#define GW_MUSTCHECK __attribute__((warn_unused_result))
#define GW_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define GW_NORETURN __attribute__((noreturn))
#define GW_UNUSED __attribute__((unused))

#define GW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/** malloc that aborts on failure. Result owned by the caller (free()). */
void *gw_xmalloc(size_t n);
/** calloc that aborts on failure. */
void *gw_xcalloc(size_t nmemb, size_t size);
/** realloc that aborts on failure. */
void *gw_xrealloc(void *p, size_t n);
/** strdup that aborts on failure; NULL in gives NULL out. */
char *gw_xstrdup(const char *s);
/** strndup that aborts on failure. */
char *gw_xstrndup(const char *s, size_t n);
/** asprintf that aborts on failure; the result is freed with free(). */
char *gw_xasprintf(const char *fmt, ...) GW_PRINTF(1, 2);

/** Monotonic clock in milliseconds (deadlines, durations). */
long long gw_now_mono_ms(void);
/** Monotonic clock in microseconds (latency histograms). */
long long gw_now_mono_us(void);
/** Wall clock in milliseconds since the epoch (logs, database rows). */
long long gw_now_wall_ms(void);

#endif
