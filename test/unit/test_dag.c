/*
 * test_dag.c - the BFIA job DSL (scheduler/dag.c): the real platform fixture
 * parses and answers the right roles, edges and addresses; Kuscia-shaped
 * components are normalised; every malformed or hostile input is refused
 * with a message that names the field.
 *
 * The fixture is read from test/unit/data/ (tests run from the repository
 * root).  JSON literals below are written with ' for " (see pq()).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/json.h"
#include "scheduler/dag.h"

#define FIXTURE "test/unit/data/platform-create-all-psi-sbt.json"
#define NODE10 "JG0100001100000010"

/* ---- helpers ------------------------------------------------------------ */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *nb = realloc(buf, cap);
            assert_non_null(nb);
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        if (r == 0)
            break;
        len += r;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static cJSON *load_fixture(void)
{
    char *text = read_file(FIXTURE);
    if (!text)
        fail_msg("%s not found (run from the repository root)", FIXTURE);
    struct gw_errbuf eb;
    cJSON *j = json_parse(text, strlen(text), &eb);
    free(text);
    assert_non_null(j);
    return j;
}

/* Parse a JSON literal written with ' instead of ". */
static cJSON *pq(const char *tmpl)
{
    size_t n = strlen(tmpl);
    char *s = malloc(n + 1);
    assert_non_null(s);
    for (size_t i = 0; i <= n; i++)
        s[i] = tmpl[i] == '\'' ? '"' : tmpl[i];
    cJSON *j = cJSON_Parse(s);
    if (!j)
        print_error("test bug: malformed JSON literal: %s\n", s);
    free(s);
    assert_non_null(j);
    return j;
}

static struct dag *parse_ok_json(const cJSON *body)
{
    struct gw_errbuf eb;
    memset(&eb, 0, sizeof(eb));
    struct dag *d = dag_parse(body, &eb);
    if (!d)
        fail_msg("dag_parse refused a valid body: %s", eb.msg);
    return d;
}

static struct dag *parse_ok(const char *tmpl)
{
    cJSON *body = pq(tmpl);
    struct dag *d = parse_ok_json(body);
    cJSON_Delete(body); /* the dag holds its own copy */
    return d;
}

/* dag_parse(body) must fail and its message must contain want. */
static void bad_json(const cJSON *body, const char *what, const char *want)
{
    struct gw_errbuf eb;
    memset(&eb, 0, sizeof(eb));
    struct dag *d = dag_parse(body, &eb);
    if (d || !strstr(eb.msg, want)) {
        print_error("case: %s\nwant: %s\ngot:  %s\n", what, want, d ? "(accepted)" : eb.msg);
        dag_free(d);
        fail();
    }
}

static void bad(const char *tmpl, const char *want)
{
    cJSON *body = pq(tmpl);
    bad_json(body, tmpl, want);
    cJSON_Delete(body);
}

static const char *str_at(const cJSON *arr, int i)
{
    const cJSON *e = cJSON_GetArrayItem(arr, i);
    assert_true(cJSON_IsString(e));
    return e->valuestring;
}

static const char *str_of(const cJSON *obj, const char *key)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(e))
        fail_msg("member '%s' is not a string", key);
    return e->valuestring;
}

static void assert_addr(const cJSON *a, const char *ns, const char *name)
{
    assert_true(cJSON_IsObject(a));
    assert_string_equal(str_of(a, "namespace"), ns);
    assert_string_equal(str_of(a, "name"), name);
    assert_int_equal(cJSON_GetArraySize(a), 2);
}

/* Shorthands for bodies. */
#define CFG_ROLE "'role':{'guest':['A'],'host':['B']}"
#define CFG "'config':{'initiator':{'role':'guest','node_id':'A'}," CFG_ROLE ",'task_params':{}}"
#define COMP(n) "{'name':'" n "','componentName':'C','provider':'p','version':'1'}"
#define COMPIN(n, k)                                                                          \
    "{'name':'" n "','componentName':'C','provider':'p','version':'1',"                       \
    "'input':[{'type':'dataset','key':'" k "'}],'output':[{'type':'dataset','key':'out'}]}"
#define BODY(comps) "{'dag':{'components':[" comps "]}," CFG "}"
#define BODYCFG(cfg) "{'dag':{'components':[" COMP("a") "]},'config':" cfg "}"
#define INI "'initiator':{'role':'guest','node_id':'A'}"

/* A one-component body built with the cJSON API (for names no literal can hold). */
static cJSON *body_named(const char *name, const char *provider)
{
    cJSON *body = pq(BODY(COMP("x")));
    cJSON *c = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(body, "dag"),
                                         "components"),
        0);
    cJSON_ReplaceItemInObjectCaseSensitive(c, "name", cJSON_CreateString(name));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "provider", cJSON_CreateString(provider));
    return body;
}

/* ---- (1) the real fixture ----------------------------------------------- */

static void test_fixture_parses(void **state)
{
    (void)state;
    cJSON *body = load_fixture();
    struct dag *d = parse_ok_json(body);
    cJSON_Delete(body); /* everything below must live in the dag's copy */

    assert_int_equal(dag_ntasks(d), 2);
    const struct dag_task *t0 = dag_task(d, 0), *t1 = dag_task(d, 1);
    assert_string_equal(t0->name, "intersect_rsa_1");
    assert_string_equal(t0->component, "Intersection");
    assert_string_equal(t0->provider, "unionpay");
    assert_string_equal(t0->version, "2.0.0");
    assert_int_equal(t0->n_ups, 0);
    assert_string_equal(t1->name, "hetero_secureboost_1");
    assert_string_equal(t1->component, "HeteroSecureBoost");
    assert_int_equal(t1->n_ups, 1);
    assert_int_equal(t1->ups[0], dag_find(d, "intersect_rsa_1"));
    assert_int_equal(dag_find(d, "intersect_rsa_1"), 0);
    assert_int_equal(dag_find(d, "hetero_secureboost_1"), 1);
    assert_int_equal(dag_find(d, "nope"), -1);

    assert_string_equal(dag_initiator(d), NODE10);
    assert_string_equal(dag_sync_type(d), "poll");
    assert_null(dag_scheduler(d));
    assert_non_null(dag_json(d));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(dag_config(d), "task_params"));

    /* both roles are played by the same node: one party */
    cJSON *parties = dag_parties(d);
    assert_int_equal(cJSON_GetArraySize(parties), 1);
    assert_string_equal(str_at(parties, 0), NODE10);
    cJSON_Delete(parties);

    cJSON *roles = dag_local_roles(d, NODE10);
    assert_int_equal(cJSON_GetArraySize(roles), 2);
    assert_string_equal(str_at(roles, 0), "guest");
    assert_string_equal(str_at(roles, 1), "host");
    cJSON_Delete(roles);
    roles = dag_local_roles(d, "JG0100001100000099");
    assert_int_equal(cJSON_GetArraySize(roles), 0);
    cJSON_Delete(roles);

    int idx[4] = {-1, -1, -1, -1};
    assert_int_equal(dag_role_indexes(d, "guest", NODE10, idx, 4), 1);
    assert_int_equal(idx[0], 0);
    assert_int_equal(dag_role_indexes(d, "host", NODE10, idx, 4), 1);
    assert_int_equal(idx[0], 0);
    assert_int_equal(dag_role_indexes(d, "arbiter", NODE10, idx, 4), 0);
    assert_int_equal(dag_role_indexes(d, "guest", "JG0100001100000099", idx, 4), 0);
    assert_int_equal(dag_role_indexes(d, "guest", NODE10, idx, 0), 0);

    dag_free(d);
}

static void test_fixture_params_and_io(void **state)
{
    (void)state;
    cJSON *body = load_fixture();
    struct dag *d = parse_ok_json(body);
    cJSON_Delete(body);

    cJSON *p = dag_task_params(d, 1, "guest", 0);
    assert_true(cJSON_GetObjectItemCaseSensitive(p, "learning_rate")->valuedouble == 0.5);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(p, "num_trees")->valueint, 2);
    assert_string_equal(str_of(p, "label"), "y");
    cJSON_Delete(p);
    p = dag_task_params(d, 0, "host", 0);
    assert_string_equal(str_of(p, "intersect_method"), "rsa");
    assert_null(cJSON_GetObjectItemCaseSensitive(p, "dataset_id"));
    cJSON_Delete(p);

    cJSON *d0 = pq("{'roleList':['guest','host'],'inputData':[{'name':'train_data'}],"
                   "'outputData':[{'name':'train_data'},{'name':'train-intersected-report'}]}");
    cJSON *d1 = pq("{'roleList':['guest','host'],'inputData':[{'name':'train_data'}],"
                   "'outputData':[{'name':'train_data'},{'name':'model'},{'name':'r0'},"
                   "{'name':'r1'},{'name':'r2'}]}");
    static const char *const role[] = {"guest", "host"};
    static const char *const dsname[] = {"test_guest", "test_host"};
    for (int r = 0; r < 2; r++) {
        struct gw_errbuf eb;
        cJSON *in0 = NULL, *out0 = NULL, *in1 = NULL, *out1 = NULL;
        assert_int_equal(dag_task_io(d, 0, d0, role[r], 0, "job1", &in0, &out0, &eb), 0);
        assert_int_equal(cJSON_GetArraySize(in0), 1);
        assert_addr(cJSON_GetObjectItemCaseSensitive(in0, "train_data"), "testspace", dsname[r]);
        assert_int_equal(cJSON_GetArraySize(out0), 2);
        char want[128];
        snprintf(want, sizeof(want), "intersect_rsa_1.train_data.%s.0", role[r]);
        assert_addr(cJSON_GetObjectItemCaseSensitive(out0, "train_data"), "job1", want);
        snprintf(want, sizeof(want), "intersect_rsa_1.report0.%s.0", role[r]);
        assert_addr(cJSON_GetObjectItemCaseSensitive(out0, "train-intersected-report"), "job1",
                    want);

        assert_int_equal(dag_task_io(d, 1, d1, role[r], 0, "job1", &in1, &out1, &eb), 0);
        assert_int_equal(cJSON_GetArraySize(in1), 1);
        /* the downstream reads exactly what the upstream wrote, same role and index */
        assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(in1, "train_data"),
                                  cJSON_GetObjectItemCaseSensitive(out0, "train_data"), true));
        assert_int_equal(cJSON_GetArraySize(out1), 5);
        snprintf(want, sizeof(want), "hetero_secureboost_1.model0.%s.0", role[r]);
        assert_addr(cJSON_GetObjectItemCaseSensitive(out1, "model"), "job1", want);
        snprintf(want, sizeof(want), "hetero_secureboost_1.report2.%s.0", role[r]);
        assert_addr(cJSON_GetObjectItemCaseSensitive(out1, "r2"), "job1", want);
        cJSON_Delete(in0);
        cJSON_Delete(out0);
        cJSON_Delete(in1);
        cJSON_Delete(out1);
    }
    cJSON_Delete(d0);
    cJSON_Delete(d1);
    dag_free(d);
}

/* ---- (1b) other good shapes ----------------------------------------------- */

static void test_config_options(void **state)
{
    (void)state;
    /* no job_params: poll; callback and a third-party scheduler are kept */
    struct dag *d = parse_ok(BODY(COMP("a")));
    assert_string_equal(dag_sync_type(d), "poll");
    assert_null(dag_scheduler(d));
    assert_string_equal(dag_initiator(d), "A");
    dag_free(d);
    d = parse_ok(BODYCFG("{" INI "," CFG_ROLE ",'job_params':{'common':{'sync_type':'callback',"
                         "'scheduler':'S1'}},'task_params':{}}"));
    assert_string_equal(dag_sync_type(d), "callback");
    assert_string_equal(dag_scheduler(d), "S1");
    dag_free(d);
    /* nodeId spelling, a null role and null job_params are tolerated; so are
     * empty blocks of roles the job does not have (Kuscia sends all four) */
    d = parse_ok(BODYCFG("{'initiator':{'nodeId':'A'},'role':{'guest':['A'],'arbiter':null},"
                         "'job_params':null,'task_params':{'common':{},'host':{},'arbiter':{},"
                         "'guest':{}}}"));
    assert_string_equal(dag_initiator(d), "A");
    cJSON *parties = dag_parties(d);
    assert_int_equal(cJSON_GetArraySize(parties), 1);
    cJSON_Delete(parties);
    dag_free(d);
}

static void test_parties_and_indexes(void **state)
{
    (void)state;
    struct dag *d = parse_ok(BODYCFG(
        "{" INI ",'role':{'guest':['A'],'host':['B','A','D'],'arbiter':['C']},'task_params':{}}"));
    cJSON *parties = dag_parties(d);
    assert_int_equal(cJSON_GetArraySize(parties), 4);
    assert_string_equal(str_at(parties, 0), "A");
    assert_string_equal(str_at(parties, 1), "B");
    assert_string_equal(str_at(parties, 2), "D");
    assert_string_equal(str_at(parties, 3), "C");
    cJSON_Delete(parties);
    cJSON *roles = dag_local_roles(d, "A");
    assert_int_equal(cJSON_GetArraySize(roles), 2);
    assert_string_equal(str_at(roles, 0), "guest");
    assert_string_equal(str_at(roles, 1), "host");
    cJSON_Delete(roles);
    roles = dag_local_roles(d, "B");
    assert_int_equal(cJSON_GetArraySize(roles), 1);
    cJSON_Delete(roles);
    int idx[4] = {-1, -1, -1, -1};
    assert_int_equal(dag_role_indexes(d, "host", "B", idx, 4), 1);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], -1);
    assert_int_equal(dag_role_indexes(d, "host", "A", idx, 4), 1);
    assert_int_equal(idx[0], 1);
    assert_int_equal(dag_role_indexes(d, "host", "D", idx, 4), 1);
    assert_int_equal(idx[0], 2);
    assert_int_equal(dag_role_indexes(d, "host", "D", idx, 0), 0); /* capped */

    cJSON *desc = pq("{'roleList':['host','arbiter','promoter']}");
    cJSON *nodes = dag_task_nodes(d, desc);
    assert_int_equal(cJSON_GetArraySize(nodes), 2);
    assert_null(cJSON_GetObjectItemCaseSensitive(nodes, "guest"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(nodes, "host")), 3);
    assert_string_equal(str_at(cJSON_GetObjectItemCaseSensitive(nodes, "arbiter"), 0), "C");
    cJSON_Delete(nodes);
    cJSON_Delete(desc);
    dag_free(d);
}

static void test_edges(void **state)
{
    (void)state;
    /* diamond, listed downstream-first; two inputs from one upstream count once */
    struct dag *d = parse_ok(
        "{'dag':{'components':["
        "{'name':'d','componentName':'C','provider':'p','version':'1',"
        " 'input':[{'key':'b.out'},{'key':'c.out'}]},"
        COMPIN("b", "a.x") "," COMPIN("c", "a.y") ","
        "{'name':'a','componentName':'C','provider':'p','version':'1',"
        " 'output':[{'key':'x'},{'key':'y'}]},"
        "{'name':'e','componentName':'C','provider':'p','version':'1',"
        " 'input':[{'key':'a.x'},{'key':'a.y'}]}"
        "]}," CFG "}");
    assert_int_equal(dag_ntasks(d), 5);
    const struct dag_task *t = dag_task(d, dag_find(d, "d"));
    assert_int_equal(t->n_ups, 2);
    assert_int_equal(t->ups[0], dag_find(d, "b"));
    assert_int_equal(t->ups[1], dag_find(d, "c"));
    assert_int_equal(dag_task(d, dag_find(d, "b"))->n_ups, 1);
    assert_int_equal(dag_task(d, dag_find(d, "b"))->ups[0], dag_find(d, "a"));
    assert_int_equal(dag_task(d, dag_find(d, "a"))->n_ups, 0);
    assert_int_equal(dag_task(d, dag_find(d, "e"))->n_ups, 1);
    /* absent input/output become [] in the normalised dag */
    const cJSON *c0 = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(dag_json(d), "components"), dag_find(d, "a"));
    assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(c0, "input")));
    dag_free(d);

    /* a 128-character name is the longest accepted */
    char name[130];
    memset(name, 'n', 128);
    name[128] = '\0';
    cJSON *body = body_named(name, "p");
    d = parse_ok_json(body);
    assert_int_equal((int)strlen(dag_task(d, 0)->name), 128);
    dag_free(d);
    cJSON_Delete(body);
}

/* ---- (2) Kuscia components ------------------------------------------------ */

static void test_kuscia_shape(void **state)
{
    (void)state;
    cJSON *body = pq("{'dag':{'components':["
                     "{'name':'psi','code':'secretflow','module_name':'psi','version':'0.0.1'},"
                     "{'name':'lr','code':'secretflow','moduleName':'ss_sgd_train',"
                     " 'version':'0.0.1','input':[{'type':'dataset','key':'psi.out'}]},"
                     "{'name':'both','code':'kuscia','module_name':'m','componentName':'Real',"
                     " 'provider':'prov','version':'1'}"
                     "]}," CFG "}");
    struct dag *d = parse_ok_json(body);
    assert_string_equal(dag_task(d, 0)->provider, "secretflow");
    assert_string_equal(dag_task(d, 0)->component, "psi");
    assert_string_equal(dag_task(d, 0)->version, "0.0.1");
    assert_string_equal(dag_task(d, 1)->component, "ss_sgd_train");
    assert_string_equal(dag_task(d, 1)->provider, "secretflow");
    assert_int_equal(dag_task(d, 1)->n_ups, 1);
    /* standard fields win over the Kuscia ones */
    assert_string_equal(dag_task(d, 2)->component, "Real");
    assert_string_equal(dag_task(d, 2)->provider, "prov");
    /* the normalised dag carries componentName/provider; the caller's body is untouched */
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(dag_json(d), "components"), 0);
    assert_string_equal(str_of(c0, "componentName"), "psi");
    assert_string_equal(str_of(c0, "provider"), "secretflow");
    const cJSON *b0 = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(body, "dag"),
                                         "components"),
        0);
    assert_null(cJSON_GetObjectItemCaseSensitive(b0, "componentName"));
    assert_null(cJSON_GetObjectItemCaseSensitive(b0, "provider"));
    dag_free(d);
    cJSON_Delete(body);

    /* Kuscia shape with a bad member is still refused, naming the normalised field */
    bad("{'dag':{'components':[{'name':'a','code':1,'module_name':'m','version':'1'}]}," CFG "}",
        "dag.components[0].provider: expected a string, got nothing");
    bad("{'dag':{'components':[{'name':'a','code':'c','module_name':'bad name','version':'1'}]},"
        CFG "}",
        "dag.components[0].componentName: 1..128 characters");
}

/* ---- (3) bad input ------------------------------------------------------- */

static void test_bad_top_level(void **state)
{
    (void)state;
    bad_json(NULL, "NULL body", "dag: expected an object, got nothing");
    bad("{'dag':[]," CFG "}", "dag: expected an object, got an array");
    bad("{'dag':'x'," CFG "}", "dag: expected an object, got a string");
    bad("{" CFG "}", "dag: expected an object, got nothing");
    bad("{'dag':{'components':[" COMP("a") "]}}", "config: expected an object, got nothing");
    bad("{'dag':{'components':[" COMP("a") "]},'config':[]}",
        "config: expected an object, got an array");
    bad("{'dag':{'components':[" COMP("a") "]},'config':null}", "config: expected an object, got null");
}

static void test_bad_components(void **state)
{
    (void)state;
    bad("{'dag':{}," CFG "}", "dag.components: expected an array, got nothing");
    bad("{'dag':{'components':{}}," CFG "}", "dag.components: expected an array, got an object");
    bad("{'dag':{'components':'a'}," CFG "}", "dag.components: expected an array, got a string");
    bad("{'dag':{'components':[]}," CFG "}", "dag.components: must not be empty");
    bad(BODY("1"), "dag.components[0]: expected an object");
    bad(BODY(COMP("a") ",[]"), "dag.components[1]: expected an object");
    bad(BODY("{'componentName':'C','provider':'p','version':'1'}"),
        "dag.components[0].name: expected a string, got nothing");
    bad(BODY("{'name':'a','provider':'p','version':'1'}"),
        "dag.components[0].componentName: expected a string, got nothing");
    bad(BODY("{'name':'a','componentName':'C','version':'1'}"),
        "dag.components[0].provider: expected a string, got nothing");
    bad(BODY(COMP("a") ",{'name':'b','componentName':'C','provider':'p'}"),
        "dag.components[1].version: expected a string, got nothing");
    /* wrong types */
    bad(BODY("{'name':7,'componentName':'C','provider':'p','version':'1'}"),
        "dag.components[0].name: expected a string, got a number");
    bad(BODY("{'name':'a','componentName':7,'provider':'p','version':'1'}"),
        "dag.components[0].componentName: expected a string, got a number");
    bad(BODY("{'name':'a','componentName':'C','provider':['p'],'version':'1'}"),
        "dag.components[0].provider: expected a string, got an array");
    bad(BODY("{'name':'a','componentName':'C','provider':'p','version':2.0}"),
        "dag.components[0].version: expected a string, got a number");
    bad(BODY("{'name':'a','componentName':'C','provider':'p','version':'1','input':{}}"),
        "dag.components[0].input: expected an array, got an object");
    bad(BODY("{'name':'a','componentName':'C','provider':'p','version':'1','output':'x'}"),
        "dag.components[0].output: expected an array, got a string");
    bad(BODY("{'name':'a','componentName':'C','provider':'p','version':'1',"
             "'output':[{'key':'x'},{'key':5}]}"),
        "dag.components[0].output[1].key: expected an identifier string");
    bad(BODY("{'name':'a','componentName':'C','provider':'p','version':'1','output':['x']}"),
        "dag.components[0].output[0].key: expected an identifier string");
    /* names */
    bad(BODY(COMP("a") "," COMP("b") "," COMP("a")), "dag.components[2].name: 'a' is used twice");
    bad(BODY(COMP("a.b")), "dag.components[0].name: must not contain '.'");
    bad(BODY(COMP("")), "dag.components[0].name: 1..128 characters");
}

static void test_bad_edges(void **state)
{
    (void)state;
    bad(BODY(COMP("a") "," COMPIN("b", "a")),
        "dag.components[1].input[0].key: expected '<component>.<output>'");
    bad(BODY(COMP("a") "," COMPIN("b", "a.")),
        "dag.components[1].input[0].key: expected '<component>.<output>'");
    bad(BODY(COMP("a") "," COMPIN("b", ".out")), "dag.components[1].input[0].key: expected an identifier");
    bad(BODY(COMP("a") "," COMPIN("b", "zz.out")),
        "dag.components[1].input[0].key: no component named 'zz'");
    bad(BODY(COMPIN("a", "a.out")),
        "dag.components[0].input[0].key: a component cannot read its own output");
    bad(BODY(COMP("x") "," COMPIN("a", "b.out") "," COMPIN("b", "a.out")),
        "dag.components: the inputs form a cycle");
    bad(BODY(COMPIN("a", "c.out") "," COMPIN("b", "a.out") "," COMPIN("c", "b.out")),
        "dag.components: the inputs form a cycle");
    /* a cycle below a valid root */
    bad(BODY(COMP("r") "," COMPIN("a", "r.out") ","
             "{'name':'b','componentName':'C','provider':'p','version':'1',"
             " 'input':[{'key':'a.out'},{'key':'c.out'}]}," COMPIN("c", "b.out")),
        "dag.components: the inputs form a cycle");
}

static void test_bad_config(void **state)
{
    (void)state;
    bad(BODYCFG("{" CFG_ROLE "}"), "config.initiator: expected an object, got nothing");
    bad(BODYCFG("{'initiator':'A'," CFG_ROLE "}"), "config.initiator: expected an object, got a string");
    bad(BODYCFG("{'initiator':{'role':'guest'}," CFG_ROLE "}"),
        "config.initiator.node_id: expected a node id");
    bad(BODYCFG("{'initiator':{'node_id':12}," CFG_ROLE "}"),
        "config.initiator.node_id: expected a node id");
    bad(BODYCFG("{'initiator':{'node_id':'../x'}," CFG_ROLE "}"),
        "config.initiator.node_id: expected a node id");
    bad(BODYCFG("{'initiator':{'node_id':'A B'}," CFG_ROLE "}"),
        "config.initiator.node_id: expected a node id");
    bad(BODYCFG("{'initiator':{'node_id':''}," CFG_ROLE "}"),
        "config.initiator.node_id: expected a node id");
    bad(BODYCFG("{" INI "}"), "config.role: expected an object, got nothing");
    bad(BODYCFG("{" INI ",'role':['A']}"), "config.role: expected an object, got an array");
    bad(BODYCFG("{" INI ",'role':'guest'}"), "config.role: expected an object, got a string");
    bad(BODYCFG("{" INI ",'role':{}}"), "config.role: names no node");
    bad(BODYCFG("{" INI ",'role':{'guest':[],'host':null}}"), "config.role: names no node");
    bad(BODYCFG("{" INI ",'role':{'guest':['A',5]}}"), "config.role.guest[1]: expected a node id");
    bad(BODYCFG("{" INI ",'role':{'guest':['A'],'host':[null]}}"),
        "config.role.host[0]: expected a node id");
    bad(BODYCFG("{" INI ",'role':{'guest':'A'}}"),
        "config.role.guest: expected an array of node ids, got a string");
    bad(BODYCFG("{" INI ",'role':{'guest':{'0':'A'}}}"),
        "config.role.guest: expected an array of node ids, got an object");
    bad(BODYCFG("{" INI ",'role':{'Guest':['A']}}"), "config.role: invalid role name 'Guest'");
    bad(BODYCFG("{" INI ",'role':{'1st':['A']}}"), "config.role: invalid role name '1st'");
    bad(BODYCFG("{" INI ",'role':{'bad role':['A']}}"), "config.role: invalid role name 'bad role'");
    bad(BODYCFG("{" INI ",'role':{'':['A']}}"), "config.role: invalid role name ''");
    bad(BODYCFG("{" INI ",'role':{'../x':['A']}}"), "config.role: invalid role name '../x'");
    bad(BODYCFG("{" INI "," CFG_ROLE ",'job_params':{'common':{'sync_type':'push'}}}"),
        "config.job_params.common.sync_type: expected \"poll\" or \"callback\"");
    bad(BODYCFG("{" INI "," CFG_ROLE ",'job_params':{'common':{'sync_type':1}}}"),
        "config.job_params.common.sync_type");
    bad(BODYCFG("{" INI "," CFG_ROLE ",'job_params':[]}"), "config.job_params: expected an object");
    bad(BODYCFG("{" INI "," CFG_ROLE ",'job_params':{'common':{'scheduler':'a/b'}}}"),
        "config.job_params.common.scheduler: expected a node id");
    bad(BODYCFG("{" INI "," CFG_ROLE ",'task_params':'x'}"), "config.task_params: expected an object");
}

/* Configs that used to reach the database and fail later (issue 12 item 7):
 * each is refused at create, naming the field. */
#define TP(x) BODYCFG("{" INI "," CFG_ROLE ",'task_params':" x "}")
static void test_bad_params(void **state)
{
    (void)state;
    bad(BODYCFG("{" INI "," CFG_ROLE "}"), "config.task_params: expected an object, got nothing");
    bad(BODYCFG("{" INI "," CFG_ROLE ",'task_params':null}"),
        "config.task_params: expected an object, got null");
    bad(TP("{'guest':{'a':{'a':{'x':1}}}}"), "config.task_params.guest.a: expected a 0-based index");
    bad(TP("{'guest':{'01':{'a':{'x':1}}}}"), "config.task_params.guest.01: expected a 0-based");
    bad(TP("{'guest':{'-1':{'a':{'x':1}}}}"), "config.task_params.guest.-1: expected a 0-based");
    bad(TP("{'guest':{'1':{'a':{'x':1}}}}"),
        "config.task_params.guest.1: index 1, but config.role.guest lists 1 node(s)");
    bad(TP("{'guest':{'0|3':{'a':{'x':1}}}}"), "config.task_params.guest.0|3: index 3");
    bad(TP("{'guest':{'0|':{'a':{'x':1}}}}"), "config.task_params.guest.0|: expected a 0-based");
    bad(TP("{'common':{'zz':{'x':1}}}"),
        "config.task_params.common.zz: no component of that name in dag.components");
    bad(TP("{'guest':{'0':{'zz':{'x':1}}}}"), "config.task_params.guest.0.zz: no component");
    bad(TP("{'arbiter':{'0':{'a':{'x':1}}}}"), "config.task_params.arbiter: no such role");
    bad(TP("{'common':{'a':{'k=v':1}}}"), "config.task_params.common.a: parameter name 'k=v'");
    bad(TP("{'common':{'a':{'k\\nv':1}}}"), "config.task_params.common.a: parameter name");
    bad(TP("{'common':{'a':{'':1}}}"), "config.task_params.common.a: parameter name ''");
    bad(TP("{'common':{'a':[1]}}"), "config.task_params.common.a: expected an object of parameters");
    bad(TP("{'common':'x'}"), "config.task_params.common: expected an object of components");
    bad(BODYCFG("{" INI "," CFG_ROLE ",'job_params':{'host':{'x':{}}},'task_params':{}}"),
        "config.job_params.host.x: expected a 0-based index");
    bad(BODYCFG("{" INI "," CFG_ROLE ",'job_params':{'host':{'0':5}},'task_params':{}}"),
        "config.job_params.host.0: expected an object");
    bad(BODYCFG("{" INI ",'role':{'guest':['A'],'host':['B','C','B']},'task_params':{}}"),
        "config.role.host[2]: node B is listed twice for role host");
    bad(BODYCFG("{" INI ",'role':{'guest':['X'],'host':['B']},'task_params':{}}"),
        "config.initiator.node_id: A plays no role in config.role");
}

/* Bounds: a body may name at most 64 parties and 256 parameters. */
static void test_bad_bounds(void **state)
{
    (void)state;
    char *roles = malloc(65 * 24 + 64);
    assert_non_null(roles);
    size_t n = (size_t)sprintf(roles, "{" "'initiator':{'role':'guest','node_id':'N0'},'role':{'guest':[");
    for (int i = 0; i < 65; i++)
        n += (size_t)sprintf(roles + n, "%s'N%d'", i ? "," : "", i);
    sprintf(roles + n, "]},'task_params':{}}");
    char *body = malloc(strlen(roles) + 256);
    assert_non_null(body);
    sprintf(body, "{'dag':{'components':[" COMP("a") "]},'config':%s}", roles);
    bad(body, "config.role: more than 64 parties");
    free(body);
    free(roles);
    char *prm = malloc(257 * 16 + 256);
    assert_non_null(prm);
    n = (size_t)sprintf(prm, "{'common':{'a':{");
    for (int i = 0; i < 257; i++)
        n += (size_t)sprintf(prm + n, "%s'p%d':%d", i ? "," : "", i, i);
    sprintf(prm + n, "}}}");
    body = malloc(strlen(prm) + 512);
    assert_non_null(body);
    sprintf(body, TP("%s"), prm);
    bad(body, "config.task_params.common.a: more than 256 parameters");
    free(body);
    free(prm);
}

static void test_bad_hostile(void **state)
{
    (void)state;
    bad(BODY(COMP("../x")), "dag.components[0].name: 1..128 characters");
    bad(BODY(COMP("a/b")), "dag.components[0].name: 1..128 characters");
    bad(BODY(COMP("two words")), "dag.components[0].name: 1..128 characters");
    bad(BODY(COMP("a\\u0001b")), "dag.components[0].name: 1..128 characters");
    bad(BODY(COMP("line\\nbreak")), "dag.components[0].name: 1..128 characters");
    bad(BODY(COMP("tab\\tx")), "dag.components[0].name: 1..128 characters");
    bad(BODY(COMP("esc\\u001b[31m")), "dag.components[0].name: 1..128 characters");
    bad(BODY("{'name':'a','componentName':'../../bin/sh','provider':'p','version':'1'}"),
        "dag.components[0].componentName: 1..128 characters");
    bad(BODY("{'name':'a','componentName':'C','provider':'../x','version':'1'}"),
        "dag.components[0].provider: 1..128 characters");
    bad(BODY("{'name':'a','componentName':'C','provider':'p','version':''}"),
        "dag.components[0].version: 1..128 characters");
    bad(BODY("{'name':'a','componentName':'C','provider':'p','version':'1 ;rm'}"),
        "dag.components[0].version: 1..128 characters");
    bad(BODY(COMP("a") "," COMPIN("b", "../a.out")),
        "dag.components[1].input[0].key: expected an identifier string");
    bad(BODY(COMP("a") "," COMPIN("b", "a.o ut")),
        "dag.components[1].input[0].key: expected an identifier string");
    bad(BODYCFG("{" INI ",'role':{'guest':['../etc']}}"), "config.role.guest[0]: expected a node id");
    bad(BODYCFG("{" INI ",'role':{'guest':['A\\u0007B']}}"), "config.role.guest[0]");
    bad(BODYCFG("{" INI ",'role':{'gu\\u0007est':['A']}}"), "config.role: invalid role name");
    bad(BODYCFG("{'initiator':{'node_id':'A\\nB'}," CFG_ROLE "}"),
        "config.initiator.node_id: expected a node id");

    /* long names: 129 and 200 characters are refused */
    char name[256];
    for (size_t len = 129; len <= 200; len += 71) {
        memset(name, 'n', len);
        name[len] = '\0';
        cJSON *body = body_named(name, "p");
        bad_json(body, "long name", "dag.components[0].name: 1..128 characters");
        cJSON_Delete(body);
        body = body_named("a", name);
        bad_json(body, "long provider", "dag.components[0].provider: 1..128 characters");
        cJSON_Delete(body);
    }
    /* a long input key is refused, not overflowed */
    memset(name, 'u', 200);
    memcpy(name + 200, ".out", 5);
    cJSON *body = pq(BODY(COMP("a") "," COMPIN("b", "a.out")));
    cJSON *in = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                                   cJSON_GetObjectItemCaseSensitive(body, "dag"), "components"),
                               1),
            "input"),
        0);
    cJSON_ReplaceItemInObjectCaseSensitive(in, "key", cJSON_CreateString(name));
    bad_json(body, "200-character upstream", "dag.components[1].input[0].key: too long");
    cJSON_Delete(body);
    /* a long node id (65) and role name (33) */
    memset(name, 'N', 65);
    name[65] = '\0';
    body = pq(BODY(COMP("a")));
    cJSON *cfg = cJSON_GetObjectItemCaseSensitive(body, "config");
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "initiator"),
                                           "node_id", cJSON_CreateString(name));
    bad_json(body, "65-character node id", "config.initiator.node_id: expected a node id");
    cJSON_Delete(body);
    memset(name, 'r', 33);
    name[33] = '\0';
    body = pq(BODY(COMP("a")));
    cfg = cJSON_GetObjectItemCaseSensitive(body, "config");
    cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(cfg, "role"), name, pq("['A']"));
    bad_json(body, "33-character role", "config.role: invalid role name");
    cJSON_Delete(body);
}

/* ---- (4) index maps ------------------------------------------------------- */

static void test_index_entry(void **state)
{
    (void)state;
    cJSON *m = pq("{'0':{'v':'zero'},'1|2':{'v':'onetwo'},'10':{'v':'ten'}}");
    assert_string_equal(str_of(dag_index_entry(m, 0), "v"), "zero");
    assert_string_equal(str_of(dag_index_entry(m, 1), "v"), "onetwo");
    assert_string_equal(str_of(dag_index_entry(m, 2), "v"), "onetwo");
    assert_string_equal(str_of(dag_index_entry(m, 10), "v"), "ten");
    assert_null(dag_index_entry(m, 3));
    assert_null(dag_index_entry(m, 12));
    assert_null(dag_index_entry(m, -1));
    cJSON_Delete(m);
    m = pq("{'0|1':{'v':'both'}}");
    assert_string_equal(str_of(dag_index_entry(m, 0), "v"), "both");
    assert_string_equal(str_of(dag_index_entry(m, 1), "v"), "both");
    assert_null(dag_index_entry(m, 2));
    cJSON_Delete(m);
    m = pq("{'00':1,'':2,'1|':3,'x':4}"); /* "1|" still names 1 */
    assert_null(dag_index_entry(m, 0));
    assert_int_equal(dag_index_entry(m, 1)->valueint, 3);
    cJSON_Delete(m);
    m = pq("[{'0':1}]");
    assert_null(dag_index_entry(m, 0));
    cJSON_Delete(m);
    assert_null(dag_index_entry(NULL, 0));
}

/* ---- (5) parameters ------------------------------------------------------- */

#define PARAMS_BODY                                                                             \
    "{'dag':{'components':[" COMP("t0") "," COMPIN("t1", "t0.out") "]},"                       \
    "'config':{" INI ",'role':{'guest':['A','C'],'host':['B']},'task_params':{"                 \
    "'common':{'t0':{'a':1,'b':2,'nested':{'k':'common'}},'t1':{'only':'t1'}},"                \
    "'guest':{'0|1':{'t0':{'b':3,'c':4,'nested':{'k':'guest'},"                                 \
    "                    'dataset_id':'ns#tbl','name':'n','namespace':'s'}}},"                  \
    "'host':{'0':{'t0':{'dataset_id':'hs#htbl'},'t1':{'only':'host','x':true}}}}}}"

static void test_task_params(void **state)
{
    (void)state;
    struct dag *d = parse_ok(PARAMS_BODY);
    for (int idx = 0; idx < 2; idx++) {
        cJSON *p = dag_task_params(d, 0, "guest", idx);
        assert_int_equal(cJSON_GetArraySize(p), 4);
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(p, "a")->valueint, 1);
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(p, "b")->valueint, 3);
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(p, "c")->valueint, 4);
        assert_string_equal(str_of(cJSON_GetObjectItemCaseSensitive(p, "nested"), "k"), "guest");
        assert_null(cJSON_GetObjectItemCaseSensitive(p, "dataset_id"));
        assert_null(cJSON_GetObjectItemCaseSensitive(p, "name"));
        assert_null(cJSON_GetObjectItemCaseSensitive(p, "namespace"));
        cJSON_Delete(p);
    }
    /* no role entry for this index: common only */
    cJSON *p = dag_task_params(d, 0, "guest", 2);
    assert_int_equal(cJSON_GetArraySize(p), 3);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(p, "b")->valueint, 2);
    cJSON_Delete(p);
    /* role entry holding only the dataset: common only */
    p = dag_task_params(d, 0, "host", 0);
    assert_int_equal(cJSON_GetArraySize(p), 3);
    assert_null(cJSON_GetObjectItemCaseSensitive(p, "dataset_id"));
    cJSON_Delete(p);
    p = dag_task_params(d, 1, "host", 0);
    assert_string_equal(str_of(p, "only"), "host");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "x")));
    cJSON_Delete(p);
    p = dag_task_params(d, 1, "arbiter", 0);
    assert_int_equal(cJSON_GetArraySize(p), 1);
    assert_string_equal(str_of(p, "only"), "t1");
    cJSON_Delete(p);
    dag_free(d);

    /* no task_params at all: an empty object */
    d = parse_ok(BODY(COMP("a")));
    p = dag_task_params(d, 0, "guest", 0);
    assert_true(cJSON_IsObject(p));
    assert_int_equal(cJSON_GetArraySize(p), 0);
    cJSON_Delete(p);
    dag_free(d);
}

/* ---- (6) inputs and outputs ----------------------------------------------- */

#define DESC0 "{'roleList':['guest','host'],'inputData':[{'name':'data_in'}],"                   \
              "'outputData':[{'name':'data_out'}]}"

/* The body of a one-root dag whose guest.0 dataset reference is ref (a JSON member list). */
static struct dag *dag_with_ref(const char *ref)
{
    char buf[1024];
    snprintf(buf, sizeof(buf),
             "{'dag':{'components':[{'name':'t0','componentName':'C','provider':'p','version':'1',"
             "'output':[{'key':'out'}]}," COMPIN("t1", "t0.out") "]},"
             "'config':{" INI ",'role':{'guest':['A'],'host':['B']},"
             "'task_params':{'guest':{'0':{'t0':{%s}}}}}}",
             ref);
    return parse_ok(buf);
}

static int io(const struct dag *d, int ti, const char *desc_s, const char *role, int idx,
              cJSON **in, cJSON **out, struct gw_errbuf *eb)
{
    cJSON *desc = pq(desc_s);
    *in = *out = NULL;
    int rc = dag_task_io(d, ti, desc, role, idx, "job-7", in, out, eb);
    cJSON_Delete(desc);
    return rc;
}

static void test_task_io_dataset(void **state)
{
    (void)state;
    struct gw_errbuf eb;
    cJSON *in, *out;

    struct dag *d = dag_with_ref("'dataset_id':'myns#mytable'");
    assert_int_equal(io(d, 0, DESC0, "guest", 0, &in, &out, &eb), 0);
    assert_int_equal(cJSON_GetArraySize(in), 1);
    assert_addr(cJSON_GetObjectItemCaseSensitive(in, "data_in"), "myns", "mytable");
    assert_addr(cJSON_GetObjectItemCaseSensitive(out, "data_out"), "job-7", "t0.out.guest.0");
    cJSON_Delete(in);
    cJSON_Delete(out);
    /* host has no dataset reference: no input, still fine */
    assert_int_equal(io(d, 0, DESC0, "host", 0, &in, &out, &eb), 0);
    assert_int_equal(cJSON_GetArraySize(in), 0);
    assert_addr(cJSON_GetObjectItemCaseSensitive(out, "data_out"), "job-7", "t0.out.host.0");
    cJSON_Delete(in);
    cJSON_Delete(out);
    dag_free(d);

    d = dag_with_ref("'name':'tbl','namespace':'space'");
    assert_int_equal(io(d, 0, DESC0, "guest", 0, &in, &out, &eb), 0);
    assert_addr(cJSON_GetObjectItemCaseSensitive(in, "data_in"), "space", "tbl");
    cJSON_Delete(in);
    cJSON_Delete(out);
    dag_free(d);

    /* dataset_id wins over name/namespace when both are given */
    d = dag_with_ref("'dataset_id':'a#b','name':'tbl','namespace':'space'");
    assert_int_equal(io(d, 0, DESC0, "guest", 0, &in, &out, &eb), 0);
    assert_addr(cJSON_GetObjectItemCaseSensitive(in, "data_in"), "a", "b");
    cJSON_Delete(in);
    cJSON_Delete(out);
    dag_free(d);

    static const char *const badids[] = {"nohash", "#x", "a#", "a#b#c", "../etc#passwd",
                                         "ns#../x", "ns#a/b", "n s#x", "#", ""};
    for (size_t i = 0; i < sizeof(badids) / sizeof(badids[0]); i++) {
        char ref[128];
        snprintf(ref, sizeof(ref), "'dataset_id':'%s'", badids[i]);
        d = dag_with_ref(ref);
        memset(&eb, 0, sizeof(eb));
        int rc = io(d, 0, DESC0, "guest", 0, &in, &out, &eb);
        if (rc != GW_EINVAL || !strstr(eb.msg, "config.task_params.guest.0.t0.dataset_id"))
            fail_msg("dataset_id '%s': rc %d, msg '%s'", badids[i], rc, eb.msg);
        cJSON_Delete(in); /* left allocated on error (see report) */
        cJSON_Delete(out);
        dag_free(d);
    }
    static const char *const badnn[] = {"'name':'../x','namespace':'ns'",
                                        "'name':'x','namespace':'a b'",
                                        "'name':'x\\u0001','namespace':'ns'"};
    for (size_t i = 0; i < sizeof(badnn) / sizeof(badnn[0]); i++) {
        d = dag_with_ref(badnn[i]);
        memset(&eb, 0, sizeof(eb));
        int rc = io(d, 0, DESC0, "guest", 0, &in, &out, &eb);
        if (rc != GW_EINVAL || !strstr(eb.msg, "config.task_params.guest.0.t0: namespace and name"))
            fail_msg("ref {%s}: rc %d, msg '%s'", badnn[i], rc, eb.msg);
        cJSON_Delete(in);
        cJSON_Delete(out);
        dag_free(d);
    }
}

static void test_task_io_chain(void **state)
{
    (void)state;
    struct gw_errbuf eb;
    /* guest has two indexes with different datasets ("0" and "1") */
    struct dag *d = parse_ok(
        "{'dag':{'components':["
        "{'name':'psi','componentName':'C','provider':'p','version':'1',"
        " 'output':[{'key':'train_data'},{'key':'report'}]},"
        "{'name':'lr','componentName':'C','provider':'p','version':'1',"
        " 'input':[{'key':'psi.train_data'}],'output':[{'key':'model'},{'key':'data'}]},"
        "{'name':'eval','componentName':'C','provider':'p','version':'1',"
        " 'input':[{'key':'lr.data'},{'key':'psi.report'}]}"
        "]},'config':{" INI ",'role':{'guest':['A','B']},"
        "'task_params':{'guest':{'0':{'psi':{'dataset_id':'n0#t0'}},'1':{'psi':{'dataset_id':'n1#t1'}}}}}}");
    const char *dpsi = "{'inputData':[{'name':'in'}],'outputData':[{'name':'o_data'},{'name':'o_rep'}]}";
    const char *dlr = "{'inputData':[{'name':'train'}],'outputData':[{'name':'m'},{'name':'d'}]}";
    const char *deval = "{'inputData':[{'name':'x'},{'name':'y'}]}";
    for (int idx = 0; idx < 2; idx++) {
        cJSON *i0, *o0, *i1, *o1, *i2, *o2;
        assert_int_equal(io(d, 0, dpsi, "guest", idx, &i0, &o0, &eb), 0);
        assert_int_equal(io(d, 1, dlr, "guest", idx, &i1, &o1, &eb), 0);
        assert_int_equal(io(d, 2, deval, "guest", idx, &i2, &o2, &eb), 0);
        assert_addr(cJSON_GetObjectItemCaseSensitive(i0, "in"), idx ? "n1" : "n0",
                    idx ? "t1" : "t0");
        assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(i1, "train"),
                                  cJSON_GetObjectItemCaseSensitive(o0, "o_data"), true));
        assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(i2, "x"),
                                  cJSON_GetObjectItemCaseSensitive(o1, "d"), true));
        assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(i2, "y"),
                                  cJSON_GetObjectItemCaseSensitive(o0, "o_rep"), true));
        char want[64];
        snprintf(want, sizeof(want), "lr.model.guest.%d", idx);
        assert_addr(cJSON_GetObjectItemCaseSensitive(o1, "m"), "job-7", want);
        /* eval's description names no outputs and it has none */
        assert_int_equal(cJSON_GetArraySize(o2), 0);
        cJSON_Delete(i0);
        cJSON_Delete(o0);
        cJSON_Delete(i1);
        cJSON_Delete(o1);
        cJSON_Delete(i2);
        cJSON_Delete(o2);
    }
    /* a description without inputData/outputData: addresses keyed by the dag keys */
    cJSON *in, *out;
    assert_int_equal(io(d, 1, "{}", "guest", 1, &in, &out, &eb), 0);
    assert_addr(cJSON_GetObjectItemCaseSensitive(in, "psi.train_data"), "job-7",
                "psi.train_data.guest.1");
    assert_addr(cJSON_GetObjectItemCaseSensitive(out, "data"), "job-7", "lr.data.guest.1");
    cJSON_Delete(in);
    cJSON_Delete(out);
    dag_free(d);
}

/* ---- (7) roleList --------------------------------------------------------- */

static void test_role_runs(void **state)
{
    (void)state;
    cJSON *desc = pq("{'roleList':['guest','host']}");
    assert_true(dag_role_runs(desc, "guest"));
    assert_true(dag_role_runs(desc, "host"));
    assert_false(dag_role_runs(desc, "arbiter"));
    assert_false(dag_role_runs(desc, "gues"));
    cJSON_Delete(desc);
    desc = pq("{'roleList':'guest'}");
    assert_true(dag_role_runs(desc, "guest"));
    assert_false(dag_role_runs(desc, "host"));
    cJSON_Delete(desc);
    desc = pq("{'roleList':[1,null,{'guest':1},'host']}");
    assert_false(dag_role_runs(desc, "guest"));
    assert_true(dag_role_runs(desc, "host"));
    cJSON_Delete(desc);
    desc = pq("{'roleList':[]}");
    assert_false(dag_role_runs(desc, "guest"));
    cJSON_Delete(desc);
    desc = pq("{'rolelist':['guest']}"); /* case-sensitive */
    assert_false(dag_role_runs(desc, "guest"));
    cJSON_Delete(desc);
    desc = pq("{'roleList':7}");
    assert_false(dag_role_runs(desc, "guest"));
    cJSON_Delete(desc);
    assert_false(dag_role_runs(NULL, "guest"));
}

int main(void)
{
    json_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_parses),   cmocka_unit_test(test_fixture_params_and_io),
        cmocka_unit_test(test_config_options),   cmocka_unit_test(test_parties_and_indexes),
        cmocka_unit_test(test_edges),            cmocka_unit_test(test_kuscia_shape),
        cmocka_unit_test(test_bad_top_level),    cmocka_unit_test(test_bad_components),
        cmocka_unit_test(test_bad_edges),        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_bad_hostile),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_bad_bounds),      cmocka_unit_test(test_index_entry),
        cmocka_unit_test(test_task_params),      cmocka_unit_test(test_task_io_dataset),
        cmocka_unit_test(test_task_io_chain),    cmocka_unit_test(test_role_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
