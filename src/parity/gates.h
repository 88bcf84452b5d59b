/* parity/gates.h — the cutover gate table (docs/parity.md "Gate config") and its provenance.
 *
 * Contract: thresholds from built-in production defaults, or from an INI config when one is
 * given; too few samples (shown with their count), a missing reference or mismatched
 * perplexity runs are FAIL, never PASS. The rounds gate counts compared rounds only. Before
 * any table, the evidence is checked (trit_gate_provenance): a broken chain, an unchained
 * or identity-less ledger (unless allowed), one server on both sides, a side with more than
 * one identity, a ppl file without provenance or about other models/servers, evidence older
 * than max_age: each refuses the verdict with its reason. Depends on stats, client. */
#ifndef TRIT_PARITY_GATES_H
#define TRIT_PARITY_GATES_H

#include "parity/stats.h"

#include <stdio.h>

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
    double kld_max;           /* 0 = off; > 0: a "KLD gen-2 vs gen-1" gate, mean KLD <= this */
    long ppl_min_tokens;      /* scored tokens each ppl run needs (1024, the seeds' figure) */
    double max_age;           /* seconds: older evidence is refused (7 days); INI: 7d, 36h, s */
} trit_gate_cfg;

void trit_gate_cfg_default(trit_gate_cfg *c);
/* INI: [gates] section (or none) with keys named like the fields above. Unknown keys,
 * malformed numbers and lines are errors naming file:line. */
int trit_gate_cfg_load(const char *path, trit_gate_cfg *c, trit_err *err);
int trit_gate_cfg_parse(const char *text, const char *name, trit_gate_cfg *c, trit_err *err);

typedef enum { TRIT_GATE_PASS = 0, TRIT_GATE_FAIL = 1 } trit_gate_verdict;
const char *trit_gate_verdict_name(trit_gate_verdict v);

#define TRIT_GATE_MAX 12
typedef struct trit_gate_row {
    char gate[32];
    char target[64];
    char current[96];
    trit_gate_verdict verdict;
    char why[160]; /* "" or the reason for FAIL */
} trit_gate_row;
typedef struct trit_gate_table {
    int n;
    trit_gate_row row[TRIT_GATE_MAX];
    bool go; /* every row PASS */
} trit_gate_table;

/* ppl JSON file written by `trit ppl --json -o FILE`:
 * {"gen1":{"ppl":..,"ppl_err":..,"chunks":..,"ctx":..,"count":..},"gen2":{...},
 *  "kld":{"mean":..}}. The PPL gate fails unless both runs have the same shape. */
/* What one side is, as far as the evidence says (client.h identity, cut to fit). */
typedef struct trit_side_ident {
    char digest[17]; /* trit_identity_digest; "" when not recorded */
    char engine[32], build[96], model[256], sha256[65], url[256], instance[64];
    bool full; /* the fields above came from a full identity object */
} trit_side_ident;
void trit_side_ident_from_json(const json_t *ident, trit_side_ident *s);

typedef struct trit_ppl_figs {
    bool present;
    double gen1, gen1_err, gen2, gen2_err, kld_mean; /* NAN if absent */
    trit_ppl_shape shape1, shape2; /* chunks x ctx, scored tokens of each run (-1 absent) */
    /* provenance (written by `trit ppl`): "gen1_identity"/"gen2_identity" (identity objects
     * or digest strings), "text_sha256", "text_path", "scored_tokens", "ts"/"time" */
    bool has_provenance;
    char file_sha256[65], text_sha256[65], text_path[256];
    long scored_tokens; /* -1 absent */
    double ts;          /* NAN absent */
    trit_side_ident ident1, ident2;
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

/* ---- provenance: what the evidence is about, and whether it may be judged at all ---- */
#define TRIT_PROV_MAX_DIGESTS 4
typedef struct trit_prov_side {
    trit_side_ident id;                      /* from an identity record, else the rounds */
    char digests[TRIT_PROV_MAX_DIGESTS][17]; /* distinct digests in the rounds */
    int n_digests;                           /* may exceed TRIT_PROV_MAX_DIGESTS */
    long rounds_without;                     /* rounds without this side's digest */
} trit_prov_side;
typedef struct trit_prov_ledger {
    const char *path;
    trit_ledger_chain chain;
} trit_prov_ledger;
typedef struct trit_provenance {
    trit_prov_side gen1, gen2;
    trit_prov_ledger *ledger;
    int n_ledgers;
    long rounds, same_url_rounds; /* rounds naming one URL on both sides */
    double oldest_ts, newest_ts;  /* over every record with a ts; NAN when none */
    double now;                   /* the time the age check was made against */
    bool allow_unchained;         /* --allow-unchained: legacy ledgers accepted, said in print */
    bool refused;
    char reason[512]; /* why refused */
    char notes[512];  /* what was accepted only because it was allowed, or not cross-checked */
} trit_provenance;
/* Check the ledgers (chains, identities, URLs, age) and the ppl figures (provenance, the
 * same models and servers as the ledger, age) against cfg at time `now`. 0 with pv filled
 * (pv->refused says whether the verdict may be given), -1 when a ledger cannot be read. */
int trit_gate_provenance(const trit_gate_cfg *cfg, const char *const *ledgers, int n_ledgers,
                         const trit_ppl_figs *ppl, bool allow_unchained, double now,
                         trit_provenance *pv, trit_err *err);
void trit_provenance_free(trit_provenance *pv);
/* The block printed above the table: each side's identity, chain heads, the ppl file. */
void trit_provenance_print(FILE *out, const trit_provenance *pv, const trit_ppl_figs *ppl);
json_t *trit_provenance_json(const trit_provenance *pv, const trit_ppl_figs *ppl);

/* ---- one evaluation: what `trit gate` and the dashboard (/api/gate) both compute ---- */
typedef struct trit_gate_run {
    trit_gate_cfg cfg;
    char config_sha256[65]; /* "" without a config */
    trit_ppl_figs ppl;
    trit_provenance pv;
    trit_stats all;
    trit_gate_table t;
    double now;
    int rc; /* 0 GO, 1 NO-GO, 2 refused */
} trit_gate_run;
/* Read the config (NULL: production defaults) and the ppl file (NULL: none), check the
 * evidence (trit_gate_provenance), and evaluate the gates over the trit_gates_windows of the
 * merged ledgers, as of `now`. 0 with g filled (free with trit_gate_run_free), or -1 with err
 * (an unreadable input). */
int trit_gate_evaluate(const char *config, const char *ppl_path, const char *const *ledgers,
                       int n_ledgers, bool allow_unchained, double now, trit_gate_run *g,
                       trit_err *err);
void trit_gate_run_free(trit_gate_run *g);
/* The verdict word for a run's rc: "GO", "NO-GO", "REFUSED". */
const char *trit_gate_verdict_word(int rc);

#endif
