/* cmd_gate.c — `trit gate`: the cutover gate table (GO exits 0, NO-GO exits 1). */
#include "base/base.h"
#include "cli/cli.h"
#include "parity/parity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit gate [--config cutover.ini] [--ledger FILE ...] [--ppl FILE] [--json]\n"
            "\n"
            "Prints the cutover gate table (gate, target, current, PASS/FAIL/WAITING) from the\n"
            "burn-in ledgers (merged) and the ppl figures of `trit ppl --json -o FILE`.\n"
            "A gate with too few samples, or whose reference is missing, is FAIL, never PASS;\n"
            "the rounds gate reads WAITING until its target is reached.\n"
            "  --config FILE   INI with a [gates] section (keys in docs/parity.md); without it,\n"
            "                  ./cutover.ini if present, else the defaults of DESIGN.md\n"
            "  --ledger FILE   ledger(s) (default burnin.ledger.jsonl)\n"
            "  --ppl FILE      {\"gen1\":{\"ppl\",\"ppl_err\"},\"gen2\":{...},\"kld\":{\"mean\"}}\n"
            "  --json          machine-readable table\n"
            "exit: 0 GO (every gate PASS), 1 NO-GO, 2 usage or unreadable input\n");
}

int cmd_gate(int argc, char **argv) {
    const char *config = NULL, *ppl_path = NULL;
    const char **ledgers = xcalloc((size_t)argc + 1, sizeof *ledgers);
    int nl = 0, rc = 2;
    bool as_json = false;
    trit_stats_acc *acc = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_v = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (!strcmp(a, "--json")) {
            as_json = true;
        } else if ((!strcmp(a, "--config") || !strcmp(a, "--ledger") || !strcmp(a, "--ppl"))) {
            if (!has_v) {
                fprintf(stderr, "trit gate: %s needs a file\n", a);
                goto out;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--config"))
                config = v;
            else if (!strcmp(a, "--ppl"))
                ppl_path = v;
            else
                ledgers[nl++] = v;
        } else {
            fprintf(stderr, "trit gate: unknown argument '%s' (see --help)\n", a);
            goto out;
        }
    }
    if (nl == 0) ledgers[nl++] = "burnin.ledger.jsonl";
    trit_gate_cfg cfg;
    trit_gate_cfg_default(&cfg);
    trit_err err = {0};
    if (!config && access("cutover.ini", R_OK) == 0) config = "cutover.ini";
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
    trit_stats all, recent, prev;
    trit_gates_windows(&cfg, acc, &all, &recent, &prev);
    trit_gate_table t;
    trit_gates_eval(&cfg, &all, &recent, &prev, ppl.present ? &ppl : NULL, &t);
    if (as_json) {
        json_t *j = trit_gates_json(&t);
        json_object_set_new(j, "config", json_string(config ? config : "(defaults)"));
        json_object_set_new(j, "stats", trit_stats_json(&all));
        json_dumpf(j, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(j);
    } else {
        printf("cutover gates (config: %s; %d ledger%s, %ld rounds)\n\n",
               config ? config : "defaults", nl, nl == 1 ? "" : "s", all.rounds);
        trit_gates_print(stdout, &t);
    }
    rc = t.go ? 0 : 1;
out:
    trit_stats_acc_free(acc);
    free(ledgers);
    return rc;
}
