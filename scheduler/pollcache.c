/*
 * pollcache.c - see pollcache.h for the rules that keep it correct.
 *
 * A chained hash table of tasks; each task holds a short list of answers,
 * one per (role, index) a scheduler asked about (usually one: "" or the
 * role it runs here).  Forgetting a task frees its answers and bumps its
 * generation; the task node itself stays until the next full flush, so a
 * ticket taken for it can still be checked.
 */
#include "pollcache.h"

#include <stdlib.h>
#include <string.h>

#include "gateway/compat.h"

struct pc_answer {
    struct pc_answer *next;
    char *role;
    int idx;
    char *vals[POLLCACHE_NVALS];
};

struct pc_task {
    struct pc_task *next;
    unsigned long long hash;
    unsigned long long gen;
    struct pc_answer *answers;
    char task_id[]; /* NUL-terminated */
};

struct pollcache {
    struct pc_task **b;
    size_t nb; /* power of two */
    size_t ntasks;
    size_t bytes;
    size_t max_bytes;
    unsigned long long epoch;
    struct pollcache_stats st;
};

static unsigned long long fnv(const char *s)
{
    unsigned long long h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static size_t answer_bytes(const struct pc_answer *a)
{
    size_t n = sizeof(*a) + strlen(a->role) + 1;
    for (int i = 0; i < POLLCACHE_NVALS; i++)
        if (a->vals[i])
            n += strlen(a->vals[i]) + 1;
    return n;
}

static void answers_free(struct pollcache *c, struct pc_task *t)
{
    struct pc_answer *a = t->answers;
    while (a) {
        struct pc_answer *next = a->next;
        c->bytes -= answer_bytes(a);
        for (int i = 0; i < POLLCACHE_NVALS; i++)
            free(a->vals[i]);
        free(a->role);
        free(a);
        a = next;
    }
    t->answers = NULL;
}

static void flush(struct pollcache *c)
{
    for (size_t i = 0; i < c->nb; i++) {
        struct pc_task *t = c->b[i];
        while (t) {
            struct pc_task *next = t->next;
            answers_free(c, t);
            free(t);
            t = next;
        }
        c->b[i] = NULL;
    }
    c->ntasks = 0;
    c->bytes = 0;
    c->epoch++;
    c->st.flushes++;
}

struct pollcache *pollcache_new(size_t max_bytes)
{
    struct pollcache *c = gw_xcalloc(1, sizeof(*c));
    c->nb = 1024;
    c->b = gw_xcalloc(c->nb, sizeof(*c->b));
    c->max_bytes = max_bytes ? max_bytes : (size_t)8 << 20;
    c->epoch = 1;
    return c;
}

void pollcache_free(struct pollcache *c)
{
    if (!c)
        return;
    flush(c);
    free(c->b);
    free(c);
}

static struct pc_task *find(const struct pollcache *c, const char *task_id, unsigned long long h)
{
    for (struct pc_task *t = c->b[h & (c->nb - 1)]; t; t = t->next)
        if (t->hash == h && strcmp(t->task_id, task_id) == 0)
            return t;
    return NULL;
}

static void grow(struct pollcache *c)
{
    size_t nb = c->nb * 2;
    struct pc_task **b = gw_xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < c->nb; i++) {
        struct pc_task *t = c->b[i];
        while (t) {
            struct pc_task *next = t->next;
            t->next = b[t->hash & (nb - 1)];
            b[t->hash & (nb - 1)] = t;
            t = next;
        }
    }
    free(c->b);
    c->b = b;
    c->nb = nb;
}

static struct pc_task *task_insert(struct pollcache *c, const char *task_id, unsigned long long h)
{
    size_t len = strlen(task_id);
    size_t need = sizeof(struct pc_task) + len + 1;
    if (c->bytes + need > c->max_bytes)
        flush(c);
    struct pc_task *t = gw_xcalloc(1, need);
    memcpy(t->task_id, task_id, len + 1);
    t->hash = h;
    if (c->ntasks >= c->nb * 2)
        grow(c);
    t->next = c->b[h & (c->nb - 1)];
    c->b[h & (c->nb - 1)] = t;
    c->ntasks++;
    c->bytes += need;
    return t;
}

const char *const *pollcache_get(struct pollcache *c, bool listening, const char *task_id,
                                 const char *role, int idx, struct pollcache_ticket *tk)
{
    tk->valid = false;
    if (!listening) {
        c->st.misses++;
        return NULL;
    }
    unsigned long long h = fnv(task_id);
    struct pc_task *t = find(c, task_id, h);
    if (t) {
        for (struct pc_answer *a = t->answers; a; a = a->next)
            if (a->idx == idx && strcmp(a->role, role) == 0) {
                c->st.hits++;
                return (const char *const *)a->vals;
            }
    } else {
        t = task_insert(c, task_id, h);
    }
    c->st.misses++;
    tk->epoch = c->epoch;
    tk->gen = t->gen;
    tk->valid = true;
    return NULL;
}

void pollcache_put(struct pollcache *c, const struct pollcache_ticket *tk, const char *task_id,
                   const char *role, int idx, const char *const *vals)
{
    if (!tk->valid || tk->epoch != c->epoch)
        return;
    struct pc_task *t = find(c, task_id, fnv(task_id));
    if (!t || t->gen != tk->gen)
        return;
    for (struct pc_answer *a = t->answers; a; a = a->next)
        if (a->idx == idx && strcmp(a->role, role) == 0)
            return; /* another miss of the same generation stored it */
    struct pc_answer *a = gw_xcalloc(1, sizeof(*a));
    a->role = gw_xstrdup(role);
    a->idx = idx;
    for (int i = 0; i < POLLCACHE_NVALS; i++)
        a->vals[i] = vals[i] ? gw_xstrdup(vals[i]) : NULL;
    size_t need = answer_bytes(a);
    if (c->bytes + need > c->max_bytes) {
        /* Over the bound: forget everything else (the answer in hand is as
         * good as its ticket said) and start again from this one. */
        flush(c);
        t = task_insert(c, task_id, fnv(task_id));
        if (c->bytes + need > c->max_bytes) { /* larger than the whole cache */
            for (int i = 0; i < POLLCACHE_NVALS; i++)
                free(a->vals[i]);
            free(a->role);
            free(a);
            return;
        }
    }
    a->next = t->answers;
    t->answers = a;
    c->bytes += need;
    c->st.stored++;
}

void pollcache_forget(struct pollcache *c, const char *task_id)
{
    if (!task_id || !*task_id) {
        flush(c);
        return;
    }
    struct pc_task *t = find(c, task_id, fnv(task_id));
    if (!t)
        return;
    t->gen++;
    if (t->answers)
        c->st.forgotten++;
    answers_free(c, t);
}

void pollcache_stats(const struct pollcache *c, struct pollcache_stats *st)
{
    *st = c->st;
    st->tasks = c->ntasks;
    st->bytes = c->bytes;
}
