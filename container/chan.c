/*
 * chan.c - the transport runtime: queues on the loop (one timer for every
 * waiter, a one-second sweep), capability and job caches, the relay.
 */
#include "chan.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan_store.h"
#include "chanbatch.h"
#include "chanq.h"
#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/db.h"
#include "gateway/httpc.h"
#include "gateway/reqsig.h"
#include "gateway/json.h"
#include "gateway/jws.h"
#include "gateway/log.h"
#include "gateway/peer.h"

#define NBUCKETS 256
#define CACHE_MAX 4096
#define JOB_TTL_MS 10000
#define UNLISTENED_TTL_MS 1000

/* ---- capability tokens ------------------------------------------------------ */

static void cap_mac(const uint8_t key[CHAN_KEY_LEN], const char *payload, size_t n,
                    unsigned char out[32])
{
    static const char dom[] = "bfia-chan-cap-v1\n";
    size_t ml = sizeof(dom) - 1 + n;
    unsigned char *m = gw_xmalloc(ml);
    memcpy(m, dom, sizeof(dom) - 1);
    memcpy(m + sizeof(dom) - 1, payload, n);
    unsigned int ol = 32;
    if (!HMAC(EVP_sha256(), key, CHAN_KEY_LEN, m, ml, out, &ol))
        abort();
    free(m);
}

char *chan_cap_mint(const uint8_t key[CHAN_KEY_LEN], const char *job, const char *task,
                    const char *role, int index)
{
    char *payload = gw_xasprintf("%s\n%s\n%s\n%d", job, task, role, index);
    unsigned char mac[32];
    cap_mac(key, payload, strlen(payload), mac);
    char *p64 = jws_b64url_encode_alloc((const uint8_t *)payload, strlen(payload));
    char *m64 = jws_b64url_encode_alloc(mac, sizeof(mac));
    char *tok = gw_xasprintf("bct1.%s.%s", p64, m64);
    free(payload);
    free(p64);
    free(m64);
    return tok;
}

int chan_cap_parse(const uint8_t key[CHAN_KEY_LEN], const char *token, struct chan_cap_id *out)
{
    if (!token || strncmp(token, "bct1.", 5) != 0 || strlen(token) > 1024)
        return GW_EAUTH;
    const char *p = token + 5, *dot = strchr(p, '.');
    if (!dot || strchr(dot + 1, '.'))
        return GW_EAUTH;
    uint8_t payload[700], mac[40], want[32];
    size_t pl = 0, ml = 0;
    if ((size_t)(dot - p) > 900 || strlen(dot + 1) != 43 ||
        jws_b64url_decode(p, (size_t)(dot - p), payload, &pl) != 0 ||
        jws_b64url_decode(dot + 1, 43, mac, &ml) != 0 || ml != 32)
        return GW_EAUTH;
    cap_mac(key, (const char *)payload, pl, want);
    if (CRYPTO_memcmp(want, mac, 32) != 0)
        return GW_EAUTH;
    payload[pl] = '\0';
    char *f[4];
    char *s = (char *)payload;
    for (int i = 0; i < 4; i++) {
        f[i] = s;
        s = i < 3 ? strchr(s, '\n') : NULL;
        if (i < 3) {
            if (!s)
                return GW_EAUTH;
            *s++ = '\0';
        }
    }
    if (strlen(f[0]) >= sizeof(out->job) || strlen(f[1]) >= sizeof(out->task) ||
        strlen(f[2]) >= sizeof(out->role))
        return GW_EAUTH;
    snprintf(out->job, sizeof(out->job), "%s", f[0]);
    snprintf(out->task, sizeof(out->task), "%s", f[1]);
    snprintf(out->role, sizeof(out->role), "%s", f[2]);
    out->index = atoi(f[3]);
    return 0;
}

/* ---- the runtime --------------------------------------------------------------- */

struct pending {
    chan_cap_cb ccb;
    chan_job_cb jcb;
    void *arg;
    struct pending *next;
};

struct cap_ent {
    struct chan_cap cap;
    bool ready, loading;
    struct pending *waiting;
    struct cap_ent *next;
};

struct job_ent {
    struct chan_job job;
    bool ready, loading;
    struct pending *waiting;
    struct job_ent *next;
};

struct chan_relay {
    struct chan *c;
    struct httpc_req *h;
    void *data;
    size_t len;
    char *peer;
    chan_relay_cb cb;
    void *arg;
    struct chan_relay *prev, *next;
};

struct chan {
    struct gw_app *app;
    uint8_t key[CHAN_KEY_LEN];
    struct chanq *q;
    struct event *tick, *sweep;
    long long armed_at; /* deadline the tick timer is set for, -1 none */
    struct cap_ent *caps[NBUCKETS];
    size_t ncaps;
    struct job_ent *jobs[NBUCKETS];
    size_t njobs;
    struct chan_relay *relays;
    unsigned sweeps;
    void (*hook)(void *arg);
    void *hook_arg;
    unsigned long long answers[CHAN_API_MAX][14];
    unsigned long long relay_ok, relay_fail;
    unsigned long long relay_batches, relay_singles, relay_parked;
    struct peerq *peerqs;           /* per peer of ours: the lanes of the batched relay */
    chan_raw_answer_fn raw_answer;
};

long long chan_now(void) { return gw_now_mono_ms(); }

static unsigned bucket(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NBUCKETS;
}

static void limits_of(const struct gw_cfg *cfg, struct chanq_limits *l)
{
    l->session_bytes = (size_t)cfg->transport_session_bytes;
    l->session_msgs = (size_t)cfg->transport_session_msgs;
    l->total_bytes = (size_t)cfg->transport_total_bytes;
    l->total_msgs = (size_t)cfg->transport_total_msgs;
    l->max_sessions = (size_t)cfg->transport_max_sessions;
    l->max_topics = 4096;
    l->max_waiters = (size_t)cfg->transport_max_waiters;
    l->idle_ms = cfg->transport_idle_s * 1000LL;
    l->released_ms = cfg->transport_released_s * 1000LL;
    l->released_max = 100000;
}

static int load_key(const char *dir, uint8_t key[CHAN_KEY_LEN], struct gw_errbuf *eb)
{
    char *kd = gw_xasprintf("%s/transport", dir);
    mkdir(kd, 0700);
    char *path = gw_xasprintf("%s/cap.key", kd);
    free(kd);
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, key, CHAN_KEY_LEN);
        close(fd);
        if (n != CHAN_KEY_LEN)
            rc = gw_errf(eb, GW_EINVAL, "%s: expected %d bytes", path, CHAN_KEY_LEN);
    } else if (errno == ENOENT) {
        if (RAND_bytes(key, CHAN_KEY_LEN) != 1) {
            rc = gw_errf(eb, GW_EINTERNAL, "no random bytes for the channel key");
        } else {
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0 || write(fd, key, CHAN_KEY_LEN) != CHAN_KEY_LEN ||
                fsync(fd) != 0) /* banned-ok: start-up, before the loop runs (chan_new) */
                rc = gw_errf(eb, GW_EINTERNAL, "cannot write %s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
        }
    } else {
        rc = gw_errf(eb, GW_EINTERNAL, "cannot read %s: %s", path, strerror(errno));
    }
    free(path);
    return rc;
}

static void on_tick(evutil_socket_t fd, short what, void *arg);
static void on_sweep(evutil_socket_t fd, short what, void *arg);
static void peerqs_free(struct chan *c);

struct chan *chan_new(struct gw_app *app, struct gw_errbuf *eb)
{
    struct chan *c = gw_xcalloc(1, sizeof(*c));
    c->app = app;
    if (load_key(app->cfg->data_dir, c->key, eb) != 0) {
        free(c);
        return NULL;
    }
    struct chanq_limits l;
    limits_of(app->cfg, &l);
    c->q = chanq_new(&l);
    c->armed_at = -1;
    if (app->base) {
        c->tick = evtimer_new(app->base, on_tick, c);
        c->sweep = event_new(app->base, -1, EV_PERSIST, on_sweep, c);
        struct timeval tv = {1, 0};
        event_add(c->sweep, &tv);
    }
    return c;
}

static void cap_clear(struct chan_cap *cap)
{
    free(cap->token);
    free(cap->job_id);
    free(cap->task_id);
    free(cap->role);
    free(cap->session);
    for (size_t i = 0; i < cap->nparties; i++)
        free(cap->parties[i]);
    free(cap->parties);
    memset(cap, 0, sizeof(*cap));
}

static void pending_free(struct pending *p)
{
    while (p) {
        struct pending *n = p->next;
        free(p);
        p = n;
    }
}

static void job_clear(struct chan_job *j)
{
    free(j->job_id);
    for (size_t i = 0; i < j->nparties; i++)
        free(j->parties[i]);
    free(j->parties);
    memset(j, 0, sizeof(*j));
}

void chan_free(struct chan *c)
{
    if (!c)
        return;
    while (c->relays) {
        struct chan_relay *r = c->relays;
        chan_relay_cancel(c, r);
    }
    peerqs_free(c);
    chanq_free(c->q); /* waiting requests hear CHANQ_GONE */
    for (int b = 0; b < NBUCKETS; b++) {
        while (c->caps[b]) {
            struct cap_ent *e = c->caps[b];
            c->caps[b] = e->next;
            pending_free(e->waiting);
            cap_clear(&e->cap);
            free(e);
        }
        while (c->jobs[b]) {
            struct job_ent *e = c->jobs[b];
            c->jobs[b] = e->next;
            pending_free(e->waiting);
            job_clear(&e->job);
            free(e);
        }
    }
    if (c->tick)
        event_free(c->tick);
    if (c->sweep)
        event_free(c->sweep);
    OPENSSL_cleanse(c->key, sizeof(c->key));
    free(c);
}

void chan_apply_cfg(struct chan *c)
{
    struct chanq_limits l;
    limits_of(c->app->cfg, &l);
    chanq_set_limits(c->q, &l);
}

char *chan_task_token(struct chan *c, const char *job, const char *task, const char *role,
                      int index)
{
    return chan_cap_mint(c->key, job, task, role, index);
}

char *chan_advertise(const struct gw_cfg *cfg)
{
    if (cfg->transport_advertise && cfg->transport_advertise[0])
        return gw_xstrdup(cfg->transport_advertise);
    return gw_xasprintf("%s:%d", cfg->callback_host,
                        cfg->transport_port ? cfg->transport_port : cfg->http_port);
}

struct chanq *chan_queues(struct chan *c) { return c->q; }

void chan_arm(struct chan *c)
{
    if (!c->tick)
        return;
    long long d = chanq_next_deadline(c->q);
    if (d < 0 || (c->armed_at >= 0 && c->armed_at <= d))
        return;
    long long wait = d - chan_now();
    if (wait < 0)
        wait = 0;
    struct timeval tv = {wait / 1000, (wait % 1000) * 1000};
    event_add(c->tick, &tv);
    c->armed_at = d;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct chan *c = arg;
    c->armed_at = -1;
    chanq_tick(c->q, chan_now());
    chan_arm(c);
}

void chan_set_sweep_hook(struct chan *c, void (*fn)(void *arg), void *arg)
{
    c->hook = fn;
    c->hook_arg = arg;
}

/* ---- ownership: who is ours ---------------------------------------------------- */

bool chan_node_is_ours(const struct gw_app *app, const char *node)
{
    if (strcmp(node, app->cfg->node_id) == 0)
        return true;
    const struct peer_route *r = peers_find(app->peers, node);
    return r && r->profile == PEER_STANDARD;
}

static bool all_ours(const struct gw_app *app, char *const *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!chan_node_is_ours(app, nodes[i]))
            return false;
    return true;
}

static bool has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

bool chan_cap_has_party(const struct chan_cap *cap, const char *node)
{
    return has(cap->parties, cap->nparties, node);
}

bool chan_job_has_party(const struct chan_job *j, const char *node)
{
    return has(j->parties, j->nparties, node);
}

const char *chan_session_job(const char *session)
{
    if (!session || strncmp(session, "session_", 8) != 0 || !json_is_id(session + 8, 128))
        return NULL;
    return session + 8;
}

/* ---- capability cache ------------------------------------------------------------ */

static struct cap_ent *cap_find(struct chan *c, const char *token)
{
    for (struct cap_ent *e = c->caps[bucket(token)]; e; e = e->next)
        if (strcmp(e->cap.token, token) == 0)
            return e;
    return NULL;
}

static void cap_drop(struct chan *c, struct cap_ent *e)
{
    struct cap_ent **pp = &c->caps[bucket(e->cap.token)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    cap_clear(&e->cap);
    free(e);
    c->ncaps--;
}

/* Forget every ready entry (of task_id, or all); loading ones finish. */
static void caps_forget(struct chan *c, const char *task_id)
{
    for (int b = 0; b < NBUCKETS; b++) {
        for (struct cap_ent *e = c->caps[b], *n; e; e = n) {
            n = e->next;
            if (e->ready && !e->loading && (!task_id || strcmp(e->cap.task_id, task_id) == 0))
                cap_drop(c, e);
        }
    }
}

static bool fresh(const struct chan *c, long long loaded)
{
    return db_pool_listening(c->app->db) || chan_now() - loaded < UNLISTENED_TTL_MS;
}

const struct chan_cap *chan_cap_cached(struct chan *c, const char *token)
{
    struct cap_ent *e = cap_find(c, token);
    if (!e || !e->ready || !fresh(c, e->cap.loaded_ms))
        return NULL;
    return &e->cap;
}

struct capload {
    struct chan *c;
    char *token;
};

static void cap_finish(struct chan *c, struct cap_ent *e, const char *code, const char *msg)
{
    struct pending *p = e->waiting;
    e->waiting = NULL;
    e->loading = false;
    bool ok = e->ready;
    while (p) {
        struct pending *n = p->next;
        p->ccb(p->arg, ok ? &e->cap : NULL, code, msg);
        free(p);
        p = n;
    }
    if (!ok)
        cap_drop(c, e);
}

/* config.node_id.<role>.<i>=node and config.session_id from the env array */
static void cap_from_env(struct chan_cap *cap, const char *env_json)
{
    cJSON *env = cJSON_Parse(env_json ? env_json : "[]");
    const cJSON *v;
    cJSON_ArrayForEach(v, env)
    {
        if (!cJSON_IsString(v))
            continue;
        const char *s = v->valuestring;
        if (strncmp(s, "config.session_id=", 18) == 0) {
            free(cap->session);
            cap->session = gw_xstrdup(s + 18);
        } else if (strncmp(s, "config.node_id.", 15) == 0) {
            const char *eq = strchr(s, '=');
            if (eq && eq[1] && !has(cap->parties, cap->nparties, eq + 1)) {
                cap->parties = gw_xrealloc(cap->parties, (cap->nparties + 1) * sizeof(char *));
                cap->parties[cap->nparties++] = gw_xstrdup(eq + 1);
            }
        }
    }
    cJSON_Delete(env);
}

static void on_cap_row(void *arg, int err, const struct db_res *res, const char *errmsg,
                       const char *sqlstate)
{
    (void)sqlstate;
    struct capload *cl = arg;
    struct chan *c = cl->c;
    struct cap_ent *e = cap_find(c, cl->token);
    free(cl->token);
    free(cl);
    if (!e)
        return;
    char msg[256];
    if (err) {
        snprintf(msg, sizeof(msg), "cannot check the token now: %.200s", errmsg ? errmsg : "");
        cap_finish(c, e, CHAN_E_SERVER, msg);
        return;
    }
    const char *st = db_res_rows(res) ? db_res_get(res, 0, 0) : NULL;
    if (!st || strcmp(st, "RUNNING") != 0) {
        snprintf(msg, sizeof(msg), "x-ptp-token: the task of this token is %s",
                 st ? st : "unknown on this node");
        cap_finish(c, e, CHAN_E_AUTH, msg);
        return;
    }
    cap_from_env(&e->cap, db_res_get(res, 0, 1));
    if (!e->cap.session)
        e->cap.session = gw_xasprintf("session_%s", e->cap.job_id);
    e->cap.scoped = all_ours(c->app, e->cap.parties, e->cap.nparties);
    e->cap.loaded_ms = chan_now();
    e->ready = true;
    cap_finish(c, e, CHAN_OK, "");
}

const char *chan_cap_load(struct chan *c, const char *token, chan_cap_cb cb, void *arg,
                          const char **msg)
{
    struct chan_cap_id id;
    if (!token || !*token) {
        *msg = "x-ptp-token: missing (config.token of the task)";
        return CHAN_E_AUTH;
    }
    if (chan_cap_parse(c->key, token, &id) != 0) {
        *msg = "x-ptp-token: not a token of this node";
        return CHAN_E_AUTH;
    }
    struct cap_ent *e = cap_find(c, token);
    if (e && e->ready && !e->loading) {
        if (fresh(c, e->cap.loaded_ms)) {
            /* cached after all (chan_cap_cached raced a refresh): reload anyway */
        }
        cap_drop(c, e);
        e = NULL;
    }
    if (!e) {
        if (c->ncaps >= CACHE_MAX)
            caps_forget(c, NULL);
        e = gw_xcalloc(1, sizeof(*e));
        e->cap.token = gw_xstrdup(token);
        e->cap.job_id = gw_xstrdup(id.job);
        e->cap.task_id = gw_xstrdup(id.task);
        e->cap.role = gw_xstrdup(id.role);
        e->cap.role_index = id.index;
        unsigned b = bucket(token);
        e->next = c->caps[b];
        c->caps[b] = e;
        c->ncaps++;
    }
    struct pending *p = gw_xcalloc(1, sizeof(*p));
    p->ccb = cb;
    p->arg = arg;
    p->next = e->waiting;
    e->waiting = p;
    if (e->loading)
        return NULL;
    struct capload *cl = gw_xcalloc(1, sizeof(*cl));
    cl->c = c;
    cl->token = gw_xstrdup(token);
    if (chan_store_task(c->app, id.job, id.task, id.role, id.index, on_cap_row, cl) != 0) {
        free(cl->token);
        free(cl);
        e->waiting = p->next;
        free(p);
        if (!e->waiting)
            cap_drop(c, e);
        *msg = "database busy; retry";
        return CHAN_E_SERVER;
    }
    e->loading = true;
    return NULL;
}

/* ---- job cache ---------------------------------------------------------------------- */

static struct job_ent *job_find(struct chan *c, const char *job)
{
    for (struct job_ent *e = c->jobs[bucket(job)]; e; e = e->next)
        if (strcmp(e->job.job_id, job) == 0)
            return e;
    return NULL;
}

static void job_drop(struct chan *c, struct job_ent *e)
{
    struct job_ent **pp = &c->jobs[bucket(e->job.job_id)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    job_clear(&e->job);
    free(e);
    c->njobs--;
}

const struct chan_job *chan_job_cached(struct chan *c, const char *job_id)
{
    struct job_ent *e = job_find(c, job_id);
    if (!e || !e->ready)
        return NULL;
    if (e->job.state == CHAN_JOB_LIVE && chan_now() - e->job.loaded_ms >= JOB_TTL_MS)
        return NULL;
    return &e->job;
}

static void job_finish(struct chan *c, struct job_ent *e, const char *code, const char *msg)
{
    struct pending *p = e->waiting;
    e->waiting = NULL;
    e->loading = false;
    bool ok = e->ready;
    while (p) {
        struct pending *n = p->next;
        p->jcb(p->arg, ok ? &e->job : NULL, code, msg);
        free(p);
        p = n;
    }
    if (!ok)
        job_drop(c, e);
}

struct jobload {
    struct chan *c;
    char *job;
};

static void on_job_row(void *arg, int err, const struct db_res *res, const char *errmsg,
                       const char *sqlstate)
{
    (void)sqlstate;
    struct jobload *jl = arg;
    struct chan *c = jl->c;
    struct job_ent *e = job_find(c, jl->job);
    free(jl->job);
    free(jl);
    if (!e)
        return;
    if (err) {
        char msg[256];
        snprintf(msg, sizeof(msg), "cannot check the session's job now: %.200s",
                 errmsg ? errmsg : "");
        job_finish(c, e, CHAN_E_SERVER, msg);
        return;
    }
    struct chan_job *j = &e->job;
    for (size_t i = 0; i < j->nparties; i++)
        free(j->parties[i]);
    free(j->parties);
    j->parties = NULL;
    j->nparties = 0;
    const char *rows = db_res_get(res, 0, 2);
    if (!rows || atoi(rows) == 0) {
        j->state = CHAN_JOB_NONE;
    } else {
        const char *live = db_res_get(res, 0, 0);
        j->state = live && strcmp(live, "t") == 0 ? CHAN_JOB_LIVE : CHAN_JOB_ENDED;
        cJSON *roles = cJSON_Parse(db_res_get(res, 0, 1) ? db_res_get(res, 0, 1) : "{}");
        const cJSON *r, *n;
        cJSON_ArrayForEach(r, roles)
        {
            cJSON_ArrayForEach(n, r)
            {
                if (cJSON_IsString(n) && !has(j->parties, j->nparties, n->valuestring)) {
                    j->parties = gw_xrealloc(j->parties, (j->nparties + 1) * sizeof(char *));
                    j->parties[j->nparties++] = gw_xstrdup(n->valuestring);
                }
            }
        }
        cJSON_Delete(roles);
    }
    j->scoped = all_ours(c->app, j->parties, j->nparties);
    j->loaded_ms = chan_now();
    e->ready = true;
    job_finish(c, e, CHAN_OK, "");
}

const char *chan_job_load(struct chan *c, const char *job_id, chan_job_cb cb, void *arg,
                          const char **msg)
{
    struct job_ent *e = job_find(c, job_id);
    if (e && !e->loading)
        e->ready = false;
    if (!e) {
        if (c->njobs >= CACHE_MAX) {
            for (int b = 0; b < NBUCKETS; b++)
                for (struct job_ent *x = c->jobs[b], *n; x; x = n) {
                    n = x->next;
                    if (!x->loading)
                        job_drop(c, x);
                }
        }
        e = gw_xcalloc(1, sizeof(*e));
        e->job.job_id = gw_xstrdup(job_id);
        unsigned b = bucket(job_id);
        e->next = c->jobs[b];
        c->jobs[b] = e;
        c->njobs++;
    }
    struct pending *p = gw_xcalloc(1, sizeof(*p));
    p->jcb = cb;
    p->arg = arg;
    p->next = e->waiting;
    e->waiting = p;
    if (e->loading)
        return NULL;
    struct jobload *jl = gw_xcalloc(1, sizeof(*jl));
    jl->c = c;
    jl->job = gw_xstrdup(job_id);
    if (chan_store_job(c->app, job_id, on_job_row, jl) != 0) {
        free(jl->job);
        free(jl);
        e->waiting = p->next;
        free(p);
        if (!e->waiting)
            job_drop(c, e);
        *msg = "database busy; retry";
        return CHAN_E_SERVER;
    }
    e->loading = true;
    return NULL;
}

/* ---- tasks and jobs ending ---------------------------------------------------------- */

static void release_job(struct chan *c, const char *job_id)
{
    char *sess = gw_xasprintf("session_%s", job_id);
    size_t n = chanq_release(c->q, sess, NULL, NULL, true, chan_now());
    struct job_ent *e = job_find(c, job_id);
    if (e && e->ready) {
        e->job.state = CHAN_JOB_ENDED;
        e->job.loaded_ms = chan_now();
    }
    char dropped[24];
    snprintf(dropped, sizeof(dropped), "%zu", n);
    struct log_ctx lc = {.job_id = job_id};
    log_kv(LOG_LEVEL_INFO, &lc, "transport.release", "job ended here: its sessions are released",
           "session", sess, "dropped", dropped, NULL);
    free(sess);
}

static void on_jobs_ended(void *arg, int err, const struct db_res *res, const char *errmsg,
                          const char *sqlstate)
{
    (void)errmsg;
    (void)sqlstate;
    struct chan *c = arg;
    if (err)
        return;
    for (int i = 0; i < db_res_rows(res); i++)
        release_job(c, db_res_get(res, i, 0));
}

struct task_end {
    struct chan *c;
    char *task;
};

static void on_task_ended(void *arg, int err, const struct db_res *res, const char *errmsg,
                          const char *sqlstate)
{
    (void)errmsg;
    (void)sqlstate;
    struct task_end *te = arg;
    struct chan *c = te->c;
    if (!err) {
        cJSON *jobs = cJSON_CreateArray();
        for (int i = 0; i < db_res_rows(res); i++) {
            const char *job = db_res_get(res, i, 0), *ended = db_res_get(res, i, 1);
            if (ended && strcmp(ended, "t") == 0) {
                /* this task's slice: late messages for it are refused */
                char *sess = gw_xasprintf("session_%s", job);
                chanq_release(c->q, sess, te->task, NULL, true, chan_now());
                free(sess);
            }
            cJSON_AddItemToArray(jobs, cJSON_CreateString(job));
        }
        if (cJSON_GetArraySize(jobs)) {
            char *js = json_print(jobs);
            if (chan_store_jobs_ended(c->app, js, on_jobs_ended, c) != 0) {
                /* the sweep asks again */
            }
            cJSON_free(js);
        }
        cJSON_Delete(jobs);
    }
    free(te->task);
    free(te);
}

void chan_task_changed(struct chan *c, const char *task_id)
{
    if (!c)
        return;
    caps_forget(c, task_id && *task_id ? task_id : NULL);
    if (!task_id || !*task_id)
        return;
    struct task_end *te = gw_xcalloc(1, sizeof(*te));
    te->c = c;
    te->task = gw_xstrdup(task_id);
    if (chan_store_task_ended(c->app, task_id, on_task_ended, te) != 0) {
        free(te->task);
        free(te);
    }
}

struct collect {
    cJSON *arr;
    int n;
};

static void collect_job(void *arg, const char *session, const char *scope)
{
    (void)scope;
    struct collect *cl = arg;
    const char *job = chan_session_job(session);
    if (!job || cl->n >= 1000)
        return;
    const cJSON *e;
    cJSON_ArrayForEach(e, cl->arr) if (strcmp(e->valuestring, job) == 0) return;
    cJSON_AddItemToArray(cl->arr, cJSON_CreateString(job));
    cl->n++;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct chan *c = arg;
    chanq_sweep(c->q, chan_now());
    if (c->hook)
        c->hook(c->hook_arg);
    /* Every 5 s: sessions whose job ended here (a missed notification). */
    if (++c->sweeps % 5 == 0 && c->app->db) {
        struct collect cl = {cJSON_CreateArray(), 0};
        chanq_each_session(c->q, collect_job, &cl);
        if (cl.n) {
            char *js = json_print(cl.arr);
            if (chan_store_jobs_ended(c->app, js, on_jobs_ended, c) != 0) {
                /* next sweep */
            }
            cJSON_free(js);
        }
        cJSON_Delete(cl.arr);
    }
    chan_arm(c);
}

/* ---- relay ---------------------------------------------------------------------------- */

static void relay_unlink(struct chan *c, struct chan_relay *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        c->relays = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

static void relay_free(struct chan_relay *r)
{
    free(r->data);
    free(r->peer);
    free(r);
}

void chan_relay_cancel(struct chan *c, struct chan_relay *r)
{
    if (!r)
        return;
    httpc_cancel(r->h);
    relay_unlink(c, r);
    relay_free(r);
}

static void on_relayed(void *arg, const struct httpc_resp *hr)
{
    struct chan_relay *r = arg;
    if (!hr->err)
        reqsig_bmac_learn(r->c->app->reqsig, r->peer, hr->captured);
    relay_unlink(r->c, r);
    r->cb(r->arg, hr);
    relay_free(r);
}

const char *chan_relay(struct chan *c, struct chan_relay_req *q, chan_relay_cb cb, void *arg,
                       struct chan_relay **out)
{
    struct gw_app *app = c->app;
    if (!peers_find(app->peers, q->peer)) {
        free(q->data);
        q->data = NULL;
        return CHAN_E_NONET;
    }
    struct chan_relay *r = gw_xcalloc(1, sizeof(*r));
    r->c = c;
    r->peer = gw_xstrdup(q->peer);
    r->cb = cb;
    r->arg = arg;
    r->data = q->data;
    r->len = q->len;
    q->data = NULL;
    int rc = peer_call_raw(app, q->peer, q->path_query, q->headers, r->data, r->len, true, false,
                           q->timeout_ms, app->cfg->transport_relay_retries, on_relayed, r, &r->h);
    if (rc != 0) {
        relay_free(r);
        return rc == GW_ENOTFOUND ? CHAN_E_NONET : CHAN_E_SERVER;
    }
    r->next = c->relays;
    if (c->relays)
        c->relays->prev = r;
    c->relays = r;
    if (out)
        *out = r;
    return NULL;
}

void chan_relay_done(struct chan *c, bool ok)
{
    if (ok)
        c->relay_ok++;
    else
        c->relay_fail++;
}

/* ---- sending to gateways of ours (batched) --------------------------------------------- */

#define SOLO_MIN (64 * 1024)   /* messages this large go alone, uncopied */
#define NOBATCH_MS 60000       /* a peer that did not answer a batch gets singles this long */
#define PARK_FIRST_MS 2        /* a message the peer had no room for is asked again after */
#define PARK_MAX_MS 100        /* ... doubling up to this */
#define HELD_MAX 32            /* parked queues passed over while one request is built */

/*
 * The receiver never waits for room on a message of ours (batch records
 * carry timeout 0, singles ?nowait=1): a full queue answers E0000000700 at
 * once, and the message is parked here, at the head of its lane, and asked
 * again with a growing delay until its push's own deadline (then 700 to the
 * container, as a push into a full local queue).  So one full queue (one
 * job's slow reader) holds up only the messages behind it in that queue, not
 * the lane every other job's messages to that node share.  A parked queue's
 * later messages stay behind it: the order of a queue holds.
 */
struct chan_send {
    struct lane *lane;
    char *session, *scope, *topic, *trace, *provider;
    long long timeout_ms;
    long long deadline;        /* the push's own: its timeout from when it came */
    long long not_before;      /* parked until then (0: not parked) */
    int tries;
    bool bmac_resent;          /* sent again once after a body MAC refusal */
    void *data;
    size_t len;
    chan_send_cb cb;
    void *arg;
    bool flying;               /* in a request (or being answered): not in the lane's queue */
    struct chan_send *prev, *next;
};

struct lane {
    struct peerq *pq;
    struct chan_send *head, *tail; /* waiting to go, in arrival order */
    struct chan_send *fly;         /* the messages of the request in flight, in order */
    size_t nfly;
    bool batched;                  /* that request is a batch (else one raw message) */
    bool bmac;                     /* that request went under a body MAC (gateway/reqsig.h) */
    bool kicking;
    struct httpc_req *h;
    void *body;
    struct event *kick;            /* next turn of the loop, or a parked message's time */
    long long parked_until;        /* a parked message may be in the lane until then (0: none) */
};

struct peerq {
    struct chan *c;
    char *peer;
    int nlanes;
    struct lane *lanes;
    long long nobatch_until;
    bool nowait;               /* it answered CHANBATCH_NOWAIT: records go with timeout 0 */
    struct peerq *next;
};

static void send_free(struct chan_send *s)
{
    free(s->session);
    free(s->scope);
    free(s->topic);
    free(s->trace);
    free(s->provider);
    free(s->data);
    free(s);
}

static void lane_unlink(struct lane *l, struct chan_send *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        l->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        l->tail = s->prev;
    s->prev = s->next = NULL;
}

/* Add s at the tail of the chain head..tail. */
static void chain_append(struct chan_send **head, struct chan_send **tail, struct chan_send *s)
{
    s->prev = *tail;
    s->next = NULL;
    if (*tail)
        (*tail)->next = s;
    else
        *head = s;
    *tail = s;
}

static void on_kick(evutil_socket_t fd, short what, void *arg);

static struct peerq *peerq_get(struct chan *c, const char *peer)
{
    for (struct peerq *p = c->peerqs; p; p = p->next)
        if (strcmp(p->peer, peer) == 0)
            return p;
    struct peerq *p = gw_xcalloc(1, sizeof(*p));
    p->c = c;
    p->peer = gw_xstrdup(peer);
    p->nlanes = c->app->cfg->transport_relay_lanes > 0 ? c->app->cfg->transport_relay_lanes : 1;
    p->lanes = gw_xcalloc((size_t)p->nlanes, sizeof(*p->lanes));
    for (int i = 0; i < p->nlanes; i++) {
        p->lanes[i].pq = p;
        p->lanes[i].kick = event_new(c->app->base, -1, 0, on_kick, &p->lanes[i]);
    }
    p->next = c->peerqs;
    c->peerqs = p;
    return p;
}

static void peerqs_free(struct chan *c)
{
    while (c->peerqs) {
        struct peerq *p = c->peerqs;
        c->peerqs = p->next;
        for (int i = 0; i < p->nlanes; i++) {
            struct lane *l = &p->lanes[i];
            httpc_cancel(l->h);
            free(l->body);
            for (struct chan_send *s = l->fly, *n; s; s = n) {
                n = s->next;
                send_free(s);
            }
            for (struct chan_send *s = l->head, *n; s; s = n) {
                n = s->next;
                send_free(s);
            }
            event_free(l->kick);
        }
        free(p->lanes);
        free(p->peer);
        free(p);
    }
}

void chan_set_raw_answer(struct chan *c, chan_raw_answer_fn fn) { c->raw_answer = fn; }

static unsigned lane_of(const char *session, const char *scope, const char *topic)
{
    unsigned h = 2166136261u;
    const char *parts[3] = {session, scope, topic};
    for (int i = 0; i < 3; i++) {
        for (const char *s = parts[i]; *s; s++)
            h = (h ^ (unsigned char)*s) * 16777619u;
        h = (h ^ 0xffu) * 16777619u;
    }
    return h;
}

const char *chan_send(struct chan *c, struct chan_send_req *r, chan_send_cb cb, void *arg,
                      struct chan_send **out)
{
    if (!peers_find(c->app->peers, r->peer) || !c->app->base) {
        free(r->data);
        r->data = NULL;
        return CHAN_E_NONET;
    }
    struct peerq *p = peerq_get(c, r->peer);
    struct chan_send *s = gw_xcalloc(1, sizeof(*s));
    s->session = gw_xstrdup(r->session);
    s->scope = gw_xstrdup(r->scope ? r->scope : "");
    s->topic = gw_xstrdup(r->topic ? r->topic : "");
    s->trace = r->trace ? gw_xstrdup(r->trace) : NULL;
    s->provider = r->provider ? gw_xstrdup(r->provider) : NULL;
    s->timeout_ms = r->timeout_ms;
    s->deadline = chan_now() + (r->timeout_ms > 0 ? r->timeout_ms : 0);
    s->data = r->data;
    s->len = r->len;
    r->data = NULL;
    s->cb = cb;
    s->arg = arg;
    struct lane *l = &p->lanes[lane_of(s->session, s->scope, s->topic) % (unsigned)p->nlanes];
    s->lane = l;
    chain_append(&l->head, &l->tail, s);
    /* Sent on the next turn of the loop, not now: pushes that arrive in the
     * same turn go together, and no callback runs inside this call. */
    if (!l->h && !l->kicking) {
        l->kicking = true;
        event_active(l->kick, 0, 0);
    }
    if (out)
        *out = s;
    return NULL;
}

void chan_send_cancel(struct chan *c, struct chan_send *s)
{
    (void)c;
    if (!s)
        return;
    if (s->flying) {
        s->cb = NULL; /* freed when its request ends */
        return;
    }
    lane_unlink(s->lane, s);
    send_free(s);
}

/* Percent-encode s for a query value (unreserved characters kept). */
static char *qesc(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *o = gw_xmalloc(strlen(s) * 3 + 1), *p = o;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            *p++ = (char)ch;
        } else {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    *p = '\0';
    return o;
}

static void on_lane_done(void *arg, const struct httpc_resp *hr);

/* Answer every message of list (a detached chain) with code and msg. */
static void finish_all(struct chan_send *list, const char *code, const char *msg)
{
    for (struct chan_send *s = list, *n; s; s = n) {
        n = s->next;
        if (s->cb)
            s->cb(s->arg, code, msg);
        send_free(s);
    }
}

static bool same_queue(const struct chan_send *a, const struct chan_send *b)
{
    return strcmp(a->session, b->session) == 0 && strcmp(a->scope, b->scope) == 0 &&
           strcmp(a->topic, b->topic) == 0;
}

/* Answer 700 to the lane's parked messages whose push ran out of time, and
 * to those waiting behind a parked one of their queue as long. */
static void lane_expire(struct lane *l, long long now)
{
    const struct chan_send *parked[HELD_MAX];
    size_t np = 0;
    struct chan_send *done = NULL, *dl = NULL;
    for (struct chan_send *s = l->head, *nx; s; s = nx) {
        nx = s->next;
        bool behind = false;
        for (size_t i = 0; i < np && !behind; i++)
            behind = same_queue(parked[i], s);
        if (s->not_before && !behind && np < HELD_MAX)
            parked[np++] = s;
        if (now < s->deadline || !(s->not_before || behind))
            continue;
        lane_unlink(l, s);
        s->flying = true;
        chain_append(&done, &dl, s);
    }
    finish_all(done, CHAN_E_FULL, "buffer full: no room at the receiving node within the timeout");
}

static void lane_kick(struct lane *l)
{
    struct peerq *p = l->pq;
    struct chan *c = p->c;
    struct gw_app *app = c->app;
    if (l->h || !l->head)
        return;
    long long now = chan_now();
    if (l->parked_until) { /* only then can a message run out of time here */
        lane_expire(l, now);
        if (now >= l->parked_until)
            l->parked_until = 0;
        if (!l->head)
            return;
    }
    /* the oldest messages that may go now: a parked one, and every later
     * one of its queue, wait (held) */
    const struct chan_send *held[HELD_MAX];
    size_t nheld = 0;
    long long wake = 0;
    bool batch = false;
    size_t max_msgs = 1, max_bytes = (size_t)app->cfg->transport_batch_bytes;
    size_t n = 0, bytes = CHANBATCH_HDR;
    long long wait = 0;
    struct chan_send *fly = NULL, *last = NULL;
    for (struct chan_send *s = l->head, *nx; s && n < max_msgs; s = nx) {
        nx = s->next;
        bool hold = false;
        for (size_t i = 0; i < nheld && !hold; i++)
            hold = same_queue(held[i], s);
        if (hold)
            continue; /* behind a parked message of its queue */
        if (s->not_before > now) {
            if (nheld == HELD_MAX)
                break; /* too many parked queues to pass over: the rest waits */
            held[nheld++] = s;
            if (!wake || s->not_before < wake)
                wake = s->not_before;
            continue;
        }
        if (!n) {
            batch = s->len < SOLO_MIN && now >= p->nobatch_until;
            max_msgs = batch ? (size_t)app->cfg->transport_batch_msgs : 1;
        }
        struct chanbatch_out o = {s->session, s->scope, s->topic, 0, s->data, s->len};
        size_t rs = chanbatch_rec_size(&o);
        if (n && (s->len >= SOLO_MIN || bytes + rs > max_bytes))
            break;
        bytes += rs;
        n++;
        if (s->timeout_ms > wait)
            wait = s->timeout_ms;
        lane_unlink(l, s);
        s->flying = true;
        chain_append(&fly, &last, s);
    }
    if (!n) {
        /* every queue of the lane is parked: again when the first may go */
        long long d = wake > now ? wake - now : 1;
        struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
        event_add(l->kick, &tv);
        return;
    }
    const char *me = app->cfg->node_id;
    char src[160], dst[160];
    snprintf(src, sizeof(src), "x-ptp-source-node-id: %s", me);
    snprintf(dst, sizeof(dst), "x-ptp-target-node-id: %s", p->peer);
    int rc;
    /* a receiver that said so does not wait for room (batch records with
     * timeout 0); a single may be waited on by a gateway of ours from before
     * ?nowait, and so may the first batch to a peer */
    long tmo = (long)((batch && p->nowait ? 0 : wait) + app->cfg->peer_timeout_ms);
    if (batch) {
        unsigned char *b = gw_xmalloc(bytes), *q = b + CHANBATCH_HDR;
        chanbatch_put_header(b, (uint32_t)n);
        for (struct chan_send *s = fly; s; s = s->next) {
            struct chanbatch_out o = {s->session, s->scope, s->topic,
                                      p->nowait ? 0 : s->timeout_ms, s->data, s->len};
            q = chanbatch_put_rec(q, &o);
        }
        const char *h[] = {"Content-Type: " CHANBATCH_CONTENT_TYPE, src, dst,
                           "x-ptp-tech-provider-code: BFIA-GW", NULL};
        l->body = b;
        l->bmac = reqsig_bmac_ready(app->reqsig, p->peer, bytes);
        rc = peer_call_raw(app, p->peer, CHANBATCH_PATH, h, b, bytes, true, true, tmo,
                           app->cfg->transport_relay_retries, on_lane_done, l, &l->h);
        c->relay_batches++;
    } else {
        /* one message, the raw invoke form; session, topic and task in the
         * signed query (chan.c of the receiver checks them against the headers) */
        struct chan_send *s = fly;
        char *qs = qesc(s->session), *qt = qesc(s->topic), *qk = qesc(s->scope);
        char *path = gw_xasprintf("/v1/interconn/chan/invoke?session=%s&topic=%s&task=%s"
                                  "&timeout=%lld&nowait=1", qs, qt, qk,
                                  (s->timeout_ms + 999) / 1000);
        free(qs);
        free(qt);
        free(qk);
        char *hv[8];
        int k = 0;
        hv[k++] = gw_xasprintf("x-ptp-tech-provider-code: %s", s->provider ? s->provider : "BFIA-GW");
        hv[k++] = gw_xasprintf("x-ptp-trace-id: %s", s->trace ? s->trace : "");
        /* the session id as x-ptp-token (FATE-Flow's value): the task's
         * capability never leaves this node */
        hv[k++] = gw_xasprintf("x-ptp-token: %s", s->session);
        hv[k++] = gw_xasprintf("x-ptp-session-id: %s", s->session);
        hv[k++] = gw_xasprintf("x-ptp-topic: %s", *s->topic ? s->topic : "-");
        hv[k++] = gw_xasprintf("x-ptp-timeout: %lld", s->timeout_ms);
        const char *h[] = {"Content-Type: application/octet-stream", src, dst, hv[0], hv[1], hv[2],
                           hv[3], hv[4], hv[5], NULL};
        l->bmac = reqsig_bmac_ready(app->reqsig, p->peer, s->len);
        rc = peer_call_raw(app, p->peer, path, h, s->data, s->len, true, true, tmo,
                           app->cfg->transport_relay_retries, on_lane_done, l, &l->h);
        for (int i = 0; i < k; i++)
            free(hv[i]);
        free(path);
        c->relay_singles++;
    }
    if (rc != 0) {
        free(l->body);
        l->body = NULL;
        l->h = NULL;
        finish_all(fly, rc == GW_ENOTFOUND ? CHAN_E_NONET : CHAN_E_SERVER,
                   rc == GW_ENOTFOUND ? "no route to the target node" : "cannot relay now");
        chan_relay_done(c, false);
        event_active(l->kick, 0, 0); /* the rest of the lane */
        return;
    }
    l->fly = fly;
    l->nfly = n;
    l->batched = batch;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lane *l = arg;
    l->kicking = false;
    lane_kick(l);
}

/* s found its queue at the peer full: park it (true), or it is done. */
static bool park(struct chan *c, struct chan_send *s, const char *code, long long now,
                 struct chan_send **pl, struct chan_send **pt)
{
    if (strcmp(code, CHAN_E_FULL) != 0 || !s->cb || now >= s->deadline)
        return false;
    long long d = PARK_FIRST_MS << (s->tries < 6 ? s->tries : 6);
    if (!s->tries++)
        c->relay_parked++; /* messages, not attempts */
    s->not_before = now + (d < PARK_MAX_MS ? d : PARK_MAX_MS);
    chain_append(pl, pt, s);
    return true;
}

/* The messages of list (a request's, or parked ones) back at the head of
 * their lane in their order; those cancelled meanwhile (by a callback of
 * this answer) need not go.  parked: they may run out of time there. */
static void lane_return(struct lane *l, struct chan_send *list, bool parked)
{
    struct chan_send *h = NULL, *t = NULL;
    for (struct chan_send *s = list, *nx; s; s = nx) {
        nx = s->next;
        if (!s->cb) {
            send_free(s);
            continue;
        }
        s->flying = false;
        if (parked && s->deadline > l->parked_until)
            l->parked_until = s->deadline;
        chain_append(&h, &t, s);
    }
    if (!h)
        return;
    t->next = l->head;
    if (l->head)
        l->head->prev = t;
    else
        l->tail = t;
    l->head = h;
}

/* The peer refused the request for its signature (5004): after a body MAC,
 * its key changed or it no longer takes MACs (reqsig.h). */
static bool auth_refused(const struct httpc_resp *hr)
{
    if (!hr->body_len || hr->body[0] != '{')
        return false;
    cJSON *j = json_parse(hr->body, hr->body_len, NULL);
    const cJSON *code = j ? cJSON_GetObjectItemCaseSensitive(j, "code") : NULL;
    bool r = cJSON_IsNumber(code) && code->valuedouble == 5004;
    cJSON_Delete(j);
    return r;
}

static void on_lane_done(void *arg, const struct httpc_resp *hr)
{
    struct lane *l = arg;
    struct peerq *p = l->pq;
    struct chan *c = p->c;
    struct chan_send *fly = l->fly;
    size_t n = l->nfly;
    bool batched = l->batched;
    l->h = NULL;
    l->fly = NULL;
    l->nfly = 0;
    free(l->body);
    l->body = NULL;
    char msg[320];
    bool bmac = l->bmac;
    l->bmac = false;
    if (!hr->err)
        reqsig_bmac_learn(c->app->reqsig, p->peer, hr->captured);
    if (!hr->err && bmac && auth_refused(hr)) {
        /* a body MAC the peer did not take (its node key changed and it
         * restarted, or it was rolled back to a gateway without them):
         * nothing was enqueued; once more, keyed as its answer says (or
         * with SHA-256) */
        bool again = true;
        for (struct chan_send *s = fly; s; s = s->next)
            again = again && !s->bmac_resent;
        if (again) {
            log_kv(LOG_LEVEL_INFO, NULL, "transport.body_mac",
                   "peer refused the body MAC; sending again keyed as it now says", "peer",
                   p->peer, "key", hr->captured ? hr->captured : "none (SHA-256)", NULL);
            for (struct chan_send *s = fly; s; s = s->next)
                s->bmac_resent = true;
            lane_return(l, fly, false);
            lane_kick(l);
            return;
        }
    }
    if (hr->err) {
        /* the peer is down: what waits behind this request in the lane would
         * only wait for the same retries; it fails now too */
        snprintf(msg, sizeof(msg), "node %.64s unreachable after %d attempts: %.150s", p->peer,
                 hr->attempts, hr->errmsg);
        struct chan_send *rest = l->head;
        l->head = l->tail = NULL;
        p->nowait = false; /* it may come back as another version: asked again */
        for (struct chan_send *s = rest; s; s = s->next)
            s->flying = true;
        c->relay_fail += n;
        finish_all(fly, CHAN_E_UNREACHABLE, msg);
        finish_all(rest, CHAN_E_UNREACHABLE, msg);
        return;
    }
    if (batched) {
        struct chanbatch_res whole, *res = gw_xcalloc(n, sizeof(*res));
        if (chanbatch_parse_answer(hr->body, hr->body_len, n, &whole, res) != 0) {
            /* not a batch answer: a gateway of ours from before batches (it
             * refused the form: nothing was enqueued), or the request itself
             * refused (then the single form says why).  Singles for a while,
             * these first, in their order. */
            free(res);
            p->nobatch_until = chan_now() + NOBATCH_MS;
            char st[16];
            snprintf(st, sizeof(st), "%ld", hr->status);
            log_kv(LOG_LEVEL_WARN, NULL, "transport.nobatch",
                   "peer did not answer a batch; single messages to it for a minute", "peer",
                   p->peer, "status", st, NULL);
            lane_return(l, fly, false);
            lane_kick(l);
            return;
        }
        size_t i = 0;
        bool whole_ok = strcmp(whole.code, CHAN_OK) == 0;
        if (whole_ok)
            p->nowait = strcmp(whole.msg, CHANBATCH_NOWAIT) == 0;
        long long now = chan_now();
        struct chan_send *pl = NULL, *pt = NULL;
        for (struct chan_send *s = fly, *nx; s; s = nx, i++) {
            nx = s->next;
            const char *code = whole_ok ? res[i].code : whole.code;
            const char *m = whole_ok ? res[i].msg : whole.msg;
            if (park(c, s, code, now, &pl, &pt))
                continue;
            chan_relay_done(c, strcmp(code, CHAN_OK) == 0);
            if (s->cb)
                s->cb(s->arg, code, m);
            send_free(s);
        }
        free(res);
        lane_return(l, pl, true);
    } else {
        char code[32];
        if (!c->raw_answer ||
            c->raw_answer(hr->body, hr->body_len, code, msg, sizeof(msg)) != 0) {
            snprintf(code, sizeof(code), "%s", CHAN_E_UNREACHABLE);
            snprintf(msg, sizeof(msg), "node %.64s answered HTTP %ld without a transport answer",
                     p->peer, hr->status);
        }
        struct chan_send *pl = NULL, *pt = NULL;
        if (park(c, fly, code, chan_now(), &pl, &pt)) {
            lane_return(l, pl, true);
        } else {
            chan_relay_done(c, strcmp(code, CHAN_OK) == 0);
            finish_all(fly, code, msg);
        }
    }
    lane_kick(l);
}

/* ---- metrics ------------------------------------------------------------------------------ */

static const char *const codes[] = {CHAN_OK,           CHAN_E_BAD,      CHAN_E_AUTH,
                                    CHAN_E_NOTFOUND,   CHAN_E_TOOBIG,   CHAN_E_SERVER,
                                    CHAN_E_TIMEOUT,    CHAN_E_UNREACHABLE, CHAN_E_RELEASED,
                                    CHAN_E_NOTPERMIT,  CHAN_E_CODEC,    CHAN_E_NONET,
                                    CHAN_E_FULL,       "other"};

void chan_count(struct chan *c, int api, const char *code)
{
    if (!c || api < 0 || api >= CHAN_API_MAX)
        return;
    size_t i = 0;
    for (; i < GW_ARRAY_LEN(codes) - 1; i++)
        if (strcmp(codes[i], code) == 0)
            break;
    c->answers[api][i]++;
}

void chan_metrics(const struct chan *c, FILE *out)
{
    if (!c)
        return;
    static const char *const apis[] = {"push", "pop", "peek", "release", "invoke"};
    struct chanq_stats st;
    chanq_stats(c->q, &st);
    fprintf(out,
            "# HELP gateway_transport_sessions Channel sessions (per task scope) held now.\n"
            "# TYPE gateway_transport_sessions gauge\n"
            "gateway_transport_sessions %zu\n"
            "# HELP gateway_transport_queues Topic queues holding messages now.\n"
            "# TYPE gateway_transport_queues gauge\n"
            "gateway_transport_queues %zu\n"
            "# HELP gateway_transport_messages Messages held, waiting for their pop.\n"
            "# TYPE gateway_transport_messages gauge\n"
            "gateway_transport_messages %zu\n"
            "# HELP gateway_transport_bytes Payload bytes held (queued, or in pushes waiting for room).\n"
            "# TYPE gateway_transport_bytes gauge\n"
            "gateway_transport_bytes{state=\"queued\"} %zu\n"
            "gateway_transport_bytes{state=\"waiting\"} %zu\n"
            "# HELP gateway_transport_waiters Requests waiting: pops for a message, pushes for room.\n"
            "# TYPE gateway_transport_waiters gauge\n"
            "gateway_transport_waiters{op=\"pop\"} %zu\n"
            "gateway_transport_waiters{op=\"push\"} %zu\n"
            "# HELP gateway_transport_released Released sessions remembered (late traffic: E0000000608).\n"
            "# TYPE gateway_transport_released gauge\n"
            "gateway_transport_released %zu\n"
            "# HELP gateway_transport_events_total Queue events.\n"
            "# TYPE gateway_transport_events_total counter\n"
            "gateway_transport_events_total{event=\"push\"} %llu\n"
            "gateway_transport_events_total{event=\"pop\"} %llu\n"
            "gateway_transport_events_total{event=\"timeout\"} %llu\n"
            "gateway_transport_events_total{event=\"full\"} %llu\n"
            "gateway_transport_events_total{event=\"refused_released\"} %llu\n"
            "gateway_transport_events_total{event=\"expired\"} %llu\n"
            "gateway_transport_events_total{event=\"dropped\"} %llu\n"
            "# HELP gateway_transport_relays_total Messages relayed to peer nodes, by outcome.\n"
            "# TYPE gateway_transport_relays_total counter\n"
            "gateway_transport_relays_total{outcome=\"ok\"} %llu\n"
            "gateway_transport_relays_total{outcome=\"error\"} %llu\n"
            "gateway_transport_relays_total{outcome=\"parked\"} %llu\n"
            "# HELP gateway_transport_relay_requests_total Relay requests to peers of ours: batches, and messages sent alone.\n"
            "# TYPE gateway_transport_relay_requests_total counter\n"
            "gateway_transport_relay_requests_total{form=\"batch\"} %llu\n"
            "gateway_transport_relay_requests_total{form=\"single\"} %llu\n"
            "# HELP gateway_transport_answers_total Channel API answers by operation and code.\n"
            "# TYPE gateway_transport_answers_total counter\n",
            st.sessions, st.queues, st.msgs, st.bytes, st.wait_bytes, st.pop_waiters,
            st.push_waiters, st.released, st.pushes, st.pops, st.timeouts, st.full,
            st.refused_released, st.expired, st.dropped, c->relay_ok, c->relay_fail,
            c->relay_parked, c->relay_batches, c->relay_singles);
    for (int a = 0; a < CHAN_API_MAX; a++)
        for (size_t i = 0; i < GW_ARRAY_LEN(codes); i++)
            if (c->answers[a][i])
                fprintf(out, "gateway_transport_answers_total{op=\"%s\",code=\"%s\"} %llu\n",
                        apis[a], codes[i], c->answers[a][i]);
}
