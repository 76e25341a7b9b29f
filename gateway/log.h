/*
 * log.h - JSON-lines logging on stderr.
 *
 * One object per line: ts, level, event, msg, then the ids of the log context
 * (req_id, trace_id, job_id, task_id, node_id, peer) and any extra key/value
 * pairs the call adds.  Every string goes through one escaper, so hostile
 * input (control characters, quotes, invalid UTF-8) can never break a line or
 * forge a field.
 *
 * Loop-thread only (the process has one thread).
 */
#ifndef GW_GATEWAY_LOG_H
#define GW_GATEWAY_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "compat.h"

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/*
 * Ids that every line logged on behalf of an object carries.  Requests, jobs
 * and tasks embed one; fields left NULL are omitted.  All strings borrowed.
 */
struct log_ctx {
    const char *req_id;
    const char *trace_id;
    const char *job_id;
    const char *task_id;
    const char *node_id;
    const char *peer;
};

/** "error", "warn", "info", "debug". */
const char *log_level_name(enum log_level lv);
/** Parse a level name; returns false on an unknown name. */
bool log_level_parse(const char *s, enum log_level *out);

/** Set the threshold; lines above it are dropped before formatting. */
void log_set_level(enum log_level lv);
/** True when a line at lv would be written (guard costly debug arguments). */
bool log_enabled(enum log_level lv);

/**
 * Redirect output to fd (default 2).  Used by tests to capture lines.
 */
void log_set_fd(int fd);

/**
 * Write one line.  ctx may be NULL.  After the format arguments come extra
 * fields as (const char *key, const char *value) pairs ended by a NULL key;
 * a NULL value is skipped.  Keys listed in log_is_secret_key() print "***".
 * Example:
 *   log_kv(LOG_LEVEL_INFO, &req->log, "http.request", "served",
 *          "route", "/healthz", "status", "200", NULL);
 */
void log_kv(enum log_level lv, const struct log_ctx *ctx, const char *event, const char *msg, ...);

/** printf-style message with no extra fields. */
void log_msg(enum log_level lv, const struct log_ctx *ctx, const char *event, const char *fmt, ...)
    GW_PRINTF(4, 5);

/** True for field names whose values must never reach a log (dsn, token...). */
bool log_is_secret_key(const char *key);

/**
 * Escape len bytes of s as the inside of a JSON string into out (capacity
 * cap, always NUL-terminated when cap > 0).  Control characters become \uXXXX
 * or the short escapes, '"' and '\\' are escaped, and every byte that is not
 * part of a valid UTF-8 sequence becomes \ufffd.  Output is truncated (on a
 * character boundary) when it would not fit.  Returns the bytes written,
 * without the NUL.  Pure; the unit tests and the fuzzer target it.
 */
size_t log_escape(char *out, size_t cap, const char *s, size_t len);

#endif
