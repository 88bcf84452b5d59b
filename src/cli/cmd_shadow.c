/* cmd_shadow.c — `trit shadow`: the live shadow proxy (gen-1 answers, gen-2 compared). */
#include "base/base.h"
#include "cli/cli.h"
#include "client/client.h"
#include "parity/shadow.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: trit shadow --listen HOST:PORT --primary URL --candidate URL [options]\n"
        "\n"
        "A live shadow proxy. Every origin-form request (\"/path?query\") is forwarded to the\n"
        "primary (gen-1) and its answer returned unchanged (status, Content-Type, body; SSE\n"
        "streamed through); other request-targets get 400. Completions and chat completions\n"
        "are also copied to the candidate (gen-2) off the critical path, the two answers\n"
        "compared, and one burn-in-format record (source \"shadow\") appended to the ledger.\n"
        "Stop with Ctrl-C / SIGTERM (in-flight work gets --grace seconds, then is aborted).\n"
        "  --listen HOST:PORT        address to serve on (IPv4; port 0 = any free port)\n"
        "  --primary URL             gen-1 server whose answers the clients get\n"
        "  --candidate URL           gen-2 server that is compared\n"
        "  --ledger FILE             JSONL ledger (default shadow.ledger.jsonl)\n"
        "  --api-key-file FILE       clients must send 'Authorization: Bearer KEY' to the proxy\n"
        "                            (default $TRIT_API_KEY; none: no check). The client's\n"
        "                            header is still what gen-1 receives.\n"
        "  --candidate-key-file FILE bearer token sent to gen-2 (default\n"
        "                            $TRIT_CANDIDATE_API_KEY)\n"
        "  --forward-auth            send the client's Authorization header to gen-2 too\n"
        "  --host-allow NAMES        Host names accepted besides localhost/127.0.0.1/[::1] and "
        "the\n"
        "                            listen address (comma list), when listening on loopback\n"
        "                            (default: gen-2 gets no Authorization unless given a key)\n"
        "  --max-body BYTES          request body limit (default 1048576) -> 413\n"
        "  --max-reply BYTES         gen-1/gen-2 reply bytes kept for the comparison (default\n"
        "                            16 MiB; longer replies still reach the client, uncompared)\n"
        "  --queue N                 copies waiting for gen-2 before new ones are dropped (64)\n"
        "  --timeout S               per upstream request (600)\n"
        "  --grace S                 on shutdown, in-flight work gets this long (5)\n"
        "  --quiet                   no per-request log lines\n"
        "  --insecure-no-key         listen on a non-loopback address without a key (refused\n"
        "                            otherwise; warned on every start)\n"
        "exit: 0 stopped cleanly, 1 cannot listen / write the ledger, 2 usage\n");
}

static int parse_size(const char *opt, const char *v, long lo, long hi, long *out) {
    if (trit_parse_long(v, lo, hi, out)) {
        fprintf(stderr, "trit shadow: %s %s: expected %ld..%ld\n", opt, v, lo, hi);
        return -1;
    }
    return 0;
}

static int parse_seconds(const char *opt, const char *v, double *out) {
    char *end;
    double t = strtod(v, &end);
    if (*end || !(t >= 0) || t > 86400) {
        fprintf(stderr, "trit shadow: %s %s: expected seconds in [0, 86400]\n", opt, v);
        return -1;
    }
    *out = t;
    return 0;
}

int cmd_shadow(int argc, char **argv) {
    trit_shadow_opts o;
    trit_shadow_opts_default(&o);
    o.ledger_path = "shadow.ledger.jsonl";
    const char *listen = NULL, *key_file = NULL, *cand_key_file = NULL;
    char host[256];
    enum {
        O_LISTEN = 256,
        O_PRIMARY,
        O_CANDIDATE,
        O_LEDGER,
        O_KEYFILE,
        O_CANDKEY,
        O_FWD,
        O_HOSTALLOW,
        O_MAXBODY,
        O_MAXREPLY,
        O_QUEUE,
        O_TIMEOUT,
        O_GRACE,
        O_QUIET,
        O_INSECURE
    };
    static const struct option lo[] = {{"listen", required_argument, 0, O_LISTEN},
                                       {"primary", required_argument, 0, O_PRIMARY},
                                       {"candidate", required_argument, 0, O_CANDIDATE},
                                       {"ledger", required_argument, 0, O_LEDGER},
                                       {"api-key-file", required_argument, 0, O_KEYFILE},
                                       {"candidate-key-file", required_argument, 0, O_CANDKEY},
                                       {"forward-auth", no_argument, 0, O_FWD},
                                       {"host-allow", required_argument, 0, O_HOSTALLOW},
                                       {"max-body", required_argument, 0, O_MAXBODY},
                                       {"max-reply", required_argument, 0, O_MAXREPLY},
                                       {"queue", required_argument, 0, O_QUEUE},
                                       {"timeout", required_argument, 0, O_TIMEOUT},
                                       {"grace", required_argument, 0, O_GRACE},
                                       {"quiet", no_argument, 0, O_QUIET},
                                       {"insecure-no-key", no_argument, 0, O_INSECURE},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    long x;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            listen = optarg;
            break;
        case O_PRIMARY:
            o.gen1_url = optarg;
            break;
        case O_CANDIDATE:
            o.gen2_url = optarg;
            break;
        case O_LEDGER:
            o.ledger_path = optarg;
            break;
        case O_KEYFILE:
            key_file = optarg;
            break;
        case O_CANDKEY:
            cand_key_file = optarg;
            break;
        case O_HOSTALLOW:
            o.host_allow = optarg;
            break;
        case O_FWD:
            o.forward_auth = true;
            break;
        case O_INSECURE:
            o.insecure_no_key = true;
            break;
        case O_MAXBODY:
            if (parse_size("--max-body", optarg, 64, 1L << 30, &x)) return 2;
            o.max_body = (size_t)x;
            break;
        case O_MAXREPLY:
            if (parse_size("--max-reply", optarg, 1024, 1L << 32, &x)) return 2;
            o.max_reply = (size_t)x;
            break;
        case O_QUEUE:
            if (parse_size("--queue", optarg, 1, 100000, &x)) return 2;
            o.queue_max = (int)x;
            break;
        case O_TIMEOUT:
            if (parse_seconds("--timeout", optarg, &o.timeout_s)) return 2;
            if (!(o.timeout_s > 0)) {
                fprintf(stderr, "trit shadow: --timeout must be > 0\n");
                return 2;
            }
            break;
        case O_GRACE:
            if (parse_seconds("--grace", optarg, &o.grace_s)) return 2;
            break;
        case O_QUIET:
            o.quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default: /* '?' / ':' from getopt: unknown option or missing value */
            fprintf(stderr, "trit shadow: bad or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "trit shadow: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!listen || !o.gen1_url || !o.gen2_url) {
        fprintf(stderr, "trit shadow: --listen, --primary and --candidate are required\n");
        return 2;
    }
    char why[300];
    const char *urls[2] = {o.gen1_url, o.gen2_url};
    for (int k = 0; k < 2; k++)
        if (trit_shadow_check_base(urls[k], why, sizeof why)) {
            fprintf(stderr, "trit shadow: %s %s\n", k ? "--candidate" : "--primary", why);
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
    char *key = NULL, *cand_key = NULL;
    if (trit_api_key_load(key_file, "TRIT_API_KEY", &key, &err) ||
        trit_api_key_load(cand_key_file, "TRIT_CANDIDATE_API_KEY", &cand_key, &err)) {
        fprintf(stderr, "trit shadow: %s\n", err.msg);
        free(key);
        return 2;
    }
    o.api_key = key;
    o.gen2_key = cand_key;
    trit_shadow_counts cnt;
    int rc = trit_shadow_run(&o, &cnt, &err);
    if (rc) fprintf(stderr, "trit shadow: %s\n", err.msg);
    free(key);
    free(cand_key);
    if (rc) return err.code == TRIT_EINVAL ? 2 : 1;
    return 0;
}
