/* kernels/x86/legacy_avx2.c — AVX2 (+FMA, F16C) kernels for the legacy 32-weight types:
 * the x86 Q8_1 activation quantizer and the Q4_0/Q5_0 x Q8_0, Q4_1/Q5_1 x Q8_1 dots, plus the
 * repacked-Q4_0 order (Q4_0 | TRIT_REPACK8, kernels.h).
 *
 * Contract: bit-identical to kernels/ref/legacy_ref.c (whose header gives the reference's
 * orders): one block per step, 32 codes unpacked into a byte vector in element order, int8
 * products summed into eight 32-bit lanes (maddubs + madd: no saturation, the codes are at
 * most 31 in magnitude), then the same float fmas and reduction as the scalar twin.
 * Compiled with -mavx2 -mfma -mf16c; called only through the AVX2/AVX-512 kernel sets,
 * which kernels.c hands out after checking the CPU. */
#include "kernels/kernels.h"
#include "kernels/x86/hsum_avx2.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* 16 bytes of nibbles -> 32 bytes 0..15: low nibbles (elements 0..15), then high. */
static inline __m256i nibbles32(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* The 32 bits of qh -> 32 bytes, 0x10 where the element's 5th bit is set. */
static inline __m256i high_bits32(const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, sizeof h);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), shuf);
    const __m256i bit = _mm256_set1_epi64x((int64_t)0x8040201008040201ULL);
    bytes = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_and_si256(bytes, _mm256_set1_epi8(0x10));
}

/* Eight int32 lanes: lane L = sum of x[j] * y[j] for j in 4L..4L+3, both signed int8. */
static inline __m256i dot_lanes_i8(__m256i x, __m256i y) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* The same with x unsigned (0..31). */
static inline __m256i dot_lanes_u8(__m256i x, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

void trit_avx2_quantize_q8_1(const float *x, block_q8_1 *y, int64_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < n / QK8_1; b++, x += QK8_1) {
        const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
        const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
        const __m256 m =
            _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask)),
                          _mm256_max_ps(_mm256_and_ps(v2, abs_mask), _mm256_and_ps(v3, abs_mask)));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.f;
        const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f);
        /* cvtps rounds half to even (the default MXCSR mode), as ggml's round + cvt */
        const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, id));
        const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, id));
        const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, id));
        const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, id));
        const int sum =
            hsum8_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
        y[b].d = trit_fp32_to_fp16(d);
        y[b].s = trit_fp32_to_fp16(d * (float)sum);
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[b].qs, p);
    }
}

static float dot_q4_0(int64_t n, const block_q4_0 *x, const block_q8_0 *y) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const __m256i qx = _mm256_sub_epi8(nibbles32(x[i].qs), _mm256_set1_epi8(8));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_lanes_i8(qx, qy)), acc);
    }
    return hsum8(acc);
}

static float dot_q5_0(int64_t n, const block_q5_0 *x, const block_q8_0 *y) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const __m256i q = _mm256_or_si256(nibbles32(x[i].qs), high_bits32(x[i].qh));
        const __m256i qx = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_lanes_i8(qx, qy)), acc);
    }
    return hsum8(acc);
}

static float dot_q4_1(int64_t n, const block_q4_1 *x, const block_q8_1 *y) {
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        summs = fmaf(_cvtsh_ss(x[i].m), _cvtsh_ss(y[i].s), summs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_lanes_u8(nibbles32(x[i].qs), qy)), acc);
    }
    return hsum8(acc) + summs;
}

static float dot_q5_1(int64_t n, const block_q5_1 *x, const block_q8_1 *y) {
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        summs = fmaf(_cvtsh_ss(x[i].m), _cvtsh_ss(y[i].s), summs);
        const __m256i qx = _mm256_or_si256(nibbles32(x[i].qs), high_bits32(x[i].qh));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_lanes_u8(qx, qy)), acc);
    }
    return hsum8(acc) + summs;
}

float trit_avx2_dot_legacy(uint32_t wtype, int64_t n, const void *w, const void *act) {
    switch (wtype) {
    case TRIT_Q4_0:
        return dot_q4_0(n, w, act);
    case TRIT_Q5_0:
        return dot_q5_0(n, w, act);
    case TRIT_Q4_1:
        return dot_q4_1(n, w, act);
    default: /* TRIT_Q5_1 */
        return dot_q5_1(n, w, act);
    }
}

/* Eight blocks' eight-lane integer sums -> one vector of the eight block totals (exact). */
static inline __m256i block_totals8(const __m256i p[8]) {
    const __m256i s01 = _mm256_hadd_epi32(p[0], p[1]), s23 = _mm256_hadd_epi32(p[2], p[3]);
    const __m256i s45 = _mm256_hadd_epi32(p[4], p[5]), s67 = _mm256_hadd_epi32(p[6], p[7]);
    const __m256i s0123 = _mm256_hadd_epi32(s01, s23), s4567 = _mm256_hadd_epi32(s45, s67);
    /* low 128 bits: blocks 0-3 (4-7) over lanes 0-3, high: over lanes 4-7 */
    return _mm256_add_epi32(_mm256_permute2x128_si256(s0123, s4567, 0x20),
                            _mm256_permute2x128_si256(s0123, s4567, 0x31));
}

/* The repacked order: acc = fma((float)isum_b, wd_b * ad_b, acc), block after block. The
 * integer sums and scale products of eight blocks are computed as vectors; the fma chain
 * itself stays sequential (that is the order). */
float trit_avx2_dot_q4_0_r8(int64_t n, const block_q4_0 *x, const block_q8_0 *y) {
    const int64_t nb = n / QK4_0;
    float acc = 0.0f;
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        __m256i p[8];
        uint16_t wd[8], ad[8];
        for (int b = 0; b < 8; b++) {
            const __m256i qx = _mm256_sub_epi8(nibbles32(x[i + b].qs), _mm256_set1_epi8(8));
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i + b].qs);
            p[b] = dot_lanes_i8(qx, qy);
            wd[b] = x[i + b].d;
            ad[b] = y[i + b].d;
        }
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)wd)),
                                       _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)ad)));
        float f[8], dd[8];
        _mm256_storeu_ps(f, _mm256_cvtepi32_ps(block_totals8(p)));
        _mm256_storeu_ps(dd, d);
        for (int b = 0; b < 8; b++) acc = fmaf(f[b], dd[b], acc);
    }
    for (; i < nb; i++) {
        const __m256i qx = _mm256_sub_epi8(nibbles32(x[i].qs), _mm256_set1_epi8(8));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const int isum = hsum8_i32(dot_lanes_i8(qx, qy));
        acc = fmaf((float)isum, _cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d), acc);
    }
    return acc;
}

/* ---- batches: each weight block is unpacked once for up to GEMM_TOK tokens ---- */
#define GEMM_TOK 8

/* Block i of a weight row as 32 signed or unsigned codes (element order), its d and m. */
static inline __m256i codes(uint32_t wtype, const uint8_t *row, int64_t i, uint16_t *d,
                            uint16_t *m) {
    switch (wtype) {
    case TRIT_Q4_0: {
        const block_q4_0 *b = (const block_q4_0 *)row + i;
        *d = b->d;
        return _mm256_sub_epi8(nibbles32(b->qs), _mm256_set1_epi8(8));
    }
    case TRIT_Q5_0: {
        const block_q5_0 *b = (const block_q5_0 *)row + i;
        *d = b->d;
        const __m256i q = _mm256_or_si256(nibbles32(b->qs), high_bits32(b->qh));
        return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
    }
    case TRIT_Q4_1: {
        const block_q4_1 *b = (const block_q4_1 *)row + i;
        *d = b->d;
        *m = b->m;
        return nibbles32(b->qs);
    }
    default: { /* TRIT_Q5_1 */
        const block_q5_1 *b = (const block_q5_1 *)row + i;
        *d = b->d;
        *m = b->m;
        return _mm256_or_si256(nibbles32(b->qs), high_bits32(b->qh));
    }
    }
}

/* One weight row against nt <= GEMM_TOK activation rows, vec_dot's order for each. */
static void row_lanes(uint32_t wtype, int64_t n, const uint8_t *row, const uint8_t *act,
                      size_t act_bytes, int64_t nt, float *out, int64_t ldo) {
    const bool affine = wtype == TRIT_Q4_1 || wtype == TRIT_Q5_1;
    __m256 acc[GEMM_TOK];
    float summs[GEMM_TOK];
    for (int64_t t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps(), summs[t] = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        uint16_t wd, wm = 0;
        const __m256i qx = codes(wtype, row, i, &wd, &wm);
        const float fd = _cvtsh_ss(wd), fm = _cvtsh_ss(wm);
        for (int64_t t = 0; t < nt; t++) {
            const uint8_t *a = act + t * act_bytes;
            if (affine) {
                const block_q8_1 *y = (const block_q8_1 *)a + i;
                summs[t] = fmaf(fm, _cvtsh_ss(y->s), summs[t]);
                const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
                const __m256 d = _mm256_set1_ps(fd * _cvtsh_ss(y->d));
                acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_lanes_u8(qx, qy)), acc[t]);
            } else {
                const block_q8_0 *y = (const block_q8_0 *)a + i;
                const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
                const __m256 d = _mm256_set1_ps(fd * _cvtsh_ss(y->d));
                acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_lanes_i8(qx, qy)), acc[t]);
            }
        }
    }
    for (int64_t t = 0; t < nt; t++)
        out[t * ldo] = affine ? hsum8(acc[t]) + summs[t] : hsum8(acc[t]);
}

/* One repacked-order Q4_0 row against nt <= GEMM_TOK activation rows: eight blocks unpacked
 * once, then per token the eight block totals and the in-order fma chain. */
static void row_r8(int64_t n, const block_q4_0 *x, const uint8_t *act, size_t act_bytes, int64_t nt,
                   float *out, int64_t ldo) {
    const int64_t nb = n / QK4_0, nb8 = nb - nb % 8;
    float acc[GEMM_TOK] = {0};
    for (int64_t i = 0; i < nb8; i += 8) {
        __m256i qx[8];
        uint16_t wd[8];
        for (int b = 0; b < 8; b++) {
            qx[b] = _mm256_sub_epi8(nibbles32(x[i + b].qs), _mm256_set1_epi8(8));
            wd[b] = x[i + b].d;
        }
        const __m256 wdv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)wd));
        for (int64_t t = 0; t < nt; t++) {
            const block_q8_0 *y = (const block_q8_0 *)(act + t * act_bytes) + i;
            __m256i p[8];
            uint16_t ad[8];
            for (int b = 0; b < 8; b++) {
                p[b] = dot_lanes_i8(qx[b], _mm256_loadu_si256((const __m256i *)y[b].qs));
                ad[b] = y[b].d;
            }
            const __m256 d =
                _mm256_mul_ps(wdv, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)ad)));
            float f[8], dd[8];
            _mm256_storeu_ps(f, _mm256_cvtepi32_ps(block_totals8(p)));
            _mm256_storeu_ps(dd, d);
            for (int b = 0; b < 8; b++) acc[t] = fmaf(f[b], dd[b], acc[t]);
        }
    }
    for (int64_t t = 0; t < nt; t++) { /* the tail blocks, one at a time */
        const block_q8_0 *y = (const block_q8_0 *)(act + t * act_bytes);
        for (int64_t i = nb8; i < nb; i++) {
            const __m256i qx = _mm256_sub_epi8(nibbles32(x[i].qs), _mm256_set1_epi8(8));
            const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
            const int isum = hsum8_i32(dot_lanes_i8(qx, qy));
            acc[t] = fmaf((float)isum, _cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d), acc[t]);
        }
        out[t * ldo] = acc[t];
    }
}

void trit_avx2_gemm_legacy(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                           const void *act, size_t act_bytes, int64_t nt, float *out, int64_t ldo) {
    for (int64_t t0 = 0; t0 < nt; t0 += GEMM_TOK) {
        const int64_t tn = nt - t0 < GEMM_TOK ? nt - t0 : GEMM_TOK;
        const uint8_t *a = (const uint8_t *)act + t0 * act_bytes;
        for (int64_t r = 0; r < nr; r++) {
            const uint8_t *row = (const uint8_t *)w + r * row_bytes;
            float *o = out + t0 * ldo + r;
            if (wtype == (TRIT_Q4_0 | TRIT_REPACK8)) /* the reference's repacked order */
                row_r8(n, (const block_q4_0 *)row, a, act_bytes, tn, o, ldo);
            else
                row_lanes(wtype, n, row, a, act_bytes, tn, o, ldo);
        }
    }
}
