/* SPDX-License-Identifier: MIT
 *
 * transport.c -- plain TCP and TLS behind struct transport_ops (see
 * transport.h).
 *
 * Plain writes use send/sendmsg with MSG_NOSIGNAL, so a peer that reset
 * gives EPIPE even in a host program that restored SIGPIPE's default, and
 * MSG_MORE when they are the last before the close (transport.h: last). TLS
 * maps OpenSSL's wants onto errno (tls.c does the SSL_get_error part): a
 * read that must write first sets want_write, so conn.c asks for EV_WRITE.
 */
#include "io/transport.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/tls.h"

/* ------------------------------------------------------------ plain TCP */

static ssize_t plain_read(struct transport *t, void *buf, size_t n)
{
    return read(t->fd, buf, n);
}

static ssize_t plain_write(struct transport *t, const void *buf, size_t n)
{
    return send(t->fd, buf, n, MSG_NOSIGNAL | (t->last ? MSG_MORE : 0));
}

static ssize_t plain_writev(struct transport *t, struct iovec *iov, int cnt)
{
    struct msghdr m;
    ssize_t n;
    memset(&m, 0, sizeof m);
    m.msg_iov = iov;
    m.msg_iovlen = (size_t)cnt;
    do
        n = sendmsg(t->fd, &m, MSG_NOSIGNAL | (t->last ? MSG_MORE : 0));
    while (n < 0 && errno == EINTR);
    return n;
}

static void plain_shutdown(struct transport *t)
{
    shutdown(t->fd, SHUT_WR);
}

static size_t plain_pending(const struct transport *t)
{
    (void)t;
    return 0;
}

static const char *plain_error(const struct transport *t, int err)
{
    (void)t;
    return strerror(err);
}

static void plain_release(struct transport *t)
{
    (void)t;
}

static const struct transport_ops plain_ops = {
    plain_read, plain_write, plain_writev, plain_shutdown, plain_pending, NULL, NULL,
    plain_error, plain_release, plain_release
};

void transport_plain(struct transport *t, int fd)
{
    t->ops = &plain_ops;
    t->ssl = NULL;
    t->fd = fd;
    t->want_write = 0;
    t->sniff = 0;
    t->not_tls = TRANSPORT_TLS;
    t->last = 0;
}

void transport_discard_input(struct transport *t, size_t max)
{
    char buf[4096];
    ssize_t n;
    while (max > 0) {
        n = recv(t->fd, buf, max < sizeof buf ? max : sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            max -= (size_t)n;
        else if (!(n < 0 && errno == EINTR))
            break;
    }
}

/* ------------------------------------------------------------------ TLS */

/* A server's first byte: a TLS handshake record (0x16), or not TLS at all.
 * 1 for TLS; 0 with errno set (EAGAIN: nothing yet; EPROTONOSUPPORT: not
 * TLS, the transport is plain now) or at EOF (*eof). */
static int tls_t_sniff(struct transport *t, int *eof)
{
    unsigned char b;
    ssize_t n;
    do
        n = recv(t->fd, &b, 1, MSG_PEEK);
    while (n < 0 && errno == EINTR);
    *eof = n == 0;
    if (n <= 0)
        return 0;
    t->sniff = 0;
    if (b == 0x16)
        return 1;
    /* HTTP methods are upper-case tokens (RFC 9110 §9.1) */
    t->not_tls = b >= 'A' && b <= 'Z' ? TRANSPORT_PLAIN_HTTP : TRANSPORT_GARBAGE;
    tls_free(t->ssl);
    t->ssl = NULL;
    t->ops = &plain_ops;
    errno = EPROTONOSUPPORT;
    return 0;
}

static ssize_t tls_t_read(struct transport *t, void *buf, size_t n)
{
    int want, eof;
    ssize_t r;
    if (t->sniff && !tls_t_sniff(t, &eof))
        return eof ? 0 : -1;
    r = tls_read(t->ssl, buf, n, &want);
    t->want_write = 0;
    if (r > 0)
        return r;
    switch (want) {
    case TLS_WANT_WRITE:
        t->want_write = 1;
        /* fall through */
    case TLS_WANT_READ:
        errno = EAGAIN;
        return -1;
    case TLS_EOF:
        return 0;
    default:
        errno = EPROTO;
        return -1;
    }
}

/* A write that waits for readability is EAGAIN too: the next readable event
 * flushes the queue again (conn.c). */
static ssize_t tls_t_write(struct transport *t, const void *buf, size_t n)
{
    int want;
    ssize_t r = tls_write(t->ssl, buf, n, &want);
    if (r > 0)
        return r;
    errno = want == TLS_WANT_READ || want == TLS_WANT_WRITE ? EAGAIN
            : want == TLS_EOF ? EPIPE : EPROTO;
    return -1;
}

static void tls_t_shutdown(struct transport *t)
{
    tls_shutdown(t->ssl);
    shutdown(t->fd, SHUT_WR);
}

static size_t tls_t_pending(const struct transport *t)
{
    return tls_pending(t->ssl);
}

static size_t tls_t_unsent(const struct transport *t)
{
    return tls_unsent(t->ssl);   /* a transport without a session is plain_ops */
}

static int tls_t_flush(struct transport *t)
{
    return tls_flush(t->ssl);
}

static const char *tls_t_error(const struct transport *t, int err)
{
    (void)t;
    return err == EPROTO ? tls_last_error() : strerror(err);
}

static void tls_t_finish(struct transport *t)
{
    /* A handshake that failed: OpenSSL's alert is queued; bytes of the
     * peer's still unread would make the close a reset, which may destroy
     * the alert before the peer reads it (RFC 9293 §3.6.1). */
    if (t->ssl && !tls_handshake_done(t->ssl))
        transport_discard_input(t, TRANSPORT_DISCARD_MAX);
    tls_close_notify(t->ssl);
}

static void tls_t_release(struct transport *t)
{
    tls_free(t->ssl);
    t->ssl = NULL;
    t->ops = &plain_ops;
}

static const struct transport_ops tls_ops = {
    tls_t_read, tls_t_write, NULL, tls_t_shutdown, tls_t_pending, tls_t_unsent, tls_t_flush,
    tls_t_error, tls_t_finish, tls_t_release
};

void transport_tls(struct transport *t, struct ssl_st *ssl, int server)
{
    t->ops = &tls_ops;
    t->ssl = ssl;
    t->want_write = 0;
    t->sniff = server != 0;
    t->not_tls = TRANSPORT_TLS;
}
