/*
 * cfg.h - the gateway's configuration: one key table, YAML file, environment.
 *
 * Precedence: built-in default < YAML file < environment variable.  The YAML
 * file is a mapping of sections (http:, db:, ...) or top-level scalars; a
 * key's environment name is GW_ followed by its dotted path upper-cased with
 * '.' as '_': http.port -> GW_HTTP_PORT, node_id -> GW_NODE_ID.
 *
 * Unknown keys, wrong types and out-of-range values are errors that name
 * file:line (or the environment variable).  Parsing builds a fresh struct, so
 * a SIGHUP reload can validate a new file completely before swapping it in.
 */
#ifndef GW_GATEWAY_CFG_H
#define GW_GATEWAY_CFG_H

#include <stdbool.h>
#include <stdio.h>

#include "compat.h"
#include "err.h"

/* One entry of an address allow-list: a network, IPv4 or IPv6. */
struct gw_cidr {
    int family;            /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int bits;
};
#define GW_CIDR_MAX 32

struct gw_cfg {
    char *node_id;         /* node_id: this node's BFIA id, e.g. JG0100001100000010 */
    char *http_host;       /* http.host: listen address */
    int http_port;         /* http.port */
    long long http_body_max;  /* http.body_max: request body cap in bytes */
    int http_header_max;   /* http.header_max: request header block cap in bytes */
    int http_timeout_s;    /* http.timeout_s: longest silence between two reads (idle keep-alive) */
    int http_header_timeout_s; /* http.header_timeout_s: a whole request head, from its first byte */
    int http_body_timeout_s;   /* http.body_timeout_s: a whole body, plus 1 s per body_min_rate bytes */
    int http_body_min_rate;    /* http.body_min_rate: bytes/s that earn a body more time (0 = none) */
    int http_max_conns_per_addr; /* http.max_conns_per_addr: connections per client address (0 = no cap) */
    int http_max_conns;    /* http.max_conns: in-flight request cap (503 beyond it) */
    char *http_platform_allow; /* http.platform_allow: who may call the platform API */
    struct gw_cidr platform_allow[GW_CIDR_MAX]; /* ...parsed; n < 0 means anyone */
    int platform_allow_n;
    char *db_dsn;          /* db.dsn: libpq conninfo (secret) */
    int db_pool_size;      /* db.pool_size: connections kept open */
    int db_queue_max;      /* db.queue_max: queries waiting for a connection */
    int db_statement_timeout_ms; /* db.statement_timeout_ms: server-side query deadline */
    int db_connect_timeout_s;    /* db.connect_timeout_s: per connection attempt */
    int db_startup_wait_s; /* db.startup_wait_s: how long start-up waits for PostgreSQL */
    char *docker_host;     /* docker.host: unix:///path or tcp://host:port */
    int docker_timeout_s;  /* docker.timeout_s: per Engine API call (not waits) */
    char *routes_file;     /* routes_file: the peer route table (YAML) */
    char *data_dir;        /* data_dir: keys, datasets, logs of this node */
    char *migrations_dir;  /* migrations_dir: where NNNN_*.sql live */
    char *log_level;       /* log.level: error|warn|info|debug */
    int shutdown_timeout_s; /* shutdown_timeout_s: SIGTERM drain deadline */
    int peer_timeout_ms;   /* peer.timeout_ms: per attempt to a peer node */
    int peer_retries;      /* peer.retries: attempts after the first */
    long long peer_body_max; /* peer.body_max: response size cap for peer calls */
    char *docker_network;  /* docker.network: network mode of task containers */
    int docker_pull;       /* docker.pull: 1 = a provider image missing on the engine is pulled */
    char *docker_registry_auth; /* docker.registry_auth: X-Registry-Auth for pulls (secret) */
    int docker_retain_s;   /* docker.retain_s: keep finished containers this long (0 = remove) */
    int task_cpu_milli_default; /* task.cpu_milli_default: CPU of a task asking none (1000 = a core) */
    int task_cpu_milli_min;     /* task.cpu_milli_min */
    int task_cpu_milli_max;     /* task.cpu_milli_max */
    int task_memory_mb_default; /* task.memory_mb_default: memory of a task asking none */
    int task_memory_mb_min;     /* task.memory_mb_min */
    int task_memory_mb_max;     /* task.memory_mb_max */
    int docker_launch_slots; /* docker.launch_slots: container launches in flight at once */
    int docker_log_tail_bytes; /* docker.log_tail_bytes: log tail kept per task row */
    int docker_log_tail;   /* docker.log_tail: log lines kept on the t_task row */
    char *callback_host;   /* callback.host: address task containers use to reach this node */
    int sched_poll_ms;     /* sched.poll_ms: poll-mode status interval */
    int sched_backstop_ms; /* sched.backstop_ms: callback-mode backstop poll interval */
    int sched_party_deadline_s; /* sched.party_deadline_s: unreachable party fails the job after */
    int sched_job_timeout_s;
    int sched_resend_after_s; /* sched.resend_after_s: task/start sent again when a party does not know it after this */
    int sched_sweep_window_s; /* sched.sweep_window_s: how far back the stop and push sweeps look */
    int sched_sweep_limit;    /* sched.sweep_limit: rows one sweep handles */    /* sched.job_timeout_s: a RUNNING job fails after this (0 = never) */
    int sched_push_retry_s;     /* sched.push_retry_s: unacknowledged callback pushes resent */
    int sched_stop_retry_s;     /* sched.stop_retry_s: job/stop resent to parties that missed it */
    long long upload_max;  /* upload.max: cap of one dataset upload in bytes */
    int auth_source_check; /* auth.source_check: unsigned requests must come from the route's host */
    int auth_window_s;     /* auth.window_s: x-timestamp accepted within +- this */
    int auth_jwks_max_age_s; /* auth.jwks_max_age_s: a peer's fetched JWKS is fresh this long */
    int auth_jwks_refetch_s; /* auth.jwks_refetch_s: unknown kid refetches at most this often */
    int attest_exchange_per_s; /* attest.exchange_per_s: token/verify calls per task per second */
    int attest_env_token;     /* attest.env_token: T0 also in config.attest.token (0/1) */
    char *attest_key_file;    /* attest.key_file: the node key's PEM ("" = <data_dir>/keys/node-es256.pem) */
    int attest_token_ttl_s;   /* attest.token_ttl_s: launch token lifetime, refreshed at 80 % */
    int attest_key_publish_s; /* attest.key_publish_s: a rotated key is published this long first */
    int transport_port;       /* transport.port: container-facing channel API (0 = http.port) */
    char *transport_host;     /* transport.host: its listen address */
    char *transport_advertise; /* transport.advertise: system.transport ("" = callback.host:port) */
    long long transport_body_max; /* transport.body_max: largest message (E0000000413 beyond) */
    long long transport_session_bytes; /* transport.session_bytes: bytes held per session */
    int transport_session_msgs;   /* transport.session_msgs: messages held per session */
    long long transport_total_bytes; /* transport.total_bytes: bytes held in all sessions */
    int transport_total_msgs;     /* transport.total_msgs: messages held in all sessions */
    int transport_max_sessions;   /* transport.max_sessions: live sessions */
    int transport_max_waiters;    /* transport.max_waiters: blocked pops and pushes per session */
    int transport_push_wait_s;    /* transport.push_wait_s: default wait for room */
    int transport_idle_s;         /* transport.idle_s: idle sessions expire */
    int transport_released_s;     /* transport.released_s: released sessions remembered */
    int transport_relay_retries;  /* transport.relay_retries: attempts after a failed relay */
    long long transport_batch_bytes; /* transport.batch_bytes: bytes of one batched relay request */
    int transport_batch_msgs;     /* transport.batch_msgs: messages of one batched relay request */
    int transport_relay_lanes;    /* transport.relay_lanes: relay requests in flight per peer */
};

/** Allocate a config holding every default.  Free with cfg_free(). */
struct gw_cfg *cfg_new_defaults(void);

/** Free a config (NULL-safe). */
void cfg_free(struct gw_cfg *cfg);

/**
 * Load path (may be NULL: defaults only) then apply the environment (envp, a
 * NULL-terminated "NAME=value" array; pass `environ`).  Returns a new config
 * or NULL with eb->msg naming "file:line: ..." or "GW_X: ..." and the
 * problem.  Validates cross-key rules too (node_id present, ...).
 */
struct gw_cfg *cfg_load(const char *path, char *const *envp, struct gw_errbuf *eb);

/** Parse YAML text from memory (for tests); name is used in messages. */
struct gw_cfg *cfg_load_string(const char *yaml, size_t len, const char *name, char *const *envp,
                               struct gw_errbuf *eb);

/**
 * Compare old and new: for every key whose value changed, call cb with its
 * dotted name and whether it is reloadable.  Used on SIGHUP to apply what can
 * change and warn about what needs a restart.
 */
void cfg_diff(const struct gw_cfg *oldc, const struct gw_cfg *newc,
              void (*cb)(void *arg, const char *key, bool reloadable), void *arg);

/**
 * SIGHUP, driven by the key table: for every key whose value differs in
 * next, a reloadable key's value moves into cur (with what is derived from
 * it, such as the parsed platform_allow networks) and cb says applied; any
 * other changed key keeps its running value and cb says it needs a restart.
 * Returns how many keys were applied.  next keeps the old values of the
 * moved strings; free it with cfg_free.  Components that keep a copy of a
 * value (the db pool, the Docker client, evhttp) are told by the caller.
 */
int cfg_reload(struct gw_cfg *cur, struct gw_cfg *next,
               void (*cb)(void *arg, const char *key, bool applied), void *arg);

/** Whether the key of that dotted name is reloadable (false if unknown). */
bool cfg_key_reloadable(const char *name);
/** The number of keys, and the dotted name of key i (NULL past the end). */
size_t cfg_key_count(void);
const char *cfg_key_name(size_t i);

/** Print the effective config as YAML with secrets as "***". */
void cfg_print(const struct gw_cfg *cfg, FILE *out);

/**
 * Whether the numeric address text (as libevent reports the peer) is in the
 * platform allow-list.  Unparseable addresses are not.
 */
bool cfg_platform_allowed(const struct gw_cfg *c, const char *addr);

#endif
