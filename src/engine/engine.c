/* engine/engine.c — the forward pass (llama.cpp's llama and bitnet graphs), KV cache, trace.
 *
 * One trit_ctx = one sequence. All scratch buffers are sized for n_batch tokens at creation;
 * the forward pass never allocates (the logits buffer grows only when a caller first asks
 * for more rows than before). Graph order and tensor names follow llama.cpp's
 * src/models/llama.cpp and src/models/bitnet.cpp (bitnet-b1.58: the same graph, relu² FFN); the
 * tail of the last layer (after attention) is only computed for the rows whose logits are wanted,
 * as inp_out_ids does. */
#include "engine/engine.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct trit_ctx {
    trit_model *m;
    trit_hparams hp; /* the model's, with the ctx overrides applied */
    int n_ctx, n_batch, n_threads;
    uint32_t kv_type;
    const trit_kernels *k;
    trit_pool *pool;

    size_t kv_layer_elems; /* n_head_kv * n_ctx * head_dim */
    void *kcache, *vcache; /* [n_layer][n_head_kv][n_ctx][head_dim] */
    int n_past;

    /* scratch, n_batch rows each */
    float *x, *xn, *q, *kx, *vx, *att, *o, *gate, *up;

    float *logits;
    size_t logits_cap; /* rows */
    int n_logits;      /* rows kept by the last eval */
    int n_eval;        /* tokens of the last eval */
    bool logits_all;

    trit_trace_fn trace;
    void *trace_ud;
};

trit_ctx_params trit_ctx_default_params(void) {
    trit_ctx_params p = {0};
    p.n_ctx = 0;
    p.n_threads = 0;
    p.n_batch = 0;
    p.kv_type = TRIT_F16;
    p.rope_mode = -1;
    p.act = -1;
    return p;
}

trit_ctx *trit_ctx_new(trit_model *m, const trit_ctx_params *pp, trit_err *err) {
    trit_ctx_params p = pp ? *pp : trit_ctx_default_params();
    if (!m) {
        trit_fail(err, TRIT_EINVAL, "no model");
        return NULL;
    }
    if (p.kv_type != TRIT_F16 && p.kv_type != TRIT_F32) {
        trit_fail(err, TRIT_EUNSUP, "KV cache type %u is not supported (f16 or f32)", p.kv_type);
        return NULL;
    }
    if (p.rope_mode != -1 && p.rope_mode != TRIT_ROPE_NORM && p.rope_mode != TRIT_ROPE_NEOX) {
        trit_fail(err, TRIT_EINVAL, "rope_mode %d is not one of -1, 0 (norm), 2 (neox)",
                  p.rope_mode);
        return NULL;
    }
    if (p.act != -1 && p.act != TRIT_ACT_SILU && p.act != TRIT_ACT_RELU2) {
        trit_fail(err, TRIT_EINVAL, "act %d is not one of -1, 0 (silu), 1 (relu2)", p.act);
        return NULL;
    }
    if (p.numerics != TRIT_NUMERICS_EXACT && p.numerics != TRIT_NUMERICS_FAST) {
        trit_fail(err, TRIT_EINVAL, "numerics %d is not one of 0 (exact), 1 (fast)", p.numerics);
        return NULL;
    }
    if (p.n_ctx < 0 || p.n_batch < 0) {
        trit_fail(err, TRIT_EINVAL, "n_ctx and n_batch must not be negative");
        return NULL;
    }
    trit_ctx *c = xcalloc(1, sizeof *c);
    c->m = m;
    c->hp = m->hp;
    if (p.rope_mode != -1) c->hp.rope_mode = (enum trit_rope_mode)p.rope_mode;
    if (p.act != -1) c->hp.act = (enum trit_act)p.act;
    const trit_hparams *hp = &c->hp;
    c->n_ctx = p.n_ctx > 0 ? p.n_ctx : TRIT_MIN(hp->n_ctx_train > 0 ? hp->n_ctx_train : 4096, 4096);
    c->n_batch = p.n_batch > 0 ? p.n_batch : 512;
    c->n_batch = TRIT_MIN(c->n_batch, c->n_ctx);
    c->kv_type = p.kv_type;
    c->k = trit_kernels_for(trit_kernels_best(), p.numerics); /* exact: the best set itself */
    c->pool = trit_pool_new(p.n_threads);
    trit_pool_set_spin_us(c->pool, trit_tuning_get()->spin_us); /* this CPU's row (kernels.c) */
    c->n_threads = trit_pool_size(c->pool);

    const size_t es = c->kv_type == TRIT_F16 ? 2 : 4;
    c->kv_layer_elems = (size_t)hp->n_head_kv * c->n_ctx * hp->head_dim;
    c->kcache = xcalloc((size_t)hp->n_layer * c->kv_layer_elems, es);
    c->vcache = xcalloc((size_t)hp->n_layer * c->kv_layer_elems, es);

    const size_t nb = (size_t)c->n_batch;
    const size_t n_q = (size_t)hp->head_dim * hp->n_head;
    const size_t n_kv = (size_t)hp->head_dim * hp->n_head_kv;
    const size_t wide = TRIT_MAX((size_t)hp->n_embd, n_q);
    c->x = xmalloc(nb * hp->n_embd * sizeof(float));
    c->xn = xmalloc(nb * wide * sizeof(float));
    c->q = xmalloc(nb * n_q * sizeof(float));
    c->kx = xmalloc(nb * n_kv * sizeof(float));
    c->vx = xmalloc(nb * n_kv * sizeof(float));
    c->att = xmalloc(nb * n_q * sizeof(float));
    c->o = xmalloc(nb * hp->n_embd * sizeof(float));
    c->gate = xmalloc(nb * hp->n_ff * sizeof(float));
    c->up = xmalloc(nb * hp->n_ff * sizeof(float));
    c->logits_cap = 1;
    c->logits = xmalloc((size_t)hp->n_vocab * sizeof(float));
    return c;
}

void trit_ctx_free(trit_ctx *c) {
    if (!c) return;
    trit_pool_free(c->pool);
    free(c->kcache);
    free(c->vcache);
    free(c->x);
    free(c->xn);
    free(c->q);
    free(c->kx);
    free(c->vx);
    free(c->att);
    free(c->o);
    free(c->gate);
    free(c->up);
    free(c->logits);
    free(c);
}

int trit_ctx_n_ctx(const trit_ctx *c) {
    return c->n_ctx;
}
int trit_ctx_n_past(const trit_ctx *c) {
    return c->n_past;
}
const trit_model *trit_ctx_model(const trit_ctx *c) {
    return c->m;
}
void trit_kv_clear(trit_ctx *c) {
    c->n_past = 0;
}

void trit_ctx_set_trace(trit_ctx *c, trit_trace_fn fn, void *ud) {
    c->trace = fn;
    c->trace_ud = ud;
}

/* ---- helpers ---- */
static void emit(trit_ctx *c, const char *name, int il, const float *data, int64_t ne0,
                 int64_t ne1) {
    char buf[64];
    if (il >= 0) {
        snprintf(buf, sizeof buf, "%s-%d", name, il);
        name = buf;
    }
    c->trace(c->trace_ud, name, data, ne0, ne1);
}
/* zero cost when no hook: one predictable branch, no formatting */
#define TRACE(name, il, data, ne0, ne1)                                                            \
    do {                                                                                           \
        if (c->trace) emit(c, name, il, data, ne0, ne1);                                           \
    } while (0)

static void matmul(trit_ctx *c, const trit_weight *w, const float *X, int64_t n_tok, float *Y) {
    trit_matmul(c->k, c->pool, w->type, w->data, w->scale, w->ne[0], w->ne[1], X, n_tok, Y);
}

/* Products of weights with the same input X (q/k/v, gate/up): one quantization of X and one
 * pool run when the weights share a type and row length (bit-identical to separate matmuls). */
static void matmul_shared(trit_ctx *c, const float *X, int64_t n_tok, int n,
                          const trit_weight *const *w, float *const *Y) {
    bool same = true;
    for (int i = 1; i < n; i++)
        same = same && w[i]->type == w[0]->type && w[i]->ne[0] == w[0]->ne[0];
    if (!same) {
        for (int i = 0; i < n; i++) matmul(c, w[i], X, n_tok, Y[i]);
        return;
    }
    trit_mm_part parts[TRIT_MM_MAX_PARTS];
    for (int i = 0; i < n; i++)
        parts[i] = (trit_mm_part){
            .W = w[i]->data, .w_scale = w[i]->scale, .n_out = w[i]->ne[1], .Y = Y[i]};
    trit_matmul_multi(c->k, c->pool, w[0]->type, w[0]->ne[0], X, n_tok, n, parts);
}

static void rmsnorm_rows(const trit_ctx *c, const float *x, const trit_weight *w, float *y,
                         int64_t n, int rows, size_t stride_in, size_t stride_out) {
    for (int t = 0; t < rows; t++)
        trit_rmsnorm(x + t * stride_in, (const float *)w->data, y + t * stride_out, n,
                     c->hp.rms_eps);
}

static void store_kv(trit_ctx *c, int il, const float *src, void *cache, int T, int p0) {
    const trit_hparams *hp = &c->hp;
    const int D = hp->head_dim, nkv = hp->n_head_kv;
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < nkv; h++) {
            const float *s = src + ((size_t)t * nkv + h) * D;
            const size_t idx = (size_t)il * c->kv_layer_elems + ((size_t)h * c->n_ctx + p0 + t) * D;
            if (c->kv_type == TRIT_F16) {
                uint16_t *d = (uint16_t *)cache + idx;
                for (int i = 0; i < D; i++) d[i] = trit_fp32_to_fp16(s[i]);
            } else {
                memcpy((float *)cache + idx, s, (size_t)D * sizeof(float));
            }
        }
    }
}

/* Forward T tokens at positions p0..p0+T-1. n_out: rows of logits wanted (0, 1 = the last
 * row, or T = all), written to logits_dst. */
static void forward(trit_ctx *c, const int32_t *tok, int T, int p0, int n_out, float *logits_dst) {
    const trit_model *m = c->m;
    const trit_hparams *hp = &c->hp;
    /* bitnet, bitnet-b1.58, bitnet-25: sub-norms (the activation is hp->act) */
    const bool bitnet = trit_arch_is_bitnet(hp->arch);
    const int64_t E = hp->n_embd, F = hp->n_ff, D = hp->head_dim;
    const int64_t NQ = D * hp->n_head, NKV = D * hp->n_head_kv;
    const float kq_scale = 1.0f / sqrtf((float)D);

    /* token embeddings (get_rows: dequantize) */
    const size_t erow = trit_row_size(m->tok_embd.type, E);
    for (int t = 0; t < T; t++)
        trit_dequantize_row(m->tok_embd.type,
                            (const uint8_t *)m->tok_embd.data + (size_t)tok[t] * erow,
                            c->x + (size_t)t * E, E);

    float *x = c->x;
    int rows = T; /* rows still computed (shrinks in the last layer) */
    for (int il = 0; il < hp->n_layer; il++) {
        const trit_layer *L = &m->layers[il];
        const bool last = il == hp->n_layer - 1;

        rmsnorm_rows(c, x, &L->attn_norm, c->xn, E, rows, E, E);
        TRACE("attn_norm", il, c->xn, E, rows);

        matmul_shared(c, c->xn, rows, 3, (const trit_weight *[]){&L->wq, &L->wk, &L->wv},
                      (float *[]){c->q, c->kx, c->vx});
        for (int t = 0; t < rows; t++) {
            trit_rope(c->q + t * NQ, hp->n_head, (int)D, hp->n_rot, p0 + t, hp->rope_freq_base,
                      hp->rope_mode);
            trit_rope(c->kx + t * NKV, hp->n_head_kv, (int)D, hp->n_rot, p0 + t, hp->rope_freq_base,
                      hp->rope_mode);
        }
        TRACE("Qcur", il, c->q, NQ, rows);
        TRACE("Kcur", il, c->kx, NKV, rows);
        TRACE("Vcur", il, c->vx, NKV, rows);

        store_kv(c, il, c->kx, c->kcache, rows, p0);
        store_kv(c, il, c->vx, c->vcache, rows, p0);
        const size_t es = c->kv_type == TRIT_F16 ? 2 : 4;
        /* the kernel set's attention when it has one (same numerics as trit_attention) */
        (c->k->attention ? c->k->attention : trit_attention)(
            c->pool, c->q, (const char *)c->kcache + (size_t)il * c->kv_layer_elems * es,
            (const char *)c->vcache + (size_t)il * c->kv_layer_elems * es, c->kv_type, c->n_ctx,
            hp->n_head, hp->n_head_kv, (int)D, p0, rows, kq_scale, c->att);
        TRACE("kqv_out", il, c->att, NQ, rows);

        const float *attn_in = c->att;
        if (bitnet) {
            rmsnorm_rows(c, c->att, &L->attn_sub_norm, c->xn, NQ, rows, NQ, NQ);
            TRACE("attn_sub_norm", il, c->xn, NQ, rows);
            attn_in = c->xn;
        }
        matmul(c, &L->wo, attn_in, rows, c->o);
        TRACE("attn_out", il, c->o, E, rows);

        float *o = c->o;
        if (last && n_out < rows) {
            /* inp_out_ids: keep only the rows whose logits are wanted */
            if (n_out == 0) return;
            x += (size_t)(rows - n_out) * E;
            o += (size_t)(rows - n_out) * E;
            rows = n_out;
        }

        for (size_t i = 0; i < (size_t)rows * E; i++) x[i] = o[i] + x[i];
        TRACE("ffn_inp", il, x, E, rows);

        rmsnorm_rows(c, x, &L->ffn_norm, c->xn, E, rows, E, E);
        TRACE("ffn_norm", il, c->xn, E, rows);

        matmul_shared(c, c->xn, rows, 2, (const trit_weight *[]){&L->ffn_up, &L->ffn_gate},
                      (float *[]){c->up, c->gate});
        TRACE("ffn_up", il, c->up, F, rows);
        TRACE("ffn_gate", il, c->gate, F, rows);
        const size_t nf = (size_t)rows * F;
        if (hp->act == TRIT_ACT_RELU2) {
            for (size_t i = 0; i < nf; i++) {
                const float r = c->gate[i] > 0.0f ? c->gate[i] : 0.0f;
                c->gate[i] = (r * r) * c->up[i];
            }
        } else {
            for (int t = 0; t < rows; t++)
                trit_swiglu(c->gate + (size_t)t * F, c->up + (size_t)t * F, c->gate + (size_t)t * F,
                            F);
        }
        const float *down_in = c->gate;
        if (bitnet) {
            TRACE("ffn_sub_out", il, c->gate, F, rows);
            rmsnorm_rows(c, c->gate, &L->ffn_sub_norm, c->up, F, rows, F, F);
            TRACE("ffn_sub_norm", il, c->up, F, rows);
            down_in = c->up;
        } else {
            TRACE(hp->act == TRIT_ACT_RELU2 ? "ffn_relu_sqr" : "ffn_swiglu", il, c->gate, F, rows);
        }
        matmul(c, &L->ffn_down, down_in, rows, o);
        /* llama.cpp names the down projection "ffn_out" in llama, "ffn_down" in bitnet */
        TRACE(bitnet ? "ffn_down" : "ffn_out", il, o, E, rows);

        for (size_t i = 0; i < (size_t)rows * E; i++) x[i] = o[i] + x[i];
        TRACE("l_out", il, x, E, rows);
    }
    if (n_out == 0) return;
    rmsnorm_rows(c, x, &m->output_norm, c->xn, E, rows, E, E);
    TRACE("result_norm", -1, c->xn, E, rows);
    /* a tied head is token_embd, which the reference never repacks (kernels.h TRIT_NO_REPACK) */
    trit_matmul(c->k, c->pool, m->output.type | (m->tied_output ? TRIT_NO_REPACK : 0),
                m->output.data, m->output.scale, m->output.ne[0], m->output.ne[1], c->xn, rows,
                logits_dst);
    TRACE("result_output", -1, logits_dst, hp->n_vocab, rows);
}

int trit_eval(trit_ctx *c, const int32_t *tokens, int n, int pos, bool logits_all, trit_err *err) {
    const int n_vocab = c->hp.n_vocab;
    if (n <= 0 || !tokens) return trit_fail(err, TRIT_EINVAL, "nothing to evaluate (n = %d)", n);
    if (pos < 0 || pos > c->n_past)
        return trit_fail(err, TRIT_EINVAL, "position %d is outside 0..%d (tokens in the cache)",
                         pos, c->n_past);
    if ((int64_t)pos + n > c->n_ctx)
        return trit_fail(err, TRIT_ERANGE, "context full: %d + %d tokens > n_ctx %d", pos, n,
                         c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return trit_fail(err, TRIT_EINVAL, "token id %d at index %d is outside 0..%d",
                             tokens[i], i, n_vocab - 1);
    c->n_past = pos; /* discard the cache tail */
    const size_t need = logits_all ? (size_t)n : 1;
    if (need > c->logits_cap) {
        c->logits = xrealloc(c->logits, need * (size_t)n_vocab * sizeof(float));
        c->logits_cap = need;
    }
    c->n_logits = 0;
    c->n_eval = 0;
    for (int off = 0; off < n; off += c->n_batch) {
        const int T = TRIT_MIN(c->n_batch, n - off);
        const bool last_chunk = off + T == n;
        const int n_out = logits_all ? T : (last_chunk ? 1 : 0);
        float *dst = c->logits + (logits_all ? (size_t)off * n_vocab : 0);
        forward(c, tokens + off, T, pos + off, n_out, dst);
        c->n_past = pos + off + T;
    }
    c->n_logits = (int)need;
    c->n_eval = n;
    c->logits_all = logits_all;
    return 0;
}

const float *trit_get_logits(const trit_ctx *c, int i) {
    if (c->n_eval <= 0) return NULL;
    if (i < 0) i = c->n_eval - 1;
    if (i >= c->n_eval) return NULL;
    if (c->logits_all) return c->logits + (size_t)i * c->hp.n_vocab;
    return i == c->n_eval - 1 ? c->logits : NULL;
}
