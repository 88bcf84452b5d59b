/* parity/burnin.h — the burn-in loop: the same prompt to gen-1 and gen-2, classified, one
 * ledger line per round.
 *
 * Contract: resumable (the ledger is the source of truth; the state file, written 0600 by
 * temp file + fsync + rename + fsync of the directory, is a hint and records the prompt
 * file's hash so an edited corpus is reported on resume). Each side has its own key.
 * Depends on ledger, prompts, compare, client. */
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
    bool quiet;
} trit_burnin_opts;

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
/* Ask a running trit_burnin_run to stop after its current round (signal-safe). */
void trit_burnin_request_stop(void);

#endif
