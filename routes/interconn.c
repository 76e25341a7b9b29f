/*
 * interconn.c - the job endpoints of the scheduler side (interconn) and of
 * this node's platform API.  Thin: each handler reads and checks its
 * parameters, calls the scheduler (scheduler/sched.h) or a store read
 * (scheduler/store.h), and turns the outcome into the BFIA envelope.
 *
 *   POST /v1/interconn/schedule/job/create_all     sched_create
 *   POST /v1/interconn/schedule/job/stop_all       sched_stop
 *   GET|POST /v1/interconn/schedule/job/status_all keyed by task name
 *   POST /v1/interconn/schedule/task/callback      sched_callback
 *   POST /v1/interconn/schedule/job/audit_confirm  sched_audit
 *   POST /v1/platform/schedule/job/create_all      sched_submit
 *   POST /v1/platform/schedule/job/stop_all        here, or via the scheduler
 *   GET|POST /v1/platform/schedule/job/status_all  with the detail of every party
 *   GET|POST /v1/platform/schedule/job/query_job_list
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "gateway/peer.h"
#include "route.h"
#include "scheduler/dag.h"
#include "scheduler/partner.h"
#include "scheduler/sched.h"
#include "scheduler/store.h"

#define ID_MAX 128

/* The scheduler's answer to a request, as the envelope. */
static void on_sched_reply(void *arg, const struct sched_reply *r)
{
    struct gw_req *req = arg;
    cJSON *d = r->data ? cJSON_Duplicate(r->data, true) : NULL;
    if (r->code >= 0)
        route_reply(req, r->code, r->msg ? r->msg : "", d);
    else if (r->err)
        route_reply_err_data(req, r->err, r->msg, d);
    else
        route_reply_ok(req, d);
}

/* A request the scheduler refused before starting it. */
static void refused_at_once(struct gw_req *req, int rc, const struct gw_errbuf *eb)
{
    route_reply_err(req, rc, eb->msg);
}

/* config.job_params.common: require_approval and timeout_s. */
static int common_params(const struct dag *d, bool *approval, struct gw_errbuf *eb)
{
    const cJSON *common = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(dag_config(d), "job_params"), "common");
    struct gw_errbuf e2;
    gw_errbuf_clear(&e2);
    if (json_get_bool(common, "require_approval", false, approval, &e2) != 0)
        return gw_errf(eb, GW_EINVAL, "config.job_params.common.%s", e2.msg);
    const cJSON *tmo = cJSON_GetObjectItemCaseSensitive(common, "timeout_s");
    if (tmo && (!cJSON_IsNumber(tmo) || tmo->valuedouble < 1 || tmo->valuedouble > 86400.0 * 365 ||
                tmo->valuedouble != (double)(long long)tmo->valuedouble))
        return gw_errf(eb, GW_EINVAL, "config.job_params.common.timeout_s: expected whole "
                                      "seconds as a number, 1 to 31536000");
    return 0;
}

/* ---- interconn: create_all ------------------------------------------------------- */

void interconn_job_create_all(struct gw_req *req)
{
    const char *job_id = NULL, *flow = "", *old = "";
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "flow_id", false, 128, &flow, &eb) != 0 ||
        json_get_str(req->params, "old_job_id", false, 128, &old, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    struct dag *d = dag_parse(req->params, &eb);
    if (!d) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    bool approval = false;
    if (common_params(d, &approval, &eb) != 0) {
        dag_free(d);
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    struct sched_create_in in = {.job_id = job_id,
                                 .flow_id = flow,
                                 .old_job_id = old,
                                 .dag = d,
                                 .approval = approval,
                                 .caller = req->caller};
    int rc = sched_create(req->app->sched, &in, &eb, on_sched_reply, req);
    if (rc != 0)
        refused_at_once(req, rc, &eb);
}

/* ---- platform: create_all ---------------------------------------------------------- */

void platform_job_create_all(struct gw_req *req)
{
    if (!route_params(req))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    const char *flow = "", *old = "";
    if (json_get_str(req->params, "flow_id", false, 128, &flow, &eb) != 0 ||
        json_get_str(req->params, "old_job_id", false, 128, &old, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    struct dag *d = dag_parse(req->params, &eb);
    if (!d) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    int rc = sched_submit(req->app->sched, d, flow, old, &eb, on_sched_reply, req);
    if (rc != 0)
        refused_at_once(req, rc, &eb);
}

/* ---- stop_all ------------------------------------------------------------------------ */

void interconn_job_stop_all(struct gw_req *req)
{
    const char *job_id = NULL, *task_name = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id) ||
        !route_get_id(req, "task_name", false, &task_name))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    int rc = sched_stop(req->app->sched, job_id, task_name, req->caller, &eb, on_sched_reply, req);
    if (rc != 0)
        refused_at_once(req, rc, &eb);
}

/* Platform stop_all on a node that is a partner of the job: its tasks stop
 * here first (as FATE-Flow does, so the stop holds even when the scheduler
 * cannot be told now), then the scheduler is told. */
struct pstop {
    struct gw_req *req;
    char *job_id;
    char *sched;
    int stopped;
};

static void pstop_free(void *p)
{
    struct pstop *f = p;
    free(f->job_id);
    free(f->sched);
    free(f);
}

static void on_stop_told(void *arg, const struct peer_resp *r)
{
    struct pstop *f = arg;
    cJSON *d = cJSON_CreateObject();
    json_add_str(d, "job_id", f->job_id);
    json_add_int(d, "stopped_here", f->stopped);
    json_add_str(d, "scheduler", f->sched);
    if (r->err || r->code != 0) {
        char m[600];
        snprintf(m, sizeof(m), "%s: %.400s", r->err ? "not reached" : "refused",
                 r->msg ? r->msg : "");
        json_add_str(d, "scheduler_error", m);
        route_reply(f->req, ROUTE_CODE_OK,
                    "stopped on this node; the scheduler was not told (it sees the stopped "
                    "tasks at its next poll)", d);
        return;
    }
    route_reply_ok(f->req, d);
}

static void on_stopped_here(void *arg, int err, const char *msg, int stopped)
{
    struct pstop *f = arg;
    (void)msg;
    if (err) {
        route_reply_err(f->req, GW_EDB, "database error (the node's log has the detail)");
        return;
    }
    f->stopped = stopped;
    struct gw_app *app = f->req->app;
    /* Kuscia serves no stop_all; its job/stop stops the whole job. */
    bool kus = peers_profile(app->peers, f->sched) == PEER_KUSCIA;
    cJSON *b = kus ? cJSON_CreateObject() : cJSON_Duplicate(f->req->params, true);
    if (kus)
        json_add_str(b, "job_id", f->job_id);
    if (peer_call(app, f->sched, "POST",
                  kus ? "/v1/interconn/schedule/job/stop" : "/v1/interconn/schedule/job/stop_all",
                  b, -1, on_stop_told, f, NULL) != 0) {
        struct peer_resp r = {.err = GW_EPEER, .msg = "no route to the node", .node = f->sched};
        on_stop_told(f, &r);
    }
    cJSON_Delete(b);
}

static void on_sched_of(void *arg, const struct db_rows *r)
{
    struct gw_req *req = arg;
    struct pstop *f = req->ctx;
    if (route_db_failed(req, r->err, r->msg))
        return;
    if (r->n == 0) {
        route_reply_err(req, GW_ENOTFOUND, "job_id: no such job on this node");
        return;
    }
    const char *sched = db_rows_get(r, 0, 0);
    if (sched && strcmp(sched, req->app->cfg->node_id) != 0) {
        f->sched = gw_xstrdup(sched);
        if (partner_stop_local(req->app->partner, f->job_id, "the platform", on_stopped_here, f) != 0)
            route_reply_err(req, GW_EBUSY, "database busy; retry");
        return;
    }
    /* this node schedules the job */
    const char *task_name = NULL;
    if (json_get_id(req->params, "task_name", false, ID_MAX, &task_name, NULL) != 0)
        task_name = NULL; /* checked by platform_job_stop_all already */
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    int rc = sched_stop(req->app->sched, f->job_id, task_name, NULL, &eb, on_sched_reply, req);
    if (rc != 0)
        refused_at_once(req, rc, &eb);
}

void platform_job_stop_all(struct gw_req *req)
{
    const char *job_id = NULL, *task_name = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id) ||
        !route_get_id(req, "task_name", false, &task_name))
        return;
    struct pstop *f = gw_xcalloc(1, sizeof(*f));
    f->req = req;
    f->job_id = gw_xstrdup(job_id);
    req->ctx = f;
    req->ctx_free = pstop_free;
    route_store_started(req, store_scheduler_of(req->app->store, job_id, on_sched_of, req));
}

/* ---- status ---------------------------------------------------------------------- */

static void on_status_all(void *arg, const struct db_rows *r)
{
    struct gw_req *req = arg;
    if (route_db_failed(req, r->err, r->msg))
        return;
    if (r->n == 0) {
        route_reply_err(req, GW_ENOTFOUND, "job_id: this node schedules no such job");
        return;
    }
    cJSON *data = cJSON_CreateObject();
    const char *by_name = db_rows_get(r, 0, 1);
    if (peers_profile(req->app->peers, req->caller) == PEER_KUSCIA) {
        /* Kuscia reads every object member of data as {task_id: status}
         * and stops at the first non-object: send only the map. */
        cJSON_AddItemToObject(data, "status", cJSON_Parse(db_rows_get(r, 0, 2)));
    } else {
        json_add_str(data, "job_status", db_rows_get(r, 0, 0));
        cJSON_AddItemToObject(data, "status", cJSON_Parse(by_name ? by_name : "{}"));
    }
    route_reply_ok(req, data);
}

/* Interconn status_all: GET or POST, job_id in query or body; status keyed
 * by task_name (FATE-Flow and the east-west view). */
void interconn_job_status_all(struct gw_req *req)
{
    const char *job_id = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id))
        return;
    route_store_started(req, store_sjob_status(req->app->store, job_id, on_status_all, req));
}

static void on_detail(void *arg, const struct db_rows *r)
{
    struct gw_req *req = arg;
    if (route_db_failed(req, r->err, r->msg))
        return;
    const char *doc = r->n ? db_rows_get(r, 0, 0) : NULL;
    if (!doc) {
        route_reply_err(req, GW_ENOTFOUND, "job_id: no such job on this node");
        return;
    }
    route_reply_ok(req, cJSON_Parse(doc));
}

/*
 * Platform status_all: the standard's data.job_status and data.status
 * {task_id: status}, plus the detail of "one place to see why": outcome,
 * progress, wait reason, and per task and party the status, the channel
 * that reported it, wait reason, error text, exit code and log tail.  On a
 * node that does not schedule the job, the local rows answer.
 */
void platform_job_status_all(struct gw_req *req)
{
    const char *job_id = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id))
        return;
    route_store_started(req, store_job_detail(req->app->store, job_id, on_detail, req));
}

/* ---- callback from a partner --------------------------------------------------- */

void interconn_task_callback(struct gw_req *req)
{
    const char *task_id = NULL, *status = NULL, *role = "";
    if (!route_params(req) || !route_get_id(req, "task_id", true, &task_id))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "status", true, 16, &status, &eb) != 0 ||
        json_get_str(req->params, "role", false, 64, &role, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    struct sched_callback_in in = {.task_id = task_id, .node = req->caller};
    if (!task_state_parse(status, &in.status)) {
        route_reply_err(req, GW_EINVAL,
                        "status: expected PENDING, READY, RUNNING, SUCCESS or FAILED");
        return;
    }
    if (!req->caller) {
        route_reply_err(req, GW_EINVAL,
                        "x-node-id: the calling node's id is required (x-node-id, x_node_id or "
                        "x-source-node-id)");
        return;
    }
    const cJSON *et = cJSON_GetObjectItemCaseSensitive(req->params, "error_text");
    const cJSON *ec = cJSON_GetObjectItemCaseSensitive(req->params, "exit_code");
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(req->params, "log_tail");
    char ecs[24];
    snprintf(ecs, sizeof(ecs), "%d", cJSON_IsNumber(ec) ? ec->valueint : 0);
    in.error_text = cJSON_IsString(et) ? et->valuestring : NULL;
    in.exit_code = cJSON_IsNumber(ec) ? ecs : NULL;
    in.log_tail = cJSON_IsString(lt) ? lt->valuestring : NULL;
    int rc = sched_callback(req->app->sched, &in, &eb, on_sched_reply, req);
    if (rc != 0)
        refused_at_once(req, rc, &eb);
}

/* ---- audit_confirm ----------------------------------------------------------------- */

void interconn_job_audit_confirm(struct gw_req *req)
{
    const char *job_id = NULL, *status = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "status", true, 16, &status, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    int rc = sched_audit(req->app->sched, job_id, status, req->caller, &eb, on_sched_reply, req);
    if (rc != 0)
        refused_at_once(req, rc, &eb);
}

/* ---- query_job_list ------------------------------------------------------------- */

static void on_job_list(void *arg, const struct db_rows *r)
{
    struct gw_req *req = arg;
    if (route_db_failed(req, r->err, r->msg))
        return;
    cJSON *data = cJSON_CreateObject();
    cJSON *jl = cJSON_AddObjectToObject(data, "job_list");
    for (int i = 0; i < r->n; i++)
        json_add_str(jl, db_rows_get(r, i, 0), db_rows_get(r, i, 1));
    route_reply_ok(req, data);
}

void platform_job_list(struct gw_req *req)
{
    const char *flow = NULL;
    if (!route_params(req))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    if (json_get_str(req->params, "flow_id", false, 128, &flow, &eb) != 0) {
        route_reply_err(req, GW_EINVAL, eb.msg);
        return;
    }
    route_store_started(req, store_job_list(req->app->store, flow, on_job_list, req));
}
