/*
 * peer.h - the route table of peer nodes and calls to them.
 *
 * The table lives in t_route (PostgreSQL is the source of truth) and is
 * cached here for the call path.  The routes file extends FATE-Flow's
 * route_table.yaml: `<node_id>: {host, port}` works unchanged; optional keys
 * per node are scheme (http|https), profile (standard|fate-flow|kuscia),
 * auth (required|optional|off) and key (a pinned public key).
 *
 * A profile decides the wire details of DESIGN.md "Wire profiles": the
 * success code (0, or 200 for kuscia), the node-id header spellings, how
 * GET parameters travel.  peer_call() normalises the reply: code 0 means
 * success whatever the profile.
 *
 * This node's own id, when absent from the table, is answered through its
 * own listener over loopback, so "call the scheduler" is the same code
 * whether the scheduler is local or not.  Loop-thread only.
 */
#ifndef GW_GATEWAY_PEER_H
#define GW_GATEWAY_PEER_H

#include <stdbool.h>

#include "compat.h"
#include "err.h"

struct gw_app;
struct cJSON;
struct peers;
struct httpc_req;
struct httpc_resp;

enum peer_profile { PEER_STANDARD, PEER_FATE_FLOW, PEER_KUSCIA };

struct peer_route {
    char *node_id;
    char *host;
    int port;
    char *scheme;
    enum peer_profile profile;
    char *auth;
    char *key_pin;
};

struct peers *peers_new(struct gw_app *app);
void peers_free(struct peers *p);

/** Cached route of node, or NULL. */
const struct peer_route *peers_find(const struct peers *p, const char *node);

/**
 * Whether the request address addr (numeric, as server_req_peer gives it)
 * is route r's host.  A host that is a name, not an address, answers
 * name_ok (no DNS lookups on the loop).
 */
bool peer_route_at(const struct peer_route *r, const char *addr, bool name_ok);

/** The one route accepting unsigned requests (auth optional or off) whose
 *  host is the address addr, or NULL (none, or more than one). */
const struct peer_route *peers_unsigned_at(const struct peers *p, const char *addr);

/** Whether some route accepts unsigned requests (auth optional or off). */
bool peers_any_unsigned(const struct peers *p);

/** Profile of a caller (standard when unknown). */
enum peer_profile peers_profile(const struct peers *p, const char *node);
const char *peer_profile_name(enum peer_profile pr);

/**
 * Parse a routes file into a JSON array of {node_id, host, port, scheme,
 * profile, auth, key_pin}.  NULL with eb naming file:line on any error.
 */
struct cJSON *peers_parse_file(const char *path, struct gw_errbuf *eb);

/**
 * Replace the cached table with rows (node_id, host, port, scheme, profile,
 * auth, key_pin), as read from t_route (routes/routedb.c keeps t_route);
 * cached peer keys are forgotten.
 */
struct db_rows;
void peers_set(struct peers *p, const struct db_rows *rows);

/* Reply of a peer, normalised.  Borrowed; valid during the callback. */
struct peer_resp {
    int err;           /* 0 when an envelope came back; GW_EPEER/GW_ETIMEOUT/GW_ENOTFOUND (no route) */
    int code;          /* envelope code, 0 = success (kuscia's 200 mapped to 0) */
    const char *msg;   /* envelope msg, or the transport error text */
    const struct cJSON *data; /* envelope data (may be NULL) */
    const struct cJSON *root;
    long status;       /* HTTP status */
    const char *node;
};

typedef void (*peer_cb)(void *arg, const struct peer_resp *r);

/**
 * Call node: method "POST" or "GET", path "/v1/interconn/...", body a JSON
 * object (borrowed; sent as the body, and for GET to fate-flow peers also as
 * query parameters).  Same async contract as httpc_send: 0 and one callback
 * later, or an error and none.  retries < 0 uses peer.retries.
 */
int peer_call(struct gw_app *app, const char *node, const char *method, const char *path,
              const struct cJSON *body, int retries, peer_cb cb, void *arg,
              struct httpc_req **out) GW_MUSTCHECK;

/**
 * POST a raw body (the transport's relay) to node at path_query (a path and
 * query: the signature covers both), with extra "Name: value" header lines
 * (NULL-terminated; the caller sets Content-Type).  Same route, scheme,
 * profile and signing as peer_call; the body is sent as given (not copied
 * when borrow: it must then stay valid until done runs or the call is
 * cancelled) and the answer goes to done unparsed.  0, GW_ENOTFOUND (no
 * route) or GW_EINVAL; done runs exactly once after 0.
 */
int peer_call_raw(struct gw_app *app, const char *node, const char *path_query,
                  const char *const *headers, const void *body, size_t len, bool borrow,
                  bool body_mac, long timeout_ms, int retries,
                  void (*done)(void *arg, const struct httpc_resp *r),
                  void *arg, struct httpc_req **out) GW_MUSTCHECK;

/**
 * GET path from node's address with no envelope handling (the JWKS fetch):
 * the raw reply goes to done.  0, or GW_ENOTFOUND when node has no route.
 */
int peer_fetch(struct gw_app *app, const char *node, const char *path,
               void (*done)(void *arg, const struct httpc_resp *r), void *arg) GW_MUSTCHECK;

#endif
