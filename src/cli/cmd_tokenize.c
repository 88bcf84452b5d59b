/* cmd_tokenize.c — `trit tokenize MODEL [TEXT] [options]`: encode text with a model's
 * vocabulary (any GGUF with tokenizer.ggml.*, vocab-only files included) and print the ids.
 * Output matches llama-tokenize: "%6d -> 'piece'" lines, or with --ids a list "[1, 2, 3]". */
#include "cli/cli.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: every option of tokenize_options. */
static void usage(FILE *out) {
    fprintf(
        out,
        "usage: trit tokenize MODEL [TEXT] [options]\n"
        "\n"
        "Tokenize TEXT (or --file F, or --stdin) with MODEL's vocabulary.\n"
        "\n"
        "options:\n"
        "  --ids            print only the ids, as a list: [1, 2, 3]\n"
        "  --no-special     do not add BOS/EOS even if the vocabulary asks for them\n"
        "  --no-bos         the same as --no-special\n"
        "  --parse-special  recognise special tokens in the text (<|eot_id|> ...) as single ids\n"
        "  --file F         read the text from file F (bytes verbatim)\n"
        "  --stdin          read the text from standard input\n"
        "  --show-count     print the number of tokens at the end\n"
        "  --info           print the vocabulary's model, pre-tokenizer and special ids on "
        "stderr\n"
        "  -h, --help       this help\n"
        "A TEXT that starts with '-' goes after \"--\": trit tokenize MODEL -- -text\n"
        "\n"
        "The text must be valid UTF-8 (otherwise: error naming the byte offset, exit 1).\n"
        "exit codes: 0 ok, 1 error (model, input), 2 usage\n");
}

/* All of f into out: 0, or -1 on a read error. */
static int read_stream(FILE *f, trit_buf *out) {
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) trit_buf_append(out, buf, n);
    return ferror(f) ? -1 : 0;
}

/* The text to tokenize into in: 0, or 1 after saying why it could not be read. */
static int read_input(bool use_stdin, const char *file, const char *text, trit_buf *in) {
    trit_err err = {0};
    if (use_stdin && read_stream(stdin, in) != 0) {
        fprintf(stderr, "trit tokenize: error reading standard input\n");
        return 1;
    }
    if (!use_stdin && file && trit_read_file(file, in, &err) != 0) {
        fprintf(stderr, "trit tokenize: %s\n", err.msg);
        return 1;
    }
    if (!use_stdin && !file) trit_buf_puts(in, text);
    return 0;
}

/* llama-tokenize's output: "%6d -> 'piece'" lines, or with --ids one list "[1, 2, 3]". */
static void print_ids(const trit_tokenizer *t, const int32_t *ids, size_t n, bool ids_only,
                      bool show_count) {
    trit_buf piece = {0};
    if (ids_only) fputc('[', stdout);
    for (size_t i = 0; i < n; i++) {
        if (ids_only) {
            printf(i ? ", %d" : "%d", ids[i]);
            continue;
        }
        trit_buf_clear(&piece);
        trit_tok_piece(t, ids[i], true, &piece);
        printf("%6d -> '", ids[i]);
        fwrite(piece.p ? piece.p : "", 1, piece.len, stdout);
        printf("'\n");
    }
    if (ids_only) printf("]\n");
    if (show_count) printf("Total number of tokens: %zu\n", n);
    trit_buf_free(&piece);
}

/* What the command line asked for. */
typedef struct tokenize_args {
    const char *model, *text, *file;
    bool ids_only, add_special, parse_special, use_stdin, show_count, info;
} tokenize_args;

enum { O_IDS = 256, O_NO_SPECIAL, O_PARSE_SPECIAL, O_STDIN, O_SHOW_COUNT, O_INFO };
static const struct option tokenize_options[] = {{"ids", no_argument, 0, O_IDS},
                                                 {"no-special", no_argument, 0, O_NO_SPECIAL},
                                                 {"no-bos", no_argument, 0, O_NO_SPECIAL},
                                                 {"parse-special", no_argument, 0, O_PARSE_SPECIAL},
                                                 {"stdin", no_argument, 0, O_STDIN},
                                                 {"show-count", no_argument, 0, O_SHOW_COUNT},
                                                 {"info", no_argument, 0, O_INFO},
                                                 {"file", required_argument, 0, 'f'},
                                                 {"help", no_argument, 0, 'h'},
                                                 {0, 0, 0, 0}};

/* One option into a (none of them can have a bad value). */
static void tokenize_option(int c, const char *v, tokenize_args *a) {
    switch (c) {
    case O_IDS:
        a->ids_only = true;
        break;
    case O_NO_SPECIAL:
        a->add_special = false;
        break;
    case O_PARSE_SPECIAL:
        a->parse_special = true;
        break;
    case O_STDIN:
        a->use_stdin = true;
        break;
    case O_SHOW_COUNT:
        a->show_count = true;
        break;
    case O_INFO:
        a->info = true;
        break;
    case 'f':
        a->file = v;
        break;
    }
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (said on stderr).
 * MODEL, then TEXT (a text that starts with '-' goes after "--"). */
static int parse_tokenize(int argc, char **argv, tokenize_args *a) {
    *a = (tokenize_args){.add_special = true};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "f:h", tokenize_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?') return 2; /* getopt named the bad option */
        tokenize_option(c, optarg, a);
    }
    if (optind < argc) a->model = argv[optind++];
    if (optind < argc) a->text = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "trit tokenize: unexpected argument '%s' (quote the text)\n", argv[optind]);
        return 2;
    }
    if (!a->model) {
        usage(stderr);
        return 2;
    }
    if (!a->text && !a->file && !a->use_stdin) {
        fprintf(stderr, "trit tokenize: give TEXT, --file F or --stdin\n");
        return 2;
    }
    return 0;
}

/* --info: the vocabulary's model, pre-tokenizer, size, special ids and chat template. */
static void print_info(const trit_tokenizer *t) {
    fprintf(stderr, "model=%s pre=%s n_vocab=%d bos=%d eos=%d eot=%d add_bos=%d chat_template=%s\n",
            trit_tok_model(t), trit_tok_pre(t), trit_tok_n_vocab(t), trit_tok_bos(t),
            trit_tok_eos(t), trit_tok_eot(t), trit_tok_add_bos(t),
            trit_chat_tmpl_name(trit_tok_chat_tmpl(t)));
}

/* Load the vocabulary, read the text (stdin, a file's bytes verbatim, or the argument),
 * encode it and print the ids: 0, or 1 with the reason said. */
static int run_tokenize(const tokenize_args *a) {
    trit_err err = {0};
    trit_tokenizer *t = trit_tok_load_file(a->model, &err);
    if (!t) {
        fprintf(stderr, "trit tokenize: %s\n", err.msg);
        return 1;
    }
    if (a->info) print_info(t);
    trit_buf in = {0};
    int rc = read_input(a->use_stdin, a->file, a->text, &in);
    int32_t *ids = NULL;
    size_t n = 0;
    if (!rc && trit_tok_encode(t, in.p ? in.p : "", in.len, a->add_special, a->parse_special, &ids,
                               &n, &err) != 0) {
        fprintf(stderr, "trit tokenize: %s\n", err.msg);
        rc = 1;
    }
    if (!rc) print_ids(t, ids, n, a->ids_only, a->show_count);
    free(ids);
    trit_buf_free(&in);
    trit_tok_free(t);
    return rc;
}

/* `trit tokenize`: the command line into its options, then the run; the exit code (cli.h). */
int cmd_tokenize(int argc, char **argv) {
    tokenize_args a;
    int rc = parse_tokenize(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    return run_tokenize(&a);
}
