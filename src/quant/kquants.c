/* quant/kquants.c — the k-quant types Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: quantize and dequantize one
 * row, byte-identical to ggml's quantize_row_qN_K_ref / dequantize_row_qN_K (ggml-quants.c,
 * llama.cpp 3.22.1 vintage), which is what llama-quantize runs when no imatrix is given.
 *
 * Identity depends on doing the same float operations in the same order: every expression below
 * keeps ggml's operand order and association (e.g. `w * x * l` is (w*x)*l), integer quants are
 * converted to float where ggml converts them, and rounding is nearest_int (ties to even). This
 * file is compiled without -mfma and in ISO C mode (no contraction), as ggml-base is built
 * without FMA, so no product is fused. Layouts are in quant.h. */
#include "quant/quant.h"

#include <math.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f /* ggml's threshold below which a group is all zero */

static inline int imin(int a, int b) {
    return a < b ? a : b;
}
static inline int imax(int a, int b) {
    return a > b ? a : b;
}

/* ---- scale searches (ggml's make_qx_quants / make_q3_quants / make_qkx2_quants) ---- */

/* Symmetric quants in [-nmax, nmax-1] with weights x^2 (ggml's make_qx_quants with
 * rmse_type 1 and no importance weights, the only form Q6_K uses): start from iscale =
 * -nmax/max, then try the 18 nearby iscales -(nmax + 0.1*is)/max and keep the one maximising
 * sumlx^2/suml2. L gets l + nmax. Returns the scale. */
static float make_qx_quants_w2(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = trit_signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) { /* all zero */
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, trit_nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue; /* the starting point, already scored */
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = imax(-nmax, imin(nmax - 1, trit_nearest_int(iscale * x[i])));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) { /* better: take its quants */
            for (int i = 0; i < n; i++) {
                const int l = trit_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric quants in [-nmax, nmax-1] refined by up to 5 passes of per-element moves that
 * raise sumlx^2/suml2 (weights x^2) — ggml's make_q3_quants with do_rmse, the form Q3_K uses.
 * L gets l + nmax. Returns the scale. */
static float make_q3_quants_rmse(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = trit_signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) { /* all zero */
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, trit_nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (!(slx > 0)) continue; /* without element i the fit has no positive scale */
            float sl2 = suml2 - w * L[i] * L[i];
            int new_l = trit_nearest_int(x[i] * sl2 / slx);
            new_l = imax(-nmax, imin(nmax - 1, new_l));
            if (new_l == L[i]) continue;
            slx += w * x[i] * new_l;
            sl2 += w * new_l * new_l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) { /* the move improves */
                L[i] = (int8_t)new_l;
                sumlx = slx;
                suml2 = sl2;
                n_changed++;
            }
        }
        if (!n_changed) break; /* converged */
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric quants x ~ scale * L + min, L in [0, nmax], weighted error (|diff| if use_mad,
 * else diff^2): start from the min/max fit, then try nstep+1 iscales
 * (rmin + rdelta*is + nmax) / (max - min), solving scale and min by weighted least squares
 * for each (ggml's make_qkx2_quants). *the_min gets -min (>= 0). Returns the scale. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) { /* constant group: everything in the min */
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        const int l = trit_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) { /* no search asked for: the min/max fit */
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = imax(0, imin(nmax, trit_nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue; /* degenerate: all quants equal */
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) { /* a positive offset is not representable: refit through 0 */
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float cur_error = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            cur_error += weights[i] * diff;
        }
        if (cur_error < best_error) { /* keep this fit */
            memcpy(L, Laux, (size_t)n);
            best_error = cur_error;
            scale = this_scale;
            min = this_min;
        }
    }
    *the_min = -min;
    return scale;
}

/* Scale and min j (0..7) of a Q4_K/Q5_K block's 12 packed bytes: j < 4 in the low 6 bits of
 * bytes j and j+4; j >= 4 split into a nibble of byte j+4 and the top 2 bits of bytes j-4 / j. */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* Q2_K/Q3_K 2-bit packing: byte 32*(j/128) + l holds elements j+l, +32, +64, +96 at bits
 * 0, 2, 4, 6. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
}

/* ---- Q2_K: 16 groups of 16, x ~ d*sc*q - dmin*m, 4-bit sc and m ---- */

static void quantize_q2_K(const float *x, block_q2_K *y, int64_t nb) {
    uint8_t L[QK_K], Laux[16];
    float weights[16], mins[QK_K / 16], scales[QK_K / 16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max_scale = 0, max_min = 0; /* scales are >= 0 as the min is taken out */
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                         -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) { /* 4-bit scales relative to the largest */
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; j++)
                y[i].scales[j] = (uint8_t)trit_nearest_int(iscale * scales[j]);
            y[i].d = trit_fp32_to_fp16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, sizeof y[i].scales);
            y[i].d = trit_fp32_to_fp16(0.f);
        }
        if (max_min > 0) { /* 4-bit mins in the high nibbles */
            const float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; j++)
                y[i].scales[j] |= (uint8_t)(trit_nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = trit_fp32_to_fp16(max_min / q4scale);
        } else {
            y[i].dmin = trit_fp32_to_fp16(0.f);
        }
        /* requantize against the rounded scales (a zero scale keeps the search's quants) */
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = trit_fp16_to_fp32(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = trit_fp16_to_fp32(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++) {
                const int l = trit_nearest_int((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (uint8_t)imax(0, imin(3, l));
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

static void dequantize_q2_K(const block_q2_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = trit_fp16_to_fp32(x[i].d);
        const float min = trit_fp16_to_fp32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int n = 0; n < QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; half++) { /* q[0..15], then q[16..31] */
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * ((int8_t)((q[16 * half + l] >> shift) & 3)) - ml;
                }
    }
}

/* ---- Q3_K: 16 groups of 16, x ~ d*(sc-32)*(q-4), 6-bit sc, 3-bit q (2 low bits + hmask) ---- */

static void quantize_q3_K(const float *x, block_q3_K *y, int64_t nb) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        for (int j = 0; j < QK_K / 16; j++)
            scales[j] = make_q3_quants_rmse(16, 4, x + 16 * j, L + 16 * j);
        const float max_scale = trit_signed_absmax(scales, QK_K / 16, NULL);
        memset(y[i].scales, 0, sizeof y[i].scales);
        if (max_scale) { /* 6-bit signed scales: low nibbles in bytes 0..7, top 2 bits in 8..11 */
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                int8_t l = (int8_t)trit_nearest_int(iscale * scales[j]);
                l = (int8_t)(imax(-32, imin(31, l)) + 32);
                if (j < 8)
                    y[i].scales[j] = l & 0xF;
                else
                    y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l = (int8_t)(l >> 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            y[i].d = trit_fp32_to_fp16(1 / iscale);
        } else {
            y[i].d = trit_fp32_to_fp16(0.f);
        }
        /* requantize against the rounded scales (a zero scale keeps the search's quants) */
        for (int j = 0; j < QK_K / 16; j++) {
            int8_t sc = (int8_t)(j < 8 ? y[i].scales[j] & 0xF : y[i].scales[j - 8] >> 4);
            sc = (int8_t)((sc | (((y[i].scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
            const float d = trit_fp16_to_fp32(y[i].d) * sc;
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                const int l = trit_nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(imax(-4, imin(3, l)) + 4);
            }
        }
        /* high bit of element j goes to hmask[j % 32], bit j / 32 */
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int j = 0; j < QK_K; j++)
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1 << (j / 32));
                L[j] = (int8_t)(L[j] - 4);
            }
        pack_2bit((const uint8_t *)L, y[i].qs);
    }
}

/* The 16 Q3_K scales (0..63, still biased by 32) from their 12 packed bytes. */
static void unpack_q3_scales(const uint8_t *packed, int8_t sc[16]) {
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
        const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        sc[j] = (int8_t)(lo | (hi << 4));
    }
}

static void dequantize_q3_K(const block_q3_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = trit_fp16_to_fp32(x[i].d);
        int8_t sc[16];
        unpack_q3_scales(x[i].scales, sc);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int n = 0; n < QK_K; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1))
                for (int half = 0; half < 2; half++) { /* q[0..15], then q[16..31] */
                    const float dl = d_all * (sc[is++] - 32);
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *y++ = dl * ((int8_t)((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
    }
}

/* ---- Q4_K / Q5_K: 8 groups of 32, x ~ d*sc*q - dmin*m, 6-bit sc and m ---- */

/* The shared first half of quantize_row_q4_K_ref / q5_K_ref: per-group weighted scale/min
 * search (weights sqrt(mean x^2) + |x|), 6-bit scales and mins packed into y_scales, fp16 d and
 * dmin, then the quants requantized against the rounded scales into L (0..nmax). */
static void quantize_k4_scales(const float *x, int nmax, float rmin, int nstep, uint8_t *L,
                               uint8_t y_scales[K_SCALE_SIZE], uint16_t *y_d, uint16_t *y_dmin) {
    uint8_t Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0, max_min = 0; /* scales are >= 0 as the min is taken out */
    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t ls = (uint8_t)trit_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)trit_nearest_int(inv_min * mins[j]);
        ls = (uint8_t)imin(63, ls);
        lm = (uint8_t)imin(63, lm);
        if (j < 4) {
            y_scales[j] = ls;
            y_scales[j + 4] = lm;
        } else {
            y_scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            y_scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
            y_scales[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *y_d = trit_fp32_to_fp16(max_scale / 63.f);
    *y_dmin = trit_fp32_to_fp16(max_min / 63.f);
    /* requantize against the rounded scales (a zero scale keeps the search's quants) */
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        scale_min_k4(j, y_scales, &sc, &m);
        const float d = trit_fp16_to_fp32(*y_d) * sc;
        if (!d) continue;
        const float dm = trit_fp16_to_fp32(*y_dmin) * m;
        for (int ii = 0; ii < 32; ii++) {
            const int l = trit_nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, l));
        }
    }
}

static void quantize_q4_K(const float *x, block_q4_K *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        quantize_k4_scales(x, 15, -1.f, 20, L, y[i].scales, &y[i].d, &y[i].dmin);
        /* byte 32*(j/64) + l: element j+l in the low nibble, j+l+32 in the high one */
        for (int j = 0; j < QK_K; j += 64)
            for (int l = 0; l < 32; l++)
                y[i].qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

static void dequantize_q4_K(const block_q4_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = trit_fp16_to_fp32(x[i].d);
        const float min = trit_fp16_to_fp32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int is = 0; is < 8; is += 2, q += 32) {
            uint8_t sc, m;
            scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
#if defined(__aarch64__)
            /* aarch64's ggml-base (FMA in the base ISA, GCC contracting) fuses d * q - m */
            for (int l = 0; l < 32; l++) *y++ = fmaf(d1, (float)(q[l] & 0xF), -m1);
            for (int l = 0; l < 32; l++) *y++ = fmaf(d2, (float)(q[l] >> 4), -m2);
#else
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
#endif
        }
    }
}

static void quantize_q5_K(const float *x, block_q5_K *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        quantize_k4_scales(x, 31, -0.5f, 15, L, y[i].scales, &y[i].d, &y[i].dmin);
        /* as Q4_K for the low nibbles; the 5th bit of element n+j (n = 64*p) goes to qh[j]
         * bit 2p, of element n+j+32 to bit 2p+1 */
        memset(y[i].qh, 0, sizeof y[i].qh);
        uint8_t *ql = y[i].qs;
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < QK_K;
             n += 64, ql += 32, m1 = (uint8_t)(m1 << 2), m2 = (uint8_t)(m2 << 2))
            for (int j = 0; j < 32; j++) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    y[i].qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    y[i].qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
    }
}

static void dequantize_q5_K(const block_q5_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = trit_fp16_to_fp32(x[i].d);
        const float min = trit_fp16_to_fp32(x[i].dmin);
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int is = 0; is < 8;
             is += 2, ql += 32, u1 = (uint8_t)(u1 << 2), u2 = (uint8_t)(u2 << 2)) {
            uint8_t sc, m;
            scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

/* ---- Q6_K: 16 groups of 16, x ~ d*sc*(q-32), 8-bit signed sc, 6-bit q ---- */

static void quantize_q6_K(const float *x, block_q6_K *y, int64_t nb) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        for (int ib = 0; ib < QK_K / 16; ib++)
            scales[ib] = make_qx_quants_w2(16, 32, x + 16 * ib, L + 16 * ib);
        float max_abs_scale;
        const float max_scale = trit_signed_absmax(scales, QK_K / 16, &max_abs_scale);
        if (max_abs_scale < GROUP_MAX_EPS) { /* all zero: an all-zero block */
            memset(&y[i], 0, sizeof y[i]);
            y[i].d = trit_fp32_to_fp16(0.f);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = trit_fp32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++)
            y[i].scales[ib] = (int8_t)imin(127, trit_nearest_int(iscale * scales[ib]));
        /* requantize against the rounded scales (a zero scale keeps the search's quants) */
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = trit_fp16_to_fp32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                const int l = trit_nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(imax(-32, imin(31, l)) + 32);
            }
        }
        /* per 128 elements (ql += 64, qh += 32): ql[l] = q[l] | q[l+64] << 4,
         * ql[l+32] = q[l+32] | q[l+96] << 4, qh[l] = the four top-2-bit pairs */
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                const uint8_t *u = (const uint8_t *)L + j + l;
                ql[l + 0] = (uint8_t)((u[0] & 0xF) | ((u[64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((u[32] & 0xF) | ((u[96] & 0xF) << 4));
                qh[l] = (uint8_t)((u[0] >> 4) | ((u[32] >> 4) << 2) | ((u[64] >> 4) << 4) |
                                  ((u[96] >> 4) << 6));
            }
    }
}

static void dequantize_q6_K(const block_q6_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = trit_fp16_to_fp32(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
    }
}

/* ---- entry points ---- */

int trit_kquant_quantize_row(uint32_t type, const float *x, void *y, int64_t n) {
    if (n < 0 || n % QK_K) return -1; /* whole super-blocks only */
    const int64_t nb = n / QK_K;
    switch (type) {
    case TRIT_Q2_K:
        quantize_q2_K(x, y, nb);
        return 0;
    case TRIT_Q3_K:
        quantize_q3_K(x, y, nb);
        return 0;
    case TRIT_Q4_K:
        quantize_q4_K(x, y, nb);
        return 0;
    case TRIT_Q5_K:
        quantize_q5_K(x, y, nb);
        return 0;
    case TRIT_Q6_K:
        quantize_q6_K(x, y, nb);
        return 0;
    default:
        return -1;
    }
}

int trit_kquant_dequantize_row(uint32_t type, const void *x, float *y, int64_t n) {
    if (n < 0 || n % QK_K) return -1; /* whole super-blocks only */
    const int64_t nb = n / QK_K;
    switch (type) {
    case TRIT_Q2_K:
        dequantize_q2_K(x, y, nb);
        return 0;
    case TRIT_Q3_K:
        dequantize_q3_K(x, y, nb);
        return 0;
    case TRIT_Q4_K:
        dequantize_q4_K(x, y, nb);
        return 0;
    case TRIT_Q5_K:
        dequantize_q5_K(x, y, nb);
        return 0;
    case TRIT_Q6_K:
        dequantize_q6_K(x, y, nb);
        return 0;
    default:
        return -1;
    }
}
