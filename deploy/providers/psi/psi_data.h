/*
 * psi_data.h - input and output of the component (spec bfia-ecdh-psi.md
 * §4, §7), the reference's rules:
 *
 *   - the input is CSV with a header line; no quoting: lines split on ',';
 *   - field_names is a comma-separated list of header columns (whitespace
 *     around each name ignored); an item is the selected fields of a row,
 *     in field_names order, each stripped of ASCII whitespace, joined by
 *     ','; the bytes are used as they are in the file (UTF-8), no case
 *     folding, no salt;
 *   - duplicate rows are separate items (both are output if the key is in
 *     the intersection);
 *   - our addition: a line with nothing but whitespace is skipped (it is
 *     neither an item nor output); a UTF-8 byte-order mark before the
 *     header is ignored;
 *   - the output is the header line followed by the matching rows,
 *     verbatim, in file order.
 */
#ifndef PSI_DATA_H
#define PSI_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Up to this many ID columns. */
#define PSI_DATA_MAX_FIELDS 32

/** Build the item of one data line (len bytes, without its line end) from
 * the columns cols[0..ncols): the stripped fields joined by ','.  Writes
 * at most cap bytes to out and the item's length to *outlen.  Returns 0,
 * or -1 when the line has fewer fields than a selected column needs (the
 * item would be ambiguous), or the item exceeds cap. */
int psi_data_item(const char *line, size_t len, const int *cols, int ncols, char *out, size_t cap,
                  size_t *outlen);

/** Resolve field_names against a header line (len bytes, no line end):
 * cols[i] gets the column of the i-th name.  Returns the number of names,
 * or -1 with the reason in err (empty list, too many, a name not in the
 * header: the message lists the header's columns). */
int psi_data_columns(const char *header, size_t len, const char *field_names, int *cols, char *err,
                     size_t errlen);

/** Whether a line holds only ASCII whitespace (it is skipped). */
bool psi_data_blank(const char *line, size_t len);

/* A batch of items: item i is bytes [off[i], off[i] + len[i]) of buf. */
struct psi_items {
    char *buf;
    size_t used, cap;
    size_t *off;
    size_t *len;
    size_t n, max;
};

/** Make room for max items; returns 0 or -1. */
int psi_items_init(struct psi_items *it, size_t max);
void psi_items_cleanup(struct psi_items *it);
void psi_items_clear(struct psi_items *it);
/** Append one item; returns 0 or -1 (no memory, full). */
int psi_items_add(struct psi_items *it, const char *p, size_t n);

struct psi_reader;

/** Open a CSV input and resolve field_names against its header.  Returns
 * NULL with the reason in err (unreadable file, empty file, bad
 * field_names). */
struct psi_reader *psi_reader_open(const char *path, const char *field_names, char *err,
                                   size_t errlen);

/** Read up to it->max items into it (cleared first).  Returns the number
 * read (0 at the end), or -1 with the reason in err (a short line: the
 * message gives its line number). */
long psi_reader_next(struct psi_reader *r, struct psi_items *it, char *err, size_t errlen);

/** Items read so far. */
uint64_t psi_reader_count(const struct psi_reader *r);

/** NULL-safe. */
void psi_reader_close(struct psi_reader *r);

/** Write out_path (atomically: a temporary file renamed into place) with the
 * header of in_path and every data row i (counting as the reader does)
 * whose bit is set in bitmap.  nrows is the number of items the reader
 * gave.  *written gets the rows written.  Returns 0, or -1 with the reason
 * in err. */
int psi_data_write_output(const char *in_path, const char *out_path, const unsigned char *bitmap,
                          uint64_t nrows, uint64_t *written, char *err, size_t errlen);

/** mkdir -p of the directory part of path.  Returns 0 or -1 (errno). */
int psi_data_mkdirs_for(const char *path);

#endif
