/* test_quant — type table, sizes, round trips, known answers, and byte identity against the
 * reference ggml (dlopen'd libggml-base.so from the reference llama.cpp build). */
#include "quant/quant.h"
#include "reference/reference.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit/helpers.h"

/* ---- deterministic test data (rng_*: unit/helpers.h) ---- */
static float *random_data(int64_t n, uint64_t seed, float scale) {
    rng_state = seed;
    float *x = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = rng_normal() * scale;
    return x;
}
static float *ternary_data(int64_t n, uint64_t seed, float scale) {
    rng_state = seed;
    float *x = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = (float)((int)(rng_next() % 3) - 1) * scale;
    return x;
}

/* ---- type table ---- */
Test(quant_table, known_types) {
    const trit_type_info *t = trit_type_get(TRIT_TQ2_0);
    cr_assert_not_null(t);
    cr_assert_str_eq(t->name, "tq2_0");
    cr_assert_eq(t->blck, 256);
    cr_assert_eq(t->size, 66);
    cr_assert(t->supported);
    cr_assert_eq(trit_type_get(TRIT_TQ1_0)->size, 54);
    cr_assert_eq(trit_type_get(TRIT_Q8_0)->size, 34);
    cr_assert_eq(trit_type_get(TRIT_Q8_K)->size, 292);
    cr_assert_str_eq(trit_type_get(TRIT_I2_S)->name, "i2_s");
    cr_assert_str_eq(trit_type_get(12)->name, "q4_K");
    cr_assert_eq(trit_type_get(12)->size, 144);
    cr_assert(trit_type_get(12)->supported);     /* k-quants: kquants.c */
    cr_assert_not(trit_type_get(23)->supported); /* iq4_xs */
    cr_assert_null(trit_type_get(4));            /* Q4_2: removed from every ggml */
    cr_assert_null(trit_type_get(5));
    cr_assert_null(trit_type_get(63));
    cr_assert_null(trit_type_get(1000));
}

Test(quant_table, names) {
    cr_assert_eq(trit_type_from_name("f32"), TRIT_F32);
    cr_assert_eq(trit_type_from_name("TQ2_0"), TRIT_TQ2_0);
    cr_assert_eq(trit_type_from_name("tq1_0"), TRIT_TQ1_0);
    cr_assert_eq(trit_type_from_name("Q8_0"), TRIT_Q8_0);
    cr_assert_eq(trit_type_from_name("q8_k"), TRIT_Q8_K);
    cr_assert_eq(trit_type_from_name("I2_S"), TRIT_I2_S);
    cr_assert_eq(trit_type_from_name("bf16"), TRIT_BF16);
    cr_assert_eq(trit_type_from_name("q8"), -1);
    cr_assert_eq(trit_type_from_name("q8_0x"), -1);
    cr_assert_eq(trit_type_from_name(""), -1);
    cr_assert_eq(trit_type_from_name(NULL), -1);
    /* every listed name maps back to its id */
    for (uint32_t t = 0; t < TRIT_TYPE_COUNT_MAX; t++) {
        const trit_type_info *ti = trit_type_get(t);
        if (ti) cr_assert_eq(trit_type_from_name(ti->name), (int)t, "%s", ti->name);
    }
}

Test(quant_table, sizes) {
    cr_assert_eq(trit_row_size(TRIT_F32, 10), 40);
    cr_assert_eq(trit_row_size(TRIT_F16, 10), 20);
    cr_assert_eq(trit_row_size(TRIT_Q8_0, 64), 68);
    cr_assert_eq(trit_row_size(TRIT_Q8_0, 33), 0);
    cr_assert_eq(trit_row_size(TRIT_TQ2_0, 2560), 10 * 66);
    cr_assert_eq(trit_row_size(TRIT_TQ1_0, 256), 54);
    cr_assert_eq(trit_row_size(TRIT_TQ1_0, 100), 0);
    cr_assert_eq(trit_row_size(TRIT_I2_S, 2560), 640);
    cr_assert_eq(trit_row_size(TRIT_I2_S, 100), 0);
    cr_assert_eq(trit_row_size(999, 256), 0);
    cr_assert_eq(trit_tensor_nbytes(TRIT_I2_S, 2560, 6912), 2560 * 6912 / 4 + 32);
    cr_assert_eq(trit_tensor_nbytes(TRIT_TQ2_0, 512, 3), 3 * 2 * 66);
    cr_assert_eq(trit_tensor_nbytes(TRIT_Q8_0, 31, 3), 0);
}

Test(quant_table, unsupported_conversion_fails) {
    float x[256] = {0};
    uint8_t y[1024];
    cr_assert_eq(trit_quantize_row(23 /* iq4_xs */, x, y, 256), -1);
    cr_assert_eq(trit_dequantize_row(23, y, x, 256), -1);
    cr_assert_eq(trit_quantize_row(TRIT_Q8_0, x, y, 33), -1);
    cr_assert_eq(trit_quantize_row(TRIT_I2_S, x, y, 128), -1); /* tensor-only */
    cr_assert_eq(trit_quantize_tensor(TRIT_I2_S, x, y, 100, 1), -1);
    cr_assert_eq(trit_quantize_row(77, x, y, 256), -1);
}

/* ---- round trips ---- */
static void roundtrip(uint32_t type, const float *x, int64_t ne0, int64_t nrows, float *maxerr) {
    size_t nb = trit_tensor_nbytes(type, ne0, nrows);
    cr_assert_gt(nb, 0);
    void *q = xmalloc(nb);
    float *y = xmalloc((size_t)(ne0 * nrows) * sizeof(float));
    cr_assert_eq(trit_quantize_tensor(type, x, q, ne0, nrows), 0);
    cr_assert_eq(trit_dequantize_tensor(type, q, y, ne0, nrows), 0);
    float m = 0;
    for (int64_t i = 0; i < ne0 * nrows; i++) m = fmaxf(m, fabsf(x[i] - y[i]));
    *maxerr = m;
    free(q);
    free(y);
}

Test(quant_roundtrip, f16_bf16_q8) {
    const int64_t ne0 = 512, nr = 4;
    float *x = random_data(ne0 * nr, 7, 1.0f);
    float e;
    roundtrip(TRIT_F32, x, ne0, nr, &e);
    cr_assert_eq(e, 0.0f);
    roundtrip(TRIT_F16, x, ne0, nr, &e);
    cr_assert_leq(e, 5e-3f, "f16 err %g", e); /* |x| < ~6: half ulp 2^-9 */
    roundtrip(TRIT_BF16, x, ne0, nr, &e);
    cr_assert_leq(e, 3e-2f, "bf16 err %g", e);
    /* Q8_0: error <= d/2 per block with d = amax/127 (+ fp16 rounding of d) */
    roundtrip(TRIT_Q8_0, x, ne0, nr, &e);
    cr_assert_leq(e, 6.0f / 127.0f * 0.5f + 6.0f * 1e-3f, "q8_0 err %g", e);
    roundtrip(TRIT_Q8_K, x, ne0, nr, &e);
    cr_assert_leq(e, 6.0f / 127.0f * 0.5f + 1e-5f, "q8_k err %g", e);
    free(x);
}

Test(quant_roundtrip, ternary_exact) {
    /* ternary * 0.5 (exact in fp16): TQ1_0, TQ2_0, I2_S all reproduce it exactly */
    const int64_t ne0 = 768, nr = 5;
    float *x = ternary_data(ne0 * nr, 11, 0.5f);
    /* make sure every 256-block has amax = scale (a zero block would also be exact) */
    float e;
    roundtrip(TRIT_TQ1_0, x, ne0, nr, &e);
    cr_assert_eq(e, 0.0f, "tq1_0 err %g", e);
    roundtrip(TRIT_TQ2_0, x, ne0, nr, &e);
    cr_assert_eq(e, 0.0f, "tq2_0 err %g", e);
    roundtrip(TRIT_I2_S, x, ne0, nr, &e);
    cr_assert_eq(e, 0.0f, "i2_s err %g", e);
    /* a scale not exact in fp16: I2_S keeps fp32, TQ* lose only fp16 rounding of the scale */
    for (int64_t i = 0; i < ne0 * nr; i++) x[i] *= 0.123456789f;
    roundtrip(TRIT_I2_S, x, ne0, nr, &e);
    cr_assert_eq(e, 0.0f, "i2_s err %g", e);
    roundtrip(TRIT_TQ2_0, x, ne0, nr, &e);
    cr_assert_leq(e, 0.0618f * 1e-3f, "tq2_0 err %g", e);
    cr_assert_gt(e, 0.0f); /* the fp16 rounding is visible */
    roundtrip(TRIT_TQ1_0, x, ne0, nr, &e);
    cr_assert_leq(e, 0.0618f * 1e-3f, "tq1_0 err %g", e);
    free(x);
}

Test(quant_roundtrip, ternary_of_random_is_sign_or_zero) {
    /* random data through TQ2_0: every output is in {-d, 0, d} for its block's d = amax */
    const int64_t n = 1024;
    float *x = random_data(n, 3, 1.0f);
    uint8_t q[4 * 66];
    float y[1024];
    cr_assert_eq(trit_quantize_row(TRIT_TQ2_0, x, q, n), 0);
    cr_assert_eq(trit_dequantize_row(TRIT_TQ2_0, q, y, n), 0);
    for (int b = 0; b < 4; b++) {
        float amax = 0;
        for (int j = 0; j < 256; j++) amax = fmaxf(amax, fabsf(x[b * 256 + j]));
        float d = trit_fp16_to_fp32(trit_fp32_to_fp16(amax));
        for (int j = 0; j < 256; j++) {
            float v = y[b * 256 + j], xv = x[b * 256 + j] / amax;
            float want = xv >= 0.5f ? d : xv <= -0.5f ? -d : 0.0f;
            cr_assert_eq(v, want, "block %d elem %d: x/amax %g -> %g", b, j, xv, v);
        }
    }
    free(x);
}

/* ---- known answers (hand-computed) ---- */
Test(quant_known, q8_0_block) {
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) / 16.0f * 1.27f; /* amax 1.27 at i=0 */
    block_q8_0 b;
    cr_assert_eq(trit_quantize_row(TRIT_Q8_0, x, &b, 32), 0);
    cr_assert_eq(b.d, trit_fp32_to_fp16(0.01f));
    cr_assert_eq(b.qs[0], -127);
    cr_assert_eq(b.qs[16], 0);
    cr_assert_eq(b.qs[24], 64); /* 0.635 / 0.01 = 63.5 -> roundf away from zero */
    cr_assert_eq(b.qs[31], 119);
}

Test(quant_known, tq2_0_layout) {
    /* element 128g + 32k + m lives in byte 32g + m at bits 2k, code = t + 1 */
    float x[256] = {0};
    x[0] = 1.0f;    /* g0 k0 m0 -> byte 0 bits 0..1 = 2 */
    x[32] = -1.0f;  /* g0 k1 m0 -> byte 0 bits 2..3 = 0 */
    x[161] = 1.0f;  /* g1 k1 m1 -> byte 33 bits 2..3 = 2 */
    x[255] = -0.4f; /* rounds to 0 -> code 1 */
    block_tq2_0 b;
    cr_assert_eq(trit_quantize_row(TRIT_TQ2_0, x, &b, 256), 0);
    cr_assert_eq(b.d, trit_fp32_to_fp16(1.0f));
    cr_assert_eq(b.qs[0], 2 | (0 << 2) | (1 << 4) | (1 << 6));
    cr_assert_eq(b.qs[33], 1 | (2 << 2) | (1 << 4) | (1 << 6));
    cr_assert_eq(b.qs[5], 0x55);
}

Test(quant_known, tq1_0_layout) {
    /* all zeros: each qs byte packs 11111 (base 3) = 121 -> ceil(121*256/243) = 128;
     * qh packs 1111 then a 0 trit: 120 -> ceil(120*256/243) = 127 */
    float x[256] = {0};
    x[0] = 2.0f; /* amax 2 -> first trit of qs[0] is +1: 21111 (base 3) = 202 -> 213 */
    block_tq1_0 b;
    cr_assert_eq(trit_quantize_row(TRIT_TQ1_0, x, &b, 256), 0);
    cr_assert_eq(b.d, trit_fp32_to_fp16(2.0f));
    cr_assert_eq(b.qs[0], 213);
    for (int i = 1; i < 48; i++) cr_assert_eq(b.qs[i], 128, "qs[%d]=%d", i, b.qs[i]);
    for (int i = 0; i < 4; i++) cr_assert_eq(b.qh[i], 127, "qh[%d]=%d", i, b.qh[i]);
}

Test(quant_known, i2_s_layout) {
    float x[256] = {0};
    x[0] = 1.5f;         /* block 0 byte 0 bits 7..6 = 2 */
    x[33] = -1.5f;       /* block 0 byte 1 bits 5..4 = 0 */
    x[128 + 127] = 1.5f; /* block 1 byte 31 bits 1..0 = 2 */
    uint8_t q[64 + 32];
    cr_assert_eq(trit_quantize_tensor(TRIT_I2_S, x, q, 256, 1), 0);
    cr_assert_eq(q[0], (2 << 6) | (1 << 4) | (1 << 2) | 1);
    cr_assert_eq(q[1], (1 << 6) | (0 << 4) | (1 << 2) | 1);
    cr_assert_eq(q[2], 0x55);
    cr_assert_eq(q[32 + 31], 0x54 | 2);
    float s;
    memcpy(&s, q + 64, 4);
    cr_assert_eq(s, 1.5f);
    for (int i = 68; i < 96; i++) cr_assert_eq(q[i], 0);
}

Test(quant_known, q8_K_block) {
    float x[256];
    for (int i = 0; i < 256; i++) x[i] = (i % 2 ? 1.0f : -0.5f);
    x[7] = -2.0f; /* max by |.| is negative: iscale = -127 / -2 */
    block_q8_K b;
    cr_assert_eq(trit_quantize_row(TRIT_Q8_K, x, &b, 256), 0);
    cr_assert_float_eq(b.d, 2.0f / 127.0f, 1e-9f);
    cr_assert_eq(b.qs[7], -127);
    cr_assert_eq(b.qs[1], 64);  /* 63.5 -> ties to even */
    cr_assert_eq(b.qs[0], -32); /* -31.75 -> -32 */
    int s = 0;
    for (int i = 0; i < 16; i++) s += b.qs[i];
    cr_assert_eq(b.bsums[0], s);
}

/* ---- byte identity against the reference ggml ---- */
typedef size_t (*quantize_chunk_fn)(int type, const float *src, void *dst, int64_t start,
                                    int64_t nrows, int64_t n_per_row, const float *imatrix);
typedef void (*to_float_fn)(const void *x, float *y, int64_t k);
typedef void (*from_float_fn)(const float *x, void *y, int64_t k);
struct ggml_traits { /* struct ggml_type_traits, ggml/include/ggml.h */
    const char *type_name;
    int64_t blck_size;
    int64_t blck_size_interleave;
    size_t type_size;
    bool is_quantized;
    to_float_fn to_float;
    from_float_fn from_float_ref;
};
typedef const struct ggml_traits *(*get_traits_fn)(int type);

static void *ggml_lib;
static quantize_chunk_fn ref_quantize_chunk;
static get_traits_fn ref_get_traits;

static void load_ggml(void) {
    if (getenv("TRIT_TEST_NO_REF")) cr_skip_test("TRIT_TEST_NO_REF set");
    char *path = trit_ref_path("libggml-base.so");
    if (!path) cr_skip_test("reference libggml-base.so not built (scripts/setup)");
    ggml_lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(ggml_lib, "dlopen %s: %s", path, dlerror());
    free(path);
    ref_quantize_chunk = (quantize_chunk_fn)dlsym(ggml_lib, "ggml_quantize_chunk");
    ref_get_traits = (get_traits_fn)dlsym(ggml_lib, "ggml_get_type_traits");
    cr_assert_not_null(ref_quantize_chunk);
    cr_assert_not_null(ref_get_traits);
}

static void check_identical(uint32_t type, const float *x, int64_t ne0, int64_t nr,
                            const char *what) {
    size_t nb = trit_tensor_nbytes(type, ne0, nr);
    uint8_t *a = xcalloc(1, nb), *b = xcalloc(1, nb);
    cr_assert_eq(trit_quantize_tensor(type, x, a, ne0, nr), 0);
    size_t got = ref_quantize_chunk((int)type, x, b, 0, nr, ne0, NULL);
    cr_assert_eq(got, nb, "%s: ggml wrote %zu bytes, trit %zu", what, got, nb);
    for (size_t i = 0; i < nb; i++)
        cr_assert_eq(a[i], b[i], "%s %s: first differing byte %zu: trit %02x ggml %02x",
                     trit_type_get(type)->name, what, i, a[i], b[i]);
    /* dequantization identical too */
    float *ya = xmalloc((size_t)(ne0 * nr) * sizeof(float));
    float *yb = xmalloc((size_t)(ne0 * nr) * sizeof(float));
    cr_assert_eq(trit_dequantize_tensor(type, a, ya, ne0, nr), 0);
    const struct ggml_traits *tr = ref_get_traits((int)type);
    cr_assert_not_null(tr->to_float);
    tr->to_float(b, yb, ne0 * nr);
    cr_assert_eq(memcmp(ya, yb, (size_t)(ne0 * nr) * sizeof(float)), 0,
                 "%s %s: dequantized floats differ", trit_type_get(type)->name, what);
    free(a);
    free(b);
    free(ya);
    free(yb);
}

Test(quant_reference, byte_identical_random) {
    load_ggml();
    const uint32_t ts[] = {TRIT_Q8_0, TRIT_TQ1_0, TRIT_TQ2_0, TRIT_F16, TRIT_BF16};
    const int64_t ne0 = 1024, nr = 16;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        float *x = random_data(ne0 * nr, seed, seed == 4 ? 1e-3f : 1.0f);
        /* sprinkle exact zeros, ties and an all-zero row */
        for (int64_t i = 0; i < ne0 * nr; i += 97) x[i] = 0.0f;
        for (int64_t i = 0; i < ne0; i++) x[3 * ne0 + i] = 0.0f;
        for (size_t t = 0; t < TRIT_ARRAY_LEN(ts); t++)
            check_identical(ts[t], x, ne0, nr, "random");
        free(x);
    }
}

Test(quant_reference, byte_identical_ternary_and_ties) {
    load_ggml();
    const int64_t ne0 = 512, nr = 8;
    float *x = ternary_data(ne0 * nr, 5, 0.0371f);
    check_identical(TRIT_TQ1_0, x, ne0, nr, "ternary");
    check_identical(TRIT_TQ2_0, x, ne0, nr, "ternary");
    check_identical(TRIT_Q8_0, x, ne0, nr, "ternary");
    /* exact halves relative to the scale: rounding-mode traps */
    rng_state = 9;
    for (int64_t i = 0; i < ne0 * nr; i++) x[i] = (float)((int)(rng_next() % 9) - 4) * 0.25f;
    check_identical(TRIT_TQ1_0, x, ne0, nr, "halves");
    check_identical(TRIT_TQ2_0, x, ne0, nr, "halves");
    check_identical(TRIT_Q8_0, x, ne0, nr, "halves");
    free(x);
}

Test(quant_reference, q8_K_identical) {
    load_ggml();
    const struct ggml_traits *tr = ref_get_traits(TRIT_Q8_K);
    from_float_fn q8k_ref = (from_float_fn)dlsym(ggml_lib, "quantize_row_q8_K_ref");
    cr_assert_not_null(q8k_ref, "libggml-base exports quantize_row_q8_K_ref");
    const int64_t n = 2048;
    float *x = random_data(n, 21, 2.0f);
    for (int64_t i = 0; i < 256; i++) x[i] = (float)(i % 7) - 3.0f; /* ties to even */
    block_q8_K a[8], b[8];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    cr_assert_eq(trit_quantize_row(TRIT_Q8_K, x, a, n), 0);
    q8k_ref(x, b, n);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "q8_K bytes differ");
    float ya[2048], yb[2048];
    cr_assert_eq(trit_dequantize_row(TRIT_Q8_K, a, ya, n), 0);
    to_float_fn q8k_deq =
        tr->to_float ? tr->to_float : (to_float_fn)dlsym(ggml_lib, "dequantize_row_q8_K");
    cr_assert_not_null(q8k_deq);
    q8k_deq(b, yb, n);
    cr_assert_eq(memcmp(ya, yb, sizeof ya), 0);
    free(x);
}

Test(quant_reference, type_table_matches) {
    load_ggml();
    for (int t = 0; t < 43; t++) {
        const struct ggml_traits *tr = ref_get_traits(t);
        const trit_type_info *ti = trit_type_get((uint32_t)t);
        if (!tr || !tr->blck_size) continue; /* removed in this ggml */
        if (t == 36) continue;               /* ggml: removed IQ4_NL_4_4; bitnet.cpp: I2_S */
        cr_assert_not_null(ti, "type %d (%s) missing", t, tr->type_name);
        cr_assert_str_eq(ti->name, tr->type_name, "type %d", t);
        cr_assert_eq(ti->blck, tr->blck_size, "type %d blck", t);
        cr_assert_eq(ti->size, tr->type_size, "type %d size", t);
    }
}
