/*
 * runner.c - one container per t_task row, driven by Engine API callbacks.
 *
 * Each row being driven has one struct run.  Lifetime: the runner's table
 * (r->runs, looked up by key) holds one reference while the run is alive;
 * every engine call, store call and timer callback in flight holds one
 * more, taken when the call starts and released by its completion.  When
 * the run ends (its outcome written and its container removed, or it gave
 * up) it leaves the table; the last release hands it to a zero-delay reaper
 * event, so nothing is ever freed inside a callback that still uses it.
 */
#include "runner.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "container/attest.h"
#include "container/docker.h"
#include "gateway/cfg.h"
#include "gateway/json.h"
#include "gateway/log.h"

struct run {
    struct runner *r;
    struct run *prev, *next;
    int refs;
    bool ended;         /* out of the table; only calls in flight hold it */
    char *job_id, *task_id, *role;
    int role_index;
    char idx[12];
    char *name;         /* container name */
    char *cid;          /* container id, once known */
    char *digest;       /* image the row pins */
    cJSON *spec;        /* t_task.spec */
    bool adopt_only;    /* reconcile: container already exists and runs */
    bool kill_pending;  /* a stop arrived before the container was known */
    struct docker_call *wait;
    bool counted;       /* holds one of the launch slots */
    bool queued;        /* waits for a launch slot */
    struct run *q_next;
    /* outcome */
    long exit_code;
    bool oom;
    char *error;        /* engine error or lost-container reason */
    char *logs;
    char *jti;          /* launch token id */
    char *tokdir;       /* <attest_dir>/<hash of the container name> (tokdir_for) */
    char *token;        /* the launch token now in tokdir/token.jwt */
    char *env_tok;      /* T0, for config.attest.token (attest.env_token) */
    char *env_jti;      /* its jti: the container's org.bfia.attest.jti label */
    void *agent;        /* the task socket's listener (sock ops), or NULL */
    char *agent_path;   /* tokdir/agent.sock */
    struct event *refresh; /* re-mints the launch token at 80 % of its TTL */
    char *tok_pending;     /* a re-minted token waiting for its row update */
    char *jti_pending;
    bool refreshing;       /* that row update is in flight */
    struct log_ctx log;
};

struct runner {
    struct runner_env env;
    runner_notify_cb notify;
    void *notify_ctx;
    struct run *runs;   /* alive, and ended ones still referenced (ended set) */
    struct run *dead;   /* released: freed by the reaper */
    struct event *reaper;
    int n;
    int launching;
    struct run *q_head, *q_tail;
    /* reconcile */
    void (*rec_done)(void *arg, int err, const char *msg);
    void *rec_arg;
    cJSON *rec_containers;
    int rec_pending;
};

static const struct gw_cfg *cfg_of(const struct runner *r)
{
    return *r->env.cfg;
}

#define ENG(r) ((r)->env.engine)
#define EGX(r) ((r)->env.engine_ctx)
#define STORE(r) ((r)->env.store)
#define STX(r) ((r)->env.store_ctx)

static void rearm(struct run *u);
static void release_slot(struct run *u);
static void refresh_arm(struct run *u, int secs);
static int refresh_period(const struct run *u);
static void finish(struct run *u);

/* ---- lifetime ---------------------------------------------------------------- */

static struct run *run_hold(struct run *u)
{
    u->refs++;
    return u;
}

static void run_free(struct run *u)
{
    if (u->refresh)
        event_free(u->refresh);
    free(u->tok_pending);
    free(u->jti_pending);
    free(u->job_id);
    free(u->task_id);
    free(u->role);
    free(u->name);
    free(u->cid);
    free(u->digest);
    free(u->error);
    free(u->logs);
    free(u->jti);
    free(u->agent_path);
    free(u->token);
    free(u->env_tok);
    free(u->env_jti);
    free(u->tokdir);
    cJSON_Delete(u->spec);
    free(u);
}

static void run_unlink(struct run *u)
{
    struct runner *r = u->r;
    if (u->prev)
        u->prev->next = u->next;
    else
        r->runs = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->prev = u->next = NULL;
}

static void run_release(struct run *u)
{
    if (--u->refs > 0)
        return;
    struct runner *r = u->r;
    run_unlink(u);
    u->next = r->dead;
    r->dead = u;
    event_active(r->reaper, EV_TIMEOUT, 0);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct runner *r = arg;
    while (r->dead) {
        struct run *u = r->dead;
        r->dead = u->next;
        run_free(u);
    }
}

static void sock_close(struct runner *r, void *h)
{
    if (h && r->env.sock)
        r->env.sock->unlisten(r->env.sock_ctx, h);
}

/* The run is over: out of the lookups and the launch queue, its slot,
 * timer, wait and socket given back; freed once the last call in flight
 * returns (it stays listed until then, so runner_free finds it). */
static void run_end(struct run *u)
{
    if (u->ended)
        return;
    struct runner *r = u->r;
    u->ended = true;
    if (u->queued) {
        struct run **pp = &r->q_head;
        while (*pp && *pp != u)
            pp = &(*pp)->q_next;
        if (*pp)
            *pp = u->q_next;
        if (r->q_tail == u) {
            r->q_tail = NULL;
            for (struct run *x = r->q_head; x; x = x->q_next)
                r->q_tail = x;
        }
        u->queued = false;
    }
    release_slot(u);
    r->n--;
    if (u->wait) {
        ENG(u->r)->cancel(EGX(u->r), u->wait); /* its callback will not run: its reference goes here */
        u->wait = NULL;
        run_release(u);
    }
    if (u->refresh)
        event_del(u->refresh);
    /* The socket file stays: the container may outlive this process, and
     * the next start listens on it again (adoption). */
    sock_close(r, u->agent);
    u->agent = NULL;
    run_release(u); /* the table's */
}

static struct run *run_find(const struct runner *r, const struct runner_key *k)
{
    for (struct run *u = r->runs; u; u = u->next)
        if (!u->ended && u->role_index == k->role_index && strcmp(u->job_id, k->job_id) == 0 &&
            strcmp(u->task_id, k->task_id) == 0 && strcmp(u->role, k->role) == 0)
            return u;
    return NULL;
}

static struct run *run_new(struct runner *r, const struct runner_key *k)
{
    struct run *u = gw_xcalloc(1, sizeof(*u));
    u->r = r;
    u->refs = 1; /* the table's */
    u->job_id = gw_xstrdup(k->job_id);
    u->task_id = gw_xstrdup(k->task_id);
    u->role = gw_xstrdup(k->role);
    u->role_index = k->role_index;
    snprintf(u->idx, sizeof(u->idx), "%d", k->role_index);
    u->exit_code = -1;
    u->log.node_id = cfg_of(r)->node_id;
    u->log.job_id = u->job_id;
    u->log.task_id = u->task_id;
    u->next = r->runs;
    if (r->runs)
        r->runs->prev = u;
    r->runs = u;
    r->n++;
    return u;
}

static struct runner_key key_of(const struct run *u)
{
    struct runner_key k = {u->job_id, u->task_id, u->role, u->role_index};
    return k;
}

int runner_active(const struct runner *r)
{
    return r->n;
}

int runner_runs_held(const struct runner *r)
{
    int n = 0;
    for (const struct run *u = r->runs; u; u = u->next)
        n++;
    return n;
}

char *runner_container_name(const char *role, const char *node, const char *task_id, int attempt)
{
    char *s = gw_xasprintf("%s-%s-%s-%d", role, node, task_id, attempt);
    for (char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            *p = '_';
    if (strlen(s) > 128)
        s[128] = '\0';
    return s;
}

/* ---- finishing ------------------------------------------------------------ */

static void notify(struct run *u)
{
    if (u->r->notify)
        u->r->notify(u->r->notify_ctx, u->job_id, u->task_id);
}

static void on_removed(void *arg, const struct docker_result *res)
{
    struct run *u = arg;
    if (res->err)
        log_kv(LOG_LEVEL_WARN, &u->log, "container.remove", "could not remove the container",
               "container", u->name, "err", res->msg, NULL);
    run_end(u);
    run_release(u);
}

static void remove_and_end(struct run *u)
{
    if (u->cid && cfg_of(u->r)->docker_retain_s == 0 &&
        ENG(u->r)->remove(EGX(u->r), u->cid, on_removed, run_hold(u)) == 0)
        return;
    if (u->cid && cfg_of(u->r)->docker_retain_s == 0)
        run_release(u); /* the remove did not start */
    run_end(u);
}

static void on_final_written(void *arg, const struct db_rows *r)
{
    struct run *u = arg;
    if (r->err) {
        /* The container has ended but the row could not be written: keep the
         * container so the next reconcile (or a retry) records the outcome. */
        log_kv(LOG_LEVEL_ERROR, &u->log, "task.finish", "could not record the task outcome",
               "err", r->msg, NULL);
        run_end(u);
        run_release(u);
        return;
    }
    const char *st = r->n > 1 ? db_rows_get(r, 1, 6) : "";
    char ec[24];
    snprintf(ec, sizeof(ec), "%ld", u->exit_code);
    log_kv(LOG_LEVEL_INFO, &u->log, "task.finish", "task container ended", "role", u->role,
           "status", st ? st : "", "exit_code", ec, "oom", u->oom ? "true" : "false", "error",
           u->error ? u->error : "", NULL);
    notify(u);
    remove_and_end(u);
    run_release(u);
}

/* Revocation: the token file goes when the container ends. */
static void token_revoke(struct run *u)
{
    if (!u->tokdir)
        return;
    char *f = gw_xasprintf("%s/token.jwt", u->tokdir);
    unlink(f);
    free(f);
    if (u->agent) {
        sock_close(u->r, u->agent);
        u->agent = NULL;
        unlink(u->agent_path);
    }
    free(u->token);
    u->token = NULL;
    rmdir(u->tokdir);
}

/*
 * Record the end.  The exit code decides: 0 without OOM is SUCCESS unless the
 * component itself claimed FAILED.  A row already terminal (stopped) keeps
 * its status but still gets the exit code and the log tail.
 */
static void finish(struct run *u)
{
    if (u->refresh)
        event_del(u->refresh);
    token_revoke(u);
    const char *status = (u->exit_code == 0 && !u->oom && !u->error) ? "SUCCESS" : "FAILED";
    char reason[512];
    if (u->error)
        snprintf(reason, sizeof(reason), "%s", u->error);
    else if (u->oom)
        snprintf(reason, sizeof(reason),
                 "container was killed: out of memory (exit code %ld, OOMKilled)", u->exit_code);
    else if (u->exit_code != 0)
        snprintf(reason, sizeof(reason), "container exited with code %ld", u->exit_code);
    else
        reason[0] = '\0';
    char ec[24];
    snprintf(ec, sizeof(ec), "%ld", u->exit_code);
    struct runner_key k = key_of(u);
    struct runner_outcome o = {.k = &k,
                               .status = status,
                               .exit_code = u->exit_code < 0 ? NULL : ec,
                               .oom = u->oom,
                               .reason = reason,
                               .logs = u->logs ? u->logs : ""};
    if (STORE(u->r)->finished(STX(u->r), &o, on_final_written, run_hold(u)) != 0) {
        log_kv(LOG_LEVEL_ERROR, &u->log, "task.finish",
               "database unavailable; outcome left for reconcile", NULL);
        run_release(u);
        run_end(u);
    }
}

static void on_logs(void *arg, const struct docker_result *res)
{
    struct run *u = arg;
    if (res->err == 0 && res->text) {
        size_t n = res->text_len, cap = (size_t)cfg_of(u->r)->docker_log_tail_bytes;
        const char *t = res->text;
        if (n > cap) {
            t += n - cap;
            n = cap;
        }
        /* valid text for PostgreSQL: UTF-8 kept, NUL and broken sequences
         * (a cut at the front included) replaced */
        free(u->logs);
        u->logs = json_utf8_clean(t, n);
    }
    finish(u);
    run_release(u);
}

static void on_inspect_end(void *arg, const struct docker_result *res)
{
    struct run *u = arg;
    if (res->err == GW_ENOTFOUND) {
        free(u->error);
        u->error = gw_xstrdup("container vanished: removed outside the gateway before its "
                              "outcome was read");
        free(u->cid);
        u->cid = NULL;
        finish(u);
        run_release(u);
        return;
    }
    if (res->err == 0 && res->json) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(res->json, "State");
        const cJSON *ec = cJSON_GetObjectItemCaseSensitive(st, "ExitCode");
        const cJSON *oom = cJSON_GetObjectItemCaseSensitive(st, "OOMKilled");
        const cJSON *er = cJSON_GetObjectItemCaseSensitive(st, "Error");
        const cJSON *running = cJSON_GetObjectItemCaseSensitive(st, "Running");
        if (cJSON_IsTrue(running)) {
            /* The wait ended but the container still runs (engine restart
             * cut the long poll): wait again. */
            free(u->error);
            u->error = NULL;
            u->adopt_only = true;
            rearm(u);
            run_release(u);
            return;
        }
        if (cJSON_IsNumber(ec))
            u->exit_code = (long)ec->valuedouble;
        u->oom = cJSON_IsTrue(oom);
        if (cJSON_IsString(er) && er->valuestring[0] && !u->error)
            u->error = gw_xasprintf("engine: %s", er->valuestring);
    } else if (!u->error) {
        u->error = gw_xasprintf("cannot inspect the finished container: %s", res->msg);
    }
    if (ENG(u->r)->logs(EGX(u->r), u->cid, cfg_of(u->r)->docker_log_tail, on_logs,
                              run_hold(u)) != 0) {
        run_release(u);
        finish(u);
    }
    run_release(u);
}

static void on_wait(void *arg, const struct docker_result *res)
{
    struct run *u = arg;
    u->wait = NULL;
    if (res->err && res->err != GW_ENOTFOUND)
        log_kv(LOG_LEVEL_WARN, &u->log, "container.wait", "wait ended with an error", "err",
               res->msg, NULL);
    if (ENG(u->r)->inspect(EGX(u->r), u->cid, on_inspect_end, run_hold(u)) != 0) {
        run_release(u);
        u->error = gw_xstrdup("cannot inspect the finished container");
        finish(u);
    }
    run_release(u); /* the wait's */
}

static void on_started(void *arg, const struct docker_result *res)
{
    struct run *u = arg;
    if (res->err && !u->wait) {
        /* The wait has returned already (the container ran and exited, a
         * late client-side timeout of the start call) or the run ended:
         * the exit code decides, the outcome is not written twice. */
        log_kv(LOG_LEVEL_WARN, &u->log, "task.start", "start failed after the container exited",
               "err", res->msg, NULL);
        run_release(u);
        return;
    }
    if (res->err) {
        /* The wait is armed; cancel it and record the engine's refusal. */
        if (u->wait) {
            ENG(u->r)->cancel(EGX(u->r), u->wait);
            u->wait = NULL;
            run_release(u);
        }
        u->error = gw_xasprintf("engine refused to start the container: %s", res->msg);
        finish(u);
        run_release(u);
        return;
    }
    release_slot(u);
    log_kv(LOG_LEVEL_INFO, &u->log, "task.start", "task container started", "container", u->name,
           "role", u->role, NULL);
    notify(u);
    if (u->kill_pending) {
        struct runner_key k = key_of(u);
        runner_kill(u->r, &k, u->cid);
    }
    run_release(u);
}

static void on_wait_armed(void *arg)
{
    struct run *u = arg;
    if (u->adopt_only) {
        release_slot(u);
        return;
    }
    if (ENG(u->r)->start(EGX(u->r), u->cid, on_started, run_hold(u)) != 0) {
        run_release(u);
        if (u->wait) {
            ENG(u->r)->cancel(EGX(u->r), u->wait);
            u->wait = NULL;
            run_release(u);
        }
        u->error = gw_xstrdup("cannot send the start call to the engine");
        finish(u);
    }
}

static void rearm(struct run *u)
{
    /* A container we are about to start is "created", which already counts
     * as not-running: wait for its next exit instead.  An adopted one
     * (running or exited) is waited for with not-running.  The wait holds
     * a reference until on_wait (or its cancellation). */
    if (ENG(u->r)->wait(EGX(u->r), u->cid, u->adopt_only ? "not-running" : "next-exit",
                              on_wait_armed, on_wait, run_hold(u), &u->wait) != 0) {
        run_release(u);
        u->error = gw_xstrdup("cannot wait for the container");
        finish(u);
    }
}

static void on_running_written(void *arg, const struct db_rows *r)
{
    struct run *u = arg;
    if (r->err) {
        u->error = gw_xstrdup("cannot record the launch (database error; see the node's log)");
        log_kv(LOG_LEVEL_ERROR, &u->log, "task.start", "cannot record the launch", "err", r->msg,
               NULL);
        finish(u);
    } else if (r->n == 0 || atoll(db_rows_get(r, 0, 2)) == 0) {
        /* Stopped (or finished) while the container was being created: it
         * must not run. */
        log_kv(LOG_LEVEL_INFO, &u->log, "task.start", "task no longer startable; container removed",
               "container", u->name, NULL);
        token_revoke(u); /* its launch token was written before the CAS */
        remove_and_end(u);
    } else {
        refresh_arm(u, refresh_period(u));
        rearm(u);
    }
    run_release(u);
}

static void mark_running(struct run *u)
{
    struct runner_key k = key_of(u);
    struct runner_launch_rec l = {.k = &k,
                                  .container_id = u->cid,
                                  .container_name = u->name,
                                  .token_jti = u->jti,
                                  .env_token_jti = u->env_jti};
    if (STORE(u->r)->running(STX(u->r), &l, on_running_written, run_hold(u)) != 0) {
        run_release(u);
        u->error = gw_xstrdup("database unavailable at launch");
        finish(u);
    }
}

static const char *spec_str(const struct run *u, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(u->spec, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Mint a launch token for this run (claims from its spec, image and
 * container); *jti receives its id.  NULL when it cannot be minted. */
static char *mint(struct run *u, char **jti)
{
    struct attest_launch in = {
        .job_id = u->job_id,
        .task_id = u->task_id,
        .task_name = spec_str(u, "task_name"),
        .role = u->role,
        .role_index = u->role_index,
        .component = spec_str(u, "component"),
        .provider = spec_str(u, "provider"),
        .version = spec_str(u, "version"),
        .image_ref = spec_str(u, "image"),
        .image_digest = u->digest,
        .container_name = u->name,
        .container_id = u->cid,
        .env = cJSON_GetObjectItemCaseSensitive(u->spec, "env"),
        .now = (long long)time(NULL),
        .ttl_s = cfg_of(u->r)->attest_token_ttl_s,
    };
    char *tok = NULL;
    *jti = NULL;
    if (attest_mint_launch(u->r->env.attest, &in, &tok, jti) != 0)
        return NULL;
    return tok;
}

/* Replace token.jwt in the directory mounted at /run/bfia/attest: write a
 * temporary file and rename it, so the container (which sees the directory,
 * not the file) reads either the old token or the new one, never half. */
static int write_token(const struct run *u, const char *tok)
{
    char *tmp = gw_xasprintf("%s/.token.tmp", u->tokdir), *dst = gw_xasprintf("%s/token.jwt", u->tokdir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
    int rc = -1;
    if (fd >= 0) {
        size_t n = strlen(tok);
        rc = write(fd, tok, n) == (ssize_t)n ? 0 : -1;
        close(fd);
        if (rc == 0)
            rc = rename(tmp, dst);
        else
            unlink(tmp);
    }
    free(tmp);
    free(dst);
    return rc;
}

/*
 * The container's attest directory: <attest_dir>/<first 80 bits of
 * SHA-256(container name), hex>.  Short on purpose: agent.sock inside it
 * must fit in sun_path (108 bytes) whatever the task ids of the initiator.
 * A container created by an earlier version has <attest_dir>/<name>
 * mounted: that one is kept.
 */
static char *tokdir_for(const struct runner *r, const char *name)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[21];
    if (!EVP_Digest(name, strlen(name), md, &mdlen, EVP_sha256(), NULL) || mdlen < 10)
        abort();
    for (int i = 0; i < 10; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    char *dir = gw_xasprintf("%s/%s", r->env.attest_dir, hex);
    struct stat st;
    if (stat(dir, &st) != 0) {
        char *old = gw_xasprintf("%s/%s", r->env.attest_dir, name);
        if (stat(old, &st) == 0 && S_ISDIR(st.st_mode)) {
            free(dir);
            return old;
        }
        free(old);
    }
    return dir;
}

/* The task socket (attestation.md 2.10): tokdir/agent.sock, which only this
 * container can reach (the directory is its mount).  A request arriving on
 * it is this container's, so the exchange needs no bearer token. */
static void agent_open(struct run *u)
{
    if (!u->tokdir || u->agent || !u->r->env.sock)
        return;
    free(u->agent_path);
    u->agent_path = gw_xasprintf("%s/" ATTEST_AGENT_SOCK, u->tokdir);
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    u->agent = u->r->env.sock->listen(u->r->env.sock_ctx, u->agent_path, &eb);
    if (!u->agent)
        log_kv(LOG_LEVEL_WARN, &u->log, "attest.socket",
               "no task socket for this container; it can still exchange with its bearer token",
               "err", eb.msg, NULL);
}

const char *runner_token(struct runner *r, const struct runner_key *k)
{
    const struct run *u = run_find(r, k);
    return u ? u->token : NULL;
}

const char *runner_agent_token(const struct runner *r, const char *sock_path)
{
    for (const struct run *u = r->runs; u; u = u->next)
        if (!u->ended && u->agent && strcmp(u->agent_path, sock_path) == 0)
            return u->token;
    return NULL;
}

/* The first launch token, written before the container starts. */
static int mint_token(struct run *u)
{
    free(u->jti);
    char *tok = mint(u, &u->jti);
    if (!tok)
        return -1;
    int rc = write_token(u, tok);
    free(u->token);
    u->token = rc == 0 ? tok : NULL;
    if (rc != 0)
        free(tok);
    return rc;
}

/* ---- token refresh (attestation.md 2.5-2.6) ---------------------------------
 * While the container runs, a new launch token is minted at 80 % of the TTL
 * (48 min of 60): the row's token_id moves to the new jti first (the old one
 * stays acceptable as prev_token_id until it expires), then the file is
 * replaced.  The container sees the new token in the mounted directory. */

#define REFRESH_RETRY_S 30

static void on_refresh_timer(evutil_socket_t fd, short what, void *arg);

static void refresh_arm(struct run *u, int secs)
{
    if (u->ended)
        return;
    if (!u->refresh)
        u->refresh = evtimer_new(u->r->env.base, on_refresh_timer, u);
    struct timeval tv = {secs, 0};
    if (u->refresh && evtimer_add(u->refresh, &tv) != 0)
        log_kv(LOG_LEVEL_ERROR, &u->log, "attest.refresh", "cannot arm the token refresh", NULL);
}

static int refresh_period(const struct run *u)
{
    int p = cfg_of(u->r)->attest_token_ttl_s * 4 / 5;
    return p > 0 ? p : 1;
}

static void on_refresh_written(void *arg, const struct db_rows *r)
{
    struct run *u = arg;
    u->refreshing = false;
    char *tok = u->tok_pending, *jti = u->jti_pending;
    u->tok_pending = u->jti_pending = NULL;
    if (u->ended || !u->tokdir) {
        /* the container ended meanwhile: nothing to refresh */
    } else if (r->err) {
        log_kv(LOG_LEVEL_WARN, &u->log, "attest.refresh", "cannot record the new token; retrying",
               "err", r->msg, NULL);
        refresh_arm(u, REFRESH_RETRY_S);
    } else if (r->n == 0) {
        /* the task is no longer running here: nothing to refresh */
    } else if (write_token(u, tok) != 0) {
        log_kv(LOG_LEVEL_ERROR, &u->log, "attest.refresh", "cannot write the new token; retrying",
               "dir", u->tokdir, NULL);
        refresh_arm(u, REFRESH_RETRY_S);
    } else {
        free(u->jti);
        u->jti = jti;
        jti = NULL;
        free(u->token);
        u->token = tok;
        tok = NULL;
        log_kv(LOG_LEVEL_DEBUG, &u->log, "attest.refresh", "launch token refreshed", "container",
               u->name, NULL);
        refresh_arm(u, refresh_period(u));
    }
    free(tok);
    free(jti);
    run_release(u);
}

static void refresh_now(struct run *u)
{
    if (u->ended || !u->tokdir || !u->cid || !u->spec || !u->digest || u->refreshing)
        return;
    u->tok_pending = mint(u, &u->jti_pending);
    if (!u->tok_pending) {
        log_kv(LOG_LEVEL_ERROR, &u->log, "attest.refresh", "cannot mint a launch token; retrying",
               NULL);
        refresh_arm(u, REFRESH_RETRY_S);
        return;
    }
    struct runner_key k = key_of(u);
    u->refreshing = true;
    if (STORE(u->r)->token(STX(u->r), &k, u->cid, u->jti_pending, on_refresh_written,
                           run_hold(u)) != 0) {
        run_release(u);
        u->refreshing = false;
        free(u->tok_pending);
        free(u->jti_pending);
        u->tok_pending = u->jti_pending = NULL;
        refresh_arm(u, REFRESH_RETRY_S);
    }
}

static void on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    refresh_now(arg);
}

/* ---- launch ---------------------------------------------------------------- */

static void on_created_inspect(void *arg, const struct docker_result *res)
{
    struct run *u = arg;
    if (res->err) {
        u->error = gw_xasprintf("cannot inspect the created container: %s", res->msg);
        finish(u);
        run_release(u);
        return;
    }
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(res->json, "Image");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(res->json, "Id");
    if (!u->cid && cJSON_IsString(id))
        u->cid = gw_xstrdup(id->valuestring);
    if (!cJSON_IsString(img) || strcmp(img->valuestring, u->digest) != 0) {
        u->error = gw_xasprintf("image check failed: container runs %s, the provider pins %s",
                                cJSON_IsString(img) ? img->valuestring : "(none)", u->digest);
        finish(u);
        run_release(u);
        return;
    }
    /* The T0 in the container's environment is the one its label names (a
     * container adopted by name was created with an earlier T0, or none). */
    const cJSON *lj = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(res->json, "Config"),
                                         "Labels"),
        "org.bfia.attest.jti");
    free(u->env_jti);
    u->env_jti = cJSON_IsString(lj) ? gw_xstrdup(lj->valuestring) : NULL;
    /* An adopted container (409 on create) may already have run. */
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(res->json, "State");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(st, "Status");
    if (cJSON_IsString(status) && strcmp(status->valuestring, "created") != 0)
        u->adopt_only = true;
    if (!u->adopt_only && mint_token(u) != 0) {
        u->error = gw_xstrdup("cannot mint the task's launch token");
        finish(u);
    } else {
        mark_running(u);
    }
    run_release(u);
}

static void on_created(void *arg, const struct docker_result *res)
{
    struct run *u = arg;
    const char *ref = NULL;
    if (res->err == 0) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(res->json, "Id");
        if (cJSON_IsString(id))
            u->cid = gw_xstrdup(id->valuestring);
        ref = u->cid;
    } else if (res->err == GW_ECONFLICT) {
        /* Same name exists: this task's container from an earlier launch
         * attempt.  Adopt it (checked by inspect) instead of a second one. */
        ref = u->name;
    } else {
        if (res->err == GW_ENOTFOUND)
            u->error = gw_xasprintf("image %s is not on the engine (%s); register the provider "
                                    "again after loading the image",
                                    u->digest, res->msg);
        else
            u->error = gw_xasprintf("engine refused to create the container: %s", res->msg);
        finish(u);
        run_release(u);
        return;
    }
    if (!ref || ENG(u->r)->inspect(EGX(u->r), ref, on_created_inspect, run_hold(u)) != 0) {
        if (ref)
            run_release(u);
        u->error = gw_xstrdup("engine returned no container id");
        finish(u);
    }
    run_release(u);
}

/* The create body of spec docker-engine.md §1.4 with the security defaults
 * of §3.7. */
static cJSON *create_body(struct run *u)
{
    const struct gw_cfg *cfg = cfg_of(u->r);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "Image", u->digest);
    cJSON *env = cJSON_AddArrayToObject(b, "Env");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(u->spec, "env"))
        if (cJSON_IsString(e))
            cJSON_AddItemToArray(env, cJSON_CreateString(e->valuestring));
    cJSON *lab = cJSON_AddObjectToObject(b, "Labels");
    cJSON_AddStringToObject(lab, "org.bfia.managed", "true");
    cJSON_AddStringToObject(lab, "org.bfia.node", cfg->node_id);
    if (u->r->env.install_id && *u->r->env.install_id)
        cJSON_AddStringToObject(lab, "org.bfia.install", u->r->env.install_id);
    cJSON_AddStringToObject(lab, "org.bfia.job", u->job_id);
    cJSON_AddStringToObject(lab, "org.bfia.task", u->task_id);
    cJSON_AddStringToObject(lab, "org.bfia.role", u->role);
    cJSON_AddStringToObject(lab, "org.bfia.role_index", u->idx);
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(u->spec, "attempt");
    char at[16];
    snprintf(at, sizeof(at), "%d", cJSON_IsNumber(att) ? att->valueint : 0);
    cJSON_AddStringToObject(lab, "org.bfia.attempt", at);
    if (u->env_jti)
        cJSON_AddStringToObject(lab, "org.bfia.attest.jti", u->env_jti);
    const cJSON *prov = cJSON_GetObjectItemCaseSensitive(u->spec, "provider");
    if (cJSON_IsString(prov))
        cJSON_AddStringToObject(lab, "org.bfia.provider", prov->valuestring);
    cJSON_AddBoolToObject(b, "Tty", false);
    cJSON_AddBoolToObject(b, "AttachStdin", false);
    cJSON_AddBoolToObject(b, "AttachStdout", false);
    cJSON_AddBoolToObject(b, "AttachStderr", false);
    cJSON_AddBoolToObject(b, "OpenStdin", false);
    cJSON_AddNumberToObject(b, "StopTimeout", 10);
    cJSON *hc = cJSON_AddObjectToObject(b, "HostConfig");
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(u->spec, "memory_bytes");
    if (cJSON_IsNumber(mem) && mem->valuedouble > 0) {
        cJSON_AddNumberToObject(hc, "Memory", mem->valuedouble);
        cJSON_AddNumberToObject(hc, "MemorySwap", mem->valuedouble);
    }
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(u->spec, "nano_cpus");
    if (cJSON_IsNumber(cpu) && cpu->valuedouble > 0)
        cJSON_AddNumberToObject(hc, "NanoCpus", cpu->valuedouble);
    cJSON_AddNumberToObject(hc, "PidsLimit", 1024);
    cJSON_AddStringToObject(hc, "NetworkMode", cfg->docker_network);
    cJSON *mounts = cJSON_AddArrayToObject(hc, "Mounts");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(u->spec, "storage_dir");
    if (cJSON_IsString(st)) {
        /* The storage root at the same path inside, so system.storage
         * (file://<root>) means the same files on both sides. */
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "Type", "bind");
        cJSON_AddStringToObject(m, "Source", st->valuestring);
        cJSON_AddStringToObject(m, "Target", st->valuestring);
        cJSON_AddBoolToObject(m, "ReadOnly", false);
        cJSON_AddItemToArray(mounts, m);
    }
    if (u->tokdir) {
        /* The launch token, read-only inside (written after create). */
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "Type", "bind");
        cJSON_AddStringToObject(m, "Source", u->tokdir);
        cJSON_AddStringToObject(m, "Target", ATTEST_MOUNT);
        cJSON_AddBoolToObject(m, "ReadOnly", true);
        cJSON_AddItemToArray(mounts, m);
        cJSON_AddItemToArray(env, cJSON_CreateString("config.attest.token_file=" ATTEST_TOKEN_FILE));
        if (u->env_tok) {
            char *kv = gw_xasprintf("config.attest.token=%s", u->env_tok);
            cJSON_AddItemToArray(env, cJSON_CreateString(kv));
            free(kv);
        }
        if (u->agent)
            cJSON_AddItemToArray(env, cJSON_CreateString("system.attest=unix://" ATTEST_MOUNT
                                                         "/" ATTEST_AGENT_SOCK));
    }
    cJSON_AddBoolToObject(hc, "Privileged", false);
    cJSON *cd = cJSON_AddArrayToObject(hc, "CapDrop");
    cJSON_AddItemToArray(cd, cJSON_CreateString("ALL"));
    cJSON *so = cJSON_AddArrayToObject(hc, "SecurityOpt");
    cJSON_AddItemToArray(so, cJSON_CreateString("no-new-privileges"));
    cJSON_AddBoolToObject(hc, "Init", true);
    cJSON_AddBoolToObject(hc, "AutoRemove", false);
    cJSON *rp = cJSON_AddObjectToObject(hc, "RestartPolicy");
    cJSON_AddStringToObject(rp, "Name", "no");
    cJSON *lc = cJSON_AddObjectToObject(hc, "LogConfig");
    cJSON_AddStringToObject(lc, "Type", "json-file");
    cJSON *lcc = cJSON_AddObjectToObject(lc, "Config");
    cJSON_AddStringToObject(lcc, "max-size", "10m");
    cJSON_AddStringToObject(lcc, "max-file", "3");
    return b;
}

static void on_row(void *arg, const struct db_rows *r)
{
    struct run *u = arg;
    if (r->err) {
        log_kv(LOG_LEVEL_ERROR, &u->log, "task.start", "cannot read the task row", "err", r->msg,
               NULL);
        run_end(u);
        run_release(u);
        return;
    }
    if (r->n == 0) {
        run_end(u); /* not READY (already running, finished or stopped) */
        run_release(u);
        return;
    }
    u->name = gw_xstrdup(db_rows_get(r, 0, 0));
    const char *spec = db_rows_get(r, 0, 1);
    u->spec = spec ? cJSON_Parse(spec) : NULL;
    const cJSON *dg = cJSON_GetObjectItemCaseSensitive(u->spec, "image_digest");
    if (!cJSON_IsString(dg)) {
        u->error = gw_xstrdup("task spec has no image digest");
        finish(u);
        run_release(u);
        return;
    }
    u->digest = gw_xstrdup(dg->valuestring);
    u->tokdir = tokdir_for(u->r, u->name);
    if (mkdir(u->tokdir, 0755) != 0 && errno != EEXIST) {
        free(u->tokdir);
        u->tokdir = NULL;
    }
    agent_open(u);
    if (u->tokdir && cfg_of(u->r)->attest_env_token) {
        /* T0 (spec 2.6 step 2): the container's name but not yet its id. */
        u->env_tok = mint(u, &u->env_jti);
        if (!u->env_tok) {
            u->error = gw_xstrdup("cannot mint the task's launch token");
            finish(u);
            run_release(u);
            return;
        }
    }
    cJSON *body = create_body(u);
    free(u->env_tok); /* in the create body now; only its jti is kept */
    u->env_tok = NULL;
    int rc = ENG(u->r)->create(EGX(u->r), u->name, body, on_created, run_hold(u));
    cJSON_Delete(body);
    if (rc != 0) {
        run_release(u);
        u->error = gw_xstrdup("cannot send the create call to the engine");
        finish(u);
    }
    run_release(u);
}

static void launch_read(struct run *u);

/* Give back a launch slot and start the next queued launch. */
static void release_slot(struct run *u)
{
    if (!u->counted)
        return;
    struct runner *r = u->r;
    u->counted = false;
    r->launching--;
    while (r->launching < cfg_of(r)->docker_launch_slots && r->q_head) {
        struct run *v = r->q_head;
        r->q_head = v->q_next;
        if (!r->q_head)
            r->q_tail = NULL;
        v->queued = false;
        v->q_next = NULL;
        v->counted = true;
        r->launching++;
        launch_read(v);
    }
}

/* Launches (create..start) in flight at once are bounded by
 * docker.launch_slots: beyond a few the engine slows down for everyone
 * (observed: 200 concurrent creates made starts take over 60 s on a
 * 2-core host).  The rest wait their turn in FIFO order. */
void runner_launch(struct runner *r, const struct runner_key *k)
{
    if (run_find(r, k))
        return;
    struct run *u = run_new(r, k);
    if (r->launching >= cfg_of(r)->docker_launch_slots) {
        u->queued = true;
        if (r->q_tail)
            r->q_tail->q_next = u;
        else
            r->q_head = u;
        r->q_tail = u;
        return;
    }
    u->counted = true;
    r->launching++;
    launch_read(u);
}

static void launch_read(struct run *u)
{
    struct runner *r = u->r;
    struct runner_key k = key_of(u);
    if (STORE(r)->spec(STX(r), &k, on_row, run_hold(u)) != 0) {
        run_release(u);
        log_kv(LOG_LEVEL_ERROR, &u->log, "task.start", "database unavailable; launch deferred",
               NULL);
        run_end(u);
    }
}

/* ---- stop ------------------------------------------------------------------ */

struct killer {
    struct runner *r;
    char *ref;
};

static void on_killed(void *arg, const struct docker_result *res)
{
    struct killer *kl = arg;
    if (res->err && res->err != GW_ENOTFOUND)
        log_kv(LOG_LEVEL_WARN, NULL, "container.kill", "kill failed", "container", kl->ref, "err",
               res->msg, NULL);
    free(kl->ref);
    free(kl);
}

void runner_kill(struct runner *r, const struct runner_key *k, const char *container)
{
    struct run *u = run_find(r, k);
    const char *ref = container;
    if (u && !u->cid) {
        u->kill_pending = true; /* create in flight: the CAS to RUNNING will fail */
        return;
    }
    if (u)
        ref = u->cid;
    if (!ref)
        return;
    struct killer *kl = gw_xcalloc(1, sizeof(*kl));
    kl->r = r;
    kl->ref = gw_xstrdup(ref);
    if (ENG(r)->kill(EGX(r), kl->ref, "SIGKILL", on_killed, kl) != 0) {
        free(kl->ref);
        free(kl);
        return;
    }
    if (!u) {
        /* Nobody waits for it (created but never started, or adopted
         * state unknown): let a driven run collect and remove it. */
        struct run *v = run_new(r, k);
        v->cid = gw_xstrdup(ref);
        v->name = gw_xstrdup(ref);
        v->adopt_only = true;
        rearm(v);
    }
}

/* ---- reconcile ------------------------------------------------------------- */

static void rec_step_done(struct runner *r)
{
    if (--r->rec_pending > 0)
        return;
    cJSON_Delete(r->rec_containers);
    r->rec_containers = NULL;
    if (r->rec_done)
        r->rec_done(r->rec_arg, 0, "");
    r->rec_done = NULL;
}

static const char *label_of(const cJSON *c, const char *k)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(c, "Labels");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void on_lost_written(void *arg, const struct db_rows *rows)
{
    struct runner *r = arg;
    if (rows->err)
        log_kv(LOG_LEVEL_ERROR, NULL, "reconcile", "cannot record lost containers", "err",
               rows->msg, NULL);
    /* Lost rows: the partner side learns of each (pushes, poll cache). */
    for (int i = 1; !rows->err && i < rows->n; i++)
        if (r->notify)
            r->notify(r->notify_ctx, db_rows_get(rows, i, 0), db_rows_get(rows, i, 1));
    rec_step_done(r);
}

static void on_orphans_written(void *arg, const struct db_rows *rows)
{
    struct runner *r = arg;
    if (rows->err)
        log_kv(LOG_LEVEL_ERROR, NULL, "reconcile", "cannot record removed orphans", "err",
               rows->msg, NULL);
    rec_step_done(r);
}

static void on_orphan_removed(void *arg, const struct docker_result *res)
{
    struct runner *r = arg;
    if (res->err)
        log_kv(LOG_LEVEL_WARN, NULL, "reconcile", "cannot remove an orphan container", "err",
               res->msg, NULL);
    rec_step_done(r);
}

static const cJSON *container_named(const struct runner *r, const char *name, bool *matched)
{
    int ci = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, r->rec_containers)
    {
        const cJSON *nm = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "Names"), 0);
        if (name && cJSON_IsString(nm) && nm->valuestring[0] == '/' &&
            strcmp(nm->valuestring + 1, name) == 0) {
            matched[ci] = true;
            return c;
        }
        ci++;
    }
    return NULL;
}

/* A live row's container exists: drive it again (adopt). */
static void adopt(struct runner *r, const struct runner_key *k, const char *status,
                  const char *name, const cJSON *found, const char *spec)
{
    if (run_find(r, k))
        return;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(found, "Id");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(found, "State");
    if (strcmp(status, "READY") == 0) {
        /* created before the crash, CAS to RUNNING never committed */
        runner_launch(r, k); /* 409 -> adopt by name */
        return;
    }
    struct run *u = run_new(r, k);
    u->cid = gw_xstrdup(id->valuestring);
    u->name = gw_xstrdup(name);
    u->tokdir = tokdir_for(r, name);
    agent_open(u);
    u->adopt_only = !(cJSON_IsString(state) && strcmp(state->valuestring, "created") == 0);
    log_kv(LOG_LEVEL_INFO, &u->log, "reconcile", "task container adopted", "container", name,
           "state", cJSON_IsString(state) ? state->valuestring : "", NULL);
    /* Its token may be near expiry (minted before the restart): a running
     * container gets a fresh one now, then every period. */
    u->spec = spec ? cJSON_Parse(spec) : NULL;
    const cJSON *dg = cJSON_GetObjectItemCaseSensitive(u->spec, "image_digest");
    if (cJSON_IsString(dg))
        u->digest = gw_xstrdup(dg->valuestring);
    if (cJSON_IsString(state) && strcmp(state->valuestring, "running") == 0)
        refresh_now(u);
    rearm(u); /* an exited container's wait returns at once */
}

static void on_rec_rows(void *arg, const struct db_rows *rows)
{
    struct runner *r = arg;
    if (rows->err) {
        cJSON_Delete(r->rec_containers);
        r->rec_containers = NULL;
        r->rec_done(r->rec_arg, GW_EDB, rows->msg);
        r->rec_done = NULL;
        return;
    }
    /* rows: job_id, task_id, role, role_index, status, container_name, spec */
    cJSON *lost = cJSON_CreateArray(), *orphans = cJSON_CreateArray();
    r->rec_pending = 1;
    int nc = cJSON_GetArraySize(r->rec_containers);
    bool *matched = gw_xcalloc((size_t)nc + 1, sizeof(bool));
    for (int i = 0; i < rows->n; i++) {
        struct runner_key k = {db_rows_get(rows, i, 0), db_rows_get(rows, i, 1),
                               db_rows_get(rows, i, 2), atoi(db_rows_get(rows, i, 3))};
        const char *status = db_rows_get(rows, i, 4);
        const char *name = db_rows_get(rows, i, 5);
        const cJSON *found = container_named(r, name, matched);
        bool live = strcmp(status, "READY") == 0 || strcmp(status, "RUNNING") == 0;
        if (!live) {
            if (found && cfg_of(r)->docker_retain_s == 0) {
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(found, "Id");
                r->rec_pending++;
                if (ENG(r)->remove(EGX(r), id->valuestring, on_orphan_removed, r) != 0)
                    r->rec_pending--;
            }
        } else if (found) {
            adopt(r, &k, status, name, found, db_rows_get(rows, i, 6));
        } else if (strcmp(status, "READY") == 0) {
            runner_launch(r, &k);
        } else {
            cJSON *o = cJSON_CreateObject();
            json_add_str(o, "job_id", k.job_id);
            json_add_str(o, "task_id", k.task_id);
            json_add_str(o, "role", k.role);
            json_add_int(o, "role_index", k.role_index);
            cJSON_AddItemToArray(lost, o);
        }
    }
    /* Containers with our labels and no row at all: orphans. */
    int ci = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, r->rec_containers)
    {
        if (matched[ci++])
            continue;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "Id");
        const cJSON *nm = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "Names"), 0);
        const char *job = label_of(c, "org.bfia.job");
        if (!cJSON_IsString(id))
            continue;
        if (!label_of(c, "org.bfia.install")) {
            /* made before installations were labelled: ours or another's,
             * nobody can tell, so it is left alone */
            log_kv(LOG_LEVEL_WARN, NULL, "reconcile",
                   "unlabelled container of this node id with no task row here: left alone",
                   "container", cJSON_IsString(nm) ? nm->valuestring : "", NULL);
            continue;
        }
        log_kv(LOG_LEVEL_WARN, NULL, "reconcile", "orphan container stopped and removed",
               "container", cJSON_IsString(nm) ? nm->valuestring : "", "job", job ? job : "",
               NULL);
        cJSON_AddItemToArray(orphans, cJSON_CreateString(cJSON_IsString(nm) ? nm->valuestring + 1
                                                                             : id->valuestring));
        r->rec_pending++;
        if (ENG(r)->remove(EGX(r), id->valuestring, on_orphan_removed, r) != 0)
            r->rec_pending--;
    }
    free(matched);
    if (cJSON_GetArraySize(lost) > 0) {
        char *js = json_print(lost);
        r->rec_pending++;
        if (STORE(r)->lost(STX(r), js, on_lost_written, r) != 0)
            r->rec_pending--;
        cJSON_free(js);
    }
    if (cJSON_GetArraySize(orphans) > 0) {
        char *js = json_print(orphans);
        r->rec_pending++;
        if (STORE(r)->orphans(STX(r), js, on_orphans_written, r) != 0)
            r->rec_pending--;
        cJSON_free(js);
    }
    cJSON_Delete(lost);
    cJSON_Delete(orphans);
    rec_step_done(r);
}

static void on_rec_list(void *arg, const struct docker_result *res)
{
    struct runner *r = arg;
    if (res->err) {
        char msg[512];
        snprintf(msg, sizeof(msg), "cannot list containers on the engine: %s", res->msg);
        r->rec_done(r->rec_arg, GW_EDOCKER, msg);
        r->rec_done = NULL;
        return;
    }
    /* Only this installation's containers (and unlabelled ones of older
     * versions) are reconciled.  Another installation's running container
     * with this node id means two live installations share the id on this
     * engine: refuse to start rather than fight over containers. */
    r->rec_containers = cJSON_CreateArray();
    const char *mine = r->env.install_id ? r->env.install_id : "";
    const cJSON *c;
    cJSON_ArrayForEach(c, res->json)
    {
        const char *inst = label_of(c, "org.bfia.install");
        if (!inst || !*mine || strcmp(inst, mine) == 0) {
            cJSON_AddItemToArray(r->rec_containers, cJSON_Duplicate(c, true));
            continue;
        }
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(c, "State");
        if (cJSON_IsString(state) && strcmp(state->valuestring, "running") == 0) {
            const cJSON *nm = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "Names"), 0);
            char msg[512];
            snprintf(msg, sizeof(msg),
                     "another installation of node %.64s (install id %.32s, container %.128s) runs "
                     "on this Docker engine: refusing to start (two installations must not share "
                     "a node id on one engine; stop the other, or give this one its own node id)",
                     cfg_of(r)->node_id, inst, cJSON_IsString(nm) ? nm->valuestring : "?");
            cJSON_Delete(r->rec_containers);
            r->rec_containers = NULL;
            r->rec_done(r->rec_arg, GW_ECONFLICT, msg);
            r->rec_done = NULL;
            return;
        }
    }
    if (STORE(r)->containers(STX(r), on_rec_rows, r) != 0) {
        cJSON_Delete(r->rec_containers);
        r->rec_containers = NULL;
        r->rec_done(r->rec_arg, GW_EDB, "database unavailable");
        r->rec_done = NULL;
    }
}

void runner_reconcile(struct runner *r, void (*done)(void *arg, int err, const char *msg),
                      void *arg)
{
    r->rec_done = done;
    r->rec_arg = arg;
    char *label = gw_xasprintf("org.bfia.node=%s", cfg_of(r)->node_id);
    int rc = ENG(r)->list(EGX(r), label, on_rec_list, r);
    free(label);
    if (rc != 0) {
        r->rec_done = NULL;
        done(arg, GW_EDOCKER, "cannot ask the engine for containers");
    }
}

/* ---- lifetime -------------------------------------------------------------- */

struct runner *runner_new(const struct runner_env *env)
{
    struct runner *r = gw_xcalloc(1, sizeof(*r));
    r->env = *env;
    r->reaper = event_new(env->base, -1, 0, on_reap, r);
    if (!r->reaper)
        abort();
    return r;
}

void runner_set_notify(struct runner *r, runner_notify_cb cb, void *ctx)
{
    r->notify = cb;
    r->notify_ctx = ctx;
}

void runner_free(struct runner *r)
{
    if (!r)
        return;
    /* The pool dropped its callbacks already; the waits are cancelled here,
     * before the engine client goes.  A run is freed whatever it holds. */
    while (r->runs) {
        struct run *u = r->runs;
        ENG(u->r)->cancel(EGX(u->r), u->wait);
        sock_close(r, u->agent);
        run_unlink(u);
        run_free(u);
    }
    on_reap(-1, 0, r);
    event_free(r->reaper);
    cJSON_Delete(r->rec_containers);
    free(r);
}

/* ---- the production engine table ------------------------------------------------ */

static int de_create(void *ctx, const char *name, const cJSON *body, runner_docker_cb cb,
                     void *arg)
{
    return docker_container_create(ctx, name, body, cb, arg);
}
static int de_inspect(void *ctx, const char *ref, runner_docker_cb cb, void *arg)
{
    return docker_container_inspect(ctx, ref, cb, arg);
}
static int de_start(void *ctx, const char *id, runner_docker_cb cb, void *arg)
{
    return docker_container_start(ctx, id, cb, arg);
}
static int de_wait(void *ctx, const char *id, const char *condition, void (*on_armed)(void *arg),
                   runner_docker_cb cb, void *arg, struct docker_call **out)
{
    return docker_container_wait(ctx, id, condition, on_armed, cb, arg, out);
}
static int de_logs(void *ctx, const char *id, int tail, runner_docker_cb cb, void *arg)
{
    return docker_container_logs(ctx, id, tail, cb, arg);
}
static int de_kill(void *ctx, const char *id, const char *signal, runner_docker_cb cb, void *arg)
{
    return docker_container_kill(ctx, id, signal, cb, arg);
}
static int de_remove(void *ctx, const char *id, runner_docker_cb cb, void *arg)
{
    return docker_container_remove(ctx, id, cb, arg);
}
static int de_list(void *ctx, const char *label, runner_docker_cb cb, void *arg)
{
    return docker_container_list(ctx, label, cb, arg);
}
static void de_cancel(void *ctx, struct docker_call *call)
{
    (void)ctx;
    docker_cancel(call);
}

const struct runner_engine_ops runner_docker_ops = {
    .create = de_create,
    .inspect = de_inspect,
    .start = de_start,
    .wait = de_wait,
    .logs = de_logs,
    .kill = de_kill,
    .remove = de_remove,
    .list = de_list,
    .cancel = de_cancel,
};
