/*
 * platform.c - the platform API of this node (its own UI and CLI).
 *
 * For now: reading the peer route table.  Editing routes and the scheduling
 * endpoints arrive with the control-layer work.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/app.h"
#include "gateway/db.h"
#include "gateway/json.h"
#include "gateway/reqsig.h"
#include "gateway/peer.h"
#include "route.h"

#define NODE_ID_MAX 64

static cJSON *route_row(const struct db_res *r, int i)
{
    cJSON *o = cJSON_CreateObject();
    json_add_str(o, "node_id", db_res_get(r, i, 0));
    json_add_str(o, "host", db_res_get(r, i, 1));
    const char *port = db_res_get(r, i, 2);
    json_add_int(o, "port", port ? atoll(port) : 0);
    json_add_str(o, "scheme", db_res_get(r, i, 3));
    json_add_str(o, "profile", db_res_get(r, i, 4));
    json_add_str(o, "auth", db_res_get(r, i, 5));
    json_add_str(o, "key", db_res_get(r, i, 6));
    return o;
}

static void on_route_get(void *arg, int err, const struct db_res *res, const char *errmsg,
                         const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    if (db_res_rows(res) == 0) {
        route_reply_err(req, GW_ENOTFOUND, "node_id is not in the route table");
        return;
    }
    route_reply_ok(req, route_row(res, 0));
}

void platform_route_get(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *node = NULL;
    if (server_req_params(req, &eb) != 0 ||
        json_get_id(req->params, "node_id", true, NODE_ID_MAX, &node, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    static const char sql[] =
        "SELECT node_id, host, port, scheme, profile, auth, coalesce(key_pin, '') FROM t_route "
        "WHERE node_id = $1";
    const char *params[1] = {node};
    route_db(req, sql, 1, params, on_route_get, req);
}

static void on_route_list(void *arg, int err, const struct db_res *res, const char *errmsg,
                          const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    cJSON *data = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(data, "routes");
    for (int i = 0; i < db_res_rows(res); i++)
        cJSON_AddItemToArray(arr, route_row(res, i));
    route_reply_ok(req, data);
}

void platform_route_list(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (server_req_params(req, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    static const char sql[] = "SELECT node_id, host, port, scheme, profile, auth, "
                              "coalesce(key_pin, '') FROM t_route ORDER BY node_id";
    route_db(req, sql, 0, NULL, on_route_list, req);
}

/* ---- route editing (rows with source 'api'; a file reload keeps them) ---- */

static void on_routes_refreshed(void *arg, int err, const char *msg)
{
    struct gw_req *req = arg;
    if (err) {
        route_reply_err(req, err, msg);
        return;
    }
    route_reply_ok(req, NULL);
}

static void on_route_written(void *arg, int err, const struct db_res *res, const char *errmsg,
                             const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    if (db_res_rows(res) == 0 || atoll(db_res_get(res, 0, 0)) == 0) {
        route_reply_err(req, GW_ENOTFOUND, "node_id is not in the route table");
        return;
    }
    route_table_refresh(req->app, on_routes_refreshed, req);
}

static bool one_of(const char *v, const char *a, const char *b, const char *c)
{
    return strcmp(v, a) == 0 || strcmp(v, b) == 0 || (c && strcmp(v, c) == 0);
}

/* POST /v1/platform/route/set {node_id, host, port, scheme?, profile?, auth?, key?} */
void platform_route_set(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *node = NULL, *host = NULL, *scheme = "http", *profile = "standard", *auth = NULL,
               *key = NULL;
    long long port = 0;
    if (server_req_params(req, &eb) != 0 ||
        json_get_id(req->params, "node_id", true, NODE_ID_MAX, &node, &eb) != 0 ||
        json_get_str(req->params, "host", true, 253, &host, &eb) != 0 ||
        json_get_int(req->params, "port", true, 1, 65535, &port, &eb) != 0 ||
        json_get_str(req->params, "scheme", false, 8, &scheme, &eb) != 0 ||
        json_get_str(req->params, "profile", false, 16, &profile, &eb) != 0 ||
        json_get_str(req->params, "auth", false, 16, &auth, &eb) != 0 ||
        json_get_str(req->params, "key", false, 4096, &key, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    for (const char *c = host; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-' || *c == ':' || *c == '_')) {
            route_reply_err(req, GW_EINVAL, "host: letters, digits, '.', '-', ':' only");
            return;
        }
    if (!*host) {
        route_reply_err(req, GW_EINVAL, "host: must not be empty");
        return;
    }
    if (!one_of(scheme, "http", "https", NULL)) {
        route_reply_err(req, GW_EINVAL, "scheme: expected http or https");
        return;
    }
    if (!one_of(profile, "standard", "fate-flow", "kuscia")) {
        route_reply_err(req, GW_EINVAL, "profile: expected standard, fate-flow or kuscia");
        return;
    }
    if (!auth)
        auth = strcmp(profile, "standard") == 0 ? "required" : "off";
    if (!one_of(auth, "required", "optional", "off")) {
        route_reply_err(req, GW_EINVAL, "auth: expected required, optional or off");
        return;
    }
    if (key && *key && reqsig_pin_check(key, &eb) != 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "key: %.280s", eb.msg);
        route_reply_err(req, GW_EINVAL, strncmp(eb.msg, "key:", 4) == 0 ? eb.msg : msg);
        return;
    }
    if (key && !*key)
        key = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%lld", port);
    static const char sql[] =
        "WITH u AS (INSERT INTO t_route (node_id, host, port, scheme, profile, auth, key_pin, source)"
        " VALUES ($1, $2, $3::int, $4, $5, $6, $7, 'api') ON CONFLICT (node_id) DO UPDATE SET"
        " host = EXCLUDED.host, port = EXCLUDED.port, scheme = EXCLUDED.scheme,"
        " profile = EXCLUDED.profile, auth = EXCLUDED.auth, key_pin = EXCLUDED.key_pin,"
        " source = 'api', updated_at = now() RETURNING 1)"
        ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        " SELECT 'route', $1, 'set', 'api', $2 || ':' || $3 || ' ' || $5 FROM u)"
        " SELECT count(*) FROM u";
    const char *p[7] = {node, host, ps, scheme, profile, auth, key};
    route_db(req, sql, 7, p, on_route_written, req);
}

/* POST /v1/platform/route/delete {node_id} */
void platform_route_delete(struct gw_req *req)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *node = NULL;
    if (server_req_params(req, &eb) != 0 ||
        json_get_id(req->params, "node_id", true, NODE_ID_MAX, &node, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    static const char sql[] =
        "WITH d AS (DELETE FROM t_route WHERE node_id = $1 RETURNING 1)"
        ", e AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        " SELECT 'route', $1, 'deleted', 'api', 'route/delete' FROM d)"
        " SELECT count(*) FROM d";
    const char *p[1] = {node};
    route_db(req, sql, 1, p, on_route_written, req);
}
