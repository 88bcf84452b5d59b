/* client.c — OpenAI-compatible HTTP client on libcurl (easy interface, one handle per call,
 * so calls are independent and may run on several threads). */
#include "client/client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *trit_client_errkind_name(trit_client_errkind k) {
    switch (k) {
    case TRIT_CLIENT_OK:
        return "ok";
    case TRIT_CLIENT_REFUSED:
        return "refused";
    case TRIT_CLIENT_TIMEOUT:
        return "timeout";
    case TRIT_CLIENT_HTTP_STATUS:
        return "http_status";
    case TRIT_CLIENT_BAD_JSON:
        return "bad_json";
    default:
        return "other";
    }
}

void trit_client_resp_init(trit_client_resp *r) {
    memset(r, 0, sizeof *r);
    r->content = xstrdup("");
    r->prompt_tokens = r->completion_tokens = -1;
}

static void token_free(trit_client_token *t) {
    free(t->text);
    for (int j = 0; j < t->n_top; j++) free(t->top[j].text);
}

void trit_client_resp_free(trit_client_resp *r) {
    if (!r) return;
    free(r->content);
    for (int i = 0; i < r->n_tokens; i++) token_free(&r->tokens[i]);
    free(r->tokens);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int resp_fail(trit_client_resp *r, trit_client_errkind k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int resp_fail(trit_client_resp *r, trit_client_errkind k, const char *fmt, ...) {
    r->kind = k;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- URL: base without trailing "/" or "/v1" ---- */
static char *endpoint(const char *url, const char *path) {
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') n--;
    if (n >= 3 && !strncmp(url + n - 3, "/v1", 3) && !strncmp(path, "/v1/", 4)) n -= 3;
    trit_buf b = {0};
    trit_buf_append(&b, url, n);
    trit_buf_puts(&b, path);
    return b.p;
}

/* ---- token parsing (both reply shapes) ---- */
static char *bytes_or_text(json_t *o, size_t *len) {
    json_t *bytes = json_object_get(o, "bytes");
    if (json_is_array(bytes)) {
        size_t n = json_array_size(bytes);
        char *s = xmalloc(n + 1);
        for (size_t i = 0; i < n; i++) s[i] = (char)json_integer_value(json_array_get(bytes, i));
        s[n] = 0;
        *len = n;
        return s;
    }
    const char *t = json_string_value(json_object_get(o, "token"));
    if (!t) t = "";
    *len = json_string_length(json_object_get(o, "token"));
    return xstrndup(t, *len);
}

static double num_or(json_t *v, double dflt) {
    return json_is_number(v) ? json_number_value(v) : dflt;
}

static void parse_content_token(json_t *e, trit_client_token *t) {
    memset(t, 0, sizeof *t);
    t->text = bytes_or_text(e, &t->len);
    json_t *id = json_object_get(e, "id");
    t->id = json_is_integer(id) ? (int32_t)json_integer_value(id) : -1;
    t->logprob = num_or(json_object_get(e, "logprob"), NAN);
    json_t *top = json_object_get(e, "top_logprobs");
    size_t i;
    json_t *a;
    json_array_foreach(top, i, a) {
        if (t->n_top >= TRIT_CLIENT_MAX_TOP) break;
        trit_client_alt *alt = &t->top[t->n_top++];
        alt->text = bytes_or_text(a, &alt->len);
        json_t *aid = json_object_get(a, "id");
        alt->id = json_is_integer(aid) ? (int32_t)json_integer_value(aid) : -1;
        alt->logprob = num_or(json_object_get(a, "logprob"), NAN);
    }
}

static int alt_cmp(const void *a, const void *b) {
    double x = ((const trit_client_alt *)a)->logprob, y = ((const trit_client_alt *)b)->logprob;
    return (x < y) - (x > y);
}

static void push_token(trit_client_resp *r, const trit_client_token *t) {
    r->tokens = xrealloc(r->tokens, (size_t)(r->n_tokens + 1) * sizeof *r->tokens);
    r->tokens[r->n_tokens++] = *t;
}

/* logprobs object of one choice -> tokens appended to r */
static void parse_logprobs(json_t *lp, trit_client_resp *r) {
    if (!json_is_object(lp)) return;
    json_t *content = json_object_get(lp, "content");
    if (json_is_array(content)) {
        size_t i;
        json_t *e;
        json_array_foreach(content, i, e) {
            trit_client_token t;
            parse_content_token(e, &t);
            push_token(r, &t);
        }
        return;
    }
    json_t *toks = json_object_get(lp, "tokens"), *lps = json_object_get(lp, "token_logprobs"),
           *tops = json_object_get(lp, "top_logprobs");
    if (!json_is_array(toks)) return;
    for (size_t i = 0; i < json_array_size(toks); i++) {
        trit_client_token t;
        memset(&t, 0, sizeof t);
        const char *s = json_string_value(json_array_get(toks, i));
        t.len = s ? json_string_length(json_array_get(toks, i)) : 0;
        t.text = xstrndup(s ? s : "", t.len);
        t.id = -1;
        t.logprob = num_or(json_array_get(lps, i), NAN);
        json_t *top = json_array_get(tops, i);
        const char *k;
        json_t *v;
        json_object_foreach(top, k, v) {
            if (t.n_top >= TRIT_CLIENT_MAX_TOP) break;
            trit_client_alt *alt = &t.top[t.n_top++];
            alt->len = strlen(k);
            alt->text = xstrndup(k, alt->len);
            alt->id = -1;
            alt->logprob = num_or(v, NAN);
        }
        qsort(t.top, (size_t)t.n_top, sizeof t.top[0], alt_cmp);
        push_token(r, &t);
    }
}

static void parse_usage(json_t *root, trit_client_resp *r) {
    json_t *u = json_object_get(root, "usage");
    if (!json_is_object(u)) return;
    json_t *p = json_object_get(u, "prompt_tokens"), *c = json_object_get(u, "completion_tokens");
    if (json_is_integer(p)) r->prompt_tokens = (int)json_integer_value(p);
    if (json_is_integer(c)) r->completion_tokens = (int)json_integer_value(c);
}

static void set_content(trit_client_resp *r, const char *s, size_t n) {
    free(r->content);
    r->content = xstrndup(s, n);
    r->content_len = n;
}

int trit_client_parse_reply(const char *body, size_t n, bool is_chat, trit_client_resp *r) {
    json_error_t je;
    json_t *root = json_loadb(body, n, 0, &je);
    if (!root) return resp_fail(r, TRIT_CLIENT_BAD_JSON, "reply is not JSON: %s", je.text);
    int rc = 0;
    json_t *ch0 = json_array_get(json_object_get(root, "choices"), 0);
    if (!json_is_object(ch0)) {
        rc = resp_fail(r, TRIT_CLIENT_BAD_JSON, "reply has no choices[0]");
        goto done;
    }
    json_t *text = is_chat ? json_object_get(json_object_get(ch0, "message"), "content")
                           : json_object_get(ch0, "text");
    if (json_is_null(text) && is_chat) {
        set_content(r, "", 0);
    } else if (!json_is_string(text)) {
        rc = resp_fail(r, TRIT_CLIENT_BAD_JSON, "reply has no choices[0].%s string",
                       is_chat ? "message.content" : "text");
        goto done;
    } else {
        set_content(r, json_string_value(text), json_string_length(text));
    }
    const char *fr = json_string_value(json_object_get(ch0, "finish_reason"));
    snprintf(r->finish_reason, sizeof r->finish_reason, "%s", fr ? fr : "");
    const char *model = json_string_value(json_object_get(root, "model"));
    snprintf(r->model, sizeof r->model, "%s", model ? model : "");
    parse_logprobs(json_object_get(ch0, "logprobs"), r);
    parse_usage(root, r);
    r->kind = TRIT_CLIENT_OK;
done:
    json_decref(root);
    return rc;
}

/* ---- transport ---- */
typedef struct xfer {
    trit_buf body;
    /* streaming */
    bool stream, is_chat, aborted;
    trit_buf line;
    trit_buf content;
    trit_client_resp *resp;
    const trit_client_req *req;
    double t0;
    bool got_first;
    bool bad_chunk;
    size_t received, max_reply; /* bytes so far; the limit (0: TRIT_CLIENT_MAX_REPLY) */
    bool too_big;
} xfer;

static void stream_event(xfer *x, const char *data, size_t n) {
    if (n == 6 && !memcmp(data, "[DONE]", 6)) return;
    json_error_t je;
    json_t *root = json_loadb(data, n, 0, &je);
    if (!root) {
        if (!x->bad_chunk)
            resp_fail(x->resp, TRIT_CLIENT_BAD_JSON, "stream chunk is not JSON: %s", je.text);
        x->bad_chunk = true;
        return;
    }
    json_t *ch0 = json_array_get(json_object_get(root, "choices"), 0);
    const char *model = json_string_value(json_object_get(root, "model"));
    if (model) snprintf(x->resp->model, sizeof x->resp->model, "%s", model);
    parse_usage(root, x->resp);
    if (json_is_object(ch0)) {
        json_t *text = x->is_chat ? json_object_get(json_object_get(ch0, "delta"), "content")
                                  : json_object_get(ch0, "text");
        int before = x->resp->n_tokens;
        parse_logprobs(json_object_get(ch0, "logprobs"), x->resp);
        const char *fr = json_string_value(json_object_get(ch0, "finish_reason"));
        if (fr) snprintf(x->resp->finish_reason, sizeof x->resp->finish_reason, "%s", fr);
        if (json_is_string(text) && json_string_length(text) > 0) {
            if (!x->got_first) {
                x->got_first = true;
                x->resp->ttft_s = trit_now_s() - x->t0;
            }
            size_t len = json_string_length(text);
            trit_buf_append(&x->content, json_string_value(text), len);
            if (x->req->on_chunk) {
                const trit_client_token *tok =
                    x->resp->n_tokens > before ? &x->resp->tokens[x->resp->n_tokens - 1] : NULL;
                if (x->req->on_chunk(x->req->user, json_string_value(text), len, tok))
                    x->aborted = true;
            }
        }
    }
    json_decref(root);
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t n = size * nmemb;
    /* the reply limit: returning 0 makes curl stop with CURLE_WRITE_ERROR */
    size_t max = x->max_reply ? x->max_reply : TRIT_CLIENT_MAX_REPLY;
    if (x->received + n > max) {
        x->too_big = true;
        return 0;
    }
    x->received += n;
    if (!x->stream) {
        trit_buf_append(&x->body, ptr, n);
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        char c = ptr[i];
        if (c != '\n') {
            trit_buf_append(&x->line, &c, 1);
            continue;
        }
        size_t L = x->line.len;
        if (L > 0 && x->line.p[L - 1] == '\r') L--;
        if (L >= 5 && !memcmp(x->line.p, "data:", 5)) {
            const char *d = x->line.p + 5;
            size_t dn = L - 5;
            while (dn > 0 && *d == ' ') d++, dn--;
            stream_event(x, d, dn);
        } else if (L > 0 && x->line.p[0] == '{') {
            trit_buf_append(&x->body, x->line.p, L); /* an error body on a stream request */
        }
        trit_buf_clear(&x->line);
        if (x->aborted) return 0;
    }
    return n;
}

/* Perform one HTTP request; fills status/kind/latency and x->body. */
static int perform(const char *url, const char *api_key, const char *post_body, double timeout_s,
                   xfer *x, trit_client_resp *r) {
    pthread_once(&curl_once, curl_init_once);
    CURL *h = curl_easy_init();
    if (!h) return resp_fail(r, TRIT_CLIENT_OTHER, "curl_easy_init failed");
    struct curl_slist *hdr = NULL;
    char auth[600];
    if (api_key && *api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", api_key);
        hdr = curl_slist_append(hdr, auth);
    }
    if (post_body) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post_body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(post_body));
    }
    if (x->stream) hdr = curl_slist_append(hdr, "Accept: text/event-stream");
    hdr = curl_slist_append(hdr, "Expect:");
    if (timeout_s <= 0) timeout_s = 60;
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(TRIT_MIN(timeout_s, 10.0) * 1000));
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "trit/" TRIT_VERSION);
    x->t0 = trit_now_s();
    CURLcode cc = curl_easy_perform(h);
    r->latency_s = trit_now_s() - x->t0;
    if (!x->got_first) r->ttft_s = r->latency_s;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->http_status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    const char *why = *errbuf ? errbuf : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_OK:
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        return resp_fail(r, TRIT_CLIENT_REFUSED, "%s: %s", url, why);
    case CURLE_OPERATION_TIMEDOUT:
        return resp_fail(r, TRIT_CLIENT_TIMEOUT, "%s: no reply within %.1f s (%s)", url, timeout_s,
                         why);
    case CURLE_WRITE_ERROR:
        if (x->too_big)
            return resp_fail(r, TRIT_CLIENT_OTHER, "%s: reply exceeds the %zu-byte limit", url,
                             x->max_reply ? x->max_reply : TRIT_CLIENT_MAX_REPLY);
        if (x->aborted) return resp_fail(r, TRIT_CLIENT_OTHER, "%s: aborted by callback", url);
        /* fallthrough */
    default:
        return resp_fail(r, TRIT_CLIENT_OTHER, "%s: %s", url, why);
    }
    if (r->http_status < 200 || r->http_status >= 300) {
        char detail[300] = "";
        json_t *j = x->body.len ? json_loadb(x->body.p, x->body.len, 0, NULL) : NULL;
        json_t *err = json_object_get(j, "error");
        const char *m = json_string_value(json_object_get(err, "message"));
        if (!m) m = json_string_value(err);
        if (m)
            snprintf(detail, sizeof detail, ": %s", m);
        else if (x->body.len)
            snprintf(detail, sizeof detail, ": %.200s", x->body.p);
        json_decref(j);
        return resp_fail(r, TRIT_CLIENT_HTTP_STATUS, "%s: HTTP %ld%s", url, r->http_status, detail);
    }
    return 0;
}

static char *build_body(const trit_client_req *q, bool is_chat) {
    json_t *o = json_object();
    if (q->extra_json) {
        json_t *extra = json_loads(q->extra_json, 0, NULL);
        if (json_is_object(extra)) json_object_update(o, extra);
        json_decref(extra);
    }
    if (q->model) json_object_set_new(o, "model", json_string(q->model));
    if (is_chat) {
        json_t *msgs = json_array();
        for (int i = 0; i < q->n_messages; i++)
            json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", q->messages[i].role,
                                                  "content", q->messages[i].content));
        json_object_set_new(o, "messages", msgs);
    } else {
        json_object_set_new(o, "prompt", json_string(q->prompt ? q->prompt : ""));
    }
    if (q->max_tokens > 0) json_object_set_new(o, "max_tokens", json_integer(q->max_tokens));
    if (q->temperature >= 0) json_object_set_new(o, "temperature", json_real(q->temperature));
    if (q->seed >= 0) json_object_set_new(o, "seed", json_integer(q->seed));
    if (q->top_logprobs > 0) {
        if (is_chat) {
            json_object_set_new(o, "logprobs", json_true());
            json_object_set_new(o, "top_logprobs", json_integer(q->top_logprobs));
        } else {
            json_object_set_new(o, "logprobs", json_integer(q->top_logprobs));
        }
    }
    if (q->n_stop > 0) {
        json_t *st = json_array();
        for (int i = 0; i < q->n_stop; i++) json_array_append_new(st, json_string(q->stop[i]));
        json_object_set_new(o, "stop", st);
    }
    if (q->stream) json_object_set_new(o, "stream", json_true());
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int do_generate(const trit_client_req *q, trit_client_resp *r, bool is_chat) {
    trit_client_resp_init(r);
    if (!q->url || !*q->url) return resp_fail(r, TRIT_CLIENT_OTHER, "no server URL given");
    if (is_chat && (q->n_messages <= 0 || !q->messages))
        return resp_fail(r, TRIT_CLIENT_OTHER, "chat request without messages");
    char *url = endpoint(q->url, is_chat ? "/v1/chat/completions" : "/v1/completions");
    char *body = build_body(q, is_chat);
    xfer x = {
        .stream = q->stream, .is_chat = is_chat, .resp = r, .req = q, .max_reply = q->max_reply};
    int rc = perform(url, q->api_key, body, q->timeout_s, &x, r);
    if (rc == 0) {
        if (q->stream) {
            if (x.bad_chunk) {
                rc = -1;
            } else if (x.body.len && !x.content.len && !r->n_tokens) {
                rc = resp_fail(r, TRIT_CLIENT_BAD_JSON, "%s: stream carried no events", url);
            } else {
                set_content(r, x.content.p ? x.content.p : "", x.content.len);
                r->kind = TRIT_CLIENT_OK;
            }
        } else {
            rc = trit_client_parse_reply(x.body.p ? x.body.p : "", x.body.len, is_chat, r);
            if (rc) {
                char m[512];
                snprintf(m, sizeof m, "%s: %s", url, r->msg);
                memcpy(r->msg, m, sizeof m);
            }
            r->body = x.body.p;
            x.body.p = NULL;
        }
    }
    trit_buf_free(&x.body);
    trit_buf_free(&x.line);
    trit_buf_free(&x.content);
    free(body);
    free(url);
    return rc;
}

int trit_client_completion(const trit_client_req *q, trit_client_resp *r) {
    return do_generate(q, r, false);
}
int trit_client_chat(const trit_client_req *q, trit_client_resp *r) {
    return do_generate(q, r, true);
}

int trit_client_post_json(const char *url, const char *path, const char *api_key, double timeout_s,
                          const char *body_json, json_t **out, trit_client_resp *resp) {
    trit_client_resp local;
    trit_client_resp *r = resp ? resp : &local;
    trit_client_resp_init(r);
    if (out) *out = NULL;
    char *full = endpoint(url, path);
    xfer x = {0};
    int rc = perform(full, api_key, body_json, timeout_s, &x, r);
    if (rc == 0) {
        json_error_t je;
        json_t *j = json_loadb(x.body.p ? x.body.p : "", x.body.len, 0, &je);
        if (!j) {
            rc = resp_fail(r, TRIT_CLIENT_BAD_JSON, "%s: reply is not JSON: %s", full, je.text);
        } else {
            r->kind = TRIT_CLIENT_OK;
            if (out)
                *out = j;
            else
                json_decref(j);
        }
    }
    trit_buf_free(&x.body);
    free(full);
    if (r == &local) trit_client_resp_free(&local);
    return rc;
}

int trit_client_get_json(const char *url, const char *path, const char *api_key, double timeout_s,
                         json_t **out, trit_client_resp *resp) {
    return trit_client_post_json(url, path, api_key, timeout_s, NULL, out, resp);
}

int trit_client_model_id(const char *url, const char *api_key, double timeout_s, char *out,
                         size_t out_sz, trit_client_resp *resp) {
    json_t *j = NULL;
    if (out_sz) *out = 0;
    if (trit_client_get_json(url, "/v1/models", api_key, timeout_s, &j, resp)) return -1;
    json_t *m0 = json_array_get(json_object_get(j, "data"), 0);
    if (!m0) m0 = json_array_get(json_object_get(j, "models"), 0);
    const char *id = json_string_value(json_object_get(m0, "id"));
    if (!id) id = json_string_value(json_object_get(m0, "model"));
    if (!id) id = json_string_value(json_object_get(m0, "name"));
    if (id) snprintf(out, out_sz, "%s", id);
    json_decref(j);
    if (!id && resp) resp_fail(resp, TRIT_CLIENT_BAD_JSON, "/v1/models lists no model id");
    return id ? 0 : -1;
}

/* ---- concurrency ---- */
static void *call_thread(void *arg) {
    trit_client_call *c = arg;
    if (c->kind == TRIT_CLIENT_CALL_CHAT)
        trit_client_chat(c->req, c->resp);
    else
        trit_client_completion(c->req, c->resp);
    return NULL;
}

void trit_client_run_many(trit_client_call *calls, int n) {
    if (n <= 0) return;
    pthread_t *th = xcalloc((size_t)n, sizeof *th);
    bool *started = xcalloc((size_t)n, sizeof *started);
    for (int i = 1; i < n; i++)
        started[i] = pthread_create(&th[i], NULL, call_thread, &calls[i]) == 0;
    call_thread(&calls[0]);
    for (int i = 1; i < n; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            call_thread(&calls[i]);
    }
    free(th);
    free(started);
}

/* ---- API keys ---- */
int trit_api_key_load(const char *file, const char *env_name, char **out, trit_err *err) {
    *out = NULL;
    if (!file) {
        const char *e = env_name ? getenv(env_name) : NULL;
        if (e && *e) *out = xstrdup(e);
        return 0;
    }
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return trit_fail(err, TRIT_EIO, "key file %s: %s", file, strerror(errno));
    struct stat st;
    char buf[4097];
    ssize_t n = 0;
    const char *why = NULL;
    /* checked on the open descriptor, so the file cannot be swapped between check and read */
    if (fstat(fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_mode & (S_IRWXO))
        why = "readable or writable by others (run: chmod 600 on it)";
    else if (st.st_size > 4096)
        why = "larger than 4096 bytes (expected one line with the key)";
    else if ((n = read(fd, buf, sizeof buf - 1)) < 0)
        why = strerror(errno);
    close(fd);
    if (why) return trit_fail(err, TRIT_EINVAL, "key file %s: %s", file, why);
    size_t len = n > 0 ? (size_t)n : 0;
    buf[len] = 0;
    /* strip the trailing newline (and CR, blanks) that editors and echo add */
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                   buf[len - 1] == '\t'))
        buf[--len] = 0;
    const char *k = buf;
    while (*k == ' ' || *k == '\t') k++;
    if (!*k) return trit_fail(err, TRIT_EINVAL, "key file %s is empty", file);
    for (const char *c = k; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return trit_fail(err, TRIT_EINVAL,
                             "key file %s: the key has a control byte or more than one line", file);
    *out = xstrdup(k);
    explicit_bzero(buf, sizeof buf);
    return 0;
}

char *trit_api_key_take_arg(char *arg) {
    char *k = xstrdup(arg);
    memset(arg, 'x', strlen(arg));
    return k;
}

bool trit_api_key_matches(const char *want, const char *authorization) {
    const char *h = authorization;
    if (!want || !h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    /* constant time in the length of want: every byte is compared */
    size_t a = strlen(h), b = strlen(want);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < b; i++)
        diff |= (unsigned char)(i < a ? h[i] : 0) ^ (unsigned char)want[i];
    return diff == 0;
}

/* ---- server identity (provenance) ---- */

/* Longest string field an identity keeps (a model path, a build string): a server's reply
 * may carry anything, the evidence that records it stays small. */
#define IDENT_MAX_STR 1024

/* The string member key of o, or NULL when o is not an object or the member not a string. */
static const char *ident_str(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

/* The first non-empty string among a, b, c (NULLs skipped), or "". */
static const char *first_str(const char *a, const char *b, const char *c) {
    if (a && *a) return a;
    if (b && *b) return b;
    if (c && *c) return c;
    return "";
}

/* A count a server reports: a non-negative integer (a real with an integral value too),
 * else 0 ("not reported"). */
static json_int_t ident_count(const json_t *v) {
    if (json_is_integer(v)) return json_integer_value(v) > 0 ? json_integer_value(v) : 0;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isfinite(d) && d > 0 && d == floor(d) && d < 9.0e15) return (json_int_t)d;
    }
    return 0;
}

/* The first non-zero count among the members, or 0. */
static json_int_t first_count(const json_t *a, const json_t *b, const json_t *c) {
    json_int_t x = ident_count(a);
    if (!x) x = ident_count(b);
    if (!x) x = ident_count(c);
    return x;
}

/* Set key to s cut to IDENT_MAX_STR bytes at a UTF-8 character boundary. */
static void set_clipped(json_t *o, const char *key, const char *s) {
    size_t n = strlen(s);
    if (n > IDENT_MAX_STR) {
        n = IDENT_MAX_STR;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    json_t *v = json_stringn(s, n);
    json_object_set_new(o, key, v ? v : json_string(""));
}

/* A sha256 as 64 lowercase hex, or "" when s is anything else. */
static void set_sha256(json_t *o, const char *key, const char *s) {
    char hex[65] = "";
    if (s && strlen(s) == 64 && strspn(s, "0123456789abcdefABCDEF") == 64) {
        for (int i = 0; i < 64; i++) hex[i] = (char)tolower((unsigned char)s[i]);
        hex[64] = 0;
    }
    json_object_set_new(o, key, json_string(hex));
}

/* The base URL as an identity records it: no trailing '/', no "/v1" suffix. */
static char *ident_base_url(const char *url) {
    size_t n = strlen(url ? url : "");
    while (n > 0 && url[n - 1] == '/') n--;
    if (n >= 3 && !strncmp(url + n - 3, "/v1", 3)) n -= 3;
    while (n > 0 && url[n - 1] == '/') n--;
    return xstrndup(url ? url : "", n);
}

/* One shape for every engine, so evidence compares like with like: each field from the first
 * place a server reports it, "" or 0 where none does (never guessed). */
json_t *trit_identity_normalize(const char *url, const json_t *props, const json_t *models) {
    if (!json_is_object(props)) props = NULL;
    if (!json_is_object(models)) models = NULL;
    const json_t *t = json_object_get(props, "trit");
    if (!json_is_object(t)) t = NULL;
    /* /v1/models: OpenAI's {"data":[...]}, or llama-server's ollama-style {"models":[...]} */
    const json_t *m0 = json_array_get(json_object_get(models, "data"), 0);
    if (!json_is_object(m0)) m0 = json_array_get(json_object_get(models, "models"), 0);
    if (!json_is_object(m0)) m0 = NULL;
    const json_t *meta = json_object_get(m0, "meta");
    if (!json_is_object(meta)) meta = NULL;
    const char *owned_by = ident_str(m0, "owned_by");
    const char *build_info = ident_str(props, "build_info");

    /* engine: trit serve says so in its "trit" object (or owned_by "trit"); llama-server has
     * build_info in /props and owned_by "llamacpp" in /v1/models (tools/server/
     * server-context.cpp: get_res_props, get_res_model_info) */
    const char *engine = "unknown";
    if (t || (owned_by && !strcmp(owned_by, "trit")))
        engine = "trit";
    else if ((build_info && *build_info) || (owned_by && !strcmp(owned_by, "llamacpp")))
        engine = "llama.cpp";
    const bool is_llama = !strcmp(engine, "llama.cpp");

    json_t *id = json_object();
    char *base = ident_base_url(url);
    set_clipped(id, "url", base);
    free(base);
    json_object_set_new(id, "engine", json_string(engine));
    set_clipped(id, "build", first_str(ident_str(t, "build"), is_llama ? build_info : NULL, NULL));
    set_clipped(
        id, "model",
        first_str(ident_str(props, "model_path"), ident_str(t, "model_path"),
                  first_str(ident_str(m0, "id"), ident_str(m0, "model"), ident_str(m0, "name"))));
    set_sha256(id, "model_sha256",
               first_str(ident_str(t, "model_sha256"), ident_str(meta, "sha256"), NULL));
    json_object_set_new(id, "model_size",
                        json_integer(first_count(json_object_get(t, "model_size"),
                                                 json_object_get(meta, "file_size"), NULL)));
    json_object_set_new(id, "n_vocab",
                        json_integer(first_count(json_object_get(t, "n_vocab"),
                                                 json_object_get(meta, "n_vocab"), NULL)));
    const json_t *dgs = json_object_get(props, "default_generation_settings");
    json_object_set_new(
        id, "n_ctx",
        json_integer(first_count(json_object_get(dgs, "n_ctx"), json_object_get(t, "n_ctx"),
                                 json_object_get(meta, "n_ctx"))));
    json_object_set_new(id, "n_ctx_train",
                        json_integer(first_count(json_object_get(meta, "n_ctx_train"),
                                                 json_object_get(t, "n_ctx_train"), NULL)));
    set_clipped(id, "numerics", first_str(ident_str(t, "numerics"), NULL, NULL));
    set_clipped(id, "kernels", first_str(ident_str(t, "kernels"), NULL, NULL));
    json_object_set_new(id, "threads", json_integer(ident_count(json_object_get(t, "threads"))));
    set_clipped(id, "instance", first_str(ident_str(t, "instance"), NULL, NULL));
    /* llama-server's replies carry llama_build_info() as system_fingerprint
     * (tools/server/server-task.cpp), the same string as /props' build_info */
    set_clipped(id, "system_fingerprint",
                first_str(ident_str(t, "system_fingerprint"), is_llama ? build_info : NULL, NULL));
    json_t *rep = json_array();
    if (props) json_array_append_new(rep, json_string("/props"));
    if (models) json_array_append_new(rep, json_string("/v1/models"));
    json_object_set_new(id, "reported", rep);
    return id;
}

/* True while trit serve is still hashing its model file (its /props says "pending"). */
static bool hash_pending(const json_t *props) {
    const char *st = ident_str(json_object_get(props, "trit"), "model_sha256_state");
    return st && !strcmp(st, "pending");
}

/* Ask both endpoints (either may be missing on a given server) and normalize what came
 * back; an error only when neither answered. */
json_t *trit_client_identity(const char *url, const char *api_key, double timeout_s,
                             trit_client_resp *resp) {
    trit_client_resp local;
    trit_client_resp *r = resp ? resp : &local;
    trit_client_resp_init(r);
    if (!url || !*url) {
        resp_fail(r, TRIT_CLIENT_OTHER, "no server URL given");
        if (r == &local) trit_client_resp_free(&local);
        return NULL;
    }
    if (timeout_s <= 0) timeout_s = 60;
    /* /props sits at the server's root: ask the base, not a ".../v1" URL */
    char *base = ident_base_url(url);
    const double deadline = trit_now_s() + timeout_s;
    json_t *props = NULL, *models = NULL;
    trit_client_resp rp, rm;
    int a = trit_client_get_json(base, "/props", api_key, timeout_s, &props, &rp);
    /* trit serve hashes its model after it starts: ask again until the hash is there or the
     * time is up (then model_sha256 stays "") */
    while (a == 0 && hash_pending(props) && trit_now_s() + 0.1 < deadline) {
        usleep(100 * 1000);
        json_t *again = NULL;
        trit_client_resp_free(&rp);
        if (trit_client_get_json(base, "/props", api_key, deadline - trit_now_s(), &again, &rp))
            break;
        json_decref(props);
        props = again;
    }
    if (a == 0 && !json_is_object(props)) a = -1;
    /* unreachable: asking /v1/models too would only wait as long again */
    bool down = a && (rp.kind == TRIT_CLIENT_REFUSED || rp.kind == TRIT_CLIENT_TIMEOUT);
    int b = -1;
    trit_client_resp_init(&rm);
    if (!down) {
        trit_client_resp_free(&rm);
        b = trit_client_get_json(base, "/v1/models", api_key, timeout_s, &models, &rm);
        if (b == 0 && !json_is_object(models)) b = -1;
    }
    json_t *id = NULL;
    if (a && b) {
        r->kind = rp.kind != TRIT_CLIENT_OK ? rp.kind : TRIT_CLIENT_BAD_JSON;
        r->http_status = rp.http_status;
        if (down)
            snprintf(r->msg, sizeof r->msg, "identity of %s: %s", url, rp.msg);
        else
            snprintf(r->msg, sizeof r->msg,
                     "identity of %s: neither /props nor /v1/models "
                     "answered (%.200s; %.200s)",
                     url, rp.msg[0] ? rp.msg : "not a JSON object",
                     rm.msg[0] ? rm.msg : "not a JSON object");
    } else {
        id = trit_identity_normalize(url, a ? NULL : props, b ? NULL : models);
        r->kind = TRIT_CLIENT_OK;
        r->http_status = a ? rm.http_status : rp.http_status;
    }
    json_decref(props);
    json_decref(models);
    free(base);
    trit_client_resp_free(&rp);
    trit_client_resp_free(&rm);
    if (r == &local) trit_client_resp_free(&local);
    return id;
}

/* The canonical string the digest is taken over: one "key=value\n" line per field, in this
 * order, strings as reported, counts in decimal. */
static const char *const digest_fields[] = {"engine",     "build",    "model",  "model_sha256",
                                            "model_size", "numerics", "kernels"};

/* A fixed, documented canonical string (docs/parity.md, Identity) so any tool can recompute
 * the digest; the version prefix lets the field list change without old digests colliding. */
void trit_identity_digest(const json_t *ident, char out[17]) {
    trit_buf b = {0};
    trit_buf_puts(&b, "trit-identity-v1\n");
    for (size_t i = 0; i < TRIT_ARRAY_LEN(digest_fields); i++) {
        const json_t *v = json_object_get(ident, digest_fields[i]);
        if (json_is_integer(v))
            trit_buf_printf(&b, "%s=%lld\n", digest_fields[i], (long long)json_integer_value(v));
        else if (json_is_string(v))
            trit_buf_printf(&b, "%s=%s\n", digest_fields[i], json_string_value(v));
        else
            trit_buf_printf(&b, "%s=\n", digest_fields[i]);
    }
    char hex[65];
    trit_sha256_hex(b.p, b.len, hex);
    trit_buf_free(&b);
    memcpy(out, hex, 16);
    out[16] = 0;
}

/* A URL as a server's address: lowercase scheme and host, the scheme's default port made
 * explicit, the loopback names localhost and [::1] as 127.0.0.1, credentials dropped, no
 * trailing '/' and no "/v1". Two URLs that reach one listening socket this way compare
 * equal; other aliases (a DNS name for this host) are not detected. */
static char *server_key(const char *url) {
    char *base = ident_base_url(url ? url : "");
    const char *p = base;
    const char *sep = strstr(p, "://");
    char scheme[16] = "http";
    if (sep && (size_t)(sep - p) < sizeof scheme) {
        for (size_t i = 0; i < (size_t)(sep - p); i++)
            scheme[i] = (char)tolower((unsigned char)p[i]);
        scheme[sep - p] = 0;
        p = sep + 3;
    }
    size_t alen = strcspn(p, "/?#");
    const char *path = p + alen;
    const char *at = memchr(p, '@', alen);
    if (at) {
        alen -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    /* host and port: "[v6]:port", "host:port", "host" */
    char host[256] = "";
    const char *port = NULL;
    size_t hlen = alen;
    if (alen && p[0] == '[') {
        const char *close = memchr(p, ']', alen);
        hlen = close ? (size_t)(close - p) + 1 : alen;
        if (close && hlen < alen && p[hlen] == ':') port = p + hlen + 1;
    } else {
        const char *colon = memchr(p, ':', alen);
        if (colon) {
            hlen = (size_t)(colon - p);
            port = colon + 1;
        }
    }
    snprintf(host, sizeof host, "%.*s", (int)TRIT_MIN(hlen, sizeof host - 1), p);
    for (char *c = host; *c; c++) *c = (char)tolower((unsigned char)*c);
    if (!strcmp(host, "localhost") || !strcmp(host, "[::1]"))
        snprintf(host, sizeof host, "127.0.0.1");
    size_t plen = port ? (size_t)(p + alen - port) : 0;
    char portbuf[16];
    if (plen && plen < sizeof portbuf)
        snprintf(portbuf, sizeof portbuf, "%.*s", (int)plen, port);
    else
        snprintf(portbuf, sizeof portbuf, "%s", !strcmp(scheme, "https") ? "443" : "80");
    trit_buf k = {0};
    trit_buf_printf(&k, "%s://%s:%s%s", scheme, host, portbuf, path);
    free(base);
    return k.p;
}

/* A gate must refuse to compare a server with itself: the instance id proves it when both
 * report one; otherwise the address is the best evidence there is. */
bool trit_identity_same_server(const json_t *a, const json_t *b) {
    const char *ia = ident_str(a, "instance"), *ib = ident_str(b, "instance");
    if (ia && ib && *ia && !strcmp(ia, ib)) return true;
    return trit_same_server_url(ident_str(a, "url"), ident_str(b, "url"));
}

/* Two addresses compared by their server keys; an unknown address is never "the same". */
bool trit_same_server_url(const char *a, const char *b) {
    if (!a || !b || !*a || !*b) return false;
    char *ka = server_key(a), *kb = server_key(b);
    bool same = !strcmp(ka, kb);
    free(ka);
    free(kb);
    return same;
}
