/* cmd_shadow.c — `trit shadow`: the live shadow proxy (primary answers, candidate compared). */
#include "base/base.h"
#include "cli/cli.h"
#include "parity/shadow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: trit shadow --listen HOST:PORT --primary URL --candidate URL [options]\n"
        "\n"
        "A live shadow proxy. Every request is forwarded to the primary (gen-1) and its answer\n"
        "returned unchanged (status, Content-Type, body; SSE streamed through). Completions and\n"
        "chat completions are also copied to the candidate (gen-2) off the critical path, the\n"
        "two answers compared, and one burn-in-format record (source \"shadow\") appended to\n"
        "the ledger. Stop with Ctrl-C / SIGTERM (the queue of copies is drained first).\n"
        "  --listen HOST:PORT   address to serve on (IPv4; port 0 = any free port)\n"
        "  --primary URL        gen-1 server whose answers the clients get\n"
        "  --candidate URL      gen-2 server that is compared\n"
        "  --ledger FILE        JSONL ledger (default shadow.ledger.jsonl)\n"
        "  --api-key KEY        bearer token for the candidate (default: the client's header)\n"
        "  --queue N            copies waiting for the candidate before new ones are dropped "
        "(64)\n"
        "  --timeout S          per upstream request (600)\n"
        "  --quiet              no per-request log lines\n"
        "exit: 0 stopped cleanly, 1 cannot listen / write the ledger, 2 usage\n");
}

int cmd_shadow(int argc, char **argv) {
    trit_shadow_opts o;
    trit_shadow_opts_default(&o);
    o.ledger_path = "shadow.ledger.jsonl";
    const char *listen = NULL;
    char host[256];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            o.quiet = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "trit shadow: %s needs a value (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        char *end;
        if (!strcmp(a, "--listen")) {
            listen = v;
        } else if (!strcmp(a, "--primary")) {
            o.primary = v;
        } else if (!strcmp(a, "--candidate")) {
            o.candidate = v;
        } else if (!strcmp(a, "--ledger")) {
            o.ledger_path = v;
        } else if (!strcmp(a, "--api-key")) {
            o.api_key = v;
        } else if (!strcmp(a, "--queue")) {
            long q = strtol(v, &end, 10);
            if (*end || q < 1 || q > 100000) {
                fprintf(stderr, "trit shadow: --queue %s: expected 1..100000\n", v);
                return 2;
            }
            o.queue_max = (int)q;
        } else if (!strcmp(a, "--timeout")) {
            double t = strtod(v, &end);
            if (*end || !(t > 0)) {
                fprintf(stderr, "trit shadow: --timeout %s: expected seconds > 0\n", v);
                return 2;
            }
            o.timeout_s = t;
        } else {
            fprintf(stderr, "trit shadow: unknown argument '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!listen || !o.primary || !o.candidate) {
        fprintf(stderr, "trit shadow: --listen, --primary and --candidate are required\n");
        return 2;
    }
    const char *urls[2] = {o.primary, o.candidate};
    for (int k = 0; k < 2; k++)
        if (strncmp(urls[k], "http://", 7) != 0 && strncmp(urls[k], "https://", 8) != 0) {
            fprintf(stderr, "trit shadow: '%s' is not an http:// or https:// URL\n", urls[k]);
            return 2;
        }
    const char *colon = strrchr(listen, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == listen || *end || colon[1] == 0 || port < 0 || port > 65535 ||
        (size_t)(colon - listen) >= sizeof host) {
        fprintf(stderr, "trit shadow: --listen %s: expected HOST:PORT (e.g. 127.0.0.1:8090)\n",
                listen);
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    o.host = host;
    o.port = (int)port;
    trit_err err = {0};
    trit_shadow_counts c;
    if (trit_shadow_run(&o, &c, &err)) {
        fprintf(stderr, "trit shadow: %s\n", err.msg);
        return err.code == TRIT_EINVAL ? 2 : 1;
    }
    return 0;
}
