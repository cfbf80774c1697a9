/* SPDX-License-Identifier: MIT
 *
 * conn_http.c -- a connection's HTTP stage: the server reads request heads
 * (RFC 9112), answers the errors the core owns (400, 405, 413, 426, 431,
 * 501), reads plain requests' bodies and hands requests to its owner, which
 * accepts an upgrade (101, RFC 6455 §4) or answers (any status, a whole body
 * or one in pieces); the client sends its request and checks the 101.
 *
 * Plain HTTP on the same port, server side (struct conn_http, made on first
 * need and freed at teardown; a WebSocket handshake that arrives in one read
 * never makes one):
 *   - a request's body is read whole before on_request (Content-Length, or
 *     chunked decoded in place by proto/http.c), bounded by max_body_size
 *     (413 past it, said by the head or the chunk size line, and the
 *     connection closes); the framing is checked first (RFC 9112 §6: both
 *     Content-Length and Transfer-Encoding, or a bad length, is 400);
 *   - keep-alive (§9.3): after an answer the connection reads the next head,
 *     with handshake_timeout again for it; it closes after Connection: close,
 *     HTTP/1.0 without keep-alive, an upgrade request's refusal, or any
 *     error of the core's own;
 *   - pipelining (§9.3.2): the requests one read holds are answered in turn,
 *     in order; while an answer streams, or more than HTTP_QUEUE_HIGH bytes
 *     of answers wait for the peer, reading stops and the rest waits in
 *     c->http->in (one read at most), and a before-block hook (http_hook)
 *     goes on once the queue is below HTTP_QUEUE_LOW;
 *   - what is kept between reads is bounded: a partial head (the head limit),
 *     the head + the body so far (max_body_size) + one read.
 *
 * What it does not do: parse HTTP itself (http.c does, pointers into the
 * buffer) or compute the accept key (handshake.c), choose routes, origins
 * or subprotocols (the owner's on_request), or touch frames beyond handing
 * the bytes after the head to conn.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/conn.h"
#include "io/conn_int.h"
#include "io/loop.h"
#include "proto/forwarded.h"
#include "proto/handshake.h"
#include "proto/proxy.h"

/* Answers queued for a peer past which its next requests wait (reading
 * stops), and the level below which they go on and a streamed body is
 * asked for more. */
#ifndef HTTP_QUEUE_HIGH
#define HTTP_QUEUE_HIGH (64 * 1024)
#endif
#ifndef HTTP_QUEUE_LOW
#define HTTP_QUEUE_LOW (16 * 1024)
#endif

/* Where a server connection's HTTP exchange stands. */
enum http_phase {
    H_HEAD = 0,     /* reading a request head */
    H_BODY,         /* reading its body */
    H_ANSWER,       /* on_request runs: the owner answers */
    H_STREAM,       /* answered with a body in pieces, not finished (reading waits) */
    H_DONE,         /* answered: the next request may follow */
    H_WAIT          /* answered, and the queue is over HTTP_QUEUE_HIGH (reading waits) */
};

struct conn_http {
    struct conn *c;
    struct ws_buf in;           /* kept input: a head, [head][body so far], or what waits */
    struct ws_chunked ck;       /* the decoder of a chunked body */
    uint64_t length;            /* WS_BODY_LENGTH: the body's size */
    size_t head_len;            /* H_BODY: the head's bytes at the front of in */
    size_t body_len;            /* H_BODY: the body's bytes after it (decoded) */
    const uint8_t *body;        /* H_ANSWER: the body, for conn_request_body */
    size_t body_size;
    size_t queued;              /* conn_buffered at the hook's last look */
    uint32_t served;            /* requests answered on this connection */
    uint8_t phase;              /* enum http_phase */
    uint8_t framing;            /* enum ws_http_body */
    uint8_t keep_alive;         /* this request allows another after it */
    uint8_t minor;              /* its HTTP/1.x minor version */
    uint8_t chunked_out;        /* H_STREAM: pieces go out chunked (else the close ends them) */
    uint8_t expect;             /* it asked for 100-continue (1), which went out (2) */
    uint8_t resume;             /* in holds requests that waited: run them when reading resumes */
    uint8_t listed;             /* on the hook's list */
    struct conn_http *prev, *next;
};

static void http_hook_fn(struct loop_hook *h);
static struct loop_hook http_hook = { http_hook_fn, NULL, 0 };
static struct conn_http *http_waiting;   /* connections the hook looks at */
static ev_idle http_idle;                /* the loop must not block: a body is pulled */
static int http_idle_ready;

/*
** Put the parts of an HTTP answer on the wire: straight to a plain socket
** with one writev when nothing waits before them (a handshake then costs no
** send-queue allocation), the rest queued. WS_OK, WS_ECLOSED (the socket
** failed) or WS_ENOMEM.
*/
static int conn_put(struct conn *c, struct iovec *iov, int cnt)
{
    size_t done = 0;
    int i;
    if (c->tp.ops->writev && c->out.len == 0 && !(c->flags & CF_CONNECTING)) {
        ssize_t n = conn_write_direct(c, iov, cnt);
        if (n < 0)
            return WS_ECLOSED;
        done = (size_t)n;
    }
    for (i = 0; i < cnt; i++) {
        if (done >= iov[i].iov_len) {
            done -= iov[i].iov_len;
            continue;
        }
        if (ws_buf_append(&c->out, (const char *)iov[i].iov_base + done,
                          iov[i].iov_len - done, 0) != WS_OK) {
            conn_abort(c, WS_ENOMEM, "out of memory");
            return WS_ENOMEM;
        }
        c->out_http += iov[i].iov_len - done;   /* an answer is the first thing queued */
        done = 0;
    }
    return WS_OK;
}

/* ------------------------------------------------------------ answers */

/*
** The answer is queued. keep: the connection reads the next request; else it
** closes once the answer is out (a lingering close: conn.c shuts the write
** side, then reads and drops until the peer's EOF or close_timeout).
*/
static void http_answered(struct conn *c, int keep)
{
    struct conn_http *hs = c->http;
    if (hs)
        hs->phase = H_DONE;
    if (!keep) {
        c->flags |= CF_HTTP_ONLY;
        conn_enter(c, CONN_CLOSING);
    }
    if (!(c->flags & CF_CORKED))
        conn_flush(c);
}

/* "Connection: ..." for an answer: nothing (HTTP/1.1 keeps by default),
 * keep-alive (HTTP/1.0 asked for it), or close. */
static const char *http_connection(const struct conn_http *hs, int keep)
{
    if (!keep)
        return "Connection: close\r\n";
    return hs && hs->minor == 0 ? "Connection: keep-alive\r\n" : "";
}

/*
** Queue a whole answer. RFC 9110 §8.6: no Content-Length (and no body) for
** 1xx, 204 and 304; for a HEAD the length a GET would have had, no body.
*/
static int http_answer(struct conn *c, int status, const char *extra, size_t extra_len,
                       const void *body, size_t body_len, int head_only, int keep)
{
    char head[256];
    int n, bodyless = status < 200 || status == 204 || status == 304;
    if (bodyless)
        n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%s", status, ws_http_reason(status),
                     http_connection(c->http, keep));
    else
        n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s", status,
                     ws_http_reason(status), body_len, http_connection(c->http, keep));
    if (c->group && status >= 400) {
        c->group->stats.rejected++;
        metrics_refused(&c->group->stats.m, status);
    }
    {
        struct iovec iov[4] = { { head, (size_t)n }, { (void *)extra, extra_len }, { "\r\n", 2 },
                                { (void *)body, head_only || bodyless ? 0 : body_len } };
        int rc = conn_put(c, iov, 4);
        if (rc != WS_OK)
            return rc;
    }
    http_answered(c, keep);
    return WS_OK;
}

/* Can the owner answer now? A request must await its answer. */
static int http_can_answer(const struct conn *c)
{
    if (c->state != CONN_HANDSHAKE || (c->flags & (CF_PENDING | CF_HTTP_ONLY | CF_CLIENT)))
        return 0;
    return !c->http || c->http->phase == H_ANSWER;
}

int conn_respond(struct conn *c, int status, const char *extra, size_t extra_len,
                 const void *body, size_t body_len, int head_only)
{
    if (!http_can_answer(c))
        return WS_ECLOSED;
    return http_answer(c, status, extra, extra_len, body, body_len, head_only,
                       c->http && c->http->keep_alive);
}

/*
** A plain-text error answer from the core itself (400, 405, 413, 426, 431,
** 500, 501), whatever the phase: the connection closes after it, since the
** framing of what follows cannot be trusted. The owner hears of it.
*/
static void http_refuse(struct conn *c, int status, const struct ws_http_head *req, const char *extra)
{
    char body[64], hdrs[160];
    int n = snprintf(body, sizeof body, "%d %s\n", status, ws_http_reason(status));
    int h = snprintf(hdrs, sizeof hdrs, "Content-Type: text/plain; charset=utf-8\r\n%s",
                     extra ? extra : "");
    if (c->state != CONN_HANDSHAKE || (c->flags & (CF_PENDING | CF_HTTP_ONLY)))
        return;
    if (http_answer(c, status, hdrs, (size_t)h, body, (size_t)n, 0, 0) == WS_OK &&
        c->hooks->on_refused && !(c->flags & CF_PENDING))
        c->hooks->on_refused(c, req, status);
}

int conn_respond_start(struct conn *c, int status, const char *extra, size_t extra_len,
                       int head_only)
{
    struct conn_http *hs = c->http;
    char head[256];
    int n, chunked, keep;
    if (!http_can_answer(c) || !hs)
        return WS_ECLOSED;
    chunked = hs->minor >= 1;
    /* HTTP/1.0 has no chunks: the close ends the body (RFC 9112 §6.3) */
    keep = hs->keep_alive && (chunked || head_only);
    n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%s%s", status, ws_http_reason(status),
                 chunked ? "Transfer-Encoding: chunked\r\n" : "", http_connection(hs, keep));
    if (c->group && status >= 400) {
        c->group->stats.rejected++;
        metrics_refused(&c->group->stats.m, status);
    }
    {
        struct iovec iov[3] = { { head, (size_t)n }, { (void *)extra, extra_len }, { "\r\n", 2 } };
        int rc = conn_put(c, iov, 3);
        if (rc != WS_OK)
            return rc;
    }
    if (head_only) {
        http_answered(c, keep);
        return WS_OK;
    }
    hs->phase = H_STREAM;
    hs->chunked_out = (uint8_t)chunked;
    hs->keep_alive = (uint8_t)keep;
    if (!(c->flags & CF_CORKED))
        conn_flush(c);
    return WS_OK;
}

/* Is a body in pieces being sent on c? */
static int http_streaming(const struct conn *c)
{
    return c->http && c->http->phase == H_STREAM && c->state == CONN_HANDSHAKE &&
           !(c->flags & (CF_PENDING | CF_HTTP_ONLY));
}

int conn_is_streaming(const struct conn *c)
{
    return http_streaming(c);
}

int conn_respond_chunk(struct conn *c, const void *data, size_t len)
{
    char size[24];
    int n = 0, rc;
    if (!http_streaming(c))
        return WS_ECLOSED;
    if (len == 0)
        return WS_OK;   /* an empty chunk would end the body */
    if (c->http->chunked_out)
        n = snprintf(size, sizeof size, "%zx\r\n", len);
    {
        struct iovec iov[3] = { { size, (size_t)n }, { (void *)data, len },
                                { "\r\n", c->http->chunked_out ? 2 : 0 } };
        rc = conn_put(c, iov, 3);
    }
    if (rc != WS_OK)
        return rc;
    conn_enter(c, CONN_HANDSHAKE);   /* the body goes on: its deadline starts again */
    if (!(c->flags & CF_CORKED))
        conn_flush(c);
    return WS_OK;
}

int conn_respond_end(struct conn *c)
{
    if (!http_streaming(c))
        return WS_ECLOSED;
    if (c->http->chunked_out) {
        /* last-chunk, an empty trailer section, CRLF (RFC 9112 §7.1) */
        struct iovec iov[1] = { { "0\r\n\r\n", 5 } };
        int rc = conn_put(c, iov, 1);
        if (rc != WS_OK)
            return rc;
    }
    http_answered(c, c->http->keep_alive);
    return WS_OK;
}

const uint8_t *conn_request_body(const struct conn *c, size_t *len)
{
    const struct conn_http *hs = c->http;
    if (!hs || hs->phase != H_ANSWER || !hs->body) {
        *len = 0;
        return NULL;
    }
    *len = hs->body_size;
    return hs->body;
}

/* Append the n bytes of s at p; the end. */
static char *http_put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/*
** The 101's lines before the extra headers into head (at least 512 +
** WS_PMD_ANSWER_MAX bytes: protocol is at most 200, ext at most
** WS_PMD_ANSWER_MAX): its length. Plain copies: snprintf cost about 1,850
** instructions per handshake.
*/
static int http_put_101(char *head, const char *accept, const char *protocol, const char *ext)
{
    static const char start[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Accept: ";
    static const char proto[] = "Sec-WebSocket-Protocol: ", exts[] = "Sec-WebSocket-Extensions: ";
    char *p = http_put(head, start, sizeof start - 1);
    p = http_put(p, accept, WS_ACCEPT_LEN);
    p = http_put(p, "\r\n", 2);
    if (protocol) {
        p = http_put(p, proto, sizeof proto - 1);
        p = http_put(p, protocol, strlen(protocol));
        p = http_put(p, "\r\n", 2);
    }
    if (ext) {
        p = http_put(p, exts, sizeof exts - 1);
        p = http_put(p, ext, strlen(ext));
        p = http_put(p, "\r\n", 2);
    }
    return (int)(p - head);
}

int conn_accept(struct conn *c, const struct ws_http_head *req, const char *protocol,
                const char *extra, size_t extra_len, const struct conn_compression *z)
{
    char accept[WS_ACCEPT_LEN + 1], head[512 + WS_PMD_ANSWER_MAX], ext[WS_PMD_ANSWER_MAX];
    struct ws_pmd_params agreed;
    const char *key;
    size_t key_len;
    int n, deflate = 0;
    if (!http_can_answer(c) || (c->flags & CF_CLIENT))
        return WS_ECLOSED;
    key = ws_http_known_value(req, WS_H_SEC_WEBSOCKET_KEY, &key_len);
    if (!key || ws_accept_key(key, key_len, accept) != WS_OK)
        return WS_EHANDSHAKE;
    if (protocol && strlen(protocol) > 200)
        return WS_EHANDSHAKE;
    if (!z)
        z = &c->opt->compression;
    /* RFC 7692 §5: take the first offer we can honour, or none (a
     * malformed one is declined, not refused); out of memory for its
     * state, decline too */
    if (z->enabled && ws_pmd_negotiate(req, &z->cfg, &agreed, ext))
        deflate = conn_pmd_start(c, &agreed, z) == WS_OK;
    n = http_put_101(head, accept, protocol, deflate ? ext : NULL);
    {
        struct iovec iov[3] = { { head, (size_t)n }, { (void *)extra, extra_len }, { "\r\n", 2 } };
        int rc = conn_put(c, iov, 3);
        if (rc != WS_OK)
            return rc;
    }
    if (c->group) {
        c->group->stats.upgraded++;
        c->group->nopen++;
        c->opened_at = ev_now(loop_get());
        if (c->born > 0)
            metrics_observe(&c->group->stats.m.handshake, metrics_handshake_le, c->opened_at - c->born);
    }
    c->ping_at = ev_now(loop_get());
    conn_enter(c, CONN_OPEN);
    if (!(c->flags & CF_CORKED))
        conn_flush(c);
    return WS_OK;
}

static int conn_client_head(struct conn *c, uint8_t *data, size_t len);

int conn_client_start(struct conn *c, const char *host, const char *path,
                      const char *extra, size_t extra_len)
{
    char head[1024];
    int n;
    if (!(c->flags & CF_CLIENT) || c->state != CONN_HANDSHAKE || (c->flags & CF_HTTP_SENT))
        return WS_ECLOSED;
    if (!c->key && !(c->key = malloc(WS_KEY_LEN + 1)))
        return WS_ENOMEM;
    if (ws_client_key(c->key) != WS_OK)
        return WS_ETLS;
    n = snprintf(head, sizeof head,
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                 path, host, c->key);
    if (n < 0 || (size_t)n >= sizeof head)
        return WS_ETOOBIG;
    if (c->opt->compression.enabled) {   /* RFC 7692 §5.1: our one offer */
        char offer[WS_PMD_ANSWER_MAX];
        size_t olen = ws_pmd_offer(&c->opt->compression.cfg, offer);
        int m = snprintf(head + n, sizeof head - (size_t)n, "Sec-WebSocket-Extensions: %.*s\r\n",
                         (int)olen, offer);
        if (m < 0 || (size_t)m >= sizeof head - (size_t)n)
            return WS_ETOOBIG;
        n += m;
    }
    if (ws_buf_append(&c->out, head, (size_t)n, 0) != WS_OK ||
        (extra_len && ws_buf_append(&c->out, extra, extra_len, 0) != WS_OK) ||
        ws_buf_append(&c->out, "\r\n", 2, 0) != WS_OK)
        return WS_ENOMEM;
    c->out_http = c->out.len;
    c->flags |= CF_HTTP_SENT;
    c->head = conn_client_head;
    conn_flush(c);
    return WS_OK;
}

/* ------------------------------------------------------------ requests */

/* The connection's HTTP state, made on first need. NULL if out of memory. */
static struct conn_http *http_state(struct conn *c)
{
    if (!c->http) {
        c->http = calloc(1, sizeof *c->http);
        if (c->http)
            c->http->c = c;
    }
    return c->http;
}

/* Put the connection on the hook's list (idempotent). */
static void http_list(struct conn_http *hs)
{
    if (hs->listed)
        return;
    hs->prev = NULL;
    hs->next = http_waiting;
    if (http_waiting)
        http_waiting->prev = hs;
    http_waiting = hs;
    hs->listed = 1;
    hs->queued = conn_buffered(hs->c);
    loop_hook_add(&http_hook);
}

static void http_unlist(struct conn_http *hs)
{
    if (!hs->listed)
        return;
    if (hs->prev)
        hs->prev->next = hs->next;
    else
        http_waiting = hs->next;
    if (hs->next)
        hs->next->prev = hs->prev;
    hs->prev = hs->next = NULL;
    hs->listed = 0;
}

void conn_http_release(struct conn *c)
{
    struct conn_http *hs = c->http;
    if (!hs)
        return;
    http_unlist(hs);
    ws_buf_free(&hs->in);
    free(hs);
    c->http = NULL;
    if (!http_waiting && http_idle_ready)
        ev_idle_stop(loop_get(), &http_idle);
}

/* Does any Connection header of h list token? (RFC 9110 §7.6.1) */
static int http_connection_has(const struct ws_http_head *h, const char *token)
{
    const struct ws_http_header *hd = NULL;
    while ((hd = ws_http_header_next(h, "connection", hd)) != NULL)
        if (ws_http_has_token(hd->value, hd->value_len, token))
            return 1;
    return 0;
}

/* RFC 9112 §9.3: HTTP/1.1 persists unless "close"; 1.0 only with "keep-alive". */
static int http_keep_alive(const struct ws_http_head *h)
{
    if (http_connection_has(h, "close"))
        return 0;
    return h->minor_version >= 1 || http_connection_has(h, "keep-alive");
}

/*
** Keep p[0..n) in hs->in for the next read. kept: p is hs->in's head already
** (then it is cut to n bytes); else it is copied. 0, or -1 after dropping the
** connection (out of memory).
*/
static int http_keep(struct conn *c, const uint8_t *p, size_t n, int kept)
{
    struct conn_http *hs = http_state(c);
    if (!hs) {
        conn_abort(c, WS_ENOMEM, "out of memory");
        return -1;
    }
    if (kept) {
        hs->in.len = n;
        if (n == 0)
            ws_buf_free(&hs->in);
        return 0;
    }
    if (n && ws_buf_append(&hs->in, p, n, 0) != WS_OK) {
        conn_abort(c, WS_ENOMEM, "out of memory");
        return -1;
    }
    return 0;
}

/* A request was answered and the connection stays: read the next one, with
 * a new handshake_timeout; wait first while too much is queued. */
static void http_next(struct conn *c)
{
    struct conn_http *hs = c->http;
    hs->phase = conn_buffered(c) > HTTP_QUEUE_HIGH ? H_WAIT : H_HEAD;
    hs->served++;
    conn_enter(c, CONN_HANDSHAKE);
    if (conn_buffered(c) > 0)
        http_list(hs);   /* the hook restarts the deadline while the peer reads */
}

/* The socket peer of c as an address (WS_AF_UNIX on a unix socket). */
static void conn_socket_addr(const struct conn *c, struct ws_addr *a)
{
    memset(a, 0, sizeof *a);
    if (c->peer.sa.sa_family == AF_INET) {
        a->family = WS_AF_INET;
        memcpy(a->bytes, &c->peer.v4.sin_addr, 4);
        a->port = ntohs(c->peer.v4.sin_port);
    } else if (c->peer.sa.sa_family == AF_INET6) {
        a->family = WS_AF_INET6;
        memcpy(a->bytes, &c->peer.v6.sin6_addr, 16);
        a->port = ntohs(c->peer.v6.sin6_port);
        ws_addr_unmap(a);   /* a dual-stack socket's IPv4 peer is IPv4 */
    } else if (c->peer.sa.sa_family == AF_UNIX) {
        a->family = WS_AF_UNIX;
    }
}

/* The peer as far as trust goes: the PROXY header's client, else the socket's. */
static void conn_hop_addr(const struct conn *c, struct ws_addr *a)
{
    if (c->proxied.family != WS_AF_NONE)
        *a = c->proxied;
    else
        conn_socket_addr(c, a);
}

void conn_client_addr(const struct conn *c, struct ws_addr *a)
{
    if (c->client.family != WS_AF_NONE)
        *a = c->client;
    else
        conn_hop_addr(c, a);
}

int conn_secure(const struct conn *c)
{
    return c->tp.ssl != NULL || c->secure >= 1;
}

/*
** Before a request goes to the owner: who its client is, when the peer is
** a trusted proxy (proto/forwarded.h: the rightmost untrusted hop of
** X-Forwarded-For or Forwarded, and their proto). Per request, since a
** proxy's keep-alive connection carries many clients' requests. The PROXY
** header's word on secure stands unless a header says otherwise.
*/
static void http_client(struct conn *c, const struct ws_http_head *h)
{
    struct ws_forwarded f;
    struct ws_addr hop;
    if (!c->opt->trust || !ws_trust_any(c->opt->trust))
        return;
    conn_hop_addr(c, &hop);
    ws_forwarded_resolve(h, c->opt->trust, &hop, &f);
    if (f.from == WS_FWD_NONE) {
        c->client.family = WS_AF_NONE;
        if (c->secure != 2)
            c->secure = -1;
        return;
    }
    c->client = f.client;
    if (f.secure >= 0)
        c->secure = (int8_t)f.secure;
}

/* An upgrade request: the owner accepts (101) or refuses; then the frames
 * that came behind the head. Returns -1: no more requests on c. */
static long http_upgrade(struct conn *c, const struct ws_http_head *head, uint8_t *p, size_t m,
                         size_t r)
{
    if (c->http) {
        c->http->phase = H_ANSWER;
        c->http->keep_alive = 0;
    }
    http_client(c, head);
    if (c->hooks->on_request)
        c->hooks->on_request(c, head, 1, (const char *)p, r);
    if (c->state == CONN_HANDSHAKE && !(c->flags & (CF_PENDING | CF_HTTP_ONLY)))
        http_refuse(c, 500, head, NULL);
    if (c->state == CONN_OPEN && !(c->flags & CF_PENDING)) {
        if (c->hooks->on_open)
            c->hooks->on_open(c);
        if (m > r && c->state == CONN_OPEN && !(c->flags & CF_PENDING))
            conn_frames(c, p + r, m - r);
    }
    return -1;
}

/*
** A new request head at p[0..m). Checks what the core owns, then hands an
** upgrade to the owner, or sets the connection up to read a plain
** request's body (H_BODY). Returns 0 to go on with the body, or as
** http_request.
*/
static long http_head(struct conn *c, uint8_t *p, size_t m, int kept)
{
    struct ws_http_head head;
    struct conn_http *hs = c->http;
    int r = ws_http_parse_request((const char *)p, m, &head);
    int upgrade, status, framing;
    uint64_t length;
    const char *why, *v;
    size_t vlen;

    if (r == WS_PARTIAL && m <= LUAWS_MAX_HEAD_BYTES)
        return http_keep(c, p, m, kept) == 0 ? 0 : -1;
    if (r == WS_EHEADERS || r == WS_PARTIAL) {   /* the parser says so too: belt and braces */
        http_refuse(c, 431, NULL, NULL);
        return -1;
    }
    if (r < 0) {
        http_refuse(c, 400, NULL, NULL);
        return -1;
    }
    /* RFC 9112 §6.1, §6.3: the framing first, for every request */
    if ((status = ws_http_body_framing(&head, &framing, &length, &why)) != 0) {
        http_refuse(c, status, &head, NULL);
        return -1;
    }
    upgrade = ws_handshake_is_upgrade(&head);
    if (upgrade) {
        if (framing != WS_BODY_NONE && !(framing == WS_BODY_LENGTH && length == 0)) {
            http_refuse(c, 400, &head, NULL);   /* frames follow the head, not a body */
            return -1;
        }
        if ((status = ws_handshake_check(&head, &why)) != 0) {
            http_refuse(c, status, &head,
                        status == 426 ? "Sec-WebSocket-Version: 13\r\n"
                        : status == 405 ? "Allow: GET\r\n" : NULL);
            return -1;
        }
        return http_upgrade(c, &head, p, m, (size_t)r);
    }
    if (!hs && !(hs = http_state(c))) {
        conn_abort(c, WS_ENOMEM, "out of memory");
        return -1;
    }
    if (framing == WS_BODY_LENGTH && length > c->opt->max_body_size) {
        http_refuse(c, 413, &head, NULL);   /* said by the head: nothing of it is read */
        return -1;
    }
    hs->minor = (uint8_t)head.minor_version;
    hs->keep_alive = (uint8_t)http_keep_alive(&head);
    hs->framing = (uint8_t)framing;
    hs->length = length;
    hs->head_len = (size_t)r;
    hs->body_len = 0;
    hs->expect = 0;
    if (framing == WS_BODY_CHUNKED)
        ws_chunked_init(&hs->ck, c->opt->max_body_size ? c->opt->max_body_size : 1);
    v = ws_http_known_value(&head, WS_H_EXPECT, &vlen);
    if (v && head.minor_version >= 1 && ws_http_has_token(v, vlen, "100-continue"))
        hs->expect = 1;
    hs->phase = H_BODY;
    return 0;
}

/*
** One request from p[0..m): p starts a head, or (H_BODY) is hs->in with the
** head, the body so far, then new bytes. Returns the bytes the request took
** once it was answered (the next may follow), 0 when it needs more bytes
** (they are kept in hs->in), -1 when no more requests are read on c
** (closing, upgraded, finished).
*/
static long http_request(struct conn *c, uint8_t *p, size_t m, int kept)
{
    struct conn_http *hs = c->http;
    struct ws_http_head head;
    size_t raw, end;

    if (!hs || hs->phase == H_HEAD) {
        long r;
        if (hs && hs->served > 0 && (p[0] == '\r' || p[0] == '\n')) {
            /* RFC 9112 §2.2: an empty line before a request line is ignored */
            if (p[0] == '\n')
                return 1;
            if (m < 2)
                return http_keep(c, p, m, kept) == 0 ? 0 : -1;
            if (p[1] == '\n')
                return 2;
        }
        r = http_head(c, p, m, kept);
        if (r != 0 || !c->http || c->http->phase != H_BODY)
            return r;
        hs = c->http;
    }
    /* H_BODY: p[0..head_len) the head, then body_len bytes of the body, then raw bytes */
    raw = hs->head_len + hs->body_len;
    if (hs->framing == WS_BODY_NONE) {
        end = raw;
    } else if (hs->framing == WS_BODY_LENGTH) {
        uint64_t need = hs->length - hs->body_len;
        if ((uint64_t)(m - raw) < need) {
            hs->body_len += m - raw;
            if (http_keep(c, p, m, kept) != 0)
                return -1;
            goto partial;
        }
        hs->body_len = (size_t)hs->length;
        end = raw + (size_t)need;
    } else {
        size_t out, used;
        int rc = ws_chunked_decode(&hs->ck, p + raw, m - raw, &out, &used);
        hs->body_len += out;
        if (rc == WS_OK || rc == WS_PARTIAL) {
            if (hs->body_len > c->opt->max_body_size)
                rc = WS_ETOOBIG;   /* max_body_size 0: the decoder's limit is 1 */
        }
        if (rc == WS_PARTIAL) {
            if (http_keep(c, p, hs->head_len + hs->body_len, kept) != 0)
                return -1;
            goto partial;
        }
        if (rc != WS_OK) {
            ws_http_parse_request((const char *)p, hs->head_len, &head);
            http_refuse(c, rc == WS_ETOOBIG ? 413 : 400, &head, NULL);
            return -1;
        }
        end = raw + used;
    }
    /* The whole request: the owner answers it. */
    ws_http_parse_request((const char *)p, hs->head_len, &head);
    hs->body = hs->body_len ? p + hs->head_len : NULL;
    hs->body_size = hs->body_len;
    hs->phase = H_ANSWER;
    http_client(c, &head);
    if (c->hooks->on_request)
        c->hooks->on_request(c, &head, 0, (const char *)p, hs->head_len);
    hs->body = NULL;
    hs->body_size = 0;
    if (conn_is_finishing(c) || c->state != CONN_HANDSHAKE || (c->flags & CF_HTTP_ONLY))
        return -1;
    if (hs->phase == H_ANSWER) {
        http_refuse(c, 500, &head, NULL);   /* the owner gave no answer */
        return -1;
    }
    if (hs->phase == H_DONE)
        http_next(c);
    else
        hs->served++;
    return (long)end;

partial:
    if (hs->expect == 1 && !conn_is_finishing(c)) {
        /* RFC 9110 §10.1.1: the client waits for this before the body */
        struct iovec iov[1] = { { "HTTP/1.1 100 Continue\r\n\r\n", 25 } };
        hs->expect = 2;
        if (conn_put(c, iov, 1) != WS_OK)
            return -1;
        if (!(c->flags & CF_CORKED))
            conn_flush(c);
    }
    return 0;
}

/*
** Run the requests buf[0..n) holds, in order. kept: buf is hs->in's head
** (else the bytes just read, in the loop's shared buffer). What cannot be
** answered yet (a partial request, or requests that wait behind a streamed
** body or a full queue) is left in hs->in; while they wait, reading stops.
*/
static void http_run(struct conn *c, uint8_t *buf, size_t n, int kept)
{
    size_t pos = 0;
    for (;;) {
        struct conn_http *hs = c->http;
        long r;
        if (conn_is_finishing(c) || c->state != CONN_HANDSHAKE || (c->flags & CF_HTTP_ONLY))
            return;
        if (kept && pos > 0) {
            /* the request at pos starts hs->in from now on */
            ws_buf_consume(&hs->in, pos);
            buf = ws_buf_head(&hs->in);
            n -= pos;
            pos = 0;
        }
        if (hs && (hs->phase == H_STREAM || hs->phase == H_WAIT)) {
            if (pos < n && http_keep(c, buf + pos, n - pos, kept) != 0)
                return;
            if (pos == n && kept)
                ws_buf_free(&hs->in);
            hs->resume = 1;
            conn_pause(c);   /* the next requests wait for the answers ahead of them */
            http_list(hs);
            return;
        }
        if (pos == n) {
            if (kept)
                ws_buf_free(&hs->in);
            return;
        }
        r = http_request(c, buf + pos, n - pos, kept);
        if (r <= 0)
            return;   /* kept for the next read, or no more requests */
        pos += (size_t)r;
    }
}

/*
** The server's handshake stage (c->head): bytes just read. Never WS_PARTIAL:
** what must wait is kept in c->http->in, not in c->in.
*/
static int conn_server_head(struct conn *c, uint8_t *data, size_t len)
{
    struct conn_http *hs = c->http;
    if (!c->http_seen) {
        c->http_seen = 1;
        if (c->tp.ssl && c->group)
            c->group->stats.m.tls_handshakes++;   /* the handshake came through to HTTP */
    }
    if (hs && hs->in.len > 0) {
        if (ws_buf_append(&hs->in, data, len, 0) != WS_OK) {
            conn_abort(c, WS_ENOMEM, "out of memory");
            return (int)len;
        }
        http_run(c, ws_buf_head(&hs->in), hs->in.len, 1);
    } else {
        http_run(c, data, len, 0);
    }
    if (c->http && c->state != CONN_HANDSHAKE)
        conn_http_release(c);   /* upgraded or closing: no more requests */
    return (int)len;
}

/* Nothing to do: an active idle watcher only keeps the loop from blocking. */
static void http_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/*
** Before the loop blocks: connections whose answers are on their way.
** While the peer reads, its deadline starts again; a streamed body gets its
** owner's next pieces (on_drain) once the queue is low; requests that waited
** run once the queue is below HTTP_QUEUE_LOW.
*/
static void http_hook_fn(struct loop_hook *h)
{
    struct conn_http *hs, *next;
    int spin = 0;
    (void)h;
    for (hs = http_waiting; hs; hs = next) {
        struct conn *c = hs->c;
        size_t q;
        next = hs->next;
        if (conn_is_finishing(c) || c->state != CONN_HANDSHAKE || (c->flags & CF_HTTP_ONLY)) {
            http_unlist(hs);
            continue;
        }
        q = conn_buffered(c);
        if (q < hs->queued)
            conn_enter(c, CONN_HANDSHAKE);   /* the peer reads: not idle */
        if (hs->phase == H_STREAM && q <= HTTP_QUEUE_LOW) {
            if (c->hooks->on_drain)
                c->hooks->on_drain(c);
            else
                conn_respond_end(c);
            if (http_streaming(c) && conn_buffered(c) == 0)
                spin = 1;   /* nothing queued will wake the loop: do not block */
        }
        if (!conn_is_finishing(c) && c->state == CONN_HANDSHAKE && !(c->flags & CF_HTTP_ONLY)) {
            if (hs->phase == H_DONE)
                http_next(c);
            if (hs->phase == H_WAIT && conn_buffered(c) <= HTTP_QUEUE_LOW)
                hs->phase = H_HEAD;
            if ((hs->phase == H_HEAD || hs->phase == H_BODY) && hs->resume) {
                hs->resume = 0;
                conn_resume(c);
                if (c->tp.ops->pending(&c->tp) > 0)
                    ev_feed_event(loop_get(), &c->io, EV_READ);   /* TLS holds decrypted bytes */
                if (hs->in.len > 0)
                    http_run(c, ws_buf_head(&hs->in), hs->in.len, 1);
                if (c->http && c->state != CONN_HANDSHAKE) {
                    conn_http_release(c);
                    continue;
                }
            }
        }
        hs->queued = conn_buffered(c);
        if (conn_is_finishing(c) || c->state != CONN_HANDSHAKE || (c->flags & CF_HTTP_ONLY) ||
            (hs->phase != H_STREAM && hs->phase != H_WAIT && hs->queued == 0))
            http_unlist(hs);
    }
    if (!http_idle_ready) {
        ev_idle_init(&http_idle, http_idle_cb);
        http_idle_ready = 1;
    }
    if (spin)
        ev_idle_start(loop_get(), &http_idle);
    else
        ev_idle_stop(loop_get(), &http_idle);
    if (!http_waiting)
        loop_hook_remove(&http_hook);
    conn_run_pending();   /* what this hook finished goes before the loop blocks */
}

/*
** Client: the response head so far is data[0..len) (WS_PARTIAL: keep it).
** It must be a 101 with the right Upgrade, Connection and
** Sec-WebSocket-Accept (RFC 6455 §4.1, step 5).
*/
static int conn_client_head(struct conn *c, uint8_t *data, size_t len)
{
    struct ws_http_head head;
    int r = ws_http_parse_response((const char *)data, len, &head);
    const char *v;
    size_t vlen;
    char expect[WS_ACCEPT_LEN + 1], why[96];
    if (r == WS_PARTIAL && len <= LUAWS_MAX_HEAD_BYTES)
        return r;
    if (r < 0) {
        conn_abort(c, WS_EHANDSHAKE, "handshake: bad response");
        return r;
    }
    if (head.status != 101) {
        snprintf(why, sizeof why, "handshake: %d %.*s", head.status,
                 (int)(head.reason_len > 60 ? 60 : head.reason_len), head.reason);
        conn_abort(c, WS_EHANDSHAKE, why);
        return r;
    }
    v = ws_http_known_value(&head, WS_H_UPGRADE, &vlen);
    if (!v || !ws_http_has_token(v, vlen, "websocket")) {
        conn_abort(c, WS_EHANDSHAKE, "handshake: no Upgrade: websocket");
        return r;
    }
    v = ws_http_known_value(&head, WS_H_CONNECTION, &vlen);
    if (!v || !ws_http_has_token(v, vlen, "upgrade")) {
        conn_abort(c, WS_EHANDSHAKE, "handshake: no Connection: upgrade");
        return r;
    }
    v = ws_http_known_value(&head, WS_H_SEC_WEBSOCKET_ACCEPT, &vlen);
    if (ws_accept_key(c->key, strlen(c->key), expect) != WS_OK || !v ||
        vlen != WS_ACCEPT_LEN || memcmp(v, expect, WS_ACCEPT_LEN) != 0) {
        conn_abort(c, WS_EHANDSHAKE, "handshake: wrong Sec-WebSocket-Accept");
        return r;
    }
    {
        /* RFC 7692 §5: what the server answered to our offer (or to none) */
        const struct conn_compression *z = &c->opt->compression;
        struct ws_pmd_params agreed;
        const char *pwhy = "bad Sec-WebSocket-Extensions";
        int pr = ws_pmd_check_answer(&head, z->enabled ? &z->cfg : NULL, &agreed, &pwhy);
        if (pr < 0) {
            snprintf(why, sizeof why, "handshake: %s", pwhy);
            conn_abort(c, WS_EHANDSHAKE, why);
            return r;
        }
        if (pr == 1 && conn_pmd_start(c, &agreed, z) != WS_OK) {
            conn_abort(c, WS_ENOMEM, "out of memory");
            return r;
        }
    }
    free(c->key);
    c->key = NULL;
    c->ping_at = ev_now(loop_get());
    conn_enter(c, CONN_OPEN);
    if (c->hooks->on_request)
        c->hooks->on_request(c, &head, 1, (const char *)data, (size_t)r);
    if (c->state == CONN_OPEN && !(c->flags & CF_PENDING) && c->hooks->on_open)
        c->hooks->on_open(c);
    if ((size_t)r < len && c->state == CONN_OPEN && !(c->flags & CF_PENDING))
        conn_frames(c, data + r, len - (size_t)r);
    return r;
}

/*
** The PROXY protocol stage (proxy_protocol = true): the header a balancer
** sends before anything else, bounded like a head (the parser never asks
** for more than LUAWS_MAX_PROXY_V2 bytes; handshake_timeout bounds the
** wait). A bad one drops the connection, counted; a LOCAL one (a health
** check) keeps the socket's addresses. What follows goes to the HTTP stage.
*/
static int conn_proxy_head(struct conn *c, uint8_t *data, size_t len)
{
    struct ws_proxy px;
    int r = ws_proxy_parse(data, len, &px);
    if (r == WS_PARTIAL)
        return WS_PARTIAL;
    if (r < 0) {
        if (c->group)
            c->group->stats.m.proxy_errors++;
        conn_abort(c, WS_EPROTO, "proxy protocol: not a valid PROXY header");
        return (int)len;
    }
    if (!px.local) {
        c->proxied = px.src;
        ws_addr_unmap(&c->proxied);
    }
    if (px.ssl)
        c->secure = 2;   /* the PROXY header's word: counts as 1, survives requests */
    c->head = conn_server_head;
    if ((size_t)r < len)
        conn_server_head(c, data + r, len - (size_t)r);
    return (int)len;
}

void conn_http_serve(struct conn *c)
{
    c->secure = -1;
    c->head = c->opt->proxy_protocol ? conn_proxy_head : conn_server_head;
}
