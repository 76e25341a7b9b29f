/* test_chanbatch.c - the batched relay's wire form (container/chanbatch.h):
 * requests and answers round-trip byte-exactly, and every malformed body
 * (wrong magic, counts that lie, truncated or oversized fields, trailing
 * bytes, a JSON envelope where a batch answer belongs) is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "container/chanbatch.h"

static void test_roundtrip(void **state)
{
    (void)state;
    static const char bin[] = {'a', 0, 'b', (char)0xff};
    struct chanbatch_out m[3] = {
        {"session_job-1", "task-1", "host.0-guest.0", 120000, "hello", 5},
        {"session_job-2", "", "", 0, bin, sizeof(bin)},
        {"session_job-1", "task-1", "t", 1000, NULL, 0},
    };
    size_t len;
    unsigned char *b = chanbatch_encode(m, 3, &len);
    size_t want = CHANBATCH_HDR;
    for (int i = 0; i < 3; i++)
        want += chanbatch_rec_size(&m[i]);
    assert_int_equal(len, want);
    assert_memory_equal(b, "BCB1\0\0\0\3", 8);
    struct chanbatch d;
    struct gw_errbuf eb;
    assert_int_equal(chanbatch_decode(b, len, 10, &d, &eb), 0);
    assert_int_equal(d.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(d.m[i].session, m[i].session);
        assert_string_equal(d.m[i].scope, m[i].scope);
        assert_string_equal(d.m[i].topic, m[i].topic);
        assert_int_equal(d.m[i].timeout_ms, m[i].timeout_ms);
        assert_int_equal(d.m[i].len, m[i].len);
        if (m[i].len)
            assert_memory_equal(d.m[i].payload, m[i].payload, m[i].len);
    }
    chanbatch_cleanup(&d);
    /* at most max_msgs */
    assert_int_equal(chanbatch_decode(b, len, 2, &d, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "more than 2"));
    assert_null(d.m);
    free(b);
}

static void expect_bad(const void *body, size_t len, const char *words)
{
    struct chanbatch d;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    assert_int_equal(chanbatch_decode(body, len, CHANBATCH_MAX_MSGS, &d, &eb), GW_EINVAL);
    assert_null(d.m);
    assert_int_equal(d.n, 0);
    if (!strstr(eb.msg, words))
        fail_msg("'%s' does not say '%s'", eb.msg, words);
}

static void test_malformed(void **state)
{
    (void)state;
    struct chanbatch_out m = {"session_job-1", "task-1", "topic", 5000, "payload", 7};
    size_t len;
    unsigned char *b = chanbatch_encode(&m, 1, &len);
    expect_bad("", 0, "magic");
    expect_bad("{\"code\":\"E0000000000\"}", 22, "magic");
    expect_bad("BCB1\0\0\0\0", 8, "count is 0");
    /* a count that the body cannot hold: refused before allocating */
    expect_bad("BCB1\xff\xff\xff\xff", 8, "more than");
    unsigned char big[8 + 14] = "BCB1\0\0\0\2";
    expect_bad(big, sizeof(big), "does not fit");
    /* every truncation of a valid body */
    for (size_t cut = 8; cut < len; cut++)
        expect_bad(b, cut, cut < 8 + 14 ? "does not fit" : "message 0");
    /* trailing bytes */
    unsigned char *t = malloc(len + 3);
    memcpy(t, b, len);
    memcpy(t + len, "xyz", 3);
    expect_bad(t, len + 3, "3 bytes after");
    free(t);
    /* a NUL inside the session */
    unsigned char *z = malloc(len);
    memcpy(z, b, len);
    z[8 + 2 + 3] = 0;
    expect_bad(z, len, "session");
    free(z);
    /* a payload length beyond the body */
    unsigned char *p = malloc(len);
    memcpy(p, b, len);
    p[len - 7 - 1] = 0xff;
    expect_bad(p, len, "payload");
    free(p);
    free(b);
    /* an empty session */
    struct chanbatch_out e = {"", "", "t", 0, "x", 1};
    b = chanbatch_encode(&e, 1, &len);
    expect_bad(b, len, "session empty");
    free(b);
    /* a topic longer than a push may name */
    char *longt = malloc(CHANBATCH_TOPIC_MAX + 2);
    memset(longt, 'a', CHANBATCH_TOPIC_MAX + 1);
    longt[CHANBATCH_TOPIC_MAX + 1] = '\0';
    struct chanbatch_out lt = {"session_job-1", "", longt, 0, "x", 1};
    b = chanbatch_encode(&lt, 1, &len);
    expect_bad(b, len, "topic");
    free(b);
    free(longt);
}

static void test_answers(void **state)
{
    (void)state;
    struct chanbatch_res r[2] = {{"E0000000000", "success"}, {"E0000000403", "not a party"}};
    size_t len;
    void *a = chanbatch_answer("E0000000000", "", r, 2, &len);
    struct chanbatch_res whole, got[2];
    assert_int_equal(chanbatch_parse_answer(a, len, 2, &whole, got), 0);
    assert_string_equal(whole.code, "E0000000000");
    assert_string_equal(got[0].code, "E0000000000");
    assert_string_equal(got[1].code, "E0000000403");
    assert_string_equal(got[1].msg, "not a party");
    /* an answer for another number of messages */
    assert_int_equal(chanbatch_parse_answer(a, len, 3, &whole, got), GW_EINVAL);
    /* truncated */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(chanbatch_parse_answer(a, cut, 2, &whole, got), GW_EINVAL);
    free(a);
    /* refused as a whole: no results, the code stands for every message */
    a = chanbatch_answer("E0000000400", "batch: count is 0", NULL, 0, &len);
    assert_int_equal(chanbatch_parse_answer(a, len, 5, &whole, got), 0);
    assert_string_equal(whole.code, "E0000000400");
    assert_string_equal(whole.msg, "batch: count is 0");
    free(a);
    /* not a batch answer: a single envelope, a control-layer refusal */
    static const char env[] = "{\"code\":5004,\"msg\":\"bad signature\",\"data\":{}}";
    assert_int_equal(chanbatch_parse_answer(env, sizeof(env) - 1, 1, &whole, got), GW_EINVAL);
    assert_int_equal(chanbatch_parse_answer(NULL, 0, 1, &whole, got), GW_EINVAL);
    /* a code that is not E and ten digits */
    struct chanbatch_res bad = {"X000000000!", ""};
    a = chanbatch_answer("E0000000000", "", &bad, 1, &len);
    assert_int_equal(chanbatch_parse_answer(a, len, 1, &whole, got), GW_EINVAL);
    free(a);
    /* long messages are cut, not overflowed */
    struct chanbatch_res lm = {"E0000000500", ""};
    memset(lm.msg, 'm', CHANBATCH_MSG_MAX);
    lm.msg[CHANBATCH_MSG_MAX] = '\0';
    a = chanbatch_answer("E0000000000", "", &lm, 1, &len);
    assert_int_equal(chanbatch_parse_answer(a, len, 1, &whole, got), 0);
    assert_int_equal(strlen(got[0].msg), CHANBATCH_MSG_MAX);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
