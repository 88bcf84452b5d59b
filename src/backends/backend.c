/* backends/backend.c — spec parsing, dispatch to the implementations, shared helpers
 * (greedy steps from logits, trace statistics). */
#include "backends/backend_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

trit_backend_opts trit_backend_default_opts(void) {
    trit_backend_opts o = {.n_threads = 0, .n_ctx = 0, .rope_mode = -1, .act = -1};
    const char *t = getenv("TRIT_THREADS");
    if (t && *t) o.n_threads = atoi(t);
    return o;
}

static int parse_int_opt(const char *k, const char *v, int *out, trit_err *err) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < 0 || x > 1 << 24)
        return trit_fail(err, TRIT_EINVAL, "backend option %s=%s: expected a non-negative integer",
                         k, v);
    *out = (int)x;
    return 0;
}

/* Options shared by trit and llama: threads, ctx, rope, act. */
static int parse_query(const char *kind, const char *query, trit_backend_opts *o, trit_err *err) {
    if (!query || !*query) return 0;
    char *q = xstrdup(query), *save = NULL;
    int rc = 0;
    for (char *kv = strtok_r(q, "&", &save); kv && rc == 0; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            rc = trit_fail(err, TRIT_EINVAL, "backend option '%s': expected key=value", kv);
            break;
        }
        *eq = 0;
        const char *k = kv, *v = eq + 1;
        if (!strcmp(k, "threads") || !strcmp(k, "t")) {
            rc = parse_int_opt(k, v, &o->n_threads, err);
        } else if (!strcmp(k, "ctx") || !strcmp(k, "c")) {
            rc = parse_int_opt(k, v, &o->n_ctx, err);
        } else if (!strcmp(k, "fa")) {
            if (strcmp(kind, "llama") != 0)
                rc = trit_fail(err, TRIT_EINVAL, "backend option fa= is for the llama backend");
            else if (!strcmp(v, "auto"))
                o->flash_attn = 0;
            else if (!strcmp(v, "on"))
                o->flash_attn = 1;
            else if (!strcmp(v, "off"))
                o->flash_attn = 2;
            else
                rc = trit_fail(err, TRIT_EINVAL, "fa=%s: expected auto, on or off", v);
        } else if (!strcmp(k, "rope") || !strcmp(k, "act")) {
            if (strcmp(kind, "trit") != 0) {
                rc =
                    trit_fail(err, TRIT_EINVAL,
                              "backend option %s= is fault injection for the trit backend only", k);
            } else if (!strcmp(k, "rope")) {
                if (!strcmp(v, "norm"))
                    o->rope_mode = 0; /* TRIT_ROPE_NORM */
                else if (!strcmp(v, "neox"))
                    o->rope_mode = 2; /* TRIT_ROPE_NEOX */
                else
                    rc = trit_fail(err, TRIT_EINVAL, "rope=%s: expected norm or neox", v);
            } else {
                if (!strcmp(v, "silu"))
                    o->act = 0; /* TRIT_ACT_SILU */
                else if (!strcmp(v, "relu2"))
                    o->act = 1; /* TRIT_ACT_RELU2 */
                else
                    rc = trit_fail(err, TRIT_EINVAL, "act=%s: expected silu or relu2", v);
            }
        } else {
            rc = trit_fail(err, TRIT_EINVAL,
                           "unknown backend option '%s' (known: threads, ctx, rope, act, fa)", k);
        }
    }
    free(q);
    return rc;
}

trit_backend *trit_backend_open(const char *spec, const trit_backend_opts *opts, trit_err *err) {
    if (!spec || !*spec) {
        trit_fail(err, TRIT_EINVAL,
                  "empty backend spec (expected trit:MODEL, llama:MODEL or "
                  "http:URL)");
        return NULL;
    }
    if (!strncmp(spec, "http://", 7) || !strncmp(spec, "https://", 8)) {
        /* a bare URL means the http backend */
        char *full = xmalloc(strlen(spec) + 6);
        sprintf(full, "http:%s", spec);
        trit_backend *b = trit_backend_open(full, opts, err);
        free(full);
        return b;
    }
    const char *colon = strchr(spec, ':');
    size_t klen = colon ? (size_t)(colon - spec) : 0;
    char kind[8] = "";
    if (colon && klen < sizeof kind) memcpy(kind, spec, klen), kind[klen] = 0;
    if (!colon || (strcmp(kind, "trit") && strcmp(kind, "llama") && strcmp(kind, "http"))) {
        trit_fail(err, TRIT_EINVAL,
                  "backend spec '%s': expected trit:MODEL, llama:MODEL or http:URL", spec);
        return NULL;
    }
    trit_backend *b = xcalloc(1, sizeof *b);
    b->opts = opts ? *opts : trit_backend_default_opts();
    snprintf(b->info.kind, sizeof b->info.kind, "%s", kind);
    snprintf(b->info.spec, sizeof b->info.spec, "%s", spec);
    char *target = xstrdup(colon + 1);
    char *query = NULL;
    int rc;
    if (!strcmp(kind, "http")) {
        /* http:URL[?model=..] -- a '?' in a URL belongs to the URL only if we do not know it */
        char *q = strchr(target, '?');
        if (q) *q = 0, query = q + 1;
        rc = trit_backend_open_http(b, target, query, err);
    } else {
        char *q = strrchr(target, '?');
        if (q) *q = 0, query = q + 1;
        if (!*target) {
            rc = trit_fail(err, TRIT_EINVAL, "backend spec '%s': no model path", spec);
        } else {
            rc = parse_query(kind, query, &b->opts, err);
            if (rc == 0)
                rc = !strcmp(kind, "trit") ? trit_backend_open_trit(b, target, err)
                                           : trit_backend_open_llama(b, target, err);
        }
    }
    free(target);
    if (rc != 0) {
        if (err) trit_err_prefix(err, "%s", spec);
        free(b);
        return NULL;
    }
    return b;
}

void trit_backend_close(trit_backend *b) {
    if (!b) return;
    if (b->ops && b->ops->close) b->ops->close(b);
    free(b);
}

const trit_backend_info *trit_backend_describe(trit_backend *b) {
    return &b->info;
}

static int unavailable(trit_backend *b, const char *what, trit_err *err) {
    return trit_fail(err, TRIT_EUNAVAIL, "%s backend: %s is not available", b->info.kind, what);
}

int trit_backend_tokenize(trit_backend *b, const char *text, bool add_special, bool parse_special,
                          int32_t **ids, size_t *n_ids, trit_err *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!b->ops->tokenize) return unavailable(b, "tokenize", err);
    return b->ops->tokenize(b, text, add_special, parse_special, ids, n_ids, err);
}

int trit_backend_chat_prompt(trit_backend *b, const char *user, trit_buf *out, trit_err *err) {
    if (!b->ops->chat_prompt) return unavailable(b, "chat templating", err);
    return b->ops->chat_prompt(b, user, out, err);
}

int trit_backend_eval_each(trit_backend *b, const int32_t *ids, size_t n, trit_backend_logits_fn fn,
                           void *ud, trit_err *err) {
    if (!b->ops->eval_each) return unavailable(b, "eval (logits of every position)", err);
    if (n == 0) return trit_fail(err, TRIT_EINVAL, "eval: no tokens");
    return b->ops->eval_each(b, ids, n, fn, ud, err);
}

typedef struct {
    float *logits;
    size_t n;
    int n_vocab;
} eval_acc;

static int eval_acc_fn(void *ud, size_t pos, const float *logits, int n_vocab) {
    eval_acc *a = ud;
    if (!a->logits) {
        a->n_vocab = n_vocab;
        a->logits = xmalloc(a->n * (size_t)n_vocab * sizeof(float));
    }
    memcpy(a->logits + pos * (size_t)n_vocab, logits, (size_t)n_vocab * sizeof(float));
    return 0;
}

int trit_backend_eval(trit_backend *b, const int32_t *ids, size_t n, float **logits, int *n_vocab,
                      trit_err *err) {
    eval_acc a = {.n = n};
    *logits = NULL;
    *n_vocab = 0;
    if (trit_backend_eval_each(b, ids, n, eval_acc_fn, &a, err) != 0) {
        free(a.logits);
        return -1;
    }
    *logits = a.logits;
    *n_vocab = a.n_vocab;
    return 0;
}

int trit_backend_generate_greedy(trit_backend *b, const int32_t *ids, size_t n, int max_tokens,
                                 trit_gen_step **steps, size_t *n_steps, trit_err *err) {
    *steps = NULL;
    *n_steps = 0;
    if (!b->ops->generate) return unavailable(b, "greedy generation", err);
    if (n == 0) return trit_fail(err, TRIT_EINVAL, "generate: empty prompt");
    if (max_tokens <= 0) return 0;
    return b->ops->generate(b, ids, n, max_tokens, steps, n_steps, err);
}

int trit_backend_trace(trit_backend *b, const int32_t *ids, size_t n, const char *const *names,
                       size_t n_names, bool last_token_only, trit_trace_stat **stats,
                       size_t *n_stats, trit_err *err) {
    *stats = NULL;
    *n_stats = 0;
    if (!b->ops->trace) return unavailable(b, "trace (named activations)", err);
    if (n == 0) return trit_fail(err, TRIT_EINVAL, "trace: no tokens");
    return b->ops->trace(b, ids, n, names, n_names, last_token_only, stats, n_stats, err);
}

/* ---- per-position top-N scoring ---- */

typedef struct {
    const int32_t *ids;
    size_t n, from;
    int top_n;
    trit_pos_topn *out;
    trit_err *err;
} score_acc;

/* One position's row of logits -> its entry: log-softmax through trit_logsumexp, top-N
 * through trit_top_k (base.h's one softmax and one ranking). */
static int score_row(void *ud, size_t pos, const float *logits, int n_vocab) {
    score_acc *a = ud;
    if (pos < a->from) return 0;
    trit_pos_topn *e = &a->out[pos - a->from];
    const double lse = trit_logsumexp(logits, n_vocab);
    e->next_id = pos + 1 < a->n ? a->ids[pos + 1] : -1;
    if (e->next_id >= n_vocab)
        return trit_fail(a->err, TRIT_EINVAL,
                         "score: token %d at position %zu is outside the "
                         "vocabulary (%d)",
                         e->next_id, pos + 1, n_vocab);
    e->next_logprob = e->next_id >= 0 ? (double)logits[e->next_id] - lse : NAN;
    e->n_top = trit_top_k(logits, n_vocab, a->top_n, e->top_id);
    for (int j = 0; j < e->n_top; j++) e->top_logprob[j] = (double)logits[e->top_id[j]] - lse;
    return 0;
}

int trit_backend_score(trit_backend *b, const int32_t *ids, size_t n, size_t from, int top_n,
                       trit_pos_topn **out, trit_err *err) {
    *out = NULL;
    if (n == 0) return trit_fail(err, TRIT_EINVAL, "score: no tokens");
    if (from >= n)
        return trit_fail(err, TRIT_EINVAL, "score: first position %zu is past the %zu tokens", from,
                         n);
    if (top_n < 0) return trit_fail(err, TRIT_EINVAL, "score: top_n %d is negative", top_n);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0)
            return trit_fail(err, TRIT_EINVAL, "score: token %zu is %d (negative)", i, ids[i]);
    top_n = TRIT_MIN(top_n, TRIT_BACKEND_TOPN_MAX);
    trit_pos_topn *v = xcalloc(n - from, sizeof *v);
    int rc;
    if (b->ops->score) {
        rc = b->ops->score(b, ids, n, from, top_n, v, err);
    } else if (b->ops->eval_each) {
        score_acc a = {ids, n, from, top_n, v, err};
        rc = trit_backend_eval_each(b, ids, n, score_row, &a, err);
    } else {
        rc = unavailable(b, "scoring (top-N log-probabilities per position)", err);
    }
    if (rc != 0) {
        free(v);
        return -1;
    }
    *out = v;
    return 0;
}

const char *trit_backend_score_mode(trit_backend *b) {
    return b->ops->score_mode ? b->ops->score_mode(b) : "logits";
}

void trit_backend_set_progress(trit_backend *b, trit_backend_progress_fn fn, void *ud) {
    b->progress = fn;
    b->progress_ud = ud;
}

double trit_pos_topn_kld(const trit_pos_topn *p, const trit_pos_topn *q, int *n_shared) {
    double kl = 0, p_in = 0, q_in = 0;
    int shared = 0;
    for (int i = 0; i < p->n_top; i++) {
        for (int j = 0; j < q->n_top; j++) {
            if (q->top_id[j] != p->top_id[i]) continue;
            const double lp = p->top_logprob[i], lq = q->top_logprob[j];
            if (isfinite(lp)) kl += exp(lp) * (lp - lq);
            p_in += exp(lp);
            q_in += exp(lq);
            shared++;
            break;
        }
    }
    const double floor = 1e-12;
    double p_rest = 1.0 - p_in, q_rest = 1.0 - q_in;
    if (p_rest > floor) kl += p_rest * (log(p_rest) - log(q_rest > floor ? q_rest : floor));
    if (kl < 0 && kl > -1e-9) kl = 0; /* rounding only: the coarse-grained KL is >= 0 */
    if (n_shared) *n_shared = shared;
    return kl;
}

/* The identity of an in-process backend from what it knows of itself (the http backend
 * gives what its server reported instead). */
static json_t *identity_from_info(const trit_backend *b) {
    const trit_backend_info *in = &b->info;
    struct stat st;
    json_int_t size = in->model_path[0] && stat(in->model_path, &st) == 0 ? st.st_size : 0;
    json_t *o = json_object();
    json_object_set_new(o, "url", json_string(""));
    json_object_set_new(o, "engine", json_string(!strcmp(in->kind, "trit") ? "trit" : "llama.cpp"));
    json_object_set_new(o, "build", json_string(in->version));
    json_object_set_new(o, "model", json_string(in->model_path));
    json_object_set_new(o, "model_sha256", json_string(in->model_sha256));
    json_object_set_new(o, "model_size", json_integer(size));
    json_object_set_new(o, "n_vocab", json_integer(in->n_vocab));
    json_object_set_new(o, "n_ctx", json_integer(in->n_ctx));
    json_object_set_new(o, "n_ctx_train", json_integer(0));
    json_object_set_new(o, "numerics", json_string(in->numerics));
    json_object_set_new(o, "kernels", json_string(in->kernels));
    json_object_set_new(o, "threads", json_integer(in->n_threads));
    json_object_set_new(o, "instance", json_string(""));
    json_object_set_new(o, "system_fingerprint", json_string(""));
    json_object_set_new(o, "reported", json_array());
    return o;
}

json_t *trit_backend_identity(trit_backend *b) {
    return b->ops->identity ? b->ops->identity(b) : identity_from_info(b);
}

void trit_backend_trace_keep_data(trit_backend *b, bool keep) {
    b->keep_data = keep;
}

void trit_trace_stats_free(trit_trace_stat *stats, size_t n) {
    if (!stats) return;
    for (size_t i = 0; i < n; i++) free(stats[i].data);
    free(stats);
}

/* ---- shared helpers ---- */

void trit_backend_step_from_logits(const float *logits, int n_vocab, trit_gen_step *st) {
    memset(st, 0, sizeof *st);
    int k = TRIT_MIN(TRIT_BACKEND_TOPK, n_vocab);
    /* insertion into a small sorted array: descending logit, ties lowest id first */
    int32_t top[TRIT_BACKEND_TOPK];
    int nt = 0;
    float mx = -INFINITY;
    for (int i = 0; i < n_vocab; i++) {
        float v = logits[i];
        if (v > mx) mx = v;
        if (nt == k && !(v > logits[top[nt - 1]])) continue;
        int j = nt < k ? nt++ : k - 1;
        while (j > 0 && v > logits[top[j - 1]]) top[j] = top[j - 1], j--;
        top[j] = i;
    }
    double s = 0;
    for (int i = 0; i < n_vocab; i++) s += exp((double)logits[i] - mx);
    double lse = mx + log(s);
    st->n_top = nt;
    for (int j = 0; j < nt; j++) {
        st->top_id[j] = top[j];
        st->top_logit[j] = logits[top[j]];
        st->top_logprob[j] = (float)(logits[top[j]] - lse);
    }
    st->id = nt > 0 ? top[0] : -1;
}

int trit_trace_name_layer(const char *name) {
    const char *dash = strrchr(name, '-');
    if (!dash || !dash[1]) return -1;
    for (const char *p = dash + 1; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    return atoi(dash + 1);
}

bool trit_trace_name_wanted(const char *name, const char *const *names, size_t n_names) {
    if (n_names == 0 || !names) return true;
    const char *dash = strrchr(name, '-');
    size_t base = trit_trace_name_layer(name) >= 0 ? (size_t)(dash - name) : strlen(name);
    for (size_t i = 0; i < n_names; i++) {
        if (!strcmp(names[i], name)) return true;
        if (strlen(names[i]) == base && !strncmp(names[i], name, base)) return true;
    }
    return false;
}

void trit_trace_stat_compute(trit_trace_stat *st, const float *data, int64_t ne0, int64_t rows) {
    int64_t count = ne0 * rows;
    st->ne0 = ne0;
    st->rows = rows;
    st->count = count;
    st->nan = st->inf = st->zero = 0;
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    int64_t finite = 0;
    for (int64_t i = 0; i < count; i++) {
        float v = data[i];
        if (isnan(v)) {
            st->nan++;
            continue;
        }
        if (isinf(v)) {
            st->inf++;
            continue;
        }
        if (v == 0.0f) st->zero++;
        sum += v;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
        finite++;
    }
    double mean = finite ? sum / (double)finite : 0;
    double ss = 0;
    for (int64_t i = 0; i < count; i++)
        if (isfinite(data[i])) ss += ((double)data[i] - mean) * ((double)data[i] - mean);
    st->mean = mean;
    st->std = finite ? sqrt(ss / (double)finite) : 0;
    st->min = finite ? mn : 0;
    st->max = finite ? mx : 0;
    st->hash = trit_hash64(data, (size_t)count * sizeof(float));
}

void trit_trace_list_add(trit_trace_list *l, const char *name, const float *data, int64_t ne0,
                         int64_t rows) {
    if (!trit_trace_name_wanted(name, l->names, l->n_names) || rows <= 0 || ne0 <= 0) return;
    if (l->last_token_only) {
        data += (rows - 1) * ne0;
        rows = 1;
    }
    /* the same name again (a second prefill chunk): all tokens -> append rows;
     * last token -> the later chunk's last row replaces the earlier one */
    trit_trace_stat *st = NULL;
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].name, name)) st = &l->v[i];
    if (st && l->replace_dups) {
        free(st->data);
        size_t i = (size_t)(st - l->v);
        memmove(st, st + 1, (l->n - i - 1) * sizeof *st);
        l->n--;
        st = NULL;
    }
    if (st && st->ne0 != ne0) st = NULL; /* different shape: keep both */
    if (!st) {
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 64;
            l->v = xrealloc(l->v, l->cap * sizeof *l->v);
        }
        st = &l->v[l->n];
        memset(st, 0, sizeof *st);
        snprintf(st->name, sizeof st->name, "%s", name);
        st->layer = trit_trace_name_layer(name);
        st->order = (int)l->n;
        l->n++;
    } else if (l->last_token_only) {
        free(st->data);
        st->data = NULL;
        st->rows = 0;
    }
    int64_t old = st->rows * ne0;
    st->data = xrealloc(st->data, (size_t)(old + ne0 * rows) * sizeof(float));
    memcpy(st->data + old, data, (size_t)(ne0 * rows) * sizeof(float));
    st->ne0 = ne0;
    st->rows += rows;
}

void trit_trace_list_finish(trit_trace_list *l, trit_trace_stat **stats, size_t *n_stats) {
    for (size_t i = 0; i < l->n; i++) {
        trit_trace_stat *st = &l->v[i];
        st->order = (int)i;
        trit_trace_stat_compute(st, st->data, st->ne0, st->rows);
        if (!l->keep_data) {
            free(st->data);
            st->data = NULL;
        }
    }
    *stats = l->v;
    *n_stats = l->n;
    memset(l, 0, sizeof *l);
}
