/* server/server.c — libmicrohttpd daemon (a thread per connection), routes, auth, body limit,
 * slots (one trit_ctx + worker thread each), the bounded FIFO queue, generation, SSE and
 * graceful shutdown. */
#include "server/server.h"

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
enum { R_HEALTH, R_MODELS, R_METRICS, R_COMPLETIONS, R_CHAT, R_TOKENIZE, R_DETOKENIZE, R_NOTFOUND };
static const struct {
    const char *path, *method, *name;
    int id;
} routes[] = {
    {"/health", "GET", "/health", R_HEALTH},
    {"/v1/health", "GET", "/health", R_HEALTH},
    {"/v1/models", "GET", "/v1/models", R_MODELS},
    {"/models", "GET", "/v1/models", R_MODELS},
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

typedef struct slot {
    server *srv;
    trit_ctx *ctx;
    pthread_t th;
    int id;
} slot;

struct server {
    srv_config cfg;
    trit_model *model;
    trit_tokenizer *tok;
    char *name;
    int n_ctx, n_vocab;
    int chat_tmpl;
    slot *slots;
    int n_slots;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    job *head, *tail;
    int qlen, busy;
    bool workers_exit;
    atomic_bool draining;
    atomic_bool cancel_all;
    srv_metrics *metrics;
    struct MHD_Daemon *d;
    long created;
    atomic_ulong seq;
    uint64_t id_salt;
    /* connection-thread work limits (HTTP side): buffered body bytes, parsers at once */
    atomic_size_t body_bytes;
    pthread_mutex_t pmu;
    pthread_cond_t pcv;
    int parsing;
    bool loopback; /* bound to a loopback address: Host headers are checked */
};

typedef struct conn {
    trit_buf body;
    bool too_big;
    bool too_busy;  /* the server-wide body budget was full */
    size_t counted; /* bytes of body counted in server.body_bytes */
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

static char *dumps(json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s ? s : xstrdup("{}");
}

/* CORS headers for an allowed browser origin (the handler refused the others with 403): the
 * origin is echoed, never "*", unless --cors '*' was given. */
static void add_cors(server *s, struct MHD_Connection *c, struct MHD_Response *r) {
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin || !srv_origin_allowed(origin, s->cfg.cors)) return;
    bool any = s->cfg.cors && !strcmp(s->cfg.cors, "*");
    MHD_add_response_header(r, "Access-Control-Allow-Origin", any ? "*" : origin);
    MHD_add_response_header(r, "Vary", "Origin");
}

static enum MHD_Result send_body(server *s, struct MHD_Connection *c, int status, const char *ctype,
                                 char *body /* taken */, const char *retry_after,
                                 const char *allow) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", ctype);
    add_cors(s, c, r);
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    if (allow) MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(server *s, struct MHD_Connection *c, conn *cn, const char *route,
                                 int status, json_t *v) {
    srv_metrics_request(s->metrics, route, status, trit_now_s() - cn->t0);
    char *body = dumps(v);
    return send_body(s, c, status, "application/json; charset=utf-8", body, NULL, NULL);
}

static enum MHD_Result send_error_allow(server *s, struct MHD_Connection *c, conn *cn,
                                        const char *route, const srv_error *e, const char *allow) {
    srv_metrics_request(s->metrics, route, e->status, trit_now_s() - cn->t0);
    const char *retry = e->status == 429 || e->status == 503 ? "1" : NULL;
    return send_body(s, c, e->status, "application/json; charset=utf-8", srv_error_json(e), retry,
                     allow);
}

static enum MHD_Result send_error(server *s, struct MHD_Connection *c, conn *cn, const char *route,
                                  const srv_error *e) {
    return send_error_allow(s, c, cn, route, e, NULL);
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
    free(j->body);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static void job_sse(job *j, const char *data) {
    pthread_mutex_lock(&j->mu);
    trit_buf_printf(&j->sse, "data: %s\n\n", data);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void job_sse_json(job *j, json_t *v) {
    char *s = dumps(v);
    job_sse(j, s);
    free(s);
}

static void job_finish(job *j, int status, char *body) {
    pthread_mutex_lock(&j->mu);
    j->status = status;
    free(j->body);
    j->body = body;
    j->state = JOB_DONE;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void job_fail(job *j, const srv_error *e) {
    char *body = srv_error_json(e);
    if (j->req.stream) {
        job_sse(j, body);
        free(body);
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
    j->refs++; /* the worker's reference */
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->qlen++;
    pthread_cond_signal(&s->qcv);
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
typedef struct lp_acc {
    json_t *content; /* chat / llama-server shape: [{token, logprob, bytes, top_logprobs}] */
    json_t *tokens, *token_logprobs, *top_logprobs, *text_offset; /* legacy completions */
    size_t offset;
} lp_acc;

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
    json_object_set_new(o, "system_fingerprint", json_string("trit-" TRIT_VERSION));
    return o;
}

/* One streamed chunk: text delta (may be empty), optional logprobs, optional finish. */
static void emit_chunk(job *j, const char *text, size_t n, json_t *lp /* taken */,
                       const char *finish, bool first) {
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
    job_sse_json(j, o);
}

/* ---- generation (worker thread) ---- */
static void run_job(slot *sl, job *j) {
    server *s = sl->srv;
    srv_request *r = &j->req;
    srv_error e = {0};
    trit_err err = {0};
    bool chat = r->kind == SRV_CHAT;
    bool prompt_lp = !chat && r->echo && r->logprobs >= 0;
    double t_start = trit_now_s();
    if (trit_eval(sl->ctx, j->prompt, (int)j->n_prompt, 0, prompt_lp, &err)) {
        srv_fail(&e, 500, "server_error", NULL, "eval_failed", "prompt evaluation failed: %s",
                 err.msg);
        job_fail(j, &e);
        return;
    }
    lp_acc lp = {0};
    bool want_lp = r->logprobs >= 0;
    if (want_lp) lp_init(&lp);
    trit_buf echo = {0};
    trit_buf_puts(&echo, "");
    if (r->echo) {
        if (r->has_ids)
            trit_tok_decode(s->tok, j->prompt, j->n_prompt, false, &echo);
        else
            trit_buf_puts(&echo, r->prompt);
        if (prompt_lp)
            for (size_t i = 0; i < j->n_prompt; i++)
                lp_add(s, &lp, j->prompt[i], i ? trit_get_logits(sl->ctx, (int)i - 1) : NULL,
                       r->logprobs);
        lp.offset = echo.len;
    }
    trit_sampler *smp = NULL;
    if (r->temperature > 0) {
        trit_sampler_params sp = {.temp = r->temperature,
                                  .top_k = r->top_k,
                                  .top_p = r->top_p,
                                  .min_p = r->min_p,
                                  .seed =
                                      r->has_seed ? r->seed : (uint64_t)trit_now_ns() ^ s->id_salt};
        smp = trit_sampler_new(&sp);
    }
    if (r->stream && chat) emit_chunk(j, "", 0, NULL, NULL, true);
    srv_text text = {0};
    trit_buf_puts(&text.gen, "");
    trit_buf send = {0}, piece = {0};
    const char *finish = "length";
    long n_gen = 0;
    int pos = (int)j->n_prompt;
    double t_gen = trit_now_s();
    bool failed = false;
    float *biased = NULL;
    while (r->max_tokens != 0) {
        if (atomic_load(&j->cancel) || atomic_load(&s->cancel_all)) {
            finish = NULL;
            break;
        }
        const float *logits = trit_get_logits(sl->ctx, -1);
        if (!logits) {
            srv_fail(&e, 500, "server_error", NULL, "no_logits", "engine returned no logits");
            failed = true;
            break;
        }
        if (r->n_bias) {
            if (!biased) biased = xmalloc((size_t)s->n_vocab * sizeof *biased);
            memcpy(biased, logits, (size_t)s->n_vocab * sizeof *biased);
            for (size_t i = 0; i < r->n_bias; i++) biased[r->bias_ids[i]] += r->bias[i];
            logits = biased;
        }
        int32_t tok =
            smp ? trit_sampler_sample(smp, logits, s->n_vocab) : trit_argmax(logits, s->n_vocab);
        n_gen++;
        bool eog = trit_tok_is_eog(s->tok, tok);
        trit_buf_clear(&piece);
        if (!eog) trit_tok_piece(s->tok, tok, false, &piece);
        size_t n_lp_before = want_lp ? json_array_size(lp.content) : 0;
        if (want_lp) lp_add(s, &lp, tok, logits, r->logprobs);
        trit_buf_clear(&send);
        srv_text_push(&text, piece.p ? piece.p : "", piece.len, !eog, r->stop, r->n_stop, &send);
        if (r->stream && (send.len || want_lp)) {
            json_t *l = NULL;
            if (want_lp) {
                json_t *arr = json_array();
                for (size_t i = n_lp_before; i < json_array_size(lp.content); i++)
                    json_array_append(arr, json_array_get(lp.content, i));
                l = json_object();
                json_object_set_new(l, "content", arr);
            }
            emit_chunk(j, send.p ? send.p : "", send.len, l, NULL, false);
        }
        if (text.stopped || eog) {
            finish = "stop";
            break;
        }
        if (r->max_tokens > 0 && n_gen >= r->max_tokens) break;
        if (pos + 1 >= s->n_ctx) break;
        if (trit_eval(sl->ctx, &tok, 1, pos, false, &err)) {
            srv_fail(&e, 500, "server_error", NULL, "eval_failed", "decode failed: %s", err.msg);
            failed = true;
            break;
        }
        pos++;
    }
    double now = trit_now_s();
    srv_metrics_tokens(s->metrics, (long)j->n_prompt, n_gen, now - t_gen);
    trit_log(TRIT_LOG_INFO, "slot %d: %s prompt %zu tok, %ld generated in %.3f s (%s)", sl->id,
             j->id, j->n_prompt, n_gen, now - t_start, finish ? finish : "cancelled");
    if (failed) {
        job_fail(j, &e);
    } else if (!finish && atomic_load(&s->cancel_all)) {
        srv_fail(&e, 503, "server_error", NULL, "shutting_down",
                 "server is shutting down; request cancelled");
        job_fail(j, &e);
    } else if (!finish) {
        srv_fail(&e, 499, "server_error", NULL, "cancelled", "request cancelled");
        job_fail(j, &e);
    } else if (r->stream) {
        emit_chunk(j, "", 0, NULL, finish, false);
        if (r->include_usage) {
            json_t *o = envelope(j, chat ? "chat.completion.chunk" : "text_completion");
            json_object_set_new(o, "choices", json_array());
            json_object_set_new(o, "usage", usage_json((long)j->n_prompt, n_gen));
            job_sse_json(j, o);
        }
        job_sse(j, "[DONE]");
        job_finish(j, 200, NULL);
    } else {
        json_t *o = envelope(j, chat ? "chat.completion" : "text_completion");
        json_t *ch = json_object();
        json_object_set_new(ch, "index", json_integer(0));
        if (chat) {
            json_t *msg = json_object();
            json_object_set_new(msg, "role", json_string("assistant"));
            json_object_set_new(msg, "content", jstr(text.gen.p, text.gen.len));
            json_object_set_new(ch, "message", msg);
            json_object_set_new(ch, "logprobs", want_lp ? lp_chat(&lp) : json_null());
        } else {
            trit_buf_append(&echo, text.gen.p, text.gen.len);
            json_object_set_new(ch, "text", jstr(echo.p, echo.len));
            json_object_set_new(ch, "logprobs", want_lp ? lp_legacy(&lp) : json_null());
        }
        json_object_set_new(ch, "finish_reason", json_string(finish));
        json_t *arr = json_array();
        json_array_append_new(arr, ch);
        json_object_set_new(o, "choices", arr);
        json_object_set_new(o, "usage", usage_json((long)j->n_prompt, n_gen));
        job_finish(j, 200, dumps(o));
    }
    if (want_lp) lp_free(&lp);
    trit_sampler_free(smp);
    free(biased);
    srv_text_free(&text);
    trit_buf_free(&send);
    trit_buf_free(&piece);
    trit_buf_free(&echo);
}

static void *worker(void *arg) {
    slot *sl = arg;
    server *s = sl->srv;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        while (!s->head && !s->workers_exit) pthread_cond_wait(&s->qcv, &s->qmu);
        if (!s->head) {
            pthread_mutex_unlock(&s->qmu);
            break;
        }
        job *j = s->head;
        s->head = j->next;
        if (!s->head) s->tail = NULL;
        s->qlen--;
        s->busy++;
        pthread_mutex_unlock(&s->qmu);

        pthread_mutex_lock(&j->mu);
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&j->mu);
        if (atomic_load(&j->cancel) || atomic_load(&s->cancel_all)) {
            srv_error e;
            srv_fail(&e, 503, "server_error", NULL, "cancelled",
                     "request cancelled before it started");
            job_fail(j, &e);
        } else {
            run_job(sl, j);
        }
        pthread_mutex_lock(&s->qmu);
        s->busy--;
        pthread_cond_broadcast(&s->qcv);
        pthread_mutex_unlock(&s->qmu);
        job_release(j);
    }
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
        free(body);
        return MHD_NO;
    }
    return send_body(s, c, status, "application/json; charset=utf-8", body ? body : xstrdup("{}"),
                     NULL, NULL);
}

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
    parse_turn_give(s);
    free(q.content);
    if (rc) {
        srv_fail(&e, 400, NULL, "content", "tokenize_failed", "%s", err.msg);
        return send_error(s, c, cn, "/tokenize", &e);
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!q.with_pieces) {
            json_array_append_new(arr, json_integer(ids[i]));
            continue;
        }
        trit_buf p = {0};
        trit_tok_piece(s->tok, ids[i], true, &p);
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(ids[i]));
        if (trit_utf8_valid(p.p ? p.p : "", p.len))
            json_object_set_new(o, "piece", json_stringn(p.p ? p.p : "", p.len));
        else
            json_object_set_new(o, "piece", bytes_arr(p.p, p.len));
        json_array_append_new(arr, o);
        trit_buf_free(&p);
    }
    free(ids);
    json_t *o = json_object();
    json_object_set_new(o, "tokens", arr);
    return send_json(s, c, cn, "/tokenize", 200, o);
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
    json_t *o = json_object();
    json_object_set_new(o, "content", jstr(out.p ? out.p : "", out.len));
    trit_buf_free(&out);
    return send_json(s, c, cn, "/detokenize", 200, o);
}

static enum MHD_Result h_models(server *s, struct MHD_Connection *c, conn *cn) {
    const trit_hparams *hp = &s->model->hp;
    json_t *meta = json_object();
    json_object_set_new(meta, "arch", json_string(trit_arch_name(hp->arch)));
    json_object_set_new(meta, "n_vocab", json_integer(hp->n_vocab));
    json_object_set_new(meta, "n_ctx_train", json_integer(hp->n_ctx_train));
    json_object_set_new(meta, "n_ctx", json_integer(s->n_ctx));
    json_object_set_new(meta, "n_embd", json_integer(hp->n_embd));
    json_object_set_new(meta, "n_layer", json_integer(hp->n_layer));
    json_object_set_new(meta, "n_slots", json_integer(s->n_slots));
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
    return send_json(s, c, cn, "/v1/models", 200, o);
}

static enum MHD_Result h_metrics(server *s, struct MHD_Connection *c, conn *cn) {
    pthread_mutex_lock(&s->qmu);
    int q = s->qlen, busy = s->busy;
    pthread_mutex_unlock(&s->qmu);
    srv_metrics_request(s->metrics, "/metrics", 200, trit_now_s() - cn->t0);
    trit_buf out = {0};
    srv_metrics_render(s->metrics, q, busy, s->n_slots, &out);
    return send_body(s, c, 200, "text/plain; version=0.0.4; charset=utf-8", out.p, NULL, NULL);
}

static bool auth_ok(server *s, struct MHD_Connection *c) {
    if (!s->cfg.api_key || !*s->cfg.api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    /* constant-time comparison */
    size_t a = strlen(h), b = strlen(s->cfg.api_key);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < b; i++)
        diff |= (unsigned char)(i < a ? h[i] : 0) ^ (unsigned char)s->cfg.api_key[i];
    return diff == 0;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    server *s = cls;
    conn *cn = *con_cls;
    srv_error e = {0};
    int id = R_NOTFOUND;
    const char *route = "other", *want = NULL;
    for (size_t i = 0; i < TRIT_ARRAY_LEN(routes); i++)
        if (!strcmp(url, routes[i].path)) {
            id = routes[i].id;
            route = routes[i].name;
            want = routes[i].method;
            break;
        }
    if (!cn) {
        cn = xcalloc(1, sizeof *cn);
        cn->t0 = trit_now_s();
        *con_cls = cn;
        /* DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own name */
        const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
        if (s->loopback && !srv_host_allowed(host, s->cfg.host, s->cfg.host_allow)) {
            srv_fail(&e, 403, "permission_error", NULL, "host_not_allowed",
                     "Host '%.100s' is not this server's name (add it with --host-allow)",
                     host ? host : "");
            return send_error(s, c, cn, route, &e);
        }
        /* browsers: only allowed origins; a foreign page's request is refused before it runs
         * (simple POSTs reach the server without a preflight) */
        const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
        if (!srv_origin_allowed(origin, s->cfg.cors)) {
            srv_fail(&e, 403, "permission_error", NULL, "origin_not_allowed",
                     "Origin '%.100s' is not allowed (see --cors)", origin);
            return send_error(s, c, cn, route, &e);
        }
        if (!strcmp(method, "OPTIONS")) { /* CORS preflight of an allowed origin */
            struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
            add_cors(s, c, r);
            MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                    "Authorization, Content-Type");
            MHD_add_response_header(r, "Access-Control-Max-Age", "600");
            enum MHD_Result ret = MHD_queue_response(c, 204, r);
            MHD_destroy_response(r);
            return ret;
        }
        if (id == R_NOTFOUND) {
            srv_fail(&e, 404, NULL, NULL, "not_found", "no route for %s %s", method, url);
            return send_error(s, c, cn, route, &e);
        }
        if (strcmp(method, want) != 0 && !(id == R_HEALTH && !strcmp(method, "HEAD"))) {
            srv_fail(&e, 405, NULL, NULL, "method_not_allowed", "%s does not allow %s (use %s)",
                     url, method, want);
            return send_error_allow(s, c, cn, route, &e, want);
        }
        if (id != R_HEALTH && !auth_ok(s, c)) {
            srv_fail(&e, 401, "authentication_error", NULL, "invalid_api_key",
                     "missing or invalid API key (send 'Authorization: Bearer KEY')");
            return send_error(s, c, cn, route, &e);
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body) {
            srv_fail(&e, 413, NULL, NULL, "body_too_large", "request body exceeds %zu bytes",
                     s->cfg.max_body);
            return send_error(s, c, cn, route, &e);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cn->too_big && cn->body.len + *upload_size > s->cfg.max_body) {
            cn->too_big = true;
            trit_buf_free(&cn->body);
        }
        /* every buffered byte counts against the server-wide budget (many connections x
         * max_body would otherwise be unbounded memory) */
        if (!cn->too_big && !cn->too_busy) {
            size_t was = atomic_fetch_add(&s->body_bytes, *upload_size);
            cn->counted += *upload_size;
            if (was + *upload_size > s->cfg.max_body_total) {
                cn->too_busy = true;
                trit_buf_free(&cn->body);
            }
        }
        if (!cn->too_big && !cn->too_busy) trit_buf_append(&cn->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (cn->too_big) {
        srv_fail(&e, 413, NULL, NULL, "body_too_large", "request body exceeds %zu bytes",
                 s->cfg.max_body);
        return send_error(s, c, cn, route, &e);
    }
    if (cn->too_busy) {
        srv_fail(&e, 503, "server_error", NULL, "server_busy",
                 "too many request bodies in flight (%zu bytes); retry shortly",
                 s->cfg.max_body_total);
        return send_error(s, c, cn, route, &e);
    }
    switch (id) {
    case R_HEALTH: {
        json_t *o = json_object();
        json_object_set_new(o, "status", json_string("ok"));
        return send_json(s, c, cn, route, 200, o);
    }
    case R_MODELS:
        return h_models(s, c, cn);
    case R_METRICS:
        return h_metrics(s, c, cn);
    case R_COMPLETIONS:
        return h_generate(s, c, cn, SRV_COMPLETION, route);
    case R_CHAT:
        return h_generate(s, c, cn, SRV_CHAT, route);
    case R_TOKENIZE:
        return h_tokenize(s, c, cn);
    case R_DETOKENIZE:
        return h_detokenize(s, c, cn);
    default:
        break;
    }
    srv_fail(&e, 404, NULL, NULL, "not_found", "no route for %s %s", method, url);
    return send_error(s, c, cn, route, &e);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    conn *cn = *con_cls;
    if (!cn) return;
    server *s = cls;
    atomic_fetch_sub(&s->body_bytes, cn->counted);
    trit_buf_free(&cn->body);
    free(cn);
    *con_cls = NULL;
}

/* ---- lifecycle ---- */
void srv_config_default(srv_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8180;
    c->n_slots = 1;
    c->queue_cap = 16;
    c->n_threads = 0;
    c->max_body = 1u << 20;
    c->chat_tmpl = -1;
    c->grace_s = 10;
    c->max_body_total = (size_t)64 << 20;
    c->max_parsing = 4;
}

static char *basename_of(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    return xstrdup(b);
}

int srv_run(const srv_config *cfg, trit_model *model, trit_tokenizer *tok, trit_err *err) {
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
        char *t = gguf_get_str(model->gguf, "tokenizer.chat_template");
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
    s->n_slots = cfg->n_slots > 0 ? cfg->n_slots : 1;
    s->slots = xcalloc((size_t)s->n_slots, sizeof *s->slots);
    int started = 0;
    for (int i = 0; i < s->n_slots; i++) {
        trit_ctx_params cp = trit_ctx_default_params();
        cp.n_ctx = cfg->n_ctx;
        /* default: share the CPUs among the slots instead of oversubscribing them */
        cp.n_threads =
            cfg->n_threads > 0 ? cfg->n_threads : TRIT_MAX(1, trit_cpu_count() / s->n_slots);
        s->slots[i].srv = s;
        s->slots[i].id = i;
        s->slots[i].ctx = trit_ctx_new(model, &cp, err);
        if (!s->slots[i].ctx) {
            trit_err_prefix(err, "slot %d", i);
            goto out;
        }
        s->n_ctx = trit_ctx_n_ctx(s->slots[i].ctx);
    }
    for (; started < s->n_slots; started++)
        if (pthread_create(&s->slots[started].th, NULL, worker, &s->slots[started])) {
            trit_fail(err, TRIT_EIO, "cannot start worker thread");
            goto out;
        }

    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        trit_fail(err, TRIT_EINVAL, "--host '%s' is not an IPv4 address", cfg->host);
        goto out;
    }
    s->loopback = (ntohl(addr.sin_addr.s_addr) >> 24) == 127;
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_ITC | MHD_USE_ERROR_LOG,
                            (uint16_t)cfg->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024, MHD_OPTION_END);
    if (!s->d) {
        trit_fail(err, TRIT_EIO, "cannot listen on %s:%d (%s)", cfg->host, cfg->port,
                  strerror(errno));
        goto out;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "trit serve: %s on http://%s:%u (%d slot%s, ctx %d, queue %d, template %s%s)\n",
            s->name, cfg->host, di ? di->port : (unsigned)cfg->port, s->n_slots,
            s->n_slots == 1 ? "" : "s", s->n_ctx, cfg->queue_cap,
            s->chat_tmpl == SRV_TMPL_CHATML ? "chatml" : trit_chat_tmpl_name(s->chat_tmpl),
            cfg->api_key && *cfg->api_key ? ", api key required" : "");

    int sig = 0;
    sigset_t wait_set;
    sigemptyset(&wait_set);
    sigaddset(&wait_set, SIGINT);
    sigaddset(&wait_set, SIGTERM);
    sigwait(&wait_set, &sig);
    fprintf(stderr, "trit serve: %s received, draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");

    /* stop accepting, let in-flight work finish within the grace period, cancel the rest */
    atomic_store(&s->draining, true);
    MHD_socket lsock = MHD_quiesce_daemon(s->d);
    if (lsock != MHD_INVALID_SOCKET) close(lsock);
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
    MHD_stop_daemon(s->d);
    s->d = NULL;
    rc = 0;
    fprintf(stderr, "trit serve: stopped\n");
out:
    pthread_mutex_lock(&s->qmu);
    s->workers_exit = true;
    pthread_cond_broadcast(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    for (int i = 0; i < started; i++) pthread_join(s->slots[i].th, NULL);
    if (s->d) MHD_stop_daemon(s->d);
    for (int i = 0; i < s->n_slots; i++) trit_ctx_free(s->slots[i].ctx);
    free(s->slots);
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
