/* parity — is gen-2 answering like gen-1? compare, ledger, burn-in, stats, gates.
 *
 * Contract:
 *  - compare: classifies two replies to the same prompt into a bucket (exact / prefix-only /
 *    no-match / v1-unreachable / v2-unreachable); for a no-match it finds the first divergent
 *    byte and token and decides tie vs real from the logprobs at the split.
 *  - ledger: one JSON object per line (JSONL), appended and fsync'd. Records have "type":
 *    "round" (burn-in or shadow), "ppl" (perplexity figures). Readers skip a truncated or
 *    malformed line with a warning, never fail on it. The ledger is the source of truth;
 *    the burn-in state file is only a hint reconciled against it on start.
 *  - stats: aggregates of many ledgers (50 000+ rounds well under a second: the scanner
 *    reads only the summary fields of a line).
 *  - gates: the cutover gate table of DESIGN.md from an INI config; too few samples or a
 *    missing reference is FAIL, never PASS.
 * Depends on client, base, jansson. */
#ifndef TRIT_PARITY_H
#define TRIT_PARITY_H

#include "base/base.h"
#include "client/client.h"

#include <stdio.h>

/* ======================= compare ======================= */
typedef enum trit_bucket {
    TRIT_BUCKET_EXACT = 0,
    TRIT_BUCKET_PREFIX,     /* "prefix-only": one reply is a strict prefix of the other */
    TRIT_BUCKET_NOMATCH,    /* "no-match": they differ before the end of the shorter */
    TRIT_BUCKET_V1_UNREACH, /* "v1-unreachable" */
    TRIT_BUCKET_V2_UNREACH, /* "v2-unreachable" */
    TRIT_BUCKET_N,
} trit_bucket;
const char *trit_bucket_name(trit_bucket b);
int trit_bucket_parse(const char *s); /* -1 if unknown */

typedef enum { TRIT_TIE_UNKNOWN = -1, TRIT_TIE_REAL = 0, TRIT_TIE_TIE = 1 } trit_tie;

#define TRIT_TIE_EPS_DEFAULT 0.05 /* nats between top-1 and top-2 logprob */

typedef struct trit_compare {
    trit_bucket bucket;
    size_t prefix_len; /* common prefix, backed off to a UTF-8 character boundary */
    long div_byte;     /* first differing byte offset; -1 for exact / unreachable */
    int div_token_v1;  /* index of the token holding div_byte on each side; -1 if unknown */
    int div_token_v2;
    trit_tie tie;          /* for no-match (and prefix-only when a side has a token there) */
    double gap_v1, gap_v2; /* top1 - top2 logprob at the split; NAN if unknown */
    char cause[200];       /* unreachable: "refused: ...", "timeout: ...", "http 503: ..." */
} trit_compare;

/* Pure byte/token comparison (no network). tokens may be NULL / 0 (tie stays unknown). */
void trit_compare_texts(const char *t1, size_t n1, const trit_client_token *k1, int nk1,
                        const char *t2, size_t n2, const trit_client_token *k2, int nk2, double eps,
                        trit_compare *out);
/* Classify two responses (unreachable when a side's kind != OK; v1 is checked first). */
void trit_compare_resps(const trit_client_resp *v1, const trit_client_resp *v2, double eps,
                        trit_compare *out);
/* Tie test at a split: both sides' top-2 within eps and each side's token in the other's
 * top-5. Tokens match by id when both ids are known, else by bytes. */
trit_tie trit_compare_tie(const trit_client_token *a, const trit_client_token *b, double eps,
                          double *gap_a, double *gap_b);

/* ======================= ledger ======================= */
typedef struct trit_ledger trit_ledger; /* an open ledger for appending */
/* Open for append (created if absent). */
trit_ledger *trit_ledger_open(const char *path, trit_err *err);
/* Append one JSON object as a line, then fsync. obj must be an object. */
int trit_ledger_append(trit_ledger *l, json_t *obj, trit_err *err);
void trit_ledger_close(trit_ledger *l);

/* The standard round record (DESIGN: "A parity round"; fields in docs/parity.md), built from
 * two replies and their comparison; used by burn-in and the shadow proxy alike. Add extra
 * fields (noise lane...) with json_object_set_new before appending. */
typedef struct trit_round_meta {
    const char *source; /* "burnin", "shadow" */
    double ts;          /* wall seconds; <= 0 -> now */
    int64_t round;
    const char *prompt_id, *category, *endpoint; /* endpoint: "completions" / "chat" */
    const char *v1_url, *v1_model, *v2_url, *v2_model;
} trit_round_meta;
json_t *trit_ledger_round_json(const trit_round_meta *m, const trit_client_resp *v1,
                               const trit_client_resp *v2, const trit_compare *cmp);
/* A JSON string of n bytes; invalid UTF-8 is repaired by trit_utf8_repair (U+FFFD per
 * maximal subpart, as llama-server does), so a record can always be written. */
json_t *trit_ledger_text_json(const char *s, size_t n);
/* A JSON number, or null for NaN and infinities (JSON has neither). */
json_t *trit_json_num(double v);

/* The summary of one record as the fast scanner sees it. Strings point into the scanner's
 * line buffer (valid only inside the callback). */
enum { TRIT_REC_ROUND = 0, TRIT_REC_PPL = 1, TRIT_REC_OTHER = 2 };
typedef struct trit_ledger_rec {
    int type;
    int64_t round;                             /* -1 if absent */
    double ts;                                 /* wall seconds since epoch ("ts" field, numeric) */
    const char *prompt_id, *category, *source; /* "" if absent; source: "burnin", "shadow" */
    size_t prompt_id_len, category_len;
    int bucket;       /* trit_bucket, -1 if absent */
    int noise_bucket; /* noise lane bucket vs v1, -1 if absent */
    int tie;          /* trit_tie */
    long prefix_len;  /* -1 if absent */
    long div_byte;
    int div_token;
    double lat_v1, lat_v2; /* seconds; NAN if absent */
    int ntok_v1, ntok_v2;
    /* type ppl: */
    double ppl_gen1, ppl_gen1_err, ppl_gen2, ppl_gen2_err, kld_mean; /* NAN if absent */
} trit_ledger_rec;

typedef int (*trit_ledger_fn)(void *user, const trit_ledger_rec *rec, const char *line, size_t len);
typedef struct trit_ledger_scan_info {
    long lines, records, skipped; /* skipped: malformed / truncated lines (each warned once) */
    long last_good_offset;        /* byte offset just after the last complete good line */
    int64_t max_round;            /* highest "round" of type round, -1 if none */
} trit_ledger_scan_info;
/* Read every line of path; fn (may be NULL) returning nonzero stops the scan. A missing file
 * is an error; malformed lines are skipped with a warning on stderr (unless quiet). */
int trit_ledger_scan(const char *path, trit_ledger_fn fn, void *user, bool quiet,
                     trit_ledger_scan_info *info, trit_err *err);
/* Parse one line's summary fields (exposed for tests); -1 if not a complete JSON object. */
int trit_ledger_parse_line(const char *line, size_t len, trit_ledger_rec *rec);

/* ======================= stats ======================= */
#define TRIT_STATS_MAX_CAT 32
typedef struct trit_stats_cat {
    char name[32];
    long rounds, exact, compared; /* compared = rounds with both sides reachable */
} trit_stats_cat;

typedef struct trit_stats {
    long records, rounds, ppl_records, skipped_lines;
    long bucket[TRIT_BUCKET_N];
    long ties, reals, tie_unknown; /* over no-match rounds */
    long compared;                 /* rounds with both sides reachable */
    double exact_rate;             /* exact / compared; NAN if compared == 0 */
    double v2_unreach_rate;        /* v2-unreachable / rounds (v1-unreachable excluded) */
    double median_prefix;          /* over no-match + prefix-only; NAN if none */
    double p50_v1, p95_v1, p50_v2, p95_v2, p95_gap; /* seconds; gap = p95_v2 - p95_v1 */
    char top_miss[64];                              /* prompt id with most non-exact rounds */
    long top_miss_count, misses;                    /* its misses, all misses */
    double top_miss_share;
    int n_cat;
    trit_stats_cat cat[TRIT_STATS_MAX_CAT];
    long noise_rounds, noise_exact; /* noise lane: gen-1 vs gen-1 */
    double noise_exact_rate;        /* NAN if no noise rounds */
    double excess_miss;             /* (1 - exact_rate) - (1 - noise_exact_rate); NAN if n/a */
    double first_ts, last_ts;
    double worst_hour_nomatch; /* highest no-match share in any clock hour with enough rounds */
    long worst_hour_rounds;    /* rounds in that hour */
    bool has_ppl;              /* from the last ppl record */
    double ppl_gen1, ppl_gen1_err, ppl_gen2, ppl_gen2_err, kld_mean;
} trit_stats;

typedef struct trit_stats_filter {
    double since_ts;      /* only records with ts >= since_ts (0: all) */
    double until_ts;      /* and ts < until_ts (0: no bound) */
    long last_n;          /* only the last N rounds (0: all) */
    long skip_last;       /* ...after dropping the newest skip_last rounds (trend windows) */
    long hour_min_rounds; /* minimum rounds in an hour to count for worst_hour (default 20) */
} trit_stats_filter;

/* Aggregate several ledgers (merged). filter may be NULL. */
int trit_stats_compute(const char *const *paths, int n_paths, const trit_stats_filter *filter,
                       trit_stats *st, trit_err *err);
/* Aggregate records already in memory (used by compute and by tests). */
typedef struct trit_stats_acc trit_stats_acc;
trit_stats_acc *trit_stats_acc_new(const trit_stats_filter *filter);
void trit_stats_acc_add(trit_stats_acc *a, const trit_ledger_rec *rec);
void trit_stats_acc_finish(trit_stats_acc *a, trit_stats *st); /* also frees a */
/* Compute with another filter (the accumulator is kept; records are filtered by ts/last_n
 * here, so one scan serves several windows). */
void trit_stats_acc_compute(const trit_stats_acc *a, const trit_stats_filter *filter,
                            trit_stats *st);
void trit_stats_acc_free(trit_stats_acc *a);
/* Load several ledgers into an accumulator (merged). */
trit_stats_acc *trit_stats_acc_load(const char *const *paths, int n_paths, bool quiet,
                                    trit_err *err);

void trit_stats_print(FILE *out, const trit_stats *st);
json_t *trit_stats_json(const trit_stats *st);

/* ======================= gates ======================= */
typedef struct trit_gate_cfg {
    double ppl_max_delta;     /* 0.05 */
    double ppl_max_rel_delta; /* 0 = off; > 0: gate on |ppl2/ppl1 - 1| instead (synthetic models) */
    double exact_min;         /* 0.90 */
    bool require_classified;  /* every no-match classified tie vs real (true) */
    long rounds_min;          /* 50000 */
    double v2_unreach_max;    /* 0.001 (strictly less than) */
    double p95_gap_max_ms;    /* 100 (strictly less than) */
    double trend_window_h;    /* 48 */
    long trend_min_rounds;    /* rounds each window needs for the trend gate (100) */
    double spike_nomatch;     /* 0.20 */
    long spike_min_rounds;    /* rounds in an hour for it to count (20) */
    double tie_eps;           /* 0.05 nats */
    long trend_window_rounds; /* > 0: windows are the last N rounds vs the N before */
    long min_samples;         /* compared rounds needed by the rate / latency gates (100) */
} trit_gate_cfg;

void trit_gate_cfg_default(trit_gate_cfg *c);
/* INI: [gates] section (or none) with keys named like the fields above. Unknown keys,
 * malformed numbers and lines are errors naming file:line. */
int trit_gate_cfg_load(const char *path, trit_gate_cfg *c, trit_err *err);
int trit_gate_cfg_parse(const char *text, const char *name, trit_gate_cfg *c, trit_err *err);

typedef enum { TRIT_GATE_PASS = 0, TRIT_GATE_FAIL = 1, TRIT_GATE_WAITING = 2 } trit_gate_verdict;
const char *trit_gate_verdict_name(trit_gate_verdict v);

#define TRIT_GATE_MAX 12
typedef struct trit_gate_row {
    char gate[32];
    char target[64];
    char current[96];
    trit_gate_verdict verdict;
    char why[160]; /* "" or the reason for FAIL/WAITING */
} trit_gate_row;
typedef struct trit_gate_table {
    int n;
    trit_gate_row row[TRIT_GATE_MAX];
    bool go; /* every row PASS */
} trit_gate_table;

/* ppl JSON file written by `trit ppl --json -o FILE`:
 * {"gen1":{"ppl":..,"ppl_err":..},"gen2":{"ppl":..,"ppl_err":..},"kld":{"mean":..}} */
typedef struct trit_ppl_figs {
    bool present;
    double gen1, gen1_err, gen2, gen2_err, kld_mean; /* NAN if absent */
} trit_ppl_figs;
int trit_ppl_figs_load(const char *path, trit_ppl_figs *p, trit_err *err);

/* Evaluate the gates. `all` = stats over everything; `recent` and `previous` = the last
 * trend window and the one before (may have 0 rounds). ppl may be NULL (-> from stats if
 * the ledger had a ppl record, else missing). */
void trit_gates_eval(const trit_gate_cfg *cfg, const trit_stats *all, const trit_stats *recent,
                     const trit_stats *previous, const trit_ppl_figs *ppl, trit_gate_table *t);
/* The gates' windows over one accumulator: `all` (everything), `recent` (the last trend
 * window: trend_window_rounds rounds, else trend_window_h hours before the newest record)
 * and `previous` (the window before it; compared = 0 while the ledger is younger than one
 * window). `trit gate` and the report both use this, so they always agree. */
void trit_gates_windows(const trit_gate_cfg *cfg, const trit_stats_acc *acc, trit_stats *all,
                        trit_stats *recent, trit_stats *previous);
void trit_gates_print(FILE *out, const trit_gate_table *t);
json_t *trit_gates_json(const trit_gate_table *t);

/* ======================= burn-in ======================= */
typedef struct trit_prompt {
    char *id, *category, *prompt;
} trit_prompt;
/* Read a JSONL prompt corpus ({"id","category","prompt"} per line; blank lines ignored). */
int trit_prompts_load(const char *path, trit_prompt **out, int *n, trit_err *err);
void trit_prompts_free(trit_prompt *p, int n);

typedef struct trit_burnin_opts {
    const char *v1, *v2, *noise; /* URLs; noise may be NULL */
    const char *api_key;
    const char *prompts_path;
    const char *ledger_path;
    const char *state_path; /* NULL -> ledger_path + ".state" */
    long rounds;            /* rounds to run in this invocation; <= 0 with forever */
    bool forever;
    double pace_s;
    int max_tokens;
    bool chat; /* endpoint: chat (true) or completions */
    double timeout_s;
    int top_logprobs; /* 5 */
    double tie_eps;
    double spike_nomatch;  /* halt threshold (0.20) */
    long spike_min_rounds; /* rounds within the last hour before the spike check applies */
    bool quiet;
} trit_burnin_opts;

void trit_burnin_opts_default(trit_burnin_opts *o);
/* Exit codes of trit_burnin_run (and `trit burnin run`). */
enum {
    TRIT_BURNIN_OK = 0,
    TRIT_BURNIN_ERROR = 1,       /* bad input, cannot write the ledger */
    TRIT_BURNIN_INTERRUPTED = 0, /* SIGINT/SIGTERM: clean stop counts as success */
    TRIT_BURNIN_SPIKE = 3,       /* no-match spike halted the run */
};
/* Run rounds; resumes from the ledger (source of truth) and state file. */
int trit_burnin_run(const trit_burnin_opts *o, trit_err *err);
/* Ask a running trit_burnin_run to stop after its current round (signal-safe). */
void trit_burnin_request_stop(void);

#endif
