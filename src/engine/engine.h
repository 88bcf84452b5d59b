/* engine — forward pass, KV caches, batched steps over many sequences, sampler, trace hooks.
 *
 * Contract: a trit_ctx evaluates tokens against a model: trit_eval runs one sequence (the
 * context's own KV cache); trit_batch_eval runs one forward pass over several sequences
 * (trit_seq, a KV cache each), reading every weight once for all their rows.
 * Its graph is llama.cpp's for the same architecture (llama, bitnet), computed with the
 * kernels module, so logits agree with the reference within the ladder thresholds.
 * Not thread-safe per context; several contexts may share one model (read-only) and run
 * concurrently. Trace points use llama.cpp's tensor names ("attn_norm-0", "Qcur-0",
 * "kqv_out-0", "ffn_inp-0", "l_out-0", "result_norm", "result_output", ...).
 * Depends on model, kernels, quant, base. */
#ifndef TRIT_ENGINE_H
#define TRIT_ENGINE_H

#include "base/base.h"
#include "model/model.h"

typedef struct trit_ctx_params {
    int n_ctx;        /* 0 -> min(model n_ctx_train, 4096) */
    int n_threads;    /* <= 0 -> number of CPUs */
    int n_batch;      /* max tokens per prefill chunk; 0 -> 512 */
    uint32_t kv_type; /* TRIT_F16 (default, like llama.cpp), TRIT_F32 */
    int rope_mode;    /* -1: the model's; else force TRIT_ROPE_NORM/NEOX (fault injection) */
    int act;          /* -1: the model's; else force TRIT_ACT_SILU/RELU2 */
    int numerics;     /* TRIT_NUMERICS_EXACT (0, default: bit-identical to ggml) or _FAST */
} trit_ctx_params;

typedef struct trit_ctx trit_ctx;

trit_ctx_params trit_ctx_default_params(void);
trit_ctx *trit_ctx_new(trit_model *m, const trit_ctx_params *p, trit_err *err);
void trit_ctx_free(trit_ctx *c);
int trit_ctx_n_ctx(const trit_ctx *c);
int trit_ctx_n_past(const trit_ctx *c); /* tokens currently in the KV cache */
const trit_model *trit_ctx_model(const trit_ctx *c);

/* Evaluate tokens[0..n) at positions pos..pos+n-1. Cache entries at positions >= pos are
 * discarded first (so pos = 0 restarts the sequence). logits_all: keep logits of every
 * token; else only of the last. Returns 0, or -1 (bad token id, context full...). */
int trit_eval(trit_ctx *c, const int32_t *tokens, int n, int pos, bool logits_all, trit_err *err);
/* Logits (n_vocab floats) of token i of the last trit_eval; i = -1 means the last token.
 * NULL if not kept. */
const float *trit_get_logits(const trit_ctx *c, int i);
void trit_kv_clear(trit_ctx *c);

/* ---- batched steps over many sequences ----
 * A trit_seq is the KV cache of one sequence (n_ctx cells of the context that made it; use it
 * only with that context). trit_batch_eval evaluates several entries in ONE forward pass:
 * every weight matmul runs over the rows of all entries, attention runs per entry against its
 * own cache. Batch invariance: an entry's logits are bit-identical whatever the other entries,
 * their number, their order, and equal to trit_eval of the same tokens on a fresh context with
 * the same thread count, when the caller chunks a prompt as trit_eval does (entries of at
 * most n_batch tokens, starting at multiples of n_batch): an entry of T tokens is summed
 * exactly as a trit_eval chunk of T tokens (F16/F32/BF16 weights in tinyBLAS order for T >= 2
 * rows, ggml_vec_dot order for 1; attention tiled/split by its own T and the pool's threads).
 * steps = true evaluates each token of the entry as if alone (single-token numerics: as T
 * successive one-token trit_evals) — how drafted tokens are verified losslessly. */
typedef struct trit_seq trit_seq;
trit_seq *trit_seq_new(trit_ctx *c);
void trit_seq_free(trit_seq *s);
int trit_seq_n_past(const trit_seq *s);

enum trit_out { TRIT_OUT_NONE = 0, TRIT_OUT_LAST = 1, TRIT_OUT_ALL = 2 };

typedef struct trit_batch_entry {
    trit_seq *seq;         /* a sequence appears at most once per batch */
    const int32_t *tokens; /* n_tokens ids at positions pos .. pos + n_tokens - 1 */
    int n_tokens;          /* 1 .. n_batch of the context */
    int pos;               /* 0 .. seq's n_past; cache cells >= pos are discarded first */
    enum trit_out out;     /* which rows' logits to hand to the callback */
    bool steps;            /* single-token numerics for every token (draft verification) */
    int chunk_rows;        /* 0, or the rows of the prefill chunk whose last n_tokens rows this
                            * entry is (a prompt resumed from cached cells; <= n_batch, and
                            * chunk_rows - n_tokens <= pos): its attention then takes that
                            * chunk's kernel (tiled from 64 rows) */
} trit_batch_entry;

/* Receives the logits (n_vocab floats, valid during the call only) of token `tok` of entry
 * `entry`. Called in entry order, tokens ascending, after the forward pass. */
typedef void (*trit_logits_fn)(void *ud, int entry, int tok, const float *logits);

/* Evaluate n entries in one forward pass; each entry's seq then holds pos + n_tokens tokens.
 * Returns 0, or -1 with err naming the bad entry (nothing evaluated). */
int trit_batch_eval(trit_ctx *c, const trit_batch_entry *e, int n, trit_logits_fn fn, void *ud,
                    trit_err *err);
int trit_ctx_n_batch(const trit_ctx *c);
int trit_ctx_n_threads(const trit_ctx *c);
/* The kernel set this context runs (its numerics applied: "avx512", "avx2", "ref", or a
 * fast set's name), for the identity a backend or server reports. */
const char *trit_ctx_kernels_name(const trit_ctx *c);

/* ---- prefix reuse (a server's prompt cache) ----
 * A prompt of n tokens may start from the first p KV cells of an earlier prompt's prefill
 * (made: that prompt's length; both prefilled cold, in trit_eval's chunks) instead of
 * position 0, and still get every cell and its logits bit for bit as a cold prefill, when
 * every row keeps its numerics class: a row's sums depend on the size T of the entry that
 * computes it only through T == 1 (single-token orders, split-KV attention), T >= 64
 * (tiled attention, head_dim % 16 == 0; an entry of 2..63 rows whose chunk_rows is >= 64
 * takes it too) and, for weights the reference repacks with a group-of-4 gemm (order
 * GROUP4), whether the row is in the entry's whole groups of 4 (r < T - T % 4). Cells of
 * single-token decode steps are not prefill cells: never reuse them. trit_ctx_reuse_exact says
 * whether reusing p cells is exact (the cold chunk holding cell p - 1, as the earlier prompt made
 * it and as the new one would, and the new prompt's rows after p, evaluated from p in
 * trit_ctx_chunk_at's entries with chunk_rows = trit_ctx_chunk_rows, all keep their class);
 * trit_ctx_reuse_len is the largest such p <= common (the tokens both prompts share),
 * p < n (the last prompt token is always evaluated: its logits), 0 when none. The rule is
 * the engine's: a caller never guesses. */
bool trit_ctx_reuse_exact(const trit_ctx *c, int made, int n, int p);
int trit_ctx_reuse_len(const trit_ctx *c, int made, int common, int n);
/* Tokens of the prompt entry that starts at pos (of an n-token prompt): up to the next
 * multiple of n_batch (trit_eval's chunk boundaries), so a prompt resumed at any position
 * keeps every later chunk as a cold prefill forms it. */
int trit_ctx_chunk_at(const trit_ctx *c, int pos, int n);
/* Rows of the cold prefill chunk (of an n-token prompt) that holds position pos: the
 * chunk_rows of a resumed entry. */
int trit_ctx_chunk_rows(const trit_ctx *c, int pos, int n);
/* A sequence's first n cells (K and V, every layer) as one compact block of
 * trit_seq_cells_bytes(c, n) bytes ([K|V][layer][kv head][cell][head_dim] of the KV type);
 * get needs n <= the seq's n_past. set writes the first n cells of such a block of n_block
 * cells into s, whose n_past becomes n (n <= n_block, n <= n_ctx). */
size_t trit_seq_cells_bytes(const trit_ctx *c, int n);
void trit_seq_get_cells(const trit_ctx *c, const trit_seq *s, int n, void *out);
void trit_seq_set_cells(const trit_ctx *c, trit_seq *s, const void *block, int n_block, int n);

/* Trace hook: called after each named tensor is computed, with ne0 = row length and
 * ne1 = rows (tokens) actually computed — the last layer's tail computes only the rows whose
 * logits are wanted, as llama.cpp does. fn == NULL disables. */
typedef void (*trit_trace_fn)(void *ud, const char *name, const float *data, int64_t ne0,
                              int64_t ne1);
void trit_ctx_set_trace(trit_ctx *c, trit_trace_fn fn, void *ud);

/* ---- sampler ---- */
typedef struct trit_sampler_params {
    float temp;  /* <= 0: greedy */
    int top_k;   /* <= 0: off */
    float top_p; /* >= 1: off */
    float min_p; /* <= 0: off */
    uint64_t seed;
} trit_sampler_params;
typedef struct trit_sampler trit_sampler;
trit_sampler_params
trit_sampler_default_params(void); /* temp 0.8, top_k 40, top_p 0.95, min_p 0.05 */
trit_sampler *trit_sampler_new(const trit_sampler_params *p);
int32_t trit_sampler_sample(trit_sampler *s, const float *logits, int n_vocab);
void trit_sampler_free(trit_sampler *s);
/* Greedy: highest logit, ties to the lowest id (llama.cpp's behaviour). */
int32_t trit_argmax(const float *logits, int n);
/* trit_logsumexp and trit_top_k (logprobs, top-k) live in base.h: parity uses them too. */

#endif
