/* test_chan.c - the task capability behind config.token: minted tokens
 * parse back under the same key, and nothing else does (another key, one
 * changed character, a FATE-Flow-style guessable value, malformed text). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "container/chan.h"

static void test_roundtrip_and_forgery(void **state)
{
    (void)state;
    uint8_t k1[CHAN_KEY_LEN], k2[CHAN_KEY_LEN];
    memset(k1, 1, sizeof(k1));
    memset(k2, 2, sizeof(k2));
    char *t = chan_cap_mint(k1, "202612060341140719690", "task-03f073857a1d3ccdd7b45978", "host", 1);
    assert_memory_equal(t, "bct1.", 5);
    struct chan_cap_id id;
    assert_int_equal(chan_cap_parse(k1, t, &id), 0);
    assert_string_equal(id.job, "202612060341140719690");
    assert_string_equal(id.task, "task-03f073857a1d3ccdd7b45978");
    assert_string_equal(id.role, "host");
    assert_int_equal(id.index, 1);
    /* another node's key */
    assert_int_equal(chan_cap_parse(k2, t, &id), GW_EAUTH);
    /* any single character changed */
    size_t n = strlen(t);
    for (size_t i = 5; i < n; i++) {
        char *c = strdup(t);
        c[i] = c[i] == 'A' ? 'B' : 'A';
        if (strcmp(c, t) != 0)
            assert_int_equal(chan_cap_parse(k1, c, &id), GW_EAUTH);
        free(c);
    }
    /* tokens of other tasks differ */
    char *u = chan_cap_mint(k1, "202612060341140719690", "task-03f073857a1d3ccdd7b45978", "host", 0);
    assert_string_not_equal(t, u);
    free(u);
    free(t);
    static const char *const bad[] = {"", "session_job-1", "bct1.", "bct1.abc", "bct1..",
                                      "bct1.a.b.c", "bct1.YWJj.!!!", "BCT1.YWJj.YWJj"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(chan_cap_parse(k1, bad[i], &id), GW_EAUTH);
    assert_int_equal(chan_cap_parse(k1, NULL, &id), GW_EAUTH);
}

static void test_session_job(void **state)
{
    (void)state;
    assert_string_equal(chan_session_job("session_job-1"), "job-1");
    assert_null(chan_session_job("session_"));
    assert_null(chan_session_job("job-1"));
    assert_null(chan_session_job("session_../x"));
    assert_null(chan_session_job(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_forgery),
        cmocka_unit_test(test_session_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
