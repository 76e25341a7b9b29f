/* test_route.c - route matching and the error-code table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "routes/route.h"

static void h(struct gw_req *req) { (void)req; }

static const struct route t[] = {
    {GW_GET, "/healthz", h, 0, ROUTE_AUTH_NONE, WHO_ROUTE},
    {GW_POST, "/v1/interconn/schedule/job/create", h, 0, ROUTE_AUTH_PEER, WHO_ROUTE},
    {GW_GET | GW_POST, "/v1/interconn/schedule/job/status_all", h, 0, ROUTE_AUTH_PEER, WHO_ROUTE},
    {GW_GET, "/v2/provider/{name}/info", h, 0, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_DELETE, "/v2/provider/{name}/info", h, 0, ROUTE_AUTH_LOCAL, WHO_ROUTE},
};
#define N (sizeof(t) / sizeof(t[0]))

static void test_exact(void **state)
{
    (void)state;
    bool known;
    assert_int_equal(route_match(t, N, GW_GET, "/healthz", &known), 0);
    assert_true(known);
    assert_int_equal(route_match(t, N, GW_GET, "/healthz/", &known), 0);
    assert_int_equal(route_match(t, N, GW_POST, "/v1/interconn/schedule/job/create", &known), 1);
    assert_int_equal(route_match(t, N, GW_GET, "/v1/interconn/schedule/job/status_all", &known), 2);
    assert_int_equal(route_match(t, N, GW_POST, "/v1/interconn/schedule/job/status_all", &known), 2);
}

static void test_unknown_and_method(void **state)
{
    (void)state;
    bool known = true;
    assert_int_equal(route_match(t, N, GW_GET, "/nope", &known), -1);
    assert_false(known);
    assert_int_equal(route_match(t, N, GW_GET, "/v1/interconn/schedule/job/create", &known), -1);
    assert_true(known); /* path exists: wrong method */
    assert_int_equal(route_match(t, N, GW_GET, "/healthzz", &known), -1);
    assert_false(known);
    assert_int_equal(route_match(t, N, GW_GET, "/health", &known), -1);
    assert_int_equal(route_match(t, N, GW_GET, "", &known), -1);
    assert_int_equal(route_match(t, N, GW_GET, "/v1/interconn/schedule/job/create/../../x", &known), -1);
}

static void test_params(void **state)
{
    (void)state;
    bool known;
    assert_int_equal(route_match(t, N, GW_GET, "/v2/provider/fate/info", &known), 3);
    assert_int_equal(route_match(t, N, GW_DELETE, "/v2/provider/fate/info", &known), 4);
    assert_int_equal(route_match(t, N, GW_GET, "/v2/provider//info", &known), -1);
    assert_int_equal(route_match(t, N, GW_GET, "/v2/provider/a/b/info", &known), -1);
    assert_int_equal(route_match(t, N, GW_POST, "/v2/provider/fate/info", &known), -1);
    assert_true(known);
}

static void test_codes(void **state)
{
    (void)state;
    int st;
    assert_int_equal(route_code_for(GW_OK, &st), 0);
    assert_int_equal(st, 200);
    assert_int_equal(route_code_for(GW_EINVAL, &st), ROUTE_CODE_BAD_PARAM);
    assert_int_equal(st, 200);
    assert_int_equal(route_code_for(GW_ENOTFOUND, &st), ROUTE_CODE_NOT_FOUND);
    assert_int_equal(route_code_for(GW_EBUSY, &st), ROUTE_CODE_BUSY);
    assert_int_equal(st, 503);
    assert_int_equal(route_code_for(GW_EDRAINING, &st), ROUTE_CODE_DRAINING);
    assert_int_equal(st, 503);
    assert_int_equal(route_code_for(-999, &st), ROUTE_CODE_INTERNAL);
    assert_int_equal(st, 200);
    /* every error maps to a non-zero code */
    for (int e = GW_EDRAINING; e < 0; e++)
        assert_int_not_equal(route_code_for(e, &st), 0);
}

static void test_real_table_is_sane(void **state)
{
    (void)state;
    size_t n;
    const struct route *rt = route_table(&n);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(rt[i].handler);
        assert_true(rt[i].pattern[0] == '/');
        assert_true(rt[i].methods != 0);
        /* no two rows claim the same (method, path) */
        for (size_t k = i + 1; k < n; k++)
            if (strcmp(rt[i].pattern, rt[k].pattern) == 0)
                assert_int_equal(rt[i].methods & rt[k].methods, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_unknown_and_method),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_real_table_is_sane),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
