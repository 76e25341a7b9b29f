/* test_pollcache.c - the task/poll cache: hits only while listening, a
 * change forgets the task, a row read across a change is never stored,
 * LISTEN going up or down forgets everything, memory stays bounded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "scheduler/pollcache.h"

static const char *const RUNNING[POLLCACHE_NVALS] = {"RUNNING", NULL, NULL, NULL, NULL};
static const char *const DONE[POLLCACHE_NVALS] = {"SUCCESS", "", NULL, "0", "tail"};

/* miss, then store what "the database" returned */
static void fill(struct pollcache *c, const char *task, const char *role, int idx,
                 const char *const *vals)
{
    struct pollcache_ticket tk;
    assert_null(pollcache_get(c, true, task, role, idx, &tk));
    assert_true(tk.valid);
    pollcache_put(c, &tk, task, role, idx, vals);
}

static void test_hit_after_fill(void **state)
{
    (void)state;
    struct pollcache *c = pollcache_new(0);
    struct pollcache_ticket tk;
    fill(c, "t1", "", -1, DONE);
    const char *const *v = pollcache_get(c, true, "t1", "", -1, &tk);
    assert_non_null(v);
    assert_string_equal(v[0], "SUCCESS");
    assert_string_equal(v[1], "");
    assert_null(v[2]);
    assert_string_equal(v[3], "0");
    assert_string_equal(v[4], "tail");
    /* another role or index of the same task is another answer */
    assert_null(pollcache_get(c, true, "t1", "guest", -1, &tk));
    assert_null(pollcache_get(c, true, "t1", "", 0, &tk));
    /* not listening: nothing is served and no ticket is good */
    assert_null(pollcache_get(c, false, "t1", "", -1, &tk));
    assert_false(tk.valid);
    struct pollcache_stats st;
    pollcache_stats(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.stored, 1);
    pollcache_free(c);
}

static void test_forget_one_task(void **state)
{
    (void)state;
    struct pollcache *c = pollcache_new(0);
    struct pollcache_ticket tk;
    fill(c, "t1", "", -1, RUNNING);
    fill(c, "t1", "guest", 0, RUNNING);
    fill(c, "t2", "", -1, RUNNING);
    pollcache_forget(c, "t1");
    assert_null(pollcache_get(c, true, "t1", "", -1, &tk));
    assert_null(pollcache_get(c, true, "t1", "guest", 0, &tk));
    assert_non_null(pollcache_get(c, true, "t2", "", -1, &tk)); /* untouched */
    pollcache_forget(c, "never-seen"); /* harmless */
    pollcache_free(c);
}

/* The row was read before a commit whose notification arrived first: it
 * must not be stored, or the cache would hold the old status for good. */
static void test_change_during_query_is_not_stored(void **state)
{
    (void)state;
    struct pollcache *c = pollcache_new(0);
    struct pollcache_ticket tk, tk2;
    assert_null(pollcache_get(c, true, "t1", "", -1, &tk)); /* query sent */
    pollcache_forget(c, "t1");                              /* NOTIFY t1 */
    pollcache_put(c, &tk, "t1", "", -1, RUNNING);           /* stale row back */
    assert_null(pollcache_get(c, true, "t1", "", -1, &tk2));
    pollcache_put(c, &tk2, "t1", "", -1, DONE);             /* a fresh read */
    const char *const *v = pollcache_get(c, true, "t1", "", -1, &tk2);
    assert_non_null(v);
    assert_string_equal(v[0], "SUCCESS");
    pollcache_free(c);
}

/* LISTEN lost or regained (forget(NULL)) while a query ran: not stored. */
static void test_flush_during_query_is_not_stored(void **state)
{
    (void)state;
    struct pollcache *c = pollcache_new(0);
    struct pollcache_ticket tk;
    fill(c, "t2", "", -1, DONE);
    assert_null(pollcache_get(c, true, "t1", "", -1, &tk));
    pollcache_forget(c, NULL);
    pollcache_put(c, &tk, "t1", "", -1, RUNNING);
    assert_null(pollcache_get(c, true, "t1", "", -1, &tk));
    assert_null(pollcache_get(c, true, "t2", "", -1, &tk)); /* everything forgotten */
    /* a ticket taken while not listening is never good */
    struct pollcache_ticket off;
    assert_null(pollcache_get(c, false, "t3", "", -1, &off));
    pollcache_put(c, &off, "t3", "", -1, DONE);
    assert_null(pollcache_get(c, true, "t3", "", -1, &tk));
    pollcache_free(c);
}

static void test_bounded_memory(void **state)
{
    (void)state;
    struct pollcache *c = pollcache_new(64 * 1024);
    char big[2049];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    const char *vals[POLLCACHE_NVALS] = {"FAILED", "boom", "1", "1", big};
    char id[32];
    struct pollcache_stats st;
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "task_%d", i);
        fill(c, id, "", -1, vals);
        pollcache_stats(c, &st);
        assert_true(st.bytes <= 64 * 1024);
    }
    assert_true(st.flushes > 0);
    /* the most recent answer survives the last flush */
    struct pollcache_ticket tk;
    assert_non_null(pollcache_get(c, true, "task_4999", "", -1, &tk));
    pollcache_free(c);
}

/* Many tasks: the table grows and every answer stays reachable. */
static void test_many_tasks(void **state)
{
    (void)state;
    struct pollcache *c = pollcache_new((size_t)64 << 20);
    char id[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "task_%d", i);
        fill(c, id, "", -1, (i % 2) ? DONE : RUNNING);
    }
    struct pollcache_ticket tk;
    for (int i = 0; i < 20000; i += 997) {
        snprintf(id, sizeof(id), "task_%d", i);
        const char *const *v = pollcache_get(c, true, id, "", -1, &tk);
        assert_non_null(v);
        assert_string_equal(v[0], (i % 2) ? "SUCCESS" : "RUNNING");
    }
    pollcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_after_fill),
        cmocka_unit_test(test_forget_one_task),
        cmocka_unit_test(test_change_during_query_is_not_stored),
        cmocka_unit_test(test_flush_during_query_is_not_stored),
        cmocka_unit_test(test_bounded_memory),
        cmocka_unit_test(test_many_tasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
