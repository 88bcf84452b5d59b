/* cmd_burnin.c — `trit burnin run|stats|drift|recent [N]|since TIMESTAMP|verify|dashboard`. Each
 * subcommand has cli.h's shape: its options struct, parse_burnin_<sub>() and
 * run_burnin_<sub>(). */
#include "base/base.h"
#include "cli/cli.h"
#include "parity/dashboard.h"
#include "parity/parity.h"

#include <getopt.h>
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: every subcommand, every option of the three tables below, the exit codes. */
static void usage(FILE *out) {
    fprintf(
        out,
        "usage: trit burnin run --v1 URL --v2 URL [options]\n"
        "       trit burnin stats|drift [--ledger FILE ...] [--json]\n"
        "       trit burnin recent [N] [--ledger FILE ...] [--json]\n"
        "       trit burnin since TIMESTAMP [--ledger FILE ...] [--json]\n"
        "       trit burnin verify --ledger FILE [--ledger FILE ...]\n"
        "       trit burnin dashboard [--ledger FILE ...] [--ppl FILE] [--config FILE]\n"
        "                             [--listen HOST:PORT]\n"
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
        "  --api-key K         gone (one key for every server): refused, use --v1-key etc.\n"
        "stats: exact-match rate, buckets, tie vs real, median prefix, latency p50/p95 and\n"
        "gap, top_miss, categories, noise lane, ppl. drift: misses per prompt and over time.\n"
        "recent N: the last N rounds (default 100). since T: ISO-8601 time, epoch seconds or\n"
        "a relative age like 2h / 30m / 1d.\n"
        "verify: checks each ledger's hash chain (docs/parity.md); names the first line that\n"
        "was edited, removed, inserted or reordered, and prints each chain head.\n"
        "dashboard: a live page over the ledgers (followed while they are written, rotated\n"
        "or merged): the cutover gate table exactly as `trit gate` computes it, exact match\n"
        "and latency over time, the noise lane, categories, the misses and each miss's two\n"
        "replies with the first divergent byte marked and both sides' top-k at the split.\n"
        "Prints its URL; runs until Ctrl-C / SIGTERM.\n"
        "  --ledger FILE       ledger(s) to follow (burnin.ledger.jsonl; repeat to merge)\n"
        "  --ppl FILE          `trit ppl --json -o FILE` figures for the gate table\n"
        "  --config FILE       gate config INI (as `trit gate --config`)\n"
        "  --allow-unchained   as `trit gate --allow-unchained`\n"
        "  --listen HOST:PORT  address (127.0.0.1:0: loopback, any free port)\n"
        "  --api-key-file F    the page's API calls need 'Authorization: Bearer KEY' (the page\n"
        "                      asks for it); default $TRIT_API_KEY; none: no key\n"
        "  --host-allow NAMES  Host names accepted besides localhost/127.0.0.1/[::1] (comma\n"
        "                      list), when listening on loopback\n"
        "  --insecure-no-key   listen beyond loopback without a key (refused otherwise)\n"
        "exit: 0 ok (also after a clean Ctrl-C), 1 error, 2 usage, 3 no-match spike halted;\n"
        "verify: 0 every chain intact, 1 a chain broken, 2 usage or unreadable,\n"
        "3 unchained records (written before the chain; nothing to verify them by)\n");
}

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
    O_JSON,
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

/* What `burnin run`'s command line asked for: the run's options, and the keys read from
 * files (owned here; the options point into them). */
typedef struct burnin_run_args {
    trit_burnin_opts o;
    char *key1, *key2, *key_noise;
} burnin_run_args;

/* The options taken as given (URLs, paths, keys) and the flags; 0, or 2 for --api-key and a
 * key file that cannot be read (said on stderr). */
static int run_text_option(int c, const char *v, burnin_run_args *a) {
    trit_burnin_opts *o = &a->o;
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
        return read_key_file("--v1-key-file", v, &a->key1) ? 2 : 0;
    case O_V2_KEY_FILE:
        return read_key_file("--v2-key-file", v, &a->key2) ? 2 : 0;
    case O_NOISE_KEY_FILE:
        return read_key_file("--noise-key-file", v, &a->key_noise) ? 2 : 0;
    case O_FOREVER:
        o->forever = true;
        return 0;
    case O_QUIET:
        o->quiet = true;
        return 0;
    case O_API_KEY:
        /* one key for every server was the old way: each side now has its own */
        fprintf(stderr, "trit burnin run: --api-key is gone: give each server its own key with "
                        "--v1-key/--v2-key/--noise-key (or the *-key-file variants)\n");
        return 2;
    }
    return 2;
}

/* A number or a choice parsed by cli_opt_* (res: its result, which said what was wrong in
 * the shared shape "trit burnin run: --FLAG: WHY (got 'V')"): 0, or 2, the usage exit code. */
static int run_value(int res) {
    return res == 0 ? 0 : 2;
}

/* The options with a value to check; run_text_option for the rest. */
static int run_option(int c, const char *v, burnin_run_args *a) {
    static const char *const endpoints[] = {"completions", "chat"};
    const char *cmd = "burnin run", *flag = cli_opt_name(run_options, c);
    trit_burnin_opts *o = &a->o;
    int chat = o->chat;
    switch (c) {
    case O_ROUNDS:
        return run_value(cli_opt_long(cmd, flag, v, 1, LONG_MAX, &o->rounds));
    case O_PACE:
        return run_value(cli_opt_duration(cmd, flag, v, 0, INFINITY, &o->pace_s));
    case O_TIMEOUT:
        return run_value(cli_opt_timeout(cmd, flag, v, INFINITY, &o->timeout_s));
    case O_MAX_TOKENS:
        return run_value(cli_opt_int(cmd, flag, v, 1, 100000, &o->max_tokens));
    case O_TOP_LOGPROBS:
        return run_value(cli_opt_int(cmd, flag, v, 0, TRIT_CLIENT_MAX_TOP, &o->top_logprobs));
    case O_TIE_EPS:
        return run_value(cli_opt_double(cmd, flag, v, 0, INFINITY, &o->tie_eps));
    case O_SPIKE:
        return run_value(cli_opt_double(cmd, flag, v, 0, 1, &o->spike_nomatch));
    case O_SPIKE_MIN:
        return run_value(cli_opt_long(cmd, flag, v, 0, LONG_MAX, &o->spike_min_rounds));
    case O_CONCURRENCY:
        return run_value(
            cli_opt_int(cmd, flag, v, 1, TRIT_BURNIN_MAX_CONCURRENCY, &o->concurrency));
    case O_IDENT_EVERY:
        return run_value(cli_opt_long(cmd, flag, v, 0, LONG_MAX, &o->ident_every));
    case O_ENDPOINT:
        if (run_value(cli_opt_choice(cmd, flag, v, endpoints, 2, &chat))) return 2;
        o->chat = chat == 1;
        return 0;
    }
    return run_text_option(c, v, a);
}

/* What a run needs: both sides, and a target (--rounds or --forever). 0, or 2 (said). */
static int run_check(const trit_burnin_opts *o) {
    const char *why = NULL;
    if (!o->gen1_url || !o->gen2_url)
        why = "--v1 URL and --v2 URL are required";
    else if (!o->forever && o->rounds <= 0)
        why = "give --rounds N or --forever";
    else if (o->forever && o->rounds > 0)
        why = "--rounds and --forever exclude each other";
    if (!why) return 0;
    fprintf(stderr, "trit burnin run: %s\n", why);
    return 2;
}

/* The command line into a (its defaults first): 0 to run, 1 after --help, 2 on a usage
 * error (getopt names an unknown option). The keys read from files are a's to free. */
static int parse_burnin_run(int argc, char **argv, burnin_run_args *a) {
    *a = (burnin_run_args){0};
    trit_burnin_opts_default(&a->o);
    int c, rc = 0;
    optind = 1;
    while (rc == 0 && (c = cli_getopt(argc, argv, "h", run_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        rc = c == '?' ? 2 : run_option(c, optarg, a);
    }
    if (rc) return rc;
    if (optind < argc) {
        fprintf(stderr, "trit burnin run: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (a->key1) a->o.gen1_key = a->key1;
    if (a->key2) a->o.gen2_key = a->key2;
    if (a->key_noise) a->o.noise_key = a->key_noise;
    return run_check(&a->o);
}

/* Run the rounds (trit_burnin_run); the exit code: 0 done or stopped cleanly by a signal
 * (the ledger is consistent), 1 error, 3 no-match spike. */
static int run_burnin_run(const burnin_run_args *a) {
    trit_err err = {0};
    trit_burnin_status st = trit_burnin_run(&a->o, &err);
    if (st == TRIT_BURNIN_ERROR || st == TRIT_BURNIN_SPIKE)
        fprintf(stderr, "trit burnin run: %s\n", err.msg[0] ? err.msg : "failed");
    return st == TRIT_BURNIN_INTERRUPTED ? 0 : (int)st;
}

/* `trit burnin run`: its options, then the run; the keys freed either way. */
static int burnin_run(int argc, char **argv) {
    burnin_run_args a;
    int rc = parse_burnin_run(argc, argv, &a);
    if (rc == 1)
        rc = 0; /* --help */
    else if (rc == 0)
        rc = run_burnin_run(&a);
    free(a.key1);
    free(a.key2);
    free(a.key_noise);
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

/* One ledger record into the drift tally: compared rounds only, per prompt and in time. */
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

/* Most misses first (qsort). */
static int miss_cmp(const void *a, const void *b) {
    const drift_prompt *x = a, *y = b;
    return (x->misses < y->misses) - (x->misses > y->misses);
}

/* `burnin drift`: misses per prompt (one prompt holding most of them points at a sampler,
 * many at the model) and the miss rate in ten equal time slices; text or JSON. */
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

static const struct option report_options[] = {{"ledger", required_argument, 0, O_LEDGER},
                                               {"json", no_argument, 0, O_JSON},
                                               {"help", no_argument, 0, 'h'},
                                               {0, 0, 0, 0}};

/* What `burnin stats|drift|recent|since` asked for: the ledgers (argv's strings; the array
 * is owned here), the output form and the rounds to take (recent's N, since's time). */
typedef struct burnin_report_args {
    const char *sub;
    const char **ledgers;
    int n_ledgers;
    bool as_json;
    trit_stats_filter f;
} burnin_report_args;

/* The one positional argument: recent's N (default 100), since's TIMESTAMP (required);
 * stats and drift take none. 0, or 2 (said on stderr). */
static int report_positional(const char *pos, burnin_report_args *a) {
    const bool recent = !strcmp(a->sub, "recent"), since = !strcmp(a->sub, "since");
    if (pos && !recent && !since) {
        fprintf(stderr, "trit burnin %s: unexpected argument '%s' (see --help)\n", a->sub, pos);
        return 2;
    }
    if (recent) a->f.last_n = 100;
    if (recent && pos && trit_parse_long(pos, 1, LONG_MAX, &a->f.last_n)) {
        fprintf(stderr, "trit burnin recent: N must be a positive integer, got '%s'\n", pos);
        return 2;
    }
    if (since && !pos) {
        fprintf(stderr, "trit burnin since: TIMESTAMP is required\n");
        return 2;
    }
    if (since && cli_time_value(pos, trit_wall_s(), &a->f.since_ts)) {
        fprintf(stderr,
                "trit burnin since: bad TIMESTAMP '%s' (ISO-8601, epoch seconds, or an age "
                "like 2h)\n",
                pos);
        return 2;
    }
    return 0;
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error. Without --ledger,
 * the default ledger. a->ledgers is a's to free. */
static int parse_burnin_report(const char *sub, int argc, char **argv, burnin_report_args *a) {
    *a = (burnin_report_args){.sub = sub, .ledgers = xcalloc((size_t)argc + 1, sizeof(char *))};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "h", report_options)) != -1) {
        if (c == O_LEDGER) {
            a->ledgers[a->n_ledgers++] = optarg;
        } else if (c == O_JSON) {
            a->as_json = true;
        } else if (c == 'h') {
            usage(stdout);
            return 1;
        } else {
            return 2; /* getopt named the bad option */
        }
    }
    const char *pos = optind < argc ? argv[optind++] : NULL;
    if (optind < argc) {
        fprintf(stderr, "trit burnin %s: unexpected argument '%s' (see --help)\n", sub,
                argv[optind]);
        return 2;
    }
    if (report_positional(pos, a)) return 2;
    if (a->n_ledgers == 0) a->ledgers[a->n_ledgers++] = "burnin.ledger.jsonl";
    return 0;
}

/* drift, or the aggregates over the filtered, merged ledgers (stats, recent, since) as text
 * or JSON; 0, or 1 when a ledger cannot be read. */
static int run_burnin_report(const burnin_report_args *a) {
    if (!strcmp(a->sub, "drift")) return burnin_drift(a->ledgers, a->n_ledgers, a->as_json);
    trit_stats st;
    trit_err err = {0};
    if (trit_stats_compute(a->ledgers, a->n_ledgers, &a->f, &st, &err)) {
        fprintf(stderr, "trit burnin %s: %s\n", a->sub, err.msg);
        return 1;
    }
    if (a->as_json) {
        json_t *j = trit_stats_json(&st);
        json_dumpf(j, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(j);
    } else {
        trit_stats_print(stdout, &st);
    }
    return 0;
}

/* `trit burnin stats|drift|recent [N]|since T`: its options, then the report. */
static int burnin_report(const char *sub, int argc, char **argv) {
    burnin_report_args a;
    int rc = parse_burnin_report(sub, argc, argv, &a);
    if (rc == 1)
        rc = 0; /* --help */
    else if (rc == 0)
        rc = run_burnin_report(&a);
    free(a.ledgers);
    return rc;
}

static const struct option verify_options[] = {
    {"ledger", required_argument, 0, O_LEDGER}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};

/* What `burnin verify` asked for: the ledgers (the array owned here). */
typedef struct burnin_verify_args {
    const char **ledgers;
    int n_ledgers;
} burnin_verify_args;

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (at least one
 * --ledger, nothing else). a->ledgers is a's to free. */
static int parse_burnin_verify(int argc, char **argv, burnin_verify_args *a) {
    *a = (burnin_verify_args){.ledgers = xcalloc((size_t)argc + 1, sizeof(char *))};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "h", verify_options)) != -1) {
        if (c != O_LEDGER) {
            if (c == 'h') usage(stdout);
            return c == 'h' ? 1 : 2;
        }
        a->ledgers[a->n_ledgers++] = optarg;
    }
    if (optind < argc || a->n_ledgers == 0) {
        fprintf(stderr, "trit burnin verify: --ledger FILE is required, no other arguments\n");
        return 2;
    }
    return 0;
}

/* Each ledger's chain judged on its own (merged ledgers keep their own chains); the worst
 * result decides the exit code: unreadable (2) > broken (1) > unchained (3) > intact (0). */
static int run_burnin_verify(const burnin_verify_args *a) {
    int rc = 0;
    for (int i = 0; i < a->n_ledgers; i++) {
        trit_ledger_chain ch;
        trit_err err = {0};
        if (trit_ledger_verify(a->ledgers[i], &ch, &err)) {
            fprintf(stderr, "trit burnin verify: %s\n", err.msg);
            rc = 2;
            continue;
        }
        printf("%s: %s%s\n  head %s\n", a->ledgers[i],
               ch.status == TRIT_CHAIN_BROKEN ? "chain broken: " : "", ch.msg, ch.head);
        int r = ch.status == TRIT_CHAIN_BROKEN ? 1 : ch.status == TRIT_CHAIN_UNCHAINED ? 3 : 0;
        if (rc != 2 && (r == 1 || (r == 3 && rc == 0))) rc = r;
    }
    return rc;
}

/* `trit burnin verify --ledger F ...`: its options, then the chains. */
static int burnin_verify(int argc, char **argv) {
    burnin_verify_args a;
    int rc = parse_burnin_verify(argc, argv, &a);
    if (rc == 1)
        rc = 0; /* --help */
    else if (rc == 0)
        rc = run_burnin_verify(&a);
    free(a.ledgers);
    return rc;
}

enum { O_PPL = 512, O_CONFIG, O_ALLOW, O_LISTEN, O_KEYFILE, O_HOSTS, O_NOKEY };
static const struct option dash_options[] = {{"ledger", required_argument, 0, O_LEDGER},
                                             {"ppl", required_argument, 0, O_PPL},
                                             {"config", required_argument, 0, O_CONFIG},
                                             {"allow-unchained", no_argument, 0, O_ALLOW},
                                             {"listen", required_argument, 0, O_LISTEN},
                                             {"api-key-file", required_argument, 0, O_KEYFILE},
                                             {"host-allow", required_argument, 0, O_HOSTS},
                                             {"insecure-no-key", no_argument, 0, O_NOKEY},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};

/* What `burnin dashboard` asked for: the dashboard's options (ledgers: argv's strings in an
 * array owned here), the listen address, where the key comes from. */
typedef struct burnin_dash_args {
    trit_dash_opts o;
    const char **ledgers;
    const char *listen, *key_file;
    char host[64];
} burnin_dash_args;

/* One option into a (files are read by the gate, as `trit gate` reads them): 0, or 2. */
static int dash_option(int c, const char *v, burnin_dash_args *a) {
    switch (c) {
    case O_LEDGER:
        a->ledgers[a->o.n_ledgers++] = v;
        return 0;
    case O_PPL: /* read (and re-read) by the gate, like `trit gate --ppl` */
        a->o.ppl_path = v;
        return 0;
    case O_CONFIG:
        a->o.config = v;
        return 0;
    case O_ALLOW:
        a->o.allow_unchained = true;
        return 0;
    case O_LISTEN:
        a->listen = v;
        return 0;
    case O_KEYFILE:
        a->key_file = v;
        return 0;
    case O_HOSTS:
        a->o.host_allow = v;
        return 0;
    case O_NOKEY:
        a->o.insecure_no_key = true;
        return 0;
    }
    return 2;
}

/* --listen HOST:PORT into a->host and a->o.port: 0, or 2 (said). */
static int dash_listen(burnin_dash_args *a) {
    const char *colon = strrchr(a->listen, ':');
    long port;
    if (!colon || colon == a->listen || (size_t)(colon - a->listen) >= sizeof a->host ||
        trit_parse_long(colon + 1, 0, 65535, &port)) {
        cli_opt_bad("burnin dashboard", "listen", a->listen,
                    "must be HOST:PORT (e.g. 127.0.0.1:8095; port 0..65535)");
        return 2;
    }
    memcpy(a->host, a->listen, (size_t)(colon - a->listen));
    a->host[colon - a->listen] = 0;
    a->o.host = a->host;
    a->o.port = (int)port;
    return 0;
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error. */
static int parse_burnin_dash(int argc, char **argv, burnin_dash_args *a) {
    *a = (burnin_dash_args){.ledgers = xcalloc((size_t)argc + 1, sizeof(char *)),
                            .listen = "127.0.0.1:0"};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "h", dash_options)) != -1) {
        if (c == 'h') usage(stdout);
        if (c == 'h' || c == '?') return c == 'h' ? 1 : 2;
        if (dash_option(c, optarg, a)) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "trit burnin dashboard: unexpected argument '%s' (see --help)\n",
                argv[optind]);
        return 2;
    }
    if (a->o.n_ledgers == 0) a->ledgers[a->o.n_ledgers++] = "burnin.ledger.jsonl";
    a->o.ledgers = a->ledgers;
    return dash_listen(a);
}

/* The key (a file, or $TRIT_API_KEY), then the page until stopped: 0, 1 (cannot listen), 2
 * (an unreadable key, an open door without one). */
static int run_burnin_dash(burnin_dash_args *a) {
    trit_err err = {0};
    char *key = NULL;
    if (trit_api_key_load(a->key_file, "TRIT_API_KEY", &key, &err)) {
        fprintf(stderr, "trit burnin dashboard: %s\n", err.msg);
        return 2;
    }
    a->o.api_key = key;
    int rc = trit_dash_serve(&a->o, &err);
    if (rc) fprintf(stderr, "trit burnin dashboard: %s\n", err.msg);
    free(key);
    return rc ? (err.code == TRIT_EINVAL ? 2 : 1) : 0;
}

/* `trit burnin dashboard`: its options, then the page. */
static int burnin_dash(int argc, char **argv) {
    burnin_dash_args a;
    int rc = parse_burnin_dash(argc, argv, &a);
    if (rc == 1)
        rc = 0; /* --help */
    else if (rc == 0)
        rc = run_burnin_dash(&a);
    free(a.ledgers);
    return rc;
}

/* `trit burnin SUB ...`: the subcommand (cli_subcommand), which sees itself as
 * "trit burnin SUB" so that getopt_long's messages name it. */
int cmd_burnin(int argc, char **argv) {
    char prog[48];
    int rc;
    const char *sub = cli_subcommand(argc, argv, "burnin", usage, prog, sizeof prog, &rc);
    if (!sub) return rc; /* no subcommand, or --help */
    if (!strcmp(sub, "run")) return burnin_run(argc - 1, argv + 1);
    if (!strcmp(sub, "verify")) return burnin_verify(argc - 1, argv + 1);
    if (!strcmp(sub, "dashboard")) return burnin_dash(argc - 1, argv + 1);
    if (!strcmp(sub, "stats") || !strcmp(sub, "drift") || !strcmp(sub, "recent") ||
        !strcmp(sub, "since"))
        return burnin_report(sub, argc - 1, argv + 1);
    fprintf(stderr,
            "trit burnin: unknown subcommand '%s' (run, stats, drift, recent, since, verify, "
            "dashboard)\n",
            sub);
    return 2;
}
