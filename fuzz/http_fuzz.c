/* SPDX-License-Identifier: MIT
 *
 * fuzz/http_fuzz.c -- libFuzzer target: the HTTP/1.1 head parsers
 * (csrc/proto/http.c) and the opening-handshake checks on what they return
 * (csrc/proto/handshake.c).
 *
 * The whole input is one head, parsed both as a request and as a response,
 * from a copy that ends at a guard page. For each parser:
 *   - the result is a length > 0, WS_PARTIAL, WS_EHTTP or WS_EHEADERS, and
 *     never WS_PARTIAL past LUAWS_MAX_HEAD_BYTES bytes;
 *   - the same bytes at another address give the same answer, with the same
 *     offsets (the parser is stateless);
 *   - a length is <= the input and <= LUAWS_MAX_HEAD_BYTES and ends at a
 *     LF; every pointer it returns (method, target, reason, header names
 *     and values) lies inside the head; names are tokens, values hold no CR,
 *     LF or other control but HTAB and no whitespace at either end; the
 *     head alone parses to the same length; and every strict prefix of the
 *     head is WS_PARTIAL (all of them up to 256 bytes; beyond, those around
 *     each line end, the last 16 and a stride);
 *   - WS_EHTTP stays WS_EHTTP when more bytes are appended (the byte that
 *     decided it does not change);
 *   - ws_http_header finds the first header of each name (checked against a
 *     plain loop), and ws_http_has_token agrees with a plain splitter;
 *   - the index of known names (ws_http_known, h->repeated) says what a plain
 *     loop over the headers says, for each of them.
 * For a parsed request, ws_handshake_check answers 0, 400, 405 or 426, with
 * a reason exactly when it is not 0 and the same answer without one; a
 * request it accepts is an upgrade (ws_handshake_is_upgrade) with a 24-byte
 * key, and its Sec-WebSocket-Accept is 28 base64 characters. ws_accept_key
 * is also run on the first header value, of any length.
 *
 * Build: make fuzz-build (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http.h"
#include "proto/handshake.h"
#include "guard.h"

#define CHECK FUZZ_CHECK

/* Check every strict prefix of heads up to this size; sample longer ones. */
#define ALL_PREFIXES_MAX 256

typedef int (*parse_fn)(const char *buf, size_t len, struct ws_http_head *h);

/* p[0..n) lies inside [lo, hi). A NULL pointer with n == 0 passes. */
static int inside(const char *p, size_t n, const char *lo, const char *hi)
{
    if (p == NULL)
        return n == 0;
    return p >= lo && p <= hi && n <= (size_t)(hi - p);
}

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int same_ci(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* Reference for ws_http_has_token: split at commas, trim SP/HTAB, compare. */
static int ref_has_token(const char *v, size_t n, const char *tok, size_t tn)
{
    size_t start = 0;

    if (tn == 0)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || v[i] == ',') {
            size_t a = start, b = i;
            while (a < b && (v[a] == ' ' || v[a] == '\t'))
                a++;
            while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                b--;
            if (same_ci(v + a, b - a, tok, tn))
                return 1;
            start = i + 1;
        }
    }
    return 0;
}

/* The same parse results, field by field, relative to each buffer. */
static void same_head(int rc1, const struct ws_http_head *a, const char *abuf,
                      int rc2, const struct ws_http_head *b, const char *bbuf)
{
#define SAME_PTR(x, y) CHECK(((x) == NULL && (y) == NULL) \
                             || ((x) != NULL && (y) != NULL && (x) - abuf == (y) - bbuf))
    CHECK(rc1 == rc2);
    if (rc1 <= 0)
        return;
    SAME_PTR(a->method, b->method);
    CHECK(a->method_len == b->method_len);
    SAME_PTR(a->target, b->target);
    CHECK(a->target_len == b->target_len);
    SAME_PTR(a->reason, b->reason);
    CHECK(a->reason_len == b->reason_len);
    CHECK(a->status == b->status && a->minor_version == b->minor_version);
    CHECK(a->num_headers == b->num_headers);
    for (size_t i = 0; i < a->num_headers; i++) {
        SAME_PTR(a->headers[i].name, b->headers[i].name);
        SAME_PTR(a->headers[i].value, b->headers[i].value);
        CHECK(a->headers[i].name_len == b->headers[i].name_len);
        CHECK(a->headers[i].value_len == b->headers[i].value_len);
    }
#undef SAME_PTR
}

/* A parsed head: the shape of every field. */
static void check_fields(const char *buf, int rc, const struct ws_http_head *h, int request)
{
    const char *end = buf + rc;

    CHECK(buf[rc - 1] == '\n');
    CHECK(h->minor_version >= 0 && h->minor_version <= 9);
    if (request) {
        CHECK(h->method_len > 0 && inside(h->method, h->method_len, buf, end));
        for (size_t i = 0; i < h->method_len; i++)
            CHECK(is_tchar((unsigned char)h->method[i]));
        CHECK(h->target_len > 0 && inside(h->target, h->target_len, buf, end));
        for (size_t i = 0; i < h->target_len; i++)
            CHECK((unsigned char)h->target[i] > 0x20 && h->target[i] != 0x7F);
    } else {
        CHECK(h->status >= 0 && h->status <= 999);
        CHECK(inside(h->reason, h->reason_len, buf, end));
        for (size_t i = 0; i < h->reason_len; i++)
            CHECK(h->reason[i] == '\t' || ((unsigned char)h->reason[i] >= 0x20 && h->reason[i] != 0x7F));
    }
    CHECK(h->num_headers <= LUAWS_MAX_HEADERS);
    for (size_t i = 0; i < h->num_headers; i++) {
        const struct ws_http_header *hd = &h->headers[i];

        CHECK(hd->name_len > 0 && inside(hd->name, hd->name_len, buf, end));
        CHECK(inside(hd->value, hd->value_len, buf, end));
        for (size_t k = 0; k < hd->name_len; k++)
            CHECK(is_tchar((unsigned char)hd->name[k]));
        for (size_t k = 0; k < hd->value_len; k++) {
            unsigned char c = (unsigned char)hd->value[k];
            CHECK(c == '\t' || (c >= 0x20 && c != 0x7F));
        }
        if (hd->value_len > 0) {
            CHECK(hd->value[0] != ' ' && hd->value[0] != '\t');
            CHECK(hd->value[hd->value_len - 1] != ' ' && hd->value[hd->value_len - 1] != '\t');
        }
    }
}

/* ws_http_header and ws_http_has_token against plain loops. */
static void check_lookups(const struct ws_http_head *h)
{
    char name[64], token[64];

    for (size_t i = 0; i < h->num_headers; i++) {
        const struct ws_http_header *hd = &h->headers[i];
        size_t first = i, vlen = (size_t)-1, tn;
        const char *v;

        if (hd->name_len >= sizeof name)
            continue;
        memcpy(name, hd->name, hd->name_len);
        name[hd->name_len] = '\0';
        for (size_t k = 0; k < i; k++)
            if (same_ci(h->headers[k].name, h->headers[k].name_len, name, hd->name_len)) {
                first = k;
                break;
            }
        v = ws_http_header(h, name, &vlen);
        CHECK(v == h->headers[first].value && vlen == h->headers[first].value_len);

        /* A token taken from the value itself (its first element), and the name. */
        tn = 0;
        while (tn < hd->value_len && tn < sizeof token - 1 && hd->value[tn] != ',')
            tn++;
        memcpy(token, hd->value, tn);
        token[tn] = '\0';
        tn = strlen(token);               /* a NUL in a value cannot occur, but be exact */
        CHECK(ws_http_has_token(hd->value, hd->value_len, token)
              == ref_has_token(hd->value, hd->value_len, token, tn));
        CHECK(ws_http_has_token(hd->value, hd->value_len, name)
              == ref_has_token(hd->value, hd->value_len, name, hd->name_len));
    }
}

/* ws_http_known against a plain case-blind loop, for every known name. */
static void check_known(const struct ws_http_head *h)
{
    static const char *const names[WS_HTTP_KNOWN] = {
        [WS_H_HOST] = "host", [WS_H_UPGRADE] = "upgrade", [WS_H_CONNECTION] = "connection",
        [WS_H_ORIGIN] = "origin", [WS_H_EXPECT] = "expect", [WS_H_CONTENT_LENGTH] = "content-length",
        [WS_H_TRANSFER_ENCODING] = "transfer-encoding", [WS_H_SEC_WEBSOCKET_KEY] = "sec-websocket-key",
        [WS_H_SEC_WEBSOCKET_VERSION] = "sec-websocket-version",
        [WS_H_SEC_WEBSOCKET_PROTOCOL] = "sec-websocket-protocol",
        [WS_H_SEC_WEBSOCKET_EXTENSIONS] = "sec-websocket-extensions",
        [WS_H_SEC_WEBSOCKET_ACCEPT] = "sec-websocket-accept", [WS_H_FORWARDED] = "forwarded",
        [WS_H_X_FORWARDED_FOR] = "x-forwarded-for", [WS_H_X_FORWARDED_PROTO] = "x-forwarded-proto",
    };
    for (int k = 0; k < WS_HTTP_KNOWN; k++) {
        const struct ws_http_header *first = NULL;
        int count = 0;
        for (size_t i = 0; i < h->num_headers; i++)
            if (same_ci(h->headers[i].name, h->headers[i].name_len, names[k], strlen(names[k]))) {
                if (!first)
                    first = &h->headers[i];
                count++;
            }
        CHECK(ws_http_known(h, k) == first);
        CHECK(((h->repeated >> k) & 1) == (count > 1));
    }
}

/* RFC 6455 §4.2.1 checks on a parsed request. */
static void check_handshake(const struct ws_http_head *h)
{
    const char *why = "unset";
    int status = ws_handshake_check(h, &why);
    char accept[WS_ACCEPT_LEN + 1];

    CHECK(status == 0 || status == 400 || status == 405 || status == 426);
    CHECK((status == 0) == (why == NULL));
    CHECK(ws_handshake_check(h, NULL) == status);
    if (status == 0) {
        size_t klen = 0;
        const char *key = ws_http_header(h, "Sec-WebSocket-Key", &klen);

        CHECK(ws_handshake_is_upgrade(h));
        CHECK(key != NULL && klen == WS_KEY_LEN);
        CHECK(h->method_len == 3 && memcmp(h->method, "GET", 3) == 0);
        CHECK(h->minor_version >= 1);
        memset(accept, 0, sizeof accept);
        CHECK(ws_accept_key(key, klen, accept) == WS_OK);
        CHECK(strlen(accept) == WS_ACCEPT_LEN && accept[WS_ACCEPT_LEN - 1] == '=');
    }
    if (h->num_headers > 0) {            /* any length: the streamed digest path too */
        const struct ws_http_header *hd = &h->headers[0];
        memset(accept, 0, sizeof accept);
        CHECK(ws_accept_key(hd->value, hd->value_len, accept) == WS_OK);
        CHECK(strlen(accept) == WS_ACCEPT_LEN);
    }
}

static void check_parser(parse_fn parse, const uint8_t *data, size_t size, int request)
{
    struct ws_http_head h, h2;
    const char *buf = (const char *)guard_put(data, size);
    int rc = parse(buf, size, &h), rc2;
    char *copy = malloc(size + 4);

    CHECK(copy != NULL);
    CHECK(rc > 0 || rc == WS_PARTIAL || rc == WS_EHTTP || rc == WS_EHEADERS);
    if (size > LUAWS_MAX_HEAD_BYTES)
        CHECK(rc != WS_PARTIAL);

    /* Stateless: the same bytes elsewhere, the same answer. */
    memcpy(copy, data, size);
    rc2 = parse(copy, size, &h2);
    same_head(rc, &h, buf, rc2, &h2, copy);

    if (rc > 0) {
        size_t len = (size_t)rc, step;

        CHECK(len <= size && len <= LUAWS_MAX_HEAD_BYTES);
        check_fields(buf, rc, &h, request);
        check_lookups(&h);
        check_known(&h);
        if (request)
            check_handshake(&h);

        /* The head alone: the same parse (nothing after it was read). */
        buf = (const char *)guard_put(data, len);
        rc2 = parse(buf, len, &h2);
        CHECK(rc2 == rc);
        /* Every strict prefix is partial. Beyond ALL_PREFIXES_MAX: the
         * prefixes around every line end (where a parser decides whether a
         * line or the head is complete), the last 16, and a stride of 64. */
        step = len <= ALL_PREFIXES_MAX ? 1 : len / 64;
        for (size_t k = 0; k < len; k++) {
            int near_eol = data[k] == '\n' || data[k] == '\r'
                || (k > 0 && data[k - 1] == '\n') || (k > 0 && data[k - 1] == '\r');
            if (k % step != 0 && k + 16 < len && !near_eol)
                continue;
            buf = (const char *)guard_put(data, k);
            CHECK(parse(buf, k, &h2) == WS_PARTIAL);
        }
    } else if (rc == WS_EHTTP && size + 4 <= LUAWS_MAX_HEAD_BYTES) {
        /* The byte that made it bad is still there: still bad. */
        memcpy(copy + size, "\r\n\r\n", 4);
        buf = (const char *)guard_put(copy, size + 4);
        CHECK(parse(buf, size + 4, &h2) == WS_EHTTP);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_parser(ws_http_parse_request, data, size, 1);
    check_parser(ws_http_parse_response, data, size, 0);
    return 0;
}
