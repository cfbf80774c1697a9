/* SPDX-License-Identifier: MIT
 *
 * fuzz/pmd_fuzz.c -- libFuzzer target: permessage-deflate (RFC 7692), the
 * negotiation (csrc/proto/pmd.c) and the streaming inflater and deflater
 * with their stream pool (csrc/proto/deflate.c).
 *
 * Input: byte 0 picks the mode (byte0 % 3), byte 1 the parameters, the
 * rest is the mode's.
 *
 * Mode 0, negotiation. Byte 1 is our policy: bit 0 server_no_context_
 * takeover, bit 1 client_no_context_takeover, bits 2-4 server_max_window_
 * bits - 8, bits 5-7 client_max_window_bits - 8. The rest, split at '\n',
 * are the values of as many Sec-WebSocket-Extensions headers (each copied
 * to end at a guard page). Checks:
 *   - ws_ext_next walks each value to its end or an error, always moving
 *     on, every pointer inside the value;
 *   - ws_pmd_negotiate answers 0 or 1; on 1 the answer is NUL-terminated,
 *     shorter than WS_PMD_ANSWER_MAX, is one permessage-deflate element
 *     whose parameters parse as an offer and say what was agreed, and the
 *     agreement honours our policy (no_context_takeover when we want it, no
 *     window above ours);
 *   - the same headers read as a server's answer: 0, 1 (values 8..15) or
 *     WS_EHANDSHAKE with a reason;
 *   - our own offer for that policy, negotiated by our own server, is
 *     accepted, and its answer passes our own client's check with the same
 *     agreement.
 *
 * Mode 1, inflate. Byte 1: bits 0-2 the window (8 + n), bit 3 no context
 * takeover, bits 4-5 the limit (none, 1, 1000, 100000 bytes). Byte 2 gives
 * S (at most 15) chunk lengths that follow, each byte's low 7 bits a
 * length (0: an empty chunk) and its top bit "the message ends here"; the
 * lengths are used in turn over the rest, the compressed data, with a last
 * chunk that ends the last message. Each chunk is inflated by ws_inflate
 * from a guard-page copy, on a pool that keeps no stream idle (so a
 * context's window is saved and given back between every two messages).
 * A reference, one plain z_stream per message stream, inflates each whole
 * message at once, then its tail, and, as ours, refuses one that does not
 * end between two blocks unless it already did before the tail (or is
 * empty: then the stream restarts there, same window). Checks: ws_inflate gives WS_OK,
 * WS_EPROTO or WS_ETOOBIG only; the inflated bytes are counted exactly and
 * never pass the limit + 1; a message ours inflates is the reference's
 * byte for byte; the reference's good message within the limit is ours
 * too, over it is WS_ETOOBIG; the reference's error is ours too. After an
 * error both start afresh.
 *
 * Mode 2, round trip. Byte 1 as in mode 1 (the limit unused) plus bits
 * 6-7: the zlib level (0, 1, 6, 9). The rest is cut like mode 1's input
 * into messages, sent by two connections in turn (each its own deflate and
 * inflate context, on a pool of one stream, so each message of one
 * evicts the other's context), compressed piece by piece by ws_deflate and
 * inflated by ws_inflate: every message comes back whole, no message ends
 * with the 00 00 ff ff tail.
 *
 * Build: make fuzz-build (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "proto/deflate.h"
#include "proto/pmd.h"
#include "guard.h"

#define CHECK FUZZ_CHECK

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ----------------------------------------------------------- negotiation */

#define MAX_HDRS 8

/* The answer (our own ws_pmd_answer) read back as an offer. */
static void check_answer_text(const char *answer, const struct ws_pmd_params *a)
{
    size_t len = strlen(answer), pos = 0;
    struct ws_ext e;
    struct ws_pmd_offer o;
    CHECK(len > 0 && len < WS_PMD_ANSWER_MAX);
    CHECK(ws_ext_next(answer, len, &pos, &e) == 1);
    CHECK(e.name_len == strlen(WS_PMD_NAME) && memcmp(e.name, WS_PMD_NAME, e.name_len) == 0);
    CHECK(ws_pmd_parse_offer(&e, &o, NULL) == WS_OK);
    CHECK(ws_ext_next(answer, len, &pos, &e) == 0);
    CHECK(o.server_no_context_takeover == a->server_no_context_takeover);
    CHECK(o.client_no_context_takeover == a->client_no_context_takeover);
    CHECK(o.server_max_window_bits == 0 ? a->server_max_window_bits == 15
                                        : o.server_max_window_bits == a->server_max_window_bits);
    CHECK(o.client_max_window_bits != 1);   /* an answer gives a value */
    CHECK(o.client_max_window_bits == 0 || o.client_max_window_bits == a->client_max_window_bits);
}

static void check_ext_walk(const char *v, size_t len)
{
    size_t pos = 0, steps = 0;
    struct ws_ext e;
    int r;
    while ((r = ws_ext_next(v, len, &pos, &e)) == 1) {
        CHECK(pos <= len && e.name >= v && e.name + e.name_len <= v + len && e.name_len > 0);
        for (size_t k = 0; k < e.nparams && k < WS_EXT_MAX_PARAMS; k++) {
            const struct ws_ext_param *p = &e.params[k];
            int bits = ws_ext_window_bits(p);
            CHECK(p->name >= v && p->name + p->name_len <= v + len && p->name_len > 0);
            CHECK(!p->value || (p->value >= v && p->value + p->value_len <= v + len));
            CHECK(bits == -1 || (bits >= 8 && bits <= 15));
        }
        CHECK(++steps <= len);
    }
    CHECK(r == 0 || r == WS_EHTTP);
}

static void fuzz_negotiate(uint8_t policy, const uint8_t *in, size_t n)
{
    struct ws_pmd_config ours = {
        (uint8_t)(policy & 1), (uint8_t)((policy >> 1) & 1),
        (uint8_t)(8 + ((policy >> 2) & 7)), (uint8_t)(8 + ((policy >> 5) & 7)),
    };
    static struct ws_http_head h;
    struct ws_pmd_params a;
    char answer[WS_PMD_ANSWER_MAX], offer[WS_PMD_ANSWER_MAX];
    char *copy = malloc(n + 1);
    const char *why = NULL;
    size_t start = 0;
    int r;

    if (!copy)
        return;
    /* one guard-page copy for the whole input: each value ends at a '\n'
     * or at the guard */
    memcpy(copy, in, n);
    {
        char *g = (char *)guard_put(copy, n);
        memset(&h, 0, sizeof h);
        for (size_t i = 0; i <= n && h.num_headers < MAX_HDRS; i++) {
            if (i == n || g[i] == '\n') {
                struct ws_http_header *hd = &h.headers[h.num_headers++];
                hd->name = "Sec-WebSocket-Extensions";
                hd->name_len = strlen(hd->name);
                hd->value = g + start;
                hd->value_len = i - start;
                check_ext_walk(hd->value, hd->value_len);
                start = i + 1;
            }
        }
    }
    r = ws_pmd_negotiate(&h, &ours, &a, answer);
    CHECK(r == 0 || r == 1);
    if (r == 1) {
        check_answer_text(answer, &a);
        CHECK(a.server_max_window_bits >= 8 && a.server_max_window_bits <= ours.server_max_window_bits);
        CHECK(a.client_max_window_bits >= 8 && a.client_max_window_bits <= 15);
        CHECK(!ours.server_no_context_takeover || a.server_no_context_takeover);
        CHECK(!ours.client_no_context_takeover || a.client_no_context_takeover);
    }
    /* the same lines as a server's answer to our offer */
    r = ws_pmd_check_answer(&h, &ours, &a, &why);
    CHECK(r == 0 || r == 1 || (r == WS_EHANDSHAKE && why && *why));
    if (r == 1)
        CHECK(a.server_max_window_bits >= 8 && a.server_max_window_bits <= 15 &&
              a.client_max_window_bits >= 8 && a.client_max_window_bits <= ours.client_max_window_bits);
    r = ws_pmd_check_answer(&h, NULL, &a, &why);
    CHECK(r == 0 || r == WS_EHANDSHAKE);
    /* our own offer, through our own server, back to our own client */
    {
        static struct ws_http_head oh;
        struct ws_http_header *one = &oh.headers[0];
        struct ws_pmd_params sa, ca;
        size_t olen = ws_pmd_offer(&ours, offer);
        CHECK(olen == strlen(offer) && olen < WS_PMD_ANSWER_MAX);
        memset(&oh, 0, sizeof oh);
        oh.num_headers = 1;
        one->name = "sec-websocket-extensions";
        one->name_len = strlen(one->name);
        one->value = offer;
        one->value_len = olen;
        CHECK(ws_pmd_negotiate(&oh, &ours, &sa, answer) == 1);
        one->value = answer;
        one->value_len = strlen(answer);
        CHECK(ws_pmd_check_answer(&oh, &ours, &ca, &why) == 1);
        CHECK(memcmp(&sa, &ca, sizeof sa) == 0);
    }
    free(copy);
}

/* ------------------------------------------------------------- inflate */

static const uint64_t limits[4] = { 0, 1, 1000, 100000 };

/* The reference: one z_stream for a peer's stream of messages. */
struct ref {
    z_stream z;
    int bits, no_context, ended, ok;
};

static void ref_init(struct ref *r, int bits, int no_context)
{
    memset(r, 0, sizeof *r);
    r->bits = bits;
    r->no_context = no_context;
    r->ok = inflateInit2(&r->z, -bits) == Z_OK;
    CHECK(r->ok);
}

/* Restart the reference's stream over its window (none without context). */
static void ref_restart(struct ref *r)
{
    static uint8_t dict[1u << 15];
    uInt dlen = 0;
    CHECK(inflateGetDictionary(&r->z, dict, &dlen) == Z_OK);
    CHECK(inflateReset2(&r->z, -r->bits) == Z_OK);
    if (dlen && !r->no_context)
        CHECK(inflateSetDictionary(&r->z, dict, dlen) == Z_OK);
}

static int ref_boundary(const struct ref *r)
{
    return (r->z.data_type & 128) && !(r->z.data_type & 7);
}

/* Inflate in[0..n) at once onto *buf (*cap, *len): 1 fine, 0 a data
 * error, 2 the stream ended (BFINAL: restarted, the rest ignored). */
static int ref_feed(struct ref *r, const uint8_t *in, size_t n, uint8_t **buf, size_t *cap, size_t *len)
{
    r->z.next_in = (Bytef *)(uintptr_t)in;
    r->z.avail_in = (uInt)n;
    for (;;) {
        int rc;
        if (*cap - *len < 65536) {
            *cap = *cap ? *cap * 2 : 65536;
            if (!(*buf = realloc(*buf, *cap)))
                abort();
        }
        r->z.next_out = *buf + *len;
        r->z.avail_out = (uInt)(*cap - *len);
        rc = inflate(&r->z, Z_SYNC_FLUSH);
        *len = *cap - r->z.avail_out;
        if (rc == Z_STREAM_END) {
            ref_restart(r);
            return 2;
        }
        if (rc == Z_BUF_ERROR && r->z.avail_in == 0)
            return 1;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return 0;
        if (r->z.avail_in == 0 && r->z.avail_out > 0)
            return 1;
    }
}

/* Inflate one whole message at once, then its tail, into *out (malloc'd,
 * *olen): 1 on success, 0 on a data error. A BFINAL block ends the
 * message's data (RFC 7692 §7.2.3.4); the next message goes on with the
 * same window. After the tail the stream must be between two blocks,
 * unless it already was before the tail (or the message was empty): then
 * it restarts there, over the same window. */
static int ref_message(struct ref *r, const uint8_t *msg, size_t n, uint8_t **out, size_t *olen)
{
    static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    int st, clean, good;
    if (r->no_context)
        CHECK(inflateReset2(&r->z, -r->bits) == Z_OK);
    st = n ? ref_feed(r, msg, n, &buf, &cap, &len) : 1;
    good = st != 0;
    if (st == 1) {
        clean = n == 0 || ref_boundary(r);
        st = ref_feed(r, tail, sizeof tail, &buf, &cap, &len);
        good = st != 0;
        if (st == 1 && !ref_boundary(r)) {
            if (clean)
                ref_restart(r);
            else
                good = 0;
        }
    }
    *out = buf;
    *olen = len;
    return good;
}

static void ref_end(struct ref *r)
{
    inflateEnd(&r->z);
}

/* The next chunk of the rest: its length and whether it ends a message. */
struct cutter {
    const uint8_t *splits;
    size_t nsplits, k;
    size_t empty;   /* empty chunks in a row */
};

static size_t next_cut(struct cutter *c, size_t left, int *fin)
{
    size_t len;
    if (c->nsplits == 0) {
        *fin = 1;
        return left;
    }
    len = c->splits[c->k % c->nsplits] & 0x7F;
    *fin = (c->splits[c->k % c->nsplits] & 0x80) != 0;
    c->k++;
    if (len >= left || (len == 0 && ++c->empty > 16)) {
        len = left;   /* the rest (and no endless run of empty pieces) */
        *fin = 1;
    }
    if (len)
        c->empty = 0;
    return len;
}

static void fuzz_inflate(uint8_t p, const uint8_t *in, size_t n)
{
    int bits = 8 + (p & 7), nc = (p >> 3) & 1;
    uint64_t max = limits[(p >> 4) & 3];
    struct ws_zpool pool = WS_ZPOOL_INIT(0, 0);
    struct ws_zctx x;
    struct ws_buf out = WS_BUF_INIT;
    struct cutter cut = { NULL, 0, 0, 0 };
    struct ref ref;
    size_t pos = 0, msg_start = 0;
    uint64_t total = 0;
    int failed = 0;   /* ours failed inside the current message */

    if (n < 1)
        return;
    cut.nsplits = in[0] & 15;
    if (cut.nsplits > n - 1)
        cut.nsplits = n - 1;
    cut.splits = in + 1;
    pos = msg_start = 1 + cut.nsplits;
    ws_zctx_init(&x, WS_Z_INFLATE, bits, nc, 0, 1);
    ref_init(&ref, bits, nc);
    while (pos < n || pos == msg_start) {
        int fin, rc = WS_OK;
        size_t len = next_cut(&cut, n - pos, &fin);
        if (!failed) {
            uint8_t *chunk = guard_put(in + pos, len);
            size_t before = out.len;
            uint64_t tbefore = total;
            rc = ws_inflate(&pool, &x, chunk, len, fin, &out, &total, max);
            CHECK(rc == WS_OK || rc == WS_EPROTO || rc == WS_ETOOBIG);
            CHECK(total - tbefore == out.len - before);
            CHECK(!max || total <= max + 1);
            if (rc == WS_OK)
                CHECK(!max || total <= max);
            if (rc != WS_OK)
                failed = rc;
        }
        pos += len;
        if (fin) {
            uint8_t *want;
            size_t wlen;
            int good = ref_message(&ref, in + msg_start, pos - msg_start, &want, &wlen);
            if (!failed) {
                CHECK(good && out.len == wlen && (wlen == 0 || memcmp(ws_buf_head(&out), want, wlen) == 0));
            } else if (failed == WS_ETOOBIG) {
                CHECK(max && (!good || wlen > max));
            } else {   /* WS_EPROTO */
                CHECK(!good);
            }
            if (good && (!max || wlen <= max))
                CHECK(!failed);
            free(want);
            if (failed || !good) {
                /* the connection would be failed: start afresh */
                ws_zctx_free(&pool, &x);
                ws_zctx_init(&x, WS_Z_INFLATE, bits, nc, 0, 1);
                ref_end(&ref);
                ref_init(&ref, bits, nc);
            }
            failed = 0;
            total = 0;
            out.len = 0;
            msg_start = pos;
            if (pos >= n)
                break;
        }
    }
    ws_zctx_free(&pool, &x);
    ws_zpool_trim(&pool, 0, 0);
    CHECK(pool.live == 0);
    ref_end(&ref);
    ws_buf_free(&out);
}

/* ----------------------------------------------------------- round trip */

static void fuzz_roundtrip(uint8_t p, const uint8_t *in, size_t n)
{
    static const int levels[4] = { 0, 1, 6, 9 };
    int bits = 8 + (p & 7), nc = (p >> 3) & 1, level = levels[(p >> 6) & 3];
    struct ws_zpool pool = WS_ZPOOL_INIT(1, 1u << 30);
    struct ws_zctx tx[2], rx[2];
    struct ws_buf z = WS_BUF_INIT, out = WS_BUF_INIT;
    struct cutter cut = { NULL, 0, 0, 0 };
    size_t pos, msg_start;
    int who = 0;
    uint64_t total = 0;

    if (n < 1)
        return;
    cut.nsplits = in[0] & 15;
    if (cut.nsplits > n - 1)
        cut.nsplits = n - 1;
    cut.splits = in + 1;
    pos = msg_start = 1 + cut.nsplits;
    for (int i = 0; i < 2; i++) {
        ws_zctx_init(&tx[i], WS_Z_DEFLATE, bits, nc, level, 1 + (p & 7));
        ws_zctx_init(&rx[i], WS_Z_INFLATE, bits, nc, 0, 1);
    }
    while (pos < n || pos == msg_start) {
        int fin;
        size_t len = next_cut(&cut, n - pos, &fin);
        z.off = z.len = 0;
        CHECK(ws_deflate(&pool, &tx[who], guard_put(in + pos, len), len, fin, &z) == WS_OK);
        if (fin)
            CHECK(z.len > 0 && (z.len < 4 || memcmp(ws_buf_head(&z) + z.len - 4, "\0\0\xff\xff", 4) != 0));
        CHECK(ws_inflate(&pool, &rx[who], z.len ? guard_put(ws_buf_head(&z), z.len) : NULL, z.len, fin, &out,
                         &total, 0) == WS_OK);
        pos += len;
        if (fin) {
            CHECK(out.len == pos - msg_start && total == out.len);
            CHECK(out.len == 0 || memcmp(ws_buf_head(&out), in + msg_start, out.len) == 0);
            if (nc)
                CHECK(tx[who].zs == NULL && rx[who].zs == NULL && ws_zctx_held(&rx[who]) == 0);
            out.len = 0;
            total = 0;
            msg_start = pos;
            who ^= 1;
            if (pos >= n)
                break;
        }
    }
    for (int i = 0; i < 2; i++) {
        ws_zctx_free(&pool, &tx[i]);
        ws_zctx_free(&pool, &rx[i]);
    }
    ws_zpool_trim(&pool, 0, 0);
    CHECK(pool.live == 0);
    ws_buf_free(&z);
    ws_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_negotiate(data[1], data + 2, size - 2);
        break;
    case 1:
        fuzz_inflate(data[1], data + 2, size - 2);
        break;
    default:
        fuzz_roundtrip(data[1], data + 2, size - 2);
        break;
    }
    return 0;
}
