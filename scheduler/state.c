/*
 * state.c - the job and task transition tables (see state.h).
 */
#include "state.h"

#include <stdio.h>
#include <string.h>

static const char *const job_names[JOB_STATE_COUNT] = {"PENDING", "READY", "REJECTED", "RUNNING",
                                                       "FINISHED"};
static const char *const task_names[TASK_STATE_COUNT] = {"PENDING", "READY", "RUNNING", "SUCCESS",
                                                         "FAILED"};

/* allowed[from][to] */
static const bool job_allowed[JOB_STATE_COUNT][JOB_STATE_COUNT] = {
    /*               PENDING READY  REJECTED RUNNING FINISHED */
    [JOB_STATE_PENDING] = {false, true, true, false, true},
    [JOB_STATE_READY] = {false, false, false, true, true},
    [JOB_STATE_REJECTED] = {false, false, false, false, false},
    [JOB_STATE_RUNNING] = {false, false, false, false, true},
    [JOB_STATE_FINISHED] = {false, false, false, false, false},
};

static const bool task_allowed[TASK_STATE_COUNT][TASK_STATE_COUNT] = {
    /*                PENDING READY  RUNNING SUCCESS FAILED */
    [TASK_STATE_PENDING] = {false, true, true, true, true},
    [TASK_STATE_READY] = {false, false, true, true, true},
    [TASK_STATE_RUNNING] = {false, false, false, true, true},
    [TASK_STATE_SUCCESS] = {false, false, false, false, false},
    [TASK_STATE_FAILED] = {false, false, false, false, false},
};

const char *job_state_name(enum job_state s)
{
    return (unsigned)s < JOB_STATE_COUNT ? job_names[s] : "?";
}

const char *task_state_name(enum task_state s)
{
    return (unsigned)s < TASK_STATE_COUNT ? task_names[s] : "?";
}

const char *job_outcome_name(enum job_outcome o)
{
    switch (o) {
    case JOB_OUTCOME_SUCCESS: return "success";
    case JOB_OUTCOME_FAILED: return "failed";
    case JOB_OUTCOME_STOPPED: return "stopped";
    default: return "";
    }
}

const char *state_channel_name(enum state_channel c)
{
    switch (c) {
    case STATE_CHANNEL_CALLBACK: return "callback";
    case STATE_CHANNEL_POLL: return "poll";
    case STATE_CHANNEL_EXIT_CODE: return "exit_code";
    case STATE_CHANNEL_API: return "api";
    case STATE_CHANNEL_RECONCILE: return "reconcile";
    }
    return "?";
}

bool job_state_parse(const char *s, enum job_state *out)
{
    for (int i = 0; s && i < JOB_STATE_COUNT; i++)
        if (strcmp(s, job_names[i]) == 0) {
            *out = (enum job_state)i;
            return true;
        }
    return false;
}

bool task_state_parse(const char *s, enum task_state *out)
{
    for (int i = 0; s && i < TASK_STATE_COUNT; i++)
        if (strcmp(s, task_names[i]) == 0) {
            *out = (enum task_state)i;
            return true;
        }
    return false;
}

bool job_step_ok(enum job_state from, enum job_state to)
{
    return (unsigned)from < JOB_STATE_COUNT && (unsigned)to < JOB_STATE_COUNT &&
           job_allowed[from][to];
}

bool task_step_ok(enum task_state from, enum task_state to)
{
    return (unsigned)from < TASK_STATE_COUNT && (unsigned)to < TASK_STATE_COUNT &&
           task_allowed[from][to];
}

bool job_state_is_terminal(enum job_state s)
{
    return s == JOB_STATE_REJECTED || s == JOB_STATE_FINISHED;
}

bool job_state_is_live(enum job_state s)
{
    return s == JOB_STATE_PENDING || s == JOB_STATE_READY || s == JOB_STATE_RUNNING;
}

bool task_state_is_terminal(enum task_state s)
{
    return s == TASK_STATE_SUCCESS || s == TASK_STATE_FAILED;
}

/* "{A,B}" of the names whose row in allowed[][to] is true; built once. */
static const char *from_set(char (*cache)[64], bool *built, int n, const char *const *names,
                            bool (*ok)(int from, int to), int to)
{
    if (!built[to]) {
        size_t len = 0;
        cache[to][len++] = '{';
        for (int f = 0; f < n; f++) {
            if (!ok(f, to))
                continue;
            len += (size_t)snprintf(cache[to] + len, sizeof(cache[to]) - len, "%s%s",
                                    len > 1 ? "," : "", names[f]);
        }
        snprintf(cache[to] + len, sizeof(cache[to]) - len, "}");
        built[to] = true;
    }
    return cache[to];
}

static bool job_ok_i(int f, int t)
{
    return job_step_ok((enum job_state)f, (enum job_state)t);
}

static bool task_ok_i(int f, int t)
{
    return task_step_ok((enum task_state)f, (enum task_state)t);
}

const char *job_from_set(enum job_state to)
{
    static char cache[JOB_STATE_COUNT][64];
    static bool built[JOB_STATE_COUNT];
    if ((unsigned)to >= JOB_STATE_COUNT)
        return "{}";
    return from_set(cache, built, JOB_STATE_COUNT, job_names, job_ok_i, (int)to);
}

const char *task_from_set(enum task_state to)
{
    static char cache[TASK_STATE_COUNT][64];
    static bool built[TASK_STATE_COUNT];
    if ((unsigned)to >= TASK_STATE_COUNT)
        return "{}";
    return from_set(cache, built, TASK_STATE_COUNT, task_names, task_ok_i, (int)to);
}

const char *job_live_set(void)
{
    return "{PENDING,READY,RUNNING}";
}

const char *task_live_set(void)
{
    return "{PENDING,READY,RUNNING}";
}
