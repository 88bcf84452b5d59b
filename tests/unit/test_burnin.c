/* test_burnin.c — the token split (compare.c): a no-match is classified where the token
 * sequences part, not at the token holding the first differing byte; alignment by id, or by
 * the tokens' bytes when a server returns no ids; the record's split fields. */
#include "parity/parity.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building token streams ---- */

/* A reply's tokens and text, grown token by token (text = the tokens' bytes in order). */
typedef struct stream {
    trit_client_token tok[80];
    int n;
    char text[512];
    size_t len;
} stream;

/* Append one token: its bytes, its id (-1: none), and its alternatives (texts, ids, logprobs;
 * n_top 0: no logprobs). */
static void push(stream *s, const char *text, int32_t id, int n_top, const char *const *tops,
                 const int32_t *ids, const double *lps) {
    trit_client_token *t = &s->tok[s->n++];
    memset(t, 0, sizeof *t);
    t->text = (char *)text;
    t->len = strlen(text);
    t->id = id;
    t->logprob = n_top ? lps[0] : -1;
    t->n_top = n_top;
    for (int i = 0; i < n_top; i++)
        t->top[i] = (trit_client_alt){(char *)tops[i], strlen(tops[i]), ids ? ids[i] : -1, lps[i]};
    memcpy(s->text + s->len, text, t->len);
    s->len += t->len;
}

/* Ids off: every token and alternative as a server without ids returns them. */
static void drop_ids(stream *s) {
    for (int i = 0; i < s->n; i++) {
        s->tok[i].id = -1;
        for (int j = 0; j < s->tok[i].n_top; j++) s->tok[i].top[j].id = -1;
    }
}

/* The recorded case (issue 19: llama-server -np 4 vs trit serve --slots 4, 4 clients):
 * div_token_v1 54, div_token_v2 53, gap_v1 1.93, gap_v2 0.0006 -> "real". Both replies spell
 * the same 52 tokens, then gen-1 (batch noise: a near-tie) takes " th"+"e" where gen-2 takes
 * " the": the same bytes, one token apart. The bytes part only at the next word (" Lord" vs
 * " king"), which the old rule read on each side (gen-1 token 54, gen-2 token 53). */
static void recorded_case(stream *g1, stream *g2) {
    memset(g1, 0, sizeof *g1);
    memset(g2, 0, sizeof *g2);
    static const char *const common_top[] = {" and", " of"};
    static const int32_t common_ids[] = {10, 11};
    static const double common_lp[] = {-0.01, -5.0};
    for (int i = 0; i < 52; i++) {
        push(g1, " and", 10, 2, common_top, common_ids, common_lp);
        push(g2, " and", 10, 2, common_top, common_ids, common_lp);
    }
    /* token 52, the token split: both sides near a tie between " th" (101) and " the" (100) */
    static const char *const g1_top52[] = {" th", " the", " a"};
    static const int32_t g1_ids52[] = {101, 100, 12};
    static const double g1_lp52[] = {-0.700, -0.712, -4.0}; /* gen-1's gap 0.012 */
    push(g1, " th", 101, 3, g1_top52, g1_ids52, g1_lp52);
    static const char *const g2_top52[] = {" the", " th", " a"};
    static const int32_t g2_ids52[] = {100, 101, 12};
    static const double g2_lp52[] = {-0.6900, -0.6906, -4.0}; /* gen-2's gap 0.0006 */
    push(g2, " the", 100, 3, g2_top52, g2_ids52, g2_lp52);
    /* gen-1 finishes the word with "e" (token 53), then " Lord" (token 54): a clear pick */
    static const char *const e_top[] = {"e", "ese"};
    static const int32_t e_ids[] = {102, 103};
    static const double e_lp[] = {-0.001, -7.0};
    push(g1, "e", 102, 2, e_top, e_ids, e_lp);
    static const char *const g1_top54[] = {" Lord", " king"};
    static const int32_t g1_ids54[] = {200, 201};
    static const double g1_lp54[] = {-0.13, -2.06}; /* gap_v1 1.93 in the record */
    push(g1, " Lord", 200, 2, g1_top54, g1_ids54, g1_lp54);
    /* gen-2's token 53 is " king": a near-tie there too (gap_v2 0.0006 in the record) */
    static const char *const g2_top53[] = {" king", " Lord"};
    static const int32_t g2_ids53[] = {201, 200};
    static const double g2_lp53[] = {-0.6930, -0.6936};
    push(g2, " king", 201, 2, g2_top53, g2_ids53, g2_lp53);
}

static void compare(const stream *g1, const stream *g2, trit_compare *c) {
    trit_compare_texts(g1->text, g1->len, g1->tok, g1->n, g2->text, g2->len, g2->tok, g2->n,
                       TRIT_TIE_EPS_DEFAULT, c);
}

/* ---- the token split ---- */

Test(token_split, recorded_case_is_a_tie) {
    stream g1, g2;
    recorded_case(&g1, &g2);
    trit_compare c;
    compare(&g1, &g2, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_NOMATCH);
    /* the byte fields as the recorded round had them */
    cr_assert_eq(c.div_byte, 52 * 4 + 5, "div_byte %ld", c.div_byte); /* " L" vs " k" */
    cr_assert_eq(c.div_token_gen1, 54);
    cr_assert_eq(c.div_token_gen2, 53);
    /* the token split, one token before the bytes part, read on both sides */
    cr_assert_eq(c.div_token, 52, "div_token %d", c.div_token);
    cr_assert_eq(c.align, TRIT_ALIGN_IDS);
    cr_assert_float_eq(c.gap_gen1, 0.012, 1e-9, "gap_gen1 %g", c.gap_gen1);
    cr_assert_float_eq(c.gap_gen2, 0.0006, 1e-9, "gap_gen2 %g", c.gap_gen2);
    cr_assert_eq(c.tie, TRIT_TIE_TIE, "tie %d (gen-1 batch noise must be a tie)", c.tie);
    /* what the old rule read: each side's gap at the token holding div_byte, misaligned */
    double ga, gb;
    cr_assert_eq(trit_compare_tie(&g1.tok[54], &g2.tok[53], TRIT_TIE_EPS_DEFAULT, &ga, &gb),
                 TRIT_TIE_REAL);
    cr_assert_float_eq(ga, 1.93, 1e-9);
}

Test(token_split, recorded_case_without_ids_aligns_by_text) {
    stream g1, g2;
    recorded_case(&g1, &g2);
    drop_ids(&g1);
    drop_ids(&g2);
    trit_compare c;
    compare(&g1, &g2, &c);
    cr_assert_eq(c.div_token, 52);
    cr_assert_eq(c.align, TRIT_ALIGN_TEXT);
    cr_assert_eq(c.tie, TRIT_TIE_TIE);
    /* one side without ids is enough to align by text */
    recorded_case(&g1, &g2);
    drop_ids(&g2);
    compare(&g1, &g2, &c);
    cr_assert_eq(c.align, TRIT_ALIGN_TEXT);
    cr_assert_eq(c.div_token, 52);
    cr_assert_eq(c.tie, TRIT_TIE_TIE);
    /* a single token without an id makes the whole comparison go by text */
    recorded_case(&g1, &g2);
    g2.tok[3].id = -1;
    compare(&g1, &g2, &c);
    cr_assert_eq(c.align, TRIT_ALIGN_TEXT);
    cr_assert_eq(c.div_token, 52);
}

Test(token_split, ids_part_where_bytes_agree) {
    /* two ids with the same bytes (a vocabulary can hold both): by id the split is token 1,
     * by text it is token 2, where the bytes differ */
    static const char *const top1[] = {"b", "b"};
    static const int32_t ids1[] = {7, 8};
    static const double lp1[] = {-0.69, -0.70};
    static const char *const top1b[] = {"b", "b"};
    static const int32_t ids1b[] = {8, 7};
    static const char *const top2[] = {"x", "y"};
    static const double lp2[] = {-0.1, -3.0};
    stream g1 = {0}, g2 = {0};
    push(&g1, "a", 1, 0, NULL, NULL, NULL);
    push(&g2, "a", 1, 0, NULL, NULL, NULL);
    push(&g1, "b", 7, 2, top1, ids1, lp1);
    push(&g2, "b", 8, 2, top1b, ids1b, lp1);
    push(&g1, "x", 20, 2, top2, NULL, lp2);
    push(&g2, "y", 21, 2, top2, NULL, lp2);
    trit_compare c;
    compare(&g1, &g2, &c);
    cr_assert_eq(c.div_byte, 2);
    cr_assert_eq(c.align, TRIT_ALIGN_IDS);
    cr_assert_eq(c.div_token, 1);
    cr_assert_eq(c.tie, TRIT_TIE_TIE);
    drop_ids(&g1);
    compare(&g1, &g2, &c);
    cr_assert_eq(c.align, TRIT_ALIGN_TEXT);
    cr_assert_eq(c.div_token, 2);
    cr_assert_eq(c.tie, TRIT_TIE_REAL); /* gap 2.9 at "x" / "y" */
}

Test(token_split, same_segmentation_matches_the_byte_split) {
    /* no re-segmentation: the token split is the token holding the first differing byte */
    static const char *const ta[] = {" cat", " dog"};
    static const double la[] = {-0.69, -0.70};
    static const char *const tb[] = {" dog", " cat"};
    stream g1 = {0}, g2 = {0};
    push(&g1, "The", -1, 0, NULL, NULL, NULL);
    push(&g2, "The", -1, 0, NULL, NULL, NULL);
    push(&g1, " cat", -1, 2, ta, NULL, la);
    push(&g2, " dog", -1, 2, tb, NULL, la);
    trit_compare c;
    compare(&g1, &g2, &c);
    cr_assert_eq(c.div_token, 1);
    cr_assert_eq(c.div_token_gen1, 1);
    cr_assert_eq(c.div_token_gen2, 1);
    cr_assert_eq(c.align, TRIT_ALIGN_TEXT);
    cr_assert_eq(c.tie, TRIT_TIE_TIE);
}

Test(token_split, tokens_that_do_not_spell_the_reply_are_not_used) {
    /* the same tokens on both sides while the texts differ: no token split, unclassified */
    static const char *const top[] = {"a", "b"};
    static const double lp[] = {-0.5, -0.51};
    stream g1 = {0}, g2 = {0};
    push(&g1, "a", 1, 2, top, NULL, lp);
    push(&g2, "a", 1, 2, top, NULL, lp);
    trit_compare c;
    trit_compare_texts("a cat", 5, g1.tok, g1.n, "a dog", 5, g2.tok, g2.n, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_NOMATCH);
    cr_assert_eq(c.div_token, -1);
    cr_assert_eq(c.align, TRIT_ALIGN_NONE);
    cr_assert_eq(c.tie, TRIT_TIE_UNKNOWN);
    /* tokens that part only after the bytes did (they spell something else): not trusted */
    stream h1 = {0}, h2 = {0};
    push(&h1, "a cat", 1, 2, top, NULL, lp);
    push(&h1, "x", 2, 2, top, NULL, lp);
    push(&h2, "a cat", 1, 2, top, NULL, lp);
    push(&h2, "y", 3, 2, top, NULL, lp);
    trit_compare_texts("a cow", 5, h1.tok, h1.n, "a cat", 5, h2.tok, h2.n, 0.05, &c);
    cr_assert_eq(c.div_byte, 3);
    cr_assert_eq(c.div_token, -1);
    cr_assert_eq(c.tie, TRIT_TIE_UNKNOWN);
    /* one side without tokens: nothing to align */
    compare(&g1, &(stream){0}, &c);
    cr_assert_eq(c.div_token, -1);
    cr_assert_eq(c.tie, TRIT_TIE_UNKNOWN);
}

Test(token_split, prefix_only_where_one_side_ends) {
    /* gen-1 stopped early: its tokens are a prefix of gen-2's; the split is where gen-1 ran
     * out, and with no gen-1 token there the tie stays unknown */
    static const char *const top[] = {"a", "b"};
    static const double lp[] = {-0.5, -0.51};
    stream g1 = {0}, g2 = {0};
    push(&g1, "ab", 1, 2, top, NULL, lp);
    push(&g2, "ab", 1, 2, top, NULL, lp);
    push(&g2, "c", 2, 2, top, NULL, lp);
    trit_compare c;
    compare(&g1, &g2, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_PREFIX);
    cr_assert_eq(c.div_token, 1);
    cr_assert_eq(c.tie, TRIT_TIE_UNKNOWN);
    /* a prefix in bytes, re-segmented in tokens: both sides have a token at the split */
    stream h1 = {0}, h2 = {0};
    static const char *const t1[] = {"a", "ab"};
    static const int32_t i1[] = {5, 1};
    static const char *const t2[] = {"ab", "a"};
    static const int32_t i2[] = {1, 5};
    push(&h1, "a", 5, 2, t1, i1, lp);
    push(&h1, "b", 6, 2, top, NULL, lp);
    push(&h2, "ab", 1, 2, t2, i2, lp);
    push(&h2, "c", 2, 2, top, NULL, lp);
    compare(&h1, &h2, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_PREFIX);
    cr_assert_eq(c.div_token, 0);
    cr_assert_eq(c.tie, TRIT_TIE_TIE);
}

/* ---- the round record ---- */

/* A reply (kind OK) holding a stream's text and tokens (copied: the reply owns them). */
static void resp_of(const stream *s, trit_client_resp *r) {
    trit_client_resp_init(r);
    free(r->content);
    r->content = xmalloc(s->len + 1);
    memcpy(r->content, s->text, s->len);
    r->content[s->len] = 0;
    r->content_len = s->len;
    r->n_tokens = s->n;
    r->tokens = xcalloc((size_t)s->n, sizeof *r->tokens);
    for (int i = 0; i < s->n; i++) {
        r->tokens[i] = s->tok[i];
        r->tokens[i].text = xstrdup(s->tok[i].text);
        for (int j = 0; j < s->tok[i].n_top; j++)
            r->tokens[i].top[j].text = xstrdup(s->tok[i].top[j].text);
    }
}

Test(token_split, record_names_the_token_split) {
    stream g1, g2;
    recorded_case(&g1, &g2);
    trit_client_resp r1, r2;
    resp_of(&g1, &r1);
    resp_of(&g2, &r2);
    trit_compare c;
    trit_compare_resps(&r1, &r2, TRIT_TIE_EPS_DEFAULT, &c);
    trit_round_meta m = {.source = "burnin", .ts = 1000, .round = 3, .prompt_id = "p"};
    json_t *rec = trit_ledger_round_json(&m, &r1, &r2, &c);
    trit_compare_split_fields(rec, &c, &r1, &r2);
    cr_assert_eq(json_integer_value(json_object_get(rec, "div_token")), 52);
    cr_assert_str_eq(json_string_value(json_object_get(rec, "div_align")), "ids");
    cr_assert_str_eq(json_string_value(json_object_get(rec, "tie")), "tie");
    /* the byte fields stay */
    cr_assert_eq(json_integer_value(json_object_get(rec, "div_token_v1")), 54);
    cr_assert_eq(json_integer_value(json_object_get(rec, "div_token_v2")), 53);
    /* the split shows the tokens the tie rule read */
    json_t *sp = json_object_get(rec, "split");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(sp, "v1"), "t")), " th");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(sp, "v2"), "t")), " the");
    /* without ids: "text" */
    for (int i = 0; i < r2.n_tokens; i++) r2.tokens[i].id = -1;
    trit_compare_resps(&r1, &r2, TRIT_TIE_EPS_DEFAULT, &c);
    trit_compare_split_fields(rec, &c, &r1, &r2);
    cr_assert_str_eq(json_string_value(json_object_get(rec, "div_align")), "text");
    /* an exact round: no token split */
    trit_compare_resps(&r1, &r1, TRIT_TIE_EPS_DEFAULT, &c);
    trit_compare_split_fields(rec, &c, &r1, &r1);
    cr_assert_eq(json_integer_value(json_object_get(rec, "div_token")), -1);
    cr_assert(json_is_null(json_object_get(rec, "div_align")));
    json_decref(rec);
    trit_client_resp_free(&r1);
    trit_client_resp_free(&r2);
}
