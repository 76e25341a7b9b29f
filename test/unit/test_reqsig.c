/*
 * test_reqsig.c - the x-auth-sign canonical form, signing and header
 * parsing (gateway/reqsig.h): a signature verifies over exactly the
 * canonical string, any changed element breaks it, the query is order
 * independent, and malformed header values are refused with a reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/jws.h"
#include "gateway/reqsig.h"

static const char BODY[] = "{\"task_id\":\"t1\",\"role\":\"host.0\"}";

static char *canon(const char *method, const char *target, const char *body)
{
    return reqsig_canonical(method, target, "JG01", "JG02", "1700000000000", "nonce-123456",
                            body, body ? strlen(body) : 0);
}

static void test_canonical_layout(void **state)
{
    (void)state;
    char *c = reqsig_canonical("GET", "/v1/x?b=2&a=1", "JG01", "JG02", "17", "abcdefgh", "", 0);
    /* SHA-256 of the empty string closes the form. */
    assert_string_equal(c, "BFIA-SIGN-V1\nGET\n/v1/x\na=1&b=2\nJG01\nJG02\n17\nabcdefgh\n"
                           "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    free(c);
    char *d = reqsig_canonical("GET", "/v1/x", "JG01", "JG02", "17", "abcdefgh", NULL, 0);
    assert_non_null(strstr(d, "\n/v1/x\n\nJG01\n")); /* empty query line */
    free(d);
}

static void test_query_order_independent(void **state)
{
    (void)state;
    char *a = canon("GET", "/p?job_id=j1&x=%20y&&z=", NULL);
    char *b = canon("GET", "/p?z=&x=%20y&job_id=j1", NULL);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void test_sign_verify_and_tamper(void **state)
{
    (void)state;
    struct jws_key *k = jws_key_generate(JWS_ALG_ES256);
    assert_non_null(k);
    char *c = canon("POST", "/v1/interconn/schedule/task/poll", BODY);
    char hdr[REQSIG_HDR_MAX];
    assert_int_equal(reqsig_sign(k, c, hdr), 0);
    char kid[65];
    uint8_t sig[64];
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    assert_int_equal(reqsig_parse(hdr, kid, sig, &eb), 0);
    assert_string_equal(kid, jws_key_kid(k));
    assert_true(jws_verify_raw(k, (const uint8_t *)c, strlen(c), sig, 64));

    /* Each element of the request is covered. */
    char *other[] = {
        canon("GET", "/v1/interconn/schedule/task/poll", BODY),
        canon("POST", "/v1/interconn/schedule/task/stop", BODY),
        canon("POST", "/v1/interconn/schedule/task/poll?x=1", BODY),
        canon("POST", "/v1/interconn/schedule/task/poll", "{\"task_id\":\"t2\"}"),
        reqsig_canonical("POST", "/v1/interconn/schedule/task/poll", "JG09", "JG02",
                         "1700000000000", "nonce-123456", BODY, strlen(BODY)),
        reqsig_canonical("POST", "/v1/interconn/schedule/task/poll", "JG01", "JG03",
                         "1700000000000", "nonce-123456", BODY, strlen(BODY)),
        reqsig_canonical("POST", "/v1/interconn/schedule/task/poll", "JG01", "JG02",
                         "1700000000001", "nonce-123456", BODY, strlen(BODY)),
        reqsig_canonical("POST", "/v1/interconn/schedule/task/poll", "JG01", "JG02",
                         "1700000000000", "nonce-123457", BODY, strlen(BODY)),
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        assert_false(jws_verify_raw(k, (const uint8_t *)other[i], strlen(other[i]), sig, 64));
        free(other[i]);
    }
    /* Another key does not verify it. */
    struct jws_key *k2 = jws_key_generate(JWS_ALG_ES256);
    assert_false(jws_verify_raw(k2, (const uint8_t *)c, strlen(c), sig, 64));
    jws_key_free(k2);
    free(c);
    jws_key_free(k);
}

static void test_parse_refuses_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "RS256;kid=abc;sig=AAAA",
        "ES256;kid=;sig=AAAA",
        "ES256;kid=abc",
        "ES256;kid=a b;sig=AAAA",
        "ES256;kid=abc;sig=AAAA",                 /* 3 bytes, not 64 */
        "ES256;kid=abc;sig=AAAA====",             /* padding */
        "ES256;kid=0123456789012345678901234567890123456789012345678901234567890123456789;sig=AA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char kid[65];
        uint8_t sig[64];
        struct gw_errbuf eb;
        gw_errbuf_clear(&eb);
        assert_int_equal(reqsig_parse(bad[i], kid, sig, &eb), GW_EINVAL);
        assert_true(eb.msg[0] != '\0');
    }
}

static void test_nonce_unique_and_shaped(void **state)
{
    (void)state;
    char a[23], b[23];
    reqsig_nonce(a);
    reqsig_nonce(b);
    assert_int_equal(strlen(a), 22);
    assert_string_not_equal(a, b);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     22);
}

static void test_pin_check(void **state)
{
    (void)state;
    struct jws_key *k = jws_key_generate(JWS_ALG_ES256);
    cJSON *j = jws_key_to_jwk(k);
    char *s = cJSON_PrintUnformatted(j);
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    assert_int_equal(reqsig_pin_check(s, &eb), 0);
    cJSON_free(s);
    cJSON_AddStringToObject(j, "d", "AAAA");
    s = cJSON_PrintUnformatted(j);
    assert_int_equal(reqsig_pin_check(s, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "private"));
    cJSON_free(s);
    cJSON_Delete(j);
    jws_key_free(k);
    assert_int_equal(reqsig_pin_check("{not json", &eb), GW_EINVAL);
    assert_int_equal(reqsig_pin_check("[1,2]", &eb), GW_EINVAL);
    assert_int_equal(reqsig_pin_check("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}",
                                      &eb), GW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_layout),
        cmocka_unit_test(test_query_order_independent),
        cmocka_unit_test(test_sign_verify_and_tamper),
        cmocka_unit_test(test_parse_refuses_malformed),
        cmocka_unit_test(test_nonce_unique_and_shaped),
        cmocka_unit_test(test_pin_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
