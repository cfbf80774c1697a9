/* SPDX-License-Identifier: MIT
 *
 * frame.c -- RFC 6455 §5 framing: header parse/encode (§5.2), masking (§5.3),
 * close codes (§7.4), and ws_reader, the incremental frame reader.
 *
 * Design criteria (see frame.h for the contract):
 *   - the reader holds no pointer into caller memory between calls and never
 *     allocates: an unfinished header spills into r->hdr, an unfinished control
 *     payload into r->ctl (125 bytes at most), nothing else;
 *   - data payload is unmasked in place and handed back as chunks; the reader
 *     never copies it, reassembly is the caller's business;
 *   - every check is an early return with a close code and a short static
 *     reason, made as soon as the bytes it needs have arrived: RSV, opcode,
 *     control-frame and masking rules and the fragment order from the first
 *     two bytes, the length limits as soon as the length is known (so a frame
 *     announcing 2^62 bytes fails at its header, before any payload);
 *   - an error is sticky: the reader reports it on every later call.
 *
 * It does not: negotiate or implement extensions (RSV1 is let through on a
 * message's first frame once the owner says permessage-deflate was agreed,
 * and reported; inflating is the connection's), reassemble messages, answer
 * pings or closes (the connection does), or insist on the minimal length
 * encoding when reading.
 */
#include <string.h>

#include "proto/frame.h"
#include "proto/simd.h"
#include "proto/utf8.h"

/* Reader stages (struct ws_reader.stage). */
enum {
    ST_HEADER,   /* collecting a frame header in r->hdr */
    ST_PAYLOAD,  /* passing data payload through, r->remaining bytes left */
    ST_CONTROL,  /* collecting a control payload in r->ctl */
    ST_ERROR     /* stuck on r->err_code / r->err_reason */
};

/* §7.4.1 close codes the reader sends. */
#define CLOSE_PROTOCOL 1002u
#define CLOSE_INVALID_DATA 1007u
#define CLOSE_TOO_BIG 1009u
#define CLOSE_NO_STATUS 1005u

/* Bytes of extended length that follow the second header byte (§5.2). */
static size_t len_bytes(uint8_t b1)
{
    uint8_t len7 = b1 & 0x7F;
    return len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
}

/* Whole header size implied by the second byte: 2..14. */
static size_t header_size(uint8_t b1)
{
    return 2 + len_bytes(b1) + ((b1 & 0x80) ? 4 : 0);
}

/* Payload length from a header whose length bytes are all present. */
static uint64_t read_len(const uint8_t *p)
{
    size_t k = len_bytes(p[1]);
    uint64_t len = 0;

    if (k == 0)
        return p[1] & 0x7F;
    for (size_t i = 0; i < k; i++)
        len = (len << 8) | p[2 + i];
    return len;
}

/* Control opcodes have the high bit of the nibble set (§5.5). */
static int is_control(int opcode)
{
    return (opcode & 0x8) != 0;
}

/* 0x3-0x7 and 0xB-0xF are reserved for future frames (§5.2). */
static int is_reserved(int opcode)
{
    return (opcode >= 0x3 && opcode <= 0x7) || opcode >= 0xB;
}

/*
** Parse a header without judging it: the reader does the protocol checks,
** and a test or a client may want to look at a broken frame.
*/
int ws_frame_header_parse(const uint8_t *p, size_t n, struct ws_frame_header *h)
{
    size_t size;

    if (n < 2)
        return WS_PARTIAL;
    size = header_size(p[1]);
    if (n < size)
        return WS_PARTIAL;
    h->fin = p[0] >> 7;
    h->rsv = (p[0] >> 4) & 0x7;
    h->opcode = p[0] & 0x0F;
    h->masked = p[1] >> 7;
    h->len = read_len(p);
    if (h->masked)
        memcpy(h->mask, p + size - 4, 4);
    else
        memset(h->mask, 0, 4);
    return (int)size;
}

/*
** Encode a header with the shortest length form, as §5.2 requires ("the
** minimal number of bytes MUST be used"). len must be below 2^63.
*/
size_t ws_frame_header_encode(uint8_t *out, int fin, int opcode, uint64_t len,
                              const uint8_t *mask)
{
    size_t i = 2;

    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    out[1] = mask ? 0x80 : 0;
    if (len < 126) {
        out[1] |= (uint8_t)len;
    } else if (len <= 0xFFFF) {
        out[1] |= 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        i = 4;
    } else {
        out[1] |= 127;
        for (int k = 0; k < 8; k++)
            out[2 + k] = (uint8_t)(len >> (56 - 8 * k));
        i = 10;
    }
    if (mask) {
        memcpy(out + i, mask, 4);
        i += 4;
    }
    return i;
}

#ifdef WS_HAVE_AVX2
/* 128 bytes a turn in four 32-byte registers; returns the bytes done (a
 * multiple of 128, so the key's phase is unchanged after them). */
WS_TARGET_AVX2 static size_t ws_mask_avx2(uint8_t *p, size_t n, uint64_t key)
{
    const __m256i kv = _mm256_set1_epi64x((long long)key);
    size_t done = 0;
    for (; n - done >= 128; done += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(p + done));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + done + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(p + done + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(p + done + 96));
        _mm256_storeu_si256((__m256i *)(void *)(p + done), _mm256_xor_si256(a, kv));
        _mm256_storeu_si256((__m256i *)(void *)(p + done + 32), _mm256_xor_si256(b, kv));
        _mm256_storeu_si256((__m256i *)(void *)(p + done + 64), _mm256_xor_si256(c, kv));
        _mm256_storeu_si256((__m256i *)(void *)(p + done + 96), _mm256_xor_si256(d, kv));
    }
    return done;
}
#endif

/*
** XOR with the key (§5.3: byte i of the payload with key[i % 4]), offset
** saying where in the payload p starts; the key is repeated and rotated to
** that position. Unaligned 8-byte words from the first byte (x86 and the other targets we build on load them as
** cheaply as aligned ones; memcpy keeps that portable), 128 bytes a turn
** with AVX2 when the CPU has it, 32 with SSE2 (x86-64's baseline; GCC and
** Clang lower the vector type elsewhere too), then the last bytes one by
** one. Every step is a multiple of 4 bytes, so the key's phase holds.
*/
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset)
{
    size_t k = offset & 3;

    if (n >= 8) {
        uint8_t key_bytes[8];
        uint64_t key;

        for (size_t i = 0; i < 8; i++)
            key_bytes[i] = mask[(k + i) & 3];
        memcpy(&key, key_bytes, 8);
#ifdef WS_HAVE_AVX2
        if (n >= 128 && ws_cpu_avx2()) {
            size_t done = ws_mask_avx2(p, n, key);
            p += done;
            n -= done;
        }
#endif
#if defined(__GNUC__)
        if (n >= 32) {
            typedef uint64_t v2u64 __attribute__((vector_size(16)));
            v2u64 kv = { key, key };
            do {
                v2u64 a, b;
                memcpy(&a, p, 16);
                memcpy(&b, p + 16, 16);
                a ^= kv;
                b ^= kv;
                memcpy(p, &a, 16);
                memcpy(p + 16, &b, 16);
                p += 32;
                n -= 32;
            } while (n >= 32);
        }
#endif
        while (n >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            w ^= key;
            memcpy(p, &w, 8);
            p += 8;
            n -= 8;
        }
    }
    while (n > 0) {
        *p++ ^= mask[k];
        k = (k + 1) & 3;
        n--;
    }
}

/*
** Codes a peer may put in a close frame. §7.4.1 defines 1000-1011 but 1004
** is reserved and 1005/1006 must never be sent; 1012-1014 are registered with
** IANA (§11.7); 1015 must never be sent; 3000-3999 are for libraries and
** frameworks, 4000-4999 private (§7.4.2). Everything else is invalid.
*/
int ws_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003)
        || (code >= 1007 && code <= 1014)
        || (code >= 3000 && code <= 4999);
}

void ws_reader_init(struct ws_reader *r, int expect_masked, uint64_t max_message)
{
    memset(r, 0, sizeof *r);
    r->max_message = max_message;
    r->expect_masked = expect_masked ? 1 : 0;
    r->stage = ST_HEADER;
    r->utf8 = WS_UTF8_ACCEPT;
}

/* Fill ev with the reader's error. */
static void error_event(const struct ws_reader *r, struct ws_event *ev)
{
    ev->type = WS_EV_ERROR;
    ev->close_code = r->err_code;
    ev->reason = r->err_reason;
}

/* Make the reader stuck on an error and report it. Returns 1 (an event). */
static int fail(struct ws_reader *r, struct ws_event *ev, unsigned code, const char *reason)
{
    r->stage = ST_ERROR;
    r->err_code = code;
    r->err_reason = reason;
    error_event(r, ev);
    return 1;
}

/*
** Checks that need only the first two header bytes, in the order of the
** bits. Returns NULL if they pass, else the reason (the code is always 1002).
*/
static const char *check_start(const struct ws_reader *r)
{
    uint8_t b0 = r->hdr[0], b1 = r->hdr[1];
    int opcode = b0 & 0x0F;

    if (b0 & 0x30)                       /* §5.2: RSV2-3 need an extension */
        return "reserved bits set";
    if (b0 & WS_RSV1) {                  /* permessage-deflate's, if agreed */
        if (!r->rsv1_ok)
            return "reserved bits set";
        if (is_control(opcode))          /* RFC 7692 §6.1 */
            return "compressed control frame";
        if (opcode == WS_OP_CONT)
            return "RSV1 on a continuation frame";
    }
    if (is_reserved(opcode))             /* §5.2 */
        return "reserved opcode";
    if (is_control(opcode)) {            /* §5.5: final, at most 125 bytes */
        if (!(b0 & 0x80))
            return "control frame fragmented";
        if ((b1 & 0x7F) > WS_MAX_CONTROL_PAYLOAD)
            return "control frame too long";
    }
    if (r->expect_masked && !(b1 & 0x80))   /* §5.1: clients mask */
        return "frame not masked";
    if (!r->expect_masked && (b1 & 0x80))   /* §5.1: servers do not */
        return "frame masked";
    if (opcode == WS_OP_CONT && r->msg_opcode == 0)      /* §5.4 */
        return "unexpected continuation";
    if ((opcode == WS_OP_TEXT || opcode == WS_OP_BINARY) && r->msg_opcode != 0)
        return "expected continuation";  /* §5.4: fragments are not interleaved */
    return NULL;
}

/*
** Checks on the payload length, made as soon as it is known, before any
** payload: a 64-bit length with the top bit set (§5.2) and, for data, the
** message so far plus this frame against max_message (§7.4.1, 1009).
** Returns 1 with an error event, else 0.
*/
static int check_length(struct ws_reader *r, struct ws_event *ev)
{
    uint64_t len = read_len(r->hdr);
    int opcode = r->hdr[0] & 0x0F;
    uint64_t so_far, limit;

    if (len >> 63)
        return fail(r, ev, CLOSE_PROTOCOL, "length too large");
    if (is_control(opcode) || r->max_message == 0)
        return 0;
    so_far = opcode == WS_OP_CONT ? r->msg_len : 0;   /* so_far <= the bound */
    limit = r->max_message;
    if (opcode == WS_OP_CONT ? r->msg_compressed : (r->hdr[0] & WS_RSV1) != 0)
        limit = ws_compressed_bound(limit);   /* the inflated size is checked as it inflates */
    if (len > limit || so_far > limit - len)
        return fail(r, ev, CLOSE_TOO_BIG, "message too big");
    return 0;
}

/*
** Report a chunk of data payload. fin is set when the frame is final and
** fully read; then a text message must end on a code point boundary (§8.1)
** and the message is closed.
*/
static int data_event(struct ws_reader *r, struct ws_event *ev, uint8_t *data, size_t len)
{
    int fin = r->h.fin && r->remaining == 0;

    if (fin && r->msg_opcode == WS_OP_TEXT && !r->msg_compressed && r->utf8 != WS_UTF8_ACCEPT)
        return fail(r, ev, CLOSE_INVALID_DATA, "invalid utf8");
    ev->type = WS_EV_DATA;
    ev->opcode = r->msg_opcode;
    ev->fin = fin;
    ev->frame_end = r->remaining == 0;
    ev->compressed = r->msg_compressed;
    ev->data = data;
    ev->len = len;
    if (fin) {
        r->msg_opcode = 0;
        r->msg_compressed = 0;
        r->msg_len = 0;
        r->utf8 = WS_UTF8_ACCEPT;
    }
    return 1;
}

/*
** Report a complete control frame from r->ctl. A close payload is either
** empty (code 1005 "no status", §7.1.5) or a valid code followed by a UTF-8
** reason (§5.5.1); one byte alone cannot hold a code.
*/
static int control_event(struct ws_reader *r, struct ws_event *ev)
{
    uint8_t *p = r->ctl;
    size_t len = (size_t)r->h.len;

    if (r->h.masked)
        ws_mask(p, len, r->h.mask, 0);
    ev->opcode = r->h.opcode;
    ev->data = p;
    ev->len = len;
    if (r->h.opcode == WS_OP_CLOSE) {
        if (len == 0) {
            ev->close_code = CLOSE_NO_STATUS;
        } else if (len == 1) {
            return fail(r, ev, CLOSE_PROTOCOL, "invalid close payload");
        } else {
            unsigned code = (unsigned)p[0] << 8 | p[1];
            if (!ws_close_code_valid(code))       /* §7.4 */
                return fail(r, ev, CLOSE_PROTOCOL, "invalid close code");
            if (!ws_utf8_valid(p + 2, len - 2))   /* §5.5.1 */
                return fail(r, ev, CLOSE_INVALID_DATA, "invalid utf8");
            ev->close_code = code;
            ev->data = p + 2;
            ev->len = len - 2;
        }
    }
    ev->type = WS_EV_CONTROL;
    return 1;
}

/*
** The header in r->hdr is complete: set up its payload. Returns 1 when the
** frame already makes an event (an empty control frame, an empty final data
** frame, or an error), else 0. An empty non-final data frame makes none.
*/
static int start_frame(struct ws_reader *r, struct ws_event *ev, uint8_t *at)
{
    struct ws_frame_header *h = &r->h;

    ws_frame_header_parse(r->hdr, r->hdr_len, h);
    r->hdr_len = 0;
    r->remaining = h->len;
    r->mask_pos = 0;
    if (is_control(h->opcode)) {
        r->ctl_len = 0;
        if (h->len == 0)
            return control_event(r, ev);
        r->stage = ST_CONTROL;
        return 0;
    }
    if (h->opcode != WS_OP_CONT) {
        r->msg_opcode = h->opcode;
        r->msg_compressed = (h->rsv & 4) != 0;
        r->msg_len = 0;
        r->utf8 = WS_UTF8_ACCEPT;
    }
    /* Saturate: without a limit three huge frames could wrap the count. */
    r->msg_len = h->len > UINT64_MAX - r->msg_len ? UINT64_MAX : r->msg_len + h->len;
    if (h->len == 0)
        return h->fin ? data_event(r, ev, at, 0) : 0;
    r->stage = ST_PAYLOAD;
    return 0;
}

/* Copy up to want - r->hdr_len bytes into r->hdr. 1 if it reached want. */
static int take_header(struct ws_reader *r, const uint8_t *buf, size_t n, size_t *used, size_t want)
{
    size_t take = want - r->hdr_len;

    if (take > n - *used)
        take = n - *used;
    memcpy(r->hdr + r->hdr_len, buf + *used, take);
    r->hdr_len = (uint8_t)(r->hdr_len + take);
    *used += take;
    return r->hdr_len == want;
}

/*
** See frame.h for the contract and the calling loop. Each stage consumes what
** it can; an event returns at once with the bytes used so far, so that every
** event but a repeated error comes with at least one byte consumed, and
** WS_EV_NONE comes only with all input consumed.
*/
size_t ws_reader_feed(struct ws_reader *r, uint8_t *buf, size_t n, struct ws_event *ev)
{
    size_t used = 0;

    memset(ev, 0, sizeof *ev);
    if (r->stage == ST_ERROR) {
        error_event(r, ev);
        return 0;
    }
    while (used < n) {
        if (r->stage == ST_HEADER) {
            if (r->hdr_len < 2) {
                if (!take_header(r, buf, n, &used, 2))
                    return used;
                const char *why = check_start(r);
                if (why) {
                    fail(r, ev, CLOSE_PROTOCOL, why);
                    return used;
                }
                if (len_bytes(r->hdr[1]) == 0 && check_length(r, ev))
                    return used;
            }
            size_t len_end = 2 + len_bytes(r->hdr[1]);
            if (r->hdr_len < len_end) {
                if (!take_header(r, buf, n, &used, len_end))
                    return used;
                if (check_length(r, ev))
                    return used;
            }
            if (!take_header(r, buf, n, &used, header_size(r->hdr[1])))
                return used;
            if (start_frame(r, ev, buf + used))
                return used;
        } else if (r->stage == ST_PAYLOAD) {
            uint8_t *chunk = buf + used;
            size_t take = n - used;

            if (take > r->remaining)
                take = (size_t)r->remaining;
            if (r->h.masked)
                ws_mask(chunk, take, r->h.mask, (size_t)(r->mask_pos & 3));
            r->mask_pos += take;
            r->remaining -= take;
            used += take;
            if (r->msg_opcode == WS_OP_TEXT && !r->msg_compressed) {   /* §8.1, fail fast */
                r->utf8 = ws_utf8_feed(r->utf8, chunk, take);
                if (r->utf8 == WS_UTF8_REJECT) {
                    fail(r, ev, CLOSE_INVALID_DATA, "invalid utf8");
                    return used;
                }
            }
            if (r->remaining == 0)
                r->stage = ST_HEADER;
            data_event(r, ev, chunk, take);
            return used;
        } else {   /* ST_CONTROL */
            size_t take = n - used;

            if (take > r->remaining)
                take = (size_t)r->remaining;
            memcpy(r->ctl + r->ctl_len, buf + used, take);
            r->ctl_len = (uint8_t)(r->ctl_len + take);
            r->remaining -= take;
            used += take;
            if (r->remaining > 0)
                return used;
            r->stage = ST_HEADER;
            control_event(r, ev);
            return used;
        }
    }
    return used;
}

/* A data message has started and its final chunk has not been reported. */
int ws_reader_in_message(const struct ws_reader *r)
{
    return r->msg_opcode != 0;
}

void ws_reader_allow_compressed(struct ws_reader *r, int on)
{
    r->rsv1_ok = on ? 1 : 0;
}
