/*
 * metrics.h - a fixed registry of counters and histograms rendered in the
 * Prometheus text format 0.0.4.
 *
 * Label values come only from bounded sets (route templates known at
 * start-up, status classes), never from ids in requests, so the number of
 * series is fixed when the process starts.  Loop-thread only.
 */
#ifndef GW_GATEWAY_METRICS_H
#define GW_GATEWAY_METRICS_H

#include <stdio.h>

#include "compat.h"

struct metrics;

/**
 * Create a registry for nroutes route names (borrowed: they must outlive the
 * registry, e.g. string literals of the route table).  Index nroutes is the
 * "unmatched" pseudo-route.  Never NULL.
 */
struct metrics *metrics_new(int nroutes, const char *const *route_names);
void metrics_free(struct metrics *m);

/** Count one finished HTTP request: route index (or nroutes), HTTP status, duration. */
void metrics_http_done(struct metrics *m, int route_idx, int status, long long dur_us);

/** Named counters outside HTTP (peer calls, docker calls...). */
enum metrics_counter {
    METRICS_PEER_OK,
    METRICS_PEER_FAIL,
    METRICS_DOCKER_OK,
    METRICS_DOCKER_FAIL,
    METRICS_COUNTER_MAX
};
void metrics_count(struct metrics *m, enum metrics_counter c);

/**
 * Count n state transitions of entity to state `to`
 * (gateway_state_transitions_total{entity,to}).  Both strings must be
 * literals from a bounded set (the scheduler's entity and state names);
 * pairs beyond the first METRICS_STATE_PAIRS seen are dropped.
 */
#define METRICS_STATE_PAIRS 48
void metrics_state(struct metrics *m, const char *entity, const char *to, long long n);

/** Write every series owned by the registry to out (text format 0.0.4). */
void metrics_render(const struct metrics *m, FILE *out);

#endif
