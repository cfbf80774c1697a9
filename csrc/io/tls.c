/* SPDX-License-Identifier: MIT
 *
 * tls.c -- OpenSSL contexts and non-blocking reads and writes (see tls.h).
 *
 * Partial writes are enabled and the write buffer may move between retries,
 * because conn.c's send queue compacts itself (SSL_MODE_ENABLE_PARTIAL_WRITE,
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). TLS 1.2 is the floor.
 */
#include "io/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static char last_error[256];

/* Keep the first queued OpenSSL error as text, and clear the queue so the
 * next call starts clean. */
static void tls_note_error(const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[200] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(last_error, sizeof last_error, "%s%s%s", what, *buf ? ": " : "", buf);
    ERR_clear_error();
}

const char *tls_last_error(void)
{
    return last_error;
}

/* Can the file be read? Else say which one and why ("cannot read
 * certificate cert.pem: No such file or directory"): OpenSSL's own words
 * for a missing file do not name it. */
static int tls_readable(const char *what, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "rb");
    if (f) {
        fclose(f);
        return 1;
    }
    snprintf(err, errlen, "cannot read %s %s: %s", what, file, strerror(errno));
    return 0;
}

static SSL_CTX *tls_ctx_common(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

struct ssl_ctx_st *tls_server_ctx(const char *cert_file, const char *key_file,
                                  char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_ctx_common(TLS_server_method());
    if (!ctx)
        goto fail;
    if (!tls_readable("certificate", cert_file, err, errlen) ||
        !tls_readable("key", key_file, err, errlen))
        goto out;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        tls_note_error("");
        snprintf(err, errlen, "cannot load certificate %s%s", cert_file, last_error);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        tls_note_error("");
        snprintf(err, errlen, "cannot load key %s%s", key_file, last_error);
        goto out;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_note_error("");
        snprintf(err, errlen, "key %s does not match certificate %s%s", key_file, cert_file, last_error);
        goto out;
    }
    return ctx;
fail:
    tls_note_error("tls");
    snprintf(err, errlen, "%s", last_error);
out:
    SSL_CTX_free(ctx);
    return NULL;
}

struct ssl_ctx_st *tls_client_ctx(int verify, const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_ctx_common(TLS_client_method());
    if (!ctx)
        goto fail;
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (ca_file && !tls_readable("CA file", ca_file, err, errlen)) {
            SSL_CTX_free(ctx);
            return NULL;
        }
        if ((ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx)) != 1)
            goto fail;
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
fail:
    tls_note_error("tls");
    snprintf(err, errlen, "%s", last_error);
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

struct ssl_st *tls_new(struct ssl_ctx_st *ctx, int fd, int server, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1)
        goto fail;
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        if (host) {
            unsigned char addr[16];
            int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
            if (is_ip) {   /* no SNI for addresses (RFC 6066 §3); verify the IP SAN */
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
            } else {
                SSL_set_tlsext_host_name(ssl, host);
                SSL_set1_host(ssl, host);
            }
        }
    }
    return ssl;
fail:
    tls_note_error("tls");
    SSL_free(ssl);
    return NULL;
}

/* Map the result of an SSL call to a want (cqueues' ssl_error). */
static int tls_want_of(SSL *ssl, int rc, const char *what)
{
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_EOF;
    case SSL_ERROR_SYSCALL:
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return TLS_WANT_READ;
        if (ERR_peek_error() == 0) {   /* EOF without close_notify, or a reset */
            snprintf(last_error, sizeof last_error, "%s: %s", what,
                     errno ? strerror(errno) : "unexpected EOF");
            return TLS_EOF;
        }
        /* fall through */
    default:
        tls_note_error(what);
        return TLS_FAILED;
    }
}

ssize_t tls_read(struct ssl_st *ssl, void *buf, size_t n, int *want)
{
    int rc;
    errno = 0;
    rc = SSL_read(ssl, buf, n > 0x7fffffff ? 0x7fffffff : (int)n);
    if (rc > 0) {
        *want = TLS_DONE;
        return rc;
    }
    *want = tls_want_of(ssl, rc, "tls read");
    return 0;
}

ssize_t tls_write(struct ssl_st *ssl, const void *buf, size_t n, int *want)
{
    int rc;
    errno = 0;
    rc = SSL_write(ssl, buf, n > 0x7fffffff ? 0x7fffffff : (int)n);
    if (rc > 0) {
        *want = TLS_DONE;
        return rc;
    }
    *want = tls_want_of(ssl, rc, "tls write");
    return 0;
}

size_t tls_pending(const struct ssl_st *ssl)
{
    int n = SSL_pending(ssl);
    return n > 0 ? (size_t)n : 0;
}

void tls_shutdown(struct ssl_st *ssl)
{
    SSL_shutdown(ssl);
}

void tls_free(struct ssl_st *ssl)
{
    if (!ssl)
        return;
    if (SSL_is_init_finished(ssl))
        SSL_shutdown(ssl);   /* close_notify, best effort: the fd is non-blocking */
    SSL_free(ssl);
    ERR_clear_error();
}
