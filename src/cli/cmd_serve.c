/* cli/cmd_serve.c — `trit serve MODEL [options]`: the OpenAI-compatible HTTP server. */
#include "base/base.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "model/model.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void serve_usage(FILE *f) {
    fprintf(f,
            "usage: trit serve MODEL.gguf [options]\n\n"
            "OpenAI-compatible server: POST /v1/chat/completions, /v1/completions, /tokenize,\n"
            "/detokenize; GET /v1/models, /health, /metrics. Stops cleanly on SIGINT/SIGTERM.\n\n"
            "  --host ADDR          IPv4 address to bind (default 127.0.0.1)\n"
            "  --port N             port (default 8180; 0 = any free port)\n"
            "  --threads N          engine threads, shared by all slots (default: all CPUs)\n"
            "  --slots N            requests served at once, batched into one forward pass per\n"
            "                       step, each with its own KV cache (default 4)\n"
            "  --draft N            prompt-lookup drafts per step, verified losslessly (the\n"
            "                       same reply as without; default 0 = off, at most 16)\n"
            "  --queue N            requests that may wait for a slot (default 16); more -> 429\n"
            "  --ctx N              context length per slot (default: min(train ctx, 4096))\n"
            "  --api-key KEY        require 'Authorization: Bearer KEY' (all but /health)\n"
            "  --max-body BYTES     request body limit (default 1048576) -> 413\n"
            "  --alias NAME         model name in responses (default: the file's basename)\n"
            "  --chat-template T    chatml | llama3 | bitnet | raw (default: the model's own,\n"
            "                       chatml when it has none, as llama-server does)\n"
            "  --grace SECONDS      on shutdown, wait this long for in-flight requests (default "
            "10)\n");
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
    const char *model_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            serve_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--host")) {
            if (!v) goto missing;
            cfg.host = v;
            i++;
        } else if (!strcmp(a, "--port")) {
            if (parse_int(a, v, 0, 65535, &x)) return 2;
            cfg.port = (int)x;
            i++;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (parse_int(a, v, 0, 1024, &x)) return 2;
            cfg.n_threads = (int)x;
            i++;
        } else if (!strcmp(a, "--slots") || !strcmp(a, "-np")) {
            if (parse_int(a, v, 1, 256, &x)) return 2;
            cfg.n_slots = (int)x;
            i++;
        } else if (!strcmp(a, "--draft")) {
            if (parse_int(a, v, 0, 16, &x)) return 2;
            cfg.n_draft = (int)x;
            i++;
        } else if (!strcmp(a, "--queue")) {
            if (parse_int(a, v, 0, 1 << 20, &x)) return 2;
            cfg.queue_cap = (int)x;
            i++;
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            if (parse_int(a, v, 0, 1 << 20, &x)) return 2;
            cfg.n_ctx = (int)x;
            i++;
        } else if (!strcmp(a, "--api-key")) {
            if (!v) goto missing;
            cfg.api_key = v;
            i++;
        } else if (!strcmp(a, "--max-body")) {
            if (parse_int(a, v, 64, 1L << 30, &x)) return 2;
            cfg.max_body = (size_t)x;
            i++;
        } else if (!strcmp(a, "--alias")) {
            if (!v) goto missing;
            cfg.alias = v;
            i++;
        } else if (!strcmp(a, "--chat-template")) {
            if (!v) goto missing;
            if (!strcmp(v, "chatml")) {
                cfg.chat_tmpl = SRV_TMPL_CHATML;
            } else {
                cfg.chat_tmpl = trit_chat_tmpl_from_name(v);
                if (cfg.chat_tmpl < 0) {
                    fprintf(stderr, "trit serve: unknown chat template '%s'\n", v);
                    return 2;
                }
            }
            i++;
        } else if (!strcmp(a, "--grace")) {
            if (parse_int(a, v, 0, 3600, &x)) return 2;
            cfg.grace_s = (double)x;
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "trit serve: unknown option '%s' (see trit serve --help)\n", a);
            return 2;
        } else if (!model_path) {
            model_path = a;
        } else {
            fprintf(stderr, "trit serve: unexpected argument '%s'\n", a);
            return 2;
        }
        continue;
    missing:
        fprintf(stderr, "trit serve: %s needs a value\n", a);
        return 2;
    }
    if (!model_path) {
        serve_usage(stderr);
        return 2;
    }
    trit_err err = {0};
    trit_model *m = trit_model_load(model_path, &err);
    if (!m) {
        fprintf(stderr, "trit serve: %s\n", err.msg);
        return 1;
    }
    trit_tokenizer *tok = trit_tok_load(m->gguf, &err);
    if (!tok) {
        fprintf(stderr, "trit serve: %s: %s\n", model_path, err.msg);
        trit_model_free(m);
        return 1;
    }
    int rc = srv_run(&cfg, m, tok, &err);
    if (rc) fprintf(stderr, "trit serve: %s\n", err.msg);
    trit_tok_free(tok);
    trit_model_free(m);
    return rc ? 1 : 0;
}
