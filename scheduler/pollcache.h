/*
 * pollcache.h - the answers of task/poll, kept in memory and forgotten the
 * moment PostgreSQL says the task changed.
 *
 * task/poll is the hottest read of the partner API: every scheduler asks
 * every party about every live task once a second (spec §4), and the answer
 * changes a handful of times in a task's life.  The cache holds, per
 * task_id, the database row the poll query returned for each (role, index)
 * that was asked for.
 *
 * Correctness does not rest on this process being the only writer.  A
 * trigger on t_task (migration 0006) sends NOTIFY bfia_task <task_id> at
 * every commit that touches the task; the pool's listening connection hands
 * it to pollcache_forget().  Rules:
 *
 *   - nothing is served or stored unless LISTEN is in effect
 *     (db_pool_listening): a notification can only be missed while it is not;
 *   - the listening connection coming up or going down forgets everything;
 *   - a miss takes a ticket (the cache epoch and the task's generation)
 *     before its query is sent, and its row is stored only if neither moved
 *     while the query ran: a row read before a commit whose notification
 *     arrived first is never stored;
 *   - a row read before a commit whose notification arrives after the row is
 *     stored and then forgotten by that notification.
 *
 * So an answer is at most as old as the notification in flight, the same
 * staleness a poll sent a moment earlier would have.  Memory is bounded:
 * past pollcache_max_bytes everything is forgotten and the cache refills.
 *
 * Loop-thread only.
 */
#ifndef GW_SCHEDULER_POLLCACHE_H
#define GW_SCHEDULER_POLLCACHE_H

#include <stdbool.h>
#include <stddef.h>

#define POLLCACHE_NVALS 5 /* the columns of the task/poll query */

struct pollcache;

struct pollcache_ticket {
    unsigned long long epoch;
    unsigned long long gen;
    bool valid; /* false: do not store what the query returns */
};

struct pollcache_stats {
    unsigned long long hits, misses, stored, forgotten, flushes;
    size_t tasks, bytes;
};

/** max_bytes bounds what the values and keys take (0 = 8 MiB).  Never NULL. */
struct pollcache *pollcache_new(size_t max_bytes);
void pollcache_free(struct pollcache *c);

/**
 * Look up (task_id, role, idx).  On a hit returns the stored values
 * (POLLCACHE_NVALS entries, NULL = SQL NULL; borrowed until the next call
 * that changes the cache).  On a miss returns NULL and fills *t for
 * pollcache_put.  listening: db_pool_listening() now.
 */
const char *const *pollcache_get(struct pollcache *c, bool listening, const char *task_id,
                                 const char *role, int idx, struct pollcache_ticket *t);

/** Store the row a miss read, if its ticket is still good. */
void pollcache_put(struct pollcache *c, const struct pollcache_ticket *t, const char *task_id,
                   const char *role, int idx, const char *const *vals);

/** task_id changed (NULL or "": anything may have changed). */
void pollcache_forget(struct pollcache *c, const char *task_id);

void pollcache_stats(const struct pollcache *c, struct pollcache_stats *st);

#endif
