/* gates.c — the cutover gate table (DESIGN.md "Cutover gates"): INI config, ppl figures,
 * verdicts. Too few samples or a missing reference is FAIL, never PASS; the rounds gate reads
 * WAITING while the count is still below its target. */
#include "parity/gates.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void trit_gate_cfg_default(trit_gate_cfg *c) {
    memset(c, 0, sizeof *c);
    c->ppl_max_delta = 0.05;
    c->exact_min = 0.90;
    c->require_classified = true;
    c->rounds_min = 50000;
    c->v2_unreach_max = 0.001;
    c->p95_gap_max_ms = 100;
    c->trend_window_h = 48;
    c->trend_window_rounds = 0;
    c->trend_min_rounds = 100;
    c->spike_nomatch = 0.20;
    c->spike_min_rounds = 20;
    c->tie_eps = TRIT_TIE_EPS_DEFAULT;
    c->min_samples = 100;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

enum { K_DBL, K_LONG, K_BOOL };
typedef struct {
    const char *name;
    int kind;
    size_t off;
} ini_key;
#define KD(f)                                                                                      \
    { #f, K_DBL, offsetof(trit_gate_cfg, f) }
#define KL(f)                                                                                      \
    { #f, K_LONG, offsetof(trit_gate_cfg, f) }
#define KB(f)                                                                                      \
    { #f, K_BOOL, offsetof(trit_gate_cfg, f) }
static const ini_key keys[] = {
    KD(ppl_max_delta),
    KD(ppl_max_rel_delta),
    KD(exact_min),
    KB(require_classified),
    KL(rounds_min),
    KD(v2_unreach_max),
    KD(p95_gap_max_ms),
    KD(trend_window_h),
    KL(trend_window_rounds),
    KL(trend_min_rounds),
    KD(spike_nomatch),
    KL(spike_min_rounds),
    KD(tie_eps),
    KL(min_samples),
    KD(kld_max),
};

int trit_gate_cfg_parse(const char *text, const char *name, trit_gate_cfg *c, trit_err *err) {
    char *copy = xstrdup(text);
    char *save = NULL;
    int lineno = 0, rc = 0;
    bool in_gates = true; /* keys before any section belong to [gates] */
    for (char *p = copy; p; p = save) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        save = nl ? nl + 1 : NULL;
        lineno++;
        char *s = trim(p);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (!e || *trim(e + 1)) {
                rc = trit_fail(err, TRIT_EFORMAT, "%s:%d: malformed section header '%s'", name,
                               lineno, s);
                break;
            }
            *e = 0;
            in_gates = !strcmp(trim(s + 1), "gates");
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = trit_fail(err, TRIT_EFORMAT, "%s:%d: expected 'key = value', got '%s'", name,
                           lineno, s);
            break;
        }
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        char *hash = strpbrk(v, "#;");
        if (hash) *hash = 0, v = trim(v);
        if (!in_gates) continue; /* other sections belong to other tools */
        const ini_key *key = NULL;
        for (size_t i = 0; i < TRIT_ARRAY_LEN(keys); i++)
            if (!strcmp(keys[i].name, k)) key = &keys[i];
        if (!key) {
            rc =
                trit_fail(err, TRIT_EFORMAT, "%s:%d: unknown key '%s' in [gates]", name, lineno, k);
            break;
        }
        char *end;
        errno = 0;
        if (key->kind == K_BOOL) {
            bool b;
            if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
                b = true;
            else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
                b = false;
            else {
                rc = trit_fail(err, TRIT_EFORMAT, "%s:%d: %s: expected true/false, got '%s'", name,
                               lineno, k, v);
                break;
            }
            *(bool *)((char *)c + key->off) = b;
        } else if (key->kind == K_LONG) {
            long x = strtol(v, &end, 10);
            if (!*v || *end || errno || x < 0) {
                rc = trit_fail(err, TRIT_EFORMAT,
                               "%s:%d: %s: expected a non-negative integer, got '%s'", name, lineno,
                               k, v);
                break;
            }
            *(long *)((char *)c + key->off) = x;
        } else {
            double x = strtod(v, &end);
            if (!*v || *end || errno || !isfinite(x) || x < 0) {
                rc = trit_fail(err, TRIT_EFORMAT,
                               "%s:%d: %s: expected a non-negative number, got '%s'", name, lineno,
                               k, v);
                break;
            }
            *(double *)((char *)c + key->off) = x;
        }
    }
    free(copy);
    return rc;
}

int trit_gate_cfg_load(const char *path, trit_gate_cfg *c, trit_err *err) {
    trit_buf b = {0};
    if (trit_read_file(path, &b, err)) {
        trit_err_prefix(err, "gate config");
        return -1;
    }
    int rc = trit_gate_cfg_parse(b.p, path, c, err);
    trit_buf_free(&b);
    return rc;
}

const char *trit_gate_verdict_name(trit_gate_verdict v) {
    return v == TRIT_GATE_PASS ? "PASS" : v == TRIT_GATE_FAIL ? "FAIL" : "WAITING";
}

static double num_field(json_t *o, const char *k1, const char *k2) {
    json_t *v = json_object_get(json_object_get(o, k1), k2);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int trit_ppl_figs_load(const char *path, trit_ppl_figs *p, trit_err *err) {
    memset(p, 0, sizeof *p);
    p->gen1 = p->gen1_err = p->gen2 = p->gen2_err = p->kld_mean = NAN;
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        return trit_fail(err, TRIT_EFORMAT, "ppl file %s: %s (line %d)", path, je.text, je.line);
    p->gen1 = num_field(j, "gen1", "ppl");
    p->gen1_err = num_field(j, "gen1", "ppl_err");
    p->gen2 = num_field(j, "gen2", "ppl");
    p->gen2_err = num_field(j, "gen2", "ppl_err");
    p->kld_mean = num_field(j, "kld", "mean");
    trit_ppl_shape_from_json(json_object_get(j, "gen1"), &p->shape1);
    trit_ppl_shape_from_json(json_object_get(j, "gen2"), &p->shape2);
    json_decref(j);
    if (isnan(p->gen1) || isnan(p->gen2))
        return trit_fail(err, TRIT_EFORMAT, "ppl file %s: needs gen1.ppl and gen2.ppl numbers",
                         path);
    p->present = true;
    return 0;
}

static trit_gate_row *add_row(trit_gate_table *t, const char *gate, const char *target) {
    trit_gate_row *r = &t->row[t->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->gate, sizeof r->gate, "%s", gate);
    snprintf(r->target, sizeof r->target, "%s", target);
    return r;
}

#define SET(field, ...) snprintf(r->field, sizeof r->field, __VA_ARGS__)

/* the per-window gates (exact, unreachable, p95 gap, spike) of one window; true = all pass */
static bool window_ok(const trit_gate_cfg *c, const trit_stats *s) {
    if (s->compared < 1) return false;
    if (!(s->exact_rate >= c->exact_min)) return false;
    if (!(s->v2_unreach_rate < c->v2_unreach_max)) return false;
    if (!isnan(s->p95_gap) && s->p95_gap * 1000 >= c->p95_gap_max_ms) return false;
    if (!isnan(s->worst_hour_nomatch) && s->worst_hour_nomatch > c->spike_nomatch) return false;
    return true;
}

/* the ppl figures the gates judge: the file when given, else the ledger's last ppl record */
static trit_ppl_figs ppl_figs_of(const trit_ppl_figs *ppl, const trit_stats *all) {
    if (ppl && ppl->present) return *ppl;
    trit_ppl_figs f = {0};
    if (all->has_ppl && !isnan(all->ppl_gen1) && !isnan(all->ppl_gen2))
        f = (trit_ppl_figs){
            true,          all->ppl_gen1,   all->ppl_gen1_err, all->ppl_gen2, all->ppl_gen2_err,
            all->kld_mean, all->ppl_shape1, all->ppl_shape2};
    return f;
}

/* The two runs scored the same text the same way: same chunks x ctx and the same number of
 * scored tokens. false with why filled when not (or when a run's shape was not recorded). */
static bool ppl_same_shape(const trit_ppl_figs *p, char *why, size_t why_sz) {
    const trit_ppl_shape *a = &p->shape1, *b = &p->shape2;
    if (a->chunks <= 0 || b->chunks <= 0 || a->count <= 0 || b->count <= 0) {
        snprintf(why, why_sz, "chunk and token counts not recorded (rerun `trit ppl --json`)");
        return false;
    }
    if (a->chunks == b->chunks && a->ctx == b->ctx && a->count == b->count) return true;
    snprintf(why, why_sz, "runs differ: gen-1 %ld chunks x %ld (%ld tokens), gen-2 %ld x %ld (%ld)",
             a->chunks, a->ctx, a->count, b->chunks, b->ctx, b->count);
    return false;
}

/* PPL of gen-2 against gen-1: absolute delta, or the ratio (ppl_max_rel_delta) for synthetic
 * models; runs of different shape never pass. The current text reports the KLD too. */
static void gate_ppl(const trit_gate_cfg *c, const trit_ppl_figs *p, trit_gate_table *t) {
    char tg[64];
    if (c->ppl_max_rel_delta > 0)
        snprintf(tg, sizeof tg, "|ratio - 1| <= %g", c->ppl_max_rel_delta);
    else
        snprintf(tg, sizeof tg, "|delta| <= %g", c->ppl_max_delta);
    trit_gate_row *r = add_row(t, "ppl gen-2 vs gen-1", tg);
    if (!p->present) {
        SET(current, "not measured");
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "no ppl figures (--ppl FILE from `trit ppl --json -o FILE`)");
        return;
    }
    double d = p->gen2 - p->gen1;
    double rel = p->gen1 > 0 ? p->gen2 / p->gen1 - 1.0 : NAN;
    bool ok;
    if (c->ppl_max_rel_delta > 0) {
        /* relative form: for models whose absolute perplexity is meaningless (synthetic
         * weights score ~1e19 on English), the ratio is what says "same model" */
        SET(current, "%+.4f%% (%.6g vs %.6g, KLD %.5f)", 100.0 * rel, p->gen2, p->gen1,
            p->kld_mean);
        ok = !isnan(rel) && fabs(rel) <= c->ppl_max_rel_delta;
    } else {
        SET(current, "%+.4f (%.4f vs %.4f, KLD %.5f)", d, p->gen2, p->gen1, p->kld_mean);
        ok = fabs(d) <= c->ppl_max_delta;
    }
    r->verdict = ok ? TRIT_GATE_PASS : TRIT_GATE_FAIL;
    /* a delta between runs over different chunks or token counts means nothing */
    if (!ppl_same_shape(p, r->why, sizeof r->why)) r->verdict = TRIT_GATE_FAIL;
}

/* The optional KLD gate (kld_max > 0): mean KLD of gen-2 against gen-1. */
static void gate_kld(const trit_gate_cfg *c, const trit_ppl_figs *p, trit_gate_table *t) {
    char tg[64];
    snprintf(tg, sizeof tg, "mean <= %g", c->kld_max);
    trit_gate_row *r = add_row(t, "KLD gen-2 vs gen-1", tg);
    if (!p->present || isnan(p->kld_mean)) {
        SET(current, "not measured");
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "no KLD (both sides need full logits: trit: or llama: specs)");
        return;
    }
    SET(current, "%.6f", p->kld_mean);
    r->verdict = p->kld_mean <= c->kld_max ? TRIT_GATE_PASS : TRIT_GATE_FAIL;
    if (!ppl_same_shape(p, r->why, sizeof r->why)) r->verdict = TRIT_GATE_FAIL;
}

static void gate_exact(const trit_gate_cfg *c, const trit_stats *all, trit_gate_table *t) {
    char tg[64];
    snprintf(tg, sizeof tg, ">= %.1f%%", 100 * c->exact_min);
    trit_gate_row *r = add_row(t, "exact-match rate", tg);
    if (all->compared == 0) {
        SET(current, "0 compared");
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "too few samples (0 compared rounds)");
        return;
    }
    SET(current, "%.2f%% (%ld/%ld)", 100 * all->exact_rate, all->bucket[TRIT_BUCKET_EXACT],
        all->compared);
    if (all->noise_rounds)
        SET(current, "%.2f%% (noise %.2f%%)", 100 * all->exact_rate, 100 * all->noise_exact_rate);
    r->verdict = all->exact_rate >= c->exact_min ? TRIT_GATE_PASS : TRIT_GATE_FAIL;
    /* a rate over too few rounds proves nothing */
    if (r->verdict == TRIT_GATE_PASS && all->compared < c->min_samples) {
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "too few samples (%ld < %ld compared rounds)", all->compared, c->min_samples);
    }
}

static void gate_classified(const trit_gate_cfg *c, const trit_stats *all, trit_gate_table *t) {
    trit_gate_row *r =
        add_row(t, "no-match classified", c->require_classified ? "all tie/real" : "(off)");
    long nm = all->bucket[TRIT_BUCKET_NOMATCH];
    SET(current, "%ld no-match: %ld tie, %ld real, %ld unclassified", nm, all->ties, all->reals,
        all->tie_unknown);
    if (c->require_classified && all->tie_unknown > 0) {
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "no-match rounds without logprobs at the split");
    } else if (all->compared < c->min_samples || all->compared == 0) {
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "too few samples");
    } else {
        r->verdict = TRIT_GATE_PASS;
    }
}

/* rounds: WAITING (not FAIL) while the ledger is still growing towards its target */
static void gate_rounds(const trit_gate_cfg *c, const trit_stats *all, trit_gate_table *t) {
    char tg[64];
    snprintf(tg, sizeof tg, ">= %ld", c->rounds_min);
    trit_gate_row *r = add_row(t, "rounds", tg);
    SET(current, "%ld", all->rounds);
    r->verdict =
        all->rounds >= c->rounds_min && all->rounds > 0 ? TRIT_GATE_PASS : TRIT_GATE_WAITING;
    if (r->verdict != TRIT_GATE_PASS)
        SET(why, "%ld more rounds needed", c->rounds_min - all->rounds);
}

/* gen-2 unreachable share, over rounds where gen-1 answered */
static void gate_unreachable(const trit_gate_cfg *c, const trit_stats *all, trit_gate_table *t) {
    char tg[64];
    snprintf(tg, sizeof tg, "< %g%%", 100 * c->v2_unreach_max);
    trit_gate_row *r = add_row(t, "v2 unreachable", tg);
    long denom = all->rounds - all->bucket[TRIT_BUCKET_GEN1_UNREACH];
    if (denom == 0) {
        SET(current, "0 rounds");
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "too few samples");
        return;
    }
    SET(current, "%.3f%% (%ld/%ld)", 100 * all->v2_unreach_rate,
        all->bucket[TRIT_BUCKET_GEN2_UNREACH], denom);
    r->verdict = all->v2_unreach_rate < c->v2_unreach_max ? TRIT_GATE_PASS : TRIT_GATE_FAIL;
    if (r->verdict == TRIT_GATE_PASS && denom < c->min_samples) {
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "too few samples (%ld < %ld rounds)", denom, c->min_samples);
    }
}

static void gate_latency(const trit_gate_cfg *c, const trit_stats *all, trit_gate_table *t) {
    char tg[64];
    snprintf(tg, sizeof tg, "< %g ms", c->p95_gap_max_ms);
    trit_gate_row *r = add_row(t, "p95 latency gap", tg);
    if (all->compared == 0 || isnan(all->p95_gap)) {
        SET(current, "n/a");
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "too few samples");
        return;
    }
    SET(current, "%+.1f ms (p95 %.1f vs %.1f ms)", 1000 * all->p95_gap, 1000 * all->p95_v2,
        1000 * all->p95_v1);
    r->verdict = 1000 * all->p95_gap < c->p95_gap_max_ms ? TRIT_GATE_PASS : TRIT_GATE_FAIL;
    if (r->verdict == TRIT_GATE_PASS && all->compared < c->min_samples) {
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "too few samples (%ld < %ld compared rounds)", all->compared, c->min_samples);
    }
}

/* trend: the last window no worse than the one before (both need enough rounds) */
static void gate_trend(const trit_gate_cfg *c, const trit_stats *recent, const trit_stats *previous,
                       trit_gate_table *t) {
    char tg[64];
    if (c->trend_window_rounds > 0)
        snprintf(tg, sizeof tg, "last %ld rounds no worse", c->trend_window_rounds);
    else
        snprintf(tg, sizeof tg, "last %gh no worse than the %gh before", c->trend_window_h,
                 c->trend_window_h);
    trit_gate_row *r = add_row(t, "trend", tg);
    long need = TRIT_MAX(c->trend_min_rounds, 1L);
    if (!recent || !previous || recent->compared < need || previous->compared < need) {
        SET(current, "windows %ld / %ld compared", recent ? recent->compared : 0,
            previous ? previous->compared : 0);
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "too few samples (each window needs %ld compared rounds)", need);
        return;
    }
    bool prev_ok = window_ok(c, previous), rec_ok = window_ok(c, recent);
    SET(current, "exact %.2f%% -> %.2f%%", 100 * previous->exact_rate, 100 * recent->exact_rate);
    bool worse = (prev_ok && !rec_ok) ||
                 (previous->exact_rate >= c->exact_min && recent->exact_rate < c->exact_min);
    r->verdict = worse ? TRIT_GATE_FAIL : TRIT_GATE_PASS;
    if (worse) SET(why, "a gate passing in the previous window fails in the last one");
}

static void gate_spike(const trit_gate_cfg *c, const trit_stats *all, trit_gate_table *t) {
    char tg[64];
    snprintf(tg, sizeof tg, "no hour > %g%% no-match", 100 * c->spike_nomatch);
    trit_gate_row *r = add_row(t, "spike", tg);
    if (isnan(all->worst_hour_nomatch)) {
        SET(current, "no hour with %ld compared rounds", c->spike_min_rounds);
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "too few samples");
        return;
    }
    SET(current, "worst hour %.1f%% (%ld rounds)", 100 * all->worst_hour_nomatch,
        all->worst_hour_rounds);
    r->verdict = all->worst_hour_nomatch <= c->spike_nomatch ? TRIT_GATE_PASS : TRIT_GATE_FAIL;
}

void trit_gates_eval(const trit_gate_cfg *c, const trit_stats *all, const trit_stats *recent,
                     const trit_stats *previous, const trit_ppl_figs *ppl, trit_gate_table *t) {
    memset(t, 0, sizeof *t);
    trit_ppl_figs p = ppl_figs_of(ppl, all);
    /* one row per gate of DESIGN.md, in its order; the KLD row only when configured */
    gate_ppl(c, &p, t);
    if (c->kld_max > 0) gate_kld(c, &p, t);
    gate_exact(c, all, t);
    gate_classified(c, all, t);
    gate_rounds(c, all, t);
    gate_unreachable(c, all, t);
    gate_latency(c, all, t);
    gate_trend(c, recent, previous, t);
    gate_spike(c, all, t);
    /* GO only when every row passes (WAITING is not a pass) */
    t->go = true;
    for (int i = 0; i < t->n; i++)
        if (t->row[i].verdict != TRIT_GATE_PASS) t->go = false;
}

void trit_gates_print(FILE *out, const trit_gate_table *t) {
    fprintf(out, "%-20s %-38s %-50s %s\n", "gate", "target", "current", "verdict");
    for (int i = 0; i < t->n; i++) {
        const trit_gate_row *r = &t->row[i];
        fprintf(out, "%-20s %-38s %-50s %s%s%s\n", r->gate, r->target, r->current,
                trit_gate_verdict_name(r->verdict), *r->why ? "  " : "", r->why);
    }
    fprintf(out, "\n%s\n", t->go ? "GO: every gate passes" : "NO-GO: not every gate passes");
}

json_t *trit_gates_json(const trit_gate_table *t) {
    json_t *rows = json_array();
    for (int i = 0; i < t->n; i++) {
        const trit_gate_row *r = &t->row[i];
        json_array_append_new(rows, json_pack("{s:s,s:s,s:s,s:s,s:s}", "gate", r->gate, "target",
                                              r->target, "current", r->current, "verdict",
                                              trit_gate_verdict_name(r->verdict), "why", r->why));
    }
    return json_pack("{s:o,s:b}", "gates", rows, "go", t->go);
}

void trit_gates_windows(const trit_gate_cfg *cfg, const trit_stats_acc *acc, trit_stats *all,
                        trit_stats *recent, trit_stats *previous) {
    trit_stats_filter f = {.hour_min_rounds = cfg->spike_min_rounds};
    trit_stats_acc_compute(acc, &f, all);
    trit_stats_filter fr = f, fp = f;
    if (cfg->trend_window_rounds > 0) {
        fr.last_n = fp.last_n = cfg->trend_window_rounds;
        fp.skip_last = cfg->trend_window_rounds;
    } else {
        double w = cfg->trend_window_h * 3600, end = isnan(all->last_ts) ? 0 : all->last_ts;
        fr.since_ts = end - w;
        fp.since_ts = end - 2 * w;
        fp.until_ts = end - w;
        if (fp.since_ts <= 0) fp.since_ts = 1e-9;
    }
    trit_stats_acc_compute(acc, &fr, recent);
    trit_stats_acc_compute(acc, &fp, previous);
    if (cfg->trend_window_rounds <= 0 && previous->rounds == 0 && !isnan(all->last_ts) &&
        all->first_ts > all->last_ts - cfg->trend_window_h * 3600)
        previous->compared = 0; /* no previous window yet */
}
