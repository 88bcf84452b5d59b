/* client — OpenAI-compatible HTTP client (libcurl): completions, chat, logprobs, streaming.
 *
 * Contract: talks to any OpenAI-compatible server (trit serve, llama-server, vLLM). A call
 * never fails silently: every outcome is a trit_client_resp whose `kind` says what happened
 * (ok / refused / timeout / http_status / bad_json / other) with one-sentence `msg`.
 * Token logprobs are read from both shapes servers return:
 *   - "logprobs":{"content":[{"id","token","bytes","logprob","top_logprobs":[...]}]}
 *     (chat completions everywhere; llama-server also for /v1/completions), and
 *   - the legacy completions shape "logprobs":{"tokens","token_logprobs","top_logprobs"}.
 * A token's text is taken from "bytes" when present (so split UTF-8 sequences survive),
 * else from "token". Token ids are -1 when the server does not return them.
 * Replies are bounded (TRIT_CLIENT_MAX_REPLY or req->max_reply): a longer one is an error,
 * never unbounded memory. trit_api_key_load is the one way commands read API keys (file with
 * safe checks, or an environment variable) so no key has to be on argv.
 * Thread-safe: calls may run concurrently from several threads (trit_client_run_many does
 * that for you). Depends on base, libcurl, jansson. */
#ifndef TRIT_CLIENT_H
#define TRIT_CLIENT_H

#include "base/base.h"

#include <jansson.h>

#define TRIT_CLIENT_MAX_TOP 20

typedef enum trit_client_errkind {
    TRIT_CLIENT_OK = 0,
    TRIT_CLIENT_REFUSED,     /* could not connect (refused, unresolved, reset before reply) */
    TRIT_CLIENT_TIMEOUT,     /* no complete reply within timeout_s */
    TRIT_CLIENT_HTTP_STATUS, /* reply with a status other than 2xx (http_status says which) */
    TRIT_CLIENT_BAD_JSON,    /* 2xx reply whose body is not the expected JSON */
    TRIT_CLIENT_OTHER,
} trit_client_errkind;

/* "ok", "refused", "timeout", "http_status", "bad_json", "other" */
const char *trit_client_errkind_name(trit_client_errkind k);

typedef struct trit_client_alt {
    char *text; /* raw bytes of the alternative token (NUL-terminated, may hold partial UTF-8) */
    size_t len;
    int32_t id; /* -1 if unknown */
    double logprob;
} trit_client_alt;

typedef struct trit_client_token {
    char *text; /* raw bytes of the sampled token */
    size_t len;
    int32_t id; /* -1 if unknown */
    double logprob;
    int n_top; /* alternatives, most likely first */
    trit_client_alt top[TRIT_CLIENT_MAX_TOP];
} trit_client_token;

typedef struct trit_client_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} trit_client_msg;

/* Streaming: called for each content delta as it arrives (tok is the matching token when the
 * chunk carries logprobs, else NULL). Return nonzero to abort the request (kind = other). */
typedef int (*trit_client_chunk_fn)(void *user, const char *delta, size_t n,
                                    const trit_client_token *tok);

typedef struct trit_client_req {
    const char *url;     /* server base: "http://127.0.0.1:8080" (a trailing "/v1" is fine) */
    const char *api_key; /* NULL: no Authorization header */
    const char *model;   /* NULL: field omitted */
    /* completions: */
    const char *prompt;
    /* chat: */
    const trit_client_msg *messages;
    int n_messages;
    int max_tokens;     /* <= 0: field omitted */
    double temperature; /* < 0: field omitted */
    int top_logprobs;   /* 0: logprobs not requested */
    int64_t seed;       /* < 0: field omitted */
    const char *const *stop;
    int n_stop;
    double timeout_s; /* whole request; <= 0 -> 60 s */
    bool stream;      /* SSE; on_chunk (optional) sees each delta */
    trit_client_chunk_fn on_chunk;
    void *user;
    const char *extra_json; /* optional JSON object whose members are merged into the body */
    size_t max_reply;       /* reply bytes accepted; 0 -> TRIT_CLIENT_MAX_REPLY */
} trit_client_req;

/* Replies (body, or the SSE stream as received) longer than this end the call with kind
 * "other" and a message naming the limit, so a misbehaving server cannot exhaust memory. */
#define TRIT_CLIENT_MAX_REPLY ((size_t)64 << 20)

typedef struct trit_client_resp {
    trit_client_errkind kind;
    long http_status; /* 0 if no reply */
    char msg[512];    /* error sentence ("" when ok) */
    char *content;    /* reply text (NUL-terminated, content_len bytes); "" on error */
    size_t content_len;
    trit_client_token *tokens; /* logprobs per generated token (n_tokens; 0 if none returned) */
    int n_tokens;
    char finish_reason[32];
    char model[128];                      /* "model" field of the reply */
    int prompt_tokens, completion_tokens; /* usage; -1 if absent */
    double latency_s;                     /* request start to last byte */
    double ttft_s; /* streaming: time to first content delta; else = latency */
    char *body;    /* raw reply body (non-streaming), NULL otherwise */
} trit_client_resp;

void trit_client_resp_init(trit_client_resp *r);
void trit_client_resp_free(trit_client_resp *r);

/* POST {url}/v1/completions and {url}/v1/chat/completions. Return 0 when kind == OK, else -1
 * (resp is always filled and must be freed). */
int trit_client_completion(const trit_client_req *req, trit_client_resp *resp);
int trit_client_chat(const trit_client_req *req, trit_client_resp *resp);

/* GET {url}{path} (path like "/v1/models", "/health"); or POST when body_json != NULL (e.g.
 * "/tokenize" with {"content":...}). On 2xx with a JSON body, *out gets a new reference.
 * Returns 0 on success, else -1 with resp->kind/msg set (resp may be NULL). */
int trit_client_get_json(const char *url, const char *path, const char *api_key, double timeout_s,
                         json_t **out, trit_client_resp *resp);
int trit_client_post_json(const char *url, const char *path, const char *api_key, double timeout_s,
                          const char *body_json, json_t **out, trit_client_resp *resp);

/* The first model id in GET /v1/models ("" -> -1). */
int trit_client_model_id(const char *url, const char *api_key, double timeout_s, char *out,
                         size_t out_sz, trit_client_resp *resp);

/* ---- server identity (provenance) ----
 * What a server says it is, from GET /props (llama-server, trit serve) and GET /v1/models
 * (every OpenAI-compatible server), each optional, normalized into one JSON object, the one
 * shape every piece of evidence (ladder receipt, ppl file, ledger round, gate) records:
 *   "url"                 base URL as given (no trailing slash, no "/v1")
 *   "engine"              "trit" | "llama.cpp" | "unknown": "trit" when /props has a "trit"
 *                         object or /v1/models says owned_by "trit"; "llama.cpp" when /props
 *                         has a build_info or /v1/models says owned_by "llamacpp"
 *   "build"               trit's "<version>+<commit>", llama.cpp's build_info, or ""
 *   "model"               model path (/props model_path) or the first /v1/models id, or ""
 *   "model_sha256"        64 lowercase hex, "" when the server does not report it (trit serve
 *                         reports it; llama-server does not)
 *   "model_size"          the model FILE's bytes (trit serve), 0 when unknown (llama-server's
 *                         meta "size" counts tensor bytes only and is not used here)
 *   "n_vocab", "n_ctx", "n_ctx_train"   0 when not reported (n_ctx: per slot)
 *   "numerics", "kernels" trit's numerics and kernel set, "" when unknown
 *   "threads"             0 when unknown
 *   "instance"            a per-process id when the server reports one (trit serve), else ""
 *   "system_fingerprint"  what its completion replies carry: trit's "trit-<build>-<kernels>-
 *                         <numerics>", llama-server's build_info (its replies use that); ""
 *   "reported"            array of the endpoints that answered ("/props", "/v1/models")
 * Strings are cut to 1024 bytes; counts are non-negative integers. Each request has
 * timeout_s (<= 0: 60 s); trit serve hashes its model after it starts, and while its /props
 * says the hash is pending this asks again (every 0.1 s, within timeout_s) — after that
 * model_sha256 is "". A server that answers neither endpoint is an error: NULL, with
 * kind/msg in resp (resp may be NULL; when given it is initialised here and must be freed).
 * An unreachable server (refused, timeout on /props) is not asked a second time. */
json_t *trit_client_identity(const char *url, const char *api_key, double timeout_s,
                             trit_client_resp *resp);
/* The normalizer alone (no network): props and models are the parsed replies of GET /props
 * and GET /v1/models, either NULL when that endpoint did not answer. Never fails. */
json_t *trit_identity_normalize(const char *url, const json_t *props, const json_t *models);
/* A short, stable digest (16 hex + NUL) of what a side *is*: engine, build, model,
 * model_sha256, model_size, numerics, kernels — not url, instance or threads, so the same
 * engine and model restarted on another port digests the same. It is the first 16 hex of
 * the sha256 of "trit-identity-v1\n" followed by one "key=value\n" line per field in that
 * order (counts in decimal; a missing field as empty). NULL digests like an empty object. */
void trit_identity_digest(const json_t *ident, char out[17]);
/* True when two identities are the same running server: equal non-empty "instance", or
 * equal "url" (compared after normalizing scheme and host case, a trailing '/', a "/v1"
 * suffix, the scheme's default port, credentials, and localhost / [::1] as 127.0.0.1). */
bool trit_identity_same_server(const json_t *a, const json_t *b);
/* The URL half of that rule alone, for evidence that names servers only by URL: true when
 * both are non-empty and reach one listening socket by the normalization above. */
bool trit_same_server_url(const char *a, const char *b);

/* ---- API keys ---- */
/* The API key a command uses: read from file when file is non-NULL (a regular file of at
 * most 4 KiB, not readable or writable by others — chmod 600 —, one line; the trailing newline
 * and surrounding blanks are stripped; an empty key or one with control bytes is refused),
 * else the environment variable env_name when set and non-empty, else none (*out = NULL).
 * *out is malloc'd. Returns 0, or -1 with err naming the file and the problem. */
int trit_api_key_load(const char *file, const char *env_name, char **out, trit_err *err);
/* A key given on the command line (--api-key KEY): a malloc'd copy; the argv bytes are
 * overwritten with 'x' so ps and /proc/PID/cmdline stop showing the key (they show it until
 * this runs, so a file or the environment is still better). */
char *trit_api_key_take_arg(char *arg);
/* Constant-time check of an 'Authorization: Bearer KEY' header value against want. */
bool trit_api_key_matches(const char *want, const char *authorization);

/* Run several requests concurrently (one thread each); returns when all have finished. */
typedef enum { TRIT_CLIENT_CALL_COMPLETION, TRIT_CLIENT_CALL_CHAT } trit_client_call_kind;
typedef struct trit_client_call {
    trit_client_call_kind kind;
    const trit_client_req *req;
    trit_client_resp *resp; /* caller-owned, initialised by the call */
} trit_client_call;
void trit_client_run_many(trit_client_call *calls, int n);

/* Parse a completions / chat reply body (used by the calls above; exposed for tests and the
 * shadow proxy). is_chat selects choices[0].message.content vs choices[0].text. */
int trit_client_parse_reply(const char *body, size_t n, bool is_chat, trit_client_resp *resp);

#endif
