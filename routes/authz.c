/*
 * authz.c - who may ask what: the one authorization check every interconn
 * endpoint goes through (route.h, enum route_who).
 *
 * Signatures (gateway/reqsig.h) prove which node calls; this decides
 * whether that node has any business with the job it names.  The rule of
 * each endpoint is a column of the route table, so no handler has a check
 * of its own.  The facts come from PostgreSQL (store_job_parties) and are
 * kept here: a job's scheduler, initiator and parties never change once it
 * is created (a second job/create may only repeat the first), so a cached
 * answer never goes stale.  The cache is bounded: past AUTHZ_MAX entries it
 * is forgotten and refills.
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
#include "scheduler/store.h"

#define AUTHZ_MAX 65536
#define AUTHZ_BUCKETS 4096

struct fact {
    struct fact *next;
    char *key;        /* "<side><j|t>:<id>" */
    char *job_id, *scheduler, *initiator;
    char **parties;
    int nparties;
};

struct authz {
    struct fact *b[AUTHZ_BUCKETS];
    int n;
};

struct authz *authz_new(void)
{
    return gw_xcalloc(1, sizeof(struct authz));
}

static void fact_free(struct fact *f)
{
    free(f->key);
    free(f->job_id);
    free(f->scheduler);
    free(f->initiator);
    for (int i = 0; i < f->nparties; i++)
        free(f->parties[i]);
    free(f->parties);
    free(f);
}

static void forget_all(struct authz *a)
{
    for (int i = 0; i < AUTHZ_BUCKETS; i++)
        while (a->b[i]) {
            struct fact *f = a->b[i];
            a->b[i] = f->next;
            fact_free(f);
        }
    a->n = 0;
}

void authz_free(struct authz *a)
{
    if (!a)
        return;
    forget_all(a);
    free(a);
}

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % AUTHZ_BUCKETS;
}

static const struct fact *cached(const struct authz *a, const char *key)
{
    for (const struct fact *f = a->b[hash(key)]; f; f = f->next)
        if (strcmp(f->key, key) == 0)
            return f;
    return NULL;
}

static const struct fact *remember(struct authz *a, const char *key, const struct db_rows *r)
{
    if (a->n >= AUTHZ_MAX)
        forget_all(a);
    struct fact *f = gw_xcalloc(1, sizeof(*f));
    f->key = gw_xstrdup(key);
    f->job_id = gw_xstrdup(db_rows_get(r, 0, 0));
    f->scheduler = gw_xstrdup(db_rows_get(r, 0, 1) ? db_rows_get(r, 0, 1) : "");
    f->initiator = gw_xstrdup(db_rows_get(r, 0, 2) ? db_rows_get(r, 0, 2) : "");
    cJSON *p = cJSON_Parse(db_rows_get(r, 0, 3) ? db_rows_get(r, 0, 3) : "[]");
    int n = cJSON_GetArraySize(p);
    f->parties = gw_xcalloc((size_t)n + 1, sizeof(char *));
    const cJSON *it;
    cJSON_ArrayForEach(it, p) if (cJSON_IsString(it)) f->parties[f->nparties++] =
        gw_xstrdup(it->valuestring);
    cJSON_Delete(p);
    unsigned h = hash(key);
    f->next = a->b[h];
    a->b[h] = f;
    a->n++;
    return f;
}

static bool is_party(const struct fact *f, const char *node)
{
    for (int i = 0; i < f->nparties; i++)
        if (strcmp(f->parties[i], node) == 0)
            return true;
    return false;
}

static void refuse(struct gw_req *req, const char *fmt, const char *a, const char *b)
{
    char msg[400];
    snprintf(msg, sizeof(msg), fmt, a, b);
    log_kv(LOG_LEVEL_WARN, &req->log, "auth.refused", msg, "path", req->path, NULL);
    route_reply_err(req, GW_EAUTH, msg);
}

/* The rule, on the facts of the job (f NULL: this node does not know it). */
static void decide(struct gw_req *req, const struct route *r, const struct fact *f)
{
    const char *who = req->caller;
    if (!f) {
        r->handler(req); /* answers that the job or task does not exist */
        return;
    }
    switch (r->who) {
    case WHO_PARTY:
    case WHO_TASK_PARTY:
        if (!is_party(f, who) && strcmp(f->initiator, who) != 0) {
            refuse(req, "node %.64s is not a party of job %.128s", who, f->job_id);
            return;
        }
        break;
    case WHO_SCHEDULER:
    case WHO_TASK_SCHEDULER:
        if (strcmp(f->scheduler, who) != 0) {
            refuse(req, "node %.64s is not the scheduler of job %.128s", who, f->job_id);
            return;
        }
        break;
    case WHO_TASK_SCHED_PARTY:
        if (strcmp(f->scheduler, who) != 0 && !is_party(f, who)) {
            refuse(req, "node %.64s is neither the scheduler nor a party of job %.128s", who,
                   f->job_id);
            return;
        }
        break;
    default:
        break;
    }
    r->handler(req);
}

struct pending {
    struct gw_req *req;
    struct route r;
    char key[160];
};

static void pending_free(void *p)
{
    free(p);
}

static void on_facts(void *arg, const struct db_rows *rows)
{
    struct pending *pd = arg;
    struct gw_req *req = pd->req;
    if (route_db_failed(req, rows->err, rows->msg))
        return;
    const struct fact *f = rows->n > 0 && db_rows_get(rows, 0, 0)
                               ? remember(req->app->authz, pd->key, rows)
                               : NULL;
    struct route r = pd->r;
    /* the handler may set its own context */
    req->ctx = NULL;
    req->ctx_free = NULL;
    free(pd);
    decide(req, &r, f);
}

/* The facts of the job (cached, or read), then decide.  r is copied: a
 * rule may be derived for this request only. */
static void lookup(struct gw_req *req, const struct route *r, char side, bool by_task,
                   const char *id)
{
    struct gw_app *app = req->app;
    struct pending *pd = gw_xcalloc(1, sizeof(*pd));
    snprintf(pd->key, sizeof(pd->key), "%c%c:%s", side, by_task ? 't' : 'j', id);
    const struct fact *f = cached(app->authz, pd->key);
    if (f) {
        free(pd);
        decide(req, r, f);
        return;
    }
    pd->req = req;
    pd->r = *r;
    req->ctx = pd;
    req->ctx_free = pending_free;
    route_store_started(req, store_job_parties(app->store, side, by_task, id, on_facts, pd));
}

/* The body's initiator (create_all) or scheduler (job/create). */
static void check_body(struct gw_req *req, const struct route *r)
{
    if (!route_params(req))
        return;
    const cJSON *init = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(req->params, "config"), "initiator"),
        "node_id");
    const char *initiator = cJSON_IsString(init) ? init->valuestring : NULL;
    if (r->who == WHO_INITIATOR_BODY) {
        if (!initiator) {
            r->handler(req); /* the DAG parser names the missing field */
            return;
        }
        if (strcmp(initiator, req->caller) != 0) {
            refuse(req,
                   "config.initiator.node_id: node %.64s cannot create a job whose initiator is "
                   "%.64s (a node creates its own jobs only)",
                   req->caller, initiator);
            return;
        }
    } else {
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(req->params, "scheduler");
        const char *sched = cJSON_IsString(sc) ? sc->valuestring : initiator;
        if (!sched) {
            r->handler(req);
            return;
        }
        if (strcmp(sched, req->caller) != 0) {
            refuse(req,
                   "scheduler: node %.64s cannot create a job here on behalf of scheduler %.64s "
                   "(job/create comes from the job's scheduler)",
                   req->caller, sched);
            return;
        }
        /* a job this node knows already: only its own scheduler may repeat
         * the create (the handler refuses any difference) */
        const char *id = NULL;
        if (json_get_id(req->params, "job_id", true, 128, &id, NULL) == 0) {
            struct route r2 = *r;
            r2.who = WHO_SCHEDULER;
            lookup(req, &r2, 'p', false, id);
            return;
        }
    }
    r->handler(req);
}

void authz_check(struct gw_req *req, const struct route *r)
{
    struct gw_app *app = req->app;
    /* Whatever the endpoint: a caller that is not a node of the route table
     * (or this node) is nobody, signed or not. */
    if (!req->caller || !*req->caller) {
        route_reply_err(req, GW_EAUTH,
                        "x-node-id: the calling node is not named (x-node-id, x_node_id or "
                        "x-source-node-id); interconn calls come from nodes of the route table");
        return;
    }
    if (strcmp(req->caller, app->cfg->node_id) != 0 && !peers_find(app->peers, req->caller)) {
        refuse(req, "node %.64s is not in this node's route table%s", req->caller, "");
        return;
    }
    if (r->who == WHO_ROUTE) {
        r->handler(req);
        return;
    }
    if (r->who == WHO_INITIATOR_BODY || r->who == WHO_SCHEDULER_BODY) {
        check_body(req, r);
        return;
    }
    bool by_task = r->who == WHO_TASK_PARTY || r->who == WHO_TASK_SCHEDULER ||
                   r->who == WHO_TASK_SCHED_PARTY;
    char side = r->who == WHO_PARTY || r->who == WHO_TASK_PARTY ? 's' : 'p';
    const char *id = NULL;
    if (!route_params(req) || !route_get_id(req, by_task ? "task_id" : "job_id", true, &id))
        return;
    lookup(req, r, side, by_task, id);
}
