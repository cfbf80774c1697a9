/* SPDX-License-Identifier: MIT
 *
 * buffer.c -- growable byte buffer with a read offset (contract in buffer.h).
 *
 * Growth doubles the capacity, starting at WS_BUF_MIN, and never past the
 * cap the caller names; before growing, bytes consumed from the front are
 * reclaimed by moving the rest down, and only then, so a buffer drained from
 * the front and refilled at the back does not shuffle memory on every call.
 * It does no I/O, knows nothing of frames, and never shrinks a non-empty
 * buffer.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "proto/buffer.h"

/* Smallest allocation, so a run of tiny appends does not realloc each time. */
#ifndef WS_BUF_MIN
#define WS_BUF_MIN 256
#endif

/*
** Room for extra bytes at data[off+len]. In order: refuse past the cap
** (leaving the buffer untouched), use the free tail, reclaim the consumed
** head with memmove, and last grow by doubling (clamped to the cap).
*/
uint8_t *ws_buf_reserve(struct ws_buf *b, size_t extra, size_t max, int *err)
{
    size_t need, cap;
    uint8_t *data;

    if (extra > SIZE_MAX - b->len || (max != 0 && b->len + extra > max)) {
        *err = WS_ETOOBIG;
        return NULL;
    }
    need = b->len + extra;
    if (b->data != NULL && b->off + need <= b->cap)
        return b->data + b->off + b->len;
    if (b->data != NULL && need <= b->cap) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        return b->data + b->len;
    }
    cap = b->cap < WS_BUF_MIN ? WS_BUF_MIN : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (max != 0 && cap > max)
        cap = max;                       /* need <= max was checked above */
    if (b->off != 0) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    data = realloc(b->data, cap);
    if (data == NULL) {
        *err = WS_ENOMEM;
        return NULL;
    }
    b->data = data;
    b->cap = cap;
    return b->data + b->len;
}

/* Append n bytes, all or nothing. Appending nothing allocates nothing. */
int ws_buf_append(struct ws_buf *b, const void *p, size_t n, size_t max)
{
    int err = WS_OK;
    uint8_t *dst;

    if (n == 0)
        return WS_OK;
    dst = ws_buf_reserve(b, n, max, &err);
    if (dst == NULL)
        return err;
    memcpy(dst, p, n);
    b->len += n;
    return WS_OK;
}

/* The caller wrote n bytes into the reserved space. */
void ws_buf_commit(struct ws_buf *b, size_t n)
{
    assert(b->off + b->len + n <= b->cap && "commit past the reserved space");
    b->len += n;
}

/*
** Drop n bytes from the front by moving the offset; the bytes move down
** only when ws_buf_reserve needs the room. Once empty, the offset resets and
** memory beyond WS_BUF_KEEP is returned.
*/
void ws_buf_consume(struct ws_buf *b, size_t n)
{
    assert(n <= b->len && "consume past the end");
    b->off += n;
    b->len -= n;
    if (b->len == 0) {
        b->off = 0;
        if (b->cap > WS_BUF_KEEP)
            ws_buf_free(b);
    }
}

/* Back to the empty state, owning nothing. */
void ws_buf_free(struct ws_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = 0;
    b->len = 0;
    b->cap = 0;
}

struct ws_block *ws_block_new(const void *a, size_t alen, const void *b, size_t blen)
{
    struct ws_block *k;
    if (alen > SIZE_MAX - sizeof *k - blen)
        return NULL;
    k = malloc(sizeof *k + alen + blen);
    if (!k)
        return NULL;
    k->refs = 1;
    k->len = alen + blen;
    if (alen)
        memcpy(k->data, a, alen);
    if (blen)
        memcpy(k->data + alen, b, blen);
    return k;
}

void ws_block_unref(struct ws_block *k)
{
    if (k && --k->refs == 0)
        free(k);
}
