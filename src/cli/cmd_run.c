/* cli/cmd_run.c — `trit run MODEL -p PROMPT`: generate text, streaming to stdout.
 * --prompt-ids gives the prompt as token ids (no tokenizer needed); --ids prints generated
 * ids; --json prints one object {prompt_ids, ids, text, top5 (per step: id, logprob), stop}. */
#include "cli/cli.h"
#include "engine/engine.h"
#include "kernels/kernels.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tokenizer may not be linked into every build yet: reference it weakly so `run
 * --prompt-ids` keeps working without it. */
#pragma weak trit_tok_load
#pragma weak trit_tok_free
#pragma weak trit_tok_encode
#pragma weak trit_tok_is_eog
#pragma weak trit_tok_add_bos
#pragma weak trit_tok_bos
#pragma weak trit_detok_push
#pragma weak trit_detok_flush
#pragma weak trit_detok_free
#pragma weak trit_tok_decode

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

static int parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

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

/* End-of-generation ids from the GGUF when the tokenizer module is not available. */
static bool eog_fallback(const trit_model *m, int32_t id) {
    static const char *keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                 "tokenizer.ggml.eom_token_id"};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(keys); i++) {
        uint32_t v;
        if (gguf_get_u32(m->gguf, keys[i], &v) == 0 && (int32_t)v == id) return true;
    }
    return false;
}

int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *prompt_ids = NULL;
    long n_predict = 128, threads = 0, n_ctx = 0;
    trit_sampler_params sp = trit_sampler_default_params();
    sp.temp = 0.0f;
    uint32_t kv_type = TRIT_F16;
    bool no_bos = false, out_ids = false, out_json = false, ignore_eos = false;

    int numerics = TRIT_NUMERICS_EXACT;
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
        O_JSON
    };
    static const struct option lo[] = {{"prompt", required_argument, 0, 'p'},
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
                                       {0, 0, 0, 0}};
    int opt, li = -1;
    optind = 1;
    /* "-" first: non-options come back as 1 in order, so MODEL may stand anywhere */
    while ((opt = getopt_long(argc, argv, "-p:n:t:c:h", lo, &li)) != -1) {
        char shown[48]; /* the option as the user wrote it, for messages */
        if (li >= 0)
            snprintf(shown, sizeof shown, "--%s", lo[li].name);
        else
            snprintf(shown, sizeof shown, "-%c", opt);
        const char *v = optarg;
        bool bad = false;
        long lv;
        li = -1;
        switch (opt) {
        case 1:
            if (model_path) {
                fprintf(stderr, "trit run: unexpected argument '%s'\n", v);
                return 2;
            }
            model_path = v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'p':
            prompt = v;
            break;
        case O_PROMPT_IDS:
            prompt_ids = v;
            break;
        case 'n':
            bad = trit_parse_long(v, 0, 1 << 24, &n_predict) != 0;
            break;
        case 't':
            bad = trit_parse_long(v, 1, 1024, &threads) != 0;
            break;
        case 'c':
            bad = trit_parse_long(v, 1, 1 << 24, &n_ctx) != 0;
            break;
        case O_TEMP:
            bad = parse_float(v, &sp.temp) != 0;
            break;
        case O_TOP_K:
            bad = trit_parse_long(v, 0, 1 << 24, &lv) != 0;
            if (!bad) sp.top_k = (int)lv;
            break;
        case O_TOP_P:
            bad = parse_float(v, &sp.top_p) != 0;
            break;
        case O_MIN_P:
            bad = parse_float(v, &sp.min_p) != 0;
            break;
        case O_SEED: {
            char *end;
            errno = 0;
            const unsigned long long seed = strtoull(v, &end, 10);
            bad = errno || end == v || *end;
            if (!bad) sp.seed = seed;
            break;
        }
        case O_KV_TYPE:
            if (!strcmp(v, "f16"))
                kv_type = TRIT_F16;
            else if (!strcmp(v, "f32"))
                kv_type = TRIT_F32;
            else
                bad = true;
            break;
        case O_NUMERICS:
            numerics = trit_numerics_parse(v);
            bad = numerics < 0;
            break;
        case O_NO_BOS:
            no_bos = true;
            break;
        case O_IGNORE_EOS:
            ignore_eos = true;
            break;
        case O_IDS:
            out_ids = true;
            break;
        case O_JSON:
            out_json = true;
            break;
        default: /* getopt_long named the unknown option or the missing value */
            fprintf(stderr, "trit run: see trit run --help\n");
            return 2;
        }
        if (bad) {
            fprintf(stderr, "trit run: bad value for %s: '%s'\n", shown, v);
            return 2;
        }
    }
    if (!model_path) {
        fprintf(stderr, "trit run: no MODEL given (see trit run --help)\n");
        return 2;
    }
    if (!prompt == !prompt_ids) {
        fprintf(stderr, "trit run: give exactly one of -p PROMPT or --prompt-ids LIST\n");
        return 2;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (prompt_ids && parse_ids(prompt_ids, &ids, &n_ids)) {
        fprintf(stderr, "trit run: bad --prompt-ids '%s' (expected e.g. 1,2,3)\n", prompt_ids);
        free(ids);
        return 2;
    }

    trit_err err = {0};
    trit_model *m = trit_model_load(model_path, &err);
    if (!m) {
        fprintf(stderr, "trit run: %s\n", err.msg);
        free(ids);
        return 1;
    }
    int rc = 1;
    trit_tokenizer *tok = NULL;
    trit_ctx *c = NULL;
    trit_sampler *smp = NULL;
    json_t *jtop = NULL;
    int32_t *gen = NULL;
    trit_buf text = {0}, piece = {0};
    trit_detok dt = {0};
    const bool have_tok_lib = trit_tok_load != NULL && trit_tok_encode != NULL &&
                              trit_detok_push != NULL && trit_tok_is_eog != NULL;
    if (have_tok_lib) {
        tok = trit_tok_load(m->gguf, &err);
        if (!tok && prompt) {
            fprintf(stderr, "trit run: tokenizer: %s\n", err.msg);
            goto done;
        }
    } else if (prompt) {
        fprintf(stderr, "trit run: this build has no tokenizer; use --prompt-ids\n");
        goto done;
    }
    if (prompt) {
        if (trit_tok_encode(tok, prompt, strlen(prompt), !no_bos, false, &ids, &n_ids, &err)) {
            fprintf(stderr, "trit run: tokenize: %s\n", err.msg);
            goto done;
        }
        if (n_ids == 0) {
            fprintf(stderr, "trit run: the prompt has no tokens\n");
            goto done;
        }
    }
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] >= m->hp.n_vocab) {
            fprintf(stderr, "trit run: prompt token %d is outside the vocabulary (0..%d)\n", ids[i],
                    m->hp.n_vocab - 1);
            goto done;
        }

    trit_ctx_params cp = trit_ctx_default_params();
    cp.n_threads = (int)threads;
    cp.kv_type = kv_type;
    cp.numerics = numerics;
    cp.n_ctx = (int)n_ctx;
    if (cp.n_ctx == 0) {
        int want = (int)TRIT_MIN((long)n_ids + n_predict, 1L << 24);
        cp.n_ctx = TRIT_MIN(TRIT_MAX(want, 1), m->hp.n_ctx_train > 0 ? m->hp.n_ctx_train : 4096);
    }
    c = trit_ctx_new(m, &cp, &err);
    if (!c) {
        fprintf(stderr, "trit run: %s\n", err.msg);
        goto done;
    }
    if ((long)n_ids + n_predict > trit_ctx_n_ctx(c)) {
        fprintf(stderr, "trit run: %zu prompt + %ld generated tokens exceed the context (%d)\n",
                n_ids, n_predict, trit_ctx_n_ctx(c));
        goto done;
    }
    smp = trit_sampler_new(&sp);
    gen = xmalloc((size_t)(n_predict + 1) * sizeof *gen);
    if (out_json) jtop = json_array();

    double t0 = trit_now_s();
    if (trit_eval(c, ids, (int)n_ids, 0, false, &err)) {
        fprintf(stderr, "trit run: %s\n", err.msg);
        goto done;
    }
    double t_prompt = trit_now_s() - t0;
    const int n_vocab = m->hp.n_vocab;
    int n_gen = 0;
    const char *stop = "length";
    double t1 = trit_now_s();
    while (n_gen < n_predict) {
        const float *lg = trit_get_logits(c, -1);
        int32_t id = trit_sampler_sample(smp, lg, n_vocab);
        if (jtop) {
            int32_t top[5];
            int nt = trit_top_k(lg, n_vocab, 5, top);
            double lse = trit_logsumexp(lg, n_vocab);
            json_t *step = json_array();
            for (int k = 0; k < nt; k++)
                json_array_append_new(step, json_pack("{s:i, s:f}", "id", top[k], "logprob",
                                                      (double)lg[top[k]] - lse));
            json_array_append_new(jtop, step);
        }
        bool eog = tok ? trit_tok_is_eog(tok, id) : eog_fallback(m, id);
        if (eog && !ignore_eos) {
            stop = "eos";
            break;
        }
        gen[n_gen++] = id;
        if (tok) {
            trit_buf_clear(&piece);
            trit_detok_push(tok, &dt, id, &piece);
            trit_buf_append(&text, piece.p, piece.len);
            if (!out_ids && !out_json) {
                fwrite(piece.p, 1, piece.len, stdout);
                fflush(stdout);
            }
        } else if (!out_ids && !out_json) {
            printf("%s%d", n_gen > 1 ? " " : "", id);
            fflush(stdout);
        }
        if (n_gen == n_predict) break;
        if (trit_eval(c, &id, 1, trit_ctx_n_past(c), false, &err)) {
            fprintf(stderr, "trit run: %s\n", err.msg);
            goto done;
        }
    }
    double t_gen = trit_now_s() - t1;
    if (tok) {
        trit_buf_clear(&piece);
        trit_detok_flush(&dt, &piece);
        trit_buf_append(&text, piece.p, piece.len);
        if (!out_ids && !out_json) fwrite(piece.p, 1, piece.len, stdout);
    }
    if (out_json) {
        json_t *o = json_object();
        json_t *jp = json_array(), *jg = json_array();
        for (size_t i = 0; i < n_ids; i++) json_array_append_new(jp, json_integer(ids[i]));
        for (int i = 0; i < n_gen; i++) json_array_append_new(jg, json_integer(gen[i]));
        json_object_set_new(o, "prompt_ids", jp);
        json_object_set_new(o, "ids", jg);
        json_object_set_new(o, "text", json_stringn(text.p ? text.p : "", text.len));
        json_object_set_new(o, "top5", jtop);
        jtop = NULL;
        json_object_set_new(o, "stop", json_string(stop));
        json_object_set_new(o, "prompt_ms", json_real(t_prompt * 1e3));
        json_object_set_new(o, "gen_ms", json_real(t_gen * 1e3));
        char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        puts(s);
        free(s);
        json_decref(o);
    } else if (out_ids) {
        for (int i = 0; i < n_gen; i++) printf("%s%d", i ? " " : "", gen[i]);
        printf("\n");
    } else {
        printf("\n");
    }
    fflush(stdout);
    fprintf(stderr,
            "trit run: prompt %zu tokens in %.1f ms (%.1f tok/s), generated %d in %.1f ms (%.1f "
            "tok/s), stop=%s\n",
            n_ids, t_prompt * 1e3, n_ids / (t_prompt > 0 ? t_prompt : 1e-9), n_gen, t_gen * 1e3,
            n_gen > 1 ? (n_gen - 1) / (t_gen > 0 ? t_gen : 1e-9) : 0.0, stop);
    rc = 0;
done:
    if (jtop) json_decref(jtop);
    if (tok) {
        trit_detok_free(&dt);
        trit_tok_free(tok);
    }
    trit_buf_free(&text);
    trit_buf_free(&piece);
    free(gen);
    trit_sampler_free(smp);
    trit_ctx_free(c);
    trit_model_free(m);
    free(ids);
    return rc;
}
