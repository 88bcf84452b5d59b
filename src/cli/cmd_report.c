/* cmd_report.c — `trit report`: one self-contained HTML page from ledgers and ppl figures. */
#include "base/base.h"
#include "cli/cli.h"
#include "parity/gates.h"
#include "parity/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: every option of report_options. */
static void usage(FILE *out) {
    fprintf(out,
            "usage: trit report --ledger FILE [--ledger FILE2 ...] [--ppl FILE] [--config INI]\n"
            "                   [--title TEXT] [--misses N] -o report.html\n"
            "\n"
            "Writes ONE self-contained HTML page (inline CSS and SVG; no scripts, no network):\n"
            "the cutover gate table (as `trit gate`), a summary, perplexity/KLD figures,\n"
            "exact-match rate over time, latency CDF per side, where replies diverge, misses\n"
            "per prompt, and the latest misses with both replies side by side.\n"
            "  --ledger FILE   burn-in or shadow ledger (several are merged)\n"
            "  --ppl FILE      `trit ppl --gen1 .. --gen2 .. -o FILE` output\n"
            "  --config INI    gate thresholds; without it the production defaults of\n"
            "                  docs/parity.md\n"
            "  --title TEXT    page title\n"
            "  --misses N      misses shown side by side (default 50)\n"
            "  -o FILE         output (\"-\" for stdout); also --output FILE\n"
            "The page is written 0600 (it holds prompts and replies). A ledger whose hash chain\n"
            "is broken is refused (`trit burnin verify` names the line).\n"
            "exit: 0 written, 1 cannot write, 2 usage, unreadable input or a broken chain\n");
}

enum { O_LEDGER = 256, O_PPL, O_CONFIG, O_TITLE, O_MISSES };
static const struct option report_options[] = {{"ledger", required_argument, 0, O_LEDGER},
                                               {"ppl", required_argument, 0, O_PPL},
                                               {"config", required_argument, 0, O_CONFIG},
                                               {"title", required_argument, 0, O_TITLE},
                                               {"misses", required_argument, 0, O_MISSES},
                                               {"output", required_argument, 0, 'o'},
                                               {"help", no_argument, 0, 'h'},
                                               {0, 0, 0, 0}};

/* What the command line asked for: the page's inputs (o.ledgers is owned here) and where it
 * goes. */
typedef struct report_args {
    trit_report_opts o;
    const char **ledgers; /* o.ledgers, writable */
    const char *out;
} report_args;

/* One option into a: 0, or -1 after saying why. */
static int report_option(int c, const char *v, report_args *a) {
    switch (c) {
    case O_LEDGER:
        a->ledgers[a->o.n_ledgers++] = v;
        return 0;
    case O_PPL:
        a->o.ppl_path = v;
        return 0;
    case O_CONFIG:
        a->o.config = v;
        return 0;
    case O_TITLE:
        a->o.title = v;
        return 0;
    case O_MISSES:
        return cli_opt_int("report", "misses", v, 1, 100000, &a->o.max_misses);
    case 'o':
        a->out = v;
        return 0;
    }
    return -1; /* getopt named the bad option */
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (said on stderr).
 * a->ledgers is a's to free. */
static int parse_report(int argc, char **argv, report_args *a) {
    const char **ledgers = xcalloc((size_t)argc + 1, sizeof *ledgers);
    *a = (report_args){.o = {.ledgers = ledgers, .max_misses = 50}, .ledgers = ledgers};
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "o:h", report_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (report_option(c, optarg, a)) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "trit report: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!a->o.n_ledgers || !a->out) {
        fprintf(stderr, "trit report: --ledger FILE and -o FILE are required (see --help)\n");
        return 2;
    }
    return 0;
}

/* A config only when named; a bad one is an error here, not a page with defaults. */
static int check_config(const char *config) {
    trit_err err = {0};
    trit_gate_cfg probe;
    trit_gate_cfg_default(&probe);
    if (!config || !trit_gate_cfg_load(config, &probe, &err)) return 0;
    fprintf(stderr, "trit report: %s\n", err.msg);
    return -1;
}

/* The page to stdout ("-") or written 0600 atomically: 0, or 1 when it cannot be. */
static int write_page(const char *out, const trit_buf *html) {
    trit_err err = {0};
    if (!strcmp(out, "-")) return fwrite(html->p, 1, html->len, stdout) == html->len ? 0 : 1;
    if (trit_write_file_atomic_mode(out, html->p, html->len, 0600, &err)) {
        fprintf(stderr, "trit report: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "trit report: wrote %s (%zu bytes)\n", out, html->len);
    return 0;
}

/* The steps: the config checked, the page built (unreadable input or a broken chain: 2),
 * then written (1 when it cannot be). */
static int run_report(const report_args *a) {
    if (check_config(a->o.config)) return 2;
    trit_err err = {0};
    trit_buf html = {0};
    int rc = 2;
    if (trit_report_html(&a->o, &html, &err))
        fprintf(stderr, "trit report: %s\n", err.msg);
    else
        rc = write_page(a->out, &html);
    trit_buf_free(&html);
    return rc;
}

/* `trit report`: the command line into its options, then the page; the exit code. */
int cmd_report(int argc, char **argv) {
    report_args a;
    int rc = parse_report(argc, argv, &a);
    if (rc == 1)
        rc = 0; /* --help */
    else if (rc == 0)
        rc = run_report(&a);
    free(a.ledgers);
    return rc;
}
