/* parity/shadow — live shadow proxy: the primary (gen-1) answers, the candidate (gen-2) is
 * compared off the critical path.
 *
 * Contract:
 *  - every request (any method and path) is forwarded to the primary and its answer is
 *    returned unchanged: status, Content-Type and body bytes, streamed through as they arrive
 *    (SSE passes straight through). A primary that cannot be reached gives 502 with an
 *    OpenAI-shaped error body.
 *  - POST /v1/completions and /v1/chat/completions are also copied to the candidate by one
 *    worker thread through a bounded queue; a copy that does not fit is dropped and counted
 *    (never delays the client). The candidate's answer is compared with the primary's
 *    (trit_compare_resps; SSE bodies are reassembled) and appended to the ledger as a
 *    burn-in-format record of type "round" with source "shadow" (rounds continue after the
 *    ledger's highest round).
 *  - runs until SIGINT/SIGTERM or trit_shadow_request_stop(); then drains the queue.
 * Depends on parity (compare, ledger), client (reply parsing), libmicrohttpd, libcurl. */
#ifndef TRIT_SHADOW_H
#define TRIT_SHADOW_H

#include "base/base.h"

typedef struct trit_shadow_opts {
    const char *host; /* listen address (127.0.0.1) */
    int port;         /* 0: any free port (printed) */
    const char *primary, *candidate;
    const char *ledger_path;
    const char *api_key; /* Authorization for the candidate copy (NULL: the client's header) */
    int queue_max;       /* copies waiting for the candidate (64) */
    double timeout_s;    /* per upstream request (600) */
    double tie_eps;
    bool quiet;
    /* filled by trit_shadow_run once listening (for tests / scripts) */
    int bound_port;
} trit_shadow_opts;

void trit_shadow_opts_default(trit_shadow_opts *o);

typedef struct trit_shadow_counts {
    long forwarded, mirrored, dropped, compared, primary_errors;
} trit_shadow_counts;

/* Serve until stopped. counts (may be NULL) gets the totals. */
int trit_shadow_run(trit_shadow_opts *o, trit_shadow_counts *counts, trit_err *err);
void trit_shadow_request_stop(void);

/* Reassemble the text of an SSE completions / chat stream (exposed for tests). */
void trit_shadow_sse_text(const char *body, size_t n, bool is_chat, trit_buf *out, char *finish,
                          size_t finish_sz);

#endif
