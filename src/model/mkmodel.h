/* mkmodel — deterministic synthetic models (llama / bitnet) written as GGUF the way llama.cpp's
 * converter writes them (convert_hf_to_gguf.py: LlamaModel, BitnetModel).
 *
 * Contract: the same parameters give a byte-identical file. Every tensor is generated from its
 * own stream (splitmix64 seeded by the seed and the tensor's name), so no tensor depends on
 * the order others are made in. Tensors are produced one at a time through the GGUF writer's
 * fill callback; the largest buffer held is one tensor (never the whole model in F32).
 *
 * File layout: KVs general.architecture, general.name, general.file_type (llama.cpp
 * LLAMA_FTYPE), <arch>.{context_length, embedding_length, block_count, feed_forward_length,
 * attention.head_count, attention.head_count_kv, rope.freq_base,
 * attention.layer_norm_rms_epsilon, vocab_size, rope.dimension_count}, bitnet adds
 * <arch>.rope.scaling.{type="linear",factor=1} (as BitnetModel), <arch>.ffn_activation only
 * when act_set; then every tokenizer.* KV of the vocab GGUF.
 * Tensors: token_embd.weight; per layer blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
 * [attn_sub_norm], ffn_norm, ffn_gate, ffn_up, ffn_down, [ffn_sub_norm]}.weight ([] = bitnet
 * only); output_norm.weight; output.weight (llama only: bitnet ties it to token_embd).
 * Types: norms F32; token_embd/output F32 for --type f32, BF16 for bf16, F16 otherwise; the
 * 2-D block weights in the requested type. Bitnet block weights are BitNet b1.58 ternary:
 * w = round(clip(W / s, -1, 1)) * s with s = mean|W| rounded to fp16, so TQ1_0, TQ2_0 and I2_S
 * hold them exactly.
 * Scales are chosen so next-token distributions are peaked (logit std ~10): see mkmodel.c. */
#ifndef TRIT_MKMODEL_H
#define TRIT_MKMODEL_H

#include "base/base.h"
#include "model/model.h"

typedef struct trit_mkmodel_preset {
    const char *name;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    float rope_freq_base, rms_eps;
} trit_mkmodel_preset;

typedef struct trit_mkmodel_params {
    enum trit_arch arch;
    const char *preset; /* "tiny" | "small" | "bitnet-2b-4t" */
    uint32_t type;      /* TRIT_F32 F16 BF16 Q8_0 TQ1_0 TQ2_0 I2_S */
    bool act_set;       /* write "<arch>.ffn_activation" */
    enum trit_act act;
    uint64_t seed;
    const char *vocab_path; /* NULL: <trit_ref_dir()>/src/models/ggml-vocab-llama-bpe.gguf */
    const char *out_path;
} trit_mkmodel_params;

/* NULL if the name is unknown. */
const trit_mkmodel_preset *trit_mkmodel_preset_get(const char *name);
/* LLAMA_FTYPE value for a model whose block weights are `type` (llama.h; I2_S = 40 as
 * bitnet.cpp); -1 for a type without one. */
int trit_llama_ftype(uint32_t type);

int trit_mkmodel(const trit_mkmodel_params *p, trit_err *err);

#endif
