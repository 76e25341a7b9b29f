/* metrics.c - fixed Prometheus registry. */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

/* Upper bounds in seconds; chosen around the 5 ms p99 target. */
static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05,   0.1,   0.25,   0.5,   1.0,  5.0};
#define NBUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))
#define NCLASSES 5 /* 1xx..5xx */

struct route_series {
    unsigned long long by_class[NCLASSES];
    unsigned long long buckets[NBUCKETS]; /* non-cumulative; summed at render */
    unsigned long long count;
    double sum_s;
};

struct metrics {
    int nroutes;
    const char *const *names;
    struct route_series *series; /* nroutes + 1 */
    unsigned long long counters[METRICS_COUNTER_MAX];
    struct {
        const char *entity, *to;
        unsigned long long n;
    } states[METRICS_STATE_PAIRS];
    int nstates;
};

struct metrics *metrics_new(int nroutes, const char *const *route_names)
{
    struct metrics *m = gw_xcalloc(1, sizeof(*m));
    m->nroutes = nroutes;
    m->names = route_names;
    m->series = gw_xcalloc((size_t)nroutes + 1, sizeof(*m->series));
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    free(m->series);
    free(m);
}

void metrics_http_done(struct metrics *m, int route_idx, int status, long long dur_us)
{
    if (route_idx < 0 || route_idx > m->nroutes)
        route_idx = m->nroutes;
    struct route_series *s = &m->series[route_idx];
    int cls = status / 100 - 1;
    if (cls < 0 || cls >= NCLASSES)
        cls = NCLASSES - 1;
    s->by_class[cls]++;
    double secs = (double)dur_us / 1e6;
    s->count++;
    s->sum_s += secs;
    for (size_t i = 0; i < NBUCKETS; i++) {
        if (secs <= bucket_le[i]) {
            s->buckets[i]++;
            break;
        }
    }
}

void metrics_count(struct metrics *m, enum metrics_counter c)
{
    if (c >= 0 && c < METRICS_COUNTER_MAX)
        m->counters[c]++;
}

void metrics_state(struct metrics *m, const char *entity, const char *to, long long n)
{
    if (!m || n <= 0)
        return;
    int i;
    for (i = 0; i < m->nstates; i++)
        if (strcmp(m->states[i].entity, entity) == 0 && strcmp(m->states[i].to, to) == 0)
            break;
    if (i == m->nstates) {
        if (m->nstates == METRICS_STATE_PAIRS)
            return;
        m->states[i].entity = entity;
        m->states[i].to = to;
        m->nstates++;
    }
    m->states[i].n += (unsigned long long)n;
}

static const char *route_name(const struct metrics *m, int i)
{
    return i < m->nroutes ? m->names[i] : "unmatched";
}

void metrics_render(const struct metrics *m, FILE *out)
{
    fputs("# HELP gateway_http_requests_total HTTP requests served, by route template and status "
          "class.\n# TYPE gateway_http_requests_total counter\n",
          out);
    for (int i = 0; i <= m->nroutes; i++)
        for (int c = 0; c < NCLASSES; c++)
            if (m->series[i].by_class[c])
                fprintf(out, "gateway_http_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n",
                        route_name(m, i), c + 1, m->series[i].by_class[c]);
    fputs("# HELP gateway_http_request_duration_seconds Time from request read to reply sent.\n"
          "# TYPE gateway_http_request_duration_seconds histogram\n",
          out);
    for (int i = 0; i <= m->nroutes; i++) {
        const struct route_series *s = &m->series[i];
        if (!s->count)
            continue;
        unsigned long long cum = 0;
        for (size_t b = 0; b < NBUCKETS; b++) {
            cum += s->buckets[b];
            fprintf(out, "gateway_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    route_name(m, i), bucket_le[b], cum);
        }
        fprintf(out, "gateway_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                route_name(m, i), s->count);
        fprintf(out, "gateway_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                route_name(m, i), s->sum_s);
        fprintf(out, "gateway_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                route_name(m, i), s->count);
    }
    fprintf(out,
            "# HELP gateway_peer_requests_total Calls to peer nodes by outcome.\n"
            "# TYPE gateway_peer_requests_total counter\n"
            "gateway_peer_requests_total{outcome=\"ok\"} %llu\n"
            "gateway_peer_requests_total{outcome=\"error\"} %llu\n"
            "# HELP gateway_docker_requests_total Docker Engine API calls by outcome.\n"
            "# TYPE gateway_docker_requests_total counter\n"
            "gateway_docker_requests_total{outcome=\"ok\"} %llu\n"
            "gateway_docker_requests_total{outcome=\"error\"} %llu\n",
            m->counters[METRICS_PEER_OK], m->counters[METRICS_PEER_FAIL],
            m->counters[METRICS_DOCKER_OK], m->counters[METRICS_DOCKER_FAIL]);
    fputs("# HELP gateway_state_transitions_total Job and task status changes committed, by "
          "entity and new status.\n# TYPE gateway_state_transitions_total counter\n",
          out);
    for (int i = 0; i < m->nstates; i++)
        fprintf(out, "gateway_state_transitions_total{entity=\"%s\",to=\"%s\"} %llu\n",
                m->states[i].entity, m->states[i].to, m->states[i].n);
}
