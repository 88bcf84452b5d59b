/* cli/cmd_chat.c — `trit chat`: read lines from stdin, send each as a user message to an
 * OpenAI-compatible server (streaming chat completions via the client module), print the
 * answer as it arrives, and keep the conversation. Works against trit serve and llama-server. */
#include "base/base.h"
#include "cli/cli.h"
#include "client/client.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void chat_usage(FILE *f) {
    fprintf(f, "usage: trit chat [options]  (one user message per stdin line)\n\n"
               "  --url URL          server base URL (default http://127.0.0.1:8180)\n"
               "  --api-key-file F   send 'Authorization: Bearer KEY' with the key in file F\n"
               "                     (chmod 600; default $TRIT_API_KEY)\n"
               "  --api-key KEY      the same from the command line (visible in ps: avoid)\n"
               "  --system TEXT      system message that starts the conversation\n"
               "  --max-tokens N     per answer (default: the server's)\n"
               "  --temperature T    sampling temperature (default: the server's)\n"
               "  --seed N           sampling seed\n"
               "  --model NAME       model field to send (default: omitted)\n"
               "  --timeout S        per answer, seconds (default 600)\n\n"
               "Lines '/reset' (forget the conversation) and '/quit' are commands.\n"
               "Exit status: 0 ok, 1 a request failed, 2 usage error.\n");
}

static int print_delta(void *user, const char *delta, size_t n, const trit_client_token *tok) {
    (void)tok;
    size_t *printed = user;
    fwrite(delta, 1, n, stdout);
    fflush(stdout);
    *printed += n;
    return 0;
}

typedef struct history {
    trit_client_msg *m;
    char **owned;
    int n, cap;
} history;

static void hist_push(history *h, const char *role, const char *content) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 8;
        h->m = xrealloc(h->m, (size_t)h->cap * sizeof *h->m);
        h->owned = xrealloc(h->owned, (size_t)h->cap * sizeof *h->owned);
    }
    h->owned[h->n] = xstrdup(content);
    h->m[h->n].role = role;
    h->m[h->n].content = h->owned[h->n];
    h->n++;
}

static void hist_truncate(history *h, int n) {
    while (h->n > n) free(h->owned[--h->n]);
}

int cmd_chat(int argc, char **argv) {
    const char *url = "http://127.0.0.1:8180", *key_file = NULL;
    char *key_arg = NULL;
    const char *system = NULL, *model = NULL;
    int max_tokens = 0;
    double temperature = -1, timeout = 600;
    long long seed = -1;
    enum { O_URL = 256, O_KEY, O_KEYFILE, O_SYSTEM, O_MODEL, O_MAX, O_TEMP, O_SEED, O_TIMEOUT };
    static const struct option lo[] = {{"url", required_argument, 0, O_URL},
                                       {"api-key", required_argument, 0, O_KEY},
                                       {"api-key-file", required_argument, 0, O_KEYFILE},
                                       {"system", required_argument, 0, O_SYSTEM},
                                       {"model", required_argument, 0, O_MODEL},
                                       {"max-tokens", required_argument, 0, O_MAX},
                                       {"temperature", required_argument, 0, O_TEMP},
                                       {"seed", required_argument, 0, O_SEED},
                                       {"timeout", required_argument, 0, O_TIMEOUT},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        const char *a = argv[optind - 1], *v = optarg;
        char *end = NULL;
        switch (o) {
        case 'h':
            chat_usage(stdout);
            return 0;
        case O_URL:
            url = v;
            break;
        case O_KEY:
            key_arg = optarg;
            break;
        case O_KEYFILE:
            key_file = v;
            break;
        case O_SYSTEM:
            system = v;
            break;
        case O_MODEL:
            model = v;
            break;
        case O_MAX: {
            long x = strtol(v, &end, 10);
            if (*end || x < 1 || x > 1 << 24) goto bad;
            max_tokens = (int)x;
            break;
        }
        case O_TEMP:
            temperature = strtod(v, &end);
            if (*end || temperature < 0) goto bad;
            break;
        case O_SEED:
            seed = strtoll(v, &end, 10);
            if (*end || seed < 0) goto bad;
            break;
        case O_TIMEOUT:
            timeout = strtod(v, &end);
            if (*end || timeout <= 0) goto bad;
            break;
        default: /* '?': unknown option or a missing value */
            fprintf(stderr,
                    "trit chat: unknown option or missing value: '%s' (see trit chat --help)\n", a);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "trit chat: bad value '%s' for %s\n", v, a);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "trit chat: unexpected argument '%s' (see trit chat --help)\n",
                argv[optind]);
        return 2;
    }
    char *api_key = NULL;
    trit_err err = {0};
    if (key_arg) {
        api_key = trit_api_key_take_arg(key_arg);
    } else if (trit_api_key_load(key_file, "TRIT_API_KEY", &api_key, &err)) {
        fprintf(stderr, "trit chat: %s\n", err.msg);
        return 2;
    }

    history h = {0};
    if (system) hist_push(&h, "system", system);
    int base = h.n;
    bool tty = isatty(0);
    int rc = 0;
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        if (tty) fputs("> ", stderr);
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) {
            hist_truncate(&h, base);
            continue;
        }
        if (!trit_utf8_valid(line, (size_t)n)) {
            fprintf(stderr, "trit chat: input line is not valid UTF-8; skipped\n");
            rc = 1;
            continue;
        }
        hist_push(&h, "user", line);
        size_t printed = 0;
        trit_client_req req = {.url = url,
                               .api_key = api_key,
                               .model = model,
                               .messages = h.m,
                               .n_messages = h.n,
                               .max_tokens = max_tokens,
                               .temperature = temperature,
                               .seed = seed,
                               .timeout_s = timeout,
                               .stream = true,
                               .on_chunk = print_delta,
                               .user = &printed};
        trit_client_resp resp;
        if (trit_client_chat(&req, &resp)) {
            if (printed) fputc('\n', stdout);
            fprintf(stderr, "trit chat: %s\n", resp.msg);
            hist_truncate(&h, h.n - 1); /* forget the unanswered message */
            rc = 1;
        } else {
            if (!printed && resp.content_len) fwrite(resp.content, 1, resp.content_len, stdout);
            fputc('\n', stdout);
            fflush(stdout);
            hist_push(&h, "assistant", resp.content ? resp.content : "");
        }
        trit_client_resp_free(&resp);
    }
    free(line);
    hist_truncate(&h, 0);
    free(h.m);
    free(h.owned);
    free(api_key);
    return rc;
}
