/* quant/legacy.c — ggml's "legacy" 32-weight block types: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_1.
 *
 * Quantizers follow ggml-quants.c's quantize_row_*_ref operation for operation (same float
 * expressions, same truncating casts, libggml-base is built without FMA so nothing is fused),
 * which is what llama-quantize writes without an importance matrix; tests/unit/test_legacy.c
 * checks them byte for byte against the reference library. Dequantizers follow
 * dequantize_row_* (q * d, or q * d + m). Layouts: quant.h. */
#include "quant/quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 layout");
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 layout");
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 layout");
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 layout");
_Static_assert(sizeof(block_q8_1) == 36, "block_q8_1 layout");

/* min and max of x[0..32), for the affine types (Q4_1, Q5_1). */
static void min_max(const float *x, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static inline uint8_t min_u8(int a, int b) {
    return (uint8_t)(a < b ? a : b);
}

/* quantize_row_q4_0_ref: d = max / -8, q = min(15, (int8)(x / d + 8.5)). */
void trit_quantize_q4_0(const float *x, block_q4_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK4_0; b++, x += QK4_0) {
        const float d = trit_signed_absmax(x, QK4_0, NULL) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = trit_fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const float x0 = x[j] * id, x1 = x[j + QK4_0 / 2] * id;
            const uint8_t q0 = min_u8(15, (int8_t)(x0 + 8.5f));
            const uint8_t q1 = min_u8(15, (int8_t)(x1 + 8.5f));
            y[b].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* quantize_row_q4_1_ref: d = (max - min) / 15, m = min, q = min(15, (int8)((x - min) / d + .5)). */
void trit_quantize_q4_1(const float *x, block_q4_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK4_1; b++, x += QK4_1) {
        float mn, mx;
        min_max(x, &mn, &mx);
        const float d = (mx - mn) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = trit_fp32_to_fp16(d);
        y[b].m = trit_fp32_to_fp16(mn);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const float x0 = (x[j] - mn) * id, x1 = (x[j + QK4_1 / 2] - mn) * id;
            const uint8_t q0 = min_u8(15, (int8_t)(x0 + 0.5f));
            const uint8_t q1 = min_u8(15, (int8_t)(x1 + 0.5f));
            y[b].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* Store 32 five-bit codes (element order) as Q5's nibbles + high-bit word. */
static void pack_q5(const uint8_t q[32], uint8_t qs[16], uint8_t qh_out[4]) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
        qh |= ((q[j] & 0x10u) >> 4) << j;
        qh |= ((q[j + 16] & 0x10u) >> 4) << (j + 16);
    }
    memcpy(qh_out, &qh, sizeof qh); /* little-endian, as ggml's memcpy */
}

/* quantize_row_q5_0_ref: d = max / -16, q = min(31, (int8)(x / d + 16.5)). */
void trit_quantize_q5_0(const float *x, block_q5_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK5_0; b++, x += QK5_0) {
        const float d = trit_signed_absmax(x, QK5_0, NULL) / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = trit_fp32_to_fp16(d);
        uint8_t q[32];
        for (int j = 0; j < QK5_0 / 2; j++) {
            const float x0 = x[j] * id, x1 = x[j + QK5_0 / 2] * id;
            q[j] = min_u8(31, (int8_t)(x0 + 16.5f));
            q[j + 16] = min_u8(31, (int8_t)(x1 + 16.5f));
        }
        pack_q5(q, y[b].qs, y[b].qh);
    }
}

/* quantize_row_q5_1_ref: d = (max - min) / 31, m = min, q = (uint8)((x - min) / d + .5)
 * (no clamp in ggml: a code of 32 keeps only its low bits, as there). */
void trit_quantize_q5_1(const float *x, block_q5_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK5_1; b++, x += QK5_1) {
        float mn, mx;
        min_max(x, &mn, &mx);
        const float d = (mx - mn) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = trit_fp32_to_fp16(d);
        y[b].m = trit_fp32_to_fp16(mn);
        uint8_t q[32];
        for (int j = 0; j < QK5_1 / 2; j++) {
            const float x0 = (x[j] - mn) * id, x1 = (x[j + QK5_1 / 2] - mn) * id;
            q[j] = (uint8_t)(x0 + 0.5f);
            q[j + 16] = (uint8_t)(x1 + 0.5f);
        }
        pack_q5(q, y[b].qs, y[b].qh);
    }
}

/* quantize_row_q8_1_ref: d = amax / 127, q = roundf(x / d), s = sum(q) * d. */
void trit_quantize_q8_1(const float *x, block_q8_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_1; b++, x += QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = trit_fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[b].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[b].qs[j];
        }
        y[b].s = trit_fp32_to_fp16((float)sum * d);
    }
}

/* Code of element j (0..31) of a 4-bit block: low nibbles first, then high nibbles. */
static inline int nibble(const uint8_t qs[16], int j) {
    return j < 16 ? qs[j] & 0x0F : qs[j - 16] >> 4;
}

/* The 5th bit of element j, from Q5's little-endian qh word. */
static inline int high_bit(const uint8_t qh[4], int j) {
    uint32_t h;
    memcpy(&h, qh, sizeof h);
    return (int)((h >> j) & 1u) << 4;
}

void trit_dequantize_q4_0(const block_q4_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK4_0; b++) {
        const float d = trit_fp16_to_fp32(x[b].d);
        for (int j = 0; j < QK4_0; j++) *y++ = (float)(nibble(x[b].qs, j) - 8) * d;
    }
}

void trit_dequantize_q4_1(const block_q4_1 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK4_1; b++) {
        const float d = trit_fp16_to_fp32(x[b].d), m = trit_fp16_to_fp32(x[b].m);
        for (int j = 0; j < QK4_1; j++) *y++ = (float)nibble(x[b].qs, j) * d + m;
    }
}

void trit_dequantize_q5_0(const block_q5_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK5_0; b++) {
        const float d = trit_fp16_to_fp32(x[b].d);
        for (int j = 0; j < QK5_0; j++)
            *y++ = (float)((nibble(x[b].qs, j) | high_bit(x[b].qh, j)) - 16) * d;
    }
}

void trit_dequantize_q5_1(const block_q5_1 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK5_1; b++) {
        const float d = trit_fp16_to_fp32(x[b].d), m = trit_fp16_to_fp32(x[b].m);
        for (int j = 0; j < QK5_1; j++)
            *y++ = (float)(nibble(x[b].qs, j) | high_bit(x[b].qh, j)) * d + m;
    }
}

/* ggml has no Q8_1 dequantizer (it is an activation type); q * d, for tests and tools. */
void trit_dequantize_q8_1(const block_q8_1 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_1; b++) {
        const float d = trit_fp16_to_fp32(x[b].d);
        for (int j = 0; j < QK8_1; j++) *y++ = (float)x[b].qs[j] * d;
    }
}
