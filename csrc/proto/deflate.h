/* SPDX-License-Identifier: MIT
 *
 * deflate.h -- RFC 7692 §7.2 message compression over zlib: raw DEFLATE,
 * each message ended with a sync flush whose 0x00 0x00 0xff 0xff tail is
 * removed when sending (§7.2.1) and put back before inflating (§7.2.2);
 * inflating in bounded output steps against a limit, so a small input that
 * would inflate to gigabytes stops at the limit. A pure codec: no I/O, no
 * libev, no Lua; output goes to a struct ws_buf.
 *
 * Who holds zlib state. A z_stream costs far more than a connection
 * (deflate: 2^(bits+2) + 2^(mem_level+9) bytes plus ~6 KiB; inflate:
 * 2^bits plus ~7 KiB), and most connections are idle most of the time, so
 * no connection owns one. A struct ws_zpool (one per loop) lends streams:
 *   - a struct ws_zctx is one direction of one connection: its agreed
 *     window and whether it keeps context; it holds a stream only while a
 *     message is being compressed or inflated (a message in fragments keeps
 *     it from its first frame to its last);
 *   - without context takeover a stream goes back to the pool at the end
 *     of each message and is reset when next lent: the connection holds
 *     nothing between messages;
 *   - with context takeover the RFC requires only the sliding window (the
 *     last 2^bits bytes of the direction's uncompressed data). The stream
 *     stays "warm" for its last user (the next message of the same
 *     connection continues it, no copy), until the pool lends it to another
 *     context or trims it: then the window is copied into the context
 *     (deflateGetDictionary / inflateGetDictionary: what the window holds,
 *     at most 2^bits bytes, malloc'd to size) and given back to the next
 *     stream it borrows (deflateSetDictionary / inflateSetDictionary after
 *     a reset). An idle connection with context takeover thus holds at
 *     most its windows, and only as much of them as its messages filled.
 *   - the pool keeps at most `keep` idle streams (warm or free) and about
 *     `keep_bytes` of their zlib memory, and frees the least recently used
 *     beyond either.
 *
 * zlib and a window of 8 bits: deflateInit2 refuses windowBits 8 for raw
 * deflate (zlib >= 1.2.9; before, it silently used 9). A compressor whose
 * agreed window is 8 bits runs with 9, which is still correct for the
 * peer: zlib's deflate never emits a distance above MAX_DIST = window size
 * - MIN_LOOKAHEAD = 512 - 262 = 250 bytes, within the 256 a peer keeps for
 * a window of 8 bits. Inflating with 8 is fine (zlib's raw inflate takes
 * 8..15). So server_max_window_bits=8 (and client_max_window_bits=8) are
 * agreed and honoured, not declined.
 *
 * A message may end in a DEFLATE block with BFINAL set (§7.2.3.4 allows
 * it): what follows in that message is ignored, and the next message
 * starts a fresh stream over the same window.
 *
 * A message must end on a block boundary once the tail is put back, or
 * already before it: an empty payload, or one that kept its own 00 00 ff
 * ff tail, is accepted (the tail then starts a stored block that is
 * dropped: the stream restarts on its boundary, same window). Other data
 * (ending inside a block, or after one but not at the end of a byte) is
 * refused (WS_EPROTO), never left to depend on whether the stream stays
 * warm for the next message.
 */
#ifndef LUAWS_DEFLATE_H
#define LUAWS_DEFLATE_H

#include "luaws.h"
#include "proto/buffer.h"

struct ws_zstream;

/* Output step of an inflate: zlib writes at most this much per call. */
#ifndef WS_INFLATE_STEP
#define WS_INFLATE_STEP (64 * 1024)
#endif

/* Streams lent to contexts, shared by all the connections of one loop. */
struct ws_zpool {
    struct ws_zstream *idle;   /* not inside a message: most recently used first */
    struct ws_zstream *idle_tail;   /* the least recently used idle one */
    size_t nidle;              /* how many */
    size_t keep;               /* idle streams kept at most; beyond, the least recent is freed */
    size_t keep_bytes;         /* and at most this much zlib memory in idle streams (about) */
    size_t idle_bytes;         /* zlib memory of the idle streams (zlib's own formula, about) */
    size_t live;               /* streams allocated (idle or lent) */
    uint64_t resets;           /* streams lent to a context they did not hold */
    uint64_t lends;            /* streams lent (a message started), warm or not */
};

#define WS_ZPOOL_INIT(keep, keep_bytes) { NULL, NULL, 0, (keep), (keep_bytes), 0, 0, 0, 0 }

enum ws_zkind {
    WS_Z_DEFLATE = 0,          /* compresses what we send */
    WS_Z_INFLATE = 1           /* inflates what the peer sent */
};

/* One direction of one connection's compression. */
struct ws_zctx {
    struct ws_zstream *zs;     /* the stream holding our message or our context (warm), or NULL */
    uint8_t *window;           /* context takeover: the window while no stream holds it (malloc'd) */
    uint32_t window_len;       /* bytes in window */
    uint8_t kind;              /* enum ws_zkind */
    uint8_t bits;              /* agreed LZ77 window: 8..15 */
    uint8_t no_context;        /* 1: every message starts with an empty window */
    uint8_t level;             /* deflate: 0..9 */
    uint8_t mem_level;         /* deflate: 1..9 */
    uint8_t open;              /* 1 inside a message: zs is lent to us until its end */
    uint8_t ended;             /* inflate: the peer's stream ended (BFINAL) in this message */
    uint8_t fed;               /* inflate: this message gave zlib some bytes (not only its tail) */
    uint8_t lost;              /* our context could not be saved (out of memory): unusable */
};

/* Set up a context (no memory is taken until its first message). */
void ws_zctx_init(struct ws_zctx *x, int kind, int bits, int no_context, int level, int mem_level);

/*
** Compress data[0..len) as the next part of the message being sent (the
** first call starts one) and append the compressed bytes to out; fin ends
** the message: its tail is removed (§7.2.1), and an empty result becomes
** the one byte 0x00 (an empty stored block without its tail). Each call is
** flushed (Z_SYNC_FLUSH), so a fragment's bytes go out with it. WS_OK, or
** WS_ENOMEM (the message is abandoned).
*/
int ws_deflate(struct ws_zpool *p, struct ws_zctx *x, const void *data, size_t len, int fin,
               struct ws_buf *out);

/*
** Inflate data[0..len), the next part of a compressed message (the first
** call starts one), appending what it gives to out; fin: the message ends
** here, the tail is put back (§7.2.2). *total counts the message's
** inflated bytes across calls (the caller zeroes it per message); with max
** > 0 the call fails with WS_ETOOBIG as soon as *total passes max: each
** step of zlib is given room for at most what is still allowed plus one
** byte, so nothing past that is inflated, and out never holds more than
** max + 1 bytes of the message. WS_OK; WS_EPROTO when the data is not
** DEFLATE (or asks for a preset dictionary, or the message does not end
** on a block boundary: see above); WS_ENOMEM. After an error the
** message is abandoned and the context unusable.
*/
int ws_inflate(struct ws_zpool *p, struct ws_zctx *x, const void *data, size_t len, int fin,
               struct ws_buf *out, uint64_t *total, uint64_t max);

/* The context's connection is going: give back its stream, free its window. */
void ws_zctx_free(struct ws_zpool *p, struct ws_zctx *x);

/* Bytes the context holds itself (its window), outside the pool's streams. */
size_t ws_zctx_held(const struct ws_zctx *x);

/* Free idle streams (saving the contexts of warm ones), the least recent
 * first, until at most keep remain and they hold at most keep_bytes.
 * Streams lent out are freed when given back. */
void ws_zpool_trim(struct ws_zpool *p, size_t keep, size_t keep_bytes);

#endif
