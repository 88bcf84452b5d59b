/* cli/cmd_serve.c — `trit serve MODEL [options]`: the OpenAI-compatible HTTP server. */
#include "base/base.h"
#include "cli/cli.h"
#include "client/client.h"
#include "engine/engine.h"
#include "model/model.h"
#include "kernels/kernels.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: every option of serve_options, what it does and its default. */
static void serve_usage(FILE *f) {
    fprintf(f,
            "usage: trit serve MODEL.gguf [options]\n\n"
            "OpenAI-compatible server: POST /v1/chat/completions, /v1/completions, /tokenize,\n"
            "/detokenize; GET /v1/models, /props (identity: build, model sha256, kernels),\n"
            "/health, /metrics. Stops cleanly on SIGINT/SIGTERM.\n\n"
            "  --host ADDR          IPv4 address to bind (default 127.0.0.1)\n"
            "  --port N             port (default 8180; 0 = any free port)\n"
            "  --threads N          engine threads, shared by all slots (default: all CPUs)\n"
            "  --slots N            requests served at once, batched into one forward pass per\n"
            "                       step, each with its own KV cache (default 4)\n"
            "  --draft N            prompt-lookup drafts per step, verified losslessly (the\n"
            "                       same reply as without; default 0 = off, at most 16)\n"
            "  --numerics exact|fast  exact (default): bit-identical to llama.cpp; fast: faster\n"
            "                       attention order (deterministic, not bit-identical)\n"
            "  --queue N            requests that may wait for a slot (default 16); more -> 429\n"
            "  --batch N            prompt tokens per prefill chunk (n_batch; default 512, as\n"
            "                       llama-server's -ub)\n"
            "  --cache-mib N        prompt cache: keep earlier prompts' KV cells (MiB, LRU) and\n"
            "                       start prompts that share their prefix from them, replies\n"
            "                       unchanged (default 256; 0 = off)\n"
            "  --ctx N              context length per slot (default: min(train ctx, 4096))\n"
            "  --api-key-file FILE  require 'Authorization: Bearer KEY' (all but /health); the\n"
            "                       file holds the key (chmod 600). Default $TRIT_API_KEY.\n"
            "  --api-key KEY        the same from the command line (visible in ps: avoid)\n"
            "  --max-body BYTES     request body limit (default 1048576; K, M, G units) -> 413\n"
            "  --alias NAME         model name in responses (default: the file's basename)\n"
            "  --chat-template T    chatml | llama3 | bitnet | raw (default: the model's own,\n"
            "                       chatml when it has none, as llama-server does)\n"
            "  --grace SECONDS      on shutdown, wait this long for in-flight requests (default "
            "10)\n"
            "  --cors ORIGINS       browser origins allowed (comma list of exact origins; '*' =\n"
            "                       any). Default: http://localhost, 127.0.0.1, [::1], any port.\n"
            "                       Requests from other origins get 403.\n"
            "  --host-allow NAMES   extra Host header names accepted (comma list; '*' = any).\n"
            "                       Bound to loopback, other Host names get 403 (DNS rebinding).\n"
            "  --max-parsing N      requests parsed/tokenized at once (default 4) -> 503 beyond\n"
            "  --insecure-no-key    start a non-loopback --host or --cors '*' without a key\n"
            "                       (refused otherwise; warned on every start)\n"
            "  --fault SPEC         TESTING AID: act=silu|relu2, rope=norm|neox change the\n"
            "                       model's graph (a parity ladder must fail); json-alloc=N\n"
            "                       fails every Nth JSON allocation; step-ms=N pauses N ms\n"
            "                       after every generation step. Warned, shown in /props.\n");
}

/* What the command line asked for: the server's configuration and where its key comes from. */
typedef struct serve_args {
    srv_config cfg;
    const char *model_path, *key_file;
    char *key_arg; /* --api-key's argv string (trit_api_key_take_arg wipes it) */
} serve_args;

enum {
    O_HOST = 256,
    O_PORT,
    O_QUEUE,
    O_APIKEY,
    O_KEYFILE,
    O_MAXBODY,
    O_ALIAS,
    O_TMPL,
    O_GRACE,
    O_CORS,
    O_HOSTALLOW,
    O_PARSING,
    O_DRAFT,
    O_NUMERICS,
    O_INSECURE,
    O_FAULT,
    O_CACHE,
    O_BATCH
};
static const struct option serve_options[] = {{"host", required_argument, 0, O_HOST},
                                              {"port", required_argument, 0, O_PORT},
                                              {"threads", required_argument, 0, 't'},
                                              {"slots", required_argument, 0, 'n'},
                                              {"queue", required_argument, 0, O_QUEUE},
                                              {"ctx", required_argument, 0, 'c'},
                                              {"api-key", required_argument, 0, O_APIKEY},
                                              {"api-key-file", required_argument, 0, O_KEYFILE},
                                              {"max-body", required_argument, 0, O_MAXBODY},
                                              {"alias", required_argument, 0, O_ALIAS},
                                              {"chat-template", required_argument, 0, O_TMPL},
                                              {"grace", required_argument, 0, O_GRACE},
                                              {"cors", required_argument, 0, O_CORS},
                                              {"host-allow", required_argument, 0, O_HOSTALLOW},
                                              {"max-parsing", required_argument, 0, O_PARSING},
                                              {"draft", required_argument, 0, O_DRAFT},
                                              {"numerics", required_argument, 0, O_NUMERICS},
                                              {"insecure-no-key", no_argument, 0, O_INSECURE},
                                              {"fault", required_argument, 0, O_FAULT},
                                              {"cache-mib", required_argument, 0, O_CACHE},
                                              {"batch", required_argument, 0, O_BATCH},
                                              {"help", no_argument, 0, 'h'},
                                              {0, 0, 0, 0}};

/* --chat-template: chatml is the server's own template; the others are the tokenizer's. */
static int parse_template(const char *flag, const char *v, int *out) {
    const int t = strcmp(v, "chatml") ? trit_chat_tmpl_from_name(v) : SRV_TMPL_CHATML;
    if (t < 0) return cli_opt_bad("serve", flag, v, "must be chatml, llama3, bitnet or raw");
    *out = t;
    return 0;
}

/* --numerics exact|fast, as the engine names them. */
static int parse_numerics(const char *flag, const char *v, int *out) {
    const int n = trit_numerics_parse(v);
    if (n < 0) return cli_opt_bad("serve", flag, v, "must be exact or fast");
    *out = n;
    return 0;
}

/* The options taken as given (addresses, names, lists, the key's source). */
static int serve_text_option(int c, char *v, serve_args *a) {
    switch (c) {
    case O_HOST:
        a->cfg.host = v;
        return 0;
    case O_ALIAS:
        a->cfg.alias = v;
        return 0;
    case O_CORS:
        a->cfg.cors = v;
        return 0;
    case O_HOSTALLOW:
        a->cfg.host_allow = v;
        return 0;
    case O_APIKEY:
        a->key_arg = v;
        return 0;
    case O_KEYFILE:
        a->key_file = v;
        return 0;
    case O_INSECURE:
        a->cfg.insecure_no_key = true;
        return 0;
    case O_FAULT:
        return srv_fault_parse(&a->cfg, v);
    }
    return -1;
}

/* One option's value into a: 0, or -1 after saying why. */
static int serve_option(int c, char *v, serve_args *a) {
    const char *flag = cli_opt_name(serve_options, c);
    srv_config *cfg = &a->cfg;
    switch (c) {
    case O_PORT:
        return cli_opt_int("serve", flag, v, 0, 65535, &cfg->port);
    case 't':
        return cli_opt_int("serve", flag, v, 0, 1024, &cfg->n_threads);
    case 'n':
        return cli_opt_int("serve", flag, v, 1, 256, &cfg->n_slots);
    case O_QUEUE:
        return cli_opt_int("serve", flag, v, 0, 1 << 20, &cfg->queue_cap);
    case 'c':
        return cli_opt_int("serve", flag, v, 0, 1 << 20, &cfg->n_ctx);
    case O_PARSING:
        return cli_opt_int("serve", flag, v, 1, 1024, &cfg->max_parsing);
    case O_DRAFT:
        return cli_opt_int("serve", flag, v, 0, 16, &cfg->n_draft);
    case O_CACHE:
        return cli_opt_int("serve", flag, v, 0, 1 << 20, &cfg->cache_mib);
    case O_BATCH:
        return cli_opt_int("serve", flag, v, 1, 1 << 16, &cfg->n_batch);
    case O_MAXBODY:
        return cli_opt_size("serve", flag, v, 64, (size_t)1 << 30, &cfg->max_body);
    case O_GRACE:
        return cli_opt_duration("serve", flag, v, 0, 3600, &cfg->grace_s);
    case O_TMPL:
        return parse_template(flag, v, &cfg->chat_tmpl);
    case O_NUMERICS:
        return parse_numerics(flag, v, &cfg->numerics);
    }
    return serve_text_option(c, v, a);
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (said on stderr).
 * Unknown options get the server's own message (opterr is off); positional arguments come
 * back in order as option 1 ("-" in the short options), the first being MODEL. */
static int parse_serve(int argc, char **argv, serve_args *a) {
    *a = (serve_args){0};
    srv_config_default(&a->cfg);
    /* llama-server's "-np N" spelling of --slots (getopt has no two-letter short options) */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-np")) argv[i] = "--slots";
    int c;
    optind = 1;
    opterr = 0;
    while ((c = cli_getopt(argc, argv, "-ht:c:", serve_options)) != -1) {
        if (c == 'h') {
            serve_usage(stdout);
            return 1;
        }
        if (c == 1 && a->model_path) {
            fprintf(stderr, "trit serve: unexpected argument '%s'\n", optarg);
            return 2;
        }
        if (c == 1) {
            a->model_path = optarg;
            continue;
        }
        if (c == '?') { /* an unknown option or a missing value */
            fprintf(stderr, "trit serve: unknown option or missing value: '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (serve_option(c, optarg, a)) return 2;
    }
    if (!a->model_path) {
        serve_usage(stderr);
        return 2;
    }
    return 0;
}

/* Serve until SIGINT/SIGTERM: the API key, the model and its tokenizer, then srv_run.
 * A key that cannot be read is a usage error (2); a model that cannot be loaded or served, 1. */
static int run_serve(serve_args *a) {
    trit_err err = {0};
    char *key = NULL;
    if (a->key_arg) {
        key = trit_api_key_take_arg(a->key_arg);
    } else if (trit_api_key_load(a->key_file, "TRIT_API_KEY", &key, &err)) {
        fprintf(stderr, "trit serve: %s\n", err.msg);
        return 2;
    }
    a->cfg.api_key = key;
    trit_model *m = trit_model_load(a->model_path, &err);
    trit_tokenizer *tok = m ? trit_tok_load(trit_model_gguf(m), &err) : NULL;
    int rc = 1;
    if (!m)
        fprintf(stderr, "trit serve: %s\n", err.msg);
    else if (!tok)
        fprintf(stderr, "trit serve: %s: %s\n", a->model_path, err.msg);
    else if (srv_run(&a->cfg, m, tok, &err))
        fprintf(stderr, "trit serve: %s\n", err.msg);
    else
        rc = 0;
    trit_tok_free(tok);
    trit_model_free(m);
    free(key);
    return rc;
}

/* `trit serve`: the command line into its options, then the run; the exit code (cli.h). */
int cmd_serve(int argc, char **argv) {
    serve_args a;
    int rc = parse_serve(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    return run_serve(&a);
}
