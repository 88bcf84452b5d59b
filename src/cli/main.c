/* cli/main.c — `trit <command> [args]`: dispatch table, version, help. */
#include "cli/cli.h"
#include "base/base.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name, *help;
    int (*fn)(int, char **);
} commands[] = {
#define X(name, help) {#name, help, cmd_##name},
    TRIT_COMMANDS(X)
#undef X
};

static void usage(FILE *out) {
    fprintf(out,
            "trit %s — ternary LLM inference engine and parity gates\n\n"
            "usage: trit <command> [options]   (trit <command> --help for its options)\n\n",
            TRIT_VERSION);
    for (size_t i = 0; i < TRIT_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        char build[96];
        trit_build_string(build, sizeof build); /* version + commit, as /props reports it */
        printf("trit %s (reference: node-llama-cpp %s)\n", build, TRIT_NLC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < TRIT_ARRAY_LEN(commands); i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        /* the command sees itself as "trit NAME" (getopt_long prefixes its messages with it) */
        char prog[64];
        snprintf(prog, sizeof prog, "trit %s", commands[i].name);
        argv[1] = prog;
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "trit: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
