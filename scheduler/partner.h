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
#include "scheduler/sched.h"

struct attest;
struct chan;
struct dag;
struct docker;
struct event_base;
struct gw_cfg;
struct partner;
struct pollcache;
struct runner;
struct store;

struct partner_env {
    struct event_base *base;
    struct gw_cfg *const *cfg;
    struct store *store;
    struct runner *runner;
    struct docker *docker;       /* live logs of running containers */
    struct attest *attest;       /* container callbacks' launch tokens */
    struct pollcache *pollcache; /* forgotten on every local change */
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

/** get_log_line / get_log: data {num} or {data: lines start..start+length}. */
int partner_task_log(struct partner *p, const char *task_id, bool count_only, long long start,
                     long long length, struct gw_errbuf *eb, sched_reply_cb cb,
                     void *arg) GW_MUSTCHECK;

#endif
