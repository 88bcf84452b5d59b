/* cli/cmd_run.c — `trit run MODEL -p PROMPT`: generate text, streaming to stdout.
 * --prompt-ids gives the prompt as token ids (no tokenizer needed); --ids prints generated
 * ids; --json prints one object {prompt_ids, ids, text, top5 (per step: id, logprob), stop}. */
#include "cli/cli.h"
#include "engine/engine.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: every option of run_options and its default. */
static void usage(FILE *out) {
    fprintf(out,
            "usage: trit run MODEL (-p PROMPT | --prompt-ids 1,2,3) [options]\n\n"
            "Generates text from a prompt and streams it to stdout (stops at an end-of-generation\n"
            "token or after -n tokens).\n\n"
            "  -p, --prompt TEXT      prompt text (tokenized with the model's vocabulary)\n"
            "  --prompt-ids LIST      prompt as comma-separated token ids (used as given)\n"
            "  -n, --n-predict N      tokens to generate (default 128)\n"
            "  --temp T               temperature (default 0 = greedy, ties to the lowest id)\n"
            "  --top-k K              (default 40)    --top-p P (default 0.95)\n"
            "  --min-p P              (default 0.05)  --seed S  (default 0)\n"
            "  -t, --threads N        worker threads (default: all CPUs)\n"
            "  -c, --ctx N            context size (default min(train, 4096))\n"
            "  --kv-type f16|f32      KV cache type (default f16, like llama.cpp)\n"
            "  --numerics exact|fast  exact (default): bit-identical to llama.cpp; fast: faster\n"
            "                         summation orders (deterministic, not bit-identical)\n"
            "  --no-bos               do not add BOS when tokenizing -p\n"
            "  --ignore-eos           keep generating past end-of-generation tokens\n"
            "  --ids                  print generated token ids (one line) instead of text\n"
            "  --json                 print {prompt_ids, ids, text, top5, stop} as JSON\n"
            "exit codes: 0 ok, 1 failure (model, tokenizer, evaluation), 2 bad arguments\n");
}

/* --prompt-ids "1,2,3" (spaces allowed after each id) into a new array: 0, or -1 when it is
 * not such a list. */
static int parse_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 16;
    *ids = xmalloc(cap * sizeof **ids);
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX) return -1;
        if (*n == cap) *ids = xrealloc(*ids, (cap *= 2) * sizeof **ids);
        (*ids)[(*n)++] = (int32_t)v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return *n > 0 ? 0 : -1;
}

/* What the command line asked for. */
typedef struct run_args {
    const char *model_path, *prompt, *prompt_ids;
    long n_predict, threads, n_ctx;
    trit_sampler_params sp;
    uint32_t kv_type;
    int numerics; /* TRIT_NUMERICS_EXACT / _FAST */
    bool no_bos, out_ids, out_json, ignore_eos;
} run_args;

enum {
    O_PROMPT_IDS = 256,
    O_TEMP,
    O_TOP_K,
    O_TOP_P,
    O_MIN_P,
    O_SEED,
    O_KV_TYPE,
    O_NUMERICS,
    O_NO_BOS,
    O_IGNORE_EOS,
    O_IDS,
    O_JSON,
};
static const struct option run_options[] = {
    {"prompt", required_argument, 0, 'p'},
    {"prompt-ids", required_argument, 0, O_PROMPT_IDS},
    {"n-predict", required_argument, 0, 'n'},
    {"threads", required_argument, 0, 't'},
    {"ctx", required_argument, 0, 'c'},
    {"temp", required_argument, 0, O_TEMP},
    {"top-k", required_argument, 0, O_TOP_K},
    {"top-p", required_argument, 0, O_TOP_P},
    {"min-p", required_argument, 0, O_MIN_P},
    {"seed", required_argument, 0, O_SEED},
    {"kv-type", required_argument, 0, O_KV_TYPE},
    {"numerics", required_argument, 0, O_NUMERICS},
    {"no-bos", no_argument, 0, O_NO_BOS},
    {"ignore-eos", no_argument, 0, O_IGNORE_EOS},
    {"ids", no_argument, 0, O_IDS},
    {"json", no_argument, 0, O_JSON},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* The numbers and names among the options: 0, or -1 after saying why. 1 when c is not one. */
static int run_value_option(int c, const char *flag, const char *v, run_args *a) {
    static const char *const kv_types[] = {"f16", "f32"};
    int k;
    switch (c) {
    case 'n':
        return cli_opt_long("run", flag, v, 0, 1 << 24, &a->n_predict);
    case 't':
        return cli_opt_long("run", flag, v, 1, 1024, &a->threads);
    case 'c':
        return cli_opt_long("run", flag, v, 1, 1 << 24, &a->n_ctx);
    case O_TEMP:
        return cli_opt_float("run", flag, v, -INFINITY, INFINITY, &a->sp.temp);
    case O_TOP_K:
        return cli_opt_int("run", flag, v, 0, 1 << 24, &a->sp.top_k);
    case O_TOP_P:
        return cli_opt_float("run", flag, v, -INFINITY, INFINITY, &a->sp.top_p);
    case O_MIN_P:
        return cli_opt_float("run", flag, v, -INFINITY, INFINITY, &a->sp.min_p);
    case O_SEED:
        return cli_opt_u64("run", flag, v, &a->sp.seed);
    case O_KV_TYPE:
        if (cli_opt_choice("run", flag, v, kv_types, 2, &k)) return -1;
        a->kv_type = k ? TRIT_F32 : TRIT_F16;
        return 0;
    case O_NUMERICS:
        a->numerics = trit_numerics_parse(v);
        return a->numerics < 0 ? cli_opt_bad("run", flag, v, "must be exact or fast") : 0;
    }
    return 1;
}

/* One option's value into a: 0, or -1 after saying why. */
static int run_option(int c, const char *v, run_args *a) {
    const int rc = run_value_option(c, cli_opt_name(run_options, c), v, a);
    if (rc <= 0) return rc;
    switch (c) {
    case 'p':
        a->prompt = v;
        return 0;
    case O_PROMPT_IDS:
        a->prompt_ids = v;
        return 0;
    case O_NO_BOS:
        a->no_bos = true;
        return 0;
    case O_IGNORE_EOS:
        a->ignore_eos = true;
        return 0;
    case O_IDS:
        a->out_ids = true;
        return 0;
    case O_JSON:
        a->out_json = true;
        return 0;
    }
    return -1;
}

/* Whether --prompt-ids is a list of ids; says why not. A bad list is a usage error (exit 2),
 * found before the model is loaded. */
static bool prompt_ids_valid(const char *list) {
    int32_t *ids = NULL;
    size_t n = 0;
    const int bad = parse_ids(list, &ids, &n);
    free(ids);
    if (bad) cli_opt_bad("run", "prompt-ids", list, "must be token ids, e.g. 1,2,3");
    return !bad;
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (said on stderr). */
static int parse_run(int argc, char **argv, run_args *a) {
    *a = (run_args){.n_predict = 128,
                    .sp = trit_sampler_default_params(),
                    .kv_type = TRIT_F16,
                    .numerics = TRIT_NUMERICS_EXACT};
    a->sp.temp = 0.0f; /* greedy unless asked */
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "p:n:t:c:h", run_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?') return 2; /* getopt named it */
        if (run_option(c, optarg, a)) return 2;
    }
    /* one positional argument: the model */
    if (optind < argc) a->model_path = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "trit run: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!a->model_path) {
        fprintf(stderr, "trit run: no MODEL given (see trit run --help)\n");
        return 2;
    }
    if (!a->prompt == !a->prompt_ids) {
        fprintf(stderr, "trit run: give exactly one of -p PROMPT or --prompt-ids LIST\n");
        return 2;
    }
    return a->prompt_ids && !prompt_ids_valid(a->prompt_ids) ? 2 : 0;
}

/* A generation in progress and its results. */
typedef struct run_state {
    const run_args *a;
    trit_model *m;
    trit_tokenizer *tok;
    trit_ctx *c;
    trit_sampler *smp;
    int32_t *ids; /* the prompt */
    size_t n_ids;
    int32_t *gen; /* generated ids */
    int n_gen;
    json_t *top5; /* --json: per step, the top-5 ids and logprobs */
    trit_buf text, piece;
    trit_detok dt;
    const char *stop; /* "eos" | "length" */
    double t_prompt, t_gen;
} run_state;

/* The prompt as ids (tokenized, or as given), each checked against the vocabulary. */
static int prompt_ids(run_state *s, trit_err *err) {
    const run_args *a = s->a;
    if (a->prompt_ids && parse_ids(a->prompt_ids, &s->ids, &s->n_ids))
        return trit_fail(err, TRIT_EINVAL, "bad --prompt-ids '%s' (expected e.g. 1,2,3)",
                         a->prompt_ids);
    if (a->prompt) {
        if (trit_tok_encode(s->tok, a->prompt, strlen(a->prompt), !a->no_bos, false, &s->ids,
                            &s->n_ids, err)) {
            trit_err_prefix(err, "tokenize");
            return -1;
        }
        if (s->n_ids == 0) return trit_fail(err, TRIT_EINVAL, "the prompt has no tokens");
    }
    for (size_t i = 0; i < s->n_ids; i++)
        if (s->ids[i] >= s->m->hp.n_vocab)
            return trit_fail(err, TRIT_ERANGE, "prompt token %d is outside the vocabulary (0..%d)",
                             s->ids[i], s->m->hp.n_vocab - 1);
    return 0;
}

/* Model, tokenizer, prompt, context (sized for prompt + generation), sampler. */
static int run_setup(run_state *s, trit_err *err) {
    const run_args *a = s->a;
    if (!(s->m = trit_model_load(a->model_path, err))) return -1;
    if (!(s->tok = trit_tok_load(trit_model_gguf(s->m), err))) {
        trit_err_prefix(err, "tokenizer");
        return -1;
    }
    if (prompt_ids(s, err)) return -1;
    trit_ctx_params cp = trit_ctx_default_params();
    cp.n_threads = (int)a->threads;
    cp.kv_type = a->kv_type;
    cp.numerics = a->numerics;
    cp.n_ctx = (int)a->n_ctx;
    if (cp.n_ctx == 0) {
        /* just enough for the run, capped by the training context (4096 when unknown) */
        int want = (int)TRIT_MIN((long)s->n_ids + a->n_predict, 1L << 24);
        int train = s->m->hp.n_ctx_train > 0 ? s->m->hp.n_ctx_train : 4096;
        cp.n_ctx = TRIT_MIN(TRIT_MAX(want, 1), train);
    }
    if (!(s->c = trit_ctx_new(s->m, &cp, err))) return -1;
    if ((long)s->n_ids + a->n_predict > trit_ctx_n_ctx(s->c))
        return trit_fail(err, TRIT_ERANGE,
                         "%zu prompt + %ld generated tokens exceed the context (%d)", s->n_ids,
                         a->n_predict, trit_ctx_n_ctx(s->c));
    s->smp = trit_sampler_new(&a->sp);
    s->gen = xmalloc((size_t)(a->n_predict + 1) * sizeof *s->gen);
    if (a->out_json) s->top5 = json_array();
    return 0;
}

/* --json: the step's top-5 ids with their logprobs */
static void record_top5(run_state *s, const float *logits) {
    const int n_vocab = s->m->hp.n_vocab;
    int32_t top[5];
    int nt = trit_top_k(logits, n_vocab, 5, top);
    double lse = trit_logsumexp(logits, n_vocab);
    json_t *step = json_array();
    for (int k = 0; k < nt; k++)
        json_array_append_new(
            step, json_pack("{s:i, s:f}", "id", top[k], "logprob", (double)logits[top[k]] - lse));
    json_array_append_new(s->top5, step);
}

/* Generate: evaluate the prompt, then sample, stream and evaluate one token at a time until
 * an end-of-generation token (unless --ignore-eos) or n_predict tokens. */
static int run_generate(run_state *s, trit_err *err) {
    const run_args *a = s->a;
    const bool stream = !a->out_ids && !a->out_json;
    double t0 = trit_now_s();
    if (trit_eval(s->c, s->ids, (int)s->n_ids, 0, false, err)) return -1;
    s->t_prompt = trit_now_s() - t0;
    s->stop = "length";
    double t1 = trit_now_s();
    while (s->n_gen < a->n_predict) {
        /* sample from the last position's logits */
        const float *lg = trit_get_logits(s->c, -1);
        int32_t id = trit_sampler_sample(s->smp, lg, s->m->hp.n_vocab);
        if (s->top5) record_top5(s, lg);
        if (trit_tok_is_eog(s->tok, id) && !a->ignore_eos) {
            s->stop = "eos";
            break;
        }
        /* keep it, and stream its text (the detokenizer holds back incomplete UTF-8) */
        s->gen[s->n_gen++] = id;
        trit_buf_clear(&s->piece);
        trit_detok_push(s->tok, &s->dt, id, &s->piece);
        trit_buf_append(&s->text, s->piece.p, s->piece.len);
        if (stream && s->piece.len) { /* an empty piece has no buffer: fwrite's NULL is UB */
            fwrite(s->piece.p, 1, s->piece.len, stdout);
            fflush(stdout);
        }
        /* the last token needs no evaluation */
        if (s->n_gen == a->n_predict) break;
        if (trit_eval(s->c, &id, 1, trit_ctx_n_past(s->c), false, err)) return -1;
    }
    s->t_gen = trit_now_s() - t1;
    /* whatever the detokenizer still holds */
    trit_buf_clear(&s->piece);
    trit_detok_flush(&s->dt, &s->piece);
    trit_buf_append(&s->text, s->piece.p, s->piece.len);
    if (stream && s->piece.len) fwrite(s->piece.p, 1, s->piece.len, stdout);
    return 0;
}

/* The result on stdout (text already streamed, ids, or one JSON object); timings on stderr. */
static void run_print(run_state *s) {
    const run_args *a = s->a;
    if (a->out_json) {
        json_t *o = json_object(), *jp = json_array(), *jg = json_array();
        for (size_t i = 0; i < s->n_ids; i++) json_array_append_new(jp, json_integer(s->ids[i]));
        for (int i = 0; i < s->n_gen; i++) json_array_append_new(jg, json_integer(s->gen[i]));
        json_object_set_new(o, "prompt_ids", jp);
        json_object_set_new(o, "ids", jg);
        json_object_set_new(o, "text", json_stringn(s->text.p ? s->text.p : "", s->text.len));
        json_object_set_new(o, "top5", s->top5);
        s->top5 = NULL;
        json_object_set_new(o, "stop", json_string(s->stop));
        json_object_set_new(o, "prompt_ms", json_real(s->t_prompt * 1e3));
        json_object_set_new(o, "gen_ms", json_real(s->t_gen * 1e3));
        char *js = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        puts(js);
        free(js);
        json_decref(o);
    } else if (a->out_ids) {
        for (int i = 0; i < s->n_gen; i++) printf("%s%d", i ? " " : "", s->gen[i]);
        printf("\n");
    } else {
        printf("\n");
    }
    fflush(stdout);
    double tp = s->t_prompt > 0 ? s->t_prompt : 1e-9, tg = s->t_gen > 0 ? s->t_gen : 1e-9;
    fprintf(stderr,
            "trit run: prompt %zu tokens in %.1f ms (%.1f tok/s), generated %d in %.1f ms (%.1f "
            "tok/s), stop=%s\n",
            s->n_ids, s->t_prompt * 1e3, s->n_ids / tp, s->n_gen, s->t_gen * 1e3,
            s->n_gen > 1 ? (s->n_gen - 1) / tg : 0.0, s->stop);
}

/* Everything run_setup made (any part may be missing after a failure). */
static void run_free(run_state *s) {
    json_decref(s->top5);
    if (s->tok) trit_detok_free(&s->dt);
    trit_tok_free(s->tok);
    trit_buf_free(&s->text);
    trit_buf_free(&s->piece);
    free(s->gen);
    trit_sampler_free(s->smp);
    trit_ctx_free(s->c);
    trit_model_free(s->m);
    free(s->ids);
}

/* Generate and print (run_<cmd> for the command `run`): 0, or 1 with the failure said. */
static int run_run(const run_args *a) {
    run_state s = {.a = a};
    trit_err err = {0};
    int rc = run_setup(&s, &err) || run_generate(&s, &err) ? 1 : 0;
    if (rc)
        fprintf(stderr, "trit run: %s\n", err.msg);
    else
        run_print(&s);
    run_free(&s);
    return rc;
}

/* `trit run`: the command line into its options, then the run; the exit code (cli.h). */
int cmd_run(int argc, char **argv) {
    run_args a;
    int rc = parse_run(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    return run_run(&a);
}
