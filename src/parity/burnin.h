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
