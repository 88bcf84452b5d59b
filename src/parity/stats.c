/* stats.c — aggregate ledger rounds: rates, buckets, ties, latency percentiles, top_miss,
 * categories, noise lane, worst hour, ppl. Records are kept compact (no texts) so several
 * windows can be computed from one scan. */
#include "parity/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct crec {
    double ts;
    int64_t round;
    long seq; /* load order, tie-break for equal ts */
    long prefix_len;
    float lat1, lat2;
    int prompt, category;
    signed char bucket, noise_bucket, tie;
} crec;

typedef struct strtab {
    char **s;
    int n, cap;
    int *slots; /* open addressing, -1 empty */
    size_t nslots;
} strtab;

static int strtab_get(strtab *t, const char *s, size_t n) {
    if (t->nslots == 0 || (size_t)(t->n + 1) * 2 > t->nslots) {
        size_t ns = t->nslots ? t->nslots * 2 : 64;
        int *slots = xmalloc(ns * sizeof *slots);
        for (size_t i = 0; i < ns; i++) slots[i] = -1;
        for (int i = 0; i < t->n; i++) {
            size_t h = trit_hash64(t->s[i], strlen(t->s[i])) & (ns - 1);
            while (slots[h] >= 0) h = (h + 1) & (ns - 1);
            slots[h] = i;
        }
        free(t->slots);
        t->slots = slots;
        t->nslots = ns;
    }
    size_t h = trit_hash64(s, n) & (t->nslots - 1);
    while (t->slots[h] >= 0) {
        const char *x = t->s[t->slots[h]];
        if (strlen(x) == n && !memcmp(x, s, n)) return t->slots[h];
        h = (h + 1) & (t->nslots - 1);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 32;
        t->s = xrealloc(t->s, (size_t)t->cap * sizeof *t->s);
    }
    t->s[t->n] = xstrndup(s, n);
    t->slots[h] = t->n;
    return t->n++;
}

static void strtab_free(strtab *t) {
    for (int i = 0; i < t->n; i++) free(t->s[i]);
    free(t->s);
    free(t->slots);
}

struct trit_stats_acc {
    crec *r;
    long n, cap;
    strtab prompts, cats;
    trit_stats_filter filter;
    long records, ppl_records, skipped, duplicates;
    bool has_ppl;
    double ppl_ts;
    double ppl[5];
    trit_ppl_shape ppl_shape1, ppl_shape2;
};

trit_stats_acc *trit_stats_acc_new(const trit_stats_filter *filter) {
    trit_stats_acc *a = xcalloc(1, sizeof *a);
    if (filter) a->filter = *filter;
    a->ppl_ts = -INFINITY;
    return a;
}

void trit_stats_acc_free(trit_stats_acc *a) {
    if (!a) return;
    free(a->r);
    strtab_free(&a->prompts);
    strtab_free(&a->cats);
    free(a);
}

void trit_stats_acc_add(trit_stats_acc *a, const trit_ledger_rec *rec) {
    a->records++;
    if (rec->type == TRIT_REC_PPL) {
        a->ppl_records++;
        double ts = isnan(rec->ts) ? 0 : rec->ts;
        if (ts >= a->ppl_ts) {
            a->ppl_ts = ts;
            a->has_ppl = true;
            a->ppl[0] = rec->ppl_gen1, a->ppl[1] = rec->ppl_gen1_err, a->ppl[2] = rec->ppl_gen2;
            a->ppl[3] = rec->ppl_gen2_err, a->ppl[4] = rec->kld_mean;
            a->ppl_shape1 = rec->ppl_shape1, a->ppl_shape2 = rec->ppl_shape2;
        }
        return;
    }
    if (rec->type != TRIT_REC_ROUND || rec->bucket < 0) return;
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->r = xrealloc(a->r, (size_t)a->cap * sizeof *a->r);
    }
    crec *c = &a->r[a->n];
    c->ts = isnan(rec->ts) ? 0 : rec->ts;
    c->round = rec->round;
    c->seq = a->n;
    c->prefix_len = rec->prefix_len;
    c->lat1 = (float)rec->lat_gen1;
    c->lat2 = (float)rec->lat_gen2;
    c->prompt = strtab_get(&a->prompts, rec->prompt_id, rec->prompt_id_len);
    c->category = strtab_get(&a->cats, rec->category, rec->category_len);
    c->bucket = (signed char)rec->bucket;
    c->noise_bucket = (signed char)rec->noise_bucket;
    c->tie = (signed char)rec->tie;
    a->n++;
}

static int acc_cb(void *user, const trit_ledger_rec *rec, const char *line, size_t len) {
    trit_stats_acc_add(user, rec);
    return 0;
}

trit_stats_acc *trit_stats_acc_load(const char *const *paths, int n_paths, bool quiet,
                                    trit_err *err) {
    trit_stats_acc *a = trit_stats_acc_new(NULL);
    trit_ledger_scan_info info;
    /* merged and de-duplicated: --ledger X --ledger X counts X once */
    if (trit_ledger_scan_many(paths, n_paths, acc_cb, a, quiet, &info, err)) {
        trit_stats_acc_free(a);
        return NULL;
    }
    a->skipped += info.skipped;
    a->duplicates += info.duplicates;
    return a;
}

static int crec_cmp(const void *x, const void *y) {
    const crec *a = x, *b = y;
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

static int dbl_cmp(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* nearest-rank percentile of sorted v[0..n) */
static double pct(const double *v, long n, double p) {
    if (n <= 0) return NAN;
    long k = (long)ceil(p * (double)n) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return v[k];
}

static bool sorted_by_ts(const crec *r, long n) {
    for (long i = 1; i < n; i++)
        if (r[i].ts < r[i - 1].ts) return false;
    return true;
}

/* The records of one window, [*lo, *hi) of r (ordered by time): since/until bounds, then the
 * newest skip_last dropped, then the last last_n kept. */
static void window_of(const crec *r, long n, const trit_stats_filter *f, long *lo, long *hi) {
    *lo = 0, *hi = n;
    if (f->since_ts > 0)
        while (*lo < *hi && r[*lo].ts < f->since_ts) (*lo)++;
    if (f->until_ts > 0)
        while (*hi > *lo && r[*hi - 1].ts >= f->until_ts) (*hi)--;
    if (f->skip_last > 0) *hi = *hi - f->skip_last > *lo ? *hi - f->skip_last : *lo;
    if (f->last_n > 0 && *hi - *lo > f->last_n) *lo = *hi - f->last_n;
}

/* The highest no-match share among compared rounds in any clock hour holding at least
 * min_rounds of them (NAN when no hour does). */
static void worst_hour(const crec *r, long lo, long hi, long min_rounds, trit_stats *st) {
    st->worst_hour_nomatch = NAN;
    long i = lo;
    while (i < hi) {
        /* one clock hour: [i, j) */
        long hour = (long)floor(r[i].ts / 3600.0), j = i, cmp = 0, nm = 0;
        for (; j < hi && (long)floor(r[j].ts / 3600.0) == hour; j++) {
            cmp += r[j].bucket <= TRIT_BUCKET_NOMATCH;
            nm += r[j].bucket == TRIT_BUCKET_NOMATCH;
        }
        double share = cmp ? (double)nm / (double)cmp : 0;
        if (cmp >= min_rounds && (isnan(st->worst_hour_nomatch) || share > st->worst_hour_nomatch))
            st->worst_hour_nomatch = share, st->worst_hour_rounds = cmp;
        i = j;
    }
}

/* What the per-round pass collects besides the counters in trit_stats. */
typedef struct tally {
    double *lat1, *lat2, *prefix; /* for percentiles and the median */
    long n_lat1, n_lat2, n_prefix;
    long *miss;  /* per prompt index */
    long *cat_r; /* per category: rounds, compared, exact */
} tally;

/* Count one round: buckets, latencies, misses per prompt and category, ties, noise lane. */
static void count_round(trit_stats *st, tally *t, const crec *c) {
    st->rounds++;
    st->bucket[c->bucket]++;
    t->cat_r[c->category * 3]++;
    if (c->bucket != TRIT_BUCKET_GEN1_UNREACH && !isnan(c->lat1)) t->lat1[t->n_lat1++] = c->lat1;
    if (c->noise_bucket >= 0 && c->noise_bucket <= TRIT_BUCKET_NOMATCH) {
        st->noise_rounds++;
        if (c->noise_bucket == TRIT_BUCKET_EXACT) st->noise_exact++;
    }
    /* the rest only for rounds where both sides answered */
    if (c->bucket > TRIT_BUCKET_NOMATCH) return;
    st->compared++;
    t->cat_r[c->category * 3 + 1]++;
    if (!isnan(c->lat2)) t->lat2[t->n_lat2++] = c->lat2;
    if (c->bucket == TRIT_BUCKET_EXACT) {
        t->cat_r[c->category * 3 + 2]++;
        return;
    }
    st->misses++;
    t->miss[c->prompt]++;
    if (c->prefix_len >= 0) t->prefix[t->n_prefix++] = (double)c->prefix_len;
    if (c->bucket != TRIT_BUCKET_NOMATCH) return;
    if (c->tie == TRIT_TIE_TIE)
        st->ties++;
    else if (c->tie == TRIT_TIE_REAL)
        st->reals++;
    else
        st->tie_unknown++;
}

/* Rates, percentiles, the median prefix, top_miss and the categories from the tally. */
static void finish_stats(const trit_stats_acc *a, tally *t, trit_stats *st) {
    st->exact_rate = st->compared ? (double)st->bucket[TRIT_BUCKET_EXACT] / st->compared : NAN;
    long v2_denom = st->rounds - st->bucket[TRIT_BUCKET_GEN1_UNREACH];
    st->v2_unreach_rate =
        v2_denom > 0 ? (double)st->bucket[TRIT_BUCKET_GEN2_UNREACH] / (double)v2_denom : NAN;
    qsort(t->lat1, (size_t)t->n_lat1, sizeof *t->lat1, dbl_cmp);
    qsort(t->lat2, (size_t)t->n_lat2, sizeof *t->lat2, dbl_cmp);
    qsort(t->prefix, (size_t)t->n_prefix, sizeof *t->prefix, dbl_cmp);
    st->p50_v1 = pct(t->lat1, t->n_lat1, 0.50);
    st->p95_v1 = pct(t->lat1, t->n_lat1, 0.95);
    st->p50_v2 = pct(t->lat2, t->n_lat2, 0.50);
    st->p95_v2 = pct(t->lat2, t->n_lat2, 0.95);
    st->p95_gap = st->p95_v2 - st->p95_v1;
    long np = t->n_prefix;
    const double *pre = t->prefix;
    st->median_prefix = np ? (np % 2 ? pre[np / 2] : (pre[np / 2 - 1] + pre[np / 2]) / 2) : NAN;
    /* top_miss: the prompt with the most misses (the first such on a tie) */
    int top = -1;
    for (int i = 0; i < a->prompts.n; i++)
        if (t->miss[i] > 0 && (top < 0 || t->miss[i] > t->miss[top])) top = i;
    st->top_miss_share = NAN;
    if (top >= 0) {
        snprintf(st->top_miss, sizeof st->top_miss, "%s", a->prompts.s[top]);
        st->top_miss_count = t->miss[top];
        st->top_miss_share = (double)t->miss[top] / (double)st->misses;
    }
    for (int i = 0; i < a->cats.n && st->n_cat < TRIT_STATS_MAX_CAT; i++) {
        if (!t->cat_r[i * 3]) continue;
        trit_stats_cat *sc = &st->cat[st->n_cat++];
        snprintf(sc->name, sizeof sc->name, "%s", *a->cats.s[i] ? a->cats.s[i] : "(none)");
        sc->rounds = t->cat_r[i * 3];
        sc->compared = t->cat_r[i * 3 + 1];
        sc->exact = t->cat_r[i * 3 + 2];
    }
    st->noise_exact_rate = st->noise_rounds ? (double)st->noise_exact / st->noise_rounds : NAN;
    st->excess_miss = (1 - st->exact_rate) - (1 - st->noise_exact_rate);
}

void trit_stats_acc_compute(const trit_stats_acc *a, const trit_stats_filter *filter,
                            trit_stats *st) {
    trit_stats_filter f = filter ? *filter : a->filter;
    if (f.hour_min_rounds <= 0) f.hour_min_rounds = 20;
    memset(st, 0, sizeof *st);
    st->records = a->records;
    st->ppl_records = a->ppl_records;
    st->skipped_lines = a->skipped;
    st->duplicates = a->duplicates;

    /* order by time (a copy only when the input is not already ordered), then the window */
    crec *r = a->r, *sorted = NULL;
    if (!sorted_by_ts(a->r, a->n)) {
        sorted = xmalloc((size_t)(a->n ? a->n : 1) * sizeof *sorted);
        memcpy(sorted, a->r, (size_t)a->n * sizeof *sorted);
        qsort(sorted, (size_t)a->n, sizeof *sorted, crec_cmp);
        r = sorted;
    }
    long lo, hi;
    window_of(r, a->n, &f, &lo, &hi);
    long n = hi - lo;
    st->first_ts = n ? r[lo].ts : NAN;
    st->last_ts = n ? r[hi - 1].ts : NAN;

    /* one pass over the window's rounds, then the derived figures */
    size_t cap = (size_t)(n ? n : 1);
    tally t = {.lat1 = xmalloc(cap * sizeof(double)),
               .lat2 = xmalloc(cap * sizeof(double)),
               .prefix = xmalloc(cap * sizeof(double)),
               .miss = xcalloc((size_t)(a->prompts.n ? a->prompts.n : 1), sizeof(long)),
               .cat_r = xcalloc((size_t)(a->cats.n ? a->cats.n : 1), 3 * sizeof(long))};
    for (long i = lo; i < hi; i++) count_round(st, &t, &r[i]);
    worst_hour(r, lo, hi, f.hour_min_rounds, st);
    finish_stats(a, &t, st);

    /* the newest ppl record, whatever the window */
    st->has_ppl = a->has_ppl;
    st->ppl_gen1 = a->ppl[0], st->ppl_gen1_err = a->ppl[1], st->ppl_gen2 = a->ppl[2];
    st->ppl_gen2_err = a->ppl[3], st->kld_mean = a->ppl[4];
    st->ppl_shape1 = a->ppl_shape1, st->ppl_shape2 = a->ppl_shape2;
    free(t.lat1);
    free(t.lat2);
    free(t.prefix);
    free(t.miss);
    free(t.cat_r);
    free(sorted);
}

void trit_stats_acc_finish(trit_stats_acc *a, trit_stats *st) {
    trit_stats_acc_compute(a, NULL, st);
    trit_stats_acc_free(a);
}

int trit_stats_compute(const char *const *paths, int n_paths, const trit_stats_filter *filter,
                       trit_stats *st, trit_err *err) {
    trit_stats_acc *a = trit_stats_acc_load(paths, n_paths, false, err);
    if (!a) return -1;
    trit_stats_acc_compute(a, filter, st);
    trit_stats_acc_free(a);
    return 0;
}

/* ---- output ---- */
static void pct_or_na(char *out, size_t n, double v) {
    if (isnan(v))
        snprintf(out, n, "n/a");
    else
        snprintf(out, n, "%.2f%%", 100 * v);
}

static void ms_or_na(char *out, size_t n, double v) {
    if (isnan(v))
        snprintf(out, n, "n/a");
    else
        snprintf(out, n, "%.1f ms", 1000 * v);
}

void trit_stats_print(FILE *out, const trit_stats *st) {
    char a[32], b[32], c[32], d[32];
    char t0[32] = "-", t1[32] = "-";
    if (!isnan(st->first_ts)) trit_iso8601(st->first_ts, t0);
    if (!isnan(st->last_ts)) trit_iso8601(st->last_ts, t1);
    fprintf(out, "rounds           %ld (%s .. %s)\n", st->rounds, t0, t1);
    pct_or_na(a, sizeof a, st->exact_rate);
    fprintf(out, "exact-match      %s of %ld compared\n", a, st->compared);
    fprintf(out, "buckets         ");
    for (int i = 0; i < TRIT_BUCKET_N; i++)
        fprintf(out, " %s=%ld", trit_bucket_name((trit_bucket)i), st->bucket[i]);
    fprintf(out, "\n");
    fprintf(out, "no-match         tie=%ld real=%ld unclassified=%ld\n", st->ties, st->reals,
            st->tie_unknown);
    if (isnan(st->median_prefix))
        fprintf(out, "median prefix    n/a\n");
    else
        fprintf(out, "median prefix    %.1f bytes (over non-exact rounds)\n", st->median_prefix);
    ms_or_na(a, sizeof a, st->p50_v1), ms_or_na(b, sizeof b, st->p95_v1);
    ms_or_na(c, sizeof c, st->p50_v2), ms_or_na(d, sizeof d, st->p95_v2);
    fprintf(out, "latency v1       p50 %s  p95 %s\n", a, b);
    fprintf(out, "latency v2       p50 %s  p95 %s\n", c, d);
    ms_or_na(a, sizeof a, st->p95_gap);
    fprintf(out, "p95 gap          %s (v2 - v1)\n", a);
    pct_or_na(a, sizeof a, st->v2_unreach_rate);
    fprintf(out, "v2 unreachable   %s\n", a);
    if (st->top_miss_count > 0)
        fprintf(out, "top_miss         %s: %ld of %ld misses (%.0f%%) -> %s\n", st->top_miss,
                st->top_miss_count, st->misses, 100 * st->top_miss_share,
                st->top_miss_share > 0.5 ? "concentrated on one prompt: look at the sampler"
                                         : "spread over prompts: look at the model");
    else
        fprintf(out, "top_miss         none\n");
    for (int i = 0; i < st->n_cat; i++) {
        pct_or_na(a, sizeof a,
                  st->cat[i].compared ? (double)st->cat[i].exact / st->cat[i].compared : NAN);
        fprintf(out, "  category %-16s %5ld rounds  exact %s\n", st->cat[i].name, st->cat[i].rounds,
                a);
    }
    if (st->noise_rounds) {
        pct_or_na(a, sizeof a, st->noise_exact_rate);
        fprintf(out,
                "noise lane       gen-1 vs gen-1 exact %s over %ld rounds; excess miss %+.2f%%\n",
                a, st->noise_rounds, 100 * st->excess_miss);
    } else {
        fprintf(out, "noise lane       not recorded\n");
    }
    if (!isnan(st->worst_hour_nomatch))
        fprintf(out, "worst hour       %.1f%% no-match over %ld rounds\n",
                100 * st->worst_hour_nomatch, st->worst_hour_rounds);
    if (st->has_ppl)
        fprintf(out,
                "ppl              gen-1 %.4f ± %.4f  gen-2 %.4f ± %.4f  delta %+.4f  KLD %.6f\n",
                st->ppl_gen1, st->ppl_gen1_err, st->ppl_gen2, st->ppl_gen2_err,
                st->ppl_gen2 - st->ppl_gen1, st->kld_mean);
    if (st->skipped_lines)
        fprintf(out, "skipped lines    %ld (malformed or truncated)\n", st->skipped_lines);
    if (st->duplicates)
        fprintf(out, "duplicates       %ld (in more than one ledger; counted once)\n",
                st->duplicates);
}

json_t *trit_stats_json(const trit_stats *st) {
    json_t *b = json_object();
    for (int i = 0; i < TRIT_BUCKET_N; i++)
        json_object_set_new(b, trit_bucket_name((trit_bucket)i), json_integer(st->bucket[i]));
    json_t *cats = json_object();
    for (int i = 0; i < st->n_cat; i++)
        json_object_set_new(cats, st->cat[i].name,
                            json_pack("{s:I,s:I,s:I,s:o}", "rounds", (json_int_t)st->cat[i].rounds,
                                      "compared", (json_int_t)st->cat[i].compared, "exact",
                                      (json_int_t)st->cat[i].exact, "exact_rate",
                                      trit_json_num(st->cat[i].compared ? (double)st->cat[i].exact /
                                                                              st->cat[i].compared
                                                                        : NAN)));
    json_t *o = json_object();
    json_object_set_new(o, "records", json_integer(st->records));
    json_object_set_new(o, "rounds", json_integer(st->rounds));
    json_object_set_new(o, "compared", json_integer(st->compared));
    json_object_set_new(o, "skipped_lines", json_integer(st->skipped_lines));
    json_object_set_new(o, "duplicates", json_integer(st->duplicates));
    json_object_set_new(o, "exact_rate", trit_json_num(st->exact_rate));
    json_object_set_new(o, "buckets", b);
    json_object_set_new(o, "no_match",
                        json_pack("{s:I,s:I,s:I}", "tie", (json_int_t)st->ties, "real",
                                  (json_int_t)st->reals, "unclassified",
                                  (json_int_t)st->tie_unknown));
    json_object_set_new(o, "median_prefix", trit_json_num(st->median_prefix));
    json_object_set_new(o, "latency_s",
                        json_pack("{s:o,s:o,s:o,s:o,s:o}", "p50_v1", trit_json_num(st->p50_v1),
                                  "p95_v1", trit_json_num(st->p95_v1), "p50_v2",
                                  trit_json_num(st->p50_v2), "p95_v2", trit_json_num(st->p95_v2),
                                  "p95_gap", trit_json_num(st->p95_gap)));
    json_object_set_new(o, "v2_unreachable_rate", trit_json_num(st->v2_unreach_rate));
    json_object_set_new(
        o, "top_miss",
        st->top_miss_count ? json_pack("{s:s,s:I,s:I,s:o}", "prompt_id", st->top_miss, "misses",
                                       (json_int_t)st->top_miss_count, "of", (json_int_t)st->misses,
                                       "share", trit_json_num(st->top_miss_share))
                           : json_null());
    json_object_set_new(o, "categories", cats);
    json_object_set_new(o, "noise",
                        json_pack("{s:I,s:o,s:o}", "rounds", (json_int_t)st->noise_rounds,
                                  "exact_rate", trit_json_num(st->noise_exact_rate), "excess_miss",
                                  trit_json_num(st->excess_miss)));
    json_object_set_new(o, "worst_hour_nomatch", trit_json_num(st->worst_hour_nomatch));
    json_object_set_new(o, "first_ts", trit_json_num(st->first_ts));
    json_object_set_new(o, "last_ts", trit_json_num(st->last_ts));
    json_object_set_new(
        o, "ppl",
        st->has_ppl
            ? json_pack("{s:{s:o,s:o},s:{s:o,s:o},s:{s:o}}", "gen1", "ppl",
                        trit_json_num(st->ppl_gen1), "ppl_err", trit_json_num(st->ppl_gen1_err),
                        "gen2", "ppl", trit_json_num(st->ppl_gen2), "ppl_err",
                        trit_json_num(st->ppl_gen2_err), "kld", "mean", trit_json_num(st->kld_mean))
            : json_null());
    return o;
}
