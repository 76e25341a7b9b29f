/*
 * psi_component.h - one party's whole task, given its configuration and a
 * transport: read the input, run ECDH-PSI with the peer, write the output
 * rows and the report, close the link as the reference does.  The program
 * (psi_main.c) adds the environment, the HTTP transport, the status
 * callback and the exit code; the unit tests and the benchmark call this
 * with the in-process transport.
 */
#ifndef PSI_COMPONENT_H
#define PSI_COMPONENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "psi_link.h"

struct psi_config;
struct psi_transport;

struct psi_component_out {
    uint64_t original_count;     /* own data rows (items) */
    int64_t intersection_count;  /* rows written; -1 when we get no result */
    uint64_t peer_count;         /* the peer's items */
    uint64_t spilled_bytes;      /* second-stage values written to spill files */
    double seconds;              /* connect to finish */
    int finish;                  /* psi_link_finish() result (PSI_LINK_DONE, PSI_LINK_NO_FIN) */
    struct psi_link_stats link;
};

/** Run the task.  c is borrowed; t is borrowed and used from the link's
 * threads.  Returns PSI_FAIL_NONE (0) or a failure class of psi_run.h with
 * the reason in err.  The output and report are written only on success;
 * a party that gets no result writes the report alone (when it has a
 * report path), with intersection_count -1. */
int psi_component_run(const struct psi_config *c, struct psi_transport *t,
                      struct psi_component_out *out, char *err, size_t errlen);

/** The report JSON {"original_count":N,"intersection_count":M} into buf.
 * Returns the length. */
int psi_component_report_json(const struct psi_component_out *o, char *buf, size_t cap);

#endif
