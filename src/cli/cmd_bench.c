/* cli/cmd_bench.c — `trit bench MODEL`: prompt-processing (pp) and generation (tg) speed like
 * llama-bench: pp = one batched prefill of p tokens from an empty cache, tg = n single-token
 * decode steps from an empty cache; a warm-up run first, then -r repetitions, mean ± stdev. */
#include "cli/cli.h"
#include "engine/engine.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out, "usage: trit bench MODEL [-p 512] [-n 128] [-t THREADS] [-r 5] [--json]\n\n"
                 "  -p N       prompt tokens for the pp test (0 skips it)\n"
                 "  -n N       generated tokens for the tg test (0 skips it)\n"
                 "  -t N       threads (default: all CPUs)\n"
                 "  -r N       repetitions (default 5), after one warm-up run\n"
                 "  --json     one JSON object with every figure\n"
                 "exit codes: 0 ok, 1 failure, 2 bad arguments\n");
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

int cmd_bench(int argc, char **argv) {
    const char *path = NULL;
    long np = 512, ng = 128, threads = 0, reps = 5;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *dst = NULL, lo = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
            continue;
        } else if (!strcmp(a, "-p"))
            dst = &np;
        else if (!strcmp(a, "-n"))
            dst = &ng;
        else if (!strcmp(a, "-t"))
            dst = &threads, lo = 1;
        else if (!strcmp(a, "-r"))
            dst = &reps, lo = 1;
        else if (a[0] == '-') {
            fprintf(stderr, "trit bench: unknown option '%s' (see trit bench --help)\n", a);
            return 2;
        } else if (!path) {
            path = a;
            continue;
        } else {
            fprintf(stderr, "trit bench: unexpected argument '%s'\n", a);
            return 2;
        }
        if (!v || trit_parse_long(v, lo, 1 << 20, dst)) {
            fprintf(stderr, "trit bench: %s needs a number >= %ld\n", a, lo);
            return 2;
        }
        i++;
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
        if (ng > 0 && rc == 0) {
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
        const int nth = threads > 0 ? (int)threads : trit_cpu_count();
        if (json) {
            json_t *o = json_pack(
                "{s:s, s:s, s:f, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:i, s:i}", "model", path,
                "desc", desc.p, "size_mib", size_mib, "threads", nth, "n_prompt", (int)np, "n_gen",
                (int)ng, "reps", (int)reps, "pp_tps", ppm, "pp_sd", pps, "tg_tps", tgm, "tg_sd",
                tgs, "rss_kb", (int)rss, "peak_rss_kb", (int)hwm);
            char *s = json_dumps(o, JSON_COMPACT);
            puts(s);
            free(s);
            json_decref(o);
        } else {
            printf("model: %s (%s, %.2f MiB), threads %d, reps %ld\n", path, desc.p, size_mib, nth,
                   reps);
            printf("| test   |            t/s |\n|--------|----------------|\n");
            if (np > 0) printf("| pp%-4ld | %7.2f ± %5.2f |\n", np, ppm, pps);
            if (ng > 0) printf("| tg%-4ld | %7.2f ± %5.2f |\n", ng, tgm, tgs);
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
