/* Unit tests for the server's reply builders (server/sched.h's srv_slot_start,
 * srv_emit_token, srv_slot_finish) on a tiny vocabulary: logprobs of non-finite logits are
 * JSON nulls, never a missing member (found by tests/fuzz/fuzz_reply.c). */
#include "server/sched.h"
#include "tokenizer/tokenizer.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A four-token SPM vocabulary ("a", "b", "c", "</s>" = eos), through the real loader. */
static trit_tokenizer *tiny_vocab(void) {
    const char *toks[] = {"a", "b", "c", "</s>"};
    const float scores[] = {0, -1, -2, -3};
    const int32_t types[] = {1, 1, 1, 3};
    char path[64];
    snprintf(path, sizeof path, "/tmp/trit-test-reply-%d.gguf", (int)getpid());
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "tokenizer.ggml.model", "llama");
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    gguf_w_arr_f32(w, "tokenizer.ggml.scores", scores, 4);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, 4);
    gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 3);
    trit_err err = {0};
    cr_assert_eq(gguf_writer_write(w, path, NULL, NULL, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    trit_tokenizer *t = trit_tok_load_file(path, &err);
    unlink(path);
    cr_assert_not_null(t, "%s", err.msg);
    return t;
}

/* The non-streamed body of a chat request with logprobs (2 alternatives) that generates the
 * tokens ids[0..n) from the logits rows lg[i] (4 each). */
static json_t *chat_body(trit_tokenizer *tok, const int32_t *ids, int n, const float (*lg)[4]) {
    server s = {0};
    s.tok = tok;
    s.n_vocab = 4;
    s.n_ctx = 64;
    s.name = "test";
    s.metrics = srv_metrics_new();
    pthread_mutex_init(&s.qmu, NULL);
    pthread_cond_init(&s.qcv, NULL);
    job *j = srv_job_new(&s, "/v1/chat/completions");
    j->refs = 2; /* the connection's and the scheduler's, as srv_enqueue leaves them */
    j->req.kind = SRV_CHAT;
    j->req.logprobs = 2;
    j->req.max_tokens = -1;
    j->prompt = calloc(1, sizeof *j->prompt);
    j->n_prompt = 1;
    slot sl = {.srv = &s};
    sl.hist = calloc(16, sizeof *sl.hist);
    s.busy = 1;
    srv_slot_start(&sl, j);
    const char *finish = NULL;
    for (int i = 0; i < n && !finish; i++) finish = srv_emit_token(&sl, ids[i], lg[i], 1 + i);
    srv_slot_finish(&sl, finish ? finish : "length", NULL);
    cr_assert_eq(j->status, 200);
    json_t *o = json_loads(j->body, 0, NULL);
    cr_assert_not_null(o, "not JSON: %s", j->body);
    srv_job_release(j);
    trit_buf_free(&sl.piece);
    trit_buf_free(&sl.send);
    free(sl.hist);
    srv_metrics_free(s.metrics);
    pthread_mutex_destroy(&s.qmu);
    pthread_cond_destroy(&s.qcv);
    return o;
}

Test(reply, non_finite_logprobs_are_null_not_missing) {
    trit_tokenizer *tok = tiny_vocab();
    const float lg[2][4] = {{1.0f, NAN, 0.0f, -1.0f}, {INFINITY, 2.0f, 0.0f, -1.0f}};
    const int32_t ids[2] = {0, 1};
    json_t *o = chat_body(tok, ids, 2, lg);
    json_t *content = json_object_get(
        json_object_get(json_array_get(json_object_get(o, "choices"), 0), "logprobs"), "content");
    cr_assert_eq(json_array_size(content), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(content, i);
        /* NaN in the row makes the logsumexp NaN; +inf makes it inf: every logprob is null */
        cr_assert(json_is_null(json_object_get(e, "logprob")), "entry %zu: logprob not null", i);
        json_t *tops = json_object_get(e, "top_logprobs");
        cr_assert_eq(json_array_size(tops), 2);
        for (size_t k = 0; k < 2; k++)
            cr_assert(json_is_null(json_object_get(json_array_get(tops, k), "logprob")),
                      "entry %zu alternative %zu: logprob missing or not null", i, k);
    }
    json_decref(o);
    trit_tok_free(tok);
}

Test(reply, finite_logprobs_are_numbers) {
    trit_tokenizer *tok = tiny_vocab();
    const float lg[1][4] = {{2.0f, 1.0f, 0.0f, -1.0f}};
    const int32_t ids[1] = {0};
    json_t *o = chat_body(tok, ids, 1, lg);
    json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ch, "message"), "content")),
                     "a");
    json_t *e = json_array_get(json_object_get(json_object_get(ch, "logprobs"), "content"), 0);
    double lp = json_real_value(json_object_get(e, "logprob"));
    cr_assert(lp < 0 && lp > -1, "logprob %g", lp);
    json_decref(o);
    trit_tok_free(tok);
}
