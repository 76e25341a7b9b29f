/*
 * psi_http.h - a small blocking HTTP/1.1 client for the component: one
 * keep-alive connection per object, numeric addresses only (a static
 * binary cannot resolve names; the launcher passes IP addresses), bounded
 * response sizes and deadlines on every step.  Used for the transport
 * (dialect B) and for the status callback.
 *
 * Threads: one connection object per thread.
 */
#ifndef PSI_HTTP_H
#define PSI_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct psi_http_resp {
    int status;          /* e.g. 200 */
    unsigned char *body; /* malloc'd (NUL-terminated for convenience), owned by the holder */
    size_t len;
    bool close;          /* the server ends the connection after this answer */
};

/** Free the body; NULL-safe. */
void psi_http_resp_cleanup(struct psi_http_resp *r);

/** Parse an answer from the len bytes at buf (pure; for the client and the
 * unit tests).  eof says the peer closed after those bytes.  Handles
 * Content-Length, chunked transfer coding and read-until-close bodies,
 * and 1xx interim answers.  Returns 1 with *r filled (body copied) and
 * *used the bytes consumed, 0 when more bytes are needed, or -1 when the
 * answer is malformed or its body exceeds max_body. */
int psi_http_parse(const unsigned char *buf, size_t len, bool eof, size_t max_body,
                   struct psi_http_resp *r, size_t *used);

struct psi_http_conn;

/** A connection (opened lazily) to address: "host:port", "http://host:port"
 * or "http://host:port/path", host an IPv4 literal, a bracketed IPv6
 * literal or "localhost"; port defaults to 80.  https is refused.  Returns
 * NULL with the reason in err. */
struct psi_http_conn *psi_http_conn_new(const char *address, char *err, size_t errlen);

/** NULL-safe; closes the socket. */
void psi_http_conn_free(struct psi_http_conn *c);

/** "host:port" as given, for the Host header. */
const char *psi_http_conn_hostport(const struct psi_http_conn *c);

/** The path of the address ("" when it had none). */
const char *psi_http_conn_path(const struct psi_http_conn *c);

/** Send head (the request line and headers, ending with an empty line; the
 * caller writes Content-Length) and blen bytes of body, and read the
 * answer within timeout_ms.  A kept-alive connection the server closed
 * meanwhile is reopened once.  Returns 0 with *r filled (caller cleans up),
 * or -1 with the reason in err (connect, write, read, timeout, malformed
 * or oversized answer); the connection is then closed. */
int psi_http_request(struct psi_http_conn *c, const char *head, const void *body, size_t blen,
                     int timeout_ms, size_t max_body, struct psi_http_resp *r, char *err,
                     size_t errlen);

/** True when s may go into a header value (no CR, LF or NUL). */
bool psi_http_header_safe(const char *s);

#endif
