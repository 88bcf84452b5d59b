/* server — OpenAI-compatible HTTP server on http's intake (libmicrohttpd + jansson): routes,
 * request validation, SSE streaming, slots/queue (sched.h, inside the module), /metrics.
 *
 * Contract:
 *  - srv_run() loads nothing: it takes a loaded model + tokenizer, serves until SIGINT/SIGTERM
 *    (stop accepting, let in-flight requests finish within cfg->grace_s, cancel the rest) and
 *    returns 0. One trit_ctx (one thread pool using every thread), one scheduler thread, a KV
 *    cache per slot, one bounded FIFO queue. Continuous batching: each step evaluates the next
 *    token of every generating slot and prompt chunks (n_batch tokens, at trit_eval's
 *    boundaries; at most n_batch prompt rows per step, slots taking turns) in ONE batched
 *    forward pass; queued requests take free slots between steps. A request's prompt starts from
 * position 0, or from the prompt cache (--cache-mib, default 256; "cache_prompt": false per
 * request skips it): the prefill KV cells of earlier prompts, kept LRU by bytes and shared by
 * every slot, of which a prompt takes what its longest shared prefix allows where the engine's
 * reuse rule (trit_ctx_reuse_len) keeps every cell and logit bit for bit as a cold prefill
 * (echo + logprobs prompts, which need every prompt row's logits, never take any); while no
 * request waits, a finished reply is re-evaluated as prompt rows (its decode cells are not
 * what a cold prefill makes), so a next turn that resends it takes it too. A reply's
 * bytes and logprobs are the same whatever else runs (the engine's batch invariance) or ran
 * (the reuse rule): any load, arrival order, slot, --slots, --draft or cache state.
 *  - --draft N: every request evaluates up to N prompt-lookup
 *    drafted tokens with each step, verified with single-token numerics: same output, fewer
 *    steps on repetitive text.
 *  - Memory: echo + logprobs keeps only the top-k per prompt position (computed chunk by chunk,
 *    released with the reply); a request over SRV_MAX_PROMPT_LP prompt entries, or over
 *    SRV_MAX_LP entries with its generated tokens (max_tokens, or what the context leaves), is
 *    refused (413). A /tokenize reply is written directly and bounded (32 MiB -> 413).
 *  - Failures are honest: a reply that lost a member to a failed JSON allocation is a 500 with
 *    an OpenAI error body (a stream ends with an error event, no [DONE]), never a partial 200;
 *    a request that cannot be read for lack of memory is a 503. --fault json-alloc=N (a testing
 *    aid) fails every Nth JSON allocation; --fault act=|rope= changes the graph (the engine's
 *    fault injection) so a parity ladder must fail; both print a WARNING and show in /props'
 *    trit numerics and the fingerprint.
 *  - The pure parts (request parsing/validation, stop strings, UTF-8 repair, metrics text) are
 *    exported below so unit tests and the fuzzer can call them without a model. They never
 *    crash on any input: bad input is a srv_error with an HTTP status and an OpenAI error
 *    object {"error":{"message","type","param","code"}}.
 *  - Network policy (docs/SECURITY.md; the rules are http's, shared with trit shadow): a
 *    non-loopback host or cors '*' needs a key (or insecure_no_key, warned), an empty key is an
 *    error; browser origins other than loopback pages (or the cfg->cors list) get 403, and so
 *    do Host names other than this server's when it is bound to loopback (DNS rebinding);
 *    HTTP/1.1 without Host or with two gets 400; request bodies are bounded per request
 *    (max_body -> 413), over all connections (max_body_total -> 503) and per peer (a quarter);
 *    headers have an absolute deadline and bodies a minimum rate; parsing + tokenizing + the
 *    reply on connection threads takes one of max_parsing turns (503 after 5 s); a client that
 *    half-closes after its request still gets the reply.
 *  - Text semantics mirror llama-server so temperature-0 content is byte-identical: generated
 *    bytes accumulate raw; a stop string truncates them; text that could start a stop string
 *    is held back while streaming; a cut-off UTF-8 sequence at the end is never streamed;
 *    invalid UTF-8 is replaced by U+FFFD (maximal-subpart rule, as nlohmann::json's replace).
 *  - Identity (provenance): GET /props answers llama-server's shape plus a "trit" object
 *    (version, commit, build, model path/sha256/size, numerics, kernel set, threads, slots,
 *    n_ctx, n_vocab, a random per-process "instance"); /v1/models' "meta" carries n_vocab,
 *    n_ctx_train, n_embd, n_params, size (tensor bytes, as llama-server) and sha256; every
 *    reply and stream chunk carries system_fingerprint "trit-<version>+<commit>-<kernels>-
 *    <numerics>". The sha256 is computed on a background thread (startup does not wait; it
 *    reads the file once) and is "" with model_sha256_state "pending" until done. /props
 *    needs the API key when one is set, like every route but /health and the page (and
 *    llama-server). /props' "chat_template" is the template in use (ChatML as Jinja when the
 *    model has none), "chat_template_name" its name, "ui" true.
 *  - The chat page (GET/HEAD /, /chat.js, /chat.css; src/server/www, embedded at build time):
 *    loads without the key, like llama-server's; the API calls it makes need it (the page
 *    asks for it and keeps it in memory only). Host/Origin checks apply as everywhere; the
 *    files go out with http's page headers (a strict CSP: no inline script or style).
 * Depends on engine, kernels (the set's name), gguf (tensor sizes), tokenizer, model, base. */
#ifndef TRIT_SERVER_H
#define TRIT_SERVER_H

#include "base/base.h"
#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

#include <pthread.h>
#include <stdatomic.h>

/* ---- errors returned to clients ---- */
typedef struct srv_error {
    int status;     /* HTTP status: 400, 401, 404, 405, 413, 429, 500, 503 */
    char type[32];  /* "invalid_request_error", "authentication_error", "server_error"... */
    char param[48]; /* offending field or "" (rendered as null) */
    char code[48];  /* short machine code or "" (rendered as null) */
    char message[320];
} srv_error;
/* Fill e and return -1. */
int srv_fail(srv_error *e, int status, const char *type, const char *param, const char *code,
             const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* {"error":{...}} as a malloc'd JSON string. */
char *srv_error_json(const srv_error *e);

/* ---- requests ---- */
enum srv_kind { SRV_COMPLETION = 0, SRV_CHAT = 1 };

typedef struct srv_request {
    int kind;
    char *model; /* as sent, or NULL */
    /* completion: prompt text, or token ids when has_ids */
    char *prompt;
    int32_t *prompt_ids;
    size_t n_prompt_ids;
    bool has_ids;
    /* chat: messages (role/content owned by the request) */
    trit_chat_msg *msgs;
    size_t n_msgs;
    int max_tokens; /* -1: until the context is full */
    float temperature, top_p, min_p;
    int top_k;
    uint64_t seed;
    bool has_seed;
    char **stop;
    size_t n_stop;
    bool stream, include_usage;
    bool echo;    /* completion only */
    int logprobs; /* -1: off; else number of alternatives per token (0..20) */
    /* logit_bias {"token id": bias in [-100, 100]}: added to the logits before sampling */
    int32_t *bias_ids;
    float *bias;
    size_t n_bias;
    bool cache_prompt; /* llama-server's: reuse and keep prompt KV cells (default true) */
} srv_request;

/* Parse and validate a request body (any bytes). 0 ok (free with srv_request_free), or -1
 * with e filled (status 400). */
int srv_parse_request(int kind, const char *body, size_t n, srv_request *out, srv_error *e);
void srv_request_free(srv_request *r);

/* POST /tokenize {"content": str, "add_special": bool=false, "parse_special": bool=true,
 * "with_pieces": bool=false} and POST /detokenize {"tokens": [int]}. */
typedef struct srv_tokenize_req {
    char *content;
    size_t len;
    bool add_special, parse_special, with_pieces;
} srv_tokenize_req;
int srv_parse_tokenize(const char *body, size_t n, srv_tokenize_req *out, srv_error *e);
int srv_parse_detokenize(const char *body, size_t n, int32_t **ids, size_t *n_ids, srv_error *e);

/* ---- text helpers (llama-server semantics) ---- */
/* Position where a suffix of text[0..n) is a prefix of stop, or (size_t)-1. */
size_t srv_partial_stop(const char *text, size_t n, const char *stop);

/* Generated-text state of one request: push each token's piece; it returns in *send the
 * bytes that may be streamed now (stop strings cut, partial stops and incomplete UTF-8 held). */
typedef struct srv_text {
    trit_buf gen;  /* all generated bytes (truncated at a stop string) */
    size_t n_sent; /* bytes of gen already handed out by srv_text_push */
    bool stopped;  /* a stop string was found */
} srv_text;
/* not_eog: false for an end-of-generation token (then a partial stop string is not held
 * back). Like llama-server, text is held even on the last token of the budget; the
 * non-streamed answer is t->gen in full. */
void srv_text_push(srv_text *t, const char *piece, size_t n, bool not_eog, char *const *stops,
                   size_t n_stops, trit_buf *send);
void srv_text_free(srv_text *t);

/* ---- metrics ---- */
typedef struct srv_metrics srv_metrics;
srv_metrics *srv_metrics_new(void);
void srv_metrics_free(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, const char *route, int code, double seconds);
void srv_metrics_tokens(srv_metrics *m, long prompt, long generated, double gen_seconds);
void srv_metrics_drafts(srv_metrics *m, long drafted, long accepted);
/* One batched forward pass over `seqs` sequences, `rows` token rows in all. */
void srv_metrics_step(srv_metrics *m, int seqs, int rows);
/* The prompt cache's counters (cumulative) and size, as the scheduler last saw them. */
typedef struct srv_metrics_pcache {
    unsigned long long lookups, hits, reused_tokens, stores, evictions, replayed_tokens;
    unsigned long long bytes, max_bytes, entries;
} srv_metrics_pcache;
void srv_metrics_pcache_set(srv_metrics *m, const srv_metrics_pcache *pc);
/* Prometheus text exposition; queue depth and busy slots are sampled by the caller. */
void srv_metrics_render(srv_metrics *m, int queue_depth, int busy_slots, int n_slots,
                        trit_buf *out);

/* ---- identity (GET /props, /v1/models meta, system_fingerprint) ---- */
/* Every reply's system_fingerprint: "trit-<build>-<kernels>-<numerics>", e.g.
 * "trit-0.1.0+b08b9d8-avx512-exact"; the same for every reply of one build and setup. */
void srv_fingerprint(char *out, size_t n, const char *kernels, const char *numerics);
/* The ChatML template as Jinja: /props' "chat_template" when the model has none. */
const char *srv_chatml_jinja(void);
/* A random 128-bit per-process id, 32 lowercase hex (getrandom; clock+pid fallback). */
void srv_instance_id(char out[33]);

/* The model file's sha256, computed on a background thread so startup does not wait for a
 * read of the whole file (a multi-GB model hashes in seconds to a minute); /props reports
 * "pending" until it is done. The file is read once, by path, as it is when the server
 * starts. */
enum { SRV_HASH_PENDING = 0, SRV_HASH_DONE = 1, SRV_HASH_FAILED = 2 };
typedef struct srv_file_hash {
    char *path;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_int state; /* SRV_HASH_*; hex, seconds and error are valid once it is not PENDING */
    char hex[65];
    double seconds;
    char error[160];
} srv_file_hash;
/* Start hashing path; -1 (state FAILED) when the thread cannot start. */
int srv_file_hash_start(srv_file_hash *h, const char *path);
/* Wait up to timeout_s for a result; returns the state. */
int srv_file_hash_wait(srv_file_hash *h, double timeout_s);
/* Stop (between 1 MiB chunks) and join the thread; frees path. */
void srv_file_hash_stop(srv_file_hash *h);
/* "pending", "done", "failed" */
const char *srv_hash_state_name(int state);

/* ---- the server ---- */
typedef struct srv_config {
    const char *host; /* default 127.0.0.1 */
    int port;         /* default 8180; 0 = any free port */
    int n_slots;      /* sequences served at once; default 4 (llama-server's -np auto) */
    int queue_cap;    /* requests waiting for a slot; default 16 */
    int n_threads;    /* the engine's threads, shared by every slot; 0 -> all CPUs */
    int n_ctx;        /* per slot; 0 -> engine default */
    int n_batch;      /* prompt tokens per prefill chunk; 0 -> engine default (512) */
    const char *api_key;
    size_t max_body;        /* default 1 MiB */
    const char *alias;      /* model name in responses; default the file's basename */
    int chat_tmpl;          /* -1: the model's (chatml when it has none, like llama-server) */
    double grace_s;         /* shutdown: wait this long for in-flight requests; default 10 */
    const char *cors;       /* browser origins allowed (trit_origin_allowed); NULL: loopback */
    const char *host_allow; /* extra Host names accepted when bound to loopback (comma list) */
    size_t max_body_total;  /* body bytes buffered over all connections; default 64 MiB -> 503 */
    int max_parsing;        /* requests parsed + tokenized at once on connection threads
                             * (default 4); a request that waits over 5 s for a turn -> 503 */
    int n_draft;            /* prompt-lookup drafts per step (0 = off, <= 16) */
    int numerics;           /* TRIT_NUMERICS_EXACT (default, bit-identical to llama.cpp) or _FAST */
    bool insecure_no_key;   /* start without a key where http's door rule wants one (warned) */
    int cache_mib;          /* prompt cache bound (--cache-mib, MiB of prefill KV cells; 0 off) */
    /* --fault (a testing aid, warned and shown in /props): force the graph's activation /
     * RoPE (-1: the model's) so a parity ladder over HTTP must fail; fail every Nth JSON
     * allocation (0: never) so every route's out-of-memory answer can be tested; pause
     * fault_step_ms after every batched step (0: never) so a test's request provably outlasts
     * a client's disconnect or a signal on any machine */
    int fault_act, fault_rope;
    unsigned fault_json_alloc;
    int fault_step_ms;
} srv_config;
/* Parse one --fault SPEC into c: "act=silu|relu2", "rope=norm|neox", "json-alloc=N", "step-ms=N" (a
 * comma list of them). 0, or -1 with the reason on stderr. */
int srv_fault_parse(srv_config *c, const char *spec);
void srv_config_default(srv_config *c);
/* Template id for chatml (llama-server's default when the model has no template). */
#define SRV_TMPL_CHATML 100

/* Serve until SIGINT/SIGTERM. Returns 0 after a clean shutdown, -1 on startup failure. */
int srv_run(const srv_config *cfg, trit_model *model, trit_tokenizer *tok, trit_err *err);

#endif
