/* test_ratelimit.c - token buckets: burst, refill, per-key independence,
 * reuse of idle slots when the table is full. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "gateway/ratelimit.h"

static int takes(struct ratelimit *rl, const char *key, int n, long long now)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += ratelimit_take(rl, key, now);
    return ok;
}

static void test_burst_and_refill(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(10, 20, 64);
    assert_int_equal(takes(rl, "job/task/guest.0", 50, 1000), 20); /* the burst, then none */
    assert_int_equal(takes(rl, "job/task/guest.0", 5, 1100), 1);   /* 0.1 s later: one more */
    assert_int_equal(takes(rl, "job/task/guest.0", 50, 3100), 20); /* 2 s later: full again, capped */
    assert_int_equal(takes(rl, "job/task/host.0", 50, 3100), 20);  /* another key has its own */
    ratelimit_free(rl);
}

static void test_full_table_reuses_idle(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(1, 2, 4);
    char k[32];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "key%d", i);
        assert_true(ratelimit_take(rl, k, 1000 + i));
    }
    /* a key just used keeps its (empty) bucket */
    assert_int_equal(takes(rl, "key99", 5, 1100), 1);
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_and_refill),
        cmocka_unit_test(test_full_table_reuses_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
