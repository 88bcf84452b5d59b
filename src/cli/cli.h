/* cli — the `trit` binary: main.c dispatches to one cmd_<name>.c per subcommand.
 * Each command returns the process exit code (0 ok, 1 failure, 2 usage error) and has one
 * shape: an options struct (what the command line asked for), parse_<cmd>() filling it with
 * cli_getopt and the cli_opt_* value parsers below (opts.c), and run_<cmd>() doing the work in
 * named steps. Every long option of a command's table appears in its --help text and every
 * --flag of the text is in the table (tests/integration/07_cli_shape.sh checks both, and that
 * no function in src/cli is over 80 lines). cli/ uses the model, tokenizer and parity APIs,
 * never a struct's internals (e.g. trit_model_gguf, not model->gguf). */
#ifndef TRIT_CLI_H
#define TRIT_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
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

/* ---- option values (opts.c) ----
 * One parser per kind of value, shared by every command. Each takes the command as its
 * messages name it ("run", "trace capture"), the long option's name without "--" (see
 * cli_opt_name) and the text given. A good value sets *out and returns 0; a bad one leaves
 * *out alone, says on stderr
 *     trit CMD: --FLAG: WHY (got 'VALUE')
 * and returns -1, after which the command exits 2. Whole numbers follow base.h's
 * trit_parse_long rule (decimal, the whole text, no overflow); real numbers are strtod's
 * decimal syntax (no hex, inf or nan), the whole text; every range is inclusive. */
int cli_opt_long(const char *cmd, const char *flag, const char *v, long lo, long hi, long *out);
int cli_opt_int(const char *cmd, const char *flag, const char *v, int lo, int hi, int *out);
/* A whole number in 0..UINT64_MAX (seeds). */
int cli_opt_u64(const char *cmd, const char *flag, const char *v, uint64_t *out);
int cli_opt_double(const char *cmd, const char *flag, const char *v, double lo, double hi,
                   double *out);
int cli_opt_float(const char *cmd, const char *flag, const char *v, float lo, float hi, float *out);
/* A byte count: a whole number with an optional unit K, M or G (also KiB, MiB, GiB; any
 * case; powers of 1024): "65536", "64K", "16MiB". */
int cli_opt_size(const char *cmd, const char *flag, const char *v, size_t lo, size_t hi,
                 size_t *out);
/* A duration into seconds: a number with an optional unit ms, s, m, h or d (none: seconds):
 * "600", "1.5", "250ms", "10m", "1d". */
int cli_opt_duration(const char *cmd, const char *flag, const char *v, double lo, double hi,
                     double *out_s);
/* A timeout: cli_opt_duration's syntax, more than 0 and at most hi seconds. */
int cli_opt_timeout(const char *cmd, const char *flag, const char *v, double hi, double *out_s);
/* A point in time into epoch seconds, for positional arguments (no message: the command says
 * what it expected): ISO-8601 in UTC ("2026-12-07", "2026-12-07T18:30:00.5Z"; a fraction and
 * the 'Z' optional), epoch seconds ("1765000000"), or an age before now in
 * cli_opt_duration's units ("2h", "30m", "1d"). 0 and *out, or -1 leaving *out alone. */
int cli_time_value(const char *v, double now, double *out);
/* A server's base URL: http:// or https://, a host, an optional :PORT (1..65535), an
 * optional path; no spaces or control characters. *out = v. */
int cli_opt_url(const char *cmd, const char *flag, const char *v, const char **out);
/* A regular file that can be opened for reading now. *out = v. */
int cli_opt_file(const char *cmd, const char *flag, const char *v, const char **out);
/* One of n names (exact match): *out = its index. The message lists them. */
int cli_opt_choice(const char *cmd, const char *flag, const char *v, const char *const *names,
                   int n, int *out);
/* The shared message for a check none of the parsers above makes; returns -1. */
int cli_opt_bad(const char *cmd, const char *flag, const char *v, const char *why);
/* The long name of getopt_long's result c in table ("?" when none), for the parsers' flag. */
const char *cli_opt_name(const struct option *table, int c);
/* getopt_long, with one addition for the help check: `--list-options` as the first argument
 * (hidden) prints the table's long option names, one a line, and exits 0. */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *table);

#endif
