/* SPDX-License-Identifier: MIT
 *
 * tls.c -- OpenSSL contexts and non-blocking reads and writes (see tls.h).
 *
 * Partial writes are enabled and the write buffer may move between retries,
 * because conn.c's send queue compacts itself (SSL_MODE_ENABLE_PARTIAL_WRITE,
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). TLS 1.2 is the floor.
 *
 * A server's set of contexts (SNI): the default context, the one every
 * session starts with, carries the table of names and the other contexts
 * in its ex_data, freed with it. A session holds a reference to the
 * context it was made with (OpenSSL's session_ctx) for as long as it
 * lives, so the table outlives every handshake that may consult it, even
 * after a reload has dropped the server's own reference. The servername
 * callback (RFC 6066 §3) moves a session to the context whose name
 * matches before the certificate is chosen, as nginx does; every context
 * of a set has the same verification settings, ALPN callback and session
 * id context, so the move changes the certificate and nothing else.
 */
#include "io/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static char last_error[512];

/* The reason of the first queued OpenSSL error ("wrong version number"),
 * into buf ("" if none); the queue is cleared, so the next call starts
 * clean. */
static const char *tls_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(buf, len, "%s", r);
    else if (e)
        ERR_error_string_n(e, buf, len);
    else if (len)
        buf[0] = '\0';
    ERR_clear_error();
    return buf;
}

/* last_error = what, then ": reason" when OpenSSL queued one. */
static void tls_note_error(const char *what)
{
    char r[200];
    tls_reason(r, sizeof r);
    snprintf(last_error, sizeof last_error, "%s%s%s", what, *r ? ": " : "", r);
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

/* err = "cannot load <what> <file>: <OpenSSL's reason>". */
static void tls_load_error(char *err, size_t errlen, const char *what, const char *file)
{
    char r[200];
    tls_reason(r, sizeof r);
    snprintf(err, errlen, "cannot load %s %s%s%s", what, file, *r ? ": " : "", r);
}

static SSL_CTX *tls_ctx_common(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Read ahead: one read(2) takes what the kernel has (several records)
     * instead of one record's header and then its body; tls_pending then
     * counts bytes OpenSSL holds undecrypted too (SSL_has_pending). */
    SSL_CTX_set_read_ahead(ctx, 1);
    return ctx;
}

/* ------------------------------------------------------------ the write side
 *
 * OpenSSL hands its BIO one record at a time. Through a socket BIO a 16 KiB
 * frame (16,388 bytes: two records, the second of 4 bytes) costs two
 * write(2)s, two TCP segments and two wake-ups of the peer, which reads
 * the first record, finds the frame unfinished and waits for the rest.
 * Our write BIO gathers what one call (SSL_read, SSL_write, a handshake
 * step, SSL_shutdown) writes and gives it to the socket with one send(2)
 * at the end of that call, or when OpenSSL flushes a handshake flight.
 *
 * The gathering happens in one scratch buffer for every session of the
 * process (a process is one thread), so a session has no buffer of its
 * own except while the socket has refused part of what it wrote: that
 * part (held) goes out before anything new is encrypted (tls_write waits
 * for it), so it is at most one call's records, TLS_WRITE_MAX and a few
 * records' overhead, or a handshake flight.
 */

/* Plaintext bytes encrypted by one tls_write: four full records. */
#define TLS_WRITE_MAX (4 * 16384)

struct tls_out {
    int fd;
    unsigned char *held;     /* records the socket has not taken yet, or NULL */
    size_t held_off, held_len, held_cap;
};

static struct {
    unsigned char *p;
    size_t len, cap;
    struct tls_out *owner;   /* whose records p holds; NULL when empty */
} gather;

static BIO_METHOD *out_method;

/* Lua unloads the module at lua_close (dlclose): the scratch and the BIO
 * method go back then, not with the library's statics. */
__attribute__((destructor)) static void tls_out_free(void)
{
    free(gather.p);
    gather.p = NULL;
    gather.len = gather.cap = 0;
    BIO_meth_free(out_method);
    out_method = NULL;
}

/* Room for len more bytes at *p (used bytes, capacity *cap). 0 if out of memory. */
static int tls_grow(unsigned char **p, size_t used, size_t *cap, size_t len)
{
    size_t want = used + len, c = *cap ? *cap : 4096;
    unsigned char *np;
    if (want <= *cap)
        return 1;
    while (c < want)
        c *= 2;
    np = realloc(*p, c);
    if (!np)
        return 0;
    *p = np;
    *cap = c;
    return 1;
}

static int tls_out_write(BIO *b, const char *data, int len)
{
    struct tls_out *o = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (o->held_len == 0 && (!gather.owner || gather.owner == o)) {
        if (!tls_grow(&gather.p, gather.len, &gather.cap, (size_t)len))
            return -1;
        memcpy(gather.p + gather.len, data, (size_t)len);
        gather.len += (size_t)len;
        gather.owner = o;
    } else {   /* after records the socket refused: behind them */
        if (o->held_off) {
            memmove(o->held, o->held + o->held_off, o->held_len);
            o->held_off = 0;
        }
        if (!tls_grow(&o->held, o->held_len, &o->held_cap, (size_t)len))
            return -1;
        memcpy(o->held + o->held_len, data, (size_t)len);
        o->held_len += (size_t)len;
    }
    return len;
}

/* Send p[0..n) while the socket takes it: bytes sent, *err = 0 when all
 * went, else the errno that stopped it (EAGAIN: full). */
static size_t tls_send(int fd, const unsigned char *p, size_t n, int *err)
{
    size_t done = 0;
    *err = 0;
    while (done < n) {
        ssize_t r = send(fd, p + done, n - done, MSG_NOSIGNAL);
        if (r > 0) {
            done += (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            *err = r < 0 ? (errno == EWOULDBLOCK ? EAGAIN : errno) : EAGAIN;
            break;
        }
    }
    return done;
}

/* Give the socket what the session gathered or holds. 0 when all is out,
 * else -1 with errno (EAGAIN: the socket is full, the rest is held). */
static int tls_out_flush(struct tls_out *o)
{
    int err = 0;
    if (gather.owner == o) {   /* then nothing is held: the records go first */
        size_t n = gather.len, sent = tls_send(o->fd, gather.p, n, &err);
        gather.owner = NULL;
        gather.len = 0;
        if (sent < n) {
            o->held = malloc(n - sent);
            if (!o->held) {
                errno = ENOMEM;
                return -1;
            }
            memcpy(o->held, gather.p + sent, n - sent);
            o->held_off = 0;
            o->held_len = o->held_cap = n - sent;
        }
        /* the scratch stays for the next call unless a large one grew it */
        if (gather.cap > 4 * TLS_WRITE_MAX) {
            free(gather.p);
            gather.p = NULL;
            gather.cap = 0;
        }
    } else if (o->held_len) {
        size_t sent = tls_send(o->fd, o->held + o->held_off, o->held_len, &err);
        o->held_off += sent;
        o->held_len -= sent;
        if (o->held_len == 0) {
            free(o->held);
            o->held = NULL;
            o->held_off = o->held_cap = 0;
        }
    }
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

static long tls_out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct tls_out *o = BIO_get_data(b);
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:   /* the end of a handshake flight, an alert */
        BIO_clear_retry_flags(b);
        if (tls_out_flush(o) == 0)
            return 1;
        if (errno == EAGAIN)
            BIO_set_retry_write(b);
        return -1;
    case BIO_CTRL_WPENDING:
        return (long)(o->held_len + (gather.owner == o ? gather.len : 0));
    case BIO_CTRL_DUP:
        return 1;
    default:
        return 0;
    }
}

static int tls_out_destroy(BIO *b)
{
    struct tls_out *o = BIO_get_data(b);
    if (o) {
        if (gather.owner == o) {
            gather.owner = NULL;
            gather.len = 0;
        }
        free(o->held);
        free(o);
        BIO_set_data(b, NULL);
    }
    return 1;
}

/* The write BIO of a session on fd. NULL if out of memory. */
static BIO *tls_out_new(int fd)
{
    struct tls_out *o;
    BIO *b;
    if (!out_method) {
        out_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "luaws gather");
        if (!out_method || !BIO_meth_set_write(out_method, tls_out_write) ||
            !BIO_meth_set_ctrl(out_method, tls_out_ctrl) ||
            !BIO_meth_set_destroy(out_method, tls_out_destroy)) {
            BIO_meth_free(out_method);
            out_method = NULL;
            return NULL;
        }
    }
    o = calloc(1, sizeof *o);
    b = o ? BIO_new(out_method) : NULL;
    if (!b) {
        free(o);
        return NULL;
    }
    o->fd = fd;
    BIO_set_data(b, o);
    BIO_set_init(b, 1);
    return b;
}

static struct tls_out *tls_out_of(const SSL *ssl)
{
    return BIO_get_data(SSL_get_wbio(ssl));
}

/* After a call: send what it wrote. A refusal other than a full socket is
 * kept for the caller (-1, errno). */
static int tls_after(SSL *ssl)
{
    struct tls_out *o = tls_out_of(ssl);
    if (gather.owner != o && o->held_len == 0)
        return 0;
    return tls_out_flush(o) < 0 && errno != EAGAIN ? -1 : 0;
}

size_t tls_unsent(const struct ssl_st *ssl)
{
    return tls_out_of(ssl)->held_len;
}

int tls_flush(struct ssl_st *ssl)
{
    return tls_out_flush(tls_out_of(ssl));
}

/* ------------------------------------------------------------ names */

int tls_name_match(const char *pattern, const char *host)
{
    size_t pl = strlen(pattern), hl = strlen(host);
    const char *dot;
    if (hl > 0 && host[hl - 1] == '.')
        hl--;
    if (pl > 0 && pattern[pl - 1] == '.')
        pl--;
    if (pl == 0 || hl == 0)
        return 0;
    if (pattern[0] != '*')   /* a '*' elsewhere (partial labels) is never matched */
        return !memchr(pattern, '*', pl) && pl == hl && strncasecmp(pattern, host, hl) == 0;
    /* RFC 6125 §6.4.3: the wildcard is the whole leftmost label, and at
     * least two labels follow it ("*.com" matches nothing) */
    if (pl < 2 || pattern[1] != '.' || memchr(pattern + 1, '*', pl - 1) ||
        !memchr(pattern + 2, '.', pl - 2) || pattern[2] == '.')
        return 0;
    dot = memchr(host, '.', hl);
    if (!dot || dot == host)   /* it stands for exactly one non-empty label */
        return 0;
    return hl - (size_t)(dot - host) == pl - 1 && strncasecmp(dot, pattern + 1, pl - 1) == 0;
}

/* A server's set: the names and the contexts other than the default. */
struct tls_sni_name {
    char *name;                      /* lower case */
    SSL_CTX *ctx;                    /* the default or one of ctxs */
};
struct tls_sni {
    SSL_CTX **ctxs;                  /* owned */
    int nctx;
    struct tls_sni_name *names;
    int nnames, cap;
};

static void tls_sni_destroy(struct tls_sni *t)
{
    int i;
    if (!t)
        return;
    for (i = 0; i < t->nctx; i++)
        SSL_CTX_free(t->ctxs[i]);
    for (i = 0; i < t->nnames; i++)
        free(t->names[i].name);
    free(t->ctxs);
    free(t->names);
    free(t);
}

/* ex_data free callback: the default context goes, and its set with it. */
static void tls_sni_exfree(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    tls_sni_destroy(ptr);
}

static int sni_index = -1;

/* Add name (len bytes, lower-cased here) for ctx. 0 if out of memory or the
 * name holds a NUL. */
static int tls_sni_add(struct tls_sni *t, const char *name, size_t len, SSL_CTX *ctx)
{
    char *copy;
    size_t i;
    if (len == 0 || memchr(name, '\0', len))
        return 1;   /* an empty name or one with a NUL matches nothing: skip it */
    if (t->nnames == t->cap) {
        int cap = t->cap ? t->cap * 2 : 8;
        struct tls_sni_name *n = realloc(t->names, (size_t)cap * sizeof *n);
        if (!n)
            return 0;
        t->names = n;
        t->cap = cap;
    }
    if (!(copy = malloc(len + 1)))
        return 0;
    for (i = 0; i < len; i++)
        copy[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    copy[len] = '\0';
    t->names[t->nnames].name = copy;
    t->names[t->nnames].ctx = ctx;
    t->nnames++;
    return 1;
}

/* The names a certificate answers for: its DNS subjectAltNames, else its
 * subject CN (RFC 6125 §6.4.4). 0 if out of memory. */
static int tls_sni_add_cert(struct tls_sni *t, SSL_CTX *ctx)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    GENERAL_NAMES *gens;
    int i, n = 0, ok = 1;
    if (!x)
        return 1;
    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (i = 0; gens && i < sk_GENERAL_NAME_num(gens) && ok; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS) {
            ok = tls_sni_add(t, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                             (size_t)ASN1_STRING_length(g->d.dNSName), ctx);
            n++;
        }
    }
    GENERAL_NAMES_free(gens);
    if (n == 0 && ok) {
        X509_NAME *subj = X509_get_subject_name(x);
        int at = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        if (at >= 0) {
            ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, at));
            ok = tls_sni_add(t, (const char *)ASN1_STRING_get0_data(cn), (size_t)ASN1_STRING_length(cn), ctx);
        }
    }
    return ok;
}

/* The context for host: an exact name first, then a wildcard; in each, the
 * first certificate given wins. NULL: none (the default serves). */
static SSL_CTX *tls_sni_find(const struct tls_sni *t, const char *host)
{
    int pass, i;
    for (pass = 0; pass < 2; pass++)
        for (i = 0; i < t->nnames; i++)
            if ((t->names[i].name[0] == '*') == pass && tls_name_match(t->names[i].name, host))
                return t->names[i].ctx;
    return NULL;
}

/* The ClientHello named a server: move the session to its certificate. */
static int tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct tls_sni *t = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    SSL_CTX *ctx;
    (void)alert;
    if (!host || !t)
        return SSL_TLSEXT_ERR_OK;
    ctx = tls_sni_find(t, host);
    if (ctx && ctx != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;
}

/* ------------------------------------------------------------ contexts */

/* RFC 7301: WebSocket's opening handshake is HTTP/1.1; a client that
 * offers something else only gets no ALPN answer (and may go on). */
static const unsigned char tls_alpn_ours[] = "\x08http/1.1";

static int tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel = NULL;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, outlen, tls_alpn_ours, sizeof tls_alpn_ours - 1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* One context of a server's set: c's certificate and key, the set's client
 * certificate policy, ALPN. NULL with err. */
static SSL_CTX *tls_server_one(const struct tls_cert_spec *c, const struct tls_server_spec *spec,
                               char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_ctx_common(TLS_server_method());
    if (!ctx) {
        char r[200];
        snprintf(err, errlen, "cannot make a TLS context: %s", tls_reason(r, sizeof r));
        return NULL;
    }
    if (!tls_readable("certificate", c->certificate, err, errlen) ||
        !tls_readable("key", c->key, err, errlen))
        goto fail;
    if (SSL_CTX_use_certificate_chain_file(ctx, c->certificate) != 1) {
        tls_load_error(err, errlen, "certificate", c->certificate);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            snprintf(err, errlen, "key %s does not match certificate %s", c->key, c->certificate);
        } else {
            tls_load_error(err, errlen, "key", c->key);
        }
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        char r[200];
        tls_reason(r, sizeof r);
        snprintf(err, errlen, "key %s does not match certificate %s%s%s", c->key, c->certificate,
                 *r ? ": " : "", r);
        goto fail;
    }
    if (spec->verify_client != TLS_CLIENT_NONE) {
        STACK_OF(X509_NAME) *names;
        if (!spec->ca) {
            snprintf(err, errlen, "verify_client needs a CA file (ca)");
            goto fail;
        }
        if (!tls_readable("CA file", spec->ca, err, errlen))
            goto fail;
        if (SSL_CTX_load_verify_locations(ctx, spec->ca, NULL) != 1 ||
            !(names = SSL_load_client_CA_file(spec->ca))) {
            tls_load_error(err, errlen, "CA file", spec->ca);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);   /* named in the CertificateRequest */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (spec->verify_client == TLS_CLIENT_REQUIRED
                                                       ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    }
    /* sessions resume only within the set that made them; with client
     * certificates OpenSSL refuses to resume without one */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"luaws", 5);
    SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, NULL);
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

struct ssl_ctx_st *tls_server_ctx(const struct tls_server_spec *spec, char *err, size_t errlen)
{
    SSL_CTX *def = NULL, **ctxs = NULL;
    struct tls_sni *t = NULL;
    int i, d = 0, k;
    if (spec->ncerts < 1) {
        snprintf(err, errlen, "no certificate");
        return NULL;
    }
    for (i = 0; i < spec->ncerts; i++)
        if (spec->certs[i].nnames == 0) {
            d = i;   /* the first without names is the default */
            break;
        }
    if (sni_index < 0 &&
        (sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_sni_exfree)) < 0) {
        snprintf(err, errlen, "cannot register the SNI table with OpenSSL");
        return NULL;
    }
    if (!(t = calloc(1, sizeof *t)) || !(ctxs = calloc((size_t)spec->ncerts, sizeof *ctxs)))
        goto nomem;
    for (i = 0; i < spec->ncerts; i++)
        if (!(ctxs[i] = tls_server_one(&spec->certs[i], spec, err, errlen)))
            goto fail;
    def = ctxs[d];
    for (i = 0; i < spec->ncerts; i++) {
        const struct tls_cert_spec *c = &spec->certs[i];
        if (c->nnames == 0) {
            if (!tls_sni_add_cert(t, ctxs[i]))
                goto nomem;
        } else {
            for (k = 0; k < c->nnames; k++)
                if (!tls_sni_add(t, c->names[k], strlen(c->names[k]), ctxs[i]))
                    goto nomem;
        }
    }
    /* the others belong to the set, which belongs to the default */
    for (i = 0, k = 0; i < spec->ncerts; i++)
        if (i != d)
            ctxs[k++] = ctxs[i];
    t->ctxs = ctxs;
    t->nctx = spec->ncerts - 1;
    ctxs = NULL;
    if (!SSL_CTX_set_ex_data(def, sni_index, t)) {
        ctxs = t->ctxs;   /* give the set back to the cleanup below */
        ctxs[t->nctx] = def;
        t->ctxs = NULL;
        t->nctx = 0;
        goto nomem;
    }
    SSL_CTX_set_tlsext_servername_callback(def, tls_servername_cb);
    SSL_CTX_set_tlsext_servername_arg(def, t);
    return def;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    if (ctxs)
        for (i = 0; i < spec->ncerts; i++)
            SSL_CTX_free(ctxs[i]);
    free(ctxs);
    tls_sni_destroy(t);
    return NULL;
}

struct ssl_ctx_st *tls_client_ctx(int verify, const char *ca_file, const char *cert_file,
                                  const char *key_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_ctx_common(TLS_client_method());
    if (!ctx)
        goto fail;
    /* RFC 7301; note SSL_CTX_set_alpn_protos returns 0 on success */
    if (SSL_CTX_set_alpn_protos(ctx, tls_alpn_ours, sizeof tls_alpn_ours - 1) != 0)
        goto fail;
    if (cert_file) {   /* a client certificate, for a server that asks for one */
        if (!tls_readable("certificate", cert_file, err, errlen) ||
            !tls_readable("key", key_file, err, errlen)) {
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
            tls_load_error(err, errlen, "certificate", cert_file);
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            unsigned long e = ERR_peek_error();
            if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
                ERR_clear_error();
                snprintf(err, errlen, "key %s does not match certificate %s", key_file, cert_file);
            } else {
                tls_load_error(err, errlen, "key", key_file);
            }
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (ca_file && !tls_readable("CA file", ca_file, err, errlen)) {
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                    : SSL_CTX_set_default_verify_paths(ctx) != 1) {
            if (ca_file)
                tls_load_error(err, errlen, "CA file", ca_file);
            else {
                char r[200];
                snprintf(err, errlen, "cannot load the system's CA store: %s", tls_reason(r, sizeof r));
            }
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
fail:
    tls_note_error("cannot make a TLS context");
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
    BIO *rb, *wb;
    if (!ssl)
        goto fail;
    rb = BIO_new_socket(fd, BIO_NOCLOSE);
    wb = rb ? tls_out_new(fd) : NULL;
    if (!wb) {
        BIO_free(rb);
        goto fail;
    }
    SSL_set_bio(ssl, rb, wb);
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
    tls_note_error("tls: cannot start a session");
    SSL_free(ssl);
    return NULL;
}

/* ------------------------------------------------------------ I/O */

/* The host a client session verifies ("127.0.0.1", "a.example") into buf,
 * or "the server". */
static void tls_peer_host(SSL *ssl, char *buf, size_t len)
{
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    const char *name = X509_VERIFY_PARAM_get0_host(param, 0);
    char *ip = name ? NULL : X509_VERIFY_PARAM_get1_ip_asc(param);
    snprintf(buf, len, "%s", name ? name : ip ? ip : "the server");
    OPENSSL_free(ip);
}

/* A handshake or record failed: say what in last_error. A certificate the
 * chain check refused names whose it was and why, in words
 * ("tls: certificate verify failed for 127.0.0.1: self-signed certificate"). */
static void tls_failed(SSL *ssl)
{
    unsigned long e = ERR_peek_error();
    long vr = SSL_get_verify_result(ssl);
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
        vr != X509_V_OK) {
        char host[256], why[160];
        snprintf(why, sizeof why, "%s", X509_verify_cert_error_string(vr));
        /* "Hostname mismatch" reads as the rest of a sentence: lower case
         * (not "IP address mismatch", whose capitals are an acronym) */
        if (why[0] >= 'A' && why[0] <= 'Z' && why[1] >= 'a' && why[1] <= 'z')
            why[0] = (char)(why[0] + 32);
        if (SSL_is_server(ssl)) {
            snprintf(last_error, sizeof last_error, "tls: client certificate verify failed: %s", why);
        } else {
            tls_peer_host(ssl, host, sizeof host);
            snprintf(last_error, sizeof last_error, "tls: certificate verify failed for %.255s: %.160s", host, why);
        }
        ERR_clear_error();
        return;
    }
    /* An alert from the peer (OpenSSL's reasons from SSL_AD_REASON_OFFSET
     * on): the peer refused us, say so, and on a client say who
     * ("tls: 127.0.0.1 refused the handshake: tlsv1 alert unknown ca"). */
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET) {
        char host[256], r[200];
        tls_reason(r, sizeof r);
        if (SSL_is_server(ssl))
            snprintf(host, sizeof host, "the client");
        else
            tls_peer_host(ssl, host, sizeof host);
        snprintf(last_error, sizeof last_error, "tls: %.255s refused the handshake: %.200s", host, r);
        return;
    }
    tls_note_error("tls");
}

/* Map the result of an SSL call to a want (cqueues' ssl_error). */
static int tls_want_of(SSL *ssl, int rc)
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
            snprintf(last_error, sizeof last_error, "tls: %s",
                     errno ? strerror(errno) : "unexpected EOF");
            return TLS_EOF;
        }
        /* fall through */
    default:
        tls_failed(ssl);
        return TLS_FAILED;
    }
}

/* The socket refused records with err: like a socket BIO's failure
 * without an OpenSSL reason, the peer is gone (TLS_EOF, "tls: Broken pipe"). */
static int tls_send_failed(int err)
{
    snprintf(last_error, sizeof last_error, "tls: %s", strerror(err));
    return TLS_EOF;
}

ssize_t tls_read(struct ssl_st *ssl, void *buf, size_t n, int *want)
{
    int rc;
    errno = 0;
    rc = SSL_read(ssl, buf, n > 0x7fffffff ? 0x7fffffff : (int)n);
    if (rc > 0) {
        tls_after(ssl);   /* a refusal shows at the next write */
        *want = TLS_DONE;
        return rc;
    }
    *want = tls_want_of(ssl, rc);
    tls_after(ssl);
    return 0;
}

ssize_t tls_write(struct ssl_st *ssl, const void *buf, size_t n, int *want)
{
    struct tls_out *o = tls_out_of(ssl);
    size_t done = 0;
    int rc;
    if (o->held_len && tls_out_flush(o) < 0) {   /* what the socket refused goes first */
        *want = errno == EAGAIN ? TLS_WANT_WRITE : tls_send_failed(errno);
        return 0;
    }
    if (n > TLS_WRITE_MAX)
        n = TLS_WRITE_MAX;
    /* Partial writes are on: SSL_write returns after each record, and our
     * BIO takes every record, so go on until all n are encrypted, then send
     * them together. A failure after some records shows at the next call. */
    do {
        errno = 0;
        rc = SSL_write(ssl, (const char *)buf + done, (int)(n - done));
        if (rc > 0)
            done += (size_t)rc;
    } while (rc > 0 && done < n);
    if (done > 0) {
        if (tls_after(ssl) < 0) {
            *want = tls_send_failed(errno);
            return 0;
        }
        *want = TLS_DONE;
        return (ssize_t)done;
    }
    *want = tls_want_of(ssl, rc);
    tls_after(ssl);
    return 0;
}

size_t tls_pending(const struct ssl_st *ssl)
{
    int n = SSL_pending(ssl);
    if (n > 0)
        return (size_t)n;
    return SSL_has_pending(ssl) ? 1 : 0;   /* read ahead: records not yet decrypted */
}

void tls_shutdown(struct ssl_st *ssl)
{
    SSL_shutdown(ssl);
    tls_after(ssl);
    ERR_clear_error();
}

void tls_close_notify(struct ssl_st *ssl)
{
    if (ssl && SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
        SSL_shutdown(ssl);   /* best effort: the fd is non-blocking */
    if (ssl)
        tls_after(ssl);
    ERR_clear_error();
}

int tls_handshake_done(const struct ssl_st *ssl)
{
    return SSL_is_init_finished(ssl);
}

void tls_free(struct ssl_st *ssl)
{
    if (!ssl)
        return;
    SSL_free(ssl);
    ERR_clear_error();
}

/* ------------------------------------------------------------ what was negotiated */

void tls_get_info(struct ssl_st *ssl, struct tls_info *info)
{
    memset(info, 0, sizeof *info);
    info->version = SSL_get_version(ssl);
    info->cipher = SSL_get_cipher_name(ssl);
    info->server_name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    SSL_get0_alpn_selected(ssl, &info->alpn, &info->alpn_len);
    info->peer = SSL_get0_peer_certificate(ssl) != NULL;
    info->verified = info->peer && SSL_get_verify_result(ssl) == X509_V_OK;
}

/* A name as RFC 4514 text (UTF-8 kept as it is) into buf. */
static int tls_name_text(const X509_NAME *name, char *buf, size_t len)
{
    BIO *b = BIO_new(BIO_s_mem());
    int n = -1;
    if (!b)
        return -1;
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~(unsigned long)ASN1_STRFLGS_ESC_MSB) >= 0) {
        n = BIO_read(b, buf, len > 1 ? (int)len - 1 : 0);
        if (n < 0)
            n = 0;
        buf[n] = '\0';
    }
    BIO_free(b);
    return n;
}

int tls_peer_field(struct ssl_st *ssl, int field, int i, char *buf, size_t len)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    int n = -1;
    if (len == 0)
        return -1;
    buf[0] = '\0';
    if (!x)
        return -1;
    switch (field) {
    case TLS_SUBJECT:
        n = tls_name_text(X509_get_subject_name(x), buf, len);
        break;
    case TLS_ISSUER:
        n = tls_name_text(X509_get_issuer_name(x), buf, len);
        break;
    case TLS_SERIAL: {
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        if (hex)
            n = snprintf(buf, len, "%s", hex);
        OPENSSL_free(hex);
        BN_free(bn);
        break;
    }
    case TLS_FINGERPRINT: {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0, k;
        if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1 && len > 2 * (size_t)mdlen) {
            for (k = 0; k < mdlen; k++)
                snprintf(buf + 2 * k, 3, "%02x", md[k]);
            n = (int)(2 * mdlen);
        }
        break;
    }
    case TLS_SAN: {
        GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        const GENERAL_NAME *g = gens && i >= 0 && i < sk_GENERAL_NAME_num(gens) ? sk_GENERAL_NAME_value(gens, i) : NULL;
        if (g) {
            const ASN1_STRING *s = NULL;
            const char *kind = NULL;
            char ip[INET6_ADDRSTRLEN];
            switch (g->type) {
            case GEN_DNS: kind = "DNS"; s = g->d.dNSName; break;
            case GEN_EMAIL: kind = "email"; s = g->d.rfc822Name; break;
            case GEN_URI: kind = "URI"; s = g->d.uniformResourceIdentifier; break;
            case GEN_IPADD: {
                int alen = ASN1_STRING_length(g->d.iPAddress);
                const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
                if ((alen == 4 && inet_ntop(AF_INET, a, ip, sizeof ip)) ||
                    (alen == 16 && inet_ntop(AF_INET6, a, ip, sizeof ip)))
                    n = snprintf(buf, len, "IP:%s", ip);
                else
                    n = snprintf(buf, len, "IP:?");
                break;
            }
            default:
                n = snprintf(buf, len, "other");
                break;
            }
            if (kind)
                n = snprintf(buf, len, "%s:%.*s", kind, ASN1_STRING_length(s),
                             (const char *)ASN1_STRING_get0_data(s));
        }
        GENERAL_NAMES_free(gens);
        break;
    }
    default:
        break;
    }
    if (n >= (int)len)
        n = (int)len - 1;
    return n;
}
