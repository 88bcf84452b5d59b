/* dashboard.c — the live burn-in dashboard (dashboard.h): ledgers followed incrementally,
 * the page's JSON computed from a compact per-round table, the gate table from gates.c. */
#include "parity/dashboard.h"

#include "http/http.h"
#include "parity/www/dashboard.css.h"
#include "parity/www/dashboard.html.h"
#include "parity/www/dashboard.js.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK         (4u << 20) /* bytes read per pread while following */
#define MISSES_MAX    200
#define GATE_MIN_GAP  2.0  /* seconds between gate recomputations when the ledgers change, */
#define GATE_GAP_X    5.0  /* ... or this many times the last one's duration if longer */
#define GATE_MAX_AGE  30.0 /* ... and at least this often (the evidence-age check moves) */
#define TREND_MAX_BKT 200

/* One ledger being followed. */
typedef struct dash_file {
    const char *path;
    bool seen; /* opened at least once: dev/ino are valid */
    dev_t dev;
    ino_t ino;
    off_t off; /* just after the last complete line read */
} dash_file;

/* One round, as much as the page needs (the texts stay in the file, at off). */
typedef struct dash_round {
    double ts;
    int64_t round, off;
    uint32_t len, prompt, cat; /* line length; interned prompt id and category */
    uint16_t file;
    int8_t bucket, noise_bucket, tie;
    int32_t div_byte, prefix_len;
    float lat1, lat2; /* seconds; NAN when absent */
} dash_round;

struct trit_dash {
    trit_dash_opts o;
    pthread_mutex_t mu; /* everything below but the gate cache */
    dash_file *files;
    dash_round *r;
    long n, cap;
    uint64_t *seen; /* open-addressing set of line hashes (0 = empty slot) */
    size_t seen_cap, seen_n;
    char **names;                          /* interned prompt ids and categories */
    uint32_t n_names, names_cap, *name_ix; /* name_ix: open-addressing index, cap 2*names_cap */
    uint32_t name_ix_cap;
    long epoch, records, skipped, duplicates;
    trit_buf buf;
    pthread_mutex_t gate_mu; /* the gate cache */
    char *gate;              /* serialized /api/gate answer */
    long gate_epoch;
    int64_t gate_bytes;
    double gate_at, gate_took; /* when the cached answer was made, and how long it took */
};

/* ---- interning and the duplicate set ---- */

/* The index of name s[0..n) in d->names, added when new: prompt ids and categories repeat
 * tens of thousands of times, so each round keeps a number, not a string. */
static uint32_t intern(trit_dash *d, const char *s, size_t n) {
    if (d->n_names * 2 >= d->name_ix_cap) {
        uint32_t cap = d->name_ix_cap ? d->name_ix_cap * 2 : 256;
        free(d->name_ix);
        d->name_ix = xcalloc(cap, sizeof *d->name_ix);
        d->name_ix_cap = cap;
        for (uint32_t i = 0; i < d->n_names; i++) {
            uint32_t h = (uint32_t)trit_hash64(d->names[i], strlen(d->names[i])) & (cap - 1);
            while (d->name_ix[h]) h = (h + 1) & (cap - 1);
            d->name_ix[h] = i + 1;
        }
    }
    uint32_t h = (uint32_t)trit_hash64(s, n) & (d->name_ix_cap - 1);
    for (; d->name_ix[h]; h = (h + 1) & (d->name_ix_cap - 1)) {
        const char *t = d->names[d->name_ix[h] - 1];
        if (strlen(t) == n && !memcmp(t, s, n)) return d->name_ix[h] - 1;
    }
    if (d->n_names == d->names_cap) {
        d->names_cap = d->names_cap ? d->names_cap * 2 : 64;
        d->names = xrealloc(d->names, d->names_cap * sizeof *d->names);
    }
    d->names[d->n_names] = xstrndup(s, n);
    d->name_ix[h] = ++d->n_names;
    return d->n_names - 1;
}

/* Insert a line's hash; false when it was there already (a record of a merged copy). */
static bool seen_add(trit_dash *d, uint64_t h) {
    if (h == 0) h = 1; /* 0 marks an empty slot */
    if ((d->seen_n + 1) * 2 > d->seen_cap) {
        size_t cap = d->seen_cap ? d->seen_cap * 2 : 4096;
        uint64_t *t = xcalloc(cap, sizeof *t);
        for (size_t i = 0; i < d->seen_cap; i++) {
            if (!d->seen[i]) continue;
            size_t k = d->seen[i] & (cap - 1);
            while (t[k]) k = (k + 1) & (cap - 1);
            t[k] = d->seen[i];
        }
        free(d->seen);
        d->seen = t, d->seen_cap = cap;
    }
    size_t k = h & (d->seen_cap - 1);
    for (; d->seen[k]; k = (k + 1) & (d->seen_cap - 1))
        if (d->seen[k] == h) return false;
    d->seen[k] = h;
    d->seen_n++;
    return true;
}

/* ---- following ---- */

/* A round's summary into the table. */
static void add_round(trit_dash *d, int fi, const trit_ledger_rec *rec, int64_t off, size_t len) {
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1024;
        d->r = xrealloc(d->r, (size_t)d->cap * sizeof *d->r);
    }
    dash_round *r = &d->r[d->n++];
    *r = (dash_round){.ts = rec->ts,
                      .round = rec->round,
                      .off = off,
                      .len = (uint32_t)TRIT_MIN(len, (size_t)UINT32_MAX),
                      .prompt = intern(d, rec->prompt_id, rec->prompt_id_len),
                      .cat = intern(d, rec->category, rec->category_len),
                      .file = (uint16_t)fi,
                      .bucket = (int8_t)rec->bucket,
                      .noise_bucket = (int8_t)rec->noise_bucket,
                      .tie = (int8_t)rec->tie,
                      .div_byte = (int32_t)TRIT_MIN(rec->div_byte, (long)INT32_MAX),
                      .prefix_len = (int32_t)TRIT_MIN(rec->prefix_len, (long)INT32_MAX),
                      .lat1 = (float)rec->lat_gen1,
                      .lat2 = (float)rec->lat_gen2};
}

/* The complete lines of p[0..n) (which starts at file offset base): each new record counted,
 * each round kept. Returns the bytes consumed (through the last newline). */
static size_t take_lines(trit_dash *d, int fi, const char *p, size_t n, int64_t base) {
    size_t pos = 0;
    for (;;) {
        const char *nl = memchr(p + pos, '\n', n - pos);
        if (!nl) return pos;
        size_t len = (size_t)(nl - (p + pos));
        const char *line = p + pos;
        int64_t off = base + (int64_t)pos;
        pos += len + 1;
        if (len == 0 || !seen_add(d, trit_hash64(line, len))) {
            d->duplicates += len != 0;
            continue;
        }
        trit_ledger_rec rec;
        if (trit_ledger_parse_line(line, len, &rec)) {
            d->skipped++;
            continue;
        }
        d->records++;
        if (rec.type == TRIT_REC_ROUND && rec.bucket >= 0) add_round(d, fi, &rec, off, len);
        trit_ledger_rec_clear(&rec);
    }
}

/* Read file fi from its offset up to end (bytes appended since the last refresh). */
static void read_new(trit_dash *d, int fi, int fd, off_t end) {
    dash_file *f = &d->files[fi];
    trit_buf *b = &d->buf;
    b->len = 0;
    off_t pos = f->off; /* the file offset of b->p[0] */
    while (pos + (off_t)b->len < end) {
        size_t want = (size_t)TRIT_MIN((off_t)CHUNK, end - pos - (off_t)b->len);
        trit_buf_reserve(b, want);
        ssize_t k = pread(fd, b->p + b->len, want, pos + (off_t)b->len);
        if (k <= 0) break;
        b->len += (size_t)k;
        size_t used = take_lines(d, fi, b->p, b->len, pos);
        memmove(b->p, b->p + used, b->len - used);
        b->len -= used;
        pos += (off_t)used;
    }
    f->off = pos;
}

/* Follow one ledger. True when it was rotated, replaced, shrunk or removed since it was
 * last read: the caller starts over. */
static bool follow_file(trit_dash *d, int fi) {
    dash_file *f = &d->files[fi];
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return f->seen; /* gone after it was read: its rounds are gone too */
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return f->seen;
    }
    if (f->seen && (st.st_dev != f->dev || st.st_ino != f->ino || st.st_size < f->off)) {
        close(fd);
        return true;
    }
    f->seen = true, f->dev = st.st_dev, f->ino = st.st_ino;
    if (st.st_size > f->off) read_new(d, fi, fd, st.st_size);
    close(fd);
    return false;
}

/* Forget everything read: the next refresh reads every ledger from its start. */
static void reset_view(trit_dash *d) {
    for (uint32_t i = 0; i < d->n_names; i++) free(d->names[i]);
    d->n_names = 0;
    memset(d->name_ix, 0, d->name_ix_cap * sizeof *d->name_ix);
    if (d->seen) memset(d->seen, 0, d->seen_cap * sizeof *d->seen);
    d->seen_n = 0;
    d->n = 0;
    d->records = d->skipped = d->duplicates = 0;
    for (int i = 0; i < d->o.n_ledgers; i++) d->files[i] = (dash_file){.path = d->o.ledgers[i]};
    d->epoch++;
}

/* Under d->mu: every ledger followed; one rotation anywhere rereads them all, so the merge's
 * de-duplication never keeps a record that is no longer in any file. */
static void refresh_locked(trit_dash *d) {
    bool again = false;
    for (int i = 0; i < d->o.n_ledgers; i++) again |= follow_file(d, i);
    if (!again) return;
    reset_view(d);
    for (int i = 0; i < d->o.n_ledgers; i++) follow_file(d, i);
}

void trit_dash_refresh(trit_dash *d) {
    pthread_mutex_lock(&d->mu);
    refresh_locked(d);
    pthread_mutex_unlock(&d->mu);
}

trit_dash *trit_dash_new(const trit_dash_opts *o) {
    trit_dash *d = xcalloc(1, sizeof *d);
    d->o = *o;
    d->files = xcalloc((size_t)TRIT_MAX(o->n_ledgers, 1), sizeof *d->files);
    for (int i = 0; i < o->n_ledgers; i++) d->files[i] = (dash_file){.path = o->ledgers[i]};
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->gate_mu, NULL);
    d->gate_epoch = -1;
    return d;
}

void trit_dash_free(trit_dash *d) {
    if (!d) return;
    for (uint32_t i = 0; i < d->n_names; i++) free(d->names[i]);
    free(d->names), free(d->name_ix), free(d->seen), free(d->r), free(d->files), free(d->gate);
    trit_buf_free(&d->buf);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->gate_mu);
    free(d);
}

/* ---- the answers ---- */

/* Both sides answered (the rounds the rates count). */
static bool compared(const dash_round *r) {
    return r->bucket >= 0 && r->bucket <= TRIT_BUCKET_NOMATCH;
}
static bool is_miss(const dash_round *r) {
    return compared(r) && r->bucket != TRIT_BUCKET_EXACT;
}
/* A rate, or JSON null when nothing was counted. */
static json_t *rate(long num, long den) {
    return den > 0 ? json_real((double)num / (double)den) : json_null();
}

json_t *trit_dash_summary_json(trit_dash *d) {
    pthread_mutex_lock(&d->mu);
    refresh_locked(d);
    long cmp = 0, exact = 0, misses = 0, ties = 0, reals = 0;
    double last = NAN;
    for (long i = 0; i < d->n; i++) {
        const dash_round *r = &d->r[i];
        cmp += compared(r);
        exact += r->bucket == TRIT_BUCKET_EXACT;
        misses += is_miss(r);
        ties += r->bucket == TRIT_BUCKET_NOMATCH && r->tie == TRIT_TIE_TIE;
        reals += r->bucket == TRIT_BUCKET_NOMATCH && r->tie == TRIT_TIE_REAL;
        if (isnan(last) || r->ts > last) last = r->ts;
    }
    json_t *files = json_array();
    for (int i = 0; i < d->o.n_ledgers; i++)
        json_array_append_new(files, json_pack("{s:s,s:I}", "path", d->files[i].path, "offset",
                                               (json_int_t)d->files[i].off));
    json_t *j = json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:o,s:o}", "epoch", (json_int_t)d->epoch,
        "records", (json_int_t)d->records, "rounds", (json_int_t)d->n, "compared", (json_int_t)cmp,
        "exact", (json_int_t)exact, "misses", (json_int_t)misses, "ties", (json_int_t)ties,
        "exact_rate", rate(exact, cmp), "reals", (json_int_t)reals, "duplicates",
        (json_int_t)d->duplicates, "last_ts", trit_json_num(last), "ledgers", files);
    pthread_mutex_unlock(&d->mu);
    return j;
}

/* One time bucket's figures. */
typedef struct tbucket {
    long rounds, compared, exact, noise, noise_exact, n1, n2;
    float *lat1, *lat2; /* slices of one array each (counted first, then filled) */
} tbucket;

static int flt_cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}
/* Nearest-rank percentile of sorted v[0..n) in ms (stats.c's rule), null when empty. */
static json_t *pct_ms(float *v, long n, double p) {
    if (n <= 0) return json_null();
    qsort(v, (size_t)n, sizeof *v, flt_cmp);
    long k = (long)ceil(p * (double)n) - 1;
    k = TRIT_MAX(0, TRIT_MIN(k, n - 1));
    return json_real(1000.0 * v[k]);
}

/* The bucket of a round's time. */
static int bucket_of(double ts, double t0, double w, int nb) {
    int b = w > 0 ? (int)((ts - t0) / w) : 0;
    return TRIT_MAX(0, TRIT_MIN(b, nb - 1));
}

/* Counts and latency samples per time bucket (latencies like stats.c: gen-1's when it
 * answered, gen-2's over compared rounds). lat1/lat2 are the caller's to free. */
static void tally_buckets(const trit_dash *d, tbucket *tb, int nb, double t0, double w,
                          float **lat1, float **lat2) {
    for (long i = 0; i < d->n; i++) {
        const dash_round *r = &d->r[i];
        tbucket *b = &tb[bucket_of(r->ts, t0, w, nb)];
        b->rounds++;
        b->n1 += r->bucket != TRIT_BUCKET_GEN1_UNREACH && !isnan(r->lat1);
        b->n2 += compared(r) && !isnan(r->lat2);
    }
    *lat1 = xcalloc((size_t)d->n + 1, sizeof **lat1);
    *lat2 = xcalloc((size_t)d->n + 1, sizeof **lat2);
    long o1 = 0, o2 = 0;
    for (int k = 0; k < nb; k++) {
        tb[k].lat1 = *lat1 + o1, tb[k].lat2 = *lat2 + o2;
        o1 += tb[k].n1, o2 += tb[k].n2;
        tb[k].n1 = tb[k].n2 = 0;
    }
    for (long i = 0; i < d->n; i++) {
        const dash_round *r = &d->r[i];
        tbucket *b = &tb[bucket_of(r->ts, t0, w, nb)];
        if (r->bucket != TRIT_BUCKET_GEN1_UNREACH && !isnan(r->lat1)) b->lat1[b->n1++] = r->lat1;
        if (r->noise_bucket >= 0 && r->noise_bucket <= TRIT_BUCKET_NOMATCH) {
            b->noise++;
            b->noise_exact += r->noise_bucket == TRIT_BUCKET_EXACT;
        }
        if (!compared(r)) continue;
        b->compared++;
        b->exact += r->bucket == TRIT_BUCKET_EXACT;
        if (!isnan(r->lat2)) b->lat2[b->n2++] = r->lat2;
    }
}

/* Per category: totals and the exact rate in each time bucket. */
static json_t *category_json(const trit_dash *d, int nb, double t0, double w) {
    long *cnt = xcalloc((size_t)d->n_names * (size_t)(nb + 1) * 3 + 3, sizeof *cnt);
    bool *used = xcalloc((size_t)d->n_names + 1, sizeof *used);
    for (long i = 0; i < d->n; i++) {
        const dash_round *r = &d->r[i];
        long *c = cnt + (size_t)r->cat * (size_t)(nb + 1) * 3;
        long *cb = c + 3 * (1 + bucket_of(r->ts, t0, w, nb));
        used[r->cat] = true;
        c[0]++, cb[0]++;
        if (!compared(r)) continue;
        c[1]++, cb[1]++;
        if (r->bucket == TRIT_BUCKET_EXACT) c[2]++, cb[2]++;
    }
    json_t *cats = json_array();
    for (uint32_t k = 0; k < d->n_names; k++) {
        if (!used[k]) continue;
        const long *c = cnt + (size_t)k * (size_t)(nb + 1) * 3;
        json_t *series = json_array();
        for (int b = 0; b < nb; b++)
            json_array_append_new(series, rate(c[3 + 3 * b + 2], c[3 + 3 * b + 1]));
        json_array_append_new(cats, json_pack("{s:s,s:I,s:I,s:I,s:o,s:o}", "name", d->names[k],
                                              "rounds", (json_int_t)c[0], "compared",
                                              (json_int_t)c[1], "exact", (json_int_t)c[2], "rate",
                                              rate(c[2], c[1]), "series", series));
    }
    free(cnt), free(used);
    return cats;
}

/* The time range of the rounds: t0, and the width of each of nb buckets. */
static void time_range(const trit_dash *d, int nb, double *t0, double *w) {
    double lo = INFINITY, hi = -INFINITY;
    for (long i = 0; i < d->n; i++) lo = fmin(lo, d->r[i].ts), hi = fmax(hi, d->r[i].ts);
    *t0 = d->n ? lo : 0;
    *w = d->n && hi > lo ? (hi - lo) / nb * (1 + 1e-9) : 0;
}

json_t *trit_dash_trend_json(trit_dash *d, int nb) {
    nb = TRIT_MAX(1, TRIT_MIN(nb, TREND_MAX_BKT));
    pthread_mutex_lock(&d->mu);
    refresh_locked(d);
    double t0, w;
    time_range(d, nb, &t0, &w);
    if (w == 0) nb = 1;
    tbucket *tb = xcalloc((size_t)nb, sizeof *tb);
    float *l1, *l2;
    tally_buckets(d, tb, nb, t0, w, &l1, &l2);
    json_t *bs = json_array();
    for (int k = 0; k < nb; k++) {
        const tbucket *b = &tb[k];
        json_array_append_new(
            bs, json_pack("{s:f,s:I,s:I,s:I,s:o,s:I,s:o,s:o,s:o,s:o,s:o}", "t", t0 + k * w,
                          "rounds", (json_int_t)b->rounds, "compared", (json_int_t)b->compared,
                          "exact", (json_int_t)b->exact, "rate", rate(b->exact, b->compared),
                          "noise", (json_int_t)b->noise, "noise_rate",
                          rate(b->noise_exact, b->noise), "p50_v1", pct_ms(b->lat1, b->n1, 0.50),
                          "p95_v1", pct_ms(b->lat1, b->n1, 0.95), "p50_v2",
                          pct_ms(b->lat2, b->n2, 0.50), "p95_v2", pct_ms(b->lat2, b->n2, 0.95)));
    }
    json_t *j = json_pack("{s:I,s:f,s:f,s:o,s:o}", "epoch", (json_int_t)d->epoch, "t0", t0, "width",
                          w, "buckets", bs, "categories", category_json(d, nb, t0, w));
    pthread_mutex_unlock(&d->mu);
    free(tb), free(l1), free(l2);
    return j;
}

/* A miss in the newest-first order: its time and its position in the table. */
typedef struct miss_key {
    double ts;
    long i;
} miss_key;
/* Newest first: by time, then by position in the table (later first). */
static int miss_cmp(const void *a, const void *b) {
    const miss_key *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? 1 : -1;
    return (x->i < y->i) - (x->i > y->i);
}

/* The prompt with the most misses (the first on a tie, like stats.c) and its count. */
static json_t *top_miss_json(const trit_dash *d, long misses) {
    long *per = xcalloc((size_t)d->n_names + 1, sizeof *per);
    long best = -1;
    for (long i = 0; i < d->n; i++) {
        if (!is_miss(&d->r[i])) continue;
        long p = d->r[i].prompt;
        if (++per[p] > (best < 0 ? 0 : per[best]) || (per[p] == per[best] && p < best)) best = p;
    }
    json_t *j = best < 0
                    ? json_null()
                    : json_pack("{s:s,s:I,s:f}", "prompt_id", d->names[best], "misses",
                                (json_int_t)per[best], "share", (double)per[best] / (double)misses);
    free(per);
    return j;
}

/* One miss row of the list. */
static json_t *miss_row(const trit_dash *d, long i) {
    const dash_round *r = &d->r[i];
    char iso[32];
    trit_iso8601(r->ts, iso);
    const char *tie = r->tie == TRIT_TIE_TIE ? "tie" : r->tie == TRIT_TIE_REAL ? "real" : NULL;
    return json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s?,s:i,s:i}", "id", (json_int_t)i, "round",
                     (json_int_t)r->round, "time", iso, "prompt_id", d->names[r->prompt],
                     "category", d->names[r->cat], "bucket",
                     trit_bucket_name((trit_bucket)r->bucket), "tie", tie, "div_byte",
                     (int)r->div_byte, "prefix_len", (int)r->prefix_len);
}

json_t *trit_dash_misses_json(trit_dash *d, long offset, long limit) {
    limit = TRIT_MAX(0, TRIT_MIN(limit, MISSES_MAX));
    offset = TRIT_MAX(0, offset);
    pthread_mutex_lock(&d->mu);
    refresh_locked(d);
    miss_key *ix = xcalloc((size_t)d->n + 1, sizeof *ix);
    long m = 0;
    for (long i = 0; i < d->n; i++)
        if (is_miss(&d->r[i])) ix[m++] = (miss_key){d->r[i].ts, i};
    qsort(ix, (size_t)m, sizeof *ix, miss_cmp);
    json_t *rows = json_array();
    for (long k = offset; k < m && k < offset + limit; k++)
        json_array_append_new(rows, miss_row(d, ix[k].i));
    json_t *j =
        json_pack("{s:I,s:I,s:I,s:o,s:o}", "epoch", (json_int_t)d->epoch, "total", (json_int_t)m,
                  "offset", (json_int_t)offset, "misses", rows, "top_miss", top_miss_json(d, m));
    pthread_mutex_unlock(&d->mu);
    free(ix);
    return j;
}

/* The record of round i read back from its file (still the same file: same identity), parsed;
 * NULL when it cannot be. */
static json_t *read_record(const trit_dash *d, long i) {
    const dash_round *r = &d->r[i];
    const dash_file *f = &d->files[r->file];
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    char *line = malloc((size_t)r->len + 1);
    json_t *j = NULL;
    if (line && !fstat(fd, &st) && st.st_dev == f->dev && st.st_ino == f->ino &&
        pread(fd, line, r->len, r->off) == (ssize_t)r->len)
        j = json_loadb(line, r->len, 0, NULL);
    free(line);
    close(fd);
    return json_is_object(j) ? j : (json_decref(j), NULL);
}

json_t *trit_dash_miss_json(trit_dash *d, long epoch, long id) {
    pthread_mutex_lock(&d->mu);
    refresh_locked(d);
    json_t *rec = epoch == d->epoch && id >= 0 && id < d->n ? read_record(d, id) : NULL;
    json_t *j = NULL;
    if (rec) {
        /* the fields the miss view shows, copied as the ledger has them */
        static const char *const keys[] = {
            "round",        "time",         "prompt_id", "category",   "endpoint",
            "bucket",       "tie",          "div_byte",  "prefix_len", "div_token",
            "div_token_v1", "div_token_v2", "gap_v1",    "gap_v2",     "lat_v1",
            "lat_v2",       "finish_v1",    "finish_v2", "text_v1",    "text_v2",
            "split",        "prompt",       "v1",        "v2",         "source"};
        j = json_pack("{s:I,s:I}", "id", (json_int_t)id, "epoch", (json_int_t)d->epoch);
        for (size_t k = 0; k < TRIT_ARRAY_LEN(keys); k++) {
            json_t *v = json_object_get(rec, keys[k]);
            if (v) json_object_set(j, keys[k], v);
        }
        json_decref(rec);
    }
    pthread_mutex_unlock(&d->mu);
    return j;
}

/* The gate's answer, built from one trit_gate_evaluate (the evaluation `trit gate` prints). */
static char *gate_answer(const trit_dash *d) {
    trit_gate_run g;
    trit_err err = {0};
    const unsigned long mark = trit_http_json_mark();
    if (trit_gate_evaluate(d->o.config, d->o.ppl_path, d->o.ledgers, d->o.n_ledgers,
                           d->o.allow_unchained, trit_wall_s(), &g, &err)) {
        json_t *e = json_pack("{s:s}", "error", err.msg);
        return trit_http_dumps(e, mark);
    }
    json_t *j = trit_gates_json(&g.t);
    json_object_set_new(j, "verdict", json_string(trit_gate_verdict_word(g.rc)));
    json_object_set_new(j, "reason", json_string(g.pv.reason));
    json_object_set_new(j, "rounds", json_integer(g.all.rounds));
    json_object_set_new(j, "compared", json_integer(g.all.compared));
    json_object_set_new(j, "config",
                        json_string(d->o.config ? d->o.config : "(production defaults)"));
    json_object_set_new(j, "ts", json_real(g.now));
    json_object_set_new(j, "provenance", trit_provenance_json(&g.pv, &g.ppl));
    trit_gate_run_free(&g);
    return trit_http_dumps(j, mark);
}

/* The serialized gate answer: recomputed when the ledgers changed (not more often than
 * GATE_MIN_GAP, or GATE_GAP_X times the last evaluation's duration: on a 50 000-round ledger
 * the chain check alone takes about a second, and a burn-in appends every few seconds) or
 * when it is older than GATE_MAX_AGE. A malloc'd copy, or NULL. */
static char *gate_cached(trit_dash *d) {
    pthread_mutex_lock(&d->mu);
    refresh_locked(d);
    long epoch = d->epoch;
    int64_t bytes = 0;
    for (int i = 0; i < d->o.n_ledgers; i++) bytes += d->files[i].off;
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_lock(&d->gate_mu);
    double now = trit_now_s(), age = now - d->gate_at;
    bool changed = epoch != d->gate_epoch || bytes != d->gate_bytes;
    double gap = fmax(GATE_MIN_GAP, GATE_GAP_X * d->gate_took);
    if (!d->gate || (changed && age >= gap) || age >= fmax(GATE_MAX_AGE, gap)) {
        char *s = gate_answer(d);
        if (s) {
            free(d->gate);
            d->gate = s, d->gate_epoch = epoch, d->gate_bytes = bytes, d->gate_at = now;
            d->gate_took = trit_now_s() - now;
        }
    }
    char *out = d->gate ? xstrdup(d->gate) : NULL;
    pthread_mutex_unlock(&d->gate_mu);
    return out;
}

json_t *trit_dash_gate_json(trit_dash *d) {
    char *s = gate_cached(d);
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    return j;
}

/* ---- HTTP ---- */

static const trit_http_asset ASSETS[] = {
    {"/", "text/html; charset=utf-8", www_parity_dashboard_html, www_parity_dashboard_html_len},
    {"/dashboard.js", "text/javascript; charset=utf-8", www_parity_dashboard_js,
     www_parity_dashboard_js_len},
    {"/dashboard.css", "text/css; charset=utf-8", www_parity_dashboard_css,
     www_parity_dashboard_css_len},
};

bool trit_dash_route(const char *prefix, const char *path, bool *is_api) {
    size_t n = strlen(prefix);
    *is_api = false;
    if (strncmp(path, prefix, n) != 0) return false;
    const char *rest = path + n;
    if (*rest == 0) return n > 0; /* the prefix alone: redirected to prefix/ */
    if (*rest != '/') return false;
    *is_api = !strncmp(rest, "/api/", 5);
    return true;
}

/* A JSON reply, checked (a tree that lost a member to an allocation failure is a 500). */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *s) {
    if (!s) {
        status = 500;
        s = trit_http_error_body("dashboard: out of memory", "server_error", NULL, NULL);
    }
    struct MHD_Response *r = trit_http_response(status, "application/json", s);
    if (r) MHD_add_response_header(r, "Cache-Control", "no-store");
    return trit_http_queue(c, status, r);
}

/* A numeric query argument, or def. */
static long arg_long(struct MHD_Connection *c, const char *name, long def) {
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    char *end;
    long x = v ? strtol(v, &end, 10) : def;
    return v && (*v == 0 || *end) ? def : x;
}

/* The API's routes. */
static enum MHD_Result answer_api(trit_dash *d, struct MHD_Connection *c, const char *api) {
    const unsigned long mark = trit_http_json_mark();
    json_t *j = NULL;
    if (!strcmp(api, "summary"))
        j = trit_dash_summary_json(d);
    else if (!strcmp(api, "trend"))
        j = trit_dash_trend_json(d, (int)arg_long(c, "buckets", 40));
    else if (!strcmp(api, "misses"))
        j = trit_dash_misses_json(d, arg_long(c, "offset", 0), arg_long(c, "limit", 50));
    else if (!strcmp(api, "gate"))
        return send_json(c, 200, gate_cached(d));
    else if (!strcmp(api, "miss")) {
        j = trit_dash_miss_json(d, arg_long(c, "epoch", -1), arg_long(c, "id", -1));
        if (!j)
            return send_json(c, 404,
                             trit_http_error_body("no such miss (the ledger may have been "
                                                  "rotated: reload the list)",
                                                  "invalid_request_error", "id", NULL));
    } else
        return send_json(c, 404,
                         trit_http_error_body("no such dashboard API route",
                                              "invalid_request_error", NULL, NULL));
    return send_json(c, 200, trit_http_dumps(j, mark));
}

enum MHD_Result trit_dash_answer(trit_dash *d, struct MHD_Connection *c, const char *method,
                                 const char *prefix, const char *path) {
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return send_json(c, 405,
                         trit_http_error_body("the dashboard is read-only: GET only",
                                              "invalid_request_error", NULL, NULL));
    const char *rest = path + strlen(prefix);
    if (*rest == 0) { /* "/parity" -> "/parity/": the page's relative URLs resolve under it */
        char loc[256];
        snprintf(loc, sizeof loc, "%s/", prefix);
        struct MHD_Response *r = trit_http_response(308, "text/plain", xstrdup(""));
        if (r) MHD_add_response_header(r, "Location", loc);
        return trit_http_queue(c, 308, r);
    }
    if (!strncmp(rest, "/api/", 5)) return answer_api(d, c, rest + 5);
    const trit_http_asset *a = trit_http_asset_find(ASSETS, TRIT_ARRAY_LEN(ASSETS), rest);
    if (a) return trit_http_send_asset(c, a);
    return send_json(
        c, 404,
        trit_http_error_body("no such dashboard page", "invalid_request_error", NULL, NULL));
}

/* ---- standing on its own: `trit burnin dashboard` ---- */

typedef struct dash_server {
    trit_dash *d;
    trit_http_daemon hd;
    trit_http_intake in;
} dash_server;

void trit_dash_request_stop(void) {
    trit_stop_request();
}

/* An intake refusal as an OpenAI-shaped error. */
static enum MHD_Result send_refusal(struct MHD_Connection *c, const trit_http_refusal *r) {
    return send_json(c, (unsigned)r->status,
                     trit_http_error_body(r->message, r->type, NULL, r->code));
}

/* MHD's handler: http's intake on the first call (Host, Origin, the key for /api/), a body
 * (none is expected: the dashboard is read-only) counted and dropped, then the answer. */
static enum MHD_Result serve_handler(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version, const char *upload,
                                     size_t *upload_size, void **con_cls) {
    (void)upload;
    dash_server *s = cls;
    if (!*con_cls) {
        *con_cls = s; /* marks "checked" */
        trit_http_refusal rf;
        bool api;
        trit_dash_route("", url, &api);
        if (trit_http_check_peer(c, version, &s->in, &rf) ||
            trit_http_check_entry(c, &s->in, api, &rf))
            return send_refusal(c, &rf);
        return MHD_YES;
    }
    if (*upload_size) {
        trit_http_body_seen(s->hd.guard, c, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    trit_http_body_done(s->hd.guard, c);
    return trit_dash_answer(s->d, c, method, "", url);
}

static void serve_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe) {
    (void)con_cls, (void)toe;
    dash_server *s = cls;
    trit_http_request_done(s->hd.guard, c);
}

int trit_dash_serve(trit_dash_opts *o, trit_err *err) {
    const trit_http_door door = {.who = "trit burnin dashboard",
                                 .host = o->host,
                                 .api_key = o->api_key,
                                 .key_env = "TRIT_API_KEY",
                                 .insecure_no_key = o->insecure_no_key};
    if (trit_http_door_check(&door, err)) return -1;
    dash_server s = {.d = trit_dash_new(o)};
    s.in = (trit_http_intake){.bound = o->host,
                              .loopback = trit_http_is_loopback(o->host),
                              .host_allow = o->host_allow,
                              .api_key = o->api_key,
                              .max_body = 4096};
    trit_http_limits lim;
    trit_http_limits_default(&lim);
    lim.max_body = 4096;
    lim.max_conns = 64;
    signal(SIGPIPE, SIG_IGN);
    trit_http_json_init();
    trit_dash_refresh(s.d); /* the first read before the URL is announced */
    const trit_http_callbacks cb = {
        .handler = serve_handler, .completed = serve_completed, .cls = &s};
    if (trit_http_start(&s.hd, o->host, o->port, &lim, &cb, err)) {
        trit_dash_free(s.d);
        return -1;
    }
    o->bound_port = s.hd.port;
    printf("dashboard: http://%s:%d/\n", o->host, o->bound_port);
    fflush(stdout);
    trit_wait_for_stop(); /* SIGINT/SIGTERM or trit_dash_request_stop */
    trit_http_stop(&s.hd);
    trit_dash_free(s.d);
    return 0;
}
