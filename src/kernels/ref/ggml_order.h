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
 *   v_expf   ggml_v_expf (AVX-512 polynomial exp used by softmax and SiLU), scalar.
 * The AVX2-only build (scripts/reference TRIT_REF_SET=avx2, the "avx2" numerics table,
 * kernels.h) sums in other orders, each below with a _w / 8 form:
 *   lanes32  ggml_vec_dot_f32 / f16 with GGML_F32_EPR 8: four 8-lane accumulators over steps
 *            of 32, folded (0+2) + (1+3), then GGML_F32x8_REDUCE's hadd: (l0+l4) + (l1+l5)
 *            first, ((0+4) + (1+5)) + ((2+6) + (3+7)) (go_reduce8_hadd); the f32 tail is
 *            go_f32_tail8 (groups of 8, one of 4, then fma), the f16 one in double as above.
 *   lanes8   tinyBLAS<8>: one 8-lane fma accumulator, then hsum (= reduce8), n % 8 == 0.
 *   v_expf8  the AVX2 ggml_v_expf: 2^n from z's bits, j without the 1, result fma(j, k, k).
 * The aarch64 build (TRIT_REF_SET=arm64: NEON, dotprod, FP16 vector arithmetic; the "arm64"
 * table) has GGML_F32_EPR 4 and does its F16 arithmetic in fp16 (simd-mappings.h, sgemm.cpp):
 *   lanes16  ggml_vec_dot_f32: four 4-lane accumulators over steps of 16, folded (0+2),
 *            (1+3), then (0+1), then vaddvq_f32 = (l0+l1) + (l2+l3) (go_reduce4); the tail as
 *            GCC vectorized it (go_dot_f32_lanes16).
 *   h32      ggml_vec_dot_f16: four 8-lane *fp16* accumulators over steps of 32 (vfmaq_f16:
 *            one rounding to fp16 per fma), folded in fp16 as lanes16, then the 8 fp16 lanes
 *            widened, low + high half, vaddvq_f32; the tail in double as on x86.
 *   blas4    tinyBLAS<4> (F32 weights, >= 4 tokens): one 4-lane fma accumulator, go_reduce4.
 *   blash8   tinyBLAS<8, float16x8_t> (F16 weights, >= 8 tokens): one 8-lane fp16
 *            accumulator, then as h32's last step.
 *   v_expf4  the NEON ggml_v_expf: lane for lane the AVX2 form (v_expf8), 4 lanes at a time.
 * go_fma_h / go_add_h / go_mul_h are fp16 arithmetic in plain C: the exact result rounded once
 * to fp16 (nearest even), what the NEON fp16 instructions do. */
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

/* GGML_F32x8_REDUCE's last step (AVX2 build): low + high half, then two hadds */
static inline float go_reduce8_hadd(const float a[8]) {
    float t[4];
    for (int i = 0; i < 4; i++) t[i] = a[i] + a[i + 4];
    return (t[0] + t[1]) + (t[2] + t[3]);
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

/* The n % 32 tail of ggml_vec_dot_f32 as GCC compiled it for AVX2 only: whole groups of 8,
 * then one group of 4, multiplied as vectors and added one by one; the last < 4 elements are
 * fused multiply-adds. */
static inline float go_f32_tail8(float sum, int64_t i, int64_t n, const float *x, const float *y) {
    const int64_t m = n - i;
    const int64_t plain = (m & ~(int64_t)7) + ((m & 7) >= 4 ? 4 : 0);
    for (int64_t e = i + plain; i < e; i++) {
        const float p = x[i] * y[i];
        sum = sum + p;
    }
    for (; i < n; i++) sum = fmaf(x[i], y[i], sum);
    return sum;
}

/* lanes32's whole-32 part (AVX2 build): the fma chains over x[0, np) . y, np = n & ~31 */
static inline float go_lanes32_body(int64_t np, const float *x, const float *y) {
    float a[4][8];
    memset(a, 0, sizeof a);
    for (int64_t i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 8; l++) a[j][l] = fmaf(x[i + 8 * j + l], y[i + 8 * j + l], a[j][l]);
    for (int l = 0; l < 8; l++) {
        a[0][l] = a[0][l] + a[2][l];
        a[1][l] = a[1][l] + a[3][l];
        a[0][l] = a[0][l] + a[1][l];
    }
    return go_reduce8_hadd(a[0]);
}

/* ggml_vec_dot_f32 of a build with w float lanes (16: AVX-512, 8: AVX2) */
static inline float go_dot_f32_lanes16(int64_t n, const float *x, const float *y);
static inline float go_dot_f32_w(int w, int64_t n, const float *x, const float *y) {
    if (w == 16) return go_dot_f32_lanes64(n, x, y);
    if (w == 4) return go_dot_f32_lanes16(n, x, y);
    const int64_t np = n & ~(int64_t)31;
    return go_f32_tail8(go_lanes32_body(np, x, y), np, n, x, y);
}

/* ggml_vec_dot_f16 of a build with w float lanes (operands exact fp16 values as floats; 4:
 * the arm64 build, fp16 accumulators) */
static inline float go_dot_f16_h32(int64_t n, const float *x, const float *y);
static inline float go_dot_f16_w(int w, int64_t n, const float *x, const float *y) {
    if (w == 16) return go_dot_f16_lanes64(n, x, y);
    if (w == 4) return go_dot_f16_h32(n, x, y);
    const int64_t np = n & ~(int64_t)31;
    double sum = (double)go_lanes32_body(np, x, y);
    for (int64_t i = np; i < n; i++) sum += (double)(x[i] * y[i]);
    return (float)sum;
}

/* tinyBLAS<w>: one w-lane accumulator (n % w == 0), then hsum (reduce16 / reduce8) */
static inline float go_dot_blas_w(int w, int64_t n, const float *x, const float *y) {
    if (w == 16) return go_dot_lanes16(n, x, y);
    float a[8] = {0};
    for (int64_t i = 0; i < n; i += 8)
        for (int l = 0; l < 8; l++) a[l] = fmaf(x[i + l], y[i + l], a[l]);
    return go_reduce8(a);
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

static inline float go_from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* ggml_v_expf (AVX2 build, vec.h's __m256 form), one lane: the same reduction and polynomial
 * but j leaves out the leading 1 and 2^n comes from z's bits, so the result is fma(j, k, k);
 * |n| > 126 takes the two-factor scaling (s1, s2), |n| > 192 gives s1 * s1 (0 or infinity). */
static inline float go_v_expf8(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    uint32_t zb;
    memcpy(&zb, &z, 4);
    const uint32_t e = zb << 23;
    const float k = go_from_bits(e + 0x3f800000u);
    const float u = b * b;
    const float j = fmaf(
        fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
        u, 0x1.ffffecp-1f * b);
    if (!(fabsf(n) > 126.0f)) return fmaf(j, k, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = go_from_bits(g + 0x7f000000u), s2 = go_from_bits(e - g);
    if (fabsf(n) > 192.0f) return s1 * s1;
    return fmaf(s2, j, s2) * s1;
}

/* ggml_v_expf / ggml_v_silu of a build with w float lanes (4: NEON, the v_expf8 form) */
static inline float go_v_expf_w(int w, float x) {
    return w == 16 ? go_v_expf(x) : go_v_expf8(x);
}
static inline float go_v_silu_w(int w, float x) {
    return x / (1.0f + go_v_expf_w(w, 0.0f - x));
}

/* ---- the arm64 build's orders (NEON, 4 float lanes, fp16 arithmetic) ---- */

/* vaddvq_f32: pairwise, (l0 + l1) + (l2 + l3) */
static inline float go_reduce4(const float a[4]) {
    return (a[0] + a[1]) + (a[2] + a[3]);
}

/* f rounded to the nearest fp16 value (ties to even), as a float */
static inline float go_h(float f) {
    return trit_fp16_to_fp32(trit_fp32_to_fp16(f));
}

/* a * b + c rounded once to fp16 (vfmaq_f16), for fp16 values a, b, c. a * b is exact in a
 * float (11 + 11 significant bits); s + e == a * b + c exactly (TwoSum). Rounding s to fp16
 * is the answer unless s lies exactly halfway between two fp16 values and e != 0: then the
 * exact value is past the midpoint on e's side. o, the other neighbour, is an fp16 value
 * exactly when s is such a midpoint. */
static inline float go_fma_h(float a, float b, float c) {
    const float p = a * b, s = p + c;
    const float bp = s - c, e = (p - bp) + (c - (s - bp));
    const float r = go_h(s);
    if (e == 0.0f || r == s) return r;
    const float d = s - r, o = r + 2.0f * d;
    if (go_h(o) != o) return r;
    return (e > 0.0f) == (d > 0.0f) ? o : r;
}

/* a + b in fp16 (vaddq_f16) */
static inline float go_add_h(float a, float b) {
    return go_fma_h(a, 1.0f, b);
}

/* a * b in fp16 (vmulq_f16): the float product is exact, one rounding */
static inline float go_mul_h(float a, float b) {
    return go_h(a * b);
}

/* ggml_vec_dot_f32, 4 lanes: the whole-16 part (np = n & ~15) folded and reduced */
static inline float go_lanes16_body(int64_t np, const float *x, const float *y) {
    float a[4][4];
    memset(a, 0, sizeof a);
    for (int64_t i = 0; i < np; i += 16)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 4; l++) a[j][l] = fmaf(x[i + 4 * j + l], y[i + 4 * j + l], a[j][l]);
    for (int l = 0; l < 4; l++) {
        a[0][l] = a[0][l] + a[2][l];
        a[1][l] = a[1][l] + a[3][l];
        a[0][l] = a[0][l] + a[1][l];
    }
    return go_reduce4(a[0]);
}

/* The tail as GCC compiled it for aarch64 (checked in build-arm64's libggml-cpu): with 4 or
 * more left, whole groups of 4 multiplied as a vector and added one by one, then the last < 4
 * as fmas; with 3 or fewer, fmas only. */
static inline float go_dot_f32_lanes16(int64_t n, const float *x, const float *y) {
    const int64_t np = n & ~(int64_t)15, m = n - np;
    float sum = go_lanes16_body(np, x, y);
    int64_t i = np;
    for (const int64_t e = np + (m >= 4 ? m & ~(int64_t)3 : 0); i < e; i++) {
        const float p = x[i] * y[i];
        sum = sum + p;
    }
    for (; i < n; i++) sum = fmaf(x[i], y[i], sum);
    return sum;
}

/* GGML_F16x8_REDUCE's last step: 8 fp16 lanes widened, low + high half, vaddvq_f32 */
static inline float go_reduce_h8(const float a[8]) {
    float u[4];
    for (int l = 0; l < 4; l++) u[l] = a[l] + a[l + 4];
    return go_reduce4(u);
}

/* ggml_vec_dot_f16 with fp16 vector arithmetic (operands exact fp16 values as floats) */
static inline float go_dot_f16_h32(int64_t n, const float *x, const float *y) {
    const int64_t np = n & ~(int64_t)31;
    float a[4][8];
    memset(a, 0, sizeof a);
    for (int64_t i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 8; l++)
                a[j][l] = go_fma_h(x[i + 8 * j + l], y[i + 8 * j + l], a[j][l]);
    for (int l = 0; l < 8; l++) {
        a[0][l] = go_add_h(a[0][l], a[2][l]);
        a[1][l] = go_add_h(a[1][l], a[3][l]);
        a[0][l] = go_add_h(a[0][l], a[1][l]);
    }
    double sum = (double)go_reduce_h8(a[0]);
    for (int64_t i = np; i < n; i++) sum += (double)(x[i] * y[i]);
    return (float)sum;
}

/* tinyBLAS<8, float16x8_t>: one 8-lane fp16 accumulator (n % 8 == 0) */
static inline float go_dot_blas_h8(int64_t n, const float *x, const float *y) {
    float a[8] = {0};
    for (int64_t i = 0; i < n; i += 8)
        for (int l = 0; l < 8; l++) a[l] = go_fma_h(x[i + l], y[i + l], a[l]);
    return go_reduce_h8(a);
}

/* tinyBLAS<4, float32x4_t>: one 4-lane fma accumulator (n % 4 == 0) */
static inline float go_dot_blas4(int64_t n, const float *x, const float *y) {
    float a[4] = {0};
    for (int64_t i = 0; i < n; i += 4)
        for (int l = 0; l < 4; l++) a[l] = fmaf(x[i + l], y[i + l], a[l]);
    return go_reduce4(a);
}

#endif
