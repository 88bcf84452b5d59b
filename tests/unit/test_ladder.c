/* Unit tests: ladder metrics, thresholds, tie logic, trace stats / files / diff refusal,
 * backend spec errors. No model needed. */
#include "backends/backend.h"
#include "parity/ladder.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

Test(metrics, identical_rows_are_zero) {
    float a[6] = {1, 2, 3, -1, 0.5f, 7};
    trit_logit_cmp c;
    trit_logits_compare(a, a, 6, &c);
    cr_assert_eq(c.mse, 0);
    cr_assert_eq(c.max_abs, 0);
    cr_assert_eq(c.l2, 0);
    cr_assert_float_eq(c.cosine, 1.0, 1e-12);
    cr_assert_float_eq(c.kl, 0.0, 1e-12);
    cr_assert_float_eq(c.top5, 1.0, 1e-12);
    cr_assert_eq(c.argmax_a, 5);
    cr_assert_eq(c.argmax_b, 5);
}

Test(metrics, known_values) {
    float a[4] = {1, 0, 0, 0}, b[4] = {0, 1, 0, 0};
    trit_logit_cmp c;
    trit_logits_compare(a, b, 4, &c);
    cr_assert_float_eq(c.mse, 0.5, 1e-12); /* (1 + 1) / 4 */
    cr_assert_float_eq(c.l2, sqrt(2), 1e-12);
    cr_assert_float_eq(c.max_abs, 1.0, 1e-12);
    cr_assert_float_eq(c.cosine, 0.0, 1e-12); /* orthogonal */
    cr_assert_eq(c.argmax_a, 0);
    cr_assert_eq(c.argmax_b, 1);
    float x[3] = {1, 2, 3}, y[3] = {2, 4, 6};
    trit_logits_compare(x, y, 3, &c);
    cr_assert_float_eq(c.cosine, 1.0, 1e-12); /* parallel */
    cr_assert_float_eq(c.mse, 14.0 / 3, 1e-12);
    cr_assert_eq(c.max_abs_idx, 2);
}

Test(metrics, kl_matches_closed_form) {
    /* p = softmax(0, log 3) = (1/4, 3/4); q = uniform (1/2, 1/2) */
    float p[2] = {0, (float)log(3.0)}, q[2] = {5, 5};
    double want = 0.25 * log(0.25 / 0.5) + 0.75 * log(0.75 / 0.5);
    cr_assert_float_eq(trit_logits_kl(p, q, 2), want, 1e-7);
    /* shift invariance: adding a constant to logits does not change the distribution */
    float p2[2] = {10, 10 + (float)log(3.0)};
    cr_assert_float_eq(trit_logits_kl(p2, q, 2), want, 1e-6);
    cr_assert(trit_logits_kl(p, q, 2) > 0);
    cr_assert_float_eq(trit_logits_kl(q, q, 2), 0.0, 1e-12);
}

Test(metrics, topk_overlap) {
    float a[8] = {8, 7, 6, 5, 4, 3, 2, 1};
    float b[8] = {8, 7, 6, 5, 1, 3, 2, 4}; /* id 4 drops out of top-5, id 7 comes in */
    cr_assert_float_eq(trit_topk_overlap(a, b, 8, 5), 0.8, 1e-12);
    cr_assert_float_eq(trit_topk_overlap(a, a, 8, 5), 1.0, 1e-12);
    float c[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_float_eq(trit_topk_overlap(a, c, 8, 3), 0.0, 1e-12);
}

Test(metrics, nmse) {
    float a[4] = {1, 1, 1, 1}, b[4] = {1, 1, 1, 2};
    cr_assert_float_eq(trit_nmse(a, b, 4), 0.25, 1e-12);
    cr_assert_float_eq(trit_nmse(a, a, 4), 0.0, 1e-12);
}

static trit_gen_step step(int32_t id, const int32_t *top, const float *logits, int n) {
    trit_gen_step s = {.id = id, .n_top = n};
    for (int i = 0; i < n; i++) {
        s.top_id[i] = top[i];
        s.top_logit[i] = logits[i];
        s.top_logprob[i] = logits[i] - 10;
    }
    return s;
}

Test(tie, near_and_crossed_is_tie) {
    int32_t ta[5] = {3, 4, 9, 8, 7}, tb[5] = {4, 3, 9, 8, 7};
    float la[5] = {5.0f, 4.99f, 1, 0, -1}, lb[5] = {5.0f, 4.98f, 1, 0, -1};
    trit_gen_step a = step(3, ta, la, 5), b = step(4, tb, lb, 5);
    char why[256];
    cr_assert_eq(trit_ladder_split_tie(&a, &b, 0.05, why, sizeof why), TRIT_TIE_TIE);
    cr_assert(strstr(why, "tie") != NULL);
}

Test(tie, wide_gap_is_real) {
    int32_t ta[5] = {3, 4, 9, 8, 7}, tb[5] = {4, 3, 9, 8, 7};
    float la[5] = {5.0f, 4.0f, 1, 0, -1}, lb[5] = {5.0f, 4.98f, 1, 0, -1};
    trit_gen_step a = step(3, ta, la, 5), b = step(4, tb, lb, 5);
    char why[256];
    cr_assert_eq(trit_ladder_split_tie(&a, &b, 0.05, why, sizeof why), TRIT_TIE_REAL);
    cr_assert(strstr(why, "real split") != NULL);
}

Test(tie, token_missing_from_other_top5_is_real) {
    int32_t ta[5] = {3, 4, 9, 8, 7}, tb[5] = {11, 4, 9, 8, 7}; /* 3 not in b's top-5 */
    float l[5] = {5.0f, 4.99f, 1, 0, -1};
    trit_gen_step a = step(3, ta, l, 5), b = step(11, tb, l, 5);
    cr_assert_eq(trit_ladder_split_tie(&a, &b, 0.05, NULL, 0), TRIT_TIE_REAL);
}

Test(tie, logprobs_used_when_logits_unknown) {
    int32_t ta[5] = {3, 4, 9, 8, 7}, tb[5] = {4, 3, 9, 8, 7};
    float l[5] = {5.0f, 4.99f, 1, 0, -1};
    trit_gen_step a = step(3, ta, l, 5), b = step(4, tb, l, 5);
    for (int i = 0; i < 5; i++) a.top_logit[i] = b.top_logit[i] = NAN;
    cr_assert_eq(trit_ladder_split_tie(&a, &b, 0.05, NULL, 0), TRIT_TIE_TIE);
}

/* issue 14: the ladder treated a missing top-2 as an infinite gap ("real"); the one tie rule
 * says unclassified, as compare.c does for the ledger */
Test(tie, missing_alternatives_are_unclassified) {
    int32_t ta[5] = {3, 4, 9, 8, 7}, tb[5] = {4};
    float la[5] = {5.0f, 4.99f, 1, 0, -1}, lb[5] = {5.0f};
    trit_gen_step a = step(3, ta, la, 5), b = step(4, tb, lb, 1);
    char why[256];
    cr_assert_eq(trit_ladder_split_tie(&a, &b, 0.05, why, sizeof why), TRIT_TIE_UNKNOWN);
    cr_assert(strstr(why, "unclassified") != NULL, "%s", why);
    cr_assert_eq(trit_tie_rule(NAN, 0.01, true, 0.05), TRIT_TIE_UNKNOWN);
    cr_assert_eq(trit_tie_rule(0.01, 0.02, true, 0.05), TRIT_TIE_TIE);
    cr_assert_eq(trit_tie_rule(0.01, 0.02, false, 0.05), TRIT_TIE_REAL);
}

Test(thresholds, defaults_and_overrides) {
    trit_ladder_thresholds t;
    trit_ladder_thresholds_default(&t);
    cr_assert_float_eq(t.first_mse, 1e-6, 1e-18);
    cr_assert_float_eq(t.first_maxabs, 5e-4, 1e-15);
    cr_assert_float_eq(t.pos_mse, 2e-6, 1e-18);
    cr_assert_float_eq(t.pos_kl, 5e-4, 1e-15);
    cr_assert_float_eq(t.pos_top5, 0.95, 1e-15);
    cr_assert_float_eq(t.pos_maxabs, 1e-3, 1e-15);
    trit_err e = {0};
    cr_assert_eq(trit_ladder_thresholds_parse("pos_kl=0.01,first_mse=2e-5", &t, &e), 0);
    cr_assert_float_eq(t.pos_kl, 0.01, 1e-15);
    cr_assert_float_eq(t.first_mse, 2e-5, 1e-18);
    cr_assert_float_eq(t.pos_mse, 2e-6, 1e-18); /* untouched */
}

Test(thresholds, bad_input_is_an_error) {
    trit_ladder_thresholds t;
    trit_ladder_thresholds_default(&t);
    trit_err e = {0};
    cr_assert_eq(trit_ladder_thresholds_parse("nope=1", &t, &e), -1);
    cr_assert(strstr(e.msg, "unknown threshold 'nope'") != NULL);
    cr_assert_eq(trit_ladder_thresholds_parse("pos_kl=abc", &t, &e), -1);
    cr_assert(strstr(e.msg, "pos_kl") != NULL);
    cr_assert_eq(trit_ladder_thresholds_parse("pos_kl", &t, &e), -1);
    cr_assert_eq(trit_ladder_thresholds_parse("pos_top5=2", &t, &e), -1);
    cr_assert_eq(trit_ladder_thresholds_parse("pos_mse=-1", &t, &e), -1);
    cr_assert_float_eq(t.pos_kl, 5e-4, 1e-15);
}

Test(trace, stat_compute) {
    float d[6] = {1, 2, 3, 0, NAN, INFINITY};
    trit_trace_stat s = {0};
    trit_trace_stat_compute(&s, d, 3, 2);
    cr_assert_eq(s.count, 6);
    cr_assert_eq(s.nan, 1);
    cr_assert_eq(s.inf, 1);
    cr_assert_eq(s.zero, 1);
    cr_assert_float_eq(s.mean, 1.5, 1e-12); /* finite values 1,2,3,0 */
    cr_assert_float_eq(s.std, sqrt(1.25), 1e-12);
    cr_assert_float_eq(s.min, 0, 1e-12);
    cr_assert_float_eq(s.max, 3, 1e-12);
    trit_trace_stat s2 = {0};
    trit_trace_stat_compute(&s2, d, 3, 2);
    cr_assert_eq(s.hash, s2.hash);
}

Test(trace, names) {
    cr_assert_eq(trit_trace_name_layer("Qcur-12"), 12);
    cr_assert_eq(trit_trace_name_layer("result_norm"), -1);
    cr_assert_eq(trit_trace_name_layer("x-"), -1);
    const char *sel[] = {"Qcur", "ffn_out-1"};
    cr_assert(trit_trace_name_wanted("Qcur-0", sel, 2));
    cr_assert(trit_trace_name_wanted("Qcur-7", sel, 2));
    cr_assert(trit_trace_name_wanted("ffn_out-1", sel, 2));
    cr_assert_not(trit_trace_name_wanted("ffn_out-0", sel, 2));
    cr_assert_not(trit_trace_name_wanted("Qcur_normed-0", sel, 2));
    cr_assert(trit_trace_name_wanted("anything", NULL, 0));
}

static trit_trace_stat mk(const char *name, int order, int64_t ne0, int64_t rows, double sd) {
    trit_trace_stat s = {0};
    snprintf(s.name, sizeof s.name, "%s", name);
    s.layer = trit_trace_name_layer(name);
    s.order = order;
    s.ne0 = ne0;
    s.rows = rows;
    s.count = ne0 * rows;
    s.std = sd;
    return s;
}

Test(trace_diff, refuses_different_counts) {
    trit_trace_stat a[2] = {mk("attn_norm-0", 0, 256, 6, 1), mk("Qcur-0", 1, 256, 6, 2)};
    trit_trace_stat b[2] = {mk("attn_norm-0", 0, 256, 1, 1), mk("Qcur-0", 1, 256, 1, 2)};
    trit_trace_diff_opts o = {0.5, 2.0, 1e-3};
    trit_trace_diff d;
    trit_err e = {0};
    cr_assert_eq(trit_trace_diff_run(a, 2, b, 2, &o, &d, &e), -1);
    cr_assert(strstr(e.msg, "refusing to compare") != NULL, "%s", e.msg);
    cr_assert(strstr(e.msg, "last-token") != NULL);
}

Test(trace_diff, first_point_outside_band_in_layer_order) {
    /* graph order puts layer 1 first in the array; the diff must still report layer 0 */
    trit_trace_stat a[3] = {mk("ffn_out-1", 0, 4, 2, 1), mk("Qcur-0", 1, 4, 2, 1),
                            mk("ffn_out-0", 2, 4, 2, 1)};
    trit_trace_stat b[3] = {mk("ffn_out-1", 0, 4, 2, 3), mk("Qcur-0", 1, 4, 2, 1.1),
                            mk("ffn_out-0", 2, 4, 2, 0.25)};
    trit_trace_diff_opts o = {0.5, 2.0, 1e-3};
    trit_trace_diff d;
    trit_err e = {0};
    cr_assert_eq(trit_trace_diff_run(a, 3, b, 3, &o, &d, &e), 0, "%s", e.msg);
    cr_assert_eq(d.n_common, 3);
    cr_assert_geq(d.first_bad, 0);
    cr_assert_str_eq(d.pts[d.first_bad].name, "ffn_out-0");
    cr_assert_float_eq(d.pts[d.first_bad].std_ratio, 0.25, 1e-12);
    trit_trace_diff_free(&d);
    /* all within the band */
    b[0].std = 1.5;
    b[2].std = 0.9;
    cr_assert_eq(trit_trace_diff_run(a, 3, b, 3, &o, &d, &e), 0);
    cr_assert_eq(d.first_bad, -1);
    trit_trace_diff_free(&d);
}

Test(trace_diff, nmse_from_values) {
    float va[4] = {1, 1, 1, 1}, vb[4] = {1, 1, 1, 2};
    trit_trace_stat a = mk("Qcur-0", 0, 2, 2, 1), b = mk("Qcur-0", 0, 2, 2, 1);
    a.data = va;
    b.data = vb;
    trit_trace_diff_opts o = {0.5, 2.0, 1e-3};
    trit_trace_diff d;
    trit_err e = {0};
    cr_assert_eq(trit_trace_diff_run(&a, 1, &b, 1, &o, &d, &e), 0);
    cr_assert_float_eq(d.pts[0].nmse, 0.25, 1e-12);
    cr_assert_eq(d.pts[0].first_pos, 1); /* row 1 holds the difference */
    cr_assert_eq(d.first_bad, 0);
    trit_trace_diff_free(&d);
}

Test(trace_diff, no_common_point_is_an_error) {
    trit_trace_stat a = mk("Qcur-0", 0, 2, 2, 1), b = mk("Kcur-0", 0, 2, 2, 1);
    trit_trace_diff_opts o = {0.5, 2.0, 1e-3};
    trit_trace_diff d;
    trit_err e = {0};
    cr_assert_eq(trit_trace_diff_run(&a, 1, &b, 1, &o, &d, &e), -1);
    cr_assert(strstr(e.msg, "no point") != NULL);
}

Test(trace_file, json_round_trip_with_values) {
    float v[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
    trit_trace_stat s = mk("kqv_out-0", 0, 3, 2, 0);
    trit_trace_stat_compute(&s, v, 3, 2);
    s.data = v;
    trit_backend_info info = {0};
    snprintf(info.spec, sizeof info.spec, "llama:/x.gguf");
    json_t *j = trit_trace_to_json(&info, "hi", 2, false, &s, 1, true);
    trit_trace_file f;
    trit_err e = {0};
    cr_assert_eq(trit_trace_from_json(j, &f, &e), 0, "%s", e.msg);
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.last_token, false);
    cr_assert_str_eq(f.stats[0].name, "kqv_out-0");
    cr_assert_eq(f.stats[0].count, 6);
    cr_assert_eq(f.stats[0].hash, s.hash);
    cr_assert_float_eq(f.stats[0].std, s.std, 1e-12);
    cr_assert_not_null(f.stats[0].data);
    cr_assert_eq(memcmp(f.stats[0].data, v, sizeof v), 0);
    trit_trace_file_free(&f);
    json_decref(j);
    json_t *bad = json_pack("{s:[]}", "points");
    cr_assert_eq(trit_trace_from_json(bad, &f, &e), -1);
    cr_assert(strstr(e.msg, "not a trit trace file") != NULL);
    json_decref(bad);
}

Test(backend, bad_specs_fail_clearly) {
    trit_err e = {0};
    cr_assert_null(trit_backend_open("gpt:foo", NULL, &e));
    cr_assert(strstr(e.msg, "expected trit:MODEL") != NULL, "%s", e.msg);
    cr_assert_null(trit_backend_open("", NULL, &e));
    cr_assert_null(trit_backend_open("llama:", NULL, &e));
    cr_assert(strstr(e.msg, "no model path") != NULL, "%s", e.msg);
    cr_assert_null(trit_backend_open("llama:/x.gguf?rope=neox", NULL, &e));
    cr_assert(strstr(e.msg, "trit backend only") != NULL, "%s", e.msg);
    cr_assert_null(trit_backend_open("trit:/x.gguf?rope=sideways", NULL, &e));
    cr_assert(strstr(e.msg, "norm or neox") != NULL, "%s", e.msg);
    cr_assert_null(trit_backend_open("trit:/x.gguf?bogus=1", NULL, &e));
    cr_assert(strstr(e.msg, "unknown backend option 'bogus'") != NULL, "%s", e.msg);
    cr_assert_null(trit_backend_open("trit:/nonexistent/model.gguf", NULL, &e));
    cr_assert_neq(e.code, 0);
    cr_assert_null(trit_backend_open("http:ftp://x", NULL, &e));
    cr_assert(strstr(e.msg, "not an http(s)://") != NULL, "%s", e.msg);
}

/* ---- top-N metrics (rungs 3-4 over http) on synthetic lists ---- */

/* A top-N entry from ids and probabilities (most likely first); next token: next. */
static trit_pos_topn topn(const int32_t *ids, const double *p, int n, int32_t next) {
    trit_pos_topn e = {.next_id = next, .n_top = n, .next_logprob = NAN};
    for (int i = 0; i < n; i++) {
        e.top_id[i] = ids[i];
        e.top_logprob[i] = log(p[i]);
        if (ids[i] == next) e.next_logprob = e.top_logprob[i];
    }
    if (next >= 0 && isnan(e.next_logprob)) e.next_logprob = log(1e-6);
    return e;
}

/* The top-N list of a full logit row, as trit_backend_score gives it in-process. */
static trit_pos_topn topn_of_row(const float *row, int nv, int n) {
    trit_pos_topn e = {.next_id = -1, .next_logprob = NAN};
    double lse = trit_logsumexp(row, nv);
    e.n_top = trit_top_k(row, nv, n, e.top_id);
    for (int i = 0; i < e.n_top; i++) e.top_logprob[i] = row[e.top_id[i]] - lse;
    return e;
}

Test(topn, identical_lists_are_zero) {
    int32_t ids[6] = {7, 3, 9, 1, 4, 2};
    double p[6] = {0.4, 0.2, 0.1, 0.05, 0.04, 0.01};
    trit_pos_topn a = topn(ids, p, 6, -1);
    trit_topn_cmp c;
    trit_topn_compare(&a, &a, &c);
    cr_assert_eq(c.n, 6);
    cr_assert_eq(c.shared, 6);
    cr_assert_float_eq(c.kl, 0, 1e-15);
    cr_assert_float_eq(c.max_abs, 0, 1e-15);
    cr_assert_float_eq(c.cover, 1, 1e-12);
    cr_assert_float_eq(c.top5, 1, 1e-12);
    cr_assert_float_eq(c.mass_a, 0.8, 1e-12);
    cr_assert_eq(c.argmax_a, 7);
}

/* KL over the shared support plus a rest bucket: a = (.5, .25, .125) on ids 0 1 2, b = (.5,
 * .25, .125) on ids 1 0 3: S = {0, 1}, p = (.5, .25), q = (.25, .5), rest .25 on both sides:
 * KL = .5 ln 2 + .25 ln .5 + .25 ln 1 = ln 2 / 4 */
Test(topn, kl_over_shared_support_closed_form) {
    int32_t ia[3] = {0, 1, 2}, ib[3] = {1, 0, 3};
    double p[3] = {0.5, 0.25, 0.125};
    trit_pos_topn a = topn(ia, p, 3, -1), b = topn(ib, p, 3, -1);
    trit_topn_cmp c;
    trit_topn_compare(&a, &b, &c);
    cr_assert_eq(c.shared, 2);
    cr_assert_float_eq(c.kl, log(2.0) / 4, 1e-12);
    cr_assert_float_eq(c.max_abs, log(2.0), 1e-12);
    cr_assert_float_eq(c.mass_a, 0.75, 1e-12);
    cr_assert_float_eq(c.mass_b, 0.75, 1e-12);
    cr_assert_float_eq(c.cover, 0.75 / 0.875, 1e-12); /* each side: S holds 6/7 of its list */
    cr_assert_float_eq(c.top5, 2.0 / 3, 1e-12);       /* min(5, n) = 3 entries, 2 shared */
    /* b moves mass out of S: the rest bucket carries it (a = .5 .25 | rest .25; b = .25 .125
     * | rest .625) */
    double pb2[3] = {0.125, 0.25, 0.5};
    int32_t ib2[3] = {1, 0, 3};
    trit_pos_topn b2 = topn(ib2, pb2, 3, -1);
    trit_topn_compare(&a, &b2, &c);
    double want = 0.5 * log(0.5 / 0.25) + 0.25 * log(0.25 / 0.125) + 0.25 * log(0.25 / 0.625);
    cr_assert_float_eq(c.kl, want, 1e-12);
}

/* cover is the smaller of the two sides' shares: a holds .5 of its .875 on S = {0}, b .8 of
 * its .9 */
Test(topn, cover_is_the_worse_side) {
    int32_t ia[3] = {0, 1, 2}, ib[3] = {0, 3, 4};
    double pa[3] = {0.5, 0.25, 0.125}, pb[3] = {0.8, 0.05, 0.05};
    trit_pos_topn a = topn(ia, pa, 3, -1), b = topn(ib, pb, 3, -1);
    trit_topn_cmp c;
    trit_topn_compare(&a, &b, &c);
    cr_assert_eq(c.shared, 1);
    cr_assert_float_eq(c.cover, 0.5 / 0.875, 1e-12);
    trit_topn_compare(&b, &a, &c);
    cr_assert_float_eq(c.cover, 0.5 / 0.875, 1e-12);
    cr_assert_float_eq(c.max_abs, log(0.8 / 0.5), 1e-12);
    cr_assert_eq(c.max_abs_id, 0);
}

Test(topn, lists_cut_to_the_shorter) {
    int32_t ia[6] = {0, 1, 2, 3, 4, 5}, ib[3] = {0, 1, 2};
    double pa[6] = {0.5, 0.2, 0.1, 0.05, 0.04, 0.03}, pb[3] = {0.5, 0.2, 0.1};
    trit_pos_topn a = topn(ia, pa, 6, -1), b = topn(ib, pb, 3, -1);
    trit_topn_cmp c;
    trit_topn_compare(&a, &b, &c);
    cr_assert_eq(c.n, 3);
    cr_assert_eq(c.shared, 3);
    cr_assert_float_eq(c.cover, 1, 1e-12); /* a's entries beyond 3 are not counted */
    cr_assert_float_eq(c.kl, 0, 1e-12);
    cr_assert_float_eq(c.top5, 1, 1e-12);
}

Test(topn, disjoint_lists_share_nothing) {
    int32_t ia[5] = {0, 1, 2, 3, 4}, ib[5] = {5, 6, 7, 8, 9};
    double p[5] = {0.3, 0.2, 0.1, 0.05, 0.01};
    trit_pos_topn a = topn(ia, p, 5, -1), b = topn(ib, p, 5, -1);
    trit_topn_cmp c;
    trit_topn_compare(&a, &b, &c);
    cr_assert_eq(c.shared, 0);
    cr_assert_float_eq(c.cover, 0, 1e-15);
    cr_assert(isinf(c.max_abs));
    cr_assert_float_eq(c.top5, 0, 1e-15);
}

Test(topn, top5_counts_only_the_first_five) {
    int32_t ia[7] = {0, 1, 2, 3, 4, 5, 6}, ib[7] = {0, 1, 2, 3, 5, 4, 6};
    double p[7] = {0.3, 0.2, 0.1, 0.05, 0.04, 0.039, 0.01};
    trit_pos_topn a = topn(ia, p, 7, -1), b = topn(ib, p, 7, -1);
    trit_topn_cmp c;
    trit_topn_compare(&a, &b, &c);
    cr_assert_float_eq(c.top5, 0.8, 1e-12); /* 4 and 5 swap across rank 5 */
    cr_assert_eq(c.shared, 7);
}

/* The default top-N thresholds on lists made from full rows: a 1-ulp-sized perturbation of
 * every logit passes rung 4's bounds; a perturbation the size of a different activation
 * (a few tenths on some logits) fails them. */
Test(topn, default_thresholds_separate_noise_from_faults) {
    enum { NV = 4000 };
    static float a[NV], b[NV], c[NV];
    uint64_t s = 12345;
    for (int i = 0; i < NV; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        a[i] = (float)((double)(s >> 11) / (double)(1ull << 53) * 12.0 - 6.0);
        b[i] = nextafterf(a[i], INFINITY); /* one ulp up */
        c[i] = a[i] + ((i * 7919) % 13 == 0 ? 0.4f : 0.0f);
    }
    trit_ladder_thresholds th;
    trit_ladder_thresholds_default(&th);
    trit_pos_topn ta = topn_of_row(a, NV, 20), tb = topn_of_row(b, NV, 20),
                  tc = topn_of_row(c, NV, 20);
    trit_topn_cmp ok, bad;
    trit_topn_compare(&ta, &tb, &ok);
    trit_topn_compare(&ta, &tc, &bad);
    cr_assert(ok.kl <= th.topn_kl && ok.max_abs <= th.topn_first_maxabs &&
                  ok.cover >= th.topn_cover && ok.top5 >= th.topn_top5,
              "1-ulp: kl %g max_abs %g cover %g top5 %g", ok.kl, ok.max_abs, ok.cover, ok.top5);
    cr_assert(bad.kl > th.topn_kl || bad.max_abs > th.topn_maxabs || bad.cover < th.topn_cover,
              "fault: kl %g max_abs %g cover %g", bad.kl, bad.max_abs, bad.cover);
}

/* ---- top-N well-formedness: every malformed reply is refused, naming the request ---- */

/* Three positions of a 3-token prompt (ids 1 2 3), well-formed. */
static void good_rows(trit_pos_topn *pos) {
    int32_t ids[6] = {2, 8, 9, 10, 11, 12};
    double p[6] = {0.5, 0.2, 0.1, 0.05, 0.04, 0.01};
    pos[0] = topn(ids, p, 6, 2);
    ids[0] = 3;
    pos[1] = topn(ids, p, 6, 3);
    pos[2] = topn(ids, p, 6, -1);
}

Test(topn_check, well_formed_rows_pass) {
    int32_t prompt[3] = {1, 2, 3};
    trit_pos_topn pos[3];
    good_rows(pos);
    trit_err e = {0};
    cr_assert_eq(trit_topn_check(pos, 3, prompt, 3, 0, 100, 5, &e), 0, "%s", e.msg);
    /* a slice: positions 1..2 scored with from = 1 */
    cr_assert_eq(trit_topn_check(pos + 1, 2, prompt, 3, 1, 100, 5, &e), 0, "%s", e.msg);
}

/* Break row 1 with fn, expect a refusal naming position 1 (prefix of 2 tokens) and want. */
static void expect_refused(void (*fn)(trit_pos_topn *), const char *want) {
    int32_t prompt[3] = {1, 2, 3};
    trit_pos_topn pos[3];
    good_rows(pos);
    fn(&pos[1]);
    trit_err e = {0};
    cr_assert_eq(trit_topn_check(pos, 3, prompt, 3, 0, 100, 5, &e), -1, "accepted: %s", want);
    cr_assert_eq(e.code, TRIT_EFORMAT);
    cr_assert(strstr(e.msg, "position 1 (scoring the prefix of 2 tokens)") != NULL, "%s", e.msg);
    cr_assert(strstr(e.msg, want) != NULL, "want '%s' in: %s", want, e.msg);
}

static void br_short(trit_pos_topn *e) {
    e->n_top = 2;
}
static void br_fewer(trit_pos_topn *e) {
    e->n_top = 5;
}
static void br_positive(trit_pos_topn *e) {
    e->top_logprob[2] = 0.5;
}
static void br_nan(trit_pos_topn *e) {
    e->top_logprob[4] = NAN;
}
static void br_order(trit_pos_topn *e) {
    e->top_logprob[3] = -0.1;
}
static void br_dup(trit_pos_topn *e) {
    e->top_id[4] = e->top_id[1];
}
static void br_vocab(trit_pos_topn *e) {
    e->top_id[5] = 100;
}
static void br_next(trit_pos_topn *e) {
    e->next_id = 7;
}
static void br_next_lp(trit_pos_topn *e) {
    e->next_logprob = log(0.25);
}
static void br_mass(trit_pos_topn *e) {
    for (int i = 0; i < e->n_top; i++) e->top_logprob[i] = log(0.3);
    e->next_logprob = log(0.3);
}

Test(topn_check, malformed_rows_are_refused) {
    expect_refused(br_short, "2 top log-probabilities (need 5..20)");
    expect_refused(br_fewer, "5 top log-probabilities where other positions have 6");
    expect_refused(br_positive, "has log-probability 0.5");
    expect_refused(br_nan, "has log-probability nan");
    expect_refused(br_order, "out of order");
    expect_refused(br_dup, "listed twice");
    expect_refused(br_vocab, "outside the vocabulary of 100");
    expect_refused(br_next, "scored next token 7, the prompt's is 3");
    expect_refused(br_next_lp, "in the top-N list");
    expect_refused(br_mass, "sum to");
}

Test(thresholds, topn_defaults_and_parse) {
    trit_ladder_thresholds t;
    trit_ladder_thresholds_default(&t);
    cr_assert_float_eq(t.topn_kl, 5e-4, 1e-15);
    cr_assert_float_eq(t.topn_first_maxabs, 1e-3, 1e-15);
    cr_assert_float_eq(t.topn_maxabs, 2e-3, 1e-15);
    cr_assert_float_eq(t.topn_top5, 0.95, 1e-15);
    cr_assert_float_eq(t.topn_cover, 0.9, 1e-15);
    trit_err e = {0};
    cr_assert_eq(trit_ladder_thresholds_parse("topn_kl=1e-2,topn_cover=0.5", &t, &e), 0, "%s",
                 e.msg);
    cr_assert_float_eq(t.topn_kl, 1e-2, 1e-15);
    cr_assert_float_eq(t.topn_cover, 0.5, 1e-15);
    cr_assert_eq(trit_ladder_thresholds_parse("topn_cover=1.5", &t, &e), -1);
    cr_assert(strstr(e.msg, "topn_cover") != NULL, "%s", e.msg);
    json_t *j = trit_ladder_thresholds_json(&t);
    cr_assert_not_null(json_object_get(j, "topn_maxabs"));
    json_decref(j);
}
