/* SPDX-License-Identifier: MIT
 *
 * conn.h -- one WebSocket connection: its state machine, read path, send
 * queue and timer, on libev.
 *
 *   HANDSHAKE --101--> OPEN --close sent or received--> CLOSING --> CLOSED
 *        \______________ error, timeout, EOF ______________________/
 *
 * A connection is either the server side of an accepted socket or the client
 * side of luaws.connect(). It knows neither Lua nor servers: it reports to
 * its owner through struct conn_hooks, counts itself in the conn_group it
 * was given (a server's connections, their numbers and stats), and the owner
 * supplies the memory and keeps it until hooks->release.
 *
 * A server connection stays in HANDSHAKE while it serves plain HTTP: each
 * request is answered there (keep-alive, pipelining; conn_http.c), and the
 * handshake timer bounds each request and the idle time between them.
 *
 * Files: conn.c (state machine, frames in, the send queue, closing, timers,
 * the deferred finish), conn_http.c (the HTTP stage: the opening handshake,
 * RFC 6455 §4, and plain requests, RFC 9112), transport.c (plain or TLS
 * bytes), conn_int.h (what those share and nobody else may touch: the flags).
 *
 * Lifetime rules (Redis's "never free inside a handler"):
 *   - nothing is freed while a hook runs; conn_finish() only queues the
 *     connection on conn.c's pending list, which a loop hook runs before the
 *     loop next blocks (and conn_run_pending() on demand): watchers stopped,
 *     fd closed, buffers freed, hooks->on_close called once,
 *     hooks->release called once;
 *   - release is the last thing conn.c does with the struct: the owner
 *     frees it there.
 *
 * Timers: one ev_timer per connection serves the handshake timeout, the
 * keep-alive ping, the pong timeout, the idle timeout and the close timeout.
 * Reads only stamp c->last_rx; the timer callback works out the next deadline
 * and re-arms itself (libev's "lazy timeout" pattern), so traffic costs no
 * timer calls.
 */
#ifndef LUAWS_IO_CONN_H
#define LUAWS_IO_CONN_H

#include <ev.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include "io/metrics.h"
#include "io/transport.h"
#include "proto/addr.h"
#include "proto/buffer.h"
#include "proto/frame.h"
#include "proto/http.h"
#include "proto/pmd.h"

struct conn;
struct conn_seg;
struct conn_http;
struct conn_pmd;

enum conn_state {
    CONN_HANDSHAKE = 0,  /* reading the HTTP head (server) or the 101 (client) */
    CONN_OPEN,           /* frames flow both ways */
    CONN_CLOSING,        /* a close frame was sent or received; waiting for the rest */
    CONN_CLOSED          /* finished: fd closed, hooks told */
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
    /* after conn_want_fragments(c, 1), in place of on_message: one data
     * frame's whole payload as soon as the frame is complete, opcode that of
     * its message, fin 1 on the message's last frame. Nothing is reassembled;
     * max_message_size and UTF-8 are checked over the whole message as it
     * arrives (a text frame may end inside a character: only the message is
     * UTF-8), and a message that breaks them fails the connection (1009,
     * 1007) after its earlier frames were handed on. Empty non-final frames
     * are not reported. */
    void (*on_fragment)(struct conn *c, int opcode, const uint8_t *data, size_t len, int fin);
    /* a ping or pong arrived (the pong answer to a ping is already queued) */
    void (*on_control)(struct conn *c, int opcode, const uint8_t *data, size_t len);
    /* the send queue emptied after the socket had pushed back (only after
     * conn_want_drain(c, 1)); and, for a server connection that streams an
     * HTTP body (conn_respond_start), whenever the queue is low: write more
     * with conn_respond_chunk, or finish with conn_respond_end */
    void (*on_drain)(struct conn *c);
    /* the connection finished (called once, for every connection that opened,
     * and for every client). code/reason: the peer's close frame if one came
     * (1005 if it had no code); the code we failed it with (1002, 1007, 1008,
     * 1009, 1011) for a protocol error or limit; 1006 otherwise, with reason
     * "timeout" for the idle and keep-alive timeouts. err: WS_OK after a close
     * handshake, else the WS_E* code of what ended it (WS_ETIMEOUT, WS_EIO,
     * WS_ETLS, WS_EREFUSED, WS_EHANDSHAKE, WS_EPROTO, ...), so nobody has to
     * read the reason to tell. */
    void (*on_close)(struct conn *c, unsigned code, const char *reason, size_t reason_len, int err);
    /* the connection is done with its memory: the owner may free it now */
    void (*release)(struct conn *c);
    /* server: the core refused a request by itself (400, 405, 413, 426,
     * 431, 501, or 500 when on_request gave no answer), just after queueing
     * the answer. req: the parsed head, or NULL when it did not parse. */
    void (*on_refused)(struct conn *c, const struct ws_http_head *req, int status);
};

/* permessage-deflate (RFC 7692) as an owner configures it: whether to
 * negotiate it, what to ask for or accept (cfg: window sizes, whether
 * either side keeps context; proto/pmd.h), and how to compress. */
struct conn_compression {
    uint8_t enabled;              /* 0: never offered or accepted */
    uint8_t level;                /* zlib level, 0..9 */
    uint8_t mem_level;            /* zlib memLevel, 1..9 (the compressor's hash and block buffers) */
    uint32_t threshold;           /* whole messages shorter than this go out uncompressed */
    struct ws_pmd_config cfg;
};

/* Per-connection limits and timers, shared by all connections of a server.
 * Times in seconds; 0 turns a timer off. The owner fills every field. */
struct conn_options {
    double keep_alive_interval;   /* send a ping this often; 0 = never */
    double keep_alive_timeout;    /* close if its pong is this late; 0 = wait forever */
    double idle_timeout;          /* close if nothing arrived for this long; 0 = never */
    double handshake_timeout;     /* drop a connection still in HANDSHAKE after this */
    double close_timeout;         /* a close may take this long: the queue, then the peer's half */
    size_t max_message_size;      /* 1009 above this */
    size_t max_backpressure;      /* close with 1008 when the send queue passes this */
    size_t receive_buffer_size;   /* bytes read per read(2) */
    size_t max_body_size;         /* server: a plain request's body; 413 above it */
    uint8_t trust_send_utf8;      /* 1: text sends are not checked for UTF-8 (check_send_utf8 = false) */
    struct conn_compression compression;   /* the server's (a route may have its own: conn_accept) or the client's */
    uint8_t proxy_protocol;       /* server: a PROXY protocol v1/v2 header comes first (proto/proxy.h) */
    const struct ws_trust *trust; /* server: trusted_proxies, whose Forwarded / X-Forwarded-For count, or NULL */
};

/* Counts a group keeps of its connections (a server's stats). */
struct conn_stats {
    uint64_t accepted;        /* sockets accepted (server.c counts them) */
    uint64_t upgraded;        /* handshakes completed */
    uint64_t rejected;        /* refused: over max_connections or a failed handshake */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    uint64_t frames_cut;      /* connections closed by a deadline in the middle of a frame */
    uint64_t shutdown_cut;    /* connections still open when a shutdown's grace ran out */
    uint64_t compressions;    /* messages deflated: one per message sent alone, one per
                               * parameter set for a frame a fan-out shares */
    uint64_t decompressions;  /* compressed messages received and inflated */
    uint64_t wire_bytes_in;   /* data frames' payload bytes as received (compressed or not) */
    uint64_t wire_bytes_out;  /* as sent: a frame a fan-out shares counts once per connection */
    struct metrics m;         /* by status, by code, durations (io/metrics.h) */
};

/* The connections of one owner (a server): a list, counts and stats that
 * conn.c keeps as connections come and go, so the owner can walk them
 * (close, broadcast, shutdown) without conn.c knowing what it is. */
struct conn_group {
    struct conn *conns;           /* live connections (not finished), newest first */
    size_t nconns;                /* how many */
    size_t nopen;                 /* of which upgraded (OPEN or CLOSING) */
    struct conn_stats stats;
    int draining;                 /* a shutdown closes them: its grace, not close_timeout, bounds each close */
};

struct conn {
    ev_io io;                     /* the socket: EV_READ, plus EV_WRITE while the queue waits */
    ev_timer timer;               /* see the file comment */
    const struct conn_hooks *hooks;
    const struct conn_options *opt;
    struct conn_group *group;     /* the owner's group, NULL for a client */
    struct conn *prev, *next;     /* the group's list of live connections */
    struct conn *pending_next;    /* conn.c's list of connections to finish */
    struct conn *turn_next;       /* conn.c's list of connections a fan-out corked this turn */
    struct transport tp;          /* the socket, plain or TLS */
    /* The handshake stage: reads the head while in HANDSHAKE (conn_http.c
     * sets it: conn_http_serve, conn_client_start). Returns WS_PARTIAL to
     * keep the bytes, else the head's size or an error once answered. */
    int (*head)(struct conn *c, uint8_t *data, size_t len);
    struct conn_http *http;       /* server: HTTP/1.1 request state (conn_http.c), or NULL */
    uint8_t state;                /* enum conn_state */
    uint32_t flags;               /* private to io/conn*.c (conn_int.h) */
    unsigned close_code;          /* code reported to on_close */
    int close_err;                /* WS_E* reported to on_close (0: a clean close) */
    uint8_t close_reason_len;
    char *close_reason;           /* reason reported to on_close (malloc'd, or NULL) */
    uint32_t read_hint;           /* size of the last message, for the next read's size */
    ev_tstamp since;              /* time the current state began */
    ev_tstamp last_rx;            /* time anything last arrived */
    ev_tstamp ping_at;            /* time the last keep-alive ping went out */
    struct ws_reader rd;
    struct ws_buf in;             /* unfinished HTTP head (handshake only) */
    struct ws_buf msg;            /* message being reassembled from fragments or reads */
    struct ws_buf out;            /* bytes waiting for the socket (the front of the queue) */
    struct conn_seg *segs;        /* and after them: frames, shared or not (conn_send_shared) */
    struct conn_seg *segs_tail;
    size_t segs_len;              /* bytes in segs */
    /* Where the queue's first byte falls (see conn_sent): out_http bytes of
     * an HTTP head come first; else out_unit_left bytes finish a frame that
     * is partly on the wire (0: the queue starts at a frame boundary). */
    size_t out_http;
    size_t out_unit_left;
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    /* A fragmented message being sent (conn_send_part): its opcode, 0 when
     * none is open, and the UTF-8 state of its text so far. Whole frames
     * that other senders (conn_send_shared) queue meanwhile are parked, in
     * order, until its final frame: no frame of another message may go
     * between fragments (RFC 6455 §5.4). */
    uint8_t send_op;
    uint32_t send_utf8;
    struct conn_seg *parked, *parked_tail;
    size_t parked_len;
    struct conn_pmd *pmd;         /* permessage-deflate, when agreed (malloc'd at the 101; conn.c) */
    char *key;                    /* client: the Sec-WebSocket-Key sent (malloc'd until the 101) */
    union {                       /* the peer's address, kept for ws.remote after the close */
        struct sockaddr sa;       /* sa_family AF_UNIX (nothing else kept) on a unix socket */
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } peer;
    /* Server, behind a proxy: the client a PROXY header named (family
     * WS_AF_NONE: none came, or it was LOCAL), and the client of the latest
     * request as the trusted proxies say (conn_http.c: none when the peer
     * is not trusted or said nothing). secure: -1 nothing said, 0 http, 1
     * https (X-Forwarded-Proto, Forwarded proto=, the PROXY v2 SSL TLV). */
    struct ws_addr proxied;
    struct ws_addr client;
    int8_t secure;
    uint8_t http_seen;            /* server: some HTTP input arrived (a TLS handshake came through) */
    ev_tstamp born;               /* server: when it was accepted (the handshake histogram) */
    ev_tstamp opened_at;          /* server: when the 101 went out */
};

/* The address of c's client: the trusted proxies' word, else the PROXY
 * header's, else the socket's peer (family WS_AF_UNIX on a unix socket). */
void conn_client_addr(const struct conn *c, struct ws_addr *a);

/* 1 when the client reached us over TLS: our own, or as a trusted proxy
 * or the PROXY header says. */
int conn_secure(const struct conn *c);

/* Set up c around a connected, non-blocking socket fd (plain TCP; see
 * conn_use_tls) and start reading. group: the owner's group or NULL;
 * client: 1 for the client role (masks its frames, expects unmasked ones);
 * connecting: 1 while a client's connect() is still in progress. */
void conn_init(struct conn *c, int fd, struct conn_group *group, const struct conn_hooks *hooks,
               const struct conn_options *opt, int client, int connecting);

/* Make the connection speak TLS over its socket (right after conn_init,
 * before any I/O): ssl comes from tls_new and is freed with the connection. */
void conn_use_tls(struct conn *c, struct ssl_st *ssl);

/* Server: read an HTTP/1.1 request head on c (right after conn_init) and
 * hand it to hooks->on_request (RFC 6455 §4.2). */
void conn_http_serve(struct conn *c);

/* Server, from on_request: answer 101 and open. protocol may be NULL;
 * extra is more header lines ("Name: value\r\n"…) or NULL. z: the
 * route's compression, or NULL for the server's (c->opt->compression):
 * when enabled, permessage-deflate is negotiated from the request's
 * offers (proto/pmd.h) and the 101 answers the one taken, if any. */
int conn_accept(struct conn *c, const struct ws_http_head *req, const char *protocol,
                const char *extra, size_t extra_len, const struct conn_compression *z);

/* Server, from on_request (or to refuse): a plain HTTP response. extra:
 * header lines as above. head_only: answer a HEAD: Content-Length says
 * body_len, no body follows. Afterwards the connection reads the next
 * request (HTTP/1.1 keep-alive; pipelined requests are answered in order),
 * or closes once the answer is out: after an upgrade request, a request
 * with Connection: close, an HTTP/1.0 one without keep-alive. WS_ECLOSED
 * when no request awaits an answer (or the connection is finishing). */
int conn_respond(struct conn *c, int status, const char *extra, size_t extra_len,
                 const void *body, size_t body_len, int head_only);

/* Server, from on_request of a plain (not upgrade) request: answer with a
 * body that comes in pieces: chunked for HTTP/1.1, delimited by the close
 * for HTTP/1.0. head_only (HEAD): the head alone, and the answer is done.
 * Otherwise hooks->on_drain is called whenever the queue is low, until the
 * owner calls conn_respond_end; reading waits meanwhile. WS_OK, WS_ECLOSED
 * as conn_respond. */
int conn_respond_start(struct conn *c, int status, const char *extra, size_t extra_len,
                       int head_only);

/* One piece of a body begun with conn_respond_start (an empty piece is
 * nothing). WS_OK, or WS_ECLOSED when no such body is being sent. */
int conn_respond_chunk(struct conn *c, const void *data, size_t len);

/* The body begun with conn_respond_start is complete: the last chunk goes
 * out, then the next request is read (or the connection closes, as after
 * conn_respond). WS_OK or WS_ECLOSED. */
int conn_respond_end(struct conn *c);

/* Server, during on_request: the request's body (read whole before
 * on_request, at most max_body_size bytes, chunked decoded). NULL, 0 when
 * it has none. */
const uint8_t *conn_request_body(const struct conn *c, size_t *len);

/* Is the server connection sending an HTTP body in pieces (between
 * conn_respond_start and conn_respond_end)? */
int conn_is_streaming(const struct conn *c);

/* Client: send the opening handshake for path on host (after the socket is
 * connected; queued until then). extra: header lines or NULL. With
 * c->opt->compression enabled it offers permessage-deflate, and the 101's
 * answer is checked (a bad one fails the handshake). */
int conn_client_start(struct conn *c, const char *host, const char *path,
                      const char *extra, size_t extra_len);

/* Queue a whole message (opcode TEXT or BINARY) or a ping/pong. Returns WS_OK,
 * WS_ECLOSED if the connection is not open, WS_EPROTO for a control payload
 * over 125 bytes or a message while a fragmented one is open (control frames
 * may go between its fragments), WS_EUTF8 for text that is not UTF-8 (unless
 * opt->trust_send_utf8; nothing is sent), WS_EBACKPRESSURE if the queue
 * passed max_backpressure (the connection is then being closed with 1008),
 * WS_ENOMEM. */
int conn_send(struct conn *c, int opcode, const void *data, size_t len);

/* Queue one frame of a message, opcode TEXT or BINARY (RFC 6455 §5.4).
 * With no fragmented message open, fin = 0 starts one (its first frame
 * carries opcode) and fin = 1 sends a whole message; while one is open,
 * each call continues it (a continuation frame) and fin = 1 ends it, and
 * opcode must be the message's (else WS_EPROTO). Text is checked as UTF-8
 * across the frames, so a character may be split between them; unless
 * opt->trust_send_utf8, a chunk that makes the text invalid, or a final one
 * that leaves a character unfinished, returns WS_EUTF8 and is not sent, and
 * the message stays as it was. Otherwise returns as conn_send. */
int conn_send_part(struct conn *c, int opcode, const void *data, size_t len, int fin);

/* Queue a whole text message whose bytes the caller knows are UTF-8, as
 * conn_send without the check: a text message received (and checked on the
 * way in) and sent back as it is. */
int conn_send_checked(struct conn *c, const void *data, size_t len);

/* The opcode of the fragmented message being sent (TEXT or BINARY), or 0. */
static inline int conn_sending(const struct conn *c) { return c->send_op; }

/* The permessage-deflate parameters agreed on c, or NULL when none was. */
const struct ws_pmd_params *conn_compression(const struct conn *c);

/* One connection's compression counts. Without compression the wire bytes
 * are its message bytes and the counts 0. */
struct conn_zstats {
    uint64_t wire_in, wire_out;   /* data frames' payload bytes, as on the wire */
    uint64_t compressions;        /* messages sent compressed */
    uint64_t decompressions;      /* compressed messages received */
};
void conn_zstats(const struct conn *c, struct conn_zstats *out);

/* One message for many connections (broadcast, publish): each gets the
 * frame meant for it, and each kind of frame is made once: the plain one
 * (for connections without compression, and messages under their
 * threshold), and one compressed frame per parameter set for connections
 * whose compressor keeps no context (its output then depends on the message
 * alone: RFC 7692 §7.1.1.1), shared like the plain one. A connection whose
 * compressor keeps context compresses its own copy (and sends the plain
 * frame while it is in the middle of sending a fragmented message, whose
 * compressor is busy). */
#define CONN_FANOUT_SETS 4
struct conn_fanout {
    int opcode;
    const uint8_t *data;
    size_t len;
    uint8_t hdr[WS_MAX_HEADER];   /* the plain frame's header */
    size_t hlen;
    struct ws_block *blk;         /* the plain frame, once a queue must hold it */
    size_t nz;
    struct {
        uint8_t bits, level, mem_level;
        size_t hlen;              /* header bytes at the front of blk */
        struct ws_block *blk;     /* header + compressed payload */
    } z[CONN_FANOUT_SETS];
};

/* Start a fan-out of data[0..len) (opcode TEXT or BINARY); data must stay
 * valid until conn_fanout_end. */
void conn_fanout_start(struct conn_fanout *f, int opcode, const void *data, size_t len);

/* Send the fan-out's message to c (an open server connection). Returns as
 * conn_send_shared. */
int conn_fanout_send(struct conn *c, struct conn_fanout *f);

/* Drop the fan-out's references to its frames. */
void conn_fanout_end(struct conn_fanout *f);

/* The loop's z_streams: how many exist (the result), how many are idle,
 * and how many times one was lent to a context it did not hold (either
 * may be NULL). */
size_t conn_zstreams(size_t *idle, uint64_t *resets);

/* Free the pool's idle z_streams and the compression scratch (at unload). */
void conn_zpool_free(void);

/* Bytes c's compression holds itself between messages (its state and
 * windows; zlib streams are the pool's): 0 without compression. */
size_t conn_compression_held(const struct conn *c);

/* Send one frame whose header the caller encoded, to many connections
 * (broadcast, publish): server role only (no masking). The bytes go
 * straight to the socket when nothing waits before them; what a connection
 * must queue is a reference to one shared block (*blk: NULL until the first
 * connection needs it, then made from hdr + data, with a reference held for
 * the caller, who drops it once done with *blk), except for small frames,
 * which are cheaper copied. While the connection sends a fragmented message
 * the frame is parked and goes out after that message's final frame (it is
 * dropped if the connection closes first). Returns as conn_send. */
int conn_send_shared(struct conn *c, const uint8_t *hdr, size_t hdr_len,
                     const void *data, size_t len, struct ws_block **blk);

/* Queue bytes exactly as given, already framed (and masked, for a client):
 * for tests that must send what a correct endpoint never would. */
int conn_send_raw(struct conn *c, const void *data, size_t len);

/* Start the close handshake with code (0 = no code) and reason. Returns WS_OK
 * or WS_ECLOSED if it was already closing. */
int conn_close(struct conn *c, unsigned code, const char *reason, size_t reason_len);

/* Drop the connection now, without a close handshake (reported as 1006 with
 * reason, and err as the WS_E* code of what ended it). */
void conn_abort(struct conn *c, int err, const char *reason);

/* Stop / restart reading (the owner's own flow control). */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

/* Call hooks->on_drain when the queue empties after the socket pushed back
 * (on = 1), or do not (on = 0, the default). */
void conn_want_drain(struct conn *c, int on);

/* Hand data on frame by frame through hooks->on_fragment (on = 1), or as
 * whole messages through on_message (on = 0, the default). Set it before
 * any frame arrives (the owner's on_request). */
void conn_want_fragments(struct conn *c, int on);

/* Bytes waiting in the send queue, and in the transport (TLS records the
 * socket has not taken yet). */
static inline size_t conn_buffered(const struct conn *c)
{
    return c->out.len + c->segs_len + (c->tp.ops->unsent ? c->tp.ops->unsent(&c->tp) : 0);
}

/* Is it the client side? Is it finishing (closed, or queued to be)? */
int conn_is_client(const struct conn *c);
int conn_is_finishing(const struct conn *c);

/* Queue the connection for finishing before the loop next blocks
 * (idempotent). */
void conn_finish(struct conn *c);

/* Finish every queued connection now (the loop hook does it before the loop
 * blocks; a caller that turned the loop by hand may not want to wait). */
void conn_run_pending(void);

/* Connections alive (accepted or connecting, not finished), groups or not. */
size_t conn_live(void);

/* Free what a live connection holds without telling its owner (no hooks):
 * for a Lua state that is closing. The struct itself stays the owner's. */
void conn_destroy(struct conn *c);

/* Name of a state: "handshake", "open", "closing", "closed". */
const char *conn_state_name(const struct conn *c);

#endif
