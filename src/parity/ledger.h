/* parity/ledger.h — the parity ledger: JSONL records, one writer, one reader (the scanner).
 *
 * Contract: one JSON object per line, appended and fsync'd. Records have "type": "round"
 * (burn-in or shadow, built by trit_ledger_round_json for both), "identity" (a side's full
 * identity, trit_ledger_identity_json), "ppl" (perplexity figures), "event". A writer holds
 * an exclusive flock on the ledger for as long as it is open: a second writer (burn-in or
 * shadow) is refused with an error naming the ledger. The ledger is opened O_NOFOLLOW, must
 * be a regular file (a symlink, fifo or directory is refused) and is fchmod'ed 0600 on open.
 * The ledger is the source of truth; the burn-in state file is only a hint.
 *
 * Hash chain (schema 2): every record the writer appends carries "prev", the SHA-256 hex of
 * the previous complete line's exact bytes (without its newline); the first record of a
 * ledger chains to TRIT_LEDGER_GENESIS (64 '0's). The writer computes it under its flock.
 * A torn last line (a crash inside an append: bytes after the last newline) is cut off when
 * the writer opens the ledger (a warning says how many bytes), so the next record chains to
 * the last complete record, never to the fragment. A ledger written before schema 2 (or its
 * unchained first part) is "unchained": readers accept it, trit_ledger_verify says so.
 * Readers skip a malformed line with a warning and never fail on it; trit_ledger_verify is
 * what judges the chain (a malformed line inside the chained part breaks it).
 *
 * One reader: trit_ledger_parse_line / trit_ledger_scan (a hand-written scanner) for every
 * consumer: stats, gate, report, burn-in resume, shadow. Chosen on measured speed: on a
 * 50 000-round ledger (600-byte replies, 84 MB, test stats::fifty_thousand_rounds_fast) on
 * an AMD EPYC (2 cores shared with other jobs) the scanner reads every line's summary in
 * 0.11 s, jansson's json_loadb of the same lines takes 2.06 s (19x; the scanner skips
 * strings with memchr and builds no tree). trit_ledger_verify (a sha256 per line) takes
 * 0.92 s there. Nested objects the scanner does not walk (a ppl record's figures, an
 * identity record's "ident") are parsed with jansson on those rare
 * lines only; reply texts are unescaped on demand (trit_ledger_unescape).
 *
 * Record fields (name, JSON type, meaning, since schema; 1 = before the chain, 2 = now).
 * Code says gen1/gen2, the file says v1/v2 (file format, kept).
 *   all records
 *     type          string  "round" | "identity" | "ppl" | "event"                       1
 *     ts            number  wall seconds since the epoch                                 1
 *     prev          string  sha256 hex of the previous line, or TRIT_LEDGER_GENESIS      2
 *   "round" (trit_ledger_round_json; burn-in adds noise_*, the shadow proxy "prompt")
 *     source        string  "burnin" | "shadow"                                          1
 *     time          string  ts as ISO-8601 UTC                                           1
 *     round         integer round number, 0-based, unique per writer                     1
 *     prompt_id, category, endpoint   string  the prompt and "completions" | "chat"      1
 *     bucket        string  exact | prefix-only | no-match | v1-unreachable | v2-unr.    1
 *     tie           string|null  "tie" | "real" | null (not a no-match, or unclassified) 1
 *     prefix_len    integer|null common prefix bytes (UTF-8 boundary); null if unreach.  1
 *     div_byte      integer first differing byte, -1 when none                          1
 *     div_token_v1, div_token_v2  integer token index holding div_byte, -1 when none     1
 *     div_token     integer first index where the token sequences differ, -1 when none 2
 *     div_align     string|null "ids" | "text": how the sequences were lined up           2
 *     gap_v1, gap_v2  number|null top-1 minus top-2 logprob at div_token (1: div_token_v*) 1
 *     cause         string|null why a side was unreachable                               1
 *     lat_v1, lat_v2  number  seconds per reply                                          1
 *     ntok_v1, ntok_v2  integer completion tokens, -1 when unreachable                   1
 *     finish_v1, finish_v2  string  finish_reason                                        1
 *     hash_v1, hash_v2  string  sha256 hex of each reply text                            1
 *     split         object  {v1:{t,id,top:[{t,id,lp}]},v2:{..}} at div_token (no-match,
 *                           prefix-only; schema 1: at div_token_v*)                     1
 *     v1, v2        object  {url, model}: base URL and GET /v1/models id                 1
 *     v1_ident, v2_ident  string  trit_identity_digest of each side (when known)         2
 *     text_v1, text_v2  string  the replies (invalid UTF-8 repaired)                     1
 *     noise_bucket, noise_lat, noise_hash, noise_cause, noise, text_noise  noise lane    1
 *     noise_tie, noise_div_token  string|null, integer  the noise lane's split vs gen-1  2
 *     noise_ident   string|null the noise lane's identity digest                         2
 *   "identity" (trit_ledger_identity_json)
 *     side          string  "v1" | "v2" | "noise"                                        2
 *     digest        string|null  trit_identity_digest(ident); null when unknown          2
 *     ident         object|null  client.h trit_client_identity shape; null when unknown    2
 *     error         string  why the identity is unknown (only then; burn-in, shadow)     2
 *   "ppl": gen1/gen2 {ppl, ppl_err, chunks, ctx, count}, kld {mean, ...} (ppl file shape) 1
 *   "event": event (string) and its fields                                              1
 * Depends on compare, client, base, jansson. */
#ifndef TRIT_PARITY_LEDGER_H
#define TRIT_PARITY_LEDGER_H

#include "parity/compare.h"

#include <jansson.h>

/* The schema this writer writes (the "since" column above), and the chain's start. */
#define TRIT_LEDGER_SCHEMA  2
#define TRIT_LEDGER_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

typedef struct trit_ledger trit_ledger; /* an open ledger for appending */
/* Open for append (created 0600 if absent; an existing one is fchmod'ed 0600). Refuses a
 * symlink (O_NOFOLLOW), a fifo, a directory or any other non-regular file. Cuts off a torn
 * last line (warning) and reads the last complete line's hash to continue the chain. */
trit_ledger *trit_ledger_open(const char *path, trit_err *err);
/* Set obj's "prev" to the chain head, append it as one line, fsync, and advance the head.
 * obj must be an object (it keeps the "prev" it was given). */
int trit_ledger_append(trit_ledger *l, json_t *obj, trit_err *err);
/* The chain head: sha256 hex of the last line written (TRIT_LEDGER_GENESIS when empty). */
const char *trit_ledger_head(const trit_ledger *l);
void trit_ledger_close(trit_ledger *l);

/* The standard round record (fields: the table above and docs/parity.md), built from
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
 * so every ledger (and every merged piece of one) carries the identities its rounds name.
 * ident NULL: the side's identity is unknown ("digest" and "ident" null; the caller adds
 * "error", why). */
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
enum { TRIT_REC_ROUND = 0, TRIT_REC_PPL = 1, TRIT_REC_OTHER = 2, TRIT_REC_IDENTITY = 3 };
/* A raw JSON string's contents (escapes kept) inside the line; p NULL when absent. */
typedef struct trit_ledger_str {
    const char *p;
    size_t n;
} trit_ledger_str;
typedef struct trit_ledger_rec {
    int type;
    int64_t round;                             /* -1 if absent */
    double ts;                                 /* wall seconds since epoch ("ts" field, numeric) */
    const char *prompt_id, *category, *source; /* "" if absent; source: "burnin", "shadow" */
    size_t prompt_id_len, category_len, source_len;
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
    /* schema 2: the chain link and each side's identity digest ("" when absent) */
    trit_ledger_str prev;
    char ident_gen1[17], ident_gen2[17];
    /* round: each side's url (v1.url / v2.url), texts and details for the report (raw) */
    trit_ledger_str url_gen1, url_gen2, text_gen1, text_gen2, prompt, cause, time, tie_raw,
        bucket_raw;
    /* type identity: side ("v1", "v2", "noise"), digest, and the full object (jansson,
     * owned by the scanner: valid inside the callback; trit_ledger_rec_clear frees it after
     * trit_ledger_parse_line) */
    char side[8], digest[17];
    json_t *ident;
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
/* Parse one line's summary fields (exposed for tests); -1 if not a complete JSON object.
 * Free what it holds with trit_ledger_rec_clear. */
int trit_ledger_parse_line(const char *line, size_t len, trit_ledger_rec *rec);
void trit_ledger_rec_clear(trit_ledger_rec *rec);
/* A raw JSON string (trit_ledger_str) decoded into out (appended; \uXXXX and surrogate
 * pairs to UTF-8, a lone surrogate or bad escape to U+FFFD). */
void trit_ledger_unescape(trit_ledger_str s, trit_buf *out);

/* ---- the hash chain ---- */
typedef enum {
    TRIT_CHAIN_INTACT = 0,    /* every record chained, from the genesis */
    TRIT_CHAIN_BROKEN = 1,    /* a line edited, removed, inserted or reordered */
    TRIT_CHAIN_UNCHAINED = 2, /* records written before schema 2 (then maybe chained ones) */
    TRIT_CHAIN_EMPTY = 3,     /* no records */
} trit_chain_status;
typedef struct trit_ledger_chain {
    trit_chain_status status;
    long records;    /* complete, non-blank lines */
    long unchained;  /* records before the first one with "prev" */
    long break_line; /* 1-based line number of the first problem; 0 when none */
    bool torn_tail;  /* bytes after the last newline (a crash mid-append): not in the chain */
    char head[65];   /* sha256 hex of the last complete line (the genesis when empty) */
    char msg[256];   /* one line: "intact: N records", or what is wrong and where */
} trit_ledger_chain;
/* Check path's chain line by line. The first line whose "prev" is not the hash of the line
 * before it is named, with what most likely happened: the line before it edited (its hash
 * changed) or a line removed (round numbers skip), a line inserted (this line chains to the
 * one two back), lines reordered (it chains to another line of the file), a line without
 * "prev" or not a record inside the chained part. An edit of the last line or lines cut
 * from the end change only the head: compare heads with a receipt (`trit gate -o`).
 * 0 with c filled, or -1 when the file cannot be read. */
int trit_ledger_verify(const char *path, trit_ledger_chain *c, trit_err *err);
const char *trit_chain_status_name(trit_chain_status s);

#endif
