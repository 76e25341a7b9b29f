/*
 * fuzz_reqsig.c - x-auth-sign handling (gateway/reqsig.c) on hostile input:
 * the header value parser, the canonical form built from a request's method,
 * target (path and query), node ids, timestamp, nonce and body, and the
 * route key pin check, the x-bfia-body-mac parser.  Input: newline-separated fields
 *   x-auth-sign value, method, target, source, dest, timestamp, nonce, body
 * A canonical string signed with a fixed key must parse back and verify.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gateway/json.h"
#include "gateway/jws.h"
#include "gateway/reqsig.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jws_key *key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_init();
    key = jws_key_generate(JWS_ALG_ES256);
    if (!key)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *buf = fz_strndup(data, size);
    char *f[8];
    fz_fields(buf, f, 8);

    char kid[65];
    uint8_t sig[64];
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (reqsig_parse(f[0], kid, sig, &eb) == 0) {
        if (strlen(kid) == 0 || strlen(kid) > 64)
            abort();
    } else if (!eb.msg[0]) {
        abort();
    }

    /* the first field as an x-bfia-body-mac value too: a value that parses
     * prints back to itself */
    char from[REQSIG_BMAC_KEY_B64 + 1], to[REQSIG_BMAC_KEY_B64 + 1];
    uint8_t tag[REQSIG_BMAC_TAG];
    gw_errbuf_clear(&eb);
    if (reqsig_bmac_parse(f[0], from, to, tag, &eb) == 0) {
        char line[REQSIG_BMAC_HDR_MAX];
        reqsig_bmac_line(from, to, tag, line);
        if (strlen(from) != REQSIG_BMAC_KEY_B64 || strcmp(line, f[0]) != 0)
            abort();
    } else if (!strstr(eb.msg, "x-bfia-body-mac")) {
        abort();
    }

    if (f[2]) {
        const char *body = f[7] ? f[7] : "";
        char *c = reqsig_canonical(f[1], f[2], f[3] ? f[3] : "", f[4] ? f[4] : "",
                                   f[5] ? f[5] : "", f[6] ? f[6] : "", body, strlen(body));
        if (strncmp(c, "BFIA-SIGN-V1\n", 13) != 0)
            abort();
        char hdr[REQSIG_HDR_MAX];
        if (reqsig_sign(key, c, hdr) != 0)
            abort();
        gw_errbuf_clear(&eb);
        if (reqsig_parse(hdr, kid, sig, &eb) != 0 || strcmp(kid, jws_key_kid(key)) != 0)
            abort(); /* what we send, we accept */
        if (!jws_verify_raw(key, (const uint8_t *)c, strlen(c), sig, 64))
            abort();
        free(c);
    }

    gw_errbuf_clear(&eb);
    if (reqsig_pin_check(buf, &eb) != 0 && !eb.msg[0])
        abort();
    free(buf);
    return 0;
}
