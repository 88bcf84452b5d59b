/* quant/ftype — llama-quantize's file types (ftypes) and its per-tensor type choice.
 *
 * Contract: trit_ftype_find() knows every name llama-quantize's QUANT_OPTIONS lists (case
 * insensitive, or the LLAMA_FTYPE number) plus trit's I2_S. trit_quant_choose_type() is
 * llama-quant.cpp's tensor_allows_quantization + llama_tensor_get_type (+ _impl and
 * tensor_type_fallback) as a function of the tensor's name and shape, the ftype and
 * options, a summary of the model (trit_qmodel) and the counters llama-quantize carries from
 * tensor to tensor (trit_qstate; call it for the tensors in file-writing order, as
 * llama-quantize's preliminary loop does). It does not check that trit can quantize to the
 * type it returns (trit_type_get(t)->supported). Depends on quant and base only. */
#ifndef TRIT_QUANT_FTYPE_H
#define TRIT_QUANT_FTYPE_H

#include "base/base.h"

typedef struct trit_ftype_info {
    const char *name;      /* llama-quantize's spelling: "Q4_K_M", "TQ2_0", ... */
    int ftype;             /* LLAMA_FTYPE_* (general.file_type) */
    uint32_t default_type; /* llama_ftype_get_default_type: the type most tensors get */
} trit_ftype_info;

/* By name (case-insensitive) or decimal LLAMA_FTYPE number; NULL if unknown. */
const trit_ftype_info *trit_ftype_find(const char *name);
/* The whole table, for listing (n set to its length). */
const trit_ftype_info *trit_ftype_list(size_t *n);

/* What the rules need to know about the model (llama_model's arch and hparams). */
typedef struct trit_qmodel {
    bool falcon;          /* general.architecture == "falcon" */
    bool is_70b;          /* llama arch with 80 layers and GQA (LLM_TYPE_70B) */
    int n_layer;          /* <arch>.block_count (n_ffn_down/gate/up) */
    int n_gqa;            /* head_count / head_count_kv, 0 if unknown */
    int n_expert;         /* <arch>.expert_count, 0 if none */
    bool tied_embeddings; /* the file has no output.weight */
    int n_attention_wv;   /* tensors of the attn_v category (attn_v/attn_qkv/attn_kv_b) */
} trit_qmodel;

/* Options as llama-quantize's (params->token_embedding_type etc.); -1 = not given. */
typedef struct trit_qopts {
    int ftype;
    uint32_t default_type;
    int token_embedding_type; /* --token-embedding-type */
    int output_tensor_type;   /* --output-tensor-type */
    bool pure;                /* --pure: no mixes, default type everywhere (fallback still) */
    bool leave_output;        /* --leave-output-tensor: output.weight not quantized */
} trit_qopts;

/* Counters carried from tensor to tensor (quantize_state_impl's i_* and n_fallback). */
typedef struct trit_qstate {
    int i_attention_wv, i_ffn_down, i_ffn_gate, i_ffn_up;
    int n_fallback;
} trit_qstate;

/* Whether a tensor's name puts it in llama-quantize's attn_v category (for n_attention_wv). */
bool trit_quant_is_attn_v(const char *name);

/* The type llama-quantize writes this tensor as (cur_type if it is not quantized at all).
 * ne[0] is the row length. Returns -1 (with err set) where llama-quantize throws: no
 * fallback is defined for a type whose block does not divide the rows, or a layer number
 * cannot be read from an expert tensor's name. */
int trit_quant_choose_type(const trit_qmodel *m, const trit_qopts *o, trit_qstate *st,
                           const char *name, int n_dims, const int64_t ne[4], uint32_t cur_type,
                           trit_err *err);

#endif
