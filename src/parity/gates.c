/* gates.c — the cutover gate table (docs/parity.md "Gate config"): INI config, ppl figures,
 * provenance, verdicts. Too few samples or a missing reference is FAIL, never PASS; the
 * rounds gate counts compared rounds only and FAILs below its target, with the count. */
#include "parity/gates.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
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
    c->ppl_min_tokens = 1024;
    c->max_age = 7 * 86400.0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

enum { K_DBL, K_LONG, K_BOOL, K_DUR };
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
#define KT(f)                                                                                      \
    { #f, K_DUR, offsetof(trit_gate_cfg, f) }
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
    KL(ppl_min_tokens),
    KT(max_age),
};

/* A duration: a non-negative number of seconds, or with a unit s, m, h, d (7d, 36h).
 * 0, or -1 when malformed. */
static int parse_dur(const char *v, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || end == v || errno || !isfinite(x) || x < 0) return -1;
    double unit = !*end               ? 1
                  : !strcmp(end, "s") ? 1
                  : !strcmp(end, "m") ? 60
                  : !strcmp(end, "h") ? 3600
                  : !strcmp(end, "d") ? 86400
                                      : -1;
    if (unit < 0) return -1;
    *out = x * unit;
    return 0;
}

/* The [gates] key named k, or NULL: one table (keys[]) names every key and its type. */
static const ini_key *gate_key_find(const char *k) {
    const ini_key *key = NULL;
    for (size_t i = 0; i < TRIT_ARRAY_LEN(keys); i++)
        if (!strcmp(keys[i].name, k)) key = &keys[i];
    return key;
}

/* Parses value v of key k (line lineno of config name) by the key's type and stores it in c;
 * a value of the wrong shape is an error naming the line, the key and the expected shape. */
static int gate_key_set(const ini_key *key, const char *k, const char *v, const char *name,
                        int lineno, trit_gate_cfg *c, trit_err *err) {
    char *end;
    errno = 0;
    if (key->kind == K_DUR) {
        double d;
        if (parse_dur(v, &d))
            return trit_fail(err, TRIT_EFORMAT,
                             "%s:%d: %s: expected a duration (7d, 36h, 90m, seconds), got '%s'",
                             name, lineno, k, v);
        *(double *)((char *)c + key->off) = d;
    } else if (key->kind == K_BOOL) {
        bool b;
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
            b = true;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
            b = false;
        else
            return trit_fail(err, TRIT_EFORMAT, "%s:%d: %s: expected true/false, got '%s'", name,
                             lineno, k, v);
        *(bool *)((char *)c + key->off) = b;
    } else if (key->kind == K_LONG) {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || x < 0)
            return trit_fail(err, TRIT_EFORMAT,
                             "%s:%d: %s: expected a non-negative integer, got '%s'", name, lineno,
                             k, v);
        *(long *)((char *)c + key->off) = x;
    } else {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x) || x < 0)
            return trit_fail(err, TRIT_EFORMAT,
                             "%s:%d: %s: expected a non-negative number, got '%s'", name, lineno, k,
                             v);
        *(double *)((char *)c + key->off) = x;
    }
    return 0;
}

/* One non-blank, non-comment line s (line lineno of config name): a section header switches
 * *in_gates; a 'key = value' line in [gates] is looked up and stored in c. */
static int gate_cfg_line(char *s, const char *name, int lineno, bool *in_gates, trit_gate_cfg *c,
                         trit_err *err) {
    if (*s == '[') {
        char *e = strchr(s, ']');
        if (!e || *trim(e + 1))
            return trit_fail(err, TRIT_EFORMAT, "%s:%d: malformed section header '%s'", name,
                             lineno, s);
        *e = 0;
        *in_gates = !strcmp(trim(s + 1), "gates");
        return 0;
    }
    char *eq = strchr(s, '=');
    if (!eq)
        return trit_fail(err, TRIT_EFORMAT, "%s:%d: expected 'key = value', got '%s'", name, lineno,
                         s);
    *eq = 0;
    char *k = trim(s), *v = trim(eq + 1);
    char *hash = strpbrk(v, "#;");
    if (hash) *hash = 0, v = trim(v);
    if (!*in_gates) return 0; /* other sections belong to other tools */
    const ini_key *key = gate_key_find(k);
    if (!key)
        return trit_fail(err, TRIT_EFORMAT, "%s:%d: unknown key '%s' in [gates]", name, lineno, k);
    return gate_key_set(key, k, v, name, lineno, c, err);
}

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
        rc = gate_cfg_line(s, name, lineno, &in_gates, c, err);
        if (rc) break;
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
    return v == TRIT_GATE_PASS ? "PASS" : "FAIL";
}

static double num_field(json_t *o, const char *k1, const char *k2) {
    json_t *v = json_object_get(json_object_get(o, k1), k2);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A string field copied into a fixed buffer ("" when absent or not a string). */
static void str_field(const json_t *o, const char *k, char *out, size_t sz) {
    const char *v = json_string_value(json_object_get(o, k));
    snprintf(out, sz, "%s", v ? v : "");
}

void trit_side_ident_from_json(const json_t *ident, trit_side_ident *s) {
    memset(s, 0, sizeof *s);
    if (json_is_string(ident)) { /* a digest alone */
        snprintf(s->digest, sizeof s->digest, "%s", json_string_value(ident));
        return;
    }
    if (!json_is_object(ident)) return;
    trit_identity_digest(ident, s->digest);
    str_field(ident, "engine", s->engine, sizeof s->engine);
    str_field(ident, "build", s->build, sizeof s->build);
    str_field(ident, "model", s->model, sizeof s->model);
    str_field(ident, "model_sha256", s->sha256, sizeof s->sha256);
    str_field(ident, "url", s->url, sizeof s->url);
    str_field(ident, "instance", s->instance, sizeof s->instance);
    s->full = true;
}

/* The provenance `trit ppl` records beside its figures; has_provenance only when the text's
 * hash, the scored tokens, both identities and the time of the run ("ts", which max_age
 * judges like a ledger record's) are all there. */
static void ppl_provenance(json_t *j, trit_ppl_figs *p) {
    str_field(j, "text_sha256", p->text_sha256, sizeof p->text_sha256);
    str_field(j, "text_path", p->text_path, sizeof p->text_path);
    json_t *st = json_object_get(j, "scored_tokens");
    p->scored_tokens = json_is_integer(st) ? (long)json_integer_value(st) : -1;
    json_t *ts = json_object_get(j, "ts");
    p->ts = json_is_number(ts) ? json_number_value(ts) : NAN;
    json_t *i1 = json_object_get(j, "gen1_identity"), *i2 = json_object_get(j, "gen2_identity");
    trit_side_ident_from_json(i1, &p->ident1);
    trit_side_ident_from_json(i2, &p->ident2);
    p->has_provenance = p->text_sha256[0] && p->scored_tokens >= 0 && p->ident1.digest[0] &&
                        p->ident2.digest[0] && !isnan(p->ts);
}

int trit_ppl_figs_load(const char *path, trit_ppl_figs *p, trit_err *err) {
    memset(p, 0, sizeof *p);
    p->gen1 = p->gen1_err = p->gen2 = p->gen2_err = p->kld_mean = p->ts = NAN;
    p->scored_tokens = -1;
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
    ppl_provenance(j, p);
    json_decref(j);
    if (isnan(p->gen1) || isnan(p->gen2))
        return trit_fail(err, TRIT_EFORMAT, "ppl file %s: needs gen1.ppl and gen2.ppl numbers",
                         path);
    /* the receipt names the file by its bytes */
    if (trit_sha256_file(path, p->file_sha256, err)) return -1;
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
    trit_ppl_figs f = {.scored_tokens = -1, .ts = NAN};
    if (all->has_ppl && !isnan(all->ppl_gen1) && !isnan(all->ppl_gen2)) {
        f.present = true;
        f.gen1 = all->ppl_gen1, f.gen1_err = all->ppl_gen1_err;
        f.gen2 = all->ppl_gen2, f.gen2_err = all->ppl_gen2_err;
        f.kld_mean = all->kld_mean;
        f.shape1 = all->ppl_shape1, f.shape2 = all->ppl_shape2;
    }
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
    if (!ppl_same_shape(p, r->why, sizeof r->why)) {
        r->verdict = TRIT_GATE_FAIL;
        return;
    }
    /* nor does a perplexity over a handful of tokens */
    long scored = TRIT_MIN(p->shape1.count, p->shape2.count);
    if (p->scored_tokens > 0) scored = TRIT_MIN(scored, p->scored_tokens);
    if (scored < c->ppl_min_tokens) {
        r->verdict = TRIT_GATE_FAIL;
        SET(why, "too few samples (%ld < %ld scored tokens)", scored, c->ppl_min_tokens);
    }
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
        SET(why, "too few samples (%ld < %ld compared rounds)", all->compared,
            TRIT_MAX(c->min_samples, 1L));
    } else {
        r->verdict = TRIT_GATE_PASS;
    }
}

/* rounds: compared rounds only (an unreachable round compared nothing); below the target it
 * is FAIL like every gate with too few samples, the row saying how many are still needed */
static void gate_rounds(const trit_gate_cfg *c, const trit_stats *all, trit_gate_table *t) {
    char tg[64];
    snprintf(tg, sizeof tg, ">= %ld compared", c->rounds_min);
    trit_gate_row *r = add_row(t, "rounds", tg);
    SET(current, "%ld compared (%ld rounds, %ld unreachable)", all->compared, all->rounds,
        all->rounds - all->compared);
    r->verdict =
        all->compared >= c->rounds_min && all->compared > 0 ? TRIT_GATE_PASS : TRIT_GATE_FAIL;
    if (r->verdict != TRIT_GATE_PASS)
        SET(why, "too few samples (%ld < %ld compared rounds; %ld more needed)", all->compared,
            TRIT_MAX(c->rounds_min, 1L), TRIT_MAX(c->rounds_min, 1L) - all->compared);
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
        SET(why, "too few samples (0 < %ld rounds gen-1 answered)", TRIT_MAX(c->min_samples, 1L));
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
        SET(why, "too few samples (%ld < %ld compared rounds)", all->compared,
            TRIT_MAX(c->min_samples, 1L));
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
        SET(why, "too few samples (no clock hour holds %ld compared rounds; %ld in all)",
            c->spike_min_rounds, all->compared);
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
    /* one row per gate of docs/parity.md, in its order; the KLD row only when configured */
    gate_ppl(c, &p, t);
    if (c->kld_max > 0) gate_kld(c, &p, t);
    gate_exact(c, all, t);
    gate_classified(c, all, t);
    gate_rounds(c, all, t);
    gate_unreachable(c, all, t);
    gate_latency(c, all, t);
    gate_trend(c, recent, previous, t);
    gate_spike(c, all, t);
    /* GO only when every row passes */
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

/* ======================= provenance ======================= */

/* A URL as a server is named: host case, a trailing '/' and a "/v1" suffix do not matter. */
static void url_norm(const char *u, size_t n, char *out, size_t sz) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < sz; i++) out[k++] = (char)tolower((unsigned char)u[i]);
    out[k] = 0;
    while (k > 0 && out[k - 1] == '/') out[--k] = 0;
    if (k >= 3 && !strcmp(out + k - 3, "/v1")) out[k -= 3] = 0;
    while (k > 0 && out[k - 1] == '/') out[--k] = 0;
}

typedef struct prov_ctx {
    trit_provenance *pv;
    json_t *ident[2];    /* the newest identity record of each side */
    char inst[2][4][64]; /* the instances (per-process ids) each side's records name */
    int n_inst[2];
    bool same_instance; /* one instance on both sides */
    char last_u1[256], last_u2[256];
    bool last_same; /* the same-server answer for last_u1/last_u2 */
} prov_ctx;

/* A round's digest for one side, counted among the side's distinct digests. A compared
 * round without one is counted (its evidence names no server); an unreachable round may
 * lack it (the side could not be asked what it is). */
static void note_digest(trit_prov_side *s, const char *d, bool compared) {
    if (!d[0]) {
        s->rounds_without += compared;
        return;
    }
    int n = TRIT_MIN(s->n_digests, TRIT_PROV_MAX_DIGESTS);
    for (int i = 0; i < n; i++)
        if (!strcmp(s->digests[i], d)) return;
    if (s->n_digests < TRIT_PROV_MAX_DIGESTS)
        snprintf(s->digests[s->n_digests], sizeof s->digests[0], "%s", d);
    s->n_digests++;
}

/* A side's instance (a server's per-process id) from an identity record: the same one on
 * both sides is one running server, whatever URLs it was reached by. */
static void note_instance(prov_ctx *c, int side, const char *inst) {
    if (!inst || !inst[0]) return;
    for (int i = 0; i < c->n_inst[1 - side]; i++)
        if (!strcmp(c->inst[1 - side][i], inst)) c->same_instance = true;
    for (int i = 0; i < c->n_inst[side]; i++)
        if (!strcmp(c->inst[side][i], inst)) return;
    if (c->n_inst[side] < 4)
        snprintf(c->inst[side][c->n_inst[side]++], sizeof c->inst[0][0], "%s", inst);
}

/* One record of the merged ledgers: time span, identity records, each round's digests and
 * URLs. */
static int prov_cb(void *user, const trit_ledger_rec *r, const char *line, size_t len) {
    prov_ctx *c = user;
    trit_provenance *pv = c->pv;
    if (!isnan(r->ts)) {
        if (isnan(pv->oldest_ts) || r->ts < pv->oldest_ts) pv->oldest_ts = r->ts;
        if (isnan(pv->newest_ts) || r->ts > pv->newest_ts) pv->newest_ts = r->ts;
    }
    if (r->type == TRIT_REC_IDENTITY && r->ident) {
        int k = !strcmp(r->side, "v1") ? 0 : !strcmp(r->side, "v2") ? 1 : -1;
        if (k >= 0) {
            json_decref(c->ident[k]);
            c->ident[k] = json_incref(r->ident);
            note_instance(c, k, json_string_value(json_object_get(r->ident, "instance")));
        }
        return 0;
    }
    if (r->type != TRIT_REC_ROUND || r->bucket < 0) return 0;
    pv->rounds++;
    bool compared = r->bucket <= TRIT_BUCKET_NOMATCH;
    note_digest(&pv->gen1, r->ident_gen1, compared);
    note_digest(&pv->gen2, r->ident_gen2, compared);
    /* each side's URL as the rounds name it (the first one seen); one server on both sides
     * is judged by the one same-server rule (client.h), asked again only when the pair of
     * URLs changes */
    char u1[256] = "", u2[256] = "";
    if (r->url_gen1.p) url_norm(r->url_gen1.p, r->url_gen1.n, u1, sizeof u1);
    if (r->url_gen2.p) url_norm(r->url_gen2.p, r->url_gen2.n, u2, sizeof u2);
    if (strcmp(u1, c->last_u1) || strcmp(u2, c->last_u2)) {
        c->last_same = trit_same_server_url(u1, u2);
        snprintf(c->last_u1, sizeof c->last_u1, "%s", u1);
        snprintf(c->last_u2, sizeof c->last_u2, "%s", u2);
    }
    if (c->last_same) pv->same_url_rounds++;
    if (!pv->gen1.id.url[0]) snprintf(pv->gen1.id.url, sizeof pv->gen1.id.url, "%s", u1);
    if (!pv->gen2.id.url[0]) snprintf(pv->gen2.id.url, sizeof pv->gen2.id.url, "%s", u2);
    return 0;
}

/* Refuse with a reason (the first one found wins). */
__attribute__((format(printf, 2, 3))) static void refuse(trit_provenance *pv, const char *fmt,
                                                         ...) {
    if (!pv->refused) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(pv->reason, sizeof pv->reason, fmt, ap);
        va_end(ap);
    }
    pv->refused = true;
}

/* An age in words: days from two days on, else hours from two hours on, else seconds. */
static const char *age_text(double s, char out[32]) {
    if (s >= 2 * 86400)
        snprintf(out, 32, "%.1f days", s / 86400);
    else if (s >= 2 * 3600)
        snprintf(out, 32, "%.1f h", s / 3600);
    else
        snprintf(out, 32, "%.0f s", s);
    return out;
}

/* Something accepted only because it was allowed, or left unchecked: said with the table. */
static void note(trit_provenance *pv, const char *text) {
    size_t n = strlen(pv->notes);
    snprintf(pv->notes + n, sizeof pv->notes - n, "%s%s", n ? "; " : "", text);
}

/* Each ledger's chain, judged on its own: broken refuses; unchained refuses unless allowed. */
static int check_chains(trit_provenance *pv, const char *const *ledgers, int n, trit_err *err) {
    pv->ledger = xcalloc((size_t)n, sizeof *pv->ledger);
    pv->n_ledgers = n;
    for (int i = 0; i < n; i++) {
        trit_prov_ledger *l = &pv->ledger[i];
        l->path = ledgers[i];
        if (trit_ledger_verify(ledgers[i], &l->chain, err)) return -1;
        if (l->chain.status == TRIT_CHAIN_BROKEN)
            refuse(pv, "ledger %s: hash chain broken: %s", l->path, l->chain.msg);
        else if (l->chain.status == TRIT_CHAIN_UNCHAINED && !pv->allow_unchained)
            refuse(pv,
                   "ledger %s is %s; its records could be edited without trace (--allow-unchained "
                   "accepts it)",
                   l->path, l->chain.msg);
        else if (l->chain.status == TRIT_CHAIN_UNCHAINED)
            note(pv, "unchained ledger accepted (--allow-unchained)");
    }
    return 0;
}

/* One side's identity: one digest in every round, and (when recorded) the full object. */
static void check_side(trit_provenance *pv, trit_prov_side *s, const char *name, json_t *ident) {
    char url[256];
    snprintf(url, sizeof url, "%s", s->id.url);
    if (ident && s->n_digests >= 1) {
        trit_side_ident_from_json(ident, &s->id);
        if (!s->id.url[0]) snprintf(s->id.url, sizeof s->id.url, "%s", url);
    } else if (s->n_digests >= 1) {
        snprintf(s->id.digest, sizeof s->id.digest, "%s", s->digests[0]);
    }
    if (s->n_digests > 1)
        refuse(pv,
               "the ledgers mix %d identities of %s (%s, %s%s): one verdict is about one server",
               s->n_digests, name, s->digests[0], s->digests[1], s->n_digests > 2 ? ", ..." : "");
    else if (s->n_digests == 1 && s->rounds_without > 0)
        refuse(pv,
               "the ledgers mix identities of %s: %ld compared rounds record none, the others %s",
               name, s->rounds_without, s->digests[0]);
    else if (ident && s->n_digests == 1 && strcmp(s->id.digest, s->digests[0]))
        refuse(pv, "%s's identity record (%s) is not the one its rounds name (%s)", name,
               s->id.digest, s->digests[0]);
}

/* Does the ppl run's side a describe the same model as the ledger's side b? The same digest;
 * or, for an in-process run against a served one, the same model sha256 or model path. */
static bool same_model(const trit_side_ident *a, const trit_side_ident *b) {
    if (a->digest[0] && !strcmp(a->digest, b->digest)) return true;
    if (a->sha256[0] && b->sha256[0]) return !strcmp(a->sha256, b->sha256);
    return a->model[0] && b->model[0] && !strcmp(a->model, b->model);
}

/* The ppl file: its provenance present, about the ledgers' models and servers, not stale. */
static void check_ppl(const trit_gate_cfg *cfg, trit_provenance *pv, const trit_ppl_figs *p) {
    if (!p || !p->present) return;
    if (!p->has_provenance) {
        refuse(pv, "the ppl file has no provenance (needs \"gen1_identity\", \"gen2_identity\", "
                   "\"text_sha256\", \"scored_tokens\", \"ts\": written by `trit ppl`)");
        return;
    }
    if (!pv->gen1.id.digest[0] || !pv->gen2.id.digest[0]) {
        note(pv, "ppl file not cross-checked: the ledgers record no identity");
    } else {
        if (!same_model(&p->ident1, &pv->gen1.id))
            refuse(pv,
                   "the ppl file is about another gen-1 (%s %s, digest %s) than the ledgers (%s "
                   "%s, digest %s)",
                   p->ident1.engine, p->ident1.model, p->ident1.digest, pv->gen1.id.engine,
                   pv->gen1.id.model, pv->gen1.id.digest);
        if (!same_model(&p->ident2, &pv->gen2.id))
            refuse(pv,
                   "the ppl file is about another gen-2 (%s %s, digest %s) than the ledgers (%s "
                   "%s, digest %s)",
                   p->ident2.engine, p->ident2.model, p->ident2.digest, pv->gen2.id.engine,
                   pv->gen2.id.model, pv->gen2.id.digest);
    }
    if (pv->now - p->ts > cfg->max_age) {
        char age[32], max[32];
        refuse(pv, "the ppl file is %s old (max_age %s)", age_text(pv->now - p->ts, age),
               age_text(cfg->max_age, max));
    }
}

int trit_gate_provenance(const trit_gate_cfg *cfg, const char *const *ledgers, int n_ledgers,
                         const trit_ppl_figs *ppl, bool allow_unchained, double now,
                         trit_provenance *pv, trit_err *err) {
    memset(pv, 0, sizeof *pv);
    pv->oldest_ts = pv->newest_ts = NAN;
    pv->now = now;
    pv->allow_unchained = allow_unchained;
    if (check_chains(pv, ledgers, n_ledgers, err)) return -1;
    prov_ctx c = {.pv = pv};
    if (trit_ledger_scan_many(ledgers, n_ledgers, prov_cb, &c, true, NULL, err)) {
        json_decref(c.ident[0]), json_decref(c.ident[1]);
        return -1;
    }
    check_side(pv, &pv->gen1, "gen-1", c.ident[0]);
    check_side(pv, &pv->gen2, "gen-2", c.ident[1]);
    json_decref(c.ident[0]), json_decref(c.ident[1]);
    /* one server on both sides compares a server with itself: one instance in both sides'
     * identity records, or a round whose two URLs name one server (client.h's rule) */
    if (c.same_instance || pv->same_url_rounds > 0)
        refuse(pv,
               "gen-1 and gen-2 are the same server (%s; %ld of %ld rounds name one URL on both "
               "sides): a server compared with itself proves nothing",
               c.same_instance ? "one instance id on both sides" : pv->gen1.id.url,
               pv->same_url_rounds, pv->rounds);
    /* two servers running one engine, build and model: a deployment compared with itself,
     * not a new engine with the old one; allowed (a canary, a second region), but said */
    if (pv->gen1.id.digest[0] && !strcmp(pv->gen1.id.digest, pv->gen2.id.digest))
        note(pv, "gen-1 and gen-2 are the same engine, build and model (one identity digest): "
                 "this compares two deployments, not two engines");
    /* no identity at all: legacy evidence, accepted only like an unchained ledger */
    if (pv->rounds > 0 && pv->gen1.n_digests == 0 && pv->gen2.n_digests == 0) {
        if (allow_unchained)
            note(pv, "no server identity recorded (accepted: --allow-unchained)");
        else
            refuse(pv,
                   "the ledgers record no server identity (\"v1_ident\"/\"v2_ident\", ledger "
                   "schema %d): they cannot say what was compared (--allow-unchained accepts them)",
                   TRIT_LEDGER_SCHEMA);
    }
    /* stale evidence, and clocks that say the future */
    if (!isnan(pv->oldest_ts) && now - pv->oldest_ts > cfg->max_age) {
        char iso[32], age[32], max[32];
        trit_iso8601(pv->oldest_ts, iso);
        refuse(pv, "evidence older than max_age: the oldest record is from %s (%s old; max_age %s)",
               iso, age_text(now - pv->oldest_ts, age), age_text(cfg->max_age, max));
    }
    if (!isnan(pv->newest_ts) && pv->newest_ts > now + 300) {
        char iso[32];
        trit_iso8601(pv->newest_ts, iso);
        refuse(pv, "a record is dated in the future (%s): the clock or the ledger is wrong", iso);
    }
    check_ppl(cfg, pv, ppl);
    return 0;
}

void trit_provenance_free(trit_provenance *pv) {
    free(pv->ledger);
    pv->ledger = NULL;
}

/* One side's line of the provenance block. */
static void print_side(FILE *out, const char *name, const trit_prov_side *s) {
    const trit_side_ident *i = &s->id;
    if (!i->digest[0]) {
        fprintf(out, "  %s  identity not recorded; url %s\n", name, i->url[0] ? i->url : "?");
        return;
    }
    fprintf(out, "  %s  %s %s, model %s, sha256 %s, url %s (digest %s)\n", name,
            i->engine[0] ? i->engine : "?", i->build[0] ? i->build : "?",
            i->model[0] ? i->model : "?", i->sha256[0] ? i->sha256 : "not reported",
            i->url[0] ? i->url : "?", i->digest);
}

void trit_provenance_print(FILE *out, const trit_provenance *pv, const trit_ppl_figs *p) {
    fprintf(out, "provenance\n");
    print_side(out, "gen-1", &pv->gen1);
    print_side(out, "gen-2", &pv->gen2);
    for (int i = 0; i < pv->n_ledgers; i++)
        fprintf(out, "  ledger %s: %s, %ld records, head %s\n", pv->ledger[i].path,
                trit_chain_status_name(pv->ledger[i].chain.status), pv->ledger[i].chain.records,
                pv->ledger[i].chain.head);
    if (!isnan(pv->oldest_ts)) {
        char a[32], b[32];
        trit_iso8601(pv->oldest_ts, a);
        trit_iso8601(pv->newest_ts, b);
        fprintf(out, "  evidence from %s to %s\n", a, b);
    }
    if (p && p->present && p->file_sha256[0])
        fprintf(out, "  ppl file sha256 %s; text %s sha256 %s; %ld scored tokens\n", p->file_sha256,
                p->text_path[0] ? p->text_path : "?", p->text_sha256[0] ? p->text_sha256 : "?",
                p->scored_tokens);
    else if (p && p->present)
        fprintf(out, "  ppl figures from the ledger's ppl record\n");
    else
        fprintf(out, "  ppl: none\n");
    if (pv->notes[0]) fprintf(out, "  ALLOWED/NOTE: %s\n", pv->notes);
    fprintf(out, "\n");
}

/* One side's identity in the receipt. */
static json_t *side_json(const trit_prov_side *s) {
    const trit_side_ident *i = &s->id;
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "digest", i->digest, "engine", i->engine, "build",
                     i->build, "model", i->model, "model_sha256", i->sha256, "url", i->url);
}

json_t *trit_provenance_json(const trit_provenance *pv, const trit_ppl_figs *p) {
    json_t *ls = json_array();
    for (int i = 0; i < pv->n_ledgers; i++)
        json_array_append_new(ls,
                              json_pack("{s:s,s:s,s:s,s:I}", "path", pv->ledger[i].path, "chain",
                                        trit_chain_status_name(pv->ledger[i].chain.status), "head",
                                        pv->ledger[i].chain.head, "records",
                                        (json_int_t)pv->ledger[i].chain.records));
    json_t *j = json_pack("{s:o,s:o,s:o,s:b,s:s,s:s}", "gen1", side_json(&pv->gen1), "gen2",
                          side_json(&pv->gen2), "ledgers", ls, "refused", pv->refused, "reason",
                          pv->reason, "notes", pv->notes);
    if (p && p->present)
        json_object_set_new(j, "ppl",
                            json_pack("{s:s,s:s,s:s,s:I}", "sha256", p->file_sha256, "text_sha256",
                                      p->text_sha256, "text_path", p->text_path, "scored_tokens",
                                      (json_int_t)p->scored_tokens));
    return j;
}

/* The one evaluation: `trit gate` prints it and writes receipts from it, the dashboard
 * serves it, so the page and the command can never disagree. */
int trit_gate_evaluate(const char *config, const char *ppl_path, const char *const *ledgers,
                       int n_ledgers, bool allow_unchained, double now, trit_gate_run *g,
                       trit_err *err) {
    memset(g, 0, sizeof *g);
    g->now = now;
    trit_gate_cfg_default(&g->cfg);
    if (config && (trit_gate_cfg_load(config, &g->cfg, err) ||
                   trit_sha256_file(config, g->config_sha256, err)))
        return -1;
    if (ppl_path && trit_ppl_figs_load(ppl_path, &g->ppl, err)) return -1;
    if (trit_gate_provenance(&g->cfg, ledgers, n_ledgers, ppl_path ? &g->ppl : NULL,
                             allow_unchained, now, &g->pv, err))
        return -1;
    trit_stats_acc *acc = trit_stats_acc_load(ledgers, n_ledgers, false, err);
    if (!acc) {
        trit_provenance_free(&g->pv);
        return -1;
    }
    /* the table, over the same windows the report uses */
    trit_stats recent, prev;
    trit_gates_windows(&g->cfg, acc, &g->all, &recent, &prev);
    trit_gates_eval(&g->cfg, &g->all, &recent, &prev, g->ppl.present ? &g->ppl : NULL, &g->t);
    trit_stats_acc_free(acc);
    g->rc = g->pv.refused ? 2 : g->t.go ? 0 : 1;
    return 0;
}

void trit_gate_run_free(trit_gate_run *g) {
    trit_provenance_free(&g->pv);
}

const char *trit_gate_verdict_word(int rc) {
    return rc == 0 ? "GO" : rc == 1 ? "NO-GO" : "REFUSED";
}
