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

/* A symbol from libggml-cpu (initialised) or libggml-base; NULL when the reference is absent
 * or TRIT_TEST_NO_REF is set. */
static void *ggml_sym(const char *name) {
    static void *base, *cpu;
    static bool tried;
    if (getenv("TRIT_TEST_NO_REF")) return NULL;
    if (!tried) {
        tried = true;
        char *pb = trit_ref_path("libggml-base.so"), *pc = trit_ref_path("libggml-cpu.so");
        if (pb) base = dlopen(pb, RTLD_NOW | RTLD_GLOBAL);
        if (pc && base) cpu = dlopen(pc, RTLD_NOW | RTLD_GLOBAL);
        free(pb), free(pc);
        if (cpu) {
            void (*init)(void) = (void (*)(void))dlsym(cpu, "ggml_cpu_init");
            if (init) init();
        }
    }
    void *s = cpu ? dlsym(cpu, name) : NULL;
    if (!s && base) s = dlsym(base, name);
    return s;
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
