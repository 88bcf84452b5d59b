/* train — BitNet b1.58 quantization-aware training of a small `bitnet`-arch transformer on
 * CPU, a byte-level BPE vocabulary trainer, and export to GGUF.
 *
 * Contract:
 *  - The function trained is the one trit's engine (src/engine/engine.c, arch bitnet) and
 *    llama.cpp's bitnet graph compute at inference: per layer
 *      h  = x + Wo · aq(subnorm_a(attn(rope(Wq·aq(n)), rope(Wk·aq(n)), Wv·aq(n))))
 *      x' = h + Wd · aq(subnorm_f(silu(Wg·aq(m)) * (Wu·aq(m))))
 *    with n = rmsnorm(x)·attn_norm, m = rmsnorm(h)·ffn_norm, RoPE NEOX (the bitnet arch's
 *    mode), causal softmax attention with scale 1/sqrt(head_dim), then
 *    logits = token_embd · (rmsnorm(x_L)·output_norm) (output tied to the embedding).
 *  - Weights: every block matrix is held in fp32 ("latent") and used in the forward pass as
 *    q(W) = round(clip(W / s, -1, 1)) · s, s = mean|W| over the tensor rounded to fp16 (so
 *    TQ2_0 / TQ1_0 / I2_S hold q(W) exactly); the gradient passes straight through (STE).
 *  - Activations: aq(x) rounds each block of 256 values of a row (a whole row when shorter)
 *    to int8 with scale absmax/127 — per-token absmax for rows of <= 256 values, and the
 *    block layout of ggml's Q8_K, which is what the engine quantizes activations to before a
 *    ternary dot product. STE in the backward pass.
 *  - Determinism: the same corpus, options, seed and thread count give the same bytes
 *    (checkpoints, model, loss curve apart from its timing fields). Threads split outputs,
 *    never a sum, so in fact the thread count does not change the numbers either.
 *  - Batches: window b of step s starts at a position drawn from splitmix64(seed, s, b), so a
 *    resumed run draws exactly the batches the uninterrupted run would have.
 *  - Held-out loss: computed exactly as `trit ppl` / llama-perplexity chunk the text (see
 *    parity/ppl.h): chunks of n_ctx tokens, first token replaced by BOS, second half scored.
 * Depends on base, gguf, quant, tokenizer. */
#ifndef TRIT_TRAIN_H
#define TRIT_TRAIN_H

#include "base/base.h"
#include "gguf/gguf.h"

#include <stdio.h>

/* ---- model shape ---- */
typedef struct trit_train_config {
    int n_vocab, n_embd, n_layer, n_head, n_ff, n_ctx;
    float rope_freq_base, rms_eps;
    bool qat; /* false: plain fp32 (gradient checks); true: ternary weights + int8 acts */
} trit_train_config;

/* Parameters and their gradients share one layout: one flat float array, tensors in the
 * order of trit_train_tensors(). */
typedef struct trit_train_params {
    float *tok_embd;                         /* [V, E] */
    float **attn_norm, **wq, **wk, **wv;     /* per layer: [E]; [E, E] x3 (out, in) */
    float **wo, **attn_sub_norm, **ffn_norm; /* [E, E]; [E]; [E] */
    float **w_gate, **w_up, **w_down;        /* [F, E], [F, E], [E, F] */
    float **ffn_sub_norm;                    /* [F] */
    float *output_norm;                      /* [E] */
} trit_train_params;

typedef struct trit_train_model trit_train_model;

/* One tensor of the model: GGUF name, shape (ne0 = row length), whether it is a ternary
 * block matrix, and its offset in the flat parameter array. */
typedef struct trit_train_tensor {
    char name[48];
    int64_t ne0, ne1;
    bool ternary;
    size_t offset;
} trit_train_tensor;

trit_train_model *trit_train_model_new(const trit_train_config *cfg, uint64_t seed);
void trit_train_model_free(trit_train_model *m);
const trit_train_config *trit_train_model_config(const trit_train_model *m);
size_t trit_train_n_params(const trit_train_model *m);
float *trit_train_param_data(trit_train_model *m); /* flat, n_params floats */
float *trit_train_grad_data(trit_train_model *m);  /* flat, n_params floats */
size_t trit_train_n_tensors(const trit_train_model *m);
const trit_train_tensor *trit_train_tensor_at(const trit_train_model *m, size_t i);

/* Forward B sequences of T tokens (T <= n_ctx) and return the mean cross-entropy of
 * targets[b,t] (-1 = not scored). tokens, targets: [B, T]. pool may be NULL (one thread).
 * When grads is true, also the backward pass: gradients (zeroed first) of that mean. */
double trit_train_step_loss(trit_train_model *m, trit_pool *pool, const int32_t *tokens,
                            const int32_t *targets, int B, int T, bool grads);
/* The same forward pass, writing each position's -log p(target) into nll[B*T] (0 where the
 * target is -1): the held-out evaluation. */
void trit_train_forward_nll(trit_train_model *m, trit_pool *pool, const int32_t *tokens,
                            const int32_t *targets, int B, int T, float *nll);

/* ---- optimizer: AdamW (decoupled weight decay on the 2-D matrices only) ---- */
typedef struct trit_adamw {
    float lr, beta1, beta2, eps, weight_decay;
} trit_adamw;
/* One update with learning rate lr; m, v: n_params each; t = 1-based step. */
void trit_adamw_update(trit_train_model *m, const trit_adamw *o, float lr, float *mom, float *var,
                       long t);
/* Scale gradients so their global L2 norm is at most max_norm (no-op when <= 0); returns
 * the norm before clipping. */
double trit_clip_grad(trit_train_model *m, float max_norm);
/* Warm-up (linear from 0) then cosine decay to min_ratio * lr_max at total_steps. */
float trit_lr_at(long step, long warmup, long total_steps, float lr_max, float min_ratio);

/* ---- ops (exposed for the unit tests' finite-difference checks) ----
 * All row-major; N = rows (tokens). Backward functions accumulate (+=) into dx/dw. */
void trit_t_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int N, int C,
                        float eps);
void trit_t_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
                        const float *rstd, int N, int C);
void trit_t_matmul_fwd(trit_pool *pool, float *y, const float *x, const float *w, int N, int I,
                       int O);
void trit_t_matmul_bwd(trit_pool *pool, float *dx, float *dw, const float *dy, const float *x,
                       const float *w, int N, int I, int O);
void trit_t_rope_fwd(float *x, int N, int T, int n_head, int head_dim, float freq_base);
void trit_t_rope_bwd(float *dx, int N, int T, int n_head, int head_dim, float freq_base);
void trit_t_attention_fwd(trit_pool *pool, float *out, float *att, const float *q, const float *k,
                          const float *v, int B, int T, int n_head, int head_dim);
void trit_t_attention_bwd(trit_pool *pool, float *dq, float *dk, float *dv, float *datt,
                          const float *dout, const float *att, const float *q, const float *k,
                          const float *v, int B, int T, int n_head, int head_dim);
void trit_t_swiglu_fwd(float *h, const float *g, const float *u, size_t n);
void trit_t_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u,
                       size_t n);
/* The matmul kernel: C[a, b] (+)= A[a, :] . B[b, :] over K, rows a0..a1 of C, nb columns,
 * C's row stride ldc. _ref is the scalar twin, _avx2 the AVX2+FMA kernel (same partial-sum
 * layout; differs from _ref only by FMA rounding). TRIT_TRAIN_SCALAR=1 forces _ref. */
void trit_t_nt_ref(float *C, size_t ldc, const float *A, const float *B, int a0, int a1, int nb,
                   int K, bool acc);
void trit_t_nt_avx2(float *C, size_t ldc, const float *A, const float *B, int a0, int a1, int nb,
                    int K, bool acc);
/* Fake quantizers (in place). */
void trit_t_act_quant(float *x, int N, int C);

/* ---- export ---- */
/* Write a GGUF (arch bitnet) with the block matrices in wtype (TRIT_TQ2_0, TRIT_TQ1_0 or
 * TRIT_I2_S), token_embd F16, norms F32, and every tokenizer.* KV of vocab.
 * bitnet.context_length = context_length (0: the training context n_ctx); a larger value
 * lets servers accept longer prompts, positions past n_ctx being RoPE extrapolation. */
int trit_train_export(trit_train_model *m, const gguf_file *vocab, uint32_t wtype,
                      int context_length, const char *name, const char *path, trit_err *err);

/* ---- checkpoints: params, AdamW moments, step; 0600, tmp + fsync + rename + fsync(dir) ---- */
int trit_ckpt_save(const char *path, trit_train_model *m, const float *mom, const float *var,
                   long step, uint64_t seed, trit_err *err);
/* Loads into m (whose config must match the file's) and mom/var; sets *step. */
int trit_ckpt_load(const char *path, trit_train_model *m, float *mom, float *var, long *step,
                   uint64_t *seed, trit_err *err);

/* ---- byte-level BPE vocabulary ----
 * Learns merges from text (GPT-2 byte-to-unicode alphabet, words split by an ASCII reading of
 * the GPT-2 pre-tokenizer regex) until the vocabulary has n_vocab entries including the 256
 * byte tokens and the specials <s> (BOS) and </s> (EOS), which come last. Ties between pair
 * counts go to the smallest (left, right) ids, so the result is deterministic. Writes a
 * vocabulary-only GGUF: tokenizer.ggml.{model="gpt2", pre="gpt-2", tokens, token_type,
 * merges, bos_token_id, eos_token_id, add_bos_token=true, add_eos_token=false}. */
int trit_bpe_train(const char *text, size_t len, int n_vocab, const char *out_path, trit_err *err);

/* ---- the training loop (trit train) ---- */
typedef struct trit_train_opts {
    const char *train_path, *heldout_path, *vocab_path, *out_path;
    const char *ckpt_path;  /* NULL: <out>.ckpt */
    const char *curve_path; /* NULL: <out>.curve.jsonl (+ .svg) */
    trit_train_config cfg;
    int vocab_size;     /* when training the vocabulary */
    int context_length; /* GGUF metadata (0: seq); see trit_train_export */
    int batch, seq;
    long steps, warmup;
    float lr, min_lr_ratio, weight_decay, clip;
    long ckpt_every, eval_every;
    int eval_chunks; /* held-out chunks evaluated during training (0: all) */
    int threads;
    uint64_t seed;
    uint32_t wtype;
    FILE *progress; /* progress lines (stderr) */
} trit_train_opts;

void trit_train_default_opts(trit_train_opts *o);
int trit_train_run(const trit_train_opts *o, trit_err *err);

#endif
