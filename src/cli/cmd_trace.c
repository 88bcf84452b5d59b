/* cli/cmd_trace.c — `trit trace capture` (per-point activation stats to a JSON file) and
 * `trit trace diff` (std ratios, NMSE, first point out of band; refuses mismatched counts). */
#include "cli/cli.h"
#include "parity/ladder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: both subcommands and every option of their tables. */
static void usage(FILE *f) {
    fprintf(
        f,
        "usage: trit trace capture SPEC (--prompt TEXT | --prompt-file F) -o FILE\n"
        "                          [--last-token] [--points a,b,...] [--values]\n"
        "                          [--threads N]\n"
        "       trit trace diff A.json B.json [--std-band LO,HI] [--nmse X] [--format text|json]\n"
        "\n"
        "capture: evaluates the prompt (tokenized with the backend's own vocabulary, BOS as the\n"
        "  vocabulary says) and records, per trace point (\"attn_norm-0\", \"Qcur-0\",\n"
        "  \"kqv_out-0\", \"ffn_out-0\", ...; a base name like Qcur selects every layer),\n"
        "  count, mean, std, min, max, NaN/Inf/zero counts and a hash, over every token\n"
        "  (default) or only the last (--last-token). --values also stores the values, so a\n"
        "  diff can compute NMSE.\n"
        "diff: refuses to compare points whose element counts differ (all-tokens vs\n"
        "  last-token sampling); otherwise prints per-point std ratios (B/A) and NMSE, and\n"
        "  the first point (by layer, then graph order) with a std ratio outside the band\n"
        "  (default 0.5,2.0), new NaN/Inf, or NMSE above the bound (default 1e-3, needs\n"
        "  --values in both).\n"
        "Exit: capture 0 ok, 2 error; diff 0 all within, 1 a point outside, 2 refused/error.\n");
}

/* What `trace capture` was asked for; prompt owned here. */
typedef struct capture_args {
    const char *spec, *out, *points;
    char *prompt;
    bool last, values;
    trit_backend_opts bo;
} capture_args;

/* The capture options into a: 0 to run, 1 after --help, 2 on a usage error. */
static int parse_capture_args(int argc, char **argv, capture_args *a) {
    enum { O_PROMPT = 256, O_PFILE, O_LAST, O_POINTS, O_VALUES, O_THREADS };
    static const struct option lo[] = {{"prompt", required_argument, 0, O_PROMPT},
                                       {"prompt-file", required_argument, 0, O_PFILE},
                                       {"last-token", no_argument, 0, O_LAST},
                                       {"points", required_argument, 0, O_POINTS},
                                       {"values", no_argument, 0, O_VALUES},
                                       {"threads", required_argument, 0, O_THREADS},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    trit_err err = {0};
    trit_buf b = {0};
    const char *path;
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "o:h", lo)) != -1) {
        switch (c) {
        case O_PROMPT:
            free(a->prompt);
            a->prompt = xstrdup(optarg);
            break;
        case O_PFILE:
            if (cli_opt_file("trace capture", "prompt-file", optarg, &path)) return 2;
            if (trit_read_file(path, &b, &err) != 0) {
                fprintf(stderr, "trit trace capture: %s\n", err.msg);
                return 2;
            }
            free(a->prompt);
            a->prompt = b.p;
            b = (trit_buf){0};
            break;
        case O_LAST:
            a->last = true;
            break;
        case O_POINTS:
            a->points = optarg;
            break;
        case O_VALUES:
            a->values = true;
            break;
        case O_THREADS:
            if (cli_opt_int("trace capture", "threads", optarg, 1, 1024, &a->bo.n_threads))
                return 2;
            break;
        case 'o':
            a->out = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2; /* getopt named the bad option */
        }
    }
    if (optind < argc) a->spec = argv[optind++];
    if (!a->spec || optind < argc || !a->prompt || !a->out) {
        fprintf(stderr, "trit trace capture: needs SPEC, --prompt and -o FILE\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* "a,b,c" -> names pointing into *copy (both freed by the caller) */
static void split_points(const char *points, char **copy, const char ***names, size_t *n) {
    *copy = points ? xstrdup(points) : NULL;
    *names = NULL;
    *n = 0;
    char *save = NULL;
    for (char *t = *copy ? strtok_r(*copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
        *names = xrealloc(*names, (*n + 1) * sizeof **names);
        (*names)[(*n)++] = t;
    }
}

/* Open the backend, tokenize, trace, write the JSON file. */
static int run_capture(const capture_args *a) {
    char *pts_copy;
    const char **names;
    size_t n_names, n = 0, ns = 0;
    split_points(a->points, &pts_copy, &names, &n_names);
    trit_err err = {0};
    int32_t *ids = NULL;
    trit_trace_stat *st = NULL;
    int rc = 2;
    trit_backend *b = trit_backend_open(a->spec, &a->bo, &err);
    if (b) trit_backend_trace_keep_data(b, a->values);
    bool traced = b && trit_backend_tokenize(b, a->prompt, true, true, &ids, &n, &err) == 0 &&
                  trit_backend_trace(b, ids, n, names, n_names, a->last, &st, &ns, &err) == 0;
    if (!traced) {
        fprintf(stderr, "trit trace capture: %s\n", err.msg);
    } else if (ns == 0) {
        fprintf(stderr, "trit trace capture: no trace point matched%s%s\n",
                a->points ? " --points " : "", a->points ? a->points : "");
    } else {
        json_t *j =
            trit_trace_to_json(trit_backend_describe(b), a->prompt, n, a->last, st, ns, a->values);
        char *s = json_dumps(j, JSON_INDENT(1));
        if (trit_write_file_atomic(a->out, s, strlen(s), &err) != 0) {
            fprintf(stderr, "trit trace capture: %s\n", err.msg);
        } else {
            printf("trit trace: %zu points, %zu tokens, %s sampling -> %s\n", ns, n,
                   a->last ? "last-token" : "all-tokens", a->out);
            rc = 0;
        }
        free(s);
        json_decref(j);
    }
    trit_trace_stats_free(st, ns);
    free(ids);
    trit_backend_close(b);
    free(names);
    free(pts_copy);
    return rc;
}

/* `trit trace capture`: parse, then run; --help exits 0. */
static int capture(int argc, char **argv) {
    capture_args a = {.bo = trit_backend_default_opts()};
    int rc = parse_capture_args(argc, argv, &a);
    if (rc == 0) rc = run_capture(&a);
    if (rc == 1) rc = 0; /* --help */
    free(a.prompt);
    return rc;
}

/* --std-band LO,HI with 0 < LO < HI: 0, or -1 after saying why. */
static int parse_band(const char *v, trit_trace_diff_opts *o) {
    char *end;
    const double lo = strtod(v, &end);
    const bool comma = *end == ',';
    const double hi = comma ? strtod(end + 1, &end) : 0;
    if (!comma || *end || !(lo > 0) || !(hi > lo))
        return cli_opt_bad("trace diff", "std-band", v, "must be LO,HI with 0 < LO < HI");
    o->std_lo = lo;
    o->std_hi = hi;
    return 0;
}

/* The diff options into o (json: --format json): 0 to run, 1 after --help, 2 usage error. */
static int parse_diff_args(int argc, char **argv, trit_trace_diff_opts *o, bool *json) {
    enum { O_BAND = 256, O_NMSE, O_FORMAT };
    static const struct option lo[] = {{"std-band", required_argument, 0, O_BAND},
                                       {"nmse", required_argument, 0, O_NMSE},
                                       {"format", required_argument, 0, O_FORMAT},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    static const char *const formats[] = {"text", "json"};
    int c, format;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "h", lo)) != -1) {
        switch (c) {
        case O_BAND:
            if (parse_band(optarg, o)) return 2;
            break;
        case O_NMSE:
            if (cli_opt_double("trace diff", "nmse", optarg, 0, INFINITY, &o->nmse)) return 2;
            break;
        case O_FORMAT:
            if (cli_opt_choice("trace diff", "format", optarg, formats, 2, &format)) return 2;
            *json = format == 1;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2; /* getopt named the bad option */
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "trit trace diff: needs two trace files\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* --format json: the options, the first point outside and every point's figures. */
static void print_diff_json(const trit_trace_file *A, const trit_trace_file *B,
                            const trit_trace_diff_opts *o, const trit_trace_diff *d) {
    json_t *pts = json_array();
    for (size_t i = 0; i < d->n; i++) {
        const trit_trace_diff_point *p = &d->pts[i];
        json_array_append_new(
            pts, json_pack("{s:s, s:i, s:b, s:b, s:f, s:f, s:o, s:o, s:b, s:i}", "name", p->name,
                           "layer", p->layer, "only_a", p->only_a, "only_b", p->only_b, "std_a",
                           p->std_a, "std_b", p->std_b, "std_ratio",
                           isfinite(p->std_ratio) ? json_real(p->std_ratio) : json_null(), "nmse",
                           isnan(p->nmse) ? json_null() : json_real(p->nmse), "outside", p->outside,
                           "first_pos", p->first_pos));
    }
    json_t *j = json_pack("{s:s, s:s, s:f, s:f, s:f, s:I, s:o, s:o}", "a", A->backend, "b",
                          B->backend, "std_lo", o->std_lo, "std_hi", o->std_hi, "nmse", o->nmse,
                          "common", (json_int_t)d->n_common, "first_outside",
                          d->first_bad >= 0 ? json_string(d->pts[d->first_bad].name) : json_null(),
                          "points", pts);
    json_dumpf(j, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(j);
}

/* The text table: one line per point, then OK or the first point outside the band. */
static void print_diff_text(const trit_trace_file *A, const trit_trace_file *B,
                            const trit_trace_diff_opts *o, const trit_trace_diff *d) {
    printf("trace diff: A %s | B %s | %s sampling | band [%g, %g] nmse <= %g\n", A->backend,
           B->backend, A->last_token ? "last-token" : "all-tokens", o->std_lo, o->std_hi, o->nmse);
    printf("  %-22s %5s %12s %12s %9s %10s\n", "point", "layer", "std A", "std B", "ratio", "nmse");
    for (size_t i = 0; i < d->n; i++) {
        const trit_trace_diff_point *p = &d->pts[i];
        /* a point on one side only has nothing to compare */
        if (p->only_a || p->only_b) {
            printf("  %-22s %5d %s\n", p->name, p->layer,
                   p->only_a ? "(only in A)" : "(only in B)");
            continue;
        }
        char nm[32] = "-";
        if (!isnan(p->nmse)) snprintf(nm, sizeof nm, "%.3g", p->nmse);
        printf("  %-22s %5d %12.6g %12.6g %9.4f %10s%s\n", p->name, p->layer, p->std_a, p->std_b,
               p->std_ratio, nm, p->outside ? "  <-- outside" : "");
    }
    if (d->first_bad < 0) {
        printf("OK: %zu common points within the band\n", d->n_common);
        return;
    }
    const trit_trace_diff_point *p = &d->pts[d->first_bad];
    printf("FIRST OUTSIDE: %s (layer %d): std ratio %.4g", p->name, p->layer, p->std_ratio);
    if (!isnan(p->nmse)) printf(", nmse %.3g", p->nmse);
    if (p->first_pos >= 0) printf(", first at position %d", p->first_pos);
    printf("\n");
}

/* Compare two captures: refused when they sampled differently or share no point. */
static int diff_files(const trit_trace_file *A, const trit_trace_file *B,
                      const trit_trace_diff_opts *o, bool json) {
    if (A->last_token != B->last_token) {
        fprintf(stderr,
                "trit trace diff: refusing to compare: A was sampled %s and B %s; their stats "
                "cover different elements (capture both the same way)\n",
                A->last_token ? "last-token" : "all-tokens",
                B->last_token ? "last-token" : "all-tokens");
        return 2;
    }
    trit_trace_diff d;
    trit_err err = {0};
    if (trit_trace_diff_run(A->stats, A->n, B->stats, B->n, o, &d, &err) != 0) {
        fprintf(stderr, "trit trace diff: %s\n", err.msg);
        return 2;
    }
    if (A->prompt_sha256[0] && B->prompt_sha256[0] && strcmp(A->prompt_sha256, B->prompt_sha256))
        fprintf(stderr, "trit trace diff: warning: the two captures used different prompts\n");
    if (json)
        print_diff_json(A, B, o, &d);
    else
        print_diff_text(A, B, o, &d);
    int rc = d.first_bad >= 0 ? 1 : 0;
    trit_trace_diff_free(&d);
    return rc;
}

/* `trit trace diff A B`: parse, load both captures, compare. */
static int diff(int argc, char **argv) {
    trit_trace_diff_opts o = {.std_lo = 0.5, .std_hi = 2.0, .nmse = 1e-3};
    bool json = false;
    int rc = parse_diff_args(argc, argv, &o, &json);
    if (rc) return rc == 1 ? 0 : 2;
    trit_trace_file A, B;
    trit_err err = {0};
    if (trit_trace_load(argv[optind], &A, &err) != 0) {
        fprintf(stderr, "trit trace diff: %s\n", err.msg);
        return 2;
    }
    if (trit_trace_load(argv[optind + 1], &B, &err) != 0) {
        fprintf(stderr, "trit trace diff: %s\n", err.msg);
        trit_trace_file_free(&A);
        return 2;
    }
    rc = diff_files(&A, &B, &o, json);
    trit_trace_file_free(&A);
    trit_trace_file_free(&B);
    return rc;
}

/* `trit trace SUB`: dispatch to capture or diff; the exit code (cli.h). */
int cmd_trace(int argc, char **argv) {
    /* the subcommand sees itself as "trit trace SUB" (getopt_long's messages name it) */
    char prog[40];
    int rc;
    const char *sub = cli_subcommand(argc, argv, "trace", usage, prog, sizeof prog, &rc);
    if (!sub) return rc; /* no subcommand, or --help */
    if (!strcmp(sub, "capture")) return capture(argc - 1, argv + 1);
    if (!strcmp(sub, "diff")) return diff(argc - 1, argv + 1);
    fprintf(stderr, "trit trace: unknown subcommand '%s' (capture, diff)\n", sub);
    return 2;
}
