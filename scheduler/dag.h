/*
 * dag.h - the BFIA job DSL (spec bfia-control-layer.md §5): parse and
 * validate {dag, config}, answer which node plays which role in which task,
 * and derive each task's parameters, inputs and outputs.  Pure (no I/O):
 * unit-tested directly.
 *
 * Accepted shapes:
 *   - standard/FATE-Flow components {name, componentName, provider, version,
 *     input:[{key:"<up>.<out>", type}], output:[{key, type}]};
 *   - Kuscia initiators' components {name, code, module_name, version, ...}:
 *     module_name -> componentName, code -> provider (kuscia-wire.md);
 *   - dataset references as task_params.<role>.<idx>.<name>.dataset_id
 *     "<namespace>#<name>" or {name, namespace} directly (both MUST-C).
 * Index keys "0" and "0|1" are both understood.
 */
#ifndef GW_SCHEDULER_DAG_H
#define GW_SCHEDULER_DAG_H

#include <stdbool.h>

#include "gateway/compat.h"
#include "gateway/err.h"

struct cJSON;
struct dag;

struct dag_task {
    const char *name;      /* runtime name, the task_name */
    const char *component; /* componentName */
    const char *provider;
    const char *version;
    int *ups;              /* indexes of upstream tasks */
    int n_ups;
};

/**
 * Parse body.dag and body.config (copied).  Validates types, unique names,
 * references to existing upstream tasks, no cycles, initiator and role map
 * with valid node ids.  NULL with eb naming the field on error.
 */
struct dag *dag_parse(const struct cJSON *body, struct gw_errbuf *eb);
void dag_free(struct dag *d);

/** The normalised dag (componentName/provider filled for Kuscia shapes). */
const struct cJSON *dag_json(const struct dag *d);
const struct cJSON *dag_config(const struct dag *d);
const char *dag_initiator(const struct dag *d);
/** "poll" (default) or "callback". */
const char *dag_sync_type(const struct dag *d);
/** config.job_params.common.scheduler when set (third-party scheduler), else NULL. */
const char *dag_scheduler(const struct dag *d);

int dag_ntasks(const struct dag *d);
const struct dag_task *dag_task(const struct dag *d, int i);
int dag_find(const struct dag *d, const char *name);

/** Roles in whose config.role list node appears: ["guest", ...]. */
struct cJSON *dag_local_roles(const struct dag *d, const char *node);
/** Every distinct node of config.role, in order of first appearance. */
struct cJSON *dag_parties(const struct dag *d);

/** Positions of node in config.role[role] (up to cap); returns the count. */
int dag_role_indexes(const struct dag *d, const char *role, const char *node, int *idx, int cap);

/** True when the description's roleList names role (lenient: string or array). */
bool dag_role_runs(const struct cJSON *desc, const char *role);

/** {role: [nodes]} for the roles of desc.roleList that config.role fills. */
struct cJSON *dag_task_nodes(const struct dag *d, const struct cJSON *desc);

/** The entry of a {"0": .., "0|1": ..} map that applies to idx, or NULL. */
const struct cJSON *dag_index_entry(const struct cJSON *map, int idx);

/**
 * Parameters of task ti for (role, idx): task_params.common.<name> overlaid
 * with task_params.<role>.<idx>.<name>, without dataset references.
 */
struct cJSON *dag_task_params(const struct dag *d, int ti, const char *role, int idx);

/**
 * Input and output addresses of task ti for (role, idx), keyed by the
 * description's inputData/outputData names.  Outputs are
 * {namespace: job_id, name: "<task>.<key>.<role>.<idx>"}; an input
 * "<up>.<key>" points at the upstream's output of the same role and index;
 * a first task's input comes from its dataset reference.
 */
int dag_task_io(const struct dag *d, int ti, const struct cJSON *desc, const char *role, int idx,
                const char *job_id, struct cJSON **in, struct cJSON **out,
                struct gw_errbuf *eb) GW_MUSTCHECK;

#endif
