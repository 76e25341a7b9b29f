/*
 * app.h - the process: one struct that owns the loop and every long-lived
 * component, passed explicitly to whoever needs them (no mutable globals).
 */
#ifndef GW_GATEWAY_APP_H
#define GW_GATEWAY_APP_H

#include <stdbool.h>

struct event_base;
struct gw_cfg;
struct db_pool;
struct httpc;
struct metrics;
struct server;
struct docker;
struct runner;
struct peers;
struct sched;
struct store;
struct partner;
struct authz;
struct outputs;
struct jws_replay;
struct ratelimit;
struct attest;
struct reqsig;
struct keys;
struct chan;
struct fileio;

struct gw_app {
    struct event_base *base;
    struct gw_cfg *cfg;       /* current config; replaced whole on SIGHUP */
    char *cfg_path;           /* NULL when running on defaults + environment */
    struct db_pool *db;
    struct httpc *httpc;
    struct metrics *metrics;
    struct server *server;
    struct server *agent_server; /* per-container task sockets (attestation.md 2.10) */
    struct docker *docker;    /* Engine API client (container/docker.h) */
    struct runner *runner;    /* task containers (container/runner.h) */
    struct peers *peers;      /* route table cache and peer calls (gateway/peer.h) */
    struct sched *sched;      /* scheduler side of jobs (scheduler/sched.h) */
    struct store *store;      /* every job and task statement (scheduler/store.h) */
    struct partner *partner;  /* partner side of jobs (scheduler/partner.h) */
    struct authz *authz;      /* who has business with which job (routes/authz.c) */
    struct outputs *outputs;  /* task outputs registered as datasets (scheduler/outputs.h) */
    struct attest *attest;    /* node key and launch tokens (container/attest.h) */
    struct keys *keys;        /* node key rotation (container/keys.h) */
    struct chan *chan;        /* transport layer: channel queues and relay (container/chan.h) */
    struct server *chan_server; /* container-facing channel API listener, or NULL (http.port) */
    struct fileio *fileio;    /* fsync and big file copies, off the loop (gateway/fileio.h) */
    struct reqsig *reqsig;    /* signed node-to-node requests (gateway/reqsig.h) */
    struct jws_replay *present_replay; /* (iss, jti) of presentation tokens verified here */
    struct pollcache *pollcache; /* task/poll answers (scheduler/pollcache.h) */
    struct ratelimit *attest_rl; /* attest token/verify calls per task (gateway/ratelimit.h) */
    char *attest_dir;         /* <data_dir>/attest: per-container token directories */
    char *storage_dir;        /* absolute <data_dir>/storage: file:// datasets and outputs */
    bool starting;            /* reconcile not finished: only ops endpoints answer */
    int schema_version;       /* newest migration this binary ships */
    char install_id[32];      /* this installation (t_site.install_id): its containers' label */
    bool draining;            /* SIGTERM seen: /readyz says 503, no new work */
    long long started_ms;     /* wall clock at start, for build info */
};

#endif
