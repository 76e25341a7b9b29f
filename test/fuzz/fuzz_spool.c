/*
 * fuzz_spool.c - the multipart/form-data parser of streamed uploads
 * (struct spool_body in gateway/spool.c).  Input: one byte for the split
 * size, one for the boundary length, the boundary, then the body.  The
 * body is parsed once whole and once in input-chosen pieces; both must
 * give the same verdict, the same form fields and the same file bytes.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gateway/json.h"
#include "gateway/spool.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_init();
    return 0;
}

struct sink {
    char *buf;
    size_t len;
};

static const char *collect(void *arg, const char *p, size_t n)
{
    struct sink *s = arg;
    if (s->len + n > (1u << 20))
        return "file: over the fuzzer's cap"; /* exercises the sink error path */
    char *nb = realloc(s->buf, s->len + n + 1);
    if (!nb)
        abort();
    s->buf = nb;
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return NULL;
}

struct result {
    struct sink file;
    char *fields;
    char *error;
    long long size;
};

static void run(const char *bnd, size_t blen, const uint8_t *body, size_t n, size_t maxsplit,
                struct result *r)
{
    memset(r, 0, sizeof(*r));
    struct spool_body *b = spool_body_new(bnd, blen, collect, &r->file);
    if (!b)
        abort(); /* 1..70 is always accepted */
    struct fz_splitter sp;
    fz_split_init(&sp, body, n < 8 ? n : 8, maxsplit);
    for (size_t off = 0; off < n;) {
        size_t k = maxsplit ? fz_split_next(&sp) : n;
        if (k > n - off)
            k = n - off;
        spool_body_feed(b, (const char *)body + off, k);
        off += k;
    }
    spool_body_end(b);
    const char *err = spool_body_error(b);
    r->error = err ? strdup(err) : NULL;
    r->size = spool_body_size(b);
    cJSON *f = spool_body_fields_take(b);
    r->fields = cJSON_PrintUnformatted(f);
    cJSON_Delete(f);
    spool_body_free(b);
}

static void result_free(struct result *r)
{
    free(r->file.buf);
    free(r->error);
    cJSON_free(r->fields);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t maxsplit = 1 + data[0] % 64;
    size_t blen = 1 + data[1] % 70;
    if (size < 2 + blen)
        return 0;
    const char *bnd = (const char *)data + 2;
    const uint8_t *body = data + 2 + blen;
    size_t n = size - 2 - blen;

    struct result whole, parts;
    run(bnd, blen, body, n, 0, &whole);
    run(bnd, blen, body, n, maxsplit, &parts);
    if ((whole.error == NULL) != (parts.error == NULL) ||
        (whole.error && strcmp(whole.error, parts.error) != 0))
        abort(); /* the same verdict whatever the pieces */
    if (!whole.error) {
        if (whole.file.len != parts.file.len || whole.size != (long long)whole.file.len ||
            (whole.file.len && memcmp(whole.file.buf, parts.file.buf, whole.file.len) != 0) ||
            strcmp(whole.fields, parts.fields) != 0)
            abort(); /* the same fields and file bytes */
    }
    result_free(&whole);
    result_free(&parts);
    if (spool_body_new(bnd, 0, collect, NULL) || spool_body_new(bnd, 71, collect, NULL))
        abort(); /* boundaries out of 1..70 are refused */
    return 0;
}
