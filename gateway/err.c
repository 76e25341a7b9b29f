/* err.c - error names and the detail buffer. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *gw_strerror(int err)
{
    switch (err) {
    case GW_OK: return "OK";
    case GW_EINVAL: return "EINVAL";
    case GW_ENOTFOUND: return "ENOTFOUND";
    case GW_ECONFLICT: return "ECONFLICT";
    case GW_EAUTH: return "EAUTH";
    case GW_ETIMEOUT: return "ETIMEOUT";
    case GW_EBUSY: return "EBUSY";
    case GW_EPEER: return "EPEER";
    case GW_EDB: return "EDB";
    case GW_EDOCKER: return "EDOCKER";
    case GW_EINTERNAL: return "EINTERNAL";
    case GW_ETOOBIG: return "ETOOBIG";
    case GW_EDRAINING: return "EDRAINING";
    case GW_EREFUSED: return "EREFUSED";
    }
    return "EUNKNOWN";
}

void gw_errbuf_clear(struct gw_errbuf *eb)
{
    if (eb) {
        eb->msg[0] = '\0';
        eb->where[0] = '\0';
    }
}

int gw_errf(struct gw_errbuf *eb, int err, const char *fmt, ...)
{
    if (eb) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
        va_end(ap);
    }
    return err;
}

void gw_err_where(struct gw_errbuf *eb, const char *fmt, ...)
{
    if (eb) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb->where, sizeof(eb->where), fmt, ap);
        va_end(ap);
    }
}
