/* test_ppl.c — perplexity numerics, the base-logits file format, reference-output parsing,
 * shadow SSE reassembly and HTML escaping (no network); trit_backend_score of the in-process
 * backends against their full logits (the demo model, models/kjv-bitnet-tq2_0.gguf; llama:
 * skipped without the reference build), the top-N KL helper and the top-N accumulator. */
#include "backends/backend.h"
#include "parity/ppl.h"
#include "parity/report.h"
#include "parity/shadow.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *tmp_path(const char *tag) {
    static char buf[4][128];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 128, "/tmp/test_ppl_%d_%s", (int)getpid(), tag);
    return p;
}

Test(ppl, nll_uniform_is_log_vocab) {
    float l[1000];
    for (int i = 0; i < 1000; i++) l[i] = 3.0f;
    cr_assert_float_eq(trit_ppl_nll(l, 1000, 17), log(1000.0), 1e-5);
}

Test(ppl, nll_known_softmax) {
    float l[3] = {0.0f, 1.0f, 2.0f};
    double lse = log(exp(0.0) + exp(1.0) + exp(2.0));
    cr_assert_float_eq(trit_ppl_nll(l, 3, 0), lse - 0.0, 1e-6);
    cr_assert_float_eq(trit_ppl_nll(l, 3, 2), lse - 2.0, 1e-6);
}

Test(ppl, quantize_row_roundtrip) {
    enum { N = 1001 };
    float l[N];
    for (int i = 0; i < N; i++) l[i] = (float)sin(i * 0.37) * 8.0f;
    uint16_t row[2 * ((N + 1) / 2) + 4];
    double nll = trit_ppl_quantize_row(l, N, 5, row);
    cr_assert_float_eq(nll, trit_ppl_nll(l, N, 5), 1e-4);
    float scale, minlp;
    memcpy(&scale, row, 4);
    memcpy(&minlp, row + 2, 4);
    cr_assert_gt(scale, 0);
    /* dequantized log-probs are within one step of the exact ones (above max-16) */
    double lse = 0, mx = -1e30;
    for (int i = 0; i < N; i++) mx = fmax(mx, l[i]);
    for (int i = 0; i < N; i++) lse += exp(l[i] - mx);
    lse = mx + log(lse);
    for (int i = 0; i < N; i++) {
        double want = l[i] - lse, got = scale * row[4 + i] + minlp;
        cr_assert(fabs(want - got) <= scale * 0.51 + 1e-5, "i=%d want %g got %g", i, want, got);
    }
    cr_assert_eq(row[N + 4], 0, "padding word must be zero");
}

Test(ppl, kld_of_identical_logits_is_zero) {
    enum { N = 500 };
    float l[N];
    for (int i = 0; i < N; i++) l[i] = (float)cos(i * 0.11) * 5.0f;
    uint16_t row[2 * ((N + 1) / 2) + 4];
    trit_ppl_acc a = {0};
    for (int k = 0; k < 200; k++) {
        trit_ppl_quantize_row(l, N, k % N, row);
        trit_ppl_acc_kld(&a, l, N, k % N, row);
    }
    trit_ppl_result r;
    trit_ppl_result_init(&r);
    trit_ppl_acc_result(&a, &r);
    cr_assert(r.has_kld);
    cr_assert_lt(fabs(r.kld_mean), 1e-4);
    cr_assert_float_eq(r.same_top, 1.0, 1e-12);
    cr_assert_lt(r.rms_dp, 1e-3);
    cr_assert_float_eq(r.ppl, r.ppl_base, r.ppl * 1e-3);
    trit_ppl_acc_free(&a);
}

/* issue 14: per-token KLD went negative (p10 = -2e-5 in the demo) because the quantized base
 * distribution does not sum to one; a token's KLD is now never below -1e-9, for the same
 * logits and for slightly perturbed ones */
Test(ppl, kld_per_token_never_negative) {
    enum { N = 2000 };
    static float l[N], m[N];
    uint16_t row[2 * ((N + 1) / 2) + 4];
    trit_ppl_acc a = {0};
    for (int k = 0; k < 100; k++) {
        for (int i = 0; i < N; i++) {
            l[i] = (float)(sin(i * 0.37 + k) * 6.0 + cos(i * 1.3 * k) * 2.0);
            m[i] = l[i] + (k % 2 ? 0.0f : (float)(1e-4 * sin(i * 7.0 + k)));
        }
        trit_ppl_quantize_row(l, N, k % N, row);
        trit_ppl_acc_kld(&a, m, N, k % N, row);
    }
    for (size_t i = 0; i < a.n_vals; i++)
        cr_assert_geq(a.kld_vals[i], -1e-9, "token %zu: KLD %g", i, (double)a.kld_vals[i]);
    trit_ppl_result r;
    trit_ppl_result_init(&r);
    trit_ppl_acc_result(&a, &r);
    cr_assert_geq(r.kld_min, -1e-9, "min %g", r.kld_min);
    cr_assert_geq(r.kld_pct[TRIT_PPL_NPCT - 1], -1e-9);
    cr_assert_lt(r.kld_mean, 1e-4);
    trit_ppl_acc_free(&a);
}

Test(ppl, kld_detects_a_different_distribution) {
    enum { N = 64 };
    float p[N], q[N];
    for (int i = 0; i < N; i++) p[i] = (float)i * 0.1f, q[i] = (float)(N - i) * 0.1f;
    uint16_t row[N + 4];
    trit_ppl_acc a = {0};
    for (int k = 0; k < 50; k++) {
        trit_ppl_quantize_row(p, N, 3, row);
        trit_ppl_acc_kld(&a, q, N, 3, row);
    }
    trit_ppl_result r;
    trit_ppl_result_init(&r);
    trit_ppl_acc_result(&a, &r);
    cr_assert_gt(r.kld_mean, 0.5);
    cr_assert_float_eq(r.same_top, 0.0, 1e-12);
    trit_ppl_acc_free(&a);
}

Test(ppl, plain_ppl_and_error_formula) {
    trit_ppl_acc a = {0};
    double v[4] = {1.0, 2.0, 3.0, 4.0};
    for (int i = 0; i < 4; i++) trit_ppl_acc_nll(&a, v[i]);
    trit_ppl_result r;
    trit_ppl_result_init(&r);
    trit_ppl_acc_result(&a, &r);
    cr_assert_float_eq(r.ppl, exp(2.5), 1e-9);
    /* var = E[x^2]-E[x]^2 = 7.5-6.25 = 1.25; err = ppl*sqrt(1.25/3) */
    cr_assert_float_eq(r.ppl_err, exp(2.5) * sqrt(1.25 / 3), 1e-9);
    cr_assert(!r.has_kld);
}

Test(ppl, base_file_roundtrip_and_layout) {
    const char *p = tmp_path("base");
    int n_ctx = 8, n_vocab = 5, n_chunk = 2, nv = trit_ppl_nv(n_vocab);
    cr_assert_eq(nv, 10);
    int32_t toks[16];
    for (int i = 0; i < 16; i++) toks[i] = i % 5;
    trit_err err = {0};
    trit_ppl_base *w = trit_ppl_base_create(p, n_ctx, n_vocab, n_chunk, toks, &err);
    cr_assert_not_null(w, "%s", err.msg);
    uint16_t row[10];
    for (int r = 0; r < n_chunk * trit_ppl_rows_per_chunk(n_ctx); r++) {
        for (int i = 0; i < 10; i++) row[i] = (uint16_t)(r * 10 + i);
        cr_assert_eq(trit_ppl_base_write_row(w, row, &err), 0);
    }
    cr_assert_eq(trit_ppl_base_close(w, &err), 0);
    FILE *f = fopen(p, "rb");
    char magic[8];
    int32_t hdr[3];
    cr_assert_eq(fread(magic, 1, 8, f), 8);
    cr_assert_eq(fread(hdr, 4, 3, f), 3);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    cr_assert(!memcmp(magic, "_logits_", 8));
    cr_assert_eq(hdr[0], 8);
    cr_assert_eq(hdr[1], 5);
    cr_assert_eq(hdr[2], 2);
    cr_assert_eq(size, 20 + 4 * 16 + 2 * 10 * 3 * 2); /* rows per chunk: 8-1-4 = 3 */
    trit_ppl_base *b = trit_ppl_base_open(p, &err);
    cr_assert_not_null(b, "%s", err.msg);
    cr_assert_eq(b->tokens[7], 2);
    for (int r = 0; r < 6; r++) {
        cr_assert_eq(trit_ppl_base_read_row(b, row, &err), 0);
        cr_assert_eq(row[9], r * 10 + 9);
    }
    cr_assert_neq(trit_ppl_base_read_row(b, row, &err), 0, "reading past the end must fail");
    trit_ppl_base_close(b, NULL);
    unlink(p);
}

Test(ppl, base_file_rejects_bad_input) {
    const char *p = tmp_path("bad");
    trit_err err = {0};
    FILE *f = fopen(p, "wb");
    fwrite("_logitz_", 1, 8, f);
    fclose(f);
    cr_assert_null(trit_ppl_base_open(p, &err));
    cr_assert(strstr(err.msg, "magic"), "%s", err.msg);
    /* right magic, header promising more than the file holds */
    f = fopen(p, "wb");
    int32_t hdr[3] = {8, 5, 2};
    fwrite("_logits_", 1, 8, f);
    fwrite(hdr, 4, 3, f);
    fclose(f);
    cr_assert_null(trit_ppl_base_open(p, &err));
    cr_assert(strstr(err.msg, "needs"), "%s", err.msg);
    /* token outside the vocabulary */
    f = fopen(p, "wb");
    fwrite("_logits_", 1, 8, f);
    fwrite(hdr, 4, 3, f);
    int32_t toks[16] = {0, 1, 99};
    fwrite(toks, 4, 16, f);
    uint16_t rows[60] = {0};
    fwrite(rows, 2, 60, f);
    fclose(f);
    cr_assert_null(trit_ppl_base_open(p, &err));
    cr_assert(strstr(err.msg, "vocabulary"), "%s", err.msg);
    cr_assert_null(trit_ppl_base_open("/nonexistent/x.bin", &err));
    cr_assert_eq(err.code, TRIT_EIO);
    unlink(p);
}

Test(ppl, parse_reference_plain) {
    const char *out = "0.01 I perplexity: calculating perplexity over 4 chunks, n_ctx=128, "
                      "batch_size=2048, n_seq=16\n[1]12.5,[2]11.0,\n"
                      "0.03 I Final estimate: PPL = 10.1234 +/- 0.56789\n";
    trit_ppl_result r;
    trit_ppl_result_init(&r);
    cr_assert_eq(trit_ppl_parse_reference_output(out, &r, NULL), 0);
    cr_assert_float_eq(r.ppl, 10.1234, 1e-9);
    cr_assert_float_eq(r.ppl_err, 0.56789, 1e-9);
    cr_assert_eq(r.n_chunk, 4);
    cr_assert_eq(r.n_ctx, 128);
    cr_assert_eq(r.count, 4 * 63);
}

Test(ppl, parse_reference_kld) {
    const char *out = "====== Perplexity statistics ======\n"
                      "Mean PPL(Q)                   :  10.500000 ±   0.200000\n"
                      "Mean PPL(base)                :  10.400000 ±   0.190000\n"
                      "Cor(ln(PPL(Q)), ln(PPL(base))):  99.50%\n"
                      "====== KL divergence statistics ======\n"
                      "Mean    KLD:   0.001234 ±   0.000100\n"
                      "Maximum KLD:   0.050000\n"
                      "99.9%   KLD:   0.040000\n"
                      "Median  KLD:   0.000500\n"
                      "RMS Δp    :  1.250 ± 0.010 %\n"
                      "Same top p: 98.500 ± 0.200 %\n";
    trit_ppl_result r;
    trit_ppl_result_init(&r);
    cr_assert_eq(trit_ppl_parse_reference_output(out, &r, NULL), 0);
    cr_assert(r.has_kld);
    cr_assert_float_eq(r.ppl, 10.5, 1e-9);
    cr_assert_float_eq(r.ppl_base, 10.4, 1e-9);
    cr_assert_float_eq(r.cor, 0.995, 1e-9);
    cr_assert_float_eq(r.kld_mean, 0.001234, 1e-12);
    cr_assert_float_eq(r.kld_err, 0.0001, 1e-12);
    cr_assert_float_eq(r.kld_max, 0.05, 1e-12);
    cr_assert_float_eq(r.kld_pct[0], 0.04, 1e-12);
    cr_assert_float_eq(r.rms_dp, 0.0125, 1e-12);
    cr_assert_float_eq(r.same_top, 0.985, 1e-12);
}

Test(ppl, parse_reference_errors) {
    trit_ppl_result r;
    trit_ppl_result_init(&r);
    trit_err err = {0};
    cr_assert_neq(trit_ppl_parse_reference_output("perplexity: you need at least 256 tokens to "
                                                  "evaluate perplexity with a context of 128\n",
                                                  &r, &err),
                  0);
    cr_assert(strstr(err.msg, "too short"), "%s", err.msg);
    cr_assert_neq(trit_ppl_parse_reference_output("garbage\n", &r, &err), 0);
    cr_assert(strstr(err.msg, "no final estimate"), "%s", err.msg);
}

Test(ppl, read_text_drops_one_newline) {
    const char *p = tmp_path("txt");
    FILE *f = fopen(p, "wb");
    fputs("abc\n\n", f);
    fclose(f);
    trit_buf b = {0};
    cr_assert_eq(trit_ppl_read_text(p, &b, NULL), 0);
    cr_assert_eq(b.len, 4);
    cr_assert_str_eq(b.p, "abc\n");
    trit_buf_free(&b);
    unlink(p);
}

Test(shadow, sse_reassembly) {
    const char *sse = "data: {\"choices\":[{\"text\":\"Hel\",\"finish_reason\":null}]}\n\n"
                      "data: {\"choices\":[{\"text\":\"lo \\u00e9\",\"finish_reason\":null}]}\n\n"
                      "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}]}\n\n"
                      "data: [DONE]\n\n";
    trit_buf t = {0};
    char fin[32];
    trit_shadow_sse_text(sse, strlen(sse), false, &t, fin, sizeof fin);
    cr_assert_str_eq(t.p, "Hello \xc3\xa9");
    cr_assert_str_eq(fin, "length");
    trit_buf_free(&t);
    const char *chat = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n"
                       "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n"
                       "data: {\"choices\":[{\"delta\":{\"content\":\"!\"},\"finish_reason\":"
                       "\"stop\"}]}\n";
    trit_shadow_sse_text(chat, strlen(chat), true, &t, fin, sizeof fin);
    cr_assert_str_eq(t.p, "Hi!");
    cr_assert_str_eq(fin, "stop");
    trit_buf_free(&t);
}

Test(report, html_escape) {
    trit_buf b = {0};
    const char s[] = "<a href=\"x\">&'\x01\xff ok \xc3\xa9";
    trit_html_escape(&b, s, sizeof s - 1);
    cr_assert_str_eq(b.p, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;<span class=ctl>\\x01</span>"
                          "\xEF\xBF\xBD ok \xc3\xa9");
    trit_buf_free(&b);
}

Test(report, needs_a_ledger) {
    trit_report_opts o = {0};
    trit_buf b = {0};
    trit_err err = {0};
    cr_assert_neq(trit_report_html(&o, &b, &err), 0);
    const char *l[1] = {"/nonexistent/ledger.jsonl"};
    o.ledgers = l;
    o.n_ledgers = 1;
    cr_assert_neq(trit_report_html(&o, &b, &err), 0);
    cr_assert(strstr(err.msg, "nonexistent"), "%s", err.msg);
    trit_buf_free(&b);
}

/* ---- trit_backend_score (in-process) against the full logits ---- */

#define DEMO_MODEL "models/kjv-bitnet-tq2_0.gguf"
static const char *score_text = "In the beginning God created the heaven and the earth. And the "
                                "earth was without form, and void.";

/* log p(tok) under a row of logits, in long double (the test's own log-softmax). */
static double ref_logprob(const float *row, int nv, int32_t tok) {
    long double mx = row[0], sum = 0;
    for (int i = 1; i < nv; i++) mx = row[i] > mx ? row[i] : mx;
    for (int i = 0; i < nv; i++) sum += expl((long double)row[i] - mx);
    return (double)((long double)row[tok] - mx - logl(sum));
}

/* Every entry of trit_backend_score(from, top_n) against a log-softmax of the full logits
 * computed here in long double, independently of base.h: the next token's log-probability,
 * the top-N ids (no logit outside them above the N-th), their log-probabilities. */
static void check_score_against_logits(const char *spec) {
    trit_err err = {0};
    trit_backend *b = trit_backend_open(spec, NULL, &err);
    cr_assert_not_null(b, "%s: %s", spec, err.msg);
    int32_t *ids = NULL;
    size_t n = 0;
    cr_assert_eq(trit_backend_tokenize(b, score_text, true, false, &ids, &n, &err), 0, "%s",
                 err.msg);
    cr_assert_gt(n, 10);
    float *lg = NULL;
    int nv = 0;
    cr_assert_eq(trit_backend_eval(b, ids, n, &lg, &nv, &err), 0, "%s", err.msg);
    const size_t from = 3;
    const int top_n = 12;
    trit_pos_topn *s = NULL;
    cr_assert_eq(trit_backend_score(b, ids, n, from, top_n, &s, &err), 0, "%s", err.msg);
    cr_assert_str_eq(trit_backend_score_mode(b), "logits");
    for (size_t p = from; p < n; p++) {
        const float *row = lg + p * (size_t)nv;
        const trit_pos_topn *e = &s[p - from];
        if (p + 1 < n) {
            const double want = ref_logprob(row, nv, ids[p + 1]);
            cr_assert_eq(e->next_id, ids[p + 1], "position %zu", p);
            cr_assert(fabs(e->next_logprob - want) < 1e-9, "position %zu: %.12f vs %.12f", p,
                      e->next_logprob, want);
        } else {
            cr_assert_eq(e->next_id, -1);
            cr_assert(isnan(e->next_logprob));
        }
        cr_assert_eq(e->n_top, top_n);
        for (int j = 0; j < top_n; j++) {
            cr_assert(fabs(e->top_logprob[j] - ref_logprob(row, nv, e->top_id[j])) < 1e-9);
            if (j > 0) cr_assert_geq(row[e->top_id[j - 1]], row[e->top_id[j]]);
        }
        const float nth = row[e->top_id[top_n - 1]];
        int above = 0;
        for (int i = 0; i < nv; i++) above += row[i] > nth;
        cr_assert_leq(above, top_n - 1, "position %zu: a logit outside the top-N is larger", p);
    }
    free(s);
    /* top_n is clamped to TRIT_BACKEND_TOPN_MAX; 0 gives the next token only */
    cr_assert_eq(trit_backend_score(b, ids, n, n - 1, 1000, &s, &err), 0);
    cr_assert_eq(s[0].n_top, TRIT_BACKEND_TOPN_MAX);
    free(s);
    cr_assert_eq(trit_backend_score(b, ids, n, 0, 0, &s, &err), 0);
    cr_assert_eq(s[0].n_top, 0);
    cr_assert(fabs(s[0].next_logprob - ref_logprob(lg, nv, ids[1])) < 1e-9);
    free(s);
    free(lg);
    free(ids);
    trit_backend_close(b);
}

Test(score, trit_matches_full_logits) {
    if (access(DEMO_MODEL, R_OK) != 0) cr_skip_test("%s missing", DEMO_MODEL);
    check_score_against_logits("trit:" DEMO_MODEL "?threads=1");
}

Test(score, llama_matches_full_logits) {
#if defined(__SANITIZE_ADDRESS__)
    /* the sanitizer runtime refuses dlopen(RTLD_DEEPBIND), which the llama backend needs */
    cr_skip_test("libllama cannot be loaded under AddressSanitizer (RTLD_DEEPBIND)");
#endif
    if (access(DEMO_MODEL, R_OK) != 0) cr_skip_test("%s missing", DEMO_MODEL);
    trit_err err = {0};
    trit_backend *b = trit_backend_open("llama:" DEMO_MODEL "?threads=1", NULL, &err);
    if (!b) cr_skip_test("llama backend not available: %s", err.msg);
    trit_backend_close(b);
    check_score_against_logits("llama:" DEMO_MODEL "?threads=1");
}

Test(score, rejects_bad_arguments) {
    if (access(DEMO_MODEL, R_OK) != 0) cr_skip_test("%s missing", DEMO_MODEL);
    trit_err err = {0};
    trit_backend *b = trit_backend_open("trit:" DEMO_MODEL "?threads=1", NULL, &err);
    cr_assert_not_null(b, "%s", err.msg);
    int32_t ids[4] = {1, 2, 3, 4}, bad[3] = {1, -5, 2}, big[3] = {1, 2, 1 << 30};
    trit_pos_topn *s = (trit_pos_topn *)1;
    cr_assert_neq(trit_backend_score(b, ids, 4, 4, 5, &s, &err), 0);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, "past"), "%s", err.msg);
    cr_assert_neq(trit_backend_score(b, ids, 0, 0, 5, &s, &err), 0);
    cr_assert_neq(trit_backend_score(b, ids, 4, 0, -1, &s, &err), 0);
    cr_assert_neq(trit_backend_score(b, bad, 3, 0, 5, &s, &err), 0);
    cr_assert_neq(trit_backend_score(b, big, 3, 0, 5, &s, &err), 0);
    cr_assert(strstr(err.msg, "vocabulary") || strstr(err.msg, "token"), "%s", err.msg);
    trit_backend_close(b);
}

/* a top-N entry from probabilities (ids 0.., most likely first as given) */
static trit_pos_topn topn_of(const int32_t *id, const double *p, int n) {
    trit_pos_topn e = {.next_id = -1, .next_logprob = NAN, .n_top = n};
    for (int i = 0; i < n; i++) e.top_id[i] = id[i], e.top_logprob[i] = log(p[i]);
    return e;
}

Test(score, topn_kld_known_values) {
    int32_t ia[3] = {7, 3, 9}, ib[3] = {3, 7, 5};
    double pa[3] = {0.5, 0.3, 0.1}, pb[3] = {0.4, 0.4, 0.1};
    trit_pos_topn a = topn_of(ia, pa, 3), b = topn_of(ib, pb, 3);
    int shared = -1;
    cr_assert_float_eq(trit_pos_topn_kld(&a, &a, &shared), 0.0, 1e-12);
    cr_assert_eq(shared, 3);
    /* shared {7, 3}: p 0.5/0.3 rest 0.2; q 0.4/0.4 rest 0.2 */
    double want = 0.5 * log(0.5 / 0.4) + 0.3 * log(0.3 / 0.4) + 0.2 * log(0.2 / 0.2);
    cr_assert_float_eq(trit_pos_topn_kld(&a, &b, &shared), want, 1e-12);
    cr_assert_eq(shared, 2);
    /* nothing shared: only the rest buckets (1 vs 1): 0 */
    int32_t ic[2] = {100, 101};
    double pc[2] = {0.6, 0.3};
    trit_pos_topn c = topn_of(ic, pc, 2);
    cr_assert_float_eq(trit_pos_topn_kld(&a, &c, &shared), 0.0, 1e-12);
    cr_assert_eq(shared, 0);
}

/* The coarse-grained KL never exceeds the full KL, and equals it when N is the vocabulary. */
Test(score, topn_kld_is_a_lower_bound) {
    enum { V = 50 };
    float la[V], lb[V];
    for (int i = 0; i < V; i++)
        la[i] = (float)sin(i * 0.7) * 4, lb[i] = la[i] + (float)cos(i) * 0.5f;
    double full = 0, lsa = trit_logsumexp(la, V), lsb = trit_logsumexp(lb, V);
    for (int i = 0; i < V; i++) full += exp(la[i] - lsa) * ((la[i] - lsa) - (lb[i] - lsb));
    for (int n = 1; n <= TRIT_BACKEND_TOPN_MAX; n++) {
        trit_pos_topn a = {.n_top = n}, b = {.n_top = n};
        trit_top_k(la, V, n, a.top_id);
        trit_top_k(lb, V, n, b.top_id);
        for (int j = 0; j < n; j++) {
            a.top_logprob[j] = la[a.top_id[j]] - lsa;
            b.top_logprob[j] = lb[b.top_id[j]] - lsb;
        }
        double k = trit_pos_topn_kld(&a, &b, NULL);
        cr_assert(k >= 0 && k <= full + 1e-12, "N %d: %g vs full %g", n, k, full);
    }
    enum { W = 20 };
    float sa[W], sb[W];
    for (int i = 0; i < W; i++) sa[i] = la[i], sb[i] = lb[i];
    double fw = 0, wa = trit_logsumexp(sa, W), wb = trit_logsumexp(sb, W);
    for (int i = 0; i < W; i++) fw += exp(sa[i] - wa) * ((sa[i] - wa) - (sb[i] - wb));
    trit_pos_topn a = {.n_top = W}, b = {.n_top = W};
    trit_top_k(sa, W, W, a.top_id);
    trit_top_k(sb, W, W, b.top_id);
    for (int j = 0; j < W; j++) {
        a.top_logprob[j] = sa[a.top_id[j]] - wa;
        b.top_logprob[j] = sb[b.top_id[j]] - wb;
    }
    cr_assert_float_eq(trit_pos_topn_kld(&a, &b, NULL), fw, 1e-9);
}

/* The top-N accumulator: identical sides give PPL(Q) = PPL(base), KLD 0, same top 100 %;
 * a side that moves mass shows a positive KLD, its own NLL, and Δp of the next token. */
Test(score, acc_kld_topn) {
    int32_t ia[3] = {4, 9, 2}, ib[3] = {9, 4, 2};
    double pa[3] = {0.6, 0.2, 0.1}, pb[3] = {0.5, 0.3, 0.1};
    trit_pos_topn a = topn_of(ia, pa, 3), b = topn_of(ib, pb, 3);
    a.next_id = b.next_id = 9;
    a.next_logprob = log(0.2), b.next_logprob = log(0.5);
    trit_ppl_acc same = {0}, moved = {0};
    for (int i = 0; i < 20; i++) {
        trit_ppl_acc_kld_topn(&same, &a, &a);
        trit_ppl_acc_kld_topn(&moved, &a, &b);
    }
    trit_ppl_result r;
    trit_ppl_result_init(&r);
    trit_ppl_acc_result(&same, &r);
    cr_assert(r.has_kld);
    cr_assert_float_eq(r.ppl, 1 / 0.2, 1e-9);
    cr_assert_float_eq(r.ppl_base, 1 / 0.2, 1e-9);
    cr_assert_float_eq(r.kld_mean, 0.0, 1e-12);
    cr_assert_float_eq(r.same_top, 1.0, 1e-12);
    trit_ppl_result_init(&r);
    trit_ppl_acc_result(&moved, &r);
    double want =
        0.6 * log(0.6 / 0.3) + 0.2 * log(0.2 / 0.5) + 0.1 * log(0.1 / 0.1) + 0.1 * log(0.1 / 0.1);
    cr_assert_float_eq(r.kld_mean, want, 1e-9);
    cr_assert_float_eq(r.ppl, 1 / 0.5, 1e-9);
    cr_assert_float_eq(r.ppl_base, 1 / 0.2, 1e-9);
    cr_assert_float_eq(r.dp_mean, 0.5 - 0.2, 1e-6);
    cr_assert_float_eq(r.same_top, 0.0, 1e-12);
    trit_ppl_acc_free(&same);
    trit_ppl_acc_free(&moved);
}
