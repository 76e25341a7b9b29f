/*
 * chanwire.h - the wire forms of the BFIA channel API (pure: parse and
 * build, no I/O).  Spec bfia-transport.md §3.5-§3.6 and §4.2.
 *
 * Container-facing calls (push/pop/peek/release) come in two dialects,
 * decided per request (§3.6 [REC]):
 *   A  typed body, topic in the body: PushInbound/PopInbound/PeekInbound/
 *      ReleaseInbound as JSON (bytes = standard base64) or protobuf, per
 *      Content-Type; answered with org.ppc.ptp.TransportOutbound in the same
 *      encoding.
 *   B  SecretFlow YACL / Kuscia: raw body, topic in x-ptp-topic; answered
 *      with the three-field TransportOutbound{payload=1, code=2, message=3}
 *      as application/proto.
 * application/json -> A JSON; application/x-protobuf (or application/protobuf)
 * -> A protobuf; otherwise, with x-ptp-topic -> B; otherwise refused.
 *
 * Node-to-node /v1/interconn/chan/invoke (and /transport) has three forms
 * (§4.2 [REC]): x-ptp-topic present -> raw (B); else x-ptp-version "1" ->
 * pass-through (the original dialect A body); else encapsulated (Inbound
 * whose payload is the dialect A push body, per Content-Type).
 *
 * Protobuf goes through protobuf-c code generated from the .proto files in routes/proto.
 */
#ifndef GW_ROUTES_CHANWIRE_H
#define GW_ROUTES_CHANWIRE_H

#include <stdbool.h>
#include <stddef.h>

#include "container/chan.h" /* the codes */
#include "gateway/compat.h"
#include "gateway/err.h"

enum chanwire_dialect {
    CHANWIRE_NONE = 0,
    CHANWIRE_JSON = 1,  /* dialect A, application/json */
    CHANWIRE_PROTO = 2, /* dialect A, application/x-protobuf */
    CHANWIRE_RAW = 3,   /* dialect B */
};

enum chanwire_op { CHANWIRE_PUSH, CHANWIRE_POP, CHANWIRE_PEEK, CHANWIRE_RELEASE };

enum chanwire_mode { CHANWIRE_M_RAW, CHANWIRE_M_PASS, CHANWIRE_M_ENCAP };

/** The dialect of a container call, or CHANWIRE_NONE (refuse: E0000000400). */
int chanwire_dialect_of(const char *content_type, bool has_topic_header);

/** The Content-Type of answers in dialect d. */
const char *chanwire_content_type(int d);

/** The form of an invoke (x-ptp-version and x-ptp-topic headers; NULL = absent). */
int chanwire_invoke_mode(const char *version, const char *topic_header);

/** The operation named by an x-ptp-uri (a URL or a path), or -1. */
int chanwire_uri_op(const char *uri);

/* A parsed request body.  Strings and payload are owned (free with
 * chanwire_req_cleanup); payload is a malloc'd block (never NULL after a
 * push parsed), so the queue can take it. */
struct chanwire_req {
    char *topic;          /* NULL: the body named none */
    void *payload;
    size_t len;
    long long timeout;    /* the body's timeout field as sent; -1 absent */
    char **meta;          /* encapsulated: Inbound.metadata as key, value, ..., NULL */
};
void chanwire_req_cleanup(struct chanwire_req *r);

/** Value of key in r->meta (case-insensitive, '_' = '-'), or NULL. */
const char *chanwire_meta(const struct chanwire_req *r, const char *key);

/**
 * Parse the dialect A body (JSON or PROTO) of op.  An empty body is an empty
 * message.  Errors: GW_EINVAL with eb naming the field (wrong type, bad
 * base64, malformed JSON, protobuf that does not decode).
 */
int chanwire_parse(int dialect, int op, const void *body, size_t len, struct chanwire_req *out,
                   struct gw_errbuf *eb) GW_MUSTCHECK;

/**
 * Parse an invoke body of the pass-through or encapsulated form (dialect A
 * encoding by Content-Type): out gets the push's topic and payload, and for
 * the encapsulated form the Inbound metadata.
 */
int chanwire_parse_invoke(int mode, int dialect, const void *body, size_t len,
                          struct chanwire_req *out, struct gw_errbuf *eb) GW_MUSTCHECK;

/**
 * Timeout of a pop or release in milliseconds (§3.5 [REC]): ?timeout= in
 * seconds, else x-ptp-timeout in milliseconds, else the body field (seconds
 * when <= 3600, milliseconds above); absent or 0 gives def_ms; the result is
 * clamped to [1 s, 300 s].  A value that is not a number is GW_EINVAL.
 */
int chanwire_timeout_ms(const char *query_s, const char *header_ms, long long body, long long def_ms,
                        long long *out, struct gw_errbuf *eb) GW_MUSTCHECK;

/* Where an answer is written.  append copies; take_payload receives the
 * payload block (ownership moves: free() it when sent) so a large message is
 * not copied into the answer. */
struct chanwire_sink {
    void (*append)(void *arg, const void *p, size_t n);
    void (*take_payload)(void *arg, void *payload, size_t n);
    void *arg;
};

/**
 * Write the answer {code, message, payload} in dialect d to sink.  payload
 * (may be NULL) is owned by this call: passed to take_payload or freed.
 */
void chanwire_reply(int d, const char *code, const char *message, void *payload, size_t len,
                    const struct chanwire_sink *sink);

/** The same into one malloc'd buffer (*out, *outlen); for tests and small answers. */
void chanwire_reply_buf(int d, const char *code, const char *message, const void *payload,
                        size_t len, char **out, size_t *outlen);

/**
 * Read an answer of dialect d (a peer's answer to our invoke): code and
 * message are copied into the buffers; the payload is ignored.  GW_EINVAL
 * when the body is not such an answer.
 */
int chanwire_parse_answer(int d, const void *body, size_t len, char code[32], char *msg,
                          size_t msgcap) GW_MUSTCHECK;

/**
 * Build an encapsulated push (protobuf Inbound{metadata, payload =
 * PushInbound{topic, payload}}) for peers that take the standard's form.
 * meta: key, value, ..., NULL.  Returns a malloc'd buffer.
 */
void *chanwire_build_encap(const char *const *meta, const char *topic, const void *payload,
                           size_t len, size_t *outlen);

/** Build a dialect A push body (JSON or protobuf PushInbound); malloc'd. */
void *chanwire_build_push(int dialect, const char *topic, const void *payload, size_t len,
                          size_t *outlen);

/* Standard base64 (with padding) as dialect A JSON carries bytes. */
char *chanwire_b64_encode(const void *in, size_t n, size_t *outlen);
/** Decode standard or URL-safe base64, padding optional; -1 on a bad character or length. */
int chanwire_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen);

#endif
