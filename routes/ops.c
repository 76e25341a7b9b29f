/* ops.c - liveness, readiness, metrics and version. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/reqsig.h"
#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/db.h"
#include "gateway/httpc.h"
#include "gateway/json.h"
#include "container/keys.h"
#include "gateway/metrics.h"
#include "container/attest.h"
#include "scheduler/pollcache.h"
#include "route.h"
#include "container/chan.h"

#ifndef GW_VERSION
#define GW_VERSION "dev"
#endif
#ifndef GW_GIT_REV
#define GW_GIT_REV "unknown"
#endif

/* Liveness: answering at all proves the loop turns; no DB access on purpose,
 * so a database outage never gets a healthy gateway restarted. */
void ops_healthz(struct gw_req *req)
{
    static const char body[] = "{\"code\":0,\"msg\":\"success\",\"data\":{\"status\":\"ok\"}}";
    server_reply(req, 200, "application/json", body, sizeof(body) - 1, NULL);
}

void ops_readyz(struct gw_req *req)
{
    struct gw_app *app = req->app;
    const char *reason = NULL;
    bool ready;
    if (app->draining) {
        ready = false;
        reason = "draining: shutdown in progress";
    } else {
        ready = db_pool_ready(app->db, &reason);
        if (ready && app->starting) {
            ready = false;
            reason = "starting: reconciling task containers and jobs";
        }
    }
    cJSON *data = cJSON_CreateObject();
    json_add_str(data, "status", ready ? "ready" : "not ready");
    if (!ready) {
        json_add_str(data, "reason", reason);
        const char *last = db_pool_last_error(app->db);
        if (last && *last && !app->draining)
            json_add_str(data, "db_error", last);
    }
    json_add_int(data, "schema_version", app->schema_version);
    cJSON *root = cJSON_CreateObject();
    json_add_int(root, "code", ready ? ROUTE_CODE_OK : ROUTE_CODE_BUSY);
    json_add_str(root, "msg", ready ? "success" : reason);
    cJSON_AddItemToObject(root, "data", data);
    char *s = json_print(root);
    cJSON_Delete(root);
    server_reply(req, ready ? 200 : 503, "application/json", s, strlen(s), NULL);
    cJSON_free(s);
}

void ops_metrics(struct gw_req *req)
{
    struct gw_app *app = req->app;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out) {
        route_reply_err(req, GW_EINTERNAL, "cannot render metrics");
        return;
    }
    metrics_render(app->metrics, out);
    chan_metrics(app->chan, out);
    unsigned long long bm, bs, br;
    reqsig_bmac_counts(app->reqsig, &bm, &bs, &br);
    fprintf(out,
            "# HELP gateway_signed_bodies_total Signed requests of 64 KiB and more, by how their body was checked (reqsig.h).\n"
            "# TYPE gateway_signed_bodies_total counter\n"
            "gateway_signed_bodies_total{check=\"gmac\"} %llu\n"
            "gateway_signed_bodies_total{check=\"sha256\"} %llu\n"
            "gateway_signed_bodies_total{check=\"gmac_refused\"} %llu\n",
            bm, bs, br);
    struct db_stats st;
    db_pool_stats(app->db, &st);
    fprintf(out,
            "# HELP gateway_db_pool_connections Database connections by state.\n"
            "# TYPE gateway_db_pool_connections gauge\n"
            "gateway_db_pool_connections{state=\"idle\"} %d\n"
            "gateway_db_pool_connections{state=\"busy\"} %d\n"
            "gateway_db_pool_connections{state=\"connecting\"} %d\n"
            "gateway_db_pool_connections{state=\"down\"} %d\n"
            "# HELP gateway_db_wait_queue Queries waiting for a connection.\n"
            "# TYPE gateway_db_wait_queue gauge\n"
            "gateway_db_wait_queue %d\n"
            "# HELP gateway_db_wait_queue_max Wait queue capacity.\n"
            "# TYPE gateway_db_wait_queue_max gauge\n"
            "gateway_db_wait_queue_max %d\n"
            "# HELP gateway_db_queries_total Queries completed, by outcome.\n"
            "# TYPE gateway_db_queries_total counter\n"
            "gateway_db_queries_total{outcome=\"ok\"} %lld\n"
            "gateway_db_queries_total{outcome=\"error\"} %lld\n"
            "# HELP gateway_db_connects_total Connections established since start.\n"
            "# TYPE gateway_db_connects_total counter\n"
            "gateway_db_connects_total %lld\n"
            "# HELP gateway_http_inflight Requests received and not yet answered.\n"
            "# TYPE gateway_http_inflight gauge\n"
            "gateway_http_inflight %d\n"
            "# HELP gateway_httpc_inflight Outgoing HTTP calls in flight.\n"
            "# TYPE gateway_httpc_inflight gauge\n"
            "gateway_httpc_inflight %d\n"
            "# HELP gateway_draining 1 while shutting down.\n"
            "# TYPE gateway_draining gauge\n"
            "gateway_draining %d\n"
            "# HELP gateway_build_info Build version; value is always 1.\n"
            "# TYPE gateway_build_info gauge\n"
            "gateway_build_info{version=\"%s\",revision=\"%s\",schema=\"%d\"} 1\n"
            "# HELP gateway_start_time_seconds Wall clock time the process started.\n"
            "# TYPE gateway_start_time_seconds gauge\n"
            "gateway_start_time_seconds %lld\n",
            st.idle, st.busy, st.connecting, st.down, st.queued, st.queue_max,
            st.queries - st.failures, st.failures, st.reconnects, server_inflight(app->server) - 1,
            httpc_inflight(app->httpc), app->draining ? 1 : 0, GW_VERSION, GW_GIT_REV,
            app->schema_version, app->started_ms / 1000);
    if (app->pollcache) {
        struct pollcache_stats pc;
        pollcache_stats(app->pollcache, &pc);
        fprintf(out,
                "# HELP gateway_poll_cache_lookups_total task/poll answers by cache outcome.\n"
                "# TYPE gateway_poll_cache_lookups_total counter\n"
                "gateway_poll_cache_lookups_total{outcome=\"hit\"} %llu\n"
                "gateway_poll_cache_lookups_total{outcome=\"miss\"} %llu\n"
                "# HELP gateway_poll_cache_forgotten_total Cached answers dropped by a change.\n"
                "# TYPE gateway_poll_cache_forgotten_total counter\n"
                "gateway_poll_cache_forgotten_total %llu\n"
                "# HELP gateway_poll_cache_flushes_total Whole-cache flushes (LISTEN up/down, size).\n"
                "# TYPE gateway_poll_cache_flushes_total counter\n"
                "gateway_poll_cache_flushes_total %llu\n"
                "# HELP gateway_poll_cache_bytes Memory the cached answers take.\n"
                "# TYPE gateway_poll_cache_bytes gauge\n"
                "gateway_poll_cache_bytes %zu\n"
                "# HELP gateway_db_listening 1 while LISTEN bfia_task is in effect.\n"
                "# TYPE gateway_db_listening gauge\n"
                "gateway_db_listening %d\n",
                pc.hits, pc.misses, pc.forgotten, pc.flushes, pc.bytes,
                db_pool_listening(app->db) ? 1 : 0);
    }
    fclose(out);
    server_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len, NULL);
    free(buf);
}

void ops_version(struct gw_req *req)
{
    cJSON *data = cJSON_CreateObject();
    json_add_str(data, "version", GW_VERSION);
    json_add_str(data, "revision", GW_GIT_REV);
    json_add_str(data, "node_id", req->app->cfg->node_id);
    json_add_int(data, "schema_version", req->app->schema_version);
    route_reply_ok(req, data);
}

/* GET /v1/interconn/attest/jwks and /.well-known/jwks.json: the public keys
 * launch tokens of this node verify with (a plain JWKS, no envelope). */
void ops_jwks(struct gw_req *req)
{
    cJSON *j = attest_jwks(req->app->attest);
    char *s = json_print(j);
    cJSON_Delete(j);
    static const char *const h[] = {"Cache-Control", "max-age=300", NULL};
    server_reply(req, 200, "application/jwk-set+json", s, strlen(s), h);
    cJSON_free(s);
}

/* POST /v1/platform/attest/key/rotate {now?: bool}: start a key rotation
 * (container/keys.h).  Answers the active and next kids and when the next
 * key starts signing. */
void ops_key_rotate(struct gw_req *req)
{
    if (!route_params(req))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    bool now = false;
    if (json_get_bool(req->params, "now", false, &now, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    int in_s = 0;
    if (keys_rotate(req->app->keys, now, &in_s, &eb) != 0) {
        route_reply_err(req, GW_EINTERNAL, eb.msg[0] ? eb.msg : "key rotation failed");
        return;
    }
    cJSON *d = cJSON_CreateObject();
    json_add_str(d, "kid", attest_kid(req->app->attest));
    const char *next = attest_next_kid(req->app->attest);
    json_add_str(d, "next_kid", next ? next : "");
    json_add_int(d, "activate_in_s", in_s);
    route_reply_ok(req, d);
}
