/* test_json.c - typed getters name the field and refuse wrong types. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <string.h>

#include "gateway/json.h"

static cJSON *parse(const char *s)
{
    struct gw_errbuf eb;
    cJSON *j = json_parse(s, strlen(s), &eb);
    assert_non_null(j);
    return j;
}

static void test_parse_errors(void **state)
{
    (void)state;
    struct gw_errbuf eb;
    assert_null(json_parse("", 0, &eb));
    assert_non_null(strstr(eb.msg, "empty"));
    assert_null(json_parse("{\"a\":", 5, &eb));
    assert_non_null(strstr(eb.msg, "malformed JSON"));
    assert_null(json_parse("{} trailing", 11, &eb));
    assert_non_null(strstr(eb.msg, "trailing"));
    /* not NUL-terminated: the length bounds the parse */
    char buf[4] = {'{', '}', 'x', 'x'};
    assert_null(json_parse(buf, 3, &eb));
    cJSON *j = json_parse(buf, 2, &eb);
    assert_non_null(j);
    cJSON_Delete(j);
    /* deep nesting is refused, not a stack overflow */
    char deep[3000];
    memset(deep, '[', sizeof(deep));
    assert_null(json_parse(deep, sizeof(deep), &eb));
}

static void test_get_str(void **state)
{
    (void)state;
    cJSON *j = parse("{\"job_id\":\"j1\",\"n\":3,\"nul\":null,\"long\":\"abcdef\"}");
    struct gw_errbuf eb;
    const char *s = NULL;
    assert_int_equal(json_get_str(j, "job_id", true, 0, &s, &eb), 0);
    assert_string_equal(s, "j1");
    assert_int_equal(json_get_str(j, "n", true, 0, &s, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "'n'"));
    assert_non_null(strstr(eb.msg, "expected a string, got a number"));
    assert_int_equal(json_get_str(j, "missing", true, 0, &s, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "field 'missing' is required"));
    s = "untouched";
    assert_int_equal(json_get_str(j, "missing", false, 0, &s, &eb), 0);
    assert_string_equal(s, "untouched");
    assert_int_equal(json_get_str(j, "nul", true, 0, &s, &eb), GW_EINVAL);
    assert_int_equal(json_get_str(j, "long", true, 3, &s, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "longer than 3"));
    cJSON_Delete(j);
}

static void test_get_int_bool(void **state)
{
    (void)state;
    cJSON *j = parse("{\"a\":10,\"b\":\"42\",\"c\":1.5,\"d\":\"x\",\"e\":1e300,"
                     "\"t\":true,\"ts\":\"true\",\"fs\":\"FALSE\",\"bad\":\"yes\"}");
    struct gw_errbuf eb;
    long long v = 0;
    assert_int_equal(json_get_int(j, "a", true, 0, 100, &v, &eb), 0);
    assert_int_equal(v, 10);
    assert_int_equal(json_get_int(j, "b", true, 0, 100, &v, &eb), 0);
    assert_int_equal(v, 42);
    assert_int_equal(json_get_int(j, "a", true, 0, 5, &v, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "outside 0..5"));
    assert_int_equal(json_get_int(j, "c", true, 0, 100, &v, &eb), GW_EINVAL);
    assert_int_equal(json_get_int(j, "d", true, 0, 100, &v, &eb), GW_EINVAL);
    assert_int_equal(json_get_int(j, "e", true, 0, 100, &v, &eb), GW_EINVAL);
    bool b = false;
    assert_int_equal(json_get_bool(j, "t", true, &b, &eb), 0);
    assert_true(b);
    assert_int_equal(json_get_bool(j, "ts", true, &b, &eb), 0);
    assert_true(b);
    assert_int_equal(json_get_bool(j, "fs", true, &b, &eb), 0);
    assert_false(b);
    assert_int_equal(json_get_bool(j, "bad", true, &b, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "expected a boolean"));
    cJSON_Delete(j);
}

static void test_get_obj_arr(void **state)
{
    (void)state;
    cJSON *j = parse("{\"o\":{},\"a\":[1],\"s\":\"x\"}");
    struct gw_errbuf eb;
    const cJSON *x = NULL;
    assert_int_equal(json_get_obj(j, "o", true, &x, &eb), 0);
    assert_true(cJSON_IsObject(x));
    assert_int_equal(json_get_arr(j, "a", true, &x, &eb), 0);
    assert_true(cJSON_IsArray(x));
    assert_int_equal(json_get_obj(j, "a", true, &x, &eb), GW_EINVAL);
    assert_int_equal(json_get_arr(j, "s", true, &x, &eb), GW_EINVAL);
    /* a non-object container is refused, not dereferenced */
    const cJSON *arr = NULL;
    assert_int_equal(json_get_arr(j, "a", true, &arr, &eb), 0);
    const char *s;
    assert_int_equal(json_get_str(arr, "k", true, 0, &s, &eb), GW_EINVAL);
    cJSON_Delete(j);
}

static void test_add_str_never_null(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    json_add_str(o, "flow_id", NULL);
    json_add_int(o, "n", 7);
    char *s = json_print(o);
    assert_string_equal(s, "{\"flow_id\":\"\",\"n\":7}");
    cJSON_free(s);
    cJSON_Delete(o);
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(json_is_id("JG0100001100000010", 64));
    assert_true(json_is_id("ns#name", 64));
    assert_true(json_is_id("a.b-c_d:e", 64));
    assert_false(json_is_id("", 64));
    assert_false(json_is_id(NULL, 64));
    assert_false(json_is_id("../etc", 64));
    assert_false(json_is_id(".hidden", 64));
    assert_false(json_is_id("a/b", 64));
    assert_false(json_is_id("a b", 64));
    assert_false(json_is_id("a\nb", 64));
    assert_false(json_is_id("x\"y", 64));
    assert_false(json_is_id("abcd", 3));
    assert_true(json_is_id("abc", 3));
    cJSON *j = parse("{\"node_id\":\"a/../b\",\"ok\":\"JG1\"}");
    struct gw_errbuf eb;
    const char *s = NULL;
    assert_int_equal(json_get_id(j, "node_id", true, 64, &s, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "'node_id'"));
    assert_int_equal(json_get_id(j, "ok", true, 64, &s, &eb), 0);
    assert_string_equal(s, "JG1");
    cJSON_Delete(j);
}

/* Log tails keep their text: valid UTF-8 (Chinese log lines) stays as it
 * is, and only NUL and broken sequences are replaced. */
static void test_utf8_clean(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"plain ascii", 11, "plain ascii"},
        {"\xe4\xbb\xbb\xe5\x8a\xa1\xe5\xa4\xb1\xe8\xb4\xa5", 12,
         "\xe4\xbb\xbb\xe5\x8a\xa1\xe5\xa4\xb1\xe8\xb4\xa5"}, /* 任务失败 */
        {"a\0b", 3, "a\xef\xbf\xbd" "b"},
        {"\xa1\xbbx", 3, "\xef\xbf\xbd\xef\xbf\xbdx"},       /* a cut at the front */
        {"x\xe4\xbb", 3, "x\xef\xbf\xbd\xef\xbf\xbd"},       /* a cut at the end */
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},         /* overlong '/' */
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"},         /* 4-byte emoji */
        {"\xf4\x90\x80\x80", 4,
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"", 0, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *o = json_utf8_clean(cases[i].in, cases[i].n);
        assert_string_equal(o, cases[i].out);
        free(o);
    }
}

/* cJSON would cut "a\u0000b" to "a": a NUL escape is refused, naming the
 * member that holds it. */
static void test_nul_refused(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"{\"job_id\":\"a\\u0000b\"}", "job_id: a string holds"},
        {"{\"config\":{\"role\":{\"guest\":[\"A\",\"B\\u0000\"]}}}",
         "config.role.guest[1]: a string holds"},
        {"{\"a\":1,\"b\":{\"c\\u0000d\":2}}", "b.c: a string holds"},
        {"[1,{\"k\":\"\\u0000\"}]", "[1].k: a string holds"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gw_errbuf eb;
        gw_errbuf_clear(&eb);
        cJSON *j = json_parse(cases[i].in, strlen(cases[i].in), &eb);
        assert_null(j);
        if (!strstr(eb.msg, cases[i].want))
            fail_msg("%s: got '%s', want '%s'", cases[i].in, eb.msg, cases[i].want);
    }
    /* an escaped backslash followed by u0000 is text, not NUL */
    const char *ok = "{\"path\":\"C:\\\\u0000\"}";
    struct gw_errbuf eb;
    cJSON *j = json_parse(ok, strlen(ok), &eb);
    assert_non_null(j);
    cJSON_Delete(j);
}

int main(void)
{
    json_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),   cmocka_unit_test(test_get_str),
        cmocka_unit_test(test_get_int_bool),   cmocka_unit_test(test_get_obj_arr),
        cmocka_unit_test(test_add_str_never_null), cmocka_unit_test(test_ids),
        cmocka_unit_test(test_utf8_clean),
        cmocka_unit_test(test_nul_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
