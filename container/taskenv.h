/*
 * taskenv.h - the BFIA container environment contract (pure).
 *
 * Builds the system.* / config.* / runtime.component.* variables of one task
 * container exactly as spec bfia-control-layer.md §6.2-6.3 names them and as
 * FATE-Flow formats them, so FATE and UnionPay component images run
 * unchanged:
 *   - runtime.component.parameter.<p>, .input.<n>, .output.<n>: scalars as
 *     Python str() writes them ("True", "-1", "0.0001"), objects and lists as
 *     Python json.dumps text (", " and ": " separators, ASCII-only escapes);
 *   - addresses as {"name": ..., "namespace": ...} JSON text;
 *   - a NULL value (FF's trace_id) is left out entirely.
 * No I/O: the runner passes the result to the Docker create call.
 */
#ifndef GW_CONTAINER_TASKENV_H
#define GW_CONTAINER_TASKENV_H

#include <stddef.h>

#include "gateway/compat.h"
#include "gateway/err.h"

struct cJSON;

struct taskenv_in {
    const char *job_id;
    const char *task_id;
    const char *component;      /* runtime.component.name */
    const char *self_role;      /* "guest" */
    int self_index;             /* 0 -> config.self_role "guest.0" */
    const struct cJSON *nodes;  /* task parties: {"guest":["JG..."],"host":["JG..."]} */
    const struct cJSON *params; /* component parameters: {"name": value} */
    const struct cJSON *inputs; /* {"<inputData.name>": {"namespace":..,"name":..}} */
    const struct cJSON *outputs; /* {"<outputData.name>": {"namespace":..,"name":..}} */
    const char *storage;        /* system.storage, e.g. file:///data/storage */
    const char *callback;       /* full URL ending in /v1/platform/schedule/task/callback */
    const char *transport;      /* system.transport host:port (may be NULL: omitted) */
    const char *log_path;       /* config.log.path */
    const char *session_id;     /* NULL -> "session_" + job_id */
    const char *token;          /* config.token; NULL -> session id (FATE-Flow's value) */
    const char *trace_id;       /* NULL -> omitted, as FATE-Flow does */
};

/** One environment entry, "KEY=VALUE"; the list is NULL-terminated. */
struct taskenv {
    char **vars;
    size_t n;
};

/**
 * Build the environment.  Returns 0, or GW_EINVAL with eb naming what is
 * missing or malformed (a node list that is not an array of strings, an
 * address without namespace/name...).  Free with taskenv_cleanup().
 */
int taskenv_build(const struct taskenv_in *in, struct taskenv *out, struct gw_errbuf *eb) GW_MUSTCHECK;

/** Append one "KEY=VALUE" (copied). */
void taskenv_add(struct taskenv *env, const char *key, const char *value);

/** Value of KEY in env, or NULL (for tests and the token digest). */
const char *taskenv_get(const struct taskenv *env, const char *key);

void taskenv_cleanup(struct taskenv *env);

/** Python str() of a JSON scalar, json.dumps of containers.  free() the result. */
char *taskenv_pystr(const struct cJSON *v);

/** Python json.dumps(v) with default separators and ensure_ascii.  free() the result. */
char *taskenv_pyjson(const struct cJSON *v);

#endif
