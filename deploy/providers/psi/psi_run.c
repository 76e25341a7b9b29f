/*
 * psi_run.c - MaskSelf, MaskPeer and RecvDual.
 */
#include "psi_run.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psi_data.h"
#include "psi_link.h"
#include "psi_log.h"
#include "psi_pool.h"
#include "psi_store.h"
#include "psi_suite.h"
#include "psi_wire.h"

#define GRAIN 256         /* items per pool chunk: 16 chunks per batch */
#define LOG_EVERY 64      /* batches between progress lines */
#define CHAN_MAIN "root"
#define CHAN_DUAL "root-0"

struct run {
    const struct psi_run_opts *o;
    const struct psi_suite *suite;
    struct psi_pool *pool;
    struct psi_link *link;
    psi_source_cb src;
    void *src_arg;
    struct psi_store *store;
    bool self_gets, peer_gets;
    size_t plen;

    pthread_mutex_t mu; /* the fields below */
    uint32_t *counts;   /* items of each own batch, as sent */
    size_t ncounts, capcounts;
    uint64_t self_items, peer_items, dual_items;
    uint64_t self_batches, peer_batches;
    int fail;
    char err[512];
};

void *psi_run_ws_new(void *suite, int i)
{
    (void)i;
    return psi_suite_ws_new(suite);
}

void psi_run_ws_free(void *ws) { psi_suite_ws_free(ws); }

static void fail(struct run *r, int cls, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct run *r, int cls, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->mu);
    if (!r->fail) {
        r->fail = cls;
        snprintf(r->err, sizeof(r->err), "%s", msg);
    }
    pthread_mutex_unlock(&r->mu);
    /* wake the other flows: they fail at their next wait */
    psi_link_fail(r->link, "%s", msg);
}

/* A link call failed: the link's own reason is the root cause, unless
 * another flow failed first for a reason of its own. */
static void link_failed(struct run *r, const char *what)
{
    fail(r, PSI_FAIL_PEER, "%s: %s", what, psi_link_error(r->link));
}

/* ---- pool tasks ------------------------------------------------------------------ */

struct self_job {
    const struct psi_suite *s;
    const struct psi_items *it;
    unsigned char *out;
    size_t plen;
};

static int mask_self_task(void *job, void *ws, size_t b, size_t e)
{
    struct self_job *j = job;
    for (size_t i = b; i < e; i++)
        if (psi_suite_mask_id(j->s, ws, j->it->buf + j->it->off[i], j->it->len[i],
                              j->out + i * j->plen) != 0)
            return 1;
    return 0;
}

struct peer_job {
    const struct psi_suite *s;
    const unsigned char *in;
    unsigned char *dual;
    size_t plen;
};

static int mask_peer_task(void *job, void *ws, size_t b, size_t e)
{
    struct peer_job *j = job;
    unsigned char tmp[PSI_POINT_MAX];
    for (size_t i = b; i < e; i++) {
        if (psi_suite_mask_point(j->s, ws, j->in + i * j->plen, tmp) != 0)
            return 1;
        /* the last 12 bytes of the serialised point, whatever the
         * truncation parameter says (spec §3 [REF]) */
        memcpy(j->dual + i * PSI_DUAL_LEN, tmp + j->plen - PSI_DUAL_LEN, PSI_DUAL_LEN);
    }
    return 0;
}

/* Pack a batch and queue it on channel; frees nothing of data. */
static int send_batch(struct run *r, const char *chan, const char *type, int32_t index, int32_t count,
                      const unsigned char *data, size_t len, bool throttled)
{
    struct psi_wire_batch b = {type, index, count == 0, count, data, len};
    unsigned char *buf;
    size_t blen;
    if (psi_wire_batch_pack(&b, &buf, &blen) != 0) {
        fail(r, PSI_FAIL_INTERNAL, "out of memory packing batch %d", index);
        return -1;
    }
    if (psi_link_send_take(r->link, chan, buf, blen, throttled) != 0) {
        link_failed(r, "sending");
        return -1;
    }
    return 0;
}

/* Receive the next batch of chan; checks its index and item size. */
static int recv_batch(struct run *r, const char *chan, int32_t expect, const char *type,
                      size_t item_len, struct psi_wire_batch *b, struct psi_wire_batch_msg **msg,
                      unsigned char **raw)
{
    size_t len;
    *raw = NULL;
    *msg = NULL;
    if (psi_link_recv(r->link, chan, raw, &len) != 0) {
        link_failed(r, "receiving");
        return -1;
    }
    if (psi_wire_batch_unpack(*raw, len, b, msg) != 0) {
        fail(r, PSI_FAIL_PEER, "the peer's %s batch %d is not an EcdhPsiCipherBatch", type, expect);
        return -1;
    }
    if (b->index != expect) {
        fail(r, PSI_FAIL_PEER, "expected %s batch %d, the peer sent batch %d", type, expect,
             b->index);
        return -1;
    }
    if (strcmp(b->type, type) != 0) /* the reference does not check it either */
        psi_log(r->o->who, "warning: batch %d on channel %s has type '%s', expected '%s'", expect,
                chan, b->type, type);
    if (b->len != (size_t)b->count * item_len) {
        fail(r, PSI_FAIL_PEER, "the peer's %s batch %d holds %zu bytes for %d items of %zu bytes",
             type, expect, b->len, b->count, item_len);
        return -1;
    }
    return 0;
}

/* ---- flows ------------------------------------------------------------------------- */

static void *mask_self(void *arg)
{
    struct run *r = arg;
    struct psi_items it;
    if (psi_items_init(&it, r->o->batch_size) != 0) {
        fail(r, PSI_FAIL_INTERNAL, "out of memory");
        return NULL;
    }
    unsigned char *out = malloc(r->o->batch_size * r->plen);
    if (!out) {
        psi_items_cleanup(&it);
        fail(r, PSI_FAIL_INTERNAL, "out of memory");
        return NULL;
    }
    uint64_t total = 0;
    for (int32_t k = 0;; k++) {
        char err[512];
        long n = r->src(r->src_arg, &it, err, sizeof(err));
        if (n < 0) {
            fail(r, PSI_FAIL_DATA, "%s", err);
            break;
        }
        struct self_job j = {r->suite, &it, out, r->plen};
        if (n > 0 && psi_pool_run(r->pool, mask_self_task, &j, (size_t)n, GRAIN) != 0) {
            fail(r, PSI_FAIL_DATA, "an own item of batch %d maps to no curve point", k);
            break;
        }
        pthread_mutex_lock(&r->mu);
        if (r->ncounts == r->capcounts) {
            size_t nc = r->capcounts ? r->capcounts * 2 : 256;
            uint32_t *c = realloc(r->counts, nc * sizeof(*c));
            if (!c) {
                pthread_mutex_unlock(&r->mu);
                fail(r, PSI_FAIL_INTERNAL, "out of memory");
                break;
            }
            r->counts = c;
            r->capcounts = nc;
        }
        r->counts[r->ncounts++] = (uint32_t)n; /* before the peer can answer it */
        r->self_batches = (uint64_t)k + (n > 0);
        pthread_mutex_unlock(&r->mu);
        if (send_batch(r, CHAN_MAIN, "enc", k, (int32_t)n, out, (size_t)n * r->plen, true) != 0)
            break;
        total += (uint64_t)n;
        if (n == 0)
            break;
        if ((k + 1) % LOG_EVERY == 0)
            psi_log(r->o->who, "sent %d batches (%llu own items)", k + 1, (unsigned long long)total);
    }
    pthread_mutex_lock(&r->mu);
    r->self_items = total;
    pthread_mutex_unlock(&r->mu);
    free(out);
    psi_items_cleanup(&it);
    return NULL;
}

static void *mask_peer(void *arg)
{
    struct run *r = arg;
    uint64_t total = 0;
    unsigned char *dual = malloc(r->o->batch_size * PSI_DUAL_LEN);
    if (!dual) {
        fail(r, PSI_FAIL_INTERNAL, "out of memory");
        return NULL;
    }
    for (int32_t k = 0;; k++) {
        struct psi_wire_batch b;
        struct psi_wire_batch_msg *msg;
        unsigned char *raw;
        if (recv_batch(r, CHAN_MAIN, k, "enc", r->plen, &b, &msg, &raw) != 0) {
            psi_wire_batch_msg_free(msg);
            free(raw);
            break;
        }
        free(raw);
        int32_t n = b.count;
        int rc = 0;
        if (n > 0) {
            if ((size_t)n > r->o->batch_size) { /* REF's peers send 4096 at most */
                unsigned char *d = realloc(dual, (size_t)n * PSI_DUAL_LEN);
                if (!d) {
                    psi_wire_batch_msg_free(msg);
                    fail(r, PSI_FAIL_INTERNAL, "out of memory");
                    break;
                }
                dual = d;
            }
            struct peer_job j = {r->suite, b.data, dual, r->plen};
            if (psi_pool_run(r->pool, mask_peer_task, &j, (size_t)n, GRAIN) != 0) {
                psi_wire_batch_msg_free(msg);
                fail(r, PSI_FAIL_PEER, "the peer's batch %d holds a value that is not a valid point",
                     k);
                break;
            }
            if (r->self_gets && psi_store_add_peer(r->store, dual, (size_t)n) != 0) {
                psi_wire_batch_msg_free(msg);
                fail(r, PSI_FAIL_DATA, "%s", psi_store_error(r->store));
                break;
            }
        }
        psi_wire_batch_msg_free(msg);
        /* non-blocking, as the reference: blocking here could deadlock both
         * windows (each side waiting for the other to read) */
        if (r->peer_gets)
            rc = send_batch(r, CHAN_DUAL, "dual.enc", k, n, dual, (size_t)n * PSI_DUAL_LEN, false);
        if (rc != 0)
            break;
        if (n == 0)
            break;
        total += (uint64_t)n;
        pthread_mutex_lock(&r->mu);
        r->peer_items = total;
        r->peer_batches = (uint64_t)k + 1;
        pthread_mutex_unlock(&r->mu);
        if ((k + 1) % LOG_EVERY == 0)
            psi_log(r->o->who, "masked %d peer batches (%llu peer items)", k + 1,
                    (unsigned long long)total);
    }
    free(dual);
    return NULL;
}

static void *recv_dual(void *arg)
{
    struct run *r = arg;
    uint64_t idx = 0;
    for (int32_t k = 0;; k++) {
        struct psi_wire_batch b;
        struct psi_wire_batch_msg *msg;
        unsigned char *raw;
        if (recv_batch(r, CHAN_DUAL, k, "dual.enc", PSI_DUAL_LEN, &b, &msg, &raw) != 0) {
            psi_wire_batch_msg_free(msg);
            free(raw);
            break;
        }
        free(raw);
        if (b.count == 0) {
            psi_wire_batch_msg_free(msg);
            break;
        }
        pthread_mutex_lock(&r->mu);
        long sent = (size_t)k < r->ncounts ? (long)r->counts[k] : -1;
        pthread_mutex_unlock(&r->mu);
        if (sent != b.count) {
            psi_wire_batch_msg_free(msg);
            if (sent < 0)
                fail(r, PSI_FAIL_PEER, "the peer answered our batch %d before we sent it", k);
            else
                fail(r, PSI_FAIL_PEER, "the peer answered our batch %d of %ld items with %d", k,
                     sent, b.count);
            break;
        }
        int rc = psi_store_add_self(r->store, idx, b.data, (size_t)b.count);
        psi_wire_batch_msg_free(msg);
        if (rc != 0) {
            fail(r, PSI_FAIL_DATA, "%s", psi_store_error(r->store));
            break;
        }
        idx += (uint64_t)b.count;
    }
    pthread_mutex_lock(&r->mu);
    r->dual_items = idx;
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int psi_run(const struct psi_run_opts *o, const struct psi_suite *suite, struct psi_pool *pool,
            struct psi_link *link, psi_source_cb src, void *src_arg, struct psi_store *store,
            struct psi_run_stats *st, char *err, size_t errlen)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    r.o = o;
    r.suite = suite;
    r.pool = pool;
    r.link = link;
    r.src = src;
    r.src_arg = src_arg;
    r.store = store;
    r.self_gets = o->result_to_rank < 0 || o->result_to_rank == o->self_rank;
    r.peer_gets = o->result_to_rank < 0 || o->result_to_rank == o->peer_rank;
    r.plen = psi_suite_point_len(suite);
    if (r.self_gets && !store) {
        snprintf(err, errlen, "no store for the result");
        return PSI_FAIL_INTERNAL;
    }
    pthread_mutex_init(&r.mu, NULL);
    pthread_t th[3];
    void *(*fn[3])(void *) = {mask_self, mask_peer, recv_dual};
    int nth = r.self_gets ? 3 : 2, started = 0;
    for (; started < nth; started++) {
        if (pthread_create(&th[started], NULL, fn[started], &r) != 0) {
            fail(&r, PSI_FAIL_INTERNAL, "cannot start a thread");
            break;
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (!r.fail && r.self_gets && r.dual_items != r.self_items)
        fail(&r, PSI_FAIL_PEER, "the peer answered %llu of our %llu items",
             (unsigned long long)r.dual_items, (unsigned long long)r.self_items);
    if (st) {
        st->self_items = r.self_items;
        st->peer_items = r.peer_items;
        st->self_batches = r.self_batches;
        st->peer_batches = r.peer_batches;
    }
    free(r.counts);
    pthread_mutex_destroy(&r.mu);
    if (r.fail)
        snprintf(err, errlen, "%s", r.err);
    return r.fail;
}
