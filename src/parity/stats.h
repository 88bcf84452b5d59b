/* parity/stats.h — aggregates over one or more ledgers.
 *
 * Contract: 50 000+ rounds well under a second (the scanner reads only the summary fields of
 * a line). Merged ledgers are de-duplicated: a round record counts once per (source, round),
 * so `--ledger X --ledger X` counts X once. Depends on ledger. */
#ifndef TRIT_PARITY_STATS_H
#define TRIT_PARITY_STATS_H

#include "parity/ledger.h"

#include <stdio.h>

#define TRIT_STATS_MAX_CAT 32
typedef struct trit_stats_cat {
    char name[32];
    long rounds, exact, compared; /* compared = rounds with both sides reachable */
} trit_stats_cat;

typedef struct trit_stats {
    long records, rounds, ppl_records, skipped_lines;
    long duplicates; /* records found in more than one merged ledger, counted once */
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
    trit_ppl_shape ppl_shape1, ppl_shape2;
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

#endif
