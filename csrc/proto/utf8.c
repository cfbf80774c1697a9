/* SPDX-License-Identifier: MIT
 *
 * utf8.c -- incremental UTF-8 validator (RFC 3629 §4 syntax), used for text
 * messages and close reasons (RFC 6455 §5.6, §5.5.1, §8.1).
 *
 * A small deterministic automaton: every byte falls in one of 12 classes, and
 * a (state, class) table gives the next state. The states remember exactly
 * what the next byte may be, so the restricted second bytes of RFC 3629 §4
 * (E0 A0..BF, ED 80..9F, F0 90..BF, F4 80..8F) reject overlongs, surrogates
 * and code points above U+10FFFF at the first byte that proves them wrong.
 * While the state is ACCEPT, ASCII runs are skipped eight bytes at a time.
 *
 * It does not decode code points, report where a sequence failed, or
 * allocate; it only says accept / reject / "inside a sequence".
 */
#include <string.h>

#include "proto/utf8.h"

/* States. ACCEPT and REJECT are the public values from utf8.h; the rest are
 * opaque to callers and say what the next byte must be. */
enum {
    S_ACCEPT = WS_UTF8_ACCEPT, /* at a boundary */
    S_REJECT = WS_UTF8_REJECT, /* invalid, sticky */
    S_NEED1,                   /* one continuation byte (80..BF) left */
    S_NEED2,                   /* two continuation bytes left */
    S_NEED3,                   /* three continuation bytes left */
    S_AFTER_E0,                /* E0: next is A0..BF (no overlongs), then one */
    S_AFTER_ED,                /* ED: next is 80..9F (no surrogates), then one */
    S_AFTER_F0,                /* F0: next is 90..BF (no overlongs), then two */
    S_AFTER_F4,                /* F4: next is 80..8F (<= U+10FFFF), then two */
    S_COUNT
};

/* Byte classes. */
enum {
    C_ASCII,    /* 00..7F */
    C_CONT_LO,  /* 80..8F */
    C_CONT_MID, /* 90..9F */
    C_CONT_HI,  /* A0..BF */
    C_BAD,      /* C0, C1 (always overlong), F5..FF (beyond U+10FFFF) */
    C_LEAD2,    /* C2..DF: two-byte sequence */
    C_E0,       /* E0: three bytes, second restricted */
    C_LEAD3,    /* E1..EC, EE, EF: three bytes */
    C_ED,       /* ED: three bytes, second restricted */
    C_F0,       /* F0: four bytes, second restricted */
    C_LEAD4,    /* F1..F3: four bytes */
    C_F4,       /* F4: four bytes, second restricted */
    C_COUNT
};

static const uint8_t byte_class[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 00..0F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 10..1F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 20..2F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 30..3F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 40..4F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 50..5F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 60..6F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 70..7F */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* 80..8F */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 90..9F */
     3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  /* A0..AF */
     3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  /* B0..BF */
     4,  4,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  /* C0..CF */
     5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  /* D0..DF */
     6,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  7,  /* E0..EF */
     9, 10, 10, 10, 11,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* F0..FF */
};

/* Short names so the table below reads as a grid. */
#define A S_ACCEPT
#define R S_REJECT

/* next_state[state][class]. Columns: ASCII, 80..8F, 90..9F, A0..BF, bad,
 * C2..DF, E0, E1..EF (not ED), ED, F0, F1..F3, F4. */
static const uint8_t next_state[S_COUNT][C_COUNT] = {
    /* ACCEPT   */ { A, R, R, R, R, S_NEED1, S_AFTER_E0, S_NEED2, S_AFTER_ED,
                     S_AFTER_F0, S_NEED3, S_AFTER_F4 },
    /* REJECT   */ { R, R, R, R, R, R, R, R, R, R, R, R },
    /* NEED1    */ { R, A, A, A, R, R, R, R, R, R, R, R },
    /* NEED2    */ { R, S_NEED1, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R },
    /* NEED3    */ { R, S_NEED2, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R },
    /* AFTER_E0 */ { R, R, R, S_NEED1, R, R, R, R, R, R, R, R },
    /* AFTER_ED */ { R, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R, R },
    /* AFTER_F0 */ { R, R, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R },
    /* AFTER_F4 */ { R, S_NEED2, R, R, R, R, R, R, R, R, R, R },
};

#undef A
#undef R

/* The high bit of every byte of a 64-bit word: a word of ASCII has none. */
#define HIGH_BITS UINT64_C(0x8080808080808080)

/*
** Run the automaton over p[0..n) from state. Returns REJECT as soon as a byte
** makes the input invalid (the rest is not read: fail fast, RFC 6455 §8.1
** lets the endpoint close at once). At a boundary (ACCEPT), whole words of
** ASCII are skipped; memcpy does the unaligned load portably and compiles to
** a single move.
*/
uint32_t ws_utf8_feed(uint32_t state, const uint8_t *p, size_t n)
{
    size_t i = 0;

    if (state >= S_COUNT)          /* not a state we hand out: treat as broken */
        return WS_UTF8_REJECT;
    if (state == S_REJECT)
        return WS_UTF8_REJECT;
    while (i < n) {
        if (state == S_ACCEPT) {
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & HIGH_BITS)
                    break;
                i += 8;
            }
            while (i < n && p[i] < 0x80)
                i++;
            if (i == n)
                break;
        }
        state = next_state[state][byte_class[p[i++]]];
        if (state == S_REJECT)
            return WS_UTF8_REJECT;
    }
    return state;
}

/*
** Whole-buffer check: valid only if no byte is rejected and the last
** sequence is complete (a truncated sequence leaves a non-ACCEPT state).
*/
int ws_utf8_valid(const uint8_t *p, size_t n)
{
    return ws_utf8_feed(WS_UTF8_ACCEPT, p, n) == WS_UTF8_ACCEPT;
}
