/*
 * psi_log.h - the component's log: one line per record on stdout (the
 * container contract, spec bfia-control-layer.md §6.1), each line
 * "<UTC time> <party> <message>", written with one call so lines of
 * concurrent threads do not interleave.
 */
#ifndef PSI_LOG_H
#define PSI_LOG_H

/** Log one line for party who (e.g. "guest.0"; may be NULL). */
void psi_log(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
