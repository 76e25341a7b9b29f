/*
 * attest.c - the component-facing attestation endpoints (spec
 * attestation.md 2.10):
 *
 *   POST /v1/platform/attest/token  {audience, nonce, ttl?}
 *       exchange the caller's launch token for a presentation token: one
 *       partner audience, the partner's challenge as eat_nonce, <= 300 s.
 *   POST /v1/platform/attest/verify {token, expected: {iss, nonce, typ?,
 *       job_id?, task_id?, self_role?}}
 *       verify a partner's presentation token for a component that carries
 *       no JOSE code; the issuer's keys come from its JWKS over the
 *       node-to-node channel (or its pinned key), single use per (iss, jti).
 *
 * Both are called by a task container on its task socket (system.attest,
 * unix:///run/bfia/attest/agent.sock: the socket itself says which
 * container calls), or over TCP with its launch token as
 * "Authorization: Bearer <token>" (the file at config.attest.token_file).
 * {"refresh": true} to the token endpoint returns the current launch token.
 * The token must verify and be the live token of a task that is RUNNING on
 * this node: a token of a container that ended, or one replaced by two
 * refreshes, is refused.  Claims of a presentation token are copied from
 * the verified launch token; only the audience and nonce come from the
 * request, and the audience must be a party (or the scheduler) of the job.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "container/attest.h"
#include "container/runner.h"
#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/json.h"
#include "gateway/jws.h"
#include "gateway/log.h"
#include "gateway/ratelimit.h"
#include "gateway/reqsig.h"
#include "routes/route.h"

#define PRESENT_TTL_DEFAULT 120
#define PRESENT_TTL_MAX 300
#define NONCE_MIN 8
#define NONCE_MAX 88

struct ax {
    struct gw_req *req;
    bool verify;
    bool refresh;           /* exchange {"refresh": true}: the current launch token */
    cJSON *launch;          /* the caller's verified launch claims */
    char *job_id, *task_id, *self_role;
    char *nonce;            /* exchange: the partner's challenge; verify: the one expected */
    /* exchange */
    char *audience;
    int ttl;
    /* verify */
    char *token, *iss, *exp_task, *exp_role;
};

static void ax_free(void *p)
{
    struct ax *x = p;
    cJSON_Delete(x->launch);
    free(x->job_id);
    free(x->task_id);
    free(x->self_role);
    free(x->audience);
    free(x->nonce);
    free(x->token);
    free(x->iss);
    free(x->exp_task);
    free(x->exp_role);
    free(x);
}

static const char *bfia_str(const cJSON *claims, const char *k)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(claims, "bfia");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* "guest.0" -> "guest" (owned) and *idx = "0"; NULL without an index. */
static char *role_split(const char *self_role, const char **idx)
{
    const char *dot = self_role ? strrchr(self_role, '.') : NULL;
    if (!dot)
        return NULL;
    *idx = dot + 1;
    return gw_xstrndup(self_role, (size_t)(dot - self_role));
}

/* {active: false, container_running: false, reason} */
static void reply_inactive(struct gw_req *req, const char *reason)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddBoolToObject(d, "active", false);
    cJSON_AddBoolToObject(d, "container_running", false);
    json_add_str(d, "reason", reason);
    route_reply_ok(req, d);
}

/* A challenge nonce: 8..88 printable ASCII characters, no spaces. */
static bool nonce_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < NONCE_MIN || n > NONCE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

static void refuse(struct gw_req *req, const char *what, const char *msg)
{
    log_kv(LOG_LEVEL_WARN, &req->log, "attest.refused", msg, "endpoint", what, NULL);
    route_reply_err(req, GW_EAUTH, msg);
}

/* ---- exchange ---------------------------------------------------------------- */

static void exchange_mint(struct ax *x)
{
    char *tok = NULL;
    long long now = (long long)time(NULL);
    if (attest_mint_present(x->req->app->attest, x->launch, x->audience, x->nonce, x->ttl, now,
                            &tok) != 0) {
        route_reply_err(x->req, GW_EINTERNAL, "cannot mint a presentation token");
        return;
    }
    cJSON *d = cJSON_CreateObject();
    json_add_str(d, "token", tok);
    json_add_str(d, "typ", JWS_TYP_PRESENT_STR);
    json_add_str(d, "audience", x->audience);
    json_add_int(d, "expires_in", x->ttl);
    log_kv(LOG_LEVEL_INFO, &x->req->log, "attest.present", "presentation token issued", "task",
           x->task_id, "role", x->self_role, "audience", x->audience, NULL);
    free(tok);
    route_reply_ok(x->req, d);
}

/* ---- verify ------------------------------------------------------------------ */

/* The kid of a compact token's header, or NULL (jws_verify names the fault). */
static char *token_kid(const char *tok)
{
    const char *dot = strchr(tok, '.');
    if (!dot || dot == tok || dot - tok > 1024)
        return NULL;
    uint8_t buf[800];
    size_t n = 0;
    if (jws_b64url_decode(tok, (size_t)(dot - tok), buf, &n) != 0)
        return NULL;
    cJSON *h = cJSON_ParseWithLength((const char *)buf, n);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(h, "kid");
    char *out = cJSON_IsString(k) && json_is_id(k->valuestring, 64) ? gw_xstrdup(k->valuestring)
                                                                    : NULL;
    cJSON_Delete(h);
    return out;
}

static void on_issuer_keys(struct gw_req *req, const struct jws_keyset *ks, const char *err)
{
    struct ax *x = req->ctx;
    if (!ks) {
        char m[512];
        snprintf(m, sizeof(m), "expected.iss: cannot get the issuer's keys: %s", err);
        refuse(req, "verify", m);
        return;
    }
    struct jws_verify_ctx ctx;
    jws_verify_ctx_init(&ctx, JWS_TYP_PRESENT, (long long)time(NULL));
    ctx.keys = ks;
    ctx.expected_iss = x->iss;
    ctx.expected_aud = req->app->cfg->node_id;
    ctx.expected_nonce = x->nonce;
    ctx.binding.job_id = x->job_id;
    ctx.binding.task_id = x->exp_task;
    ctx.binding.self_role = x->exp_role;
    ctx.replay = req->app->present_replay;
    cJSON *claims = NULL;
    enum jws_error e = jws_verify(x->token, strlen(x->token), &ctx, &claims);
    if (e != JWS_OK) {
        cJSON_Delete(claims);
        const char *name = jws_error_name(e);
        log_kv(LOG_LEVEL_WARN, &req->log, "attest.refused", "presentation token refused",
               "endpoint", "verify", "iss", x->iss, "verdict", name, NULL);
        cJSON *d = cJSON_CreateObject();
        cJSON_AddBoolToObject(d, "valid", false);
        json_add_str(d, "error", name);
        route_reply(req, e == JWS_E_BUSY ? ROUTE_CODE_BUSY : ROUTE_CODE_AUTH, name, d);
        return;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddBoolToObject(d, "valid", true);
    cJSON_AddItemToObject(d, "claims", claims);
    route_reply_ok(req, d);
}

/* ---- the caller's launch token ---------------------------------------------- */

static void on_live(void *arg, int err, const struct db_res *res, const char *errmsg,
                    const char *sqlstate)
{
    (void)sqlstate;
    struct ax *x = arg;
    struct gw_req *req = x->req;
    if (route_db_failed(req, err, errmsg))
        return;
    long long live = atoll(db_res_get(res, 0, 0)), party = atoll(db_res_get(res, 0, 1));
    if (live == 0) {
        refuse(req, x->verify ? "verify" : "token",
               "Authorization: the launch token is not the live token of a task running on "
               "this node (the container ended, or the token was replaced)");
        return;
    }
    if (x->refresh) {
        const char *idx = "";
        char *rname = role_split(x->self_role, &idx); /* caller_task checked the dot */
        struct runner_key k = {x->job_id, x->task_id, rname, atoi(idx)};
        const char *cur = runner_token(req->app->runner, &k);
        free(rname);
        if (!cur) {
            route_reply_err(req, GW_EBUSY, "refresh: the task's launch token is being replaced; "
                                           "retry");
            return;
        }
        cJSON *d = cJSON_CreateObject();
        json_add_str(d, "token", cur);
        json_add_str(d, "typ", JWS_TYP_LAUNCH_STR);
        route_reply_ok(req, d);
        return;
    }
    if (!x->verify) {
        if (party == 0) {
            char m[300];
            snprintf(m, sizeof(m), "audience: node %.128s is not a party of job %.64s",
                     x->audience, x->job_id);
            route_reply_err(req, GW_EINVAL, m);
            return;
        }
        exchange_mint(x);
        return;
    }
    char *kid = token_kid(x->token);
    reqsig_node_keys(req->app->reqsig, req, x->iss, kid, on_issuer_keys);
    free(kid);
}

/*
 * Verify the Bearer launch token and learn the caller's task from it.
 * Replies and returns false on refusal.
 */
static bool caller_task(struct gw_req *req, struct ax *x, const char *what)
{
    const char *tok;
    if (req->agent_sock) {
        /* The task socket names its container: no bearer token needed, and
         * one in the request changes nothing. */
        tok = runner_agent_token(req->app->runner, req->agent_sock);
        if (!tok) {
            refuse(req, what, "task socket: no running task container owns this socket (the "
                              "container ended, or its token is being replaced)");
            return false;
        }
    } else {
        const char *auth = server_req_header(req, "Authorization");
        if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7]) {
            refuse(req, what, "Authorization: the task's launch token is required (Bearer), or "
                              "call on the task socket (system.attest)");
            return false;
        }
        tok = auth + 7;
    }
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (attest_check_launch(req->app->attest, tok, (long long)time(NULL), &x->launch, &eb) != 0) {
        char m[560];
        snprintf(m, sizeof(m), "Authorization: %s", eb.msg);
        refuse(req, what, m);
        return false;
    }
    const char *job = bfia_str(x->launch, "job_id"), *task = bfia_str(x->launch, "task_id"),
               *role = bfia_str(x->launch, "self_role");
    const cJSON *jti = cJSON_GetObjectItemCaseSensitive(x->launch, "jti");
    const char *dot = role ? strrchr(role, '.') : NULL;
    if (!job || !task || !dot || !cJSON_IsString(jti)) {
        refuse(req, what, "Authorization: the launch token lacks its task binding");
        return false;
    }
    x->job_id = gw_xstrdup(job);
    x->task_id = gw_xstrdup(task);
    x->self_role = gw_xstrdup(role);
    /* Every exchange is a signature by the node key: a task gets
     * attest.exchange_per_s of them (and of verifies) per second. */
    char key[200];
    snprintf(key, sizeof(key), "%.64s/%.64s/%.40s", job, task, role);
    if (req->app->attest_rl && !ratelimit_take(req->app->attest_rl, key, gw_now_mono_ms())) {
        log_kv(LOG_LEVEL_WARN, &req->log, "attest.limited", "attestation calls over the rate limit",
               "task", task, "endpoint", what, NULL);
        route_reply_err(req, GW_EBUSY, "attestation calls of this task are over "
                                       "attest.exchange_per_s; retry later");
        return false;
    }
    return true;
}

/* Is the caller's launch token live (and, for an exchange, does the
 * audience take part in the job)?  on_live continues. */
static void caller_live(struct gw_req *req, struct ax *x)
{
    const char *idx = "";
    const cJSON *jti = cJSON_GetObjectItemCaseSensitive(x->launch, "jti");
    char *rname = role_split(x->self_role, &idx); /* caller_task checked the dot */
    static const char sql[] =
        "SELECT (SELECT count(*) FROM t_task WHERE job_id = $1 AND task_id = $2 AND role = $3"
        "   AND role_index = $4::int AND status = 'RUNNING' AND $5 IN (token_id, prev_token_id, env_token_id)),"
        " (SELECT count(*) FROM t_job j WHERE j.job_id = $1 AND j.role = $3 AND"
        "   (j.scheduler = $6 OR j.initiator = $6 OR EXISTS (SELECT 1 FROM"
        "    jsonb_each(CASE WHEN jsonb_typeof(j.config->'role') = 'object'"
        "                    THEN j.config->'role' ELSE '{}' END) r,"
        "    jsonb_array_elements_text(CASE WHEN jsonb_typeof(r.value) = 'array'"
        "                                   THEN r.value ELSE '[]' END) n WHERE n = $6)))";
    const char *p[6] = {x->job_id, x->task_id, rname, idx, jti->valuestring,
                        x->audience ? x->audience : ""};
    route_db(req, sql, 6, p, on_live, x);
    free(rname);
}

static struct ax *ax_new(struct gw_req *req, bool verify)
{
    struct ax *x = gw_xcalloc(1, sizeof(*x));
    x->req = req;
    x->verify = verify;
    req->ctx = x;
    req->ctx_free = ax_free;
    return x;
}

/* POST /v1/platform/attest/token {audience, nonce, ttl?} */
void attest_token_exchange(struct gw_req *req)
{
    const char *aud = NULL, *nonce = NULL;
    long long ttl = PRESENT_TTL_DEFAULT;
    bool refresh = false;
    if (!route_params(req))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_bool(req->params, "refresh", false, &refresh, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (refresh) {
        /* {"refresh": true}: the container's current launch token, for
         * components that read no files (spec 2.10). */
        struct ax *x = ax_new(req, false);
        x->refresh = true;
        if (caller_task(req, x, "token"))
            caller_live(req, x);
        return;
    }
    if (!route_get_id(req, "audience", true, &aud))
        return;
    if (json_get_str(req->params, "nonce", true, 0, &nonce, &eb) != 0 ||
        json_get_int(req->params, "ttl", false, 1, PRESENT_TTL_MAX, &ttl, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (!nonce_ok(nonce)) {
        route_reply_err(req, GW_EINVAL, "nonce: expected 8-88 printable characters, no spaces");
        return;
    }
    struct ax *x = ax_new(req, false);
    x->audience = gw_xstrdup(aud);
    x->nonce = gw_xstrdup(nonce);
    x->ttl = (int)ttl;
    if (caller_task(req, x, "token"))
        caller_live(req, x);
}

/* POST /v1/platform/attest/verify {token, expected: {iss, nonce, typ?, job_id?,
 * task_id?, self_role?}} */
void attest_token_verify(struct gw_req *req)
{
    const char *tok = NULL, *iss = NULL, *nonce = NULL, *typ = NULL, *job = NULL, *task = NULL,
               *role = NULL;
    const cJSON *exp = NULL;
    if (!route_params(req))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "token", true, 8192, &tok, &eb) != 0 ||
        json_get_obj(req->params, "expected", true, &exp, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (json_get_id(exp, "iss", true, 64, &iss, &eb) != 0 ||
        json_get_str(exp, "nonce", true, 0, &nonce, &eb) != 0 ||
        json_get_str(exp, "typ", false, 32, &typ, &eb) != 0 ||
        json_get_id(exp, "job_id", false, 128, &job, &eb) != 0 ||
        json_get_id(exp, "task_id", false, 128, &task, &eb) != 0 ||
        json_get_id(exp, "self_role", false, 48, &role, &eb) != 0) {
        char m[560];
        snprintf(m, sizeof(m), "expected: %s", eb.msg);
        route_reply_err(req, GW_EINVAL, m);
        return;
    }
    if (typ && strcmp(typ, "present") != 0 && strcmp(typ, JWS_TYP_PRESENT_STR) != 0) {
        route_reply_err(req, GW_EINVAL, "expected.typ: only presentation tokens (\"present\") "
                                        "are verified here");
        return;
    }
    if (!nonce_ok(nonce)) {
        route_reply_err(req, GW_EINVAL,
                        "expected.nonce: expected 8-88 printable characters, no spaces");
        return;
    }
    struct ax *x = ax_new(req, true);
    x->token = gw_xstrdup(tok);
    x->iss = gw_xstrdup(iss);
    x->nonce = gw_xstrdup(nonce);
    x->exp_task = task ? gw_xstrdup(task) : NULL;
    x->exp_role = role ? gw_xstrdup(role) : NULL;
    if (!caller_task(req, x, "verify"))
        return;
    /* A component verifies the partners of its own job only. */
    if (job && strcmp(job, x->job_id) != 0) {
        route_reply_err(req, GW_EINVAL, "expected.job_id: not the job of the calling task");
        return;
    }
    caller_live(req, x);
}

/*
 * POST /v1/interconn/attest/evidence {nonce, kid?} (spec 2.10): TEE evidence
 * for a partner.  This node attests in software (mode S): there is no TEE
 * report to give, and the answer says so rather than inventing one.
 */
void attest_evidence(struct gw_req *req)
{
    const char *nonce = NULL, *kid = NULL;
    if (!route_params(req))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "nonce", true, 64, &nonce, &eb) != 0 ||
        json_get_str(req->params, "kid", false, 64, &kid, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    for (const char *p = nonce; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F'))) {
            route_reply_err(req, GW_EINVAL, "nonce: expected hex, at most 64 characters");
            return;
        }
    cJSON *d = cJSON_CreateObject();
    json_add_str(d, "attester", "software");
    json_add_str(d, "kid", attest_kid(req->app->attest));
    route_reply(req, ROUTE_CODE_FAILED, "software-attester", d);
}

/* ---- introspection ------------------------------------------------------------- */

static void on_introspected(void *arg, int err, const struct db_res *res, const char *errmsg,
                            const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    if (db_res_rows(res) == 0 || atoll(db_res_get(res, 0, 0)) == 0) {
        reply_inactive(req, "the task's container is no longer running");
        return;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddBoolToObject(d, "active", true);
    cJSON_AddBoolToObject(d, "container_running", true);
    route_reply_ok(req, d);
}

/*
 * POST /v1/interconn/attest/introspect {token} (spec 2.10, RFC 7662): the
 * partner a presentation token was issued for asks whether it is still good,
 * i.e. intact, unexpired and its task's container still running (a token
 * dies with its container).  Only the token's audience may ask: the caller
 * is the node that signed this request.  Nothing is consumed: introspecting
 * does not count as the token's one use.
 */
void attest_introspect_ep(struct gw_req *req)
{
    const char *tok = NULL;
    if (!route_params(req))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "token", true, 8192, &tok, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (!req->caller || !*req->caller) {
        route_reply_err(req, GW_EINVAL, "x-node-id: the calling node is required");
        return;
    }
    cJSON *claims = NULL;
    int v = attest_introspect(req->app->attest, tok, req->caller, (long long)time(NULL), &claims);
    if (v == JWS_E_AUD) {
        log_kv(LOG_LEVEL_WARN, &req->log, "attest.refused",
               "introspection of a token issued for another node", NULL);
        route_reply_err(req, GW_EAUTH, "token: not issued for the calling node (only a token's "
                                       "audience may introspect it)");
        return;
    }
    if (v != JWS_OK) {
        reply_inactive(req, jws_error_name((enum jws_error)v));
        return;
    }
    const char *job = bfia_str(claims, "job_id"), *task = bfia_str(claims, "task_id"),
               *ljti = bfia_str(claims, "launch_jti"), *idx = "";
    char *rname = role_split(bfia_str(claims, "self_role"), &idx);
    if (!job || !task || !rname || !ljti) {
        free(rname);
        cJSON_Delete(claims);
        reply_inactive(req, "E_BINDING");
        return;
    }
    static const char sql[] =
        "SELECT count(*) FROM t_task WHERE job_id = $1 AND task_id = $2 AND role = $3"
        " AND role_index = $4::int AND status = 'RUNNING'"
        " AND $5 IN (token_id, prev_token_id, env_token_id)";
    const char *p[5] = {job, task, rname, idx, ljti};
    route_db(req, sql, 5, p, on_introspected, req);
    free(rname);
    cJSON_Delete(claims);
}
