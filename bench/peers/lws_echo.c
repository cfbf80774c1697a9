/* SPDX-License-Identifier: MIT */
/*
** bench/peers/lws_echo.c -- the libwebsockets peer of `make bench`.
**
**     lws_echo PORT
**
** One libwebsockets context, one service thread, listening on 127.0.0.1:PORT.
** Every WebSocket upgrade, on any path, binds to the one protocol below (a
** client that names no subprotocol gets protocols[0]); plain HTTP requests
** go to lws_callback_http_dummy. No extensions are offered (no
** permessage-deflate), no TLS.
**
** Each message is echoed whole, with its own opcode: the payload that lws
** hands to LWS_CALLBACK_RECEIVE (in pieces of at most RX_CHUNK bytes, and one
** or more frames per message) is appended to the connection's buffer until
** lws_is_final_fragment(); then reading stops (lws_rx_flow_control) until
** the echo has been given to lws_write in LWS_CALLBACK_SERVER_WRITEABLE.
** So one message is held per connection at a time, at most MAX_MSG bytes
** (a larger one is closed with 1009). Pings and closes are lws's own.
**
** Prints "listening on 127.0.0.1:PORT" once the socket is bound, and stops on
** SIGTERM or SIGINT.
*/
#define _POSIX_C_SOURCE 200809L
#include <libwebsockets.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RX_CHUNK (64 * 1024)            /* lws's read size per callback */
#define MAX_MSG  (64u * 1024 * 1024)    /* the largest message echoed */
#define KEEP_CAP (64 * 1024)            /* buffers above this are freed after the echo */

struct sess {
    unsigned char *buf;     /* LWS_PRE bytes of room, then the message */
    size_t len, cap;        /* payload bytes held / room after LWS_PRE */
    int in_msg;             /* a message has begun and not ended */
    int binary;             /* its opcode */
    int ready;              /* complete: waiting for WRITEABLE */
};

static volatile sig_atomic_t stopping;
static struct lws_context *ctx;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
    if (ctx)
        lws_cancel_service(ctx);
}

static int append(struct sess *s, const void *in, size_t n)
{
    if (n > MAX_MSG - s->len)
        return -1;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        unsigned char *p = realloc(s->buf, LWS_PRE + cap);
        if (!p)
            return -1;
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + LWS_PRE + s->len, in, n);
    s->len += n;
    return 0;
}

static int on_event(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct sess *s = user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(s, 0, sizeof *s);
        return 0;

    case LWS_CALLBACK_RECEIVE:
        if (!s->in_msg) {
            s->in_msg = 1;
            s->binary = lws_frame_is_binary(wsi);
            s->len = 0;
        }
        if (append(s, in, len) != 0) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
            return -1;
        }
        if (lws_is_final_fragment(wsi)) {
            s->in_msg = 0;
            s->ready = 1;
            lws_rx_flow_control(wsi, 0);
            lws_callback_on_writable(wsi);
        }
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!s->ready)
            return 0;
        if (!s->buf && append(s, "", 0) != 0)  /* an empty message still needs LWS_PRE */
            return -1;
        if (lws_write(wsi, s->buf + LWS_PRE, s->len,
                      s->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)s->len)
            return -1;
        s->ready = 0;
        s->len = 0;
        if (s->cap > KEEP_CAP) {
            free(s->buf);
            s->buf = NULL;
            s->cap = 0;
        }
        lws_rx_flow_control(wsi, 1);
        return 0;

    case LWS_CALLBACK_CLOSED:
        free(s->buf);
        s->buf = NULL;
        return 0;

    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    { "echo", on_event, sizeof(struct sess), RX_CHUNK, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: lws_echo PORT\n");
        return 2;
    }
    int port = atoi(argv[1]);

    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.count_threads = 1;
    info.gid = -1;
    info.uid = -1;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "lws_echo: lws_create_context failed\n");
        return 1;
    }
    printf("lws_echo %s listening on 127.0.0.1:%d\n", lws_get_library_version(), port);
    fflush(stdout);

    while (!stopping)
        if (lws_service(ctx, 0) < 0)
            break;
    lws_context_destroy(ctx);
    return 0;
}
