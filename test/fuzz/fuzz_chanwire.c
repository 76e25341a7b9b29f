/*
 * fuzz_chanwire.c - the channel API's body parsers on hostile bytes.  The
 * first byte picks the parser (dialect A JSON or protobuf for each
 * operation, the pass-through and encapsulated invoke forms, the answer
 * readers, the timeout rules); the rest is the body.  A body that parses is
 * answered and the answer read back: it must carry the code it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/json.h"
#include "routes/chanwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    if (!inited) {
        json_init();
        inited = 1;
    }
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *b = data + 1;
    size_t n = size - 1;
    struct chanwire_req r;
    struct gw_errbuf eb;
    int dialect = (sel & 1) ? CHANWIRE_PROTO : CHANWIRE_JSON;
    int rc;
    switch ((sel >> 1) % 5) {
    case 0:
        rc = chanwire_parse(dialect, (sel >> 4) % 4, b, n, &r, &eb);
        break;
    case 1:
        rc = chanwire_parse_invoke((sel & 16) ? CHANWIRE_M_PASS : CHANWIRE_M_ENCAP, dialect, b, n,
                                   &r, &eb);
        if (rc == 0)
            (void)chanwire_meta(&r, "x-ptp-session-id");
        break;
    case 2: {
        char code[32], msg[64];
        int d = (sel & 16) ? CHANWIRE_RAW : dialect;
        if (chanwire_parse_answer(d, b, n, code, msg, sizeof(msg)) == 0 && strlen(code) != 11)
            abort();
        return 0;
    }
    case 3: {
        char q[16], h[16];
        size_t k = n < 15 ? n : 15;
        memcpy(q, b, k);
        q[k] = '\0';
        memcpy(h, b, k);
        h[k] = '\0';
        long long ms;
        if (chanwire_timeout_ms((sel & 16) ? q : NULL, (sel & 16) ? NULL : h, (long long)n * 97,
                                120000, &ms, &eb) == 0 &&
            (ms < 1000 || ms > 300000))
            abort();
        (void)chanwire_uri_op(q);
        return 0;
    }
    default: {
        unsigned char *out = malloc(n + 4);
        size_t ol;
        if (chanwire_b64_decode((const char *)b, n, out, &ol) == 0 && ol > n)
            abort();
        free(out);
        return 0;
    }
    }
    if (rc != 0)
        return 0;
    /* answer with what was parsed, in every dialect, and read it back */
    for (int d = CHANWIRE_JSON; d <= CHANWIRE_RAW; d++) {
        char *out;
        size_t ol;
        chanwire_reply_buf(d, CHAN_OK, r.topic ? r.topic : "", r.payload, r.len, &out, &ol);
        char code[32], msg[64];
        if (chanwire_parse_answer(d, out, ol, code, msg, sizeof(msg)) != 0 ||
            strcmp(code, CHAN_OK) != 0)
            abort();
        free(out);
    }
    chanwire_req_cleanup(&r);
    return 0;
}
