/* parity/shadow — live shadow proxy: gen-1 (the primary) answers, gen-2 (the candidate) is
 * compared off the critical path.
 *
 * Contract:
 *  - every request whose target is origin-form ("/path[?query]", validated by
 *    trit_shadow_check_target) is forwarded to gen-1 and its answer returned unchanged:
 *    status, Content-Type and body bytes, streamed through as they arrive (SSE passes
 *    straight through). The upstream URL is always gen-1's configured scheme://host:port
 *    (+ its base path) followed by the validated path and query, so no request can make the
 *    proxy talk to another host. Other targets get 400, bodies over max_body 413, header
 *    values over TRIT_SHADOW_MAX_HEADER bytes 431, requests with an Origin header (browser
 *    pages) 403, a gen-1 that cannot be reached 502; all
 *    with an OpenAI-shaped error body. Only Authorization, Content-Type and Accept are
 *    forwarded to gen-1.
 *  - POST /v1/completions and /v1/chat/completions are also copied to gen-2 by one worker
 *    thread through a bounded queue (queue_max copies); a copy that does not fit, or whose
 *    gen-1 reply is over max_reply bytes, is dropped and counted (never delays the client).
 *    The client's Authorization goes to gen-2 only with forward_auth; gen2_key replaces it.
 *    The two answers are compared (trit_compare_resps; SSE bodies are reassembled) and one
 *    record built by trit_ledger_round_json (source "shadow", rounds continue after the
 *    ledger's highest round) is appended to the ledger.
 *  - with a ledger, GET /parity/ (and /parity/...) is not forwarded: it is the burn-in
 *    dashboard over that ledger (parity/dashboard.h); its page needs no key (like /health),
 *    its /parity/api/ routes need the key; Host and Origin rules as for every request.
 *  - runs until SIGINT/SIGTERM or trit_shadow_request_stop(); then in-flight requests and the
 *    queue get grace_s seconds, after which every upstream transfer is aborted and the rest
 *    of the queue dropped: shutdown is bounded by grace_s plus about a second. No thread the
 *    proxy started outlives trit_shadow_run.
 * Depends on parity (compare, ledger, dashboard), client (reply parsing), libmicrohttpd,
 * libcurl. */
#ifndef TRIT_SHADOW_H
#define TRIT_SHADOW_H

#include "base/base.h"

#define TRIT_SHADOW_MAX_TARGET 8192 /* request-target bytes (longer: 414) */
#define TRIT_SHADOW_MAX_HEADER 8192 /* bytes of one forwarded header value (longer: 431) */

typedef struct trit_shadow_opts {
    const char *host;                /* listen address (127.0.0.1) */
    int port;                        /* 0: any free port (printed) */
    const char *gen1_url, *gen2_url; /* --primary, --candidate */
    const char *ledger_path;
    const char *api_key;    /* clients must send 'Authorization: Bearer KEY' (NULL: no check) */
    const char *gen2_key;   /* Authorization for the gen-2 copy (NULL: see forward_auth) */
    bool forward_auth;      /* send the client's Authorization to gen-2 when gen2_key is NULL */
    const char *host_allow; /* extra Host names accepted when listening on loopback (comma list;
                             * base.h trit_host_allowed); others get 403 (DNS rebinding) */
    int queue_max;          /* copies waiting for gen-2 (64) */
    size_t max_body;        /* request body limit (1 MiB, like trit serve) */
    size_t max_reply;       /* gen-1 reply bytes kept for the comparison (16 MiB) */
    double timeout_s;       /* per upstream request (600) */
    double grace_s;         /* shutdown: in-flight work gets this long (5) */
    double tie_eps;
    bool quiet;
    bool insecure_no_key; /* listen beyond loopback without api_key (http's door rule; warned) */
    /* filled by trit_shadow_run once listening (for tests / scripts) */
    int bound_port;
} trit_shadow_opts;

void trit_shadow_opts_default(trit_shadow_opts *o);

typedef struct trit_shadow_counts {
    long forwarded, mirrored, dropped, compared, gen1_errors, refused;
} trit_shadow_counts;

/* Serve until stopped. counts (may be NULL) gets the totals. */
int trit_shadow_run(trit_shadow_opts *o, trit_shadow_counts *counts, trit_err *err);
void trit_shadow_request_stop(void);

/* ---- the request path's pure checks (exposed for tests and the fuzzer) ---- */
typedef struct trit_shadow_target {
    const char *path; /* points into the target; starts with '/' */
    size_t path_len;
    const char *query; /* after '?', or NULL */
    size_t query_len;
} trit_shadow_target;
/* Validate a raw request-target (as sent on the request line). Accepted: origin-form only —
 * "/" then path bytes from RFC 3986's pchar set without '@' and '\', no "//", no "." / ".."
 * segment, percent-escapes only of printable bytes or space other than / \ @ % . ? #; then
 * optionally
 * "?" and a query of printable ASCII without '#' and '\' (escapes well-formed). Returns 0, or
 * the HTTP status to refuse with (400; 414 when longer than TRIT_SHADOW_MAX_TARGET) with a
 * sentence in why. */
int trit_shadow_check_target(const char *target, trit_shadow_target *t, char *why, size_t why_sz);
/* A header value to forward: 0, 400 (CR, LF or another control byte but tab) or 431 (longer
 * than TRIT_SHADOW_MAX_HEADER), with why naming the header. */
int trit_shadow_check_header(const char *name, const char *value, char *why, size_t why_sz);
/* An upstream base URL for --primary / --candidate: http or https, a host, no user info,
 * query or fragment. 0, or -1 with why. */
int trit_shadow_check_base(const char *base, char *why, size_t why_sz);
/* base's scheme://host:port + its path (without a trailing '/') + t's path [+ '?' query], as
 * a malloc'd string; NULL (with why) if base is invalid. */
char *trit_shadow_upstream_url(const char *base, const trit_shadow_target *t, char *why,
                               size_t why_sz);

/* Reassemble the text of an SSE completions / chat stream (exposed for tests). */
void trit_shadow_sse_text(const char *body, size_t n, bool is_chat, trit_buf *out, char *finish,
                          size_t finish_sz);

#endif
