/* test_taskenv.c - the container environment matches FATE-Flow's formatting
 * byte for byte (expected strings produced with CPython's str() and
 * json.dumps). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "container/taskenv.h"
#include "gateway/json.h"

static void pystr_is(const char *json, const char *want)
{
    cJSON *v = cJSON_Parse(json);
    assert_non_null(v);
    char *s = taskenv_pystr(v);
    assert_string_equal(s, want);
    free(s);
    cJSON_Delete(v);
}

static void test_pystr_scalars(void **state)
{
    (void)state;
    pystr_is("true", "True");
    pystr_is("false", "False");
    pystr_is("-1", "-1");
    pystr_is("0", "0");
    pystr_is("0.0001", "0.0001");
    pystr_is("1e-05", "1e-05");
    pystr_is("0.1", "0.1");
    pystr_is("123.456", "123.456");
    pystr_is("1.5e300", "1.5e+300");
    pystr_is("123456789.123", "123456789.123");
    pystr_is("0.00012", "0.00012");
    pystr_is("2.5e-5", "2.5e-05");
    pystr_is("1000000000000000.5", "1000000000000000.5");
    pystr_is("3e-7", "3e-07");
    pystr_is("\"plain text\"", "plain text");
}

static void test_pyjson_containers(void **state)
{
    (void)state;
    cJSON *v = cJSON_Parse("{\"a\":[1,2.5,\"x\"],\"b\":null,\"c\":\"\xe4\xb8\xad\xe6\x96\x87\\u007f\\\"\\\\\","
                           "\"d\":\"\xf0\x9f\x98\x80\"}");
    assert_non_null(v);
    char *s = taskenv_pystr(v);
    assert_string_equal(s, "{\"a\": [1, 2.5, \"x\"], \"b\": null, \"c\": \"\\u4e2d\\u6587\\u007f\\\"\\\\\", "
                           "\"d\": \"\\ud83d\\ude00\"}");
    free(s);
    cJSON_Delete(v);
}

static cJSON *J(const char *s)
{
    cJSON *v = cJSON_Parse(s);
    assert_non_null(v);
    return v;
}

static void test_build_full(void **state)
{
    (void)state;
    cJSON *nodes = J("{\"guest\":[\"JG0100001100000010\"],\"host\":[\"JG0100001100000020\"]}");
    cJSON *params = J("{\"salt\":\"s1\",\"max_iter\":10,\"lr\":0.0001,\"flag\":true,\"opt\":{\"k\":1},"
                      "\"skip\":null}");
    cJSON *inputs = J("{\"data\":{\"namespace\":\"ns\",\"name\":\"users\"}}");
    cJSON *outputs = J("{\"hashed\":{\"namespace\":\"guest-JG0100001100000010-dataset-hashed\","
                       "\"name\":\"task-1\"}}");
    struct taskenv_in in = {
        .job_id = "job-1", .task_id = "task-1", .component = "hash_ids", .self_role = "guest",
        .self_index = 0, .nodes = nodes, .params = params, .inputs = inputs, .outputs = outputs,
        .storage = "file:///data/storage",
        .callback = "http://127.0.0.1:8080/v1/platform/schedule/task/callback",
        .log_path = "/data/logs",
    };
    struct taskenv env;
    struct gw_errbuf eb;
    assert_int_equal(taskenv_build(&in, &env, &eb), 0);
    assert_string_equal(taskenv_get(&env, "runtime.component.name"), "hash_ids");
    assert_string_equal(taskenv_get(&env, "runtime.component.parameter.salt"), "s1");
    assert_string_equal(taskenv_get(&env, "runtime.component.parameter.max_iter"), "10");
    assert_string_equal(taskenv_get(&env, "runtime.component.parameter.lr"), "0.0001");
    assert_string_equal(taskenv_get(&env, "runtime.component.parameter.flag"), "True");
    assert_string_equal(taskenv_get(&env, "runtime.component.parameter.opt"), "{\"k\": 1}");
    assert_null(taskenv_get(&env, "runtime.component.parameter.skip"));
    assert_string_equal(taskenv_get(&env, "runtime.component.input.data"),
                        "{\"name\": \"users\", \"namespace\": \"ns\"}");
    assert_string_equal(taskenv_get(&env, "runtime.component.output.hashed"),
                        "{\"name\": \"task-1\", \"namespace\": "
                        "\"guest-JG0100001100000010-dataset-hashed\"}");
    assert_string_equal(taskenv_get(&env, "config.task_id"), "task-1");
    assert_string_equal(taskenv_get(&env, "config.session_id"), "session_job-1");
    assert_string_equal(taskenv_get(&env, "config.token"), "session_job-1");
    assert_null(taskenv_get(&env, "config.trace_id"));
    assert_string_equal(taskenv_get(&env, "config.node_id.guest.0"), "JG0100001100000010");
    assert_string_equal(taskenv_get(&env, "config.inst_id.host.0"), "JG0100001100000020");
    assert_string_equal(taskenv_get(&env, "config.self_role"), "guest.0");
    assert_string_equal(taskenv_get(&env, "config.log.path"), "/data/logs");
    assert_string_equal(taskenv_get(&env, "system.storage"), "file:///data/storage");
    assert_string_equal(taskenv_get(&env, "system.callback"),
                        "http://127.0.0.1:8080/v1/platform/schedule/task/callback");
    assert_null(taskenv_get(&env, "system.transport"));
    assert_null(env.vars[env.n]);
    taskenv_cleanup(&env);
    cJSON_Delete(nodes);
    cJSON_Delete(params);
    cJSON_Delete(inputs);
    cJSON_Delete(outputs);
}

static void test_build_bad_input(void **state)
{
    (void)state;
    struct taskenv env;
    struct gw_errbuf eb;
    struct taskenv_in in = {.job_id = "j", .task_id = "t", .component = "c", .self_role = "guest",
                            .storage = "file:///s", .callback = "http://127.0.0.1:1/x"};
    cJSON *bad_nodes = J("{\"guest\":\"JG1\"}");
    in.nodes = bad_nodes;
    assert_int_equal(taskenv_build(&in, &env, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "guest"));
    cJSON *bad_nodes2 = J("{\"guest\":[1]}");
    in.nodes = bad_nodes2;
    assert_int_equal(taskenv_build(&in, &env, &eb), GW_EINVAL);
    in.nodes = NULL;
    cJSON *bad_addr = J("{\"data\":{\"namespace\":\"ns\"}}");
    in.inputs = bad_addr;
    assert_int_equal(taskenv_build(&in, &env, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "input 'data'"));
    in.inputs = NULL;
    in.callback = NULL;
    assert_int_equal(taskenv_build(&in, &env, &eb), GW_EINVAL);
    in.callback = "http://127.0.0.1:1/x";
    in.self_index = -1;
    assert_int_equal(taskenv_build(&in, &env, &eb), GW_EINVAL);
    cJSON_Delete(bad_nodes);
    cJSON_Delete(bad_nodes2);
    cJSON_Delete(bad_addr);
}

int main(void)
{
    json_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pystr_scalars),
        cmocka_unit_test(test_pyjson_containers),
        cmocka_unit_test(test_build_full),
        cmocka_unit_test(test_build_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
