/* kernels/x86/kquants_avx2.c — AVX2 Q2_K..Q6_K x Q8_K dot products, bit-identical to
 * ref/kquants_ref.c and so to the reference's x86 ggml_vec_dot_qN_K_q8_K, and for Q4_K/Q2_K |
 * TRIT_REPACK8 (| _GEMM) to its repacked ggml_gemv/gemm_qN_K_8x8_q8_K (kernels.h).
 *
 * Each 32-byte chunk of quants is multiplied with its 32 activations by maddubs (unsigned quant x
 * signed int8 -> 16-bit pair sums; no saturation: at most 2 * 63 * 128), then madd with the
 * group scale gives one 32-bit sum per 4 bytes, i.e. exactly the ref's lane (k % 32) / 4. The
 * float steps per block are the ref's (one fma per lane with the block scale; the repacked orders
 * reduce the lanes to one integer per step and do their fmas in scalar). Compiled with -mavx2
 * -mfma -mf16c. */
#include "kernels/kernels.h"
#include "kernels/x86/hsum_avx2.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* The 8 scales (low 128 bits, as int16) and 8 mins (high 128 bits) of a Q4_K/Q5_K block. */
static inline __m256i k4_scales_mins(const uint8_t s[K_SCALE_SIZE]) {
    uint32_t u[4];
    memcpy(u, s, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    const uint32_t sc_lo = u[0] & m6;                                      /* scales 0..3 */
    const uint32_t sc_hi = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);        /* scales 4..7 */
    const uint32_t mn_lo = u[1] & m6;                                      /* mins 0..3 */
    const uint32_t mn_hi = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4); /* mins 4..7 */
    return _mm256_cvtepu8_epi16(_mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo));
}

/* Q4_K block: the 8 lanes of sum(sc * q4 * q8) (4 chunks of 64 elements, 32 bytes each: low
 * nibbles = first 32, high = next 32), and in *mins the 4 lanes of mins . (activation sums per
 * 32), pairwise (ggml's prod). If part is not NULL, part[j] gets chunk j's total. */
static inline __m256i q4_K_block(const block_q4_K *x, const block_q8_K *y, __m128i *mins,
                                 int32_t *part) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m256i sm = k4_scales_mins(x->scales);
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    *mins = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), q8s);
    /* scale g broadcast as an int16 pair to every lane */
    const __m128i sc128 = _mm256_castsi256_si128(sm);
    const __m256i scales = _mm256_inserti128_si256(_mm256_castsi128_si256(sc128), sc128, 1);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
        const __m256i sl =
            _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * j))));
        const __m256i sh =
            _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * j + 1))));
        const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * j));
        const __m256i a1 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * j + 32));
        const __m256i p0 = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(_mm256_and_si256(q, m4), a0));
        const __m256i p1 = _mm256_madd_epi16(
            sh, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), a1));
        const __m256i pj = _mm256_add_epi32(p0, p1);
        if (part) part[j] = hsum8_i32(pj);
        sumi = _mm256_add_epi32(sumi, pj);
    }
    return sumi;
}

/* Q4_K in vec_dot's order (kquants_ref.c) */
static float dot_q4_K(int64_t nb, const block_q4_K *x, const block_q8_K *y) {
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        const float dmin = -y[i].d * _cvtsh_ss(x[i].dmin);
        __m128i prod;
        const __m256i sumi = q4_K_block(&x[i], &y[i], &prod, NULL);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    return hsum8(acc) + _mm_cvtss_f32(acc_m);
}

/* Q4_K in the reference's repacked order (TRIT_REPACK8, kernels.h): one integer per block
 * (gemv), or per 64 elements (gemm) */
static float dot_q4_K_r8(int64_t nb, const block_q4_K *x, const block_q8_K *y, bool gemm) {
    float acc = 0, accm = 0;
    for (int64_t i = 0; i < nb; i++) {
        __m128i prod;
        int32_t part[4];
        const int isum = hsum8_i32(q4_K_block(&x[i], &y[i], &prod, gemm ? part : NULL));
        const float dd = _cvtsh_ss(x[i].d) * y[i].d, dm = _cvtsh_ss(x[i].dmin) * y[i].d;
        int32_t pm[4]; /* mins lane L = groups 2L, 2L+1 = the 64 elements of chunk L */
        _mm_storeu_si128((__m128i *)pm, prod);
        if (gemm) {
            for (int j = 0; j < 4; j++) {
                acc = fmaf((float)part[j], dd, acc);
                accm = fmaf((float)pm[j], dm, accm);
            }
            continue;
        }
        acc = fmaf((float)isum, dd, acc);
        accm = fmaf((float)(pm[0] + pm[1] + pm[2] + pm[3]), dm, accm);
    }
    return acc - accm;
}

/* From 16 int8 scales: scale g as int16 for bytes 0..15 of a 32-byte chunk, g + 1 for bytes
 * 16..31 (ggml's get_scale_shuffle + cvtepi8_epi16). */
static inline __m256i scale_pair(__m128i sc8, int g) {
    const __m128i idx = _mm_set_epi64x((long long)(0x0101010101010101ull * (unsigned)(g + 1)),
                                       (long long)(0x0101010101010101ull * (unsigned)g));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, idx));
}

/* Q2_K block: in *mins the 8 lanes mins . bsums pairwise (ggml's prod), returns the 8 lanes of
 * sum(sc * q2 * q8); part[j] (if not NULL) gets the total of elements 128j .. 128j+127 and
 * mpart[j] the mins of groups 8j .. 8j+7. Element 128j + 32l + p: (qs[32j + p] >> 2l) & 3. */
static inline __m256i q2_K_block(const block_q2_K *x, const block_q8_K *y, __m256i *mins,
                                 int32_t *part, int32_t *mpart) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)x->scales);
    const __m128i lo8 = _mm_and_si128(sc8, _mm_set1_epi8(0xF)); /* 4-bit scales */
    const __m256i mn16 =
        _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0xF)));
    *mins = _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)y->bsums));
    if (mpart) {
        int32_t m[8];
        _mm256_storeu_si256((__m256i *)m, *mins);
        mpart[0] = m[0] + m[1] + m[2] + m[3];
        mpart[1] = m[4] + m[5] + m[6] + m[7];
    }
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 2; j++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));
        __m256i sj = _mm256_setzero_si256();
        for (int l = 0; l < 4; l++) {
            const int g = 8 * j + 2 * l;
            const __m256i ql = _mm256_and_si256(_mm256_srli_epi16(q, 2 * l), m3);
            const __m256i a = _mm256_loadu_si256((const __m256i *)(y->qs + 128 * j + 32 * l));
            const __m256i s = scale_pair(lo8, g);
            sj = _mm256_add_epi32(sj, _mm256_madd_epi16(s, _mm256_maddubs_epi16(ql, a)));
        }
        if (part) part[j] = hsum8_i32(sj);
        sumi = _mm256_add_epi32(sumi, sj);
    }
    return sumi;
}

/* Q2_K in vec_dot's order (kquants_ref.c) */
static float dot_q2_K(int64_t nb, const block_q2_K *x, const block_q8_K *y) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        const float dmin = -y[i].d * _cvtsh_ss(x[i].dmin);
        __m256i prod;
        const __m256i sumi = q2_K_block(&x[i], &y[i], &prod, NULL, NULL);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* Q2_K in the reference's repacked order (TRIT_REPACK8, kernels.h): one integer per block
 * (gemv), or per 128 elements (gemm) */
static float dot_q2_K_r8(int64_t nb, const block_q2_K *x, const block_q8_K *y, bool gemm) {
    float acc = 0, accm = 0;
    for (int64_t i = 0; i < nb; i++) {
        __m256i prod;
        int32_t part[2], mpart[2];
        const int isum = hsum8_i32(q2_K_block(&x[i], &y[i], &prod, part, mpart));
        const float dd = _cvtsh_ss(x[i].d) * y[i].d, dm = _cvtsh_ss(x[i].dmin) * y[i].d;
        if (gemm) {
            for (int j = 0; j < 2; j++) {
                acc = fmaf((float)part[j], dd, acc);
                accm = fmaf((float)mpart[j], dm, accm);
            }
            continue;
        }
        acc = fmaf((float)isum, dd, acc);
        accm = fmaf((float)(mpart[0] + mpart[1]), dm, accm);
    }
    return acc - accm;
}

/* Q3_K: element 128j + 32l + p has low bits (qs[32j + p] >> 2l) & 3 and loses 4 unless bit
 * 4j + l of hmask[p] is set; scales are 6-bit, biased by 32. As ggml: maddubs of the low bits
 * minus maddubs of the 4s (both unsigned x signed, no saturation). */
static float dot_q3_K(int64_t nb, const block_q3_K *x, const block_q8_K *y) {
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        /* the 16 6-bit scales as int8 (ggml's aux unpacking), minus the bias 32 */
        uint32_t aux[3];
        memcpy(aux, x[i].scales, 12);
        const uint32_t k2 = 0x0f0f0f0f, k1 = 0x03030303;
        const __m128i sc8 =
            _mm_sub_epi8(_mm_set_epi32((int)(((aux[1] >> 4) & k2) | (((aux[2] >> 6) & k1) << 4)),
                                       (int)(((aux[0] >> 4) & k2) | (((aux[2] >> 4) & k1) << 4)),
                                       (int)((aux[1] & k2) | (((aux[2] >> 2) & k1) << 4)),
                                       (int)((aux[0] & k2) | ((aux[2] & k1) << 4))),
                         _mm_set1_epi8(32));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 2; j++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            for (int l = 0; l < 4; l++) {
                const int g = 8 * j + 2 * l, bit = 4 * j + l;
                const __m256i ql = _mm256_and_si256(_mm256_srli_epi16(q, 2 * l), m3);
                const __m256i h = _mm256_and_si256(_mm256_srli_epi16(hm, bit), one);
                const __m256i q4 = _mm256_slli_epi16(_mm256_xor_si256(h, one), 2); /* 4 if clear */
                const __m256i a = _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * j + 32 * l));
                const __m256i p16 =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(ql, a), _mm256_maddubs_epi16(q4, a));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale_pair(sc8, g), p16));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* Q5_K: as Q4_K with a 5th bit: element 64j + 32h + p adds 16 if bit 2j + h of qh[p] is set;
 * the mins' total is one scalar fma per block (ggml's summs). */
static float dot_q5_K(int64_t nb, const block_q5_K *x, const block_q8_K *y) {
    const __m256i m4 = _mm256_set1_epi8(0xF), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.f;
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        const float dmin = -y[i].d * _cvtsh_ss(x[i].dmin);
        const __m256i sm = k4_scales_mins(x[i].scales);
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const __m128i q8s =
            _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
        __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), q8s);
        prod = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
        const int imin = _mm_cvtsi128_si32(_mm_add_epi32(prod, _mm_shuffle_epi32(prod, 0xB1)));
        summs = fmaf(dmin, (float)imin, summs);
        int16_t sc[16];
        _mm256_storeu_si256((__m256i *)sc, sm); /* sc[0..7] scales */
        const __m256i hb = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i h0 =
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one), 4);
            const __m256i h1 =
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one), 4);
            const __m256i q0 = _mm256_add_epi8(_mm256_and_si256(q, m4), h0);
            const __m256i q1 = _mm256_add_epi8(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h1);
            const __m256i a0 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * j));
            const __m256i a1 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * j + 32));
            const __m256i p0 =
                _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * j]), _mm256_maddubs_epi16(q0, a0));
            const __m256i p1 =
                _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * j + 1]), _mm256_maddubs_epi16(q1, a1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc) + summs;
}

/* Q6_K: per block, 2 halves of 128 elements; quants 0..63 (4 low bits from ql, 2 from qh). */
static float dot_q6_K(int64_t nb, const block_q6_K *x, const block_q8_K *y) {
    const __m256i m3 = _mm256_set1_epi8(3), m15 = _mm256_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * _cvtsh_ss(x[i].d);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        /* the -32 offset: 32 * (bsums . scales), pairwise per lane */
        const __m256i offs = _mm256_slli_epi32(
            _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc16), 5);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 2; j++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * j));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * j + 32));
            const __m256i h = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * j));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m15),
                                   _mm256_slli_epi16(_mm256_and_si256(h, m3), 4));
            q[1] = _mm256_or_si256(
                _mm256_and_si256(l1, m15),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m3), 4));
            q[2] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(l0, 4), m15),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m3), 4));
            q[3] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(l1, 4), m15),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m3), 4));
            for (int l = 0; l < 4; l++) {
                /* groups g = 8j + 2l (bytes 0..15) and g + 1 (bytes 16..31) */
                const int g = 8 * j + 2 * l;
                const __m256i s = scale_pair(sc8, g);
                const __m256i a = _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * j + 32 * l));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(s, _mm256_maddubs_epi16(q[l], a)));
            }
        }
        sumi = _mm256_sub_epi32(sumi, offs);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

float trit_avx2_dot_kquant(uint32_t wtype, int64_t n, const void *w, const void *act) {
    switch (wtype) {
    case TRIT_Q2_K:
        return dot_q2_K(n / QK_K, w, act);
    case TRIT_Q3_K:
        return dot_q3_K(n / QK_K, w, act);
    case TRIT_Q5_K:
        return dot_q5_K(n / QK_K, w, act);
    case TRIT_Q2_K | TRIT_REPACK8:
        return dot_q2_K_r8(n / QK_K, w, act, false);
    case TRIT_Q2_K | TRIT_REPACK8 | TRIT_REPACK8_GEMM:
        return dot_q2_K_r8(n / QK_K, w, act, true);
    case TRIT_Q4_K:
        return dot_q4_K(n / QK_K, w, act);
    case TRIT_Q6_K:
        return dot_q6_K(n / QK_K, w, act);
    case TRIT_Q4_K | TRIT_REPACK8:
        return dot_q4_K_r8(n / QK_K, w, act, false);
    case TRIT_Q4_K | TRIT_REPACK8 | TRIT_REPACK8_GEMM:
        return dot_q4_K_r8(n / QK_K, w, act, true);
    default: /* no fast path: the scalar twin (same result) */
        return trit_ref_dot_kquant(wtype, n, w, act);
    }
}

void trit_avx2_dot_kquant_rows(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                               int64_t nr, const void *act, float *out) {
    for (int64_t r = 0; r < nr; r++)
        out[r] = trit_avx2_dot_kquant(wtype, n, (const char *)w + r * row_bytes, act);
}
