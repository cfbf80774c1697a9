/* SPDX-License-Identifier: MIT
 *
 * client.c -- resolve, socket, connect, TLS, handshake (see client.h).
 */
#include "io/client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/tls.h"

/*
** Resolve host:port and start a non-blocking connect to the first address
** that takes it. Returns the socket (connect may still be in progress) with
** the address in *peer, or -1 with the error code.
*/
static int client_dial(const char *host, int port, struct sockaddr_storage *peer, int *code,
                       char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[16];
    int fd = -1, rc, e = 0, one = 1;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof portstr, "%d", port);
    if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
        snprintf(err, errlen, "%s", gai_strerror(rc));
        *code = WS_ERESOLVE;
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            memset(peer, 0, sizeof *peer);
            if (ai->ai_addrlen <= sizeof *peer)
                memcpy(peer, ai->ai_addr, ai->ai_addrlen);
            break;
        }
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "%s", strerror(e));
        *code = e == ECONNREFUSED ? WS_EREFUSED : WS_EIO;
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int client_connect(struct conn *c, const struct client_params *p, int *started,
                   char *err, size_t errlen)
{
    struct sockaddr_storage peer;
    struct ssl_st *ssl = NULL;
    char hosthdr[300];
    int code = WS_OK, fd, rc;
    *started = 0;
    if (strchr(p->host, ':'))
        snprintf(hosthdr, sizeof hosthdr, "[%s]:%d", p->host, p->port);
    else
        snprintf(hosthdr, sizeof hosthdr, "%s:%d", p->host, p->port);
    fd = client_dial(p->host, p->port, &peer, &code, err, errlen);
    if (fd < 0)
        return code;
    if (p->tls && !(ssl = tls_new(p->tls, fd, 0, p->host))) {
        snprintf(err, errlen, "%s", tls_last_error());
        close(fd);
        return WS_ETLS;
    }
    conn_init(c, fd, NULL, p->hooks, p->opt, 1, 1);
    *started = 1;
    memcpy(&c->peer, &peer, sizeof c->peer);
    if (ssl)
        conn_use_tls(c, ssl);
    rc = conn_client_start(c, hosthdr, p->path, p->extra, p->extra_len);
    if (rc != WS_OK) {
        snprintf(err, errlen, "%s", ws_strerror(rc));
        conn_abort(c, rc, err);
        return rc;
    }
    return WS_OK;
}
