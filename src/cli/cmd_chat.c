/* cli/cmd_chat.c — `trit chat`: read lines from stdin, send each as a user message to an
 * OpenAI-compatible server (streaming chat completions via the client module), print the
 * answer as it arrives, and keep the conversation. Works against trit serve and llama-server. */
#include "base/base.h"
#include "cli/cli.h"
#include "client/client.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --help: every option of chat_options. */
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
               "  --timeout S        per answer, seconds (default 600; or 250ms, 90s, 10m, 1h)\n\n"
               "Lines '/reset' (forget the conversation) and '/quit' are commands.\n"
               "Exit status: 0 ok, 1 a request failed, 2 usage error.\n");
}

/* The client's streaming callback: each piece of the answer to stdout as it arrives. */
static int print_delta(void *user, const char *delta, size_t n, const trit_client_token *tok) {
    (void)tok;
    size_t *printed = user;
    if (n) fwrite(delta, 1, n, stdout); /* an empty delta may come with a NULL pointer */
    fflush(stdout);
    *printed += n;
    return 0;
}

/* The conversation: messages sent so far, each content owned here. */
typedef struct history {
    trit_client_msg *m;
    char **owned;
    int n, cap;
} history;

/* Append a message (content copied). */
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

/* Forget the messages from n on. */
static void hist_truncate(history *h, int n) {
    while (h->n > n) free(h->owned[--h->n]);
}

/* What the command line asked for (timeout in seconds; temperature and seed -1: the
 * server's). */
typedef struct chat_args {
    const char *url, *key_file, *system, *model;
    char *key_arg; /* --api-key's argv string (trit_api_key_take_arg wipes it) */
    int max_tokens;
    double temperature, timeout;
    long long seed;
} chat_args;

enum { O_URL = 256, O_KEY, O_KEYFILE, O_SYSTEM, O_MODEL, O_MAX, O_TEMP, O_SEED, O_TIMEOUT };
static const struct option chat_options[] = {{"url", required_argument, 0, O_URL},
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

/* One option's value into a: 0, or -1 after saying why. */
static int chat_option(int c, char *v, chat_args *a) {
    const char *flag = cli_opt_name(chat_options, c);
    long seed;
    switch (c) {
    case O_URL:
        return cli_opt_url("chat", flag, v, &a->url);
    case O_MAX:
        return cli_opt_int("chat", flag, v, 1, 1 << 24, &a->max_tokens);
    case O_TEMP:
        return cli_opt_double("chat", flag, v, 0, INFINITY, &a->temperature);
    case O_TIMEOUT:
        return cli_opt_duration("chat", flag, v, 1e-3, INFINITY, &a->timeout);
    case O_SEED:
        if (cli_opt_long("chat", flag, v, 0, LONG_MAX, &seed)) return -1;
        a->seed = seed;
        return 0;
    case O_KEY:
        a->key_arg = v;
        return 0;
    case O_KEYFILE:
        a->key_file = v;
        return 0;
    case O_SYSTEM:
        a->system = v;
        return 0;
    case O_MODEL:
        a->model = v;
        return 0;
    }
    return -1;
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (said on stderr). */
static int parse_chat(int argc, char **argv, chat_args *a) {
    *a = (chat_args){.url = "http://127.0.0.1:8180", .temperature = -1, .timeout = 600, .seed = -1};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = cli_getopt(argc, argv, "h", chat_options)) != -1) {
        if (c == 'h') {
            chat_usage(stdout);
            return 1;
        }
        if (c == '?') { /* an unknown option or a missing value */
            fprintf(stderr,
                    "trit chat: unknown option or missing value: '%s' (see trit chat --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (chat_option(c, optarg, a)) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "trit chat: unexpected argument '%s' (see trit chat --help)\n",
                argv[optind]);
        return 2;
    }
    return 0;
}

/* One exchange: send the conversation with line as the user's new message, stream the
 * answer to stdout and keep it. On failure the message is forgotten; returns 0 or 1. */
static int chat_turn(const chat_args *a, const char *api_key, history *h, const char *line) {
    hist_push(h, "user", line);
    size_t printed = 0;
    trit_client_req req = {.url = a->url,
                           .api_key = api_key,
                           .model = a->model,
                           .messages = h->m,
                           .n_messages = h->n,
                           .max_tokens = a->max_tokens,
                           .temperature = a->temperature,
                           .seed = a->seed,
                           .timeout_s = a->timeout,
                           .stream = true,
                           .on_chunk = print_delta,
                           .user = &printed};
    trit_client_resp resp;
    int rc = 0;
    if (trit_client_chat(&req, &resp)) {
        if (printed) fputc('\n', stdout);
        fprintf(stderr, "trit chat: %s\n", resp.msg);
        hist_truncate(h, h->n - 1); /* forget the unanswered message */
        rc = 1;
    } else {
        if (!printed && resp.content_len) fwrite(resp.content, 1, resp.content_len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        hist_push(h, "assistant", resp.content ? resp.content : "");
    }
    trit_client_resp_free(&resp);
    return rc;
}

/* Read stdin line by line until EOF or /quit: /reset forgets the conversation (keeping the
 * --system message), other non-empty lines are sent. 0, or 1 when any line failed. */
static int chat_loop(const chat_args *a, const char *api_key) {
    history h = {0};
    if (a->system) hist_push(&h, "system", a->system);
    const int base = h.n;
    const bool tty = isatty(0);
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
        } else if (!trit_utf8_valid(line, (size_t)n)) {
            fprintf(stderr, "trit chat: input line is not valid UTF-8; skipped\n");
            rc = 1;
        } else if (chat_turn(a, api_key, &h, line)) {
            rc = 1;
        }
    }
    free(line);
    hist_truncate(&h, 0);
    free(h.m);
    free(h.owned);
    return rc;
}

/* The API key (a key that cannot be read is a usage error, 2), then the conversation. */
static int run_chat(const chat_args *a) {
    char *api_key = NULL;
    trit_err err = {0};
    if (a->key_arg) {
        api_key = trit_api_key_take_arg(a->key_arg);
    } else if (trit_api_key_load(a->key_file, "TRIT_API_KEY", &api_key, &err)) {
        fprintf(stderr, "trit chat: %s\n", err.msg);
        return 2;
    }
    int rc = chat_loop(a, api_key);
    free(api_key);
    return rc;
}

/* `trit chat`: the command line into its options, then the run; the exit code (cli.h). */
int cmd_chat(int argc, char **argv) {
    chat_args a;
    int rc = parse_chat(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    return run_chat(&a);
}
