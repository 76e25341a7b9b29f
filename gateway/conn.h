/*
 * conn.h - the connection guard: what every accepted connection goes
 * through before and around evhttp.
 *
 * libevent 2.1's evhttp bounds only the time between two reads
 * (http.timeout_s), so a client that trickles a byte every few seconds
 * keeps a connection for ever; it accepts request heads a proxy would frame
 * differently; it has no per-client limit; and when accept() fails for want
 * of descriptors its listener retries in a tight loop and logs every
 * failure.  The guard sits on every connection's input buffer (the
 * bufferevent comes from evhttp_set_bevcb) and on the listeners:
 *
 *  - Deadlines for the whole request, separate from the idle keep-alive
 *    timeout: the head must be complete within http.header_timeout_s of the
 *    connection's first moment (or of the request's first byte on a kept-
 *    alive connection), the body within http.body_timeout_s plus one second
 *    per http.body_min_rate bytes received.  One sweep a second checks them
 *    all (no timer per connection); a late client gets 408 and is closed.
 *  - Every request head is checked by httphead.h before evhttp parses it.
 *    A head that is not complete yet is held back from evhttp; a bad one is
 *    answered 400 with a message naming the fault, the connection stops
 *    reading (nothing after the bad head is ever parsed) and is closed.
 *  - At most http.max_conns_per_addr connections per client address (0 =
 *    no cap); the next one is answered 503 and closed at once.
 *  - A descriptor budget: connections are capped below RLIMIT_NOFILE, with
 *    a reserve for PostgreSQL, libcurl, files and task sockets.  At the cap
 *    the oldest connection with no request in progress (idle keep-alive, or
 *    a head still arriving) is shed for the new one; with none to shed the
 *    listener pauses until a connection ends.  An accept() that fails with
 *    EMFILE/ENFILE sheds the same way or pauses the listener 100 ms, and is
 *    logged once per 10 s with a count, never per failure.
 *  - Multipart uploads are handed to the spool (spool.h) once their head is
 *    checked.
 *
 * Loop-thread only.  The guard must outlive its evhttp's connections: free
 * it after evhttp_free.
 */
#ifndef GW_GATEWAY_CONN_H
#define GW_GATEWAY_CONN_H

#include <stdbool.h>

struct gw_app;
struct gw_req;
struct evhttp;
struct evhttp_connection;
struct evconnlistener;
struct spool;
struct spool_conn;
struct conn_guard;
struct conn;

/**
 * Guard every connection of http from now on (installs evhttp_set_bevcb).
 * tcp: the server listens on TCP: per-address caps and the descriptor
 * budget apply (the task-socket server, on Unix sockets, gets deadlines and
 * head checks only).  Never NULL.
 */
struct conn_guard *conn_guard_new(struct gw_app *app, struct evhttp *http, bool tcp);

/** Free the guard: after evhttp_free(), which ends its connections. NULL-safe. */
void conn_guard_free(struct conn_guard *g);

/** Hand checked upload heads to sp from now on (NULL: none). */
void conn_guard_set_spool(struct conn_guard *g, struct spool *sp);

/**
 * Watch a listener of this server: accept errors are handled (pause, shed,
 * one log line per interval) instead of libevent's tight retry loop, and the
 * listener pauses at the descriptor budget.  conn_guard_unwatch before the
 * listener is freed.
 */
void conn_guard_watch(struct conn_guard *g, struct evconnlistener *lev);
void conn_guard_unwatch(struct conn_guard *g, struct evconnlistener *lev);

/** The guard's state of an evhttp connection, or NULL. */
struct conn *conn_find(struct conn_guard *g, struct evhttp_connection *evcon);

/**
 * evhttp dispatched req on c: until conn_request_detach, c's close sets
 * req->client_gone and clears req->conn.
 */
void conn_request_start(struct conn *c, struct gw_req *req);
/** req was answered (or is being freed): c forgets it.  NULL-safe. */
void conn_request_detach(struct conn *c);
/**
 * evhttp wrote the reply to c's request (its on_complete callback): c goes
 * back to idle, and bytes of a pipelined request already received are
 * checked before evhttp reads them.
 */
void conn_request_done(struct conn *c);

/** The upload streaming on c, or NULL (NULL-safe). */
struct spool_conn *conn_spool(const struct conn *c);

/** Connections open, and the budget (0 = none), for logs and tests. */
int conn_guard_count(const struct conn_guard *g);
int conn_guard_budget(const struct conn_guard *g);

#endif
