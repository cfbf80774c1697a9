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
 * At a boundary, ASCII runs are skipped a word at a time and whole valid
 * sequences are checked in place; the table decides everything else.
 *
 * It does not decode code points, report where a sequence failed, or
 * allocate; it only says accept / reject / "inside a sequence".
 */
#include <string.h>

#include "proto/simd.h"
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
** The end of the ASCII run that starts at p (p itself when *p is not
** ASCII). A long run 128 bytes a turn with AVX2 when the CPU has it (the
** block that holds the first high byte is then looked at as below), else
** whole words at a time, four a turn while the run is long; on a
** little-endian GCC or Clang the first high byte of a word is found by
** counting its trailing zeros, else the word's bytes are walked. memcpy does
** the unaligned loads portably and compiles to plain moves.
*/
#ifdef WS_HAVE_AVX2
/* 128 bytes a turn: OR four 32-byte loads and test their high bits. Returns
 * where a 128-byte block with a non-ASCII byte starts (or fewer are left). */
WS_TARGET_AVX2 static const uint8_t *ascii_run_avx2(const uint8_t *p, const uint8_t *end)
{
    const __m256i high = _mm256_set1_epi8((char)0x80);
    while (end - p >= 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)p);
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(p + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(p + 96));
        __m256i x = _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
        if (!_mm256_testz_si256(x, high))
            break;
        p += 128;
    }
    return p;
}
#endif

static const uint8_t *ascii_run(const uint8_t *p, const uint8_t *end)
{
#ifdef WS_HAVE_AVX2
    if (end - p >= 128 && ws_cpu_avx2())
        p = ascii_run_avx2(p, end);
#endif
    while (end - p >= 32) {
        uint64_t a, b, c, d;
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        memcpy(&c, p + 16, 8);
        memcpy(&d, p + 24, 8);
        if ((a | b | c | d) & HIGH_BITS)
            break;
        p += 32;
    }
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w &= HIGH_BITS;
        if (w) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + (__builtin_ctzll(w) >> 3);
#else
            break;
#endif
        }
        p += 8;
    }
    while (p < end && *p < 0x80)
        p++;
    return p;
}

/* Is b a continuation byte (80..BF)? */
#define CONT(b) (((b) & 0xC0) == 0x80)

/* Is b within lo..hi? One compare: below lo wraps around to large. */
#define IN(b, lo, hi) ((uint8_t)((b) - (lo)) <= (uint8_t)((hi) - (lo)))

/*
** From a boundary, skip what is certainly valid: ASCII runs (ascii_run) and
** whole two-, three- and four-byte sequences that fit in the input, checked
** in place against RFC 3629 §4 (the second byte's range: E0 A0..BF, ED
** 80..9F, F0 90..BF, F4 80..8F; the rest 80..BF). Returns where that stops:
** end, or a byte the automaton must look at (a bad one, or a sequence the
** end of the input cuts).
*/
static const uint8_t *valid_run(const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        uint8_t b = *p;
        size_t left = (size_t)(end - p);
        if (b < 0x80) {
            p = ascii_run(p, end);
        } else if (b < 0xE0) {
            if (b < 0xC2 || left < 2 || !CONT(p[1]))
                break;
            p += 2;
        } else if (b < 0xF0) {
            if (left < 3 || !CONT(p[1]) || !CONT(p[2]) || (b == 0xE0 && p[1] < 0xA0) ||
                (b == 0xED && p[1] > 0x9F))
                break;
            p += 3;
        } else {
            uint8_t lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
            if (b > 0xF4 || left < 4 || !IN(p[1], lo, hi) || !CONT(p[2]) || !CONT(p[3]))
                break;
            p += 4;
        }
    }
    return p;
}

/*
** Run the automaton over p[0..n) from state. Returns REJECT as soon as a byte
** makes the input invalid (the rest is not read: fail fast, RFC 6455 §8.1
** lets the endpoint close at once).
**
** The automaton is the definition. At a boundary (ACCEPT) valid_run skips
** what is certainly valid much faster, with the same result; the automaton
** takes over, a byte at a time, wherever valid_run stops (a bad byte, a
** sequence cut by the end of the input) and for a sequence begun in an
** earlier feed, and it rejects at the first byte that proves the input
** wrong.
*/
uint32_t ws_utf8_feed(uint32_t state, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;

    if (state >= S_COUNT)          /* not a state we hand out: treat as broken */
        return WS_UTF8_REJECT;
    if (state == S_REJECT)
        return WS_UTF8_REJECT;
    while (p < end) {
        if (state == S_ACCEPT && (p = valid_run(p, end)) == end)
            break;
        state = next_state[state][byte_class[*p++]];
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
