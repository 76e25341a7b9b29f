/*
 * json.h - typed, bounded access to cJSON documents.
 *
 * Request bodies are parsed with json_parse() (length-bounded, no trailing
 * garbage).  Getters return 0 or GW_EINVAL with gw_errbuf naming the field
 * and what was wrong with it ("field 'job_id': expected a string, got a
 * number"), so handlers never hand-write such messages.  Pointers they return
 * are borrowed from the document.
 */
#ifndef GW_GATEWAY_JSON_H
#define GW_GATEWAY_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "compat.h"
#include "err.h"

struct cJSON;

/** Route cJSON's allocations through gw_xmalloc; call once at start-up. */
void json_init(void);

/**
 * Parse len bytes (need not be NUL-terminated).  Returns the root (owned by
 * the caller, cJSON_Delete) or NULL with eb describing the position.  Depth is
 * limited by cJSON (CJSON_NESTING_LIMIT).
 */
struct cJSON *json_parse(const char *buf, size_t len, struct gw_errbuf *eb);

/** Name of a node's JSON type ("string", "number", "object", ...). */
const char *json_type_name(const struct cJSON *item);

/*
 * Getters.  obj must be an object (or NULL, treated as empty).  When the key
 * is absent: required -> GW_EINVAL; optional -> 0 and *out untouched.  JSON
 * null counts as absent.  Strings longer than maxlen (0 = no limit) are
 * GW_EINVAL.
 */
int json_get_str(const struct cJSON *obj, const char *key, bool required, size_t maxlen,
                 const char **out, struct gw_errbuf *eb) GW_MUSTCHECK;
/* Integers accept JSON numbers holding an integral value in range and,
 * leniently, decimal strings ("10"), because real peers send both. */
int json_get_int(const struct cJSON *obj, const char *key, bool required, long long min,
                 long long max, long long *out, struct gw_errbuf *eb) GW_MUSTCHECK;
/* Booleans accept true/false and the strings "true"/"false" (official BFIA
 * examples write booleans as strings). */
int json_get_bool(const struct cJSON *obj, const char *key, bool required, bool *out,
                  struct gw_errbuf *eb) GW_MUSTCHECK;
int json_get_obj(const struct cJSON *obj, const char *key, bool required,
                 const struct cJSON **out, struct gw_errbuf *eb) GW_MUSTCHECK;
int json_get_arr(const struct cJSON *obj, const char *key, bool required,
                 const struct cJSON **out, struct gw_errbuf *eb) GW_MUSTCHECK;

/**
 * An identifier (node, job, task, provider...): a string of 1..maxlen bytes
 * from [A-Za-z0-9_.:#-] that does not start with '.' (so it can never name a
 * path outside a directory or smuggle control characters into a log).
 */
int json_get_id(const struct cJSON *obj, const char *key, bool required, size_t maxlen,
                const char **out, struct gw_errbuf *eb) GW_MUSTCHECK;

/** True when s is a valid identifier in the sense of json_get_id(). */
bool json_is_id(const char *s, size_t maxlen);

/** Add a string member, turning NULL into "" (peers reject JSON null). */
void json_add_str(struct cJSON *obj, const char *key, const char *val);
/** Add an integer member. */
void json_add_int(struct cJSON *obj, const char *key, long long val);

/** Print compactly; result freed with cJSON_free().  Never NULL. */
char *json_print(const struct cJSON *item);

/**
 * A NUL-terminated copy of the n bytes at s in which every well-formed
 * UTF-8 sequence is kept and every NUL byte, stray continuation byte,
 * truncated, overlong or surrogate sequence becomes U+FFFD: text any
 * PostgreSQL text column and any JSON encoder takes.  free() the result.
 */
char *json_utf8_clean(const char *s, size_t n);

#endif
