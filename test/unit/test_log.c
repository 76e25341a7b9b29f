/* test_log.c - the escaper and the line format hold against hostile strings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/json.h"
#include "gateway/log.h"

static void esc_eq(const char *in, size_t len, const char *want)
{
    char out[256];
    size_t n = log_escape(out, sizeof(out), in, len);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_escape_basic(void **state)
{
    (void)state;
    esc_eq("plain", 5, "plain");
    esc_eq("a\"b\\c", 5, "a\\\"b\\\\c");
    esc_eq("l1\nl2\r\t", 7, "l1\\nl2\\r\\t");
    esc_eq("\x01\x1f\x7f", 3, "\\u0001\\u001f\\u007f");
    esc_eq("nul\0after", 9, "nul\\u0000after");
}

static void test_escape_utf8(void **state)
{
    (void)state;
    esc_eq("h\xc3\xa9llo", 6, "h\xc3\xa9llo");                /* valid 2-byte */
    esc_eq("\xe4\xb8\xad", 3, "\xe4\xb8\xad");                /* valid 3-byte */
    esc_eq("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80");        /* valid 4-byte */
    esc_eq("\xff", 1, "\\ufffd");                             /* never valid */
    esc_eq("\xc0\xaf", 2, "\\ufffd\\ufffd");                  /* overlong '/' */
    esc_eq("\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd");       /* surrogate */
    esc_eq("\xe4\xb8", 2, "\\ufffd\\ufffd");                  /* truncated */
    esc_eq("\xf4\x90\x80\x80", 4, "\\ufffd\\ufffd\\ufffd\\ufffd"); /* > U+10FFFF */
}

static void test_escape_truncates_on_boundary(void **state)
{
    (void)state;
    char out[8];
    size_t n = log_escape(out, sizeof(out), "\"\"\"\"\"", 5);
    /* 3 escapes of 2 bytes fit in 7 usable bytes, never half an escape */
    assert_int_equal(n, 6);
    assert_string_equal(out, "\\\"\\\"\\\"");
    n = log_escape(out, sizeof(out), "\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad", 9);
    assert_int_equal(n, 6);
    assert_int_equal(log_escape(out, 0, "x", 1), 0);
}

/* Capture one log line written through a pipe and parse it as JSON. */
static cJSON *capture(void (*emit)(void))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    log_set_fd(fds[1]);
    emit();
    log_set_fd(2);
    close(fds[1]);
    char buf[16384];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    /* exactly one line */
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    assert_true(nl[1] == '\0');
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    return j;
}

static void emit_hostile(void)
{
    struct log_ctx ctx = {.req_id = "r1", .job_id = "job\"\n{\"level\":\"error\"}"};
    log_kv(LOG_LEVEL_INFO, &ctx, "http.request", "msg with \x1b[31m ansi and \xff",
           "path", "/x\r\ninjected: 1", "dsn", "host=db password=hunter2", "token", "eyJ.secret",
           NULL);
}

static void test_line_is_one_valid_object(void **state)
{
    (void)state;
    log_set_level(LOG_LEVEL_DEBUG);
    cJSON *j = capture(emit_hostile);
    assert_string_equal(cJSON_GetObjectItem(j, "level")->valuestring, "info");
    assert_string_equal(cJSON_GetObjectItem(j, "event")->valuestring, "http.request");
    assert_string_equal(cJSON_GetObjectItem(j, "job_id")->valuestring,
                        "job\"\n{\"level\":\"error\"}");
    assert_string_equal(cJSON_GetObjectItem(j, "path")->valuestring, "/x\r\ninjected: 1");
    /* secrets never reach the line */
    assert_string_equal(cJSON_GetObjectItem(j, "dsn")->valuestring, "***");
    assert_string_equal(cJSON_GetObjectItem(j, "token")->valuestring, "***");
    assert_non_null(strstr(cJSON_GetObjectItem(j, "ts")->valuestring, "Z"));
    cJSON_Delete(j);
}

static void emit_huge(void)
{
    static char big[20000];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_kv(LOG_LEVEL_WARN, NULL, "x.y", big, "k", big, NULL);
}

static void test_huge_line_stays_valid(void **state)
{
    (void)state;
    cJSON *j = capture(emit_huge);
    assert_string_equal(cJSON_GetObjectItem(j, "level")->valuestring, "warn");
    cJSON_Delete(j);
}

static void test_levels(void **state)
{
    (void)state;
    enum log_level lv;
    assert_true(log_level_parse("debug", &lv));
    assert_int_equal(lv, LOG_LEVEL_DEBUG);
    assert_false(log_level_parse("verbose", &lv));
    assert_false(log_level_parse(NULL, &lv));
    log_set_level(LOG_LEVEL_WARN);
    assert_false(log_enabled(LOG_LEVEL_INFO));
    assert_true(log_enabled(LOG_LEVEL_ERROR));
    log_set_level(LOG_LEVEL_INFO);
    assert_true(log_is_secret_key("DSN"));
    assert_false(log_is_secret_key("path"));
}

int main(void)
{
    json_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_basic),
        cmocka_unit_test(test_escape_utf8),
        cmocka_unit_test(test_escape_truncates_on_boundary),
        cmocka_unit_test(test_line_is_one_valid_object),
        cmocka_unit_test(test_huge_line_stays_valid),
        cmocka_unit_test(test_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
