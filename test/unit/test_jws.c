/*
 * test_jws.c - attestation token crypto: every vector of
 * spec/attestation-vectors.json (V01-V55, sequences S01-S03, KATs K01-K03)
 * gives its expected verdict, plus round trips, JWKS validation, base64url
 * edge cases, the replay cache and PEM files.
 *
 * The vectors come from $BFIA_VECTORS, else the committed copy
 * test/unit/data/attestation-vectors.json (tests run from the repository
 * root), else ../shared/spec/attestation-vectors.json.
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
#include <sys/stat.h>
#include <unistd.h>

#include "container/attest.h"
#include "gateway/jws.h"

/* ------------------------------------------------------------------------ */
/* Fixture: the vectors file and the key set of each issuer                  */

struct fx {
    cJSON *root;
    struct jws_keyset *ks_a; /* LX0000010000110 */
    struct jws_keyset *ks_b; /* LX0000020000220 */
};

#define ISS_A "LX0000010000110"
#define ISS_B "LX0000020000220"

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        if (r == 0)
            break;
        len += r;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static int setup(void **state)
{
    const char *paths[] = {getenv("BFIA_VECTORS"), "test/unit/data/attestation-vectors.json",
                           "../shared/spec/attestation-vectors.json"};
    char *text = NULL;
    for (size_t i = 0; i < 3 && !text; i++)
        if (paths[i])
            text = read_file(paths[i]);
    if (!text) {
        fprintf(stderr, "attestation-vectors.json not found (set BFIA_VECTORS)\n");
        return -1;
    }
    struct fx *fx = calloc(1, sizeof(*fx));
    fx->root = cJSON_Parse(text);
    free(text);
    if (!fx->root)
        return -1;
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(fx->root, "jwks_by_issuer");
    struct gw_errbuf eb;
    if (jws_keyset_from_jwks(cJSON_GetObjectItemCaseSensitive(by, ISS_A), &fx->ks_a, &eb) < 0 ||
        jws_keyset_from_jwks(cJSON_GetObjectItemCaseSensitive(by, ISS_B), &fx->ks_b, &eb) < 0) {
        fprintf(stderr, "JWKS refused: %s at %s\n", eb.msg, eb.where);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (!fx)
        return 0;
    jws_keyset_free(fx->ks_a);
    jws_keyset_free(fx->ks_b);
    cJSON_Delete(fx->root);
    free(fx);
    return 0;
}

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *it = get(o, k);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/*
 * The context of one vector: default_context[kind] with context_overrides
 * applied member by member (an override replaces the whole member, as the
 * generator does), keys of the expected issuer.
 */
static void build_ctx(const struct fx *fx, const char *kind, const cJSON *over,
                      struct jws_verify_ctx *ctx, struct jws_replay *rc)
{
    const cJSON *def = get(get(fx->root, "default_context"), kind);
    assert_non_null(def);
#define PICK(name) (over && get(over, name) ? get(over, name) : get(def, name))
    const char *typ = PICK("expected_typ")->valuestring;
    enum jws_typ t = strcmp(typ, JWS_TYP_PRESENT_STR) == 0 ? JWS_TYP_PRESENT : JWS_TYP_LAUNCH;
    assert_string_equal(typ, t == JWS_TYP_PRESENT ? JWS_TYP_PRESENT_STR : JWS_TYP_LAUNCH_STR);
    jws_verify_ctx_init(ctx, t, (long long)PICK("now")->valuedouble);
    ctx->leeway = (long long)PICK("leeway")->valuedouble;
    ctx->expected_iss = PICK("expected_iss")->valuestring;
    ctx->expected_aud = PICK("expected_aud")->valuestring;
    ctx->expected_profile = PICK("expected_profile")->valuestring;
    const cJSON *nonce = PICK("expected_nonce");
    ctx->expected_nonce = nonce ? nonce->valuestring : NULL;
    ctx->alg_allowlist = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, PICK("alg_allowlist"))
    {
        enum jws_alg alg = jws_alg_from_name(a->valuestring);
        assert_int_not_equal(alg, JWS_ALG_NONE);
        ctx->alg_allowlist |= (unsigned)alg;
    }
    const cJSON *b = PICK("expected_binding");
    ctx->binding.job_id = str(b, "job_id");
    ctx->binding.task_id = str(b, "task_id");
    ctx->binding.self_role = str(b, "self_role");
    ctx->binding.session_id = str(b, "session_id");
    ctx->binding.manifest_digest = str(b, "manifest_digest");
#undef PICK
    if (strcmp(ctx->expected_iss, ISS_A) == 0)
        ctx->keys = fx->ks_a;
    else if (strcmp(ctx->expected_iss, ISS_B) == 0)
        ctx->keys = fx->ks_b;
    else
        fail_msg("no JWKS for issuer %s", ctx->expected_iss);
    ctx->replay = rc;
}

/* Verify and compare with expect/error; returns true when as expected. */
static bool run_one(const struct fx *fx, const char *id, const char *kind, const cJSON *over,
                    const char *token, const char *expect, const char *error,
                    struct jws_replay *rc)
{
    struct jws_verify_ctx ctx;
    build_ctx(fx, kind, over, &ctx, rc);
    cJSON *claims = NULL;
    enum jws_error e = jws_verify(token, strlen(token), &ctx, &claims);
    bool accept = strcmp(expect, "accept") == 0;
    bool ok = accept ? e == JWS_OK : (e != JWS_OK && error && strcmp(jws_error_name(e), error) == 0);
    if (ok && accept) {
        /* The claims handed back are the verified payload. */
        ok = claims && str(claims, "iss") && strcmp(str(claims, "iss"), ctx.expected_iss) == 0 &&
             str(claims, "jti") != NULL;
    }
    if (!ok || !accept)
        assert_null(claims);
    print_message("%-4s %-7s %-6s want %-15s got %-15s %s\n", id, kind, expect,
                  accept ? "OK" : error, jws_error_name(e), ok ? "ok" : "MISMATCH");
    cJSON_Delete(claims);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* The vectors                                                               */

static void test_vectors(void **state)
{
    struct fx *fx = *state;
    const cJSON *v;
    int n = 0, bad = 0;
    cJSON_ArrayForEach(v, get(fx->root, "vectors"))
    {
        struct jws_replay *rc = jws_replay_new(64); /* fresh per vector */
        const cJSON *err = get(v, "error");
        if (!run_one(fx, str(v, "id"), str(v, "kind"), get(v, "context_overrides"),
                     str(v, "token"), str(v, "expect"), cJSON_IsString(err) ? err->valuestring : NULL,
                     rc))
            bad++;
        jws_replay_free(rc);
        n++;
    }
    assert_int_equal(n, 55);
    assert_int_equal(bad, 0);
}

static void test_sequences(void **state)
{
    struct fx *fx = *state;
    const cJSON *s, *st;
    int n = 0, bad = 0;
    cJSON_ArrayForEach(s, get(fx->root, "sequences"))
    {
        struct jws_replay *rc = jws_replay_new(64); /* one cache across the steps */
        int step = 0;
        cJSON_ArrayForEach(st, get(s, "steps"))
        {
            char id[32];
            snprintf(id, sizeof(id), "%s.%d", str(s, "id"), ++step);
            const cJSON *err = get(st, "error");
            if (!run_one(fx, id, str(s, "kind"), get(s, "context_overrides"), str(st, "token"),
                         str(st, "expect"), cJSON_IsString(err) ? err->valuestring : NULL, rc))
                bad++;
        }
        jws_replay_free(rc);
        n++;
    }
    assert_int_equal(n, 3);
    assert_int_equal(bad, 0);
}

/* Split a compact token; sig decoded into sig (64+ bytes). */
static void split(const char *tok, size_t *input_len, uint8_t *sig, size_t *siglen)
{
    const char *d2 = strrchr(tok, '.');
    assert_non_null(d2);
    *input_len = (size_t)(d2 - tok);
    assert_int_equal(jws_b64url_decode(d2 + 1, strlen(d2 + 1), sig, siglen), 0);
}

static void test_kats(void **state)
{
    struct fx *fx = *state;
    const cJSON *k;
    struct gw_errbuf eb;
    int n = 0;
    cJSON_ArrayForEach(k, get(fx->root, "external_kats"))
    {
        const char *id = str(k, "id");
        n++;
        if (strcmp(id, "K03") == 0) {
            char tp[JWS_THUMBPRINT_LEN + 1];
            assert_int_equal(jws_jwk_thumbprint(get(k, "jwk"), tp), 0);
            assert_string_equal(tp, str(k, "expect_thumbprint"));
            print_message("K03  thumbprint %s ok\n", tp);
            continue;
        }
        const char *tok = str(k, "token");
        struct jws_key *key = NULL;
        assert_int_equal(jws_key_from_jwk(get(k, "jwk"), &key, &eb), 0);
        uint8_t sig[128];
        size_t ilen = 0, slen = 0;
        split(tok, &ilen, sig, &slen);
        assert_true(jws_verify_raw(key, (const uint8_t *)tok, ilen, sig, slen));
        if (strcmp(id, "K02") == 0) {
            /* Ed25519 is deterministic: re-signing gives the same bytes. */
            uint8_t again[64];
            size_t alen = 0;
            assert_true(jws_key_has_private(key));
            assert_int_equal(jws_sign_raw(key, (const uint8_t *)tok, ilen, again, &alen), 0);
            assert_int_equal(alen, 64);
            assert_memory_equal(again, sig, 64);
        }
        /* One flipped bit anywhere in the signature breaks it. */
        sig[10] ^= 0x01;
        assert_false(jws_verify_raw(key, (const uint8_t *)tok, ilen, sig, slen));
        print_message("%s  %s signature ok\n", id, jws_alg_name(jws_key_alg(key)));
        jws_key_free(key);
    }
    assert_int_equal(n, 3);
}

/* Every test key's kid is its RFC 7638 thumbprint, with and without d. */
static void test_thumbprints(void **state)
{
    struct fx *fx = *state;
    const cJSON *k;
    struct gw_errbuf eb;
    int n = 0;
    cJSON_ArrayForEach(k, get(fx->root, "keys_private_test_only"))
    {
        char tp[JWS_THUMBPRINT_LEN + 1];
        assert_int_equal(jws_jwk_thumbprint(k, tp), 0);
        assert_string_equal(tp, str(k, "kid"));
        struct jws_key *key = NULL;
        assert_int_equal(jws_key_from_jwk(k, &key, &eb), 0);
        assert_true(jws_key_has_private(key));
        assert_string_equal(jws_key_kid(key), str(k, "kid"));
        assert_string_equal(jws_alg_name(jws_key_alg(key)), str(k, "alg"));
        /* The exported public JWK equals the vector's minus d. */
        cJSON *pub = jws_key_to_jwk(key);
        cJSON *want = cJSON_Duplicate(k, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(want, "d");
        assert_true(cJSON_Compare(pub, want, 1));
        cJSON_Delete(want);
        cJSON_Delete(pub);
        jws_key_free(key);
        n++;
    }
    assert_int_equal(n, 6);
}

/* ------------------------------------------------------------------------ */
/* Tokens made here                                                          */

/* The payload of vector id, decoded (owned by the caller). */
static cJSON *vector_payload(const struct fx *fx, const char *id)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, get(fx->root, "vectors"))
    {
        if (strcmp(str(v, "id"), id) != 0)
            continue;
        const char *tok = str(v, "token");
        const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
        uint8_t buf[8192];
        size_t n = 0;
        assert_int_equal(jws_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, &n), 0);
        cJSON *p = cJSON_ParseWithLength((const char *)buf, n);
        assert_non_null(p);
        return p;
    }
    fail_msg("no vector %s", id);
    return NULL;
}

/* "b64(header).b64(payload).b64(sig)" from literal header text. */
static char *make_token(const struct jws_key *key, const char *header, const cJSON *payload)
{
    char *p = cJSON_PrintUnformatted(payload);
    char *hb = jws_b64url_encode_alloc((const uint8_t *)header, strlen(header));
    char *pb = jws_b64url_encode_alloc((const uint8_t *)p, strlen(p));
    size_t cap = strlen(hb) + strlen(pb) + 100;
    char *tok = malloc(cap);
    int n = snprintf(tok, cap, "%s.%s", hb, pb);
    uint8_t sig[64];
    size_t slen = 0;
    assert_int_equal(jws_sign_raw(key, (const uint8_t *)tok, (size_t)n, sig, &slen), 0);
    tok[n++] = '.';
    jws_b64url_encode(sig, slen, tok + n);
    cJSON_free(p);
    free(hb);
    free(pb);
    return tok;
}

/* A launch context for the vectors' V01 claims, keys = ks. */
static void launch_ctx(const struct fx *fx, struct jws_verify_ctx *ctx, struct jws_keyset *ks)
{
    build_ctx(fx, "launch", NULL, ctx, NULL);
    ctx->keys = ks;
}

static enum jws_error verify(const char *tok, const struct jws_verify_ctx *ctx)
{
    return jws_verify(tok, strlen(tok), ctx, NULL);
}

static void test_sign_verify_roundtrip(void **state)
{
    struct fx *fx = *state;
    cJSON *payload = vector_payload(fx, "V01");
    enum jws_alg algs[] = {JWS_ALG_ES256, JWS_ALG_ED25519};
    for (size_t a = 0; a < 2; a++) {
        struct jws_key *key = jws_key_generate(algs[a]);
        assert_non_null(key);
        assert_int_equal(jws_key_alg(key), algs[a]);
        assert_int_equal(strlen(jws_key_kid(key)), JWS_THUMBPRINT_LEN);
        char *tok = NULL;
        assert_int_equal(jws_sign(key, JWS_TYP_LAUNCH_STR, payload, &tok), 0);

        /* The verifier only knows the public half, through a JWKS. */
        const struct jws_key *keys[] = {key};
        cJSON *jwks = jws_jwks_build(keys, 1);
        struct jws_keyset *ks = NULL;
        struct gw_errbuf eb;
        assert_int_equal(jws_keyset_from_jwks(jwks, &ks, &eb), 0);
        assert_false(jws_key_has_private(jws_keyset_get(ks, 0)));
        struct jws_verify_ctx ctx;
        launch_ctx(fx, &ctx, ks);
        ctx.alg_allowlist = JWS_ALG_ES256 | JWS_ALG_ED25519;
        cJSON *claims = NULL;
        assert_int_equal(jws_verify(tok, strlen(tok), &ctx, &claims), JWS_OK);
        assert_true(cJSON_Compare(claims, payload, 1));
        cJSON_Delete(claims);

        /* Header is exactly {alg, typ, kid}. */
        uint8_t hbuf[512];
        size_t hlen = 0;
        assert_int_equal(jws_b64url_decode(tok, (size_t)(strchr(tok, '.') - tok), hbuf, &hlen), 0);
        char want[256];
        snprintf(want, sizeof(want), "{\"alg\":\"%s\",\"typ\":\"%s\",\"kid\":\"%s\"}",
                 jws_alg_name(algs[a]), JWS_TYP_LAUNCH_STR, jws_key_kid(key));
        assert_int_equal(hlen, strlen(want));
        assert_memory_equal(hbuf, want, hlen);

        /* The default allowlist is ES256 only. */
        ctx.alg_allowlist = JWS_ALG_ES256;
        assert_int_equal(verify(tok, &ctx), algs[a] == JWS_ALG_ES256 ? JWS_OK : JWS_E_ALG);

        /* Tampered signature: every position of the last segment matters. */
        ctx.alg_allowlist = JWS_ALG_ES256 | JWS_ALG_ED25519;
        char *sigp = strrchr(tok, '.') + 1;
        for (size_t i = 0; i + 1 < strlen(sigp); i += 7) {
            char saved = sigp[i];
            sigp[i] = saved == 'A' ? 'B' : 'A';
            assert_int_equal(verify(tok, &ctx), JWS_E_SIG);
            sigp[i] = saved;
        }
        /* Tampered payload (one claim) is a signature failure too. */
        char *pp = strchr(tok, '.') + 5;
        char saved = *pp;
        *pp = saved == 'x' ? 'y' : 'x';
        enum jws_error e = verify(tok, &ctx);
        assert_true(e == JWS_E_SIG || e == JWS_E_B64);
        *pp = saved;
        assert_int_equal(verify(tok, &ctx), JWS_OK);

        free(tok);
        jws_keyset_free(ks);
        cJSON_Delete(jwks);
        jws_key_free(key);
    }
    cJSON_Delete(payload);
}

static void test_refusals(void **state)
{
    struct fx *fx = *state;
    cJSON *payload = vector_payload(fx, "V01");
    struct jws_key *key = jws_key_generate(JWS_ALG_ES256), *other = jws_key_generate(JWS_ALG_ES256);
    struct jws_keyset *ks = jws_keyset_new();
    struct jws_key *pub = NULL;
    struct gw_errbuf eb;
    cJSON *pj = jws_key_to_jwk(key);
    assert_int_equal(jws_key_from_jwk(pj, &pub, &eb), 0);
    cJSON_Delete(pj);
    assert_int_equal(jws_keyset_add_take(ks, pub), 0);
    struct jws_verify_ctx ctx;
    launch_ctx(fx, &ctx, ks);
    char hdr[256], *tok;

    /* alg none, with an empty and a junk signature. */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"none\",\"typ\":\"%s\",\"kid\":\"%s\"}",
             JWS_TYP_LAUNCH_STR, jws_key_kid(key));
    tok = make_token(key, hdr, payload);
    assert_int_equal(verify(tok, &ctx), JWS_E_ALG);
    strrchr(tok, '.')[1] = '\0';
    assert_int_equal(verify(tok, &ctx), JWS_E_FORMAT);
    free(tok);

    /* Wrong kid: signed by a key the issuer never published. */
    assert_int_equal(jws_sign(other, JWS_TYP_LAUNCH_STR, payload, &tok), 0);
    assert_int_equal(verify(tok, &ctx), JWS_E_KID);
    free(tok);
    /* ... and a published kid over another key's signature. */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"%s\",\"kid\":\"%s\"}",
             JWS_TYP_LAUNCH_STR, jws_key_kid(key));
    tok = make_token(other, hdr, payload);
    assert_int_equal(verify(tok, &ctx), JWS_E_SIG);
    free(tok);

    /* Extra or non-string header members, duplicate members, bad JSON. */
    const char *bad_hdrs[][2] = {
        {"{\"alg\":\"ES256\",\"typ\":\"" JWS_TYP_LAUNCH_STR "\",\"kid\":\"%s\",\"cty\":\"x\"}",
         "E_HDR_PARAM"},
        {"{\"alg\":\"ES256\",\"typ\":\"" JWS_TYP_LAUNCH_STR "\",\"kid\":\"%s\",\"b64\":false}",
         "E_HDR_PARAM"},
        {"{\"alg\":\"ES256\",\"alg\":\"ES256\",\"typ\":\"" JWS_TYP_LAUNCH_STR "\",\"kid\":\"%s\"}",
         "E_JSON"},
        {"{\"alg\":\"ES256\",\"typ\":\"" JWS_TYP_LAUNCH_STR "\",\"kid\":\"%s\"} x", "E_JSON"},
        {"[\"alg\",\"ES256\",\"%s\"]", "E_JSON"},
        {"{\"alg\":\"ES256\",\"typ\":\"" JWS_TYP_LAUNCH_STR "\",\"kid\":\"%s\",}", "E_JSON"},
        {"{\"alg\":\"ES256\",\"typ\":\"" JWS_TYP_LAUNCH_STR "\",\"kid\":\"%s\u00e9\xff\"}",
         "E_JSON"},
        {"{\"alg\":\"ES256\",\"typ\":\"" JWS_TYP_PRESENT_STR "\",\"kid\":\"%s\"}", "E_TYP"},
        {"{\"alg\":\"ES256\",\"kid\":\"%s\"}", "E_TYP"},
        {"{\"typ\":\"" JWS_TYP_LAUNCH_STR "\",\"kid\":\"%s\"}", "E_ALG"},
        {"{\"alg\":\"ES256\",\"typ\":\"" JWS_TYP_LAUNCH_STR "\",\"kid\":\"%s/..\"}", "E_KID"},
        {"{\"alg\":\"ES256\",\"typ\":\"" JWS_TYP_LAUNCH_STR "\"}%.0s", "E_KID"},
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(bad_hdrs); i++) {
        snprintf(hdr, sizeof(hdr), bad_hdrs[i][0], jws_key_kid(key));
        tok = make_token(key, hdr, payload);
        enum jws_error e = verify(tok, &ctx);
        if (strcmp(jws_error_name(e), bad_hdrs[i][1]) != 0)
            fail_msg("header %s: want %s got %s", hdr, bad_hdrs[i][1], jws_error_name(e));
        free(tok);
    }

    /* Expired at exp + leeway; the claims are V01's (exp 1767229200). */
    assert_int_equal(jws_sign(key, JWS_TYP_LAUNCH_STR, payload, &tok), 0);
    ctx.now = 1767229200 + 60;
    assert_int_equal(verify(tok, &ctx), JWS_E_EXP);
    ctx.now = 1767229200 + 59;
    assert_int_equal(verify(tok, &ctx), JWS_OK);
    /* A launch token may carry the caller's x-nonce in its eat_nonce array. */
    ctx.expected_nonce = "3f2b1c9a-4d5e-4f60-8a7b-9c0d1e2f3a4b";
    assert_int_equal(verify(tok, &ctx), JWS_OK);
    ctx.expected_nonce = "3f2b1c9a-0000-4f60-8a7b-9c0d1e2f3a4b";
    assert_int_equal(verify(tok, &ctx), JWS_E_NONCE);
    ctx.expected_nonce = NULL;
    ctx.binding.container_name = "bfia-other";
    assert_int_equal(verify(tok, &ctx), JWS_E_BINDING);
    ctx.binding.container_name = NULL;
    /* Context errors are the caller's bug, reported as such. */
    ctx.keys = NULL;
    assert_int_equal(verify(tok, &ctx), JWS_E_ARG);
    ctx.keys = ks;
    free(tok);

    /* Payload checks after a valid signature. */
    struct {
        const char *path, *json;
        const char *want;
    } edits[] = {
        {"iat", "1767225600.0", "E_CLAIM_TYPE"},
        {"exp", "-1", "E_CLAIM_TYPE"},
        {"aud", "[\"LX0000010000110\"]", "E_CLAIM_TYPE"},
        {"jti", "\"short\"", "E_CLAIM_TYPE"},
        {"eat_nonce", "[\"only-one-nonce\"]", "E_CLAIM_TYPE"},
        {"bfia", "\"x\"", "E_CLAIM_TYPE"},
        {"sub", NULL, "E_CLAIM_MISSING"},
        {"iss", "\"LX0000020000220\"", "E_ISS"},
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(edits); i++) {
        cJSON *p = cJSON_Duplicate(payload, 1);
        if (edits[i].json)
            cJSON_ReplaceItemInObjectCaseSensitive(p, edits[i].path, cJSON_Parse(edits[i].json));
        else
            cJSON_DeleteItemFromObjectCaseSensitive(p, edits[i].path);
        /* cJSON prints 1767225600.0 as an integer: splice the raw text. */
        char *txt = cJSON_PrintUnformatted(p);
        char *raw = NULL;
        if (strcmp(edits[i].path, "iat") == 0) {
            char *at = strstr(txt, "\"iat\":1767225600");
            assert_non_null(at);
            at += strlen("\"iat\":1767225600");
            raw = malloc(strlen(txt) + 8);
            sprintf(raw, "%.*s.0%s", (int)(at - txt), txt, at);
        }
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"%s\",\"kid\":\"%s\"}",
                 JWS_TYP_LAUNCH_STR, jws_key_kid(key));
        const char *body = raw ? raw : txt;
        char *hb = jws_b64url_encode_alloc((const uint8_t *)hdr, strlen(hdr));
        char *pb = jws_b64url_encode_alloc((const uint8_t *)body, strlen(body));
        char *t = malloc(strlen(hb) + strlen(pb) + 100);
        int n = sprintf(t, "%s.%s", hb, pb);
        uint8_t sig[64];
        size_t slen;
        assert_int_equal(jws_sign_raw(key, (const uint8_t *)t, (size_t)n, sig, &slen), 0);
        t[n++] = '.';
        jws_b64url_encode(sig, slen, t + n);
        ctx.now = 1767226200;
        enum jws_error e = verify(t, &ctx);
        if (strcmp(jws_error_name(e), edits[i].want) != 0)
            fail_msg("edit %s: want %s got %s", edits[i].path, edits[i].want, jws_error_name(e));
        free(t);
        free(hb);
        free(pb);
        free(raw);
        cJSON_free(txt);
        cJSON_Delete(p);
    }

    jws_keyset_free(ks);
    jws_key_free(key);
    jws_key_free(other);
    cJSON_Delete(payload);
}

/* A presentation token is single use; the cache is bounded and sweeps. */
static void test_replay(void **state)
{
    struct fx *fx = *state;
    cJSON *payload = vector_payload(fx, "V02");
    struct jws_key *key = jws_key_generate(JWS_ALG_ES256);
    struct jws_keyset *ks = jws_keyset_new();
    struct jws_key *pub = NULL;
    struct gw_errbuf eb;
    cJSON *pj = jws_key_to_jwk(key);
    assert_int_equal(jws_key_from_jwk(pj, &pub, &eb), 0);
    cJSON_Delete(pj);
    assert_int_equal(jws_keyset_add_take(ks, pub), 0);

    struct jws_replay *rc = jws_replay_new(2);
    struct jws_verify_ctx ctx;
    build_ctx(fx, "present", NULL, &ctx, rc);
    ctx.keys = ks;
    char *tok[3];
    const char *jtis[3] = {"AAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBB",
                           "CCCCCCCCCCCCCCCCCCCCCC"};
    for (int i = 0; i < 3; i++) {
        cJSON_ReplaceItemInObjectCaseSensitive(payload, "jti", cJSON_CreateString(jtis[i]));
        assert_int_equal(jws_sign(key, JWS_TYP_PRESENT_STR, payload, &tok[i]), 0);
    }
    /* A wrong nonce or a NULL cache never consumes the jti. */
    ctx.expected_nonce = "another-challenge-123";
    assert_int_equal(verify(tok[0], &ctx), JWS_E_NONCE);
    ctx.replay = NULL;
    assert_int_equal(verify(tok[0], &ctx), JWS_E_ARG);
    build_ctx(fx, "present", NULL, &ctx, rc);
    ctx.keys = ks;
    assert_int_equal(jws_replay_count(rc), 0);

    /* Introspection: no nonce, no cache, nothing consumed, any number of
     * times; the signature and the audience still count. */
    struct jws_verify_ctx ictx = ctx;
    ictx.introspect = true;
    ictx.expected_nonce = NULL;
    ictx.replay = NULL;
    assert_int_equal(verify(tok[0], &ictx), JWS_OK);
    assert_int_equal(verify(tok[0], &ictx), JWS_OK);
    assert_int_equal(jws_replay_count(rc), 0);
    char *bad = strdup(tok[0]);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(bad, &ictx), JWS_E_SIG);
    free(bad);
    ictx.expected_aud = "JG0100009900000099";
    assert_int_equal(verify(tok[0], &ictx), JWS_E_AUD);

    assert_int_equal(verify(tok[0], &ctx), JWS_OK);
    assert_int_equal(verify(tok[0], &ctx), JWS_E_REPLAY);
    assert_int_equal(verify(tok[1], &ctx), JWS_OK);
    /* Full of live entries: refused (E_BUSY), never silently forgotten. */
    assert_int_equal(verify(tok[2], &ctx), JWS_E_BUSY);
    assert_int_equal(verify(tok[0], &ctx), JWS_E_REPLAY);
    /* V02 exp = 1767226470: entries live until exp + leeway. */
    assert_true(jws_replay_seen(rc, ISS_A, jtis[0], 1767226470 + 59));
    assert_false(jws_replay_seen(rc, ISS_A, jtis[0], 1767226470 + 60));
    assert_int_equal(jws_replay_sweep(rc, 1767226200), 0);
    assert_int_equal(jws_replay_sweep(rc, 1767226470 + 60), 2);
    assert_int_equal(jws_replay_count(rc), 0);

    /* Direct use: conflicts, expiry reuse, over-long keys. */
    assert_int_equal(jws_replay_insert(rc, "i", "j", 100, 0), 0);
    assert_int_equal(jws_replay_insert(rc, "i", "j", 100, 50), GW_ECONFLICT);
    assert_int_equal(jws_replay_insert(rc, "i", "j", 300, 200), 0);
    assert_int_equal(jws_replay_insert(rc, "i", "k", 300, 200), 0);
    assert_int_equal(jws_replay_insert(rc, "i", "l", 300, 200), GW_EBUSY);
    assert_int_equal(jws_replay_insert(rc, "i", "l", 400, 300), 0); /* sweep made room */
    char longs[80];
    memset(longs, 'a', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    assert_int_equal(jws_replay_insert(rc, longs, "j", 1, 0), GW_EINVAL);
    assert_null(jws_replay_new(0));
    jws_replay_free(rc);

    /* A bigger cache survives many distinct jtis with periodic expiry. */
    rc = jws_replay_new(1000);
    char jti[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(jti, sizeof(jti), "jti-%d", i);
        assert_int_equal(jws_replay_insert(rc, ISS_A, jti, i + 500, i), 0);
    }
    assert_true(jws_replay_count(rc) <= 1000);
    assert_true(jws_replay_seen(rc, ISS_A, "jti-19999", 19999));
    assert_false(jws_replay_seen(rc, ISS_A, "jti-100", 19999));
    jws_replay_free(rc);

    for (int i = 0; i < 3; i++)
        free(tok[i]);
    jws_keyset_free(ks);
    jws_key_free(key);
    cJSON_Delete(payload);
}

/* ------------------------------------------------------------------------ */
/* base64url, JWKS, PEM                                                      */

static void test_b64url(void **state)
{
    (void)state;
    struct {
        const char *bin;
        size_t n;
        const char *txt;
    } ok[] = {
        {"", 0, ""},           {"f", 1, "Zg"},        {"fo", 2, "Zm8"},
        {"foo", 3, "Zm9v"},    {"foob", 4, "Zm9vYg"}, {"fooba", 5, "Zm9vYmE"},
        {"\xfb\xff", 2, "-_8"}, {"\x00", 1, "AA"},     {"\xff\xff\xff", 3, "____"},
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(ok); i++) {
        char out[32];
        uint8_t back[32];
        size_t n = 99;
        assert_int_equal(jws_b64url_encode((const uint8_t *)ok[i].bin, ok[i].n, out),
                         strlen(ok[i].txt));
        assert_string_equal(out, ok[i].txt);
        assert_int_equal(JWS_B64URL_ENC_LEN(ok[i].n), strlen(ok[i].txt));
        assert_int_equal(jws_b64url_decode(ok[i].txt, strlen(ok[i].txt), back, &n), 0);
        assert_int_equal(n, ok[i].n);
        assert_memory_equal(back, ok[i].bin, n);
    }
    const char *bad[] = {
        "A",     /* length 1 mod 4 */
        "Zm9vY", /* length 1 mod 4 */
        "Zg==",  /* padding */
        "Zg=",   "Zm8=", "+_8", "-/8", /* standard alphabet */
        "Zh",    /* non-canonical: unused bits set ("f" is "Zg") */
        "Zm9",   /* non-canonical: "fo" is "Zm8" */
        "Zm 9v", "Zm9v\n", "Zm.v",
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
        uint8_t back[32];
        size_t n;
        if (jws_b64url_decode(bad[i], strlen(bad[i]), back, &n) != GW_EINVAL)
            fail_msg("decoded \"%s\"", bad[i]);
    }
    /* Length-bounded: bytes after n are not read. */
    uint8_t back[8];
    size_t n;
    assert_int_equal(jws_b64url_decode("Zm9v====", 4, back, &n), 0);
    assert_int_equal(n, 3);
    /* Round trip of every length 0..64 over all byte values. */
    uint8_t in[64];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 200);
    for (size_t len = 0; len <= sizeof(in); len++) {
        char *s = jws_b64url_encode_alloc(in, len);
        uint8_t out[64];
        assert_int_equal(jws_b64url_decode(s, strlen(s), out, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, in, len);
        free(s);
    }
}

static void test_jwks_validation(void **state)
{
    struct fx *fx = *state;
    struct gw_errbuf eb;
    /* The builder reproduces the published JWKS of node A byte for byte. */
    cJSON *built = jws_keyset_to_jwks(fx->ks_a);
    assert_true(
        cJSON_Compare(built, get(get(fx->root, "jwks_by_issuer"), ISS_A), 1));
    cJSON_Delete(built);
    assert_int_equal(jws_keyset_count(fx->ks_a), 3);
    assert_non_null(jws_keyset_find(fx->ks_a, "Hf7sbX-5FK78rF75tm1ueI1c067hWvGMmBG8XlRGG44"));
    assert_null(jws_keyset_find(fx->ks_a, "c_oDqbShs7mrxuVpvJIvkecpsl6JGX2POEXnjtUvhzg"));

    const cJSON *priv = get(get(fx->root, "keys_private_test_only"), "nodeA-es256-active");
    struct {
        const char *what, *member, *value; /* value NULL = delete member */
    } bad[] = {
        {"private d", "d", "JUJVimi4SJk8y5z4lBknIoKNYERL0M0TKoOa4Bii4sc"},
        {"kid not thumbprint", "kid", "Hf7sbX-5FK78rF75tm1ueI1c067hWvGMmBG8XlRGG44"},
        {"missing alg", "alg", NULL},
        {"wrong alg", "alg", "ES384"},
        {"use enc", "use", "enc"},
        {"kty oct", "kty", "oct"},
        {"off curve", "y", "yhqaKd1905Z03PhVjJIOLU7R-fn-E_BB2V2uXJwe2FM"},
        {"short x", "x", "j6Urmiiu6vKFzQ40n9oiLoRJQD0ABRPxHPhwc047wD"},
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
        cJSON *k = cJSON_Duplicate(priv, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(k, "d");
        cJSON_DeleteItemFromObjectCaseSensitive(k, bad[i].member);
        if (bad[i].value)
            cJSON_AddStringToObject(k, bad[i].member, bad[i].value);
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(doc, "keys"), k);
        struct jws_keyset *ks = (struct jws_keyset *)1;
        if (jws_keyset_from_jwks(doc, &ks, &eb) != GW_EINVAL)
            fail_msg("JWKS with %s accepted", bad[i].what);
        assert_null(ks);
        assert_string_equal(eb.where, "keys[0]");
        cJSON_Delete(doc);
    }
    /* Duplicate kids. */
    cJSON *doc = cJSON_Duplicate(get(get(fx->root, "jwks_by_issuer"), ISS_B), 1);
    cJSON *keys = cJSON_GetObjectItemCaseSensitive(doc, "keys");
    cJSON_AddItemToArray(keys, cJSON_Duplicate(keys->child, 1));
    struct jws_keyset *ks = NULL;
    assert_int_equal(jws_keyset_from_jwks(doc, &ks, &eb), GW_EINVAL);
    assert_non_null(strstr(eb.msg, "duplicate"));
    cJSON_Delete(doc);
    /* Not a JWKS at all. */
    doc = cJSON_Parse("{\"keys\":{}}");
    assert_int_equal(jws_keyset_from_jwks(doc, &ks, &eb), GW_EINVAL);
    cJSON_Delete(doc);
    /* A private key whose d does not belong to x/y. */
    cJSON *k = cJSON_Duplicate(priv, 1);
    cJSON_ReplaceItemInObjectCaseSensitive(
        k, "d", cJSON_CreateString("scaJNt7a1_3esNguKv_ejL0u3lnl2KQ7MUglb0IAjrA"));
    struct jws_key *key = NULL;
    assert_int_equal(jws_key_from_jwk(k, &key, &eb), GW_EINVAL);
    assert_null(key);
    cJSON_Delete(k);
    /* Duplicate kid through the API keeps ownership with the caller. */
    ks = jws_keyset_new();
    struct jws_key *a = jws_key_generate(JWS_ALG_ES256);
    cJSON *aj = jws_key_to_jwk(a);
    struct jws_key *a2 = NULL;
    assert_int_equal(jws_key_from_jwk(aj, &a2, &eb), 0);
    assert_int_equal(jws_keyset_add_take(ks, a), 0);
    assert_int_equal(jws_keyset_add_take(ks, a2), GW_ECONFLICT);
    jws_key_free(a2);
    /* The exported JWKS of a private key holds no private member. */
    cJSON *out = jws_keyset_to_jwks(ks);
    assert_null(get(get(out, "keys")->child, "d"));
    cJSON_Delete(out);
    cJSON_Delete(aj);
    jws_keyset_free(ks);
}

static void test_pem(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_jws.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], path2[128];
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    snprintf(path2, sizeof(path2), "%s/ed.pem", dir);
    struct gw_errbuf eb;

    struct jws_key *key = jws_key_generate(JWS_ALG_ES256);
    /* A pre-existing world-readable file is tightened before the write. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("old", f);
    fclose(f);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(jws_key_save_pem(key, path, &eb), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    char *text = read_file(path);
    assert_non_null(strstr(text, "-----BEGIN PRIVATE KEY-----"));
    free(text);

    struct jws_key *back = NULL;
    assert_int_equal(jws_key_load_pem(path, &back, &eb), 0);
    assert_string_equal(jws_key_kid(back), jws_key_kid(key));
    assert_true(jws_key_has_private(back));
    /* The loaded key signs what the original's public half verifies. */
    uint8_t sig[64];
    size_t slen;
    assert_int_equal(jws_sign_raw(back, (const uint8_t *)"msg", 3, sig, &slen), 0);
    assert_true(jws_verify_raw(key, (const uint8_t *)"msg", 3, sig, slen));
    assert_false(jws_verify_raw(key, (const uint8_t *)"msh", 3, sig, slen));
    jws_key_free(back);

    /* Ed25519 too, into a new file. */
    struct jws_key *ed = jws_key_generate(JWS_ALG_ED25519);
    assert_int_equal(jws_key_save_pem(ed, path2, &eb), 0);
    assert_int_equal(stat(path2, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(jws_key_load_pem(path2, &back, &eb), 0);
    assert_string_equal(jws_key_kid(back), jws_key_kid(ed));
    jws_key_free(back);
    jws_key_free(ed);

    /* A public-only key cannot be saved; junk and absent files are refused. */
    cJSON *pj = jws_key_to_jwk(key);
    struct jws_key *pub = NULL;
    assert_int_equal(jws_key_from_jwk(pj, &pub, &eb), 0);
    assert_false(jws_key_has_private(pub));
    assert_int_equal(jws_key_save_pem(pub, path, &eb), GW_EINVAL);
    uint8_t s2[64];
    assert_int_equal(jws_sign_raw(pub, (const uint8_t *)"m", 1, s2, &slen), GW_EINVAL);
    char *tok = NULL;
    assert_int_equal(jws_sign(pub, JWS_TYP_LAUNCH_STR, pj, &tok), GW_EINVAL);
    assert_null(tok);
    jws_key_free(pub);
    cJSON_Delete(pj);
    f = fopen(path, "w");
    fputs("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    assert_int_equal(jws_key_load_pem(path, &back, &eb), GW_EINVAL);
    assert_null(back);
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/none.pem", dir);
    assert_int_equal(jws_key_load_pem(missing, &back, &eb), GW_ENOTFOUND);

    jws_key_free(key);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(unlink(path2), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(jws_error_name(JWS_OK), "OK");
    assert_string_equal(jws_error_name(JWS_E_CLAIM_MISSING), "E_CLAIM_MISSING");
    assert_string_equal(jws_error_name(JWS_E_REPLAY), "E_REPLAY");
    assert_string_equal(jws_error_name((enum jws_error)999), "E_UNKNOWN");
    assert_int_equal(jws_alg_from_name("EdDSA"), JWS_ALG_NONE);
    assert_int_equal(jws_alg_from_name("es256"), JWS_ALG_NONE);
    assert_int_equal(jws_alg_from_name(NULL), JWS_ALG_NONE);
    assert_null(jws_key_generate(JWS_ALG_NONE));
    /* The verifier's profile constants are the vectors'. */
}

static void test_profile_constants(void **state)
{
    struct fx *fx = *state;
    const cJSON *p = get(fx->root, "profile");
    assert_string_equal(str(p, "eat_profile"), JWS_EAT_PROFILE);
    assert_string_equal(str(p, "typ_launch"), JWS_TYP_LAUNCH_STR);
    assert_string_equal(str(p, "typ_present"), JWS_TYP_PRESENT_STR);
    assert_int_equal((int)get(p, "leeway_s")->valuedouble, JWS_LEEWAY_S);
    assert_int_equal((int)get(p, "launch_max_ttl_s")->valuedouble, JWS_LAUNCH_MAX_TTL_S);
    assert_int_equal((int)get(p, "present_max_ttl_s")->valuedouble, JWS_PRESENT_MAX_TTL_S);
    assert_int_equal((int)get(p, "max_token_bytes")->valuedouble, JWS_MAX_TOKEN);
    /* check_order lists the enum's order (E_ALG and E_JSON appear twice). */
    const cJSON *c;
    int last = 0;
    cJSON_ArrayForEach(c, get(fx->root, "check_order"))
    {
        char name[32];
        snprintf(name, sizeof(name), "%s", c->valuestring);
        char *paren = strchr(name, '(');
        if (paren)
            *paren = '\0';
        int found = -1;
        for (int e = JWS_E_SIZE; e <= JWS_E_REPLAY; e++)
            if (strcmp(jws_error_name((enum jws_error)e), name) == 0)
                found = e;
        assert_true(found > 0);
        if (found < last && !paren)
            fail_msg("%s out of order", name);
        if (!paren || found > last)
            last = found;
    }
}

/* bfia.runtime_digest (spec 2.4) of the vector's environment, given as the
 * engine records it ("K=V" strings, in an order that is not sorted), plus
 * entries that must not count. */
static void test_runtime_digest(void **state)
{
    struct fx *fx = *state;
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(fx->root, "runtime_digest_example");
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(ex, "env");
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(ex, "digest");
    assert_non_null(env);
    assert_true(cJSON_IsString(want));
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, cJSON_CreateString("system.storage=file:///secret"));
    const cJSON *e;
    cJSON *rev = cJSON_CreateArray();
    cJSON_ArrayForEach(e, env)
    {
        char *kv = NULL;
        size_t n = strlen(e->string) + strlen(e->valuestring) + 2;
        kv = malloc(n);
        snprintf(kv, n, "%s=%s", e->string, e->valuestring);
        cJSON_InsertItemInArray(rev, 0, cJSON_CreateString(kv)); /* reversed order */
        free(kv);
    }
    cJSON_ArrayForEach(e, rev)
        cJSON_AddItemToArray(arr, cJSON_CreateString(e->valuestring));
    cJSON_AddItemToArray(arr, cJSON_CreateString("config.self_role=guest.0"));
    char got[72];
    attest_runtime_digest(arr, got);
    assert_string_equal(got, want->valuestring);
    /* A value changed, or an entry moved from key to value, changes it. */
    cJSON_ReplaceItemInArray(arr, 1, cJSON_CreateString("runtime.component.name=Intersection2"));
    char other[72];
    attest_runtime_digest(arr, other);
    assert_string_not_equal(other, want->valuestring);
    cJSON_Delete(arr);
    cJSON_Delete(rev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_kats),
        cmocka_unit_test(test_thumbprints),
        cmocka_unit_test(test_profile_constants),
        cmocka_unit_test(test_sign_verify_roundtrip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_jwks_validation),
        cmocka_unit_test(test_pem),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_runtime_digest),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
