/* SPDX-License-Identifier: MIT
 *
 * conn_int.h -- what conn.c and conn_http.c share and nothing else may
 * touch: the connection's flags and the steps of its state machine that the
 * handshake code drives. Owners (the Lua bindings, server.c) go through
 * conn.h only.
 */
#ifndef LUAWS_IO_CONN_INT_H
#define LUAWS_IO_CONN_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct conn;
struct conn_compression;
struct iovec;
struct ws_pmd_params;

enum conn_flags {
    CF_CLIENT = 1u << 0,        /* client role: masks its frames, expects unmasked */
    CF_CLOSE_SENT = 1u << 1,    /* our close frame is queued or sent */
    CF_CLOSE_RCVD = 1u << 2,    /* the peer's close frame arrived */
    CF_CORKED = 1u << 3,        /* inside the read path: sends are queued, flushed once after */
    CF_WANT_WRITE = 1u << 4,    /* the queue waits for the socket to be writable */
    CF_PAUSED = 1u << 5,        /* the owner paused reading */
    CF_PING_OUT = 1u << 6,      /* a keep-alive ping waits for its pong */
    CF_PENDING = 1u << 7,       /* queued on the pending list for finishing */
    CF_HTTP_ONLY = 1u << 8,     /* a plain HTTP response is being sent; close after it */
    CF_SHUT_WR = 1u << 9,       /* write side shut down after the close exchange */
    CF_FAILED = 1u << 10,       /* closed by a protocol error, limit or timeout (we chose the code) */
    CF_CONNECTING = 1u << 11,   /* client: connect() in progress */
    CF_DRAIN_WANTED = 1u << 12, /* tell the owner when the queue empties */
    CF_HTTP_SENT = 1u << 13,    /* client: request head written */
    CF_PEER_EOF = 1u << 14,     /* the peer shut its write side: nothing more will be read */
    CF_RAW = 1u << 15,          /* bytes that are not frames were queued: frame bounds unknown */
    CF_SOCK_ERR = 1u << 16,     /* the socket failed: queued bytes can no longer be delivered */
    CF_FRAGMENTS = 1u << 17,    /* hand data on frame by frame (on_fragment), not as messages */
    CF_TURN_CORK = 1u << 18,    /* fan-out this loop turn: queue only, flushed once before the loop blocks */
    CF_RX_DRAINED = 1u << 19    /* in this read event, the last read was short: nothing is unread */
};

/* Recover the connection from one of its embedded watchers. */
#define CONN_OF(ptr, member) ((struct conn *)((char *)(ptr) - offsetof(struct conn, member)))

/* conn.c: enter a state, restart its clock and re-arm the timer. */
void conn_enter(struct conn *c, int state);

/* conn.c: write what the queue holds until the socket pushes back (and shut
 * the write side / finish once the close exchange is out). */
void conn_flush(struct conn *c);

/* conn.c: frames from buf[0..n) of an open connection. */
void conn_frames(struct conn *c, uint8_t *buf, size_t n);

/* conn.c: iov straight to a plain socket when nothing waits in the queue.
 * Returns the bytes taken (0 when it would block), or -1 after dropping the
 * connection on an error. Only when c->tp.ops->writev is not NULL. */
ssize_t conn_write_direct(struct conn *c, struct iovec *iov, int cnt);

/* conn.c: the first n bytes of the queue went out. */
void conn_sent(struct conn *c, size_t n);

/* conn.c: permessage-deflate was agreed (agreed: its parameters; z: how
 * to compress): set up the connection's compression contexts (no zlib
 * state yet: that is lent per message) and let the reader take RSV1.
 * WS_OK or WS_ENOMEM. */
int conn_pmd_start(struct conn *c, const struct ws_pmd_params *agreed, const struct conn_compression *z);

/* conn_http.c: free the connection's HTTP request state (c->http), at
 * teardown. */
void conn_http_release(struct conn *c);


#endif
