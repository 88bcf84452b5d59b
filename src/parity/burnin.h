/* parity/burnin.h — the burn-in loop: the same prompt to gen-1 and gen-2, classified, one
 * ledger line per round.
 *
 * Contract: resumable (the ledger is the source of truth; the state file, written 0600 by
 * temp file + fsync + rename + fsync of the directory, is a hint and records the prompt
 * file's hash so an edited corpus is reported on resume). Each side has its own key.
 * With concurrency N, N lanes keep N rounds in flight (each round's gen-1, gen-2 and noise
 * requests at once, so the noise lane sees the same load); finished rounds are appended in
 * round order, so the ledger always holds a gap-free run of rounds and a resume after kill -9
 * redoes exactly the rounds that were in flight (none lost, none written twice). Each side's
 * identity (client.h) is read at the start of a run, after a round found the side
 * unreachable, and every ident_every rounds; an "identity" record is appended at the start
 * and whenever a side's digest changes (unknown — unreadable — included), before any round
 * names the new digest. Depends on ledger, prompts, compare, client. */
#ifndef TRIT_PARITY_BURNIN_H
#define TRIT_PARITY_BURNIN_H

#include "parity/ledger.h"
#include "parity/prompts.h"

/* gen1 is the reference side (`--v1`), gen2 the candidate (`--v2`); the ledger's record
 * fields keep their v1/v2 names (docs/parity.md). */
typedef struct trit_burnin_opts {
    const char *gen1_url, *gen2_url, *noise_url; /* noise_url may be NULL (no noise lane) */
    const char *gen1_key, *gen2_key, *noise_key; /* bearer tokens; NULL: none */
    const char *prompts_path;
    const char *ledger_path;
    const char *state_path; /* NULL -> ledger_path + ".state" */
    long rounds;            /* run until the ledger holds this many rounds; <= 0 with forever */
    bool forever;
    double pace_s;
    int max_tokens;
    bool chat; /* endpoint: chat (true) or completions */
    double timeout_s;
    int top_logprobs; /* 5 */
    double tie_eps;
    double spike_nomatch;  /* halt threshold (0.20) */
    long spike_min_rounds; /* rounds within the last hour before the spike check applies */
    int concurrency;       /* rounds in flight (1..TRIT_BURNIN_MAX_CONCURRENCY); pace is per lane */
    long ident_every;      /* re-read identities every this many rounds (0: only at the start
                            * and after a side was unreachable) */
    bool quiet;
} trit_burnin_opts;

#define TRIT_BURNIN_MAX_CONCURRENCY 256

void trit_burnin_opts_default(trit_burnin_opts *o);
/* How trit_burnin_run ended; each value means one thing (`trit burnin run` maps them to its
 * exit code: INTERRUPTED, a clean stop on SIGINT/SIGTERM, exits 0 like OK). */
typedef enum trit_burnin_status {
    TRIT_BURNIN_OK = 0,          /* the ledger holds the rounds asked for */
    TRIT_BURNIN_ERROR = 1,       /* bad input, ledger in use or not writable */
    TRIT_BURNIN_SPIKE = 3,       /* no-match spike halted the run */
    TRIT_BURNIN_INTERRUPTED = 4, /* SIGINT/SIGTERM (or trit_burnin_request_stop) */
} trit_burnin_status;
/* Run rounds; resumes from the ledger (source of truth) and state file. */
trit_burnin_status trit_burnin_run(const trit_burnin_opts *o, trit_err *err);
/* One side's identity as a ledger writer (burn-in, shadow) tracks it: the full object lives in
 * an "identity" record, rounds carry its digest. */
typedef struct trit_ident_track {
    const char *side; /* "v1", "v2", "noise": the identity record's side */
    const char *url, *key;
    json_t *ident;   /* NULL: unknown (could not be read; never guessed) */
    char digest[17]; /* "" when unknown */
    bool stale;      /* a round found the side unreachable since the last read: read again */
} trit_ident_track;
/* What the side says it is now (trit_client_identity with its key), NULL when unreadable
 * (why says what failed). */
json_t *trit_ident_track_read(const trit_ident_track *s, double timeout_s, char *why,
                              size_t why_sz);
/* Take a fresh read (consumed; NULL = unreadable, why says why): when the digest changed,
 * or always with force (a run's start), append an
 * "identity" record — trit_ledger_identity_json, or for an unknown side one with "digest"
 * and "ident" null and the "error" — so it precedes every round that names the new digest,
 * and say so on stderr unless quiet. A side unreadable at the start is unknown (never
 * guessed) until a read succeeds; a known side that cannot be read later (it is down) keeps
 * its identity, and a different digest once it answers again is recorded as a change.
 * Clears stale. 0, or -1 when the append failed (err). */
int trit_ident_track_take(trit_ident_track *s, json_t *fresh, const char *why, trit_ledger *l,
                          bool force, bool quiet, trit_err *err);
void trit_ident_track_free(trit_ident_track *s);

/* Ask a running trit_burnin_run to stop once the rounds in flight are written (signal-safe). */
void trit_burnin_request_stop(void);

#endif
