/* SPDX-License-Identifier: MIT
 *
 * server.c -- listening sockets, accept, and the list of live connections.
 *
 * Accepted sockets are non-blocking, close-on-exec and TCP_NODELAY (small
 * WebSocket frames must not wait for Nagle). Beyond max_connections a new
 * socket gets a 503 and is closed; existing ones are not touched. When
 * accept() runs out of descriptors (EMFILE/ENFILE) the server stops accepting
 * for a moment instead of spinning on a listening socket that stays readable.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"
#include "tls.h"

/* Accepts per readable event, so a connection storm cannot starve the rest. */
#define SERVER_ACCEPTS_PER_EVENT 64

/* How long to stop accepting after EMFILE. */
#define SERVER_EMFILE_PAUSE 0.1

/* Descriptors ran out: stop every server's listeners for a moment. */
static void server_emfile_resume(struct ev_loop *loop, ev_timer *w, int revents);

static void server_listeners(struct server *s, int on)
{
    struct ev_loop *loop = loop_get();
    int i;
    for (i = 0; i < s->nlisten; i++) {
        if (on)
            ev_io_start(loop, &s->listen[i]);
        else
            ev_io_stop(loop, &s->listen[i]);
    }
}

static void server_emfile_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct server *s = (struct server *)((char *)w - offsetof(struct server, retry));
    (void)loop;
    (void)revents;
    if (!s->closed)
        server_listeners(s, 1);
}

/* Refuse one socket past max_connections: a short 503, then close. */
static void server_refuse(struct server *s, int fd)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               "Connection: close\r\nRetry-After: 1\r\n\r\n";
    ssize_t n = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
    (void)n;   /* best effort: the socket is fresh, its buffer empty */
    shutdown(fd, SHUT_WR);
    close(fd);
    s->stats.rejected++;
}

static void server_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct server *s = w->data;
    int i;
    (void)revents;
    for (i = 0; i < SERVER_ACCEPTS_PER_EVENT && !s->closed; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int one = 1, fd = accept4(w->fd, (struct sockaddr *)&peer, &plen,
                                  SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && !ev_is_active(&s->retry)) {
                /* each server has its own retry timer: two servers out of
                 * descriptors at once must not share (and re-init) one */
                server_listeners(s, 0);
                ev_timer_init(&s->retry, server_emfile_resume, SERVER_EMFILE_PAUSE, 0.);
                ev_timer_start(loop, &s->retry);
            }
            return;
        }
        s->stats.accepted++;
        if (s->max_connections && s->nconns >= s->max_connections) {
            server_refuse(s, fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = s->alloc(s);
        if (!c) {
            close(fd);
            continue;
        }
        conn_init(c, fd, s, s->hooks, &s->opt, 0);
        if (plen <= sizeof c->peer)
            memcpy(&c->peer, &peer, plen);
        if (s->tls) {
            struct ssl_st *ssl = tls_new(s->tls, fd, 1, NULL);
            if (!ssl)
                conn_abort(c, tls_last_error());
            else
                conn_use_tls(c, ssl);
        }
    }
}

int server_listen(struct server *s, const char *host, int port, int backlog,
                  char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[16];
    int rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (host && strcmp(host, "*") == 0)
        host = NULL;
    snprintf(portstr, sizeof portstr, "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", host ? host : "*", gai_strerror(rc));
        return WS_ERESOLVE;
    }
    s->nlisten = 0;
    for (ai = res; ai && s->nlisten < SERVER_MAX_LISTEN; ai = ai->ai_next) {
        int one = 1, fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                 ai->ai_protocol);
        if (fd < 0) {
            if (errno == EAFNOSUPPORT)
                continue;   /* a kernel without IPv6: the other family will do */
            goto fail;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)   /* so 0.0.0.0 and :: can both bind */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (s->nlisten > 0 && port == 0) {
            /* the other families take the port the first one was given */
            if (ai->ai_family == AF_INET)
                ((struct sockaddr_in *)ai->ai_addr)->sin_port = htons((uint16_t)s->port);
            else if (ai->ai_family == AF_INET6)
                ((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons((uint16_t)s->port);
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            /* "localhost" may name ::1 on a host without an IPv6 loopback */
            if (e == EADDRNOTAVAIL || e == EAFNOSUPPORT)
                continue;
            goto fail;
        }
        if (s->nlisten == 0) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof ss;
            getsockname(fd, (struct sockaddr *)&ss, &len);
            s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                               : ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
        ev_io_init(&s->listen[s->nlisten], server_accept_cb, fd, EV_READ);
        s->listen[s->nlisten].data = s;
        s->nlisten++;
    }
    freeaddrinfo(res);
    if (s->nlisten == 0) {
        snprintf(err, errlen, "%s port %d: no address to listen on", host ? host : "*", port);
        return WS_EIO;
    }
    s->closed = 0;
    server_listeners(s, 1);
    loop_server_add(s);
    return WS_OK;
fail:
    snprintf(err, errlen, "%s port %d: %s", host ? host : "*", port, strerror(errno));
    freeaddrinfo(res);
    while (s->nlisten > 0)
        close(s->listen[--s->nlisten].fd);
    return WS_EIO;
}

void server_close(struct server *s, unsigned code, const char *reason, int shutdown)
{
    struct conn *c;
    if (!s->closed) {
        s->closed = 1;
        server_listeners(s, 0);
        while (s->nlisten > 0)
            close(s->listen[--s->nlisten].fd);
        ev_timer_stop(loop_get(), &s->retry);
    }
    if (!code)
        return;
    for (c = s->conns; c; c = c->next) {
        if (shutdown)
            c->flags |= CF_SHUTDOWN;
        if (c->state == CONN_OPEN)
            conn_close(c, code, reason, reason ? strlen(reason) : 0);
        else if (c->state == CONN_HANDSHAKE)
            conn_abort(c, reason);
    }
}

void server_conn_add(struct server *s, struct conn *c)
{
    c->prev = NULL;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
}

void server_conn_remove(struct server *s, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (s->conns == c)
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->nconns--;
}
