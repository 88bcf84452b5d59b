/* backends/http.c — any OpenAI-compatible server through src/client. What the OpenAI API
 * cannot give (logits of every position, traces) is reported as TRIT_EUNAVAIL, never faked.
 * tokenize: POST /tokenize ({"content","add_special","parse_special"}, llama-server and trit
 * serve) when the server has it. generate_greedy: /v1/completions with the prompt as token
 * ids, temperature 0, top_logprobs. Options: http:URL?model=NAME&key=API_KEY&timeout=S. */
#include "backends/backend_impl.h"
#include "client/client.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct http_impl {
    char *url, *model, *key;
    double timeout_s;
} http_impl;

static void h_close(trit_backend *b) {
    http_impl *h = b->impl;
    if (!h) return;
    free(h->url);
    free(h->model);
    free(h->key);
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
    trit_client_resp_init(&resp);
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
    trit_client_resp_init(&resp);
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

static const trit_backend_ops http_ops = {
    .close = h_close, .tokenize = h_tokenize, .generate = h_generate,
    /* chat_prompt, eval_each, trace: not available over the OpenAI API */
};

int trit_backend_open_http(trit_backend *b, const char *target, const char *query, trit_err *err) {
    if (strncmp(target, "http://", 7) != 0 && strncmp(target, "https://", 8) != 0)
        return trit_fail(err, TRIT_EINVAL, "http backend: '%s' is not an http(s):// URL", target);
    http_impl *h = xcalloc(1, sizeof *h);
    b->impl = h;
    b->ops = &http_ops;
    h->url = xstrdup(target);
    h->timeout_s = 120;
    if (query && *query) {
        char *q = xstrdup(query), *save = NULL;
        for (char *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');
            if (eq) *eq = 0;
            const char *v = eq ? eq + 1 : "";
            if (!strcmp(kv, "model"))
                h->model = xstrdup(v);
            else if (!strcmp(kv, "key"))
                h->key = xstrdup(v);
            else if (!strcmp(kv, "timeout"))
                h->timeout_s = atof(v);
            else {
                trit_fail(err, TRIT_EINVAL,
                          "unknown http backend option '%s' (known: model, key, timeout)", kv);
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
    trit_client_resp_init(&resp);
    char id[128] = "";
    if (trit_client_model_id(h->url, h->key, 10, id, sizeof id, &resp) != 0) {
        trit_fail(err, TRIT_ENET, "GET %s/v1/models: %s", h->url, resp.msg);
        trit_client_resp_free(&resp);
        h_close(b);
        b->impl = NULL;
        return -1;
    }
    trit_client_resp_free(&resp);
    snprintf(in->version, sizeof in->version, "OpenAI-compatible server at %s", h->url);
    snprintf(in->model_desc, sizeof in->model_desc,
             "model id '%s' (sha256 not available over "
             "http)",
             id);
    snprintf(in->numerics, sizeof in->numerics, "remote (unknown)");
    in->can_tokenize = true;
    in->can_eval = in->can_trace = false;
    return 0;
}
