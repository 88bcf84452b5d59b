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
 * Scales are chosen so next-token distributions are peaked (logit std ~10): see mkmodel.c.
 * scale_tensors (bitnet arch): each block weight is followed by "<name>.scale", an f32 {1}
 * tensor that upstream llama.cpp multiplies into the matmul's result (build_lora_mm).
 *
 * layout "bitnet-b1.58-2b-4t": the structure of bitnet.cpp's published BitNet b1.58 2B-4T
 * ggml-model-i2_s.gguf (microsoft/bitnet-b1.58-2B-4T-gguf; its llama.cpp metadata dump is
 * quoted in docs/formats.md), with synthetic weights: arch "bitnet-b1.58", these 24 KVs in this
 * order and with these types:
 *   general.architecture str, general.name str, bitnet-b1.58.vocab_size u32,
 *   .context_length u32, .embedding_length u32, .block_count u32, .feed_forward_length u32,
 *   .rope.dimension_count u32, .attention.head_count u32, .attention.head_count_kv u32,
 *   tokenizer.ggml.add_bos_token bool, bitnet-b1.58.attention.layer_norm_rms_epsilon f32,
 *   bitnet-b1.58.rope.freq_base f32, general.file_type u32 (40 = I2_S), tokenizer.ggml.model
 *   str ("gpt2"), tokenizer.ggml.tokens [str], tokenizer.ggml.scores [f32] (zeros),
 *   tokenizer.ggml.token_type [i32], tokenizer.ggml.merges [str], tokenizer.ggml.bos_token_id
 *   u32, tokenizer.ggml.eos_token_id u32, tokenizer.ggml.padding_token_id u32 (= eos),
 *   tokenizer.chat_template str, general.quantization_version u32 (2)
 *   (no tokenizer.ggml.pre, no rope scaling keys, no general.alignment: 32).
 * Tensors in the converter's order (the checkpoint's sorted names, kept by the fork's
 * llama-quantize): token_embd.weight (F16, or embd_type: bitnet.cpp's --quant-embd writes
 * Q6_K); blocks in the string order of their numbers (0, 1, 10, 11, ..., 19, 2, 20, ...),
 * each attn_norm, ffn_down, ffn_sub_norm, ffn_gate, ffn_up, ffn_norm, attn_sub_norm, attn_k,
 * attn_output, attn_q, attn_v; output_norm.weight. No output.weight (tied). Block weights
 * I2_S (type 36: packed codes + fp32 scale + 28 zero bytes), norms F32. With the tiny preset
 * the shapes are tiny's, everything else as published. */
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
    const char *layout; /* NULL (llama.cpp's converter) | "bitnet-b1.58-2b-4t" */
    uint32_t embd_type; /* token_embd/output type; 0: the default (F16; F32/BF16 with --type) */
    bool scale_tensors; /* write "<weight>.scale" f32 {1} tensors (bitnet family) */
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

/* True for a layout name trit_mkmodel knows ("bitnet-b1.58-2b-4t"). */
bool trit_mkmodel_layout_known(const char *name);

int trit_mkmodel(const trit_mkmodel_params *p, trit_err *err);

#endif
