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
#include "gateway/db.h"
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

/* Lists of text tuples are struct db_rows (gateway/db.h). */

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
                      db_rows_cb cb, void *arg) GW_MUSTCHECK;

/** Rows to poll: (task_id, node_id, resend_ok 't'/'f', first role) of live party rows
 *  (RUNNING, or READY with task/start sent); resend_ok when sent over stale_s ago. */
int store_stask_poll_targets(struct store *st, const char *job_id, int stale_s, db_rows_cb cb,
                             void *arg) GW_MUSTCHECK;

/** Jobs this node schedules that are READY or RUNNING: rows (job_id). */
int store_sjob_live(struct store *st, db_rows_cb cb, void *arg) GW_MUSTCHECK;

/** Ended jobs (changed in the last window_s, at most limit) with parties that
 *  have not acknowledged job/stop: rows (job_id, JSON array of those parties). */
int store_sjob_stops_pending(struct store *st, int window_s, int limit, db_rows_cb cb,
                             void *arg) GW_MUSTCHECK;

/** Record that node acknowledged job/stop of job_id.  cb may be NULL. */
int store_sjob_stop_acked(struct store *st, const char *job_id, const char *node,
                          store_change_cb cb, void *arg) GW_MUSTCHECK;

/** roleList (JSON text or NULL) of each component of components_json (a JSON
 *  array of {componentName, provider, version}), in order: rows (role_list). */
int store_component_roles(struct store *st, const char *components_json, db_rows_cb cb,
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

/* ---- partner side: t_job, t_task ---------------------------------------------- */

struct job_new {
    const char *job_id, *flow_id;
    const char *dag, *config; /* JSON text */
    const char *initiator, *scheduler, *sync_type;
    const char *roles;        /* JSON array of this node's roles */
    const char *by;
};
/** job/create: one t_job row per local role.  Rows: one (inserted count, missing
 *  components "prov/comp@ver, ..." or NULL, stored rows' digest of dag+config+roles
 *  or NULL, this request's digest). */
int store_job_create(struct store *st, const struct job_new *n, db_rows_cb cb,
                     void *arg) GW_MUSTCHECK;

/** job/start: every local role READY -> RUNNING.  Rows: one (rows of the job, rows
 *  finished). */
int store_job_start(struct store *st, const char *job_id, const char *by, db_rows_cb cb,
                    void *arg) GW_MUSTCHECK;

/** task/start's context: rows (role, job status, dag, config, component description,
 *  image digest, provider, version, image, scheduler, the task id under which
 *  task_name was started here already or NULL) per local role. */
int store_task_context(struct store *st, const char *job_id, const char *task_name,
                       db_rows_cb cb, void *arg) GW_MUSTCHECK;

/** Insert READY rows (rows_json: [{role, role_index, container_name, spec}]) of a
 *  live job; rows: (role, role_index) of the READY rows of the task now. */
int store_task_insert(struct store *st, const char *job_id, const char *task_id,
                      const char *task_name, const char *component, const char *provider,
                      const char *version, const char *rows_json, db_rows_cb cb,
                      void *arg) GW_MUSTCHECK;

/** task/poll: one row (aggregate status or NULL, error texts, highest non-zero exit
 *  code, lowest exit code, log tail).  role "" and role_index < 0 match any. */
int store_task_poll(struct store *st, const char *task_id, const char *role, int role_index,
                    db_rows_cb cb, void *arg) GW_MUSTCHECK;

/* Which t_task rows a change concerns. */
enum task_sel {
    TASK_SEL_ROW,  /* job_id, task_id, role, role_index */
    TASK_SEL_TASK, /* task_id; role "" and role_index < 0 match any */
    TASK_SEL_JOB,  /* job_id: every row */
    TASK_SEL_DOWN, /* job_id, task_name and its downstream tasks (the stored DAG), only
                      when task_name still has a live row here */
    TASK_SEL_LIST, /* list: JSON [{job_id, task_id, role, role_index}] */
};

struct task_change {
    enum task_sel sel;
    const char *job_id, *task_id, *role, *task_name, *list;
    int role_index;
    enum task_state to;
    enum state_channel channel;
    const char *reason;       /* t_event reason */
    const char *error_text;   /* set when the row has none */
    const char *token_jti;    /* only rows holding this launch token (callbacks) */
    bool claim;               /* claimed_status = to */
    bool by_exit_code;        /* the runner's final write: a FAILED claim turns SUCCESS into
                                 FAILED, the exit code overrules a SUCCESS claimed earlier
                                 (task_step_ok_by_exit), and the details below are written
                                 whatever the status */
    bool finish_job;          /* TASK_SEL_JOB: the job's t_job rows become FINISHED too */
    /* details */
    const char *container_id, *token_id, *env_token_id; /* a launch */
    const char *exit_code;    /* decimal, or NULL */
    const char *oom;          /* "true"/"false", or NULL */
    const char *log_tail;
};

/**
 * The one writer of t_task statuses (and of t_job's FINISHED by a stop).
 * Rows: first a summary (t_job rows of job_id, rows selected, rows moved),
 * then one row per row written: (job_id, task_id, role, role_index,
 * container_id, old status, new status).
 */
int store_task_set(struct store *st, const struct task_change *c, db_rows_cb cb,
                   void *arg) GW_MUSTCHECK;

/** An unauthenticated container callback's claim, held for the exit code: rows: one
 *  (rows matched, rows live). */
int store_task_claim(struct store *st, const char *task_id, const char *role, int role_index,
                     enum task_state status, db_rows_cb cb, void *arg) GW_MUSTCHECK;

/** Logs of a task: rows (status, container_id, log_tail) by role. */
int store_task_logs(struct store *st, const char *task_id, db_rows_cb cb, void *arg) GW_MUSTCHECK;

/** What to push to the scheduler: one row (scheduler, sync_type, task_id, aggregate
 *  status, roles, error texts, exit code, log tail) or none. */
int store_push_state(struct store *st, const char *job_id, const char *task_id, db_rows_cb cb,
                     void *arg) GW_MUSTCHECK;
/** The scheduler acknowledged acked_status (or, acked_status NULL, refused with
 *  error).  cb may be NULL. */
int store_push_record(struct store *st, const char *job_id, const char *task_id,
                      const char *acked_status, const char *error, store_change_cb cb,
                      void *arg) GW_MUSTCHECK;
/** Pushes to send again (tasks changed in the last window_s, at most limit):
 *  rows (job_id, task_id). */
int store_push_pending(struct store *st, int window_s, int limit, db_rows_cb cb,
                       void *arg) GW_MUSTCHECK;

/* ---- the runner's rows ----------------------------------------------------------- */

/** A READY row's launch: rows (container_name, spec). */
int store_task_spec(struct store *st, const char *job_id, const char *task_id, const char *role,
                    int role_index, db_rows_cb cb, void *arg) GW_MUSTCHECK;
/** The running container got a new launch token: rows: one (1) when recorded. */
int store_task_token(struct store *st, const char *job_id, const char *task_id,
                     const char *role, int role_index, const char *container_id,
                     const char *jti, db_rows_cb cb, void *arg) GW_MUSTCHECK;
/** Rows that may own a container: (job_id, task_id, role, role_index, status,
 *  container_name, spec). */
int store_task_containers(struct store *st, db_rows_cb cb, void *arg) GW_MUSTCHECK;
/** Record orphan containers removed (JSON array of names) in t_event. */
int store_orphans(struct store *st, const char *names_json, db_rows_cb cb,
                  void *arg) GW_MUSTCHECK;

/** The runner's store (container/runner.h) over these statements; ctx is a
 *  struct store *. */
struct runner_store_ops;
extern const struct runner_store_ops store_runner_ops;

/* ---- reads for the API (routes/) ---------------------------------------------- */

/** Interconn status_all: rows (job status, {task_name: status}, {task_id: status}). */
int store_sjob_status(struct store *st, const char *job_id, db_rows_cb cb,
                      void *arg) GW_MUSTCHECK;

/** Platform status_all: one row, the JSON document (NULL when no such job): the
 *  scheduler's view when this node schedules the job, else the local rows. */
int store_job_detail(struct store *st, const char *job_id, db_rows_cb cb,
                     void *arg) GW_MUSTCHECK;

/** query_job_list: rows (job_id, status), flow_id NULL for all. */
int store_job_list(struct store *st, const char *flow_id, db_rows_cb cb,
                   void *arg) GW_MUSTCHECK;

/* Who has business with a job (routes/authz.c).  side: 's' the job as
 * this node schedules it (t_schedule_job), 'p' as this node is a party of
 * it (t_job); key is a job id, or with by_task a task id of it.  Rows: one
 * (job_id, scheduler, initiator, JSON array of every party) or none. */
int store_job_parties(struct store *st, char side, bool by_task, const char *key,
                      db_rows_cb cb, void *arg) GW_MUSTCHECK;

/** The scheduler of job_id as this node knows it: rows (scheduler), none if unknown. */
int store_scheduler_of(struct store *st, const char *job_id, db_rows_cb cb,
                       void *arg) GW_MUSTCHECK;

/* ---- task outputs registered as datasets (scheduler/outputs.c) ----------------- */

/**
 * The dataset outputs of job_id/task_id on this node not yet in t_dataset:
 * of each row that ended SUCCESS with exit code 0, every
 * runtime.component.output.<name> of its environment whose outputData entry
 * <name> in the component's description has category dataset, training_set
 * or test_set.  Rows: (namespace, name, role, role_index, task_name, output
 * name), namespace and name as the environment gave them.
 */
int store_task_outputs(struct store *st, const char *job_id, const char *task_id, db_rows_cb cb,
                       void *arg) GW_MUSTCHECK;

struct dataset_out {
    const char *ns, *name;
    const char *uri;    /* file://<storage>/<ns>/<name>/data */
    const char *size;   /* decimal bytes */
    const char *meta;   /* JSON object text */
    const char *reason; /* its t_event reason */
};

/** Register an output as a dataset (sha256 unknown yet) with its t_event
 *  ('dataset', 'stored', channel exit_code), unless (namespace, name) exists:
 *  then nothing is written.  Rows: one (1) when inserted, none otherwise. */
int store_dataset_output(struct store *st, const struct dataset_out *o, db_rows_cb cb,
                         void *arg) GW_MUSTCHECK;

/** Record the sha256 (hex) of a registered output whose uri and size are
 *  still those hashed and whose sha256 is unknown.  Rows: one (1) when set. */
int store_dataset_digest(struct store *st, const char *ns, const char *name, const char *uri,
                         const char *size, const char *sha256, db_rows_cb cb,
                         void *arg) GW_MUSTCHECK;

#endif
