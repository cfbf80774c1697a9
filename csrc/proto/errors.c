/* SPDX-License-Identifier: MIT
 *
 * errors.c -- the one table from enum ws_result to the short, stable tokens
 * that reach Lua as the third value of `nil, message, token` (ws_strerror),
 * and to the plain words a message uses when it has nothing more precise to
 * say (ws_strmessage).
 *
 * The tokens are part of the public API (scripts compare them), so they never
 * change once released; messages are for people (they may gain detail:
 * errno text, OpenSSL's words, the address). Nothing here formats or
 * allocates: every string is static.
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
    case WS_EUTF8:          return "utf8";
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
    case WS_ELIMIT:         return "limit";
    }
    return "unknown error";
}

/*
** Plain words for a result code, for a message with no better detail:
** "send: the connection is closed".
*/
const char *ws_strmessage(int code)
{
    switch (code) {
    case WS_OK:             return "no error";
    case WS_PARTIAL:        return "incomplete input";
    case WS_ECLOSED:        return "the connection is closed";
    case WS_ETIMEOUT:       return "timed out";
    case WS_ETOOBIG:        return "too big";
    case WS_EPROTO:         return "protocol error";
    case WS_EUTF8:          return "text that is not valid UTF-8";
    case WS_ENOMEM:         return "out of memory";
    case WS_ETLS:           return "TLS failure";
    case WS_EIO:            return "input/output error";
    case WS_EBACKPRESSURE:  return "the peer does not read: its send queue passed max_backpressure";
    case WS_EAGAIN:         return "it would block";
    case WS_EHTTP:          return "malformed HTTP";
    case WS_EHANDSHAKE:     return "the opening handshake failed";
    case WS_ERESOLVE:       return "the host name does not resolve";
    case WS_EREFUSED:       return "connection refused";
    case WS_EHEADERS:       return "headers too large";
    case WS_ELIMIT:         return "a configured limit was reached";
    }
    return "unknown error";
}
