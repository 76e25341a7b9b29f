/*
 * psi_store.c - bucketed second-stage values with spill files.
 */
#include "psi_store.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "psi_suite.h"

#define NBUCKETS 64
#define PEER_REC PSI_DUAL_LEN       /* value */
#define SELF_REC (4 + PSI_DUAL_LEN) /* little-endian uint32 index, value */
#define READ_RECS 65536

struct bucket {
    unsigned char *buf;
    size_t len, cap;  /* bytes */
    uint64_t filed;   /* records in the spill file */
};

struct side {
    const char *name; /* file prefix */
    size_t rec;
    size_t mem, limit;
    struct bucket b[NBUCKETS];
};

struct psi_store {
    pthread_mutex_t mu; /* the spill directory, the error text and the counter */
    char base[4096];
    char dir[4200];
    bool have_dir;
    uint64_t spilled;
    struct side peer, self;
    char err[512];
};

static void set_err(struct psi_store *s, const char *fmt, const char *a, int e)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->err, sizeof(s->err), fmt, a, strerror(e));
    pthread_mutex_unlock(&s->mu);
}

const char *psi_store_error(const struct psi_store *s) { return s->err; }

uint64_t psi_store_spilled(const struct psi_store *s) { return s->spilled; }

struct psi_store *psi_store_new(const char *base_dir, size_t mem_limit)
{
    if (!base_dir || strlen(base_dir) >= sizeof(((struct psi_store *)0)->base))
        return NULL;
    struct psi_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->base, sizeof(s->base), "%s", base_dir);
    s->peer.name = "peer";
    s->peer.rec = PEER_REC;
    s->peer.limit = mem_limit / 2;
    s->self.name = "self";
    s->self.rec = SELF_REC;
    s->self.limit = mem_limit / 2;
    return s;
}

static void bucket_path(const struct psi_store *s, const struct side *sd, int b, char *out,
                        size_t cap)
{
    snprintf(out, cap, "%s/%s.%02d", s->dir, sd->name, b);
}

void psi_store_free(struct psi_store *s)
{
    if (!s)
        return;
    for (int b = 0; b < NBUCKETS; b++) {
        free(s->peer.b[b].buf);
        free(s->self.b[b].buf);
        if (s->have_dir) {
            char p[4300];
            bucket_path(s, &s->peer, b, p, sizeof(p));
            unlink(p);
            bucket_path(s, &s->self, b, p, sizeof(p));
            unlink(p);
        }
    }
    if (s->have_dir)
        rmdir(s->dir);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Values are pseudo-random points: their first bytes pick the bucket, the
 * next ones the hash-table slot. */
static int bucket_of(const unsigned char *v)
{
    uint32_t x = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
    return (int)((x * 2654435761u) >> 26);
}

static uint64_t slot_hash(const unsigned char *v)
{
    uint64_t x;
    memcpy(&x, v + 4, 8);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static int ensure_dir(struct psi_store *s)
{
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (!s->have_dir) {
        snprintf(s->dir, sizeof(s->dir), "%s/psi-spill.XXXXXX", s->base);
        if (mkdtemp(s->dir))
            s->have_dir = true;
        else {
            snprintf(s->err, sizeof(s->err), "spill directory under %.300s: %s", s->base,
                     strerror(errno));
            rc = -1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int spill(struct psi_store *s, struct side *sd)
{
    if (ensure_dir(s) != 0)
        return -1;
    for (int b = 0; b < NBUCKETS; b++) {
        struct bucket *bk = &sd->b[b];
        if (!bk->len)
            continue;
        char p[4300];
        bucket_path(s, sd, b, p, sizeof(p));
        FILE *f = fopen(p, "ab");
        bool ok = f && fwrite(bk->buf, 1, bk->len, f) == bk->len;
        int e = errno;
        if (f && fclose(f) != 0 && ok) {
            ok = false;
            e = errno;
        }
        if (!ok) {
            set_err(s, "writing spill file %.300s: %s", p, e);
            return -1;
        }
        pthread_mutex_lock(&s->mu);
        s->spilled += bk->len;
        pthread_mutex_unlock(&s->mu);
        bk->filed += bk->len / sd->rec;
        free(bk->buf);
        bk->buf = NULL;
        bk->len = bk->cap = 0;
    }
    sd->mem = 0;
    return 0;
}

static int append(struct psi_store *s, struct side *sd, int b, const unsigned char *rec)
{
    struct bucket *bk = &sd->b[b];
    if (bk->len + sd->rec > bk->cap) {
        size_t nc = bk->cap ? bk->cap * 2 : 4096 * sd->rec / 16;
        unsigned char *nb = realloc(bk->buf, nc);
        if (!nb) {
            set_err(s, "%s: %s", "store", ENOMEM);
            return -1;
        }
        sd->mem += nc - bk->cap;
        bk->buf = nb;
        bk->cap = nc;
    }
    memcpy(bk->buf + bk->len, rec, sd->rec);
    bk->len += sd->rec;
    return 0;
}

int psi_store_add_peer(struct psi_store *s, const unsigned char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const unsigned char *x = v + i * PSI_DUAL_LEN;
        if (append(s, &s->peer, bucket_of(x), x) != 0)
            return -1;
    }
    return s->peer.mem > s->peer.limit ? spill(s, &s->peer) : 0;
}

int psi_store_add_self(struct psi_store *s, uint64_t first, const unsigned char *v, size_t n)
{
    if (first + n > UINT32_MAX) {
        snprintf(s->err, sizeof(s->err), "more than 2^32 own items");
        return -1;
    }
    unsigned char rec[SELF_REC];
    for (size_t i = 0; i < n; i++) {
        uint32_t idx = (uint32_t)(first + i);
        rec[0] = (unsigned char)idx;
        rec[1] = (unsigned char)(idx >> 8);
        rec[2] = (unsigned char)(idx >> 16);
        rec[3] = (unsigned char)(idx >> 24);
        memcpy(rec + 4, v + i * PSI_DUAL_LEN, PSI_DUAL_LEN);
        if (append(s, &s->self, bucket_of(rec + 4), rec) != 0)
            return -1;
    }
    return s->self.mem > s->self.limit ? spill(s, &s->self) : 0;
}

/* An open-addressing set of 12-byte values. */
struct vset {
    unsigned char *keys;
    unsigned char *used;
    size_t cap; /* power of two */
};

static int vset_init(struct vset *t, uint64_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    t->cap = cap;
    t->keys = malloc(cap * PSI_DUAL_LEN);
    t->used = calloc(cap, 1);
    return t->keys && t->used ? 0 : -1;
}

static void vset_add(struct vset *t, const unsigned char *v)
{
    size_t i = (size_t)slot_hash(v) & (t->cap - 1);
    while (t->used[i]) {
        if (memcmp(t->keys + i * PSI_DUAL_LEN, v, PSI_DUAL_LEN) == 0)
            return;
        i = (i + 1) & (t->cap - 1);
    }
    t->used[i] = 1;
    memcpy(t->keys + i * PSI_DUAL_LEN, v, PSI_DUAL_LEN);
}

static int vset_has(const struct vset *t, const unsigned char *v)
{
    size_t i = (size_t)slot_hash(v) & (t->cap - 1);
    while (t->used[i]) {
        if (memcmp(t->keys + i * PSI_DUAL_LEN, v, PSI_DUAL_LEN) == 0)
            return 1;
        i = (i + 1) & (t->cap - 1);
    }
    return 0;
}

/* Call fn for every record of bucket b of side sd: the file first, then
 * memory. */
typedef int (*rec_cb)(void *arg, const unsigned char *rec);

static int each_rec(struct psi_store *s, struct side *sd, int b, rec_cb fn, void *arg)
{
    struct bucket *bk = &sd->b[b];
    if (bk->filed) {
        char p[4300];
        bucket_path(s, sd, b, p, sizeof(p));
        FILE *f = fopen(p, "rb");
        unsigned char *buf = malloc(READ_RECS * sd->rec);
        if (!f || !buf) {
            int e = errno;
            if (f)
                fclose(f);
            free(buf);
            set_err(s, "reading spill file %.300s: %s", p, e);
            return -1;
        }
        uint64_t left = bk->filed;
        while (left) {
            size_t want = left < READ_RECS ? (size_t)left : READ_RECS;
            if (fread(buf, sd->rec, want, f) != want) {
                fclose(f);
                free(buf);
                set_err(s, "reading spill file %.300s: %s", p, EIO);
                return -1;
            }
            for (size_t i = 0; i < want; i++)
                if (fn(arg, buf + i * sd->rec) != 0) {
                    fclose(f);
                    free(buf);
                    return -1;
                }
            left -= want;
        }
        fclose(f);
        free(buf);
    }
    for (size_t off = 0; off < bk->len; off += sd->rec)
        if (fn(arg, bk->buf + off) != 0)
            return -1;
    return 0;
}

static int add_cb(void *arg, const unsigned char *rec)
{
    vset_add(arg, rec);
    return 0;
}

struct probe {
    struct vset *t;
    unsigned char *bitmap;
    uint64_t nself, matches;
    bool bad_index;
};

static int probe_cb(void *arg, const unsigned char *rec)
{
    struct probe *p = arg;
    uint32_t idx = (uint32_t)rec[0] | (uint32_t)rec[1] << 8 | (uint32_t)rec[2] << 16 |
                   (uint32_t)rec[3] << 24;
    if (idx >= p->nself) {
        p->bad_index = true;
        return -1;
    }
    if (vset_has(p->t, rec + 4) && !(p->bitmap[idx / 8] & (1u << (idx % 8)))) {
        p->bitmap[idx / 8] |= (unsigned char)(1u << (idx % 8));
        p->matches++;
    }
    return 0;
}

int psi_store_intersect(struct psi_store *s, unsigned char *bitmap, uint64_t nself,
                        uint64_t *matches)
{
    *matches = 0;
    for (int b = 0; b < NBUCKETS; b++) {
        uint64_t npeer = s->peer.b[b].filed + s->peer.b[b].len / PEER_REC;
        uint64_t nown = s->self.b[b].filed + s->self.b[b].len / SELF_REC;
        if (!npeer || !nown)
            continue;
        struct vset t = {0};
        if (vset_init(&t, npeer) != 0) {
            free(t.keys);
            free(t.used);
            set_err(s, "%s: %s", "intersection table", ENOMEM);
            return -1;
        }
        struct probe p = {&t, bitmap, nself, 0, false};
        int rc = each_rec(s, &s->peer, b, add_cb, &t);
        if (rc == 0)
            rc = each_rec(s, &s->self, b, probe_cb, &p);
        free(t.keys);
        free(t.used);
        if (p.bad_index)
            snprintf(s->err, sizeof(s->err), "an own index beyond the %llu items",
                     (unsigned long long)nself);
        if (rc != 0)
            return -1;
        *matches += p.matches;
    }
    return 0;
}
