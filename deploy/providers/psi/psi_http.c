/*
 * psi_http.c - blocking HTTP/1.1 client over a socket, with deadlines.
 */
#include "psi_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (64 * 1024)

struct psi_http_conn {
    int fd;
    struct sockaddr_storage sa;
    socklen_t salen;
    char hostport[300];
    char path[1024];
};

void psi_http_resp_cleanup(struct psi_http_resp *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

bool psi_http_header_safe(const char *s)
{
    for (; s && *s; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return s != NULL;
}

/* ---- parser ----------------------------------------------------------------------- */

static const unsigned char *find_crlf2(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '\r' && b[i + 3] == '\n')
            return b + i;
    return NULL;
}

/* One header line: name and value, trimmed. */
static int header_is(const char *line, size_t n, const char *name, const char **val, size_t *vlen)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return 0;
    const char *v = line + nl + 1;
    const char *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *val = v;
    *vlen = (size_t)(e - v);
    return 1;
}

static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++)
        if (strncasecmp(v + i, tok, tl) == 0)
            return 1;
    return 0;
}

/* Decode a chunked body starting at b (n bytes available).  Returns 1 with
 * the decoded body (malloc'd) and the bytes used, 0 for more, -1 bad. */
static int dechunk(const unsigned char *b, size_t n, size_t max_body, unsigned char **out,
                   size_t *olen, size_t *used)
{
    size_t pos = 0, total = 0, cap = 0;
    unsigned char *body = NULL;
    for (;;) {
        /* size line */
        size_t i = pos;
        while (i + 1 < n && !(b[i] == '\r' && b[i + 1] == '\n'))
            i++;
        if (i + 1 >= n) {
            free(body);
            return 0;
        }
        uint64_t sz = 0;
        size_t d = pos;
        int digits = 0;
        for (; d < i; d++) {
            int c = b[d], v;
            if (c >= '0' && c <= '9')
                v = c - '0';
            else if (c >= 'a' && c <= 'f')
                v = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F')
                v = c - 'A' + 10;
            else
                break;
            if (++digits > 15) {
                free(body);
                return -1;
            }
            sz = sz * 16 + (uint64_t)v;
        }
        if (!digits || (d < i && b[d] != ';' && b[d] != ' ')) {
            free(body);
            return -1;
        }
        pos = i + 2;
        if (sz == 0) {
            /* trailers up to an empty line */
            for (;;) {
                size_t j = pos;
                while (j + 1 < n && !(b[j] == '\r' && b[j + 1] == '\n'))
                    j++;
                if (j + 1 >= n) {
                    free(body);
                    return 0;
                }
                if (j == pos) {
                    *used = j + 2;
                    *out = body ? body : calloc(1, 1);
                    *olen = total;
                    if (!*out)
                        return -1;
                    (*out)[total] = '\0';
                    return 1;
                }
                pos = j + 2;
            }
        }
        if (sz > max_body || total + sz > max_body) {
            free(body);
            return -1;
        }
        if (n - pos < sz + 2) {
            free(body);
            return 0;
        }
        if (total + sz + 1 > cap) {
            cap = (total + sz + 1) * 2;
            unsigned char *nb = realloc(body, cap);
            if (!nb) {
                free(body);
                return -1;
            }
            body = nb;
        }
        memcpy(body + total, b + pos, sz);
        total += sz;
        pos += sz;
        if (b[pos] != '\r' || b[pos + 1] != '\n') {
            free(body);
            return -1;
        }
        pos += 2;
    }
}

int psi_http_parse(const unsigned char *buf, size_t len, bool eof, size_t max_body,
                   struct psi_http_resp *r, size_t *used)
{
    size_t base = 0;
    memset(r, 0, sizeof(*r));
    for (;;) {
        const unsigned char *b = buf + base;
        size_t n = len - base;
        const unsigned char *end = find_crlf2(b, n < HEAD_MAX ? n : HEAD_MAX);
        if (!end)
            return n >= HEAD_MAX ? -1 : 0;
        size_t hl = (size_t)(end - b) + 4;
        /* status line */
        const char *s = (const char *)b;
        if (hl < 16 || strncmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ')
            return -1;
        int st = 0;
        for (int i = 9; i < 12; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            st = st * 10 + (s[i] - '0');
        }
        if (s[12] != ' ' && s[12] != '\r')
            return -1;
        bool http10 = s[7] == '0';
        /* headers */
        long long clen = -1;
        bool chunked = false, close = http10, keep = false;
        const char *hend = (const char *)end;
        const char *line = s;
        while (line < hend && !(line[0] == '\r' && line[1] == '\n'))
            line++;
        line += 2;
        while (line < hend) {
            const char *le = line;
            while (le < hend && !(le[0] == '\r' && le[1] == '\n'))
                le++;
            const char *v;
            size_t vl;
            if (header_is(line, (size_t)(le - line), "Content-Length", &v, &vl)) {
                if (vl == 0 || vl > 15)
                    return -1;
                long long x = 0;
                for (size_t i = 0; i < vl; i++) {
                    if (v[i] < '0' || v[i] > '9')
                        return -1;
                    x = x * 10 + (v[i] - '0');
                }
                if (clen >= 0 && clen != x)
                    return -1;
                clen = x;
            } else if (header_is(line, (size_t)(le - line), "Transfer-Encoding", &v, &vl)) {
                if (has_token(v, vl, "chunked"))
                    chunked = true;
            } else if (header_is(line, (size_t)(le - line), "Connection", &v, &vl)) {
                if (has_token(v, vl, "close"))
                    close = true;
                if (has_token(v, vl, "keep-alive"))
                    keep = true;
            }
            line = le + 2;
        }
        if (http10 && keep && !chunked)
            close = false;
        if (st >= 100 && st < 200) {
            base += hl; /* an interim answer: the real one follows */
            continue;
        }
        r->status = st;
        r->close = close;
        const unsigned char *body = b + hl;
        size_t avail = n - hl;
        if (st == 204 || st == 304) {
            r->body = calloc(1, 1);
            if (!r->body)
                return -1;
            *used = base + hl;
            return 1;
        }
        if (chunked) {
            size_t bu = 0;
            int rc = dechunk(body, avail, max_body, &r->body, &r->len, &bu);
            if (rc == 1)
                *used = base + hl + bu;
            return rc == 0 && eof ? -1 : rc;
        }
        if (clen >= 0) {
            if ((unsigned long long)clen > max_body)
                return -1;
            if (avail < (size_t)clen)
                return eof ? -1 : 0;
            r->body = malloc((size_t)clen + 1);
            if (!r->body)
                return -1;
            memcpy(r->body, body, (size_t)clen);
            r->body[clen] = '\0';
            r->len = (size_t)clen;
            *used = base + hl + (size_t)clen;
            return 1;
        }
        /* no length: the body runs to the end of the connection */
        if (avail > max_body)
            return -1;
        if (!eof)
            return 0;
        r->body = malloc(avail + 1);
        if (!r->body)
            return -1;
        memcpy(r->body, body, avail);
        r->body[avail] = '\0';
        r->len = avail;
        r->close = true;
        *used = len;
        return 1;
    }
}

/* ---- connection ---------------------------------------------------------------------- */

struct psi_http_conn *psi_http_conn_new(const char *address, char *err, size_t errlen)
{
    if (!address || !*address) {
        snprintf(err, errlen, "empty address");
        return NULL;
    }
    const char *a = address;
    if (strncasecmp(a, "https://", 8) == 0) {
        snprintf(err, errlen, "'%s': https is not supported by this component", address);
        return NULL;
    }
    if (strncasecmp(a, "http://", 7) == 0)
        a += 7;
    struct psi_http_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = -1;
    const char *slash = strchr(a, '/');
    size_t hpl = slash ? (size_t)(slash - a) : strlen(a);
    if (hpl == 0 || hpl >= sizeof(c->hostport) || (slash && strlen(slash) >= sizeof(c->path)))
        goto bad;
    memcpy(c->hostport, a, hpl);
    c->hostport[hpl] = '\0';
    if (slash)
        snprintf(c->path, sizeof(c->path), "%s", slash);
    char host[256];
    int port = 80;
    const char *hp = c->hostport, *portp = NULL;
    if (hp[0] == '[') {
        const char *rb = strchr(hp, ']');
        if (!rb || (size_t)(rb - hp - 1) >= sizeof(host))
            goto bad;
        memcpy(host, hp + 1, (size_t)(rb - hp - 1));
        host[rb - hp - 1] = '\0';
        if (rb[1] == ':')
            portp = rb + 2;
        else if (rb[1])
            goto bad;
    } else {
        const char *colon = strrchr(hp, ':');
        size_t l = colon ? (size_t)(colon - hp) : strlen(hp);
        if (l == 0 || l >= sizeof(host))
            goto bad;
        memcpy(host, hp, l);
        host[l] = '\0';
        if (colon)
            portp = colon + 1;
    }
    if (portp) {
        char *end;
        long p = strtol(portp, &end, 10);
        if (!*portp || *end || p < 1 || p > 65535)
            goto bad;
        port = (int)p;
    }
    if (strcasecmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    memset(&c->sa, 0, sizeof(c->sa));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&c->sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&c->sa;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        c->salen = sizeof(*s4);
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        c->salen = sizeof(*s6);
    } else {
        snprintf(err, errlen, "'%s': the host must be an IP address (this static binary resolves "
                 "no names)", address);
        free(c);
        return NULL;
    }
    return c;
bad:
    snprintf(err, errlen, "'%s' is not host:port or http://host:port[/path]", address);
    free(c);
    return NULL;
}

void psi_http_conn_free(struct psi_http_conn *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

const char *psi_http_conn_hostport(const struct psi_http_conn *c) { return c->hostport; }
const char *psi_http_conn_path(const struct psi_http_conn *c) { return c->path; }

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int wait_fd(int fd, short ev, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, ev, 0};
        int n = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static void conn_close(struct psi_http_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int conn_open(struct psi_http_conn *c, long long deadline, char *err, size_t errlen)
{
    int fd = socket(c->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */
    if (connect(fd, (struct sockaddr *)&c->sa, c->salen) != 0) {
        if (errno != EINPROGRESS) {
            snprintf(err, errlen, "connect %s: %s", c->hostport, strerror(errno));
            close(fd);
            return -1;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (wait_fd(fd, POLLOUT, deadline) != 0) {
            snprintf(err, errlen, "connect %s: timed out", c->hostport);
            close(fd);
            return -1;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
            snprintf(err, errlen, "connect %s: %s", c->hostport, strerror(soerr ? soerr : errno));
            close(fd);
            return -1;
        }
    }
    c->fd = fd;
    return 0;
}

/* 0 sent, -1 failed (err set). */
static int send_all(int fd, const char *head, const void *body, size_t blen, long long deadline,
                    char *err, size_t errlen)
{
    struct iovec iov[2] = {{(void *)(uintptr_t)head, strlen(head)},
                           {(void *)(uintptr_t)body, body ? blen : 0}};
    int idx = 0;
    while (idx < 2) {
        if (iov[idx].iov_len == 0) {
            idx++;
            continue;
        }
        struct msghdr mh = {0};
        mh.msg_iov = iov + idx;
        mh.msg_iovlen = (size_t)(2 - idx);
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_fd(fd, POLLOUT, deadline) != 0) {
                    snprintf(err, errlen, "write: timed out");
                    return -1;
                }
                continue;
            }
            snprintf(err, errlen, "write: %s", strerror(errno));
            return -1;
        }
        size_t left = (size_t)n;
        while (left && idx < 2) {
            size_t take = left < iov[idx].iov_len ? left : iov[idx].iov_len;
            iov[idx].iov_base = (char *)iov[idx].iov_base + take;
            iov[idx].iov_len -= take;
            left -= take;
            if (iov[idx].iov_len == 0)
                idx++;
        }
    }
    return 0;
}

/* One attempt.  Returns 0, -1 failed, -2 failed before any answer byte on a
 * reused connection (worth one retry on a fresh one). */
static int attempt(struct psi_http_conn *c, bool reused, const char *head, const void *body,
                   size_t blen, long long deadline, size_t max_body, struct psi_http_resp *r,
                   char *err, size_t errlen)
{
    if (send_all(c->fd, head, body, blen, deadline, err, errlen) != 0)
        return reused ? -2 : -1;
    size_t cap = 16384, len = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (;;) {
        if (len == cap) {
            if (cap > max_body + HEAD_MAX + 65536) {
                free(buf);
                snprintf(err, errlen, "answer larger than %zu bytes", max_body);
                return -1;
            }
            cap *= 2;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            buf = nb;
        }
        ssize_t n = recv(c->fd, buf + len, cap - len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (wait_fd(c->fd, POLLIN, deadline) != 0) {
                free(buf);
                snprintf(err, errlen, "read: timed out");
                return -1;
            }
            continue;
        }
        if (n < 0) {
            int e = errno;
            free(buf);
            snprintf(err, errlen, "read: %s", strerror(e));
            return reused && len == 0 ? -2 : -1;
        }
        if (n == 0 && len == 0) {
            free(buf);
            snprintf(err, errlen, "read: connection closed without an answer");
            return reused ? -2 : -1;
        }
        len += (size_t)n;
        size_t used = 0;
        int pr = psi_http_parse(buf, len, n == 0, max_body, r, &used);
        if (pr == 1) {
            free(buf);
            if (r->close || used != len)
                conn_close(c);
            return 0;
        }
        if (pr < 0 || n == 0) {
            free(buf);
            snprintf(err, errlen, pr < 0 ? "malformed or oversized answer"
                                         : "connection closed mid-answer");
            return -1;
        }
    }
}

int psi_http_request(struct psi_http_conn *c, const char *head, const void *body, size_t blen,
                     int timeout_ms, size_t max_body, struct psi_http_resp *r, char *err,
                     size_t errlen)
{
    long long deadline = now_ms() + timeout_ms;
    memset(r, 0, sizeof(*r));
    for (int round = 0; round < 2; round++) {
        bool reused = c->fd >= 0;
        if (!reused && conn_open(c, deadline, err, errlen) != 0)
            return -1;
        int rc = attempt(c, reused, head, body, blen, deadline, max_body, r, err, errlen);
        if (rc == 0)
            return 0;
        conn_close(c);
        if (rc != -2)
            return -1;
    }
    return -1;
}
