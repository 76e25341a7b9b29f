/*
 * httphead.c - strict HTTP/1.x request head checker (see httphead.h).
 *
 * A byte-at-a-time state machine, so a head may arrive in any number of
 * pieces and nothing is buffered here: the caller keeps the bytes (conn.c
 * holds a partial head back from evhttp until it is complete and checked).
 */
#include "httphead.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum {
    S_METHOD,
    S_TARGET,
    S_VERSION,
    S_RL_LF,   /* after the CR of the request line */
    S_LINE,    /* start of a field line, or of the empty line */
    S_NAME,
    S_VALUE,
    S_VAL_LF,  /* after the CR of a field line */
    S_END_LF,  /* after the CR of the empty line */
};

enum { F_OTHER, F_CL, F_TE, F_HOST };

#define METHOD_MAX 32

static bool tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

void hh_init(struct hh *h)
{
    memset(h, 0, sizeof(*h));
    h->st = S_METHOD;
}

static enum hh_verdict bad(struct hh *h, const char *why)
{
    h->why = why;
    h->status = 400;
    return HH_BAD;
}

/* The field's name as a client would recognise it. */
static const char *field_name(const struct hh *h)
{
    switch (h->field) {
    case F_CL: return "Content-Length";
    case F_TE: return "Transfer-Encoding";
    case F_HOST: return "Host";
    default: return h->name;
    }
}

static enum hh_verdict bad_field(struct hh *h, const char *what)
{
    snprintf(h->msg, sizeof(h->msg), "header %s%s: %s", field_name(h), h->name_long ? "..." : "",
             what);
    return bad(h, h->msg);
}

static enum hh_verdict field_done(struct hh *h)
{
    switch (h->field) {
    case F_CL: {
        if (h->val_long || h->val_len == 0 || h->val_len > 18)
            return bad(h, "header Content-Length: expected a decimal number of at most 18 digits");
        long long v = 0;
        for (size_t i = 0; i < h->val_len; i++) {
            if (h->val[i] < '0' || h->val[i] > '9')
                return bad(h, "header Content-Length: expected digits only (no sign, no list)");
            v = v * 10 + (h->val[i] - '0');
        }
        if (h->has_cl && v != h->cl)
            return bad(h, "header Content-Length: given twice with different values");
        h->has_cl = true;
        h->cl = v;
        break;
    }
    case F_TE:
        if (++h->nte > 1)
            return bad(h, "header Transfer-Encoding: given more than once");
        if (h->val_long || h->val_len != 7 || strncasecmp(h->val, "chunked", 7) != 0)
            return bad(h, "header Transfer-Encoding: only \"chunked\" is accepted");
        h->chunked = true;
        break;
    case F_HOST:
        if (++h->nhost > 1)
            return bad(h, "header Host: given more than once");
        break;
    default:
        break;
    }
    return HH_MORE;
}

static enum hh_verdict head_done(struct hh *h)
{
    if (h->chunked && h->has_cl)
        return bad(h, "headers Content-Length and Transfer-Encoding together: the framing is "
                      "ambiguous");
    if (h->chunked && h->http10)
        return bad(h, "header Transfer-Encoding: not allowed in an HTTP/1.0 request");
    /* evhttp reads no body after HEAD or TRACE: one announced there would
     * be parsed as the next request. */
    if ((h->chunked || h->cl > 0) &&
        (strcmp(h->method, "HEAD") == 0 || strcmp(h->method, "TRACE") == 0))
        return bad(h, "a HEAD or TRACE request cannot carry a body");
    return HH_DONE;
}

/* One byte of a value: kept (OWS-trimmed) only for the fields we read. */
static void value_byte(struct hh *h, unsigned char c)
{
    if (h->field == F_OTHER)
        return;
    if (c == ' ' || c == '\t') {
        if (h->val_len > 0)
            h->val_ws++; /* inside the value, or trailing: known at the next byte */
        return;
    }
    while (h->val_ws > 0) {
        if (h->val_len + 1 >= sizeof(h->val)) {
            h->val_long = true;
            break;
        }
        h->val[h->val_len++] = ' ';
        h->val_ws--;
    }
    h->val_ws = 0;
    if (h->val_len + 1 >= sizeof(h->val)) {
        h->val_long = true;
        return;
    }
    h->val[h->val_len++] = (char)c;
    h->val[h->val_len] = '\0';
}

static enum hh_verdict step(struct hh *h, unsigned char c)
{
    switch (h->st) {
    case S_METHOD:
        if (tchar(c)) {
            if (h->tok < sizeof(h->method) - 1) {
                h->method[h->tok] = (char)c;
                h->method[h->tok + 1] = '\0';
            }
            if (++h->tok > METHOD_MAX)
                return bad(h, "request line: method longer than 32 characters");
            return HH_MORE;
        }
        if (c == ' ' && h->tok > 0) {
            h->st = S_TARGET;
            h->tok = 0;
            return HH_MORE;
        }
        if ((c == '\r' || c == '\n') && h->tok == 0)
            return bad(h, "request line: empty (no request before the line end)");
        return bad(h, "request line: expected METHOD SP target SP HTTP/1.1, the method is not a "
                      "token");
    case S_TARGET:
        if (c > ' ' && c < 0x7f) {
            h->tok++;
            return HH_MORE;
        }
        if (c == ' ' && h->tok > 0) {
            h->st = S_VERSION;
            h->tok = 0;
            return HH_MORE;
        }
        return bad(h, "request line: the target is empty or has a space, control or non-ASCII "
                      "byte (percent-encode it)");
    case S_VERSION:
        if (c == '\r') {
            h->ver[h->tok] = '\0';
            if (strcmp(h->ver, "HTTP/1.1") == 0)
                h->http10 = false;
            else if (strcmp(h->ver, "HTTP/1.0") == 0)
                h->http10 = true;
            else
                return bad(h, "request line: the version is not HTTP/1.0 or HTTP/1.1");
            h->st = S_RL_LF;
            return HH_MORE;
        }
        if (c == '\n')
            return bad(h, "request line: not ended by CRLF");
        if (h->tok >= 8)
            return bad(h, "request line: the version is not HTTP/1.0 or HTTP/1.1");
        h->ver[h->tok++] = (char)c;
        return HH_MORE;
    case S_RL_LF:
    case S_VAL_LF:
    case S_END_LF:
        if (c != '\n')
            return bad(h, "a bare CR (not followed by LF) in the head");
        if (h->st == S_RL_LF) {
            h->st = S_LINE;
            return HH_MORE;
        }
        if (h->st == S_VAL_LF) {
            h->st = S_LINE;
            return field_done(h);
        }
        return head_done(h);
    case S_LINE:
        if (c == '\r') {
            h->st = S_END_LF;
            return HH_MORE;
        }
        if (c == ' ' || c == '\t')
            return bad(h, "header: a line starting with whitespace (obs-fold line folding is not "
                          "accepted)");
        if (c == '\n')
            return bad(h, "header: a line not ended by CRLF");
        if (!tchar(c))
            return bad(h, "header: the field name is empty or not a token");
        h->st = S_NAME;
        h->field = F_OTHER;
        h->name_long = false;
        h->name[0] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        h->name[1] = '\0';
        h->tok = 1;
        return HH_MORE;
    case S_NAME:
        if (tchar(c)) {
            if (h->tok + 1 < sizeof(h->name)) {
                h->name[h->tok++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
                h->name[h->tok] = '\0';
            } else {
                h->name_long = true;
            }
            return HH_MORE;
        }
        if (!h->name_long) {
            if (strcmp(h->name, "content-length") == 0)
                h->field = F_CL;
            else if (strcmp(h->name, "transfer-encoding") == 0)
                h->field = F_TE;
            else if (strcmp(h->name, "host") == 0)
                h->field = F_HOST;
        }
        if (c == ':') {
            h->st = S_VALUE;
            h->val_len = 0;
            h->val_ws = 0;
            h->val_long = false;
            h->val[0] = '\0';
            return HH_MORE;
        }
        if (c == ' ' || c == '\t')
            return bad_field(h, "whitespace between the field name and the colon");
        if (c == '\r' || c == '\n')
            return bad_field(h, "no colon after the field name");
        return bad(h, "header: the field name is not a token");
    case S_VALUE:
        if (c == '\r') {
            h->st = S_VAL_LF;
            return HH_MORE;
        }
        if (c == '\n')
            return bad_field(h, "a line not ended by CRLF");
        if (c != '\t' && (c < ' ' || c == 0x7f))
            return bad_field(h, "a control character in the value");
        value_byte(h, c);
        return HH_MORE;
    default:
        return bad(h, "request head: internal scanner state");
    }
}

enum hh_verdict hh_feed(struct hh *h, const char *p, size_t n, size_t max, size_t *used)
{
    *used = 0;
    for (size_t i = 0; i < n; i++) {
        if (++h->len > max) {
            *used = i; /* the bytes taken before the one over the cap */
            h->why = "request head larger than http.header_max";
            h->status = 431;
            return HH_BAD;
        }
        enum hh_verdict v = step(h, (unsigned char)p[i]);
        if (v != HH_MORE) {
            *used = v == HH_DONE ? i + 1 : i;
            return v;
        }
    }
    *used = n;
    return HH_MORE;
}

long long hh_body_length(const struct hh *h)
{
    if (h->chunked)
        return -1;
    return h->has_cl ? h->cl : 0;
}
