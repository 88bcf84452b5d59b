/* kernels/arm NEON + dotprod + fp16 — the aarch64 kernel set (issue 20).
 *
 * Contract: the dots below in the arm64 numerics table's order (kernels.h, ref/ggml_order.h),
 * bit for bit, each with its scalar twin in kernels/ref/:
 *   TQ2_0 / TQ1_0 x Q8_K: per block, the ternary codes (0..2) times the int8 activations
 *     summed exactly with sdot, the block sums subtracted, then one float accumulator,
 *     sumf = fma(d, (float)isum, sumf) (twins trit_ref_dot_tq2_0_one_acc / _tq1_0_one_acc);
 *   F16 x F16 (ggml_vec_dot_f16 of the NEON fp16 build): four 8-lane fp16 accumulators with
 *     fp16 fma over steps of 32, folded in fp16, widened, vaddvq; the tail in double
 *     (twin go_dot_f16_h32 through the ref set).
 * Every other kernel is the scalar set's (which follows the same table). Compiled with
 * -march=armv8.2-a+dotprod+fp16 on aarch64 targets only (Makefile: files named *_neon.c); only
 * reached after kernels.c has checked HWCAP_ASIMDDP and HWCAP_ASIMDHP. */
#include "kernels/kernels.h"

#include <string.h>

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD) &&                                      \
    defined(__ARM_FEATURE_FP16_VECTOR_ARITHMETIC)
#include <arm_neon.h>

/* One row: 64 weight bytes hold four 2-bit codes each; code plane l of byte j pairs with
 * activation j*4 + 32 l + p (ggml's TQ2_0 layout, as ref.c). */
static float dot_tq2_0_neon(int64_t n, const block_tq2_0 *x, const block_q8_K *y) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int j = 0; j < QK_K / 4; j += 32) {
            const uint8x16_t q0 = vld1q_u8(x[i].qs + j), q1 = vld1q_u8(x[i].qs + j + 16);
            for (int l = 0; l < 4; l++) {
                const int8x16_t c0 =
                    vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, vdupq_n_s8(-2 * l)), m3));
                const int8x16_t c1 =
                    vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, vdupq_n_s8(-2 * l)), m3));
                acc = vdotq_s32(acc, c0, vld1q_s8(y[i].qs + j * 4 + 32 * l));
                acc = vdotq_s32(acc, c1, vld1q_s8(y[i].qs + j * 4 + 32 * l + 16));
            }
        }
        const int16x8_t b = vaddq_s16(vld1q_s16(y[i].bsums), vld1q_s16(y[i].bsums + 8));
        const int32_t isum = vaddvq_s32(vsubq_s32(acc, vpaddlq_s16(b)));
        const float d = trit_fp16_to_fp32(x[i].d) * y[i].d;
        sumf = fmaf(d, (float)isum, sumf);
    }
    return sumf;
}

/* TQ1_0: ggml's layout (ref.c): qs[0, 32) hold five base-3 digits for activations 32 l + j,
 * qs[32, 48) five for 160 + 16 l + j, qh[0, 4) four for 240 + 4 l + j. Digit l of byte q is the
 * top two bits of 3 * (uint8_t)(q * 3^l) over 8 bits, here (h + (h >> 1)) >> 7 with a halving
 * add (the same integer). */
static inline int8x16_t tq1_digits(uint8x16_t q) {
    return vreinterpretq_s8_u8(vshrq_n_u8(vhaddq_u8(q, vshrq_n_u8(q, 1)), 6));
}

static float dot_tq1_0_neon(int64_t n, const block_tq1_0 *x, const block_q8_K *y) {
    static const uint8_t k_shift[16] = {1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27};
    const uint8x16_t shift = vld1q_u8(k_shift);
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32x4_t acc = vdupq_n_s32(0);
        const int8_t *q = y[i].qs;
        uint8x16_t a = vld1q_u8(x[i].qs), b = vld1q_u8(x[i].qs + 16);
        uint8x16_t c = vld1q_u8(x[i].qs + 32);
        for (int l = 0; l < 5; l++) {
            acc = vdotq_s32(acc, tq1_digits(a), vld1q_s8(q + 32 * l));
            acc = vdotq_s32(acc, tq1_digits(b), vld1q_s8(q + 32 * l + 16));
            acc = vdotq_s32(acc, tq1_digits(c), vld1q_s8(q + 160 + 16 * l));
            a = vmulq_u8(a, vdupq_n_u8(3));
            b = vmulq_u8(b, vdupq_n_u8(3));
            c = vmulq_u8(c, vdupq_n_u8(3));
        }
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof qh);
        const uint8x16_t h = vmulq_u8(vreinterpretq_u8_u32(vdupq_n_u32(qh)), shift);
        acc = vdotq_s32(acc, tq1_digits(h), vld1q_s8(q + 240));
        const int16x8_t bs = vaddq_s16(vld1q_s16(y[i].bsums), vld1q_s16(y[i].bsums + 8));
        const int32_t isum = vaddvq_s32(vsubq_s32(acc, vpaddlq_s16(bs)));
        const float d = trit_fp16_to_fp32(x[i].d) * y[i].d;
        sumf = fmaf(d, (float)isum, sumf);
    }
    return sumf;
}

/* ggml_vec_dot_f16 of the NEON fp16 build (go_dot_f16_h32's order, with the instructions) */
static float dot_f16_neon(int64_t n, const uint16_t *x, const uint16_t *y) {
    const int64_t np = n & ~(int64_t)31;
    float16x8_t s[4] = {vdupq_n_f16(0), vdupq_n_f16(0), vdupq_n_f16(0), vdupq_n_f16(0)};
    for (int64_t i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            s[j] = vfmaq_f16(s[j], vld1q_f16((const __fp16 *)x + i + 8 * j),
                             vld1q_f16((const __fp16 *)y + i + 8 * j));
    s[0] = vaddq_f16(s[0], s[2]);
    s[1] = vaddq_f16(s[1], s[3]);
    s[0] = vaddq_f16(s[0], s[1]);
    const float32x4_t lo = vcvt_f32_f16(vget_low_f16(s[0])), hi = vcvt_f32_f16(vget_high_f16(s[0]));
    double sum = (double)vaddvq_f32(vaddq_f32(lo, hi));
    for (int64_t i = np; i < n; i++)
        sum += (double)(trit_fp16_to_fp32(x[i]) * trit_fp16_to_fp32(y[i]));
    return (float)sum;
}

static float vec_dot_neon(uint32_t wtype, int64_t n, const void *w, const void *a) {
    const trit_numerics_table *t = trit_numerics_table_get();
    if (wtype == TRIT_TQ2_0 && t->tq_one_acc) return dot_tq2_0_neon(n, w, a);
    if (wtype == TRIT_TQ1_0 && t->tq_one_acc) return dot_tq1_0_neon(n, w, a);
    if (wtype == TRIT_F16 && t->f16_arith) return dot_f16_neon(n, w, a);
    return trit_kernels_ref()->vec_dot(wtype, n, w, a);
}

static void vec_dot_rows_neon(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                              int64_t nr, const void *act, float *out) {
    for (int64_t r = 0; r < nr; r++)
        out[r] = vec_dot_neon(wtype, n, (const char *)w + r * row_bytes, act);
}

/* gemm: TQ1_0/TQ2_0 as vec_dot per (row, token) (its contract for quantized types); the rest
 * the scalar set's (tinyBLAS order for F32/F16). */
static void gemm_neon(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                      const void *act, size_t act_bytes, int64_t nt, float *out, int64_t ldo) {
    if (wtype != TRIT_TQ2_0 && wtype != TRIT_TQ1_0) {
        trit_kernels_ref()->gemm(wtype, n, w, row_bytes, nr, act, act_bytes, nt, out, ldo);
        return;
    }
    for (int64_t t = 0; t < nt; t++)
        vec_dot_rows_neon(wtype, n, w, row_bytes, nr, (const char *)act + t * act_bytes,
                          out + t * ldo);
}

static void quantize_act_neon(uint32_t wtype, const float *x, void *dst, int64_t n) {
    trit_kernels_ref()->quantize_act(wtype, x, dst, n);
}

const trit_kernels trit_kernels_neon_impl = {
    .name = "neon",
    .quantize_act = quantize_act_neon,
    .vec_dot = vec_dot_neon,
    .vec_dot_rows = vec_dot_rows_neon,
    .gemm = gemm_neon,
};

#else
const trit_kernels trit_kernels_neon_impl = {0}; /* not an aarch64 + dotprod + fp16 compile */
#endif
