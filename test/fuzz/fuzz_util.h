/*
 * fuzz_util.h - helpers shared by the libFuzzer harnesses (header only, so
 * each harness stays one file that links with libFuzzer or replay_main.c).
 */
#ifndef GW_TEST_FUZZ_UTIL_H
#define GW_TEST_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A NUL-terminated copy of data (the parsers under test take C strings). */
static inline char *fz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/*
 * Split the input into at most n fields at '\n' (the last field takes the
 * rest).  Fields point into buf (a NUL-terminated copy the caller frees).
 * Returns how many fields were found.
 */
static inline size_t fz_fields(char *buf, char **f, size_t n)
{
    size_t k = 0;
    char *p = buf;
    while (k < n) {
        f[k++] = p;
        if (k == n)
            break;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    for (size_t i = k; i < n; i++)
        f[i] = NULL;
    return k;
}

/*
 * Deterministic split sizes taken from the input's own bytes: the stream
 * parsers are fed the same bytes in pieces of 1..max bytes, so a fault that
 * appears only when a delimiter straddles two reads is found.
 */
struct fz_splitter {
    uint32_t state;
    size_t max;
};

static inline void fz_split_init(struct fz_splitter *s, const uint8_t *seed, size_t n, size_t max)
{
    s->state = 2166136261u;
    for (size_t i = 0; i < n; i++)
        s->state = (s->state ^ seed[i]) * 16777619u;
    s->max = max ? max : 1;
}

static inline size_t fz_split_next(struct fz_splitter *s)
{
    s->state ^= s->state << 13;
    s->state ^= s->state >> 17;
    s->state ^= s->state << 5;
    return 1 + s->state % s->max;
}

#endif
