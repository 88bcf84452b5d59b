/* quant — tensor element types: sizes, names, quantize and dequantize.
 *
 * Contract: type ids are ggml's (GGUF tensor type field). trit computes with F32 F16 BF16 Q8_0
 * Q4_0 Q4_1 Q5_0 Q5_1 (Q8_1) Q8_K TQ1_0 TQ2_0, the k-quants Q2_K..Q6_K, and I2_S (bitnet.cpp's
 * id 36); every other ggml id is known by name and size (so `trit inspect` and the GGUF validator
 * can describe any file) but has supported=false. Quantization of TQ1_0/TQ2_0/Q8_0/Q4_0/Q4_1/
 * Q5_0/Q5_1/Q2_K..Q6_K is byte-identical to llama.cpp's quantize_row_*_ref (what llama-quantize
 * runs without an imatrix); the legacy types live in legacy.c, the k-quants in kquants.c.
 * Depends on base only. */
#ifndef TRIT_QUANT_H
#define TRIT_QUANT_H

#include "base/base.h"

#include <math.h>
#include <string.h>

enum trit_type {
    TRIT_F32 = 0,
    TRIT_F16 = 1,
    TRIT_Q4_0 = 2,
    TRIT_Q4_1 = 3,
    TRIT_Q5_0 = 6,
    TRIT_Q5_1 = 7,
    TRIT_Q8_0 = 8,
    TRIT_Q8_1 = 9,
    TRIT_Q2_K = 10,
    TRIT_Q3_K = 11,
    TRIT_Q4_K = 12,
    TRIT_Q5_K = 13,
    TRIT_Q6_K = 14,
    TRIT_Q8_K = 15,
    TRIT_BF16 = 30,
    TRIT_TQ1_0 = 34,
    TRIT_TQ2_0 = 35,
    TRIT_I2_S = 36, /* bitnet.cpp: 2-bit codes, 128-weight blocks, one fp32 scale per tensor */
    TRIT_TYPE_COUNT_MAX = 64,
};

typedef struct trit_type_info {
    const char *name; /* "f32", "q8_0", "tq2_0", "i2_s" ... (ggml's names) */
    int64_t blck;     /* elements per block */
    size_t size;      /* bytes per block */
    bool supported;   /* trit can (de)quantize and compute with it */
} trit_type_info;

/* NULL for an id no ggml version defines. */
const trit_type_info *trit_type_get(uint32_t type);
/* Parse "f32", "TQ2_0", ... (case-insensitive); -1 if unknown. */
int trit_type_from_name(const char *name);

/* Bytes of one row of n elements (n must be a multiple of blck; returns 0 otherwise).
 * For I2_S this is n/4 (the per-tensor scale is accounted for by trit_tensor_nbytes). */
size_t trit_row_size(uint32_t type, int64_t n);
/* Bytes of a whole tensor with ne[0] elements per row and nrows rows, as stored in GGUF.
 * I2_S: nrows*ne0/4 packed bytes + 32 bytes (fp32 scale then padding), as bitnet.cpp. */
size_t trit_tensor_nbytes(uint32_t type, int64_t ne0, int64_t nrows);

/* Row-wise conversion for row-quantized types (everything but I2_S).
 * n must be a multiple of the block size. Return 0, or -1 for an unsupported type. */
int trit_quantize_row(uint32_t type, const float *x, void *y, int64_t n);
int trit_dequantize_row(uint32_t type, const void *x, float *y, int64_t n);

/* Whole-tensor conversion (handles I2_S's per-tensor scale; for other types loops rows).
 * y must hold trit_tensor_nbytes(type, ne0, nrows). */
int trit_quantize_tensor(uint32_t type, const float *x, void *y, int64_t ne0, int64_t nrows);
int trit_dequantize_tensor(uint32_t type, const void *x, float *y, int64_t ne0, int64_t nrows);

/* BitNet b1.58's weight rule (absmean), the one rule for every ternary weight trit makes
 * (mkmodel's synthetic models, train's forward pass): s = mean |w| (at least 1e-5, rounded to
 * fp16 because that is what a TQ1_0/TQ2_0 block stores, so the result quantizes exactly),
 * dst[i] = round(clip(src[i] / s, -1, 1)) * s without negative zeros. dst may equal src.
 * Returns s. */
float trit_ternarize_absmean(float *dst, const float *src, size_t n);

/* Block layouts (identical to ggml's). */
#define QK8_0 32
typedef struct {
    uint16_t d; /* fp16 */
    int8_t qs[QK8_0];
} block_q8_0;

/* Legacy 32-weight blocks (ggml-common.h). Element j of a block: j < 16 is the low nibble of
 * qs[j], j >= 16 the high nibble of qs[j - 16]; Q5_*: bit j of qh (little-endian u32) is its
 * 5th bit. Q4_0/Q5_0: w = (q - 8 | q - 16) * d; Q4_1/Q5_1: w = q * d + m. Q8_1 is the
 * activation type of Q4_1/Q5_1 dots: s = d * sum(qs) (fp16). Code: quant/legacy.c. */
#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_1 32
typedef struct {
    uint16_t d; /* fp16 */
    uint8_t qs[QK4_0 / 2];
} block_q4_0;
typedef struct {
    uint16_t d, m; /* fp16 */
    uint8_t qs[QK4_1 / 2];
} block_q4_1;
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} block_q5_0;
typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;
typedef struct {
    uint16_t d, s; /* fp16: scale, d * sum(qs) */
    int8_t qs[QK8_1];
} block_q8_1;

/* quant/legacy.c: row conversions (n a multiple of 32), called by trit_quantize_row /
 * trit_dequantize_row. Quantizers are byte-identical to ggml's quantize_row_*_ref (what
 * llama-quantize writes). trit_quantize_row(TRIT_Q8_1) is quantize_row_q8_1_ref; the x86
 * activation quantizer (nearest-even rounding) is the kernels' quantize_act. */
void trit_quantize_q4_0(const float *x, block_q4_0 *y, int64_t n);
void trit_quantize_q4_1(const float *x, block_q4_1 *y, int64_t n);
void trit_quantize_q5_0(const float *x, block_q5_0 *y, int64_t n);
void trit_quantize_q5_1(const float *x, block_q5_1 *y, int64_t n);
void trit_quantize_q8_1(const float *x, block_q8_1 *y, int64_t n);
void trit_dequantize_q4_0(const block_q4_0 *x, float *y, int64_t n);
void trit_dequantize_q4_1(const block_q4_1 *x, float *y, int64_t n);
void trit_dequantize_q5_0(const block_q5_0 *x, float *y, int64_t n);
void trit_dequantize_q5_1(const block_q5_1 *x, float *y, int64_t n);
void trit_dequantize_q8_1(const block_q8_1 *x, float *y, int64_t n);

#define QK_K 256
typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;

/* k-quants: 256-element super-blocks (ggml-common.h's layouts, field for field). */
#define K_SCALE_SIZE 12
typedef struct {
    uint8_t scales[QK_K / 16]; /* per 16 elements: scale (low nibble), min (high nibble) */
    uint8_t qs[QK_K / 4];      /* 2-bit quants */
    uint16_t d;                /* fp16 super-block scale of the scales */
    uint16_t dmin;             /* fp16 super-block scale of the mins */
} block_q2_K;

typedef struct {
    uint8_t hmask[QK_K / 8]; /* high bit of each 3-bit quant */
    uint8_t qs[QK_K / 4];    /* low 2 bits */
    uint8_t scales[12];      /* 16 6-bit scales (biased by 32) */
    uint16_t d;              /* fp16 super-block scale */
} block_q3_K;

typedef struct {
    uint16_t d;                   /* fp16 super-block scale of the scales */
    uint16_t dmin;                /* fp16 super-block scale of the mins */
    uint8_t scales[K_SCALE_SIZE]; /* 8 6-bit scales and 8 6-bit mins, per 32 elements */
    uint8_t qs[QK_K / 2];         /* 4-bit quants */
} block_q4_K;

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE]; /* as block_q4_K */
    uint8_t qh[QK_K / 8];         /* 5th bit of each quant */
    uint8_t qs[QK_K / 2];         /* low 4 bits */
} block_q5_K;

typedef struct {
    uint8_t ql[QK_K / 2];     /* low 4 bits */
    uint8_t qh[QK_K / 4];     /* high 2 bits */
    int8_t scales[QK_K / 16]; /* 8-bit scales per 16 elements */
    uint16_t d;               /* fp16 super-block scale */
} block_q6_K;

/* The value of x[0..n) with the largest magnitude, signed (the first one on ties, 0 when all
 * are zero): the pivot ggml's symmetric quantizers (Q4_0, Q5_0, Q8_K, make_qx_quants,
 * make_q3_quants, the Q3_K/Q6_K sub-block scales) map to the extreme code so the full negative
 * range is used. *amax, when
 * not NULL, gets its magnitude. */
static inline float trit_signed_absmax(const float *x, int n, float *amax) {
    float a = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > a) { /* strictly larger: an earlier tie stays */
            a = fabsf(x[j]);
            max = x[j];
        }
    }
    if (amax) *amax = a; /* callers that test for an all-zero group want it */
    return max;
}

/* kquants.c: one row of n (a multiple of QK_K) elements, as ggml's quantize_row_qN_K_ref /
 * dequantize_row_qN_K. type is one of TRIT_Q2_K..TRIT_Q6_K; return 0, or -1 for another type. */
int trit_kquant_quantize_row(uint32_t type, const float *x, void *y, int64_t n);
int trit_kquant_dequantize_row(uint32_t type, const void *x, float *y, int64_t n);

typedef struct {
    uint8_t qs[(QK_K - 4 * QK_K / 64) / 5]; /* 5 ternary elements per byte (3^5 = 243 < 256) */
    uint8_t qh[QK_K / 64];                  /* 4 elements per byte */
    uint16_t d;
} block_tq1_0;

typedef struct {
    uint8_t qs[QK_K / 4]; /* 2 bits per element */
    uint16_t d;
} block_tq2_0;

/* I2_S (bitnet.cpp, x86 "ACT_PARALLEL" layout), a whole tensor of n = ne0*nrows weights:
 *   bytes [0, n/4): 128-weight blocks of 32 bytes, in element order. In block b, byte m
 *     (0..31) holds weights 128b+m, +32, +64, +96 in bits 7..6, 5..4, 3..2, 1..0.
 *     Code 0 = -1, 1 = 0, 2 = +1 (3 is never written; decodes as +2).
 *   bytes [n/4, n/4+4): fp32 scale = max |w| over the tensor; then 28 bytes of zero padding.
 *   weight = (code - 1) * scale. Quantizing: |w| < 1e-6 -> 0, otherwise sign(w) (so inputs
 *   must already be ternary times one scale, as BitNet's weights are).
 * ne0 must be a multiple of 128, so each row is whole blocks (row r at byte r*ne0/4).
 * The type table lists I2_S as blck 1 / size 1 like bitnet.cpp's ggml; use trit_row_size. */
#define QK_I2_S 128

/* ---- I2_S <-> TQ2_0 per tensor (quant/convert.c; the file converter is gguf.h's
 * trit_convert_file) ----
 * Exact when the per-tensor fp32 scale is an fp16 value (I2_S -> TQ2_0) or every non-zero
 * TQ2_0 block has the same d (TQ2_0 -> I2_S); otherwise the measured error is reported. */
typedef struct trit_convert_report {
    size_t n_tensors, n_exact; /* tensors converted; of them, without any changed weight */
    size_t n, n_diff;          /* weights converted; of them, changed in value */
    double max_abs_err;        /* worst |converted - original| */
    double max_rel_err;        /* worst |converted - original| / |original| */
    char worst[96];            /* tensor with the worst absolute error (file converter) */
} trit_convert_report;
/* One tensor of ne0 x nrows weights (ne0 a multiple of 256), from -> to being I2_S -> TQ2_0
 * or TQ2_0 -> I2_S; dst holds trit_tensor_nbytes(to, ne0, nrows). r (may be NULL) gets the
 * weights' measured error added. Returns 0 or -1 (err says why). */
int trit_convert_tensor(uint32_t from, uint32_t to, const void *src, void *dst, int64_t ne0,
                        int64_t nrows, trit_convert_report *r, trit_err *err);
/* One line: "N tensors converted to tq2_0, exact (...)" or the worst-case error and why. */
void trit_convert_describe(const trit_convert_report *r, uint32_t to, trit_buf *out);

#endif
