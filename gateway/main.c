/*
 * main.c - the gateway process: arguments, configuration, migrations, the
 * event loop and its signals.
 *
 *   gateway -c conf/gateway.yaml        run
 *   gateway -c FILE --check-config      validate configuration and exit
 *   gateway -c FILE --print-config      print the effective configuration
 *   gateway -c FILE --migrate-only      apply migrations and exit
 */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/app.h"
#include "gateway/cfg.h"
#include "gateway/db.h"
#include "gateway/fileio.h"
#include "gateway/httpc.h"
#include "gateway/json.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/peer.h"
#include "gateway/server.h"
#include "container/attest.h"
#include "container/chan.h"
#include "container/keys.h"
#include "gateway/jws.h"
#include "gateway/ratelimit.h"
#include "gateway/reqsig.h"
#include "container/docker.h"
#include "container/runner.h"
#include "scheduler/pollcache.h"
#include "routes/route.h"
#include "scheduler/outputs.h"
#include "scheduler/partner.h"
#include "scheduler/sched.h"
#include "scheduler/store.h"

extern char **environ;

struct main_state {
    struct gw_app app;
    int exit_code;            /* set by a start-up refusal inside the loop */
    struct event *sig_term, *sig_int, *sig_hup;
    struct event *drain_timer;
    long long drain_deadline_ms;
    int drain_phase; /* 0 running, 1 draining, 2 flushing final replies */
    const char **route_names;
    struct event *startup_timer;
    /* Start-up runs in phases, each retried on startup_timer until it
     * succeeds: the routes file into t_route, reconciliation with the
     * engine, then resuming the scheduler's live jobs. */
    enum { START_ROUTES, START_RECONCILE, START_RESUME, START_DONE } phase;
    int reconcile_failures;
    struct event *mem_timer;
};

/* ---- start-up: routes file -> reconcile with the engine -> resume jobs ---- */

static void startup_reconcile(struct main_state *ms);

static void on_resumed(void *arg, int err, const char *msg)
{
    struct main_state *ms = arg;
    if (err) {
        log_kv(LOG_LEVEL_WARN, NULL, "process.start", "cannot resume jobs yet; retrying", "err",
               msg, NULL);
        struct timeval tv = {1, 0};
        event_add(ms->startup_timer, &tv);
        return;
    }
    ms->phase = START_DONE;
    ms->app.starting = false;
    partner_start(ms->app.partner);
    log_kv(LOG_LEVEL_INFO, NULL, "process.ready", "reconciled; serving every API", NULL);
}

static void on_reconciled(void *arg, int err, const char *msg)
{
    struct main_state *ms = arg;
    if (err == GW_ECONFLICT) {
        /* another live installation with this node id on the engine */
        log_kv(LOG_LEVEL_ERROR, NULL, "process.start", msg, NULL);
        fprintf(stderr, "gateway: %s\n", msg);
        ms->exit_code = 1;
        event_base_loopbreak(ms->app.base);
        return;
    }
    if (err) {
        /* The database must answer; an engine that does not answer after a
         * few seconds must not keep a scheduler-only node from serving. */
        if (++ms->reconcile_failures < 4 || err == GW_EDB) {
            log_kv(LOG_LEVEL_WARN, NULL, "process.start", "reconcile failed; retrying", "err", msg,
                   NULL);
            struct timeval tv = {1, 0};
            event_add(ms->startup_timer, &tv);
            return;
        }
        log_kv(LOG_LEVEL_ERROR, NULL, "process.start",
               "the Docker engine cannot be reached: serving without task containers", "err", msg,
               NULL);
    }
    ms->phase = START_RESUME;
    keys_startup(ms->app.keys);
    sched_resume(ms->app.sched, on_resumed, ms);
}

static void on_routes_loaded(void *arg, int err, const char *msg)
{
    struct main_state *ms = arg;
    if (err && err != GW_EINVAL) {
        log_kv(LOG_LEVEL_WARN, NULL, "routes.load", "cannot load routes yet; retrying", "err", msg,
               NULL);
        struct timeval tv = {1, 0};
        event_add(ms->startup_timer, &tv);
        return;
    }
    if (err)
        log_kv(LOG_LEVEL_ERROR, NULL, "routes.load", "routes file not loaded; using the stored "
               "route table", "err", msg, NULL);
    else
        log_kv(LOG_LEVEL_INFO, NULL, "routes.load", "route table loaded", "file",
               ms->app.cfg->routes_file, NULL);
    if (err)
        route_table_refresh(&ms->app, NULL, NULL);
    ms->phase = START_RECONCILE;
    ms->reconcile_failures = 0;
    startup_reconcile(ms);
}

static void startup_reconcile(struct main_state *ms)
{
    runner_reconcile(ms->app.runner, on_reconciled, ms);
}

static void on_startup_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct main_state *ms = arg;
    switch (ms->phase) {
    case START_ROUTES:
        route_table_sync_file(&ms->app, ms->app.cfg->routes_file, on_routes_loaded, ms);
        break;
    case START_RECONCILE:
        startup_reconcile(ms);
        break;
    case START_RESUME:
        sched_resume(ms->app.sched, on_resumed, ms);
        break;
    case START_DONE:
        break;
    }
}

static void on_routes_reloaded(void *arg, int err, const char *msg)
{
    (void)arg;
    if (err)
        log_kv(LOG_LEVEL_ERROR, NULL, "routes.reload", "routes file rejected; keeping the old "
               "routes", "err", msg, NULL);
    else
        log_kv(LOG_LEVEL_INFO, NULL, "routes.reload", "route table reloaded", NULL);
}

/* NOTIFY bfia_task <task_id> (migration 0006); NULL: LISTEN came up or
 * went down, so anything may have been missed. */
static void on_task_notify(void *arg, const char *task_id)
{
    struct gw_app *app = arg;
    pollcache_forget(app->pollcache, task_id);
    chan_task_changed(app->chan, task_id); /* tokens and sessions of ended tasks */
}

/*
 * libevent's own warnings (a failed accept(), an illegal state) go to our
 * JSON log instead of bare stderr lines, at most LIBEVENT_LOG_BURST per
 * 10 s with a count of the rest: a condition that repeats on every loop
 * turn must not write gigabytes.  libevent's log callback takes no
 * argument, hence the static state (loop thread only).
 */
#define LIBEVENT_LOG_BURST 10

static void on_libevent_log(int severity, const char *msg)
{
    static long long window_ms;
    static unsigned long lines, suppressed;
    long long now = gw_now_mono_ms();
    if (now - window_ms >= 10000) {
        if (suppressed) {
            char n[24];
            snprintf(n, sizeof(n), "%lu", suppressed);
            log_kv(LOG_LEVEL_WARN, NULL, "libevent", "libevent messages suppressed", "count", n,
                   NULL);
        }
        window_ms = now;
        lines = suppressed = 0;
    }
    if (++lines > LIBEVENT_LOG_BURST) {
        suppressed++;
        return;
    }
    enum log_level lv = severity >= EVENT_LOG_ERR ? LOG_LEVEL_ERROR
                        : severity == EVENT_LOG_WARN ? LOG_LEVEL_WARN
                                                      : LOG_LEVEL_DEBUG;
    log_kv(lv, NULL, "libevent", msg, NULL);
}

/*
 * Memory after a burst: glibc keeps what a burst of requests with bodies
 * or of connections freed in its heap, so without help the process stays
 * at its peak for ever (freed memory inside the heap is not given back by
 * itself; only the top is).  Every 5 s, when more than MEM_TRIM_FREE bytes
 * sit free in the heap, malloc_trim hands back every whole free page (it
 * walks the free chunks only: well under a millisecond).  What stays is pinned by
 * small live allocations made during the burst (libevent's per-descriptor
 * entries): bounded by the peak number of connections.  Under ASan the
 * heap is ASan's (mallinfo2 reports nothing) and this does nothing.
 */
#define MEM_TRIM_FREE (4 << 20)

static void on_mem_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
#ifdef __GLIBC__
    struct mallinfo2 mi = mallinfo2();
    if (mi.fordblks > MEM_TRIM_FREE) {
        malloc_trim(128 * 1024);
        if (log_enabled(LOG_LEVEL_DEBUG)) {
            char f[24];
            snprintf(f, sizeof(f), "%zu", mi.fordblks);
            log_kv(LOG_LEVEL_DEBUG, NULL, "process.memory", "returned free heap memory", "free",
                   f, NULL);
        }
    }
#endif
}

/*
 * The soft descriptor limit up to the hard one: every connection, query,
 * peer call and file is a descriptor, and the shell default (1024) is
 * low for a node.  The connection guard keeps a reserve below it.
 */
static void raise_nofile(const struct log_ctx *lctx)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    char cur[24], old[24];
    snprintf(cur, sizeof(cur), "%llu", (unsigned long long)rl.rlim_cur);
    snprintf(old, sizeof(old), "%llu", (unsigned long long)was);
    log_kv(LOG_LEVEL_INFO, lctx, "process.limits", "file descriptor limit", "nofile", cur,
           "was", old, NULL);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: gateway -c FILE [--check-config | --print-config | --migrate-only]\n"
                 "  -c, --config FILE   YAML configuration (every key: conf/gateway.example.yaml)\n"
                 "      --check-config  validate the configuration and exit 0 if it is valid\n"
                 "      --print-config  print the effective configuration, secrets redacted\n"
                 "      --migrate-only  apply database migrations and exit\n"
                 "  -V, --version       print the version\n"
                 "Environment variables GW_<KEY> override the file (GW_NODE_ID, GW_DB_DSN...).\n");
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct main_state *ms = arg;
    struct gw_app *app = &ms->app;
    if (ms->drain_phase == 2) {
        event_base_loopexit(app->base, NULL);
        return;
    }
    int left = server_inflight(app->server);
    if (left > 0 && gw_now_mono_ms() < ms->drain_deadline_ms)
        return;
    if (left > 0) {
        char n[16];
        snprintf(n, sizeof(n), "%d", left);
        log_kv(LOG_LEVEL_WARN, NULL, "process.drain", "drain deadline passed; answering the rest with 503",
               "inflight", n, NULL);
        server_abort_inflight(app->server);
    }
    server_abort_inflight(app->agent_server); /* task sockets: nothing waits for these */
    if (app->chan_server)
        server_abort_inflight(app->chan_server); /* blocked pops end with the drain */
    /* One more short turn so the last replies reach their sockets. */
    ms->drain_phase = 2;
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct main_state *ms = arg;
    struct gw_app *app = &ms->app;
    if (ms->drain_phase > 0) {
        log_msg(LOG_LEVEL_WARN, NULL, "process.exit", "second signal %d: exiting now", (int)sig);
        event_base_loopbreak(app->base);
        return;
    }
    ms->drain_phase = 1;
    app->draining = true;
    server_stop_accepting(app->server);
    if (app->chan_server)
        server_stop_accepting(app->chan_server);
    ms->drain_deadline_ms = gw_now_mono_ms() + app->cfg->shutdown_timeout_s * 1000LL;
    char n[16];
    snprintf(n, sizeof(n), "%d", server_inflight(app->server));
    log_kv(LOG_LEVEL_INFO, NULL, "process.drain", "signal received: draining in-flight requests",
           "inflight", n, NULL);
    ms->drain_timer = event_new(app->base, -1, EV_PERSIST, on_drain_tick, ms);
    struct timeval tv = {0, 50 * 1000};
    event_add(ms->drain_timer, &tv);
}

struct reload_ctx {
    int applied, restart;
};

static void on_reload_key(void *arg, const char *key, bool applied)
{
    struct reload_ctx *rc = arg;
    if (applied) {
        rc->applied++;
        log_kv(LOG_LEVEL_INFO, NULL, "config.reload", "applied", "setting", key, NULL);
    } else {
        rc->restart++;
        log_kv(LOG_LEVEL_WARN, NULL, "config.reload",
               "changed key needs a restart; keeping the running value", "setting", key,
               NULL);
    }
}

/*
 * SIGHUP: parse the file again into a new config; if it is valid, every
 * reloadable key (the key table, gateway/cfg.c) is copied into the running
 * config and the components that keep their own copy are told; any other
 * changed key is reported as needing a restart.  An invalid file changes
 * nothing.
 */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct main_state *ms = arg;
    struct gw_app *app = &ms->app;
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    struct gw_cfg *nc = cfg_load(app->cfg_path, environ, &eb);
    if (!nc) {
        log_kv(LOG_LEVEL_ERROR, NULL, "config.reload", "new configuration is invalid; keeping the old one",
               "err", eb.msg, NULL);
        return;
    }
    struct reload_ctx rc = {0, 0};
    (void)cfg_reload(app->cfg, nc, on_reload_key, &rc); /* counted by the callback */
    cfg_free(nc);
    struct gw_cfg *c = app->cfg;
    /* The values other components copied at start: */
    enum log_level lv;
    if (log_level_parse(c->log_level, &lv))
        log_set_level(lv);
    server_apply_cfg(app->server);       /* evhttp: body, header caps, timeout */
    server_apply_cfg(app->agent_server);
    if (app->chan_server)
        server_set_body_max(app->chan_server, (size_t)c->transport_body_max + (1 << 20));
    chan_apply_cfg(app->chan);
    db_pool_set_queue_max(app->db, c->db_queue_max);
    docker_set_timeout(app->docker, c->docker_timeout_s * 1000L);
    route_table_sync_file(app, c->routes_file, on_routes_reloaded, NULL);
    /* Everything else reads app->cfg when it needs a value. */
    char n[16], r[16];
    snprintf(n, sizeof(n), "%d", rc.applied);
    snprintf(r, sizeof(r), "%d", rc.restart);
    log_kv(LOG_LEVEL_INFO, NULL, "config.reload", "configuration reloaded", "applied", n,
           "needs_restart", r, NULL);
}

/* Request signing's view of the node key (container/attest.h). */
static const struct jws_key *own_signing_key(void *ctx)
{
    return attest_signing_key(ctx);
}

static const struct jws_keyset *own_keyset(void *ctx)
{
    return attest_keyset(ctx);
}

/* The partner side's view of the task containers (container/runner.h,
 * container/docker.h). */
static void pt_launch(void *ctx, const struct runner_key *k)
{
    struct gw_app *app = ctx;
    runner_launch(app->runner, k);
}

static void pt_kill(void *ctx, const struct runner_key *k, const char *cid)
{
    struct gw_app *app = ctx;
    runner_kill(app->runner, k, cid);
}

struct pt_logs {
    void (*cb)(void *arg, int err, const char *text, size_t len);
    void *arg;
};

static void on_pt_logs(void *arg, const struct docker_result *r)
{
    struct pt_logs *l = arg;
    l->cb(l->arg, r->err, r->text, r->text_len);
    free(l);
}

static int pt_logs(void *ctx, const char *cid, int tail,
                   void (*cb)(void *arg, int err, const char *text, size_t len), void *arg)
{
    struct gw_app *app = ctx;
    struct pt_logs *l = gw_xcalloc(1, sizeof(*l));
    l->cb = cb;
    l->arg = arg;
    int rc = docker_container_logs(app->docker, cid, tail, on_pt_logs, l);
    if (rc != 0)
        free(l);
    return rc;
}

static const struct partner_task_ops partner_tasks = {
    .launch = pt_launch, .kill = pt_kill, .logs = pt_logs};

/* The runner's task sockets, on the agent server (gateway/server.h). */
static void *task_sock_listen(void *ctx, const char *path, struct gw_errbuf *eb)
{
    return server_listen_unix(ctx, path, eb);
}

static void task_sock_unlisten(void *ctx, void *h)
{
    server_unlisten(ctx, h);
}

static const struct runner_sock_ops task_socks = {
    .listen = task_sock_listen,
    .unlisten = task_sock_unlisten,
};

static void on_task_changed(void *ctx, const char *job_id, const char *task_id)
{
    partner_task_changed(ctx, job_id, task_id);
}

/* The scheduler's view of the peers (scheduler/sched.h): the route table
 * of gateway/peer.h, with this node routable through its own listener. */
static int sched_peer_call(void *ctx, const char *node, const char *method, const char *path,
                           const struct cJSON *body, int retries, peer_cb cb, void *arg)
{
    return peer_call(ctx, node, method, path, body, retries, cb, arg, NULL);
}

static enum peer_profile sched_peer_profile(void *ctx, const char *node)
{
    struct gw_app *app = ctx;
    return peers_profile(app->peers, node);
}

static bool sched_peer_routable(void *ctx, const char *node)
{
    struct gw_app *app = ctx;
    return strcmp(node, app->cfg->node_id) == 0 || peers_find(app->peers, node) != NULL;
}

static const struct sched_peer_ops sched_peers = {
    .call = sched_peer_call,
    .profile = sched_peer_profile,
    .routable = sched_peer_routable,
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'k'},
        {"print-config", no_argument, NULL, 'p'}, {"migrate-only", no_argument, NULL, 'm'},
        {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cfg_path = NULL;
    bool check = false, print = false, migrate_only = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': cfg_path = optarg; break;
        case 'k': check = true; break;
        case 'p': print = true; break;
        case 'm': migrate_only = true; break;
        case 'V': printf("gateway %s (%s)\n", GW_VERSION, GW_GIT_REV); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    json_init();
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    struct gw_cfg *cfg = cfg_load(cfg_path, environ, &eb);
    if (!cfg) {
        fprintf(stderr, "gateway: configuration error: %s\n", eb.msg);
        return 2;
    }
    if (check) {
        printf("configuration %s is valid\n", cfg_path ? cfg_path : "(defaults + environment)");
        cfg_free(cfg);
        return 0;
    }
    if (print) {
        cfg_print(cfg, stdout);
        cfg_free(cfg);
        return 0;
    }
    enum log_level lv = LOG_LEVEL_INFO;
    (void)log_level_parse(cfg->log_level, &lv); /* validated by cfg_load */
    log_set_level(lv);
    signal(SIGPIPE, SIG_IGN);
    event_set_log_callback(on_libevent_log);

    struct main_state ms;
    memset(&ms, 0, sizeof(ms));
    struct gw_app *app = &ms.app;
    app->cfg = cfg;
    app->cfg_path = cfg_path ? gw_xstrdup(cfg_path) : NULL;
    app->started_ms = gw_now_wall_ms();
    struct log_ctx lctx = {.node_id = cfg->node_id};
    int exit_code = 0;
    bool curl_inited = false;
    raise_nofile(&lctx);

    if (mkdir_p(cfg->data_dir) != 0) {
        log_msg(LOG_LEVEL_ERROR, &lctx, "process.start", "cannot create data_dir %s: %s",
                cfg->data_dir, strerror(errno));
        exit_code = 1;
        goto out;
    }

    /* Blocking on purpose: the loop has not started and nothing can be
     * served until the schema is right. */
    int rc = db_migrate(cfg->db_dsn, cfg->migrations_dir, cfg->db_startup_wait_s, cfg->node_id,
                        &app->schema_version, app->install_id, sizeof(app->install_id), &eb);
    if (rc != 0) {
        log_kv(LOG_LEVEL_ERROR, &lctx, "db.migrate", "cannot prepare the database", "err", eb.msg,
               NULL);
        fprintf(stderr, "gateway: %s\n", eb.msg);
        exit_code = 1;
        goto out;
    }
    if (migrate_only) {
        printf("database at schema version %d\n", app->schema_version);
        goto out;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "gateway: libcurl initialisation failed\n");
        exit_code = 1;
        goto out;
    }
    curl_inited = true;
    /* The epoll changelist folds the delete/add pairs evhttp makes on every
     * request into one epoll_ctl (or none) per loop pass; system calls are
     * the largest cost per request.  Safe here: no descriptor is dup()ed. */
    struct event_config *evcfg = event_config_new();
    if (evcfg)
        event_config_set_flag(evcfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    app->base = evcfg ? event_base_new_with_config(evcfg) : NULL;
    if (evcfg)
        event_config_free(evcfg);
    if (!app->base)
        app->base = event_base_new();
    if (!app->base) {
        fprintf(stderr, "gateway: cannot create the event loop\n");
        exit_code = 1;
        goto out;
    }
    app->fileio = fileio_new(app->base);
    size_t nroutes;
    const struct route *rt = route_table(&nroutes);
    ms.route_names = gw_xcalloc(nroutes, sizeof(char *));
    for (size_t i = 0; i < nroutes; i++)
        ms.route_names[i] = rt[i].pattern;
    app->metrics = metrics_new((int)nroutes, ms.route_names);
    struct db_pool_opts dbo = {
        .dsn = cfg->db_dsn,
        .size = cfg->db_pool_size,
        .queue_max = cfg->db_queue_max,
        .statement_timeout_ms = cfg->db_statement_timeout_ms,
        .connect_timeout_s = cfg->db_connect_timeout_s,
        .schema_version = app->schema_version,
    };
    app->db = db_pool_new(app->base, &dbo);
    app->pollcache = pollcache_new(0);
    db_pool_listen(app->db, "bfia_task", on_task_notify, app);
    app->httpc = httpc_new(app->base);
    app->server = server_new(app, route_dispatch);
    server_set_abort_body(app->server, route_abort_body());
    /* The per-container task sockets (runner.c opens one per container). */
    app->agent_server = server_new(app, route_dispatch);
    server_set_abort_body(app->agent_server, route_abort_body());
    server_set_agent(app->agent_server);
    if (server_listen(app->server, cfg->http_host, cfg->http_port, &eb) != 0) {
        log_kv(LOG_LEVEL_ERROR, &lctx, "process.start", eb.msg, NULL);
        fprintf(stderr, "gateway: %s\n", eb.msg);
        exit_code = 1;
        goto out;
    }

    {
        char *dd = realpath(cfg->data_dir, NULL);
        char *dd0 = gw_xstrdup(dd ? dd : cfg->data_dir);
        free(dd);
        app->storage_dir = gw_xasprintf("%s/storage", dd0);
        if (mkdir_p(app->storage_dir) != 0) {
            fprintf(stderr, "gateway: cannot create %s: %s\n", app->storage_dir, strerror(errno));
            free(dd0);
            exit_code = 1;
            goto out;
        }
        server_enable_spool(app->server);
        struct docker_opts dopts = {.host = cfg->docker_host,
                                    .timeout_ms = cfg->docker_timeout_s * 1000L,
                                    .registry_auth = cfg->docker_registry_auth[0]
                                                         ? cfg->docker_registry_auth
                                                         : NULL};
        app->docker = docker_new(app->httpc, app->metrics, &dopts, &eb);
        if (!app->docker) {
            fprintf(stderr, "gateway: docker.host: %s\n", eb.msg);
            free(dd0);
            exit_code = 1;
            goto out;
        }
        char *kp = cfg->attest_key_file[0] ? gw_xstrdup(cfg->attest_key_file)
                                           : gw_xasprintf("%s/keys/node-es256.pem", dd0);
        app->attest = attest_open(cfg->node_id, kp, &eb);
        free(kp);
        if (!app->attest) {
            fprintf(stderr, "gateway: node signing key: %s\n", eb.msg);
            free(dd0);
            exit_code = 1;
            goto out;
        }
        attest_set_fileio(app->attest, app->fileio);
        app->attest_dir = gw_xasprintf("%s/attest", dd0);
        free(dd0);
        if (mkdir_p(app->attest_dir) != 0) {
            fprintf(stderr, "gateway: cannot create %s\n", app->attest_dir);
            exit_code = 1;
            goto out;
        }
        struct reqsig_keysrc own = {.signing = own_signing_key, .keyset = own_keyset,
                                    .ctx = app->attest};
        app->reqsig = reqsig_new(app, &own);
        app->present_replay = jws_replay_new(1u << 18);
        app->attest_rl = ratelimit_new(cfg->attest_exchange_per_s, 2.0 * cfg->attest_exchange_per_s,
                                       4096);
        app->keys = keys_new(app);
        app->peers = peers_new(app);
        /* The transport: queues, capabilities, relay; its listener for task
         * containers (transport.port; 0 serves that API on http.port). */
        app->chan = chan_new(app, &eb);
        if (!app->chan) {
            fprintf(stderr, "gateway: transport: %s\n", eb.msg);
            exit_code = 1;
            goto out;
        }
        if (cfg->transport_port) {
            app->chan_server = server_new(app, route_dispatch);
            server_set_abort_body(app->chan_server, route_abort_body());
            server_set_body_max(app->chan_server, (size_t)cfg->transport_body_max + (1 << 20));
            if (server_listen(app->chan_server, cfg->transport_host, cfg->transport_port, &eb) != 0) {
                fprintf(stderr, "gateway: transport.port: %s\n", eb.msg);
                exit_code = 1;
                goto out;
            }
        }
        chan_routes_start(app);
        app->store = store_new(app->db, app->metrics, cfg->node_id);
        app->authz = authz_new();
        struct runner_env renv = {.base = app->base,
                                  .cfg = &app->cfg,
                                  .engine = &runner_docker_ops,
                                  .engine_ctx = app->docker,
                                  .attest = app->attest,
                                  .attest_dir = app->attest_dir,
                                  .install_id = app->install_id,
                                  .store = &store_runner_ops,
                                  .store_ctx = app->store,
                                  .sock = &task_socks,
                                  .sock_ctx = app->agent_server};
        app->runner = runner_new(&renv);
        struct sched_env senv = {.base = app->base,
                                 .cfg = &app->cfg,
                                 .store = &store_sched_ops,
                                 .store_ctx = app->store,
                                 .peer = &sched_peers,
                                 .peer_ctx = app};
        app->sched = sched_new(&senv);
        app->outputs = outputs_new(app->base, app->store, app->storage_dir);
        struct partner_env penv = {.base = app->base,
                                   .cfg = &app->cfg,
                                   .store = &store_partner_ops,
                                   .store_ctx = app->store,
                                   .tasks = &partner_tasks,
                                   .tasks_ctx = app,
                                   .attest = app->attest,
                                   .pollcache = app->pollcache,
                                   .outputs = app->outputs,
                                   .chan = app->chan,
                                   .peer = &sched_peers,
                                   .peer_ctx = app,
                                   .storage_dir = app->storage_dir};
        app->partner = partner_new(&penv);
        runner_set_notify(app->runner, on_task_changed, app->partner);
        app->starting = true;
        ms.startup_timer = evtimer_new(app->base, on_startup_timer, &ms);
        struct timeval now0 = {0, 0};
        event_add(ms.startup_timer, &now0);
    }

    ms.mem_timer = event_new(app->base, -1, EV_PERSIST, on_mem_timer, &ms);
    {
        struct timeval five = {5, 0};
        event_add(ms.mem_timer, &five);
    }
    ms.sig_term = evsignal_new(app->base, SIGTERM, on_sigterm, &ms);
    ms.sig_int = evsignal_new(app->base, SIGINT, on_sigterm, &ms);
    ms.sig_hup = evsignal_new(app->base, SIGHUP, on_sighup, &ms);
    event_add(ms.sig_term, NULL);
    event_add(ms.sig_int, NULL);
    event_add(ms.sig_hup, NULL);

    char port[16], ver[16];
    snprintf(port, sizeof(port), "%d", cfg->http_port);
    snprintf(ver, sizeof(ver), "%d", app->schema_version);
    log_kv(LOG_LEVEL_INFO, &lctx, "process.start", "gateway listening", "host", cfg->http_host,
           "port", port, "schema_version", ver, "version", GW_VERSION, NULL);

    event_base_dispatch(app->base);
    if (ms.exit_code)
        exit_code = ms.exit_code;

    log_kv(LOG_LEVEL_INFO, &lctx, "process.exit", "gateway stopped", NULL);
out:
    /* Order matters: drop pending DB and HTTP callbacks before the requests
     * they point at are freed with the server. */
    partner_free(app->partner);
    outputs_free(app->outputs);
    db_pool_free(app->db);
    pollcache_free(app->pollcache);
    runner_free(app->runner); /* cancels its waits: before the engine client */
    sched_free(app->sched);
    store_free(app->store);
    authz_free(app->authz);
    docker_free(app->docker);
    chan_free(app->chan); /* its relays, before the HTTP client; its waiters are answered */
    app->chan = NULL;
    httpc_free(app->httpc);
    server_free(app->server);
    server_free(app->agent_server); /* after runner_free released its sockets */
    server_free(app->chan_server);
    peers_free(app->peers);
    free(app->storage_dir);
    free(app->attest_dir);
    reqsig_free(app->reqsig);
    jws_replay_free(app->present_replay);
    ratelimit_free(app->attest_rl);
    keys_free(app->keys);
    attest_free(app->attest);
    if (ms.startup_timer)
        event_free(ms.startup_timer);
    metrics_free(app->metrics);
    if (ms.sig_term)
        event_free(ms.sig_term);
    if (ms.sig_int)
        event_free(ms.sig_int);
    if (ms.sig_hup)
        event_free(ms.sig_hup);
    if (ms.drain_timer)
        event_free(ms.drain_timer);
    if (ms.mem_timer)
        event_free(ms.mem_timer);
    fileio_free(app->fileio); /* after every owner of a job cancelled it */
    if (app->base)
        event_base_free(app->base);
    free(ms.route_names);
    free(app->cfg_path);
    cfg_free(cfg);
    if (curl_inited)
        curl_global_cleanup();
    return exit_code;
}
