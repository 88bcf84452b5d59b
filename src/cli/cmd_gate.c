/* cmd_gate.c — `trit gate`: the cutover gate table (GO exits 0, NO-GO exits 1, evidence
 * refused exits 2), its provenance block, and receipts (-o) that `--verify` recomputes. */
#include "base/base.h"
#include "cli/cli.h"
#include "parity/parity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --help: every option of gate_options, the refusals and the exit codes. */
static void usage(FILE *out) {
    fprintf(out,
            "usage: trit gate [--config FILE] [--ledger FILE ...] [--ppl FILE] [--json]\n"
            "                 [--allow-unchained] [-o receipt.json]\n"
            "       trit gate --verify receipt.json\n"
            "\n"
            "Prints the provenance of the evidence (each side's identity, ledger chain heads,\n"
            "the ppl file's hashes) and the cutover gate table (gate, target, current,\n"
            "PASS/FAIL/WAITING) from the burn-in ledgers (merged, each record once) and the ppl\n"
            "figures of `trit ppl --json -o FILE`. A gate with too few samples, or whose\n"
            "reference is missing, is FAIL, never PASS; the rounds gate counts compared rounds\n"
            "and reads WAITING until its target is reached.\n"
            "The verdict is refused (exit 2, with the reason) when a ledger's hash chain is\n"
            "broken, when gen-1 and gen-2 are the same server, when the ledgers mix identities\n"
            "of a side, when the ppl file has no provenance or is about other models or\n"
            "servers, or when evidence is older than max_age (docs/parity.md).\n"
            "  --config FILE      INI with a [gates] section (keys in docs/parity.md); without\n"
            "                     it the production defaults of docs/parity.md (a ./cutover.ini\n"
            "                     is never read unless named here)\n"
            "  --ledger FILE      ledger(s) (default burnin.ledger.jsonl)\n"
            "  --ppl FILE         `trit ppl --json -o FILE` output\n"
            "  --allow-unchained  accept ledgers written before the hash chain and server\n"
            "                     identities (ledger schema 1); said in the output\n"
            "  -o, --output FILE  write a receipt: the verdict and the hashes of every input\n"
            "  --verify FILE      recompute a receipt from the same inputs, as of its time\n"
            "  --json             machine-readable table\n"
            "exit: 0 GO (every gate PASS), 1 NO-GO, 2 usage, unreadable input or evidence\n"
            "refused; --verify: 0 same verdict and hashes, 1 differs (named), 2 unreadable\n");
}

/* Which thresholds apply, said before the table: a config only when --config names it. */
static const char *config_label(const char *config) {
    if (config) return config;
    return access("cutover.ini", R_OK) == 0
               ? "production defaults (docs/parity.md; ./cutover.ini is not used without "
                 "--config)"
               : "production defaults (docs/parity.md)";
}

typedef struct gate_opts {
    const char *config, *ppl_path, *out, *verify;
    const char **ledgers;
    int n_ledgers;
    bool as_json, allow_unchained;
} gate_opts;

/* Everything one evaluation read and decided (gates.h): what a receipt records. */
typedef trit_gate_run gate_run;

enum { O_CONFIG = 256, O_LEDGER, O_PPL, O_JSON, O_VERIFY, O_ALLOW };
static const struct option gate_options[] = {{"config", required_argument, 0, O_CONFIG},
                                             {"ledger", required_argument, 0, O_LEDGER},
                                             {"ppl", required_argument, 0, O_PPL},
                                             {"json", no_argument, 0, O_JSON},
                                             {"verify", required_argument, 0, O_VERIFY},
                                             {"allow-unchained", no_argument, 0, O_ALLOW},
                                             {"output", required_argument, 0, 'o'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};

/* One option into o (all are taken as given; the files are read by evaluate): 0, or 2 for
 * what getopt refused (it named the option). */
static int gate_option(int c, const char *v, gate_opts *o) {
    switch (c) {
    case O_CONFIG:
        o->config = v;
        return 0;
    case O_LEDGER:
        o->ledgers[o->n_ledgers++] = v;
        return 0;
    case O_PPL:
        o->ppl_path = v;
        return 0;
    case O_JSON:
        o->as_json = true;
        return 0;
    case O_VERIFY:
        o->verify = v;
        return 0;
    case O_ALLOW:
        o->allow_unchained = true;
        return 0;
    case 'o':
        o->out = v;
        return 0;
    }
    return 2;
}

/* Parse argv into o; 0, 1 after --help, or 2 on a usage error (said on stderr). */
static int parse_gate(int argc, char **argv, gate_opts *o) {
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "o:h", gate_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (gate_option(c, optarg, o)) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "trit gate: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (o->verify && (o->config || o->ppl_path || o->n_ledgers || o->out || o->allow_unchained)) {
        fprintf(stderr, "trit gate: --verify takes its inputs from the receipt; no other "
                        "options\n");
        return 2;
    }
    if (o->n_ledgers == 0 && !o->verify) o->ledgers[o->n_ledgers++] = "burnin.ledger.jsonl";
    return 0;
}

/* Read every input, check the evidence, evaluate the gates as of `now` (gates.c, the one
 * evaluation the dashboard serves too). 0, or -1 with the problem said on stderr. */
static int evaluate(const gate_opts *o, double now, gate_run *g) {
    trit_err err = {0};
    if (trit_gate_evaluate(o->config, o->ppl_path, o->ledgers, o->n_ledgers, o->allow_unchained,
                           now, g, &err)) {
        fprintf(stderr, "trit gate: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* The receipt: the verdict and the hashes of every input, enough for --verify to redo it. */
static json_t *receipt_json(const gate_opts *o, const gate_run *g) {
    char iso[32];
    trit_iso8601(g->now, iso);
    json_t *ls = json_array();
    for (int i = 0; i < o->n_ledgers; i++) json_array_append_new(ls, json_string(o->ledgers[i]));
    json_t *in = json_pack("{s:s?,s:s,s:o,s:s?,s:s,s:b}", "config", o->config, "config_sha256",
                           g->config_sha256, "ledgers", ls, "ppl", o->ppl_path, "ppl_sha256",
                           g->ppl.file_sha256, "allow_unchained", o->allow_unchained);
    json_t *j = trit_gates_json(&g->t);
    json_object_set_new(j, "receipt", json_string("trit gate"));
    json_object_set_new(j, "trit_version", json_string(TRIT_VERSION));
    json_object_set_new(j, "ts", json_real(g->now));
    json_object_set_new(j, "time", json_string(iso));
    json_object_set_new(j, "verdict", json_string(trit_gate_verdict_word(g->rc)));
    json_object_set_new(j, "reason", json_string(g->pv.reason));
    json_object_set_new(j, "inputs", in);
    json_object_set_new(j, "provenance", trit_provenance_json(&g->pv, &g->ppl));
    return j;
}

/* The provenance block, then REFUSED with its reason or the table (or all of it as JSON). */
static void print_run(const gate_opts *o, const gate_run *g) {
    if (o->as_json) {
        json_t *j = receipt_json(o, g);
        json_object_set_new(j, "config",
                            json_string(o->config ? o->config : "(production defaults)"));
        json_object_set_new(j, "stats", trit_stats_json(&g->all));
        json_dumpf(j, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(j);
        return;
    }
    trit_provenance_print(stdout, &g->pv, &g->ppl);
    if (g->pv.refused) {
        printf("REFUSED: %s\n", g->pv.reason);
        return;
    }
    printf("cutover gates (config: %s; %d ledger%s, %ld rounds)\n\n", config_label(o->config),
           o->n_ledgers, o->n_ledgers == 1 ? "" : "s", g->all.rounds);
    trit_gates_print(stdout, &g->t);
}

/* One difference between a receipt and its recomputation, said on stdout. */
static int differs(const char *what, const char *was, const char *now) {
    if (!strcmp(was ? was : "", now ? now : "")) return 0;
    printf("differs: %s: receipt %s, now %s\n", what, was && *was ? was : "(none)",
           now && *now ? now : "(none)");
    return 1;
}

/* A string member, "" when absent. */
static const char *jstr(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* --verify: the inputs the receipt names, evaluated again as of its time; every verdict,
 * hash and row compared. */
static int verify_receipt(const char *path, gate_opts *o) {
    json_error_t je;
    json_t *r = json_load_file(path, 0, &je);
    json_t *in = json_object_get(r, "inputs");
    json_t *ls = json_object_get(in, "ledgers");
    if (!r || !json_is_array(ls) || !json_is_number(json_object_get(r, "ts"))) {
        fprintf(stderr, "trit gate: --verify %s: not a gate receipt%s%s\n", path, r ? "" : ": ",
                r ? "" : je.text);
        json_decref(r);
        return 2;
    }
    o->config = json_string_value(json_object_get(in, "config"));
    o->ppl_path = json_string_value(json_object_get(in, "ppl"));
    o->allow_unchained = json_is_true(json_object_get(in, "allow_unchained"));
    size_t i;
    for (i = 0; i < json_array_size(ls) && o->n_ledgers < 64; i++) {
        const char *path = json_string_value(json_array_get(ls, i));
        if (path) o->ledgers[o->n_ledgers++] = path;
    }
    gate_run g;
    if (evaluate(o, json_number_value(json_object_get(r, "ts")), &g)) {
        json_decref(r);
        return 2;
    }
    json_t *now = receipt_json(o, &g);
    int n = differs("trit version", jstr(r, "trit_version"), TRIT_VERSION);
    n += differs("verdict", jstr(r, "verdict"), jstr(now, "verdict"));
    n += differs("config sha256", jstr(in, "config_sha256"), g.config_sha256);
    n += differs("ppl file sha256", jstr(in, "ppl_sha256"), g.ppl.file_sha256);
    json_t *l0 = json_object_get(json_object_get(r, "provenance"), "ledgers");
    json_t *l1 = json_object_get(json_object_get(now, "provenance"), "ledgers");
    for (i = 0; i < json_array_size(l1); i++) {
        char what[300];
        snprintf(what, sizeof what, "ledger %s chain head", jstr(json_array_get(l1, i), "path"));
        n +=
            differs(what, jstr(json_array_get(l0, i), "head"), jstr(json_array_get(l1, i), "head"));
    }
    json_t *g0 = json_object_get(r, "gates"), *g1 = json_object_get(now, "gates");
    for (i = 0; i < TRIT_MAX(json_array_size(g0), json_array_size(g1)); i++) {
        const json_t *a = json_array_get(g0, i), *b = json_array_get(g1, i);
        char what[96], va[256], vb[256];
        snprintf(what, sizeof what, "gate %s", jstr(b ? b : a, "gate"));
        snprintf(va, sizeof va, "%s %s", jstr(a, "verdict"), jstr(a, "current"));
        snprintf(vb, sizeof vb, "%s %s", jstr(b, "verdict"), jstr(b, "current"));
        n += differs(what, va, vb);
    }
    if (!n)
        printf("receipt %s verified: %s, every input hash and gate row the same\n", path,
               jstr(now, "verdict"));
    json_decref(now);
    json_decref(r);
    trit_provenance_free(&g.pv);
    return n ? 1 : 0;
}

/* The receipt (-o): the verdict and every input's hash, written 0600. 0, or -1 (said). */
static int write_receipt(const gate_opts *o, const gate_run *g) {
    json_t *j = receipt_json(o, g);
    char *s = json_dumps(j, JSON_INDENT(2));
    trit_err err = {0};
    int rc = 0;
    if (trit_write_file_atomic_mode(o->out, s, strlen(s), 0600, &err)) {
        fprintf(stderr, "trit gate: %s\n", err.msg);
        rc = -1;
    }
    free(s);
    json_decref(j);
    return rc;
}

/* The steps: --verify a receipt, or evaluate as of now, print, and write the receipt. The
 * exit code: 0 GO, 1 NO-GO, 2 refused, unreadable input or a receipt not written. */
static int run_gate(gate_opts *o) {
    if (o->verify) return verify_receipt(o->verify, o);
    gate_run g;
    if (evaluate(o, trit_wall_s(), &g)) return 2;
    print_run(o, &g);
    int rc = g.rc;
    if (o->out && write_receipt(o, &g)) rc = 2;
    trit_provenance_free(&g.pv);
    return rc;
}

/* `trit gate`: the command line into its options, then the run; the exit code. */
int cmd_gate(int argc, char **argv) {
    gate_opts o = {.ledgers = xcalloc((size_t)argc + 65, sizeof(char *))};
    int rc = parse_gate(argc, argv, &o);
    if (rc == 1)
        rc = 0; /* --help */
    else if (rc == 0)
        rc = run_gate(&o);
    free(o.ledgers);
    return rc;
}
