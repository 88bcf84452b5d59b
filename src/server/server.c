/* server/server.c — libmicrohttpd daemon (a thread per connection), routes, auth, body limit,
 * slots (a KV cache each) served by one scheduler thread with continuous batching over one
 * trit_ctx (one thread pool using every thread), the bounded FIFO queue, generation, SSE and
 * graceful shutdown. */
#include "server/server.h"

#include "gguf/gguf.h"
#include "http/http.h"
#include "server/sched.h"
#include "kernels/kernels.h"
#include "server/www/chat.css.h"
#include "server/www/chat.html.h"
#include "server/www/chat.js.h"

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
    R_PAGE,
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
    {"/", "GET", "page", R_PAGE},
    {"/chat.js", "GET", "page", R_PAGE},
    {"/chat.css", "GET", "page", R_PAGE},
};

/* The chat page (GET /): its three files, compiled in (src/server/www, scripts/embed). Like
 * /health they load without the API key (they hold nothing but the page); the API calls the
 * page makes need it. Host and Origin are checked as on every route. */
static const trit_http_asset assets[] = {
    {"/", "text/html; charset=utf-8", www_server_chat_html, sizeof www_server_chat_html},
    {"/chat.js", "text/javascript; charset=utf-8", www_server_chat_js, sizeof www_server_chat_js},
    {"/chat.css", "text/css; charset=utf-8", www_server_chat_css, sizeof www_server_chat_css},
};

/* One request on a connection: its body as it arrives, and why it was refused if it was. */
typedef struct conn {
    trit_buf body;
    int refused; /* TRIT_HTTP_BODY_TOO_BIG / _BUSY once a chunk was refused, else 0 */
    bool body_done;
    double t0;
} conn;

/* ---- small helpers ---- */
static void make_id(server *s, const char *prefix, char out[48]) {
    unsigned long n = atomic_fetch_add(&s->seq, 1);
    uint64_t x[2] = {s->id_salt, n};
    uint64_t h = trit_hash64(x, sizeof x);
    snprintf(out, 48, "%s%016llx%04lx", prefix, (unsigned long long)h, n & 0xffff);
}

/* CORS headers for an allowed browser origin (http's rule, the intake refused the others). */
static void add_cors(server *s, struct MHD_Connection *c, struct MHD_Response *r) {
    trit_http_cors_headers(c, r, s->cfg.cors);
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

/* An error reply (with Allow on a 405), counted in the metrics. */
static enum MHD_Result send_error_allow(server *s, struct MHD_Connection *c, conn *cn,
                                        const char *route, const srv_error *e, const char *allow) {
    srv_metrics_request(s->metrics, route, e->status, trit_now_s() - cn->t0);
    return send_body(s, c, e->status, "application/json; charset=utf-8", srv_error_json(e), allow);
}

/* An error reply, counted in the metrics. */
static enum MHD_Result send_error(server *s, struct MHD_Connection *c, conn *cn, const char *route,
                                  const srv_error *e) {
    return send_error_allow(s, c, cn, route, e, NULL);
}

/* A JSON reply built since mark: sent when it is whole, else a 500 with an error body. */
static enum MHD_Result send_json(server *s, struct MHD_Connection *c, conn *cn, const char *route,
                                 int status, json_t *v, unsigned long mark) {
    char *body = trit_http_dumps(v, mark);
    if (!body) {
        srv_error e = {0};
        srv_oom_error(&e);
        return send_error(s, c, cn, route, &e);
    }
    srv_metrics_request(s->metrics, route, status, trit_now_s() - cn->t0);
    return send_body(s, c, status, "application/json; charset=utf-8", body, NULL);
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
        srv_cond_wait_ms(&s->pcv, &s->pmu, 100);
    bool ok = s->parsing < s->cfg.max_parsing;
    if (ok) s->parsing++;
    pthread_mutex_unlock(&s->pmu);
    return ok;
}

/* The parse turn back, waking one waiting connection. */
static void parse_turn_give(server *s) {
    pthread_mutex_lock(&s->pmu);
    s->parsing--;
    pthread_cond_signal(&s->pcv);
    pthread_mutex_unlock(&s->pmu);
}

/* The 503 a request gets when no parse turn came within 5 s. */
static int busy_error(srv_error *e) {
    return srv_fail(e, 503, "server_error", NULL, "server_busy",
                    "the server is busy parsing other requests; retry shortly");
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
        srv_cond_wait_ms(&j->cv, &j->mu, 100);
        if (j->state != JOB_DONE && peer_gone(j)) {
            pthread_mutex_unlock(&j->mu);
            srv_job_cancel(j);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* The stream's end (finished or the client gone): the job is cancelled if still running. */
static void sse_done(void *cls) {
    job *j = cls;
    srv_job_cancel(j); /* no-op for a finished job */
    pthread_mutex_lock(&j->mu);
    int status = j->state == JOB_DONE ? j->status : 499;
    pthread_mutex_unlock(&j->mu);
    srv_metrics_request(j->srv->metrics, j->route, status, trit_now_s() - j->t0);
    srv_job_release(j);
}

/* ---- prompt building ---- */
static void render_chatml(const srv_request *r, trit_buf *out) {
    for (size_t i = 0; i < r->n_msgs; i++)
        trit_buf_printf(out, "<|im_start|>%s\n%s<|im_end|>\n", r->msgs[i].role, r->msgs[i].content);
    trit_buf_puts(out, "<|im_start|>assistant\n");
}

/* The job's prompt tokens: ids as given, or the template rendered and tokenized; refused
 * when empty or over the context. */
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
    job *j = srv_job_new(s, route);
    j->t0 = cn->t0;
    if (!parse_turn_take(s)) {
        busy_error(&e);
        srv_job_release(j);
        return send_error(s, c, cn, route, &e);
    }
    int bad =
        srv_parse_request(kind, cn->body.p, cn->body.len, &j->req, &e) || build_prompt(s, j, &e);
    parse_turn_give(s);
    if (bad) {
        srv_job_release(j);
        return send_error(s, c, cn, route, &e);
    }
    make_id(s, kind == SRV_CHAT ? "chatcmpl-" : "cmpl-", j->id);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    if (srv_enqueue(s, j, &e)) {
        srv_job_release(j);
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
        srv_cond_wait_ms(&j->cv, &j->mu, 100);
        if (j->state != JOB_DONE && !atomic_load(&j->cancel) && peer_gone(j)) {
            pthread_mutex_unlock(&j->mu);
            srv_job_cancel(j);
            pthread_mutex_lock(&j->mu);
        }
    }
    int status = j->status;
    char *body = j->body;
    j->body = NULL;
    pthread_mutex_unlock(&j->mu);
    srv_job_release(j);
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
int srv_tokenize_reply(server *s, const int32_t *ids, size_t n, bool with_pieces, trit_buf *out) {
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
    else if (srv_tokenize_reply(s, ids, n, q.with_pieces, &out))
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

/* POST /detokenize: token ids back to text (ids checked against the vocabulary). */
static enum MHD_Result h_detokenize(server *s, struct MHD_Connection *c, conn *cn) {
    srv_error e = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    /* like /tokenize, the parse turn covers the reply: text and its JSON are built here */
    if (!parse_turn_take(s)) {
        busy_error(&e);
        return send_error(s, c, cn, "/detokenize", &e);
    }
    if (!srv_parse_detokenize(cn->body.p, cn->body.len, &ids, &n, &e))
        for (size_t i = 0; i < n && !e.status; i++)
            if (ids[i] >= s->n_vocab)
                srv_fail(&e, 400, NULL, "tokens", "invalid_token",
                         "token %zu is %d, outside the vocabulary (%d tokens)", i, (int)ids[i],
                         s->n_vocab);
    char *body = NULL;
    if (!e.status) {
        trit_buf out = {0};
        trit_tok_decode(s->tok, ids, n, true, &out);
        const unsigned long mark = trit_http_json_mark();
        json_t *o = json_object();
        json_object_set_new(o, "content", srv_jstr(out.p ? out.p : "", out.len));
        trit_buf_free(&out);
        if (!(body = trit_http_dumps(o, mark))) srv_oom_error(&e);
    }
    free(ids);
    parse_turn_give(s);
    if (e.status) return send_error(s, c, cn, "/detokenize", &e);
    srv_metrics_request(s->metrics, "/detokenize", 200, trit_now_s() - cn->t0);
    return send_body(s, c, 200, "application/json; charset=utf-8", body, NULL);
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
    json_object_set_new(params, "max_tokens", json_integer(-1));
    json_object_set_new(params, "seed", json_integer(0xFFFFFFFF)); /* llama's "random" seed */
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
    json_object_set_new(t, "commit", json_string(trit_build_commit()));
    json_object_set_new(t, "build", json_string(s->build));
    json_object_set_new(t, "system_fingerprint", json_string(s->fingerprint));
    json_object_set_new(t, "instance", json_string(s->instance));
    json_object_set_new(t, "started", json_integer(s->created));
    json_object_set_new(t, "model_path", srv_jstr(s->model->path, strlen(s->model->path)));
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
    json_object_set_new(o, "model_path", srv_jstr(s->model->path, strlen(s->model->path)));
    json_object_set_new(o, "modalities", mod);
    json_object_set_new(o, "endpoint_slots", json_false());
    json_object_set_new(o, "endpoint_props", json_false());
    json_object_set_new(o, "endpoint_metrics", json_true());
    json_object_set_new(o, "ui", json_true()); /* the chat page at / */
    const char *used = s->chat_tmpl == SRV_TMPL_CHATML ? srv_chatml_jinja() : tmpl ? tmpl : "";
    json_object_set_new(o, "chat_template", srv_jstr(used, strlen(used)));
    json_object_set_new(o, "chat_template_name", json_string(tmpl_name ? tmpl_name : ""));
    json_object_set_new(o, "bos_token", srv_jstr(bos.p ? bos.p : "", bos.len));
    json_object_set_new(o, "eos_token", srv_jstr(eos.p ? eos.p : "", eos.len));
    json_object_set_new(o, "build_info", json_string(s->build));
    json_object_set_new(o, "is_sleeping", json_false());
    json_object_set_new(o, "trit", t);
    free(tmpl);
    trit_buf_free(&bos);
    trit_buf_free(&eos);
    return send_json(s, c, cn, "/props", 200, o, mark);
}

/* GET /metrics: the counters, plus the queue and busy slots sampled now. */
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

/* Intake step 1, check headers (a request's first call, before its body): who is asking
 * (http: Host, DNS rebinding, Origin), preflight, route and method, then the key and the
 * announced size (http). Every refusal is answered before a body byte is kept. */
static enum MHD_Result intake_headers(server *s, struct MHD_Connection *c, conn *cn, int id,
                                      const char *route, const char *want, const char *url,
                                      const char *method, const char *version) {
    srv_error e = {0};
    trit_http_refusal rf;
    if (trit_http_check_peer(c, version, &s->in, &rf)) return send_refusal(s, c, cn, route, &rf);
    if (!strcmp(method, "OPTIONS")) return trit_http_preflight(c, s->cfg.cors);
    if (id == R_NOTFOUND) {
        srv_fail(&e, 404, NULL, NULL, "not_found", "no route for %s %s", method, url);
        return send_error(s, c, cn, route, &e);
    }
    const bool head_ok = id == R_HEALTH || id == R_PAGE; /* GET routes that allow HEAD */
    if (strcmp(method, want) != 0 && !(head_ok && !strcmp(method, "HEAD"))) {
        srv_fail(&e, 405, NULL, NULL, "method_not_allowed", "%s does not allow %s (use %s)", url,
                 method, want);
        return send_error_allow(s, c, cn, route, &e, head_ok ? "GET, HEAD" : want);
    }
    if (trit_http_check_entry(c, &s->in, id != R_HEALTH && id != R_PAGE, &rf))
        return send_refusal(s, c, cn, route, &rf);
    return MHD_YES;
}

/* Intake step 2, take the body: each chunk is counted in http's budgets (the request's, all
 * requests', this peer's share); a refused body is dropped and answered once complete. */
static void intake_body(server *s, struct MHD_Connection *c, conn *cn, const char *upload,
                        size_t n) {
    if (cn->refused) {
        trit_http_body_seen(s->hd.guard, c, n);
        return;
    }
    cn->refused = trit_http_take_body(s->hd.guard, c, cn->body.len, n);
    if (cn->refused)
        trit_buf_free(&cn->body);
    else
        trit_buf_append(&cn->body, upload, n);
}

/* GET / and the page's files: the asset, with the page headers (a strict CSP). */
static enum MHD_Result h_page(server *s, struct MHD_Connection *c, conn *cn, const char *url) {
    const trit_http_asset *a = trit_http_asset_find(assets, TRIT_ARRAY_LEN(assets), url);
    if (!a) { /* the route table and the asset table disagree: a defect, said as one */
        srv_error e = {0};
        srv_fail(&e, 404, NULL, NULL, "not_found", "no page at %s", url);
        return send_error(s, c, cn, "page", &e);
    }
    srv_metrics_request(s->metrics, "page", 200, trit_now_s() - cn->t0);
    return trit_http_send_asset(c, a);
}

/* Intake step 3, route: a refused body's answer, else the route's handler. */
static enum MHD_Result intake_route(server *s, struct MHD_Connection *c, conn *cn, int id,
                                    const char *route, const char *url) {
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
    case R_PAGE:
        return h_page(s, c, cn, url);
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
    return intake_route(s, c, cn, id, route, url);
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
    c->cache_mib = 256;
    c->fault_act = c->fault_rope = -1;
}

/* One item of --fault: the engine's own fault-injection switches (the trit backend's ?act=
 * and ?rope= options), the JSON allocation fault of http, or a pause after every step (so a
 * test's request provably outlasts a disconnect or a signal, whatever the machine's speed). */
static int fault_item(srv_config *c, const char *k, const char *v) {
    long n = 0;
    if (!strcmp(k, "act") && (!strcmp(v, "silu") || !strcmp(v, "relu2")))
        c->fault_act = !strcmp(v, "silu") ? TRIT_ACT_SILU : TRIT_ACT_RELU2;
    else if (!strcmp(k, "rope") && (!strcmp(v, "norm") || !strcmp(v, "neox")))
        c->fault_rope = !strcmp(v, "norm") ? TRIT_ROPE_NORM : TRIT_ROPE_NEOX;
    else if (!strcmp(k, "json-alloc") && !trit_parse_long(v, 1, 1L << 30, &n))
        c->fault_json_alloc = (unsigned)n;
    else if (!strcmp(k, "step-ms") && !trit_parse_long(v, 1, 60000, &n))
        c->fault_step_ms = (int)n;
    else
        return -1;
    return 0;
}

/* --fault SPEC: each comma item through fault_item; a bad one is a usage error. */
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
                "json-alloc=N, step-ms=N (comma list)\n",
                spec);
    return rc;
}

/* The /props numerics: the numerics, and the fault when one is on (a faulty server must
 * never pass for a normal one; its fingerprint differs too). */
static void numerics_label(const srv_config *cfg, char *out, size_t n) {
    const char *num = trit_numerics_name(cfg->numerics);
    if (cfg->fault_act < 0 && cfg->fault_rope < 0 && !cfg->fault_json_alloc &&
        !cfg->fault_step_ms) {
        snprintf(out, n, "%s", num);
        return;
    }
    char act[24] = "", rope[24] = "", ja[32] = "", sm[32] = "";
    if (cfg->fault_act >= 0) snprintf(act, sizeof act, "+act=%s", trit_act_name(cfg->fault_act));
    if (cfg->fault_rope >= 0)
        snprintf(rope, sizeof rope, "+rope=%s",
                 cfg->fault_rope == TRIT_ROPE_NEOX ? "neox" : "norm");
    if (cfg->fault_json_alloc) snprintf(ja, sizeof ja, "+json-alloc=%u", cfg->fault_json_alloc);
    if (cfg->fault_step_ms) snprintf(sm, sizeof sm, "+step-ms=%d", cfg->fault_step_ms);
    snprintf(out, n, "%s-FAULT%s%s%s%s", num, act, rope, ja, sm);
}

/* What /props and /v1/models report about this process (fixed for its lifetime), and the
 * start of the model file's sha256 on a background thread: startup does not wait for it. */
static void identity_init(server *s, const srv_config *cfg) {
    srv_instance_id(s->instance);
    trit_build_string(s->build, sizeof s->build);
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

/* The model's name in replies when there is no --alias: the file name. */
static char *basename_of(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    return xstrdup(b);
}

/* The server's state before anything starts: names, template, locks, limits. */
static server *server_new(const srv_config *cfg, trit_model *model, trit_tokenizer *tok) {
    server *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->model = model;
    s->tok = tok;
    s->name = cfg->alias && *cfg->alias ? xstrdup(cfg->alias) : basename_of(model->path);
    s->n_vocab = TRIT_MIN(trit_tok_n_vocab(tok), model->hp.n_vocab);
    s->created = (long)trit_wall_s();
    s->metrics = srv_metrics_new();
    uint64_t seed[2] = {trit_now_ns(), (uint64_t)getpid()};
    s->id_salt = trit_hash64(seed, sizeof seed);
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
    s->n_slots = TRIT_MIN(cfg->n_slots > 0 ? cfg->n_slots : 1, SRV_MAX_SLOTS);
    s->n_draft = TRIT_MAX(0, TRIT_MIN(cfg->n_draft, SRV_MAX_DRAFT));
    return s;
}

/* The intake http runs for this server: its checks and its limits. */
static int start_http(server *s, trit_err *err) {
    const srv_config *cfg = &s->cfg;
    s->in = (trit_http_intake){.bound = cfg->host,
                               .loopback = trit_http_is_loopback(cfg->host),
                               .host_allow = cfg->host_allow,
                               .cors = cfg->cors,
                               .api_key = cfg->api_key && *cfg->api_key ? cfg->api_key : NULL,
                               .max_body = cfg->max_body};
    trit_http_limits lim;
    trit_http_limits_default(&lim);
    lim.max_body = cfg->max_body;
    lim.body_total = cfg->max_body_total;
    const trit_http_callbacks cb = {.handler = handler, .completed = completed, .cls = s};
    return trit_http_start(&s->hd, cfg->host, cfg->port, &lim, &cb, err);
}

/* What the operator sees at start: where, how many slots, the identity, a fault if any. */
static void banner(const server *s) {
    const srv_config *cfg = &s->cfg;
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
}

/* Lifecycle step 1, start: engine context (one thread pool for every slot), identity, slots,
 * the scheduler, then the HTTP intake. 0, or -1 with err (server_free releases the rest). */
static int server_start(server *s, trit_err *err) {
    const srv_config *cfg = &s->cfg;
    trit_ctx_params cp = trit_ctx_default_params();
    cp.n_ctx = cfg->n_ctx;
    cp.n_batch = cfg->n_batch;
    cp.n_threads = cfg->n_threads;
    cp.numerics = cfg->numerics; /* exact (default) or --numerics fast */
    cp.act = cfg->fault_act;     /* -1: the model's; --fault act= */
    cp.rope_mode = cfg->fault_rope;
    s->ctx = trit_ctx_new(s->model, &cp, err);
    if (!s->ctx) return -1;
    s->n_ctx = trit_ctx_n_ctx(s->ctx);
    identity_init(s, cfg);
    srv_slots_new(s);
    if (srv_sched_start(s, err) || start_http(s, err)) return -1;
    banner(s);
    if (cfg->fault_json_alloc) trit_http_json_fault(cfg->fault_json_alloc);
    return 0;
}

/* Lifecycle step 2, serve: connections are served by http's threads; this thread waits for
 * SIGINT or SIGTERM (blocked in every thread, taken here synchronously). */
static void serve_until_signal(void) {
    int sig = 0;
    sigset_t wait_set;
    sigemptyset(&wait_set);
    sigaddset(&wait_set, SIGINT);
    sigaddset(&wait_set, SIGTERM);
    sigwait(&wait_set, &sig);
    fprintf(stderr, "trit serve: %s received, draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
}

/* Lifecycle step 3, drain: stop accepting, let in-flight work finish within the grace
 * period, cancel the rest, then close every connection. */
static void drain(server *s) {
    atomic_store(&s->draining, true);
    trit_http_quiesce(&s->hd);
    double deadline = trit_now_s() + s->cfg.grace_s;
    pthread_mutex_lock(&s->qmu);
    while ((s->qlen || s->busy) && trit_now_s() < deadline) srv_cond_wait_ms(&s->qcv, &s->qmu, 50);
    if (s->qlen || s->busy) {
        fprintf(stderr, "trit serve: cancelling %d running and %d queued requests\n", s->busy,
                s->qlen);
        atomic_store(&s->cancel_all, true);
    }
    while (s->qlen || s->busy) pthread_cond_wait(&s->qcv, &s->qmu);
    pthread_mutex_unlock(&s->qmu);
    usleep(100 * 1000); /* streams still being written get a short moment to flush */
    trit_http_stop(&s->hd);
    fprintf(stderr, "trit serve: stopped\n");
}

/* Lifecycle step 4, free: the scheduler (joined), the intake, the hash thread, the slots and
 * the engine context; safe after a start that failed half-way. */
static void server_free(server *s) {
    srv_sched_stop(s);
    trit_http_stop(&s->hd);
    srv_file_hash_stop(&s->hash);
    srv_slots_free(s);
    trit_ctx_free(s->ctx);
    srv_metrics_free(s->metrics);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qcv);
    pthread_mutex_destroy(&s->pmu);
    pthread_cond_destroy(&s->pcv);
    free(s->name);
    free(s);
}

/* The server's life in four named steps: start -> serve -> drain -> free. */
int srv_run(const srv_config *cfg, trit_model *model, trit_tokenizer *tok, trit_err *err) {
    const trit_http_door door = {.who = "trit serve",
                                 .host = cfg->host,
                                 .cors = cfg->cors,
                                 .api_key = cfg->api_key,
                                 .key_env = "TRIT_API_KEY",
                                 .insecure_no_key = cfg->insecure_no_key};
    if (trit_http_door_check(&door, err)) return -1;
    /* signals are taken synchronously by this thread (sigwait); every thread created below
     * inherits the blocked mask */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    server *s = server_new(cfg, model, tok);
    int rc = server_start(s, err);
    if (!rc) {
        serve_until_signal();
        drain(s);
    }
    server_free(s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
