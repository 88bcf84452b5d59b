/* cli/cmd_bench.c — `trit bench MODEL`: prompt-processing (pp) and generation (tg) speed like
 * llama-bench: pp = one batched prefill of p tokens from an empty cache, tg = n single-token
 * decode steps from an empty cache; a warm-up run first, then -r repetitions, mean ± stdev.
 * --parallel N makes tg what llama-batched-bench calls S_TG: N sequences decoded together,
 * one trit_batch_eval step per token of each (what `trit serve` runs with N busy slots), and
 * reports the aggregate t/s of all N. */
#include "cli/cli.h"
#include "engine/engine.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: trit bench MODEL [-p 512] [-n 128] [-t THREADS] [-r 5] [--numerics exact|fast]\n"
        "                  [--parallel N] [--bw-gbs X | --no-bound] [--json]\n\n"
        "  -p, --n-prompt N   prompt tokens for the pp test (0 skips it)\n"
        "  -n, --n-gen N      generated tokens for the tg test (0 skips it)\n"
        "  -t, --threads N    threads (default: all CPUs)\n"
        "  -r, --reps N       repetitions (default 5), after one warm-up run\n"
        "  --numerics MODE    exact (default: bit-identical to llama.cpp) or fast\n"
        "  --parallel N       tg decodes N sequences together, one batched step per token\n"
        "                     (trit serve with N busy slots); t/s is the aggregate of all N\n"
        "  --bw-gbs X         streaming-read bandwidth in GB/s for the tg bound (default:\n"
        "                     measured at start, best of 5 reads of 1 GiB with the threads)\n"
        "  --no-bound         skip the bandwidth measurement and the %% of bound\n"
        "  --json             one JSON object with every figure\n"
        "The tg bound is the bandwidth divided by the weight bytes read per token (every\n"
        "tensor, except token_embd when a separate output.weight exists: one embedding row\n"
        "is read), bench/engine-vs-llama's rule.\n"
        "exit codes: 0 ok, 1 failure, 2 bad arguments\n");
}

/* Weight bytes read per generated token (bench/engine-vs-llama's rule, see usage). */
static double bytes_per_token(const gguf_file *g) {
    const bool has_output = gguf_find_tensor(g, "output.weight") != NULL;
    double sum = 0;
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        if (has_output && !strcmp(t->cname, "token_embd.weight")) continue;
        sum += (double)t->nbytes;
    }
    return sum;
}

/* The CPU's marketing name from /proc/cpuinfo ("?" where there is none), into out. */
static void cpu_name(char *out, size_t cap) {
    snprintf(out, cap, "?");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *c = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        snprintf(out, cap, "%.*s", (int)strcspn(c, "\n"), c);
        break;
    }
    fclose(f);
}

static long rss_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static void stats(const double *x, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* Greedy next token of each entry (the batched tg's logits callback). */
typedef struct par_state {
    int32_t *next;
    int n_vocab;
} par_state;

static void par_logits(void *ud, int entry, int tok, const float *logits) {
    par_state *st = ud;
    (void)tok;
    st->next[entry] = trit_argmax(logits, st->n_vocab);
}

/* tg with npar sequences decoded together: ng steps of one trit_batch_eval over all of them,
 * each sequence starting from its own token (first + i) from an empty cache. Returns the
 * seconds taken, or -1 with err set. */
static double tg_parallel(trit_ctx *c, int n_vocab, int32_t first, long ng, int npar,
                          trit_err *err) {
    trit_seq **seq = xcalloc((size_t)npar, sizeof *seq);
    int32_t *cur = xcalloc((size_t)npar, sizeof *cur);
    trit_batch_entry *e = xcalloc((size_t)npar, sizeof *e);
    par_state st = {.next = xcalloc((size_t)npar, sizeof *st.next), .n_vocab = n_vocab};
    for (int i = 0; i < npar; i++) {
        seq[i] = trit_seq_new(c);
        cur[i] = (int32_t)((first + i) % n_vocab);
    }
    double t0 = trit_now_s(), dt = -1;
    long step = 0;
    for (; step < ng; step++) {
        for (int i = 0; i < npar; i++)
            e[i] = (trit_batch_entry){.seq = seq[i],
                                      .tokens = &cur[i],
                                      .n_tokens = 1,
                                      .pos = (int)step,
                                      .out = TRIT_OUT_LAST};
        if (trit_batch_eval(c, e, npar, par_logits, &st, err)) break;
        memcpy(cur, st.next, (size_t)npar * sizeof *cur);
    }
    if (step == ng) dt = trit_now_s() - t0;
    for (int i = 0; i < npar; i++) trit_seq_free(seq[i]);
    free(seq), free(cur), free(e), free(st.next);
    return dt;
}

int cmd_bench(int argc, char **argv) {
    const char *path = NULL;
    long np = 512, ng = 128, threads = 0, reps = 5, npar = 1;
    int numerics = TRIT_NUMERICS_EXACT;
    double bw_gbs = 0; /* 0: measure */
    bool json = false, bound = true;
    enum { O_NUMERICS = 256, O_BW, O_NO_BOUND, O_JSON, O_PARALLEL };
    static const struct option lo[] = {{"n-prompt", required_argument, 0, 'p'},
                                       {"n-gen", required_argument, 0, 'n'},
                                       {"threads", required_argument, 0, 't'},
                                       {"reps", required_argument, 0, 'r'},
                                       {"numerics", required_argument, 0, O_NUMERICS},
                                       {"parallel", required_argument, 0, O_PARALLEL},
                                       {"bw-gbs", required_argument, 0, O_BW},
                                       {"no-bound", no_argument, 0, O_NO_BOUND},
                                       {"json", no_argument, 0, O_JSON},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "p:n:t:r:h", lo, NULL)) != -1) {
        long *dst = NULL, lo_ = 0;
        switch (opt) {
        case 'p':
            dst = &np;
            break;
        case 'n':
            dst = &ng;
            break;
        case 't':
            dst = &threads, lo_ = 1;
            break;
        case 'r':
            dst = &reps, lo_ = 1;
            break;
        case O_PARALLEL:
            dst = &npar, lo_ = 1;
            break;
        case O_NUMERICS:
            numerics = trit_numerics_parse(optarg);
            if (numerics < 0) {
                fprintf(stderr, "trit bench: --numerics must be exact or fast, not '%s'\n", optarg);
                return 2;
            }
            continue;
        case O_BW: {
            char *end = NULL;
            bw_gbs = strtod(optarg, &end);
            if (end == optarg || *end || !(bw_gbs > 0 && bw_gbs < 1e6)) {
                fprintf(stderr, "trit bench: --bw-gbs needs a positive number of GB/s, not '%s'\n",
                        optarg);
                return 2;
            }
            continue;
        }
        case O_NO_BOUND:
            bound = false;
            continue;
        case O_JSON:
            json = true;
            continue;
        case 'h':
            usage(stdout);
            return 0;
        default: /* getopt_long printed what was wrong */
            fprintf(stderr, "(see trit bench --help)\n");
            return 2;
        }
        if (trit_parse_long(optarg, lo_, opt == O_PARALLEL ? 256 : 1 << 20, dst)) {
            if (opt == O_PARALLEL)
                fprintf(stderr, "trit bench: --parallel needs a number in 1..256, not '%s'\n",
                        optarg);
            else
                fprintf(stderr, "trit bench: -%c needs a number >= %ld, not '%s'\n", opt, lo_,
                        optarg);
            return 2;
        }
    }
    if (optind < argc) path = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "trit bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!path) {
        fprintf(stderr, "trit bench: no MODEL given (see trit bench --help)\n");
        return 2;
    }
    trit_err err = {0};
    trit_model *m = trit_model_load(path, &err);
    if (!m) {
        fprintf(stderr, "trit bench: %s\n", err.msg);
        return 1;
    }
    trit_ctx_params cp = trit_ctx_default_params();
    cp.n_threads = (int)threads;
    cp.n_ctx = (int)TRIT_MAX(np, ng) + 1;
    cp.n_batch = (int)TRIT_MAX(np, 1);
    cp.numerics = numerics;
    trit_ctx *c = trit_ctx_new(m, &cp, &err);
    if (!c) {
        fprintf(stderr, "trit bench: %s\n", err.msg);
        trit_model_free(m);
        return 1;
    }
    int32_t *toks = xmalloc((size_t)TRIT_MAX(np, 1) * sizeof *toks);
    uint64_t r = 12345;
    for (long i = 0; i < TRIT_MAX(np, 1); i++) { /* toks[0] also seeds tg when -p 0 */
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((r >> 33) % (uint64_t)m->hp.n_vocab);
    }
    double *pp = xcalloc((size_t)reps, sizeof *pp), *tg = xcalloc((size_t)reps, sizeof *tg);
    int rc = 0;
    for (long rep = -1; rep < reps && rc == 0; rep++) { /* rep -1: warm-up */
        if (np > 0) {
            double t0 = trit_now_s();
            if (trit_eval(c, toks, (int)np, 0, false, &err)) rc = 1;
            double dt = trit_now_s() - t0;
            if (rep >= 0) pp[rep] = np / dt;
        }
        if (ng > 0 && rc == 0 && npar > 1) {
            double dt = tg_parallel(c, m->hp.n_vocab, toks[0], ng, (int)npar, &err);
            if (dt < 0) rc = 1;
            if (rep >= 0 && dt > 0) tg[rep] = (double)ng * npar / dt;
        } else if (ng > 0 && rc == 0) {
            int32_t t = toks[0] % m->hp.n_vocab;
            trit_kv_clear(c);
            double t0 = trit_now_s();
            for (long i = 0; i < ng && rc == 0; i++) {
                if (trit_eval(c, &t, 1, (int)i, false, &err)) {
                    rc = 1;
                    break;
                }
                t = trit_argmax(trit_get_logits(c, -1), m->hp.n_vocab);
            }
            double dt = trit_now_s() - t0;
            if (rep >= 0) tg[rep] = ng / dt;
        }
    }
    if (rc) {
        fprintf(stderr, "trit bench: %s\n", err.msg);
    } else {
        double ppm, pps, tgm, tgs;
        stats(pp, (int)reps, &ppm, &pps);
        stats(tg, (int)reps, &tgm, &tgs);
        trit_buf desc = {0};
        trit_model_describe(m, &desc);
        const double size_mib = gguf_file_size(m->gguf) / 1048576.0;
        const long rss = rss_kb("VmRSS"), hwm = rss_kb("VmHWM");
        if (bound && bw_gbs <= 0) { /* after reading the RSS, which its buffer would inflate */
            trit_pool *pool = trit_pool_new((int)threads);
            bw_gbs = trit_read_bandwidth(pool, TRIT_BW_BYTES, TRIT_BW_REPS) / 1e9;
            trit_pool_free(pool);
        }
        const int nth = threads > 0 ? (int)threads : trit_cpu_count();
        const double bpt = bytes_per_token(m->gguf);
        /* npar streams read the weights once per step: their aggregate bound is npar times */
        const double tg_bound = bound && bpt > 0 ? npar * bw_gbs * 1e9 / bpt : 0;
        const double pct = tg_bound > 0 && ng > 0 ? 100.0 * tgm / tg_bound : 0;
        const trit_kernels *k = trit_kernels_for(trit_kernels_best(), numerics);
        char cpu[256];
        cpu_name(cpu, sizeof cpu);
        if (json) {
            json_t *o = json_pack(
                "{s:s, s:s, s:f, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:i, s:i, s:s, s:s, s:s, "
                "s:s, s:f}",
                "model", path, "desc", desc.p, "size_mib", size_mib, "threads", nth, "n_prompt",
                (int)np, "n_gen", (int)ng, "reps", (int)reps, "pp_tps", ppm, "pp_sd", pps, "tg_tps",
                tgm, "tg_sd", tgs, "rss_kb", (int)rss, "peak_rss_kb", (int)hwm, "numerics",
                trit_numerics_name(numerics), "kernels", k->name, "cpu", cpu, "tuning",
                trit_tuning_get()->row, "bytes_per_token", bpt);
            json_object_set_new(o, "parallel", json_integer(npar));
            if (tg_bound > 0) {
                json_object_set_new(o, "bw_gbs", json_real(bw_gbs));
                json_object_set_new(o, "tg_bound_tps", json_real(tg_bound));
                if (ng > 0) json_object_set_new(o, "tg_pct_bound", json_real(pct));
            }
            char *s = json_dumps(o, JSON_COMPACT);
            puts(s);
            free(s);
            json_decref(o);
        } else {
            printf("model: %s (%s, %.2f MiB), threads %d, reps %ld\n", path, desc.p, size_mib, nth,
                   reps);
            printf("cpu: %s, kernels %s (numerics %s), tuning %s\n", cpu, k->name,
                   trit_numerics_name(numerics), trit_tuning_get()->row);
            printf(
                "| test   |            t/s | %% bound |\n|--------|----------------|---------|\n");
            if (np > 0) printf("| pp%-4ld | %7.2f ± %5.2f |         |\n", np, ppm, pps);
            char tgname[32];
            if (npar > 1)
                snprintf(tgname, sizeof tgname, "tg%ldx%ld", ng, npar);
            else
                snprintf(tgname, sizeof tgname, "tg%ld", ng);
            if (ng > 0 && tg_bound > 0)
                printf("| %-6s | %7.2f ± %5.2f | %6.1f%% |\n", tgname, tgm, tgs, pct);
            else if (ng > 0)
                printf("| %-6s | %7.2f ± %5.2f |       - |\n", tgname, tgm, tgs);
            if (tg_bound > 0)
                printf("tg bound: %.2f GB/s read / %.1f MB per step x %ld streams = %.2f t/s\n",
                       bw_gbs, bpt / 1e6, npar, tg_bound);
            printf("rss: %.1f MiB (peak %.1f MiB)\n", rss / 1024.0, hwm / 1024.0);
        }
        trit_buf_free(&desc);
    }
    free(pp);
    free(tg);
    free(toks);
    trit_ctx_free(c);
    trit_model_free(m);
    return rc;
}
