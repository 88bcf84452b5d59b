/* test_kernels — activation formats, the ref kernels against hand-computed cases and against
 * the reference ggml (dlopen'd from the reference llama.cpp build), every optimized kernel set
 * against ref on random inputs (NMSE <= 5e-4, integer block sums exact), and trit_matmul
 * with 1..N threads against the single-thread result. */
#include "kernels/kernels.h"
#include "kernels/ref/ggml_order.h"
#include "reference/reference.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit/helpers.h"

/* ---- deterministic test data (rng_*: unit/helpers.h) ---- */
static float *random_floats(int64_t n, float scale) {
    float *x = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = rng_normal() * scale;
    return x;
}

/* Random weight rows of wtype (nrows x n), built directly in the packed format. */
static void *random_weights(uint32_t wtype, int64_t n, int64_t nrows, size_t *row_bytes) {
    size_t rb = wtype == TRIT_I2_S ? (size_t)n / 4 : trit_row_size(wtype, n);
    cr_assert(rb > 0);
    uint8_t *w = xmalloc(rb * (size_t)nrows);
    for (int64_t r = 0; r < nrows; r++) {
        uint8_t *row = w + rb * (size_t)r;
        switch (wtype) {
        case TRIT_TQ2_0: {
            block_tq2_0 *b = (block_tq2_0 *)row;
            for (int64_t i = 0; i < n / QK_K; i++) {
                for (int j = 0; j < QK_K / 4; j++) {
                    uint8_t v = 0;
                    for (int k = 0; k < 4; k++) v |= (uint8_t)((rng_next() % 3) << (2 * k));
                    b[i].qs[j] = v;
                }
                b[i].d = trit_fp32_to_fp16(0.5f + rng_uniform());
            }
            break;
        }
        case TRIT_TQ1_0: {
            block_tq1_0 *b = (block_tq1_0 *)row;
            for (int64_t i = 0; i < n / QK_K; i++) {
                for (size_t j = 0; j < sizeof(b->qs); j++) b[i].qs[j] = (uint8_t)rng_next();
                for (size_t j = 0; j < sizeof(b->qh); j++) b[i].qh[j] = (uint8_t)rng_next();
                b[i].d = trit_fp32_to_fp16(0.5f + rng_uniform());
            }
            break;
        }
        case TRIT_I2_S:
            for (size_t j = 0; j < rb; j++) {
                uint8_t v = 0;
                for (int k = 0; k < 4; k++) v |= (uint8_t)((rng_next() % 3) << (2 * k));
                row[j] = v;
            }
            break;
        default: {
            float *x = random_floats(n, 1.0f);
            cr_assert_eq(trit_quantize_row(wtype, x, row, n), 0);
            free(x);
        }
        }
    }
    *row_bytes = rb;
    return w;
}

static double nmse(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

static const uint32_t all_types[] = {TRIT_TQ2_0, TRIT_TQ1_0, TRIT_Q8_0, TRIT_I2_S,
                                     TRIT_F32,   TRIT_F16,   TRIT_BF16};

/* ---- activation formats ---- */
Test(kernels_act, types_and_sizes) {
    cr_assert_eq(trit_act_type(TRIT_TQ1_0), TRIT_Q8_K);
    cr_assert_eq(trit_act_type(TRIT_TQ2_0), TRIT_Q8_K);
    cr_assert_eq(trit_act_type(TRIT_Q8_0), TRIT_Q8_0);
    cr_assert_eq(trit_act_type(TRIT_F16), TRIT_F16);
    cr_assert_eq(trit_act_type(TRIT_BF16), TRIT_BF16);
    cr_assert_eq(trit_act_type(TRIT_F32), TRIT_F32);
    cr_assert_eq(trit_act_type(TRIT_I2_S), TRIT_ACT_I8);
    cr_assert_eq(trit_act_row_size(TRIT_TQ2_0, 512), 2 * 292);
    cr_assert_eq(trit_act_row_size(TRIT_Q8_0, 64), 2 * 34);
    cr_assert_eq(trit_act_row_size(TRIT_F16, 10), 20);
    cr_assert_eq(trit_act_row_size(TRIT_F32, 10), 40);
    cr_assert_eq(trit_act_row_size(TRIT_I2_S, 256), 256 + 8);
    /* sizes that are not whole blocks, and unknown types, have no row */
    cr_assert_eq(trit_act_row_size(TRIT_TQ2_0, 100), 0);
    cr_assert_eq(trit_act_row_size(TRIT_Q8_0, 33), 0);
    cr_assert_eq(trit_act_row_size(TRIT_I2_S, 64), 0);
    cr_assert_eq(trit_act_row_size(23 /* iq4_xs */, 256), 0);
    cr_assert_eq(trit_act_row_size(TRIT_F32, 0), 0);
}

Test(kernels_act, dispatch) {
    cr_assert_str_eq(trit_kernels_ref()->name, "ref");
    const trit_kernels *b = trit_kernels_best();
    cr_assert_not_null(b);
    cr_assert_not_null(trit_cpu_features());
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        cr_assert_not_null(trit_kernels_avx2());
        cr_assert(strstr(trit_cpu_features(), "avx2") != NULL);
        cr_assert_str_neq(b->name, "ref");
    }
#else /* no x86 set on another target: the neon set (aarch64 + dotprod) or the scalar one */
    cr_assert_null(trit_kernels_avx2());
    cr_assert_null(trit_kernels_avx512());
    cr_assert(b == trit_kernels_ref() || (b && b == trit_kernels_neon()), "best %s", b->name);
#endif
}

/* The CPUID rule of trit_cpu_features (kernels.c) names exactly the features gcc's
 * __builtin_cpu_supports reports, so the kernel set chosen does not depend on the compiler.
 * gcc only: clang-14 does not know some of these names. */
Test(kernels, cpu_features_match_gcc_builtin) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    const struct {
        const char *name;
        int on;
    } want[] = {{"sse4.2", __builtin_cpu_supports("sse4.2")},
                {"avx", __builtin_cpu_supports("avx")},
                {"avx2", __builtin_cpu_supports("avx2")},
                {"fma", __builtin_cpu_supports("fma")},
                {"f16c", __builtin_cpu_supports("f16c")},
                {"avx512f", __builtin_cpu_supports("avx512f")},
                {"avx512bw", __builtin_cpu_supports("avx512bw")},
                {"avx512vl", __builtin_cpu_supports("avx512vl")},
                {"avx512dq", __builtin_cpu_supports("avx512dq")},
                {"avx512vnni", __builtin_cpu_supports("avx512vnni")},
                {"avx512bf16", __builtin_cpu_supports("avx512bf16")},
                {"avxvnni", __builtin_cpu_supports("avxvnni")}};
    char got[300];
    snprintf(got, sizeof got, " %s ", trit_cpu_features());
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char word[32];
        snprintf(word, sizeof word, " %s ", want[i].name);
        cr_expect_eq(strstr(got, word) != NULL, want[i].on != 0, "%s: features \"%s\", gcc says %d",
                     want[i].name, got, want[i].on);
    }
    const bool avx512 = want[2].on && want[3].on && want[4].on && want[5].on && want[6].on &&
                        want[7].on && want[8].on && want[9].on;
    cr_expect_eq(trit_kernels_avx512() != NULL, avx512);
#else
    cr_skip_test("needs gcc's __builtin_cpu_supports on x86-64");
#endif
}

/* A thread's F16 -> F32 activation buffer (trit_x86_acts_f32) is freed when the thread ends:
 * pool workers end with their engine context. Under AddressSanitizer (make asan) the test
 * asks LeakSanitizer at once whether the finished workers left their buffers behind (found by
 * fuzz_engine); elsewhere it checks the conversion only. */
#if defined(__SANITIZE_ADDRESS__)
#define TRIT_TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TRIT_TEST_LSAN 1
#endif
#endif
#ifdef TRIT_TEST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

static void *acts_f32_worker(void *arg) {
    uint16_t act[2 * 64];
    for (int i = 0; i < 2 * 64; i++) act[i] = trit_fp32_to_fp16((float)(i - 64) / 8);
    const float *y = trit_x86_acts_f32(64, act, 64 * sizeof(uint16_t), 2);
    for (int i = 0; i < 2 * 64; i++)
        if (y[i] != (float)(i - 64) / 8) return (void *)1;
    return NULL;
}

Test(kernels, acts_f32_buffer_freed_with_its_thread) {
#if defined(__x86_64__)
    if (!trit_kernels_avx2()) cr_skip_test("needs AVX2+F16C");
    for (int k = 0; k < 4; k++) { /* several workers come and go, as contexts do */
        pthread_t t;
        void *bad = NULL;
        cr_assert_eq(pthread_create(&t, NULL, acts_f32_worker, NULL), 0);
        pthread_join(t, &bad);
        cr_assert_null(bad, "F16 activations converted wrongly");
    }
#ifdef TRIT_TEST_LSAN
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "a finished thread's buffer leaked");
#endif
#else
    cr_skip_test("x86-64 only");
#endif
}

/* ---- ref kernels against hand-computed cases ---- */
Test(kernels_ref, q8_K_quantize_known) {
    float x[QK_K];
    for (int i = 0; i < QK_K; i++) x[i] = (float)(i - 100); /* max |x| = 155 at i = 255 */
    block_q8_K b;
    trit_kernels_ref()->quantize_act(TRIT_TQ2_0, x, &b, QK_K);
    /* iscale = -127/155, d = 1/iscale = -155/127 */
    cr_assert_float_eq(b.d, -155.0f / 127.0f, 1e-6);
    cr_assert_eq(b.qs[255], -127);
    cr_assert_eq(b.qs[100], 0);
    cr_assert_eq(b.qs[0], 82); /* -100 * -127/155 = 81.94 */
    int s = 0;
    for (int i = 0; i < 16; i++) s += b.qs[i];
    cr_assert_eq(b.bsums[0], s);
    /* all-zero block: d = 0, all quants 0 */
    memset(x, 0, sizeof x);
    trit_kernels_ref()->quantize_act(TRIT_TQ1_0, x, &b, QK_K);
    cr_assert_eq(b.d, 0.0f);
    cr_assert_eq(b.qs[7], 0);
    cr_assert_eq(b.bsums[3], 0);
}

Test(kernels_ref, tq2_0_hand) {
    block_tq2_0 w;
    block_q8_K a;
    memset(&w, 0, sizeof w);
    memset(&a, 0, sizeof a);
    /* element e of a TQ2_0 block: byte (e/128)*32 + e%32, bits 2*((e%128)/32) */
    /* weights: +1 at element 0, -1 at element 33, 0 elsewhere (code 1) */
    for (int j = 0; j < 64; j++) w.qs[j] = 0x55;      /* all codes 1 -> 0 */
    w.qs[0] = (uint8_t)((w.qs[0] & ~3u) | 2u);        /* element 0: +1 */
    w.qs[1] = (uint8_t)((w.qs[1] & ~(3u << 2)) | 0u); /* element 32 + 1 = 33: -1 */
    w.d = trit_fp32_to_fp16(2.0f);
    a.d = 0.5f;
    for (int i = 0; i < QK_K; i++) a.qs[i] = (int8_t)(i % 100);
    for (int j = 0; j < 16; j++) {
        int s = 0;
        for (int k = 0; k < 16; k++) s += a.qs[j * 16 + k];
        a.bsums[j] = (int16_t)s;
    }
    /* 0*1 - 33 = -33, times 2 * 0.5 */
    const trit_kernels *ks[] = {trit_kernels_ref(), trit_kernels_avx2(), trit_kernels_avx512()};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(ks); i++)
        if (ks[i])
            cr_assert_eq(ks[i]->vec_dot(TRIT_TQ2_0, QK_K, &w, &a), -33.0f, "%s", ks[i]->name);
}

Test(kernels_ref, q8_0_hand) {
    block_q8_0 w[2], a[2];
    memset(w, 0, sizeof w);
    memset(a, 0, sizeof a);
    w[0].d = trit_fp32_to_fp16(0.5f);
    a[0].d = trit_fp32_to_fp16(4.0f);
    w[1].d = trit_fp32_to_fp16(1.0f);
    a[1].d = trit_fp32_to_fp16(1.0f);
    w[0].qs[3] = 10, a[0].qs[3] = -3; /* -30 * 2 = -60 */
    w[1].qs[31] = 7, a[1].qs[31] = 5; /* 35 */
    cr_assert_eq(trit_kernels_ref()->vec_dot(TRIT_Q8_0, 64, w, a), -25.0f);
    float x[32] = {0};
    x[0] = 127.0f, x[1] = -62.5f, x[2] = 0.25f;
    trit_kernels_ref()->quantize_act(TRIT_Q8_0, x, a, 32);
    cr_assert_eq(trit_fp16_to_fp32(a[0].d), 1.0f);
    cr_assert_eq(a[0].qs[0], 127);
    cr_assert_eq(a[0].qs[1], -62); /* half to even, as ggml's x86 quantize_row_q8_0 */
    cr_assert_eq(a[0].qs[2], 0);
}

Test(kernels_ref, i2_s_hand) {
    int8_t act[128 + 8];
    float x[128];
    for (int i = 0; i < 128; i++) x[i] = (i == 5) ? 2.0f : (i == 70 ? -1.0f : 0.0f);
    trit_kernels_ref()->quantize_act(TRIT_I2_S, x, act, 128);
    float s;
    int32_t sum;
    memcpy(&s, act + 128, 4);
    memcpy(&sum, act + 132, 4);
    cr_assert_float_eq(s, 63.5f, 1e-6);
    cr_assert_eq(act[5], 127);
    cr_assert_eq(act[70], -64); /* -63.5 rounds half to even */
    cr_assert_eq(sum, 63);
    uint8_t w[32];
    memset(w, 0x55, sizeof w);                   /* all zero weights */
    w[5] = (uint8_t)((w[5] & 0x3f) | (2u << 6)); /* element 5 (group 0): +1 */
    w[6] = (uint8_t)((w[6] & ~(3u << 2)));       /* element 64 + 6 = 70 (group 2): -1 */
    /* (127 + 64) / 63.5 */
    const trit_kernels *ks[] = {trit_kernels_ref(), trit_kernels_avx2(), trit_kernels_avx512()};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(ks); i++)
        if (ks[i])
            cr_assert_float_eq(ks[i]->vec_dot(TRIT_I2_S, 128, w, act), 191.0f / 63.5f, 1e-6, "%s",
                               ks[i]->name);
}

Test(kernels_ref, float_dots_hand) {
    float a[3] = {1, 2, 3}, b[3] = {4, -5, 6};
    cr_assert_eq(trit_kernels_ref()->vec_dot(TRIT_F32, 3, a, b), 12.0f);
    uint16_t ha[3], hb[3];
    for (int i = 0; i < 3; i++) ha[i] = trit_fp32_to_fp16(a[i]), hb[i] = trit_fp32_to_fp16(b[i]);
    cr_assert_eq(trit_kernels_ref()->vec_dot(TRIT_F16, 3, ha, hb), 12.0f);
    for (int i = 0; i < 3; i++) ha[i] = trit_fp32_to_bf16(a[i]), hb[i] = trit_fp32_to_bf16(b[i]);
    cr_assert_eq(trit_kernels_ref()->vec_dot(TRIT_BF16, 3, ha, hb), 12.0f);
}

/* ---- optimized sets against ref ---- */
static const trit_kernels *opt_sets[2];
static int n_opt_sets(void) {
    int n = 0;
    if (trit_kernels_avx2()) opt_sets[n++] = trit_kernels_avx2();
    if (trit_kernels_avx512()) opt_sets[n++] = trit_kernels_avx512();
    return n;
}

Test(kernels_opt, q8_K_quantize_bit_identical) {
    const int nk = n_opt_sets();
    rng_state = 11;
    const int64_t n = 8 * QK_K;
    float *x = random_floats(n, 3.0f);
    x[17] = 50.0f, x[30] = -50.0f;                         /* tie on |max|, first wins (block 0) */
    x[QK_K + 3] = -9.0f, x[QK_K + 9] = 9.0f;               /* (block 1) */
    for (int j = 0; j < QK_K; j++) x[2 * QK_K + j] = 0.0f; /* all-zero block */
    const size_t sz = trit_act_row_size(TRIT_TQ2_0, n);
    block_q8_K *r = xcalloc(1, sz), *o = xcalloc(1, sz);
    trit_kernels_ref()->quantize_act(TRIT_TQ2_0, x, r, n);
    for (int k = 0; k < nk; k++) {
        memset(o, 0xAB, sz);
        opt_sets[k]->quantize_act(TRIT_TQ2_0, x, o, n);
        cr_assert_eq(memcmp(r, o, sz), 0, "%s: Q8_K quantization differs from ref",
                     opt_sets[k]->name);
    }
    free(x), free(r), free(o);
}

Test(kernels_opt, act_quantizers_close) {
    const int nk = n_opt_sets();
    rng_state = 12;
    const int64_t n = 2560;
    float *x = random_floats(n, 2.0f);
    float *dr = xmalloc(n * sizeof(float)), *dq = xmalloc(n * sizeof(float));
    for (int k = 0; k < nk; k++) {
        for (size_t t = 0; t < TRIT_ARRAY_LEN(all_types); t++) {
            const uint32_t wt = all_types[t];
            const size_t sz = trit_act_row_size(wt, n);
            char *r = xmalloc(sz), *o = xmalloc(sz);
            trit_kernels_ref()->quantize_act(wt, x, r, n);
            opt_sets[k]->quantize_act(wt, x, o, n);
            if (wt == TRIT_I2_S) { /* int8 + scale + sum: identical */
                cr_assert_eq(memcmp(r, o, sz), 0, "%s: I8 activations differ", opt_sets[k]->name);
            } else if (wt == TRIT_F32 || wt == TRIT_F16 || wt == TRIT_BF16) {
                cr_assert_eq(memcmp(r, o, sz), 0, "%s: type %u conversion differs",
                             opt_sets[k]->name, wt);
            } else { /* Q8_0: x86 ggml rounding (half-even, 127/amax); dequantized NMSE */
                const uint32_t at = trit_act_type(wt);
                cr_assert_eq(trit_dequantize_row(at, r, dr, n), 0);
                cr_assert_eq(trit_dequantize_row(at, o, dq, n), 0);
                cr_assert_leq(nmse(dq, dr, n), 1e-7, "%s type %u", opt_sets[k]->name, wt);
            }
            free(r), free(o);
        }
    }
    free(x), free(dr), free(dq);
}

/* Each optimized dot equals the ref dot on the same (ref-quantized) activation row, to float
 * rounding (NMSE over many rows <= 1e-10 here: the integer parts are exact), and with its own
 * activation quantization within NMSE 5e-4 of the float product. */
static void check_dots(const trit_kernels *k, uint32_t wt, int64_t n) {
    const int64_t nrows = 24;
    size_t rb;
    void *w = random_weights(wt, n, nrows, &rb);
    float *x = random_floats(n, 1.0f);
    const size_t asz = trit_act_row_size(wt, n);
    char *ar = xmalloc(asz), *ao = xmalloc(asz);
    trit_kernels_ref()->quantize_act(wt, x, ar, n);
    k->quantize_act(wt, x, ao, n);
    float ref[24], opt[24], opt_rows[24], own[24];
    for (int64_t r = 0; r < nrows; r++) {
        const char *wr = (const char *)w + r * rb;
        ref[r] = trit_kernels_ref()->vec_dot(wt, n, wr, ar);
        opt[r] = k->vec_dot(wt, n, wr, ar);
        own[r] = k->vec_dot(wt, n, wr, ao);
    }
    k->vec_dot_rows(wt, n, w, rb, nrows, ar, opt_rows);
    for (int64_t r = 0; r < nrows; r++) {
        cr_assert(isfinite(opt[r]), "%s type %u n %lld: not finite", k->name, wt, (long long)n);
        cr_assert_eq(opt[r], opt_rows[r], "%s type %u: vec_dot_rows differs from vec_dot", k->name,
                     wt);
    }
    cr_assert_leq(nmse(opt, ref, nrows), 1e-10, "%s type %u n %lld: %g", k->name, wt, (long long)n,
                  nmse(opt, ref, nrows));
    cr_assert_leq(nmse(own, ref, nrows), 5e-4, "%s type %u n %lld (own activations)", k->name, wt,
                  (long long)n);
    free(w), free(x), free(ar), free(ao);
}

Test(kernels_opt, dots_vs_ref) {
    const int nk = n_opt_sets();
    const int64_t sizes[] = {256, 512, 2560, 6912};
    for (int k = 0; k < nk; k++)
        for (size_t t = 0; t < TRIT_ARRAY_LEN(all_types); t++)
            for (size_t s = 0; s < TRIT_ARRAY_LEN(sizes); s++) {
                rng_state = 100 + t * 10 + s;
                check_dots(opt_sets[k], all_types[t], sizes[s]);
            }
}

Test(kernels_opt, float_dots_odd_sizes) {
    const int nk = n_opt_sets();
    const int64_t sizes[] = {1, 7, 15, 17, 33, 100};
    for (int k = 0; k < nk; k++)
        for (size_t s = 0; s < TRIT_ARRAY_LEN(sizes); s++)
            for (int t = 0; t < 3; t++) {
                const uint32_t wt = t == 0 ? TRIT_F32 : t == 1 ? TRIT_F16 : TRIT_BF16;
                rng_state = 7 + s;
                check_dots(opt_sets[k], wt, sizes[s]);
            }
}

/* Integer exactness: with unit scales every optimized ternary dot is the exact integer sum. */
Test(kernels_opt, ternary_exact_with_unit_scales) {
    const int nk = n_opt_sets();
    rng_state = 5;
    const int64_t n = 4 * QK_K;
    for (int t = 0; t < 2; t++) {
        const uint32_t wt = t ? TRIT_TQ1_0 : TRIT_TQ2_0;
        size_t rb;
        uint8_t *w = random_weights(wt, n, 1, &rb);
        for (int64_t i = 0; i < n / QK_K; i++) {
            if (wt == TRIT_TQ2_0)
                ((block_tq2_0 *)w)[i].d = trit_fp32_to_fp16(1.0f);
            else
                ((block_tq1_0 *)w)[i].d = trit_fp32_to_fp16(1.0f);
        }
        block_q8_K a[4];
        for (int i = 0; i < 4; i++) {
            a[i].d = 1.0f;
            for (int j = 0; j < QK_K; j++) a[i].qs[j] = (int8_t)(rng_next() % 255 - 127);
            for (int j = 0; j < 16; j++) {
                int s = 0;
                for (int q = 0; q < 16; q++) s += a[i].qs[j * 16 + q];
                a[i].bsums[j] = (int16_t)s;
            }
        }
        const float ref = trit_kernels_ref()->vec_dot(wt, n, w, a);
        cr_assert_eq(ref, roundf(ref));
        for (int k = 0; k < nk; k++)
            cr_assert_eq(opt_sets[k]->vec_dot(wt, n, w, a), ref, "%s", opt_sets[k]->name);
        free(w);
    }
}

/* The multi-token tile path (gemm) gives the same numbers as vec_dot per (row, token). */
Test(kernels_opt, gemm_matches_vec_dot) {
    const int nk = n_opt_sets();
    const int64_t n = 512, nr = 11, nt = 7;
    for (int k = 0; k < nk; k++) {
        if (!opt_sets[k]->gemm) continue;
        for (size_t ti = 0; ti < TRIT_ARRAY_LEN(all_types); ti++) {
            const uint32_t wt = all_types[ti];
            rng_state = 300 + ti;
            size_t rb;
            char *w = random_weights(wt, n, nr, &rb);
            float *x = random_floats(n * nt, 1.0f);
            const size_t ab = trit_act_row_size(wt, n);
            char *act = xmalloc(ab * nt);
            for (int64_t t = 0; t < nt; t++)
                opt_sets[k]->quantize_act(wt, x + t * n, act + t * ab, n);
            float out[7 * 13];
            for (size_t i = 0; i < TRIT_ARRAY_LEN(out); i++) out[i] = NAN;
            opt_sets[k]->gemm(wt, n, w, rb, nr, act, ab, nt, out, 13);
            for (int64_t t = 0; t < nt; t++)
                for (int64_t r = 0; r < nr; r++) {
                    const float e = opt_sets[k]->vec_dot(wt, n, w + r * rb, act + t * ab);
                    cr_assert_float_eq(out[t * 13 + r], e, 1e-5f * (1 + fabsf(e)),
                                       "%s type %u r %lld t %lld", opt_sets[k]->name, wt,
                                       (long long)r, (long long)t);
                    /* quant types: the gemm's contract is vec_dot itself, bit for bit */
                    if (wt != TRIT_F32 && wt != TRIT_F16 && wt != TRIT_BF16)
                        cr_assert(memcmp(&out[t * 13 + r], &e, 4) == 0,
                                  "%s type %u r %lld t %lld: gemm %a vs vec_dot %a",
                                  opt_sets[k]->name, wt, (long long)r, (long long)t,
                                  out[t * 13 + r], e);
                }
            free(w), free(x), free(act);
        }
    }
}

/* vec_dot_tile (the one-token order for a batch's decode rows) is vec_dot bit for bit, for
 * every type F32/F16 included, every row count (the ternary tiles pair rows: odd counts leave a
 * lone row) and token count (groups of 4 and their tails), and lengths with F32/F16 tails.
 * vec_dot_rows likewise for every row count (its tiles of up to 8 rows). */
Test(kernels_opt, vec_dot_tile_and_rows_match_vec_dot) {
    const int nk = n_opt_sets();
    const int64_t nrs[] = {1, 2, 3, 5, 6, 7, 9, 13}, nts[] = {1, 2, 3, 4, 5, 8};
    for (int k = 0; k < nk; k++)
        for (size_t ti = 0; ti < TRIT_ARRAY_LEN(all_types); ti++) {
            const uint32_t wt = all_types[ti];
            const bool flt = wt == TRIT_F32 || wt == TRIT_F16 || wt == TRIT_BF16;
            const int64_t n = flt ? 2560 - 24 : 512;
            rng_state = 900 + ti;
            size_t rb;
            char *w = random_weights(wt, n, 13, &rb);
            float *x = random_floats(n * 8, 1.0f);
            const size_t ab = trit_act_row_size(wt, n);
            char *act = xmalloc(ab * 8);
            for (int64_t t = 0; t < 8; t++)
                opt_sets[k]->quantize_act(wt, x + t * n, act + t * ab, n);
            float e[8][13], out[8 * 13];
            for (int64_t t = 0; t < 8; t++)
                for (int64_t r = 0; r < 13; r++)
                    e[t][r] = opt_sets[k]->vec_dot(wt, n, w + r * rb, act + t * ab);
            for (size_t a = 0; a < TRIT_ARRAY_LEN(nrs); a++) {
                const int64_t nr = nrs[a];
                opt_sets[k]->vec_dot_rows(wt, n, w, rb, nr, act + 2 * ab, out);
                for (int64_t r = 0; r < nr; r++)
                    cr_assert(memcmp(&out[r], &e[2][r], 4) == 0,
                              "%s type %u: vec_dot_rows of %lld rows, row %lld: %a vs %a",
                              opt_sets[k]->name, wt, (long long)nr, (long long)r, out[r], e[2][r]);
                if (!opt_sets[k]->vec_dot_tile) continue;
                for (size_t b = 0; b < TRIT_ARRAY_LEN(nts); b++) {
                    const int64_t nt = nts[b];
                    for (size_t i = 0; i < TRIT_ARRAY_LEN(out); i++) out[i] = NAN;
                    opt_sets[k]->vec_dot_tile(wt, n, w, rb, nr, act, ab, nt, out, 13);
                    for (int64_t t = 0; t < nt; t++)
                        for (int64_t r = 0; r < nr; r++)
                            cr_assert(memcmp(&out[t * 13 + r], &e[t][r], 4) == 0,
                                      "%s type %u: vec_dot_tile %lld x %lld, r %lld t %lld: %a "
                                      "vs vec_dot %a",
                                      opt_sets[k]->name, wt, (long long)nr, (long long)nt,
                                      (long long)r, (long long)t, out[t * 13 + r], e[t][r]);
                }
            }
            free(w), free(x), free(act);
        }
}

/* $TRIT_KERNELS picks the set (Criterion runs each test in its own process, so the choice
 * trit_kernels_best() caches on first use is made here). */
Test(kernels_act, env_override) {
    setenv("TRIT_KERNELS", "ref", 1);
    /* trit_kernels_best caches its choice at first use; this test runs in its own process */
    cr_assert_str_eq(trit_kernels_best()->name, "ref");
    unsetenv("TRIT_KERNELS");
}

/* ---- matmul ---- */
static void check_matmul(uint32_t wt, int64_t n_in, int64_t n_out, int64_t n_tok, float w_scale) {
    size_t rb;
    rng_state = 1000 + wt + n_tok;
    void *w = random_weights(wt, n_in, n_out, &rb);
    float *x = random_floats(n_in * n_tok, 1.0f);
    float *y1 = xmalloc(sizeof(float) * n_out * n_tok),
          *yn = xmalloc(sizeof(float) * n_out * n_tok);
    float *yr = xmalloc(sizeof(float) * n_out * n_tok);
    const trit_kernels *best = trit_kernels_best();
    trit_matmul(best, NULL, wt, w, w_scale, n_in, n_out, x, n_tok, y1);
    trit_matmul(trit_kernels_ref(), NULL, wt, w, w_scale, n_in, n_out, x, n_tok, yr);
    cr_assert_leq(nmse(y1, yr, n_out * n_tok), 5e-4, "type %u", wt);
    /* explicit dot check of one element */
    const size_t asz = trit_act_row_size(wt, n_in);
    char *act = xmalloc(asz);
    trit_kernels_ref()->quantize_act(wt, x + (n_tok - 1) * n_in, act, n_in);
    const float e =
        w_scale * trit_kernels_ref()->vec_dot(wt, n_in, (char *)w + (n_out - 1) * rb, act);
    cr_assert_float_eq(yr[(n_tok - 1) * n_out + n_out - 1], e, 1e-4 * (1 + fabsf(e)));
    for (int nth = 2; nth <= 4; nth++) {
        trit_pool *pool = trit_pool_new(nth);
        memset(yn, 0, sizeof(float) * n_out * n_tok);
        trit_matmul(best, pool, wt, w, w_scale, n_in, n_out, x, n_tok, yn);
        cr_assert_eq(memcmp(y1, yn, sizeof(float) * n_out * n_tok), 0,
                     "type %u: %d threads differ from 1 thread", wt, nth);
        trit_pool_free(pool);
    }
    free(w), free(x), free(y1), free(yn), free(yr), free(act);
}

Test(kernels_matmul, threads_and_ref) {
    for (size_t t = 0; t < TRIT_ARRAY_LEN(all_types); t++) {
        check_matmul(all_types[t], 512, 200, 1, 1.0f);
        check_matmul(all_types[t], 256, 37, 5, 1.0f);
        check_matmul(all_types[t], 768, 130, 19, all_types[t] == TRIT_I2_S ? 0.75f : 1.0f);
    }
}

/* trit_matmul_multi: each part bit-identical to its own trit_matmul, for 1 and 3 threads. */
static void check_matmul_multi(uint32_t wt, int64_t n_in, int64_t n_tok) {
    const int64_t n_out[3] = {96, 32, 32}; /* q, k, v shapes */
    size_t rb;
    rng_state = 7000 + wt + n_tok;
    float *x = random_floats(n_in * n_tok, 1.0f);
    void *w[3];
    float *ys[3], *ym[3];
    trit_mm_part parts[3];
    for (int p = 0; p < 3; p++) {
        w[p] = random_weights(wt, n_in, n_out[p], &rb);
        ys[p] = xmalloc(sizeof(float) * n_out[p] * n_tok);
        ym[p] = xcalloc((size_t)(n_out[p] * n_tok), sizeof(float));
        const float sc = wt == TRIT_I2_S ? 0.5f + p : 1.0f;
        parts[p] = (trit_mm_part){w[p], sc, n_out[p], ym[p]};
        trit_matmul(trit_kernels_best(), NULL, wt, w[p], sc, n_in, n_out[p], x, n_tok, ys[p]);
    }
    for (int nth = 1; nth <= 3; nth += 2) {
        trit_pool *pool = trit_pool_new(nth);
        for (int p = 0; p < 3; p++) memset(ym[p], 0, sizeof(float) * n_out[p] * n_tok);
        trit_matmul_multi(trit_kernels_best(), pool, wt, n_in, x, n_tok, 3, parts);
        for (int p = 0; p < 3; p++)
            cr_assert_eq(memcmp(ys[p], ym[p], sizeof(float) * n_out[p] * n_tok), 0,
                         "type %u part %d n_tok %lld threads %d", wt, p, (long long)n_tok, nth);
        trit_pool_free(pool);
    }
    for (int p = 0; p < 3; p++) free(w[p]), free(ys[p]), free(ym[p]);
    free(x);
}

Test(kernels_matmul, multi_parts_match_single) {
    for (size_t t = 0; t < TRIT_ARRAY_LEN(all_types); t++) {
        check_matmul_multi(all_types[t], 512, 1);
        check_matmul_multi(all_types[t], 256, 7);
    }
}

/* The per-CPU decode sweep and prefetch (trit_tuning) change no result: every candidate gives
 * the bytes of the table's row, for 1 and 2 threads and a row count no sweep divides. */
/* No tuning changes a result: decode (1 token) and a batch's few tokens (3, 8: the gemm tile
 * swept S rows at a time with prefetch), any sweep, prefetch distance, cap and thread count.
 * Ternary rows of a batch also equal their one-token products (vec_dot's order). */
Test(kernels_matmul, tuning_changes_no_result) {
    const trit_tuning saved = *trit_tuning_get();
    cr_assert(saved.sweep_rows >= 1 && saved.pf_rows >= 0 && saved.spin_us >= 0);
    cr_assert(saved.row && saved.row[0] && saved.cpu[0], "tuning row and cpu are named");
    const uint32_t types[] = {TRIT_TQ2_0, TRIT_TQ1_0, TRIT_F16};
    const int64_t toks[] = {1, 3, 8};
    for (size_t ty = 0; ty < TRIT_ARRAY_LEN(types); ty++)
        for (size_t tk = 0; tk < TRIT_ARRAY_LEN(toks); tk++) {
            const int64_t n_in = 512, n_out = 203, nt = toks[tk];
            size_t rb;
            rng_state = 9100 + ty;
            float *x = random_floats(n_in * nt, 1.0f);
            void *w = random_weights(types[ty], n_in, n_out, &rb);
            float *y0 = xmalloc(sizeof(float) * n_out * nt),
                  *y1 = xmalloc(sizeof(float) * n_out * nt);
            trit_matmul(trit_kernels_best(), NULL, types[ty], w, 1.0f, n_in, n_out, x, nt, y0);
            if (types[ty] != TRIT_F16)
                for (int64_t t = 0; t < nt; t++) {
                    trit_matmul(trit_kernels_best(), NULL, types[ty], w, 1.0f, n_in, n_out,
                                x + t * n_in, 1, y1);
                    cr_assert_eq(memcmp(y0 + t * n_out, y1, sizeof(float) * n_out), 0,
                                 "type %u: token %lld of %lld differs from its one-token product",
                                 types[ty], (long long)t, (long long)nt);
                }
            const int sweeps[] = {1, 2, 3, 8}, pfs[] = {0, 1, 5, 16}, caps[] = {0, 1, 0, 4};
            for (int nth = 1; nth <= 2; nth++) {
                trit_pool *pool = trit_pool_new(nth);
                for (size_t s = 0; s < TRIT_ARRAY_LEN(sweeps); s++)
                    for (size_t p = 0; p < TRIT_ARRAY_LEN(pfs); p++) {
                        trit_tuning t = saved;
                        t.sweep_rows = sweeps[s], t.pf_rows = pfs[p], t.pf_max_kb = caps[p];
                        trit_tuning_set(&t);
                        memset(y1, 0, sizeof(float) * n_out * nt);
                        trit_matmul(trit_kernels_best(), pool, types[ty], w, 1.0f, n_in, n_out, x,
                                    nt, y1);
                        cr_assert_eq(memcmp(y0, y1, sizeof(float) * n_out * nt), 0,
                                     "type %u, %lld tokens: sweep %d pf %d threads %d", types[ty],
                                     (long long)nt, sweeps[s], pfs[p], nth);
                    }
                trit_pool_free(pool);
            }
            trit_tuning_set(&saved);
            free(x), free(w), free(y0), free(y1);
        }
}

/* ---- optimized attention against trit_attention (ops.c) ---- */
/* Fill n keys and n values of a KV cache of kv_type (F16 or F32) from the rng: keys normal
 * with sigma 2, values normal, interleaved k, v per element (the draw order the tests seed). */
static void kv_fill(uint32_t kv_type, int64_t n, char *kc, char *vc) {
    for (int64_t i = 0; i < n; i++) {
        const float k = rng_normal() * 2.0f, v = rng_normal();
        if (kv_type == TRIT_F16) { /* stored as the cache holds it: fp16 bits */
            ((uint16_t *)kc)[i] = trit_fp32_to_fp16(k);
            ((uint16_t *)vc)[i] = trit_fp32_to_fp16(v);
        } else {
            ((float *)kc)[i] = k;
            ((float *)vc)[i] = v;
        }
    }
}

typedef void (*att_fn)(trit_pool *, const float *, const void *, const void *, uint32_t, int, int,
                       int, int, int, int, float, float *);

/* An optimized attention (fn) with 2 threads against trit_attention, NMSE within max_nmse
 * (0: byte-identical). */
static void check_attention(att_fn fn, uint32_t kv_type, int n_head, int n_head_kv, int D, int pos0,
                            int n_tok, double max_nmse) {
    const int n_ctx = pos0 + n_tok + 3, es = kv_type == TRIT_F16 ? 2 : 4;
    rng_state = 4242 + (uint64_t)(D * 7 + n_tok);
    float *q = random_floats((int64_t)n_tok * n_head * D, 1.0f);
    char *kc = xcalloc((size_t)n_head_kv * n_ctx * D, es),
         *vc = xcalloc((size_t)n_head_kv * n_ctx * D, es);
    kv_fill(kv_type, (int64_t)n_head_kv * n_ctx * D, kc, vc);
    const int64_t n_out = (int64_t)n_tok * n_head * D;
    float *o1 = xmalloc(sizeof(float) * n_out), *o2 = xmalloc(sizeof(float) * n_out);
    const float scale = 1.0f / sqrtf((float)D);
    trit_attention(NULL, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, D, pos0, n_tok, scale, o1);
    trit_pool *pool = trit_pool_new(2);
    fn(pool, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, D, pos0, n_tok, scale, o2);
    trit_pool_free(pool);
    const double e = nmse(o2, o1, n_out);
    cr_assert_leq(e, max_nmse, "kv %u heads %d/%d D %d pos0 %d n_tok %d: nmse %g", kv_type, n_head,
                  n_head_kv, D, pos0, n_tok, e);
    if (max_nmse == 0) /* bit-identical, not just close */
        cr_assert_eq(memcmp(o1, o2, sizeof(float) * n_out), 0, "D %d n_tok %d", D, n_tok);
    free(q), free(kc), free(vc), free(o1), free(o2);
}

/* The AVX-512 and AVX2 sets' attention (each where the CPU has it) byte-identical to ops.c. */
Test(kernels_opt, attention_vs_ops) {
    if (!trit_kernels_avx2()) {
        cr_skip_test("no AVX2 on this CPU");
        return;
    }
    cr_assert_eq(trit_kernels_avx2()->attention, trit_attention_avx2);
    if (trit_kernels_avx512())
        cr_assert_eq(trit_kernels_avx512()->attention, trit_attention_avx512);
    else
        cr_log_info("no AVX-512: only the AVX2 attention was checked");
    const att_fn fns[2] = {trit_attention_avx2,
                           trit_kernels_avx512() ? trit_attention_avx512 : NULL};
    for (int s = 0; s < 2 && fns[s]; s++)
        for (int f = 0; f < 2; f++) {
            const uint32_t kt = f ? TRIT_F16 : TRIT_F32;
            const double tol = 0;                               /* same summation orders as ops.c */
            check_attention(fns[s], kt, 4, 2, 64, 37, 1, tol);  /* decode */
            check_attention(fns[s], kt, 8, 2, 128, 0, 5, tol);  /* short prompt */
            check_attention(fns[s], kt, 4, 1, 128, 3, 70, tol); /* tiled (>= 64 rows) */
            check_attention(fns[s], kt, 2, 2, 64, 130, 64, tol); /* tiled, several key tiles */
            check_attention(fns[s], kt, 4, 4, 128, 200, 3, tol); /* decode, long context */
            /* tiled, n_tok % 4 != 0 (odd last row unit), pos0 % 8 != 0 (partial key groups) */
            check_attention(fns[s], kt, 4, 2, 128, 13, 67, tol);
            check_attention(fns[s], kt, 2, 1, 80, 5, 65, tol); /* tiled, D % 32 == 16 */
        }
}

/* --numerics fast attention: the AVX-512 kernel equals its scalar twin byte for byte, with 1
 * and 3 threads (no split-KV: the thread count changes nothing), and stays within
 * test-backend-ops' flash-attention bound (NMSE 5e-4) of the exact path. */
static void check_fast_attention(uint32_t kv_type, int n_head, int n_head_kv, int D, int pos0,
                                 int n_tok) {
    const int n_ctx = pos0 + n_tok + 3, es = kv_type == TRIT_F16 ? 2 : 4;
    rng_state = 5151 + (uint64_t)(D * 7 + n_tok + pos0);
    float *q = random_floats((int64_t)n_tok * n_head * D, 1.0f);
    char *kc = xcalloc((size_t)n_head_kv * n_ctx * D, es),
         *vc = xcalloc((size_t)n_head_kv * n_ctx * D, es);
    kv_fill(kv_type, (int64_t)n_head_kv * n_ctx * D, kc, vc);
    const int64_t n_out = (int64_t)n_tok * n_head * D;
    float *exact = xmalloc(sizeof(float) * n_out), *twin = xmalloc(sizeof(float) * n_out),
          *o = xmalloc(sizeof(float) * n_out);
    const float scale = 1.0f / sqrtf((float)D);
    trit_attention(NULL, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, D, pos0, n_tok, scale,
                   exact);
    trit_attention_fast(NULL, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, D, pos0, n_tok, scale,
                        twin);
    const double e = nmse(twin, exact, n_out);
    cr_assert_leq(e, 5e-4, "fast vs exact: kv %u D %d pos0 %d n_tok %d: nmse %g", kv_type, D, pos0,
                  n_tok, e);
    cr_log_info("nmse %g kv %u D %d n_tok %d", e, kv_type, D, n_tok);
    cr_assert_gt(e, 0.0, "fast differs from exact somewhere (else the test checks nothing)");
    const att_fn fns[2] = {trit_attention_fast,
                           trit_kernels_avx512() ? trit_attention_fast_avx512 : NULL};
    for (int f = 0; f < 2; f++)
        for (int nth = 1; nth <= 3 && fns[f]; nth += 2) {
            trit_pool *pool = trit_pool_new(nth);
            memset(o, 0, sizeof(float) * n_out);
            fns[f](pool, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, D, pos0, n_tok, scale, o);
            cr_assert_eq(memcmp(o, twin, sizeof(float) * n_out), 0,
                         "%s, %d threads: kv %u D %d pos0 %d n_tok %d differs from the twin",
                         f ? "avx512" : "scalar", nth, kv_type, D, pos0, n_tok);
            trit_pool_free(pool);
        }
    free(q), free(kc), free(vc), free(exact), free(twin), free(o);
}

Test(kernels_fast, attention_twin_and_nmse) {
    for (int f = 0; f < 2; f++) {
        const uint32_t kt = f ? TRIT_F16 : TRIT_F32;
        check_fast_attention(kt, 4, 2, 64, 37, 1);   /* decode */
        check_fast_attention(kt, 8, 2, 128, 0, 5);   /* short prompt */
        check_fast_attention(kt, 4, 1, 128, 3, 70);  /* >= 64 rows */
        check_fast_attention(kt, 2, 2, 80, 130, 64); /* D % 64 != 0, several key tiles */
        check_fast_attention(kt, 4, 4, 128, 700, 1); /* long decode (exact path splits) */
        check_fast_attention(kt, 4, 2, 64, 63, 3);   /* tile edge */
    }
    if (!trit_kernels_avx512()) cr_log_info("no AVX-512: only the scalar twin was checked");
}

Test(kernels_fast, kernel_sets_and_names) {
    cr_assert_eq(trit_numerics_parse("exact"), TRIT_NUMERICS_EXACT);
    cr_assert_eq(trit_numerics_parse("fast"), TRIT_NUMERICS_FAST);
    cr_assert_eq(trit_numerics_parse("Fast"), -1);
    cr_assert_eq(trit_numerics_parse(""), -1);
    cr_assert_eq(trit_numerics_parse(NULL), -1);
    const trit_kernels *b = trit_kernels_best();
    cr_assert_eq(trit_kernels_for(b, TRIT_NUMERICS_EXACT), b, "exact is the best set itself");
    const trit_kernels *f = trit_kernels_for(b, TRIT_NUMERICS_FAST);
    cr_assert_neq(f, b);
    cr_assert(strstr(f->name, "+fast"), "name %s", f->name);
    cr_assert_eq(f->vec_dot, b->vec_dot, "fast keeps the exact dots");
    cr_assert_eq(f->attention, trit_kernels_avx512() && b == trit_kernels_avx512()
                                   ? trit_attention_fast_avx512
                                   : trit_attention_fast);
    cr_assert_eq(trit_kernels_for(f, TRIT_NUMERICS_FAST), f);
    const trit_kernels *rf = trit_kernels_for(trit_kernels_ref(), TRIT_NUMERICS_FAST);
    cr_assert_eq(rf->attention, trit_attention_fast);
    cr_assert_str_eq(rf->name, "ref+fast");
}

/* fn (a w-lane v_expf, w <= 16) equals go_v_expf lane for lane on reps vectors: the n_edge
 * edge inputs first, then uniform draws in [-180, 60) from the rng. */
static void check_expf_lanes(void (*fn)(const float *, float *), int w, const float *edge,
                             int n_edge, int reps) {
    float x[16], y[16];
    for (int rep = 0; rep < reps; rep++) {
        for (int l = 0; l < w; l++) {
            const int k = rep * w + l;
            x[l] = k < n_edge ? edge[k] : (rng_uniform() - 0.75f) * 240.0f;
        }
        fn(x, y);
        for (int l = 0; l < w; l++) {
            const float want = go_v_expf(x[l]);
            cr_assert(memcmp(&want, &y[l], 4) == 0, "v_expf%d(%a): %a, scalar %a", w, x[l], y[l],
                      want);
        }
    }
}

/* The AVX-512 ggml_v_expf equals the scalar go_v_expf lane for lane (ordinary, tiny, huge,
 * infinite and NaN-free edge inputs), and trit_swiglu_avx512 equals ggml's SwiGLU order
 * (go_v_silu for the 16-lane part, libm after) bit for bit. */
Test(kernels_opt, v_expf_lanes_and_swiglu) {
    if (!trit_kernels_avx512()) {
        cr_skip_test("no AVX-512 on this CPU");
        return;
    }
    const float edge[] = {0.0f,    -0.0f,   1.0f,    -1.0f,   88.7f,  -87.3f,
                          -103.9f, -150.f,  -200.0f, 100.0f,  133.0f, -INFINITY,
                          1e-30f,  -1e-30f, -88.5f,  -126.5f, 89.5f,  -300.0f};
    rng_state = 31337;
    check_expf_lanes(trit_v_expf16_avx512, 16, edge, (int)TRIT_ARRAY_LEN(edge), 2000);
    const int64_t n = 6912 + 5; /* a 16-lane part and a libm tail */
    float *g = random_floats(n, 3.0f), *u = random_floats(n, 1.0f);
    float *y1 = xmalloc(sizeof(float) * n), *y2 = xmalloc(sizeof(float) * n);
    const int64_t n16 = n & ~(int64_t)15;
    for (int64_t i = 0; i < n; i++) y1[i] = (i < n16 ? go_v_silu(g[i]) : trit_silu(g[i])) * u[i];
    trit_swiglu_avx512(g, u, y2, n);
    cr_assert_eq(memcmp(y1, y2, sizeof(float) * n), 0, "swiglu differs from ggml's order");
    free(g), free(u), free(y1), free(y2);
}

/* The AVX2 attention's 8-lane v_expf equals go_v_expf lane for lane: in range, masked keys
 * (-inf), results that go_v_expf scales with ldexpf (subnormal, |n| in (126, 192]), and
 * vectors mixing these with ordinary lanes. */
Test(kernels_opt, v_expf8_lanes) {
    if (!trit_kernels_avx2()) {
        cr_skip_test("no AVX2 on this CPU");
        return;
    }
    /* edge[32..39]: ordinary lanes with masked (-inf) and huge ones, none for the slow path */
    const float edge[] = {
        0.0f,     -0.0f,     1.0f,      -1.0f,     88.7f,    -87.3f,    -103.9f, -150.f,  -200.0f,
        100.0f,   133.0f,    -INFINITY, 1e-30f,    -1e-30f,  -88.5f,    -126.5f, 89.5f,   -300.0f,
        INFINITY, -INFINITY, -87.0f,    -87.4f,    88.0f,    88.8f,     -133.f,  -133.3f, -0.5f,
        3.0f,     -INFINITY, -2.0f,     -INFINITY, -5.0f,    -INFINITY, -7.0f,   -1e3f,   -9.0f,
        1e3f,     -1.0f,     140.0f,    2.0f,      INFINITY, -INFINITY, 0.5f,    -3.0f};
    rng_state = 4141;
    check_expf_lanes(trit_v_expf8_avx2, 8, edge, (int)TRIT_ARRAY_LEN(edge), 4000);
}

/* ---- against the reference ggml ---- */
typedef void (*ggml_vec_dot_fn)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y,
                                size_t by, int nrc);
typedef void (*ggml_quant_fn)(const float *x, void *y, int64_t k);

/* Every kernel set is bit-identical to the reference's own x86 functions (the ones the
 * AVX-512 build of llama.cpp runs): the Q8_K quantizer, the quant dots (ggml's AVX2 kernels)
 * and the F32/F16 dots (ggml_vec_dot_f32/f16, SIMD lanes). */
Test(kernels_ggml, ref_matches_ggml) {
    ggml_quant_fn q8k = (ggml_quant_fn)ggml_ref_sym("quantize_row_q8_K");
    ggml_quant_fn q80 = (ggml_quant_fn)ggml_ref_sym("quantize_row_q8_0");
    ggml_vec_dot_fn tq2 = (ggml_vec_dot_fn)ggml_ref_sym("ggml_vec_dot_tq2_0_q8_K");
    ggml_vec_dot_fn tq1 = (ggml_vec_dot_fn)ggml_ref_sym("ggml_vec_dot_tq1_0_q8_K");
    ggml_vec_dot_fn d80 = (ggml_vec_dot_fn)ggml_ref_sym("ggml_vec_dot_q8_0_q8_0");
    ggml_vec_dot_fn df16 = (ggml_vec_dot_fn)ggml_ref_sym("ggml_vec_dot_f16");
    ggml_vec_dot_fn df32 = (ggml_vec_dot_fn)ggml_ref_sym("ggml_vec_dot_f32");
    ggml_vec_dot_fn dbf = (ggml_vec_dot_fn)ggml_ref_sym("ggml_vec_dot_bf16");
    if (!q8k || !tq2 || !tq1 || !d80 || !q80 || !df16 || !df32 || !dbf) {
        cr_skip_test("reference libggml not found (run scripts/setup)");
        return;
    }
    const trit_kernels *sets[3] = {trit_kernels_ref(), trit_kernels_avx2(), trit_kernels_avx512()};
    const trit_kernels *ref = sets[0];
    const int64_t n = 2560;
    rng_state = 77;
    float *x = random_floats(n, 1.5f);
    /* Q8_K quantization: byte identical (bsums included) */
    const size_t asz = trit_act_row_size(TRIT_TQ2_0, n);
    block_q8_K *a1 = xmalloc(asz), *a2 = xmalloc(asz);
    ref->quantize_act(TRIT_TQ2_0, x, a1, n);
    q8k(x, a2, n);
    cr_assert_eq(memcmp(a1, a2, asz), 0, "Q8_K quantization differs from ggml");
    /* Q8_0 quantization: byte identical to ggml's x86 quantize_row_q8_0, for every set; exact
     * halves (x * 127/amax = k + 0.5) included */
    for (int64_t i = 0; i < n; i += 32) x[i + 5] = x[i] * 2.5f / 127.f * (i % 64 ? 1.0f : -1.0f);
    const size_t bsz = trit_act_row_size(TRIT_Q8_0, n);
    block_q8_0 *b1 = xmalloc(bsz), *b2 = xmalloc(bsz);
    q80(x, b2, n);
    for (int k = 0; k < 3; k++)
        if (sets[k]) {
            sets[k]->quantize_act(TRIT_Q8_0, x, b1, n);
            cr_assert_eq(memcmp(b1, b2, bsz), 0, "%s: Q8_0 quantization differs from ggml",
                         sets[k]->name);
        }
    /* dots: bit-identical for every kernel set, also for lengths that are not a multiple of
     * 64 (the f32/f16 tails) */
    uint16_t *h = xmalloc(n * 2), *hb = xmalloc(n * 2);
    for (int64_t i = 0; i < n; i++)
        h[i] = trit_fp32_to_fp16(x[n - 1 - i]), hb[i] = trit_fp32_to_bf16(x[n - 1 - i]);
    for (int t = 0; t < 6; t++) {
        const uint32_t wt =
            (uint32_t[]){TRIT_TQ2_0, TRIT_TQ1_0, TRIT_Q8_0, TRIT_F16, TRIT_F32, TRIT_BF16}[t];
        ggml_vec_dot_fn g = (ggml_vec_dot_fn[]){tq2, tq1, d80, df16, df32, dbf}[t];
        const int64_t nn = wt == TRIT_F16 || wt == TRIT_F32 || wt == TRIT_BF16 ? n - 24 : n;
        size_t rb;
        void *w = random_weights(wt, n, 8, &rb);
        const void *act = wt == TRIT_Q8_0   ? (const void *)b1
                          : wt == TRIT_F16  ? (const void *)h
                          : wt == TRIT_F32  ? (const void *)x
                          : wt == TRIT_BF16 ? (const void *)hb
                                            : (const void *)a1;
        for (int r = 0; r < 8; r++) {
            float s = NAN;
            g((int)nn, &s, 0, (char *)w + r * rb, 0, act, 0, 1);
            for (int k = 0; k < 3; k++) {
                if (!sets[k]) continue;
                const float v = sets[k]->vec_dot(wt, nn, (char *)w + r * rb, act);
                cr_assert(memcmp(&v, &s, 4) == 0, "%s type %u row %d: %.9g vs ggml %.9g",
                          sets[k]->name, wt, r, v, s);
            }
        }
        free(w);
    }
    free(x), free(a1), free(a2), free(b1), free(b2), free(h), free(hb);
}

/* ---- split-KV decode ---- */

/* One decode step with n_threads (0: no pool, never split) into out. */
static void decode_att(uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int D, int pos0,
                       int n_threads, const float *q, const char *kc, const char *vc, float *out) {
    trit_pool *pool = n_threads ? trit_pool_new(n_threads) : NULL;
    trit_attention(pool, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, D, pos0, 1,
                   1.0f / sqrtf((float)D), out);
    trit_pool_free(pool);
}

Test(kernels_split, when_it_splits) {
    cr_assert_not(trit_attention_splits(2048, 1, 4));
    cr_assert_not(trit_attention_splits(2048, 256, 4)); /* view 256 */
    cr_assert(trit_attention_splits(2048, 257, 4));     /* view 512 */
    cr_assert(
        trit_attention_splits(400, 300, 4)); /* llama.cpp's view: trit's n_ctx plays no part */
    cr_assert_not(trit_attention_splits(2048, 1500, 1));
    cr_assert(trit_attention_splits(2048, 1500, 2));
}

/* Attention of one decode query in double (F16 cache: Q rounded to fp16 as ggml's K.Q). */
static void exact_att(uint32_t kv_type, int n_ctx, int nh, int nkv, int D, int n_kv, const float *q,
                      const char *kc, const char *vc, float *out) {
    double *w = xmalloc(sizeof(double) * n_kv);
    for (int h = 0; h < nh; h++) {
        const size_t base = (size_t)(h / (nh / nkv)) * n_ctx * D;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < n_kv; j++) {
            double s = 0;
            for (int i = 0; i < D; i++) {
                const size_t k = base + (size_t)j * D + i;
                const float qi = q[h * D + i];
                s += kv_type == TRIT_F16 ? (double)trit_fp16_to_fp32(((uint16_t *)kc)[k]) *
                                               trit_fp16_to_fp32(trit_fp32_to_fp16(qi))
                                         : (double)((float *)kc)[k] * qi;
            }
            w[j] = s / sqrt((double)D);
            mx = fmax(mx, w[j]);
        }
        for (int j = 0; j < n_kv; j++) sum += (w[j] = exp(w[j] - mx));
        for (int i = 0; i < D; i++) {
            double a = 0;
            for (int j = 0; j < n_kv; j++) {
                const size_t k = base + (size_t)j * D + i;
                a += w[j] * (kv_type == TRIT_F16 ? trit_fp16_to_fp32(((uint16_t *)vc)[k])
                                                 : ((float *)vc)[k]);
            }
            out[h * D + i] = (float)(a / sum);
        }
    }
    free(w);
}

/* Split vs unsplit over a long context. F32 cache: only float rounding of the combine differs
 * (NMSE ~1e-14, bound 1e-7). F16 cache: ggml's numerics keep the V sum in an fp16 accumulator,
 * rounded after every key, so any two summation orders differ by ~1e-5 NMSE after hundreds of
 * keys; the split result (each chunk rounds its own accumulator) is checked to be as close to
 * the exact (double) attention as the unsplit one. Both are what llama.cpp computes with the
 * same thread count. */
Test(kernels_split, matches_unsplit) {
    const int n_ctx = 2048, nh = 8, nkv = 2, D = 128;
    for (int f = 0; f < 2; f++) {
        const uint32_t kt = f ? TRIT_F16 : TRIT_F32;
        const int es = f ? 2 : 4;
        rng_state = 99 + (uint64_t)f;
        char *kc = xcalloc((size_t)nkv * n_ctx * D, es), *vc = xcalloc((size_t)nkv * n_ctx * D, es);
        kv_fill(kt, nkv * n_ctx * D, kc, vc);
        float *q = random_floats((int64_t)nh * D, 1.0f);
        float *o1 = xmalloc(sizeof(float) * nh * D), *o2 = xmalloc(sizeof(float) * nh * D),
              *o3 = xmalloc(sizeof(float) * nh * D);
        for (int pos0 = 700; pos0 < n_ctx; pos0 += 600) {
            decode_att(kt, n_ctx, nh, nkv, D, pos0, 0, q, kc, vc, o1);
            for (int nth = 2; nth <= 4; nth += 2) {
                cr_assert(trit_attention_splits(n_ctx, pos0 + 1, nth));
                decode_att(kt, n_ctx, nh, nkv, D, pos0, nth, q, kc, vc, o2);
                const double e = nmse(o2, o1, nh * D);
                cr_assert_leq(e, f ? 1e-4 : 1e-7, "kv %u pos0 %d threads %d: nmse %g", kt, pos0,
                              nth, e);
                cr_assert_gt(e, 0.0, "split path not taken?");
                if (f) {
                    exact_att(kt, n_ctx, nh, nkv, D, pos0 + 1, q, kc, vc, o3);
                    const double es = nmse(o2, o3, nh * D), eu = nmse(o1, o3, nh * D);
                    cr_assert_leq(es, 2 * eu, "pos0 %d threads %d: split nmse %g vs unsplit %g",
                                  pos0, nth, es, eu);
                }
                decode_att(kt, n_ctx, nh, nkv, D, pos0, nth, q, kc, vc, o3); /* deterministic */
                cr_assert_eq(memcmp(o2, o3, sizeof(float) * nh * D), 0);
                if (trit_kernels_avx512()) { /* the AVX-512 chunk kernel in ops.c's split: identical
                                              */
                    trit_pool *pool = trit_pool_new(nth);
                    trit_attention_avx512(pool, q, kc, vc, kt, n_ctx, nh, nkv, D, pos0, 1,
                                          1.0f / sqrtf((float)D), o3);
                    trit_pool_free(pool);
                    cr_assert_eq(memcmp(o2, o3, sizeof(float) * nh * D), 0);
                }
            }
        }
        /* short context: a multi-threaded pool does not split, output bit-identical */
        decode_att(kt, n_ctx, nh, nkv, D, 200, 0, q, kc, vc, o1);
        decode_att(kt, n_ctx, nh, nkv, D, 200, 4, q, kc, vc, o2);
        cr_assert_eq(memcmp(o1, o2, sizeof(float) * nh * D), 0, "kv %u: short context changed", kt);
        free(kc), free(vc), free(q), free(o1), free(o2), free(o3);
    }
}

/* ---- numerics tables (kernels.h): the AVX2 reference build's orders ---- */

/* The table goes with the kernel set: $TRIT_KERNELS=avx2 gives the avx2 table, which repacks
 * no Q2_K and takes tinyBLAS for row lengths that are a multiple of 8. */
Test(kernels_table, avx2_set_selects_avx2_table) {
    if (!trit_kernels_avx2()) {
        cr_skip_test("no AVX2 on this CPU");
        return;
    }
    setenv("TRIT_KERNELS", "avx2", 1); /* trit_kernels_best caches it: own process */
    const trit_numerics_table *t = trit_numerics_table_get();
    cr_assert_str_eq(trit_kernels_best()->name, "avx2");
    cr_assert_eq(t, &trit_numerics_avx2);
    cr_assert_str_eq(t->ref_build, "build-avx2");
    cr_assert_eq(trit_matmul_dot_type(TRIT_Q2_K, 64, 0, 1), TRIT_Q2_K, "AVX2 build: Q2_K as is");
    cr_assert_eq(trit_matmul_dot_type(TRIT_Q4_K, 64, 0, 1), TRIT_Q4_K | TRIT_REPACK8);
    cr_assert(trit_matmul_tinyblas(TRIT_F16, 2568, 64, 2), "tinyBLAS<8>: k % 8");
    cr_assert_eq(trit_numerics_table_named("avx2"), &trit_numerics_avx2);
    cr_assert_null(trit_numerics_table_named("neon"));
    unsetenv("TRIT_KERNELS");
}

Test(kernels_table, default_table_is_the_cpus) {
    const char *ks = getenv("TRIT_KERNELS");
    if (ks && *ks) { /* a chosen set (42_avx2_exact runs this suite under avx2) */
        cr_skip_test("TRIT_KERNELS=%s chooses the set", ks);
        return;
    }
    const trit_numerics_table *t = trit_numerics_table_get();
#if defined(__aarch64__)
    cr_assert_eq(t, &trit_numerics_arm64);
    cr_assert_not_null(t->partial, "the arm64 table says what it does not cover yet");
    return;
#endif
    if (!trit_kernels_avx512()) {
        cr_assert_eq(t, &trit_numerics_avx2);
        return;
    }
    cr_assert_eq(t, &trit_numerics_avx512);
    cr_assert_eq(trit_matmul_dot_type(TRIT_Q2_K, 64, 0, 1), TRIT_Q2_K | TRIT_REPACK8);
    cr_assert_not(trit_matmul_tinyblas(TRIT_F16, 2568, 64, 2), "tinyBLAS<16>: k % 16");
    trit_numerics_use(&trit_numerics_avx2); /* an override wins over the set's table */
    cr_assert_eq(trit_numerics_table_get(), &trit_numerics_avx2);
    trit_numerics_use(NULL);
    cr_assert_eq(trit_numerics_table_get(), &trit_numerics_avx512);
}

/* go_v_expf8 (the AVX2 build's ggml_v_expf) differs from the AVX-512 form (else one table would
 * do), and the AVX2 vector version equals it lane for lane, slow-path lanes included. */
Test(kernels_table, v_expf8_avx2_build_lanes) {
    if (!trit_kernels_avx2()) {
        cr_skip_test("no AVX2 on this CPU");
        return;
    }
    const float edge[] = {0.0f,    -0.0f,   1.0f,     -1.0f,     88.7f,  -87.3f,  -103.9f, -150.f,
                          -200.0f, 100.0f,  133.0f,   -INFINITY, 1e-30f, -1e-30f, -88.5f,  -126.5f,
                          89.5f,   -300.0f, INFINITY, -87.0f,    -0.5f,  3.0f,    -5.0f,   -7.0f};
    rng_state = 8181;
    int differ = 0;
    float x[8], y[8];
    for (int rep = 0; rep < 3000; rep++) {
        for (int l = 0; l < 8; l++) {
            const int k = rep * 8 + l;
            x[l] = k < (int)TRIT_ARRAY_LEN(edge) ? edge[k] : (rng_uniform() - 0.75f) * 240.0f;
        }
        trit_v_expf8b_avx2(x, y);
        for (int l = 0; l < 8; l++) {
            const float want = go_v_expf8(x[l]), other = go_v_expf(x[l]);
            cr_assert(memcmp(&want, &y[l], 4) == 0, "v_expf8b(%a): %a, scalar %a", x[l], y[l],
                      want);
            differ += memcmp(&want, &other, 4) != 0;
        }
    }
    cr_assert_gt(differ, 0, "the two builds' v_expf never differed");
}

/* Under the avx2 table every set (scalar, AVX2, AVX-512 handing over) gives the same bits for
 * the float dots, tinyBLAS tiles, one-token tiles, SwiGLU and attention, in the lanes32 /
 * lanes8 orders of ref/ggml_order.h, and those differ from the avx512 table's somewhere. */
Test(kernels_table, avx2_table_twins) {
    if (!trit_kernels_avx2()) {
        cr_skip_test("no AVX2 on this CPU");
        return;
    }
    const trit_kernels *sets[3] = {trit_kernels_ref(), trit_kernels_avx2(), trit_kernels_avx512()};
    const int64_t sizes[] = {2560, 2536, 37, 100, 4, 76};
    int differ = 0;
    for (int wi = 0; wi < 3; wi++) {
        const uint32_t wt = (uint32_t[]){TRIT_F32, TRIT_F16, TRIT_BF16}[wi];
        for (size_t si = 0; si < TRIT_ARRAY_LEN(sizes); si++) {
            const int64_t n = sizes[si], nr = 5, nt = 3;
            rng_state = 900 + wi * 10 + si;
            size_t rb;
            char *w = random_weights(wt, n, nr, &rb);
            float *x = random_floats(n * nt, 1.0f), *wf = xmalloc(sizeof(float) * n),
                  *af = xmalloc(sizeof(float) * n);
            const size_t ab = trit_act_row_size(wt, n);
            char *act = xmalloc(ab * nt);
            for (int64_t t = 0; t < nt; t++) sets[0]->quantize_act(wt, x + t * n, act + t * ab, n);
            float e[3][5], blas[3][5];
            trit_numerics_use(&trit_numerics_avx2);
            for (int64_t t = 0; t < nt; t++)
                for (int64_t r = 0; r < nr; r++) {
                    const char *wr = w + r * rb, *ar = act + t * ab;
                    for (int64_t i = 0; i < n; i++) {
                        wf[i] = wt == TRIT_F32   ? ((const float *)wr)[i]
                                : wt == TRIT_F16 ? trit_fp16_to_fp32(((const uint16_t *)wr)[i])
                                                 : trit_bf16_to_fp32(((const uint16_t *)wr)[i]);
                        af[i] = wt == TRIT_F32   ? ((const float *)ar)[i]
                                : wt == TRIT_F16 ? trit_fp16_to_fp32(((const uint16_t *)ar)[i])
                                                 : trit_bf16_to_fp32(((const uint16_t *)ar)[i]);
                    }
                    e[t][r] = sets[0]->vec_dot(wt, n, wr, ar);
                    if (wt == TRIT_F32)
                        cr_assert(memcmp(&e[t][r], &(float){go_dot_f32_w(8, n, wf, af)}, 4) == 0);
                    if (wt == TRIT_F16)
                        cr_assert(memcmp(&e[t][r], &(float){go_dot_f16_w(8, n, wf, af)}, 4) == 0);
                    blas[t][r] = n % 8 ? NAN : go_dot_blas_w(8, n, wf, af);
                    trit_numerics_use(&trit_numerics_avx512);
                    const float o = sets[0]->vec_dot(wt, n, wr, ar);
                    differ += memcmp(&o, &e[t][r], 4) != 0;
                    trit_numerics_use(&trit_numerics_avx2);
                }
            for (int k = 0; k < 3; k++) {
                if (!sets[k]) continue;
                float out[3 * 5];
                for (int64_t t = 0; t < nt; t++) {
                    for (int64_t r = 0; r < nr; r++) {
                        const float v = sets[k]->vec_dot(wt, n, w + r * rb, act + t * ab);
                        cr_assert(memcmp(&v, &e[t][r], 4) == 0, "%s type %u n %lld: %a vs %a",
                                  sets[k]->name, wt, (long long)n, v, e[t][r]);
                    }
                    sets[k]->vec_dot_rows(wt, n, w, rb, nr, act + t * ab, out);
                    cr_assert_eq(memcmp(out, e[t], sizeof e[t]), 0, "%s type %u rows",
                                 sets[k]->name, wt);
                }
                if (sets[k]->vec_dot_tile) {
                    sets[k]->vec_dot_tile(wt, n, w, rb, nr, act, ab, nt, out, nr);
                    cr_assert_eq(memcmp(out, e, sizeof e), 0, "%s type %u tile", sets[k]->name, wt);
                }
                if (n % 8 == 0) { /* tinyBLAS<8> */
                    sets[k]->gemm(wt, n, w, rb, nr, act, ab, nt, out, nr);
                    cr_assert_eq(memcmp(out, blas, sizeof blas), 0, "%s type %u gemm n %lld",
                                 sets[k]->name, wt, (long long)n);
                }
            }
            trit_numerics_use(NULL);
            free(w), free(x), free(wf), free(af), free(act);
        }
    }
    cr_assert_gt(differ, 0, "the avx2 table's dots never differed from the avx512 table's");
    /* SwiGLU: the 8-lane go_v_silu8 part, libm after */
    const int64_t n = 6912 + 13;
    float *g = random_floats(n, 3.0f), *u = random_floats(n, 1.0f);
    float *y1 = xmalloc(sizeof(float) * n), *y2 = xmalloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++)
        y1[i] = (i < (n & ~7) ? go_v_silu_w(8, g[i]) : trit_silu(g[i])) * u[i];
    trit_numerics_use(&trit_numerics_avx2);
    trit_swiglu(g, u, y2, n);
    cr_assert_eq(memcmp(y1, y2, sizeof(float) * n), 0, "swiglu: not the AVX2 build's order");
    /* attention: the AVX2 and AVX-512 sets' = ops.c's under this table (tiled, decode) */
    const att_fn fns[2] = {trit_attention_avx2,
                           trit_kernels_avx512() ? trit_attention_avx512 : NULL};
    for (int s = 0; s < 2 && fns[s]; s++)
        for (int f = 0; f < 2; f++) {
            const uint32_t kt = f ? TRIT_F16 : TRIT_F32;
            check_attention(fns[s], kt, 4, 2, 64, 37, 1, 0);
            check_attention(fns[s], kt, 4, 1, 128, 3, 70, 0);
            check_attention(fns[s], kt, 2, 2, 64, 130, 64, 0);
            check_attention(fns[s], kt, 4, 4, 128, 200, 3, 0); /* decode, long context */
        }
    trit_numerics_use(NULL);
    free(g), free(u), free(y1), free(y2);
}

/* The arm64 table's TQ2_0 order (one float, fma per block) is the neon set's bit for bit where
 * that set runs (aarch64 + dotprod, e.g. make test-arm64 under qemu), and differs from the x86
 * builds' 8-lane order somewhere (else the table would need no entry). */
Test(kernels_table, arm64_tq2_0_twin) {
    const int64_t n = 2560, nr = 16;
    rng_state = 2020;
    size_t rb;
    char *w = random_weights(TRIT_TQ2_0, n, nr, &rb);
    float *x = random_floats(n, 1.0f);
    block_q8_K *a = xmalloc(trit_act_row_size(TRIT_TQ2_0, n));
    trit_kernels_ref()->quantize_act(TRIT_TQ2_0, x, a, n);
    const trit_kernels *neon = trit_kernels_neon();
    int differ = 0;
    for (int64_t r = 0; r < nr; r++) {
        trit_numerics_use(&trit_numerics_arm64);
        const float one = trit_kernels_ref()->vec_dot(TRIT_TQ2_0, n, w + r * rb, a);
        cr_assert(memcmp(&one,
                         &(float){trit_ref_dot_tq2_0_one_acc(n, (const void *)(w + r * rb), a)},
                         4) == 0);
        if (neon) {
            const float v = neon->vec_dot(TRIT_TQ2_0, n, w + r * rb, a);
            cr_assert(memcmp(&v, &one, 4) == 0, "neon row %lld: %a vs twin %a", (long long)r, v,
                      one);
            float rows[16];
            neon->vec_dot_rows(TRIT_TQ2_0, n, w, rb, nr, a, rows);
            cr_assert(memcmp(&rows[r], &one, 4) == 0, "neon rows");
        }
        trit_numerics_use(&trit_numerics_avx2);
        const float lanes = trit_kernels_ref()->vec_dot(TRIT_TQ2_0, n, w + r * rb, a);
        differ += memcmp(&lanes, &one, 4) != 0;
        cr_assert_float_eq(lanes, one, 1e-4f * (1 + fabsf(one)));
    }
    trit_numerics_use(NULL);
    cr_assert_gt(differ, 0, "the arm64 and x86 TQ2_0 orders never differed");
    if (!neon) cr_log_info("no neon set here: only the scalar twin was checked");
    free(w), free(x), free(a);
}
