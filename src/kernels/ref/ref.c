/* kernels/ref — scalar reference kernels: activation quantization and dot products.
 *
 * Contract: obviously-right C with the same arithmetic order as ggml's generic (scalar) CPU
 * code, so results match llama.cpp's reference path to float rounding (integer dots exactly):
 *   Q8_K  quantize = quantize_row_q8_K_ref (signed absmax, iscale = -127/max, nearest-even,
 *         bsums per 16), the quantizer ggml uses on x86 too.
 *   Q8_0  quantize = ggml's x86 quantize_row_q8_0 (d = amax/127, id = 127/amax, round half
 *         to even), what the reference runs (not quantize_row_q8_0_ref: id = 1/d, roundf);
 *         under the arm64 table its NEON one (id = 1/d, round half to even).
 *   F16/BF16 activations: round-to-nearest-even conversion; F32: a copy.
 *   I8 (for I2_S weights) = bitnet.cpp's quantize_row_i8_s: amax = max(1e-5, max|x|) in
 *         double, s = (float)(127/amax), q = clamp(nearest-even(x*s), -128, 127). Layout:
 *         int8 q[n], float s, int32 sum(q).
 *   dots: Q2_K..Q6_K x Q8_K in ref/kquants_ref.c (the reference's x86 lane order);
 *         TQ1_0/TQ2_0 x Q8_K and Q8_0 x Q8_0 = ggml_vec_dot_*_generic (int block sums, float
 *         total; the per-block multiply-add is fused, as GCC contracts it in ggml's build);
 *   legacy Q4_0/Q4_1/Q5_0/Q5_1 (Q8_0/Q8_1 activations) and repacked Q4_0: legacy_ref.c;
 * F32/F16/BF16 sum in the lane orders of the numerics table in use (ref/ggml_order.h,
 * kernels.h: ggml_vec_dot_* and tinyBLAS of the AVX-512 or the AVX2 build); I2_S x I8 =
 * sum((code-1)*q) / s (bitnet.cpp's (sum(code*q) - sum(q)) / s). Used by tests as the oracle and by
 * trit_kernels_best() when no optimized set applies. */
#include "kernels/kernels.h"
#include "kernels/ref/ggml_order.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void ref_quantize_q8_0(const float *x, block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127;
        /* the NEON build (quantize_row_q8_0, quantize_mat_q8_0_4x4): id = 1 / d */
        const float id = trit_numerics_table_get()->lanes == 4 ? (d != 0.0f ? 1.0f / d : 0.0f)
                         : amax != 0.0f                        ? 127.f / amax
                                                               : 0.0f;
        y[b].d = trit_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[b].qs[j] = (int8_t)nearbyintf(x[j] * id);
    }
}

static void ref_quantize_i8(const float *x, void *dst, int64_t n) {
    int8_t *q = dst;
    double amax = 0.00001;
    for (int64_t i = 0; i < n; i++) amax = fmax(amax, fabs((double)x[i]));
    const float s = (float)(127.0 / amax);
    int32_t sum = 0;
    for (int64_t i = 0; i < n; i++) {
        int v = trit_nearest_int(x[i] * s);
        v = v > 127 ? 127 : v < -128 ? -128 : v;
        q[i] = (int8_t)v;
        sum += v;
    }
    memcpy(q + n, &s, sizeof(s));
    memcpy(q + n + sizeof(s), &sum, sizeof(sum));
}

/* The arm64 table's Q8_K quantizer: quantize_row_q8_K_ref as GCC compiles it for aarch64,
 * where FMA is part of the base ISA and -ffp-contract=fast fuses nearest_int's
 * iscale * x + 12582912.f into one fma (x86's ggml-base, built without -mfma, rounds the
 * product first). Everything else as quant.c's Q8_K (signed absmax, -127/max, bsums per 16). */
void trit_ref_quantize_q8_K_fma(const float *x, block_q8_K *y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
        if (!amax) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            const float v = fmaf(iscale, x[j], 12582912.f);
            int32_t i;
            memcpy(&i, &v, sizeof i);
            const int q = (i & 0x007fffff) - 0x00400000;
            y[b].qs[j] = (int8_t)(q < 127 ? q : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += y[b].qs[j * 16 + i];
            y[b].bsums[j] = (int16_t)sum;
        }
        y[b].d = 1 / iscale;
    }
}

static void ref_quantize_act(uint32_t wtype, const float *x, void *dst, int64_t n) {
    switch (trit_act_type(wtype)) { /* kernels.c: the one weight -> activation format rule */
    case TRIT_Q8_K:
        if (trit_numerics_table_get()->q8k_fma)
            trit_ref_quantize_q8_K_fma(x, dst, n);
        else
            trit_quantize_row(TRIT_Q8_K, x, dst, n); /* rows are whole QK_K blocks */
        break;
    case TRIT_Q8_0: /* Q8_0, Q4_0, Q5_0 weights (x86 quantizers, as ggml's vec_dot_type) */
        ref_quantize_q8_0(x, dst, n);
        break;
    case TRIT_Q8_1: /* Q4_1, Q5_1 weights */
        trit_ref_quantize_q8_1(x, dst, n);
        break;
    case TRIT_F16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = trit_fp32_to_fp16(x[i]);
        break;
    case TRIT_BF16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = trit_fp32_to_bf16(x[i]);
        break;
    case TRIT_F32:
        memcpy(dst, x, (size_t)n * sizeof(float));
        break;
    case TRIT_ACT_I8: /* I2_S weights */
        ref_quantize_i8(x, dst, n);
        break;
    default:
        break;
    }
}

/* The quant dots follow ggml's AVX2 kernels (the reference runs those on x86, AVX-512 build
 * included): eight float lanes; per block, lane L gets the integer sum of the products whose
 * activation index k has (k % 32) / 4 == L (one 32-bit lane of a 256-bit maddubs/madd), the
 * ternary +1 offset removed with bsums[2L] + bsums[2L + 1], then acc[L] = fma(lane, d, acc[L]);
 * the total is reduce8 (hsum_float_8). */
/* The arm64 table's TQ2_0 x Q8_K (ggml's NEON + dotprod build): the block's whole integer sum
 * (codes 0..2 times the activations, minus the block sums), then one float accumulator,
 * sumf += d * (float)isum block after block, contracted to an fma by GCC. */
float trit_ref_dot_tq2_0_one_acc(int64_t n, const block_tq2_0 *x, const block_q8_K *y) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t isum = 0;
        for (int j = 0; j < QK_K / 4; j += 32)
            for (int l = 0; l < 4; l++)
                for (int p = 0; p < 32; p++)
                    isum += y[i].qs[j * 4 + l * 32 + p] * ((x[i].qs[j + p] >> (l * 2)) & 3);
        for (int b = 0; b < QK_K / 16; b++) isum -= y[i].bsums[b];
        const float d = trit_fp16_to_fp32(x[i].d) * y[i].d;
        sumf = fmaf(d, (float)isum, sumf);
    }
    return sumf;
}

static float ref_dot_tq2_0(int64_t n, const block_tq2_0 *x, const block_q8_K *y) {
    if (trit_numerics_table_get()->tq_one_acc) return trit_ref_dot_tq2_0_one_acc(n, x, y);
    float acc[8] = {0};
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t lane[8] = {0};
        for (int j = 0; j < QK_K / 4; j += 32)
            for (int l = 0; l < 4; l++)
                for (int p = 0; p < 32; p++)
                    lane[p / 4] += y[i].qs[j * 4 + l * 32 + p] * ((x[i].qs[j + p] >> (l * 2)) & 3);
        const float d = y[i].d * trit_fp16_to_fp32(x[i].d);
        for (int L = 0; L < 8; L++) {
            lane[L] -= y[i].bsums[2 * L] + y[i].bsums[2 * L + 1];
            acc[L] = fmaf((float)lane[L], d, acc[L]);
        }
    }
    return go_reduce8(acc);
}

/* One base-3 digit of a TQ1_0 byte: digit l of q is ((uint8_t)(q * 3^l) * 3) >> 8. */
static inline int tq1_digit(uint8_t q, int l) {
    static const uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};
    uint8_t v = (uint8_t)(q * pow3[l]);
    return (int)(((uint16_t)v * 3) >> 8);
}

/* The arm64 table's TQ1_0 x Q8_K (ggml's NEON + dotprod build): the block's whole integer
 * sum (base-3 digits times the activations, minus the block sums), then
 * sumf = fma(d, (float)isum, sumf), as the TQ2_0 one. Digit l of byte j of qs[0, 32) pairs with
 * activation 32 l + j, of qs[32, 48) with 160 + 16 l + (j - 32), of qh with 240 + 4 l + j. */
float trit_ref_dot_tq1_0_one_acc(int64_t n, const block_tq1_0 *x, const block_q8_K *y) {
    const int nqs = (int)sizeof(x->qs), nqh = (int)sizeof(x->qh), n32 = nqs - nqs % 32;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t isum = 0;
        const int8_t *q = y[i].qs;
        for (int j = 0; j < n32; j += 32)
            for (int l = 0; l < 5; l++)
                for (int m = 0; m < 32; m++)
                    isum += tq1_digit(x[i].qs[j + m], l) * q[j * 5 + l * 32 + m];
        for (int j = n32; j < nqs; j += 16)
            for (int l = 0; l < 5; l++)
                for (int m = 0; m < 16; m++)
                    isum += tq1_digit(x[i].qs[j + m], l) * q[j * 5 + l * 16 + m];
        for (int l = 0; l < 4; l++)
            for (int j = 0; j < nqh; j++)
                isum += tq1_digit(x[i].qh[j], l) * q[nqs * 5 + l * nqh + j];
        for (int b = 0; b < QK_K / 16; b++) isum -= y[i].bsums[b];
        const float d = trit_fp16_to_fp32(x[i].d) * y[i].d;
        sumf = fmaf(d, (float)isum, sumf);
    }
    return sumf;
}

static float ref_dot_tq1_0(int64_t n, const block_tq1_0 *x, const block_q8_K *y) {
    if (trit_numerics_table_get()->tq_one_acc) return trit_ref_dot_tq1_0_one_acc(n, x, y);
    const int nqs = (int)sizeof(x->qs), nqh = (int)sizeof(x->qh), n32 = nqs - nqs % 32;
    float acc[8] = {0};
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t lane[8] = {0};
        const int8_t *q = y[i].qs;
        for (int j = 0; j < n32; j += 32)
            for (int l = 0; l < 5; l++)
                for (int m = 0; m < 32; m++) {
                    const int k = j * 5 + l * 32 + m;
                    lane[(k % 32) / 4] += tq1_digit(x[i].qs[j + m], l) * q[k];
                }
        for (int j = n32; j < nqs; j += 16)
            for (int l = 0; l < 5; l++)
                for (int m = 0; m < 16; m++) {
                    const int k = j * 5 + l * 16 + m;
                    lane[(k % 32) / 4] += tq1_digit(x[i].qs[j + m], l) * q[k];
                }
        for (int l = 0; l < 4; l++)
            for (int j = 0; j < nqh; j++) {
                const int k = nqs * 5 + l * nqh + j;
                lane[(k % 32) / 4] += tq1_digit(x[i].qh[j], l) * q[k];
            }
        const float d = y[i].d * trit_fp16_to_fp32(x[i].d);
        for (int L = 0; L < 8; L++) {
            lane[L] -= y[i].bsums[2 * L] + y[i].bsums[2 * L + 1];
            acc[L] = fmaf((float)lane[L], d, acc[L]);
        }
    }
    return go_reduce8(acc);
}

/* Q8_0 under the arm64 table (ggml's NEON dotprod ggml_vec_dot_q8_0_q8_0): blocks in pairs,
 * even blocks into one 4-lane accumulator, odd into another; lane L of a block is the integer
 * sum of bytes 4L..4L+3 and 16+4L..16+4L+3 (two sdot), added as acc[L] + round(lane * d)
 * (vmlaq_n_f32: not fused); the total vaddvq(acc0) + vaddvq(acc1), then an odd last block as
 * fma(isum, d, sum). */
static float ref_dot_q8_0_neon(int64_t nb, const block_q8_0 *x, const block_q8_0 *y) {
    float acc[2][4] = {{0}};
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2)
        for (int b = 0; b < 2; b++) {
            const block_q8_0 *xb = &x[ib + b], *yb = &y[ib + b];
            const float d = trit_fp16_to_fp32(xb->d) * trit_fp16_to_fp32(yb->d);
            for (int L = 0; L < 4; L++) {
                int lane = 0;
                for (int j = 4 * L; j < 4 * L + 4; j++)
                    lane += xb->qs[j] * yb->qs[j] + xb->qs[16 + j] * yb->qs[16 + j];
                const float p = (float)lane * d;
                acc[b][L] = acc[b][L] + p;
            }
        }
    float sum = go_reduce4(acc[0]) + go_reduce4(acc[1]);
    for (; ib < nb; ib++) {
        int isum = 0;
        for (int j = 0; j < QK8_0; j++) isum += x[ib].qs[j] * y[ib].qs[j];
        sum = fmaf((float)isum, trit_fp16_to_fp32(x[ib].d) * trit_fp16_to_fp32(y[ib].d), sum);
    }
    return sum;
}

/* Q8_0: lane L = bytes 4L..4L+3 of the block, acc[L] = fma(d, lane, acc[L]), reduce8. */
static float ref_dot_q8_0(int64_t n, const block_q8_0 *x, const block_q8_0 *y) {
    if (trit_numerics_table_get()->lanes == 4) return ref_dot_q8_0_neon(n / QK8_0, x, y);
    float acc[8] = {0};
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float d = trit_fp16_to_fp32(x[i].d) * trit_fp16_to_fp32(y[i].d);
        for (int L = 0; L < 8; L++) {
            int sumi = 0;
            for (int j = 4 * L; j < 4 * L + 4; j++) sumi += x[i].qs[j] * y[i].qs[j];
            acc[L] = fmaf(d, (float)sumi, acc[L]);
        }
    }
    return go_reduce8(acc);
}

static float ref_dot_i2_s(int64_t n, const uint8_t *x, const int8_t *q) {
    float s;
    memcpy(&s, q + n, sizeof(s));
    int32_t sumi = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t blk = i / QK_I2_S, j = i % QK_I2_S, grp = j / 32, pos = j % 32;
        const int code = (x[blk * 32 + pos] >> (6 - 2 * grp)) & 3;
        sumi += (code - 1) * q[i];
    }
    return (float)sumi / s;
}

/* Up to 64 elements of an F16/BF16/F32 row, from i, as floats (exact). */
static void ref_row_f32(uint32_t wtype, const void *row, int64_t i, int64_t m, float *out) {
    for (int64_t l = 0; l < m; l++)
        out[l] = wtype == TRIT_F16    ? trit_fp16_to_fp32(((const uint16_t *)row)[i + l])
                 : wtype == TRIT_BF16 ? trit_bf16_to_fp32(((const uint16_t *)row)[i + l])
                                      : ((const float *)row)[i + l];
}

/* ggml_vec_dot_f16 on fp16 rows in the table's lanes (ref/ggml_order.h: lanes64 / lanes32) */
static float ref_dot_f16(int64_t n, const uint16_t *x, const uint16_t *y) {
    float sx[2048], sy[2048]; /* rows up to 2048 without an allocation */
    float *xf = n <= 2048 ? sx : xmalloc(sizeof(float) * (size_t)n);
    float *yf = n <= 2048 ? sy : xmalloc(sizeof(float) * (size_t)n);
    ref_row_f32(TRIT_F16, x, 0, n, xf);
    ref_row_f32(TRIT_F16, y, 0, n, yf);
    const float r = go_dot_f16_w(trit_numerics_table_get()->lanes, n, xf, yf);
    if (xf != sx) free(xf), free(yf);
    return r;
}

/* tinyBLAS (lanes16 / lanes8 per table; arm64: blas4 for F32, blash8 in fp16 for F16) on
 * F32, F16 or BF16 rows, n % lanes == 0 */
static float ref_dot_blas(uint32_t wtype, int64_t n, const void *w, const void *act) {
    const int lanes = trit_numerics_table_get()->lanes;
    float a[16] = {0}, x[16], y[16];
    if (lanes == 4) {
        const int kn = wtype == TRIT_F16 ? 8 : 4;
        for (int64_t i = 0; i < n; i += kn) {
            ref_row_f32(wtype, w, i, kn, x);
            ref_row_f32(wtype, act, i, kn, y);
            for (int l = 0; l < kn; l++)
                a[l] = kn == 8 ? go_fma_h(x[l], y[l], a[l]) : fmaf(x[l], y[l], a[l]);
        }
        return kn == 8 ? go_reduce_h8(a) : go_reduce4(a);
    }
    for (int64_t i = 0; i < n; i += lanes) {
        ref_row_f32(wtype, w, i, lanes, x);
        ref_row_f32(wtype, act, i, lanes, y);
        for (int l = 0; l < lanes; l++) a[l] = fmaf(x[l], y[l], a[l]);
    }
    return lanes == 16 ? go_reduce16(a) : go_reduce8(a);
}

/* ggml_vec_dot_bf16. NEON build (no bf16 instructions): every product added in double, in
 * order. AVX-512 build: two 16-lane accumulators over steps of 32, each reduced
 * into a double. AVX2 build: four 8-lane accumulators over steps of 32 (mul + add contracted
 * to fma), folded (0+2) + (1+3), one hsum (reduce8) into the double. Tail in double. */
static float ref_dot_bf16(int64_t n, const uint16_t *x, const uint16_t *y) {
    const int lanes = trit_numerics_table_get()->lanes, na = 32 / lanes;
    float c[4][16] = {{0}}, xf[32], yf[32];
    int64_t i = 0;
    for (; lanes != 4 && i + 32 <= n; i += 32) { /* the NEON build: all of it the double tail */
        ref_row_f32(TRIT_BF16, x, i, 32, xf);
        ref_row_f32(TRIT_BF16, y, i, 32, yf);
        for (int j = 0; j < na; j++)
            for (int l = 0; l < lanes; l++)
                c[j][l] = fmaf(xf[lanes * j + l], yf[lanes * j + l], c[j][l]);
    }
    double sum = 0.0;
    if (lanes == 16) {
        sum = (double)go_reduce16(c[0]);
        sum += (double)go_reduce16(c[1]);
    } else if (lanes == 8) {
        for (int l = 0; l < 8; l++) c[0][l] = (c[0][l] + c[2][l]) + (c[1][l] + c[3][l]);
        sum = (double)go_reduce8(c[0]);
    }
    for (; i < n; i++) sum += (double)(trit_bf16_to_fp32(x[i]) * trit_bf16_to_fp32(y[i]));
    return (float)sum;
}

static float ref_vec_dot(uint32_t wtype, int64_t n, const void *w, const void *a) {
    if (trit_is_kquant(wtype)) /* Q2_K..Q6_K, repacked orders included: ref/kquants_ref.c */
        return trit_ref_dot_kquant(wtype, n, w, a);
    switch (wtype) {
    case TRIT_TQ2_0:
        return ref_dot_tq2_0(n, w, a);
    case TRIT_TQ1_0:
        return ref_dot_tq1_0(n, w, a);
    case TRIT_Q8_0:
        return ref_dot_q8_0(n, w, a);
    case TRIT_Q4_0: /* legacy types: kernels/ref/legacy_ref.c */
    case TRIT_Q4_1:
    case TRIT_Q5_0:
    case TRIT_Q5_1:
        return trit_ref_dot_legacy(wtype, n, w, a);
    case TRIT_Q4_0 | TRIT_REPACK8: /* the reference's repacked order (kernels.h) */
        return trit_ref_dot_q4_0_r8(n, w, a);
    case TRIT_I2_S:
        return ref_dot_i2_s(n, w, a);
    case TRIT_F32:
        return go_dot_f32_w(trit_numerics_table_get()->lanes, n, w, a);
    case TRIT_F16:
        return ref_dot_f16(n, w, a);
    case TRIT_BF16:
        return ref_dot_bf16(n, w, a);
    default:
        return NAN;
    }
}

static void ref_vec_dot_rows(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                             const void *act, float *out) {
    for (int64_t r = 0; r < nr; r++)
        out[r] = ref_vec_dot(wtype, n, (const char *)w + r * row_bytes, act);
}

/* F32/F16: the tinyBLAS order (trit_matmul calls gemm for these only where tinyBLAS applies);
 * other types: vec_dot. */
static void ref_gemm(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                     const void *act, size_t act_bytes, int64_t nt, float *out, int64_t ldo) {
    for (int64_t t = 0; t < nt; t++) {
        const char *a = (const char *)act + t * act_bytes;
        for (int64_t r = 0; r < nr; r++) {
            const char *wr = (const char *)w + r * row_bytes;
            out[t * ldo + r] = wtype == TRIT_F32 || wtype == TRIT_F16 || wtype == TRIT_BF16
                                   ? ref_dot_blas(wtype, n, wr, a)
                                   : ref_vec_dot(wtype, n, wr, a);
        }
    }
}

static const trit_kernels ref_kernels = {
    .name = "ref",
    .quantize_act = ref_quantize_act,
    .vec_dot = ref_vec_dot,
    .vec_dot_rows = ref_vec_dot_rows,
    .gemm = ref_gemm,
};

const trit_kernels *trit_kernels_ref(void) {
    return &ref_kernels;
}
