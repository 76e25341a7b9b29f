/*
 * stallsock.c - a server that accepts connections and never answers, to
 * inject the stall a real engine or peer cannot produce on demand (a fake
 * only for faults, as the test rules allow).
 *
 *   stallsock unix:PATH SECONDS      a Unix socket (a Docker engine that hangs)
 *   stallsock tcp:PORT SECONDS       127.0.0.1:PORT (a peer that hangs)
 *
 * Reads and drops whatever clients send; after SECONDS prints
 * "accepted=N" and exits 0.  Loopback and its own socket file only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAXC 256

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: stallsock unix:PATH|tcp:PORT SECONDS\n");
        return 2;
    }
    double secs = atof(argv[2]);
    int lfd;
    if (strncmp(argv[1], "unix:", 5) == 0) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        if (strlen(argv[1] + 5) >= sizeof(sun.sun_path))
            return 2;
        strcpy(sun.sun_path, argv[1] + 5);
        unlink(sun.sun_path);
        lfd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
            perror("stallsock: bind");
            return 1;
        }
    } else if (strncmp(argv[1], "tcp:", 4) == 0) {
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((unsigned short)atoi(argv[1] + 4));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        lfd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            perror("stallsock: bind");
            return 1;
        }
    } else {
        return 2;
    }
    if (listen(lfd, 64) != 0)
        return 1;
    struct pollfd pf[MAXC + 1];
    int n = 0, accepted = 0;
    long long end = now_ms() + (long long)(secs * 1000);
    pf[0].fd = lfd;
    pf[0].events = POLLIN;
    while (now_ms() < end) {
        int r = poll(pf, (nfds_t)(n + 1), 100);
        if (r <= 0)
            continue;
        if ((pf[0].revents & POLLIN) && n < MAXC) {
            int c = accept(lfd, NULL, NULL);
            if (c >= 0) {
                accepted++;
                pf[++n].fd = c;
                pf[n].events = POLLIN;
            }
        }
        for (int i = 1; i <= n; i++) {
            if (!pf[i].revents)
                continue;
            char buf[4096];
            ssize_t k = read(pf[i].fd, buf, sizeof(buf));
            if (k <= 0 && !(k < 0 && errno == EINTR)) {
                close(pf[i].fd);
                pf[i] = pf[n--];
                i--;
            }
        }
    }
    printf("accepted=%d\n", accepted);
    return 0;
}
