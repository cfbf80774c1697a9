/* SPDX-License-Identifier: MIT
 *
 * conn.h -- one WebSocket connection: its state machine, read path, send
 * queue and timer, on libev.
 *
 *   HANDSHAKE --101--> OPEN --close sent or received--> CLOSING --> CLOSED
 *        \______________ error, timeout, EOF ______________________/
 *
 * A connection is either the server side of an accepted socket or the client
 * side of luaws.connect(). It does not know Lua: it reports to its owner
 * through struct conn_hooks, and the owner (lua_conn.c) supplies the memory
 * and keeps it until hooks->release.
 *
 * Lifetime rules (Redis's "never free inside a handler"):
 *   - nothing is freed while a hook runs; conn_finish() only queues the
 *     connection on the loop's pending list, and loop.c finishes it from an
 *     ev_prepare watcher: watchers stopped, fd closed, buffers freed,
 *     hooks->on_close called once, hooks->release called once;
 *   - release is the last thing conn.c does with the struct: the owner
 *     frees it there.
 *
 * Timers: one ev_timer per connection serves the handshake timeout, the
 * keep-alive ping, the pong timeout, the idle timeout and the close timeout.
 * Reads only stamp c->last_rx; the timer callback works out the next deadline
 * and re-arms itself (libev's "lazy timeout" pattern), so traffic costs no
 * timer calls.
 */
#ifndef LUAWS_CONN_H
#define LUAWS_CONN_H

#include <ev.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include "buffer.h"
#include "frame.h"
#include "http.h"

struct ssl_st;

struct conn;
struct server;

enum conn_state {
    CONN_HANDSHAKE = 0,  /* reading the HTTP head (server) or the 101 (client) */
    CONN_OPEN,           /* frames flow both ways */
    CONN_CLOSING,        /* a close frame was sent or received; waiting for the rest */
    CONN_CLOSED          /* finished: fd closed, hooks told */
};

enum conn_flags {
    CF_CLIENT = 1u << 0,        /* client role: masks its frames, expects unmasked */
    CF_CLOSE_SENT = 1u << 1,    /* our close frame is queued or sent */
    CF_CLOSE_RCVD = 1u << 2,    /* the peer's close frame arrived */
    CF_CORKED = 1u << 3,        /* inside the read path: sends are queued, flushed once after */
    CF_WANT_WRITE = 1u << 4,    /* the queue waits for the socket to be writable */
    CF_PAUSED = 1u << 5,        /* the owner paused reading */
    CF_PING_OUT = 1u << 6,      /* a keep-alive ping waits for its pong */
    CF_PENDING = 1u << 7,       /* queued on the loop's pending list for finishing */
    CF_HTTP_ONLY = 1u << 8,     /* a plain HTTP response is being sent; close after it */
    CF_SHUT_WR = 1u << 9,       /* write side shut down after the close exchange */
    CF_FAILED = 1u << 10,       /* closed by a protocol error or limit (we chose the code) */
    CF_CONNECTING = 1u << 11,   /* client: connect() in progress */
    CF_DRAIN_WANTED = 1u << 12, /* tell the owner when the queue empties */
    CF_HTTP_SENT = 1u << 13,    /* client: request head written */
    CF_RD_WANTS_WR = 1u << 14,  /* TLS: a read waits for the socket to be writable */
    CF_PEER_EOF = 1u << 15,     /* the peer shut its write side: nothing more will be read */
    CF_RAW = 1u << 16,          /* bytes that are not frames were queued: frame bounds unknown */
    CF_SOCK_ERR = 1u << 17,     /* the socket failed: queued bytes can no longer be delivered */
    CF_SHUTDOWN = 1u << 18      /* closed by a server shutdown: its grace, not close_timeout, bounds it */
};

/* What a connection reports to its owner. Any hook but release may be NULL.
 * Hooks may call any conn_* function on any connection: a connection that a
 * hook finishes is only queued (see the lifetime rules above). */
struct conn_hooks {
    /* server: a complete request head arrived. The owner answers it by calling
     * conn_accept() or conn_respond() before returning, or else 500 is sent.
     * upgrade is 1 for a valid WebSocket handshake.
     * client: the server's valid 101 arrived (upgrade is 1), just before on_open,
     * so the owner can read the chosen subprotocol and headers.
     * head/head_len: the raw head bytes, valid during the call. */
    void (*on_request)(struct conn *c, const struct ws_http_head *req, int upgrade,
                       const char *head, size_t head_len);
    /* the handshake finished: frames may flow (server: after 101 is queued;
     * client: after a valid 101 arrived) */
    void (*on_open)(struct conn *c);
    /* a whole, validated message: opcode WS_OP_TEXT or WS_OP_BINARY */
    void (*on_message)(struct conn *c, int opcode, const uint8_t *data, size_t len);
    /* a ping or pong arrived (the pong answer to a ping is already queued) */
    void (*on_control)(struct conn *c, int opcode, const uint8_t *data, size_t len);
    /* the send queue emptied after the socket had pushed back */
    void (*on_drain)(struct conn *c);
    /* the connection finished (called once, for every connection that opened,
     * and for every client). code/reason: the peer's close frame if one came
     * (1005 if it had no code); the code we failed it with (1002, 1007, 1008,
     * 1009, 1011) for a protocol error or limit; 1006 otherwise, with reason
     * "timeout" for the idle and keep-alive timeouts. */
    void (*on_close)(struct conn *c, unsigned code, const char *reason, size_t reason_len);
    /* the connection is done with its memory: the owner may free it now */
    void (*release)(struct conn *c);
};

/* Per-connection limits and timers, shared by all connections of a server.
 * Times in seconds; 0 turns a timer off. */
struct conn_options {
    double keep_alive_interval;   /* send a ping this often; 0 = never */
    double keep_alive_timeout;    /* close if its pong is this late; 0 = wait forever */
    double idle_timeout;          /* close if nothing arrived for this long; 0 = never */
    double handshake_timeout;     /* drop a connection still in HANDSHAKE after this */
    double close_timeout;         /* wait this long for the peer's half of the close */
    size_t max_message_size;      /* 1009 above this */
    size_t max_backpressure;      /* close with 1008 when the send queue passes this */
    size_t receive_buffer_size;   /* bytes read per read(2) */
};

struct conn {
    ev_io io;                     /* the socket: EV_READ, plus EV_WRITE while the queue waits */
    ev_timer timer;               /* see the file comment */
    const struct conn_hooks *hooks;
    const struct conn_options *opt;
    struct server *srv;           /* owning server, NULL for a client */
    struct conn *prev, *next;     /* the server's list of live connections */
    struct conn *pending_next;    /* the loop's list of connections to finish */
    struct ssl_st *ssl;           /* the TLS session, or NULL for plain TCP */
    int fd;
    uint8_t state;                /* enum conn_state */
    uint32_t flags;               /* enum conn_flags */
    unsigned close_code;          /* code reported to on_close */
    uint8_t close_reason_len;
    char *close_reason;           /* reason reported to on_close (malloc'd, or NULL) */
    uint32_t read_hint;           /* size of the last message, for the next read's size */
    ev_tstamp since;              /* time the current state began */
    ev_tstamp last_rx;            /* time anything last arrived */
    ev_tstamp ping_at;            /* time the last keep-alive ping went out */
    struct ws_reader rd;
    struct ws_buf in;             /* unfinished HTTP head (handshake only) */
    struct ws_buf msg;            /* message being reassembled from fragments or reads */
    struct ws_buf out;            /* bytes waiting for the socket */
    /* Where the queue's first byte falls (see conn_sent): out_http bytes of
     * an HTTP head come first; else out_unit_left bytes finish a frame that
     * is partly on the wire (0: the queue starts at a frame boundary). */
    size_t out_http;
    size_t out_unit_left;
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    char *key;                    /* client: the Sec-WebSocket-Key sent (malloc'd until the 101) */
    union {                       /* the peer's address, kept for ws.remote after the close */
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } peer;
};

/* Set up c around a connected, non-blocking socket fd and start reading.
 * server: the accepting server or NULL; flags: CF_CLIENT for a client. */
void conn_init(struct conn *c, int fd, struct server *srv, const struct conn_hooks *hooks,
               const struct conn_options *opt, unsigned flags);

/* Make the connection speak TLS over its socket (right after conn_init,
 * before any I/O): ssl comes from tls_new and is freed with the connection. */
void conn_use_tls(struct conn *c, struct ssl_st *ssl);

/* Server, from on_request: answer 101 and open. protocol may be NULL;
 * extra is more header lines ("Name: value\r\n"…) or NULL. */
int conn_accept(struct conn *c, const struct ws_http_head *req, const char *protocol,
                const char *extra, size_t extra_len);

/* Server, from on_request (or to refuse): a plain HTTP response; the
 * connection closes once it is sent. extra: header lines as above.
 * head_only: answer a HEAD: Content-Length says body_len, no body follows. */
int conn_respond(struct conn *c, int status, const char *extra, size_t extra_len,
                 const void *body, size_t body_len, int head_only);

/* Client: send the opening handshake for path on host (after the socket is
 * connected; queued until then). extra: header lines or NULL. */
int conn_client_start(struct conn *c, const char *host, const char *path,
                      const char *extra, size_t extra_len);

/* Queue a whole message (opcode TEXT or BINARY) or a ping/pong. Returns WS_OK,
 * WS_ECLOSED if the connection is not open, WS_EPROTO for a control payload
 * over 125 bytes, WS_EBACKPRESSURE if the queue passed max_backpressure (the
 * connection is then being closed with 1008), WS_ENOMEM. */
int conn_send(struct conn *c, int opcode, const void *data, size_t len);

/* Queue a frame whose header was encoded by the caller (broadcast encodes
 * once for all connections). Server role only (no masking). */
int conn_send_preframed(struct conn *c, const uint8_t *hdr, size_t hdr_len,
                        const void *data, size_t len);

/* Queue bytes exactly as given, already framed (and masked, for a client):
 * for tests that must send what a correct endpoint never would. */
int conn_send_raw(struct conn *c, const void *data, size_t len);

/* Start the close handshake with code (0 = no code) and reason. Returns WS_OK
 * or WS_ECLOSED if it was already closing. */
int conn_close(struct conn *c, unsigned code, const char *reason, size_t reason_len);

/* Drop the connection now, without a close handshake (reported as 1006). */
void conn_abort(struct conn *c, const char *reason);

/* Stop / restart reading (the owner's own flow control). */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

/* Bytes waiting in the send queue. */
static inline size_t conn_buffered(const struct conn *c) { return c->out.len; }

/* Queue the connection for finishing on the next loop iteration (idempotent). */
void conn_finish(struct conn *c);

/* Finish it now: only for loop.c's pending list and shutdown. */
void conn_finish_now(struct conn *c);

/* Free what a live connection holds without telling its owner (no hooks):
 * for a Lua state that is closing. The struct itself stays the owner's. */
void conn_destroy(struct conn *c);

/* Name of a state: "handshake", "open", "closing", "closed". */
const char *conn_state_name(const struct conn *c);

#endif
