/* cmd_gate.c — `trit gate`: the cutover gate table (GO exits 0, NO-GO exits 1). */
#include "base/base.h"
#include "cli/cli.h"
#include "parity/parity.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit gate [--config FILE] [--ledger FILE ...] [--ppl FILE] [--json]\n"
            "\n"
            "Prints the cutover gate table (gate, target, current, PASS/FAIL/WAITING) from the\n"
            "burn-in ledgers (merged, each record once) and the ppl figures of\n"
            "`trit ppl --json -o FILE`. A gate with too few samples, or whose reference is\n"
            "missing, is FAIL, never PASS; the rounds gate reads WAITING until its target is\n"
            "reached; perplexity runs of different chunk or token counts FAIL.\n"
            "  --config FILE   INI with a [gates] section (keys in docs/parity.md); without it\n"
            "                  the production defaults of DESIGN.md (a ./cutover.ini is never\n"
            "                  read unless named here)\n"
            "  --ledger FILE   ledger(s) (default burnin.ledger.jsonl)\n"
            "  --ppl FILE      "
            "{\"gen1\":{\"ppl\",\"ppl_err\",\"chunks\",\"ctx\",\"count\"},\"gen2\":{...},\n"
            "                  \"kld\":{\"mean\"}}\n"
            "  --json          machine-readable table\n"
            "exit: 0 GO (every gate PASS), 1 NO-GO, 2 usage or unreadable input\n");
}

/* Which thresholds apply, said before the table: a config only when --config names it. */
static const char *config_label(const char *config) {
    if (config) return config;
    return access("cutover.ini", R_OK) == 0
               ? "production defaults (DESIGN.md; ./cutover.ini is not used without --config)"
               : "production defaults (DESIGN.md)";
}

int cmd_gate(int argc, char **argv) {
    const char *config = NULL, *ppl_path = NULL;
    const char **ledgers = xcalloc((size_t)argc + 1, sizeof *ledgers);
    int nl = 0, rc = 2, c;
    bool as_json = false;
    trit_stats_acc *acc = NULL;
    enum { O_CONFIG = 256, O_LEDGER, O_PPL, O_JSON };
    static const struct option lo[] = {{"config", required_argument, 0, O_CONFIG},
                                       {"ledger", required_argument, 0, O_LEDGER},
                                       {"ppl", required_argument, 0, O_PPL},
                                       {"json", no_argument, 0, O_JSON},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case O_CONFIG:
            config = optarg;
            break;
        case O_LEDGER:
            ledgers[nl++] = optarg;
            break;
        case O_PPL:
            ppl_path = optarg;
            break;
        case O_JSON:
            as_json = true;
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            goto out; /* getopt named the bad option */
        }
    }
    if (optind < argc) {
        fprintf(stderr, "trit gate: unexpected argument '%s' (see --help)\n", argv[optind]);
        goto out;
    }
    if (nl == 0) ledgers[nl++] = "burnin.ledger.jsonl";

    /* inputs: thresholds, ppl figures, the merged ledgers */
    trit_gate_cfg cfg;
    trit_gate_cfg_default(&cfg);
    trit_err err = {0};
    if (config && trit_gate_cfg_load(config, &cfg, &err)) {
        fprintf(stderr, "trit gate: %s\n", err.msg);
        goto out;
    }
    trit_ppl_figs ppl = {0};
    if (ppl_path && trit_ppl_figs_load(ppl_path, &ppl, &err)) {
        fprintf(stderr, "trit gate: %s\n", err.msg);
        goto out;
    }
    acc = trit_stats_acc_load(ledgers, nl, false, &err);
    if (!acc) {
        fprintf(stderr, "trit gate: %s\n", err.msg);
        goto out;
    }

    /* the table, over the same windows the report uses */
    trit_stats all, recent, prev;
    trit_gates_windows(&cfg, acc, &all, &recent, &prev);
    trit_gate_table t;
    trit_gates_eval(&cfg, &all, &recent, &prev, ppl.present ? &ppl : NULL, &t);
    if (as_json) {
        json_t *j = trit_gates_json(&t);
        json_object_set_new(j, "config", json_string(config ? config : "(production defaults)"));
        json_object_set_new(j, "stats", trit_stats_json(&all));
        json_dumpf(j, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(j);
    } else {
        printf("cutover gates (config: %s; %d ledger%s, %ld rounds)\n\n", config_label(config), nl,
               nl == 1 ? "" : "s", all.rounds);
        trit_gates_print(stdout, &t);
    }
    rc = t.go ? 0 : 1;
out:
    trit_stats_acc_free(acc);
    free(ledgers);
    return rc;
}
