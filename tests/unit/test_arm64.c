/* test_arm64.c — the arm64 numerics table (issue 20): its scalar twins (ref/ggml_order.h's arm64
 * orders, ref.c's TQ1_0/TQ2_0 one-accumulator dots and contracted Q8_K quantizer) are checked
 * here on any CPU; where the neon set runs (aarch64 with dotprod + fp16, e.g. `make test-arm64`
 * under qemu) its kernels must equal the twins bit for bit; and where the aarch64 reference is
 * loadable (TRIT_REF_SET=arm64 in an aarch64 process: build-arm64's libggml-cpu), the twins must
 * equal ggml's own functions bit for bit. On x86 the last two skip. */
#include "helpers.h"

#include "kernels/kernels.h"
#include "kernels/ref/ggml_order.h"

#include <string.h>

static float *rand_floats(int64_t n, float scale) {
    float *x = xmalloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = rng_normal() * scale;
    return x;
}

static uint16_t *rand_f16(int64_t n, float scale) {
    uint16_t *h = xmalloc(sizeof(uint16_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) h[i] = trit_fp32_to_fp16(rng_normal() * scale);
    return h;
}

/* Random weights of a TQ type (a random {-1, 0, 1} row times a scale, quantized) or of Q6_K
 * (normal values): nr rows of n (whole blocks). */
static void *rand_tq(uint32_t type, int64_t n, int64_t nr, size_t *rb) {
    *rb = trit_row_size(type, n);
    char *w = xmalloc(*rb * (size_t)nr);
    float *x = xmalloc(sizeof(float) * (size_t)n);
    for (int64_t r = 0; r < nr; r++) {
        const float s = 0.01f + rng_uniform();
        for (int64_t i = 0; i < n; i++)
            x[i] =
                type == TRIT_Q6_K ? s * rng_normal() : s * (float)((int)(rng_uniform() * 3.0f) - 1);
        trit_quantize_row(type, x, w + r * *rb, n);
    }
    free(x);
    return w;
}

/* a * b + c in fp16, the slow way, for triples whose exact value a double holds (exponent
 * span <= 53 bits): the double scaled by the fp16 ulp at its binade (2^-24 below the normal
 * range) and rounded to an integer, ties to even, then scaled back. */
static float fma_h_exact(float a, float b, float c) {
    const double s = (double)a * (double)b + (double)c;
    if (s == 0.0) return (float)s;
    int ex;
    frexp(s, &ex); /* |s| in [2^(ex-1), 2^ex) */
    const int e = ex - 1 < -14 ? -14 : ex - 1;
    const double ulp = ldexp(1.0, e - 10);
    return (float)(nearbyint(s / ulp) * ulp);
}

/* go_fma_h is fp16's fused multiply-add: against an independent rounding of the exact value,
 * on random fp16 triples of similar magnitude (double holds their exact sum) and on crafted
 * halfway cases, where rounding the float sum first would go the wrong way. */
Test(arm64_twins, fma_h_rounds_once) {
    rng_state = 11;
    for (int k = 0; k < 200000; k++) {
        const float a = go_h(rng_normal() * 4), b = go_h(rng_normal()), c = go_h(rng_normal() * 8);
        const float want = fma_h_exact(a, b, c), got = go_fma_h(a, b, c);
        cr_assert(memcmp(&want, &got, 4) == 0, "fma_h(%a, %a, %a) = %a, want %a", a, b, c, got,
                  want);
    }
    /* exact 1 + 2^-11 + 2^-25, just above the midpoint of 1 and 1 + 2^-10: the float sum
     * rounds onto the midpoint (then to even, 1.0); one rounding gives 1 + 2^-10 */
    const float a = 0x1.02p-6f, b = -0x1.fcp-6f, c = 1.0f + 0x1p-10f;
    cr_assert_eq(go_h(a * b + c), 1.0f, "the case double-rounds in float");
    cr_assert_eq(go_fma_h(a, b, c), 1.0f + 0x1p-10f);
    cr_assert_eq(go_fma_h(0x1p-11f, 1.0f, 1.0f), 1.0f); /* a true tie: to even */
}

/* The arm64 orders under the arm64 table: the ref set's F32/F16 dots and tinyBLAS are
 * ggml_order.h's lanes16 / h32 / blas4 / blash8, and tinyBLAS starts where the NEON build's
 * does (F32 from 4 tokens, F16 from 8). */
Test(arm64_twins, ref_set_follows_arm64_orders) {
    trit_numerics_use(&trit_numerics_arm64);
    cr_assert(!trit_matmul_tinyblas(TRIT_F16, 256, 2048, 7));
    cr_assert(trit_matmul_tinyblas(TRIT_F16, 256, 2048, 8));
    cr_assert(!trit_matmul_tinyblas(TRIT_F32, 256, 64, 3));
    cr_assert(trit_matmul_tinyblas(TRIT_F32, 260, 64, 4));
    cr_assert(!trit_matmul_tinyblas(TRIT_BF16, 256, 64, 16));
    const trit_kernels *ref = trit_kernels_ref();
    const int64_t sizes[] = {256, 64, 100, 37, 2560};
    for (size_t si = 0; si < TRIT_ARRAY_LEN(sizes); si++) {
        const int64_t n = sizes[si];
        rng_state = 300 + si;
        uint16_t *wh = rand_f16(n, 1.0f), *ah = rand_f16(n, 1.0f);
        float *wf = xmalloc(sizeof(float) * n), *af = xmalloc(sizeof(float) * n);
        for (int64_t i = 0; i < n; i++)
            wf[i] = trit_fp16_to_fp32(wh[i]), af[i] = trit_fp16_to_fp32(ah[i]);
        const float d16 = ref->vec_dot(TRIT_F16, n, wh, ah);
        cr_assert(memcmp(&d16, &(float){go_dot_f16_h32(n, wf, af)}, 4) == 0, "f16 n %lld",
                  (long long)n);
        const float d32 = ref->vec_dot(TRIT_F32, n, wf, af);
        cr_assert(memcmp(&d32, &(float){go_dot_f32_lanes16(n, wf, af)}, 4) == 0);
        if (n % 8 == 0) {
            float o;
            ref->gemm(TRIT_F16, n, wh, 2 * n, 1, ah, 2 * n, 1, &o, 1);
            cr_assert(memcmp(&o, &(float){go_dot_blas_h8(n, wf, af)}, 4) == 0, "blash8");
        }
        if (n % 4 == 0) {
            float o;
            ref->gemm(TRIT_F32, n, wf, 4 * n, 1, af, 4 * n, 1, &o, 1);
            cr_assert(memcmp(&o, &(float){go_dot_blas4(n, wf, af)}, 4) == 0, "blas4");
        }
        /* fp16 accumulation is not the f32 one */
        trit_numerics_use(&trit_numerics_avx2);
        const float x86 = ref->vec_dot(TRIT_F16, n, wh, ah);
        trit_numerics_use(&trit_numerics_arm64);
        cr_assert_float_eq(x86, d16, 0.05f * (1 + fabsf(x86)));
        free(wh), free(ah), free(wf), free(af);
    }
    trit_numerics_use(NULL);
}

/* Where the neon set runs: its TQ1_0, TQ2_0 and F16 dots (and rows, gemm) equal the twins. */
Test(arm64_twins, neon_equals_twins) {
    const trit_kernels *neon = trit_kernels_neon();
    if (!neon) {
        cr_skip_test("no neon set here (not aarch64 with dotprod + fp16)");
        return;
    }
    trit_numerics_use(&trit_numerics_arm64);
    const trit_kernels *ref = trit_kernels_ref();
    const int64_t n = 2560, nr = 8;
    rng_state = 4242;
    float *x = rand_floats(n, 1.0f);
    block_q8_K *a = xmalloc(trit_act_row_size(TRIT_TQ2_0, n));
    neon->quantize_act(TRIT_TQ2_0, x, a, n);
    for (int ti = 0; ti < 2; ti++) {
        const uint32_t t = ti ? TRIT_TQ1_0 : TRIT_TQ2_0;
        size_t rb;
        char *w = rand_tq(t, n, nr, &rb);
        float rows[8];
        neon->vec_dot_rows(t, n, w, rb, nr, a, rows);
        for (int64_t r = 0; r < nr; r++) {
            const float want = t == TRIT_TQ1_0
                                   ? trit_ref_dot_tq1_0_one_acc(n, (const void *)(w + r * rb), a)
                                   : trit_ref_dot_tq2_0_one_acc(n, (const void *)(w + r * rb), a);
            const float got = neon->vec_dot(t, n, w + r * rb, a);
            cr_assert(memcmp(&got, &want, 4) == 0, "type %u row %lld: %a vs twin %a", t,
                      (long long)r, got, want);
            cr_assert(memcmp(&rows[r], &want, 4) == 0, "rows");
            cr_assert(memcmp(&want, &(float){ref->vec_dot(t, n, w + r * rb, a)}, 4) == 0);
        }
        free(w);
    }
    const int64_t sizes[] = {256, 64, 100, 37};
    for (size_t si = 0; si < TRIT_ARRAY_LEN(sizes); si++) {
        const int64_t m = sizes[si];
        uint16_t *wh = rand_f16(m, 2.0f), *ah = rand_f16(m, 1.0f);
        const float got = neon->vec_dot(TRIT_F16, m, wh, ah);
        const float want = ref->vec_dot(TRIT_F16, m, wh, ah);
        cr_assert(memcmp(&got, &want, 4) == 0, "f16 n %lld: %a vs twin %a", (long long)m, got,
                  want);
        free(wh), free(ah);
    }
    trit_numerics_use(NULL);
    free(x), free(a);
}

typedef void (*ggml_dot_fn)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y,
                            size_t by, int nrc);
typedef void (*ggml_q_fn)(const float *x, void *y, int64_t k);
typedef double (*ggml_softmax_fn)(int n, float *y, const float *x, float max);
typedef void (*ggml_swiglu_fn)(int n, float *y, const float *x, const float *g);

/* The aarch64 reference's symbols, or NULL on any other build (an x86 ggml is the x86 tables'
 * business, test_kernels) */
static void *arm_sym(const char *name) {
#if defined(__aarch64__)
    return ggml_ref_sym(name);
#else
    (void)name;
    return NULL;
#endif
}

/* Against build-arm64's own libggml-cpu (aarch64 under qemu): the Q8_K and Q8_0 quantizers and
 * the TQ1_0, TQ2_0 and Q6_K dots, bit for bit. */
Test(arm64_ggml, twins_match_ggml) {
    ggml_q_fn q8k = (ggml_q_fn)arm_sym("quantize_row_q8_K");
    ggml_dot_fn tq1 = (ggml_dot_fn)arm_sym("ggml_vec_dot_tq1_0_q8_K");
    ggml_dot_fn tq2 = (ggml_dot_fn)arm_sym("ggml_vec_dot_tq2_0_q8_K");
    ggml_dot_fn q6k = (ggml_dot_fn)arm_sym("ggml_vec_dot_q6_K_q8_K");
    if (!q8k || !tq1 || !tq2 || !q6k) {
        cr_skip_test("no aarch64 reference here (TRIT_REF_SET=arm64 under qemu: make test-arm64)");
        return;
    }
    trit_numerics_use(&trit_numerics_arm64);
    const trit_kernels *ref = trit_kernels_ref();
    const int64_t n = 2560;
    int q_rows_differ_x86 = 0;
    for (int row = 0; row < 32; row++) {
        rng_state = 7000 + row;
        float *x = rand_floats(n, row % 2 ? 0.3f : 3.0f);
        const size_t asz = trit_act_row_size(TRIT_TQ2_0, n);
        block_q8_K *a1 = xmalloc(asz), *a2 = xmalloc(asz), *a3 = xmalloc(asz);
        ref->quantize_act(TRIT_TQ2_0, x, a1, n);
        q8k(x, a2, n);
        cr_assert_eq(memcmp(a1, a2, asz), 0, "Q8_K row %d: not ggml's quantize_row_q8_K", row);
        trit_quantize_row(TRIT_Q8_K, x, a3, n); /* the x86 quantizer */
        q_rows_differ_x86 += memcmp(a1, a3, asz) != 0;
        for (int ti = 0; ti < 3; ti++) {
            const uint32_t t = (uint32_t[]){TRIT_TQ2_0, TRIT_TQ1_0, TRIT_Q6_K}[ti];
            size_t rb;
            char *w = rand_tq(t, n, 1, &rb);
            float g;
            (ti == 0 ? tq2 : ti == 1 ? tq1 : q6k)((int)n, &g, 0, w, 0, a2, 0, 1);
            const float v = ref->vec_dot(t, n, w, a1);
            cr_assert(memcmp(&g, &v, 4) == 0, "type %u row %d: %a vs ggml %a", t, row, v, g);
            free(w);
        }
        free(x), free(a1), free(a2), free(a3);
    }
    cr_log_info("Q8_K: %d of 32 rows differ from the x86 quantizer", q_rows_differ_x86);
    ggml_q_fn q80 = (ggml_q_fn)arm_sym("quantize_row_q8_0");
    ggml_dot_fn d80 = (ggml_dot_fn)arm_sym("ggml_vec_dot_q8_0_q8_0");
    cr_assert_not_null(q80);
    cr_assert_not_null(d80);
    for (int row = 0; row < 32; row++) { /* Q8_0 (Q4_0 activations): NEON, id = 1/d */
        rng_state = 7500 + row;
        float *x = rand_floats(n, row % 2 ? 0.3f : 3.0f);
        const size_t asz = trit_act_row_size(TRIT_Q4_0, n);
        void *a1 = xmalloc(asz), *a2 = xmalloc(asz);
        ref->quantize_act(TRIT_Q4_0, x, a1, n);
        q80(x, a2, n);
        cr_assert_eq(memcmp(a1, a2, asz), 0, "Q8_0 row %d: not ggml's quantize_row_q8_0", row);
        for (int64_t m = n; m >= n - 32; m -= 32) { /* Q8_0 x Q8_0: even and odd block counts */
            void *w = xmalloc(trit_row_size(TRIT_Q8_0, m));
            float *wf = rand_floats(m, 1.0f), g;
            trit_quantize_row(TRIT_Q8_0, wf, w, m);
            d80((int)m, &g, 0, w, 0, a2, 0, 1);
            const float v = ref->vec_dot(TRIT_Q8_0, m, w, a1);
            cr_assert(memcmp(&g, &v, 4) == 0, "q8_0 n %lld: %a vs ggml %a", (long long)m, v, g);
            free(w), free(wf);
        }
        free(x), free(a1), free(a2);
    }
    trit_numerics_use(NULL);
}

/* Against build-arm64's libggml-cpu: the F16, F32 and BF16 dots, the softmax sum and SwiGLU. */
Test(arm64_ggml, float_orders_match_ggml) {
    ggml_dot_fn f16 = (ggml_dot_fn)arm_sym("ggml_vec_dot_f16");
    ggml_dot_fn f32 = (ggml_dot_fn)arm_sym("ggml_vec_dot_f32");
    ggml_dot_fn bf16 = (ggml_dot_fn)arm_sym("ggml_vec_dot_bf16");
    ggml_softmax_fn smax = (ggml_softmax_fn)arm_sym("ggml_vec_soft_max_f32");
    ggml_swiglu_fn swiglu = (ggml_swiglu_fn)arm_sym("ggml_vec_swiglu_f32");
    if (!f16 || !f32 || !bf16 || !smax || !swiglu) {
        cr_skip_test("no aarch64 reference here (TRIT_REF_SET=arm64 under qemu: make test-arm64)");
        return;
    }
    trit_numerics_use(&trit_numerics_arm64);
    const trit_kernels *ref = trit_kernels_ref();
    const int64_t sizes[] = {256, 64, 100, 37, 2560, 2536, 5};
    for (size_t si = 0; si < TRIT_ARRAY_LEN(sizes); si++) {
        const int64_t m = sizes[si];
        rng_state = 8000 + si;
        uint16_t *wh = rand_f16(m, 2.0f), *ah = rand_f16(m, 1.0f);
        float g, v = ref->vec_dot(TRIT_F16, m, wh, ah);
        f16((int)m, &g, 0, wh, 0, ah, 0, 1);
        cr_assert(memcmp(&g, &v, 4) == 0, "f16 n %lld: %a vs ggml %a", (long long)m, v, g);
        float *xf = rand_floats(m, 1.0f), *yf = rand_floats(m, 1.0f);
        v = ref->vec_dot(TRIT_F32, m, xf, yf);
        f32((int)m, &g, 0, xf, 0, yf, 0, 1);
        cr_assert(memcmp(&g, &v, 4) == 0, "f32 n %lld: %a vs ggml %a", (long long)m, v, g);
        uint16_t *xb = xmalloc(2 * m), *yb = xmalloc(2 * m);
        for (int64_t i = 0; i < m; i++)
            xb[i] = trit_fp32_to_bf16(xf[i]), yb[i] = trit_fp32_to_bf16(yf[i]);
        v = ref->vec_dot(TRIT_BF16, m, xb, yb);
        bf16((int)m, &g, 0, xb, 0, yb, 0, 1);
        cr_assert(memcmp(&g, &v, 4) == 0, "bf16 n %lld: %a vs ggml %a", (long long)m, v, g);
        { /* ggml_vec_soft_max_f32: 4-lane v_expf, vaddvq sums in double, libm tail */
            float *y1 = xmalloc(4 * m), *y2 = xmalloc(4 * m);
            const double s1 = smax((int)m, y1, xf, 0.5f);
            double s2 = 0.0;
            const int64_t m4 = m & ~(int64_t)3;
            for (int64_t i = 0; i < m4; i += 4) {
                for (int l = 0; l < 4; l++) y2[i + l] = go_v_expf_w(4, xf[i + l] - 0.5f);
                s2 += (double)go_reduce4(y2 + i);
            }
            for (int64_t i = m4; i < m; i++) s2 += (double)(y2[i] = expf(xf[i] - 0.5f));
            cr_assert(memcmp(y1, y2, 4 * m) == 0 && s1 == s2, "softmax n %lld", (long long)m);
            free(y1), free(y2);
        }
        { /* SwiGLU through trit_swiglu under the arm64 table */
            float *y1 = xmalloc(4 * m), *y2 = xmalloc(4 * m);
            swiglu((int)m, y1, xf, yf);
            trit_swiglu(xf, yf, y2, m);
            cr_assert(memcmp(y1, y2, 4 * m) == 0, "swiglu n %lld", (long long)m);
            free(y1), free(y2);
        }
        free(wh), free(ah), free(xf), free(yf), free(xb), free(yb);
    }
    trit_numerics_use(NULL);
}

/* get_rows of a quantized token embedding: trit's dequantizers against build-arm64's
 * ggml-base (GCC fuses d * q - m on aarch64) for the k-quant types llama-quantize writes there */
Test(arm64_ggml, dequant_matches_ggml) {
    typedef void (*deq_fn)(const void *x, float *y, int64_t k);
    const uint32_t types[] = {TRIT_Q4_K, TRIT_Q6_K, TRIT_Q5_K, TRIT_Q2_K, TRIT_Q3_K};
    const char *names[] = {"dequantize_row_q4_K", "dequantize_row_q6_K", "dequantize_row_q5_K",
                           "dequantize_row_q2_K", "dequantize_row_q3_K"};
    if (!arm_sym(names[0])) {
        cr_skip_test("no aarch64 reference here (TRIT_REF_SET=arm64 under qemu: make test-arm64)");
        return;
    }
    const int64_t n = 2560;
    for (size_t ti = 0; ti < TRIT_ARRAY_LEN(types); ti++) {
        deq_fn g = (deq_fn)arm_sym(names[ti]);
        cr_assert_not_null(g, "%s", names[ti]);
        rng_state = 9100 + ti;
        float *x = rand_floats(n, 0.05f), *y1 = xmalloc(4 * n), *y2 = xmalloc(4 * n);
        void *q = xmalloc(trit_row_size(types[ti], n));
        trit_quantize_row(types[ti], x, q, n);
        g(q, y1, n);
        trit_dequantize_row(types[ti], q, y2, n);
        int bad = 0;
        for (int64_t i = 0; i < n; i++) bad += memcmp(&y1[i], &y2[i], 4) != 0;
        cr_expect_eq(bad, 0, "%s: %d of %lld values differ", names[ti], bad, (long long)n);
        free(x), free(y1), free(y2), free(q);
    }
}

/* The repacked gemm's activations (ggml_quantize_mat_q8_K_4x4: four rows, 4-byte interleave)
 * are the rows trit's Q8_K quantizer makes, scale and values */
Test(arm64_ggml, quantize_mat_matches_rows) {
    typedef void (*qmat_fn)(const float *x, void *y, int64_t k);
    qmat_fn qm = (qmat_fn)arm_sym("ggml_quantize_mat_q8_K_4x4");
    if (!qm) {
        cr_skip_test("no aarch64 reference here (TRIT_REF_SET=arm64 under qemu: make test-arm64)");
        return;
    }
    trit_numerics_use(&trit_numerics_arm64);
    const int64_t n = 256;
    int bad = 0;
    for (int it = 0; it < 200; it++) {
        rng_state = 9500 + it;
        float *x = rand_floats(4 * n, 1.0f);
        struct {
            float d[4];
            int8_t qs[QK_K * 4];
            int16_t bsums[QK_K / 4];
        } m;
        qm(x, &m, n);
        for (int r = 0; r < 4; r++) {
            block_q8_K b;
            trit_kernels_ref()->quantize_act(TRIT_Q6_K, x + r * n, &b, n);
            bad += memcmp(&b.d, &m.d[r], 4) != 0;
            for (int j = 0; j < QK_K * 4; j++) {
                const int src = (j / 16) * 4 + j % 4, row = (j % 16) / 4;
                if (row == r) bad += b.qs[src] != m.qs[j];
            }
        }
        free(x);
    }
    trit_numerics_use(NULL);
    cr_assert_eq(bad, 0, "%d values differ from ggml_quantize_mat_q8_K_4x4", bad);
}
