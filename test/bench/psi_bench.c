/*
 * psi_bench.c - ECDH-PSI end to end on this machine, next to its bound.
 *
 *   build/tools/psi_bench [N_GUEST N_HOST]...   (default: 1000000 1000000 100000 100000)
 *   build/tools/psi_bench --bound N_GUEST N_HOST  only the bound, for a run through
 *                                                 two gateways timed elsewhere
 *
 * For each size pair (50 % of the smaller set shared):
 *   - the bound, measured in the same run: OpenSSL's X25519 rate with all
 *     cores busy (EVP_PKEY_derive on a fixed key pair, one thread per core,
 *     as `openssl speed ecdhx25519` measures one core), and the time that
 *     rate needs for the 2 * (N_GUEST + N_HOST) scalar multiplications the
 *     two parties must do;
 *   - the run: two processes (guest.0 and host.0), each the whole component
 *     (CSV in, ECDH-PSI, CSV and report out, FIN), connected by a
 *     socketpair in place of the gateways, both on this machine's cores;
 *     wall time from their start to the end of both, peak RSS of each, and
 *     the intersection checked against the known overlap.
 * Prints figures; asserts nothing but correctness (exit 1 if an
 * intersection is wrong or a party fails).
 */
#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "psi_component.h"
#include "psi_config.h"
#include "psi_pool.h"
#include "psi_transport.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- the bound ------------------------------------------------------------------- */

struct rate_arg {
    double secs;
    long ops;
    double cpu; /* the thread's CPU seconds */
};

static double thread_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *rate_thread(void *arg)
{
    struct rate_arg *a = arg;
    unsigned char k[32], u[32] = {9}, out[32];
    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)(i * 37 + 11);
    EVP_PKEY *priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, k, 32);
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, u, 32);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv, NULL);
    if (!priv || !peer || !ctx || EVP_PKEY_derive_init(ctx) != 1 ||
        EVP_PKEY_derive_set_peer(ctx, peer) != 1) {
        fprintf(stderr, "psi_bench: OpenSSL X25519 setup failed\n");
        exit(1);
    }
    double end = now_s() + a->secs, c0 = thread_cpu_s();
    long n = 0;
    while (now_s() < end) {
        for (int i = 0; i < 256; i++) {
            size_t ol = 32;
            if (EVP_PKEY_derive(ctx, out, &ol) != 1)
                exit(1);
        }
        n += 256;
    }
    a->ops = n;
    a->cpu = thread_cpu_s() - c0;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(priv);
    return NULL;
}

/* X25519 operations per second (wall clock) with every core busy; *cpu_rate
 * gets the operations per CPU second of one thread (what `openssl speed`
 * prints). */
static double x25519_rate(int cores, double secs, double *cpu_rate)
{
    pthread_t th[256];
    struct rate_arg a[256];
    double t0 = now_s();
    for (int i = 0; i < cores; i++) {
        a[i].secs = secs;
        a[i].ops = 0;
        pthread_create(&th[i], NULL, rate_thread, &a[i]);
    }
    long total = 0;
    double cpu = 0;
    for (int i = 0; i < cores; i++) {
        pthread_join(th[i], NULL);
        total += a[i].ops;
        cpu += a[i].cpu;
    }
    *cpu_rate = (double)total / cpu;
    return (double)total / (now_s() - t0);
}

/* ---- a socketpair transport (bench only): frames len32 | bytes ---------------------- */

struct sp {
    int fd;
    pthread_mutex_t wmu;
};

static int sp_push(void *impl, const char *topic, const unsigned char *buf, size_t len, char *err,
                   size_t errlen)
{
    (void)topic; /* one peer, one direction per socket end */
    struct sp *s = impl;
    uint32_t n = (uint32_t)len;
    pthread_mutex_lock(&s->wmu);
    int ok = write(s->fd, &n, 4) == 4;
    size_t off = 0;
    while (ok && off < len) {
        ssize_t w = write(s->fd, buf + off, len - off);
        if (w <= 0 && errno != EINTR)
            ok = 0;
        else if (w > 0)
            off += (size_t)w;
    }
    pthread_mutex_unlock(&s->wmu);
    if (!ok) {
        snprintf(err, errlen, "socketpair write: %s", strerror(errno));
        return PSI_TRANSPORT_FATAL;
    }
    return PSI_TRANSPORT_OK;
}

static int read_full(int fd, void *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = read(fd, (char *)p + off, n - off);
        if (r == 0)
            return -1;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += (size_t)r;
    }
    return 0;
}

static int sp_pop(void *impl, const char *topic, int timeout_ms, unsigned char **buf, size_t *len,
                  char *err, size_t errlen)
{
    (void)topic;
    struct sp *s = impl;
    struct pollfd p = {s->fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r == 0)
        return PSI_TRANSPORT_OK;
    uint32_t n;
    if (r < 0 || read_full(s->fd, &n, 4) != 0) {
        snprintf(err, errlen, "socketpair closed");
        return PSI_TRANSPORT_FATAL;
    }
    unsigned char *b = malloc(n ? n : 1);
    if (!b || read_full(s->fd, b, n) != 0) {
        free(b);
        snprintf(err, errlen, "socketpair closed");
        return PSI_TRANSPORT_FATAL;
    }
    *buf = b;
    *len = n;
    return PSI_TRANSPORT_GOT;
}

static void sp_free(void *impl)
{
    struct sp *s = impl;
    close(s->fd);
    pthread_mutex_destroy(&s->wmu);
    free(s);
}

static const struct psi_transport_ops sp_ops = {sp_push, sp_pop, sp_free, NULL};

/* ---- data --------------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* guest: shared ids then its own; host likewise; each file shuffled by
 * writing in a random interleaving.  IDs look like 18-digit account ids. */
static void make_inputs(const char *dir, long ng, long nh, long shared)
{
    char path[512];
    FILE *f[2];
    const char *names[2] = {"g", "h"};
    long n[2] = {ng, nh};
    for (int p = 0; p < 2; p++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[p]);
        mkdir(path, 0777);
        snprintf(path, sizeof(path), "%s/%s/ids", dir, names[p]);
        mkdir(path, 0777);
        snprintf(path, sizeof(path), "%s/%s/ids/data", dir, names[p]);
        f[p] = fopen(path, "w");
        if (!f[p]) {
            perror(path);
            exit(1);
        }
        fprintf(f[p], "id,score\n");
    }
    long left[2] = {ng, nh}, sh = shared;
    uint64_t base = 100000000000000000ULL;
    while (left[0] || left[1]) {
        uint64_t r = rnd();
        if (sh && left[0] && left[1] && r % 4 == 0) {
            uint64_t id = base + (r >> 8) % 899999999999999999ULL;
            fprintf(f[0], "%018llu,%llu\n", (unsigned long long)id, (unsigned long long)(r & 1023));
            fprintf(f[1], "%018llu,%llu\n", (unsigned long long)id, (unsigned long long)(r >> 50));
            left[0]--, left[1]--, sh--;
            continue;
        }
        int p = left[0] && (!left[1] || (r & 1)) ? 0 : 1;
        if (left[p] <= sh)
            continue; /* keep room for the shared ones */
        /* a distinct range per party: never shared by accident */
        uint64_t id = base + (uint64_t)p * 450000000000000000ULL + (r >> 8) % 449999999999999999ULL;
        fprintf(f[p], "%018llu,%llu\n", (unsigned long long)id, (unsigned long long)(r & 255));
        left[p]--;
    }
    (void)n;
    fclose(f[0]);
    fclose(f[1]);
}

/* ---- one party, in a child process ------------------------------------------------------ */

struct result {
    int rc;
    double secs;
    long long intersection, original;
    char err[256];
};

static void party(const char *dir, const char *role, const char *ns, int fd, int resfd)
{
    char storage[600], in[200], out[200], self[64];
    snprintf(storage, sizeof(storage), "system.storage=file://%s", dir);
    snprintf(in, sizeof(in), "runtime.component.input.train_data={\"name\":\"ids\",\"namespace\":\"%s\"}", ns);
    snprintf(out, sizeof(out), "runtime.component.output.train_data={\"name\":\"out\",\"namespace\":\"%s\"}", ns);
    snprintf(self, sizeof(self), "config.self_role=%s", role);
    const char *env[] = {storage, in, out, self, "config.task_id=bench",
                         "config.node_id.guest.0=N", "config.node_id.host.0=N",
                         "config.session_id=s", "config.token=t", "system.transport=127.0.0.1:1",
                         "runtime.component.parameter.recv_timeout_s=600", NULL};
    struct psi_config *c = calloc(1, sizeof(*c));
    struct result r = {0};
    if (psi_config_load((char *const *)(uintptr_t)env, c, r.err, sizeof(r.err)) != 0) {
        r.rc = 2;
    } else {
        struct sp *s = calloc(1, sizeof(*s));
        s->fd = fd;
        pthread_mutex_init(&s->wmu, NULL);
        struct psi_transport t = {&sp_ops, s};
        struct psi_component_out o;
        double t0 = now_s();
        r.rc = psi_component_run(c, &t, &o, r.err, sizeof(r.err));
        r.secs = now_s() - t0;
        r.intersection = o.intersection_count;
        r.original = (long long)o.original_count;
        sp_free(s);
    }
    if (write(resfd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        _exit(1);
    free(c);
    _exit(0);
}

static int run_size(long ng, long nh, int cores)
{
    long shared = (ng < nh ? ng : nh) / 2;
    char dir[] = "/tmp/psi-bench.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    double tg = now_s();
    make_inputs(dir, ng, nh, shared);
    double gen = now_s() - tg;
    double cpu_rate0, cpu_rate1;
    double rate0 = x25519_rate(cores, 3.0, &cpu_rate0);
    int sv[2], res[2][2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || pipe(res[0]) || pipe(res[1])) {
        perror("socketpair");
        return 1;
    }
    fflush(stdout);
    double t0 = now_s();
    pid_t pid[2];
    const char *roles[2] = {"guest.0", "host.0"}, *ns[2] = {"g", "h"};
    for (int p = 0; p < 2; p++) {
        pid[p] = fork();
        if (pid[p] == 0) {
            close(sv[1 - p]);
            close(res[p][0]);
            if (!getenv("PSI_BENCH_LOG") && !freopen("/dev/null", "w", stdout))
                _exit(1);
            if (!getenv("PSI_BENCH_LOG"))
                dup2(fileno(stdout), STDOUT_FILENO);
            party(dir, roles[p], ns[p], sv[p], res[p][1]);
        }
    }
    close(sv[0]);
    close(sv[1]);
    struct result r[2];
    long rss_kb[2] = {0, 0};
    double cpu = 0;
    double end[2] = {0, 0};
    for (int done = 0; done < 2; done++) {
        int st;
        struct rusage ru;
        pid_t w = wait4(-1, &st, 0, &ru);
        int p = w == pid[0] ? 0 : 1;
        end[p] = now_s();
        rss_kb[p] = ru.ru_maxrss;
        cpu += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        close(res[p][1]);
        if (read(res[p][0], &r[p], sizeof(r[p])) != (ssize_t)sizeof(r[p])) {
            fprintf(stderr, "psi_bench: %s died (status %d)\n", roles[p], st);
            return 1;
        }
    }
    double wall = (end[0] > end[1] ? end[0] : end[1]) - t0;
    /* the bound again after the run: other load on the machine changes it */
    double rate1 = x25519_rate(cores, 3.0, &cpu_rate1);
    double rate = (rate0 + rate1) / 2, cpu_rate = (cpu_rate0 + cpu_rate1) / 2;
    double mults = 2.0 * (double)(ng + nh);
    double bound = mults / rate;
    int ok = 1;
    for (int p = 0; p < 2; p++) {
        if (r[p].rc != 0 || r[p].intersection != shared) {
            fprintf(stderr, "psi_bench: %s: rc %d, intersection %lld (want %ld): %s\n", roles[p],
                    r[p].rc, r[p].intersection, shared, r[p].err);
            ok = 0;
        }
    }
    printf("  OpenSSL X25519, %d threads: %.0f/s before, %.0f/s after the run (%.0f/s per CPU "
           "second)\n", cores, rate0, rate1, cpu_rate);
    printf("  bound: %.0f scalar multiplications at %.0f/s = %.1f s\n", mults, rate, bound);
    printf("  end to end: %.1f s = %.2f x bound (target <= 1.3)\n", wall, wall / bound);
    printf("  CPU: both parties %.1f s = %.2f x the CPU the multiplications take alone\n", cpu,
           cpu / (mults / cpu_rate));
    printf("  peak RSS: guest.0 %ld MB, host.0 %ld MB (target <= 256 MB each)\n", rss_kb[0] / 1024,
           rss_kb[1] / 1024);
    printf("  intersection: %lld and %lld rows (%ld shared): %s   (input generation %.1f s, not "
           "counted)\n", r[0].intersection, r[1].intersection, shared, ok ? "ok" : "WRONG", gen);
    char cmd[100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "psi_bench: could not remove %s\n", dir);
    (void)cores;
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--bound") == 0) {
        int cores = psi_pool_cpus();
        double cpu_rate, rate = x25519_rate(cores, 3.0, &cpu_rate);
        double mults = 2.0 * (double)(atol(argv[2]) + atol(argv[3]));
        printf("bound %.1f s: %.0f X25519 multiplications at %.0f/s on %d cores (%.0f/s per CPU "
               "second)\n", mults / rate, mults, rate, cores, cpu_rate);
        return 0;
    }
    long sizes[16] = {1000000, 1000000, 100000, 100000};
    int nsizes = 2;
    if (argc > 1) {
        nsizes = 0;
        for (int i = 1; i + 1 < argc && nsizes < 8; i += 2) {
            sizes[2 * nsizes] = atol(argv[i]);
            sizes[2 * nsizes + 1] = atol(argv[i + 1]);
            nsizes++;
        }
    }
    int cores = psi_pool_cpus();
    int rc = 0;
    printf("== ECDH-PSI, Curve25519, two parties as two processes on %d cores "
           "(socketpair in place of the gateways)\n", cores);
    for (int i = 0; i < nsizes; i++) {
        printf("%ld x %ld IDs (50%% of the smaller set shared):\n", sizes[2 * i], sizes[2 * i + 1]);
        rc |= run_size(sizes[2 * i], sizes[2 * i + 1], cores);
        fflush(stdout);
    }
    return rc;
}
