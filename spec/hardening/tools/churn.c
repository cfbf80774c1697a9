/* SPDX-License-Identifier: MIT
 *
 * churn.c -- connect-handshake-close cycles against a WebSocket server on
 * 127.0.0.1, as fast as PARALLEL connections in flight allow, on one epoll
 * loop (spec/hardening/churn_spec.lua compiles it with cc; Python's asyncio
 * does not reach the rate on this machine's 2 cores).
 *
 *   churn PORT CYCLES PARALLEL [PATH] [DEADLINE_SECONDS]
 *
 * One cycle: non-blocking connect, the upgrade request, the whole 101 head
 * (checked: status 101), a masked close frame (1000), the server's close
 * frame (checked: 1000) and its FIN, close(). Any other outcome (refused,
 * reset, another status, EOF too early, no answer in 5 s) counts as an
 * error and the slot starts its next cycle. Prints one JSON line:
 *   {"cycles":N,"ok":N,"errors":N,"seconds":S,"rate":R,"cpu":C,"first_error":"..."}
 * rate is ok cycles per second from the first connect to the last close;
 * cpu the seconds of CPU (user + system) the tool itself used.
 * Exit status 0 unless the tool itself failed (bad arguments, epoll).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECTING, ST_HEAD, ST_CLOSE };

struct slot {
    int fd;
    int state;
    double started;
    size_t got;
    char buf[1024];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct sockaddr_in addr;
static char request[512];
static size_t request_len;
static long started, done, ok, errors;
static long cycles;
static char first_error[160];
static int ep;

static int send_request(struct slot *s);

static void fail(struct slot *s, const char *what)
{
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "%s (state %d, errno %s)", what, s->state,
                 errno ? strerror(errno) : "0");
    errors++;
}

static void finish(struct slot *s)
{
    if (s->fd >= 0) {
        close(s->fd);   /* also removes it from the epoll set */
        s->fd = -1;
    }
    done++;
}

static void start(struct slot *s)
{
    struct epoll_event ev;
    s->fd = -1;
    if (started >= cycles)
        return;
    started++;
    s->state = ST_CONNECTING;
    s->got = 0;
    s->started = now();
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        fail(s, "socket");
        done++;
        return;
    }
    if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        fail(s, "connect");
        finish(s);
        return;
    }
    /* Edge-triggered, registered once: no EPOLL_CTL_MOD per step. */
    ev.events = EPOLLOUT | EPOLLIN | EPOLLET;
    ev.data.ptr = s;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        fail(s, "epoll_ctl");
        finish(s);
        return;
    }
    /* Over loopback the TCP handshake is usually done by now: send at once
     * (send_request falls back to waiting for EPOLLOUT when it is not). */
    if (send_request(s) < 0) {
        finish(s);
    }
}

/* Write the request once connected: 0 sent (or not yet connected: wait
 * for EPOLLOUT), -1 failed. */
static int send_request(struct slot *s)
{
    ssize_t n = write(s->fd, request, request_len);
    if (n < 0 && (errno == EAGAIN || errno == ENOTCONN))
        return 0;
    if (n != (ssize_t)request_len) {
        fail(s, "write request");
        return -1;
    }
    s->state = ST_HEAD;
    return 0;
}

/* Act on readiness; returns 1 when the cycle ended (ok or not). */
static int step(struct slot *s, unsigned events)
{
    static const unsigned char close_frame[] = { 0x88, 0x82, 0x11, 0x22, 0x33, 0x44,
                                                 0x03 ^ 0x11, 0xE8 ^ 0x22 };
    ssize_t n;
    errno = 0;
    if (s->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return 0;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            errno = err;
            fail(s, "connect");
            return 1;
        }
        if (send_request(s) < 0)
            return 1;
        if (s->state == ST_CONNECTING)
            return 0;
    }
    for (;;) {
        n = read(s->fd, s->buf + s->got, sizeof s->buf - 1 - s->got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n < 0) {
            fail(s, "read");
            return 1;
        }
        if (n == 0) {
            /* EOF: the end of a good cycle once the close frame came */
            if (s->state == ST_CLOSE && s->got >= 4 && memcmp(s->buf, "\x88\x02\x03\xe8", 4) == 0) {
                ok++;
                return 1;
            }
            fail(s, s->state == ST_HEAD ? "EOF before the 101" : "EOF without the close frame");
            return 1;
        }
        s->got += (size_t)n;
        s->buf[s->got] = '\0';
        if (s->state == ST_HEAD) {
            char *end = strstr(s->buf, "\r\n\r\n");
            if (!end) {
                if (s->got >= sizeof s->buf - 1) {
                    fail(s, "head too long");
                    return 1;
                }
                continue;
            }
            if (strncmp(s->buf, "HTTP/1.1 101 ", 13) != 0) {
                char what[64];
                snprintf(what, sizeof what, "status: %.20s", s->buf);
                errno = 0;
                fail(s, what);
                return 1;
            }
            /* keep what followed the head (nothing, from an echo server) */
            s->got -= (size_t)(end + 4 - s->buf);
            memmove(s->buf, end + 4, s->got);
            if (write(s->fd, close_frame, sizeof close_frame) != (ssize_t)sizeof close_frame) {
                fail(s, "write close");
                return 1;
            }
            s->state = ST_CLOSE;
        } else if (s->got >= sizeof s->buf - 1) {
            fail(s, "too much after the close");
            return 1;
        }
    }
}

int main(int argc, char **argv)
{
    int port, parallel, i;
    const char *path;
    double deadline_s, t0, t_end, deadline;
    struct slot *slots;
    struct epoll_event evs[256];
    struct rusage ru;
    if (argc < 4) {
        fprintf(stderr, "usage: churn PORT CYCLES PARALLEL [PATH] [DEADLINE_SECONDS]\n");
        return 2;
    }
    port = atoi(argv[1]);
    cycles = atol(argv[2]);
    parallel = atoi(argv[3]);
    path = argc > 4 ? argv[4] : "/ws";
    deadline_s = argc > 5 ? atof(argv[5]) : 60;
    if (port <= 0 || cycles <= 0 || parallel <= 0) {
        fprintf(stderr, "churn: bad arguments\n");
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                   "Sec-WebSocket-Version: 13\r\n\r\n", path, port);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ep = epoll_create1(EPOLL_CLOEXEC);
    slots = calloc((size_t)parallel, sizeof *slots);
    if (ep < 0 || !slots) {
        perror("churn");
        return 1;
    }
    t0 = now();
    deadline = t0 + deadline_s;
    for (i = 0; i < parallel; i++)
        start(&slots[i]);
    while (done < started || started < cycles) {
        int n = epoll_wait(ep, evs, 256, 100);
        double t = now();
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 1;
        }
        for (i = 0; i < n; i++) {
            struct slot *s = evs[i].data.ptr;
            if (s->fd >= 0 && step(s, evs[i].events)) {
                finish(s);
                start(s);
            }
        }
        /* a cycle stuck for 5 s is an error; the whole run has a deadline */
        for (i = 0; i < parallel; i++) {
            struct slot *s = &slots[i];
            if (s->fd >= 0 && (t - s->started > 5 || t > deadline)) {
                errno = 0;
                fail(s, "no answer");
                finish(s);
                if (t <= deadline)
                    start(s);
            }
        }
        if (t > deadline)
            break;
    }
    t_end = now();
    getrusage(RUSAGE_SELF, &ru);
    for (i = 0; first_error[i]; i++)   /* keep the JSON string plain */
        if (first_error[i] == '"' || first_error[i] == '\\' || (unsigned char)first_error[i] < 0x20)
            first_error[i] = '?';
    printf("{\"cycles\":%ld,\"ok\":%ld,\"errors\":%ld,\"seconds\":%.4f,\"rate\":%.0f,\"cpu\":%.4f,"
           "\"first_error\":\"%s\"}\n",
           done, ok, errors, t_end - t0, (double)ok / (t_end - t0),
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, first_error);
    free(slots);
    close(ep);
    return 0;
}
