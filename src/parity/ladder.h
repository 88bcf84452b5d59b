/* parity/ladder.h — the logit parity ladder and layer traces, between two backends.
 *
 * Contract: rungs 0 preflight (each side's identity: engine, build, model sha256 and size;
 * equal sha256 passes, different fails, an unreported value is skipped), 1 tokens, 2 shapes
 * (n_vocab, n_ctx as each side reports them; unreported is skipped), 3 first-position
 * logits, 4 every prompt position, 5 greedy decode; each rung is pass / fail / unavailable /
 * skipped / setup-failure and the run stops at the first failing rung unless `all`.
 * Rungs 3-4 compare full logit rows when both sides are in-process (trit:, llama:), and the
 * top-N log-probabilities of every prompt prefix (trit_backend_score, on both sides, so the
 * metric is symmetric) when either side is http: or when asked (TRIT_LADDER_LOGITS_TOPN).
 * A rung passes only when it compared something: rung 3 one position, rung 4 every position
 * of the prompt, rung 5 at least one token; each rung's count is in the receipt.
 * Thresholds are printed and recorded with every result (both sets: full rows and top-N).
 * Exit status: 0 pass (every rung ran and passed), 1 divergence, 2 setup failure (a backend
 * did not load, a side answered short/malformed data or an inconsistent vocabulary, a
 * request failed or timed out), 3 incomplete (a rung was skipped; never reported as a pass).
 * Metrics are computed in double with base.h's log-softmax and top-k.
 * Traces: per (layer, point) stats; a diff refuses stats whose element counts differ.
 * Depends on backends, base, compare (the tie rule), jansson. */
#ifndef TRIT_LADDER_H
#define TRIT_LADDER_H

#include "backends/backend.h"
#include "base/base.h"
#include "parity/compare.h"
#include "parity/trace.h"

#include <jansson.h>
#include <stdio.h>

/* ---- thresholds ---- */
typedef struct trit_ladder_thresholds {
    double first_mse, first_maxabs;               /* rung 3: 1e-6, 5e-4 */
    double pos_mse, pos_kl, pos_top5, pos_maxabs; /* rung 4: 2e-6, 5e-4, 0.95, 1e-3 */
    double tie_eps;                               /* rung 5: top-2 gap (logits), 0.05 */
    double trace_nmse;                            /* bisect: first point beyond, 1e-3 */
    /* rungs 3-4 on top-N data (trit_topn_cmp): kl 5e-4, first_maxabs 1e-3, maxabs 2e-3 (a
     * logprob moves by at most the logit difference plus the log-sum-exp's: twice the full-row
     * bounds), top5 0.95 (rung 4: mean; rung 3: that position), cover 0.9 (every position) */
    double topn_kl, topn_first_maxabs, topn_maxabs, topn_top5, topn_cover;
} trit_ladder_thresholds;
void trit_ladder_thresholds_default(trit_ladder_thresholds *t);
/* "first_mse=1e-6,pos_kl=1e-3,..." (keys as the fields). Unknown keys / bad numbers: error. */
int trit_ladder_thresholds_parse(const char *s, trit_ladder_thresholds *t, trit_err *err);
void trit_ladder_thresholds_print(FILE *out, const trit_ladder_thresholds *t);
json_t *trit_ladder_thresholds_json(const trit_ladder_thresholds *t);

/* ---- metrics of two logit rows (a = reference, b = candidate) ---- */
typedef struct trit_logit_cmp {
    double mse, max_abs, cosine, l2; /* l2 = ||a - b|| */
    double kl;                       /* KL(softmax(a) || softmax(b)), nats */
    double top5;                     /* |top5(a) & top5(b)| / 5 */
    int max_abs_idx, argmax_a, argmax_b;
} trit_logit_cmp;
void trit_logits_compare(const float *a, const float *b, int n, trit_logit_cmp *out);
double trit_logits_kl(const float *p_logits, const float *q_logits, int n);
/* Fraction of the top-k ids (by logit, ties lowest id) the rows share. */
double trit_topk_overlap(const float *a, const float *b, int n, int k);

/* ---- metrics of two top-N lists (a = reference, b = candidate) ----
 * Both lists are cut to n = min(a->n_top, b->n_top) entries (the N both sides gave), and S is
 * the set of ids in both cut lists (the shared support).
 *   kl       trit_pos_topn_kld (backend.h) of the cut lists: KL(a || b), nats, of the two
 *            distributions coarse-grained to S plus one "rest" bucket — sum over S of
 *            p_i (log p_i - log q_i) + P_rest (log P_rest - log Q_rest), P_rest = 1 - sum_S p_i.
 *            Never above the full-vocabulary KL, so a top-N KL beyond a bound proves the full
 *            one is; the same KL as trit ppl's over top-N.
 *   top5     |top5(a) & top5(b)| / min(5, n), top-5 = the first five of each cut list.
 *   max_abs  max over S of |lp_a(i) - lp_b(i)| on the raw (not renormalized) logprobs.
 *   cover    min over the two sides of (mass of S) / (mass of the side's own n entries): 1 when
 *            both sides' top-N sets are the same; 0 when they share nothing.
 *   mass_a, mass_b  sum over S of exp(lp): how much of each full distribution S covers.
 * No shared id (or a side with n == 0): shared 0, cover 0, max_abs INFINITY (kl is then the
 * rest buckets' alone). */
typedef struct trit_topn_cmp {
    int n, shared;
    double kl, top5, max_abs, cover, mass_a, mass_b;
    int32_t max_abs_id, argmax_a, argmax_b;
} trit_topn_cmp;
void trit_topn_compare(const trit_pos_topn *a, const trit_pos_topn *b, trit_topn_cmp *out);
/* Whether a side's scored positions are well-formed for positions from..from+n-1 of ids
 * (n_ids of them): at least min_top entries each, finite logprobs <= 0 in non-increasing
 * order, no repeated id, ids in [0, n_vocab) (n_vocab > 0), a total mass <= 1, next_id =
 * ids[p + 1] (-1 at the last position) with a finite next_logprob <= 0 (and equal to its
 * top-N entry when listed). The first problem goes to err (TRIT_EFORMAT) naming the
 * position and the prefix length, i.e. the request. */
int trit_topn_check(const trit_pos_topn *pos, size_t n, const int32_t *ids, size_t n_ids,
                    size_t from, int n_vocab, int min_top, trit_err *err);

/* ---- decode split: tie, real or unclassified ----
 * The project's one tie rule (trit_tie_rule in compare.h) on the decode steps at the split:
 * gaps from logits, or logprobs when logits are unknown; a side with fewer than two
 * alternatives leaves the split unclassified (TRIT_TIE_UNKNOWN), which does not pass. why
 * gets one sentence. */
trit_tie trit_ladder_split_tie(const trit_gen_step *a, const trit_gen_step *b, double eps,
                               char *why, size_t why_sz);

/* ---- the ladder ----
 * Exit status of a run: PASS only when every rung of every prompt ran and passed;
 * INCOMPLETE when nothing failed but a rung was skipped (e.g. a side cannot tokenize), so
 * the run proves less than a pass; DIVERGE on a failing rung; SETUP when a backend did not
 * load or a rung could not run. The worst over all prompts wins (SETUP > DIVERGE >
 * INCOMPLETE > PASS). */
typedef enum trit_ladder_status {
    TRIT_LADDER_PASS = 0,
    TRIT_LADDER_DIVERGE = 1,
    TRIT_LADDER_SETUP = 2,
    TRIT_LADDER_INCOMPLETE = 3,
} trit_ladder_status;
const char *trit_ladder_status_name(trit_ladder_status st);

/* How rungs 3-4 compare: AUTO is full logit rows when both sides are in-process, top-N when
 * either is http; FULL and TOPN force one (FULL needs both sides in-process). */
typedef enum trit_ladder_logits {
    TRIT_LADDER_LOGITS_AUTO = 0,
    TRIT_LADDER_LOGITS_FULL,
    TRIT_LADDER_LOGITS_TOPN,
} trit_ladder_logits;

typedef struct trit_ladder_opts {
    const char *gen1_spec, *gen2_spec; /* backend specs: gen-1 (reference, --ref) and gen-2
                                          (candidate, --cand) */
    const char *const *prompts;
    size_t n_prompts;
    int max_tokens;            /* rung 5 steps (default 16; >= 1: 0 steps would compare nothing) */
    trit_ladder_logits logits; /* rungs 3-4: full rows or top-N (default AUTO) */
    int top_n;                 /* N asked of trit_backend_score (default TRIT_BACKEND_TOPN_MAX) */
    bool chat_template;        /* each backend's own chat template around the prompt */
    bool all;                  /* run every rung even after a failure */
    bool other_models;         /* rung 0: two different model files are expected (e.g. one model in
                                  two layouts); both sha256 must still be known */
    bool json;                 /* print the receipt to stdout instead of text */
    bool bisect; /* after a logit failure: shortest failing prefix + trace divergence; on
                    top-N data the shortest failing prefix is rung 4's first failing position
                    (each position is its own prefix request) and the trace is reported
                    unavailable when a side is http (servers give no layer traces) */
    trit_ladder_thresholds th;
    trit_backend_opts bopts;
} trit_ladder_opts;

/* Run; *receipt (may be NULL) gets the JSON receipt. Text report to out (NULL: silent). */
int trit_ladder_run(const trit_ladder_opts *o, FILE *out, json_t **receipt);
/* Same backend spec opened twice: identical logits for every prompt position? */
int trit_ladder_determinism(const trit_ladder_opts *o, FILE *out, json_t **receipt);

/* ---- bisect (exposed for tests) ----
 * Shortest prefix length L (1..n) whose logits break the rung-4 thresholds; 0 if none. */
int trit_ladder_shortest_failing_prefix(trit_backend *gen1, trit_backend *gen2, const int32_t *ids,
                                        size_t n, const trit_ladder_thresholds *th, size_t *len,
                                        trit_err *err);

#endif
