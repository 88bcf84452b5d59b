/* server/request.c — request parsing and validation (pure: no model, no network), the OpenAI
 * error object, and the text rules shared with llama-server (stop strings, UTF-8). */
#include "server/server.h"
#include "http/http.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SRV_MAX_STOP     16
#define SRV_MAX_LOGPROBS 20
#define SRV_MAX_MSGS     4096

/* Every refusal is an OpenAI error with an HTTP status: one way to make one. */
int srv_fail(srv_error *e, int status, const char *type, const char *param, const char *code,
             const char *fmt, ...) {
    if (!e) return -1;
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type ? type : "invalid_request_error");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* OpenAI errors say null, not "", for a missing param or code. */
static json_t *str_or_null(const char *s) {
    return s && *s ? json_string(s) : json_null();
}

/* The error object clients parse; never NULL (http's fixed body when memory is short). */
char *srv_error_json(const srv_error *e) {
    const unsigned long mark = trit_http_json_mark();
    trit_buf msg = {0};
    trit_utf8_repair(e->message, strlen(e->message), &msg);
    json_t *err = json_object();
    json_object_set_new(err, "message", json_string(msg.p ? msg.p : ""));
    json_object_set_new(err, "type", json_string(e->type[0] ? e->type : "server_error"));
    json_object_set_new(err, "param", str_or_null(e->param));
    json_object_set_new(err, "code", e->code[0] ? json_string(e->code) : json_integer(e->status));
    json_t *root = json_object();
    json_object_set_new(root, "error", err);
    char *s = trit_http_dumps(root, mark);
    trit_buf_free(&msg);
    /* under memory pressure: http's fixed body (never a NULL to send) */
    return s ? s : trit_http_error_body(e->message, e->type, e->param, e->code);
}

/* ---- JSON helpers ---- */
static int load_object(const char *body, size_t n, json_t **out, srv_error *e) {
    json_error_t jerr;
    if (!body || n == 0)
        return srv_fail(e, 400, NULL, NULL, "invalid_json", "request body is empty");
    const unsigned long mark = trit_http_json_mark();
    json_t *root = json_loadb(body, n, 0, &jerr);
    if (!trit_http_json_ok(mark)) { /* out of memory is the server's failure, not the client's */
        json_decref(root);
        return srv_fail(e, 503, "server_error", NULL, "out_of_memory",
                        "out of memory while reading the request; retry shortly");
    }
    if (!root)
        return srv_fail(e, 400, NULL, NULL, "invalid_json",
                        "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                        jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return srv_fail(e, 400, NULL, NULL, "invalid_json", "request body must be a JSON object");
    }
    *out = root;
    return 0;
}

/* The JSON type of a value, for messages that say what was sent instead. */
static const char *jtype(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

/* Optional boolean field: absent/null keeps *out. */
static int get_bool(json_t *o, const char *key, bool *out, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v))
        return srv_fail(e, 400, NULL, key, "invalid_type", "'%s' must be a boolean, not %s", key,
                        jtype(v));
    *out = json_is_true(v);
    return 0;
}

/* A number field within [lo, hi], or absent (the default stays); 400 naming it otherwise. */
static int get_num(json_t *o, const char *key, double lo, double hi, float *out, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v))
        return srv_fail(e, 400, NULL, key, "invalid_type", "'%s' must be a number, not %s", key,
                        jtype(v));
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return srv_fail(e, 400, NULL, key, "invalid_value", "'%s' must be between %g and %g", key,
                        lo, hi);
    *out = (float)d;
    return 0;
}

/* Integer field (a real with an integral value is accepted, as JavaScript clients send). */
static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out,
                   bool *present, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (present) *present = false;
    if (!v || json_is_null(v)) return 0;
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d != floor(d) || fabs(d) > 9.0e15)
            return srv_fail(e, 400, NULL, key, "invalid_type", "'%s' must be an integer", key);
        x = (long long)d;
    } else {
        return srv_fail(e, 400, NULL, key, "invalid_type", "'%s' must be an integer, not %s", key,
                        jtype(v));
    }
    if (x < lo || x > hi)
        return srv_fail(e, 400, NULL, key, "invalid_value", "'%s' must be between %lld and %lld",
                        key, lo, hi);
    *out = x;
    if (present) *present = true;
    return 0;
}

/* A JSON string's bytes as a C string the request owns. */
static char *dup_json_string(json_t *v) {
    return xstrndup(json_string_value(v), json_string_length(v));
}

/* An array of token ids (non-negative, 32-bit): the prompt or /detokenize tokens. */
static int parse_ids(json_t *arr, const char *key, int32_t **ids, size_t *n, srv_error *e) {
    size_t len = json_array_size(arr);
    int32_t *out = xmalloc((len ? len : 1) * sizeof *out);
    for (size_t i = 0; i < len; i++) {
        json_t *t = json_array_get(arr, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX) {
            free(out);
            return srv_fail(e, 400, NULL, key, "invalid_value",
                            "'%s'[%zu] must be a non-negative token id", key, i);
        }
        out[i] = (int32_t)json_integer_value(t);
    }
    *ids = out;
    *n = len;
    return 0;
}

/* A completion prompt: a string, or token ids (one prompt only, as llama-server). */
static int parse_prompt(json_t *root, srv_request *r, srv_error *e) {
    json_t *p = json_object_get(root, "prompt");
    if (!p || json_is_null(p))
        return srv_fail(e, 400, NULL, "prompt", "missing_field", "'prompt' is required");
    if (json_is_string(p)) {
        r->prompt = dup_json_string(p);
        return 0;
    }
    if (!json_is_array(p))
        return srv_fail(e, 400, NULL, "prompt", "invalid_type",
                        "'prompt' must be a string or an array of token ids, not %s", jtype(p));
    if (json_array_size(p) == 0)
        return srv_fail(e, 400, NULL, "prompt", "invalid_value", "'prompt' must not be empty");
    json_t *first = json_array_get(p, 0);
    if (json_is_string(first)) { /* ["text"]: a batch of one */
        if (json_array_size(p) != 1)
            return srv_fail(e, 400, NULL, "prompt", "unsupported",
                            "only one prompt per request is supported");
        r->prompt = dup_json_string(first);
        return 0;
    }
    if (json_is_array(first)) { /* [[ids]]: a batch of one */
        if (json_array_size(p) != 1)
            return srv_fail(e, 400, NULL, "prompt", "unsupported",
                            "only one prompt per request is supported");
        p = first;
        if (json_array_size(p) == 0)
            return srv_fail(e, 400, NULL, "prompt", "invalid_value", "'prompt' must not be empty");
    }
    r->has_ids = true;
    return parse_ids(p, "prompt", &r->prompt_ids, &r->n_prompt_ids, e);
}

/* A chat message content: a string, or text parts joined (other parts refused). */
static int parse_content(json_t *c, size_t i, char **out, srv_error *e) {
    if (!c || json_is_null(c)) {
        *out = xstrdup("");
        return 0;
    }
    if (json_is_string(c)) {
        *out = dup_json_string(c);
        return 0;
    }
    if (!json_is_array(c))
        return srv_fail(e, 400, NULL, "messages", "invalid_type",
                        "messages[%zu].content must be a string or an array of parts", i);
    trit_buf b = {0};
    trit_buf_puts(&b, "");
    for (size_t k = 0; k < json_array_size(c); k++) {
        json_t *part = json_array_get(c, k);
        json_t *type = json_object_get(part, "type");
        json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type) ||
            strcmp(json_string_value(type), "text") != 0 || !json_is_string(text)) {
            trit_buf_free(&b);
            return srv_fail(e, 400, NULL, "messages", "unsupported",
                            "messages[%zu].content[%zu] must be {\"type\":\"text\",\"text\":...}",
                            i, k);
        }
        if (k) trit_buf_puts(&b, "\n");
        trit_buf_append(&b, json_string_value(text), json_string_length(text));
    }
    *out = b.p;
    return 0;
}

/* Chat messages: role and content each, at most SRV_MAX_MSGS. */
static int parse_messages(json_t *root, srv_request *r, srv_error *e) {
    json_t *m = json_object_get(root, "messages");
    if (!m || json_is_null(m))
        return srv_fail(e, 400, NULL, "messages", "missing_field", "'messages' is required");
    if (!json_is_array(m))
        return srv_fail(e, 400, NULL, "messages", "invalid_type",
                        "'messages' must be an array, not %s", jtype(m));
    size_t n = json_array_size(m);
    if (n == 0)
        return srv_fail(e, 400, NULL, "messages", "invalid_value", "'messages' must not be empty");
    if (n > SRV_MAX_MSGS)
        return srv_fail(e, 400, NULL, "messages", "invalid_value", "too many messages (max %d)",
                        SRV_MAX_MSGS);
    r->msgs = xcalloc(n, sizeof *r->msgs);
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(m, i);
        if (!json_is_object(msg))
            return srv_fail(e, 400, NULL, "messages", "invalid_type",
                            "messages[%zu] must be an object", i);
        json_t *role = json_object_get(msg, "role");
        if (!json_is_string(role))
            return srv_fail(e, 400, NULL, "messages", "invalid_type",
                            "messages[%zu].role must be a string", i);
        const char *rs = json_string_value(role);
        if (!strcmp(rs, "developer")) rs = "system";
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant"))
            return srv_fail(e, 400, NULL, "messages", "invalid_value",
                            "messages[%zu].role must be system, user or assistant", i);
        char *content = NULL;
        if (parse_content(json_object_get(msg, "content"), i, &content, e)) return -1;
        r->msgs[i].role = xstrdup(rs);
        r->msgs[i].content = content;
        r->n_msgs = i + 1;
    }
    return 0;
}

/* Stop strings: a string or an array of at most SRV_MAX_STOP strings. */
static int parse_stop(json_t *root, srv_request *r, srv_error *e) {
    json_t *s = json_object_get(root, "stop");
    if (!s || json_is_null(s)) return 0;
    if (json_is_string(s)) {
        if (json_string_length(s) == 0) return 0;
        r->stop = xcalloc(1, sizeof *r->stop);
        r->stop[0] = dup_json_string(s);
        r->n_stop = 1;
        return 0;
    }
    if (!json_is_array(s))
        return srv_fail(e, 400, NULL, "stop", "invalid_type",
                        "'stop' must be a string or an array of strings, not %s", jtype(s));
    size_t n = json_array_size(s);
    if (n > SRV_MAX_STOP)
        return srv_fail(e, 400, NULL, "stop", "invalid_value", "at most %d stop strings",
                        SRV_MAX_STOP);
    r->stop = xcalloc(n ? n : 1, sizeof *r->stop);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(s, i);
        if (!json_is_string(v))
            return srv_fail(e, 400, NULL, "stop", "invalid_type", "stop[%zu] must be a string", i);
        if (json_string_length(v) == 0) continue;
        r->stop[r->n_stop++] = dup_json_string(v);
    }
    return 0;
}

/* logprobs in both spellings: completions' integer, chat's bool + top_logprobs. */
static int parse_logprobs(json_t *root, srv_request *r, srv_error *e) {
    json_t *lp = json_object_get(root, "logprobs");
    if (r->kind == SRV_CHAT) {
        bool on = false;
        if (get_bool(root, "logprobs", &on, e)) return -1;
        long long top = 0;
        bool has_top = false;
        if (get_int(root, "top_logprobs", 0, SRV_MAX_LOGPROBS, &top, &has_top, e)) return -1;
        if (has_top && !on && top > 0)
            return srv_fail(e, 400, NULL, "top_logprobs", "invalid_value",
                            "'top_logprobs' requires 'logprobs': true");
        r->logprobs = on ? (int)top : -1;
        return 0;
    }
    if (!lp || json_is_null(lp)) return 0;
    if (json_is_boolean(lp)) { /* some clients send true/false */
        r->logprobs = json_is_true(lp) ? 0 : -1;
        return 0;
    }
    long long v = 0;
    bool has = false;
    if (get_int(root, "logprobs", 0, SRV_MAX_LOGPROBS, &v, &has, e)) return -1;
    if (has) r->logprobs = (int)v;
    return 0;
}

/* logit_bias {"token id": bias}: ids checked here, against the vocabulary later. */
static int parse_logit_bias(json_t *root, srv_request *r, srv_error *e) {
    json_t *b = json_object_get(root, "logit_bias");
    if (!b || json_is_null(b)) return 0;
    if (!json_is_object(b))
        return srv_fail(e, 400, NULL, "logit_bias", "invalid_type",
                        "'logit_bias' must be an object {\"token id\": bias}");
    size_t n = json_object_size(b);
    if (n > 1024)
        return srv_fail(e, 400, NULL, "logit_bias", "invalid_value",
                        "at most 1024 logit_bias entries");
    r->bias_ids = xmalloc((n ? n : 1) * sizeof *r->bias_ids);
    r->bias = xmalloc((n ? n : 1) * sizeof *r->bias);
    const char *key;
    json_t *v;
    json_object_foreach(b, key, v) {
        char *end = NULL;
        long id = strtol(key, &end, 10);
        if (!*key || *end || id < 0 || id > INT32_MAX)
            return srv_fail(e, 400, NULL, "logit_bias", "invalid_value",
                            "logit_bias keys must be token ids, not '%.40s'", key);
        if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
            fabs(json_number_value(v)) > 100)
            return srv_fail(e, 400, NULL, "logit_bias", "invalid_value",
                            "logit_bias[%ld] must be a number in [-100, 100]", id);
        r->bias_ids[r->n_bias] = (int32_t)id;
        r->bias[r->n_bias] = (float)json_number_value(v);
        r->n_bias++;
    }
    return 0;
}

/* The reply's length: max_tokens (or its other spellings), and n (1 only, as llama-server). */
static int parse_length(json_t *root, srv_request *out, srv_error *e) {
    long long x = 0;
    bool has = false;
    static const char *max_keys[] = {"max_tokens", "max_completion_tokens", "n_predict"};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(max_keys); i++) {
        if (get_int(root, max_keys[i], -1, 1 << 24, &x, &has, e)) return -1;
        if (has) {
            out->max_tokens = (int)x;
            break;
        }
    }
    if (get_int(root, "n", 1, 1 << 20, &x, &has, e)) return -1;
    if (has && x != 1)
        return srv_fail(e, 400, NULL, "n", "unsupported", "only 'n': 1 is supported");
    return 0;
}

/* The sampling fields over llama-server's defaults; penalties are checked and ignored; seed
 * -1 means random (llama-server). */
static int parse_sampling(json_t *root, srv_request *out, srv_error *e) {
    long long x = 0;
    bool has = false;
    if (get_num(root, "temperature", 0, 100, &out->temperature, e)) return -1;
    if (get_num(root, "top_p", 0, 1, &out->top_p, e)) return -1;
    if (get_num(root, "min_p", 0, 1, &out->min_p, e)) return -1;
    if (get_int(root, "top_k", -1, 1 << 30, &x, &has, e)) return -1;
    if (has) out->top_k = (int)x;
    float dummy = 0;
    if (get_num(root, "presence_penalty", -2, 2, &dummy, e)) return -1;
    if (get_num(root, "frequency_penalty", -2, 2, &dummy, e)) return -1;
    json_t *seed = json_object_get(root, "seed");
    if (!seed || json_is_null(seed)) return 0;
    if (!json_is_integer(seed))
        return srv_fail(e, 400, NULL, "seed", "invalid_type", "'seed' must be an integer");
    long long sd = json_integer_value(seed);
    if (sd >= 0) {
        out->seed = (uint64_t)sd;
        out->has_seed = true;
    }
    return 0;
}

/* A request body into a validated request: the fields in the order a client reads errors. */
int srv_parse_request(int kind, const char *body, size_t n, srv_request *out, srv_error *e) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->max_tokens = -1;
    out->logprobs = -1;
    /* llama-server's defaults (= trit_sampler_default_params; not called so that this file
     * links without the engine, for the fuzzer) */
    out->temperature = 0.8f;
    out->top_k = 40;
    out->top_p = 0.95f;
    out->min_p = 0.05f;
    json_t *root = NULL;
    if (load_object(body, n, &root, e)) return -1;
    int rc = -1;
    json_t *v = json_object_get(root, "model");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) {
            srv_fail(e, 400, NULL, "model", "invalid_type", "'model' must be a string");
            goto done;
        }
        out->model = dup_json_string(v);
    }
    if (kind == SRV_CHAT ? parse_messages(root, out, e) : parse_prompt(root, out, e)) goto done;

    if (parse_length(root, out, e) || parse_sampling(root, out, e)) goto done;
    if (parse_stop(root, out, e)) goto done;
    if (get_bool(root, "stream", &out->stream, e)) goto done;
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) {
            srv_fail(e, 400, NULL, "stream_options", "invalid_type",
                     "'stream_options' must be an object");
            goto done;
        }
        if (get_bool(so, "include_usage", &out->include_usage, e)) goto done;
    }
    if (kind == SRV_COMPLETION && get_bool(root, "echo", &out->echo, e)) goto done;
    out->cache_prompt = true; /* llama-server's default */
    if (get_bool(root, "cache_prompt", &out->cache_prompt, e)) goto done;
    if (parse_logprobs(root, out, e)) goto done;
    if (parse_logit_bias(root, out, e)) goto done;
    if (out->echo && out->stream) {
        srv_fail(e, 400, NULL, "echo", "unsupported", "'echo' cannot be combined with 'stream'");
        goto done;
    }
    rc = 0;
done:
    json_decref(root);
    if (rc) srv_request_free(out);
    return rc;
}

/* A request's memory back (every field may be unset). */
void srv_request_free(srv_request *r) {
    if (!r) return;
    free(r->model);
    free(r->prompt);
    free(r->prompt_ids);
    for (size_t i = 0; i < r->n_msgs; i++) {
        free((char *)r->msgs[i].role);
        free((char *)r->msgs[i].content);
    }
    free(r->msgs);
    free(r->bias_ids);
    free(r->bias);
    for (size_t i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    memset(r, 0, sizeof *r);
}

/* POST /tokenize's fields (llama-server's names and defaults). */
int srv_parse_tokenize(const char *body, size_t n, srv_tokenize_req *out, srv_error *e) {
    memset(out, 0, sizeof *out);
    out->parse_special = true;
    json_t *root = NULL;
    if (load_object(body, n, &root, e)) return -1;
    int rc = -1;
    json_t *c = json_object_get(root, "content");
    if (!json_is_string(c)) {
        srv_fail(e, 400, NULL, "content", c ? "invalid_type" : "missing_field",
                 "'content' must be a string");
        goto done;
    }
    if (get_bool(root, "add_special", &out->add_special, e) ||
        get_bool(root, "parse_special", &out->parse_special, e) ||
        get_bool(root, "with_pieces", &out->with_pieces, e))
        goto done;
    out->content = dup_json_string(c);
    out->len = json_string_length(c);
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* POST /detokenize's token ids. */
int srv_parse_detokenize(const char *body, size_t n, int32_t **ids, size_t *n_ids, srv_error *e) {
    *ids = NULL;
    *n_ids = 0;
    json_t *root = NULL;
    if (load_object(body, n, &root, e)) return -1;
    int rc = -1;
    json_t *t = json_object_get(root, "tokens");
    if (!json_is_array(t)) {
        srv_fail(e, 400, NULL, "tokens", t ? "invalid_type" : "missing_field",
                 "'tokens' must be an array of token ids");
        goto done;
    }
    rc = parse_ids(t, "tokens", ids, n_ids, e);
done:
    json_decref(root);
    return rc;
}

/* ---- text rules ---- */
size_t srv_utf8_complete_len(const char *s, size_t n) {
    for (size_t i = 1; i <= 4 && i <= n; i++) {
        unsigned char c = (unsigned char)s[n - i];
        if ((c & 0xE0) == 0xC0) {
            if (i < 2) return n - i;
        } else if ((c & 0xF0) == 0xE0) {
            if (i < 3) return n - i;
        } else if ((c & 0xF8) == 0xF0) {
            if (i < 4) return n - i;
        }
    }
    return n;
}

/* Where text ends with the beginning of a stop string: held back while streaming. */
size_t srv_partial_stop(const char *text, size_t n, const char *stop) {
    size_t sl = strlen(stop);
    if (n == 0 || sl == 0) return (size_t)-1;
    size_t max = TRIT_MIN(n, sl);
    for (size_t len = max; len > 0; len--)
        if (stop[len - 1] == text[n - 1] && memcmp(text + n - len, stop, len) == 0) return n - len;
    return (size_t)-1;
}

/* First occurrence of needle in hay[from..n) (stop strings hold arbitrary bytes). */
static size_t find_from(const char *hay, size_t n, size_t from, const char *needle) {
    size_t nl = strlen(needle);
    if (nl > n) return (size_t)-1;
    for (size_t i = from; i + nl <= n; i++)
        if (memcmp(hay + i, needle, nl) == 0) return i;
    return (size_t)-1;
}

/* One token's bytes into the generated text: llama-server's stop and hold-back rules. */
void srv_text_push(srv_text *t, const char *piece, size_t n, bool not_eog, char *const *stops,
                   size_t n_stops, trit_buf *send) {
    trit_buf_append(&t->gen, piece, n);
    /* a cut-off character waits for its next bytes (base's one UTF-8 rule) */
    if (trit_utf8_complete_prefix(t->gen.p, t->gen.len) < t->gen.len) return;
    size_t pos = TRIT_MIN(t->n_sent, t->gen.len);
    const char *test = t->gen.p + pos;
    size_t tn = t->gen.len - pos;
    size_t stop_pos = (size_t)-1;
    for (size_t i = 0; i < n_stops; i++) { /* a full stop string near the end */
        size_t tmp = strlen(stops[i]) + n;
        size_t from = tn > tmp ? tn - tmp : 0;
        size_t p = find_from(test, tn, from, stops[i]);
        if (p != (size_t)-1 && (stop_pos == (size_t)-1 || p < stop_pos)) stop_pos = p;
    }
    bool send_text = true;
    if (stop_pos != (size_t)-1) {
        t->stopped = true;
        t->gen.len = pos + stop_pos;
        t->gen.p[t->gen.len] = 0;
        pos = TRIT_MIN(t->n_sent, t->gen.len);
    } else if (not_eog) {
        for (size_t i = 0; i < n_stops; i++)
            if (srv_partial_stop(test, tn, stops[i]) != (size_t)-1) send_text = false;
    }
    if (send_text && t->gen.len > pos) {
        trit_buf_append(send, t->gen.p + pos, t->gen.len - pos);
        t->n_sent = t->gen.len;
    }
}

/* The generated text's memory back. */
void srv_text_free(srv_text *t) {
    trit_buf_free(&t->gen);
    memset(t, 0, sizeof *t);
}
