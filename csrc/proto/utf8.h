/* SPDX-License-Identifier: MIT
 *
 * utf8.h -- incremental UTF-8 validator (RFC 3629, as RFC 6455 §5.6 and §8.1
 * require for text messages and close reasons).
 *
 * State in, bytes in, state out: a message split across frames or reads is
 * checked as one stream, and the first byte that can never start or continue
 * a valid sequence turns the state to WS_UTF8_REJECT at once (fail fast), so
 * the connection can be closed with 1007 without waiting for the rest.
 * Rejected: overlong forms, UTF-16 surrogates (U+D800..U+DFFF), code points
 * above U+10FFFF, stray continuation bytes, 0xC0, 0xC1, 0xF5..0xFF.
 *
 * No allocation, no I/O. ASCII runs are skipped a word at a time.
 */
#ifndef LUAWS_UTF8_H
#define LUAWS_UTF8_H

#include "luaws.h"

#define WS_UTF8_ACCEPT 0u   /* at a code point boundary: a valid end */
#define WS_UTF8_REJECT 1u   /* invalid; sticky */

/* Feed n bytes; returns the new state. Any other value than ACCEPT/REJECT
 * means "inside a multi-byte sequence" and is opaque. */
uint32_t ws_utf8_feed(uint32_t state, const uint8_t *p, size_t n);

/* Whole-buffer convenience: 1 if p[0..n) is complete, valid UTF-8. */
int ws_utf8_valid(const uint8_t *p, size_t n);

#endif
