/* parity/ppl — perplexity and KL divergence, compatible with the reference llama-perplexity.
 *
 * Contract (the numbers and files are llama-perplexity's, so results compare one to one):
 *  - chunking: the text is tokenized once (add_special = true, parse_special = false; one
 *    trailing '\n' of a text file dropped, as llama's -f does); it is cut into n_chunk chunks
 *    of n_ctx tokens (n_chunk = min(--chunks, n_tokens / n_ctx); at least 2 * n_ctx tokens are
 *    needed); the first token of each chunk is replaced by BOS when the vocabulary adds one;
 *    each chunk is evaluated from an empty cache and only its second half is scored: the
 *    logits at positions n_ctx/2 .. n_ctx-2 predicting tokens n_ctx/2+1 .. n_ctx-1.
 *  - PPL = exp(mean NLL), error = PPL * sqrt((E[nll^2] - E[nll]^2) / (count - 1)).
 *  - base-logits file (--kl-divergence-base), byte for byte llama-perplexity's:
 *      "_logits_" | int32 n_ctx | int32 n_vocab | int32 n_chunk | int32 tokens[n_chunk*n_ctx]
 *      | per chunk, per scored position: nv = 2*((n_vocab+1)/2)+4 uint16 words: float scale,
 *        float min_log_prob (4 words), then n_vocab quantized logits (0 below max-16), padding.
 *    All little-endian (host order on x86, as the reference writes it).
 *  - KLD of a model against a base file: mean ± error, percentiles, Δp, RMS Δp, same top p,
 *    with the reference's formulas (kl_divergence() in perplexity.cpp), except the per-token
 *    KLD itself: sum p (log p - log q) in double, the base row renormalized over its kept
 *    entries and the model side through trit_logsumexp (base.h), so no token's KLD is below
 *    -1e-9 (the reference's unnormalized row gave -2e-5). The NLL and the quantized rows keep
 *    perplexity.cpp's float arithmetic on purpose: the base file must be byte-identical.
 *  - over HTTP (and whenever top_n > 0): every scored position's actual next token is
 *    scored through trit_backend_score (backend.h: echo where the server has it, else one
 *    logit_bias-forced request per position; the RAW pre-sampling probability), with the
 *    same chunking, BOS and scored positions as above, so PPL equals the in-process figure.
 *    KLD there is over the top-N support (trit_pos_topn_kld: the shared top-N ids plus one
 *    bucket for the rest, a lower bound of the full-vocabulary KLD) and is labelled with N
 *    (trit_ppl_result.kld_topn, "kld_topn" in JSON); PPL, Δp and same-top are exact there.
 * Sources: a backend (trit:/llama: in-process, http: any OpenAI-compatible server), or the
 * reference binary itself (its printed figures are parsed).
 * Depends on backends, client, base. */
#ifndef TRIT_PPL_H
#define TRIT_PPL_H

#include "backends/backend.h"
#include "base/base.h"

#include <jansson.h>
#include <stdio.h>

#define TRIT_PPL_MAGIC "_logits_"
/* uint16 words per position in the base-logits file */
static inline int trit_ppl_nv(int n_vocab) {
    return 2 * ((n_vocab + 1) / 2) + 4;
}

/* ---- base-logits file ---- */
typedef struct trit_ppl_base {
    FILE *f;
    char *path;
    bool writing;
    int n_ctx, n_vocab, n_chunk;
    int32_t *tokens; /* n_chunk * n_ctx (reader: read from the file) */
    long rows;       /* rows read / written so far */
} trit_ppl_base;
/* Rows per chunk: n_ctx - 1 - n_ctx/2. */
static inline int trit_ppl_rows_per_chunk(int n_ctx) {
    return n_ctx - 1 - n_ctx / 2;
}

/* Create a file and write its header and tokens (n_chunk * n_ctx of them). */
trit_ppl_base *trit_ppl_base_create(const char *path, int n_ctx, int n_vocab, int n_chunk,
                                    const int32_t *tokens, trit_err *err);
/* Open a file for reading: header and tokens validated against the file size. */
trit_ppl_base *trit_ppl_base_open(const char *path, trit_err *err);
int trit_ppl_base_write_row(trit_ppl_base *b, const uint16_t *row, trit_err *err);
int trit_ppl_base_read_row(trit_ppl_base *b, uint16_t *row, trit_err *err);
/* Close; for a writer, fails if a write or fsync failed. Frees b. */
int trit_ppl_base_close(trit_ppl_base *b, trit_err *err);

/* Quantize one position's logits into a row (trit_ppl_nv(n_vocab) words) exactly like the
 * reference; returns the NLL of tok. */
double trit_ppl_quantize_row(const float *logits, int n_vocab, int32_t tok, uint16_t *row);
/* NLL of tok under logits (max-subtracted log-softmax in double, as the reference). */
double trit_ppl_nll(const float *logits, int n_vocab, int32_t tok);

/* ---- accumulation ---- */
typedef struct trit_ppl_acc {
    double nll, nll2;
    long count;
    /* KLD mode (sums as kl_divergence_result) */
    double sum_nll_base, sum_nll_base2, sum_nll_nll_base, sum_kld, sum_kld2;
    double sum_p_diff, sum_p_diff2, sum_p_diff4;
    float max_p_diff;
    long n_same_top;
    float *kld_vals, *p_diff_vals;
    size_t n_vals, cap_vals;
} trit_ppl_acc;
void trit_ppl_acc_free(trit_ppl_acc *a);
/* Plain PPL: add one NLL. */
void trit_ppl_acc_nll(trit_ppl_acc *a, double nll);
/* KLD mode: compare one position's logits with the base row (float NLL as the reference). */
void trit_ppl_acc_kld(trit_ppl_acc *a, const float *logits, int n_vocab, int32_t tok,
                      const uint16_t *base_row);
/* KLD mode over top-N: one position of the model (q) against the base (p), both from
 * trit_backend_score for the same token: NLLs from next_logprob, KLD from
 * trit_pos_topn_kld(base, model), same top from top_id[0], Δp from the next tokens. */
void trit_ppl_acc_kld_topn(trit_ppl_acc *a, const trit_pos_topn *base, const trit_pos_topn *model);

#define TRIT_PPL_NPCT 8
extern const double trit_ppl_pct[TRIT_PPL_NPCT]; /* .999 .99 .95 .90 .10 .05 .01 .001 */

typedef struct trit_ppl_result {
    char source[600]; /* the backend spec, URL or reference model */
    int n_ctx, n_chunk, n_vocab;
    long n_tokens; /* tokens of the whole text */
    long count;    /* scored positions */
    double ppl, ppl_err;
    double seconds;
    bool has_kld;
    double ppl_base, ppl_base_err, cor, ln_ratio, ln_ratio_err, ppl_diff, ppl_diff_err;
    double kld_mean, kld_err, kld_max, kld_min, kld_median, kld_pct[TRIT_PPL_NPCT];
    double dp_mean, dp_err, dp_max, dp_min, dp_median;
    double rms_dp, rms_dp_err, same_top, same_top_err; /* fractions, not percent */
    int kld_topn;        /* 0: KLD over the full vocabulary; N: over the top-N support */
    char score_mode[16]; /* "logits", "echo" or "forced" (trit_backend_score_mode) */
} trit_ppl_result;
void trit_ppl_result_init(trit_ppl_result *r);
/* Final figures from an accumulator (KLD statistics when it holds KLD values). */
void trit_ppl_acc_result(const trit_ppl_acc *a, trit_ppl_result *r);

/* What the KLD of r is over: "full vocabulary" or the top-N label (static string). */
const char *trit_ppl_kld_support(const trit_ppl_result *r);
/* Print like llama-perplexity's final blocks. */
void trit_ppl_print(FILE *out, const trit_ppl_result *r);
json_t *trit_ppl_result_json(const trit_ppl_result *r);

/* ---- runs ---- */
/* The top-N entries of every scored position, in scoring order (chunk by chunk). */
typedef struct trit_ppl_topn {
    trit_pos_topn *v;
    long n, cap;
} trit_ppl_topn;
void trit_ppl_topn_free(trit_ppl_topn *t);

typedef struct trit_ppl_opts {
    int n_ctx;             /* tokens per chunk (default 512) */
    int n_chunks;          /* <= 0: all */
    const char *base_out;  /* write a base-logits file (not with base_in) */
    const char *base_in;   /* compute KLD against this base-logits file */
    const char *api_key;   /* --url mode */
    double timeout_s;      /* --url mode, per request (default 300) */
    int n_threads;         /* reference mode: -t (0: its default) */
    const char *text_path; /* reference mode: the file passed to -f */
    bool progress;         /* per-chunk running PPL on stderr */
    /* top-N scoring (trit_backend_score) instead of full logits: always for a backend that
     * cannot eval (http); for in-process backends when top_n > 0 */
    int top_n;                      /* alternatives kept per position (0: full logits) */
    trit_ppl_topn *topn_keep;       /* top-N mode: every scored position appended here */
    const trit_ppl_topn *topn_base; /* top-N mode: KLD against these (gen-1's topn_keep) */
} trit_ppl_opts;
void trit_ppl_opts_default(trit_ppl_opts *o);

/* Read a text file as llama's -f does (one trailing '\n' dropped). */
int trit_ppl_read_text(const char *path, trit_buf *out, trit_err *err);

/* Any backend that can tokenize: full logits through eval_each when it can eval and top_n
 * is 0 (base files read or written there), else top-N scoring (base files refused with
 * TRIT_EUNAVAIL; KLD against o->topn_base). */
int trit_ppl_run_backend(trit_backend *b, const char *text, size_t len, const trit_ppl_opts *o,
                         trit_ppl_result *r, trit_err *err);
/* An OpenAI-compatible server at url (api_key, timeout_s from o): the http backend through
 * trit_ppl_run_backend. */
int trit_ppl_run_url(const char *url, const char *text, size_t len, const trit_ppl_opts *o,
                     trit_ppl_result *r, trit_err *err);
/* The reference llama-perplexity binary on MODEL (text from o->text_path); base_out makes it
 * write a base file, base_in runs its --kl-divergence mode. Its output is parsed. */
int trit_ppl_run_reference(const char *model, const trit_ppl_opts *o, trit_ppl_result *r,
                           trit_err *err);
/* Parse llama-perplexity output (exposed for tests); 0 when a final PPL was found. */
int trit_ppl_parse_reference_output(const char *text, trit_ppl_result *r, trit_err *err);

#endif
