/* cli/cmd_ladder.c — `trit ladder`: the logit parity ladder between two backends. */
#include "cli/cli.h"
#include "parity/ladder.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(
        f, "usage: trit ladder --ref SPEC --cand SPEC (--prompt TEXT | --prompts FILE) [options]\n"
           "       trit ladder --determinism --ref SPEC (--prompt TEXT | --prompts FILE)\n"
           "\n"
           "Rungs: 0 preflight, 1 tokens, 2 shapes, 3 first-position logits, 4 every prompt\n"
           "position, 5 greedy decode. Stops at the first failing rung unless --all.\n"
           "SPEC: trit:MODEL[?threads=N&ctx=N&rope=norm|neox&act=silu|relu2] | llama:MODEL[?...]\n"
           "      | http:URL[?model=ID&key=KEY]\n"
           "\n"
           "  --ref SPEC, --cand SPEC   the two backends (reference, candidate)\n"
           "  --prompt TEXT             one prompt (repeatable)\n"
           "  --prompts FILE            one prompt per line, or JSONL with a \"prompt\" field\n"
           "  --max-tokens M            greedy decode steps in rung 5 (default 16)\n"
           "  --template raw|chat       raw text, or each backend's chat template (default raw)\n"
           "  --all                     run every rung even after a failure\n"
           "  --bisect                  on a logit/decode failure: shortest failing prefix, then\n"
           "                            traces on both sides name the first diverging\n"
           "                            (position, layer, point)\n"
           "  --determinism             the --ref backend twice: identical logits?\n"
           "  --thresholds k=v,...      override: first_mse first_maxabs pos_mse pos_kl pos_top5\n"
           "                            pos_maxabs tie_eps trace_nmse\n"
           "  --threads N               threads for both backends (default: $TRIT_THREADS or all)\n"
           "  --format text|json        report on stdout (default text)\n"
           "  -o FILE                   write the JSON receipt to FILE\n"
           "Exit: 0 pass, 1 divergence, 2 setup failure or usage error.\n");
}

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

int cmd_ladder(int argc, char **argv) {
    trit_ladder_opts o = {.max_tokens = 16};
    trit_ladder_thresholds_default(&o.th);
    o.bopts = trit_backend_default_opts();
    char **prompts = NULL;
    size_t n_prompts = 0;
    const char *out_path = NULL;
    bool determinism = false;
    trit_err err = {0};
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
        O_FORMAT
    };
    static const struct option lo[] = {{"ref", required_argument, 0, O_REF},
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
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c, rc = 2;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
        switch (c) {
        case O_REF:
            o.ref = optarg;
            break;
        case O_CAND:
            o.cand = optarg;
            break;
        case O_PROMPT:
            prompts = xrealloc(prompts, (n_prompts + 1) * sizeof *prompts);
            prompts[n_prompts++] = xstrdup(optarg);
            break;
        case O_PROMPTS:
            if (load_prompts(optarg, &prompts, &n_prompts, &err) != 0) {
                fprintf(stderr, "trit ladder: %s\n", err.msg);
                goto out;
            }
            break;
        case O_MAX: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 0 || v > 100000) {
                fprintf(stderr, "trit ladder: --max-tokens %s: expected 0..100000\n", optarg);
                goto out;
            }
            o.max_tokens = (int)v;
            break;
        }
        case O_TMPL:
            if (!strcmp(optarg, "chat"))
                o.chat_template = true;
            else if (!strcmp(optarg, "raw"))
                o.chat_template = false;
            else {
                fprintf(stderr, "trit ladder: --template %s: expected raw or chat\n", optarg);
                goto out;
            }
            break;
        case O_ALL:
            o.all = true;
            break;
        case O_BISECT:
            o.bisect = true;
            break;
        case O_DET:
            determinism = true;
            break;
        case O_TH:
            if (trit_ladder_thresholds_parse(optarg, &o.th, &err) != 0) {
                fprintf(stderr, "trit ladder: --thresholds: %s\n", err.msg);
                goto out;
            }
            break;
        case O_THREADS:
            o.bopts.n_threads = atoi(optarg);
            break;
        case O_FORMAT:
            if (!strcmp(optarg, "json"))
                o.json = true;
            else if (!strcmp(optarg, "text"))
                o.json = false;
            else {
                fprintf(stderr, "trit ladder: --format %s: expected text or json\n", optarg);
                goto out;
            }
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "trit ladder: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if (!o.ref || (!determinism && !o.cand)) {
        fprintf(stderr, "trit ladder: --ref and --cand are required (--determinism: --ref)\n\n");
        usage(stderr);
        goto out;
    }
    if (n_prompts == 0) {
        fprintf(stderr, "trit ladder: give --prompt TEXT or --prompts FILE\n");
        goto out;
    }
    o.prompts = (const char *const *)prompts;
    o.n_prompts = n_prompts;
    json_t *receipt = NULL;
    FILE *text = o.json ? NULL : stdout;
    rc = determinism ? trit_ladder_determinism(&o, text, &receipt)
                     : trit_ladder_run(&o, text, &receipt);
    if (o.json) {
        json_dumpf(receipt, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    }
    if (out_path) {
        char *s = json_dumps(receipt, JSON_INDENT(2));
        if (trit_write_file_atomic(out_path, s, strlen(s), &err) != 0) {
            fprintf(stderr, "trit ladder: -o: %s\n", err.msg);
            if (rc == 0) rc = 2;
        }
        free(s);
    }
    json_decref(receipt);
out:
    for (size_t i = 0; i < n_prompts; i++) free(prompts[i]);
    free(prompts);
    return rc;
}
