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

/* RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. One lookup per
 * byte of every header name (bytes from 0x80 on are none). */
static const unsigned char tchar_map[128] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x10 */
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,   /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,   /* 0x30 */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,   /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,   /* 0x70 */
};

static int is_tchar(unsigned char ch)
{
    return ch < 128 && tchar_map[ch];
}

/* A byte allowed in a field value or reason phrase: HTAB, SP, VCHAR and
 * obs-text (RFC 9110 §5.5), i.e. no controls but HTAB, no DEL. */
static int is_field_char(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7F);
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
    const char *start = c->p;

    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;                                /* stop is never a tchar */
    if (c->p == c->end)
        return out_of_input(c);
    if (*c->p != stop || c->p == start)
        return WS_EHTTP;
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
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

/*
** Header lines up to and including the blank line that ends the head
** (RFC 9112 §5: field-name ":" OWS field-value OWS). The value is kept
** without the whitespace around it.
*/
static int parse_headers(struct cursor *c, struct ws_http_head *h)
{
    h->num_headers = 0;
    for (;;) {
        struct ws_http_header *hd;
        const char *vend;
        int rc;

        if (c->p == c->end)
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
        while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
            c->p++;
        hd->value = c->p;
        vend = c->p;
        for (;;) {
            if (c->p == c->end)
                return out_of_input(c);
            unsigned char ch = (unsigned char)*c->p;
            if (ch > ' ' && ch != 0x7F) {     /* VCHAR or obs-text: most bytes */
                vend = ++c->p;
                continue;
            }
            if (ch == '\r' || ch == '\n')
                break;
            if (!is_field_char(ch))
                return WS_EHTTP;
            c->p++;                           /* SP or HTAB: not the value's end */
        }
        hd->value_len = (size_t)(vend - hd->value);
        rc = expect_eol(c);
        if (rc != WS_OK)
            return rc;
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
