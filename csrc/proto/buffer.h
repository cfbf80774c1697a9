/* SPDX-License-Identifier: MIT
 *
 * buffer.h -- a growable byte buffer with a read offset: a connection's
 * unfinished input, its message being reassembled, and its send queue.
 *
 * Contract (after strbuf.h):
 *   - an empty buffer owns no memory (data == NULL); ws_buf_free returns it
 *     there, so an idle connection costs nothing here;
 *   - every growth names a cap; past it the call fails with WS_ETOOBIG and the
 *     buffer is left as it was, so memory never grows without bound;
 *   - bytes live at data[off .. off+len); consuming from the front moves off,
 *     and the bytes are moved down only when the space is needed;
 *   - when the last byte is consumed the memory is kept up to
 *     WS_BUF_KEEP bytes and freed above it.
 * No I/O, no Lua.
 */
#ifndef LUAWS_BUFFER_H
#define LUAWS_BUFFER_H

#include "luaws.h"

/* Capacity kept after a buffer empties; larger ones are freed. */
#ifndef WS_BUF_KEEP
#define WS_BUF_KEEP 0
#endif

struct ws_buf {
    uint8_t *data;
    size_t off;   /* first unread byte */
    size_t len;   /* bytes stored from off */
    size_t cap;   /* bytes allocated */
};

#define WS_BUF_INIT { NULL, 0, 0, 0 }

/* Make room for extra more bytes at the end without passing max total bytes
 * stored (0 = no cap). Returns a pointer to the free space, or NULL with *err
 * set to WS_ETOOBIG or WS_ENOMEM. */
uint8_t *ws_buf_reserve(struct ws_buf *b, size_t extra, size_t max, int *err);

/* Append n bytes (reserve + copy). WS_OK, WS_ETOOBIG or WS_ENOMEM. */
int ws_buf_append(struct ws_buf *b, const void *p, size_t n, size_t max);

/* Mark n bytes written into the space ws_buf_reserve returned. */
void ws_buf_commit(struct ws_buf *b, size_t n);

/* Drop n bytes from the front (n <= len). */
void ws_buf_consume(struct ws_buf *b, size_t n);

/* The unread bytes. */
static inline uint8_t *ws_buf_head(const struct ws_buf *b) { return b->data ? b->data + b->off : NULL; }

/* Forget the contents and free the memory. */
void ws_buf_free(struct ws_buf *b);

/* A reference-counted, immutable block of bytes that many send queues share
 * instead of each holding a copy: one encoded frame for every subscriber of
 * a topic, or every connection a broadcast reaches. */
struct ws_block {
    size_t refs;          /* holders; the block is freed when the last lets go */
    size_t len;           /* bytes at data */
    uint8_t data[];
};

/* A block holding a[0..alen) then b[0..blen), with one reference (the
 * caller's). NULL if out of memory. */
struct ws_block *ws_block_new(const void *a, size_t alen, const void *b, size_t blen);

/* Take / drop a reference. */
static inline void ws_block_ref(struct ws_block *k) { k->refs++; }
void ws_block_unref(struct ws_block *k);

#endif
