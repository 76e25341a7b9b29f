/*
 * jwsbench.c - single-core throughput of attestation token signing and
 * verification (gateway/jws.c).
 *
 *   build/tools/jwsbench [N] [ed25519]
 *
 * Generates a key, signs a launch-token-like payload (the shape of vector
 * V01, about 2.1 KB as a JWS) N times, then runs the full verifier (strict
 * parse, ES256 signature, every claim check) N times on one token, and prints
 *   jws sign: X ops/s
 *   jws verify: Y ops/s
 * and then the latency a signed node-to-node call adds (gateway/reqsig.c):
 * building the canonical form of a task/poll request and signing it (the
 * sender), and parsing and checking the signature (the receiver), p50 and
 * p99 over N calls:
 *   reqsig sign: p50 X us, p99 Y us
 *   reqsig verify: p50 X us, p99 Y us
 * Exit status 1 if a signature or verification fails.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/compat.h"
#include "gateway/jws.h"
#include "gateway/reqsig.h"

#define NOW 1767226200LL

static cJSON *launch_payload(void)
{
    const char *job = "job-8abe2e8959274f37b7c507831bc4c9b8";
    const char *task = "task_bd7354a62aeb421086ac5a40c4518418";
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "iss", "LX0000010000110");
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/%s/guest.0", job, task);
    cJSON_AddStringToObject(p, "sub", sub);
    cJSON_AddStringToObject(p, "aud", "LX0000010000110");
    cJSON_AddNumberToObject(p, "iat", (double)(NOW - 600));
    cJSON_AddNumberToObject(p, "nbf", (double)(NOW - 600));
    cJSON_AddNumberToObject(p, "exp", (double)(NOW + 3000));
    cJSON_AddStringToObject(p, "jti", "jB5f-vplqu1I0FMRjSXuGQ");
    cJSON_AddStringToObject(p, "eat_profile", JWS_EAT_PROFILE);
    cJSON *n = cJSON_AddArrayToObject(p, "eat_nonce");
    cJSON_AddItemToArray(n, cJSON_CreateString("E1BWl8xbn_qb0EwZSi97yw"));
    cJSON_AddItemToArray(n, cJSON_CreateString("3f2b1c9a-4d5e-4f60-8a7b-9c0d1e2f3a4b"));
    cJSON_AddStringToObject(p, "ueid", "AZAnLh0oVgB-zfUH6vpHDEMogodxBCnAs7StaOhfSuH6");
    cJSON_AddStringToObject(p, "swname", "FATE/Intersection");
    cJSON_AddItemToObject(p, "swversion", cJSON_Parse("[\"2.0.0\"]"));
    cJSON_AddItemToObject(p, "measres",
                          cJSON_Parse("[[\"bfia-gw-launch\",[[\"image-digest\",\"success\"],"
                                      "[\"image-signature\",\"not-run\"],"
                                      "[\"container-config\",\"success\"]]]]"));
    cJSON *b = cJSON_AddObjectToObject(p, "bfia");
    cJSON_AddNumberToObject(b, "ver", 1);
    cJSON_AddStringToObject(b, "node_id", "LX0000010000110");
    cJSON_AddStringToObject(b, "inst_id", "JG0100001100000000");
    cJSON_AddStringToObject(b, "job_id", job);
    cJSON_AddStringToObject(b, "task_id", task);
    cJSON_AddStringToObject(b, "task_name", "intersect_rsa_1");
    cJSON_AddStringToObject(b, "session_id", "session_job-8abe2e8959274f37b7c507831bc4c9b8");
    cJSON_AddStringToObject(b, "self_role", "guest.0");
    cJSON_AddItemToObject(b, "component",
                          cJSON_Parse("{\"name\":\"Intersection\",\"provider\":\"FATE\","
                                      "\"version\":\"2.0.0\"}"));
    cJSON_AddItemToObject(
        b, "image",
        cJSON_Parse("{\"ref\":\"registry.example.com/fate/intersection:2.0.0\","
                    "\"manifest_digest\":\"sha256:"
                    "0218dc6d9d7ce389f6b5e9b29e7838cacbd9fb1aeac0971074db489e31db302e\","
                    "\"config_digest\":\"sha256:"
                    "4a975aac4d9ef8c0f9084fc0f854ed5a5e0d29812da4018bc2949c5ca32267a8\"}"));
    cJSON_AddStringToObject(
        b, "runtime_digest",
        "sha256:d23600c69a631961c61858de70ce15b2a8bd5c3688924c08382cd193b8282159");
    cJSON_AddStringToObject(b, "attester", "software");
    cJSON_AddItemToObject(
        b, "container",
        cJSON_Parse("{\"id\":\"8dc6a1e0f4b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071829"
                    "3afe06\",\"name\":\"bfia-task_bd7354a62aeb421086ac5a40c4518418-guest-0\"}"));
    return p;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static double pct(long long *v, long n, double p)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_ll);
    long i = (long)(p * (double)(n - 1));
    return (double)v[i];
}

/* The per-call work of a signed request, timed call by call (us). */
static int bench_reqsig(const struct jws_key *key, const struct jws_key *pub, long n)
{
    static const char body[] = "{\"task_id\":\"task_bd7354a62aeb421086ac5a40c4518418\","
                                "\"role\":\"host.0\"}";
    long long *ts = calloc((size_t)n, sizeof(long long)), *tv = calloc((size_t)n, sizeof(long long));
    if (!ts || !tv)
        return 1;
    for (long i = 0; i < n; i++) {
        char nonce[23], tsbuf[24], hdr[REQSIG_HDR_MAX];
        long long a = gw_now_mono_us();
        reqsig_nonce(nonce);
        snprintf(tsbuf, sizeof(tsbuf), "%lld", gw_now_wall_ms());
        char *c = reqsig_canonical("POST", "/v1/interconn/schedule/task/poll", "JG0100001100000010",
                                   "JG0100001100000020", tsbuf, nonce, body, sizeof(body) - 1);
        int rc = reqsig_sign(key, c, hdr);
        free(c);
        long long b = gw_now_mono_us();
        /* receiver: parse the header, rebuild the canonical form, verify */
        char kid[65];
        uint8_t sig[64];
        struct gw_errbuf eb;
        c = reqsig_canonical("POST", "/v1/interconn/schedule/task/poll", "JG0100001100000010",
                             "JG0100001100000020", tsbuf, nonce, body, sizeof(body) - 1);
        bool ok = rc == 0 && reqsig_parse(hdr, kid, sig, &eb) == 0 &&
                  jws_verify_raw(pub, (const uint8_t *)c, strlen(c), sig, 64);
        free(c);
        long long d = gw_now_mono_us();
        if (!ok) {
            fprintf(stderr, "reqsig round trip failed\n");
            return 1;
        }
        ts[i] = b - a;
        tv[i] = d - b;
    }
    printf("reqsig sign (canonical form + ES256, added per call): p50 %.0f us, p99 %.0f us "
           "(target p50 <= 200 us)\n", pct(ts, n, 0.5), pct(ts, n, 0.99));
    printf("reqsig verify (parse + canonical form + ES256): p50 %.0f us, p99 %.0f us\n",
           pct(tv, n, 0.5), pct(tv, n, 0.99));
    free(ts);
    free(tv);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    enum jws_alg alg = argc > 2 && strcmp(argv[2], "ed25519") == 0 ? JWS_ALG_ED25519
                                                                    : JWS_ALG_ES256;
    if (n <= 0) {
        fprintf(stderr, "usage: jwsbench [N] [ed25519]\n");
        return 2;
    }
    struct jws_key *key = jws_key_generate(alg);
    if (!key) {
        fprintf(stderr, "key generation failed\n");
        return 1;
    }
    cJSON *payload = launch_payload();
    char *tok = NULL;

    long long t0 = gw_now_mono_us();
    for (long i = 0; i < n; i++) {
        free(tok);
        tok = NULL;
        if (jws_sign(key, JWS_TYP_LAUNCH_STR, payload, &tok) != 0) {
            fprintf(stderr, "sign failed\n");
            return 1;
        }
    }
    long long t1 = gw_now_mono_us();

    /* The verifier sees only the public half, as a peer would. */
    struct jws_keyset *ks = jws_keyset_new();
    cJSON *jwk = jws_key_to_jwk(key);
    struct jws_key *pub = NULL;
    struct gw_errbuf eb;
    if (jws_key_from_jwk(jwk, &pub, &eb) != 0 || jws_keyset_add_take(ks, pub) != 0) {
        fprintf(stderr, "public key import failed\n");
        return 1;
    }
    struct jws_verify_ctx ctx;
    jws_verify_ctx_init(&ctx, JWS_TYP_LAUNCH, NOW);
    ctx.keys = ks;
    ctx.alg_allowlist = JWS_ALG_ES256 | JWS_ALG_ED25519;
    ctx.expected_iss = "LX0000010000110";
    ctx.expected_aud = "LX0000010000110";
    ctx.binding.job_id = "job-8abe2e8959274f37b7c507831bc4c9b8";
    ctx.binding.task_id = "task_bd7354a62aeb421086ac5a40c4518418";
    ctx.binding.self_role = "guest.0";
    size_t len = strlen(tok);

    long long t2 = gw_now_mono_us();
    for (long i = 0; i < n; i++) {
        cJSON *claims = NULL;
        enum jws_error e = jws_verify(tok, len, &ctx, &claims);
        if (e != JWS_OK) {
            fprintf(stderr, "verify failed: %s\n", jws_error_name(e));
            return 1;
        }
        cJSON_Delete(claims);
    }
    long long t3 = gw_now_mono_us();

    double sign_s = (double)(t1 - t0) / 1e6, verify_s = (double)(t2 == t3 ? 1 : t3 - t2) / 1e6;
    printf("jws alg: %s, token %zu bytes, %ld iterations\n", jws_alg_name(alg), len, n);
    printf("jws sign: %.0f ops/s\n", (double)n / (sign_s > 0 ? sign_s : 1e-6));
    printf("jws verify: %.0f ops/s\n", (double)n / verify_s);

    int rc = alg == JWS_ALG_ES256 ? bench_reqsig(key, pub, n / 4 > 0 ? n / 4 : 1) : 0;
    free(tok);
    cJSON_Delete(jwk);
    cJSON_Delete(payload);
    jws_keyset_free(ks);
    jws_key_free(key);
    return rc;
}
