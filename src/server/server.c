/* server/server.c — libmicrohttpd daemon (a thread per connection), routes, auth, body limit,
 * slots (a KV cache each) served by one scheduler thread with continuous batching over one
 * trit_ctx (one thread pool using every thread), the bounded FIFO queue, generation, SSE and
 * graceful shutdown. */
#include "server/server.h"

#include "gguf/gguf.h"
#include "http/http.h"
#include "kernels/kernels.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- routes ---- */
enum {
    R_HEALTH,
    R_MODELS,
    R_PROPS,
    R_METRICS,
    R_COMPLETIONS,
    R_CHAT,
    R_TOKENIZE,
    R_DETOKENIZE,
    R_NOTFOUND
};
static const struct {
    const char *path, *method, *name;
    int id;
} routes[] = {
    {"/health", "GET", "/health", R_HEALTH},
    {"/v1/health", "GET", "/health", R_HEALTH},
    {"/v1/models", "GET", "/v1/models", R_MODELS},
    {"/models", "GET", "/v1/models", R_MODELS},
    {"/props", "GET", "/props", R_PROPS},
    {"/metrics", "GET", "/metrics", R_METRICS},
    {"/v1/completions", "POST", "/v1/completions", R_COMPLETIONS},
    {"/completions", "POST", "/v1/completions", R_COMPLETIONS},
    {"/v1/chat/completions", "POST", "/v1/chat/completions", R_CHAT},
    {"/chat/completions", "POST", "/v1/chat/completions", R_CHAT},
    {"/tokenize", "POST", "/tokenize", R_TOKENIZE},
    {"/detokenize", "POST", "/detokenize", R_DETOKENIZE},
};

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
#define SRV_MAX_LP 262144
/* Bytes of one /tokenize reply (a 1 MiB text with pieces is ~22 MB) */
#define SRV_MAX_REPLY (32 << 20)

/* A slot: one sequence's KV cache and the state of the request it serves (j == NULL: free). */
typedef struct slot {
    server *srv;
    int id;
    trit_seq *seq;
    job *j;
    int n_eval;    /* prompt tokens evaluated */
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
    int n_draft; /* drafted tokens per step at most (--draft) */
    int rr;      /* the slot that comes first in the next step */
    pthread_t sched;
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

/* One request on a connection: its body as it arrives, and why it was refused if it was. */
typedef struct conn {
    trit_buf body;
    int refused; /* TRIT_HTTP_BODY_TOO_BIG / _BUSY once a chunk was refused, else 0 */
    bool body_done;
    double t0;
} conn;

/* ---- small helpers ---- */
static json_t *jstr(const char *s, size_t n) {
    trit_buf b = {0};
    trit_utf8_repair(s, n, &b);
    json_t *v = json_stringn(b.p, b.len);
    trit_buf_free(&b);
    return v ? v : json_string("");
}

static void make_id(server *s, const char *prefix, char out[48]) {
    unsigned long n = atomic_fetch_add(&s->seq, 1);
    uint64_t x[2] = {s->id_salt, n};
    uint64_t h = trit_hash64(x, sizeof x);
    snprintf(out, 48, "%s%016llx%04lx", prefix, (unsigned long long)h, n & 0xffff);
}

/* CORS headers for an allowed browser origin (the handler refused the others with 403): the
 * origin is echoed, never "*", unless --cors '*' was given. */
static void add_cors(server *s, struct MHD_Connection *c, struct MHD_Response *r) {
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin || !trit_origin_allowed(origin, s->cfg.cors)) return;
    bool any = s->cfg.cors && !strcmp(s->cfg.cors, "*");
    MHD_add_response_header(r, "Access-Control-Allow-Origin", any ? "*" : origin);
    MHD_add_response_header(r, "Vary", "Origin");
}

/* Every reply leaves through here: its type, CORS for an allowed origin, Retry-After on
 * 429/503 (http's), Allow on 405. */
static enum MHD_Result send_body(server *s, struct MHD_Connection *c, int status, const char *ctype,
                                 char *body /* taken */, const char *allow) {
    struct MHD_Response *r = trit_http_response((unsigned)status, ctype, body);
    if (r) add_cors(s, c, r);
    if (r && allow) MHD_add_response_header(r, "Allow", allow);
    return trit_http_queue(c, (unsigned)status, r);
}

static enum MHD_Result send_error_allow(server *s, struct MHD_Connection *c, conn *cn,
                                        const char *route, const srv_error *e, const char *allow) {
    srv_metrics_request(s->metrics, route, e->status, trit_now_s() - cn->t0);
    return send_body(s, c, e->status, "application/json; charset=utf-8", srv_error_json(e), allow);
}

static enum MHD_Result send_error(server *s, struct MHD_Connection *c, conn *cn, const char *route,
                                  const srv_error *e) {
    return send_error_allow(s, c, cn, route, e, NULL);
}

/* The 500 a reply becomes when its JSON could not be built whole (never a partial 200). */
static int oom_error(srv_error *e) {
    return srv_fail(e, 500, "server_error", NULL, "out_of_memory",
                    "out of memory while building the reply; retry shortly");
}

/* A JSON reply built since mark: sent when it is whole, else a 500 with an error body. */
static enum MHD_Result send_json(server *s, struct MHD_Connection *c, conn *cn, const char *route,
                                 int status, json_t *v, unsigned long mark) {
    char *body = trit_http_dumps(v, mark);
    if (!body) {
        srv_error e = {0};
        oom_error(&e);
        return send_error(s, c, cn, route, &e);
    }
    srv_metrics_request(s->metrics, route, status, trit_now_s() - cn->t0);
    return send_body(s, c, status, "application/json; charset=utf-8", body, NULL);
}

/* pthread_cond_timedwait for at most ms (< 1000) milliseconds from now */
static void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

/* What peer_gone has seen of a job's client. */
enum { PEER_UNCHECKED = 0, PEER_SENDING, PEER_HALF_CLOSED };

/* True when the client is gone: the connection was reset or closed in both directions, or
 * it stopped sending (end-of-file) while the request was being served. A client may instead
 * shut down its sending side right after the request (a half-close) and still read the reply:
 * TCP cannot tell the two apart before a byte is written, so end-of-file already present at
 * the first check (about 100 ms after the request arrived) is taken as a half-close and the
 * reply is sent; end-of-file that appears later is a client that gave up (a timeout). */
static bool peer_gone(job *j) {
    if (j->fd < 0) return false;
    struct pollfd p = {.fd = j->fd, .events = POLLIN};
    int first = j->peer == PEER_UNCHECKED;
    if (first) j->peer = PEER_SENDING;
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLERR)) return true;
    if (!(p.revents & POLLIN)) return false;
    char b;
    ssize_t r = recv(j->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    if (r > 0 || j->peer == PEER_HALF_CLOSED) return false; /* pipelined bytes / known */
    if (first) {
        j->peer = PEER_HALF_CLOSED;
        return false;
    }
    return true;
}

/* ---- connection-thread work limits ---- */
/* A turn to parse + tokenize on a connection thread; waits up to 5 s. false: busy (503). */
static bool parse_turn_take(server *s) {
    double deadline = trit_now_s() + 5;
    pthread_mutex_lock(&s->pmu);
    while (s->parsing >= s->cfg.max_parsing && trit_now_s() < deadline)
        cond_wait_ms(&s->pcv, &s->pmu, 100);
    bool ok = s->parsing < s->cfg.max_parsing;
    if (ok) s->parsing++;
    pthread_mutex_unlock(&s->pmu);
    return ok;
}

static void parse_turn_give(server *s) {
    pthread_mutex_lock(&s->pmu);
    s->parsing--;
    pthread_cond_signal(&s->pcv);
    pthread_mutex_unlock(&s->pmu);
}

static int busy_error(srv_error *e) {
    return srv_fail(e, 503, "server_error", NULL, "server_busy",
                    "the server is busy parsing other requests; retry shortly");
}

/* ---- jobs ---- */
static job *job_new(server *s, const char *route) {
    job *j = xcalloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->srv = s;
    j->route = route;
    j->fd = -1;
    j->created = (long)trit_wall_s();
    j->t0 = trit_now_s();
    return j;
}

static void job_release(job *j) {
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    srv_request_free(&j->req);
    free(j->prompt);
    trit_buf_free(&j->sse);
    trit_http_body_free(j->body);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* Hand one SSE event to the connection thread that streams it. */
static void job_sse(job *j, const char *data) {
    pthread_mutex_lock(&j->mu);
    trit_http_sse_event(&j->sse, data);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* Stream v as one event when it was built whole since mark; false (nothing sent) otherwise,
 * and the request then ends with an error event instead of a partial stream. */
static bool job_sse_json(job *j, json_t *v, unsigned long mark) {
    char *s = trit_http_dumps(v, mark);
    if (!s) return false;
    job_sse(j, s);
    free(s);
    return true;
}

/* The job's outcome (status and, unless streamed, its body), for the waiting connection. */
static void job_finish(job *j, int status, char *body) {
    pthread_mutex_lock(&j->mu);
    j->status = status;
    trit_http_body_free(j->body);
    j->body = body;
    j->state = JOB_DONE;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* A failed job: the error as the stream's last event, or as the reply body. */
static void job_fail(job *j, const srv_error *e) {
    char *body = srv_error_json(e);
    if (j->req.stream) {
        job_sse(j, body);
        trit_http_body_free(body);
        body = NULL;
    }
    job_finish(j, e->status, body);
}

/* Enqueue; -1 with e set when the queue is full or the server is stopping. */
static int enqueue(server *s, job *j, srv_error *e) {
    pthread_mutex_lock(&s->qmu);
    if (atomic_load(&s->draining) || s->workers_exit) {
        pthread_mutex_unlock(&s->qmu);
        return srv_fail(e, 503, "server_error", NULL, "shutting_down", "server is shutting down");
    }
    /* an idle slot takes the job at once; otherwise it waits in the bounded queue */
    int idle = s->n_slots - s->busy;
    if (s->qlen >= idle + s->cfg.queue_cap) {
        pthread_mutex_unlock(&s->qmu);
        return srv_fail(e, 429, "rate_limit_error", NULL, "queue_full",
                        "all %d slots are busy and the queue (%d) is full; retry later", s->n_slots,
                        s->cfg.queue_cap);
    }
    j->refs++; /* the scheduler's reference */
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->qlen++;
    pthread_cond_broadcast(&s->qcv); /* the scheduler, which may be waiting for work */
    pthread_mutex_unlock(&s->qmu);
    return 0;
}

/* The client is gone: stop the job, and take it out of the queue at once if it has not
 * started, so it stops holding a queue place. Call without holding j->mu or s->qmu. */
static void job_cancel(job *j) {
    server *s = j->srv;
    atomic_store(&j->cancel, true);
    bool unlinked = false;
    pthread_mutex_lock(&s->qmu);
    for (job **pp = &s->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            if (s->tail == j) s->tail = prev;
            j->next = NULL;
            s->qlen--;
            unlinked = true;
            break;
        }
    pthread_mutex_unlock(&s->qmu);
    if (!unlinked) return;
    job_finish(j, 499, NULL);
    job_release(j); /* the reference the worker would have dropped */
}

/* ---- logprobs ---- */

static json_t *bytes_arr(const char *p, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer((unsigned char)p[i]));
    return a;
}

static void lp_init(lp_acc *a) {
    a->content = json_array();
    a->tokens = json_array();
    a->token_logprobs = json_array();
    a->top_logprobs = json_array();
    a->text_offset = json_array();
    a->offset = 0;
}

static void lp_free(lp_acc *a) {
    json_decref(a->content);
    json_decref(a->tokens);
    json_decref(a->token_logprobs);
    json_decref(a->top_logprobs);
    json_decref(a->text_offset);
    memset(a, 0, sizeof *a);
}

/* Record token `tok` (with logits giving its distribution, or NULL for the first prompt
 * token) into a. text_len: bytes this token adds to the returned text. */
static void lp_add(server *s, lp_acc *a, int32_t tok, const float *logits, int k) {
    trit_buf piece = {0};
    trit_tok_piece(s->tok, tok, false, &piece);
    json_t *ent = json_object();
    json_object_set_new(ent, "id", json_integer(tok));
    json_object_set_new(ent, "token", jstr(piece.p ? piece.p : "", piece.len));
    json_object_set_new(ent, "bytes", bytes_arr(piece.p, piece.len));
    json_array_append_new(a->tokens, jstr(piece.p ? piece.p : "", piece.len));
    json_array_append_new(a->text_offset, json_integer((json_int_t)a->offset));
    a->offset += piece.len;
    if (!logits) {
        json_object_set_new(ent, "logprob", json_null());
        json_object_set_new(ent, "top_logprobs", json_array());
        json_array_append_new(a->token_logprobs, json_null());
        json_array_append_new(a->top_logprobs, json_null());
    } else {
        double lse = trit_logsumexp(logits, s->n_vocab);
        json_object_set_new(ent, "logprob", json_real(logits[tok] - lse));
        json_array_append_new(a->token_logprobs, json_real(logits[tok] - lse));
        int32_t ids[32];
        int n = k > 0 ? trit_top_k(logits, s->n_vocab, TRIT_MIN(k, 32), ids) : 0;
        json_t *tops = json_array(), *dict = json_object();
        for (int i = 0; i < n; i++) {
            trit_buf p = {0};
            trit_tok_piece(s->tok, ids[i], false, &p);
            json_t *t = json_object();
            json_object_set_new(t, "id", json_integer(ids[i]));
            json_object_set_new(t, "token", jstr(p.p ? p.p : "", p.len));
            json_object_set_new(t, "logprob", json_real(logits[ids[i]] - lse));
            json_object_set_new(t, "bytes", bytes_arr(p.p, p.len));
            json_array_append_new(tops, t);
            trit_buf r = {0};
            trit_utf8_repair(p.p ? p.p : "", p.len, &r);
            if (!json_object_get(dict, r.p))
                json_object_set_new(dict, r.p, json_real(logits[ids[i]] - lse));
            trit_buf_free(&r);
            trit_buf_free(&p);
        }
        json_object_set_new(ent, "top_logprobs", tops);
        json_array_append_new(a->top_logprobs, dict);
    }
    json_array_append_new(a->content, ent);
    trit_buf_free(&piece);
}

static json_t *lp_legacy(lp_acc *a) {
    json_t *o = json_object();
    json_object_set(o, "tokens", a->tokens);
    json_object_set(o, "token_logprobs", a->token_logprobs);
    json_object_set(o, "top_logprobs", a->top_logprobs);
    json_object_set(o, "text_offset", a->text_offset);
    json_object_set(o, "content", a->content);
    return o;
}

static json_t *lp_chat(lp_acc *a) {
    json_t *o = json_object();
    json_object_set(o, "content", a->content);
    return o;
}

/* ---- response shapes ---- */
static json_t *usage_json(long prompt, long gen) {
    json_t *u = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(prompt));
    json_object_set_new(u, "completion_tokens", json_integer(gen));
    json_object_set_new(u, "total_tokens", json_integer(prompt + gen));
    return u;
}

static json_t *envelope(job *j, const char *object) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "object", json_string(object));
    json_object_set_new(o, "created", json_integer(j->created));
    json_object_set_new(o, "model", json_string(j->srv->name));
    json_object_set_new(o, "system_fingerprint", json_string(j->srv->fingerprint));
    return o;
}

/* One streamed chunk: text delta (may be empty), optional logprobs, optional finish. A chunk
 * that cannot be built whole marks the slot broken (its request ends with an error event). */
static void emit_chunk(slot *sl, const char *text, size_t n, json_t *lp /* taken */,
                       const char *finish, bool first) {
    job *j = sl->j;
    bool chat = j->req.kind == SRV_CHAT;
    json_t *o = envelope(j, chat ? "chat.completion.chunk" : "text_completion");
    json_t *ch = json_object();
    json_object_set_new(ch, "index", json_integer(0));
    if (chat) {
        json_t *delta = json_object();
        if (first) json_object_set_new(delta, "role", json_string("assistant"));
        if (!finish || n) json_object_set_new(delta, "content", jstr(text, n));
        json_object_set_new(ch, "delta", delta);
    } else {
        json_object_set_new(ch, "text", jstr(text, n));
    }
    json_object_set_new(ch, "logprobs", lp ? lp : json_null());
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *arr = json_array();
    json_array_append_new(arr, ch);
    json_object_set_new(o, "choices", arr);
    if (!job_sse_json(j, o, sl->jmark)) sl->broken = true;
}

/* ---- generation: one scheduler thread, continuous batching ----
 * Every step runs one batched forward pass (trit_batch_eval) over the busy slots: the last
 * chosen token (plus drafted tokens, --draft) of every generating slot, and the next prompt
 * chunks (n_batch tokens, the boundaries trit_eval uses; n_batch prompt rows per step at most,
 * slots taking turns) of slots still in their prompt. New requests take a free slot between
 * steps. The engine's batch invariance makes every reply's bytes and logprobs independent of
 * the other requests, their arrival, the slot and --slots. */

/* Start job j on free slot sl: the request's sampling, text and logprobs state. */
static void slot_start(slot *sl, job *j) {
    server *s = sl->srv;
    srv_request *r = &j->req;
    sl->j = j;
    sl->n_eval = 0;
    sl->n_rows = 0;
    sl->n_gen = 0;
    sl->n_drafted = sl->n_accepted = 0;
    sl->t_start = trit_now_s();
    sl->jmark = trit_http_json_mark();
    sl->broken = false;
    sl->prompt_lp = r->kind != SRV_CHAT && r->echo && r->logprobs >= 0;
    sl->want_lp = r->logprobs >= 0;
    memcpy(sl->hist, j->prompt, j->n_prompt * sizeof *sl->hist);
    sl->n_hist = (int)j->n_prompt;
    if (sl->want_lp) lp_init(&sl->lp);
    trit_buf_puts(&sl->echo, "");
    if (r->echo) {
        if (r->has_ids)
            trit_tok_decode(s->tok, j->prompt, j->n_prompt, false, &sl->echo);
        else
            trit_buf_puts(&sl->echo, r->prompt);
    }
    /* the first prompt token has no distribution; the others arrive with the prompt chunks */
    if (sl->prompt_lp) lp_add(s, &sl->lp, j->prompt[0], NULL, r->logprobs);
    sl->smp = NULL;
    if (r->temperature > 0) {
        trit_sampler_params sp = {.temp = r->temperature,
                                  .top_k = r->top_k,
                                  .top_p = r->top_p,
                                  .min_p = r->min_p,
                                  .seed =
                                      r->has_seed ? r->seed : (uint64_t)trit_now_ns() ^ s->id_salt};
        sl->smp = trit_sampler_new(&sp);
    }
    trit_buf_puts(&sl->text.gen, "");
}

/* Release the request's state (the slot's buffers are kept for the next request). */
static void slot_clear(slot *sl) {
    if (sl->want_lp) lp_free(&sl->lp);
    trit_sampler_free(sl->smp);
    sl->smp = NULL;
    srv_text_free(&sl->text);
    trit_buf_free(&sl->echo);
    sl->j = NULL;
}

/* The token to emit from one row of logits: logit_bias applied to a copy, then the
 * request's sampler (greedy at temperature 0). Returns the logits the choice was made from. */
static int32_t pick_token(slot *sl, const float *logits, const float **used) {
    server *s = sl->srv;
    const srv_request *r = &sl->j->req;
    if (r->n_bias) {
        memcpy(sl->biased, logits, (size_t)s->n_vocab * sizeof *sl->biased);
        for (size_t i = 0; i < r->n_bias; i++) sl->biased[r->bias_ids[i]] += r->bias[i];
        logits = sl->biased;
    }
    *used = logits;
    return sl->smp ? trit_sampler_sample(sl->smp, logits, s->n_vocab)
                   : trit_argmax(logits, s->n_vocab);
}

/* The logprobs entries added since n_before, as a streamed chunk's {"content": [...]}. */
static json_t *lp_since(slot *sl, size_t n_before) {
    json_t *arr = json_array();
    for (size_t i = n_before; i < json_array_size(sl->lp.content); i++)
        json_array_append(arr, json_array_get(sl->lp.content, i));
    json_t *l = json_object();
    json_object_set_new(l, "content", arr);
    return l;
}

/* Emit generated token tok (chosen from logits) whose input position would be `pos`:
 * its text through the stop-string filter, its logprobs, a streamed chunk. Returns the finish
 * reason when generation ends here ("stop", "length"), NULL to go on. */
static const char *emit_token(slot *sl, int32_t tok, const float *logits, int pos) {
    server *s = sl->srv;
    job *j = sl->j;
    const srv_request *r = &j->req;
    sl->n_gen++;
    sl->hist[sl->n_hist++] = tok;
    const bool eog = trit_tok_is_eog(s->tok, tok);
    trit_buf_clear(&sl->piece);
    if (!eog) trit_tok_piece(s->tok, tok, false, &sl->piece);
    const size_t n_lp_before = sl->want_lp ? json_array_size(sl->lp.content) : 0;
    if (sl->want_lp) lp_add(s, &sl->lp, tok, logits, r->logprobs);
    trit_buf_clear(&sl->send);
    srv_text_push(&sl->text, sl->piece.p ? sl->piece.p : "", sl->piece.len, !eog, r->stop,
                  r->n_stop, &sl->send);
    /* a streamed chunk whenever there are bytes to send or logprobs to report */
    if (r->stream && (sl->send.len || sl->want_lp))
        emit_chunk(sl, sl->send.p ? sl->send.p : "", sl->send.len,
                   sl->want_lp ? lp_since(sl, n_lp_before) : NULL, NULL, false);
    if (sl->broken) return "error"; /* slot_finish answers 500 */
    if (sl->text.stopped || eog) return "stop";
    if (r->max_tokens > 0 && sl->n_gen >= r->max_tokens) return "length";
    /* the token would be evaluated at pos: the context must hold it and one more */
    if (pos + 1 >= s->n_ctx) return "length";
    return NULL;
}

/* Prompt-lookup drafts: the tokens that followed the most recent earlier occurrence of the
 * history's last n-gram (n = 3, 2, 1), at most max of them, into out. Returns the count. The
 * drafts only choose which positions are evaluated together; the engine evaluates each one
 * with single-token numerics and a draft counts only when it equals the token chosen from the
 * row before it (greedy or sampled: the sampler draws once per emitted token either way), so
 * the reply is the one plain decoding gives. */
static int propose_drafts(const slot *sl, int max, int32_t *out) {
    const int32_t *h = sl->hist;
    const int n = sl->n_hist;
    for (int g = TRIT_MIN(3, n - 1); g >= 1 && max > 0; g--) {
        for (int i = n - g - 1; i >= 0; i--) {
            if (memcmp(h + i, h + n - g, (size_t)g * sizeof *h)) continue;
            int k = 0;
            while (k < max && i + g + k < n) {
                out[k] = h[i + g + k];
                k++;
            }
            return k;
        }
    }
    return 0;
}

/* The final non-streamed JSON body of a finished request; NULL when it could not be built
 * whole (any reply part of the request lost to a failed allocation). */
static char *final_json(slot *sl, const char *finish) {
    job *j = sl->j;
    const bool chat = j->req.kind == SRV_CHAT;
    json_t *o = envelope(j, chat ? "chat.completion" : "text_completion");
    json_t *ch = json_object();
    json_object_set_new(ch, "index", json_integer(0));
    if (chat) {
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", jstr(sl->text.gen.p, sl->text.gen.len));
        json_object_set_new(ch, "message", msg);
        json_object_set_new(ch, "logprobs", sl->want_lp ? lp_chat(&sl->lp) : json_null());
    } else {
        trit_buf_append(&sl->echo, sl->text.gen.p, sl->text.gen.len);
        json_object_set_new(ch, "text", jstr(sl->echo.p, sl->echo.len));
        json_object_set_new(ch, "logprobs", sl->want_lp ? lp_legacy(&sl->lp) : json_null());
    }
    json_object_set_new(ch, "finish_reason", json_string(finish));
    json_t *arr = json_array();
    json_array_append_new(arr, ch);
    json_object_set_new(o, "choices", arr);
    json_object_set_new(o, "usage", usage_json((long)j->n_prompt, sl->n_gen));
    return trit_http_dumps(o, sl->jmark);
}

/* End the slot's request: finish is "stop"/"length", or NULL when cancelled; e when failed.
 * Sends the last SSE events or the JSON body, records metrics, frees the slot. */
static void slot_finish(slot *sl, const char *finish, const srv_error *fail) {
    server *s = sl->srv;
    job *j = sl->j;
    const bool chat = j->req.kind == SRV_CHAT;
    srv_error e = {0};
    double now = trit_now_s();
    if (sl->n_eval >= (int)j->n_prompt)
        srv_metrics_tokens(s->metrics, (long)j->n_prompt, sl->n_gen, now - sl->t_gen);
    trit_log(TRIT_LOG_INFO, "slot %d: %s prompt %zu tok, %ld generated in %.3f s (%s)", sl->id,
             j->id, j->n_prompt, sl->n_gen, now - sl->t_start, finish ? finish : "cancelled");
    if (sl->n_drafted)
        trit_log(TRIT_LOG_INFO, "slot %d: drafts %ld proposed, %ld accepted", sl->id, sl->n_drafted,
                 sl->n_accepted);
    srv_metrics_drafts(s->metrics, sl->n_drafted, sl->n_accepted);
    char *body = NULL;
    if (!fail && (sl->broken || !trit_http_json_ok(sl->jmark))) fail = (oom_error(&e), &e);
    if (!fail && finish && !j->req.stream && !(body = final_json(sl, finish)))
        fail = (oom_error(&e), &e);
    if (fail) {
        job_fail(j, fail);
    } else if (!finish && atomic_load(&s->cancel_all)) {
        srv_fail(&e, 503, "server_error", NULL, "shutting_down",
                 "server is shutting down; request cancelled");
        job_fail(j, &e);
    } else if (!finish) {
        srv_fail(&e, 499, "server_error", NULL, "cancelled", "request cancelled");
        job_fail(j, &e);
    } else if (j->req.stream) {
        emit_chunk(sl, "", 0, NULL, finish, false);
        if (j->req.include_usage && !sl->broken) {
            json_t *o = envelope(j, chat ? "chat.completion.chunk" : "text_completion");
            json_object_set_new(o, "choices", json_array());
            json_object_set_new(o, "usage", usage_json((long)j->n_prompt, sl->n_gen));
            if (!job_sse_json(j, o, sl->jmark)) sl->broken = true;
        }
        if (sl->broken) {
            oom_error(&e);
            job_fail(j, &e);
        } else {
            job_sse(j, "[DONE]");
            job_finish(j, 200, NULL);
        }
    } else {
        job_finish(j, 200, body);
    }
    slot_clear(sl);
    pthread_mutex_lock(&s->qmu);
    s->busy--;
    pthread_cond_broadcast(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    job_release(j);
}

/* Consume the logits rows of the slot's last step: row r follows feed[r] at pos + r. Emit
 * the token chosen from row r; a draft that matches it makes row r + 1 valid too. Leaves the
 * next step's feed (the last chosen token, plus new drafts), or finishes the request. */
static void slot_take_rows(slot *sl) {
    server *s = sl->srv;
    const size_t V = (size_t)s->n_vocab;
    for (int r = 0; r < sl->n_rows; r++) {
        const float *used;
        const int32_t tok = pick_token(sl, sl->rows + r * V, &used);
        const int at = sl->pos + r + 1; /* where tok would be evaluated */
        const char *finish = emit_token(sl, tok, used, at);
        if (finish) {
            slot_finish(sl, finish, NULL);
            return;
        }
        if (r + 1 < sl->n_rows && sl->feed[r + 1] == tok) {
            sl->n_accepted++;
            continue;
        }
        /* next step: tok at `at`, and drafts that fit the context and the token budget */
        sl->feed[0] = tok;
        sl->pos = at;
        int max = TRIT_MIN(s->n_draft, s->n_ctx - 2 - at);
        const int nd = max > 0 ? propose_drafts(sl, max, sl->feed + 1) : 0;
        sl->n_drafted += nd;
        sl->n_feed = 1 + nd;
        sl->n_rows = 0;
        return;
    }
}

/* The batch entry of a busy slot for this step: its next prompt chunk, or its feed. */
static void slot_entry(slot *sl, trit_batch_entry *e) {
    const job *j = sl->j;
    if (sl->n_eval < (int)j->n_prompt) {
        const int nb = trit_ctx_n_batch(sl->srv->ctx);
        const int T = TRIT_MIN(nb, (int)j->n_prompt - sl->n_eval);
        const bool final = sl->n_eval + T == (int)j->n_prompt;
        /* echo + logprobs: every prompt row's logits (as trit_eval with logits_all) */
        *e = (trit_batch_entry){.seq = sl->seq,
                                .tokens = j->prompt + sl->n_eval,
                                .n_tokens = T,
                                .pos = sl->n_eval,
                                .out = sl->prompt_lp ? TRIT_OUT_ALL
                                                     : (final ? TRIT_OUT_LAST : TRIT_OUT_NONE)};
        return;
    }
    *e = (trit_batch_entry){.seq = sl->seq,
                            .tokens = sl->feed,
                            .n_tokens = sl->n_feed,
                            .pos = sl->pos,
                            .out = TRIT_OUT_ALL,
                            .steps = true};
}

/* One step's batch: which slot each entry belongs to. */
typedef struct step {
    server *s;
    slot *of[SRV_MAX_SLOTS];
} step;

/* Logits of one row of the step: a prompt row of an echo + logprobs request becomes the
 * next prompt token's logprobs at once (only the top-k are kept); the prompt's last row
 * and decode rows are kept for sampling. */
static void on_logits(void *ud, int entry, int tok, const float *logits) {
    const step *st = ud;
    slot *sl = st->of[entry];
    const job *j = sl->j;
    const size_t V = (size_t)st->s->n_vocab;
    if (sl->n_eval < (int)j->n_prompt) {
        const int p = sl->n_eval + tok; /* the prompt token this row follows */
        if (p + 1 < (int)j->n_prompt) {
            lp_add(st->s, &sl->lp, j->prompt[p + 1], logits, j->req.logprobs);
            return;
        }
        memcpy(sl->rows, logits, V * sizeof(float));
        sl->n_rows = 1;
        return;
    }
    memcpy(sl->rows + (size_t)tok * V, logits, V * sizeof(float));
    sl->n_rows = tok + 1;
}

/* After a step: a slot whose prompt is now evaluated starts generating. */
static void slot_prompt_done(slot *sl, int T) {
    job *j = sl->j;
    sl->n_eval += T;
    if (sl->n_eval < (int)j->n_prompt) return;
    sl->t_gen = trit_now_s();
    sl->pos = (int)j->n_prompt - 1;
    if (sl->prompt_lp) sl->lp.offset = sl->echo.len;
    if (j->req.stream && j->req.kind == SRV_CHAT) emit_chunk(sl, "", 0, NULL, NULL, true);
    if (j->req.max_tokens == 0 || sl->broken) slot_finish(sl, "length", NULL);
}

/* Refuse what would exceed the server's bounds before any work: the prompt logprobs of an
 * echo request are kept (top-k per position) until the reply is sent. */
static int check_bounds(const server *s, const job *j, srv_error *e) {
    const srv_request *r = &j->req;
    const bool prompt_lp = r->kind != SRV_CHAT && r->echo && r->logprobs >= 0;
    const size_t entries = j->n_prompt * (size_t)(r->logprobs + 1);
    if (prompt_lp && entries > SRV_MAX_PROMPT_LP)
        return srv_fail(e, 413, "invalid_request_error", "logprobs", "prompt_logprobs_too_large",
                        "echo with logprobs %d over a %zu-token prompt would keep %zu entries "
                        "(limit %d); shorten the prompt or lower logprobs",
                        r->logprobs, j->n_prompt, entries, SRV_MAX_PROMPT_LP);
    /* the generated tokens' entries too: max_tokens, or all the context leaves */
    const size_t room = (size_t)s->n_ctx - j->n_prompt;
    const size_t gen = r->max_tokens >= 0 ? TRIT_MIN((size_t)r->max_tokens, room) : room;
    const size_t all = (prompt_lp ? entries : 0) + gen * (size_t)(r->logprobs + 1);
    if (r->logprobs >= 0 && all > SRV_MAX_LP)
        return srv_fail(e, 413, "invalid_request_error", "logprobs", "logprobs_too_large",
                        "logprobs %d over %zu %s tokens would keep %zu entries (limit %d); set "
                        "a lower max_tokens or logprobs",
                        r->logprobs, gen, r->max_tokens >= 0 ? "max_tokens" : "context", all,
                        SRV_MAX_LP);
    return 0;
}

/* Give queued job j to free slot sl (called without s->qmu): it starts, or is refused at
 * once (cancelled while queued, over a bound) and the slot stays free. */
static void slot_take(server *s, slot *sl, job *j) {
    pthread_mutex_lock(&j->mu);
    j->state = JOB_RUNNING;
    pthread_mutex_unlock(&j->mu);
    srv_error e = {0};
    if (atomic_load(&j->cancel) || atomic_load(&s->cancel_all)) {
        srv_fail(&e, 503, "server_error", NULL, "cancelled", "request cancelled before it started");
    } else if (!check_bounds(s, j, &e)) {
        slot_start(sl, j);
        return;
    }
    job_fail(j, &e);
    pthread_mutex_lock(&s->qmu);
    s->busy--;
    pthread_cond_broadcast(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    job_release(j);
}

/* Between steps: move queued jobs into free slots. Returns the number of busy slots; waits
 * while there is no work at all; returns -1 once the server stops and nothing is left. */
static int admit(server *s) {
    int busy = 0;
    pthread_mutex_lock(&s->qmu);
    for (;;) {
        for (int i = 0; i < s->n_slots && s->head; i++) {
            slot *sl = &s->slots[i];
            if (sl->j) continue;
            job *j = s->head;
            s->head = j->next;
            if (!s->head) s->tail = NULL;
            s->qlen--;
            s->busy++; /* counted from here; slot_take or slot_finish gives it back */
            pthread_mutex_unlock(&s->qmu);
            slot_take(s, sl, j);
            pthread_mutex_lock(&s->qmu);
        }
        busy = 0;
        for (int i = 0; i < s->n_slots; i++) busy += s->slots[i].j != NULL;
        if (busy) break;            /* a step to run (jobs still queued join after it) */
        if (s->head) continue;      /* every job taken was refused: take the next ones */
        if (s->workers_exit) break; /* stopping, nothing left */
        pthread_cond_wait(&s->qcv, &s->qmu);
    }
    pthread_mutex_unlock(&s->qmu);
    return busy ? busy : -1;
}

/* One step: finish cancelled requests, consume the last step's rows, then evaluate every
 * busy slot's next entry (prompt chunks within one n_batch budget) in one batched pass. */
static void run_step(server *s) {
    trit_batch_entry e[SRV_MAX_SLOTS];
    step st = {.s = s};
    int n = 0, prefill = 0;
    const int nb = trit_ctx_n_batch(s->ctx);
    s->rr = (s->rr + 1) % s->n_slots; /* prompts take turns at the prefill budget */
    for (int k = 0; k < s->n_slots; k++) {
        slot *sl = &s->slots[(s->rr + k) % s->n_slots];
        if (!sl->j) continue;
        if (atomic_load(&sl->j->cancel) || atomic_load(&s->cancel_all)) {
            slot_finish(sl, NULL, NULL);
            continue;
        }
        if (sl->n_rows) slot_take_rows(sl);
        if (!sl->j) continue;
        slot_entry(sl, &e[n]);
        /* prompt chunks share n_batch rows per step (the first always runs), so several long
         * prompts do not stall the generating slots; a deferred chunk keeps its boundaries */
        if (sl->n_eval < (int)sl->j->n_prompt) {
            if (prefill && prefill + e[n].n_tokens > nb) continue;
            prefill += e[n].n_tokens;
        }
        st.of[n++] = sl;
    }
    if (!n) return;
    trit_err err = {0};
    if (trit_batch_eval(s->ctx, e, n, on_logits, &st, &err)) {
        srv_error fe = {0};
        srv_fail(&fe, 500, "server_error", NULL, "eval_failed", "evaluation failed: %s", err.msg);
        for (int i = 0; i < n; i++) slot_finish(st.of[i], NULL, &fe);
        return;
    }
    int rows = 0;
    for (int i = 0; i < n; i++) rows += e[i].n_tokens;
    srv_metrics_step(s->metrics, n, rows);
    for (int i = 0; i < n; i++)
        if (st.of[i]->n_eval < (int)st.of[i]->j->n_prompt)
            slot_prompt_done(st.of[i], e[i].n_tokens);
}

static void *scheduler(void *arg) {
    server *s = arg;
    while (admit(s) >= 0) run_step(s);
    return NULL;
}

/* ---- SSE content reader ---- */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    job *j = cls;
    (void)pos;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        size_t avail = j->sse.len - j->sse_off;
        if (avail) {
            size_t n = TRIT_MIN(avail, max);
            memcpy(buf, j->sse.p + j->sse_off, n);
            j->sse_off += n;
            if (j->sse_off == j->sse.len) {
                trit_buf_clear(&j->sse);
                j->sse_off = 0;
            }
            pthread_mutex_unlock(&j->mu);
            return (ssize_t)n;
        }
        if (j->state == JOB_DONE) {
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        cond_wait_ms(&j->cv, &j->mu, 100);
        if (j->state != JOB_DONE && peer_gone(j)) {
            pthread_mutex_unlock(&j->mu);
            job_cancel(j);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void sse_done(void *cls) {
    job *j = cls;
    job_cancel(j); /* no-op for a finished job */
    pthread_mutex_lock(&j->mu);
    int status = j->state == JOB_DONE ? j->status : 499;
    pthread_mutex_unlock(&j->mu);
    srv_metrics_request(j->srv->metrics, j->route, status, trit_now_s() - j->t0);
    job_release(j);
}

/* ---- prompt building ---- */
static void render_chatml(const srv_request *r, trit_buf *out) {
    for (size_t i = 0; i < r->n_msgs; i++)
        trit_buf_printf(out, "<|im_start|>%s\n%s<|im_end|>\n", r->msgs[i].role, r->msgs[i].content);
    trit_buf_puts(out, "<|im_start|>assistant\n");
}

static int build_prompt(server *s, job *j, srv_error *e) {
    srv_request *r = &j->req;
    trit_err err = {0};
    for (size_t i = 0; i < r->n_bias; i++)
        if (r->bias_ids[i] >= s->n_vocab)
            return srv_fail(e, 400, NULL, "logit_bias", "invalid_token",
                            "logit_bias token %d is outside the vocabulary (%d tokens)",
                            (int)r->bias_ids[i], s->n_vocab);
    if (r->kind == SRV_COMPLETION && r->has_ids) {
        for (size_t i = 0; i < r->n_prompt_ids; i++)
            if (r->prompt_ids[i] >= s->n_vocab)
                return srv_fail(e, 400, NULL, "prompt", "invalid_token",
                                "prompt token %zu is %d, outside the vocabulary (%d tokens)", i,
                                (int)r->prompt_ids[i], s->n_vocab);
        j->n_prompt = r->n_prompt_ids;
        j->prompt = xmalloc((j->n_prompt ? j->n_prompt : 1) * sizeof *j->prompt);
        memcpy(j->prompt, r->prompt_ids, j->n_prompt * sizeof *j->prompt);
    } else {
        trit_buf text = {0};
        bool add_special = true;
        if (r->kind == SRV_CHAT) {
            if (s->chat_tmpl == SRV_TMPL_CHATML) {
                render_chatml(r, &text);
            } else {
                if (trit_chat_apply(s->chat_tmpl, r->msgs, r->n_msgs, true, &text, &err)) {
                    trit_buf_free(&text);
                    return srv_fail(e, 400, NULL, "messages", "template_failed",
                                    "chat template: %s", err.msg);
                }
                add_special = false; /* the template renders <|begin_of_text|> itself */
            }
        } else {
            trit_buf_puts(&text, r->prompt);
        }
        if (!text.p) trit_buf_puts(&text, "");
        int rc = trit_tok_encode(s->tok, text.p, text.len, add_special, true, &j->prompt,
                                 &j->n_prompt, &err);
        trit_buf_free(&text);
        if (rc) return srv_fail(e, 400, NULL, "prompt", "tokenize_failed", "%s", err.msg);
    }
    if (j->n_prompt == 0)
        return srv_fail(e, 400, NULL, "prompt", "empty_prompt", "the prompt has no tokens");
    if ((int)j->n_prompt >= s->n_ctx)
        return srv_fail(e, 400, NULL, r->kind == SRV_CHAT ? "messages" : "prompt",
                        "context_length_exceeded",
                        "the prompt has %zu tokens but the context holds %d (prompt + generated "
                        "tokens must fit); shorten the prompt or start the server with a larger "
                        "--ctx",
                        j->n_prompt, s->n_ctx);
    return 0;
}

/* ---- handlers ---- */
static enum MHD_Result h_generate(server *s, struct MHD_Connection *c, conn *cn, int kind,
                                  const char *route) {
    srv_error e = {0};
    job *j = job_new(s, route);
    j->t0 = cn->t0;
    if (!parse_turn_take(s)) {
        busy_error(&e);
        job_release(j);
        return send_error(s, c, cn, route, &e);
    }
    int bad =
        srv_parse_request(kind, cn->body.p, cn->body.len, &j->req, &e) || build_prompt(s, j, &e);
    parse_turn_give(s);
    if (bad) {
        job_release(j);
        return send_error(s, c, cn, route, &e);
    }
    make_id(s, kind == SRV_CHAT ? "chatcmpl-" : "cmpl-", j->id);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    if (enqueue(s, j, &e)) {
        job_release(j);
        return send_error(s, c, cn, route, &e);
    }
    if (j->req.stream) {
        /* the response owns the connection's reference; sse_done releases it */
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, j, sse_done);
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        add_cors(s, c, r);
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    pthread_mutex_lock(&j->mu);
    while (j->state != JOB_DONE) {
        cond_wait_ms(&j->cv, &j->mu, 100);
        if (j->state != JOB_DONE && !atomic_load(&j->cancel) && peer_gone(j)) {
            pthread_mutex_unlock(&j->mu);
            job_cancel(j);
            pthread_mutex_lock(&j->mu);
        }
    }
    int status = j->status;
    char *body = j->body;
    j->body = NULL;
    pthread_mutex_unlock(&j->mu);
    job_release(j);
    srv_metrics_request(s->metrics, route, status, trit_now_s() - cn->t0);
    if (status == 499) { /* client went away: nothing to send */
        trit_http_body_free(body);
        return MHD_NO;
    }
    if (!body) { /* a finished job always has a body; this is a defect, said as one */
        srv_error e = {0};
        srv_fail(&e, 500, "server_error", NULL, "no_reply", "the request produced no reply");
        body = srv_error_json(&e);
        status = 500;
    }
    return send_body(s, c, status, "application/json; charset=utf-8", body, NULL);
}

/* The /tokenize reply, written straight into out (no JSON tree: a 1 MiB text is a million
 * tokens) and bounded: -1 as soon as it would exceed SRV_MAX_REPLY bytes. Pieces are
 * llama-server's: a string when valid UTF-8, else the bytes as numbers. */
static int tokenize_reply(server *s, const int32_t *ids, size_t n, bool with_pieces,
                          trit_buf *out) {
    trit_buf p = {0};
    trit_buf_puts(out, "{\"tokens\":[");
    for (size_t i = 0; i < n && out->len <= SRV_MAX_REPLY; i++) {
        if (i) trit_buf_puts(out, ",");
        if (!with_pieces) {
            trit_buf_printf(out, "%d", (int)ids[i]);
            continue;
        }
        trit_buf_clear(&p);
        trit_tok_piece(s->tok, ids[i], true, &p);
        trit_buf_printf(out, "{\"id\":%d,\"piece\":", (int)ids[i]);
        if (trit_utf8_valid(p.p ? p.p : "", p.len)) {
            trit_http_json_str(out, p.p, p.len);
        } else {
            trit_buf_puts(out, "[");
            for (size_t b = 0; b < p.len; b++)
                trit_buf_printf(out, "%s%u", b ? "," : "", (unsigned char)p.p[b]);
            trit_buf_puts(out, "]");
        }
        trit_buf_puts(out, "}");
    }
    trit_buf_puts(out, "]}");
    trit_buf_free(&p);
    return out->len <= SRV_MAX_REPLY ? 0 : -1;
}

/* POST /tokenize. The parse turn is held until the reply is built: --max-parsing bounds the
 * replies being built at once, not only the requests being parsed. */
static enum MHD_Result h_tokenize(server *s, struct MHD_Connection *c, conn *cn) {
    srv_error e = {0};
    srv_tokenize_req q;
    if (!parse_turn_take(s)) {
        busy_error(&e);
        return send_error(s, c, cn, "/tokenize", &e);
    }
    if (srv_parse_tokenize(cn->body.p, cn->body.len, &q, &e)) {
        parse_turn_give(s);
        return send_error(s, c, cn, "/tokenize", &e);
    }
    int32_t *ids = NULL;
    size_t n = 0;
    trit_err err = {0};
    int rc =
        trit_tok_encode(s->tok, q.content, q.len, q.add_special, q.parse_special, &ids, &n, &err);
    free(q.content);
    trit_buf out = {0};
    if (rc)
        srv_fail(&e, 400, NULL, "content", "tokenize_failed", "%s", err.msg);
    else if (tokenize_reply(s, ids, n, q.with_pieces, &out))
        srv_fail(&e, 413, "invalid_request_error", "with_pieces", "reply_too_large",
                 "the reply for %zu tokens would exceed %d bytes (the reply limit); send less "
                 "text%s",
                 n, SRV_MAX_REPLY, q.with_pieces ? " or leave out with_pieces" : "");
    free(ids);
    parse_turn_give(s);
    if (e.status) {
        trit_buf_free(&out);
        return send_error(s, c, cn, "/tokenize", &e);
    }
    srv_metrics_request(s->metrics, "/tokenize", 200, trit_now_s() - cn->t0);
    return send_body(s, c, 200, "application/json; charset=utf-8", out.p, NULL);
}

static enum MHD_Result h_detokenize(server *s, struct MHD_Connection *c, conn *cn) {
    srv_error e = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (srv_parse_detokenize(cn->body.p, cn->body.len, &ids, &n, &e))
        return send_error(s, c, cn, "/detokenize", &e);
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= s->n_vocab) {
            srv_fail(&e, 400, NULL, "tokens", "invalid_token",
                     "token %zu is %d, outside the vocabulary (%d tokens)", i, (int)ids[i],
                     s->n_vocab);
            free(ids);
            return send_error(s, c, cn, "/detokenize", &e);
        }
    trit_buf out = {0};
    trit_tok_decode(s->tok, ids, n, true, &out);
    free(ids);
    const unsigned long mark = trit_http_json_mark();
    json_t *o = json_object();
    json_object_set_new(o, "content", jstr(out.p ? out.p : "", out.len));
    trit_buf_free(&out);
    return send_json(s, c, cn, "/detokenize", 200, o, mark);
}

/* The model file's sha256 once the background hash is done, else "". */
static const char *model_sha256(server *s) {
    return atomic_load(&s->hash.state) == SRV_HASH_DONE ? s->hash.hex : "";
}

/* GET /v1/models: the one model, with llama-server's "meta" and trit's file size and hash. */
static enum MHD_Result h_models(server *s, struct MHD_Connection *c, conn *cn) {
    const unsigned long mark = trit_http_json_mark();
    const trit_hparams *hp = &s->model->hp;
    json_t *meta = json_object();
    json_object_set_new(meta, "arch", json_string(trit_arch_name(hp->arch)));
    json_object_set_new(meta, "n_vocab", json_integer(hp->n_vocab));
    json_object_set_new(meta, "n_ctx_train", json_integer(hp->n_ctx_train));
    json_object_set_new(meta, "n_ctx", json_integer(s->n_ctx));
    json_object_set_new(meta, "n_embd", json_integer(hp->n_embd));
    json_object_set_new(meta, "n_layer", json_integer(hp->n_layer));
    json_object_set_new(meta, "n_slots", json_integer(s->n_slots));
    json_object_set_new(meta, "n_params", json_integer(s->n_params));
    json_object_set_new(meta, "size", json_integer((json_int_t)s->tensor_bytes));
    /* trit's own: the file's bytes and sha256 ("" while the hash is pending) */
    json_object_set_new(meta, "file_size", json_integer((json_int_t)s->model_size));
    json_object_set_new(meta, "sha256", json_string(model_sha256(s)));
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(s->name));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(s->created));
    json_object_set_new(m, "owned_by", json_string("trit"));
    json_object_set_new(m, "meta", meta);
    json_t *data = json_array();
    json_array_append_new(data, m);
    json_t *o = json_object();
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(o, "data", data);
    return send_json(s, c, cn, "/v1/models", 200, o, mark);
}

/* GET /props: llama-server's shape (tools/server/server-context.cpp, get_res_props) for
 * the fields that mean something here, plus a "trit" object with what this process is:
 * build, model bytes (sha256, size), numerics, kernel set, threads, slots, instance. Like
 * every route but /health it needs the API key when one is set (llama-server's rule too). */
static enum MHD_Result h_props(server *s, struct MHD_Connection *c, conn *cn) {
    const unsigned long mark = trit_http_json_mark();
    const trit_hparams *hp = &s->model->hp;
    json_t *params = json_object();
    /* the sampling defaults a request gets (srv_parse_request: llama-server's) */
    json_object_set_new(params, "temperature", json_real(0.8));
    json_object_set_new(params, "top_k", json_integer(40));
    json_object_set_new(params, "top_p", json_real(0.95));
    json_object_set_new(params, "min_p", json_real(0.05));
    json_object_set_new(params, "n_predict", json_integer(-1));
    json_t *dgs = json_object();
    json_object_set_new(dgs, "params", params);
    json_object_set_new(dgs, "n_ctx", json_integer(s->n_ctx));
    json_t *mod = json_object();
    json_object_set_new(mod, "vision", json_false());
    json_object_set_new(mod, "video", json_false());
    json_object_set_new(mod, "audio", json_false());
    char *tmpl = trit_model_meta_str(s->model, "tokenizer.chat_template");
    const char *tmpl_name =
        s->chat_tmpl == SRV_TMPL_CHATML ? "chatml" : trit_chat_tmpl_name(s->chat_tmpl);
    trit_buf bos = {0}, eos = {0};
    if (trit_tok_bos(s->tok) >= 0) trit_tok_piece(s->tok, trit_tok_bos(s->tok), true, &bos);
    if (trit_tok_eos(s->tok) >= 0) trit_tok_piece(s->tok, trit_tok_eos(s->tok), true, &eos);

    const int hs = atomic_load(&s->hash.state);
    json_t *t = json_object();
    json_object_set_new(t, "version", json_string(TRIT_VERSION));
    json_object_set_new(t, "commit", json_string(srv_build_commit()));
    json_object_set_new(t, "build", json_string(s->build));
    json_object_set_new(t, "system_fingerprint", json_string(s->fingerprint));
    json_object_set_new(t, "instance", json_string(s->instance));
    json_object_set_new(t, "started", json_integer(s->created));
    json_object_set_new(t, "model_path", jstr(s->model->path, strlen(s->model->path)));
    json_object_set_new(t, "model_sha256", json_string(model_sha256(s)));
    json_object_set_new(t, "model_sha256_state", json_string(srv_hash_state_name(hs)));
    json_object_set_new(t, "model_size", json_integer((json_int_t)s->model_size));
    json_object_set_new(t, "arch", json_string(trit_arch_name(hp->arch)));
    json_object_set_new(t, "act", json_string(trit_act_name(hp->act)));
    json_object_set_new(t, "numerics", json_string(s->numerics));
    json_object_set_new(t, "kernels", json_string(s->kernels));
    json_object_set_new(t, "threads", json_integer(trit_ctx_n_threads(s->ctx)));
    json_object_set_new(t, "slots", json_integer(s->n_slots));
    json_object_set_new(t, "n_ctx", json_integer(s->n_ctx));
    json_object_set_new(t, "n_vocab", json_integer(s->n_vocab));
    json_object_set_new(t, "n_ctx_train", json_integer(hp->n_ctx_train));
    json_object_set_new(t, "n_draft", json_integer(s->n_draft));
    json_object_set_new(t, "chat_template_name", json_string(tmpl_name ? tmpl_name : ""));

    json_t *o = json_object();
    json_object_set_new(o, "default_generation_settings", dgs);
    json_object_set_new(o, "total_slots", json_integer(s->n_slots));
    json_object_set_new(o, "model_alias", json_string(s->name));
    json_object_set_new(o, "model_path", jstr(s->model->path, strlen(s->model->path)));
    json_object_set_new(o, "modalities", mod);
    json_object_set_new(o, "endpoint_slots", json_false());
    json_object_set_new(o, "endpoint_props", json_false());
    json_object_set_new(o, "endpoint_metrics", json_true());
    json_object_set_new(o, "chat_template", jstr(tmpl ? tmpl : "", tmpl ? strlen(tmpl) : 0));
    json_object_set_new(o, "bos_token", jstr(bos.p ? bos.p : "", bos.len));
    json_object_set_new(o, "eos_token", jstr(eos.p ? eos.p : "", eos.len));
    json_object_set_new(o, "build_info", json_string(s->build));
    json_object_set_new(o, "is_sleeping", json_false());
    json_object_set_new(o, "trit", t);
    free(tmpl);
    trit_buf_free(&bos);
    trit_buf_free(&eos);
    return send_json(s, c, cn, "/props", 200, o, mark);
}

static enum MHD_Result h_metrics(server *s, struct MHD_Connection *c, conn *cn) {
    pthread_mutex_lock(&s->qmu);
    int q = s->qlen, busy = s->busy;
    pthread_mutex_unlock(&s->qmu);
    srv_metrics_request(s->metrics, "/metrics", 200, trit_now_s() - cn->t0);
    trit_buf out = {0};
    srv_metrics_render(s->metrics, q, busy, s->n_slots, &out);
    return send_body(s, c, 200, "text/plain; version=0.0.4; charset=utf-8", out.p, NULL);
}

/* The route table's entry for url, or R_NOTFOUND. */
static int route_of(const char *url, const char **name, const char **method) {
    *name = "other";
    *method = NULL;
    for (size_t i = 0; i < TRIT_ARRAY_LEN(routes); i++)
        if (!strcmp(url, routes[i].path)) {
            *name = routes[i].name;
            *method = routes[i].method;
            return routes[i].id;
        }
    return R_NOTFOUND;
}

/* A refusal from http's intake, as this server's error reply. */
static enum MHD_Result send_refusal(server *s, struct MHD_Connection *c, conn *cn,
                                    const char *route, const trit_http_refusal *r) {
    srv_error e = {0};
    srv_fail(&e, r->status, r->type, NULL, r->code, "%s", r->message);
    return send_error(s, c, cn, route, &e);
}

/* CORS preflight of an allowed origin: what a page may send. */
static enum MHD_Result send_preflight(server *s, struct MHD_Connection *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    add_cors(s, c, r);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    return trit_http_queue(c, 204, r);
}

/* Intake step 1, check headers (a request's first call, before its body): who is asking
 * (http: Host, DNS rebinding, Origin), preflight, route and method, then the key and the
 * announced size (http). Every refusal is answered before a body byte is kept. */
static enum MHD_Result intake_headers(server *s, struct MHD_Connection *c, conn *cn, int id,
                                      const char *route, const char *want, const char *url,
                                      const char *method, const char *version) {
    srv_error e = {0};
    trit_http_refusal rf;
    if (trit_http_check_peer(c, version, &s->in, &rf)) return send_refusal(s, c, cn, route, &rf);
    if (!strcmp(method, "OPTIONS")) return send_preflight(s, c);
    if (id == R_NOTFOUND) {
        srv_fail(&e, 404, NULL, NULL, "not_found", "no route for %s %s", method, url);
        return send_error(s, c, cn, route, &e);
    }
    if (strcmp(method, want) != 0 && !(id == R_HEALTH && !strcmp(method, "HEAD"))) {
        srv_fail(&e, 405, NULL, NULL, "method_not_allowed", "%s does not allow %s (use %s)", url,
                 method, want);
        return send_error_allow(s, c, cn, route, &e, want);
    }
    if (trit_http_check_entry(c, &s->in, id != R_HEALTH, &rf))
        return send_refusal(s, c, cn, route, &rf);
    return MHD_YES;
}

/* Intake step 2, take the body: each chunk is counted in http's budgets (the request's, all
 * requests', this peer's share); a refused body is dropped and answered once complete. */
static void intake_body(server *s, struct MHD_Connection *c, conn *cn, const char *upload,
                        size_t n) {
    if (cn->refused) return;
    cn->refused = trit_http_take_body(s->hd.guard, c, cn->body.len, n);
    if (cn->refused)
        trit_buf_free(&cn->body);
    else
        trit_buf_append(&cn->body, upload, n);
}

/* Intake step 3, route: a refused body's answer, else the route's handler. */
static enum MHD_Result intake_route(server *s, struct MHD_Connection *c, conn *cn, int id,
                                    const char *route) {
    srv_error e = {0};
    if (cn->refused == TRIT_HTTP_BODY_TOO_BIG) {
        srv_fail(&e, 413, NULL, NULL, "body_too_large", "request body exceeds %zu bytes",
                 s->cfg.max_body);
        return send_error(s, c, cn, route, &e);
    }
    if (cn->refused) {
        srv_fail(&e, 503, "server_error", NULL, "server_busy",
                 "too many request bodies in flight (%zu bytes in all, a quarter per client); "
                 "retry shortly",
                 s->cfg.max_body_total);
        return send_error(s, c, cn, route, &e);
    }
    switch (id) {
    case R_HEALTH: {
        const unsigned long mark = trit_http_json_mark();
        json_t *o = json_object();
        json_object_set_new(o, "status", json_string("ok"));
        return send_json(s, c, cn, route, 200, o, mark);
    }
    case R_MODELS:
        return h_models(s, c, cn);
    case R_PROPS:
        return h_props(s, c, cn);
    case R_METRICS:
        return h_metrics(s, c, cn);
    case R_COMPLETIONS:
        return h_generate(s, c, cn, SRV_COMPLETION, route);
    case R_CHAT:
        return h_generate(s, c, cn, SRV_CHAT, route);
    case R_TOKENIZE:
        return h_tokenize(s, c, cn);
    default:
        return h_detokenize(s, c, cn);
    }
}

/* libmicrohttpd's access handler: the intake's three named steps, check headers -> take body
 * -> route, one per kind of call MHD makes for a request. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    server *s = cls;
    conn *cn = *con_cls;
    const char *route, *want;
    const int id = route_of(url, &route, &want);
    if (!cn) {
        cn = xcalloc(1, sizeof *cn);
        cn->t0 = trit_now_s();
        *con_cls = cn;
        return intake_headers(s, c, cn, id, route, want, url, method, version);
    }
    if (*upload_size) {
        intake_body(s, c, cn, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!cn->body_done) trit_http_body_done(s->hd.guard, c);
    cn->body_done = true;
    return intake_route(s, c, cn, id, route);
}

/* The request is over: its body leaves http's budgets, its state is freed. */
static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    server *s = cls;
    trit_http_request_done(s->hd.guard, c);
    conn *cn = *con_cls;
    if (!cn) return;
    trit_buf_free(&cn->body);
    free(cn);
    *con_cls = NULL;
}

/* ---- lifecycle ---- */
void srv_config_default(srv_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8180;
    c->n_slots = 4; /* llama-server's -np default (auto: 4) */
    c->queue_cap = 16;
    c->n_threads = 0;
    c->max_body = 1u << 20;
    c->chat_tmpl = -1;
    c->grace_s = 10;
    c->max_body_total = (size_t)64 << 20;
    c->max_parsing = 4;
    c->fault_act = c->fault_rope = -1;
}

/* One item of --fault: the engine's own fault-injection switches (the trit backend's ?act=
 * and ?rope= options), or the JSON allocation fault of http. */
static int fault_item(srv_config *c, const char *k, const char *v) {
    long n = 0;
    if (!strcmp(k, "act") && (!strcmp(v, "silu") || !strcmp(v, "relu2")))
        c->fault_act = !strcmp(v, "silu") ? TRIT_ACT_SILU : TRIT_ACT_RELU2;
    else if (!strcmp(k, "rope") && (!strcmp(v, "norm") || !strcmp(v, "neox")))
        c->fault_rope = !strcmp(v, "norm") ? TRIT_ROPE_NORM : TRIT_ROPE_NEOX;
    else if (!strcmp(k, "json-alloc") && !trit_parse_long(v, 1, 1L << 30, &n))
        c->fault_json_alloc = (unsigned)n;
    else
        return -1;
    return 0;
}

int srv_fault_parse(srv_config *c, const char *spec) {
    char *copy = xstrdup(spec), *save = NULL;
    int rc = 0;
    for (char *it = strtok_r(copy, ",", &save); it && !rc; it = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(it, '=');
        if (eq) *eq = 0;
        rc = eq ? fault_item(c, it, eq + 1) : -1;
    }
    free(copy);
    if (rc)
        fprintf(stderr,
                "trit serve: --fault %s: expected act=silu|relu2, rope=norm|neox or "
                "json-alloc=N (comma list)\n",
                spec);
    return rc;
}

/* The /props numerics: the numerics, and the fault when one is on (a faulty server must
 * never pass for a normal one; its fingerprint differs too). */
static void numerics_label(const srv_config *cfg, char *out, size_t n) {
    const char *num = trit_numerics_name(cfg->numerics);
    if (cfg->fault_act < 0 && cfg->fault_rope < 0 && !cfg->fault_json_alloc) {
        snprintf(out, n, "%s", num);
        return;
    }
    char act[24] = "", rope[24] = "", ja[32] = "";
    if (cfg->fault_act >= 0) snprintf(act, sizeof act, "+act=%s", trit_act_name(cfg->fault_act));
    if (cfg->fault_rope >= 0)
        snprintf(rope, sizeof rope, "+rope=%s",
                 cfg->fault_rope == TRIT_ROPE_NEOX ? "neox" : "norm");
    if (cfg->fault_json_alloc) snprintf(ja, sizeof ja, "+json-alloc=%u", cfg->fault_json_alloc);
    snprintf(out, n, "%s-FAULT%s%s%s", num, act, rope, ja);
}

/* What /props and /v1/models report about this process (fixed for its lifetime), and the
 * start of the model file's sha256 on a background thread: startup does not wait for it. */
static void identity_init(server *s, const srv_config *cfg) {
    srv_instance_id(s->instance);
    srv_build_string(s->build, sizeof s->build);
    /* the set the engine picks: trit_ctx_new takes trit_kernels_for(trit_kernels_best(), …) */
    const trit_kernels *k = trit_kernels_for(trit_kernels_best(), cfg->numerics);
    s->kernels = k && k->name ? k->name : "ref";
    numerics_label(cfg, s->numerics, sizeof s->numerics);
    srv_fingerprint(s->fingerprint, sizeof s->fingerprint, s->kernels, s->numerics);
    const gguf_file *g = trit_model_gguf(s->model);
    s->model_size = gguf_file_size(g);
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        s->tensor_bytes += t->nbytes;
        int64_t n = 1;
        for (uint32_t d = 0; d < 4; d++) n *= t->ne[d];
        s->n_params += n;
    }
    srv_file_hash_start(&s->hash, s->model->path);
}

static char *basename_of(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    return xstrdup(b);
}

int srv_run(const srv_config *cfg, trit_model *model, trit_tokenizer *tok, trit_err *err) {
    const trit_http_door door = {.who = "trit serve",
                                 .host = cfg->host,
                                 .cors = cfg->cors,
                                 .api_key = cfg->api_key,
                                 .key_env = "TRIT_API_KEY",
                                 .insecure_no_key = cfg->insecure_no_key};
    if (trit_http_door_check(&door, err)) return -1;
    server *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->model = model;
    s->tok = tok;
    s->name = cfg->alias && *cfg->alias ? xstrdup(cfg->alias) : basename_of(model->path);
    s->n_vocab = trit_tok_n_vocab(tok);
    if (model->hp.n_vocab < s->n_vocab) s->n_vocab = model->hp.n_vocab;
    s->created = (long)trit_wall_s();
    s->metrics = srv_metrics_new();
    {
        uint64_t seed[2] = {trit_now_ns(), (uint64_t)getpid()};
        s->id_salt = trit_hash64(seed, sizeof seed);
    }
    if (cfg->chat_tmpl >= 0) {
        s->chat_tmpl = cfg->chat_tmpl;
    } else {
        char *t = trit_model_meta_str(model, "tokenizer.chat_template");
        s->chat_tmpl = t ? trit_tok_chat_tmpl(tok) : SRV_TMPL_CHATML;
        free(t);
    }
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    pthread_mutex_init(&s->pmu, NULL);
    pthread_cond_init(&s->pcv, NULL);
    if (s->cfg.max_parsing < 1) s->cfg.max_parsing = 1;
    if (s->cfg.max_body_total < s->cfg.max_body) s->cfg.max_body_total = s->cfg.max_body;

    /* signals are taken synchronously by this thread (sigwait); every thread created below
     * inherits the blocked mask */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);

    int rc = -1;
    bool sched_started = false;
    s->n_slots = TRIT_MIN(cfg->n_slots > 0 ? cfg->n_slots : 1, SRV_MAX_SLOTS);
    s->n_draft = TRIT_MAX(0, TRIT_MIN(cfg->n_draft, SRV_MAX_DRAFT));
    /* one context whose pool uses every thread; the slots share it, step by step */
    trit_ctx_params cp = trit_ctx_default_params();
    cp.n_ctx = cfg->n_ctx;
    cp.n_threads = cfg->n_threads;
    cp.numerics = cfg->numerics; /* exact (default) or --numerics fast */
    cp.act = cfg->fault_act;     /* -1: the model's; --fault act= */
    cp.rope_mode = cfg->fault_rope;
    s->ctx = trit_ctx_new(model, &cp, err);
    if (!s->ctx) goto out;
    s->n_ctx = trit_ctx_n_ctx(s->ctx);
    identity_init(s, cfg);
    s->slots = xcalloc((size_t)s->n_slots, sizeof *s->slots);
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        sl->srv = s;
        sl->id = i;
        sl->seq = trit_seq_new(s->ctx);
        sl->feed = xmalloc((1 + SRV_MAX_DRAFT) * sizeof *sl->feed);
        sl->rows = xmalloc((size_t)(1 + s->n_draft) * s->n_vocab * sizeof *sl->rows);
        sl->biased = xmalloc((size_t)s->n_vocab * sizeof *sl->biased);
        sl->hist = xmalloc((size_t)(s->n_ctx + 1) * sizeof *sl->hist);
    }
    if (pthread_create(&s->sched, NULL, scheduler, s)) {
        trit_fail(err, TRIT_EIO, "cannot start the scheduler thread");
        goto out;
    }
    sched_started = true;

    s->in = (trit_http_intake){.bound = cfg->host,
                               .loopback = trit_http_is_loopback(cfg->host),
                               .host_allow = cfg->host_allow,
                               .cors = cfg->cors,
                               .api_key = cfg->api_key && *cfg->api_key ? cfg->api_key : NULL,
                               .max_body = s->cfg.max_body};
    trit_http_limits lim;
    trit_http_limits_default(&lim);
    lim.max_body = s->cfg.max_body;
    lim.body_total = s->cfg.max_body_total;
    const trit_http_callbacks cb = {.handler = handler, .completed = completed, .cls = s};
    if (trit_http_start(&s->hd, cfg->host, cfg->port, &lim, &cb, err)) goto out;
    fprintf(stderr,
            "trit serve: %s on http://%s:%u (%d slot%s, %d threads, ctx %d, queue %d, "
            "draft %d, template %s%s)\n",
            s->name, cfg->host, (unsigned)s->hd.port, s->n_slots, s->n_slots == 1 ? "" : "s",
            trit_ctx_n_threads(s->ctx), s->n_ctx, cfg->queue_cap, s->n_draft,
            s->chat_tmpl == SRV_TMPL_CHATML ? "chatml" : trit_chat_tmpl_name(s->chat_tmpl),
            cfg->api_key && *cfg->api_key ? ", api key required" : "");
    fprintf(stderr, "trit serve: %s, instance %s (model sha256 on /props once hashed)\n",
            s->fingerprint, s->instance);
    if (strstr(s->numerics, "FAULT"))
        fprintf(stderr,
                "trit serve: WARNING: --fault is on (%s): this server is broken ON PURPOSE, "
                "for tests; its replies are wrong\n",
                s->numerics);
    if (cfg->fault_json_alloc) trit_http_json_fault(cfg->fault_json_alloc);

    int sig = 0;
    sigset_t wait_set;
    sigemptyset(&wait_set);
    sigaddset(&wait_set, SIGINT);
    sigaddset(&wait_set, SIGTERM);
    sigwait(&wait_set, &sig);
    fprintf(stderr, "trit serve: %s received, draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");

    /* stop accepting, let in-flight work finish within the grace period, cancel the rest */
    atomic_store(&s->draining, true);
    trit_http_quiesce(&s->hd);
    double deadline = trit_now_s() + cfg->grace_s;
    pthread_mutex_lock(&s->qmu);
    while ((s->qlen || s->busy) && trit_now_s() < deadline) {
        cond_wait_ms(&s->qcv, &s->qmu, 50);
    }
    if (s->qlen || s->busy) {
        fprintf(stderr, "trit serve: cancelling %d running and %d queued requests\n", s->busy,
                s->qlen);
        atomic_store(&s->cancel_all, true);
    }
    while (s->qlen || s->busy) pthread_cond_wait(&s->qcv, &s->qmu);
    pthread_mutex_unlock(&s->qmu);
    /* streams still being written get a short moment to flush */
    usleep(100 * 1000);
    trit_http_stop(&s->hd);
    rc = 0;
    fprintf(stderr, "trit serve: stopped\n");
out:
    pthread_mutex_lock(&s->qmu);
    s->workers_exit = true;
    pthread_cond_broadcast(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    if (sched_started) pthread_join(s->sched, NULL);
    trit_http_stop(&s->hd);
    srv_file_hash_stop(&s->hash);
    for (int i = 0; s->slots && i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        trit_seq_free(sl->seq);
        free(sl->feed);
        free(sl->rows);
        free(sl->biased);
        free(sl->hist);
        trit_buf_free(&sl->send);
        trit_buf_free(&sl->piece);
    }
    free(s->slots);
    trit_ctx_free(s->ctx);
    srv_metrics_free(s->metrics);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qcv);
    pthread_mutex_destroy(&s->pmu);
    pthread_cond_destroy(&s->pcv);
    free(s->name);
    free(s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
