/* SPDX-License-Identifier: MIT */
/*
** loadgen.c -- a WebSocket load generator for the luaws benchmarks.
**
** One thread, one epoll loop, many client connections to one server on the
** loopback. Three modes:
**   echo       N connections each keep K messages of S bytes in flight; every
**              echo that comes back is checked (length, content, order), its
**              round-trip time goes into a log-linear histogram, and a new
**              message replaces it. Reports messages/s, MB/s, p50/p99/p99.9.
**   idle       opens N connections, says when all N are open, holds them for
**              the duration, answers pings, and reports how many survived;
**              with --idle-echo K each connection first echoes K messages
**              (one at a time), so a server with compression has had to
**              keep whatever context it keeps between messages.
**   handshake  P parallel clients loop connect -> upgrade -> close; reports
**              completed cycles per second and errors.
** With --pid it also reads the server's CPU time (/proc/PID/stat) and RSS
** (/proc/PID/status) at the edges of the measuring window, so the runner
** does not have to guess when the window was.
**
** Output: a human line on stderr and one JSON object on stdout (last line).
**
** Payloads: by default a template of letters with a sequence number in the
** first 8 bytes; with --json, a pool of 512 deterministic JSON-like texts
** (bench/wsdeflate.h: keys, strings, numbers, arrays, nested objects), one
** after the other, so message k of every connection is pool entry k mod 512
** (an echo is checked against the entry it should be, which also catches
** reordering).
**
** permessage-deflate (RFC 7692, --deflate takeover|no-context-takeover, with
** --json): it offers the extension like a browser does
** ("permessage-deflate; client_max_window_bits"), or asking for
** server_no_context_takeover and client_no_context_takeover as well, and
** requires the server to accept (a 101 without it is a handshake error). Its
** own messages are deflated with zlib at --deflate-level (default 6, zlib's
** and Chromium's default) within the window the server allowed; because every
** connection sends the same sequence of pool entries from the start, the
** compressed form of the whole sequence is computed once (one stream with
** context takeover, or each entry alone without) and sent as is: the bytes
** are exactly what a live deflater with that history would send, and the
** generator's CPU goes to the server under test, not to zlib. Echoes with RSV1
** are collected whole and inflated (a shared inflater when the server said
** server_no_context_takeover, else one per connection, made on the first
** compressed message, so idle connections hold no zlib state). Bytes on the
** sockets are counted in the window, so wire bytes per message are reported
** as the generator saw them (frame headers and masks included).
**
** TLS (wss:// or --tls): OpenSSL, non-blocking on the same epoll loop. After
** the TCP connect the connection runs SSL_do_handshake until it completes
** (WANT_READ / WANT_WRITE pick the epoll events), then the upgrade goes
** through SSL_write and every read through SSL_read. The certificate is not
** verified (a benchmark of loopback servers with a self-signed certificate);
** SNI only with --sni. Read-ahead with a 64 KiB record buffer, so one read(2)
** takes whatever the kernel has, as the plain path does; OpenSSL's default
** TLS 1.3 suites unless --tls-ciphersuites. No session resumption: every
** handshake is a full one. The negotiated version, suite, group and the
** server's key go into the JSON line ("tls"). A plain run does not touch any
** of it but one branch per read and per flush. permessage-deflate works over
** TLS as over TCP (the frames are the same; only the byte pipe differs); the
** wire byte counts are then the WebSocket bytes given to SSL_write and taken
** from SSL_read, without the TLS record overhead.
**
** What it deliberately does not do: other extensions, name resolution
** (dotted IPv4 only, and only 127.0.0.0/8: this tool never sends traffic off
** the machine), certificate verification, and fragmenting its own messages.
** It never uses the library under test.
**
** RFC 6455 sections: §4.1 (client handshake; the 101 status and
** Sec-WebSocket-Accept are checked), §5.1-5.3 (framing; every client frame
** is masked with a fresh key), §5.4 (it accepts fragmented server messages,
** split anywhere), §5.5 (ping -> pong, close), §7.1.1 (after its close frame
** the client waits for the server to close TCP first).
**
** Every loop is bounded: the whole run ends by connect-timeout + warmup +
** duration + a few seconds, whatever the server does.
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "wsdeflate.h"

/* Limits, overridable at build time (-DLG_RBUF_SIZE=...). */
#ifndef LG_RBUF_SIZE
#define LG_RBUF_SIZE (256 * 1024) /* one loop-wide receive buffer */
#endif
#ifndef LG_HS_MAX
#define LG_HS_MAX 1024 /* longest handshake response we accept */
#endif
#ifndef LG_MAX_EVENTS
#define LG_MAX_EVENTS 512
#endif
#ifndef LG_MAX_SRC
#define LG_MAX_SRC 64 /* local source addresses */
#endif
#ifndef LG_TLS_RBUF_SIZE
#define LG_TLS_RBUF_SIZE (64 * 1024) /* OpenSSL's read-ahead buffer per TLS connection */
#endif
#define LG_READS_PER_EVENT 8 /* fairness: reads per connection per wakeup */
#define LG_TLS_RECORDS_PER_EVENT 64 /* the same for TLS: records (<= 16 KiB each) per wakeup */
#define LG_TLS_WBUF (80 * 1024)     /* TLS: the buffer BIO that gathers records into one write(2) */
#define LG_SEQ_BYTES 8       /* payload bytes that carry the sequence number */
#define LG_JSON_POOL 512     /* distinct JSON-like messages (--json) */

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ------------------------------------------------------------------------ */
/* Options                                                                  */

enum mode { MODE_ECHO, MODE_IDLE, MODE_HANDSHAKE };

struct options {
    enum mode mode;
    struct sockaddr_in dst;
    char host[64];        /* Host: header value (without the port) */
    char path[256];       /* request target */
    long conns;           /* echo/idle: connections; handshake: parallel clients */
    long parallel;        /* idle/echo: handshakes in progress at once (0 = all) */
    size_t size;          /* echo: message size in bytes */
    long inflight;        /* echo: messages in flight per connection */
    double duration;      /* measuring window (idle: hold time), seconds */
    double warmup;        /* seconds before the window opens */
    double connect_timeout;
    double op_timeout;    /* handshake mode: one cycle may take this long */
    int text;             /* send text frames instead of binary */
    int json;             /* payloads from the JSON-like pool */
    int deflate;          /* 0: no offer; 1: offer with context takeover; 2: without */
    int zlevel;           /* zlib level for our own messages */
    long idle_echo;       /* idle mode: messages each connection echoes before it idles */
    long pid;             /* server PID to sample in /proc, or 0 */
    struct in_addr src[LG_MAX_SRC];
    int nsrc;
    int quiet;
    int tls;                /* wss:// or --tls */
    char sni[256];          /* --sni: server name to send, or "" for none */
    const char *ciphersuites; /* --tls-ciphersuites: TLS 1.3 suites, or NULL for OpenSSL's */
};

static struct options opt = {
    .mode = MODE_ECHO,
    .conns = 1,
    .parallel = 0,
    .size = 16,
    .inflight = 1,
    .duration = 5.0,
    .warmup = 1.0,
    .connect_timeout = 30.0,
    .op_timeout = 5.0,
    .zlevel = 6,
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/*
** Monotonic time in nanoseconds. Called once per read or per loop turn, not
** per byte.
*/
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
** xorshift64* : masking keys and handshake nonces need to be unpredictable
** to intermediaries, not to an attacker, and this is a benchmark client, so a
** fast PRNG seeded from getrandom() is enough.
*/
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void rng_seed(void)
{
    if (getrandom(&rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state)
        rng_state = now_ns() ^ ((uint64_t)getpid() << 32);
    if (rng_state == 0)
        rng_state = 0x9E3779B97F4A7C15ull;
}

/* ------------------------------------------------------------------------ */
/* Log-linear histogram (HDR-like)                                          */
/*
** Values are nanoseconds. The first 2^H_SUB values get one bucket each; after
** that every power of two is split into 2^(H_SUB-1) equal buckets, so any
** recorded value is reported within 1/2^(H_SUB-1) (0.8% at H_SUB=8) of
** itself. 64 - H_SUB + 1 octaves cover all of uint64_t: no value is dropped.
*/
#define H_SUB 8
#define H_HALF (1u << (H_SUB - 1))
#define H_BUCKETS ((64 - H_SUB + 1) * H_HALF + H_HALF)

struct hist {
    uint64_t count[H_BUCKETS];
    uint64_t n, max, min;
    long double sum;
};

static unsigned hist_index(uint64_t v)
{
    if (v < (1u << H_SUB))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* >= H_SUB */
    unsigned shift = msb - (H_SUB - 1);                /* keeps H_SUB bits */
    return (shift + 1) * H_HALF + (unsigned)((v >> shift) - H_HALF);
}

/* The highest value that lands in bucket i: a percentile never reads low. */
static uint64_t hist_value(unsigned i)
{
    if (i < (1u << H_SUB))
        return i;
    unsigned shift = i / H_HALF - 1;
    uint64_t base = (uint64_t)(i % H_HALF + H_HALF) << shift;
    return base + ((1ull << shift) - 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    if (h->n == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->n++;
    h->sum += v;
}

/* q in [0,1]; returns 0 for an empty histogram. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n);
    if (rank >= h->n)
        rank = h->n - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->count[i];
        if (seen > rank) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ------------------------------------------------------------------------ */
/* Counters                                                                 */

struct errors {
    uint64_t connect;    /* socket/bind/connect failed */
    uint64_t handshake;  /* not 101, wrong Sec-WebSocket-Accept, bad response */
    uint64_t reset;      /* ECONNRESET, EPIPE and other socket errors */
    uint64_t eof;        /* the server closed TCP without a close frame */
    uint64_t close;      /* the server sent a close frame we did not ask for */
    uint64_t length;     /* an echo of the wrong length */
    uint64_t payload;    /* an echo with the wrong content or order */
    uint64_t protocol;   /* a frame the RFC forbids (masked, bad opcode, ...) */
    uint64_t unexpected; /* a message when none was in flight */
    uint64_t timeout;    /* connect or cycle took too long */
    uint64_t inflate;    /* a compressed message that does not inflate */
    uint64_t tls;        /* a TLS handshake or record failed (OpenSSL's error) */
};

static struct errors err;

static uint64_t errors_total(void)
{
    return err.connect + err.handshake + err.reset + err.eof + err.close + err.length +
           err.payload + err.protocol + err.unexpected + err.timeout + err.inflate + err.tls;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

enum cstate {
    C_FREE,       /* no socket */
    C_CONNECTING, /* non-blocking connect in progress */
    C_TLS,        /* TCP connected, TLS handshake in progress */
    C_UPGRADING,  /* request written (or queued), waiting for the 101 */
    C_OPEN,       /* frames flow */
    C_CLOSING,    /* our close frame sent; waiting for theirs, then EOF */
    C_DEAD,       /* failed; not restarted (echo and idle modes) */
};

struct conn {
    int fd;
    uint8_t state;     /* enum cstate */
    uint8_t pollout;   /* EPOLLOUT is registered */
    uint8_t got_close; /* the server's close frame arrived */
    uint8_t bad_msg;   /* current message failed a content check */
    uint8_t tls_rw;    /* TLS: SSL_read wants the socket writable */
    uint8_t tls_wr;    /* TLS: SSL_write wants the socket readable */
    uint8_t tls_more;  /* TLS: on tls_more_list (OpenSSL holds bytes epoll cannot see) */
    SSL *ssl;          /* TLS session, or NULL on a plain connection */
    uint32_t id;
    uint32_t gen;      /* bumped per socket: stale work for an old one stops */
    uint64_t t_start;  /* when this connection (or cycle) began */

    /* Handshake: expected accept value, response bytes until CRLFCRLF. */
    char accept[32];
    uint16_t hs_len;
    char hs[LG_HS_MAX];

    /* Frame parser: a header may arrive a byte at a time; payloads stream. */
    uint8_t fh[14];
    uint8_t fh_len;
    uint8_t in_payload; /* 0: reading a header, 1: reading its payload */
    uint8_t f_op, f_fin;
    uint8_t in_msg;     /* inside a fragmented data message */
    uint8_t ctl_len;
    uint8_t ctl[125];
    uint64_t f_left;    /* payload bytes left in this frame */
    uint64_t msg_off;   /* bytes of the current data message so far */

    /* permessage-deflate: what was agreed; a compressed message collects in zb. */
    struct pmd pmd;
    uint8_t m_z;        /* the current data message has RSV1 */
    uint8_t z_long;     /* ... and is longer than we will collect */
    uint32_t zlen, zcap;
    uint8_t *zb;
    z_stream *inf;      /* with server context takeover; made on first use */

    /* Outgoing bytes not yet taken by the kernel. */
    uint8_t *out;
    size_t out_off, out_len, out_cap;

    /* Echo mode: send times of the messages in flight, oldest first. */
    uint64_t *ts;
    uint32_t ts_head, ts_cnt;
    uint64_t seq_sent, seq_recv;
    uint32_t echo_left; /* idle mode: --idle-echo messages still to come back */
};

enum phase { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_DONE };

static struct conn *conns;
static long nconns;
static int epfd = -1;
static uint8_t *rbuf;         /* loop-wide receive buffer */
static uint8_t *tmpl;         /* the payload every echo message carries */
static uint64_t g_now;        /* time of the last read or loop turn */
static enum phase phase = PH_CONNECT;
static long n_open, n_dead, n_pending; /* echo/idle connection accounting */
static long n_echoing;        /* idle mode: connections still echoing their --idle-echo */
static long n_echoed;         /* idle mode: connections that finished them */
static long n_started;        /* connections started so far (echo/idle) */
static uint64_t msgs;         /* echo: messages received in the window */
static uint64_t cycles;       /* handshake: cycles completed in the window */
static struct hist lat;       /* echo: round trip; handshake: connect->101 */
static uint8_t *pool;         /* --json: LG_JSON_POOL messages of opt.size bytes */
static uint64_t wire_tx, wire_rx; /* bytes on the sockets in the window */
static long n_pmd;            /* connections that agreed on permessage-deflate */
static struct pmd first_pmd;  /* what the first of them agreed */
static z_stream shared_inf;   /* inflater for server_no_context_takeover */
static bool shared_inf_ok;
static uint8_t *ibuf;         /* inflated message (opt.size + 1 bytes) */

/*
** The compressed form of the pool sequence for one (client_no_context_takeover,
** client_max_window_bits) pair: entry k is off[k]..off[k+1] of buf.
*/
struct zseq {
    uint8_t cnct, bits;
    uint8_t *buf;
    uint32_t *off;
};
static struct zseq zseqs[16];
static int nzseq;

/* TLS: one client context; connections whose read stopped at the per-wakeup
** cap while OpenSSL still buffers bytes (epoll would not report them again). */
static SSL_CTX *tls_ctx;
static struct conn **tls_more_list;
static long n_tls_more;
static struct {
    int have;
    char version[16], cipher[64], group[32], key[32], sig[32];
} tls_info;

static bool counting(void)
{
    return phase == PH_MEASURE;
}

/*
** Make room for n more bytes in c->out. Compacts before growing, so a
** connection that keeps K messages in flight settles at one allocation.
*/
static uint8_t *out_reserve(struct conn *c, size_t n)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 256;
            while (cap < c->out_len + n)
                cap *= 2;
            uint8_t *p = realloc(c->out, cap);
            if (!p)
                die("out of memory (%zu bytes)", cap);
            c->out = p;
            c->out_cap = cap;
        }
    }
    return c->out + c->out_len;
}

static void ep_set(struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
}

/* Close the socket and forget buffered state; keeps allocations for reuse. */
static void conn_reset(struct conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl); /* no close_notify: the server closed first, or we are failing */
        c->ssl = NULL;
        ERR_clear_error();
    }
    c->tls_rw = c->tls_wr = 0; /* tls_more stays: it says the list holds c */
    if (c->fd >= 0) {
        close(c->fd); /* also removes it from the epoll set */
        c->fd = -1;
    }
    c->out_off = c->out_len = 0;
    c->pollout = 0;
    c->hs_len = 0;
    c->fh_len = 0;
    c->in_payload = 0;
    c->in_msg = 0;
    c->f_left = 0;
    c->msg_off = 0;
    c->got_close = 0;
    c->bad_msg = 0;
    c->ts_head = c->ts_cnt = 0;
    c->seq_sent = c->seq_recv = 0;
    memset(&c->pmd, 0, sizeof c->pmd);
    c->m_z = c->z_long = 0;
    c->zlen = 0;
    if (c->inf) { /* a new connection starts with an empty window */
        inflateEnd(c->inf);
        free(c->inf);
        c->inf = NULL;
    }
}

static void start_conn(struct conn *c);
static void on_event(struct conn *c, uint32_t ev);
static void tls_drain_more(void);

/*
** A connection failed (the caller has counted why). In echo and idle modes
** it stays dead; in handshake mode the slot starts a new cycle.
*/
static void conn_fail(struct conn *c)
{
    enum cstate was = c->state;
    if (c->echo_left) {
        c->echo_left = 0;
        n_echoing--;
    }
    conn_reset(c);
    if (opt.mode == MODE_HANDSHAKE) {
        c->state = C_FREE;
        if (phase != PH_DONE)
            start_conn(c);
        return;
    }
    c->state = C_DEAD;
    n_dead++;
    if (was == C_OPEN || was == C_CLOSING)
        n_open--;
    else
        n_pending--;
}

/*
** Write what the kernel will take; arm EPOLLOUT only while bytes remain.
** Returns false if the connection failed (and was handled).
*/
static bool conn_flush_tls(struct conn *c) __attribute__((noinline, cold));

static bool conn_flush(struct conn *c)
{
    if (c->ssl)
        return conn_flush_tls(c);
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            if (counting())
                wire_tx += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        err.reset++;
        conn_fail(c);
        return false;
    }
    bool pending = c->out_off < c->out_len;
    if (!pending)
        c->out_off = c->out_len = 0;
    if (pending != (bool)c->pollout) {
        c->pollout = pending;
        ep_set(c, EPOLL_CTL_MOD, EPOLLIN | (pending ? EPOLLOUT : 0));
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* TLS                                                                      */

/*
** What an SSL call's failure means. A fatal one is counted (tls, or reset for
** a socket error) and the error queue is cleared, so a stale entry cannot make
** the next connection's WANT_READ look like a failure (SSL_get_error peeks at
** the thread's queue).
*/
static int tls_error(struct conn *c, int rc, const char *what)
{
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_ZERO_RETURN)
        return e;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        err.reset++; /* ECONNRESET, EPIPE (EOF is ZERO_RETURN: SSL_OP_IGNORE_UNEXPECTED_EOF) */
    } else {
        if (!opt.quiet && err.tls == 0) {
            char buf[256];
            ERR_error_string_n(ERR_peek_error(), buf, sizeof buf);
            fprintf(stderr, "loadgen: tls %s: %s\n", what, buf);
        }
        err.tls++;
    }
    ERR_clear_error();
    return -1;
}

/* OpenSSL holds decrypted or read-ahead bytes that no epoll event will announce. */
static void tls_mark_more(struct conn *c)
{
    if (!c->tls_more) {
        c->tls_more = 1;
        tls_more_list[n_tls_more++] = c; /* at most once per connection: fits nconns */
    }
}

/* Register the epoll events a TLS connection waits for. */
static void tls_set_events(struct conn *c, bool out)
{
    if (out != (bool)c->pollout) {
        c->pollout = out;
        ep_set(c, EPOLL_CTL_MOD, EPOLLIN | (out ? EPOLLOUT : 0));
    }
}

/*
** conn_flush over TLS: SSL_write what is queued (partial writes on; the buffer
** may move between retries, out_reserve compacts, and a retry never offers
** fewer bytes than the one that wanted to wait). A write that wants the socket
** readable waits for EPOLLIN: on_readable flushes again.
*/
static bool conn_flush_tls(struct conn *c)
{
    c->tls_wr = 0;
    while (c->out_off < c->out_len) {
        size_t left = c->out_len - c->out_off;
        int n = SSL_write(c->ssl, c->out + c->out_off, left > 0x40000000 ? 0x40000000 : (int)left);
        if (n > 0) {
            c->out_off += (size_t)n;
            if (counting())
                wire_tx += (uint64_t)n; /* WebSocket bytes; the record overhead is not counted */
            continue;
        }
        int e = tls_error(c, n, "write");
        if (e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_WANT_READ) {
            c->tls_wr = 1;
            break;
        }
        if (e == SSL_ERROR_ZERO_RETURN)
            err.reset++;
        conn_fail(c);
        return false;
    }
    bool pending = c->out_off < c->out_len;
    if (!pending)
        c->out_off = c->out_len = 0;
    /* The records gathered by the buffer BIO (tls_start) go out together:
     * one write(2) per message, not one per record. */
    BIO *wb = SSL_get_wbio(c->ssl);
    if (BIO_wpending(wb) > 0 && BIO_flush(wb) <= 0) {
        if (!BIO_should_retry(wb)) {
            err.reset++;
            conn_fail(c);
            return false;
        }
        pending = true; /* EPOLLOUT, then conn_flush flushes again */
    }
    tls_set_events(c, (pending && !c->tls_wr) || c->tls_rw);
    return true;
}

static void tls_note_info(SSL *ssl)
{
    tls_info.have = 1;
    snprintf(tls_info.version, sizeof tls_info.version, "%s", SSL_get_version(ssl));
    snprintf(tls_info.cipher, sizeof tls_info.cipher, "%s", SSL_get_cipher_name(ssl));
    int g = SSL_get_negotiated_group(ssl);
    const char *gn = g ? SSL_group_to_name(ssl, g) : NULL;
    snprintf(tls_info.group, sizeof tls_info.group, "%s", gn ? gn : "?");
    X509 *x = SSL_get1_peer_certificate(ssl);
    EVP_PKEY *pk = x ? X509_get0_pubkey(x) : NULL;
    if (pk) {
        const char *tn = EVP_PKEY_get0_type_name(pk);
        snprintf(tls_info.key, sizeof tls_info.key, "%s %d", tn ? tn : "?", EVP_PKEY_get_bits(pk));
    } else {
        snprintf(tls_info.key, sizeof tls_info.key, "?");
    }
    X509_free(x);
    int nid = NID_undef;
    if (SSL_get_peer_signature_type_nid(ssl, &nid) == 1 && nid != NID_undef)
        snprintf(tls_info.sig, sizeof tls_info.sig, "%s", OBJ_nid2sn(nid));
    else
        snprintf(tls_info.sig, sizeof tls_info.sig, "?");
}

static void queue_upgrade(struct conn *c);

/* Drive the TLS handshake; once it is done, send the upgrade request. */
__attribute__((noinline, cold)) static void tls_handshake(struct conn *c)
{
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        if (!tls_info.have)
            tls_note_info(c->ssl);
        c->state = C_UPGRADING;
        queue_upgrade(c);
        if (SSL_has_pending(c->ssl))
            tls_mark_more(c);
        conn_flush(c);
        return;
    }
    int e = tls_error(c, rc, "handshake");
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        tls_set_events(c, e == SSL_ERROR_WANT_WRITE);
        return;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        err.eof++;
    conn_fail(c);
}

/* TCP is up: start TLS on it. */
static void tls_start(struct conn *c)
{
    /* Reads straight from the socket; writes through a buffer BIO that
     * gathers the records of one conn_flush_tls (a 16 KiB frame is two)
     * into one write(2), as the luaws server does (csrc/io/tls.c). */
    c->ssl = SSL_new(tls_ctx);
    BIO *sock = c->ssl ? BIO_new_socket(c->fd, BIO_NOCLOSE) : NULL;
    BIO *buf = sock ? BIO_new(BIO_f_buffer()) : NULL;
    if (!buf || BIO_set_write_buffer_size(buf, LG_TLS_WBUF) != 1 || !BIO_up_ref(sock)) {
        BIO_free(buf);
        BIO_free(sock);
        ERR_clear_error();
        err.tls++;
        conn_fail(c);
        return;
    }
    SSL_set_bio(c->ssl, sock, BIO_push(buf, sock));
    if (opt.sni[0])
        SSL_set_tlsext_host_name(c->ssl, opt.sni);
    SSL_set_connect_state(c->ssl);
    c->state = C_TLS;
    tls_handshake(c);
}

static SSL_CTX *tls_client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        die("SSL_CTX_new failed");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* loopback benchmark, self-signed server */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, LG_TLS_RBUF_SIZE);
    if (opt.ciphersuites && SSL_CTX_set_ciphersuites(ctx, opt.ciphersuites) != 1)
        die("bad --tls-ciphersuites '%s'", opt.ciphersuites);
    return ctx;
}

/*
** Copy n payload bytes from src to dst, XORed with the 4-byte key (RFC 6455
** §5.3). Eight bytes at a time; memcpy keeps it free of alignment traps.
*/
static void mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4])
{
    uint8_t k8[8] = { key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3] };
    uint64_t m;
    memcpy(&m, k8, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= m;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ key[i & 3];
}

/* Write a masked frame header for a payload of len bytes; returns its size. */
static size_t put_header(uint8_t *h, unsigned opcode, uint64_t len, uint8_t key[4])
{
    size_t n = 0;
    h[n++] = (uint8_t)(0x80 | opcode); /* FIN, no RSV bits */
    if (len < 126) {
        h[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        h[n++] = 0x80 | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = 0x80 | 127;
        for (int s = 56; s >= 0; s -= 8)
            h[n++] = (uint8_t)(len >> s);
    }
    uint32_t k = (uint32_t)rng_next();
    memcpy(key, &k, 4);
    memcpy(h + n, key, 4);
    return n + 4;
}

/* Queue a masked frame carrying an arbitrary (short) payload. */
static void queue_frame(struct conn *c, unsigned opcode, const uint8_t *p, size_t len)
{
    uint8_t *d = out_reserve(c, 14 + len);
    uint8_t key[4];
    size_t h = put_header(d, opcode, len, key);
    mask_copy(d + h, p, len, key);
    c->out_len += h + len;
}

/*
** The sequence number travels in the first bytes of every echo message as
** letters 'a'..'p' (four bits each), so text frames stay valid UTF-8 and a
** reordered or corrupted echo is caught.
*/
static inline uint8_t seq_byte(uint64_t seq, size_t i)
{
    return (uint8_t)('a' + ((seq >> (4 * i)) & 15));
}

/* The compressed pool sequence for what this connection agreed (made once). */
static const struct zseq *zseq_get(const struct pmd *p)
{
    for (int i = 0; i < nzseq; i++)
        if (zseqs[i].cnct == p->cnct && zseqs[i].bits == p->cbits)
            return &zseqs[i];
    if (nzseq == (int)(sizeof zseqs / sizeof zseqs[0]))
        die("too many different permessage-deflate answers");
    struct zseq *z = &zseqs[nzseq];
    size_t S = opt.size, bound = pmd_bound(S);
    z->cnct = p->cnct;
    z->bits = p->cbits;
    z->buf = malloc(LG_JSON_POOL * bound);
    z->off = malloc((LG_JSON_POOL + 1) * sizeof *z->off);
    if (!z->buf || !z->off)
        die("out of memory");
    z_stream zs;
    if (!pmd_deflate_init(&zs, opt.zlevel, p->cbits))
        die("deflateInit2 failed (level %d, window bits %u)", opt.zlevel, p->cbits);
    z->off[0] = 0;
    for (uint32_t k = 0; k < LG_JSON_POOL; k++) {
        if (p->cnct)
            deflateReset(&zs);
        size_t n = pmd_compress(&zs, pool + (size_t)k * S, S, z->buf + z->off[k], bound);
        if (n == (size_t)-1)
            die("deflate failed");
        z->off[k + 1] = z->off[k] + (uint32_t)n;
    }
    deflateEnd(&zs);
    nzseq++;
    return z;
}

/* Queue the next echo message and remember when it left. */
static void queue_message(struct conn *c)
{
    size_t S = opt.size;
    uint8_t key[4];
    if (opt.json) {
        uint32_t k = (uint32_t)(c->seq_sent % LG_JSON_POOL);
        const uint8_t *m = pool + (size_t)k * S;
        size_t len = S;
        if (c->pmd.on) {
            const struct zseq *z = zseq_get(&c->pmd);
            m = z->buf + z->off[k];
            len = z->off[k + 1] - z->off[k];
        }
        uint8_t *d = out_reserve(c, 14 + len);
        size_t h = put_header(d, 1, len, key);
        if (c->pmd.on)
            d[0] |= 0x40; /* RSV1: compressed (RFC 7692 §6) */
        mask_copy(d + h, m, len, key);
        c->out_len += h + len;
    } else {
        uint8_t *d = out_reserve(c, 14 + S);
        size_t h = put_header(d, opt.text ? 1 : 2, S, key);
        mask_copy(d + h, tmpl, S, key);
        size_t ns = S < LG_SEQ_BYTES ? S : LG_SEQ_BYTES;
        for (size_t i = 0; i < ns; i++)
            d[h + i] = seq_byte(c->seq_sent, i) ^ key[i & 3];
        c->out_len += h + S;
    }
    c->seq_sent++;
    uint32_t slot = (c->ts_head + c->ts_cnt) % (uint32_t)opt.inflight;
    c->ts[slot] = g_now;
    c->ts_cnt++;
}

/* Base64 (RFC 4648) of n bytes into dst, NUL-terminated. */
static void base64(char *dst, const uint8_t *src, size_t n)
{
    EVP_EncodeBlock((unsigned char *)dst, src, (int)n);
}

/*
** Start the opening handshake (RFC 6455 §4.1): a fresh 16-byte nonce, and
** the accept value the server must send back, computed now.
*/
static void queue_upgrade(struct conn *c)
{
    uint8_t nonce[16];
    uint64_t r1 = rng_next(), r2 = rng_next();
    memcpy(nonce, &r1, 8);
    memcpy(nonce + 8, &r2, 8);
    char key[32];
    base64(key, nonce, 16);

    char cat[64];
    int cl = snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!EVP_Digest(cat, (size_t)cl, md, &mdlen, EVP_sha1(), NULL))
        die("EVP_Digest(SHA-1) failed");
    base64(c->accept, md, mdlen);

    char ext[200] = "";
    if (opt.deflate)
        snprintf(ext, sizeof ext, "Sec-WebSocket-Extensions: %s\r\n", pmd_offer(opt.deflate == 2));
    char req[800];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s:%u\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s"
                     "\r\n",
                     opt.path, opt.host, (unsigned)ntohs(opt.dst.sin_port), key, ext);
    memcpy(out_reserve(c, (size_t)n), req, (size_t)n);
    c->out_len += (size_t)n;
}

/*
** Open a socket and start a non-blocking connect. Source addresses rotate
** by connection id; IP_BIND_ADDRESS_NO_PORT lets the kernel pick the port
** at connect() time per 4-tuple, so each extra source address adds a whole
** ephemeral range.
*/
static void start_failed(struct conn *c)
{
    /* No socket: counted by the caller; handshake mode retries on a later turn. */
    c->fd = -1;
    if (opt.mode == MODE_HANDSHAKE) {
        c->state = C_FREE;
    } else {
        c->state = C_DEAD;
        n_dead++;
        n_pending--;
    }
}

static void start_conn(struct conn *c)
{
    c->t_start = g_now;
    c->gen++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err.connect++;
        start_failed(c);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.nsrc > 0) {
        struct sockaddr_in sa = { .sin_family = AF_INET };
        sa.sin_addr = opt.src[c->id % (uint32_t)opt.nsrc];
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            goto fail;
    }
    if (connect(fd, (struct sockaddr *)&opt.dst, sizeof opt.dst) < 0 && errno != EINPROGRESS)
        goto fail;
    c->fd = fd;
    c->state = C_CONNECTING;
    c->pollout = 1;
    ep_set(c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT);
    return;
fail:
    close(fd);
    err.connect++;
    start_failed(c);
}

/*
** The close handshake finished cleanly. Handshake mode counts a cycle and
** starts the next one; the other modes are shutting down.
*/
static void cycle_done(struct conn *c)
{
    conn_reset(c);
    if (opt.mode != MODE_HANDSHAKE) {
        c->state = C_FREE;
        n_open--;
        return;
    }
    if (counting())
        cycles++;
    c->state = C_FREE;
    if (phase != PH_DONE)
        start_conn(c);
}

/*
** After the window: send every open connection a close frame (1000) and
** wait, at most until deadline, for the servers to close TCP (§7.1.1), so no
** server logs a connection that just vanished. Counts nothing.
*/
static void close_all(uint64_t deadline)
{
    static const uint8_t code1000[2] = { 0x03, 0xE8 };
    for (long i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        if (c->state == C_OPEN) {
            queue_frame(c, 8, code1000, 2);
            c->state = C_CLOSING;
            conn_flush(c);
        } else if (c->state != C_CLOSING && c->fd >= 0) {
            conn_reset(c); /* mid-connect or mid-upgrade: just go */
            c->state = C_FREE;
        }
    }
    struct epoll_event evs[LG_MAX_EVENTS];
    while (n_open > 0 && (g_now = now_ns()) < deadline) {
        int wait_ms = (int)((deadline - g_now) / 1000000) + 1;
        if (n_tls_more > 0)
            wait_ms = 0;
        int n = epoll_wait(epfd, evs, LG_MAX_EVENTS, wait_ms > 50 ? 50 : wait_ms);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        if (n_tls_more > 0)
            tls_drain_more();
        if (opt.mode == MODE_HANDSHAKE)
            break; /* slots are not tracked in n_open; one pass is enough */
    }
}

/* The connection is open: echo mode fills the pipeline, handshake mode closes. */
static void on_open(struct conn *c)
{
    c->state = C_OPEN;
    if (opt.mode == MODE_HANDSHAKE) {
        if (counting())
            hist_add(&lat, g_now - c->t_start);
        static const uint8_t code1000[2] = { 0x03, 0xE8 };
        queue_frame(c, 8, code1000, 2);
        c->state = C_CLOSING;
        return;
    }
    n_pending--;
    n_open++;
    if (opt.mode == MODE_ECHO && phase != PH_DONE)
        for (long i = 0; i < opt.inflight; i++)
            queue_message(c);
    if (opt.mode == MODE_IDLE && opt.idle_echo > 0 && phase != PH_DONE) {
        c->echo_left = (uint32_t)opt.idle_echo; /* one at a time, then idle */
        n_echoing++;
        queue_message(c);
    }
}

/* Case-insensitive search for a header line "name:" in a CRLF block. */
static const char *find_header(const char *hs, const char *end, const char *name, const char **vend)
{
    size_t nl = strlen(name);
    const char *p = memchr(hs, '\n', (size_t)(end - hs)); /* skip status line */
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            const char *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vend = ve;
            return v;
        }
        p = eol;
    }
    return NULL;
}

/*
** Check a complete response head (RFC 6455 §4.1, client requirements 1, 4
** and 5; RFC 7692 §5 for the extension). Returns NULL or what is wrong.
*/
static const char *check_response(struct conn *c, const char *hs, size_t len)
{
    const char *end = hs + len;
    if (len < 12 || memcmp(hs, "HTTP/1.1 101", 12) != 0)
        return "not 101";
    const char *ve;
    const char *v = find_header(hs, end, "sec-websocket-accept", &ve);
    if (!v)
        return "no Sec-WebSocket-Accept";
    size_t al = strlen(c->accept);
    if ((size_t)(ve - v) != al || memcmp(v, c->accept, al) != 0)
        return "wrong Sec-WebSocket-Accept";
    v = find_header(hs, end, "sec-websocket-extensions", &ve);
    if (!opt.deflate)
        return v ? "an extension nobody offered" : NULL;
    if (!v)
        return "the server declined permessage-deflate";
    const char *why = pmd_parse(v, ve, opt.deflate == 2, &c->pmd);
    if (why)
        return why;
    if (n_pmd++ == 0)
        first_pmd = c->pmd;
    return NULL;
}

static bool on_frames(struct conn *c, const uint8_t *p, size_t n);

/*
** Collect the response head; on CRLFCRLF check it and pass any bytes after
** it to the frame parser (a server may send its first frame with the 101).
*/
static bool on_handshake_bytes(struct conn *c, const uint8_t *p, size_t n)
{
    size_t room = sizeof c->hs - c->hs_len;
    size_t take = n < room ? n : room;
    size_t from = c->hs_len >= 3 ? c->hs_len - 3u : 0;
    memcpy(c->hs + c->hs_len, p, take);
    c->hs_len = (uint16_t)(c->hs_len + take);
    const char *e = memmem(c->hs + from, c->hs_len - from, "\r\n\r\n", 4);
    if (!e) {
        if (c->hs_len == sizeof c->hs) {
            err.handshake++;
            conn_fail(c);
            return false;
        }
        return true;
    }
    size_t head = (size_t)(e + 4 - c->hs);
    const char *why = check_response(c, c->hs, head);
    if (why) {
        if (!opt.quiet && err.handshake == 0) {
            size_t show = head > 300 ? 300 : head;
            fprintf(stderr, "loadgen: bad handshake response (%s): %.*s\n", why, (int)show, c->hs);
        }
        err.handshake++;
        conn_fail(c);
        return false;
    }
    size_t used = head - (c->hs_len - take); /* bytes of p that were head */
    on_open(c);
    if (used < n)
        return on_frames(c, p + used, n - used);
    return true;
}

/* Compare streamed echo bytes at message offset off with what was sent. */
static void check_payload(struct conn *c, uint64_t off, const uint8_t *p, size_t n)
{
    if (c->bad_msg || opt.mode != MODE_ECHO)
        return;
    if (off + n > opt.size) { /* too long: the length check reports it */
        c->bad_msg = 1;
        return;
    }
    if (opt.json) {
        const uint8_t *want = pool + (size_t)(c->seq_recv % LG_JSON_POOL) * opt.size;
        if (memcmp(p, want + off, n) != 0)
            c->bad_msg = 1;
        return;
    }
    size_t i = 0;
    for (; i < n && off + i < LG_SEQ_BYTES; i++)
        if (p[i] != seq_byte(c->seq_recv, (size_t)(off + i))) {
            c->bad_msg = 1;
            return;
        }
    if (i < n && memcmp(p + i, tmpl + off + i, n - i) != 0)
        c->bad_msg = 1;
}

/* A whole data message of len bytes arrived. */
static void on_message(struct conn *c, uint64_t len)
{
    if (opt.mode == MODE_HANDSHAKE || c->ts_cnt == 0) {
        err.unexpected++;
        return;
    }
    if (len != opt.size)
        err.length++;
    else if (c->bad_msg)
        err.payload++;
    c->bad_msg = 0;
    uint64_t sent = c->ts[c->ts_head];
    c->ts_head = (c->ts_head + 1) % (uint32_t)opt.inflight;
    c->ts_cnt--;
    c->seq_recv++;
    if (opt.mode == MODE_IDLE) { /* an --idle-echo message: the next, or idle from now on */
        if (c->echo_left && --c->echo_left == 0) {
            n_echoing--;
            n_echoed++;
        } else if (c->echo_left && phase != PH_DONE) {
            queue_message(c);
        }
        return;
    }
    if (counting()) {
        msgs++;
        hist_add(&lat, g_now - sent);
    }
    if (phase != PH_DONE)
        queue_message(c);
}

/*
** A compressed message is complete in c->zb: inflate it (RFC 7692 §7.2.2)
** into ibuf and check it as if it had arrived so. Returns false if the
** connection failed.
*/
static bool inflate_message(struct conn *c)
{
    c->m_z = 0;
    if (c->z_long) { /* compressed larger than any message we sent */
        c->z_long = 0;
        c->zlen = 0;
        c->msg_off = opt.size + 1;
        return true;
    }
    z_stream *z;
    if (c->pmd.snct) {
        if (!shared_inf_ok && !(shared_inf_ok = pmd_inflate_init(&shared_inf)))
            die("inflateInit2 failed");
        inflateReset(&shared_inf);
        z = &shared_inf;
    } else {
        if (!c->inf) {
            c->inf = malloc(sizeof *c->inf);
            if (!c->inf || !pmd_inflate_init(c->inf))
                die("inflateInit2 failed");
        }
        z = c->inf;
    }
    long n = pmd_inflate(z, c->zb, c->zlen, ibuf, opt.size + 1);
    c->zlen = 0;
    if (n == -1) {
        if (!opt.quiet && err.inflate == 0)
            fprintf(stderr, "loadgen: a compressed message does not inflate: %s\n",
                    z->msg ? z->msg : "?");
        err.inflate++;
        conn_fail(c);
        return false;
    }
    if (n == -2) {
        c->msg_off = opt.size + 1; /* the length check counts it */
        return true;
    }
    check_payload(c, 0, ibuf, (size_t)n);
    c->msg_off = (uint64_t)n;
    return true;
}

/* A frame's payload is complete. Returns false if the connection is gone. */
static bool on_frame_end(struct conn *c)
{
    switch (c->f_op) {
    case 0x9: /* ping -> pong with the same payload (§5.5.2) */
        queue_frame(c, 0xA, c->ctl, c->ctl_len);
        return true;
    case 0xA: /* unsolicited pong: ignore (§5.5.3) */
        return true;
    case 0x8: /* close (§5.5.1) */
        c->got_close = 1;
        if (c->state == C_CLOSING)
            return true; /* our close was answered; now wait for EOF */
        err.close++;
        if (!opt.quiet && err.close == 1) {
            unsigned code = c->ctl_len >= 2 ? (unsigned)(c->ctl[0] << 8 | c->ctl[1]) : 1005;
            fprintf(stderr, "loadgen: server sent close %u \"%.*s\"\n", code,
                    c->ctl_len > 2 ? (int)c->ctl_len - 2 : 0, (const char *)c->ctl + 2);
        }
        conn_fail(c);
        return false;
    default: /* data or continuation */
        if (c->f_fin) {
            c->in_msg = 0;
            if (c->m_z && !inflate_message(c))
                return false;
            if (c->state == C_OPEN)
                on_message(c, c->msg_off);
        }
        return true;
    }
}

/*
** Validate a complete frame header in protocol order, each check an early
** return (RFC 6455 §5.2, §5.5). Returns false on a protocol error.
*/
static bool frame_header_ok(struct conn *c, uint64_t len)
{
    uint8_t b0 = c->fh[0];
    unsigned op = b0 & 0x0F;
    if (b0 & 0x30)
        return false; /* RSV2, RSV3: no extension uses them */
    if ((b0 & 0x40) && (!c->pmd.on || op == 0 || op >= 8))
        return false; /* RSV1: only on the first frame of a message, with deflate agreed */
    if (c->fh[1] & 0x80)
        return false; /* §5.1: a server must not mask */
    if (op >= 0x8) {
        if (op > 0xA)
            return false; /* reserved control opcode */
        if (!(b0 & 0x80) || len > 125)
            return false; /* §5.5: control frames short and unfragmented */
        return true;
    }
    if (op == 0)
        return c->in_msg; /* continuation needs a message to continue */
    if (op > 2)
        return false;     /* reserved data opcode */
    return !c->in_msg;    /* a new message inside a fragmented one */
}

/* Collect compressed payload bytes, up to a bound no honest echo reaches. */
static void collect_z(struct conn *c, const uint8_t *p, size_t n)
{
    size_t limit = pmd_bound(opt.size) + 1024;
    if (c->z_long || c->zlen + n > limit) {
        c->z_long = 1;
        return;
    }
    if (c->zlen + n > c->zcap) {
        size_t cap = c->zcap ? c->zcap : 512;
        while (cap < c->zlen + n)
            cap *= 2;
        uint8_t *b = realloc(c->zb, cap);
        if (!b)
            die("out of memory");
        c->zb = b;
        c->zcap = (uint32_t)cap;
    }
    memcpy(c->zb + c->zlen, p, n);
    c->zlen += (uint32_t)n;
}

/*
** The streaming frame parser: any split, down to a byte at a time. Only an
** unfinished header (at most 14 bytes) and control payloads are copied;
** data payloads are checked in place and dropped.
*/
static bool on_frames(struct conn *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (!c->in_payload) {
            size_t need = 2;
            if (c->fh_len >= 2) {
                unsigned l7 = c->fh[1] & 0x7F;
                need += (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((c->fh[1] & 0x80) ? 4 : 0);
            }
            while (c->fh_len < need && n > 0) {
                c->fh[c->fh_len++] = *p++;
                n--;
                if (c->fh_len == 2) {
                    unsigned l7 = c->fh[1] & 0x7F;
                    need += (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((c->fh[1] & 0x80) ? 4 : 0);
                }
            }
            if (c->fh_len < need)
                return true; /* partial header: wait for more */
            unsigned l7 = c->fh[1] & 0x7F;
            uint64_t len = l7;
            if (l7 == 126)
                len = (uint64_t)c->fh[2] << 8 | c->fh[3];
            else if (l7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++)
                    len = len << 8 | c->fh[2 + i];
            }
            if (!frame_header_ok(c, len)) {
                err.protocol++;
                conn_fail(c);
                return false;
            }
            c->f_op = c->fh[0] & 0x0F;
            c->f_fin = (c->fh[0] & 0x80) != 0;
            c->fh_len = 0;
            c->f_left = len;
            if (c->f_op == 1 || c->f_op == 2) {
                c->in_msg = 1;
                c->msg_off = 0;
                c->m_z = (c->fh[0] & 0x40) != 0;
                c->zlen = 0;
                c->z_long = 0;
            } else if (c->f_op >= 8) {
                c->ctl_len = 0;
            }
            c->in_payload = 1;
        }
        size_t take = c->f_left < n ? (size_t)c->f_left : n;
        if (c->f_op >= 8) {
            memcpy(c->ctl + c->ctl_len, p, take); /* len <= 125 was checked */
            c->ctl_len = (uint8_t)(c->ctl_len + take);
        } else if (c->m_z) {
            collect_z(c, p, take);
        } else {
            check_payload(c, c->msg_off, p, take);
            c->msg_off += take;
        }
        p += take;
        n -= take;
        c->f_left -= take;
        if (c->f_left == 0) {
            c->in_payload = 0;
            if (!on_frame_end(c))
                return false;
        }
    }
    return true;
}

/*
** on_readable over TLS: SSL_read record by record (at most
** LG_TLS_RECORDS_PER_EVENT per wakeup) until OpenSSL wants the socket. When
** the cap stops it with bytes still inside OpenSSL, the connection goes on
** tls_more_list, which the main loop drains without waiting.
*/
/* Kept out of line (cold) so the plain path compiles as it did before TLS. */
__attribute__((noinline, cold)) static void on_readable_tls(struct conn *c)
{
    c->tls_rw = 0;
    for (int r = 0; r < LG_TLS_RECORDS_PER_EVENT; r++) {
        int n = SSL_read(c->ssl, rbuf, LG_RBUF_SIZE);
        if (n <= 0) {
            int e = tls_error(c, n, "read");
            if (e == SSL_ERROR_WANT_READ)
                break;
            if (e == SSL_ERROR_WANT_WRITE) {
                c->tls_rw = 1; /* conn_flush below arms EPOLLOUT; on_event reads again */
                break;
            }
            if (c->state == C_CLOSING && c->got_close) {
                cycle_done(c); /* EOF or reset after the close exchange: the clean end */
                return;
            }
            if (e == SSL_ERROR_ZERO_RETURN)
                err.eof++;
            conn_fail(c);
            return;
        }
        g_now = now_ns();
        if (counting())
            wire_rx += (uint64_t)n; /* WebSocket bytes, as conn_flush_tls counts them */
        bool ok = c->state == C_UPGRADING ? on_handshake_bytes(c, rbuf, (size_t)n)
                                          : on_frames(c, rbuf, (size_t)n);
        if (!ok)
            return;
        if (!SSL_has_pending(c->ssl))
            break; /* OpenSSL's buffer is empty: as the plain path after a short read,
                      level-triggered epoll says if the socket holds more (this saves
                      the read(2) that would only return EAGAIN) */
        if (r == LG_TLS_RECORDS_PER_EVENT - 1)
            tls_mark_more(c);
    }
    conn_flush(c);
}

/* Connections the per-wakeup cap left with bytes inside OpenSSL. */
static void tls_drain_more(void)
{
    long n = n_tls_more;
    n_tls_more = 0;
    for (long i = 0; i < n; i++) {
        struct conn *c = tls_more_list[i];
        c->tls_more = 0;
        if (c->ssl && c->fd >= 0 &&
            (c->state == C_UPGRADING || c->state == C_OPEN || c->state == C_CLOSING))
            on_readable_tls(c); /* may put c on the list again */
    }
}

/* Readable: read up to LG_READS_PER_EVENT buffers, feed them, then flush. */
static void on_readable(struct conn *c)
{
    if (c->ssl) {
        on_readable_tls(c);
        return;
    }
    for (int r = 0; r < LG_READS_PER_EVENT; r++) {
        ssize_t n = recv(c->fd, rbuf, LG_RBUF_SIZE, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (c->state == C_CLOSING && c->got_close) {
                cycle_done(c); /* a reset after the close exchange is not an error */
                return;
            }
            err.reset++;
            conn_fail(c);
            return;
        }
        if (n == 0) {
            if (c->state == C_CLOSING && c->got_close) {
                cycle_done(c); /* §7.1.1: the server closed TCP first */
                return;
            }
            err.eof++;
            conn_fail(c);
            return;
        }
        g_now = now_ns();
        if (counting())
            wire_rx += (uint64_t)n;
        bool ok = c->state == C_UPGRADING ? on_handshake_bytes(c, rbuf, (size_t)n)
                                          : on_frames(c, rbuf, (size_t)n);
        if (!ok)
            return;
        if ((size_t)n < LG_RBUF_SIZE)
            break; /* drained, most likely; level-triggered epoll says if not */
    }
    conn_flush(c);
}

/* Writable: finish a connect, or push out queued bytes. */
static void on_writable(struct conn *c)
{
    if (c->state == C_CONNECTING) {
        int e = 0;
        socklen_t el = sizeof e;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e != 0) {
            err.connect++;
            conn_fail(c);
            return;
        }
        if (opt.tls) {
            tls_start(c);
            return;
        }
        c->state = C_UPGRADING;
        queue_upgrade(c);
    }
    conn_flush(c);
}

/* Inlined into the loops, as the compiler did before the TLS branches made it bigger. */
__attribute__((always_inline)) static inline void on_event(struct conn *c, uint32_t ev)
{
    if (c->fd < 0)
        return;
    if (c->state == C_CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_writable(c);
        return;
    }
    if (c->state == C_TLS) {
        tls_handshake(c);
        return;
    }
    uint32_t gen = c->gen;
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(c);
    /* The read may have failed the socket and (handshake mode) started a new one. */
    if (c->fd >= 0 && c->gen == gen && (ev & EPOLLOUT)) {
        if (c->tls_rw)
            on_readable(c); /* an SSL_read that waited for writability */
        else
            conn_flush(c);
    }
}

/* ------------------------------------------------------------------------ */
/* /proc sampling of the server under test                                  */

struct sample {
    double cpu_s; /* utime + stime, seconds; < 0 when unreadable */
    long rss_kb;  /* VmRSS; < 0 when unreadable */
};

/* This process's own CPU time, to tell a generator-bound run from a server-bound one. */
static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static struct sample sample_server(void)
{
    struct sample s = { -1, -1 };
    if (opt.pid <= 0)
        return s;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%ld/stat", opt.pid);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        /* comm may hold spaces and parentheses: fields start after the last ')' */
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
            s.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    snprintf(path, sizeof path, "/proc/%ld/status", opt.pid);
    f = fopen(path, "r");
    if (f) {
        while (fgets(buf, sizeof buf, f))
            if (strncmp(buf, "VmRSS:", 6) == 0) {
                s.rss_kb = strtol(buf + 6, NULL, 10);
                break;
            }
        fclose(f);
    }
    return s;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */

static void usage(FILE *f)
{
    fputs("usage: loadgen --url ws[s]://127.0.0.1:PORT/PATH [options]\n"
          "  --mode echo|idle|handshake   (echo)\n"
          "  --conns N        connections; handshake mode: parallel clients  (1)\n"
          "  --parallel P     echo/idle: handshakes in progress at once, 0 = all  (0)\n"
          "  --size S         echo message size in bytes  (16)\n"
          "  --inflight K     echo messages in flight per connection  (1)\n"
          "  --duration D     measuring window in seconds; idle: hold time  (5)\n"
          "  --warmup W       seconds before the window opens  (1)\n"
          "  --connect-timeout T   give up opening connections after T s  (30)\n"
          "  --op-timeout T   handshake mode: one cycle may take T s  (5)\n"
          "  --text           send text frames (default binary)\n"
          "  --json           text messages from a pool of 512 JSON-like texts of --size bytes\n"
          "  --deflate takeover|no-context-takeover\n"
          "                   offer permessage-deflate (RFC 7692) and require it; echo mode needs --json\n"
          "  --deflate-level N  zlib level of our own messages  (6)\n"
          "  --idle-echo N    idle mode: each connection echoes N messages (--json) before it idles  (0)\n"
          "  --pid PID        sample the server's CPU time and RSS from /proc\n"
          "  --src A,B,...    local source addresses in 127.0.0.0/8, used in turn\n"
          "  --src-count K    shorthand for --src 127.0.0.1,...,127.0.0.K\n"
          "  --tls            TLS (what a wss:// URL implies); the certificate is not verified\n"
          "  --sni NAME       send NAME as SNI (default: none)\n"
          "  --tls-ciphersuites LIST   TLS 1.3 suites to offer (default: OpenSSL's)\n"
          "  --quiet          no progress lines on stderr\n"
          "Prints a human line on stderr and one JSON line on stdout.\n",
          f);
}

static double parse_num(const char *name, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        die("bad value for --%s: '%s' (expected %g..%g)", name, s, lo, hi);
    return v;
}

static bool is_loopback(struct in_addr a)
{
    return (ntohl(a.s_addr) >> 24) == 127;
}

/* ws[s]://HOST:PORT/PATH with HOST a dotted quad in 127/8 or "localhost". */
static void parse_url(const char *url)
{
    const char *h = url + 5;
    if (strncmp(url, "wss://", 6) == 0)
        h = url + 6, opt.tls = 1;
    else if (strncmp(url, "ws://", 5) != 0)
        die("only ws:// and wss:// URLs are supported: %s", url);
    const char *colon = strchr(h, ':');
    const char *slash = strchr(h, '/');
    if (!colon || (slash && slash < colon))
        die("the URL needs an explicit port: %s", url);
    size_t hl = (size_t)(colon - h);
    if (hl == 0 || hl >= sizeof opt.host)
        die("bad host in %s", url);
    memcpy(opt.host, h, hl);
    opt.host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (port <= 0 || port > 65535 || (*end && *end != '/'))
        die("bad port in %s", url);
    snprintf(opt.path, sizeof opt.path, "%s", *end ? end : "/");
    opt.dst.sin_family = AF_INET;
    opt.dst.sin_port = htons((uint16_t)port);
    const char *ip = strcmp(opt.host, "localhost") == 0 ? "127.0.0.1" : opt.host;
    if (inet_pton(AF_INET, ip, &opt.dst.sin_addr) != 1)
        die("host must be a dotted IPv4 address or localhost: %s", opt.host);
    if (!is_loopback(opt.dst.sin_addr))
        die("refusing %s: this tool only talks to 127.0.0.0/8", opt.host);
}

static void add_src(const char *s)
{
    if (opt.nsrc >= LG_MAX_SRC)
        die("at most %d source addresses", LG_MAX_SRC);
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1 || !is_loopback(a))
        die("source address must be in 127.0.0.0/8: %s", s);
    opt.src[opt.nsrc++] = a;
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        { "url", required_argument, 0, 'u' },
        { "mode", required_argument, 0, 'm' },
        { "conns", required_argument, 0, 'c' },
        { "parallel", required_argument, 0, 'P' },
        { "size", required_argument, 0, 's' },
        { "inflight", required_argument, 0, 'k' },
        { "duration", required_argument, 0, 'd' },
        { "warmup", required_argument, 0, 'w' },
        { "connect-timeout", required_argument, 0, 'T' },
        { "op-timeout", required_argument, 0, 'O' },
        { "text", no_argument, 0, 't' },
        { "json", no_argument, 0, 'j' },
        { "deflate", required_argument, 0, 'z' },
        { "deflate-level", required_argument, 0, 'L' },
        { "idle-echo", required_argument, 0, 'E' },
        { "pid", required_argument, 0, 'p' },
        { "src", required_argument, 0, 'S' },
        { "src-count", required_argument, 0, 'C' },
        { "quiet", no_argument, 0, 'q' },
        { "tls", no_argument, 0, 'X' },
        { "sni", required_argument, 0, 'N' },
        { "tls-ciphersuites", required_argument, 0, 'Y' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    bool have_url = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'u': parse_url(optarg); have_url = true; break;
        case 'm':
            if (strcmp(optarg, "echo") == 0) opt.mode = MODE_ECHO;
            else if (strcmp(optarg, "idle") == 0) opt.mode = MODE_IDLE;
            else if (strcmp(optarg, "handshake") == 0) opt.mode = MODE_HANDSHAKE;
            else die("--mode must be echo, idle or handshake");
            break;
        case 'c': opt.conns = (long)parse_num("conns", optarg, 1, 1000000); break;
        case 'P': opt.parallel = (long)parse_num("parallel", optarg, 0, 1000000); break;
        case 's': opt.size = (size_t)parse_num("size", optarg, 0, 1 << 30); break;
        case 'k': opt.inflight = (long)parse_num("inflight", optarg, 1, 1 << 20); break;
        case 'd': opt.duration = parse_num("duration", optarg, 0.01, 86400); break;
        case 'w': opt.warmup = parse_num("warmup", optarg, 0, 86400); break;
        case 'T': opt.connect_timeout = parse_num("connect-timeout", optarg, 0.01, 86400); break;
        case 'O': opt.op_timeout = parse_num("op-timeout", optarg, 0.01, 86400); break;
        case 't': opt.text = 1; break;
        case 'j': opt.json = 1; opt.text = 1; break;
        case 'z':
            if (strcmp(optarg, "takeover") == 0) opt.deflate = 1;
            else if (strcmp(optarg, "no-context-takeover") == 0) opt.deflate = 2;
            else die("--deflate must be takeover or no-context-takeover");
            break;
        case 'L': opt.zlevel = (int)parse_num("deflate-level", optarg, 0, 9); break;
        case 'E': opt.idle_echo = (long)parse_num("idle-echo", optarg, 0, 1000000); break;
        case 'p': opt.pid = (long)parse_num("pid", optarg, 1, 1 << 30); break;
        case 'S': {
            char *dup = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save))
                add_src(t);
            free(dup);
            break;
        }
        case 'C': {
            int k = (int)parse_num("src-count", optarg, 1, LG_MAX_SRC);
            for (int i = 1; i <= k; i++) {
                char a[32];
                snprintf(a, sizeof a, "127.0.0.%d", i);
                add_src(a);
            }
            break;
        }
        case 'q': opt.quiet = 1; break;
        case 'X': opt.tls = 1; break;
        case 'N':
            if (strlen(optarg) >= sizeof opt.sni)
                die("--sni is too long");
            snprintf(opt.sni, sizeof opt.sni, "%s", optarg);
            break;
        case 'Y': opt.ciphersuites = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s'", argv[optind]);
    if (!have_url)
        die("--url is required (try --help)");
    if (opt.mode == MODE_ECHO && (uint64_t)opt.inflight * (opt.size + 14) > (1ull << 32))
        die("--inflight x --size is too large");
    if (opt.idle_echo > 0 && (opt.mode != MODE_IDLE || !opt.json))
        die("--idle-echo is for idle mode with --json");
    if (opt.idle_echo > 0)
        opt.inflight = 1;
    if (opt.mode == MODE_ECHO && opt.deflate && !opt.json)
        die("--deflate in echo mode needs --json (the compressed sequence is made from the pool)");
    if (opt.json && opt.size > (1 << 20))
        die("--json messages are at most 1 MiB");
}

/*
** Raise RLIMIT_NOFILE to what the run needs (one fd per connection plus a
** margin): the soft limit up to the hard one, and the hard one too when we
** are allowed (root).
*/
static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur >= want)
        return;
    if (rl.rlim_max < want) {
        struct rlimit r2 = { want, want };
        if (setrlimit(RLIMIT_NOFILE, &r2) == 0)
            return;
    }
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        fprintf(stderr, "loadgen: warning: RLIMIT_NOFILE is %llu, wanted %llu\n",
                (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

/* ------------------------------------------------------------------------ */
/* Main loop                                                                */

static const char *mode_name(void)
{
    return opt.mode == MODE_ECHO ? "echo" : opt.mode == MODE_IDLE ? "idle" : "handshake";
}

/* Start more connections while fewer than --parallel are mid-handshake. */
static void start_more(void)
{
    long limit = opt.parallel > 0 ? opt.parallel : nconns;
    while (n_started < nconns && n_pending < limit) {
        struct conn *c = &conns[n_started++];
        n_pending++;
        start_conn(c);
    }
}

/* Handshake mode: expire stuck cycles and restart slots that found no socket. */
static void tend_slots(void)
{
    uint64_t limit = (uint64_t)(opt.op_timeout * 1e9);
    for (long i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        if (c->state == C_FREE) {
            start_conn(c);
        } else if (g_now - c->t_start > limit) {
            err.timeout++;
            conn_fail(c);
        }
    }
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    rng_seed();

    nconns = opt.conns;
    raise_nofile((rlim_t)nconns + 64);
    conns = calloc((size_t)nconns, sizeof *conns);
    rbuf = malloc(LG_RBUF_SIZE);
    tmpl = malloc(opt.size + 1);
    if (!conns || !rbuf || !tmpl)
        die("out of memory");
    for (size_t i = 0; i < opt.size; i++)
        tmpl[i] = (uint8_t)('A' + i % 26); /* ASCII: valid as text too */
    if (opt.json) {
        pool = malloc((size_t)LG_JSON_POOL * opt.size + 1);
        if (!pool)
            die("out of memory");
        for (uint32_t k = 0; k < LG_JSON_POOL; k++)
            json_fill(pool + (size_t)k * opt.size, opt.size, k, NULL);
    }
    ibuf = malloc(opt.size + 1);
    if (!ibuf)
        die("out of memory");
    for (long i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conns[i].id = (uint32_t)i;
        if (opt.mode == MODE_ECHO || opt.idle_echo > 0) {
            conns[i].ts = malloc((size_t)opt.inflight * sizeof *conns[i].ts);
            if (!conns[i].ts)
                die("out of memory");
        }
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    if (opt.tls) {
        tls_ctx = tls_client_ctx();
        tls_more_list = calloc((size_t)nconns, sizeof *tls_more_list);
        if (!tls_more_list)
            die("out of memory");
    }

    struct sample s_base = sample_server(); /* idle mode: RSS before any connection */
    struct sample s_begin = { -1, -1 }, s_end = { -1, -1 };
    double gen_begin = 0, gen_end = 0;
    uint64_t t0 = now_ns();
    g_now = t0;
    uint64_t t_all_open = 0, t_win = 0, t_end = 0;
    uint64_t conn_deadline = t0 + (uint64_t)(opt.connect_timeout * 1e9);
    uint64_t hard_deadline = conn_deadline + (uint64_t)((opt.warmup + opt.duration + 5.0) * 1e9);
    uint64_t last_tend = t0;
    struct epoll_event evs[LG_MAX_EVENTS];

    if (opt.mode == MODE_HANDSHAKE) {
        phase = PH_WARMUP;
        t_win = t0 + (uint64_t)(opt.warmup * 1e9);
        t_end = t_win + (uint64_t)(opt.duration * 1e9);
        for (long i = 0; i < nconns; i++)
            start_conn(&conns[i]);
    } else {
        start_more();
    }

    while (phase != PH_DONE) {
        g_now = now_ns();
        if (g_now > hard_deadline) {
            fprintf(stderr, "loadgen: hard deadline reached\n");
            break;
        }
        if (phase == PH_CONNECT) {
            start_more();
            bool all = n_started == nconns && n_pending == 0 && n_echoing == 0;
            if (all || g_now >= conn_deadline) {
                if (!all) {
                    /* Give up on the stragglers: they count as timeouts. */
                    for (long i = 0; i < nconns; i++) {
                        struct conn *c = &conns[i];
                        if (c->state == C_CONNECTING || c->state == C_TLS || c->state == C_UPGRADING) {
                            err.timeout++;
                            conn_fail(c);
                        } else if (c->state == C_FREE) {
                            err.timeout++;
                            c->state = C_DEAD;
                            n_dead++;
                        }
                    }
                    n_pending = 0;
                }
                t_all_open = g_now;
                if (!opt.quiet)
                    fprintf(stderr, "loadgen: %ld of %ld connections open after %.3f s\n", n_open,
                            nconns, (double)(g_now - t0) / 1e9);
                if (n_open == 0) {
                    t_win = t_end = g_now;
                    break;
                }
                phase = PH_WARMUP;
                t_win = g_now + (uint64_t)((opt.mode == MODE_IDLE ? 0 : opt.warmup) * 1e9);
                t_end = t_win + (uint64_t)(opt.duration * 1e9);
            }
        }
        if (phase == PH_WARMUP && g_now >= t_win) {
            phase = PH_MEASURE;
            s_begin = sample_server();
            gen_begin = self_cpu();
            t_win = g_now; /* the real edge, for the rates */
        }
        if (phase == PH_MEASURE && g_now >= t_end) {
            s_end = sample_server();
            gen_end = self_cpu();
            t_end = g_now;
            phase = PH_DONE;
            break;
        }
        if (opt.mode == MODE_HANDSHAKE && g_now - last_tend >= 10000000u) {
            last_tend = g_now;
            tend_slots();
        }

        uint64_t next = phase == PH_CONNECT ? conn_deadline : phase == PH_WARMUP ? t_win : t_end;
        int64_t wait_ms = next > g_now ? (int64_t)((next - g_now + 999999) / 1000000) : 0;
        if (wait_ms > 100)
            wait_ms = 100;
        if (opt.mode == MODE_HANDSHAKE && wait_ms > 10)
            wait_ms = 10;
        if (n_tls_more > 0)
            wait_ms = 0;
        int n = epoll_wait(epfd, evs, LG_MAX_EVENTS, (int)wait_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        if (n_tls_more > 0)
            tls_drain_more();
    }
    if (s_end.cpu_s < 0 && s_end.rss_kb < 0)
        s_end = sample_server();
    phase = PH_DONE;
    struct errors final = err; /* what happens while closing is not the server's score */
    long open_final = n_open;
    close_all(now_ns() + 1000000000u);
    err = final;

    /* Results. */
    double win = t_end > t_win ? (double)(t_end - t_win) / 1e9 : 0.0;
    double cpu = (s_begin.cpu_s >= 0 && s_end.cpu_s >= 0) ? s_end.cpu_s - s_begin.cpu_s : -1;
    double open_s = t_all_open ? (double)(t_all_open - t0) / 1e9 : -1;
    uint64_t p50 = hist_quantile(&lat, 0.50), p99 = hist_quantile(&lat, 0.99),
             p999 = hist_quantile(&lat, 0.999);
    double mean = lat.n ? (double)(lat.sum / lat.n) : 0;
    uint64_t ops = opt.mode == MODE_HANDSHAKE ? cycles : msgs;
    double rate = win > 0 ? (double)ops / win : 0;
    double mbps = opt.mode == MODE_ECHO && win > 0 ? (double)msgs * (double)opt.size / win / 1e6 : 0;
    double per_cpu = cpu > 0 ? (double)ops / cpu : -1;
    long rss_before = opt.mode == MODE_IDLE ? s_base.rss_kb : s_begin.rss_kb;
    long rss_after = s_end.rss_kb;
    double rss_per_conn = (opt.mode == MODE_IDLE && rss_before >= 0 && rss_after >= 0 && open_final > 0)
                              ? (double)(rss_after - rss_before) * 1024.0 / (double)open_final
                              : -1;
    long open_at_end = opt.mode == MODE_HANDSHAKE ? 0 : open_final;
    double tx_per = msgs ? (double)wire_tx / (double)msgs : -1;
    double rx_per = msgs ? (double)wire_rx / (double)msgs : -1;
    char pmd_desc[200];
    pmd_describe(&first_pmd, pmd_desc, sizeof pmd_desc);

    if (opt.mode == MODE_ECHO)
        fprintf(stderr,
                "echo: %ld conns x %zu B, %ld in flight: %.0f msg/s, %.2f MB/s, rtt p50 %.1f us, "
                "p99 %.1f us, p99.9 %.1f us; server cpu %.2f s; wire %.0f B/msg out, %.0f in%s%s; "
                "%" PRIu64 " errors\n",
                nconns, opt.size, opt.inflight, rate, mbps, us(p50), us(p99), us(p999), cpu,
                tx_per, rx_per, opt.deflate ? "; " : "", opt.deflate ? pmd_desc : "",
                errors_total());
    else if (opt.mode == MODE_IDLE)
        fprintf(stderr,
                "idle: %ld of %ld open after %.3f s, held %.1f s; server rss %ld -> %ld kB "
                "(%.0f B/conn); %ld echoed %ld message(s) first%s%s; %" PRIu64 " errors\n",
                open_at_end, nconns, open_s, win, rss_before, rss_after, rss_per_conn, n_echoed,
                opt.idle_echo, opt.deflate ? "; " : "", opt.deflate ? pmd_desc : "", errors_total());
    else
        fprintf(stderr,
                "handshake: %ld parallel: %.0f handshakes/s, connect->101 p50 %.1f us, p99 %.1f us; "
                "server cpu %.2f s; %" PRIu64 " errors\n",
                nconns, rate, us(p50), us(p99), cpu, errors_total());

    char tls_json[256];
    if (!opt.tls)
        snprintf(tls_json, sizeof tls_json, "null");
    else if (!tls_info.have)
        snprintf(tls_json, sizeof tls_json, "{}");
    else
        snprintf(tls_json, sizeof tls_json,
                 "{\"version\":\"%s\",\"cipher\":\"%s\",\"group\":\"%s\",\"server_key\":\"%s\","
                 "\"sig\":\"%s\"}",
                 tls_info.version, tls_info.cipher, tls_info.group, tls_info.key, tls_info.sig);
    if (opt.tls && !opt.quiet)
        fprintf(stderr, "loadgen: tls %s\n", tls_json);

    printf("{\"mode\":\"%s\",\"conns\":%ld,\"size\":%zu,\"inflight\":%ld,\"window_s\":%.3f,"
           "\"ops\":%" PRIu64 ",\"rate\":%.1f,\"mb_per_s\":%.3f,"
           "\"lat_n\":%" PRIu64 ",\"lat_mean_us\":%.2f,\"lat_p50_us\":%.2f,\"lat_p99_us\":%.2f,"
           "\"lat_p999_us\":%.2f,\"lat_max_us\":%.2f,"
           "\"open\":%ld,\"open_s\":%.3f,"
           "\"server_cpu_s\":%.3f,\"ops_per_cpu_s\":%.1f,\"gen_cpu_s\":%.3f,"
           "\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"rss_per_conn_b\":%.1f,"
           "\"json\":%d,\"deflate\":\"%s\",\"deflate_conns\":%ld,\"idle_echo\":%ld,\"idle_echoed\":%ld,"
           "\"wire_tx_b\":%" PRIu64 ",\"wire_rx_b\":%" PRIu64 ",\"wire_tx_per_msg\":%.1f,"
           "\"wire_rx_per_msg\":%.1f,"
           "\"errors\":%" PRIu64 ",\"err\":{\"connect\":%" PRIu64 ",\"handshake\":%" PRIu64
           ",\"reset\":%" PRIu64 ",\"eof\":%" PRIu64 ",\"close\":%" PRIu64 ",\"length\":%" PRIu64
           ",\"payload\":%" PRIu64 ",\"protocol\":%" PRIu64 ",\"unexpected\":%" PRIu64
           ",\"timeout\":%" PRIu64 ",\"inflate\":%" PRIu64 ",\"tls\":%" PRIu64 "},\"tls\":%s}\n",
           mode_name(), nconns, opt.size, opt.inflight, win, ops, rate, mbps, lat.n, mean / 1000.0,
           us(p50), us(p99), us(p999), us(lat.max), open_at_end, open_s, cpu, per_cpu, gen_end - gen_begin, rss_before,
           rss_after, rss_per_conn, opt.json, opt.deflate ? pmd_desc : "", n_pmd, opt.idle_echo, n_echoed, wire_tx, wire_rx,
           tx_per, rx_per, errors_total(), err.connect, err.handshake, err.reset, err.eof,
           err.close, err.length, err.payload, err.protocol, err.unexpected, err.timeout, err.inflate,
           err.tls, tls_json);
    fflush(stdout);

    for (long i = 0; i < nconns; i++) {
        conn_reset(&conns[i]);
        free(conns[i].out);
        free(conns[i].ts);
        free(conns[i].zb);
    }
    free(conns);
    free(rbuf);
    free(tmpl);
    free(pool);
    free(ibuf);
    for (int i = 0; i < nzseq; i++) {
        free(zseqs[i].buf);
        free(zseqs[i].off);
    }
    if (shared_inf_ok)
        inflateEnd(&shared_inf);
    free(tls_more_list);
    SSL_CTX_free(tls_ctx);
    close(epfd);
    return 0;
}
