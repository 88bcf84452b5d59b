/* cmd_burnin.c — `trit burnin run|stats|drift|recent [N]|since TIMESTAMP`. */
#define _XOPEN_SOURCE 700 /* strptime */
#include "base/base.h"
#include "cli/cli.h"
#include "parity/parity.h"

#include <getopt.h>
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
        "       trit burnin verify --ledger FILE [--ledger FILE ...]\n"
        "\n"
        "run: sends the next prompt to gen-1 (--v1) and gen-2 (--v2) concurrently at\n"
        "temperature 0 with top_logprobs, classifies the pair (exact, prefix-only,\n"
        "no-match [tie|real], v1-unreachable, v2-unreachable; a no-match is judged where\n"
        "the token sequences part) and appends one fsync'd line to the ledger. A killed\n"
        "run resumes from the ledger: nothing lost, nothing twice. Each run records each\n"
        "side's identity first (again when it changes).\n"
        "  --prompts FILE      prompt corpus, JSONL {id,category,prompt} (prompts/burnin.jsonl)\n"
        "  --rounds N          run until the ledger holds N rounds (a resumed run finishes)\n"
        "  --forever           run until SIGINT/SIGTERM (stops cleanly once the rounds in\n"
        "                      flight are written)\n"
        "  --concurrency N     rounds in flight at once, like N clients (1); each lane\n"
        "                      paces itself; rounds are written in round order\n"
        "  --pace D            time between a lane's round starts: 2.5s, 500ms, 0 (2.5s)\n"
        "  --max-tokens N      tokens per reply (64)\n"
        "  --ledger FILE       ledger (burnin.ledger.jsonl); state file is FILE.state\n"
        "  --state FILE        state file path\n"
        "  --noise-lane URL    a second gen-1 server: measures the reference's own noise\n"
        "  --v1-key K, --v2-key K, --noise-key K\n"
        "                      bearer token for that server only (no server sees another's)\n"
        "  --v1-key-file F, --v2-key-file F, --noise-key-file F\n"
        "                      the same, read from a file (first line; keeps keys out of ps)\n"
        "  --endpoint E        completions (default) or chat\n"
        "  --timeout S         per-request timeout in seconds (60)\n"
        "  --top-logprobs N    alternatives per token (5)\n"
        "  --tie-eps X         tie threshold in nats between top-1 and top-2 (0.05)\n"
        "  --spike X           halt when no-match share in the last hour exceeds X (0.20)\n"
        "  --spike-min N       ...once the hour holds at least N compared rounds (20)\n"
        "  --ident-every N     read each side's identity again every N rounds (100; 0: only\n"
        "                      at the start and after a side was unreachable)\n"
        "  --quiet             no per-round line\n"
        "stats: exact-match rate, buckets, tie vs real, median prefix, latency p50/p95 and\n"
        "gap, top_miss, categories, noise lane, ppl. drift: misses per prompt and over time.\n"
        "recent N: the last N rounds (default 100). since T: ISO-8601 time, epoch seconds or\n"
        "a relative age like 2h / 30m / 1d.\n"
        "verify: checks each ledger's hash chain (docs/parity.md); names the first line that\n"
        "was edited, removed, inserted or reordered, and prints each chain head.\n"
        "exit: 0 ok (also after a clean Ctrl-C), 1 error, 2 usage, 3 no-match spike halted;\n"
        "verify: 0 every chain intact, 1 a chain broken, 2 usage or unreadable,\n"
        "3 unchained records (written before the chain; nothing to verify them by)\n");
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

/* A bearer key from a file: its first line, trailing whitespace removed (keys on argv show
 * in `ps`; a 0600 file does not). */
/* A --*-key-file: the one key reader (client.h trit_api_key_load: safe file checks, newline
 * stripped, empty keys refused). 0, or -1 with the problem said on stderr. */
static int read_key_file(const char *flag, const char *path, char **out) {
    trit_err err = {0};
    char *key = NULL;
    if (trit_api_key_load(path, NULL, &key, &err)) {
        fprintf(stderr, "trit burnin run: %s: %s\n", flag, err.msg);
        return -1;
    }
    free(*out);
    *out = key;
    return 0;
}

/* the value of a numeric option failed to parse: name it, exit 2 */
static int bad_value(const char *opt, const char *v) {
    fprintf(stderr, "trit burnin run: bad value for --%s: '%s'\n", opt, v);
    return 2;
}

enum {
    O_V1 = 256,
    O_V2,
    O_NOISE,
    O_PROMPTS,
    O_LEDGER,
    O_STATE,
    O_V1_KEY,
    O_V2_KEY,
    O_NOISE_KEY,
    O_V1_KEY_FILE,
    O_V2_KEY_FILE,
    O_NOISE_KEY_FILE,
    O_API_KEY,
    O_ROUNDS,
    O_FOREVER,
    O_QUIET,
    O_PACE,
    O_TIMEOUT,
    O_MAX_TOKENS,
    O_TOP_LOGPROBS,
    O_TIE_EPS,
    O_SPIKE,
    O_SPIKE_MIN,
    O_ENDPOINT,
    O_CONCURRENCY,
    O_IDENT_EVERY,
};
static const struct option run_options[] = {
    {"v1", required_argument, 0, O_V1},
    {"v2", required_argument, 0, O_V2},
    {"noise-lane", required_argument, 0, O_NOISE},
    {"prompts", required_argument, 0, O_PROMPTS},
    {"ledger", required_argument, 0, O_LEDGER},
    {"state", required_argument, 0, O_STATE},
    {"v1-key", required_argument, 0, O_V1_KEY},
    {"v2-key", required_argument, 0, O_V2_KEY},
    {"noise-key", required_argument, 0, O_NOISE_KEY},
    {"v1-key-file", required_argument, 0, O_V1_KEY_FILE},
    {"v2-key-file", required_argument, 0, O_V2_KEY_FILE},
    {"noise-key-file", required_argument, 0, O_NOISE_KEY_FILE},
    {"api-key", required_argument, 0, O_API_KEY},
    {"rounds", required_argument, 0, O_ROUNDS},
    {"forever", no_argument, 0, O_FOREVER},
    {"quiet", no_argument, 0, O_QUIET},
    {"pace", required_argument, 0, O_PACE},
    {"timeout", required_argument, 0, O_TIMEOUT},
    {"max-tokens", required_argument, 0, O_MAX_TOKENS},
    {"top-logprobs", required_argument, 0, O_TOP_LOGPROBS},
    {"tie-eps", required_argument, 0, O_TIE_EPS},
    {"spike", required_argument, 0, O_SPIKE},
    {"spike-min", required_argument, 0, O_SPIKE_MIN},
    {"endpoint", required_argument, 0, O_ENDPOINT},
    {"concurrency", required_argument, 0, O_CONCURRENCY},
    {"ident-every", required_argument, 0, O_IDENT_EVERY},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* The keys read from files, owned here (the options point into them). */
typedef struct run_keys {
    char *gen1, *gen2, *noise;
} run_keys;

/* One option into o (keys from files into k); 0 ok, 2 usage error. */
static int run_option(int c, const char *v, trit_burnin_opts *o, run_keys *k) {
    const char *name = run_options[0].name;
    for (const struct option *p = run_options; p->name; p++)
        if (p->val == c) name = p->name;
    long n;
    double d;
    switch (c) {
    case O_V1:
        o->gen1_url = v;
        return 0;
    case O_V2:
        o->gen2_url = v;
        return 0;
    case O_NOISE:
        o->noise_url = v;
        return 0;
    case O_PROMPTS:
        o->prompts_path = v;
        return 0;
    case O_LEDGER:
        o->ledger_path = v;
        return 0;
    case O_STATE:
        o->state_path = v;
        return 0;
    case O_V1_KEY:
        o->gen1_key = v;
        return 0;
    case O_V2_KEY:
        o->gen2_key = v;
        return 0;
    case O_NOISE_KEY:
        o->noise_key = v;
        return 0;
    case O_V1_KEY_FILE:
        return read_key_file("--v1-key-file", v, &k->gen1) ? 2 : 0;
    case O_V2_KEY_FILE:
        return read_key_file("--v2-key-file", v, &k->gen2) ? 2 : 0;
    case O_NOISE_KEY_FILE:
        return read_key_file("--noise-key-file", v, &k->noise) ? 2 : 0;
    case O_API_KEY:
        /* one key for every server was the old way: each side now has its own */
        fprintf(stderr, "trit burnin run: --api-key is gone: give each server its own key with "
                        "--v1-key/--v2-key/--noise-key (or the *-key-file variants)\n");
        return 2;
    case O_ROUNDS:
        if (parse_long(v, &n) || n == 0) return bad_value(name, v);
        o->rounds = n;
        return 0;
    case O_FOREVER:
        o->forever = true;
        return 0;
    case O_QUIET:
        o->quiet = true;
        return 0;
    case O_PACE:
        if (parse_duration(v, &d)) return bad_value(name, v);
        o->pace_s = d;
        return 0;
    case O_TIMEOUT:
        if (parse_duration(v, &d) || d <= 0) return bad_value(name, v);
        o->timeout_s = d;
        return 0;
    case O_MAX_TOKENS:
        if (parse_long(v, &n) || n == 0 || n > 100000) return bad_value(name, v);
        o->max_tokens = (int)n;
        return 0;
    case O_TOP_LOGPROBS:
        if (parse_long(v, &n) || n > TRIT_CLIENT_MAX_TOP) return bad_value(name, v);
        o->top_logprobs = (int)n;
        return 0;
    case O_TIE_EPS:
        if (parse_duration(v, &d)) return bad_value(name, v);
        o->tie_eps = d;
        return 0;
    case O_SPIKE:
        if (parse_duration(v, &d) || d > 1) return bad_value(name, v);
        o->spike_nomatch = d;
        return 0;
    case O_SPIKE_MIN:
        if (parse_long(v, &n)) return bad_value(name, v);
        o->spike_min_rounds = n;
        return 0;
    case O_ENDPOINT:
        if (strcmp(v, "chat") && strcmp(v, "completions")) return bad_value(name, v);
        o->chat = !strcmp(v, "chat");
        return 0;
    case O_CONCURRENCY:
        if (parse_long(v, &n) || n == 0 || n > TRIT_BURNIN_MAX_CONCURRENCY)
            return bad_value(name, v);
        o->concurrency = (int)n;
        return 0;
    case O_IDENT_EVERY:
        if (parse_long(v, &n)) return bad_value(name, v);
        o->ident_every = n;
        return 0;
    }
    return 2;
}

static int burnin_run_main(int argc, char **argv) {
    trit_burnin_opts o;
    trit_burnin_opts_default(&o);
    run_keys keys = {0};
    int c, rc = 0;
    optind = 1;
    /* options (unknown ones: getopt says which, exit 2) */
    while (rc == 0 && (c = getopt_long(argc, argv, "h", run_options, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            goto out;
        }
        rc = c == '?' ? 2 : run_option(c, optarg, &o, &keys);
    }
    if (rc) goto out;
    if (optind < argc) {
        fprintf(stderr, "trit burnin run: unexpected argument '%s' (see --help)\n", argv[optind]);
        rc = 2;
        goto out;
    }
    if (keys.gen1) o.gen1_key = keys.gen1;
    if (keys.gen2) o.gen2_key = keys.gen2;
    if (keys.noise) o.noise_key = keys.noise;
    /* what a run needs: both sides, and a target */
    if (!o.gen1_url || !o.gen2_url) {
        fprintf(stderr, "trit burnin run: --v1 URL and --v2 URL are required\n");
        rc = 2;
    } else if (!o.forever && o.rounds <= 0) {
        fprintf(stderr, "trit burnin run: give --rounds N or --forever\n");
        rc = 2;
    } else if (o.forever && o.rounds > 0) {
        fprintf(stderr, "trit burnin run: --rounds and --forever exclude each other\n");
        rc = 2;
    }
    if (rc) goto out;
    trit_err err = {0};
    trit_burnin_status st = trit_burnin_run(&o, &err);
    if (st == TRIT_BURNIN_ERROR || st == TRIT_BURNIN_SPIKE)
        fprintf(stderr, "trit burnin run: %s\n", err.msg[0] ? err.msg : "failed");
    /* a clean stop on a signal is a success for the shell: the ledger is consistent */
    rc = st == TRIT_BURNIN_INTERRUPTED ? 0 : (int)st;
out:
    free(keys.gen1);
    free(keys.gen2);
    free(keys.noise);
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

/* `trit burnin stats|drift|recent [N]|since T`: options, then the one positional argument
 * recent and since take. */
static int burnin_report_main(const char *sub, int argc, char **argv) {
    const char **ledgers = xcalloc((size_t)argc + 1, sizeof *ledgers);
    int nl = 0, rc = 2, c;
    bool as_json = false;
    trit_stats_filter f = {0};
    enum { O_LEDGER = 256, O_JSON };
    static const struct option lo[] = {{"ledger", required_argument, 0, O_LEDGER},
                                       {"json", no_argument, 0, O_JSON},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case O_LEDGER:
            ledgers[nl++] = optarg;
            break;
        case O_JSON:
            as_json = true;
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            goto out; /* getopt named the bad option */
        }
    }
    /* the positional argument: recent's N (default 100), since's TIMESTAMP (required) */
    const char *pos = optind < argc ? argv[optind++] : NULL;
    bool takes_pos = !strcmp(sub, "recent") || !strcmp(sub, "since");
    if (optind < argc || (pos && !takes_pos)) {
        fprintf(stderr, "trit burnin %s: unexpected argument '%s' (see --help)\n", sub,
                optind < argc ? argv[optind] : pos);
        goto out;
    }
    if (!strcmp(sub, "recent")) {
        f.last_n = 100;
        if (pos && (parse_long(pos, &f.last_n) || f.last_n == 0)) {
            fprintf(stderr, "trit burnin recent: N must be a positive integer, got '%s'\n", pos);
            goto out;
        }
    }
    if (!strcmp(sub, "since")) {
        if (!pos) {
            fprintf(stderr, "trit burnin since: TIMESTAMP is required\n");
            goto out;
        }
        if (parse_time(pos, &f.since_ts)) {
            fprintf(stderr,
                    "trit burnin since: bad TIMESTAMP '%s' (ISO-8601, epoch seconds, or an age "
                    "like 2h)\n",
                    pos);
            goto out;
        }
    }
    if (nl == 0) ledgers[nl++] = "burnin.ledger.jsonl";
    if (!strcmp(sub, "drift")) {
        rc = burnin_drift(ledgers, nl, as_json);
        goto out;
    }
    /* stats, recent, since: the aggregates over the filtered, merged ledgers */
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
    rc = 0;
out:
    free(ledgers);
    return rc;
}

/* `trit burnin verify --ledger F ...`: each ledger's chain judged on its own (merged
 * ledgers keep their own chains). The worst result decides the exit code. */
static int burnin_verify_main(int argc, char **argv) {
    static const struct option lo[] = {
        {"ledger", required_argument, 0, O_LEDGER}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char **ledgers = xcalloc((size_t)argc + 1, sizeof *ledgers);
    int nl = 0, c, rc = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c == O_LEDGER) {
            ledgers[nl++] = optarg;
        } else {
            if (c == 'h') usage(stdout);
            free(ledgers);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind < argc || nl == 0) {
        fprintf(stderr, "trit burnin verify: --ledger FILE is required, no other arguments\n");
        free(ledgers);
        return 2;
    }
    for (int i = 0; i < nl; i++) {
        trit_ledger_chain ch;
        trit_err err = {0};
        if (trit_ledger_verify(ledgers[i], &ch, &err)) {
            fprintf(stderr, "trit burnin verify: %s\n", err.msg);
            rc = 2;
            continue;
        }
        printf("%s: %s%s\n  head %s\n", ledgers[i],
               ch.status == TRIT_CHAIN_BROKEN ? "chain broken: " : "", ch.msg, ch.head);
        int r = ch.status == TRIT_CHAIN_BROKEN ? 1 : ch.status == TRIT_CHAIN_UNCHAINED ? 3 : 0;
        /* worst first: unreadable (2) > broken (1) > unchained (3) > intact (0) */
        if (rc != 2 && (r == 1 || (r == 3 && rc == 0))) rc = r;
    }
    free(ledgers);
    return rc;
}

int cmd_burnin(int argc, char **argv) {
    /* the subcommand sees itself as "trit burnin SUB" (getopt_long's messages name it) */
    char prog[48];
    int rc;
    const char *sub = cli_subcommand(argc, argv, "burnin", usage, prog, sizeof prog, &rc);
    if (!sub) return rc; /* no subcommand, or --help */
    if (!strcmp(sub, "run")) return burnin_run_main(argc - 1, argv + 1);
    if (!strcmp(sub, "verify")) return burnin_verify_main(argc - 1, argv + 1);
    if (!strcmp(sub, "stats") || !strcmp(sub, "drift") || !strcmp(sub, "recent") ||
        !strcmp(sub, "since"))
        return burnin_report_main(sub, argc - 1, argv + 1);
    fprintf(stderr,
            "trit burnin: unknown subcommand '%s' (run, stats, drift, recent, since, verify)\n",
            sub);
    return 2;
}
