/*
 * psi_transport.h - the small seam between the link layer and whatever
 * carries its messages: push(topic, bytes) and pop(topic, timeout).
 *
 * Two implementations:
 *   psi_transport_http_new()  dialect B of the BFIA channel API against
 *                             system.transport (psi_transport_http.c): what
 *                             the component uses in a container;
 *   psi_transport_mem_new()   an in-process pair of endpoints sharing a hub
 *                             (psi_transport_mem.c): unit tests and the
 *                             benchmark run both parties in one process.
 *
 * Threads: the link calls push from one thread and pop from another at the
 * same time; an implementation must allow exactly that.
 */
#ifndef PSI_TRANSPORT_H
#define PSI_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

/* Results of push and pop (negative: errors). */
enum {
    PSI_TRANSPORT_OK = 0,
    PSI_TRANSPORT_GOT = 1,     /* pop: a message arrived */
    PSI_TRANSPORT_RETRY = -1,  /* transient: try again later */
    PSI_TRANSPORT_FATAL = -2,  /* the channel is unusable (refused, released, misconfigured) */
};

struct psi_transport_ops {
    /** Hand len bytes to the channel under topic; blocks until the carrier
     * accepted them (not until the peer read them).  Retries transient
     * failures itself within its own bounds.  Returns PSI_TRANSPORT_OK or
     * an error with text in err. */
    int (*push)(void *impl, const char *topic, const unsigned char *buf, size_t len, char *err,
                size_t errlen);
    /** Wait up to timeout_ms for one message of topic.  Returns
     * PSI_TRANSPORT_GOT with *buf malloc'd (caller frees; may be NULL when
     * *len is 0), PSI_TRANSPORT_OK when nothing came, or an error with text
     * in err. */
    int (*pop)(void *impl, const char *topic, int timeout_ms, unsigned char **buf, size_t *len,
               char *err, size_t errlen);
    /** Free impl. */
    void (*free)(void *impl);
    /** Optional (may be NULL): make a pop that is waiting now return soon,
     * for a prompt shutdown.  Called from another thread than pop. */
    void (*wake)(void *impl);
};

struct psi_transport {
    const struct psi_transport_ops *ops;
    void *impl;
};

/** Free t and its implementation; NULL-safe. */
void psi_transport_free(struct psi_transport *t);

/* ---- dialect B over HTTP/1.1 ---------------------------------------------------------- */

/* What every request carries (spec bfia-ecdh-psi.md §6.3, bfia-transport.md
 * §3.6, §8): values come from the container's environment.  All strings
 * are borrowed by psi_transport_http_new(), which copies them. */
struct psi_transport_http_cfg {
    const char *address;     /* system.transport: "host:port" or "http://host:port" */
    const char *session_id;  /* config.session_id  -> x-ptp-session-id */
    const char *token;       /* config.token       -> x-ptp-token */
    const char *trace_id;    /* config.trace_id    -> x-ptp-trace-id (may be "") */
    const char *provider;    /* x-ptp-tech-provider-code */
    const char *self_node;   /* config.node_id.<self>  -> x-ptp-source-node-id */
    const char *peer_node;   /* config.node_id.<peer>  -> x-ptp-target-node-id */
    const char *self_inst;   /* config.inst_id.<self>  -> x-ptp-source-inst-id */
    const char *peer_inst;   /* config.inst_id.<peer>  -> x-ptp-target-inst-id */
    int push_deadline_ms;    /* how long a push may keep retrying (QueueFull, refused) */
};

/** A dialect-B client.  Returns NULL with a message naming the faulty
 * value (address not numeric host:port, a header value with CR/LF). */
struct psi_transport *psi_transport_http_new(const struct psi_transport_http_cfg *cfg, char *err,
                                             size_t errlen);

/** The exact request head the dialect-B client sends for a push of blen
 * bytes (push) or a pop (pop_timeout_s seconds) on topic (for tests and
 * documentation).  t must come from psi_transport_http_new().  Returns the
 * length, or -1 if it does not fit in cap. */
int psi_transport_http_head(const struct psi_transport *t, bool push, const char *topic, size_t blen,
                            int pop_timeout_s, char *out, size_t cap);

/* ---- in-process pair (tests, benchmark) --------------------------------------------------- */

struct psi_mem_hub;

/** A hub: unbounded FIFO queues by topic.  The caller owns it and frees it
 * after every endpoint made from it. */
struct psi_mem_hub *psi_mem_hub_new(void);
void psi_mem_hub_free(struct psi_mem_hub *h);

/** An endpoint on h (any topic may be pushed or popped). */
struct psi_transport *psi_transport_mem_new(struct psi_mem_hub *h);

/** Fault injection: after n more successful pushes every push and pop of
 * this endpoint fails with PSI_TRANSPORT_FATAL ("the party died").
 * n < 0 turns it off. */
void psi_transport_mem_fail_after(struct psi_transport *t, long n);

/** Fault injection: drop (silently accept) every push after n more; the
 * party believes it keeps sending.  n < 0 turns it off. */
void psi_transport_mem_drop_after(struct psi_transport *t, long n);

/** Bytes currently queued in h (all topics). */
size_t psi_mem_hub_bytes(struct psi_mem_hub *h);

#endif
