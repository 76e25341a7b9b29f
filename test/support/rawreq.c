/*
 * rawreq.c - send raw bytes to a server on the loopback address and print
 * every byte it answers, until it closes the connection or a time limit.
 *
 *   rawreq PORT SECONDS [BYTE_DELAY_MS] < request-bytes
 *
 * The request is sent as given (no CRLF fixing, no half-close: a server
 * must close on its own), at once or one byte every BYTE_DELAY_MS.  The answer goes to stdout.  Exit status: 0 the
 * server closed the connection, 3 it was still open after SECONDS, 1 an
 * error.  A test tool: it only ever connects to 127.0.0.1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: rawreq PORT SECONDS [BYTE_DELAY_MS] < request\n");
        return 1;
    }
    int port = atoi(argv[1]);
    double secs = atof(argv[2]);
    int delay = argc == 4 ? atoi(argv[3]) : 0;
    if (port <= 0 || port > 65535 || secs <= 0)
        return 1;
    static char req[1 << 20];
    size_t n = fread(req, 1, sizeof(req), stdin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("rawreq: connect");
        return 1;
    }
    for (size_t off = 0; off < n;) {
        if (delay > 0 && off > 0) {
            struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        ssize_t w = send(fd, req + off, delay > 0 ? 1 : n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* the server may close before reading everything */
        off += (size_t)w;
    }
    long long end = now_ms() + (long long)(secs * 1000);
    char buf[65536];
    for (;;) {
        long long left = end - now_ms();
        if (left <= 0) {
            fflush(stdout);
            return 3;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            continue;
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break; /* closed (0) or reset: either way the server ended it */
        fwrite(buf, 1, (size_t)k, stdout);
    }
    fflush(stdout);
    close(fd);
    return 0;
}
