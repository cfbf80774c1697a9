/* SPDX-License-Identifier: MIT
 *
 * tls.h -- OpenSSL for luaws: server and client contexts, and the mapping of
 * SSL_get_error onto "wait for read / wait for write / failed" (cqueues'
 * ssl_error idea), so transport.c drives a non-blocking TLS socket the way it
 * drives a plain one.
 *
 * It does not do certificate management beyond loading a PEM chain and key,
 * session tickets policy, or ALPN.
 */
#ifndef LUAWS_IO_TLS_H
#define LUAWS_IO_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct ssl_ctx_st;
struct ssl_st;

/* What a TLS call needs before it can go on. */
enum tls_want {
    TLS_DONE = 0,      /* it completed (n > 0 bytes, or the handshake finished) */
    TLS_WANT_READ,     /* call again once the socket is readable */
    TLS_WANT_WRITE,    /* call again once the socket is writable */
    TLS_EOF,           /* the peer closed (close_notify or TCP EOF) */
    TLS_FAILED         /* a protocol or certificate error: drop the connection */
};

/* A server context from PEM files. NULL with a message in err on failure. */
struct ssl_ctx_st *tls_server_ctx(const char *cert_file, const char *key_file,
                                  char *err, size_t errlen);

/* A client context; verify = 1 checks the peer's chain against ca_file (or
 * the system store when ca_file is NULL). NULL with err on failure. */
struct ssl_ctx_st *tls_client_ctx(int verify, const char *ca_file, char *err, size_t errlen);

/* Free a context (reference counted by OpenSSL: connections keep theirs). */
void tls_ctx_free(struct ssl_ctx_st *ctx);

/* A TLS session on a connected socket; host names the server for SNI and
 * verification (client only, may be NULL). NULL on failure. */
struct ssl_st *tls_new(struct ssl_ctx_st *ctx, int fd, int server, const char *host);

/* Read up to n bytes. Returns bytes read (> 0), or 0 with *want set. */
ssize_t tls_read(struct ssl_st *ssl, void *buf, size_t n, int *want);

/* Write up to n bytes. Returns bytes written (> 0), or 0 with *want set. */
ssize_t tls_write(struct ssl_st *ssl, const void *buf, size_t n, int *want);

/* Bytes OpenSSL has decrypted that a read has not taken yet. */
size_t tls_pending(const struct ssl_st *ssl);

/* Send close_notify (best effort; the socket is non-blocking). */
void tls_shutdown(struct ssl_st *ssl);

/* Send close_notify (best effort) and free the session. */
void tls_free(struct ssl_st *ssl);

/* The last OpenSSL error as text, for logs ("" if none). */
const char *tls_last_error(void);

#endif
