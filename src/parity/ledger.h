/* parity/ledger.h — the parity ledger: JSONL records, one writer, a fast summary scanner.
 *
 * Contract: one JSON object per line, appended and fsync'd. Records have "type": "round"
 * (burn-in or shadow, built by trit_ledger_round_json for both), "ppl" (perplexity figures),
 * "event". A writer holds an exclusive flock on the ledger for as long as it is open: a
 * second writer (burn-in or shadow) is refused with an error naming the ledger. Ledgers are
 * created 0600. Readers skip a truncated or malformed line with a warning, never fail on it.
 * The ledger is the source of truth; the burn-in state file is only a hint.
 * Depends on compare, client, base, jansson. */
#ifndef TRIT_PARITY_LEDGER_H
#define TRIT_PARITY_LEDGER_H

#include "parity/compare.h"

#include <jansson.h>

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
    const char *gen1_url, *gen1_model, *gen2_url, *gen2_model;
    /* Each side's identity (client.h trit_client_identity shape) or NULL when unknown; the
     * round records their digests ("v1_ident", "v2_ident"), the full objects live in
     * "identity" records (trit_ledger_identity_json). */
    const json_t *gen1_ident, *gen2_ident;
} trit_round_meta;
json_t *trit_ledger_round_json(const trit_round_meta *m, const trit_client_resp *gen1,
                               const trit_client_resp *gen2, const trit_compare *cmp);
/* A "type":"identity" record: side "v1" | "v2" | "noise", its digest and the full identity.
 * Writers append one per side when a run starts and again whenever a side's digest changes,
 * so every ledger (and every merged piece of one) carries the identities its rounds name. */
json_t *trit_ledger_identity_json(const char *side, const json_t *ident);
/* A JSON string of n bytes; invalid UTF-8 is repaired by trit_utf8_repair (U+FFFD per
 * maximal subpart, as llama-server does), so a record can always be written. */
json_t *trit_ledger_text_json(const char *s, size_t n);
/* A JSON number, or null for NaN and infinities (JSON has neither). */
json_t *trit_json_num(double v);

/* The shape of one side's perplexity run, as `trit ppl --json` writes it in "gen1"/"gen2":
 * chunks x ctx tokens, count = scored tokens; -1 where absent. Two runs compare only when
 * their shapes are equal. */
typedef struct trit_ppl_shape {
    long chunks, ctx, count;
} trit_ppl_shape;
void trit_ppl_shape_from_json(const json_t *side, trit_ppl_shape *s);

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
    int noise_bucket; /* noise lane bucket vs gen-1, -1 if absent */
    int tie;          /* trit_tie */
    long prefix_len;  /* -1 if absent */
    long div_byte;
    int div_token;
    double lat_gen1, lat_gen2; /* seconds; NAN if absent */
    int ntok_gen1, ntok_gen2;
    /* type ppl: */
    double ppl_gen1, ppl_gen1_err, ppl_gen2, ppl_gen2_err, kld_mean; /* NAN if absent */
    trit_ppl_shape ppl_shape1, ppl_shape2;
} trit_ledger_rec;

typedef int (*trit_ledger_fn)(void *user, const trit_ledger_rec *rec, const char *line, size_t len);
typedef struct trit_ledger_scan_info {
    long lines, records, skipped; /* skipped: malformed / truncated lines (each warned once) */
    long last_good_offset;        /* byte offset just after the last complete good line */
    int64_t max_round;            /* highest "round" of type round, -1 if none */
    long duplicates;              /* trit_ledger_scan_many: records seen before (not passed on) */
} trit_ledger_scan_info;
/* Read every line of path; fn (may be NULL) returning nonzero stops the scan. A missing file
 * is an error; malformed lines are skipped with a warning on stderr (unless quiet). */
int trit_ledger_scan(const char *path, trit_ledger_fn fn, void *user, bool quiet,
                     trit_ledger_scan_info *info, trit_err *err);
/* Several ledgers merged, each record once: a record's id is the XXH3-64 of its line, so one
 * ledger given twice, or a copy merged with its original, counts once, while two ledgers'
 * own round 5 (different times, texts) are two records. fn sees only first occurrences;
 * info (may be NULL) sums the files and counts the duplicates. A note on stderr names the
 * duplicate count (unless quiet). */
int trit_ledger_scan_many(const char *const *paths, int n_paths, trit_ledger_fn fn, void *user,
                          bool quiet, trit_ledger_scan_info *info, trit_err *err);
/* Parse one line's summary fields (exposed for tests); -1 if not a complete JSON object. */
int trit_ledger_parse_line(const char *line, size_t len, trit_ledger_rec *rec);

#endif
