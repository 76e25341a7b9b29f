/*
 * routedb.c - the route table's rows in PostgreSQL (t_route) and the cache
 * of gateway/peer.h that the call path reads.  The routes file is loaded
 * into t_route (its rows replace earlier file rows; rows added through the
 * platform API stay), and the cache is re-read from t_route after every
 * change, so PostgreSQL stays the source of truth.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "gateway/app.h"
#include "gateway/db.h"
#include "gateway/json.h"
#include "gateway/peer.h"
#include "route.h"

struct rdb {
    struct gw_app *app;
    route_db_done done;
    void *arg;
};

static void rdb_done(struct rdb *r, int err, const char *msg)
{
    if (r->done)
        r->done(r->arg, err, msg);
    free(r);
}

static void on_refresh(void *arg, int err, const struct db_res *res, const char *errmsg,
                       const char *sqlstate)
{
    (void)sqlstate;
    struct rdb *r = arg;
    if (!err) {
        struct db_rows rows = {.n = db_res_rows(res), .cols = db_res_cols(res)};
        const char **v = gw_xcalloc((size_t)rows.n * (size_t)rows.cols + 1, sizeof(char *));
        for (int i = 0; i < rows.n; i++)
            for (int j = 0; j < rows.cols; j++)
                v[i * rows.cols + j] = db_res_get(res, i, j);
        rows.v = v;
        peers_set(r->app->peers, &rows);
        free(v);
    }
    rdb_done(r, err, err ? errmsg : "");
}

void route_table_refresh(struct gw_app *app, route_db_done done, void *arg)
{
    struct rdb *r = gw_xcalloc(1, sizeof(*r));
    r->app = app;
    r->done = done;
    r->arg = arg;
    static const char sql[] =
        "SELECT node_id, host, port, scheme, profile, auth, key_pin FROM t_route";
    int rc = db_query(app->db, sql, 0, NULL, on_refresh, r, NULL);
    if (rc != 0)
        rdb_done(r, rc, "database unavailable");
}

static void on_synced(void *arg, int err, const struct db_res *res, const char *errmsg,
                      const char *sqlstate)
{
    (void)res;
    (void)sqlstate;
    struct rdb *r = arg;
    if (err) {
        rdb_done(r, err, errmsg);
        return;
    }
    route_table_refresh(r->app, r->done, r->arg);
    free(r);
}

void route_table_sync_file(struct gw_app *app, const char *path, route_db_done done, void *arg)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    cJSON *arr = peers_parse_file(path, &eb);
    if (!arr) {
        if (done)
            done(arg, GW_EINVAL, eb.msg);
        return;
    }
    static const char sql[] =
        "WITH f AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(node_id text, host text,"
        "  port int, scheme text, profile text, auth text, key_pin text))"
        ", d AS (DELETE FROM t_route WHERE source = 'file' AND node_id NOT IN"
        "  (SELECT node_id FROM f))"
        " INSERT INTO t_route (node_id, host, port, scheme, profile, auth, key_pin, source)"
        " SELECT node_id, host, port, scheme, profile, auth, key_pin, 'file' FROM f"
        " ON CONFLICT (node_id) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port,"
        "  scheme = EXCLUDED.scheme, profile = EXCLUDED.profile, auth = EXCLUDED.auth,"
        "  key_pin = EXCLUDED.key_pin, source = 'file', updated_at = now()";
    char *js = json_print(arr);
    cJSON_Delete(arr);
    const char *prm[1] = {js};
    struct rdb *r = gw_xcalloc(1, sizeof(*r));
    r->app = app;
    r->done = done;
    r->arg = arg;
    int rc = db_query(app->db, sql, 1, prm, on_synced, r, NULL);
    cJSON_free(js);
    if (rc != 0)
        rdb_done(r, rc, "database unavailable");
}
