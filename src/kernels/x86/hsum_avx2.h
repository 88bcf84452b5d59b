/* kernels/x86/hsum_avx2.h — the horizontal sums and the lanes64 tail every x86 kernel file
 * shares (AVX2 level; include only from files compiled with -mavx2, i.e. the kernels/x86 files
 * named _avx2 or _avx512).
 *
 * Contract: hsum8 is ggml's hsum_float_8 order, which the reference's AVX2 dots end with:
 * (high 128 + low 128), then (0+2) + (1+3). hsum8_i32 sums eight int32 lanes (wrapping, exact
 * for the block sums the kernels feed it). */
#ifndef TRIT_KERNELS_X86_HSUM_AVX2_H
#define TRIT_KERNELS_X86_HSUM_AVX2_H

#include "kernels/ref/ggml_order.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

/* Sum of the 8 floats of v in ggml's hsum_float_8 order. */
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Sum of the 8 int32 lanes of v. */
static inline int hsum8_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* ggml_vec_dot_f16 / f32's n % 64 tail after the lanes64 body v, elements np .. n-1 of x (the
 * weight row) and y (the activation row): F16 (h) adds the products in double, F32 is
 * go_f32_tail. y_f32: y holds the F16 activations already converted to float (exact), else y is
 * fp16 (h) or f32. */
static inline float lanes64_tail(bool h, float v, int64_t np, int64_t n, const void *x,
                                 const void *y, bool y_f32) {
    if (!h) return go_f32_tail(v, np, n, (const float *)x, (const float *)y);
    const uint16_t *xh = x, *yh = y;
    const float *yf = y;
    double sum = v;
    for (int64_t i = np; i < n; i++)
        sum += (double)(_cvtsh_ss(xh[i]) * (y_f32 ? yf[i] : _cvtsh_ss(yh[i])));
    return (float)sum;
}

#endif
