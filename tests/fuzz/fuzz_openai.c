/* fuzz_openai — libFuzzer target for the OpenAI request validation: arbitrary bytes (mostly
 * JSON, from the seed corpus) through srv_parse_request for both routes and /tokenize,
 * /detokenize parsing. An accepted request must satisfy every documented bound (so the
 * engine can trust it); a refused one must carry a 4xx status, a message, and render as a
 * valid OpenAI error object. The browser policy checks run on the same bytes. */
#include "server/server.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_request(const srv_request *r) {
    if (r->max_tokens < -1) abort();
    if (!isfinite(r->temperature) || r->temperature < 0) abort();
    if (!isfinite(r->top_p) || !isfinite(r->min_p)) abort();
    if (r->logprobs < -1 || r->logprobs > 20) abort();
    if (r->n_stop > 16) abort();
    for (size_t i = 0; i < r->n_stop; i++)
        if (!r->stop[i]) abort();
    for (size_t i = 0; i < r->n_bias; i++)
        if (r->bias_ids[i] < 0 || !(r->bias[i] >= -100 && r->bias[i] <= 100)) abort();
    if (r->kind == SRV_CHAT) {
        if (r->n_msgs == 0) abort();
        for (size_t i = 0; i < r->n_msgs; i++)
            if (!r->msgs[i].role || !r->msgs[i].content) abort();
    } else if (r->has_ids) {
        for (size_t i = 0; i < r->n_prompt_ids; i++)
            if (r->prompt_ids[i] < 0) abort();
    } else if (!r->prompt) {
        abort();
    }
}

static void check_error(const srv_error *e) {
    if (e->status < 400 || e->status > 499 || !e->message[0]) abort();
    char *s = srv_error_json(e);
    json_t *j = json_loads(s, 0, NULL);
    if (!json_is_string(json_object_get(json_object_get(j, "error"), "message"))) abort();
    json_decref(j);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    for (int kind = SRV_COMPLETION; kind <= SRV_CHAT; kind++) {
        srv_request r;
        srv_error e;
        memset(&e, 0, sizeof e);
        if (srv_parse_request(kind, s, size, &r, &e) == 0) {
            if (r.kind != kind) abort();
            check_request(&r);
            srv_request_free(&r);
        } else {
            check_error(&e);
        }
    }
    srv_error e;
    srv_tokenize_req q;
    memset(&e, 0, sizeof e);
    if (srv_parse_tokenize(s, size, &q, &e) == 0) {
        if (!q.content) abort();
        free(q.content);
    } else {
        check_error(&e);
    }
    int32_t *ids = NULL;
    size_t n = 0;
    memset(&e, 0, sizeof e);
    if (srv_parse_detokenize(s, size, &ids, &n, &e) == 0) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0) abort();
        free(ids);
    } else {
        check_error(&e);
    }
    /* the policy functions take NUL-terminated header values */
    char *z = malloc(size + 1);
    memcpy(z, data, size);
    z[size] = 0;
    (void)trit_origin_allowed(z, NULL);
    (void)trit_origin_allowed(z, "https://a.example, *");
    (void)trit_host_allowed(z, "127.0.0.1", "llm.lan");
    free(z);
    return 0;
}
