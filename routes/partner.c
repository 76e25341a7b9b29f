/*
 * partner.c - the partner (participant) endpoints of the control layer and
 * the node-local task endpoints.  Thin: parameters are read and checked
 * here, the work is scheduler/partner.c's.
 *
 *   POST /v1/interconn/schedule/job/create   partner_job_create
 *   POST /v1/interconn/schedule/job/start    partner_job_start
 *   POST /v1/interconn/schedule/task/start   partner_task_start
 *   POST /v1/interconn/schedule/task/poll    aggregate status (cached, scheduler/pollcache.h)
 *   POST /v1/interconn/schedule/job/stop     stop all, or one task and its downstream
 *   POST /v1/interconn/schedule/task/stop    Kuscia's per-task stop
 *   POST /v1/platform/schedule/task/callback a container reports its status
 *   POST /v1/platform/schedule/job/stop_task this node's task and its downstream
 *   GET  /v1/platform/schedule/task/get_log_line, get_log
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/db.h"
#include "gateway/json.h"
#include "route.h"
#include "scheduler/dag.h"
#include "scheduler/partner.h"
#include "scheduler/pollcache.h"
#include "scheduler/store.h"

/* The partner's answer, as the envelope. */
static void on_reply(void *arg, const struct sched_reply *r)
{
    struct gw_req *req = arg;
    cJSON *d = r->data ? cJSON_Duplicate(r->data, true) : NULL;
    if (r->err)
        route_reply_err_data(req, r->err, r->msg, d);
    else
        route_reply_ok(req, d);
}

static void started(struct gw_req *req, int rc, const struct gw_errbuf *eb)
{
    if (rc != 0)
        route_reply_err(req, rc, eb->msg);
}

static const char *who(const struct gw_req *req)
{
    return req->caller ? req->caller : "local";
}

void partner_ep_job_create(struct gw_req *req)
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
    struct partner_create_in in = {.job_id = job_id,
                                   .flow_id = flow,
                                   .scheduler = sched,
                                   .dag = d,
                                   .caller = req->caller};
    started(req, partner_job_create(req->app->partner, &in, &eb, on_reply, req), &eb);
}

void partner_ep_job_start(struct gw_req *req)
{
    const char *job_id = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    started(req, partner_job_start(req->app->partner, job_id, req->caller, &eb, on_reply, req),
            &eb);
}

void partner_ep_task_start(struct gw_req *req)
{
    const char *job_id = NULL, *task_id = NULL, *task_name = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id) ||
        !route_get_id(req, "task_id", true, &task_id) ||
        !route_get_id(req, "task_name", true, &task_name))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    started(req,
            partner_task_start(req->app->partner, job_id, task_id, task_name, &eb, on_reply, req),
            &eb);
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

/* ---- task/poll: the hottest read, answered from memory when it can ---------------- */

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

static void on_polled(void *arg, const struct db_rows *r)
{
    struct gw_req *req = arg;
    if (route_db_failed(req, r->err, r->msg))
        return;
    if (!r->n || !db_rows_get(r, 0, 0)) {
        route_reply_err(req, GW_ENOTFOUND, "task_id: no such task (for that role) on this node");
        return;
    }
    const char *v[POLLCACHE_NVALS];
    for (int i = 0; i < POLLCACHE_NVALS; i++)
        v[i] = db_rows_get(r, 0, i);
    struct poll_ctx *pc = req->ctx;
    pollcache_put(req->app->pollcache, &pc->tk, pc->task_id, pc->role, pc->idx, v);
    poll_answer(req, v);
}

void partner_ep_task_poll(struct gw_req *req)
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
    route_store_started(req, store_task_poll(req->app->store, task_id, role, idx, on_polled, req));
}

/* ---- stop -------------------------------------------------------------------- */

void partner_ep_job_stop(struct gw_req *req)
{
    const char *job_id = NULL, *task_name = NULL;
    if (!route_params(req) || !route_get_id(req, "job_id", true, &job_id) ||
        !route_get_id(req, "task_name", false, &task_name))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    started(req,
            partner_job_stop(req->app->partner, job_id, task_name, who(req), &eb, on_reply, req),
            &eb);
}

/* POST /v1/platform/schedule/job/stop_task {job_id, task_name}: stop that
 * task (and its downstream tasks) on this node; the scheduler sees the
 * FAILED task through its poll or the callback and ends the job. */
void platform_stop_task(struct gw_req *req)
{
    const char *task_name = NULL;
    if (!route_params(req) || !route_get_id(req, "task_name", true, &task_name))
        return;
    partner_ep_job_stop(req);
}

/* Kuscia's POST /v1/interconn/schedule/task/stop {task_id}. */
void partner_ep_task_stop(struct gw_req *req)
{
    const char *task_id = NULL;
    if (!route_params(req) || !route_get_id(req, "task_id", true, &task_id))
        return;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    started(req, partner_task_stop(req->app->partner, task_id, who(req), &eb, on_reply, req),
            &eb);
}

/* ---- container callback ------------------------------------------------------ */

/*
 * POST /v1/platform/schedule/task/callback {task_id, status, role} from a
 * container, with Authorization: Bearer <launch token> or without (see
 * partner_container_callback).
 */
void partner_ep_container_callback(struct gw_req *req)
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
    struct partner_callback_in in = {.task_id = task_id};
    if (!task_state_parse(status, &in.status) ||
        (in.status != TASK_STATE_RUNNING && !task_state_is_terminal(in.status))) {
        route_reply_err(req, GW_EINVAL, "status: expected RUNNING, SUCCESS or FAILED");
        return;
    }
    char role[40];
    if (!split_role(role_in, role, sizeof(role), &in.role_index)) {
        route_reply_err(req, GW_EINVAL, "role: expected 'guest', 'guest.0' or empty");
        return;
    }
    in.role = role;
    const char *auth = server_req_header(req, "Authorization");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
        in.token = auth + 7;
    started(req, partner_container_callback(req->app->partner, &in, &eb, on_reply, req), &eb);
}

/* ---- logs ---------------------------------------------------------------------- */

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
    started(req,
            partner_task_log(req->app->partner, task_id, count_only, start, length, &eb, on_reply,
                             req),
            &eb);
}

void partner_get_log_line(struct gw_req *req)
{
    logs_common(req, true);
}

void partner_get_log(struct gw_req *req)
{
    logs_common(req, false);
}
