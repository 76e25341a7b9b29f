/* test_cfg.c - configuration: defaults, file, environment, and every kind
 * of broken input names its place. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/cfg.h"

static char *const no_env[] = {NULL};
static char *const env_node[] = {"GW_NODE_ID=JG0100001100000010", NULL};

static struct gw_cfg *load(const char *yaml, char *const *env, struct gw_errbuf *eb)
{
    gw_errbuf_clear(eb);
    return cfg_load_string(yaml, strlen(yaml), "t.yaml", env, eb);
}

static void fails_with(const char *yaml, char *const *env, const char *want)
{
    struct gw_errbuf eb;
    struct gw_cfg *c = load(yaml, env, &eb);
    if (c) {
        cfg_free(c);
        fail_msg("accepted: %s", yaml);
    }
    if (!strstr(eb.msg, want))
        fail_msg("message '%s' lacks '%s'", eb.msg, want);
}

static void test_defaults(void **state)
{
    (void)state;
    struct gw_errbuf eb;
    struct gw_cfg *c = load("", env_node, &eb);
    assert_non_null(c);
    assert_string_equal(c->node_id, "JG0100001100000010");
    assert_string_equal(c->http_host, "127.0.0.1");
    assert_int_equal(c->http_port, 8080);
    assert_int_equal(c->http_body_max, 16777216);
    assert_int_equal(c->db_pool_size, 4);
    assert_string_equal(c->docker_host, "unix:///var/run/docker.sock");
    assert_string_equal(c->log_level, "info");
    cfg_free(c);
    /* node_id has no default */
    fails_with("", no_env, "node_id: required");
}

static void test_example_file_loads(void **state)
{
    (void)state;
    struct gw_errbuf eb;
    struct gw_cfg *c = cfg_load("conf/gateway.example.yaml", no_env, &eb);
    if (!c)
        fail_msg("%s", eb.msg);
    assert_string_equal(c->node_id, "JG0100001100000010");
    assert_int_equal(c->shutdown_timeout_s, 10);
    cfg_free(c);
    c = cfg_load("conf/test.yaml", no_env, &eb);
    assert_non_null(c);
    cfg_free(c);
    assert_null(cfg_load("conf/does-not-exist.yaml", no_env, &eb));
    assert_non_null(strstr(eb.msg, "does-not-exist.yaml"));
}

static void test_env_overrides(void **state)
{
    (void)state;
    char *const env[] = {"GW_NODE_ID=JG0100001100000020", "GW_HTTP_PORT=9999",
                         "GW_DB_DSN=host=/tmp dbname=x", "GW_LOG_LEVEL=debug",
                         "GW_DOCKER_HOST=tcp://127.0.0.1:2375", "GW_ROUTES_FILE=r.yaml",
                         "GW_DATA_DIR=/tmp/d", "GW_HTTP_HOST=::1", "OTHER=1", NULL};
    struct gw_errbuf eb;
    struct gw_cfg *c = load("node_id: JG1\nhttp:\n  port: 8081\n", env, &eb);
    assert_non_null(c);
    assert_string_equal(c->node_id, "JG0100001100000020");
    assert_int_equal(c->http_port, 9999);
    assert_string_equal(c->db_dsn, "host=/tmp dbname=x");
    assert_string_equal(c->log_level, "debug");
    assert_string_equal(c->docker_host, "tcp://127.0.0.1:2375");
    assert_string_equal(c->routes_file, "r.yaml");
    assert_string_equal(c->data_dir, "/tmp/d");
    assert_string_equal(c->http_host, "::1");
    cfg_free(c);
    char *const bad[] = {"GW_NODE_ID=JG1", "GW_HTTP_PORT=abc", NULL};
    fails_with("", bad, "GW_HTTP_PORT");
    char *const bad2[] = {"GW_NODE_ID=JG1", "GW_DB_POOL_SIZE=0", NULL};
    fails_with("", bad2, "GW_DB_POOL_SIZE");
    char *const bad3[] = {"GW_NODE_ID=JG1", "GW_LOG_LEVEL=loud", NULL};
    fails_with("", bad3, "log.level");
}

static void test_errors_name_line(void **state)
{
    (void)state;
    fails_with("node_id: JG1\nhttp:\n  prot: 80\n", no_env, "t.yaml:3: unknown key 'http.prot'");
    fails_with("node_id: JG1\nbogus: 1\n", no_env, "t.yaml:2: unknown key 'bogus'");
    fails_with("node_id: JG1\nnosuch:\n  a: 1\n", no_env, "t.yaml:2: unknown section 'nosuch'");
    fails_with("node_id: JG1\nnode_id: JG2\n", no_env, "t.yaml:2: duplicate key 'node_id'");
    fails_with("node_id: JG1\nhttp:\n  port: eighty\n", no_env, "t.yaml:3");
    fails_with("node_id: JG1\nhttp:\n  port: 70000\n", no_env, "1..65535");
    fails_with("node_id: JG1\nhttp:\n  port: 99999999999999999999\n", no_env, "t.yaml:3");
    fails_with("node_id: JG1\nhttp:\n  port: [1, 2]\n", no_env, "t.yaml:3: 'http.port' must be a scalar");
    fails_with("node_id: JG1\nhttp: 8080\n", no_env, "unknown key 'http'");
    fails_with("node_id: JG1\nhttp:\n  host:\n    a: b\n", no_env, "must be a scalar, not a mapping");
    fails_with("- a\n- b\n", no_env, "t.yaml:1: the top level must be a mapping");
    fails_with("just a string\n", no_env, "top level must be a mapping");
}

static void test_broken_yaml(void **state)
{
    (void)state;
    fails_with("node_id: \"JG1\nhttp:\n", no_env, "invalid YAML");
    fails_with("node_id: JG1\nhttp:\n  port: 1\n bad: 2\n", no_env, "t.yaml:4: invalid YAML");
    fails_with("node_id: JG1\n\thttp: 1\n", no_env, "invalid YAML");
    fails_with("node_id: [JG1\n", no_env, "t.yaml:1");
    fails_with("node_id: JG1\nlog: {level: debug\n", no_env, "invalid YAML");
}

static void test_hostile_values(void **state)
{
    (void)state;
    char big[6000];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char yaml[6100];
    snprintf(yaml, sizeof(yaml), "node_id: %s\n", big);
    fails_with(yaml, no_env, "longer than");
    fails_with("node_id: \"JG/../x\"\n", no_env, "node_id: only letters");
    fails_with("node_id: \"a\\\"b\"\n", no_env, "node_id: only letters");
    fails_with("node_id: \".hidden\"\n", no_env, "node_id");
    fails_with("node_id: JG1\ndocker:\n  host: ftp://x\n", no_env, "docker.host");
    fails_with("node_id: \"a\\0b\"\n", no_env, "NUL");
}

/* http.platform_allow: loopback by default, networks of both families,
 * v4-mapped v6 peers, "*", and broken lists refused naming the key. */
static void test_platform_allow(void **state)
{
    (void)state;
    struct gw_errbuf eb;
    struct gw_cfg *c = load("node_id: JG1\n", no_env, &eb);
    assert_non_null(c);
    assert_true(cfg_platform_allowed(c, "127.0.0.1"));
    assert_true(cfg_platform_allowed(c, "127.9.8.7"));
    assert_true(cfg_platform_allowed(c, "::1"));
    assert_true(cfg_platform_allowed(c, "::ffff:127.0.0.1"));
    assert_false(cfg_platform_allowed(c, "10.1.2.3"));
    assert_false(cfg_platform_allowed(c, "128.0.0.1"));
    assert_false(cfg_platform_allowed(c, "::2"));
    assert_false(cfg_platform_allowed(c, "not-an-address"));
    assert_false(cfg_platform_allowed(c, NULL));
    cfg_free(c);
    c = load("node_id: JG1\nhttp:\n  platform_allow: \"172.17.0.0/16, 10.0.0.5,fd00::/8\"\n",
             no_env, &eb);
    assert_non_null(c);
    assert_true(cfg_platform_allowed(c, "172.17.200.1"));
    assert_false(cfg_platform_allowed(c, "172.18.0.1"));
    assert_true(cfg_platform_allowed(c, "10.0.0.5"));
    assert_false(cfg_platform_allowed(c, "10.0.0.6"));
    assert_true(cfg_platform_allowed(c, "fd12::1"));
    assert_false(cfg_platform_allowed(c, "127.0.0.1"));
    cfg_free(c);
    c = load("node_id: JG1\nhttp:\n  platform_allow: \"10.0.0.0/9\"\n", no_env, &eb);
    assert_non_null(c);
    assert_true(cfg_platform_allowed(c, "10.127.255.255"));
    assert_false(cfg_platform_allowed(c, "10.128.0.0"));
    cfg_free(c);
    c = load("node_id: JG1\nhttp:\n  platform_allow: \"*\"\n", no_env, &eb);
    assert_non_null(c);
    assert_true(cfg_platform_allowed(c, "203.0.113.9"));
    cfg_free(c);
    fails_with("node_id: JG1\nhttp:\n  platform_allow: \"300.1.1.1\"\n", no_env,
               "http.platform_allow: '300.1.1.1'");
    fails_with("node_id: JG1\nhttp:\n  platform_allow: \"10.0.0.0/33\"\n", no_env,
               "http.platform_allow");
    fails_with("node_id: JG1\nhttp:\n  platform_allow: \"10.0.0.0/\"\n", no_env,
               "http.platform_allow");
    fails_with("node_id: JG1\nhttp:\n  platform_allow: \" , \"\n", no_env,
               "http.platform_allow: empty");
    fails_with("node_id: JG1\nhttp:\n  platform_allow: \"::1/129\"\n", no_env,
               "http.platform_allow");
}

struct diff_seen {
    int n;
    bool port_reloadable, level_reloadable;
    bool saw_port, saw_level;
};

static void on_diff(void *arg, const char *key, bool reloadable)
{
    struct diff_seen *d = arg;
    d->n++;
    if (strcmp(key, "http.port") == 0) {
        d->saw_port = true;
        d->port_reloadable = reloadable;
    }
    if (strcmp(key, "log.level") == 0) {
        d->saw_level = true;
        d->level_reloadable = reloadable;
    }
}

static void test_diff_and_print(void **state)
{
    (void)state;
    struct gw_errbuf eb;
    struct gw_cfg *a = load("node_id: JG1\ndb:\n  dsn: \"host=/x password=hunter2\"\n", no_env, &eb);
    struct gw_cfg *b = load("node_id: JG1\nhttp:\n  port: 81\nlog:\n  level: debug\n", no_env, &eb);
    assert_non_null(a);
    assert_non_null(b);
    struct diff_seen d = {0};
    cfg_diff(a, b, on_diff, &d);
    assert_int_equal(d.n, 3); /* port, level, dsn */
    assert_true(d.saw_port);
    assert_false(d.port_reloadable);
    assert_true(d.saw_level);
    assert_true(d.level_reloadable);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    cfg_print(a, f);
    fclose(f);
    assert_null(strstr(out, "hunter2"));
    assert_non_null(strstr(out, "dsn: \"***\""));
    assert_non_null(strstr(out, "node_id: \"JG1\""));
    /* what cfg_print writes loads back */
    struct gw_cfg *c = load(out, no_env, &eb);
    if (!c)
        fail_msg("%s\n%s", eb.msg, out);
    cfg_free(c);
    free(out);
    cfg_free(a);
    cfg_free(b);
}

/* ---- SIGHUP: cfg_reload, driven by the key table --------------------------- */

static char *printed(const struct gw_cfg *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    cfg_print(c, f);
    fclose(f);
    return buf;
}

struct seen {
    const char *key;
    int calls;
    bool applied;
};

static void on_key(void *arg, const char *key, bool applied)
{
    struct seen *s = arg;
    s->calls++;
    s->key = key;
    s->applied = applied;
}

/* A config that differs from the defaults in exactly the key `name`, or
 * NULL if none of the candidate values is valid for it. */
static struct gw_cfg *differing_in(const struct gw_cfg *base, const char *name)
{
    static const char *const candidates[] = {"2", "7", "3", "100", "1000", "debug",
                                             "10.0.0.0/8", "unix:///tmp/x.sock", "x_y", "1", "2048", "5000", "0",
                                             "536870912", "262144"};
    char envname[128] = "GW_";
    size_t o = 3;
    for (const char *p = name; *p && o < sizeof(envname) - 1; p++)
        envname[o++] = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    envname[o] = '\0';
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        char kv[200];
        snprintf(kv, sizeof(kv), "%s=%s", envname, candidates[i]);
        char *env[] = {"GW_NODE_ID=JG0100001100000010", kv, NULL};
        if (strcmp(name, "node_id") == 0)
            env[0] = kv;
        struct gw_errbuf eb;
        gw_errbuf_clear(&eb);
        struct gw_cfg *c = cfg_load_string(NULL, 0, "t", env, &eb);
        if (!c)
            continue;
        struct seen s = {0};
        cfg_diff(base, c, on_key, &s);
        if (s.calls == 1 && strcmp(s.key, name) == 0)
            return c;
        cfg_free(c);
    }
    return NULL;
}

static void test_reload_table_driven(void **state)
{
    (void)state;
    /* Every key of the table: a reloadable one takes its new value in the
     * running config; any other keeps the running value and is reported as
     * needing a restart. */
    int tested = 0, reloadable = 0;
    for (size_t i = 0; i < cfg_key_count(); i++) {
        const char *name = cfg_key_name(i);
        struct gw_errbuf eb;
        struct gw_cfg *cur = load("node_id: JG0100001100000010\n", no_env, &eb);
        assert_non_null(cur);
        struct gw_cfg *next = differing_in(cur, name);
        if (!next) {
            print_error("no test value for %s\n", name);
            fail();
        }
        char *want_new = printed(next), *want_old = printed(cur);
        struct seen s = {0};
        int applied = cfg_reload(cur, next, on_key, &s);
        cfg_free(next);
        char *got = printed(cur);
        assert_int_equal(s.calls, 1);
        assert_string_equal(s.key, name);
        assert_int_equal(s.applied, cfg_key_reloadable(name));
        assert_int_equal(applied, cfg_key_reloadable(name) ? 1 : 0);
        assert_string_equal(got, cfg_key_reloadable(name) ? want_new : want_old);
        reloadable += cfg_key_reloadable(name);
        tested++;
        free(got);
        free(want_new);
        free(want_old);
        cfg_free(cur);
    }
    assert_int_equal((size_t)tested, cfg_key_count());
    assert_true(reloadable > 20);
    /* what is derived from a reloaded key moves with it */
    struct gw_errbuf eb;
    struct gw_cfg *cur = load("node_id: JG0100001100000010\n", no_env, &eb);
    struct gw_cfg *next = load("node_id: JG0100001100000010\nhttp:\n  platform_allow: 10.0.0.0/8\n",
                               no_env, &eb);
    assert_true(cfg_platform_allowed(cur, "127.0.0.1"));
    assert_int_equal(cfg_reload(cur, next, NULL, NULL), 1);
    assert_false(cfg_platform_allowed(cur, "127.0.0.1"));
    assert_true(cfg_platform_allowed(cur, "10.1.2.3"));
    cfg_free(next);
    cfg_free(cur);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_example_file_loads),
        cmocka_unit_test(test_env_overrides),   cmocka_unit_test(test_errors_name_line),
        cmocka_unit_test(test_broken_yaml),     cmocka_unit_test(test_hostile_values),
        cmocka_unit_test(test_diff_and_print), cmocka_unit_test(test_platform_allow),
        cmocka_unit_test(test_reload_table_driven),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
