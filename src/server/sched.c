/* server/sched.c — the scheduler side of trit serve: jobs and the bounded queue, slots (a KV
 * cache each) served by one scheduler thread with continuous batching over one trit_ctx,
 * logprobs, reply shapes (streamed chunks and final bodies). See sched.h. */
#include "server/sched.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Every string in a reply goes through base's UTF-8 repair (a token may be part of a
 * character); never NULL, so a member is never silently missing. */
json_t *srv_jstr(const char *s, size_t n) {
    trit_buf b = {0};
    trit_utf8_repair(s, n, &b);
    json_t *v = json_stringn(b.p, b.len);
    trit_buf_free(&b);
    return v ? v : json_string("");
}

/* The 500 a reply becomes when its JSON could not be built whole (never a partial 200). */
int srv_oom_error(srv_error *e) {
    return srv_fail(e, 500, "server_error", NULL, "out_of_memory",
                    "out of memory while building the reply; retry shortly");
}

/* pthread_cond_timedwait for at most ms (< 1000) milliseconds from now */
void srv_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

/* ---- jobs ---- */
job *srv_job_new(server *s, const char *route) {
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

/* Drop a reference; the last one frees the job (request, prompt, stream, body). */
void srv_job_release(job *j) {
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
    assert(j->state != JOB_DONE); /* a job is answered once: its connection reads one outcome */
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
int srv_enqueue(server *s, job *j, srv_error *e) {
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
void srv_job_cancel(job *j) {
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
    srv_job_release(j); /* the reference the worker would have dropped */
}

/* ---- logprobs ---- */

/* A piece's bytes as numbers: llama-server's "bytes" field (pieces may not be UTF-8). */
static json_t *bytes_arr(const char *p, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer((unsigned char)p[i]));
    return a;
}

/* A logprob as JSON: null when not finite (a NaN or infinite logit, from a model whose weights
 * overflow), as llama-server's JSON library writes it; json_real refuses those values, and the
 * member would silently go missing from a 200 reply. */
static json_t *lp_num(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

/* Empty logprobs of a request, in both shapes (chat content and legacy completions). */
static void lp_init(lp_acc *a) {
    a->content = json_array();
    a->tokens = json_array();
    a->token_logprobs = json_array();
    a->top_logprobs = json_array();
    a->text_offset = json_array();
    a->offset = 0;
}

/* The request's logprobs go with it. */
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
    json_object_set_new(ent, "token", srv_jstr(piece.p ? piece.p : "", piece.len));
    json_object_set_new(ent, "bytes", bytes_arr(piece.p, piece.len));
    json_array_append_new(a->tokens, srv_jstr(piece.p ? piece.p : "", piece.len));
    json_array_append_new(a->text_offset, json_integer((json_int_t)a->offset));
    a->offset += piece.len;
    if (!logits) {
        json_object_set_new(ent, "logprob", json_null());
        json_object_set_new(ent, "top_logprobs", json_array());
        json_array_append_new(a->token_logprobs, json_null());
        json_array_append_new(a->top_logprobs, json_null());
    } else {
        double lse = trit_logsumexp(logits, s->n_vocab);
        json_object_set_new(ent, "logprob", lp_num(logits[tok] - lse));
        json_array_append_new(a->token_logprobs, lp_num(logits[tok] - lse));
        int32_t ids[32];
        int n = k > 0 ? trit_top_k(logits, s->n_vocab, TRIT_MIN(k, 32), ids) : 0;
        json_t *tops = json_array(), *dict = json_object();
        for (int i = 0; i < n; i++) {
            trit_buf p = {0};
            trit_tok_piece(s->tok, ids[i], false, &p);
            json_t *t = json_object();
            json_object_set_new(t, "id", json_integer(ids[i]));
            json_object_set_new(t, "token", srv_jstr(p.p ? p.p : "", p.len));
            json_object_set_new(t, "logprob", lp_num(logits[ids[i]] - lse));
            json_object_set_new(t, "bytes", bytes_arr(p.p, p.len));
            json_array_append_new(tops, t);
            trit_buf r = {0};
            trit_utf8_repair(p.p ? p.p : "", p.len, &r);
            if (!json_object_get(dict, r.p))
                json_object_set_new(dict, r.p, lp_num(logits[ids[i]] - lse));
            trit_buf_free(&r);
            trit_buf_free(&p);
        }
        json_object_set_new(ent, "top_logprobs", tops);
        json_array_append_new(a->top_logprobs, dict);
    }
    json_array_append_new(a->content, ent);
    trit_buf_free(&piece);
}

/* The completions reply's logprobs: the legacy arrays, plus llama-server's content. */
static json_t *lp_legacy(lp_acc *a) {
    json_t *o = json_object();
    json_object_set(o, "tokens", a->tokens);
    json_object_set(o, "token_logprobs", a->token_logprobs);
    json_object_set(o, "top_logprobs", a->top_logprobs);
    json_object_set(o, "text_offset", a->text_offset);
    json_object_set(o, "content", a->content);
    return o;
}

/* The chat reply's logprobs: the content array. */
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

/* The fields every reply and chunk starts with: id, object, created, model, fingerprint. */
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
        if (!finish || n) json_object_set_new(delta, "content", srv_jstr(text, n));
        json_object_set_new(ch, "delta", delta);
    } else {
        json_object_set_new(ch, "text", srv_jstr(text, n));
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

/* ---- the prompt cache ---- */

/* The metrics' copy of the prompt cache's counters. */
static void pcache_metrics(server *s) {
    const srv_pcache_stats st = srv_pcache_stats_get(s->pcache);
    const srv_metrics_pcache m = {.lookups = st.lookups,
                                  .hits = st.hits,
                                  .reused_tokens = st.reused_tokens,
                                  .stores = st.stores,
                                  .evictions = st.evictions,
                                  .replayed_tokens = st.replayed_tokens,
                                  .bytes = st.bytes,
                                  .max_bytes = st.max_bytes,
                                  .entries = (unsigned long long)st.entries};
    srv_metrics_pcache_set(s->metrics, &m);
}

/* The engine rates an entry (srv_reuse_fn): its rule, never the server's guess. */
static int reuse_len(void *ud, int made, int common, int n) {
    return trit_ctx_reuse_len(ud, made, common, n);
}

/* A starting request takes the prompt cells the reuse rule allows from the best entry, so its
 * prefill starts there; not with cache_prompt false, nor for echo + logprobs (every prompt
 * row's logits are wanted). */
static void slot_reuse(slot *sl) {
    server *s = sl->srv;
    const job *j = sl->j;
    sl->n_reused = 0;
    if (!s->pcache || !j->req.cache_prompt || sl->prompt_lp) return;
    const void *block;
    int n_block;
    const int p = srv_pcache_best(s->pcache, j->prompt, (int)j->n_prompt, reuse_len, s->ctx, &block,
                                  &n_block);
    if (p > 0) {
        trit_seq_set_cells(s->ctx, sl->seq, block, n_block, p);
        sl->n_eval = sl->n_reused = p;
    }
    pcache_metrics(s);
}

/* Give the first n cells of sl's sequence (prefill cells of tok[0..n)) to the cache. */
static void pcache_keep(slot *sl, const int32_t *tok, int n) {
    server *s = sl->srv;
    const size_t bytes = trit_seq_cells_bytes(s->ctx, n);
    if (n < 1 || bytes > srv_pcache_stats_get(s->pcache).max_bytes) return; /* no copy */
    void *block = malloc(bytes);
    if (!block) return; /* a cache entry is an optimization: skip it when memory is short */
    trit_seq_get_cells(s->ctx, sl->seq, n, block);
    srv_pcache_put(s->pcache, tok, n, block, bytes);
    pcache_metrics(s);
}

/* An ending request whose prompt was evaluated whole gives its prompt's cells (prefill cells:
 * generated tokens' cells lie after them) to the cache, and a finished reply is marked for
 * the idle replay: prompt + reply as one prompt, from the prompt cells the rule allows. */
static void slot_keep_prompt(slot *sl, const char *finish) {
    server *s = sl->srv;
    const job *j = sl->j;
    const int n = (int)j->n_prompt;
    sl->replay_n = 0;
    if (!s->pcache || !j->req.cache_prompt || sl->n_eval < n) return;
    pcache_keep(sl, j->prompt, n);
    if (!finish || sl->n_gen < 1) return; /* cancelled, failed, or nothing generated */
    const int p = trit_ctx_reuse_len(s->ctx, n, n, sl->n_hist);
    if (p < 1) return; /* the whole history again: not worth an idle pass */
    sl->replay_n = sl->n_hist;
    sl->replay_pos = p;
}

/* Whether a free slot has a reply to replay. */
static bool replay_pending(const server *s) {
    for (int i = 0; i < s->n_slots; i++)
        if (!s->slots[i].j && s->slots[i].replay_n) return true;
    return false;
}

/* One idle step: the next chunk of every pending replay (n_batch rows in all, the first
 * always), as prompt rows of a cold prefill of prompt + reply; a finished one is kept. */
static void run_replay(server *s) {
    trit_batch_entry e[SRV_MAX_SLOTS];
    slot *of[SRV_MAX_SLOTS];
    int n = 0, rows = 0;
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->j || !sl->replay_n) continue;
        const int T = trit_ctx_chunk_at(s->ctx, sl->replay_pos, sl->replay_n);
        if (rows && rows + T > trit_ctx_n_batch(s->ctx)) continue;
        e[n] = (trit_batch_entry){.seq = sl->seq,
                                  .tokens = sl->hist + sl->replay_pos,
                                  .n_tokens = T,
                                  .pos = sl->replay_pos,
                                  .chunk_rows =
                                      trit_ctx_chunk_rows(s->ctx, sl->replay_pos, sl->replay_n)};
        of[n++] = sl;
        rows += T;
    }
    trit_err err = {0};
    const bool ok = n && !trit_batch_eval(s->ctx, e, n, NULL, NULL, &err);
    if (n && !ok) trit_log(TRIT_LOG_WARN, "prompt cache: replay failed: %s", err.msg);
    for (int i = 0; i < n; i++) {
        slot *sl = of[i];
        sl->replay_pos += e[i].n_tokens;
        if (ok) srv_pcache_count_replay(s->pcache, e[i].n_tokens);
        if (ok && sl->replay_pos == sl->replay_n) pcache_keep(sl, sl->hist, sl->replay_n);
        if (!ok || sl->replay_pos == sl->replay_n) sl->replay_n = 0;
    }
    pcache_metrics(s);
}

/* Start job j on free slot sl: the request's sampling, text and logprobs state. */
void srv_slot_start(slot *sl, job *j) {
    server *s = sl->srv;
    srv_request *r = &j->req;
    sl->j = j;
    sl->replay_n = 0; /* the slot's cells are the new request's now */
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
    slot_reuse(sl);
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
const char *srv_emit_token(slot *sl, int32_t tok, const float *logits, int pos) {
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
        json_object_set_new(msg, "content", srv_jstr(sl->text.gen.p, sl->text.gen.len));
        json_object_set_new(ch, "message", msg);
        json_object_set_new(ch, "logprobs", sl->want_lp ? lp_chat(&sl->lp) : json_null());
    } else {
        trit_buf_append(&sl->echo, sl->text.gen.p, sl->text.gen.len);
        json_object_set_new(ch, "text", srv_jstr(sl->echo.p, sl->echo.len));
        json_object_set_new(ch, "logprobs", sl->want_lp ? lp_legacy(&sl->lp) : json_null());
    }
    json_object_set_new(ch, "finish_reason", json_string(finish));
    json_t *arr = json_array();
    json_array_append_new(arr, ch);
    json_object_set_new(o, "choices", arr);
    json_object_set_new(o, "usage", usage_json((long)j->n_prompt, sl->n_gen));
    return trit_http_dumps(o, sl->jmark);
}

/* A slot's job is answered: the slot counts free again (admit counted it busy when it took
 * the job), waiters on the queue hear of it, and the connection's reference is dropped. */
static void slot_given_back(server *s, job *j) {
    pthread_mutex_lock(&s->qmu);
    assert(s->busy > 0);
    s->busy--;
    pthread_cond_broadcast(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    srv_job_release(j);
}

/* End the slot's request: finish is "stop"/"length", or NULL when cancelled; e when failed.
 * Sends the last SSE events or the JSON body, records metrics, frees the slot. */
void srv_slot_finish(slot *sl, const char *finish, const srv_error *fail) {
    server *s = sl->srv;
    job *j = sl->j;
    const bool chat = j->req.kind == SRV_CHAT;
    srv_error e = {0};
    double now = trit_now_s();
    if (sl->n_eval >= (int)j->n_prompt)
        srv_metrics_tokens(s->metrics, (long)j->n_prompt, sl->n_gen, now - sl->t_gen);
    trit_log(TRIT_LOG_INFO, "slot %d: %s prompt %zu tok (%d cached), %ld generated in %.3f s (%s)",
             sl->id, j->id, j->n_prompt, sl->n_reused, sl->n_gen, now - sl->t_start,
             finish ? finish : "cancelled");
    if (sl->n_drafted)
        trit_log(TRIT_LOG_INFO, "slot %d: drafts %ld proposed, %ld accepted", sl->id, sl->n_drafted,
                 sl->n_accepted);
    srv_metrics_drafts(s->metrics, sl->n_drafted, sl->n_accepted);
    /* a reply part lost to a failed allocation (or a final body that cannot be built) makes
     * the request a 500, never a partial 200 */
    char *body = NULL;
    bool lost = !fail && (sl->broken || !trit_http_json_ok(sl->jmark));
    if (!fail && !lost && finish && !j->req.stream) lost = !(body = final_json(sl, finish));
    if (lost) {
        srv_oom_error(&e);
        fail = &e;
    }
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
            srv_oom_error(&e);
            job_fail(j, &e);
        } else {
            job_sse(j, "[DONE]");
            job_finish(j, 200, NULL);
        }
    } else {
        job_finish(j, 200, body);
    }
    slot_keep_prompt(sl, fail ? NULL : finish); /* after the reply: no delay for the client */
    slot_clear(sl);
    slot_given_back(s, j);
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
        const char *finish = srv_emit_token(sl, tok, used, at);
        if (finish) {
            srv_slot_finish(sl, finish, NULL);
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
        /* to the next multiple of n_batch: a prompt resumed from the cache keeps every later
         * chunk as a cold prefill forms it */
        const int T = trit_ctx_chunk_at(sl->srv->ctx, sl->n_eval, (int)j->n_prompt);
        const bool final = sl->n_eval + T == (int)j->n_prompt;
        /* echo + logprobs: every prompt row's logits (as trit_eval with logits_all) */
        *e = (trit_batch_entry){
            .seq = sl->seq,
            .tokens = j->prompt + sl->n_eval,
            .n_tokens = T,
            .pos = sl->n_eval,
            .out = sl->prompt_lp ? TRIT_OUT_ALL : (final ? TRIT_OUT_LAST : TRIT_OUT_NONE),
            .chunk_rows = trit_ctx_chunk_rows(sl->srv->ctx, sl->n_eval, (int)j->n_prompt)};
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
    if (j->req.max_tokens == 0 || sl->broken) srv_slot_finish(sl, "length", NULL);
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
        srv_slot_start(sl, j);
        return;
    }
    job_fail(j, &e);
    slot_given_back(s, j);
}

/* A free slot for the next job, one without a pending replay first (so a finished reply's
 * replay survives while other slots are free); NULL when every slot is busy. */
static slot *free_slot(server *s) {
    slot *any = NULL;
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->j) continue;
        if (!sl->replay_n) return sl;
        if (!any) any = sl;
    }
    return any;
}

/* Between steps: move queued jobs into free slots. Returns the number of busy slots, or 0
 * for an idle replay step (nothing busy or queued, a reply to replay); waits while there is
 * no work at all; returns -1 once the server stops and nothing is left. */
static int admit(server *s) {
    bool replay = false;
    int busy = 0;
    pthread_mutex_lock(&s->qmu);
    for (;;) {
        for (slot *sl; s->head && (sl = free_slot(s));) {
            job *j = s->head;
            assert(j->state == JOB_QUEUED && s->qlen > 0); /* only queued jobs sit in the queue */
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
        assert(busy <= s->busy && s->busy <= s->n_slots); /* a slot with a job is counted busy */
        if (busy) break;            /* a step to run (jobs still queued join after it) */
        if (s->head) continue;      /* every job taken was refused: take the next ones */
        if (s->workers_exit) break; /* stopping, nothing left */
        if ((replay = replay_pending(s))) break; /* idle: replay a finished reply */
        pthread_cond_wait(&s->qcv, &s->qmu);
    }
    pthread_mutex_unlock(&s->qmu);
    return busy ? busy : replay ? 0 : -1;
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
            srv_slot_finish(sl, NULL, NULL);
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
        for (int i = 0; i < n; i++) srv_slot_finish(st.of[i], NULL, &fe);
        return;
    }
    int rows = 0;
    for (int i = 0; i < n; i++) rows += e[i].n_tokens;
    srv_metrics_step(s->metrics, n, rows);
    for (int i = 0; i < n; i++)
        if (st.of[i]->n_eval < (int)st.of[i]->j->n_prompt)
            slot_prompt_done(st.of[i], e[i].n_tokens);
}

/* The scheduler thread: admit, step, until the server stops and nothing is left. Under
 * --fault step-ms=N each step is followed by an N ms pause (a testing aid: requests slow
 * enough that a test can disconnect or signal mid-generation on any machine). */
void *srv_scheduler(void *arg) {
    server *s = arg;
    for (int busy; (busy = admit(s)) >= 0;) {
        if (busy) {
            run_step(s);
            if (s->cfg.fault_step_ms) usleep((useconds_t)s->cfg.fault_step_ms * 1000);
        } else {
            run_replay(s);
        }
    }
    return NULL;
}

/* The slots' buffers, sized once for the server's context: a KV cache each, the step's rows
 * (1 + drafts) of logits, a biased copy of one row and the token history. */
void srv_slots_new(server *s) {
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
    s->pcache = s->cfg.cache_mib > 0 ? srv_pcache_new((size_t)s->cfg.cache_mib << 20) : NULL;
    if (s->pcache) pcache_metrics(s);
}

/* Their memory back (after the scheduler stopped). */
void srv_slots_free(server *s) {
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
    s->slots = NULL;
    srv_pcache_free(s->pcache);
    s->pcache = NULL;
}

/* One thread runs every step, so slots and the engine context need no lock. */
int srv_sched_start(server *s, trit_err *err) {
    if (pthread_create(&s->sched, NULL, srv_scheduler, s))
        return trit_fail(err, TRIT_EIO, "cannot start the scheduler thread");
    s->sched_started = true;
    return 0;
}

/* The scheduler leaves once nothing is queued or running and workers_exit is set. */
void srv_sched_stop(server *s) {
    pthread_mutex_lock(&s->qmu);
    s->workers_exit = true;
    pthread_cond_broadcast(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    if (s->sched_started) pthread_join(s->sched, NULL);
    s->sched_started = false;
}
