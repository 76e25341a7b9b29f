/*
 * chanq.h - the channel queues of the transport layer (pure: no I/O, no clock).
 *
 * A message waits here between the push that brought it (a local container
 * or a peer node's invoke) and the pop of the container it is for.  Keys
 * follow spec bfia-transport.md §5 [REC]:
 *
 *   session  (x-ptp-session-id)          } one "session slice": the unit of
 *   scope    (our extension: the task id } bounds, release and expiry
 *             between our own nodes, "" otherwise)
 *   topic    (body or x-ptp-topic)         a FIFO queue inside the slice
 *   peer     (the node the message came from) a tag on each message; a pop
 *             names the peer it reads from, or "" for any peer (the oldest
 *             message of the topic wins)
 *
 * Bounds: bytes and messages per slice and in total, a cap on the number of
 * slices and on topics per slice.  A push that does not fit waits (FIFO per
 * slice, behind earlier waiting pushes) until its deadline; a pop on an empty
 * queue waits until its deadline.  Waiters are callbacks: no thread and no
 * timer each.  chanq_tick() fires the ones whose deadline passed and
 * chanq_next_deadline() tells the owner when to call it, so one timer serves
 * every waiter.
 *
 * Released slices are remembered for limits.released_ms (late traffic gets
 * CHANQ_RELEASED); a whole session (every scope) can be marked released, as
 * when its job ends.  Idle slices are dropped by chanq_sweep(): an idle slice
 * that still held messages is remembered as released (the loss is visible);
 * an empty one is forgotten.
 *
 * Time is passed in by the caller (milliseconds, any monotonic origin), so
 * unit tests drive it.  Callbacks never run inside the call that registered
 * them; they may run inside any other chanq call and may call chanq again.
 * Payloads are malloc'd blocks: a pushed block is owned by the queue until a
 * pop hands it to the popper, who frees it with free().
 */
#ifndef GW_CONTAINER_CHANQ_H
#define GW_CONTAINER_CHANQ_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/compat.h"

struct chanq;
struct chanq_waiter;

/* Outcomes.  Values are stable (tests, metrics labels). */
enum chanq_status {
    CHANQ_OK = 0,        /* pushed / popped */
    CHANQ_WAITING = 1,   /* registered: the callback reports the outcome later */
    CHANQ_EMPTY = 2,     /* pop with no wait on an empty queue */
    CHANQ_TIMEOUT = 3,   /* a waiter's deadline passed (pop: nothing came; push: still full) */
    CHANQ_FULL = 4,      /* push with no wait into a full queue */
    CHANQ_RELEASED = 5,  /* the slice or its session was released (or expired holding data) */
    CHANQ_TOOBIG = 6,    /* a message larger than a slice can ever hold */
    CHANQ_LIMIT = 7,     /* too many slices, topics or waiters */
    CHANQ_GONE = 8,      /* the queue is being freed */
};

const char *chanq_status_name(int st);

struct chanq_limits {
    size_t session_bytes;   /* payload bytes held per slice */
    size_t session_msgs;    /* messages held per slice */
    size_t total_bytes;     /* payload bytes held in all slices */
    size_t total_msgs;      /* messages held in all slices */
    size_t max_sessions;    /* live slices */
    size_t max_topics;      /* queues per slice */
    size_t max_waiters;     /* waiting pops + pushes per slice */
    long long idle_ms;      /* a slice untouched this long is dropped by chanq_sweep */
    long long released_ms;  /* released slices are remembered this long */
    size_t released_max;    /* remembered releases beyond this: the oldest are forgotten */
};

/* Where a message goes or comes from.  All strings borrowed; peer "" on a
 * pop means any peer.  scope may be "". */
struct chanq_addr {
    const char *session;
    const char *scope;
    const char *topic;
    const char *peer;
};

/**
 * Outcome of a waiter.  For a pop: CHANQ_OK with data (owned by the callee,
 * free()), or CHANQ_TIMEOUT / CHANQ_RELEASED / CHANQ_GONE with data NULL.
 * For a push: CHANQ_OK (enqueued), CHANQ_TIMEOUT (still full),
 * CHANQ_RELEASED, CHANQ_GONE; data NULL (the queue freed the message).  The
 * waiter handle is invalid once the callback runs.
 */
typedef void (*chanq_cb)(void *arg, int status, void *data, size_t len);

struct chanq *chanq_new(const struct chanq_limits *lim);

/** Fire every waiter with CHANQ_GONE, then free everything (NULL-safe). */
void chanq_free(struct chanq *q);

/** New bounds (reload).  Messages already held stay. */
void chanq_set_limits(struct chanq *q, const struct chanq_limits *lim);

/**
 * Push a message (data: a malloc'd block of len bytes).  now and deadline in
 * ms; deadline <= now means "do not wait".  Returns CHANQ_OK (data taken),
 * CHANQ_WAITING (data taken; cb fires later, *w names the waiter for
 * chanq_cancel), or CHANQ_FULL / CHANQ_RELEASED / CHANQ_TOOBIG / CHANQ_LIMIT
 * (data NOT taken: the caller still owns it).
 */
int chanq_push(struct chanq *q, const struct chanq_addr *a, void *data, size_t len, long long now,
               long long deadline, chanq_cb cb, void *arg, struct chanq_waiter **w) GW_MUSTCHECK;

/**
 * Pop the oldest message of (session, scope, topic) from peer (or any peer).
 * Returns CHANQ_OK with *data and *len (owned by the caller), CHANQ_EMPTY (no
 * wait asked), CHANQ_WAITING (cb fires later), CHANQ_RELEASED or
 * CHANQ_LIMIT.
 */
int chanq_pop(struct chanq *q, const struct chanq_addr *a, long long now, long long deadline,
              chanq_cb cb, void *arg, struct chanq_waiter **w, void **data, size_t *len) GW_MUSTCHECK;

/**
 * Put a popped message back at the head of its queue (its reader was gone
 * before the answer could be sent).  Always taken; may exceed the bounds by
 * this one message, which was held a moment ago.  A waiting pop gets it.
 */
void chanq_requeue(struct chanq *q, const struct chanq_addr *a, void *data, size_t len,
                   long long now);

/** Forget a waiter: its callback will not run (a waiting push's data is freed). */
void chanq_cancel(struct chanq *q, struct chanq_waiter *w);

/**
 * Release (session, scope), or every scope of session when scope is NULL;
 * only topic when topic is not NULL.  Held messages are dropped and the
 * slice's waiters fire with CHANQ_RELEASED.  remember (whole slices only):
 * later pushes and pops of it get CHANQ_RELEASED for limits.released_ms.
 * Returns the number of messages dropped.
 */
size_t chanq_release(struct chanq *q, const char *session, const char *scope, const char *topic,
                     bool remember, long long now);

/** Whether (session, scope) is remembered as released. */
bool chanq_is_released(const struct chanq *q, const char *session, const char *scope, long long now);

/** Fire the waiters whose deadline is <= now (CHANQ_TIMEOUT). */
void chanq_tick(struct chanq *q, long long now);

/** Earliest waiter deadline, or -1 when nothing waits. */
long long chanq_next_deadline(const struct chanq *q);

/** Drop idle slices and forget old releases (see the header comment). */
void chanq_sweep(struct chanq *q, long long now);

/** Visit every live session id once per scope (for the job-end check). */
void chanq_each_session(const struct chanq *q, void (*fn)(void *arg, const char *session,
                                                          const char *scope), void *arg);

struct chanq_stats {
    size_t sessions, queues, msgs, bytes;      /* held now */
    size_t pop_waiters, push_waiters, wait_bytes; /* waiting now (wait_bytes: their payloads) */
    size_t released;                            /* remembered releases */
    unsigned long long pushes, pops, timeouts, full, refused_released, expired, dropped;
};
void chanq_stats(const struct chanq *q, struct chanq_stats *st);

#endif
