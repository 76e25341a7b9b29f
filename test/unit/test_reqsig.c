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
#include <openssl/evp.h>
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

static void test_hkdf_rfc5869(void **state)
{
    (void)state;
    /* RFC 5869 A.1 */
    uint8_t ikm[22], salt[13], info[10], okm[42];
    memset(ikm, 0x0b, sizeof(ikm));
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (uint8_t)(0xf0 + i);
    assert_int_equal(jws_hkdf_sha256(ikm, sizeof(ikm), salt, sizeof(salt), info, sizeof(info), okm,
                                     sizeof(okm)),
                     0);
    static const uint8_t want[42] = {
        0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a, 0x90, 0x43, 0x4f, 0x64, 0xd0, 0x36,
        0x2f, 0x2a, 0x2d, 0x2d, 0x0a, 0x90, 0xcf, 0x1a, 0x5a, 0x4c, 0x5d, 0xb0, 0x2d, 0x56,
        0xec, 0xc4, 0xc5, 0xbf, 0x34, 0x00, 0x72, 0x08, 0xd5, 0xb8, 0x87, 0x18, 0x58, 0x65};
    assert_memory_equal(okm, want, sizeof(want));
}

static void test_derive_secret(void **state)
{
    (void)state;
    struct jws_key *k = jws_key_generate(JWS_ALG_ES256), *e = jws_key_generate(JWS_ALG_ED25519);
    uint8_t a[32], b[32], c[32], d[32];
    assert_int_equal(jws_key_derive_secret(k, "one", a), 0);
    assert_int_equal(jws_key_derive_secret(k, "one", b), 0);
    assert_memory_equal(a, b, 32); /* stable for the key */
    assert_int_equal(jws_key_derive_secret(k, "two", c), 0);
    assert_memory_not_equal(a, c, 32); /* per label */
    assert_int_equal(jws_key_derive_secret(e, "one", d), 0);
    assert_memory_not_equal(a, d, 32); /* per key */
    cJSON *j = jws_key_to_jwk(k);
    struct jws_key *pub = NULL;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    assert_int_equal(jws_key_from_jwk(j, &pub, &eb), 0);
    assert_int_equal(jws_key_derive_secret(pub, "one", a), -1); /* no private part */
    cJSON_Delete(j);
    jws_key_free(pub);
    jws_key_free(k);
    jws_key_free(e);
}

/* Two nodes' body keys agree on the secret; the tag covers the body and
 * every element of the key schedule. */
static void test_bmac_roundtrip(void **state)
{
    (void)state;
    struct jws_key *ka = jws_key_generate(JWS_ALG_ES256), *kb = jws_key_generate(JWS_ALG_ED25519);
    EVP_PKEY *xa = NULL, *xb = NULL, *xa2 = NULL;
    char pa[REQSIG_BMAC_KEY_B64 + 1], pb[REQSIG_BMAC_KEY_B64 + 1], pa2[REQSIG_BMAC_KEY_B64 + 1];
    assert_int_equal(reqsig_bmac_key(ka, &xa, pa), 0);
    assert_int_equal(reqsig_bmac_key(kb, &xb, pb), 0);
    assert_int_equal(reqsig_bmac_key(ka, &xa2, pa2), 0);
    assert_string_equal(pa, pa2); /* the same node key, the same body key */
    assert_int_equal(strlen(pa), REQSIG_BMAC_KEY_B64);
    uint8_t sa[32], sb[32];
    assert_int_equal(reqsig_bmac_shared(xa, pb, sa), 0);
    assert_int_equal(reqsig_bmac_shared(xb, pa, sb), 0);
    assert_memory_equal(sa, sb, 32);

    size_t n = 200000;
    uint8_t *body = malloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (uint8_t)(i * 131u);
    uint8_t t0[16], t1[16];
#define TAG(sh, m, t, src, dst, ts, nc, from, to, len, out)                                        \
    assert_int_equal(reqsig_bmac_tag(sh, m, t, src, dst, ts, nc, from, to, body, len, out), 0)
    TAG(sa, "POST", "/t", "JG01", "JG02", "17", "nonce-123456", pa, pb, n, t0);
    TAG(sb, "POST", "/t", "JG01", "JG02", "17", "nonce-123456", pa, pb, n, t1);
    assert_memory_equal(t0, t1, 16);
    body[n / 2] ^= 1;
    TAG(sa, "POST", "/t", "JG01", "JG02", "17", "nonce-123456", pa, pb, n, t1);
    assert_memory_not_equal(t0, t1, 16);
    body[n / 2] ^= 1;
    TAG(sa, "POST", "/t", "JG01", "JG02", "17", "nonce-123456", pa, pb, n - 1, t1);
    assert_memory_not_equal(t0, t1, 16); /* truncated */
    /* every element of the request's identity is in the key */
    const char *v[][8] = {{"GET", "/t", "JG01", "JG02", "17", "nonce-123456", pa, pb},
                          {"POST", "/u", "JG01", "JG02", "17", "nonce-123456", pa, pb},
                          {"POST", "/t", "JG03", "JG02", "17", "nonce-123456", pa, pb},
                          {"POST", "/t", "JG01", "JG03", "17", "nonce-123456", pa, pb},
                          {"POST", "/t", "JG01", "JG02", "18", "nonce-123456", pa, pb},
                          {"POST", "/t", "JG01", "JG02", "17", "nonce-123457", pa, pb},
                          {"POST", "/t", "JG01", "JG02", "17", "nonce-123456", pb, pb},
                          {"POST", "/t", "JG01", "JG02", "17", "nonce-123456", pa, pa}};
    for (size_t i = 0; i < 8; i++) {
        TAG(sa, v[i][0], v[i][1], v[i][2], v[i][3], v[i][4], v[i][5], v[i][6], v[i][7], n, t1);
        assert_memory_not_equal(t0, t1, 16);
    }
#undef TAG
    /* a third party's key shares another secret */
    struct jws_key *kc = jws_key_generate(JWS_ALG_ES256);
    EVP_PKEY *xc = NULL;
    char pc[REQSIG_BMAC_KEY_B64 + 1];
    uint8_t sc[32];
    assert_int_equal(reqsig_bmac_key(kc, &xc, pc), 0);
    assert_int_equal(reqsig_bmac_shared(xc, pb, sc), 0);
    assert_memory_not_equal(sa, sc, 32);
    /* bad peer keys: the all-zero (low-order) point, wrong length, not base64url */
    assert_int_equal(reqsig_bmac_shared(xa, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", sc), -1);
    assert_int_equal(reqsig_bmac_shared(xa, "AAAA", sc), -1);
    assert_int_equal(reqsig_bmac_shared(xa, "!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", sc), -1);
    free(body);
    EVP_PKEY_free(xa);
    EVP_PKEY_free(xa2);
    EVP_PKEY_free(xb);
    EVP_PKEY_free(xc);
    jws_key_free(ka);
    jws_key_free(kb);
    jws_key_free(kc);
}

static void test_bmac_parse(void **state)
{
    (void)state;
    const char *k = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA"; /* 43 chars, 32 bytes */
    char good[200];
    snprintf(good, sizeof(good), "GMAC-X25519;from=%s;to=%s;tag=AAECAwQFBgcICQoLDA0ODw", k, k);
    char from[REQSIG_BMAC_KEY_B64 + 1], to[REQSIG_BMAC_KEY_B64 + 1];
    uint8_t tag[REQSIG_BMAC_TAG];
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    assert_int_equal(reqsig_bmac_parse(good, from, to, tag, &eb), 0);
    assert_string_equal(from, k);
    assert_int_equal(tag[15], 15);
    char bad[8][200];
    snprintf(bad[0], 200, "%s", "");
    snprintf(bad[1], 200, "HMAC-X25519;from=%s;to=%s;tag=AAECAwQFBgcICQoLDA0ODw", k, k);
    snprintf(bad[2], 200, "GMAC-X25519;from=%.42s;to=%s;tag=AAECAwQFBgcICQoLDA0ODw", k, k);
    snprintf(bad[3], 200, "GMAC-X25519;from=%s;to=%s;tag=AAECAwQFBgcICQoLDA0ODwAA", k, k);
    snprintf(bad[4], 200, "GMAC-X25519;from=%s;to=%s;tag=AAECAwQFBgcICQoLDA0OD", k, k);
    snprintf(bad[5], 200, "GMAC-X25519;from=%s;to=%s;tag=AAECAwQFBgcICQoLDA0ODw;x=1", k, k);
    snprintf(bad[6], 200, "GMAC-X25519;to=%s;from=%s;tag=AAECAwQFBgcICQoLDA0ODw", k, k);
    snprintf(bad[7], 200, "GMAC-X25519;from=%.42s*;to=%s;tag=AAECAwQFBgcICQoLDA0ODw", k, k);
    for (size_t i = 0; i < 8; i++) {
        gw_errbuf_clear(&eb);
        assert_int_equal(reqsig_bmac_parse(bad[i], from, to, tag, &eb), GW_EINVAL);
        assert_non_null(strstr(eb.msg, "x-bfia-body-mac"));
    }
    /* the body line replaces the hash line and nothing else */
    char *c = reqsig_canonical("POST", "/p?b=1&a=2", "JG01", "JG02", "17", "abcdefgh", "", 0);
    char *d = reqsig_canonical_line("POST", "/p?b=1&a=2", "JG01", "JG02", "17", "abcdefgh",
                                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_string_equal(c, d);
    free(c);
    free(d);
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
        cmocka_unit_test(test_hkdf_rfc5869),
        cmocka_unit_test(test_derive_secret),
        cmocka_unit_test(test_bmac_roundtrip),
        cmocka_unit_test(test_bmac_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
