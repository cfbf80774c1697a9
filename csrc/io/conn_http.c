/* SPDX-License-Identifier: MIT
 *
 * conn_http.c -- a connection's opening handshake (RFC 6455 §4): the server
 * reads the request head, answers the errors the core owns (400, 405, 426,
 * 431) and hands valid requests to its owner, which accepts (101) or
 * answers (any status); the client sends its request and checks the 101.
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
#include "proto/handshake.h"

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

int conn_respond(struct conn *c, int status, const char *extra, size_t extra_len,
                 const void *body, size_t body_len, int head_only)
{
    char head[256];
    int n;
    if (c->state != CONN_HANDSHAKE || (c->flags & CF_PENDING))
        return WS_ECLOSED;
    n = snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n",
                 status, ws_http_reason(status), body_len);
    c->flags |= CF_HTTP_ONLY;
    if (c->group && status != 200)
        c->group->stats.rejected++;
    {
        struct iovec iov[4] = { { head, (size_t)n }, { (void *)extra, extra_len },
                                { "\r\n", 2 }, { (void *)body, head_only ? 0 : body_len } };
        int rc = conn_put(c, iov, 4);
        if (rc != WS_OK)
            return rc;
    }
    conn_enter(c, CONN_CLOSING);
    if (!(c->flags & CF_CORKED))
        conn_flush(c);
    return WS_OK;
}

/* A plain-text error answer from the core itself (400, 405, 426, 431, 500). */
static void conn_respond_error(struct conn *c, int status, const char *extra)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, ws_http_reason(status));
    char hdrs[160];
    int h = snprintf(hdrs, sizeof hdrs, "Content-Type: text/plain; charset=utf-8\r\n%s",
                     extra ? extra : "");
    conn_respond(c, status, hdrs, (size_t)h, body, (size_t)n, 0);
}

int conn_accept(struct conn *c, const struct ws_http_head *req, const char *protocol,
                const char *extra, size_t extra_len)
{
    char accept[WS_ACCEPT_LEN + 1], head[512];
    const char *key;
    size_t key_len;
    int n;
    if (c->state != CONN_HANDSHAKE || (c->flags & (CF_PENDING | CF_HTTP_ONLY | CF_CLIENT)))
        return WS_ECLOSED;
    key = ws_http_header(req, "sec-websocket-key", &key_len);
    if (!key || ws_accept_key(key, key_len, accept) != WS_OK)
        return WS_EHANDSHAKE;
    if (protocol && strlen(protocol) > 200)
        return WS_EHANDSHAKE;
    n = snprintf(head, sizeof head,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s",
                 accept, protocol ? "Sec-WebSocket-Protocol: " : "", protocol ? protocol : "",
                 protocol ? "\r\n" : "");
    {
        struct iovec iov[3] = { { head, (size_t)n }, { (void *)extra, extra_len }, { "\r\n", 2 } };
        int rc = conn_put(c, iov, 3);
        if (rc != WS_OK)
            return rc;
    }
    if (c->group) {
        c->group->stats.upgraded++;
        c->group->nopen++;
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

/*
** Server: the request head so far is data[0..len). Unless it is still
** partial (WS_PARTIAL is returned and the caller keeps the bytes), answer the
** errors the core owns (431, 400, 405, 426), hand valid requests to the
** owner, and once upgraded read on from the bytes that followed the head (a
** client may send its first frame in the same segment).
*/
static int conn_server_head(struct conn *c, uint8_t *data, size_t len)
{
    struct ws_http_head head;
    int r = ws_http_parse_request((const char *)data, len, &head);
    int upgrade, status;
    const char *why;
    if (r == WS_PARTIAL && len <= LUAWS_MAX_HEAD_BYTES)
        return r;
    if (r == WS_EHEADERS || r == WS_PARTIAL) {   /* the parser says so too: belt and braces */
        conn_respond_error(c, 431, NULL);
        return r;
    }
    if (r < 0) {
        conn_respond_error(c, 400, NULL);
        return r;
    }
    upgrade = ws_handshake_is_upgrade(&head);
    if (upgrade && (status = ws_handshake_check(&head, &why)) != 0) {
        conn_respond_error(c, status,
                           status == 426 ? "Sec-WebSocket-Version: 13\r\n"
                           : status == 405 ? "Allow: GET\r\n" : NULL);
        return r;
    }
    if (c->hooks->on_request)
        c->hooks->on_request(c, &head, upgrade, (const char *)data, (size_t)r);
    if (c->state == CONN_HANDSHAKE && !(c->flags & (CF_PENDING | CF_HTTP_ONLY)))
        conn_respond_error(c, 500, NULL);
    if (c->state == CONN_OPEN && !(c->flags & CF_PENDING)) {
        size_t rest = len - (size_t)r;
        if (c->hooks->on_open)
            c->hooks->on_open(c);
        if (rest && c->state == CONN_OPEN && !(c->flags & CF_PENDING))
            conn_frames(c, data + r, rest);
    }
    return r;
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
    v = ws_http_header(&head, "upgrade", &vlen);
    if (!v || !ws_http_has_token(v, vlen, "websocket")) {
        conn_abort(c, WS_EHANDSHAKE, "handshake: no Upgrade: websocket");
        return r;
    }
    v = ws_http_header(&head, "connection", &vlen);
    if (!v || !ws_http_has_token(v, vlen, "upgrade")) {
        conn_abort(c, WS_EHANDSHAKE, "handshake: no Connection: upgrade");
        return r;
    }
    v = ws_http_header(&head, "sec-websocket-accept", &vlen);
    if (ws_accept_key(c->key, strlen(c->key), expect) != WS_OK || !v ||
        vlen != WS_ACCEPT_LEN || memcmp(v, expect, WS_ACCEPT_LEN) != 0) {
        conn_abort(c, WS_EHANDSHAKE, "handshake: wrong Sec-WebSocket-Accept");
        return r;
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

void conn_http_serve(struct conn *c)
{
    c->head = conn_server_head;
}
