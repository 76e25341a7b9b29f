/*
 * psi_component.c - one party's task from input file to output file.
 */
#include "psi_component.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "psi_config.h"
#include "psi_data.h"
#include "psi_log.h"
#include "psi_pool.h"
#include "psi_run.h"
#include "psi_store.h"
#include "psi_suite.h"
#include "psi_transport.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long reader_source(void *arg, struct psi_items *it, char *err, size_t errlen)
{
    return psi_reader_next(arg, it, err, errlen);
}

int psi_component_report_json(const struct psi_component_out *o, char *buf, size_t cap)
{
    return snprintf(buf, cap, "{\"original_count\":%llu,\"intersection_count\":%lld}",
                    (unsigned long long)o->original_count, (long long)o->intersection_count);
}

static int write_report(const char *path, const struct psi_component_out *o, char *err,
                        size_t errlen)
{
    char json[128], tmp[4200];
    int n = psi_component_report_json(o, json, sizeof(json));
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (psi_data_mkdirs_for(path) != 0) {
        snprintf(err, errlen, "report directory of %s: %s", path, strerror(errno));
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%.*s\n", n, json) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "writing report %s: %s", path, strerror(errno));
        if (f)
            unlink(tmp);
        return -1;
    }
    return 0;
}

/* The directory part of path (for the spill directory). */
static void dir_of(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    char *s = strrchr(out, '/');
    if (s && s != out)
        *s = '\0';
    else
        snprintf(out, cap, "%s", s ? "/" : ".");
}

int psi_component_run(const struct psi_config *c, struct psi_transport *t,
                      struct psi_component_out *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->intersection_count = -1;
    const char *who = c->self_party;
    bool gets = psi_config_gets_result(c, c->self_rank);
    int rc = PSI_FAIL_INTERNAL;
    struct psi_reader *rd = NULL;
    struct psi_suite *suite = NULL;
    struct psi_pool *pool = NULL;
    struct psi_link *link = NULL;
    struct psi_store *store = NULL;
    unsigned char *bitmap = NULL;

    rd = psi_reader_open(c->input_path, c->field_names, err, errlen);
    if (!rd)
        return PSI_FAIL_DATA;
    suite = psi_suite_new(c->curve, c->hash, c->h2c, c->fmt, NULL, 0, err, errlen);
    if (!suite) {
        rc = PSI_FAIL_CONFIG;
        goto out;
    }
    int threads = c->threads > 0 ? c->threads : psi_pool_cpus();
    pool = psi_pool_new(threads, psi_run_ws_new, psi_run_ws_free, suite);
    if (!pool) {
        snprintf(err, errlen, "cannot start %d worker threads", threads);
        goto out;
    }
    if (gets) {
        char dir[4096];
        dir_of(c->output_path, dir, sizeof(dir));
        if (psi_data_mkdirs_for(c->output_path) != 0) {
            snprintf(err, errlen, "output directory %s: %s", dir, strerror(errno));
            rc = PSI_FAIL_DATA;
            goto out;
        }
        store = psi_store_new(dir, c->spill_bytes);
        if (!store) {
            snprintf(err, errlen, "output directory path too long");
            rc = PSI_FAIL_DATA;
            goto out;
        }
    }
    char send_topic[160], recv_topic[160];
    snprintf(send_topic, sizeof(send_topic), "%s-%s", c->self_party, c->peer_party);
    snprintf(recv_topic, sizeof(recv_topic), "%s-%s", c->peer_party, c->self_party);
    struct psi_link_opts lo;
    psi_link_opts_default(&lo);
    lo.self_rank = c->self_rank;
    lo.peer_rank = c->peer_rank;
    lo.send_topic = send_topic;
    lo.recv_topic = recv_topic;
    lo.recv_timeout_ms = c->recv_timeout_ms;
    lo.connect_timeout_ms = c->connect_timeout_ms;
    lo.fin_timeout_ms = c->fin_timeout_ms;
    link = psi_link_new(t, &lo);
    if (!link || psi_link_start(link) != 0) {
        snprintf(err, errlen, "cannot start the link");
        goto out;
    }
    psi_log(who, "rank %d of 2 (peer %s); suite %s/%s/%s/%s; result to %s; %d threads; "
            "sending on %s", c->self_rank, c->peer_party, psi_curve_name(c->curve),
            psi_hash_name(c->hash), psi_h2c_name(c->h2c), psi_fmt_name(c->fmt),
            c->result_to_rank < 0 ? "both" : (gets ? "us" : "the peer"), threads, send_topic);
    double t0 = now_s();
    if (psi_link_connect(link) != 0) {
        snprintf(err, errlen, "connecting to %s: %s", c->peer_party, psi_link_error(link));
        rc = PSI_FAIL_PEER;
        goto out;
    }
    psi_log(who, "connected to %s", c->peer_party);
    struct psi_run_opts ro = {c->self_rank, c->peer_rank, c->result_to_rank, PSI_BATCH_SIZE, who};
    struct psi_run_stats st;
    rc = psi_run(&ro, suite, pool, link, reader_source, rd, store, &st, err, errlen);
    out->original_count = psi_reader_count(rd);
    out->peer_count = st.peer_items;
    if (rc != PSI_FAIL_NONE)
        goto out;
    psi_log(who, "exchange done: %llu own items, %llu peer items, %.1f s",
            (unsigned long long)st.self_items, (unsigned long long)st.peer_items, now_s() - t0);
    if (gets) {
        bitmap = calloc(out->original_count / 8 + 1, 1);
        uint64_t matches = 0, written = 0;
        if (!bitmap) {
            snprintf(err, errlen, "out of memory for the result bitmap");
            rc = PSI_FAIL_INTERNAL;
            goto out;
        }
        if (psi_store_intersect(store, bitmap, out->original_count, &matches) != 0) {
            snprintf(err, errlen, "intersection: %s", psi_store_error(store));
            rc = PSI_FAIL_DATA;
            goto out;
        }
        out->spilled_bytes = psi_store_spilled(store);
        if (psi_data_write_output(c->input_path, c->output_path, bitmap, out->original_count,
                                  &written, err, errlen) != 0) {
            rc = PSI_FAIL_DATA;
            goto out;
        }
        if (written != matches) {
            snprintf(err, errlen, "wrote %llu rows for %llu matches", (unsigned long long)written,
                     (unsigned long long)matches);
            rc = PSI_FAIL_INTERNAL;
            goto out;
        }
        out->intersection_count = (int64_t)written;
        psi_log(who, "intersection: %llu of %llu rows written to %s%s", (unsigned long long)written,
                (unsigned long long)out->original_count, c->output_path,
                out->spilled_bytes ? " (second-stage values spilled to disk)" : "");
    }
    if (c->report_path[0] && write_report(c->report_path, out, err, errlen) != 0) {
        rc = PSI_FAIL_DATA;
        goto out;
    }
    /* As the reference, after the output: FIN, then wait for the peer's FIN
     * and for acknowledgements of everything we sent. */
    out->finish = psi_link_finish(link);
    if (out->finish < 0) {
        snprintf(err, errlen, "closing the link: %s", psi_link_error(link));
        rc = PSI_FAIL_PEER;
        goto out;
    }
    if (out->finish == PSI_LINK_NO_FIN)
        psi_log(who, "warning: the peer sent no FIN in time (it had acknowledged all our data)");
    out->seconds = now_s() - t0;
    rc = PSI_FAIL_NONE;
out:
    if (link)
        psi_link_get_stats(link, &out->link);
    if (rc != PSI_FAIL_NONE) {
        /* no partial or stale result is left behind */
        if (gets && c->output_path[0])
            unlink(c->output_path);
        if (c->report_path[0])
            unlink(c->report_path);
    }
    psi_link_free(link);
    psi_store_free(store);
    psi_pool_free(pool);
    psi_suite_free(suite);
    psi_reader_close(rd);
    free(bitmap);
    return rc;
}
