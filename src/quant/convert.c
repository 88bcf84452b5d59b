/* convert.c — I2_S (bitnet.cpp) <-> TQ2_0 (llama.cpp) conversion of ternary weights, per
 * tensor and per file, with a measured error report.
 *
 * Both types store each weight as a 2-bit code (0 = -1, 1 = 0, 2 = +1) times a scale; they
 * differ in where the scale lives: I2_S keeps one fp32 scale per tensor, TQ2_0 one fp16 d
 * per 256-weight block (ggml's quantize_row_tq2_0_ref sets d = the block's max |w|).
 * I2_S -> TQ2_0 is therefore exact when the tensor's fp32 scale is an fp16 value (every
 * non-zero block gets d = that scale), and otherwise off by |s - fp16(s)| (relative error at
 * most 2^-11) on every non-zero weight. TQ2_0 -> I2_S is exact when every non-zero block has
 * the same d; otherwise I2_S's single scale (bitnet.cpp's quantize_i2_s: max |w| over the
 * tensor, then each weight's sign) cannot hold the weights and the error is reported.
 * The conversion goes through f32 with quant/'s own (reference-identical) quantizers, so the
 * bytes equal what `trit quantize` / llama-quantize write from the same f32 weights, and the
 * error is measured by dequantizing the result, not predicted.
 * The file converter (a GGUF file in, a GGUF file out) lives above quant, in
 * gguf/gguf_convert.c, so quant depends on base only. */
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fold one tensor's measured errors into a report. */
static void measure(const float *x, const float *y, size_t n, trit_convert_report *r) {
    for (size_t i = 0; i < n; i++) {
        if (x[i] == y[i]) continue;
        const double e = fabs((double)y[i] - (double)x[i]);
        r->n_diff++;
        if (e > r->max_abs_err) r->max_abs_err = e;
        if (x[i] != 0.0f && e / fabs((double)x[i]) > r->max_rel_err)
            r->max_rel_err = e / fabs((double)x[i]);
    }
    r->n += n;
}

int trit_convert_tensor(uint32_t from, uint32_t to, const void *src, void *dst, int64_t ne0,
                        int64_t nrows, trit_convert_report *r, trit_err *err) {
    const bool i2s_tq2 = from == TRIT_I2_S && to == TRIT_TQ2_0;
    const bool tq2_i2s = from == TRIT_TQ2_0 && to == TRIT_I2_S;
    if (!i2s_tq2 && !tq2_i2s)
        return trit_fail(err, TRIT_EINVAL, "convert: only i2_s <-> tq2_0 (asked %u -> %u)", from,
                         to);
    /* both need whole blocks per row: 256 for TQ2_0, 128 for I2_S */
    if (ne0 <= 0 || nrows <= 0 || ne0 % QK_K != 0)
        return trit_fail(err, TRIT_EINVAL,
                         "convert: row length %lld is not a multiple of 256 (tq2_0's block)",
                         (long long)ne0);
    const size_t n = (size_t)ne0 * (size_t)nrows;
    float *x = xmalloc(n * sizeof(float)), *y = xmalloc(n * sizeof(float));
    int rc = trit_dequantize_tensor(from, src, x, ne0, nrows);
    /* I2_S's code 3 is never written by its quantizer; it decodes as +2, which no scale in
     * the other format can keep: refuse rather than convert a wrong weight */
    for (size_t i = 0; rc == 0 && from == TRIT_I2_S && i < n / 4; i++) {
        const uint8_t b = ((const uint8_t *)src)[i];
        if (((b >> 6) & 3) == 3 || ((b >> 4) & 3) == 3 || ((b >> 2) & 3) == 3 || (b & 3) == 3)
            rc = trit_fail(err, TRIT_EFORMAT, "convert: i2_s byte %zu holds code 3 (not ternary)",
                           i);
    }
    if (rc == 0) rc = trit_quantize_tensor(to, x, dst, ne0, nrows);
    if (rc == 0) rc = trit_dequantize_tensor(to, dst, y, ne0, nrows);
    if (rc == 0 && r) measure(x, y, n, r);
    free(x);
    free(y);
    if (rc && err && !err->msg[0]) trit_fail(err, TRIT_EUNSUP, "convert: conversion failed");
    return rc ? -1 : 0;
}

void trit_convert_describe(const trit_convert_report *r, uint32_t to, trit_buf *out) {
    if (r->n_diff == 0) {
        trit_buf_printf(out, "%zu tensors converted to %s, exact (every weight unchanged)",
                        r->n_tensors, trit_type_get(to)->name);
        return;
    }
    /* not exact: say how far off, and why */
    trit_buf_printf(out,
                    "%zu tensors converted to %s, %zu exact; %zu of %zu weights changed, "
                    "worst-case error %.9g (relative %.3g) in %s (%s)",
                    r->n_tensors, trit_type_get(to)->name, r->n_exact, r->n_diff, r->n,
                    r->max_abs_err, r->max_rel_err, r->worst[0] ? r->worst : "?",
                    to == TRIT_TQ2_0 ? "its fp32 scale is not an fp16 value"
                                     : "its blocks have different scales");
}
