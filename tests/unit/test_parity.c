/* test_parity.c — compare (buckets, UTF-8 boundaries, tie vs real), ledger (append, parse,
 * truncated line), stats (synthetic ledgers, 50k rounds timed), gates (verdicts, too few
 * samples, INI errors), prompt corpus. */
#include "parity/parity.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---- */
static trit_client_token tok(const char *text, int32_t id, int n_top, const char **tops,
                             const double *lps) {
    trit_client_token t = {0};
    t.text = (char *)text;
    t.len = strlen(text);
    t.id = id;
    t.logprob = n_top ? lps[0] : -1;
    t.n_top = n_top;
    for (int i = 0; i < n_top; i++) {
        t.top[i].text = (char *)tops[i];
        t.top[i].len = strlen(tops[i]);
        t.top[i].id = -1;
        t.top[i].logprob = lps[i];
    }
    return t;
}

static char *tmp_path(const char *name) {
    static char buf[8][256];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 256, "/tmp/trit-test-parity-%d-%s", (int)getpid(), name);
    unlink(b);
    return b;
}

/* ---- compare ---- */
Test(compare, bucket_names_roundtrip) {
    for (int i = 0; i < TRIT_BUCKET_N; i++)
        cr_assert_eq(trit_bucket_parse(trit_bucket_name((trit_bucket)i)), i);
    cr_assert_eq(trit_bucket_parse("exactly"), -1);
    cr_assert_eq(trit_bucket_parse(NULL), -1);
}

Test(compare, exact_prefix_nomatch) {
    trit_compare c;
    trit_compare_texts("hello", 5, NULL, 0, "hello", 5, NULL, 0, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_EXACT);
    cr_assert_eq(c.div_byte, -1);
    trit_compare_texts("", 0, NULL, 0, "", 0, NULL, 0, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_EXACT);
    trit_compare_texts("hello", 5, NULL, 0, "hello world", 11, NULL, 0, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_PREFIX);
    cr_assert_eq(c.div_byte, 5);
    cr_assert_eq(c.prefix_len, 5);
    trit_compare_texts("", 0, NULL, 0, "x", 1, NULL, 0, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_PREFIX);
    trit_compare_texts("hello there", 11, NULL, 0, "hello world", 11, NULL, 0, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_NOMATCH);
    cr_assert_eq(c.div_byte, 6);
    cr_assert_eq(c.prefix_len, 6);
    cr_assert_eq(c.tie, TRIT_TIE_UNKNOWN); /* no logprobs: unclassified, never guessed */
}

Test(compare, utf8_boundary) {
    /* "é" = C3 A9, "è" = C3 A8: first differing byte is 3, prefix backs off to 2 ("ab") */
    trit_compare c;
    trit_compare_texts("ab\xc3\xa9", 4, NULL, 0, "ab\xc3\xa8", 4, NULL, 0, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_NOMATCH);
    cr_assert_eq(c.div_byte, 3);
    cr_assert_eq(c.prefix_len, 2);
    /* 4-byte emoji vs another emoji sharing 3 bytes */
    trit_compare_texts("\xf0\x9f\x98\x80", 4, NULL, 0, "\xf0\x9f\x98\x81", 4, NULL, 0, 0.05, &c);
    cr_assert_eq(c.div_byte, 3);
    cr_assert_eq(c.prefix_len, 0);
    /* prefix-only ending inside a character of the longer side */
    trit_compare_texts("a\xc3", 2, NULL, 0, "a\xc3\xa9", 3, NULL, 0, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_PREFIX);
    cr_assert_eq(c.prefix_len, 1);
}

Test(compare, tie_vs_real_and_token_index) {
    const char *ta[] = {" cat", " dog", " cow"};
    const double la[] = {-0.69, -0.70, -3.0};
    const char *tb[] = {" dog", " cat", " cow"};
    const double lb[] = {-0.68, -0.71, -3.0};
    trit_client_token a[2] = {tok("The", 1, 0, NULL, NULL), tok(" cat", -1, 3, ta, la)};
    trit_client_token b[2] = {tok("The", 1, 0, NULL, NULL), tok(" dog", -1, 3, tb, lb)};
    trit_compare c;
    trit_compare_texts("The cat", 7, a, 2, "The dog", 7, b, 2, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_NOMATCH);
    cr_assert_eq(c.div_byte, 4);
    cr_assert_eq(c.div_token_gen1, 1);
    cr_assert_eq(c.div_token_gen2, 1);
    cr_assert_eq(c.tie, TRIT_TIE_TIE);
    cr_assert_float_eq(c.gap_gen1, 0.01, 1e-9);

    /* a clear winner on one side: real */
    const double lb2[] = {-0.1, -2.5, -3.0};
    b[1] = tok(" dog", -1, 3, tb, lb2);
    trit_compare_texts("The cat", 7, a, 2, "The dog", 7, b, 2, 0.05, &c);
    cr_assert_eq(c.tie, TRIT_TIE_REAL);

    /* close logprobs but v1's token absent from v2's top-5: real */
    const char *tb3[] = {" dog", " pig", " cow"};
    b[1] = tok(" dog", -1, 3, tb3, lb);
    trit_compare_texts("The cat", 7, a, 2, "The dog", 7, b, 2, 0.05, &c);
    cr_assert_eq(c.tie, TRIT_TIE_REAL);

    /* only one alternative: cannot judge */
    b[1] = tok(" dog", -1, 1, tb, lb);
    trit_compare_texts("The cat", 7, a, 2, "The dog", 7, b, 2, 0.05, &c);
    cr_assert_eq(c.tie, TRIT_TIE_UNKNOWN);
}

Test(compare, tie_matches_by_id_when_known) {
    trit_client_token a = {0}, b = {0};
    a.text = "x", a.len = 1, a.id = 5, a.n_top = 2;
    a.top[0] = (trit_client_alt){"x", 1, 5, -0.5};
    a.top[1] = (trit_client_alt){"y", 1, 6, -0.52};
    b.text = "y", b.len = 1, b.id = 6, b.n_top = 2;
    b.top[0] = (trit_client_alt){"y", 1, 6, -0.5};
    b.top[1] = (trit_client_alt){"x?", 2, 5, -0.51}; /* same id, different bytes: id wins */
    cr_assert_eq(trit_compare_tie(&a, &b, 0.05, NULL, NULL), TRIT_TIE_TIE);
    b.top[1].id = 7;
    cr_assert_eq(trit_compare_tie(&a, &b, 0.05, NULL, NULL), TRIT_TIE_REAL);
}

Test(compare, unreachable_never_a_mismatch) {
    trit_client_resp ok, bad;
    trit_client_resp_init(&ok);
    trit_client_resp_init(&bad);
    free(ok.content);
    ok.content = xstrdup("hi");
    ok.content_len = 2;
    bad.kind = TRIT_CLIENT_REFUSED;
    snprintf(bad.msg, sizeof bad.msg, "connection refused");
    trit_compare c;
    trit_compare_resps(&ok, &bad, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_GEN2_UNREACH);
    cr_assert(strstr(c.cause, "refused") != NULL, "%s", c.cause);
    trit_compare_resps(&bad, &ok, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_GEN1_UNREACH);
    bad.kind = TRIT_CLIENT_HTTP_STATUS;
    bad.http_status = 503;
    trit_compare_resps(&ok, &bad, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_GEN2_UNREACH);
    cr_assert(strstr(c.cause, "http 503") != NULL, "%s", c.cause);
    trit_client_resp_free(&ok);
    trit_client_resp_free(&bad);
}

/* ---- ledger ---- */
Test(ledger, parse_line_fields) {
    const char *l = "{\"type\":\"round\",\"ts\":1700000000.5,\"round\":7,\"prompt_id\":\"p\\\"1\","
                    "\"category\":\"code\",\"bucket\":\"no-match\",\"tie\":\"real\","
                    "\"prefix_len\":12,\"div_byte\":13,\"div_token_v1\":3,\"lat_v1\":0.25,"
                    "\"lat_v2\":null,\"split\":{\"v1\":[1,{\"a\":\"}\"}]},\"text_v1\":\"a\\\\\"}";
    trit_ledger_rec r;
    cr_assert_eq(trit_ledger_parse_line(l, strlen(l), &r), 0);
    cr_assert_eq(r.type, TRIT_REC_ROUND);
    cr_assert_eq(r.round, 7);
    cr_assert_float_eq(r.ts, 1700000000.5, 1e-6);
    cr_assert_eq(r.prompt_id_len, 4); /* raw, escapes kept */
    cr_assert_eq(r.bucket, TRIT_BUCKET_NOMATCH);
    cr_assert_eq(r.tie, TRIT_TIE_REAL);
    cr_assert_eq(r.prefix_len, 12);
    cr_assert_eq(r.div_token, 3);
    cr_assert_float_eq(r.lat_gen1, 0.25, 1e-9);
    cr_assert(isnan(r.lat_gen2));
    /* truncated and malformed lines are rejected */
    for (size_t n = 1; n < strlen(l); n += 7)
        cr_assert_eq(trit_ledger_parse_line(l, n, &r), -1, "prefix of %zu bytes accepted", n);
    cr_assert_eq(trit_ledger_parse_line("[1,2]", 5, &r), -1);
    cr_assert_eq(trit_ledger_parse_line("{\"a\":1} x", 9, &r), -1);
    const char *p =
        "{\"type\":\"ppl\",\"gen1\":{\"ppl\":10.5,\"ppl_err\":0.2},\"gen2\":{\"ppl\":10.52},"
        "\"kld\":{\"mean\":0.003}}";
    cr_assert_eq(trit_ledger_parse_line(p, strlen(p), &r), 0);
    cr_assert_eq(r.type, TRIT_REC_PPL);
    cr_assert_float_eq(r.ppl_gen2, 10.52, 1e-9);
    cr_assert_float_eq(r.kld_mean, 0.003, 1e-9);
    cr_assert_eq(r.ppl_shape1.chunks, -1, "no counts recorded: -1");
    const char *q =
        "{\"type\":\"ppl\",\"gen1\":{\"ppl\":10.5,\"chunks\":8,\"ctx\":256,\"count\":1016},"
        "\"gen2\":{\"ppl\":10.52,\"chunks\":4,\"ctx\":256,\"count\":508}}";
    cr_assert_eq(trit_ledger_parse_line(q, strlen(q), &r), 0);
    cr_assert_eq(r.ppl_shape1.chunks, 8);
    cr_assert_eq(r.ppl_shape1.count, 1016);
    cr_assert_eq(r.ppl_shape2.chunks, 4);
    cr_assert_eq(r.ppl_shape2.ctx, 256);
    cr_assert_eq(r.ppl_shape2.count, 508);
    cr_assert_eq(trit_ledger_parse_line("{}", 2, &r), 0);
    /* out-of-range numbers are absent, not undefined casts (found by fuzz_ledger) */
    const char *big = "{\"type\":\"round\",\"round\":1e62,\"prefix_len\":-1e300,"
                      "\"div_token_v1\":3e10,\"ntok_v1\":1e99,\"bucket\":\"exact\"}";
    cr_assert_eq(trit_ledger_parse_line(big, strlen(big), &r), 0);
    cr_assert_eq(r.round, -1);
    cr_assert_eq(r.prefix_len, -1);
    cr_assert_eq(r.div_token, -1);
    cr_assert_eq(r.ntok_gen1, -1);
    cr_assert_eq(trit_ledger_parse_line("{\"a\":1,}", 8, &r), -1);
}

static json_t *round_rec(long round, double ts, const char *pid, const char *cat,
                         const char *bucket, const char *tie, long prefix, double l1, double l2) {
    return json_pack("{s:s,s:f,s:I,s:s,s:s,s:s,s:s?,s:I,s:f,s:f,s:s}", "type", "round", "ts", ts,
                     "round", (json_int_t)round, "prompt_id", pid, "category", cat, "bucket",
                     bucket, "tie", tie, "prefix_len", (json_int_t)prefix, "lat_v1", l1, "lat_v2",
                     l2, "text_v1", "some reply text");
}

Test(ledger, append_truncated_line_skipped_and_recovered) {
    char *path = tmp_path("trunc.jsonl");
    trit_err err = {0};
    trit_ledger *l = trit_ledger_open(path, &err);
    cr_assert_not_null(l, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        json_t *r = round_rec(i, 1000 + i, "p", "c", "exact", NULL, 5, 0.1, 0.1);
        cr_assert_eq(trit_ledger_append(l, r, &err), 0);
        json_decref(r);
    }
    trit_ledger_close(l);
    FILE *f = fopen(path, "a");
    fputs("{\"type\":\"round\",\"round\":3,\"bu", f); /* crash mid-line */
    fclose(f);
    trit_ledger_scan_info info;
    cr_assert_eq(trit_ledger_scan(path, NULL, NULL, true, &info, &err), 0);
    cr_assert_eq(info.records, 3);
    cr_assert_eq(info.skipped, 1);
    cr_assert_eq(info.max_round, 2);
    /* reopening starts a fresh line, so the next record parses */
    l = trit_ledger_open(path, &err);
    json_t *r = round_rec(3, 1003, "p", "c", "no-match", "tie", 2, 0.1, 0.1);
    cr_assert_eq(trit_ledger_append(l, r, &err), 0);
    json_decref(r);
    trit_ledger_close(l);
    cr_assert_eq(trit_ledger_scan(path, NULL, NULL, true, &info, &err), 0);
    cr_assert_eq(info.records, 4);
    cr_assert_eq(info.skipped, 1);
    cr_assert_eq(info.max_round, 3);
    unlink(path);
    /* a missing ledger is an error naming it */
    cr_assert_eq(trit_ledger_scan("/nonexistent/ledger", NULL, NULL, true, &info, &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent/ledger") != NULL, "%s", err.msg);
}

/* ---- stats ---- */
static char *synthetic_ledger(const char *name) {
    char *path = tmp_path(name);
    trit_err err = {0};
    trit_ledger *l = trit_ledger_open(path, &err);
    /* 10 rounds: 6 exact, 2 no-match on p1 (tie, real), 1 prefix on p2, 1 v2-unreachable */
    const char *b[] = {"exact",    "exact",       "no-match", "exact",          "exact",
                       "no-match", "prefix-only", "exact",    "v2-unreachable", "exact"};
    const char *pid[] = {"p0", "p1", "p1", "p2", "p3", "p1", "p2", "p0", "p3", "p1"};
    const char *tie[] = {NULL, NULL, "tie", NULL, NULL, "real", NULL, NULL, NULL, NULL};
    long pre[] = {9, 9, 4, 9, 9, 8, 6, 9, -1, 9};
    for (int i = 0; i < 10; i++) {
        json_t *r = round_rec(i, 3600.0 * 1000 + i, pid[i], i < 5 ? "code" : "chat", b[i], tie[i],
                              pre[i], 0.1 * (i + 1), 0.1 * (i + 1) + 0.05);
        trit_ledger_append(l, r, &err);
        json_decref(r);
    }
    json_t *p = json_pack("{s:s,s:f,s:{s:f,s:f},s:{s:f,s:f},s:{s:f}}", "type", "ppl", "ts",
                          3600.0 * 1000, "gen1", "ppl", 10.0, "ppl_err", 0.1, "gen2", "ppl", 10.03,
                          "ppl_err", 0.1, "kld", "mean", 0.002);
    trit_ledger_append(l, p, &err);
    json_decref(p);
    trit_ledger_close(l);
    return path;
}

Test(stats, synthetic_counts) {
    char *path = synthetic_ledger("syn.jsonl");
    const char *paths[] = {path};
    trit_stats st;
    trit_err err = {0};
    trit_stats_filter f = {.hour_min_rounds = 5};
    cr_assert_eq(trit_stats_compute(paths, 1, &f, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.rounds, 10);
    cr_assert_eq(st.ppl_records, 1);
    cr_assert_eq(st.bucket[TRIT_BUCKET_EXACT], 6);
    cr_assert_eq(st.bucket[TRIT_BUCKET_NOMATCH], 2);
    cr_assert_eq(st.bucket[TRIT_BUCKET_PREFIX], 1);
    cr_assert_eq(st.bucket[TRIT_BUCKET_GEN2_UNREACH], 1);
    cr_assert_eq(st.compared, 9);
    cr_assert_float_eq(st.exact_rate, 6.0 / 9, 1e-9);
    cr_assert_float_eq(st.v2_unreach_rate, 0.1, 1e-9);
    cr_assert_eq(st.ties, 1);
    cr_assert_eq(st.reals, 1);
    cr_assert_eq(st.tie_unknown, 0);
    cr_assert_float_eq(st.median_prefix, 6, 1e-9); /* {4, 6, 8} */
    cr_assert_str_eq(st.top_miss, "p1");
    cr_assert_eq(st.top_miss_count, 2);
    cr_assert_float_eq(st.top_miss_share, 2.0 / 3, 1e-9);
    cr_assert_float_eq(st.p50_v1, 0.5, 1e-6); /* nearest rank over 10 v1 latencies */
    cr_assert_float_eq(st.p95_v1, 1.0, 1e-6);
    cr_assert_eq(st.n_cat, 2);
    cr_assert(st.has_ppl);
    cr_assert_float_eq(st.ppl_gen2, 10.03, 1e-9);
    cr_assert_float_eq(st.worst_hour_nomatch, 2.0 / 9, 1e-9);

    /* filters: last 3 rounds; since */
    f.last_n = 3;
    cr_assert_eq(trit_stats_compute(paths, 1, &f, &st, &err), 0);
    cr_assert_eq(st.rounds, 3);
    cr_assert_eq(st.bucket[TRIT_BUCKET_GEN2_UNREACH], 1);
    f.last_n = 0;
    f.since_ts = 3600.0 * 1000 + 5;
    cr_assert_eq(trit_stats_compute(paths, 1, &f, &st, &err), 0);
    cr_assert_eq(st.rounds, 5);

    /* merged: the same ledger twice counts once (issue 14: it doubled the counts) */
    const char *two[] = {path, path};
    cr_assert_eq(trit_stats_compute(two, 2, NULL, &st, &err), 0);
    cr_assert_eq(st.rounds, 10);
    cr_assert_eq(st.duplicates, 11); /* 10 rounds and the ppl record */
    json_t *j = trit_stats_json(&st);
    cr_assert_eq(json_integer_value(json_object_get(j, "rounds")), 10);
    cr_assert_eq(json_integer_value(json_object_get(j, "duplicates")), 11);
    json_decref(j);
    /* ...while another ledger's rounds with the same numbers are other records */
    char *other = tmp_path("other.jsonl");
    trit_ledger *l = trit_ledger_open(other, &err);
    cr_assert_not_null(l, "%s", err.msg);
    for (int i = 0; i < 4; i++) {
        json_t *r = round_rec(i, 7200.0 * 1000 + i, "p9", "c", "exact", NULL, 5, 0.1, 0.1);
        cr_assert_eq(trit_ledger_append(l, r, &err), 0);
        json_decref(r);
    }
    trit_ledger_close(l);
    const char *both[] = {path, other, path};
    cr_assert_eq(trit_stats_compute(both, 3, NULL, &st, &err), 0);
    cr_assert_eq(st.rounds, 14);
    cr_assert_eq(st.duplicates, 11);
    unlink(other);
    unlink(path);
}

Test(stats, noise_lane_excess) {
    char *path = tmp_path("noise.jsonl");
    trit_err err = {0};
    trit_ledger *l = trit_ledger_open(path, &err);
    for (int i = 0; i < 10; i++) {
        json_t *r =
            round_rec(i, 1e6 + i, "p", "c", i < 8 ? "exact" : "no-match", "real", 1, 0.1, 0.1);
        json_object_set_new(r, "noise_bucket", json_string(i < 9 ? "exact" : "no-match"));
        trit_ledger_append(l, r, &err);
        json_decref(r);
    }
    trit_ledger_close(l);
    const char *paths[] = {path};
    trit_stats st;
    cr_assert_eq(trit_stats_compute(paths, 1, NULL, &st, &err), 0);
    cr_assert_eq(st.noise_rounds, 10);
    cr_assert_float_eq(st.noise_exact_rate, 0.9, 1e-9);
    cr_assert_float_eq(st.excess_miss, 0.1, 1e-9); /* 20% miss vs 10% noise */
    unlink(path);
}

Test(stats, fifty_thousand_rounds_fast, .timeout = 30) {
    char *path = tmp_path("big.jsonl");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    char text[601];
    memset(text, 'x', 600);
    text[600] = 0;
    for (int i = 0; i < 50000; i++)
        fprintf(f,
                "{\"type\":\"round\",\"source\":\"burnin\",\"ts\":%.3f,\"round\":%d,"
                "\"prompt_id\":\"p%02d\",\"category\":\"c%d\",\"bucket\":\"%s\",\"tie\":%s,"
                "\"prefix_len\":%d,\"div_byte\":-1,\"lat_v1\":%.4f,\"lat_v2\":%.4f,\"ntok_v1\":64,"
                "\"ntok_v2\":64,\"hash_v1\":\"%064d\",\"hash_v2\":\"%064d\",\"v1\":{\"url\":"
                "\"http://a\",\"model\":\"m\"},\"v2\":{\"url\":\"http://b\",\"model\":\"m\"},"
                "\"text_v1\":\"%s\",\"text_v2\":\"%s\"}\n",
                1.7e9 + i * 2.5, i, i % 40, i % 7, i % 10 ? "exact" : "no-match",
                i % 20 ? "\"tie\"" : "\"real\"", 600, 0.1 + (i % 100) * 0.001,
                0.12 + (i % 100) * 0.001, 0, 0, text, text);
    fclose(f);
    const char *paths[] = {path};
    trit_stats st;
    trit_err err = {0};
    double t0 = trit_now_s();
    cr_assert_eq(trit_stats_compute(paths, 1, NULL, &st, &err), 0);
    double dt = trit_now_s() - t0;
    cr_assert_eq(st.rounds, 50000);
    cr_assert_eq(st.bucket[TRIT_BUCKET_NOMATCH], 5000);
    cr_assert_float_eq(st.exact_rate, 0.9, 1e-9);
    cr_log_info("stats over 50000 rounds (%.0f MB): %.3f s", 50000 * 1.6e-3, dt);
    cr_assert_lt(dt, 1.0, "stats took %.3f s", dt);
    unlink(path);
}

/* ---- gates ---- */
static trit_stats good_stats(void) {
    trit_stats s = {0};
    s.rounds = s.compared = 1000;
    s.bucket[TRIT_BUCKET_EXACT] = 950;
    s.bucket[TRIT_BUCKET_NOMATCH] = 50;
    s.ties = 40, s.reals = 10;
    s.exact_rate = 0.95;
    s.v2_unreach_rate = 0;
    s.p95_v1 = 0.5, s.p95_v2 = 0.55, s.p95_gap = 0.05;
    s.worst_hour_nomatch = 0.05;
    s.noise_exact_rate = NAN;
    s.median_prefix = NAN;
    return s;
}

static trit_gate_verdict verdict_of(const trit_gate_table *t, const char *gate) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->row[i].gate, gate)) return t->row[i].verdict;
    cr_assert_fail("no gate %s", gate);
    return TRIT_GATE_FAIL;
}

Test(gates, all_pass_is_go) {
    trit_gate_cfg c;
    trit_gate_cfg_default(&c);
    c.rounds_min = 1000;
    trit_stats s = good_stats();
    trit_ppl_figs p = {true, 10.0, 0.1, 10.02, 0.1, 0.001, {8, 256, 1016}, {8, 256, 1016}};
    trit_gate_table t;
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    for (int i = 0; i < t.n; i++)
        cr_assert_eq(t.row[i].verdict, TRIT_GATE_PASS, "%s: %s", t.row[i].gate, t.row[i].why);
    cr_assert(t.go);
    json_t *j = trit_gates_json(&t);
    cr_assert(json_is_true(json_object_get(j, "go")));
    json_decref(j);
}

Test(gates, too_few_samples_and_missing_reference_fail) {
    trit_gate_cfg c;
    trit_gate_cfg_default(&c); /* 50 000 rounds, min_samples 100 */
    trit_stats s = good_stats();
    s.rounds = s.compared = 50;
    s.bucket[TRIT_BUCKET_EXACT] = 50;
    s.bucket[TRIT_BUCKET_NOMATCH] = 0;
    s.exact_rate = 1.0;
    s.worst_hour_nomatch = NAN; /* no hour with enough rounds */
    trit_stats empty = {0};
    trit_gate_table t;
    trit_gates_eval(&c, &s, &s, &empty, NULL, &t);
    cr_assert_not(t.go);
    cr_assert_eq(verdict_of(&t, "ppl gen-2 vs gen-1"), TRIT_GATE_FAIL);
    cr_assert_eq(verdict_of(&t, "exact-match rate"), TRIT_GATE_FAIL); /* 100% but 50 samples */
    cr_assert_eq(verdict_of(&t, "rounds"), TRIT_GATE_WAITING);
    cr_assert_eq(verdict_of(&t, "p95 latency gap"), TRIT_GATE_FAIL);
    cr_assert_eq(verdict_of(&t, "trend"), TRIT_GATE_FAIL);
    cr_assert_eq(verdict_of(&t, "spike"), TRIT_GATE_FAIL);
    for (int i = 0; i < t.n; i++)
        cr_assert_neq(t.row[i].verdict, TRIT_GATE_PASS, "%s", t.row[i].gate);
}

Test(gates, each_threshold_fails) {
    trit_gate_cfg c;
    trit_gate_cfg_default(&c);
    c.rounds_min = 1000;
    trit_ppl_figs p = {true, 10.0, 0.1, 10.2, 0.1, 0.01, {8, 256, 1016}, {8, 256, 1016}};
    trit_stats s = good_stats(), prev = good_stats();
    s.exact_rate = 0.85;
    s.tie_unknown = 3;
    s.v2_unreach_rate = 0.002;
    s.p95_gap = 0.15;
    s.worst_hour_nomatch = 0.25;
    trit_gate_table t;
    trit_gates_eval(&c, &s, &s, &prev, &p, &t);
    const char *g[] = {"ppl gen-2 vs gen-1",
                       "exact-match rate",
                       "no-match classified",
                       "v2 unreachable",
                       "p95 latency gap",
                       "trend",
                       "spike"};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(g); i++)
        cr_assert_eq(verdict_of(&t, g[i]), TRIT_GATE_FAIL, "%s", g[i]);
    cr_assert_eq(verdict_of(&t, "rounds"), TRIT_GATE_PASS);
    cr_assert_not(t.go);
}

Test(gates, ppl_relative_form) {
    trit_gate_cfg c;
    trit_gate_cfg_default(&c);
    c.rounds_min = 1000;
    trit_stats s = good_stats();
    trit_gate_table t;
    /* a synthetic model: absolute PPL 1e19, gen-2 0.1% higher -> absolute gate fails... */
    trit_ppl_figs p = {true, 1e19, 1e17, 1.001e19, 1e17, 0.0001, {8, 256, 1016}, {8, 256, 1016}};
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert_eq(verdict_of(&t, "ppl gen-2 vs gen-1"), TRIT_GATE_FAIL);
    /* ...the relative form judges the ratio */
    c.ppl_max_rel_delta = 0.005;
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert_eq(verdict_of(&t, "ppl gen-2 vs gen-1"), TRIT_GATE_PASS);
    p.gen2 = 1.01e19; /* 1% off */
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert_eq(verdict_of(&t, "ppl gen-2 vs gen-1"), TRIT_GATE_FAIL);
    p.gen1 = 0; /* no usable reference figure is FAIL, never PASS */
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert_eq(verdict_of(&t, "ppl gen-2 vs gen-1"), TRIT_GATE_FAIL);
    /* and the key parses from INI */
    trit_gate_cfg d;
    trit_gate_cfg_default(&d);
    trit_err err = {0};
    cr_assert_eq(trit_gate_cfg_parse("[gates]\nppl_max_rel_delta = 0.005\n", "t.ini", &d, &err), 0,
                 "%s", err.msg);
    cr_assert_float_eq(d.ppl_max_rel_delta, 0.005, 1e-12);
}

/* issue 14: the PPL gate ignored runs of different shape; a delta between 8 and 4 chunks, or
 * over different token counts, or with the counts not recorded, is not a pass. The KLD is an
 * optional gate of its own. */
Test(gates, ppl_shape_mismatch_fails_and_kld_gate) {
    trit_gate_cfg c;
    trit_gate_cfg_default(&c);
    c.rounds_min = 1000;
    trit_stats s = good_stats();
    trit_gate_table t;
    trit_ppl_figs p = {true, 10.0, 0.1, 10.02, 0.1, 0.001, {8, 256, 1016}, {8, 256, 1016}};
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert_eq(verdict_of(&t, "ppl gen-2 vs gen-1"), TRIT_GATE_PASS);
    p.shape2.chunks = 4;
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert_eq(verdict_of(&t, "ppl gen-2 vs gen-1"), TRIT_GATE_FAIL);
    cr_assert(strstr(t.row[0].why, "runs differ") != NULL, "%s", t.row[0].why);
    p.shape2.chunks = 8, p.shape2.count = 1000;
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert_eq(verdict_of(&t, "ppl gen-2 vs gen-1"), TRIT_GATE_FAIL);
    p.shape2 = p.shape1 = (trit_ppl_shape){-1, -1, -1};
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert_eq(verdict_of(&t, "ppl gen-2 vs gen-1"), TRIT_GATE_FAIL);
    cr_assert(strstr(t.row[0].why, "not recorded") != NULL, "%s", t.row[0].why);
    /* KLD: reported in the ppl row; a gate only when kld_max is set */
    p.shape1 = p.shape2 = (trit_ppl_shape){8, 256, 1016};
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert(strstr(t.row[0].current, "KLD 0.00100") != NULL, "%s", t.row[0].current);
    for (int i = 0; i < t.n; i++) cr_assert_str_neq(t.row[i].gate, "KLD gen-2 vs gen-1");
    trit_err err = {0};
    cr_assert_eq(trit_gate_cfg_parse("[gates]\nkld_max = 0.0005\n", "t.ini", &c, &err), 0, "%s",
                 err.msg);
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert_eq(verdict_of(&t, "KLD gen-2 vs gen-1"), TRIT_GATE_FAIL);
    p.kld_mean = 0.0001;
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert_eq(verdict_of(&t, "KLD gen-2 vs gen-1"), TRIT_GATE_PASS);
    p.kld_mean = NAN;
    trit_gates_eval(&c, &s, &s, &s, &p, &t);
    cr_assert_eq(verdict_of(&t, "KLD gen-2 vs gen-1"), TRIT_GATE_FAIL);
}

Test(gates, ppl_from_file_and_ledger) {
    char *path = tmp_path("ppl.json");
    FILE *f = fopen(path, "w");
    fputs("{\"gen1\":{\"ppl\":12.5,\"ppl_err\":0.3},\"gen2\":{\"ppl\":12.54,\"ppl_err\":0.3},"
          "\"kld\":{\"mean\":0.0012}}",
          f);
    fclose(f);
    trit_ppl_figs p;
    trit_err err = {0};
    cr_assert_eq(trit_ppl_figs_load(path, &p, &err), 0, "%s", err.msg);
    cr_assert(p.present);
    cr_assert_float_eq(p.gen2, 12.54, 1e-9);
    f = fopen(path, "w");
    fputs("{\"gen1\":{\"ppl\":12.5}}", f);
    fclose(f);
    cr_assert_eq(trit_ppl_figs_load(path, &p, &err), -1);
    cr_assert(strstr(err.msg, "gen2") != NULL, "%s", err.msg);
    cr_assert_eq(trit_ppl_figs_load("/nonexistent.json", &p, &err), -1);
    unlink(path);
    /* ppl taken from the ledger when no file is given */
    trit_gate_cfg c;
    trit_gate_cfg_default(&c);
    trit_stats s = good_stats();
    s.has_ppl = true, s.ppl_gen1 = 5, s.ppl_gen2 = 5.01, s.kld_mean = 0.001;
    s.ppl_shape1 = s.ppl_shape2 = (trit_ppl_shape){4, 128, 252};
    trit_gate_table t;
    trit_gates_eval(&c, &s, &s, &s, NULL, &t);
    cr_assert_eq(verdict_of(&t, "ppl gen-2 vs gen-1"), TRIT_GATE_PASS);
}

Test(gates, ini_parse) {
    trit_gate_cfg c;
    trit_gate_cfg_default(&c);
    trit_err err = {0};
    cr_assert_eq(trit_gate_cfg_parse("# comment\n[gates]\nrounds_min = 20 ; demo\n"
                                     "exact_min=0.95\nrequire_classified = no\n"
                                     "[report]\nwhatever = 1\n",
                                     "t.ini", &c, &err),
                 0, "%s", err.msg);
    cr_assert_eq(c.rounds_min, 20);
    cr_assert_float_eq(c.exact_min, 0.95, 1e-12);
    cr_assert_not(c.require_classified);
    cr_assert_float_eq(c.p95_gap_max_ms, 100, 1e-12); /* untouched default */

    cr_assert_eq(trit_gate_cfg_parse("[gates]\nround_min = 5\n", "t.ini", &c, &err), -1);
    cr_assert(strstr(err.msg, "t.ini:2") && strstr(err.msg, "round_min"), "%s", err.msg);
    cr_assert_eq(trit_gate_cfg_parse("exact_min = 9O%\n", "t.ini", &c, &err), -1);
    cr_assert(strstr(err.msg, "t.ini:1") != NULL, "%s", err.msg);
    cr_assert_eq(trit_gate_cfg_parse("rounds_min = -3\n", "t.ini", &c, &err), -1);
    cr_assert_eq(trit_gate_cfg_parse("[gates\n", "t.ini", &c, &err), -1);
    cr_assert_eq(trit_gate_cfg_parse("just words\n", "t.ini", &c, &err), -1);
    cr_assert_eq(trit_gate_cfg_parse("require_classified = maybe\n", "t.ini", &c, &err), -1);
    cr_assert_eq(trit_gate_cfg_load("/nonexistent.ini", &c, &err), -1);
}

Test(gates, shipped_cutover_ini_parses) {
    trit_gate_cfg c;
    trit_gate_cfg_default(&c);
    trit_err err = {0};
    cr_assert_eq(trit_gate_cfg_load("cutover.ini", &c, &err), 0, "%s", err.msg);
    cr_assert_gt(c.rounds_min, 0);
}

/* ---- prompts ---- */
Test(prompts, corpus_has_30_prompts_in_all_categories) {
    trit_prompt *p;
    int n;
    trit_err err = {0};
    cr_assert_eq(trit_prompts_load("prompts/burnin.jsonl", &p, &n, &err), 0, "%s", err.msg);
    cr_assert_geq(n, 30);
    const char *cats[] = {"code",         "reasoning",    "creative",     "factual",
                          "long-context", "multilingual", "chat-template"};
    for (size_t c = 0; c < TRIT_ARRAY_LEN(cats); c++) {
        int k = 0;
        for (int i = 0; i < n; i++) k += !strcmp(p[i].category, cats[c]);
        cr_assert_gt(k, 0, "no prompt in category %s", cats[c]);
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) cr_assert_str_neq(p[i].id, p[j].id, "duplicate prompt id");
    trit_prompts_free(p, n);

    char *path = tmp_path("bad-prompts.jsonl");
    FILE *f = fopen(path, "w");
    fputs("{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\"}\n", f);
    fclose(f);
    cr_assert_eq(trit_prompts_load(path, &p, &n, &err), -1);
    cr_assert(strstr(err.msg, ":2") != NULL, "%s", err.msg);
    unlink(path);
}

Test(ledger, round_record_roundtrip_and_invalid_utf8) {
    trit_client_resp a, b;
    trit_client_resp_init(&a);
    trit_client_resp_init(&b);
    free(a.content);
    free(b.content);
    a.content = xstrdup("ab\xc3"); /* cut inside a character */
    a.content_len = 3;
    b.content = xstrdup("ab\xc3\xa9"); /* "abé" */
    b.content_len = 4;
    a.latency_s = 0.5, b.latency_s = 0.25;
    trit_compare c;
    trit_compare_resps(&a, &b, 0.05, &c);
    cr_assert_eq(c.bucket, TRIT_BUCKET_PREFIX);
    trit_round_meta m = {.source = "shadow",
                         .ts = 1234.5,
                         .round = 9,
                         .prompt_id = "q",
                         .category = "cat",
                         .gen1_url = "http://a",
                         .gen2_url = "http://b"};
    json_t *rec = trit_ledger_round_json(&m, &a, &b, &c);
    cr_assert_not_null(rec);
    cr_assert_str_eq(json_string_value(json_object_get(rec, "text_v1")), "ab\xef\xbf\xbd");
    char *line = json_dumps(rec, JSON_COMPACT);
    trit_ledger_rec r;
    cr_assert_eq(trit_ledger_parse_line(line, strlen(line), &r), 0);
    cr_assert_eq(r.round, 9);
    cr_assert_eq(r.bucket, TRIT_BUCKET_PREFIX);
    cr_assert_eq(r.prefix_len, 2);
    cr_assert_float_eq(r.lat_gen1, 0.5, 1e-9);
    cr_assert_float_eq(r.ts, 1234.5, 1e-9);
    free(line);
    json_decref(rec);
    trit_client_resp_free(&a);
    trit_client_resp_free(&b);
}
