/* ledger.c — JSONL ledger: append + fsync; a fast summary scanner that reads only the fields
 * stats need (strings skipped with memchr), so 50 000 rounds scan in a few tens of ms. */
#include "parity/ledger.h"

#include <assert.h>
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
    char head[65]; /* sha256 hex of the last line written: the next record's "prev" */
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

/* pread all n bytes at off; 0 or -1 */
static int pread_all(int fd, char *p, size_t n, off_t off) {
    while (n > 0) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r, n -= (size_t)r, off += r;
    }
    return 0;
}

/* Offset just after the last '\n' in [0, end) (0 when none), reading backwards in blocks
 * so opening a large ledger does not read all of it. -1 on a read error. */
static off_t last_newline_end(int fd, off_t end) {
    char blk[65536];
    while (end > 0) {
        off_t from = end > (off_t)sizeof blk ? end - (off_t)sizeof blk : 0;
        if (pread_all(fd, blk, (size_t)(end - from), from)) return -1;
        for (off_t i = end - from; i > 0; i--)
            if (blk[i - 1] == '\n') return from + i;
        end = from;
    }
    return 0;
}

/* The chain head of the ledger open on fd, whose complete lines end at `end`: the hash of
 * the last complete line that is a record. Blank lines and malformed lines (fragments an
 * older writer closed with a newline after a crash) are stepped over: the chain never
 * continues from garbage. An empty ledger starts at the genesis. */
static int chain_head(int fd, off_t end, char head[65]) {
    snprintf(head, 65, "%s", TRIT_LEDGER_GENESIS);
    while (end > 0) {
        off_t start = last_newline_end(fd, end - 1); /* the line is [start, end - 1) */
        if (start < 0) return -1;
        size_t n = (size_t)(end - 1 - start);
        char *line = xmalloc(n + 1);
        int rc = pread_all(fd, line, n, start);
        trit_ledger_rec r;
        bool good = rc == 0 && n > 0 && trit_ledger_parse_line(line, n, &r) == 0;
        if (good) {
            trit_ledger_rec_clear(&r);
            trit_sha256_hex(line, n, head);
        }
        free(line);
        if (rc) return -1;
        if (good) return 0;
        end = start;
    }
    return 0;
}

/* Cut off a torn last line (bytes after the last newline: a crash inside an append). The
 * round it held is not done (a round is done when its complete line is in the ledger), so
 * nothing is lost; keeping it would put garbage inside the chain. */
static int drop_torn_tail(int fd, const char *path, off_t size, off_t *end, trit_err *err) {
    *end = last_newline_end(fd, size);
    if (*end < 0)
        return trit_fail(err, TRIT_EIO, "cannot read ledger %s: %s", path, strerror(errno));
    if (*end == size) return 0;
    trit_log(TRIT_LOG_WARN,
             "ledger %s: last line is incomplete (crash?): cutting off its %lld bytes; the "
             "chain continues from the last complete line",
             path, (long long)(size - *end));
    if (ftruncate(fd, *end) || fsync(fd))
        return trit_fail(err, TRIT_EIO, "cannot truncate ledger %s: %s", path, strerror(errno));
    return 0;
}

/* Open path for appending, safely: never through a symlink (O_NOFOLLOW), never a fifo or
 * device (O_NONBLOCK so a fifo cannot block the open; then S_ISREG), and 0600 whatever mode
 * it had (prompts and replies are the operator's data, not every local user's). */
static int open_regular(const char *path, trit_err *err) {
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (fd < 0) {
        if (errno == ELOOP)
            trit_fail(err, TRIT_EIO, "ledger %s is a symlink; refusing to follow it", path);
        else
            trit_fail(err, TRIT_EIO, "cannot open ledger %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        trit_fail(err, TRIT_EIO, "ledger %s is not a regular file; refusing it", path);
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) || fchmod(fd, 0600)) {
        trit_fail(err, TRIT_EIO, "cannot set up ledger %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

trit_ledger *trit_ledger_open(const char *path, trit_err *err) {
    int fd = open_regular(path, err);
    if (fd < 0) return NULL;
    /* one writer per ledger: two would interleave round numbers (a burn-in and a shadow on
     * one file wrote duplicate rounds) and fork the chain; the lock lives as long as the
     * descriptor */
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
    /* under the lock: drop a torn tail, then find where the chain continues */
    struct stat st;
    off_t end = 0;
    if (fstat(fd, &st)) {
        trit_fail(err, TRIT_EIO, "cannot stat ledger %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (drop_torn_tail(fd, path, st.st_size, &end, err)) {
        close(fd);
        return NULL;
    }
    trit_ledger *l = xcalloc(1, sizeof *l);
    if (chain_head(fd, end, l->head)) {
        trit_fail(err, TRIT_EIO, "cannot read ledger %s: %s", path, strerror(errno));
        close(fd);
        free(l);
        return NULL;
    }
    l->fd = fd;
    l->path = xstrdup(path);
    return l;
}

/* One record as one line, chained to the line before (under the writer's flock, so no other
 * writer can slip a line between the head read at open and this append). */
int trit_ledger_append(trit_ledger *l, json_t *obj, trit_err *err) {
    if (!json_is_object(obj)) return trit_fail(err, TRIT_EINVAL, "ledger record is not an object");
    assert(strlen(l->head) == 64); /* the genesis or a line's sha256: the chain is never empty */
    json_object_set_new(obj, "prev", json_string(l->head));
    char *s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!s) return trit_fail(err, TRIT_EINVAL, "ledger record cannot be serialised");
    size_t n = strlen(s);
    assert(!memchr(s, '\n', n)); /* compact JSON escapes newlines: one record, one line */
    char head[65];
    trit_sha256_hex(s, n, head); /* the line's exact bytes, without its newline */
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    s[n] = 0;
    int rc = write_all(l->fd, s, n) || fsync(l->fd);
    free(s);
    if (rc)
        return trit_fail(err, TRIT_EIO, "cannot append to ledger %s: %s", l->path, strerror(errno));
    memcpy(l->head, head, sizeof head);
    return 0;
}

/* The hash the next record will chain to. */
const char *trit_ledger_head(const trit_ledger *l) {
    return l->head;
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
    /* div_token, div_align and the split at the first differing token (the one place that
     * writes them: compare.c, beside the rule that finds them) */
    trit_compare_split_fields(rec, cmp, r1, r2);
    json_object_set_new(rec, "v1", side(m->gen1_url, m->gen1_model));
    json_object_set_new(rec, "v2", side(m->gen2_url, m->gen2_model));
    /* schema 2: which server answered, by digest; the full identity is in "identity"
     * records (trit_ledger_identity_json) */
    char d[17];
    if (m->gen1_ident) {
        trit_identity_digest(m->gen1_ident, d);
        json_object_set_new(rec, "v1_ident", json_string(d));
    }
    if (m->gen2_ident) {
        trit_identity_digest(m->gen2_ident, d);
        json_object_set_new(rec, "v2_ident", json_string(d));
    }
    json_object_set_new(rec, "text_v1", trit_ledger_text_json(r1->content, r1->content_len));
    json_object_set_new(rec, "text_v2", trit_ledger_text_json(r2->content, r2->content_len));
    return rec;
}

/* See ledger.h; ts is when the writer learned the identity. */
json_t *trit_ledger_identity_json(const char *side, const json_t *ident) {
    double ts = trit_wall_s();
    char iso[32];
    trit_iso8601(ts, iso);
    json_t *rec =
        json_pack("{s:s,s:f,s:s,s:s}", "type", "identity", "ts", ts, "time", iso, "side", side);
    if (!ident) {
        /* unknown: said as such, never guessed (the caller adds "error": why) */
        json_object_set_new(rec, "digest", json_null());
        json_object_set_new(rec, "ident", json_null());
        return rec;
    }
    char d[17];
    trit_identity_digest(ident, d);
    json_object_set_new(rec, "digest", json_string(d));
    json_object_set(rec, "ident", (json_t *)ident);
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

/* An identity record's full object (rare lines: jansson, like the ppl figures). */
static void identity_fields(const char *line, size_t len, trit_ledger_rec *r) {
    json_t *j = json_loadb(line, len, 0, NULL);
    json_t *id = json_object_get(j, "ident");
    if (json_is_object(id)) r->ident = json_incref(id);
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

/* A short string copied into a fixed field (NUL-terminated, cut to fit). */
static void copy_small(char *dst, size_t sz, const char *s, size_t n) {
    n = TRIT_MIN(n, sz - 1);
    memcpy(dst, s, n);
    dst[n] = 0;
}

/* A top-level string field the summary keeps (the others are skipped). */
static void string_field(trit_ledger_rec *r, const char *k, size_t kn, const char *s, size_t sn) {
    trit_ledger_str v = {s, sn};
    if (key_is(k, kn, "type"))
        r->type = key_is(s, sn, "round")      ? TRIT_REC_ROUND
                  : key_is(s, sn, "ppl")      ? TRIT_REC_PPL
                  : key_is(s, sn, "identity") ? TRIT_REC_IDENTITY
                                              : TRIT_REC_OTHER;
    else if (key_is(k, kn, "prompt_id"))
        r->prompt_id = s, r->prompt_id_len = sn;
    else if (key_is(k, kn, "category"))
        r->category = s, r->category_len = sn;
    else if (key_is(k, kn, "source"))
        r->source = s, r->source_len = sn;
    else if (key_is(k, kn, "bucket"))
        r->bucket = bucket_parse_n(s, sn), r->bucket_raw = v;
    else if (key_is(k, kn, "noise_bucket"))
        r->noise_bucket = bucket_parse_n(s, sn);
    else if (key_is(k, kn, "tie"))
        r->tie = tie_parse(s, sn), r->tie_raw = v;
    else if (key_is(k, kn, "prev"))
        r->prev = v;
    else if (key_is(k, kn, "v1_ident"))
        copy_small(r->ident_gen1, sizeof r->ident_gen1, s, sn);
    else if (key_is(k, kn, "v2_ident"))
        copy_small(r->ident_gen2, sizeof r->ident_gen2, s, sn);
    else if (key_is(k, kn, "side"))
        copy_small(r->side, sizeof r->side, s, sn);
    else if (key_is(k, kn, "digest"))
        copy_small(r->digest, sizeof r->digest, s, sn);
    else if (key_is(k, kn, "text_v1"))
        r->text_gen1 = v;
    else if (key_is(k, kn, "text_v2"))
        r->text_gen2 = v;
    else if (key_is(k, kn, "prompt"))
        r->prompt = v;
    else if (key_is(k, kn, "cause"))
        r->cause = v;
    else if (key_is(k, kn, "time"))
        r->time = v;
}

/* A member's `"key" :` and the blanks after it, leaving c at the value; -1 when it is not
 * there (both the record and a side object read their members through it). */
static int member_key(cur *c, const char **k, size_t *kn) {
    ws(c);
    if (str(c, k, kn)) return -1;
    ws(c);
    if (c->p >= c->e || *c->p != ':') return -1;
    c->p++;
    ws(c);
    return 0;
}

/* A side object {"url":..,"model":..} ("v1", "v2"): its url kept, the rest skipped. c is at
 * its '{'; -1 when it is not a well-formed object. */
static int side_object(cur *c, trit_ledger_str *url) {
    c->p++;
    ws(c);
    if (c->p < c->e && *c->p == '}') {
        c->p++;
        return 0;
    }
    for (;;) {
        const char *k, *s;
        size_t kn, sn;
        if (member_key(c, &k, &kn)) return -1;
        if (c->p < c->e && *c->p == '"') {
            if (str(c, &s, &sn)) return -1;
            if (key_is(k, kn, "url")) *url = (trit_ledger_str){s, sn};
        } else if (skip_value(c, 1)) {
            return -1;
        }
        ws(c);
        if (c->p >= c->e) return -1;
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p != '}') return -1;
        c->p++;
        return 0;
    }
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
    if (member_key(c, &k, &kn)) return -1;
    if (c->p >= c->e) return -1;
    if (*c->p == '"') {
        if (str(c, &s, &sn)) return -1;
        string_field(r, k, kn, s, sn);
        return 0;
    }
    /* each side's url, inside its {url, model} object */
    if (*c->p == '{' && (key_is(k, kn, "v1") || key_is(k, kn, "v2")))
        return side_object(c, key_is(k, kn, "v1") ? &r->url_gen1 : &r->url_gen2);
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
    if (r->type == TRIT_REC_IDENTITY) identity_fields(line, len, r);
    return 0;
}

/* Drop what parse_line took from jansson (an identity record's object). */
void trit_ledger_rec_clear(trit_ledger_rec *r) {
    json_decref(r->ident);
    r->ident = NULL;
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
                int stop = fn ? fn(user, &r, p, len) : 0;
                trit_ledger_rec_clear(&r);
                if (stop) break;
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

/* ---- strings ---- */

/* One code point as UTF-8. */
static void put_utf8(trit_buf *out, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (char)(0x80 | (cp >> 6 & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    trit_buf_append(out, b, n);
}

/* Four hex digits at p (p + 4 <= e); -1 when not hex. */
static long hex4(const char *p, const char *e) {
    if (e - p < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* See ledger.h: the one decoder of the scanner's raw strings (the report's texts). */
void trit_ledger_unescape(trit_ledger_str s, trit_buf *out) {
    const char *p = s.p, *e = s.p ? s.p + s.n : NULL;
    while (p && p < e) {
        const char *bs = memchr(p, '\\', (size_t)(e - p));
        if (!bs) bs = e;
        trit_buf_append(out, p, (size_t)(bs - p));
        if (bs >= e) break;
        p = bs + 1;
        if (p >= e) break;
        char c = *p++;
        const char *simple = strchr("\"\\/bfnrt", c);
        if (simple && c) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            trit_buf_append(out, &map[simple - "\"\\/bfnrt"], 1);
            continue;
        }
        long hi = c == 'u' ? hex4(p, e) : -1;
        if (hi < 0) {
            put_utf8(out, 0xFFFD); /* a bad escape */
            continue;
        }
        p += 4;
        uint32_t cp = (uint32_t)hi;
        if (hi >= 0xD800 && hi < 0xDC00) {
            /* a high surrogate: its low half must follow as another \uXXXX */
            long lo = e - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2, e) : -1;
            if (lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                p += 6;
            } else {
                cp = 0xFFFD;
            }
        } else if (hi >= 0xDC00 && hi < 0xE000) {
            cp = 0xFFFD; /* a lone low surrogate */
        }
        put_utf8(out, cp);
    }
}

/* ---- the hash chain ---- */

const char *trit_chain_status_name(trit_chain_status s) {
    switch (s) {
    case TRIT_CHAIN_INTACT:
        return "intact";
    case TRIT_CHAIN_BROKEN:
        return "broken";
    case TRIT_CHAIN_UNCHAINED:
        return "unchained";
    case TRIT_CHAIN_EMPTY:
        return "empty";
    }
    return "?";
}

/* One complete line of a ledger, as verify sees it. */
typedef struct vline {
    long lineno;   /* 1-based line number in the file */
    char hash[65]; /* sha256 hex of its bytes */
    char prev[65]; /* its "prev", "" when absent */
    bool record;   /* parses as a record */
    int64_t round; /* -1 when not a round */
    char src[16];  /* its source, for round-number comparisons */
} vline;

/* The line (index into v) whose hash is h, or -1. Linear: only run once a break is found. */
static long find_hash(const vline *v, long n, const char *h) {
    for (long i = 0; i < n; i++)
        if (!strcmp(v[i].hash, h)) return i;
    return -1;
}

/* Why line i's link is wrong, in words, into c->msg (the chained part starts at `first`). */
static void explain_break(const vline *v, long n, long i, trit_ledger_chain *c) {
    long ln = v[i].lineno;
    c->break_line = ln;
    c->status = TRIT_CHAIN_BROKEN;
    if (!v[i].record) {
        snprintf(c->msg, sizeof c->msg,
                 "line %ld is not a ledger record (a line inserted or edited inside the chain)",
                 ln);
        return;
    }
    if (!v[i].prev[0]) {
        snprintf(c->msg, sizeof c->msg,
                 "line %ld has no \"prev\": a line inserted inside the chain", ln);
        return;
    }
    long k = find_hash(v, n, v[i].prev);
    if (i == 0) {
        snprintf(c->msg, sizeof c->msg,
                 "line %ld does not start the chain (its prev is not the genesis): lines removed "
                 "from the start",
                 ln);
        return;
    }
    if (!strcmp(v[i].prev, TRIT_LEDGER_GENESIS)) {
        snprintf(c->msg, sizeof c->msg,
                 "line %ld starts a chain of its own (its prev is the genesis): another ledger "
                 "appended, or every line before it replaced",
                 ln);
        return;
    }
    if (k >= 0 && k == i - 2) {
        snprintf(c->msg, sizeof c->msg,
                 "line %ld was inserted (line %ld chains to line %ld, the line before it)",
                 v[i - 1].lineno, ln, v[k].lineno);
        return;
    }
    if (k >= 0) {
        snprintf(c->msg, sizeof c->msg,
                 "line %ld is out of order (it chains to line %ld, not to line %ld): lines "
                 "reordered",
                 ln, v[k].lineno, v[i - 1].lineno);
        return;
    }
    /* its predecessor's bytes are gone: that line edited, or a line removed before this one;
     * consecutive round numbers of one source say which is likelier */
    const vline *a = &v[i - 1], *b = &v[i];
    bool rounds = a->round >= 0 && b->round >= 0 && !strcmp(a->src, b->src);
    if (rounds && b->round > a->round + 1)
        snprintf(c->msg, sizeof c->msg,
                 "a line was removed before line %ld (rounds %lld -> %lld; its prev matches no "
                 "line)",
                 ln, (long long)a->round, (long long)b->round);
    else if (rounds)
        snprintf(c->msg, sizeof c->msg,
                 "line %ld was edited (its hash is not the prev that line %ld recorded)", a->lineno,
                 ln);
    else
        snprintf(c->msg, sizeof c->msg,
                 "line %ld was edited (its hash is not the prev that line %ld recorded), or a "
                 "line removed between them",
                 a->lineno, ln);
}

/* The checks on the lines of one ledger (see trit_ledger_verify). */
static void judge_chain(const vline *v, long n, trit_ledger_chain *c) {
    /* records without "prev" before the first chained one: written before schema 2 */
    long first = 0;
    while (first < n && !v[first].prev[0]) first++;
    c->unchained = 0;
    for (long i = 0; i < first; i++) c->unchained += v[i].record;
    if (n == 0 || c->records == 0) {
        c->status = TRIT_CHAIN_EMPTY;
        snprintf(c->msg, sizeof c->msg, "empty: no records");
        return;
    }
    for (long i = first; i < n; i++) {
        /* the link: the genesis for the ledger's first line, else the last record before it
         * (in the unchained part, garbage an old writer left is stepped over) */
        const char *want = TRIT_LEDGER_GENESIS;
        if (i > 0 && i > first) {
            want = v[i - 1].hash;
        } else if (i > 0) {
            for (long j = i - 1; j >= 0; j--)
                if (v[j].record) {
                    want = v[j].hash;
                    break;
                }
        }
        if (!v[i].record || !v[i].prev[0] || strcmp(v[i].prev, want)) {
            explain_break(v, n, i, c);
            return;
        }
    }
    if (c->unchained) {
        c->status = TRIT_CHAIN_UNCHAINED;
        snprintf(c->msg, sizeof c->msg,
                 "unchained (written before ledger schema %d): %ld record%s without \"prev\"%s",
                 TRIT_LEDGER_SCHEMA, c->unchained, c->unchained == 1 ? "" : "s",
                 first < n ? ", then chained records" : "");
        return;
    }
    c->status = TRIT_CHAIN_INTACT;
    snprintf(c->msg, sizeof c->msg, "intact: %ld record%s chained from the genesis", c->records,
             c->records == 1 ? "" : "s");
}

int trit_ledger_verify(const char *path, trit_ledger_chain *c, trit_err *err) {
    memset(c, 0, sizeof *c);
    snprintf(c->head, sizeof c->head, "%s", TRIT_LEDGER_GENESIS);
    trit_buf b = {0};
    if (trit_read_file(path, &b, err)) {
        trit_err_prefix(err, "ledger");
        return -1;
    }
    vline *v = NULL;
    long n = 0, cap = 0, lineno = 0;
    const char *p = b.p, *e = b.p + b.len;
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        lineno++;
        if (!nl) {
            c->torn_tail = true; /* a crash mid-append; the writer cuts it off */
            break;
        }
        size_t len = (size_t)(nl - p);
        bool blank = true;
        for (size_t i = 0; i < len && blank; i++)
            if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') blank = false;
        if (!blank) {
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                v = xrealloc(v, (size_t)cap * sizeof *v);
            }
            vline *x = &v[n++];
            memset(x, 0, sizeof *x);
            x->lineno = lineno;
            trit_sha256_hex(p, len, x->hash);
            trit_ledger_rec r;
            x->record = trit_ledger_parse_line(p, len, &r) == 0;
            x->round = -1;
            if (x->record) {
                c->records++;
                if (r.prev.p) copy_small(x->prev, sizeof x->prev, r.prev.p, r.prev.n);
                if (r.type == TRIT_REC_ROUND) {
                    x->round = r.round;
                    copy_small(x->src, sizeof x->src, r.source, r.source_len);
                }
                trit_ledger_rec_clear(&r);
                memcpy(c->head, x->hash, sizeof c->head);
            }
        }
        p = nl + 1;
    }
    judge_chain(v, n, c);
    if (c->torn_tail && c->status != TRIT_CHAIN_BROKEN) {
        size_t l = strlen(c->msg);
        snprintf(c->msg + l, sizeof c->msg - l, "; a torn last line (crash) is not part of it");
    }
    free(v);
    trit_buf_free(&b);
    return 0;
}
