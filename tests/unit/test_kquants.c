/* test_kquants — the k-quant types Q2_K..Q6_K against the reference ggml (dlopen'd
 * libggml-base.so / libggml-cpu.so from the reference llama.cpp build):
 *   quantize byte-identical to quantize_row_qN_K_ref, dequantize identical to
 *   dequantize_row_qN_K, on random and edge rows (zeros, one outlier, negative-only, tiny and
 *   large magnitudes, constant rows);
 *   every kernel set's dot (ref, AVX2, AVX-512) bit-identical to each other and to ggml's x86
 *   ggml_vec_dot_qN_K_q8_K, for several lengths; vec_dot_rows and gemm agree with vec_dot;
 *   the kernel tables and activation sizes know the types; bad lengths are refused.
 * Tests needing the reference skip (reported as skipped) when it is not built. */
#include "kernels/kernels.h"
#include "reference/reference.h"
#include "quant/quant.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit/helpers.h"

static const uint32_t ktypes[5] = {TRIT_Q2_K, TRIT_Q3_K, TRIT_Q4_K, TRIT_Q5_K, TRIT_Q6_K};
static const char *const knames[5] = {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K"};

/* ---- the reference ggml ---- */
typedef void (*quant_fn)(const float *x, void *y, int64_t k);
typedef void (*dequant_fn)(const void *x, float *y, int64_t k);
typedef void (*vec_dot_fn)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y,
                           size_t by, int nrc);

/* ggml_ref_sym (helpers.h): a symbol from libggml-cpu (initialised) or libggml-base; NULL
 * when the reference is absent or TRIT_TEST_NO_REF is set. */
static void *ggml_sym(const char *name) {
    if (getenv("TRIT_TEST_NO_REF")) return NULL;
    return ggml_ref_sym(name);
}

static void *need_sym(const char *fmt, const char *type) {
    char name[96];
    snprintf(name, sizeof name, fmt, type);
    void *s = ggml_sym(name);
    if (!s) cr_skip_test("reference libggml (%s) not found (run scripts/setup)", name);
    return s;
}

/* ---- test rows ---- */
enum { N_CASES = 9 };
static const char *const case_names[N_CASES] = {"normal",        "zeros",  "one outlier",
                                                "negative only", "tiny",   "large",
                                                "constant",      "sparse", "uniform positive"};

/* Fill x[n] with case c (seeded by seed). */
static void fill_case(int c, float *x, int64_t n, uint64_t seed) {
    rng_state = seed;
    for (int64_t i = 0; i < n; i++) {
        switch (c) {
        case 0:
            x[i] = rng_normal();
            break;
        case 1:
            x[i] = 0.0f;
            break;
        case 2:
            x[i] = rng_normal() * 0.01f;
            break;
        case 3:
            x[i] = -fabsf(rng_normal()) - 0.1f;
            break;
        case 4:
            x[i] = rng_normal() * 1e-20f;
            break;
        case 5:
            x[i] = rng_normal() * 3e4f;
            break;
        case 6:
            x[i] = 0.75f;
            break;
        case 7:
            x[i] = rng_next() % 7 == 0 ? rng_normal() : 0.0f;
            break;
        default:
            x[i] = rng_uniform() * 2.0f;
            break;
        }
    }
    if (c == 2)
        for (int64_t i = 37; i < n; i += 256) x[i] = 25.0f; /* one outlier per block */
}

/* ---- type table and sizes ---- */
Test(kquants, table) {
    const size_t sizes[5] = {84, 110, 144, 176, 210};
    for (int t = 0; t < 5; t++) {
        const trit_type_info *ti = trit_type_get(ktypes[t]);
        cr_assert_not_null(ti);
        cr_assert_str_eq(ti->name, knames[t]);
        cr_assert(ti->supported, "%s supported", knames[t]);
        cr_assert_eq(ti->blck, QK_K);
        cr_assert_eq(ti->size, sizes[t]);
        cr_assert_eq(trit_type_from_name(knames[t]), (int)ktypes[t]);
        cr_assert_eq(trit_row_size(ktypes[t], 512), 2 * sizes[t]);
        cr_assert_eq(trit_act_type(ktypes[t]), TRIT_Q8_K, "%s: vec_dot_type Q8_K", knames[t]);
        cr_assert_eq(trit_act_row_size(ktypes[t], 512), 2 * sizeof(block_q8_K));
    }
}

/* Rows that are not whole super-blocks are refused, never read past. */
Test(kquants, bad_lengths) {
    float x[300] = {0};
    uint8_t y[512];
    for (int t = 0; t < 5; t++) {
        cr_assert_eq(trit_quantize_row(ktypes[t], x, y, 300), -1, "%s n=300", knames[t]);
        cr_assert_eq(trit_dequantize_row(ktypes[t], y, x, 100), -1, "%s n=100", knames[t]);
        cr_assert_eq(trit_quantize_row(ktypes[t], x, y, -256), -1, "%s n<0", knames[t]);
        cr_assert_eq(trit_act_row_size(ktypes[t], 300), 0);
    }
    cr_assert_eq(trit_kquant_quantize_row(TRIT_Q8_0, x, y, 256), -1);
    cr_assert_eq(trit_kquant_dequantize_row(TRIT_TQ2_0, y, x, 256), -1);
}

/* Round trip: the dequantized row is close to the input (relative RMS error bounded by the
 * type's bits), so the layouts are read back as they were written. */
Test(kquants, round_trip) {
    const double max_rel[5] = {0.45, 0.25, 0.12, 0.06, 0.03};
    const int64_t n = 4 * QK_K;
    float *x = xmalloc(n * sizeof(float)), *y = xmalloc(n * sizeof(float));
    uint8_t *q = xmalloc(4 * 256);
    fill_case(0, x, n, 5);
    for (int t = 0; t < 5; t++) {
        cr_assert_eq(trit_quantize_row(ktypes[t], x, q, n), 0);
        cr_assert_eq(trit_dequantize_row(ktypes[t], q, y, n), 0);
        double e = 0, s = 0;
        for (int64_t i = 0; i < n; i++) e += (x[i] - y[i]) * (x[i] - y[i]), s += x[i] * x[i];
        cr_assert(sqrt(e / s) < max_rel[t], "%s: relative RMS error %g", knames[t], sqrt(e / s));
    }
    free(x), free(y), free(q);
}

/* (a) quantize byte-identical to quantize_row_qN_K_ref, (b) dequantize identical to
 * dequantize_row_qN_K, for every case. */
Test(kquants_ggml, quantize_dequantize_identical) {
    const int64_t n = 3 * QK_K;
    float *x = xmalloc(n * sizeof(float));
    float *ya = xmalloc(n * sizeof(float)), *yb = xmalloc(n * sizeof(float));
    uint8_t *a = xmalloc(3 * 256), *b = xmalloc(3 * 256);
    for (int t = 0; t < 5; t++) {
        quant_fn gq = (quant_fn)need_sym("quantize_row_%s_ref", knames[t]);
        dequant_fn gd = (dequant_fn)need_sym("dequantize_row_%s", knames[t]);
        const size_t rb = trit_row_size(ktypes[t], n);
        for (int c = 0; c < N_CASES; c++)
            for (uint64_t seed = 1; seed <= 4; seed++) {
                fill_case(c, x, n, seed * 1000 + (uint64_t)c);
                memset(a, 0x5a, rb);
                memset(b, 0xa5, rb);
                cr_assert_eq(trit_quantize_row(ktypes[t], x, a, n), 0);
                gq(x, b, n);
                for (size_t i = 0; i < rb; i++)
                    cr_assert_eq(a[i], b[i],
                                 "%s %s seed %d: first differing byte %zu: trit %02x ggml %02x",
                                 knames[t], case_names[c], (int)seed, i, a[i], b[i]);
                cr_assert_eq(trit_dequantize_row(ktypes[t], a, ya, n), 0);
                gd(b, yb, n);
                cr_assert_eq(memcmp(ya, yb, n * sizeof(float)), 0, "%s %s: dequantized differ",
                             knames[t], case_names[c]);
            }
        /* whole tensors: ggml_quantize_chunk without an imatrix (what llama-quantize calls) */
        typedef size_t (*chunk_fn)(int type, const float *src, void *dst, int64_t start,
                                   int64_t nrows, int64_t n_per_row, const float *imatrix);
        chunk_fn chunk = (chunk_fn)need_sym("%s", "ggml_quantize_chunk");
        fill_case(0, x, n, 4242);
        cr_assert_eq(trit_quantize_tensor(ktypes[t], x, a, QK_K, 3), 0);
        cr_assert_eq(chunk((int)ktypes[t], x, b, 0, 3, QK_K, NULL), rb);
        cr_assert_eq(memcmp(a, b, rb), 0, "%s: differs from ggml_quantize_chunk", knames[t]);
        /* dequantize arbitrary bytes (every bit pattern a file may hold) identically too */
        rng_state = 99 + (uint64_t)t;
        for (size_t i = 0; i < rb; i++) a[i] = (uint8_t)rng_next();
        for (int64_t bl = 0; bl < 3; bl++) { /* finite fp16 scales (no NaN to compare) */
            uint16_t h[2] = {trit_fp32_to_fp16(rng_normal()), trit_fp32_to_fp16(rng_normal())};
            const size_t off =
                ktypes[t] == TRIT_Q4_K || ktypes[t] == TRIT_Q5_K
                    ? 0
                    : trit_type_get(ktypes[t])->size - (ktypes[t] == TRIT_Q2_K ? 4 : 2);
            memcpy(a + bl * trit_type_get(ktypes[t])->size + off, h,
                   ktypes[t] == TRIT_Q3_K || ktypes[t] == TRIT_Q6_K ? 2 : 4);
        }
        cr_assert_eq(trit_dequantize_row(ktypes[t], a, ya, n), 0);
        gd(a, yb, n);
        cr_assert_eq(memcmp(ya, yb, n * sizeof(float)), 0, "%s random bytes: dequantized differ",
                     knames[t]);
    }
    free(x), free(ya), free(yb), free(a), free(b);
}

/* ---- dot products ---- */

/* nr random weight rows of type t (quantized from normal data, so every scale/min path is
 * exercised) and one Q8_K activation row, n elements each. */
static void *make_rows(uint32_t t, int64_t n, int nr, uint64_t seed, size_t *rb) {
    *rb = trit_row_size(t, n);
    uint8_t *w = xmalloc(*rb * (size_t)nr);
    float *x = xmalloc((size_t)n * sizeof(float));
    for (int r = 0; r < nr; r++) {
        fill_case(r % 3 == 2 ? 3 : r % 3 == 1 ? 2 : 0, x, n, seed + (uint64_t)r);
        cr_assert_eq(trit_quantize_row(t, x, w + (size_t)r * *rb, n), 0);
    }
    free(x);
    return w;
}

static void *make_act(int64_t n, uint64_t seed, float scale) {
    float *x = xmalloc((size_t)n * sizeof(float));
    rng_state = seed;
    for (int64_t i = 0; i < n; i++) x[i] = rng_normal() * scale;
    void *a = xmalloc(trit_act_row_size(TRIT_Q6_K, n));
    trit_kernels_ref()->quantize_act(TRIT_Q6_K, x, a, n);
    free(x);
    return a;
}

/* Random raw weight bytes (finite fp16 scales), so quants and scales take every value,
 * including Q6_K's -128 scale and Q2_K/Q3_K's extreme nibbles. */
static void *random_raw_rows(uint32_t t, int64_t n, int nr, size_t *rb) {
    *rb = trit_row_size(t, n);
    uint8_t *w = xmalloc(*rb * (size_t)nr);
    for (size_t i = 0; i < *rb * (size_t)nr; i++) w[i] = (uint8_t)rng_next();
    const size_t bs = trit_type_get(t)->size;
    for (size_t b = 0; b < *rb * (size_t)nr / bs; b++) {
        uint16_t h[2] = {trit_fp32_to_fp16(rng_normal() * 0.01f),
                         trit_fp32_to_fp16(rng_normal() * 0.01f)};
        size_t off = t == TRIT_Q4_K || t == TRIT_Q5_K ? 0 : bs - (t == TRIT_Q2_K ? 4 : 2);
        memcpy(w + b * bs + off, h, t == TRIT_Q3_K || t == TRIT_Q6_K ? 2 : 4);
    }
    return w;
}

/* (c) ref == AVX2 == AVX-512 == ggml's x86 vec_dot, bit for bit, for several n. */
Test(kquants_ggml, dots_identical) {
    const int64_t lens[4] = {256, 512, 2816, 4096};
    const trit_kernels *sets[3] = {trit_kernels_ref(), trit_kernels_avx2(), trit_kernels_avx512()};
    int checked = 0;
    for (int t = 0; t < 5; t++) {
        vec_dot_fn g = (vec_dot_fn)need_sym("ggml_vec_dot_%s_q8_K", knames[t]);
        for (int li = 0; li < 4; li++) {
            const int64_t n = lens[li];
            const int nr = 6;
            size_t rb;
            for (int raw = 0; raw < 2; raw++) {
                rng_state = 4242 + (uint64_t)(t * 10 + li);
                uint8_t *w = raw ? random_raw_rows(ktypes[t], n, nr, &rb)
                                 : make_rows(ktypes[t], n, nr, 31 * (uint64_t)li + 7, &rb);
                void *act = make_act(n, 600 + (uint64_t)li, li == 3 ? 40.0f : 1.0f);
                float rows[6];
                for (int k = 0; k < 3; k++) {
                    if (!sets[k]) continue;
                    sets[k]->vec_dot_rows(ktypes[t], n, w, rb, nr, act, rows);
                    for (int r = 0; r < nr; r++) {
                        float s = NAN;
                        g((int)n, &s, 0, w + (size_t)r * rb, 0, act, 0, 1);
                        const float v = sets[k]->vec_dot(ktypes[t], n, w + (size_t)r * rb, act);
                        cr_assert(memcmp(&v, &s, 4) == 0,
                                  "%s %s n=%lld row %d%s: %.9g vs ggml %.9g", sets[k]->name,
                                  knames[t], (long long)n, r, raw ? " (raw)" : "", v, s);
                        cr_assert(memcmp(&rows[r], &v, 4) == 0, "%s %s: vec_dot_rows %.9g vs %.9g",
                                  sets[k]->name, knames[t], rows[r], v);
                        checked++;
                    }
                }
                free(w);
                free(act);
            }
        }
    }
    cr_log_info("%d k-quant dots bit-identical to ggml", checked);
}

/* Every set's activation quantizer gives ggml's Q8_K bytes for k-quant weights. */
Test(kquants_ggml, activations_identical) {
    quant_fn q8k = (quant_fn)need_sym("quantize_row_%s", "q8_K");
    const trit_kernels *sets[3] = {trit_kernels_ref(), trit_kernels_avx2(), trit_kernels_avx512()};
    const int64_t n = 1024;
    float *x = xmalloc(n * sizeof(float));
    fill_case(0, x, n, 3);
    const size_t sz = trit_act_row_size(TRIT_Q4_K, n);
    uint8_t *a = xmalloc(sz), *b = xmalloc(sz);
    q8k(x, b, n);
    for (int t = 0; t < 5; t++)
        for (int k = 0; k < 3; k++) {
            if (!sets[k]) continue;
            sets[k]->quantize_act(ktypes[t], x, a, n);
            cr_assert_eq(memcmp(a, b, sz), 0, "%s %s: Q8_K activations differ from ggml",
                         sets[k]->name, knames[t]);
        }
    free(x), free(a), free(b);
}

/* The threaded matmul (vec_dot_rows, and gemm for several tokens) gives vec_dot per (row,
 * token) for every set, in the order trit_matmul_dot_type names: n_out = 72 makes Q4_K/Q2_K
 * "repacked" (gemm order for tokens 0..3 of 5 and all of 4, gemv order for token 4 of 5 and
 * one token), n_out = 70 does not; with single_order every token gets the one-token order. */
Test(kquants, matmul_matches_vec_dot) {
    const trit_kernels *sets[3] = {trit_kernels_ref(), trit_kernels_avx2(), trit_kernels_avx512()};
    for (int64_t n_out = 70; n_out <= 72; n_out += 2) {
        const int64_t n = 512, n_tok = 5;
        float *X = xmalloc(n * n_tok * sizeof(float)), *Y = xmalloc(n_out * n_tok * sizeof(float));
        fill_case(0, X, n * n_tok, 17);
        void *act = xmalloc(trit_act_row_size(TRIT_Q6_K, n));
        for (int t = 0; t < 5; t++) {
            size_t rb;
            uint8_t *w = make_rows(ktypes[t], n, (int)n_out, 90, &rb);
            for (int k = 0; k < 3; k++) {
                if (!sets[k]) continue;
                /* so = 1: trit_matmul_multi_order's single_order (decode rows in a batch), every
                 * token in the one-token (gemv) order */
                for (int so = 0; so < 2; so++)
                    for (int64_t nt = 1; nt <= n_tok; nt = nt == 1 ? 4 : nt + 1) { /* 1, 4, 5 */
                        const trit_mm_part part = {.W = w, .w_scale = 1.0f, .n_out = n_out, .Y = Y};
                        if (so)
                            trit_matmul_multi_order(sets[k], NULL, ktypes[t], n, X, nt, 1, &part,
                                                    true);
                        else
                            trit_matmul(sets[k], NULL, ktypes[t], w, 1.0f, n, n_out, X, nt, Y);
                        for (int64_t tk = 0; tk < nt; tk++) {
                            sets[k]->quantize_act(ktypes[t], X + tk * n, act, n);
                            const uint32_t dt = so ? trit_matmul_dot_type(ktypes[t], n_out, 0, 1)
                                                   : trit_matmul_dot_type(ktypes[t], n_out, tk, nt);
                            /* Q2_K only where the table's build repacks it (AVX-512) */
                            const bool q2 = trit_numerics_table_get()->repack_q2_k;
                            cr_assert_eq(dt != ktypes[t],
                                         n_out % 8 == 0 && (ktypes[t] == TRIT_Q4_K ||
                                                            (q2 && ktypes[t] == TRIT_Q2_K)));
                            for (int64_t r = 0; r < n_out; r++) {
                                const float e = sets[k]->vec_dot(dt, n, w + r * rb, act);
                                cr_assert(memcmp(&e, &Y[tk * n_out + r], 4) == 0,
                                          "%s %s tok %lld row %lld single_order %d: matmul %.9g "
                                          "vs vec_dot %.9g",
                                          sets[k]->name, knames[t], (long long)tk, (long long)r, so,
                                          Y[tk * n_out + r], e);
                            }
                        }
                    }
            }
            free(w);
        }
        free(X), free(Y), free(act);
    }
}

/* ---- the reference's repacked Q4_K / Q2_K kernels (ggml-cpu repack.cpp) ---- */
struct ggml_init_params { /* ggml.h */
    size_t mem_size;
    void *mem_buffer;
    bool no_alloc;
};
typedef void *(*ggml_init_fn)(struct ggml_init_params);
typedef void *(*ggml_new_tensor_2d_fn)(void *ctx, int type, int64_t ne0, int64_t ne1);
typedef void *(*ggml_get_data_fn)(const void *t);
typedef void (*ggml_free_fn)(void *ctx);
typedef int (*ggml_repack_fn)(void *t, const void *data, size_t size);
typedef void (*ggml_gemx_fn)(int n, float *s, size_t bs, const void *vx, const void *vy, int nr,
                             int nc);
typedef void (*ggml_quant_mat_fn)(const float *x, void *vy, int64_t k);

/* Every set's vec_dot with TRIT_REPACK8 (| _GEMM) is bit-identical to ggml's gemv (one token)
 * and gemm (4 tokens, activations from ggml_quantize_mat_q8_K_4x8) on the same weights repacked
 * by ggml's own repack<block_qN_K, 8, 8>; trit's Q8_K activation rows equal ggml's interleaved
 * ones. nc = 24 columns takes the AVX-512 16-column path and the 8-column tail. */
Test(kquants_ggml, repacked_orders_identical) {
    static const char *const repack_sym[2] = {
        "_ZN4ggml3cpu6repack6repackI10block_q4_KLl8ELl8EEEiP11ggml_tensorPKvm",
        "_ZN4ggml3cpu6repack6repackI10block_q2_KLl8ELl8EEEiP11ggml_tensorPKvm"};
    const uint32_t types[2] = {TRIT_Q4_K, TRIT_Q2_K};
    ggml_init_fn init = (ggml_init_fn)need_sym("%s", "ggml_init");
    ggml_new_tensor_2d_fn new2d = (ggml_new_tensor_2d_fn)need_sym("%s", "ggml_new_tensor_2d");
    ggml_get_data_fn get_data = (ggml_get_data_fn)need_sym("%s", "ggml_get_data");
    ggml_free_fn gfree = (ggml_free_fn)need_sym("%s", "ggml_free");
    ggml_quant_mat_fn qmat = (ggml_quant_mat_fn)need_sym("%s", "ggml_quantize_mat_q8_K_4x8");
    const trit_kernels *sets[3] = {trit_kernels_ref(), trit_kernels_avx2(), trit_kernels_avx512()};
    const int nc = 24;
    int checked = 0;
    for (int ti = 0; ti < 2; ti++) {
        const uint32_t t = types[ti];
        const char *tn = t == TRIT_Q4_K ? "q4_K" : "q2_K";
        ggml_repack_fn repack = (ggml_repack_fn)need_sym("%s", repack_sym[ti]);
        ggml_gemx_fn gemv = (ggml_gemx_fn)need_sym("ggml_gemv_%s_8x8_q8_K", tn);
        ggml_gemx_fn gemm = (ggml_gemx_fn)need_sym("ggml_gemm_%s_8x8_q8_K", tn);
        for (int64_t n = 256; n <= 2048; n *= 8) {
            size_t rb;
            uint8_t *w = make_rows(t, n, nc, 500 + (uint64_t)n, &rb);
            void *ctx = init((struct ggml_init_params){.mem_size = 16u << 20});
            cr_assert_not_null(ctx);
            void *wt = new2d(ctx, (int)t, n, nc);
            cr_assert_eq(repack(wt, w, rb * nc), 0, "%s: ggml repack", tn);
            const void *wr = get_data(wt);
            /* 4 activation rows: trit's Q8_K rows and ggml's 4-row interleaved form */
            const size_t ar = trit_act_row_size(t, n);
            float *X = xmalloc((size_t)(4 * n) * sizeof(float));
            fill_case(0, X, 4 * n, 70 + (uint64_t)n);
            for (int64_t i = 0; i < 4 * n; i += 97) X[i] *= 30.0f; /* varied block scales */
            uint8_t *act = xmalloc(4 * ar), *act4 = xmalloc(4 * ar);
            for (int r = 0; r < 4; r++) sets[0]->quantize_act(t, X + r * n, act + r * ar, n);
            qmat(X, act4, n);
            float sv[4][24], sm[4 * 24];
            for (int r = 0; r < 4; r++) gemv((int)n, sv[r], 0, wr, act + r * ar, 1, nc);
            gemm((int)n, sm, (size_t)nc, wr, act4, 4, nc);
            for (int k = 0; k < 3; k++) {
                if (!sets[k]) continue;
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < nc; c++) {
                        const void *wc = w + (size_t)c * rb;
                        const float v = sets[k]->vec_dot(t | TRIT_REPACK8, n, wc, act + r * ar);
                        const float g = sets[k]->vec_dot(t | TRIT_REPACK8 | TRIT_REPACK8_GEMM, n,
                                                         wc, act + r * ar);
                        cr_assert(memcmp(&v, &sv[r][c], 4) == 0,
                                  "%s %s n=%lld tok %d col %d: gemv order %.9g vs ggml %.9g",
                                  sets[k]->name, tn, (long long)n, r, c, v, sv[r][c]);
                        cr_assert(memcmp(&g, &sm[r * nc + c], 4) == 0,
                                  "%s %s n=%lld tok %d col %d: gemm order %.9g vs ggml %.9g",
                                  sets[k]->name, tn, (long long)n, r, c, g, sm[r * nc + c]);
                        checked += 2;
                    }
            }
            gfree(ctx);
            free(w), free(X), free(act), free(act4);
        }
    }
    cr_log_info("%d repacked-order dots bit-identical to ggml's gemv/gemm", checked);
}
