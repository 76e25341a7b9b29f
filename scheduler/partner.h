/*
 * partner.h - the partner (participant) side of BFIA jobs: t_job and
 * t_task of this node, the task containers they own, and the status pushes
 * to each job's scheduler.
 *
 *   job/create  one t_job row per local role (a repeat identical to the
 *               stored job is a success, anything else is refused)
 *   job/start   t_job READY -> RUNNING
 *   task/start  t_task rows READY with their launch spec (image digest,
 *               BFIA environment, limits); the runner launches them
 *   job/stop    every live task FAILED ("stopped") and the job FINISHED, or
 *               one task and its downstream tasks
 *   callbacks   a container reports its status (with its launch token: at
 *               once; without: held until the exit code)
 *   pushes      in callback mode, every change of a task's aggregate status
 *               goes to the scheduler, again until it is acknowledged
 *
 * No HTTP here: requests answer through sched_reply_cb (scheduler/sched.h)
 * with the same contract as the scheduler's.  Every t_task status change
 * is store_task_set (scheduler/store.h).  Loop-thread only.
 */
#ifndef GW_SCHEDULER_PARTNER_H
#define GW_SCHEDULER_PARTNER_H

#include <stdbool.h>

#include "gateway/compat.h"
#include "gateway/err.h"
#include "gateway/db.h"
#include "scheduler/sched.h"
#include "scheduler/state.h"

struct attest;
struct chan;
struct dag;
struct event_base;
struct gw_cfg;
struct partner;
struct pollcache;
struct outputs;
struct runner;
struct store;

/* The database, as the partner side uses it: scheduler/store.h functions
 * (store_partner_ops) or a test's fake.  Same contracts as store.h. */
struct partner_store_ops {
    int (*job_create)(void *ctx, const struct job_new *n, db_rows_cb cb, void *arg);
    int (*job_start)(void *ctx, const char *job_id, const char *by, db_rows_cb cb, void *arg);
    int (*task_context)(void *ctx, const char *job_id, const char *task_name, db_rows_cb cb,
                        void *arg);
    int (*task_insert)(void *ctx, const char *job_id, const char *task_id, const char *task_name,
                       const char *component, const char *provider, const char *version,
                       const char *rows_json, db_rows_cb cb, void *arg);
    int (*task_set)(void *ctx, const struct task_change *c, db_rows_cb cb, void *arg);
    int (*task_claim)(void *ctx, const char *task_id, const char *role, int role_index,
                      enum task_state status, db_rows_cb cb, void *arg);
    int (*task_logs)(void *ctx, const char *task_id, db_rows_cb cb, void *arg);
    int (*push_state)(void *ctx, const char *job_id, const char *task_id, db_rows_cb cb,
                      void *arg);
    int (*push_record)(void *ctx, const char *job_id, const char *task_id,
                       const char *acked_status, const char *error, store_change_cb cb,
                       void *arg);
    int (*push_pending)(void *ctx, int window_s, int limit, db_rows_cb cb, void *arg);
};

/** The production table: ctx is a struct store *. */
extern const struct partner_store_ops store_partner_ops;

/* The task containers, as the partner side uses them (container/runner.h,
 * or a test's fake). */
struct runner_key;
struct partner_task_ops {
    void (*launch)(void *ctx, const struct runner_key *k);
    void (*kill)(void *ctx, const struct runner_key *k, const char *container_id);
    /* the container's log (text), or an error: docker_container_logs */
    int (*logs)(void *ctx, const char *container_id, int tail,
                void (*cb)(void *arg, int err, const char *text, size_t len), void *arg);
};

struct partner_env {
    struct event_base *base;
    struct gw_cfg *const *cfg;
    const struct partner_store_ops *store;
    void *store_ctx;
    const struct partner_task_ops *tasks;
    void *tasks_ctx;
    struct attest *attest;       /* container callbacks' launch tokens */
    struct pollcache *pollcache; /* forgotten on every local change (may be NULL) */
    struct outputs *outputs;     /* task outputs registered as datasets (may be NULL) */
    struct chan *chan;           /* the transport: each task's capability (config.token) */
    const struct sched_peer_ops *peer; /* pushes to schedulers */
    void *peer_ctx;
    const char *storage_dir;     /* absolute: file:// datasets and outputs */
};

/** Copies env.  Never NULL. */
struct partner *partner_new(const struct partner_env *env);
void partner_free(struct partner *p);

/** The push sweep (callback mode): start once the node serves, stop at exit. */
void partner_start(struct partner *p);
void partner_stop(struct partner *p);

/** A local t_task row changed (committed): forget its poll answers and
 *  push the task's aggregate status to the scheduler in callback mode. */
void partner_task_changed(struct partner *p, const char *job_id, const char *task_id);

struct partner_create_in {
    const char *job_id, *flow_id;
    const char *scheduler; /* the job's scheduler as the caller says, or NULL (initiator) */
    struct dag *dag;       /* taken, whatever the result */
    const char *caller;
};
int partner_job_create(struct partner *p, struct partner_create_in *in, struct gw_errbuf *eb,
                       sched_reply_cb cb, void *arg) GW_MUSTCHECK;

int partner_job_start(struct partner *p, const char *job_id, const char *caller,
                      struct gw_errbuf *eb, sched_reply_cb cb, void *arg) GW_MUSTCHECK;

int partner_task_start(struct partner *p, const char *job_id, const char *task_id,
                       const char *task_name, struct gw_errbuf *eb, sched_reply_cb cb,
                       void *arg) GW_MUSTCHECK;

/** job/stop: task_name NULL stops the whole job here. */
int partner_job_stop(struct partner *p, const char *job_id, const char *task_name,
                     const char *who, struct gw_errbuf *eb, sched_reply_cb cb,
                     void *arg) GW_MUSTCHECK;

/** Kuscia's task/stop {task_id}. */
int partner_task_stop(struct partner *p, const char *task_id, const char *who,
                      struct gw_errbuf *eb, sched_reply_cb cb, void *arg) GW_MUSTCHECK;

/* Stop every live task of job_id on this node (as job/stop without
 * task_name); done(arg, err, msg, tasks stopped) runs later; non-zero
 * return: not run. */
typedef void (*partner_stopped_cb)(void *arg, int err, const char *msg, int stopped);
int partner_stop_local(struct partner *p, const char *job_id, const char *who,
                       partner_stopped_cb done, void *arg) GW_MUSTCHECK;

struct partner_callback_in {
    const char *task_id;
    const char *role;      /* "" any */
    int role_index;        /* < 0 any */
    enum task_state status;
    const char *token;     /* the launch token from Authorization: Bearer, or NULL */
};
int partner_container_callback(struct partner *p, const struct partner_callback_in *in,
                               struct gw_errbuf *eb, sched_reply_cb cb, void *arg) GW_MUSTCHECK;

/**
 * This node's resource policy for (role, idx) of a job's config (pure):
 * job_params.<role>.<idx>.resources within the task.* bounds, -1 or absent
 * for the default.  0 with the values to launch with, or GW_EINVAL with eb
 * naming the field.
 */
struct cJSON;
int partner_resources(const struct gw_cfg *cfg, const struct cJSON *config, const char *role,
                      int idx, double *nano_cpus, double *mem_bytes,
                      struct gw_errbuf *eb) GW_MUSTCHECK;

/** get_log_line / get_log: data {num} or {data: lines start..start+length}. */
int partner_task_log(struct partner *p, const char *task_id, bool count_only, long long start,
                     long long length, struct gw_errbuf *eb, sched_reply_cb cb,
                     void *arg) GW_MUSTCHECK;

#endif
