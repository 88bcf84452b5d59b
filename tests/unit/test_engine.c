/* test_engine — model refusals, KV-cache consistency, determinism, overrides, trace points.
 * Models are tiny GGUFs written here with the GGUF writer (llama arch, f32, vocab 64). */
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { E = 256, FF = 256, NL = 2, NH = 4, NKV = 2, V = 64 };

typedef struct {
    const char *arch;
    int n_embd_key;    /* value written for embedding_length */
    const char *skip;  /* tensor name to leave out */
    int head_count_kv; /* value written */
    const char *act;   /* ffn_activation or NULL */
} spec;

static uint64_t rng = 1;
static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

typedef struct {
    const char *name;
    int64_t ne0, ne1;
    float scale, bias;
} tdef;

static char *write_model(const spec *s) {
    static int counter;
    char *path = malloc(256);
    snprintf(path, 256, "/tmp/trit-test-engine-%d-%d.gguf", (int)getpid(), counter++);
    gguf_writer *w = gguf_writer_new();
    char k[128];
    gguf_w_str(w, "general.architecture", s->arch);
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", s->arch, suffix), k)
    gguf_w_u32(w, KEY("context_length"), 256);
    gguf_w_u32(w, KEY("embedding_length"), (uint32_t)s->n_embd_key);
    gguf_w_u32(w, KEY("block_count"), NL);
    gguf_w_u32(w, KEY("feed_forward_length"), FF);
    gguf_w_u32(w, KEY("attention.head_count"), NH);
    gguf_w_u32(w, KEY("attention.head_count_kv"), (uint32_t)s->head_count_kv);
    gguf_w_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    gguf_w_u32(w, KEY("vocab_size"), V);
    if (s->act) gguf_w_str(w, KEY("ffn_activation"), s->act);
#undef KEY
    rng = 42;
    const int hd = E / NH;
    tdef t[64];
    int n = 0;
    t[n++] = (tdef){"token_embd.weight", E, V, 1.0f, 0};
    t[n++] = (tdef){"output_norm.weight", E, 1, 0.1f, 1.0f};
    t[n++] = (tdef){"output.weight", E, V, 0.2f, 0};
    static char names[NL][11][48];
    static const char *sfx[] = {"attn_norm", "attn_q",   "attn_k", "attn_v",  "attn_output",
                                "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};
    for (int l = 0; l < NL; l++) {
        int64_t dims[9][2] = {{E, 1}, {E, E},  {E, NKV * hd}, {E, NKV * hd}, {E, E},
                              {E, 1}, {E, FF}, {E, FF},       {FF, E}};
        for (int j = 0; j < 9; j++) {
            snprintf(names[l][j], 48, "blk.%d.%s.weight", l, sfx[j]);
            bool norm = dims[j][1] == 1;
            t[n++] = (tdef){names[l][j], dims[j][0], dims[j][1], norm ? 0.1f : 0.12f,
                            norm ? 1.0f : 0.0f};
        }
    }
    float *bufs[64];
    for (int i = 0; i < n; i++) {
        size_t cnt = (size_t)(t[i].ne0 * t[i].ne1);
        bufs[i] = malloc(cnt * sizeof(float));
        for (size_t j = 0; j < cnt; j++) bufs[i][j] = t[i].bias + t[i].scale * frand();
        if (s->skip && !strcmp(s->skip, t[i].name)) continue;
        int64_t ne[2] = {t[i].ne0, t[i].ne1};
        gguf_w_tensor(w, t[i].name, TRIT_F32, t[i].ne1 == 1 ? 1 : 2, ne, bufs[i],
                      cnt * sizeof(float));
    }
    trit_err err = {0};
    int rc = gguf_writer_write(w, path, NULL, NULL, &err);
    cr_assert_eq(rc, 0, "write: %s", err.msg);
    gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    return path;
}

static const spec good = {"llama", E, NULL, NKV, NULL};

static trit_model *load_ok(char **path_out) {
    char *p = write_model(&good);
    trit_err err = {0};
    trit_model *m = trit_model_load(p, &err);
    cr_assert_not_null(m, "load: %s", err.msg);
    *path_out = p;
    return m;
}

static void expect_refusal(spec s, const char *needle) {
    char *p = write_model(&s);
    trit_err err = {0};
    trit_model *m = trit_model_load(p, &err);
    unlink(p);
    free(p);
    cr_assert_null(m, "model should be refused (%s)", needle);
    cr_assert(strstr(err.msg, needle) != NULL, "message '%s' should mention '%s'", err.msg, needle);
}

Test(model, loads_good_model) {
    char *p;
    trit_model *m = load_ok(&p);
    cr_assert_eq(m->hp.n_layer, NL);
    cr_assert_eq(m->hp.head_dim, E / NH);
    cr_assert_eq(m->hp.n_vocab, V);
    cr_assert_eq(m->hp.rope_mode, TRIT_ROPE_NORM);
    cr_assert_eq(m->hp.act, TRIT_ACT_SILU);
    cr_assert(!m->tied_output);
    trit_model_free(m);
    unlink(p);
    free(p);
}

Test(model, refuses_unknown_arch) {
    expect_refusal((spec){"gpt9", E, NULL, NKV, NULL}, "unknown architecture");
}
Test(model, refuses_missing_tensor) {
    expect_refusal((spec){"llama", E, "blk.1.ffn_up.weight", NKV, NULL},
                   "missing tensor blk.1.ffn_up.weight");
}
Test(model, refuses_bad_dims) {
    expect_refusal((spec){"llama", 128, NULL, NKV, NULL}, "shape");
}
Test(model, refuses_inconsistent_heads) {
    expect_refusal((spec){"llama", E, NULL, 3, NULL}, "head dims inconsistent");
}
Test(model, refuses_bad_activation) {
    expect_refusal((spec){"llama", E, NULL, NKV, "gelu"}, "ffn_activation");
}
Test(model, refuses_missing_file) {
    trit_err err = {0};
    cr_assert_null(trit_model_load("/nonexistent/model.gguf", &err));
    cr_assert(err.msg[0] != 0);
}
Test(model, reads_relu2) {
    spec s = good;
    s.act = "relu2";
    char *p = write_model(&s);
    trit_err err = {0};
    trit_model *m = trit_model_load(p, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_eq(m->hp.act, TRIT_ACT_RELU2);
    cr_assert(m->hp.act_from_file);
    trit_model_free(m);
    unlink(p);
    free(p);
}

static trit_ctx *mkctx(trit_model *m, int threads, int rope, int act) {
    trit_ctx_params cp = trit_ctx_default_params();
    cp.n_ctx = 64;
    cp.n_threads = threads;
    cp.rope_mode = rope;
    cp.act = act;
    trit_err err = {0};
    trit_ctx *c = trit_ctx_new(m, &cp, &err);
    cr_assert_not_null(c, "%s", err.msg);
    return c;
}

static double max_abs_diff(const float *a, const float *b, int n) {
    double d = 0;
    for (int i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static const int32_t toks[8] = {1, 5, 9, 2, 33, 60, 7, 11};

Test(engine, prefill_equals_single_steps) {
    char *p;
    trit_model *m = load_ok(&p);
    trit_ctx *a = mkctx(m, 1, -1, -1), *b = mkctx(m, 2, -1, -1);
    trit_err err = {0};
    cr_assert_eq(trit_eval(a, toks, 8, 0, true, &err), 0, "%s", err.msg);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(trit_eval(b, &toks[i], 1, i, false, &err), 0, "%s", err.msg);
        double d = max_abs_diff(trit_get_logits(a, i), trit_get_logits(b, -1), V);
        cr_assert(d < 2e-3, "position %d: batch vs step logits differ by %g", i, d);
    }
    cr_assert_eq(trit_ctx_n_past(b), 8);
    /* rewinding: re-evaluating from pos 4 discards the tail and gives the same logits */
    cr_assert_eq(trit_eval(b, &toks[4], 4, 4, false, &err), 0, "%s", err.msg);
    cr_assert(max_abs_diff(trit_get_logits(a, 7), trit_get_logits(b, -1), V) < 2e-3);
    cr_assert_null(trit_get_logits(b, 0), "only the last row is kept without logits_all");
    trit_ctx_free(a);
    trit_ctx_free(b);
    trit_model_free(m);
    unlink(p);
    free(p);
}

Test(engine, deterministic) {
    char *p;
    trit_model *m = load_ok(&p);
    trit_ctx *a = mkctx(m, 1, -1, -1), *b = mkctx(m, 1, -1, -1);
    cr_assert_eq(trit_eval(a, toks, 8, 0, false, NULL), 0);
    cr_assert_eq(trit_eval(b, toks, 8, 0, false, NULL), 0);
    cr_assert_eq(memcmp(trit_get_logits(a, -1), trit_get_logits(b, -1), V * sizeof(float)), 0);
    trit_kv_clear(a);
    cr_assert_eq(trit_ctx_n_past(a), 0);
    cr_assert_eq(trit_eval(a, toks, 8, 0, false, NULL), 0);
    cr_assert_eq(memcmp(trit_get_logits(a, -1), trit_get_logits(b, -1), V * sizeof(float)), 0);
    trit_ctx_free(a);
    trit_ctx_free(b);
    trit_model_free(m);
    unlink(p);
    free(p);
}

/* The numerics are the reference's for any thread count: below the split-KV threshold (KV
 * view < 512 cells) nothing depends on how work is shared, so 1 and 3 threads give identical
 * logits, batched and step by step. */
Test(engine, threads_bit_identical) {
    char *p;
    trit_model *m = load_ok(&p);
    trit_ctx *a = mkctx(m, 1, -1, -1), *b = mkctx(m, 3, -1, -1);
    cr_assert_eq(trit_eval(a, toks, 8, 0, true, NULL), 0);
    cr_assert_eq(trit_eval(b, toks, 8, 0, true, NULL), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(memcmp(trit_get_logits(a, i), trit_get_logits(b, i), V * sizeof(float)), 0,
                     "position %d", i);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(trit_eval(a, &toks[i], 1, 8 + i, false, NULL), 0);
        cr_assert_eq(trit_eval(b, &toks[i], 1, 8 + i, false, NULL), 0);
        cr_assert_eq(memcmp(trit_get_logits(a, -1), trit_get_logits(b, -1), V * sizeof(float)), 0,
                     "decode step %d", i);
    }
    trit_ctx_free(a);
    trit_ctx_free(b);
    trit_model_free(m);
    unlink(p);
    free(p);
}

Test(engine, overrides_change_logits) {
    char *p;
    trit_model *m = load_ok(&p);
    trit_ctx *base = mkctx(m, 1, -1, -1), *neox = mkctx(m, 1, TRIT_ROPE_NEOX, -1),
             *relu = mkctx(m, 1, -1, TRIT_ACT_RELU2);
    cr_assert_eq(trit_eval(base, toks, 8, 0, false, NULL), 0);
    cr_assert_eq(trit_eval(neox, toks, 8, 0, false, NULL), 0);
    cr_assert_eq(trit_eval(relu, toks, 8, 0, false, NULL), 0);
    cr_assert(max_abs_diff(trit_get_logits(base, -1), trit_get_logits(neox, -1), V) > 1e-3);
    cr_assert(max_abs_diff(trit_get_logits(base, -1), trit_get_logits(relu, -1), V) > 1e-3);
    trit_ctx_free(base);
    trit_ctx_free(neox);
    trit_ctx_free(relu);
    trit_model_free(m);
    unlink(p);
    free(p);
}

Test(engine, rejects_bad_input) {
    char *p;
    trit_model *m = load_ok(&p);
    trit_ctx *c = mkctx(m, 1, -1, -1);
    trit_err err = {0};
    int32_t bad = V;
    cr_assert_eq(trit_eval(c, &bad, 1, 0, false, &err), -1);
    cr_assert(strstr(err.msg, "token id") != NULL, "%s", err.msg);
    cr_assert_eq(trit_eval(c, toks, 1, 5, false, &err), -1, "gap in positions must fail");
    int32_t many[65] = {0};
    cr_assert_eq(trit_eval(c, many, 65, 0, false, &err), -1, "context overflow must fail");
    cr_assert(strstr(err.msg, "context") != NULL, "%s", err.msg);
    trit_ctx_free(c);
    trit_model_free(m);
    unlink(p);
    free(p);
}

/* --numerics: a bad value is refused naming the field; with an F32 KV cache (where exact has no
 * fp16 rounding either) fast's logits are within 1e-4 of exact's; fast gives the same bytes for
 * 1 and 3 threads, batched and step by step. */
Test(engine, numerics_modes) {
    char *p;
    trit_model *m = load_ok(&p);
    trit_ctx_params cp = trit_ctx_default_params();
    cr_assert_eq(cp.numerics, TRIT_NUMERICS_EXACT, "exact is the default");
    cp.n_ctx = 64;
    cp.numerics = 7;
    trit_err err = {0};
    cr_assert_null(trit_ctx_new(m, &cp, &err));
    cr_assert(strstr(err.msg, "numerics") != NULL, "%s", err.msg);
    cp.kv_type = TRIT_F32;
    cp.numerics = TRIT_NUMERICS_EXACT;
    trit_ctx *ex = trit_ctx_new(m, &cp, &err), *f[2];
    cr_assert_not_null(ex, "%s", err.msg);
    cp.numerics = TRIT_NUMERICS_FAST;
    for (int i = 0; i < 2; i++) {
        cp.n_threads = i ? 3 : 1;
        f[i] = trit_ctx_new(m, &cp, &err);
        cr_assert_not_null(f[i], "%s", err.msg);
    }
    cr_assert_eq(trit_eval(ex, toks, 8, 0, true, NULL), 0);
    for (int i = 0; i < 2; i++) cr_assert_eq(trit_eval(f[i], toks, 8, 0, true, NULL), 0);
    for (int t = 0; t < 8; t++) {
        cr_assert_eq(memcmp(trit_get_logits(f[0], t), trit_get_logits(f[1], t), V * sizeof(float)),
                     0, "fast, position %d: 1 vs 3 threads", t);
        const double d = max_abs_diff(trit_get_logits(ex, t), trit_get_logits(f[0], t), V);
        cr_assert(d < 1e-4, "position %d: fast vs exact logits differ by %g", t, d);
    }
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 2; k++)
            cr_assert_eq(trit_eval(f[k], &toks[i], 1, 8 + i, false, NULL), 0);
        cr_assert_eq(
            memcmp(trit_get_logits(f[0], -1), trit_get_logits(f[1], -1), V * sizeof(float)), 0,
            "fast decode step %d: 1 vs 3 threads", i);
    }
    trit_ctx_free(ex);
    trit_ctx_free(f[0]);
    trit_ctx_free(f[1]);
    trit_model_free(m);
    unlink(p);
    free(p);
}

typedef struct {
    int n;
    char names[256][32];
    int64_t rows[256];
} trace_log;
static void on_trace(void *ud, const char *name, const float *d, int64_t ne0, int64_t ne1) {
    trace_log *t = ud;
    if (t->n < 256) {
        snprintf(t->names[t->n], 32, "%s", name);
        t->rows[t->n++] = ne1;
    }
}

Test(engine, trace_points) {
    char *p;
    trit_model *m = load_ok(&p);
    trit_ctx *c = mkctx(m, 1, -1, -1);
    trace_log *t = calloc(1, sizeof *t);
    trit_ctx_set_trace(c, on_trace, t);
    cr_assert_eq(trit_eval(c, toks, 4, 0, false, NULL), 0);
    const char *want[] = {"attn_norm-0",  "Qcur-0",    "Kcur-0",     "Vcur-0",   "kqv_out-0",
                          "attn_out-0",   "ffn_inp-0", "ffn_norm-0", "ffn_up-0", "ffn_gate-0",
                          "ffn_swiglu-0", "ffn_out-0", "l_out-0"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) cr_assert_str_eq(t->names[i], want[i]);
    /* last layer: rows after attention are only the output row (inp_out_ids) */
    int idx_attn1 = -1, idx_inp1 = -1;
    for (int i = 0; i < t->n; i++) {
        if (!strcmp(t->names[i], "attn_out-1")) idx_attn1 = i;
        if (!strcmp(t->names[i], "ffn_inp-1")) idx_inp1 = i;
    }
    cr_assert(idx_attn1 >= 0 && idx_inp1 >= 0);
    cr_assert_eq(t->rows[idx_attn1], 4);
    cr_assert_eq(t->rows[idx_inp1], 1);
    cr_assert_str_eq(t->names[t->n - 1], "result_output");
    cr_assert_str_eq(t->names[t->n - 2], "result_norm");
    /* disabling: no more calls */
    int n0 = t->n;
    trit_ctx_set_trace(c, NULL, NULL);
    cr_assert_eq(trit_eval(c, toks, 4, 0, false, NULL), 0);
    cr_assert_eq(t->n, n0);
    free(t);
    trit_ctx_free(c);
    trit_model_free(m);
    unlink(p);
    free(p);
}

Test(ops, rmsnorm_and_rope) {
    float x[8] = {1, 2, 3, 4, -1, -2, -3, -4}, y[8];
    trit_rmsnorm(x, NULL, y, 8, 0.0f);
    double ss = 0;
    for (int i = 0; i < 8; i++) ss += (double)y[i] * y[i];
    cr_assert_float_eq(ss / 8, 1.0, 1e-5);
    /* rope at position 0 is the identity; at position 1 the first pair rotates by 1 rad */
    float r[4] = {1, 0, 1, 0};
    trit_rope(r, 1, 4, 4, 0, 10000.0f, TRIT_ROPE_NORM);
    cr_assert_float_eq(r[0], 1.0f, 1e-7);
    trit_rope(r, 1, 4, 4, 1, 10000.0f, TRIT_ROPE_NORM);
    cr_assert_float_eq(r[0], cosf(1.0f), 1e-6);
    cr_assert_float_eq(r[1], sinf(1.0f), 1e-6);
    float s[4] = {1, 2, 3, 4};
    trit_softmax(s, 4);
    cr_assert_float_eq(s[0] + s[1] + s[2] + s[3], 1.0f, 1e-6);
    cr_assert(s[3] > s[2] && s[2] > s[1]);
}
