/* kernels/x86 AVX2 (+FMA, F16C) — optimized activation quantizers and dot products.
 *
 * Contract: same results as kernels/ref (ref.c), bit for bit: integer block sums, and float
 * totals in the reference ggml's lane orders (ref/ggml_order.h) of the numerics table in use
 * (kernels.h: F32/F16 dots and tinyBLAS in the AVX-512 build's 16 lanes or the AVX2 build's 8).
 * Q8_K and Q8_0 activations are quantized as ggml's x86 quantizers (Q8_0: id = 127/amax, round half
 * to even), like the ref. The legacy 32-weight types are in legacy_avx2.c. * Types without a fast
 * path here use the ref kernels. Compiled with -mavx2 -mfma -mf16c; only reached after kernels.c
 * has checked the CPU. */
#include "kernels/kernels.h"
#include "kernels/ref/ggml_order.h"
#include "kernels/x86/hsum_avx2.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 32 int32 (four vectors) -> 32 int8 in order, saturating. */
static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packs_epi32(a, b);
    __m256i cd = _mm256_packs_epi32(c, d);
    __m256i r = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* ---- activation quantizers ---- */

static void q8_K_avx2(const float *x, block_q8_K *y, int64_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        __m256 vmax = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8)
            vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask));
        const float amax = hmax8(vmax);
        if (amax == 0) {
            memset(&y[b], 0, sizeof(y[b]));
            continue;
        }
        /* the first element reaching amax gives the signed max (as the ref's strict '>') */
        const __m256 vam = _mm256_set1_ps(amax);
        int first = 0;
        for (int j = 0; j < QK_K; j += 8) {
            int m = _mm256_movemask_ps(
                _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask), vam, _CMP_EQ_OQ));
            if (m) {
                first = j + __builtin_ctz((unsigned)m);
                break;
            }
        }
        const float iscale = -127.f / x[first];
        const __m256 vs = _mm256_set1_ps(iscale);
        const __m256i v127 = _mm256_set1_epi32(127);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + j)));
            __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + j + 8)));
            __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + j + 16)));
            __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + j + 24)));
            i0 = _mm256_min_epi32(i0, v127);
            i1 = _mm256_min_epi32(i1, v127);
            i2 = _mm256_min_epi32(i2, v127);
            i3 = _mm256_min_epi32(i3, v127);
            /* bsums of elements j..j+15 and j+16..j+31 */
            __m256i s01 = _mm256_add_epi32(i0, i1), s23 = _mm256_add_epi32(i2, i3);
            y[b].bsums[j / 16] = (int16_t)hsum8_i32(s01);
            y[b].bsums[j / 16 + 1] = (int16_t)hsum8_i32(s23);
            _mm256_storeu_si256((__m256i *)(y[b].qs + j), pack32(i0, i1, i2, i3));
        }
        y[b].d = 1 / iscale;
    }
}

static void q8_0_avx2(const float *x, block_q8_0 *y, int64_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
        __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
        __m256 m =
            _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask)),
                          _mm256_max_ps(_mm256_and_ps(v2, abs_mask), _mm256_and_ps(v3, abs_mask)));
        const float amax = hmax8(m);
        y[b].d = trit_fp32_to_fp16(amax / 127.f);
        const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, id));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, id));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, id));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, id));
        _mm256_storeu_si256((__m256i *)y[b].qs, pack32(i0, i1, i2, i3));
    }
}

static void i8_avx2(const float *x, void *dst, int64_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 vmax = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8)
        vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
    const double amax = fmax(0.00001, (double)hmax8(vmax));
    const float s = (float)(127.0 / amax);
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i lo = _mm256_set1_epi32(-128), hi = _mm256_set1_epi32(127);
    int8_t *q = dst;
    __m256i vsum = _mm256_setzero_si256();
    for (int64_t i = 0; i < n; i += 32) {
        __m256i r[4];
#pragma GCC unroll 8
        for (int k = 0; k < 4; k++) {
            r[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vs));
            r[k] = _mm256_max_epi32(lo, _mm256_min_epi32(hi, r[k]));
            vsum = _mm256_add_epi32(vsum, r[k]);
        }
        _mm256_storeu_si256((__m256i *)(q + i), pack32(r[0], r[1], r[2], r[3]));
    }
    const int32_t sum = hsum8_i32(vsum);
    memcpy(q + n, &s, sizeof(s));
    memcpy(q + n + sizeof(s), &sum, sizeof(sum));
}

static void f16_avx2(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = trit_fp32_to_fp16(x[i]);
}

static void quantize_act_avx2(uint32_t wtype, const float *x, void *dst, int64_t n) {
    switch (trit_act_type(wtype)) { /* kernels.c: the one weight -> activation format rule */
    case TRIT_Q8_K:
        q8_K_avx2(x, dst, n);
        break;
    case TRIT_Q8_0: /* Q8_0, Q4_0, Q5_0 weights (x86 quantizers, as ggml's vec_dot_type) */
        q8_0_avx2(x, dst, n);
        break;
    case TRIT_Q8_1: /* Q4_1, Q5_1 weights */
        trit_avx2_quantize_q8_1(x, dst, n);
        break;
    case TRIT_F16:
        f16_avx2(x, dst, n);
        break;
    case TRIT_ACT_I8: /* I2_S weights */
        i8_avx2(x, dst, n);
        break;
    default:
        trit_kernels_ref()->quantize_act(wtype, x, dst, n);
        break;
    }
}

/* ---- dot products ---- */

/* TQ2_0 x Q8_K for two weight rows at once (shared activation loads). Codes 0..2 multiply
 * the int8 activations with maddubs (16-bit sums; at most 2*127*2*8 per lane per block);
 * subtracting the activation block sum removes the +1 offset. */
static void dot_tq2_0_x2(int64_t n, const block_tq2_0 *x0, const block_tq2_0 *x1,
                         const block_q8_K *y, float *out0, float *out1) {
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
        for (int j = 0; j < 64; j += 32) {
            const __m256i w0 = _mm256_loadu_si256((const __m256i *)(x0[i].qs + j));
            const __m256i w1 = _mm256_loadu_si256((const __m256i *)(x1[i].qs + j));
#pragma GCC unroll 8
            for (int l = 0; l < 4; l++) {
                const __m256i a = _mm256_loadu_si256((const __m256i *)(y[i].qs + j * 4 + l * 32));
                const __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(w0, 2 * l), m3);
                const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(w1, 2 * l), m3);
                s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(c0, a));
                s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(c1, a));
            }
        }
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        s0 = _mm256_madd_epi16(_mm256_sub_epi16(s0, bs), ones);
        s1 = _mm256_madd_epi16(_mm256_sub_epi16(s1, bs), ones);
        const __m256 d0 = _mm256_set1_ps(y[i].d * _cvtsh_ss(x0[i].d));
        const __m256 d1 = _mm256_set1_ps(y[i].d * _cvtsh_ss(x1[i].d));
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), d0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), d1, acc1);
    }
    *out0 = hsum8(acc0);
    *out1 = hsum8(acc1);
}

/* TQ2_0 x Q8_K for two weight rows x T <= 2 activation rows (prefill): the codes of each 32-byte
 * weight load are split once per block and multiplied with every token's activations. Per
 * (row, token) the int16 sums, the block-sum correction and the fma are dot_tq2_0_x2's, in the
 * same order, so each output equals vec_dot's bit for bit. */
static inline __attribute__((always_inline)) void
tq2_tile2(const int T, int64_t n, const block_tq2_0 *x0, const block_tq2_0 *x1, const char *act,
          size_t act_bytes, float *out, int64_t ldo) {
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256 acc0[2], acc1[2];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc0[t] = acc1[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i s0[2], s1[2];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) s0[t] = s1[t] = _mm256_setzero_si256();
        for (int j = 0; j < 64; j += 32) {
            const __m256i w0 = _mm256_loadu_si256((const __m256i *)(x0[i].qs + j));
            const __m256i w1 = _mm256_loadu_si256((const __m256i *)(x1[i].qs + j));
#pragma GCC unroll 8
            for (int l = 0; l < 4; l++) {
                const __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(w0, 2 * l), m3);
                const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(w1, 2 * l), m3);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    const block_q8_K *y = (const block_q8_K *)(act + t * act_bytes) + i;
                    const __m256i a = _mm256_loadu_si256((const __m256i *)(y->qs + j * 4 + l * 32));
                    s0[t] = _mm256_add_epi16(s0[t], _mm256_maddubs_epi16(c0, a));
                    s1[t] = _mm256_add_epi16(s1[t], _mm256_maddubs_epi16(c1, a));
                }
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const block_q8_K *y = (const block_q8_K *)(act + t * act_bytes) + i;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
            const __m256i i0 = _mm256_madd_epi16(_mm256_sub_epi16(s0[t], bs), ones);
            const __m256i i1 = _mm256_madd_epi16(_mm256_sub_epi16(s1[t], bs), ones);
            const __m256 d0 = _mm256_set1_ps(y->d * _cvtsh_ss(x0[i].d));
            const __m256 d1 = _mm256_set1_ps(y->d * _cvtsh_ss(x1[i].d));
            acc0[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), d0, acc0[t]);
            acc1[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), d1, acc1[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        out[t * ldo] = hsum8(acc0[t]);
        out[t * ldo + 1] = hsum8(acc1[t]);
    }
}

/* TQ2_0 gemm: pairs of rows x groups of up to 2 tokens; an odd last row by vec_dot per token.
 * Two tokens, not four: a 2 x 4 tile's int16 sums and float accumulators (16 registers) spill
 * out of AVX2's 16 ymm registers; 2 x 2 measured 8-10 % faster in kbench (dev VM). */
static void tq2_gemm(int64_t n, const char *w, size_t rb, int64_t nr, const char *act, size_t ab,
                     int64_t nt, float *out, int64_t ldo) {
    int64_t r = 0;
    for (; r + 2 <= nr; r += 2) {
        const block_tq2_0 *x0 = (const void *)(w + r * rb), *x1 = (const void *)(w + (r + 1) * rb);
        for (int64_t t = 0; t < nt; t += 2) {
            const char *a = act + t * ab;
            float *o = out + t * ldo + r;
            if (nt - t >= 2)
                tq2_tile2(2, n, x0, x1, a, ab, o, ldo);
            else
                tq2_tile2(1, n, x0, x1, a, ab, o, ldo);
        }
    }
    for (; r < nr; r++)
        for (int64_t t = 0; t < nt; t++) {
            float r0, r1;
            dot_tq2_0_x2(n, (const void *)(w + r * rb), (const void *)(w + r * rb),
                         (const void *)(act + t * ab), &r0, &r1);
            out[t * ldo + r] = r0;
        }
}

/* Base-3 digit of bytes already multiplied by 3^l (mod 256): ((v * 3) >> 8) is 0, 1 or 2 and
 * equals [v >= 86] + [v >= 171]. */
static inline __m256i tq1_digit(__m256i v) {
    const __m256i one = _mm256_set1_epi8(1);
    __m256i a = _mm256_min_epu8(_mm256_subs_epu8(v, _mm256_set1_epi8(85)), one);
    __m256i b = _mm256_min_epu8(_mm256_subs_epu8(v, _mm256_set1_epi8((char)170)), one);
    return _mm256_add_epi8(a, b);
}

/* v * 3 (mod 256) per byte: two adds (a chain of these gives v * 3^l at two ops a step, one
 * fewer than a shift-and-mask * 9) */
static inline __m256i mul3(__m256i v) {
    return _mm256_add_epi8(v, _mm256_add_epi8(v, v));
}

/* One TQ1_0 block's codes as eight 32-byte vectors of bytes times powers of 3 whose base-3
 * digit (tq1_digit) is the code; vector k pairs with activation bytes 32k..32k+31 of the block
 * (ggml's AVX2 layout):
 *   k = 0..4: qs[0..31] * 3^k;
 *   k = 5, 6: qs[32..47] * (3^0, 3^1), (3^2, 3^3) (low, high 16 bytes);
 *   k = 7:    qs[32..47] * 3^4, then qh[0..3] * 3^0..3^3 (4 bytes each).
 * high = false makes vectors 0..4 (from qs[0..31]), high = true vectors 5..7, so a caller that
 * consumes 0..4 before asking for 5..7 keeps fewer registers live. */
static inline __attribute__((always_inline)) void tq1_scaled(const block_tq1_0 *x, bool high,
                                                             __m256i v[8]) {
    if (!high) {
        v[0] = _mm256_loadu_si256((const __m256i *)x->qs);
        v[1] = mul3(v[0]), v[2] = mul3(v[1]), v[3] = mul3(v[2]), v[4] = mul3(v[3]);
        return;
    }
    const __m256i r0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(x->qs + 32)));
    const __m256i r1 = mul3(r0), r2 = mul3(r1), r3 = mul3(r2), r4 = mul3(r3);
    uint32_t qh;
    memcpy(&qh, x->qh, 4);
    __m256i hq = _mm256_cvtepu8_epi16(_mm_set1_epi32((int)qh));
    hq = _mm256_mullo_epi16(hq,
                            _mm256_setr_epi16(1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27));
    hq = _mm256_and_si256(hq, _mm256_set1_epi16(0xFF));
    const __m128i h5 =
        _mm_packus_epi16(_mm256_castsi256_si128(hq), _mm256_extracti128_si256(hq, 1));
    v[5] = _mm256_blend_epi32(r0, r1, 0xF0);
    v[6] = _mm256_blend_epi32(r2, r3, 0xF0);
    v[7] = _mm256_inserti128_si256(r4, h5, 1);
}

/* The eight digit vectors of a block (for tiles that reuse them across tokens). */
static inline __attribute__((always_inline)) void tq1_digits(const block_tq1_0 *x, __m256i c[8]) {
    tq1_scaled(x, false, c);
    tq1_scaled(x, true, c);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) c[k] = tq1_digit(c[k]);
}

/* The block's integer sums with one activation block in ggml's AVX2 lanes (8 x int32, +1
 * offset removed): int16 maddubs sums in k order, minus the block sums, pairs added. */
static inline __attribute__((always_inline)) __m256i tq1_sums(const __m256i c[8],
                                                              const block_q8_K *y) {
    __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)
        s = _mm256_add_epi16(
            s, _mm256_maddubs_epi16(c[k], _mm256_loadu_si256((const __m256i *)(y->qs + 32 * k))));
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    return _mm256_madd_epi16(_mm256_sub_epi16(s, bs), _mm256_set1_epi16(1));
}

/* s plus the int16 maddubs sums of digit vectors k0..k1-1 (scaled bytes v) with y. */
static inline __attribute__((always_inline)) __m256i tq1_add(__m256i s, const __m256i v[8],
                                                             const block_q8_K *y, int k0, int k1) {
#pragma GCC unroll 8
    for (int k = k0; k < k1; k++) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * k));
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(tq1_digit(v[k]), a));
    }
    return s;
}

/* tq1_sums of one block with the digits made as they are consumed (decode: no reuse). */
static inline __attribute__((always_inline)) __m256i tq1_block(const block_tq1_0 *x,
                                                               const block_q8_K *y) {
    __m256i v[8];
    tq1_scaled(x, false, v);
    __m256i s = tq1_add(_mm256_setzero_si256(), v, y, 0, 5);
    tq1_scaled(x, true, v);
    s = tq1_add(s, v, y, 5, 8);
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    return _mm256_madd_epi16(_mm256_sub_epi16(s, bs), _mm256_set1_epi16(1));
}

/* TQ1_0 gemm tile: one weight row x T (<= 4) activation rows, the digits decoded once per block;
 * per (row, token) tq1_sums and the fma are dot_tq1_0's, so outputs equal vec_dot's bytes. */
static inline __attribute__((always_inline)) void tq1_tile(const int T, int64_t n,
                                                           const block_tq1_0 *x, const char *act,
                                                           size_t act_bytes, float *out,
                                                           int64_t ldo) {
    __m256 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i c[8];
        tq1_digits(&x[i], c);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const block_q8_K *y = (const block_q8_K *)(act + t * act_bytes) + i;
            const __m256 d = _mm256_set1_ps(y->d * _cvtsh_ss(x[i].d));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tq1_sums(c, y)), d, acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) out[t * ldo] = hsum8(acc[t]);
}

static void tq1_gemm(int64_t n, const char *w, size_t rb, int64_t nr, const char *act, size_t ab,
                     int64_t nt, float *out, int64_t ldo) {
    for (int64_t r = 0; r < nr; r++) {
        const block_tq1_0 *x = (const void *)(w + r * rb);
        for (int64_t t = 0; t < nt; t += 4) {
            const char *a = act + t * ab;
            float *o = out + t * ldo + r;
            switch (TRIT_MIN(nt - t, 4)) {
            case 1:
                tq1_tile(1, n, x, a, ab, o, ldo);
                break;
            case 2:
                tq1_tile(2, n, x, a, ab, o, ldo);
                break;
            case 3:
                tq1_tile(3, n, x, a, ab, o, ldo);
                break;
            default:
                tq1_tile(4, n, x, a, ab, o, ldo);
                break;
            }
        }
    }
}

/* TQ1_0 x Q8_K for R (1 or 2) weight rows sharing the activation loads. */
static inline __attribute__((always_inline)) void dot_tq1_0_rows(const int R, int64_t n,
                                                                 const block_tq1_0 *const x[2],
                                                                 const block_q8_K *y, float *out) {
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / QK_K; i++)
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const __m256 d = _mm256_set1_ps(y[i].d * _cvtsh_ss(x[r][i].d));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tq1_block(&x[r][i], &y[i])), d, acc[r]);
        }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]);
}

static float dot_tq1_0(int64_t n, const block_tq1_0 *x, const block_q8_K *y) {
    const block_tq1_0 *xs[2] = {x, x};
    float r;
    dot_tq1_0_rows(1, n, xs, y, &r);
    return r;
}

static float dot_q8_0(int64_t n, const block_q8_0 *x, const block_q8_0 *y) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256i p = _mm256_madd_epi16(
            _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx)), ones);
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    }
    return hsum8(acc);
}

static float dot_i2_s(int64_t n, const uint8_t *x, const int8_t *q) {
    float s;
    int32_t qsum;
    memcpy(&s, q + n, sizeof(s));
    memcpy(&qsum, q + n + sizeof(s), sizeof(qsum));
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    const int64_t nb = n / QK_I2_S;
    for (int64_t b0 = 0; b0 < nb; b0 += 8) { /* 16-bit sums flushed every 8 blocks */
        __m256i s16 = _mm256_setzero_si256();
        for (int64_t b = b0; b < TRIT_MIN(nb, b0 + 8); b++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(x + b * 32));
            const int8_t *a = q + b * QK_I2_S;
#pragma GCC unroll 8
            for (int g = 0; g < 4; g++) {
                const __m256i c = _mm256_and_si256(_mm256_srli_epi16(w, 6 - 2 * g), m3);
                s16 = _mm256_add_epi16(
                    s16,
                    _mm256_maddubs_epi16(c, _mm256_loadu_si256((const __m256i *)(a + 32 * g))));
            }
        }
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(s16, ones));
    }
    return (float)(hsum8_i32(acc) - qsum) / s;
}

/* F32/F16 dots in ggml's orders (ref/ggml_order.h): a 16-lane accumulator is a pair of
 * 256-bit registers (lo = lanes 0..7, hi = lanes 8..15), and reduce16 = hsum8(hi + lo). */
static inline float reduce16(__m256 lo, __m256 hi) {
    return hsum8(_mm256_add_ps(hi, lo));
}

static inline __m256 ld_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* lanes64 (ggml_vec_dot_f32 / f16): accumulator j (of 4) takes elements 16j..16j+15 of every
 * 64-element step. F16 when h. */
static inline float dot_lanes64(bool h, int64_t n, const void *xv, const void *yv) {
    const float *xf = xv, *yf = yv;
    const uint16_t *xh = xv, *yh = yv;
    __m256 a[4][2];
#pragma GCC unroll 8
    for (int j = 0; j < 4; j++) a[j][0] = a[j][1] = _mm256_setzero_ps();
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64) {
#pragma GCC unroll 8
        for (int j = 0; j < 4; j++)
#pragma GCC unroll 8
            for (int u = 0; u < 2; u++) {
                const int64_t o = i + 16 * j + 8 * u;
                const __m256 xv8 = h ? ld_f16(xh + o) : _mm256_loadu_ps(xf + o);
                const __m256 yv8 = h ? ld_f16(yh + o) : _mm256_loadu_ps(yf + o);
                a[j][u] = _mm256_fmadd_ps(xv8, yv8, a[j][u]);
            }
    }
#pragma GCC unroll 8
    for (int u = 0; u < 2; u++) {
        a[0][u] = _mm256_add_ps(a[0][u], a[2][u]);
        a[1][u] = _mm256_add_ps(a[1][u], a[3][u]);
        a[0][u] = _mm256_add_ps(a[0][u], a[1][u]);
    }
    return lanes64_tail(h, reduce16(a[0][0], a[0][1]), np, n, xv, yv, false);
}

/* dot_lanes64 for R weight rows x T activation rows (R * T <= 3), each weight and activation
 * vector loaded (and converted) once for the block. Two passes, one per 256-bit half u of the
 * 16-lane accumulators (4 x R x T of them fit the 16 ymm registers; both halves would not);
 * every sum is dot_lanes64's: same accumulators, fold and tail. a: T activation rows lda
 * elements apart, in their own format (F16 when h), or F32 when a_f32 (F16 ones converted
 * first: exact). out[t * ldo + r]. Decode runs R rows x 1 token; a batch's decode rows (one-
 * token order) 1 row x T tokens. */
static inline __attribute__((always_inline)) void
lanes64_block(const bool h, const int R, const int T, int64_t n, const char *w, size_t rb,
              const void *a, int64_t lda, const bool a_f32, float *out, int64_t ldo) {
    const int64_t np = n & ~(int64_t)63;
    __m256 half[2][3];
#pragma GCC unroll 2
    for (int u = 0; u < 2; u++) {
        __m256 acc[3][4]; /* [r * T + t][j] */
#pragma GCC unroll 8
        for (int k = 0; k < R * T; k++)
#pragma GCC unroll 8
            for (int j = 0; j < 4; j++) acc[k][j] = _mm256_setzero_ps();
        for (int64_t i = 0; i < np; i += 64) {
#pragma GCC unroll 8
            for (int j = 0; j < 4; j++) {
                const int64_t o = i + 16 * j + 8 * u;
                __m256 av[3];
#pragma GCC unroll 8
                for (int t = 0; t < T; t++)
                    av[t] = h && !a_f32 ? ld_f16((const uint16_t *)a + t * lda + o)
                                        : _mm256_loadu_ps((const float *)a + t * lda + o);
#pragma GCC unroll 8
                for (int r = 0; r < R; r++) {
                    const __m256 wv = h ? ld_f16((const uint16_t *)(w + r * rb) + o)
                                        : _mm256_loadu_ps((const float *)(w + r * rb) + o);
#pragma GCC unroll 8
                    for (int t = 0; t < T; t++)
                        acc[r * T + t][j] = _mm256_fmadd_ps(wv, av[t], acc[r * T + t][j]);
                }
            }
        }
#pragma GCC unroll 8
        for (int k = 0; k < R * T; k++)
            half[u][k] = _mm256_add_ps(_mm256_add_ps(acc[k][0], acc[k][2]),
                                       _mm256_add_ps(acc[k][1], acc[k][3]));
    }
    const size_t es = h && !a_f32 ? 2 : 4;
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            out[t * ldo + r] =
                lanes64_tail(h, reduce16(half[0][r * T + t], half[1][r * T + t]), np, n, w + r * rb,
                             (const char *)a + (size_t)(t * lda) * es, a_f32);
}

/* lanes32 (the AVX2 build's ggml_vec_dot_f32 / f16, ref/ggml_order.h): four 8-lane
 * accumulators over steps of 32, folded (0+2) + (1+3), GGML_F32x8_REDUCE's hadd, then the n % 32
 * tail (F16: products in double; F32: go_f32_tail8). y_f32: y is F16 activations converted. */
static inline float dot_lanes32(bool h, int64_t n, const void *xv, const void *yv, bool y_f32) {
    const float *xf = xv, *yf = yv;
    const uint16_t *xh = xv, *yh = yv;
    __m256 a[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) a[j] = _mm256_setzero_ps();
    const int64_t np = n & ~(int64_t)31;
    for (int64_t i = 0; i < np; i += 32) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const int64_t o = i + 8 * j;
            const __m256 x8 = h ? ld_f16(xh + o) : _mm256_loadu_ps(xf + o);
            const __m256 y8 = h && !y_f32 ? ld_f16(yh + o) : _mm256_loadu_ps(yf + o);
            a[j] = _mm256_fmadd_ps(x8, y8, a[j]);
        }
    }
    const __m256 f = _mm256_add_ps(_mm256_add_ps(a[0], a[2]), _mm256_add_ps(a[1], a[3]));
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
    t = _mm_hadd_ps(t, t);
    const float v = _mm_cvtss_f32(_mm_hadd_ps(t, t));
    if (!h) return go_f32_tail8(v, np, n, xf, yf);
    double sum = v;
    for (int64_t i = np; i < n; i++)
        sum += (double)(_cvtsh_ss(xh[i]) * (y_f32 ? yf[i] : _cvtsh_ss(yh[i])));
    return (float)sum;
}

/* The table's lanes: 8 is the AVX2 build (lanes32 / lanes8), 16 the AVX-512 one. */
static inline bool avx2_build(void) {
    return trit_numerics_table_get()->lanes == 8;
}

static float dot_f32(int64_t n, const float *x, const float *y) {
    return avx2_build() ? dot_lanes32(false, n, x, y, false) : dot_lanes64(false, n, x, y);
}

static float dot_f16(int64_t n, const uint16_t *x, const uint16_t *y) {
    return avx2_build() ? dot_lanes32(true, n, x, y, false) : dot_lanes64(true, n, x, y);
}

/* lanes8 (the AVX2 build's tinyBLAS<8>): one 8-lane fma accumulator per row, hsum8; R rows
 * share the activation loads. n % 8 == 0. */
static inline void rows_lanes8(bool h, const int R, int64_t n, const char *w, size_t rb,
                               const void *act, float *out) {
    __m256 a[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) a[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 av =
            h ? ld_f16((const uint16_t *)act + i) : _mm256_loadu_ps((const float *)act + i);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m256 wv = h ? ld_f16((const uint16_t *)(w + r * rb) + i)
                                : _mm256_loadu_ps((const float *)(w + r * rb) + i);
            a[r] = _mm256_fmadd_ps(wv, av, a[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) out[r] = hsum8(a[r]);
}

/* lanes16 (tinyBLAS): one 16-lane fma accumulator per row; R rows share the activation loads.
 * n % 16 == 0. */
static inline void rows_lanes16(bool h, const int R, int64_t n, const char *w, size_t rb,
                                const void *act, float *out) {
    __m256 a[4][2];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) a[r][0] = a[r][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
#pragma GCC unroll 8
        for (int u = 0; u < 2; u++) {
            const __m256 av = h ? ld_f16((const uint16_t *)act + i + 8 * u)
                                : _mm256_loadu_ps((const float *)act + i + 8 * u);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                const __m256 wv = h ? ld_f16((const uint16_t *)(w + r * rb) + i + 8 * u)
                                    : _mm256_loadu_ps((const float *)(w + r * rb) + i + 8 * u);
                a[r][u] = _mm256_fmadd_ps(wv, av, a[r][u]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) out[r] = reduce16(a[r][0], a[r][1]);
}

static float vec_dot_avx2(uint32_t wtype, int64_t n, const void *w, const void *a) {
    float r0, r1;
    if (trit_is_kquant(wtype)) /* Q2_K..Q6_K, repacked orders included: x86/kquants_avx2.c */
        return trit_avx2_dot_kquant(wtype, n, w, a);
    switch (wtype) {
    case TRIT_TQ2_0:
        dot_tq2_0_x2(n, w, w, a, &r0, &r1);
        return r0;
    case TRIT_TQ1_0:
        return dot_tq1_0(n, w, a);
    case TRIT_Q8_0:
        return dot_q8_0(n, w, a);
    case TRIT_Q4_0: /* legacy types: x86/legacy_avx2.c */
    case TRIT_Q4_1:
    case TRIT_Q5_0:
    case TRIT_Q5_1:
        return trit_avx2_dot_legacy(wtype, n, w, a);
    case TRIT_Q4_0 | TRIT_REPACK8: /* the reference's repacked order (kernels.h) */
        return trit_avx2_dot_q4_0_r8(n, w, a);
    case TRIT_I2_S:
        return dot_i2_s(n, w, a);
    case TRIT_F32:
        return dot_f32(n, w, a);
    case TRIT_F16:
        return dot_f16(n, w, a);
    default:
        return trit_kernels_ref()->vec_dot(wtype, n, w, a);
    }
}

static void vec_dot_rows_avx2(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                              int64_t nr, const void *act, float *out) {
    const char *wp = w;
    int64_t r = 0;
    if (trit_is_kquant(wtype)) { /* x86/kquants_avx2.c */
        trit_avx2_dot_kquant_rows(wtype, n, w, row_bytes, nr, act, out);
        return;
    }
    if (wtype == TRIT_TQ2_0)
        for (; r + 2 <= nr; r += 2)
            dot_tq2_0_x2(n, (const void *)(wp + r * row_bytes),
                         (const void *)(wp + (r + 1) * row_bytes), act, &out[r], &out[r + 1]);
    if (wtype == TRIT_TQ1_0)
        for (; r + 2 <= nr; r += 2) {
            const block_tq1_0 *xs[2] = {(const void *)(wp + r * row_bytes),
                                        (const void *)(wp + (r + 1) * row_bytes)};
            dot_tq1_0_rows(2, n, xs, act, &out[r]);
        }
    if ((wtype == TRIT_F16 || wtype == TRIT_F32) && !avx2_build()) { /* rows in threes, a pair */
        const bool h = wtype == TRIT_F16;
        for (; r + 3 <= nr; r += 3)
            lanes64_block(h, 3, 1, n, wp + r * row_bytes, row_bytes, act, 0, false, &out[r], 0);
        if (r + 2 == nr) {
            lanes64_block(h, 2, 1, n, wp + r * row_bytes, row_bytes, act, 0, false, &out[r], 0);
            r += 2;
        }
    }
    for (; r < nr; r++) out[r] = vec_dot_avx2(wtype, n, wp + r * row_bytes, act);
}

/* F32/F16: tinyBLAS order (trit_matmul calls gemm for these only where tinyBLAS applies);
 * other types: vec_dot_rows per token. */
static void gemm_avx2(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                      const void *act, size_t act_bytes, int64_t nt, float *out, int64_t ldo) {
    if (trit_is_legacy_wtype(wtype)) { /* x86/legacy_avx2.c: blocks unpacked once per tile */
        trit_avx2_gemm_legacy(wtype, n, w, row_bytes, nr, act, act_bytes, nt, out, ldo);
        return;
    }
    const bool h = wtype == TRIT_F16;
    if (wtype == TRIT_BF16) { /* no fast path: the ref's tinyBLAS order */
        trit_kernels_ref()->gemm(wtype, n, w, row_bytes, nr, act, act_bytes, nt, out, ldo);
        return;
    }
    if (wtype == TRIT_TQ2_0) { /* weights decoded once per 4 tokens */
        tq2_gemm(n, w, row_bytes, nr, act, act_bytes, nt, out, ldo);
        return;
    }
    if (wtype == TRIT_TQ1_0) {
        tq1_gemm(n, w, row_bytes, nr, act, act_bytes, nt, out, ldo);
        return;
    }
    for (int64_t t = 0; t < nt; t++) {
        const char *a = (const char *)act + t * act_bytes;
        if (wtype != TRIT_F32 && !h) {
            vec_dot_rows_avx2(wtype, n, w, row_bytes, nr, a, out + t * ldo);
            continue;
        }
        int64_t r = 0;
        if (avx2_build()) {
            for (; r + 4 <= nr; r += 4)
                rows_lanes8(h, 4, n, (const char *)w + r * row_bytes, row_bytes, a,
                            out + t * ldo + r);
            for (; r < nr; r++)
                rows_lanes8(h, 1, n, (const char *)w + r * row_bytes, row_bytes, a,
                            out + t * ldo + r);
            continue;
        }
        for (; r + 4 <= nr; r += 4)
            rows_lanes16(h, 4, n, (const char *)w + r * row_bytes, row_bytes, a, out + t * ldo + r);
        for (; r < nr; r++)
            rows_lanes16(h, 1, n, (const char *)w + r * row_bytes, row_bytes, a, out + t * ldo + r);
    }
}

static _Thread_local float *tl_f32;
static _Thread_local size_t tl_f32_cap;
/* The buffer also hangs on a thread-specific key whose destructor frees it when the thread
 * exits: pool workers (which call this) end with their engine context, and a _Thread_local
 * pointer alone would leak each worker's buffer (found by tests/fuzz/fuzz_engine.c). */
static pthread_key_t tl_f32_key;
static pthread_once_t tl_f32_once = PTHREAD_ONCE_INIT;

static void tl_f32_key_init(void) {
    if (pthread_key_create(&tl_f32_key, free)) abort(); /* only when out of keys at start */
}

const float *trit_x86_acts_f32(int64_t n, const void *act, size_t act_bytes, int64_t nt) {
    const size_t need = (size_t)(n * nt);
    if (need > tl_f32_cap) {
        free(tl_f32);
        tl_f32_cap = need + need / 4;
        tl_f32 = xaligned_alloc(32, (tl_f32_cap * sizeof(float) + 31) & ~(size_t)31);
        pthread_once(&tl_f32_once, tl_f32_key_init);
        pthread_setspecific(tl_f32_key, tl_f32);
    }
    for (int64_t t = 0; t < nt; t++) {
        const uint16_t *x = (const uint16_t *)((const char *)act + t * act_bytes);
        float *y = tl_f32 + t * n;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, ld_f16(x + i));
        for (; i < n; i++) y[i] = _cvtsh_ss(x[i]);
    }
    return tl_f32;
}

/* The one-token order for nt tokens (kernels.h): F32/F16 share each weight load across up to
 * 3 tokens; BF16 (no fast path) runs vec_dot_rows per token; every quantized type's gemm is
 * vec_dot's order already (kernels.h), its tiles included. */
static void vec_dot_tile_avx2(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                              int64_t nr, const void *act, size_t act_bytes, int64_t nt, float *out,
                              int64_t ldo) {
    if (wtype == TRIT_BF16) {
        for (int64_t t = 0; t < nt; t++)
            vec_dot_rows_avx2(wtype, n, w, row_bytes, nr, (const char *)act + t * act_bytes,
                              out + t * ldo);
        return;
    }
    if (wtype != TRIT_F16 && wtype != TRIT_F32) {
        gemm_avx2(wtype, n, w, row_bytes, nr, act, act_bytes, nt, out, ldo);
        return;
    }
    const bool h = wtype == TRIT_F16;
    const float *a = h ? trit_x86_acts_f32(n, act, act_bytes, nt) : act;
    const int64_t lda = h ? n : (int64_t)(act_bytes / sizeof(float));
    if (avx2_build()) { /* lanes32 per (row, token) */
        for (int64_t r = 0; r < nr; r++)
            for (int64_t t = 0; t < nt; t++)
                out[t * ldo + r] =
                    dot_lanes32(h, n, (const char *)w + r * row_bytes, a + t * lda, true);
        return;
    }
    for (int64_t r = 0; r < nr; r++)
        for (int64_t t = 0; t < nt; t += 3) {
            const char *wr = (const char *)w + r * row_bytes;
            float *o = out + t * ldo + r;
            if (nt - t >= 3)
                lanes64_block(h, 1, 3, n, wr, 0, a + t * lda, lda, true, o, ldo);
            else if (nt - t == 2)
                lanes64_block(h, 1, 2, n, wr, 0, a + t * lda, lda, true, o, ldo);
            else
                lanes64_block(h, 1, 1, n, wr, 0, a + t * lda, lda, true, o, ldo);
        }
}

const trit_kernels trit_kernels_avx2_impl = {
    .name = "avx2",
    .quantize_act = quantize_act_avx2,
    .vec_dot = vec_dot_avx2,
    .vec_dot_rows = vec_dot_rows_avx2,
    .gemm = gemm_avx2,
    .vec_dot_tile = vec_dot_tile_avx2,
    .attention = trit_attention_avx2,
};
