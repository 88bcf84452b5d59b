/* parity — is gen-2 answering like gen-1? One header per submodule; this one includes the
 * ledger-side ones for callers that use several (cli, shadow):
 *   compare.h  buckets, divergence, the tie rule
 *   ledger.h   JSONL ledger: locked append, round records, scanner
 *   stats.h    aggregates of (de-duplicated) ledgers
 *   gates.h    the cutover gate table
 *   prompts.h  the burn-in prompt corpus
 *   burnin.h   the burn-in loop
 * ladder.h, ppl.h, shadow.h and report.h stand on their own. */
#ifndef TRIT_PARITY_H
#define TRIT_PARITY_H

#include "parity/burnin.h"
#include "parity/compare.h"
#include "parity/gates.h"
#include "parity/ledger.h"
#include "parity/prompts.h"
#include "parity/stats.h"

#endif
