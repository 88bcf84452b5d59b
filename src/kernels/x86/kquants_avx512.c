/* kernels/x86/kquants_avx512.c — AVX-512 (F, BW) Q4_K and Q6_K x Q8_K dot products,
 * bit-identical to ref/kquants_ref.c (the reference's x86 lane order).
 *
 * Two 32-byte chunks travel in one 64-byte register: maddubs + madd with the group scales give
 * 32-bit sums per 4 bytes, and the two 256-bit halves are added (integer, exact) into the eight
 * lanes (k % 32) / 4 the ref uses, so the per-block float steps are the ref's. Other k-quants use
 * the AVX2 set. Q4_K | TRIT_REPACK8 sums in the reference's repacked order (kernels.h) from the
 * same integer lanes. Compiled with the AVX-512 flags; only reached after kernels.c checked the
 * CPU. */
#include "kernels/kernels.h"
#include "kernels/x86/hsum_avx2.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* The eight 32-bit lanes of a 512-bit sum folded into 256 bits (lane L + lane L + 8). */
static inline __m256i fold512(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* the sum of 4 int32 lanes */
static inline int hsum4_i32(__m128i v) {
    v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
    return _mm_cvtsi128_si32(_mm_add_epi32(v, _mm_shuffle_epi32(v, 0xB1)));
}

/* int16 a in the low 256 bits, b in the high 256 bits */
static inline __m512i pair16(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi16((short)a), _mm256_set1_epi16((short)b), 1);
}

/* 32 bytes at p in the low half, 32 at q in the high half */
static inline __m512i load2x32(const void *p, const void *q) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)),
                              _mm256_loadu_si256((const __m256i *)q), 1);
}

/* Q4_K block: the 8 lanes of sum(sc * q4 * q8), and in *mins the 4 lanes of mins . (activation
 * sums per 32) pairwise (ggml's prod). The 6-bit scales and mins are unpacked as ggml's utmp
 * (scales 0..3, 4..7, mins 0..3, 4..7 as bytes, widened to int16). Register p (0..1) holds quant
 * chunks 2p (low half) and 2p+1 (high half); low nibbles pair with activations 128p + 0..31 /
 * 128p + 64..95 (scales 4p, 4p+2), high nibbles with 128p + 32..63 / 96..127 (4p+1, 4p+3). */
static inline __m256i q4_K_block(const block_q4_K *x, const block_q8_K *y, __m128i *mins) {
    const __m512i m4 = _mm512_set1_epi8(0xF);
    uint32_t u[3];
    memcpy(u, x->scales, 12);
    const uint32_t m6 = 0x3f3f3f3f, mk4 = 0x0f0f0f0f, m2 = 0x03030303;
    const __m256i sm = _mm256_cvtepu8_epi16(
        _mm_set_epi32((int)(((u[2] >> 4) & mk4) | (((u[1] >> 6) & m2) << 4)), (int)(u[1] & m6),
                      (int)((u[2] & mk4) | (((u[0] >> 6) & m2) << 4)), (int)(u[0] & m6)));
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    *mins = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), q8s);
    const __m512i sm512 = _mm512_castsi256_si512(sm); /* indices below read words 0..7 only */
    __m512i sumi = _mm512_setzero_si512();
    for (int p = 0; p < 2; p++) {
        const __m512i il = pair16(4 * p, 4 * p + 2), ih = pair16(4 * p + 1, 4 * p + 3);
        const __m512i q = _mm512_loadu_si512(x->qs + 64 * p);
        const int8_t *a = y->qs + 128 * p;
        const __m512i pl = _mm512_maddubs_epi16(_mm512_and_si512(q, m4), load2x32(a, a + 64));
        const __m512i ph = _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(q, 4), m4),
                                                load2x32(a + 32, a + 96));
        sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_permutexvar_epi16(il, sm512), pl));
        sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_permutexvar_epi16(ih, sm512), ph));
    }
    return fold512(sumi);
}

/* Q4_K in vec_dot's order (kquants_ref.c) */
static float dot_q4_K(int64_t nb, const block_q4_K *x, const block_q8_K *y) {
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        const float dmin = -y[i].d * _cvtsh_ss(x[i].dmin);
        __m128i prod;
        const __m256i sumi = q4_K_block(&x[i], &y[i], &prod);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    return hsum8(acc) + _mm_cvtss_f32(acc_m);
}

/* Q4_K in the reference's repacked order (TRIT_REPACK8, kernels.h): one integer per block */
static float dot_q4_K_r8(int64_t nb, const block_q4_K *x, const block_q8_K *y) {
    float acc = 0, accm = 0;
    for (int64_t i = 0; i < nb; i++) {
        __m128i prod;
        const __m256i sumi = q4_K_block(&x[i], &y[i], &prod);
        const int isum = _mm512_reduce_add_epi32(_mm512_zextsi256_si512(sumi));
        const int imin = hsum4_i32(prod);
        acc = fmaf((float)isum, _cvtsh_ss(x[i].d) * y[i].d, acc);
        accm = fmaf((float)imin, _cvtsh_ss(x[i].dmin) * y[i].d, accm);
    }
    return acc - accm;
}

/* Q6_K: per 128-element half j, register A holds quants 128j + 0..63 (ql low nibbles, qh bits
 * 0-1 / 2-3), register B 128j + 64..127 (ql high nibbles, qh bits 4-5 / 6-7); the activations are
 * the contiguous 64 bytes at 128j and 128j + 64. Word w of A belongs to group 8j + w / 8, of B to
 * group 8j + 4 + w / 8. */
static float dot_q6_K(int64_t nb, const block_q6_K *x, const block_q8_K *y) {
    const __m512i m3 = _mm512_set1_epi8(3), m15 = _mm512_set1_epi8(15);
    const __m512i shA = pair16(0, 2), shB = pair16(4, 6); /* qh shift per half */
    __m512i gidx[2];                                      /* word w -> group w / 8 (+ 4) */
    {
        int16_t ia[32], ib[32];
        for (int w = 0; w < 32; w++) ia[w] = (int16_t)(w / 8), ib[w] = (int16_t)(4 + w / 8);
        gidx[0] = _mm512_loadu_si512(ia);
        gidx[1] = _mm512_loadu_si512(ib);
    }
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        /* the -32 offset: 32 * (bsums . scales), pairwise per lane */
        const __m256i offs = _mm256_slli_epi32(
            _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc16), 5);
        __m512i sumi = _mm512_setzero_si512();
        for (int j = 0; j < 2; j++) {
            /* scales of this half's 8 groups, word w -> group 8j + w / 8 (+ 4) */
            const __m256i half = j ? _mm256_permute4x64_epi64(sc16, 0xEE)  /* groups 8..15 twice */
                                   : _mm256_permute4x64_epi64(sc16, 0x44); /* 0..7 twice */
            const __m512i sc8 = _mm512_castsi256_si512(half); /* groups 8j..8j+7 twice */
            const __m512i sA = _mm512_permutexvar_epi16(gidx[0], sc8);
            const __m512i sB = _mm512_permutexvar_epi16(gidx[1], sc8);
            const __m512i l = _mm512_loadu_si512(x[i].ql + 64 * j);
            const __m512i h =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * j)));
            const __m512i qA = _mm512_or_si512(
                _mm512_and_si512(l, m15),
                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(h, shA), m3), 4));
            const __m512i qB = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi16(l, 4), m15),
                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(h, shB), m3), 4));
            const __m512i aA = _mm512_loadu_si512(y[i].qs + 128 * j);
            const __m512i aB = _mm512_loadu_si512(y[i].qs + 128 * j + 64);
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(sA, _mm512_maddubs_epi16(qA, aA)));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(sB, _mm512_maddubs_epi16(qB, aB)));
        }
        const __m256i lanes = _mm256_sub_epi32(fold512(sumi), offs);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
    }
    return hsum8(acc);
}

float trit_avx512_dot_kquant(uint32_t wtype, int64_t n, const void *w, const void *act) {
    switch (wtype) {
    case TRIT_Q4_K:
        return dot_q4_K(n / QK_K, w, act);
    case TRIT_Q6_K:
        return dot_q6_K(n / QK_K, w, act);
    case TRIT_Q4_K | TRIT_REPACK8:
        return dot_q4_K_r8(n / QK_K, w, act);
    case TRIT_Q4_K | TRIT_REPACK8 | TRIT_REPACK8_GEMM: /* per-64 sums: the AVX2 set's */
    default: /* no AVX-512 path: the AVX2 set (same result) */
        return trit_avx2_dot_kquant(wtype, n, w, act);
    }
}

void trit_avx512_dot_kquant_rows(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                                 int64_t nr, const void *act, float *out) {
    for (int64_t r = 0; r < nr; r++)
        out[r] = trit_avx512_dot_kquant(wtype, n, (const char *)w + r * row_bytes, act);
}
