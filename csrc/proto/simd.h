/* SPDX-License-Identifier: MIT
 *
 * simd.h -- the wider vector paths of the byte loops (masking, the ASCII
 * runs of the UTF-8 check), taken when the CPU has them.
 *
 * x86-64 guarantees SSE2, which the portable loops get from GCC's vector
 * types; AVX2 (32-byte registers) is asked of the CPU once per translation
 * unit and used through functions compiled for it (target attribute), so
 * the library still runs on a CPU without it. LUAWS_NO_AVX2 at build time
 * leaves the AVX2 paths out (to measure or test the others).
 */
#ifndef LUAWS_PROTO_SIMD_H
#define LUAWS_PROTO_SIMD_H

#if defined(__GNUC__) && defined(__x86_64__) && !defined(LUAWS_NO_AVX2)
#define WS_HAVE_AVX2 1
#include <immintrin.h>

#define WS_TARGET_AVX2 __attribute__((target("avx2")))

/* 1 if the CPU runs AVX2 (asked once). */
static inline int ws_cpu_avx2(void)
{
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return have;
}
#endif

#endif
