/*
 * psi_link.h - the "white-box" link layer that carries ECDH-PSI between two
 * ranks over a psi_transport, byte-compatible with the reference
 * implementation's (YACL) channel (spec bfia-ecdh-psi.md §6.3):
 *
 *   - every message is a serialised PushRequest on topic
 *     "<self party>-<peer party>" (received on "<peer>-<self>");
 *   - message keys "{channel}:P2P-{n}:{src}->{dst}" with one counter per
 *     channel and direction, starting at 1; channels "root" and "root-0";
 *   - the wire key appends "\x01\x02{seq}", seq counting this side's
 *     messages from 1 across all channels; duplicates (same seq) are
 *     dropped;
 *   - a message is acknowledged when the application reads it:
 *     key "ACK\x01\x02", value the decimal seq;
 *   - at most `window` (10) sequenced messages are sent ahead of the
 *     peer's acknowledgements;
 *   - connect: "connect_{rank}\x01\x020" with an empty value, each side
 *     waits for the other's;
 *   - finish: "FIN\x01\x02" with the decimal count of sequenced messages
 *     sent; each side then waits for the peer's FIN, every message it
 *     announced, and acknowledgements of all its own.
 *
 * Threads: psi_link_start() runs a sender and a receiver thread.  Sends on
 * one channel come from one thread, receives on one channel from one
 * thread; different channels may be used from different threads at once.
 * Every wait is bounded: a peer that stops makes the next wait fail with
 * the reason in psi_link_error(), and every other wait fails with it.
 */
#ifndef PSI_LINK_H
#define PSI_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct psi_transport;

struct psi_link_opts {
    int self_rank, peer_rank;
    const char *send_topic;  /* "<self party>-<peer party>" */
    const char *recv_topic;  /* "<peer party>-<self party>" */
    int window;              /* un-acknowledged messages in flight; 0 = no limit; REF: 10 */
    int recv_timeout_ms;     /* longest wait for one message or for the window to open */
    int connect_timeout_ms;  /* longest wait for the peer's connect message */
    int fin_timeout_ms;      /* longest wait in psi_link_finish() */
    int pop_timeout_ms;      /* one pop call (REF: 1 s) */
    size_t max_buffered;     /* bytes of received unread messages before the link fails */
};

/** Fill o with the defaults: window 10, recv 60 s, connect 120 s, finish
 * 120 s, pop 1 s, 64 MiB buffered; ranks and topics are left to the caller. */
void psi_link_opts_default(struct psi_link_opts *o);

struct psi_link;

/** A link over t (borrowed; must outlive the link).  The topics are copied.
 * Returns NULL on a bad argument. */
struct psi_link *psi_link_new(struct psi_transport *t, const struct psi_link_opts *o);

/** Start the sender and receiver threads.  Returns 0 or -1. */
int psi_link_start(struct psi_link *l);

/** Send our connect message and wait for the peer's.  Returns 0, or -1
 * (timeout, transport failure: see psi_link_error()). */
int psi_link_connect(struct psi_link *l);

/** Queue val (len bytes, malloc'd; ownership moves to the link, freed even
 * on error) as the next P2P message of channel.  throttled waits until the
 * window has room for it (REF SendAsyncThrottled); otherwise the call
 * returns at once (REF SendAsync) and the sender still respects the
 * window.  Returns 0, or -1 when the link failed. */
int psi_link_send_take(struct psi_link *l, const char *channel, unsigned char *val, size_t len,
                       bool throttled);

/** Wait for the peer's next P2P message of channel and acknowledge it.
 * *val (malloc'd; may be NULL for an empty value) moves to the caller.
 * Returns 0, or -1 on timeout or failure. */
int psi_link_recv(struct psi_link *l, const char *channel, unsigned char **val, size_t *len);

/* psi_link_finish() results */
enum {
    PSI_LINK_DONE = 0,       /* all confirmed both ways */
    PSI_LINK_NO_FIN = 1,     /* all our messages were acknowledged, but the peer's FIN (or
                              * a message it announced) did not come in time */
};

/** Close the link as the reference does: acknowledge unread messages, send
 * FIN, wait (bounded by fin_timeout_ms) for the peer's FIN and messages
 * and for acknowledgements of all ours, flush the last acknowledgements,
 * stop the threads.  Returns PSI_LINK_DONE, PSI_LINK_NO_FIN, or -1 when
 * our messages were not all acknowledged (the peer may lack data). */
int psi_link_finish(struct psi_link *l);

/** Fail the link (first reason wins) and wake every waiter.  printf-like. */
void psi_link_fail(struct psi_link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Whether the link failed. */
bool psi_link_failed(struct psi_link *l);

/** The first failure's reason ("" if none).  Valid until psi_link_free(). */
const char *psi_link_error(struct psi_link *l);

struct psi_link_stats {
    uint64_t sent, received;   /* sequenced messages */
    uint64_t bytes_sent, bytes_received;
    uint64_t acks_sent, acks_received, duplicates;
};

void psi_link_get_stats(struct psi_link *l, struct psi_link_stats *s);

/** Stop the threads (without FIN when psi_link_finish() was not called) and
 * free.  NULL-safe. */
void psi_link_free(struct psi_link *l);

#endif
