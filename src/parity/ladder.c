/* parity/ladder.c — the logit parity ladder: metrics, thresholds, tie logic, the rungs,
 * bisection to the first diverging trace point, determinism. See ladder.h. */
#include "parity/ladder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- thresholds ---------------- */

void trit_ladder_thresholds_default(trit_ladder_thresholds *t) {
    t->first_mse = 1e-6;
    t->first_maxabs = 5e-4;
    t->pos_mse = 2e-6;
    t->pos_kl = 5e-4;
    t->pos_top5 = 0.95;
    t->pos_maxabs = 1e-3;
    t->tie_eps = 0.05;
    t->trace_nmse = 1e-3;
}

#define TH_FIELDS(X)                                                                               \
    X(first_mse)                                                                                   \
    X(first_maxabs) X(pos_mse) X(pos_kl) X(pos_top5) X(pos_maxabs) X(tie_eps) X(trace_nmse)

int trit_ladder_thresholds_parse(const char *s, trit_ladder_thresholds *t, trit_err *err) {
    char *copy = xstrdup(s), *save = NULL;
    int rc = 0;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            rc = trit_fail(err, TRIT_EINVAL, "threshold '%s': expected key=value", kv);
            break;
        }
        *eq = 0;
        char *end;
        double v = strtod(eq + 1, &end);
        if (eq[1] == 0 || *end || !isfinite(v) || v < 0) {
            rc = trit_fail(err, TRIT_EINVAL, "threshold %s=%s: expected a non-negative number", kv,
                           eq + 1);
            break;
        }
        double *f = NULL;
#define X(name)                                                                                    \
    if (!strcmp(kv, #name)) f = &t->name;
        TH_FIELDS(X)
#undef X
        if (!f) {
            rc = trit_fail(err, TRIT_EINVAL,
                           "unknown threshold '%s' (known: first_mse, first_maxabs, pos_mse, "
                           "pos_kl, pos_top5, pos_maxabs, tie_eps, trace_nmse)",
                           kv);
            break;
        }
        if (f == &t->pos_top5 && v > 1) {
            rc = trit_fail(err, TRIT_EINVAL, "threshold pos_top5=%g: a fraction in [0, 1]", v);
            break;
        }
        *f = v;
    }
    free(copy);
    return rc;
}

void trit_ladder_thresholds_print(FILE *out, const trit_ladder_thresholds *t) {
    fprintf(out,
            "thresholds: tokens exact | first logit mse<=%g max-abs<=%g | positions mse<=%g "
            "kl<=%g top5>=%g max-abs<=%g | decode exact (tie: top-2 within %g, cross top-5) | "
            "trace nmse<=%g\n",
            t->first_mse, t->first_maxabs, t->pos_mse, t->pos_kl, t->pos_top5, t->pos_maxabs,
            t->tie_eps, t->trace_nmse);
}

json_t *trit_ladder_thresholds_json(const trit_ladder_thresholds *t) {
    json_t *j = json_object();
#define X(name) json_object_set_new(j, #name, json_real(t->name));
    TH_FIELDS(X)
#undef X
    return j;
}

/* ---------------- metrics ---------------- */

static double lse(const float *x, int n) {
    double mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return mx + log(s);
}

double trit_logits_kl(const float *p, const float *q, int n) {
    double lp = lse(p, n), lq = lse(q, n), kl = 0;
    for (int i = 0; i < n; i++) {
        double a = p[i] - lp, b = q[i] - lq;
        double pa = exp(a);
        if (pa > 0) kl += pa * (a - b);
    }
    return kl < 0 ? 0 : kl; /* rounding can give -1e-17 */
}

static int topk_ids(const float *x, int n, int k, int32_t *ids) {
    int nt = 0;
    for (int i = 0; i < n; i++) {
        float v = x[i];
        if (nt == k && !(v > x[ids[nt - 1]])) continue;
        int j = nt < k ? nt++ : k - 1;
        while (j > 0 && v > x[ids[j - 1]]) ids[j] = ids[j - 1], j--;
        ids[j] = i;
    }
    return nt;
}

double trit_topk_overlap(const float *a, const float *b, int n, int k) {
    if (k <= 0 || n <= 0) return 1;
    int32_t *ta = xmalloc((size_t)k * sizeof *ta), *tb = xmalloc((size_t)k * sizeof *tb);
    int na = topk_ids(a, n, k, ta), nb = topk_ids(b, n, k, tb), common = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (ta[i] == tb[j]) {
                common++;
                break;
            }
    free(ta);
    free(tb);
    return (double)common / (double)(na > 0 ? na : 1);
}

void trit_logits_compare(const float *a, const float *b, int n, trit_logit_cmp *o) {
    memset(o, 0, sizeof *o);
    double se = 0, dot = 0, aa = 0, bb = 0, mx = -1;
    for (int i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        se += d * d;
        dot += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
        double ad = fabs(d);
        if (ad > mx || isnan(d)) mx = isnan(d) ? INFINITY : ad, o->max_abs_idx = i;
    }
    o->mse = n ? se / n : 0;
    o->l2 = sqrt(se);
    o->max_abs = mx < 0 ? 0 : mx;
    o->cosine = (aa > 0 && bb > 0) ? dot / (sqrt(aa) * sqrt(bb)) : (aa == bb ? 1 : 0);
    o->kl = trit_logits_kl(a, b, n);
    o->top5 = trit_topk_overlap(a, b, n, 5);
    int32_t ia, ib;
    topk_ids(a, n, 1, &ia);
    topk_ids(b, n, 1, &ib);
    o->argmax_a = ia;
    o->argmax_b = ib;
}

/* ---------------- tie logic ---------------- */

static double gap_of(const trit_gen_step *s) {
    if (s->n_top < 2) return INFINITY;
    if (!isnan(s->top_logit[0]) && !isnan(s->top_logit[1]))
        return (double)s->top_logit[0] - s->top_logit[1];
    return (double)s->top_logprob[0] - s->top_logprob[1];
}

static bool in_top5(int32_t id, const trit_gen_step *s) {
    for (int i = 0; i < s->n_top && i < 5; i++)
        if (s->top_id[i] == id) return true;
    return false;
}

bool trit_ladder_split_is_tie(const trit_gen_step *a, const trit_gen_step *b, double eps, char *why,
                              size_t why_sz) {
    double ga = gap_of(a), gb = gap_of(b);
    bool near = ga <= eps && gb <= eps;
    bool cross = in_top5(a->id, b) && in_top5(b->id, a);
    if (why) {
        if (near && cross)
            snprintf(why, why_sz,
                     "tie: top-2 gaps %.4g (ref) and %.4g (cand) within %g, each token in the "
                     "other's top-5",
                     ga, gb, eps);
        else if (!near)
            snprintf(why, why_sz, "real split: top-2 gap %.4g (ref) / %.4g (cand) exceeds %g", ga,
                     gb, eps);
        else
            snprintf(why, why_sz,
                     "real split: token %d (ref) / %d (cand) not in the other's "
                     "top-5",
                     a->id, b->id);
    }
    return near && cross;
}

/* ---------------- helpers ---------------- */

static json_t *info_json(const trit_backend_info *in) {
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:s}", "kind", in->kind, "spec",
                     in->spec, "version", in->version, "model_path", in->model_path, "model_sha256",
                     in->model_sha256, "model", in->model_desc, "n_vocab", in->n_vocab, "n_ctx",
                     in->n_ctx, "n_threads", in->n_threads, "numerics", in->numerics);
}

static json_t *ids_json(const int32_t *ids, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static void print_ids(FILE *out, const char *label, const int32_t *ids, size_t n) {
    if (!out) return;
    fprintf(out, "      %s (%zu):", label, n);
    for (size_t i = 0; i < n; i++) fprintf(out, " %d", ids[i]);
    fputc('\n', out);
}

static void print_top(FILE *out, const char *label, const trit_gen_step *s) {
    if (!out) return;
    fprintf(out, "      %s top-5:", label);
    for (int i = 0; i < s->n_top && i < 5; i++)
        fprintf(out, " %d(%s%.4f)", s->top_id[i], isnan(s->top_logit[i]) ? "lp " : "",
                isnan(s->top_logit[i]) ? s->top_logprob[i] : s->top_logit[i]);
    fputc('\n', out);
}

static json_t *step_json(const trit_gen_step *s) {
    json_t *top = json_array();
    for (int i = 0; i < s->n_top && i < 5; i++)
        json_array_append_new(
            top, json_pack("{s:i, s:o, s:f}", "id", s->top_id[i], "logit",
                           isnan(s->top_logit[i]) ? json_null() : json_real(s->top_logit[i]),
                           "logprob", (double)s->top_logprob[i]));
    return json_pack("{s:i, s:o}", "id", s->id, "top5", top);
}

typedef struct rung_ctx {
    FILE *out;
    json_t *rungs;
    int first_fail; /* rung number, -1 none */
    int status;     /* worst: PASS < DIVERGE < SETUP */
    const char *prompt_label;
} rung_ctx;

static const char *rung_names[] = {"preflight",   "tokens",    "shapes",
                                   "first-logit", "positions", "decode"};

/* Record one rung result; status "pass" | "fail" | "unavailable" | "skipped". */
static void rung_done(rung_ctx *rc, int rung, const char *status, json_t *metrics, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));
static void rung_done(rung_ctx *rc, int rung, const char *status, json_t *metrics, const char *fmt,
                      ...) {
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (rc->out)
        fprintf(rc->out, "  rung %d %-11s %-11s %s\n", rung, rung_names[rung],
                !strcmp(status, "pass")   ? "PASS"
                : !strcmp(status, "fail") ? "FAIL"
                                          : status,
                why);
    json_t *r = json_pack("{s:i, s:s, s:s, s:s}", "rung", rung, "name", rung_names[rung], "status",
                          status, "detail", why);
    if (metrics) json_object_set_new(r, "metrics", metrics);
    json_array_append_new(rc->rungs, r);
    int st = !strcmp(status, "pass") || !strcmp(status, "skipped") ? TRIT_LADDER_PASS
             : !strcmp(status, "fail")                             ? TRIT_LADDER_DIVERGE
                                                                   : TRIT_LADDER_SETUP;
    if (st != TRIT_LADDER_PASS && rc->first_fail < 0) rc->first_fail = rung;
    if (st > rc->status) rc->status = st;
}

/* ---------------- bisect ---------------- */

typedef struct pos_eval {
    const trit_ladder_thresholds *th;
    trit_logit_cmp worst;
    size_t worst_pos, first_bad; /* first_bad = SIZE_MAX: none */
} pos_eval;

static bool pos_breaks(const trit_logit_cmp *c, const trit_ladder_thresholds *th) {
    return !(c->mse <= th->pos_mse && c->kl <= th->pos_kl && c->max_abs <= th->pos_maxabs &&
             c->top5 >= th->pos_top5);
}

static int eval_pair(trit_backend *ref, trit_backend *cand, const int32_t *ids, size_t n,
                     float **la, float **lb, int *nv, trit_err *err) {
    int nva = 0, nvb = 0;
    *la = *lb = NULL;
    if (trit_backend_eval(ref, ids, n, la, &nva, err) != 0) {
        trit_err_prefix(err, "ref eval");
        return -1;
    }
    if (trit_backend_eval(cand, ids, n, lb, &nvb, err) != 0) {
        trit_err_prefix(err, "cand eval");
        free(*la);
        *la = NULL;
        return -1;
    }
    if (nva != nvb) {
        free(*la);
        free(*lb);
        *la = *lb = NULL;
        return trit_fail(err, TRIT_EINVAL, "n_vocab differs: ref %d, cand %d", nva, nvb);
    }
    *nv = nva;
    return 0;
}

int trit_ladder_shortest_failing_prefix(trit_backend *ref, trit_backend *cand, const int32_t *ids,
                                        size_t n, const trit_ladder_thresholds *th, size_t *len,
                                        trit_err *err) {
    *len = 0;
    float *la, *lb;
    int nv;
    if (eval_pair(ref, cand, ids, n, &la, &lb, &nv, err) != 0) return -1;
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < n && first == SIZE_MAX; i++) {
        trit_logit_cmp c;
        trit_logits_compare(la + i * nv, lb + i * nv, nv, &c);
        if (pos_breaks(&c, th)) first = i;
    }
    free(la);
    free(lb);
    if (first == SIZE_MAX) return 0;
    /* causality says prefix first+1 fails and prefix first passes; check it rather than
     * assume it (a backend that is not causal would be a finding of its own) */
    size_t L = first + 1;
    if (eval_pair(ref, cand, ids, L, &la, &lb, &nv, err) != 0) return -1;
    trit_logit_cmp c;
    trit_logits_compare(la + first * nv, lb + first * nv, nv, &c);
    bool fails = pos_breaks(&c, th);
    free(la);
    free(lb);
    if (!fails)
        return trit_fail(err, TRIT_EINVAL,
                         "position %zu diverges in the full sequence but not in the prefix of "
                         "length %zu: a backend is not causal",
                         first, L);
    *len = L;
    return 0;
}

/* Trace both on ids[0..n) (all tokens, values kept); first (point, row) beyond the NMSE
 * bound in layer/graph order. */
static int trace_divergence(trit_backend *ref, trit_backend *cand, const int32_t *ids, size_t n,
                            const trit_ladder_thresholds *th, FILE *out, json_t *j, trit_err *err) {
    trit_trace_stat *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    trit_backend_trace_keep_data(ref, true);
    trit_backend_trace_keep_data(cand, true);
    int rc = trit_backend_trace(ref, ids, n, NULL, 0, false, &a, &na, err);
    if (rc == 0) {
        rc = trit_backend_trace(cand, ids, n, NULL, 0, false, &b, &nb, err);
        if (rc) trit_err_prefix(err, "cand trace");
    } else {
        trit_err_prefix(err, "ref trace");
    }
    trit_backend_trace_keep_data(ref, false);
    trit_backend_trace_keep_data(cand, false);
    if (rc != 0) {
        trit_trace_stats_free(a, na);
        return -1;
    }
    trit_trace_sort(a, na);
    size_t common = 0;
    bool found = false;
    for (size_t i = 0; i < na && !found; i++) {
        const trit_trace_stat *pb = NULL;
        for (size_t k = 0; k < nb; k++)
            if (!strcmp(b[k].name, a[i].name)) pb = &b[k];
        if (!pb || pb->count != a[i].count || pb->ne0 != a[i].ne0 || !a[i].data || !pb->data)
            continue;
        common++;
        for (int64_t r = 0; r < a[i].rows; r++) {
            double e =
                trit_nmse(a[i].data + r * a[i].ne0, pb->data + r * a[i].ne0, (size_t)a[i].ne0);
            if (e > th->trace_nmse || isnan(e)) {
                if (out)
                    fprintf(out,
                            "  bisect: first divergence at position %lld, layer %d, point %s "
                            "(nmse %.3g > %g; std ref %.4g cand %.4g)\n",
                            (long long)r, a[i].layer, a[i].name, e, th->trace_nmse, a[i].std,
                            pb->std);
                json_object_set_new(j, "first_divergence",
                                    json_pack("{s:I, s:i, s:s, s:f, s:f, s:f}", "position",
                                              (json_int_t)r, "layer", a[i].layer, "point",
                                              a[i].name, "nmse", isnan(e) ? -1.0 : e, "std_ref",
                                              a[i].std, "std_cand", pb->std));
                found = true;
                break;
            }
        }
    }
    json_object_set_new(j, "trace_points_compared", json_integer((json_int_t)common));
    if (!found) {
        if (out)
            fprintf(out, "  bisect: no common trace point beyond nmse %g (%zu compared)\n",
                    th->trace_nmse, common);
        json_object_set_new(j, "first_divergence", json_null());
    }
    trit_trace_stats_free(a, na);
    trit_trace_stats_free(b, nb);
    return 0;
}

static void do_bisect(trit_backend *ref, trit_backend *cand, const int32_t *ids, size_t n,
                      const trit_ladder_thresholds *th, FILE *out, json_t *pj) {
    json_t *j = json_object();
    trit_err err = {0};
    size_t L = 0;
    if (trit_ladder_shortest_failing_prefix(ref, cand, ids, n, th, &L, &err) != 0) {
        if (out) fprintf(out, "  bisect: %s\n", err.msg);
        json_object_set_new(j, "error", json_string(err.msg));
    } else if (L == 0) {
        if (out) fprintf(out, "  bisect: no prefix breaks the position thresholds\n");
        json_object_set_new(j, "shortest_failing_prefix", json_null());
    } else {
        if (out) fprintf(out, "  bisect: shortest failing prefix: %zu tokens\n", L);
        json_object_set_new(j, "shortest_failing_prefix", json_integer((json_int_t)L));
        if (trace_divergence(ref, cand, ids, L, th, out, j, &err) != 0) {
            if (out) fprintf(out, "  bisect: trace: %s\n", err.msg);
            json_object_set_new(j, "trace_error", json_string(err.msg));
        }
    }
    json_object_set_new(pj, "bisect", j);
}

/* ---------------- the rungs for one prompt ---------------- */

static bool is_bos_only_diff(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    if (na == nb + 1) return !memcmp(a + 1, b, nb * sizeof *a);
    if (nb == na + 1) return !memcmp(b + 1, a, na * sizeof *a);
    return false;
}

static void run_prompt(const trit_ladder_opts *o, trit_backend *ref, trit_backend *cand,
                       const char *prompt, rung_ctx *rc, json_t *pj) {
    const trit_ladder_thresholds *th = &o->th;
    trit_err err = {0};
    int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    float *la = NULL, *lb = NULL;
    trit_gen_step *sa = NULL, *sb = NULL;
    size_t nsa = 0, nsb = 0;
    trit_buf ta = {0}, tb = {0};
    const int32_t *ids = NULL;
    size_t n = 0;
#define STOP_IF_FAILED()                                                                           \
    if (rc->first_fail >= 0 && !o->all) goto done;

    /* rung 1: tokens */
    {
        bool ok = true;
        if (o->chat_template) {
            if (trit_backend_chat_prompt(ref, prompt, &ta, &err) != 0 ||
                trit_backend_chat_prompt(cand, prompt, &tb, &err) != 0) {
                rung_done(rc, 1, "unavailable", NULL, "chat template: %s", err.msg);
                goto done;
            }
        } else {
            trit_buf_puts(&ta, prompt);
            trit_buf_puts(&tb, prompt);
        }
        bool add_special = !o->chat_template;
        int ra = trit_backend_tokenize(ref, ta.p, add_special, true, &ia, &na, &err);
        char ea[512] = "";
        if (ra) snprintf(ea, sizeof ea, "%s", err.msg);
        int rb = trit_backend_tokenize(cand, tb.p, add_special, true, &ib, &nb, &err);
        if (ra && rb) {
            rung_done(rc, 1, "unavailable", NULL, "neither side can tokenize: %s; %s", ea, err.msg);
            goto done;
        }
        json_t *m = json_object();
        if (ra || rb) {
            /* one side cannot tokenize (http without /tokenize): use the other's ids */
            if (ra)
                ia = xmalloc(nb * sizeof *ia), memcpy(ia, ib, nb * sizeof *ia), na = nb;
            else
                ib = xmalloc(na * sizeof *ib), memcpy(ib, ia, na * sizeof *ib), nb = na;
            json_object_set_new(m, "ids", ids_json(ia, na));
            rung_done(rc, 1, "skipped", m,
                      "%s cannot tokenize (%s); using the other side's %zu ids",
                      ra ? "ref" : "cand", ra ? ea : err.msg, na);
        } else {
            json_object_set_new(m, "ref_ids", ids_json(ia, na));
            json_object_set_new(m, "cand_ids", ids_json(ib, nb));
            ok = na == nb && !memcmp(ia, ib, na * sizeof *ia);
            if (ok) {
                rung_done(rc, 1, "pass", m, "%zu ids identical", na);
            } else {
                char why[400];
                size_t k = 0;
                while (k < na && k < nb && ia[k] == ib[k]) k++;
                if (o->chat_template && strcmp(ta.p, tb.p) != 0) {
                    snprintf(why, sizeof why,
                             "chat templates differ: the rendered prompts are "
                             "not the same text");
                    json_object_set_new(m, "ref_text", json_string(ta.p));
                    json_object_set_new(m, "cand_text", json_string(tb.p));
                } else if (is_bos_only_diff(ia, na, ib, nb)) {
                    snprintf(why, sizeof why, "BOS differs: %s adds BOS %d, %s does not",
                             na > nb ? "ref" : "cand", na > nb ? ia[0] : ib[0],
                             na > nb ? "cand" : "ref");
                } else {
                    snprintf(why, sizeof why, "ids differ from index %zu (ref %zu ids, cand %zu)",
                             k, na, nb);
                }
                json_object_set_new(m, "why", json_string(why));
                rung_done(rc, 1, "fail", m, "%s", why);
                print_ids(rc->out, "ref ", ia, na);
                print_ids(rc->out, "cand", ib, nb);
                if (rc->out && o->chat_template && strcmp(ta.p, tb.p) != 0)
                    fprintf(rc->out, "      ref text:  %s\n      cand text: %s\n", ta.p, tb.p);
            }
        }
        json_object_set_new(pj, "n_tokens", json_integer((json_int_t)na));
        STOP_IF_FAILED();
        ids = ia; /* later rungs use the reference's ids on both sides */
        n = na;
    }

    /* rung 2: shapes */
    {
        const trit_backend_info *A = trit_backend_describe(ref), *B = trit_backend_describe(cand);
        json_t *m =
            json_pack("{s:i, s:i, s:i, s:i, s:I, s:i}", "ref_n_vocab", A->n_vocab, "cand_n_vocab",
                      B->n_vocab, "ref_n_ctx", A->n_ctx, "cand_n_ctx", B->n_ctx, "prompt_tokens",
                      (json_int_t)n, "max_tokens", o->max_tokens);
        size_t need = n + (size_t)o->max_tokens;
        if (n == 0) {
            rung_done(rc, 2, "fail", m, "the prompt tokenizes to 0 ids");
        } else if (A->n_vocab && B->n_vocab && A->n_vocab != B->n_vocab) {
            rung_done(rc, 2, "fail", m, "n_vocab differs: ref %d, cand %d", A->n_vocab, B->n_vocab);
        } else if ((A->n_ctx && need > (size_t)A->n_ctx) || (B->n_ctx && need > (size_t)B->n_ctx)) {
            rung_done(rc, 2, "fail", m, "prompt %zu + %d tokens do not fit n_ctx (ref %d, cand %d)",
                      n, o->max_tokens, A->n_ctx, B->n_ctx);
        } else {
            rung_done(rc, 2, "pass", m, "n_vocab %d/%d, prompt %zu tokens, n_ctx %d/%d", A->n_vocab,
                      B->n_vocab, n, A->n_ctx, B->n_ctx);
        }
        if (n == 0) goto done;
        STOP_IF_FAILED();
    }

    /* rungs 3 and 4: logits */
    int nv = 0;
    if (eval_pair(ref, cand, ids, n, &la, &lb, &nv, &err) != 0) {
        rung_done(rc, 3, err.code == TRIT_EUNAVAIL ? "unavailable" : "fail", NULL, "%s", err.msg);
        rung_done(rc, 4, err.code == TRIT_EUNAVAIL ? "unavailable" : "fail", NULL, "%s", err.msg);
        STOP_IF_FAILED();
    } else {
        trit_logit_cmp c;
        trit_logits_compare(la, lb, nv, &c);
        json_t *m = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:i}", "mse", c.mse, "max_abs",
                              c.max_abs, "cosine", c.cosine, "l2", c.l2, "kl", c.kl, "top5", c.top5,
                              "argmax_ref", c.argmax_a, "argmax_cand", c.argmax_b);
        bool ok = c.mse <= th->first_mse && c.max_abs <= th->first_maxabs;
        rung_done(rc, 3, ok ? "pass" : "fail", m,
                  "mse %.3g (<=%g) max-abs %.3g (<=%g, at id %d) cosine %.9f l2 %.4g", c.mse,
                  th->first_mse, c.max_abs, th->first_maxabs, c.max_abs_idx, c.cosine, c.l2);
        bool stop3 = rc->first_fail >= 0 && !o->all;
        if (!stop3) {
            trit_logit_cmp w = {0};
            double top5_sum = 0, top5_min = 1, wmse = -1;
            size_t worst = 0, first_bad = SIZE_MAX;
            double max_kl = 0, max_abs = 0, max_mse = 0;
            json_t *per = json_array();
            for (size_t i = 0; i < n; i++) {
                trit_logit_cmp p;
                trit_logits_compare(la + i * nv, lb + i * nv, nv, &p);
                top5_sum += p.top5;
                if (p.top5 < top5_min) top5_min = p.top5;
                if (p.kl > max_kl) max_kl = p.kl;
                if (p.max_abs > max_abs) max_abs = p.max_abs;
                if (p.mse > max_mse) max_mse = p.mse;
                /* worst position: the largest mse relative to its bound, and kl likewise */
                double score = TRIT_MAX(p.mse / th->pos_mse, p.kl / th->pos_kl);
                if (score > wmse || isnan(score)) wmse = score, worst = i, w = p;
                bool bad =
                    !(p.mse <= th->pos_mse && p.kl <= th->pos_kl && p.max_abs <= th->pos_maxabs);
                if (bad && first_bad == SIZE_MAX) first_bad = i;
                json_array_append_new(per, json_pack("{s:f, s:f, s:f, s:f}", "mse", p.mse, "kl",
                                                     p.kl, "top5", p.top5, "max_abs", p.max_abs));
            }
            double top5_mean = top5_sum / (double)n;
            bool ok4 = max_mse <= th->pos_mse && max_kl <= th->pos_kl &&
                       max_abs <= th->pos_maxabs && top5_mean >= th->pos_top5;
            json_t *m4 =
                json_pack("{s:f, s:f, s:f, s:f, s:f, s:I, s:o}", "max_mse", max_mse, "max_kl",
                          max_kl, "max_abs", max_abs, "top5_mean", top5_mean, "top5_min", top5_min,
                          "worst_position", (json_int_t)worst, "per_position", per);
            if (first_bad != SIZE_MAX)
                json_object_set_new(m4, "first_failing_position",
                                    json_integer((json_int_t)first_bad));
            rung_done(rc, 4, ok4 ? "pass" : "fail", m4,
                      "%zu positions: max mse %.3g (<=%g) max kl %.3g (<=%g) top5 mean %.3f "
                      "(>=%g, min %.2f) max-abs %.3g (<=%g); worst position %zu (mse %.3g kl "
                      "%.3g)",
                      n, max_mse, th->pos_mse, max_kl, th->pos_kl, top5_mean, th->pos_top5,
                      top5_min, max_abs, th->pos_maxabs, worst, w.mse, w.kl);
        } else {
            rung_done(rc, 4, "skipped", NULL, "after a failure (use --all to run it)");
        }
        if (o->bisect && rc->first_fail >= 3) do_bisect(ref, cand, ids, n, th, rc->out, pj);
        STOP_IF_FAILED();
    }

    /* rung 5: greedy decode */
    {
        int r = trit_backend_generate_greedy(ref, ids, n, o->max_tokens, &sa, &nsa, &err);
        if (r == 0) {
            r = trit_backend_generate_greedy(cand, ids, n, o->max_tokens, &sb, &nsb, &err);
            if (r) trit_err_prefix(&err, "cand");
        } else {
            trit_err_prefix(&err, "ref");
        }
        if (r != 0) {
            rung_done(rc, 5, err.code == TRIT_EUNAVAIL ? "unavailable" : "fail", NULL, "%s",
                      err.msg);
            goto done;
        }
        size_t k = 0;
        while (k < nsa && k < nsb && sa[k].id == sb[k].id) k++;
        json_t *m = json_object();
        json_t *ga = json_array(), *gb = json_array();
        for (size_t i = 0; i < nsa; i++) json_array_append_new(ga, json_integer(sa[i].id));
        for (size_t i = 0; i < nsb; i++) json_array_append_new(gb, json_integer(sb[i].id));
        json_object_set_new(m, "ref_tokens", ga);
        json_object_set_new(m, "cand_tokens", gb);
        if (k == nsa && k == nsb) {
            rung_done(rc, 5, "pass", m, "%zu/%d greedy tokens identical", k, o->max_tokens);
        } else if (k == nsa || k == nsb) {
            rung_done(rc, 5, "fail", m,
                      "lengths differ: ref %zu tokens, cand %zu (one stopped "
                      "early)",
                      nsa, nsb);
        } else {
            char why[300];
            bool tie = trit_ladder_split_is_tie(&sa[k], &sb[k], th->tie_eps, why, sizeof why);
            json_object_set_new(m, "split_step", json_integer((json_int_t)k));
            json_object_set_new(m, "tie", json_boolean(tie));
            json_object_set_new(m, "ref_step", step_json(&sa[k]));
            json_object_set_new(m, "cand_step", step_json(&sb[k]));
            /* a tie is reported, and passes: both sides' top-2 were within eps */
            rung_done(rc, 5, tie ? "pass" : "fail", m,
                      "split at step %zu: ref %d vs cand %d after %zu identical; %s", k, sa[k].id,
                      sb[k].id, k, why);
            print_top(rc->out, "ref ", &sa[k]);
            print_top(rc->out, "cand", &sb[k]);
            if (!tie && o->bisect) {
                /* the sequence up to the split, as the reference produced it */
                size_t nn = n + k + 1;
                int32_t *seq = xmalloc(nn * sizeof *seq);
                memcpy(seq, ids, n * sizeof *seq);
                for (size_t i = 0; i < k; i++) seq[n + i] = sa[i].id;
                seq[nn - 1] = sa[k].id;
                do_bisect(ref, cand, seq, nn - 1 > n ? nn - 1 : n, th, rc->out, pj);
                free(seq);
            }
        }
    }
done:
#undef STOP_IF_FAILED
    free(ia);
    free(ib);
    free(la);
    free(lb);
    free(sa);
    free(sb);
    trit_buf_free(&ta);
    trit_buf_free(&tb);
}

static json_t *receipt_new(const trit_ladder_opts *o, const char *mode) {
    char ts[32];
    trit_iso8601(trit_wall_s(), ts);
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:s, s:b}", "tool", "trit ladder", "mode",
                     mode, "trit_version", TRIT_VERSION, "time", ts, "thresholds",
                     trit_ladder_thresholds_json(&o->th), "max_tokens", o->max_tokens, "template",
                     o->chat_template ? "chat" : "raw", "all", o->all);
}

static const char *status_name(int st) {
    return st == TRIT_LADDER_PASS      ? "pass"
           : st == TRIT_LADDER_DIVERGE ? "divergence"
                                       : "setup-failure";
}

int trit_ladder_run(const trit_ladder_opts *o, FILE *out, json_t **receipt) {
    json_t *r = receipt_new(o, "ladder");
    json_t *prompts = json_array();
    json_object_set_new(r, "prompts", prompts);
    rung_ctx rc = {.out = out, .first_fail = -1, .status = TRIT_LADDER_PASS};
    if (out) {
        fprintf(out, "trit ladder: ref %s | cand %s | template %s | %d decode steps\n", o->ref,
                o->cand, o->chat_template ? "chat" : "raw", o->max_tokens);
        trit_ladder_thresholds_print(out, &o->th);
    }
    /* rung 0: preflight */
    rc.rungs = json_array();
    json_object_set_new(r, "preflight", rc.rungs);
    trit_err err = {0};
    trit_backend *ref = trit_backend_open(o->ref, &o->bopts, &err);
    trit_backend *cand = NULL;
    if (!ref) {
        rung_done(&rc, 0, "setup-failure", NULL, "ref: %s", err.msg);
    } else {
        json_object_set_new(r, "ref", info_json(trit_backend_describe(ref)));
        cand = trit_backend_open(o->cand, &o->bopts, &err);
        if (!cand) {
            rung_done(&rc, 0, "setup-failure", NULL, "cand: %s", err.msg);
        } else {
            const trit_backend_info *A = trit_backend_describe(ref),
                                    *B = trit_backend_describe(cand);
            json_object_set_new(r, "cand", info_json(B));
            bool same = A->model_sha256[0] && B->model_sha256[0] &&
                        !strcmp(A->model_sha256, B->model_sha256);
            json_t *m = json_pack("{s:b}", "same_model_file", same);
            rung_done(&rc, 0, "pass", m, "both loaded; %s",
                      same ? "same model file" : "model files differ (or a sha256 is unknown)");
            if (out) {
                fprintf(out, "      ref:  %s | %s | sha256 %.16s | %s\n", A->version, A->model_desc,
                        A->model_sha256[0] ? A->model_sha256 : "n/a", A->numerics);
                fprintf(out, "      cand: %s | %s | sha256 %.16s | %s\n", B->version, B->model_desc,
                        B->model_sha256[0] ? B->model_sha256 : "n/a", B->numerics);
            }
        }
    }
    if (ref && cand) {
        for (size_t p = 0; p < o->n_prompts; p++) {
            json_t *pj = json_pack("{s:s}", "prompt", o->prompts[p]);
            rc.rungs = json_array();
            json_object_set_new(pj, "rungs", rc.rungs);
            json_array_append_new(prompts, pj);
            if (out)
                fprintf(out, "prompt %zu/%zu: %.60s%s\n", p + 1, o->n_prompts, o->prompts[p],
                        strlen(o->prompts[p]) > 60 ? "..." : "");
            int before = rc.first_fail;
            rc.first_fail = -1;
            run_prompt(o, ref, cand, o->prompts[p], &rc, pj);
            if (rc.first_fail >= 0) {
                json_object_set_new(pj, "first_failing_rung", json_integer(rc.first_fail));
                if (before < 0 && !json_object_get(r, "first_failure"))
                    json_object_set_new(r, "first_failure",
                                        json_pack("{s:I, s:i, s:s}", "prompt", (json_int_t)p,
                                                  "rung", rc.first_fail, "name",
                                                  rung_names[rc.first_fail]));
                if (!o->all) break;
            } else {
                rc.first_fail = before;
            }
        }
    }
    json_object_set_new(r, "result", json_string(status_name(rc.status)));
    json_object_set_new(r, "exit_code", json_integer(rc.status));
    if (out) {
        json_t *ff = json_object_get(r, "first_failure");
        if (rc.status == TRIT_LADDER_PASS)
            fprintf(out, "RESULT: PASS (every rung, %zu prompt%s)\n", o->n_prompts,
                    o->n_prompts == 1 ? "" : "s");
        else if (ff)
            fprintf(out, "RESULT: %s — first failing rung %d (%s) on prompt %lld\n",
                    rc.status == TRIT_LADDER_DIVERGE ? "DIVERGENCE" : "SETUP FAILURE",
                    (int)json_integer_value(json_object_get(ff, "rung")),
                    json_string_value(json_object_get(ff, "name")),
                    (long long)json_integer_value(json_object_get(ff, "prompt")) + 1);
        else
            fprintf(out, "RESULT: SETUP FAILURE at rung 0 (preflight)\n");
    }
    trit_backend_close(ref);
    trit_backend_close(cand);
    if (receipt)
        *receipt = r;
    else
        json_decref(r);
    return rc.status;
}

/* ---------------- determinism ---------------- */

int trit_ladder_determinism(const trit_ladder_opts *o, FILE *out, json_t **receipt) {
    json_t *r = receipt_new(o, "determinism");
    json_object_set_new(r, "spec", json_string(o->ref));
    trit_err err = {0};
    int status = TRIT_LADDER_PASS;
    trit_backend *a = trit_backend_open(o->ref, &o->bopts, &err), *b = NULL;
    if (a) b = trit_backend_open(o->ref, &o->bopts, &err);
    if (!a || !b) {
        if (out) fprintf(out, "determinism: setup failure: %s\n", err.msg);
        json_object_set_new(r, "error", json_string(err.msg));
        status = TRIT_LADDER_SETUP;
        goto done;
    }
    json_object_set_new(r, "backend", info_json(trit_backend_describe(a)));
    json_t *res = json_array();
    json_object_set_new(r, "prompts", res);
    for (size_t p = 0; p < o->n_prompts && status == TRIT_LADDER_PASS; p++) {
        int32_t *ids = NULL;
        size_t n = 0;
        float *l1 = NULL, *l2 = NULL, *l3 = NULL;
        int v1 = 0, v2 = 0, v3 = 0;
        if (trit_backend_tokenize(a, o->prompts[p], true, true, &ids, &n, &err) != 0 ||
            trit_backend_eval(a, ids, n, &l1, &v1, &err) != 0 ||
            trit_backend_eval(b, ids, n, &l2, &v2, &err) != 0 ||
            trit_backend_eval(a, ids, n, &l3, &v3, &err) != 0) {
            if (out) fprintf(out, "determinism: %s\n", err.msg);
            json_object_set_new(r, "error", json_string(err.msg));
            status = TRIT_LADDER_SETUP;
        } else {
            size_t cnt = n * (size_t)v1;
            double mx12 = 0, mx13 = 0;
            for (size_t i = 0; i < cnt; i++) {
                mx12 = TRIT_MAX(mx12, fabs((double)l1[i] - l2[i]));
                mx13 = TRIT_MAX(mx13, fabs((double)l1[i] - l3[i]));
            }
            bool same12 = !memcmp(l1, l2, cnt * sizeof(float));
            bool same13 = !memcmp(l1, l3, cnt * sizeof(float));
            json_array_append_new(res, json_pack("{s:s, s:I, s:b, s:b, s:f, s:f}", "prompt",
                                                 o->prompts[p], "n_tokens", (json_int_t)n,
                                                 "two_instances_identical", same12,
                                                 "same_instance_identical", same13,
                                                 "max_abs_instances", mx12, "max_abs_rerun", mx13));
            if (out)
                fprintf(out,
                        "prompt %zu: %zu positions x %d logits: two instances %s (max-abs %.3g), "
                        "re-run %s (max-abs %.3g)\n",
                        p + 1, n, v1, same12 ? "bit-identical" : "DIFFER", mx12,
                        same13 ? "bit-identical" : "DIFFER", mx13);
            if (!same12 || !same13) status = TRIT_LADDER_DIVERGE;
        }
        free(ids);
        free(l1);
        free(l2);
        free(l3);
    }
    if (out)
        fprintf(out, "RESULT: %s\n",
                status == TRIT_LADDER_PASS      ? "PASS (deterministic)"
                : status == TRIT_LADDER_DIVERGE ? "NOT DETERMINISTIC"
                                                : "SETUP FAILURE");
done:
    json_object_set_new(r, "result", json_string(status_name(status)));
    json_object_set_new(r, "exit_code", json_integer(status));
    trit_backend_close(a);
    trit_backend_close(b);
    if (receipt)
        *receipt = r;
    else
        json_decref(r);
    return status;
}
