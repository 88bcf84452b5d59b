/* cli/cmd_ladder.c — `trit ladder`: the logit parity ladder between two backends. */
#include "cli/cli.h"
#include "parity/ladder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: every option of ladder_options, the rungs and the exit codes. */
static void usage(FILE *f) {
    fprintf(
        f,
        "usage: trit ladder --ref SPEC --cand SPEC (--prompt TEXT | --prompts FILE) [options]\n"
        "       trit ladder --determinism --ref SPEC (--prompt TEXT | --prompts FILE)\n"
        "\n"
        "Rungs: 0 preflight (engine, build, model sha256 and size of each side), 1 tokens,\n"
        "2 shapes (n_vocab, n_ctx), 3 first-position logits, 4 every prompt position,\n"
        "5 greedy decode. Stops at the first failing rung unless --all. Over http (either side)\n"
        "rungs 3-4 compare the top-N log-probabilities of every prompt prefix on both sides.\n"
        "SPEC: trit:MODEL[?threads=N&ctx=N&rope=norm|neox&act=silu|relu2] | llama:MODEL[?...]\n"
        "      | http:URL[?model=ID&key=KEY]\n"
        "\n"
        "  --ref SPEC, --cand SPEC   the two backends (reference, candidate)\n"
        "  --prompt TEXT             one prompt (repeatable)\n"
        "  --prompts FILE            one prompt per line, or JSONL with a \"prompt\" field\n"
        "  --max-tokens M            greedy decode steps in rung 5, >= 1 (default 16)\n"
        "  --logits auto|full|topn   rungs 3-4 on full logit rows (both sides in-process) or\n"
        "                            top-N log-probabilities (default auto: topn when a side\n"
        "                            is http)\n"
        "  --top-n N                 N for top-N data, 5..20 (default 20; a server may clamp)\n"
        "  --template raw|chat       raw text, or each backend's chat template (default raw)\n"
        "  --all                     run every rung even after a failure\n"
        "  --other-models            the two sides load different model files on purpose (one\n"
        "                            model in two layouts): rung 0 then passes on two known\n"
        "                            sha256 instead of failing\n"
        "  --bisect                  on a logit/decode failure: shortest failing prefix, then\n"
        "                            traces on both sides name the first diverging\n"
        "                            (position, layer, point). Over http the prefix comes from\n"
        "                            the per-prefix scores and the trace is reported\n"
        "                            unavailable (no server gives traces); the exit status\n"
        "                            stays the ladder's\n"
        "  --determinism             the --ref backend twice: identical logits?\n"
        "  --thresholds k=v,...      override: first_mse first_maxabs pos_mse pos_kl pos_top5\n"
        "                            pos_maxabs tie_eps trace_nmse topn_kl topn_first_maxabs\n"
        "                            topn_maxabs topn_top5 topn_cover\n"
        "  --threads N               threads for both backends (default: $TRIT_THREADS or all)\n"
        "  --format text|json        report on stdout (default text)\n"
        "  -o FILE                   write the JSON receipt to FILE\n"
        "Exit: 0 pass (every rung ran and passed), 1 divergence, 2 setup failure (a side did\n"
        "not load, answered short or malformed log-probabilities or another vocabulary, or a\n"
        "request failed or timed out) or usage error, 3 incomplete (a rung was SKIPPED, e.g. a\n"
        "side does not report its model sha256 or n_vocab: never a pass).\n");
}

/* --prompts FILE: one prompt a line, or JSONL lines with a "prompt" string; appended to
 * *out. 0, or -1 with err set (an unreadable file, a JSON line without one, no prompts). */
static int load_prompts(const char *path, char ***out, size_t *n, trit_err *err) {
    trit_buf b = {0};
    if (trit_read_file(path, &b, err) != 0) return -1;
    char *save = NULL;
    for (char *line = strtok_r(b.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (!len) continue;
        char *p = NULL;
        if (line[0] == '{') {
            json_error_t je;
            json_t *j = json_loads(line, 0, &je);
            const char *s = j ? json_string_value(json_object_get(j, "prompt")) : NULL;
            if (!s) {
                json_decref(j);
                trit_buf_free(&b);
                return trit_fail(err, TRIT_EFORMAT, "%s: a JSON line without a \"prompt\" string",
                                 path);
            }
            p = xstrdup(s);
            json_decref(j);
        } else {
            p = xstrdup(line);
        }
        *out = xrealloc(*out, (*n + 1) * sizeof **out);
        (*out)[(*n)++] = p;
    }
    trit_buf_free(&b);
    if (*n == 0) return trit_fail(err, TRIT_EINVAL, "%s: no prompts", path);
    return 0;
}

/* What the command line asked for; prompts are owned here. */
typedef struct ladder_args {
    trit_ladder_opts o;
    char **prompts;
    size_t n_prompts;
    const char *out_path;
    bool determinism;
} ladder_args;

enum {
    O_REF = 256,
    O_CAND,
    O_PROMPT,
    O_PROMPTS,
    O_MAX,
    O_TMPL,
    O_ALL,
    O_BISECT,
    O_DET,
    O_TH,
    O_THREADS,
    O_FORMAT,
    O_LOGITS,
    O_TOPN,
    O_OTHER
};
static const struct option ladder_options[] = {{"ref", required_argument, 0, O_REF},
                                               {"cand", required_argument, 0, O_CAND},
                                               {"prompt", required_argument, 0, O_PROMPT},
                                               {"prompts", required_argument, 0, O_PROMPTS},
                                               {"max-tokens", required_argument, 0, O_MAX},
                                               {"template", required_argument, 0, O_TMPL},
                                               {"all", no_argument, 0, O_ALL},
                                               {"bisect", no_argument, 0, O_BISECT},
                                               {"determinism", no_argument, 0, O_DET},
                                               {"thresholds", required_argument, 0, O_TH},
                                               {"threads", required_argument, 0, O_THREADS},
                                               {"format", required_argument, 0, O_FORMAT},
                                               {"logits", required_argument, 0, O_LOGITS},
                                               {"top-n", required_argument, 0, O_TOPN},
                                               {"other-models", no_argument, 0, O_OTHER},
                                               {"help", no_argument, 0, 'h'},
                                               {0, 0, 0, 0}};

/* The options taken as given, the flags, and the ones read at once (--prompts, whose file
 * is loaded now; --thresholds, parsed by the ladder): 0, or 2 (said on stderr). */
static int ladder_text_option(int c, const char *v, ladder_args *a) {
    trit_err err = {0};
    switch (c) {
    case O_REF:
        a->o.gen1_spec = v;
        return 0;
    case O_CAND:
        a->o.gen2_spec = v;
        return 0;
    case O_PROMPT:
        a->prompts = xrealloc(a->prompts, (a->n_prompts + 1) * sizeof *a->prompts);
        a->prompts[a->n_prompts++] = xstrdup(v);
        return 0;
    case O_PROMPTS:
        if (load_prompts(v, &a->prompts, &a->n_prompts, &err) == 0) return 0;
        fprintf(stderr, "trit ladder: %s\n", err.msg);
        return 2;
    case O_TH:
        if (trit_ladder_thresholds_parse(v, &a->o.th, &err) == 0) return 0;
        fprintf(stderr, "trit ladder: --thresholds: %s\n", err.msg);
        return 2;
    case O_ALL:
        a->o.all = true;
        return 0;
    case O_BISECT:
        a->o.bisect = true;
        return 0;
    case O_OTHER:
        a->o.other_models = true;
        return 0;
    case O_DET:
        a->determinism = true;
        return 0;
    case 'o':
        a->out_path = v;
        return 0;
    }
    return 2;
}

/* --max-tokens: the shared message, then the ladder's own line (scripts and tests match
 * "--max-tokens M: expected 1..100000") saying why 0 is refused. */
static int max_tokens_option(const char *v, int *out) {
    if (cli_opt_int("ladder", "max-tokens", v, 1, 100000, out) == 0) return 0;
    fprintf(stderr,
            "trit ladder: --max-tokens %s: expected 1..100000 (the decode rung must compare at "
            "least one token)\n",
            v);
    return 2;
}

/* One option into a; 0 ok, 2 a bad value (said on stderr). */
static int ladder_option(int c, const char *v, ladder_args *a) {
    static const char *const logits[] = {"auto", "full", "topn"}; /* trit_ladder_logits order */
    static const char *const templates[] = {"raw", "chat"}, *const formats[] = {"text", "json"};
    const char *flag = cli_opt_name(ladder_options, c);
    int i = 0;
    switch (c) {
    case O_MAX:
        return max_tokens_option(v, &a->o.max_tokens);
    case O_TOPN:
        return cli_opt_int("ladder", flag, v, 5, TRIT_BACKEND_TOPN_MAX, &a->o.top_n) ? 2 : 0;
    case O_THREADS:
        return cli_opt_int("ladder", flag, v, 1, 1024, &a->o.bopts.n_threads) ? 2 : 0;
    case O_LOGITS:
        if (cli_opt_choice("ladder", flag, v, logits, 3, &i)) return 2;
        a->o.logits = i;
        return 0;
    case O_TMPL:
        if (cli_opt_choice("ladder", flag, v, templates, 2, &i)) return 2;
        a->o.chat_template = i == 1;
        return 0;
    case O_FORMAT:
        if (cli_opt_choice("ladder", flag, v, formats, 2, &i)) return 2;
        a->o.json = i == 1;
        return 0;
    }
    return ladder_text_option(c, v, a);
}

/* Whether a backend spec names a server (http:URL or a bare URL). */
static bool spec_is_http(const char *spec) {
    return !strncmp(spec, "http:", 5) || !strncmp(spec, "https:", 6);
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error. */
static int parse_ladder(int argc, char **argv, ladder_args *a) {
    a->o = (trit_ladder_opts){.max_tokens = 16, .top_n = TRIT_BACKEND_TOPN_MAX};
    trit_ladder_thresholds_default(&a->o.th);
    a->o.bopts = trit_backend_default_opts();
    int c, rc = 0;
    optind = 1;
    while (rc == 0 && (c = cli_getopt(argc, argv, "o:h", ladder_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?') usage(stderr); /* getopt named the bad option */
        rc = c == '?' ? 2 : ladder_option(c, optarg, a);
    }
    if (rc) return rc;
    if (optind < argc) {
        fprintf(stderr, "trit ladder: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!a->o.gen1_spec || (!a->determinism && !a->o.gen2_spec)) {
        fprintf(stderr, "trit ladder: --ref and --cand are required (--determinism: --ref)\n\n");
        usage(stderr);
        return 2;
    }
    if (a->n_prompts == 0) {
        fprintf(stderr, "trit ladder: give --prompt TEXT or --prompts FILE\n");
        return 2;
    }
    if (a->o.logits == TRIT_LADDER_LOGITS_FULL &&
        (spec_is_http(a->o.gen1_spec) || (a->o.gen2_spec && spec_is_http(a->o.gen2_spec)))) {
        fprintf(stderr, "trit ladder: --logits full needs both sides in-process (trit:, llama:); "
                        "a server gives top-N log-probabilities only\n");
        return 2;
    }
    a->o.prompts = (const char *const *)a->prompts;
    a->o.n_prompts = a->n_prompts;
    return 0;
}

/* The ladder (or --determinism): the text report on stdout, or the JSON receipt instead;
 * the receipt to -o FILE, failing which turns a pass into a setup failure (2). */
static int run_ladder(const ladder_args *a) {
    json_t *receipt = NULL;
    FILE *text = a->o.json ? NULL : stdout;
    int rc = a->determinism ? trit_ladder_determinism(&a->o, text, &receipt)
                            : trit_ladder_run(&a->o, text, &receipt);
    if (a->o.json) {
        json_dumpf(receipt, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    }
    trit_err err = {0};
    char *s = a->out_path ? json_dumps(receipt, JSON_INDENT(2)) : NULL;
    if (s && trit_write_file_atomic(a->out_path, s, strlen(s), &err) != 0) {
        fprintf(stderr, "trit ladder: -o: %s\n", err.msg);
        if (rc == 0) rc = 2;
    }
    free(s);
    json_decref(receipt);
    return rc;
}

/* `trit ladder`: the command line into its options, then the run; the prompts freed. */
int cmd_ladder(int argc, char **argv) {
    ladder_args a = {0};
    int rc = parse_ladder(argc, argv, &a);
    if (rc == 1)
        rc = 0; /* --help */
    else if (rc == 0)
        rc = run_ladder(&a);
    for (size_t i = 0; i < a.n_prompts; i++) free(a.prompts[i]);
    free(a.prompts);
    return rc;
}
