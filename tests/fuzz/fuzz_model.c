/* fuzz_model — libFuzzer target for the model binding over GGUFs of every supported type.
 * The input is a recipe, so small inputs reach deep code: byte 0 picks the architecture,
 * bytes 1-2 the type of the block matrices and of token_embd (every supported type: f32 f16
 * bf16 q8_0 tq1_0 tq2_0 i2_s), byte 3 flags that break one hparam or add a refused tensor, byte
 * 4 the vocabulary size; the rest fills the tensor data (repeated), and, after a 0xFF 0xFF
 * marker, (offset, byte) pairs patch the written file. The GGUF goes through the real writer to
 * /dev/shm, then trit_model_load; on success every weight's first and last rows are
 * dequantized. Nothing may crash or leak, and every refusal must say why. */
#include "gguf/gguf.h"
#include "model/model.h"
#include "quant/quant.h"
#include "recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint32_t TYPES[] = {TRIT_F32,   TRIT_F16,   TRIT_BF16, TRIT_Q8_0,
                                 TRIT_TQ1_0, TRIT_TQ2_0, TRIT_I2_S};

static volatile float sink;

static void touch(const trit_weight *wt, bool *i2s_done) {
    if (!wt->data) return;
    int64_t ne0 = wt->ne[0], rows = wt->ne[1] > 0 ? wt->ne[1] : 1;
    float *y = malloc((size_t)ne0 * sizeof *y);
    size_t row = trit_tensor_nbytes(wt->type, ne0, 1);
    /* i2_s rows are not byte-separable (one scale per tensor): the whole tensor, once per
     * input (the others take the same path; it was most of the run time) */
    if (wt->type == TRIT_I2_S) {
        if (*i2s_done) {
            free(y);
            return;
        }
        *i2s_done = true;
        float *all = malloc((size_t)(ne0 * rows) * sizeof *all);
        if (trit_dequantize_tensor(wt->type, wt->data, all, ne0, rows) == 0) sink += all[0];
        free(all);
    } else if (row) {
        if (trit_dequantize_row(wt->type, wt->data, y, ne0) == 0) sink += y[0];
        if (trit_dequantize_row(wt->type, (const uint8_t *)wt->data + (rows - 1) * row, y, ne0) ==
            0)
            sink += y[ne0 - 1];
    }
    free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    bool bitnet = data[0] & 1;
    uint32_t tm = TYPES[data[1] % TRIT_ARRAY_LEN(TYPES)];
    uint32_t te = TYPES[data[2] % TRIT_ARRAY_LEN(TYPES)];
    uint8_t flags = data[3];
    int n_vocab = 2 + data[4] % 3;
    if (!bitnet && tm == TRIT_I2_S) tm = TRIT_TQ2_0; /* as mkmodel: i2_s is bitnet's */
    const uint8_t *rest = data + 5;
    size_t nrest = size - 5, npatch;
    const uint8_t *patch = split_patch(rest, &nrest, &npatch);
    data_src d = {rest, nrest};
    /* the smallest n_embd every chosen type can hold: their block sizes are powers of two */
    int64_t blk = 32;
    const trit_type_info *a = trit_type_get(tm), *b = trit_type_get(te);
    if (a && a->blck > blk) blk = a->blck;
    if (b && b->blck > blk) blk = b->blck;
    if ((tm == TRIT_I2_S || te == TRIT_I2_S) && blk < 128) blk = 128; /* QK_I2_S; blck says 1 */
    int n_embd = (int)blk, n_ff = (int)blk, n_head = 2, n_head_kv = flags & 1 ? 1 : 2;
    const char *arch = bitnet ? "bitnet" : "llama";
    char k[128];
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", arch);
    snprintf(k, sizeof k, "%s.embedding_length", arch);
    gguf_w_u32(w, k, (uint32_t)n_embd);
    snprintf(k, sizeof k, "%s.block_count", arch);
    gguf_w_u32(w, k, 1);
    snprintf(k, sizeof k, "%s.context_length", arch);
    gguf_w_u32(w, k, 64);
    snprintf(k, sizeof k, "%s.feed_forward_length", arch);
    if (!(flags & 2)) gguf_w_u32(w, k, (uint32_t)n_ff); /* flag 2: missing n_ff */
    snprintf(k, sizeof k, "%s.attention.head_count", arch);
    gguf_w_u32(w, k, (uint32_t)n_head);
    snprintf(k, sizeof k, "%s.attention.head_count_kv", arch);
    gguf_w_u32(w, k, flags & 4 ? 3u : (uint32_t)n_head_kv); /* flag 4: not a divisor */
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
    gguf_w_f32(w, k, 1e-5f);
    snprintf(k, sizeof k, "%s.vocab_size", arch);
    gguf_w_u32(w, k, (uint32_t)(n_vocab + (flags & 8 ? 1 : 0))); /* flag 8: vocab mismatch */
    if (flags & 16) {
        snprintf(k, sizeof k, "%s.rope.dimension_count", arch);
        gguf_w_u32(w, k, 6);
    }
    int hd = n_embd / n_head, nq = hd * n_head, nkv = hd * n_head_kv;
    void *keep[32];
    int nkeep = 0;
    add(w, "token_embd.weight", te, n_embd, n_vocab, &d, keep, &nkeep);
    add(w, "output_norm.weight", TRIT_F32, n_embd, 1, &d, keep, &nkeep);
    if (!bitnet && (flags & 32)) add(w, "output.weight", tm, n_embd, n_vocab, &d, keep, &nkeep);
    add(w, "blk.0.attn_norm.weight", TRIT_F32, n_embd, 1, &d, keep, &nkeep);
    add(w, "blk.0.attn_q.weight", tm, n_embd, nq, &d, keep, &nkeep);
    add(w, "blk.0.attn_k.weight", tm, n_embd, nkv, &d, keep, &nkeep);
    add(w, "blk.0.attn_v.weight", tm, n_embd, nkv, &d, keep, &nkeep);
    add(w, "blk.0.attn_output.weight", tm, nq, n_embd, &d, keep, &nkeep);
    add(w, "blk.0.ffn_norm.weight", TRIT_F32, n_embd, 1, &d, keep, &nkeep);
    add(w, "blk.0.ffn_gate.weight", tm, n_embd, n_ff, &d, keep, &nkeep);
    add(w, "blk.0.ffn_up.weight", tm, n_embd, n_ff, &d, keep, &nkeep);
    add(w, "blk.0.ffn_down.weight", tm, n_ff, n_embd, &d, keep, &nkeep);
    if (bitnet && !(flags & 64)) { /* flag 64: bitnet without its sub-norms */
        add(w, "blk.0.attn_sub_norm.weight", TRIT_F32, n_embd, 1, &d, keep, &nkeep);
        add(w, "blk.0.ffn_sub_norm.weight", TRIT_F32, n_ff, 1, &d, keep, &nkeep);
    }
    if (flags & 128) add(w, "blk.0.attn_q.bias", TRIT_F32, nq, 1, &d, keep, &nkeep);
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/trit-fuzz-model-%d.gguf", (int)getpid());
    trit_err err = {0};
    int wrc = gguf_writer_write(w, path, NULL, NULL, &err);
    gguf_writer_free(w);
    for (int i = 0; i < nkeep; i++) free(keep[i]);
    if (wrc) { /* the writer must accept what the recipe builds */
        fprintf(stderr, "writer: %s\n", err.msg);
        abort();
    }
    apply_patch(path, patch, npatch);
    memset(&err, 0, sizeof err);
    trit_model *m = trit_model_load(path, &err);
    unlink(path);
    if (!m) {
        if (!err.msg[0]) abort(); /* every refusal must say why */
        return 0;
    }
    bool i2s_done = false;
    touch(&m->tok_embd, &i2s_done);
    touch(&m->output, &i2s_done);
    for (int i = 0; i < m->hp.n_layer; i++) {
        const trit_layer *L = &m->layers[i];
        const trit_weight *ws[] = {&L->wq,       &L->wk,     &L->wv,      &L->wo,
                                   &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (size_t j = 0; j < TRIT_ARRAY_LEN(ws); j++) touch(ws[j], &i2s_done);
    }
    trit_buf desc = {0};
    trit_model_describe(m, &desc);
    trit_buf_free(&desc);
    trit_model_free(m);
    return 0;
}
