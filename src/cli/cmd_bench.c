/* cli/cmd_bench.c — `trit bench MODEL`: prompt-processing (pp) and generation (tg) speed like
 * llama-bench: pp = one batched prefill of p tokens from an empty cache, tg = n single-token
 * decode steps from an empty cache; a warm-up run first, then -r repetitions, mean ± stdev.
 * --parallel N makes tg what llama-batched-bench calls S_TG: N sequences decoded together,
 * one trit_batch_eval step per token of each (what `trit serve` runs with N busy slots), and
 * reports the aggregate t/s of all N. */
#include "cli/cli.h"
#include "engine/engine.h"
#include "model/model.h"
#include "kernels/kernels.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: every option of bench_options, and the rule of the tg bound. */
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

/* A "Vm...:" field of /proc/self/status in kB, or -1. */
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

/* Mean and sample standard deviation of x[0..n). */
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

/* trit_batch_eval's callback: the entry's greedy next token. */
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

/* What the command line asked for. */
typedef struct bench_args {
    const char *path;
    long np, ng, threads, reps, npar; /* -p, -n, -t, -r, --parallel */
    int numerics;
    double bw_gbs; /* 0: measure */
    bool json, bound;
} bench_args;

enum { O_NUMERICS = 256, O_BW, O_NO_BOUND, O_JSON, O_PARALLEL };
static const struct option bench_options[] = {{"n-prompt", required_argument, 0, 'p'},
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

/* One option's value into a: 0, or -1 after saying why. */
static int bench_option(int c, const char *v, bench_args *a) {
    const char *flag = cli_opt_name(bench_options, c);
    switch (c) {
    case 'p':
        return cli_opt_long("bench", flag, v, 0, 1 << 20, &a->np);
    case 'n':
        return cli_opt_long("bench", flag, v, 0, 1 << 20, &a->ng);
    case 't':
        return cli_opt_long("bench", flag, v, 1, 1 << 20, &a->threads);
    case 'r':
        return cli_opt_long("bench", flag, v, 1, 1 << 20, &a->reps);
    case O_PARALLEL:
        return cli_opt_long("bench", flag, v, 1, 256, &a->npar);
    case O_BW:
        return cli_opt_double("bench", flag, v, 1e-6, 999999, &a->bw_gbs);
    case O_NUMERICS:
        a->numerics = trit_numerics_parse(v);
        return a->numerics < 0 ? cli_opt_bad("bench", flag, v, "must be exact or fast") : 0;
    case O_NO_BOUND:
        a->bound = false;
        return 0;
    case O_JSON:
        a->json = true;
        return 0;
    }
    return -1;
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (said on stderr). */
static int parse_bench(int argc, char **argv, bench_args *a) {
    *a = (bench_args){
        .np = 512, .ng = 128, .reps = 5, .npar = 1, .numerics = TRIT_NUMERICS_EXACT, .bound = true};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "p:n:t:r:h", bench_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?') { /* getopt_long printed what was wrong */
            fprintf(stderr, "(see trit bench --help)\n");
            return 2;
        }
        if (bench_option(c, optarg, a)) return 2;
    }
    if (optind < argc) a->path = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "trit bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!a->path) {
        fprintf(stderr, "trit bench: no MODEL given (see trit bench --help)\n");
        return 2;
    }
    return 0;
}

/* A benchmark in progress: the model, a context sized for the tests, the prompt tokens, and
 * the t/s of each repetition. */
typedef struct bench_state {
    const bench_args *a;
    trit_model *m;
    trit_ctx *c;
    int32_t *toks;
    double *pp, *tg;
} bench_state;

/* Model, context (n_ctx for the longer test, one batch for the whole prompt) and a fixed
 * pseudo-random prompt (toks[0] also seeds tg when -p 0). */
static int bench_setup(bench_state *s, trit_err *err) {
    const bench_args *a = s->a;
    if (!(s->m = trit_model_load(a->path, err))) return -1;
    trit_ctx_params cp = trit_ctx_default_params();
    cp.n_threads = (int)a->threads;
    cp.n_ctx = (int)TRIT_MAX(a->np, a->ng) + 1;
    cp.n_batch = (int)TRIT_MAX(a->np, 1);
    cp.numerics = a->numerics;
    if (!(s->c = trit_ctx_new(s->m, &cp, err))) return -1;
    const long n = TRIT_MAX(a->np, 1);
    s->toks = xmalloc((size_t)n * sizeof *s->toks);
    uint64_t r = 12345;
    for (long i = 0; i < n; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        s->toks[i] = (int32_t)((r >> 33) % (uint64_t)s->m->hp.n_vocab);
    }
    s->pp = xcalloc((size_t)a->reps, sizeof *s->pp);
    s->tg = xcalloc((size_t)a->reps, sizeof *s->tg);
    return 0;
}

/* tg with one sequence: ng greedy single-token steps from an empty cache; seconds or -1. */
static double tg_single(bench_state *s, trit_err *err) {
    const int n_vocab = s->m->hp.n_vocab;
    int32_t t = s->toks[0] % n_vocab;
    trit_kv_clear(s->c);
    double t0 = trit_now_s();
    for (long i = 0; i < s->a->ng; i++) {
        if (trit_eval(s->c, &t, 1, (int)i, false, err)) return -1;
        t = trit_argmax(trit_get_logits(s->c, -1), n_vocab);
    }
    return trit_now_s() - t0;
}

/* One warm-up run (rep -1, not recorded), then -r repetitions of pp and tg. */
static int bench_measure(bench_state *s, trit_err *err) {
    const bench_args *a = s->a;
    for (long rep = -1; rep < a->reps; rep++) {
        if (a->np > 0) {
            double t0 = trit_now_s();
            if (trit_eval(s->c, s->toks, (int)a->np, 0, false, err)) return -1;
            if (rep >= 0) s->pp[rep] = a->np / (trit_now_s() - t0);
        }
        if (a->ng == 0) continue;
        double dt = a->npar > 1
                        ? tg_parallel(s->c, s->m->hp.n_vocab, s->toks[0], a->ng, (int)a->npar, err)
                        : tg_single(s, err);
        if (dt < 0) return -1;
        if (rep >= 0 && dt > 0) s->tg[rep] = (double)a->ng * a->npar / dt;
    }
    return 0;
}

/* Everything the report prints, computed once for both formats. */
typedef struct bench_figures {
    double ppm, pps, tgm, tgs; /* mean and stdev t/s */
    double size_mib, bw_gbs, bpt, tg_bound, pct;
    long rss, hwm;
    int nth;
    const trit_kernels *k;
    char cpu[256];
    trit_buf desc;
} bench_figures;

/* The means, the memory, the bandwidth (measured after reading the RSS, which its buffer
 * would inflate) and the tg bound: npar streams read the weights once per step, so their
 * aggregate bound is npar times one stream's. */
static void bench_figures_get(const bench_state *s, bench_figures *f) {
    const bench_args *a = s->a;
    *f = (bench_figures){.bw_gbs = a->bw_gbs};
    stats(s->pp, (int)a->reps, &f->ppm, &f->pps);
    stats(s->tg, (int)a->reps, &f->tgm, &f->tgs);
    trit_model_describe(s->m, &f->desc);
    f->size_mib = gguf_file_size(trit_model_gguf(s->m)) / 1048576.0;
    f->rss = rss_kb("VmRSS"), f->hwm = rss_kb("VmHWM");
    if (a->bound && f->bw_gbs <= 0) {
        trit_pool *pool = trit_pool_new((int)a->threads);
        f->bw_gbs = trit_read_bandwidth(pool, TRIT_BW_BYTES, TRIT_BW_REPS) / 1e9;
        trit_pool_free(pool);
    }
    f->nth = a->threads > 0 ? (int)a->threads : trit_cpu_count();
    f->bpt = bytes_per_token(trit_model_gguf(s->m));
    f->tg_bound = a->bound && f->bpt > 0 ? a->npar * f->bw_gbs * 1e9 / f->bpt : 0;
    f->pct = f->tg_bound > 0 && a->ng > 0 ? 100.0 * f->tgm / f->tg_bound : 0;
    f->k = trit_kernels_for(trit_kernels_best(), a->numerics);
    cpu_name(f->cpu, sizeof f->cpu);
}

/* --json: one object with every figure. */
static void bench_print_json(const bench_args *a, const bench_figures *f) {
    json_t *o = json_pack(
        "{s:s, s:s, s:f, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:i, s:i, s:s, s:s, s:s, "
        "s:s, s:f}",
        "model", a->path, "desc", f->desc.p, "size_mib", f->size_mib, "threads", f->nth, "n_prompt",
        (int)a->np, "n_gen", (int)a->ng, "reps", (int)a->reps, "pp_tps", f->ppm, "pp_sd", f->pps,
        "tg_tps", f->tgm, "tg_sd", f->tgs, "rss_kb", (int)f->rss, "peak_rss_kb", (int)f->hwm,
        "numerics", trit_numerics_name(a->numerics), "kernels", f->k->name, "cpu", f->cpu, "tuning",
        trit_tuning_get()->row, "bytes_per_token", f->bpt);
    json_object_set_new(o, "parallel", json_integer(a->npar));
    if (f->tg_bound > 0) {
        json_object_set_new(o, "bw_gbs", json_real(f->bw_gbs));
        json_object_set_new(o, "tg_bound_tps", json_real(f->tg_bound));
        if (a->ng > 0) json_object_set_new(o, "tg_pct_bound", json_real(f->pct));
    }
    char *js = json_dumps(o, JSON_COMPACT);
    puts(js);
    free(js);
    json_decref(o);
}

/* The text report: a header, llama-bench's table (pp, tg with % of the bound), the bound and
 * the memory. */
static void bench_print_text(const bench_args *a, const bench_figures *f) {
    printf("model: %s (%s, %.2f MiB), threads %d, reps %ld\n", a->path, f->desc.p, f->size_mib,
           f->nth, a->reps);
    printf("cpu: %s, kernels %s (numerics %s), tuning %s\n", f->cpu, f->k->name,
           trit_numerics_name(a->numerics), trit_tuning_get()->row);
    printf("| test   |            t/s | %% bound |\n|--------|----------------|---------|\n");
    if (a->np > 0) printf("| pp%-4ld | %7.2f ± %5.2f |         |\n", a->np, f->ppm, f->pps);
    char tgname[32];
    if (a->npar > 1)
        snprintf(tgname, sizeof tgname, "tg%ldx%ld", a->ng, a->npar);
    else
        snprintf(tgname, sizeof tgname, "tg%ld", a->ng);
    if (a->ng > 0 && f->tg_bound > 0)
        printf("| %-6s | %7.2f ± %5.2f | %6.1f%% |\n", tgname, f->tgm, f->tgs, f->pct);
    else if (a->ng > 0)
        printf("| %-6s | %7.2f ± %5.2f |       - |\n", tgname, f->tgm, f->tgs);
    if (f->tg_bound > 0)
        printf("tg bound: %.2f GB/s read / %.1f MB per step x %ld streams = %.2f t/s\n", f->bw_gbs,
               f->bpt / 1e6, a->npar, f->tg_bound);
    printf("rss: %.1f MiB (peak %.1f MiB)\n", f->rss / 1024.0, f->hwm / 1024.0);
}

/* Everything bench_setup made (any part may be missing after a failure). */
static void bench_free(bench_state *s) {
    free(s->pp);
    free(s->tg);
    free(s->toks);
    trit_ctx_free(s->c);
    trit_model_free(s->m);
}

/* Set up, measure, report: 0, or 1 with the failure said on stderr. */
static int run_bench(const bench_args *a) {
    bench_state s = {.a = a};
    trit_err err = {0};
    int rc = bench_setup(&s, &err) || bench_measure(&s, &err) ? 1 : 0;
    if (rc) {
        fprintf(stderr, "trit bench: %s\n", err.msg);
    } else {
        bench_figures f;
        bench_figures_get(&s, &f);
        if (a->json)
            bench_print_json(a, &f);
        else
            bench_print_text(a, &f);
        trit_buf_free(&f.desc);
    }
    bench_free(&s);
    return rc;
}

/* `trit bench`: the command line into its options, then the run; the exit code (cli.h). */
int cmd_bench(int argc, char **argv) {
    bench_args a;
    int rc = parse_bench(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    return run_bench(&a);
}
