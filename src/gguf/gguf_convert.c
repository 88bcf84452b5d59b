/* gguf_convert.c — the I2_S <-> TQ2_0 file converter: every tensor of one ternary type
 * converted with quant's per-tensor converter (trit_convert_tensor, which states the exactness
 * rules), every other tensor and every KV copied in order, general.file_type updated. It lives
 * in gguf/ because it reads and writes files; quant/ stays free of the file format. */
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const gguf_file *in;
    uint32_t from, to;
    trit_convert_report *total;
} file_ctx;

static bool gstr_eq(gguf_str s, const char *c) {
    return s.n == strlen(c) && !memcmp(s.p, c, s.n);
}

static int64_t rows_of(const gguf_tensor *t) {
    return t->ne[1] * t->ne[2] * t->ne[3];
}

/* Writer callback: converted tensors (the others are written from their input bytes). */
static int fill(void *vctx, size_t index, void *dst, size_t nbytes, trit_err *err) {
    file_ctx *c = vctx;
    const gguf_tensor *t = gguf_tensor_at(c->in, index);
    trit_convert_report r = {0};
    if (trit_convert_tensor(c->from, c->to, t->data, dst, t->ne[0], rows_of(t), &r, err)) {
        trit_err_prefix(err, "tensor %s", t->cname);
        return -1;
    }
    (void)nbytes;
    trit_convert_report *T = c->total;
    T->n_tensors++;
    T->n += r.n;
    T->n_diff += r.n_diff;
    if (r.n_diff == 0) T->n_exact++;
    if (r.max_rel_err > T->max_rel_err) T->max_rel_err = r.max_rel_err;
    if (r.max_abs_err > T->max_abs_err) {
        T->max_abs_err = r.max_abs_err;
        snprintf(T->worst, sizeof T->worst, "%s", t->cname);
    }
    return 0;
}

int trit_convert_file(const char *in_path, const char *out_path, uint32_t from, uint32_t to,
                      trit_convert_report *total, trit_err *err) {
    /* general.file_type of the result: llama.cpp's LLAMA_FTYPE_MOSTLY_TQ2_0, bitnet.cpp's
     * LLAMA_FTYPE_MOSTLY_I2_S */
    const uint32_t ftype = to == TRIT_TQ2_0 ? 37 : 40;
    memset(total, 0, sizeof *total);
    if (!((from == TRIT_I2_S && to == TRIT_TQ2_0) || (from == TRIT_TQ2_0 && to == TRIT_I2_S)))
        return trit_fail(err, TRIT_EINVAL, "convert: only i2_s <-> tq2_0");
    gguf_file *in = gguf_open(in_path, err);
    if (!in) return -1;
    gguf_writer *w = gguf_writer_new();
    for (size_t i = 0; i < gguf_n_kv(in); i++) gguf_w_copy_kv(w, gguf_kv_at(in, i));
    bool had_ftype = false;
    for (size_t i = 0; i < gguf_n_kv(in); i++)
        had_ftype = had_ftype || gstr_eq(gguf_kv_at(in, i)->key, "general.file_type");
    if (had_ftype) gguf_w_u32(w, "general.file_type", ftype); /* keeps its position */
    size_t n_conv = 0;
    int rc = 0;
    for (size_t i = 0; i < gguf_n_tensors(in) && !rc; i++) {
        const gguf_tensor *t = gguf_tensor_at(in, i);
        if (t->type != from) {
            gguf_w_tensor(w, t->cname, t->type, t->n_dims, t->ne, t->data, t->nbytes);
            continue;
        }
        const size_t nb = trit_tensor_nbytes(to, t->ne[0], rows_of(t));
        if (nb == 0) {
            rc = trit_fail(err, TRIT_EINVAL,
                           "tensor %s: row length %lld is not a multiple of 256 (tq2_0's block)",
                           t->cname, (long long)t->ne[0]);
            break;
        }
        gguf_w_tensor(w, t->cname, to, t->n_dims, t->ne, NULL, nb);
        n_conv++;
    }
    if (!rc && n_conv == 0)
        rc = trit_fail(err, TRIT_EINVAL, "%s has no %s tensor to convert", in_path,
                       trit_type_get(from)->name);
    file_ctx c = {.in = in, .from = from, .to = to, .total = total};
    if (!rc) rc = gguf_writer_write(w, out_path, fill, &c, err);
    gguf_writer_free(w);
    gguf_close(in);
    return rc;
}
