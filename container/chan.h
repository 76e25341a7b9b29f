/*
 * chan.h - the transport layer's runtime (spec bfia-transport.md): the
 * channel queues (chanq) on the loop, the per-task capability behind
 * config.token, the owner of every session, and the relay of pushes to
 * peer nodes.  The HTTP side (both dialects, the envelopes) is
 * routes/chan.c.
 *
 * Capability (config.token).  A task container gets
 *   "bct1." base64url(job_id LF task_id LF role LF index) "." base64url(MAC)
 * MAC = HMAC-SHA256(node channel key, "bfia-chan-cap-v1" LF payload).  The
 * key is 32 random bytes in <data_dir>/transport/cap.key (0600), made at the
 * first start, so tokens survive restarts and cannot be guessed or forged.
 * A token is live while its t_task row is RUNNING; the row's spec gives the
 * task's session (config.session_id) and parties (config.node_id.*).
 * Lookups are cached and forgotten on NOTIFY bfia_task (any writer); while
 * LISTEN is down, a cached answer is trusted for 1 s at most.
 *
 * Scope.  When every party of a task is this node or a peer whose route
 * profile is standard (our gateways), messages are also keyed by the task
 * id, carried in the signed query of the relay: two tasks of one job that
 * run at once between the same nodes never read each other's messages.
 * With another vendor among the parties, the key is the spec's (session,
 * topic, peer).
 *
 * Loop-thread only.
 */
#ifndef GW_CONTAINER_CHAN_H
#define GW_CONTAINER_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gateway/compat.h"
#include "gateway/err.h"

/* Codes of spec bfia-transport.md §7; the strings travel, never renumber. */
#define CHAN_OK "E0000000000"
#define CHAN_E_BAD "E0000000400"
#define CHAN_E_AUTH "E0000000403"
#define CHAN_E_NOTFOUND "E0000000404"
#define CHAN_E_TOOBIG "E0000000413"
#define CHAN_E_SERVER "E0000000500"
#define CHAN_E_TIMEOUT "E0000000601"
#define CHAN_E_UNREACHABLE "E0000000607"
#define CHAN_E_RELEASED "E0000000608"
#define CHAN_E_NOTPERMIT "E0000000614"
#define CHAN_E_CODEC "E0000000616"
#define CHAN_E_NONET "E0000000618"
#define CHAN_E_FULL "E0000000700"

struct gw_app;
struct gw_cfg;
struct chan;
struct chanq;
struct chan_relay;

#define CHAN_KEY_LEN 32

/* ---- capability tokens (pure) -------------------------------------------- */

/** Mint the token of (job, task, role, index).  Caller frees. */
char *chan_cap_mint(const uint8_t key[CHAN_KEY_LEN], const char *job, const char *task,
                    const char *role, int index);

struct chan_cap_id {
    char job[160], task[160], role[40];
    int index;
};

/** Check a token's MAC and split it.  GW_EAUTH when it is not one of ours. */
int chan_cap_parse(const uint8_t key[CHAN_KEY_LEN], const char *token, struct chan_cap_id *out) GW_MUSTCHECK;

/* ---- runtime --------------------------------------------------------------- */

/** Open the runtime: load or create the channel key.  NULL with eb on failure. */
struct chan *chan_new(struct gw_app *app, struct gw_errbuf *eb);

/** Cancel relays and lookups (no callbacks), fire waiters (CHANQ_GONE), free. */
void chan_free(struct chan *c);

/** Apply reloadable transport.* keys (bounds). */
void chan_apply_cfg(struct chan *c);

/** config.token of a task (caller frees). */
char *chan_task_token(struct chan *c, const char *job, const char *task, const char *role,
                      int index);

/** system.transport: transport.advertise, else callback.host and the port
 * serving the channel API (caller frees). */
char *chan_advertise(const struct gw_cfg *cfg);

/** A t_task row changed (NOTIFY bfia_task; NULL: anything may have). */
void chan_task_changed(struct chan *c, const char *task_id);

/** The queues; after an operation that may have added a waiter call chan_arm(). */
struct chanq *chan_queues(struct chan *c);
void chan_arm(struct chan *c);

/** Milliseconds of the queue clock. */
long long chan_now(void);

/* A resolved capability.  Borrowed from the cache: copy what must outlive
 * the call that got it. */
struct chan_cap {
    char *token;
    char *job_id, *task_id, *role;
    int role_index;
    char *session;       /* config.session_id of the task */
    char **parties;      /* config.node_id.* of the task, node ids */
    size_t nparties;
    bool scoped;         /* every party is ours: messages keyed by task too */
    long long loaded_ms;
};

/** A fresh cached capability for token, or NULL (then chan_cap_load). */
const struct chan_cap *chan_cap_cached(struct chan *c, const char *token);

/**
 * Resolve token against the database.  Returns NULL and cb runs once, later:
 * with the capability, or NULL and a transport code and message
 * (E0000000403: task not running; E0000000500: database trouble).  Or
 * returns a code at once (token malformed or forged, database queue full)
 * with *msg saying why, and cb will not run.
 */
typedef void (*chan_cap_cb)(void *arg, const struct chan_cap *cap, const char *code,
                            const char *msg);
const char *chan_cap_load(struct chan *c, const char *token, chan_cap_cb cb, void *arg,
                          const char **msg);

/** Whether node is a party of cap's task. */
bool chan_cap_has_party(const struct chan_cap *cap, const char *node);

/* The job that owns a session on this node (for invoke). */
struct chan_job {
    char *job_id;
    int state;           /* CHAN_JOB_NONE, _LIVE or _ENDED */
    char **parties;      /* node ids of every role of the job */
    size_t nparties;
    bool scoped;
    long long loaded_ms;
};
enum { CHAN_JOB_NONE, CHAN_JOB_LIVE, CHAN_JOB_ENDED };

/** The job id named by a session id ("session_<job>"), or NULL (borrowed into s). */
const char *chan_session_job(const char *session);

const struct chan_job *chan_job_cached(struct chan *c, const char *job_id);
/* As chan_cap_load: NULL and cb later (job, or NULL with code and message),
 * or a code now. */
typedef void (*chan_job_cb)(void *arg, const struct chan_job *job, const char *code,
                            const char *msg);
const char *chan_job_load(struct chan *c, const char *job_id, chan_job_cb cb, void *arg,
                          const char **msg);
bool chan_job_has_party(const struct chan_job *j, const char *node);

/** Whether node's messages are task-scoped: this node, or a standard-profile route. */
bool chan_node_is_ours(const struct gw_app *app, const char *node);

/* ---- relay to a peer node ----------------------------------------------------- */

struct httpc_resp;

struct chan_relay_req {
    const char *peer;        /* target node id (must have a route) */
    const char *path_query;  /* "/v1/interconn/chan/invoke?..." (signed with the body) */
    const char *const *headers; /* "Name: value" lines, NULL-terminated (copied) */
    void *data;              /* the body, taken: freed when the relay ends */
    size_t len;
    long timeout_ms;         /* per attempt */
};

/* The peer's raw answer (hr->err: unreachable after transport.relay_retries). */
typedef void (*chan_relay_cb)(void *arg, const struct httpc_resp *hr);

/**
 * Send a message to a peer node through the route table (its scheme,
 * profile and signing: gateway/peer.h peer_call_raw), retrying transport
 * failures transport.relay_retries times with backoff.  Returns NULL and cb
 * runs once later, or a transport code now (E0000000618: no route;
 * E0000000500) and cb will not run; the body is freed either way.
 */
const char *chan_relay(struct chan *c, struct chan_relay_req *r, chan_relay_cb cb, void *arg,
                       struct chan_relay **out);

/** Abandon a relay: no callback. */
void chan_relay_cancel(struct chan *c, struct chan_relay *r);

/** Count a relay's outcome (metrics). */
void chan_relay_done(struct chan *c, bool ok);

/* ---- sending to gateways of ours (batched) ------------------------------------------ */

/*
 * A push for a peer of the standard profile goes through that peer's lanes
 * (transport.relay_lanes; a message's lane is fixed by its session, scope
 * and topic, so their order holds).  A lane has at most one request in
 * flight; pushes arriving meanwhile wait in the lane and go together in the
 * next request (container/chanbatch.h: at most transport.batch_msgs and
 * transport.batch_bytes), signed once.  A message of 64 KiB or more goes
 * alone in the raw invoke form (not copied).  A peer that does not answer
 * in the batch form (an older gateway) gets single messages for a minute.
 * A request that fails after transport.relay_retries fails its messages and
 * those waiting behind them in the lane with E0000000607.
 */
struct chan_send;

struct chan_send_req {
    const char *peer;            /* target node id (must have a route) */
    const char *session, *scope, *topic;
    const char *trace, *provider; /* headers when the message goes alone (may be NULL) */
    long long timeout_ms;        /* how long the receiver may wait for room */
    void *data;                  /* the payload, taken (freed when done) */
    size_t len;
};

/* The outcome of one message: a transport code and message. */
typedef void (*chan_send_cb)(void *arg, const char *code, const char *msg);

/**
 * Queue a message for peer.  Returns NULL and cb runs once later, or a code
 * now (E0000000618: no route) and cb will not run; the payload is taken
 * either way.
 */
const char *chan_send(struct chan *c, struct chan_send_req *r, chan_send_cb cb, void *arg,
                      struct chan_send **out);

/** Forget a message's outcome: cb will not run. */
void chan_send_cancel(struct chan *c, struct chan_send *s);

/* How a raw (dialect B) answer is read (routes/chanwire.h chanwire_parse_answer
 * for CHANWIRE_RAW); set by the HTTP side, which knows the wire forms. */
typedef int (*chan_raw_answer_fn)(const void *body, size_t len, char code[32], char *msg,
                                  size_t msgsz);
void chan_set_raw_answer(struct chan *c, chan_raw_answer_fn fn);

/* ---- metrics ------------------------------------------------------------------------ */

enum chan_api { CHAN_API_PUSH, CHAN_API_POP, CHAN_API_PEEK, CHAN_API_RELEASE, CHAN_API_INVOKE,
                CHAN_API_MAX };
/** Count one answer of api with code. */
void chan_count(struct chan *c, int api, const char *code);
void chan_metrics(const struct chan *c, FILE *out);

/**
 * A hook the HTTP side runs on every sweep (once a second): it checks its
 * waiting requests' connections.
 */
void chan_set_sweep_hook(struct chan *c, void (*fn)(void *arg), void *arg);

#endif
