/* SPDX-License-Identifier: MIT
 *
 * errors.c -- ws_strerror: the one table from enum ws_result to the short,
 * stable tokens that reach Lua as the second value of `nil, token`.
 *
 * The tokens are part of the public API (scripts compare them), so they never
 * change once released; human detail (errno text, OpenSSL messages) travels
 * separately as an optional third value. It does not format anything and
 * never allocates: every string is static.
 */
#include "luaws.h"

/*
** Map a result code to its token. Positive values are byte counts, not
** errors, and get "unknown error" like any code this table does not know.
*/
const char *ws_strerror(int code)
{
    switch (code) {
    case WS_OK:             return "ok";
    case WS_PARTIAL:        return "partial";
    case WS_ECLOSED:        return "closed";
    case WS_ETIMEOUT:       return "timeout";
    case WS_ETOOBIG:        return "too big";
    case WS_EPROTO:         return "protocol";
    case WS_EUTF8:          return "invalid utf8";
    case WS_ENOMEM:         return "out of memory";
    case WS_ETLS:           return "tls";
    case WS_EIO:            return "io";
    case WS_EBACKPRESSURE:  return "backpressure";
    case WS_EAGAIN:         return "again";
    case WS_EHTTP:          return "bad request";
    case WS_EHANDSHAKE:     return "handshake";
    case WS_ERESOLVE:       return "resolve";
    case WS_EREFUSED:       return "refused";
    case WS_EHEADERS:       return "headers too large";
    }
    return "unknown error";
}
