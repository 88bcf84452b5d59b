/* kernels/x86 AVX-512 (F, BW, VL, DQ, VNNI) — VNNI dot products for the hot weight types.
 *
 * Contract: as kernels_avx2.c (bit-identical to the ref kernels: integer sums, float totals in
 * the reference ggml's lane orders). vpdpbusd multiplies the unsigned ternary codes (0..2) by the
 * int8 activations straight into 32-bit sums, so no 16-bit intermediate can overflow. Activation
 * quantizers and types without a fast path here use the AVX2 set. */
#include "kernels/kernels.h"
#include "kernels/ref/ggml_order.h"
#include "kernels/x86/att_units.h"
#include "kernels/x86/hsum_avx2.h"

#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static inline float hsum16(__m512 v) {
    return _mm512_reduce_add_ps(v);
}

#define INL static inline __attribute__((always_inline))

/* ggml_v_expf (AVX-512), 16 lanes: go_v_expf's statements (ref/ggml_order.h) as vectors, so
 * every lane equals go_v_expf of it (test_kernels kernels_opt/v_expf_lanes). fnmadd(n, c, x) is
 * fma(-n, c, x); scalef(j, n) with integral n is j * 2^n in one rounding. */
INL __m512 v_expf512(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192.0f), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(
            _mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
            _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (!big) return res;
    /* |n| > 192: 0 below, infinity above */
    const __mmask16 neg = _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ);
    const __m512 alt = _mm512_mask_blend_ps(neg, _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
    return _mm512_mask_blend_ps(big, res, alt);
}

void trit_v_expf16_avx512(const float *x, float *y) {
    _mm512_storeu_ps(y, v_expf512(_mm512_loadu_ps(x)));
}

/* trit_swiglu's numerics (ggml_vec_swiglu_f32 on the AVX-512 build): the whole 16-lane part
 * with the vector silu x / (1 + v_expf(0 - x)), the tail with libm (trit_swiglu). */
void trit_swiglu_avx512(const float *g, const float *u, float *y, int64_t n) {
    const int64_t n16 = n & ~(int64_t)15;
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n16; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        const __m512 silu =
            _mm512_div_ps(x, _mm512_add_ps(one, v_expf512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        _mm512_storeu_ps(y + i, _mm512_mul_ps(silu, _mm512_loadu_ps(u + i)));
    }
    for (int64_t i = n16; i < n; i++) y[i] = trit_silu(g[i]) * u[i];
}
#define MAXT 4 /* tokens per tile */
#define MAXR 8 /* weight rows per tile (8 only with 1 token) */

/* ---- ternary tiles: R weight rows x T activation rows ----
 * vpdpbusd sums unsigned codes (0..2) x int8 activations into 32-bit lanes. The +1 code offset
 * is removed with the activation block sums (bsums), the block scales are applied per block in
 * float. TQ1_0 (tq1_tile): each 256-element block is decoded into four 64-byte code vectors
 * whose element k pairs with activation element 64*v + k, so activations are plain 64-byte
 * loads. TQ2_0 (tq2_pair_tile): two rows share each register, see there. */

/* Base-3 digit of bytes already multiplied by 3^l (mod 256): ((v * 3) >> 8) = [v >= 86] +
 * [v >= 171]. */
INL __m512i tq1_digit(__m512i v) {
    const __m512i one = _mm512_set1_epi8(1);
    return _mm512_add_epi8(_mm512_min_epu8(_mm512_subs_epu8(v, _mm512_set1_epi8(85)), one),
                           _mm512_min_epu8(_mm512_subs_epu8(v, _mm512_set1_epi8((char)170)), one));
}

INL __m512i mul3_512(__m512i v) {
    return _mm512_add_epi8(v, _mm512_add_epi8(v, v));
}

/* TQ1_0: qs[0..31] digit l pairs with element 32l + m (l < 5); qs[32..47] digit l with
 * 160 + 16l + m; qh[0..3] digit l with 240 + 4l + j.
 * One 512-bit register Z holds [qs[0..31] | qs[32..47] | qh[0..3] x 4]; Z_l = Z * 3^l (mod 256)
 * for l = 0..4 are computed once, and the four code vectors are assembled from their 128-bit
 * lanes (the qh lane takes copy j from Z_j), then turned into digits. */
INL void tq1_codes(const block_tq1_0 *x, __m512i c[4]) {
    /* 52 bytes (qs, qh): a masked load never reads past the block */
    const __m512i raw = _mm512_maskz_loadu_epi8(0x000FFFFFFFFFFFFFull, x->qs);
    const __m512i z0 = _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 12, 12, 12), raw);
    /* z_l = z0 * 3^l: two adds a step (cheaper than a shift-and-mask * 9) */
    const __m512i z1 = mul3_512(z0), z2 = mul3_512(z1), z3 = mul3_512(z2), z4 = mul3_512(z3);
    /* qh lane (bytes 48..63): copy j (4 bytes) from z_j */
    __m512i h = _mm512_mask_blend_epi32(0x2000, z0, z1);
    h = _mm512_mask_blend_epi32(0x4000, h, z2);
    h = _mm512_mask_blend_epi32(0x8000, h, z3);
    c[0] = tq1_digit(_mm512_shuffle_i64x2(z0, z1, _MM_SHUFFLE(1, 0, 1, 0)));
    c[1] = tq1_digit(_mm512_shuffle_i64x2(z2, z3, _MM_SHUFFLE(1, 0, 1, 0)));
    const __m512i t01 = _mm512_shuffle_i64x2(z0, z1, _MM_SHUFFLE(2, 2, 2, 2)); /* z0.t . z1.t . */
    c[2] = tq1_digit(_mm512_shuffle_i64x2(z4, t01, _MM_SHUFFLE(2, 0, 1, 0)));
    const __m512i t23 = _mm512_shuffle_i64x2(z2, z3, _MM_SHUFFLE(2, 2, 2, 2)); /* z2.t . z3.t . */
    const __m512i t4h = _mm512_shuffle_i64x2(z4, h, _MM_SHUFFLE(3, 3, 2, 2));  /* z4.t . h.h . */
    c[3] = tq1_digit(_mm512_shuffle_i64x2(t23, t4h, _MM_SHUFFLE(2, 0, 2, 0)));
}

INL float wscale_tq1(const void *x) {
    return _cvtsh_ss(((const block_tq1_0 *)x)->d);
}

/* 32-bit code x activation sums of one block, +1 offset removed (lanes 0..7 carry -ysum):
 * 16 lanes, lane k = activation bytes 4k..4k+3 of the block's 64-byte vectors. */
INL __m512i tq1_sums(const __m512i c[4], const __m512i a[4], __m512i ysum) {
    /* two independent dpbusd chains */
    __m512i s0 = _mm512_dpbusd_epi32(_mm512_sub_epi32(_mm512_setzero_si512(), ysum), c[0], a[0]);
    __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c[1], a[1]);
    s0 = _mm512_dpbusd_epi32(s0, c[2], a[2]);
    s1 = _mm512_dpbusd_epi32(s1, c[3], a[3]);
    return _mm512_add_epi32(s0, s1);
}

/* The ternary tiles' results: row r's eight float lanes are the low (r even) or high (r odd)
 * half of its pair's accumulator acc[r / 2][t], summed in ggml's hsum_float_8 order. */
INL void pair_sums_out(const int R, const int T, __m512 acc[][MAXT], float *out, int64_t ldo) {
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const __m512 v = acc[r / 2][t];
            out[t * ldo + r] =
                hsum8(r % 2 ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v));
        }
}

/* TQ1_0: out[t * ldo + r] for r < R, t < T. The float sums follow
 * ggml's AVX2 kernel: eight lanes (lane L = activation bytes 4L..4L+3 of each 32-byte
 * segment: the two 256-bit halves of a 16-lane sum added), one fma per block. Rows are
 * handled in pairs whose folded sums share one 512-bit register (row r in lanes 0..7, row
 * r+1 in lanes 8..15), so a pair costs one convert and one fma. */
INL void tq1_tile(const int R, const int T, int64_t n, const char *w, size_t row_bytes,
                  const char *act, size_t act_bytes, float *out, int64_t ldo) {
    const size_t wb = sizeof(block_tq1_0);
    __m512 acc[(MAXR + 1) / 2][MAXT];
#pragma GCC unroll 8
    for (int p = 0; p < (R + 1) / 2; p++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[p][t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m512i ysum[MAXT], a[MAXT][4];
        float yd[MAXT];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const block_q8_K *y = (const block_q8_K *)(act + t * act_bytes) + i;
            ysum[t] = _mm512_zextsi256_si512(_mm256_madd_epi16(
                _mm256_loadu_si256((const __m256i *)y->bsums), _mm256_set1_epi16(1)));
            yd[t] = y->d;
#pragma GCC unroll 8
            for (int v = 0; v < 4; v++) a[t][v] = _mm512_loadu_si512(y->qs + 64 * v);
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; r += 2) {
            const char *xb = w + r * row_bytes + (size_t)i * wb;
            __m512i c0[4], c1[4];
            float xd0, xd1 = 0.0f;
            tq1_codes((const block_tq1_0 *)xb, c0);
            xd0 = wscale_tq1(xb);
            if (r + 1 < R) {
                tq1_codes((const block_tq1_0 *)(xb + row_bytes), c1);
                xd1 = wscale_tq1(xb + row_bytes);
            }
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const __m512i s0 = tq1_sums(c0, a[t], ysum[t]);
                __m512i f;
                __m512 d;
                if (r + 1 < R) {
                    const __m512i s1 = tq1_sums(c1, a[t], ysum[t]);
                    f = _mm512_add_epi32(_mm512_shuffle_i64x2(s0, s1, _MM_SHUFFLE(1, 0, 1, 0)),
                                         _mm512_shuffle_i64x2(s0, s1, _MM_SHUFFLE(3, 2, 3, 2)));
                    d = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(yd[t] * xd0),
                                             _mm512_set1_ps(yd[t] * xd1));
                } else {
                    f = _mm512_zextsi256_si512(_mm256_add_epi32(_mm512_castsi512_si256(s0),
                                                                _mm512_extracti64x4_epi64(s0, 1)));
                    d = _mm512_set1_ps(yd[t] * xd0);
                }
                acc[r / 2][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(f), d, acc[r / 2][t]);
            }
        }
    }
    pair_sums_out(R, T, acc, out, ldo);
}

/* TQ2_0, rows in pairs sharing each 512-bit register: row r in the low 256 bits, row r+1 in
 * the high, each against the same 32 activation bytes (broadcast to both halves). One vpdpbusd
 * then sums 32 elements of both rows, lane k (k < 8) of the low half collecting bytes 4k..4k+3
 * of every 32-element segment of row r, lane 8 + k the same for row r+1: exactly the eight
 * lanes of ggml's AVX2 kernel per row, with no fold between halves, and the codes decoded once
 * per pair for all T tokens. Integer lane sums are exact, so they equal tq1_tile's; the float
 * steps (block scale yd * xd, one fma per block, hsum8) are the same. A lone last row is
 * paired with itself and its high half ignored. Element 128h + 32l + m has code
 * (qs[32h + m] >> 2l) & 3. */
INL void tq2_pair_tile(const int R, const int T, int64_t n, const char *w, size_t row_bytes,
                       const char *act, size_t act_bytes, float *out, int64_t ldo) {
    const int P = (R + 1) / 2;
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512 acc[(MAXR + 1) / 2][MAXT];
#pragma GCC unroll 8
    for (int p = 0; p < P; p++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[p][t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m512i base[(MAXR + 1) / 2][2], s[(MAXR + 1) / 2][MAXT];
        __m512 xd[(MAXR + 1) / 2];
#pragma GCC unroll 8
        for (int p = 0; p < P; p++) {
            const block_tq2_0 *x0 = (const block_tq2_0 *)(w + 2 * p * row_bytes) + i;
            const block_tq2_0 *x1 =
                2 * p + 1 < R ? (const block_tq2_0 *)((const char *)x0 + row_bytes) : x0;
            const __m512i q0 = _mm512_loadu_si512(x0->qs), q1 = _mm512_loadu_si512(x1->qs);
            base[p][0] = _mm512_inserti64x4(q0, _mm512_castsi512_si256(q1), 1);
            base[p][1] = _mm512_shuffle_i64x2(q0, q1, _MM_SHUFFLE(3, 2, 3, 2));
            xd[p] = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(_cvtsh_ss(x0->d)),
                                         _mm512_set1_ps(_cvtsh_ss(x1->d)));
        }
        /* the +1 code offset: -bsum lanes (8 per row, both halves) start every sum */
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const block_q8_K *y = (const block_q8_K *)(act + t * act_bytes) + i;
            const __m256i ys =
                _mm256_sub_epi32(_mm256_setzero_si256(),
                                 _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums),
                                                   _mm256_set1_epi16(1)));
            const __m512i ys2 = _mm512_broadcast_i64x4(ys);
#pragma GCC unroll 8
            for (int p = 0; p < P; p++) s[p][t] = ys2;
        }
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
            for (int l = 0; l < 4; l++) {
                __m512i a[MAXT];
#pragma GCC unroll 8
                for (int t = 0; t < T; t++) {
                    const block_q8_K *y = (const block_q8_K *)(act + t * act_bytes) + i;
                    a[t] = _mm512_broadcast_i64x4(
                        _mm256_loadu_si256((const __m256i *)(y->qs + 128 * h + 32 * l)));
                }
#pragma GCC unroll 8
                for (int p = 0; p < P; p++) {
                    const __m512i c =
                        _mm512_and_si512(l ? _mm512_srli_epi16(base[p][h], 2 * l) : base[p][h], m3);
#pragma GCC unroll 8
                    for (int t = 0; t < T; t++) s[p][t] = _mm512_dpbusd_epi32(s[p][t], c, a[t]);
                }
            }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const __m512 yd = _mm512_set1_ps(((const block_q8_K *)(act + t * act_bytes) + i)->d);
#pragma GCC unroll 8
            for (int p = 0; p < P; p++)
                acc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[p][t]), _mm512_mul_ps(yd, xd[p]),
                                            acc[p][t]);
        }
    }
    pair_sums_out(R, T, acc, out, ldo);
}

/* I2_S x I8: 128-element blocks of 32 bytes, element 32g + m in byte m at bits 6-2g. No block
 * scales: whole-row 32-bit sums, then (sum - sum(q)) / s. */
INL void i2s_tile(const int R, const int T, int64_t n, const char *w, size_t row_bytes,
                  const char *act, size_t act_bytes, float *out, int64_t ldo) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m512i acc[MAXR][MAXT];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_si512();
    for (int64_t b = 0; b < n / QK_I2_S; b++) {
        __m512i a0[MAXT], a1[MAXT];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const int8_t *q = (const int8_t *)(act + t * act_bytes) + b * QK_I2_S;
            a0[t] = _mm512_loadu_si512(q);
            a1[t] = _mm512_loadu_si512(q + 64);
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(w + r * row_bytes + b * 32));
            const __m512i c0 = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_and_si256(_mm256_srli_epi16(q, 6), m3)),
                _mm256_and_si256(_mm256_srli_epi16(q, 4), m3), 1);
            const __m512i c1 = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_and_si256(_mm256_srli_epi16(q, 2), m3)),
                _mm256_and_si256(q, m3), 1);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
                acc[r][t] =
                    _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[r][t], c0, a0[t]), c1, a1[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        const int8_t *q = (const int8_t *)(act + t * act_bytes);
        float s;
        int32_t qsum;
        memcpy(&s, q + n, sizeof(s));
        memcpy(&qsum, q + n + sizeof(s), sizeof(qsum));
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            out[t * ldo + r] = (float)(_mm512_reduce_add_epi32(acc[r][t]) - qsum) / s;
    }
}

#define TILE_CASES(CALL)                                                                           \
    switch (R * 8 + T) {                                                                           \
    case 8 + 1:                                                                                    \
        CALL(1, 1);                                                                                \
        break;                                                                                     \
    case 8 + 2:                                                                                    \
        CALL(1, 2);                                                                                \
        break;                                                                                     \
    case 8 + 3:                                                                                    \
        CALL(1, 3);                                                                                \
        break;                                                                                     \
    case 8 + 4:                                                                                    \
        CALL(1, 4);                                                                                \
        break;                                                                                     \
    case 16 + 1:                                                                                   \
        CALL(2, 1);                                                                                \
        break;                                                                                     \
    case 16 + 2:                                                                                   \
        CALL(2, 2);                                                                                \
        break;                                                                                     \
    case 16 + 3:                                                                                   \
        CALL(2, 3);                                                                                \
        break;                                                                                     \
    case 16 + 4:                                                                                   \
        CALL(2, 4);                                                                                \
        break;                                                                                     \
    case 24 + 1:                                                                                   \
        CALL(3, 1);                                                                                \
        break;                                                                                     \
    case 24 + 2:                                                                                   \
        CALL(3, 2);                                                                                \
        break;                                                                                     \
    case 24 + 3:                                                                                   \
        CALL(3, 3);                                                                                \
        break;                                                                                     \
    case 24 + 4:                                                                                   \
        CALL(3, 4);                                                                                \
        break;                                                                                     \
    case 32 + 1:                                                                                   \
        CALL(4, 1);                                                                                \
        break;                                                                                     \
    case 32 + 2:                                                                                   \
        CALL(4, 2);                                                                                \
        break;                                                                                     \
    case 32 + 3:                                                                                   \
        CALL(4, 3);                                                                                \
        break;                                                                                     \
    case 32 + 4:                                                                                   \
        CALL(4, 4);                                                                                \
        break;                                                                                     \
    case 40 + 1:                                                                                   \
        CALL(5, 1);                                                                                \
        break;                                                                                     \
    case 48 + 1:                                                                                   \
        CALL(6, 1);                                                                                \
        break;                                                                                     \
    case 56 + 1:                                                                                   \
        CALL(7, 1);                                                                                \
        break;                                                                                     \
    case 64 + 1:                                                                                   \
        CALL(8, 1);                                                                                \
        break;                                                                                     \
    }

static void tile_tq2(int R, int T, int64_t n, const char *w, size_t rb, const char *a, size_t ab,
                     float *o, int64_t ldo) {
#define C(r, t) tq2_pair_tile(r, t, n, w, rb, a, ab, o, ldo)
    TILE_CASES(C)
#undef C
}
static void tile_tq1(int R, int T, int64_t n, const char *w, size_t rb, const char *a, size_t ab,
                     float *o, int64_t ldo) {
#define C(r, t) tq1_tile(r, t, n, w, rb, a, ab, o, ldo)
    TILE_CASES(C)
#undef C
}
static void tile_i2s(int R, int T, int64_t n, const char *w, size_t rb, const char *a, size_t ab,
                     float *o, int64_t ldo) {
#define C(r, t) i2s_tile(r, t, n, w, rb, a, ab, o, ldo)
    TILE_CASES(C)
#undef C
}

typedef void (*tile_fn)(int R, int T, int64_t n, const char *w, size_t rb, const char *a, size_t ab,
                        float *o, int64_t ldo);

static tile_fn tile_for(uint32_t wtype) {
    return wtype == TRIT_TQ2_0   ? tile_tq2
           : wtype == TRIT_TQ1_0 ? tile_tq1
           : wtype == TRIT_I2_S  ? tile_i2s
                                 : NULL;
}

/* Sweep nr rows x nt tokens in tiles (rows outer in groups of 4, tokens inner in groups of
 * tokens_per_tile), so each weight tile is decoded once per token group. */
static void tiles(tile_fn f, int64_t n, const char *w, size_t rb, int64_t nr, const char *a,
                  size_t ab, int64_t nt, float *out, int64_t ldo, int tpt) {
    const int rstep = tpt == 1 ? 8 : 4; /* more rows share each activation load at 1 token */
    for (int64_t r = 0; r < nr; r += rstep) {
        const int R = (int)TRIT_MIN(rstep, nr - r);
        for (int64_t t = 0; t < nt; t += tpt) {
            const int T = (int)TRIT_MIN(tpt, nt - t);
            f(R, T, n, w + r * rb, rb, a + t * ab, ab, out + t * ldo + r, ldo);
        }
    }
}

static inline __m512 ld_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* lanes64 (ggml_vec_dot_f32 / f16, see ref/ggml_order.h) for R weight rows x T activation rows
 * (R * T <= 4), each weight and activation vector loaded once for the block: four 16-lane
 * accumulators per (row, token), reduced (a0+a2) + (a1+a3), then lanes64_tail. h: F16 weights.
 * a: T activation rows lda elements apart, in their own format (F16 when h, converted per
 * load), or as F32 when a_f32 (F16 ones converted first: exact). out[t * ldo + r]. Decode runs
 * R rows x 1 token; a batch's decode rows (one-token order) 1 row x T tokens. */
INL void lanes64_block(const bool h, const int R, const int T, int64_t n, const char *w, size_t rb,
                       const void *a, int64_t lda, const bool a_f32, float *out, int64_t ldo) {
    __m512 acc[4][4]; /* [r * T + t][j] */
#pragma GCC unroll 8
    for (int k = 0; k < R * T; k++)
#pragma GCC unroll 8
        for (int j = 0; j < 4; j++) acc[k][j] = _mm512_setzero_ps();
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64) {
#pragma GCC unroll 8
        for (int j = 0; j < 4; j++) {
            const int64_t o = i + 16 * j;
            __m512 av[4];
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
                av[t] = h && !a_f32 ? ld_f16((const uint16_t *)a + t * lda + o)
                                    : _mm512_loadu_ps((const float *)a + t * lda + o);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                const __m512 wv = h ? ld_f16((const uint16_t *)(w + r * rb) + o)
                                    : _mm512_loadu_ps((const float *)(w + r * rb) + o);
#pragma GCC unroll 8
                for (int t = 0; t < T; t++)
                    acc[r * T + t][j] = _mm512_fmadd_ps(wv, av[t], acc[r * T + t][j]);
            }
        }
    }
    const size_t es = h && !a_f32 ? 2 : 4;
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512 *c = acc[r * T + t];
            const __m512 s = _mm512_add_ps(_mm512_add_ps(c[0], c[2]), _mm512_add_ps(c[1], c[3]));
            out[t * ldo + r] = lanes64_tail(h, hsum16(s), np, n, w + r * rb,
                                            (const char *)a + (size_t)(t * lda) * es, a_f32);
        }
}

static void rows_lanes64_any(bool h, int64_t n, const char *w, size_t rb, int64_t nr, const void *a,
                             float *out) {
    int64_t r = 0;
    for (; r + 4 <= nr; r += 4) lanes64_block(h, 4, 1, n, w + r * rb, rb, a, 0, false, out + r, 0);
    for (; r < nr; r++) lanes64_block(h, 1, 1, n, w + r * rb, rb, a, 0, false, out + r, 0);
}

/* F32/F16 rows x tokens in the one-token (lanes64) order: rows outer, tokens in groups of 4.
 * (A software prefetch of the rows ahead measured no gain here: the hardware prefetcher keeps
 * up with this sequential sweep.) */
static void lanes64_tile(bool h, int64_t n, const char *w, size_t rb, int64_t nr, const void *act,
                         size_t act_bytes, int64_t nt, float *out, int64_t ldo) {
    const float *a = h ? trit_x86_acts_f32(n, act, act_bytes, nt) : act;
    const int64_t lda = h ? n : (int64_t)(act_bytes / sizeof(float));
    for (int64_t r = 0; r < nr; r++) {
        for (int64_t t = 0; t < nt; t += MAXT) {
            const int T = (int)TRIT_MIN(MAXT, nt - t);
            const char *wr = w + r * rb;
            float *o = out + t * ldo + r;
            const float *at = a + t * lda;
            switch (T) {
            case 1:
                lanes64_block(h, 1, 1, n, wr, 0, at, lda, true, o, ldo);
                break;
            case 2:
                lanes64_block(h, 1, 2, n, wr, 0, at, lda, true, o, ldo);
                break;
            case 3:
                lanes64_block(h, 1, 3, n, wr, 0, at, lda, true, o, ldo);
                break;
            default:
                lanes64_block(h, 1, 4, n, wr, 0, at, lda, true, o, ldo);
                break;
            }
        }
    }
}

/* lanes16 (tinyBLAS) F32 rows: one accumulator per row, n % 16 == 0 */
INL void f32_rows16(const int R, int64_t n, const char *w, size_t rb, const float *a, float *out) {
    __m512 acc[MAXR];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __m512 av = _mm512_loadu_ps(a + i);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps((const float *)(w + r * rb) + i), av, acc[r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) out[r] = hsum16(acc[r]);
}

/* F16 x F16, lanes16 (tinyBLAS, the batched order), for up to 4 rows sharing each converted
 * activation vector. */
INL void f16_rows(const int R, int64_t n, const char *w, size_t rb, const uint16_t *a, float *out) {
    __m512 acc[MAXR];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 av = ld_f16(a + i);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            acc[r] = _mm512_fmadd_ps(ld_f16((const uint16_t *)(w + r * rb) + i), av, acc[r]);
    }
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        const __m512 av = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a + i));
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            acc[r] = _mm512_fmadd_ps(
                _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)(w + r * rb) + i)),
                av, acc[r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) out[r] = hsum16(acc[r]);
}

static void f16_rows_any(int64_t n, const char *w, size_t rb, int64_t nr, const uint16_t *a,
                         float *out) {
    int64_t r = 0;
    for (; r + 4 <= nr; r += 4) f16_rows(4, n, w + r * rb, rb, a, out + r);
    for (; r < nr; r++) f16_rows(1, n, w + r * rb, rb, a, out + r);
}

/* Whether a float type's order is another build's (the avx2 numerics table in use, e.g. a test
 * or TRIT_KERNELS=avx2 with this set around): the avx2 set's kernels compute it. The
 * integer-exact types sum alike in both builds and stay here. */
static inline bool other_build(uint32_t wtype) {
    return (wtype == TRIT_F32 || wtype == TRIT_F16 || wtype == TRIT_BF16) &&
           trit_numerics_table_get()->lanes != 16;
}

static float vec_dot_avx512(uint32_t wtype, int64_t n, const void *w, const void *a) {
    float r;
    if (other_build(wtype)) return trit_kernels_avx2_impl.vec_dot(wtype, n, w, a);
    tile_fn f = tile_for(wtype);
    if (f) {
        f(1, 1, n, w, 0, a, 0, &r, 1);
        return r;
    }
    if (trit_is_kquant(wtype)) /* Q2_K..Q6_K, repacked orders included: x86/kquants_avx512.c */
        return trit_avx512_dot_kquant(wtype, n, w, a);
    switch (wtype) {
    case TRIT_F32:
    case TRIT_F16:
        lanes64_block(wtype == TRIT_F16, 1, 1, n, w, 0, a, 0, false, &r, 0);
        return r;
    default:
        return trit_kernels_avx2_impl.vec_dot(wtype, n, w, a);
    }
}

static void vec_dot_rows_avx512(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                                int64_t nr, const void *act, float *out) {
    const char *wp = w;
    if (other_build(wtype)) {
        trit_kernels_avx2_impl.vec_dot_rows(wtype, n, w, row_bytes, nr, act, out);
        return;
    }
    tile_fn f = tile_for(wtype);
    if (f) {
        tiles(f, n, wp, row_bytes, nr, act, 0, 1, out, 0, 1);
        return;
    }
    if (wtype == TRIT_F16 || wtype == TRIT_F32) {
        rows_lanes64_any(wtype == TRIT_F16, n, wp, row_bytes, nr, act, out);
        return;
    }
    if (trit_is_kquant(wtype)) { /* x86/kquants_avx512.c */
        trit_avx512_dot_kquant_rows(wtype, n, w, row_bytes, nr, act, out);
        return;
    }
    trit_kernels_avx2_impl.vec_dot_rows(wtype, n, w, row_bytes, nr, act, out);
}

static void gemm_avx512(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                        const void *act, size_t act_bytes, int64_t nt, float *out, int64_t ldo) {
    if (trit_is_legacy_wtype(wtype)) { /* x86/legacy_avx2.c: blocks unpacked once per tile */
        trit_avx2_gemm_legacy(wtype, n, w, row_bytes, nr, act, act_bytes, nt, out, ldo);
        return;
    }
    if (other_build(wtype)) {
        trit_kernels_avx2_impl.gemm(wtype, n, w, row_bytes, nr, act, act_bytes, nt, out, ldo);
        return;
    }
    tile_fn f = tile_for(wtype);
    if (f) {
        tiles(f, n, w, row_bytes, nr, act, act_bytes, nt, out, ldo, MAXT);
        return;
    }
    if (wtype == TRIT_BF16) { /* no fast path: the ref's tinyBLAS order */
        trit_kernels_ref()->gemm(wtype, n, w, row_bytes, nr, act, act_bytes, nt, out, ldo);
        return;
    }
    /* F32/F16: tinyBLAS's order (trit_matmul calls gemm for these only where it applies) */
    for (int64_t t = 0; t < nt; t++) {
        const char *a = (const char *)act + t * act_bytes;
        float *o = out + t * ldo;
        if (wtype == TRIT_F16) {
            f16_rows_any(n, w, row_bytes, nr, (const uint16_t *)a, o);
        } else if (wtype == TRIT_F32) {
            int64_t r = 0;
            for (; r + 4 <= nr; r += 4)
                f32_rows16(4, n, (const char *)w + r * row_bytes, row_bytes, (const float *)a,
                           o + r);
            for (; r < nr; r++)
                f32_rows16(1, n, (const char *)w + r * row_bytes, row_bytes, (const float *)a,
                           o + r);
        } else {
            vec_dot_rows_avx512(wtype, n, w, row_bytes, nr, a, o);
        }
    }
}

/* The one-token order for nt tokens: F32/F16 share each weight load across tokens; BF16 (no
 * fast path) runs vec_dot_rows per token; every quantized type's gemm is vec_dot's order
 * already (kernels.h), its tiles included. */
static void vec_dot_tile_avx512(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                                int64_t nr, const void *act, size_t act_bytes, int64_t nt,
                                float *out, int64_t ldo) {
    if (other_build(wtype)) {
        trit_kernels_avx2_impl.vec_dot_tile(wtype, n, w, row_bytes, nr, act, act_bytes, nt, out,
                                            ldo);
    } else if (wtype == TRIT_F16 || wtype == TRIT_F32) {
        lanes64_tile(wtype == TRIT_F16, n, w, row_bytes, nr, act, act_bytes, nt, out, ldo);
    } else if (wtype == TRIT_BF16) {
        for (int64_t t = 0; t < nt; t++)
            vec_dot_rows_avx512(wtype, n, w, row_bytes, nr, (const char *)act + t * act_bytes,
                                out + t * ldo);
    } else {
        gemm_avx512(wtype, n, w, row_bytes, nr, act, act_bytes, nt, out, ldo);
    }
}

static void quantize_act_avx512(uint32_t wtype, const float *x, void *dst, int64_t n) {
    trit_kernels_avx2_impl.quantize_act(wtype, x, dst, n);
}

const trit_kernels trit_kernels_avx512_impl = {
    .name = "avx512",
    .quantize_act = quantize_act_avx512,
    .vec_dot = vec_dot_avx512,
    .vec_dot_rows = vec_dot_rows_avx512,
    .gemm = gemm_avx512,
    .vec_dot_tile = vec_dot_tile_avx512,
    .attention = trit_attention_avx512,
};

/* ---- attention (AVX-512), same contract and numerics as trit_attention in ops.c ----
 * Decode / short batches (< 64 query rows): Q rounded to fp16 for K.Q, fp16 V accumulator
 * rounded after every scale and multiply-add (F16C round trips = round-to-nearest-even);
 * batches of >= 64 rows: f32 with online softmax per tile of 64 keys. Only the order of the
 * K.Q sums differs from ops.c (16-lane f32 instead of a sequential double sum): ~1e-7
 * relative. Work is handed out dynamically in (token, head) units, so causal rows of
 * different lengths balance across threads. */
#define ATT_TILE 64

typedef struct att512_job {
    att_call c; /* the call and its work units (x86/att_units.h) */
    bool f16;
    int head_dim;
    float scale;
    bool tiled;
} att512_job;

INL __m512 ld_kv(const void *row, bool f16, int i) {
    return f16 ? ld_f16((const uint16_t *)row + i) : _mm512_loadu_ps((const float *)row + i);
}

INL __m512 round16(__m512 x) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* K.Q in ggml_vec_dot_f16/f32's lanes64 order (ref/ggml_order.h): four 16-lane fma
 * accumulators over steps of 64, (a0+a2)+(a1+a3), then reduce16. D % 64 == 0 here. */
static float kq_dot(const void *krow, bool f16, const float *q, int D) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int i = 0; i < D; i += 64) {
        a0 = _mm512_fmadd_ps(ld_kv(krow, f16, i), _mm512_loadu_ps(q + i), a0);
        a1 = _mm512_fmadd_ps(ld_kv(krow, f16, i + 16), _mm512_loadu_ps(q + i + 16), a1);
        a2 = _mm512_fmadd_ps(ld_kv(krow, f16, i + 32), _mm512_loadu_ps(q + i + 32), a2);
        a3 = _mm512_fmadd_ps(ld_kv(krow, f16, i + 48), _mm512_loadu_ps(q + i + 48), a3);
    }
    float lanes[16];
    _mm512_storeu_ps(lanes, _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
    const float r = go_reduce16(lanes);
    return f16 ? (float)(double)r : r; /* f16: the (empty) tail is summed in double */
}

/* ggml's one_chunk kernel over keys [ic0, ic1) (as att_row_vec_range in ops.c, bit for bit):
 * the unnormalized V sum in acc (64-byte aligned, D floats), the running max and sum. */
static void att512_range(const float *qrow, const void *kh, const void *vh, bool f16, int D,
                         float scale, int ic0, int ic1, float *acc, float *Mout, float *Sout) {
    const size_t es = f16 ? 2 : 4;
    float q[1024] __attribute__((aligned(64)));
    for (int i = 0; i < D; i += 16) {
        __m512 x = _mm512_loadu_ps(qrow + i);
        _mm512_store_ps(q + i, f16 ? round16(x) : x);
        _mm512_storeu_ps(acc + i, _mm512_setzero_ps());
    }
    float S = 0.0f, M = -INFINITY;
    for (int ic = ic0; ic < ic1; ic++) {
        const float s = kq_dot((const char *)kh + (size_t)ic * D * es, f16, q, D) * scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            const float Mold = M;
            M = s;
            ms = expf(Mold - M);
            const __m512 vms = _mm512_set1_ps(ms);
            for (int i = 0; i < D; i += 16) {
                __m512 a = _mm512_mul_ps(_mm512_loadu_ps(acc + i), vms);
                _mm512_storeu_ps(acc + i, f16 ? round16(a) : a);
            }
        } else {
            vs = expf(s - M);
        }
        const void *vrow = (const char *)vh + (size_t)ic * D * es;
        const __m512 vvs = _mm512_set1_ps(vs);
        for (int i = 0; i < D; i += 16) {
            __m512 a = _mm512_fmadd_ps(ld_kv(vrow, f16, i), vvs, _mm512_loadu_ps(acc + i));
            _mm512_storeu_ps(acc + i, f16 ? round16(a) : a);
        }
        S = fmaf(S, ms, vs);
    }
    *Mout = M;
    *Sout = S;
}

/* trit_att_range_fn for the split-KV path (ops.c chunks and combines; this computes). */
static void att512_range_fn(const float *qrow, const void *kh, const void *vh, uint32_t kv_type,
                            int D, float scale, int ic0, int ic1, float *acc, float *M, float *S) {
    att512_range(qrow, kh, vh, kv_type == TRIT_F16, D, scale, ic0, ic1, acc, M, S);
}

/* ggml's one_chunk kernel (decode, < 64 query rows): as att_row_vec in ops.c. */
static void att512_vec(const att512_job *J, const float *qrow, const void *kh, const void *vh,
                       int n_kv, float *dst) {
    float M, S;
    att512_range(qrow, kh, vh, J->f16, J->head_dim, J->scale, 0, n_kv, dst, &M, &S);
    const __m512 inv = _mm512_set1_ps(S == 0.0f ? 0.0f : 1.0f / S);
    for (int i = 0; i < J->head_dim; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_loadu_ps(dst + i), inv));
}

/* In-register transpose of a 16 x 16 float block: r[i] lane j becomes r[j] lane i
 * (32-bit then 64-bit unpacks inside 128-bit lanes, then two rounds of 128-bit lane shuffles). */
INL void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i += 4) {
        const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]),
                      c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* u[4g + c], 128-bit lane L: element 4L + c of rows 4g .. 4g+3 */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const __m512 a = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88),
                     b = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD),
                     e = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88),
                     f = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(a, e, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(a, e, 0xDD);
        r[4 + c] = _mm512_shuffle_f32x4(b, f, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(b, f, 0xDD);
    }
}

/* The K rows of a tile (nt <= ATT_TILE keys, rs bytes apart) transposed for kq_dots:
 * kt[group][i][j] = element i of key 16 * group + j; keys past nt repeat the last key. */
typedef float kt_tile[ATT_TILE / 16][1024][16];

static void kt_fill(const char *k0, size_t rs, bool f16, int D, int nt, kt_tile kt) {
    for (int g = 0; g * 16 < nt; g++)
        for (int ib = 0; ib < D; ib += 16) {
            __m512 r[16];
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                r[j] = ld_kv(k0 + (size_t)TRIT_MIN(16 * g + j, nt - 1) * rs, f16, ib);
            transpose16(r);
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) _mm512_store_ps(kt[g][ib + i], r[i]);
        }
}

/* K.Q of the first nt keys of a transposed tile for one query, each key's dot the sequential
 * fma chain of ggml's simd_gemm (s = fma(q[i], k[i], s), i ascending, from 0): lane j of a
 * vector is key j's chain, so 16 chains advance per fma, and two 16-key groups are interleaved
 * so their chains overlap. out: ATT_TILE floats (lanes past nt are garbage). */
static void kq_dots(const float *q, const kt_tile kt, int D, int nt, float *out) {
    for (int g = 0; g * 16 < nt; g += 2) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        if ((g + 1) * 16 < nt)
            for (int i = 0; i < D; i++) {
                const __m512 qi = _mm512_set1_ps(q[i]);
                a0 = _mm512_fmadd_ps(qi, _mm512_load_ps(kt[g][i]), a0);
                a1 = _mm512_fmadd_ps(qi, _mm512_load_ps(kt[g + 1][i]), a1);
            }
        else
            for (int i = 0; i < D; i++)
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[i]), _mm512_load_ps(kt[g][i]), a0);
        _mm512_storeu_ps(out + 16 * g, a0);
        _mm512_storeu_ps(out + 16 * g + 16, a1);
    }
}

/* Query rows per unit of the tiled kernel: the rows of one head share each transposed K tile. */
#define ATT_ROWS 4

/* ggml's tiled kernel (>= 64 query rows): as att_row_tiled in ops.c, bit for bit, for nr (<=
 * ATT_ROWS) consecutive query rows of one head (row r sees n_kv0 + r keys; q and dst rows
 * q_stride floats apart). Each K tile is transposed once for the rows; every row keeps its own
 * running max, sum and V accumulator, in ops.c's order. */
static void att512_tiled(const att512_job *J, const float *q, size_t q_stride, const void *kh,
                         const void *vh, int n_kv0, int nr, float *dst) {
    const int D = J->head_dim;
    const size_t es = J->f16 ? 2 : 4;
    static _Thread_local kt_tile kt __attribute__((aligned(64)));
    float acc[ATT_ROWS][1024] __attribute__((aligned(64))), kq[ATT_TILE];
    float S[ATT_ROWS], M[ATT_ROWS];
    for (int r = 0; r < nr; r++) {
        for (int i = 0; i < D; i += 16) _mm512_store_ps(acc[r] + i, _mm512_setzero_ps());
        S[r] = 0.0f, M[r] = -INFINITY;
    }
    const int n_kv_max = n_kv0 + nr - 1;
    for (int ic = 0; ic < n_kv_max; ic += ATT_TILE) {
        kt_fill((const char *)kh + (size_t)ic * D * es, (size_t)D * es, J->f16, D,
                TRIT_MIN(ATT_TILE, n_kv_max - ic), kt);
        for (int r = 0; r < nr; r++) {
            if (ic >= n_kv0 + r) continue; /* this row has no keys in the tile */
            const int nt = TRIT_MIN(ATT_TILE, n_kv0 + r - ic);
            float tmax = -INFINITY;
            kq_dots(q + (size_t)r * q_stride, kt, D, nt, kq);
            for (int t = 0; t < nt; t++) {
                kq[t] = kq[t] * J->scale;
                tmax = kq[t] > tmax ? kq[t] : tmax;
            }
            for (int t = nt; t < ATT_TILE; t++) kq[t] = -INFINITY;
            const float Mnew = fmaxf(M[r], tmax);
            if (Mnew > M[r]) {
                const float ms = expf(M[r] - Mnew);
                const __m512 vms = _mm512_set1_ps(ms);
                for (int i = 0; i < D; i += 16)
                    _mm512_store_ps(acc[r] + i, _mm512_mul_ps(_mm512_load_ps(acc[r] + i), vms));
                S[r] *= ms;
            }
            M[r] = Mnew;
            double sum = 0.0;
            for (int g = 0; g < ATT_TILE; g += 16) {
                const __m512 e =
                    v_expf512(_mm512_sub_ps(_mm512_loadu_ps(kq + g), _mm512_set1_ps(M[r])));
                _mm512_storeu_ps(kq + g, e);
                sum += (double)_mm512_reduce_add_ps(e); /* = go_reduce16 */
            }
            S[r] = (float)((double)S[r] + sum);
            for (int t = 0; t < nt; t++) {
                const void *vrow = (const char *)vh + (size_t)(ic + t) * D * es;
                const __m512 p = _mm512_set1_ps(kq[t]);
                for (int i = 0; i < D; i += 16)
                    _mm512_store_ps(acc[r] + i, _mm512_fmadd_ps(p, ld_kv(vrow, J->f16, i),
                                                                _mm512_load_ps(acc[r] + i)));
            }
        }
    }
    for (int r = 0; r < nr; r++) {
        const __m512 inv = _mm512_set1_ps(S[r] == 0.0f ? 0.0f : 1.0f / S[r]);
        for (int i = 0; i < D; i += 16)
            _mm512_storeu_ps(dst + (size_t)r * q_stride + i,
                             _mm512_mul_ps(_mm512_load_ps(acc[r] + i), inv));
    }
}

static void att512_worker(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    att512_job *J = arg;
    att_unit u; /* tiled: ATT_ROWS consecutive tokens of one head (they share K tiles) */
    while (att_next_unit(&J->c, &u))
        if (J->tiled)
            att512_tiled(J, u.q, u.stride, u.kh, u.vh, u.n_kv0, u.nr, u.dst);
        else
            att512_vec(J, u.q, u.kh, u.vh, u.n_kv0, u.dst);
}

/* One attention call's job (arguments as trit_attention's; tiled: the >= ATT_TILE-row path,
 * exact attention only) run by worker: on the pool when there is one and more than one
 * (token, head) unit, else inline. Shared by the exact and the --numerics fast kernels. */
static void att512_run(trit_pool *pool, trit_pool_fn worker, bool tiled, const float *q,
                       const void *kc, const void *vc, uint32_t kv_type, int n_ctx, int n_head,
                       int n_head_kv, int head_dim, int pos0, int n_tok, float scale, float *out) {
    att512_job J = {.c = {.q = q,
                          .kc = kc,
                          .vc = vc,
                          .out = out,
                          .n_ctx = n_ctx,
                          .n_head = n_head,
                          .n_head_kv = n_head_kv,
                          .head_dim = head_dim,
                          .pos0 = pos0,
                          .n_tok = n_tok,
                          .es = kv_type == TRIT_F16 ? 2 : 4,
                          .rows = tiled ? ATT_ROWS : 1},
                    .f16 = kv_type == TRIT_F16,
                    .head_dim = head_dim,
                    .scale = scale,
                    .tiled = tiled};
    atomic_init(&J.c.next, 0);
    if (pool && (int64_t)n_tok * n_head > 1) /* more than one unit: worth the pool */
        trit_pool_run(pool, worker, &J);
    else
        worker(&J, 0, 1);
}

void trit_attention_avx512(trit_pool *pool, const float *q, const void *kc, const void *vc,
                           uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int head_dim,
                           int pos0, int n_tok, float scale, float *out) {
    if (trit_numerics_table_get()->lanes != 16) { /* another build's orders: the avx2 set's */
        trit_attention_avx2(pool, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, head_dim, pos0,
                            n_tok, scale, out);
        return;
    }
    if (head_dim % 64 || head_dim > 1024 || (kv_type != TRIT_F16 && kv_type != TRIT_F32) ||
        n_head_kv <= 0 || n_head % n_head_kv) {
        trit_attention(pool, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, head_dim, pos0, n_tok,
                       scale, out);
        return;
    }
    if (n_tok <= 0) return;
    if (n_tok == 1 && pool && trit_attention_splits(n_ctx, pos0 + 1, trit_pool_size(pool))) {
        /* split-KV decode: ggml's chunking and combine live in ops.c, the chunks run here */
        trit_attention_split(pool, att512_range_fn, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv,
                             head_dim, pos0, scale, out);
        return;
    }
    att512_run(pool, att512_worker, n_tok >= ATT_TILE, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv,
               head_dim, pos0, n_tok, scale, out);
}

/* ---- attention, --numerics fast: trit_attention_fast's orders (ops.c) in 16-lane vectors ----
 * K.Q: one 16-lane fma accumulator per key, four keys at a time (independent chains), reduced
 * by _mm512_reduce_add_ps (= go_reduce16); the tile max, expf rescale, go_v_expf and the
 * running sum are the scalar twin's own statements; V: one fma per 16 elements per key, in key
 * order. So the bytes equal the scalar twin's (test_kernels), and the fp16 round trips and
 * the sequential K.Q chains of the exact path are gone. */
static void fast512_row(const att512_job *J, const float *q, const void *kh, const void *vh,
                        int n_kv, float *dst) {
    const int D = J->head_dim, nc = D / 16;
    const size_t rs = (size_t)D * (J->f16 ? 2 : 4); /* bytes per K/V row */
    __m512 acc[64];
    float s[ATT_TILE] = {0}; /* whole 16-lane groups are exponentiated */
    for (int c = 0; c < nc; c++) acc[c] = _mm512_setzero_ps();
    float S = 0.0f, M = -INFINITY;
    for (int ic = 0; ic < n_kv; ic += ATT_TILE) {
        const int nt = TRIT_MIN(ATT_TILE, n_kv - ic);
        const char *k0 = (const char *)kh + (size_t)ic * rs;
        int t = 0;
        for (; t + 4 <= nt; t += 4) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int i = 0; i < D; i += 16) {
                const __m512 qv = _mm512_loadu_ps(q + i);
                a0 = _mm512_fmadd_ps(ld_kv(k0 + (size_t)t * rs, J->f16, i), qv, a0);
                a1 = _mm512_fmadd_ps(ld_kv(k0 + (size_t)(t + 1) * rs, J->f16, i), qv, a1);
                a2 = _mm512_fmadd_ps(ld_kv(k0 + (size_t)(t + 2) * rs, J->f16, i), qv, a2);
                a3 = _mm512_fmadd_ps(ld_kv(k0 + (size_t)(t + 3) * rs, J->f16, i), qv, a3);
            }
            s[t] = _mm512_reduce_add_ps(a0) * J->scale;
            s[t + 1] = _mm512_reduce_add_ps(a1) * J->scale;
            s[t + 2] = _mm512_reduce_add_ps(a2) * J->scale;
            s[t + 3] = _mm512_reduce_add_ps(a3) * J->scale;
        }
        for (; t < nt; t++) {
            __m512 a = _mm512_setzero_ps();
            for (int i = 0; i < D; i += 16)
                a = _mm512_fmadd_ps(ld_kv(k0 + (size_t)t * rs, J->f16, i), _mm512_loadu_ps(q + i),
                                    a);
            s[t] = _mm512_reduce_add_ps(a) * J->scale;
        }
        float tmax = -INFINITY;
        for (t = 0; t < nt; t++) tmax = fmaxf(tmax, s[t]);
        const float Mnew = fmaxf(M, tmax);
        if (Mnew > M) {
            const float ms = expf(M - Mnew);
            const __m512 vms = _mm512_set1_ps(ms);
            for (int c = 0; c < nc; c++) acc[c] = _mm512_mul_ps(acc[c], vms);
            S *= ms;
            M = Mnew;
        }
        for (t = 0; t < nt; t += 16) /* s[nt..] may be garbage: those lanes are unused */
            _mm512_storeu_ps(s + t,
                             v_expf512(_mm512_sub_ps(_mm512_loadu_ps(s + t), _mm512_set1_ps(M))));
        for (t = 0; t < nt; t++) S += s[t];
        const char *v0 = (const char *)vh + (size_t)ic * rs;
        for (t = 0; t < nt; t++) {
            const __m512 p = _mm512_set1_ps(s[t]);
            const char *vr = v0 + (size_t)t * rs;
            for (int c = 0; c < nc; c++)
                acc[c] = _mm512_fmadd_ps(p, ld_kv(vr, J->f16, 16 * c), acc[c]);
        }
    }
    const __m512 inv = _mm512_set1_ps(S == 0.0f ? 0.0f : 1.0f / S);
    for (int c = 0; c < nc; c++) _mm512_storeu_ps(dst + 16 * c, _mm512_mul_ps(acc[c], inv));
}

static void fast512_worker(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    att512_job *J = arg;
    att_unit u; /* one token of one head */
    while (att_next_unit(&J->c, &u)) fast512_row(J, u.q, u.kh, u.vh, u.n_kv0, u.dst);
}

void trit_attention_fast_avx512(trit_pool *pool, const float *q, const void *kc, const void *vc,
                                uint32_t kv_type, int n_ctx, int n_head, int n_head_kv,
                                int head_dim, int pos0, int n_tok, float scale, float *out) {
    if (head_dim % 16 || head_dim > 1024 || (kv_type != TRIT_F16 && kv_type != TRIT_F32) ||
        n_head_kv <= 0 || n_head % n_head_kv) {
        trit_attention_fast(pool, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, head_dim, pos0,
                            n_tok, scale, out);
        return;
    }
    if (n_tok <= 0) return;
    att512_run(pool, fast512_worker, false, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, head_dim,
               pos0, n_tok, scale, out);
}
