/* SPDX-License-Identifier: MIT
 *
 * codec_test.c -- C unit harness for the pure codecs, for what the busted
 * specs cannot see: the buffer contract (no Lua binding), and reads past the
 * end of the input, caught by putting every input right before a guard page
 * (picohttpparser's test.c trick) in addition to ASan.
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

#include "proto/buffer.h"
#include "proto/frame.h"
#include "proto/handshake.h"
#include "proto/http.h"
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

int main(void)
{
    guard_init(1 << 18);
    test_buffer();
    test_reader();
    test_mask_utf8();
    test_http();
    test_chunked();
    test_body_framing();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
