/* test_chanwire.c - the channel API's wire forms: dialect detection, dialect A
 * JSON and protobuf bodies (the spec's byte examples, §10), dialect B
 * answers, the invoke forms, timeouts, answers, bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/json.h"
#include "routes/chanwire.h"

static size_t unhex(const char *h, unsigned char *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2)
        sscanf(h, "%2hhx", &out[n++]);
    return n;
}

static char *hex(const void *p, size_t n)
{
    char *o = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        sprintf(o + 2 * i, "%02x", ((const unsigned char *)p)[i]);
    o[2 * n] = '\0';
    return o;
}

static void test_dialect_detection(void **state)
{
    (void)state;
    assert_int_equal(chanwire_dialect_of("application/json", false), CHANWIRE_JSON);
    assert_int_equal(chanwire_dialect_of("application/json; charset=utf-8", true), CHANWIRE_JSON);
    assert_int_equal(chanwire_dialect_of("Application/X-Protobuf", false), CHANWIRE_PROTO);
    assert_int_equal(chanwire_dialect_of("application/protobuf", true), CHANWIRE_PROTO);
    assert_int_equal(chanwire_dialect_of(NULL, true), CHANWIRE_RAW); /* YACL sets none */
    assert_int_equal(chanwire_dialect_of("application/octet-stream", true), CHANWIRE_RAW);
    assert_int_equal(chanwire_dialect_of("application/x-www-form-urlencoded", true), CHANWIRE_RAW);
    assert_int_equal(chanwire_dialect_of(NULL, false), CHANWIRE_NONE);
    assert_int_equal(chanwire_dialect_of("application/jsonx", false), CHANWIRE_NONE);
    assert_string_equal(chanwire_content_type(CHANWIRE_RAW), "application/proto");
    assert_int_equal(chanwire_invoke_mode(NULL, "t"), CHANWIRE_M_RAW);
    assert_int_equal(chanwire_invoke_mode("1", "t"), CHANWIRE_M_RAW);
    assert_int_equal(chanwire_invoke_mode("1", NULL), CHANWIRE_M_PASS);
    assert_int_equal(chanwire_invoke_mode("2", NULL), CHANWIRE_M_ENCAP);
    assert_int_equal(chanwire_invoke_mode(NULL, NULL), CHANWIRE_M_ENCAP);
    assert_int_equal(chanwire_uri_op("https://ptp.cn/v1/interconn/chan/push"), CHANWIRE_PUSH);
    assert_int_equal(chanwire_uri_op("/v1/interconn/chan/pop?x=1"), CHANWIRE_POP);
    assert_int_equal(chanwire_uri_op("/v1/interconn/chan/pushx"), -1);
    assert_int_equal(chanwire_uri_op("https://ptp.cn"), -1);
    assert_int_equal(chanwire_uri_op(NULL), -1);
}

/* §10 (a): the spec's bytes, decoded by our generated code. */
static void test_spec_protobuf_examples(void **state)
{
    (void)state;
    unsigned char b[64];
    struct gw_errbuf eb;
    struct chanwire_req r;
    size_t n = unhex("0a03333231120731323334353637", b);
    assert_int_equal(chanwire_parse(CHANWIRE_PROTO, CHANWIRE_PUSH, b, n, &r, &eb), 0);
    assert_string_equal(r.topic, "321");
    assert_int_equal(r.len, 7);
    assert_memory_equal(r.payload, "1234567", 7);
    chanwire_req_cleanup(&r);

    n = unhex("120e0a03333231120731323334353637", b);
    assert_int_equal(chanwire_parse_invoke(CHANWIRE_M_ENCAP, CHANWIRE_PROTO, b, n, &r, &eb), 0);
    assert_string_equal(r.topic, "321");
    assert_memory_equal(r.payload, "1234567", 7);
    chanwire_req_cleanup(&r);

    n = unhex("0a0333323110e807", b);
    assert_int_equal(chanwire_parse(CHANWIRE_PROTO, CHANWIRE_POP, b, n, &r, &eb), 0);
    assert_string_equal(r.topic, "321");
    assert_int_equal(r.timeout, 1000);
    chanwire_req_cleanup(&r);

    char *out;
    size_t ol;
    chanwire_reply_buf(CHANWIRE_PROTO, CHAN_OK, "", NULL, 0, &out, &ol);
    char *h = hex(out, ol);
    assert_string_equal(h, "1a0b4530303030303030303030");
    free(h);
    free(out);
    /* §10 (b): dialect B success answer */
    chanwire_reply_buf(CHANWIRE_RAW, CHAN_OK, "\xe8\xaf\xb7\xe6\xb1\x82\xe6\x88\x90\xe5\x8a\x9f",
                       NULL, 0, &out, &ol);
    h = hex(out, ol);
    assert_string_equal(h, "120b45303030303030303030301a0ce8afb7e6b182e68890e58a9f");
    free(h);
    free(out);
}

static void test_payload_roundtrip_binary(void **state)
{
    (void)state;
    size_t big = 1024 * 1024 + 3;
    unsigned char *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (unsigned char)(i * 7);
    p[0] = 0;
    for (int d = CHANWIRE_JSON; d <= CHANWIRE_RAW; d++) {
        char *out;
        size_t ol;
        chanwire_reply_buf(d, CHAN_OK, "ok", p, big, &out, &ol);
        char code[32], msg[64];
        assert_int_equal(chanwire_parse_answer(d == CHANWIRE_PROTO ? CHANWIRE_PROTO : d, out, ol,
                                               code, msg, sizeof(msg)),
                         0);
        assert_string_equal(code, CHAN_OK);
        assert_string_equal(msg, "ok");
        free(out);
    }
    /* a push built in both encodings parses back byte-exactly */
    for (int d = CHANWIRE_JSON; d <= CHANWIRE_PROTO; d++) {
        size_t bl;
        void *body = chanwire_build_push(d, "topic-\xe4\xb8\xad", p, big, &bl);
        struct chanwire_req r;
        struct gw_errbuf eb;
        assert_int_equal(chanwire_parse(d, CHANWIRE_PUSH, body, bl, &r, &eb), 0);
        assert_string_equal(r.topic, "topic-\xe4\xb8\xad");
        assert_int_equal(r.len, big);
        assert_memory_equal(r.payload, p, big);
        chanwire_req_cleanup(&r);
        /* pass-through carries the same body */
        assert_int_equal(chanwire_parse_invoke(CHANWIRE_M_PASS, d, body, bl, &r, &eb), 0);
        assert_int_equal(r.len, big);
        chanwire_req_cleanup(&r);
        free(body);
    }
    free(p);
}

static void test_json_bodies(void **state)
{
    (void)state;
    struct chanwire_req r;
    struct gw_errbuf eb;
    const char *ok = "{\"topic\":\"guest-9999-host-10000-x\",\"payload\":\"MTIzNDU2Nw==\","
                     "\"metadata\":{}}";
    assert_int_equal(chanwire_parse(CHANWIRE_JSON, CHANWIRE_PUSH, ok, strlen(ok), &r, &eb), 0);
    assert_string_equal(r.topic, "guest-9999-host-10000-x");
    assert_memory_equal(r.payload, "1234567", 7);
    chanwire_req_cleanup(&r);
    const char *content = "{\"topic\":\"t\",\"content\":\"AAE\"}"; /* the table's name, no padding */
    assert_int_equal(chanwire_parse(CHANWIRE_JSON, CHANWIRE_PUSH, content, strlen(content), &r, &eb), 0);
    assert_int_equal(r.len, 2);
    assert_memory_equal(r.payload, "\x00\x01", 2);
    chanwire_req_cleanup(&r);
    const char *pop = "{\"topic\":\"t\",\"timeout\":120}";
    assert_int_equal(chanwire_parse(CHANWIRE_JSON, CHANWIRE_POP, pop, strlen(pop), &r, &eb), 0);
    assert_int_equal(r.timeout, 120);
    chanwire_req_cleanup(&r);
    assert_int_equal(chanwire_parse(CHANWIRE_JSON, CHANWIRE_PEEK, "", 0, &r, &eb), 0);
    assert_null(r.topic);
    chanwire_req_cleanup(&r);

    static const struct {
        int op;
        const char *body, *field;
    } bad[] = {
        {CHANWIRE_PUSH, "{\"topic\":1,\"payload\":\"\"}", "topic"},
        {CHANWIRE_PUSH, "{\"topic\":\"t\",\"payload\":\"***\"}", "payload"},
        {CHANWIRE_PUSH, "{\"topic\":\"t\",\"payload\":7}", "payload"},
        {CHANWIRE_PUSH, "{\"topic\":\"t\",\"metadata\":[1]}", "metadata"},
        {CHANWIRE_PUSH, "[1,2]", "body"},
        {CHANWIRE_PUSH, "{\"topic\":", ""},
        {CHANWIRE_POP, "{\"timeout\":\"soon\"}", "timeout"},
        {CHANWIRE_POP, "{\"timeout\":-5}", "timeout"},
        {CHANWIRE_POP, "{\"topic\":{\"a\":1}}", "topic"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gw_errbuf_clear(&eb);
        assert_int_equal(chanwire_parse(CHANWIRE_JSON, bad[i].op, bad[i].body, strlen(bad[i].body),
                                        &r, &eb),
                         GW_EINVAL);
        assert_non_null(strstr(eb.msg, bad[i].field));
    }
    char longt[1100 + 20];
    memset(longt, 'a', sizeof(longt));
    memcpy(longt, "{\"topic\":\"", 10);
    memcpy(longt + sizeof(longt) - 3, "\"}", 3);
    assert_int_equal(chanwire_parse(CHANWIRE_JSON, CHANWIRE_PEEK, longt, strlen(longt), &r, &eb),
                     GW_EINVAL);
}

static void test_garbage_protobuf(void **state)
{
    (void)state;
    struct chanwire_req r;
    struct gw_errbuf eb;
    static const char *const garbage[] = {"\xff\xff\xff\xff", "\x0a\x10short", "\x12\x05\x01",
                                          "\x0a\xff\xff\xff\xff\x0f", "{\"topic\":\"t\"}"};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        for (int op = CHANWIRE_PUSH; op <= CHANWIRE_RELEASE; op++) {
            gw_errbuf_clear(&eb);
            assert_int_equal(chanwire_parse(CHANWIRE_PROTO, op, garbage[i], strlen(garbage[i]), &r, &eb),
                             GW_EINVAL);
            assert_non_null(strstr(eb.msg, "protobuf"));
        }
        assert_int_equal(chanwire_parse_invoke(CHANWIRE_M_ENCAP, CHANWIRE_PROTO, garbage[i],
                                               strlen(garbage[i]), &r, &eb),
                         GW_EINVAL);
    }
    /* an encapsulated invoke whose inner body is not a push */
    assert_int_equal(chanwire_parse_invoke(CHANWIRE_M_ENCAP, CHANWIRE_JSON,
                                           "{\"payload\":\"/w==\"}", 18, &r, &eb),
                     GW_EINVAL);
    assert_int_equal(chanwire_parse_invoke(CHANWIRE_M_ENCAP, CHANWIRE_RAW, "x", 1, &r, &eb),
                     GW_EINVAL);
    char code[32], msg[16];
    assert_int_equal(chanwire_parse_answer(CHANWIRE_RAW, "\xff\xff", 2, code, msg, sizeof(msg)),
                     GW_EINVAL);
    assert_int_equal(chanwire_parse_answer(CHANWIRE_JSON, "{\"code\":0}", 10, code, msg, sizeof(msg)),
                     GW_EINVAL);
    assert_int_equal(chanwire_parse_answer(CHANWIRE_JSON, "{\"code\":\"OK\"}", 13, code, msg,
                                           sizeof(msg)),
                     GW_EINVAL);
}

static void test_encap_metadata(void **state)
{
    (void)state;
    const char *meta[] = {"x-ptp-session-id", "session_job-1", "x_ptp_source_node_id", "NODE-A",
                          NULL};
    size_t n;
    void *b = chanwire_build_encap(meta, "host.0-guest.0", "\x00\x01\x02", 3, &n);
    struct chanwire_req r;
    struct gw_errbuf eb;
    assert_int_equal(chanwire_parse_invoke(CHANWIRE_M_ENCAP, CHANWIRE_PROTO, b, n, &r, &eb), 0);
    assert_string_equal(r.topic, "host.0-guest.0");
    assert_int_equal(r.len, 3);
    assert_string_equal(chanwire_meta(&r, "X-PTP-Session-Id"), "session_job-1");
    assert_string_equal(chanwire_meta(&r, "x-ptp-source-node-id"), "NODE-A");
    assert_null(chanwire_meta(&r, "x-ptp-topic"));
    chanwire_req_cleanup(&r);
    free(b);
    /* the JSON form: Inbound{"metadata","payload": base64 of a JSON push} */
    const char *js = "{\"metadata\":{\"x-ptp-session-id\":\"s\"},\"payload\":"
                     "\"eyJ0b3BpYyI6InQiLCJwYXlsb2FkIjoiTVRJeiJ9\"}";
    assert_int_equal(chanwire_parse_invoke(CHANWIRE_M_ENCAP, CHANWIRE_JSON, js, strlen(js), &r, &eb), 0);
    assert_string_equal(r.topic, "t");
    assert_memory_equal(r.payload, "123", 3);
    assert_string_equal(chanwire_meta(&r, "x-ptp-session-id"), "s");
    chanwire_req_cleanup(&r);
}

static void test_timeouts(void **state)
{
    (void)state;
    long long ms;
    struct gw_errbuf eb;
    assert_int_equal(chanwire_timeout_ms("1", NULL, -1, 120000, &ms, &eb), 0);
    assert_int_equal(ms, 1000); /* YACL: pop?timeout=1 */
    assert_int_equal(chanwire_timeout_ms(NULL, "2500", -1, 120000, &ms, &eb), 0);
    assert_int_equal(ms, 2500); /* x-ptp-timeout: ms */
    assert_int_equal(chanwire_timeout_ms(NULL, NULL, 10, 120000, &ms, &eb), 0);
    assert_int_equal(ms, 10000); /* body <= 3600: seconds */
    assert_int_equal(chanwire_timeout_ms(NULL, NULL, 5000, 120000, &ms, &eb), 0);
    assert_int_equal(ms, 5000); /* body > 3600: ms */
    assert_int_equal(chanwire_timeout_ms(NULL, NULL, 36000000, 120000, &ms, &eb), 0);
    assert_int_equal(ms, 300000); /* FATE's 10 h: clamped */
    assert_int_equal(chanwire_timeout_ms(NULL, NULL, -1, 120000, &ms, &eb), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(chanwire_timeout_ms("0", NULL, -1, 120000, &ms, &eb), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(chanwire_timeout_ms(NULL, "10", -1, 120000, &ms, &eb), 0);
    assert_int_equal(ms, 1000); /* at least 1 s */
    assert_int_equal(chanwire_timeout_ms("abc", NULL, -1, 120000, &ms, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "timeout"));
    assert_int_equal(chanwire_timeout_ms(NULL, "-1", -1, 120000, &ms, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "x-ptp-timeout"));
}

static void test_json_answer_shape(void **state)
{
    (void)state;
    char *out;
    size_t ol;
    chanwire_reply_buf(CHANWIRE_JSON, CHAN_OK, "ok", "1234567", 7, &out, &ol);
    assert_string_equal(out, "{\"code\":\"E0000000000\",\"message\":\"ok\",\"payload\":\"MTIzNDU2Nw==\"}");
    free(out);
    chanwire_reply_buf(CHANWIRE_JSON, CHAN_E_BAD, "x-ptp-session-id: missing", NULL, 0, &out, &ol);
    assert_string_equal(out, "{\"code\":\"E0000000400\",\"message\":\"x-ptp-session-id: missing\"}");
    free(out);
    unsigned char d[8];
    size_t dl;
    assert_int_equal(chanwire_b64_decode("YQ", 2, d, &dl), 0);
    assert_int_equal(dl, 1);
    assert_int_equal(chanwire_b64_decode("Y", 1, d, &dl), -1);
    assert_int_equal(chanwire_b64_decode("Y!==", 4, d, &dl), -1);
}

int main(void)
{
    json_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dialect_detection),   cmocka_unit_test(test_spec_protobuf_examples),
        cmocka_unit_test(test_payload_roundtrip_binary), cmocka_unit_test(test_json_bodies),
        cmocka_unit_test(test_garbage_protobuf),    cmocka_unit_test(test_encap_metadata),
        cmocka_unit_test(test_timeouts),            cmocka_unit_test(test_json_answer_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
