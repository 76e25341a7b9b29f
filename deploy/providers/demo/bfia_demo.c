/*
 * bfia_demo.c - the component side of the BFIA container contract, as a
 * small static program for the demo provider image "bfia-demo".
 *
 * Components (runtime.component.name):
 *   hash_ids   reads input "data" (CSV, first column is the id), normalises
 *              each id (trim, lower-case), salts and hashes it with SHA-256,
 *              writes output "hashed" as CSV "id_hash,<other columns>".  Both
 *              parties with the same salt get comparable hashes: the first
 *              step of a hashed-ID intersection.
 *   col_stats  reads input "data" (CSV with a header), writes output
 *              "report": JSON with count/min/max/mean of each numeric column.
 *   joint_stats  sends its input "report" to every other party through the
 *              gateway's transport layer (system.transport, the channel API
 *              in the SecretFlow/Kuscia dialect) and writes output "joint":
 *              every party's statistics side by side.
 *   chan_probe (tests) sends `count` messages of `size` bytes to every other
 *              party and checks what it receives arrives whole and in order.
 *
 * Contract (spec bfia-control-layer.md §6): configuration comes only from
 * environment variables system.*, config.*, runtime.component.*; inputs and
 * outputs are {"namespace","name"} addresses under system.storage
 * (file:///root -> root/<namespace>/<name>/data); status is reported once to
 * system.callback and the exit code is the outcome.
 *
 * Test switches (runtime.component.parameter.*): fail=true exits 3 after
 * reporting FAILED, sleep_ms=N sleeps first, alloc_mb=N touches N MiB (for
 * OOM tests), no_callback=true skips the report, env_token=true reports with
 * config.attest.token instead of the token file, exit_code=N forces an exit
 * status without reporting, attest_audience=NODE asks the gateway on the
 * task socket (system.attest) for a presentation token for NODE and stores
 * the answer in <storage>/attest-probe/<task_id>.<self_role>.json.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- SHA-256 (FIPS 180-4), small and self-contained for a static binary ---- */
struct sha256 {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t n;
};

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(struct sha256 *s, const unsigned char *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, h;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6],
    h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e, s->h[5] += f,
        s->h[6] += g, s->h[7] += h;
}

static void sha_init(struct sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof(iv));
    s->len = 0;
    s->n = 0;
}

static void sha_update(struct sha256 *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    s->len += len;
    while (len--) {
        s->buf[s->n++] = *p++;
        if (s->n == 64) {
            sha_block(s, s->buf);
            s->n = 0;
        }
    }
}

static void sha_hex(struct sha256 *s, char out[65])
{
    uint64_t bits = s->len * 8;
    unsigned char pad = 0x80;
    sha_update(s, &pad, 1);
    pad = 0;
    while (s->n != 56)
        sha_update(s, &pad, 1);
    unsigned char L[8];
    for (int i = 0; i < 8; i++)
        L[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha_update(s, L, 8);
    for (int i = 0; i < 8; i++)
        snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

/* ---- environment and addresses ------------------------------------------ */
static const char *env(const char *key)
{
    const char *v = getenv(key);
    return v ? v : "";
}

static const char *param(const char *name)
{
    char key[256];
    snprintf(key, sizeof(key), "runtime.component.parameter.%s", name);
    return getenv(key);
}

static int param_true(const char *name)
{
    const char *v = param(name);
    return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Pull "key":"value" out of a flat JSON object (addresses are tiny and
 * written by the launcher; a full parser would be overkill here). */
static int json_field(const char *json, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        return -1;
    p = strchr(p + strlen(pat), ':');
    if (!p)
        return -1;
    p++;
    while (*p == ' ')
        p++;
    if (*p != '"')
        return -1;
    p++;
    size_t n = 0;
    while (*p && *p != '"' && n + 1 < cap)
        out[n++] = *p++;
    out[n] = '\0';
    return *p == '"' ? 0 : -1;
}

static int safe_part(const char *s)
{
    if (!*s || s[0] == '.')
        return 0;
    for (; *s; s++)
        if (*s == '/' || *s == '\\')
            return 0;
    return 1;
}

/* Path of an input or output address under file:// storage. */
static int address_path(const char *kind, const char *name, char *out, size_t cap, int mkdirs)
{
    const char *st = env("system.storage");
    if (strncmp(st, "file://", 7) != 0) {
        say("error: only file:// storage is supported by this demo, got '%s'", st);
        return -1;
    }
    char key[256], ns[256], nm[256];
    snprintf(key, sizeof(key), "runtime.component.%s.%s", kind, name);
    const char *addr = getenv(key);
    if (!addr || json_field(addr, "namespace", ns, sizeof(ns)) ||
        json_field(addr, "name", nm, sizeof(nm))) {
        say("error: %s is missing or not {\"namespace\",\"name\"}", key);
        return -1;
    }
    if (!safe_part(ns) || !safe_part(nm)) {
        say("error: %s names a path outside the storage root", key);
        return -1;
    }
    const char *root = st + 7;
    if (mkdirs) {
        char d[1024];
        snprintf(d, sizeof(d), "%s/%s", root, ns);
        mkdir(d, 0777);
        snprintf(d, sizeof(d), "%s/%s/%s", root, ns, nm);
        mkdir(d, 0777);
    }
    snprintf(out, cap, "%s/%s/%s/data", root, ns, nm);
    return 0;
}

/* ---- callback ------------------------------------------------------------- */
/* POST {"task_id","role","status"} to system.callback (http://IP:PORT/path).
 * Static glibc cannot resolve names, so the launcher passes an IP address. */
static void callback(const char *status)
{
    const char *url = env("system.callback");
    if (param_true("no_callback") || strncmp(url, "http://", 7) != 0)
        return;
    char host[64] = "", path[512] = "/v1/platform/schedule/task/callback";
    int port = 80;
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    const char *colon = strchr(h, ':');
    size_t hl = (size_t)((colon && (!slash || colon < slash)) ? colon - h : (slash ? slash - h : (long)strlen(h)));
    if (hl >= sizeof(host))
        return;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (colon && (!slash || colon < slash))
        port = atoi(colon + 1);
    if (slash)
        snprintf(path, sizeof(path), "%s", slash);
    char body[1024];
    int bl = snprintf(body, sizeof(body), "{\"task_id\":\"%s\",\"role\":\"%s\",\"status\":\"%s\"}",
                      env("config.task_id"), env("config.self_role"), status);
    /* The launch token: the file named by config.attest.token_file (mounted
     * read-only by the gateway and kept fresh), else config.attest.token
     * (the first token, which cannot be refreshed); env_token=true prefers
     * the environment's; no_token=true sends none, as FATE and UnionPay
     * images do. */
    const char *tok = "";
    static char filetok[8192];
    if (*env("config.attest.token_file") && !param_true("env_token")) {
        FILE *tf = fopen(env("config.attest.token_file"), "r");
        if (tf) {
            size_t n = fread(filetok, 1, sizeof(filetok) - 1, tf);
            fclose(tf);
            while (n > 0 && (filetok[n - 1] == '\n' || filetok[n - 1] == '\r'))
                n--;
            filetok[n] = '\0';
            tok = filetok;
        }
    }
    if (!*tok)
        tok = env("config.attest.token");
    if (param_true("no_token"))
        tok = "";
    char req[12288];
    int rl = snprintf(req, sizeof(req),
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n%s%s%sConnection: close\r\n\r\n%s",
                      path, host, port, bl, *tok ? "Authorization: Bearer " : "", tok,
                      *tok ? "\r\n" : "", body);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        say("callback: '%s' is not an IPv4 address; skipped", host);
        return;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
            write(fd, req, (size_t)rl) == rl) {
            char resp[256];
            ssize_t n = read(fd, resp, sizeof(resp) - 1);
            close(fd);
            if (n > 12 && strncmp(resp + 9, "200", 3) == 0) {
                say("callback %s sent", status);
                return;
            }
        } else {
            close(fd);
        }
        usleep(200 * 1000);
    }
    say("callback %s could not be delivered", status);
}

/* ---- attestation probe ------------------------------------------------------- */
/* POST /v1/platform/attest/token on the task socket, with no credential: the
 * socket itself tells the gateway which container is asking. */
static void attest_probe(const char *aud)
{
    const char *a = env("system.attest"), *st = env("system.storage");
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strncmp(a, "unix://", 7) != 0 || strlen(a + 7) >= sizeof(sun.sun_path) ||
        strncmp(st, "file://", 7) != 0 || !safe_part(env("config.task_id")) ||
        !safe_part(env("config.self_role"))) {
        say("attest probe: no task socket (system.attest='%s')", a);
        return;
    }
    memcpy(sun.sun_path, a + 7, strlen(a + 7) + 1);
    char body[512], req[1024];
    int bl = snprintf(body, sizeof(body), "{\"audience\":\"%s\",\"nonce\":\"probe-%s\"}", aud,
                      env("config.task_id"));
    int rl = snprintf(req, sizeof(req),
                      "POST /v1/platform/attest/token HTTP/1.1\r\nHost: task\r\n"
                      "Content-Type: application/json\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n%s", bl, body);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
        write(fd, req, (size_t)rl) != rl) {
        say("attest probe: cannot reach %s: %s", a, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    static char resp[16384];
    size_t n = 0;
    ssize_t got;
    while (n + 1 < sizeof(resp) && (got = read(fd, resp + n, sizeof(resp) - 1 - n)) > 0)
        n += (size_t)got;
    close(fd);
    resp[n] = '\0';
    const char *b = strstr(resp, "\r\n\r\n");
    char dir[1024], path[1200];
    snprintf(dir, sizeof(dir), "%s/attest-probe", st + 7);
    mkdir(dir, 0777);
    snprintf(path, sizeof(path), "%s/%s.%s.json", dir, env("config.task_id"),
             env("config.self_role"));
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(b ? b + 4 : "", f);
        fclose(f);
    }
    say("attest probe: answer of %zu bytes stored", b ? strlen(b + 4) : (size_t)0);
}


/* ---- transport (system.transport, dialect B as SecretFlow's YACL speaks it) ---- */
/* One call to the gateway's channel API: POST path with the x-ptp-* headers
 * and a raw body; the answer is the three-field protobuf TransportOutbound
 * {payload=1, code=2, message=3}.  A tiny decoder suffices for three fields. */
struct chan_answer {
    char code[32];
    char message[512];
    unsigned char *payload;
    size_t len;
};

static int read_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        unsigned char b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

static int decode_answer(const unsigned char *b, size_t n, struct chan_answer *a)
{
    const unsigned char *p = b, *end = b + n;
    while (p < end) {
        uint64_t key, len;
        if (read_varint(&p, end, &key) || (key & 7) != 2 || read_varint(&p, end, &len) ||
            len > (uint64_t)(end - p))
            return -1;
        if (key >> 3 == 1) {
            a->payload = malloc(len ? len : 1);
            memcpy(a->payload, p, len);
            a->len = len;
        } else if (key >> 3 == 2) {
            snprintf(a->code, sizeof(a->code), "%.*s", (int)len, (const char *)p);
        } else if (key >> 3 == 3) {
            snprintf(a->message, sizeof(a->message), "%.*s", (int)len, (const char *)p);
        }
        p += len;
    }
    return a->code[0] ? 0 : -1;
}

static int chan_call(const char *op, const char *query, const char *target, const char *topic,
                     const void *body, size_t blen, struct chan_answer *a)
{
    memset(a, 0, sizeof(*a));
    const char *tr = env("system.transport");
    if (strncmp(tr, "http://", 7) == 0)
        tr += 7;
    char host[64];
    const char *colon = strrchr(tr, ':');
    if (!colon || (size_t)(colon - tr) >= sizeof(host)) {
        snprintf(a->message, sizeof(a->message), "system.transport '%s' is not host:port", tr);
        return -1;
    }
    memcpy(host, tr, (size_t)(colon - tr));
    host[colon - tr] = '\0';
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(a->message, sizeof(a->message), "system.transport host '%s' is not IPv4", host);
        return -1;
    }
    char hdr[4096];
    int hl = snprintf(hdr, sizeof(hdr),
                      "POST /v1/interconn/chan/%s%s HTTP/1.1\r\nHost: %s\r\n"
                      "x-ptp-tecn-provider-code: bfia-demo\r\nx-ptp-trace-id: %s\r\n"
                      "x-ptp-token: %s\r\nx-ptp-session-id: %s\r\nx-ptp-target-node-id: %s\r\n"
                      "x-ptp-topic: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      op, query, tr, env("config.trace_id"), env("config.token"),
                      env("config.session_id"), target, topic, blen);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(a->message, sizeof(a->message), "cannot reach the transport at %s: %s", tr,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t off = 0;
    while (off < (size_t)hl) {
        ssize_t w = write(fd, hdr + off, (size_t)hl - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    off = 0;
    while (off < blen) {
        ssize_t w = write(fd, (const char *)body + off, blen - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    size_t cap = 65536, n = 0;
    char *resp = malloc(cap);
    ssize_t got;
    while ((got = read(fd, resp + n, cap - n)) > 0) {
        n += (size_t)got;
        if (n == cap)
            resp = realloc(resp, cap *= 2);
    }
    close(fd);
    char *sep = NULL;
    for (size_t i = 0; i + 3 < n; i++)
        if (memcmp(resp + i, "\r\n\r\n", 4) == 0) {
            sep = resp + i + 4;
            break;
        }
    int rc = -1;
    if (!sep || n < 12 || strncmp(resp + 9, "200", 3) != 0)
        snprintf(a->message, sizeof(a->message), "transport answered %.40s",
                 n ? resp : "nothing (connection closed)");
    else if (decode_answer((unsigned char *)sep, n - (size_t)(sep - resp), a) != 0)
        snprintf(a->message, sizeof(a->message), "transport answer is not a TransportOutbound");
    else
        rc = 0;
    free(resp);
    return rc;
}

/* The other parties of the task: config.node_id.<role>.<i> except self_role. */
struct party {
    char key[64];
    char node[128];
};

extern char **environ;

static int parties(struct party *out, int max)
{
    int n = 0;
    for (char **e = environ; *e && n < max; e++) {
        if (strncmp(*e, "config.node_id.", 15) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        snprintf(out[n].key, sizeof(out[n].key), "%.*s", (int)(eq - *e - 15), *e + 15);
        snprintf(out[n].node, sizeof(out[n].node), "%s", eq + 1);
        if (strcmp(out[n].key, env("config.self_role")) != 0)
            n++;
    }
    return n;
}

/* Send one message to party p on topic "<self>-<p>"; retries while the
 * buffer is full.  0, or -1 with the reason printed. */
static int chan_send(const struct party *p, const char *topic, const void *msg, size_t len)
{
    for (int attempt = 0; attempt < 30; attempt++) {
        struct chan_answer a;
        if (chan_call("push", "", p->node, topic, msg, len, &a) != 0) {
            say("transport: push to %s (%s) failed: %s", p->key, p->node, a.message);
            return -1;
        }
        free(a.payload);
        if (strcmp(a.code, "E0000000000") == 0)
            return 0;
        if (strcmp(a.code, "E0000000700") != 0) {
            say("transport: push to %s (%s) refused: %s %s", p->key, p->node, a.code, a.message);
            return -1;
        }
        sleep(1); /* buffer full: as YACL, wait and push again */
    }
    say("transport: push to %s: buffer stayed full", p->key);
    return -1;
}

/* Receive one message from party p (topic "<p>-<self>"), polling with
 * pop?timeout=5 until deadline_s.  Returns the payload (malloc'd) or NULL. */
static unsigned char *chan_recv(const struct party *p, const char *topic, size_t *len, int deadline_s)
{
    time_t end = time(NULL) + deadline_s;
    while (time(NULL) < end) {
        struct chan_answer a;
        if (chan_call("pop", "?timeout=5", p->node, topic, "", 0, &a) != 0) {
            say("transport: pop from %s failed: %s", p->key, a.message);
            return NULL;
        }
        if (strcmp(a.code, "E0000000000") != 0) {
            say("transport: pop from %s refused: %s %s", p->key, a.code, a.message);
            free(a.payload);
            return NULL;
        }
        if (a.payload) {
            *len = a.len;
            return a.payload;
        }
    }
    say("transport: nothing from %s within %d s", p->key, deadline_s);
    return NULL;
}

/* joint_stats: each party sends its column statistics (input "report") to
 * every other party through system.transport and writes the combined
 * report {"<role.i>": <report>, ...} to output "joint". */
static int joint_stats(void)
{
    char in[1024], out[1024];
    if (address_path("input", "report", in, sizeof(in), 0) ||
        address_path("output", "joint", out, sizeof(out), 1))
        return -1;
    FILE *fi = fopen(in, "r");
    if (!fi) {
        say("error: cannot open input %s: %s", in, strerror(errno));
        return -1;
    }
    static char mine[65536];
    size_t ml = fread(mine, 1, sizeof(mine) - 1, fi);
    fclose(fi);
    while (ml && (mine[ml - 1] == '\n' || mine[ml - 1] == '\r'))
        ml--;
    mine[ml] = '\0';
    struct party ps[16];
    int np = parties(ps, 16);
    const char *self = env("config.self_role");
    char topic[256];
    for (int i = 0; i < np; i++) {
        snprintf(topic, sizeof(topic), "%.100s-%.60s", self, ps[i].key);
        if (chan_send(&ps[i], topic, mine, ml) != 0)
            return -1;
        say("joint_stats: sent %zu bytes of statistics to %s (node %s)", ml, ps[i].key, ps[i].node);
    }
    FILE *fo = fopen(out, "w");
    if (!fo)
        return -1;
    fprintf(fo, "{\"%s\":%s", self, ml ? mine : "null");
    for (int i = 0; i < np; i++) {
        snprintf(topic, sizeof(topic), "%.60s-%.100s", ps[i].key, self);
        size_t len = 0;
        unsigned char *theirs = chan_recv(&ps[i], topic, &len, 120);
        if (!theirs) {
            fclose(fo);
            return -1;
        }
        say("joint_stats: received %zu bytes of statistics from %s (node %s)", len, ps[i].key,
            ps[i].node);
        fprintf(fo, ",\"%s\":%.*s", ps[i].key, (int)len, (const char *)theirs);
        free(theirs);
    }
    fprintf(fo, "}\n");
    if (fclose(fo) != 0)
        return -1;
    say("joint_stats: combined report of %d parties in %s", np + 1, out);
    return 0;
}

/* chan_probe (tests): send `count` messages of `size` bytes to every other
 * party and receive as many from each, checking order and content (each
 * message starts with its sequence number and the sender's role). */
static int chan_probe(void)
{
    long count = param("count") ? atol(param("count")) : 10;
    long size = param("size") ? atol(param("size")) : 64;
    if (size < 32)
        size = 32;
    struct party ps[16];
    int np = parties(ps, 16);
    const char *self = env("config.self_role");
    char *msg = malloc((size_t)size);
    char topic[256];
    for (long k = 0; k < count; k++) {
        for (int i = 0; i < np; i++) {
            memset(msg, 'a' + (int)(k % 26), (size_t)size);
            int hl = snprintf(msg, (size_t)size, "%ld %s ", k, self);
            msg[hl] = '|';
            snprintf(topic, sizeof(topic), "probe-%.100s-%.60s", self, ps[i].key);
            if (chan_send(&ps[i], topic, msg, (size_t)size) != 0) {
                free(msg);
                return -1;
            }
        }
    }
    for (int i = 0; i < np; i++) {
        snprintf(topic, sizeof(topic), "probe-%.60s-%.100s", ps[i].key, self);
        for (long k = 0; k < count; k++) {
            size_t len = 0;
            unsigned char *m = chan_recv(&ps[i], topic, &len, 60);
            if (!m) {
                free(msg);
                return -1;
            }
            char want[128];
            int wl = snprintf(want, sizeof(want), "%ld %s ", k, ps[i].key);
            if (len != (size_t)size || memcmp(m, want, (size_t)wl) != 0) {
                say("chan_probe: message %ld from %s out of order or damaged (%zu bytes: %.40s)",
                    k, ps[i].key, len, (const char *)m);
                free(m);
                free(msg);
                return -1;
            }
            free(m);
        }
        say("chan_probe: %ld messages of %ld bytes from %s in order", count, size, ps[i].key);
    }
    free(msg);
    return 0;
}

/* ---- components ------------------------------------------------------------ */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int hash_ids(void)
{
    char in[1024], out[1024];
    if (address_path("input", "data", in, sizeof(in), 0) ||
        address_path("output", "hashed", out, sizeof(out), 1))
        return -1;
    const char *salt = param("salt") ? param("salt") : "";
    FILE *fi = fopen(in, "r");
    if (!fi) {
        say("error: cannot open input %s: %s", in, strerror(errno));
        return -1;
    }
    FILE *fo = fopen(out, "w");
    if (!fo) {
        say("error: cannot create output %s: %s", out, strerror(errno));
        fclose(fi);
        return -1;
    }
    char line[8192];
    long rows = 0;
    int header = 1;
    while (fgets(line, sizeof(line), fi)) {
        char *comma = strchr(line, ',');
        char *rest = comma ? comma + 1 : (char *)"";
        if (comma)
            *comma = '\0';
        char *id = trim(line);
        rest = trim(rest);
        if (header) {
            fprintf(fo, "id_hash%s%s\n", *rest ? "," : "", rest);
            header = 0;
            continue;
        }
        if (!*id)
            continue;
        for (char *p = id; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        struct sha256 s;
        char hex[65];
        sha_init(&s);
        sha_update(&s, salt, strlen(salt));
        sha_update(&s, id, strlen(id));
        sha_hex(&s, hex);
        fprintf(fo, "%s%s%s\n", hex, *rest ? "," : "", rest);
        rows++;
    }
    fclose(fi);
    if (fclose(fo) != 0)
        return -1;
    say("hash_ids: %ld rows hashed into %s", rows, out);
    return 0;
}

#define MAXCOLS 64

static int col_stats(void)
{
    char in[1024], out[1024];
    if (address_path("input", "data", in, sizeof(in), 0) ||
        address_path("output", "report", out, sizeof(out), 1))
        return -1;
    FILE *fi = fopen(in, "r");
    if (!fi) {
        say("error: cannot open input %s: %s", in, strerror(errno));
        return -1;
    }
    char names[MAXCOLS][64];
    double mn[MAXCOLS], mx[MAXCOLS], sum[MAXCOLS];
    long cnt[MAXCOLS];
    int ncols = 0;
    char line[8192];
    if (fgets(line, sizeof(line), fi)) {
        for (char *tok = strtok(line, ",\n\r"); tok && ncols < MAXCOLS; tok = strtok(NULL, ",\n\r")) {
            snprintf(names[ncols], sizeof(names[ncols]), "%s", trim(tok));
            cnt[ncols] = 0;
            sum[ncols] = 0;
            ncols++;
        }
    }
    long rows = 0;
    while (fgets(line, sizeof(line), fi)) {
        int c = 0;
        char *p = line;
        rows++;
        while (c < ncols) {
            char *comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            char *end;
            char *v = trim(p);
            double d = strtod(v, &end);
            if (*v && *end == '\0') {
                if (!cnt[c] || d < mn[c])
                    mn[c] = d;
                if (!cnt[c] || d > mx[c])
                    mx[c] = d;
                sum[c] += d;
                cnt[c]++;
            }
            c++;
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    fclose(fi);
    FILE *fo = fopen(out, "w");
    if (!fo)
        return -1;
    fprintf(fo, "{\"rows\":%ld,\"columns\":{", rows);
    int first = 1;
    for (int c = 0; c < ncols; c++) {
        if (!cnt[c])
            continue;
        fprintf(fo, "%s\"%s\":{\"count\":%ld,\"min\":%g,\"max\":%g,\"mean\":%g}", first ? "" : ",",
                names[c], cnt[c], mn[c], mx[c], sum[c] / (double)cnt[c]);
        first = 0;
    }
    fprintf(fo, "}}\n");
    if (fclose(fo) != 0)
        return -1;
    say("col_stats: %ld rows, %d columns, report in %s", rows, ncols, out);
    return 0;
}

int main(void)
{
    const char *comp = env("runtime.component.name");
    say("bfia-demo: task %s role %s component %s", env("config.task_id"), env("config.self_role"),
        comp);
    fprintf(stderr, "bfia-demo: starting (stderr)\n");
    const char *aud = param("attest_audience");
    if (aud && *aud)
        attest_probe(aud);
    const char *sl = param("sleep_ms");
    if (sl && atol(sl) > 0) {
        struct timespec ts = {atol(sl) / 1000, (atol(sl) % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    const char *am = param("alloc_mb");
    if (am && atol(am) > 0) {
        size_t n = (size_t)atol(am) * 1024 * 1024;
        char *p = malloc(n);
        if (p)
            for (size_t i = 0; i < n; i += 4096)
                p[i] = 1;
        say("allocated %s MiB", am);
    }
    if (param_true("fail")) {
        say("failing on request (parameter fail=true)");
        callback("FAILED");
        return 3;
    }
    int rc;
    if (strcmp(comp, "hash_ids") == 0)
        rc = hash_ids();
    else if (strcmp(comp, "col_stats") == 0)
        rc = col_stats();
    else if (strcmp(comp, "joint_stats") == 0)
        rc = joint_stats();
    else if (strcmp(comp, "chan_probe") == 0)
        rc = chan_probe();
    else {
        say("error: unknown component '%s'", comp);
        rc = -1;
    }
    callback(rc == 0 ? "SUCCESS" : "FAILED");
    /* exit_code=N: exit with N after reporting (a component whose claim and
     * exit code disagree, for tests). */
    const char *ec = param("exit_code");
    if (ec && *ec)
        return atoi(ec);
    return rc == 0 ? 0 : 1;
}
