/* fuzz_reply — libFuzzer target for the server's reply builders: the scheduler's steps that
 * turn generated tokens into replies (srv_slot_start, srv_emit_token, srv_slot_finish:
 * completion and chat bodies, SSE chunks, logprobs in both shapes, stop strings, echo) and
 * the /tokenize reply (srv_tokenize_reply), over a vocabulary whose pieces come from the input
 * (so they are invalid UTF-8, cut characters, control and byte tokens) and logits from the
 * input (finite, or any float bits: NaN, infinities).
 * Input: byte 0 request flags: bit 0 chat, 1 stream, 2 echo, 3 include_usage, 4 raw float
 *   logits, bits 5-7 logprobs (0 off, else 3 x (v - 1) alternatives); byte 1 n_vocab - 2
 *   (mod 30); byte 2 bits 0-1 stop strings, bits 2-7 max_tokens (0: none); byte 3 the eos id
 *   (0xFF: none); then per vocabulary entry a byte (bits 0-2 length, 4-6 token type) and its
 *   bytes; per stop string a length byte (1 + v % 6) and its bytes; a byte for the prompt
 *   length (1-4) and its ids; then one byte per generated token (id mod n_vocab), the logits
 *   read from the input too.
 * Every reply must be valid JSON with the members its shape promises (every logprobs entry a
 * "logprob", every chunk a "choices"), or an error object; a /tokenize reply lists every id
 * with its piece. Stop strings are not checked against the text: the server keeps
 * llama-server's window rule, which misses a stop string whose token also starts a character
 * that the next token completes (the seed completion_stop_split_utf8 is such a case). */
#include "server/sched.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GEN 64

static srv_metrics *g_metrics;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    trit_log_set_level(TRIT_LOG_ERROR); /* srv_slot_finish logs every request at info */
    g_metrics = srv_metrics_new();
    return 0;
}

typedef struct in {
    const uint8_t *p;
    size_t n, at;
} in;

static int next(in *r) {
    return r->at < r->n ? r->p[r->at++] : -1;
}

/* n bytes of the input as a C string (a NUL becomes 0x80, itself invalid UTF-8). */
static char *take_str(in *r, size_t n) {
    char *s = calloc(1, n + 1);
    for (size_t i = 0; i < n && r->at < r->n; i++) {
        uint8_t b = r->p[r->at++];
        s[i] = (char)(b ? b : 0x80);
    }
    return s;
}

/* An SPM vocabulary of n entries from the input, written as GGUF and loaded by the real
 * loader (NULL when it refuses the entries). */
static trit_tokenizer *make_vocab(in *r, int n, int eos) {
    static const int32_t types[8] = {1, 1, 1, 1, 3, 4, 6, 5};
    char **toks = calloc((size_t)n, sizeof *toks);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *tt = calloc((size_t)n, sizeof *tt);
    for (int i = 0; i < n; i++) {
        int h = next(r);
        h = h < 0 ? 0 : h;
        toks[i] = take_str(r, (size_t)(h & 7));
        tt[i] = types[h >> 4 & 7];
        scores[i] = (float)-i;
    }
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "tokenizer.ggml.model", "llama");
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, (size_t)n);
    gguf_w_arr_f32(w, "tokenizer.ggml.scores", scores, (size_t)n);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", tt, (size_t)n);
    if (eos >= 0) gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(eos % n));
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/trit-fuzz-reply-%d.gguf", (int)getpid());
    trit_err err = {0};
    trit_tokenizer *t = NULL;
    if (gguf_writer_write(w, path, NULL, NULL, &err) == 0) t = trit_tok_load_file(path, &err);
    unlink(path);
    gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(toks[i]);
    free(toks);
    free(scores);
    free(tt);
    return t;
}

/* One row of logits from the input: small finite values, or raw float bits when asked. */
static void read_logits(const in *r, size_t k, bool raw, float *lg, int n) {
    for (int i = 0; i < n; i++) {
        size_t at = (k * (size_t)n + (size_t)i) * (raw ? 4 : 1);
        if (raw) {
            uint8_t b[4];
            for (int j = 0; j < 4; j++) b[j] = r->n ? r->p[(at + (size_t)j) % r->n] : 0;
            memcpy(&lg[i], b, 4);
        } else {
            lg[i] = r->n ? (float)(int8_t)r->p[at % r->n] / 4.0f : 0.0f;
        }
    }
}

/* A logprobs entry of either shape must carry every member (a NaN must not drop one). */
static void check_lp_entry(const json_t *e) {
    if (!json_is_object(e) || !json_is_integer(json_object_get(e, "id")) ||
        !json_is_string(json_object_get(e, "token")) || !json_is_array(json_object_get(e, "bytes")))
        abort();
    const json_t *lp = json_object_get(e, "logprob");
    if (!json_is_number(lp) && !json_is_null(lp)) abort();
    const json_t *tops = json_object_get(e, "top_logprobs");
    if (!json_is_array(tops)) abort();
    for (size_t i = 0; i < json_array_size(tops); i++) {
        const json_t *t = json_object_get(json_array_get(tops, i), "logprob");
        if (!json_is_number(t) && !json_is_null(t)) abort();
    }
}

/* One reply object (a body or an SSE chunk) of a finished request: its choices, and the
 * logprobs entries they carry; an error object is accepted for a failed request. */
static void check_reply(const char *text, size_t n, bool want_lp) {
    json_error_t je;
    json_t *o = json_loadb(text, n, 0, &je);
    if (!o) {
        fprintf(stderr, "reply is not JSON (%s): %.*s\n", je.text, (int)n, text);
        abort();
    }
    if (json_object_get(o, "error")) {
        if (!json_is_string(json_object_get(json_object_get(o, "error"), "message"))) abort();
        json_decref(o);
        return;
    }
    const json_t *ch = json_object_get(o, "choices");
    if (!json_is_array(ch)) abort();
    for (size_t i = 0; i < json_array_size(ch); i++) {
        const json_t *lps = json_object_get(json_array_get(ch, i), "logprobs");
        if (!want_lp) continue;
        const json_t *content = json_object_get(lps, "content");
        if (!json_is_null(lps) && !json_is_array(content)) abort();
        for (size_t k = 0; k < json_array_size(content); k++)
            check_lp_entry(json_array_get(content, k));
    }
    json_decref(o);
}

/* The SSE stream: "data: <json>\n\n" events, the last "[DONE]" when the request succeeded. */
static void check_sse(const trit_buf *sse, int status, bool want_lp) {
    const char *p = sse->p ? sse->p : "", *end = p + sse->len, *last = NULL;
    while (p < end) {
        if (strncmp(p, "data: ", 6)) abort();
        const char *e = strstr(p, "\n\n");
        if (!e) abort();
        last = p + 6;
        if (strncmp(last, "[DONE]", 6)) check_reply(last, (size_t)(e - last), want_lp);
        p = e + 2;
    }
    if (status == 200 && (!last || strncmp(last, "[DONE]", 6))) abort();
}

/* /tokenize's reply: valid JSON, one entry per id, a piece a string or its bytes. */
static void check_tokenize(server *s, const int32_t *ids, size_t n) {
    for (int pieces = 0; pieces < 2; pieces++) {
        trit_buf out = {0};
        if (srv_tokenize_reply(s, ids, n, pieces, &out)) abort(); /* far below the bound */
        json_t *o = json_loadb(out.p, out.len, 0, NULL);
        const json_t *t = json_object_get(o, "tokens");
        if (!json_is_array(t) || json_array_size(t) != n) abort();
        for (size_t i = 0; pieces && i < n; i++) {
            const json_t *pc = json_object_get(json_array_get(t, i), "piece");
            if (!json_is_string(pc) && !json_is_array(pc)) abort();
        }
        json_decref(o);
        trit_buf_free(&out);
    }
}

/* The request of job j from the header bytes and the stop strings of the input. */
static void read_request(job *j, const uint8_t *h, in *r) {
    srv_request *q = &j->req;
    q->kind = h[0] & 1 ? SRV_CHAT : SRV_COMPLETION;
    q->stream = h[0] & 2;
    q->echo = q->kind == SRV_COMPLETION && (h[0] & 4);
    q->include_usage = h[0] & 8;
    q->logprobs = (h[0] >> 5) ? 3 * ((h[0] >> 5) - 1) : -1;
    q->max_tokens = (h[2] >> 2) ? (h[2] >> 2) : -1;
    q->has_ids = true;
    q->n_stop = h[2] & 3;
    q->stop = calloc(q->n_stop + 1, sizeof *q->stop);
    for (size_t i = 0; i < q->n_stop; i++) {
        int len = next(r);
        q->stop[i] = take_str(r, 1 + (size_t)(len < 0 ? 0 : len % 6));
    }
}

/* Generate from the input's token bytes until a finish reason; then the reply is checked. */
static void run_request(server *s, const uint8_t *h, in *r) {
    job *j = srv_job_new(s, h[0] & 1 ? "/v1/chat/completions" : "/v1/completions");
    j->refs = 2; /* the connection's and the scheduler's, as srv_enqueue leaves them */
    read_request(j, h, r);
    int np = next(r);
    j->n_prompt = 1 + (size_t)(np < 0 ? 0 : np % 4);
    j->prompt = calloc(j->n_prompt, sizeof *j->prompt);
    for (size_t i = 0; i < j->n_prompt; i++) j->prompt[i] = (next(r) & 0xFF) % s->n_vocab;
    snprintf(j->id, sizeof j->id, "cmpl-fuzz");
    slot sl = {.srv = s, .id = 0};
    sl.hist = calloc(j->n_prompt + MAX_GEN + 1, sizeof *sl.hist);
    s->busy = 1;
    srv_slot_start(&sl, j);
    float *lg = malloc((size_t)s->n_vocab * sizeof *lg);
    int32_t ids[4 + MAX_GEN];
    size_t n_ids = 0;
    for (size_t i = 0; i < j->n_prompt; i++) ids[n_ids++] = j->prompt[i];
    const char *finish = NULL;
    const in data = *r;
    for (int k = 0; !finish; k++) {
        int b = next(r);
        if (b < 0 || k == MAX_GEN) {
            finish = "length";
            break;
        }
        read_logits(&data, (size_t)k, h[0] & 16, lg, s->n_vocab);
        ids[n_ids++] = b % s->n_vocab;
        finish = srv_emit_token(&sl, b % s->n_vocab, lg, (int)j->n_prompt + k);
    }
    const bool want_lp = j->req.logprobs >= 0, stream = j->req.stream;
    srv_slot_finish(&sl, finish, NULL);
    if (j->state != JOB_DONE) abort();
    if (stream)
        check_sse(&j->sse, j->status, want_lp);
    else if (j->body)
        check_reply(j->body, strlen(j->body), want_lp);
    else
        abort(); /* a finished request always has a body */
    check_tokenize(s, ids, n_ids);
    srv_job_release(j);
    trit_buf_free(&sl.piece);
    trit_buf_free(&sl.send);
    free(sl.hist);
    free(lg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    in r = {data, size, 4};
    const int n_vocab = 2 + data[1] % 30;
    trit_tokenizer *tok = make_vocab(&r, n_vocab, data[3] == 0xFF ? -1 : data[3]);
    if (!tok) return 0;
    server s = {0};
    s.tok = tok;
    s.n_vocab = trit_tok_n_vocab(tok);
    s.n_ctx = 4096;
    s.name = "fuzz";
    snprintf(s.fingerprint, sizeof s.fingerprint, "fuzz-fp");
    s.metrics = g_metrics;
    pthread_mutex_init(&s.qmu, NULL);
    pthread_cond_init(&s.qcv, NULL);
    run_request(&s, data, &r);
    pthread_mutex_destroy(&s.qmu);
    pthread_cond_destroy(&s.qcv);
    trit_tok_free(tok);
    return 0;
}
