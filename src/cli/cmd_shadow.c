/* cmd_shadow.c — `trit shadow`: the live shadow proxy (gen-1 answers, gen-2 compared). */
#include "base/base.h"
#include "cli/cli.h"
#include "client/client.h"
#include "parity/shadow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: every option of shadow_options and its default. */
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
        "  --max-body BYTES          request body limit (default 1048576; K, M, G units) -> 413\n"
        "  --max-reply BYTES         gen-1/gen-2 reply bytes kept for the comparison (default\n"
        "                            16 MiB; longer replies still reach the client, uncompared)\n"
        "  --queue N                 copies waiting for gen-2 before new ones are dropped (64)\n"
        "  --timeout S               per upstream request (600)\n"
        "  --grace S                 on shutdown, in-flight work gets this long (5)\n"
        "                            (S: seconds, or with a unit: 250ms, 90s, 10m, 1h)\n"
        "  --quiet                   no per-request log lines\n"
        "  --insecure-no-key         listen on a non-loopback address without a key (refused\n"
        "                            otherwise; warned on every start)\n"
        "exit: 0 stopped cleanly, 1 cannot listen / write the ledger, 2 usage\n");
}

/* What the command line asked for: the proxy's options, where its keys come from, and the
 * --listen address split into host (held here) and port. */
typedef struct shadow_args {
    trit_shadow_opts o;
    const char *listen, *key_file, *cand_key_file;
    char host[256];
} shadow_args;

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
static const struct option shadow_options[] = {
    {"listen", required_argument, 0, O_LISTEN},
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

/* The limits: body and reply sizes, queue length, timeout and grace. 1 when c is not one. */
static int shadow_limit_option(int c, const char *flag, const char *v, trit_shadow_opts *o) {
    switch (c) {
    case O_MAXBODY:
        return cli_opt_size("shadow", flag, v, 64, (size_t)1 << 30, &o->max_body);
    case O_MAXREPLY:
        return cli_opt_size("shadow", flag, v, 1024, (size_t)1 << 32, &o->max_reply);
    case O_QUEUE:
        return cli_opt_int("shadow", flag, v, 1, 100000, &o->queue_max);
    case O_TIMEOUT:
        return cli_opt_duration("shadow", flag, v, 1e-3, 86400, &o->timeout_s);
    case O_GRACE:
        return cli_opt_duration("shadow", flag, v, 0, 86400, &o->grace_s);
    }
    return 1;
}

/* One option's value into a: 0, or -1 after saying why. */
static int shadow_option(int c, const char *v, shadow_args *a) {
    const char *flag = cli_opt_name(shadow_options, c);
    const int rc = shadow_limit_option(c, flag, v, &a->o);
    if (rc <= 0) return rc;
    switch (c) {
    case O_LISTEN:
        a->listen = v;
        return 0;
    case O_PRIMARY:
        return cli_opt_url("shadow", flag, v, &a->o.gen1_url);
    case O_CANDIDATE:
        return cli_opt_url("shadow", flag, v, &a->o.gen2_url);
    case O_LEDGER:
        a->o.ledger_path = v;
        return 0;
    case O_KEYFILE:
        a->key_file = v;
        return 0;
    case O_CANDKEY:
        a->cand_key_file = v;
        return 0;
    case O_HOSTALLOW:
        a->o.host_allow = v;
        return 0;
    case O_FWD:
        a->o.forward_auth = true;
        return 0;
    case O_INSECURE:
        a->o.insecure_no_key = true;
        return 0;
    case O_QUIET:
        a->o.quiet = true;
        return 0;
    }
    return -1;
}

/* --listen HOST:PORT into a->host and a->o.port: 0, or -1 after saying why. */
static int parse_listen(shadow_args *a) {
    const char *colon = strrchr(a->listen, ':');
    long port;
    if (!colon || colon == a->listen || (size_t)(colon - a->listen) >= sizeof a->host ||
        trit_parse_long(colon + 1, 0, 65535, &port))
        return cli_opt_bad("shadow", "listen", a->listen,
                           "must be HOST:PORT (e.g. 127.0.0.1:8090; port 0..65535)");
    memcpy(a->host, a->listen, (size_t)(colon - a->listen));
    a->host[colon - a->listen] = 0;
    a->o.host = a->host;
    a->o.port = (int)port;
    return 0;
}

/* The options every run needs, the upstream URLs as the proxy accepts them (no user info,
 * query or fragment), and the listen address: 0, or 2 after saying why. */
static int shadow_complete(shadow_args *a) {
    if (!a->listen || !a->o.gen1_url || !a->o.gen2_url) {
        fprintf(stderr, "trit shadow: --listen, --primary and --candidate are required\n");
        return 2;
    }
    char why[300];
    const char *urls[2] = {a->o.gen1_url, a->o.gen2_url};
    for (int k = 0; k < 2; k++)
        if (trit_shadow_check_base(urls[k], why, sizeof why)) {
            fprintf(stderr, "trit shadow: %s %s\n", k ? "--candidate" : "--primary", why);
            return 2;
        }
    return parse_listen(a) ? 2 : 0;
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (said on stderr). */
static int parse_shadow(int argc, char **argv, shadow_args *a) {
    *a = (shadow_args){0};
    trit_shadow_opts_default(&a->o);
    a->o.ledger_path = "shadow.ledger.jsonl";
    int c;
    optind = 1;
    opterr = 0;
    while ((c = cli_getopt(argc, argv, "h", shadow_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?') { /* getopt: an unknown option or a missing value */
            fprintf(stderr, "trit shadow: bad or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (shadow_option(c, optarg, a)) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "trit shadow: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    return shadow_complete(a);
}

/* Run the proxy until SIGINT/SIGTERM (parity/shadow.c): the keys first (a key that cannot be
 * read is a usage error), then the proxy. 0 after a clean stop; 2 for what the proxy calls
 * invalid, 1 for other failures. */
static int run_shadow(shadow_args *a) {
    trit_err err = {0};
    char *key = NULL, *cand_key = NULL;
    if (trit_api_key_load(a->key_file, "TRIT_API_KEY", &key, &err) ||
        trit_api_key_load(a->cand_key_file, "TRIT_CANDIDATE_API_KEY", &cand_key, &err)) {
        fprintf(stderr, "trit shadow: %s\n", err.msg);
        free(key);
        return 2;
    }
    a->o.api_key = key;
    a->o.gen2_key = cand_key;
    trit_shadow_counts cnt;
    int rc = trit_shadow_run(&a->o, &cnt, &err);
    if (rc) fprintf(stderr, "trit shadow: %s\n", err.msg);
    free(key);
    free(cand_key);
    if (rc) return err.code == TRIT_EINVAL ? 2 : 1;
    return 0;
}

/* `trit shadow`: the command line into its options, then the run; the exit code (cli.h). */
int cmd_shadow(int argc, char **argv) {
    shadow_args a;
    int rc = parse_shadow(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    return run_shadow(&a);
}
