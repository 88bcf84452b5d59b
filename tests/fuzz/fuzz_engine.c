/* fuzz_engine — libFuzzer target for the forward pass: a model built from the input (shapes,
 * types, hyper-parameters and weights), loaded through the validating GGUF reader and the
 * model binding, then a prefill and a few decode steps on a token stream from the input.
 * Input (a recipe, so small inputs reach the engine; tests/fuzz/corpus/engine/ has seeds):
 *   byte 0  model flags: bit 0 bitnet (else llama), 1 "<arch>.ffn_activation" = relu2,
 *           2 "<name>.scale" tensors, 3 a separate output.weight (llama), 4 key_length =
 *           2 x n_embd / n_head (llama), bits 5-6 n_head 1/2/4/8, bit 7 n_head_kv 1
 *   byte 1  block weight type (any ggml id; one trit does not compute with becomes tq2_0)
 *   byte 2  token_embd (and output) type, likewise
 *   byte 3  shape: bits 0-1 n_embd = blk x (1..4) (at most 256), bit 2 n_ff = 2 x that,
 *           bit 3 two layers, bits 4-7 n_vocab - 2
 *   byte 4  run flags: bit 0 f32 KV cache, 1 fast numerics, 2 two threads, 3 the batched
 *           path (two identical sequences in one trit_batch_eval, whose logits must be
 *           bit-identical; any NaN equals any NaN: its sign and payload carry no
 *           meaning), 4 draft-step numerics (batched path), 5 logits of every token,
 *           6 n_ctx 8 (prompts run into a full context), 7 rms eps 0 and rope base 1
 *   byte 5  bits 0-3 prompt length - 1, bits 4-5 decode steps
 *   then one byte per prompt token (0xFF: id -1; else byte % (n_vocab + 1), so ids one past
 *   the vocabulary occur: the engine must refuse them with a message), then tensor bytes, and
 *   after a 0xFF 0xFF marker (offset, byte) patches of the written file (recipe.h).
 * The work per input is capped (MAX_WORK: multiply-adds of the whole run) so one execution
 * stays fast; n_ctx is at most 32 whatever the file says. Nothing may crash, leak or trip
 * UBSan; every refusal (load, context, eval) must say why. */
#include "engine/engine.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "quant/quant.h"
#include "recipe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORK (16u << 20) /* multiply-adds per input, all tokens of the run */

/* FUZZ_ENGINE_VERBOSE=1: say on stderr what each input reached (to check the seeds). */
static void say(const char *what, const trit_err *err) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("FUZZ_ENGINE_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "fuzz_engine: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
}

typedef struct recipe {
    bool bitnet, relu2, scales, out_sep, key_len;
    int n_head, n_head_kv, n_embd, n_ff, n_layer, n_vocab, head_dim;
    uint32_t tm, te;
    bool eps0;
} recipe;

/* A weight type the loader computes with, from any byte: ggml ids trit does not support (and
 * the activation-only q8_k/q8_1) become tq2_0; i2_s only for bitnet, as mkmodel. */
static uint32_t pick_type(uint8_t b, bool bitnet) {
    uint32_t t = b % (TRIT_I2_S + 1);
    const trit_type_info *ti = trit_type_get(t);
    if (!ti || !ti->supported || t == TRIT_Q8_K || t == TRIT_Q8_1) return TRIT_TQ2_0;
    if (t == TRIT_I2_S && !bitnet) return TRIT_TQ2_0;
    return t;
}

/* The block size every row length must be a multiple of (i2_s: QK_I2_S, its blck says 1). */
static int row_block(uint32_t t) {
    if (t == TRIT_I2_S) return 128;
    const trit_type_info *ti = trit_type_get(t);
    return ti && ti->blck > 32 ? (int)ti->blck : 32;
}

static recipe read_recipe(const uint8_t *d) {
    recipe r = {0};
    r.bitnet = d[0] & 1;
    r.relu2 = d[0] & 2;
    r.scales = d[0] & 4;
    r.out_sep = !r.bitnet && (d[0] & 8);
    r.key_len = !r.bitnet && (d[0] & 16);
    r.n_head = 1 << (d[0] >> 5 & 3);
    r.n_head_kv = d[0] & 128 ? 1 : r.n_head;
    r.tm = pick_type(d[1], r.bitnet);
    r.te = pick_type(d[2], r.bitnet);
    if (r.te == TRIT_I2_S) r.te = TRIT_F16; /* the loader refuses i2_s embeddings */
    int blk = row_block(r.tm) > row_block(r.te) ? row_block(r.tm) : row_block(r.te);
    r.n_embd = blk * (1 + (d[3] & 3));
    while (r.n_embd > 256 && r.n_embd > blk) r.n_embd -= blk;
    r.n_ff = r.n_embd * (d[3] & 4 ? 2 : 1);
    r.n_layer = d[3] & 8 ? 2 : 1;
    r.n_vocab = 2 + (d[3] >> 4);
    r.head_dim = r.n_embd / r.n_head * (r.key_len ? 2 : 1);
    r.eps0 = d[4] & 128;
    return r;
}

static void kv_u32(gguf_writer *w, const char *arch, const char *key, uint32_t v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    gguf_w_u32(w, k, v);
}

static void kv_f32(gguf_writer *w, const char *arch, const char *key, float v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    gguf_w_f32(w, k, v);
}

/* A block weight, and its "<name>.scale" twin when the recipe asks for them. */
static void add_w(gguf_writer *w, const recipe *r, const char *name, int64_t ne0, int64_t ne1,
                  const data_src *d, void **keep, int *nkeep) {
    add(w, name, r->tm, ne0, ne1, d, keep, nkeep);
    if (!r->scales) return;
    char s[96];
    snprintf(s, sizeof s, "%.*s.scale", (int)(strlen(name) - 7), name);
    add(w, s, TRIT_F32, 1, 1, d, keep, nkeep);
}

static void add_layer(gguf_writer *w, const recipe *r, int l, const data_src *d, void **keep,
                      int *nkeep) {
    const int n = r->n_embd, nq = r->head_dim * r->n_head, nkv = r->head_dim * r->n_head_kv;
    char b[96];
#define BLK(s) (snprintf(b, sizeof b, "blk.%d.%s.weight", l, s), b)
    add(w, BLK("attn_norm"), TRIT_F32, n, 1, d, keep, nkeep);
    add_w(w, r, BLK("attn_q"), n, nq, d, keep, nkeep);
    add_w(w, r, BLK("attn_k"), n, nkv, d, keep, nkeep);
    add_w(w, r, BLK("attn_v"), n, nkv, d, keep, nkeep);
    add_w(w, r, BLK("attn_output"), nq, n, d, keep, nkeep);
    add(w, BLK("ffn_norm"), TRIT_F32, n, 1, d, keep, nkeep);
    add_w(w, r, BLK("ffn_gate"), n, r->n_ff, d, keep, nkeep);
    add_w(w, r, BLK("ffn_up"), n, r->n_ff, d, keep, nkeep);
    add_w(w, r, BLK("ffn_down"), r->n_ff, n, d, keep, nkeep);
    if (r->bitnet) {
        add(w, BLK("attn_sub_norm"), TRIT_F32, n, 1, d, keep, nkeep);
        add(w, BLK("ffn_sub_norm"), TRIT_F32, r->n_ff, 1, d, keep, nkeep);
    }
#undef BLK
}

/* The recipe's GGUF at path (the writer must accept it: anything else is a harness bug). */
static void write_model(const recipe *r, const data_src *d, const char *path) {
    const char *arch = r->bitnet ? "bitnet" : "llama";
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", arch);
    kv_u32(w, arch, "embedding_length", (uint32_t)r->n_embd);
    kv_u32(w, arch, "block_count", (uint32_t)r->n_layer);
    kv_u32(w, arch, "context_length", 64);
    kv_u32(w, arch, "feed_forward_length", (uint32_t)r->n_ff);
    kv_u32(w, arch, "attention.head_count", (uint32_t)r->n_head);
    kv_u32(w, arch, "attention.head_count_kv", (uint32_t)r->n_head_kv);
    kv_f32(w, arch, "attention.layer_norm_rms_epsilon", r->eps0 ? 0.0f : 1e-5f);
    kv_f32(w, arch, "rope.freq_base", r->eps0 ? 1.0f : 10000.0f);
    kv_u32(w, arch, "vocab_size", (uint32_t)r->n_vocab);
    if (r->key_len) {
        kv_u32(w, arch, "attention.key_length", (uint32_t)r->head_dim);
        kv_u32(w, arch, "attention.value_length", (uint32_t)r->head_dim);
        kv_u32(w, arch, "rope.dimension_count", (uint32_t)r->head_dim);
    }
    if (r->relu2) {
        char k[128];
        snprintf(k, sizeof k, "%s.ffn_activation", arch);
        gguf_w_str(w, k, "relu2");
    }
    void *keep[96];
    int nkeep = 0;
    add(w, "token_embd.weight", r->te, r->n_embd, r->n_vocab, d, keep, &nkeep);
    add(w, "output_norm.weight", TRIT_F32, r->n_embd, 1, d, keep, &nkeep);
    if (r->out_sep) add(w, "output.weight", r->te, r->n_embd, r->n_vocab, d, keep, &nkeep);
    for (int l = 0; l < r->n_layer; l++) add_layer(w, r, l, d, keep, &nkeep);
    trit_err err = {0};
    int rc = gguf_writer_write(w, path, NULL, NULL, &err);
    gguf_writer_free(w);
    for (int i = 0; i < nkeep; i++) free(keep[i]);
    if (rc) {
        fprintf(stderr, "writer: %s\n", err.msg);
        abort();
    }
}

/* Multiply-adds of one token through the loaded model (weights, attention over n_ctx). */
static uint64_t work_per_token(const trit_hparams *hp, int n_ctx) {
    const uint64_t n = (uint64_t)hp->n_embd, hd = (uint64_t)hp->head_dim;
    const uint64_t nq = hd * (uint64_t)hp->n_head, nkv = hd * (uint64_t)hp->n_head_kv;
    const uint64_t layer =
        n * (nq + 2 * nkv) + nq * n + 3 * n * (uint64_t)hp->n_ff + 2 * (uint64_t)n_ctx * nq;
    return (uint64_t)hp->n_layer * layer + (uint64_t)hp->n_vocab * n;
}

typedef struct twin {
    int n_vocab;
    float *last[2]; /* the last logits row handed for each entry */
} twin;

static void on_logits(void *ud, int entry, int tok, const float *logits) {
    twin *t = ud;
    memcpy(t->last[entry], logits, (size_t)t->n_vocab * sizeof *logits);
}

/* The batched path: two sequences given the same tokens in one trit_batch_eval must get
 * bit-identical logits (batch invariance, engine.h). Returns the next token, or -1 when the
 * engine refused (with a message). */
static int32_t batch_step(trit_ctx *c, trit_seq *s[2], const int32_t *tok, int n, int pos,
                          bool steps, twin *tw) {
    trit_batch_entry e[2];
    for (int i = 0; i < 2; i++)
        e[i] = (trit_batch_entry){.seq = s[i],
                                  .tokens = tok,
                                  .n_tokens = n,
                                  .pos = pos,
                                  .out = TRIT_OUT_LAST,
                                  .steps = steps};
    trit_err err = {0};
    if (trit_batch_eval(c, e, 2, on_logits, tw, &err)) {
        say("batch refused", &err);
        if (!err.msg[0]) abort();
        return -1;
    }
    for (int v = 0; v < tw->n_vocab; v++) {
        const float a = tw->last[0][v], b = tw->last[1][v];
        if (memcmp(&a, &b, sizeof a) && !(isnan(a) && isnan(b))) {
            fprintf(stderr, "batch invariance: identical entries, logit %d: %a vs %a\n", v,
                    (double)a, (double)b);
            abort();
        }
    }
    return trit_argmax(tw->last[0], tw->n_vocab);
}

static void run_batched(trit_ctx *c, const int32_t *prompt, int n_prompt, int n_decode,
                        bool steps) {
    const int nb = trit_ctx_n_batch(c), V = trit_ctx_model(c)->hp.n_vocab;
    twin tw = {V, {malloc((size_t)V * sizeof(float)), malloc((size_t)V * sizeof(float))}};
    trit_seq *s[2] = {trit_seq_new(c), trit_seq_new(c)};
    int32_t next = 0;
    for (int p = 0; p < n_prompt && next >= 0; p += nb) /* chunked as trit_eval chunks */
        next = batch_step(c, s, prompt + p, TRIT_MIN(nb, n_prompt - p), p, steps, &tw);
    for (int i = 0; i < n_decode && next >= 0; i++)
        next = batch_step(c, s, &next, 1, trit_seq_n_past(s[0]), steps, &tw);
    trit_seq_free(s[0]);
    trit_seq_free(s[1]);
    free(tw.last[0]);
    free(tw.last[1]);
}

static void run_eval(trit_ctx *c, const int32_t *prompt, int n_prompt, int n_decode, bool all) {
    const int V = trit_ctx_model(c)->hp.n_vocab;
    trit_err err = {0};
    if (trit_eval(c, prompt, n_prompt, 0, all, &err)) {
        say("prefill refused", &err);
        if (!err.msg[0]) abort();
        return;
    }
    for (int i = 0; i < n_decode; i++) {
        const float *lg = trit_get_logits(c, -1);
        if (!lg) abort(); /* the last token's logits are always kept */
        int32_t id = trit_argmax(lg, V);
        if (trit_eval(c, &id, 1, trit_ctx_n_past(c), false, &err)) {
            say("decode refused", &err);
            if (!err.msg[0]) abort();
            return;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 6) return 0;
    const recipe r = read_recipe(data);
    const uint8_t run = data[4];
    const int n_prompt = 1 + (data[5] & 15), n_decode = data[5] >> 4 & 3;
    if (size < 6 + (size_t)n_prompt) return 0;
    int32_t prompt[16];
    for (int i = 0; i < n_prompt; i++) {
        uint8_t b = data[6 + i];
        prompt[i] = b == 0xFF ? -1 : b % (r.n_vocab + 1);
    }
    const uint8_t *rest = data + 6 + n_prompt;
    size_t nrest = size - 6 - (size_t)n_prompt, npatch;
    const uint8_t *patch = split_patch(rest, &nrest, &npatch);
    data_src d = {rest, nrest};
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/trit-fuzz-engine-%d.gguf", (int)getpid());
    write_model(&r, &d, path);
    apply_patch(path, patch, npatch);
    trit_err err = {0};
    trit_model *m = trit_model_load(path, &err);
    unlink(path);
    if (!m) {
        say("load refused", &err);
        if (!err.msg[0]) abort(); /* every refusal must say why */
        return 0;
    }
    trit_ctx_params p = trit_ctx_default_params();
    p.n_ctx = run & 64 ? 8 : 32;
    p.n_batch = 4; /* prompts of up to 16 tokens run in several chunks */
    p.n_threads = run & 4 ? 2 : 1;
    p.kv_type = run & 1 ? TRIT_F32 : TRIT_F16;
    p.numerics = run & 2 ? TRIT_NUMERICS_FAST : TRIT_NUMERICS_EXACT;
    if (work_per_token(&m->hp, p.n_ctx) * (uint64_t)(n_prompt + n_decode) > MAX_WORK) {
        say("over the work cap", NULL);
        trit_model_free(m); /* a patched file can name more work than one execution may do */
        return 0;
    }
    trit_ctx *c = trit_ctx_new(m, &p, &err);
    if (!c) {
        say("context refused", &err);
        if (!err.msg[0]) abort();
        trit_model_free(m);
        return 0;
    }
    if (run & 8)
        run_batched(c, prompt, n_prompt, n_decode, run & 16);
    else
        run_eval(c, prompt, n_prompt, n_decode, run & 32);
    say("done", NULL);
    trit_ctx_free(c);
    trit_model_free(m);
    return 0;
}
