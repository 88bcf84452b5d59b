/* parity/dashboard.h — the live burn-in dashboard: one page (src/parity/www/dashboard.*,
 * compiled in) and the JSON it polls, over ledgers that may still be being written.
 * Served by `trit burnin dashboard` on its own and by `trit shadow` under /parity.
 *
 * Contract:
 *  - Following: each ledger is read incrementally. The offset reached (just after the last
 *    complete line) and the file's identity (dev, inode) are remembered; a refresh reads only
 *    the lines appended since. A ledger whose identity changed, that shrank or that vanished
 *    (rotated, replaced by a merged copy) makes the whole view be read again from the start
 *    ("epoch" goes up; miss ids of an older epoch are void). A file that does not exist yet
 *    counts as empty until it appears. A torn last line waits until it is complete.
 *  - Merging: several ledgers count each record once (the XXH3-64 of its line, the rule of
 *    trit_ledger_scan_many), so a ledger and its merged copy do not double.
 *  - Reading: the ledger scanner's summary fields only (a 50 000-round ledger in well under a
 *    second; test dashboard::fifty_thousand_rounds_fast); a reply's texts are read back from
 *    the file at the record's offset only when that miss is opened.
 *  - The gate table is trit_gate_evaluate's (gates.h), the very evaluation `trit gate` prints:
 *    same config, ppl file and ledgers give the same rows. It is recomputed when the ledgers
 *    changed (at most every 2 s, or every 5x the last evaluation's time when that is longer)
 *    and at least every 30 s (the evidence-age check).
 *  - Routes (GET or HEAD; paths after the mount prefix: "" standalone, "/parity" in shadow):
 *      /  (prefix alone: a redirect to prefix/)  the page; /dashboard.js, /dashboard.css
 *      /api/summary   rounds, compared, exact, misses, epoch, per-ledger offsets: polled
 *      /api/gate      {"gates","go","verdict","reason","rounds","config","provenance"}
 *      /api/trend     time buckets (exact rate, noise-lane rate, p50/p95 of each side in ms)
 *                     and per category totals with a rate per bucket
 *      /api/misses?offset=O&limit=N   compared rounds that were not exact, newest first
 *                     (limit at most 200), with top_miss
 *      /api/miss?id=N&epoch=E   one miss: both replies, div_byte, prefix_len, the split's
 *                     top-k per side (the ledger's "split"), gaps, tie
 *    The page's assets need no key (they hold no data); the API routes need the key when one
 *    is set.
 *    Every value from a ledger goes out as JSON; the page inserts text with textContent only.
 *  - trit_dash_serve: http's intake (door rule, Host/Origin checks, the key), the page and
 *    the API, until SIGINT/SIGTERM or trit_dash_request_stop.
 * Depends on gates, stats, ledger, http, base. */
#ifndef TRIT_PARITY_DASHBOARD_H
#define TRIT_PARITY_DASHBOARD_H

#include "parity/gates.h"

#include <jansson.h>
#include <microhttpd.h>

typedef struct trit_dash_opts {
    const char *const *ledgers; /* kept by reference: must outlive the dashboard */
    int n_ledgers;
    const char *config;   /* gate config INI, or NULL (production defaults) */
    const char *ppl_path; /* `trit ppl --json -o` file, or NULL */
    bool allow_unchained; /* as `trit gate --allow-unchained` */
    /* trit_dash_serve only */
    const char *host; /* 127.0.0.1 */
    int port;         /* 0: any free port */
    const char *api_key;
    const char *host_allow;
    bool insecure_no_key;
    bool quiet;
    int bound_port; /* out */
} trit_dash_opts;

typedef struct trit_dash trit_dash;
/* A dashboard over o's ledgers (nothing read yet). */
trit_dash *trit_dash_new(const trit_dash_opts *o);
void trit_dash_free(trit_dash *d);
/* Read what was appended since the last refresh (or everything again after a rotation). */
void trit_dash_refresh(trit_dash *d);

/* The API's answers as JSON (each refreshes first); NULL for an unknown miss id. */
json_t *trit_dash_summary_json(trit_dash *d);
json_t *trit_dash_trend_json(trit_dash *d, int n_buckets);
json_t *trit_dash_misses_json(trit_dash *d, long offset, long limit);
json_t *trit_dash_miss_json(trit_dash *d, long epoch, long id);
json_t *trit_dash_gate_json(trit_dash *d);

/* Is this request-target's path one of the dashboard's under prefix? is_api: under /api/. */
bool trit_dash_route(const char *prefix, const char *path, bool *is_api);
/* Answer one checked request (Host/Origin/key already passed) for path under prefix. */
enum MHD_Result trit_dash_answer(trit_dash *d, struct MHD_Connection *c, const char *method,
                                 const char *prefix, const char *path);

/* Serve the dashboard until SIGINT/SIGTERM; the URL is printed on stdout. 0, or -1 with err
 * (an open door without a key, a port that cannot be bound). */
int trit_dash_serve(trit_dash_opts *o, trit_err *err);
void trit_dash_request_stop(void);

#endif
