/* test_legacy — the legacy 32-weight types Q4_0, Q4_1, Q5_0, Q5_1 (and Q8_1 activations):
 * layouts and hand-checked codes; quantize byte-identical to the reference ggml's
 * quantize_row_*_ref / ggml_quantize_chunk (what llama-quantize writes) and dequantize
 * identical; the x86 Q8_1 activation quantizer, every kernel set's dots, the repacked-Q4_0
 * order and llamafile's batched tinyBLAS against the reference's own x86 functions (dlopen'd
 * libggml-base.so / libggml-cpu.so), bit for bit. Without the reference those tests are
 * reported as skipped. Also llama-quantize's ftype names and per-tensor type rules
 * (quant/ftype.c; tests/integration/20_quantize_vs_reference checks them against the real
 * llama-quantize --dry-run). */
#include "kernels/kernels.h"
#include "reference/reference.h"
#include "quant/ftype.h"
#include "quant/quant.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit/helpers.h"

static const uint32_t legacy[] = {TRIT_Q4_0, TRIT_Q4_1, TRIT_Q5_0, TRIT_Q5_1};

/* n floats: normal * scale, with a few blocks made awkward (all equal, all zero, one
 * outlier, exact ties for the rounding). */
static float *test_data(int64_t n, uint64_t seed, float scale) {
    rng_state = seed;
    float *x = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = rng_normal() * scale;
    if (n >= 4 * 32) {
        for (int j = 0; j < 32; j++) x[j] = 0.25f; /* constant block: d = 0 (affine) */
        for (int j = 32; j < 64; j++) x[j] = 0.0f; /* zero block */
        x[64 + 7] = 40.0f * scale;                 /* outlier */
        for (int j = 96; j < 128; j++) x[j] = (float)(j % 17 - 8) * 0.5f; /* exact grid */
    }
    return x;
}

/* ---- layouts and hand-checked values ---- */
Test(legacy_table, sizes_and_names) {
    const struct {
        uint32_t t;
        const char *name;
        size_t size;
    } want[] = {{TRIT_Q4_0, "q4_0", 18},
                {TRIT_Q4_1, "q4_1", 20},
                {TRIT_Q5_0, "q5_0", 22},
                {TRIT_Q5_1, "q5_1", 24},
                {TRIT_Q8_1, "q8_1", 36}};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(want); i++) {
        const trit_type_info *ti = trit_type_get(want[i].t);
        cr_assert_not_null(ti);
        cr_assert_str_eq(ti->name, want[i].name);
        cr_assert_eq(ti->blck, 32);
        cr_assert_eq(ti->size, want[i].size, "%s", ti->name);
        cr_assert(ti->supported, "%s", ti->name);
        cr_assert_eq(trit_row_size(want[i].t, 4096), 128 * want[i].size);
        cr_assert_eq(trit_row_size(want[i].t, 48), 0, "%s: 48 is not whole blocks", ti->name);
    }
    cr_assert_eq(trit_act_type(TRIT_Q4_0), TRIT_Q8_0);
    cr_assert_eq(trit_act_type(TRIT_Q5_0), TRIT_Q8_0);
    cr_assert_eq(trit_act_type(TRIT_Q4_0 | TRIT_REPACK8), TRIT_Q8_0);
    cr_assert_eq(trit_act_type(TRIT_Q4_1), TRIT_Q8_1);
    cr_assert_eq(trit_act_type(TRIT_Q5_1), TRIT_Q8_1);
    cr_assert_eq(trit_act_row_size(TRIT_Q4_1, 64), 72);
    cr_assert_eq(trit_act_row_size(TRIT_Q5_0, 64), 68);
    cr_assert_eq(trit_act_row_size(TRIT_Q5_0, 40), 0);
}

Test(legacy_table, bad_lengths_refused) {
    float x[64] = {0};
    uint8_t y[64];
    for (size_t i = 0; i < TRIT_ARRAY_LEN(legacy); i++) {
        cr_assert_eq(trit_quantize_row(legacy[i], x, y, 33), -1);
        cr_assert_eq(trit_dequantize_row(legacy[i], y, x, 31), -1);
        cr_assert_eq(trit_quantize_row(legacy[i], x, y, -32), -1);
    }
}

/* Q4_0 of 0..31 - 16: max magnitude is -16 -> d = 2, codes x/d + 8 (clamped to 15). */
Test(legacy_hand, q4_0_codes) {
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
    block_q4_0 b;
    cr_assert_eq(trit_quantize_row(TRIT_Q4_0, x, &b, 32), 0);
    cr_assert_eq(trit_fp16_to_fp32(b.d), 2.0f);
    cr_assert_eq(b.qs[0] & 0x0F, 0); /* -16 / 2 + 8.5 -> 0 */
    cr_assert_eq(b.qs[15] >> 4, 15); /* element 31: 15 / 2 + 8.5 = 16 -> clamp 15 */
    cr_assert_eq(b.qs[8] & 0x0F, 4); /* element 8: -8 / 2 + 8.5 = 4.5 -> 4 */
    float y[32];
    cr_assert_eq(trit_dequantize_row(TRIT_Q4_0, &b, y, 32), 0);
    cr_assert_eq(y[0], -16.0f);
    cr_assert_eq(y[31], 14.0f);
}

/* Q5_1 keeps min and (max-min)/31: an exact grid comes back exactly, 5th bits included. */
Test(legacy_hand, q5_1_exact_grid) {
    float x[32], y[32];
    for (int j = 0; j < 32; j++) x[j] = 1.0f + (float)((j * 7) % 32) * 0.25f;
    block_q5_1 b;
    cr_assert_eq(trit_quantize_row(TRIT_Q5_1, x, &b, 32), 0);
    cr_assert_eq(trit_fp16_to_fp32(b.m), 1.0f);
    cr_assert_eq(trit_fp16_to_fp32(b.d), 0.25f);
    cr_assert_eq(trit_dequantize_row(TRIT_Q5_1, &b, y, 32), 0);
    for (int j = 0; j < 32; j++) cr_assert_eq(y[j], x[j], "element %d: %g vs %g", j, y[j], x[j]);
}

Test(legacy_hand, roundtrip_error_bounds) {
    const int64_t n = 1024;
    float *x = test_data(n, 3, 1.0f), *y = xmalloc(n * sizeof(float));
    uint8_t *q = xmalloc(n * 2);
    /* max error per block: d/2 (+ fp16 rounding of d and m); d <= 2 * amax / levels */
    const float tol[] = {6.0f / 8 * 0.6f, 12.0f / 15 * 0.6f, 6.0f / 16 * 0.6f, 12.0f / 31 * 0.6f};
    for (size_t t = 0; t < TRIT_ARRAY_LEN(legacy); t++) {
        cr_assert_eq(trit_quantize_row(legacy[t], x, q, n), 0);
        cr_assert_eq(trit_dequantize_row(legacy[t], q, y, n), 0);
        for (int64_t i = 128; i < n; i++) /* (the outlier block is checked by identity tests) */
            cr_assert_leq(fabsf(x[i] - y[i]), tol[t], "%s element %lld: %g vs %g",
                          trit_type_get(legacy[t])->name, (long long)i, x[i], y[i]);
    }
    free(x), free(y), free(q);
}

/* ---- against the reference ggml ---- */
typedef size_t (*quantize_chunk_fn)(int type, const float *src, void *dst, int64_t start,
                                    int64_t nrows, int64_t n_per_row, const float *imatrix);
typedef void (*row_fn)(const void *x, void *y, int64_t k);
typedef void (*vec_dot_fn)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y,
                           size_t by, int nrc);
typedef void (*gemx_fn)(int n, float *s, size_t bs, const void *vx, const void *vy, int nr, int nc);
struct compute_params { /* struct ggml_compute_params, ggml-cpu/ggml-cpu-impl.h */
    int ith, nth;
    size_t wsize;
    void *wdata;
    void *threadpool;
    bool use_ref;
};
typedef bool (*sgemm_fn)(const struct compute_params *p, int64_t m, int64_t n, int64_t k,
                         const void *A, int64_t lda, const void *B, int64_t ldb, void *C,
                         int64_t ldc, int Atype, int Btype, int Ctype);

/* ggml_ref_sym (helpers.h), or NULL when TRIT_TEST_NO_REF is set. */
static void *ggml_sym(const char *name) {
    if (getenv("TRIT_TEST_NO_REF")) return NULL;
    return ggml_ref_sym(name);
}

#define NEED(sym)                                                                                  \
    do {                                                                                           \
        if (!(sym)) cr_skip_test("reference libggml not found or lacks a symbol (setup)");         \
    } while (0)

static void expect_same_bytes(const void *a, const void *b, size_t n, const char *what) {
    const uint8_t *pa = a, *pb = b;
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(pa[i], pb[i], "%s: first differing byte %zu: trit %02x ggml %02x", what, i,
                     pa[i], pb[i]);
}

/* What llama-quantize writes: ggml_quantize_chunk (no imatrix) == quantize_row_*_ref; and
 * dequantize_row_* gives the same floats. */
Test(legacy_ggml, quantize_dequantize_identical) {
    quantize_chunk_fn chunk = (quantize_chunk_fn)ggml_sym("ggml_quantize_chunk");
    NEED(chunk);
    const char *deq[] = {"dequantize_row_q4_0", "dequantize_row_q4_1", "dequantize_row_q5_0",
                         "dequantize_row_q5_1"};
    const int64_t ne0 = 2048, nr = 3;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        float *x = test_data(ne0 * nr, seed, seed == 4 ? 1e-3f : (float)seed);
        for (size_t t = 0; t < TRIT_ARRAY_LEN(legacy); t++) {
            const size_t nb = trit_tensor_nbytes(legacy[t], ne0, nr);
            uint8_t *a = xcalloc(1, nb), *b = xcalloc(1, nb);
            cr_assert_eq(trit_quantize_tensor(legacy[t], x, a, ne0, nr), 0);
            cr_assert_eq(chunk((int)legacy[t], x, b, 0, nr, ne0, NULL), nb);
            expect_same_bytes(a, b, nb, trit_type_get(legacy[t])->name);
            row_fn d = (row_fn)ggml_sym(deq[t]);
            NEED(d);
            float *ya = xmalloc(ne0 * nr * 4), *yb = xmalloc(ne0 * nr * 4);
            cr_assert_eq(trit_dequantize_tensor(legacy[t], a, ya, ne0, nr), 0);
            d(b, yb, ne0 * nr);
            expect_same_bytes(ya, yb, ne0 * nr * 4, "dequantized");
            free(a), free(b), free(ya), free(yb);
        }
        free(x);
    }
}

/* trit_quantize_row(Q8_1) is quantize_row_q8_1_ref; the kernels' Q8_1 activations are the x86
 * quantize_row_q8_1 (127/amax, round half to even), which differs on exact halves. */
Test(legacy_ggml, q8_1_ref_and_x86) {
    row_fn ref = (row_fn)ggml_sym("quantize_row_q8_1_ref");
    row_fn x86 = (row_fn)ggml_sym("quantize_row_q8_1");
    NEED(ref);
    NEED(x86);
    const int64_t n = 4096;
    float *x = test_data(n, 9, 2.0f);
    for (int64_t i = 256; i < n; i += 64) { /* amax 127 * 2^k: x * 127/amax = 2.5 exactly */
        const float s2 = (i % 128 ? 0.5f : 4.0f);
        for (int j = 0; j < 32; j++) x[i + j] = (float)(j % 5 - 2) * s2;
        x[i] = 127.0f * s2;
        x[i + 1] = 2.5f * s2;
        x[i + 2] = -0.5f * s2;
    }
    const size_t sz = (size_t)(n / 32) * sizeof(block_q8_1);
    block_q8_1 *a = xmalloc(sz), *b = xmalloc(sz);
    cr_assert_eq(trit_quantize_row(TRIT_Q8_1, x, a, n), 0);
    ref(x, b, n);
    expect_same_bytes(a, b, sz, "q8_1 (ref)");
    x86(x, b, n);
    cr_assert_neq(memcmp(a, b, sz), 0, "the exact halves should round differently in _ref and x86");
    const trit_kernels *sets[3] = {trit_kernels_ref(), trit_kernels_avx2(), trit_kernels_avx512()};
    for (int k = 0; k < 3; k++) {
        if (!sets[k]) continue;
        memset(a, 0, sz);
        sets[k]->quantize_act(TRIT_Q4_1, x, a, n);
        expect_same_bytes(a, b, sz, sets[k]->name);
    }
    free(x), free(a), free(b);
}

/* Random legacy weights: nrows rows of n elements quantized from normal floats. */
static void *legacy_weights(uint32_t wt, int64_t n, int64_t nrows, uint64_t seed) {
    float *x = test_data(n * nrows, seed, 0.7f);
    void *w = xmalloc(trit_tensor_nbytes(wt, n, nrows));
    cr_assert_eq(trit_quantize_tensor(wt, x, w, n, nrows), 0);
    free(x);
    return w;
}

/* vec_dot: every kernel set equals ggml_vec_dot_<type>_q8_<0|1> (the x86 build's) bit for bit. */
Test(legacy_ggml, vec_dot_identical) {
    const char *names[] = {"ggml_vec_dot_q4_0_q8_0", "ggml_vec_dot_q4_1_q8_1",
                           "ggml_vec_dot_q5_0_q8_0", "ggml_vec_dot_q5_1_q8_1"};
    const trit_kernels *sets[3] = {trit_kernels_ref(), trit_kernels_avx2(), trit_kernels_avx512()};
    const int64_t n = 4096, nr = 16;
    float *x = test_data(n, 21, 1.3f);
    for (size_t t = 0; t < TRIT_ARRAY_LEN(legacy); t++) {
        vec_dot_fn g = (vec_dot_fn)ggml_sym(names[t]);
        NEED(g);
        const uint32_t wt = legacy[t];
        const size_t rb = trit_row_size(wt, n);
        uint8_t *w = legacy_weights(wt, n, nr, 30 + t);
        const size_t asz = trit_act_row_size(wt, n);
        void *act = xmalloc(asz);
        trit_kernels_ref()->quantize_act(wt, x, act, n);
        for (int64_t r = 0; r < nr; r++) {
            float s = NAN;
            g((int)n, &s, 0, w + r * rb, 0, act, 0, 1);
            for (int k = 0; k < 3; k++) {
                if (!sets[k]) continue;
                const float v = sets[k]->vec_dot(wt, n, w + r * rb, act);
                cr_assert(memcmp(&v, &s, 4) == 0, "%s %s row %lld: %.9g vs ggml %.9g",
                          sets[k]->name, trit_type_get(wt)->name, (long long)r, v, s);
            }
        }
        free(w), free(act);
    }
    free(x);
}

/* block_q4_0x8 as ggml's make_block_q4_0x8 (repack.cpp) with an 8-byte interleave: the 8
 * rows' scales, then 8-byte pieces of each row's qs in turn, every nibble xor 8. */
static void repack_q4_0x8(const block_q4_0 *rows[8], int64_t b, uint8_t *out) {
    for (int r = 0; r < 8; r++) memcpy(out + 2 * r, &rows[r][b].d, 2);
    for (int i = 0; i < 16; i++) /* QK4_0 * 4 / 8 pieces: 2 per row */
        for (int k = 0; k < 8; k++) out[16 + i * 8 + k] = rows[i % 8][b].qs[(i / 8) * 8 + k] ^ 0x88;
}

/* The reference repacks 2-D Q4_0 matmul weights (n_out % 8 == 0): Q4_0 | TRIT_REPACK8 equals
 * ggml_gemv_q4_0_8x8_q8_0 (one token) and ggml_gemm_q4_0_8x8_q8_0 (4 tokens, activations
 * interleaved by ggml_quantize_mat_q8_0_4x8) bit for bit; plain vec_dot does not. */
Test(legacy_ggml, repacked_q4_0_identical) {
    gemx_fn gemv = (gemx_fn)ggml_sym("ggml_gemv_q4_0_8x8_q8_0");
    gemx_fn gemm = (gemx_fn)ggml_sym("ggml_gemm_q4_0_8x8_q8_0");
    void (*qmat)(const float *, void *, int64_t) =
        (void (*)(const float *, void *, int64_t))ggml_sym("ggml_quantize_mat_q8_0_4x8");
    NEED(gemv);
    NEED(gemm);
    NEED(qmat);
    const int64_t n = 2080, nr = 48, nb = n / 32, nt = 4; /* 65 blocks: a tail */
    const block_q4_0 *w = legacy_weights(TRIT_Q4_0, n, nr, 44);
    uint8_t *packed = xmalloc((size_t)(nr / 8 * nb) * 144);
    for (int64_t g = 0; g < nr / 8; g++) {
        const block_q4_0 *rows[8];
        for (int r = 0; r < 8; r++) rows[r] = w + (g * 8 + r) * nb;
        for (int64_t b = 0; b < nb; b++) repack_q4_0x8(rows, b, packed + (g * nb + b) * 144);
    }
    float *x = test_data(n * nt, 45, 1.1f);
    block_q8_0 *act = xmalloc(nt * nb * sizeof(block_q8_0));
    for (int64_t t = 0; t < nt; t++)
        trit_kernels_ref()->quantize_act(TRIT_Q4_0, x + t * n, act + t * nb, n);
    const trit_kernels *sets[3] = {trit_kernels_ref(), trit_kernels_avx2(), trit_kernels_avx512()};
    float gv[48], gm[4 * 48];
    gemv((int)n, gv, 0, packed, act, 1, (int)nr);
    void *act4 = xmalloc(nt * nb * sizeof(block_q8_0));
    qmat(x, act4, n);
    gemm((int)n, gm, nr, packed, act4, (int)nt, (int)nr);
    int differs = 0;
    for (int k = 0; k < 3; k++) {
        if (!sets[k]) continue;
        for (int64_t r = 0; r < nr; r++) {
            const block_q4_0 *row = w + r * nb;
            float v = sets[k]->vec_dot(TRIT_Q4_0 | TRIT_REPACK8, n, row, act);
            cr_assert(memcmp(&v, &gv[r], 4) == 0, "%s gemv row %lld: %.9g vs ggml %.9g",
                      sets[k]->name, (long long)r, v, gv[r]);
            for (int64_t t = 0; t < nt; t++) {
                v = sets[k]->vec_dot(TRIT_Q4_0 | TRIT_REPACK8, n, row, act + t * nb);
                cr_assert(memcmp(&v, &gm[t * nr + r], 4) == 0,
                          "%s gemm token %lld row %lld: %.9g vs ggml %.9g", sets[k]->name,
                          (long long)t, (long long)r, v, gm[t * nr + r]);
            }
            const float lanes = sets[k]->vec_dot(TRIT_Q4_0, n, row, act);
            differs += memcmp(&lanes, &gv[r], 4) != 0;
        }
    }
    cr_assert_gt(differs, 0, "vec_dot and repack orders never differed: the test shows nothing");
    /* the dot type trit_matmul uses: Q4_0 with n_out % 8 == 0 is repacked for every token (its
     * gemm sums like its gemv), other shapes and the other legacy types never are */
    for (int64_t t = 0; t < 5; t++) {
        cr_assert_eq(trit_matmul_dot_type(TRIT_Q4_0, nr, t, 5), TRIT_Q4_0 | TRIT_REPACK8);
        cr_assert_eq(trit_matmul_dot_type(TRIT_Q4_0, 36, t, 5), TRIT_Q4_0);
        const uint32_t others[] = {TRIT_Q4_1, TRIT_Q5_0, TRIT_Q5_1, TRIT_Q8_0};
        for (size_t o = 0; o < TRIT_ARRAY_LEN(others); o++)
            cr_assert_eq(trit_matmul_dot_type(others[o], nr, t, 5), others[o]);
    }
    /* trit_matmul picks the repacked order for Q4_0 by itself (n_out % 8 == 0), 1 and 4 tokens,
     * with and without a thread pool */
    float Y[4 * 48];
    trit_pool *pool = trit_pool_new(3);
    for (int k = 0; k < 6; k++) {
        const trit_kernels *ks = sets[k % 3];
        if (!ks) continue;
        trit_pool *p = k < 3 ? NULL : pool;
        trit_matmul(ks, p, TRIT_Q4_0, w, 1.0f, n, nr, x, 1, Y);
        cr_assert_eq(memcmp(Y, gv, sizeof gv), 0, "%s: trit_matmul Q4_0 1 token != ggml gemv",
                     ks->name);
        trit_matmul(ks, p, TRIT_Q4_0, w, 1.0f, n, nr, x, nt, Y);
        cr_assert_eq(memcmp(Y, gm, sizeof gm), 0, "%s: trit_matmul Q4_0 4 tokens != ggml gemm",
                     ks->name);
        /* the choice is per weight (the reference repacks tensor by tensor): in one
         * trit_matmul_multi, 48 rows sum as ggml's gemm and 36 rows (not repacked) as
         * vec_dot; TRIT_NO_REPACK gives vec_dot's order to 48 rows too */
        float Y36[4 * 36], Yn[48];
        const trit_mm_part parts[2] = {{.W = w, .w_scale = 1.0f, .n_out = nr, .Y = Y},
                                       {.W = w, .w_scale = 1.0f, .n_out = 36, .Y = Y36}};
        trit_matmul_multi(ks, p, TRIT_Q4_0, n, x, nt, 2, parts);
        trit_matmul(ks, p, TRIT_Q4_0 | TRIT_NO_REPACK, w, 1.0f, n, nr, x, 1, Yn);
        cr_assert_eq(memcmp(Y, gm, sizeof gm), 0, "%s: multi part of 48 rows != ggml gemm",
                     ks->name);
        for (int64_t t = 0; t < nt; t++)
            for (int64_t r = 0; r < nr; r++) {
                const float e = ks->vec_dot(TRIT_Q4_0, n, w + r * nb, act + t * nb);
                if (r < 36)
                    cr_assert(memcmp(&e, &Y36[t * 36 + r], 4) == 0,
                              "%s: multi part of 36 rows, token %lld row %lld: not vec_dot's",
                              ks->name, (long long)t, (long long)r);
                if (t == 0)
                    cr_assert(memcmp(&e, &Yn[r], 4) == 0, "%s: TRIT_NO_REPACK row %lld", ks->name,
                              (long long)r);
            }
    }
    trit_pool_free(pool);
    free((void *)w), free(packed), free(x), free(act), free(act4);
}

/* Batches: the reference sends Q4_0/Q5_0 (and Q8_0) prefill products through llamafile's
 * tinyBLAS_Q0_AVX; trit_matmul (gemm path, several thread counts) equals it bit for bit. */
Test(legacy_ggml, batched_matmul_matches_tinyblas) {
    sgemm_fn sgemm = (sgemm_fn)ggml_sym("llamafile_sgemm");
    NEED(sgemm);
    /* (36 rows: not repacked; TRIT_NO_REPACK forces the unrepacked order for any shape) */
    const uint32_t types[] = {TRIT_Q4_0, TRIT_Q5_0, TRIT_Q8_0, TRIT_Q4_0 | TRIT_NO_REPACK};
    const int64_t n = 1024, n_tok = 11, nb = n / 32; /* two token tiles */
    float *X = test_data(n * n_tok, 51, 0.9f);
    for (size_t t = 0; t < TRIT_ARRAY_LEN(types); t++) {
        const uint32_t wt = types[t];
        const uint32_t st = wt & ~TRIT_NO_REPACK; /* storage type */
        const int64_t n_out = wt & TRIT_NO_REPACK ? 40 : 36;
        void *W = legacy_weights(st, n, n_out, 52 + t);
        block_q8_0 *act = xmalloc(n_tok * nb * sizeof(block_q8_0));
        for (int64_t i = 0; i < n_tok; i++)
            trit_kernels_ref()->quantize_act(st, X + i * n, act + i * nb, n);
        float *C = xmalloc(n_tok * n_out * 4), *Y = xmalloc(n_tok * n_out * 4);
        const struct compute_params p = {.ith = 0, .nth = 1};
        cr_assert(sgemm(&p, n_out, n_tok, nb, W, nb, act, nb, C, n_out, (int)st, TRIT_Q8_0, 0),
                  "llamafile_sgemm refused %s", trit_type_get(st)->name);
        const trit_kernels *sets[3] = {trit_kernels_ref(), trit_kernels_avx2(),
                                       trit_kernels_avx512()};
        for (int k = 0; k < 3; k++) {
            if (!sets[k]) continue;
            for (int th = 1; th <= 3; th += 2) {
                trit_pool *pool = th > 1 ? trit_pool_new(th) : NULL;
                memset(Y, 0, n_tok * n_out * 4);
                trit_matmul(sets[k], pool, wt, W, 1.0f, n, n_out, X, n_tok, Y);
                trit_pool_free(pool);
                for (int64_t i = 0; i < n_tok * n_out; i++)
                    cr_assert(memcmp(&Y[i], &C[i], 4) == 0,
                              "%s type %u %d threads: out %lld: %.9g vs tinyBLAS %.9g",
                              sets[k]->name, wt, th, (long long)i, Y[i], C[i]);
            }
        }
        free(W), free(act), free(C), free(Y);
    }
    free(X);
}

/* trit_matmul with the affine types (Q4_1/Q5_1: Q8_1 activations) equals the per-row dots for
 * every kernel set, one token and a batch. */
Test(legacy_matmul, affine_types_match_vec_dot) {
    const int64_t n = 512, n_out = 20, n_tok = 11;
    float *X = test_data(n * n_tok, 61, 1.0f);
    for (int t = 0; t < 2; t++) {
        const uint32_t wt = t ? TRIT_Q5_1 : TRIT_Q4_1;
        uint8_t *W = legacy_weights(wt, n, n_out, 62 + t);
        const size_t rb = trit_row_size(wt, n), asz = trit_act_row_size(wt, n);
        void *act = xmalloc(asz);
        float *Y = xmalloc(n_tok * n_out * 4);
        const trit_kernels *ref = trit_kernels_ref();
        const trit_kernels *sets[3] = {ref, trit_kernels_avx2(), trit_kernels_avx512()};
        for (int k = 0; k < 3; k++) {
            if (!sets[k]) continue;
            trit_matmul(sets[k], NULL, wt, W, 1.0f, n, n_out, X, n_tok, Y);
            for (int64_t i = 0; i < n_tok; i++) {
                ref->quantize_act(wt, X + i * n, act, n);
                for (int64_t r = 0; r < n_out; r++) {
                    const float v = ref->vec_dot(wt, n, W + r * rb, act);
                    cr_assert(memcmp(&v, &Y[i * n_out + r], 4) == 0, "%s %s tok %lld row %lld",
                              sets[k]->name, trit_type_get(wt)->name, (long long)i, (long long)r);
                }
            }
        }
        free(W), free(act), free(Y);
    }
    free(X);
}

/* ---- llama-quantize's ftypes and per-tensor types (quant/ftype.c) ---- */
Test(quant_ftype, names) {
    const trit_ftype_info *f = trit_ftype_find("q4_k_m");
    cr_assert_not_null(f);
    cr_assert_str_eq(f->name, "Q4_K_M");
    cr_assert_eq(f->ftype, 15);
    cr_assert_eq(f->default_type, 12); /* q4_K */
    cr_assert_eq(trit_ftype_find("Q4_K")->ftype, 15, "alias of Q4_K_M");
    cr_assert_eq(trit_ftype_find("TQ2_0")->default_type, TRIT_TQ2_0);
    cr_assert_eq(trit_ftype_find("37")->default_type, TRIT_TQ2_0, "by LLAMA_FTYPE number");
    cr_assert_eq(trit_ftype_find("2")->default_type, TRIT_Q4_0);
    cr_assert_eq(trit_ftype_find("f16")->ftype, 1);
    cr_assert_null(trit_ftype_find("Q9_9"));
    cr_assert_null(trit_ftype_find("15x"));
    cr_assert_null(trit_ftype_find("99"));
    cr_assert_null(trit_ftype_find(""));
    cr_assert_null(trit_ftype_find(NULL));
    size_t n;
    const trit_ftype_info *l = trit_ftype_list(&n);
    cr_assert_gt(n, 30);
    for (size_t i = 0; i < n; i++) cr_assert_eq(trit_ftype_find(l[i].name), &l[i], "%s", l[i].name);
}

/* One tensor's type under ftype name with a 32-layer GQA llama, untied, no options. */
static int choose(const char *ft, const char *name, int64_t ne0, int64_t ne1, trit_qstate *st,
                  bool tied) {
    const trit_ftype_info *f = trit_ftype_find(ft);
    const trit_qmodel m = {
        .n_layer = 32, .n_gqa = 4, .tied_embeddings = tied, .n_attention_wv = 32};
    const trit_qopts o = {.ftype = f->ftype,
                          .default_type = f->default_type,
                          .token_embedding_type = -1,
                          .output_tensor_type = -1};
    const int64_t ne[4] = {ne0, ne1, 1, 1};
    trit_err err = {0};
    trit_qstate local = {0};
    return trit_quant_choose_type(&m, &o, st ? st : &local, name, ne1 > 1 ? 2 : 1, ne, TRIT_F16,
                                  &err);
}

Test(quant_ftype, rules) {
    /* 1-D tensors and norms keep their type */
    cr_assert_eq(choose("Q4_0", "blk.0.attn_norm.weight", 4096, 1, NULL, false), TRIT_F16);
    cr_assert_eq(choose("Q4_0", "blk.0.ffn_gate_inp.weight", 4096, 8, NULL, false), TRIT_F16);
    /* output: Q6_K unless the default is Q8_0; tied embeddings follow the output rule */
    cr_assert_eq(choose("Q4_0", "output.weight", 4096, 32000, NULL, false), 14);
    cr_assert_eq(choose("Q8_0", "output.weight", 4096, 32000, NULL, false), TRIT_Q8_0);
    cr_assert_eq(choose("TQ2_0", "token_embd.weight", 4096, 32000, NULL, true), 14);
    /* untied embeddings: Q4_K for the ternary ftypes, the default type otherwise */
    cr_assert_eq(choose("TQ1_0", "token_embd.weight", 4096, 32000, NULL, false), 12);
    cr_assert_eq(choose("Q5_1", "token_embd.weight", 4096, 32000, NULL, false), TRIT_Q5_1);
    /* float ftypes: every quantizable tensor gets the default type, no mixes */
    cr_assert_eq(choose("BF16", "output.weight", 4096, 32000, NULL, false), TRIT_BF16);
    /* fallbacks: rows not whole 256-blocks, then not whole 32-blocks */
    cr_assert_eq(choose("TQ2_0", "blk.0.attn_q.weight", 320, 320, NULL, false), TRIT_Q4_0);
    cr_assert_eq(choose("Q4_K_S", "blk.9.attn_q.weight", 320, 320, NULL, false), TRIT_Q5_0);
    cr_assert_eq(choose("Q6_K", "blk.0.attn_q.weight", 320, 320, NULL, false), TRIT_Q8_0);
    cr_assert_eq(choose("TQ2_0", "blk.0.ffn_down.weight", 528, 320, NULL, false), TRIT_F16);
    cr_assert_eq(choose("Q4_0", "blk.0.ffn_down.weight", 528, 320, NULL, false), TRIT_F16);
    /* output whose rows the default type cannot split: Q8_0 */
    cr_assert_eq(choose("Q4_0", "output.weight", 4100, 32000, NULL, false), TRIT_F16);
    cr_assert_eq(choose("Q4_0", "output.weight", 4128, 32000, NULL, false), TRIT_Q8_0);
    /* Q4_K_M: ffn_down of the use_more_bits layers is Q6_K (counter = layer) */
    trit_qstate st = {0};
    int q6 = 0;
    for (int l = 0; l < 32; l++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        const int t = choose("Q4_K_M", name, 11008, 4096, &st, false);
        cr_assert(t == 12 || t == 14, "layer %d: type %d", l, t);
        q6 += t == 14;
        const bool more = l < 4 || l >= 28 || (l - 4) % 3 == 2;
        cr_assert_eq(t == 14, more, "layer %d", l);
    }
    cr_assert_eq(st.i_ffn_down, 32);
    cr_assert_eq(q6, 16);
}

Test(quant_ftype, options) {
    const trit_ftype_info *f = trit_ftype_find("TQ2_0");
    const trit_qmodel m = {.n_layer = 2, .tied_embeddings = true};
    trit_qopts o = {.ftype = f->ftype,
                    .default_type = f->default_type,
                    .token_embedding_type = -1,
                    .output_tensor_type = TRIT_Q8_0};
    const int64_t ne[4] = {256, 1000, 1, 1}, odd[4] = {320, 1000, 1, 1};
    trit_qstate st = {0};
    trit_err err = {0};
    /* tied: --output-tensor-type also names the embedding's type */
    cr_assert_eq(trit_quant_choose_type(&m, &o, &st, "token_embd.weight", 2, ne, TRIT_F16, &err),
                 TRIT_Q8_0);
    /* --token-embedding-type wins over it, without a fallback check */
    o.token_embedding_type = TRIT_Q5_1;
    cr_assert_eq(trit_quant_choose_type(&m, &o, &st, "token_embd.weight", 2, ne, TRIT_F16, &err),
                 TRIT_Q5_1);
    /* --pure: the default type everywhere, fallback still applies */
    o.pure = true;
    cr_assert_eq(trit_quant_choose_type(&m, &o, &st, "blk.0.attn_v.weight", 2, ne, TRIT_F16, &err),
                 TRIT_TQ2_0);
    cr_assert_eq(trit_quant_choose_type(&m, &o, &st, "blk.0.attn_v.weight", 2, odd, TRIT_F16, &err),
                 TRIT_Q4_0);
    cr_assert_eq(st.n_fallback, 1);
    /* --leave-output-tensor */
    o.pure = false;
    o.output_tensor_type = -1;
    o.leave_output = true;
    cr_assert_eq(trit_quant_choose_type(&m, &o, &st, "output.weight", 2, ne, TRIT_F16, &err),
                 TRIT_F16);
    /* an MoE tensor whose layer cannot be read from its name: an error naming it */
    const trit_qmodel moe = {.n_layer = 2, .n_expert = 8};
    const trit_ftype_info *k = trit_ftype_find("Q4_K_M");
    const trit_qopts ok = {.ftype = k->ftype,
                           .default_type = k->default_type,
                           .token_embedding_type = -1,
                           .output_tensor_type = -1};
    const int64_t e3[4] = {256, 512, 8, 1};
    cr_assert_eq(
        trit_quant_choose_type(&moe, &ok, &st, "ffn_down_exps.weight", 3, e3, TRIT_F16, &err), -1);
    cr_assert(strstr(err.msg, "ffn_down_exps.weight"), "%s", err.msg);
}
