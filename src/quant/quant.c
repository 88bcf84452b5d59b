/* quant.c — the ggml type table, row/tensor sizes, and conversions for the types trit computes
 * with. Quantizers follow ggml-quants.c's *_ref functions operation for operation so their
 * output is byte-identical (rounding: Q8_0 roundf, TQ1_0/TQ2_0 lroundf, Q8_K nearest_int;
 * fp16 scales round to nearest even). I2_S follows bitnet.cpp's x86 quantize_i2_s. */
#include "quant/quant.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

/* Block sizes and bytes per block, as ggml's type_traits (ggml.c, llama.cpp 3.22.1 vintage).
 * 31..33 are the retired Q4_0_4_4/4_8/8_8 repacks (files from older ggml still carry them);
 * 36 is bitnet.cpp's I2_S, whose ggml also lists blck 1 / size 1 and sizes tensors by hand. */
static const trit_type_info types[TRIT_TYPE_COUNT_MAX] = {
    [0] = {"f32", 1, 4, true},          [1] = {"f16", 1, 2, true},
    [2] = {"q4_0", 32, 18, true},       [3] = {"q4_1", 32, 20, true},
    [6] = {"q5_0", 32, 22, true},       [7] = {"q5_1", 32, 24, true},
    [8] = {"q8_0", 32, 34, true},       [9] = {"q8_1", 32, 36, true},
    [10] = {"q2_K", 256, 84, true},     [11] = {"q3_K", 256, 110, true},
    [12] = {"q4_K", 256, 144, true},    [13] = {"q5_K", 256, 176, true},
    [14] = {"q6_K", 256, 210, true},    [15] = {"q8_K", 256, 292, true},
    [16] = {"iq2_xxs", 256, 66, false}, [17] = {"iq2_xs", 256, 74, false},
    [18] = {"iq3_xxs", 256, 98, false}, [19] = {"iq1_s", 256, 50, false},
    [20] = {"iq4_nl", 32, 18, false},   [21] = {"iq3_s", 256, 110, false},
    [22] = {"iq2_s", 256, 82, false},   [23] = {"iq4_xs", 256, 136, false},
    [24] = {"i8", 1, 1, false},         [25] = {"i16", 1, 2, false},
    [26] = {"i32", 1, 4, false},        [27] = {"i64", 1, 8, false},
    [28] = {"f64", 1, 8, false},        [29] = {"iq1_m", 256, 56, false},
    [30] = {"bf16", 1, 2, true},        [31] = {"q4_0_4_4", 32, 18, false},
    [32] = {"q4_0_4_8", 32, 18, false}, [33] = {"q4_0_8_8", 32, 18, false},
    [34] = {"tq1_0", 256, 54, true},    [35] = {"tq2_0", 256, 66, true},
    [36] = {"i2_s", 1, 1, true},        [39] = {"mxfp4", 32, 17, false},
    [40] = {"nvfp4", 64, 36, false},    [41] = {"q1_0", 128, 18, false},
    [42] = {"q2_0", 64, 18, false},
};

_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 layout");
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K layout");
_Static_assert(sizeof(block_tq1_0) == 54, "block_tq1_0 layout");
_Static_assert(sizeof(block_tq2_0) == 66, "block_tq2_0 layout");
_Static_assert(sizeof(block_q2_K) == 84, "block_q2_K layout");
_Static_assert(sizeof(block_q3_K) == 110, "block_q3_K layout");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K layout");
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K layout");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K layout");

const trit_type_info *trit_type_get(uint32_t type) {
    if (type >= TRIT_TYPE_COUNT_MAX || !types[type].name) return NULL;
    return &types[type];
}

int trit_type_from_name(const char *name) {
    if (!name) return -1;
    for (int t = 0; t < TRIT_TYPE_COUNT_MAX; t++) {
        const char *n = types[t].name;
        if (!n) continue;
        size_t i = 0;
        while (n[i] && name[i] && tolower((unsigned char)n[i]) == tolower((unsigned char)name[i]))
            i++;
        if (!n[i] && !name[i]) return t;
    }
    return -1;
}

size_t trit_row_size(uint32_t type, int64_t n) {
    const trit_type_info *ti = trit_type_get(type);
    if (!ti || n < 0) return 0;
    if (type == TRIT_I2_S) return n % QK_I2_S ? 0 : (size_t)n / 4;
    if (n % ti->blck) return 0;
    return (size_t)(n / ti->blck) * ti->size;
}

size_t trit_tensor_nbytes(uint32_t type, int64_t ne0, int64_t nrows) {
    size_t row = trit_row_size(type, ne0);
    if ((!row && ne0) || nrows < 0) return 0;
    if (nrows && row > SIZE_MAX / (size_t)nrows) return 0;
    size_t n = row * (size_t)nrows;
    if (type == TRIT_I2_S) n += 32;
    return n;
}

/* ---- Q8_0 ---- */
static void quantize_q8_0(const float *x, block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = trit_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void dequantize_q8_0(const block_q8_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const float d = trit_fp16_to_fp32(x[b].d);
        for (int j = 0; j < QK8_0; j++) *y++ = x[b].qs[j] * d;
    }
}

/* ---- Q8_K (activations' type for K-quant / ternary dot products) ---- */
static void quantize_q8_K(const float *x, block_q8_K *y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float amax;
        const float max = trit_signed_absmax(x, QK_K, &amax);
        if (!amax) { /* ggml leaves bsums untouched here; trit zeroes them */
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = trit_nearest_int(iscale * x[j]);
            y[b].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += y[b].qs[j * 16 + i];
            y[b].bsums[j] = (int16_t)sum;
        }
        y[b].d = 1 / iscale;
    }
}

static void dequantize_q8_K(const block_q8_K *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++)
        for (int j = 0; j < QK_K; j++) *y++ = x[b].d * x[b].qs[j];
}

/* ---- TQ1_0: 5 trits per byte in qs (base-3, stored as ceil(q * 256 / 243)), 4 in qh ---- */

/* Pack n trits (each x*id rounded, in -1..1) read with the given stride into one byte. */
static inline uint8_t tq1_pack(const float *x, size_t stride, int n, float id, int pad) {
    uint8_t q = 0;
    for (int k = 0; k < n; k++) {
        int t = (int)lroundf(x[k * stride] * id) + 1; /* -1,0,1 -> 0,1,2 */
        q = (uint8_t)(q * 3 + t);
    }
    for (int k = 0; k < pad; k++) q = (uint8_t)(q * 3);
    return (uint8_t)(((uint16_t)q * 256 + 242) / 243);
}

static void quantize_tq1_0(const float *x, block_tq1_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = trit_fp32_to_fp16(d);
        /* qs[0..32): elements m + 32*k (k = 0..4) of the first 160 */
        for (size_t m = 0; m < 32; m++) y[b].qs[m] = tq1_pack(x + m, 32, 5, id, 0);
        x += 160;
        /* qs[32..48): elements m + 16*k of the next 80 */
        for (size_t m = 0; m < 16; m++) y[b].qs[32 + m] = tq1_pack(x + m, 16, 5, id, 0);
        x += 80;
        /* qh[0..4): elements j + 4*k (k = 0..3) of the last 16, first one most significant */
        for (size_t j = 0; j < 4; j++) y[b].qh[j] = tq1_pack(x + j, 4, 4, id, 1);
        x += 16;
    }
}

static inline float tq1_trit(uint8_t byte, int k) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    uint8_t q = (uint8_t)(byte * pow3[k]);
    return (float)((((uint16_t)q * 3) >> 8) - 1);
}

static void dequantize_tq1_0(const block_tq1_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = trit_fp16_to_fp32(x[b].d);
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 32; m++) *y++ = tq1_trit(x[b].qs[m], k) * d;
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 16; m++) *y++ = tq1_trit(x[b].qs[32 + m], k) * d;
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++) *y++ = tq1_trit(x[b].qh[j], k) * d;
    }
}

/* ---- TQ2_0: 2-bit codes (t+1), byte 32*g + m holds elements 128*g + m + 32*k at bits 2k ---- */
static void quantize_tq2_0(const float *x, block_tq2_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = trit_fp32_to_fp16(d);
        for (size_t g = 0; g < 2; g++, x += 128) {
            for (size_t m = 0; m < 32; m++) {
                uint8_t q = 0;
                for (int k = 0; k < 4; k++) {
                    int t = (int)lroundf(x[m + 32 * k] * id) + 1;
                    q = (uint8_t)(q + ((t & 3) << (2 * k)));
                }
                y[b].qs[32 * g + m] = q;
            }
        }
    }
}

static void dequantize_tq2_0(const block_tq2_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = trit_fp16_to_fp32(x[b].d);
        for (int g = 0; g < 2; g++)
            for (int k = 0; k < 4; k++)
                for (int m = 0; m < 32; m++)
                    *y++ = (float)(((x[b].qs[32 * g + m] >> (2 * k)) & 3) - 1) * d;
    }
}

int trit_quantize_row(uint32_t type, const float *x, void *y, int64_t n) {
    const trit_type_info *ti = trit_type_get(type);
    if (!ti || !ti->supported || type == TRIT_I2_S || n < 0 || n % ti->blck) return -1;
    switch (type) {
    case TRIT_F32:
        memcpy(y, x, (size_t)n * sizeof(float));
        return 0;
    case TRIT_F16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)y)[i] = trit_fp32_to_fp16(x[i]);
        return 0;
    case TRIT_BF16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)y)[i] = trit_fp32_to_bf16(x[i]);
        return 0;
    case TRIT_Q8_0:
        quantize_q8_0(x, y, n);
        return 0;
    case TRIT_Q4_0: /* legacy 32-weight types: quant/legacy.c */
        trit_quantize_q4_0(x, y, n);
        return 0;
    case TRIT_Q4_1:
        trit_quantize_q4_1(x, y, n);
        return 0;
    case TRIT_Q5_0:
        trit_quantize_q5_0(x, y, n);
        return 0;
    case TRIT_Q5_1:
        trit_quantize_q5_1(x, y, n);
        return 0;
    case TRIT_Q8_1:
        trit_quantize_q8_1(x, y, n);
        return 0;
    case TRIT_Q8_K:
        quantize_q8_K(x, y, n);
        return 0;
    case TRIT_TQ1_0:
        quantize_tq1_0(x, y, n);
        return 0;
    case TRIT_TQ2_0:
        quantize_tq2_0(x, y, n);
        return 0;
    case TRIT_Q2_K:
    case TRIT_Q3_K:
    case TRIT_Q4_K:
    case TRIT_Q5_K:
    case TRIT_Q6_K:
        return trit_kquant_quantize_row(type, x, y, n);
    }
    return -1;
}

int trit_dequantize_row(uint32_t type, const void *x, float *y, int64_t n) {
    const trit_type_info *ti = trit_type_get(type);
    if (!ti || !ti->supported || type == TRIT_I2_S || n < 0 || n % ti->blck) return -1;
    switch (type) {
    case TRIT_F32:
        memcpy(y, x, (size_t)n * sizeof(float));
        return 0;
    case TRIT_F16:
        for (int64_t i = 0; i < n; i++) y[i] = trit_fp16_to_fp32(((const uint16_t *)x)[i]);
        return 0;
    case TRIT_BF16:
        for (int64_t i = 0; i < n; i++) y[i] = trit_bf16_to_fp32(((const uint16_t *)x)[i]);
        return 0;
    case TRIT_Q8_0:
        dequantize_q8_0(x, y, n);
        return 0;
    case TRIT_Q4_0: /* legacy 32-weight types: quant/legacy.c */
        trit_dequantize_q4_0(x, y, n);
        return 0;
    case TRIT_Q4_1:
        trit_dequantize_q4_1(x, y, n);
        return 0;
    case TRIT_Q5_0:
        trit_dequantize_q5_0(x, y, n);
        return 0;
    case TRIT_Q5_1:
        trit_dequantize_q5_1(x, y, n);
        return 0;
    case TRIT_Q8_1:
        trit_dequantize_q8_1(x, y, n);
        return 0;
    case TRIT_Q8_K:
        dequantize_q8_K(x, y, n);
        return 0;
    case TRIT_TQ1_0:
        dequantize_tq1_0(x, y, n);
        return 0;
    case TRIT_TQ2_0:
        dequantize_tq2_0(x, y, n);
        return 0;
    case TRIT_Q2_K:
    case TRIT_Q3_K:
    case TRIT_Q4_K:
    case TRIT_Q5_K:
    case TRIT_Q6_K:
        return trit_kquant_dequantize_row(type, x, y, n);
    }
    return -1;
}

/* ---- I2_S (bitnet.cpp, x86 layout) ----
 * Code per weight: 0 -> -1, 1 -> 0, 2 -> +1 (3 is never written). Within each 128-weight block
 * (32 bytes), byte m holds weights m, m+32, m+64, m+96 at bits 7..6, 5..4, 3..2, 1..0. The scale
 * is max|w| over the whole tensor (as bitnet.cpp: computed in double, stored as fp32); a weight
 * with |w| < 1e-6 is 0, any other is its sign. */
static void quantize_i2_s(const float *x, uint8_t *y, int64_t n) {
    double max = 0;
    for (int64_t i = 0; i < n; i++) max = fmax(max, fabs((double)x[i]));
    memset(y, 0, (size_t)n / 4 + 32);
    for (int64_t b = 0; b < n / QK_I2_S; b++) {
        for (int j = 0; j < QK_I2_S; j++) {
            const double v = x[b * QK_I2_S + j];
            uint8_t q = fabs(v) < 1e-6 ? 1 : (v * max > 0 ? 2 : 0);
            y[b * 32 + j % 32] |= (uint8_t)(q << (6 - 2 * (j / 32)));
        }
    }
    const float s = (float)max;
    memcpy(y + n / 4, &s, sizeof s);
}

static void dequantize_i2_s(const uint8_t *x, float *y, int64_t n) {
    float s;
    memcpy(&s, x + n / 4, sizeof s);
    for (int64_t b = 0; b < n / QK_I2_S; b++)
        for (int j = 0; j < QK_I2_S; j++) {
            int q = (x[b * 32 + j % 32] >> (6 - 2 * (j / 32))) & 3;
            y[b * QK_I2_S + j] = (float)(q - 1) * s;
        }
}

static bool tensor_ok(uint32_t type, int64_t ne0, int64_t nrows) {
    const trit_type_info *ti = trit_type_get(type);
    return ti && ti->supported && ne0 > 0 && nrows >= 0 && trit_row_size(type, ne0) > 0;
}

int trit_quantize_tensor(uint32_t type, const float *x, void *y, int64_t ne0, int64_t nrows) {
    if (!tensor_ok(type, ne0, nrows)) return -1;
    if (type == TRIT_I2_S) {
        quantize_i2_s(x, y, ne0 * nrows);
        return 0;
    }
    const size_t rs = trit_row_size(type, ne0);
    for (int64_t r = 0; r < nrows; r++)
        if (trit_quantize_row(type, x + r * ne0, (uint8_t *)y + r * rs, ne0)) return -1;
    return 0;
}

int trit_dequantize_tensor(uint32_t type, const void *x, float *y, int64_t ne0, int64_t nrows) {
    if (!tensor_ok(type, ne0, nrows)) return -1;
    if (type == TRIT_I2_S) {
        dequantize_i2_s(x, y, ne0 * nrows);
        return 0;
    }
    const size_t rs = trit_row_size(type, ne0);
    for (int64_t r = 0; r < nrows; r++)
        if (trit_dequantize_row(type, (const uint8_t *)x + r * rs, y + r * ne0, ne0)) return -1;
    return 0;
}

/* Sum in double over the whole tensor (the order does not matter at this precision for the
 * sizes trit makes, and double keeps the mean independent of n's magnitude); the fp16
 * rounding of s comes before the divisions so every level is an exact multiple of it. */
float trit_ternarize_absmean(float *dst, const float *src, size_t n) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += fabs((double)src[i]);
    float s = n ? (float)(sum / (double)n) : 0.0f;
    if (s < 1e-5f) s = 1e-5f;
    s = trit_fp16_to_fp32(trit_fp32_to_fp16(s));
    for (size_t i = 0; i < n; i++) {
        float q = roundf(src[i] / s);
        q = q > 1.0f ? 1.0f : q < -1.0f ? -1.0f : q;
        dst[i] = q * s + 0.0f; /* + 0.0f: no negative zeros */
    }
    return s;
}
