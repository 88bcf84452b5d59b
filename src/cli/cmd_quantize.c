/* cmd_quantize.c — `trit quantize IN OUT FTYPE`: llama-quantize's conversion of a GGUF model.
 * FTYPE is one of llama-quantize's names (Q4_0, Q4_K_M, TQ2_0, Q8_0, F16 ... or the LLAMA_FTYPE
 * number; trit adds I2_S). Each tensor gets the type llama-quantize would give it (its mixes,
 * output/embedding rules and fallbacks: quant/ftype.c), is dequantized to f32 and quantized with
 * quant/'s ggml-identical quantizers; KVs are copied with general.quantization_version and
 * general.file_type (re)set last, tensors in llama-quantize's order and alignment, so with the
 * same input the two tools write byte-identical files. A type trit cannot quantize to yet is
 * refused up front, naming the tensor and the options that avoid it.
 * `trit quantize --compare A B [--prefix P]` compares two GGUF files' tensors byte for byte. */
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "model/mkmodel.h"
#include "quant/ftype.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --help: the three modes and every option of quantize_options. */
static void usage(FILE *out) {
    fprintf(
        out,
        "usage: trit quantize [options] IN.gguf OUT.gguf FTYPE [NTHREADS]\n"
        "       trit quantize --compare A.gguf B.gguf [--prefix NAME_PREFIX]\n"
        "       trit quantize IN.gguf OUT.gguf --i2s-to-tq2 | --tq2-to-i2s\n\n"
        "FTYPE: llama-quantize's names (case-insensitive) or LLAMA_FTYPE numbers, e.g. F32 F16\n"
        "BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S/M/L Q4_K_S/M Q5_K_S/M Q6_K TQ1_0 TQ2_0; and\n"
        "I2_S (bitnet.cpp; ternary weights only). Tensors get llama-quantize's per-tensor types\n"
        "(output/embedding rules, the *_M mixes, fallbacks for rows that are not whole blocks;\n"
        "1-D tensors and norms are kept). NTHREADS is accepted for compatibility and ignored.\n"
        "  --token-embedding-type T  token_embd.weight as type T (ggml name: q8_0, f16, ...)\n"
        "  --output-tensor-type T    output.weight as type T\n"
        "  --leave-output-tensor     do not quantize output.weight\n"
        "  --pure                    no mixes: the FTYPE's type everywhere (fallbacks apply)\n"
        "  --allow-requantize        convert tensors that are already quantized\n"
        "  --keep-embeddings         (trit) keep token_embd.weight and output.weight as they are\n"
        "  --dry-run                 print the plan (one 'NAME TYPE' line per tensor), write "
        "nothing\n"
        "--i2s-to-tq2 / --tq2-to-i2s: every I2_S tensor (bitnet.cpp) to TQ2_0 (llama.cpp) or\n"
        "back, all else copied: exact when the per-tensor fp32 scale is an fp16 value (TQ2_0 "
        "keeps\n"
        "an fp16 scale per 256 weights); otherwise the worst-case error is printed.\n"
        "--compare: for every tensor of A (whose name starts with NAME_PREFIX), check that B\n"
        "has it with the same type, shape and bytes. Prints each difference.\n"
        "exit codes: 0 done / identical, 1 failed / different, 2 bad arguments\n");
}

/* Rows of a tensor: every dimension after the first (the row length). */
static int64_t tensor_rows(const gguf_tensor *t) {
    return t->ne[1] * t->ne[2] * t->ne[3];
}

/* Whether a GGUF string (not NUL-terminated) equals c. */
static bool gstr_is(gguf_str s, const char *c) {
    return s.n == strlen(c) && !memcmp(s.p, c, s.n);
}

/* ---- compare ---- */
/* --compare: every tensor of A (under the prefix) against B's of the same name: type, shape
 * and bytes, each difference printed. 0 when all are identical, else 1. */
static int compare(const char *a_path, const char *b_path, const char *prefix) {
    trit_err err = {0};
    gguf_file *a = gguf_open(a_path, &err);
    if (!a) {
        fprintf(stderr, "trit quantize --compare: %s\n", err.msg);
        return 1;
    }
    gguf_file *b = gguf_open(b_path, &err);
    if (!b) {
        fprintf(stderr, "trit quantize --compare: %s\n", err.msg);
        gguf_close(a);
        return 1;
    }
    size_t n = 0, same = 0, plen = prefix ? strlen(prefix) : 0;
    for (size_t i = 0; i < gguf_n_tensors(a); i++) {
        const gguf_tensor *ta = gguf_tensor_at(a, i);
        if (plen && strncmp(ta->cname, prefix, plen)) continue;
        n++;
        const gguf_tensor *tb = gguf_find_tensor(b, ta->cname);
        if (!tb) {
            printf("%-32s missing in %s\n", ta->cname, b_path);
            continue;
        }
        const char *na = trit_type_get(ta->type)->name, *nb = trit_type_get(tb->type)->name;
        if (ta->type != tb->type || memcmp(ta->ne, tb->ne, sizeof ta->ne)) {
            printf("%-32s %s [%lld,%lld] vs %s [%lld,%lld]\n", ta->cname, na, (long long)ta->ne[0],
                   (long long)ta->ne[1], nb, (long long)tb->ne[0], (long long)tb->ne[1]);
            continue;
        }
        if (ta->nbytes != tb->nbytes || memcmp(ta->data, tb->data, ta->nbytes)) {
            size_t k = 0, lim = TRIT_MIN(ta->nbytes, tb->nbytes), ndiff = 0;
            const uint8_t *pa = ta->data, *pb = tb->data;
            while (k < lim && pa[k] == pb[k]) k++;
            for (size_t j = k; j < lim; j++) ndiff += pa[j] != pb[j];
            printf("%-32s %s: %zu of %zu bytes differ, first at byte %zu\n", ta->cname, na, ndiff,
                   ta->nbytes, k);
            continue;
        }
        same++;
    }
    printf("%zu tensors compared%s%s: %zu identical, %zu different\n", n,
           plen ? " with prefix " : "", plen ? prefix : "", same, n - same);
    gguf_close(a);
    gguf_close(b);
    return n > 0 && same == n ? 0 : 1;
}

/* ---- convert ---- */
typedef struct {
    const gguf_file *in;
    size_t *order;      /* output position -> input tensor index */
    uint32_t *out_type; /* per output position */
} conv_ctx;

/* llama-quantize's tensor order (llama_model_loader's weight_name_comparer): tensors outside
 * the blocks first, then by block number; by name within each group. */
static int tensor_layer(const char *name) {
    int l = -1;
    sscanf(name, "blk.%d.", &l);
    return l;
}
static const gguf_file *sort_file;
/* qsort's comparison for that order (sort_file: the file whose tensors are sorted). */
static int cmp_tensor(const void *pa, const void *pb) {
    const char *a = gguf_tensor_at(sort_file, *(const size_t *)pa)->cname;
    const char *b = gguf_tensor_at(sort_file, *(const size_t *)pb)->cname;
    int la = tensor_layer(a), lb = tensor_layer(b);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a, b);
}

/* The gguf writer's callback: the tensor at output position index, converted to its planned
 * type (dequantized to f32, then quantized; whole tensors for I2_S's one scale, else row by
 * row). */
static int fill_converted(void *vctx, size_t index, void *dst, size_t nbytes, trit_err *err) {
    conv_ctx *c = vctx;
    const gguf_tensor *t = gguf_tensor_at(c->in, c->order[index]);
    const uint32_t to = c->out_type[index];
    const int64_t ne0 = t->ne[0], rows = tensor_rows(t);
    if (t->type == TRIT_I2_S || to == TRIT_I2_S) { /* per-tensor scale: whole tensor */
        const size_t n = (size_t)(ne0 * rows);
        float *x = xmalloc(n * sizeof(float)), *y = NULL;
        int rc = trit_dequantize_tensor(t->type, t->data, x, ne0, rows) ||
                 trit_quantize_tensor(to, x, dst, ne0, rows);
        if (!rc && to == TRIT_I2_S) { /* I2_S keeps signs only: say so if that lost anything */
            y = xmalloc(n * sizeof(float));
            rc = trit_dequantize_tensor(to, dst, y, ne0, rows);
            size_t bad = 0;
            for (size_t i = 0; !rc && i < n; i++) bad += x[i] != y[i];
            if (bad)
                fprintf(stderr,
                        "trit quantize: note: %s is not ternary times one scale: i2_s changed "
                        "%zu of %zu weights\n",
                        t->cname, bad, n);
        }
        free(x);
        free(y);
        if (rc) return trit_fail(err, TRIT_EUNSUP, "conversion failed");
        return 0;
    }
    float *row = xmalloc((size_t)ne0 * sizeof(float));
    const size_t rs_in = trit_row_size(t->type, ne0), rs_out = trit_row_size(to, ne0);
    for (int64_t r = 0; r < rows; r++) {
        if (trit_dequantize_row(t->type, (const uint8_t *)t->data + r * rs_in, row, ne0) ||
            trit_quantize_row(to, row, (uint8_t *)dst + r * rs_out, ne0)) {
            free(row);
            return trit_fail(err, TRIT_EUNSUP, "conversion failed at row %lld", (long long)r);
        }
    }
    free(row);
    (void)nbytes;
    return 0;
}

/* ---- arguments ---- */
typedef struct {
    const char *in, *out;
    const trit_ftype_info *ft;
    trit_qopts q;
    bool allow_requantize, keep_emb, dry_run;
    bool compare;
    uint32_t cross_from, cross_to; /* --i2s-to-tq2 / --tq2-to-i2s (0: not asked) */
    const char *prefix;
    const char *pos[4];
    int npos;
} quant_args;

/* A ggml type name for --token-embedding-type / --output-tensor-type (as llama-quantize's
 * parse_ggml_type: any ggml name, case-insensitive); -1 with a message if unknown. */
static int parse_type_opt(const char *opt, const char *v) {
    const int t = trit_type_from_name(v);
    if (t < 0) fprintf(stderr, "trit quantize: %s: unknown type '%s'\n", opt, v);
    return t;
}

/* Print llama-quantize's ftype names, for the error on an unknown one. */
static void list_ftypes(FILE *out) {
    size_t n;
    const trit_ftype_info *l = trit_ftype_list(&n);
    fprintf(out, "known FTYPEs:");
    for (size_t i = 0; i < n; i++) fprintf(out, " %s", l[i].name);
    fprintf(out, "\n");
}

enum {
    O_TOK = 1000,
    O_OUT,
    O_LEAVE,
    O_PURE,
    O_REQ,
    O_KEEP,
    O_CMP,
    O_PREFIX,
    O_DRY,
    O_I2S_TQ2,
    O_TQ2_I2S
};
static const struct option quantize_options[] = {
    {"token-embedding-type", required_argument, 0, O_TOK},
    {"output-tensor-type", required_argument, 0, O_OUT},
    {"leave-output-tensor", no_argument, 0, O_LEAVE},
    {"pure", no_argument, 0, O_PURE},
    {"allow-requantize", no_argument, 0, O_REQ},
    {"keep-embeddings", no_argument, 0, O_KEEP},
    {"compare", no_argument, 0, O_CMP},
    {"prefix", required_argument, 0, O_PREFIX},
    {"dry-run", no_argument, 0, O_DRY},
    {"i2s-to-tq2", no_argument, 0, O_I2S_TQ2},
    {"tq2-to-i2s", no_argument, 0, O_TQ2_I2S},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

/* One option's value into a: 0, or -1 after saying why. */
static int quantize_option(int c, const char *v, quant_args *a) {
    switch (c) {
    case O_TOK:
        return (a->q.token_embedding_type = parse_type_opt("--token-embedding-type", v)) < 0;
    case O_OUT:
        return (a->q.output_tensor_type = parse_type_opt("--output-tensor-type", v)) < 0;
    case O_LEAVE:
        a->q.leave_output = true;
        return 0;
    case O_PURE:
        a->q.pure = true;
        return 0;
    case O_REQ:
        a->allow_requantize = true;
        return 0;
    case O_KEEP:
        a->keep_emb = true;
        return 0;
    case O_CMP:
        a->compare = true;
        return 0;
    case O_PREFIX:
        a->prefix = v;
        return 0;
    case O_DRY:
        a->dry_run = true;
        return 0;
    case O_I2S_TQ2:
    case O_TQ2_I2S:
        a->cross_from = c == O_I2S_TQ2 ? TRIT_I2_S : TRIT_TQ2_0;
        a->cross_to = c == O_I2S_TQ2 ? TRIT_TQ2_0 : TRIT_I2_S;
        return 0;
    }
    return -1;
}

/* IN OUT FTYPE [NTHREADS] of a conversion: the ftype known, NTHREADS a number (it is
 * ignored), IN not OUT. 0, or 2 after saying why. */
static int quantize_conversion_args(quant_args *a) {
    if (a->npos < 3) {
        fprintf(stderr, "trit quantize: needs IN OUT FTYPE\n");
        usage(stderr);
        return 2;
    }
    a->in = a->pos[0];
    a->out = a->pos[1];
    a->ft = trit_ftype_find(a->pos[2]);
    if (!a->ft) {
        fprintf(stderr, "trit quantize: unknown FTYPE '%s'; ", a->pos[2]);
        list_ftypes(stderr);
        return 2;
    }
    if (a->npos == 4 && strspn(a->pos[3], "0123456789") != strlen(a->pos[3])) {
        fprintf(stderr, "trit quantize: NTHREADS '%s' is not a number\n", a->pos[3]);
        return 2;
    }
    if (!strcmp(a->in, a->out)) {
        fprintf(stderr, "trit quantize: IN and OUT are the same file\n");
        return 2;
    }
    a->q.ftype = a->ft->ftype;
    a->q.default_type = a->ft->default_type;
    return 0;
}

/* The positional arguments, as many as the mode takes: --i2s-to-tq2/--tq2-to-i2s and
 * --compare two files, a conversion IN OUT FTYPE [NTHREADS]. 0, or 2 after saying why. */
static int quantize_positionals(int argc, char **argv, quant_args *a) {
    for (; optind < argc; optind++) {
        if (a->npos == 4) {
            fprintf(stderr, "trit quantize: unexpected argument '%s'\n", argv[optind]);
            usage(stderr);
            return 2;
        }
        a->pos[a->npos++] = argv[optind];
    }
    if (a->cross_to && a->npos != 2) {
        fprintf(stderr, "trit quantize: --i2s-to-tq2/--tq2-to-i2s take IN OUT only\n");
        return 2;
    }
    if (a->cross_to) return 0;
    if (a->compare && a->npos != 2) {
        fprintf(stderr, "trit quantize --compare: needs exactly two files\n");
        usage(stderr);
        return 2;
    }
    if (a->compare) return 0;
    return quantize_conversion_args(a);
}

/* The command line into a: 0 to run, 1 after --help, 2 on a usage error (said on stderr). */
static int parse_quantize(int argc, char **argv, quant_args *a) {
    *a = (quant_args){0};
    a->q.token_embedding_type = a->q.output_tensor_type = -1;
    int c;
    optind = 1;
    while ((c = cli_getopt(argc, argv, "h", quantize_options)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?') { /* getopt_long printed the problem */
            usage(stderr);
            return 2;
        }
        if (quantize_option(c, optarg, a)) return 2;
    }
    return quantize_positionals(argc, argv, a);
}

/* ---- the model summary the type rules need ---- */

/* <arch>.<suffix> as an integer (u32 or i64 in the file), or def when absent. */
static int arch_int(const gguf_file *f, const char *arch, const char *suffix, int def) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t u;
    int64_t i;
    if (!gguf_get_u32(f, key, &u)) return (int)u;
    if (!gguf_get_i64(f, key, &i)) return (int)i;
    return def;
}

/* What llama-quantize's type rules look at: layers, experts, GQA, 70B-ness, tied
 * embeddings, the count of attn_v tensors. */
static trit_qmodel model_summary(const gguf_file *in) {
    trit_qmodel m = {.tied_embeddings = true};
    char *arch = gguf_get_str(in, "general.architecture");
    const char *a = arch ? arch : "";
    m.falcon = !strcmp(a, "falcon");
    m.n_layer = arch_int(in, a, "block_count", 0);
    m.n_expert = arch_int(in, a, "expert_count", 0);
    const int n_head = arch_int(in, a, "attention.head_count", 0);
    const int n_head_kv = arch_int(in, a, "attention.head_count_kv", n_head);
    m.n_gqa = n_head_kv > 0 ? n_head / n_head_kv : 0;
    /* LLM_TYPE_70B as the reference's model loaders set it: llama with 80 layers and grouped
     * KV heads (without: 65B), qwen2/deci/olmo with 80 layers, jais2 with 68 */
    m.is_70b =
        (!strcmp(a, "llama") && m.n_layer == 80 && n_head != n_head_kv) ||
        ((!strcmp(a, "qwen2") || !strcmp(a, "deci") || !strcmp(a, "olmo")) && m.n_layer == 80) ||
        (!strcmp(a, "jais2") && m.n_layer == 68);
    for (size_t i = 0; i < gguf_n_tensors(in); i++) {
        const char *name = gguf_tensor_at(in, i)->cname;
        if (!strcmp(name, "output.weight")) m.tied_embeddings = false;
        if (trit_quant_is_attn_v(name)) m.n_attention_wv++;
    }
    free(arch);
    return m;
}

/* ---- the per-tensor plan ---- */

/* token_embd or output: what --keep-embeddings keeps. */
static bool is_embedding(const char *name) {
    return !strcmp(name, "token_embd.weight") || !strcmp(name, "output.weight");
}

/* out_type[i] for the tensor at output position i (c->order), as llama-quantize's
 * preliminary loop decides (its counters advance in this order). Returns 0 or -1 with err. */
static int plan_types(const quant_args *a, conv_ctx *c, trit_err *err) {
    const trit_qmodel m = model_summary(c->in);
    trit_qstate st = {0};
    for (size_t i = 0; i < gguf_n_tensors(c->in); i++) {
        const gguf_tensor *t = gguf_tensor_at(c->in, c->order[i]);
        const int before = st.n_fallback;
        int to =
            trit_quant_choose_type(&m, &a->q, &st, t->cname, (int)t->n_dims, t->ne, t->type, err);
        if (to < 0) return -1;
        if (a->keep_emb && is_embedding(t->cname)) to = (int)t->type;
        if (st.n_fallback > before)
            fprintf(stderr,
                    "trit quantize: %s: row length %lld is not a multiple of the chosen type's "
                    "block: falling back to %s (as llama-quantize)\n",
                    t->cname, (long long)t->ne[0], trit_type_get((uint32_t)to)->name);
        c->out_type[i] = (uint32_t)to;
    }
    if (st.n_fallback)
        fprintf(stderr, "trit quantize: %d of %zu tensors required fallback quantization\n",
                st.n_fallback, gguf_n_tensors(c->in));
    return 0;
}

/* Refuse what trit cannot do before anything is written: a source type it cannot read, a
 * target type it cannot quantize to yet, requantizing without --allow-requantize. Counts
 * the tensors to convert. Returns 0 or -1 with err set. */
static int check_plan(const quant_args *a, const conv_ctx *c, size_t *n_conv, trit_err *err) {
    *n_conv = 0;
    for (size_t i = 0; i < gguf_n_tensors(c->in); i++) {
        const gguf_tensor *t = gguf_tensor_at(c->in, c->order[i]);
        const uint32_t to = c->out_type[i];
        if (to == t->type) continue;
        const trit_type_info *src = trit_type_get(t->type), *dst = trit_type_get(to);
        if (!src || !src->supported)
            return trit_fail(err, TRIT_EUNSUP, "%s has type %s, which trit cannot read", t->cname,
                             src ? src->name : "?");
        if (!dst || !dst->supported)
            return trit_fail(err, TRIT_EUNSUP,
                             "%s would be %s (llama-quantize's choice for %s), a type trit cannot "
                             "quantize to yet; choose another with --token-embedding-type / "
                             "--output-tensor-type, or --pure",
                             t->cname, dst ? dst->name : "?", a->ft->name);
        if (src->blck > 1 && !a->allow_requantize)
            return trit_fail(err, TRIT_EINVAL,
                             "%s is already quantized (%s): requantizing is disabled; pass "
                             "--allow-requantize to convert it anyway",
                             t->cname, src->name);
        if (!trit_tensor_nbytes(to, t->ne[0], tensor_rows(t)))
            return trit_fail(err, TRIT_EUNSUP, "%s: shape [%lld, ...] cannot be stored as %s",
                             t->cname, (long long)t->ne[0], dst->name);
        (*n_conv)++;
    }
    return 0;
}

/* --dry-run: the plan on stdout, one "NAME TYPE" line per tensor in file order (what
 * llama-quantize --dry-run decides), whether or not trit can quantize to those types. */
static void print_plan(const conv_ctx *c) {
    for (size_t i = 0; i < gguf_n_tensors(c->in); i++) {
        const trit_type_info *ti = trit_type_get(c->out_type[i]);
        printf("%s %s\n", gguf_tensor_at(c->in, c->order[i])->cname, ti ? ti->name : "?");
    }
}

/* KVs as llama-quantize: every input KV, then general.quantization_version (2) and
 * general.file_type (re)set last, in this order; tensors in c->order with their planned types. */
static void add_header(gguf_writer *w, const quant_args *a, const conv_ctx *c) {
    for (size_t i = 0; i < gguf_n_kv(c->in); i++) {
        const gguf_kv *kv = gguf_kv_at(c->in, i);
        if (gstr_is(kv->key, "general.quantization_version") ||
            gstr_is(kv->key, "general.file_type"))
            continue;
        gguf_w_copy_kv(w, kv);
    }
    gguf_w_u32(w, "general.quantization_version", 2);
    gguf_w_u32(w, "general.file_type", (uint32_t)a->ft->ftype);
    for (size_t i = 0; i < gguf_n_tensors(c->in); i++) {
        const gguf_tensor *t = gguf_tensor_at(c->in, c->order[i]);
        const uint32_t to = c->out_type[i];
        if (to == t->type)
            gguf_w_tensor(w, t->cname, t->type, t->n_dims, t->ne, t->data, t->nbytes);
        else
            gguf_w_tensor(w, t->cname, to, t->n_dims, t->ne, NULL,
                          trit_tensor_nbytes(to, t->ne[0], tensor_rows(t)));
    }
}

/* Check the plan, then write OUT (header, then each tensor copied or converted). */
static int write_output(const quant_args *a, conv_ctx *c, trit_err *err) {
    size_t n_conv = 0;
    if (check_plan(a, c, &n_conv, err)) return -1;
    gguf_writer *w = gguf_writer_new();
    const double t0 = trit_now_s();
    add_header(w, a, c);
    const int rc = gguf_writer_write(w, a->out, fill_converted, c, err);
    gguf_writer_free(w);
    if (!rc)
        fprintf(stderr, "trit quantize: wrote %s (%s): %zu tensors converted, %zu kept (%.1f s)\n",
                a->out, a->ft->name, n_conv, gguf_n_tensors(c->in) - n_conv, trit_now_s() - t0);
    return rc;
}

/* llama-quantize's conversion: open IN, order the tensors as it does, plan their types, then
 * print the plan (--dry-run) or write OUT. 0, or 1 with the reason said. */
static int convert(const quant_args *a) {
    trit_err err = {0};
    gguf_file *in = gguf_open(a->in, &err);
    if (!in) {
        fprintf(stderr, "trit quantize: %s\n", err.msg);
        return 1;
    }
    const size_t nt = gguf_n_tensors(in);
    conv_ctx c = {.in = in,
                  .order = xcalloc(nt ? nt : 1, sizeof(size_t)),
                  .out_type = xcalloc(nt ? nt : 1, sizeof(uint32_t))};
    for (size_t i = 0; i < nt; i++) c.order[i] = i;
    sort_file = in;
    qsort(c.order, nt, sizeof(size_t), cmp_tensor);
    int rc = plan_types(a, &c, &err);
    if (!rc && a->dry_run)
        print_plan(&c);
    else if (!rc)
        rc = write_output(a, &c, &err);
    if (rc) fprintf(stderr, "trit quantize: %s\n", err.msg);
    free(c.out_type);
    free(c.order);
    gguf_close(in);
    return rc ? 1 : 0;
}

/* I2_S <-> TQ2_0 for a whole file: quant/convert.c does the work and measures the error. */
static int cross_convert(const char *in, const char *out, uint32_t from, uint32_t to) {
    trit_convert_report r;
    trit_err e = {0};
    trit_buf b = {0};
    int rc = trit_convert_file(in, out, from, to, &r, &e);
    if (rc) {
        fprintf(stderr, "trit quantize: %s\n", e.msg);
    } else {
        trit_convert_describe(&r, to, &b);
        fprintf(stderr, "trit quantize: wrote %s: %s\n", out, b.p);
    }
    trit_buf_free(&b);
    return rc ? 1 : 0;
}

/* The mode the command line chose: compare, cross-convert, or llama-quantize's conversion. */
static int run_quantize(const quant_args *a) {
    if (a->compare) return compare(a->pos[0], a->pos[1], a->prefix);
    if (a->cross_to) return cross_convert(a->pos[0], a->pos[1], a->cross_from, a->cross_to);
    return convert(a);
}

/* `trit quantize`: the command line into its options, then the run; the exit code (cli.h). */
int cmd_quantize(int argc, char **argv) {
    quant_args a;
    int rc = parse_quantize(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    return run_quantize(&a);
}
