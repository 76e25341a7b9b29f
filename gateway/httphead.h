/*
 * httphead.h - a strict, streaming checker of HTTP/1.x request heads.
 *
 * libevent 2.1's evhttp is a lenient parser: of two Content-Length fields
 * the first wins and the rest of the bytes are read as the next request;
 * "Content-Length: +14" is read as 14; "Transfer-Encoding : chunked" (a
 * space before the colon) is a field named "Transfer-Encoding " that it
 * ignores.  A proxy in front of the gateway may frame the same bytes
 * differently, which is request smuggling.  RFC 9112 requires a server to
 * refuse such heads with 400 and close the connection, so every head is run
 * through this checker before evhttp sees it (gateway/conn.c).
 *
 * Refused (each with a message naming the part):
 *   - a request line that is not METHOD SP target SP HTTP/1.0|HTTP/1.1 with
 *     a token method and a target of visible ASCII (RFC 9112 3);
 *   - a line not ended by CRLF, a bare CR anywhere (2.2);
 *   - a field line starting with whitespace (obs-fold, 5.2), a field name
 *     that is not a token, whitespace between the name and the colon (5.1),
 *     a control character other than HTAB in a value (5.5);
 *   - Content-Length that is not 1*DIGIT, or several with different values
 *     (6.3);
 *   - Transfer-Encoding other than exactly "chunked", given twice, in an
 *     HTTP/1.0 request, or together with Content-Length (6.1, 6.3);
 *   - more than one Host field (3.2);
 *   - a body announced on HEAD or TRACE (evhttp reads none there).
 *
 * Pure: no I/O, no allocation; unit-tested and fuzzed (test/fuzz/fuzz_httphead.c).
 */
#ifndef GW_GATEWAY_HTTPHEAD_H
#define GW_GATEWAY_HTTPHEAD_H

#include <stdbool.h>
#include <stddef.h>

enum hh_verdict {
    HH_MORE = 0, /* the head is not complete yet: feed more */
    HH_DONE,     /* the head ended (at the empty line); its framing is in the struct */
    HH_BAD,      /* the head is refused: why names the fault */
};

/* Scanner state; embed it and call hh_init before each request. */
struct hh {
    int st;               /* position in the grammar */
    size_t len;           /* bytes of the head seen */
    size_t tok;           /* length of the current token (method, version, name) */
    char name[24];        /* the current field name, lower-cased, truncated */
    bool name_long;       /* ... longer than name[] holds */
    int field;            /* which field the current line is (HH_F_*) */
    char val[24];         /* the current value of an interesting field, OWS-trimmed */
    size_t val_len;
    size_t val_ws;        /* trailing whitespace not yet known to be inside the value */
    bool val_long;
    char ver[9];          /* "HTTP/1.x" of the request line */
    char method[8];       /* the method, truncated */
    /* Framing, valid once HH_DONE is returned. */
    bool http10;          /* HTTP/1.0 request */
    bool has_cl;          /* a Content-Length field was present */
    long long cl;         /* its value */
    bool chunked;         /* Transfer-Encoding: chunked */
    int nhost;            /* Host fields */
    int nte;              /* Transfer-Encoding fields */
    const char *why;      /* HH_BAD: what is wrong (static text or msg below) */
    char msg[96];         /* a message naming a field */
    int status;           /* HH_BAD: the HTTP status to answer (400 or 431) */
};

/** Reset for a new request head. */
void hh_init(struct hh *h);

/**
 * Scan n more bytes of the head.  Returns HH_MORE when all n bytes were
 * taken and the head goes on; HH_DONE with *used = the bytes of p up to and
 * including the LF of the empty line (the rest of p is the body or the next
 * request); HH_BAD with h->why, h->status and *used = the bytes of p taken
 * before the one refused.  After HH_DONE or HH_BAD the
 * struct must be re-initialised before it is fed again.  max is the largest
 * head accepted (http.header_max); a longer one is HH_BAD with status 431.
 */
enum hh_verdict hh_feed(struct hh *h, const char *p, size_t n, size_t max, size_t *used);

/** Body bytes the finished head announces: Content-Length, 0 without one, -1 chunked. */
long long hh_body_length(const struct hh *h);

#endif
