/* SPDX-License-Identifier: MIT
 *
 * deflate.c -- RFC 7692 §7.2 compression and decompression of messages
 * over zlib, with z_streams pooled across connections (see deflate.h for
 * who holds what, and why a window of 8 bits compresses with 9).
 *
 * Design criteria:
 *   - a stream is lent for one message at a time; a context with context
 *     takeover gets back exactly the window it had, whichever stream it
 *     borrows (the window is the whole of DEFLATE's memory between two
 *     messages: each message ends with a sync flush, on a block boundary,
 *     so no Huffman or bit state crosses it);
 *   - inflate output is bounded per zlib call by what the limit still
 *     allows, so the limit is met before the bytes exist, not after;
 *   - every zlib failure is a result code, never an abort.
 *
 * It does not decide when to compress (threshold, fan-out sharing), frame
 * anything, or count messages: the connection does (io/conn.c).
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "proto/deflate.h"

struct ws_zstream {
    z_stream z;
    struct ws_zstream *next, *prev;   /* in the pool's idle list (doubly linked: a warm
                                       * stream leaves it in O(1) at every message) */
    struct ws_zctx *owner;     /* whose context it holds (warm or lent), or NULL */
    uint8_t kind;              /* enum ws_zkind */
    uint8_t zbits;             /* the windowBits zlib runs with (deflate: 9 for an agreed 8) */
    uint8_t level, mem_level;  /* deflate */
    uint32_t bytes;            /* its zlib memory, about (zs_bytes) */
};

static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };   /* §7.2.1 */

/* The windowBits zlib runs with for x (see deflate.h: raw deflate has no 8). */
static int zlib_bits(const struct ws_zctx *x)
{
    return x->kind == WS_Z_DEFLATE && x->bits < 9 ? 9 : x->bits;
}

void ws_zctx_init(struct ws_zctx *x, int kind, int bits, int no_context, int level, int mem_level)
{
    memset(x, 0, sizeof *x);
    x->kind = (uint8_t)kind;
    x->bits = (uint8_t)(bits < 8 ? 8 : bits > 15 ? 15 : bits);
    x->no_context = no_context ? 1 : 0;
    x->level = (uint8_t)(level < 0 ? 0 : level > 9 ? 9 : level);
    x->mem_level = (uint8_t)(mem_level < 1 ? 1 : mem_level > 9 ? 9 : mem_level);
}

size_t ws_zctx_held(const struct ws_zctx *x)
{
    return x->window_len;
}

/* What zlib allocates for a stream (zconf.h's formulas) plus the z_stream. */
static uint32_t zs_bytes(int kind, int zbits, int mem_level)
{
    if (kind == WS_Z_DEFLATE)
        return (1u << (zbits + 2)) + (1u << (mem_level + 9)) + 6 * 1024 + (uint32_t)sizeof(struct ws_zstream);
    return (1u << zbits) + 7 * 1024 + (uint32_t)sizeof(struct ws_zstream);
}

/*
** Keep the len bytes at dict as x's window, in a block of exactly that
** size. 0, or -1 out of memory (the old window is gone either way).
*/
static int keep_window(struct ws_zctx *x, const uint8_t *dict, size_t len)
{
    uint8_t *w;
    if (len == 0) {
        free(x->window);
        x->window = NULL;
        x->window_len = 0;
        return 0;
    }
    if (len != x->window_len || !x->window) {
        if (!(w = realloc(x->window, len))) {
            free(x->window);
            x->window = NULL;
            x->window_len = 0;
            return -1;
        }
        x->window = w;
    }
    memcpy(x->window, dict, len);
    x->window_len = (uint32_t)len;
    return 0;
}

static void zs_end(struct ws_zstream *zs)
{
    if (zs->kind == WS_Z_DEFLATE)
        deflateEnd(&zs->z);
    else
        inflateEnd(&zs->z);
    free(zs);
}

/*
** Copy the window of a warm stream into its owner's context and let go of
** it. The window is what the stream holds, at most 2^bits bytes: for a
** compressor of 8 bits that runs with 9, the last 256 of zlib's up to 512
** (its distances stop at 250 anyway). Out of memory, a compressor simply
** forgets (the peer's window only ever holds more than we refer to); an
** inflater cannot, and is marked lost.
*/
static void zs_disown(struct ws_zstream *zs)
{
    static uint8_t dict[1u << 15];   /* one loop, one thread: a scratch, not state */
    struct ws_zctx *o = zs->owner;
    uInt len = 0;
    size_t cap;
    int rc;
    if (!o)
        return;
    zs->owner = NULL;
    o->zs = NULL;
    if (o->no_context) {
        keep_window(o, NULL, 0);
        return;
    }
    cap = (size_t)1 << o->bits;
    if (o->kind == WS_Z_DEFLATE)
        rc = deflateGetDictionary(&zs->z, dict, &len);
    else
        rc = inflateGetDictionary(&zs->z, dict, &len);
    if (rc != Z_OK) {
        len = 0;
        if (o->kind == WS_Z_INFLATE)
            o->lost = 1;
    }
    if (len > cap)
        rc = keep_window(o, dict + len - cap, cap);
    else
        rc = keep_window(o, dict, len);
    if (rc != 0 && o->kind == WS_Z_INFLATE)
        o->lost = 1;
}

/* Can zs serve x? Deflate streams keep their window, level and memory
 * from deflateInit2; an inflater takes any window at its reset. */
static int zs_fits(const struct ws_zstream *zs, const struct ws_zctx *x)
{
    if (zs->kind != x->kind)
        return 0;
    if (x->kind == WS_Z_INFLATE)
        return 1;
    return zs->zbits == zlib_bits(x) && zs->level == x->level && zs->mem_level == x->mem_level;
}

static struct ws_zstream *zs_new(struct ws_zpool *p, const struct ws_zctx *x)
{
    struct ws_zstream *zs = calloc(1, sizeof *zs);
    int rc;
    if (!zs)
        return NULL;
    zs->kind = x->kind;
    zs->zbits = (uint8_t)zlib_bits(x);
    zs->level = x->level;
    zs->mem_level = x->mem_level;
    zs->bytes = zs_bytes(x->kind, x->kind == WS_Z_DEFLATE ? zs->zbits : 15, x->mem_level);
    if (x->kind == WS_Z_DEFLATE)
        rc = deflateInit2(&zs->z, x->level, Z_DEFLATED, -(int)zs->zbits, x->mem_level, Z_DEFAULT_STRATEGY);
    else
        rc = inflateInit2(&zs->z, -(int)zs->zbits);
    if (rc != Z_OK) {
        free(zs);
        return NULL;
    }
    p->live++;
    return zs;
}

/* The idle list: push at the front (most recent), unlink from anywhere. */
static void idle_push(struct ws_zpool *p, struct ws_zstream *zs)
{
    zs->prev = NULL;
    zs->next = p->idle;
    if (p->idle)
        p->idle->prev = zs;
    else
        p->idle_tail = zs;
    p->idle = zs;
    p->nidle++;
    p->idle_bytes += zs->bytes;
}

static void idle_unlink(struct ws_zpool *p, struct ws_zstream *zs)
{
    if (zs->prev)
        zs->prev->next = zs->next;
    else
        p->idle = zs->next;
    if (zs->next)
        zs->next->prev = zs->prev;
    else
        p->idle_tail = zs->prev;
    zs->next = zs->prev = NULL;
    p->nidle--;
    p->idle_bytes -= zs->bytes;
}

/*
** Lend x a stream for its next message. Its own warm stream if it has
** one (the context is intact: nothing to do); else a free stream that
** fits; else a new one, unless the idle streams already fill the pool's
** bounds: then the least recently used warm one that fits (its owner's
** window saved first); then reset it and, with context takeover, give it
** x's window. NULL if out of memory.
*/
static struct ws_zstream *zs_lend(struct ws_zpool *p, struct ws_zctx *x)
{
    struct ws_zstream *s, *take = NULL, *lru = NULL, *zs;
    int rc = Z_OK;
    p->lends++;
    if (x->zs) {   /* its own, warm: idle (between messages) or already lent to it */
        if (x->zs->prev || p->idle == x->zs)
            idle_unlink(p, x->zs);
        return x->zs;
    }
    for (s = p->idle; s; s = s->next) {
        if (!zs_fits(s, x))
            continue;
        if (!s->owner) {
            take = s;
            break;
        }
        lru = s;
    }
    /* no free stream: a new one while the idle ones are within the pool's
     * bounds (the warm stay warm), else the least recently used warm one */
    if (!take && lru && (p->nidle >= p->keep ||
                         p->idle_bytes + zs_bytes(x->kind, zlib_bits(x), x->mem_level) > p->keep_bytes))
        take = lru;
    if (take) {
        zs = take;
        idle_unlink(p, zs);
        zs_disown(zs);
    } else if (!(zs = zs_new(p, x))) {
        return NULL;
    }
    p->resets++;
    if (zs->kind == WS_Z_DEFLATE) {
        rc = deflateReset(&zs->z);
        if (rc == Z_OK && !x->no_context && x->window_len)
            rc = deflateSetDictionary(&zs->z, x->window, x->window_len);
    } else {
        zs->zbits = x->bits;
        rc = inflateReset2(&zs->z, -(int)x->bits);
        if (rc == Z_OK && !x->no_context && x->window_len)
            rc = inflateSetDictionary(&zs->z, x->window, x->window_len);
    }
    if (rc != Z_OK) {
        zs_end(zs);
        p->live--;
        return NULL;
    }
    zs->owner = x;
    x->zs = zs;
    return zs;
}

void ws_zpool_trim(struct ws_zpool *p, size_t keep, size_t keep_bytes)
{
    while (p->nidle > keep || (p->nidle > 0 && p->idle_bytes > keep_bytes)) {
        struct ws_zstream *zs = p->idle_tail;
        idle_unlink(p, zs);
        zs_disown(zs);
        zs_end(zs);
        p->live--;
    }
}

/*
** The message of x ended (ok) or was abandoned (!ok): the stream goes back
** to the pool, still warm for x when x keeps context and the message
** ended well; else free, to be reset when next lent.
*/
static void zs_return(struct ws_zpool *p, struct ws_zctx *x, int ok)
{
    struct ws_zstream *zs = x->zs;
    x->open = 0;
    if (!zs)
        return;
    if (!ok || x->no_context) {
        zs->owner = NULL;
        x->zs = NULL;
        if (!ok)
            x->lost = !x->no_context;
    }
    idle_push(p, zs);
    ws_zpool_trim(p, p->keep, p->keep_bytes);
}

int ws_deflate(struct ws_zpool *p, struct ws_zctx *x, const void *data, size_t len, int fin,
               struct ws_buf *out)
{
    struct ws_zstream *zs;
    size_t start = out->len;
    z_stream *z;
    if (!x->open) {
        if (!(zs = zs_lend(p, x)))
            return WS_ENOMEM;
        x->open = 1;
    }
    zs = x->zs;
    z = &zs->z;
    z->next_in = (Bytef *)(uintptr_t)data;
    z->avail_in = 0;
    /* zlib's counts are 32-bit: feed a huge piece in slices */
    do {
        size_t slice = len > (1u << 30) ? (1u << 30) : len;
        z->avail_in = (uInt)slice;
        len -= slice;
        for (;;) {
            int err = WS_OK, rc;
            size_t room = (size_t)z->avail_in + (z->avail_in >> 8) + 64;
            uint8_t *dst;
            if (room > 256 * 1024)
                room = 256 * 1024;
            if (!(dst = ws_buf_reserve(out, room, 0, &err))) {
                zs_return(p, x, 0);
                return WS_ENOMEM;
            }
            z->next_out = dst;
            z->avail_out = (uInt)room;
            rc = deflate(z, len ? Z_NO_FLUSH : Z_SYNC_FLUSH);
            ws_buf_commit(out, room - z->avail_out);
            if (rc == Z_BUF_ERROR)
                break;   /* nothing left to do (an empty piece after a flush) */
            if (rc != Z_OK) {
                zs_return(p, x, 0);
                return WS_ENOMEM;
            }
            if (z->avail_in == 0 && z->avail_out > 0)
                break;
        }
    } while (len > 0);
    if (fin) {
        size_t n = out->len - start;
        if (n >= 4 && memcmp(ws_buf_head(out) + start + n - 4, tail, 4) == 0)
            out->len -= 4;
        if (out->len == start && ws_buf_append(out, "", 1, 0) != WS_OK) {
            zs_return(p, x, 0);
            return WS_ENOMEM;
        }
        zs_return(p, x, 1);
    }
    return WS_OK;
}

/*
** Start the peer's stream afresh over the same window (none without
** context takeover): between messages the window is all the state there
** is, so the next message begins on a block boundary whether this stream
** stays warm or another one takes the window over. Used when the stream
** ended (BFINAL: the rest of the message is ignored, §7.2.3.4) and when
** the tail put back after a message that was already on a boundary leaves
** a stored block half-read (see ws_inflate).
*/
static int inflate_restart(struct ws_zctx *x)
{
    static uint8_t dict[1u << 15];   /* a scratch, as in zs_disown */
    z_stream *z = &x->zs->z;
    uInt len = 0;
    if (x->no_context)
        return inflateReset2(z, -(int)x->bits) == Z_OK ? WS_OK : WS_ENOMEM;
    if (inflateGetDictionary(z, dict, &len) != Z_OK || inflateReset2(z, -(int)x->bits) != Z_OK)
        return WS_ENOMEM;
    if (len && inflateSetDictionary(z, dict, len) != Z_OK)
        return WS_ENOMEM;
    return WS_OK;
}

/* Inflate in[0..n) into out in bounded steps (see ws_inflate). */
static int inflate_some(struct ws_zctx *x, const uint8_t *in, size_t n, struct ws_buf *out,
                        uint64_t *total, uint64_t max)
{
    z_stream *z = &x->zs->z;
    if (x->ended)
        return WS_OK;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = 0;
    for (;;) {
        size_t step = WS_INFLATE_STEP, cap = 0, got;
        int err = WS_OK, rc;
        uint8_t *dst;
        if (z->avail_in == 0 && n > 0) {
            size_t slice = n > (1u << 30) ? (1u << 30) : n;
            z->avail_in = (uInt)slice;
            n -= slice;
        }
        if (max) {
            uint64_t allow = *total < max ? max - *total + 1 : 1;
            if (step > allow)
                step = (size_t)allow;
            cap = out->len + (size_t)allow;   /* doubling stops at the limit */
        }
        if (!(dst = ws_buf_reserve(out, step, cap, &err)))
            return WS_ENOMEM;
        z->next_out = dst;
        z->avail_out = (uInt)step;
        rc = inflate(z, Z_SYNC_FLUSH);
        got = step - z->avail_out;
        ws_buf_commit(out, got);
        *total += got;
        if (max && *total > max)
            return WS_ETOOBIG;
        switch (rc) {
        case Z_OK:
            break;
        case Z_STREAM_END:
            x->ended = 1;
            return inflate_restart(x);
        case Z_BUF_ERROR:     /* no progress: the input is used up */
            if (z->avail_in == 0 && n == 0)
                return WS_OK;
            return WS_EPROTO;
        case Z_MEM_ERROR:
            return WS_ENOMEM;
        default:              /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
            return WS_EPROTO;
        }
        if (z->avail_in == 0 && n == 0 && z->avail_out > 0)
            return WS_OK;
    }
}

/*
** Is the inflater between two blocks, with no bit of the next one read?
** zlib's data_type says so (128: "just completed a block", the low bits:
** unused bits held).
**
** A message made as §7.2.1 says ends inside the empty stored block of its
** sync flush, whose 00 00 ff ff was removed: the tail put back completes
** it, and the stream is on a boundary after the tail. Peers also send a
** message that was already on a boundary before the tail: an empty
** payload (nothing fed), or a payload that kept its own 00 00 ff ff. The
** tail then starts a new stored block and stops inside its header; that
** is accepted (as Python websockets and node ws do), and the stream is
** restarted on the boundary it had, keeping the window. Any other data
** that is not on a boundary after the tail (it ends inside a block, or
** after one but not at the end of a byte) would leave bit and Huffman state that no saved window can carry to the
** next message, so whether that one inflated would depend on whether the
** stream stayed warm: it is refused instead (1002).
*/
static int at_block_boundary(const z_stream *z)
{
    return (z->data_type & 128) != 0 && (z->data_type & 7) == 0;
}

int ws_inflate(struct ws_zpool *p, struct ws_zctx *x, const void *data, size_t len, int fin,
               struct ws_buf *out, uint64_t *total, uint64_t max)
{
    int rc;
    if (x->lost)
        return WS_ENOMEM;
    if (!x->open) {
        if (!zs_lend(p, x))
            return WS_ENOMEM;
        x->open = 1;
        x->ended = 0;
        x->fed = 0;
    }
    rc = inflate_some(x, data, len, out, total, max);
    if (len)
        x->fed = 1;
    if (rc == WS_OK && fin) {
        /* on a boundary before the tail (see at_block_boundary)? */
        int clean = x->ended || !x->fed || at_block_boundary(&x->zs->z);
        rc = inflate_some(x, tail, sizeof tail, out, total, max);
        if (rc == WS_OK && !x->ended && !at_block_boundary(&x->zs->z))
            rc = clean ? inflate_restart(x) : WS_EPROTO;
    }
    if (rc != WS_OK) {
        zs_return(p, x, 0);
        x->lost = 1;
        return rc;
    }
    if (fin)
        zs_return(p, x, 1);
    return WS_OK;
}

void ws_zctx_free(struct ws_zpool *p, struct ws_zctx *x)
{
    if (x->zs) {
        if (x->open) {
            zs_return(p, x, 0);   /* abandoned mid-message: free, reset when next lent */
        } else {
            x->zs->owner = NULL;  /* warm in the idle list: it becomes a free one */
            x->zs = NULL;
        }
    }
    free(x->window);
    x->window = NULL;
    x->window_len = 0;
}
