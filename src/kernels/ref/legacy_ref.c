/* kernels/ref/legacy_ref.c — scalar reference kernels for the legacy 32-weight types:
 * the Q8_1 activation quantizer and the Q4_0/Q5_0 x Q8_0, Q4_1/Q5_1 x Q8_1 dot products.
 *
 * Orders (the reference's x86 AVX2/AVX-512 build, ggml-cpu/arch/x86/quants.c):
 *   Q8_1 activations = quantize_row_q8_1 (x86): d = amax/127, id = 127/amax, q rounded half
 *     to even, s = fp16(d * sum(q)). (quantize_row_q8_1_ref differs: id = 1/d, roundf.)
 *   vec_dot: eight float lanes; lane L of a block is the integer sum over its elements
 *     4L..4L+3 (element order, weight codes in the type's own range), acc[L] =
 *     fma(wd * ad, lane, acc[L]), total = hsum_float_8 (go_reduce8). Q4_1/Q5_1 add
 *     summs = fma(wm, as, summs) over the blocks (as GCC fused `summs += m * s`) after
 *     the reduction. llamafile's tinyBLAS_Q0_AVX (batched Q4_0/Q5_0/Q8_0) sums each output
 *     in exactly this order (per block fma of da*db into 8 lanes, then the same hsum), so
 *     batches use vec_dot too.
 *   Q4_0 "repacked" (Q4_0 | TRIT_REPACK8): the reference's CPU_REPACK buffer turns every 2-D Q4_0
 *     matmul weight with a multiple of 8 rows into block_q4_0x8 (x86: AVX2 present) and
 *     computes with ggml_gemv/gemm_q4_0_8x8_q8_0: one float per output, acc =
 *     fma((float)block_isum, wd * ad, acc) block after block, no lanes, no reduction.
 * Integer sums are exact; every float operation above is reproduced in the same order. */
#include "kernels/kernels.h"
#include "kernels/ref/ggml_order.h"

#include <math.h>
#include <string.h>

void trit_ref_quantize_q8_1(const float *x, block_q8_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_1; b++, x += QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.f;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        y[b].d = trit_fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[b].qs[j] = (int8_t)nearbyintf(x[j] * id);
            sum += y[b].qs[j];
        }
        y[b].s = trit_fp32_to_fp16(d * (float)sum);
    }
}

/* The 32 weight codes of one block in element order, as the dot kernels see them: Q4_0
 * q - 8, Q5_0 q - 16 (signed), Q4_1/Q5_1 q (unsigned, the minimum is applied via summs). */
static void block_codes(uint32_t wtype, const void *blk, int8_t q[32]) {
    const uint8_t *qs, *qh = NULL;
    int off = 0;
    switch (wtype) {
    case TRIT_Q4_0:
        qs = ((const block_q4_0 *)blk)->qs;
        off = 8;
        break;
    case TRIT_Q4_1:
        qs = ((const block_q4_1 *)blk)->qs;
        break;
    case TRIT_Q5_0:
        qs = ((const block_q5_0 *)blk)->qs;
        qh = ((const block_q5_0 *)blk)->qh;
        off = 16;
        break;
    default: /* TRIT_Q5_1 */
        qs = ((const block_q5_1 *)blk)->qs;
        qh = ((const block_q5_1 *)blk)->qh;
        break;
    }
    uint32_t h = 0;
    if (qh) memcpy(&h, qh, sizeof h);
    for (int j = 0; j < 32; j++) {
        int v = j < 16 ? qs[j] & 0x0F : qs[j - 16] >> 4;
        v |= (int)((h >> j) & 1u) << 4;
        q[j] = (int8_t)(v - off);
    }
}

/* Bytes per weight block and the fp16 scale (and min, 0 if none) of block i. */
static size_t block_bytes(uint32_t wtype) {
    switch (wtype) {
    case TRIT_Q4_0:
        return sizeof(block_q4_0);
    case TRIT_Q4_1:
        return sizeof(block_q4_1);
    case TRIT_Q5_0:
        return sizeof(block_q5_0);
    default:
        return sizeof(block_q5_1);
    }
}

/* Every legacy block starts with its fp16 d; Q4_1/Q5_1 follow it with fp16 m. */
static uint16_t block_d(const void *blk) {
    uint16_t d;
    memcpy(&d, blk, sizeof d);
    return d;
}
static uint16_t block_m(const void *blk) {
    uint16_t m;
    memcpy(&m, (const uint8_t *)blk + 2, sizeof m);
    return m;
}

float trit_ref_dot_legacy(uint32_t wtype, int64_t n, const void *w, const void *act) {
    const bool affine = wtype == TRIT_Q4_1 || wtype == TRIT_Q5_1;
    const size_t wb = block_bytes(wtype);
    float acc[8] = {0}, summs = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        const void *blk = (const uint8_t *)w + i * wb;
        int8_t q[32];
        block_codes(wtype, blk, q);
        const int8_t *a;
        float ad;
        if (affine) {
            const block_q8_1 *y = (const block_q8_1 *)act + i;
            a = y->qs;
            ad = trit_fp16_to_fp32(y->d);
            summs = fmaf(trit_fp16_to_fp32(block_m(blk)), trit_fp16_to_fp32(y->s), summs);
        } else {
            const block_q8_0 *y = (const block_q8_0 *)act + i;
            a = y->qs;
            ad = trit_fp16_to_fp32(y->d);
        }
        const float d = trit_fp16_to_fp32(block_d(blk)) * ad;
        for (int L = 0; L < 8; L++) {
            int lane = 0;
            for (int j = 4 * L; j < 4 * L + 4; j++) lane += q[j] * a[j];
            acc[L] = fmaf(d, (float)lane, acc[L]);
        }
    }
    const float sum = go_reduce8(acc);
    return affine ? sum + summs : sum;
}

float trit_ref_dot_q4_0_r8(int64_t n, const block_q4_0 *w, const block_q8_0 *act) {
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int8_t q[32];
        block_codes(TRIT_Q4_0, &w[i], q);
        int isum = 0;
        for (int j = 0; j < 32; j++) isum += q[j] * act[i].qs[j];
        acc = fmaf((float)isum, trit_fp16_to_fp32(w[i].d) * trit_fp16_to_fp32(act[i].d), acc);
    }
    return acc;
}
