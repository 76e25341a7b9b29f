/*
 * chantool.c - a client of the BFIA channel API for the tests and benches
 * (libcurl easy: a separate program may block).  Bodies are built and
 * answers read with the gateway's own wire code (routes/chanwire.h).
 *
 *   chantool push  URL TOKEN SESSION TARGET TOPIC FILE [raw|json|proto]   -> code
 *   chantool pop   URL TOKEN SESSION PEER TOPIC OUT [raw|json|proto] [timeout_s] -> code
 *   chantool peek  URL TOKEN SESSION PEER TOPIC OUT [raw|json|proto]      -> code
 *   chantool release URL TOKEN SESSION TOPIC|- [raw|json|proto]          -> code
 *   chantool pushmany URL TOKEN SESSION TARGET TOPIC N SIZE               -> "ok N" | code at k
 *   chantool popmany  URL TOKEN SESSION PEER TOPIC N SIZE                 -> "ok N" | what broke
 *   chantool body push|encap json|proto TOPIC FILE                        -> body on stdout
 *   chantool answer raw|json|proto FILE                                   -> code [payload bytes]
 *   chantool batch OUT [SESSION SCOPE|- TOPIC FILE]...   (a batch body, container/chanbatch.h)
 *   chantool batchanswer FILE N                          -> whole code, then each message's code
 *   chantool benchpush URL TOKEN SESSION TARGET TOPIC N SIZE              -> seconds
 *   chantool benchpop  URL TOKEN SESSION PEER TOPIC N                     -> seconds p50_us p99_us
 *   chantool post URL N SIZE       (the baseline: plain POSTs)            -> seconds
 * The bench commands (benchpush, benchpop, post) use a minimal keep-alive
 * HTTP/1.1 client; CHANTOOL_CURL=1 makes them use libcurl.
 * URL is the gateway's base (http://127.0.0.1:PORT).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "container/chanbatch.h"
#include "gateway/json.h"
#include "routes/chanwire.h"

struct buf {
    char *p;
    size_t n, cap;
};

static size_t on_write(char *d, size_t sz, size_t nm, void *arg)
{
    struct buf *b = arg;
    if (b->n + sz * nm + 1 > b->cap) { /* doubling: a 100 MiB answer is not copied n^2 times */
        b->cap = (b->n + sz * nm + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, sz * nm);
    b->n += sz * nm;
    b->p[b->n] = 0;
    return sz * nm;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long l = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)l + 1);
    if (fread(p, 1, (size_t)l, f) != (size_t)l)
        exit(2);
    fclose(f);
    *n = (size_t)l;
    return p;
}

static int dialect_of(const char *s)
{
    if (!s || strcmp(s, "raw") == 0)
        return CHANWIRE_RAW;
    return strcmp(s, "json") == 0 ? CHANWIRE_JSON : CHANWIRE_PROTO;
}

static CURL *easy;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One call; the answer's code into code, payload into *pl (malloc'd or NULL). */
static int call(const char *url, const char *op, const char *query, const char *token,
                const char *session, const char *target, const char *topic, int d,
                const void *body, size_t blen, char code[32], char **pl, size_t *pll)
{
    char u[1024];
    snprintf(u, sizeof(u), "%s/v1/interconn/chan/%s%s", url, op, query ? query : "");
    struct curl_slist *h = NULL;
    char x[2048];
    snprintf(x, sizeof(x), "x-ptp-token: %s", token);
    h = curl_slist_append(h, x);
    snprintf(x, sizeof(x), "x-ptp-session-id: %s", session);
    h = curl_slist_append(h, x);
    if (target && *target && strcmp(target, "-") != 0) {
        snprintf(x, sizeof(x), "x-ptp-target-node-id: %s", target);
        h = curl_slist_append(h, x);
    }
    h = curl_slist_append(h, "x-ptp-trace-id: chantool");
    h = curl_slist_append(h, "x-ptp-tech-provider-code: chantool");
    h = curl_slist_append(h, "Expect:");
    void *b = (void *)body;
    size_t bl = blen;
    int op_kind = strcmp(op, "push") == 0 ? CHANWIRE_PUSH : -1;
    if (d == CHANWIRE_RAW) {
        snprintf(x, sizeof(x), "x-ptp-topic: %s", topic);
        h = curl_slist_append(h, x);
        h = curl_slist_append(h, "Content-Type: application/octet-stream");
    } else {
        h = curl_slist_append(h, d == CHANWIRE_JSON ? "Content-Type: application/json"
                                                    : "Content-Type: application/x-protobuf");
        if (op_kind == CHANWIRE_PUSH) {
            b = chanwire_build_push(d, topic, body, blen, &bl);
        } else if (d == CHANWIRE_JSON) {
            char *t = gw_xasprintf("{\"topic\":\"%s\"}", topic);
            b = t;
            bl = strlen(t);
        } else {
            /* PopInbound/PeekInbound/ReleaseInbound: field 1 = topic */
            size_t tl = strlen(topic);
            unsigned char *t = malloc(tl + 3);
            t[0] = 0x0a;
            t[1] = (unsigned char)tl;
            memcpy(t + 2, topic, tl);
            b = t;
            bl = tl + 2;
        }
    }
    struct buf rb = {0};
    curl_easy_setopt(easy, CURLOPT_URL, u);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, b);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bl);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &rb);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, 400L);
    CURLcode cc = curl_easy_perform(easy);
    curl_slist_free_all(h);
    if (b != body)
        free(b);
    if (cc != CURLE_OK) {
        snprintf(code, 32, "curl:%d", (int)cc);
        free(rb.p);
        return -1;
    }
    char msg[512];
    int rc = 0;
    if (d == CHANWIRE_RAW || d == CHANWIRE_PROTO) {
        /* read the payload with the generated decoders through a reply round */
        rc = chanwire_parse_answer(d == CHANWIRE_RAW ? CHANWIRE_RAW : CHANWIRE_PROTO, rb.p, rb.n,
                                   code, msg, sizeof(msg));
    } else {
        rc = chanwire_parse_answer(CHANWIRE_JSON, rb.p ? rb.p : "", rb.n, code, msg, sizeof(msg));
    }
    if (rc != 0)
        snprintf(code, 32, "bad-answer");
    if (pl) {
        *pl = NULL;
        *pll = 0;
        /* payload: reuse the request parser in reverse - a push body of the
         * same dialect carries "payload" the same way */
        if (rc == 0 && d == CHANWIRE_JSON) {
            struct chanwire_req r;
            struct gw_errbuf eb;
            if (chanwire_parse(CHANWIRE_JSON, CHANWIRE_PUSH, rb.p, rb.n, &r, &eb) == 0) {
                *pl = r.payload;
                *pll = r.len;
                r.payload = NULL;
                chanwire_req_cleanup(&r);
            }
        } else if (rc == 0) {
            /* TransportOutbound: A has payload in field 2, B in field 1 */
            int field = d == CHANWIRE_RAW ? 1 : 2;
            const unsigned char *p = (unsigned char *)rb.p, *e = p + rb.n;
            while (p < e) {
                unsigned long long key = 0, len = 0;
                int sh = 0;
                while (p < e && (*p & 0x80))
                    key |= (unsigned long long)(*p++ & 0x7f) << (sh += 7, sh - 7);
                key |= (unsigned long long)(*p++ & 0x7f) << sh;
                sh = 0;
                while (p < e && (*p & 0x80))
                    len |= (unsigned long long)(*p++ & 0x7f) << (sh += 7, sh - 7);
                len |= (unsigned long long)(*p++ & 0x7f) << sh;
                if ((int)(key >> 3) == field) {
                    *pl = malloc(len ? len : 1);
                    memcpy(*pl, p, len);
                    *pll = len;
                }
                p += len;
            }
        }
    }
    free(rb.p);
    return rc;
}

/* ---- a minimal HTTP/1.1 keep-alive client (the bench commands) ----------------
 * curl's per-request work (option handling, header lists, proxy look-ups)
 * cost the benchmark's stand-in containers as much CPU as the gateways they
 * measure on a 2-core machine.  This client writes a request with one writev
 * and reads the answer by Content-Length on one kept connection, as a lean
 * container client would.  CHANTOOL_CURL=1 makes the bench commands use
 * libcurl as before. */
struct rawc {
    char url[256];
    int fd;
    char host[128];
    int port;
    char *buf;
    size_t cap, have, used; /* used: the previous answer, dropped at the next call */
};

static int rawc_open(struct rawc *c, const char *url)
{
    snprintf(c->url, sizeof(c->url), "%s", url);
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    const char *colon = strchr(h, ':');
    if (!colon || (size_t)(colon - h) >= sizeof(c->host))
        return -1;
    memcpy(c->host, h, (size_t)(colon - h));
    c->host[colon - h] = '\0';
    c->port = atoi(colon + 1);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    if (c->fd < 0 || inet_pton(AF_INET, c->host, &sa.sin_addr) != 1 ||
        connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->have = c->used = 0;
    return 0;
}

static int rawc_fill(struct rawc *c, size_t want)
{
    if (want > c->cap) {
        c->cap = want * 2;
        c->buf = realloc(c->buf, c->cap);
    }
    ssize_t r = read(c->fd, c->buf + c->have, c->cap - c->have);
    if (r <= 0)
        return -1;
    c->have += (size_t)r;
    return 0;
}

/* POST path with extra header lines hdrs ("Name: v\r\n"...) and body; the
 * answer's body in *ans (valid until the next call). */
static int rawc_post(struct rawc *c, const char *path, const char *hdrs, const void *body,
                     size_t blen, const char **ans, size_t *alen)
{
    if (c->used) {
        memmove(c->buf, c->buf + c->used, c->have - c->used);
        c->have -= c->used;
        c->used = 0;
    }
    if (c->fd < 0 && rawc_open(c, c->url) != 0)
        return -1;
    char head[4096];
    int hl = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %zu\r\n%s\r\n", path,
                      c->host, c->port, blen, hdrs);
    if (hl <= 0 || (size_t)hl >= sizeof(head))
        return -1;
    struct iovec iov[2] = {{head, (size_t)hl}, {(void *)body, blen}};
    struct iovec *v = iov;
    int n = blen ? 2 : 1;
    while (n > 0) {
        ssize_t w = writev(c->fd, v, n);
        if (w < 0)
            return -1;
        while (n > 0 && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
    size_t hend = 0, clen = 0;
    for (;;) {
        char *e = c->have ? memmem(c->buf, c->have, "\r\n\r\n", 4) : NULL;
        if (e) {
            hend = (size_t)(e - c->buf) + 4;
            break;
        }
        if (rawc_fill(c, c->have + 4096) != 0)
            return -1;
    }
    bool close_after = false;
    for (char *l = c->buf; l < c->buf + hend;) {
        char *nl = memchr(l, '\n', (size_t)(c->buf + hend - l));
        if (!nl)
            break;
        if (strncasecmp(l, "Content-Length:", 15) == 0)
            clen = strtoul(l + 15, NULL, 10);
        else if (strncasecmp(l, "Connection: close", 17) == 0)
            close_after = true;
        l = nl + 1;
    }
    while (c->have < hend + clen)
        if (rawc_fill(c, hend + clen + 1) != 0)
            return -1;
    *ans = c->buf + hend;
    *alen = clen;
    c->used = hend + clen;
    if (close_after) {
        close(c->fd);
        c->fd = -1;
    }
    return 0;
}

/* The payload field of a raw-dialect TransportOutbound (field 1), in place. */
static void raw_payload(const char *body, size_t n, const char **pl, size_t *pll)
{
    const unsigned char *p = (const unsigned char *)body, *e = p + n;
    *pl = NULL;
    *pll = 0;
    while (p < e) {
        unsigned long long key = 0, len = 0;
        int sh = 0;
        while (p < e && (*p & 0x80))
            key |= (unsigned long long)(*p++ & 0x7f) << (sh += 7, sh - 7);
        if (p >= e)
            return;
        key |= (unsigned long long)(*p++ & 0x7f) << sh;
        if ((key & 7) != 2)
            return;
        sh = 0;
        while (p < e && (*p & 0x80))
            len |= (unsigned long long)(*p++ & 0x7f) << (sh += 7, sh - 7);
        if (p >= e)
            return;
        len |= (unsigned long long)(*p++ & 0x7f) << sh;
        if (len > (unsigned long long)(e - p))
            return;
        if ((key >> 3) == 1) {
            *pl = (const char *)p;
            *pll = len;
        }
        p += len;
    }
}

/* One raw-dialect call of the bench commands: code, payload in place. */
static int bench_call(struct rawc *rc, const char *op, const char *query, const char *token,
                      const char *session, const char *target, const char *topic,
                      const void *body, size_t blen, char code[32], const char **pl, size_t *pll)
{
    char path[256], h[2048];
    snprintf(path, sizeof(path), "/v1/interconn/chan/%s%s", op, query ? query : "");
    int n = snprintf(h, sizeof(h),
                     "x-ptp-token: %s\r\nx-ptp-session-id: %s\r\nx-ptp-trace-id: chantool\r\n"
                     "x-ptp-tech-provider-code: chantool\r\nx-ptp-topic: %s\r\n"
                     "Content-Type: application/octet-stream\r\n",
                     token, session, topic);
    if (target && *target && strcmp(target, "-") != 0)
        snprintf(h + n, sizeof(h) - (size_t)n, "x-ptp-target-node-id: %s\r\n", target);
    const char *ans;
    size_t al;
    if (rawc_post(rc, path, h, body, blen, &ans, &al) != 0) {
        snprintf(code, 32, "io");
        return -1;
    }
    char msg[512];
    if (chanwire_parse_answer(CHANWIRE_RAW, ans, al, code, msg, sizeof(msg)) != 0) {
        snprintf(code, 32, "bad-answer");
        return -1;
    }
    if (pl)
        raw_payload(ans, al, pl, pll);
    return 0;
}

int main(int argc, char **argv)
{
    json_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    easy = curl_easy_init();
    if (argc < 2)
        return 2;
    const char *cmd = argv[1];
    char code[32];
    if (strcmp(cmd, "push") == 0 && argc >= 8) {
        size_t n;
        char *data = slurp(argv[7], &n);
        call(argv[2], "push", NULL, argv[3], argv[4], argv[5], argv[6],
             dialect_of(argc > 8 ? argv[8] : NULL), data, n, code, NULL, NULL);
        printf("%s\n", code);
        free(data);
        return 0;
    }
    if ((strcmp(cmd, "pop") == 0 || strcmp(cmd, "peek") == 0) && argc >= 8) {
        char q[64] = "";
        if (argc > 9)
            snprintf(q, sizeof(q), "?timeout=%s", argv[9]);
        char *pl;
        size_t pll;
        call(argv[2], cmd, q, argv[3], argv[4], argv[5], argv[6],
             dialect_of(argc > 8 ? argv[8] : NULL), "", 0, code, &pl, &pll);
        FILE *f = fopen(argv[7], "wb");
        if (f) {
            if (pl)
                fwrite(pl, 1, pll, f);
            fclose(f);
        }
        printf("%s %zu\n", code, pl ? pll : (size_t)0);
        free(pl);
        return 0;
    }
    if (strcmp(cmd, "release") == 0 && argc >= 6) {
        int d = dialect_of(argc > 6 ? argv[6] : NULL);
        const char *topic = strcmp(argv[5], "-") == 0 ? "" : argv[5];
        if (d == CHANWIRE_RAW && !*topic)
            d = CHANWIRE_JSON; /* a whole-session release names no topic */
        call(argv[2], "release", NULL, argv[3], argv[4], "-", topic, d, "", 0, code, NULL, NULL);
        printf("%s\n", code);
        return 0;
    }
    if (strcmp(cmd, "pushmany") == 0 && argc >= 9) {
        long n = atol(argv[7]), size = atol(argv[8]);
        char *m = malloc((size_t)size + 32);
        for (long k = 0; k < n; k++) {
            memset(m, 'x', (size_t)size);
            int l = snprintf(m, (size_t)size + 32, "%ld|", k);
            m[l] = 'x';
            if (call(argv[2], "push", NULL, argv[3], argv[4], argv[5], argv[6], CHANWIRE_RAW, m,
                     (size_t)size, code, NULL, NULL) != 0 ||
                strcmp(code, CHAN_OK) != 0) {
                printf("%s at %ld\n", code, k);
                return 0;
            }
        }
        printf("ok %ld\n", n);
        return 0;
    }
    if (strcmp(cmd, "popmany") == 0 && argc >= 9) {
        long n = atol(argv[7]), size = atol(argv[8]);
        for (long k = 0; k < n; k++) {
            char *pl;
            size_t pll;
            if (call(argv[2], "pop", "?timeout=10", argv[3], argv[4], argv[5], argv[6],
                     CHANWIRE_RAW, "", 0, code, &pl, &pll) != 0 ||
                strcmp(code, CHAN_OK) != 0 || !pl) {
                printf("%s (%s) at %ld\n", code, pl ? "payload" : "no payload", k);
                return 0;
            }
            char want[32];
            int wl = snprintf(want, sizeof(want), "%ld|", k);
            if (pll != (size_t)size || memcmp(pl, want, (size_t)wl) != 0) {
                printf("out of order at %ld: %.20s\n", k, pl);
                return 0;
            }
            free(pl);
        }
        printf("ok %ld\n", n);
        return 0;
    }
    bool use_curl = getenv("CHANTOOL_CURL") && *getenv("CHANTOOL_CURL") == '1';
    struct rawc rc = {.fd = -1};
    if (strcmp(cmd, "benchpush") == 0 && argc >= 9) {
        long n = atol(argv[7]), size = atol(argv[8]);
        char *m = calloc(1, (size_t)size + 16);
        if (!use_curl && rawc_open(&rc, argv[2]) != 0) {
            printf("error connect\n");
            return 1;
        }
        double t0 = now_s();
        for (long k = 0; k < n; k++) {
            long long ns = (long long)(now_s() * 1e9);
            memcpy(m, &ns, sizeof(ns));
            int r = use_curl ? call(argv[2], "push", NULL, argv[3], argv[4], argv[5], argv[6],
                                    CHANWIRE_RAW, m, (size_t)size, code, NULL, NULL)
                             : bench_call(&rc, "push", NULL, argv[3], argv[4], argv[5], argv[6],
                                          m, (size_t)size, code, NULL, NULL);
            if (r != 0 || strcmp(code, CHAN_OK) != 0) {
                printf("error %s at %ld\n", code, k);
                return 1;
            }
        }
        printf("%.6f\n", now_s() - t0);
        return 0;
    }
    if (strcmp(cmd, "benchpop") == 0 && argc >= 8) {
        long n = atol(argv[7]);
        double *lat = calloc((size_t)n, sizeof(double));
        if (!use_curl && rawc_open(&rc, argv[2]) != 0) {
            printf("error connect\n");
            return 1;
        }
        double t0 = now_s();
        for (long k = 0; k < n; k++) {
            char *cpl = NULL;
            const char *pl = NULL;
            size_t pll = 0;
            int r = use_curl ? call(argv[2], "pop", "?timeout=30", argv[3], argv[4], argv[5],
                                    argv[6], CHANWIRE_RAW, "", 0, code, &cpl, &pll)
                             : bench_call(&rc, "pop", "?timeout=30", argv[3], argv[4], argv[5],
                                          argv[6], "", 0, code, &pl, &pll);
            if (cpl)
                pl = cpl;
            if (r != 0 || strcmp(code, CHAN_OK) != 0 || !pl || pll < 8) {
                printf("error %s at %ld\n", code, k);
                return 1;
            }
            long long ns;
            memcpy(&ns, pl, sizeof(ns));
            lat[k] = now_s() * 1e9 - (double)ns;
            free(cpl);
        }
        double el = now_s() - t0;
        qsort(lat, (size_t)n, sizeof(double), cmp_d);
        printf("%.6f %.0f %.0f\n", el, lat[n / 2] / 1000, lat[n * 99 / 100] / 1000);
        return 0;
    }
    if (strcmp(cmd, "post") == 0 && argc >= 5) {
        long n = atol(argv[3]), size = atol(argv[4]);
        char *m = calloc(1, (size_t)size + 1);
        struct curl_slist *h = curl_slist_append(NULL, "Expect:");
        h = curl_slist_append(h, "Content-Type: application/octet-stream");
        if (!use_curl && rawc_open(&rc, argv[2]) != 0)
            return 1;
        double t0 = now_s();
        for (long k = 0; k < n; k++) {
            if (!use_curl) {
                const char *ans;
                size_t al;
                if (rawc_post(&rc, "/", "Content-Type: application/octet-stream\r\n", m,
                              (size_t)size, &ans, &al) != 0)
                    return 1;
                continue;
            }
            struct buf rb = {0};
            curl_easy_setopt(easy, CURLOPT_URL, argv[2]);
            curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
            curl_easy_setopt(easy, CURLOPT_POSTFIELDS, m);
            curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
            curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
            curl_easy_setopt(easy, CURLOPT_WRITEDATA, &rb);
            if (curl_easy_perform(easy) != CURLE_OK)
                return 1;
            free(rb.p);
        }
        printf("%.6f\n", now_s() - t0);
        return 0;
    }
    if (strcmp(cmd, "body") == 0 && argc >= 6) {
        size_t n, bl;
        char *data = slurp(argv[5], &n);
        void *b;
        if (strcmp(argv[2], "encap") == 0) {
            if (strcmp(argv[3], "json") == 0) {
                size_t il;
                void *inner = chanwire_build_push(CHANWIRE_JSON, argv[4], data, n, &il);
                char *b64 = chanwire_b64_encode(inner, il, NULL);
                b = gw_xasprintf("{\"metadata\":{},\"payload\":\"%s\"}", b64);
                bl = strlen(b);
                free(inner);
                free(b64);
            } else {
                b = chanwire_build_encap(NULL, argv[4], data, n, &bl);
            }
        } else {
            b = chanwire_build_push(dialect_of(argv[3]), argv[4], data, n, &bl);
        }
        fwrite(b, 1, bl, stdout);
        free(b);
        free(data);
        return 0;
    }
    if (strcmp(cmd, "batch") == 0 && argc >= 3 && (argc - 3) % 4 == 0) {
        size_t n = (size_t)(argc - 3) / 4, bl;
        struct chanbatch_out *m = calloc(n ? n : 1, sizeof(*m));
        for (size_t i = 0; i < n; i++) {
            char **a = argv + 3 + 4 * i;
            m[i] = (struct chanbatch_out){a[0], strcmp(a[1], "-") == 0 ? "" : a[1], a[2], 5000,
                                          NULL, 0};
            m[i].payload = slurp(a[3], &m[i].len);
        }
        void *b = chanbatch_encode(m, n, &bl);
        FILE *f = fopen(argv[2], "wb");
        if (!f || fwrite(b, 1, bl, f) != bl || fclose(f) != 0)
            return 2;
        for (size_t i = 0; i < n; i++)
            free((void *)m[i].payload);
        free(m);
        free(b);
        return 0;
    }
    if (strcmp(cmd, "batchanswer") == 0 && argc >= 4) {
        size_t n, k = (size_t)atol(argv[3]);
        char *data = slurp(argv[2], &n);
        struct chanbatch_res whole, *res = calloc(k ? k : 1, sizeof(*res));
        if (chanbatch_parse_answer(data, n, k, &whole, res) != 0) {
            printf("bad-answer\n");
        } else {
            printf("%s", whole.code);
            for (size_t i = 0; strcmp(whole.code, CHAN_OK) == 0 && i < k; i++)
                printf(" %s", res[i].code);
            printf("\n");
        }
        free(res);
        free(data);
        return 0;
    }
    if (strcmp(cmd, "answer") == 0 && argc >= 4) {
        size_t n;
        char *data = slurp(argv[3], &n);
        char msg[512];
        if (chanwire_parse_answer(dialect_of(argv[2]), data, n, code, msg, sizeof(msg)) != 0)
            printf("bad-answer\n");
        else
            printf("%s\n", code);
        free(data);
        return 0;
    }
    fprintf(stderr, "usage: see the header of test/support/chantool.c\n");
    return 2;
}
