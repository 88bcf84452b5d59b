/* model — hyper-parameters and weight binding for the llama and bitnet architectures, read
 * from GGUF (zero-copy views into the mmap), and synthetic model generation (mkmodel.h).
 *
 * Contract: trit_model_load refuses, with a clear message, any file it cannot run: unknown
 * architecture, missing or misshapen tensor, unsupported tensor type, inconsistent dims.
 * FFN activation: GGUF key "<arch>.ffn_activation" = "silu" | "relu2" (squared ReLU, what
 * BitNet b1.58 2B-4T is trained with); absent -> "silu", llama.cpp's behaviour.
 * Depends on gguf, quant, base. */
#ifndef TRIT_MODEL_H
#define TRIT_MODEL_H

#include "base/base.h"
#include "gguf/gguf.h"

enum trit_arch { TRIT_ARCH_LLAMA = 0, TRIT_ARCH_BITNET = 1 };
enum trit_act { TRIT_ACT_SILU = 0, TRIT_ACT_RELU2 = 1 };
enum trit_rope_mode { TRIT_ROPE_NORM = 0, TRIT_ROPE_NEOX = 2 };

typedef struct trit_hparams {
    enum trit_arch arch;
    int n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim, n_rot;
    float rms_eps, rope_freq_base;
    enum trit_rope_mode rope_mode; /* llama.cpp's: NORM for llama, NEOX for bitnet */
    enum trit_act act;
    bool act_from_file; /* the GGUF had the activation key */
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

trit_model *trit_model_load(const char *path, trit_err *err);
void trit_model_free(trit_model *m);
const char *trit_model_sha256(trit_model *m);
const char *trit_arch_name(enum trit_arch a);
const char *trit_act_name(enum trit_act a); /* "silu" | "relu2" */
/* One line: "bitnet 4L 256d 4h/2kv ff512 vocab128256 tq2_0 act=relu2 (from file)". */
void trit_model_describe(const trit_model *m, trit_buf *out);

/* A string metadata value of the model's file (e.g. "tokenizer.chat_template"), malloc'd, or
 * NULL when absent or not a string — for callers outside model/ that must not read m->gguf. */
static inline char *trit_model_meta_str(const trit_model *m, const char *key) {
    return gguf_get_str(m->gguf, key);
}

#endif
