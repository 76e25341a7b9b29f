/*
 * state.h - job and task states of the BFIA control layer, and the rules
 * that say which moves between them are allowed.  Pure: no I/O, no
 * allocation; unit-tested in test/unit/test_state.c.
 *
 * The transition tables here are the one source of truth for every status
 * write: store.c turns them into the "from" sets of its compare-and-set
 * statements (UPDATE ... WHERE status = ANY(<from set>)), so no SQL or C
 * code elsewhere decides which move is allowed.  The aggregation of one
 * task over several parties or roles (spec §3.3) has its one definition in
 * SQL (bfia_task_agg, migrations 0002 and 0005) because every reader of
 * aggregated status (task/poll, status_all, the pass) is a query.
 *
 * Tables (bfia-control-layer.md §3.2, FATE-Flow's rules, plus the stop of a
 * job still awaiting approval):
 *
 *   job   PENDING -> READY, REJECTED, FINISHED
 *         READY   -> RUNNING, FINISHED
 *         RUNNING -> FINISHED
 *         REJECTED, FINISHED: terminal
 *
 *   task  PENDING -> READY, RUNNING, SUCCESS, FAILED
 *         READY   -> RUNNING, SUCCESS, FAILED
 *         RUNNING -> SUCCESS, FAILED
 *         SUCCESS, FAILED: terminal
 */
#ifndef GW_SCHEDULER_STATE_H
#define GW_SCHEDULER_STATE_H

#include <stdbool.h>

enum job_state {
    JOB_STATE_PENDING,
    JOB_STATE_READY,
    JOB_STATE_REJECTED,
    JOB_STATE_RUNNING,
    JOB_STATE_FINISHED,
};
#define JOB_STATE_COUNT 5

enum task_state {
    TASK_STATE_PENDING,
    TASK_STATE_READY,
    TASK_STATE_RUNNING,
    TASK_STATE_SUCCESS,
    TASK_STATE_FAILED,
};
#define TASK_STATE_COUNT 5

/* How a FINISHED job ended (t_schedule_job.outcome). */
enum job_outcome {
    JOB_OUTCOME_NONE,
    JOB_OUTCOME_SUCCESS,
    JOB_OUTCOME_FAILED,
    JOB_OUTCOME_STOPPED,
};

/* Which channel reported a task's status (t_*task.status_channel). */
enum state_channel {
    STATE_CHANNEL_CALLBACK,
    STATE_CHANNEL_POLL,
    STATE_CHANNEL_EXIT_CODE,
    STATE_CHANNEL_API,
    STATE_CHANNEL_RECONCILE,
};

/** Wire and SQL spelling ("RUNNING"); never NULL ("?" out of range). */
const char *job_state_name(enum job_state s);
const char *task_state_name(enum task_state s);
const char *job_outcome_name(enum job_outcome o); /* "" for NONE */
const char *state_channel_name(enum state_channel c);

/** Parse the exact spelling; false (and *out untouched) otherwise. */
bool job_state_parse(const char *s, enum job_state *out);
bool task_state_parse(const char *s, enum task_state *out);

/** The tables above. */
bool job_step_ok(enum job_state from, enum job_state to);
bool task_step_ok(enum task_state from, enum task_state to);

bool job_state_is_terminal(enum job_state s);   /* REJECTED, FINISHED */
bool task_state_is_terminal(enum task_state s); /* SUCCESS, FAILED */
/** PENDING, READY or RUNNING: the job is not over. */
bool job_state_is_live(enum job_state s);

/**
 * The states from which `to` may be reached, as a PostgreSQL text-array
 * literal ("{PENDING,READY}"), for `status = ANY($n::text[])`.  Static
 * storage; "{}" when no state may reach `to`.
 */
const char *job_from_set(enum job_state to);
const char *task_from_set(enum task_state to);

/** The live states as an array literal: "{PENDING,READY,RUNNING}". */
const char *job_live_set(void);
const char *task_live_set(void);

#endif
