/* route.c - the route table, matching, dispatch and the BFIA envelope. */
#include "route.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/json.h"
#include "gateway/reqsig.h"
#include "gateway/peer.h"
#include "gateway/log.h"

#define KiB 1024
#define MiB (1024 * 1024)

/* Body limits: ops endpoints take no body; platform and interconn calls carry
 * DAGs and configs (a few KiB in practice, 1 MiB leaves room for big DAGs);
 * 0 means http.body_max (uploads, later). */
static const struct route table[] = {
    {GW_GET | GW_HEAD, "/healthz", ops_healthz, 1 * KiB, ROUTE_AUTH_NONE, WHO_ROUTE},
    {GW_GET | GW_HEAD, "/readyz", ops_readyz, 1 * KiB, ROUTE_AUTH_NONE, WHO_ROUTE},
    {GW_GET, "/metrics", ops_metrics, 1 * KiB, ROUTE_AUTH_NONE, WHO_ROUTE},
    {GW_GET, "/version", ops_version, 1 * KiB, ROUTE_AUTH_NONE, WHO_ROUTE},
    {GW_GET, "/v1/interconn/attest/jwks", ops_jwks, 1 * KiB, ROUTE_AUTH_NONE, WHO_ROUTE},
    {GW_GET, "/.well-known/jwks.json", ops_jwks, 1 * KiB, ROUTE_AUTH_NONE, WHO_ROUTE},
    {GW_GET, "/v1/platform/attest/jwks", ops_jwks, 1 * KiB, ROUTE_AUTH_NONE, WHO_ROUTE},
    {GW_POST, "/v1/platform/attest/key/rotate", ops_key_rotate, 4 * KiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v1/platform/attest/token", attest_token_exchange, 4 * KiB, ROUTE_AUTH_TASK, WHO_ROUTE},
    {GW_POST, "/v1/interconn/attest/evidence", attest_evidence, 4 * KiB, ROUTE_AUTH_PEER, WHO_ROUTE},
    {GW_POST, "/v1/interconn/attest/introspect", attest_introspect_ep, 16 * KiB, ROUTE_AUTH_PEER, WHO_ROUTE},
    {GW_POST, "/v1/platform/attest/verify", attest_token_verify, 16 * KiB, ROUTE_AUTH_TASK, WHO_ROUTE},
    {GW_GET | GW_POST, "/v1/platform/route/get", platform_route_get, 64 * KiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_GET | GW_POST, "/v1/platform/route/list", platform_route_list, 64 * KiB,
     ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v1/platform/route/set", platform_route_set, 64 * KiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v1/platform/route/delete", platform_route_delete, 64 * KiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    /* platform API: this node's UI, CLI and task containers */
    {GW_POST, "/v1/platform/schedule/job/create_all", platform_job_create_all, 1 * MiB,
     ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v1/platform/schedule/job/stop_all", platform_job_stop_all, 64 * KiB,
     ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v1/platform/schedule/job/stop_task", platform_stop_task, 64 * KiB,
     ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_GET | GW_POST, "/v1/platform/schedule/job/status_all", platform_job_status_all,
     64 * KiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_GET | GW_POST, "/v1/platform/schedule/job/query_job_list", platform_job_list, 64 * KiB,
     ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_GET | GW_POST, "/v1/platform/schedule/task/get_log_line", partner_get_log_line, 64 * KiB,
     ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_GET | GW_POST, "/v1/platform/schedule/task/get_log", partner_get_log, 64 * KiB,
     ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v1/platform/schedule/task/callback", partner_ep_container_callback, 64 * KiB,
     ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v1/platform/schedule/component/register", provider_component_register, 4 * MiB,
     ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v2/provider/register", provider_register, 4 * MiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_GET | GW_POST, "/v2/provider/query", provider_query, 64 * KiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v2/provider/delete", provider_delete, 64 * KiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v2/component/upload", dataset_upload_path, 64 * KiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v2/component/upload/file", dataset_upload_file, ROUTE_BODY_UPLOAD,
     ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_GET | GW_POST, "/v2/component/dataset/query", dataset_query, 64 * KiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_GET | GW_POST, "/v2/component/dataset/list", dataset_list, 64 * KiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    {GW_POST, "/v2/component/dataset/delete", dataset_delete, 64 * KiB, ROUTE_AUTH_LOCAL, WHO_ROUTE},
    /* interconn API, scheduler side */
    {GW_POST, "/v1/interconn/schedule/job/create_all", interconn_job_create_all, 1 * MiB, ROUTE_AUTH_PEER,
     WHO_INITIATOR_BODY},
    {GW_POST, "/v1/interconn/schedule/job/stop_all", interconn_job_stop_all, 64 * KiB, ROUTE_AUTH_PEER,
     WHO_PARTY},
    {GW_GET | GW_POST, "/v1/interconn/schedule/job/status_all", interconn_job_status_all, 64 * KiB,
     ROUTE_AUTH_PEER, WHO_PARTY},
    {GW_POST, "/v1/interconn/schedule/task/callback", interconn_task_callback, 1 * MiB,
     ROUTE_AUTH_PEER, WHO_TASK_PARTY},
    {GW_POST, "/v1/interconn/schedule/job/audit_confirm", interconn_job_audit_confirm, 64 * KiB,
     ROUTE_AUTH_PEER, WHO_PARTY},
    {GW_POST, "/v1/platform/schedule/job/audit_confirm", interconn_job_audit_confirm, 64 * KiB,
     ROUTE_AUTH_LOCAL, WHO_ROUTE},
    /* interconn API, partner side */
    {GW_POST, "/v1/interconn/schedule/job/create", partner_ep_job_create, 1 * MiB, ROUTE_AUTH_PEER,
     WHO_SCHEDULER_BODY},
    {GW_POST, "/v1/interconn/schedule/job/start", partner_ep_job_start, 64 * KiB, ROUTE_AUTH_PEER,
     WHO_SCHEDULER},
    {GW_POST, "/v1/interconn/schedule/task/start", partner_ep_task_start, 64 * KiB, ROUTE_AUTH_PEER,
     WHO_SCHEDULER},
    {GW_POST, "/v1/interconn/schedule/job/stop", partner_ep_job_stop, 64 * KiB, ROUTE_AUTH_PEER,
     WHO_SCHEDULER},
    {GW_POST, "/v1/interconn/schedule/task/poll", partner_ep_task_poll, 64 * KiB, ROUTE_AUTH_PEER,
     WHO_TASK_SCHED_PARTY},
    {GW_POST, "/v1/interconn/schedule/task/stop", partner_ep_task_stop, 64 * KiB, ROUTE_AUTH_PEER,
     WHO_TASK_SCHEDULER},
    /* transport layer (routes/chan.c): containers, then peer nodes */
    {GW_POST, "/v1/interconn/chan/push", chan_push, ROUTE_BODY_CHAN, ROUTE_AUTH_CHAN, WHO_ROUTE},
    {GW_POST | GW_GET, "/v1/interconn/chan/pop", chan_pop, ROUTE_BODY_CHAN, ROUTE_AUTH_CHAN, WHO_ROUTE},
    {GW_POST | GW_GET, "/v1/interconn/chan/peek", chan_peek, ROUTE_BODY_CHAN, ROUTE_AUTH_CHAN, WHO_ROUTE},
    {GW_POST, "/v1/interconn/chan/release", chan_release, ROUTE_BODY_CHAN, ROUTE_AUTH_CHAN, WHO_ROUTE},
    {GW_POST, "/v1/interconn/chan/invoke", chan_invoke, ROUTE_BODY_CHAN, ROUTE_AUTH_PEER, WHO_ROUTE},
    {GW_POST, "/v1/interconn/chan/transport", chan_invoke, ROUTE_BODY_CHAN, ROUTE_AUTH_PEER, WHO_ROUTE},
};

const struct route *route_table(size_t *n)
{
    *n = GW_ARRAY_LEN(table);
    return table;
}

int route_code_for(int err, int *http_status)
{
    *http_status = 200;
    switch (err) {
    case GW_OK: return ROUTE_CODE_OK;
    case GW_EINVAL: return ROUTE_CODE_BAD_PARAM;
    case GW_ENOTFOUND: return ROUTE_CODE_NOT_FOUND;
    case GW_ECONFLICT: return ROUTE_CODE_CONFLICT;
    case GW_EAUTH: return ROUTE_CODE_AUTH;
    case GW_ETIMEOUT: return ROUTE_CODE_TIMEOUT;
    case GW_EPEER: return ROUTE_CODE_PEER;
    case GW_EDB: return ROUTE_CODE_DB;
    case GW_EDOCKER: return ROUTE_CODE_DOCKER;
    case GW_ETOOBIG: return ROUTE_CODE_TOO_BIG;
    case GW_EBUSY: *http_status = 503; return ROUTE_CODE_BUSY;
    case GW_EDRAINING: *http_status = 503; return ROUTE_CODE_DRAINING;
    case GW_EREFUSED: return ROUTE_CODE_FAILED;
    default: return ROUTE_CODE_INTERNAL;
    }
}

/* Compare one pattern against a path, segment by segment. */
static bool pattern_match(const char *pat, const char *path)
{
    while (*pat && *path) {
        if (pat[0] == '{') {
            const char *pe = strchr(pat, '}');
            if (!pe)
                return false;
            if (*path == '/')
                return false; /* empty segment */
            while (*path && *path != '/')
                path++;
            pat = pe + 1;
            continue;
        }
        if (*pat != *path)
            return false;
        pat++;
        path++;
    }
    /* tolerate one trailing slash on the request ("/healthz/") */
    if (*pat == '\0' && path[0] == '/' && path[1] == '\0')
        return true;
    return *pat == '\0' && *path == '\0';
}

int route_match(const struct route *t, size_t n, enum gw_method method, const char *path,
                bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < n; i++) {
        if (!pattern_match(t[i].pattern, path))
            continue;
        *path_known = true;
        if (t[i].methods & (unsigned)method)
            return (int)i;
    }
    return -1;
}

static void reply_envelope(struct gw_req *req, int http_status, int code, const char *msg,
                           cJSON *data)
{
    cJSON *root = cJSON_CreateObject();
    /* A Kuscia caller reads code 200 as success (DESIGN.md wire profiles). */
    if (code == ROUTE_CODE_OK && req->caller && req->app->peers &&
        peers_profile(req->app->peers, req->caller) == PEER_KUSCIA)
        code = 200;
    json_add_int(root, "code", code);
    json_add_str(root, "msg", msg);
    cJSON_AddItemToObject(root, "data", data ? data : cJSON_CreateObject());
    char *s = json_print(root);
    cJSON_Delete(root);
    static const char *const retry[] = {"Retry-After", "1", NULL};
    server_reply(req, http_status, "application/json", s, strlen(s),
                 http_status == 503 ? retry : NULL);
    cJSON_free(s);
}

/* One rule for every endpoint (README "Operations"): overload and shutdown
 * answer HTTP 503 with Retry-After, whoever produced the code (a handler,
 * or a scheduler whose answer is relayed); every other envelope is 200. */
void route_reply(struct gw_req *req, int code, const char *msg, cJSON *data)
{
    bool busy = code == ROUTE_CODE_BUSY || code == ROUTE_CODE_DRAINING;
    reply_envelope(req, busy ? 503 : 200, code, msg, data);
}

void route_reply_ok(struct gw_req *req, cJSON *data)
{
    reply_envelope(req, 200, ROUTE_CODE_OK, "success", data);
}

void route_reply_err(struct gw_req *req, int err, const char *msg)
{
    route_reply_err_data(req, err, msg, NULL);
}

void route_reply_err_data(struct gw_req *req, int err, const char *msg, cJSON *data)
{
    int status;
    int code = route_code_for(err, &status);
    if (code == ROUTE_CODE_INTERNAL || code == ROUTE_CODE_DB)
        log_kv(LOG_LEVEL_WARN, &req->log, "http.error", msg, "err", gw_strerror(err), "path",
               req->path, NULL);
    reply_envelope(req, status, code, msg && *msg ? msg : gw_strerror(err), data);
}

/* A peer request whose credentials were checked (reqsig.h). */
static void after_auth(struct gw_req *req, int err, const char *msg)
{
    if (err) {
        route_reply_err(req, err, msg);
        return;
    }
    size_t n;
    const struct route *t = route_table(&n);
    authz_check(req, &t[req->route_idx]);
}

const char *route_abort_body(void)
{
    return "{\"code\":6005,\"msg\":\"gateway is shutting down; retry on another node or "
           "later\",\"data\":{}}";
}

void route_dispatch(struct gw_req *req)
{
    struct gw_app *app = req->app;
    size_t n;
    const struct route *t = route_table(&n);
    bool known;
    int idx = route_match(t, n, req->method, req->path, &known);
    req->route_idx = idx >= 0 ? idx : (int)n;
    req->route_name = idx >= 0 ? t[idx].pattern : NULL;

    /* The transport listener serves the container-facing channel API and
     * nothing else; with a transport listener, that API is not on http.port. */
    bool on_chan = app->chan_server && req->srv == app->chan_server;
    if (idx >= 0 && (on_chan != (t[idx].auth == ROUTE_AUTH_CHAN)) &&
        (on_chan || app->chan_server)) {
        reply_envelope(req, 200, ROUTE_CODE_NO_ROUTE,
                       on_chan ? "no such endpoint on the transport listener (only "
                                 "/v1/interconn/chan/push, pop, peek, release)"
                               : "the container-facing channel API is served on transport.port",
                       NULL);
        return;
    }
    if (req->agent_sock && idx >= 0 && t[idx].auth != ROUTE_AUTH_TASK) {
        /* A task socket reaches the attestation endpoints and nothing else. */
        reply_envelope(req, 200, ROUTE_CODE_NO_ROUTE,
                       "no such endpoint on a task socket (only /v1/platform/attest/token "
                       "and /v1/platform/attest/verify)", NULL);
        return;
    }
    if (idx < 0) {
        char msg[160];
        if (known) {
            snprintf(msg, sizeof(msg), "method %s is not allowed on this endpoint",
                     req->method_name);
            reply_envelope(req, 200, ROUTE_CODE_METHOD, msg, NULL);
        } else {
            reply_envelope(req, 200, ROUTE_CODE_NO_ROUTE, "no such endpoint", NULL);
        }
        return;
    }
    const struct route *r = &t[idx];
    /* Probes keep answering while draining: /readyz must say why it is 503. */
    if (app->draining && r->auth != ROUTE_AUTH_NONE) {
        route_reply_err(req, GW_EDRAINING, "gateway is shutting down; retry later");
        return;
    }
    if (app->starting && r->auth != ROUTE_AUTH_NONE) {
        route_reply_err(req, GW_EBUSY, "node is starting (reconciling tasks with the engine); retry");
        return;
    }
    if (!on_chan && server_inflight(app->server) > app->cfg->http_max_conns &&
        r->auth != ROUTE_AUTH_NONE) {
        route_reply_err(req, GW_EBUSY, "too many requests in flight; retry later");
        return;
    }
    size_t cap = r->body_max == ROUTE_BODY_CHAN     ? (size_t)-1 /* the handler answers */
                 : r->body_max == ROUTE_BODY_UPLOAD ? (size_t)app->cfg->upload_max
                 : r->body_max                 ? r->body_max
                                               : (size_t)app->cfg->http_body_max;
    if (req->body_len > cap) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request body of %zu bytes is over this endpoint's limit of %zu",
                 req->body_len, cap);
        route_reply_err(req, GW_ETOOBIG, msg);
        return;
    }
    if ((r->auth == ROUTE_AUTH_LOCAL || (r->auth == ROUTE_AUTH_TASK && !req->agent_sock)) &&
        !cfg_platform_allowed(app->cfg, server_req_peer(req))) {
        char msg[240];
        const char *peer = server_req_peer(req);
        snprintf(msg, sizeof(msg), "platform API: caller address %.64s is not in "
                 "http.platform_allow (this API is for the node's own UI, CLI and task "
                 "containers; peers use /v1/interconn)", peer ? peer : "(unknown)");
        log_kv(LOG_LEVEL_WARN, &req->log, "auth.refused", msg, "path", req->path, NULL);
        route_reply_err(req, GW_EAUTH, msg);
        return;
    }
    if (r->auth == ROUTE_AUTH_PEER && app->reqsig) {
        reqsig_check(app->reqsig, req, after_auth);
        return;
    }
    r->handler(req);
}

bool route_params(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (server_req_params(req, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return false;
    }
    return true;
}

bool route_get_id(struct gw_req *req, const char *key, bool required, const char **out)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_id(req->params, key, required, 128, out, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return false;
    }
    return true;
}

int route_db(struct gw_req *req, const char *sql, int n, const char *const *params, db_cb cb,
             void *arg)
{
    int rc = db_query(req->app->db, sql, n, params, cb, arg, NULL);
    if (rc == GW_EBUSY)
        route_reply_err(req, rc, "database wait queue is full; retry later");
    else if (rc != 0)
        route_reply_err(req, rc, "database unavailable");
    return rc;
}

/* PostgreSQL's own text stays in the node's log: it can name tables,
 * constraints and values, and is no business of a caller. */
bool route_db_failed(struct gw_req *req, int err, const char *errmsg)
{
    if (!err)
        return false;
    if (err != GW_ETIMEOUT && err != GW_EBUSY && err != GW_EDRAINING)
        log_kv(LOG_LEVEL_WARN, &req->log, "db.error", "statement failed", "err",
               errmsg ? errmsg : "", "path", req->path, NULL);
    route_reply_err(req, err,
                    err == GW_ETIMEOUT ? "database query timed out"
                    : err == GW_EBUSY  ? "database wait queue is full; retry later"
                                       : "database error (the node's log has the detail)");
    return true;
}

bool route_store_started(struct gw_req *req, int rc)
{
    if (rc == 0)
        return true;
    route_reply_err(req, rc == GW_EBUSY ? GW_EBUSY : GW_EDB,
                    rc == GW_EBUSY ? "database wait queue is full; retry later"
                                   : "database unavailable");
    return false;
}
