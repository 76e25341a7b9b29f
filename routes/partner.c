/*
 * partner.c - the partner (participant) side of the control layer, and the
 * node-local task endpoints that read t_task.
 *
 *   POST /v1/interconn/schedule/job/create   t_job row per local role
 *   POST /v1/interconn/schedule/job/start    t_job READY -> RUNNING
 *   POST /v1/interconn/schedule/task/start   t_task rows, containers launched async
 *   POST /v1/interconn/schedule/task/poll    aggregate status of the local rows
 *   POST /v1/interconn/schedule/job/stop     stop all, or one task and its downstream
 *   POST /v1/interconn/schedule/task/stop    Kuscia's per-task stop
 *   POST /v1/platform/schedule/task/callback a container reports its status
 *   GET  /v1/platform/schedule/task/get_log_line, get_log
 *
 * Every write is one statement (compare-and-set plus its t_event rows), so a
 * repeated call changes nothing and answers success.
 */
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "container/attest.h"
#include "container/chan.h"
#include "container/docker.h"
#include "container/runner.h"
#include "container/taskenv.h"
#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/db.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "gateway/peer.h"
#include "pollcache.h"
#include "route.h"
#include "scheduler/dag.h"

/* Params or reply with the error; returns false when replied. */
/* ---- job/create ------------------------------------------------------------- */

static void on_job_created(void *arg, int err, const struct db_res *res, const char *errmsg,
                           const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    const char *missing = db_res_get(res, 0, 1);
    if (missing && *missing) {
        char *m = gw_xasprintf("dag.components: not registered on node %s: %s",
                               req->app->cfg->node_id, missing);
        route_reply_err(req, GW_ENOTFOUND, m);
        free(m);
        return;
    }
    route_reply_ok(req, NULL);
}

void partner_job_create(struct gw_req *req)
{
    if (!route_params(req))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *job_id = NULL, *flow = "", *sched = NULL;
    if (!route_get_id(req, "job_id", true, &job_id))
        return;
    if (json_get_str(req->params, "flow_id", false, 128, &flow, &eb) != 0 ||
        json_get_id(req->params, "scheduler", false, 64, &sched, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    struct dag *d = dag_parse(req->params, &eb);
    if (!d) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    const char *me = req->app->cfg->node_id;
    cJSON *roles = dag_local_roles(d, me);
    if (cJSON_GetArraySize(roles) == 0) {
        char *m = gw_xasprintf("config.role: node %s is not a party of job %s", me, job_id);
        route_reply_err(req, GW_EINVAL, m);
        free(m);
        cJSON_Delete(roles);
        dag_free(d);
        return;
    }
    if (!sched)
        sched = dag_initiator(d); /* FATE-Flow: the initiator is the scheduler */
    char *rj = json_print(roles), *dj = json_print(dag_json(d)), *cj = json_print(dag_config(d));
    static const char sql[] =
        "WITH comps AS (SELECT x->>'name' AS name, x->>'componentName' AS cn,"
        "  x->>'provider' AS pv, x->>'version' AS ver FROM jsonb_array_elements($3::jsonb->'components') x)"
        ", missing AS (SELECT string_agg(c.pv || '/' || c.cn || '@' || c.ver, ', ') AS m FROM comps c"
        "  WHERE NOT EXISTS (SELECT 1 FROM t_component t WHERE t.component_name = c.cn"
        "  AND t.provider = c.pv AND t.version = c.ver))"
        ", ins AS (INSERT INTO t_job (job_id, role, flow_id, dag, config, initiator, scheduler,"
        "  sync_type, status)"
        "  SELECT $1, r, $2, $3::jsonb, $4::jsonb, $5, $6, $7, 'READY'"
        "  FROM jsonb_array_elements_text($8::jsonb) r WHERE (SELECT m FROM missing) IS NULL"
        "  ON CONFLICT (job_id, role) DO NOTHING RETURNING role)"
        ", ev AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'job', $1 || '/' || role, 'READY', 'api', 'job/create from ' || $9 FROM ins)"
        " SELECT (SELECT count(*) FROM ins), (SELECT m FROM missing)";
    const char *p[9] = {job_id, flow, dj, cj, dag_initiator(d), sched, dag_sync_type(d), rj,
                        req->caller ? req->caller : "local"};
    route_db(req, sql, 9, p, on_job_created, req);
    cJSON_free(rj);
    cJSON_free(dj);
    cJSON_free(cj);
    cJSON_Delete(roles);
    dag_free(d);
}

/* ---- job/start -------------------------------------------------------------- */

static void on_job_started(void *arg, int err, const struct db_res *res, const char *errmsg,
                           const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    long long total = atoll(db_res_get(res, 0, 0)), finished = atoll(db_res_get(res, 0, 1));
    if (total == 0)
        route_reply_err(req, GW_ENOTFOUND, "job_id: no such job on this node");
    else if (finished == total)
        route_reply_err(req, GW_ECONFLICT, "job_id: the job has already finished on this node");
    else
        route_reply_ok(req, NULL);
}

void partner_job_start(struct gw_req *req)
{
    const char *job_id = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id))
        return;
    static const char sql[] =
        "WITH u AS (UPDATE t_job SET status = 'RUNNING', start_time = now(), updated_at = now()"
        "  WHERE job_id = $1 AND status = 'READY' RETURNING role)"
        ", ev AS (INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
        "  SELECT 'job', $1 || '/' || role, 'READY', 'RUNNING', 'api', 'job/start' FROM u)"
        " SELECT count(*), count(*) FILTER (WHERE status IN ('FINISHED','REJECTED'))"
        " FROM t_job WHERE job_id = $1";
    const char *p[1] = {job_id};
    route_db(req, sql, 1, p, on_job_started, req);
}

/* ---- task/start -------------------------------------------------------------- */

struct tstart {
    struct gw_req *req;
    char *job_id, *task_id, *task_name;
};

static void tstart_free(void *p)
{
    struct tstart *t = p;
    free(t->job_id);
    free(t->task_id);
    free(t->task_name);
    free(t);
}

static void on_tasks_inserted(void *arg, int err, const struct db_res *res, const char *errmsg,
                              const char *sqlstate)
{
    (void)sqlstate;
    struct tstart *t = arg;
    struct gw_req *req = t->req;
    if (route_db_failed(req, err, errmsg))
        return;
    /* rows: role, role_index of every READY row of the task */
    for (int i = 0; i < db_res_rows(res); i++) {
        struct runner_key k = {t->job_id, t->task_id, db_res_get(res, i, 0),
                               atoi(db_res_get(res, i, 1))};
        runner_launch(req->app->runner, &k);
    }
    route_reply_ok(req, NULL);
}

/* Resources of job_params.<role>.<idx>.resources: -1 (or absent) = no limit.
 * cpu in cores; memory in GiB (the S-GUIDE sample), or memory_mb. */
static void add_limits(cJSON *spec, const cJSON *config, const char *role, int idx)
{
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(config, "job_params");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(
        dag_index_entry(cJSON_GetObjectItemCaseSensitive(jp, role), idx), "resources");
    double cpu = -1, mem = -1;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(res, "cpu");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(res, "memory");
    const cJSON *mm = cJSON_GetObjectItemCaseSensitive(res, "memory_mb");
    if (cJSON_IsNumber(c) && c->valuedouble > 0)
        cpu = c->valuedouble * 1e9;
    if (cJSON_IsNumber(mm) && mm->valuedouble > 0)
        mem = mm->valuedouble * 1024 * 1024;
    else if (cJSON_IsNumber(m) && m->valuedouble > 0)
        mem = m->valuedouble * 1024 * 1024 * 1024;
    if (mem > 0 && mem < 6 * 1024 * 1024)
        mem = 6 * 1024 * 1024; /* the engine's minimum */
    cJSON_AddNumberToObject(spec, "nano_cpus", cpu);
    cJSON_AddNumberToObject(spec, "memory_bytes", mem);
}

static void on_task_ctx(void *arg, int err, const struct db_res *res, const char *errmsg,
                        const char *sqlstate)
{
    (void)sqlstate;
    struct tstart *t = arg;
    struct gw_req *req = t->req;
    struct gw_app *app = req->app;
    if (route_db_failed(req, err, errmsg))
        return;
    /* rows: role, status, dag, config, description, image_digest, provider, version */
    int n = db_res_rows(res);
    if (n == 0) {
        route_reply_err(req, GW_ENOTFOUND, "job_id: no such job on this node");
        return;
    }
    bool any_live = false;
    for (int i = 0; i < n; i++)
        if (strcmp(db_res_get(res, i, 1), "FINISHED") != 0 &&
            strcmp(db_res_get(res, i, 1), "REJECTED") != 0)
            any_live = true;
    if (!any_live) {
        route_reply_err(req, GW_ECONFLICT, "job_id: the job has finished on this node");
        return;
    }
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    cJSON *dagdoc = cJSON_CreateObject();
    cJSON_AddItemToObject(dagdoc, "dag", cJSON_Parse(db_res_get(res, 0, 2)));
    cJSON_AddItemToObject(dagdoc, "config", cJSON_Parse(db_res_get(res, 0, 3)));
    struct dag *d = dag_parse(dagdoc, &eb);
    cJSON_Delete(dagdoc);
    if (!d) {
        route_reply_err(req, GW_EINTERNAL, eb.msg);
        return;
    }
    int ti = dag_find(d, t->task_name);
    if (ti < 0) {
        char *m = gw_xasprintf("task_name: '%s' is not a component of job %s", t->task_name,
                               t->job_id);
        route_reply_err(req, GW_ENOTFOUND, m);
        free(m);
        dag_free(d);
        return;
    }
    const char *desc_s = db_res_get(res, 0, 4), *digest = db_res_get(res, 0, 5);
    if (!desc_s || !digest) {
        const struct dag_task *dt = dag_task(d, ti);
        char *m = gw_xasprintf("task_name: component %s/%s@%s is not registered on node %s",
                               dt->provider, dt->component, dt->version, app->cfg->node_id);
        route_reply_err(req, GW_ENOTFOUND, m);
        free(m);
        dag_free(d);
        return;
    }
    cJSON *desc = cJSON_Parse(desc_s);
    cJSON *rows = cJSON_CreateArray();
    const char *me = app->cfg->node_id;
    char *callback = gw_xasprintf("http://%s:%d/v1/platform/schedule/task/callback",
                                  app->cfg->callback_host, app->cfg->http_port);
    char *storage = gw_xasprintf("file://%s", app->storage_dir);
    char *logp = gw_xasprintf("%s/logs/%s", app->storage_dir, t->job_id);
    char *transport = chan_advertise(app);
    /* One row per (local role, index) that runs this component. */
    for (int i = 0; i < n; i++) {
        const char *role = db_res_get(res, i, 0);
        if (!dag_role_runs(desc, role))
            continue;
        int idxs[16];
        int ni = dag_role_indexes(d, role, me, idxs, 16);
        for (int k = 0; k < ni; k++) {
            cJSON *nodes = dag_task_nodes(d, desc);
            cJSON *prm = dag_task_params(d, ti, role, idxs[k]);
            cJSON *in = NULL, *out = NULL;
            if (dag_task_io(d, ti, desc, role, idxs[k], t->job_id, &in, &out, &eb) != 0) {
                cJSON_Delete(nodes);
                cJSON_Delete(prm);
                cJSON_Delete(rows);
                cJSON_Delete(desc);
                route_reply_err(req, GW_EINVAL, eb.msg);
                goto out;
            }
            struct taskenv_in ti_in = {
                .job_id = t->job_id,
                .task_id = t->task_id,
                .component = dag_task(d, ti)->component,
                .self_role = role,
                .self_index = idxs[k],
                .nodes = nodes,
                .params = prm,
                .inputs = in,
                .outputs = out,
                .storage = storage,
                .callback = callback,
                .log_path = logp,
                .transport = transport,
            };
            /* transport (container/chan.h): the task's capability, a trace id
             * every party shares */
            char *chan_tok = chan_task_token(app->chan, t->job_id, t->task_id, role, idxs[k]);
            char *trace = gw_xasprintf("trace_%s", t->task_id);
            ti_in.token = chan_tok;
            ti_in.trace_id = trace;
            struct taskenv env = {0};
            int rc = taskenv_build(&ti_in, &env, &eb);
            free(chan_tok);
            free(trace);
            cJSON_Delete(nodes);
            cJSON_Delete(prm);
            cJSON_Delete(in);
            cJSON_Delete(out);
            if (rc != 0) {
                cJSON_Delete(rows);
                cJSON_Delete(desc);
                route_reply_err(req, GW_EINVAL, eb.msg);
                goto out;
            }
            cJSON *spec = cJSON_CreateObject();
            cJSON *ea = cJSON_AddArrayToObject(spec, "env");
            for (size_t v = 0; v < env.n; v++)
                cJSON_AddItemToArray(ea, cJSON_CreateString(env.vars[v]));
            taskenv_cleanup(&env);
            cJSON_AddStringToObject(spec, "image_digest", digest);
            json_add_str(spec, "image", db_res_get(res, 0, 8));
            json_add_str(spec, "task_name", t->task_name);
            json_add_str(spec, "component", dag_task(d, ti)->component);
            json_add_str(spec, "provider", db_res_get(res, 0, 6));
            json_add_str(spec, "version", db_res_get(res, 0, 7));
            cJSON_AddStringToObject(spec, "storage_dir", app->storage_dir);
            cJSON_AddNumberToObject(spec, "attempt", 0);
            add_limits(spec, dag_config(d), role, idxs[k]);
            cJSON *row = cJSON_CreateObject();
            json_add_str(row, "role", role);
            json_add_int(row, "role_index", idxs[k]);
            char *cname = runner_container_name(role, me, t->task_id, 0);
            json_add_str(row, "container_name", cname);
            free(cname);
            cJSON_AddItemToObject(row, "spec", spec);
            cJSON_AddItemToArray(rows, row);
        }
    }
    cJSON_Delete(desc);
    if (cJSON_GetArraySize(rows) == 0) {
        cJSON_Delete(rows);
        char *m = gw_xasprintf("task_name: node %s plays no role in task %s", me, t->task_name);
        route_reply_err(req, GW_ECONFLICT, m);
        free(m);
        goto out;
    }
    {
        const struct dag_task *dt = dag_task(d, ti);
        static const char sql[] =
            "WITH r AS (SELECT * FROM jsonb_to_recordset($5::jsonb) AS x(role text, role_index int,"
            "  container_name text, spec jsonb))"
            ", ins AS (INSERT INTO t_task (job_id, task_id, role, role_index, task_name, component,"
            "  provider, version, spec, status, container_name)"
            "  SELECT $1, $2, r.role, r.role_index, $3, $4, $6, $7, r.spec, 'READY', r.container_name"
            "  FROM r JOIN t_job j ON j.job_id = $1 AND j.role = r.role"
            "  AND j.status NOT IN ('FINISHED','REJECTED')"
            "  ON CONFLICT (job_id, task_id, role, role_index) DO NOTHING"
            "  RETURNING role, role_index)"
            ", ev AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
            "  SELECT 'task', $1 || '/' || $2 || '/' || role || '.' || role_index, 'READY', 'api',"
            "  'task/start' FROM ins)"
            " SELECT role, role_index FROM ins";
        char *rj = json_print(rows);
        const char *p[7] = {t->job_id, t->task_id, t->task_name, dt->component, rj, dt->provider,
                            dt->version};
        route_db(req, sql, 7, p, on_tasks_inserted, t);
        cJSON_free(rj);
        cJSON_Delete(rows);
    }
out:
    free(callback);
    free(storage);
    free(logp);
    free(transport);
    dag_free(d);
}

void partner_task_start(struct gw_req *req)
{
    const char *job_id = NULL, *task_id = NULL, *task_name = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id) ||
        !route_get_id(req, "task_id", true, &task_id) || !route_get_id(req, "task_name", true, &task_name))
        return;
    struct tstart *t = gw_xcalloc(1, sizeof(*t));
    t->req = req;
    t->job_id = gw_xstrdup(job_id);
    t->task_id = gw_xstrdup(task_id);
    t->task_name = gw_xstrdup(task_name);
    req->ctx = t;
    req->ctx_free = tstart_free;
    static const char sql[] =
        "SELECT j.role, j.status, j.dag::text, j.config::text, c.description::text, p.image_digest,"
        " c.provider, c.version, p.image FROM t_job j"
        " LEFT JOIN LATERAL (SELECT x FROM jsonb_array_elements(j.dag->'components') x"
        "   WHERE x->>'name' = $2 LIMIT 1) comp ON true"
        " LEFT JOIN t_component c ON c.component_name = comp.x->>'componentName'"
        "   AND c.provider = comp.x->>'provider' AND c.version = comp.x->>'version'"
        " LEFT JOIN t_provider p ON p.name = c.provider AND p.version = c.version"
        "   AND p.device = c.device"
        " WHERE j.job_id = $1 ORDER BY j.role";
    const char *p[2] = {job_id, task_name};
    route_db(req, sql, 2, p, on_task_ctx, t);
}

/* ---- task/poll -------------------------------------------------------------- */

/* The answer from the poll query's row (status, error texts, the highest
 * non-zero exit code, the lowest exit code, log tail), cached or not. */
static void poll_answer(struct gw_req *req, const char *const *v)
{
    const char *st = v[0];
    cJSON *d = cJSON_CreateObject();
    json_add_str(d, "status", st);
    /* Our extension (ignored by other peers): why, for the scheduler's view. */
    if (strcmp(st, "SUCCESS") == 0 || strcmp(st, "FAILED") == 0) {
        json_add_str(d, "error_text", v[1]);
        const char *ec = v[2] ? v[2] : v[3];
        if (ec)
            json_add_int(d, "exit_code", atoll(ec));
        json_add_str(d, "log_tail", v[4]);
    }
    route_reply_ok(req, d);
}

struct poll_ctx {
    struct pollcache_ticket tk;
    char *task_id;
    char role[40];
    int idx;
};

static void poll_ctx_free(void *p)
{
    struct poll_ctx *pc = p;
    free(pc->task_id);
    free(pc);
}

static void on_polled(void *arg, int err, const struct db_res *res, const char *errmsg,
                      const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    if (!db_res_rows(res) || !db_res_get(res, 0, 0)) {
        route_reply_err(req, GW_ENOTFOUND, "task_id: no such task (for that role) on this node");
        return;
    }
    const char *v[POLLCACHE_NVALS];
    for (int i = 0; i < POLLCACHE_NVALS; i++)
        v[i] = db_res_get(res, 0, i);
    struct poll_ctx *pc = req->ctx;
    pollcache_put(req->app->pollcache, &pc->tk, pc->task_id, pc->role, pc->idx, v);
    poll_answer(req, v);
}

/* "guest", "guest.0" or "" -> role and index (-1 = any). */
static bool split_role(const char *in, char *role, size_t cap, int *idx)
{
    *idx = -1;
    const char *dot = strchr(in, '.');
    size_t n = dot ? (size_t)(dot - in) : strlen(in);
    if (n >= cap)
        return false;
    memcpy(role, in, n);
    role[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!((role[i] >= 'a' && role[i] <= 'z') || (role[i] >= '0' && role[i] <= '9') ||
              role[i] == '_'))
            return false;
    if (dot) {
        char *end;
        long v = strtol(dot + 1, &end, 10);
        if (!dot[1] || *end || v < 0 || v > 9999)
            return false;
        *idx = (int)v;
    }
    return true;
}

void partner_task_poll(struct gw_req *req)
{
    const char *task_id = NULL, *role_in = "";
    if (!route_params(req) || !route_get_id(req, "task_id", true, &task_id))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    char role[40];
    int idx;
    if (json_get_str(req->params, "role", false, 40, &role_in, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (!split_role(role_in, role, sizeof(role), &idx)) {
        route_reply_err(req, GW_EINVAL, "role: expected 'guest', 'guest.0' or empty");
        return;
    }
    struct pollcache_ticket tk;
    const char *const *hit =
        pollcache_get(req->app->pollcache, db_pool_listening(req->app->db), task_id, role, idx, &tk);
    if (hit) {
        poll_answer(req, hit);
        return;
    }
    struct poll_ctx *pc = gw_xcalloc(1, sizeof(*pc));
    pc->tk = tk;
    pc->task_id = gw_xstrdup(task_id);
    snprintf(pc->role, sizeof(pc->role), "%s", role);
    pc->idx = idx;
    req->ctx = pc;
    req->ctx_free = poll_ctx_free;
    char ix[12];
    snprintf(ix, sizeof(ix), "%d", idx);
    static const char sql[] =
        "SELECT bfia_task_agg(array_agg(status::text)),"
        " string_agg(NULLIF(error_text, ''), '; '), max(exit_code) FILTER (WHERE exit_code <> 0),"
        " min(exit_code), right(string_agg(NULLIF(log_tail, ''), E'\\n'), 2048)"
        " FROM t_task WHERE task_id = $1"
        " AND ($2 = '' OR role = $2) AND ($3::int < 0 OR role_index = $3::int)";
    const char *p[3] = {task_id, role, ix};
    route_db(req, sql, 3, p, on_polled, req);
}

/* ---- stop -------------------------------------------------------------------- */

/* Kill the containers of rows a stop statement set FAILED.  rows: job_id,
 * task_id, role, role_index, container_id */
static void kill_rows(struct gw_app *app, const struct db_res *res, int from)
{
    for (int i = from; i < db_res_rows(res); i++) {
        if (!db_res_get(res, i, 1))
            continue;
        struct runner_key k = {db_res_get(res, i, 0), db_res_get(res, i, 1), db_res_get(res, i, 2),
                               atoi(db_res_get(res, i, 3))};
        runner_kill(app->runner, &k, db_res_get(res, i, 4));
        partner_task_changed(app, k.job_id, k.task_id);
    }
}

static void on_stopped(void *arg, int err, const struct db_res *res, const char *errmsg,
                       const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    /* first row: the job's row count in column 0 (task_id NULL) */
    if (db_res_rows(res) == 0 || atoi(db_res_get(res, 0, 0)) == 0) {
        route_reply_err(req, GW_ENOTFOUND, "job_id: no such job on this node");
        return;
    }
    kill_rows(req->app, res, 1);
    route_reply_ok(req, NULL);
}

/*
 * job/stop.  Without task_name: every live task FAILED ("stopped"), the job
 * FINISHED.  With task_name: FATE-Flow's clean-up hazard (spec §2.2 (6)):
 * when the named task is already terminal here nothing else is touched;
 * otherwise that task and its downstream tasks are stopped, and the job
 * stays as it is (the scheduler decides the job's end).
 */
/* Every live task of the job here FAILED ("stopped"), the job FINISHED, in
 * one statement; rows as kill_rows wants them after a first count row. */
static const char stop_job_sql[] =
    "WITH u AS (UPDATE t_task SET status = 'FAILED', status_channel = 'api',"
    "  error_text = CASE WHEN error_text = '' THEN 'stopped: job stopped by ' || $2"
    "  ELSE error_text END, end_time = now(), status_updated_at = now()"
    "  WHERE job_id = $1 AND status IN ('PENDING','READY','RUNNING')"
    "  RETURNING job_id, task_id, role, role_index, container_id, status)"
    ", j AS (UPDATE t_job SET status = 'FINISHED', end_time = now(), updated_at = now()"
    "  WHERE job_id = $1 AND status NOT IN ('FINISHED','REJECTED') RETURNING role, status)"
    ", ev AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
    "  SELECT 'task', job_id || '/' || task_id || '/' || role || '.' || role_index,"
    "  'FAILED', 'api', 'job/stop by ' || $2 FROM u"
    "  UNION ALL SELECT 'job', $1 || '/' || role, 'FINISHED', 'api', 'job/stop by ' || $2"
    "  FROM j)"
    " SELECT (SELECT count(*) FROM t_job WHERE job_id = $1)::text, NULL, NULL, NULL, NULL"
    " UNION ALL SELECT job_id, task_id, role, role_index::text, container_id FROM u";

struct lstop {
    struct gw_app *app;
    partner_stopped_cb done;
    void *arg;
};

static void on_local_stopped(void *arg, int err, const struct db_res *res, const char *errmsg,
                             const char *sqlstate)
{
    (void)sqlstate;
    struct lstop *ls = arg;
    int n = 0;
    if (!err) {
        kill_rows(ls->app, res, 1);
        n = db_res_rows(res) - 1;
    }
    ls->done(ls->arg, err, err ? errmsg : "", n);
    free(ls);
}

int partner_stop_local(struct gw_app *app, const char *job_id, const char *who,
                       partner_stopped_cb done, void *arg)
{
    struct lstop *ls = gw_xcalloc(1, sizeof(*ls));
    ls->app = app;
    ls->done = done;
    ls->arg = arg;
    const char *p[2] = {job_id, who};
    int rc = db_query(app->db, stop_job_sql, 2, p, on_local_stopped, ls, NULL);
    if (rc != 0)
        free(ls);
    return rc;
}

void partner_job_stop(struct gw_req *req)
{
    const char *job_id = NULL, *task_name = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id) ||
        !route_get_id(req, "task_name", false, &task_name))
        return;
    const char *who = req->caller ? req->caller : "local";
    if (!task_name) {
        const char *p[2] = {job_id, who};
        route_db(req, stop_job_sql, 2, p, on_stopped, req);
        return;
    }
    /* One statement: the downstream closure is computed from the stored
     * DAG (input keys "<upstream>.<output>"). */
    static const char sql[] =
        "WITH RECURSIVE j AS (SELECT dag FROM t_job WHERE job_id = $1 LIMIT 1)"
        ", edges AS (SELECT c->>'name' AS task, split_part(i->>'key', '.', 1) AS up"
        "  FROM j, jsonb_array_elements(j.dag->'components') c,"
        "  jsonb_array_elements(coalesce(c->'input', '[]'::jsonb)) i)"
        ", live AS (SELECT count(*) AS n FROM t_task WHERE job_id = $1 AND task_name = $2"
        "  AND status IN ('PENDING','READY','RUNNING'))"
        ", down(task) AS (SELECT $2::text WHERE (SELECT n FROM live) > 0"
        "  UNION SELECT e.task FROM edges e JOIN down d ON e.up = d.task)"
        ", u AS (UPDATE t_task SET status = 'FAILED', status_channel = 'api',"
        "  error_text = CASE WHEN error_text = '' THEN 'stopped: task ' || $2 || ' stopped by ' || $3"
        "  ELSE error_text END, end_time = now(), status_updated_at = now()"
        "  WHERE job_id = $1 AND task_name IN (SELECT task FROM down)"
        "  AND status IN ('PENDING','READY','RUNNING')"
        "  RETURNING job_id, task_id, role, role_index, container_id)"
        ", ev AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'task', job_id || '/' || task_id || '/' || role || '.' || role_index,"
        "  'FAILED', 'api', 'job/stop ' || $2 || ' by ' || $3 FROM u)"
        " SELECT (SELECT count(*) FROM t_job WHERE job_id = $1)::text, NULL, NULL, NULL, NULL"
        " UNION ALL SELECT job_id, task_id, role, role_index::text, container_id FROM u";
    const char *p[3] = {job_id, task_name, who};
    route_db(req, sql, 3, p, on_stopped, req);
}

/* Kuscia's POST /v1/interconn/schedule/task/stop {task_id}. */
void partner_task_stop(struct gw_req *req)
{
    const char *task_id = NULL;
    if (!route_params(req) || !route_get_id(req, "task_id", true, &task_id))
        return;
    static const char sql[] =
        "WITH u AS (UPDATE t_task SET status = 'FAILED', status_channel = 'api',"
        "  error_text = CASE WHEN error_text = '' THEN 'stopped: task/stop by ' || $2"
        "  ELSE error_text END, end_time = now(), status_updated_at = now()"
        "  WHERE task_id = $1 AND status IN ('PENDING','READY','RUNNING')"
        "  RETURNING job_id, task_id, role, role_index, container_id)"
        ", ev AS (INSERT INTO t_event (entity, entity_id, to_status, channel, reason)"
        "  SELECT 'task', job_id || '/' || task_id || '/' || role || '.' || role_index,"
        "  'FAILED', 'api', 'task/stop by ' || $2 FROM u)"
        " SELECT (SELECT count(*) FROM t_task WHERE task_id = $1)::text, NULL, NULL, NULL, NULL"
        " UNION ALL SELECT job_id, task_id, role, role_index::text, container_id FROM u";
    const char *p[2] = {task_id, req->caller ? req->caller : "local"};
    route_db(req, sql, 2, p, on_stopped, req);
}

/* ---- container callback ------------------------------------------------------ */

static void on_cb_written(void *arg, int err, const struct db_res *res, const char *errmsg,
                          const char *sqlstate)
{
    (void)sqlstate;
    struct gw_req *req = arg;
    if (route_db_failed(req, err, errmsg))
        return;
    long long rows = atoll(db_res_get(res, 0, 0)), live = atoll(db_res_get(res, 0, 1));
    if (rows == 0) {
        route_reply_err(req, GW_ENOTFOUND, "task_id/role: no such task and role on this node");
        return;
    }
    if (live == 0) {
        route_reply_err(req, GW_ECONFLICT,
                        "task_id/role: the task is not running on this node (already finished)");
        return;
    }
    route_reply_ok(req, NULL);
}

struct authcb {
    struct gw_req *req;
    char *job_id, *task_id;
};

static void authcb_free(void *p)
{
    struct authcb *a = p;
    free(a->job_id);
    free(a->task_id);
    free(a);
}

static void on_authed_written(void *arg, int err, const struct db_res *res, const char *errmsg,
                              const char *sqlstate)
{
    (void)sqlstate;
    struct authcb *a = arg;
    struct gw_req *req = a->req;
    if (route_db_failed(req, err, errmsg))
        return;
    /* rows: matched (token of this row), changed, job_id */
    long long matched = atoll(db_res_get(res, 0, 0)), changed = atoll(db_res_get(res, 0, 1));
    if (matched == 0) {
        log_kv(LOG_LEVEL_WARN, &req->log, "attest.refused",
               "callback token is not the live token of that task and role", "task", a->task_id,
               NULL);
        route_reply_err(req, GW_EAUTH,
                        "Authorization: the launch token is not the current token of this task "
                        "and role (replayed, revoked or for another task)");
        return;
    }
    if (changed > 0 && db_res_get(res, 0, 2))
        partner_task_changed(req->app, db_res_get(res, 0, 2), a->task_id);
    route_reply_ok(req, NULL);
}

/* A callback carrying the container's launch token: verified against the
 * node key and bound to exactly this task, role and index and to the live
 * token id of its row; its status change is applied at once. */
static void authed_callback(struct gw_req *req, const char *task_id, const char *role, int idx,
                            const char *status, const char *token)
{
    char self_role[64];
    snprintf(self_role, sizeof(self_role), "%.40s.%d", role, idx);
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    char *jti = NULL;
    if (attest_verify_launch(req->app->attest, token, NULL, task_id, self_role,
                             (long long)time(NULL), &jti, &eb) != 0) {
        log_kv(LOG_LEVEL_WARN, &req->log, "attest.refused", "callback with a bad launch token",
               "task", task_id, "err", eb.msg, NULL);
        char *m = gw_xasprintf("Authorization: %s", eb.msg);
        route_reply_err(req, GW_EAUTH, m);
        free(m);
        return;
    }
    struct authcb *a = gw_xcalloc(1, sizeof(*a));
    a->req = req;
    a->task_id = gw_xstrdup(task_id);
    req->ctx = a;
    req->ctx_free = authcb_free;
    char ix[12];
    snprintf(ix, sizeof(ix), "%d", idx);
    static const char sql[] =
        "WITH m AS (SELECT job_id, status FROM t_task WHERE task_id = $1 AND role = $2"
        "  AND role_index = $3::int AND $5 IN (token_id, prev_token_id, env_token_id))"
        ", u AS (UPDATE t_task SET status = $4, status_channel = 'callback', claimed_status = $4,"
        "  end_time = CASE WHEN $4 IN ('SUCCESS','FAILED') THEN now() ELSE end_time END,"
        "  status_updated_at = now()"
        "  WHERE task_id = $1 AND role = $2 AND role_index = $3::int AND $5 IN (token_id, prev_token_id, env_token_id)"
        "  AND status = 'RUNNING' AND $4 IN ('SUCCESS','FAILED') RETURNING job_id)"
        ", ev AS (INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
        "  SELECT 'task', job_id || '/' || $1 || '/' || $2 || '.' || $3, 'RUNNING', $4, 'callback',"
        "  'container callback with a valid launch token' FROM u)"
        " SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM u), (SELECT job_id FROM m LIMIT 1)";
    const char *p[5] = {task_id, role, ix, status, jti};
    route_db(req, sql, 5, p, on_authed_written, a);
    free(jti);
}

/*
 * POST /v1/platform/schedule/task/callback {task_id, status, role} from a
 * container.  FATE and UnionPay images send no credential, so the claim is
 * never trusted on its own: it is stored in claimed_status and the exit
 * code decides (a SUCCESS claim followed by a non-zero exit stays FAILED; a
 * FAILED claim makes a zero exit FAILED).
 */
void partner_container_callback(struct gw_req *req)
{
    const char *task_id = NULL, *status = NULL, *role_in = "";
    if (!route_params(req) || !route_get_id(req, "task_id", true, &task_id))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "status", true, 16, &status, &eb) != 0 ||
        json_get_str(req->params, "role", false, 40, &role_in, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (strcmp(status, "RUNNING") && strcmp(status, "SUCCESS") && strcmp(status, "FAILED")) {
        route_reply_err(req, GW_EINVAL, "status: expected RUNNING, SUCCESS or FAILED");
        return;
    }
    char role[40];
    int idx;
    if (!split_role(role_in, role, sizeof(role), &idx)) {
        route_reply_err(req, GW_EINVAL, "role: expected 'guest', 'guest.0' or empty");
        return;
    }
    char ix[12];
    snprintf(ix, sizeof(ix), "%d", idx);
    const char *auth = server_req_header(req, "Authorization");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        authed_callback(req, task_id, role, idx < 0 ? 0 : idx, status, auth + 7);
        return;
    }
    static const char sql[] =
        "WITH m AS (SELECT job_id, task_id, role, role_index, status FROM t_task WHERE task_id = $1"
        "  AND ($2 = '' OR role = $2) AND ($3::int < 0 OR role_index = $3::int))"
        ", u AS (UPDATE t_task t SET claimed_status = $4, status_updated_at = now()"
        "  FROM m WHERE $4 <> 'RUNNING' AND t.job_id = m.job_id AND t.task_id = m.task_id"
        "  AND t.role = m.role AND t.role_index = m.role_index AND t.status = 'RUNNING'"
        "  RETURNING t.job_id)"
        ", ev AS (INSERT INTO t_event (entity, entity_id, from_status, to_status, channel, reason)"
        "  SELECT 'task', m.job_id || '/' || m.task_id || '/' || m.role || '.' || m.role_index,"
        "  m.status, m.status, 'callback', 'container claims ' || $4 || ' (held until exit code)'"
        "  FROM m WHERE m.status = 'RUNNING' AND $4 <> 'RUNNING')"
        " SELECT count(*), count(*) FILTER (WHERE status IN ('READY','RUNNING')) FROM m";
    const char *p[4] = {task_id, role, ix, status};
    route_db(req, sql, 4, p, on_cb_written, req);
}

/* ---- logs ---------------------------------------------------------------------- */

struct logreq {
    struct gw_req *req;
    bool count_only;
    long long start, length;
    char *text;
};

static void logreq_free(void *p)
{
    struct logreq *l = p;
    free(l->text);
    free(l);
}

static void logs_reply(struct logreq *l, const char *text)
{
    /* lines of text */
    long long nlines = 0;
    for (const char *c = text; *c; c++)
        if (*c == '\n')
            nlines++;
    if (*text && text[strlen(text) - 1] != '\n')
        nlines++;
    cJSON *d = cJSON_CreateObject();
    if (l->count_only) {
        json_add_int(d, "num", nlines);
    } else {
        const char *p = text;
        for (long long i = 0; i < l->start && *p; i++) {
            const char *nl = strchr(p, '\n');
            p = nl ? nl + 1 : p + strlen(p);
        }
        const char *e = p;
        for (long long i = 0; (l->length < 0 || i < l->length) && *e; i++) {
            const char *nl = strchr(e, '\n');
            e = nl ? nl + 1 : e + strlen(e);
        }
        char *s = gw_xstrndup(p, (size_t)(e - p));
        json_add_str(d, "data", s);
        free(s);
    }
    route_reply_ok(l->req, d);
}

static void on_live_logs(void *arg, const struct docker_result *r)
{
    struct logreq *l = arg;
    if (r->err == 0 && r->text) {
        char *s = gw_xstrndup(r->text, r->text_len);
        logs_reply(l, s);
        free(s);
        return;
    }
    logs_reply(l, l->text ? l->text : "");
}

static void on_log_rows(void *arg, int err, const struct db_res *res, const char *errmsg,
                        const char *sqlstate)
{
    (void)sqlstate;
    struct logreq *l = arg;
    if (route_db_failed(l->req, err, errmsg))
        return;
    if (db_res_rows(res) == 0) {
        route_reply_err(l->req, GW_ENOTFOUND, "task_id: no such task on this node");
        return;
    }
    /* rows: status, container_id, log_tail.  A running container's log is
     * read live; a finished one's from its row. */
    size_t cap = 1, len = 0;
    for (int i = 0; i < db_res_rows(res); i++)
        cap += strlen(db_res_get(res, i, 2) ? db_res_get(res, i, 2) : "") + 1;
    l->text = gw_xmalloc(cap);
    l->text[0] = '\0';
    const char *live = NULL;
    for (int i = 0; i < db_res_rows(res); i++) {
        const char *t = db_res_get(res, i, 2);
        if (t && *t) {
            len += (size_t)snprintf(l->text + len, cap - len, "%s", t);
            if (l->text[len - 1] != '\n' && len + 1 < cap)
                l->text[len++] = '\n', l->text[len] = '\0';
        }
        if (strcmp(db_res_get(res, i, 0), "RUNNING") == 0 && db_res_get(res, i, 1))
            live = db_res_get(res, i, 1);
    }
    if (live && docker_container_logs(l->req->app->docker, live, 10000, on_live_logs, l) == 0)
        return;
    logs_reply(l, l->text);
}

static void logs_common(struct gw_req *req, bool count_only)
{
    const char *task_id = NULL, *level = "info";
    if (!route_params(req) || !route_get_id(req, "task_id", true, &task_id))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    long long start = 0, length = -1;
    if (json_get_str(req->params, "log_level", false, 16, &level, &eb) != 0 ||
        (!count_only && json_get_int(req->params, "start", true, 0, 1LL << 40, &start, &eb) != 0) ||
        (!count_only && json_get_int(req->params, "length", false, 0, 1LL << 40, &length, &eb) != 0)) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    if (strcmp(level, "info") && strcmp(level, "debug") && strcmp(level, "error")) {
        route_reply_err(req, GW_EINVAL, "log_level: expected info, debug or error");
        return;
    }
    struct logreq *l = gw_xcalloc(1, sizeof(*l));
    l->req = req;
    l->count_only = count_only;
    l->start = start;
    l->length = length;
    req->ctx = l;
    req->ctx_free = logreq_free;
    static const char sql[] =
        "SELECT status, container_id, log_tail FROM t_task WHERE task_id = $1"
        " ORDER BY role, role_index";
    const char *p[1] = {task_id};
    route_db(req, sql, 1, p, on_log_rows, l);
}

void partner_get_log_line(struct gw_req *req)
{
    logs_common(req, true);
}

void partner_get_log(struct gw_req *req)
{
    logs_common(req, false);
}

/* ---- push to the scheduler (callback mode) ------------------------------------ */

struct push {
    struct gw_app *app;
    char *job_id, *task_id, *status; /* status: what this push carries */
};

static void push_free(struct push *ps)
{
    free(ps->job_id);
    free(ps->task_id);
    free(ps->status);
    free(ps);
}

static void on_push_recorded(void *arg, int err, const struct db_res *res, const char *errmsg,
                             const char *sqlstate)
{
    (void)arg;
    (void)res;
    (void)sqlstate;
    if (err)
        log_kv(LOG_LEVEL_WARN, NULL, "task.push", "cannot record the push outcome", "err", errmsg,
               NULL);
}

/* The scheduler's answer: 0 (or FATE-Flow's 1 for a repeat) is an
 * acknowledgement, recorded so the sweep stops pushing that status; anything
 * else is kept as the reason and the sweep pushes again. */
static void on_pushed(void *arg, const struct peer_resp *r)
{
    struct push *ps = arg;
    bool acked = !r->err && (r->code == 0 || r->code == 1);
    char why[400];
    if (!acked) {
        snprintf(why, sizeof(why), "%s%.300s", r->err ? "" : "refused: ", r->msg ? r->msg : "");
        log_kv(LOG_LEVEL_WARN, NULL, "task.push",
               "status push to the scheduler failed; pushing again later", "node", r->node, "task",
               ps->task_id, "err", why, NULL);
    }
    static const char ack_sql[] =
        "INSERT INTO t_task_push (job_id, task_id, acked_status) VALUES ($1, $2, $3)"
        " ON CONFLICT (job_id, task_id) DO UPDATE SET acked_status = $3, last_error = '',"
        " updated_at = now()";
    static const char err_sql[] =
        "INSERT INTO t_task_push (job_id, task_id, last_error) VALUES ($1, $2, $3)"
        " ON CONFLICT (job_id, task_id) DO UPDATE SET last_error = $3, updated_at = now()";
    const char *p[3] = {ps->job_id, ps->task_id, acked ? ps->status : why};
    if (db_query(ps->app->db, acked ? ack_sql : err_sql, 3, p, on_push_recorded, NULL, NULL) != 0)
        log_kv(LOG_LEVEL_WARN, NULL, "task.push", "cannot record the push outcome", NULL);
    push_free(ps);
}

static void on_agg(void *arg, int err, const struct db_res *res, const char *errmsg,
                   const char *sqlstate)
{
    (void)sqlstate;
    struct push *ps = arg;
    if (err || db_res_rows(res) == 0) {
        if (err)
            log_kv(LOG_LEVEL_WARN, NULL, "task.push", "cannot read the task status", "err", errmsg,
                   NULL);
        push_free(ps);
        return;
    }
    /* rows: scheduler, sync_type, task_id, aggregate status, roles */
    const char *sched = db_res_get(res, 0, 0), *sync = db_res_get(res, 0, 1);
    const char *st = db_res_get(res, 0, 3);
    /* pushed: every change to RUNNING, SUCCESS or FAILED (spec §4) */
    if (strcmp(sync, "callback") != 0 || !st ||
        (strcmp(st, "RUNNING") && strcmp(st, "SUCCESS") && strcmp(st, "FAILED"))) {
        push_free(ps);
        return;
    }
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "task_id", db_res_get(res, 0, 2));
    json_add_str(b, "status", st);
    json_add_str(b, "role", db_res_get(res, 0, 4));
    if (strcmp(st, "SUCCESS") == 0 || strcmp(st, "FAILED") == 0) {
        json_add_str(b, "error_text", db_res_get(res, 0, 5));
        if (db_res_get(res, 0, 6))
            json_add_int(b, "exit_code", atoll(db_res_get(res, 0, 6)));
        json_add_str(b, "log_tail", db_res_get(res, 0, 7));
    }
    ps->status = gw_xstrdup(st);
    if (peer_call(ps->app, sched, "POST", "/v1/interconn/schedule/task/callback", b, -1,
                  on_pushed, ps, NULL) != 0) {
        log_kv(LOG_LEVEL_WARN, NULL, "task.push", "no route to the scheduler", "node", sched,
               NULL);
        push_free(ps);
    }
    cJSON_Delete(b);
}

/* ---- the push sweep -------------------------------------------------------------
 * Every sched.push_retry_s: push again every task of a callback-mode job
 * whose aggregate status (RUNNING, SUCCESS or FAILED) the scheduler has not
 * acknowledged, once its last change is a few seconds old (the first push
 * had its chance).  Jobs changed in the last day only. */

static void push_sweep_arm(struct gw_app *app)
{
    struct timeval tv = {app->cfg->sched_push_retry_s, 0};
    evtimer_add(app->push_timer, &tv);
}

static void on_push_rows(void *arg, int err, const struct db_res *res, const char *errmsg,
                         const char *sqlstate)
{
    (void)sqlstate;
    struct gw_app *app = arg;
    if (err)
        log_kv(LOG_LEVEL_WARN, NULL, "task.push", "cannot read unacknowledged pushes", "err",
               errmsg, NULL);
    for (int i = 0; !err && i < db_res_rows(res); i++)
        partner_task_changed(app, db_res_get(res, i, 0), db_res_get(res, i, 1));
    push_sweep_arm(app);
}

static void on_push_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_app *app = arg;
    static const char sql[] =
        "SELECT t.job_id, t.task_id FROM t_task t"
        " JOIN t_job j ON j.job_id = t.job_id AND j.role = t.role AND j.sync_type = 'callback'"
        " LEFT JOIN t_task_push p ON p.job_id = t.job_id AND p.task_id = t.task_id"
        " WHERE t.status_updated_at > now() - interval '1 day'"
        " GROUP BY t.job_id, t.task_id, p.acked_status"
        " HAVING max(t.status_updated_at) < now() - interval '3 seconds'"
        "  AND bfia_task_agg(array_agg(t.status::text)) IN ('RUNNING', 'SUCCESS', 'FAILED')"
        "  AND bfia_task_agg(array_agg(t.status::text)) IS DISTINCT FROM p.acked_status"
        " LIMIT 200";
    if (db_query(app->db, sql, 0, NULL, on_push_rows, app, NULL) != 0)
        push_sweep_arm(app);
}

void partner_start(struct gw_app *app)
{
    if (app->push_timer)
        return;
    app->push_timer = evtimer_new(app->base, on_push_sweep, app);
    if (app->push_timer)
        push_sweep_arm(app);
}

void partner_stop(struct gw_app *app)
{
    if (app->push_timer)
        event_free(app->push_timer);
    app->push_timer = NULL;
}

void partner_task_changed(struct gw_app *app, const char *job_id, const char *task_id)
{
    /* The NOTIFY of this commit is on its way too; forgetting now means our
     * own next poll answer already shows the change. */
    pollcache_forget(app->pollcache, task_id);
    struct push *ps = gw_xcalloc(1, sizeof(*ps));
    ps->app = app;
    ps->job_id = gw_xstrdup(job_id);
    ps->task_id = gw_xstrdup(task_id);
    static const char sql[] =
        "SELECT j.scheduler, j.sync_type, t.task_id, bfia_task_agg(array_agg(t.status::text)),"
        " string_agg(DISTINCT t.role, ','), string_agg(NULLIF(t.error_text, ''), '; '),"
        " coalesce(max(t.exit_code) FILTER (WHERE t.exit_code <> 0), min(t.exit_code)),"
        " right(string_agg(NULLIF(t.log_tail, ''), E'\\n'), 2048) FROM t_task t"
        " JOIN t_job j ON j.job_id = t.job_id AND j.role = t.role"
        " WHERE t.job_id = $1 AND t.task_id = $2 GROUP BY j.scheduler, j.sync_type, t.task_id"
        " LIMIT 1";
    const char *p[2] = {job_id, task_id};
    if (db_query(app->db, sql, 2, p, on_agg, ps, NULL) != 0)
        push_free(ps);
}

/* POST /v1/platform/schedule/job/stop_task {job_id, task_name}: stop that
 * task (and its downstream tasks) on this node; the scheduler sees the
 * FAILED task through its poll or the callback and ends the job. */
void platform_stop_task(struct gw_req *req)
{
    const char *task_name = NULL;
    if (!route_params(req) || !route_get_id(req, "task_name", true, &task_name))
        return;
    partner_job_stop(req);
}
