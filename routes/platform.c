/*
 * platform.c - the platform API of this node (its own UI and CLI).
 *
 * For now: reading the peer route table.  Editing routes and the scheduling
 * endpoints arrive with the control-layer work.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "gateway/app.h"
#include "gateway/db.h"
#include "gateway/json.h"
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

/* Shared completion for the DB-backed handlers: errors map through the one
 * table in route.c. */
static int db_failed(struct gw_req *req, int err, const char *errmsg)
{
    if (!err)
        return 0;
    route_reply_err(req, err, err == GW_ETIMEOUT ? "database query timed out" : errmsg);
    return 1;
}

static void on_route_get(void *arg, int err, const struct db_res *res, const char *errmsg,
                         const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (db_failed(req, err, errmsg))
        return;
    if (db_res_rows(res) == 0) {
        route_reply_err(req, GW_ENOTFOUND, "node_id is not in the route table");
        return;
    }
    route_reply_ok(req, route_row(res, 0));
}

/* Start a query for req, or answer at once when the pool refuses. */
static void query_or_reply(struct gw_req *req, const char *sql, int n, const char *const *params,
                           db_cb cb)
{
    int rc = db_query(req->app->db, sql, n, params, cb, req, NULL);
    if (rc == GW_EBUSY)
        route_reply_err(req, rc, "database wait queue is full; retry later");
    else if (rc != 0)
        route_reply_err(req, rc, "database unavailable");
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
    query_or_reply(req, sql, 1, params, on_route_get);
}

static void on_route_list(void *arg, int err, const struct db_res *res, const char *errmsg,
                          const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (db_failed(req, err, errmsg))
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
    query_or_reply(req, sql, 0, NULL, on_route_list);
}
