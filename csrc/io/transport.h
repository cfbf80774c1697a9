/* SPDX-License-Identifier: MIT
 *
 * transport.h -- how a connection moves its bytes: plain TCP or TLS behind
 * one small interface (Redis's connection.h), so conn.c has one read path
 * and one write path and never asks which one it drives. HTTP/2 streams
 * (RFC 8441) are meant to plug in here too.
 *
 * A transport does not own the socket: conn.c calls ops->finish, closes
 * the fd, and calls ops->release once its owner is done with the
 * connection (the TLS session is readable until then: ws.tls in a close
 * handler). No Lua, no frames.
 *
 * A server's TLS transport looks at the first byte before OpenSSL sees
 * anything: a TLS connection begins with a handshake record (0x16, RFC 8446
 * §5.1). Anything else is not TLS: the transport turns plain (the session
 * is freed), says what it saw in not_tls, and its read fails with
 * EPROTONOSUPPORT, so that conn.c can answer a plain HTTP request with a
 * plain 400, as nginx does, and drop the rest.
 */
#ifndef LUAWS_IO_TRANSPORT_H
#define LUAWS_IO_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ssl_st;
struct transport;

struct transport_ops {
    /* Read up to n bytes: > 0 bytes read, 0 at the peer's EOF, or -1 with
     * errno: EAGAIN when nothing is there now (with t->want_write set when
     * TLS must write before it can read), EPROTO for a TLS failure, else
     * the socket's error. */
    ssize_t (*read)(struct transport *t, void *buf, size_t n);
    /* Write up to n bytes: > 0 bytes taken, or -1 with errno (EAGAIN when
     * the socket is full or TLS waits to read, EPIPE, EPROTO, ...). */
    ssize_t (*write)(struct transport *t, const void *buf, size_t n);
    /* Gather-write straight to the socket (MSG_NOSIGNAL), with write's
     * returns; NULL when the transport cannot (TLS encrypts a record at a
     * time, so its caller copies into the queue instead). */
    ssize_t (*writev)(struct transport *t, struct iovec *iov, int cnt);
    /* Shut our write side: close_notify first for TLS. */
    void (*shutdown)(struct transport *t);
    /* Bytes already read from the socket and decrypted that no read has
     * taken yet (the socket will not signal them again); 0 for plain TCP. */
    size_t (*pending)(const struct transport *t);
    /* Bytes taken by a write that the socket has not taken yet (TLS records
     * encrypted while it was full); NULL for plain TCP, which holds none. */
    size_t (*unsent)(const struct transport *t);
    /* Write those: 0 when none is left, else -1 with errno (EAGAIN). */
    int (*flush)(struct transport *t);
    /* Words for a failed call's errno (OpenSSL's for EPROTO). */
    const char *(*error)(const struct transport *t, int err);
    /* The socket is about to close: TLS sends close_notify (best effort)
     * unless it went already. */
    void (*finish)(struct transport *t);
    /* Let go of what the transport holds (the TLS session), not the fd. */
    void (*release)(struct transport *t);
};

/* What a TLS server's first byte said when it was not TLS. */
enum transport_not_tls {
    TRANSPORT_TLS = 0,            /* TLS (or not looked at yet) */
    TRANSPORT_PLAIN_HTTP,         /* a letter: a plain HTTP request ("GET /") */
    TRANSPORT_GARBAGE             /* anything else */
};

struct transport {
    const struct transport_ops *ops;
    struct ssl_st *ssl;           /* TLS session, or NULL */
    int fd;
    uint8_t want_write;           /* TLS: the last read waits for writability */
    uint8_t sniff;                /* TLS server: the first byte is still to be looked at */
    uint8_t not_tls;              /* enum transport_not_tls */
    /* Plain TCP: the writes now are the last before the socket is closed.
     * They go with MSG_MORE, so the kernel holds a short tail and close()
     * sends it with the FIN in one segment (conn.c: conn_flush). */
    uint8_t last;
};

/* Plain TCP over the connected socket fd. */
void transport_plain(struct transport *t, int fd);

/* TLS over the socket of t (after transport_plain): the session comes from
 * tls_new and is freed by ops->release. server: 1 for the server side,
 * whose first byte is looked at (see above). */
void transport_tls(struct transport *t, struct ssl_st *ssl, int server);

/* Read and drop up to max bytes the peer has sent and nobody will read
 * (non-blocking), so that closing the socket sends a FIN, not a reset: the
 * peer then reads what was written to it last (an alert, a 400). */
#define TRANSPORT_DISCARD_MAX 65536
void transport_discard_input(struct transport *t, size_t max);

/* 1 for a TLS transport. */
static inline int transport_is_tls(const struct transport *t) { return t->ssl != NULL; }

#endif
