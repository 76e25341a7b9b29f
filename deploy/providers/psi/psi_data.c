/*
 * psi_data.c - CSV input (items), output (matching rows).
 */
#include "psi_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ITEM_MAX 65536

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

bool psi_data_blank(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_ws((unsigned char)line[i]))
            return false;
    return true;
}

/* Field k of a line: [*b, *e), stripped.  Returns -1 when absent. */
static int field(const char *line, size_t len, int k, const char **b, const char **e)
{
    const char *p = line, *end = line + len;
    for (int i = 0; i < k; i++) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        if (!c)
            return -1;
        p = c + 1;
    }
    const char *c = memchr(p, ',', (size_t)(end - p));
    const char *fe = c ? c : end;
    while (p < fe && is_ws((unsigned char)*p))
        p++;
    while (fe > p && is_ws((unsigned char)fe[-1]))
        fe--;
    *b = p;
    *e = fe;
    return 0;
}

int psi_data_item(const char *line, size_t len, const int *cols, int ncols, char *out, size_t cap,
                  size_t *outlen)
{
    size_t n = 0;
    for (int i = 0; i < ncols; i++) {
        const char *b, *e;
        if (field(line, len, cols[i], &b, &e) != 0)
            return -1;
        size_t fl = (size_t)(e - b);
        if (n + fl + (i > 0) > cap)
            return -1;
        if (i > 0)
            out[n++] = ',';
        memcpy(out + n, b, fl);
        n += fl;
    }
    *outlen = n;
    return 0;
}

int psi_data_columns(const char *header, size_t len, const char *field_names, int *cols, char *err,
                     size_t errlen)
{
    int ncols = 0;
    const char *p = field_names ? field_names : "";
    for (;;) {
        const char *c = strchr(p, ',');
        const char *b = p, *e = c ? c : p + strlen(p);
        while (b < e && is_ws((unsigned char)*b))
            b++;
        while (e > b && is_ws((unsigned char)e[-1]))
            e--;
        if (b == e) {
            snprintf(err, errlen, "field_names: '%s' has an empty column name",
                     field_names ? field_names : "");
            return -1;
        }
        if (ncols == PSI_DATA_MAX_FIELDS) {
            snprintf(err, errlen, "field_names: more than %d columns", PSI_DATA_MAX_FIELDS);
            return -1;
        }
        int found = -1;
        for (int k = 0;; k++) {
            const char *hb, *he;
            if (field(header, len, k, &hb, &he) != 0)
                break;
            if ((size_t)(he - hb) == (size_t)(e - b) && memcmp(hb, b, (size_t)(e - b)) == 0) {
                found = k;
                break;
            }
        }
        if (found < 0) {
            int hl = len > 200 ? 200 : (int)len;
            snprintf(err, errlen, "field_names: column '%.*s' is not in the input header '%.*s'",
                     (int)(e - b), b, hl, header);
            return -1;
        }
        cols[ncols++] = found;
        if (!c)
            break;
        p = c + 1;
    }
    return ncols;
}

/* ---- items ------------------------------------------------------------------------- */

int psi_items_init(struct psi_items *it, size_t max)
{
    memset(it, 0, sizeof(*it));
    it->max = max;
    it->cap = max * 16 + 64;
    it->buf = malloc(it->cap);
    it->off = malloc(max * sizeof(size_t));
    it->len = malloc(max * sizeof(size_t));
    if (!it->buf || !it->off || !it->len) {
        psi_items_cleanup(it);
        return -1;
    }
    return 0;
}

void psi_items_cleanup(struct psi_items *it)
{
    free(it->buf);
    free(it->off);
    free(it->len);
    memset(it, 0, sizeof(*it));
}

void psi_items_clear(struct psi_items *it)
{
    it->n = 0;
    it->used = 0;
}

int psi_items_add(struct psi_items *it, const char *p, size_t n)
{
    if (it->n == it->max)
        return -1;
    if (it->used + n > it->cap) {
        size_t nc = (it->used + n) * 2;
        char *nb = realloc(it->buf, nc);
        if (!nb)
            return -1;
        it->buf = nb;
        it->cap = nc;
    }
    memcpy(it->buf + it->used, p, n);
    it->off[it->n] = it->used;
    it->len[it->n] = n;
    it->used += n;
    it->n++;
    return 0;
}

/* ---- reader ------------------------------------------------------------------------ */

struct psi_reader {
    FILE *f;
    int cols[PSI_DATA_MAX_FIELDS];
    int ncols;
    char *line;
    size_t linecap;
    uint64_t lineno; /* of the last line read, 1 = header */
    uint64_t count;
    char item[ITEM_MAX];
};

/* One line without its end (\n; a \r before it stays and is stripped as
 * whitespace by the field rules).  Returns its length or -1 at the end. */
static ssize_t read_line(FILE *f, char **line, size_t *cap)
{
    ssize_t n = getline(line, cap, f);
    if (n < 0)
        return -1;
    if (n > 0 && (*line)[n - 1] == '\n')
        n--;
    return n;
}

struct psi_reader *psi_reader_open(const char *path, const char *field_names, char *err,
                                   size_t errlen)
{
    struct psi_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->f = fopen(path, "r");
    if (!r->f) {
        snprintf(err, errlen, "input %s: %s", path, strerror(errno));
        free(r);
        return NULL;
    }
    ssize_t n = read_line(r->f, &r->line, &r->linecap);
    if (n < 0) {
        snprintf(err, errlen, "input %s is empty (a header line is required)", path);
        psi_reader_close(r);
        return NULL;
    }
    r->lineno = 1;
    char *h = r->line;
    if (n >= 3 && memcmp(h, "\xef\xbb\xbf", 3) == 0) {
        h += 3;
        n -= 3;
    }
    r->ncols = psi_data_columns(h, (size_t)n, field_names, r->cols, err, errlen);
    if (r->ncols < 0) {
        psi_reader_close(r);
        return NULL;
    }
    return r;
}

long psi_reader_next(struct psi_reader *r, struct psi_items *it, char *err, size_t errlen)
{
    psi_items_clear(it);
    while (it->n < it->max) {
        ssize_t n = read_line(r->f, &r->line, &r->linecap);
        if (n < 0)
            break;
        r->lineno++;
        if (psi_data_blank(r->line, (size_t)n))
            continue;
        size_t il;
        if (psi_data_item(r->line, (size_t)n, r->cols, r->ncols, r->item, sizeof(r->item), &il) !=
            0) {
            snprintf(err, errlen, "input line %llu: missing an ID column or longer than %d bytes",
                     (unsigned long long)r->lineno, ITEM_MAX);
            return -1;
        }
        if (psi_items_add(it, r->item, il) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        r->count++;
    }
    if (ferror(r->f)) {
        snprintf(err, errlen, "reading input: %s", strerror(errno));
        return -1;
    }
    return (long)it->n;
}

uint64_t psi_reader_count(const struct psi_reader *r) { return r->count; }

void psi_reader_close(struct psi_reader *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    free(r->line);
    free(r);
}

/* ---- output ------------------------------------------------------------------------ */

int psi_data_mkdirs_for(const char *path)
{
    char d[4096];
    if (snprintf(d, sizeof(d), "%s", path) >= (int)sizeof(d)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *slash = strrchr(d, '/');
    if (!slash || slash == d)
        return 0;
    *slash = '\0';
    for (char *p = d + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(d, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(d, 0777) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int psi_data_write_output(const char *in_path, const char *out_path, const unsigned char *bitmap,
                          uint64_t nrows, uint64_t *written, char *err, size_t errlen)
{
    *written = 0;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", out_path, (long)getpid());
    if (psi_data_mkdirs_for(out_path) != 0) {
        snprintf(err, errlen, "output directory of %s: %s", out_path, strerror(errno));
        return -1;
    }
    FILE *in = fopen(in_path, "r");
    if (!in) {
        snprintf(err, errlen, "input %s: %s", in_path, strerror(errno));
        return -1;
    }
    FILE *out = fopen(tmp, "w");
    if (!out) {
        snprintf(err, errlen, "output %s: %s", tmp, strerror(errno));
        fclose(in);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t row = 0;
    bool header = true;
    int rc = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        size_t body = (size_t)n;
        if (body && line[body - 1] == '\n')
            body--;
        if (header) {
            header = false;
        } else {
            if (psi_data_blank(line, body))
                continue;
            uint64_t i = row++;
            if (i >= nrows) {
                snprintf(err, errlen, "input %s changed during the run (more rows than read)",
                         in_path);
                rc = -1;
                break;
            }
            if (!(bitmap[i / 8] & (1u << (i % 8))))
                continue;
            (*written)++;
        }
        /* verbatim, with a line end added to a last line that had none */
        if (fwrite(line, 1, (size_t)n, out) != (size_t)n ||
            ((size_t)n == body && fputc('\n', out) == EOF)) {
            snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
            rc = -1;
            break;
        }
    }
    free(line);
    if (rc == 0 && row != nrows) {
        snprintf(err, errlen, "input %s changed during the run (%llu rows now, %llu read)", in_path,
                 (unsigned long long)row, (unsigned long long)nrows);
        rc = -1;
    }
    fclose(in);
    if (fclose(out) != 0 && rc == 0) {
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, out_path) != 0) {
        snprintf(err, errlen, "renaming %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc != 0)
        unlink(tmp);
    return rc;
}
