/*
 * loadconn.c - open N connections to 127.0.0.1:PORT at once, keep them all
 * open, then send one GET on each and count the 200 replies.
 *
 *   loadconn PORT N PATH
 *
 * Prints "connections=N ok=K failed=F" and exits 0 only when every request
 * got HTTP 200.  A test tool: it only ever targets the loopback address.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/compat.h"

struct c {
    int fd;
    int state; /* 0 connecting, 1 sent, 2 done-ok, 3 failed */
    char buf[256];
    size_t n;
};

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: loadconn PORT N PATH\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int n = atoi(argv[2]);
    const char *path = argv[3];
    if (port <= 0 || port > 65535 || n <= 0 || n > 20000)
        return 2;
    struct c *cs = gw_xcalloc((size_t)n, sizeof(*cs));
    struct pollfd *pf = gw_xcalloc((size_t)n, sizeof(*pf));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int opened = 0;
    for (int i = 0; i < n; i++) {
        cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        if (cs[i].fd < 0) {
            perror("socket");
            cs[i].state = 3;
            continue;
        }
        fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
        if (connect(cs[i].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
            cs[i].state = 3;
            continue;
        }
        opened++;
    }
    /* Wait until every connection is established before sending anything, so
     * the server really holds N connections at once. */
    for (int round = 0; round < 200; round++) {
        int waiting = 0;
        for (int i = 0; i < n; i++) {
            pf[i].fd = cs[i].state == 0 ? cs[i].fd : -1;
            pf[i].events = POLLOUT;
            if (cs[i].state == 0)
                waiting++;
        }
        if (!waiting)
            break;
        poll(pf, (nfds_t)n, 50);
        for (int i = 0; i < n; i++) {
            if (pf[i].fd >= 0 && (pf[i].revents & (POLLOUT | POLLERR | POLLHUP))) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(cs[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
                cs[i].state = err ? 3 : 1;
            }
        }
    }
    char req[512];
    int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    for (int i = 0; i < n; i++)
        if (cs[i].state == 1 && write(cs[i].fd, req, (size_t)rl) != rl)
            cs[i].state = 3;
    long long deadline = gw_now_mono_ms() + 20000;
    for (;;) {
        int waiting = 0;
        for (int i = 0; i < n; i++) {
            pf[i].fd = cs[i].state == 1 ? cs[i].fd : -1;
            pf[i].events = POLLIN;
            if (cs[i].state == 1)
                waiting++;
        }
        if (!waiting || gw_now_mono_ms() > deadline)
            break;
        poll(pf, (nfds_t)n, 100);
        for (int i = 0; i < n; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(cs[i].fd, cs[i].buf + cs[i].n, sizeof(cs[i].buf) - 1 - cs[i].n);
            if (r > 0)
                cs[i].n += (size_t)r;
            cs[i].buf[cs[i].n] = '\0';
            if (strncmp(cs[i].buf, "HTTP/1.1 200", 12) == 0)
                cs[i].state = 2;
            else if (r <= 0 || cs[i].n >= 12)
                cs[i].state = 3;
        }
    }
    int ok = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        if (cs[i].state == 2)
            ok++;
        else
            bad++;
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    }
    printf("connections=%d ok=%d failed=%d\n", opened, ok, bad);
    free(cs);
    free(pf);
    return bad == 0 ? 0 : 1;
}
