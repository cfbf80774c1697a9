/* SPDX-License-Identifier: MIT */
/*
** fanout.c -- the fan-out client of the luaws benchmarks (bench/fanout.sh).
**
** One thread, one epoll loop. It opens N subscriber connections (spread over
** one or more servers, --url given once per server), then one publisher
** connection to the first server, waits --settle seconds, and then the
** publisher sends messages of S bytes, each of which the server broadcasts to
** every connection (the publisher's own included: luaws server:publish to a
** topic all of them subscribe to, node ws's loop over wss.clients, socket.io's
** io.emit). Closed loop with a bounded window: at most W messages are out at
** once, and the next leaves when the oldest has reached every connection.
**
** Every delivery is checked: the length, the content (the template bytes),
** and the order (the first 8 payload bytes carry the message's sequence
** number as letters a..p, so text frames stay valid UTF-8): a connection must
** get 0, 1, 2, ... with no gap and no repeat. A message that has not reached
** everyone after --stall-timeout seconds is given up (counted as a stall; the
** connections that missed it are counted as lost when their next message
** comes), so the loop never hangs.
**
** Two protocols:
**   ws   plain RFC 6455 text (or --binary) messages of S bytes;
**   sio  socket.io v4 over engine.io v4's websocket transport
**        (/socket.io/?EIO=4&transport=websocket): wait for the "0{...}" open
**        packet, send "40", wait for "40{...}"; a message is the text frame
**        42["msg","<S bytes>"]; engine.io pings "2" are answered with "3".
**
** --json makes the payload a JSON-like text of S bytes (bench/wsdeflate.h)
** that starts {"seq":"<8 letters>", so the sequence letters sit at offset 8.
** --deflate offers permessage-deflate with server_no_context_takeover and
** client_no_context_takeover (RFC 7692), and requires it: the publisher
** deflates each message alone (zlib level 6), and every delivery with RSV1 is
** inflated and checked. Without context takeover the same compressed bytes
** always inflate to the same text, so the client keeps the last few
** (compressed, inflated) pairs and a delivery whose bytes match one of them
** is checked by that comparison instead of a fresh inflate: the check stays
** exact and the client's CPU stays on the server's side of the ledger. Bytes
** received in the window are counted (wire bytes per delivery, frame headers
** included).
**
** With --pid (servers) and --aux-pid (e.g. redis-server) it reads each
** process's utime+stime from /proc/PID/stat at the exact edges of the
** measuring window, and reports server CPU per delivered message.
**
** It raises RLIMIT_NOFILE itself, can bind to several 127.0.0.x source
** addresses (--src-count), refuses any address outside 127.0.0.0/8, and the
** whole run is bounded by connect-timeout + settle + warmup + duration + 5 s.
** Output: a human line on stderr and one JSON object on stdout.
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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

#include <openssl/evp.h>

#include "wsdeflate.h"

#define FO_RBUF_SIZE (256 * 1024) /* one loop-wide receive buffer */
#define FO_HS_MAX 1024            /* longest handshake response we accept */
#define FO_MAX_EVENTS 1024
#define FO_MAX_SRC 64
#define FO_MAX_URLS 8
#define FO_MAX_PIDS 8
#define FO_SEQ_BYTES 8            /* payload bytes that carry the sequence number */
#define FO_READS_PER_EVENT 4

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
static const char SIO_PRE[] = "42[\"msg\",\"";
static const char SIO_POST[] = "\"]";
#define SIO_PRE_LEN (sizeof SIO_PRE - 1)
#define SIO_POST_LEN (sizeof SIO_POST - 1)

/* ------------------------------------------------------------------------ */
/* Options                                                                  */

enum proto { P_WS, P_SIO };

struct target {
    struct sockaddr_in dst;
    char host[64];
    char path[256];
};

struct options {
    enum proto proto;
    struct target url[FO_MAX_URLS];
    int nurl;
    long subs;            /* subscriber connections (the publisher is one more) */
    long parallel;        /* handshakes in progress at once */
    size_t size;          /* payload bytes per message */
    long window;          /* messages out at once */
    long messages;        /* stop the window after this many completed (0: no limit) */
    double duration, warmup, settle, connect_timeout, stall_timeout;
    long pid[FO_MAX_PIDS];
    int npid;
    long aux[FO_MAX_PIDS];
    int naux;
    struct in_addr src[FO_MAX_SRC];
    int nsrc;
    int binary;
    int json;
    int deflate;
    int quiet;
};

static struct options opt = {
    .proto = P_WS,
    .subs = 100,
    .parallel = 500,
    .size = 16,
    .window = 8,
    .duration = 5.0,
    .warmup = 1.0,
    .settle = 0.5,
    .connect_timeout = 30.0,
    .stall_timeout = 2.0,
};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fanout: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: masking keys and nonces need not be secret (see loadgen.c). */
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
/* Log-linear histogram (as in loadgen.c: under 0.8% error, reads high)     */

#define H_SUB 8
#define H_HALF (1u << (H_SUB - 1))
#define H_BUCKETS ((64 - H_SUB + 1) * H_HALF + H_HALF)

struct hist {
    uint64_t count[H_BUCKETS];
    uint64_t n, max;
};

static unsigned hist_index(uint64_t v)
{
    if (v < (1u << H_SUB))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - (H_SUB - 1);
    return (shift + 1) * H_HALF + (unsigned)((v >> shift) - H_HALF);
}

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
    if (v > h->max)
        h->max = v;
    h->n++;
}

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
    uint64_t handshake;  /* not 101, bad accept, socket.io refused the namespace */
    uint64_t reset;      /* socket errors */
    uint64_t eof;        /* the server closed TCP without a close frame */
    uint64_t close;      /* a close frame (or engine.io close) nobody asked for */
    uint64_t length;     /* a message of the wrong length or framing */
    uint64_t payload;    /* wrong content */
    uint64_t lost;       /* messages a connection never got (a gap in its sequence) */
    uint64_t dup;        /* a message a connection had already got */
    uint64_t stall;      /* messages given up after --stall-timeout */
    uint64_t protocol;   /* a frame the RFC forbids */
    uint64_t unexpected; /* a message we did not ask for */
    uint64_t timeout;    /* connections not open by --connect-timeout */
    uint64_t inflate;    /* a compressed message that does not inflate */
};

static struct errors err;

static uint64_t errors_total(void)
{
    return err.connect + err.handshake + err.reset + err.eof + err.close + err.length +
           err.payload + err.lost + err.dup + err.stall + err.protocol + err.unexpected +
           err.timeout + err.inflate;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

enum cstate { C_FREE, C_CONNECTING, C_UPGRADING, C_JOINING, C_OPEN, C_CLOSING, C_DEAD };
enum sio_stage { S_WAIT_OPEN, S_WAIT_CONNECT, S_READY };

struct conn {
    int fd;
    uint8_t state;      /* enum cstate */
    uint8_t pollout;
    uint8_t got_close;
    uint8_t sio;        /* enum sio_stage */
    uint8_t url;        /* which --url */
    uint8_t in_payload, fh_len, f_op, f_fin, in_msg, msg_op, ctl_len, too_long;
    uint8_t m_z;        /* the current data message has RSV1 */
    struct pmd pmd;     /* what permessage-deflate the server agreed */
    uint32_t id;
    char accept[32];
    char *hs;           /* the handshake response so far (freed once open) */
    uint16_t hs_len;
    uint8_t fh[14];
    uint8_t ctl[125];
    uint64_t f_left;
    uint8_t *mb;        /* the data message so far */
    uint32_t mlen, mcap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    uint64_t seq_recv;  /* the sequence number this connection expects next */
};

enum phase { PH_CONNECT, PH_SETTLE, PH_WARMUP, PH_MEASURE, PH_DONE };

static struct conn *conns;
static struct conn *pubc;          /* the publisher: conns[opt.subs] */
static struct conn *cur;           /* the connection whose bytes are being parsed */
static long nconns;
static int epfd = -1;
static uint8_t *rbuf, *tmpl;
static uint64_t g_now;
static enum phase phase = PH_CONNECT;
static long n_open, n_pending, n_dead, n_started;

/* The window: messages [done_seq, seq_sent) are out; cnt and sent_at are
 * rings of opt.window slots indexed by sequence number. */
static uint64_t seq_sent, done_seq, last_done;
static uint32_t *cnt;
static uint64_t *sent_at;
static uint64_t published, completed, deliveries;   /* in the window */
static struct hist dlat;   /* publish -> each delivery */
static struct hist flat;   /* publish -> the last delivery of that message */
static size_t seq_off;     /* where the sequence letters sit in the payload */
static uint8_t *pbuf, *zout; /* the publisher's payload; its compressed form */
static z_stream pub_def, sub_inf; /* the publisher's deflater; the inflater */
static bool pub_def_ok, sub_inf_ok;
static uint8_t pub_def_bits;
static uint8_t *ibuf;      /* an inflated message */
static long n_pmd;
static struct pmd first_pmd;
static uint64_t wire_rx, inflates, memo_hits;  /* in the window */

/* (compressed, inflated) pairs seen last: without context takeover the same
 * bytes always inflate to the same text. */
#define FO_MEMO 32
static struct memo {
    uint8_t *z, *plain;
    uint32_t zlen, plen, zcap;
} memo[FO_MEMO];
static unsigned memo_next;

static bool counting(void)
{
    return phase == PH_MEASURE;
}

static bool publishing(void)
{
    return phase == PH_WARMUP || phase == PH_MEASURE;
}

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

static void conn_reset(struct conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    free(c->hs);
    c->hs = NULL;
    c->hs_len = 0;
    c->out_off = c->out_len = 0;
    c->pollout = 0;
    c->fh_len = c->in_payload = c->in_msg = 0;
    c->f_left = 0;
    c->mlen = 0;
    c->too_long = 0;
    c->m_z = 0;
    memset(&c->pmd, 0, sizeof c->pmd);
}

/* A connection failed (the caller counted why); it stays dead. */
static void conn_fail(struct conn *c)
{
    enum cstate was = c->state;
    conn_reset(c);
    c->state = C_DEAD;
    n_dead++;
    if (was == C_OPEN || was == C_CLOSING)
        n_open--;
    else
        n_pending--;
}

static bool conn_flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
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

static size_t put_header(uint8_t *h, unsigned opcode, uint64_t len, uint8_t key[4])
{
    size_t n = 0;
    h[n++] = (uint8_t)(0x80 | opcode);
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

/* Queue a masked frame with the concatenation of up to three pieces. */
static void queue_frame3(struct conn *c, unsigned opcode, const void *a, size_t al, const void *b,
                         size_t bl, const void *d, size_t dl)
{
    size_t len = al + bl + dl;
    uint8_t *o = out_reserve(c, 14 + len);
    uint8_t key[4];
    size_t h = put_header(o, opcode, len, key);
    uint8_t *p = o + h;
    memcpy(p, a, al);
    memcpy(p + al, b, bl);
    memcpy(p + al + bl, d, dl);
    mask_copy(p, p, len, key);
    c->out_len += h + len;
}

static void queue_frame(struct conn *c, unsigned opcode, const void *p, size_t len)
{
    queue_frame3(c, opcode, p, len, "", 0, "", 0);
}

static inline uint8_t seq_byte(uint64_t seq, size_t i)
{
    return (uint8_t)('a' + ((seq >> (4 * i)) & 15));
}

static void base64(char *dst, const uint8_t *src, size_t n)
{
    EVP_EncodeBlock((unsigned char *)dst, src, (int)n);
}

static void queue_upgrade(struct conn *c)
{
    const struct target *t = &opt.url[c->url];
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
    char req[700];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s:%u\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s%s%s"
                     "\r\n",
                     t->path, t->host, (unsigned)ntohs(t->dst.sin_port), key,
                     opt.deflate ? "Sec-WebSocket-Extensions: " : "", opt.deflate ? pmd_offer(true) : "",
                     opt.deflate ? "\r\n" : "");
    memcpy(out_reserve(c, (size_t)n), req, (size_t)n);
    c->out_len += (size_t)n;
}

static void start_conn(struct conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto nosock;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.nsrc > 0) {
        struct sockaddr_in sa = { .sin_family = AF_INET };
        sa.sin_addr = opt.src[c->id % (uint32_t)opt.nsrc];
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            goto fail;
    }
    const struct target *t = &opt.url[c->url];
    if (connect(fd, (const struct sockaddr *)&t->dst, sizeof t->dst) < 0 && errno != EINPROGRESS)
        goto fail;
    c->fd = fd;
    c->state = C_CONNECTING;
    c->pollout = 1;
    ep_set(c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT);
    return;
fail:
    close(fd);
nosock:
    err.connect++;
    c->fd = -1;
    c->state = C_DEAD;
    n_dead++;
    n_pending--;
}

/* The connection can receive broadcasts now. */
static void on_ready(struct conn *c)
{
    c->state = C_OPEN;
    n_pending--;
    n_open++;
    c->seq_recv = seq_sent; /* nothing was published before all were open */
}

static void check_done(void);

/* Publish while the window has room (queues only; the caller flushes). */
static void publish_more(void)
{
    struct conn *p = pubc;
    if (!publishing() || p->state != C_OPEN)
        return;
    while (seq_sent - done_seq < (uint64_t)opt.window) {
        if (opt.messages > 0 && counting() && published >= (uint64_t)opt.messages)
            return;
        uint64_t s = seq_sent++;
        uint32_t slot = (uint32_t)(s % (uint64_t)opt.window);
        cnt[slot] = 0;
        sent_at[slot] = g_now;
        size_t ns = opt.size < FO_SEQ_BYTES ? opt.size : FO_SEQ_BYTES;
        uint8_t head[FO_SEQ_BYTES];
        for (size_t i = 0; i < ns; i++)
            head[i] = seq_byte(s, i);
        /* the payload: sequence letters, then the template's tail */
        if (opt.json || p->pmd.on) {
            /* the template with the letters in place, deflated alone if agreed */
            memcpy(pbuf, tmpl, opt.size);
            memcpy(pbuf + seq_off, head, ns);
            const uint8_t *m = pbuf;
            size_t len = opt.size;
            if (p->pmd.on) {
                if (!pub_def_ok || pub_def_bits != p->pmd.cbits) {
                    if (pub_def_ok)
                        deflateEnd(&pub_def);
                    if (!(pub_def_ok = pmd_deflate_init(&pub_def, 6, p->pmd.cbits)))
                        die("deflateInit2 failed");
                    pub_def_bits = p->pmd.cbits;
                }
                deflateReset(&pub_def); /* no context takeover: each message alone */
                len = pmd_compress(&pub_def, pbuf, opt.size, zout, pmd_bound(opt.size));
                if (len == (size_t)-1)
                    die("deflate failed");
                m = zout;
            }
            uint8_t *o = out_reserve(p, 14 + len);
            uint8_t key[4];
            size_t h = put_header(o, opt.binary ? 2 : 1, len, key);
            if (p->pmd.on)
                o[0] |= 0x40; /* RSV1 */
            mask_copy(o + h, m, len, key);
            p->out_len += h + len;
        } else if (opt.proto == P_SIO) {
            size_t len = SIO_PRE_LEN + opt.size + SIO_POST_LEN;
            uint8_t *o = out_reserve(p, 14 + len);
            uint8_t key[4];
            size_t h = put_header(o, 1, len, key);
            uint8_t *q = o + h;
            memcpy(q, SIO_PRE, SIO_PRE_LEN);
            memcpy(q + SIO_PRE_LEN, head, ns);
            memcpy(q + SIO_PRE_LEN + ns, tmpl + ns, opt.size - ns);
            memcpy(q + SIO_PRE_LEN + opt.size, SIO_POST, SIO_POST_LEN);
            mask_copy(q, q, len, key);
            p->out_len += h + len;
        } else {
            queue_frame3(p, opt.binary ? 2 : 1, head, ns, tmpl + ns, opt.size - ns, "", 0);
        }
        if (counting())
            published++;
    }
}

/* The oldest messages that reached everyone are done; refill the window. */
static void check_done(void)
{
    bool any = false;
    while (done_seq < seq_sent) {
        uint32_t slot = (uint32_t)(done_seq % (uint64_t)opt.window);
        if (cnt[slot] < (uint32_t)n_open)
            break;
        if (counting()) {
            completed++;
            hist_add(&flat, g_now - sent_at[slot]);
        }
        done_seq++;
        last_done = g_now;
        any = true;
    }
    if (any) {
        if (counting() && opt.messages > 0 && completed >= (uint64_t)opt.messages)
            return; /* the main loop ends the window */
        publish_more();
        if (cur != pubc && pubc->state == C_OPEN)
            conn_flush(pubc);
    }
}

/* Give up on the oldest message if it has been out too long. */
static void check_stall(void)
{
    if (done_seq >= seq_sent)
        return;
    uint32_t slot = (uint32_t)(done_seq % (uint64_t)opt.window);
    uint64_t since = sent_at[slot] > last_done ? sent_at[slot] : last_done;
    if (g_now - since < (uint64_t)(opt.stall_timeout * 1e9))
        return;
    err.stall++;
    if (!opt.quiet && err.stall <= 3)
        fprintf(stderr, "fanout: message %" PRIu64 " reached %u of %ld connections in %.1f s\n",
                done_seq, cnt[slot], n_open, opt.stall_timeout);
    cnt[slot] = (uint32_t)n_open; /* the rest count as lost when their next message comes */
    check_done();
}

/* Decode the sequence letters; false if they are not letters a..p. */
static bool decode_seq(const uint8_t *p, size_t n, uint64_t *out)
{
    uint64_t s = 0;
    size_t ns = n < FO_SEQ_BYTES ? n : FO_SEQ_BYTES;
    for (size_t i = 0; i < ns; i++) {
        if (p[i] < 'a' || p[i] > 'p')
            return false;
        s |= (uint64_t)(p[i] - 'a') << (4 * i);
    }
    *out = s;
    return true;
}

/* A broadcast payload of len bytes arrived on c. */
static void on_delivery(struct conn *c, const uint8_t *p, size_t len)
{
    uint64_t s;
    if (len != opt.size) {
        err.length++;
        return;
    }
    size_t ns = opt.size < FO_SEQ_BYTES ? opt.size : FO_SEQ_BYTES;
    if (!decode_seq(p + seq_off, len - seq_off, &s) || memcmp(p, tmpl, seq_off) != 0 ||
        memcmp(p + seq_off + ns, tmpl + seq_off + ns, len - seq_off - ns) != 0) {
        err.payload++;
        return;
    }
    if (opt.size < FO_SEQ_BYTES) /* too short to carry the number: trust the order */
        s = c->seq_recv;
    /* The letters hold 32 bits: take the number nearest to what we expect. */
    if (opt.size >= FO_SEQ_BYTES)
        s = (c->seq_recv & ~0xFFFFFFFFull) | s;
    if (s < c->seq_recv) {
        err.dup++;
        return;
    }
    if (s > c->seq_recv)
        err.lost += s - c->seq_recv;
    c->seq_recv = s + 1;
    if (s >= seq_sent) {
        err.unexpected++; /* nobody published it */
        return;
    }
    if (counting()) {
        deliveries++;
        hist_add(&dlat, g_now - sent_at[s % (uint64_t)opt.window]);
    }
    if (s >= done_seq) {
        cnt[s % (uint64_t)opt.window]++;
        if (s == done_seq)
            check_done();
    }
}

/* socket.io: a complete engine.io packet (one text message). */
static void on_sio_packet(struct conn *c, const uint8_t *p, size_t len)
{
    if (len == 1 && p[0] == '2') { /* ping -> pong */
        queue_frame(c, 1, "3", 1);
        return;
    }
    if (c->sio == S_READY) {
        if (len >= SIO_PRE_LEN + SIO_POST_LEN && memcmp(p, SIO_PRE, SIO_PRE_LEN) == 0 &&
            memcmp(p + len - SIO_POST_LEN, SIO_POST, SIO_POST_LEN) == 0) {
            on_delivery(c, p + SIO_PRE_LEN, len - SIO_PRE_LEN - SIO_POST_LEN);
            return;
        }
        if (len >= 1 && p[0] == '1') {
            err.close++;
            conn_fail(c);
            return;
        }
        err.unexpected++;
        return;
    }
    if (c->sio == S_WAIT_OPEN && len >= 2 && p[0] == '0' && p[1] == '{') {
        queue_frame(c, 1, "40", 2);
        c->sio = S_WAIT_CONNECT;
        return;
    }
    if (c->sio == S_WAIT_CONNECT && len >= 2 && p[0] == '4' && p[1] == '0') {
        c->sio = S_READY;
        on_ready(c);
        return;
    }
    if (!opt.quiet && err.handshake == 0)
        fprintf(stderr, "fanout: socket.io handshake: unexpected packet %.*s\n",
                (int)(len > 120 ? 120 : len), (const char *)p);
    err.handshake++;
    conn_fail(c);
}

/*
** A compressed message (RSV1) is whole in c->mb: find its text (the memo, or
** a fresh inflate) and pass it on. Returns false if the connection failed.
*/
static bool on_compressed(struct conn *c)
{
    c->m_z = 0;
    if (!c->pmd.snct) { /* we offered, and parse_pmd required, no context takeover */
        err.protocol++;
        conn_fail(c);
        return false;
    }
    for (unsigned i = 0; i < FO_MEMO; i++) {
        struct memo *m = &memo[i];
        if (m->z && m->zlen == c->mlen && memcmp(m->z, c->mb, c->mlen) == 0) {
            if (counting())
                memo_hits++;
            on_delivery(c, m->plain, m->plen);
            return true;
        }
    }
    if (!sub_inf_ok && !(sub_inf_ok = pmd_inflate_init(&sub_inf)))
        die("inflateInit2 failed");
    inflateReset(&sub_inf);
    long n = pmd_inflate(&sub_inf, c->mb, c->mlen, ibuf, opt.size + 1);
    if (counting())
        inflates++;
    if (n == -1) {
        if (!opt.quiet && err.inflate == 0)
            fprintf(stderr, "fanout: a compressed message does not inflate: %s\n",
                    sub_inf.msg ? sub_inf.msg : "?");
        err.inflate++;
        conn_fail(c);
        return false;
    }
    if (n == -2) {
        err.length++;
        return true;
    }
    struct memo *m = &memo[memo_next++ % FO_MEMO];
    if (m->zcap < c->mlen || !m->plain) {
        free(m->z);
        free(m->plain);
        m->zcap = c->mlen > 64 ? c->mlen : 64;
        m->z = malloc(m->zcap);
        m->plain = malloc(opt.size + 1);
        if (!m->z || !m->plain)
            die("out of memory");
    }
    memcpy(m->z, c->mb, c->mlen);
    m->zlen = c->mlen;
    memcpy(m->plain, ibuf, (size_t)n);
    m->plen = (uint32_t)n;
    on_delivery(c, ibuf, (size_t)n);
    return true;
}

static void on_message(struct conn *c)
{
    if (c->too_long) {
        err.length++;
        c->too_long = 0;
        c->m_z = 0;
        return;
    }
    if (c->m_z) {
        if (opt.proto == P_SIO || c->msg_op != 1 + opt.binary) {
            err.unexpected++;
            c->m_z = 0;
            return;
        }
        on_compressed(c);
        return;
    }
    if (opt.proto == P_SIO) {
        if (c->msg_op != 1) {
            err.unexpected++;
            return;
        }
        on_sio_packet(c, c->mb, c->mlen);
    } else {
        on_delivery(c, c->mb, c->mlen);
    }
}

static bool on_frame_end(struct conn *c)
{
    switch (c->f_op) {
    case 0x9: /* ping -> pong, unless our close frame went out already */
        if (c->state != C_CLOSING)
            queue_frame(c, 0xA, c->ctl, c->ctl_len);
        return true;
    case 0xA:
        return true;
    case 0x8:
        c->got_close = 1;
        if (c->state == C_CLOSING)
            return true;
        err.close++;
        if (!opt.quiet && err.close == 1) {
            unsigned code = c->ctl_len >= 2 ? (unsigned)(c->ctl[0] << 8 | c->ctl[1]) : 1005;
            fprintf(stderr, "fanout: server sent close %u \"%.*s\"\n", code,
                    c->ctl_len > 2 ? (int)c->ctl_len - 2 : 0, (const char *)c->ctl + 2);
        }
        conn_fail(c);
        return false;
    default:
        if (c->f_fin) {
            c->in_msg = 0;
            if (c->state == C_OPEN || c->state == C_JOINING)
                on_message(c);
            c->mlen = 0;
            if (c->state == C_DEAD)
                return false;
        }
        return true;
    }
}

static bool frame_header_ok(struct conn *c, uint64_t len)
{
    uint8_t b0 = c->fh[0];
    unsigned op = b0 & 0x0F;
    if (b0 & 0x30)
        return false;
    if ((b0 & 0x40) && (!c->pmd.on || op == 0 || op >= 8))
        return false; /* RSV1: first frame of a message, with deflate agreed */
    if (c->fh[1] & 0x80)
        return false;
    if (op >= 0x8) {
        if (op > 0xA)
            return false;
        if (!(b0 & 0x80) || len > 125)
            return false;
        return true;
    }
    if (op == 0)
        return c->in_msg;
    if (op > 2)
        return false;
    return !c->in_msg;
}

/* Streaming frame parser (any split); data payloads collect in c->mb. */
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
                return true;
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
                c->msg_op = c->f_op;
                c->mlen = 0;
                c->m_z = (c->fh[0] & 0x40) != 0;
            } else if (c->f_op >= 8) {
                c->ctl_len = 0;
            }
            c->in_payload = 1;
            if (len == 0) {
                c->in_payload = 0;
                if (!on_frame_end(c))
                    return false;
                continue;
            }
        }
        size_t take = c->f_left < n ? (size_t)c->f_left : n;
        if (c->f_op >= 8) {
            memcpy(c->ctl + c->ctl_len, p, take);
            c->ctl_len = (uint8_t)(c->ctl_len + take);
        } else if (c->mlen + take <= c->mcap) {
            memcpy(c->mb + c->mlen, p, take);
            c->mlen += (uint32_t)take;
        } else {
            c->too_long = 1;
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

static const char *find_header(const char *hs, const char *end, const char *name, const char **vend)
{
    size_t nl = strlen(name);
    const char *p = memchr(hs, '\n', (size_t)(end - hs));
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

/* The 101 (RFC 6455 §4.1, RFC 7692 §5): NULL, or what is wrong with it. */
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
    const char *why = pmd_parse(v, ve, true, &c->pmd);
    if (why)
        return why;
    if (n_pmd++ == 0)
        first_pmd = c->pmd;
    return NULL;
}

static bool on_handshake_bytes(struct conn *c, const uint8_t *p, size_t n)
{
    size_t room = FO_HS_MAX - c->hs_len;
    size_t take = n < room ? n : room;
    size_t from = c->hs_len >= 3 ? c->hs_len - 3u : 0;
    memcpy(c->hs + c->hs_len, p, take);
    c->hs_len = (uint16_t)(c->hs_len + take);
    const char *e = memmem(c->hs + from, c->hs_len - from, "\r\n\r\n", 4);
    if (!e) {
        if (c->hs_len == FO_HS_MAX) {
            err.handshake++;
            conn_fail(c);
            return false;
        }
        return true;
    }
    size_t head = (size_t)(e + 4 - c->hs);
    const char *why = check_response(c, c->hs, head);
    if (why) {
        if (!opt.quiet && err.handshake == 0)
            fprintf(stderr, "fanout: bad handshake response (%s): %.*s\n", why,
                    (int)(head > 300 ? 300 : head), c->hs);
        err.handshake++;
        conn_fail(c);
        return false;
    }
    size_t used = head - (c->hs_len - take);
    free(c->hs);
    c->hs = NULL;
    if (!c->mb) {
        c->mcap = (uint32_t)(pmd_bound(opt.size) + SIO_PRE_LEN + SIO_POST_LEN + 16);
        if (c->mcap < 512)
            c->mcap = 512; /* engine.io's open packet */
        c->mb = malloc(c->mcap);
        if (!c->mb)
            die("out of memory");
    }
    if (opt.proto == P_SIO) {
        c->state = C_JOINING;
        c->sio = S_WAIT_OPEN;
    } else {
        on_ready(c);
    }
    if (used < n)
        return on_frames(c, p + used, n - used);
    return true;
}

static void on_readable(struct conn *c)
{
    cur = c;
    for (int r = 0; r < FO_READS_PER_EVENT; r++) {
        ssize_t n = recv(c->fd, rbuf, FO_RBUF_SIZE, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (c->state == C_CLOSING && c->got_close)
                goto closed;
            err.reset++;
            conn_fail(c);
            goto out;
        }
        if (n == 0) {
            if (c->state == C_CLOSING)
                goto closed;
            err.eof++;
            conn_fail(c);
            goto out;
        }
        g_now = now_ns();
        if (counting())
            wire_rx += (uint64_t)n;
        bool ok = c->state == C_UPGRADING ? on_handshake_bytes(c, rbuf, (size_t)n)
                                          : on_frames(c, rbuf, (size_t)n);
        if (!ok)
            goto out;
        if ((size_t)n < FO_RBUF_SIZE)
            break;
    }
    conn_flush(c);
out:
    cur = NULL;
    return;
closed:
    conn_reset(c);
    c->state = C_FREE;
    n_open--;
    cur = NULL;
}

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
        c->hs = malloc(FO_HS_MAX);
        if (!c->hs)
            die("out of memory");
        c->state = C_UPGRADING;
        queue_upgrade(c);
    }
    conn_flush(c);
}

static void on_event(struct conn *c, uint32_t ev)
{
    if (c->fd < 0)
        return;
    if (c->state == C_CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_writable(c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(c);
    if (c->fd >= 0 && (ev & EPOLLOUT))
        conn_flush(c);
}

/* After the window: a close frame to everyone, then wait (bounded) for the
 * servers to close TCP, so no server logs a vanished peer. */
static void close_all(uint64_t deadline)
{
    static const uint8_t code1000[2] = { 0x03, 0xE8 };
    for (long i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        if (c->state == C_OPEN || c->state == C_JOINING) {
            if (c->state == C_JOINING) {
                n_pending--;
                n_open++;
            }
            queue_frame(c, 8, code1000, 2);
            c->state = C_CLOSING;
            conn_flush(c);
        } else if (c->fd >= 0 && c->state != C_CLOSING) {
            conn_reset(c);
            c->state = C_FREE;
        }
    }
    struct epoll_event evs[FO_MAX_EVENTS];
    while (n_open > 0 && (g_now = now_ns()) < deadline) {
        int n = epoll_wait(epfd, evs, FO_MAX_EVENTS, 50);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
}

/* ------------------------------------------------------------------------ */
/* /proc sampling                                                           */

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double proc_cpu(long pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kb(long pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(buf, sizeof buf, f))
        if (strncmp(buf, "VmRSS:", 6) == 0) {
            kb = strtol(buf + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static void sample_all(double *srv, double *aux)
{
    for (int i = 0; i < opt.npid; i++)
        srv[i] = proc_cpu(opt.pid[i]);
    for (int i = 0; i < opt.naux; i++)
        aux[i] = proc_cpu(opt.aux[i]);
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */

static void usage(FILE *f)
{
    fputs("usage: fanout --url ws://127.0.0.1:PORT/PATH [--url ...] [options]\n"
          "  --proto ws|sio   plain WebSocket messages, or socket.io v4 (engine.io v4)  (ws)\n"
          "  --subs N         subscriber connections, spread over the --urls  (100)\n"
          "  --size S         payload bytes per message  (16)\n"
          "  --window W       messages out at once (closed loop)  (8)\n"
          "  --messages M     end the window after M completed messages (0: by time)  (0)\n"
          "  --duration D     measuring window, seconds  (5)\n"
          "  --warmup W       seconds of publishing before the window  (1)\n"
          "  --settle T       seconds between the last open and the first publish  (0.5)\n"
          "  --stall-timeout T  give up on a message after T s  (2)\n"
          "  --parallel P     handshakes in progress at once  (500)\n"
          "  --connect-timeout T  (30)\n"
          "  --binary         binary frames (ws mode; default text)\n"
          "  --json           a JSON-like payload (the sequence letters at offset 8)\n"
          "  --deflate        offer permessage-deflate without context takeover (both ways), require it\n"
          "  --pid A,B        server PIDs: CPU per delivery is their sum\n"
          "  --aux-pid A,B    other PIDs to report (e.g. redis-server)\n"
          "  --src A,B / --src-count K   source addresses in 127.0.0.0/8\n"
          "  --quiet\n",
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

static void add_url(const char *url)
{
    if (opt.nurl >= FO_MAX_URLS)
        die("at most %d --url", FO_MAX_URLS);
    struct target *t = &opt.url[opt.nurl++];
    if (strncmp(url, "ws://", 5) != 0)
        die("only ws:// URLs are supported: %s", url);
    const char *h = url + 5;
    const char *colon = strchr(h, ':');
    const char *slash = strchr(h, '/');
    if (!colon || (slash && slash < colon))
        die("the URL needs an explicit port: %s", url);
    size_t hl = (size_t)(colon - h);
    if (hl == 0 || hl >= sizeof t->host)
        die("bad host in %s", url);
    memcpy(t->host, h, hl);
    t->host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (port <= 0 || port > 65535 || (*end && *end != '/'))
        die("bad port in %s", url);
    if (strlen(*end ? end : "/") >= sizeof t->path)
        die("path too long in %s", url);
    snprintf(t->path, sizeof t->path, "%s", *end ? end : "/");
    t->dst.sin_family = AF_INET;
    t->dst.sin_port = htons((uint16_t)port);
    const char *ip = strcmp(t->host, "localhost") == 0 ? "127.0.0.1" : t->host;
    if (inet_pton(AF_INET, ip, &t->dst.sin_addr) != 1)
        die("host must be a dotted IPv4 address or localhost: %s", t->host);
    if (!is_loopback(t->dst.sin_addr))
        die("refusing %s: this tool only talks to 127.0.0.0/8", t->host);
}

static void add_src(const char *s)
{
    if (opt.nsrc >= FO_MAX_SRC)
        die("at most %d source addresses", FO_MAX_SRC);
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1 || !is_loopback(a))
        die("source address must be in 127.0.0.0/8: %s", s);
    opt.src[opt.nsrc++] = a;
}

static void add_pids(long *arr, int *n, const char *s)
{
    char *dup = strdup(s), *save = NULL;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n >= FO_MAX_PIDS)
            die("at most %d PIDs", FO_MAX_PIDS);
        arr[(*n)++] = (long)parse_num("pid", t, 1, 1 << 30);
    }
    free(dup);
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        { "url", required_argument, 0, 'u' },
        { "proto", required_argument, 0, 'X' },
        { "subs", required_argument, 0, 'n' },
        { "size", required_argument, 0, 's' },
        { "window", required_argument, 0, 'W' },
        { "messages", required_argument, 0, 'M' },
        { "duration", required_argument, 0, 'd' },
        { "warmup", required_argument, 0, 'w' },
        { "settle", required_argument, 0, 'e' },
        { "stall-timeout", required_argument, 0, 'L' },
        { "parallel", required_argument, 0, 'P' },
        { "connect-timeout", required_argument, 0, 'T' },
        { "binary", no_argument, 0, 'b' },
        { "json", no_argument, 0, 'j' },
        { "deflate", no_argument, 0, 'z' },
        { "pid", required_argument, 0, 'p' },
        { "aux-pid", required_argument, 0, 'a' },
        { "src", required_argument, 0, 'S' },
        { "src-count", required_argument, 0, 'C' },
        { "quiet", no_argument, 0, 'q' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'u': add_url(optarg); break;
        case 'X':
            if (strcmp(optarg, "ws") == 0) opt.proto = P_WS;
            else if (strcmp(optarg, "sio") == 0) opt.proto = P_SIO;
            else die("--proto must be ws or sio");
            break;
        case 'n': opt.subs = (long)parse_num("subs", optarg, 1, 1000000); break;
        case 's': opt.size = (size_t)parse_num("size", optarg, 1, 1 << 24); break;
        case 'W': opt.window = (long)parse_num("window", optarg, 1, 1 << 16); break;
        case 'M': opt.messages = (long)parse_num("messages", optarg, 0, 1e12); break;
        case 'd': opt.duration = parse_num("duration", optarg, 0.01, 3600); break;
        case 'w': opt.warmup = parse_num("warmup", optarg, 0, 3600); break;
        case 'e': opt.settle = parse_num("settle", optarg, 0, 3600); break;
        case 'L': opt.stall_timeout = parse_num("stall-timeout", optarg, 0.01, 3600); break;
        case 'P': opt.parallel = (long)parse_num("parallel", optarg, 1, 1000000); break;
        case 'T': opt.connect_timeout = parse_num("connect-timeout", optarg, 0.01, 3600); break;
        case 'b': opt.binary = 1; break;
        case 'j': opt.json = 1; break;
        case 'z': opt.deflate = 1; break;
        case 'p': add_pids(opt.pid, &opt.npid, optarg); break;
        case 'a': add_pids(opt.aux, &opt.naux, optarg); break;
        case 'S': {
            char *dup = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save))
                add_src(t);
            free(dup);
            break;
        }
        case 'C': {
            int k = (int)parse_num("src-count", optarg, 1, FO_MAX_SRC);
            for (int i = 1; i <= k; i++) {
                char a[32];
                snprintf(a, sizeof a, "127.0.0.%d", i);
                add_src(a);
            }
            break;
        }
        case 'q': opt.quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s'", argv[optind]);
    if (opt.nurl == 0)
        die("--url is required (try --help)");
    if (opt.proto == P_SIO && opt.binary)
        die("--binary is for --proto ws");
    if (opt.proto == P_SIO && (opt.json || opt.deflate))
        die("--json and --deflate are for --proto ws");
    if (opt.json && opt.size < 64)
        die("--json needs --size 64 or more");
}

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
        fprintf(stderr, "fanout: warning: RLIMIT_NOFILE is %llu, wanted %llu\n",
                (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

/* Subscribers first, at most --parallel mid-handshake; the publisher once
 * every subscriber is open (or dead). */
static void start_more(void)
{
    while (n_started < opt.subs && n_pending < opt.parallel) {
        struct conn *c = &conns[n_started++];
        n_pending++;
        start_conn(c);
    }
    if (n_started == opt.subs && n_pending == 0) {
        n_started++;
        n_pending++;
        start_conn(pubc);
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

    nconns = opt.subs + 1;
    raise_nofile((rlim_t)nconns + 64);
    conns = calloc((size_t)nconns, sizeof *conns);
    rbuf = malloc(FO_RBUF_SIZE);
    tmpl = malloc(opt.size + 1);
    cnt = calloc((size_t)opt.window, sizeof *cnt);
    sent_at = calloc((size_t)opt.window, sizeof *sent_at);
    if (!conns || !rbuf || !tmpl || !cnt || !sent_at)
        die("out of memory");
    for (size_t i = 0; i < opt.size; i++)
        tmpl[i] = (uint8_t)('A' + i % 26); /* capitals: never taken for sequence letters */
    if (opt.json) {
        json_fill(tmpl, opt.size, 1, "{\"seq\":\"aaaaaaaa\",");
        seq_off = 8;
    }
    pbuf = malloc(opt.size + 1);
    zout = malloc(pmd_bound(opt.size));
    ibuf = malloc(opt.size + 1);
    if (!pbuf || !zout || !ibuf)
        die("out of memory");
    for (long i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conns[i].id = (uint32_t)i;
        conns[i].url = (uint8_t)(i < opt.subs ? i % opt.nurl : 0);
    }
    pubc = &conns[opt.subs];
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));

    double srv0[FO_MAX_PIDS], srv1[FO_MAX_PIDS], aux0[FO_MAX_PIDS], aux1[FO_MAX_PIDS];
    for (int i = 0; i < FO_MAX_PIDS; i++)
        srv0[i] = srv1[i] = aux0[i] = aux1[i] = -1;
    double gen0 = 0, gen1 = 0;
    uint64_t t0 = now_ns();
    g_now = t0;
    uint64_t t_open = 0, t_next = 0, t_win = 0, t_end = 0;
    uint64_t conn_deadline = t0 + (uint64_t)(opt.connect_timeout * 1e9);
    uint64_t hard_deadline =
        conn_deadline + (uint64_t)((opt.settle + opt.warmup + opt.duration + 5.0) * 1e9);
    uint64_t last_tend = t0;
    struct epoll_event evs[FO_MAX_EVENTS];
    long open_at_start = 0;
    bool hard = false;

    start_more();
    while (phase != PH_DONE) {
        g_now = now_ns();
        if (g_now > hard_deadline) {
            fprintf(stderr, "fanout: hard deadline reached\n");
            hard = true;
            break;
        }
        if (phase == PH_CONNECT) {
            start_more();
            bool all = n_started == nconns && n_pending == 0;
            if (all || g_now >= conn_deadline) {
                if (!all) {
                    for (long i = 0; i < nconns; i++) {
                        struct conn *c = &conns[i];
                        if (c->state == C_CONNECTING || c->state == C_UPGRADING ||
                            c->state == C_JOINING) {
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
                t_open = g_now;
                open_at_start = n_open;
                if (!opt.quiet)
                    fprintf(stderr, "fanout: %ld of %ld connections open after %.3f s\n", n_open,
                            nconns, (double)(g_now - t0) / 1e9);
                if (pubc->state != C_OPEN) {
                    fprintf(stderr, "fanout: the publisher did not connect\n");
                    t_win = t_end = g_now;
                    break;
                }
                phase = PH_SETTLE;
                t_next = g_now + (uint64_t)(opt.settle * 1e9);
            }
        }
        if (phase == PH_SETTLE && g_now >= t_next) {
            phase = PH_WARMUP;
            t_next = g_now + (uint64_t)(opt.warmup * 1e9);
            last_done = g_now;
            publish_more();
            conn_flush(pubc);
        }
        if (phase == PH_WARMUP && g_now >= t_next) {
            sample_all(srv0, aux0);
            gen0 = self_cpu();
            phase = PH_MEASURE;
            t_win = g_now;
            t_next = g_now + (uint64_t)(opt.duration * 1e9);
        }
        if (phase == PH_MEASURE &&
            (g_now >= t_next || (opt.messages > 0 && completed >= (uint64_t)opt.messages) ||
             pubc->state != C_OPEN)) {
            sample_all(srv1, aux1);
            gen1 = self_cpu();
            t_end = g_now;
            phase = PH_DONE;
            break;
        }
        if (g_now - last_tend >= 10000000u) {
            last_tend = g_now;
            if (publishing()) {
                check_stall();
                check_done(); /* a subscriber that died may have been the one we waited for */
            }
        }
        int wait_ms = 10;
        int n = epoll_wait(epfd, evs, FO_MAX_EVENTS, wait_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        g_now = now_ns();
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
    phase = PH_DONE;
    struct errors final = err;
    long open_final = n_open;
    close_all(now_ns() + 2000000000u);
    err = final;

    double win = t_end > t_win ? (double)(t_end - t_win) / 1e9 : 0.0;
    double srv_cpu = 0, aux_cpu = 0;
    bool srv_ok = opt.npid > 0, aux_ok = opt.naux > 0;
    for (int i = 0; i < opt.npid; i++) {
        if (srv0[i] < 0 || srv1[i] < 0)
            srv_ok = false;
        else
            srv_cpu += srv1[i] - srv0[i];
    }
    for (int i = 0; i < opt.naux; i++) {
        if (aux0[i] < 0 || aux1[i] < 0)
            aux_ok = false;
        else
            aux_cpu += aux1[i] - aux0[i];
    }
    if (!srv_ok)
        srv_cpu = -1;
    if (!aux_ok)
        aux_cpu = -1;
    double rate = win > 0 ? (double)deliveries / win : 0;
    double msg_rate = win > 0 ? (double)completed / win : 0;
    double us_per = srv_cpu > 0 && deliveries ? srv_cpu * 1e6 / (double)deliveries : -1;
    double aux_us_per = aux_cpu >= 0 && deliveries ? aux_cpu * 1e6 / (double)deliveries : -1;
    double open_s = t_open ? (double)(t_open - t0) / 1e9 : -1;
    double wire_per = deliveries ? (double)wire_rx / (double)deliveries : -1;
    char pmd_desc[200];
    pmd_describe(&first_pmd, pmd_desc, sizeof pmd_desc);

    fprintf(stderr,
            "fanout %s: %ld subs + 1 publisher over %d server(s), %zu B, window %ld: %.0f "
            "deliveries/s (%.1f msg/s to all), delivery p50 %.1f us p99 %.1f us, last p50 %.1f us; "
            "server cpu %.2f s = %.2f us/delivery; wire %.0f B/delivery%s%s; %" PRIu64 " errors\n",
            opt.proto == P_SIO ? "socket.io" : "ws", opt.subs, opt.nurl, opt.size, opt.window, rate,
            msg_rate, us(hist_quantile(&dlat, 0.5)), us(hist_quantile(&dlat, 0.99)),
            us(hist_quantile(&flat, 0.5)), srv_cpu, us_per, wire_per,
            opt.deflate ? "; " : "", opt.deflate ? pmd_desc : "", errors_total());

    printf("{\"proto\":\"%s\",\"subs\":%ld,\"servers\":%d,\"size\":%zu,\"window\":%ld,"
           "\"window_s\":%.3f,\"open\":%ld,\"open_s\":%.3f,\"open_end\":%ld,"
           "\"published\":%" PRIu64 ",\"completed\":%" PRIu64 ",\"deliveries\":%" PRIu64 ","
           "\"rate\":%.1f,\"msg_rate\":%.2f,"
           "\"dlat_p50_us\":%.2f,\"dlat_p99_us\":%.2f,\"flat_p50_us\":%.2f,\"flat_p99_us\":%.2f,"
           "\"server_cpu_s\":%.3f,\"us_per_delivery\":%.4f,\"aux_cpu_s\":%.3f,"
           "\"aux_us_per_delivery\":%.4f,\"gen_cpu_s\":%.3f,"
           "\"json\":%d,\"deflate\":\"%s\",\"deflate_conns\":%ld,\"wire_rx_b\":%" PRIu64 ","
           "\"wire_per_delivery\":%.1f,\"inflates\":%" PRIu64 ",\"memo_hits\":%" PRIu64 ","
           "\"server_cpu\":[",
           opt.proto == P_SIO ? "sio" : "ws", opt.subs, opt.nurl, opt.size, opt.window, win,
           open_at_start, open_s, open_final, published, completed, deliveries, rate, msg_rate,
           us(hist_quantile(&dlat, 0.5)), us(hist_quantile(&dlat, 0.99)),
           us(hist_quantile(&flat, 0.5)), us(hist_quantile(&flat, 0.99)), srv_cpu, us_per, aux_cpu,
           aux_us_per, gen1 - gen0, opt.json, opt.deflate ? pmd_desc : "", n_pmd, wire_rx, wire_per,
           inflates, memo_hits);
    for (int i = 0; i < opt.npid; i++)
        printf("%s{\"pid\":%ld,\"cpu_s\":%.3f,\"rss_kb\":%ld}", i ? "," : "", opt.pid[i],
               srv0[i] >= 0 && srv1[i] >= 0 ? srv1[i] - srv0[i] : -1.0, proc_rss_kb(opt.pid[i]));
    printf("],\"hard_deadline\":%s,\"errors\":%" PRIu64 ",\"err\":{\"connect\":%" PRIu64
           ",\"handshake\":%" PRIu64 ",\"reset\":%" PRIu64 ",\"eof\":%" PRIu64 ",\"close\":%" PRIu64
           ",\"length\":%" PRIu64 ",\"payload\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"dup\":%" PRIu64
           ",\"stall\":%" PRIu64 ",\"protocol\":%" PRIu64 ",\"unexpected\":%" PRIu64
           ",\"timeout\":%" PRIu64 ",\"inflate\":%" PRIu64 "}}\n",
           hard ? "true" : "false", errors_total(), err.connect, err.handshake, err.reset, err.eof,
           err.close, err.length, err.payload, err.lost, err.dup, err.stall, err.protocol,
           err.unexpected, err.timeout, err.inflate);
    fflush(stdout);

    for (long i = 0; i < nconns; i++) {
        conn_reset(&conns[i]);
        free(conns[i].out);
        free(conns[i].mb);
    }
    free(conns);
    free(rbuf);
    free(tmpl);
    free(cnt);
    free(sent_at);
    free(pbuf);
    free(zout);
    free(ibuf);
    for (unsigned i = 0; i < FO_MEMO; i++) {
        free(memo[i].z);
        free(memo[i].plain);
    }
    if (pub_def_ok)
        deflateEnd(&pub_def);
    if (sub_inf_ok)
        inflateEnd(&sub_inf);
    close(epfd);
    return 0;
}
