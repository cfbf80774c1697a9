/* SPDX-License-Identifier: MIT */
/*
** c_echo.c -- the simplest WebSocket echo server we could write in C, as the
** floor of what a server can cost in the luaws benchmarks.
**
** Usage: c_echo PORT [--fanout | --fanout-corked | --tls CERT KEY]
**        (listens on 127.0.0.1:PORT; any path is accepted)
**
** --fanout makes it the floor of bench/fanout.sh instead: every data frame
** from any connection goes to every open connection (the sender too), with
** one writev of header and payload straight to each socket when nothing
** waits there, else queued behind what does: one syscall per delivery, as
** luaws's pubsub_publish and node ws do.
** --fanout-corked queues every delivery instead and writes each connection
** once per loop turn (after the epoll batch), so the messages that arrived
** in one turn leave in one send per subscriber: what coalescing the writes
** of a burst of publishes buys.
**
** One thread, one level-triggered epoll loop. Accept; read the request head;
** answer 101 with Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) (OpenSSL);
** then for every complete client frame: unmask in place and queue the same
** frame back (same FIN and opcode, so fragmented messages echo fragment by
** fragment), answer ping with pong and close with close. Reads land in one
** loop-wide buffer; only an unfinished frame is copied into the connection.
** Writes are batched per read and finished on EPOLLOUT.
**
** --tls CERT KEY makes it the floor of the wss scenarios: the same echo over
** OpenSSL, with the least a TLS server can do per record: read ahead (one
** read(2) takes what the kernel has), SSL_read into the loop-wide buffer,
** SSL_write of the batch, whose records a buffer BIO gathers into one write(2)
** (what luaws's csrc/io/tls.c does with its own BIO). No session cache, no
** SNI, no ALPN: TLS 1.2 or 1.3 with OpenSSL's default suites.
**
** What it deliberately does not do, because a floor should not pay for it:
** validate the request beyond the key, check UTF-8 in text frames, check close
** codes, reassemble messages, enforce a message size limit beyond a 64 MiB
** frame cap, time out idle peers, or extensions. It is a benchmark baseline,
** not a server to expose to anyone.
**
** RFC 6455 sections: §4.2.2 (the accept key), §5.2 (framing), §5.3 (client
** masking; an unmasked client frame closes the connection), §5.5 (ping/pong,
** close echo).
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define RBUF_SIZE (256 * 1024)          /* the loop-wide receive buffer */
#define HEAD_MAX 8192                   /* longest request head */
#define FRAME_MAX (64ull * 1024 * 1024) /* longest frame payload */
#define OUT_HIGH (8u * 1024 * 1024)     /* stop reading while this much is unsent */
#define MAX_EVENTS 256

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

enum state { S_HEAD, S_OPEN, S_CLOSING };

struct conn {
    int fd;
    enum state state;
    bool pollout;    /* EPOLLOUT registered */
    bool paused;     /* EPOLLIN dropped for backpressure */
    uint8_t *in;     /* unfinished input (spill) */
    size_t in_len, in_cap;
    uint8_t *out;    /* unsent output */
    size_t out_off, out_len, out_cap;
    struct conn *prev, *next; /* --fanout: the open connections */
    bool listed, broken, dirty;
    struct conn *dnext;       /* --fanout-corked: connections with output to flush */
    SSL *ssl;                 /* --tls */
    bool unflushed;           /* --tls: records gathered that the socket refused */
};

static SSL_CTX *tls_ctx;      /* --tls */
#define TLS_WBUF (80 * 1024)  /* the buffer BIO gathering one batch's records */

static int epfd;
static int fanout;            /* 0, 1 (--fanout) or 2 (--fanout-corked) */
static struct conn *open_list, *dirty_list;
static uint8_t rbuf[RBUF_SIZE];

static void fatal(const char *what)
{
    perror(what);
    exit(1);
}

/* Grow *buf to hold need bytes; capacity doubles so appends stay amortized. */
static void reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    uint8_t *p = realloc(*buf, c);
    if (!p)
        fatal("realloc");
    *buf = p;
    *cap = c;
}

static void out_append(struct conn *c, const void *p, size_t n)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    reserve(&c->out, &c->out_cap, c->out_len + n);
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void update_events(struct conn *c)
{
    bool want_out = c->out_off < c->out_len || c->unflushed;
    bool pause = c->out_len - c->out_off > OUT_HIGH;
    if (want_out == c->pollout && pause == c->paused)
        return;
    c->pollout = want_out;
    c->paused = pause;
    struct epoll_event ev = { .events = (pause ? 0 : EPOLLIN) | (want_out ? EPOLLOUT : 0),
                              .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fatal("epoll_ctl");
}

static void conn_free(struct conn *c)
{
    if (c->listed) {
        if (c->prev)
            c->prev->next = c->next;
        else
            open_list = c->next;
        if (c->next)
            c->next->prev = c->prev;
    }
    if (c->dirty) /* rare (a connection dies with output queued): a walk is fine */
        for (struct conn **pp = &dirty_list; *pp; pp = &(*pp)->dnext)
            if (*pp == c) {
                *pp = c->dnext;
                break;
            }
    SSL_free(c->ssl);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* --tls: SSL_write what is queued, then give the gathered records to the
 * socket. Returns false if the connection is gone. */
static bool conn_flush_tls(struct conn *c)
{
    while (c->out_off < c->out_len) {
        size_t left = c->out_len - c->out_off;
        int n = SSL_write(c->ssl, c->out + c->out_off, left > 0x40000000 ? 0x40000000 : (int)left);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
            break;
        conn_free(c);
        return false;
    }
    BIO *wb = SSL_get_wbio(c->ssl);
    c->unflushed = false;
    if (BIO_wpending(wb) > 0 && BIO_flush(wb) <= 0) {
        if (!BIO_should_retry(wb)) {
            conn_free(c);
            return false;
        }
        c->unflushed = true;
    }
    return true;
}

/* Write what the kernel takes. Returns false if the connection is gone. */
static bool conn_flush(struct conn *c)
{
    if (c->ssl && !conn_flush_tls(c))
        return false;
    while (!c->ssl && c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            conn_free(c);
            return false;
        }
    }
    if (c->out_off == c->out_len && !c->unflushed) {
        c->out_off = c->out_len = 0;
        if (c->out_cap > 16384) { /* give back a big buffer: idle peers cost little */
            free(c->out);
            c->out = NULL;
            c->out_cap = 0;
        }
        if (c->state == S_CLOSING) { /* close frame sent: we close TCP first (§7.1.1) */
            conn_free(c);
            return false;
        }
    }
    update_events(c);
    return true;
}

/* Case-insensitive "Sec-WebSocket-Key" lookup in a complete request head. */
static bool find_key(const char *h, size_t n, const char **v, size_t *vl)
{
    static const char name[] = "sec-websocket-key:";
    const char *end = h + n;
    for (const char *p = h; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
            const char *s = p + sizeof name - 1, *e = eol;
            while (s < e && (*s == ' ' || *s == '\t'))
                s++;
            while (e > s && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *v = s;
            *vl = (size_t)(e - s);
            return true;
        }
        p = eol + 1;
    }
    return false;
}

/*
** Answer a complete request head. Returns false if the connection should
** end once the (error) response is written.
*/
static bool handshake(struct conn *c, const char *h, size_t n)
{
    const char *key;
    size_t kl;
    if (n < 4 || memcmp(h, "GET ", 4) != 0 || !find_key(h, n, &key, &kl) || kl == 0 || kl > 64) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        out_append(c, bad, sizeof bad - 1);
        return false;
    }
    char cat[64 + sizeof WS_GUID];
    memcpy(cat, key, kl);
    memcpy(cat + kl, WS_GUID, sizeof WS_GUID - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdl = 0;
    if (!EVP_Digest(cat, kl + sizeof WS_GUID - 1, md, &mdl, EVP_sha1(), NULL))
        fatal("EVP_Digest");
    char acc[64];
    EVP_EncodeBlock((unsigned char *)acc, md, (int)mdl);
    char resp[256];
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n",
                      acc);
    out_append(c, resp, (size_t)rl);
    return true;
}

/* XOR n bytes in place with the key, eight at a time (§5.3). */
static void unmask(uint8_t *p, size_t n, const uint8_t k[4])
{
    uint8_t k8[8] = { k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3] };
    uint64_t m, w;
    memcpy(&m, k8, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        w ^= m;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= k[i & 3];
}

/* Queue an unmasked server frame. */
static void send_frame(struct conn *c, uint8_t b0, const uint8_t *p, uint64_t n)
{
    uint8_t h[10];
    size_t hl = 0;
    h[hl++] = b0;
    if (n < 126) {
        h[hl++] = (uint8_t)n;
    } else if (n <= 0xFFFF) {
        h[hl++] = 126;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = 127;
        for (int s = 56; s >= 0; s -= 8)
            h[hl++] = (uint8_t)(n >> s);
    }
    out_append(c, h, hl);
    out_append(c, p, (size_t)n);
}

/*
** --fanout: one frame to every open connection. The sender's copy is queued
** (its own read flushes it); the others get one writev when nothing waits
** on them, and what the kernel does not take is queued. A connection whose
** send fails is only marked: its own EPOLLERR/EPOLLHUP frees it, so nothing
** is freed under the epoll batch that may still name it.
*/
static void broadcast(struct conn *from, uint8_t b0, const uint8_t *p, uint64_t n)
{
    uint8_t h[10];
    size_t hl = 0;
    h[hl++] = b0;
    if (n < 126) {
        h[hl++] = (uint8_t)n;
    } else if (n <= 0xFFFF) {
        h[hl++] = 126;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = 127;
        for (int s = 56; s >= 0; s -= 8)
            h[hl++] = (uint8_t)(n >> s);
    }
    for (struct conn *c = open_list; c; c = c->next) {
        if (c->broken || c->state != S_OPEN)
            continue;
        if (fanout == 2) {
            out_append(c, h, hl);
            out_append(c, p, (size_t)n);
            if (!c->dirty) {
                c->dirty = true;
                c->dnext = dirty_list;
                dirty_list = c;
            }
            continue;
        }
        size_t done = 0, total = hl + (size_t)n;
        if (c != from && c->out_off == c->out_len) {
            struct iovec iov[2] = { { h, hl }, { (void *)p, (size_t)n } };
            ssize_t w;
            do
                w = writev(c->fd, iov, 2);
            while (w < 0 && errno == EINTR);
            if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                c->broken = true;
                continue;
            }
            done = w > 0 ? (size_t)w : 0;
            if (done == total)
                continue;
        }
        if (done < hl) {
            out_append(c, h + done, hl - done);
            out_append(c, p, (size_t)n);
        } else {
            out_append(c, p + (done - hl), total - done);
        }
        if (c != from)
            update_events(c);
    }
}

/* --fanout-corked: write what each connection got during this loop turn. */
static void flush_dirty(void)
{
    while (dirty_list) {
        struct conn *c = dirty_list;
        dirty_list = c->dnext;
        c->dirty = false;
        if (!c->broken)
            conn_flush(c); /* may free c: it is off the list already */
    }
}

/*
** Consume complete units (the request head, then whole frames) from p[0..n).
** Returns the bytes consumed, or -1 to drop the connection now.
*/
static long process(struct conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;
    if (c->state == S_CLOSING)
        return (long)n; /* after our close frame, input is dropped */
    if (c->state == S_HEAD) {
        uint8_t *e = memmem(p, n, "\r\n\r\n", 4);
        if (!e)
            return n > HEAD_MAX ? -1 : 0;
        off = (size_t)(e + 4 - p);
        if (!handshake(c, (const char *)p, off)) {
            c->state = S_CLOSING;
            return (long)n;
        }
        c->state = S_OPEN;
        if (fanout) {
            c->next = open_list;
            if (open_list)
                open_list->prev = c;
            open_list = c;
            c->listed = true;
        }
    }
    while (c->state == S_OPEN && n - off >= 2) {
        uint8_t *f = p + off;
        size_t avail = n - off;
        unsigned l7 = f[1] & 0x7F;
        size_t hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
        if (!(f[1] & 0x80))
            return -1; /* §5.1: client frames must be masked */
        if (avail < hl)
            break;
        uint64_t len = l7;
        if (l7 == 126)
            len = (uint64_t)f[2] << 8 | f[3];
        else if (l7 == 127) {
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
        }
        if (len > FRAME_MAX)
            return -1;
        if (avail - hl < len)
            break; /* partial frame: the caller keeps it */
        uint8_t *payload = f + hl;
        unmask(payload, (size_t)len, f + hl - 4);
        unsigned op = f[0] & 0x0F;
        switch (op) {
        case 0x0: case 0x1: case 0x2: /* continuation, text, binary: echo as is */
            if (fanout)
                broadcast(c, f[0], payload, len);
            else
                send_frame(c, f[0], payload, len);
            break;
        case 0x8: /* close: echo its payload (the code) and close after writing */
            send_frame(c, 0x88, payload, len > 125 ? 125 : len);
            c->state = S_CLOSING;
            break;
        case 0x9: /* ping -> pong */
            send_frame(c, 0x8A, payload, len);
            break;
        case 0xA: /* pong: nothing to do */
            break;
        default:
            return -1;
        }
        off += hl + (size_t)len;
    }
    return (long)off;
}

/* --tls: recv's returns from SSL_read: > 0 bytes, 0 at the end (or a
 * failure), -1 with errno EAGAIN when OpenSSL waits for the socket. */
static ssize_t tls_recv(struct conn *c, void *buf, size_t len)
{
    int n = SSL_read(c->ssl, buf, len > 0x40000000 ? 0x40000000 : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    return 0;
}

/* Readable: process spill + new bytes, keep the unfinished rest, flush. */
static void on_readable(struct conn *c)
{
    for (int r = 0; r < (c->ssl ? 64 : 4); r++) {
        ssize_t n = c->ssl ? tls_recv(c, rbuf, sizeof rbuf) : recv(c->fd, rbuf, sizeof rbuf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            conn_free(c);
            return;
        }
        if (n < 0)
            break;
        uint8_t *p = rbuf;
        size_t len = (size_t)n;
        if (c->in_len > 0) {
            reserve(&c->in, &c->in_cap, c->in_len + len);
            memcpy(c->in + c->in_len, rbuf, len);
            c->in_len += len;
            p = c->in;
            len = c->in_len;
        }
        long used = process(c, p, len);
        if (used < 0) {
            conn_free(c);
            return;
        }
        size_t rest = len - (size_t)used;
        if (p == c->in) {
            memmove(c->in, c->in + used, rest);
            c->in_len = rest;
        } else if (rest > 0) {
            reserve(&c->in, &c->in_cap, rest);
            memcpy(c->in, p + used, rest);
            c->in_len = rest;
        }
        if (c->state == S_CLOSING || (c->ssl ? !SSL_has_pending(c->ssl) : (size_t)n < sizeof rbuf))
            break;
    }
    if (c->in_len == 0 && c->in_cap > 65536) { /* give back a big spill once done */
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
    conn_flush(c);
}

static void on_accept(int lfd)
{
    for (int i = 0; i < 256; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR)
                return;
            perror("accept4"); /* EMFILE and friends: keep serving the others */
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            fatal("calloc");
        c->fd = fd;
        if (tls_ctx) { /* reads from the socket, writes through the gathering buffer */
            BIO *sock = NULL, *buf = NULL;
            if (!(c->ssl = SSL_new(tls_ctx)) || !(sock = BIO_new_socket(fd, BIO_NOCLOSE)) ||
                !(buf = BIO_new(BIO_f_buffer())) || BIO_set_write_buffer_size(buf, TLS_WBUF) != 1 ||
                !BIO_up_ref(sock))
                fatal("tls session");
            SSL_set_bio(c->ssl, sock, BIO_push(buf, sock));
            SSL_set_accept_state(c->ssl);
        }
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            fatal("epoll_ctl");
    }
}

int main(int argc, char **argv)
{
    long port = argc >= 2 ? strtol(argv[1], NULL, 10) : 0;
    bool tls = argc == 5 && strcmp(argv[2], "--tls") == 0;
    if (argc == 3)
        fanout = strcmp(argv[2], "--fanout") == 0 ? 1 : strcmp(argv[2], "--fanout-corked") == 0 ? 2 : -1;
    if (port <= 0 || port > 65535 || (argc > 3 && !tls) || argc == 4 || fanout < 0) {
        fprintf(stderr, "usage: c_echo PORT [--fanout | --fanout-corked | --tls CERT KEY]\n");
        return 2;
    }
    if (tls) {
        tls_ctx = SSL_CTX_new(TLS_server_method());
        if (!tls_ctx || SSL_CTX_use_certificate_chain_file(tls_ctx, argv[3]) != 1 ||
            SSL_CTX_use_PrivateKey_file(tls_ctx, argv[4], SSL_FILETYPE_PEM) != 1) {
            ERR_print_errors_fp(stderr);
            return 2;
        }
        SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_read_ahead(tls_ctx, 1);
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536) {
        rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        fatal("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0)
        fatal("bind");
    if (listen(lfd, 4096) < 0)
        fatal("listen");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        fatal("epoll_create1");
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL }; /* NULL marks the listener */
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0)
        fatal("epoll_ctl");
    printf("c_echo%s listening on %s://127.0.0.1:%ld/ws\n",
           fanout == 1 ? " --fanout" : fanout == 2 ? " --fanout-corked" : tls ? " --tls" : "",
           tls ? "wss" : "ws", port);
    fflush(stdout);

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fatal("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                on_accept(lfd);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                on_readable(c);
                continue; /* c may be gone; on_readable flushed already */
            }
            if (evs[i].events & EPOLLOUT)
                conn_flush(c);
        }
        flush_dirty();
    }
}
