/*
 * chanbatch.h - the batched relay between our own gateways (pure: encode and
 * decode, no I/O).
 *
 * Spec bfia-transport.md leaves the HTTP form of /v1/interconn/chan/transport
 * undefined (§4.3, §9.10).  Between gateways of ours (routes of the standard
 * profile) it carries several pushes in one signed request: x-auth-sign
 * covers the whole body, so one signature and one verification serve every
 * message in it.  Other vendors' peers never see this form; they get one
 * message per invoke in the forms of §4.2.
 *
 *   POST /v1/interconn/chan/transport
 *   Content-Type: application/x-bfia-chan-batch
 *
 *   request  = "BCB1" u32:count  count * record
 *   record   = u16:n session  u16:n scope  u16:n topic  u32:timeout_ms  u32:n payload
 *   answer   = "BCA1" code[11] u16:n message  u32:count  count * result
 *   result   = code[11] u16:n message
 *
 * Integers are big-endian; u16:n / u32:n are byte lengths of what follows.
 * session is x-ptp-session-id, scope the task id of a task-scoped session
 * ("" otherwise), timeout_ms how long the push may wait for room.  code is a
 * transport code (E0000000000...).  An answer whose code is not E0000000000
 * refused the whole batch (count 0, nothing enqueued); otherwise it has one
 * result per record, in order.
 */
#ifndef GW_CONTAINER_CHANBATCH_H
#define GW_CONTAINER_CHANBATCH_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/compat.h"
#include "gateway/err.h"

#define CHANBATCH_CONTENT_TYPE "application/x-bfia-chan-batch"
#define CHANBATCH_ANSWER_TYPE "application/x-bfia-chan-batch-answer"
#define CHANBATCH_PATH "/v1/interconn/chan/transport"

#define CHANBATCH_MAX_MSGS 10000   /* records a receiver accepts in one batch */
#define CHANBATCH_SESSION_MAX 256  /* as x-ptp-session-id on push */
#define CHANBATCH_SCOPE_MAX 128    /* a task id */
#define CHANBATCH_TOPIC_MAX 1024   /* as the topic on push */
#define CHANBATCH_MSG_MAX 200      /* result messages are cut to this */

/* One message to encode; strings NUL-terminated, borrowed. */
struct chanbatch_out {
    const char *session, *scope, *topic;
    long long timeout_ms;
    const void *payload;
    size_t len;
};

/** Bytes a record of m takes. */
size_t chanbatch_rec_size(const struct chanbatch_out *m);

/** Bytes of the request header. */
#define CHANBATCH_HDR 8

/** Write the request header for count records at p (CHANBATCH_HDR bytes). */
void chanbatch_put_header(unsigned char *p, uint32_t count);

/** Write m's record at p (chanbatch_rec_size(m) bytes); returns the end. */
unsigned char *chanbatch_put_rec(unsigned char *p, const struct chanbatch_out *m);

/** A whole request body of n messages (caller frees). */
void *chanbatch_encode(const struct chanbatch_out *m, size_t n, size_t *len);

/* A decoded request.  Strings are NUL-terminated copies in one block;
 * payloads point into the body that was decoded (borrowed). */
struct chanbatch_msg {
    const char *session, *scope, *topic;
    long long timeout_ms;
    const unsigned char *payload;
    size_t len;
};
struct chanbatch {
    struct chanbatch_msg *m;
    size_t n;
    char *strings;
};

/**
 * Decode a request body of at most max_msgs records.  0, or GW_EINVAL with
 * eb naming what is wrong (magic, count, record k's field, trailing bytes);
 * then out is empty.
 */
int chanbatch_decode(const void *body, size_t len, size_t max_msgs, struct chanbatch *out,
                     struct gw_errbuf *eb) GW_MUSTCHECK;
void chanbatch_cleanup(struct chanbatch *b);

/* One outcome. */
struct chanbatch_res {
    char code[12];
    char msg[CHANBATCH_MSG_MAX + 1];
};

/**
 * An answer: whole code and message, then n results (codes[i], msgs[i]; a
 * NULL message is empty).  Caller frees.
 */
void *chanbatch_answer(const char *code, const char *msg, const struct chanbatch_res *res,
                       size_t n, size_t *len);

/* The whole message of a successful answer from a receiver that takes
 * records with timeout 0 as "do not wait for room, and refuse the rest of a
 * queue within the batch once it was full" (container/chan.c parks them);
 * until a peer has said so, its records carry their push's timeout. */
#define CHANBATCH_NOWAIT "nowait"

/**
 * Parse an answer to a batch of n records.  0 with *whole (the whole code and
 * message) and res[0..n) filled (when whole->code is E0000000000), or
 * GW_EINVAL when body is not such an answer (an older gateway, a proxy, a
 * refusal of the request itself).
 */
int chanbatch_parse_answer(const void *body, size_t len, size_t n, struct chanbatch_res *whole,
                           struct chanbatch_res *res) GW_MUSTCHECK;

#endif
