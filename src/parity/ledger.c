/* ledger.c — JSONL ledger: append + fsync; a fast summary scanner that reads only the fields
 * stats need (strings skipped with memchr), so 50 000 rounds scan in a few tens of ms. */
#include "parity/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct trit_ledger {
    int fd;
    char *path;
};

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

trit_ledger *trit_ledger_open(const char *path, trit_err *err) {
    /* 0600: prompts and replies are the operator's data, not every local user's */
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        trit_fail(err, TRIT_EIO, "cannot open ledger %s: %s", path, strerror(errno));
        return NULL;
    }
    /* one writer per ledger: two would interleave round numbers (a burn-in and a shadow on
     * one file wrote duplicate rounds); the lock lives as long as the descriptor */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            trit_fail(err, TRIT_EIO,
                      "ledger %s is in use by another writer (a burn-in, shadow or ppl run holds "
                      "its lock); give each writer its own ledger and merge them with --ledger A "
                      "--ledger B",
                      path);
        else
            trit_fail(err, TRIT_EIO, "cannot lock ledger %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    /* A crash can leave a truncated last line: start ours on a fresh line so the fragment
     * stays one malformed (skipped) line instead of corrupting the next record. */
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        char c = 0;
        if (pread(fd, &c, 1, st.st_size - 1) == 1 && c != '\n') {
            trit_log(TRIT_LOG_WARN,
                     "ledger %s: last line is incomplete (crash?); it will be "
                     "skipped",
                     path);
            if (write_all(fd, "\n", 1) || fsync(fd)) {
                trit_fail(err, TRIT_EIO, "cannot write ledger %s: %s", path, strerror(errno));
                close(fd);
                return NULL;
            }
        }
    }
    trit_ledger *l = xcalloc(1, sizeof *l);
    l->fd = fd;
    l->path = xstrdup(path);
    return l;
}

int trit_ledger_append(trit_ledger *l, json_t *obj, trit_err *err) {
    if (!json_is_object(obj)) return trit_fail(err, TRIT_EINVAL, "ledger record is not an object");
    char *s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!s) return trit_fail(err, TRIT_EINVAL, "ledger record cannot be serialised");
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    s[n] = 0;
    int rc = write_all(l->fd, s, n) || fsync(l->fd);
    free(s);
    if (rc)
        return trit_fail(err, TRIT_EIO, "cannot append to ledger %s: %s", l->path, strerror(errno));
    return 0;
}

void trit_ledger_close(trit_ledger *l) {
    if (!l) return;
    close(l->fd);
    free(l->path);
    free(l);
}

/* ---- round records ---- */
json_t *trit_json_num(double v) {
    return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

json_t *trit_ledger_text_json(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    if (j) return j;
    trit_buf b = {0}; /* invalid UTF-8: the project's one repair rule (llama-server's) */
    trit_utf8_repair(s, n, &b);
    j = json_stringn(b.p, b.len);
    trit_buf_free(&b);
    return j ? j : json_string("");
}

static json_t *top_json(const trit_client_resp *r, int idx) {
    if (idx < 0 || idx >= r->n_tokens) return json_null();
    const trit_client_token *t = &r->tokens[idx];
    json_t *a = json_array();
    for (int j = 0; j < t->n_top && j < 5; j++)
        json_array_append_new(
            a, json_pack("{s:o,s:i,s:o}", "t", trit_ledger_text_json(t->top[j].text, t->top[j].len),
                         "id", (int)t->top[j].id, "lp", trit_json_num(t->top[j].logprob)));
    return json_pack("{s:o,s:i,s:o}", "t", trit_ledger_text_json(t->text, t->len), "id", (int)t->id,
                     "top", a);
}

static int ntok(const trit_client_resp *r) {
    if (r->kind != TRIT_CLIENT_OK) return -1;
    return r->completion_tokens >= 0 ? r->completion_tokens : r->n_tokens;
}

static void hash_hex(const trit_client_resp *r, char out[65]) {
    trit_sha256_hex(r->content, r->content_len, out);
}

static json_t *side(const char *url, const char *model) {
    return json_pack("{s:s,s:s}", "url", url ? url : "", "model", model ? model : "");
}

json_t *trit_ledger_round_json(const trit_round_meta *m, const trit_client_resp *r1,
                               const trit_client_resp *r2, const trit_compare *cmp) {
    double ts = m->ts > 0 ? m->ts : trit_wall_s();
    char iso[32], h1[65], h2[65];
    trit_iso8601(ts, iso);
    hash_hex(r1, h1);
    hash_hex(r2, h2);
    json_t *rec = json_object();
    json_object_set_new(rec, "type", json_string("round"));
    json_object_set_new(rec, "source", json_string(m->source ? m->source : "burnin"));
    json_object_set_new(rec, "ts", json_real(ts));
    json_object_set_new(rec, "time", json_string(iso));
    json_object_set_new(rec, "round", json_integer(m->round));
    json_object_set_new(rec, "prompt_id", json_string(m->prompt_id ? m->prompt_id : ""));
    json_object_set_new(rec, "category", json_string(m->category ? m->category : ""));
    json_object_set_new(rec, "endpoint", json_string(m->endpoint ? m->endpoint : ""));
    json_object_set_new(rec, "bucket", json_string(trit_bucket_name(cmp->bucket)));
    json_object_set_new(rec, "tie",
                        cmp->tie == TRIT_TIE_TIE    ? json_string("tie")
                        : cmp->tie == TRIT_TIE_REAL ? json_string("real")
                                                    : json_null());
    json_object_set_new(rec, "prefix_len",
                        cmp->bucket <= TRIT_BUCKET_NOMATCH
                            ? json_integer((json_int_t)cmp->prefix_len)
                            : json_null());
    json_object_set_new(rec, "div_byte", json_integer(cmp->div_byte));
    json_object_set_new(rec, "div_token_v1", json_integer(cmp->div_token_gen1));
    json_object_set_new(rec, "div_token_v2", json_integer(cmp->div_token_gen2));
    json_object_set_new(rec, "gap_v1", trit_json_num(cmp->gap_gen1));
    json_object_set_new(rec, "gap_v2", trit_json_num(cmp->gap_gen2));
    json_object_set_new(rec, "cause", cmp->cause[0] ? json_string(cmp->cause) : json_null());
    json_object_set_new(rec, "lat_v1", json_real(r1->latency_s));
    json_object_set_new(rec, "lat_v2", json_real(r2->latency_s));
    json_object_set_new(rec, "ntok_v1", json_integer(ntok(r1)));
    json_object_set_new(rec, "ntok_v2", json_integer(ntok(r2)));
    json_object_set_new(rec, "finish_v1", json_string(r1->finish_reason));
    json_object_set_new(rec, "finish_v2", json_string(r2->finish_reason));
    json_object_set_new(rec, "hash_v1", json_string(h1));
    json_object_set_new(rec, "hash_v2", json_string(h2));
    if (cmp->bucket == TRIT_BUCKET_NOMATCH || cmp->bucket == TRIT_BUCKET_PREFIX)
        json_object_set_new(rec, "split",
                            json_pack("{s:o,s:o}", "v1", top_json(r1, cmp->div_token_gen1), "v2",
                                      top_json(r2, cmp->div_token_gen2)));
    json_object_set_new(rec, "v1", side(m->gen1_url, m->gen1_model));
    json_object_set_new(rec, "v2", side(m->gen2_url, m->gen2_model));
    json_object_set_new(rec, "text_v1", trit_ledger_text_json(r1->content, r1->content_len));
    json_object_set_new(rec, "text_v2", trit_ledger_text_json(r2->content, r2->content_len));
    return rec;
}

/* ---- fast scanner ---- */
typedef struct cur {
    const char *p, *e;
} cur;

static void ws(cur *c) {
    while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r')) c->p++;
}

/* string at c->p ('"'); returns raw contents (escapes kept) */
static int str(cur *c, const char **s, size_t *n) {
    if (c->p >= c->e || *c->p != '"') return -1;
    const char *b = ++c->p;
    for (;;) {
        const char *q = memchr(c->p, '"', (size_t)(c->e - c->p));
        if (!q) return -1;
        /* count backslashes before q */
        const char *k = q;
        while (k > b && k[-1] == '\\') k--;
        c->p = q + 1;
        if (((q - k) & 1) == 0) break;
    }
    *s = b;
    *n = (size_t)(c->p - 1 - b);
    return 0;
}

static int skip_value(cur *c, int depth);

static int skip_container(cur *c, char open, char close, int depth) {
    if (depth > 64) return -1;
    c->p++; /* open */
    ws(c);
    if (c->p < c->e && *c->p == close) {
        c->p++;
        return 0;
    }
    for (;;) {
        ws(c);
        if (open == '{') {
            const char *s;
            size_t n;
            if (str(c, &s, &n)) return -1;
            ws(c);
            if (c->p >= c->e || *c->p != ':') return -1;
            c->p++;
            ws(c);
        }
        if (skip_value(c, depth + 1)) return -1;
        ws(c);
        if (c->p >= c->e) return -1;
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p == close) {
            c->p++;
            return 0;
        }
        return -1;
    }
}

static int skip_value(cur *c, int depth) {
    ws(c);
    if (c->p >= c->e) return -1;
    const char *s;
    size_t n;
    switch (*c->p) {
    case '"':
        return str(c, &s, &n);
    case '{':
        return skip_container(c, '{', '}', depth);
    case '[':
        return skip_container(c, '[', ']', depth);
    default: {
        const char *b = c->p;
        while (c->p < c->e && (strchr("+-.eE", *c->p) || (*c->p >= '0' && *c->p <= '9') ||
                               (*c->p >= 'a' && *c->p <= 'z')))
            c->p++;
        return c->p > b ? 0 : -1;
    }
    }
}

static bool key_is(const char *k, size_t n, const char *lit) {
    return strlen(lit) == n && !memcmp(k, lit, n);
}

static double num_at(const char *b, const char *e) {
    if (e - b >= 4 && !memcmp(b, "null", 4)) return NAN;
    char tmp[64];
    size_t n = TRIT_MIN((size_t)(e - b), sizeof tmp - 1);
    memcpy(tmp, b, n);
    tmp[n] = 0;
    char *end;
    double v = strtod(tmp, &end);
    return end == tmp ? NAN : v;
}

static int tie_parse(const char *s, size_t n) {
    if (key_is(s, n, "tie")) return TRIT_TIE_TIE;
    if (key_is(s, n, "real")) return TRIT_TIE_REAL;
    return TRIT_TIE_UNKNOWN;
}

static int bucket_parse_n(const char *s, size_t n) {
    char tmp[32];
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    return trit_bucket_parse(tmp);
}

static long long_field(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : -1;
}

void trit_ppl_shape_from_json(const json_t *side, trit_ppl_shape *s) {
    s->chunks = long_field(side, "chunks");
    s->ctx = long_field(side, "ctx");
    s->count = long_field(side, "count");
}

static void ppl_fields(const char *line, size_t len, trit_ledger_rec *r) {
    json_t *j = json_loadb(line, len, 0, NULL);
    if (!j) return;
    json_t *v;
    if ((v = json_object_get(json_object_get(j, "gen1"), "ppl")) && json_is_number(v))
        r->ppl_gen1 = json_number_value(v);
    if ((v = json_object_get(json_object_get(j, "gen1"), "ppl_err")) && json_is_number(v))
        r->ppl_gen1_err = json_number_value(v);
    if ((v = json_object_get(json_object_get(j, "gen2"), "ppl")) && json_is_number(v))
        r->ppl_gen2 = json_number_value(v);
    if ((v = json_object_get(json_object_get(j, "gen2"), "ppl_err")) && json_is_number(v))
        r->ppl_gen2_err = json_number_value(v);
    if ((v = json_object_get(json_object_get(j, "kld"), "mean")) && json_is_number(v))
        r->kld_mean = json_number_value(v);
    trit_ppl_shape_from_json(json_object_get(j, "gen1"), &r->ppl_shape1);
    trit_ppl_shape_from_json(json_object_get(j, "gen2"), &r->ppl_shape2);
    json_decref(j);
}

/* Every summary field absent. */
static void rec_init(trit_ledger_rec *r) {
    memset(r, 0, sizeof *r);
    r->type = TRIT_REC_OTHER;
    r->round = -1;
    r->ts = NAN;
    r->prompt_id = r->category = r->source = "";
    r->bucket = r->noise_bucket = -1;
    r->tie = TRIT_TIE_UNKNOWN;
    r->prefix_len = r->div_byte = -1;
    r->div_token = -1;
    r->lat_gen1 = r->lat_gen2 = NAN;
    r->ntok_gen1 = r->ntok_gen2 = -1;
    r->ppl_gen1 = r->ppl_gen1_err = r->ppl_gen2 = r->ppl_gen2_err = r->kld_mean = NAN;
    r->ppl_shape1 = r->ppl_shape2 = (trit_ppl_shape){-1, -1, -1};
}

/* A top-level string field the summary keeps (the others are skipped). */
static void string_field(trit_ledger_rec *r, const char *k, size_t kn, const char *s, size_t sn) {
    if (key_is(k, kn, "type"))
        r->type = key_is(s, sn, "round") ? TRIT_REC_ROUND
                  : key_is(s, sn, "ppl") ? TRIT_REC_PPL
                                         : TRIT_REC_OTHER;
    else if (key_is(k, kn, "prompt_id"))
        r->prompt_id = s, r->prompt_id_len = sn;
    else if (key_is(k, kn, "category"))
        r->category = s, r->category_len = sn;
    else if (key_is(k, kn, "source"))
        r->source = s;
    else if (key_is(k, kn, "bucket"))
        r->bucket = bucket_parse_n(s, sn);
    else if (key_is(k, kn, "noise_bucket"))
        r->noise_bucket = bucket_parse_n(s, sn);
    else if (key_is(k, kn, "tie"))
        r->tie = tie_parse(s, sn);
}

/* A count or index from a JSON number: -1 (absent) unless it is in [0, max], so no cast is
 * out of range (the fuzzer's "round":1e62) and round + 1 cannot overflow. */
static int64_t as_index(double v, double max) {
    return v >= 0 && v <= max ? (int64_t)v : -1;
}

/* A top-level number (or null: NAN) the summary keeps. */
static void number_field(trit_ledger_rec *r, const char *k, size_t kn, double v) {
    const double big = 1e15; /* rounds, byte offsets: far beyond any real ledger */
    if (key_is(k, kn, "round"))
        r->round = as_index(v, big);
    else if (key_is(k, kn, "ts"))
        r->ts = v;
    else if (key_is(k, kn, "prefix_len"))
        r->prefix_len = (long)as_index(v, big);
    else if (key_is(k, kn, "div_byte"))
        r->div_byte = (long)as_index(v, big);
    else if (key_is(k, kn, "div_token_v1"))
        r->div_token = (int)as_index(v, INT_MAX);
    else if (key_is(k, kn, "lat_v1"))
        r->lat_gen1 = v;
    else if (key_is(k, kn, "lat_v2"))
        r->lat_gen2 = v;
    else if (key_is(k, kn, "ntok_v1"))
        r->ntok_gen1 = (int)as_index(v, INT_MAX);
    else if (key_is(k, kn, "ntok_v2"))
        r->ntok_gen2 = (int)as_index(v, INT_MAX);
}

/* One "key": value member at c; 0, or -1 when it is not well-formed JSON. */
static int member(cur *c, trit_ledger_rec *r) {
    const char *k, *s;
    size_t kn, sn;
    ws(c);
    if (str(c, &k, &kn)) return -1;
    ws(c);
    if (c->p >= c->e || *c->p != ':') return -1;
    c->p++;
    ws(c);
    if (c->p >= c->e) return -1;
    if (*c->p == '"') {
        if (str(c, &s, &sn)) return -1;
        string_field(r, k, kn, s, sn);
        return 0;
    }
    /* numbers, null, booleans, objects, arrays: skipped, numbers noted */
    const char *vb = c->p;
    if (skip_value(c, 0)) return -1;
    if (*vb != '{' && *vb != '[') number_field(r, k, kn, num_at(vb, c->p));
    return 0;
}

int trit_ledger_parse_line(const char *line, size_t len, trit_ledger_rec *r) {
    rec_init(r);
    cur c = {line, line + len};
    ws(&c);
    if (c.p >= c.e || *c.p != '{') return -1;
    c.p++;
    ws(&c);
    /* members until the closing brace; an empty object has none */
    bool empty = c.p < c.e && *c.p == '}';
    if (empty) c.p++;
    while (!empty) {
        if (member(&c, r)) return -1;
        ws(&c);
        if (c.p >= c.e) return -1;
        if (*c.p == '}') {
            c.p++;
            break;
        }
        if (*c.p != ',') return -1;
        c.p++;
    }
    /* nothing after the object: a truncated or concatenated line is malformed */
    ws(&c);
    if (c.p != c.e) return -1;
    if (r->type == TRIT_REC_PPL) ppl_fields(line, len, r);
    return 0;
}

int trit_ledger_scan(const char *path, trit_ledger_fn fn, void *user, bool quiet,
                     trit_ledger_scan_info *info, trit_err *err) {
    trit_ledger_scan_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    info->max_round = -1;
    trit_buf b = {0};
    if (trit_read_file(path, &b, err)) {
        trit_err_prefix(err, "ledger");
        return -1;
    }
    const char *p = b.p, *e = b.p + b.len;
    long lineno = 0;
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        bool complete = nl != NULL;
        const char *le = complete ? nl : e;
        lineno++;
        size_t len = (size_t)(le - p);
        bool blank = true;
        for (size_t i = 0; i < len && blank; i++)
            if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') blank = false;
        if (!blank) {
            info->lines++;
            trit_ledger_rec r;
            if (!complete || trit_ledger_parse_line(p, len, &r)) {
                info->skipped++;
                if (!quiet)
                    fprintf(stderr, "warning: %s:%ld: %s line skipped (%zu bytes)\n", path, lineno,
                            complete ? "malformed" : "truncated", len);
            } else {
                info->records++;
                info->last_good_offset = (long)(le + 1 - b.p);
                if (r.type == TRIT_REC_ROUND && r.round > info->max_round)
                    info->max_round = r.round;
                if (fn && fn(user, &r, p, len)) break;
            }
        } else if (complete && info->skipped == 0) {
            info->last_good_offset = (long)(le + 1 - b.p);
        }
        p = complete ? nl + 1 : e;
    }
    trit_buf_free(&b);
    return 0;
}

/* ---- several ledgers, merged ---- */

/* A set of record ids (XXH3-64 of the line), open addressing; 0 marks an empty slot, so an
 * id of 0 is stored as 1 (one more collision in 2^64). */
typedef struct id_set {
    uint64_t *slot;
    size_t cap, n;
} id_set;

/* true the first time id is added */
static bool id_set_add(id_set *s, uint64_t id) {
    if (id == 0) id = 1;
    if ((s->n + 1) * 2 > s->cap) {
        /* grow to keep the load under 1/2, re-inserting every id */
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *slot = xcalloc(cap, sizeof *slot);
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slot[i]) continue;
            size_t h = s->slot[i] & (cap - 1);
            while (slot[h]) h = (h + 1) & (cap - 1);
            slot[h] = s->slot[i];
        }
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    size_t h = id & (s->cap - 1);
    while (s->slot[h]) {
        if (s->slot[h] == id) return false;
        h = (h + 1) & (s->cap - 1);
    }
    s->slot[h] = id;
    s->n++;
    return true;
}

typedef struct many_ctx {
    id_set seen;
    trit_ledger_fn fn;
    void *user;
    long duplicates;
} many_ctx;

static int many_cb(void *user, const trit_ledger_rec *r, const char *line, size_t len) {
    many_ctx *c = user;
    /* the same record read twice (a ledger given twice, a copy merged with its original)
     * counts once; a record's id is its line's hash */
    if (!id_set_add(&c->seen, trit_hash64(line, len))) {
        c->duplicates++;
        return 0;
    }
    return c->fn ? c->fn(c->user, r, line, len) : 0;
}

int trit_ledger_scan_many(const char *const *paths, int n_paths, trit_ledger_fn fn, void *user,
                          bool quiet, trit_ledger_scan_info *info, trit_err *err) {
    trit_ledger_scan_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    info->max_round = -1;
    many_ctx c = {.fn = fn, .user = user};
    int rc = 0;
    for (int i = 0; i < n_paths && rc == 0; i++) {
        trit_ledger_scan_info one;
        rc = trit_ledger_scan(paths[i], many_cb, &c, quiet, &one, err);
        if (rc) break;
        /* totals over the files; last_good_offset only means something for one file */
        info->lines += one.lines;
        info->records += one.records;
        info->skipped += one.skipped;
        info->max_round = TRIT_MAX(info->max_round, one.max_round);
    }
    info->duplicates = c.duplicates;
    info->records -= c.duplicates;
    if (rc == 0 && c.duplicates > 0 && !quiet)
        fprintf(stderr, "note: %ld duplicate record%s across the ledgers counted once\n",
                c.duplicates, c.duplicates == 1 ? "" : "s");
    free(c.seen.slot);
    return rc;
}
