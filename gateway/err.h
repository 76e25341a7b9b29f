/*
 * err.h - the gateway's error values and the detail buffer that travels with
 * them.
 *
 * Fallible functions return 0 or a negative enum gw_err.  The numbers are part
 * of the operator-visible contract (they appear in logs and map to BFIA codes
 * in routes/), so a value never changes meaning once released: new errors go
 * at the end.
 */
#ifndef GW_GATEWAY_ERR_H
#define GW_GATEWAY_ERR_H

#include <stddef.h>

#include "compat.h"

enum gw_err {
    GW_OK = 0,
    GW_EINVAL = -1,    /* bad input: a field is missing, malformed or out of range */
    GW_ENOTFOUND = -2, /* the named object does not exist */
    GW_ECONFLICT = -3, /* the object exists in a state that forbids the request */
    GW_EAUTH = -4,     /* credentials missing, wrong, stale or replayed */
    GW_ETIMEOUT = -5,  /* a deadline passed */
    GW_EBUSY = -6,     /* a bounded queue is full; try again later */
    GW_EPEER = -7,     /* a peer node failed or answered an error */
    GW_EDB = -8,       /* PostgreSQL failed or is unreachable */
    GW_EDOCKER = -9,   /* the Docker engine failed or is unreachable */
    GW_EINTERNAL = -10, /* a bug or an unexpected system failure */
    GW_ETOOBIG = -11,  /* a body or value is over its size cap */
    GW_EDRAINING = -12, /* the process is shutting down */
    GW_EREFUSED = -13, /* understood and refused (a peer's refusal, an impossible transition) */
};

/** Stable short name of an error value ("EINVAL"), never NULL. */
const char *gw_strerror(int err);

/*
 * Detail for an error: human text, plus the place it refers to (a JSON path
 * such as "dag.components[2].name", or "file.yaml:12").  Embedded by the
 * caller; all fields are fixed-size so filling it never allocates.
 */
struct gw_errbuf {
    char msg[512];
    char where[256];
};

/** Clear an error buffer (NULL-safe). */
void gw_errbuf_clear(struct gw_errbuf *eb);

/**
 * Format msg into eb (NULL-safe: with eb NULL nothing happens) and return err
 * unchanged, so callers can write `return gw_errf(eb, GW_EINVAL, "...")`.
 */
int gw_errf(struct gw_errbuf *eb, int err, const char *fmt, ...) GW_PRINTF(3, 4);

/** Set the "where" part of eb (NULL-safe). */
void gw_err_where(struct gw_errbuf *eb, const char *fmt, ...) GW_PRINTF(2, 3);

#endif
