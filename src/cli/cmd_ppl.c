/* cmd_ppl.c — `trit ppl`: perplexity and KL divergence (llama-perplexity compatible), one
 * source or gen-1 vs gen-2 (the figures the cutover gate reads). */
#include "base/base.h"
#include "cli/cli.h"
#include "parity/parity.h"
#include "parity/ppl.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TEXT "/usr/share/common-licenses/GPL-3"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: trit ppl SOURCE [options]\n"
        "       trit ppl --gen1 SPEC --gen2 SPEC [options]\n"
        "\n"
        "Perplexity with llama-perplexity's chunking (n_ctx-token chunks, BOS first, only the\n"
        "second half of each chunk scored) and KL divergence against a base-logits file in\n"
        "llama-perplexity's format (files are interchangeable with any llama.cpp build).\n"
        "\n"
        "SOURCE (one of):\n"
        "  --backend SPEC       in-process: trit:MODEL or llama:MODEL (backend options after ?)\n"
        "  --url URL            an OpenAI server: /tokenize + /v1/completions with echo,\n"
        "                       logprobs and max_tokens 0 (PPL only: no KLD over HTTP)\n"
        "  --reference MODEL    run the reference llama-perplexity binary and parse its output\n"
        "Compare mode:\n"
        "  --gen1 SPEC --gen2 SPEC   PPL of both and KLD of gen-2 against gen-1. SPEC is\n"
        "                       trit:MODEL, llama:MODEL, ref:MODEL (llama-perplexity) or an\n"
        "                       http(s):// URL (PPL only)\n"
        "Options:\n"
        "  --text FILE          text to score (default " DEFAULT_TEXT ")\n"
        "  --ctx N              tokens per chunk (default 512)\n"
        "  --chunks N           at most N chunks (default: all)\n"
        "  --threads N          threads for in-process backends / llama-perplexity\n"
        "  --kl-divergence-base FILE   without --kl-divergence: write the base logits there;\n"
        "                       with it: read them and compute KLD. Compare mode: keep gen-1's\n"
        "                       base logits in FILE (else a temporary file)\n"
        "  --kl-divergence      compute KLD against --kl-divergence-base\n"
        "  --api-key KEY        bearer token for --url\n"
        "  --json               print JSON instead of text\n"
        "  -o FILE              also write the JSON to FILE (compare mode: the gate's --ppl file)\n"
        "  --ledger FILE        compare mode: append a {\"type\":\"ppl\"} record to a ledger\n"
        "  --quiet              no per-chunk progress on stderr\n"
        "exit: 0 ok, 1 evaluation failed, 2 usage or unreadable input\n");
}

typedef struct {
    const char *backend, *url, *reference, *gen1, *gen2, *text, *out, *ledger, *api_key;
    const char *base;
    bool kld, json, quiet;
    int ctx, chunks, threads;
} args;

static int parse_int(const char *flag, const char *v, int min, int *out) {
    long x;
    if (trit_parse_long(v, min, 1 << 24, &x)) {
        fprintf(stderr, "trit ppl: %s %s: expected an integer >= %d\n", flag, v, min);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* n_ctx stored in a base-logits file (so a backend can be opened with a large enough context) */
static int base_ctx(const char *path, int *n_ctx, trit_err *err) {
    trit_ppl_base *b = trit_ppl_base_open(path, err);
    if (!b) return -1;
    *n_ctx = b->n_ctx;
    trit_ppl_base_close(b, NULL);
    return 0;
}

enum { SRC_BACKEND, SRC_URL, SRC_REF };
static int spec_kind(const char *spec, const char **rest) {
    *rest = spec;
    if (!strncmp(spec, "http://", 7) || !strncmp(spec, "https://", 8)) return SRC_URL;
    if (!strncmp(spec, "http:", 5)) {
        *rest = spec + 5;
        return SRC_URL;
    }
    if (!strncmp(spec, "ref:", 4)) {
        *rest = spec + 4;
        return SRC_REF;
    }
    if (!strncmp(spec, "reference:", 10)) {
        *rest = spec + 10;
        return SRC_REF;
    }
    return SRC_BACKEND;
}

/* One evaluation of one source. */
static int run_one(const args *a, const char *spec, int kind, const char *text, size_t len,
                   trit_ppl_opts *o, trit_ppl_result *r, trit_err *err) {
    if (!a->quiet) fprintf(stderr, "trit ppl: %s ...\n", spec);
    if (kind == SRC_URL) return trit_ppl_run_url(spec, text, len, o, r, err);
    if (kind == SRC_REF) return trit_ppl_run_reference(spec, o, r, err);
    trit_backend_opts bo = trit_backend_default_opts();
    bo.n_ctx = o->n_ctx;
    if (o->base_in && base_ctx(o->base_in, &bo.n_ctx, err)) return -1;
    if (a->threads > 0) bo.n_threads = a->threads;
    trit_backend *b = trit_backend_open(spec, &bo, err);
    if (!b) return -1;
    int rc = trit_ppl_run_backend(b, text, len, o, r, err);
    trit_backend_close(b);
    return rc;
}

static int write_json(const char *path, json_t *j, trit_err *err) {
    char *s = json_dumps(j, JSON_INDENT(2));
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    int rc = trit_write_file_atomic(path, s, n, err);
    free(s);
    return rc;
}

static void print_pair(FILE *out, const char *label, const trit_ppl_result *r) {
    fprintf(out, "%s %-50s PPL = %.4f +/- %.5f (%d chunks x %d, %.1f s)\n", label, r->source,
            r->ppl, r->ppl_err, r->n_chunk, r->n_ctx, r->seconds);
}

/* Compare mode's text report: both PPLs, the delta, and the KLD of gen-2 against gen-1. */
static void print_compare(const trit_ppl_result *r1, const trit_ppl_result *r2, bool can_kld) {
    double d = r2->ppl - r1->ppl;
    print_pair(stdout, "gen-1", r1);
    print_pair(stdout, "gen-2", r2);
    printf("delta PPL (gen-2 - gen-1) = %+.6f (%+.4f%%)\n", d, 100 * d / r1->ppl);
    if (r2->has_kld) {
        printf("\nKL divergence of gen-2 against gen-1 (%ld positions):\n", r2->count);
        trit_ppl_print(stdout, r2);
    } else {
        printf("KLD: not available (%s)\n",
               can_kld ? "no base logits" : "a source is an OpenAI server: no full logits");
    }
}

/* The compare figures as a {"type":"ppl"} ledger record (the ledger's writer lock applies:
 * refused while a burn-in or shadow writes it). 0, or -1 after saying why. */
static int append_ppl_record(const char *ledger, json_t *figures) {
    trit_err err = {0};
    json_t *rec = json_object();
    char iso[32];
    double ts = trit_wall_s();
    trit_iso8601(ts, iso);
    json_object_set_new(rec, "type", json_string("ppl"));
    json_object_set_new(rec, "source", json_string("ppl"));
    json_object_set_new(rec, "ts", json_real(ts));
    json_object_set_new(rec, "time", json_string(iso));
    json_object_update(rec, figures);
    trit_ledger *l = trit_ledger_open(ledger, &err);
    int rc = !l || trit_ledger_append(l, rec, &err) ? -1 : 0;
    if (rc) fprintf(stderr, "trit ppl: %s\n", err.msg);
    trit_ledger_close(l);
    json_decref(rec);
    return rc;
}

static int compare_mode(const args *a, const char *text, size_t len) {
    trit_err err = {0};
    const char *s1, *s2;
    int k1 = spec_kind(a->gen1, &s1), k2 = spec_kind(a->gen2, &s2);
    trit_ppl_opts o;
    trit_ppl_opts_default(&o);
    o.n_ctx = a->ctx, o.n_chunks = a->chunks, o.n_threads = a->threads;
    o.text_path = a->text, o.api_key = a->api_key, o.progress = !a->quiet;
    char tmp_base[] = "/tmp/trit-ppl-base-XXXXXX";
    const char *base = a->base;
    bool can_kld = k1 != SRC_URL && k2 != SRC_URL;
    if (can_kld && !base) {
        int fd = mkstemp(tmp_base);
        if (fd < 0) {
            fprintf(stderr, "trit ppl: cannot create a temporary file: %s\n", strerror(errno));
            return 1;
        }
        close(fd);
        base = tmp_base;
    }
    trit_ppl_result r1, r2;
    int rc = 1;
    o.base_out = can_kld ? base : NULL;
    if (run_one(a, s1, k1, text, len, &o, &r1, &err)) {
        fprintf(stderr, "trit ppl: gen-1 %s: %s\n", a->gen1, err.msg);
        goto out;
    }
    o.base_out = NULL;
    o.base_in = can_kld ? base : NULL;
    if (run_one(a, s2, k2, text, len, &o, &r2, &err)) {
        fprintf(stderr, "trit ppl: gen-2 %s: %s\n", a->gen2, err.msg);
        goto out;
    }
    if (r2.has_kld) r2.n_tokens = r1.n_tokens; /* gen-2 read the tokens from gen-1's file */
    /* runs of different shape compare different text: the figures are written (the gate
     * fails them too), and the command fails */
    bool same_shape = r1.n_ctx == r2.n_ctx && r1.n_chunk == r2.n_chunk && r1.count == r2.count;
    if (!same_shape)
        fprintf(stderr,
                "trit ppl: gen-1 scored %d chunks x %d (%ld tokens), gen-2 %d x %d (%ld): the "
                "runs are not comparable\n",
                r1.n_chunk, r1.n_ctx, r1.count, r2.n_chunk, r2.n_ctx, r2.count);
    json_t *j = json_object();
    json_t *g1 = trit_ppl_result_json(&r1), *g2 = trit_ppl_result_json(&r2);
    json_t *kld = json_object_get(g2, "kld");
    json_object_set_new(j, "gen1", g1);
    json_object_set(j, "gen2", g2);
    json_object_set(j, "kld", kld ? kld : json_null());
    if (kld) json_object_del(g2, "kld");
    json_decref(g2);
    double d = r2.ppl - r1.ppl;
    json_object_set_new(j, "delta_ppl", isfinite(d) ? json_real(d) : json_null());
    json_object_set_new(j, "rel_delta_ppl",
                        isfinite(d / r1.ppl) ? json_real(d / r1.ppl) : json_null());
    json_object_set_new(j, "text", json_string(a->text));
    json_object_set_new(j, "ctx", json_integer(r1.n_ctx));
    json_object_set_new(j, "chunks", json_integer(r1.n_chunk));
    if (!can_kld)
        json_object_set_new(j, "kld_unavailable",
                            json_string("a source is an OpenAI server: no full logits"));
    if (a->json) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        printf("\n");
    } else {
        print_compare(&r1, &r2, can_kld);
    }
    rc = same_shape ? 0 : 1;
    if (a->out && write_json(a->out, j, &err)) {
        fprintf(stderr, "trit ppl: %s\n", err.msg);
        rc = 2;
    }
    if (a->ledger && append_ppl_record(a->ledger, j)) rc = 2;
    json_decref(j);
out:
    if (base == tmp_base) unlink(tmp_base);
    return rc;
}

enum {
    O_BACKEND = 256,
    O_URL,
    O_REFERENCE,
    O_GEN1,
    O_GEN2,
    O_TEXT,
    O_CHUNKS,
    O_BASE,
    O_KLD,
    O_API_KEY,
    O_JSON,
    O_LEDGER,
};
static const struct option ppl_options[] = {
    {"backend", required_argument, 0, O_BACKEND},
    {"url", required_argument, 0, O_URL},
    {"reference", required_argument, 0, O_REFERENCE},
    {"gen1", required_argument, 0, O_GEN1},
    {"gen2", required_argument, 0, O_GEN2},
    {"text", required_argument, 0, O_TEXT},
    {"ctx", required_argument, 0, 'c'},
    {"chunks", required_argument, 0, O_CHUNKS},
    {"threads", required_argument, 0, 't'},
    {"kl-divergence-base", required_argument, 0, O_BASE},
    {"kl-divergence", no_argument, 0, O_KLD},
    {"api-key", required_argument, 0, O_API_KEY},
    {"json", no_argument, 0, O_JSON},
    {"output", required_argument, 0, 'o'},
    {"ledger", required_argument, 0, O_LEDGER},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* One option into a; 0 ok, 2 a bad value (said). */
static int ppl_option(int c, const char *v, args *a) {
    switch (c) {
    case O_BACKEND:
        a->backend = v;
        return 0;
    case O_URL:
        a->url = v;
        return 0;
    case O_REFERENCE:
        a->reference = v;
        return 0;
    case O_GEN1:
        a->gen1 = v;
        return 0;
    case O_GEN2:
        a->gen2 = v;
        return 0;
    case O_TEXT:
        a->text = v;
        return 0;
    case 'c':
        return parse_int("--ctx", v, 4, &a->ctx) ? 2 : 0;
    case O_CHUNKS:
        return parse_int("--chunks", v, 1, &a->chunks) ? 2 : 0;
    case 't':
        return parse_int("--threads", v, 1, &a->threads) ? 2 : 0;
    case O_BASE:
        a->base = v;
        return 0;
    case O_KLD:
        a->kld = true;
        return 0;
    case O_API_KEY:
        a->api_key = v;
        return 0;
    case O_JSON:
        a->json = true;
        return 0;
    case 'o':
        a->out = v;
        return 0;
    case O_LEDGER:
        a->ledger = v;
        return 0;
    case 'q':
        a->quiet = true;
        return 0;
    }
    return 2;
}

/* The options that go together: one source, or --gen1 with --gen2; KLD needs a base file. */
static int ppl_check(const args *a) {
    int n_src = !!a->backend + !!a->url + !!a->reference;
    bool compare = a->gen1 || a->gen2;
    const char *why = NULL;
    if (compare && (!a->gen1 || !a->gen2))
        why = "compare mode needs both --gen1 and --gen2";
    else if ((compare && n_src) || (!compare && n_src != 1))
        why = "give exactly one of --backend, --url, --reference, or --gen1 with --gen2 (see "
              "--help)";
    else if (a->kld && !a->base)
        why = "--kl-divergence needs --kl-divergence-base FILE";
    else if (compare && a->kld)
        why = "compare mode computes KLD itself; drop --kl-divergence";
    else if (a->ledger && !compare)
        why = "--ledger records gen-1 vs gen-2 figures; use it with --gen1/--gen2";
    if (!why) return 0;
    fprintf(stderr, "trit ppl: %s\n", why);
    return 2;
}

/* One source: its figures (text or JSON), and the JSON to -o FILE. */
static int single_mode(const args *a, const trit_buf *text) {
    trit_err err = {0};
    trit_ppl_opts o;
    trit_ppl_opts_default(&o);
    o.n_ctx = a->ctx, o.n_chunks = a->chunks, o.n_threads = a->threads;
    o.text_path = a->text, o.api_key = a->api_key, o.progress = !a->quiet;
    /* a base file is written, or with --kl-divergence read */
    if (a->base && a->kld) o.base_in = a->base;
    if (a->base && !a->kld) o.base_out = a->base;
    trit_ppl_result r;
    const char *spec = a->backend ? a->backend : a->url ? a->url : a->reference;
    int kind = a->backend ? SRC_BACKEND : a->url ? SRC_URL : SRC_REF;
    if (run_one(a, spec, kind, text->p, text->len, &o, &r, &err)) {
        fprintf(stderr, "trit ppl: %s: %s\n", spec, err.msg);
        return err.code == TRIT_EINVAL || err.code == TRIT_EFORMAT ? 2 : 1;
    }
    json_t *j = trit_ppl_result_json(&r);
    json_object_set_new(j, "text", json_string(a->text));
    if (a->json) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        printf("\n");
    } else {
        trit_ppl_print(stdout, &r);
    }
    int rc = 0;
    if (a->out && write_json(a->out, j, &err)) {
        fprintf(stderr, "trit ppl: %s\n", err.msg);
        rc = 2;
    }
    json_decref(j);
    return rc;
}

int cmd_ppl(int argc, char **argv) {
    args a = {.ctx = 512};
    int c, rc = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "c:t:o:qh", ppl_options, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        rc = c == '?' ? 2 : ppl_option(c, optarg, &a); /* getopt named a bad option */
    }
    if (rc) return rc;
    if (optind < argc) {
        fprintf(stderr, "trit ppl: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (ppl_check(&a)) return 2;
    if (!a.text) a.text = DEFAULT_TEXT;
    /* the text, unless KLD mode takes the tokens from the base file */
    bool compare = a.gen1 != NULL;
    trit_err err = {0};
    trit_buf text = {0};
    bool need_text = !(a.kld && !compare);
    if (need_text && trit_ppl_read_text(a.text, &text, &err)) {
        fprintf(stderr, "trit ppl: %s\n", err.msg);
        return 2;
    }
    if (!text.p) trit_buf_puts(&text, "");
    rc = compare ? compare_mode(&a, text.p, text.len) : single_mode(&a, &text);
    trit_buf_free(&text);
    return rc;
}
