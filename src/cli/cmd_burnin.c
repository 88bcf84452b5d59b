/* cmd_burnin.c — `trit burnin run|stats|drift|recent [N]|since TIMESTAMP`. */
#define _XOPEN_SOURCE 700 /* strptime */
#include "base/base.h"
#include "cli/cli.h"
#include "parity/parity.h"

#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: trit burnin run --v1 URL --v2 URL [options]\n"
        "       trit burnin stats|drift [--ledger FILE ...] [--json]\n"
        "       trit burnin recent [N] [--ledger FILE ...] [--json]\n"
        "       trit burnin since TIMESTAMP [--ledger FILE ...] [--json]\n"
        "\n"
        "run: sends the next prompt to gen-1 (--v1) and gen-2 (--v2) concurrently at\n"
        "temperature 0 with top_logprobs, classifies the pair (exact, prefix-only,\n"
        "no-match [tie|real], v1-unreachable, v2-unreachable) and appends one fsync'd line\n"
        "to the ledger. A killed run resumes from the ledger: nothing lost, nothing twice.\n"
        "  --prompts FILE      prompt corpus, JSONL {id,category,prompt} (prompts/burnin.jsonl)\n"
        "  --rounds N          run until the ledger holds N rounds (a resumed run finishes)\n"
        "  --forever           run until SIGINT/SIGTERM (stops cleanly after the round)\n"
        "  --pace D            time between round starts: 2.5s, 500ms, 0 (default 2.5s)\n"
        "  --max-tokens N      tokens per reply (64)\n"
        "  --ledger FILE       ledger (burnin.ledger.jsonl); state file is FILE.state\n"
        "  --state FILE        state file path\n"
        "  --noise-lane URL    a second gen-1 server: measures the reference's own noise\n"
        "  --api-key K         bearer token for all servers\n"
        "  --endpoint E        completions (default) or chat\n"
        "  --timeout S         per-request timeout in seconds (60)\n"
        "  --top-logprobs N    alternatives per token (5)\n"
        "  --tie-eps X         tie threshold in nats between top-1 and top-2 (0.05)\n"
        "  --spike X           halt when no-match share in the last hour exceeds X (0.20)\n"
        "  --spike-min N       ...once the hour holds at least N compared rounds (20)\n"
        "  --quiet             no per-round line\n"
        "stats: exact-match rate, buckets, tie vs real, median prefix, latency p50/p95 and\n"
        "gap, top_miss, categories, noise lane, ppl. drift: misses per prompt and over time.\n"
        "recent N: the last N rounds (default 100). since T: ISO-8601 time, epoch seconds or\n"
        "a relative age like 2h / 30m / 1d.\n"
        "exit: 0 ok (also after a clean Ctrl-C), 1 error, 2 usage, 3 no-match spike halted\n");
}

static int parse_duration(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0 || !isfinite(v)) return -1;
    if (!*end || !strcmp(end, "s"))
        *out = v;
    else if (!strcmp(end, "ms"))
        *out = v / 1000;
    else if (!strcmp(end, "m"))
        *out = v * 60;
    else if (!strcmp(end, "h"))
        *out = v * 3600;
    else if (!strcmp(end, "d"))
        *out = v * 86400;
    else
        return -1;
    return 0;
}

/* A non-negative decimal integer; overflow is an error, not LONG_MAX. */
static int parse_long(const char *s, long *out) {
    return trit_parse_long(s, 0, LONG_MAX, out);
}

/* ISO-8601 (UTC, 'Z' optional, fraction ignored), epoch seconds, or age (2h, 30m, 1d) */
static int parse_time(const char *s, double *out) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!e) {
        memset(&tm, 0, sizeof tm);
        e = strptime(s, "%Y-%m-%d", &tm);
    }
    if (e) {
        double frac = 0;
        if (*e == '.') {
            char *fe;
            frac = strtod(e, &fe);
            e = fe;
        }
        if (*e == 'Z') e++;
        if (*e) return -1;
        *out = (double)timegm(&tm) + frac;
        return 0;
    }
    char *end;
    double v = strtod(s, &end);
    if (end != s && !*end) {
        *out = v;
        return 0;
    }
    double age;
    if (parse_duration(s, &age) == 0 && end != s) {
        *out = trit_wall_s() - age;
        return 0;
    }
    return -1;
}

static int burnin_run_main(int argc, char **argv) {
    trit_burnin_opts o;
    trit_burnin_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() CLI_NEED("trit burnin run")
#define BAD()  CLI_BAD("trit burnin run")
        long n;
        double d;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--v1")) {
            NEED();
            o.v1 = v;
        } else if (!strcmp(a, "--v2")) {
            NEED();
            o.v2 = v;
        } else if (!strcmp(a, "--noise-lane")) {
            NEED();
            o.noise = v;
        } else if (!strcmp(a, "--prompts")) {
            NEED();
            o.prompts_path = v;
        } else if (!strcmp(a, "--ledger")) {
            NEED();
            o.ledger_path = v;
        } else if (!strcmp(a, "--state")) {
            NEED();
            o.state_path = v;
        } else if (!strcmp(a, "--api-key")) {
            NEED();
            o.api_key = v;
        } else if (!strcmp(a, "--rounds")) {
            NEED();
            if (parse_long(v, &n) || n == 0) BAD();
            o.rounds = n;
        } else if (!strcmp(a, "--forever")) {
            o.forever = true;
        } else if (!strcmp(a, "--quiet")) {
            o.quiet = true;
        } else if (!strcmp(a, "--pace")) {
            NEED();
            if (parse_duration(v, &d)) BAD();
            o.pace_s = d;
        } else if (!strcmp(a, "--timeout")) {
            NEED();
            if (parse_duration(v, &d) || d <= 0) BAD();
            o.timeout_s = d;
        } else if (!strcmp(a, "--max-tokens")) {
            NEED();
            if (parse_long(v, &n) || n == 0 || n > 100000) BAD();
            o.max_tokens = (int)n;
        } else if (!strcmp(a, "--top-logprobs")) {
            NEED();
            if (parse_long(v, &n) || n > TRIT_CLIENT_MAX_TOP) BAD();
            o.top_logprobs = (int)n;
        } else if (!strcmp(a, "--tie-eps")) {
            NEED();
            if (parse_duration(v, &d)) BAD();
            o.tie_eps = d;
        } else if (!strcmp(a, "--spike")) {
            NEED();
            if (parse_duration(v, &d) || d > 1) BAD();
            o.spike_nomatch = d;
        } else if (!strcmp(a, "--spike-min")) {
            NEED();
            if (parse_long(v, &n)) BAD();
            o.spike_min_rounds = n;
        } else if (!strcmp(a, "--endpoint")) {
            NEED();
            if (!strcmp(v, "chat"))
                o.chat = true;
            else if (!strcmp(v, "completions"))
                o.chat = false;
            else
                BAD();
        } else {
            fprintf(stderr, "trit burnin run: unknown option '%s' (see --help)\n", a);
            return 2;
        }
#undef NEED
#undef BAD
    }
    if (!o.v1 || !o.v2) {
        fprintf(stderr, "trit burnin run: --v1 URL and --v2 URL are required\n");
        return 2;
    }
    if (!o.forever && o.rounds <= 0) {
        fprintf(stderr, "trit burnin run: give --rounds N or --forever\n");
        return 2;
    }
    if (o.forever && o.rounds > 0) {
        fprintf(stderr, "trit burnin run: --rounds and --forever exclude each other\n");
        return 2;
    }
    trit_err err = {0};
    int rc = trit_burnin_run(&o, &err);
    if (rc != TRIT_BURNIN_OK || err.code)
        fprintf(stderr, "trit burnin run: %s\n", err.msg[0] ? err.msg : "failed");
    return rc;
}

/* ---- drift: misses per prompt and over time ---- */
typedef struct drift_prompt {
    char id[64];
    long rounds, misses, ties, reals;
} drift_prompt;
typedef struct drift_ctx {
    drift_prompt *p;
    int n;
    double t0, t1;
    double *ts;
    signed char *miss;
    long nr;
} drift_ctx;

static int drift_cb(void *user, const trit_ledger_rec *r, const char *line, size_t len) {
    drift_ctx *c = user;
    if (r->type != TRIT_REC_ROUND || r->bucket < 0 || r->bucket > TRIT_BUCKET_NOMATCH) return 0;
    int k;
    for (k = 0; k < c->n; k++)
        if (strlen(c->p[k].id) == r->prompt_id_len &&
            !memcmp(c->p[k].id, r->prompt_id, r->prompt_id_len))
            break;
    if (k == c->n) {
        c->p = xrealloc(c->p, (size_t)(c->n + 1) * sizeof *c->p);
        memset(&c->p[k], 0, sizeof c->p[k]);
        snprintf(c->p[k].id, sizeof c->p[k].id, "%.*s", (int)TRIT_MIN(r->prompt_id_len, 63),
                 r->prompt_id);
        c->n++;
    }
    bool miss = r->bucket != TRIT_BUCKET_EXACT;
    c->p[k].rounds++;
    c->p[k].misses += miss;
    if (r->bucket == TRIT_BUCKET_NOMATCH) {
        if (r->tie == TRIT_TIE_TIE) c->p[k].ties++;
        if (r->tie == TRIT_TIE_REAL) c->p[k].reals++;
    }
    c->ts = xrealloc(c->ts, (size_t)(c->nr + 1) * sizeof *c->ts);
    c->miss = xrealloc(c->miss, (size_t)(c->nr + 1));
    c->ts[c->nr] = isnan(r->ts) ? 0 : r->ts;
    c->miss[c->nr] = miss;
    c->nr++;
    return 0;
}

static int miss_cmp(const void *a, const void *b) {
    const drift_prompt *x = a, *y = b;
    return (x->misses < y->misses) - (x->misses > y->misses);
}

static int burnin_drift(const char **ledgers, int nl, bool as_json) {
    drift_ctx c = {0};
    trit_err err = {0};
    if (trit_ledger_scan_many(ledgers, nl, drift_cb, &c, false, NULL, &err)) {
        fprintf(stderr, "trit burnin drift: %s\n", err.msg);
        return 1;
    }
    qsort(c.p, (size_t)c.n, sizeof *c.p, miss_cmp);
    long misses = 0;
    for (int i = 0; i < c.n; i++) misses += c.p[i].misses;
    /* ten equal time slices */
    double lo = INFINITY, hi = -INFINITY;
    for (long i = 0; i < c.nr; i++) lo = fmin(lo, c.ts[i]), hi = fmax(hi, c.ts[i]);
    long sl_n[10] = {0}, sl_m[10] = {0};
    for (long i = 0; i < c.nr; i++) {
        int s = hi > lo ? (int)((c.ts[i] - lo) / (hi - lo) * 10) : 0;
        if (s > 9) s = 9;
        sl_n[s]++;
        sl_m[s] += c.miss[i];
    }
    if (as_json) {
        json_t *ps = json_array(), *sl = json_array();
        for (int i = 0; i < c.n; i++)
            json_array_append_new(
                ps, json_pack("{s:s,s:I,s:I,s:I,s:I}", "prompt_id", c.p[i].id, "rounds",
                              (json_int_t)c.p[i].rounds, "misses", (json_int_t)c.p[i].misses, "tie",
                              (json_int_t)c.p[i].ties, "real", (json_int_t)c.p[i].reals));
        for (int s = 0; s < 10 && c.nr; s++)
            json_array_append_new(sl, json_pack("{s:f,s:I,s:I}", "from", lo + (hi - lo) * s / 10,
                                                "rounds", (json_int_t)sl_n[s], "misses",
                                                (json_int_t)sl_m[s]));
        json_t *o = json_pack("{s:I,s:o,s:o}", "misses", (json_int_t)misses, "prompts", ps,
                              "time_slices", sl);
        json_dumpf(o, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(o);
    } else {
        printf("misses per prompt (%ld misses over %ld compared rounds):\n", misses, c.nr);
        printf("  %-24s %8s %8s %6s %6s %7s\n", "prompt", "rounds", "misses", "tie", "real",
               "share");
        for (int i = 0; i < c.n && i < 20; i++) {
            if (!c.p[i].misses) break;
            printf("  %-24s %8ld %8ld %6ld %6ld %6.1f%%\n", c.p[i].id, c.p[i].rounds, c.p[i].misses,
                   c.p[i].ties, c.p[i].reals, 100.0 * (double)c.p[i].misses / (double)misses);
        }
        if (misses && c.n) {
            double share = (double)c.p[0].misses / (double)misses;
            printf("%s\n", share > 0.5 ? "drift is concentrated on one prompt: a sampler bug?"
                                       : "drift is spread over many prompts: a model bug?");
        }
        printf("miss rate over time (10 slices):\n");
        for (int s = 0; s < 10 && c.nr; s++) {
            char iso[32];
            trit_iso8601(lo + (hi - lo) * s / 10, iso);
            printf("  %s %6ld rounds %6.1f%% miss\n", iso, sl_n[s],
                   sl_n[s] ? 100.0 * (double)sl_m[s] / (double)sl_n[s] : 0.0);
        }
    }
    free(c.p);
    free(c.ts);
    free(c.miss);
    return 0;
}

int cmd_burnin(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "run")) return burnin_run_main(argc - 1, argv + 1);
    if (strcmp(sub, "stats") && strcmp(sub, "drift") && strcmp(sub, "recent") &&
        strcmp(sub, "since")) {
        fprintf(stderr, "trit burnin: unknown subcommand '%s' (run, stats, drift, recent, since)\n",
                sub);
        return 2;
    }
    const char **ledgers = xcalloc((size_t)argc, sizeof *ledgers);
    int nl = 0, rc = 0;
    bool as_json = false;
    trit_stats_filter f = {0};
    bool have_pos = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            goto out;
        } else if (!strcmp(a, "--json")) {
            as_json = true;
        } else if (!strcmp(a, "--ledger")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "trit burnin %s: --ledger needs a file\n", sub);
                rc = 2;
                goto out;
            }
            ledgers[nl++] = argv[++i];
        } else if (a[0] != '-' && !have_pos && !strcmp(sub, "recent")) {
            if (parse_long(a, &f.last_n) || f.last_n == 0) {
                fprintf(stderr, "trit burnin recent: N must be a positive integer, got '%s'\n", a);
                rc = 2;
                goto out;
            }
            have_pos = true;
        } else if (!have_pos && !strcmp(sub, "since") &&
                   (a[0] != '-' || a[1] == 0 || (a[1] >= '0' && a[1] <= '9'))) {
            if (parse_time(a, &f.since_ts)) {
                fprintf(stderr,
                        "trit burnin since: bad TIMESTAMP '%s' (ISO-8601, epoch seconds, or an "
                        "age like 2h)\n",
                        a);
                rc = 2;
                goto out;
            }
            have_pos = true;
        } else {
            fprintf(stderr, "trit burnin %s: unknown argument '%s' (see --help)\n", sub, a);
            rc = 2;
            goto out;
        }
    }
    if (!strcmp(sub, "since") && !have_pos) {
        fprintf(stderr, "trit burnin since: TIMESTAMP is required\n");
        rc = 2;
        goto out;
    }
    if (!strcmp(sub, "recent") && !have_pos) f.last_n = 100;
    if (nl == 0) ledgers[nl++] = "burnin.ledger.jsonl";
    if (!strcmp(sub, "drift")) {
        rc = burnin_drift(ledgers, nl, as_json);
        goto out;
    }
    trit_stats st;
    trit_err err = {0};
    if (trit_stats_compute(ledgers, nl, &f, &st, &err)) {
        fprintf(stderr, "trit burnin %s: %s\n", sub, err.msg);
        rc = 1;
        goto out;
    }
    if (as_json) {
        json_t *j = trit_stats_json(&st);
        json_dumpf(j, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(j);
    } else {
        trit_stats_print(stdout, &st);
    }
out:
    free(ledgers);
    return rc;
}
