/* cli/cmd_chat.c — `trit chat`: read lines from stdin, send each as a user message to an
 * OpenAI-compatible server (streaming chat completions via the client module), print the
 * answer as it arrives, and keep the conversation. Works against trit serve and llama-server. */
#include "base/base.h"
#include "cli/cli.h"
#include "client/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void chat_usage(FILE *f) {
    fprintf(f, "usage: trit chat [options]  (one user message per stdin line)\n\n"
               "  --url URL          server base URL (default http://127.0.0.1:8180)\n"
               "  --api-key KEY      send 'Authorization: Bearer KEY' (default $TRIT_API_KEY)\n"
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
    const char *url = "http://127.0.0.1:8180", *api_key = getenv("TRIT_API_KEY");
    const char *system = NULL, *model = NULL;
    int max_tokens = 0;
    double temperature = -1, timeout = 600;
    long long seed = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            chat_usage(stdout);
            return 0;
        }
        if (a[0] != '-' || !strcmp(a, "-")) {
            fprintf(stderr, "trit chat: unexpected argument '%s' (see trit chat --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "trit chat: %s needs a value (see trit chat --help)\n", a);
            return 2;
        }
        char *end = NULL;
        i++;
        if (!strcmp(a, "--url")) {
            url = v;
        } else if (!strcmp(a, "--api-key")) {
            api_key = v;
        } else if (!strcmp(a, "--system")) {
            system = v;
        } else if (!strcmp(a, "--model")) {
            model = v;
        } else if (!strcmp(a, "--max-tokens")) {
            long x = strtol(v, &end, 10);
            if (*end || x < 1 || x > 1 << 24) goto bad;
            max_tokens = (int)x;
        } else if (!strcmp(a, "--temperature")) {
            temperature = strtod(v, &end);
            if (*end || temperature < 0) goto bad;
        } else if (!strcmp(a, "--seed")) {
            seed = strtoll(v, &end, 10);
            if (*end || seed < 0) goto bad;
        } else if (!strcmp(a, "--timeout")) {
            timeout = strtod(v, &end);
            if (*end || timeout <= 0) goto bad;
        } else {
            fprintf(stderr, "trit chat: unknown option '%s' (see trit chat --help)\n", a);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "trit chat: bad value '%s' for %s\n", v, a);
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
    return rc;
}
