/* test_state.c - the job and task transition tables (scheduler/state.c),
 * checked pair by pair against test/unit/data/state_rules.txt, and the
 * SQL "from" sets derived from them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "scheduler/state.h"

#define RULES "test/unit/data/state_rules.txt"

static void test_rules_file(void **state)
{
    (void)state;
    FILE *f = fopen(RULES, "r");
    assert_non_null(f);
    char line[256];
    int jobs = 0, tasks = 0;
    while (fgets(line, sizeof(line), f)) {
        char ent[16], from[16], to[16], ok[8];
        if (line[0] == '#' || line[0] == '\n')
            continue;
        assert_int_equal(sscanf(line, "%15s %15s %15s %7s", ent, from, to, ok), 4);
        bool want = strcmp(ok, "yes") == 0;
        if (strcmp(ent, "job") == 0) {
            enum job_state a, b;
            assert_true(job_state_parse(from, &a));
            assert_true(job_state_parse(to, &b));
            if (job_step_ok(a, b) != want)
                fail_msg("job %s -> %s: expected %s", from, to, ok);
            jobs++;
        } else {
            enum task_state a, b;
            assert_true(task_state_parse(from, &a));
            assert_true(task_state_parse(to, &b));
            if (task_step_ok(a, b) != want)
                fail_msg("task %s -> %s: expected %s", from, to, ok);
            tasks++;
        }
    }
    fclose(f);
    /* every pair is listed */
    assert_int_equal(jobs, JOB_STATE_COUNT * JOB_STATE_COUNT);
    assert_int_equal(tasks, TASK_STATE_COUNT * TASK_STATE_COUNT);
}

static void test_terminal_states_never_move(void **state)
{
    (void)state;
    for (int f = 0; f < JOB_STATE_COUNT; f++)
        for (int t = 0; t < JOB_STATE_COUNT; t++)
            if (job_state_is_terminal((enum job_state)f))
                assert_false(job_step_ok((enum job_state)f, (enum job_state)t));
    for (int f = 0; f < TASK_STATE_COUNT; f++)
        for (int t = 0; t < TASK_STATE_COUNT; t++)
            if (task_state_is_terminal((enum task_state)f))
                assert_false(task_step_ok((enum task_state)f, (enum task_state)t));
    assert_false(job_step_ok((enum job_state)99, JOB_STATE_READY));
    assert_false(task_step_ok(TASK_STATE_READY, (enum task_state)-1));
}

static void test_names_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < JOB_STATE_COUNT; i++) {
        enum job_state s;
        assert_true(job_state_parse(job_state_name((enum job_state)i), &s));
        assert_int_equal(s, i);
    }
    for (int i = 0; i < TASK_STATE_COUNT; i++) {
        enum task_state s;
        assert_true(task_state_parse(task_state_name((enum task_state)i), &s));
        assert_int_equal(s, i);
    }
    enum task_state t = TASK_STATE_READY;
    assert_false(task_state_parse("running", &t)); /* exact spelling only */
    assert_false(task_state_parse("RUNNING ", &t));
    assert_false(task_state_parse("", &t));
    assert_false(task_state_parse(NULL, &t));
    assert_int_equal(t, TASK_STATE_READY);
    assert_string_equal(job_state_name((enum job_state)42), "?");
    assert_string_equal(job_outcome_name(JOB_OUTCOME_STOPPED), "stopped");
    assert_string_equal(job_outcome_name(JOB_OUTCOME_NONE), "");
    assert_string_equal(state_channel_name(STATE_CHANNEL_EXIT_CODE), "exit_code");
}

static void test_from_sets(void **state)
{
    (void)state;
    assert_string_equal(task_from_set(TASK_STATE_RUNNING), "{PENDING,READY}");
    assert_string_equal(task_from_set(TASK_STATE_FAILED), "{PENDING,READY,RUNNING}");
    assert_string_equal(task_from_set(TASK_STATE_PENDING), "{}");
    assert_string_equal(job_from_set(JOB_STATE_FINISHED), "{PENDING,READY,RUNNING}");
    assert_string_equal(job_from_set(JOB_STATE_RUNNING), "{READY}");
    assert_string_equal(job_from_set(JOB_STATE_REJECTED), "{PENDING}");
    assert_string_equal(job_from_set((enum job_state)7), "{}");
    /* the sets agree with the table, for every target */
    for (int t = 0; t < TASK_STATE_COUNT; t++) {
        const char *set = task_from_set((enum task_state)t);
        for (int f = 0; f < TASK_STATE_COUNT; f++) {
            char needle[32];
            snprintf(needle, sizeof(needle), "%s", task_state_name((enum task_state)f));
            bool in = strstr(set, needle) != NULL;
            assert_int_equal(in, task_step_ok((enum task_state)f, (enum task_state)t));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_file),
        cmocka_unit_test(test_terminal_states_never_move),
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_from_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
