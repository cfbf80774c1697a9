/* SPDX-License-Identifier: MIT
 *
 * fuzz/chunked_fuzz.c -- libFuzzer target: the incremental, in-place decoder
 * of the chunked transfer coding (ws_chunked_decode, csrc/proto/http.c) and
 * the framing of a request body (ws_http_body_framing), against a reference
 * written here from RFC 9112 §7.1's grammar.
 *
 * Input: byte 0 gives S = byte0 & 15 (chunk lengths that follow) and bit 4
 * a limit: with it, the next byte gives max = 1 + byte * 97 data bytes,
 * else no limit. Then S chunk lengths (used in turn, cyclically; 0 feeds an
 * empty chunk), then the raw body. Every chunk is copied to end at a guard
 * page before it is fed.
 *
 * Checks, any disagreement aborting:
 *   - fed whole, the result, the bytes read and the data decoded are the
 *     reference's; the data never passes max; *out <= *used <= len, and the
 *     bytes past *used are untouched (in place: nothing unread is written);
 *   - fed in the chunks the input chose, and one byte at a time, the same
 *     result, the same total read and the same data (any split works);
 *   - WS_PARTIAL reads every byte it is given; after WS_OK or an error a
 *     further call reads nothing and answers the same (sticky).
 * The whole input is also parsed as a request head, and when it parses,
 * ws_http_body_framing answers 0, 400 or 501, with the framing consistent
 * with the headers a plain loop finds.
 *
 * The reference is deliberately different: it scans the whole buffer with
 * one function per rule of the grammar and copies the data out, no state
 * machine and no in-place moves.
 *
 * Build: make fuzz-build (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/http.h"
#include "guard.h"

#define CHECK FUZZ_CHECK

/* ------------------------------------------------------------ reference */

struct ref {
    const uint8_t *in;
    size_t n, i;
    uint8_t *out;
    size_t o;
    uint64_t max, total;
};

enum { R_MORE = 1 };   /* ran out of input: partial */

static int ref_hex(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int ref_vchar(uint8_t c)   /* field-vchar / HTAB / SP / obs-text */
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

static int ref_tchar(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* chunk-size [ chunk-ext ] CRLF, with the line at most WS_CHUNK_LINE_MAX
 * bytes through its CR; *size the value. 0, R_MORE or an error. */
static int ref_size_line(struct ref *r, uint64_t *size)
{
    size_t start = r->i;
    int digits = 0, state = 0;   /* 0 digits, 1 BWS, 2 ext */
    *size = 0;
    for (;;) {
        uint8_t c;
        if (r->i - start + 1 > WS_CHUNK_LINE_MAX)
            return WS_EHTTP;
        if (r->i == r->n)
            return R_MORE;
        c = r->in[r->i++];
        if (state == 0 && ref_hex(c) >= 0) {
            if (*size >> 60)
                return WS_EHTTP;
            *size = *size * 16 + (uint64_t)ref_hex(c);
            digits++;
            continue;
        }
        if (digits == 0)
            return WS_EHTTP;
        if (c == '\r')
            break;
        if (state == 2) {
            if (!ref_vchar(c))
                return WS_EHTTP;
        } else if (c == ' ' || c == '\t') {
            state = 1;
        } else if (c == ';') {
            state = 2;
        } else {
            return WS_EHTTP;
        }
    }
    if (r->max && *size > r->max - r->total)
        return WS_ETOOBIG;
    if (r->i == r->n)
        return R_MORE;
    return r->in[r->i++] == '\n' ? 0 : WS_EHTTP;
}

/* trailer-section CRLF: field lines, each a tchar first, then until CRLF;
 * at most LUAWS_MAX_HEAD_BYTES bytes counting all but the LFs. */
static int ref_trailers(struct ref *r)
{
    size_t count = 0;
    for (;;) {
        uint8_t c;
        if (++count > LUAWS_MAX_HEAD_BYTES)
            return WS_EHTTP;
        if (r->i == r->n)
            return R_MORE;
        c = r->in[r->i++];
        if (c == '\r') {
            if (r->i == r->n)
                return R_MORE;
            return r->in[r->i++] == '\n' ? WS_OK : WS_EHTTP;
        }
        if (!ref_tchar(c))
            return WS_EHTTP;
        for (;;) {
            if (++count > LUAWS_MAX_HEAD_BYTES)
                return WS_EHTTP;
            if (r->i == r->n)
                return R_MORE;
            c = r->in[r->i++];
            if (c == '\r')
                break;
            if (!ref_vchar(c))
                return WS_EHTTP;
        }
        if (r->i == r->n)
            return R_MORE;
        if (r->in[r->i++] != '\n')
            return WS_EHTTP;
    }
}

/* chunked-body = *chunk last-chunk trailer-section CRLF */
static int ref_decode(struct ref *r)
{
    for (;;) {
        uint64_t size;
        int rc = ref_size_line(r, &size);
        size_t have;
        if (rc != 0)
            return rc;
        if (size == 0)
            return ref_trailers(r);
        have = r->n - r->i;
        if ((uint64_t)have < size) {
            memcpy(r->out + r->o, r->in + r->i, have);
            r->o += have;
            r->i = r->n;
            return R_MORE;
        }
        memcpy(r->out + r->o, r->in + r->i, (size_t)size);
        r->o += (size_t)size;
        r->i += (size_t)size;
        r->total += size;
        if (r->i == r->n)
            return R_MORE;
        if (r->in[r->i++] != '\r')
            return WS_EHTTP;
        if (r->i == r->n)
            return R_MORE;
        if (r->in[r->i++] != '\n')
            return WS_EHTTP;
    }
}

/* ------------------------------------------------------------ under test */

struct run {
    int rc;
    size_t used;        /* raw bytes read in all */
    uint8_t *data;      /* decoded, gathered across calls */
    size_t len;
};

/* Feed body in pieces of the given lengths (cyclic; NULL: whole). */
static void feed(const uint8_t *body, size_t n, const uint8_t *cuts, size_t ncuts, uint64_t max,
                 struct run *out)
{
    struct ws_chunked d;
    size_t pos = 0, k = 0, zeros = 0;
    ws_chunked_init(&d, max);
    out->rc = WS_PARTIAL;
    out->used = 0;
    out->len = 0;
    out->data = malloc(n + 1);
    CHECK(out->data != NULL);
    do {
        size_t piece = n - pos, o = 0, u = 0;
        uint8_t *buf, *copy;
        if (cuts && ncuts && zeros < ncuts) {
            piece = cuts[k++ % ncuts];
            if (piece > n - pos)
                piece = n - pos;
            zeros = piece == 0 ? zeros + 1 : 0;   /* only empty pieces: the rest whole */
        }
        buf = guard_put(body + pos, piece);
        copy = malloc(piece + 1);
        CHECK(copy != NULL);
        memcpy(copy, buf, piece);
        out->rc = ws_chunked_decode(&d, buf, piece, &o, &u);
        CHECK(o <= u && u <= piece);
        CHECK(memcmp(buf + u, copy + u, piece - u) == 0);   /* nothing unread written */
        if (out->rc == WS_PARTIAL)
            CHECK(u == piece);
        memcpy(out->data + out->len, buf, o);
        out->len += o;
        out->used += u;
        pos += u;
        free(copy);
        if (out->rc != WS_PARTIAL) {
            /* sticky: nothing more is read, the same answer */
            size_t o2 = 9, u2 = 9;
            buf = guard_put(body + pos, n - pos);
            CHECK(ws_chunked_decode(&d, buf, n - pos, &o2, &u2) == out->rc);
            CHECK(o2 == 0 && u2 == 0);
            break;
        }
    } while (pos < n);
}

static void check_framing(const uint8_t *data, size_t size)
{
    struct ws_http_head h;
    int kind = -1, cl = 0, te = 0;
    uint64_t len = 99;
    const char *why = "unset";
    int rc = ws_http_parse_request((const char *)data, size, &h), status;
    if (rc <= 0)
        return;
    status = ws_http_body_framing(&h, &kind, &len, &why);
    CHECK(status == 0 || status == 400 || status == 501);
    CHECK((status == 0) == (why == NULL));
    for (size_t i = 0; i < h.num_headers; i++) {
        if (h.headers[i].name_len == 14 && strncasecmp(h.headers[i].name, "content-length", 14) == 0)
            cl = 1;
        if (h.headers[i].name_len == 17 && strncasecmp(h.headers[i].name, "transfer-encoding", 17) == 0)
            te = 1;
    }
    if (status != 0) {
        CHECK(kind == WS_BODY_NONE && len == 0);
        return;
    }
    CHECK(!(cl && te));                              /* both: always refused */
    CHECK(kind == (te ? WS_BODY_CHUNKED : cl ? WS_BODY_LENGTH : WS_BODY_NONE));
    if (kind != WS_BODY_LENGTH)
        CHECK(len == 0);
    if (te)
        CHECK(h.minor_version >= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t at = 1, ncuts, n;
    uint64_t max = 0;
    const uint8_t *cuts, *body;
    struct run whole, split, bytes;
    struct ref r;
    int rrc;
    static const uint8_t one = 1;

    check_framing(data, size);
    if (size < 1)
        return 0;
    ncuts = data[0] & 15;
    if (data[0] & 16) {
        if (size < 2)
            return 0;
        max = 1 + (uint64_t)data[1] * 97;
        at = 2;
    }
    if (size < at + ncuts)
        return 0;
    cuts = data + at;
    body = data + at + ncuts;
    n = size - at - ncuts;

    memset(&r, 0, sizeof r);
    r.in = body;
    r.n = n;
    r.max = max;
    r.out = malloc(n + 1);
    CHECK(r.out != NULL);
    rrc = ref_decode(&r);
    if (rrc == R_MORE)
        rrc = WS_PARTIAL;

    feed(body, n, NULL, 0, max, &whole);
    feed(body, n, cuts, ncuts, max, &split);
    feed(body, n, &one, 1, max, &bytes);
    CHECK(whole.rc == rrc);
    CHECK(whole.len == r.o && memcmp(whole.data, r.out, r.o) == 0);
    if (rrc == WS_OK || rrc == WS_PARTIAL)
        CHECK(whole.used == r.i);
    if (max)
        CHECK(whole.len <= max);
    for (int k = 0; k < 2; k++) {
        const struct run *o = k ? &bytes : &split;
        CHECK(o->rc == whole.rc);
        CHECK(o->used == whole.used);
        CHECK(o->len == whole.len && memcmp(o->data, whole.data, whole.len) == 0);
    }
    free(whole.data);
    free(split.data);
    free(bytes.data);
    free(r.out);
    return 0;
}
