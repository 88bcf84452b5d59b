/* compare.c — bucket two replies, find the first divergent byte/token, tie vs real. */
#include "parity/compare.h"

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

void trit_compare_texts(const char *t1, size_t n1, const trit_client_token *k1, int nk1,
                        const char *t2, size_t n2, const trit_client_token *k2, int nk2, double eps,
                        trit_compare *out) {
    memset(out, 0, sizeof *out);
    out->div_byte = -1;
    out->div_token_gen1 = out->div_token_gen2 = -1;
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
    out->div_token_gen1 = token_at(k1, nk1, d);
    out->div_token_gen2 = token_at(k2, nk2, d);
    if (out->div_token_gen1 >= 0 && out->div_token_gen2 >= 0)
        out->tie = trit_compare_tie(&k1[out->div_token_gen1], &k2[out->div_token_gen2], eps,
                                    &out->gap_gen1, &out->gap_gen2);
}

void trit_compare_resps(const trit_client_resp *gen1, const trit_client_resp *gen2, double eps,
                        trit_compare *out) {
    if (gen1->kind != TRIT_CLIENT_OK || gen2->kind != TRIT_CLIENT_OK) {
        const trit_client_resp *bad = gen1->kind != TRIT_CLIENT_OK ? gen1 : gen2;
        memset(out, 0, sizeof *out);
        out->bucket = bad == gen1 ? TRIT_BUCKET_GEN1_UNREACH : TRIT_BUCKET_GEN2_UNREACH;
        out->div_byte = -1;
        out->div_token_gen1 = out->div_token_gen2 = -1;
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
