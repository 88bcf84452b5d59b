/* test_ppl.c — perplexity numerics, the base-logits file format, reference-output parsing,
 * shadow SSE reassembly and HTML escaping (no models, no network). */
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
