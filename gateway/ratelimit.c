/*
 * ratelimit.c - token buckets keyed by short strings (see ratelimit.h).
 */
#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"

#define KEY_MAX 160

struct bucket {
    char key[KEY_MAX];
    double tokens;
    long long last_ms; /* 0 = free slot */
};

struct ratelimit {
    double rate, burst;
    size_t n;
    struct bucket *b;
};

struct ratelimit *ratelimit_new(double rate, double burst, size_t max_keys)
{
    struct ratelimit *rl = gw_xcalloc(1, sizeof(*rl));
    rl->rate = rate > 0 ? rate : 1;
    rl->burst = burst >= 1 ? burst : 1;
    rl->n = max_keys ? max_keys : 1;
    rl->b = gw_xcalloc(rl->n, sizeof(*rl->b));
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    free(rl->b);
    free(rl);
}

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

bool ratelimit_take(struct ratelimit *rl, const char *key, long long now_ms)
{
    if (now_ms <= 0)
        now_ms = 1;
    size_t start = hash(key) % rl->n, oldest = start;
    struct bucket *hit = NULL;
    /* A short probe: the key, or a free slot, or else the idlest one seen. */
    size_t probe = rl->n < 8 ? rl->n : 8;
    for (size_t i = 0; i < probe && !hit; i++) {
        struct bucket *b = &rl->b[(start + i) % rl->n];
        if (b->last_ms && strncmp(b->key, key, KEY_MAX - 1) == 0)
            hit = b;
        else if (!b->last_ms || b->last_ms < rl->b[oldest].last_ms)
            oldest = (start + i) % rl->n;
    }
    if (!hit) {
        hit = &rl->b[oldest];
        snprintf(hit->key, sizeof(hit->key), "%s", key);
        hit->tokens = rl->burst;
        hit->last_ms = now_ms;
    }
    double dt = (double)(now_ms - hit->last_ms) / 1000.0;
    if (dt > 0) {
        hit->tokens += dt * rl->rate;
        if (hit->tokens > rl->burst)
            hit->tokens = rl->burst;
        hit->last_ms = now_ms;
    }
    if (hit->tokens < 1)
        return false;
    hit->tokens -= 1;
    return true;
}
