/* cli — the `trit` binary: main.c dispatches to one cmd_<name>.c per subcommand.
 * Each command returns the process exit code (0 ok, 1 failure, 2 usage error) and parses its
 * options with getopt_long. cli/ uses the model, tokenizer and parity APIs, never a struct's
 * internals (e.g. trit_model_gguf, not model->gguf). */
#ifndef TRIT_CLI_H
#define TRIT_CLI_H

#include <stdio.h>
#include <string.h>

#define TRIT_COMMANDS(X)                                                                           \
    X(doctor, "preflight: compiler, CPU features, libraries, reference llama.cpp")                 \
    X(inspect, "print a GGUF file's metadata and tensor table (--json)")                           \
    X(quantize, "convert a GGUF model's tensors: quantize IN OUT TYPE")                            \
    X(mkmodel, "write a deterministic synthetic model (llama/bitnet, presets)")                    \
    X(tokenize, "tokenize text with a model's vocabulary")                                         \
    X(run, "generate text from a prompt")                                                          \
    X(bench, "prompt-processing and generation speed (like llama-bench)")                          \
    X(serve, "OpenAI-compatible HTTP server")                                                      \
    X(chat, "interactive chat against an OpenAI-compatible server")                                \
    X(burnin, "shadow burn-in: same prompts to gen-1 and gen-2, compare, ledger, stats")           \
    X(ppl, "perplexity and KL divergence")                                                         \
    X(ladder, "logit parity ladder between two backends")                                          \
    X(trace, "layer-by-layer activation traces: capture and diff")                                 \
    X(gate, "cutover gate table: GO / NO-GO")                                                      \
    X(shadow, "live shadow proxy: primary answers, candidate compared")                            \
    X(report, "self-contained HTML report from a ledger")                                          \
    X(train, "train a small BitNet b1.58 model on a text corpus (QAT) and export GGUF")

#define X(name, help) int cmd_##name(int argc, char **argv);
TRIT_COMMANDS(X)
#undef X

/* The prologue of a command with subcommands (`trit CMD SUB [options]`): with no SUB, or
 * --help / -h in its place, usage is printed (stderr / stdout), *rc gets 2 / 0 and NULL is
 * returned. Otherwise argv[1] becomes "trit CMD SUB" (written into prog[n]) so that
 * getopt_long's messages name the subcommand, and SUB is returned. */
static inline const char *cli_subcommand(int argc, char **argv, const char *cmd,
                                         void (*usage)(FILE *), char *prog, size_t n, int *rc) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        *rc = argc < 2 ? 2 : 0;
        return NULL;
    }
    const char *sub = argv[1];
    snprintf(prog, n, "trit %s %.20s", cmd, sub);
    argv[1] = prog;
    return sub;
}

#endif
