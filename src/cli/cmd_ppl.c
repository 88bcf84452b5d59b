/* cmd_ppl.c — `trit ppl`: perplexity and KL divergence (llama-perplexity compatible), one
 * source or gen-1 vs gen-2 (the figures the cutover gate reads). */
#include "base/base.h"
#include "cli/cli.h"
#include "client/client.h"
#include "parity/parity.h"
#include "parity/ppl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_TEXT "/usr/share/common-licenses/GPL-3"

/* --help: every option of ppl_options, the two modes and the exit codes. */
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
        "  --backend SPEC       trit:MODEL or llama:MODEL (in-process, backend options after ?)\n"
        "                       or http:URL / http://URL (a server; options after ?: key=,\n"
        "                       timeout=, cache=on|off to set the server's prompt cache)\n"
        "  --url URL            an OpenAI-compatible server (same as --backend URL)\n"
        "  --reference MODEL    run the reference llama-perplexity binary and parse its output\n"
        "Over HTTP every scored position's next token is scored from the server's raw\n"
        "distribution: one echo request per chunk where the server has echo + prompt logprobs\n"
        "(trit serve), else one short request per position with the token forced by\n"
        "logit_bias (llama-server; fast with its prompt cache). See docs/parity.md.\n"
        "Compare mode:\n"
        "  --gen1 SPEC --gen2 SPEC   PPL of both and KLD of gen-2 against gen-1. SPEC is\n"
        "                       trit:MODEL, llama:MODEL, ref:MODEL (llama-perplexity), or a\n"
        "                       server: http://URL or http:URL. With a server on either side\n"
        "                       the KLD is over the top-N support (\"kld_topn\": N, a lower\n"
        "                       bound of the full KLD); else over the full vocabulary\n"
        "Options:\n"
        "  --text FILE          text to score (default " DEFAULT_TEXT ")\n"
        "  --ctx N              tokens per chunk (default 512)\n"
        "  --chunks N           at most N chunks (default: all)\n"
        "  --threads N          threads for in-process backends / llama-perplexity\n"
        "  --kl-divergence-base FILE   without --kl-divergence: write the base logits there;\n"
        "                       with it: read them and compute KLD. Compare mode: keep gen-1's\n"
        "                       base logits in FILE (else a temporary file)\n"
        "  --kl-divergence      compute KLD against --kl-divergence-base\n"
        "  --api-key KEY        bearer token for servers\n"
        "  --timeout S          per request to a server, up to 1d (default 300; units as 250ms,\n"
        "                       10m)\n"
        "  --json               print JSON instead of text\n"
        "  -o, --output FILE    also write the JSON to FILE (compare mode: the gate's --ppl file)\n"
        "  --ledger FILE        compare mode: append a {\"type\":\"ppl\"} record to a ledger\n"
        "  --quiet              no per-chunk progress on stderr\n"
        "The JSON (-o) records text_path, text_sha256 (of the file's bytes), scored_tokens and\n"
        "each side's identity (gen1_identity / gen2_identity; identity in single mode).\n"
        "exit: 0 ok, 1 evaluation failed, 2 usage or unreadable input, 3 setup failure (a side\n"
        "could not be opened or does not score: unreachable, not an OpenAI server, malformed\n"
        "log-probabilities, or the two sides have different vocabularies)\n");
}

/* What the command line asked for: one source (backend, url or reference) or the two sides
 * of compare mode, the text and how to score it, and where the figures go. */
typedef struct {
    const char *backend, *url, *reference, *gen1, *gen2, *text, *out, *ledger, *api_key;
    const char *base;
    bool kld, json, quiet;
    int ctx, chunks, threads;
    double timeout_s;
} args;

/* n_ctx stored in a base-logits file (so a backend can be opened with a large enough context) */
static int base_ctx(const char *path, int *n_ctx, trit_err *err) {
    trit_ppl_base *b = trit_ppl_base_open(path, err);
    if (!b) return -1;
    *n_ctx = b->n_ctx;
    trit_ppl_base_close(b, NULL);
    return 0;
}

enum { SRC_BACKEND, SRC_URL, SRC_REF };
/* The kind of a spec and what to open: a server (http://URL, http:URL), the reference binary
 * (ref:MODEL, reference:MODEL) or an in-process backend (trit:, llama:). */
static int spec_kind(const char *spec, const char **rest) {
    *rest = spec;
    if (!strncmp(spec, "http://", 7) || !strncmp(spec, "https://", 8) || !strncmp(spec, "http:", 5))
        return SRC_URL; /* trit_backend_open takes both forms */
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

/* One side of a run: its spec, the open backend (NULL for the reference binary) and its
 * identity (what the ppl file records). */
typedef struct side {
    const char *label; /* "gen-1", "gen-2" or the spec in single mode */
    const char *spec, *rest;
    int kind;
    trit_backend *b;
    json_t *ident;
} side;

/* A side's backend and identity released (safe on a side never opened). */
static void side_close(side *s) {
    trit_backend_close(s->b);
    json_decref(s->ident);
    s->b = NULL;
    s->ident = NULL;
}

/* The reference binary's identity, in trit_client_identity's shape, from its model file. */
static json_t *reference_identity(const char *model) {
    char sha[65] = "";
    struct stat st;
    trit_err e = {0};
    if (trit_sha256_file(model, sha, &e) != 0) sha[0] = 0;
    char build[96];
    snprintf(build, sizeof build, "llama-perplexity (reference %s)", TRIT_NLC_VERSION);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:i, s:s, s:s, s:i, s:s, s:s, "
                     "s:[]}",
                     "url", "", "engine", "llama.cpp", "build", build, "model", model,
                     "model_sha256", sha, "model_size",
                     (json_int_t)(stat(model, &st) == 0 ? st.st_size : 0), "n_vocab", 0, "n_ctx", 0,
                     "n_ctx_train", 0, "numerics", "", "kernels", "", "threads", 0, "instance", "",
                     "system_fingerprint", "", "reported");
}

/* Open a side (setup): the backend, its identity, and for a server one scoring probe on the
 * start of the text, so an unreachable or non-scoring server fails here, before any run. */
static int side_open(const args *a, side *s, const trit_ppl_opts *o, const char *text, size_t len,
                     trit_err *err) {
    s->kind = spec_kind(s->spec, &s->rest);
    if (s->kind == SRC_REF) {
        s->ident = reference_identity(s->rest);
        return 0;
    }
    trit_backend_opts bo = trit_backend_default_opts();
    bo.n_ctx = o->n_ctx;
    if (o->base_in && base_ctx(o->base_in, &bo.n_ctx, err)) return -1;
    if (a->threads > 0) bo.n_threads = a->threads;
    bo.api_key = o->api_key;
    bo.timeout_s = o->timeout_s;
    s->b = trit_backend_open(s->rest, &bo, err);
    if (!s->b) return -1;
    s->ident = trit_backend_identity(s->b);
    if (s->kind != SRC_URL) return 0;
    /* the probe: a few tokens of the text, the last position scored */
    int32_t *ids = NULL;
    size_t n = 0;
    char head[65];
    size_t cut = TRIT_MIN(len, sizeof head - 1);
    while (cut > 0 && cut < len && ((unsigned char)text[cut] & 0xC0) == 0x80) cut--; /* UTF-8 */
    snprintf(head, sizeof head, "%.*s", (int)cut, text);
    trit_pos_topn *pos = NULL;
    int rc = trit_backend_tokenize(s->b, head, true, false, &ids, &n, err);
    if (rc == 0 && n == 0) rc = trit_fail(err, TRIT_EINVAL, "the text tokenizes to nothing");
    if (rc == 0) rc = trit_backend_score(s->b, ids, n, n - 1, TRIT_BACKEND_TOPN_MAX, &pos, err);
    free(ids);
    free(pos);
    return rc;
}

/* Say why a side could not be opened; the exit code: a bad spec or unreadable input (2); a
 * server that cannot be used (unreachable, garbage, no raw log-probabilities) is a setup
 * failure (3); an in-process backend that fails to load, 1. */
static int open_failed(const side *s, const trit_err *err) {
    if (s->kind == SRC_URL) {
        fprintf(stderr, "trit ppl: setup failure: %s: %s\n", s->label, err->msg);
        return err->code == TRIT_EINVAL ? 2 : 3;
    }
    fprintf(stderr, "trit ppl: %s: %s\n", s->label, err->msg);
    return err->code == TRIT_EINVAL || err->code == TRIT_EFORMAT ? 2 : 1;
}

/* Say why a side's run failed; the exit code: a server that stops scoring mid-run (refused,
 * timeout, malformed or short log-probabilities, a wrong token) is a setup failure (3), as at
 * setup; in-process, bad input (2) or a failed evaluation (1). */
static int run_failed(const side *s, const trit_err *err) {
    if (s->kind == SRC_URL) {
        fprintf(stderr, "trit ppl: setup failure: %s %s: %s\n", s->label, s->spec, err->msg);
        return 3;
    }
    fprintf(stderr, "trit ppl: %s %s: %s\n", s->label, s->spec, err->msg);
    return err->code == TRIT_EINVAL || err->code == TRIT_EFORMAT ? 2 : 1;
}

/* One evaluation of one opened side. */
static int side_run(const args *a, side *s, const char *text, size_t len, trit_ppl_opts *o,
                    trit_ppl_result *r, trit_err *err) {
    if (!a->quiet)
        fprintf(stderr, "trit ppl: %s %s%s%s ...\n", s->label, s->spec, s->b ? ", scoring by " : "",
                s->b ? (s->kind == SRC_URL
                            ? trit_backend_score_mode(s->b)
                            : (o->top_n > 0 ? "top-N of the full logits" : "full logits"))
                     : "");
    if (s->kind == SRC_REF) return trit_ppl_run_reference(s->rest, o, r, err);
    return trit_ppl_run_backend(s->b, text, len, o, r, err);
}

/* The figures to -o FILE: indented JSON and a newline, written atomically. */
static int write_json(const char *path, json_t *j, trit_err *err) {
    char *s = json_dumps(j, JSON_INDENT(2));
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    int rc = trit_write_file_atomic(path, s, n, err);
    free(s);
    return rc;
}

/* One side's PPL line of compare mode's text report. */
static void print_pair(FILE *out, const char *label, const trit_ppl_result *r) {
    fprintf(out, "%s %-50s PPL = %.4f +/- %.5f (%d chunks x %d, %.1f s%s%s)\n", label, r->source,
            r->ppl, r->ppl_err, r->n_chunk, r->n_ctx, r->seconds, r->score_mode[0] ? ", " : "",
            r->score_mode);
}

/* Compare mode's text report: both PPLs, the delta, and the KLD of gen-2 against gen-1. */
static void print_compare(const trit_ppl_result *r1, const trit_ppl_result *r2,
                          const char *no_kld_why) {
    double d = r2->ppl - r1->ppl;
    print_pair(stdout, "gen-1", r1);
    print_pair(stdout, "gen-2", r2);
    printf("delta PPL (gen-2 - gen-1) = %+.6f (%+.4f%%)\n", d, 100 * d / r1->ppl);
    if (r2->has_kld) {
        printf("\nKL divergence of gen-2 against gen-1 (%ld positions, %s):\n", r2->count,
               r2->kld_topn > 0 ? "over the top-N support" : "full vocabulary");
        trit_ppl_print(stdout, r2);
    } else {
        printf("KLD: not available (%s)\n", no_kld_why);
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

/* The fields every ppl file carries: what text (path, sha256 of the file's bytes), how many
 * positions were scored, and when (wall seconds). */
static void text_fields(json_t *j, const args *a, long scored) {
    char sha[65] = "";
    trit_err e = {0};
    if (trit_sha256_file(a->text, sha, &e) != 0) sha[0] = 0;
    json_object_set_new(j, "text", json_string(a->text));
    json_object_set_new(j, "text_path", json_string(a->text));
    json_object_set_new(j, "text_sha256", json_string(sha));
    json_object_set_new(j, "scored_tokens", json_integer(scored));
    json_object_set_new(j, "ts", json_real(trit_wall_s())); /* the gate's max_age */
}

/* Setup of compare mode: both sides opened (and probed when servers), each failure naming
 * the side; servers that report different vocabulary sizes are refused. 0, or the exit code
 * after saying why: 2 for a bad spec, 3 for a side that cannot be used. */
static int compare_setup(const args *a, side *g1, side *g2, const trit_ppl_opts *o,
                         const char *text, size_t len) {
    trit_err err = {0};
    side *sides[2] = {g1, g2};
    for (int i = 0; i < 2; i++) {
        if (side_open(a, sides[i], o, text, len, &err)) {
            return open_failed(sides[i], &err);
        }
    }
    /* not refused (a self-check is a valid run), but said: the gate refuses such a file */
    if (trit_identity_same_server(g1->ident, g2->ident))
        fprintf(stderr,
                "trit ppl: warning: gen-1 %s and gen-2 %s are the same server: the comparison "
                "shows nothing about two engines\n",
                g1->spec, g2->spec);
    json_int_t v1 = json_integer_value(json_object_get(g1->ident, "n_vocab"));
    json_int_t v2 = json_integer_value(json_object_get(g2->ident, "n_vocab"));
    if (v1 > 0 && v2 > 0 && v1 != v2) {
        fprintf(stderr,
                "trit ppl: setup failure: gen-1 %s has a vocabulary of %lld tokens, gen-2 %s of "
                "%lld: different vocabularies cannot be compared\n",
                g1->spec, (long long)v1, g2->spec, (long long)v2);
        return 3;
    }
    return 0;
}

/* The evaluation options both modes share, from the command line. */
static void ppl_opts_from(const args *a, trit_ppl_opts *o) {
    trit_ppl_opts_default(o);
    o->n_ctx = a->ctx, o->n_chunks = a->chunks, o->n_threads = a->threads;
    o->text_path = a->text, o->api_key = a->api_key, o->progress = !a->quiet;
    if (a->timeout_s > 0) o->timeout_s = a->timeout_s;
}

/* Compare mode's figures: both sides' results, the KLD (or why there is none), the deltas,
 * the text and each side's identity: the file the gate reads (-o). */
static json_t *compare_json(const args *a, const side *g1, const side *g2,
                            const trit_ppl_result *r1, const trit_ppl_result *r2,
                            const char *no_kld_why) {
    json_t *j = json_object();
    json_t *j1 = trit_ppl_result_json(r1), *j2 = trit_ppl_result_json(r2);
    json_t *kld = json_object_get(j2, "kld");
    json_object_set_new(j, "gen1", j1);
    json_object_set(j, "gen2", j2);
    json_object_set(j, "kld", kld ? kld : json_null());
    if (kld) json_object_del(j2, "kld");
    json_decref(j2);
    double d = r2->ppl - r1->ppl;
    json_object_set_new(j, "delta_ppl", isfinite(d) ? json_real(d) : json_null());
    json_object_set_new(j, "rel_delta_ppl",
                        isfinite(d / r1->ppl) ? json_real(d / r1->ppl) : json_null());
    text_fields(j, a, TRIT_MIN(r1->count, r2->count));
    json_object_set_new(j, "ctx", json_integer(r1->n_ctx));
    json_object_set_new(j, "chunks", json_integer(r1->n_chunk));
    json_object_set_new(j, "kld_topn", r2->kld_topn > 0 ? json_integer(r2->kld_topn) : json_null());
    json_object_set_new(j, "kld_support",
                        r2->has_kld ? json_string(trit_ppl_kld_support(r2)) : json_null());
    if (no_kld_why) json_object_set_new(j, "kld_unavailable", json_string(no_kld_why));
    json_object_set(j, "gen1_identity", g1->ident);
    json_object_set(j, "gen2_identity", g2->ident);
    return j;
}

/* Compare mode's output: the figures printed (JSON or text), written to -o and appended to
 * --ledger. rc stays unless a write fails (2). */
static int compare_emit(const args *a, json_t *j, const trit_ppl_result *r1,
                        const trit_ppl_result *r2, const char *no_kld_why, int rc) {
    trit_err err = {0};
    if (a->json) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        printf("\n");
    } else {
        print_compare(r1, r2, no_kld_why);
    }
    if (a->out && write_json(a->out, j, &err)) {
        fprintf(stderr, "trit ppl: %s\n", err.msg);
        rc = 2;
    }
    if (a->ledger && append_ppl_record(a->ledger, j)) rc = 2;
    return rc;
}

/* Compare mode: both sides opened and run on the same text (gen-2 against gen-1's base
 * logits, or top-N over HTTP), then the figures; the exit code (see --help). */
static int compare_mode(const args *a, const char *text, size_t len) {
    trit_err err = {0};
    trit_ppl_opts o;
    ppl_opts_from(a, &o);
    side g1 = {.label = "gen-1", .spec = a->gen1}, g2 = {.label = "gen-2", .spec = a->gen2};
    const char *rest;
    const int k1 = spec_kind(a->gen1, &rest), k2 = spec_kind(a->gen2, &rest);
    /* a server on either side: KLD over the top-N support (both sides scored alike), which
     * the reference binary cannot give; else the full-vocabulary KLD through a base file */
    const bool topn = k1 == SRC_URL || k2 == SRC_URL;
    const bool can_kld = topn ? k1 != SRC_REF && k2 != SRC_REF : true;
    const char *no_kld_why =
        "a side is llama-perplexity (ref:), which gives no top-N log-probabilities";
    trit_ppl_topn keep = {0};
    char tmp_base[] = "/tmp/trit-ppl-base-XXXXXX";
    const char *base = a->base;
    trit_ppl_result r1, r2;
    int rc = compare_setup(a, &g1, &g2, &o, text, len);
    if (rc) goto out;
    rc = 1;
    if (!topn && !base) {
        int fd = mkstemp(tmp_base);
        if (fd < 0) {
            fprintf(stderr, "trit ppl: cannot create a temporary file: %s\n", strerror(errno));
            goto out;
        }
        close(fd);
        base = tmp_base;
    }
    if (topn && can_kld) o.top_n = TRIT_BACKEND_TOPN_MAX;
    o.base_out = topn ? NULL : base;
    o.topn_keep = topn && can_kld ? &keep : NULL;
    if (side_run(a, &g1, text, len, &o, &r1, &err)) {
        rc = run_failed(&g1, &err);
        goto out;
    }
    o.base_out = NULL;
    o.topn_keep = NULL;
    o.base_in = topn ? NULL : base;
    o.topn_base = topn && can_kld ? &keep : NULL;
    if (side_run(a, &g2, text, len, &o, &r2, &err)) {
        rc = run_failed(&g2, &err);
        goto out;
    }
    if (r2.has_kld && !topn) r2.n_tokens = r1.n_tokens; /* gen-2 read gen-1's tokens */
    /* runs of different shape compare different text: the figures are written (the gate
     * fails them too), and the command fails */
    bool same_shape = r1.n_ctx == r2.n_ctx && r1.n_chunk == r2.n_chunk && r1.count == r2.count;
    if (!same_shape)
        fprintf(stderr,
                "trit ppl: gen-1 scored %d chunks x %d (%ld tokens), gen-2 %d x %d (%ld): the "
                "runs are not comparable\n",
                r1.n_chunk, r1.n_ctx, r1.count, r2.n_chunk, r2.n_ctx, r2.count);
    json_t *j = compare_json(a, &g1, &g2, &r1, &r2, can_kld ? NULL : no_kld_why);
    rc = compare_emit(a, j, &r1, &r2, no_kld_why, same_shape ? 0 : 1);
    json_decref(j);
out:
    side_close(&g1);
    side_close(&g2);
    trit_ppl_topn_free(&keep);
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
    O_TIMEOUT,
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
    {"timeout", required_argument, 0, O_TIMEOUT},
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
        return cli_opt_int("ppl", "ctx", v, 4, 1 << 24, &a->ctx) ? 2 : 0;
    case O_CHUNKS:
        return cli_opt_int("ppl", "chunks", v, 1, 1 << 24, &a->chunks) ? 2 : 0;
    case 't':
        return cli_opt_int("ppl", "threads", v, 1, 1 << 24, &a->threads) ? 2 : 0;
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
    case O_TIMEOUT:
        return cli_opt_timeout("ppl", "timeout", v, 86400, &a->timeout_s) ? 2 : 0;
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
    ppl_opts_from(a, &o);
    /* a base file is written, or with --kl-divergence read */
    if (a->base && a->kld) o.base_in = a->base;
    if (a->base && !a->kld) o.base_out = a->base;
    trit_ppl_result r;
    side s = {.spec = a->backend ? a->backend : a->url ? a->url : a->reference};
    s.label = a->reference ? "reference" : "source";
    if (a->reference) {
        /* --reference MODEL: the model path itself, whatever it looks like */
        s.kind = SRC_REF, s.rest = s.spec, s.ident = reference_identity(s.spec);
    } else {
        if (a->url && spec_kind(a->url, &s.rest) != SRC_URL) {
            fprintf(stderr, "trit ppl: --url %s: expected an http(s):// URL\n", a->url);
            return 2;
        }
        if (side_open(a, &s, &o, text->p, text->len, &err)) {
            side_close(&s);
            return open_failed(&s, &err);
        }
    }
    if (side_run(a, &s, text->p, text->len, &o, &r, &err)) {
        side_close(&s);
        return run_failed(&s, &err);
    }
    json_t *j = trit_ppl_result_json(&r);
    text_fields(j, a, r.count);
    json_object_set(j, "identity", s.ident);
    side_close(&s);
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

/* The command line into a (its defaults first): 0 to run, 1 after --help, 2 on a usage
 * error (getopt names an unknown option; the rest said on stderr). */
static int parse_ppl(int argc, char **argv, args *a) {
    *a = (args){.ctx = 512};
    int c, rc = 0;
    optind = 1;
    while (rc == 0 && (c = cli_getopt(argc, argv, "c:t:o:qh", ppl_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        rc = c == '?' ? 2 : ppl_option(c, optarg, a);
    }
    if (rc) return rc;
    if (optind < argc) {
        fprintf(stderr, "trit ppl: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (ppl_check(a)) return 2;
    if (!a->text) a->text = DEFAULT_TEXT;
    return 0;
}

/* The text (unless KLD mode takes the tokens from the base file; unreadable: 2), then
 * compare or single mode. */
static int run_ppl(const args *a) {
    const bool compare = a->gen1 != NULL, need_text = !(a->kld && !compare);
    trit_err err = {0};
    trit_buf text = {0};
    if (need_text && trit_ppl_read_text(a->text, &text, &err)) {
        fprintf(stderr, "trit ppl: %s\n", err.msg);
        return 2;
    }
    if (!text.p) trit_buf_puts(&text, "");
    int rc = compare ? compare_mode(a, text.p, text.len) : single_mode(a, &text);
    trit_buf_free(&text);
    return rc;
}

/* `trit ppl`: the command line into its options, then the run; the exit code. */
int cmd_ppl(int argc, char **argv) {
    args a;
    int rc = parse_ppl(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    return run_ppl(&a);
}
