/*
 * partner.c - the partner side of jobs.  See partner.h.
 *
 * Every write is one statement in store.c (a compare-and-set plus its
 * t_event rows), so a repeated call changes nothing and answers success.
 * A request object (struct preq) lives from the call to its one answer;
 * the calls it makes carry it and nothing else, so its lifetime is the
 * request's.
 */
#include "partner.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "container/attest.h"
#include "container/chan.h"
#include "container/runner.h"
#include "container/taskenv.h"
#include "gateway/cfg.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "scheduler/dag.h"
#include "scheduler/outputs.h"
#include "scheduler/pollcache.h"
#include "scheduler/store.h"

struct partner {
    struct partner_env env;
    struct event *push_timer;
};

#define ST(p) ((p)->env.store)
#define STX(p) ((p)->env.store_ctx)

static const struct gw_cfg *cfg_of(const struct partner *p)
{
    return *p->env.cfg;
}

static const char *self_id(const struct partner *p)
{
    return cfg_of(p)->node_id;
}

struct partner *partner_new(const struct partner_env *env)
{
    struct partner *p = gw_xcalloc(1, sizeof(*p));
    p->env = *env;
    return p;
}

void partner_free(struct partner *p)
{
    if (!p)
        return;
    partner_stop(p);
    free(p);
}

/* ---- requests ------------------------------------------------------------------ */

struct preq {
    struct partner *p;
    sched_reply_cb cb;
    void *arg;
    char *job_id, *task_id, *task_name;
    struct dag *d;
    /* log reads */
    bool count_only;
    long long start, length;
    char *text;
};

static struct preq *preq_new(struct partner *p, sched_reply_cb cb, void *arg)
{
    struct preq *q = gw_xcalloc(1, sizeof(*q));
    q->p = p;
    q->cb = cb;
    q->arg = arg;
    return q;
}

static void preq_free(struct preq *q)
{
    free(q->job_id);
    free(q->task_id);
    free(q->task_name);
    dag_free(q->d);
    free(q->text);
    free(q);
}

static void preq_done(struct preq *q, int err, const char *msg, const cJSON *data)
{
    struct sched_reply r = {.err = err, .code = -1, .msg = msg, .data = data};
    q->cb(q->arg, &r);
    preq_free(q);
}

static int start_failed(struct preq *q, int rc, struct gw_errbuf *eb)
{
    preq_free(q);
    return gw_errf(eb, rc == GW_EBUSY ? GW_EBUSY : GW_EDB,
                   rc == GW_EBUSY ? "database wait queue is full; retry later"
                                  : "database unavailable");
}

static bool db_failed(struct preq *q, int err, const char *msg, const char *what)
{
    if (!err)
        return false;
    log_kv(LOG_LEVEL_WARN, NULL, "partner.db", what, "err", msg ? msg : "", NULL);
    preq_done(q, err == GW_ETIMEOUT ? GW_ETIMEOUT : GW_EDB,
              err == GW_ETIMEOUT ? "database query timed out"
                                 : "database error (the node's log has the detail)",
              NULL);
    return true;
}

/* ---- job/create ------------------------------------------------------------- */

static void on_job_created(void *arg, const struct db_rows *r)
{
    struct preq *q = arg;
    if (db_failed(q, r->err, r->msg, "cannot store job/create"))
        return;
    const char *missing = r->n ? db_rows_get(r, 0, 1) : NULL;
    const char *old = r->n ? db_rows_get(r, 0, 2) : NULL;
    const char *now = r->n ? db_rows_get(r, 0, 3) : NULL;
    if (missing && *missing) {
        char *m = gw_xasprintf("dag.components: not registered on node %s: %s",
                               self_id(q->p), missing);
        preq_done(q, GW_ENOTFOUND, m, NULL);
        free(m);
        return;
    }
    if (old && now && strcmp(old, now) != 0) {
        /* A second job/create may only repeat the first (a retry after a
         * lost reply): a different DAG, config or set of roles would
         * redirect a job this node already accepted. */
        char *m = gw_xasprintf("job_id: job %s already exists on this node with another DAG, "
                               "config, roles or scheduler; a job is created once",
                               q->job_id);
        preq_done(q, GW_ECONFLICT, m, NULL);
        free(m);
        return;
    }
    preq_done(q, 0, "success", NULL);
}

int partner_job_create(struct partner *p, struct partner_create_in *in, struct gw_errbuf *eb,
                       sched_reply_cb cb, void *arg)
{
    struct dag *d = in->dag;
    in->dag = NULL;
    const char *me = self_id(p);
    cJSON *roles = dag_local_roles(d, me);
    if (cJSON_GetArraySize(roles) == 0) {
        int rc = gw_errf(eb, GW_EINVAL, "config.role: node %s is not a party of job %s", me,
                         in->job_id);
        cJSON_Delete(roles);
        dag_free(d);
        return rc;
    }
    /* this node's resource policy, for each (role, index) it plays */
    const cJSON *r;
    cJSON_ArrayForEach(r, roles)
    {
        int idxs[64];
        int ni = dag_role_indexes(d, r->valuestring, me, idxs, 64);
        for (int k = 0; k < ni; k++) {
            double c, m;
            if (partner_resources(cfg_of(p), dag_config(d), r->valuestring, idxs[k], &c, &m,
                                  eb) != 0) {
                cJSON_Delete(roles);
                dag_free(d);
                return GW_EINVAL;
            }
        }
    }
    struct preq *q = preq_new(p, cb, arg);
    q->job_id = gw_xstrdup(in->job_id);
    q->d = d;
    const char *sched = in->scheduler ? in->scheduler : dag_initiator(d);
    char *rj = json_print(roles), *dj = json_print(dag_json(d)), *cj = json_print(dag_config(d));
    struct job_new n = {.job_id = in->job_id,
                        .flow_id = in->flow_id ? in->flow_id : "",
                        .dag = dj,
                        .config = cj,
                        .initiator = dag_initiator(d),
                        .scheduler = sched, /* FATE-Flow: the initiator is the scheduler */
                        .sync_type = dag_sync_type(d),
                        .roles = rj,
                        .by = in->caller ? in->caller : "local"};
    int rc = ST(p)->job_create(STX(p), &n, on_job_created, q);
    cJSON_free(rj);
    cJSON_free(dj);
    cJSON_free(cj);
    cJSON_Delete(roles);
    return rc ? start_failed(q, rc, eb) : 0;
}

/* ---- job/start -------------------------------------------------------------- */

static void on_job_started(void *arg, const struct db_rows *r)
{
    struct preq *q = arg;
    if (db_failed(q, r->err, r->msg, "cannot start the job"))
        return;
    long long total = atoll(db_rows_get(r, 0, 0)), finished = atoll(db_rows_get(r, 0, 1));
    if (total == 0)
        preq_done(q, GW_ENOTFOUND, "job_id: no such job on this node", NULL);
    else if (finished == total)
        preq_done(q, GW_ECONFLICT, "job_id: the job has already finished on this node", NULL);
    else
        preq_done(q, 0, "success", NULL);
}

int partner_job_start(struct partner *p, const char *job_id, const char *caller,
                      struct gw_errbuf *eb, sched_reply_cb cb, void *arg)
{
    struct preq *q = preq_new(p, cb, arg);
    int rc = ST(p)->job_start(STX(p), job_id, caller ? caller : "local", on_job_started, q);
    return rc ? start_failed(q, rc, eb) : 0;
}

/* ---- task/start -------------------------------------------------------------- */

static void on_tasks_inserted(void *arg, const struct db_rows *r)
{
    struct preq *q = arg;
    if (db_failed(q, r->err, r->msg, "cannot store the task rows"))
        return;
    /* rows: role, role_index of every READY row of the task */
    for (int i = 0; i < r->n; i++) {
        struct runner_key k = {q->job_id, q->task_id, db_rows_get(r, i, 0),
                               atoi(db_rows_get(r, i, 1))};
        q->p->env.tasks->launch(q->p->env.tasks_ctx, &k);
    }
    preq_done(q, 0, "success", NULL);
}

/*
 * The resources of a task container: this node's policy (task.* keys), not
 * the job's wish.  job_params.<role>.<idx>.resources {cpu: cores, memory:
 * GiB, or memory_mb: MiB}: -1 or absent takes the default, anything else
 * must be a number within the bounds.  0, or GW_EINVAL with eb naming the
 * field; *nano_cpus and *mem_bytes get the values to launch with.
 */
int partner_resources(const struct gw_cfg *cfg, const cJSON *config, const char *role, int idx,
                      double *nano_cpus, double *mem_bytes, struct gw_errbuf *eb)
{
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(config, "job_params");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(
        dag_index_entry(cJSON_GetObjectItemCaseSensitive(jp, role), idx), "resources");
    double cpu_m = cfg->task_cpu_milli_default, mem_mb = cfg->task_memory_mb_default;
    if (res && !cJSON_IsObject(res) && !cJSON_IsNull(res))
        return gw_errf(eb, GW_EINVAL, "config.job_params.%.32s.%d.resources: expected an object",
                       role, idx);
    static const struct {
        const char *key;
        double scale; /* to milli-cores or MiB */
        bool cpu;
    } fields[] = {{"cpu", 1000.0, true}, {"memory", 1024.0, false}, {"memory_mb", 1.0, false}};
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(res, fields[f].key);
        if (!v || cJSON_IsNull(v))
            continue;
        double lo = fields[f].cpu ? cfg->task_cpu_milli_min : cfg->task_memory_mb_min;
        double hi = fields[f].cpu ? cfg->task_cpu_milli_max : cfg->task_memory_mb_max;
        if (!cJSON_IsNumber(v) || (v->valuedouble != -1 && (v->valuedouble * fields[f].scale < lo ||
                                                          v->valuedouble * fields[f].scale > hi)))
            return gw_errf(eb, GW_EINVAL,
                           "config.job_params.%.32s.%d.resources.%s: expected -1 (this node's "
                           "default) or a number from %g to %g (this node's policy)",
                           role, idx, fields[f].key, lo / fields[f].scale, hi / fields[f].scale);
        if (v->valuedouble == -1)
            continue;
        if (fields[f].cpu)
            cpu_m = v->valuedouble * fields[f].scale;
        else
            mem_mb = v->valuedouble * fields[f].scale;
    }
    *nano_cpus = cpu_m * 1e6;
    *mem_bytes = mem_mb * 1024.0 * 1024.0;
    return 0;
}

static void add_limits(cJSON *spec, double nano_cpus, double mem_bytes)
{
    cJSON_AddNumberToObject(spec, "nano_cpus", nano_cpus);
    cJSON_AddNumberToObject(spec, "memory_bytes", mem_bytes);
}

/* The launch spec of one (role, index): environment, image, limits. */
static cJSON *launch_spec(struct partner *p, struct preq *q, const struct dag *d, int ti,
                          const cJSON *desc, const char *role, int idx, const struct db_rows *r,
                          struct gw_errbuf *eb)
{
    const struct gw_cfg *cfg = cfg_of(p);
    cJSON *nodes = dag_task_nodes(d, desc);
    cJSON *prm = dag_task_params(d, ti, role, idx);
    cJSON *in = NULL, *out = NULL, *spec = NULL;
    char *callback = gw_xasprintf("http://%s:%d/v1/platform/schedule/task/callback",
                                  cfg->callback_host, cfg->http_port);
    char *storage = gw_xasprintf("file://%s", p->env.storage_dir);
    char *logp = gw_xasprintf("%s/logs/%s", p->env.storage_dir, q->job_id);
    char *transport = chan_advertise(cfg);
    /* the transport (container/chan.h): the task's capability, a trace id
     * every party shares */
    char *chan_tok =
        p->env.chan ? chan_task_token(p->env.chan, q->job_id, q->task_id, role, idx) : NULL;
    char *trace = gw_xasprintf("trace_%s", q->task_id);
    double nano_cpus, mem_bytes;
    if (partner_resources(cfg, dag_config(d), role, idx, &nano_cpus, &mem_bytes, eb) != 0 ||
        dag_task_io(d, ti, desc, role, idx, q->job_id, &in, &out, eb) != 0)
        goto out;
    struct taskenv_in ti_in = {
        .job_id = q->job_id,
        .task_id = q->task_id,
        .component = dag_task(d, ti)->component,
        .self_role = role,
        .self_index = idx,
        .nodes = nodes,
        .params = prm,
        .inputs = in,
        .outputs = out,
        .storage = storage,
        .callback = callback,
        .log_path = logp,
        .transport = transport,
        .token = chan_tok,
        .trace_id = trace,
    };
    struct taskenv env = {0};
    if (taskenv_build(&ti_in, &env, eb) != 0)
        goto out;
    spec = cJSON_CreateObject();
    cJSON *ea = cJSON_AddArrayToObject(spec, "env");
    for (size_t v = 0; v < env.n; v++)
        cJSON_AddItemToArray(ea, cJSON_CreateString(env.vars[v]));
    taskenv_cleanup(&env);
    json_add_str(spec, "image_digest", db_rows_get(r, 0, 5));
    json_add_str(spec, "image", db_rows_get(r, 0, 8));
    json_add_str(spec, "task_name", q->task_name);
    json_add_str(spec, "component", dag_task(d, ti)->component);
    json_add_str(spec, "provider", db_rows_get(r, 0, 6));
    json_add_str(spec, "version", db_rows_get(r, 0, 7));
    json_add_str(spec, "storage_dir", p->env.storage_dir);
    cJSON_AddNumberToObject(spec, "attempt", 0);
    add_limits(spec, nano_cpus, mem_bytes);
out:
    cJSON_Delete(nodes);
    cJSON_Delete(prm);
    cJSON_Delete(in);
    cJSON_Delete(out);
    free(callback);
    free(storage);
    free(logp);
    free(transport);
    free(chan_tok);
    free(trace);
    return spec;
}

static void on_task_ctx(void *arg, const struct db_rows *r)
{
    struct preq *q = arg;
    struct partner *p = q->p;
    if (db_failed(q, r->err, r->msg, "cannot read the task context"))
        return;
    /* rows: role, status, dag, config, description, image_digest, provider,
     * version, image, scheduler */
    if (r->n == 0) {
        preq_done(q, GW_ENOTFOUND, "job_id: no such job on this node", NULL);
        return;
    }
    /* Tasks run only in a job that was approved and started here (job/start
     * from its scheduler), and each task of the DAG runs once: a task name
     * already started under another task id is refused. */
    bool any_live = false, started = false;
    for (int i = 0; i < r->n; i++) {
        enum job_state js;
        if (job_state_parse(db_rows_get(r, i, 1), &js)) {
            any_live |= !job_state_is_terminal(js);
            started |= js == JOB_STATE_RUNNING;
        }
    }
    if (!any_live) {
        preq_done(q, GW_ECONFLICT, "job_id: the job has finished on this node", NULL);
        return;
    }
    if (!started) {
        preq_done(q, GW_ECONFLICT,
                  "job_id: the job has not been started on this node (job/start comes first)",
                  NULL);
        return;
    }
    const char *prior = db_rows_get(r, 0, 10);
    if (prior && strcmp(prior, q->task_id) != 0) {
        char m[400];
        snprintf(m, sizeof(m), "task_name: %.128s already started on this node as task %.128s",
                 q->task_name, prior);
        preq_done(q, GW_ECONFLICT, m, NULL);
        return;
    }
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    cJSON *dagdoc = cJSON_CreateObject();
    cJSON_AddItemToObject(dagdoc, "dag", cJSON_Parse(db_rows_get(r, 0, 2)));
    cJSON_AddItemToObject(dagdoc, "config", cJSON_Parse(db_rows_get(r, 0, 3)));
    struct dag *d = dag_parse(dagdoc, &eb);
    cJSON_Delete(dagdoc);
    if (!d) {
        preq_done(q, GW_EINTERNAL, "the stored job no longer parses", NULL);
        return;
    }
    char m[600];
    int ti = dag_find(d, q->task_name);
    const char *desc_s = db_rows_get(r, 0, 4), *digest = db_rows_get(r, 0, 5);
    if (ti < 0) {
        snprintf(m, sizeof(m), "task_name: '%.128s' is not a component of job %.128s",
                 q->task_name, q->job_id);
        preq_done(q, GW_ENOTFOUND, m, NULL);
        dag_free(d);
        return;
    }
    if (!desc_s || !digest) {
        const struct dag_task *dt = dag_task(d, ti);
        snprintf(m, sizeof(m), "task_name: component %.100s/%.100s@%.40s is not registered on "
                               "node %.64s",
                 dt->provider, dt->component, dt->version, self_id(p));
        preq_done(q, GW_ENOTFOUND, m, NULL);
        dag_free(d);
        return;
    }
    cJSON *desc = cJSON_Parse(desc_s);
    cJSON *rows = cJSON_CreateArray();
    const char *me = self_id(p);
    int err = 0;
    /* One row per (local role, index) that runs this component. */
    for (int i = 0; i < r->n && !err; i++) {
        const char *role = db_rows_get(r, i, 0);
        if (!dag_role_runs(desc, role))
            continue;
        int idxs[16];
        int ni = dag_role_indexes(d, role, me, idxs, 16);
        for (int k = 0; k < ni && !err; k++) {
            cJSON *spec = launch_spec(p, q, d, ti, desc, role, idxs[k], r, &eb);
            if (!spec) {
                err = GW_EINVAL;
                break;
            }
            cJSON *row = cJSON_CreateObject();
            json_add_str(row, "role", role);
            json_add_int(row, "role_index", idxs[k]);
            char *cname = runner_container_name(role, me, q->task_id, 0);
            json_add_str(row, "container_name", cname);
            free(cname);
            cJSON_AddItemToObject(row, "spec", spec);
            cJSON_AddItemToArray(rows, row);
        }
    }
    cJSON_Delete(desc);
    if (err || cJSON_GetArraySize(rows) == 0) {
        cJSON_Delete(rows);
        if (err) {
            preq_done(q, GW_EINVAL, eb.msg, NULL);
        } else {
            snprintf(m, sizeof(m), "task_name: node %.64s plays no role in task %.128s", me,
                     q->task_name);
            preq_done(q, GW_ECONFLICT, m, NULL);
        }
        dag_free(d);
        return;
    }
    const struct dag_task *dt = dag_task(d, ti);
    char *rj = json_print(rows);
    int rc = ST(p)->task_insert(STX(p), q->job_id, q->task_id, q->task_name, dt->component,
                               dt->provider, dt->version, rj, on_tasks_inserted, q);
    cJSON_free(rj);
    cJSON_Delete(rows);
    dag_free(d);
    if (rc != 0)
        preq_done(q, rc == GW_EBUSY ? GW_EBUSY : GW_EDB, "database busy; retry", NULL);
}

int partner_task_start(struct partner *p, const char *job_id, const char *task_id,
                       const char *task_name, struct gw_errbuf *eb, sched_reply_cb cb, void *arg)
{
    struct preq *q = preq_new(p, cb, arg);
    q->job_id = gw_xstrdup(job_id);
    q->task_id = gw_xstrdup(task_id);
    q->task_name = gw_xstrdup(task_name);
    int rc = ST(p)->task_context(STX(p), job_id, task_name, on_task_ctx, q);
    return rc ? start_failed(q, rc, eb) : 0;
}

/* ---- stop -------------------------------------------------------------------- */

/* Kill the containers of rows a stop set FAILED, and tell whoever cares. */
static int kill_rows(struct partner *p, const struct db_rows *r)
{
    int n = 0;
    for (int i = 1; i < r->n; i++) {
        const char *old = db_rows_get(r, i, 5), *nw = db_rows_get(r, i, 6);
        if (!db_rows_get(r, i, 1) || (old && nw && strcmp(old, nw) == 0))
            continue;
        struct runner_key k = {db_rows_get(r, i, 0), db_rows_get(r, i, 1), db_rows_get(r, i, 2),
                               atoi(db_rows_get(r, i, 3))};
        p->env.tasks->kill(p->env.tasks_ctx, &k, db_rows_get(r, i, 4));
        partner_task_changed(p, k.job_id, k.task_id);
        n++;
    }
    return n;
}

static void on_stopped(void *arg, const struct db_rows *r)
{
    struct preq *q = arg;
    if (db_failed(q, r->err, r->msg, "cannot stop"))
        return;
    /* summary row: job rows (or, by task id, rows selected) */
    long long known = r->n ? atoll(db_rows_get(r, 0, q->task_id ? 1 : 0)) : 0;
    if (known == 0) {
        preq_done(q, GW_ENOTFOUND,
                  q->task_id ? "task_id: no such task on this node"
                             : "job_id: no such job on this node",
                  NULL);
        return;
    }
    kill_rows(q->p, r);
    preq_done(q, 0, "success", NULL);
}

int partner_job_stop(struct partner *p, const char *job_id, const char *task_name,
                     const char *who, struct gw_errbuf *eb, sched_reply_cb cb, void *arg)
{
    char *reason = task_name ? gw_xasprintf("job/stop %s by %s", task_name, who)
                             : gw_xasprintf("job/stop by %s", who);
    char *error = task_name ? gw_xasprintf("stopped: task %s stopped by %s", task_name, who)
                            : gw_xasprintf("stopped: job stopped by %s", who);
    /* With task_name: FATE-Flow's clean-up hazard (spec §2.2 (6)): when the
     * named task is already terminal here nothing else is touched;
     * otherwise that task and its downstream tasks stop, and the job stays
     * as it is (the scheduler decides the job's end). */
    struct task_change c = {.sel = task_name ? TASK_SEL_DOWN : TASK_SEL_JOB,
                            .job_id = job_id,
                            .task_name = task_name,
                            .to = TASK_STATE_FAILED,
                            .channel = STATE_CHANNEL_API,
                            .reason = reason,
                            .error_text = error,
                            .finish_job = !task_name};
    struct preq *q = preq_new(p, cb, arg);
    int rc = ST(p)->task_set(STX(p), &c, on_stopped, q);
    free(reason);
    free(error);
    return rc ? start_failed(q, rc, eb) : 0;
}

int partner_task_stop(struct partner *p, const char *task_id, const char *who,
                      struct gw_errbuf *eb, sched_reply_cb cb, void *arg)
{
    char *reason = gw_xasprintf("task/stop by %s", who);
    char *error = gw_xasprintf("stopped: task/stop by %s", who);
    struct task_change c = {.sel = TASK_SEL_TASK,
                            .task_id = task_id,
                            .role = "",
                            .role_index = -1,
                            .to = TASK_STATE_FAILED,
                            .channel = STATE_CHANNEL_API,
                            .reason = reason,
                            .error_text = error};
    struct preq *q = preq_new(p, cb, arg);
    q->task_id = gw_xstrdup(task_id);
    int rc = ST(p)->task_set(STX(p), &c, on_stopped, q);
    free(reason);
    free(error);
    return rc ? start_failed(q, rc, eb) : 0;
}

struct lstop {
    struct partner *p;
    partner_stopped_cb done;
    void *arg;
};

static void on_local_stopped(void *arg, const struct db_rows *r)
{
    struct lstop *ls = arg;
    int n = r->err ? 0 : kill_rows(ls->p, r);
    ls->done(ls->arg, r->err, r->err ? r->msg : "", n);
    free(ls);
}

int partner_stop_local(struct partner *p, const char *job_id, const char *who,
                       partner_stopped_cb done, void *arg)
{
    char *reason = gw_xasprintf("job/stop by %s", who);
    char *error = gw_xasprintf("stopped: job stopped by %s", who);
    struct task_change c = {.sel = TASK_SEL_JOB,
                            .job_id = job_id,
                            .to = TASK_STATE_FAILED,
                            .channel = STATE_CHANNEL_API,
                            .reason = reason,
                            .error_text = error,
                            .finish_job = true};
    struct lstop *ls = gw_xcalloc(1, sizeof(*ls));
    ls->p = p;
    ls->done = done;
    ls->arg = arg;
    int rc = ST(p)->task_set(STX(p), &c, on_local_stopped, ls);
    if (rc != 0)
        free(ls);
    free(reason);
    free(error);
    return rc;
}

/* ---- container callback ------------------------------------------------------ */

static void on_claim_written(void *arg, const struct db_rows *r)
{
    struct preq *q = arg;
    if (db_failed(q, r->err, r->msg, "cannot record a callback"))
        return;
    long long rows = atoll(db_rows_get(r, 0, 0)), live = atoll(db_rows_get(r, 0, 1));
    if (rows == 0)
        preq_done(q, GW_ENOTFOUND, "task_id/role: no such task and role on this node", NULL);
    else if (live == 0)
        preq_done(q, GW_ECONFLICT,
                  "task_id/role: the task is not running on this node (already finished)", NULL);
    else
        preq_done(q, 0, "success", NULL);
}

static void on_authed_written(void *arg, const struct db_rows *r)
{
    struct preq *q = arg;
    if (db_failed(q, r->err, r->msg, "cannot record a callback"))
        return;
    long long matched = atoll(db_rows_get(r, 0, 1)), moved = atoll(db_rows_get(r, 0, 2));
    if (matched == 0) {
        log_kv(LOG_LEVEL_WARN, NULL, "attest.refused",
               "callback token is not the live token of that task and role", "task", q->task_id,
               NULL);
        preq_done(q, GW_EAUTH,
                  "Authorization: the launch token is not the current token of this task and "
                  "role (replayed, revoked or for another task)",
                  NULL);
        return;
    }
    if (moved > 0 && r->n > 1)
        partner_task_changed(q->p, db_rows_get(r, 1, 0), q->task_id);
    preq_done(q, 0, "success", NULL);
}

/*
 * A container reports its status.  FATE and UnionPay images send no
 * credential, so such a claim is never trusted on its own: it is stored in
 * claimed_status and the exit code decides (a SUCCESS claim followed by a
 * non-zero exit stays FAILED; a FAILED claim makes a zero exit FAILED).  A
 * callback carrying the container's launch token, verified against the
 * node key and bound to exactly this task, role and index and to the live
 * token id of its row, is applied at once.
 */
int partner_container_callback(struct partner *p, const struct partner_callback_in *in,
                               struct gw_errbuf *eb, sched_reply_cb cb, void *arg)
{
    struct preq *q = preq_new(p, cb, arg);
    q->task_id = gw_xstrdup(in->task_id);
    int rc;
    if (!in->token) {
        rc = ST(p)->task_claim(STX(p), in->task_id, in->role, in->role_index, in->status,
                              on_claim_written, q);
        return rc ? start_failed(q, rc, eb) : 0;
    }
    int idx = in->role_index < 0 ? 0 : in->role_index;
    char self_role[64];
    snprintf(self_role, sizeof(self_role), "%.40s.%d", in->role, idx);
    char *jti = NULL;
    if (attest_verify_launch(p->env.attest, in->token, NULL, in->task_id, self_role,
                             (long long)time(NULL), &jti, eb) != 0) {
        log_kv(LOG_LEVEL_WARN, NULL, "attest.refused", "callback with a bad launch token", "task",
               in->task_id, "err", eb->msg, NULL);
        char m[sizeof(eb->msg)];
        snprintf(m, sizeof(m), "Authorization: %.400s", eb->msg);
        snprintf(eb->msg, sizeof(eb->msg), "%s", m);
        preq_free(q);
        return GW_EAUTH;
    }
    /* RUNNING moves nothing (the row is RUNNING once the token exists) but
     * still proves the token is the row's. */
    struct task_change c = {.sel = TASK_SEL_TASK,
                            .task_id = in->task_id,
                            .role = in->role,
                            .role_index = idx,
                            .to = in->status,
                            .channel = STATE_CHANNEL_CALLBACK,
                            .reason = "container callback with a valid launch token",
                            .token_jti = jti,
                            .claim = in->status != TASK_STATE_RUNNING};
    rc = ST(p)->task_set(STX(p), &c, on_authed_written, q);
    free(jti);
    return rc ? start_failed(q, rc, eb) : 0;
}

/* ---- logs ---------------------------------------------------------------------- */

static void logs_reply(struct preq *q, const char *text)
{
    long long nlines = 0;
    for (const char *c = text; *c; c++)
        if (*c == '\n')
            nlines++;
    if (*text && text[strlen(text) - 1] != '\n')
        nlines++;
    cJSON *d = cJSON_CreateObject();
    if (q->count_only) {
        json_add_int(d, "num", nlines);
    } else {
        const char *s = text;
        for (long long i = 0; i < q->start && *s; i++) {
            const char *nl = strchr(s, '\n');
            s = nl ? nl + 1 : s + strlen(s);
        }
        const char *e = s;
        for (long long i = 0; (q->length < 0 || i < q->length) && *e; i++) {
            const char *nl = strchr(e, '\n');
            e = nl ? nl + 1 : e + strlen(e);
        }
        char *t = gw_xstrndup(s, (size_t)(e - s));
        json_add_str(d, "data", t);
        free(t);
    }
    preq_done(q, 0, "success", d);
    cJSON_Delete(d);
}

static void on_live_logs(void *arg, int err, const char *text, size_t len)
{
    struct preq *q = arg;
    if (err == 0 && text) {
        char *s = gw_xstrndup(text, len);
        logs_reply(q, s);
        free(s);
        return;
    }
    char *t = q->text ? gw_xstrdup(q->text) : gw_xstrdup("");
    logs_reply(q, t);
    free(t);
}

static void on_log_rows(void *arg, const struct db_rows *r)
{
    struct preq *q = arg;
    if (db_failed(q, r->err, r->msg, "cannot read the logs"))
        return;
    if (r->n == 0) {
        preq_done(q, GW_ENOTFOUND, "task_id: no such task on this node", NULL);
        return;
    }
    /* rows: status, container_id, log_tail.  A running container's log is
     * read live; a finished one's from its row. */
    size_t cap = 1, len = 0;
    for (int i = 0; i < r->n; i++)
        cap += strlen(db_rows_get(r, i, 2) ? db_rows_get(r, i, 2) : "") + 1;
    q->text = gw_xmalloc(cap);
    q->text[0] = '\0';
    const char *live = NULL;
    for (int i = 0; i < r->n; i++) {
        const char *t = db_rows_get(r, i, 2);
        if (t && *t) {
            len += (size_t)snprintf(q->text + len, cap - len, "%s", t);
            if (q->text[len - 1] != '\n' && len + 1 < cap)
                q->text[len++] = '\n', q->text[len] = '\0';
        }
        if (strcmp(db_rows_get(r, i, 0), "RUNNING") == 0 && db_rows_get(r, i, 1))
            live = db_rows_get(r, i, 1);
    }
    if (live && q->p->env.tasks->logs(q->p->env.tasks_ctx, live, 10000, on_live_logs, q) == 0)
        return;
    char *t = gw_xstrdup(q->text);
    logs_reply(q, t);
    free(t);
}

int partner_task_log(struct partner *p, const char *task_id, bool count_only, long long start,
                     long long length, struct gw_errbuf *eb, sched_reply_cb cb, void *arg)
{
    struct preq *q = preq_new(p, cb, arg);
    q->count_only = count_only;
    q->start = start;
    q->length = length;
    int rc = ST(p)->task_logs(STX(p), task_id, on_log_rows, q);
    return rc ? start_failed(q, rc, eb) : 0;
}

/* ---- push to the scheduler (callback mode) ------------------------------------ */

struct push {
    struct partner *p;
    char *job_id, *task_id, *status; /* status: what this push carries */
};

static void push_free(struct push *ps)
{
    free(ps->job_id);
    free(ps->task_id);
    free(ps->status);
    free(ps);
}

static void on_push_recorded(void *arg, const struct store_change *r)
{
    (void)arg;
    if (r->err)
        log_kv(LOG_LEVEL_WARN, NULL, "task.push", "cannot record the push outcome", "err", r->msg,
               NULL);
}

/* The scheduler's answer: 0 (or FATE-Flow's 1 for a repeat) is an
 * acknowledgement, recorded so the sweep stops pushing that status; anything
 * else is kept as the reason and the sweep pushes again. */
static void on_pushed(void *arg, const struct peer_resp *r)
{
    struct push *ps = arg;
    bool acked = !r->err && (r->code == 0 || r->code == 1);
    char why[400] = ""; /* the error, when not acknowledged */
    if (!acked) {
        snprintf(why, sizeof(why), "%s%.300s", r->err ? "" : "refused: ", r->msg ? r->msg : "");
        log_kv(LOG_LEVEL_WARN, NULL, "task.push",
               "status push to the scheduler failed; pushing again later", "node", r->node, "task",
               ps->task_id, "err", why, NULL);
    }
    if (ST(ps->p)->push_record(STX(ps->p), ps->job_id, ps->task_id, acked ? ps->status : NULL,
                          why, on_push_recorded, NULL) != 0)
        log_kv(LOG_LEVEL_WARN, NULL, "task.push", "cannot record the push outcome", NULL);
    push_free(ps);
}

static void on_agg(void *arg, const struct db_rows *r)
{
    struct push *ps = arg;
    if (r->err || r->n == 0) {
        if (r->err)
            log_kv(LOG_LEVEL_WARN, NULL, "task.push", "cannot read the task status", "err",
                   r->msg, NULL);
        push_free(ps);
        return;
    }
    /* rows: scheduler, sync_type, task_id, aggregate status, roles, errors,
     * exit code, log tail */
    const char *sched = db_rows_get(r, 0, 0), *sync = db_rows_get(r, 0, 1);
    const char *st = db_rows_get(r, 0, 3);
    enum task_state ts;
    /* pushed: every change to RUNNING, SUCCESS or FAILED (spec §4) */
    if (strcmp(sync, "callback") != 0 || !task_state_parse(st, &ts) ||
        (ts != TASK_STATE_RUNNING && !task_state_is_terminal(ts))) {
        push_free(ps);
        return;
    }
    cJSON *b = cJSON_CreateObject();
    json_add_str(b, "task_id", db_rows_get(r, 0, 2));
    json_add_str(b, "status", st);
    json_add_str(b, "role", db_rows_get(r, 0, 4));
    if (task_state_is_terminal(ts)) {
        json_add_str(b, "error_text", db_rows_get(r, 0, 5));
        if (db_rows_get(r, 0, 6))
            json_add_int(b, "exit_code", atoll(db_rows_get(r, 0, 6)));
        json_add_str(b, "log_tail", db_rows_get(r, 0, 7));
    }
    ps->status = gw_xstrdup(st);
    struct partner *p = ps->p;
    if (p->env.peer->call(p->env.peer_ctx, sched, "POST", "/v1/interconn/schedule/task/callback",
                          b, -1, on_pushed, ps) != 0) {
        log_kv(LOG_LEVEL_WARN, NULL, "task.push", "no route to the scheduler", "node", sched,
               NULL);
        push_free(ps);
    }
    cJSON_Delete(b);
}

void partner_task_changed(struct partner *p, const char *job_id, const char *task_id)
{
    /* The NOTIFY of this commit is on its way too; forgetting now means our
     * own next poll answer already shows the change. */
    if (p->env.pollcache)
        pollcache_forget(p->env.pollcache, task_id);
    if (p->env.outputs)
        outputs_task_changed(p->env.outputs, job_id, task_id);
    struct push *ps = gw_xcalloc(1, sizeof(*ps));
    ps->p = p;
    ps->job_id = gw_xstrdup(job_id);
    ps->task_id = gw_xstrdup(task_id);
    if (ST(p)->push_state(STX(p), job_id, task_id, on_agg, ps) != 0)
        push_free(ps);
}

/* Every sched.push_retry_s: push again what the scheduler has not
 * acknowledged (store_push_pending says which). */
static void push_sweep_arm(struct partner *p)
{
    struct timeval tv = {cfg_of(p)->sched_push_retry_s, 0};
    evtimer_add(p->push_timer, &tv);
}

static void on_push_rows(void *arg, const struct db_rows *r)
{
    struct partner *p = arg;
    if (r->err)
        log_kv(LOG_LEVEL_WARN, NULL, "task.push", "cannot read unacknowledged pushes", "err",
               r->msg, NULL);
    for (int i = 0; !r->err && i < r->n; i++)
        partner_task_changed(p, db_rows_get(r, i, 0), db_rows_get(r, i, 1));
    if (p->push_timer)
        push_sweep_arm(p);
}

static void on_push_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct partner *p = arg;
    if (ST(p)->push_pending(STX(p), cfg_of(p)->sched_sweep_window_s, cfg_of(p)->sched_sweep_limit,
                            on_push_rows, p) != 0)
        push_sweep_arm(p);
}

void partner_start(struct partner *p)
{
    if (p->push_timer)
        return;
    p->push_timer = evtimer_new(p->env.base, on_push_sweep, p);
    if (p->push_timer)
        push_sweep_arm(p);
}

void partner_stop(struct partner *p)
{
    if (p->push_timer)
        event_free(p->push_timer);
    p->push_timer = NULL;
}

/* ---- the production store table -------------------------------------------- */

static int op_job_create(void *ctx, const struct job_new *n, db_rows_cb cb, void *arg)
{
    return store_job_create(ctx, n, cb, arg);
}
static int op_job_start(void *ctx, const char *job_id, const char *by, db_rows_cb cb, void *arg)
{
    return store_job_start(ctx, job_id, by, cb, arg);
}
static int op_task_context(void *ctx, const char *job_id, const char *task_name, db_rows_cb cb,
                           void *arg)
{
    return store_task_context(ctx, job_id, task_name, cb, arg);
}
static int op_task_insert(void *ctx, const char *job_id, const char *task_id,
                          const char *task_name, const char *component, const char *provider,
                          const char *version, const char *rows_json, db_rows_cb cb, void *arg)
{
    return store_task_insert(ctx, job_id, task_id, task_name, component, provider, version,
                             rows_json, cb, arg);
}
static int op_task_set(void *ctx, const struct task_change *c, db_rows_cb cb, void *arg)
{
    return store_task_set(ctx, c, cb, arg);
}
static int op_task_claim(void *ctx, const char *task_id, const char *role, int role_index,
                         enum task_state status, db_rows_cb cb, void *arg)
{
    return store_task_claim(ctx, task_id, role, role_index, status, cb, arg);
}
static int op_task_logs(void *ctx, const char *task_id, db_rows_cb cb, void *arg)
{
    return store_task_logs(ctx, task_id, cb, arg);
}
static int op_push_state(void *ctx, const char *job_id, const char *task_id, db_rows_cb cb,
                         void *arg)
{
    return store_push_state(ctx, job_id, task_id, cb, arg);
}
static int op_push_record(void *ctx, const char *job_id, const char *task_id,
                          const char *acked_status, const char *error, store_change_cb cb,
                          void *arg)
{
    return store_push_record(ctx, job_id, task_id, acked_status, error, cb, arg);
}
static int op_push_pending(void *ctx, int window_s, int limit, db_rows_cb cb, void *arg)
{
    return store_push_pending(ctx, window_s, limit, cb, arg);
}

const struct partner_store_ops store_partner_ops = {
    .job_create = op_job_create,
    .job_start = op_job_start,
    .task_context = op_task_context,
    .task_insert = op_task_insert,
    .task_set = op_task_set,
    .task_claim = op_task_claim,
    .task_logs = op_task_logs,
    .push_state = op_push_state,
    .push_record = op_push_record,
    .push_pending = op_push_pending,
};
