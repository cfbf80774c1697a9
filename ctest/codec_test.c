/* SPDX-License-Identifier: MIT
 *
 * codec_test.c -- C unit harness for the pure codecs, for what the busted
 * specs cannot see: the buffer contract (no Lua binding), and reads past the
 * end of the input, caught by putting every input right before a guard page
 * (picohttpparser's test.c trick) in addition to ASan; and permessage-deflate
 * (RFC 7692): the negotiation's cases, and compression round trips with
 * every window and takeover mode, the tail, the examples of §7.2.3, the
 * pool's saved windows, a bomb against the limit, corrupt data.
 *
 * Built and run by `make test-c` (and by `make test`, through
 * spec/codec_c_spec.lua), with ASan+UBSan; no Lua, no libev.
 * It prints "N passed, N failed" and exits 1 on a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "proto/addr.h"
#include "proto/buffer.h"
#include "proto/deflate.h"
#include "proto/forwarded.h"
#include "proto/frame.h"
#include "proto/handshake.h"
#include "proto/http.h"
#include "proto/pmd.h"
#include "proto/proxy.h"
#include "proto/utf8.h"

static int passed, failed;

#define CHECK(cond) do { \
        if (cond) passed++; \
        else { failed++; fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); } \
    } while (0)

/* A region of pages followed by an inaccessible one: guard_put copies n bytes
 * so that they end exactly at the guard, and any read past them faults. */
static uint8_t *guard_base;
static size_t guard_room;

static void guard_init(size_t room)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (room + (size_t)page - 1) / (size_t)page;

    guard_room = pages * (size_t)page;
    guard_base = mmap(NULL, guard_room + (size_t)page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_base == MAP_FAILED || mprotect(guard_base + guard_room, (size_t)page, PROT_NONE) != 0) {
        perror("guard page");
        exit(2);
    }
}

static uint8_t *guard_put(const void *src, size_t n)
{
    uint8_t *p = guard_base + guard_room - n;

    if (n > guard_room)
        abort();
    memcpy(p, src, n);
    return p;
}

/* --- buffer --------------------------------------------------------------- */

static void test_buffer(void)
{
    struct ws_buf b = WS_BUF_INIT;
    int err = 0;
    uint8_t *p;
    uint8_t chunk[1000];

    memset(chunk, 'x', sizeof chunk);
    CHECK(b.data == NULL && b.cap == 0);                       /* empty owns nothing */
    CHECK(ws_buf_append(&b, chunk, 0, 10) == WS_OK && b.data == NULL);
    CHECK(ws_buf_append(&b, "hello", 5, 0) == WS_OK);
    CHECK(b.len == 5 && b.off == 0 && b.cap >= 5 && memcmp(ws_buf_head(&b), "hello", 5) == 0);

    /* the cap: refused, and the buffer left as it was */
    size_t cap = b.cap;
    CHECK(ws_buf_append(&b, chunk, 6, 10) == WS_ETOOBIG);
    CHECK(b.len == 5 && b.cap == cap && memcmp(ws_buf_head(&b), "hello", 5) == 0);
    CHECK(ws_buf_append(&b, chunk, 5, 10) == WS_OK && b.len == 10);
    CHECK(ws_buf_reserve(&b, 1, 10, &err) == NULL && err == WS_ETOOBIG);

    /* consuming moves the offset, not the bytes */
    ws_buf_consume(&b, 3);
    CHECK(b.off == 3 && b.len == 7 && memcmp(ws_buf_head(&b), "loxxxxx", 7) == 0);

    /* growth keeps the contents, doubles, and never passes a cap */
    for (int i = 0; i < 20; i++)
        CHECK(ws_buf_append(&b, chunk, sizeof chunk, 0) == WS_OK);
    CHECK(b.len == 7 + 20 * sizeof chunk && memcmp(ws_buf_head(&b), "loxxxxx", 7) == 0);
    CHECK(ws_buf_append(&b, chunk, 1, 7 + 20 * sizeof chunk) == WS_ETOOBIG);
    ws_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0 && b.off == 0);

    struct ws_buf c = WS_BUF_INIT;
    CHECK(ws_buf_append(&c, chunk, 300, 700) == WS_OK);
    CHECK(c.cap <= 700);
    CHECK(ws_buf_append(&c, chunk, 400, 700) == WS_OK && c.cap == 700);   /* clamped to the cap */
    ws_buf_free(&c);

    /* the consumed head is reclaimed by moving down, not by growing */
    struct ws_buf d = WS_BUF_INIT;
    p = ws_buf_reserve(&d, 256, 0, &err);
    CHECK(p != NULL);
    memset(p, 'a', 256);
    ws_buf_commit(&d, 256);
    size_t dcap = d.cap;
    ws_buf_consume(&d, 200);
    CHECK(d.off == 200 && d.len == 56);
    p = ws_buf_reserve(&d, dcap - 56, 0, &err);
    CHECK(p != NULL && d.cap == dcap && d.off == 0 && p == d.data + 56);
    CHECK(d.data[0] == 'a' && d.data[55] == 'a');
    ws_buf_commit(&d, 0);

    /* draining it all returns the memory (WS_BUF_KEEP is 0) */
    ws_buf_consume(&d, d.len);
    CHECK(d.len == 0 && d.off == 0);
    CHECK(WS_BUF_KEEP > 0 || d.data == NULL);
    ws_buf_free(&d);
}

/* --- frame reader at the guard page --------------------------------------- */

/* Run stream through a reader one byte at a time, each byte alone before the
 * guard, and through one whole feed ending at the guard. Collects the data
 * bytes and counts events. */
struct tally {
    uint8_t data[70000];
    size_t data_len;
    int messages, controls, errors;
    unsigned code;
};

static void tally_event(struct tally *t, const struct ws_event *ev)
{
    if (ev->type == WS_EV_DATA) {
        memcpy(t->data + t->data_len, ev->data, ev->len);
        t->data_len += ev->len;
        t->messages += ev->fin;
    } else if (ev->type == WS_EV_CONTROL) {
        t->controls++;
    } else if (ev->type == WS_EV_ERROR) {
        t->errors++;
        t->code = ev->close_code;
    }
}

/* The loop documented in frame.h. */
static void feed_all(struct ws_reader *r, uint8_t *buf, size_t n, struct tally *t)
{
    struct ws_event ev;

    for (;;) {
        size_t used = ws_reader_feed(r, buf, n, &ev);
        buf += used;
        n -= used;
        if (ev.type == WS_EV_NONE)
            break;
        tally_event(t, &ev);
        if (ev.type == WS_EV_ERROR)
            break;
    }
}

static void run_stream(const uint8_t *s, size_t n, int masked, struct tally *whole, struct tally *bytes)
{
    struct ws_reader r;

    memset(whole, 0, sizeof *whole);
    memset(bytes, 0, sizeof *bytes);
    ws_reader_init(&r, masked, 0);
    feed_all(&r, guard_put(s, n), n, whole);
    ws_reader_init(&r, masked, 0);
    for (size_t i = 0; i < n && bytes->errors == 0; i++)
        feed_all(&r, guard_put(s + i, 1), 1, bytes);
}

static size_t make_frame(uint8_t *out, int fin, int op, const void *payload, size_t len, const uint8_t *key)
{
    size_t h = ws_frame_header_encode(out, fin, op, len, key);

    memcpy(out + h, payload, len);
    if (key)
        ws_mask(out + h, len, key, 0);
    return h + len;
}

static void test_reader(void)
{
    static uint8_t stream[140000], payload[65536];
    static struct tally whole, bytes;
    const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };
    size_t n = 0;

    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 31 + 7);
    n += make_frame(stream + n, 0, WS_OP_BINARY, payload, 100, key);
    n += make_frame(stream + n, 1, WS_OP_PING, "ping", 4, key);
    n += make_frame(stream + n, 1, WS_OP_CONT, payload + 100, 65436, key);
    n += make_frame(stream + n, 1, WS_OP_TEXT, "", 0, key);
    n += make_frame(stream + n, 1, WS_OP_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11, key);
    n += make_frame(stream + n, 1, WS_OP_CLOSE, "\x03\xe8" "bye", 5, key);
    run_stream(stream, n, 1, &whole, &bytes);
    CHECK(whole.messages == 3 && whole.controls == 2 && whole.errors == 0);
    CHECK(bytes.messages == 3 && bytes.controls == 2 && bytes.errors == 0);
    CHECK(whole.data_len == 65536 + 11 && bytes.data_len == whole.data_len);
    CHECK(memcmp(whole.data, payload, 65536) == 0 && memcmp(bytes.data, whole.data, whole.data_len) == 0);

    /* fail fast: the error comes at the bad byte, with nothing after it read */
    n = make_frame(stream, 1, WS_OP_TEXT, "abc\xff", 4, key);
    run_stream(stream, n, 1, &whole, &bytes);
    CHECK(whole.errors == 1 && whole.code == 1007 && bytes.errors == 1 && bytes.code == 1007);

    /* a header announcing 2^62 bytes against a limit: 1009 from the header alone */
    struct ws_reader r;
    struct ws_event ev;
    const uint8_t huge[14] = { 0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
    ws_reader_init(&r, 1, 1 << 20);
    size_t used = ws_reader_feed(&r, guard_put(huge, 10), 10, &ev);
    CHECK(used == 10 && ev.type == WS_EV_ERROR && ev.close_code == 1009);
    CHECK(ws_reader_feed(&r, guard_put(huge, 14), 14, &ev) == 0 && ev.type == WS_EV_ERROR);   /* sticky */

    /* NONE only with everything consumed; nothing consumed from nothing */
    ws_reader_init(&r, 1, 0);
    CHECK(ws_reader_feed(&r, NULL, 0, &ev) == 0 && ev.type == WS_EV_NONE);
    used = ws_reader_feed(&r, guard_put(huge, 5), 5, &ev);
    CHECK(used == 5 && ev.type == WS_EV_NONE);
}

/* Feed one masked frame (its first byte's RSV bits or'ed with rsv) to r
 * and return the event it gives. */
static struct ws_event feed_rsv(struct ws_reader *r, int fin, int op, const void *p, size_t len, uint8_t rsv)
{
    static uint8_t buf[4096];
    const uint8_t key[4] = { 1, 2, 3, 4 };
    struct ws_event ev;
    size_t n = make_frame(buf, fin, op, p, len, key), used = 0;
    uint8_t *g;
    buf[0] |= rsv;
    g = guard_put(buf, n);
    do
        used += ws_reader_feed(r, g + used, n - used, &ev);
    while (ev.type == WS_EV_NONE && used < n);
    return ev;
}

/* RFC 7692 §6: RSV1 once permessage-deflate was agreed. */
static void test_reader_rsv1(void)
{
    struct ws_reader r;
    struct ws_event ev;
    static uint8_t big[2000];
    ws_reader_init(&r, 1, 0);
    ev = feed_rsv(&r, 1, WS_OP_TEXT, "x", 1, WS_RSV1);   /* not agreed: 1002 */
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == 1002);
    ws_reader_init(&r, 1, 0);
    ws_reader_allow_compressed(&r, 1);
    ev = feed_rsv(&r, 1, WS_OP_TEXT, "\xff\xfe", 2, WS_RSV1);   /* compressed: not UTF-8 checked here */
    CHECK(ev.type == WS_EV_DATA && ev.compressed && ev.fin && ev.len == 2);
    ev = feed_rsv(&r, 1, WS_OP_TEXT, "ok", 2, 0);
    CHECK(ev.type == WS_EV_DATA && !ev.compressed);
    ev = feed_rsv(&r, 0, WS_OP_BINARY, "a", 1, WS_RSV1);
    CHECK(ev.type == WS_EV_DATA && ev.compressed && !ev.fin && ws_reader_compressed(&r));
    ev = feed_rsv(&r, 1, WS_OP_PING, "p", 1, 0);           /* a control frame between: fine */
    CHECK(ev.type == WS_EV_CONTROL);
    ev = feed_rsv(&r, 1, WS_OP_CONT, "b", 1, 0);
    CHECK(ev.type == WS_EV_DATA && ev.compressed && ev.fin && !ws_reader_compressed(&r));
    ev = feed_rsv(&r, 0, WS_OP_TEXT, "a", 1, WS_RSV1);
    ev = feed_rsv(&r, 1, WS_OP_CONT, "b", 1, WS_RSV1);     /* RSV1 on a continuation */
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == 1002 && strstr(ev.reason, "continuation"));
    ws_reader_init(&r, 1, 0);
    ws_reader_allow_compressed(&r, 1);
    ev = feed_rsv(&r, 1, WS_OP_PING, "p", 1, WS_RSV1);     /* a compressed control frame */
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == 1002 && strstr(ev.reason, "control"));
    ws_reader_init(&r, 1, 0);
    ws_reader_allow_compressed(&r, 1);
    ev = feed_rsv(&r, 1, WS_OP_TEXT, "x", 1, 0x20);        /* RSV2 stays an error */
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == 1002);
    /* the limit: a compressed frame may be a little over it on the wire
     * (the inflated size is the connection's to check), a plain one not */
    ws_reader_init(&r, 1, 1000);
    ws_reader_allow_compressed(&r, 1);
    ev = feed_rsv(&r, 1, WS_OP_BINARY, big, 1100, WS_RSV1);
    CHECK(ev.type == WS_EV_DATA && ev.len == 1100);
    ev = feed_rsv(&r, 1, WS_OP_BINARY, big, 1100, 0);
    CHECK(ev.type == WS_EV_ERROR && ev.close_code == 1009);
    CHECK(ws_compressed_bound(0) == 0 && ws_compressed_bound(1000) > 1000);
}

/* --- mask, utf8, http at the guard page ----------------------------------- */

static void test_mask_utf8(void)
{
    const uint8_t key[4] = { 1, 2, 3, 4 };
    uint8_t ref[64];

    for (size_t len = 0; len <= 40; len++) {
        for (size_t off = 0; off < 4; off++) {
            for (size_t i = 0; i < len; i++)
                ref[i] = (uint8_t)(i ^ key[(i + off) & 3]);
            uint8_t src[64];
            for (size_t i = 0; i < len; i++)
                src[i] = (uint8_t)i;
            uint8_t *p = guard_put(src, len);
            ws_mask(p, len, key, off);
            CHECK(memcmp(p, ref, len) == 0);
        }
    }
    /* the vector paths (32 and 128 bytes a turn) and their edges: every
     * length to 700 at every key phase, ending at the guard page */
    {
        static uint8_t src[700], want[700];
        for (size_t len = 41; len <= sizeof src; len += len < 300 ? 1 : 7) {
            for (size_t off = 0; off < 4; off++) {
                for (size_t i = 0; i < len; i++) {
                    src[i] = (uint8_t)(i * 7 + 3);
                    want[i] = (uint8_t)(src[i] ^ key[(i + off) & 3]);
                }
                uint8_t *p = guard_put(src, len);
                ws_mask(p, len, key, off);
                CHECK(memcmp(p, want, len) == 0);
                ws_mask(p + 1, len - 1, key, off + 1);   /* again from an odd address: back */
                CHECK(p[0] == want[0] && memcmp(p + 1, src + 1, len - 1) == 0);
            }
        }
        /* ASCII with one other byte at each place: a lone continuation byte
         * rejects, a whole two-byte character does not */
        for (size_t len = 2; len <= sizeof src; len += len < 300 ? 1 : 13) {
            for (size_t at = 0; at + 1 < len; at += (len < 64 ? 1 : 5)) {
                memset(src, 'a', len);
                src[at] = 0x80;
                CHECK(!ws_utf8_valid(guard_put(src, len), len));
                src[at] = 0xc3;
                src[at + 1] = 0xa9;
                CHECK(ws_utf8_valid(guard_put(src, len), len));
            }
            memset(src, 'a', len);
            src[len - 1] = 0xc3;   /* cut at the end */
            CHECK(!ws_utf8_valid(guard_put(src, len), len));
        }
    }
    const char *ok[] = { "", "a", "abcdefg", "abcdefgh", "abcdefghi", "0123456789abcde\xc3\xa9",
                         "\xf4\x8f\xbf\xbf", "abcdefg\xe2\x82\xac" };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        CHECK(ws_utf8_valid(guard_put(ok[i], strlen(ok[i])), strlen(ok[i])));
    const char *bad[] = { "abcdefg\xe2\x82", "abcdefgh\xc0\x80", "\xed\xa0\x80" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(!ws_utf8_valid(guard_put(bad[i], strlen(bad[i])), strlen(bad[i])));
}

static void test_http(void)
{
    static const char req[] =
        "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    size_t n = sizeof req - 1;
    struct ws_http_head h;
    const char *why = NULL;
    char accept[WS_ACCEPT_LEN + 1];

    for (size_t i = 0; i < n; i++)
        CHECK(ws_http_parse_request((const char *)guard_put(req, i), i, &h) == WS_PARTIAL);
    CHECK(ws_http_parse_request((const char *)guard_put(req, n), n, &h) == (int)n);
    CHECK(h.num_headers == 5 && ws_handshake_check(&h, &why) == 0 && why == NULL);
    size_t klen;
    const char *key = ws_http_header(&h, "sec-websocket-key", &klen);
    CHECK(key != NULL && ws_accept_key(key, klen, accept) == WS_OK);
    CHECK(strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    CHECK(ws_handshake_check(&h, NULL) == 0);
}

/* The accept key and the client key against OpenSSL's own SHA-1 and base64
 * (EVP_Digest, EVP_EncodeBlock), for keys of every length up to 40. */
static void test_keys(void)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char key[41], cat[100], accept[WS_ACCEPT_LEN + 1], want[64], client[WS_KEY_LEN + 1];
    unsigned char md[EVP_MAX_MD_SIZE], raw[32];
    unsigned mdlen = 0;
    for (size_t n = 0; n <= 40; n++) {
        for (size_t i = 0; i < n; i++)
            key[i] = (char)('A' + (i * 7 + n) % 26);
        memcpy(cat, key, n);
        memcpy(cat + n, guid, sizeof guid - 1);
        CHECK(EVP_Digest(cat, n + sizeof guid - 1, md, &mdlen, EVP_sha1(), NULL) && mdlen == 20);
        EVP_EncodeBlock((unsigned char *)want, md, 20);
        CHECK(ws_accept_key(key, n, accept) == WS_OK && strcmp(accept, want) == 0);
    }
    for (int i = 0; i < 50; i++) {
        CHECK(ws_client_key(client) == WS_OK && strlen(client) == WS_KEY_LEN);
        CHECK(EVP_DecodeBlock(raw, (const unsigned char *)client, WS_KEY_LEN) == 18);
        EVP_EncodeBlock((unsigned char *)want, raw, 16);   /* the 16 bytes give the same text */
        CHECK(strcmp(client, want) == 0);
    }
}

/* The index of known header names, and the word-at-a-time scans behind it
 * (header names, field values): near misses, case, repeats, and a bad byte
 * at every place in an 8-byte word. */
static void test_http_known(void)
{
    static const char req[] =
        "GET / HTTP/1.1\r\nHOST: a\r\nSec_WebSocket-Key: x\r\nsec-websocket-kez: x\r\n"
        "Sec-WebSocket-Key: k1\r\nUpgradE: websocket\r\nupgrade: again\r\nOrigin^: o\r\n"
        "X-Forwarded-Proto: https\r\nTransfer-Encodinf: no\r\nexpect: 100-continue\r\n\r\n";
    struct ws_http_head h;
    size_t n = sizeof req - 1, vlen = 0;
    char buf[160];
    const char *v;

    CHECK(ws_http_parse_request((const char *)guard_put(req, n), n, &h) == (int)n);
    CHECK(ws_http_known(&h, WS_H_HOST) == &h.headers[0]);
    v = ws_http_known_value(&h, WS_H_SEC_WEBSOCKET_KEY, &vlen);
    CHECK(v != NULL && vlen == 2 && memcmp(v, "k1", 2) == 0);
    CHECK(ws_http_known(&h, WS_H_UPGRADE) == &h.headers[4]);
    CHECK(h.repeated == (1u << WS_H_UPGRADE));
    CHECK(ws_http_known(&h, WS_H_ORIGIN) == NULL);              /* "Origin^" is another name */
    CHECK(ws_http_known(&h, WS_H_TRANSFER_ENCODING) == NULL);
    CHECK(ws_http_known(&h, WS_H_X_FORWARDED_PROTO) == &h.headers[7]);
    CHECK(ws_http_known(&h, WS_H_EXPECT) == &h.headers[9]);
    CHECK(ws_http_known(&h, WS_H_CONNECTION) == NULL && ws_http_known(&h, WS_H_FORWARDED) == NULL);

    /* a value of 20 visible bytes with one byte changed at place i */
    for (int i = 0; i < 20; i++) {
        static const unsigned char bad[] = { 0x00, 0x01, 0x0b, 0x1f, 0x7f };
        static const unsigned char good[] = { 0x21, 0x7e, 0x80, 0xff, ' ', '\t' };
        for (size_t b = 0; b < sizeof bad + sizeof good; b++) {
            unsigned char ch = b < sizeof bad ? bad[b] : good[b - sizeof bad];
            int len = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nX-V: 0123456789abcdefghij\r\n\r\n");
            buf[21 + i] = (char)ch;
            int rc = ws_http_parse_request((const char *)guard_put(buf, (size_t)len), (size_t)len, &h);
            if (b < sizeof bad) {
                CHECK(rc == WS_EHTTP);
            } else {
                CHECK(rc == len && h.num_headers == 1);
                /* SP or HTAB at either end is not part of the value */
                CHECK(h.headers[0].value_len == ((ch == ' ' || ch == '\t') && (i == 0 || i == 19) ? 19u : 20u));
            }
        }
    }
    /* a value cut anywhere in a word is partial */
    {
        static const char cut[] = "GET / HTTP/1.1\r\nX-V: 0123456789abcdefghij";
        for (size_t len = 18; len <= sizeof cut - 1; len++)
            CHECK(ws_http_parse_request((const char *)guard_put(cut, len), len, &h) == WS_PARTIAL);
    }
}

/* Decode body fed in two pieces split at cut (through the guard page):
 * the result, the data gathered, and the raw bytes read in all. */
static int chunked_split(const char *body, size_t n, size_t cut, uint64_t max, char *data,
                         size_t *dlen, size_t *read)
{
    struct ws_chunked d;
    size_t pos = 0;
    int rc = WS_PARTIAL;
    ws_chunked_init(&d, max);
    *dlen = *read = 0;
    for (int piece = 0; piece < 2 && rc == WS_PARTIAL; piece++) {
        size_t len = piece == 0 ? cut : n - cut, out, used;
        uint8_t *buf = guard_put(body + pos, len);
        rc = ws_chunked_decode(&d, buf, len, &out, &used);
        memcpy(data + *dlen, buf, out);
        *dlen += out;
        *read += used;
        pos += used;
    }
    return rc;
}

static void test_chunked(void)
{
    /* RFC 9112 §7.1's grammar on the classic example, then the next request */
    static const char body[] = "4\r\nWiki\r\n5;ext=\"a b\"\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n"
                               "0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\n";
    size_t n = sizeof body - 1, body_end = n - strlen("GET / HTTP/1.1\r\n");
    char data[256];
    size_t dlen, read;
    int all_ok = 1;

    for (size_t cut = 0; cut <= n; cut++) {   /* every split point */
        int rc = chunked_split(body, n, cut, 0, data, &dlen, &read);
        if (rc != WS_OK || read != body_end || dlen != 23 || memcmp(data, "Wikipedia in\r\n\r\nchunks.", 23) != 0)
            all_ok = 0;
    }
    CHECK(all_ok);
    {   /* one byte at a time */
        struct ws_chunked d;
        size_t got = 0, total = 0, out, used;
        int rc = WS_PARTIAL;
        ws_chunked_init(&d, 0);
        for (size_t i = 0; i < n && rc == WS_PARTIAL; i++) {
            uint8_t *buf = guard_put(body + i, 1);
            rc = ws_chunked_decode(&d, buf, 1, &out, &used);
            if (out)
                data[got++] = (char)buf[0];
            total += used;
        }
        CHECK(rc == WS_OK && total == body_end && got == 23);
    }
    /* the limit: said by the size line, before the data */
    CHECK(chunked_split(body, n, n, 23, data, &dlen, &read) == WS_OK);
    CHECK(chunked_split(body, n, n, 22, data, &dlen, &read) == WS_ETOOBIG && dlen == 9);
    {
        static const char *bad[] = { "zz\r\n", "5\nhello\r\n", "5\r\nhelloX", "1 2\r\n", "\r\n",
                                     "10000000000000000\r\n", "1;\x01\r\n", "0\r\n folded\r\n\r\n",
                                     "3\r\nabc\n", "0\r\n\r\r" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            size_t len = strlen(bad[i]);
            CHECK(chunked_split(bad[i], len, len, 0, data, &dlen, &read) == WS_EHTTP);
        }
    }
}

static void test_body_framing(void)
{
    static const struct { const char *head; int status, kind; uint64_t len; } cases[] = {
        { "POST / HTTP/1.1\r\n\r\n", 0, WS_BODY_NONE, 0 },
        { "POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n", 0, WS_BODY_LENGTH, 42 },
        { "POST / HTTP/1.1\r\nContent-Length: 7, 7\r\ncontent-length: 7\r\n\r\n", 0, WS_BODY_LENGTH, 7 },
        { "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 0, WS_BODY_CHUNKED, 0 },
        { "POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n", 400, WS_BODY_NONE, 0 },
        { "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, WS_BODY_NONE, 0 },
        { "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, WS_BODY_NONE, 0 },
        { "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, WS_BODY_NONE, 0 },
        { "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, WS_BODY_NONE, 0 },
        { "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, WS_BODY_NONE, 0 },
        { "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, WS_BODY_NONE, 0 },
        { "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501, WS_BODY_NONE, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct ws_http_head h;
        size_t n = strlen(cases[i].head);
        int kind = -1;
        uint64_t len = 99;
        const char *why = "unset";
        CHECK(ws_http_parse_request((const char *)guard_put(cases[i].head, n), n, &h) == (int)n);
        CHECK(ws_http_body_framing(&h, &kind, &len, &why) == cases[i].status);
        CHECK(kind == cases[i].kind && len == cases[i].len && (why == NULL) == (cases[i].status == 0));
    }
}

/* --- permessage-deflate negotiation (proto/pmd.c) -------------------------- */

static const struct ws_pmd_config pmd_default = { 0, 0, 15, 15 };

/* Negotiate over a request whose extension header lines are ext (each
 * "Sec-WebSocket-Extensions: ...\r\n", or other lines), put at the guard
 * page. Returns ws_pmd_negotiate's result, the answer in answer. */
static int negotiate(const char *ext, const struct ws_pmd_config *ours, struct ws_pmd_params *a,
                     char *answer)
{
    char req[2048];
    struct ws_http_head h;
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s\r\n", ext);
    const char *p = (const char *)guard_put(req, (size_t)n);
    answer[0] = 0;
    if (ws_http_parse_request(p, (size_t)n, &h) != n)
        return -100;
    memset(a, 0xAA, sizeof *a);
    return ws_pmd_negotiate(&h, ours ? ours : &pmd_default, a, answer);
}

/* One offer in one header: 1 and the answer, or 0 (declined). */
static int offer1(const char *value, const struct ws_pmd_config *ours, struct ws_pmd_params *a, char *answer)
{
    char line[1024];
    snprintf(line, sizeof line, "Sec-WebSocket-Extensions: %s\r\n", value);
    return negotiate(line, ours, a, answer);
}

static void test_pmd_negotiate(void)
{
    struct ws_pmd_params a;
    char ans[WS_PMD_ANSWER_MAX], v[WS_PMD_ANSWER_MAX];
    struct ws_pmd_config ours;

    /* the plain offer, and the browsers' (client_max_window_bits without a value) */
    CHECK(offer1("permessage-deflate", NULL, &a, ans) == 1 && strcmp(ans, "permessage-deflate") == 0);
    CHECK(a.server_max_window_bits == 15 && a.client_max_window_bits == 15 &&
          !a.server_no_context_takeover && !a.client_no_context_takeover);
    CHECK(offer1("permessage-deflate; client_max_window_bits", NULL, &a, ans) == 1 &&
          strcmp(ans, "permessage-deflate") == 0 && a.client_max_window_bits == 15);
    ours = pmd_default;
    ours.client_max_window_bits = 10;   /* we may limit it only when offered (§7.1.2.2) */
    CHECK(offer1("permessage-deflate; client_max_window_bits", &ours, &a, ans) == 1 &&
          strcmp(ans, "permessage-deflate; client_max_window_bits=10") == 0 && a.client_max_window_bits == 10);
    CHECK(offer1("permessage-deflate", &ours, &a, ans) == 1 &&
          strcmp(ans, "permessage-deflate") == 0 && a.client_max_window_bits == 15);
    /* no offer, no header, only other extensions: declined */
    CHECK(negotiate("", NULL, &a, ans) == 0 && ans[0] == 0);
    CHECK(offer1("x-webkit-deflate-frame", NULL, &a, ans) == 0);
    CHECK(offer1("", NULL, &a, ans) == 0);
    /* several offers: the first we can honour, answered exactly */
    CHECK(offer1("x-webkit-deflate-frame, permessage-deflate; foo=1, "
                 "permessage-deflate; server_max_window_bits=10; client_max_window_bits, permessage-deflate",
                 NULL, &a, ans) == 1 &&
          strcmp(ans, "permessage-deflate; server_max_window_bits=10") == 0 && a.server_max_window_bits == 10);
    /* several headers: offers are read across them, in order */
    CHECK(negotiate("Sec-WebSocket-Extensions: foo; bar=\"baz\"\r\n"
                    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
                    "sec-websocket-extensions: permessage-deflate\r\n", NULL, &a, ans) == 1 &&
          strcmp(ans, "permessage-deflate; server_no_context_takeover") == 0 && a.server_no_context_takeover);
    /* both no_context_takeover; whitespace and case */
    CHECK(offer1("Permessage-Deflate ;\tclient_no_context_takeover ; SERVER_NO_CONTEXT_TAKEOVER", NULL, &a, ans) == 1 &&
          strcmp(ans, "permessage-deflate; server_no_context_takeover; client_no_context_takeover") == 0 &&
          a.server_no_context_takeover && a.client_no_context_takeover);
    /* quoted values (RFC 6455 §9.1: a token once unescaped) */
    CHECK(offer1("permessage-deflate; server_max_window_bits=\"12\"", NULL, &a, ans) == 1 &&
          a.server_max_window_bits == 12 && strcmp(ans, "permessage-deflate; server_max_window_bits=12") == 0);
    CHECK(offer1("permessage-deflate; client_max_window_bits=\"1\\1\"", NULL, &a, ans) == 1 &&
          a.client_max_window_bits == 11);
    CHECK(offer1("permessage-deflate; server_max_window_bits=\"\"", NULL, &a, ans) == 0);
    CHECK(offer1("permessage-deflate; server_max_window_bits=\"1 2\"", NULL, &a, ans) == 0);
    /* every window size, each side */
    for (int b = 8; b <= 15; b++) {
        char want[96];
        snprintf(v, sizeof v, "permessage-deflate; server_max_window_bits=%d", b);
        snprintf(want, sizeof want, "permessage-deflate; server_max_window_bits=%d", b);
        CHECK(offer1(v, NULL, &a, ans) == 1 && a.server_max_window_bits == b && strcmp(ans, want) == 0);
        snprintf(v, sizeof v, "permessage-deflate; client_max_window_bits=%d", b);
        snprintf(want, sizeof want, "permessage-deflate; client_max_window_bits=%d", b);
        CHECK(offer1(v, NULL, &a, ans) == 1 && a.client_max_window_bits == b && strcmp(ans, want) == 0);
        /* ours smaller than the offer: ours */
        ours = pmd_default;
        ours.server_max_window_bits = (uint8_t)b;
        CHECK(offer1("permessage-deflate; server_max_window_bits=15", &ours, &a, ans) == 1 &&
              a.server_max_window_bits == b);
        /* ours below 15 and nothing offered: answered all the same (§7.1.2.1) */
        CHECK(offer1("permessage-deflate", &ours, &a, ans) == 1 && a.server_max_window_bits == b &&
              (b == 15 || strstr(ans, "server_max_window_bits=") != NULL));
    }
    /* window values that are not 8..15 decline that offer; the next may do */
    {
        static const char *bad[] = { "7", "16", "0", "08", "-9", "9a", "100", "" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            snprintf(v, sizeof v, "permessage-deflate; server_max_window_bits=%s", bad[i]);
            CHECK(offer1(v, NULL, &a, ans) == 0);
            snprintf(v, sizeof v, "permessage-deflate; client_max_window_bits=%s, permessage-deflate", bad[i]);
            CHECK(offer1(v, NULL, &a, ans) == (bad[i][0] ? 1 : 0));   /* "" breaks the grammar: all declined */
        }
    }
    /* server_max_window_bits needs a value; the client's does not */
    CHECK(offer1("permessage-deflate; server_max_window_bits", NULL, &a, ans) == 0);
    /* unknown or repeated parameters, values where none belong: declined */
    CHECK(offer1("permessage-deflate; foo", NULL, &a, ans) == 0);
    CHECK(offer1("permessage-deflate; server_no_context_takeover=1", NULL, &a, ans) == 0);
    CHECK(offer1("permessage-deflate; server_no_context_takeover; server_no_context_takeover", NULL, &a, ans) == 0);
    CHECK(offer1("permessage-deflate; client_max_window_bits; client_max_window_bits=9", NULL, &a, ans) == 0);
    CHECK(offer1("permessage-deflate; a; b; c; d; e; f; g; h; i; j", NULL, &a, ans) == 0);
    /* malformed headers decline everything, even a good offer beside them */
    {
        static const char *bad[] = {
            "permessage-deflate;", "permessage-deflate; ;", "permessage-deflate; =1",
            "permessage-deflate; server_max_window_bits=\"10", "permessage-deflate; x=\"a\\",
            "permessage-deflate; x=", "permessage-deflate x", "permessage-deflate, ;", "\"permessage-deflate\"",
            "permessage-deflate; server_max_window_bits=10 10", "permessage-deflate; x=a=b", "per@message",
            "permessage-deflate; x=\"\x80\"",
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            char line[256];
            snprintf(line, sizeof line, "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                                        "Sec-WebSocket-Extensions: %s\r\n", bad[i]);
            CHECK(negotiate(line, NULL, &a, ans) == 0 && ans[0] == 0);
        }
    }
    /* our policy: no context takeover either side, said whether offered or not */
    ours = pmd_default;
    ours.server_no_context_takeover = ours.client_no_context_takeover = 1;
    CHECK(offer1("permessage-deflate", &ours, &a, ans) == 1 && a.server_no_context_takeover &&
          a.client_no_context_takeover &&
          strcmp(ans, "permessage-deflate; server_no_context_takeover; client_no_context_takeover") == 0);
    /* the longest answer fits (found by fuzz/pmd_fuzz.c: it once did not) */
    ours.server_max_window_bits = 12;
    ours.client_max_window_bits = 11;
    CHECK(offer1("permessage-deflate; client_max_window_bits=13; server_max_window_bits=14", &ours, &a, ans) == 1 &&
          strlen(ans) == 128 && a.server_max_window_bits == 12 && a.client_max_window_bits == 11);
    CHECK(ws_pmd_offer(&ours, v) == 128 && strlen(v) == 128);
}

/* The client's check of a 101 whose extension lines are ext. */
static int check_answer(const char *ext, const struct ws_pmd_config *ours, struct ws_pmd_params *a,
                        const char **why)
{
    char res[1024];
    struct ws_http_head h;
    int n = snprintf(res, sizeof res, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n%s\r\n", ext);
    const char *p = (const char *)guard_put(res, (size_t)n);
    if (ws_http_parse_response(p, (size_t)n, &h) != n)
        return -100;
    *why = NULL;
    return ws_pmd_check_answer(&h, ours, a, why);
}

static void test_pmd_client(void)
{
    struct ws_pmd_params a;
    struct ws_pmd_config ours = pmd_default;
    char offer[WS_PMD_ANSWER_MAX];
    const char *why;

    CHECK(ws_pmd_offer(&ours, offer) == strlen(offer) &&
          strcmp(offer, "permessage-deflate; client_max_window_bits") == 0);
    ours.server_no_context_takeover = 1;
    ours.server_max_window_bits = 10;
    ours.client_max_window_bits = 12;
    ws_pmd_offer(&ours, offer);
    CHECK(strcmp(offer, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
                        "client_max_window_bits=12") == 0);
    /* what our own server answers to our own offer is accepted */
    {
        struct ws_pmd_params sa;
        char ans[WS_PMD_ANSWER_MAX], line[256];
        CHECK(offer1(offer, NULL, &sa, ans) == 1);
        snprintf(line, sizeof line, "Sec-WebSocket-Extensions: %s\r\n", ans);
        CHECK(check_answer(line, &ours, &a, &why) == 1 && a.server_max_window_bits == 10 &&
              a.client_max_window_bits == 12 && a.server_no_context_takeover && !a.client_no_context_takeover);
    }
    ours = pmd_default;
    CHECK(check_answer("", &ours, &a, &why) == 0);
    CHECK(check_answer("", NULL, &a, &why) == 0);
    CHECK(check_answer("Sec-WebSocket-Extensions: permessage-deflate\r\n", &ours, &a, &why) == 1 &&
          a.server_max_window_bits == 15 && a.client_max_window_bits == 15);
    CHECK(check_answer("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=9\r\n", &ours, &a,
                       &why) == 1 && a.client_max_window_bits == 9);
    CHECK(check_answer("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8; "
                       "client_no_context_takeover\r\n", &ours, &a, &why) == 1 &&
          a.server_max_window_bits == 8 && a.client_no_context_takeover);
    /* answers that fail the connection, each with its reason */
    {
        static const char *bad[] = {
            "Sec-WebSocket-Extensions: x-foo\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate; foo\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate;\r\n",
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
            CHECK(check_answer(bad[i], &ours, &a, &why) == WS_EHANDSHAKE && why && *why);
    }
    CHECK(check_answer("Sec-WebSocket-Extensions: permessage-deflate\r\n", NULL, &a, &why) == WS_EHANDSHAKE);
    ours.client_max_window_bits = 10;
    CHECK(check_answer("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=11\r\n", &ours, &a,
                       &why) == WS_EHANDSHAKE);
    CHECK(check_answer("Sec-WebSocket-Extensions: permessage-deflate\r\n", &ours, &a, &why) == 1 &&
          a.client_max_window_bits == 10);
    ours = pmd_default;
    ours.server_max_window_bits = 10;
    CHECK(check_answer("Sec-WebSocket-Extensions: permessage-deflate\r\n", &ours, &a, &why) == WS_EHANDSHAKE);
    CHECK(check_answer("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n", &ours, &a,
                       &why) == WS_EHANDSHAKE);
    CHECK(check_answer("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9\r\n", &ours, &a,
                       &why) == 1 && a.server_max_window_bits == 9);
    ours = pmd_default;
    ours.server_no_context_takeover = 1;
    CHECK(check_answer("Sec-WebSocket-Extensions: permessage-deflate\r\n", &ours, &a, &why) == WS_EHANDSHAKE);
}

/* --- deflate / inflate (proto/deflate.c) ----------------------------------- */

/* Text that repeats itself at every distance up to about 600 bytes (so a
 * window of 8 bits is exercised at its edge), with some noise. */
static void make_text(uint8_t *p, size_t n, unsigned seed)
{
    static const char *words[] = { "alpha", "beta", "gamma", "delta", "\"key\":", "123,", " ", "{", "}" };
    size_t i = 0;
    while (i < n) {
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 7 == 0) {
            p[i++] = (uint8_t)('a' + (seed >> 20) % 26);
        } else {
            const char *w = words[(seed >> 16) % 9];
            for (size_t k = 0; w[k] && i < n; k++)
                p[i++] = (uint8_t)w[k];
        }
    }
}

/* Compress msg in parts pieces with tx, inflate each piece as it comes
 * with rx (through the guard page, fed in pieces of step bytes); 1 if the
 * message comes back whole. *wire: its compressed size. */
static int zround(struct ws_zpool *p, struct ws_zctx *tx, struct ws_zctx *rx, const uint8_t *msg, size_t n,
                  int parts, size_t step, size_t *wire)
{
    struct ws_buf z = WS_BUF_INIT, out = WS_BUF_INIT;
    uint64_t total = 0;
    size_t done = 0;
    int ok = 1;
    *wire = 0;
    for (int k = 0; k < parts && ok; k++) {
        size_t len = k == parts - 1 ? n - done : n / (size_t)parts;
        int fin = k == parts - 1;
        z.len = z.off = 0;
        if (ws_deflate(p, tx, msg + done, len, fin, &z) != WS_OK)
            return 0;
        done += len;
        *wire += z.len;
        if (fin && z.len >= 4 && memcmp(ws_buf_head(&z) + z.len - 4, "\0\0\xff\xff", 4) == 0)
            ok = 0;   /* §7.2.1: the tail is removed */
        for (size_t i = 0; ok && (i < z.len || (i == 0 && z.len == 0)); i += step) {
            size_t take = z.len - i < step ? z.len - i : step;
            int last = fin && i + take >= z.len;
            if (ws_inflate(p, rx, take ? guard_put(ws_buf_head(&z) + i, take) : NULL, take, last, &out, &total,
                           0) != WS_OK)
                ok = 0;
            if (take == 0)
                break;
        }
    }
    ok = ok && out.len == n && total == n && (n == 0 || memcmp(ws_buf_head(&out), msg, n) == 0);
    ws_buf_free(&z);
    ws_buf_free(&out);
    return ok;
}

static void test_deflate(void)
{
    static uint8_t text[300000];
    struct ws_zpool pool = WS_ZPOOL_INIT(4, 1u << 30);
    struct ws_zctx tx, rx;
    size_t wire, wire2;
    make_text(text, sizeof text, 7);

    /* every window, both takeover modes, sizes from empty to large, whole
     * and in fragments, inflated in pieces of every kind */
    for (int bits = 8; bits <= 15; bits++)
        for (int nc = 0; nc <= 1; nc++) {
            static const size_t sizes[] = { 0, 1, 5, 200, 4096, 70000 };
            ws_zctx_init(&tx, WS_Z_DEFLATE, bits, nc, 6, 8);
            ws_zctx_init(&rx, WS_Z_INFLATE, bits, nc, 0, 1);
            for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
                CHECK(zround(&pool, &tx, &rx, text + i * 13, sizes[i], 1, 1 << 20, &wire));
                CHECK(zround(&pool, &tx, &rx, text + i * 7, sizes[i], 3, 7, &wire));
            }
            CHECK(zround(&pool, &tx, &rx, text, 3000, 1, 1, &wire));   /* a byte at a time */
            /* no context: nothing held between messages */
            if (nc)
                CHECK(tx.zs == NULL && rx.zs == NULL && ws_zctx_held(&tx) == 0 && ws_zctx_held(&rx) == 0);
            ws_zctx_free(&pool, &tx);
            ws_zctx_free(&pool, &rx);
        }
    /* an empty message is the one byte 0x00 (§7.2.3.6) */
    {
        struct ws_buf z = WS_BUF_INIT;
        ws_zctx_init(&tx, WS_Z_DEFLATE, 15, 1, 6, 8);
        CHECK(ws_deflate(&pool, &tx, "", 0, 1, &z) == WS_OK && z.len == 1 && ws_buf_head(&z)[0] == 0);
        ws_zctx_free(&pool, &tx);
        ws_buf_free(&z);
    }
    /* RFC 7692 §7.2.3.1: "Hello" compressed is c1 ... ; and it inflates */
    {
        static const uint8_t hello[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };
        struct ws_buf out = WS_BUF_INIT;
        uint64_t total = 0;
        ws_zctx_init(&rx, WS_Z_INFLATE, 15, 0, 0, 1);
        CHECK(ws_inflate(&pool, &rx, guard_put(hello, sizeof hello), sizeof hello, 1, &out, &total, 0) == WS_OK &&
              out.len == 5 && memcmp(ws_buf_head(&out), "Hello", 5) == 0);
        /* §7.2.3.2: the second "Hello" over the same window (context takeover) */
        {
            static const uint8_t again[] = { 0xf2, 0x00, 0x11, 0x00, 0x00 };
            out.len = 0;
            total = 0;
            CHECK(ws_inflate(&pool, &rx, guard_put(again, sizeof again), sizeof again, 1, &out, &total, 0) == WS_OK &&
                  out.len == 5 && memcmp(ws_buf_head(&out), "Hello", 5) == 0);
        }
        /* §7.2.3.3: a stored block; §7.2.3.4: a block with BFINAL, then the next message */
        {
            static const uint8_t stored[] = { 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00 };
            static const uint8_t final[] = { 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00 };
            out.len = 0;
            total = 0;
            CHECK(ws_inflate(&pool, &rx, guard_put(stored, sizeof stored), sizeof stored, 1, &out, &total, 0) ==
                  WS_OK && out.len == 5 && memcmp(ws_buf_head(&out), "Hello", 5) == 0);
            out.len = 0;
            total = 0;
            CHECK(ws_inflate(&pool, &rx, guard_put(final, sizeof final), sizeof final, 1, &out, &total, 0) ==
                  WS_OK && out.len == 5 && memcmp(ws_buf_head(&out), "Hello", 5) == 0);
            out.len = 0;
            total = 0;
            CHECK(ws_inflate(&pool, &rx, guard_put(hello, sizeof hello), sizeof hello, 1, &out, &total, 0) ==
                  WS_OK && out.len == 5 && memcmp(ws_buf_head(&out), "Hello", 5) == 0);
        }
        ws_zctx_free(&pool, &rx);
        ws_buf_free(&out);
    }
    /* a message already on a block boundary before its tail is put back
     * (peers send them): an empty payload, whole or in two empty frames,
     * and a payload that kept its own 00 00 ff ff. Each inflates (to
     * nothing, or its text), first on a context and after others, and the
     * messages after it still inflate over the same window: with and
     * without context takeover, the stream kept warm or not */
    for (int cold = 0; cold <= 1; cold++)
        for (int nc = 0; nc <= 1; nc++)
            for (int kind = 0; kind < 3; kind++) {
                struct ws_zpool warm = WS_ZPOOL_INIT(4, 1u << 30), none = WS_ZPOOL_INIT(0, 0);
                struct ws_zpool *zp = cold ? &none : &warm;
                struct ws_buf z = WS_BUF_INIT, out = WS_BUF_INIT;
                int ok = 1;
                ws_zctx_init(&tx, WS_Z_DEFLATE, 15, nc, 6, 8);
                ws_zctx_init(&rx, WS_Z_INFLATE, 15, nc, 0, 1);
                for (int round = 0; round < 3; round++) {
                    const uint8_t *m = text + 5000 + (size_t)round * 300;
                    uint64_t total = 0;
                    out.len = 0;
                    if (kind == 0) {
                        ok &= ws_inflate(zp, &rx, NULL, 0, 1, &out, &total, 0) == WS_OK && out.len == 0;
                    } else if (kind == 1) {
                        ok &= ws_inflate(zp, &rx, NULL, 0, 0, &out, &total, 0) == WS_OK;
                        ok &= ws_inflate(zp, &rx, NULL, 0, 1, &out, &total, 0) == WS_OK && out.len == 0;
                    } else {
                        /* the sender's sync flush whole: ws_deflate's output, tail put back */
                        z.len = z.off = 0;
                        ok &= ws_deflate(zp, &tx, m, 300, 1, &z) == WS_OK &&
                              ws_buf_append(&z, "\0\0\xff\xff", 4, 0) == WS_OK;
                        for (size_t i = 0; i < z.len; i += 7) {
                            size_t take = z.len - i < 7 ? z.len - i : 7;
                            ok &= ws_inflate(zp, &rx, guard_put(ws_buf_head(&z) + i, take), take, i + take >= z.len,
                                             &out, &total, 0) == WS_OK;
                        }
                        ok &= out.len == 300 && memcmp(ws_buf_head(&out), m, 300) == 0;
                    }
                    if (cold)
                        ok &= rx.zs == NULL && none.live == 0;
                    /* the next messages refer back to the earlier ones */
                    ok &= zround(zp, &tx, &rx, text + (size_t)round * 400, 2000, 1, 1 << 20, &wire);
                    ok &= zround(zp, &tx, &rx, text + (size_t)round * 400 + 100, 2000, 2, 77, &wire);
                }
                CHECK(ok);
                ws_zctx_free(zp, &tx);
                ws_zctx_free(zp, &rx);
                ws_zpool_trim(zp, 0, 0);
                CHECK(zp->live == 0);
                ws_buf_free(&z);
                ws_buf_free(&out);
            }
    /* data that stops inside a real block is refused, even on a fresh
     * stream (the first three bytes of §7.2.3.1's "Hello") */
    {
        static const uint8_t cut[] = { 0xf2, 0x48, 0xcd };
        struct ws_buf out = WS_BUF_INIT;
        uint64_t total = 0;
        for (int nc = 0; nc <= 1; nc++) {
            ws_zctx_init(&rx, WS_Z_INFLATE, 15, nc, 0, 1);
            CHECK(ws_inflate(&pool, &rx, guard_put(cut, sizeof cut), sizeof cut, 1, &out, &total, 0) == WS_EPROTO);
            ws_zctx_free(&pool, &rx);
        }
        ws_buf_free(&out);
    }
    /* context takeover pays: the same message again costs far less */
    ws_zctx_init(&tx, WS_Z_DEFLATE, 15, 0, 6, 8);
    ws_zctx_init(&rx, WS_Z_INFLATE, 15, 0, 0, 1);
    CHECK(zround(&pool, &tx, &rx, text, 2000, 1, 1 << 20, &wire));
    CHECK(zround(&pool, &tx, &rx, text, 2000, 1, 1 << 20, &wire2));
    CHECK(wire2 * 10 < wire);
    ws_zctx_free(&pool, &tx);
    ws_zctx_free(&pool, &rx);
    /* contexts that take turns on a pool of one stream: each one's window
     * is saved and given back, so every message still inflates */
    {
        struct ws_zpool small = WS_ZPOOL_INIT(1, 1u << 30);
        struct ws_zctx t[3], r[3];
        int ok = 1;
        for (int i = 0; i < 3; i++) {
            ws_zctx_init(&t[i], WS_Z_DEFLATE, 9 + i * 3, 0, 6, 8);
            ws_zctx_init(&r[i], WS_Z_INFLATE, 9 + i * 3, 0, 0, 1);
        }
        for (int round = 0; round < 20; round++)
            for (int i = 0; i < 3; i++)
                ok &= zround(&small, &t[i], &r[i], text + (size_t)round * 977 + (size_t)i * 31,
                             1500 + (size_t)round * 50, 1 + round % 3, 100, &wire);
        CHECK(ok);
        CHECK(small.resets > 20 && small.nidle <= 1);
        CHECK(ws_zctx_held(&r[0]) > 0 || r[0].zs != NULL);   /* its window is kept somewhere */
        for (int i = 0; i < 3; i++) {
            ws_zctx_free(&small, &t[i]);
            ws_zctx_free(&small, &r[i]);
        }
        ws_zpool_trim(&small, 0, 0);
        CHECK(small.live == 0 && small.nidle == 0);
    }
    /* an idle context holds only what its messages filled of its window */
    {
        struct ws_zpool none = WS_ZPOOL_INIT(0, 0);   /* nothing stays warm */
        ws_zctx_init(&tx, WS_Z_DEFLATE, 10, 0, 6, 8);
        ws_zctx_init(&rx, WS_Z_INFLATE, 10, 0, 0, 1);
        CHECK(zround(&none, &tx, &rx, text, 300, 1, 1 << 20, &wire));
        CHECK(tx.zs == NULL && rx.zs == NULL && none.live == 0);
        CHECK(ws_zctx_held(&tx) == 300 && ws_zctx_held(&rx) == 300);
        CHECK(zround(&none, &tx, &rx, text + 300, 5000, 2, 1 << 20, &wire));
        CHECK(ws_zctx_held(&tx) == 1024 && ws_zctx_held(&rx) == 1024);
        CHECK(zround(&none, &tx, &rx, text + 300, 5000, 1, 1 << 20, &wire2));
        ws_zctx_free(&none, &tx);
        ws_zctx_free(&none, &rx);
    }
    /* a window of 8 bits: compressed with 9 (zlib's raw deflate has no 8),
     * read back by zlib's raw inflate with 8, ours and a plain one */
    {
        struct ws_buf z = WS_BUF_INIT;
        uint8_t back[20000];
        z_stream zi;
        int ok;
        ws_zctx_init(&tx, WS_Z_DEFLATE, 8, 0, 9, 9);
        ws_zctx_init(&rx, WS_Z_INFLATE, 8, 0, 0, 1);
        CHECK(zround(&pool, &tx, &rx, text, 20000, 1, 1 << 20, &wire));
        CHECK(zround(&pool, &tx, &rx, text + 100, 20000, 2, 333, &wire));
        ws_zctx_free(&pool, &tx);
        ws_zctx_free(&pool, &rx);
        ws_zctx_init(&tx, WS_Z_DEFLATE, 8, 1, 9, 9);
        CHECK(ws_deflate(&pool, &tx, text, 20000, 1, &z) == WS_OK);
        ws_buf_append(&z, "\0\0\xff\xff", 4, 0);
        memset(&zi, 0, sizeof zi);
        CHECK(inflateInit2(&zi, -8) == Z_OK);
        zi.next_in = ws_buf_head(&z);
        zi.avail_in = (uInt)z.len;
        zi.next_out = back;
        zi.avail_out = sizeof back;
        ok = inflate(&zi, Z_SYNC_FLUSH);
        CHECK((ok == Z_OK || ok == Z_BUF_ERROR) && zi.total_out == 20000 && memcmp(back, text, 20000) == 0);
        inflateEnd(&zi);
        ws_zctx_free(&pool, &tx);
        ws_buf_free(&z);
    }
    /* a bomb: 64 MiB of zeros in a few KiB stops at the limit, having
     * inflated at most the limit + 1 byte */
    {
        struct ws_buf z = WS_BUF_INIT, out = WS_BUF_INIT;
        uint64_t total = 0;
        uint8_t *zeros = calloc(1, 1 << 20);
        ws_zctx_init(&tx, WS_Z_DEFLATE, 15, 0, 9, 9);
        for (int i = 0; i < 64; i++)
            CHECK(ws_deflate(&pool, &tx, zeros, 1 << 20, i == 63, &z) == WS_OK);
        CHECK(z.len < 100000);
        ws_zctx_init(&rx, WS_Z_INFLATE, 15, 0, 0, 1);
        CHECK(ws_inflate(&pool, &rx, ws_buf_head(&z), z.len, 1, &out, &total, 1000000) == WS_ETOOBIG);
        CHECK(total == 1000001 && out.len == 1000001 && out.cap <= 1000001 + 65536);
        /* the limit exactly: fine */
        ws_zctx_free(&pool, &rx);
        ws_zctx_init(&rx, WS_Z_INFLATE, 15, 0, 0, 1);
        out.len = 0;
        total = 0;
        CHECK(ws_inflate(&pool, &rx, ws_buf_head(&z), z.len, 1, &out, &total, 64u << 20) == WS_OK &&
              total == 64u << 20);
        ws_zctx_free(&pool, &tx);
        ws_zctx_free(&pool, &rx);
        ws_buf_free(&z);
        ws_buf_free(&out);
        free(zeros);
    }
    /* corrupt data is WS_EPROTO, and the context stays unusable */
    {
        static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x12, 0x34 };
        struct ws_buf out = WS_BUF_INIT;
        uint64_t total = 0;
        ws_zctx_init(&rx, WS_Z_INFLATE, 15, 0, 0, 1);
        CHECK(ws_inflate(&pool, &rx, guard_put(junk, sizeof junk), sizeof junk, 1, &out, &total, 0) == WS_EPROTO);
        CHECK(ws_inflate(&pool, &rx, guard_put(junk, 1), 1, 1, &out, &total, 0) != WS_OK);
        ws_zctx_free(&pool, &rx);
        ws_zctx_init(&rx, WS_Z_INFLATE, 15, 1, 0, 1);
        /* a block type 3 (reserved) */
        CHECK(ws_inflate(&pool, &rx, guard_put("\x07", 1), 1, 1, &out, &total, 0) == WS_EPROTO);
        ws_zctx_free(&pool, &rx);
        ws_buf_free(&out);
    }
    ws_zpool_trim(&pool, 0, 0);
    CHECK(pool.live == 0);
}

/* --- addresses, CIDR ranges ------------------------------------------------ */

/* Parse s (through the guard page) as an IP and format it back. */
static int ip_round(const char *s, const char *want)
{
    struct ws_addr a;
    char out[WS_ADDR_TEXT_MAX];
    size_t n = strlen(s);
    if (!ws_ip_parse((const char *)guard_put(s, n), n, &a))
        return want == NULL;
    ws_addr_format(&a, out, sizeof out);
    return want != NULL && strcmp(out, want) == 0;
}

static int cidr_has(const char *net, const char *ip)
{
    struct ws_cidr c;
    struct ws_addr a;
    return ws_cidr_parse(net, strlen(net), &c) && ws_ip_parse(ip, strlen(ip), &a) && ws_cidr_match(&c, &a);
}

static void test_addr(void)
{
    static const char *const same[] = { "0.0.0.0", "255.255.255.255", "192.0.2.1", "10.0.100.9", "1.20.3.45", "99.100.9.10", "::", "::1",
                                        "2001:db8::1", "1:2:3:4:5:6:7:8", "::ffff:192.0.2.1", "1::",
                                        "fe80::1:2", "2001:db8:0:1:1:1:1:1" };
    static const char *const bad[] = { "", "256.0.0.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1.2.3.", ".1.2.3",
                                       "1..2.3", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "1:", ":1",
                                       "g::", "::1.2.3", "1.2.3.4::", "fe80::1%eth0", " 1.2.3.4", "[::1]",
                                       "1:2:3:4:5:6:7", "::1.2.3.4.5", "1.2.3.-4", "::ffff:1.2.3.04" };
    static const char *const forms[][2] = {
        { "2001:DB8:0:0:0:0:0:1", "2001:db8::1" }, { "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },
        { "0:0:0:0:0:0:0:0", "::" }, { "1:0:0:2:0:0:0:3", "1:0:0:2::3" }, { "0:0:0:0:0:ffff:102:304", "::ffff:1.2.3.4" },
        { "1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0" }, { "::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8" },
        { "0001:00:0::1", "1::1" }, { "::1.2.3.4", "::102:304" },
    };
    struct ws_addr a;
    struct ws_cidr c;
    char out[WS_ADDR_TEXT_MAX + 8];
    size_t i;

    for (i = 0; i < sizeof same / sizeof *same; i++)
        CHECK(ip_round(same[i], same[i]));
    for (i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(ip_round(bad[i], NULL));
    for (i = 0; i < sizeof forms / sizeof *forms; i++)
        CHECK(ip_round(forms[i][0], forms[i][1]));

    /* with a port, as proxies write them */
    CHECK(ws_addr_parse("192.0.2.1:8080", 14, &a) && a.family == WS_AF_INET && a.port == 8080);
    CHECK(ws_addr_parse("[2001:db8::1]:4711", 18, &a) && a.family == WS_AF_INET6 && a.port == 4711);
    CHECK(ws_addr_parse("[::1]", 5, &a) && a.family == WS_AF_INET6 && a.port == 0 && a.bytes[15] == 1);
    CHECK(ws_addr_parse("2001:db8::1", 11, &a) && a.port == 0);
    {
        static const char *const nope[] = { "1.2.3.4:", "1.2.3.4:65536", "[::1", "[1.2.3.4]", "[::1]x",
                                            "1.2.3.4:080", "[::1]:", "host:80", "unknown", "_hidden" };
        for (i = 0; i < sizeof nope / sizeof *nope; i++)
            CHECK(!ws_addr_parse((const char *)guard_put(nope[i], strlen(nope[i])), strlen(nope[i]), &a));
    }
    CHECK(ws_ip_parse("::ffff:10.1.2.3", 15, &a));
    ws_addr_unmap(&a);
    CHECK(a.family == WS_AF_INET && a.bytes[0] == 10 && a.bytes[3] == 3);
    a.family = WS_AF_UNIX;
    CHECK(ws_addr_format(&a, out, sizeof out) == 4 && strcmp(out, "unix") == 0);

    /* ranges */
    CHECK(cidr_has("10.0.0.0/8", "10.255.0.1") && !cidr_has("10.0.0.0/8", "11.0.0.1"));
    CHECK(cidr_has("192.168.0.0/23", "192.168.1.255") && !cidr_has("192.168.0.0/23", "192.168.2.0"));
    CHECK(cidr_has("2001:db8::/32", "2001:db8:ffff::1") && !cidr_has("2001:db8::/32", "2001:db9::"));
    CHECK(cidr_has("127.0.0.1", "127.0.0.1") && !cidr_has("127.0.0.1", "127.0.0.2"));
    CHECK(cidr_has("::1", "::1") && !cidr_has("::1", "::2") && !cidr_has("::1", "127.0.0.1"));
    CHECK(cidr_has("0.0.0.0/0", "203.0.113.9") && !cidr_has("0.0.0.0/0", "::1"));
    CHECK(cidr_has("10.0.0.0/8", "::ffff:10.1.1.1"));   /* IPv4-mapped counts as IPv4 */
    /* fuzz crash f115c991: a range written in the mapped form did not hold
     * its own network address (the address was unmapped, the range not) */
    CHECK(cidr_has("::ffff:10.1.2.3", "::ffff:10.1.2.3") && cidr_has("::ffff:10.1.2.3", "10.1.2.3"));
    CHECK(cidr_has("::ffff:10.0.0.0/104", "10.9.9.9") && !cidr_has("::ffff:10.0.0.0/104", "11.0.0.1"));
    CHECK(!cidr_has("::ffff:10.1.2.3", "10.1.2.4") && cidr_has("::/0", "10.1.2.3"));   /* ::/0 maps all of IPv4 */
    CHECK(ws_cidr_parse("10.1.2.3/8", 10, &c) && ws_cidr_format(&c, out, sizeof out) == 10 &&
          strcmp(out, "10.0.0.0/8") == 0);
    CHECK(ws_cidr_parse("2001:db8::ff/120", 16, &c) && ws_cidr_format(&c, out, sizeof out) > 0 &&
          strcmp(out, "2001:db8::/120") == 0);
    {
        static const char *const nope[] = { "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "::/129", "x/8",
                                            "10.0.0.0/8/8", "/8", "unix" };
        for (i = 0; i < sizeof nope / sizeof *nope; i++)
            CHECK(!ws_cidr_parse((const char *)guard_put(nope[i], strlen(nope[i])), strlen(nope[i]), &c));
    }
    {
        struct ws_cidr nets[2];
        struct ws_trust t = { nets, 2, 0 };
        CHECK(ws_cidr_parse("127.0.0.1", 9, &nets[0]) && ws_cidr_parse("fd00::/8", 8, &nets[1]));
        CHECK(ws_ip_parse("fd12::3", 7, &a) && ws_trust_has(&t, &a));
        CHECK(ws_ip_parse("127.0.0.2", 9, &a) && !ws_trust_has(&t, &a));
        a.family = WS_AF_UNIX;
        CHECK(!ws_trust_has(&t, &a));
        t.unix_peers = 1;
        CHECK(ws_trust_has(&t, &a) && !ws_trust_has(NULL, &a));
    }
}

/* --- the PROXY protocol ---------------------------------------------------- */

/* Every strict prefix of p[0..n) is WS_PARTIAL, through the guard page. */
static int proxy_prefixes_partial(const uint8_t *p, size_t n)
{
    struct ws_proxy px;
    for (size_t i = 0; i < n; i++)
        if (ws_proxy_parse(guard_put(p, i), i, &px) != WS_PARTIAL)
            return 0;
    return 1;
}

static int proxy_parse_s(const char *s, struct ws_proxy *px)
{
    size_t n = strlen(s);
    return ws_proxy_parse(guard_put(s, n), n, px);
}

/* A v2 header: the signature, ver_cmd, fam, the block. */
static size_t proxy_v2(uint8_t *out, int ver_cmd, int fam, const uint8_t *block, size_t blen)
{
    static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
    memcpy(out, sig, 12);
    out[12] = (uint8_t)ver_cmd;
    out[13] = (uint8_t)fam;
    out[14] = (uint8_t)(blen >> 8);
    out[15] = (uint8_t)blen;
    memcpy(out + 16, block, blen);
    return 16 + blen;
}

static void test_proxy(void)
{
    static const char v1[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
    size_t v1len = strlen("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    struct ws_proxy px;
    uint8_t buf[4096], block[600];
    char line[200];
    size_t n, i;

    CHECK(proxy_prefixes_partial((const uint8_t *)v1, v1len));
    CHECK(proxy_parse_s(v1, &px) == (int)v1len);
    CHECK(px.version == 1 && !px.local && px.src.family == WS_AF_INET && px.src.port == 56324 &&
          px.dst.port == 443 && px.src.bytes[0] == 192 && px.src.bytes[3] == 1 && px.dst.bytes[0] == 198);
    CHECK(proxy_parse_s("PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", &px) == 36 &&
          px.src.family == WS_AF_INET6 && px.src.port == 1 && px.dst.port == 65535 && px.dst.bytes[15] == 1);
    CHECK(proxy_parse_s("PROXY UNKNOWN\r\n", &px) == 15 && px.local);
    CHECK(proxy_parse_s("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", &px) == 35 && px.local);
    /* the 107-byte bound, CRLF included */
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 105, "\r\n", 3);
    CHECK(proxy_parse_s(line, &px) == 107 && px.local);
    memcpy(line + 105, "x\r\n", 4);
    CHECK(proxy_parse_s(line, &px) == WS_EPROTO);
    line[107] = 'x';
    CHECK(ws_proxy_parse(guard_put(line, 107), 107, &px) == WS_EPROTO);   /* no CRLF within 107 bytes */
    CHECK(ws_proxy_parse(guard_put(line, 105), 105, &px) == WS_PARTIAL);
    CHECK(ws_proxy_parse(guard_put(line, 106), 106, &px) == WS_EPROTO);   /* no room for the CRLF */
    {
        static const char *const bad[] = {
            "GET / HTTP/1.1\r\n", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n", "PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n",
            "PROXY TCP4 ::1 ::1 1 2\r\n", "PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n", "PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
            "PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", "PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", "PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n",
            "PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n", "PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "PROXYX", "PROXY \r\n",
            "PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n", "PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\r", "PROXY UNKNOWNX\r\n",
            "\r\n\r\n\x01", "PROXY TCP4 1.2.3.4 1.2.3.4 1 \x7f\r\n", "P\r",
        };
        for (i = 0; i < sizeof bad / sizeof *bad; i++)
            CHECK(proxy_parse_s(bad[i], &px) == WS_EPROTO);
    }

    /* version 2 */
    {
        static const uint8_t tcp4[12] = { 192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb };
        n = proxy_v2(buf, 0x21, 0x11, tcp4, sizeof tcp4);
        CHECK(n == 28 && proxy_prefixes_partial(buf, n));
        memcpy(buf + n, "GET", 3);
        CHECK(ws_proxy_parse(guard_put(buf, n + 3), n + 3, &px) == 28);
        CHECK(px.version == 2 && !px.local && px.src.family == WS_AF_INET && px.src.port == 56324 &&
              px.dst.port == 443 && px.src.bytes[0] == 192 && px.dst.bytes[3] == 2 && !px.ssl);
    }
    memset(block, 0, sizeof block);
    block[15] = 1;                 /* src ::1 */
    block[16] = 0x20;              /* dst 2001:db8::2 */
    block[17] = 0x01;
    block[18] = 0x0d;
    block[19] = 0xb8;
    block[31] = 2;
    block[32] = 0x30;
    block[33] = 0x39;              /* sport 12345 */
    block[35] = 80;
    n = proxy_v2(buf, 0x21, 0x21, block, 36);
    CHECK(ws_proxy_parse(guard_put(buf, n), n, &px) == 52 && px.src.family == WS_AF_INET6 &&
          px.src.bytes[15] == 1 && px.src.port == 12345 && px.dst.port == 80 && px.dst.bytes[1] == 0x01);
    /* an SSL TLV with PP2_CLIENT_SSL, then an AWS-like one */
    {
        uint8_t tl[36 + 8 + 10];
        memcpy(tl, block, 36);
        memcpy(tl + 36, "\x20\x00\x05\x01\x00\x00\x00\x00", 8);
        memcpy(tl + 44, "\xea\x00\x07\x01vpce-1", 10);
        n = proxy_v2(buf, 0x21, 0x21, tl, sizeof tl);
        CHECK(ws_proxy_parse(guard_put(buf, n), n, &px) == (int)n && px.ssl);
        tl[38] = 6;   /* the SSL TLV now runs past the next one's end */
        tl[45] = 0x70;
        n = proxy_v2(buf, 0x21, 0x21, tl, sizeof tl);
        CHECK(ws_proxy_parse(guard_put(buf, n), n, &px) == WS_EPROTO);
        n = proxy_v2(buf, 0x21, 0x21, tl, 38);   /* a TLV cut short */
        CHECK(ws_proxy_parse(guard_put(buf, n), n, &px) == WS_EPROTO);
    }
    n = proxy_v2(buf, 0x20, 0x00, block, 0);          /* LOCAL: a health check */
    CHECK(ws_proxy_parse(guard_put(buf, n), n, &px) == 16 && px.local);
    n = proxy_v2(buf, 0x20, 0x12, block, 5);          /* LOCAL ignores the family and the block */
    CHECK(ws_proxy_parse(guard_put(buf, n), n, &px) == 21 && px.local);
    n = proxy_v2(buf, 0x21, 0x00, block, 0);          /* PROXY, AF_UNSPEC: ours stand */
    CHECK(ws_proxy_parse(guard_put(buf, n), n, &px) == 16 && px.local);
    n = proxy_v2(buf, 0x21, 0x31, block, 216);        /* a unix client */
    CHECK(ws_proxy_parse(guard_put(buf, n), n, &px) == 232 && !px.local && px.src.family == WS_AF_UNIX);
    {
        static const struct { int vc, fam; size_t blen; } bad[] = {
            { 0x11, 0x11, 12 },   /* version 1 in a v2 signature */
            { 0x22, 0x11, 12 },   /* command 2 */
            { 0x21, 0x12, 12 },   /* UDP */
            { 0x21, 0x22, 36 },
            { 0x21, 0x32, 216 },
            { 0x21, 0x41, 12 },   /* no such family */
            { 0x21, 0x11, 11 },   /* too short for the addresses */
            { 0x21, 0x21, 35 },
            { 0x21, 0x31, 215 },
        };
        for (i = 0; i < sizeof bad / sizeof *bad; i++) {
            n = proxy_v2(buf, bad[i].vc, bad[i].fam, block, bad[i].blen);
            CHECK(ws_proxy_parse(guard_put(buf, n), n, &px) == WS_EPROTO);
            CHECK(ws_proxy_parse(guard_put(buf, 16), 16, &px) == WS_EPROTO);   /* known from the preamble */
        }
    }
    /* the cap: a length past LUAWS_MAX_PROXY_V2 is refused from its preamble */
    n = proxy_v2(buf, 0x21, 0x11, block, 12);
    buf[14] = (uint8_t)((LUAWS_MAX_PROXY_V2 - 15) >> 8);
    buf[15] = (uint8_t)(LUAWS_MAX_PROXY_V2 - 15);
    CHECK(ws_proxy_parse(guard_put(buf, 16), 16, &px) == WS_EPROTO);
    buf[15] = (uint8_t)(LUAWS_MAX_PROXY_V2 - 16);
    CHECK(ws_proxy_parse(guard_put(buf, 16), 16, &px) == WS_PARTIAL);
}

/* --- Forwarded / X-Forwarded-For ------------------------------------------- */

/* Resolve the client of a request with these header lines from peer,
 * trusting 127.0.0.1, 10.0.0.0/8 and ::1; the client as text (with
 * ":port" when one came), and from/secure. */
static const char *fwd(const char *headers, const char *peer, int *from, int *secure)
{
    static char out[WS_ADDR_TEXT_MAX + 8];
    char req[1024];
    struct ws_http_head h;
    struct ws_cidr nets[3];
    struct ws_trust t = { nets, 3, 1 };
    struct ws_addr p;
    struct ws_forwarded f;
    size_t n;
    ws_cidr_parse("127.0.0.1", 9, &nets[0]);
    ws_cidr_parse("10.0.0.0/8", 10, &nets[1]);
    ws_cidr_parse("::1", 3, &nets[2]);
    n = (size_t)snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: x\r\n%s\r\n", headers);
    if (ws_http_parse_request((const char *)guard_put(req, n), n, &h) != (int)n)
        return "unparsed";
    if (strcmp(peer, "unix") == 0) {
        memset(&p, 0, sizeof p);
        p.family = WS_AF_UNIX;
    } else {
        ws_addr_parse(peer, strlen(peer), &p);
    }
    ws_forwarded_resolve(&h, &t, &p, &f);
    *from = f.from;
    *secure = f.secure;
    n = ws_addr_format(&f.client, out, sizeof out);
    if (f.client.port)
        snprintf(out + n, sizeof out - n, ":%u", f.client.port);
    return out;
}

static void test_forwarded(void)
{
    static const struct { const char *headers, *peer, *client; int from, secure; } cases[] = {
        { "X-Forwarded-For: 203.0.113.7\r\n", "127.0.0.1", "203.0.113.7", WS_FWD_XFF, -1 },
        { "X-Forwarded-For: 1.1.1.1, 203.0.113.7\r\n", "127.0.0.1", "203.0.113.7", WS_FWD_XFF, -1 },
        { "X-Forwarded-For: 203.0.113.7, 10.0.0.5\r\n", "127.0.0.1", "203.0.113.7", WS_FWD_XFF, -1 },
        { "X-Forwarded-For: 10.0.0.6,10.0.0.5\r\n", "127.0.0.1", "10.0.0.6", WS_FWD_XFF, -1 },
        { "X-Forwarded-For: 203.0.113.7, unknown\r\n", "127.0.0.1", "127.0.0.1", WS_FWD_XFF, -1 },
        { "X-Forwarded-For: 198.51.100.1, unknown, 10.0.0.5\r\n", "127.0.0.1", "10.0.0.5", WS_FWD_XFF, -1 },
        { "X-Forwarded-For: 203.0.113.7\r\n", "192.0.2.9", "192.0.2.9", WS_FWD_NONE, -1 },   /* untrusted peer */
        { "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n", "192.0.2.9", "192.0.2.9", WS_FWD_NONE, -1 },
        { "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 203.0.113.7\r\n", "::1", "203.0.113.7", WS_FWD_XFF, -1 },
        { "X-Forwarded-For: [2001:db8::7]:4711, ::ffff:10.1.1.1\r\n", "unix", "2001:db8::7:4711", WS_FWD_XFF, -1 },
        { "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n", "127.0.0.1", "203.0.113.7", WS_FWD_XFF, 1 },
        { "X-Forwarded-Proto: http, HTTPS\r\nX-Forwarded-For: 203.0.113.7\r\n", "127.0.0.1", "203.0.113.7", WS_FWD_XFF, 1 },
        { "X-Forwarded-Proto: http\r\n", "127.0.0.1", "127.0.0.1", WS_FWD_NONE, 0 },
        { "X-Forwarded-For: , 203.0.113.7 ,\r\n", "127.0.0.1", "203.0.113.7", WS_FWD_XFF, -1 },
        { "X-Forwarded-For: \r\n", "127.0.0.1", "127.0.0.1", WS_FWD_XFF, -1 },
        { "Forwarded: for=192.0.2.60;proto=https;by=203.0.113.43\r\n", "127.0.0.1", "192.0.2.60", WS_FWD_FORWARDED, 1 },
        { "Forwarded: for=\"[2001:db8:cafe::17]:4711\"\r\n", "127.0.0.1", "2001:db8:cafe::17:4711", WS_FWD_FORWARDED, -1 },
        { "Forwarded: for=198.51.100.1, for=192.0.2.43;proto=http\r\n", "127.0.0.1", "192.0.2.43", WS_FWD_FORWARDED, 0 },
        { "Forwarded: For=192.0.2.43; Proto=HTTPS, for=10.0.0.1\r\n", "127.0.0.1", "192.0.2.43", WS_FWD_FORWARDED, 1 },
        { "Forwarded: for=unknown\r\n", "127.0.0.1", "127.0.0.1", WS_FWD_FORWARDED, -1 },
        { "Forwarded: for=_hidden, for=10.0.0.1\r\n", "127.0.0.1", "10.0.0.1", WS_FWD_FORWARDED, -1 },
        { "Forwarded: proto=https\r\n", "127.0.0.1", "127.0.0.1", WS_FWD_FORWARDED, 1 },
        { "Forwarded: for=\r\n", "127.0.0.1", "127.0.0.1", WS_FWD_NONE, -1 },
        { "Forwarded: for=\"192.0.2.1\r\n", "127.0.0.1", "127.0.0.1", WS_FWD_NONE, -1 },
        { "Forwarded: for=192.0.2.1 x\r\n", "127.0.0.1", "127.0.0.1", WS_FWD_NONE, -1 },
        { "Forwarded: for=\"\\[::1]\"\r\n", "127.0.0.1", "::1", WS_FWD_FORWARDED, -1 },
        { "Forwarded: for=192.0.2.1\r\nX-Forwarded-For: 203.0.113.7\r\n", "127.0.0.1", "203.0.113.7", WS_FWD_XFF, -1 },
        { "Forwarded: for=192.0.2.1\r\n", "203.0.113.1", "203.0.113.1", WS_FWD_NONE, -1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int from = -9, secure = -9;
        const char *got = fwd(cases[i].headers, cases[i].peer, &from, &secure);
        int ok = strcmp(got, cases[i].client) == 0 && from == cases[i].from && secure == cases[i].secure;
        if (!ok)
            fprintf(stderr, "forwarded case %zu: got %s from %d secure %d\n", i, got, from, secure);
        CHECK(ok);
    }
    {   /* more hops than are kept: the rightmost WS_FORWARDED_HOPS decide */
        char h[900];
        size_t n = (size_t)snprintf(h, sizeof h, "X-Forwarded-For: 203.0.113.1");
        int from, secure;
        for (int k = 0; k < 40; k++)
            n += (size_t)snprintf(h + n, sizeof h - n, ", 10.0.0.%d", k);
        snprintf(h + n, sizeof h - n, "\r\n");
        CHECK(strcmp(fwd(h, "127.0.0.1", &from, &secure), "10.0.0.8") == 0);
    }
}

int main(void)
{
    guard_init(1 << 18);
    test_buffer();
    test_reader();
    test_reader_rsv1();
    test_mask_utf8();
    test_http();
    test_http_known();
    test_keys();
    test_chunked();
    test_body_framing();
    test_pmd_negotiate();
    test_pmd_client();
    test_deflate();
    test_addr();
    test_proxy();
    test_forwarded();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
