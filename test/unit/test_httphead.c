/*
 * test_httphead.c - the strict request head checker (gateway/httphead.h):
 * a table of heads a front proxy and evhttp could frame differently, each
 * refused with a message naming the field, and good heads with their
 * framing; every case is also fed one byte at a time and in every two-piece
 * split, which must not change the verdict.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gateway/httphead.h"

#define MAX 65536

struct hcase {
    const char *head;
    enum hh_verdict want;
    long long body;   /* HH_DONE: hh_body_length */
    const char *why;  /* HH_BAD: a piece of the message */
};

static const struct hcase cases[] = {
    /* good */
    {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", HH_DONE, 0, NULL},
    {"GET /healthz HTTP/1.0\r\n\r\n", HH_DONE, 0, NULL},
    {"POST /v1/x?a=1&b=%20 HTTP/1.1\r\nHost: a\r\nContent-Length: 14\r\n\r\n", HH_DONE, 14, NULL},
    {"POST / HTTP/1.1\r\nContent-Length:   7  \r\n\r\n", HH_DONE, 7, NULL},
    {"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", HH_DONE, 5, NULL},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", HH_DONE, -1, NULL},
    {"POST / HTTP/1.1\r\nX-Odd: a\tb \x80\xff\r\nContent-Length: 0\r\n\r\n", HH_DONE, 0, NULL},
    {"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", HH_DONE, 0, NULL},
    {"GET / HTTP/1.1\r\nX-Long-Header-Name-Over-Twenty-Four: 1\r\n\r\n", HH_DONE, 0, NULL},
    /* the smuggling shapes of issue 13 */
    {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 14\r\n\r\n", HH_BAD, 0,
     "Content-Length: given twice with different values"},
    {"POST / HTTP/1.1\r\nContent-Length: +14\r\n\r\n", HH_BAD, 0, "Content-Length: expected digits"},
    {"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n", HH_BAD, 0,
     "Transfer-Encoding: whitespace between the field name and the colon"},
    {"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", HH_BAD, 0,
     "Content-Length and Transfer-Encoding together"},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", HH_BAD, 0,
     "Content-Length and Transfer-Encoding together"},
    /* more framing faults */
    {"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", HH_BAD, 0, "Content-Length: expected digits"},
    {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", HH_BAD, 0, "Content-Length"},
    {"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", HH_BAD, 0, "Content-Length"},
    {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", HH_BAD, 0, "Content-Length: expected a decimal"},
    {"POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n", HH_BAD, 0, "18 digits"},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HH_BAD, 0, "only \"chunked\""},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", HH_BAD,
     0, "more than once"},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HH_BAD, 0, "HTTP/1.0"},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HH_BAD, 0, "Host: given more than once"},
    {"HEAD / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", HH_BAD, 0, "cannot carry a body"},
    {"HEAD / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", HH_DONE, 0, NULL},
    {"GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", HH_BAD, 0, "obs-fold"},
    {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", HH_BAD, 0, "obs-fold"},
    {"GET / HTTP/1.1\r\nX-A\tB: 1\r\n\r\n", HH_BAD, 0, "whitespace between"},
    {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", HH_BAD, 0, "no colon"},
    {"GET / HTTP/1.1\r\n: v\r\n\r\n", HH_BAD, 0, "field name is empty"},
    {"GET / HTTP/1.1\r\nX(y): 1\r\n\r\n", HH_BAD, 0, "not a token"},
    {"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", HH_BAD, 0, "bare CR"},
    {"GET / HTTP/1.1\r\nX-A: a\x01\r\n\r\n", HH_BAD, 0, "control character"},
    {"GET / HTTP/1.1\r\nX-A: a\n\r\n", HH_BAD, 0, "not ended by CRLF"},
    {"GET / HTTP/1.1\nHost: a\r\n\r\n", HH_BAD, 0, "not ended by CRLF"},
    {"GET / HTTP/1.1\r\nHost: a\r\n\n", HH_BAD, 0, "not ended by CRLF"},
    {"GET / HTTP/1.1\r\nHost: a\r\n\r\r", HH_BAD, 0, "bare CR"},
    {"GET /a b HTTP/1.1\r\n\r\n", HH_BAD, 0, "request line"},
    {"GET  / HTTP/1.1\r\n\r\n", HH_BAD, 0, "target is empty"},
    {"GET / HTTP/1.1 \r\n\r\n", HH_BAD, 0, "version"},
    {"GET / HTTP/2.0\r\n\r\n", HH_BAD, 0, "version"},
    {"GET / http/1.1\r\n\r\n", HH_BAD, 0, "version"},
    {"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", HH_BAD, 0, "non-ASCII"},
    {"\r\nGET / HTTP/1.1\r\n\r\n", HH_BAD, 0, "request line: empty"},
    {"GE(T / HTTP/1.1\r\n\r\n", HH_BAD, 0, "method is not a token"},
    {"GARBAGE\r\n\r\n", HH_BAD, 0, "request line"},
    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", HH_BAD, 0, "request line"}, /* TLS hello */
};

/* Feed head in the given pieces; returns the verdict and the bytes used. */
static enum hh_verdict feed(struct hh *h, const char *head, size_t len, size_t piece,
                            size_t *total)
{
    hh_init(h);
    *total = 0;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < piece ? len - off : piece, used = 0;
        enum hh_verdict v = hh_feed(h, head + off, n, MAX, &used);
        *total += used;
        if (v != HH_MORE)
            return v;
        off += n;
    }
    return HH_MORE;
}

static void check_case(const struct hcase *c, size_t piece)
{
    struct hh h;
    size_t len = strlen(c->head), used = 0;
    enum hh_verdict v = feed(&h, c->head, len, piece, &used);
    if (v != c->want) {
        print_error("head %s\npiece %zu: verdict %d, want %d (%s)\n", c->head, piece, v, c->want,
                    h.why ? h.why : "");
        fail();
    }
    if (v == HH_DONE) {
        assert_int_equal(used, len); /* the head ends exactly at its empty line */
        assert_int_equal(hh_body_length(&h), c->body);
    } else {
        assert_non_null(h.why);
        if (!strstr(h.why, c->why)) {
            print_error("head %s\nwhy '%s' lacks '%s'\n", c->head, h.why, c->why);
            fail();
        }
        assert_int_equal(h.status, 400);
    }
}

static void test_table_whole_and_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_case(&cases[i], 1 << 20);
        check_case(&cases[i], 1);
        check_case(&cases[i], 3);
        check_case(&cases[i], 7);
    }
}

static void test_two_piece_splits(void **state)
{
    (void)state;
    /* Every split point of every case gives the same answer. */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *s = cases[i].head;
        size_t len = strlen(s);
        for (size_t k = 0; k <= len; k++) {
            struct hh h;
            hh_init(&h);
            size_t used = 0;
            enum hh_verdict v = hh_feed(&h, s, k, MAX, &used);
            if (v == HH_MORE)
                v = hh_feed(&h, s + k, len - k, MAX, &used);
            assert_int_equal(v, cases[i].want);
        }
    }
}

static void test_body_after_head_not_consumed(void **state)
{
    (void)state;
    /* What follows the empty line is the body (or a smuggled request):
     * the scanner stops at the head's end and says where. */
    static const char in[] = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /x HTTP/1.1\r\n";
    struct hh h;
    hh_init(&h);
    size_t used = 0;
    assert_int_equal(hh_feed(&h, in, sizeof(in) - 1, MAX, &used), HH_DONE);
    assert_int_equal(used, strlen("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"));
    assert_int_equal(hh_body_length(&h), 5);
}

static void test_size_cap(void **state)
{
    (void)state;
    char big[300];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    struct hh h;
    hh_init(&h);
    size_t used = 0;
    assert_int_equal(hh_feed(&h, big, sizeof(big), 200, &used), HH_BAD);
    assert_int_equal(h.status, 431);
    assert_non_null(strstr(h.why, "http.header_max"));
    /* exactly at the cap is fine */
    static const char ok[] = "GET / HTTP/1.1\r\n\r\n";
    hh_init(&h);
    assert_int_equal(hh_feed(&h, ok, sizeof(ok) - 1, sizeof(ok) - 1, &used), HH_DONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_whole_and_split),
        cmocka_unit_test(test_two_piece_splits),
        cmocka_unit_test(test_body_after_head_not_consumed),
        cmocka_unit_test(test_size_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
