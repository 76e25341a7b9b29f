/*
 * psi_link.c - YACL-compatible link layer over a psi_transport.
 *
 * One mutex and one condition variable guard all state: the traffic is a
 * few messages per 4096 items, so contention does not matter and a single
 * broadcast keeps every wait simple and correct.
 */
#include "psi_link.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "psi_transport.h"
#include "psi_wire.h"

#define KEY_MAX 256
#define SEQ_LIMIT (1u << 26) /* 64 M messages: far beyond any run (2 per 4096 items) */
#define MAX_CHANNELS 8

/* A set of sequence numbers: bitmap, count, and how far 1..n is complete. */
struct seqset {
    uint64_t *bits;
    size_t words;
    uint64_t count;
    uint64_t contig;
};

static int seqset_has(const struct seqset *s, uint64_t v)
{
    return v / 64 < s->words && (s->bits[v / 64] >> (v % 64) & 1);
}

/* 1 added, 0 already there, -1 out of range or memory. */
static int seqset_add(struct seqset *s, uint64_t v)
{
    if (v == 0 || v > SEQ_LIMIT)
        return -1;
    if (v / 64 >= s->words) {
        size_t nw = s->words ? s->words : 16;
        while (nw <= v / 64)
            nw *= 2;
        uint64_t *nb = realloc(s->bits, nw * sizeof(uint64_t));
        if (!nb)
            return -1;
        memset(nb + s->words, 0, (nw - s->words) * sizeof(uint64_t));
        s->bits = nb;
        s->words = nw;
    }
    if (seqset_has(s, v))
        return 0;
    s->bits[v / 64] |= (uint64_t)1 << (v % 64);
    s->count++;
    while (seqset_has(s, s->contig + 1))
        s->contig++;
    return 1;
}

struct inmsg { /* received, not yet read */
    char *key;
    unsigned char *val;
    size_t len;
    uint64_t seq;
    struct inmsg *next;
};

struct outmsg { /* a packed PushRequest waiting for the sender */
    unsigned char *wire;
    size_t len;
    uint64_t seq; /* 0 for control messages */
    struct outmsg *next;
};

struct outq {
    struct outmsg *head, *tail;
};

struct chunked { /* a CHUNKED message being reassembled */
    char *key;
    unsigned char *buf;
    uint64_t total, filled;
    uint64_t *offsets;
    size_t noff;
    struct chunked *next;
};

struct channel {
    char name[32];
    uint64_t sent, recvd;
};

struct psi_link {
    struct psi_transport *t;
    struct psi_link_opts o;
    char send_topic[160], recv_topic[160];

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t sender, receiver;
    bool started, stop_send, stop_recv;
    bool failed;
    char error[512];

    struct channel chans[MAX_CHANNELS];
    int nchan;

    /* sending */
    uint64_t next_seq; /* last sequence number given out */
    struct outq data, ctrl;
    bool pushing;
    struct seqset acked;
    long long window_shut_since;

    /* receiving */
    struct inmsg *mail;
    size_t buffered;
    struct seqset received;
    bool finishing;
    bool fin_received;
    uint64_t peer_sent;
    struct chunked *partial;

    struct psi_link_stats st;
};

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void deadline_ts(long long at_ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(at_ms / 1000);
    ts->tv_nsec = (long)(at_ms % 1000) * 1000000L;
}

/* Wait on the condition until at_ms; returns 0, or ETIMEDOUT once passed. */
static int wait_until(struct psi_link *l, long long at_ms)
{
    if (now_ms() >= at_ms)
        return ETIMEDOUT;
    struct timespec ts;
    deadline_ts(at_ms, &ts);
    int rc = pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    return rc == ETIMEDOUT && now_ms() < at_ms ? 0 : rc;
}

static void vfail_locked(struct psi_link *l, const char *fmt, va_list ap)
{
    if (!l->failed) {
        vsnprintf(l->error, sizeof(l->error), fmt, ap);
        l->failed = true;
    }
    pthread_cond_broadcast(&l->cv);
}

static void fail_locked(struct psi_link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_locked(struct psi_link *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail_locked(l, fmt, ap);
    va_end(ap);
}

void psi_link_fail(struct psi_link *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&l->mu);
    vfail_locked(l, fmt, ap);
    pthread_mutex_unlock(&l->mu);
    va_end(ap);
}

bool psi_link_failed(struct psi_link *l)
{
    pthread_mutex_lock(&l->mu);
    bool f = l->failed;
    pthread_mutex_unlock(&l->mu);
    return f;
}

const char *psi_link_error(struct psi_link *l) { return l->error; }

void psi_link_get_stats(struct psi_link *l, struct psi_link_stats *s)
{
    pthread_mutex_lock(&l->mu);
    *s = l->st;
    pthread_mutex_unlock(&l->mu);
}

void psi_link_opts_default(struct psi_link_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->window = 10;
    o->recv_timeout_ms = 60000;
    o->connect_timeout_ms = 120000;
    o->fin_timeout_ms = 120000;
    o->pop_timeout_ms = 1000;
    o->max_buffered = 64u << 20;
}

static struct channel *chan_get(struct psi_link *l, const char *name)
{
    for (int i = 0; i < l->nchan; i++)
        if (strcmp(l->chans[i].name, name) == 0)
            return &l->chans[i];
    if (l->nchan == MAX_CHANNELS || strlen(name) >= sizeof(l->chans[0].name))
        return NULL;
    struct channel *c = &l->chans[l->nchan++];
    snprintf(c->name, sizeof(c->name), "%s", name);
    return c;
}

static void outq_push(struct outq *q, struct outmsg *m)
{
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
}

static struct outmsg *outq_pop(struct outq *q)
{
    struct outmsg *m = q->head;
    if (m) {
        q->head = m->next;
        if (!q->head)
            q->tail = NULL;
    }
    return m;
}

static void outq_clear(struct outq *q)
{
    struct outmsg *m;
    while ((m = outq_pop(q))) {
        free(m->wire);
        free(m);
    }
}

/* Pack and queue a message.  Called locked.  0 or -1 (link failed). */
static int enqueue_locked(struct psi_link *l, struct outq *q, const char *key, const unsigned char *val,
                          size_t len, uint64_t seq)
{
    struct psi_wire_push p = {(uint64_t)l->o.self_rank, key, val, len, false, 0, 0};
    struct outmsg *m = calloc(1, sizeof(*m));
    if (!m || psi_wire_push_pack(&p, &m->wire, &m->len) != 0) {
        free(m);
        fail_locked(l, "out of memory packing a message");
        return -1;
    }
    m->seq = seq;
    outq_push(q, m);
    pthread_cond_broadcast(&l->cv);
    return 0;
}

static void ack_locked(struct psi_link *l, uint64_t seq)
{
    if (seq == 0 || l->failed)
        return;
    char v[24];
    int n = snprintf(v, sizeof(v), "%llu", (unsigned long long)seq);
    if (enqueue_locked(l, &l->ctrl, PSI_WIRE_ACK_KEY, (const unsigned char *)v, (size_t)n, 0) == 0)
        l->st.acks_sent++;
}

static bool window_open(const struct psi_link *l, uint64_t seq)
{
    return l->o.window <= 0 || l->acked.count + (uint64_t)l->o.window >= seq;
}

/* ---- sender ----------------------------------------------------------------------------- */

static void *sender_main(void *arg)
{
    struct psi_link *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        if (l->failed) {
            outq_clear(&l->ctrl);
            outq_clear(&l->data);
            if (l->stop_send)
                break;
            wait_until(l, now_ms() + 1000);
            continue;
        }
        struct outmsg *m = NULL;
        if (l->ctrl.head)
            m = outq_pop(&l->ctrl);
        else if (!l->stop_send && l->data.head && window_open(l, l->data.head->seq))
            m = outq_pop(&l->data);
        else if (l->stop_send)
            break; /* finish flushed the control messages; data left is unconfirmed */
        if (m) {
            l->window_shut_since = 0;
            l->pushing = true;
            pthread_mutex_unlock(&l->mu);
            char err[512] = "";
            int rc = l->t->ops->push(l->t->impl, l->send_topic, m->wire, m->len, err, sizeof(err));
            pthread_mutex_lock(&l->mu);
            l->pushing = false;
            if (rc != PSI_TRANSPORT_OK)
                fail_locked(l, "transport push on %s: %s", l->send_topic, err);
            else if (m->seq) {
                l->st.sent++;
                l->st.bytes_sent += m->len;
            }
            free(m->wire);
            free(m);
            pthread_cond_broadcast(&l->cv);
            continue;
        }
        long long now = now_ms();
        if (l->data.head) { /* the window is shut */
            if (!l->window_shut_since)
                l->window_shut_since = now;
            else if (now - l->window_shut_since > l->o.recv_timeout_ms) {
                fail_locked(l, "no acknowledgement from the peer for %d s (%d messages in flight)",
                            l->o.recv_timeout_ms / 1000, l->o.window);
                continue;
            }
        }
        wait_until(l, now + 200);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- receiver --------------------------------------------------------------------------- */

/* Deliver one whole message.  Called locked. */
static void deliver_locked(struct psi_link *l, const char *key, const unsigned char *val, size_t len)
{
    char mk[KEY_MAX];
    uint64_t seq = 0;
    int kind = psi_wire_split_key(key, mk, sizeof(mk), &seq);
    if (kind == PSI_WIRE_KEY_ACK || kind == PSI_WIRE_KEY_FIN) {
        uint64_t n;
        if (psi_wire_parse_count(val, len, &n) != 0) {
            fail_locked(l, "the peer sent a malformed %s", kind == PSI_WIRE_KEY_ACK ? "ACK" : "FIN");
            return;
        }
        if (kind == PSI_WIRE_KEY_ACK) {
            if (n == 0 || n > l->next_seq) {
                fail_locked(l, "the peer acknowledged message %llu, which was never sent",
                            (unsigned long long)n);
                return;
            }
            if (seqset_add(&l->acked, n) == 1)
                l->st.acks_received++;
        } else if (!l->fin_received) {
            l->fin_received = true;
            l->peer_sent = n;
        }
        pthread_cond_broadcast(&l->cv);
        return;
    }
    if (kind != PSI_WIRE_KEY_NORMAL) {
        fail_locked(l, "the peer sent a message with a malformed key");
        return;
    }
    if (seq) {
        int r = seqset_add(&l->received, seq);
        if (r == 0) { /* a retried push: the reference drops these too */
            l->st.duplicates++;
            return;
        }
        if (r < 0) {
            fail_locked(l, "message sequence number %llu out of range", (unsigned long long)seq);
            return;
        }
        l->st.received++;
        l->st.bytes_received += len;
    }
    if (l->finishing) {
        ack_locked(l, seq); /* nobody will read it: acknowledge, as REF does */
        pthread_cond_broadcast(&l->cv);
        return;
    }
    for (struct inmsg *m = l->mail; m; m = m->next) {
        if (strcmp(m->key, mk) == 0) {
            if (seq)
                fail_locked(l, "the peer sent key %s twice (seq %llu and %llu)", mk,
                            (unsigned long long)m->seq, (unsigned long long)seq);
            return;
        }
    }
    if (l->buffered + len > l->o.max_buffered) {
        fail_locked(l, "the peer sent more than %zu unread bytes (it ignores the ACK window)",
                    l->o.max_buffered);
        return;
    }
    struct inmsg *m = calloc(1, sizeof(*m));
    char *k = strdup(mk);
    unsigned char *v = len ? malloc(len) : NULL;
    if (!m || !k || (len && !v)) {
        free(m);
        free(k);
        free(v);
        fail_locked(l, "out of memory receiving a message");
        return;
    }
    if (len)
        memcpy(v, val, len);
    m->key = k;
    m->val = v;
    m->len = len;
    m->seq = seq;
    struct inmsg **tail = &l->mail;
    while (*tail)
        tail = &(*tail)->next;
    *tail = m;
    l->buffered += len;
    pthread_cond_broadcast(&l->cv);
}

static void chunked_free(struct chunked *c)
{
    free(c->key);
    free(c->buf);
    free(c->offsets);
    free(c);
}

/* A CHUNKED piece.  Called locked. */
static void chunk_locked(struct psi_link *l, const struct psi_wire_push *p)
{
    struct chunked **pp = &l->partial, *c;
    for (; (c = *pp); pp = &c->next)
        if (strcmp(c->key, p->key) == 0)
            break;
    if (!c) {
        if (p->total > l->o.max_buffered) {
            fail_locked(l, "the peer sent a %llu-byte message (limit %zu)",
                        (unsigned long long)p->total, l->o.max_buffered);
            return;
        }
        c = calloc(1, sizeof(*c));
        if (c) {
            c->key = strdup(p->key);
            c->buf = malloc(p->total ? p->total : 1);
            c->total = p->total;
        }
        if (!c || !c->key || !c->buf) {
            if (c)
                chunked_free(c);
            fail_locked(l, "out of memory reassembling a message");
            return;
        }
        c->next = l->partial;
        l->partial = c;
        pp = &l->partial;
    }
    if (p->total != c->total) {
        fail_locked(l, "chunks of %s disagree on the message length", p->key);
        return;
    }
    for (size_t i = 0; i < c->noff; i++)
        if (c->offsets[i] == p->offset)
            return; /* a repeated chunk */
    uint64_t *no = realloc(c->offsets, (c->noff + 1) * sizeof(uint64_t));
    if (!no) {
        fail_locked(l, "out of memory reassembling a message");
        return;
    }
    c->offsets = no;
    c->offsets[c->noff++] = p->offset;
    if (p->len)
        memcpy(c->buf + p->offset, p->value, p->len);
    c->filled += p->len;
    if (c->filled < c->total)
        return;
    *pp = c->next;
    deliver_locked(l, c->key, c->buf, (size_t)c->total);
    chunked_free(c);
}

static void *receiver_main(void *arg)
{
    struct psi_link *l = arg;
    long long failing_since = 0;
    for (;;) {
        pthread_mutex_lock(&l->mu);
        bool stop = l->stop_recv || l->failed;
        pthread_mutex_unlock(&l->mu);
        if (stop)
            break;
        unsigned char *buf = NULL;
        size_t len = 0;
        char err[512] = "";
        int rc = l->t->ops->pop(l->t->impl, l->recv_topic, l->o.pop_timeout_ms, &buf, &len, err,
                                sizeof(err));
        if (rc == PSI_TRANSPORT_FATAL) {
            psi_link_fail(l, "transport pop on %s: %s", l->recv_topic, err);
            break;
        }
        if (rc == PSI_TRANSPORT_RETRY) {
            long long now = now_ms();
            if (!failing_since)
                failing_since = now;
            if (now - failing_since > l->o.recv_timeout_ms) {
                psi_link_fail(l, "transport pop on %s failing for %d s: %s", l->recv_topic,
                              l->o.recv_timeout_ms / 1000, err);
                break;
            }
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        failing_since = 0;
        if (rc != PSI_TRANSPORT_GOT)
            continue;
        struct psi_wire_push p;
        struct psi_wire_push_msg *pm = NULL;
        if (psi_wire_push_unpack(buf, len, &p, &pm) != 0) {
            /* not ours to interpret (garbage on the topic): ignoring it keeps
             * the run alive, and a missing message still times out */
            fprintf(stderr, "psi link: dropped %zu bytes on %s that are not a PushRequest\n", len,
                    l->recv_topic);
            free(buf);
            continue;
        }
        pthread_mutex_lock(&l->mu);
        if (p.chunked)
            chunk_locked(l, &p);
        else
            deliver_locked(l, p.key, p.value, p.len);
        pthread_mutex_unlock(&l->mu);
        psi_wire_push_msg_free(pm);
        free(buf);
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------- */

struct psi_link *psi_link_new(struct psi_transport *t, const struct psi_link_opts *o)
{
    if (!t || !o || !o->send_topic || !o->recv_topic || o->self_rank == o->peer_rank ||
        o->self_rank < 0 || o->peer_rank < 0 || strlen(o->send_topic) >= 160 ||
        strlen(o->recv_topic) >= 160)
        return NULL;
    struct psi_link *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->t = t;
    l->o = *o;
    snprintf(l->send_topic, sizeof(l->send_topic), "%s", o->send_topic);
    snprintf(l->recv_topic, sizeof(l->recv_topic), "%s", o->recv_topic);
    l->o.send_topic = l->send_topic;
    l->o.recv_topic = l->recv_topic;
    if (l->o.pop_timeout_ms <= 0)
        l->o.pop_timeout_ms = 1000;
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    return l;
}

int psi_link_start(struct psi_link *l)
{
    if (pthread_create(&l->sender, NULL, sender_main, l) != 0)
        return -1;
    if (pthread_create(&l->receiver, NULL, receiver_main, l) != 0) {
        pthread_mutex_lock(&l->mu);
        l->stop_send = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->sender, NULL);
        return -1;
    }
    l->started = true;
    return 0;
}

/* Take the message with key from the mailbox, waiting up to timeout_ms.
 * Called locked.  NULL on timeout or failure (the link is then failed). */
static struct inmsg *take_locked(struct psi_link *l, const char *key, int timeout_ms,
                                 const char *what)
{
    long long dl = now_ms() + timeout_ms;
    for (;;) {
        if (l->failed)
            return NULL;
        for (struct inmsg **pp = &l->mail; *pp; pp = &(*pp)->next) {
            if (strcmp((*pp)->key, key) == 0) {
                struct inmsg *m = *pp;
                *pp = m->next;
                l->buffered -= m->len;
                return m;
            }
        }
        if (wait_until(l, dl) == ETIMEDOUT) {
            fail_locked(l, "timed out after %d s waiting for %s (%s) from rank %d", timeout_ms / 1000,
                        what, key, l->o.peer_rank);
            return NULL;
        }
    }
}

int psi_link_connect(struct psi_link *l)
{
    char k[KEY_MAX], wk[KEY_MAX];
    snprintf(k, sizeof(k), "connect_%d", l->o.self_rank);
    psi_wire_seq_key(wk, sizeof(wk), k, 0);
    pthread_mutex_lock(&l->mu);
    int rc = l->failed ? -1 : enqueue_locked(l, &l->ctrl, wk, NULL, 0, 0);
    snprintf(k, sizeof(k), "connect_%d", l->o.peer_rank);
    struct inmsg *m = rc == 0 ? take_locked(l, k, l->o.connect_timeout_ms, "the connect message")
                              : NULL;
    pthread_mutex_unlock(&l->mu);
    if (!m)
        return -1;
    free(m->key);
    free(m->val);
    free(m);
    return 0;
}

int psi_link_send_take(struct psi_link *l, const char *channel, unsigned char *val, size_t len,
                       bool throttled)
{
    pthread_mutex_lock(&l->mu);
    struct channel *c = chan_get(l, channel);
    int rc = -1;
    if (!c)
        fail_locked(l, "bad channel name %s", channel);
    if (!l->failed) {
        char k[KEY_MAX], wk[KEY_MAX];
        uint64_t seq = l->next_seq + 1;
        if (psi_wire_p2p_key(k, sizeof(k), channel, c->sent + 1, l->o.self_rank, l->o.peer_rank) ||
            psi_wire_seq_key(wk, sizeof(wk), k, seq)) {
            fail_locked(l, "message key too long");
        } else if (enqueue_locked(l, &l->data, wk, val, len, seq) == 0) {
            c->sent++;
            l->next_seq = seq;
            rc = 0;
            long long dl = now_ms() + l->o.recv_timeout_ms;
            /* REF ThrottleWindowWait: until fewer than `window` messages
             * up to this one are unacknowledged */
            while (throttled && !l->failed && l->o.window > 0 &&
                   l->acked.count + (uint64_t)l->o.window <= seq) {
                if (wait_until(l, dl) == ETIMEDOUT)
                    fail_locked(l, "no acknowledgement from the peer for %d s (window of %d)",
                                l->o.recv_timeout_ms / 1000, l->o.window);
            }
            if (l->failed)
                rc = -1;
        }
    }
    pthread_mutex_unlock(&l->mu);
    free(val);
    return rc;
}

int psi_link_recv(struct psi_link *l, const char *channel, unsigned char **val, size_t *len)
{
    pthread_mutex_lock(&l->mu);
    struct channel *c = chan_get(l, channel);
    struct inmsg *m = NULL;
    char k[KEY_MAX];
    if (!c || psi_wire_p2p_key(k, sizeof(k), channel, c->recvd + 1, l->o.peer_rank,
                               l->o.self_rank) != 0) {
        fail_locked(l, "bad channel name %s", channel);
    } else {
        m = take_locked(l, k, l->o.recv_timeout_ms, "a message");
        if (m) {
            c->recvd++;
            ack_locked(l, m->seq);
        }
    }
    pthread_mutex_unlock(&l->mu);
    if (!m)
        return -1;
    *val = m->val;
    *len = m->len;
    free(m->key);
    free(m);
    return 0;
}

static void stop_threads(struct psi_link *l)
{
    if (!l->started)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop_send = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->sender, NULL);
    pthread_mutex_lock(&l->mu);
    l->stop_recv = true;
    pthread_mutex_unlock(&l->mu);
    if (l->t->ops->wake)
        l->t->ops->wake(l->t->impl);
    pthread_join(l->receiver, NULL);
    l->started = false;
}

int psi_link_finish(struct psi_link *l)
{
    pthread_mutex_lock(&l->mu);
    l->finishing = true;
    while (l->mail) { /* unread: acknowledge so the peer's window and FIN wait end */
        struct inmsg *m = l->mail;
        l->mail = m->next;
        ack_locked(l, m->seq);
        free(m->key);
        free(m->val);
        free(m);
    }
    l->buffered = 0;
    if (!l->failed) {
        char v[24];
        int n = snprintf(v, sizeof(v), "%llu", (unsigned long long)l->next_seq);
        enqueue_locked(l, &l->ctrl, PSI_WIRE_FIN_KEY, (const unsigned char *)v, (size_t)n, 0);
    }
    long long dl = now_ms() + l->o.fin_timeout_ms;
    bool fin_ok = false, acked_ok = false;
    while (!l->failed) {
        fin_ok = l->fin_received && l->received.contig >= l->peer_sent;
        acked_ok = !l->data.head && !l->pushing && l->acked.contig >= l->next_seq;
        if (fin_ok && acked_ok)
            break;
        if (wait_until(l, dl) == ETIMEDOUT)
            break;
    }
    int rc;
    if (l->failed)
        rc = -1;
    else if (!acked_ok) {
        fail_locked(l, "the peer acknowledged %llu of our %llu messages within %d s",
                    (unsigned long long)l->acked.count, (unsigned long long)l->next_seq,
                    l->o.fin_timeout_ms / 1000);
        rc = -1;
    } else
        rc = fin_ok ? PSI_LINK_DONE : PSI_LINK_NO_FIN;
    pthread_mutex_unlock(&l->mu);
    /* the sender flushes the control queue (the last ACKs, our FIN) before
     * it stops */
    stop_threads(l);
    return rc;
}

void psi_link_free(struct psi_link *l)
{
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        if (!l->finishing)
            fail_locked(l, "link closed");
        pthread_mutex_unlock(&l->mu);
        stop_threads(l);
    }
    outq_clear(&l->data);
    outq_clear(&l->ctrl);
    while (l->mail) {
        struct inmsg *m = l->mail;
        l->mail = m->next;
        free(m->key);
        free(m->val);
        free(m);
    }
    while (l->partial) {
        struct chunked *c = l->partial;
        l->partial = c->next;
        chunked_free(c);
    }
    free(l->acked.bits);
    free(l->received.bits);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}
