/* SPDX-License-Identifier: MIT
 *
 * conn.c -- one WebSocket connection on libev: frames in, the send queue
 * out, the close handshake (RFC 6455 §5, §7), the timers and the deferred
 * finish. The opening handshake is conn_http.c's; bytes go through the
 * connection's transport (transport.c: plain or TLS).
 *
 * What it does not do: parse bytes itself (frame.c does), decide app policy
 * (routes, origins, subprotocols: the owner's on_request), know who owns it
 * (it keeps the counts of its conn_group), or free memory it does not own
 * (the struct belongs to the owner; see conn.h).
 *
 * Closing, in one place (RFC 6455 §7):
 *   - the peer closes: we echo its code (an empty close if it sent none), shut
 *     our write side once the queue is out, and finish at the peer's EOF or
 *     after close_timeout;
 *   - we close (ws:close, shutdown): our close frame goes out; data that
 *     arrives after it is dropped; the peer's close completes it as above;
 *   - the peer breaks the protocol or a limit: we send the close code (1002,
 *     1007, 1009, 1008), stop reading frames and then finish as above. We
 *     never close the socket with unread input while our last bytes are in
 *     flight, because the peer's kernel would answer with a reset that can
 *     destroy them: the write side is shut first (a "lingering close").
 *   - timeouts and socket errors finish at once (1006).
 */
#include "io/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/conn_int.h"
#include "io/loop.h"
#include "proto/deflate.h"
#include "proto/handshake.h"
#include "proto/utf8.h"

/* Reads per readable event before giving other connections their turn. */
#define CONN_READS_PER_EVENT 16

/* Inside the read path small sends wait to go out in one write; a frame at
 * least this large goes straight out with writev instead of being copied
 * into the queue (when nothing waits before it). */
#ifndef CONN_DIRECT_SEND_MIN
#define CONN_DIRECT_SEND_MIN 2048
#endif

/* While a data frame has at least CONN_DIRECT_READ_MIN payload bytes to
 * come, they are read straight into the message buffer (no copy through the
 * shared buffer, and fewer reads), at most CONN_BIG_READ_MAX at a time. */
#ifndef CONN_DIRECT_READ_MIN
#define CONN_DIRECT_READ_MIN 2048
#endif
#ifndef CONN_BIG_READ_MAX
#define CONN_BIG_READ_MAX (256 * 1024)
#endif

/* Messages up to this size are read whole when the last one was as large
 * (see conn_on_readable); larger ones take the direct read above. */
#ifndef CONN_HINT_MAX
#define CONN_HINT_MAX (64 * 1024)
#endif

/* Timer slack: a deadline this close is treated as reached, so a timer that
 * fires a hair early does not re-arm itself for a microsecond. */
#define CONN_TIMER_SLACK 1e-3

/* A shared frame smaller than this is copied into a queue that must hold it
 * rather than referenced: a segment costs more than the bytes. */
#ifndef CONN_SHARE_MIN
#define CONN_SHARE_MIN 512
#endif

/* Segments gathered into one writev. */
#define CONN_SEGS_PER_WRITE 16

/* Idle z_streams the loop's pool keeps (warm for their last connection, or
 * free): at most this many, holding at most this much zlib memory; beyond,
 * the least recently used is freed, its context saved. A warm stream saves
 * its connection's next message a reset and a dictionary (for a compressor
 * with context, zlib hashes the whole window again: measured, that was
 * most of the CPU of 100 busy connections when only 8 MiB stayed warm);
 * 64 MiB keeps about 220 busy connections with context takeover both ways
 * (a compressor of 15 bits and memLevel 8 is 256 KiB, an inflater 40 KiB)
 * warm; node ws holds that per connection for as long as it is open. */
#ifndef CONN_ZPOOL_KEEP
#define CONN_ZPOOL_KEEP 1024
#endif
#ifndef CONN_ZPOOL_BYTES
#define CONN_ZPOOL_BYTES (64u << 20)
#endif

/* The compressed-output scratch buffer is kept up to this size between
 * messages, and freed when a larger message made it grow past it. */
#ifndef CONN_ZBUF_KEEP
#define CONN_ZBUF_KEEP (256 * 1024)
#endif

/*
** permessage-deflate on one connection (RFC 7692), malloc'd at the 101 when
** it was agreed: the parameters, and one context per direction. A context
** holds no zlib state of its own: the loop's pool (zpool) lends a stream
** per message, and a context that keeps context holds at most its window
** between messages (proto/deflate.h).
*/
struct conn_pmd {
    struct ws_pmd_params agreed;
    struct conn_zstats st;        /* wire bytes, (de)compressions: ws:stats() */
    uint32_t threshold;           /* whole messages shorter than this go out plain */
    uint8_t sending_z;            /* the fragmented message being sent is compressed */
    uint32_t utf8;                /* validator state of the compressed text being received */
    uint64_t in_total;            /* its inflated bytes so far */
    struct ws_zctx out;           /* what we send */
    struct ws_zctx in;            /* what the peer sends */
};

/* After this many seconds in which no message was compressed or inflated,
 * the pool's idle streams are freed (warm ones' windows saved first), so a
 * server whose traffic stopped holds no zlib memory beyond its windows. */
#ifndef CONN_ZPOOL_IDLE
#define CONN_ZPOOL_IDLE 10.
#endif

static struct ws_zpool zpool = WS_ZPOOL_INIT(CONN_ZPOOL_KEEP, CONN_ZPOOL_BYTES);
static ev_timer ztimer;           /* every CONN_ZPOOL_IDLE s while streams exist */
static uint8_t ztimer_on;
static uint64_t zlends_seen;      /* zpool.lends at the last tick */
static void conn_ztimer_start(void);
static struct ws_buf zbuf;        /* a message's compressed bytes on their way to the queue */

/* The send queue after c->out: whole frames, each its own bytes or a
 * reference to a block other queues share. [off, len) is still to go. */
struct conn_seg {
    struct conn_seg *next;
    struct ws_block *blk;         /* shared bytes, or NULL: own[] holds them */
    size_t off, len;
    uint8_t own[];
};

static inline const uint8_t *conn_seg_data(const struct conn_seg *g)
{
    return g->blk ? g->blk->data : g->own;
}

/* Free a list of segments. */
static void conn_segs_free(struct conn_seg *g)
{
    while (g) {
        struct conn_seg *next = g->next;
        ws_block_unref(g->blk);
        free(g);
        g = next;
    }
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void conn_finish_now(struct conn *c);

/* Connections alive, and those waiting to be finished (a loop hook runs
 * them before the loop blocks: never inside the event that ended them). */
static size_t live_conns;
static struct conn *pending_head;
static void conn_pending_hook(struct loop_hook *h);
static struct loop_hook pending_hook = { conn_pending_hook, NULL, 0 };

/* Connections a fan-out wrote to this loop turn: their frames wait in the
 * queue and go out in one write each before the loop blocks (conn_turn_hook),
 * however many messages the turn published to them. */
static struct conn *turn_head;
static void conn_turn_hook(struct loop_hook *h);
static struct loop_hook turn_hook = { conn_turn_hook, NULL, 0 };

/*
** Remember the code and reason that on_close will report. The first one set
** wins, so a later EOF does not overwrite the peer's close code.
*/
static void conn_set_reason(struct conn *c, unsigned code, const char *reason, size_t len)
{
    if (c->close_code)
        return;
    c->close_code = code;
    if (len > 123)   /* a close reason's limit (RFC 6455 §5.5) */
        len = 123;
    if (reason && len && (c->close_reason = malloc(len)) != NULL) {
        memcpy(c->close_reason, reason, len);
        c->close_reason_len = (uint8_t)len;
    }
}

/*
** Make the io watcher wait for what the connection needs now: reading unless
** paused or finishing, writing while the queue waits or connect() runs.
*/
static void conn_update_events(struct conn *c)
{
    struct ev_loop *loop = loop_get();
    int ev = 0;
    if (c->state == CONN_CLOSED || (c->flags & CF_PENDING))
        return;
    if (!(c->flags & (CF_PAUSED | CF_PEER_EOF)))
        ev |= EV_READ;
    if ((c->flags & (CF_WANT_WRITE | CF_CONNECTING)) || c->tp.want_write)
        ev |= EV_WRITE;
    if (ev == (c->io.events & (EV_READ | EV_WRITE)) && ev_is_active(&c->io))
        return;
    ev_io_stop(loop, &c->io);
    ev_io_modify(&c->io, ev);
    if (ev)
        ev_io_start(loop, &c->io);
}

/*
** Work out the next deadline of the connection's one timer and arm it (see
** conn.h). Returns nothing: a state without deadlines leaves the timer off.
*/
static void conn_rearm(struct conn *c)
{
    struct ev_loop *loop = loop_get();
    const struct conn_options *o = c->opt;
    ev_tstamp now = ev_now(loop), next = 0;

#define CONSIDER(at) do { ev_tstamp at_ = (at); if (next == 0 || at_ < next) next = at_; } while (0)
    switch (c->state) {
    case CONN_HANDSHAKE:
        if (o->handshake_timeout > 0)
            CONSIDER(c->since + o->handshake_timeout);
        break;
    case CONN_OPEN:
        if (o->idle_timeout > 0)
            CONSIDER(c->last_rx + o->idle_timeout);
        /* While a ping waits for its pong under a timeout, the timeout is
         * the deadline; the next ping goes out only after the pong. */
        if ((c->flags & CF_PING_OUT) && o->keep_alive_timeout > 0)
            CONSIDER(c->ping_at + o->keep_alive_timeout);
        else if (o->keep_alive_interval > 0)
            CONSIDER(c->ping_at + o->keep_alive_interval);
        break;
    case CONN_CLOSING:
        /* In a shutdown its grace period bounds the close instead (server.c). */
        if (o->close_timeout > 0 && !(c->group && c->group->draining))
            CONSIDER(c->since + o->close_timeout);
        break;
    default:
        break;
    }
#undef CONSIDER
    ev_timer_stop(loop, &c->timer);
    if (next > 0) {
        ev_tstamp after = next - now;
        ev_timer_set(&c->timer, after > CONN_TIMER_SLACK ? after : CONN_TIMER_SLACK, 0.);
        ev_timer_start(loop, &c->timer);
    }
}

/* Enter a state and restart its clock. */
void conn_enter(struct conn *c, int state)
{
    c->state = (uint8_t)state;
    c->since = ev_now(loop_get());
    conn_rearm(c);
}

/* ------------------------------------------------------------ set-up */

ssize_t conn_write_direct(struct conn *c, struct iovec *iov, int cnt)
{
    ssize_t n = c->tp.ops->writev(&c->tp, iov, cnt);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    c->flags |= CF_SOCK_ERR;
    conn_abort(c, WS_EIO, strerror(errno));
    return -1;
}

void conn_use_tls(struct conn *c, struct ssl_st *ssl)
{
    transport_tls(&c->tp, ssl, !(c->flags & CF_CLIENT));
}

/* Group upkeep: the newest first, so a walk meets the oldest last. */
static void conn_group_add(struct conn_group *g, struct conn *c)
{
    c->prev = NULL;
    c->next = g->conns;
    if (g->conns)
        g->conns->prev = c;
    g->conns = c;
    g->nconns++;
}

static void conn_group_remove(struct conn_group *g, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (g->conns == c)
        g->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    g->nconns--;
}

void conn_init(struct conn *c, int fd, struct conn_group *group, const struct conn_hooks *hooks,
               const struct conn_options *opt, int client, int connecting)
{
    struct ev_loop *loop = loop_get();
    memset(c, 0, sizeof *c);
    transport_plain(&c->tp, fd);
    c->group = group;
    c->hooks = hooks;
    c->opt = opt;
    c->flags = (client ? CF_CLIENT : 0u) | (connecting ? CF_CONNECTING : 0u);
    ws_reader_init(&c->rd, !client, opt->max_message_size);
    ev_io_init(&c->io, conn_io_cb, fd, 0);
    ev_init(&c->timer, conn_timer_cb);
    c->last_rx = ev_now(loop);
    live_conns++;
    if (group)
        conn_group_add(group, c);
    conn_enter(c, CONN_HANDSHAKE);
    conn_update_events(c);
}

int conn_is_client(const struct conn *c)
{
    return (c->flags & CF_CLIENT) != 0;
}

int conn_is_finishing(const struct conn *c)
{
    return c->state == CONN_CLOSED || (c->flags & CF_PENDING);
}

void conn_want_drain(struct conn *c, int on)
{
    if (on)
        c->flags |= CF_DRAIN_WANTED;
    else
        c->flags &= ~(uint32_t)CF_DRAIN_WANTED;
}

void conn_want_fragments(struct conn *c, int on)
{
    if (on)
        c->flags |= CF_FRAGMENTS;
    else
        c->flags &= ~(uint32_t)CF_FRAGMENTS;
}

size_t conn_live(void)
{
    return live_conns;
}

const char *conn_state_name(const struct conn *c)
{
    static const char *const names[] = { "handshake", "open", "closing", "closed" };
    return names[c->state <= CONN_CLOSED ? c->state : CONN_CLOSED];
}

/* ---------------------------------------------------------------- finishing */

void conn_finish(struct conn *c)
{
    struct ev_loop *loop = loop_get();
    if (c->state == CONN_CLOSED || (c->flags & CF_PENDING))
        return;
    c->flags |= CF_PENDING;
    /* Stop the watchers now: an fd at EOF stays readable, and the finish runs
     * only before the loop next blocks. */
    ev_io_stop(loop, &c->io);
    ev_timer_stop(loop, &c->timer);
    c->pending_next = pending_head;
    pending_head = c;
    loop_hook_add(&pending_hook);
}

void conn_run_pending(void)
{
    /* on_close hooks may finish more connections: take the list until empty */
    while (pending_head) {
        struct conn *c = pending_head;
        pending_head = c->pending_next;
        c->pending_next = NULL;
        conn_finish_now(c);
    }
}

static void conn_pending_hook(struct loop_hook *h)
{
    (void)h;
    conn_run_pending();
}

/* Before the loop blocks: write what this turn's fan-outs queued, one write
 * per connection (a drain hook that publishes again adds to the list, which
 * is taken until empty). */
static void conn_turn_hook(struct loop_hook *h)
{
    (void)h;
    while (turn_head) {
        struct conn *c = turn_head;
        turn_head = c->turn_next;
        c->turn_next = NULL;
        c->flags &= ~(uint32_t)CF_TURN_CORK;
        if (!conn_is_finishing(c))
            conn_flush(c);
    }
}

/* Cork c until the end of this loop turn (see turn_head). */
static void conn_turn_cork(struct conn *c)
{
    if (c->flags & CF_TURN_CORK)
        return;
    c->flags |= CF_TURN_CORK;
    c->turn_next = turn_head;
    turn_head = c;
    loop_hook_add(&turn_hook);
}

void conn_abort(struct conn *c, int err, const char *reason)
{
    conn_set_reason(c, 1006, reason, reason ? strlen(reason) : 0);
    if (!c->close_err)
        c->close_err = err;
    conn_finish(c);
}

/*
** Release what the connection holds in the system and on the loop: watchers,
** TLS session, socket, buffers, its place in the server's list and the live
** count. Returns 1 if on_open had run (so on_close is owed). No hooks.
*/
static int conn_teardown(struct conn *c)
{
    struct ev_loop *loop = loop_get();
    int opened;
    ev_io_stop(loop, &c->io);
    ev_timer_stop(loop, &c->timer);
    if (c->flags & CF_TURN_CORK) {   /* rare: corked and finished in one turn */
        struct conn **pp = &turn_head;
        while (*pp && *pp != c)
            pp = &(*pp)->turn_next;
        if (*pp)
            *pp = c->turn_next;
        c->flags &= ~(uint32_t)CF_TURN_CORK;
    }
    c->tp.ops->finish(&c->tp);   /* the session itself stays until the owner's release */
    if (c->tp.fd >= 0) {
        close(c->tp.fd);
        c->tp.fd = -1;
    }
    opened = c->state != CONN_HANDSHAKE && !(c->flags & CF_HTTP_ONLY);
    c->state = CONN_CLOSED;
    c->flags &= ~(uint32_t)CF_PENDING;
    ws_buf_free(&c->in);
    ws_buf_free(&c->msg);
    ws_buf_free(&c->out);
    conn_http_release(c);
    conn_segs_free(c->segs);
    c->segs = NULL;
    c->segs_tail = NULL;
    c->segs_len = 0;
    conn_segs_free(c->parked);   /* frames that waited for a message never finished */
    c->parked = c->parked_tail = NULL;
    c->parked_len = 0;
    c->send_op = 0;
    if (c->pmd) {
        /* the zlib state goes now; the parameters and counts stay for the
         * close handler (ws.compression, ws:stats()) until the release */
        ws_zctx_free(&zpool, &c->pmd->out);
        ws_zctx_free(&zpool, &c->pmd->in);
    }
    if (c->group) {
        if (opened)
            c->group->nopen--;
        conn_group_remove(c->group, c);
    }
    live_conns--;
    return opened;
}

/*
** The socket is about to close with bytes still queued: a deadline (close_timeout,
** a shutdown's grace) or an abort came first. Say so in the reason, and count a
** frame cut in the middle, which the peer sees as a truncated frame. Not for a
** socket that failed (nothing could be delivered) or raw test bytes.
*/
static void conn_note_unsent(struct conn *c)
{
    char note[160];
    int mid, n;
    if (conn_buffered(c) == 0 || c->state == CONN_HANDSHAKE || (c->flags & (CF_RAW | CF_SOCK_ERR)))
        return;
    mid = c->out.len > 0 ? c->out_http == 0 && c->out_unit_left > 0 : c->segs->off > 0;
    conn_set_reason(c, 1006, NULL, 0);
    n = snprintf(note, sizeof note, "%.*s%s%s%zu bytes unsent", (int)c->close_reason_len,
                 c->close_reason ? c->close_reason : "", c->close_reason_len ? "; " : "",
                 mid ? "a frame cut mid-way, " : "", conn_buffered(c));
    if (n > 0) {
        unsigned code = c->close_code;
        free(c->close_reason);
        c->close_reason = NULL;
        c->close_reason_len = 0;
        c->close_code = 0;
        conn_set_reason(c, code, note, (size_t)n < sizeof note ? (size_t)n : sizeof note - 1);
    }
    if (mid && c->group)
        c->group->stats.frames_cut++;
}

static void conn_finish_now(struct conn *c)
{
    struct transport tp;
    double closing;
    int opened;
    if (c->state == CONN_CLOSED)
        return;
    closing = c->state == CONN_CLOSING ? ev_now(loop_get()) - c->since : -1;
    conn_note_unsent(c);
    opened = conn_teardown(c);
    conn_set_reason(c, 1006, NULL, 0);
    if (c->group && opened)
        metrics_closed(&c->group->stats.m, c->close_code, closing);
    else if (c->group && !c->http_seen && c->close_err == WS_ETLS)
        c->group->stats.m.tls_failed++;   /* a TLS handshake that never came through (or plain HTTP) */
    if ((opened || (c->flags & CF_CLIENT)) && c->hooks->on_close)
        c->hooks->on_close(c, c->close_code, c->close_reason ? c->close_reason : "",
                           c->close_reason_len, c->close_err);
    free(c->close_reason);
    c->close_reason = NULL;
    c->close_reason_len = 0;
    free(c->key);
    c->key = NULL;
    free(c->pmd);
    c->pmd = NULL;
    /* The TLS session outlives the socket until the owner is done (what
     * it negotiated stays readable in on_close and release); the owner may
     * free c, so its transport is taken first. */
    tp = c->tp;
    c->hooks->release(c);   /* last: the owner may free c */
    tp.ops->release(&tp);
}

void conn_destroy(struct conn *c)
{
    if (c->state != CONN_CLOSED) {
        conn_teardown(c);
        c->tp.ops->release(&c->tp);
    }
    free(c->close_reason);
    c->close_reason = NULL;
    free(c->key);
    c->key = NULL;
    free(c->pmd);
    c->pmd = NULL;
}

/* ------------------------------------------------------------------ sending */

/*
** The first n bytes of the send queue went to the socket: drop them, and keep
** track of where the next unwritten byte falls (see conn.h), so that a close
** forced by a deadline can tell whether it cuts a frame. Only a partial write
** walks the frame headers it passed; a drained queue is at a boundary.
*/
void conn_sent(struct conn *c, size_t n)
{
    if (n >= c->out.len) {
        c->out_http = 0;
        c->out_unit_left = 0;
    } else if (!(c->flags & CF_RAW)) {
        const uint8_t *p = ws_buf_head(&c->out), *end = p + c->out.len;
        size_t left = n, k = left < c->out_http ? left : c->out_http;
        c->out_http -= k;
        left -= k;
        p += k;
        k = left < c->out_unit_left ? left : c->out_unit_left;
        c->out_unit_left -= k;
        left -= k;
        p += k;
        while (left > 0) {
            struct ws_frame_header h;
            int hl = ws_frame_header_parse(p, (size_t)(end - p), &h);
            uint64_t size;
            if (hl < 0) {
                c->flags |= CF_RAW;   /* cannot happen with our own frames: stop tracking */
                break;
            }
            size = (uint64_t)hl + h.len;
            if (size > left) {
                c->out_unit_left = (size_t)(size - left);
                break;
            }
            left -= (size_t)size;
            p += size;
        }
    }
    ws_buf_consume(&c->out, n);
}

/*
** Write what the queue holds until the socket pushes back. On a full socket
** wait for EV_WRITE; on an error drop the connection. When the queue empties,
** tell the owner (drain) and, once the close exchange or an HTTP answer is out,
** shut the write side.
*/
/* The socket said it is full: wait for EV_WRITE. */
static void conn_wait_writable(struct conn *c)
{
    if (!(c->flags & CF_WANT_WRITE)) {
        c->flags |= CF_WANT_WRITE;
        conn_update_events(c);
    }
}

/* n bytes of the segments went out: drop the finished ones. */
static void conn_segs_sent(struct conn *c, size_t n)
{
    c->segs_len -= n;
    while (n > 0) {
        struct conn_seg *g = c->segs;
        size_t left = g->len - g->off;
        if (n < left) {
            g->off += n;
            return;
        }
        n -= left;
        c->segs = g->next;
        ws_block_unref(g->blk);
        free(g);
    }
    if (!c->segs)
        c->segs_tail = NULL;
}

/*
** Write the segments (c->out is empty), several per writev where the
** transport can gather. WS_OK once all are out; WS_EAGAIN when the socket
** is full (EV_WRITE asked for); WS_ECLOSED after dropping the connection.
*/
static int conn_flush_segs(struct conn *c)
{
    while (c->segs) {
        ssize_t n;
        if (c->tp.ops->writev) {
            struct iovec iov[CONN_SEGS_PER_WRITE];
            struct conn_seg *g;
            int cnt = 0;
            for (g = c->segs; g && cnt < CONN_SEGS_PER_WRITE; g = g->next, cnt++) {
                iov[cnt].iov_base = (void *)(conn_seg_data(g) + g->off);
                iov[cnt].iov_len = g->len - g->off;
            }
            n = c->tp.ops->writev(&c->tp, iov, cnt);
        } else {
            n = c->tp.ops->write(&c->tp, conn_seg_data(c->segs) + c->segs->off,
                                 c->segs->len - c->segs->off);
        }
        if (n > 0) {
            conn_segs_sent(c, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_wait_writable(c);
            return WS_EAGAIN;
        }
        c->flags |= CF_SOCK_ERR;
        conn_abort(c, WS_EIO, c->tp.ops->error(&c->tp, errno));
        return WS_ECLOSED;
    }
    return WS_OK;
}

/* Put a segment at the tail of the queue. */
static void conn_seg_push(struct conn *c, struct conn_seg *g)
{
    g->next = NULL;
    if (c->segs_tail)
        c->segs_tail->next = g;
    else
        c->segs = g;
    c->segs_tail = g;
    c->segs_len += g->len - g->off;
}

/* A segment owning a copy of hdr + data[from..len) (masked for a client).
 * NULL if out of memory. */
static struct conn_seg *conn_seg_own(const uint8_t *hdr, size_t hlen, const void *data, size_t len,
                                     const uint8_t *mask)
{
    struct conn_seg *g = malloc(sizeof *g + hlen + len);
    if (!g)
        return NULL;
    g->blk = NULL;
    g->off = 0;
    g->len = hlen + len;
    memcpy(g->own, hdr, hlen);
    if (len) {
        memcpy(g->own + hlen, data, len);
        if (mask)
            ws_mask(g->own + hlen, len, mask, 0);
    }
    return g;
}

/* Server, plain TCP, both close frames through and nothing unread: once
 * the queue is out, the socket is closed (conn_flush). */
static int conn_closes_at_once(const struct conn *c)
{
    return !(c->flags & (CF_CLIENT | CF_FAILED | CF_HTTP_ONLY)) && (c->flags & CF_RX_DRAINED) &&
           (c->flags & (CF_CLOSE_SENT | CF_CLOSE_RCVD)) == (CF_CLOSE_SENT | CF_CLOSE_RCVD) &&
           !c->tp.ssl;
}

void conn_flush(struct conn *c)
{
    uint8_t last;
    if (c->state == CONN_CLOSED || (c->flags & (CF_PENDING | CF_CONNECTING)))
        return;
    /* the close frame that ends a conversation: its FIN goes with it */
    last = !(c->flags & CF_SHUT_WR) && !c->segs && conn_closes_at_once(c);
    while (c->out.len > 0) {
        ssize_t n;
        c->tp.last = last;
        n = c->tp.ops->write(&c->tp, ws_buf_head(&c->out), c->out.len);
        c->tp.last = 0;
        if (n > 0) {
            conn_sent(c, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_wait_writable(c);
            return;
        }
        c->flags |= CF_SOCK_ERR;
        /* a TLS failure may surface in a write: the handshake runs in SSL_write too */
        conn_abort(c, transport_is_tls(&c->tp) && errno == EPROTO ? WS_ETLS : WS_EIO,
                   c->tp.ops->error(&c->tp, errno));
        return;
    }
    if (c->segs && conn_flush_segs(c) != WS_OK)
        return;   /* waiting for EV_WRITE, or dropped */
    if (c->tp.ops->unsent && c->tp.ops->unsent(&c->tp) > 0 && c->tp.ops->flush(&c->tp) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            conn_wait_writable(c);
            return;
        }
        c->flags |= CF_SOCK_ERR;
        conn_abort(c, WS_EIO, c->tp.ops->error(&c->tp, errno));
        return;
    }
    if (c->flags & CF_WANT_WRITE) {
        c->flags &= ~(uint32_t)CF_WANT_WRITE;
        conn_update_events(c);
        if ((c->flags & CF_DRAIN_WANTED) && c->state == CONN_OPEN && c->hooks->on_drain)
            c->hooks->on_drain(c);
    }
    if (!(c->flags & CF_SHUT_WR) && conn_buffered(c) == 0 &&
        ((c->flags & (CF_HTTP_ONLY | CF_FAILED)) ||
         (c->flags & (CF_CLOSE_SENT | CF_CLOSE_RCVD)) == (CF_CLOSE_SENT | CF_CLOSE_RCVD) ||
         (c->flags & (CF_CLOSE_SENT | CF_PEER_EOF)) == (CF_CLOSE_SENT | CF_PEER_EOF))) {
        c->flags |= CF_SHUT_WR;
        /* RFC 6455 §7.1.1: the server closes the TCP connection first, at
         * once. With both close frames through and nothing left unread (the
         * last read was short, and plain TCP: no TLS record may follow), it
         * closes the socket now: its FIN follows the close frame, and with
         * no unread input the kernel sends no reset. Otherwise the write
         * side is shut and what still arrives is read until the peer's EOF
         * (the lingering close above). A client waits for the server's FIN
         * (or close_timeout). */
        if (conn_closes_at_once(c)) {
            conn_finish(c);
            return;
        }
        if (!(c->flags & CF_CLIENT) || (c->flags & (CF_FAILED | CF_HTTP_ONLY | CF_PEER_EOF)))
            c->tp.ops->shutdown(&c->tp);
    }
    /* After the peer's EOF nothing more can arrive: once the queue is out,
     * the conversation is over. */
    if ((c->flags & CF_PEER_EOF) && conn_buffered(c) == 0 && c->state == CONN_CLOSING)
        conn_finish(c);
}

/*
** Queue header + payload. Whole frames go straight to the socket with one
** writev when nothing waits before them and we are not inside the read path
** (where sends are batched); only what the socket does not take is copied.
** A client's payload is masked into the queue (RFC 6455 §5.3).
*/
static int conn_queue(struct conn *c, const uint8_t *hdr, size_t hlen, const void *data,
                      size_t len, const uint8_t *mask)
{
    size_t done = 0;
    int err = WS_OK;

    if (c->segs) {   /* frames wait in segments: this one goes after them */
        struct conn_seg *g = conn_seg_own(hdr, hlen, data, len, mask);
        if (!g) {
            conn_abort(c, WS_ENOMEM, "out of memory");
            return WS_ENOMEM;
        }
        conn_seg_push(c, g);
        if (!(c->flags & (CF_CORKED | CF_WANT_WRITE | CF_TURN_CORK)))
            conn_flush(c);
        return WS_OK;
    }
    if (!mask && c->tp.ops->writev && c->out.len == 0 && !(c->flags & (CF_CONNECTING | CF_TURN_CORK)) &&
        (!(c->flags & CF_CORKED) || len >= CONN_DIRECT_SEND_MIN) && c->state != CONN_HANDSHAKE) {
        struct iovec iov[2] = { { (void *)hdr, hlen }, { (void *)data, len } };
        ssize_t n = conn_write_direct(c, iov, len ? 2 : 1);
        if (n < 0)
            return WS_ECLOSED;
        done = (size_t)n;
        if (done == hlen + len)
            return WS_OK;
        if (done > 0)
            c->out_unit_left = hlen + len - done;   /* the queue was empty: it starts mid-frame */
    }
    if (done < hlen)
        err = ws_buf_append(&c->out, hdr + done, hlen - done, 0);
    if (err == WS_OK && len) {
        size_t from = done > hlen ? done - hlen : 0;
        uint8_t *p = ws_buf_reserve(&c->out, len - from, 0, &err);
        if (p) {
            memcpy(p, (const uint8_t *)data + from, len - from);
            if (mask)
                ws_mask(p, len - from, mask, from);
            ws_buf_commit(&c->out, len - from);
        }
    }
    if (err != WS_OK) {
        conn_abort(c, WS_ENOMEM, "out of memory");
        return err;
    }
    /* While the socket is known full, EV_WRITE flushes: a flush here could
     * run the drain hook inside the caller's own send or fan-out. */
    if (!(c->flags & (CF_CORKED | CF_WANT_WRITE | CF_TURN_CORK)))
        conn_flush(c);
    return WS_OK;
}

/*
** Encode one frame (with a fresh masking key for a client) and queue it.
** fin 0: a fragment of a message that more frames continue. rsv1: the
** first frame of a compressed message (RFC 7692 §6).
*/
static int conn_queue_part(struct conn *c, int fin, int opcode, const void *data, size_t len, int rsv1)
{
    uint8_t hdr[WS_MAX_HEADER], key[4];
    const uint8_t *mask = NULL;
    size_t hlen;
    if (c->flags & CF_CLIENT) {
        /* RFC 6455 §5.3: an unpredictable key per frame. rand() is not; the
         * key only has to defeat cache poisoning by scripts, so a cheap
         * generator seeded from OpenSSL is enough. */
        static uint64_t x;
        if (!x) {
            char seed[WS_KEY_LEN + 1];
            ws_client_key(seed);
            memcpy(&x, seed, sizeof x);
            x |= 1;
        }
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        memcpy(key, &x, 4);
        mask = key;
    }
    hlen = ws_frame_header_encode(hdr, fin, opcode, len, mask);
    if (rsv1)
        hdr[0] |= WS_RSV1;
    return conn_queue(c, hdr, hlen, data, len, mask);
}

/* A whole frame: a control frame, or a message in one frame. */
static int conn_queue_frame(struct conn *c, int opcode, const void *data, size_t len)
{
    return conn_queue_part(c, 1, opcode, data, len, 0);
}

/* The scratch buffer, empty, for the next compressed message. */
static struct ws_buf *conn_zbuf(void)
{
    if (zbuf.cap > CONN_ZBUF_KEEP)
        ws_buf_free(&zbuf);
    zbuf.off = 0;
    zbuf.len = 0;
    return &zbuf;
}

/* Count a message sent compressed to c; made: it was compressed for it
 * (not a fan-out's shared frame, which its group counts once). */
static void conn_count_z(struct conn *c, int made)
{
    c->pmd->st.compressions++;
    if (made && c->group)
        c->group->stats.compressions++;
}

/*
** Fail the connection: send close code (unless a close went out already),
** report it, stop reading frames and finish once the peer has gone or
** close_timeout passed.
*/
static void conn_fail(struct conn *c, unsigned code, int err, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;
    conn_set_reason(c, code, reason, rlen);
    if (!c->close_err)
        c->close_err = err;
    if (c->state == CONN_CLOSED || (c->flags & CF_PENDING))
        return;
    c->flags |= CF_FAILED;
    if (c->state == CONN_OPEN && !(c->flags & CF_CLOSE_SENT)) {
        uint8_t p[2 + 123];
        if (rlen > 123)
            rlen = 123;
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        memcpy(p + 2, reason, rlen);
        c->flags |= CF_CLOSE_SENT;
        /* Past the backpressure cap the close frame still goes in: it is
         * small, and close_timeout bounds how long it may wait. */
        conn_queue_frame(c, WS_OP_CLOSE, p, 2 + rlen);
    }
    if (c->state != CONN_CLOSED && !(c->flags & CF_PENDING)) {
        conn_enter(c, CONN_CLOSING);
        conn_flush(c);
    }
}

/*
** Would len more bytes pass max_backpressure? Only when bytes already wait
** (in the queue, or parked behind a fragmented message): a message that
** finds the queue empty is always taken, so one larger than the cap can
** still go to a peer that reads.
*/
static int conn_over_cap(const struct conn *c, size_t len)
{
    size_t queued = conn_buffered(c) + c->parked_len;
    return c->opt->max_backpressure && queued > 0 && queued + len > c->opt->max_backpressure;
}

/* Count len message bytes sent as wire payload bytes; whole: a message's
 * last frame. */
static void conn_count_out(struct conn *c, size_t len, size_t wire, int whole)
{
    c->msgs_out += (unsigned)whole;
    c->bytes_out += len;
    if (c->pmd)
        c->pmd->st.wire_out += wire;
    if (c->group) {
        c->group->stats.msgs_out += (unsigned)whole;
        c->group->stats.bytes_out += len;
        c->group->stats.wire_bytes_out += wire;
    }
}

/*
** The fragmented message just ended: the frames parked behind it join the
** queue, in the order they came.
*/
static void conn_unpark(struct conn *c)
{
    if (!c->parked)
        return;
    if (c->segs_tail)
        c->segs_tail->next = c->parked;
    else
        c->segs = c->parked;
    c->segs_tail = c->parked_tail;
    c->segs_len += c->parked_len;
    c->parked = c->parked_tail = NULL;
    c->parked_len = 0;
    if (!(c->flags & CF_CORKED))
        conn_flush(c);
}

/*
** One data frame of a message, checked and queued (see conn_send_part). The
** UTF-8 check comes before anything that has an effect, so a refused chunk
** leaves the connection and the open message exactly as they were.
*/
static int conn_send_data(struct conn *c, int opcode, const void *data, size_t len, int fin,
                          int checked)
{
    uint32_t utf8 = WS_UTF8_ACCEPT;
    size_t wire = len;
    int rc;
    if (c->state != CONN_OPEN || (c->flags & (CF_CLOSE_SENT | CF_PENDING)))
        return WS_ECLOSED;
    if (opcode == WS_OP_TEXT && !checked && !c->opt->trust_send_utf8) {
        /* RFC 6455 §8.1: a peer fails the connection (1007) on text that
         * is not UTF-8. Refuse it here instead, where the caller can still
         * do something about it. The state carries across fragments. */
        utf8 = ws_utf8_feed(c->send_op ? c->send_utf8 : WS_UTF8_ACCEPT, data, len);
        if (utf8 == WS_UTF8_REJECT || (fin && utf8 != WS_UTF8_ACCEPT))
            return WS_EUTF8;
    }
    if (conn_over_cap(c, len)) {
        /* The peer does not read: stop queueing for it (DESIGN: 1008). */
        conn_fail(c, 1008, WS_EBACKPRESSURE, "backpressure");
        return WS_EBACKPRESSURE;
    }
    if (c->pmd && (c->send_op ? c->pmd->sending_z : (!fin || len >= c->pmd->threshold))) {
        /* RFC 7692 §7.2.1: compressed, RSV1 on the first frame only. A
         * message sent in pieces is compressed whatever its first piece's
         * size (its whole size is not known yet). */
        struct ws_buf *zb = conn_zbuf();
        int first = !c->send_op;
        rc = WS_OK;
        if (ws_deflate(&zpool, &c->pmd->out, data, len, fin, zb) != WS_OK) {
            conn_fail(c, 1011, WS_ENOMEM, "out of memory");
            return WS_ENOMEM;
        }
        rc = conn_queue_part(c, fin, first ? opcode : WS_OP_CONT, ws_buf_head(zb), zb->len, first);
        if (rc != WS_OK)
            return rc;
        if (first)
            conn_count_z(c, 1);
        c->pmd->sending_z = !fin;
        wire = zb->len;
    } else {
        rc = conn_queue_part(c, fin, c->send_op ? WS_OP_CONT : opcode, data, len, 0);
        if (rc != WS_OK)
            return rc;
    }
    conn_count_out(c, len, wire, fin);
    if (!fin) {
        c->send_op = (uint8_t)opcode;
        c->send_utf8 = utf8;
    } else if (c->send_op) {
        c->send_op = 0;
        conn_unpark(c);
    }
    return WS_OK;
}

int conn_send_part(struct conn *c, int opcode, const void *data, size_t len, int fin)
{
    if ((opcode != WS_OP_TEXT && opcode != WS_OP_BINARY) || (c->send_op && opcode != c->send_op))
        return WS_EPROTO;
    return conn_send_data(c, opcode, data, len, fin, 0);
}

int conn_send_checked(struct conn *c, const void *data, size_t len)
{
    if (c->send_op)
        return WS_EPROTO;
    return conn_send_data(c, WS_OP_TEXT, data, len, 1, 1);
}

int conn_send(struct conn *c, int opcode, const void *data, size_t len)
{
    if (opcode <= WS_OP_BINARY) {
        if (c->send_op)
            return WS_EPROTO;   /* a fragmented message is open: conn_send_part ends it */
        return conn_send_data(c, opcode, data, len, 1, 0);
    }
    if (c->state != CONN_OPEN || (c->flags & (CF_CLOSE_SENT | CF_PENDING)))
        return WS_ECLOSED;
    if (len > WS_MAX_CONTROL_PAYLOAD)
        return WS_EPROTO;
    if (conn_over_cap(c, len)) {
        conn_fail(c, 1008, WS_EBACKPRESSURE, "backpressure");
        return WS_EBACKPRESSURE;
    }
    /* RFC 6455 §5.4: control frames may go between a message's fragments */
    return conn_queue_frame(c, opcode, data, len);
}

/*
** A segment for a frame other queues may share: a copy when small, else a
** reference to *blk (made on first use). done: bytes already on the wire.
** NULL after dropping the connection, out of memory.
*/
static struct conn_seg *conn_seg_shared(struct conn *c, const uint8_t *hdr, size_t hdr_len,
                                        const void *data, size_t len, struct ws_block **blk,
                                        size_t done)
{
    struct conn_seg *g = NULL;
    if (hdr_len + len < CONN_SHARE_MIN && done == 0) {
        g = conn_seg_own(hdr, hdr_len, data, len, NULL);
    } else if (*blk || (*blk = ws_block_new(hdr, hdr_len, data, len)) != NULL) {
        if ((g = malloc(sizeof *g)) != NULL) {
            ws_block_ref(*blk);
            g->blk = *blk;
            g->off = done;   /* > 0: this frame is partly on the wire already */
            g->len = hdr_len + len;
        }
    }
    if (!g)
        conn_abort(c, WS_ENOMEM, "out of memory");
    return g;
}

/* May a fan-out queue a frame of len bytes for c? WS_OK, WS_ECLOSED, or
 * WS_EBACKPRESSURE after failing the connection. */
static int conn_shared_ok(struct conn *c, size_t len)
{
    if (c->state != CONN_OPEN || (c->flags & (CF_CLOSE_SENT | CF_PENDING | CF_CLIENT)))
        return WS_ECLOSED;
    if (conn_over_cap(c, len)) {
        conn_fail(c, 1008, WS_EBACKPRESSURE, "backpressure");
        return WS_EBACKPRESSURE;
    }
    return WS_OK;
}

/* conn_send_shared, counting msg_len bytes of message (the frame may carry
 * them compressed). */
static int conn_shared_frame(struct conn *c, const uint8_t *hdr, size_t hdr_len,
                             const void *data, size_t len, struct ws_block **blk, size_t msg_len)
{
    size_t total = hdr_len + len;
    struct conn_seg *g;
    int rc = conn_shared_ok(c, len);
    if (rc != WS_OK)
        return rc;
    if (c->send_op) {
        /* RFC 6455 §5.4: not between the fragments of the message being
         * sent; it follows that message's final frame (conn_unpark). */
        if (!(g = conn_seg_shared(c, hdr, hdr_len, data, len, blk, 0)))
            return WS_ENOMEM;
        g->next = NULL;
        if (c->parked_tail)
            c->parked_tail->next = g;
        else
            c->parked = g;
        c->parked_tail = g;
        c->parked_len += g->len;
        conn_count_out(c, msg_len, len, 1);
        return WS_OK;
    }
    /* A fan-out often sends several messages to each connection in one
     * turn (the publisher's frames arrive several per read): queue them and
     * write each connection once before the loop blocks, instead of one
     * write per message (conn_turn_hook). */
    conn_turn_cork(c);
    if (total < CONN_SHARE_MIN) {   /* small: a copy is cheaper */
        rc = conn_queue(c, hdr, hdr_len, data, len, NULL);
        if (rc == WS_OK)
            conn_count_out(c, msg_len, len, 1);
        return rc;
    }
    if (!(g = conn_seg_shared(c, hdr, hdr_len, data, len, blk, 0)))
        return WS_ENOMEM;
    conn_seg_push(c, g);
    conn_count_out(c, msg_len, len, 1);
    /* No flush here: the turn hook writes (and a flush could run the owner's
     * drain hook in the middle of the caller's fan-out). */
    return WS_OK;
}

int conn_send_shared(struct conn *c, const uint8_t *hdr, size_t hdr_len,
                     const void *data, size_t len, struct ws_block **blk)
{
    return conn_shared_frame(c, hdr, hdr_len, data, len, blk, len);
}

const struct ws_pmd_params *conn_compression(const struct conn *c)
{
    return c->pmd ? &c->pmd->agreed : NULL;
}

void conn_fanout_start(struct conn_fanout *f, int opcode, const void *data, size_t len)
{
    memset(f, 0, sizeof *f);
    f->opcode = opcode;
    f->data = data;
    f->len = len;
    f->hlen = ws_frame_header_encode(f->hdr, 1, opcode, len, NULL);
}

void conn_fanout_end(struct conn_fanout *f)
{
    ws_block_unref(f->blk);
    f->blk = NULL;
    for (size_t i = 0; i < f->nz; i++) {
        ws_block_unref(f->z[i].blk);
        f->z[i].blk = NULL;
    }
    f->nz = 0;
}

/*
** The fan-out's compressed frame for a compressor without context of these
** parameters: compressed the first time a connection needs it (counted
** once, in that connection's group), then shared. NULL when out of memory,
** or when more parameter sets than CONN_FANOUT_SETS meet in one fan-out
** (the caller then compresses for the connection alone).
*/
static struct ws_block *conn_fanout_z(struct conn *c, struct conn_fanout *f, size_t *hlen)
{
    const struct ws_zctx *o = &c->pmd->out;
    struct ws_zctx tmp;
    struct ws_buf *zb;
    uint8_t hdr[WS_MAX_HEADER];
    size_t i, n;
    for (i = 0; i < f->nz; i++)
        if (f->z[i].bits == o->bits && f->z[i].level == o->level && f->z[i].mem_level == o->mem_level) {
            *hlen = f->z[i].hlen;
            return f->z[i].blk;
        }
    if (f->nz == CONN_FANOUT_SETS)
        return NULL;
    ws_zctx_init(&tmp, WS_Z_DEFLATE, o->bits, 1, o->level, o->mem_level);
    zb = conn_zbuf();
    if (ws_deflate(&zpool, &tmp, f->data, f->len, 1, zb) != WS_OK)
        return NULL;
    ws_zctx_free(&zpool, &tmp);
    n = ws_frame_header_encode(hdr, 1, f->opcode, zb->len, NULL);
    hdr[0] |= WS_RSV1;
    i = f->nz;
    if (!(f->z[i].blk = ws_block_new(hdr, n, ws_buf_head(zb), zb->len)))
        return NULL;
    f->z[i].bits = o->bits;
    f->z[i].level = o->level;
    f->z[i].mem_level = o->mem_level;
    f->z[i].hlen = n;
    f->nz++;
    if (c->group)
        c->group->stats.compressions++;   /* once for every connection that shares it */
    *hlen = n;
    return f->z[i].blk;
}

int conn_fanout_send(struct conn *c, struct conn_fanout *f)
{
    struct conn_pmd *z = c->pmd;
    struct ws_block *blk, *own = NULL;
    struct ws_buf *zb;
    uint8_t hdr[WS_MAX_HEADER];
    size_t hlen;
    int rc;
    if (!z || f->len < z->threshold || (c->send_op && !z->out.no_context))
        /* plain: no compression, a short message, or a compressor with
         * context that is busy with the fragmented message being sent (a
         * plain message leaves its context alone, RFC 7692 §6) */
        return conn_shared_frame(c, f->hdr, f->hlen, f->data, f->len, &f->blk, f->len);
    if (z->out.no_context && (blk = conn_fanout_z(c, f, &hlen)) != NULL) {
        if ((rc = conn_shared_frame(c, blk->data, hlen, blk->data + hlen, blk->len - hlen, &blk, f->len)) == WS_OK)
            conn_count_z(c, 0);
        return rc;
    }
    /* its own: a compressor with context (checked first: a refused send
     * must not have moved the context on) */
    if ((rc = conn_shared_ok(c, f->len)) != WS_OK)
        return rc;
    zb = conn_zbuf();
    if (ws_deflate(&zpool, &z->out, f->data, f->len, 1, zb) != WS_OK) {
        conn_fail(c, 1011, WS_ENOMEM, "out of memory");
        return WS_ENOMEM;
    }
    hlen = ws_frame_header_encode(hdr, 1, f->opcode, zb->len, NULL);
    hdr[0] |= WS_RSV1;
    rc = conn_shared_frame(c, hdr, hlen, ws_buf_head(zb), zb->len, &own, f->len);
    ws_block_unref(own);
    if (rc == WS_OK)
        conn_count_z(c, 1);
    return rc;
}

int conn_pmd_start(struct conn *c, const struct ws_pmd_params *a, const struct conn_compression *z)
{
    struct conn_pmd *p = calloc(1, sizeof *p);
    int client = (c->flags & CF_CLIENT) != 0;
    if (!p)
        return WS_ENOMEM;
    p->agreed = *a;
    p->threshold = z->threshold;
    p->utf8 = WS_UTF8_ACCEPT;
    /* Our compressor keeps no context when the peer asked for that, or when
     * we chose not to (always allowed: the peer's window only ever holds
     * more than we refer to). */
    ws_zctx_init(&p->out, WS_Z_DEFLATE, client ? a->client_max_window_bits : a->server_max_window_bits,
                 client ? a->client_no_context_takeover || z->cfg.client_no_context_takeover
                        : a->server_no_context_takeover,
                 z->level, z->mem_level);
    ws_zctx_init(&p->in, WS_Z_INFLATE, client ? a->server_max_window_bits : a->client_max_window_bits,
                 client ? a->server_no_context_takeover : a->client_no_context_takeover, 0, 1);
    free(c->pmd);
    c->pmd = p;
    ws_reader_allow_compressed(&c->rd, 1);
    conn_ztimer_start();
    return WS_OK;
}

/* The pool's timer: free the idle streams after a period without use;
 * stop once none is left (the next agreement starts it again). */
static void conn_ztimer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    if (zpool.lends == zlends_seen) {
        ws_zpool_trim(&zpool, 0, 0);
        ws_buf_free(&zbuf);
    }
    zlends_seen = zpool.lends;
    if (zpool.live == 0) {
        ev_ref(loop);   /* balance the unref at start */
        ev_timer_stop(loop, w);
        ztimer_on = 0;
    }
}

static void conn_ztimer_start(void)
{
    struct ev_loop *loop = loop_get();
    if (ztimer_on)
        return;
    ev_timer_init(&ztimer, conn_ztimer_cb, CONN_ZPOOL_IDLE, CONN_ZPOOL_IDLE);
    ev_timer_start(loop, &ztimer);
    ev_unref(loop);   /* it alone must not keep the loop running */
    ztimer_on = 1;
    zlends_seen = zpool.lends;
}

void conn_zpool_free(void)
{
    if (ztimer_on) {
        struct ev_loop *loop = loop_get();
        ev_ref(loop);
        ev_timer_stop(loop, &ztimer);
        ztimer_on = 0;
    }
    ws_zpool_trim(&zpool, 0, 0);
    ws_buf_free(&zbuf);
}

size_t conn_zstreams(size_t *idle, uint64_t *resets)
{
    if (idle)
        *idle = zpool.nidle;
    if (resets)
        *resets = zpool.resets;
    return zpool.live;
}

void conn_zstats(const struct conn *c, struct conn_zstats *out)
{
    if (c->pmd) {
        *out = c->pmd->st;
        return;
    }
    out->wire_in = c->bytes_in;
    out->wire_out = c->bytes_out;
    out->compressions = out->decompressions = 0;
}

size_t conn_compression_held(const struct conn *c)
{
    return c->pmd ? sizeof *c->pmd + ws_zctx_held(&c->pmd->out) + ws_zctx_held(&c->pmd->in) : 0;
}

int conn_send_raw(struct conn *c, const void *data, size_t len)
{
    if (c->state != CONN_OPEN && c->state != CONN_CLOSING)
        return WS_ECLOSED;
    if (c->flags & CF_PENDING)
        return WS_ECLOSED;
    c->flags |= CF_RAW;   /* not necessarily frames: stop tracking frame bounds */
    return conn_queue(c, data, len, NULL, 0, NULL);
}

int conn_close(struct conn *c, unsigned code, const char *reason, size_t reason_len)
{
    uint8_t p[2 + 123];
    size_t n = 0;
    if (c->state == CONN_CLOSED || (c->flags & CF_PENDING))
        return WS_ECLOSED;
    if (c->state == CONN_HANDSHAKE) {
        conn_abort(c, WS_ECLOSED, "closed before the handshake");
        return WS_OK;
    }
    if (c->flags & CF_CLOSE_SENT)
        return WS_ECLOSED;
    if (code) {
        if (reason_len > 123)
            reason_len = 123;
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        if (reason_len)
            memcpy(p + 2, reason, reason_len);
        n = 2 + reason_len;
    }
    c->flags |= CF_CLOSE_SENT;
    conn_queue_frame(c, WS_OP_CLOSE, p, n);
    if (c->state != CONN_CLOSED && !(c->flags & CF_PENDING)) {
        if (c->state == CONN_OPEN)
            conn_enter(c, CONN_CLOSING);
        conn_flush(c);
    }
    return WS_OK;
}

void conn_pause(struct conn *c)
{
    c->flags |= CF_PAUSED;
    conn_update_events(c);
}

void conn_resume(struct conn *c)
{
    c->flags &= ~(uint32_t)CF_PAUSED;
    conn_update_events(c);
}

/* ------------------------------------------------------------------ reading */

/* A whole message: count it and hand it to the owner. */
static void conn_deliver(struct conn *c, int opcode, const uint8_t *data, size_t len)
{
    c->read_hint = len < CONN_BIG_READ_MAX ? (uint32_t)len : CONN_BIG_READ_MAX;
    c->msgs_in++;
    c->bytes_in += len;
    if (c->group) {
        c->group->stats.msgs_in++;
        c->group->stats.bytes_in += len;
    }
    if (c->hooks->on_message)
        c->hooks->on_message(c, opcode, data, len);
}

/*
** Frame by frame (CF_FRAGMENTS): hand on each data frame once its payload is
** complete. A frame that came whole in one read is handed on where it lies;
** the pieces of one split across reads gather in c->msg, which therefore
** holds at most one frame and is freed after it. Returns WS_OK, or an error
** after failing the connection.
*/
static int conn_frame_part(struct conn *c, const struct ws_event *ev)
{
    const uint8_t *data = ev->data;
    size_t len = ev->len;
    if (!ev->frame_end || c->msg.len > 0) {
        if (c->msg.data && ev->data == ws_buf_head(&c->msg) + c->msg.len) {
            ws_buf_commit(&c->msg, ev->len);   /* read in place (conn_on_readable) */
        } else if (ws_buf_append(&c->msg, ev->data, ev->len, 0) != WS_OK) {
            conn_fail(c, 1011, WS_ENOMEM, "out of memory");
            return WS_ENOMEM;
        }
        if (!ev->frame_end)
            return WS_OK;
        data = ws_buf_head(&c->msg);
        len = c->msg.len;
    }
    c->read_hint = len < CONN_BIG_READ_MAX ? (uint32_t)len : CONN_BIG_READ_MAX;
    c->bytes_in += len;
    c->msgs_in += (unsigned)ev->fin;
    if (c->group) {
        c->group->stats.bytes_in += len;
        c->group->stats.msgs_in += (unsigned)ev->fin;
    }
    if (c->hooks->on_fragment)
        c->hooks->on_fragment(c, ev->opcode, data, len, ev->fin);
    ws_buf_free(&c->msg);
    return WS_OK;
}

/*
** A chunk of a compressed message (RFC 7692 §7.2.2): inflate it into c->msg
** as it arrives, against max_message_size (a bomb stops at the limit, 1009,
** with nothing inflated past it), checking the text as UTF-8 as it appears
** (1007, failing fast); data that is not DEFLATE is 1002. The whole message
** is handed on at its end, or, frame by frame (CF_FRAGMENTS), what each
** frame inflated to once the frame is complete (an empty one only when it
** ends the message). Returns WS_OK, or an error after failing the
** connection.
*/
static int conn_inflate(struct conn *c, const struct ws_event *ev)
{
    struct conn_pmd *z = c->pmd;
    size_t before = c->msg.len;
    int rc = z ? ws_inflate(&zpool, &z->in, ev->data, ev->len, ev->fin, &c->msg, &z->in_total,
                            c->opt->max_message_size)
               : WS_EPROTO;   /* the reader lets RSV1 through only once it was agreed */
    if (rc == WS_EPROTO && ev->opcode == WS_OP_TEXT &&
        ws_utf8_feed(z->utf8, ws_buf_head(&c->msg) + before, c->msg.len - before) == WS_UTF8_REJECT)
        rc = WS_EUTF8;   /* what did inflate was no text: that is the first fault */
    if (rc != WS_OK) {
        if (rc == WS_ETOOBIG)
            conn_fail(c, 1009, WS_ETOOBIG, "message too big");
        else if (rc == WS_EPROTO)
            conn_fail(c, 1002, WS_EPROTO, "invalid compressed data");
        else if (rc == WS_EUTF8)
            conn_fail(c, 1007, WS_EUTF8, "invalid utf8");
        else
            conn_fail(c, 1011, WS_ENOMEM, "out of memory");
        return rc;
    }
    if (ev->opcode == WS_OP_TEXT) {   /* RFC 6455 §8.1 on the inflated text */
        z->utf8 = ws_utf8_feed(z->utf8, ws_buf_head(&c->msg) + before, c->msg.len - before);
        if (z->utf8 == WS_UTF8_REJECT || (ev->fin && z->utf8 != WS_UTF8_ACCEPT)) {
            conn_fail(c, 1007, WS_EUTF8, "invalid utf8");
            return WS_EUTF8;
        }
    }
    if (ev->fin) {
        z->in_total = 0;
        z->utf8 = WS_UTF8_ACCEPT;
        z->st.decompressions++;
        if (c->group)
            c->group->stats.decompressions++;
    }
    if (c->flags & CF_FRAGMENTS) {
        struct ws_event part = *ev;
        if (!ev->frame_end || (c->msg.len == 0 && !ev->fin))
            return WS_OK;   /* gather the frame's output; nothing to say for an empty frame */
        part.data = c->msg.len ? ws_buf_head(&c->msg) : (uint8_t *)"";
        part.len = c->msg.len;
        c->read_hint = 0;
        c->bytes_in += part.len;
        c->msgs_in += (unsigned)ev->fin;
        if (c->group) {
            c->group->stats.bytes_in += part.len;
            c->group->stats.msgs_in += (unsigned)ev->fin;
        }
        if (c->hooks->on_fragment)
            c->hooks->on_fragment(c, ev->opcode, part.data, part.len, ev->fin);
        ws_buf_free(&c->msg);
        return WS_OK;
    }
    if (ev->fin) {
        conn_deliver(c, ev->opcode, c->msg.len ? ws_buf_head(&c->msg) : (const uint8_t *)"", c->msg.len);
        ws_buf_free(&c->msg);
    }
    return WS_OK;
}

/*
** The peer's close frame (already validated by the reader). Answer it with
** the same code and reason (RFC 6455 §5.5.1: an endpoint "typically echos the
** status code it received"; echoing the reason too is what browsers show as
** CloseEvent.reason, as ASP.NET and node's ws do), or an empty close if it had
** no code, unless our close went out first.
*/
static void conn_on_close_frame(struct conn *c, const struct ws_event *ev)
{
    conn_set_reason(c, ev->close_code, (const char *)ev->data, ev->len);
    c->flags |= CF_CLOSE_RCVD;
    if (!(c->flags & CF_CLOSE_SENT)) {
        uint8_t p[WS_MAX_CONTROL_PAYLOAD];
        size_t n = 0;
        if (ev->close_code != 1005) {
            p[0] = (uint8_t)(ev->close_code >> 8);
            p[1] = (uint8_t)ev->close_code;
            n = 2 + ev->len;   /* the reader bounds the reason to 123 bytes */
            memcpy(p + 2, ev->data, ev->len);
        }
        c->flags |= CF_CLOSE_SENT;
        conn_queue_frame(c, WS_OP_CLOSE, p, n);
    }
    if (c->state == CONN_CLOSED || (c->flags & CF_PENDING))
        return;
    if (c->state == CONN_OPEN)
        conn_enter(c, CONN_CLOSING);
    conn_flush(c);
}

/*
** Frames from buf[0..n): run the reader and act on each event. Data after our
** close frame is dropped (RFC 6455 §5.5.1); nothing is read after the peer's
** close or an error.
*/
void conn_frames(struct conn *c, uint8_t *buf, size_t n)
{
    struct ws_event ev;
    while (!(c->flags & (CF_CLOSE_RCVD | CF_FAILED | CF_PENDING))) {
        size_t used = ws_reader_feed(&c->rd, buf, n, &ev);
        buf += used;
        n -= used;
        switch (ev.type) {
        case WS_EV_NONE:
            if (n == 0)
                return;
            continue;
        case WS_EV_DATA:
            if (c->flags & CF_CLOSE_SENT)
                break;
            if (c->pmd)
                c->pmd->st.wire_in += ev.len;
            if (c->group)
                c->group->stats.wire_bytes_in += ev.len;
            if (ev.compressed) {
                if (conn_inflate(c, &ev) != WS_OK)
                    return;
            } else if (c->flags & CF_FRAGMENTS) {
                if (conn_frame_part(c, &ev) != WS_OK)
                    return;
            } else if (ev.fin && c->msg.len == 0) {
                conn_deliver(c, ev.opcode, ev.data, ev.len);
            } else {
                if (c->msg.data && ev.data == ws_buf_head(&c->msg) + c->msg.len) {
                    ws_buf_commit(&c->msg, ev.len);   /* read in place (conn_on_readable) */
                } else if (ws_buf_append(&c->msg, ev.data, ev.len, 0) != WS_OK) {
                    conn_fail(c, 1011, WS_ENOMEM, "out of memory");
                    return;
                }
                if (ev.fin) {
                    conn_deliver(c, ev.opcode, ws_buf_head(&c->msg), c->msg.len);
                    ws_buf_free(&c->msg);
                }
            }
            break;
        case WS_EV_CONTROL:
            if (ev.opcode == WS_OP_CLOSE) {
                conn_on_close_frame(c, &ev);
                return;
            }
            if (ev.opcode == WS_OP_PING && !(c->flags & CF_CLOSE_SENT)) {
                /* A ping flood from a peer that reads no pongs meets the
                 * same cap as any other queue growth. */
                if (c->opt->max_backpressure &&
                    conn_buffered(c) + ev.len > c->opt->max_backpressure) {
                    conn_fail(c, 1008, WS_EBACKPRESSURE, "backpressure");
                    return;
                }
                conn_queue_frame(c, WS_OP_PONG, ev.data, ev.len);
            }
            if (ev.opcode == WS_OP_PONG && (c->flags & CF_PING_OUT)) {
                /* the awaited pong: the next deadline is the next ping */
                c->flags &= ~(uint32_t)CF_PING_OUT;
                conn_rearm(c);
            }
            if (c->hooks->on_control && !(c->flags & CF_PENDING))
                c->hooks->on_control(c, ev.opcode, ev.data, ev.len);
            break;
        case WS_EV_ERROR:
            conn_fail(c, ev.close_code,
                      ev.close_code == 1007 ? WS_EUTF8 : ev.close_code == 1009 ? WS_ETOOBIG : WS_EPROTO,
                      ev.reason);
            return;
        }
        if (n == 0 && ev.type == WS_EV_NONE)
            return;
    }
}

/*
** Bytes arrived: route them by state. During the handshake they gather in
** c->in, bounded by the head limit plus one read (a longer head is a 431).
*/
static void conn_input(struct conn *c, uint8_t *buf, size_t n)
{
    switch (c->state) {
    case CONN_HANDSHAKE: {
        /* A head that came whole in one read is parsed where it landed, in
         * the shared buffer; only a partial one is kept in c->in. */
        uint8_t *data = buf;
        size_t len = n;
        int r;
        if (c->in.len > 0) {
            if (ws_buf_append(&c->in, buf, n, 0) != WS_OK) {
                conn_abort(c, WS_ENOMEM, "out of memory");
                return;
            }
            data = ws_buf_head(&c->in);
            len = c->in.len;
        }
        if (!c->head) {
            conn_abort(c, WS_EHANDSHAKE, "no handshake stage");
            return;
        }
        r = c->head(c, data, len);
        if (r != WS_PARTIAL)
            ws_buf_free(&c->in);
        else if (c->in.len == 0 && ws_buf_append(&c->in, buf, n, 0) != WS_OK)
            conn_abort(c, WS_ENOMEM, "out of memory");
        break;
    }
    case CONN_OPEN:
    case CONN_CLOSING:
        if (c->flags & (CF_HTTP_ONLY | CF_FAILED))
            return;   /* lingering: read and drop until the peer's EOF */
        conn_frames(c, buf, n);
        break;
    default:
        break;
    }
}

/*
** EOF from the peer: it shut its write side, with or without a close frame
** first. That is a half-close, not a vanished peer (it may well read on), so
** nothing queued is thrown away: reading stops, the queue goes out, then our
** close frame if none was sent (1000: the conversation is over), then the
** socket closes (conn_flush). on_close gets the peer's close code if one
** came, else 1006. close_timeout bounds the wait, as in any close.
*/
static void conn_on_eof(struct conn *c)
{
    c->flags |= CF_PEER_EOF;
    if (c->state == CONN_HANDSHAKE) {
        if (c->flags & CF_CLIENT) {
            conn_abort(c, WS_EHANDSHAKE, "handshake: connection closed");
        } else if (conn_buffered(c) > 0) {
            /* HTTP answers are still going out (keep-alive): send them, then close */
            c->flags |= CF_HTTP_ONLY;
            conn_enter(c, CONN_CLOSING);
            conn_update_events(c);
            conn_flush(c);
        } else {
            conn_abort(c, WS_ECLOSED, NULL);
        }
        return;
    }
    conn_set_reason(c, 1006, NULL, 0);
    if (!c->close_err && !(c->flags & CF_CLOSE_RCVD))
        c->close_err = WS_ECLOSED;   /* gone without a close frame */
    if (c->state == CONN_OPEN && !(c->flags & CF_CLOSE_SENT)) {
        static const uint8_t normal[] = { 0x03, 0xE8 };
        c->flags |= CF_CLOSE_SENT;
        conn_queue_frame(c, WS_OP_CLOSE, normal, sizeof normal);
        if (c->state == CONN_CLOSED || (c->flags & CF_PENDING))
            return;
    }
    if (c->state == CONN_OPEN)
        conn_enter(c, CONN_CLOSING);
    conn_update_events(c);   /* no more EV_READ: the socket stays readable at EOF */
    conn_flush(c);
}

/*
** A TLS server's peer spoke something else (transport.h). Plain HTTP gets a
** plain-text 400 that says what happened, as nginx answers, then a
** lingering close: the write side is shut once it is out and what arrives
** is read and dropped until the peer's EOF or close_timeout, so that no
** reset destroys the answer. Anything else is dropped at once. Neither
** ever opened: no on_close; on_refused hears of the 400.
*/
static void conn_not_tls(struct conn *c)
{
    static const char body[] = "400 Bad Request: The plain HTTP request was sent to HTTPS port\n";
    char head[160];
    int n;
    if (c->tp.not_tls != TRANSPORT_PLAIN_HTTP || c->state != CONN_HANDSHAKE) {
        transport_discard_input(&c->tp, TRANSPORT_DISCARD_MAX);   /* a FIN, not a reset */
        conn_abort(c, WS_ETLS, "tls: the peer does not speak TLS");
        return;
    }
    n = snprintf(head, sizeof head, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n", sizeof body - 1);
    if (ws_buf_append(&c->out, head, (size_t)n, 0) != WS_OK ||
        ws_buf_append(&c->out, body, sizeof body - 1, 0) != WS_OK) {
        conn_abort(c, WS_ENOMEM, "out of memory");
        return;
    }
    c->out_http += (size_t)n + sizeof body - 1;
    {
        static const char why[] = "tls: plain HTTP sent to the TLS port";
        conn_set_reason(c, 1006, why, sizeof why - 1);
    }
    c->close_err = WS_ETLS;
    if (c->group) {
        c->group->stats.rejected++;
        metrics_refused(&c->group->stats.m, 400);
    }
    c->flags |= CF_HTTP_ONLY;
    conn_enter(c, CONN_CLOSING);
    conn_update_events(c);
    if (c->hooks->on_refused)
        c->hooks->on_refused(c, NULL, 400);
}

/*
** Read while the socket has data (bounded, for fairness), with sends batched:
** everything the handlers queue while this read is processed goes out in one
** write afterwards.
*/
static void conn_on_readable(struct conn *c)
{
    struct ev_loop *loop = loop_get();
    size_t cap = c->opt->receive_buffer_size;
    uint8_t *buf;
    int i;
    /* A peer whose last message was larger than the read step likely sends
     * another such: read it whole (the buffer is shared, so this costs no
     * memory per connection), and it is handed to Lua without a copy. */
    if (c->read_hint + WS_MAX_HEADER > cap && c->read_hint <= CONN_HINT_MAX)
        cap = c->read_hint + WS_MAX_HEADER;
    buf = loop_rbuf(cap);
    if (!buf) {
        conn_abort(c, WS_ENOMEM, "out of memory");
        return;
    }
    c->flags |= CF_CORKED;
    for (i = 0; i < CONN_READS_PER_EVENT; i++) {
        uint8_t *dst = buf;
        size_t want = cap;
        ssize_t n;
        int into_msg = 0;
        /* the rest of a large data frame: read it where it will stay */
        if (c->state == CONN_OPEN && c->rd.remaining >= CONN_DIRECT_READ_MIN &&
            !ws_reader_compressed(&c->rd) &&   /* c->msg holds what it inflates to */
            !(c->flags & (CF_CLOSE_SENT | CF_CLOSE_RCVD | CF_FAILED))) {
            int err = WS_OK;
            want = c->rd.remaining < CONN_BIG_READ_MAX ? (size_t)c->rd.remaining : CONN_BIG_READ_MAX;
            dst = ws_buf_reserve(&c->msg, want, 0, &err);
            if (!dst) {
                conn_fail(c, 1011, WS_ENOMEM, "out of memory");
                break;
            }
            into_msg = 1;
        }
        n = c->tp.ops->read(&c->tp, dst, want);
        if (n > 0) {
            c->last_rx = ev_now(loop);
            if ((size_t)n < want && c->tp.ops->pending(&c->tp) == 0)
                c->flags |= CF_RX_DRAINED;
            else
                c->flags &= ~(uint32_t)CF_RX_DRAINED;
            if (into_msg) {
                conn_frames(c, dst, (size_t)n);
                if (c->msg.len == 0)
                    ws_buf_free(&c->msg);   /* delivered in place */
            } else {
                conn_input(c, buf, (size_t)n);
            }
            if (c->flags & (CF_PENDING | CF_PAUSED | CF_PEER_EOF))
                break;
            /* A short plain read drained the socket. OpenSSL may hold
             * decrypted bytes that the socket no longer signals. */
            if (c->flags & CF_RX_DRAINED)
                break;
            continue;
        }
        if (n == 0) {
            conn_on_eof(c);
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EPROTONOSUPPORT && c->tp.not_tls) {
            conn_not_tls(c);
            break;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            c->flags |= CF_SOCK_ERR;
            conn_abort(c, c->tp.ssl && errno == EPROTO ? WS_ETLS : WS_EIO,
                       c->tp.ops->error(&c->tp, errno));
        }
        break;
    }
    /* Out of turns with TLS bytes still buffered: come back next iteration. */
    if (i == CONN_READS_PER_EVENT && c->tp.ops->pending(&c->tp) > 0 &&
        !(c->flags & (CF_PENDING | CF_PAUSED)))
        ev_feed_event(loop, &c->io, EV_READ);
    if (c->tp.want_write)
        conn_update_events(c);
    c->flags &= ~(uint32_t)CF_CORKED;
    conn_flush(c);
    c->flags &= ~(uint32_t)CF_RX_DRAINED;   /* true only until the loop runs again */
}

/* Client: the non-blocking connect() finished, for good or ill. */
static void conn_on_connected(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->tp.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        c->flags |= CF_SOCK_ERR;
        conn_abort(c, err == ECONNREFUSED ? WS_EREFUSED : WS_EIO,
                   err == ECONNREFUSED ? "refused" : strerror(err));
        return;
    }
    c->flags &= ~(uint32_t)CF_CONNECTING;
    conn_update_events(c);
    conn_flush(c);
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = CONN_OF(w, io);
    (void)loop;
    if ((revents & EV_WRITE) && (c->flags & CF_CONNECTING)) {
        conn_on_connected(c);
        return;
    }
    if ((revents & EV_READ) || ((revents & EV_WRITE) && c->tp.want_write))
        conn_on_readable(c);
    if ((revents & EV_WRITE) && !(c->flags & CF_PENDING))
        conn_flush(c);
}

/* ------------------------------------------------------------------- timers */

/*
** A timeout: report 1006 "timeout" and tell the peer (1001) in case it still
** listens. Once the queue and that close frame are in the kernel's hands the
** socket closes at once (the kernel still delivers them; nothing unread is
** waiting, so no reset destroys them), without waiting for an answer. A peer
** that does not read what is queued gets close_timeout, as in any close.
*/
static void conn_timeout(struct conn *c)
{
    conn_set_reason(c, 1006, "timeout", 7);
    if (!c->close_err)
        c->close_err = WS_ETIMEOUT;
    if (c->state == CONN_OPEN && !(c->flags & CF_CLOSE_SENT)) {
        static const uint8_t going_away[] = { 0x03, 0xE9, 't', 'i', 'm', 'e', 'o', 'u', 't' };
        c->flags |= CF_CLOSE_SENT;
        conn_queue_frame(c, WS_OP_CLOSE, going_away, sizeof going_away);
    }
    if (c->state == CONN_CLOSED || (c->flags & CF_PENDING))
        return;
    c->flags |= CF_FAILED;   /* linger: what arrives now is read and dropped */
    conn_enter(c, CONN_CLOSING);
    conn_flush(c);
    if (conn_buffered(c) == 0)
        conn_finish(c);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = CONN_OF(w, timer);
    const struct conn_options *o = c->opt;
    ev_tstamp now = ev_now(loop) + CONN_TIMER_SLACK;
    (void)revents;
    switch (c->state) {
    case CONN_HANDSHAKE:
        if (o->handshake_timeout > 0 && now >= c->since + o->handshake_timeout) {
            conn_abort(c, WS_ETIMEOUT, "timeout");
            return;
        }
        break;
    case CONN_OPEN:
        if ((o->idle_timeout > 0 && now >= c->last_rx + o->idle_timeout) ||
            ((c->flags & CF_PING_OUT) && o->keep_alive_timeout > 0 &&
             now >= c->ping_at + o->keep_alive_timeout)) {
            conn_timeout(c);
            return;
        }
        if (o->keep_alive_interval > 0 && now >= c->ping_at + o->keep_alive_interval &&
            !((c->flags & CF_PING_OUT) && o->keep_alive_timeout > 0)) {
            c->ping_at = ev_now(loop);
            c->flags |= CF_PING_OUT;
            conn_queue_frame(c, WS_OP_PING, NULL, 0);
            if (c->flags & CF_PENDING)
                return;
        }
        break;
    case CONN_CLOSING:
        if (o->close_timeout > 0 && !(c->group && c->group->draining) &&
            now >= c->since + o->close_timeout) {
            if (!c->close_err && !(c->flags & CF_CLOSE_RCVD))
                c->close_err = WS_ETIMEOUT;   /* the peer never answered */
            conn_finish(c);
            return;
        }
        break;
    default:
        return;
    }
    conn_rearm(c);
}
