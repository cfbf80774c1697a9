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
 * lines, NUL anywhere. It does not read a body: WebSocket handshakes have none.
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

struct ws_http_head {
    /* request: method + target; response: status + reason */
    const char *method;   size_t method_len;
    const char *target;   size_t target_len;   /* request-target as sent */
    int status;                                 /* response status code */
    const char *reason;   size_t reason_len;
    int minor_version;                          /* 1 for HTTP/1.1 */
    size_t num_headers;
    struct ws_http_header headers[LUAWS_MAX_HEADERS];
};

/* Parse a request head from buf[0..len). See the file comment for returns. */
int ws_http_parse_request(const char *buf, size_t len, struct ws_http_head *h);

/* Parse a response head (status line + headers) from buf[0..len). */
int ws_http_parse_response(const char *buf, size_t len, struct ws_http_head *h);

/* The value of the first header called name (case-insensitive), or NULL. */
const char *ws_http_header(const struct ws_http_head *h, const char *name, size_t *value_len);

/* 1 if the comma-separated list value[0..len) holds token (case-insensitive,
 * optional whitespace around elements, as in Connection: keep-alive, Upgrade). */
int ws_http_has_token(const char *value, size_t len, const char *token);

/* Standard reason phrase for a status code ("Bad Request"), "" if unknown. */
const char *ws_http_reason(int status);

#endif
