/* kernels/ref/kquants_ref.c — scalar Q2_K..Q6_K x Q8_K dot products, bit-identical to the
 * reference's x86 build (ggml-cpu/arch/x86/quants.c, ggml_vec_dot_qN_K_q8_K, __AVX2__ paths,
 * which the AVX-512 build runs too).
 *
 * Those kernels keep eight float lanes. Per block, lane L receives the exact integer sum of
 * scale * quant * activation over the elements k with (k % 32) / 4 == L (one 32-bit lane of a
 * 256-bit maddubs/madd over 32-byte chunks), plus each type's correction term computed the way
 * its kernel computes it (which for Q6_K's -32 offset covers a different element set); then
 * acc[L] = fma(d, (float)lane, acc[L]). The total is hsum_float_8 (go_reduce8). Integer sums
 * are exact in any order, so only the float steps below need ggml's order:
 *   Q2_K  acc = fma(dmin, mins . bsums lane, acc); acc = fma(d, lane, acc)   (dmin = -y.d * xdmin)
 *   Q3_K  acc = fma(d, lane, acc)
 *   Q4_K  acc as Q3_K; a 4-lane acc_m = fma(dmin, mins . q8sums lane, acc_m);
 *         result = reduce8(acc) + ((m0 + m2) + (m1 + m3))
 *   Q5_K  acc as Q3_K; summs = fma(dmin, (float)(mins . q8sums), summs) (contracted by GCC);
 *         result = reduce8(acc) + summs
 *   Q6_K  acc as Q3_K, lane = sum(sc * q6 * q8) - 32 * (bsums[2L]*sc[2L] + bsums[2L+1]*sc[2L+1])
 * and, for Q2_K/Q4_K | TRIT_REPACK8 (| _GEMM), the reference's repacked gemv/gemm order
 * (ggml-cpu arch/x86/repack.cpp, ggml_gemv/gemm_q4_K_8x8_q8_K etc.; see kernels.h): one integer
 * per step, acc = fma(isum, xd * yd, acc), accm = fma(sum(min * bsums), xdmin * yd, accm),
 * result acc - accm.
 * Used by kernels/ref (ref.c) and as the fallback of the optimized sets. */
#include "kernels/kernels.h"
#include "kernels/ref/ggml_order.h"

#include <math.h>
#include <string.h>

/* Lane of element k of a 256-element block. */
static inline int lane_of(int k) {
    return (k % 32) / 4;
}

/* lane[L] += sum over k in lane L of sc16[k / 16] * q[k] * q8[k]. */
static void lanes_scaled(const int q[QK_K], const int sc16[QK_K / 16], const int8_t *q8,
                         int32_t lane[8]) {
    for (int k = 0; k < QK_K; k++) lane[lane_of(k)] += sc16[k / 16] * q[k] * q8[k];
}

/* The 8 scales and 8 mins (6 bits each) of a Q4_K/Q5_K block, as ggml's utmp unpacking. */
static void k4_scales_mins(const uint8_t s[K_SCALE_SIZE], int sc[8], int mn[8]) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = s[j] & 63;
            mn[j] = s[j + 4] & 63;
        } else {
            sc[j] = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
            mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
}

/* Activation sums per 32 elements (ggml's hadd of bsums pairs). */
static inline int q8_sum32(const block_q8_K *y, int m) {
    return y->bsums[2 * m] + y->bsums[2 * m + 1];
}

/* Q2_K block i: lane sums of sc * q * q8 (element 128j + 32l + p: (qs[32j + p] >> 2l) & 3,
 * scale = low nibble of scales[k / 16]). */
static void q2_K_lanes(const block_q2_K *x, const block_q8_K *y, int32_t lane[8]) {
    int q[QK_K], sc[16];
    for (int k = 0; k < QK_K; k++)
        q[k] = (x->qs[32 * (k / 128) + k % 32] >> (2 * ((k % 128) / 32))) & 3;
    for (int g = 0; g < 16; g++) sc[g] = x->scales[g] & 0xF;
    lanes_scaled(q, sc, y->qs, lane);
}

static float dot_q2_K(int64_t nb, const block_q2_K *x, const block_q8_K *y) {
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * trit_fp16_to_fp32(x[i].d);
        const float dmin = -y[i].d * trit_fp16_to_fp32(x[i].dmin);
        /* mins . bsums, pairwise per lane */
        for (int L = 0; L < 8; L++) {
            const int prod = (x[i].scales[2 * L] >> 4) * y[i].bsums[2 * L] +
                             (x[i].scales[2 * L + 1] >> 4) * y[i].bsums[2 * L + 1];
            acc[L] = fmaf(dmin, (float)prod, acc[L]);
        }
        int32_t lane[8] = {0};
        q2_K_lanes(&x[i], &y[i], lane);
        for (int L = 0; L < 8; L++) acc[L] = fmaf(d, (float)lane[L], acc[L]);
    }
    return go_reduce8(acc);
}

static float dot_q3_K(int64_t nb, const block_q3_K *x, const block_q8_K *y) {
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * trit_fp16_to_fp32(x[i].d);
        /* 16 6-bit scales: low nibbles in bytes 0..7 (j, then j-8 high), top 2 bits in 8..11 */
        int sc[16];
        for (int j = 0; j < 16; j++) {
            const int lo = j < 8 ? x[i].scales[j] & 0xF : x[i].scales[j - 8] >> 4;
            const int hi = (x[i].scales[8 + j % 4] >> (2 * (j / 4))) & 3;
            sc[j] = (lo | (hi << 4)) - 32;
        }
        /* element k = 128j + 32l + p: low 2 bits (qs[32j + p] >> 2l) & 3, minus 4 unless
         * hmask[k % 32] has bit k / 32 */
        int q[QK_K];
        for (int k = 0; k < QK_K; k++) {
            const int low = (x[i].qs[32 * (k / 128) + k % 32] >> (2 * ((k % 128) / 32))) & 3;
            q[k] = low - ((x[i].hmask[k % 32] >> (k / 32)) & 1 ? 0 : 4);
        }
        int32_t lane[8] = {0};
        lanes_scaled(q, sc, y[i].qs, lane);
        for (int L = 0; L < 8; L++) acc[L] = fmaf(d, (float)lane[L], acc[L]);
    }
    return go_reduce8(acc);
}

/* Q4_K/Q5_K element k = 64j + 32h + p: nibble h of qs[32j + p] */
static inline int k4_nibble(const uint8_t *qs, int k) {
    const uint8_t b = qs[32 * (k / 64) + k % 32];
    return (k % 64) < 32 ? b & 0xF : b >> 4;
}

/* Q4_K block: lane sums of sc * q4 * q8, and mins . (activation sums per 32) as 4 pairwise
 * lanes (ggml's prod) */
static void q4_K_lanes(const block_q4_K *x, const block_q8_K *y, int32_t lane[8],
                       int32_t mlane[4]) {
    int sc[8], mn[8], sc16[16], q[QK_K];
    k4_scales_mins(x->scales, sc, mn);
    for (int L = 0; L < 4; L++)
        mlane[L] = mn[2 * L] * q8_sum32(y, 2 * L) + mn[2 * L + 1] * q8_sum32(y, 2 * L + 1);
    for (int g = 0; g < 16; g++) sc16[g] = sc[g / 2];
    for (int k = 0; k < QK_K; k++) q[k] = k4_nibble(x->qs, k);
    lanes_scaled(q, sc16, y->qs, lane);
}

/* Q4_K under the arm64 table (ggml's NEON dotprod ggml_vec_dot_q4_K_q8_K): per block the
 * mins first, sum = fma(-(float)sum(min * q8sum32), dmin, sum), then
 * sum = fma((float)sum(sc * q4 * q8), d, sum). */
static float dot_q4_K_neon(int64_t nb, const block_q4_K *x, const block_q8_K *y) {
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * trit_fp16_to_fp32(x[i].d);
        const float dmin = y[i].d * trit_fp16_to_fp32(x[i].dmin);
        int sc[8], mn[8];
        k4_scales_mins(x[i].scales, sc, mn);
        int32_t isum = 0, imin = 0;
        for (int m = 0; m < 8; m++) imin += mn[m] * q8_sum32(&y[i], m);
        for (int k = 0; k < QK_K; k++) isum += sc[k / 32] * k4_nibble(x[i].qs, k) * y[i].qs[k];
        sum = fmaf(-(float)imin, dmin, sum);
        sum = fmaf((float)isum, d, sum);
    }
    return sum;
}

/* Q4_K | TRIT_REPACK8 under the arm64 table (ggml_gemv/gemm_q4_K_8x4_q8_K, NEON dotprod: one
 * order for every token): per 64-element step acc = fma(d, (float)isum, acc) (vfmaq_f32),
 * then per block acc = acc - (float)imin * dmin, not fused (vmlsq_f32 is a multiply and a
 * subtract in GCC's arm_neon.h). */
static float dot_q4_K_r8_neon(int64_t nb, const block_q4_K *x, const block_q8_K *y) {
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const float d = trit_fp16_to_fp32(x[i].d) * y[i].d;
        const float dmin = trit_fp16_to_fp32(x[i].dmin) * y[i].d;
        int sc[8], mn[8];
        k4_scales_mins(x[i].scales, sc, mn);
        int32_t imin = 0;
        for (int m = 0; m < 8; m++) imin += mn[m] * q8_sum32(&y[i], m);
        for (int k0 = 0; k0 < QK_K; k0 += 64) {
            int32_t isum = 0;
            for (int k = k0; k < k0 + 64; k++)
                isum += sc[k / 32] * k4_nibble(x[i].qs, k) * y[i].qs[k];
            acc = fmaf(d, (float)isum, acc);
        }
        const float m = (float)imin * dmin;
        acc = acc - m;
    }
    return acc;
}

static float dot_q4_K(int64_t nb, const block_q4_K *x, const block_q8_K *y) {
    if (trit_numerics_table_get()->lanes == 4) return dot_q4_K_neon(nb, x, y);
    float acc[8] = {0}, acc_m[4] = {0};
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * trit_fp16_to_fp32(x[i].d);
        const float dmin = -y[i].d * trit_fp16_to_fp32(x[i].dmin);
        int32_t lane[8] = {0}, mlane[4];
        q4_K_lanes(&x[i], &y[i], lane, mlane);
        for (int L = 0; L < 4; L++) acc_m[L] = fmaf(dmin, (float)mlane[L], acc_m[L]);
        for (int L = 0; L < 8; L++) acc[L] = fmaf(d, (float)lane[L], acc[L]);
    }
    return go_reduce8(acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]));
}

static float dot_q5_K(int64_t nb, const block_q5_K *x, const block_q8_K *y) {
    float acc[8] = {0}, summs = 0.f;
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * trit_fp16_to_fp32(x[i].d);
        const float dmin = -y[i].d * trit_fp16_to_fp32(x[i].dmin);
        int sc[8], mn[8], sc16[16], q[QK_K];
        k4_scales_mins(x[i].scales, sc, mn);
        int prod = 0;
        for (int m = 0; m < 8; m++) prod += mn[m] * q8_sum32(&y[i], m);
        summs = fmaf(dmin, (float)prod, summs);
        for (int g = 0; g < 16; g++) sc16[g] = sc[g / 2];
        /* the 5th bit of element 64j + 32h + p is bit 2j + h of qh[p] */
        for (int k = 0; k < QK_K; k++)
            q[k] = k4_nibble(x[i].qs, k) + 16 * ((x[i].qh[k % 32] >> (k / 32)) & 1);
        int32_t lane[8] = {0};
        lanes_scaled(q, sc16, y[i].qs, lane);
        for (int L = 0; L < 8; L++) acc[L] = fmaf(d, (float)lane[L], acc[L]);
    }
    return go_reduce8(acc) + summs;
}

/* Q6_K. The arm64 table (ggml's NEON dotprod ggml_vec_dot_q6_K_q8_K, and its repacked
 * q6_K_8x4 gemv/gemm, which sum the same way): per block the exact integer
 * sum(sc * q6 * q8) - 32 * sum(sc * bsums), then sum = fma(d, (float)isum, sum). */
static float dot_q6_K_g(int64_t nb, const block_q6_K *x, const block_q8_K *y, bool gemm) {
    const bool neon = trit_numerics_table_get()->lanes == 4;
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * trit_fp16_to_fp32(x[i].d);
        /* element k = 128j + 32l + p: low nibble from ql[64j + 32(l % 2) + p] (high nibble when
         * l >= 2), top 2 bits from qh[32j + p] >> 2l; unsigned 0..63 */
        int q[QK_K], sc16[16];
        for (int k = 0; k < QK_K; k++) {
            const int j = k / 128, l = (k % 128) / 32, p = k % 32;
            const uint8_t b = x[i].ql[64 * j + 32 * (l % 2) + p];
            const int lo = l < 2 ? b & 0xF : b >> 4;
            q[k] = lo | (((x[i].qh[32 * j + p] >> (2 * l)) & 3) << 4);
        }
        for (int g = 0; g < 16; g++) sc16[g] = x[i].scales[g];
        int32_t lane[8] = {0};
        lanes_scaled(q, sc16, y[i].qs, lane);
        if (neon) { /* the block's whole integer, one float: sum = fma(d, isum, sum) */
            int32_t isum = 0;
            for (int L = 0; L < 8; L++) isum += lane[L];
            for (int g = 0; g < 16; g++) isum -= 32 * y[i].bsums[g] * sc16[g];
            if (gemm) { /* gemm_q6_K_8x4: vmlaq_f32, a multiply then an add */
                const float p = (float)isum * d;
                acc[0] = acc[0] + p;
            } else {
                acc[0] = fmaf(d, (float)isum, acc[0]);
            }
            continue;
        }
        for (int L = 0; L < 8; L++) {
            lane[L] -=
                32 * (y[i].bsums[2 * L] * sc16[2 * L] + y[i].bsums[2 * L + 1] * sc16[2 * L + 1]);
            acc[L] = fmaf(d, (float)lane[L], acc[L]);
        }
    }
    return neon ? acc[0] : go_reduce8(acc);
}

static float dot_q6_K(int64_t nb, const block_q6_K *x, const block_q8_K *y) {
    return dot_q6_K_g(nb, x, y, false);
}

/* ---- the reference's repacked order (TRIT_REPACK8 / _GEMM, kernels.h) ---- */

/* One block's products sc * q * q8 per element, and its min terms per 16-element group
 * (Q2_K: min[g] * bsums[g]; Q4_K: min[m] * (sum of the 32 activations of group m), at g = 2m). */
static void q2_K_terms(const block_q2_K *x, const block_q8_K *y, int32_t prod[QK_K],
                       int32_t minp[16]) {
    for (int k = 0; k < QK_K; k++) {
        const int q = (x->qs[32 * (k / 128) + k % 32] >> (2 * ((k % 128) / 32))) & 3;
        prod[k] = (x->scales[k / 16] & 0xF) * q * y->qs[k];
    }
    for (int g = 0; g < 16; g++) minp[g] = (x->scales[g] >> 4) * y->bsums[g];
}

static void q4_K_terms(const block_q4_K *x, const block_q8_K *y, int32_t prod[QK_K],
                       int32_t minp[16]) {
    int sc[8], mn[8];
    k4_scales_mins(x->scales, sc, mn);
    for (int k = 0; k < QK_K; k++) prod[k] = sc[k / 32] * k4_nibble(x->qs, k) * y->qs[k];
    for (int m = 0; m < 8; m++) {
        minp[2 * m] = mn[m] * q8_sum32(y, m);
        minp[2 * m + 1] = 0;
    }
}

/* Per step of `step` elements: acc = fma(sum prod, xd * yd, acc), accm = fma(sum minp,
 * xdmin * yd, accm); the result is acc - accm (ggml_gemv/gemm_qN_K_8x8_q8_K). */
static float dot_repack8(uint32_t wtype, int64_t nb, const void *w, const block_q8_K *y, int step) {
    const size_t bs = wtype == TRIT_Q2_K ? sizeof(block_q2_K) : sizeof(block_q4_K);
    float acc = 0, accm = 0;
    for (int64_t i = 0; i < nb; i++) {
        const void *blk = (const char *)w + i * bs;
        int32_t prod[QK_K], minp[16];
        uint16_t hd, hm;
        if (wtype == TRIT_Q2_K) {
            q2_K_terms(blk, &y[i], prod, minp);
            hd = ((const block_q2_K *)blk)->d, hm = ((const block_q2_K *)blk)->dmin;
        } else {
            q4_K_terms(blk, &y[i], prod, minp);
            hd = ((const block_q4_K *)blk)->d, hm = ((const block_q4_K *)blk)->dmin;
        }
        for (int k0 = 0; k0 < QK_K; k0 += step) {
            int32_t isum = 0, imin = 0;
            for (int k = k0; k < k0 + step; k++) isum += prod[k];
            for (int g = k0 / 16; g < (k0 + step) / 16; g++) imin += minp[g];
            acc = fmaf((float)isum, trit_fp16_to_fp32(hd) * y[i].d, acc);
            accm = fmaf((float)imin, trit_fp16_to_fp32(hm) * y[i].d, accm);
        }
    }
    return acc - accm;
}

float trit_ref_dot_kquant(uint32_t wtype, int64_t n, const void *w, const void *act) {
    const int64_t nb = n / QK_K;
    switch (wtype) {
    case TRIT_Q2_K:
        return dot_q2_K(nb, w, act);
    case TRIT_Q3_K:
        return dot_q3_K(nb, w, act);
    case TRIT_Q4_K:
        return dot_q4_K(nb, w, act);
    case TRIT_Q5_K:
        return dot_q5_K(nb, w, act);
    case TRIT_Q6_K:
        return dot_q6_K(nb, w, act);
    case TRIT_Q6_K | TRIT_REPACK8: /* arm64 only: q6_K_8x4 gemv = vec_dot's order */
        return dot_q6_K(nb, w, act);
    case TRIT_Q6_K | TRIT_REPACK8 | TRIT_REPACK8_GEMM: /* arm64 only: q6_K_8x4 gemm */
        return dot_q6_K_g(nb, w, act, true);
    case TRIT_Q4_K | TRIT_REPACK8:
    case TRIT_Q4_K | TRIT_REPACK8 | TRIT_REPACK8_GEMM:
        if (trit_numerics_table_get()->lanes == 4) return dot_q4_K_r8_neon(nb, w, act);
        if (wtype & TRIT_REPACK8_GEMM) return dot_repack8(TRIT_Q4_K, nb, w, act, 64);
        return dot_repack8(TRIT_Q4_K, nb, w, act, QK_K);
    case TRIT_Q2_K | TRIT_REPACK8:
        return dot_repack8(TRIT_Q2_K, nb, w, act, QK_K);
    case TRIT_Q2_K | TRIT_REPACK8 | TRIT_REPACK8_GEMM:
        return dot_repack8(TRIT_Q2_K, nb, w, act, 128);
    default:
        return NAN;
    }
}
