/* cli/cmd_serve.c — `trit serve MODEL [options]`: the OpenAI-compatible HTTP server. */
#include "base/base.h"
#include "cli/cli.h"
#include "client/client.h"
#include "engine/engine.h"
#include "model/model.h"
#include "kernels/kernels.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            "  --ctx N              context length per slot (default: min(train ctx, 4096))\n"
            "  --api-key-file FILE  require 'Authorization: Bearer KEY' (all but /health); the\n"
            "                       file holds the key (chmod 600). Default $TRIT_API_KEY.\n"
            "  --api-key KEY        the same from the command line (visible in ps: avoid)\n"
            "  --max-body BYTES     request body limit (default 1048576) -> 413\n"
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
            "                       fails every Nth JSON allocation. Warned, shown in /props.\n");
}

static int parse_int(const char *opt, const char *v, long lo, long hi, long *out) {
    if (!v || trit_parse_long(v, lo, hi, out)) {
        fprintf(stderr, "trit serve: %s needs an integer in [%ld, %ld]\n", opt, lo, hi);
        return -1;
    }
    return 0;
}

int cmd_serve(int argc, char **argv) {
    srv_config cfg;
    srv_config_default(&cfg);
    const char *model_path = NULL, *key_file = NULL;
    char *key_arg = NULL;
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
        O_FAULT
    };
    static const struct option lo[] = {{"host", required_argument, 0, O_HOST},
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
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    /* llama-server's "-np N" spelling of --slots (getopt has no two-letter short options) */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-np")) argv[i] = "--slots";
    int o;
    long x = 0;
    optind = 1;
    opterr = 0;
    /* "-": positional arguments come back as option 1, in order */
    while ((o = getopt_long(argc, argv, "-ht:c:", lo, NULL)) != -1) {
        const char *a = argv[optind - 1];
        switch (o) {
        case 1:
            if (model_path) {
                fprintf(stderr, "trit serve: unexpected argument '%s'\n", optarg);
                return 2;
            }
            model_path = optarg;
            break;
        case 'h':
            serve_usage(stdout);
            return 0;
        case O_HOST:
            cfg.host = optarg;
            break;
        case O_PORT:
            if (parse_int("--port", optarg, 0, 65535, &x)) return 2;
            cfg.port = (int)x;
            break;
        case 't':
            if (parse_int("--threads", optarg, 0, 1024, &x)) return 2;
            cfg.n_threads = (int)x;
            break;
        case 'n':
            if (parse_int("--slots", optarg, 1, 256, &x)) return 2;
            cfg.n_slots = (int)x;
            break;
        case O_QUEUE:
            if (parse_int("--queue", optarg, 0, 1 << 20, &x)) return 2;
            cfg.queue_cap = (int)x;
            break;
        case 'c':
            if (parse_int("--ctx", optarg, 0, 1 << 20, &x)) return 2;
            cfg.n_ctx = (int)x;
            break;
        case O_APIKEY:
            key_arg = optarg;
            break;
        case O_KEYFILE:
            key_file = optarg;
            break;
        case O_MAXBODY:
            if (parse_int("--max-body", optarg, 64, 1L << 30, &x)) return 2;
            cfg.max_body = (size_t)x;
            break;
        case O_ALIAS:
            cfg.alias = optarg;
            break;
        case O_TMPL:
            if (!strcmp(optarg, "chatml")) {
                cfg.chat_tmpl = SRV_TMPL_CHATML;
            } else {
                cfg.chat_tmpl = trit_chat_tmpl_from_name(optarg);
                if (cfg.chat_tmpl < 0) {
                    fprintf(stderr, "trit serve: unknown chat template '%s'\n", optarg);
                    return 2;
                }
            }
            break;
        case O_GRACE:
            if (parse_int("--grace", optarg, 0, 3600, &x)) return 2;
            cfg.grace_s = (double)x;
            break;
        case O_CORS:
            cfg.cors = optarg;
            break;
        case O_HOSTALLOW:
            cfg.host_allow = optarg;
            break;
        case O_PARSING:
            if (parse_int("--max-parsing", optarg, 1, 1024, &x)) return 2;
            cfg.max_parsing = (int)x;
            break;
        case O_DRAFT:
            if (parse_int("--draft", optarg, 0, 16, &x)) return 2;
            cfg.n_draft = (int)x;
            break;
        case O_NUMERICS:
            if ((cfg.numerics = trit_numerics_parse(optarg)) < 0) {
                fprintf(stderr, "trit serve: --numerics: '%s' is not exact or fast\n", optarg);
                return 2;
            }
            break;
        case O_INSECURE:
            cfg.insecure_no_key = true;
            break;
        case O_FAULT:
            if (srv_fault_parse(&cfg, optarg)) return 2;
            break;
        default: /* '?': unknown option or a missing value */
            fprintf(stderr, "trit serve: unknown option or missing value: '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!model_path) {
        serve_usage(stderr);
        return 2;
    }
    trit_err err = {0};
    char *key = NULL;
    if (key_arg) {
        key = trit_api_key_take_arg(key_arg);
    } else if (trit_api_key_load(key_file, "TRIT_API_KEY", &key, &err)) {
        fprintf(stderr, "trit serve: %s\n", err.msg);
        return 2;
    }
    cfg.api_key = key;
    trit_model *m = trit_model_load(model_path, &err);
    if (!m) {
        fprintf(stderr, "trit serve: %s\n", err.msg);
        free(key);
        return 1;
    }
    trit_tokenizer *tok = trit_tok_load(m->gguf, &err);
    if (!tok) {
        fprintf(stderr, "trit serve: %s: %s\n", model_path, err.msg);
        trit_model_free(m);
        free(key);
        return 1;
    }
    int rc = srv_run(&cfg, m, tok, &err);
    if (rc) fprintf(stderr, "trit serve: %s\n", err.msg);
    trit_tok_free(tok);
    trit_model_free(m);
    free(key);
    return rc ? 1 : 0;
}
