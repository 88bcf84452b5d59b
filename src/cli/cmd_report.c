/* cmd_report.c — `trit report`: one self-contained HTML page from ledgers and ppl figures. */
#include "base/base.h"
#include "cli/cli.h"
#include "parity/gates.h"
#include "parity/report.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            "  -o FILE         output (\"-\" for stdout)\n"
            "The page is written 0600 (it holds prompts and replies). A ledger whose hash chain\n"
            "is broken is refused (`trit burnin verify` names the line).\n"
            "exit: 0 written, 1 cannot write, 2 usage, unreadable input or a broken chain\n");
}

int cmd_report(int argc, char **argv) {
    const char **ledgers = xcalloc((size_t)argc + 1, sizeof *ledgers);
    trit_report_opts o = {.ledgers = ledgers, .max_misses = 50};
    const char *out = NULL;
    int rc = 2, c;
    long n;
    enum { O_LEDGER = 256, O_PPL, O_CONFIG, O_TITLE, O_MISSES };
    static const struct option lo[] = {{"ledger", required_argument, 0, O_LEDGER},
                                       {"ppl", required_argument, 0, O_PPL},
                                       {"config", required_argument, 0, O_CONFIG},
                                       {"title", required_argument, 0, O_TITLE},
                                       {"misses", required_argument, 0, O_MISSES},
                                       {"output", required_argument, 0, 'o'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
        switch (c) {
        case O_LEDGER:
            ledgers[o.n_ledgers++] = optarg;
            break;
        case O_PPL:
            o.ppl_path = optarg;
            break;
        case O_CONFIG:
            o.config = optarg;
            break;
        case O_TITLE:
            o.title = optarg;
            break;
        case O_MISSES:
            if (trit_parse_long(optarg, 1, 100000, &n)) {
                fprintf(stderr, "trit report: --misses %s: expected 1..100000\n", optarg);
                goto done;
            }
            o.max_misses = (int)n;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto done;
        default:
            goto done; /* getopt named the bad option */
        }
    }
    if (optind < argc) {
        fprintf(stderr, "trit report: unexpected argument '%s' (see --help)\n", argv[optind]);
        goto done;
    }
    if (!o.n_ledgers || !out) {
        fprintf(stderr, "trit report: --ledger FILE and -o FILE are required (see --help)\n");
        goto done;
    }
    /* a config only when named; a bad one is an error here, not a page with defaults */
    trit_err err = {0};
    trit_gate_cfg probe;
    trit_gate_cfg_default(&probe);
    if (o.config && trit_gate_cfg_load(o.config, &probe, &err)) {
        fprintf(stderr, "trit report: %s\n", err.msg);
        goto done;
    }
    trit_buf html = {0};
    if (trit_report_html(&o, &html, &err)) {
        fprintf(stderr, "trit report: %s\n", err.msg);
        trit_buf_free(&html);
        goto done;
    }
    if (!strcmp(out, "-")) {
        rc = fwrite(html.p, 1, html.len, stdout) == html.len ? 0 : 1;
    } else if (trit_write_file_atomic_mode(out, html.p, html.len, 0600, &err)) {
        fprintf(stderr, "trit report: %s\n", err.msg);
        rc = 1;
    } else {
        fprintf(stderr, "trit report: wrote %s (%zu bytes)\n", out, html.len);
        rc = 0;
    }
    trit_buf_free(&html);
done:
    free(ledgers);
    return rc;
}
