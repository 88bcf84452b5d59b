/* kernels/x86 AVX-512 (F, BW, VL, DQ, VNNI) — VNNI dot products for the hot weight types.
 *
 * Contract: as kernels_avx2.c (same results as the ref kernels: integer sums exactly, float
 * totals to rounding). vpdpbusd multiplies the unsigned ternary codes (0..2) by the int8
 * activations straight into 32-bit sums, so no 16-bit intermediate can overflow. Activation
 * quantizers and types without a fast path here use the AVX2 set. */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <string.h>

static inline float hsum16(__m512 v) {
    return _mm512_reduce_add_ps(v);
}

/* TQ2_0 x Q8_K, nr (1..4) weight rows at once against one activation row. 256-bit VNNI
 * (AVX512VL) keeps the 32-byte code groups aligned with the activation layout. */
static void dot_tq2_0_rows(int64_t n, const char *w, size_t row_bytes, int nr, const block_q8_K *y,
                           float *out) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        __m256i a[8];
        for (int k = 0; k < 8; k++) a[k] = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * k));
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const __m256i ysum = _mm256_madd_epi16(bs, _mm256_set1_epi16(1));
        for (int r = 0; r < nr; r++) {
            const block_tq2_0 *x = (const block_tq2_0 *)(w + r * row_bytes) + i;
            __m256i s = _mm256_setzero_si256();
            for (int j = 0; j < 2; j++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));
                s = _mm256_dpbusd_epi32(s, _mm256_and_si256(q, m3), a[4 * j + 0]);
                s = _mm256_dpbusd_epi32(s, _mm256_and_si256(_mm256_srli_epi16(q, 2), m3),
                                        a[4 * j + 1]);
                s = _mm256_dpbusd_epi32(s, _mm256_and_si256(_mm256_srli_epi16(q, 4), m3),
                                        a[4 * j + 2]);
                s = _mm256_dpbusd_epi32(s, _mm256_and_si256(_mm256_srli_epi16(q, 6), m3),
                                        a[4 * j + 3]);
            }
            s = _mm256_sub_epi32(s, ysum);
            const __m256 d = _mm256_set1_ps(y[i].d * trit_fp16_to_fp32(x->d));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[r]);
        }
    }
    for (int r = 0; r < nr; r++) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        out[r] = _mm_cvtss_f32(s);
    }
}

static float dot_f32(int64_t n, const float *x, const float *y) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
    }
    for (; i + 16 <= n; i += 16)
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a1);
    }
    return hsum16(_mm512_add_ps(a0, a1));
}

static inline __m512 ld_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

static float dot_f16(int64_t n, const uint16_t *x, const uint16_t *y) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(ld_f16(x + i), ld_f16(y + i), a0);
        a1 = _mm512_fmadd_ps(ld_f16(x + i + 16), ld_f16(y + i + 16), a1);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(ld_f16(x + i), ld_f16(y + i), a0);
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i)),
                             _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, y + i)), a1);
    }
    return hsum16(_mm512_add_ps(a0, a1));
}

static float vec_dot_avx512(uint32_t wtype, int64_t n, const void *w, const void *a) {
    float r;
    switch (wtype) {
    case TRIT_TQ2_0:
        dot_tq2_0_rows(n, w, 0, 1, a, &r);
        return r;
    case TRIT_F32:
        return dot_f32(n, w, a);
    case TRIT_F16:
        return dot_f16(n, w, a);
    default:
        return trit_kernels_avx2_impl.vec_dot(wtype, n, w, a);
    }
}

static void vec_dot_rows_avx512(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                                int64_t nr, const void *act, float *out) {
    const char *wp = w;
    if (wtype == TRIT_TQ2_0) {
        for (int64_t r = 0; r < nr; r += 4)
            dot_tq2_0_rows(n, wp + r * row_bytes, row_bytes, (int)TRIT_MIN(4, nr - r), act,
                           out + r);
        return;
    }
    if (wtype != TRIT_F32 && wtype != TRIT_F16) {
        trit_kernels_avx2_impl.vec_dot_rows(wtype, n, w, row_bytes, nr, act, out);
        return;
    }
    for (int64_t r = 0; r < nr; r++) out[r] = vec_dot_avx512(wtype, n, wp + r * row_bytes, act);
}

static void quantize_act_avx512(uint32_t wtype, const float *x, void *dst, int64_t n) {
    trit_kernels_avx2_impl.quantize_act(wtype, x, dst, n);
}

const trit_kernels trit_kernels_avx512_impl = {
    .name = "avx512",
    .quantize_act = quantize_act_avx512,
    .vec_dot = vec_dot_avx512,
    .vec_dot_rows = vec_dot_rows_avx512,
    .gemm = NULL,
};
