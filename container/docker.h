/*
 * docker.h - Docker Engine API client over the foundation's async HTTP client.
 *
 * Speaks to the engine named by docker.host (GW_DOCKER_HOST): a unix socket
 * ("unix:///var/run/docker.sock") or TCP ("tcp://host:port", or "https://"
 * for TLS with the usual client certificate options) - a remote engine is a
 * configuration, not a code change.  The API version is negotiated with
 * /_ping (never hard-wired: Docker 29 refuses versions below 1.44) and put in
 * every URL.
 *
 * Every call follows the async contract of httpc.h: 0 and exactly one
 * callback later, or an error and no callback.  Engine errors (404 no such
 * image/container, 409 conflict, 500) become GW_ENOTFOUND / GW_ECONFLICT /
 * GW_EDOCKER with the engine's own message, so it can reach the API caller
 * or the task row.  Loop-thread only.
 *
 * The pure parts (version comparison, the 8-byte log frame demultiplexer,
 * error-message extraction, NDJSON splitting) are exposed for unit tests.
 */
#ifndef GW_CONTAINER_DOCKER_H
#define GW_CONTAINER_DOCKER_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/compat.h"
#include "gateway/err.h"

struct event_base;
struct httpc;
struct metrics;
struct cJSON;
struct docker;
struct docker_call;

/* Supported API range; negotiation picks min(DRIVER_MAX, engine's). */
#define DOCKER_API_MIN "1.41"
#define DOCKER_API_MAX "1.45"

/*
 * Result of one call, borrowed by the callback and valid only during it.
 *   err     0, GW_ENOTFOUND (404), GW_ECONFLICT (409), GW_EINVAL (400),
 *           GW_EDOCKER (500 or transport failure), GW_ETIMEOUT
 *   status  HTTP status (0 when the engine could not be reached)
 *   msg     engine message for errors ("No such image: x:1"), else ""
 *   json    parsed JSON body when the engine sent JSON, else NULL
 *   text    raw body (logs: demultiplexed text)
 */
struct docker_result {
    int err;
    long status;
    const char *msg;
    const struct cJSON *json;
    const char *text;
    size_t text_len;
};

typedef void (*docker_cb)(void *arg, const struct docker_result *r);

struct docker_opts {
    const char *host;      /* unix:///path, tcp://h:p, https://h:p */
    long timeout_ms;       /* short calls; 0 = 30000 */
    const char *ca_file;   /* TLS to a remote engine (optional) */
    const char *cert_file;
    const char *key_file;
    const char *registry_auth; /* X-Registry-Auth value for pulls, or NULL */
};

/** Create a client (does no I/O).  NULL with eb for a malformed host. */
struct docker *docker_new(struct httpc *hc, struct metrics *m, const struct docker_opts *o,
                          struct gw_errbuf *eb);
void docker_free(struct docker *d);

/** A new timeout for short calls (docker.timeout_s on SIGHUP); calls under way keep theirs. */
void docker_set_timeout(struct docker *d, long timeout_ms);

/** Negotiated API version ("1.41"), or "" before the first successful ping. */
const char *docker_api_version(const struct docker *d);

/** GET /_ping, then negotiate the version.  json is NULL; msg holds the version. */
int docker_ping(struct docker *d, docker_cb cb, void *arg) GW_MUSTCHECK;

/** GET /images/{name}/json. */
int docker_image_inspect(struct docker *d, const char *name, docker_cb cb, void *arg) GW_MUSTCHECK;

/** POST /images/create?fromImage= (a registry must be reachable). Scans the progress stream for errors. */
int docker_image_pull(struct docker *d, const char *ref, docker_cb cb, void *arg) GW_MUSTCHECK;

/** POST /containers/create?name=; body is the create JSON (borrowed). 201 -> json {"Id",...}. */
int docker_container_create(struct docker *d, const char *name, const struct cJSON *body,
                            docker_cb cb, void *arg) GW_MUSTCHECK;

/** POST /containers/{id}/start (304 already started counts as success). */
int docker_container_start(struct docker *d, const char *id, docker_cb cb, void *arg) GW_MUSTCHECK;

/**
 * POST /containers/{id}/wait?condition=... (no timeout; long poll).  on_armed,
 * if set, runs once when the engine has registered the wait (its 200 headers
 * arrived), so the caller can start the container race-free.  *out receives a
 * handle for docker_cancel().
 */
int docker_container_wait(struct docker *d, const char *id, const char *condition,
                          void (*on_armed)(void *arg), docker_cb cb, void *arg,
                          struct docker_call **out) GW_MUSTCHECK;

/** GET /containers/{id}/json. */
int docker_container_inspect(struct docker *d, const char *id, docker_cb cb, void *arg) GW_MUSTCHECK;

/** GET /containers/{id}/logs?stdout=1&stderr=1&tail=N: text is the demultiplexed output. */
int docker_container_logs(struct docker *d, const char *id, int tail, docker_cb cb, void *arg) GW_MUSTCHECK;

/** POST /containers/{id}/stop?t=N (304 counts as success). */
int docker_container_stop(struct docker *d, const char *id, int t, docker_cb cb, void *arg) GW_MUSTCHECK;

/** POST /containers/{id}/kill?signal=S (409 "not running" counts as success). */
int docker_container_kill(struct docker *d, const char *id, const char *signal, docker_cb cb,
                          void *arg) GW_MUSTCHECK;

/** DELETE /containers/{id}?force=1&v=1 (404 counts as success). */
int docker_container_remove(struct docker *d, const char *id, docker_cb cb, void *arg) GW_MUSTCHECK;

/** GET /containers/json?all=1&filters={"label":[label]}: json is the array. */
int docker_container_list(struct docker *d, const char *label, docker_cb cb, void *arg) GW_MUSTCHECK;

/**
 * GET /events?filters=... stream: on_event gets each parsed event object
 * (borrowed); cb fires once when the stream ends (engine restart: err set).
 */
int docker_events(struct docker *d, const char *label,
                  void (*on_event)(void *arg, const struct cJSON *ev), docker_cb cb, void *arg,
                  struct docker_call **out) GW_MUSTCHECK;

/** Cancel a call (a wait or an events stream): its callback will not run. NULL-safe. */
void docker_cancel(struct docker_call *call);

/* ---- pure helpers (unit-tested) ---------------------------------------- */

/** Compare "1.41" and "1.9" numerically: <0, 0, >0.  Malformed sorts lowest. */
int docker_version_cmp(const char *a, const char *b);

/**
 * Pick the version to use given the engine's Api-Version and its minimum
 * (may be NULL).  Writes it to out (cap >= 16).  GW_EDOCKER with eb when the
 * ranges do not overlap.
 */
int docker_version_negotiate(const char *engine_max, const char *engine_min, char *out,
                             size_t cap, struct gw_errbuf *eb) GW_MUSTCHECK;

/*
 * Demultiplexer of the logs stream (Tty=false): 8-byte headers (stream id,
 * 3 zero bytes, big-endian length) then payload, split arbitrarily across
 * feeds.  Payload bytes of stdout and stderr are appended to out (cap bytes
 * kept: the last cap bytes when more arrive, for "last lines of the log").
 */
struct docker_demux {
    unsigned char hdr[8];
    size_t hdr_have;
    size_t payload_left;
    int stream;
    bool corrupt;
    char *out;   /* owned; NUL-terminated */
    size_t len;
    size_t cap;
};
void docker_demux_init(struct docker_demux *dm, size_t cap);
/** Feed bytes; returns false once the stream is corrupt (bad id or huge frame). */
bool docker_demux_feed(struct docker_demux *dm, const char *buf, size_t len);
void docker_demux_cleanup(struct docker_demux *dm);

/**
 * The message of an engine error reply: the JSON {"message":...} when the body
 * is JSON, else the raw text (trimmed), else "HTTP <status>".  Writes to out.
 */
void docker_error_text(long status, const char *body, size_t len, char *out, size_t cap);

#endif
