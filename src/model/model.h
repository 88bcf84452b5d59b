/* model — hyper-parameters and weight binding for the llama and bitnet architecture families,
 * read from GGUF (zero-copy views into the mmap), and synthetic model generation (mkmodel.h).
 *
 * Architectures (general.architecture; docs/formats.md describes each file family):
 *   "llama"         upstream llama.cpp's llama graph (also Falcon3-*-1.58bit, TriLM).
 *   "bitnet"        upstream llama.cpp's bitnet graph: sub-norms, NEOX RoPE, tied output,
 *                   optional per-tensor "<name>.scale" tensors (all archs load those).
 *   "bitnet-b1.58"  bitnet.cpp's BitNet b1.58 2B-4T layout (its llama.cpp fork,
 *   "bitnet-25"     LLM_ARCH_BITNET_B158 / _25, build_bitnet_158): the bitnet graph with a
 *                   squared-ReLU FFN and no scale tensors.
 * Contract: trit_model_load refuses, with a clear message, any file it cannot run: unknown
 * architecture, missing or misshapen tensor, unsupported tensor type (naming the tensor, its
 * type and the `trit quantize` command that converts it), inconsistent dims, tensors the
 * arch's graph would not use.
 * FFN activation: the arch decides (bitnet-b1.58/bitnet-25 -> relu2, llama/bitnet -> silu as
 * upstream llama.cpp); the GGUF key "<arch>.ffn_activation" = "silu" | "relu2" overrides it.
 * Depends on gguf, quant, base. */
#ifndef TRIT_MODEL_H
#define TRIT_MODEL_H

#include "base/base.h"
#include "gguf/gguf.h"

enum trit_arch {
    TRIT_ARCH_LLAMA = 0,
    TRIT_ARCH_BITNET = 1,
    TRIT_ARCH_BITNET_B158 = 2, /* "bitnet-b1.58" (bitnet.cpp) */
    TRIT_ARCH_BITNET_25 = 3,   /* "bitnet-25": the same graph under its early-2025 name */
};
enum trit_act { TRIT_ACT_SILU = 0, TRIT_ACT_RELU2 = 1 };
/* Why a model uses its FFN activation (trit inspect prints it). */
enum trit_act_source {
    TRIT_ACT_SRC_UPSTREAM = 0, /* no key; upstream llama.cpp's graph for the arch uses SiLU */
    TRIT_ACT_SRC_ARCH = 1,     /* no key; the arch defines it (bitnet-b1.58 -> relu2) */
    TRIT_ACT_SRC_KEY = 2,      /* "<arch>.ffn_activation" */
};
enum trit_rope_mode { TRIT_ROPE_NORM = 0, TRIT_ROPE_NEOX = 2 };

typedef struct trit_hparams {
    enum trit_arch arch;
    int n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim, n_rot;
    float rms_eps, rope_freq_base;
    enum trit_rope_mode rope_mode; /* llama.cpp's: NORM for llama, NEOX for bitnet */
    enum trit_act act;
    enum trit_act_source act_source;
    bool act_from_file; /* act_source == TRIT_ACT_SRC_KEY */
} trit_hparams;

typedef struct trit_weight {
    const char *name; /* GGUF tensor name */
    uint32_t type;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
    float scale; /* per-tensor multiplier: I2_S's scale and/or a "<name>.scale" tensor; else 1 */
} trit_weight;

typedef struct trit_layer {
    trit_weight attn_norm, wq, wk, wv, wo, attn_sub_norm;           /* attn_sub_norm: bitnet only */
    trit_weight ffn_norm, ffn_gate, ffn_up, ffn_down, ffn_sub_norm; /* ffn_sub_norm: bitnet */
} trit_layer;

typedef struct trit_model {
    trit_hparams hp;
    gguf_file *gguf;
    char *path;
    char *name;                                /* general.name or file basename */
    trit_weight tok_embd, output_norm, output; /* output == tok_embd when tied */
    bool tied_output;
    trit_layer *layers;
    char sha256[65]; /* filled lazily by trit_model_sha256 */
} trit_model;

/* The model's GGUF file, for modules that read its other sections (the tokenizer's
 * vocabulary, the chat template): callers outside model/ use this, not m->gguf. */
const gguf_file *trit_model_gguf(const trit_model *m);
trit_model *trit_model_load(const char *path, trit_err *err);
void trit_model_free(trit_model *m);
const char *trit_model_sha256(trit_model *m);
const char *trit_arch_name(enum trit_arch a); /* the general.architecture string */
/* general.architecture string -> arch; -1 when trit does not run it. */
int trit_arch_from_name(const char *name);
/* True for the bitnet graph family (bitnet, bitnet-b1.58, bitnet-25): attn_sub_norm and
 * ffn_sub_norm, NEOX RoPE, token_embd as the LM head. */
bool trit_arch_is_bitnet(enum trit_arch a);
const char *trit_act_name(enum trit_act a); /* "silu" | "relu2" */
/* The FFN activation of a file declaring `arch_name` (a name trit_arch_from_name knows): the
 * key "<arch>.ffn_activation" when present, else the arch's. Returns 0, or -1 when the key
 * has a bad type or value. Used by the loader and by `trit inspect`. */
int trit_act_resolve(const gguf_file *f, const char *arch_name, enum trit_act *act,
                     enum trit_act_source *src, trit_err *err);
/* One phrase saying why: "arch bitnet-b1.58 defines relu2", "key bitnet.ffn_activation =
 * relu2", "upstream llama.cpp bitnet uses SiLU". */
void trit_act_explain(const char *arch_name, enum trit_act act, enum trit_act_source src, char *buf,
                      size_t n);
/* One line: "bitnet 4L 256d 4h/2kv ff512 vocab128256 tq2_0 act=relu2 (key ...)". */
void trit_model_describe(const trit_model *m, trit_buf *out);

/* A string metadata value of the model's file (e.g. "tokenizer.chat_template"), malloc'd, or
 * NULL when absent or not a string — for callers outside model/ that must not read m->gguf. */
static inline char *trit_model_meta_str(const trit_model *m, const char *key) {
    return gguf_get_str(m->gguf, key);
}

#endif
