/*
 * test_spool.c - the multipart/form-data parser of streamed uploads
 * (struct spool_body, gateway/spool.h): fields and file bytes of a body as
 * curl sends it, in every piece size from 1 byte up, and each malformed
 * body refused with a message naming the part.
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

#include "gateway/spool.h"

struct sink {
    char buf[70000];
    size_t len;
};

static const char *collect(void *arg, const char *p, size_t n)
{
    struct sink *s = arg;
    if (s->len + n > sizeof(s->buf))
        return "file: too big for the test";
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return NULL;
}

static const char GOOD[] =
    "preamble to ignore\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"namespace\"\r\n\r\n"
    "demo\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"name\"\r\n\r\n"
    "guest\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"g.csv\"\r\n"
    "Content-Type: text/csv\r\n\r\n"
    "id,x\r\n1,2\r\nx--XyZ is not a delimiter without CRLF right before it\r\n--XyW neither\r\n"
    "--XyZ--\r\n";
static const char FILEPART[] =
    "id,x\r\n1,2\r\nx--XyZ is not a delimiter without CRLF right before it\r\n--XyW neither";

/* Feed body in pieces of `piece` bytes; returns the error or NULL. */
static char *parse(const char *body, size_t len, size_t piece, struct sink *s, cJSON **fields)
{
    memset(s, 0, sizeof(*s));
    struct spool_body *b = spool_body_new("XyZ", 3, collect, s);
    assert_non_null(b);
    for (size_t off = 0; off < len; off += piece)
        spool_body_feed(b, body + off, len - off < piece ? len - off : piece);
    spool_body_end(b);
    const char *e = spool_body_error(b);
    char *err = e ? strdup(e) : NULL;
    if (!err)
        assert_int_equal(spool_body_size(b), (long long)s->len);
    *fields = spool_body_fields_take(b);
    spool_body_free(b);
    return err;
}

static void test_good_body_every_split(void **state)
{
    (void)state;
    for (size_t piece = 1; piece <= sizeof(GOOD); piece++) {
        struct sink s;
        cJSON *f = NULL;
        char *err = parse(GOOD, sizeof(GOOD) - 1, piece, &s, &f);
        if (err)
            fail_msg("piece %zu: %s", piece, err);
        assert_int_equal(s.len, sizeof(FILEPART) - 1);
        assert_memory_equal(s.buf, FILEPART, s.len);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(f, "namespace")->valuestring, "demo");
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(f, "name")->valuestring, "guest");
        assert_int_equal(cJSON_GetArraySize(f), 2);
        cJSON_Delete(f);
    }
}

static void refused(const char *body, size_t len, const char *want)
{
    for (size_t piece = 1; piece <= len; piece = piece * 3 + 1) {
        struct sink s;
        cJSON *f = NULL;
        char *err = parse(body, len, piece, &s, &f);
        cJSON_Delete(f);
        if (!err || !strstr(err, want))
            fail_msg("piece %zu: got '%s', want '%s'", piece, err ? err : "(accepted)", want);
        free(err);
    }
}

#define R(lit, want) refused(lit, sizeof(lit) - 1, want)

static void test_malformed_bodies(void **state)
{
    (void)state;
    R("no delimiter at all", "no multipart boundary");
    R("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue without end",
      "not terminated");
    R("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XyZ--\r\n",
      "file: no file part");
    R("--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n1\r\n"
      "--XyZ\r\nContent-Disposition: form-data; filename=\"x\"; name=\"f2\"\r\n\r\n2\r\n--XyZ--",
      "more than one file part");
    R("--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--", "part without a name");
    R("--XyZxx", "malformed multipart delimiter");
    /* a form field over 64 KiB, and part headers over 16 KiB */
    size_t big = 70000;
    char *b = malloc(big + 200);
    int n = snprintf(b, 200, "--XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\n");
    memset(b + n, 'm', big);
    memcpy(b + n + big, "\r\n--XyZ--", 9);
    refused(b, (size_t)n + big + 9, "form field is larger than 64 KiB");
    n = snprintf(b, 200, "--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\nX-Pad: ");
    memset(b + n, 'h', 20000);
    memcpy(b + n + 20000, "\r\n\r\nv\r\n--XyZ--", 14);
    refused(b, (size_t)n + 20000 + 14, "headers larger than 16 KiB");
    free(b);
}

static void test_boundary_bounds(void **state)
{
    (void)state;
    struct sink s;
    char b71[72];
    memset(b71, 'b', sizeof(b71));
    assert_null(spool_body_new(b71, 0, collect, &s));
    assert_null(spool_body_new(b71, 71, collect, &s));
    struct spool_body *ok = spool_body_new(b71, 70, collect, &s);
    assert_non_null(ok);
    spool_body_free(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_body_every_split),
        cmocka_unit_test(test_malformed_bodies),
        cmocka_unit_test(test_boundary_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
