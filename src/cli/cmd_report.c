/* cmd_report.c — `trit report`: one self-contained HTML page from ledgers and ppl figures. */
#include "base/base.h"
#include "cli/cli.h"
#include "parity/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
            "  --config INI    gate thresholds (default ./cutover.ini if present, else defaults)\n"
            "  --title TEXT    page title\n"
            "  --misses N      misses shown side by side (default 50)\n"
            "  -o FILE         output (\"-\" for stdout)\n"
            "exit: 0 written, 1 cannot write, 2 usage or unreadable input\n");
}

int cmd_report(int argc, char **argv) {
    const char **ledgers = xcalloc((size_t)argc + 1, sizeof *ledgers);
    trit_report_opts o = {.ledgers = ledgers, .max_misses = 50};
    const char *out = NULL;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            rc = 0;
            goto done;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "trit report: %s needs a value (see --help)\n", a);
            goto done;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--ledger")) {
            ledgers[o.n_ledgers++] = v;
        } else if (!strcmp(a, "--ppl")) {
            o.ppl_path = v;
        } else if (!strcmp(a, "--config")) {
            o.config = v;
        } else if (!strcmp(a, "--title")) {
            o.title = v;
        } else if (!strcmp(a, "--misses")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 100000) {
                fprintf(stderr, "trit report: --misses %s: expected 1..100000\n", v);
                goto done;
            }
            o.max_misses = (int)n;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = v;
        } else {
            fprintf(stderr, "trit report: unknown argument '%s' (see --help)\n", a);
            goto done;
        }
    }
    if (!o.n_ledgers || !out) {
        fprintf(stderr, "trit report: --ledger FILE and -o FILE are required (see --help)\n");
        goto done;
    }
    if (!o.config && access("cutover.ini", R_OK) == 0) o.config = "cutover.ini";
    trit_err err = {0};
    trit_buf html = {0};
    if (trit_report_html(&o, &html, &err)) {
        fprintf(stderr, "trit report: %s\n", err.msg);
        trit_buf_free(&html);
        goto done;
    }
    if (!strcmp(out, "-")) {
        rc = fwrite(html.p, 1, html.len, stdout) == html.len ? 0 : 1;
    } else if (trit_write_file_atomic(out, html.p, html.len, &err)) {
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
