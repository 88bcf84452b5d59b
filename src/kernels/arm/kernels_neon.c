/* kernels/arm NEON + dotprod — the aarch64 kernel set (issue 20, started).
 *
 * Contract: the TQ2_0 x Q8_K dot in the arm64 numerics table's order (kernels.h; scalar twin
 * trit_ref_dot_tq2_0_one_acc in ref/ref.c), bit for bit: per block, the codes (0..2) times the
 * int8 activations summed exactly with sdot, the block sums subtracted, then one float
 * accumulator, sumf = fma(d, (float)isum, sumf). Every other kernel is the scalar set's.
 * Compiled with -march=armv8.2-a+dotprod on aarch64 targets only (Makefile: files named
 * *_neon.c); only reached after kernels.c has checked HWCAP_ASIMDDP. */
#include "kernels/kernels.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
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

static float vec_dot_neon(uint32_t wtype, int64_t n, const void *w, const void *a) {
    if (wtype == TRIT_TQ2_0 && trit_numerics_table_get()->tq_one_acc)
        return dot_tq2_0_neon(n, w, a);
    return trit_kernels_ref()->vec_dot(wtype, n, w, a);
}

static void vec_dot_rows_neon(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                              int64_t nr, const void *act, float *out) {
    for (int64_t r = 0; r < nr; r++)
        out[r] = vec_dot_neon(wtype, n, (const char *)w + r * row_bytes, act);
}

/* gemm: TQ2_0 as vec_dot per (row, token) (its contract for quantized types); the rest the
 * scalar set's (tinyBLAS order for F32/F16/BF16). */
static void gemm_neon(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                      const void *act, size_t act_bytes, int64_t nt, float *out, int64_t ldo) {
    if (wtype != TRIT_TQ2_0) {
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
const trit_kernels trit_kernels_neon_impl = {0}; /* not an aarch64 + dotprod compile */
#endif
