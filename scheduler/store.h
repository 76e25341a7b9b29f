/*
 * store.h - every SQL statement of the scheduler, the partner side and the
 * task runner: the one place that reads and writes t_schedule_job,
 * t_schedule_task, t_job, t_task, t_task_push and t_event.
 *
 * Status changes.  Each of the four entities has exactly one function that
 * moves its status: store_sjob_set (t_schedule_job), store_stask_set
 * (t_schedule_task), store_job_set (t_job) and store_task_set (t_task).
 * Each is one statement, hence one transaction: a compare-and-set whose
 * allowed "from" states come from scheduler/state.c, the t_event row of
 * every row it moved (cascades included: a job that finishes fails its live
 * tasks, each with its own event), and, on commit, one log line and one
 * metric per moved row.  Nothing else in the code base writes a status or
 * an event of these entities.
 *
 * Asynchronous contract (db.h): a function returns 0 and calls its callback
 * exactly once later, or returns an error (GW_EBUSY: the database wait queue
 * is full; GW_EDB: no connection) and never calls it.  Result views are
 * valid during the callback only.  Loop-thread only.
 */
#ifndef GW_SCHEDULER_STORE_H
#define GW_SCHEDULER_STORE_H

#include <stdbool.h>

#include "gateway/compat.h"
#include "scheduler/state.h"

struct db_pool;
struct metrics;
struct store;

/** node_id and the pools are borrowed for the store's life. */
struct store *store_new(struct db_pool *db, struct metrics *m, const char *node_id);
void store_free(struct store *st);

/* ---- results ------------------------------------------------------------ */

/* A write.  err 0 or a gw_err (msg: the database's text, for logs only:
 * never echoed to a peer).  changed: the statement moved something. */
struct store_change {
    int err;
    const char *msg;
    bool changed;
    const char *old;     /* status before (NULL when no row) */
    const char *job_id;  /* the job of the row (lookups by task id) */
    const char *parties; /* JSON array of the job's parties, when the call returns them */
    long long count;     /* rows concerned (meaning per call) */
};
typedef void (*store_change_cb)(void *arg, const struct store_change *r);

/* A list of text tuples: value (row, col) is v[row * cols + col], NULL for
 * SQL NULL. */
struct store_rows {
    int err;
    const char *msg;
    int n, cols;
    const char *const *v;
};
typedef void (*store_rows_cb)(void *arg, const struct store_rows *r);

static inline const char *store_rows_get(const struct store_rows *r, int row, int col)
{
    return r->v[row * r->cols + col];
}

/* ---- scheduler side: t_schedule_job, t_schedule_task ----------------------- */

/* One task name of a job as the scheduler sees it: its status aggregated
 * over every party (bfia_task_agg), whether a party row still waits for
 * task/start, the upstream task names and the first failure. */
struct sjob_task_view {
    const char *name;
    const char *task_id;
    enum task_state status;
    bool sendable;          /* a READY row whose task/start was not sent */
    const struct cJSON *deps; /* array of task names */
    const char *fail_node;  /* first FAILED party, or NULL */
    const char *fail_error;
};

struct sjob_view {
    int err;
    const char *msg;
    bool found;
    enum job_state status;
    bool poll_mode;              /* sync_type poll */
    const struct cJSON *parties; /* array of node ids */
    long long timed_out_s;       /* > 0: RUNNING past its timeout of that many seconds */
    int ntasks;
    const struct sjob_task_view *tasks;
};
typedef void (*sjob_view_cb)(void *arg, const struct sjob_view *v);

/** The scheduler's view of job_id (default_timeout_s: sched.job_timeout_s). */
int store_sjob_load(struct store *st, const char *job_id, long long default_timeout_s,
                    sjob_view_cb cb, void *arg) GW_MUSTCHECK;

struct sjob_change {
    const char *job_id;
    enum job_state to;
    enum job_outcome outcome; /* for FINISHED */
    enum state_channel channel;
    const char *reason;       /* t_event reason; error_text of a FINISHED/REJECTED job */
    const char *task_error;   /* error_text of the tasks it fails (NULL: "stopped: job
                                 <outcome>: <reason>") */
};

/**
 * Move a job (CAS from job_from_set(to)).  FINISHED and REJECTED also fail
 * every live task row of the job (error "stopped: ..." unless one is set).
 * r->changed, r->old and r->parties describe the job row.
 */
int store_sjob_set(struct store *st, const struct sjob_change *c, store_change_cb cb,
                   void *arg) GW_MUSTCHECK;

/** The job's wait reason ("" clears it).  cb may be NULL. */
int store_sjob_wait(struct store *st, const char *job_id, const char *reason, store_change_cb cb,
                    void *arg) GW_MUSTCHECK;

struct stask_change {
    const char *job_id;    /* NULL: found by task_id and node (a partner's callback) */
    const char *task_id;
    const char *node;
    enum task_state to;
    enum state_channel channel;
    const char *reason;    /* t_event reason */
    const char *error_text; /* NULL keeps the row's */
    const char *exit_code;  /* decimal text for SUCCESS/FAILED, or NULL */
    const char *log_tail;   /* NULL keeps the row's */
    bool job_running;       /* only while the job is RUNNING */
    bool refresh_terminal;  /* a repeat of the current terminal status may refresh its details */
};

/**
 * Move one party row of a task (CAS from task_from_set(to)).  r->old is the
 * status before (NULL: no such row), r->job_id the job, r->changed whether
 * the status moved.
 */
int store_stask_set(struct store *st, const struct stask_change *c, store_change_cb cb,
                    void *arg) GW_MUSTCHECK;

/**
 * Annotate a live party row without moving it: wait reason (NULL keeps),
 * and with unclaim the task/start claim is dropped so the next pass sends it
 * again (only while READY; with stale_s > 0 only when the claim is older
 * than that).  r->changed: the claim was dropped.  cb may be NULL.
 */
int store_stask_note(struct store *st, const char *job_id, const char *task_id, const char *node,
                     const char *wait_reason, bool unclaim, int stale_s, store_change_cb cb,
                     void *arg) GW_MUSTCHECK;

/** Claim task/start of a task: rows (node_id) of the READY parties not yet sent. */
int store_stask_claim(struct store *st, const char *job_id, const char *task_id,
                      store_rows_cb cb, void *arg) GW_MUSTCHECK;

/** Rows to poll: (task_id, node_id, resend_ok 't'/'f', first role) of live party rows
 *  (RUNNING, or READY with task/start sent); resend_ok when sent over stale_s ago. */
int store_stask_poll_targets(struct store *st, const char *job_id, int stale_s, store_rows_cb cb,
                             void *arg) GW_MUSTCHECK;

/** Jobs this node schedules that are READY or RUNNING: rows (job_id). */
int store_sjob_live(struct store *st, store_rows_cb cb, void *arg) GW_MUSTCHECK;

/** Ended jobs (last day, at most limit) with parties that have not
 *  acknowledged job/stop: rows (job_id, JSON array of those parties). */
int store_sjob_stops_pending(struct store *st, int limit, store_rows_cb cb,
                             void *arg) GW_MUSTCHECK;

/** Record that node acknowledged job/stop of job_id.  cb may be NULL. */
int store_sjob_stop_acked(struct store *st, const char *job_id, const char *node,
                          store_change_cb cb, void *arg) GW_MUSTCHECK;

/** roleList (JSON text or NULL) of each component of components_json (a JSON
 *  array of {componentName, provider, version}), in order: rows (role_list). */
int store_component_roles(struct store *st, const char *components_json, store_rows_cb cb,
                          void *arg) GW_MUSTCHECK;

struct sjob_new {
    const char *job_id, *flow_id, *old_job_id;
    const char *dag, *config;  /* JSON text */
    const char *initiator, *scheduler;
    const char *parties;       /* JSON array */
    const char *sync_type;
    bool approval;             /* PENDING until audit_confirm, else READY */
    const char *tasks;         /* JSON array of {task_id,node_id,task_name,component,provider,
                                  version,roles,depends_on} */
    const char *by;            /* who asked (event reason) */
};

/** Insert a job and its party rows; r->changed false: the job existed (nothing written). */
int store_sjob_insert(struct store *st, const struct sjob_new *n, store_change_cb cb,
                      void *arg) GW_MUSTCHECK;

/* ---- reads for the API (routes/) ---------------------------------------------- */

/** Interconn status_all: rows (job status, {task_name: status}, {task_id: status}). */
int store_sjob_status(struct store *st, const char *job_id, store_rows_cb cb,
                      void *arg) GW_MUSTCHECK;

/** Platform status_all: one row, the JSON document (NULL when no such job): the
 *  scheduler's view when this node schedules the job, else the local rows. */
int store_job_detail(struct store *st, const char *job_id, store_rows_cb cb,
                     void *arg) GW_MUSTCHECK;

/** query_job_list: rows (job_id, status), flow_id NULL for all. */
int store_job_list(struct store *st, const char *flow_id, store_rows_cb cb,
                   void *arg) GW_MUSTCHECK;

/** The scheduler of job_id as this node knows it: rows (scheduler), none if unknown. */
int store_scheduler_of(struct store *st, const char *job_id, store_rows_cb cb,
                       void *arg) GW_MUSTCHECK;

#endif
