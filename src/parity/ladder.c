/* parity/ladder.c — the logit parity ladder: metrics, thresholds, tie logic, the rungs,
 * bisection to the first diverging trace point, determinism. See ladder.h. */
#include "parity/ladder.h"

#include "parity/compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    t->topn_kl = 5e-4;
    t->topn_first_maxabs = 1e-3;
    t->topn_maxabs = 2e-3;
    t->topn_top5 = 0.95;
    t->topn_cover = 0.9;
}

#define TH_FIELDS(X)                                                                               \
    X(first_mse)                                                                                   \
    X(first_maxabs)                                                                                \
    X(pos_mse)                                                                                     \
    X(pos_kl)                                                                                      \
    X(pos_top5)                                                                                    \
    X(pos_maxabs)                                                                                  \
    X(tie_eps)                                                                                     \
    X(trace_nmse) X(topn_kl) X(topn_first_maxabs) X(topn_maxabs) X(topn_top5) X(topn_cover)

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
                           "pos_kl, pos_top5, pos_maxabs, tie_eps, trace_nmse, topn_kl, "
                           "topn_first_maxabs, topn_maxabs, topn_top5, topn_cover)",
                           kv);
            break;
        }
        bool fraction = f == &t->pos_top5 || f == &t->topn_top5 || f == &t->topn_cover;
        if (fraction && v > 1) {
            rc = trit_fail(err, TRIT_EINVAL, "threshold %s=%g: a fraction in [0, 1]", kv, v);
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
    fprintf(out,
            "  on top-N data: kl over the shared ids + rest bucket<=%g | first position max-abs "
            "logprob<=%g | positions max-abs logprob<=%g, top5 mean>=%g | cover>=%g at every "
            "position\n",
            t->topn_kl, t->topn_first_maxabs, t->topn_maxabs, t->topn_top5, t->topn_cover);
}

json_t *trit_ladder_thresholds_json(const trit_ladder_thresholds *t) {
    json_t *j = json_object();
#define X(name) json_object_set_new(j, #name, json_real(t->name));
    TH_FIELDS(X)
#undef X
    return j;
}

/* ---------------- metrics ---------------- */

/* KL(softmax(p) || softmax(q)) in double, with the project's one log-softmax (base.h). */
double trit_logits_kl(const float *p, const float *q, int n) {
    double lp = trit_logsumexp(p, n), lq = trit_logsumexp(q, n), kl = 0;
    for (int i = 0; i < n; i++) {
        double a = p[i] - lp, b = q[i] - lq;
        double pa = exp(a);
        /* p = 0 contributes nothing (and would make 0 * inf a NaN) */
        if (pa > 0) kl += pa * (a - b);
    }
    return kl < 0 ? 0 : kl; /* rounding can give -1e-17 */
}

double trit_topk_overlap(const float *a, const float *b, int n, int k) {
    if (k <= 0 || n <= 0) return 1;
    int32_t *ta = xmalloc((size_t)k * sizeof *ta), *tb = xmalloc((size_t)k * sizeof *tb);
    int na = trit_top_k(a, n, k, ta), nb = trit_top_k(b, n, k, tb), common = 0;
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
    int32_t ia = -1, ib = -1;
    trit_top_k(a, n, 1, &ia);
    trit_top_k(b, n, 1, &ib);
    o->argmax_a = ia;
    o->argmax_b = ib;
}

/* ---------------- metrics of top-N lists ---------------- */

/* Index of id in the first n entries of p, -1 when absent. */
static int topn_find(const trit_pos_topn *p, int n, int32_t id) {
    for (int i = 0; i < n; i++)
        if (p->top_id[i] == id) return i;
    return -1;
}

/* Log of sum exp over the entries of p listed in idx[0..k), in double after subtracting
 * the largest (no overflow or underflow for any finite logprobs). */
static double topn_lse(const trit_pos_topn *p, const int *idx, int k) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < k; i++) mx = TRIT_MAX(mx, p->top_logprob[idx[i]]);
    for (int i = 0; i < k; i++) s += exp(p->top_logprob[idx[i]] - mx);
    return mx + log(s);
}

/* The metrics of ladder.h's trit_topn_cmp: both lists cut to the N both gave, S = the ids in
 * both; the KL is backend.h's trit_pos_topn_kld on the cut lists (the one top-N KL of the
 * project, also trit ppl's), the rest computed here. */
void trit_topn_compare(const trit_pos_topn *a, const trit_pos_topn *b, trit_topn_cmp *o) {
    memset(o, 0, sizeof *o);
    int n = TRIT_MIN(a->n_top, b->n_top);
    o->n = n;
    o->argmax_a = a->n_top > 0 ? a->top_id[0] : -1;
    o->argmax_b = b->n_top > 0 ? b->top_id[0] : -1;
    o->max_abs_id = -1;
    int ia[TRIT_BACKEND_TOPN_MAX], ib[TRIT_BACKEND_TOPN_MAX], all[TRIT_BACKEND_TOPN_MAX];
    int k = 0;
    for (int i = 0; i < n; i++) {
        all[i] = i;
        int j = topn_find(b, n, a->top_id[i]);
        if (j < 0) continue;
        ia[k] = i, ib[k] = j, k++;
    }
    o->shared = k;
    trit_pos_topn ca = *a, cb = *b;
    ca.n_top = cb.n_top = n;
    o->kl = trit_pos_topn_kld(&ca, &cb, NULL);
    if (k == 0) {
        o->max_abs = INFINITY; /* nothing to compare entry by entry; cover is 0 */
        return;
    }
    /* each side's mass on S, absolute and as a share of its own n entries */
    double lse_a = topn_lse(a, ia, k), lse_b = topn_lse(b, ib, k);
    o->mass_a = exp(lse_a);
    o->mass_b = exp(lse_b);
    double own_a = topn_lse(a, all, n), own_b = topn_lse(b, all, n);
    o->cover = TRIT_MIN(exp(lse_a - own_a), exp(lse_b - own_b));
    double mx = -1;
    for (int s = 0; s < k; s++) {
        double d = fabs(a->top_logprob[ia[s]] - b->top_logprob[ib[s]]);
        if (d > mx || isnan(d)) mx = isnan(d) ? INFINITY : d, o->max_abs_id = a->top_id[ia[s]];
    }
    o->max_abs = mx;
    /* top-5 overlap of the cut lists (most likely first) */
    int t5 = TRIT_MIN(5, n), common = 0;
    for (int i = 0; i < t5; i++) common += topn_find(b, t5, a->top_id[i]) >= 0;
    o->top5 = t5 > 0 ? (double)common / t5 : 0;
}

/* One position's list against ladder.h's well-formedness rules; msg gets the first problem. */
static bool topn_entry_ok(const trit_pos_topn *e, int32_t want_next, int n_vocab, char *msg,
                          size_t msg_sz) {
    const double tol = 1e-6; /* logprobs printed by a server may round a 0 up slightly */
    double mass = 0;
    if (e->next_id != want_next) {
        snprintf(msg, msg_sz, "scored next token %d, the prompt's is %d", e->next_id, want_next);
        return false;
    }
    if (want_next >= 0 && !(isfinite(e->next_logprob) && e->next_logprob <= tol)) {
        snprintf(msg, msg_sz, "log-probability of the next token %d is %g", want_next,
                 e->next_logprob);
        return false;
    }
    for (int i = 0; i < e->n_top; i++) {
        double lp = e->top_logprob[i];
        int32_t id = e->top_id[i];
        if (!isfinite(lp) || lp > tol) {
            snprintf(msg, msg_sz, "entry %d (id %d) has log-probability %g", i, id, lp);
            return false;
        }
        if (i > 0 && lp > e->top_logprob[i - 1] + tol) {
            snprintf(msg, msg_sz, "entries out of order: %d (%g) after %d (%g)", id, lp,
                     e->top_id[i - 1], e->top_logprob[i - 1]);
            return false;
        }
        if (id < 0 || (n_vocab > 0 && id >= n_vocab)) {
            snprintf(msg, msg_sz, "token id %d outside the vocabulary of %d", id, n_vocab);
            return false;
        }
        if (topn_find(e, i, id) >= 0) {
            snprintf(msg, msg_sz, "token id %d listed twice", id);
            return false;
        }
        if (id == want_next && fabs(lp - e->next_logprob) > 1e-4) {
            snprintf(msg, msg_sz, "next token %d: log-probability %g, but %g in the top-N list", id,
                     e->next_logprob, lp);
            return false;
        }
        mass += exp(lp);
    }
    if (mass > 1 + 1e-4) {
        snprintf(msg, msg_sz, "the top-%d probabilities sum to %.6f > 1", e->n_top, mass);
        return false;
    }
    return true;
}

int trit_topn_check(const trit_pos_topn *pos, size_t n, const int32_t *ids, size_t n_ids,
                    size_t from, int n_vocab, int min_top, trit_err *err) {
    int most = 0;
    for (size_t i = 0; i < n; i++) most = TRIT_MAX(most, pos[i].n_top);
    for (size_t i = 0; i < n; i++) {
        const trit_pos_topn *e = &pos[i];
        size_t p = from + i;
        char msg[256] = "";
        bool ok = false;
        if (e->n_top < min_top || e->n_top > TRIT_BACKEND_TOPN_MAX) {
            snprintf(msg, sizeof msg, "%d top log-probabilities (need %d..%d)", e->n_top, min_top,
                     TRIT_BACKEND_TOPN_MAX);
        } else if (e->n_top < most) {
            /* a server that clamps N clamps it everywhere: fewer here is a short reply */
            snprintf(msg, sizeof msg, "%d top log-probabilities where other positions have %d",
                     e->n_top, most);
        } else {
            ok = topn_entry_ok(e, p + 1 < n_ids ? ids[p + 1] : -1, n_vocab, msg, sizeof msg);
        }
        if (!ok)
            return trit_fail(err, TRIT_EFORMAT,
                             "short or malformed log-probabilities at position %zu (scoring "
                             "the prefix of %zu token%s): %s",
                             p, p + 1, p == 0 ? "" : "s", msg);
    }
    return 0;
}

/* ---------------- tie logic ---------------- */

/* top-1 minus top-2 at a decode step: logits when the backend gave them, else logprobs (the
 * same difference); NAN when fewer than two alternatives are known */
static double step_gap(const trit_gen_step *s) {
    if (s->n_top < 2) return NAN;
    if (!isnan(s->top_logit[0]) && !isnan(s->top_logit[1]))
        return (double)s->top_logit[0] - s->top_logit[1];
    return (double)s->top_logprob[0] - s->top_logprob[1];
}

static bool in_top5(int32_t id, const trit_gen_step *s) {
    for (int i = 0; i < s->n_top && i < 5; i++)
        if (s->top_id[i] == id) return true;
    return false;
}

trit_tie trit_ladder_split_tie(const trit_gen_step *a, const trit_gen_step *b, double eps,
                               char *why, size_t why_sz) {
    double ga = step_gap(a), gb = step_gap(b);
    bool crossed = in_top5(a->id, b) && in_top5(b->id, a);
    trit_tie t = trit_tie_rule(ga, gb, crossed, eps);
    if (!why) return t;
    /* one sentence per outcome, naming the numbers that decided it */
    if (t == TRIT_TIE_UNKNOWN)
        snprintf(why, why_sz,
                 "unclassified split: a side gave fewer than two alternatives (gen1 %d, gen2 %d)",
                 a->n_top, b->n_top);
    else if (t == TRIT_TIE_TIE)
        snprintf(why, why_sz,
                 "tie: top-2 gaps %.4g (gen1) and %.4g (gen2) within %g, each token in the "
                 "other's top-5",
                 ga, gb, eps);
    else if (!crossed)
        snprintf(why, why_sz, "real split: token %d (gen1) / %d (gen2) not in the other's top-5",
                 a->id, b->id);
    else
        snprintf(why, why_sz, "real split: top-2 gap %.4g (gen1) / %.4g (gen2) exceeds %g", ga, gb,
                 eps);
    return t;
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

/* The outcome of one rung. */
typedef enum rung_status {
    RUNG_PASS,
    RUNG_FAIL,          /* ran, and the two sides disagree beyond the thresholds */
    RUNG_UNAVAILABLE,   /* a backend cannot provide what the rung needs */
    RUNG_SKIPPED,       /* not run (after a failure, or replaced by the other side's data) */
    RUNG_SETUP_FAILURE, /* a backend did not load */
} rung_status;

static const char *rung_status_name(rung_status st) {
    static const char *names[] = {"pass", "fail", "unavailable", "skipped", "setup-failure"};
    return names[st];
}

/* what a rung's outcome does to the run's exit status */
static trit_ladder_status rung_effect(rung_status st) {
    switch (st) {
    case RUNG_PASS:
        return TRIT_LADDER_PASS;
    case RUNG_FAIL:
        return TRIT_LADDER_DIVERGE;
    case RUNG_SKIPPED:
        return TRIT_LADDER_INCOMPLETE;
    case RUNG_UNAVAILABLE:
    case RUNG_SETUP_FAILURE:
        break;
    }
    return TRIT_LADDER_SETUP;
}

/* severity order for "the worst status wins": SETUP > DIVERGE > INCOMPLETE > PASS */
static int severity(trit_ladder_status st) {
    switch (st) {
    case TRIT_LADDER_PASS:
        return 0;
    case TRIT_LADDER_INCOMPLETE:
        return 1;
    case TRIT_LADDER_DIVERGE:
        return 2;
    case TRIT_LADDER_SETUP:
        break;
    }
    return 3;
}

const char *trit_ladder_status_name(trit_ladder_status st) {
    switch (st) {
    case TRIT_LADDER_PASS:
        return "pass";
    case TRIT_LADDER_DIVERGE:
        return "divergence";
    case TRIT_LADDER_INCOMPLETE:
        return "incomplete";
    case TRIT_LADDER_SETUP:
        break;
    }
    return "setup-failure";
}

typedef struct rung_ctx {
    FILE *out;
    json_t *rungs;
    int first_fail;            /* rung number of this prompt's first failure, -1 none */
    int first_skip;            /* rung number of this prompt's first skipped rung, -1 none */
    trit_ladder_status status; /* worst so far over every prompt */
} rung_ctx;

static const char *rung_names[] = {"preflight",   "tokens",    "shapes",
                                   "first-logit", "positions", "decode"};

/* Record one rung result: a line of text, a receipt entry (with the count of what it
 * compared: ids, values, positions or tokens), and its effect on the status. A rung that
 * compared nothing (count 0) cannot pass: it is recorded as skipped. count < 0: the rung
 * did not get as far as comparing. */
static void rung_done(rung_ctx *rc, int rung, rung_status st, long count, json_t *metrics,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void rung_done(rung_ctx *rc, int rung, rung_status st, long count, json_t *metrics,
                      const char *fmt, ...) {
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (st == RUNG_PASS && count == 0) {
        st = RUNG_SKIPPED;
        snprintf(why + strlen(why), sizeof why - strlen(why), " — but compared nothing");
    }
    static const char *shown[] = {"PASS", "FAIL", "unavailable", "SKIPPED", "setup-failure"};
    if (rc->out)
        fprintf(rc->out, "  rung %d %-11s %-11s %s\n", rung, rung_names[rung], shown[st], why);
    json_t *r = json_pack("{s:i, s:s, s:s, s:s}", "rung", rung, "name", rung_names[rung], "status",
                          rung_status_name(st), "detail", why);
    json_object_set_new(r, "compared", count < 0 ? json_null() : json_integer(count));
    if (metrics) json_object_set_new(r, "metrics", metrics);
    json_array_append_new(rc->rungs, r);
    trit_ladder_status eff = rung_effect(st);
    /* a skipped rung is no failure (the run goes on) but keeps the result from PASS */
    if (st == RUNG_SKIPPED && rc->first_skip < 0) rc->first_skip = rung;
    if (st != RUNG_PASS && st != RUNG_SKIPPED && rc->first_fail < 0) rc->first_fail = rung;
    if (severity(eff) > severity(rc->status)) rc->status = eff;
}

/* A rung that could not get its data from a side: unavailable when the side lacks the
 * capability, else a setup failure (a request failed, timed out or was answered badly). */
static rung_status err_status(const trit_err *err) {
    return err->code == TRIT_EUNAVAIL ? RUNG_UNAVAILABLE : RUNG_SETUP_FAILURE;
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

static int eval_pair(trit_backend *gen1, trit_backend *gen2, const int32_t *ids, size_t n,
                     float **la, float **lb, int *nv, trit_err *err) {
    int nva = 0, nvb = 0;
    *la = *lb = NULL;
    if (trit_backend_eval(gen1, ids, n, la, &nva, err) != 0) {
        trit_err_prefix(err, "ref eval");
        return -1;
    }
    if (trit_backend_eval(gen2, ids, n, lb, &nvb, err) != 0) {
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

int trit_ladder_shortest_failing_prefix(trit_backend *gen1, trit_backend *gen2, const int32_t *ids,
                                        size_t n, const trit_ladder_thresholds *th, size_t *len,
                                        trit_err *err) {
    *len = 0;
    float *la, *lb;
    int nv;
    if (eval_pair(gen1, gen2, ids, n, &la, &lb, &nv, err) != 0) return -1;
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
    if (eval_pair(gen1, gen2, ids, L, &la, &lb, &nv, err) != 0) return -1;
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
static int trace_divergence(trit_backend *gen1, trit_backend *gen2, const int32_t *ids, size_t n,
                            const trit_ladder_thresholds *th, FILE *out, json_t *j, trit_err *err) {
    trit_trace_stat *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    trit_backend_trace_keep_data(gen1, true);
    trit_backend_trace_keep_data(gen2, true);
    int rc = trit_backend_trace(gen1, ids, n, NULL, 0, false, &a, &na, err);
    if (rc == 0) {
        rc = trit_backend_trace(gen2, ids, n, NULL, 0, false, &b, &nb, err);
        if (rc) trit_err_prefix(err, "cand trace");
    } else {
        trit_err_prefix(err, "ref trace");
    }
    trit_backend_trace_keep_data(gen1, false);
    trit_backend_trace_keep_data(gen2, false);
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

static void do_bisect(trit_backend *gen1, trit_backend *gen2, const int32_t *ids, size_t n,
                      const trit_ladder_thresholds *th, FILE *out, json_t *pj) {
    json_t *j = json_object();
    trit_err err = {0};
    size_t L = 0;
    if (trit_ladder_shortest_failing_prefix(gen1, gen2, ids, n, th, &L, &err) != 0) {
        if (out) fprintf(out, "  bisect: %s\n", err.msg);
        json_object_set_new(j, "error", json_string(err.msg));
    } else if (L == 0) {
        if (out) fprintf(out, "  bisect: no prefix breaks the position thresholds\n");
        json_object_set_new(j, "shortest_failing_prefix", json_null());
    } else {
        if (out) fprintf(out, "  bisect: shortest failing prefix: %zu tokens\n", L);
        json_object_set_new(j, "shortest_failing_prefix", json_integer((json_int_t)L));
        if (trace_divergence(gen1, gen2, ids, L, th, out, j, &err) != 0) {
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

/* What the run shares over every prompt: both sides, what each says it is, and how rungs
 * 3-4 compare. */
typedef struct ladder_sides {
    trit_backend *gen1, *gen2;
    json_t *id1, *id2; /* trit_backend_identity, completed by a local hash (preflight) */
    bool http1, http2;
    bool topn; /* rungs 3-4 on top-N data */
} ladder_sides;

/* Everything one prompt's rungs share; gen1 is the reference side (the `ref` spec), gen2 the
 * candidate. Freed by prompt_run_free. */
typedef struct prompt_run {
    const trit_ladder_opts *o;
    const ladder_sides *sd;
    trit_backend *gen1, *gen2;
    const char *prompt;
    rung_ctx *rc;
    json_t *pj;               /* this prompt's receipt entry */
    trit_buf text1, text2;    /* the prompt as each side sees it (chat template or raw) */
    int32_t *ids1, *ids2;     /* each side's token ids */
    size_t n1, n2;            /* later rungs use gen1's ids on both sides */
    int nv1, nv2;             /* n_vocab as each side reports it (rung 2); 0 unknown */
    float *logits1, *logits2; /* full rows: [n1][nv] each */
    int nv;
    trit_pos_topn *pos1, *pos2;     /* top-N rows: n1 each */
    trit_gen_step *steps1, *steps2; /* rung 5: greedy decode */
    size_t nsteps1, nsteps2;
} prompt_run;

static void prompt_run_free(prompt_run *p) {
    free(p->ids1);
    free(p->ids2);
    free(p->logits1);
    free(p->logits2);
    free(p->pos1);
    free(p->pos2);
    free(p->steps1);
    free(p->steps2);
    trit_buf_free(&p->text1);
    trit_buf_free(&p->text2);
}

/* may the next rung run? not after a failure, unless --all */
static bool go_on(const prompt_run *p) {
    return p->rc->first_fail < 0 || p->o->all;
}

/* rung 1 when both sides tokenized: identical ids, or one sentence on why not */
static void tokens_compare(prompt_run *p, json_t *m) {
    const trit_ladder_opts *o = p->o;
    json_object_set_new(m, "ref_ids", ids_json(p->ids1, p->n1));
    json_object_set_new(m, "cand_ids", ids_json(p->ids2, p->n2));
    if (p->n1 == p->n2 && !memcmp(p->ids1, p->ids2, p->n1 * sizeof *p->ids1)) {
        rung_done(p->rc, 1, RUNG_PASS, (long)p->n1, m, "%zu ids identical", p->n1);
        return;
    }
    bool texts_differ = o->chat_template && strcmp(p->text1.p, p->text2.p) != 0;
    size_t k = 0;
    while (k < p->n1 && k < p->n2 && p->ids1[k] == p->ids2[k]) k++;
    char why[400];
    if (texts_differ) {
        /* the templates, not the tokenizers, differ */
        snprintf(why, sizeof why,
                 "chat templates differ: the rendered prompts are not the same text");
        json_object_set_new(m, "ref_text", json_string(p->text1.p));
        json_object_set_new(m, "cand_text", json_string(p->text2.p));
    } else if (is_bos_only_diff(p->ids1, p->n1, p->ids2, p->n2)) {
        /* the commonest tokenizer-config mismatch: one side adds BOS */
        bool g1 = p->n1 > p->n2;
        snprintf(why, sizeof why, "BOS differs: %s adds BOS %d, %s does not", g1 ? "ref" : "cand",
                 g1 ? p->ids1[0] : p->ids2[0], g1 ? "cand" : "ref");
    } else {
        snprintf(why, sizeof why, "ids differ from index %zu (ref %zu ids, cand %zu)", k, p->n1,
                 p->n2);
    }
    json_object_set_new(m, "why", json_string(why));
    rung_done(p->rc, 1, RUNG_FAIL, (long)TRIT_MAX(p->n1, p->n2), m, "%s", why);
    print_ids(p->rc->out, "ref ", p->ids1, p->n1);
    print_ids(p->rc->out, "cand", p->ids2, p->n2);
    if (p->rc->out && texts_differ)
        fprintf(p->rc->out, "      ref text:  %s\n      cand text: %s\n", p->text1.p, p->text2.p);
}

/* Rung 1: both sides tokenize the prompt (through their own chat template with --chat).
 * Returns whether later rungs can run at all. */
static bool rung_tokens(prompt_run *p) {
    const trit_ladder_opts *o = p->o;
    trit_err err = {0};
    /* the text each side tokenizes: its own chat template, or the raw prompt */
    if (o->chat_template) {
        if (trit_backend_chat_prompt(p->gen1, p->prompt, &p->text1, &err) != 0 ||
            trit_backend_chat_prompt(p->gen2, p->prompt, &p->text2, &err) != 0) {
            rung_done(p->rc, 1, RUNG_UNAVAILABLE, -1, NULL, "chat template: %s", err.msg);
            return false;
        }
    } else {
        trit_buf_puts(&p->text1, p->prompt);
        trit_buf_puts(&p->text2, p->prompt);
    }
    bool add_special = !o->chat_template; /* a rendered template already holds BOS */
    int r1 = trit_backend_tokenize(p->gen1, p->text1.p, add_special, true, &p->ids1, &p->n1, &err);
    trit_err err1 = err;
    int r2 = trit_backend_tokenize(p->gen2, p->text2.p, add_special, true, &p->ids2, &p->n2, &err);
    /* a side that has a tokenizer but whose request failed: the ladder cannot go on */
    if ((r1 && err1.code != TRIT_EUNAVAIL) || (r2 && err.code != TRIT_EUNAVAIL)) {
        bool first = r1 && err1.code != TRIT_EUNAVAIL;
        rung_done(p->rc, 1, RUNG_SETUP_FAILURE, -1, NULL, "%s: tokenize: %s",
                  first ? "ref" : "cand", first ? err1.msg : err.msg);
        return false;
    }
    json_t *m = json_object();
    if (r1 && r2) {
        /* nothing to evaluate */
        json_decref(m);
        rung_done(p->rc, 1, RUNG_UNAVAILABLE, -1, NULL, "neither side can tokenize: %s; %s",
                  err1.msg, err.msg);
        return false;
    }
    if (r1 || r2) {
        /* one side cannot tokenize (http without /tokenize): the rung is skipped (the run
         * cannot PASS) and later rungs use the other side's ids */
        int32_t **missing = r1 ? &p->ids1 : &p->ids2;
        size_t *n_missing = r1 ? &p->n1 : &p->n2;
        const int32_t *have = r1 ? p->ids2 : p->ids1;
        size_t n_have = r1 ? p->n2 : p->n1;
        *missing = xmalloc((n_have ? n_have : 1) * sizeof **missing);
        memcpy(*missing, have, n_have * sizeof **missing);
        *n_missing = n_have;
        json_object_set_new(m, "ids", ids_json(have, n_have));
        rung_done(p->rc, 1, RUNG_SKIPPED, -1, m,
                  "%s cannot tokenize (%s); using the other side's %zu ids", r1 ? "ref" : "cand",
                  r1 ? err1.msg : err.msg, n_have);
    } else {
        tokens_compare(p, m);
    }
    json_object_set_new(p->pj, "n_tokens", json_integer((json_int_t)p->n1));
    return go_on(p);
}

/* An integer an identity reports (0 when absent or not a number). */
static long ident_int(const json_t *id, const char *key) {
    json_t *v = json_object_get(id, key);
    return json_is_number(v) ? (long)json_number_value(v) : 0;
}

/* A string an identity reports ("" when absent). */
static const char *ident_str(const json_t *id, const char *key) {
    const char *s = json_string_value(json_object_get(id, key));
    return s ? s : "";
}

/* A shape value of one side: what the backend itself knows (in-process), else what the
 * server reported in its identity; 0 when neither. */
static int side_shape(trit_backend *b, const json_t *id, const char *key) {
    const trit_backend_info *in = trit_backend_describe(b);
    int v = !strcmp(key, "n_vocab") ? in->n_vocab : in->n_ctx;
    return v > 0 ? v : (int)ident_int(id, key);
}

/* Rung 2: vocabulary sizes agree and prompt + decode fit both contexts, from what each side
 * reports; a value a side does not report is SKIPPED (never a pass), different vocabularies
 * are a setup failure (the two sides cannot be compared token by token). */
static bool rung_shapes(prompt_run *p) {
    const trit_ladder_opts *o = p->o;
    int v1 = side_shape(p->gen1, p->sd->id1, "n_vocab"),
        v2 = side_shape(p->gen2, p->sd->id2, "n_vocab");
    int c1 = side_shape(p->gen1, p->sd->id1, "n_ctx"),
        c2 = side_shape(p->gen2, p->sd->id2, "n_ctx");
    p->nv1 = v1, p->nv2 = v2;
    size_t n = p->n1;
    json_t *m = json_pack("{s:i, s:i, s:i, s:i, s:I, s:i}", "ref_n_vocab", v1, "cand_n_vocab", v2,
                          "ref_n_ctx", c1, "cand_n_ctx", c2, "prompt_tokens", (json_int_t)n,
                          "max_tokens", o->max_tokens);
    size_t need = n + (size_t)o->max_tokens;
    bool too_long = (c1 && need > (size_t)c1) || (c2 && need > (size_t)c2);
    /* what no side reported, by name */
    char unknown[160] = "";
    const char *names[4] = {"ref n_vocab", "cand n_vocab", "ref n_ctx", "cand n_ctx"};
    int vals[4] = {v1, v2, c1, c2}, known = 0;
    for (int i = 0; i < 4; i++) {
        if (vals[i] > 0) {
            known++;
            continue;
        }
        snprintf(unknown + strlen(unknown), sizeof unknown - strlen(unknown), "%s%s",
                 *unknown ? ", " : "", names[i]);
    }
    if (n == 0) {
        /* nothing to evaluate: no later rung can run, even with --all */
        rung_done(p->rc, 2, RUNG_FAIL, 0, m, "the prompt tokenizes to 0 ids");
        return false;
    }
    if (v1 && v2 && v1 != v2)
        rung_done(p->rc, 2, RUNG_SETUP_FAILURE, known, m,
                  "different vocabularies: ref reports n_vocab %d, cand %d (not comparable)", v1,
                  v2);
    else if (too_long)
        rung_done(p->rc, 2, RUNG_FAIL, known, m,
                  "prompt %zu + %d tokens do not fit n_ctx (ref %d, cand %d)", n, o->max_tokens, c1,
                  c2);
    else if (*unknown)
        rung_done(p->rc, 2, RUNG_SKIPPED, known, m,
                  "not reported: %s (n_vocab %d/%d, n_ctx %d/%d; 0 = unknown)", unknown, v1, v2, c1,
                  c2);
    else
        rung_done(p->rc, 2, RUNG_PASS, known, m, "n_vocab %d/%d, prompt %zu tokens, n_ctx %d/%d",
                  v1, v2, n, c1, c2);
    return go_on(p);
}

/* Rung 3: the logits at the first position, against the first_* thresholds. */
static void rung_first_logit(prompt_run *p) {
    const trit_ladder_thresholds *th = &p->o->th;
    trit_logit_cmp c;
    trit_logits_compare(p->logits1, p->logits2, p->nv, &c);
    json_t *m = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:i}", "mse", c.mse, "max_abs",
                          c.max_abs, "cosine", c.cosine, "l2", c.l2, "kl", c.kl, "top5", c.top5,
                          "argmax_ref", c.argmax_a, "argmax_cand", c.argmax_b);
    bool ok = c.mse <= th->first_mse && c.max_abs <= th->first_maxabs;
    rung_done(p->rc, 3, ok ? RUNG_PASS : RUNG_FAIL, 1, m,
              "mse %.3g (<=%g) max-abs %.3g (<=%g, at id %d) cosine %.9f l2 %.4g", c.mse,
              th->first_mse, c.max_abs, th->first_maxabs, c.max_abs_idx, c.cosine, c.l2);
}

/* Rung 4: every prompt position, against the pos_* thresholds; reports the worst position
 * (largest mse or kl relative to its bound) and the first failing one. */
static void rung_positions(prompt_run *p) {
    const trit_ladder_thresholds *th = &p->o->th;
    size_t n = p->n1;
    int nv = p->nv;
    trit_logit_cmp w = {0};
    double top5_sum = 0, top5_min = 1, worst_score = -1;
    size_t worst = 0, first_bad = SIZE_MAX;
    double max_kl = 0, max_abs = 0, max_mse = 0;
    json_t *per = json_array();
    for (size_t i = 0; i < n; i++) {
        trit_logit_cmp c;
        trit_logits_compare(p->logits1 + i * nv, p->logits2 + i * nv, nv, &c);
        top5_sum += c.top5;
        top5_min = TRIT_MIN(top5_min, c.top5);
        max_kl = TRIT_MAX(max_kl, c.kl);
        max_abs = TRIT_MAX(max_abs, c.max_abs);
        max_mse = TRIT_MAX(max_mse, c.mse);
        double score = TRIT_MAX(c.mse / th->pos_mse, c.kl / th->pos_kl);
        if (score > worst_score || isnan(score)) worst_score = score, worst = i, w = c;
        bool bad = !(c.mse <= th->pos_mse && c.kl <= th->pos_kl && c.max_abs <= th->pos_maxabs);
        if (bad && first_bad == SIZE_MAX) first_bad = i;
        json_array_append_new(per, json_pack("{s:f, s:f, s:f, s:f}", "mse", c.mse, "kl", c.kl,
                                             "top5", c.top5, "max_abs", c.max_abs));
    }
    double top5_mean = top5_sum / (double)n;
    bool ok = max_mse <= th->pos_mse && max_kl <= th->pos_kl && max_abs <= th->pos_maxabs &&
              top5_mean >= th->pos_top5;
    json_t *m = json_pack("{s:f, s:f, s:f, s:f, s:f, s:I, s:o}", "max_mse", max_mse, "max_kl",
                          max_kl, "max_abs", max_abs, "top5_mean", top5_mean, "top5_min", top5_min,
                          "worst_position", (json_int_t)worst, "per_position", per);
    if (first_bad != SIZE_MAX)
        json_object_set_new(m, "first_failing_position", json_integer((json_int_t)first_bad));
    rung_done(p->rc, 4, ok ? RUNG_PASS : RUNG_FAIL, (long)n, m,
              "%zu positions: max mse %.3g (<=%g) max kl %.3g (<=%g) top5 mean %.3f (>=%g, min "
              "%.2f) max-abs %.3g (<=%g); worst position %zu (mse %.3g kl %.3g)",
              n, max_mse, th->pos_mse, max_kl, th->pos_kl, top5_mean, th->pos_top5, top5_min,
              max_abs, th->pos_maxabs, worst, w.mse, w.kl);
}

/* Rungs 3 and 4 on full rows: evaluate both sides once, compare the first position, then
 * all of them; --bisect after a logit failure. */
static bool rung_logits_full(prompt_run *p) {
    const trit_ladder_opts *o = p->o;
    trit_err err = {0};
    if (eval_pair(p->gen1, p->gen2, p->ids1, p->n1, &p->logits1, &p->logits2, &p->nv, &err) != 0) {
        /* no logits: both rungs share the cause */
        rung_status st = err_status(&err);
        rung_done(p->rc, 3, st, -1, NULL, "%s", err.msg);
        rung_done(p->rc, 4, st, -1, NULL, "%s", err.msg);
        return go_on(p);
    }
    rung_first_logit(p);
    if (go_on(p))
        rung_positions(p);
    else
        rung_done(p->rc, 4, RUNG_SKIPPED, -1, NULL, "after a failure (use --all to run it)");
    if (o->bisect && p->rc->first_fail >= 3)
        do_bisect(p->gen1, p->gen2, p->ids1, p->n1, &o->th, p->rc->out, p->pj);
    return go_on(p);
}

/* One side's top-N rows for every prompt position, checked; false (rungs 3-4 recorded as
 * a setup failure naming the side and the request) when the side could not give them. */
static bool score_side(prompt_run *p, trit_backend *b, const char *side, int n_vocab,
                       trit_pos_topn **pos) {
    const trit_ladder_opts *o = p->o;
    trit_err err = {0};
    int rc = trit_backend_score(b, p->ids1, p->n1, 0, o->top_n, pos, &err);
    if (rc == 0)
        rc = trit_topn_check(*pos, p->n1, p->ids1, p->n1, 0, n_vocab, TRIT_MIN(5, o->top_n), &err);
    if (rc == 0) return true;
    rung_status st = err_status(&err);
    rung_done(p->rc, 3, st, -1, NULL, "%s (%s scoring): top-N log-probabilities: %s", side,
              trit_backend_score_mode(b), err.msg);
    rung_done(p->rc, 4, st, -1, NULL, "%s: see rung 3", side);
    return false;
}

/* Whether one position's top-N comparison breaks a rung's bounds (top-5 judged separately:
 * a near-tie at rank 5 moves it on one position without any divergence). */
static bool topn_breaks(const trit_topn_cmp *c, const trit_ladder_thresholds *th, double maxabs) {
    return !(c->kl <= th->topn_kl && c->max_abs <= maxabs && c->cover >= th->topn_cover);
}

static json_t *topn_json(const trit_topn_cmp *c) {
    return json_pack("{s:i, s:i, s:o, s:f, s:o, s:f, s:f, s:f, s:i, s:i}", "n", c->n, "shared",
                     c->shared, "kl", isfinite(c->kl) ? json_real(c->kl) : json_null(), "top5",
                     c->top5, "max_abs", isfinite(c->max_abs) ? json_real(c->max_abs) : json_null(),
                     "cover", c->cover, "mass_ref", c->mass_a, "mass_cand", c->mass_b, "argmax_ref",
                     c->argmax_a, "argmax_cand", c->argmax_b);
}

/* --bisect on top-N data: every position was scored as its own prefix request, so the first
 * failing position p gives the shortest failing prefix (p + 1 tokens) without another
 * request; the layer trace needs both sides in-process (no server gives traces). */
static void bisect_topn(prompt_run *p, size_t first_bad) {
    FILE *out = p->rc->out;
    json_t *j = json_object();
    size_t L = first_bad + 1;
    json_object_set_new(j, "shortest_failing_prefix", json_integer((json_int_t)L));
    json_object_set_new(j, "source", json_string("top-N scores of each prefix (rungs 3-4)"));
    if (out)
        fprintf(out, "  bisect: shortest failing prefix: %zu tokens (from the per-prefix scores)\n",
                L);
    trit_err err = {0};
    if (p->sd->http1 || p->sd->http2) {
        const char *why = "unavailable over http: a server gives no layer traces, so the first "
                          "diverging (layer, point) cannot be named; run the ladder on the model "
                          "file in-process (trit:/llama: specs) for that";
        if (out) fprintf(out, "  bisect: trace %s\n", why);
        json_object_set_new(j, "trace_error", json_string(why));
    } else if (trace_divergence(p->gen1, p->gen2, p->ids1, L, &p->o->th, out, j, &err) != 0) {
        if (out) fprintf(out, "  bisect: trace: %s\n", err.msg);
        json_object_set_new(j, "trace_error", json_string(err.msg));
    }
    json_object_set_new(p->pj, "bisect", j);
}

/* Rungs 3 and 4 on top-N data (trit_topn_compare): rung 3 the first position against
 * topn_first_maxabs, rung 4 every position (max kl, max max-abs, mean top-5, min cover). */
static bool rung_logits_topn(prompt_run *p) {
    const trit_ladder_opts *o = p->o;
    const trit_ladder_thresholds *th = &o->th;
    if (!score_side(p, p->gen1, "ref", p->nv1, &p->pos1) ||
        !score_side(p, p->gen2, "cand", p->nv2, &p->pos2))
        return false; /* no data: nothing later can be judged either */
    size_t n = p->n1;
    trit_topn_cmp c0;
    trit_topn_compare(&p->pos1[0], &p->pos2[0], &c0);
    json_object_set_new(p->pj, "top_n",
                        json_pack("{s:i, s:i, s:i, s:i, s:s, s:s}", "asked", o->top_n, "ref",
                                  p->pos1[0].n_top, "cand", p->pos2[0].n_top, "compared", c0.n,
                                  "ref_scoring", trit_backend_score_mode(p->gen1), "cand_scoring",
                                  trit_backend_score_mode(p->gen2)));
    bool ok3 = !topn_breaks(&c0, th, th->topn_first_maxabs);
    rung_done(p->rc, 3, ok3 ? RUNG_PASS : RUNG_FAIL, 1, topn_json(&c0),
              "top-%d: kl %.3g (<=%g) max-abs logprob %.3g (<=%g, at id %d) cover %.4f (>=%g) "
              "top5 %.2f; %d shared ids, mass ref %.3f cand %.3f; argmax %d/%d",
              c0.n, c0.kl, th->topn_kl, c0.max_abs, th->topn_first_maxabs, c0.max_abs_id, c0.cover,
              th->topn_cover, c0.top5, c0.shared, c0.mass_a, c0.mass_b, c0.argmax_a, c0.argmax_b);
    size_t first_bad = ok3 ? SIZE_MAX : 0;
    if (go_on(p)) {
        double max_kl = 0, max_abs = 0, cover_min = 1, top5_sum = 0, worst_score = -1;
        size_t worst = 0;
        json_t *per = json_array();
        for (size_t i = 0; i < n; i++) {
            trit_topn_cmp c;
            trit_topn_compare(&p->pos1[i], &p->pos2[i], &c);
            max_kl = TRIT_MAX(max_kl, c.kl);
            max_abs = TRIT_MAX(max_abs, c.max_abs);
            cover_min = TRIT_MIN(cover_min, c.cover);
            top5_sum += c.top5;
            double score = TRIT_MAX(c.kl / th->topn_kl, c.max_abs / th->topn_maxabs);
            if (score > worst_score || isnan(score)) worst_score = score, worst = i;
            if (topn_breaks(&c, th, th->topn_maxabs) && first_bad == SIZE_MAX) first_bad = i;
            json_array_append_new(per, topn_json(&c));
        }
        double top5_mean = top5_sum / (double)n;
        bool ok = max_kl <= th->topn_kl && max_abs <= th->topn_maxabs &&
                  cover_min >= th->topn_cover && top5_mean >= th->topn_top5;
        json_t *m = json_pack("{s:o, s:o, s:f, s:f, s:I, s:o}", "max_kl",
                              isfinite(max_kl) ? json_real(max_kl) : json_null(), "max_abs",
                              isfinite(max_abs) ? json_real(max_abs) : json_null(), "cover_min",
                              cover_min, "top5_mean", top5_mean, "worst_position",
                              (json_int_t)worst, "per_position", per);
        if (first_bad != SIZE_MAX)
            json_object_set_new(m, "first_failing_position", json_integer((json_int_t)first_bad));
        rung_done(p->rc, 4, ok ? RUNG_PASS : RUNG_FAIL, (long)n, m,
                  "%zu positions, top-%d: max kl %.3g (<=%g) max max-abs logprob %.3g (<=%g) "
                  "min cover %.4f (>=%g) top5 mean %.3f (>=%g); worst position %zu",
                  n, c0.n, max_kl, th->topn_kl, max_abs, th->topn_maxabs, cover_min, th->topn_cover,
                  top5_mean, th->topn_top5, worst);
    } else {
        rung_done(p->rc, 4, RUNG_SKIPPED, -1, NULL, "after a failure (use --all to run it)");
    }
    if (o->bisect && first_bad != SIZE_MAX) bisect_topn(p, first_bad);
    return go_on(p);
}

/* Rung 5 split: a tie passes, a real or unclassified split fails; --bisect on a real one
 * bisects the sequence gen1 produced up to the split (in-process sides only). */
static void decode_split(prompt_run *p, size_t k, json_t *m) {
    const trit_ladder_opts *o = p->o;
    const trit_gen_step *s1 = &p->steps1[k], *s2 = &p->steps2[k];
    char why[300];
    trit_tie tie = trit_ladder_split_tie(s1, s2, o->th.tie_eps, why, sizeof why);
    json_object_set_new(m, "split_step", json_integer((json_int_t)k));
    json_object_set_new(m, "tie",
                        tie == TRIT_TIE_UNKNOWN ? json_null() : json_boolean(tie == TRIT_TIE_TIE));
    json_object_set_new(m, "ref_step", step_json(s1));
    json_object_set_new(m, "cand_step", step_json(s2));
    rung_done(p->rc, 5, tie == TRIT_TIE_TIE ? RUNG_PASS : RUNG_FAIL, (long)k + 1, m,
              "split at step %zu: ref %d vs cand %d after %zu identical; %s", k, s1->id, s2->id, k,
              why);
    print_top(p->rc->out, "ref ", s1);
    print_top(p->rc->out, "cand", s2);
    if (tie != TRIT_TIE_REAL || !o->bisect) return;
    if (p->sd->http1 || p->sd->http2) {
        /* no full logits, no traces from a server: say so rather than fail obscurely */
        const char *why2 = "unavailable over http: a server gives neither full logits nor layer "
                           "traces; the split step above is as far as the ladder can narrow it";
        if (p->rc->out) fprintf(p->rc->out, "  bisect: %s\n", why2);
        json_object_set_new(p->pj, "bisect", json_pack("{s:s}", "error", why2));
        return;
    }
    /* the sequence up to the split, as gen1 produced it */
    size_t n = p->n1, nn = n + k + 1;
    int32_t *seq = xmalloc(nn * sizeof *seq);
    memcpy(seq, p->ids1, n * sizeof *seq);
    for (size_t i = 0; i <= k; i++) seq[n + i] = p->steps1[i].id;
    do_bisect(p->gen1, p->gen2, seq, nn - 1 > n ? nn - 1 : n, &o->th, p->rc->out, p->pj);
    free(seq);
}

/* A side's greedy steps are judgeable: each lists at least two alternatives (the tie rule
 * needs a top-2 gap) with finite log-probabilities, and the chosen token among them (greedy
 * picks the most likely). The first problem goes to err naming the step. */
static int steps_check(const trit_gen_step *s, size_t n, trit_err *err) {
    for (size_t k = 0; k < n; k++) {
        bool listed = false, finite = true;
        for (int i = 0; i < s[k].n_top; i++) {
            listed |= s[k].top_id[i] == s[k].id;
            finite &= isfinite(s[k].top_logprob[i]) && s[k].top_logprob[i] <= 1e-6;
        }
        if (s[k].n_top < 2 || !listed || !finite)
            return trit_fail(err, TRIT_EFORMAT,
                             "short or malformed log-probabilities at decode step %zu (token %d, "
                             "%d alternatives%s%s)",
                             k, s[k].id, s[k].n_top, listed ? "" : ", token not among them",
                             finite ? "" : ", a log-probability not finite or > 0");
    }
    return 0;
}

/* One side's greedy decode, checked; the error names the side. */
static int decode_side(prompt_run *p, trit_backend *b, const char *side, trit_gen_step **steps,
                       size_t *n_steps, trit_err *err) {
    int r = trit_backend_generate_greedy(b, p->ids1, p->n1, p->o->max_tokens, steps, n_steps, err);
    if (r == 0) r = steps_check(*steps, *n_steps, err);
    if (r != 0) trit_err_prefix(err, side);
    return r;
}

/* Rung 5: greedy decode on both sides; identical tokens pass, a split goes to decode_split.
 * At least one token must have been compared. */
static void rung_decode(prompt_run *p) {
    const trit_ladder_opts *o = p->o;
    trit_err err = {0};
    if (decode_side(p, p->gen1, "ref", &p->steps1, &p->nsteps1, &err) != 0 ||
        decode_side(p, p->gen2, "cand", &p->steps2, &p->nsteps2, &err) != 0) {
        rung_done(p->rc, 5, err_status(&err), -1, NULL, "%s", err.msg);
        return;
    }
    size_t n1 = p->nsteps1, n2 = p->nsteps2, k = 0;
    while (k < n1 && k < n2 && p->steps1[k].id == p->steps2[k].id) k++;
    json_t *m = json_object(), *t1 = json_array(), *t2 = json_array();
    for (size_t i = 0; i < n1; i++) json_array_append_new(t1, json_integer(p->steps1[i].id));
    for (size_t i = 0; i < n2; i++) json_array_append_new(t2, json_integer(p->steps2[i].id));
    json_object_set_new(m, "ref_tokens", t1);
    json_object_set_new(m, "cand_tokens", t2);
    if (k == n1 && k == n2)
        rung_done(p->rc, 5, RUNG_PASS, (long)k, m, "%zu/%d greedy tokens identical", k,
                  o->max_tokens);
    else if (k == n1 || k == n2)
        rung_done(p->rc, 5, RUNG_FAIL, (long)k, m,
                  "lengths differ: ref %zu tokens, cand %zu (one stopped early)", n1, n2);
    else
        decode_split(p, k, m);
}

/* The rungs for one prompt, in order; each runs only while the ones before allow it (a
 * failure stops the prompt unless --all; no ids or an empty prompt stop it always). */
static void run_prompt(const trit_ladder_opts *o, const ladder_sides *sd, const char *prompt,
                       rung_ctx *rc, json_t *pj) {
    prompt_run p = {
        .o = o, .sd = sd, .gen1 = sd->gen1, .gen2 = sd->gen2, .prompt = prompt, .rc = rc, .pj = pj};
    if (rung_tokens(&p) && rung_shapes(&p) &&
        (sd->topn ? rung_logits_topn(&p) : rung_logits_full(&p)))
        rung_decode(&p);
    prompt_run_free(&p);
}

static json_t *receipt_new(const trit_ladder_opts *o, const char *mode) {
    char ts[32];
    trit_iso8601(trit_wall_s(), ts);
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:s, s:b, s:b}", "tool", "trit ladder", "mode",
                     mode, "trit_version", TRIT_VERSION, "time", ts, "thresholds",
                     trit_ladder_thresholds_json(&o->th), "max_tokens", o->max_tokens, "template",
                     o->chat_template ? "chat" : "raw", "all", o->all, "other_models",
                     o->other_models);
}

/* Whether url's host is this machine (127.0.0.0/8, localhost, [::1]). */
static bool url_is_loopback(const char *url) {
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    return !strncmp(h, "127.", 4) || !strncmp(h, "localhost", 9) || !strncmp(h, "[::1]", 5);
}

/* A server that reports its model's path but not its sha256 (llama-server): when the server
 * runs on this machine and the path is an absolute path to a regular file here, hash that
 * file, and say in the identity that the ladder hashed it (model_sha256_source). */
static void identity_hash_locally(json_t *id, const trit_backend_info *in) {
    const char *path = ident_str(id, "model");
    if (*ident_str(id, "model_sha256") || strcmp(in->kind, "http") != 0 || path[0] != '/' ||
        !url_is_loopback(ident_str(id, "url")[0] ? ident_str(id, "url") : in->spec + 5))
        return;
    struct stat st;
    char hex[65];
    trit_err err = {0};
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || trit_sha256_file(path, hex, &err) != 0)
        return;
    json_object_set_new(id, "model_sha256", json_string(hex));
    json_object_set_new(id, "model_sha256_source",
                        json_string("hashed by trit ladder from the model path the server "
                                    "reported (server on this machine)"));
    json_object_set_new(id, "model_file_size", json_integer((json_int_t)st.st_size));
    if (ident_int(id, "model_size") <= 0)
        json_object_set_new(id, "model_size", json_integer((json_int_t)st.st_size));
}

/* A side's identity: trit_backend_identity completed by identity_hash_locally; never NULL. */
static json_t *side_identity(trit_backend *b) {
    json_t *id = trit_backend_identity(b);
    if (!json_is_object(id)) {
        json_decref(id);
        id = json_object();
    }
    identity_hash_locally(id, trit_backend_describe(b));
    return id;
}

/* The identity values rung 0 needs from one side that it does not report, comma-separated
 * into miss (appended). */
static void identity_missing(const json_t *id, const char *side, char *miss, size_t sz) {
    static const char *keys[] = {"engine", "build", "model_sha256", "model_size"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *k = keys[i];
        bool have = !strcmp(k, "model_size")
                        ? ident_int(id, k) > 0
                        : *ident_str(id, k) && strcmp(ident_str(id, k), "unknown") != 0;
        if (!have)
            snprintf(miss + strlen(miss), sz - strlen(miss), "%s%s %s", *miss ? ", " : "", side, k);
    }
}

static void print_identity(FILE *out, const char *side, const json_t *id) {
    if (!out) return;
    const char *sha = ident_str(id, "model_sha256");
    fprintf(out, "      %s %s %s | model %s | sha256 %s%s | size %ld | %s\n", side,
            *ident_str(id, "engine") ? ident_str(id, "engine") : "(engine not reported)",
            ident_str(id, "build"), *ident_str(id, "model") ? ident_str(id, "model") : "?",
            *sha ? sha : "not reported",
            *ident_str(id, "model_sha256_source") ? " (hashed here)" : "",
            ident_int(id, "model_size"), ident_str(id, "numerics"));
}

/* Rung 0: open both backends and establish what they are: engine, build, model sha256 and
 * size from each side's identity. Equal sha256 passes; different sha256 is a divergence
 * (two different model files); a value a side does not report is SKIPPED. Returns false
 * (and records a setup failure) when a side does not load. */
static bool preflight(const trit_ladder_opts *o, rung_ctx *rc, json_t *r, ladder_sides *sd) {
    trit_err err = {0};
    sd->gen1 = trit_backend_open(o->gen1_spec, &o->bopts, &err);
    if (!sd->gen1) {
        rung_done(rc, 0, RUNG_SETUP_FAILURE, -1, NULL, "ref: %s", err.msg);
        return false;
    }
    json_object_set_new(r, "ref", info_json(trit_backend_describe(sd->gen1)));
    sd->gen2 = trit_backend_open(o->gen2_spec, &o->bopts, &err);
    if (!sd->gen2) {
        rung_done(rc, 0, RUNG_SETUP_FAILURE, -1, NULL, "cand: %s", err.msg);
        return false;
    }
    const trit_backend_info *A = trit_backend_describe(sd->gen1),
                            *B = trit_backend_describe(sd->gen2);
    json_object_set_new(r, "cand", info_json(B));
    sd->http1 = !strcmp(A->kind, "http");
    sd->http2 = !strcmp(B->kind, "http");
    sd->topn = o->logits == TRIT_LADDER_LOGITS_TOPN ||
               (o->logits == TRIT_LADDER_LOGITS_AUTO && (sd->http1 || sd->http2));
    json_object_set_new(r, "logits", json_string(sd->topn ? "top-n" : "full"));
    sd->id1 = side_identity(sd->gen1);
    sd->id2 = side_identity(sd->gen2);
    json_object_set_new(r, "ref_identity", json_incref(sd->id1));
    json_object_set_new(r, "cand_identity", json_incref(sd->id2));
    const char *s1 = ident_str(sd->id1, "model_sha256"), *s2 = ident_str(sd->id2, "model_sha256");
    char miss[400] = "";
    identity_missing(sd->id1, "ref", miss, sizeof miss);
    identity_missing(sd->id2, "cand", miss, sizeof miss);
    json_t *m = json_pack("{s:b}", "same_model_file", *s1 && *s2 && !strcmp(s1, s2));
    if (*s1 && *s2 && strcmp(s1, s2) != 0 && !o->other_models)
        rung_done(rc, 0, RUNG_FAIL, 1, m, "model files differ: ref sha256 %s, cand sha256 %s", s1,
                  s2);
    else if (*s1 && *s2 && strcmp(s1, s2) != 0 && !*miss)
        rung_done(rc, 0, RUNG_PASS, 1, m,
                  "different model files, as --other-models says: ref sha256 %.16s…, cand %.16s…",
                  s1, s2);
    else if (*miss)
        rung_done(rc, 0, RUNG_SKIPPED, *s1 && *s2 ? 1 : 0, m, "not reported: %s", miss);
    else
        rung_done(rc, 0, RUNG_PASS, 1, m, "same model file (sha256 %.16s…); engines %s / %s", s1,
                  ident_str(sd->id1, "engine"), ident_str(sd->id2, "engine"));
    print_identity(rc->out, "ref: ", sd->id1);
    print_identity(rc->out, "cand:", sd->id2);
    if (sd->topn && rc->out)
        fprintf(rc->out, "      rungs 3-4 on top-%d log-probabilities of every prefix (%s)\n",
                o->top_n, sd->http1 || sd->http2 ? "a side is http" : "--logits topn");
    return true;
}

/* The receipt's note of the first prompt/rung that failed (or, failing none, was skipped);
 * prompt -1: the preflight, before any prompt. */
static void note_first(json_t *r, const char *key, long prompt, int rung) {
    if (rung < 0 || json_object_get(r, key)) return;
    json_object_set_new(r, key,
                        json_pack("{s:o, s:i, s:s}", "prompt",
                                  prompt < 0 ? json_null() : json_integer(prompt), "rung", rung,
                                  "name", rung_names[rung]));
}

/* " on prompt N" for a note, "" for the preflight's. */
static void where(const json_t *note, char *buf, size_t sz) {
    json_t *pr = json_object_get(note, "prompt");
    if (json_is_integer(pr))
        snprintf(buf, sz, " on prompt %lld", (long long)json_integer_value(pr) + 1);
    else
        snprintf(buf, sz, " (before any prompt)");
}

/* The closing RESULT line: PASS only when every rung of every prompt ran and passed. */
static void print_result(FILE *out, const trit_ladder_opts *o, const rung_ctx *rc, json_t *r) {
    json_t *ff = json_object_get(r, "first_failure"), *fs = json_object_get(r, "first_skip");
    char at[64];
    switch (rc->status) {
    case TRIT_LADDER_PASS:
        fprintf(out, "RESULT: PASS (every rung, %zu prompt%s)\n", o->n_prompts,
                o->n_prompts == 1 ? "" : "s");
        return;
    case TRIT_LADDER_INCOMPLETE:
        /* nothing failed, but something was not checked: say which, and do not pass */
        where(fs, at, sizeof at);
        fprintf(out, "RESULT: INCOMPLETE — rung %d (%s) SKIPPED%s; no rung failed\n",
                (int)json_integer_value(json_object_get(fs, "rung")),
                json_string_value(json_object_get(fs, "name")), at);
        return;
    case TRIT_LADDER_DIVERGE:
    case TRIT_LADDER_SETUP:
        break;
    }
    if (!ff) {
        fprintf(out, "RESULT: SETUP FAILURE at rung 0 (preflight)\n");
        return;
    }
    where(ff, at, sizeof at);
    fprintf(out, "RESULT: %s — first failing rung %d (%s)%s\n",
            rc->status == TRIT_LADDER_DIVERGE ? "DIVERGENCE" : "SETUP FAILURE",
            (int)json_integer_value(json_object_get(ff, "rung")),
            json_string_value(json_object_get(ff, "name")), at);
}

int trit_ladder_run(const trit_ladder_opts *o, FILE *out, json_t **receipt) {
    json_t *r = receipt_new(o, "ladder");
    json_t *prompts = json_array();
    json_object_set_new(r, "prompts", prompts);
    rung_ctx rc = {.out = out, .first_fail = -1, .first_skip = -1, .status = TRIT_LADDER_PASS};
    if (out) {
        fprintf(out, "trit ladder: ref %s | cand %s | template %s | %d decode steps\n",
                o->gen1_spec, o->gen2_spec, o->chat_template ? "chat" : "raw", o->max_tokens);
        trit_ladder_thresholds_print(out, &o->th);
    }
    /* rung 0 */
    rc.rungs = json_array();
    json_object_set_new(r, "preflight", rc.rungs);
    ladder_sides sd = {0};
    bool loaded = preflight(o, &rc, r, &sd);
    note_first(r, "first_failure", -1, rc.first_fail);
    note_first(r, "first_skip", -1, rc.first_skip);
    bool go = loaded && (rc.first_fail < 0 || o->all);
    /* rungs 1-5 per prompt; the first failing prompt ends the run unless --all */
    for (size_t p = 0; go && p < o->n_prompts; p++) {
        json_t *pj = json_pack("{s:s}", "prompt", o->prompts[p]);
        rc.rungs = json_array();
        json_object_set_new(pj, "rungs", rc.rungs);
        json_array_append_new(prompts, pj);
        if (out)
            fprintf(out, "prompt %zu/%zu: %.60s%s\n", p + 1, o->n_prompts, o->prompts[p],
                    strlen(o->prompts[p]) > 60 ? "..." : "");
        rc.first_fail = rc.first_skip = -1;
        run_prompt(o, &sd, o->prompts[p], &rc, pj);
        note_first(r, "first_skip", (long)p, rc.first_skip);
        if (rc.first_fail < 0) continue;
        json_object_set_new(pj, "first_failing_rung", json_integer(rc.first_fail));
        note_first(r, "first_failure", (long)p, rc.first_fail);
        if (!o->all) break;
    }
    json_object_set_new(r, "result", json_string(trit_ladder_status_name(rc.status)));
    json_object_set_new(r, "exit_code", json_integer(rc.status));
    if (out) print_result(out, o, &rc, r);
    json_decref(sd.id1);
    json_decref(sd.id2);
    trit_backend_close(sd.gen1);
    trit_backend_close(sd.gen2);
    if (receipt)
        *receipt = r;
    else
        json_decref(r);
    return rc.status;
}

/* ---------------- determinism ---------------- */

int trit_ladder_determinism(const trit_ladder_opts *o, FILE *out, json_t **receipt) {
    json_t *r = receipt_new(o, "determinism");
    json_object_set_new(r, "spec", json_string(o->gen1_spec));
    trit_err err = {0};
    trit_ladder_status status = TRIT_LADDER_PASS;
    trit_backend *a = trit_backend_open(o->gen1_spec, &o->bopts, &err), *b = NULL;
    if (a) b = trit_backend_open(o->gen1_spec, &o->bopts, &err);
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
    json_object_set_new(r, "result", json_string(trit_ladder_status_name(status)));
    json_object_set_new(r, "exit_code", json_integer(status));
    trit_backend_close(a);
    trit_backend_close(b);
    if (receipt)
        *receipt = r;
    else
        json_decref(r);
    return status;
}
