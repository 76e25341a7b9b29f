/*
 * psi_transport_mem.c - the in-process transport: both parties of a unit
 * test or of the benchmark in one process, messages copied through a hub
 * of FIFO queues keyed by topic.  Not linked into the component binary.
 */
#include "psi_transport.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mem_msg {
    unsigned char *buf;
    size_t len;
    struct mem_msg *next;
};

struct mem_topic {
    char *name;
    struct mem_msg *head, *tail;
    struct mem_topic *next;
};

struct psi_mem_hub {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct mem_topic *topics;
    size_t bytes;
};

struct mem_end {
    struct psi_mem_hub *hub;
    long fail_after; /* < 0: never */
    long drop_after;
    bool dead;
    bool woken;
};

struct psi_mem_hub *psi_mem_hub_new(void)
{
    struct psi_mem_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    return h;
}

void psi_mem_hub_free(struct psi_mem_hub *h)
{
    if (!h)
        return;
    for (struct mem_topic *t = h->topics, *tn; t; t = tn) {
        tn = t->next;
        for (struct mem_msg *m = t->head, *mn; m; m = mn) {
            mn = m->next;
            free(m->buf);
            free(m);
        }
        free(t->name);
        free(t);
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

size_t psi_mem_hub_bytes(struct psi_mem_hub *h)
{
    pthread_mutex_lock(&h->mu);
    size_t b = h->bytes;
    pthread_mutex_unlock(&h->mu);
    return b;
}

/* Called with the hub locked. */
static struct mem_topic *topic_get(struct psi_mem_hub *h, const char *name, bool create)
{
    for (struct mem_topic *t = h->topics; t; t = t->next)
        if (strcmp(t->name, name) == 0)
            return t;
    if (!create)
        return NULL;
    struct mem_topic *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->name = strdup(name);
    if (!t->name) {
        free(t);
        return NULL;
    }
    t->next = h->topics;
    h->topics = t;
    return t;
}

static int mem_push(void *impl, const char *topic, const unsigned char *buf, size_t len, char *err,
                    size_t errlen)
{
    struct mem_end *e = impl;
    struct psi_mem_hub *h = e->hub;
    pthread_mutex_lock(&h->mu);
    if (e->dead || e->fail_after == 0) {
        e->dead = true;
        pthread_mutex_unlock(&h->mu);
        snprintf(err, errlen, "in-process transport: endpoint failed (fault injection)");
        return PSI_TRANSPORT_FATAL;
    }
    if (e->fail_after > 0 && --e->fail_after == 0)
        e->dead = true; /* this push is the last that gets through */
    if (e->drop_after == 0) {
        pthread_mutex_unlock(&h->mu);
        return PSI_TRANSPORT_OK;
    }
    if (e->drop_after > 0)
        e->drop_after--;
    struct mem_topic *t = topic_get(h, topic, true);
    struct mem_msg *m = calloc(1, sizeof(*m));
    unsigned char *copy = malloc(len ? len : 1);
    if (!t || !m || !copy) {
        pthread_mutex_unlock(&h->mu);
        free(m);
        free(copy);
        snprintf(err, errlen, "out of memory");
        return PSI_TRANSPORT_FATAL;
    }
    if (len)
        memcpy(copy, buf, len);
    m->buf = copy;
    m->len = len;
    if (t->tail)
        t->tail->next = m;
    else
        t->head = m;
    t->tail = m;
    h->bytes += len;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return PSI_TRANSPORT_OK;
}

static int mem_pop(void *impl, const char *topic, int timeout_ms, unsigned char **buf, size_t *len,
                   char *err, size_t errlen)
{
    struct mem_end *e = impl;
    struct psi_mem_hub *h = e->hub;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->mu);
    for (;;) {
        if (e->dead || e->fail_after == 0) {
            e->dead = true;
            pthread_mutex_unlock(&h->mu);
            snprintf(err, errlen, "in-process transport: endpoint failed (fault injection)");
            return PSI_TRANSPORT_FATAL;
        }
        if (e->woken) {
            e->woken = false;
            pthread_mutex_unlock(&h->mu);
            return PSI_TRANSPORT_OK;
        }
        struct mem_topic *t = topic_get(h, topic, false);
        if (t && t->head) {
            struct mem_msg *m = t->head;
            t->head = m->next;
            if (!t->head)
                t->tail = NULL;
            h->bytes -= m->len;
            pthread_mutex_unlock(&h->mu);
            *buf = m->buf;
            *len = m->len;
            free(m);
            return PSI_TRANSPORT_GOT;
        }
        if (pthread_cond_timedwait(&h->cv, &h->mu, &dl) == ETIMEDOUT) {
            pthread_mutex_unlock(&h->mu);
            return PSI_TRANSPORT_OK;
        }
    }
}

static void mem_free(void *impl) { free(impl); }

static void mem_wake(void *impl)
{
    struct mem_end *e = impl;
    pthread_mutex_lock(&e->hub->mu);
    e->woken = true;
    pthread_cond_broadcast(&e->hub->cv);
    pthread_mutex_unlock(&e->hub->mu);
}

static const struct psi_transport_ops mem_ops = {mem_push, mem_pop, mem_free, mem_wake};

struct psi_transport *psi_transport_mem_new(struct psi_mem_hub *h)
{
    struct psi_transport *t = calloc(1, sizeof(*t));
    struct mem_end *e = calloc(1, sizeof(*e));
    if (!t || !e) {
        free(t);
        free(e);
        return NULL;
    }
    e->hub = h;
    e->fail_after = -1;
    e->drop_after = -1;
    t->ops = &mem_ops;
    t->impl = e;
    return t;
}

void psi_transport_mem_fail_after(struct psi_transport *t, long n)
{
    struct mem_end *e = t->impl;
    pthread_mutex_lock(&e->hub->mu);
    e->fail_after = n;
    pthread_mutex_unlock(&e->hub->mu);
}

void psi_transport_mem_drop_after(struct psi_transport *t, long n)
{
    struct mem_end *e = t->impl;
    pthread_mutex_lock(&e->hub->mu);
    e->drop_after = n;
    pthread_mutex_unlock(&e->hub->mu);
}
