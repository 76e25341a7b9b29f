/*
 * sched.h - the scheduler side of BFIA jobs (t_schedule_job, t_schedule_task).
 *
 * Event-driven: every change that can let a job move (a create, a callback,
 * a poll answer, a task/start reply, an audit decision) "kicks" the job,
 * which runs one pass: read the job and its task rows, then
 *   READY    -> /job/start to every party once, CAS READY -> RUNNING;
 *   RUNNING  -> /task/start for every task whose upstream tasks are all
 *               SUCCESS (CAS on start_sent_at, so never twice), in parallel;
 *               any task FAILED -> stop everywhere, FINISHED/failed;
 *               all SUCCESS -> FINISHED/success.
 * Poll mode polls every party's live tasks every sched.poll_ms; callback
 * mode relies on pushes and polls every sched.backstop_ms as a backstop,
 * except parties whose profile never pushes (fate-flow), which are polled
 * every sched.poll_ms whatever the mode.  A party that cannot be reached
 * makes the job wait with a visible reason and fails it after
 * sched.party_deadline_s.
 *
 * This module knows no HTTP: requests come in as function calls and their
 * outcomes go out through sched_reply_cb; the database and the peers are
 * reached through the two small interfaces below, so unit tests drive the
 * scheduler with fakes (test/unit/test_sched.c).  Loop-thread only.
 */
#ifndef GW_SCHEDULER_SCHED_H
#define GW_SCHEDULER_SCHED_H

#include <stdbool.h>

#include <stddef.h>

#include "gateway/compat.h"
#include "gateway/err.h"
#include "gateway/peer.h"
#include "scheduler/store.h"

struct cJSON;
struct dag;
struct event_base;
struct gw_cfg;
struct sched;

/* The database, as the scheduler uses it: scheduler/store.h functions
 * (store_sched_ops below) or a test's fake.  Same contracts as store.h. */
struct sched_store_ops {
    int (*load)(void *ctx, const char *job_id, long long default_timeout_s, sjob_view_cb cb,
                void *arg);
    int (*job_set)(void *ctx, const struct sjob_change *c, store_change_cb cb, void *arg);
    int (*job_wait)(void *ctx, const char *job_id, const char *reason, store_change_cb cb,
                    void *arg);
    int (*task_set)(void *ctx, const struct stask_change *c, store_change_cb cb, void *arg);
    int (*task_note)(void *ctx, const char *job_id, const char *task_id, const char *node,
                     const char *wait_reason, bool unclaim, int stale_s, store_change_cb cb,
                     void *arg);
    int (*claim)(void *ctx, const char *job_id, const char *task_id, db_rows_cb cb, void *arg);
    int (*poll_targets)(void *ctx, const char *job_id, int stale_s, db_rows_cb cb, void *arg);
    int (*live)(void *ctx, db_rows_cb cb, void *arg);
    int (*stops_pending)(void *ctx, int window_s, int limit, db_rows_cb cb, void *arg);
    int (*stop_acked)(void *ctx, const char *job_id, const char *node, store_change_cb cb,
                      void *arg);
    int (*component_roles)(void *ctx, const char *components_json, db_rows_cb cb, void *arg);
    int (*insert)(void *ctx, const struct sjob_new *n, store_change_cb cb, void *arg);
};

/** The production table: ctx is a struct store *. */
extern const struct sched_store_ops store_sched_ops;

/* Peer nodes, as the scheduler uses them (gateway/peer.h, or a fake). */
struct sched_peer_ops {
    /** peer_call(): 0 and one callback later, or an error and none. */
    int (*call)(void *ctx, const char *node, const char *method, const char *path,
                const struct cJSON *body, int retries, peer_cb cb, void *arg);
    enum peer_profile (*profile)(void *ctx, const char *node);
    /** A route exists for node (or node is this node). */
    bool (*routable)(void *ctx, const char *node);
};

struct sched_env {
    struct event_base *base;
    struct gw_cfg *const *cfg; /* read at each use: SIGHUP changes take effect */
    const struct sched_store_ops *store;
    void *store_ctx;
    const struct sched_peer_ops *peer;
    void *peer_ctx;
};

/** Copies env.  Never NULL. */
struct sched *sched_new(const struct sched_env *env);
/** Free (NULL-safe); the pool and the HTTP client must have dropped their callbacks. */
void sched_free(struct sched *s);

/** Run a pass of job_id soon (coalesced). */
void sched_kick(struct sched *s, const char *job_id);

/** Start-up: kick every live job this node schedules; done runs once. */
void sched_resume(struct sched *s, void (*done)(void *arg, int err, const char *msg), void *arg);

/** Jobs held in memory (live and retired-but-referenced): tests and metrics. */
int sched_jobs_held(const struct sched *s);

/** The poll interval the last pass chose for a live job (ms), or -1: tests. */
int sched_job_interval_ms(const struct sched *s, const char *job_id);

/*
 * Requests.  Each returns 0 and answers exactly once later through cb, or
 * returns an error with eb naming the field or the reason and never calls
 * cb (GW_EINVAL bad input, GW_EBUSY/GW_EDB the database cannot take it).
 * The reply is valid during cb only.
 */
struct sched_reply {
    int err;                 /* 0 or a gw_err (GW_EREFUSED: understood and refused) */
    int code;                /* >= 0: a BFIA code to answer as is (a scheduler's answer
                                relayed), else -1: the code of err */
    const char *msg;         /* for the caller; never a database or engine error text */
    const struct cJSON *data; /* an object, or NULL */
};
typedef void (*sched_reply_cb)(void *arg, const struct sched_reply *r);

struct sched_create_in {
    const char *job_id, *flow_id, *old_job_id;
    struct dag *dag;      /* taken, whatever the result */
    bool approval;        /* config.job_params.common.require_approval */
    const char *caller;   /* node that asked, or NULL (this node) */
};
/** Interconn job/create_all: validate, store, fan job/create out, start. */
int sched_create(struct sched *s, struct sched_create_in *in, struct gw_errbuf *eb,
                 sched_reply_cb cb, void *arg) GW_MUSTCHECK;

/** Platform job/create_all: a new job id, checks, forwarded to the job's
 *  scheduler; data carries job_id.  dag_take is taken. */
int sched_submit(struct sched *s, struct dag *dag_take, const char *flow_id,
                 const char *old_job_id, struct gw_errbuf *eb, sched_reply_cb cb,
                 void *arg) GW_MUSTCHECK;

/** Interconn job/stop_all (a task_name still stops the whole job, as FATE-Flow). */
int sched_stop(struct sched *s, const char *job_id, const char *task_name, const char *caller,
               struct gw_errbuf *eb, sched_reply_cb cb, void *arg) GW_MUSTCHECK;

/** Interconn job/audit_confirm: status READY or REJECTED. */
int sched_audit(struct sched *s, const char *job_id, const char *status, const char *caller,
                struct gw_errbuf *eb, sched_reply_cb cb, void *arg) GW_MUSTCHECK;

struct sched_callback_in {
    const char *task_id;
    const char *node;       /* the calling party */
    enum task_state status;
    const char *error_text; /* or NULL */
    const char *exit_code;  /* decimal text, or NULL */
    const char *log_tail;   /* or NULL */
};
/** Interconn task/callback: a partner pushes its task status. */
int sched_callback(struct sched *s, const struct sched_callback_in *in, struct gw_errbuf *eb,
                   sched_reply_cb cb, void *arg) GW_MUSTCHECK;

/**
 * Validation shared by create and submit: a third-party scheduler with a
 * fate-flow or kuscia party, and list or null parameters for a kuscia
 * party, are refused.  0, or GW_EINVAL with msg (cap bytes) naming the field.
 */
int sched_check_profiles(struct sched *s, const struct dag *d, char *msg, size_t cap);

#endif
