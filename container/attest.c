/*
 * attest.c - node key and launch tokens.  See attest.h.
 */
#include "attest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stdint.h>
#include <unistd.h>

#include "gateway/fileio.h"
#include "gateway/json.h"
#include "gateway/jws.h"
#include "gateway/log.h"

struct retired {
    char *jwk;          /* public JWK text */
    char kid[JWS_KID_MAX + 1];
    long long retired_s;
};

struct attest {
    char *node_id;
    char *key_path;            /* the active key's PEM; the pending one is <key_path>.next */
    struct jws_key *key;       /* active signing key */
    struct jws_key *next;      /* published, not yet signing (rotation), or NULL */
    struct retired *ret;       /* retired keys still published for verification */
    size_t nret;
    struct jws_keyset *verify; /* keys tokens may be verified with */
    struct fileio *fio;        /* key files' fsync and rename, off the loop; or NULL */
    struct keyop *ops;         /* those queued there */
};

/* A disk step of a rotation on the file I/O thread: make a key file durable,
 * or rename it into place.  Queued in order on the one worker. */
struct keyop {
    struct attest *a;
    bool rename;
    char *from, *to;
    int err;
    struct fileio_job *job;
    struct keyop *next;
};

static void keyop_free(void *p)
{
    struct keyop *op = p;
    free(op->from);
    free(op->to);
    free(op);
}

static long long keyop_work(void *ctx)
{
    struct keyop *op = ctx;
    if (op->rename && rename(op->from, op->to) != 0)
        return -errno;
    /* the file (or, after a rename, the one now at op->to) and its directory */
    return fileio_sync_path(op->rename ? op->to : op->from);
}

static void keyop_done(void *arg, long long r)
{
    struct keyop *op = arg;
    struct attest *a = op->a;
    for (struct keyop **pp = &a->ops; *pp; pp = &(*pp)->next)
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    if (r != 0)
        log_kv(LOG_LEVEL_ERROR, NULL, "attest.key",
               op->rename ? "cannot move the new node key into place"
                          : "cannot make the new node key durable",
               "file", op->rename ? op->to : op->from, "err", strerror((int)-r), NULL);
    keyop_free(op);
}

static void keyop_queue(struct attest *a, bool ren, const char *from, const char *to)
{
    struct keyop *op = gw_xcalloc(1, sizeof(*op));
    op->a = a;
    op->rename = ren;
    op->from = gw_xstrdup(from);
    op->to = to ? gw_xstrdup(to) : NULL;
    op->next = a->ops;
    a->ops = op;
    op->job = fileio_submit(a->fio, keyop_work, op, keyop_done, op);
}

void attest_set_fileio(struct attest *a, struct fileio *fio)
{
    a->fio = fio;
}

static int mkdirs_for(const char *path)
{
    char *d = gw_xstrdup(path);
    for (char *p = d + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(d, 0700) != 0 && errno != EEXIST) {
            free(d);
            return -1;
        }
        *p = '/';
    }
    free(d);
    return 0;
}

static int add_public(struct jws_keyset *ks, const cJSON *jwk, struct gw_errbuf *eb)
{
    struct jws_key *pub = NULL;
    if (jws_key_from_jwk(jwk, &pub, eb) != 0)
        return GW_EINVAL;
    if (jws_keyset_find(ks, jws_key_kid(pub))) {
        jws_key_free(pub);
        return 0;
    }
    return jws_keyset_add_take(ks, pub);
}

/* The verification set: active, next, then the retired keys. */
static int rebuild(struct attest *a, struct gw_errbuf *eb)
{
    struct jws_keyset *ks = jws_keyset_new();
    int rc = 0;
    const struct jws_key *own[2] = {a->key, a->next};
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (!own[i])
            continue;
        cJSON *j = jws_key_to_jwk(own[i]);
        rc = add_public(ks, j, eb);
        cJSON_Delete(j);
    }
    for (size_t i = 0; i < a->nret && rc == 0; i++) {
        cJSON *j = cJSON_Parse(a->ret[i].jwk);
        rc = j ? add_public(ks, j, eb) : GW_EINVAL;
        cJSON_Delete(j);
    }
    if (rc != 0) {
        jws_keyset_free(ks);
        return rc;
    }
    jws_keyset_free(a->verify);
    a->verify = ks;
    return 0;
}

struct attest *attest_open(const char *node_id, const char *key_path, struct gw_errbuf *eb)
{
    struct jws_key *k = NULL;
    int rc = jws_key_load_pem(key_path, &k, eb);
    if (rc == GW_ENOTFOUND) {
        k = jws_key_generate(JWS_ALG_ES256);
        if (!k) {
            gw_errf(eb, GW_EINTERNAL, "cannot generate the node key");
            return NULL;
        }
        if (mkdirs_for(key_path) != 0 || jws_key_save_pem(k, key_path, eb) != 0) {
            if (!eb || !eb->msg[0])
                gw_errf(eb, GW_EINTERNAL, "cannot store the node key at %s", key_path);
            jws_key_free(k);
            return NULL;
        }
    } else if (rc != 0) {
        return NULL;
    }
    struct attest *a = gw_xcalloc(1, sizeof(*a));
    a->node_id = gw_xstrdup(node_id);
    a->key_path = gw_xstrdup(key_path);
    a->key = k;
    /* A rotation that was pending when the node stopped stays pending. */
    char *np = gw_xasprintf("%s.next", key_path);
    struct jws_key *nk = NULL;
    if (jws_key_load_pem(np, &nk, NULL) == 0)
        a->next = nk;
    free(np);
    if (rebuild(a, eb) != 0) {
        attest_free(a);
        return NULL;
    }
    return a;
}

void attest_free(struct attest *a)
{
    if (!a)
        return;
    while (a->ops) {
        struct keyop *op = a->ops;
        a->ops = op->next;
        fileio_cancel(op->job, keyop_free);
    }
    jws_key_free(a->key);
    jws_key_free(a->next);
    for (size_t i = 0; i < a->nret; i++)
        free(a->ret[i].jwk);
    free(a->ret);
    jws_keyset_free(a->verify);
    free(a->key_path);
    free(a->node_id);
    free(a);
}

const char *attest_key_path(const struct attest *a)
{
    return a->key_path;
}

const char *attest_kid(const struct attest *a)
{
    return jws_key_kid(a->key);
}

const char *attest_next_kid(const struct attest *a)
{
    return a->next ? jws_key_kid(a->next) : NULL;
}

int attest_rotate_begin(struct attest *a, struct gw_errbuf *eb)
{
    if (a->next)
        return 0;
    struct jws_key *k = jws_key_generate(JWS_ALG_ES256);
    if (!k)
        return gw_errf(eb, GW_EINTERNAL, "cannot generate a key");
    char *np = gw_xasprintf("%s.next", a->key_path);
    int rc = a->fio ? jws_key_write_pem(k, np, eb) : jws_key_save_pem(k, np, eb);
    if (rc == 0 && a->fio)
        keyop_queue(a, false, np, NULL); /* the fsync, off the loop */
    free(np);
    if (rc != 0) {
        jws_key_free(k);
        return rc;
    }
    a->next = k;
    return rebuild(a, eb);
}

static void retire(struct attest *a, struct jws_key *old, long long now_s)
{
    cJSON *j = jws_key_to_jwk(old);
    char *s = json_print(j);
    cJSON_Delete(j);
    a->ret = gw_xrealloc(a->ret, (a->nret + 1) * sizeof(*a->ret));
    struct retired *r = &a->ret[a->nret++];
    r->jwk = gw_xstrdup(s);
    snprintf(r->kid, sizeof(r->kid), "%s", jws_key_kid(old));
    r->retired_s = now_s;
    cJSON_free(s);
}

int attest_rotate_activate(struct attest *a, bool drop_old, long long now_s, struct gw_errbuf *eb)
{
    if (!a->next)
        return gw_errf(eb, GW_ECONFLICT, "no key is waiting to be activated");
    char *np = gw_xasprintf("%s.next", a->key_path);
    /* The rename replaces the old private key: it is gone from disk.  On
     * the I/O thread it runs after the new file's fsync (one FIFO), so the
     * key file is never replaced by one not yet on the disk. */
    int rc = 0;
    if (a->fio)
        keyop_queue(a, true, np, a->key_path);
    else
        rc = rename(np, a->key_path);
    free(np);
    if (rc != 0)
        return gw_errf(eb, GW_EINTERNAL, "cannot activate the new key: %s", strerror(errno));
    struct jws_key *old = a->key;
    a->key = a->next;
    a->next = NULL;
    if (!drop_old)
        retire(a, old, now_s);
    jws_key_free(old);
    return rebuild(a, eb);
}

int attest_add_retired(struct attest *a, const char *jwk_text, long long retired_s,
                       struct gw_errbuf *eb)
{
    cJSON *j = cJSON_Parse(jwk_text);
    struct jws_key *k = NULL;
    if (!j || jws_key_from_jwk(j, &k, eb) != 0) {
        cJSON_Delete(j);
        return GW_EINVAL;
    }
    cJSON_Delete(j);
    bool known = jws_keyset_find(a->verify, jws_key_kid(k)) != NULL;
    if (!known)
        retire(a, k, retired_s);
    jws_key_free(k);
    return known ? 0 : rebuild(a, eb);
}

size_t attest_expire(struct attest *a, long long now_s, long long keep_s)
{
    size_t w = 0, dropped = 0;
    for (size_t i = 0; i < a->nret; i++) {
        if (a->ret[i].retired_s + keep_s <= now_s) {
            free(a->ret[i].jwk);
            dropped++;
            continue;
        }
        a->ret[w++] = a->ret[i];
    }
    a->nret = w;
    if (dropped && rebuild(a, NULL) != 0)
        log_kv(LOG_LEVEL_ERROR, NULL, "attest.key", "cannot rebuild the key set", NULL);
    return dropped;
}

const struct jws_key *attest_signing_key(const struct attest *a)
{
    return a->key;
}

const struct jws_keyset *attest_keyset(const struct attest *a)
{
    return a->verify;
}

cJSON *attest_jwks(const struct attest *a)
{
    return jws_keyset_to_jwks(a->verify);
}

char *attest_public_jwk_text(const struct attest *a)
{
    cJSON *j = jws_key_to_jwk(a->key);
    char *s = json_print(j);
    char *out = gw_xstrdup(s);
    cJSON_free(s);
    cJSON_Delete(j);
    return out;
}

static char *rand_b64(size_t n)
{
    unsigned char r[32];
    if (n > sizeof(r) || RAND_bytes(r, (int)n) != 1)
        return NULL;
    return jws_b64url_encode_alloc(r, n);
}

/* Sort "K=V" entries by key bytes (a key never holds '='). */
static int cmp_key(const void *x, const void *y)
{
    const char *p = *(const char *const *)x, *q = *(const char *const *)y;
    size_t lp = strcspn(p, "="), lq = strcspn(q, "=");
    int c = memcmp(p, q, lp < lq ? lp : lq);
    return c ? c : (lp > lq) - (lp < lq);
}

static void put_u32be_len(EVP_MD_CTX *md, const char *s, size_t n)
{
    unsigned char b[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    EVP_DigestUpdate(md, b, 4);
    EVP_DigestUpdate(md, s, n);
}

void attest_runtime_digest(const cJSON *env, char out[72])
{
    int n = cJSON_GetArraySize(env), k = 0;
    const char **v = gw_xcalloc((size_t)(n + 1), sizeof(char *));
    const cJSON *e;
    cJSON_ArrayForEach(e, env)
        if (cJSON_IsString(e) && strncmp(e->valuestring, "runtime.component.", 18) == 0)
            v[k++] = e->valuestring;
    qsort(v, (size_t)k, sizeof(char *), cmp_key);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    static const char dom[] = "bfia-runtime-digest-v1";
    EVP_DigestUpdate(md, dom, sizeof(dom)); /* the domain and its 0x00 */
    for (int i = 0; i < k; i++) {
        size_t kl = strcspn(v[i], "=");
        const char *val = v[i][kl] ? v[i] + kl + 1 : v[i] + kl;
        put_u32be_len(md, v[i], kl);
        put_u32be_len(md, val, strlen(val));
    }
    unsigned char dg[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, dg, &dl);
    EVP_MD_CTX_free(md);
    free(v);
    int p = snprintf(out, 72, "sha256:");
    for (int i = 0; i < 32; i++)
        p += snprintf(out + p, (size_t)(72 - p), "%02x", dg[i]);
}

int attest_mint_launch(const struct attest *a, const struct attest_launch *in, char **token,
                       char **jti_out)
{
    char *jti = rand_b64(16), *nonce = rand_b64(16);
    if (!jti || !nonce) {
        free(jti);
        free(nonce);
        return GW_EINTERNAL;
    }
    char self_role[48], sub[400], session[200], rd[72];
    snprintf(self_role, sizeof(self_role), "%s.%d", in->role, in->role_index);
    snprintf(sub, sizeof(sub), "%s/%s/%s", in->job_id, in->task_id, self_role);
    snprintf(session, sizeof(session), "session_%s", in->job_id);
    attest_runtime_digest(in->env, rd);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "iss", a->node_id);
    cJSON_AddStringToObject(c, "sub", sub);
    cJSON_AddStringToObject(c, "aud", a->node_id);
    cJSON_AddNumberToObject(c, "iat", (double)in->now);
    cJSON_AddNumberToObject(c, "nbf", (double)in->now);
    cJSON_AddNumberToObject(c, "exp", (double)(in->now + in->ttl_s));
    cJSON_AddStringToObject(c, "jti", jti);
    cJSON_AddStringToObject(c, "eat_profile", JWS_EAT_PROFILE);
    cJSON_AddStringToObject(c, "eat_nonce", nonce);
    char sw[300];
    snprintf(sw, sizeof(sw), "%s/%s", in->provider, in->component);
    cJSON_AddStringToObject(c, "swname", sw);
    cJSON *swv = cJSON_AddArrayToObject(c, "swversion");
    cJSON_AddItemToArray(swv, cJSON_CreateString(in->version));
    cJSON *b = cJSON_AddObjectToObject(c, "bfia");
    cJSON_AddNumberToObject(b, "ver", 1);
    cJSON_AddStringToObject(b, "node_id", a->node_id);
    cJSON_AddStringToObject(b, "job_id", in->job_id);
    cJSON_AddStringToObject(b, "task_id", in->task_id);
    cJSON_AddStringToObject(b, "task_name", in->task_name);
    cJSON_AddStringToObject(b, "session_id", session);
    cJSON_AddStringToObject(b, "self_role", self_role);
    cJSON *comp = cJSON_AddObjectToObject(b, "component");
    cJSON_AddStringToObject(comp, "name", in->component);
    cJSON_AddStringToObject(comp, "provider", in->provider);
    cJSON_AddStringToObject(comp, "version", in->version);
    cJSON *img = cJSON_AddObjectToObject(b, "image");
    json_add_str(img, "ref", in->image_ref);
    /* An imported image has no registry manifest: its id is both. */
    cJSON_AddStringToObject(img, "manifest_digest", in->image_digest);
    cJSON_AddStringToObject(img, "config_digest", in->image_digest);
    cJSON_AddStringToObject(b, "runtime_digest", rd);
    cJSON_AddStringToObject(b, "attester", "software");
    cJSON *ct = cJSON_AddObjectToObject(b, "container");
    if (in->container_id) /* T0, minted before create, has none */
        cJSON_AddStringToObject(ct, "id", in->container_id);
    cJSON_AddStringToObject(ct, "name", in->container_name);
    int rc = jws_sign(a->key, JWS_TYP_LAUNCH_STR, c, token);
    cJSON_Delete(c);
    free(nonce);
    if (rc != 0) {
        free(jti);
        return GW_EINTERNAL;
    }
    *jti_out = jti;
    return 0;
}

/* Verify a launch token of this node, bound to (job, task, role) where given. */
static int launch_verify(const struct attest *a, const char *token, const char *job_id,
                         const char *task_id, const char *self_role, long long now,
                         cJSON **claims, struct gw_errbuf *eb)
{
    struct jws_verify_ctx ctx;
    jws_verify_ctx_init(&ctx, JWS_TYP_LAUNCH, now);
    ctx.keys = a->verify;
    ctx.expected_iss = a->node_id;
    ctx.expected_aud = a->node_id;
    ctx.binding.job_id = job_id;
    ctx.binding.task_id = task_id;
    ctx.binding.self_role = self_role;
    *claims = NULL;
    enum jws_error e = jws_verify(token, strlen(token), &ctx, claims);
    if (e != JWS_OK) {
        cJSON_Delete(*claims);
        *claims = NULL;
        return gw_errf(eb, GW_EAUTH, "launch token refused: %s", jws_error_name(e));
    }
    return 0;
}

int attest_check_launch(const struct attest *a, const char *token, long long now, cJSON **claims,
                        struct gw_errbuf *eb)
{
    return launch_verify(a, token, NULL, NULL, NULL, now, claims, eb);
}

int attest_introspect(const struct attest *a, const char *token, const char *aud, long long now,
                      cJSON **claims)
{
    struct jws_verify_ctx ctx;
    jws_verify_ctx_init(&ctx, JWS_TYP_PRESENT, now);
    ctx.keys = a->verify;
    ctx.expected_iss = a->node_id;
    ctx.expected_aud = aud;
    ctx.introspect = true;
    *claims = NULL;
    enum jws_error e = jws_verify(token, strlen(token), &ctx, claims);
    if (e != JWS_OK) {
        cJSON_Delete(*claims);
        *claims = NULL;
    }
    return (int)e;
}

int attest_mint_present(const struct attest *a, const cJSON *launch, const char *aud,
                        const char *nonce, int ttl_s, long long now, char **token)
{
    const cJSON *ljti = cJSON_GetObjectItemCaseSensitive(launch, "jti");
    if (!cJSON_IsString(ljti) || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(launch, "bfia")))
        return GW_EINVAL;
    char *jti = rand_b64(16);
    if (!jti)
        return GW_EINTERNAL;
    /* Every claim from the launch record; only aud, the nonce, the times
     * and the ids are new.  The container's identity stays on this node. */
    cJSON *c = cJSON_Duplicate(launch, true);
    cJSON_ReplaceItemInObjectCaseSensitive(c, "aud", cJSON_CreateString(aud));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "iat", cJSON_CreateNumber((double)now));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "nbf", cJSON_CreateNumber((double)now));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "exp", cJSON_CreateNumber((double)(now + ttl_s)));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "jti", cJSON_CreateString(jti));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "eat_nonce", cJSON_CreateString(nonce));
    cJSON *b = cJSON_GetObjectItemCaseSensitive(c, "bfia");
    cJSON_DeleteItemFromObjectCaseSensitive(b, "container");
    cJSON_DeleteItemFromObjectCaseSensitive(b, "launch_jti");
    cJSON_AddStringToObject(b, "launch_jti", ljti->valuestring);
    int rc = jws_sign(a->key, JWS_TYP_PRESENT_STR, c, token);
    cJSON_Delete(c);
    free(jti);
    return rc != 0 ? GW_EINTERNAL : 0;
}

int attest_verify_launch(const struct attest *a, const char *token, const char *job_id,
                         const char *task_id, const char *self_role, long long now, char **jti,
                         struct gw_errbuf *eb)
{
    cJSON *claims = NULL;
    int rc = launch_verify(a, token, job_id, task_id, self_role, now, &claims, eb);
    if (rc != 0)
        return rc;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(claims, "jti");
    *jti = gw_xstrdup(cJSON_IsString(j) ? j->valuestring : "");
    cJSON_Delete(claims);
    return 0;
}
