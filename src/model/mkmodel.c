/* mkmodel.c — synthetic llama / bitnet GGUF models (see mkmodel.h for the file layout).
 *
 * Scales (n = n_embd, f = n_ff, L = n_layer), chosen so greedy decoding is meaningful:
 *   token_embd, output: N(0, 1). output_norm: g = T / sqrt(n) with T = 10, so logits have a
 *   standard deviation of about T and the top token usually stands clear of the rest.
 *   Every sublayer writes about alpha = sqrt(n) / (2 sqrt(2L)) into the residual, so after all
 *   layers the context part of the residual has rms ~ sqrt(n)/2. With tied embeddings
 *   (bitnet) the token's own embedding then contributes only ~2 logit std to repeating
 *   itself, so the next token depends on the context rather than always echoing the input.
 *   attn_q/attn_k: 2/sqrt(n) (attention neither uniform nor one-hot), attn_v, ffn_gate,
 *   ffn_up: 1/sqrt(n); attn_output: alpha/sqrt(n); ffn_down: alpha/sqrt(f) (bitnet, after
 *   ffn_sub_norm) or alpha/(0.6 sqrt(f)) (llama: silu(g)*u has rms ~0.6).
 *   Norm weights: 1 + 0.1 N(0,1) (so they matter to parity checks).
 *   Bitnet ternarisation keeps ~0.66 of a Gaussian's std; block weights are drawn 1.5x wider.
 * Random numbers: splitmix64; "normal" = Irwin-Hall sum of four 16-bit uniforms, rescaled to
 * unit variance (bounded at 3.46 sigma, fast, and exactly reproducible without libm). */
#include "model/mkmodel.h"
#include "reference/reference.h"

#include "gguf/gguf.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const trit_mkmodel_preset presets[] = {
    {"tiny", 256, 2, 4, 2, 512, 2048, 10000.0f, 1e-5f},
    {"small", 768, 6, 12, 4, 2048, 2048, 10000.0f, 1e-5f},
    {"bitnet-2b-4t", 2560, 30, 20, 5, 6912, 4096, 500000.0f, 1e-5f},
};

const trit_mkmodel_preset *trit_mkmodel_preset_get(const char *name) {
    for (size_t i = 0; name && i < TRIT_ARRAY_LEN(presets); i++)
        if (!strcmp(presets[i].name, name)) return &presets[i];
    return NULL;
}

int trit_llama_ftype(uint32_t type) {
    switch (type) {
    case TRIT_F32:
        return 0;
    case TRIT_F16:
        return 1;
    case TRIT_Q8_0:
        return 7;
    case TRIT_BF16:
        return 32;
    case TRIT_TQ1_0:
        return 36;
    case TRIT_TQ2_0:
        return 37;
    case TRIT_I2_S:
        return 40; /* bitnet.cpp's LLAMA_FTYPE_MOSTLY_I2_S */
    }
    return -1;
}

/* ---- random numbers ---- */
typedef struct {
    uint64_t s;
} rng;

static uint64_t rng_u64(rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_normal(rng *r) {
    uint64_t u = rng_u64(r);
    uint32_t s = (uint32_t)(u & 0xffff) + (uint32_t)((u >> 16) & 0xffff) +
                 (uint32_t)((u >> 32) & 0xffff) + (uint32_t)(u >> 48);
    /* sum of 4 U(0,1): mean 2, variance 1/3 */
    return ((float)s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

static rng rng_for(uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the tensor name */
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    rng r = {seed * 0x9e3779b97f4a7c15ull ^ h};
    rng_u64(&r);
    return r;
}

/* ---- tensor plan ---- */
enum kind { K_NORM, K_DENSE, K_ROWS };

typedef struct {
    char name[64];
    uint32_t type;
    int64_t ne0, ne1; /* ne1 = 1 for 1-D */
    int n_dims;
    enum kind kind;
    float std, base; /* K_NORM: base * (1 + std N); others: std N */
    bool ternary;
} tspec;

typedef struct {
    const trit_mkmodel_params *p;
    tspec *t;
    size_t n;
} plan;

static void add(plan *pl, size_t cap, const char *name, uint32_t type, int n_dims, int64_t ne0,
                int64_t ne1, enum kind k, float std, float base, bool ternary) {
    if (pl->n >= cap) abort();
    tspec *t = &pl->t[pl->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->kind = k;
    t->std = std;
    t->base = base;
    t->ternary = ternary;
}

static void fill_normal(rng *r, float *x, int64_t n, float std) {
    for (int64_t i = 0; i < n; i++) x[i] = rng_normal(r) * std;
}

static int fill_tensor(void *ctx, size_t index, void *dst, size_t nbytes, trit_err *err) {
    plan *pl = ctx;
    const tspec *t = &pl->t[index];
    rng r = rng_for(pl->p->seed, t->name);
    if (t->kind == K_ROWS) { /* huge embedding-like tensors: one row at a time */
        float *row = xmalloc((size_t)t->ne0 * sizeof(float));
        size_t rs = trit_row_size(t->type, t->ne0);
        for (int64_t i = 0; i < t->ne1; i++) {
            fill_normal(&r, row, t->ne0, t->std);
            if (trit_quantize_row(t->type, row, (uint8_t *)dst + (size_t)i * rs, t->ne0)) {
                free(row);
                return trit_fail(err, TRIT_EUNSUP, "cannot convert %s to %s", t->name,
                                 trit_type_get(t->type)->name);
            }
        }
        free(row);
        return 0;
    }
    int64_t n = t->ne0 * t->ne1;
    float *x = xmalloc((size_t)n * sizeof(float));
    if (t->kind == K_NORM) {
        for (int64_t i = 0; i < n; i++) x[i] = t->base * (1.0f + t->std * rng_normal(&r));
    } else {
        fill_normal(&r, x, n, t->std);
        if (t->ternary) trit_ternarize_absmean(x, x, (size_t)n);
    }
    int rc = trit_quantize_tensor(t->type, x, dst, t->ne0, t->ne1);
    free(x);
    if (rc || trit_tensor_nbytes(t->type, t->ne0, t->ne1) != nbytes)
        return trit_fail(err, TRIT_EUNSUP, "cannot convert %s to %s", t->name,
                         trit_type_get(t->type)->name);
    return 0;
}

/* Any weight type trit quantizes (the activation-only Q8_K/Q8_1 excepted); a shape that is
 * not whole blocks of the type fails later with the tensor named. */
static bool type_ok(uint32_t t) {
    const trit_type_info *ti = trit_type_get(t);
    return ti && ti->supported && t != TRIT_Q8_K && t != TRIT_Q8_1;
}

#define LAYOUT_2B4T "bitnet-b1.58-2b-4t"

bool trit_mkmodel_layout_known(const char *name) {
    return name && !strcmp(name, LAYOUT_2B4T);
}

/* The tensors of one model, everything a layout's order needs to pick from. */
typedef struct {
    int n, f, L, n_kv;
    uint32_t wt, emb_type;
    bool bitnet, scales;
    float rn, tern, alpha, down, g;
} shapes;

/* Block l's tensor `suffix` (attn_norm ... ffn_sub_norm) with its generation rule, and its
 * ".scale" twin right after a block weight when the model has scale tensors. */
static void add_block_tensor(plan *pl, size_t cap, const shapes *S, int l, const char *suffix) {
    char b[64];
    snprintf(b, sizeof b, "blk.%d.%s.weight", l, suffix);
    const int n = S->n, f = S->f;
    const float rn = S->rn, tern = S->tern;
    const bool bn = S->bitnet;
    if (!strcmp(suffix, "attn_norm") || !strcmp(suffix, "ffn_norm") ||
        !strcmp(suffix, "attn_sub_norm")) {
        add(pl, cap, b, TRIT_F32, 1, n, 1, K_NORM, 0.1f, 1.0f, false);
        return;
    }
    if (!strcmp(suffix, "ffn_sub_norm")) {
        add(pl, cap, b, TRIT_F32, 1, f, 1, K_NORM, 0.1f, 1.0f, false);
        return;
    }
    if (!strcmp(suffix, "attn_q"))
        add(pl, cap, b, S->wt, 2, n, n, K_DENSE, 2 * rn * tern, 0, bn);
    else if (!strcmp(suffix, "attn_k"))
        add(pl, cap, b, S->wt, 2, n, S->n_kv, K_DENSE, 2 * rn * tern, 0, bn);
    else if (!strcmp(suffix, "attn_v"))
        add(pl, cap, b, S->wt, 2, n, S->n_kv, K_DENSE, rn * tern, 0, bn);
    else if (!strcmp(suffix, "attn_output"))
        add(pl, cap, b, S->wt, 2, n, n, K_DENSE, S->alpha * rn * tern, 0, bn);
    else if (!strcmp(suffix, "ffn_gate") || !strcmp(suffix, "ffn_up"))
        add(pl, cap, b, S->wt, 2, n, f, K_DENSE, rn * tern, 0, bn);
    else /* ffn_down */
        add(pl, cap, b, S->wt, 2, f, n, K_DENSE, S->down * tern, 0, bn);
    if (S->scales) {
        /* a positive factor near 1 (base 1, spread 0.25), not a power of two so the
         * product rounds and a misplaced multiply shows in a bit-exact comparison */
        snprintf(b, sizeof b, "blk.%d.%s.scale", l, suffix);
        add(pl, cap, b, TRIT_F32, 1, 1, 1, K_NORM, 0.25f, 1.0f, false);
    }
}

/* llama.cpp's converter order (convert_hf_to_gguf.py through gguf-py's tensor map). */
static void plan_converter(plan *pl, size_t cap, const shapes *S, int64_t n_vocab) {
    static const char *const llama_order[] = {"attn_norm", "attn_q",      "attn_k",
                                              "attn_v",    "attn_output", "ffn_norm",
                                              "ffn_gate",  "ffn_up",      "ffn_down"};
    static const char *const bitnet_order[] = {
        "attn_norm", "attn_q",   "attn_k", "attn_v",   "attn_output", "attn_sub_norm",
        "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down", "ffn_sub_norm"};
    add(pl, cap, "token_embd.weight", S->emb_type, 2, S->n, n_vocab, K_ROWS, 1.0f, 0, false);
    for (int l = 0; l < S->L; l++) {
        const size_t k = S->bitnet ? TRIT_ARRAY_LEN(bitnet_order) : TRIT_ARRAY_LEN(llama_order);
        for (size_t j = 0; j < k; j++)
            add_block_tensor(pl, cap, S, l, S->bitnet ? bitnet_order[j] : llama_order[j]);
    }
    add(pl, cap, "output_norm.weight", TRIT_F32, 1, S->n, 1, K_NORM, 0.1f, S->g, false);
    if (!S->bitnet)
        add(pl, cap, "output.weight", S->emb_type, 2, S->n, n_vocab, K_ROWS, 1.0f, 0, false);
}

/* bitnet.cpp's published 2B-4T order: the checkpoint's names sorted as strings
 * (model.embed_tokens, model.layers.<i>.{input_layernorm, mlp.down_proj, mlp.ffn_sub_norm,
 * mlp.gate_proj, mlp.up_proj, post_attention_layernorm, self_attn.attn_sub_norm,
 * self_attn.k_proj, o_proj, q_proj, v_proj}, model.norm), mapped to GGUF names. */
static int cmp_block_str(const void *a, const void *b) {
    char x[16], y[16];
    snprintf(x, sizeof x, "%d", *(const int *)a);
    snprintf(y, sizeof y, "%d", *(const int *)b);
    return strcmp(x, y);
}

static void plan_2b4t(plan *pl, size_t cap, const shapes *S, int64_t n_vocab) {
    static const char *const order[] = {"attn_norm",   "ffn_down", "ffn_sub_norm",  "ffn_gate",
                                        "ffn_up",      "ffn_norm", "attn_sub_norm", "attn_k",
                                        "attn_output", "attn_q",   "attn_v"};
    add(pl, cap, "token_embd.weight", S->emb_type, 2, S->n, n_vocab, K_ROWS, 1.0f, 0, false);
    int *blocks = xmalloc((size_t)S->L * sizeof(int));
    for (int l = 0; l < S->L; l++) blocks[l] = l;
    qsort(blocks, (size_t)S->L, sizeof(int), cmp_block_str);
    for (int i = 0; i < S->L; i++)
        for (size_t j = 0; j < TRIT_ARRAY_LEN(order); j++)
            add_block_tensor(pl, cap, S, blocks[i], order[j]);
    free(blocks);
    add(pl, cap, "output_norm.weight", TRIT_F32, 1, S->n, 1, K_NORM, 0.1f, S->g, false);
}

/* Copy the vocab GGUF's KV `key` when present (the tokenizer keys both layouts carry). */
static void copy_kv(gguf_writer *w, const gguf_file *vf, const char *key) {
    const gguf_kv *kv = gguf_find(vf, key);
    if (kv) gguf_w_copy_kv(w, kv);
}

/* The eight shape keys both layouts write first, in this order. */
static void kvs_dims(gguf_writer *w, const trit_mkmodel_preset *ps, const char *arch,
                     int64_t n_vocab) {
    char key[128];
    const int hd = ps->n_embd / ps->n_head;
#define AKEY(s) (snprintf(key, sizeof key, "%s." s, arch), key)
    gguf_w_u32(w, AKEY("vocab_size"), (uint32_t)n_vocab);
    gguf_w_u32(w, AKEY("context_length"), (uint32_t)ps->n_ctx);
    gguf_w_u32(w, AKEY("embedding_length"), (uint32_t)ps->n_embd);
    gguf_w_u32(w, AKEY("block_count"), (uint32_t)ps->n_layer);
    gguf_w_u32(w, AKEY("feed_forward_length"), (uint32_t)ps->n_ff);
    gguf_w_u32(w, AKEY("rope.dimension_count"), (uint32_t)hd);
    gguf_w_u32(w, AKEY("attention.head_count"), (uint32_t)ps->n_head);
    gguf_w_u32(w, AKEY("attention.head_count_kv"), (uint32_t)ps->n_head_kv);
#undef AKEY
}

/* KVs as llama.cpp's converter writes them (see mkmodel.h). */
static void kvs_converter(gguf_writer *w, const trit_mkmodel_params *p,
                          const trit_mkmodel_preset *ps, const char *arch, int64_t n_vocab,
                          const gguf_file *vf) {
    char key[128], name[160];
#define AKEY(s) (snprintf(key, sizeof key, "%s." s, arch), key)
    gguf_w_str(w, "general.architecture", arch);
    gguf_w_str(w, "general.type", "model");
    snprintf(name, sizeof name, "trit synthetic %s %s %s seed %llu", arch, ps->name,
             trit_type_get(p->type)->name, (unsigned long long)p->seed);
    gguf_w_str(w, "general.name", name);
    kvs_dims(w, ps, arch, n_vocab);
    gguf_w_f32(w, AKEY("rope.freq_base"), ps->rope_freq_base);
    gguf_w_f32(w, AKEY("attention.layer_norm_rms_epsilon"), ps->rms_eps);
    if (trit_arch_is_bitnet(p->arch)) {
        gguf_w_str(w, AKEY("rope.scaling.type"), "linear");
        gguf_w_f32(w, AKEY("rope.scaling.factor"), 1.0f);
    }
    if (p->act_set) gguf_w_str(w, AKEY("ffn_activation"), trit_act_name(p->act));
    gguf_w_u32(w, "general.file_type", (uint32_t)trit_llama_ftype(p->type));
    gguf_w_u32(w, "general.quantization_version", 2);
    for (size_t i = 0; i < gguf_n_kv(vf); i++) {
        const gguf_kv *kv = gguf_kv_at(vf, i);
        if (kv->key.n > 10 && !memcmp(kv->key.p, "tokenizer.", 10)) gguf_w_copy_kv(w, kv);
    }
#undef AKEY
}

/* A chat template of the published file's shape ("Role: content<|eot_id|>" turns, the form
 * bitnet.cpp prompts 2B-4T with); the published text itself is not reproduced. */
static const char chat_2b4t[] =
    "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}";

/* KVs of bitnet.cpp's published 2B-4T file, in its order and types (see mkmodel.h). */
static void kvs_2b4t(gguf_writer *w, const trit_mkmodel_params *p, const trit_mkmodel_preset *ps,
                     const char *arch, int64_t n_vocab, const gguf_file *vf) {
    char key[128], name[160];
#define AKEY(s) (snprintf(key, sizeof key, "%s." s, arch), key)
    gguf_w_str(w, "general.architecture", arch);
    snprintf(name, sizeof name, "bitnet2b (trit synthetic %s %s seed %llu)", ps->name,
             trit_type_get(p->type)->name, (unsigned long long)p->seed);
    gguf_w_str(w, "general.name", name);
    kvs_dims(w, ps, arch, n_vocab);
    gguf_w_bool(w, "tokenizer.ggml.add_bos_token", true);
    gguf_w_f32(w, AKEY("attention.layer_norm_rms_epsilon"), ps->rms_eps);
    gguf_w_f32(w, AKEY("rope.freq_base"), ps->rope_freq_base);
    if (p->act_set) gguf_w_str(w, AKEY("ffn_activation"), trit_act_name(p->act));
    gguf_w_u32(w, "general.file_type", (uint32_t)trit_llama_ftype(p->type));
    gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    copy_kv(w, vf, "tokenizer.ggml.tokens");
    float *scores = xcalloc((size_t)n_vocab, sizeof(float));
    gguf_w_arr_f32(w, "tokenizer.ggml.scores", scores, (size_t)n_vocab);
    free(scores);
    copy_kv(w, vf, "tokenizer.ggml.token_type");
    copy_kv(w, vf, "tokenizer.ggml.merges");
    uint32_t bos = 128000, eos = 128001;
    gguf_get_u32(vf, "tokenizer.ggml.bos_token_id", &bos);
    gguf_get_u32(vf, "tokenizer.ggml.eos_token_id", &eos);
    gguf_w_u32(w, "tokenizer.ggml.bos_token_id", bos);
    gguf_w_u32(w, "tokenizer.ggml.eos_token_id", eos);
    gguf_w_u32(w, "tokenizer.ggml.padding_token_id", eos);
    gguf_w_str(w, "tokenizer.chat_template", chat_2b4t);
    gguf_w_u32(w, "general.quantization_version", 2);
#undef AKEY
}

/* Refuses parameters mkmodel cannot honour (unknown preset, type, arch or layout, and
 * combinations of them no reader would accept) before anything is opened or written;
 * on success *ps_out is the preset. */
static int check_params(const trit_mkmodel_params *p, const trit_mkmodel_preset **ps_out,
                        trit_err *err) {
    const trit_mkmodel_preset *ps = trit_mkmodel_preset_get(p->preset);
    if (!ps)
        return trit_fail(err, TRIT_EINVAL,
                         "unknown preset '%s' (expected tiny, small or bitnet-2b-4t)",
                         p->preset ? p->preset : "(null)");
    if (!type_ok(p->type))
        return trit_fail(err, TRIT_EUNSUP,
                         "mkmodel cannot write type %u (expected a type trit computes with: "
                         "f32, f16, bf16, q8_0, q4_0 ... q5_1, q2_K ... q6_K, tq1_0, tq2_0, i2_s)",
                         p->type);
    if (p->arch != TRIT_ARCH_LLAMA && p->arch != TRIT_ARCH_BITNET &&
        p->arch != TRIT_ARCH_BITNET_B158 && p->arch != TRIT_ARCH_BITNET_25)
        return trit_fail(err, TRIT_EINVAL, "unknown architecture %d", (int)p->arch);
    if (p->type == TRIT_I2_S && !trit_arch_is_bitnet(p->arch))
        return trit_fail(err, TRIT_EINVAL,
                         "i2_s stores ternary weights only: use it with a bitnet arch");
    if (p->layout && !trit_mkmodel_layout_known(p->layout))
        return trit_fail(err, TRIT_EINVAL, "unknown layout '%s' (expected " LAYOUT_2B4T ")",
                         p->layout);
    if (p->layout && p->arch != TRIT_ARCH_BITNET_B158)
        return trit_fail(err, TRIT_EINVAL, "layout " LAYOUT_2B4T " is arch bitnet-b1.58, not %s",
                         trit_arch_name(p->arch));
    if (p->scale_tensors && !(p->arch == TRIT_ARCH_BITNET || p->arch == TRIT_ARCH_LLAMA))
        return trit_fail(err, TRIT_EINVAL,
                         "scale tensors belong to upstream llama.cpp's archs (bitnet, llama); "
                         "bitnet.cpp's %s has none",
                         trit_arch_name(p->arch));
    if (p->embd_type && !trit_type_get(p->embd_type))
        return trit_fail(err, TRIT_EINVAL, "unknown embedding type %u", p->embd_type);
    if (!p->out_path) return trit_fail(err, TRIT_EINVAL, "no output path");
    *ps_out = ps;
    return 0;
}

/* Opens the vocabulary the tokenizer is copied from (p->vocab_path, else the reference's
 * Llama-3 vocabulary) and checks that it has a token list; returns NULL on failure. */
static gguf_file *open_vocab(const trit_mkmodel_params *p, int64_t *n_vocab, trit_err *err) {
    char *vocab_default = NULL;
    const char *vocab = p->vocab_path;
    if (!vocab) {
        size_t len = strlen(trit_ref_dir()) + 64;
        vocab_default = xmalloc(len);
        snprintf(vocab_default, len, "%s/src/models/ggml-vocab-llama-bpe.gguf", trit_ref_dir());
        vocab = vocab_default;
    }
    gguf_file *vf = gguf_open(vocab, err);
    if (!vf) {
        trit_err_prefix(err, "vocabulary");
        free(vocab_default);
        return NULL;
    }
    const gguf_kv *tokens = gguf_find(vf, "tokenizer.ggml.tokens");
    if (!tokens || tokens->type != GGUF_T_ARRAY || tokens->arr_type != GGUF_T_STRING ||
        tokens->arr_n == 0) {
        trit_fail(err, TRIT_EFORMAT, "vocabulary %s has no tokenizer.ggml.tokens string array",
                  vocab);
        gguf_close(vf);
        free(vocab_default);
        return NULL;
    }
    *n_vocab = (int64_t)tokens->arr_n;
    free(vocab_default);
    return vf;
}

/* The sizes, types and generation scales the plan is built from: the embedding type
 * follows the block type unless given, and the scales keep activations of order one. */
static shapes make_shapes(const trit_mkmodel_params *p, const trit_mkmodel_preset *ps) {
    const bool bitnet = trit_arch_is_bitnet(p->arch);
    const int n = ps->n_embd, f = ps->n_ff, L = ps->n_layer;
    shapes S = {.n = n, .f = f, .L = L, .n_kv = n / ps->n_head * ps->n_head_kv, .wt = p->type};
    S.bitnet = bitnet;
    S.scales = p->scale_tensors;
    S.emb_type = p->embd_type           ? p->embd_type
                 : p->type == TRIT_F32  ? TRIT_F32
                 : p->type == TRIT_BF16 ? TRIT_BF16
                                        : TRIT_F16;
    const float T = 10.0f;
    S.g = T / sqrtf((float)n);
    S.alpha = sqrtf((float)n) / (2.0f * sqrtf(2.0f * (float)L));
    S.tern = bitnet ? 1.5f : 1.0f;
    S.rn = 1.0f / sqrtf((float)n);
    S.down = bitnet ? S.alpha / sqrtf((float)f) : S.alpha / (0.6f * sqrtf((float)f));
    return S;
}

/* Declares every planned tensor to the writer (data comes later from fill_tensor); a
 * shape whose rows are not whole blocks of its type is refused. */
static int declare_tensors(gguf_writer *w, const plan *pl, trit_err *err) {
    for (size_t i = 0; i < pl->n; i++) {
        const tspec *t = &pl->t[i];
        int64_t ne[2] = {t->ne0, t->ne1};
        size_t nb = trit_tensor_nbytes(t->type, t->ne0, t->ne1);
        if (nb == 0)
            return trit_fail(err, TRIT_EUNSUP, "%s: %lld columns do not fit type %s", t->name,
                             (long long)t->ne0, trit_type_get(t->type)->name);
        gguf_w_tensor(w, t->name, t->type, (uint32_t)t->n_dims, ne, NULL, nb);
    }
    return 0;
}

/* Writes the synthetic model: check the parameters, open the vocabulary, write the keys
 * (the 2B-4T layout's or the converter's), plan the tensors, then write the file. */
int trit_mkmodel(const trit_mkmodel_params *p, trit_err *err) {
    const trit_mkmodel_preset *ps = NULL;
    if (check_params(p, &ps, err)) return -1;
    int64_t n_vocab;
    gguf_file *vf = open_vocab(p, &n_vocab, err);
    if (!vf) return -1;
    const char *arch = trit_arch_name(p->arch);
    const bool l2b4t = p->layout != NULL;

    gguf_writer *w = gguf_writer_new();
    if (l2b4t)
        kvs_2b4t(w, p, ps, arch, n_vocab, vf);
    else
        kvs_converter(w, p, ps, arch, n_vocab, vf);

    /* the plan */
    const shapes S = make_shapes(p, ps);
    size_t cap = 3 + (size_t)ps->n_layer * 18;
    plan pl = {.p = p, .t = xcalloc(cap, sizeof(tspec))};
    if (l2b4t)
        plan_2b4t(&pl, cap, &S, n_vocab);
    else
        plan_converter(&pl, cap, &S, n_vocab);

    int rc = declare_tensors(w, &pl, err);
    if (!rc) rc = gguf_writer_write(w, p->out_path, fill_tensor, &pl, err);
    gguf_writer_free(w);
    gguf_close(vf);
    free(pl.t);
    return rc;
}
