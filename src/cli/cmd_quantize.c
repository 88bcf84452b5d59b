/* cmd_quantize.c — `trit quantize IN OUT TYPE`: convert a GGUF model's 2-D weight tensors to
 * TYPE (dequantize to f32, then quantize with quant/'s ggml-identical quantizers), copy every
 * KV (general.file_type set to llama.cpp's LLAMA_FTYPE for TYPE), keep 1-D tensors as they are.
 * The output is laid out as llama-quantize lays it out (KV order, tensor order), so with the
 * same tensor types the two tools write byte-identical files.
 * `trit quantize --compare A B [--prefix P]` compares two GGUF files' tensors byte for byte. */
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "model/mkmodel.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit quantize IN.gguf OUT.gguf TYPE [--keep-embeddings] [--allow-requantize]\n"
            "       trit quantize --compare A.gguf B.gguf [--prefix NAME_PREFIX]\n\n"
            "TYPE: f32 f16 bf16 q8_0 tq1_0 tq2_0 i2_s. Every 2-D '*.weight' tensor is converted\n"
            "(dequantized to f32, then quantized byte-identically to llama.cpp's reference\n"
            "quantizers); 1-D tensors (norms) are kept as they are; a tensor whose rows are not\n"
            "a whole number of TYPE's blocks is kept, with a note. All metadata is copied, with\n"
            "general.file_type set for TYPE. i2_s (bitnet.cpp) keeps one scale per tensor and\n"
            "each weight's sign only: use it on ternary models (a note says when it was lossy).\n"
            "  --keep-embeddings   leave token_embd.weight and output.weight as they are\n"
            "  --allow-requantize  convert tensors that are already quantized (q8_0/tq*/i2_s);\n"
            "                      without it such a tensor is an error (quality loss)\n"
            "trit quantize IN.gguf OUT.gguf --i2s-to-tq2 | --tq2-to-i2s\n"
            "  converts every I2_S tensor (bitnet.cpp) to TQ2_0 (llama.cpp) or back, all else\n"
            "  copied: exact when the per-tensor fp32 scale is an fp16 value (TQ2_0 keeps an fp16\n"
            "  scale per 256 weights); otherwise the worst-case error is printed\n"
            "--compare: for every tensor of A (whose name starts with NAME_PREFIX), check that B\n"
            "has it with the same type, shape and bytes. Prints each difference.\n"
            "exit codes: 0 done / identical, 1 failed / different, 2 bad arguments\n");
}

static int64_t tensor_rows(const gguf_tensor *t) {
    return t->ne[1] * t->ne[2] * t->ne[3];
}

static bool is_float_type(uint32_t t) {
    return t == TRIT_F32 || t == TRIT_F16 || t == TRIT_BF16;
}

static bool gstr_is(gguf_str s, const char *c) {
    return s.n == strlen(c) && !memcmp(s.p, c, s.n);
}

/* ---- compare ---- */
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
static int cmp_tensor(const void *pa, const void *pb) {
    const char *a = gguf_tensor_at(sort_file, *(const size_t *)pa)->cname;
    const char *b = gguf_tensor_at(sort_file, *(const size_t *)pb)->cname;
    int la = tensor_layer(a), lb = tensor_layer(b);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a, b);
}

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

int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {0};
    int npos = 0;
    bool keep_emb = false, requant = false, cmp = false;
    uint32_t cross_from = 0, cross_to = 0; /* --i2s-to-tq2 / --tq2-to-i2s */
    const char *prefix = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--keep-embeddings"))
            keep_emb = true;
        else if (!strcmp(a, "--allow-requantize"))
            requant = true;
        else if (!strcmp(a, "--compare"))
            cmp = true;
        else if (!strcmp(a, "--i2s-to-tq2") || !strcmp(a, "--tq2-to-i2s")) {
            const bool to_tq2 = !strcmp(a, "--i2s-to-tq2");
            cross_from = to_tq2 ? TRIT_I2_S : TRIT_TQ2_0;
            cross_to = to_tq2 ? TRIT_TQ2_0 : TRIT_I2_S;
        } else if (!strcmp(a, "--prefix")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "trit quantize: --prefix needs a value\n");
                return 2;
            }
            prefix = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "trit quantize: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (npos < 3)
            pos[npos++] = a;
        else {
            fprintf(stderr, "trit quantize: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (cmp) {
        if (npos != 2) {
            fprintf(stderr, "trit quantize --compare: needs exactly two files\n");
            usage(stderr);
            return 2;
        }
        return compare(pos[0], pos[1], prefix);
    }
    if (cross_to) { /* cross-format conversion: quant/convert.c does it all */
        if (npos != 2) {
            fprintf(stderr, "trit quantize: --i2s-to-tq2/--tq2-to-i2s take IN OUT only\n");
            return 2;
        }
        trit_convert_report r;
        trit_err e = {0};
        trit_buf b = {0};
        int rc = trit_convert_file(pos[0], pos[1], cross_from, cross_to, &r, &e);
        if (!rc) trit_convert_describe(&r, cross_to, &b);
        if (rc)
            fprintf(stderr, "trit quantize: %s\n", e.msg);
        else
            fprintf(stderr, "trit quantize: wrote %s: %s\n", pos[1], b.p);
        trit_buf_free(&b);
        return rc ? 1 : 0;
    }
    if (npos != 3) {
        fprintf(stderr, "trit quantize: needs IN OUT TYPE\n");
        usage(stderr);
        return 2;
    }
    const int type = trit_type_from_name(pos[2]);
    if (type < 0 || trit_llama_ftype((uint32_t)type) < 0) {
        fprintf(stderr,
                "trit quantize: unsupported TYPE '%s' (f32, f16, bf16, q8_0, tq1_0, tq2_0, "
                "i2_s)\n",
                pos[2]);
        return 2;
    }
    if (!strcmp(pos[0], pos[1])) {
        fprintf(stderr, "trit quantize: IN and OUT are the same file\n");
        return 2;
    }

    trit_err err = {0};
    gguf_file *in = gguf_open(pos[0], &err);
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
    gguf_writer *w = gguf_writer_new();
    /* As llama-quantize: copy every KV, then (re)set these two last, in this order. */
    for (size_t i = 0; i < gguf_n_kv(in); i++) {
        const gguf_kv *kv = gguf_kv_at(in, i);
        if (gstr_is(kv->key, "general.quantization_version") ||
            gstr_is(kv->key, "general.file_type"))
            continue;
        gguf_w_copy_kv(w, kv);
    }
    gguf_w_u32(w, "general.quantization_version", 2);
    gguf_w_u32(w, "general.file_type", (uint32_t)trit_llama_ftype((uint32_t)type));

    int rc = 0;
    size_t n_conv = 0, n_kept = 0;
    for (size_t i = 0; i < nt && !rc; i++) {
        const gguf_tensor *t = gguf_tensor_at(in, c.order[i]);
        const char *name = t->cname;
        size_t len = strlen(name);
        bool weight = t->n_dims >= 2 && len > 7 && !strcmp(name + len - 7, ".weight");
        bool emb = !strcmp(name, "token_embd.weight") || !strcmp(name, "output.weight");
        uint32_t to = t->type;
        if (weight && !(keep_emb && emb) && t->type != (uint32_t)type) {
            const trit_type_info *src = trit_type_get(t->type);
            if (trit_tensor_nbytes((uint32_t)type, t->ne[0], tensor_rows(t)) == 0) {
                fprintf(stderr,
                        "trit quantize: note: %s kept as %s (row length %lld is not a "
                        "multiple of %s's block)\n",
                        name, src->name, (long long)t->ne[0], pos[2]);
            } else if (!src->supported) {
                rc = trit_fail(&err, TRIT_EUNSUP, "%s has type %s, which trit cannot convert", name,
                               src->name);
            } else if (!is_float_type(t->type) && !requant) {
                rc = trit_fail(&err, TRIT_EINVAL,
                               "%s is already quantized (%s); pass --allow-requantize to "
                               "convert it anyway",
                               name, src->name);
            } else {
                to = (uint32_t)type;
            }
        }
        c.out_type[i] = to;
        if (to == t->type) {
            gguf_w_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
            n_kept++;
        } else {
            gguf_w_tensor(w, name, to, t->n_dims, t->ne, NULL,
                          trit_tensor_nbytes(to, t->ne[0], tensor_rows(t)));
            n_conv++;
        }
    }
    double t0 = trit_now_s();
    if (!rc) rc = gguf_writer_write(w, pos[1], fill_converted, &c, &err);
    if (rc)
        fprintf(stderr, "trit quantize: %s\n", err.msg);
    else
        fprintf(stderr, "trit quantize: wrote %s: %zu tensors converted to %s, %zu kept (%.1f s)\n",
                pos[1], n_conv, trit_type_get((uint32_t)type)->name, n_kept, trit_now_s() - t0);
    gguf_writer_free(w);
    free(c.out_type);
    free(c.order);
    gguf_close(in);
    return rc ? 1 : 0;
}
