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

#include "proto/addr.h"
#include "proto/buffer.h"
#include "proto/forwarded.h"
#include "proto/frame.h"
#include "proto/handshake.h"
#include "proto/http.h"
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
    static const char *const same[] = { "0.0.0.0", "255.255.255.255", "192.0.2.1", "::", "::1",
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
    test_mask_utf8();
    test_http();
    test_chunked();
    test_body_framing();
    test_addr();
    test_proxy();
    test_forwarded();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
