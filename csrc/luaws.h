/* SPDX-License-Identifier: MIT
 *
 * luaws.h -- what every C file of the core shares: result codes, their one
 * string table, and the limits.
 *
 * Every limit is an #ifndef so a build can override it (-DLUAWS_MAX_HEADERS=…),
 * the way lptypes.h does. Limits that users tune at run time are options of
 * luaws.listen{}; these are the compile-time ceilings behind them.
 *
 * It does not include lua.h or ev.h: the codecs below the lua_*.c line are
 * compiled and fuzzed without either.
 */
#ifndef LUAWS_H
#define LUAWS_H

#include <stddef.h>
#include <stdint.h>

/* Every symbol but luaopen_luaws_core is hidden: the Makefile compiles with
 * -fvisibility=hidden and this macro marks the one entry point. (A
 * `#pragma GCC visibility push(hidden)` here would also hide the libc and
 * libev declarations that follow it, and the link would fail.) */
#if defined(__GNUC__)
#define LUAWS_EXPORT __attribute__((visibility("default")))
#else
#define LUAWS_EXPORT
#endif

/* Largest request head (request line + headers) we read: beyond it, 431. */
#ifndef LUAWS_MAX_HEAD_BYTES
#define LUAWS_MAX_HEAD_BYTES 8192
#endif

/* Most header lines in one request or response head: beyond it, 431. */
#ifndef LUAWS_MAX_HEADERS
#define LUAWS_MAX_HEADERS 64
#endif

/* RFC 6455 §5.5: control frame payloads are at most 125 bytes. */
#define WS_MAX_CONTROL_PAYLOAD 125

/* Result codes. Zero is success; positive values are byte counts where a
 * function says so; negative values are these. Keep ws_strerror in step. */
enum ws_result {
    WS_OK = 0,
    WS_PARTIAL = -1,       /* need more input; not an error */
    WS_ECLOSED = -2,       /* "closed": the connection is closed or closing */
    WS_ETIMEOUT = -3,      /* "timeout": nothing arrived in time (retryable) */
    WS_ETOOBIG = -4,       /* "too big": over max_message_size or a head limit */
    WS_EPROTO = -5,        /* "protocol": the peer broke RFC 6455 */
    WS_EUTF8 = -6,         /* "utf8": text that is not UTF-8 (sent or received) */
    WS_ENOMEM = -7,        /* "out of memory" */
    WS_ETLS = -8,          /* "tls": an OpenSSL failure */
    WS_EIO = -9,           /* "io": a socket call failed; errno says which */
    WS_EBACKPRESSURE = -10,/* "backpressure": the send queue passed its cap */
    WS_EAGAIN = -11,       /* "again": would block; internal, never reaches Lua */
    WS_EHTTP = -12,        /* "bad request": malformed HTTP */
    WS_EHANDSHAKE = -13,   /* "handshake": the opening handshake failed */
    WS_ERESOLVE = -14,     /* "resolve": a host name did not resolve */
    WS_EREFUSED = -15,     /* "refused": the connection was refused */
    WS_EHEADERS = -16,     /* "headers too large": more than the head limits */
    WS_ELIMIT = -17        /* "limit": a configured bound (topics, ...) was reached */
};

/* Short, stable token for a result code ("closed", "timeout", …). Never NULL. */
const char *ws_strerror(int code);

/* Plain words for code, for a message that has no better detail. */
const char *ws_strmessage(int code);

#endif
