/* kernels/ref/ggml_order.h — the reference llama.cpp's summation orders, in plain C.
 *
 * The reference is ggml's CPU backend built for x86 with AVX-512 (F/BW/VL/DQ/VNNI), FMA and
 * F16C, GCC, -ffp-contract=fast (scripts/reference). A float sum depends on its order, and the
 * fp16 accumulators of ggml's attention turn a one-ulp difference into a 1e-3 one, so trit
 * reproduces each order exactly (bit-identical results, checked against the real ggml
 * functions by tests/unit/test_kernels.c when the reference is built):
 *   lanes64  ggml_vec_dot_f32 / ggml_vec_dot_f16: four 16-lane fma accumulators over steps of
 *            64 elements (element i goes to accumulator (i/16)%4, lane i%16), reduced
 *            a0+a2, a1+a3, then (a0+a2)+(a1+a3), then _mm512_reduce_add_ps; the n%64 tail is
 *            added afterwards (f32: fma into a float, f16: products added in double).
 *   lanes16  llamafile tinyBLAS (F32/F16 weights, >= 2 tokens): one 16-lane fma accumulator,
 *            then _mm512_reduce_add_ps (n % 16 == 0 required by tinyBLAS).
 *   reduce16 GCC's _mm512_reduce_add_ps: 8 + 8, 4 + 4, then (0+2) + (1+3).
 *   reduce8  ggml's hsum_float_8 (AVX2 quant dots): 4 + 4, then (0+2) + (1+3).
 *   v_expf   ggml_v_expf (AVX-512 polynomial exp used by softmax and SiLU), scalar. */
#ifndef TRIT_KERNELS_GGML_ORDER_H
#define TRIT_KERNELS_GGML_ORDER_H

#include "base/base.h"

#include <math.h>
#include <string.h>

static inline float go_reduce16(const float a[16]) {
    float t[8], u[4];
    for (int i = 0; i < 8; i++) t[i] = a[i + 8] + a[i];
    for (int i = 0; i < 4; i++) u[i] = t[i + 4] + t[i];
    return (u[0] + u[2]) + (u[1] + u[3]);
}

static inline float go_reduce8(const float a[8]) {
    float u[4];
    for (int i = 0; i < 4; i++) u[i] = a[i + 4] + a[i];
    return (u[0] + u[2]) + (u[1] + u[3]);
}

/* The n % 64 tail of ggml_vec_dot_f32 (`sumf += x[i]*y[i]` as GCC compiled it): whole groups
 * of 16, then one group of 8, are multiplied as vectors and added one by one; the last < 8
 * elements are fused multiply-adds. */
static inline float go_f32_tail(float sum, int64_t i, int64_t n, const float *x, const float *y) {
    const int64_t m = n - i;
    const int64_t plain = (m >= 16 ? m & ~(int64_t)15 : 0) + (m % 16 >= 8 ? 8 : 0);
    for (int64_t e = i + plain; i < e; i++) {
        const float p = x[i] * y[i];
        sum = sum + p;
    }
    for (; i < n; i++) sum = fmaf(x[i], y[i], sum);
    return sum;
}

/* lanes64's four 16-lane accumulators folded as ggml does ((0+2) + (1+3)), then reduced */
static inline float go_fold64(float a[4][16]) {
    for (int l = 0; l < 16; l++) {
        a[0][l] = a[0][l] + a[2][l];
        a[1][l] = a[1][l] + a[3][l];
        a[0][l] = a[0][l] + a[1][l];
    }
    return go_reduce16(a[0]);
}

/* lanes64's whole-64 part: the fma chains over x[0, np) . y, np = n rounded down to 64 */
static inline float go_lanes64_body(int64_t np, const float *x, const float *y) {
    float a[4][16];
    memset(a, 0, sizeof a);
    for (int64_t i = 0; i < np; i += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++)
                a[j][l] = fmaf(x[i + 16 * j + l], y[i + 16 * j + l], a[j][l]);
    return go_fold64(a);
}

/* ggml_vec_dot_f32 */
static inline float go_dot_f32_lanes64(int64_t n, const float *x, const float *y) {
    const int64_t np = n & ~(int64_t)63;
    return go_f32_tail(go_lanes64_body(np, x, y), np, n, x, y);
}

/* ggml_vec_dot_f16 (operands already converted to float; they are exact fp16 values) */
static inline float go_dot_f16_lanes64(int64_t n, const float *x, const float *y) {
    const int64_t np = n & ~(int64_t)63;
    double sum = (double)go_lanes64_body(np, x, y);
    for (int64_t i = np; i < n; i++) sum += (double)(x[i] * y[i]);
    return (float)sum;
}

/* tinyBLAS: one 16-lane accumulator (n % 16 == 0) */
static inline float go_dot_lanes16(int64_t n, const float *x, const float *y) {
    float a[16] = {0};
    for (int64_t i = 0; i < n; i += 16)
        for (int l = 0; l < 16; l++) a[l] = fmaf(x[i + l], y[i + l], a[l]);
    return go_reduce16(a);
}

/* ggml_v_expf (AVX-512 build), one lane */
static inline float go_v_expf(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    const float u = b * b;
    const float j = fmaf(
        fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
        u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    /* _mm512_scalef_ps(j, n), n integral: one rounding, as a product with 2^n */
    const int e = (int)n;
    if (e < -126 || e > 127) return ldexpf(j, e);
    const uint32_t bits = (uint32_t)(e + 127) << 23;
    float p2;
    memcpy(&p2, &bits, 4);
    return j * p2;
}

/* ggml_v_silu: x / (1 + v_expf(0 - x)) */
static inline float go_v_silu(float x) {
    return x / (1.0f + go_v_expf(0.0f - x));
}

#endif
