/*
 * slowconn.c - hostile slow clients on the loopback address, bounded in
 * count and time, for the slow-client and descriptor tests.
 *
 *   slowconn PORT MODE N SECONDS [SRC [PERIOD_MS]]
 *
 * Opens N connections to 127.0.0.1:PORT (from the local address SRC, a
 * 127.x.y.z address, default 127.0.0.1) and keeps each one busy the slow
 * way until the server closes it or SECONDS pass:
 *   head   a request head trickled one byte every PERIOD_MS (default 500)
 *          and never finished (slowloris);
 *   body   a complete head announcing a 1 MB body, then one body byte
 *          every PERIOD_MS;
 *   idle   connects and sends nothing.
 * Then prints one line:
 *   opened=N refused=R closed=C open=O max_close_s=S answered=A
 * refused: connect() failed; closed: the server ended the connection
 * (FIN or reset) within SECONDS; max_close_s: when the last of those
 * closed, counted from its connect; answered: how many got any response
 * bytes (a 408 or 503) before the close.  Exit 0.  Every connection is
 * closed before it exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct sc {
    int fd;
    int state; /* 0 connecting, 1 open, 2 closed by server, 3 refused */
    long long t0, closed_ms;
    size_t sent;
    bool answered;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static const char HEAD_SLOW[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char HEAD_BODY[] = "POST /v1/platform/route/get HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n";

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: slowconn PORT head|body|idle N SECONDS [SRC [PERIOD_MS]]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    const char *mode = argv[2];
    int n = atoi(argv[3]);
    double secs = atof(argv[4]);
    const char *src = argc > 5 ? argv[5] : "127.0.0.1";
    int period = argc > 6 ? atoi(argv[6]) : 500;
    int m = strcmp(mode, "head") == 0 ? 0 : strcmp(mode, "body") == 0 ? 1
                                        : strcmp(mode, "idle") == 0 ? 2 : -1;
    if (port <= 0 || port > 65535 || n <= 0 || n > 20000 || secs <= 0 || m < 0 || period <= 0)
        return 2;
    struct sockaddr_in sa, la;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(&la, 0, sizeof(la));
    la.sin_family = AF_INET;
    if (inet_pton(AF_INET, src, &la.sin_addr) != 1 || (ntohl(la.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "slowconn: SRC must be a 127.x.y.z address\n");
        return 2;
    }
    struct sc *cs = calloc((size_t)n, sizeof(*cs));
    struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
    if (!cs || !pf)
        return 1;
    int opened = 0, refused = 0;
    for (int i = 0; i < n; i++) {
        cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        cs[i].t0 = now_ms();
        if (cs[i].fd < 0 || bind(cs[i].fd, (struct sockaddr *)&la, sizeof(la)) != 0) {
            if (cs[i].fd >= 0)
                close(cs[i].fd);
            cs[i].fd = -1;
            cs[i].state = 3;
            refused++;
            continue;
        }
        fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
        if (connect(cs[i].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
            close(cs[i].fd);
            cs[i].fd = -1;
            cs[i].state = 3;
            refused++;
            continue;
        }
        opened++;
    }
    long long start = now_ms(), end = start + (long long)(secs * 1000), next_send = start;
    for (;;) {
        long long t = now_ms();
        if (t >= end)
            break;
        if (t >= next_send) {
            for (int i = 0; i < n; i++) {
                if (cs[i].state != 1 || m == 2)
                    continue;
                const char *src_bytes = m == 0 ? HEAD_SLOW : HEAD_BODY;
                size_t len = m == 0 ? sizeof(HEAD_SLOW) - 1 : sizeof(HEAD_BODY) - 1;
                char b = 'x';
                const char *p = &b;
                size_t k = 1;
                if (m == 1 && cs[i].sent == 0) {
                    p = src_bytes; /* the whole head, then a byte at a time */
                    k = len;
                } else if (m == 0) {
                    if (cs[i].sent >= len)
                        continue; /* (never reached with the long header) */
                    p = src_bytes + cs[i].sent;
                }
                ssize_t w = send(cs[i].fd, p, k, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0)
                    cs[i].sent += (size_t)w;
            }
            next_send = t + period;
        }
        int active = 0;
        for (int i = 0; i < n; i++) {
            pf[i].fd = cs[i].state <= 1 ? cs[i].fd : -1;
            pf[i].events = cs[i].state == 0 ? POLLOUT : POLLIN;
            pf[i].revents = 0;
            if (cs[i].state <= 1)
                active++;
        }
        if (!active)
            break;
        long long wait = next_send - now_ms();
        if (wait > end - now_ms())
            wait = end - now_ms();
        poll(pf, (nfds_t)n, wait < 0 ? 0 : (int)(wait > 100 ? 100 : wait));
        for (int i = 0; i < n; i++) {
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            if (cs[i].state == 0) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(cs[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    cs[i].state = 3;
                    refused++;
                    opened--;
                    close(cs[i].fd);
                    cs[i].fd = -1;
                } else {
                    cs[i].state = 1;
                }
                continue;
            }
            char buf[4096];
            ssize_t k = recv(cs[i].fd, buf, sizeof(buf), 0);
            if (k > 0) {
                cs[i].answered = true;
                continue;
            }
            if (k < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            cs[i].state = 2;
            cs[i].closed_ms = now_ms() - cs[i].t0;
        }
    }
    int closed = 0, open = 0, answered = 0;
    long long maxc = 0;
    for (int i = 0; i < n; i++) {
        if (cs[i].state == 2) {
            closed++;
            if (cs[i].closed_ms > maxc)
                maxc = cs[i].closed_ms;
        } else if (cs[i].state <= 1) {
            open++;
        }
        answered += cs[i].answered;
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    }
    printf("opened=%d refused=%d closed=%d open=%d max_close_s=%.1f answered=%d\n", opened, refused,
           closed, open, (double)maxc / 1000.0, answered);
    free(cs);
    free(pf);
    return 0;
}
