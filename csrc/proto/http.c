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
 * It does not: read a body, decode percent-escapes or split the target, join
 * repeated headers, skip empty lines before the request line, or accept any
 * version other than HTTP/1.x.
 */
#include <string.h>

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
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static int is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return 1;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
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
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
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

    for (;;) {
        if (c->p == c->end)
            return out_of_input(c);
        if (*c->p == stop)
            break;
        if (!is_tchar((unsigned char)*c->p))
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
            if (ch == '\r' || ch == '\n')
                break;
            if (!is_field_char(ch))
                return WS_EHTTP;
            c->p++;
            if (ch != ' ' && ch != '\t')
                vend = c->p;
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
const char *ws_http_header(const struct ws_http_head *h, const char *name, size_t *value_len)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < h->num_headers; i++) {
        const struct ws_http_header *hd = &h->headers[i];
        if (hd->name_len == n && ascii_ieq(hd->name, name, n)) {
            if (value_len)
                *value_len = hd->value_len;
            return hd->value;
        }
    }
    return NULL;
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
