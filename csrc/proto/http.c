/* SPDX-License-Identifier: MIT
 *
 * http.c -- the bounded HTTP/1.1 head parser (RFC 9112 §2-§5) behind the
 * WebSocket opening handshake, and the few helpers the handshake needs
 * (header lookup, token lists §5.6.1 of RFC 9110, reason phrases).
 *
 * Design criteria (see http.h for the contract):
 *   - stateless and allocation-free: the caller parses again from the start
 *     after each read, and the head is at most LUAWS_MAX_HEAD_BYTES, so the
 *     cost is bounded; the result points into the caller's buffer;
 *   - it reads left to right and stops at the first byte that decides: a
 *     byte that can never be valid gives WS_EHTTP even when the head is not
 *     complete yet, running out of bytes gives WS_PARTIAL, and a head that
 *     does not end within the byte limit gives WS_EHEADERS. A prefix of a
 *     valid head is therefore always WS_PARTIAL;
 *   - strict where laxness has caused request smuggling: header names are
 *     tokens with the colon right after them (RFC 9112 §5.1), obs-fold is
 *     refused (§5.2), NUL and other controls are refused everywhere except
 *     HTAB in field values; a bare LF ends a line like CRLF (§2.2).
 *
 * The body of a plain request: ws_http_body_framing reads its framing from
 * the head (RFC 9112 §6), and ws_chunked_decode is an incremental decoder of
 * the chunked coding (§7.1) that works in place, byte by byte, so any split
 * of the input gives the same result and nothing is buffered here.
 *
 * It does not: read from a socket or hold a body, decode percent-escapes or
 * split the target, join repeated headers, skip empty lines before the
 * request line, or accept any version other than HTTP/1.x.
 */
#include <string.h>

#include "proto/hex.h"
#include "proto/http.h"

/* Where parsing stands: p moves toward end; over says whether the caller's
 * buffer goes on past end (it was cut at the head limit). */
struct cursor {
    const char *p;
    const char *end;
    int over;
};

/* Running out of bytes: wait for more, unless the head limit was the end. */
static int out_of_input(const struct cursor *c)
{
    return c->over ? WS_EHEADERS : WS_PARTIAL;
}

/* Byte classes, one lookup per byte. H_TCHAR: RFC 9110 §5.6.2 tchar =
 * "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" /
 * "`" / "|" / "~" / DIGIT / ALPHA, the bytes of a header name or method.
 * H_VCHAR: a visible byte of a field value, VCHAR or obs-text (§5.5), which
 * is every byte above SP but DEL. */
enum { H_TCHAR = 1, H_VCHAR = 2 };

#define T (H_TCHAR | H_VCHAR)
#define V H_VCHAR
#define V16 V, V, V, V, V, V, V, V, V, V, V, V, V, V, V, V
static const unsigned char hclass[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x10 */
    0, T, V, T, T, T, T, T, V, V, T, T, V, T, T, V,   /* 0x20 */
    T, T, T, T, T, T, T, T, T, T, V, V, V, V, V, V,   /* 0x30 */
    V, T, T, T, T, T, T, T, T, T, T, T, T, T, T, T,   /* 0x40 */
    T, T, T, T, T, T, T, T, T, T, T, V, V, V, T, T,   /* 0x50 */
    T, T, T, T, T, T, T, T, T, T, T, T, T, T, T, T,   /* 0x60 */
    T, T, T, T, T, T, T, T, T, T, T, V, T, V, T, 0,   /* 0x70 */
    V16, V16, V16, V16, V16, V16, V16, V16            /* 0x80-0xFF: obs-text */
};
#undef T
#undef V
#undef V16

static int is_tchar(unsigned char ch)
{
    return hclass[ch] & H_TCHAR;
}

/* A byte allowed in a field value or reason phrase: HTAB, SP, VCHAR and
 * obs-text (RFC 9110 §5.5), i.e. no controls but HTAB, no DEL. */
static int is_field_char(unsigned char ch)
{
    return ch == '\t' || ch == ' ' || (hclass[ch] & H_VCHAR);
}

#define ONES 0x0101010101010101u
#define HIGHS 0x8080808080808080u

/* The first byte of p[0..end) that is not a visible field-value byte, or
 * end. Eight at a time: a byte below 0x21 or equal to 0x7F sets its high
 * bit in the word's flags (bytes from 0x80 on never do), and the lowest
 * flag is always a true one, so on a little-endian CPU it says where. */
static const char *value_run(const char *p, const char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t w, del, flags;
        memcpy(&w, p, 8);
        del = w ^ (0x7Fu * ONES);
        flags = ((w - 0x21u * ONES) | (del - ONES)) & ~w & HIGHS;
        if (flags)
            return p + (__builtin_ctzll(flags) >> 3);
        p += 8;
    }
#endif
    while (p < end && (hclass[(unsigned char)*p] & H_VCHAR))
        p++;
    return p;
}

/* ASCII case-insensitive equality of n bytes (no locale). */
static int ascii_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x == y)
            continue;
        /* equal but for case: they differ in bit 5 only, and are a letter */
        if ((x ^ y) != 0x20 || (unsigned)(x | 0x20) - 'a' >= 26u)
            return 0;
    }
    return 1;
}

/*
** A non-empty token ended by the byte stop, which is consumed. Used for the
** method (stop SP) and header names (stop ':', so whitespace before the
** colon is refused, RFC 9112 §5.1).
*/
static int parse_token(struct cursor *c, const char **s, size_t *n, char stop)
{
    const char *p = c->p, *start = p, *end = c->end;

    while (p < end && (hclass[(unsigned char)*p] & H_TCHAR))
        p++;                                   /* stop is never a tchar */
    c->p = p;
    if (p == end)
        return out_of_input(c);
    if (*p != stop || p == start)
        return WS_EHTTP;
    *s = start;
    *n = (size_t)(p - start);
    c->p = p + 1;
    return WS_OK;
}

/* The request-target (RFC 9112 §3.2): visible bytes up to SP, which is
 * consumed. Bytes above 0x7E are let through; controls and DEL are not. */
static int parse_target(struct cursor *c, const char **s, size_t *n)
{
    const char *start = c->p;

    for (;;) {
        if (c->p == c->end)
            return out_of_input(c);
        unsigned char ch = (unsigned char)*c->p;
        if (ch == ' ')
            break;
        if (ch < 0x21 || ch == 0x7F)
            return WS_EHTTP;
        c->p++;
    }
    if (c->p == start)
        return WS_EHTTP;
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
    return WS_OK;
}

/* Exactly the bytes of lit (a prefix of them is partial). */
static int expect_literal(struct cursor *c, const char *lit)
{
    for (; *lit; lit++) {
        if (c->p == c->end)
            return out_of_input(c);
        if (*c->p != *lit)
            return WS_EHTTP;
        c->p++;
    }
    return WS_OK;
}

/* HTTP-version = "HTTP/1." DIGIT (RFC 9112 §2.3; only major version 1). */
static int parse_version(struct cursor *c, int *minor)
{
    int rc = expect_literal(c, "HTTP/1.");

    if (rc != WS_OK)
        return rc;
    if (c->p == c->end)
        return out_of_input(c);
    if (*c->p < '0' || *c->p > '9')
        return WS_EHTTP;
    *minor = *c->p++ - '0';
    return WS_OK;
}

/* A line end: CRLF or a bare LF (RFC 9112 §2.2). A CR alone is an error. */
static int expect_eol(struct cursor *c)
{
    if (c->p == c->end)
        return out_of_input(c);
    if (*c->p == '\r') {
        c->p++;
        if (c->p == c->end)
            return out_of_input(c);
        if (*c->p != '\n')
            return WS_EHTTP;
    } else if (*c->p != '\n') {
        return WS_EHTTP;
    }
    c->p++;
    return WS_OK;
}

/* 8 (or 4) bytes of p as a word: read by memcpy, any alignment. */
static uint64_t load8(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static uint32_t load4(const char *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

/*
** Is the header name s[0..n) (a token: the parser checked it) lit, a lower
** case name of n >= 4 bytes? Word at a time, each byte ORed with 0x20: on
** a letter that is the lower case, and no other tchar becomes a letter,
** a digit or '-' (only '^' and '_' change, to '~' and DEL).
*/
static int name_is(const char *s, size_t n, const char *lit)
{
    size_t i;
    if (n < 8)
        return (load4(s) | 0x20202020u) == load4(lit) &&
               (load4(s + n - 4) | 0x20202020u) == load4(lit + n - 4);
    for (i = 0; i + 8 <= n; i += 8)
        if ((load8(s + i) | 0x2020202020202020u) != load8(lit + i))
            return 0;
    return i == n || (load8(s + n - 8) | 0x2020202020202020u) == load8(lit + n - 8);
}

/* Which of enum ws_http_known the name s[0..n) is, or -1. */
static int known_name(const char *s, size_t n)
{
    switch (n) {
    case 4:
        return name_is(s, n, "host") ? WS_H_HOST : -1;
    case 6:
        return name_is(s, n, "origin") ? WS_H_ORIGIN : name_is(s, n, "expect") ? WS_H_EXPECT : -1;
    case 7:
        return name_is(s, n, "upgrade") ? WS_H_UPGRADE : -1;
    case 9:
        return name_is(s, n, "forwarded") ? WS_H_FORWARDED : -1;
    case 10:
        return name_is(s, n, "connection") ? WS_H_CONNECTION : -1;
    case 14:
        return name_is(s, n, "content-length") ? WS_H_CONTENT_LENGTH : -1;
    case 15:
        return name_is(s, n, "x-forwarded-for") ? WS_H_X_FORWARDED_FOR : -1;
    case 17:
        return name_is(s, n, "sec-websocket-key") ? WS_H_SEC_WEBSOCKET_KEY
             : name_is(s, n, "transfer-encoding") ? WS_H_TRANSFER_ENCODING
             : name_is(s, n, "x-forwarded-proto") ? WS_H_X_FORWARDED_PROTO : -1;
    case 20:
        return name_is(s, n, "sec-websocket-accept") ? WS_H_SEC_WEBSOCKET_ACCEPT : -1;
    case 21:
        return name_is(s, n, "sec-websocket-version") ? WS_H_SEC_WEBSOCKET_VERSION : -1;
    case 22:
        return name_is(s, n, "sec-websocket-protocol") ? WS_H_SEC_WEBSOCKET_PROTOCOL : -1;
    case 24:
        return name_is(s, n, "sec-websocket-extensions") ? WS_H_SEC_WEBSOCKET_EXTENSIONS : -1;
    default:
        return -1;
    }
}

/*
** Header lines up to and including the blank line that ends the head
** (RFC 9112 §5: field-name ":" OWS field-value OWS). The value is kept
** without the whitespace around it; the known names are noted (h->known).
*/
static int parse_headers(struct cursor *c, struct ws_http_head *h)
{
    h->num_headers = 0;
    for (;;) {
        struct ws_http_header *hd;
        const char *p, *end = c->end, *vend;
        int rc, k;

        if (c->p == end)
            return out_of_input(c);
        if (*c->p == '\r' || *c->p == '\n')
            return expect_eol(c);             /* the blank line: done */
        if (*c->p == ' ' || *c->p == '\t')
            return WS_EHTTP;                  /* obs-fold (§5.2) or space before the first field (§2.2) */
        if (h->num_headers == LUAWS_MAX_HEADERS)
            return WS_EHEADERS;
        hd = &h->headers[h->num_headers];
        rc = parse_token(c, &hd->name, &hd->name_len, ':');
        if (rc != WS_OK)
            return rc;
        p = c->p;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        hd->value = vend = p;
        for (;;) {                            /* runs of visible bytes, with SP/HTAB between */
            const char *run = p;
            p = value_run(p, end);
            if (p != run)
                vend = p;
            if (p == end) {
                c->p = p;
                return out_of_input(c);
            }
            if (*p == '\r' || *p == '\n')
                break;
            if (*p != ' ' && *p != '\t') {
                c->p = p;
                return WS_EHTTP;              /* a control byte or DEL */
            }
            p++;
        }
        hd->value_len = (size_t)(vend - hd->value);
        c->p = p;
        rc = expect_eol(c);
        if (rc != WS_OK)
            return rc;
        k = known_name(hd->name, hd->name_len);
        if (k >= 0) {
            if (!h->known[k])
                h->known[k] = (uint8_t)(h->num_headers + 1);
            else
                h->repeated |= (uint16_t)(1u << k);
        }
        h->num_headers++;
    }
}

/* Start a parse: clear the result and cut the input at the head limit. */
static void begin(struct cursor *c, const char *buf, size_t len, struct ws_http_head *h)
{
    c->p = buf;
    c->over = len > LUAWS_MAX_HEAD_BYTES;
    c->end = buf + (c->over ? LUAWS_MAX_HEAD_BYTES : len);
    h->method = NULL;
    h->method_len = 0;
    h->target = NULL;
    h->target_len = 0;
    h->status = 0;
    h->reason = NULL;
    h->reason_len = 0;
    h->minor_version = 0;
    h->num_headers = 0;
    memset(h->known, 0, sizeof h->known);
    h->repeated = 0;
}

/*
** request-line = method SP request-target SP HTTP-version CRLF (RFC 9112
** §3), then the headers. Returns the head's length or a WS_* code.
*/
int ws_http_parse_request(const char *buf, size_t len, struct ws_http_head *h)
{
    struct cursor c;
    int rc;

    begin(&c, buf, len, h);
    if ((rc = parse_token(&c, &h->method, &h->method_len, ' ')) != WS_OK
        || (rc = parse_target(&c, &h->target, &h->target_len)) != WS_OK
        || (rc = parse_version(&c, &h->minor_version)) != WS_OK
        || (rc = expect_eol(&c)) != WS_OK
        || (rc = parse_headers(&c, h)) != WS_OK)
        return rc;
    return (int)(c.p - buf);
}

/*
** status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC
** 9112 §4). A missing SP before an empty reason is tolerated: servers omit it.
*/
int ws_http_parse_response(const char *buf, size_t len, struct ws_http_head *h)
{
    struct cursor c;
    int rc;

    begin(&c, buf, len, h);
    if ((rc = parse_version(&c, &h->minor_version)) != WS_OK
        || (rc = expect_literal(&c, " ")) != WS_OK)
        return rc;
    for (int i = 0; i < 3; i++) {              /* status-code = 3DIGIT */
        if (c.p == c.end)
            return out_of_input(&c);
        if (*c.p < '0' || *c.p > '9')
            return WS_EHTTP;
        h->status = h->status * 10 + (*c.p++ - '0');
    }
    if (c.p == c.end)
        return out_of_input(&c);
    if (*c.p == ' ') {
        c.p++;
        h->reason = c.p;
        for (;;) {
            if (c.p == c.end)
                return out_of_input(&c);
            if (*c.p == '\r' || *c.p == '\n')
                break;
            if (!is_field_char((unsigned char)*c.p))
                return WS_EHTTP;
            c.p++;
        }
        h->reason_len = (size_t)(c.p - h->reason);
    }
    if ((rc = expect_eol(&c)) != WS_OK || (rc = parse_headers(&c, h)) != WS_OK)
        return rc;
    return (int)(c.p - buf);
}

/* Field names are case-insensitive (RFC 9110 §5.1); the first one wins. */
const struct ws_http_header *ws_http_header_next(const struct ws_http_head *h, const char *name,
                                                 const struct ws_http_header *prev)
{
    size_t n = strlen(name);

    for (size_t i = prev ? (size_t)(prev - h->headers) + 1 : 0; i < h->num_headers; i++) {
        const struct ws_http_header *hd = &h->headers[i];
        if (hd->name_len == n && ascii_ieq(hd->name, name, n))
            return hd;
    }
    return NULL;
}

const char *ws_http_header(const struct ws_http_head *h, const char *name, size_t *value_len)
{
    const struct ws_http_header *hd = ws_http_header_next(h, name, NULL);

    if (!hd)
        return NULL;
    if (value_len)
        *value_len = hd->value_len;
    return hd->value;
}

/*
** #token lists (RFC 9110 §5.6.1): elements separated by commas, optional
** whitespace around each, empty elements allowed and ignored. Tokens such as
** "upgrade" and "websocket" compare case-insensitively (RFC 6455 §4.2.1).
*/
int ws_http_has_token(const char *value, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;

    if (tlen == 0)
        return 0;
    if (len == tlen && ascii_ieq(value, token, tlen))
        return 1;                               /* the list is the token alone: the common case */
    while (i < len) {
        size_t start, end;

        while (i < len && (value[i] == ' ' || value[i] == '\t'))
            i++;
        start = i;
        while (i < len && value[i] != ',')
            i++;
        end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end - start == tlen && ascii_ieq(value + start, token, tlen))
            return 1;
        i++;                                    /* past the comma */
    }
    return 0;
}

/* Reason phrases from RFC 9110 §15 for the statuses a WebSocket server or a
 * small static file server answers with. */
const char *ws_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    return "";
}

/* ---------------------------------------------------------------- bodies */

/*
** Content-Length (RFC 9112 §6.2, RFC 9110 §8.6): 1*DIGIT. A list of equal
** values ("5, 5", from a proxy that joined two lines) is that value; values
** that differ, an empty element or anything but digits are not a length.
** 0 with *len, or -1.
*/
static int content_length(const char *v, size_t n, uint64_t *len, int *seen)
{
    size_t i = 0;

    for (;;) {
        uint64_t x = 0;
        size_t digits = 0;

        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        while (i < n && v[i] >= '0' && v[i] <= '9') {
            if (digits++ >= 18)          /* 19 digits could overflow: nobody sends that much */
                return -1;
            x = x * 10 + (uint64_t)(v[i++] - '0');
        }
        if (digits == 0)
            return -1;
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (*seen && x != *len)
            return -1;
        *len = x;
        *seen = 1;
        if (i == n)
            return 0;
        if (v[i++] != ',')
            return -1;
    }
}

int ws_http_body_framing(const struct ws_http_head *h, int *kind, uint64_t *len, const char **why)
{
    int have_cl = 0, have_te = 0, chunked_last = 0, chunked_count = 0, other = 0;
    const char *msg = NULL;
    int status = 0;

    *kind = WS_BODY_NONE;
    *len = 0;
    if (!h->known[WS_H_CONTENT_LENGTH] && !h->known[WS_H_TRANSFER_ENCODING])
        goto out;   /* no body (every upgrade request) */
    for (size_t i = 0; i < h->num_headers; i++) {
        const struct ws_http_header *hd = &h->headers[i];

        if (hd->name_len == 14 && ascii_ieq(hd->name, "content-length", 14)) {
            if (content_length(hd->value, hd->value_len, len, &have_cl) != 0) {
                msg = "bad Content-Length";
                status = 400;
                goto out;
            }
        } else if (hd->name_len == 17 && ascii_ieq(hd->name, "transfer-encoding", 17)) {
            /* #transfer-coding (RFC 9112 §6.1), several lines joined in order */
            size_t j = 0, n = hd->value_len;
            const char *v = hd->value;

            have_te = 1;
            while (j < n) {
                size_t a, b;

                while (j < n && (v[j] == ' ' || v[j] == '\t'))
                    j++;
                a = j;
                while (j < n && v[j] != ',' && v[j] != ';')
                    j++;
                b = j;
                while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                    b--;
                while (j < n && v[j] != ',')   /* parameters: a coding we refuse anyway */
                    j++;
                j++;
                if (b == a)
                    continue;                  /* an empty element (RFC 9110 §5.6.1) */
                if (b - a == 7 && ascii_ieq(v + a, "chunked", 7)) {
                    chunked_count++;
                    chunked_last = 1;
                } else {
                    other = 1;
                    chunked_last = 0;
                }
            }
        }
    }
    if (have_te && have_cl) {
        msg = "both Content-Length and Transfer-Encoding";
        status = 400;
    } else if (have_te && h->minor_version == 0) {
        msg = "Transfer-Encoding in HTTP/1.0";
        status = 400;
    } else if (have_te && (!chunked_last || chunked_count > 1)) {
        msg = "chunked is not the final transfer coding";
        status = 400;
    } else if (have_te && other) {
        msg = "a transfer coding other than chunked";
        status = 501;
    } else if (have_te) {
        *kind = WS_BODY_CHUNKED;
    } else if (have_cl) {
        *kind = WS_BODY_LENGTH;
    }
out:
    if (status) {
        *kind = WS_BODY_NONE;
        *len = 0;
    }
    if (why)
        *why = msg;
    return status;
}

/* Where the chunked decoder stands (RFC 9112 §7.1):
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF */
enum {
    CK_SIZE0 = 0,   /* the first hex digit of a size */
    CK_SIZE,        /* more hex digits, or what ends them */
    CK_BWS,         /* whitespace after the size: ';' or CR must come */
    CK_EXT,         /* a chunk extension, up to CR */
    CK_SIZE_LF,     /* the LF of the size line */
    CK_DATA,        /* chunk data: left bytes to come */
    CK_DATA_CR,     /* the CRLF after the data */
    CK_DATA_LF,
    CK_TRAILER,     /* the start of a trailer line, or the final CRLF */
    CK_FIELD,       /* inside a trailer field line */
    CK_FIELD_LF,
    CK_END_LF,      /* the LF of the final CRLF */
    CK_DONE,        /* the body ended */
    CK_ERROR,       /* a sticky error (WS_EHTTP) */
    CK_TOOBIG       /* a sticky error (WS_ETOOBIG) */
};

void ws_chunked_init(struct ws_chunked *d, uint64_t max)
{
    d->left = 0;
    d->total = 0;
    d->max = max;
    d->line = 0;
    d->state = CK_SIZE0;
}

/* The size line is complete: check the size against the limit. */
static int chunk_size_done(struct ws_chunked *d)
{
    if (d->max && (d->left > d->max || d->total > d->max - d->left))
        return CK_TOOBIG;
    return CK_SIZE_LF;
}

int ws_chunked_decode(struct ws_chunked *d, uint8_t *buf, size_t len, size_t *out, size_t *used)
{
    size_t i = 0, o = 0;
    int st = d->state;

    while (i < len && st != CK_DONE && st != CK_ERROR && st != CK_TOOBIG) {
        unsigned char ch = buf[i];

        if (st == CK_DATA) {
            /* the bulk of the bytes: move a run at once */
            size_t run = len - i;
            if ((uint64_t)run > d->left)
                run = (size_t)d->left;
            if (o != i)
                memmove(buf + o, buf + i, run);
            o += run;
            i += run;
            d->left -= run;
            d->total += run;
            if (d->left == 0)
                st = CK_DATA_CR;
            continue;
        }
        i++;
        if (st <= CK_EXT && ++d->line > WS_CHUNK_LINE_MAX) {
            st = CK_ERROR;
            break;
        }
        switch (st) {
        case CK_SIZE0:
        case CK_SIZE: {
            int v = ws_hexval(ch);
            if (v >= 0) {
                if (d->left > (UINT64_MAX >> 4)) {
                    st = CK_ERROR;     /* more than 2^64: not a size */
                    break;
                }
                d->left = (d->left << 4) | (uint64_t)v;
                st = CK_SIZE;
            } else if (st == CK_SIZE0) {
                st = CK_ERROR;         /* no digit at all */
            } else if (ch == ' ' || ch == '\t') {
                st = CK_BWS;
            } else if (ch == ';') {
                st = CK_EXT;
            } else if (ch == '\r') {
                st = chunk_size_done(d);
            } else {
                st = CK_ERROR;
            }
            break;
        }
        case CK_BWS:
            if (ch == ';')
                st = CK_EXT;
            else if (ch == '\r')
                st = chunk_size_done(d);
            else if (ch != ' ' && ch != '\t')
                st = CK_ERROR;
            break;
        case CK_EXT:
            if (ch == '\r')
                st = chunk_size_done(d);
            else if (!is_field_char(ch))
                st = CK_ERROR;
            break;
        case CK_SIZE_LF:
            if (ch != '\n') {
                st = CK_ERROR;
                break;
            }
            d->line = 0;
            st = d->left == 0 ? CK_TRAILER : CK_DATA;
            break;
        case CK_DATA_CR:
            st = ch == '\r' ? CK_DATA_LF : CK_ERROR;
            break;
        case CK_DATA_LF:
            st = ch == '\n' ? CK_SIZE0 : CK_ERROR;
            d->left = 0;
            d->line = 0;
            break;
        case CK_TRAILER:
            if (++d->line > LUAWS_MAX_HEAD_BYTES) {
                st = CK_ERROR;
            } else if (ch == '\r') {
                st = CK_END_LF;
            } else if (ch == ' ' || ch == '\t' || !is_tchar(ch)) {
                st = CK_ERROR;         /* obs-fold, or not a field name */
            } else {
                st = CK_FIELD;
            }
            break;
        case CK_FIELD:
            if (++d->line > LUAWS_MAX_HEAD_BYTES)
                st = CK_ERROR;
            else if (ch == '\r')
                st = CK_FIELD_LF;
            else if (!is_field_char(ch))
                st = CK_ERROR;
            break;
        case CK_FIELD_LF:
            st = ch == '\n' ? CK_TRAILER : CK_ERROR;
            break;
        case CK_END_LF:
            st = ch == '\n' ? CK_DONE : CK_ERROR;
            break;
        default:
            st = CK_ERROR;
            break;
        }
    }
    d->state = st;
    *out = o;
    *used = i;
    if (st == CK_DONE)
        return WS_OK;
    if (st == CK_ERROR)
        return WS_EHTTP;
    if (st == CK_TOOBIG)
        return WS_ETOOBIG;
    return WS_PARTIAL;
}
