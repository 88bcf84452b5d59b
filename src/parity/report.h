/* parity/report — one self-contained HTML page from burn-in / shadow ledgers and ppl figures.
 *
 * Contract: the page has inline CSS and inline SVG only (no scripts, no network, no external
 * fonts); every string that comes from a ledger, a prompt or a reply is HTML-escaped (invalid
 * UTF-8 shown as U+FFFD). Sections (ids): gates (the cutover gate table, evaluated exactly
 * like `trit gate`), summary, ppl, exact-rate (exact-match rate over time), latency (CDF per
 * side), divergence (histogram of the first divergent byte), prompts (misses per prompt),
 * misses (the latest non-exact rounds, replies side by side, divergence highlighted).
 * Malformed ledger lines are skipped (counted), never fatal. Depends on parity, jansson. */
#ifndef TRIT_REPORT_H
#define TRIT_REPORT_H

#include "base/base.h"

typedef struct trit_report_opts {
    const char *const *ledgers;
    int n_ledgers;
    const char *ppl_path; /* may be NULL */
    const char *config;   /* gate INI, may be NULL (defaults) */
    const char *title;    /* NULL: "trit parity report" */
    int max_misses;       /* rounds shown side by side (default 50) */
} trit_report_opts;

/* Build the page into out. */
int trit_report_html(const trit_report_opts *o, trit_buf *out, trit_err *err);
/* HTML-escape s[0..n) into out (exposed for tests). */
void trit_html_escape(trit_buf *out, const char *s, size_t n);

#endif
