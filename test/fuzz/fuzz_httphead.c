/*
 * fuzz_httphead.c - the strict request head checker (gateway/httphead.c)
 * that every request passes before evhttp parses it: bytes fed whole and
 * in input-chosen pieces must give the same verdict, the same end of head
 * and the same framing; an accepted head ends with CRLF CRLF, has no bare
 * CR or LF, and announces at most one framing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gateway/httphead.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t maxsplit = 1 + data[0] % 32;
    data++;
    size--;
    const char *p = (const char *)data;

    struct hh whole;
    hh_init(&whole);
    size_t wused = 0;
    enum hh_verdict wv = hh_feed(&whole, p, size, MAX, &wused);

    struct hh parts;
    hh_init(&parts);
    struct fz_splitter sp;
    fz_split_init(&sp, data, size < 8 ? size : 8, maxsplit);
    enum hh_verdict pv = HH_MORE;
    size_t pused = 0;
    for (size_t off = 0; off < size;) {
        size_t n = fz_split_next(&sp), used = 0;
        if (n > size - off)
            n = size - off;
        pv = hh_feed(&parts, p + off, n, MAX, &used);
        pused += used;
        if (pv != HH_MORE)
            break;
        off += n;
    }
    if (pv != wv || pused != wused)
        abort(); /* the pieces a head arrives in must not matter */
    if (wv == HH_BAD) {
        if (!whole.why || !whole.why[0] || strcmp(whole.why, parts.why) != 0 ||
            (whole.status != 400 && whole.status != 431))
            abort();
        return 0;
    }
    if (wv == HH_MORE)
        return 0;
    if (hh_body_length(&whole) != hh_body_length(&parts))
        abort();
    if (wused < 4 || memcmp(p + wused - 4, "\r\n\r\n", 4) != 0)
        abort(); /* a head ends at its empty line */
    for (size_t i = 0; i < wused; i++) {
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            abort(); /* no bare LF */
        if (p[i] == '\r' && (i + 1 >= wused || p[i + 1] != '\n'))
            abort(); /* no bare CR */
        if (p[i] == '\0')
            abort();
    }
    if (whole.chunked && whole.has_cl)
        abort(); /* never two framings */
    return 0;
}
