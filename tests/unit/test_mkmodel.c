/* test_mkmodel — synthetic models: determinism, layout (keys, tensors, shapes, types),
 * ternary bitnet weights, bad parameters. Uses the reference's vocab GGUFs (skips without). */
#include "gguf/gguf.h"
#include "reference/reference.h"
#include "model/mkmodel.h"
#include "quant/quant.h"

#include <criterion/criterion.h>

#include "helpers.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/trit-test-mkmodel-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}
static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)system(cmd);
}

/* the 32000-token SPM vocab keeps files small; the default (llama-bpe) is tested once */
static const char *spm_vocab(void) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/src/models/ggml-vocab-llama-spm.gguf", trit_ref_dir());
    if (access(path, R_OK)) cr_skip_test("reference vocab %s not present (scripts/setup)", path);
    return path;
}

static char *make(const char *name, enum trit_arch arch, uint32_t type, uint64_t seed,
                  const char *vocab) {
    char *out = xmalloc(256);
    snprintf(out, 256, "%s/%s", dir, name);
    trit_mkmodel_params p = {.arch = arch,
                             .preset = "tiny",
                             .type = type,
                             .seed = seed,
                             .vocab_path = vocab,
                             .out_path = out};
    trit_err err = {0};
    cr_assert_eq(trit_mkmodel(&p, &err), 0, "mkmodel %s: %s", name, err.msg);
    return out;
}

/* The default vocab (llama-bpe, what mkmodel uses without vocab_path) is present, else skip. */
static void need_default_vocab(void) {
    char vocab[1024];
    snprintf(vocab, sizeof vocab, "%s/src/models/ggml-vocab-llama-bpe.gguf", trit_ref_dir());
    if (access(vocab, R_OK)) cr_skip_test("reference vocab not present");
}

/* Write the model p describes and open it (both must succeed). */
static gguf_file *make_open(const trit_mkmodel_params *p) {
    trit_err err = {0};
    cr_assert_eq(trit_mkmodel(p, &err), 0, "%s", err.msg);
    gguf_file *f = gguf_open(p->out_path, &err);
    cr_assert_not_null(f, "%s", err.msg);
    return f;
}

static void sha(const char *path, char out[65]) {
    trit_err err = {0};
    cr_assert_eq(trit_sha256_file(path, out, &err), 0, "%s", err.msg);
}

TestSuite(mkmodel, .init = setup, .fini = teardown);

Test(mkmodel, deterministic) {
    const char *v = spm_vocab();
    char *a = make("a.gguf", TRIT_ARCH_BITNET, TRIT_TQ2_0, 7, v);
    char *b = make("b.gguf", TRIT_ARCH_BITNET, TRIT_TQ2_0, 7, v);
    char *c = make("c.gguf", TRIT_ARCH_BITNET, TRIT_TQ2_0, 8, v);
    char ha[65], hb[65], hc[65];
    sha(a, ha);
    sha(b, hb);
    sha(c, hc);
    cr_assert_str_eq(ha, hb, "same seed must give the same bytes");
    cr_assert_str_neq(ha, hc, "a different seed must give different weights");
    free(a);
    free(b);
    free(c);
}

static const gguf_tensor *need(gguf_file *f, const char *name, uint32_t type, int64_t ne0,
                               int64_t ne1) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    cr_assert_not_null(t, "tensor %s missing", name);
    cr_assert_eq(t->type, type, "%s: type %s", name, trit_type_get(t->type)->name);
    cr_assert_eq(t->ne[0], ne0, "%s ne0 %lld", name, (long long)t->ne[0]);
    cr_assert_eq(t->ne[1], ne1, "%s ne1 %lld", name, (long long)t->ne[1]);
    cr_assert_eq(t->n_dims, ne1 == 1 ? 1u : 2u, "%s n_dims", name);
    return t;
}

static void check_u32(gguf_file *f, const char *key, uint32_t want) {
    uint32_t v = 0;
    cr_assert_eq(gguf_get_u32(f, key, &v), 0, "key %s missing", key);
    cr_assert_eq(v, want, "%s = %u, want %u", key, v, want);
}

Test(mkmodel, llama_layout) {
    char *path = make("llama.gguf", TRIT_ARCH_LLAMA, TRIT_Q8_0, 1, spm_vocab());
    trit_err err = {0};
    gguf_file *f = gguf_open(path, &err);
    cr_assert_not_null(f, "%s", err.msg);
    check_kv_str(f, "general.architecture", "llama");
    check_u32(f, "general.file_type", 7);
    check_u32(f, "llama.embedding_length", 256);
    check_u32(f, "llama.block_count", 2);
    check_u32(f, "llama.feed_forward_length", 512);
    check_u32(f, "llama.attention.head_count", 4);
    check_u32(f, "llama.attention.head_count_kv", 2);
    check_u32(f, "llama.context_length", 2048);
    check_u32(f, "llama.rope.dimension_count", 64);
    check_u32(f, "llama.vocab_size", 32000);
    float eps = 0, base = 0;
    cr_assert_eq(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps), 0);
    cr_assert_float_eq(eps, 1e-5f, 1e-9f);
    cr_assert_eq(gguf_get_f32(f, "llama.rope.freq_base", &base), 0);
    cr_assert_eq(base, 10000.0f);
    cr_assert_null(gguf_find(f, "llama.ffn_activation"), "no activation key without --act");
    check_kv_str(f, "tokenizer.ggml.model", "llama");
    const gguf_kv *toks = gguf_find(f, "tokenizer.ggml.tokens");
    cr_assert_not_null(toks);
    cr_assert_eq(toks->arr_n, 32000);

    need(f, "token_embd.weight", TRIT_F16, 256, 32000);
    need(f, "output_norm.weight", TRIT_F32, 256, 1);
    need(f, "output.weight", TRIT_F16, 256, 32000);
    need(f, "blk.1.attn_norm.weight", TRIT_F32, 256, 1);
    need(f, "blk.1.attn_q.weight", TRIT_Q8_0, 256, 256);
    need(f, "blk.1.attn_k.weight", TRIT_Q8_0, 256, 128);
    need(f, "blk.1.attn_v.weight", TRIT_Q8_0, 256, 128);
    need(f, "blk.1.attn_output.weight", TRIT_Q8_0, 256, 256);
    need(f, "blk.1.ffn_norm.weight", TRIT_F32, 256, 1);
    need(f, "blk.1.ffn_gate.weight", TRIT_Q8_0, 256, 512);
    need(f, "blk.1.ffn_up.weight", TRIT_Q8_0, 256, 512);
    need(f, "blk.1.ffn_down.weight", TRIT_Q8_0, 512, 256);
    cr_assert_null(gguf_find_tensor(f, "blk.0.attn_sub_norm.weight"));
    cr_assert_null(gguf_find_tensor(f, "blk.2.attn_q.weight"));
    cr_assert_eq(gguf_n_tensors(f), 3 + 2 * 9);
    gguf_close(f);
    free(path);
}

Test(mkmodel, bitnet_layout_and_ternary) {
    char *path = make("bitnet.gguf", TRIT_ARCH_BITNET, TRIT_F32, 3, spm_vocab());
    trit_err err = {0};
    gguf_file *f = gguf_open(path, &err);
    cr_assert_not_null(f, "%s", err.msg);
    check_u32(f, "general.file_type", 0);
    check_u32(f, "bitnet.block_count", 2);
    cr_assert_null(gguf_find_tensor(f, "output.weight"), "bitnet ties output to token_embd");
    need(f, "token_embd.weight", TRIT_F32, 256, 32000);
    need(f, "blk.0.attn_sub_norm.weight", TRIT_F32, 256, 1);
    need(f, "blk.0.ffn_sub_norm.weight", TRIT_F32, 512, 1);
    cr_assert_eq(gguf_n_tensors(f), 2 + 2 * 11);
    const char *ws[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                        "ffn_gate", "ffn_up", "ffn_down"};
    for (int l = 0; l < 2; l++) {
        for (size_t k = 0; k < TRIT_ARRAY_LEN(ws); k++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, ws[k]);
            const gguf_tensor *t = gguf_find_tensor(f, name);
            cr_assert_not_null(t, "%s", name);
            const float *x = t->data;
            int64_t n = t->ne[0] * t->ne[1], counts[3] = {0};
            float s = 0;
            for (int64_t i = 0; i < n; i++)
                if (x[i] != 0) s = fabsf(x[i]);
            cr_assert_gt(s, 0, "%s all zero", name);
            cr_assert_eq(s, trit_fp16_to_fp32(trit_fp32_to_fp16(s)), "%s scale not fp16", name);
            for (int64_t i = 0; i < n; i++) {
                cr_assert(x[i] == 0 || x[i] == s || x[i] == -s, "%s[%lld] = %g not in {0, +-%g}",
                          name, (long long)i, x[i], s);
                counts[x[i] == 0 ? 1 : x[i] > 0 ? 2 : 0]++;
            }
            /* BitNet's round(clip(W/mean|W|)) of a bell-shaped W: ~30% zeros, rest +-1 */
            cr_assert(counts[1] > n / 6 && counts[1] < n / 2, "%s: %lld zeros of %lld", name,
                      (long long)counts[1], (long long)n);
            cr_assert(counts[0] > n / 5 && counts[2] > n / 5, "%s: signs unbalanced", name);
        }
    }
    gguf_close(f);
    free(path);
}

Test(mkmodel, ternary_types_agree) {
    /* tq1_0, tq2_0 and i2_s of the same seed dequantize to exactly the f32 model's weights */
    const char *v = spm_vocab();
    char *pf = make("f.gguf", TRIT_ARCH_BITNET, TRIT_F32, 5, v);
    const uint32_t ts[] = {TRIT_TQ1_0, TRIT_TQ2_0, TRIT_I2_S};
    trit_err err = {0};
    gguf_file *ff = gguf_open(pf, &err);
    cr_assert_not_null(ff, "%s", err.msg);
    for (size_t k = 0; k < TRIT_ARRAY_LEN(ts); k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "t%zu.gguf", k);
        char *pq = make(nm, TRIT_ARCH_BITNET, ts[k], 5, v);
        gguf_file *fq = gguf_open(pq, &err);
        cr_assert_not_null(fq, "%s", err.msg);
        const gguf_tensor *a = gguf_find_tensor(ff, "blk.1.ffn_down.weight");
        const gguf_tensor *b = gguf_find_tensor(fq, "blk.1.ffn_down.weight");
        cr_assert_eq(b->type, ts[k]);
        int64_t n = a->ne[0] * a->ne[1];
        float *y = xmalloc((size_t)n * sizeof(float));
        cr_assert_eq(trit_dequantize_tensor(b->type, b->data, y, b->ne[0], b->ne[1]), 0);
        cr_assert_eq(memcmp(y, a->data, (size_t)n * sizeof(float)), 0,
                     "%s does not hold the ternary weights exactly", trit_type_get(ts[k])->name);
        free(y);
        gguf_close(fq);
        free(pq);
    }
    gguf_close(ff);
    free(pf);
}

Test(mkmodel, activation_key_and_default_vocab) {
    need_default_vocab();
    char out[256];
    snprintf(out, sizeof out, "%s/act.gguf", dir);
    trit_mkmodel_params p = {.arch = TRIT_ARCH_BITNET,
                             .preset = "tiny",
                             .type = TRIT_TQ2_0,
                             .act_set = true,
                             .act = TRIT_ACT_RELU2,
                             .seed = 1,
                             .out_path = out};
    gguf_file *f = make_open(&p);
    check_kv_str(f, "bitnet.ffn_activation", "relu2");
    check_kv_str(f, "tokenizer.ggml.pre", "llama-bpe");
    check_u32(f, "bitnet.vocab_size", 128256);
    check_u32(f, "general.file_type", 37);
    need(f, "token_embd.weight", TRIT_F16, 256, 128256);
    need(f, "blk.0.ffn_up.weight", TRIT_TQ2_0, 256, 512);
    gguf_close(f);
}

Test(mkmodel, bad_parameters) {
    trit_err err = {0};
    char out[256];
    snprintf(out, sizeof out, "%s/bad.gguf", dir);
    trit_mkmodel_params p = {
        .arch = TRIT_ARCH_LLAMA, .preset = "huge", .type = TRIT_F32, .out_path = out};
    cr_assert_eq(trit_mkmodel(&p, &err), -1);
    cr_assert(strstr(err.msg, "preset"), "%s", err.msg);
    p.preset = "tiny";
    p.type = 16; /* iq2_xxs: known to ggml, not computed by trit */
    cr_assert_eq(trit_mkmodel(&p, &err), -1);
    cr_assert_eq(err.code, TRIT_EUNSUP);
    p.type = TRIT_I2_S; /* ternary-only format on a llama model */
    cr_assert_eq(trit_mkmodel(&p, &err), -1);
    cr_assert(strstr(err.msg, "bitnet"), "%s", err.msg);
    p.type = TRIT_F32;
    p.vocab_path = "/nonexistent/vocab.gguf";
    cr_assert_eq(trit_mkmodel(&p, &err), -1);
    cr_assert(strstr(err.msg, "vocab"), "%s", err.msg);
    cr_assert_neq(access(out, F_OK), 0, "nothing written on failure");
}

Test(mkmodel, presets_and_ftypes) {
    const trit_mkmodel_preset *b = trit_mkmodel_preset_get("bitnet-2b-4t");
    cr_assert_not_null(b);
    cr_assert_eq(b->n_embd, 2560);
    cr_assert_eq(b->n_layer, 30);
    cr_assert_eq(b->n_head, 20);
    cr_assert_eq(b->n_head_kv, 5);
    cr_assert_eq(b->n_ff, 6912);
    cr_assert_eq(b->rope_freq_base, 500000.0f);
    cr_assert_eq(b->n_ctx, 4096);
    cr_assert_eq(trit_mkmodel_preset_get("small")->n_embd, 768);
    cr_assert_null(trit_mkmodel_preset_get("medium"));
    cr_assert_eq(trit_llama_ftype(TRIT_TQ1_0), 36);
    cr_assert_eq(trit_llama_ftype(TRIT_TQ2_0), 37);
    cr_assert_eq(trit_llama_ftype(TRIT_Q8_0), 7);
    cr_assert_eq(trit_llama_ftype(TRIT_BF16), 32);
    cr_assert_eq(trit_llama_ftype(TRIT_I2_S), 40);
    cr_assert_eq(trit_llama_ftype(TRIT_Q8_K), -1);
}

/* --layout bitnet-b1.58-2b-4t: the published file's 24 KVs in order with their types, and its
 * tensor names, types and order (block 0 shown; tiny has 2 blocks). */
Test(mkmodel, layout_bitnet_b158_2b4t) {
    need_default_vocab();
    char out[256];
    snprintf(out, sizeof out, "%s/b158.gguf", dir);
    trit_mkmodel_params p = {.arch = TRIT_ARCH_BITNET_B158,
                             .preset = "tiny",
                             .type = TRIT_I2_S,
                             .layout = "bitnet-b1.58-2b-4t",
                             .seed = 1,
                             .out_path = out};
    gguf_file *f = make_open(&p);
    static const struct {
        const char *key;
        uint32_t type;
    } kvs[] = {
        {"general.architecture", GGUF_T_STRING},
        {"general.name", GGUF_T_STRING},
        {"bitnet-b1.58.vocab_size", GGUF_T_U32},
        {"bitnet-b1.58.context_length", GGUF_T_U32},
        {"bitnet-b1.58.embedding_length", GGUF_T_U32},
        {"bitnet-b1.58.block_count", GGUF_T_U32},
        {"bitnet-b1.58.feed_forward_length", GGUF_T_U32},
        {"bitnet-b1.58.rope.dimension_count", GGUF_T_U32},
        {"bitnet-b1.58.attention.head_count", GGUF_T_U32},
        {"bitnet-b1.58.attention.head_count_kv", GGUF_T_U32},
        {"tokenizer.ggml.add_bos_token", GGUF_T_BOOL},
        {"bitnet-b1.58.attention.layer_norm_rms_epsilon", GGUF_T_F32},
        {"bitnet-b1.58.rope.freq_base", GGUF_T_F32},
        {"general.file_type", GGUF_T_U32},
        {"tokenizer.ggml.model", GGUF_T_STRING},
        {"tokenizer.ggml.tokens", GGUF_T_ARRAY},
        {"tokenizer.ggml.scores", GGUF_T_ARRAY},
        {"tokenizer.ggml.token_type", GGUF_T_ARRAY},
        {"tokenizer.ggml.merges", GGUF_T_ARRAY},
        {"tokenizer.ggml.bos_token_id", GGUF_T_U32},
        {"tokenizer.ggml.eos_token_id", GGUF_T_U32},
        {"tokenizer.ggml.padding_token_id", GGUF_T_U32},
        {"tokenizer.chat_template", GGUF_T_STRING},
        {"general.quantization_version", GGUF_T_U32},
    };
    cr_assert_eq(gguf_n_kv(f), TRIT_ARRAY_LEN(kvs));
    for (size_t i = 0; i < TRIT_ARRAY_LEN(kvs); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        cr_assert(kv->key.n == strlen(kvs[i].key) && !memcmp(kv->key.p, kvs[i].key, kv->key.n),
                  "kv %zu is %.*s, want %s", i, (int)kv->key.n, kv->key.p, kvs[i].key);
        cr_assert_eq(kv->type, kvs[i].type, "kv %s type", kvs[i].key);
    }
    check_kv_str(f, "general.architecture", "bitnet-b1.58");
    check_kv_str(f, "tokenizer.ggml.model", "gpt2");
    check_u32(f, "general.file_type", 40);
    check_u32(f, "tokenizer.ggml.padding_token_id", 128001);
    cr_assert_null(gguf_find(f, "tokenizer.ggml.pre"), "the published file has none");
    cr_assert_eq(gguf_find(f, "tokenizer.ggml.scores")->arr_type, GGUF_T_F32);
    cr_assert_eq(gguf_find(f, "tokenizer.ggml.token_type")->arr_type, GGUF_T_I32);
    cr_assert_eq(gguf_alignment(f), 32);
    static const char *const order[] = {
        "token_embd.weight",         "blk.0.attn_norm.weight",     "blk.0.ffn_down.weight",
        "blk.0.ffn_sub_norm.weight", "blk.0.ffn_gate.weight",      "blk.0.ffn_up.weight",
        "blk.0.ffn_norm.weight",     "blk.0.attn_sub_norm.weight", "blk.0.attn_k.weight",
        "blk.0.attn_output.weight",  "blk.0.attn_q.weight",        "blk.0.attn_v.weight"};
    cr_assert_eq(gguf_n_tensors(f), 2 + 11 * 2);
    for (size_t i = 0; i < TRIT_ARRAY_LEN(order); i++)
        cr_assert_str_eq(gguf_tensor_at(f, i)->cname, order[i]);
    cr_assert_str_eq(gguf_tensor_at(f, gguf_n_tensors(f) - 1)->cname, "output_norm.weight");
    cr_assert_null(gguf_find_tensor(f, "output.weight"), "tied: no output.weight");
    need(f, "token_embd.weight", TRIT_F16, 256, 128256);
    need(f, "blk.1.ffn_down.weight", TRIT_I2_S, 512, 256);
    need(f, "blk.1.ffn_sub_norm.weight", TRIT_F32, 512, 1);
    cr_assert_eq(gguf_find_tensor(f, "blk.1.ffn_down.weight")->nbytes, 512 * 256 / 4 + 32);
    gguf_close(f);

    /* the layout is bitnet-b1.58 only; scale tensors belong to upstream's archs */
    trit_err err = {0};
    p.arch = TRIT_ARCH_BITNET;
    cr_assert_eq(trit_mkmodel(&p, &err), -1);
    cr_assert(strstr(err.msg, "bitnet-b1.58"), "%s", err.msg);
    p.arch = TRIT_ARCH_BITNET_B158;
    p.scale_tensors = true;
    cr_assert_eq(trit_mkmodel(&p, &err), -1);
    cr_assert(strstr(err.msg, "scale"), "%s", err.msg);
    p.scale_tensors = false;
    p.layout = "bitnet-3b";
    cr_assert_eq(trit_mkmodel(&p, &err), -1);
    cr_assert(strstr(err.msg, "layout"), "%s", err.msg);
}

/* --scale-tensors: an f32 {1} "<weight>.scale" after each block weight, positive. */
Test(mkmodel, scale_tensors) {
    const char *v = spm_vocab();
    char out[256];
    snprintf(out, sizeof out, "%s/s.gguf", dir);
    trit_mkmodel_params p = {.arch = TRIT_ARCH_BITNET,
                             .preset = "tiny",
                             .type = TRIT_TQ2_0,
                             .scale_tensors = true,
                             .seed = 1,
                             .vocab_path = v,
                             .out_path = out};
    gguf_file *f = make_open(&p);
    cr_assert_eq(gguf_n_tensors(f), 2 + 2 * (11 + 7));
    const gguf_tensor *q = gguf_find_tensor(f, "blk.0.attn_q.weight");
    const gguf_tensor *s = gguf_find_tensor(f, "blk.0.attn_q.scale");
    cr_assert_not_null(s);
    cr_assert_eq(s - q, 1, "right after its weight");
    cr_assert_eq(s->type, TRIT_F32);
    cr_assert_eq(s->ne[0], 1);
    float x;
    memcpy(&x, s->data, 4);
    cr_assert(x > 0.1f && x < 2.0f && x != 1.0f, "scale %g", x);
    gguf_close(f);
}
