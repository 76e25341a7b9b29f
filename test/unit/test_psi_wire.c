/* test_psi_wire.c - the bytes on the wire: the protobuf encodings of spec
 * bfia-ecdh-psi.md §10, batch round trips (the empty last batch too),
 * malformed input, the link-layer key syntax and its key sequence, dialect
 * B's TransportOutbound (bfia-transport.md §10 (b)), the exact request
 * heads of the dialect-B client, and the HTTP answer parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psi_http.h"
#include "psi_transport.h"
#include "psi_wire.h"

static size_t unhex(const char *h, unsigned char *out, size_t cap)
{
    size_t n = strlen(h) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
    return n;
}

static void assert_hex(const unsigned char *b, size_t n, const char *want)
{
    unsigned char w[1024];
    size_t wl = unhex(want, w, sizeof(w));
    assert_int_equal(n, wl);
    assert_memory_equal(b, w, n);
}

static const char *ENC_A1 = "f72498274ce7d535779f0975488a956093c644b624f07209197c74524af7d811";
static const char *ENC_A2 = "427267bb0b22c9d4b2ff8be7caeff592c4b9b5b313d2a4adf0ab7eb3098ede26";

static void test_batch_bytes(void **state)
{
    (void)state;
    unsigned char ct[64];
    unhex(ENC_A1, ct, 32);
    unhex(ENC_A2, ct + 32, 32);
    struct psi_wire_batch b = {"enc", 0, false, 2, ct, 64};
    unsigned char *out;
    size_t n;
    assert_int_equal(psi_wire_batch_pack(&b, &out, &n), 0);
    char want[300];
    snprintf(want, sizeof(want), "0a03656e6330023a40%s%s", ENC_A1, ENC_A2);
    assert_hex(out, n, want);
    free(out);

    struct psi_wire_batch last = {"enc", 1, true, 0, NULL, 0};
    assert_int_equal(psi_wire_batch_pack(&last, &out, &n), 0);
    assert_hex(out, n, "0a03656e6318012001");

    /* ... inside PushRequests from rank 0 and rank 1, and the connect message */
    struct psi_wire_push p = {0, "root:P2P-1:0->1\x01\x02" "1", out, n, false, 0, 0};
    unsigned char *pw;
    size_t pn;
    assert_int_equal(psi_wire_push_pack(&p, &pw, &pn), 0);
    assert_hex(pw, pn, "1212726f6f743a5032502d313a302d3e310102311a090a03656e6318012001");
    free(pw);
    p.sender_rank = 1;
    p.key = "root:P2P-1:1->0\x01\x02" "1";
    assert_int_equal(psi_wire_push_pack(&p, &pw, &pn), 0);
    assert_hex(pw, pn, "08011212726f6f743a5032502d313a312d3e300102311a090a03656e6318012001");
    free(pw);
    free(out);
    struct psi_wire_push c = {1, "connect_1\x01\x02" "0", NULL, 0, false, 0, 0};
    assert_int_equal(psi_wire_push_pack(&c, &pw, &pn), 0);
    assert_hex(pw, pn, "0801120c636f6e6e6563745f31010230");
    free(pw);
}

static void test_batch_round_trip(void **state)
{
    (void)state;
    unsigned char data[4096 * 12];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + 3);
    const struct psi_wire_batch cases[] = {
        {"enc", 0, false, 4096, data, 4096 * 12},
        {"dual.enc", 17, false, 3, data, 36},
        {"dual.enc", 18, true, 0, NULL, 0}, /* the empty terminating batch */
        {"enc", 0, true, 0, NULL, 0},       /* an empty input: the only batch */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char *out;
        size_t n;
        assert_int_equal(psi_wire_batch_pack(&cases[i], &out, &n), 0);
        struct psi_wire_batch b;
        struct psi_wire_batch_msg *m;
        assert_int_equal(psi_wire_batch_unpack(out, n, &b, &m), 0);
        assert_string_equal(b.type, cases[i].type);
        assert_int_equal(b.index, cases[i].index);
        assert_int_equal(b.is_last, cases[i].is_last);
        assert_int_equal(b.count, cases[i].count);
        assert_int_equal(b.len, cases[i].len);
        if (b.len)
            assert_memory_equal(b.data, cases[i].data, b.len);
        psi_wire_batch_msg_free(m);
        free(out);
    }
    /* a count below zero is refused both ways */
    struct psi_wire_batch neg = {"enc", 0, false, -1, NULL, 0};
    unsigned char *out;
    size_t n;
    assert_int_equal(psi_wire_batch_pack(&neg, &out, &n), -1);
    unsigned char negb[16];
    size_t nl = unhex("0a03656e6330ffffffffffffffffff01", negb, sizeof(negb)); /* count = -1 */
    struct psi_wire_batch b;
    struct psi_wire_batch_msg *m;
    assert_int_equal(psi_wire_batch_unpack(negb, nl, &b, &m), -1);
    assert_null(m);
}

static void test_batch_field8_ignored_and_garbage(void **state)
{
    (void)state;
    /* {type "enc", count 1, ciphertext "ab", duplicate_item_cnt_map {0: 2}} */
    unsigned char buf[64];
    size_t n = unhex("0a03656e6330013a02616242040800" "1002", buf, sizeof(buf));
    struct psi_wire_batch b;
    struct psi_wire_batch_msg *m;
    assert_int_equal(psi_wire_batch_unpack(buf, n, &b, &m), 0);
    assert_int_equal(b.count, 1);
    assert_int_equal(b.len, 2);
    psi_wire_batch_msg_free(m);
    /* truncated, wrong wire type, random bytes */
    const char *bad[] = {"0a05656e63", "0b03656e63", "ffffffff", "3a80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = unhex(bad[i], buf, sizeof(buf));
        assert_int_equal(psi_wire_batch_unpack(buf, n, &b, &m), -1);
        assert_null(m);
    }
    /* PushRequest: no key, a chunk beyond its message, an unknown trans type */
    struct psi_wire_push p;
    struct psi_wire_push_msg *pm;
    n = unhex("0801", buf, sizeof(buf));
    assert_int_equal(psi_wire_push_unpack(buf, n, &p, &pm), -1);
    n = unhex("1201611a0361626320012a04080310" "02", buf, sizeof(buf)); /* len 3 at 2 of 3 */
    assert_int_equal(psi_wire_push_unpack(buf, n, &p, &pm), -1);
    n = unhex("120161200"
              "7",
              buf, sizeof(buf));
    assert_int_equal(psi_wire_push_unpack(buf, n, &p, &pm), -1);
    assert_null(pm);
}

static void test_push_chunked_round_trip(void **state)
{
    (void)state;
    unsigned char v[100];
    memset(v, 'x', sizeof(v));
    struct psi_wire_push p = {1, "root:P2P-3:1->0\x01\x02" "9", v, 100, true, 1000, 900};
    unsigned char *out;
    size_t n;
    assert_int_equal(psi_wire_push_pack(&p, &out, &n), 0);
    struct psi_wire_push q;
    struct psi_wire_push_msg *m;
    assert_int_equal(psi_wire_push_unpack(out, n, &q, &m), 0);
    assert_true(q.chunked);
    assert_int_equal(q.total, 1000);
    assert_int_equal(q.offset, 900);
    assert_int_equal(q.sender_rank, 1);
    assert_string_equal(q.key, p.key);
    assert_int_equal(q.len, 100);
    psi_wire_push_msg_free(m);
    free(out);
}

/* The key generator: root:P2P-1:0->1, root:P2P-2:0->1, ... and
 * root-0:P2P-1:0->1 for the dual stream; seq suffixes. */
static void test_keys(void **state)
{
    (void)state;
    char k[128], w[160];
    const char *want[] = {"root:P2P-1:0->1", "root:P2P-2:0->1", "root:P2P-3:0->1"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(psi_wire_p2p_key(k, sizeof(k), "root", (uint64_t)i + 1, 0, 1), 0);
        assert_string_equal(k, want[i]);
    }
    assert_int_equal(psi_wire_p2p_key(k, sizeof(k), "root-0", 1, 0, 1), 0);
    assert_string_equal(k, "root-0:P2P-1:0->1");
    assert_int_equal(psi_wire_p2p_key(k, sizeof(k), "root", 12, 1, 0), 0);
    assert_string_equal(k, "root:P2P-12:1->0");
    assert_int_equal(psi_wire_p2p_key(k, 10, "root", 1, 0, 1), -1);
    assert_int_equal(psi_wire_seq_key(w, sizeof(w), "root:P2P-1:0->1", 1), 0);
    assert_memory_equal(w, "root:P2P-1:0->1\x01\x02" "1", 19);
    assert_int_equal(psi_wire_seq_key(w, sizeof(w), "connect_1", 0), 0);
    assert_string_equal(w, "connect_1\x01\x02" "0");

    char mk[64];
    uint64_t seq = 99;
    assert_int_equal(psi_wire_split_key("root-0:P2P-2:1->0\x01\x02" "37", mk, sizeof(mk), &seq),
                     PSI_WIRE_KEY_NORMAL);
    assert_string_equal(mk, "root-0:P2P-2:1->0");
    assert_int_equal(seq, 37);
    assert_int_equal(psi_wire_split_key("connect_0\x01\x02" "0", mk, sizeof(mk), &seq),
                     PSI_WIRE_KEY_NORMAL);
    assert_int_equal(seq, 0);
    assert_int_equal(psi_wire_split_key("no-seq-key", mk, sizeof(mk), &seq), PSI_WIRE_KEY_NORMAL);
    assert_int_equal(seq, 0);
    assert_int_equal(psi_wire_split_key("ACK\x01\x02", mk, sizeof(mk), &seq), PSI_WIRE_KEY_ACK);
    assert_int_equal(psi_wire_split_key("FIN\x01\x02", mk, sizeof(mk), &seq), PSI_WIRE_KEY_FIN);
    /* malformed: empty, no key before the separator, a non-decimal seq, too long */
    assert_int_equal(psi_wire_split_key("", mk, sizeof(mk), &seq), -1);
    assert_int_equal(psi_wire_split_key("\x01\x02" "5", mk, sizeof(mk), &seq), -1);
    assert_int_equal(psi_wire_split_key("k\x01\x02" "5x", mk, sizeof(mk), &seq), -1);
    assert_int_equal(psi_wire_split_key("k\x01\x02", mk, sizeof(mk), &seq), -1);
    assert_int_equal(psi_wire_split_key("k\x01\x02" "-1", mk, sizeof(mk), &seq), -1);
    assert_int_equal(psi_wire_split_key("a-rather-long-key\x01\x02" "1", mk, 8, &seq), -1);

    uint64_t c;
    assert_int_equal(psi_wire_parse_count((const unsigned char *)"4", 1, &c), 0);
    assert_int_equal(c, 4);
    assert_int_equal(psi_wire_parse_count((const unsigned char *)"1234567890123", 13, &c), 0);
    assert_int_equal(c, 1234567890123ULL);
    assert_int_equal(psi_wire_parse_count((const unsigned char *)"", 0, &c), -1);
    assert_int_equal(psi_wire_parse_count((const unsigned char *)" 4", 2, &c), -1);
    assert_int_equal(psi_wire_parse_count((const unsigned char *)"99999999999999999999", 20, &c), -1);
}

static void test_outbound(void **state)
{
    (void)state;
    /* bfia-transport.md §10 (b): {code "E0000000000", message "请求成功"} */
    unsigned char buf[128];
    size_t n = unhex("120b45303030303030303030301a0ce8afb7e6b182e68890e58a9f", buf, sizeof(buf));
    struct psi_wire_outbound o;
    assert_int_equal(psi_wire_outbound_unpack(buf, n, &o), 0);
    assert_string_equal(o.code, "E0000000000");
    assert_string_equal(o.message, "请求成功");
    assert_null(o.payload);
    unsigned char *out;
    size_t on;
    assert_int_equal(psi_wire_outbound_pack("E0000000000", "请求成功", NULL, 0, &out, &on), 0);
    assert_int_equal(on, n);
    assert_memory_equal(out, buf, n);
    free(out);
    assert_int_equal(psi_wire_outbound_pack("E0000000000", "", (const unsigned char *)"\0raw", 4,
                                            &out, &on),
                     0);
    assert_int_equal(psi_wire_outbound_unpack(out, on, &o), 0);
    assert_int_equal(o.len, 4);
    assert_memory_equal(o.payload, "\0raw", 4);
    free(o.payload);
    free(out);
    /* dialect A's answer (code in field 3) is not dialect B's */
    n = unhex("1a0b4530303030303030303030", buf, sizeof(buf));
    assert_int_equal(psi_wire_outbound_unpack(buf, n, &o), 0);
    assert_string_equal(o.code, ""); /* the client treats a missing code as not dialect B */
}

/* The exact heads the component sends to system.transport. */
static void test_transport_heads(void **state)
{
    (void)state;
    struct psi_transport_http_cfg cfg = {"http://127.0.0.1:7304", "session_job1", "tok-123",
                                         "trace-9", "BFIA-C", "NODE_A", "NODE_B", "INST_A", "INST_B",
                                         1000};
    char err[256], head[4096];
    struct psi_transport *t = psi_transport_http_new(&cfg, err, sizeof(err));
    assert_non_null(t);
    int n = psi_transport_http_head(t, true, "guest.0-host.0", 131090, 0, head, sizeof(head));
    assert_true(n > 0);
    assert_string_equal(head, "POST /v1/interconn/chan/push HTTP/1.1\r\n"
                              "Host: 127.0.0.1:7304\r\n"
                              "x-ptp-tech-provider-code: BFIA-C\r\n"
                              "x-ptp-trace-id: trace-9\r\n"
                              "x-ptp-token: tok-123\r\n"
                              "x-ptp-session-id: session_job1\r\n"
                              "x-ptp-source-node-id: NODE_A\r\n"
                              "x-ptp-target-node-id: NODE_B\r\n"
                              "x-ptp-source-inst-id: INST_A\r\n"
                              "x-ptp-target-inst-id: INST_B\r\n"
                              "x-ptp-topic: guest.0-host.0\r\n"
                              "Content-Length: 131090\r\n\r\n");
    n = psi_transport_http_head(t, false, "host.0-guest.0", 0, 1, head, sizeof(head));
    assert_true(n > 0);
    assert_non_null(strstr(head, "POST /v1/interconn/chan/pop?timeout=1 HTTP/1.1\r\n") == head ? head : NULL);
    assert_non_null(strstr(head, "x-ptp-target-node-id: NODE_B\r\n")); /* the peer, on pop too */
    assert_non_null(strstr(head, "x-ptp-topic: host.0-guest.0\r\n"));
    assert_non_null(strstr(head, "Content-Length: 0\r\n\r\n"));
    psi_transport_free(t);

    /* a base path is kept; bad values are refused naming them */
    cfg.address = "10.1.2.3:80/gw";
    t = psi_transport_http_new(&cfg, err, sizeof(err));
    assert_non_null(t);
    assert_true(psi_transport_http_head(t, true, "a-b", 1, 0, head, sizeof(head)) > 0);
    const char *want = "POST /gw/v1/interconn/chan/push HTTP/1.1\r\nHost: 10.1.2.3:80\r\n";
    assert_true(strncmp(head, want, strlen(want)) == 0);
    psi_transport_free(t);
    cfg.address = "transport.example:7304";
    assert_null(psi_transport_http_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "system.transport"));
    cfg.address = "https://127.0.0.1:7304";
    assert_null(psi_transport_http_new(&cfg, err, sizeof(err)));
    cfg.address = "127.0.0.1:99999";
    assert_null(psi_transport_http_new(&cfg, err, sizeof(err)));
    cfg.address = "[::1]:7304";
    t = psi_transport_http_new(&cfg, err, sizeof(err));
    assert_non_null(t);
    psi_transport_free(t);
    cfg.token = "evil\r\nx-ptp-session-id: other";
    assert_null(psi_transport_http_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "config.token"));
}

static int parse(const char *s, bool eof, size_t max, struct psi_http_resp *r, size_t *used)
{
    return psi_http_parse((const unsigned char *)s, strlen(s), eof, max, r, used);
}

static void test_http_parser(void **state)
{
    (void)state;
    struct psi_http_resp r;
    size_t used;
    const char *a = "HTTP/1.1 200 OK\r\nContent-Type: application/proto\r\nContent-Length: 5\r\n\r\nhello";
    assert_int_equal(parse(a, false, 100, &r, &used), 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.body, "hello", 5);
    assert_false(r.close);
    assert_int_equal(used, strlen(a));
    psi_http_resp_cleanup(&r);
    /* every prefix needs more */
    for (size_t cut = 0; cut < strlen(a); cut++) {
        assert_int_equal(psi_http_parse((const unsigned char *)a, cut, false, 100, &r, &used), 0);
    }
    /* a body over the cap */
    assert_int_equal(parse(a, false, 4, &r, &used), -1);
    /* chunked, with an extension and a trailer; interim 100 first */
    const char *c = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                    "Connection: close\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n";
    assert_int_equal(parse(c, false, 100, &r, &used), 1);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.body, "abcde", 5);
    assert_true(r.close);
    psi_http_resp_cleanup(&r);
    /* read until close */
    const char *u = "HTTP/1.0 503 Busy\r\n\r\nlater";
    assert_int_equal(parse(u, false, 100, &r, &used), 0);
    assert_int_equal(parse(u, true, 100, &r, &used), 1);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.len, 5);
    psi_http_resp_cleanup(&r);
    /* malformed */
    const char *bad[] = {"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
                         "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
                         "SMTP ready\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], false, 100, &r, &used), -1);
    /* a truncated body at the end of the connection */
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", true, 100, &r, &used),
                     -1);
    /* an endless header section */
    char *big = malloc(70000);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(big + 20, 'a', 70000 - 21);
    big[69999] = '\0';
    assert_int_equal(parse(big, false, 100, &r, &used), -1);
    free(big);
    /* 204 has no body */
    assert_int_equal(parse("HTTP/1.1 204 No Content\r\n\r\n", false, 100, &r, &used), 1);
    assert_int_equal(r.len, 0);
    psi_http_resp_cleanup(&r);
    assert_true(psi_http_header_safe("abc"));
    assert_false(psi_http_header_safe("a\nb"));
    assert_false(psi_http_header_safe(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_bytes),
        cmocka_unit_test(test_batch_round_trip),
        cmocka_unit_test(test_batch_field8_ignored_and_garbage),
        cmocka_unit_test(test_push_chunked_round_trip),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_outbound),
        cmocka_unit_test(test_transport_heads),
        cmocka_unit_test(test_http_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
