/* backends — one interface to an inference engine, three implementations, used by the parity
 * tools (ladder, trace, ppl, ...):
 *   "trit:MODEL[?opts]"   in-process trit engine (engine.h / tokenizer.h / model.h)
 *   "llama:MODEL[?opts]"  the reference libllama, dlopen'd at run time from trit_ref_dir()
 *   "http:URL"            any OpenAI-compatible server (tokenize via /tokenize, top_logprobs)
 *   "http://URL"          the same (a bare URL means the http backend)
 * Options after '?' are '&'-separated k=v: threads=N, ctx=N (both backends);
 * rope=norm|neox and act=silu|relu2 (trit only: fault injection via trit_ctx_params);
 * fa=auto|on|off (llama only: flash attention); model=, key=, timeout=, cache=on|off (http).
 *
 * Contract: every call either does what it says exactly or fails with a trit_err; a
 * capability a backend does not have (eval/trace over http) fails with TRIT_EUNAVAIL and is
 * never faked. Results are malloc'd and owned by the caller unless said otherwise.
 * A backend is not thread-safe; open two for concurrency. Depends on engine, tokenizer,
 * model, client, base. */
#ifndef TRIT_BACKEND_H
#define TRIT_BACKEND_H

#include "base/base.h"

#include <jansson.h>

typedef struct trit_backend trit_backend;

typedef struct trit_backend_opts {
    int n_threads;       /* <= 0: backend default (trit: all CPUs; llama: all CPUs) */
    int n_ctx;           /* <= 0: min(model n_ctx_train, 4096) */
    int rope_mode;       /* -1: model's; TRIT_ROPE_NORM/NEOX: forced (trit only) */
    int act;             /* -1: model's; TRIT_ACT_SILU/RELU2: forced (trit only) */
    int flash_attn;      /* llama only: 0 llama's default (auto), 1 on, 2 off */
    const char *api_key; /* http only: bearer token (NULL: none; a spec's key= wins); copied */
    double timeout_s;    /* http only: per request (<= 0: 120 s; a spec's timeout= wins) */
} trit_backend_opts;

/* threads/ctx from the environment ($TRIT_THREADS) or 0; rope_mode/act -1. */
trit_backend_opts trit_backend_default_opts(void);

typedef struct trit_backend_info {
    char kind[8];          /* "trit" | "llama" | "http" */
    char spec[512];        /* the spec it was opened with */
    char version[128];     /* trit version, reference version/build, or server's model id */
    char model_path[512];  /* "" for http */
    char model_sha256[65]; /* "" when unknown (http) */
    char model_desc[256];  /* one line: arch, sizes, types */
    int n_vocab;           /* 0 when unknown (http before first call) */
    int n_ctx;             /* context size of the evaluation context; 0 when unknown */
    int n_threads;         /* 0 when unknown */
    char numerics[256];    /* threads, KV type, fault injection overrides, ... */
    char kernels[32];      /* trit: the kernel set ("avx512", ...); "" when unknown */
    bool can_eval, can_trace, can_tokenize;
} trit_backend_info;

/* Parse `spec` and open (load the model / connect). opts may be NULL (defaults); options in
 * the spec override opts. */
trit_backend *trit_backend_open(const char *spec, const trit_backend_opts *opts, trit_err *err);
void trit_backend_close(trit_backend *b);
/* Valid until close. */
const trit_backend_info *trit_backend_describe(trit_backend *b);

/* Text -> ids. add_special: BOS etc. as the vocabulary says; parse_special: control tokens in
 * the text become single ids. *ids malloc'd. */
int trit_backend_tokenize(trit_backend *b, const char *text, bool add_special, bool parse_special,
                          int32_t **ids, size_t *n_ids, trit_err *err);
/* The backend's own chat template applied to one user message, with the generation prompt
 * (text to tokenize with add_special=false, parse_special=true). */
int trit_backend_chat_prompt(trit_backend *b, const char *user, trit_buf *out, trit_err *err);

/* Logits for every position of ids[0..n), evaluated from an empty cache.
 * *logits is malloc'd, n x n_vocab floats row-major; *n_vocab set. */
int trit_backend_eval(trit_backend *b, const int32_t *ids, size_t n, float **logits, int *n_vocab,
                      trit_err *err);
/* Same, streaming: fn is called once per position in order (no n x n_vocab buffer). A
 * non-zero return from fn stops and is returned. */
typedef int (*trit_backend_logits_fn)(void *ud, size_t pos, const float *logits, int n_vocab);
int trit_backend_eval_each(trit_backend *b, const int32_t *ids, size_t n, trit_backend_logits_fn fn,
                           void *ud, trit_err *err);

/* Greedy decode: ids is the prompt; up to max_tokens steps (stops after an end-of-generation
 * token, which is included). Per step: the chosen id and the top-k by logit. top_logit is NaN
 * when the backend only knows logprobs (http). */
#define TRIT_BACKEND_TOPK 10
typedef struct trit_gen_step {
    int32_t id;
    int n_top;
    int32_t top_id[TRIT_BACKEND_TOPK];
    float top_logit[TRIT_BACKEND_TOPK];
    float top_logprob[TRIT_BACKEND_TOPK];
} trit_gen_step;
int trit_backend_generate_greedy(trit_backend *b, const int32_t *ids, size_t n, int max_tokens,
                                 trit_gen_step **steps, size_t *n_steps, trit_err *err);

/* Top-N log-probabilities of the next token after each prefix ids[0..p], p in [from, n):
 * the one distribution every backend can give. The unit of the ladder's rungs 3-4 over HTTP
 * and of perplexity over HTTP.
 *  - in-process (trit:, llama:): from the full logits of one evaluation (eval_each), exact
 *    log-softmax through base.h's trit_logsumexp and top-N through trit_top_k (ties: lower id).
 *  - http: the server is probed once (kept for the backend's life) for how it can score:
 *    "echo": /v1/completions with echo, logprobs N, max_tokens 1 returns every prompt
 *      token's log-probability (trit serve): one request per call;
 *    "forced": servers without echo (llama-server answers "Only no echo is supported"): one
 *      request per position p, prompt = ids[0..p] as token ids, max_tokens 1, temperature 0,
 *      logprobs N, the actual next token forced with logit_bias +100; the server must report
 *      the PRE-sampling (raw) distribution, which llama-server does (docs/parity.md, "Scoring
 *      over HTTP", has the source references) and which the probe verifies by forcing a
 *      non-argmax token and comparing with an unforced reply.
 *    Every reply is checked: the token ids (echoed prompt / forced token), the count of
 *    alternatives, finite non-positive log-probabilities in descending order, ids inside the
 *    vocabulary when the server reports its size, usage.prompt_tokens when reported (a server
 *    that adds a BOS to an id prompt is refused). Any failure (short or malformed logprobs,
 *    wrong id, timeout) is an error naming the URL and the position, never a skipped entry.
 * out[i] describes position from + i; *out is malloc'd (n - from entries). top_n (>= 0) is
 * clamped to TRIT_BACKEND_TOPN_MAX and to what the server allows; the clamped N is in each
 * entry's n_top. TRIT_BACKEND_TOPN_MAX is 20 because trit serve (and OpenAI's chat API)
 * cap top_logprobs at 20; llama-server has no cap. */
#define TRIT_BACKEND_TOPN_MAX 20
typedef struct trit_pos_topn {
    int32_t next_id;     /* ids[p + 1], or -1 at the last position */
    double next_logprob; /* log p(next_id), raw (pre-sampling) distribution; NAN if next_id < 0;
                            -INFINITY when the server reports probability 0 */
    int n_top;           /* entries in top_*, most likely first */
    int32_t top_id[TRIT_BACKEND_TOPN_MAX];
    double top_logprob[TRIT_BACKEND_TOPN_MAX];
} trit_pos_topn;
int trit_backend_score(trit_backend *b, const int32_t *ids, size_t n, size_t from, int top_n,
                       trit_pos_topn **out, trit_err *err);
/* How the backend scores: "logits" (in-process), "echo" or "forced" (http, after the first
 * trit_backend_score call probed the server), "unprobed" (http before it). */
const char *trit_backend_score_mode(trit_backend *b);
/* Progress of long calls (trit_backend_score over http, one request per position): fn is
 * called after each request with positions done and total of the current call. NULL: none. */
typedef void (*trit_backend_progress_fn)(void *ud, size_t done, size_t total);
void trit_backend_set_progress(trit_backend *b, trit_backend_progress_fn fn, void *ud);

/* KL(p || q) of two top-N distributions of the same position, over the ids both lists hold
 * (the shared support S) plus one bucket for everything else:
 *   sum_{i in S} p_i (log p_i - log q_i) + P_rest (log P_rest - log Q_rest),
 * P_rest = 1 - sum_{i in S} p_i (likewise Q). This is the exact KL of the two distributions
 * coarse-grained to S + {rest}, so it never exceeds the full-vocabulary KL (data processing
 * inequality) and equals it when the lists hold all the mass. A rest mass rounding to <= 0
 * is taken as 1e-12 (a difference of rounding, never a negative KL). *n_shared (may be NULL)
 * gets |S|. */
double trit_pos_topn_kld(const trit_pos_topn *p, const trit_pos_topn *q, int *n_shared);

/* The side's identity in client.h's trit_client_identity shape (for http: what the server
 * reported at open; in-process: engine "trit" or "llama.cpp", build = version, model path,
 * model_sha256/size, n_vocab, n_ctx, numerics, kernels, threads; url and instance "",
 * "reported" empty). New reference. */
json_t *trit_backend_identity(trit_backend *b);

/* Activation statistics of named tensors while evaluating ids[0..n) from an empty cache.
 * names: llama.cpp tensor names ("attn_norm-0", "Qcur-0", "kqv_out-0", "ffn_out-1",
 * "result_norm", ...) or NULL/n_names == 0 for every point the backend exposes. Also accepted:
 * a bare base name ("Qcur") matching every layer. last_token_only: stats over the last row
 * (token) only; else over every computed row. Stats come in computation order. */
typedef struct trit_trace_stat {
    char name[64];              /* "Qcur-0" */
    int layer;                  /* parsed from the "-N" suffix; -1 when none ("result_norm") */
    int order;                  /* index in computation order */
    int64_t ne0;                /* row length */
    int64_t rows;               /* rows included */
    int64_t count;              /* elements included = ne0 * rows */
    double mean, std, min, max; /* over finite values */
    int64_t nan, inf, zero;
    uint64_t hash;     /* XXH3-64 of the included float32 data */
    double rms_vs_ref; /* reserved for diff; 0 */
    float *data; /* copy of the included values when trit_backend_trace_keep_data; else NULL */
} trit_trace_stat;
int trit_backend_trace(trit_backend *b, const int32_t *ids, size_t n, const char *const *names,
                       size_t n_names, bool last_token_only, trit_trace_stat **stats,
                       size_t *n_stats, trit_err *err);
/* Keep a copy of traced values in trit_trace_stat.data (for NMSE between backends). */
void trit_backend_trace_keep_data(trit_backend *b, bool keep);
void trit_trace_stats_free(trit_trace_stat *stats, size_t n);

/* Helpers shared by the implementations. */
/* Compute stats of data[0..count) into st (name/layer/order set by the caller). */
void trit_trace_stat_compute(trit_trace_stat *st, const float *data, int64_t ne0, int64_t rows);
/* -1 when the name has no "-N" layer suffix. */
int trit_trace_name_layer(const char *name);
/* True when `name` is selected by names[0..n) (exact or base-name match); n == 0: all. */
bool trit_trace_name_wanted(const char *name, const char *const *names, size_t n_names);

#endif
