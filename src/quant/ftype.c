/* quant/ftype.c — llama-quantize's ftype table and per-tensor type choice (contract:
 * quant/ftype.h). Every rule below is read from the reference's src/llama-quant.cpp
 * (llama.cpp 3.22.1): the function and branch each one mirrors is named in its comment. */
#include "quant/ftype.h"

#include "quant/quant.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LLAMA_FTYPE_* values (include/llama.h) used by the rules. */
enum {
    FT_F32 = 0,
    FT_F16 = 1,
    FT_Q4_0 = 2,
    FT_Q4_1 = 3,
    FT_Q8_0 = 7,
    FT_Q5_0 = 8,
    FT_Q5_1 = 9,
    FT_Q2_K = 10,
    FT_Q3_K_S = 11,
    FT_Q3_K_M = 12,
    FT_Q3_K_L = 13,
    FT_Q4_K_S = 14,
    FT_Q4_K_M = 15,
    FT_Q5_K_S = 16,
    FT_Q5_K_M = 17,
    FT_Q6_K = 18,
    FT_IQ2_XXS = 19,
    FT_IQ2_XS = 20,
    FT_Q2_K_S = 21,
    FT_IQ3_XS = 22,
    FT_IQ3_XXS = 23,
    FT_IQ1_S = 24,
    FT_IQ4_NL = 25,
    FT_IQ3_S = 26,
    FT_IQ3_M = 27,
    FT_IQ2_S = 28,
    FT_IQ2_M = 29,
    FT_IQ4_XS = 30,
    FT_IQ1_M = 31,
    FT_BF16 = 32,
    FT_TQ1_0 = 36,
    FT_TQ2_0 = 37,
    FT_MXFP4_MOE = 38,
    FT_Q1_0 = 40,
    FT_Q2_0 = 41,
};

/* ggml type ids the rules name (trit's enum has only the ones it computes with). */
enum {
    GT_Q2_K = 10,
    GT_Q3_K = 11,
    GT_Q4_K = 12,
    GT_Q5_K = 13,
    GT_Q6_K = 14,
    GT_IQ2_XXS = 16,
    GT_IQ2_XS = 17,
    GT_IQ3_XXS = 18,
    GT_IQ1_S = 19,
    GT_IQ4_NL = 20,
    GT_IQ3_S = 21,
    GT_IQ2_S = 22,
    GT_IQ4_XS = 23,
    GT_IQ1_M = 29,
    GT_MXFP4 = 39,
    GT_Q1_0 = 41,
    GT_Q2_0 = 42,
};

/* tools/quantize/quantize.cpp's QUANT_OPTIONS (names, aliases Q3_K/Q4_K/Q5_K -> *_M) with
 * llama_ftype_get_default_type; I2_S is trit's (bitnet.cpp's ftype 40 is taken by Q1_0 in
 * this llama.cpp, so trit writes it only for i2_s files, as trit mkmodel does). */
static const trit_ftype_info ftypes[] = {
    {"Q1_0", FT_Q1_0, GT_Q1_0},
    {"Q2_0", FT_Q2_0, GT_Q2_0},
    {"Q4_0", FT_Q4_0, TRIT_Q4_0},
    {"Q4_1", FT_Q4_1, TRIT_Q4_1},
    {"MXFP4_MOE", FT_MXFP4_MOE, GT_MXFP4},
    {"Q5_0", FT_Q5_0, TRIT_Q5_0},
    {"Q5_1", FT_Q5_1, TRIT_Q5_1},
    {"IQ2_XXS", FT_IQ2_XXS, GT_IQ2_XXS},
    {"IQ2_XS", FT_IQ2_XS, GT_IQ2_XS},
    {"IQ2_S", FT_IQ2_S, GT_IQ2_XS},
    {"IQ2_M", FT_IQ2_M, GT_IQ2_S},
    {"IQ1_S", FT_IQ1_S, GT_IQ1_S},
    {"IQ1_M", FT_IQ1_M, GT_IQ1_M},
    {"TQ1_0", FT_TQ1_0, TRIT_TQ1_0},
    {"TQ2_0", FT_TQ2_0, TRIT_TQ2_0},
    {"Q2_K", FT_Q2_K, GT_Q2_K},
    {"Q2_K_S", FT_Q2_K_S, GT_Q2_K},
    {"IQ3_XXS", FT_IQ3_XXS, GT_IQ3_XXS},
    {"IQ3_S", FT_IQ3_S, GT_IQ3_S},
    {"IQ3_M", FT_IQ3_M, GT_IQ3_S},
    {"Q3_K", FT_Q3_K_M, GT_Q3_K},
    {"IQ3_XS", FT_IQ3_XS, GT_IQ3_S},
    {"Q3_K_S", FT_Q3_K_S, GT_Q3_K},
    {"Q3_K_M", FT_Q3_K_M, GT_Q3_K},
    {"Q3_K_L", FT_Q3_K_L, GT_Q3_K},
    {"IQ4_NL", FT_IQ4_NL, GT_IQ4_NL},
    {"IQ4_XS", FT_IQ4_XS, GT_IQ4_XS},
    {"Q4_K", FT_Q4_K_M, GT_Q4_K},
    {"Q4_K_S", FT_Q4_K_S, GT_Q4_K},
    {"Q4_K_M", FT_Q4_K_M, GT_Q4_K},
    {"Q5_K", FT_Q5_K_M, GT_Q5_K},
    {"Q5_K_S", FT_Q5_K_S, GT_Q5_K},
    {"Q5_K_M", FT_Q5_K_M, GT_Q5_K},
    {"Q6_K", FT_Q6_K, GT_Q6_K},
    {"Q8_0", FT_Q8_0, TRIT_Q8_0},
    {"F16", FT_F16, TRIT_F16},
    {"BF16", FT_BF16, TRIT_BF16},
    {"F32", FT_F32, TRIT_F32},
    {"I2_S", 40, TRIT_I2_S},
};

static bool ieq(const char *a, const char *b) {
    while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b)) a++, b++;
    return !*a && !*b;
}

const trit_ftype_info *trit_ftype_find(const char *name) {
    if (!name || !*name) return NULL;
    for (size_t i = 0; i < TRIT_ARRAY_LEN(ftypes); i++)
        if (ieq(ftypes[i].name, name)) return &ftypes[i];
    /* a number: the first entry with that ftype (as try_parse_ftype's stoi branch) */
    char *end;
    long v = strtol(name, &end, 10);
    if (*end) return NULL;
    for (size_t i = 0; i + 1 < TRIT_ARRAY_LEN(ftypes); i++) /* not I2_S: 40 is Q1_0 here */
        if (ftypes[i].ftype == v) return &ftypes[i];
    return NULL;
}

const trit_ftype_info *trit_ftype_list(size_t *n) {
    *n = TRIT_ARRAY_LEN(ftypes);
    return ftypes;
}

/* ---- tensor categories (llama-quant.cpp's tensor_get_category) ---- */
typedef enum {
    CAT_OTHER,
    CAT_OUTPUT,
    CAT_TOKEN_EMBD,
    CAT_ATTN_QKV,
    CAT_ATTN_KV_B,
    CAT_ATTN_V,
    CAT_ATTN_K,
    CAT_ATTN_Q,
    CAT_ATTN_OUTPUT,
    CAT_FFN_UP,
    CAT_FFN_GATE,
    CAT_FFN_DOWN,
} category;

/* First match wins, in the reference's order (substring tests, so "ffn_down_exps" is
 * FFN_DOWN and "attn_qkv.weight" is checked before "attn_v.weight"). */
static category tensor_category(const char *name) {
    if (!strcmp(name, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    static const struct {
        const char *sub;
        category cat;
    } subs[] = {{"attn_qkv.weight", CAT_ATTN_QKV},
                {"attn_kv_b.weight", CAT_ATTN_KV_B},
                {"attn_v.weight", CAT_ATTN_V},
                {"attn_k.weight", CAT_ATTN_K},
                {"attn_q.weight", CAT_ATTN_Q},
                {"attn_output.weight", CAT_ATTN_OUTPUT},
                {"ffn_up", CAT_FFN_UP},
                {"ffn_gate", CAT_FFN_GATE},
                {"ffn_down", CAT_FFN_DOWN}};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(subs); i++)
        if (strstr(name, subs[i].sub)) return subs[i].cat;
    return CAT_OTHER;
}

/* category_is_attn_v: the attention-value-like tensors, more sensitive to quantization. */
static bool cat_attn_v(category c) {
    return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B;
}

bool trit_quant_is_attn_v(const char *name) {
    return cat_attn_v(tensor_category(name));
}

/* ---- tensor_allows_quantization ---- */
static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !memcmp(s + n - m, suf, m);
}

/* Only 2-D/3-D tensors whose name ends in "weight", minus the reference's list of small or
 * sensitive ones (norms, MoE gate inputs, conv1d, RWKV time_mix, position embeddings, ...). */
static bool allows_quantization(const trit_qopts *o, const char *name, int n_dims) {
    if (n_dims < 2 || !ends_with(name, "weight")) return false;
    if (o->leave_output && !strcmp(name, "output.weight")) return false;
    static const char *const never[] = {"_norm.weight",
                                        "ffn_gate_inp.weight",
                                        "ffn_gate_tid2eid.weight",
                                        "altup",
                                        "laurel",
                                        "per_layer_model_proj",
                                        "ssm_conv1d",
                                        "shortconv.conv.weight",
                                        "indexer.k_proj.weight",
                                        "indexer.q_proj.weight",
                                        "time_mix_first.weight",
                                        "time_mix_w0.weight",
                                        "time_mix_w1.weight",
                                        "time_mix_w2.weight",
                                        "time_mix_v0.weight",
                                        "time_mix_v1.weight",
                                        "time_mix_v2.weight",
                                        "time_mix_a0.weight",
                                        "time_mix_a1.weight",
                                        "time_mix_a2.weight",
                                        "time_mix_g1.weight",
                                        "time_mix_g2.weight",
                                        "time_mix_decay_w1.weight",
                                        "time_mix_decay_w2.weight",
                                        "time_mix_lerp_fused.weight",
                                        "attn_rel_b.weight",
                                        ".position_embd",
                                        "sam.pos_embd",
                                        "sam.neck.",
                                        "sam.net_",
                                        ".rel_pos",
                                        ".patch_embd",
                                        ".patch_merger",
                                        "a.rvq.codebook",
                                        "mm.a.code_embd"};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(never); i++)
        if (strstr(name, never[i])) return false;
    /* LLM_TENSOR_POS_EMBD / TOKEN_TYPES (BERT) */
    return strcmp(name, "position_embd.weight") && strcmp(name, "token_types.weight");
}

/* ggml_is_quantized for the default type: the block types (trit's I2_S counts as one). */
static bool is_quantized(uint32_t t) {
    const trit_type_info *ti = trit_type_get(t);
    return t == TRIT_I2_S || (ti && ti->blck > 1);
}

/* Elements a row must be a multiple of for type t (I2_S: its 128-weight blocks). */
static int64_t row_granule(uint32_t t) {
    const trit_type_info *ti = trit_type_get(t);
    return t == TRIT_I2_S ? QK_I2_S : ti ? ti->blck : 1;
}

/* use_more_bits: the first and last eighth of the layers and every third one between. */
static bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* ---- tensor_type_fallback: rows that are not whole blocks of the chosen type ---- */
static int fallback(trit_qstate *st, const char *name, int64_t ncols, int target, trit_err *err) {
    if (ncols % row_granule((uint32_t)target) == 0) return target;
    st->n_fallback++;
    int ret;
    switch (target) {
    case GT_IQ1_S: /* 256-blocks -> the 32-block non-linear type */
    case GT_IQ1_M:
    case GT_IQ2_XXS:
    case GT_IQ2_XS:
    case GT_IQ2_S:
    case GT_IQ3_XXS:
    case GT_IQ3_S:
    case GT_IQ4_XS:
        ret = GT_IQ4_NL;
        break;
    case GT_Q2_0: /* low-bit and ternary types -> Q4_0 */
    case GT_Q2_K:
    case GT_Q3_K:
    case TRIT_TQ1_0:
    case TRIT_TQ2_0:
    case TRIT_I2_S: /* (trit's choice: I2_S like the other ternary types) */
        ret = TRIT_Q4_0;
        break;
    case GT_Q4_K: /* each k-quant -> the 32-block type of about its size */
        ret = TRIT_Q5_0;
        break;
    case GT_Q5_K:
        ret = TRIT_Q5_1;
        break;
    case GT_Q6_K:
        ret = TRIT_Q8_0;
        break;
    default:
        /* already a 32-block type: nothing smaller to demote to (F16 below) */
        if (row_granule((uint32_t)target) <= 32) {
            ret = target;
            break;
        }
        return trit_fail(err, TRIT_EUNSUP, "%s: no tensor type fallback is defined for type %s",
                         name, trit_type_get((uint32_t)target)->name);
    }
    /* the fallback does not fit either (rows not a multiple of 32): F16 */
    if (ncols % row_granule((uint32_t)ret)) ret = TRIT_F16;
    return ret;
}

/* layer_info: the counter's layer, or for MoE models the number in the tensor's name. */
static int layer_of(const trit_qmodel *m, int counter, const char *name, trit_err *err) {
    if (m->n_expert <= 1) return counter;
    int l = -1;
    if (sscanf(name, "blk.%d.", &l) != 1 || l < 0 || l >= m->n_layer)
        return trit_fail(err, TRIT_EFORMAT, "cannot determine the layer of tensor %s", name), -1;
    return l;
}

static bool ft_is_iq2_or_iq1(int f) {
    return f == FT_IQ2_XXS || f == FT_IQ2_XS || f == FT_IQ1_S || f == FT_IQ2_S || f == FT_IQ2_M ||
           f == FT_IQ1_M;
}

/* The output matrix (or the embedding that doubles as it) gets more bits: Q6_K unless the
 * default is Q8_0; Q8_0 for Falcon or rows that the type cannot split. */
static int mix_output(const trit_qmodel *m, const trit_qopts *o, const int64_t ne[4]) {
    const int f = o->ftype;
    int t = (int)o->default_type;
    if (o->output_tensor_type >= 0) return o->output_tensor_type;
    if (f == FT_MXFP4_MOE) return TRIT_Q8_0;
    if (m->falcon || ne[0] % row_granule((uint32_t)t)) return TRIT_Q8_0;
    if (f == FT_IQ2_XXS || f == FT_IQ2_XS || f == FT_IQ3_XXS || f == FT_IQ1_S || f == FT_IQ2_S ||
        f == FT_IQ2_M || f == FT_IQ1_M)
        return GT_Q5_K;
    return t != TRIT_Q8_0 ? GT_Q6_K : t;
}

/* An untied embedding: cheap low-bit types for the low-bit mixes, Q4_K for ternary. */
static int mix_token_embd(const trit_qopts *o) {
    const int f = o->ftype;
    int t = (int)o->default_type;
    if (o->token_embedding_type >= 0) return o->token_embedding_type;
    if (f == FT_IQ2_XXS || f == FT_IQ2_XS || f == FT_IQ1_S || f == FT_IQ1_M) return GT_Q2_K;
    if (f == FT_IQ2_S || f == FT_IQ2_M || f == FT_IQ3_XXS) return GT_IQ3_S;
    if (f == FT_TQ1_0 || f == FT_TQ2_0 || f == FT_Q2_0) return GT_Q4_K;
    return t;
}

/* The IQ1/IQ2 mixes: their own rules for attn_v, attn_k, ffn_down and attn_output. */
static int mix_iq2_or_iq1(const trit_qmodel *m, const trit_qopts *o, trit_qstate *st,
                          category cat) {
    const int f = o->ftype;
    int t = (int)o->default_type;
    if (cat_attn_v(cat)) {
        t = m->n_gqa >= 4 || m->n_expert >= 4 ? GT_Q4_K
            : f == FT_IQ2_S || f == FT_IQ2_M  ? GT_IQ3_S
                                              : GT_Q2_K;
        st->i_attention_wv++;
    } else if (m->n_expert == 8 && cat == CAT_ATTN_K) {
        t = GT_Q4_K;
    } else if (cat == CAT_FFN_DOWN) {
        if (st->i_ffn_down < m->n_layer / 8)
            t = f == FT_IQ2_S || f == FT_IQ2_M ? GT_IQ3_S : GT_Q2_K;
        st->i_ffn_down++;
    } else if (cat == CAT_ATTN_OUTPUT) {
        if (m->n_expert == 8)
            t = GT_Q5_K;
        else if (f == FT_IQ1_S || f == FT_IQ1_M)
            t = GT_IQ2_XXS;
        else if (f == FT_IQ2_S || f == FT_IQ2_M)
            t = GT_IQ3_S;
    }
    return t;
}

/* attn_v: few weights, much effect: more bits in most mixes. */
static int mix_attn_v(const trit_qmodel *m, const trit_qopts *o, trit_qstate *st) {
    const int f = o->ftype;
    int t = (int)o->default_type;
    if (f == FT_Q2_K)
        t = m->n_gqa >= 4 ? GT_Q4_K : GT_Q3_K;
    else if (f == FT_Q2_K_S && m->n_gqa >= 4)
        t = GT_Q4_K;
    else if (f == FT_IQ3_XXS) /* (no imatrix in trit: IQ3_S rather than IQ3_XXS) */
        t = m->n_gqa >= 4 ? GT_Q4_K : GT_IQ3_S;
    else if ((f == FT_IQ3_XS || f == FT_IQ3_S) && m->n_gqa >= 4)
        t = GT_Q4_K;
    else if (f == FT_IQ3_M)
        t = GT_Q4_K;
    else if (f == FT_Q3_K_M)
        t = st->i_attention_wv < 2 ? GT_Q5_K : GT_Q4_K;
    else if (f == FT_Q3_K_L)
        t = GT_Q5_K;
    else if ((f == FT_IQ4_NL || f == FT_IQ4_XS) && m->n_gqa >= 4)
        t = GT_Q5_K;
    else if ((f == FT_Q4_K_M || f == FT_Q5_K_M) &&
             use_more_bits(st->i_attention_wv, m->n_attention_wv))
        t = GT_Q6_K;
    else if (f == FT_Q4_K_S && st->i_attention_wv < 4)
        t = GT_Q5_K;
    /* 70B: attn_v is 8x smaller than attn_q (8 heads share it), more bits are cheap */
    if (m->is_70b && (t == GT_Q3_K || t == GT_Q4_K)) t = GT_Q5_K;
    if (m->n_expert == 8) t = TRIT_Q8_0; /* 8-expert models: ~128 MB for Q8_0 */
    st->i_attention_wv++;
    return t;
}

/* attn_k: Q8_0 for 8-expert models; the IQ3 mixes step it down. */
static int mix_attn_k(const trit_qmodel *m, const trit_qopts *o) {
    const int f = o->ftype;
    int t = (int)o->default_type;
    if (m->n_expert == 8)
        t = TRIT_Q8_0;
    else if (f == FT_IQ3_XS)
        t = GT_IQ3_XXS;
    else if (f == FT_IQ3_XXS)
        t = GT_IQ2_S;
    return t;
}

/* attn_q: the IQ3 mixes step it down. */
static int mix_attn_q(const trit_qopts *o) {
    const int f = o->ftype;
    int t = (int)o->default_type;
    if (f == FT_IQ3_XS)
        t = GT_IQ3_XXS;
    else if (f == FT_IQ3_XXS)
        t = GT_IQ2_S;
    return t;
}

/* ffn_down: the first layers and use_more_bits layers. */
static int mix_ffn_down(const trit_qmodel *m, const trit_qopts *o, trit_qstate *st,
                        const char *name, trit_err *err) {
    const int f = o->ftype;
    int t = (int)o->default_type;
    const int il = layer_of(m, st->i_ffn_down, name, err), nl = m->n_layer;
    if (il < 0) return -1;
    if (f == FT_Q2_K)
        t = GT_Q3_K;
    else if (f == FT_Q2_K_S) {
        if (il < nl / 8) t = GT_Q4_K;
    } else if (f == FT_IQ3_XXS) /* (no imatrix) */
        t = il < nl / 8 ? GT_Q4_K : GT_Q3_K;
    else if (f == FT_Q3_K_M)
        t = il < nl / 16 ? GT_Q5_K : !m->falcon || use_more_bits(il, nl) ? GT_Q4_K : GT_Q3_K;
    else if (f == FT_IQ3_M && (il < nl / 8 || (m->n_expert == 8 && use_more_bits(il, nl))))
        t = GT_Q4_K;
    else if (f == FT_Q3_K_L)
        t = m->falcon ? GT_Q4_K : GT_Q5_K;
    else if (f == FT_Q4_K_M) {
        if (m->falcon)
            t = il < nl / 16 ? GT_Q6_K : use_more_bits(il, nl) ? GT_Q5_K : GT_Q4_K;
        else if (use_more_bits(il, nl))
            t = GT_Q6_K;
    } else if (il < nl / 8 && (f == FT_IQ4_NL || f == FT_IQ4_XS)) /* (no imatrix) */
        t = GT_Q5_K;
    else if (f == FT_Q5_K_M && use_more_bits(il, nl))
        t = GT_Q6_K;
    else if (f == FT_Q4_K_S && !m->falcon && il < nl / 8)
        t = GT_Q5_K;
    /* (the Q4_0/Q5_0 -> Q4_1/Q5_1 guard applies only with an imatrix) */
    st->i_ffn_down++;
    return t;
}

/* attn_output: more bits in the low mixes (Q5_K in most mixes of 8-expert models). */
static int mix_attn_output(const trit_qmodel *m, const trit_qopts *o) {
    const int f = o->ftype;
    int t = (int)o->default_type;
    if (!m->falcon) {
        if (m->n_expert == 8) {
            if (f == FT_Q2_K || f == FT_IQ3_XS || f == FT_IQ3_XXS || f == FT_Q3_K_S ||
                f == FT_Q3_K_M || f == FT_IQ4_NL || f == FT_Q4_K_S || f == FT_Q4_K_M ||
                f == FT_IQ3_S || f == FT_IQ3_M || f == FT_IQ4_XS)
                t = GT_Q5_K;
        } else if (f == FT_Q2_K)
            t = GT_Q3_K;
        else if (f == FT_IQ3_XXS)
            t = GT_IQ3_S;
        else if (f == FT_Q3_K_M || f == FT_IQ3_M)
            t = GT_Q4_K;
        else if (f == FT_Q3_K_L)
            t = GT_Q5_K;
    } else if (f == FT_Q3_K_L)
        t = GT_Q4_K;
    return t;
}

/* A fused attn_qkv: one step up in the _M/_L mixes. */
static int mix_attn_qkv(const trit_qopts *o) {
    const int f = o->ftype;
    int t = (int)o->default_type;
    if (f == FT_Q3_K_M || f == FT_Q3_K_L || f == FT_IQ3_M)
        t = GT_Q4_K;
    else if (f == FT_Q4_K_M)
        t = GT_Q5_K;
    else if (f == FT_Q5_K_M)
        t = GT_Q6_K;
    return t;
}

/* ffn_gate / ffn_up: IQ3_XS: the middle layers IQ3_XXS. */
static int mix_ffn_gate_up(const trit_qmodel *m, const trit_qopts *o, trit_qstate *st,
                           const char *name, category cat, trit_err *err) {
    const int f = o->ftype;
    int t = (int)o->default_type;
    int *ctr = cat == CAT_FFN_GATE ? &st->i_ffn_gate : &st->i_ffn_up;
    const int il = layer_of(m, *ctr, name, err), nl = m->n_layer;
    if (il < 0) return -1;
    if (f == FT_IQ3_XS && il >= nl / 8 && il < 7 * nl / 8) t = GT_IQ3_XXS;
    (*ctr)++;
    return t;
}

/* llama_tensor_get_type_impl: the mixes, one rule per category in llama.cpp's order (the
 * output first, then MXFP4_MOE, the embedding, the IQ1/IQ2 mixes, then per category).
 * Each rule starts from the default type. */
static int mix_type(const trit_qmodel *m, const trit_qopts *o, trit_qstate *st, const char *name,
                    const int64_t ne[4], category cat, trit_err *err) {
    const int f = o->ftype;
    if (cat == CAT_OUTPUT || (m->tied_embeddings && cat == CAT_TOKEN_EMBD))
        return mix_output(m, o, ne);
    if (f == FT_MXFP4_MOE) /* expert tensors (3-D) MXFP4, the rest Q8_0 */
        return ne[2] > 1 ? GT_MXFP4 : TRIT_Q8_0;
    if (cat == CAT_TOKEN_EMBD) return mix_token_embd(o);
    if (ft_is_iq2_or_iq1(f)) return mix_iq2_or_iq1(m, o, st, cat);
    if (cat_attn_v(cat)) return mix_attn_v(m, o, st);
    if (cat == CAT_ATTN_K) return mix_attn_k(m, o);
    if (cat == CAT_ATTN_Q) return mix_attn_q(o);
    if (cat == CAT_FFN_DOWN) return mix_ffn_down(m, o, st, name, err);
    if (cat == CAT_ATTN_OUTPUT) return mix_attn_output(m, o);
    if (cat == CAT_ATTN_QKV) return mix_attn_qkv(o);
    if (cat == CAT_FFN_GATE || cat == CAT_FFN_UP) return mix_ffn_gate_up(m, o, st, name, cat, err);
    return (int)o->default_type;
}

int trit_quant_choose_type(const trit_qmodel *m, const trit_qopts *o, trit_qstate *st,
                           const char *name, int n_dims, const int64_t ne[4], uint32_t cur_type,
                           trit_err *err) {
    /* tensors llama-quantize never converts keep their type */
    if (!allows_quantization(o, name, n_dims)) return (int)cur_type;
    const category cat = tensor_category(name);
    /* explicit embedding / output types win outright (no fallback check, as there) */
    if (o->token_embedding_type >= 0 && cat == CAT_TOKEN_EMBD) return o->token_embedding_type;
    if (o->output_tensor_type >= 0 && cat == CAT_OUTPUT) return o->output_tensor_type;
    /* float ftypes (F32/F16/BF16): every such tensor gets the default type */
    if (!is_quantized(o->default_type)) return (int)o->default_type;
    int t = (int)o->default_type;
    if (!o->pure) { /* the mix, unless --pure */
        t = mix_type(m, o, st, name, ne, cat, err);
        if (t < 0) return -1;
    }
    return fallback(st, name, ne[0], t, err);
}
