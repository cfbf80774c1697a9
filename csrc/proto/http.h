/* SPDX-License-Identifier: MIT
 *
 * http.h -- bounded, incremental HTTP/1.1 head parser (RFC 9112 §2-§5) for the
 * WebSocket opening handshake, and the client's response parser.
 *
 * picohttpparser's contract: no allocation, the result points into the
 * caller's buffer, and the caller calls again with the whole buffer after more
 * bytes arrive (the parser is stateless, the head is small and bounded).
 * Returns the number of bytes of the head (through the blank line) when it is
 * complete, WS_PARTIAL when more is needed, WS_EHTTP when the bytes can never
 * be a valid head, WS_EHEADERS past LUAWS_MAX_HEADERS lines or
 * LUAWS_MAX_HEAD_BYTES bytes (431).
 *
 * Accepted line ends: CRLF, and a bare LF (RFC 9112 §2.2 allows it). Rejected:
 * control characters in the request line, a header name with characters
 * outside the token set, whitespace before the colon, obs-fold continuation
 * lines, NUL anywhere. The head parser does not read a body; for plain HTTP
 * requests ws_http_body_framing says how the body is delimited (RFC 9112 §6)
 * and ws_chunked_decode decodes a chunked one (§7.1) incrementally, in place.
 */
#ifndef LUAWS_HTTP_H
#define LUAWS_HTTP_H

#include "luaws.h"

struct ws_http_header {
    const char *name;     /* not NUL-terminated */
    size_t name_len;
    const char *value;    /* leading and trailing whitespace removed */
    size_t value_len;
};

/* The header names the handshake and the body's framing look for. The
 * parser notes the first header of each, and whether one came again, so
 * finding it is no scan of the head (ws_http_known). */
enum ws_http_known {
    WS_H_HOST,
    WS_H_UPGRADE,
    WS_H_CONNECTION,
    WS_H_ORIGIN,
    WS_H_EXPECT,
    WS_H_CONTENT_LENGTH,
    WS_H_TRANSFER_ENCODING,
    WS_H_SEC_WEBSOCKET_KEY,
    WS_H_SEC_WEBSOCKET_VERSION,
    WS_H_SEC_WEBSOCKET_PROTOCOL,
    WS_H_SEC_WEBSOCKET_EXTENSIONS,
    WS_H_SEC_WEBSOCKET_ACCEPT,
    WS_H_FORWARDED,
    WS_H_X_FORWARDED_FOR,
    WS_H_X_FORWARDED_PROTO,
    WS_HTTP_KNOWN
};

_Static_assert(LUAWS_MAX_HEADERS < 255, "ws_http_head.known holds 1 + a header's index in a byte");

struct ws_http_head {
    /* request: method + target; response: status + reason */
    const char *method;   size_t method_len;
    const char *target;   size_t target_len;   /* request-target as sent */
    int status;                                 /* response status code */
    const char *reason;   size_t reason_len;
    int minor_version;                          /* 1 for HTTP/1.1 */
    size_t num_headers;
    uint8_t known[WS_HTTP_KNOWN];   /* 1 + the index of the first header of each known name, 0: none */
    uint16_t repeated;              /* bit k: known name k came more than once */
    struct ws_http_header headers[LUAWS_MAX_HEADERS];
};

/* Parse a request head from buf[0..len). See the file comment for returns. */
int ws_http_parse_request(const char *buf, size_t len, struct ws_http_head *h);

/* Parse a response head (status line + headers) from buf[0..len). */
int ws_http_parse_response(const char *buf, size_t len, struct ws_http_head *h);

/* The value of the first header called name (case-insensitive), or NULL. */
const char *ws_http_header(const struct ws_http_head *h, const char *name, size_t *value_len);

/* The first header of known name k (enum ws_http_known), or NULL. */
static inline const struct ws_http_header *ws_http_known(const struct ws_http_head *h, int k)
{
    return h->known[k] ? &h->headers[h->known[k] - 1] : NULL;
}

/* Its value, with *value_len (if value_len is not NULL), or NULL. */
static inline const char *ws_http_known_value(const struct ws_http_head *h, int k, size_t *value_len)
{
    const struct ws_http_header *hd = ws_http_known(h, k);
    if (!hd)
        return NULL;
    if (value_len)
        *value_len = hd->value_len;
    return hd->value;
}

/* The next header called name (case-insensitive) after prev, one of h's
 * (NULL: from the first), or NULL: every repeat of a header in order. */
const struct ws_http_header *ws_http_header_next(const struct ws_http_head *h, const char *name,
                                                 const struct ws_http_header *prev);

/* 1 if the comma-separated list value[0..len) holds token (case-insensitive,
 * optional whitespace around elements, as in Connection: keep-alive, Upgrade). */
int ws_http_has_token(const char *value, size_t len, const char *token);

/* Standard reason phrase for a status code ("Bad Request"), "" if unknown. */
const char *ws_http_reason(int status);

/* How a request's body is delimited (RFC 9112 §6.3). */
enum ws_http_body {
    WS_BODY_NONE = 0,     /* no Content-Length, no Transfer-Encoding: no body */
    WS_BODY_LENGTH,       /* Content-Length: *len bytes */
    WS_BODY_CHUNKED       /* Transfer-Encoding: chunked (ws_chunked_decode) */
};

/*
** The framing of a request's body from its head (RFC 9112 §6.1-§6.3): 0 with
** *kind (enum ws_http_body) and, for WS_BODY_LENGTH, *len; or the status to
** refuse it with, and *why (if why is not NULL) in a few words:
**   400  Content-Length and Transfer-Encoding both (a smuggling vector: §6.1
**        says the server MUST close after answering); a Content-Length that is
**        not 1*DIGIT, or several that differ; Transfer-Encoding in HTTP/1.0;
**        chunked not the final coding, or given twice;
**   501  a transfer coding other than chunked (gzip, ...): we decode none.
** Every Content-Length and Transfer-Encoding line counts, not the first only.
*/
int ws_http_body_framing(const struct ws_http_head *h, int *kind, uint64_t *len, const char **why);

/* Longest chunk-size line (size, extensions, CRLF) ws_chunked_decode reads. */
#ifndef WS_CHUNK_LINE_MAX
#define WS_CHUNK_LINE_MAX 1024
#endif

/* The incremental decoder of the chunked transfer coding. State only: the
 * bytes are the caller's. */
struct ws_chunked {
    uint64_t left;        /* the size being read, then data bytes still to come */
    uint64_t total;       /* data bytes decoded so far */
    uint64_t max;         /* most data bytes allowed in all (0: no limit) */
    size_t line;          /* bytes of the current size line, or of the trailers */
    int state;            /* where in the grammar (http.c) */
};

/* Start decoding a body of at most max data bytes (0: no limit). */
void ws_chunked_init(struct ws_chunked *d, uint64_t max);

/*
** Decode buf[0..len) in place (RFC 9112 §7.1): the raw bytes read are
** buf[0..*used), and the chunk data found in them is moved to the front,
** buf[0..*out) (*out <= *used, so nothing unread is overwritten); bytes past
** *used are not touched. Returns
**   WS_PARTIAL   every byte was read (*used == len) and the body goes on:
**                call again with the next bytes (any split works);
**   WS_OK        the last chunk and the trailer section ended at *used: what
**                follows is the next message; further calls read nothing;
**   WS_ETOOBIG   a chunk size would take the data past max (said by the size
**                line, before its data arrives);
**   WS_EHTTP     anything else malformed: a size that is not hex or overflows,
**                a line end that is not CRLF (no bare LF or CR: a lenient
**                framing parser is a smuggling vector), data not followed by
**                CRLF, controls in an extension or trailer, a size line over
**                WS_CHUNK_LINE_MAX or trailers over LUAWS_MAX_HEAD_BYTES.
** Errors are sticky. Trailer fields are checked for bytes and dropped.
*/
int ws_chunked_decode(struct ws_chunked *d, uint8_t *buf, size_t len, size_t *out, size_t *used);

#endif
