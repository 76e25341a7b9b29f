/*
 * psi_pool.c - worker pool: one mutex, jobs in a FIFO list, workers take
 * the next unclaimed chunk of the oldest job.
 */
#include "psi_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
    psi_pool_task_cb fn;
    void *arg;
    size_t n, grain;
    size_t next;      /* first unclaimed item */
    size_t running;   /* chunks claimed and not finished */
    int rc;
    pthread_cond_t done;
    struct job *next_job;
};

struct worker {
    struct psi_pool *pool;
    void *state;
    pthread_t th;
    bool started;
};

struct psi_pool {
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct job *jobs; /* FIFO */
    bool stop;
    int n;
    psi_pool_fini_cb fini;
    struct worker *w;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct psi_pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct job *j = p->jobs;
        while (j && j->next >= j->n)
            j = j->next_job;
        if (!j) {
            if (p->stop)
                break;
            pthread_cond_wait(&p->work, &p->mu);
            continue;
        }
        size_t b = j->next;
        size_t e = b + j->grain < j->n ? b + j->grain : j->n;
        j->next = e;
        j->running++;
        int rc = 0;
        if (!j->rc) { /* a failed job skips its remaining chunks */
            pthread_mutex_unlock(&p->mu);
            rc = j->fn(j->arg, w->state, b, e);
            pthread_mutex_lock(&p->mu);
        }
        if (rc && !j->rc)
            j->rc = rc;
        j->running--;
        if (j->next >= j->n && j->running == 0)
            pthread_cond_signal(&j->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct psi_pool *psi_pool_new(int nthreads, psi_pool_init_cb init, psi_pool_fini_cb fini, void *arg)
{
    if (nthreads < 1 || nthreads > 256)
        return NULL;
    struct psi_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->w = calloc((size_t)nthreads, sizeof(*p->w));
    if (!p->w) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    p->fini = fini;
    p->n = nthreads;
    for (int i = 0; i < nthreads; i++) {
        p->w[i].pool = p;
        p->w[i].state = init ? init(arg, i) : NULL;
        if (init && !p->w[i].state) {
            psi_pool_free(p);
            return NULL;
        }
    }
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]) != 0) {
            psi_pool_free(p);
            return NULL;
        }
        p->w[i].started = true;
    }
    return p;
}

int psi_pool_run(struct psi_pool *p, psi_pool_task_cb fn, void *arg, size_t n, size_t grain)
{
    if (n == 0)
        return 0;
    struct job j;
    memset(&j, 0, sizeof(j));
    j.fn = fn;
    j.arg = arg;
    j.n = n;
    j.grain = grain ? grain : 1;
    pthread_cond_init(&j.done, NULL);
    pthread_mutex_lock(&p->mu);
    struct job **tail = &p->jobs;
    while (*tail)
        tail = &(*tail)->next_job;
    *tail = &j;
    pthread_cond_broadcast(&p->work);
    while (j.next < j.n || j.running > 0)
        pthread_cond_wait(&j.done, &p->mu);
    for (struct job **pp = &p->jobs; *pp; pp = &(*pp)->next_job) {
        if (*pp == &j) {
            *pp = j.next_job;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&j.done);
    return j.rc;
}

int psi_pool_size(const struct psi_pool *p) { return p->n; }

void psi_pool_free(struct psi_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        if (p->w[i].started)
            pthread_join(p->w[i].th, NULL);
        if (p->fini && p->w[i].state)
            p->fini(p->w[i].state);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    free(p->w);
    free(p);
}

/* "max period" (v2) or quota/period (v1); 0 when unlimited or unknown. */
static int cgroup_cpus(void)
{
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    long long quota = -1, period = 0;
    if (f) {
        char q[32] = "";
        if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0)
            quota = atoll(q);
        fclose(f);
    } else {
        f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r");
        if (f) {
            if (fscanf(f, "%lld", &quota) != 1)
                quota = -1;
            fclose(f);
        }
        f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r");
        if (f) {
            if (fscanf(f, "%lld", &period) != 1)
                period = 0;
            fclose(f);
        }
    }
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = (quota + period - 1) / period;
    return n > 0 && n < 1024 ? (int)n : 0;
}

int psi_pool_cpus(void)
{
    cpu_set_t set;
    int n = 1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    int q = cgroup_cpus();
    if (q > 0 && q < n)
        n = q;
    return n > 0 ? n : 1;
}
