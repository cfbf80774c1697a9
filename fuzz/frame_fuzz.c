/* SPDX-License-Identifier: MIT
 *
 * fuzz/frame_fuzz.c -- libFuzzer target: the RFC 6455 frame reader
 * (ws_reader in csrc/proto/frame.c) with its fragmentation state, and the encoder
 * and masking it must agree with.
 *
 * Two modes, chosen by bit 7 of the first byte.
 *
 * Parse mode (bit 7 clear): arbitrary bytes through the reader.
 *   byte 0   bit 0: expect_masked; bits 1-2: how max_message is given
 *            (0: none, i.e. no limit; 1: one byte; 2: two bytes; 3: eight
 *            bytes, big-endian); bits 3-6: S, the number of split bytes
 *   then     the max_message bytes, then S chunk lengths (used in turn,
 *            cyclically; 0 feeds an empty chunk; S = 0 feeds all at once)
 *   rest     the stream
 * The stream is fed in those chunks, each copied to end at a guard page,
 * with the loop of frame.h, and every event is checked against the contract:
 *   - used <= n; NONE only with all input consumed (so n == 0 gives NONE);
 *     DATA and CONTROL consume at least one byte;
 *   - after ERROR every later feed, of the rest of the chunk and of every
 *     later chunk, reports the same error (code and reason) with 0 consumed;
 *   - DATA: opcode TEXT or BINARY and constant within a message; data inside
 *     what this call consumed; len 0 only on a final chunk; the total of
 *     DATA lengths never exceeds the input length; a message never exceeds
 *     max_message; text delivered so far never holds an invalid byte, and a
 *     text message that completes is valid UTF-8 (ws_utf8_valid);
 *     ws_reader_in_message is 0 right after the final chunk, 1 after others;
 *   - CONTROL: opcode ping, pong or close, payload <= 125 bytes; a close has
 *     code 1005 and nothing else, or a valid code and a UTF-8 reason;
 *   - ERROR: code 1002, 1007 or 1009 with a reason.
 * Then the same stream is fed whole, and one byte at a time (when short),
 * and must give the same messages, control frames and error: how the bytes
 * are split never changes what the reader reports.
 *
 * Round-trip mode (bit 7 set): the input drives a generator of valid
 * streams. Bit 0 is expect_masked, bits 1-2 pick max_message (none, exactly
 * the largest message, a bit more). The rest of the bytes choose frames:
 * text (valid UTF-8, code points split across fragments) and binary
 * messages in 1-4 fragments, of sizes around the 125/126 length forms and
 * (one per stream, binary only, for speed) around 65535/65536; pings
 * between fragments; pings, pongs and closes. Frames are built with
 * ws_frame_header_encode and ws_mask (checked against ws_frame_header_parse,
 * and against masking in pieces at offsets), then fed split at random,
 * whole, and (short streams) byte by byte; the reader must give back
 * exactly the generated messages and control frames, and no error.
 *
 * Build: make fuzz-build (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "proto/utf8.h"
#include "guard.h"

#define CHECK FUZZ_CHECK

/* Feed byte by byte only streams up to this size (it is quadratic in
 * neither time nor memory, just slow for libFuzzer's throughput). */
#define BYTEWISE_MAX 4096

/* Round-trip streams stop growing past this many bytes; the message that
 * crosses it may add up to STREAM_SLACK more. */
#define STREAM_CAP (64 * 1024)
#define STREAM_SLACK (80 * 1024)

/* ---- what a run of the reader produced ---------------------------------- */

struct outcome {
    uint64_t hash;            /* FNV-1a over whole messages and control frames, in order */
    size_t records;           /* how many of them */
    uint64_t data_total;      /* sum of DATA lengths */
    int errored;
    unsigned err_code;
    const char *err_reason;
    int in_message;           /* ws_reader_in_message after the last feed */
};

/* FNV-1a, eight bytes at a step (payloads run to 64 KiB). */
static void fnv(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    size_t i = 0;

    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        *h ^= w;
        *h *= UINT64_C(0x100000001b3);
    }
    for (; i < n; i++) {
        *h ^= b[i];
        *h *= UINT64_C(0x100000001b3);
    }
}

/* Add one record: a whole data message ('D') or a control frame ('C'). */
static void record(uint64_t *h, size_t *count, char tag, int opcode, unsigned code,
                   const uint8_t *data, size_t len)
{
    uint64_t len64 = len;

    fnv(h, &tag, 1);
    fnv(h, &opcode, sizeof opcode);
    fnv(h, &code, sizeof code);
    fnv(h, &len64, sizeof len64);
    fnv(h, data, len);
    (*count)++;
}

/*
** Feed stream[0..n) to a fresh reader in the chunks lens[] gives (see the
** file comment; nlens == 0: all at once), checking every event against the
** contract of frame.h, and sum up what came out in *out.
*/
static void run_stream(const uint8_t *stream, size_t n, int expect_masked, uint64_t max,
                       const uint8_t *lens, size_t nlens, struct outcome *out)
{
    struct ws_reader r;
    uint8_t *msg = malloc(n > 0 ? n : 1);   /* the message being reassembled: <= n bytes */
    size_t msg_len = 0;
    int msg_op = 0;
    uint32_t msg_utf8 = WS_UTF8_ACCEPT;
    size_t off = 0, li = 0, empties = 0;
    int first = 1;

    CHECK(msg != NULL);
    memset(out, 0, sizeof *out);
    out->hash = UINT64_C(0xcbf29ce484222325);
    ws_reader_init(&r, expect_masked, max);
    CHECK(!ws_reader_in_message(&r));

    while (off < n || first) {
        size_t len = n - off;
        uint8_t *p;
        size_t left;

        first = 0;
        if (nlens > 0) {
            len = lens[li++ % nlens];
            if (len > 0)
                empties = 0;
            else if (++empties > nlens)
                len = n - off;           /* only empty chunks left: finish */
            if (len > n - off)
                len = n - off;
        }
        p = guard_put(stream + off, len);
        left = len;
        off += len;
        for (;;) {
            struct ws_event ev;
            size_t used = ws_reader_feed(&r, p, left, &ev);

            CHECK(used <= left);
            if (out->errored) {          /* sticky: same error, nothing consumed */
                CHECK(ev.type == WS_EV_ERROR);
                CHECK(used == 0);
                CHECK(ev.close_code == out->err_code);
                CHECK(ev.reason == out->err_reason);
                break;
            }
            if (ev.type == WS_EV_NONE) {
                CHECK(used == left);
                break;
            }
            CHECK(ev.type == WS_EV_DATA || ev.type == WS_EV_CONTROL || ev.type == WS_EV_ERROR);
            if (ev.type == WS_EV_DATA) {
                CHECK(used >= 1);
                CHECK(ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_BINARY);
                CHECK(msg_op == 0 || ev.opcode == msg_op);
                CHECK(ev.fin == 0 || ev.fin == 1);
                CHECK(ev.len > 0 || ev.fin);
                CHECK(ev.len <= used);
                CHECK(ev.data >= p && ev.data + ev.len <= p + used);
                out->data_total += ev.len;
                CHECK(out->data_total <= n);
                memcpy(msg + msg_len, ev.data, ev.len);
                msg_len += ev.len;
                CHECK(max == 0 || msg_len <= max);
                if (ev.opcode == WS_OP_TEXT) {   /* fail fast: nothing invalid is delivered */
                    msg_utf8 = ws_utf8_feed(msg_utf8, ev.data, ev.len);
                    CHECK(msg_utf8 != WS_UTF8_REJECT);
                }
                CHECK(ws_reader_in_message(&r) == !ev.fin);
                if (ev.fin) {
                    if (ev.opcode == WS_OP_TEXT)
                        CHECK(ws_utf8_valid(msg, msg_len));
                    record(&out->hash, &out->records, 'D', ev.opcode, 0, msg, msg_len);
                    msg_len = 0;
                    msg_op = 0;
                    msg_utf8 = WS_UTF8_ACCEPT;
                } else {
                    msg_op = ev.opcode;
                }
            } else if (ev.type == WS_EV_CONTROL) {
                const uint8_t *in_r = (const uint8_t *)&r;

                CHECK(used >= 1);
                CHECK(ev.opcode == WS_OP_CLOSE || ev.opcode == WS_OP_PING || ev.opcode == WS_OP_PONG);
                CHECK(ev.len <= WS_MAX_CONTROL_PAYLOAD);
                CHECK(ev.len == 0 || ev.data != NULL);
                CHECK(ev.len == 0
                      || (ev.data >= p && ev.data + ev.len <= p + used)
                      || (ev.data >= in_r && ev.data + ev.len <= in_r + sizeof r));
                if (ev.opcode == WS_OP_CLOSE) {
                    CHECK(ev.len <= WS_MAX_CONTROL_PAYLOAD - 2);
                    if (ev.close_code == 1005)
                        CHECK(ev.len == 0);
                    else
                        CHECK(ws_close_code_valid(ev.close_code));
                    CHECK(ws_utf8_valid(ev.data, ev.len));
                }
                record(&out->hash, &out->records, 'C', ev.opcode,
                       ev.opcode == WS_OP_CLOSE ? ev.close_code : 0, ev.data, ev.len);
            } else {
                CHECK(ev.close_code == 1002 || ev.close_code == 1007 || ev.close_code == 1009);
                CHECK(ev.reason != NULL && ev.reason[0] != '\0');
                out->errored = 1;
                out->err_code = ev.close_code;
                out->err_reason = ev.reason;
            }
            p += used;
            left -= used;
        }
    }
    if (out->errored) {                  /* still stuck on fresh bytes */
        struct ws_event ev;
        uint8_t *p = guard_put("\x81\x00", 2);
        CHECK(ws_reader_feed(&r, p, 2, &ev) == 0);
        CHECK(ev.type == WS_EV_ERROR && ev.close_code == out->err_code);
    }
    out->in_message = ws_reader_in_message(&r);
    free(msg);
}

static void same_outcome(const struct outcome *a, const struct outcome *b)
{
    CHECK(a->records == b->records);
    CHECK(a->hash == b->hash);
    CHECK(a->errored == b->errored);
    CHECK(a->err_code == b->err_code);
    CHECK(a->err_reason == b->err_reason
          || (a->err_reason && b->err_reason && strcmp(a->err_reason, b->err_reason) == 0));
    CHECK(a->in_message == b->in_message);
}

/* ---- parse mode ----------------------------------------------------------- */

static void parse_mode(const uint8_t *data, size_t size)
{
    static const uint8_t one[1] = { 1 };
    size_t i = 1, nsplit, n;
    int expect_masked = data[0] & 1;
    int max_mode = (data[0] >> 1) & 3;
    size_t max_bytes = max_mode == 0 ? 0 : max_mode == 1 ? 1 : max_mode == 2 ? 2 : 8;
    uint64_t max = 0;
    const uint8_t *splits, *stream;
    struct outcome split, whole, bytewise;

    for (size_t k = 0; k < max_bytes && i < size; k++)
        max = max << 8 | data[i++];
    nsplit = (data[0] >> 3) & 15;
    if (nsplit > size - i)
        nsplit = size - i;
    splits = data + i;
    stream = data + i + nsplit;
    n = size - i - nsplit;

    run_stream(stream, n, expect_masked, max, splits, nsplit, &split);
    run_stream(stream, n, expect_masked, max, NULL, 0, &whole);
    same_outcome(&split, &whole);
    if (n <= BYTEWISE_MAX) {
        run_stream(stream, n, expect_masked, max, one, 1, &bytewise);
        same_outcome(&split, &bytewise);
    }
}

/* ---- round-trip mode ------------------------------------------------------ */

/* splitmix64: payload bytes, keys and cut points. */
static uint64_t prng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The input bytes that choose frames; 0 once they run out. */
struct source {
    const uint8_t *p;
    size_t n;
};

static uint8_t source_byte(struct source *s)
{
    if (s->n == 0)
        return 0;
    s->n--;
    return *s->p++;
}

struct gen {
    struct source src;
    uint64_t prng;
    int masked;
    uint8_t *stream;          /* the frames, STREAM_CAP + slack bytes */
    size_t len;
    uint64_t hash;            /* what the reader must report, as in struct outcome */
    size_t records;
    uint64_t data_total;
    uint64_t largest;         /* largest data message */
    int big_done;             /* one message around 64 KiB per stream (speed) */
    uint8_t *scratch;         /* for the piecewise masking check */
};

/* Encode one code point (valid scalar value) of k bytes. */
static size_t put_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Exactly len bytes of valid UTF-8, with the boundary code points often. */
static void gen_text(struct gen *g, uint8_t *o, size_t len)
{
    static const uint32_t edges[4][4] = {
        { 0x00, 0x7F, 0x41, 0x20 },
        { 0x80, 0x7FF, 0xE9, 0x3BA },
        { 0x800, 0xD7FF, 0xE000, 0xFFFF },
        { 0x10000, 0x10FFFF, 0x1F600, 0xFFFFF },
    };
    size_t i = 0;

    while (i < len) {
        uint64_t x = prng_next(&g->prng);
        size_t k = 1 + (size_t)(x % 4);
        uint32_t cp;

        if (k > len - i)
            k = len - i;
        x >>= 8;
        if ((x & 7) == 0) {
            cp = edges[k - 1][(x >> 3) & 3];
        } else {
            x >>= 3;
            switch (k) {
            case 1: cp = (uint32_t)(x % 0x80); break;
            case 2: cp = 0x80 + (uint32_t)(x % (0x800 - 0x80)); break;
            case 3:
                cp = 0x800 + (uint32_t)(x % (0x10000 - 0x800 - 0x800));
                if (cp >= 0xD800)
                    cp += 0x800;          /* skip the surrogates */
                break;
            default: cp = 0x10000 + (uint32_t)(x % (0x110000 - 0x10000)); break;
            }
        }
        i += put_utf8(o + i, cp);
    }
}

static void gen_bytes(struct gen *g, uint8_t *o, size_t len)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t x = prng_next(&g->prng);
        memcpy(o + i, &x, len - i < 8 ? len - i : 8);
    }
}

/*
** Append one frame. Checks the encoder against the parser (fields, size,
** every shorter prefix partial) and masking in one go against masking in
** pieces at running offsets (§5.3: byte i uses key[i % 4]).
*/
static void emit(struct gen *g, int fin, int opcode, const uint8_t *payload, size_t len)
{
    uint8_t *out = g->stream + g->len;
    uint8_t key[4];
    uint64_t x = prng_next(&g->prng);
    struct ws_frame_header h;
    size_t hlen, want;

    memcpy(key, &x, 4);
    hlen = ws_frame_header_encode(out, fin, opcode, len, g->masked ? key : NULL);
    want = 2 + (len < 126 ? 0 : len <= 0xFFFF ? 2 : 8) + (g->masked ? 4 : 0);
    CHECK(hlen == want);
    for (size_t k = 0; k < hlen; k++)
        CHECK(ws_frame_header_parse(guard_put(out, k), k, &h) == WS_PARTIAL);
    CHECK(ws_frame_header_parse(guard_put(out, hlen), hlen, &h) == (int)hlen);
    CHECK(h.fin == (fin ? 1 : 0) && h.rsv == 0 && h.opcode == opcode);
    CHECK(h.masked == g->masked && h.len == len);
    if (g->masked)
        CHECK(memcmp(h.mask, key, 4) == 0);

    memcpy(out + hlen, payload, len);
    if (g->masked) {
        size_t done = 0;

        ws_mask(out + hlen, len, key, 0);
        memcpy(g->scratch, payload, len);
        while (done < len) {
            size_t piece = 1 + (size_t)(prng_next(&g->prng) % 37);
            if (piece > len - done)
                piece = len - done;
            ws_mask(g->scratch + done, piece, key, done);
            done += piece;
        }
        CHECK(memcmp(g->scratch, out + hlen, len) == 0);
        for (size_t i = 0; i < len && i < 64; i++)
            CHECK((out[hlen + i] ^ key[i % 4]) == payload[i]);
    }
    g->len += hlen + len;
}

/* A control frame of the reader's expected shape; recorded as it is sent. */
static void emit_control(struct gen *g, int opcode)
{
    static const unsigned codes[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                      1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999 };
    uint8_t payload[WS_MAX_CONTROL_PAYLOAD];
    uint8_t c = source_byte(&g->src);
    size_t len = c % (WS_MAX_CONTROL_PAYLOAD + 1);

    if (opcode != WS_OP_CLOSE) {
        gen_bytes(g, payload, len);
        emit(g, 1, opcode, payload, len);
        record(&g->hash, &g->records, 'C', opcode, 0, payload, len);
    } else if (c % 4 == 0) {
        emit(g, 1, WS_OP_CLOSE, payload, 0);
        record(&g->hash, &g->records, 'C', WS_OP_CLOSE, 1005, payload, 0);
    } else {
        unsigned code = codes[prng_next(&g->prng) % (sizeof codes / sizeof codes[0])];
        len = len % (WS_MAX_CONTROL_PAYLOAD - 1);   /* the reason: 0..123 bytes */
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        gen_text(g, payload + 2, len);
        emit(g, 1, WS_OP_CLOSE, payload, len + 2);
        record(&g->hash, &g->records, 'C', WS_OP_CLOSE, code, payload + 2, len);
    }
}

/* A data message in 1-4 fragments, pings maybe between them. */
static void emit_message(struct gen *g, uint8_t b)
{
    int opcode = (b & 8) ? WS_OP_BINARY : WS_OP_TEXT;
    uint8_t lb = source_byte(&g->src);
    size_t len, nfrag = 1 + source_byte(&g->src) % 4;
    size_t cuts[5];
    uint8_t *payload;

    switch ((b >> 4) & 3) {
    case 0: len = lb % 126; break;              /* 7-bit length */
    case 1: len = 120 + (size_t)lb; break;      /* across 125/126 */
    case 2:                                      /* across 65535/65536 */
        if (!g->big_done) {
            g->big_done = 1;
            len = 65530 + (size_t)lb % 12;
            opcode = WS_OP_BINARY;    /* validating 64 KiB of text thrice per feed is slow */
            break;
        }
        /* fall through */
    default: len = (size_t)lb * 4; break;
    }
    payload = malloc(len > 0 ? len : 1);
    CHECK(payload != NULL);
    if (opcode == WS_OP_TEXT)
        gen_text(g, payload, len);
    else
        gen_bytes(g, payload, len);

    /* Cut points, sorted; fragments may be empty and may split a code point. */
    cuts[0] = 0;
    cuts[nfrag] = len;
    for (size_t i = 1; i < nfrag; i++) {
        size_t c = len > 0 ? (size_t)(prng_next(&g->prng) % (len + 1)) : 0;
        size_t j = i;
        while (j > 1 && cuts[j - 1] > c) {
            cuts[j] = cuts[j - 1];
            j--;
        }
        cuts[j] = c;
    }
    for (size_t i = 0; i < nfrag; i++) {
        emit(g, i == nfrag - 1, i == 0 ? opcode : WS_OP_CONT,
             payload + cuts[i], cuts[i + 1] - cuts[i]);
        if (i < nfrag - 1 && prng_next(&g->prng) % 4 == 0)
            emit_control(g, WS_OP_PING);     /* §5.4: controls may come between fragments */
    }
    record(&g->hash, &g->records, 'D', opcode, 0, payload, len);
    g->data_total += len;
    if (len > g->largest)
        g->largest = len;
    free(payload);
}

static void roundtrip_mode(const uint8_t *data, size_t size)
{
    static const uint8_t one[1] = { 1 };
    static uint8_t *stream, *scratch;   /* allocated once: page faults cost more than the test */
    struct gen g;
    uint8_t lens[16];
    size_t nlens;
    uint64_t max;
    struct outcome got;

    memset(&g, 0, sizeof g);
    g.masked = data[0] & 1;
    g.src.p = data + 1;
    g.src.n = size - 1;
    g.prng = UINT64_C(0xcbf29ce484222325);
    fnv(&g.prng, data, size);                   /* payloads vary with the whole input */
    g.hash = UINT64_C(0xcbf29ce484222325);
    if (stream == NULL) {
        stream = malloc(STREAM_CAP + STREAM_SLACK);
        scratch = malloc(STREAM_SLACK);
        CHECK(stream != NULL && scratch != NULL);
    }
    g.stream = stream;
    g.scratch = scratch;

    while (g.src.n > 0 && g.len < STREAM_CAP && g.records < 64) {
        uint8_t b = source_byte(&g.src);
        switch (b % 8) {
        case 5: emit_control(&g, WS_OP_PING); break;
        case 6: emit_control(&g, WS_OP_PONG); break;
        case 7: emit_control(&g, WS_OP_CLOSE); break;
        default: emit_message(&g, b); break;
        }
    }

    switch ((data[0] >> 1) & 3) {
    case 1: max = g.largest > 0 ? g.largest : 1; break;   /* the boundary itself */
    case 2: max = g.largest + 1 + prng_next(&g.prng) % 1000; break;
    default: max = 0; break;
    }

    nlens = 1 + (size_t)(prng_next(&g.prng) % sizeof lens);
    for (size_t i = 0; i < nlens; i++) {
        uint64_t x = prng_next(&g.prng);
        lens[i] = (uint8_t)(x % 3 == 0 ? 1 + (x >> 8) % 3 : (x >> 8) % 256);
    }
    run_stream(g.stream, g.len, g.masked, max, lens, nlens, &got);
    CHECK(!got.errored);
    CHECK(got.records == g.records && got.hash == g.hash);
    CHECK(got.data_total == g.data_total);
    CHECK(!got.in_message);

    run_stream(g.stream, g.len, g.masked, max, NULL, 0, &got);
    CHECK(!got.errored && got.records == g.records && got.hash == g.hash);
    if (g.len <= BYTEWISE_MAX) {
        run_stream(g.stream, g.len, g.masked, max, one, 1, &got);
        CHECK(!got.errored && got.records == g.records && got.hash == g.hash);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 0x80)
        roundtrip_mode(data, size);
    else
        parse_mode(data, size);
    return 0;
}
