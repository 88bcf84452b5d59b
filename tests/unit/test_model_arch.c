/* test_model_arch — the architecture rules: arch names, which FFN activation and why, the
 * bitnet-b1.58 graph against bitnet + relu2, per-tensor scale tensors (loaded for bitnet,
 * refused for bitnet-b1.58), refusals that name tensor/type/command, and the I2_S <-> TQ2_0
 * conversion's exactness claim and error report. Models are tiny GGUFs written here. */
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "quant/quant.h"

#include <criterion/criterion.h>

#include "helpers.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { E = 256, FF = 512, NL = 2, NH = 4, NKV = 2, V = 64 };

/* What to write: the arch string, an optional ffn_activation value (or a u32 when act_u32),
 * an extra f32 {1} tensor, and one tensor whose type is replaced (with junk bytes). */
typedef struct {
    const char *arch;
    const char *act;
    bool act_u32;
    const char *extra;  /* e.g. "blk.0.attn_q.scale" */
    float extra_value;  /* its value */
    int64_t extra_ne0;  /* its shape (1 normally) */
    const char *retype; /* tensor written with type retype_to instead */
    uint32_t retype_to; /* e.g. 14 = q6_K */
    uint32_t wtype;     /* block weights: TRIT_F32 or TRIT_I2_S */
} spec;

static char dir[64];
static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/trit-test-arch-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}
static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)system(cmd);
}
TestSuite(arch, .init = setup, .fini = teardown);

/* Ternary weights (codes times one fp16-exact scale) so F32 and I2_S hold the same values. */
static void fill_weights(float *x, size_t n, bool norm) {
    for (size_t i = 0; i < n; i++) {
        if (norm) {
            x[i] = 1.0f + 0.1f * rng_normal();
        } else {
            const float u = rng_uniform();
            x[i] = u < 0.33f ? -0.125f : u < 0.66f ? 0.0f : 0.125f;
        }
    }
}

static char *write_model(const char *name, const spec *s) {
    char *path = xmalloc(256);
    snprintf(path, 256, "%s/%s", dir, name);
    gguf_writer *w = gguf_writer_new();
    char k[128];
    gguf_w_str(w, "general.architecture", s->arch);
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", s->arch, suffix), k)
    gguf_w_u32(w, KEY("context_length"), 256);
    gguf_w_u32(w, KEY("embedding_length"), E);
    gguf_w_u32(w, KEY("block_count"), NL);
    gguf_w_u32(w, KEY("feed_forward_length"), FF);
    gguf_w_u32(w, KEY("attention.head_count"), NH);
    gguf_w_u32(w, KEY("attention.head_count_kv"), NKV);
    gguf_w_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    gguf_w_u32(w, KEY("vocab_size"), V);
    if (s->act && s->act_u32) gguf_w_u32(w, KEY("ffn_activation"), 1);
    if (s->act && !s->act_u32) gguf_w_str(w, KEY("ffn_activation"), s->act);
#undef KEY
    rng_state = 7; /* the same weights in every file */
    const bool bitnet = strcmp(s->arch, "llama") != 0;
    static const char *const sfx[] = {"attn_norm",   "attn_q",        "attn_k",      "attn_v",
                                      "attn_output", "ffn_norm",      "ffn_gate",    "ffn_up",
                                      "ffn_down",    "attn_sub_norm", "ffn_sub_norm"};
    const int64_t kv = E / NH * NKV;
    const int64_t dims[11][2] = {{E, 1},  {E, E},  {E, kv}, {E, kv}, {E, E}, {E, 1},
                                 {E, FF}, {E, FF}, {FF, E}, {E, 1},  {FF, 1}};
    char nm[64];
    void *keep[64]; /* the writer reads tensor data when it writes: keep it until then */
    int n_keep = 0;
    for (int t = -2; t < NL * 11 + (bitnet ? 0 : 1); t++) {
        int64_t ne0, ne1;
        bool norm;
        if (t == -2) { /* token_embd */
            snprintf(nm, sizeof nm, "token_embd.weight");
            ne0 = E, ne1 = V, norm = false;
        } else if (t == -1) {
            snprintf(nm, sizeof nm, "output_norm.weight");
            ne0 = E, ne1 = 1, norm = true;
        } else if (t == NL * 11) {
            snprintf(nm, sizeof nm, "output.weight");
            ne0 = E, ne1 = V, norm = false;
        } else {
            const int l = t / 11, j = t % 11;
            if (j >= 9 && !bitnet) continue;
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, sfx[j]);
            ne0 = dims[j][0], ne1 = dims[j][1], norm = ne1 == 1;
        }
        const size_t n = (size_t)(ne0 * ne1);
        float *x = xmalloc(n * sizeof(float));
        fill_weights(x, n, norm);
        if (t == -2)
            for (size_t i = 0; i < n; i++) x[i] = rng_normal();
        uint32_t type = TRIT_F32;
        if (!norm && t >= 0 && t < NL * 11) type = s->wtype ? s->wtype : TRIT_F32;
        if (s->retype && !strcmp(s->retype, nm)) type = s->retype_to;
        const trit_type_info *ti = trit_type_get(type);
        size_t nb = type == TRIT_I2_S ? trit_tensor_nbytes(type, ne0, ne1)
                                      : (size_t)(n / (size_t)ti->blck * ti->size);
        void *data = xcalloc(nb, 1);
        if (type == TRIT_F32 || type == TRIT_I2_S)
            cr_assert_eq(trit_quantize_tensor(type, x, data, ne0, ne1), 0);
        else
            memset(data, 0x11, nb); /* junk: only the refusal is tested */
        int64_t ne[2] = {ne0, ne1};
        gguf_w_tensor(w, nm, type, ne1 == 1 ? 1 : 2, ne, data, nb);
        keep[n_keep++] = data;
        free(x);
    }
    float v[4] = {s->extra_value, s->extra_value, s->extra_value, s->extra_value};
    if (s->extra) {
        int64_t ne[1] = {s->extra_ne0 ? s->extra_ne0 : 1};
        gguf_w_tensor(w, s->extra, TRIT_F32, 1, ne, v, (size_t)ne[0] * sizeof(float));
    }
    trit_err err = {0};
    cr_assert_eq(gguf_writer_write(w, path, NULL, NULL, &err), 0, "write: %s", err.msg);
    gguf_writer_free(w);
    for (int i = 0; i < n_keep; i++) free(keep[i]);
    return path;
}

static trit_model *load(const char *name, const spec *s) {
    char *p = write_model(name, s);
    trit_err err = {0};
    trit_model *m = trit_model_load(p, &err);
    cr_assert_not_null(m, "load %s: %s", name, err.msg);
    free(p);
    return m;
}

static void refused(const char *name, const spec *s, const char *const *needles) {
    char *p = write_model(name, s);
    trit_err err = {0};
    trit_model *m = trit_model_load(p, &err);
    cr_assert_null(m, "%s should be refused", name);
    for (size_t i = 0; needles[i]; i++)
        cr_assert(strstr(err.msg, needles[i]), "message '%s' should mention '%s'", err.msg,
                  needles[i]);
    free(p);
}

Test(arch, names_and_families) {
    static const char *const names[] = {"llama", "bitnet", "bitnet-b1.58", "bitnet-25"};
    for (size_t i = 0; i < 4; i++) {
        const int a = trit_arch_from_name(names[i]);
        cr_assert_geq(a, 0, "%s", names[i]);
        cr_assert_str_eq(trit_arch_name((enum trit_arch)a), names[i]);
        cr_assert_eq(trit_arch_is_bitnet((enum trit_arch)a), i > 0, "%s", names[i]);
    }
    cr_assert_eq(trit_arch_from_name("bitnet-b1.5"), -1);
    cr_assert_eq(trit_arch_from_name("BitNet"), -1);
    cr_assert_eq(trit_arch_from_name(NULL), -1);
}

/* The rule: arch decides, the key overrides; inspect's phrase says which. */
Test(arch, activation_rule_and_reason) {
    struct {
        const char *arch, *key;
        enum trit_act act;
        enum trit_act_source src;
        const char *why;
    } cases[] = {
        {"bitnet-b1.58", NULL, TRIT_ACT_RELU2, TRIT_ACT_SRC_ARCH,
         "arch bitnet-b1.58 defines relu2"},
        {"bitnet-25", NULL, TRIT_ACT_RELU2, TRIT_ACT_SRC_ARCH, "arch bitnet-25 defines relu2"},
        {"bitnet", NULL, TRIT_ACT_SILU, TRIT_ACT_SRC_UPSTREAM,
         "upstream llama.cpp bitnet uses SiLU"},
        {"llama", NULL, TRIT_ACT_SILU, TRIT_ACT_SRC_UPSTREAM, "upstream llama.cpp llama uses SiLU"},
        {"bitnet", "relu2", TRIT_ACT_RELU2, TRIT_ACT_SRC_KEY, "key bitnet.ffn_activation = relu2"},
        {"bitnet-b1.58", "silu", TRIT_ACT_SILU, TRIT_ACT_SRC_KEY,
         "key bitnet-b1.58.ffn_activation = silu"},
        {"llama", "relu2", TRIT_ACT_RELU2, TRIT_ACT_SRC_KEY, "key llama.ffn_activation = relu2"},
    };
    for (size_t i = 0; i < TRIT_ARRAY_LEN(cases); i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "act%zu.gguf", i);
        trit_model *m = load(nm, &(spec){.arch = cases[i].arch, .act = cases[i].key});
        cr_assert_eq(m->hp.act, cases[i].act, "case %zu", i);
        cr_assert_eq(m->hp.act_source, cases[i].src, "case %zu", i);
        cr_assert_eq(m->hp.act_from_file, cases[i].src == TRIT_ACT_SRC_KEY);
        char why[160];
        trit_act_explain(cases[i].arch, m->hp.act, m->hp.act_source, why, sizeof why);
        cr_assert_str_eq(why, cases[i].why);
        trit_buf d = {0};
        trit_model_describe(m, &d);
        cr_assert(strstr(d.p, cases[i].why), "%s", d.p);
        trit_buf_free(&d);
        trit_model_free(m);
    }
    refused("badact.gguf", &(spec){.arch = "bitnet-b1.58", .act = "gelu"},
            (const char *const[]){"bitnet-b1.58.ffn_activation", "gelu", NULL});
    refused("u32act.gguf", &(spec){.arch = "bitnet", .act = "x", .act_u32 = true},
            (const char *const[]){"bitnet.ffn_activation", "expected a string", NULL});
}

/* bitnet-b1.58 is the bitnet graph: NEOX RoPE, tied output, sub-norms bound. */
Test(arch, b158_is_the_bitnet_graph) {
    trit_model *m = load("b158.gguf", &(spec){.arch = "bitnet-b1.58", .wtype = TRIT_I2_S});
    cr_assert_eq(m->hp.arch, TRIT_ARCH_BITNET_B158);
    cr_assert_eq(m->hp.rope_mode, TRIT_ROPE_NEOX);
    cr_assert(m->tied_output);
    cr_assert_eq(m->output.data, m->tok_embd.data);
    cr_assert_not_null(m->layers[1].attn_sub_norm.data);
    cr_assert_not_null(m->layers[1].ffn_sub_norm.data);
    cr_assert_eq(m->layers[0].wq.type, TRIT_I2_S);
    cr_assert_float_eq(m->layers[0].wq.scale, 0.125f, 0, "i2_s scale read");
    trit_model_free(m);
}

/* Logits of a forward pass over a few tokens (last position). */
static float *logits_of(trit_model *m, int act_override) {
    trit_ctx_params cp = trit_ctx_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    cp.act = act_override;
    trit_err err = {0};
    trit_ctx *c = trit_ctx_new(m, &cp, &err);
    cr_assert_not_null(c, "%s", err.msg);
    const int32_t toks[5] = {1, 7, 42, 3, 63};
    cr_assert_eq(trit_eval(c, toks, 5, 0, false, &err), 0, "%s", err.msg);
    float *out = xmalloc(V * sizeof(float));
    memcpy(out, trit_get_logits(c, -1), V * sizeof(float));
    trit_ctx_free(c);
    return out;
}

/* The parity claim at the engine level: bitnet-b1.58 == bitnet + ffn_activation relu2,
 * bit for bit; and != bitnet without the key (so the test can fail). */
Test(arch, b158_equals_bitnet_relu2) {
    trit_model *a = load("a.gguf", &(spec){.arch = "bitnet-b1.58", .wtype = TRIT_I2_S});
    trit_model *b = load("b.gguf", &(spec){.arch = "bitnet", .act = "relu2", .wtype = TRIT_I2_S});
    trit_model *c = load("c.gguf", &(spec){.arch = "bitnet", .wtype = TRIT_I2_S});
    float *la = logits_of(a, -1), *lb = logits_of(b, -1), *lc = logits_of(c, -1);
    cr_assert(memcmp(la, lb, V * sizeof(float)) == 0, "bitnet-b1.58 differs from bitnet+relu2");
    cr_assert(memcmp(la, lc, V * sizeof(float)) != 0, "relu2 and silu gave the same logits");
    float *ld = logits_of(c, TRIT_ACT_RELU2); /* forcing relu2 on plain bitnet: same again */
    cr_assert(memcmp(la, ld, V * sizeof(float)) == 0);
    free(la), free(lb), free(lc), free(ld);
    trit_model_free(a), trit_model_free(b), trit_model_free(c);
}

/* Upstream loads "<weight>.scale" for every arch and multiplies the matmul's result by it. */
Test(arch, scale_tensors) {
    trit_model *m = load(
        "s.gguf", &(spec){.arch = "bitnet", .extra = "blk.1.ffn_down.scale", .extra_value = 1.3f});
    cr_assert_float_eq(m->layers[1].ffn_down.scale, 1.3f, 0);
    cr_assert_float_eq(m->layers[0].ffn_down.scale, 1.0f, 0);
    float *with = logits_of(m, -1);
    trit_model_free(m);
    m = load("s0.gguf", &(spec){.arch = "bitnet"});
    float *without = logits_of(m, -1);
    cr_assert(memcmp(with, without, V * sizeof(float)) != 0, "the scale changed nothing");
    free(with), free(without);
    trit_model_free(m);
    m = load("sl.gguf", &(spec){.arch = "llama", .extra = "blk.0.attn_q.scale", .extra_value = 2});
    cr_assert_float_eq(m->layers[0].wq.scale, 2.0f, 0);
    trit_model_free(m);
    /* bitnet.cpp's archs have none: refuse instead of ignoring it */
    refused("sb.gguf",
            &(spec){.arch = "bitnet-b1.58", .extra = "blk.0.attn_q.scale", .extra_value = 1},
            (const char *const[]){"blk.0.attn_q.scale", "bitnet-b1.58", NULL});
    refused("sshape.gguf", &(spec){.arch = "bitnet", .extra = "blk.0.attn_k.scale", .extra_ne0 = 2},
            (const char *const[]){"blk.0.attn_k.scale", "one f32 value", NULL});
    refused("snan.gguf",
            &(spec){.arch = "bitnet", .extra = "blk.0.attn_v.scale", .extra_value = NAN},
            (const char *const[]){"blk.0.attn_v.scale", "not finite", NULL});
}

/* A type trit does not compute with: the message names tensor, type and the command. */
Test(arch, refusals_name_tensor_type_and_command) {
    /* q6_K and q4_K are computed since the k-quant work; iq4_xs (23) is not */
    refused("iq4.gguf", &(spec){.arch = "bitnet", .retype = "token_embd.weight", .retype_to = 23},
            (const char *const[]){"token_embd.weight", "iq4_xs",
                                  "llama-quantize --allow-requantize", "--token-embedding-type f16",
                                  "TQ2_0", NULL});
    refused("iq2.gguf",
            &(spec){.arch = "llama", .retype = "blk.0.ffn_down.weight", .retype_to = 16},
            (const char *const[]){"blk.0.ffn_down.weight", "iq2_xxs", "Q8_0", NULL});
    refused("i2emb.gguf",
            &(spec){.arch = "bitnet", .retype = "token_embd.weight", .retype_to = TRIT_I2_S},
            (const char *const[]){"token_embd.weight", "i2_s", "trit quantize", "tq2_0", NULL});
    /* upstream's bitnet has no output.weight (llama.cpp rejects the file); bitnet.cpp's
     * B158 loader reads an optional one its graph never uses: accepted, head = token_embd */
    refused("out.gguf", &(spec){.arch = "bitnet", .extra = "output.weight", .extra_ne0 = 4},
            (const char *const[]){"output.weight", "bitnet", "token_embd", NULL});
    trit_model *m = load("out158.gguf",
                         &(spec){.arch = "bitnet-b1.58", .extra = "output.weight", .extra_ne0 = 4});
    cr_assert(m->tied_output);
    cr_assert_eq(m->output.data, m->tok_embd.data);
    trit_model_free(m);
    refused("arch.gguf", &(spec){.arch = "bitnet-3"},
            (const char *const[]){"unknown architecture", "bitnet-3", "bitnet-b1.58", NULL});
}

/* ---- I2_S <-> TQ2_0 ---- */
static void i2s_tensor(float scale, int64_t ne0, int64_t nrows, uint8_t **out, float **x) {
    const size_t n = (size_t)(ne0 * nrows);
    *x = xmalloc(n * sizeof(float));
    rng_state = 3;
    for (size_t i = 0; i < n; i++) {
        const float u = rng_uniform();
        (*x)[i] = u < 0.3f ? -scale : u < 0.6f ? 0.0f : scale;
    }
    *out = xcalloc(trit_tensor_nbytes(TRIT_I2_S, ne0, nrows), 1);
    cr_assert_eq(trit_quantize_tensor(TRIT_I2_S, *x, *out, ne0, nrows), 0);
}

Test(arch, convert_exact_when_scale_is_fp16) {
    const int64_t ne0 = 512, rows = 6;
    uint8_t *src, *back = xcalloc(trit_tensor_nbytes(TRIT_I2_S, ne0, rows), 1);
    float *x;
    i2s_tensor(0.046875f, ne0, rows, &src, &x); /* 3/64: an fp16 value */
    uint8_t *tq = xcalloc(trit_tensor_nbytes(TRIT_TQ2_0, ne0, rows), 1);
    trit_convert_report r = {0};
    trit_err err = {0};
    cr_assert_eq(trit_convert_tensor(TRIT_I2_S, TRIT_TQ2_0, src, tq, ne0, rows, &r, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(r.n, (size_t)(ne0 * rows));
    cr_assert_eq(r.n_diff, 0);
    cr_assert_eq(r.max_abs_err, 0.0);
    /* the same bytes as TQ2_0's own quantizer on the f32 weights */
    uint8_t *ref = xcalloc(trit_tensor_nbytes(TRIT_TQ2_0, ne0, rows), 1);
    cr_assert_eq(trit_quantize_tensor(TRIT_TQ2_0, x, ref, ne0, rows), 0);
    cr_assert(!memcmp(ref, tq, trit_tensor_nbytes(TRIT_TQ2_0, ne0, rows)));
    /* and back to the identical I2_S bytes */
    trit_convert_report r2 = {0};
    cr_assert_eq(trit_convert_tensor(TRIT_TQ2_0, TRIT_I2_S, tq, back, ne0, rows, &r2, &err), 0);
    cr_assert_eq(r2.n_diff, 0);
    cr_assert(!memcmp(src, back, trit_tensor_nbytes(TRIT_I2_S, ne0, rows)));
    trit_buf d = {0};
    trit_convert_describe(&r, TRIT_TQ2_0, &d);
    cr_assert(strstr(d.p, "exact"), "%s", d.p);
    trit_buf_free(&d);
    free(src), free(back), free(x), free(tq), free(ref);
}

Test(arch, convert_reports_the_fp16_error) {
    const int64_t ne0 = 256, rows = 4;
    uint8_t *src;
    float *x;
    const float s = 0.1f; /* not an fp16 value */
    i2s_tensor(s, ne0, rows, &src, &x);
    uint8_t *tq = xcalloc(trit_tensor_nbytes(TRIT_TQ2_0, ne0, rows), 1);
    trit_convert_report r = {0};
    trit_err err = {0};
    cr_assert_eq(trit_convert_tensor(TRIT_I2_S, TRIT_TQ2_0, src, tq, ne0, rows, &r, &err), 0);
    const double want = fabs((double)trit_fp16_to_fp32(trit_fp32_to_fp16(s)) - (double)s);
    cr_assert_gt(want, 0.0);
    size_t nonzero = 0;
    for (int64_t i = 0; i < ne0 * rows; i++) nonzero += x[i] != 0.0f;
    cr_assert_eq(r.n_diff, nonzero, "every non-zero weight moves by the fp16 rounding");
    cr_assert_float_eq(r.max_abs_err, want, 1e-12);
    cr_assert_leq(r.max_rel_err, 1.0 / 2048.0);
    trit_buf d = {0};
    trit_convert_describe(&r, TRIT_TQ2_0, &d);
    cr_assert(strstr(d.p, "worst-case error") && strstr(d.p, "fp16"), "%s", d.p);
    trit_buf_free(&d);

    /* TQ2_0 with two block scales: one I2_S scale cannot hold both */
    float *y = xmalloc((size_t)(ne0 * rows) * sizeof(float));
    memcpy(y, x, (size_t)(ne0 * rows) * sizeof(float));
    for (int64_t i = 0; i < ne0; i++) y[i] *= 2; /* block 0 twice as large */
    cr_assert_eq(trit_quantize_tensor(TRIT_TQ2_0, y, tq, ne0, rows), 0);
    uint8_t *i2 = xcalloc(trit_tensor_nbytes(TRIT_I2_S, ne0, rows), 1);
    trit_convert_report r2 = {0};
    cr_assert_eq(trit_convert_tensor(TRIT_TQ2_0, TRIT_I2_S, tq, i2, ne0, rows, &r2, &err), 0);
    cr_assert_gt(r2.n_diff, 0);
    cr_assert_gt(r2.max_rel_err, 0.4, "blocks at half the scale double: %g", r2.max_rel_err);
    free(y), free(i2), free(src), free(x), free(tq);
}

Test(arch, convert_refuses_bad_input) {
    uint8_t *src;
    float *x;
    i2s_tensor(0.5f, 128, 2, &src, &x);
    uint8_t dst[1024];
    trit_err err = {0};
    cr_assert_eq(trit_convert_tensor(TRIT_I2_S, TRIT_TQ2_0, src, dst, 128, 2, NULL, &err), -1);
    cr_assert(strstr(err.msg, "multiple of 256"), "%s", err.msg);
    cr_assert_eq(trit_convert_tensor(TRIT_I2_S, TRIT_Q8_0, src, dst, 256, 1, NULL, &err), -1);
    free(src), free(x);
    i2s_tensor(0.5f, 256, 1, &src, &x);
    src[5] |= 0xC0; /* code 3 */
    err = (trit_err){0};
    cr_assert_eq(trit_convert_tensor(TRIT_I2_S, TRIT_TQ2_0, src, dst, 256, 1, NULL, &err), -1);
    cr_assert(strstr(err.msg, "code 3"), "%s", err.msg);
    free(src), free(x);
}

Test(arch, convert_file) {
    char *in = write_model("f.gguf", &(spec){.arch = "bitnet", .wtype = TRIT_I2_S});
    char out[300], back[300];
    snprintf(out, sizeof out, "%s/f_tq2.gguf", dir);
    snprintf(back, sizeof back, "%s/f_back.gguf", dir);
    trit_convert_report r;
    trit_err err = {0};
    cr_assert_eq(trit_convert_file(in, out, TRIT_I2_S, TRIT_TQ2_0, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.n_tensors, NL * 7);
    cr_assert_eq(r.n_exact, NL * 7);
    gguf_file *f = gguf_open(out, &err);
    cr_assert_not_null(f, "%s", err.msg);
    cr_assert_eq(gguf_find_tensor(f, "blk.1.ffn_up.weight")->type, TRIT_TQ2_0);
    cr_assert_eq(gguf_find_tensor(f, "blk.1.ffn_norm.weight")->type, TRIT_F32);
    gguf_close(f);
    cr_assert_eq(trit_convert_file(out, back, TRIT_TQ2_0, TRIT_I2_S, &r, &err), 0, "%s", err.msg);
    /* a file with nothing to convert, and a missing file */
    cr_assert_eq(trit_convert_file(out, back, TRIT_I2_S, TRIT_TQ2_0, &r, &err), -1);
    cr_assert(strstr(err.msg, "no i2_s tensor"), "%s", err.msg);
    cr_assert_eq(trit_convert_file("/nonexistent.gguf", back, TRIT_I2_S, TRIT_TQ2_0, &r, &err), -1);
    free(in);
}
