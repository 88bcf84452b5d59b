/* test_dashboard.c — parity/dashboard.h: following a ledger (append, torn line, rotation,
 * shrink, removal, merge), the trend / misses / miss answers against hand-computed figures,
 * the gate answer against trit_gate_evaluate, the routes, and 50 000 rounds in under a
 * second. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parity/dashboard.h"

static char dir[64];
static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/trit-dash-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}
static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
static char *path_of(const char *name) {
    static char p[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* One round line: bucket, tie ("tie"/"real"/null), latencies, category, prompt, noise. */
typedef struct rnd {
    double ts;
    int round;
    const char *bucket, *tie, *cat, *prompt, *noise;
    double lat1, lat2;
    const char *t1, *t2;
    int div;
} rnd;
static void put_round(FILE *f, const rnd *r) {
    char lat2[32];
    snprintf(lat2, sizeof lat2, isnan(r->lat2) ? "null" : "%.4f", r->lat2); /* JSON has no NaN */
    fprintf(f,
            "{\"type\":\"round\",\"source\":\"burnin\",\"ts\":%.3f,\"round\":%d,\"prompt_id\":"
            "\"%s\",\"category\":\"%s\",\"bucket\":\"%s\",\"tie\":%s,\"prefix_len\":%d,"
            "\"div_byte\":%d,\"lat_v1\":%.4f,\"lat_v2\":%s,%s%s%s\"text_v1\":\"%s\","
            "\"text_v2\":\"%s\",\"split\":{\"v1\":{\"t\":\"a\",\"id\":7,\"top\":[{\"t\":\"a\","
            "\"id\":7,\"lp\":-0.1},{\"t\":\"b\",\"id\":8,\"lp\":-2.5}]}}}\n",
            r->ts, r->round, r->prompt ? r->prompt : "p0", r->cat ? r->cat : "c0", r->bucket,
            r->tie ? r->tie : "null", r->div < 0 ? 5 : r->div, r->div, r->lat1, lat2,
            r->noise ? "\"noise_bucket\":\"" : "", r->noise ? r->noise : "", r->noise ? "\"," : "",
            r->t1 ? r->t1 : "hello", r->t2 ? r->t2 : "hello");
}
static void write_rounds(const char *path, const char *mode, int from, int n) {
    FILE *f = fopen(path, mode);
    cr_assert_not_null(f);
    for (int i = from; i < from + n; i++)
        put_round(f, &(rnd){.ts = 1000 + i,
                            .round = i,
                            .bucket = i % 4 ? "exact" : "no-match",
                            .tie = i % 4 ? NULL : "\"real\"",
                            .lat1 = 0.1,
                            .lat2 = 0.2,
                            .div = -1});
    fclose(f);
}
static long jint(const json_t *o, const char *k) {
    return (long)json_integer_value(json_object_get(o, k));
}
static long rounds_now(trit_dash *d) {
    json_t *s = trit_dash_summary_json(d);
    long n = jint(s, "rounds");
    json_decref(s);
    return n;
}
static long epoch_now(trit_dash *d) {
    json_t *s = trit_dash_summary_json(d);
    long n = jint(s, "epoch");
    json_decref(s);
    return n;
}

TestSuite(dashboard, .init = setup, .fini = teardown);

Test(dashboard, follows_appends_and_waits_for_a_torn_line) {
    const char *l = path_of("a.jsonl");
    const char *ls[] = {l};
    trit_dash *d = trit_dash_new(&(trit_dash_opts){.ledgers = ls, .n_ledgers = 1});
    cr_assert_eq(rounds_now(d), 0, "a ledger not written yet is empty");
    write_rounds(l, "w", 0, 10);
    cr_assert_eq(rounds_now(d), 10);
    write_rounds(l, "a", 10, 5);
    FILE *f = fopen(l, "a");
    fputs("{\"type\":\"round\",\"source\":\"burnin\",\"ts\":2000,\"round\":15,\"bucket\":\"ex", f);
    fclose(f);
    cr_assert_eq(rounds_now(d), 15, "a torn last line is not read yet");
    f = fopen(l, "a");
    fputs("act\",\"lat_v1\":0.1,\"lat_v2\":0.1}\n", f);
    fclose(f);
    cr_assert_eq(rounds_now(d), 16, "the completed line is read once");
    cr_assert_eq(epoch_now(d), 0, "appends never start over");
    trit_dash_free(d);
}

Test(dashboard, rotation_shrink_and_removal_start_over) {
    const char *l = path_of("a.jsonl");
    const char *ls[] = {l};
    trit_dash *d = trit_dash_new(&(trit_dash_opts){.ledgers = ls, .n_ledgers = 1});
    write_rounds(l, "w", 0, 20);
    cr_assert_eq(rounds_now(d), 20);
    /* rotated: renamed away, a new file in its place (another inode) */
    cr_assert_eq(rename(l, path_of("a.jsonl.1")), 0);
    write_rounds(l, "w", 100, 3);
    cr_assert_eq(rounds_now(d), 3, "after a rotation only the new file counts");
    cr_assert_eq(epoch_now(d), 1);
    /* the same inode, shrunk (truncated and rewritten shorter) */
    write_rounds(l, "w", 200, 2);
    cr_assert_eq(rounds_now(d), 2, "a shrunk ledger is read again");
    cr_assert_eq(epoch_now(d), 2);
    unlink(l);
    cr_assert_eq(rounds_now(d), 0, "a removed ledger has no rounds");
    write_rounds(l, "w", 300, 4);
    cr_assert_eq(rounds_now(d), 4, "and is followed again once it reappears");
    trit_dash_free(d);
}

Test(dashboard, merged_ledgers_count_each_record_once) {
    const char *a = path_of("a.jsonl"), *b = path_of("b.jsonl");
    write_rounds(a, "w", 0, 8);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", a, b);
    cr_assert_eq(system(cmd), 0);
    write_rounds(b, "a", 8, 4); /* b: a merged copy of a, plus 4 of its own */
    const char *ls[] = {a, b};
    trit_dash *d = trit_dash_new(&(trit_dash_opts){.ledgers = ls, .n_ledgers = 2});
    json_t *s = trit_dash_summary_json(d);
    cr_assert_eq(jint(s, "rounds"), 12);
    cr_assert_eq(jint(s, "duplicates"), 8);
    json_decref(s);
    trit_dash_free(d);
}

/* two time buckets: [1000, 1010) and [1010, 1020]; figures worked out by hand below */
static void trend_ledger(const char *l) {
    FILE *f = fopen(l, "w");
    /* bucket 0: 4 rounds, 3 compared (one v2-unreachable), 2 exact; lat1 0.1..0.4 */
    put_round(f, &(rnd){1000, 0, "exact", NULL, "code", "p1", "exact", 0.1, 0.5, 0, 0, -1});
    put_round(f, &(rnd){1002, 1, "exact", NULL, "code", "p1", "exact", 0.2, 0.6, 0, 0, -1});
    put_round(f,
              &(rnd){1004, 2, "no-match", "\"tie\"", "chat", "p2", "no-match", 0.3, 0.7, 0, 0, 2});
    put_round(f, &(rnd){1006, 3, "v2-unreachable", NULL, "chat", "p2", NULL, 0.4, NAN, 0, 0, -1});
    /* bucket 1: 2 rounds, both compared, 1 exact */
    put_round(f, &(rnd){1015, 4, "exact", NULL, "code", "p1", "exact", 1.0, 2.0, 0, 0, -1});
    put_round(f, &(rnd){1020, 5, "prefix-only", NULL, "chat", "p3", "exact", 3.0, 4.0, 0, 0, 3});
    fclose(f);
}

Test(dashboard, trend_buckets_latency_noise_and_categories) {
    const char *l = path_of("t.jsonl");
    trend_ledger(l);
    const char *ls[] = {l};
    trit_dash *d = trit_dash_new(&(trit_dash_opts){.ledgers = ls, .n_ledgers = 1});
    json_t *t = trit_dash_trend_json(d, 2);
    json_t *b = json_object_get(t, "buckets");
    cr_assert_eq(json_array_size(b), 2);
    json_t *b0 = json_array_get(b, 0), *b1 = json_array_get(b, 1);
    cr_assert_eq(jint(b0, "rounds"), 4);
    cr_assert_eq(jint(b0, "compared"), 3);
    cr_assert_eq(jint(b0, "exact"), 2);
    cr_assert_float_eq(json_real_value(json_object_get(b0, "rate")), 2.0 / 3, 1e-9);
    /* nearest rank: p50 of {100,200,300,400} ms is the 2nd, p95 the 4th; gen-2 over compared */
    cr_assert_float_eq(json_real_value(json_object_get(b0, "p50_v1")), 200, 1e-3);
    cr_assert_float_eq(json_real_value(json_object_get(b0, "p95_v1")), 400, 1e-3);
    cr_assert_float_eq(json_real_value(json_object_get(b0, "p95_v2")), 700, 1e-3);
    cr_assert_float_eq(json_real_value(json_object_get(b0, "noise_rate")), 2.0 / 3, 1e-9);
    cr_assert_eq(jint(b1, "rounds"), 2);
    cr_assert_float_eq(json_real_value(json_object_get(b1, "rate")), 0.5, 1e-9);
    cr_assert_float_eq(json_real_value(json_object_get(b1, "noise_rate")), 1.0, 1e-9);
    json_t *cats = json_object_get(t, "categories");
    cr_assert_eq(json_array_size(cats), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *c = json_array_get(cats, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *series = json_object_get(c, "series");
        if (!strcmp(name, "code")) {
            cr_assert_eq(jint(c, "exact"), 3);
            cr_assert_float_eq(json_real_value(json_object_get(c, "rate")), 1.0, 1e-9);
        } else {
            cr_assert_str_eq(name, "chat");
            cr_assert_eq(jint(c, "rounds"), 3);
            cr_assert_eq(jint(c, "compared"), 2);
            cr_assert_float_eq(json_real_value(json_array_get(series, 0)), 0.0, 1e-9);
        }
    }
    json_decref(t);
    trit_dash_free(d);
}

Test(dashboard, misses_newest_first_with_top_miss_and_the_miss_view) {
    const char *l = path_of("t.jsonl");
    trend_ledger(l);
    FILE *f = fopen(l, "a");
    put_round(f, &(rnd){1010, 6, "no-match", "\"real\"", "chat", "p2", NULL, 0.1, 0.1,
                        "caf\\u00e9 <b>x</b>", "caf\\u00e9 <i>y</i>", 7});
    fclose(f);
    const char *ls[] = {l};
    trit_dash *d = trit_dash_new(&(trit_dash_opts){.ledgers = ls, .n_ledgers = 1});
    json_t *m = trit_dash_misses_json(d, 0, 10);
    cr_assert_eq(jint(m, "total"), 3, "no-match, prefix-only, no-match: unreachable is no miss");
    json_t *rows = json_object_get(m, "misses");
    cr_assert_eq(jint(json_array_get(rows, 0), "round"), 5, "newest first");
    cr_assert_eq(jint(json_array_get(rows, 1), "round"), 6);
    cr_assert_eq(jint(json_array_get(rows, 2), "round"), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 1), "tie")), "real");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 2), "tie")), "tie");
    json_t *top = json_object_get(m, "top_miss");
    cr_assert_str_eq(json_string_value(json_object_get(top, "prompt_id")), "p2");
    cr_assert_eq(jint(top, "misses"), 2);
    long id = jint(json_array_get(rows, 1), "id");
    json_decref(m);
    m = trit_dash_misses_json(d, 1, 1);
    cr_assert_eq(json_array_size(json_object_get(m, "misses")), 1, "limit");
    cr_assert_eq(jint(json_array_get(json_object_get(m, "misses"), 0), "round"), 6, "offset");
    json_decref(m);
    json_t *v = trit_dash_miss_json(d, 0, id);
    cr_assert_not_null(v);
    cr_assert_str_eq(json_string_value(json_object_get(v, "text_v1")), "caf\xc3\xa9 <b>x</b>");
    cr_assert_str_eq(json_string_value(json_object_get(v, "text_v2")), "caf\xc3\xa9 <i>y</i>");
    cr_assert_eq(jint(v, "div_byte"), 7);
    json_t *top1 = json_object_get(json_object_get(json_object_get(v, "split"), "v1"), "top");
    cr_assert_eq(json_array_size(top1), 2, "the split's top-k comes with the miss");
    json_decref(v);
    cr_assert_null(trit_dash_miss_json(d, 1, id), "an id of another epoch is void");
    cr_assert_null(trit_dash_miss_json(d, 0, 999));
    trit_dash_free(d);
}

Test(dashboard, gate_answer_is_trit_gate_evaluate) {
    const char *l = path_of("t.jsonl");
    trend_ledger(l);
    const char *ls[] = {l};
    trit_dash *d =
        trit_dash_new(&(trit_dash_opts){.ledgers = ls, .n_ledgers = 1, .allow_unchained = true});
    json_t *g = trit_dash_gate_json(d);
    cr_assert_not_null(g);
    trit_gate_run run;
    trit_err err = {0};
    cr_assert_eq(trit_gate_evaluate(NULL, NULL, ls, 1, true, trit_wall_s(), &run, &err), 0);
    json_t *want = trit_gates_json(&run.t);
    cr_assert(json_equal(json_object_get(g, "gates"), json_object_get(want, "gates")));
    cr_assert_str_eq(json_string_value(json_object_get(g, "verdict")),
                     trit_gate_verdict_word(run.rc));
    cr_assert_eq(jint(g, "rounds"), 6);
    json_decref(want);
    json_decref(g);
    trit_gate_run_free(&run);
    trit_dash_free(d);
}

Test(dashboard, routes) {
    bool api;
    cr_assert(trit_dash_route("/parity", "/parity", &api) && !api);
    cr_assert(trit_dash_route("/parity", "/parity/", &api) && !api);
    cr_assert(trit_dash_route("/parity", "/parity/api/gate", &api) && api);
    cr_assert(!trit_dash_route("/parity", "/parityx", &api));
    cr_assert(!trit_dash_route("/parity", "/v1/completions", &api));
    cr_assert(trit_dash_route("", "/api/summary", &api) && api);
    cr_assert(!trit_dash_route("", "", &api));
}

/* Seconds jansson takes to parse every line of path: the baseline of the timing test. */
static double jansson_parse_s(const char *path) {
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char *line = NULL;
    size_t cap = 0;
    long parsed = 0;
    double t0 = trit_now_s();
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        parsed += j != NULL;
        json_decref(j);
    }
    double dt = trit_now_s() - t0;
    free(line);
    fclose(f);
    cr_assert_eq(parsed, 50000);
    return dt;
}

Test(dashboard, fifty_thousand_rounds_fast, .timeout = 120) {
    const char *l = path_of("big.jsonl");
    FILE *f = fopen(l, "w");
    char text[601];
    memset(text, 'x', 600);
    text[600] = 0;
    for (int i = 0; i < 50000; i++)
        put_round(f, &(rnd){1.7e9 + i * 5.2, i, i % 10 ? "exact" : "no-match",
                            i % 10   ? NULL
                            : i % 20 ? "\"tie\""
                                     : "\"real\"",
                            i % 7 ? "code" : "chat", i % 40 ? "p1" : "p2",
                            i % 50 ? "exact" : "no-match", 0.1 + (i % 100) * 0.001,
                            0.12 + (i % 100) * 0.001, text, text, -1});
    fclose(f);
    const char *ls[] = {l};
    trit_dash *d = trit_dash_new(&(trit_dash_opts){.ledgers = ls, .n_ledgers = 1});
    double t0 = trit_now_s();
    long n = rounds_now(d);
    double t_read = trit_now_s() - t0;
    t0 = trit_now_s();
    json_t *t = trit_dash_trend_json(d, 40);
    json_t *m = trit_dash_misses_json(d, 0, 50);
    double t_answer = trit_now_s() - t0;
    cr_assert_eq(n, 50000);
    cr_assert_eq(jint(m, "total"), 5000);
    json_decref(t);
    json_decref(m);
    struct stat st;
    stat(l, &st);
    fprintf(stderr,
            "dashboard: 50000 rounds (%.0f MB) read in %.3f s; trend + misses answered in %.3f s\n",
            (double)st.st_size / 1e6, t_read, t_answer);
    /* As stats::fifty_thousand_rounds_fast: the gate is a ratio to a baseline measured here
     * and now (jansson parsing the same lines), never an absolute time, which a loaded or slow
     * machine would fail at random. The "under a second" claim is the figure printed above
     * (docs/parity.md). Fails when the follower or an answer costs more than parsing the
     * whole file once; a sanitizer build slows this code, not the system's jansson: 5x room. */
    double budget = jansson_parse_s(l);
#if defined(__SANITIZE_ADDRESS__)
    budget *= 5;
#endif
    cr_assert_lt(t_read, budget, "reading took %.3f s (jansson alone %.3f s)", t_read, budget);
    cr_assert_lt(t_answer, budget, "answering took %.3f s (budget %.1f s)", t_answer, budget);
    trit_dash_free(d);
}
