/* SPDX-License-Identifier: MIT
 *
 * fuzz/utf8_fuzz.c -- libFuzzer target: the incremental UTF-8 validator
 * (csrc/proto/utf8.c) against a reference written here from RFC 3629 §4's table.
 *
 * Input: byte 0 gives S = byte0 & 31, the next S bytes are chunk lengths
 * (used in turn, cyclically; 0 feeds an empty chunk), the rest is the text.
 * With S = 0 the text is fed whole. Every chunk is copied to end at a guard
 * page before it is fed.
 *
 * Checks, any disagreement aborting:
 *   - fed one byte at a time, the state after every prefix says what the
 *     reference says of that prefix: REJECT once the prefix holds a byte no
 *     valid text can have there (fail fast: at that very byte, not later),
 *     ACCEPT at a code point boundary, neither inside a sequence;
 *   - fed in the chunks the input chose, the same at every chunk boundary;
 *   - fed whole, and ws_utf8_valid, agree with the reference on the text;
 *   - an empty feed returns the state unchanged; REJECT stays REJECT.
 *
 * The reference is deliberately naive: no automaton, no word-at-a-time
 * skip, only the RFC's rows of byte ranges, read one sequence at a time.
 *
 * Build: make fuzz-build (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/utf8.h"
#include "guard.h"

/*
** RFC 3629 §4:
**   UTF8-1 = %x00-7F
**   UTF8-2 = %xC2-DF UTF8-tail
**   UTF8-3 = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
**            %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
**   UTF8-4 = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) /
**            %xF4 %x80-8F 2( UTF8-tail )
**   UTF8-tail = %x80-BF
** One row per alternative: the first byte's range, the second byte's range,
** and the sequence length (bytes after the second are UTF8-tail).
*/
static const struct {
    uint8_t lead_lo, lead_hi;
    uint8_t second_lo, second_hi;
    int len;
} rfc3629[] = {
    { 0x00, 0x7F, 0, 0, 1 },
    { 0xC2, 0xDF, 0x80, 0xBF, 2 },
    { 0xE0, 0xE0, 0xA0, 0xBF, 3 },
    { 0xE1, 0xEC, 0x80, 0xBF, 3 },
    { 0xED, 0xED, 0x80, 0x9F, 3 },
    { 0xEE, 0xEF, 0x80, 0xBF, 3 },
    { 0xF0, 0xF0, 0x90, 0xBF, 4 },
    { 0xF1, 0xF3, 0x80, 0xBF, 4 },
    { 0xF4, 0xF4, 0x80, 0x8F, 4 },
};

/* What the reference says about the prefix p[0..k). */
enum { REF_BOUNDARY, REF_INSIDE, REF_INVALID };

/*
** Scan p[0..n) sequence by sequence. Fills cls[k] for every prefix length
** k = 0..n: REF_INVALID when p[0..k) holds a byte that no row allows at its
** position (so no continuation can make it valid), REF_BOUNDARY when p[0..k)
** is a whole number of valid sequences, REF_INSIDE otherwise.
*/
static void reference(const uint8_t *p, size_t n, uint8_t *cls)
{
    size_t i = 0, k;

    cls[0] = REF_BOUNDARY;
    while (i < n) {
        int row = -1;

        for (size_t r = 0; r < sizeof rfc3629 / sizeof rfc3629[0]; r++)
            if (p[i] >= rfc3629[r].lead_lo && p[i] <= rfc3629[r].lead_hi)
                row = (int)r;
        if (row < 0)
            goto invalid_at_i;
        for (int j = 1; j < rfc3629[row].len; j++) {
            uint8_t lo = j == 1 ? rfc3629[row].second_lo : 0x80;
            uint8_t hi = j == 1 ? rfc3629[row].second_hi : 0xBF;

            cls[i + (size_t)j] = REF_INSIDE;        /* prefix ends after byte i+j-1 */
            if (i + (size_t)j == n)
                return;                              /* text ends inside the sequence */
            if (p[i + (size_t)j] < lo || p[i + (size_t)j] > hi) {
                i += (size_t)j;
                goto invalid_at_i;
            }
        }
        i += (size_t)rfc3629[row].len;
        cls[i] = REF_BOUNDARY;
    }
    return;

invalid_at_i:   /* byte i is the first that cannot be there */
    for (k = i + 1; k <= n; k++)
        cls[k] = REF_INVALID;
}

/* The validator's state, in the reference's terms. */
static int classify(uint32_t state)
{
    if (state == WS_UTF8_REJECT)
        return REF_INVALID;
    return state == WS_UTF8_ACCEPT ? REF_BOUNDARY : REF_INSIDE;
}

/* Feed p[0..n) from state, through the guard page; check the empty feed. */
static uint32_t feed(uint32_t state, const uint8_t *p, size_t n)
{
    uint32_t next = ws_utf8_feed(state, guard_put(p, n), n);

    FUZZ_CHECK(ws_utf8_feed(next, guard_put(NULL, 0), 0) == next);
    if (state == WS_UTF8_REJECT)
        FUZZ_CHECK(next == WS_UTF8_REJECT);
    return next;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t nsplit, n, k;
    const uint8_t *splits, *text;
    uint8_t *cls;
    uint32_t state;

    if (size == 0)
        return 0;
    nsplit = data[0] & 31;
    if (nsplit > size - 1)
        nsplit = size - 1;
    splits = data + 1;
    text = data + 1 + nsplit;
    n = size - 1 - nsplit;

    cls = malloc(n + 1);
    FUZZ_CHECK(cls != NULL);
    reference(text, n, cls);

    /* One byte at a time: every prefix. */
    state = WS_UTF8_ACCEPT;
    for (k = 0; k < n; k++) {
        state = feed(state, text + k, 1);
        FUZZ_CHECK(classify(state) == cls[k + 1]);
    }

    /* Whole, and the convenience function. */
    state = feed(WS_UTF8_ACCEPT, text, n);
    FUZZ_CHECK(classify(state) == cls[n]);
    FUZZ_CHECK(ws_utf8_valid(guard_put(text, n), n) == (cls[n] == REF_BOUNDARY));

    /* In the chunks the input chose. */
    if (nsplit > 0) {
        size_t off = 0, i = 0, empties = 0;

        state = WS_UTF8_ACCEPT;
        while (off < n) {
            size_t len = splits[i++ % nsplit];

            if (len > 0)
                empties = 0;
            else if (++empties > nsplit)
                len = n - off;              /* only empty chunks left: finish */
            if (len > n - off)
                len = n - off;
            state = feed(state, text + off, len);
            off += len;
            FUZZ_CHECK(classify(state) == cls[off]);
        }
    }
    free(cls);
    return 0;
}
