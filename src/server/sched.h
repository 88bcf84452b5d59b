/* server/sched.h — inside the server: the scheduler and its slots, the jobs that connect them to
 * connection threads, and the state both sides share (the server struct). Not a public API:
 * only src/server includes it, and the tests of its reply builders (tests/unit/test_reply.c,
 * tests/fuzz/fuzz_reply.c).
 *
 * Contract:
 *  - A connection thread makes a job (srv_job_new), fills its request and prompt, and queues it
 *    (srv_enqueue: 429 when every slot is busy and the queue is full, 503 while draining). It
 *    then waits on the job (j->cv) for j->state == JOB_DONE (its status and body), or streams
 *    j->sse; a client that goes away cancels it (srv_job_cancel: a queued job leaves the queue
 *    at once, a running one stops at the next step).
 *  - One scheduler thread (srv_sched_start / srv_sched_stop) admits queued jobs into free slots
 *    between steps and runs one batched forward pass per step over every busy slot (continuous
 *    batching, server.h's contract); it alone touches slots, the engine context and the jobs'
 *    replies. A job's reply is whole or an OpenAI error: a reply part lost to a failed JSON
 *    allocation ends it with a 500 (an error event when streaming), never a partial 200.
 *  - The prompt cache (pcache.h) is the scheduler's: a starting request takes the cells the
 *    engine's reuse rule allows from it (copied into its slot's KV cache), and a request whose
 *    prompt was evaluated whole gives its prompt's cells to it when it ends. A finished reply
 *    is then replayed while no request waits: prompt + reply evaluated as a prompt (from the
 *    cells the reuse rule allows) in idle steps, and kept; a new job on the slot drops it.
 *  - Bounds checked before any work (srv_check_bounds): logprobs entries kept for the reply.
 *  - References: a job has one for its connection (or its SSE response) and one while queued or
 *    running; srv_job_release frees it with the last one. */
#ifndef TRIT_SERVER_SCHED_H
#define TRIT_SERVER_SCHED_H

#include "http/http.h"
#include "server/pcache.h"
#include "server/server.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct server server;

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

typedef struct job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int state;
    atomic_bool cancel;
    server *srv;
    srv_request req;
    int32_t *prompt;
    size_t n_prompt;
    char id[48];
    long created;
    double t0;
    const char *route;
    int fd;
    int peer; /* peer_gone's view of the client: PEER_* */
    /* streaming: SSE bytes produced by the worker, consumed by the connection */
    trit_buf sse;
    size_t sse_off;
    /* non-streaming result */
    int status;
    char *body;
    struct job *next;
} job;

typedef struct lp_acc {
    json_t *content; /* chat / llama-server shape: [{token, logprob, bytes, top_logprobs}] */
    json_t *tokens, *token_logprobs, *top_logprobs, *text_offset; /* legacy completions */
    size_t offset;
} lp_acc;

/* Bounds: slots (and entries per step), drafted tokens per step, and the prompt logprobs
 * entries (positions x (1 + alternatives)) one echo request may keep until its reply. */
#define SRV_MAX_SLOTS     256
#define SRV_MAX_DRAFT     16
#define SRV_MAX_PROMPT_LP 131072
/* Logprobs entries (positions x (1 + alternatives)) one request may keep in all, prompt and
 * generated tokens (max_tokens, or what the context leaves): each is ~0.4 KB of JSON tree. */
#define SRV_MAX_LP 131072
/* Bytes of one /tokenize reply (a 1 MiB text with pieces is ~22 MB) */
#define SRV_MAX_REPLY (32 << 20)

/* A slot: one sequence's KV cache and the state of the request it serves (j == NULL: free). */
typedef struct slot {
    server *srv;
    int id;
    trit_seq *seq;
    job *j;
    int n_eval;   /* prompt tokens evaluated (or taken from the prompt cache) */
    int n_reused; /* prompt tokens taken from the prompt cache */
    /* idle replay of a finished request (no job): hist[0..replay_n) to hold as prefill cells,
     * evaluated from replay_pos on; replay_n == 0: none */
    int replay_n, replay_pos;
    int pos;       /* position of feed[0] in the next step */
    int32_t *feed; /* next step's tokens: the last chosen one, then drafts */
    int n_feed;
    float *rows;   /* logits of the last step's rows (1 + SRV_MAX_DRAFT) x n_vocab */
    int n_rows;    /* rows not yet consumed */
    float *biased; /* n_vocab: logits with logit_bias applied */
    int32_t *hist; /* prompt + generated tokens (prompt-lookup drafts) */
    int n_hist;
    bool want_lp;      /* logprobs of generated tokens */
    bool prompt_lp;    /* echo + logprobs: logprobs of the prompt tokens too */
    trit_sampler *smp; /* NULL: greedy */
    srv_text text;
    lp_acc lp;
    trit_buf echo, send, piece;
    long n_gen, n_drafted, n_accepted;
    double t_start, t_gen;
    unsigned long jmark; /* jansson failures on the scheduler thread when the request started */
    bool broken;         /* a reply part could not be built: the request ends with a 500 */
} slot;

struct server {
    srv_config cfg;
    trit_model *model;
    trit_tokenizer *tok;
    char *name;
    int n_ctx, n_vocab;
    int chat_tmpl;
    trit_ctx *ctx; /* one engine context: the thread pool and scratch of every step */
    slot *slots;
    int n_slots;
    int n_draft;        /* drafted tokens per step at most (--draft) */
    int rr;             /* the slot that comes first in the next step */
    srv_pcache *pcache; /* the prompt cache (NULL: --cache-mib 0) */
    pthread_t sched;
    bool sched_started;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    job *head, *tail;
    int qlen, busy;
    bool workers_exit;
    atomic_bool draining;
    atomic_bool cancel_all;
    srv_metrics *metrics;
    trit_http_daemon hd;
    trit_http_intake in; /* the intake's checks: bound address, Host names, CORS, key, body */
    long created;
    atomic_ulong seq;
    uint64_t id_salt;
    /* connection-thread work limit: parsers at once (bodies are http's guard's) */
    pthread_mutex_t pmu;
    pthread_cond_t pcv;
    int parsing;
    /* identity (/props, /v1/models meta, system_fingerprint): fixed at start */
    srv_file_hash hash; /* the model file's sha256, computed on a background thread */
    char instance[33];  /* random per process */
    char build[96];     /* "<version>+<commit>" */
    char fingerprint[160];
    const char *kernels; /* the kernel set the engine uses */
    char numerics[96];   /* "exact" / "fast", "-FAULT+act=relu2" under --fault */
    size_t model_size;   /* the model file's bytes */
    size_t tensor_bytes; /* bytes of every tensor (llama-server's meta "size") */
    int64_t n_params;    /* elements of every tensor (llama-server's meta "n_params") */
};

/* ---- shared helpers ---- */
/* A JSON string of s[0..n) as valid UTF-8 (base's repair rule), "" when out of memory. */
json_t *srv_jstr(const char *s, size_t n);
/* Fill e with the 500 a reply becomes when it could not be built whole; returns -1. */
int srv_oom_error(srv_error *e);
/* pthread_cond_timedwait for at most ms (< 1000) milliseconds from now. */
void srv_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms);

/* ---- jobs ---- */
job *srv_job_new(server *s, const char *route);
void srv_job_release(job *j);
/* Queue j for a slot: 0, or -1 with e (429 queue full, 503 shutting down). */
int srv_enqueue(server *s, job *j, srv_error *e);
/* The client is gone; call without holding j->mu or s->qmu. */
void srv_job_cancel(job *j);

/* ---- the scheduler ---- */
/* The slots' KV caches and buffers (after s->ctx, n_slots, n_draft, n_ctx, n_vocab are set). */
void srv_slots_new(server *s);
void srv_slots_free(server *s);
/* Start the scheduler thread: 0, or -1 with err. */
int srv_sched_start(server *s, trit_err *err);
/* Let the scheduler finish what it holds and join it (no-op when it never started). */
void srv_sched_stop(server *s);
/* The scheduler thread's body (srv_sched_start runs it). */
void *srv_scheduler(void *arg);

/* ---- reply builders (the scheduler's steps; tests/fuzz/fuzz_reply.c drives them) ---- */
/* Start job j on free slot sl: the request's sampling, text and logprobs state. */
void srv_slot_start(slot *sl, job *j);
/* Emit generated token tok (chosen from logits) whose input position would be `pos`: text,
 * logprobs, a streamed chunk. Returns the finish reason when generation ends here. */
const char *srv_emit_token(slot *sl, int32_t tok, const float *logits, int pos);
/* End the slot's request (finish NULL: cancelled; fail: an error): the last SSE events or the
 * JSON body, metrics; gives the slot back (s->busy counts it) and drops the job's reference. */
void srv_slot_finish(slot *sl, const char *finish, const srv_error *fail);
/* The /tokenize reply into out (server.c); -1 when it would exceed SRV_MAX_REPLY bytes. */
int srv_tokenize_reply(server *s, const int32_t *ids, size_t n, bool with_pieces, trit_buf *out);

#endif
