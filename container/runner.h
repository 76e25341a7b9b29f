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
#include "gateway/db.h"

struct attest;
struct docker;
struct event_base;
struct gw_cfg;
struct gw_errbuf;
struct runner;

struct runner_key {
    const char *job_id;
    const char *task_id;
    const char *role;
    int role_index;
};

/* A container was created and its row may now be RUNNING. */
struct runner_launch_rec {
    const struct runner_key *k;
    const char *container_id;
    const char *container_name;
    const char *token_jti;     /* the launch token in the token file */
    const char *env_token_jti; /* T0 in the environment, or NULL */
};

/* A container ended: what the engine said. */
struct runner_outcome {
    const struct runner_key *k;
    const char *status;    /* "SUCCESS" (exit 0, no OOM, no error) or "FAILED" */
    const char *exit_code; /* decimal, or NULL when unknown */
    bool oom;
    const char *reason;    /* error text when FAILED ("" otherwise) */
    const char *logs;      /* the log tail */
};

/*
 * The task rows, as the runner uses them (scheduler/store.c implements
 * them over t_task; tests use fakes).  Same contract as store.h: 0 and one
 * callback later, or an error and none.  Rows:
 *   spec        (container_name, spec JSON) of a READY row, or none;
 *   running     summary (t_job rows, rows selected, rows moved): moved 1 when
 *               READY -> RUNNING happened, 0 when the row was stopped meanwhile;
 *   finished    summary, then (job_id, task_id, role, role_index, container_id,
 *               old status, new status);
 *   token       one row when the running row took the new token id;
 *   containers  (job_id, task_id, role, role_index, status, container_name, spec)
 *               of every row that may own a container;
 *   lost        rows (JSON [{job_id, task_id, role, role_index}]) whose
 *               container vanished: FAILED; orphans (JSON [names]) recorded.
 */
struct runner_store_ops {
    int (*spec)(void *ctx, const struct runner_key *k, db_rows_cb cb, void *arg);
    int (*running)(void *ctx, const struct runner_launch_rec *l, db_rows_cb cb, void *arg);
    int (*finished)(void *ctx, const struct runner_outcome *o, db_rows_cb cb, void *arg);
    int (*token)(void *ctx, const struct runner_key *k, const char *container_id,
                 const char *jti, db_rows_cb cb, void *arg);
    int (*containers)(void *ctx, db_rows_cb cb, void *arg);
    int (*lost)(void *ctx, const char *rows_json, db_rows_cb cb, void *arg);
    int (*orphans)(void *ctx, const char *names_json, db_rows_cb cb, void *arg);
};

/* The per-container task sockets (attestation.md 2.10), opened by whoever
 * owns the HTTP server (main.c wires gateway/server.h). */
struct runner_sock_ops {
    /** Listen on a Unix socket at path; a handle, or NULL with eb. */
    void *(*listen)(void *ctx, const char *path, struct gw_errbuf *eb);
    /** Stop listening (NULL-safe). */
    void (*unlisten)(void *ctx, void *handle);
};

/* The Docker engine, as the runner uses it (container/docker.h, or a
 * test's fake).  Same contracts as docker.h. */
struct docker_call;
struct docker_result;
struct cJSON;
typedef void (*runner_docker_cb)(void *arg, const struct docker_result *r);
struct runner_engine_ops {
    int (*create)(void *ctx, const char *name, const struct cJSON *body, runner_docker_cb cb,
                  void *arg);
    int (*inspect)(void *ctx, const char *ref, runner_docker_cb cb, void *arg);
    int (*start)(void *ctx, const char *id, runner_docker_cb cb, void *arg);
    int (*wait)(void *ctx, const char *id, const char *condition, void (*on_armed)(void *arg),
                runner_docker_cb cb, void *arg, struct docker_call **out);
    int (*logs)(void *ctx, const char *id, int tail, runner_docker_cb cb, void *arg);
    int (*kill)(void *ctx, const char *id, const char *signal, runner_docker_cb cb, void *arg);
    int (*remove)(void *ctx, const char *id, runner_docker_cb cb, void *arg);
    int (*list)(void *ctx, const char *label, runner_docker_cb cb, void *arg);
    /** No callback will run for call (NULL-safe). */
    void (*cancel)(void *ctx, struct docker_call *call);
};

/** The production table: ctx is a struct docker *. */
extern const struct runner_engine_ops runner_docker_ops;

/* Called after a task row of this node changed status (committed). */
typedef void (*runner_notify_cb)(void *ctx, const char *job_id, const char *task_id);

struct runner_env {
    struct event_base *base;
    struct gw_cfg *const *cfg;
    const struct runner_engine_ops *engine;
    void *engine_ctx;
    struct attest *attest;
    const char *attest_dir;   /* <data_dir>/attest (borrowed for the runner's life) */
    const char *install_id;   /* label org.bfia.install of this installation's containers */
    const struct runner_store_ops *store;
    void *store_ctx;
    const struct runner_sock_ops *sock; /* NULL: no task sockets */
    void *sock_ctx;
};

/** Copies env.  Never NULL. */
struct runner *runner_new(const struct runner_env *env);
void runner_free(struct runner *r);

/** Who to tell when a row changed (set once the partner side exists). */
void runner_set_notify(struct runner *r, runner_notify_cb cb, void *ctx);

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
 * Runs still in memory: those being driven plus ended ones that a call in
 * flight still holds (freed by the reaper once released).  For tests
 * (test/unit/test_runner.c): 0 after the loop turned means nothing leaked
 * a reference.
 */
int runner_runs_held(const struct runner *r);

/**
 * The current launch token of the container whose task socket is sock_path
 * (req->agent_sock), or NULL when no running container owns that socket.
 * Borrowed until the next refresh or the container's end.
 */
const char *runner_agent_token(const struct runner *r, const char *sock_path);

/** The current launch token of task k's container here, or NULL. Borrowed. */
const char *runner_token(struct runner *r, const struct runner_key *k);

#endif
