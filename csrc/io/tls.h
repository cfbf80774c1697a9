/* SPDX-License-Identifier: MIT
 *
 * tls.h -- OpenSSL for luaws: server and client contexts, and the mapping of
 * SSL_get_error onto "wait for read / wait for write / failed" (cqueues'
 * ssl_error idea), so transport.c drives a non-blocking TLS socket the way it
 * drives a plain one.
 *
 * A server context is a set: one SSL_CTX per certificate, chosen by the
 * name the client asks for (SNI, RFC 6066 §3; names matched as RFC 6125
 * §6.4 says, a wildcard "*.example.com" standing for one whole leftmost
 * label), with the default one (the one sessions are made with) owning
 * the others. Replacing a server's set (a reload) never touches sessions
 * already made: each holds a reference to its contexts, so open connections
 * keep their certificate and new handshakes get the new one. Every context
 * of a set offers ALPN "http/1.1" (RFC 7301) and, when asked, requests and
 * verifies client certificates against one CA file.
 *
 * It does not do OCSP stapling, session ticket key rotation across
 * processes, or certificate management beyond loading PEM files.
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

/* Client certificates, for a server. */
enum tls_verify_client {
    TLS_CLIENT_NONE = 0,       /* none asked for */
    TLS_CLIENT_REQUIRED,       /* a client without a valid one is refused */
    TLS_CLIENT_OPTIONAL        /* asked for; none is fine, an invalid one is refused */
};

/* One certificate of a server: PEM files, and the names it answers for.
 * No names: those of the certificate itself (its DNS subjectAltNames, else
 * its subject CN). */
struct tls_cert_spec {
    const char *certificate;         /* the chain, leaf first */
    const char *key;
    const char *const *names;        /* "a.example", "*.example.com"; or NULL */
    int nnames;
};

/* A server's TLS: its certificates (the default, for a client that sends no
 * name or one nothing matches, is the first without names, else the first)
 * and its client certificate policy. */
struct tls_server_spec {
    const struct tls_cert_spec *certs;
    int ncerts;                      /* at least 1 */
    const char *ca;                  /* PEM file of the CAs client certificates must chain to */
    int verify_client;               /* enum tls_verify_client; needs ca */
};

/* A server context set from spec (reads every file now). NULL with a
 * message in err naming what failed: the file that cannot be read or
 * parsed, a key that does not match its certificate. */
struct ssl_ctx_st *tls_server_ctx(const struct tls_server_spec *spec, char *err, size_t errlen);

/* A client context offering ALPN "http/1.1"; verify = 1 checks the peer's
 * chain against ca_file (or the system store when ca_file is NULL);
 * cert_file and key_file (both or neither): the certificate it presents
 * when the server asks for one. NULL with err on failure, naming the file. */
struct ssl_ctx_st *tls_client_ctx(int verify, const char *ca_file, const char *cert_file,
                                  const char *key_file, char *err, size_t errlen);

/* Free a context (reference counted by OpenSSL: connections keep theirs). */
void tls_ctx_free(struct ssl_ctx_st *ctx);

/* A TLS session on a connected socket; host names the server for SNI and
 * verification (client only, may be NULL). NULL on failure. */
struct ssl_st *tls_new(struct ssl_ctx_st *ctx, int fd, int server, const char *host);

/* Read up to n bytes. Returns bytes read (> 0), or 0 with *want set. */
ssize_t tls_read(struct ssl_st *ssl, void *buf, size_t n, int *want);

/* Write up to n bytes (at most four records' worth per call), sent with
 * one send(2). Returns bytes taken (> 0), or 0 with *want set. */
ssize_t tls_write(struct ssl_st *ssl, const void *buf, size_t n, int *want);

/* Bytes OpenSSL has decrypted that a read has not taken yet, or 1 when it
 * holds only records not yet decrypted (read ahead); 0: nothing held. */
size_t tls_pending(const struct ssl_st *ssl);

/* Records encrypted that the socket has not taken yet (it was full): they
 * go out first at the next tls_write, or with tls_flush. */
size_t tls_unsent(const struct ssl_st *ssl);

/* Give the socket the records it had refused: 0 when none is left, else -1
 * with errno (EAGAIN: still full). */
int tls_flush(struct ssl_st *ssl);

/* Send close_notify (best effort; the socket is non-blocking). */
void tls_shutdown(struct ssl_st *ssl);

/* The socket is about to close: send close_notify if the handshake
 * finished and none went yet (best effort). The session stays readable
 * (tls_get_info) until tls_free. */
void tls_close_notify(struct ssl_st *ssl);

/* 1 once the session's handshake has finished. */
int tls_handshake_done(const struct ssl_st *ssl);

/* Free the session (NULL: nothing). */
void tls_free(struct ssl_st *ssl);

/* The last failure as text, for logs and close reasons ("" if none):
 * "tls: certificate verify failed for 127.0.0.1: self-signed certificate",
 * "tls: wrong version number". */
const char *tls_last_error(void);

/* What a session negotiated, for ws.tls. Strings are OpenSSL's (valid
 * while the session lives) or NULL. */
struct tls_info {
    const char *version;             /* "TLSv1.3" */
    const char *cipher;              /* "TLS_AES_256_GCM_SHA384" */
    const char *server_name;         /* SNI: the name the client asked for (or sent, on a client) */
    const unsigned char *alpn;       /* the protocol ALPN chose ("http/1.1"), not NUL-terminated */
    unsigned int alpn_len;
    int peer;                        /* the peer presented a certificate */
    int verified;                    /* and it verified */
};
void tls_get_info(struct ssl_st *ssl, struct tls_info *info);

/* A field of the peer's certificate as text into buf (always
 * NUL-terminated): the subject or issuer (RFC 4514 form, "CN=alice,O=Example"),
 * the serial number (upper-case hex, as openssl x509 -serial prints it), the
 * SHA-256 fingerprint (lower-case hex), or the i-th subjectAltName (from 0:
 * "DNS:a.example", "IP:127.0.0.1", "email:…", "URI:…"). Returns the
 * length, or -1 when there is no such field (no peer certificate, no i-th
 * name). */
enum tls_field { TLS_SUBJECT, TLS_ISSUER, TLS_SERIAL, TLS_FINGERPRINT, TLS_SAN };
int tls_peer_field(struct ssl_st *ssl, int field, int i, char *buf, size_t len);

/* Does a certificate name (pattern: "a.example" or "*.example.com") match
 * host, per RFC 6125 §6.4? Case-insensitive, a trailing dot on host
 * ignored; "*" only as the whole leftmost label of a name of 3 labels or
 * more, standing for exactly one label ("*.example.com" matches
 * "a.example.com", not "example.com" or "a.b.example.com"). 1 or 0. */
int tls_name_match(const char *pattern, const char *host);

#endif
