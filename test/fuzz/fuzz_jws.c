/*
 * fuzz_jws.c - the token and key parsers of gateway/jws.c, which read what
 * peers and task containers send:
 *   mode 0: a compact token, verified as a launch token;
 *   mode 1: a compact token, verified as a presentation token;
 *   mode 2: a JWKS document (peers publish theirs);
 *   mode 3: "header JSON \n payload JSON", base64url-encoded and signed with
 *           a fixed key, so the claim checks behind the signature are
 *           reached too (a fuzzer cannot forge ES256);
 *   mode 4: strict base64url decoding.
 * The first input byte picks the mode.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gateway/json.h"
#include "gateway/jws.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jws_key *key;      /* the issuer's signing key */
static struct jws_keyset *keys;  /* its public half, as a verifier holds it */
static struct jws_replay *replay;

#define NOW 1764600000LL

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_init();
    key = jws_key_generate(JWS_ALG_ES256);
    if (!key)
        abort();
    cJSON *jwk = jws_key_to_jwk(key);
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "keys");
    cJSON_AddItemToArray(arr, jwk);
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (jws_keyset_from_jwks(doc, &keys, &eb) != 0)
        abort();
    cJSON_Delete(doc);
    replay = jws_replay_new(64);
    return 0;
}

static void verify(const char *tok, size_t len, enum jws_typ typ)
{
    struct jws_verify_ctx ctx;
    jws_verify_ctx_init(&ctx, typ, NOW);
    ctx.keys = keys;
    ctx.expected_iss = "JG0100001100000010";
    ctx.expected_aud = typ == JWS_TYP_LAUNCH ? "JG0100001100000010" : "JG0100001100000020";
    ctx.expected_nonce = "n0nce-challenge";
    ctx.replay = replay;
    ctx.binding.job_id = "job-1";
    ctx.binding.task_id = "task-1";
    cJSON *claims = NULL;
    enum jws_error e = jws_verify(tok, len, &ctx, &claims);
    if (e == JWS_OK) {
        if (!cJSON_IsObject(claims))
            abort(); /* a good token always yields its claims */
        cJSON_Delete(claims);
    } else if (claims) {
        abort(); /* a refused token yields nothing */
    }
    if (!jws_error_name(e)[0])
        abort();
    /* Keep the replay cache small and deterministic across runs. */
    jws_replay_sweep(replay, NOW + 100000);
}

static void jwks(const uint8_t *data, size_t size)
{
    cJSON *doc = cJSON_ParseWithLength((const char *)data, size);
    if (!doc)
        return;
    struct jws_keyset *ks = NULL;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (jws_keyset_from_jwks(doc, &ks, &eb) == 0) {
        for (size_t i = 0; i < jws_keyset_count(ks); i++) {
            const struct jws_key *k = jws_keyset_get(ks, i);
            if (!jws_keyset_find(ks, jws_key_kid(k)))
                abort(); /* every key is found by its own kid */
            cJSON *j = jws_key_to_jwk(k);
            char tp[64];
            if (jws_jwk_thumbprint(j, tp) != 0 || strcmp(tp, jws_key_kid(k)) != 0)
                abort(); /* kid is the thumbprint */
            cJSON_Delete(j);
        }
        cJSON *back = jws_keyset_to_jwks(ks);
        cJSON_Delete(back);
        jws_keyset_free(ks);
    } else if (ks || !eb.msg[0]) {
        abort();
    }
    /* Each member as a lone JWK too (route pins are single JWKs). */
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "keys");
    if (!cJSON_IsArray(arr))
        arr = NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        struct jws_key *k = NULL;
        gw_errbuf_clear(&eb);
        if (jws_key_from_jwk(it, &k, &eb) == 0)
            jws_key_free(k);
        char tp[64];
        if (jws_jwk_thumbprint(it, tp) == 0 && strlen(tp) != JWS_THUMBPRINT_LEN)
            abort();
    }
    cJSON_Delete(doc);
}

static void signed_claims(const uint8_t *data, size_t size, enum jws_typ typ)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl)
        return;
    size_t hl = (size_t)(nl - data), pl = size - hl - 1;
    if (hl > 2048 || pl > 4096)
        return;
    char *tok = malloc(JWS_B64URL_ENC_LEN(hl) + JWS_B64URL_ENC_LEN(pl) + JWS_B64URL_ENC_LEN(64) + 4);
    if (!tok)
        abort();
    size_t n = jws_b64url_encode(data, hl, tok);
    tok[n++] = '.';
    n += jws_b64url_encode(nl + 1, pl, tok + n);
    uint8_t sig[64];
    size_t sl = 0;
    if (jws_sign_raw(key, (const uint8_t *)tok, n, sig, &sl) != 0)
        abort();
    tok[n++] = '.';
    n += jws_b64url_encode(sig, sl, tok + n);
    verify(tok, n, typ);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 6;
    data++;
    size--;
    switch (mode) {
    case 0: verify((const char *)data, size, JWS_TYP_LAUNCH); break;
    case 1: verify((const char *)data, size, JWS_TYP_PRESENT); break;
    case 2: jwks(data, size); break;
    case 3: signed_claims(data, size, JWS_TYP_LAUNCH); break;
    case 4: signed_claims(data, size, JWS_TYP_PRESENT); break;
    default: {
        uint8_t out[1024];
        size_t ol = 0;
        if (size <= 1300 && jws_b64url_decode((const char *)data, size, out, &ol) == 0) {
            char back[1400];
            size_t bl = jws_b64url_encode(out, ol, back);
            if (bl != size || memcmp(back, data, size) != 0)
                abort(); /* strict: one text per byte string */
        }
        break;
    }
    }
    return 0;
}
