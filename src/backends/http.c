/* backends/http.c — any OpenAI-compatible server through src/client. What the OpenAI API
 * cannot give (logits of every position, traces) is reported as TRIT_EUNAVAIL, never faked.
 * tokenize: POST /tokenize ({"content","add_special","parse_special"}, llama-server and trit
 * serve) when the server has it. generate_greedy: /v1/completions with the prompt as token
 * ids, temperature 0, top_logprobs. score: top-N log-probabilities per position, by echo or
 * by one forced request per position (see "Scoring over HTTP" below and backend.h).
 * identity: trit_client_identity at open. Options:
 * http:URL?model=NAME&key=API_KEY&timeout=S&cache=on|off (cache: "cache_prompt" sent with
 * every scoring request; unset: the server's own setting).
 *
 * Scoring over HTTP: what llama-server (llama.cpp 3.22.1, tools/server) does, read in its
 * source, on which the "forced" mode rests:
 *  - /v1/completions refuses echo: oaicompat_completion_params_parse (server-common.cpp)
 *    throws "Only no echo is supported" -> HTTP 400; the probe reads that as "no echo".
 *  - A prompt given as an array of token ids is used as is, no BOS added
 *    (tokenize_input_subprompt / json_is_array_of_numbers, server-common.cpp); each reply's
 *    usage.prompt_tokens is still checked against the ids sent.
 *  - "logprobs": N on /v1/completions is an alias of n_probs (server-schema.cpp, field
 *    "n_probs" ->add_alias("logprobs")); there is no upper limit on it there (it is clamped
 *    to the vocabulary in populate_token_probs). n_probs 0 reports nothing, so N >= 1 is
 *    always requested.
 *  - populate_token_probs (server-context.cpp) with post_sampling_probs false (the default)
 *    calls get_token_probabilities (server-common.cpp): a softmax of llama_get_logits_ith,
 *    the context's RAW logits, sorted by logit; the sampled token's probability is looked
 *    up in that full list. The sampler chain (common/sampling.cpp: logit_bias first, then
 *    temperature; temp <= 0 keeps only the argmax in llama_sampler_temp_impl, then dist)
 *    works on its own copy of the logits (common_sampler::set_logits builds cur_p), and
 *    backend sampling is switched off when pre-sampling probabilities are wanted
 *    (launch_slot_with_task: need_pre_sample_logits). So logit_bias +100 on the next token
 *    makes it the sampled token and the reply reports its raw pre-sampling probability.
 *  - That probability is a float (softmax in float, cum_sum in float) and its log is
 *    completion_token_output::logarithm, which turns p == 0 into -FLT_MAX (read back here as
 *    -inf).
 *  - With cache_prompt (its default) a slot keeps the previous prompt's KV cache and only
 *    the tokens after the longest common prefix are evaluated; requests for p, p+1, ... share
 *    the prefix, so each prefills ~1 token (usage.prompt_tokens_details.cached_tokens shows
 *    it). With --no-cache-prompt every request prefills its whole prefix: same figures,
 *    quadratic time.
 * trit serve (src/server) has echo + prompt logprobs (one request per call) and caps
 * logprobs at 20. It reports logprobs AFTER logit_bias, so the forced mode would be wrong
 * there; the probe verifies, on a non-argmax token, that a forced reply reports the same
 * log-probability as an unforced one, and refuses the forced mode otherwise. */
#include "backends/backend_impl.h"
#include "client/client.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { SCORE_UNPROBED, SCORE_ECHO, SCORE_FORCED } score_how;

typedef struct http_impl {
    char *url, *model, *key;
    double timeout_s;
    json_t *ident; /* what the server reported at open */
    int n_vocab;   /* from the identity; 0 when not reported */
    score_how how; /* decided by the first score call */
    int server_n;  /* alternatives per position requested and checked (probe) */
    int cache;     /* "cache_prompt" in scoring requests: -1 not sent, 0 false, 1 true */
} http_impl;

static void h_close(trit_backend *b) {
    http_impl *h = b->impl;
    if (!h) return;
    free(h->url);
    free(h->model);
    free(h->key);
    json_decref(h->ident);
    free(h);
}

static int h_tokenize(trit_backend *b, const char *text, bool add_special, bool parse_special,
                      int32_t **ids, size_t *n_ids, trit_err *err) {
    http_impl *h = b->impl;
    json_t *req = json_pack("{s:s, s:b, s:b}", "content", text, "add_special", add_special,
                            "parse_special", parse_special);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    json_t *out = NULL;
    trit_client_resp resp;
    int rc = trit_client_post_json(h->url, "/tokenize", h->key, h->timeout_s, body, &out, &resp);
    free(body);
    if (rc != 0) {
        int code = resp.kind == TRIT_CLIENT_HTTP_STATUS && resp.http_status == 404 ? TRIT_EUNAVAIL
                                                                                   : TRIT_ENET;
        trit_fail(err, code, "POST %s/tokenize: %s%s", h->url, resp.msg,
                  code == TRIT_EUNAVAIL ? " (server has no /tokenize: not available)" : "");
        trit_client_resp_free(&resp);
        return -1;
    }
    trit_client_resp_free(&resp);
    json_t *toks = json_object_get(out, "tokens");
    if (!json_is_array(toks)) {
        json_decref(out);
        return trit_fail(err, TRIT_EFORMAT, "POST %s/tokenize: reply has no \"tokens\" array",
                         h->url);
    }
    size_t n = json_array_size(toks);
    int32_t *v = xmalloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(toks, i);
        if (json_is_object(t)) t = json_object_get(t, "id"); /* with_pieces shape */
        if (!json_is_integer(t)) {
            free(v);
            json_decref(out);
            return trit_fail(err, TRIT_EFORMAT, "POST %s/tokenize: token %zu is not an integer",
                             h->url, i);
        }
        v[i] = (int32_t)json_integer_value(t);
    }
    json_decref(out);
    *ids = v;
    *n_ids = n;
    return 0;
}

static int h_generate(trit_backend *b, const int32_t *ids, size_t n, int max_tokens,
                      trit_gen_step **steps, size_t *n_steps, trit_err *err) {
    http_impl *h = b->impl;
    /* prompt as token ids (llama-server and trit serve accept an array of ints); the body is
     * built here because the client's request builder sends text prompts only */
    json_t *body = json_object();
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_integer(ids[i]));
    json_object_set_new(body, "prompt", arr);
    if (h->model) json_object_set_new(body, "model", json_string(h->model));
    json_object_set_new(body, "max_tokens", json_integer(max_tokens));
    json_object_set_new(body, "temperature", json_real(0));
    json_object_set_new(body, "logprobs", json_integer(TRIT_BACKEND_TOPK));
    char *body_s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    trit_client_resp resp;
    json_t *reply = NULL;
    int rc = trit_client_post_json(h->url, "/v1/completions", h->key, h->timeout_s, body_s, &reply,
                                   &resp);
    free(body_s);
    if (rc != 0) {
        trit_fail(err, TRIT_ENET, "completion at %s: %s", h->url, resp.msg);
        trit_client_resp_free(&resp);
        return -1;
    }
    char *reply_s = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    trit_client_resp_free(&resp);
    trit_client_resp_init(&resp);
    rc = trit_client_parse_reply(reply_s, strlen(reply_s), false, &resp);
    free(reply_s);
    if (rc != 0) {
        trit_fail(err, TRIT_EFORMAT, "completion at %s: %s", h->url, resp.msg);
        trit_client_resp_free(&resp);
        return -1;
    }
    trit_gen_step *out = xcalloc((size_t)(resp.n_tokens ? resp.n_tokens : 1), sizeof *out);
    for (int i = 0; i < resp.n_tokens; i++) {
        const trit_client_token *t = &resp.tokens[i];
        if (t->id < 0) {
            free(out);
            trit_client_resp_free(&resp);
            return trit_fail(err, TRIT_EUNAVAIL,
                             "server at %s returns no token ids with logprobs: token-exact "
                             "decode comparison not available",
                             h->url);
        }
        out[i].id = t->id;
        out[i].n_top = TRIT_MIN(t->n_top, TRIT_BACKEND_TOPK);
        for (int j = 0; j < out[i].n_top; j++) {
            out[i].top_id[j] = t->top[j].id;
            out[i].top_logprob[j] = (float)t->top[j].logprob;
            out[i].top_logit[j] = NAN;
        }
    }
    *steps = out;
    *n_steps = (size_t)resp.n_tokens;
    trit_client_resp_free(&resp);
    return 0;
}

/* ---- scoring ---- */

/* The force bias: the OpenAI API's (and trit serve's) maximum; a token whose logit is more
 * than this below the argmax has a probability under e^-100, which llama-server's float
 * softmax reports as 0 anyway. */
#define FORCE_BIAS 100

/* POST a scoring request: prompt ids[0..n_prompt) as token ids, max_tokens 1, temperature 0,
 * logprobs n_top, echo when asked, logit_bias +FORCE_BIAS on `force` when >= 0. 0 with
 * *reply, or -1 with resp saying why; resp is initialised here (trit_client_post_json does)
 * and the caller frees it either way. */
static int score_post(const http_impl *h, const int32_t *ids, size_t n_prompt, bool echo, int n_top,
                      int32_t force, json_t **reply, trit_client_resp *resp) {
    json_t *body = json_object(), *arr = json_array();
    for (size_t i = 0; i < n_prompt; i++) json_array_append_new(arr, json_integer(ids[i]));
    json_object_set_new(body, "prompt", arr);
    if (h->model) json_object_set_new(body, "model", json_string(h->model));
    json_object_set_new(body, "max_tokens", json_integer(1));
    json_object_set_new(body, "temperature", json_real(0));
    json_object_set_new(body, "logprobs", json_integer(n_top));
    if (echo) json_object_set_new(body, "echo", json_true());
    if (h->cache >= 0) json_object_set_new(body, "cache_prompt", json_boolean(h->cache));
    if (force >= 0) {
        char key[16];
        snprintf(key, sizeof key, "%d", force);
        json_t *bias = json_object();
        json_object_set_new(bias, key, json_integer(FORCE_BIAS));
        json_object_set_new(body, "logit_bias", bias);
    }
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    int rc = trit_client_post_json(h->url, "/v1/completions", h->key, h->timeout_s, s, reply, resp);
    free(s);
    return rc;
}

/* choices[0].logprobs.content of a reply (the shape with token ids), or NULL. */
static json_t *reply_entries(json_t *reply) {
    json_t *c0 = json_array_get(json_object_get(reply, "choices"), 0);
    json_t *content = json_object_get(json_object_get(c0, "logprobs"), "content");
    return json_is_array(content) ? content : NULL;
}

/* A log-probability from JSON: a number <= 0 (1e-6 of rounding allowed); -FLT_MAX-like
 * values (llama-server's stand-in for log 0) become -inf. */
static bool read_logprob(json_t *v, double *out) {
    if (!json_is_number(v)) return false;
    double x = json_number_value(v);
    if (isnan(x) || x > 1e-6) return false;
    *out = x <= -1e30 ? -INFINITY : TRIT_MIN(x, 0.0);
    return true;
}

/* One logprobs entry (the distribution of one position) into e. want_id >= 0: the entry's
 * token must be that id (the echoed prompt token or the forced one). The alternatives must
 * be exactly h->server_n (fewer only for a smaller vocabulary), ids inside the vocabulary
 * when known, log-probabilities descending; top_n of them are kept. 0, or -1 with err
 * saying what is wrong (the caller names the URL and the position). */
static int parse_entry(const http_impl *h, json_t *ent, int32_t want_id, int top_n,
                       trit_pos_topn *e, trit_err *err) {
    json_t *id = json_object_get(ent, "id");
    if (!json_is_integer(id)) return trit_fail(err, TRIT_EFORMAT, "logprobs entry has no token id");
    const int32_t got = (int32_t)json_integer_value(id);
    if (want_id >= 0 && got != want_id)
        return trit_fail(err, TRIT_EFORMAT,
                         "reply is about token %d, not %d (a forced token not honoured, or a "
                         "different vocabulary)",
                         got, want_id);
    double lp = NAN;
    if (want_id >= 0 && !read_logprob(json_object_get(ent, "logprob"), &lp))
        return trit_fail(err, TRIT_EFORMAT, "token %d has no valid log-probability", got);
    e->next_id = want_id;
    e->next_logprob = want_id >= 0 ? lp : NAN;
    json_t *top = json_object_get(ent, "top_logprobs");
    const size_t want_n =
        h->n_vocab > 0 ? (size_t)TRIT_MIN(h->server_n, h->n_vocab) : (size_t)h->server_n;
    if (!json_is_array(top) || json_array_size(top) != want_n)
        return trit_fail(err, TRIT_EFORMAT, "%zu top log-probabilities, %zu requested",
                         json_is_array(top) ? json_array_size(top) : 0, want_n);
    double prev = 0;
    e->n_top = 0;
    for (size_t i = 0; i < want_n; i++) {
        json_t *a = json_array_get(top, i), *aid = json_object_get(a, "id");
        double alp;
        if (!json_is_integer(aid) || !read_logprob(json_object_get(a, "logprob"), &alp))
            return trit_fail(err, TRIT_EFORMAT,
                             "alternative %zu has no token id or no valid "
                             "log-probability",
                             i);
        const json_int_t tid = json_integer_value(aid);
        if (tid < 0 || (h->n_vocab > 0 && tid >= h->n_vocab))
            return trit_fail(err, TRIT_EFORMAT,
                             "alternative %zu is token %lld, outside the vocabulary (%d)", i,
                             (long long)tid, h->n_vocab);
        if (i > 0 && alp > prev + 1e-9)
            return trit_fail(err, TRIT_EFORMAT, "alternatives are not in descending order at %zu",
                             i);
        prev = alp;
        /* the token's own log-probability and its entry among the alternatives must agree */
        if (tid == want_id && !(fabs(alp - lp) <= 1e-6 + 1e-6 * fabs(lp)) &&
            !(isinf(alp) && isinf(lp)))
            return trit_fail(err, TRIT_EFORMAT,
                             "token %d has log-probability %.9g but %.9g among the alternatives",
                             want_id, lp, alp);
        if ((int)i < top_n) {
            e->top_id[e->n_top] = (int32_t)tid;
            e->top_logprob[e->n_top++] = alp;
        }
    }
    return 0;
}

/* usage.prompt_tokens, when the reply has it, must be the number of ids sent (a server that
 * adds a BOS to an id prompt would score other prefixes). */
static int check_usage(json_t *reply, size_t n_prompt, trit_err *err) {
    json_t *pt = json_object_get(json_object_get(reply, "usage"), "prompt_tokens");
    if (json_is_integer(pt) && json_integer_value(pt) != (json_int_t)n_prompt)
        return trit_fail(err, TRIT_EFORMAT,
                         "the server evaluated %lld prompt tokens for the %zu ids sent (it adds "
                         "tokens to an id prompt)",
                         (long long)json_integer_value(pt), n_prompt);
    return 0;
}

/* A failed request as an error naming the URL and the request. */
static int request_fail(const http_impl *h, trit_client_resp *resp, trit_err *err,
                        const char *what) {
    int code = resp->kind == TRIT_CLIENT_BAD_JSON ? TRIT_EFORMAT : TRIT_ENET;
    trit_fail(err, code, "%s: %s: %s", h->url, what, resp->msg);
    trit_client_resp_free(resp);
    return -1;
}

/* Is this refusal the server saying it has no echo? (llama-server: HTTP 400 "Only no echo
 * is supported"; any 4xx whose message names echo.) */
static bool refuses_echo(const trit_client_resp *resp) {
    if (resp->kind != TRIT_CLIENT_HTTP_STATUS || resp->http_status < 400 ||
        resp->http_status >= 500)
        return false;
    return strstr(resp->msg, "echo") != NULL || strstr(resp->msg, "Echo") != NULL;
}

/* Probe with echo on ids[0..m): ECHO when every prompt token comes back with its id and the
 * generated one with alternatives; *no_echo when the server refuses echo or ignores it. */
static int probe_echo(http_impl *h, const int32_t *ids, size_t m, bool *no_echo, trit_err *err) {
    json_t *reply = NULL;
    trit_client_resp resp;
    *no_echo = false;
    if (score_post(h, ids, m, true, TRIT_BACKEND_TOPN_MAX, -1, &reply, &resp) != 0) {
        if (refuses_echo(&resp)) {
            *no_echo = true;
            trit_client_resp_free(&resp);
            return 0;
        }
        return request_fail(h, &resp, err, "scoring probe (echo request)");
    }
    trit_client_resp_free(&resp);
    json_t *ent = reply_entries(reply);
    int rc = 0;
    if (ent && json_array_size(ent) == 1) {
        *no_echo = true; /* echo ignored: only the generated token came back */
    } else if (!ent || json_array_size(ent) < m + 1) {
        rc = trit_fail(err, TRIT_EFORMAT,
                       "%s: scoring probe (echo request): %zu logprobs entries for a %zu-token "
                       "prompt and 1 generated token (with token ids expected)",
                       h->url, ent ? json_array_size(ent) : 0, m);
    } else {
        json_t *top = json_object_get(json_array_get(ent, m), "top_logprobs");
        size_t k = json_is_array(top) ? json_array_size(top) : 0;
        if (k == 0)
            rc =
                trit_fail(err, TRIT_EUNAVAIL,
                          "%s: scoring probe: the server returns no top log-probabilities", h->url);
        h->server_n = (int)TRIT_MIN(k, (size_t)TRIT_BACKEND_TOPN_MAX);
        h->how = SCORE_ECHO;
    }
    json_decref(reply);
    return rc;
}

/* Probe the forced mode on the prompt [ids[0]]: an unforced reply, then one forcing its
 * lowest-ranked alternative, which must come back as the token with the same log-probability
 * (a server reporting post-bias probabilities would say ~0) and the same top token. */
static int probe_forced(http_impl *h, const int32_t *ids, trit_err *err) {
    json_t *r1 = NULL, *r2 = NULL;
    trit_client_resp resp;
    if (score_post(h, ids, 1, false, TRIT_BACKEND_TOPN_MAX, -1, &r1, &resp) != 0)
        return request_fail(h, &resp, err, "scoring probe (unforced request)");
    trit_client_resp_free(&resp);
    json_t *e1 = json_array_get(reply_entries(r1), 0);
    json_t *top = json_object_get(e1, "top_logprobs");
    size_t k = json_is_array(top) ? json_array_size(top) : 0;
    json_t *last = json_array_get(top, k ? k - 1 : 0), *first = json_array_get(top, 0);
    double want_lp;
    if (k < 2 || !json_is_integer(json_object_get(last, "id")) ||
        !json_is_integer(json_object_get(first, "id")) ||
        !read_logprob(json_object_get(last, "logprob"), &want_lp)) {
        json_decref(r1);
        return trit_fail(err, TRIT_EUNAVAIL,
                         "%s: scoring probe: the server returns %zu top log-probabilities with "
                         "token ids (at least 2 needed)",
                         h->url, k);
    }
    const int32_t t = (int32_t)json_integer_value(json_object_get(last, "id"));
    const int32_t top1 = (int32_t)json_integer_value(json_object_get(first, "id"));
    json_decref(r1);
    if (score_post(h, ids, 1, false, TRIT_BACKEND_TOPN_MAX, t, &r2, &resp) != 0)
        return request_fail(h, &resp, err, "scoring probe (forced request)");
    trit_client_resp_free(&resp);
    json_t *e2 = json_array_get(reply_entries(r2), 0);
    json_t *id2 = json_object_get(e2, "id");
    json_t *top2 = json_array_get(json_object_get(e2, "top_logprobs"), 0);
    double got_lp = NAN;
    int rc = 0;
    if (!json_is_integer(id2) || json_integer_value(id2) != t)
        rc = trit_fail(err, TRIT_EUNAVAIL,
                       "%s: scoring probe: logit_bias +%d on token %d was not honoured (the "
                       "reply chose %lld)",
                       h->url, FORCE_BIAS, t, json_is_integer(id2) ? json_integer_value(id2) : -1);
    else if (!read_logprob(json_object_get(e2, "logprob"), &got_lp) ||
             fabs(got_lp - want_lp) > 1e-4 ||
             json_integer_value(json_object_get(top2, "id")) != top1)
        rc = trit_fail(err, TRIT_EUNAVAIL,
                       "%s: scoring probe: a forced token's log-probability is %.6g, unforced "
                       "%.6g: the server reports probabilities after logit_bias, not the raw "
                       "distribution, so it cannot be scored without echo",
                       h->url, got_lp, want_lp);
    json_decref(r2);
    if (rc == 0) {
        h->server_n = (int)TRIT_MIN(k, (size_t)TRIT_BACKEND_TOPN_MAX);
        h->how = SCORE_FORCED;
    }
    return rc;
}

/* Decide once how this server scores: echo when it has it, else forced (verified). */
static int probe(trit_backend *b, const int32_t *ids, size_t n, trit_err *err) {
    http_impl *h = b->impl;
    bool no_echo = false;
    if (probe_echo(h, ids, TRIT_MIN(n, (size_t)2), &no_echo, err) != 0) return -1;
    if (!no_echo) return 0;
    return probe_forced(h, ids, err);
}

/* Echo: one request for the whole prompt; position p is entry p + 1 (entry 0 is the first
 * prompt token, which has no distribution; entry n is the generated token's, i.e. the
 * distribution after the whole prompt). */
static int score_echo(trit_backend *b, const int32_t *ids, size_t n, size_t from, int top_n,
                      trit_pos_topn *out, trit_err *err) {
    http_impl *h = b->impl;
    json_t *reply = NULL;
    trit_client_resp resp;
    char what[96];
    snprintf(what, sizeof what, "echo request for positions %zu..%zu", from, n - 1);
    if (score_post(h, ids, n, true, h->server_n, -1, &reply, &resp) != 0)
        return request_fail(h, &resp, err, what);
    trit_client_resp_free(&resp);
    json_t *ent = reply_entries(reply);
    int rc = check_usage(reply, n, err);
    if (rc == 0 && (!ent || json_array_size(ent) < n + 1))
        rc = trit_fail(err, TRIT_EFORMAT, "%zu logprobs entries for %zu prompt tokens + 1",
                       ent ? json_array_size(ent) : 0, n);
    for (size_t i = 0; rc == 0 && i < n; i++) { /* the prompt echoed as sent */
        json_t *id = json_object_get(json_array_get(ent, i), "id");
        if (!json_is_integer(id) || json_integer_value(id) != ids[i])
            rc = trit_fail(err, TRIT_EFORMAT, "echoed prompt token %zu is not %d", i, ids[i]);
    }
    for (size_t p = from; rc == 0 && p < n; p++) {
        const int32_t next = p + 1 < n ? ids[p + 1] : -1;
        if (parse_entry(h, json_array_get(ent, p + 1), next, top_n, &out[p - from], err) != 0) {
            trit_err_prefix(err, "position %zu", p);
            rc = -1;
        }
    }
    json_decref(reply);
    if (rc != 0) trit_err_prefix(err, "%s: %s", h->url, what);
    if (rc == 0 && b->progress) b->progress(b->progress_ud, n - from, n - from);
    return rc;
}

/* Forced: one request per position p, prompt ids[0..p], the next token forced. */
static int score_forced(trit_backend *b, const int32_t *ids, size_t n, size_t from, int top_n,
                        trit_pos_topn *out, trit_err *err) {
    http_impl *h = b->impl;
    for (size_t p = from; p < n; p++) {
        const int32_t next = p + 1 < n ? ids[p + 1] : -1;
        json_t *reply = NULL;
        trit_client_resp resp; /* initialised by the request */
        char what[96];
        snprintf(what, sizeof what,
                 "request for position %zu (prompt of %zu tokens, token %d "
                 "forced)",
                 p, p + 1, next);
        if (score_post(h, ids, p + 1, false, h->server_n, next, &reply, &resp) != 0)
            return request_fail(h, &resp, err, what);
        trit_client_resp_free(&resp);
        json_t *ent = reply_entries(reply);
        int rc = check_usage(reply, p + 1, err);
        if (rc == 0 && (!ent || json_array_size(ent) != 1))
            rc = trit_fail(err, TRIT_EFORMAT,
                           "%zu logprobs entries (with token ids) for 1 "
                           "generated token",
                           ent ? json_array_size(ent) : 0);
        if (rc == 0) rc = parse_entry(h, json_array_get(ent, 0), next, top_n, &out[p - from], err);
        json_decref(reply);
        if (rc != 0) {
            trit_err_prefix(err, "%s: %s", h->url, what);
            return -1;
        }
        if (b->progress) b->progress(b->progress_ud, p + 1 - from, n - from);
    }
    return 0;
}

static int h_score(trit_backend *b, const int32_t *ids, size_t n, size_t from, int top_n,
                   trit_pos_topn *out, trit_err *err) {
    http_impl *h = b->impl;
    if (h->how == SCORE_UNPROBED && probe(b, ids, n, err) != 0) return -1;
    return h->how == SCORE_ECHO ? score_echo(b, ids, n, from, top_n, out, err)
                                : score_forced(b, ids, n, from, top_n, out, err);
}

static const char *h_score_mode(trit_backend *b) {
    const http_impl *h = b->impl;
    return h->how == SCORE_ECHO ? "echo" : h->how == SCORE_FORCED ? "forced" : "unprobed";
}

static json_t *h_identity(trit_backend *b) {
    const http_impl *h = b->impl;
    return json_deep_copy(h->ident);
}

static const trit_backend_ops http_ops = {
    .close = h_close,
    .tokenize = h_tokenize,
    .generate = h_generate,
    .score = h_score,
    .score_mode = h_score_mode,
    .identity = h_identity,
    /* chat_prompt, eval_each, trace: not available over the OpenAI API */
};

int trit_backend_open_http(trit_backend *b, const char *target, const char *query, trit_err *err) {
    if (strncmp(target, "http://", 7) != 0 && strncmp(target, "https://", 8) != 0)
        return trit_fail(err, TRIT_EINVAL, "http backend: '%s' is not an http(s):// URL", target);
    http_impl *h = xcalloc(1, sizeof *h);
    b->impl = h;
    b->ops = &http_ops;
    h->url = xstrdup(target);
    h->cache = -1;
    h->timeout_s = b->opts.timeout_s > 0 ? b->opts.timeout_s : 120;
    if (b->opts.api_key && *b->opts.api_key) h->key = xstrdup(b->opts.api_key);
    if (query && *query) {
        char *q = xstrdup(query), *save = NULL;
        for (char *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');
            if (eq) *eq = 0;
            const char *v = eq ? eq + 1 : "";
            if (!strcmp(kv, "model"))
                h->model = xstrdup(v);
            else if (!strcmp(kv, "key"))
                free(h->key), h->key = xstrdup(v);
            else if (!strcmp(kv, "timeout"))
                h->timeout_s = atof(v);
            else if (!strcmp(kv, "cache") && (!strcmp(v, "on") || !strcmp(v, "off")))
                h->cache = !strcmp(v, "on");
            else {
                trit_fail(err, TRIT_EINVAL,
                          "http backend option '%s%s%s': known are model=, key=, timeout=, "
                          "cache=on|off",
                          kv, eq ? "=" : "", v);
                free(q);
                h_close(b);
                b->impl = NULL;
                return -1;
            }
        }
        free(q);
    }
    trit_backend_info *in = &b->info;
    trit_client_resp resp;
    h->ident = trit_client_identity(h->url, h->key, TRIT_MIN(h->timeout_s, 10.0), &resp);
    if (!h->ident) {
        trit_fail(err, TRIT_ENET, "no server identity (GET /props, /v1/models): %s", resp.msg);
        trit_client_resp_free(&resp);
        h_close(b);
        b->impl = NULL;
        return -1;
    }
    trit_client_resp_free(&resp);
    const char *engine = json_string_value(json_object_get(h->ident, "engine"));
    const char *build = json_string_value(json_object_get(h->ident, "build"));
    const char *model = json_string_value(json_object_get(h->ident, "model"));
    const char *sha = json_string_value(json_object_get(h->ident, "model_sha256"));
    const char *numerics = json_string_value(json_object_get(h->ident, "numerics"));
    h->n_vocab = (int)json_integer_value(json_object_get(h->ident, "n_vocab"));
    snprintf(in->version, sizeof in->version, "%s %s at %s", engine ? engine : "unknown",
             build ? build : "", h->url);
    snprintf(in->model_desc, sizeof in->model_desc, "model '%s'", model ? model : "");
    snprintf(in->model_sha256, sizeof in->model_sha256, "%s", sha ? sha : "");
    snprintf(in->numerics, sizeof in->numerics, "%s",
             numerics && *numerics ? numerics : "remote (unknown)");
    in->n_vocab = h->n_vocab;
    in->n_ctx = (int)json_integer_value(json_object_get(h->ident, "n_ctx"));
    in->n_threads = (int)json_integer_value(json_object_get(h->ident, "threads"));
    in->can_tokenize = true;
    in->can_eval = in->can_trace = false;
    return 0;
}
