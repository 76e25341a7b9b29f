/*
 * runner.h - the task runner: one container per t_task row.
 *
 * The partner API writes a t_task row (status READY) whose spec column holds
 * everything the launch needs: the pinned image digest, the environment
 * (built by taskenv), the limits.  runner_launch() then drives the row:
 *
 *   READY --create(name {role}-{node}-{task_id}-{attempt}, labels)--+
 *         --check image id-- CAS READY->RUNNING --wait armed-- start  |
 *   RUNNING --wait returns-- inspect (exit code, OOM) + log tail --   |
 *         CAS RUNNING->SUCCESS/FAILED -- remove container            |
 *
 * The container name is deterministic, so a repeated launch (a repeated
 * task/start, or a crash between create and the CAS) meets the engine's 409
 * and adopts the existing container instead of starting a second one.  The
 * exit code decides the outcome; a SUCCESS claimed by an unauthenticated
 * callback is held in claimed_status until the exit code confirms it.
 *
 * runner_reconcile() runs at start-up before the node serves: containers
 * carrying this node's labels are matched with live t_task rows (re-armed,
 * finalised with their real exit code, started, or recorded as lost), and
 * orphans are stopped and recorded in t_event.
 *
 * Loop-thread only.
 */
#ifndef GW_CONTAINER_RUNNER_H
#define GW_CONTAINER_RUNNER_H

#include <stdbool.h>

#include "gateway/compat.h"

struct gw_app;
struct runner;

struct runner_key {
    const char *job_id;
    const char *task_id;
    const char *role;
    int role_index;
};

/* Called after a t_task row of this node changed status (committed). */
typedef void (*runner_notify_cb)(struct gw_app *app, const char *job_id, const char *task_id);

struct runner *runner_new(struct gw_app *app, runner_notify_cb notify);
void runner_free(struct runner *r);

/** Drive the row to its end (no-op when it is already being driven). */
void runner_launch(struct runner *r, const struct runner_key *k);

/**
 * The row was set FAILED by a stop: kill its container (container_id may be
 * NULL when unknown; then the name is used).  Logs are still captured.
 */
void runner_kill(struct runner *r, const struct runner_key *k, const char *container);

/** Start-up reconciliation; done runs once (err 0 or a gw_err with msg). */
void runner_reconcile(struct runner *r, void (*done)(void *arg, int err, const char *msg),
                      void *arg);

/** Container name for a task: {role}-{node}-{task_id}-{attempt}, sanitised. */
char *runner_container_name(const char *role, const char *node, const char *task_id, int attempt);

/** Runs being driven right now (metrics, tests). */
int runner_active(const struct runner *r);

/**
 * The current launch token of the container whose task socket is sock_path
 * (req->agent_sock), or NULL when no running container owns that socket.
 * Borrowed until the next refresh or the container's end.
 */
const char *runner_agent_token(const struct runner *r, const char *sock_path);

/** The current launch token of task k's container here, or NULL. Borrowed. */
const char *runner_token(struct runner *r, const struct runner_key *k);

#endif
