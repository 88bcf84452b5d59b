/* model — hyper-parameters and weight binding for llama and bitnet-family GGUF files.
 *
 * Mirrors llama.cpp's loader (llama-model.cpp, models/llama.cpp, models/bitnet.cpp) and, for
 * bitnet-b1.58 / bitnet-25, bitnet.cpp's llama.cpp fork (LLM_ARCH_BITNET_B158, whose loader
 * reads the bitnet key set and whose build_bitnet_158 graph is upstream's bitnet graph with
 * LLM_FFN_RELU_SQR and without scale tensors): the same keys with the same defaults, the same
 * tensor names and shapes. Everything is checked here so the engine can trust the model: a
 * file that loads is a file the engine can run. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One row per general.architecture string trit runs. */
static const struct arch_row {
    const char *name;
    enum trit_arch arch;
    bool bitnet_graph;
    enum trit_act act;        /* activation when the file has no ffn_activation key */
    enum trit_act_source why; /* ... and why */
    /* whose loader: upstream llama.cpp's (optional "<name>.scale" tensors for every arch; no
     * output.weight for bitnet) or bitnet.cpp's fork's (no scale tensors; an optional
     * output.weight its graph never reads) */
    bool upstream;
} arch_rows[] = {
    {"llama", TRIT_ARCH_LLAMA, false, TRIT_ACT_SILU, TRIT_ACT_SRC_UPSTREAM, true},
    {"bitnet", TRIT_ARCH_BITNET, true, TRIT_ACT_SILU, TRIT_ACT_SRC_UPSTREAM, true},
    {"bitnet-b1.58", TRIT_ARCH_BITNET_B158, true, TRIT_ACT_RELU2, TRIT_ACT_SRC_ARCH, false},
    {"bitnet-25", TRIT_ARCH_BITNET_25, true, TRIT_ACT_RELU2, TRIT_ACT_SRC_ARCH, false},
};

static const struct arch_row *arch_row_of(enum trit_arch a) {
    for (size_t i = 0; i < TRIT_ARRAY_LEN(arch_rows); i++)
        if (arch_rows[i].arch == a) return &arch_rows[i];
    return &arch_rows[0];
}

static const struct arch_row *arch_row_named(const char *name) {
    for (size_t i = 0; name && i < TRIT_ARRAY_LEN(arch_rows); i++)
        if (!strcmp(arch_rows[i].name, name)) return &arch_rows[i];
    return NULL;
}

const char *trit_arch_name(enum trit_arch a) {
    return arch_row_of(a)->name;
}
int trit_arch_from_name(const char *name) {
    const struct arch_row *r = arch_row_named(name);
    return r ? (int)r->arch : -1;
}
bool trit_arch_is_bitnet(enum trit_arch a) {
    return arch_row_of(a)->bitnet_graph;
}
const char *trit_act_name(enum trit_act a) {
    return a == TRIT_ACT_RELU2 ? "relu2" : "silu";
}

/* "<arch>.<suffix>" */
static const char *akey(const char *arch, const char *suffix, char *buf, size_t n) {
    snprintf(buf, n, "%s.%s", arch, suffix);
    return buf;
}

static int get_u32_req(const gguf_file *f, const char *arch, const char *suffix, int *out,
                       trit_err *err) {
    char k[128];
    uint32_t v;
    akey(arch, suffix, k, sizeof k);
    if (!gguf_find(f, k)) return trit_fail(err, TRIT_EFORMAT, "missing key %s", k);
    if (gguf_get_u32(f, k, &v) != 0 || v > (1u << 30))
        return trit_fail(err, TRIT_EFORMAT, "key %s: expected an unsigned integer", k);
    *out = (int)v;
    return 0;
}

/* Optional u32 key: keeps *out when absent; error when present with a bad type. */
static int get_u32_opt(const gguf_file *f, const char *arch, const char *suffix, int *out,
                       trit_err *err) {
    char k[128];
    uint32_t v;
    akey(arch, suffix, k, sizeof k);
    const gguf_kv *kv = gguf_find(f, k);
    if (!kv) return 0;
    if (kv->type == GGUF_T_ARRAY) {
        /* per-layer arrays: accept when every entry is the same (llama.cpp allows varying ones
         * for other archs; these two archs never use them) */
        int64_t first = 0, x;
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            if (gguf_arr_i64(kv, i, &x) != 0)
                return trit_fail(err, TRIT_EFORMAT, "key %s: bad array element %llu", k,
                                 (unsigned long long)i);
            if (i == 0)
                first = x;
            else if (x != first)
                return trit_fail(err, TRIT_EUNSUP,
                                 "key %s: per-layer values differ (not supported)", k);
        }
        if (kv->arr_n == 0 || first < 0 || first > (1 << 30))
            return trit_fail(err, TRIT_EFORMAT, "key %s: bad array", k);
        *out = (int)first;
        return 0;
    }
    if (gguf_get_u32(f, k, &v) != 0 || v > (1u << 30))
        return trit_fail(err, TRIT_EFORMAT, "key %s: expected an unsigned integer", k);
    *out = (int)v;
    return 0;
}

static int get_f32_opt(const gguf_file *f, const char *arch, const char *suffix, float *out,
                       trit_err *err) {
    char k[128];
    akey(arch, suffix, k, sizeof k);
    if (!gguf_find(f, k)) return 0;
    if (gguf_get_f32(f, k, out) != 0)
        return trit_fail(err, TRIT_EFORMAT, "key %s: expected a float", k);
    return 0;
}

int trit_act_resolve(const gguf_file *f, const char *arch_name, enum trit_act *act,
                     enum trit_act_source *src, trit_err *err) {
    const struct arch_row *r = arch_row_named(arch_name);
    if (!r) return trit_fail(err, TRIT_EUNSUP, "unknown architecture \"%s\"", arch_name);
    *act = r->act;
    *src = r->why;
    /* the trit key overrides the arch's rule */
    char k[128];
    akey(arch_name, "ffn_activation", k, sizeof k);
    const gguf_kv *kv = gguf_find(f, k);
    if (!kv) return 0;
    char *v = gguf_get_str(f, k);
    if (!v) return trit_fail(err, TRIT_EFORMAT, "key %s: expected a string", k);
    int rc = 0;
    if (strcmp(v, "silu") == 0)
        *act = TRIT_ACT_SILU;
    else if (strcmp(v, "relu2") == 0)
        *act = TRIT_ACT_RELU2;
    else
        rc = trit_fail(err, TRIT_EUNSUP, "%s = \"%s\": expected \"silu\" or \"relu2\"", k, v);
    free(v);
    if (rc == 0) *src = TRIT_ACT_SRC_KEY;
    return rc;
}

void trit_act_explain(const char *arch_name, enum trit_act act, enum trit_act_source src, char *buf,
                      size_t n) {
    switch (src) {
    case TRIT_ACT_SRC_KEY:
        snprintf(buf, n, "key %s.ffn_activation = %s", arch_name, trit_act_name(act));
        return;
    case TRIT_ACT_SRC_ARCH:
        snprintf(buf, n, "arch %s defines %s", arch_name, trit_act_name(act));
        return;
    case TRIT_ACT_SRC_UPSTREAM:
        snprintf(buf, n, "upstream llama.cpp %s uses SiLU", arch_name);
        return;
    }
    snprintf(buf, n, "?");
}

/* The command that makes a file with a tensor trit cannot compute with runnable: the
 * reference's llama-quantize (it reads every ggml type; trit quantize reads only the types
 * trit computes with). Ternary archs go to TQ2_0 (lossless for ternary weights) with F16
 * embedding/output (TQ2_0's defaults would be Q6_K/Q4_K again), llama to Q8_0. */
static void convert_hint(const trit_model *m, char *buf, size_t n) {
    if (trit_arch_is_bitnet(m->hp.arch))
        snprintf(buf, n,
                 "llama-quantize --allow-requantize --token-embedding-type f16 "
                 "--output-tensor-type f16 %s OUT.gguf TQ2_0",
                 m->path);
    else
        snprintf(buf, n, "llama-quantize --allow-requantize %s OUT.gguf Q8_0", m->path);
}

static const char *type_name(uint32_t t) {
    const trit_type_info *ti = trit_type_get(t);
    return ti ? ti->name : "unknown";
}

/* Bind tensor `name` with exactly dims ne0 x ne1 (ne1 = 0: 1-D tensor of ne0). */
static int bind(trit_model *m, trit_weight *w, const char *name, int64_t ne0, int64_t ne1,
                bool required, bool matrix, trit_err *err) {
    const gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    memset(w, 0, sizeof *w);
    if (!t) {
        if (!required) return 0;
        return trit_fail(err, TRIT_EFORMAT, "missing tensor %s", name);
    }
    int64_t want1 = ne1 > 0 ? ne1 : 1;
    if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1)
        return trit_fail(err, TRIT_EFORMAT,
                         "tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                         name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                         (long long)t->ne[3], (long long)ne0, (long long)want1);
    const trit_type_info *ti = trit_type_get(t->type);
    if (!ti || !ti->supported) {
        /* name the tensor, the type and the way out */
        char hint[512];
        convert_hint(m, hint, sizeof hint);
        return trit_fail(err, TRIT_EUNSUP,
                         "tensor %s has type %s (id %u), which trit does not compute with; "
                         "convert it: %s",
                         name, type_name(t->type), t->type, hint);
    }
    if (!matrix && t->type != TRIT_F32)
        return trit_fail(err, TRIT_EUNSUP, "tensor %s: norm weights must be f32, not %s", name,
                         ti->name);
    if (matrix && t->type == TRIT_Q8_K)
        return trit_fail(err, TRIT_EUNSUP, "tensor %s: q8_k is not a weight type", name);
    if (ne0 % ti->blck != 0)
        return trit_fail(err, TRIT_EFORMAT,
                         "tensor %s: row length %lld is not a multiple of %s's block size %lld",
                         name, (long long)ne0, ti->name, (long long)ti->blck);
    size_t need = trit_tensor_nbytes(t->type, ne0, want1);
    if (need == 0 || t->nbytes < need)
        return trit_fail(err, TRIT_EFORMAT, "tensor %s: %zu bytes of data, need %zu", name,
                         t->nbytes, need);
    w->name = t->cname;
    w->type = t->type;
    memcpy(w->ne, t->ne, sizeof w->ne);
    w->data = t->data;
    w->nbytes = t->nbytes;
    w->scale = 1.0f;
    if (t->type == TRIT_I2_S) {
        /* bitnet.cpp: one fp32 scale right after the packed 2-bit codes */
        float s;
        memcpy(&s, (const uint8_t *)t->data + (size_t)(ne0 * want1 / 4), sizeof s);
        if (!isfinite(s))
            return trit_fail(err, TRIT_EFORMAT, "tensor %s: i2_s scale is not finite", name);
        w->scale = s;
    }
    if (matrix) {
        /* optional "<base>.scale" (bitnet graph's *_s tensors), shape {1} f32 */
        char sname[256];
        size_t n = strlen(name);
        if (n > 7 && strcmp(name + n - 7, ".weight") == 0 && n < sizeof sname) {
            snprintf(sname, sizeof sname, "%.*s.scale", (int)(n - 7), name);
            const gguf_tensor *st = gguf_find_tensor(m->gguf, sname);
            if (st && !arch_row_of(m->hp.arch)->upstream)
                /* bitnet.cpp's fork loads none for this arch: llama.cpp would refuse the
                 * file (wrong number of tensors), and ignoring it would change the answer */
                return trit_fail(err, TRIT_EUNSUP,
                                 "tensor %s: arch %s has no per-tensor scale tensors (bitnet.cpp "
                                 "loads none); declare the file as arch bitnet, whose graph "
                                 "applies them",
                                 sname, trit_arch_name(m->hp.arch));
            if (st) {
                if (st->type != TRIT_F32 || st->ne[0] != 1 || st->ne[1] != 1 || st->ne[2] != 1 ||
                    st->ne[3] != 1 || st->nbytes < 4)
                    return trit_fail(err, TRIT_EFORMAT, "tensor %s must be one f32 value", sname);
                float s;
                memcpy(&s, st->data, sizeof s);
                if (!isfinite(s))
                    return trit_fail(err, TRIT_EFORMAT, "tensor %s is not finite", sname);
                w->scale *= s;
            }
        }
    }
    return 0;
}

/* The model's sizes (embedding, layers, training context, FFN, heads), each required or
 * defaulted as llama.cpp does, and all positive. */
static int load_dims(trit_hparams *hp, const gguf_file *f, const char *arch, trit_err *err) {
    if (get_u32_req(f, arch, "embedding_length", &hp->n_embd, err) ||
        get_u32_req(f, arch, "block_count", &hp->n_layer, err) ||
        get_u32_req(f, arch, "context_length", &hp->n_ctx_train, err))
        return -1;
    hp->n_ff = 0;
    hp->n_head = 0;
    if (get_u32_opt(f, arch, "feed_forward_length", &hp->n_ff, err) ||
        get_u32_opt(f, arch, "attention.head_count", &hp->n_head, err))
        return -1;
    hp->n_head_kv = hp->n_head;
    if (get_u32_opt(f, arch, "attention.head_count_kv", &hp->n_head_kv, err)) return -1;
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->n_ff <= 0)
        return trit_fail(err, TRIT_EFORMAT,
                         "bad dims: n_embd %d, n_layer %d, n_head %d, n_head_kv %d, n_ff %d",
                         hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff);
    if (hp->n_layer > 4096)
        return trit_fail(err, TRIT_ERANGE, "block_count %d is too large", hp->n_layer);
    return 0;
}

/* The per-head dimensions (key, value, rotary), which this engine needs all equal, even
 * and consistent with the head counts. */
static int load_head_dims(trit_hparams *hp, const gguf_file *f, const char *arch, trit_err *err) {
    hp->head_dim = hp->n_embd / hp->n_head;
    int head_v = hp->head_dim;
    if (get_u32_opt(f, arch, "attention.key_length", &hp->head_dim, err) ||
        get_u32_opt(f, arch, "attention.value_length", &head_v, err))
        return -1;
    if (head_v != hp->head_dim)
        return trit_fail(err, TRIT_EUNSUP,
                         "head dims inconsistent: key_length %d != value_length %d", hp->head_dim,
                         head_v);
    if (hp->head_dim <= 0 || hp->head_dim > 1024 || hp->head_dim % 2 != 0)
        return trit_fail(err, TRIT_EFORMAT, "head dims inconsistent: head_dim %d", hp->head_dim);
    if (hp->n_head % hp->n_head_kv != 0)
        return trit_fail(err, TRIT_EFORMAT,
                         "head dims inconsistent: n_head %d is not a multiple of n_head_kv %d",
                         hp->n_head, hp->n_head_kv);
    if (trit_arch_is_bitnet(hp->arch) && hp->head_dim * hp->n_head != hp->n_embd)
        return trit_fail(err, TRIT_EFORMAT,
                         "head dims inconsistent: head_dim %d x n_head %d != n_embd %d",
                         hp->head_dim, hp->n_head, hp->n_embd);
    hp->n_rot = hp->head_dim;
    if (get_u32_opt(f, arch, "rope.dimension_count", &hp->n_rot, err)) return -1;
    if (hp->n_rot != hp->head_dim)
        return trit_fail(err, TRIT_EUNSUP,
                         "head dims inconsistent: rope.dimension_count %d != head_dim %d",
                         hp->n_rot, hp->head_dim);
    return 0;
}

/* The norm epsilon and the attention/RoPE settings; a file asking for scaling this engine
 * does not compute is refused rather than run with a different answer. */
static int load_norm_rope(trit_hparams *hp, const gguf_file *f, const char *arch, trit_err *err) {
    char k[128];
    if (!gguf_find(f, akey(arch, "attention.layer_norm_rms_epsilon", k, sizeof k)))
        return trit_fail(err, TRIT_EFORMAT, "missing key %s", k);
    if (gguf_get_f32(f, k, &hp->rms_eps) != 0 || !(hp->rms_eps >= 0))
        return trit_fail(err, TRIT_EFORMAT, "key %s: expected a non-negative float", k);
    hp->rope_freq_base = 10000.0f;
    if (get_f32_opt(f, arch, "rope.freq_base", &hp->rope_freq_base, err)) return -1;
    if (!(hp->rope_freq_base > 0))
        return trit_fail(err, TRIT_EFORMAT, "rope.freq_base must be positive");
    /* rope scaling: only "none"/"linear" with factor 1 is what this engine computes */
    char *st = gguf_get_str(f, akey(arch, "rope.scaling.type", k, sizeof k));
    if (st && strcmp(st, "none") != 0 && strcmp(st, "linear") != 0) {
        int rc = trit_fail(err, TRIT_EUNSUP, "rope scaling type \"%s\" is not supported", st);
        free(st);
        return rc;
    }
    free(st);
    float factor = 0.0f;
    if (get_f32_opt(f, arch, "rope.scaling.factor", &factor, err)) return -1;
    if (factor != 0.0f && factor != 1.0f)
        return trit_fail(err, TRIT_EUNSUP, "rope scaling factor %g is not supported", factor);
    float attn_scale = 0.0f;
    if (get_f32_opt(f, arch, "attention.scale", &attn_scale, err)) return -1;
    if (attn_scale != 0.0f && fabsf(attn_scale - 1.0f / sqrtf((float)hp->head_dim)) > 1e-7f)
        return trit_fail(err, TRIT_EUNSUP, "attention.scale %g is not supported", attn_scale);
    /* llama.cpp's llama_model_rope_type: NORM for llama, NEOX for bitnet (and the fork's
     * BITNET_B158 / BITNET_25) */
    hp->rope_mode = trit_arch_is_bitnet(hp->arch) ? TRIT_ROPE_NEOX : TRIT_ROPE_NORM;
    return 0;
}

/* n_vocab: <arch>.vocab_size, else the tokenizer list, else the embedding rows */
static int load_n_vocab(trit_hparams *hp, const gguf_file *f, const char *arch, trit_err *err) {
    hp->n_vocab = 0;
    if (get_u32_opt(f, arch, "vocab_size", &hp->n_vocab, err)) return -1;
    if (hp->n_vocab == 0) {
        const gguf_kv *tk = gguf_find(f, "tokenizer.ggml.tokens");
        if (tk && tk->type == GGUF_T_ARRAY) hp->n_vocab = (int)tk->arr_n;
    }
    if (hp->n_vocab == 0) {
        const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
        if (te && te->ne[1] > 0 && te->ne[1] < (1 << 30)) hp->n_vocab = (int)te->ne[1];
    }
    if (hp->n_vocab <= 0)
        return trit_fail(err, TRIT_EFORMAT, "cannot determine the vocabulary size");
    return 0;
}

/* Reads m's hyperparameters from its GGUF keys, in dependency order (head dims need the
 * sizes, the attention scale needs head_dim), checking each step. */
static int load_hparams(trit_model *m, const char *arch, trit_err *err) {
    trit_hparams *hp = &m->hp;
    const gguf_file *f = m->gguf;
    if (load_dims(hp, f, arch, err) || load_head_dims(hp, f, arch, err) ||
        load_norm_rope(hp, f, arch, err) || load_n_vocab(hp, f, arch, err))
        return -1;
    /* FFN activation: the arch's rule, or the key when present */
    if (trit_act_resolve(f, arch, &hp->act, &hp->act_source, err)) return -1;
    hp->act_from_file = hp->act_source == TRIT_ACT_SRC_KEY;
    return 0;
}

static int load_tensors(trit_model *m, trit_err *err) {
    const trit_hparams *hp = &m->hp;
    const int64_t n_embd = hp->n_embd, n_ff = hp->n_ff, n_vocab = hp->n_vocab;
    const int64_t n_q = (int64_t)hp->head_dim * hp->n_head;
    const int64_t n_kv = (int64_t)hp->head_dim * hp->n_head_kv;
    const bool bitnet = trit_arch_is_bitnet(hp->arch);
    char name[128];

    if (bind(m, &m->tok_embd, "token_embd.weight", n_embd, n_vocab, true, true, err) ||
        bind(m, &m->output_norm, "output_norm.weight", n_embd, 0, true, false, err))
        return -1;
    if (m->tok_embd.type == TRIT_I2_S) /* bitnet.cpp never writes one: say how to undo it */
        return trit_fail(err, TRIT_EUNSUP,
                         "token_embd.weight: i2_s embeddings are not supported (bitnet.cpp keeps "
                         "them f16); convert it: trit quantize %s OUT.gguf tq2_0 "
                         "--allow-requantize",
                         m->path);
    if (!bitnet) {
        if (bind(m, &m->output, "output.weight", n_embd, n_vocab, false, true, err)) return -1;
    } else if (gguf_find_tensor(m->gguf, "output.weight")) {
        /* upstream's bitnet loader has no output tensor (llama.cpp rejects the unused one);
         * bitnet.cpp's B158/25 loader reads an optional one that build_bitnet_158 then never
         * uses: accept it there, with the same token_embd head as the fork */
        if (arch_row_of(hp->arch)->upstream)
            return trit_fail(err, TRIT_EUNSUP,
                             "tensor output.weight: arch %s ties the LM head to "
                             "token_embd.weight and has no output.weight (llama.cpp refuses the "
                             "file too)",
                             trit_arch_name(hp->arch));
        trit_log(TRIT_LOG_WARN,
                 "%s: output.weight is not used: arch %s's graph (bitnet.cpp build_bitnet_158) "
                 "projects with token_embd.weight",
                 m->path, trit_arch_name(hp->arch));
    }
    /* bitnet's graph always uses tok_embd as the LM head (llama.cpp FIXME), llama when absent */
    m->tied_output = bitnet || m->output.data == NULL;
    if (m->tied_output) m->output = m->tok_embd;
    if (gguf_find_tensor(m->gguf, "rope_freqs.weight"))
        return trit_fail(err, TRIT_EUNSUP,
                         "rope_freqs.weight (rope frequency factors) is not supported");

    m->layers = xcalloc((size_t)hp->n_layer, sizeof *m->layers);
    for (int i = 0; i < hp->n_layer; i++) {
        trit_layer *L = &m->layers[i];
#define B(field, suffix, d0, d1, matrix)                                                           \
    do {                                                                                           \
        snprintf(name, sizeof name, "blk.%d.%s", i, suffix);                                       \
        if (bind(m, &L->field, name, d0, d1, true, matrix, err)) return -1;                        \
    } while (0)
        B(attn_norm, "attn_norm.weight", n_embd, 0, false);
        B(wq, "attn_q.weight", n_embd, n_q, true);
        B(wk, "attn_k.weight", n_embd, n_kv, true);
        B(wv, "attn_v.weight", n_embd, n_kv, true);
        B(wo, "attn_output.weight", n_q, n_embd, true);
        B(ffn_norm, "ffn_norm.weight", n_embd, 0, false);
        B(ffn_gate, "ffn_gate.weight", n_embd, n_ff, true);
        B(ffn_up, "ffn_up.weight", n_embd, n_ff, true);
        B(ffn_down, "ffn_down.weight", n_ff, n_embd, true);
        if (bitnet) {
            B(attn_sub_norm, "attn_sub_norm.weight", n_embd, 0, false);
            B(ffn_sub_norm, "ffn_sub_norm.weight", n_ff, 0, false);
        }
#undef B
        /* biases and MoE are not part of these graphs here: refuse rather than ignore */
        static const char *const extra[] = {
            "attn_output.bias",    "attn_q.bias",     "attn_k.bias",   "attn_v.bias",
            "ffn_gate_inp.weight", "attn_qkv.weight", "ffn_down.bias", "ffn_up.bias"};
        for (size_t j = 0; j < TRIT_ARRAY_LEN(extra); j++) {
            snprintf(name, sizeof name, "blk.%d.%s", i, extra[j]);
            if (gguf_find_tensor(m->gguf, name))
                return trit_fail(err, TRIT_EUNSUP, "tensor %s is not supported", name);
        }
    }
    return 0;
}

trit_model *trit_model_load(const char *path, trit_err *err) {
    gguf_file *f = gguf_open(path, err);
    if (!f) return NULL;
    trit_model *m = xcalloc(1, sizeof *m);
    m->gguf = f;
    m->path = xstrdup(path);
    char *arch = gguf_get_str(f, "general.architecture");
    if (!arch) {
        trit_fail(err, TRIT_EFORMAT, "%s: missing key general.architecture", path);
        goto fail;
    }
    const int a = trit_arch_from_name(arch);
    if (a < 0) {
        trit_fail(err, TRIT_EUNSUP,
                  "%s: unknown architecture \"%s\" (trit runs llama, bitnet, bitnet-b1.58 and "
                  "bitnet-25)",
                  path, arch);
        free(arch);
        goto fail;
    }
    m->hp.arch = (enum trit_arch)a;
    if (load_hparams(m, arch, err) || load_tensors(m, err)) {
        trit_err_prefix(err, "%s", path);
        free(arch);
        goto fail;
    }
    free(arch);
    m->name = gguf_get_str(f, "general.name");
    if (!m->name) {
        const char *b = strrchr(path, '/');
        m->name = xstrdup(b ? b + 1 : path);
    }
    return m;
fail:
    trit_model_free(m);
    return NULL;
}

void trit_model_free(trit_model *m) {
    if (!m) return;
    free(m->layers);
    if (m->gguf) gguf_close(m->gguf);
    free(m->path);
    free(m->name);
    free(m);
}

const gguf_file *trit_model_gguf(const trit_model *m) {
    return m->gguf;
}

const char *trit_model_sha256(trit_model *m) {
    if (!m->sha256[0]) {
        if (trit_sha256_file(m->path, m->sha256, NULL) != 0) return "";
    }
    return m->sha256;
}

void trit_model_describe(const trit_model *m, trit_buf *out) {
    const trit_hparams *hp = &m->hp;
    char why[160];
    trit_act_explain(trit_arch_name(hp->arch), hp->act, hp->act_source, why, sizeof why);
    trit_buf_printf(out, "%s %dL %dd %dh/%dkv ff%d vocab%d %s act=%s (%s)",
                    trit_arch_name(hp->arch), hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv,
                    hp->n_ff, hp->n_vocab,
                    type_name(m->layers ? m->layers[0].wq.type : m->tok_embd.type),
                    trit_act_name(hp->act), why);
}
