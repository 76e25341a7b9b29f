/*
 * chanq.c - channel queues: slices in a hash map, one FIFO per topic, waiters
 * on a deadline heap, callbacks deferred to the end of the outermost call.
 */
#include "chanq.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small string-keyed hash map -------------------------------------- */

struct hent {
    struct hent *next;
    char *key;
    void *val;
};

struct smap {
    struct hent **b;
    size_t nb, n;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static void smap_grow(struct smap *m)
{
    size_t nb = m->nb ? m->nb * 2 : 16;
    struct hent **b = gw_xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < m->nb; i++) {
        struct hent *e = m->b[i];
        while (e) {
            struct hent *nx = e->next;
            size_t j = (size_t)(hash_str(e->key) & (nb - 1));
            e->next = b[j];
            b[j] = e;
            e = nx;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

static void *smap_get(const struct smap *m, const char *key)
{
    if (!m->nb)
        return NULL;
    for (struct hent *e = m->b[hash_str(key) & (m->nb - 1)]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e->val;
    return NULL;
}

/* key is copied; the key must not be present. */
static void smap_put(struct smap *m, const char *key, void *val)
{
    if (m->n + 1 > m->nb * 3 / 4)
        smap_grow(m);
    struct hent *e = gw_xmalloc(sizeof(*e));
    e->key = gw_xstrdup(key);
    e->val = val;
    size_t j = (size_t)(hash_str(key) & (m->nb - 1));
    e->next = m->b[j];
    m->b[j] = e;
    m->n++;
}

static void *smap_del(struct smap *m, const char *key)
{
    if (!m->nb)
        return NULL;
    struct hent **pp = &m->b[hash_str(key) & (m->nb - 1)];
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            struct hent *e = *pp;
            void *v = e->val;
            *pp = e->next;
            free(e->key);
            free(e);
            m->n--;
            return v;
        }
    }
    return NULL;
}

static void smap_clear(struct smap *m)
{
    for (size_t i = 0; i < m->nb; i++) {
        struct hent *e = m->b[i];
        while (e) {
            struct hent *nx = e->next;
            free(e->key);
            free(e);
            e = nx;
        }
    }
    free(m->b);
    m->b = NULL;
    m->nb = m->n = 0;
}

/* ---- objects ---------------------------------------------------------------- */

struct msg {
    struct msg *next;
    char *peer;
    void *data;
    size_t len;
};

struct queue {
    char *topic;
    struct msg *head, *tail;
    size_t n;
};

enum { W_POP, W_PUSH };

struct slice;

struct chanq_waiter {
    int kind;
    struct slice *s;
    char *topic;
    char *peer;      /* pop: "" = any */
    long long deadline;
    size_t hidx;     /* position in the deadline heap */
    chanq_cb cb;
    void *arg;
    struct chanq_waiter *prev, *next; /* the slice's pop or push list */
    struct msg *m;   /* push: the message waiting for room */
    /* set when fired, delivered from the ready list */
    int st;
    void *data;
    size_t len;
    struct chanq_waiter *rnext;
};

struct wlist {
    struct chanq_waiter *h, *t;
};

struct slice {
    char *key;       /* session \x1f scope */
    char *sid, *scope;
    size_t bytes, msgs, nwait;
    long long last;
    struct smap topics;
    struct wlist pops, pushes;
    struct slice *prev, *next; /* all slices */
};

struct rel {
    char *key;       /* slice key, or the session id for a whole-session release */
    bool whole;
    long long at;
    struct rel *prev, *next; /* oldest first */
};

struct chanq {
    struct chanq_limits lim;
    struct smap slices;
    struct slice *all;
    struct smap rel_slice, rel_whole;
    struct rel *rel_h, *rel_t;
    size_t nrel;
    struct chanq_waiter **heap;
    size_t nheap, capheap;
    struct chanq_waiter *ready_h, *ready_t;
    int depth;
    size_t bytes, msgs, npush_w, npop_w, wait_bytes, nqueues;
    unsigned long long pushes, pops, timeouts, full, refused_rel, expired, dropped;
};

const char *chanq_status_name(int st)
{
    switch (st) {
    case CHANQ_OK: return "ok";
    case CHANQ_WAITING: return "waiting";
    case CHANQ_EMPTY: return "empty";
    case CHANQ_TIMEOUT: return "timeout";
    case CHANQ_FULL: return "full";
    case CHANQ_RELEASED: return "released";
    case CHANQ_TOOBIG: return "too_big";
    case CHANQ_LIMIT: return "limit";
    case CHANQ_GONE: return "gone";
    default: return "unknown";
    }
}

static char *slice_key(const char *sid, const char *scope)
{
    return gw_xasprintf("%s\x1f%s", sid, scope ? scope : "");
}

/* ---- deadline heap ------------------------------------------------------------ */

static void heap_swap(struct chanq *q, size_t i, size_t j)
{
    struct chanq_waiter *t = q->heap[i];
    q->heap[i] = q->heap[j];
    q->heap[j] = t;
    q->heap[i]->hidx = i;
    q->heap[j]->hidx = j;
}

static void heap_up(struct chanq *q, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (q->heap[p]->deadline <= q->heap[i]->deadline)
            break;
        heap_swap(q, i, p);
        i = p;
    }
}

static void heap_down(struct chanq *q, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->nheap && q->heap[l]->deadline < q->heap[m]->deadline)
            m = l;
        if (r < q->nheap && q->heap[r]->deadline < q->heap[m]->deadline)
            m = r;
        if (m == i)
            break;
        heap_swap(q, i, m);
        i = m;
    }
}

static void heap_add(struct chanq *q, struct chanq_waiter *w)
{
    if (q->nheap == q->capheap) {
        q->capheap = q->capheap ? q->capheap * 2 : 64;
        q->heap = gw_xrealloc(q->heap, q->capheap * sizeof(*q->heap));
    }
    w->hidx = q->nheap;
    q->heap[q->nheap++] = w;
    heap_up(q, w->hidx);
}

static void heap_del(struct chanq *q, struct chanq_waiter *w)
{
    size_t i = w->hidx;
    q->nheap--;
    if (i != q->nheap) {
        q->heap[i] = q->heap[q->nheap];
        q->heap[i]->hidx = i;
        heap_down(q, i);
        heap_up(q, i);
    }
}

/* ---- waiter lists and delivery ------------------------------------------------ */

static void wl_add(struct wlist *l, struct chanq_waiter *w)
{
    w->next = NULL;
    w->prev = l->t;
    if (l->t)
        l->t->next = w;
    else
        l->h = w;
    l->t = w;
}

static void wl_del(struct wlist *l, struct chanq_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        l->h = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->t = w->prev;
    w->prev = w->next = NULL;
}

static void msg_free(struct msg *m)
{
    if (!m)
        return;
    free(m->peer);
    free(m->data);
    free(m);
}

/* Take w off its slice and the heap; its outcome goes to the ready list. */
static void waiter_fire(struct chanq *q, struct chanq_waiter *w, int st, void *data, size_t len)
{
    struct slice *s = w->s;
    if (w->kind == W_POP) {
        wl_del(&s->pops, w);
        q->npop_w--;
    } else {
        wl_del(&s->pushes, w);
        q->npush_w--;
        if (w->m) {
            q->wait_bytes -= w->m->len;
            msg_free(w->m); /* not enqueued: dropped (timeout, release) */
            w->m = NULL;
        }
    }
    s->nwait--;
    heap_del(q, w);
    w->s = NULL;
    w->st = st;
    w->data = data;
    w->len = len;
    w->rnext = NULL;
    if (q->ready_t)
        q->ready_t->rnext = w;
    else
        q->ready_h = w;
    q->ready_t = w;
}

static void waiter_free(struct chanq_waiter *w)
{
    free(w->topic);
    free(w->peer);
    free(w);
}

static void slice_maybe_drop(struct chanq *q, struct slice *s);

/* Run the ready callbacks once the outermost call is done with its state. */
static void leave(struct chanq *q)
{
    if (--q->depth > 0)
        return;
    q->depth++; /* callbacks may call chanq: they queue, this loop delivers */
    while (q->ready_h) {
        struct chanq_waiter *w = q->ready_h;
        q->ready_h = w->rnext;
        if (!q->ready_h)
            q->ready_t = NULL;
        chanq_cb cb = w->cb;
        void *arg = w->arg;
        int st = w->st;
        void *data = w->data;
        size_t len = w->len;
        waiter_free(w);
        cb(arg, st, data, len);
    }
    q->depth--;
}

/* ---- slices ---------------------------------------------------------------------- */

static struct slice *slice_get(struct chanq *q, const char *sid, const char *scope, bool create,
                               long long now, int *err)
{
    char *k = slice_key(sid, scope);
    struct slice *s = smap_get(&q->slices, k);
    if (!s && create) {
        if (q->slices.n >= q->lim.max_sessions) {
            *err = CHANQ_LIMIT;
            free(k);
            return NULL;
        }
        s = gw_xcalloc(1, sizeof(*s));
        s->key = k;
        s->sid = gw_xstrdup(sid);
        s->scope = gw_xstrdup(scope ? scope : "");
        s->last = now;
        smap_put(&q->slices, k, s);
        s->next = q->all;
        if (q->all)
            q->all->prev = s;
        q->all = s;
        return s;
    }
    free(k);
    return s;
}

static void queue_free(struct chanq *q, struct queue *qu)
{
    struct msg *m = qu->head;
    while (m) {
        struct msg *nx = m->next;
        msg_free(m);
        m = nx;
    }
    free(qu->topic);
    free(qu);
    q->nqueues--;
}

static void slice_free(struct chanq *q, struct slice *s)
{
    for (size_t i = 0; i < s->topics.nb; i++)
        for (struct hent *e = s->topics.b[i]; e; e = e->next)
            queue_free(q, e->val);
    smap_clear(&s->topics);
    q->bytes -= s->bytes;
    q->msgs -= s->msgs;
    smap_del(&q->slices, s->key);
    if (s->prev)
        s->prev->next = s->next;
    else
        q->all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s->key);
    free(s->sid);
    free(s->scope);
    free(s);
}

/* An empty slice nobody waits on holds nothing worth keeping. */
static void slice_maybe_drop(struct chanq *q, struct slice *s)
{
    if (s->msgs == 0 && s->nwait == 0)
        slice_free(q, s);
}

static bool fits(const struct chanq *q, const struct slice *s, size_t len)
{
    return s->bytes + len <= q->lim.session_bytes && s->msgs + 1 <= q->lim.session_msgs &&
           q->bytes + len <= q->lim.total_bytes && q->msgs + 1 <= q->lim.total_msgs;
}

/* ---- releases ---------------------------------------------------------------------- */

static void rel_unlink(struct chanq *q, struct rel *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        q->rel_h = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        q->rel_t = r->prev;
    smap_del(r->whole ? &q->rel_whole : &q->rel_slice, r->key);
    free(r->key);
    free(r);
    q->nrel--;
}

static void rel_add(struct chanq *q, const char *key, bool whole, long long now)
{
    struct smap *m = whole ? &q->rel_whole : &q->rel_slice;
    struct rel *r = smap_get(m, key);
    if (r)
        rel_unlink(q, r); /* re-added at the young end */
    r = gw_xcalloc(1, sizeof(*r));
    r->key = gw_xstrdup(key);
    r->whole = whole;
    r->at = now;
    r->prev = q->rel_t;
    if (q->rel_t)
        q->rel_t->next = r;
    else
        q->rel_h = r;
    q->rel_t = r;
    smap_put(m, key, r);
    q->nrel++;
    while (q->nrel > q->lim.released_max && q->rel_h)
        rel_unlink(q, q->rel_h);
}

bool chanq_is_released(const struct chanq *q, const char *session, const char *scope, long long now)
{
    struct rel *r = smap_get(&q->rel_whole, session);
    if (r && now - r->at < q->lim.released_ms)
        return true;
    char *k = slice_key(session, scope);
    r = smap_get(&q->rel_slice, k);
    free(k);
    return r && now - r->at < q->lim.released_ms;
}

/* ---- the queue ---------------------------------------------------------------------- */

struct chanq *chanq_new(const struct chanq_limits *lim)
{
    struct chanq *q = gw_xcalloc(1, sizeof(*q));
    q->lim = *lim;
    return q;
}

void chanq_set_limits(struct chanq *q, const struct chanq_limits *lim) { q->lim = *lim; }

void chanq_free(struct chanq *q)
{
    if (!q)
        return;
    q->depth++;
    while (q->nheap)
        waiter_fire(q, q->heap[0], CHANQ_GONE, NULL, 0);
    leave(q);
    while (q->all)
        slice_free(q, q->all);
    while (q->rel_h)
        rel_unlink(q, q->rel_h);
    smap_clear(&q->slices);
    smap_clear(&q->rel_slice);
    smap_clear(&q->rel_whole);
    free(q->heap);
    free(q);
}

static bool peer_match(const char *want, const char *have)
{
    return !*want || strcmp(want, have) == 0;
}

/* Put m into s; a pop waiting for it gets it directly.  Room was checked. */
static void enqueue(struct chanq *q, struct slice *s, const char *topic, struct msg *m)
{
    q->pushes++;
    for (struct chanq_waiter *w = s->pops.h; w; w = w->next) {
        if (strcmp(w->topic, topic) == 0 && peer_match(w->peer, m->peer)) {
            void *d = m->data;
            size_t len = m->len;
            m->data = NULL;
            msg_free(m);
            q->pops++;
            waiter_fire(q, w, CHANQ_OK, d, len);
            return;
        }
    }
    struct queue *qu = smap_get(&s->topics, topic);
    if (!qu) {
        qu = gw_xcalloc(1, sizeof(*qu));
        qu->topic = gw_xstrdup(topic);
        smap_put(&s->topics, topic, qu);
        q->nqueues++;
    }
    m->next = NULL;
    if (qu->tail)
        qu->tail->next = m;
    else
        qu->head = m;
    qu->tail = m;
    qu->n++;
    s->bytes += m->len;
    s->msgs++;
    q->bytes += m->len;
    q->msgs++;
}

/* Room was made (a pop, a release, an expiry): admit waiting pushes in order.
 * A slice whose first waiting push does not fit admits none of its later
 * ones, so each slice stays FIFO. */
static void admit_pushes(struct chanq *q)
{
    if (!q->npush_w)
        return;
    for (struct slice *s = q->all; s; s = s->next) {
        while (s->pushes.h) {
            struct chanq_waiter *w = s->pushes.h;
            if (!fits(q, s, w->m->len))
                break;
            struct msg *m = w->m;
            w->m = NULL;
            q->wait_bytes -= m->len;
            enqueue(q, s, w->topic, m);
            waiter_fire(q, w, CHANQ_OK, NULL, 0);
        }
    }
}

static bool pop_waiting(const struct slice *s, const char *topic, const char *peer)
{
    for (const struct chanq_waiter *w = s->pops.h; w; w = w->next)
        if (strcmp(w->topic, topic) == 0 && peer_match(w->peer, peer))
            return true;
    return false;
}

/* A waiting push whose message a pop of (topic, peer) may take, or NULL. */
static struct chanq_waiter *push_waiting(const struct slice *s, const char *topic, const char *peer)
{
    for (struct chanq_waiter *w = s->pushes.h; w; w = w->next)
        if (strcmp(w->topic, topic) == 0 && peer_match(peer, w->m->peer))
            return w;
    return NULL;
}

static struct chanq_waiter *waiter_new(struct chanq *q, int kind, struct slice *s,
                                       const struct chanq_addr *a, long long deadline,
                                       chanq_cb cb, void *arg)
{
    struct chanq_waiter *w = gw_xcalloc(1, sizeof(*w));
    w->kind = kind;
    w->s = s;
    w->topic = gw_xstrdup(a->topic);
    w->peer = gw_xstrdup(a->peer ? a->peer : "");
    w->deadline = deadline;
    w->cb = cb;
    w->arg = arg;
    wl_add(kind == W_POP ? &s->pops : &s->pushes, w);
    s->nwait++;
    heap_add(q, w);
    if (kind == W_POP)
        q->npop_w++;
    else
        q->npush_w++;
    return w;
}

int chanq_push(struct chanq *q, const struct chanq_addr *a, void *data, size_t len, long long now,
               long long deadline, chanq_cb cb, void *arg, struct chanq_waiter **wout)
{
    if (wout)
        *wout = NULL;
    if (chanq_is_released(q, a->session, a->scope, now)) {
        q->refused_rel++;
        return CHANQ_RELEASED;
    }
    if (len > q->lim.session_bytes || len > q->lim.total_bytes)
        return CHANQ_TOOBIG;
    int err = CHANQ_OK;
    struct slice *s = slice_get(q, a->session, a->scope, true, now, &err);
    if (!s)
        return err;
    s->last = now;
    bool has_queue = smap_get(&s->topics, a->topic) != NULL;
    if (!has_queue && s->topics.n >= q->lim.max_topics) {
        slice_maybe_drop(q, s);
        return CHANQ_LIMIT;
    }
    q->depth++;
    int rc;
    struct msg *m = gw_xcalloc(1, sizeof(*m));
    m->peer = gw_xstrdup(a->peer ? a->peer : "");
    m->data = data;
    m->len = len;
    if ((!s->pushes.h && fits(q, s, len)) || pop_waiting(s, a->topic, m->peer)) {
        /* Room, or a reader waits for exactly this: handing it over holds no
         * memory, and a reader blocked on one topic while other topics fill
         * the session must not wait for ever. */
        enqueue(q, s, a->topic, m);
        rc = CHANQ_OK;
    } else if (deadline <= now || !cb) {
        m->data = NULL;
        msg_free(m);
        q->full++;
        slice_maybe_drop(q, s);
        rc = CHANQ_FULL;
    } else if (s->nwait >= q->lim.max_waiters) {
        m->data = NULL;
        msg_free(m);
        slice_maybe_drop(q, s);
        rc = CHANQ_LIMIT;
    } else {
        struct chanq_waiter *w = waiter_new(q, W_PUSH, s, a, deadline, cb, arg);
        w->m = m;
        q->wait_bytes += len;
        if (wout)
            *wout = w;
        rc = CHANQ_WAITING;
    }
    leave(q);
    return rc;
}

/* The oldest message of topic from peer ("" any) in s, unlinked. */
static struct msg *take(struct chanq *q, struct slice *s, const char *topic, const char *peer)
{
    struct queue *qu = smap_get(&s->topics, topic);
    if (!qu)
        return NULL;
    struct msg **pp = &qu->head, *prev = NULL;
    for (; *pp; prev = *pp, pp = &(*pp)->next) {
        if (!peer_match(peer, (*pp)->peer))
            continue;
        struct msg *m = *pp;
        *pp = m->next;
        if (qu->tail == m)
            qu->tail = prev;
        qu->n--;
        s->bytes -= m->len;
        s->msgs--;
        q->bytes -= m->len;
        q->msgs--;
        if (!qu->n) {
            smap_del(&s->topics, topic);
            queue_free(q, qu);
        }
        return m;
    }
    return NULL;
}

int chanq_pop(struct chanq *q, const struct chanq_addr *a, long long now, long long deadline,
              chanq_cb cb, void *arg, struct chanq_waiter **wout, void **data, size_t *len)
{
    if (wout)
        *wout = NULL;
    *data = NULL;
    *len = 0;
    if (chanq_is_released(q, a->session, a->scope, now)) {
        q->refused_rel++;
        return CHANQ_RELEASED;
    }
    const char *peer = a->peer ? a->peer : "";
    int err = CHANQ_OK;
    bool wait = deadline > now && cb;
    struct slice *s = slice_get(q, a->session, a->scope, wait, now, &err);
    if (!s)
        return wait ? err : CHANQ_EMPTY;
    s->last = now;
    q->depth++;
    int rc;
    struct msg *m = take(q, s, a->topic, peer);
    struct chanq_waiter *pw = m ? NULL : push_waiting(s, a->topic, peer);
    if (pw) {
        /* the queue is empty for this reader but a push for it waits for
         * room elsewhere in the session: take its message directly */
        m = pw->m;
        pw->m = NULL;
        q->wait_bytes -= m->len;
        q->pushes++;
        waiter_fire(q, pw, CHANQ_OK, NULL, 0);
    }
    if (m) {
        *data = m->data;
        *len = m->len;
        m->data = NULL;
        msg_free(m);
        q->pops++;
        admit_pushes(q);
        slice_maybe_drop(q, s);
        rc = CHANQ_OK;
    } else if (!wait) {
        slice_maybe_drop(q, s);
        rc = CHANQ_EMPTY;
    } else if (s->nwait >= q->lim.max_waiters) {
        slice_maybe_drop(q, s);
        rc = CHANQ_LIMIT;
    } else {
        struct chanq_waiter *w = waiter_new(q, W_POP, s, a, deadline, cb, arg);
        if (wout)
            *wout = w;
        rc = CHANQ_WAITING;
    }
    leave(q);
    return rc;
}

void chanq_requeue(struct chanq *q, const struct chanq_addr *a, void *data, size_t len,
                   long long now)
{
    int err = CHANQ_OK;
    struct slice *s = NULL;
    if (!chanq_is_released(q, a->session, a->scope, now))
        s = slice_get(q, a->session, a->scope, true, now, &err);
    if (!s) {
        free(data); /* released meanwhile: nobody may read it now */
        q->dropped++;
        return;
    }
    q->depth++;
    struct msg *m = gw_xcalloc(1, sizeof(*m));
    m->peer = gw_xstrdup(a->peer ? a->peer : "");
    m->data = data;
    m->len = len;
    q->pushes--; /* enqueue counts a push; this is the same message again */
    q->pops--;
    enqueue(q, s, a->topic, m);
    struct queue *qu = smap_get(&s->topics, a->topic);
    if (qu && qu->tail == m && qu->head != m) {
        /* move it from the tail to the head */
        struct msg *p = qu->head;
        while (p->next != m)
            p = p->next;
        p->next = NULL;
        qu->tail = p;
        m->next = qu->head;
        qu->head = m;
    }
    leave(q);
}

void chanq_cancel(struct chanq *q, struct chanq_waiter *w)
{
    if (!w || !w->s)
        return;
    struct slice *s = w->s;
    if (w->kind == W_POP) {
        wl_del(&s->pops, w);
        q->npop_w--;
    } else {
        wl_del(&s->pushes, w);
        q->npush_w--;
        if (w->m) {
            q->wait_bytes -= w->m->len;
            msg_free(w->m);
        }
    }
    s->nwait--;
    heap_del(q, w);
    waiter_free(w);
    q->depth++;
    /* A push that stood first in line may have held back later ones. */
    admit_pushes(q);
    slice_maybe_drop(q, s);
    leave(q);
}

static size_t release_slice(struct chanq *q, struct slice *s, const char *topic)
{
    size_t dropped = 0;
    if (topic) {
        struct queue *qu = smap_del(&s->topics, topic);
        if (qu) {
            for (struct msg *m = qu->head; m; m = m->next) {
                s->bytes -= m->len;
                q->bytes -= m->len;
                s->msgs--;
                q->msgs--;
                dropped++;
            }
            queue_free(q, qu);
        }
        for (struct chanq_waiter *w = s->pops.h, *nx; w; w = nx) {
            nx = w->next;
            if (strcmp(w->topic, topic) == 0)
                waiter_fire(q, w, CHANQ_RELEASED, NULL, 0);
        }
        for (struct chanq_waiter *w = s->pushes.h, *nx; w; w = nx) {
            nx = w->next;
            if (strcmp(w->topic, topic) == 0)
                waiter_fire(q, w, CHANQ_RELEASED, NULL, 0);
        }
        slice_maybe_drop(q, s);
    } else {
        dropped = s->msgs;
        while (s->pops.h)
            waiter_fire(q, s->pops.h, CHANQ_RELEASED, NULL, 0);
        while (s->pushes.h)
            waiter_fire(q, s->pushes.h, CHANQ_RELEASED, NULL, 0);
        slice_free(q, s);
    }
    q->dropped += dropped;
    return dropped;
}

size_t chanq_release(struct chanq *q, const char *session, const char *scope, const char *topic,
                     bool remember, long long now)
{
    size_t dropped = 0;
    q->depth++;
    if (scope) {
        int err;
        struct slice *s = slice_get(q, session, scope, false, now, &err);
        if (s)
            dropped = release_slice(q, s, topic);
        if (remember && !topic) {
            char *k = slice_key(session, scope);
            rel_add(q, k, false, now);
            free(k);
        }
    } else {
        for (struct slice *s = q->all, *nx; s; s = nx) {
            nx = s->next;
            if (strcmp(s->sid, session) == 0)
                dropped += release_slice(q, s, topic);
        }
        if (remember && !topic)
            rel_add(q, session, true, now);
    }
    admit_pushes(q);
    leave(q);
    return dropped;
}

void chanq_tick(struct chanq *q, long long now)
{
    q->depth++;
    while (q->nheap && q->heap[0]->deadline <= now) {
        struct chanq_waiter *w = q->heap[0];
        struct slice *s = w->s;
        q->timeouts++;
        waiter_fire(q, w, CHANQ_TIMEOUT, NULL, 0);
        /* a timed-out push may have held back the ones behind it */
        admit_pushes(q);
        slice_maybe_drop(q, s);
    }
    leave(q);
}

long long chanq_next_deadline(const struct chanq *q)
{
    return q->nheap ? q->heap[0]->deadline : -1;
}

void chanq_sweep(struct chanq *q, long long now)
{
    q->depth++;
    for (struct slice *s = q->all, *nx; s; s = nx) {
        nx = s->next;
        if (s->nwait || now - s->last < q->lim.idle_ms)
            continue;
        if (s->msgs) {
            /* Undelivered data is gone: later traffic must not carry on as
             * if nothing happened. */
            q->expired++;
            char *k = gw_xstrdup(s->key);
            q->dropped += s->msgs;
            slice_free(q, s);
            rel_add(q, k, false, now);
            free(k);
        } else {
            slice_free(q, s);
        }
    }
    while (q->rel_h && now - q->rel_h->at >= q->lim.released_ms)
        rel_unlink(q, q->rel_h);
    admit_pushes(q);
    leave(q);
}

void chanq_each_session(const struct chanq *q,
                        void (*fn)(void *arg, const char *session, const char *scope), void *arg)
{
    for (const struct slice *s = q->all; s; s = s->next)
        fn(arg, s->sid, s->scope);
}

void chanq_stats(const struct chanq *q, struct chanq_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->sessions = q->slices.n;
    st->queues = q->nqueues;
    st->msgs = q->msgs;
    st->bytes = q->bytes;
    st->pop_waiters = q->npop_w;
    st->push_waiters = q->npush_w;
    st->wait_bytes = q->wait_bytes;
    st->released = q->nrel;
    st->pushes = q->pushes;
    st->pops = q->pops;
    st->timeouts = q->timeouts;
    st->full = q->full;
    st->refused_released = q->refused_rel;
    st->expired = q->expired;
    st->dropped = q->dropped;
}
