/* compare.c — bucket two replies, find the first divergent byte and the token split, tie vs
 * real at the token split. */
#include "parity/compare.h"
#include "parity/ledger.h" /* trit_ledger_text_json, trit_json_num for the split fields */

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *bucket_names[TRIT_BUCKET_N] = {"exact", "prefix-only", "no-match",
                                                  "v1-unreachable", "v2-unreachable"};

const char *trit_bucket_name(trit_bucket b) {
    return (unsigned)b < TRIT_BUCKET_N ? bucket_names[b] : "?";
}

int trit_bucket_parse(const char *s) {
    for (int i = 0; i < TRIT_BUCKET_N; i++)
        if (s && !strcmp(s, bucket_names[i])) return i;
    return -1;
}

/* index of the token whose byte span holds offset off, or -1 */
static int token_at(const trit_client_token *k, int nk, size_t off) {
    size_t pos = 0;
    for (int i = 0; i < nk; i++) {
        if (off < pos + k[i].len) return i;
        pos += k[i].len;
    }
    return -1;
}

static bool same_token(int32_t id_a, const char *ta, size_t la, int32_t id_b, const char *tb,
                       size_t lb) {
    if (id_a >= 0 && id_b >= 0) return id_a == id_b;
    return la == lb && !memcmp(ta, tb, la);
}

static bool in_top5(const trit_client_token *tok, const trit_client_token *other) {
    for (int j = 0; j < other->n_top && j < 5; j++)
        if (same_token(tok->id, tok->text, tok->len, other->top[j].id, other->top[j].text,
                       other->top[j].len))
            return true;
    return false;
}

trit_tie trit_tie_rule(double gap_a, double gap_b, bool crossed, double eps) {
    /* missing logprobs prove nothing either way: unclassified, never "real" */
    if (isnan(gap_a) || isnan(gap_b)) return TRIT_TIE_UNKNOWN;
    bool close = fabs(gap_a) <= eps && fabs(gap_b) <= eps;
    return close && crossed ? TRIT_TIE_TIE : TRIT_TIE_REAL;
}

/* top-1 minus top-2 logprob of one reply token; NAN when fewer than two are known */
static double logprob_gap(const trit_client_token *t) {
    if (!t || t->n_top < 2) return NAN;
    return t->top[0].logprob - t->top[1].logprob;
}

trit_tie trit_compare_tie(const trit_client_token *a, const trit_client_token *b, double eps,
                          double *gap_a, double *gap_b) {
    double ga = logprob_gap(a), gb = logprob_gap(b);
    if (gap_a) *gap_a = ga;
    if (gap_b) *gap_b = gb;
    bool crossed = a && b && in_top5(a, b) && in_top5(b, a);
    return trit_tie_rule(ga, gb, crossed, eps);
}

const char *trit_align_name(trit_align a) {
    return a == TRIT_ALIGN_IDS ? "ids" : a == TRIT_ALIGN_TEXT ? "text" : NULL;
}

/* Ids align the sequences only when every token on both sides has one; a server that
 * returns no ids (-1) makes the whole comparison go by the tokens' bytes. */
static trit_align align_mode(const trit_client_token *k1, int nk1, const trit_client_token *k2,
                             int nk2) {
    for (int i = 0; i < nk1; i++)
        if (k1[i].id < 0) return TRIT_ALIGN_TEXT;
    for (int i = 0; i < nk2; i++)
        if (k2[i].id < 0) return TRIT_ALIGN_TEXT;
    return TRIT_ALIGN_IDS;
}

/* The token split: the first index where the sequences differ (by id or by bytes, per
 * mode), or where one runs out; *off gets the byte offset where that token starts (the
 * tokens before it are the same on both sides). -1 when the sequences are equal. */
static int token_split(const trit_client_token *k1, int nk1, const trit_client_token *k2, int nk2,
                       trit_align mode, size_t *off) {
    size_t pos = 0;
    int m = TRIT_MIN(nk1, nk2);
    for (int i = 0; i < m; i++) {
        bool same = mode == TRIT_ALIGN_IDS
                        ? k1[i].id == k2[i].id
                        : k1[i].len == k2[i].len && !memcmp(k1[i].text, k2[i].text, k1[i].len);
        if (!same) {
            *off = pos;
            return i;
        }
        pos += k1[i].len;
    }
    *off = pos;
    return nk1 == nk2 ? -1 : m;
}

void trit_compare_texts(const char *t1, size_t n1, const trit_client_token *k1, int nk1,
                        const char *t2, size_t n2, const trit_client_token *k2, int nk2, double eps,
                        trit_compare *out) {
    memset(out, 0, sizeof *out);
    out->div_byte = -1;
    out->div_token_gen1 = out->div_token_gen2 = out->div_token = -1;
    out->align = TRIT_ALIGN_NONE;
    out->tie = TRIT_TIE_UNKNOWN;
    out->gap_gen1 = out->gap_gen2 = NAN;
    size_t m = TRIT_MIN(n1, n2), d = 0;
    while (d < m && t1[d] == t2[d]) d++;
    if (d == m && n1 == n2) {
        out->bucket = TRIT_BUCKET_EXACT;
        out->prefix_len = n1;
        return;
    }
    out->bucket = d == m ? TRIT_BUCKET_PREFIX : TRIT_BUCKET_NOMATCH;
    out->div_byte = (long)d;
    out->prefix_len = trit_utf8_complete_prefix(t1, d);
    /* the byte fields: the token holding the first differing byte, on each side */
    out->div_token_gen1 = token_at(k1, nk1, d);
    out->div_token_gen2 = token_at(k2, nk2, d);
    if (nk1 <= 0 || nk2 <= 0) return;
    /* the token split: tokens can re-segment the same bytes, so the sequences may part
     * before the byte split; it must not start after div_byte (tokens that do not spell
     * the replies) */
    trit_align mode = align_mode(k1, nk1, k2, nk2);
    size_t off = 0;
    int at = token_split(k1, nk1, k2, nk2, mode, &off);
    if (at < 0 || off > d) return;
    out->div_token = at;
    out->align = mode;
    if (at < nk1 && at < nk2)
        out->tie = trit_compare_tie(&k1[at], &k2[at], eps, &out->gap_gen1, &out->gap_gen2);
}

/* One side's token and top-5 at index idx, as the record's "split" shows it; null when the
 * side has no token there. */
static json_t *split_side_json(const trit_client_resp *r, int idx) {
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

void trit_compare_split_fields(json_t *rec, const trit_compare *cmp, const trit_client_resp *gen1,
                               const trit_client_resp *gen2) {
    const char *align = trit_align_name(cmp->align);
    json_object_set_new(rec, "div_token", json_integer(cmp->div_token));
    json_object_set_new(rec, "div_align", align ? json_string(align) : json_null());
    if (cmp->bucket != TRIT_BUCKET_NOMATCH && cmp->bucket != TRIT_BUCKET_PREFIX) return;
    json_object_set_new(rec, "split",
                        json_pack("{s:o,s:o}", "v1", split_side_json(gen1, cmp->div_token), "v2",
                                  split_side_json(gen2, cmp->div_token)));
}

void trit_compare_resps(const trit_client_resp *gen1, const trit_client_resp *gen2, double eps,
                        trit_compare *out) {
    if (gen1->kind != TRIT_CLIENT_OK || gen2->kind != TRIT_CLIENT_OK) {
        const trit_client_resp *bad = gen1->kind != TRIT_CLIENT_OK ? gen1 : gen2;
        memset(out, 0, sizeof *out);
        out->bucket = bad == gen1 ? TRIT_BUCKET_GEN1_UNREACH : TRIT_BUCKET_GEN2_UNREACH;
        out->div_byte = -1;
        out->div_token_gen1 = out->div_token_gen2 = out->div_token = -1;
        out->align = TRIT_ALIGN_NONE;
        out->tie = TRIT_TIE_UNKNOWN;
        out->gap_gen1 = out->gap_gen2 = NAN;
        char also[48] = "";
        if (bad == gen1 && gen2->kind != TRIT_CLIENT_OK)
            snprintf(also, sizeof also, " [v2 also %s]", trit_client_errkind_name(gen2->kind));
        if (bad->kind == TRIT_CLIENT_HTTP_STATUS)
            snprintf(out->cause, sizeof out->cause, "http %ld:%s %s", bad->http_status, also,
                     bad->msg);
        else
            snprintf(out->cause, sizeof out->cause, "%s:%s %s", trit_client_errkind_name(bad->kind),
                     also, bad->msg);
        return;
    }
    trit_compare_texts(gen1->content, gen1->content_len, gen1->tokens, gen1->n_tokens,
                       gen2->content, gen2->content_len, gen2->tokens, gen2->n_tokens, eps, out);
}
