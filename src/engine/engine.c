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

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The KV cache of one sequence: [n_layer][n_head_kv][n_ctx][head_dim] of kv_type, K and V. */
struct trit_seq {
    void *kcache, *vcache;
    int n_past;
};

/* Where the rows of one batch entry are in the scratch buffers during a forward pass. */
typedef struct row_span {
    int r0, n; /* first row, rows (n shrinks to the wanted rows in the last layer) */
    int tok0;  /* index in the entry of the span's first token */
} row_span;

struct trit_ctx {
    trit_model *m;
    trit_hparams hp; /* the model's, with the ctx overrides applied */
    int n_ctx, n_batch, n_threads;
    uint32_t kv_type;
    const trit_kernels *k;
    trit_pool *pool;

    size_t kv_layer_elems; /* n_head_kv * n_ctx * head_dim */
    trit_seq *own;         /* trit_eval's sequence (made by the first trit_eval) */

    /* scratch, cap_rows rows each */
    int cap_rows;
    float *x, *xn, *q, *kx, *vx, *att, *o, *gate, *up;
    row_span *span;         /* cap_rows entries at most */
    float *out_blk;         /* OUT_BLOCK + OUT_TAIL rows of logits */
    float *pad_q, *pad_att; /* ATT_TILE_ROWS query rows each: padded tiled attention */

    float *logits;     /* trit_eval's kept logits */
    size_t logits_cap; /* rows */
    int n_eval;        /* tokens of the last eval */
    bool logits_all;

    trit_trace_fn trace;
    void *trace_ud;
};

/* Rows of logits computed per output matmul: bounds the logits memory of a step (a prompt
 * with every row's logits wanted never holds more than this many rows). */
#define OUT_BLOCK 64
/* the most rows a last block may take over from the next call: fewer than the reference's
 * smallest tinyBLAS call (2 tokens on x86; 8 for F16 on the NEON build, 4 for F32) */
#define OUT_TAIL 7
/* Query rows from which attention takes ggml's tiled kernel (ops.c's FA_TILE_Q), when
 * head_dim % 16 == 0: a row's attention sums depend on its entry only through this. */
#define ATT_TILE_ROWS 64

static void ensure_rows(trit_ctx *c, int rows);

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

    c->kv_layer_elems = (size_t)hp->n_head_kv * c->n_ctx * hp->head_dim;
    ensure_rows(c, c->n_batch);
    c->out_blk = xmalloc((size_t)(OUT_BLOCK + OUT_TAIL) * hp->n_vocab * sizeof(float));
    c->logits_cap = 1;
    c->logits = xmalloc((size_t)hp->n_vocab * sizeof(float));
    return c;
}

/* Grow the scratch buffers to hold `rows` rows (a batch of several sequences may exceed
 * n_batch); never shrinks, so steady-state steps do not allocate. */
static void ensure_rows(trit_ctx *c, int rows) {
    if (rows <= c->cap_rows) return;
    const trit_hparams *hp = &c->hp;
    const size_t nb = (size_t)rows;
    const size_t n_q = (size_t)hp->head_dim * hp->n_head;
    const size_t n_kv = (size_t)hp->head_dim * hp->n_head_kv;
    const size_t wide = TRIT_MAX((size_t)hp->n_embd, n_q);
    c->x = xrealloc(c->x, nb * hp->n_embd * sizeof(float));
    c->xn = xrealloc(c->xn, nb * wide * sizeof(float));
    c->q = xrealloc(c->q, nb * n_q * sizeof(float));
    c->kx = xrealloc(c->kx, nb * n_kv * sizeof(float));
    c->vx = xrealloc(c->vx, nb * n_kv * sizeof(float));
    c->att = xrealloc(c->att, nb * n_q * sizeof(float));
    c->o = xrealloc(c->o, nb * hp->n_embd * sizeof(float));
    c->gate = xrealloc(c->gate, nb * hp->n_ff * sizeof(float));
    c->up = xrealloc(c->up, nb * hp->n_ff * sizeof(float));
    c->span = xrealloc(c->span, nb * sizeof *c->span);
    c->cap_rows = rows;
}

trit_seq *trit_seq_new(trit_ctx *c) {
    const size_t es = c->kv_type == TRIT_F16 ? 2 : 4;
    trit_seq *s = xcalloc(1, sizeof *s);
    s->kcache = xcalloc((size_t)c->hp.n_layer * c->kv_layer_elems, es);
    s->vcache = xcalloc((size_t)c->hp.n_layer * c->kv_layer_elems, es);
    return s;
}

void trit_seq_free(trit_seq *s) {
    if (!s) return;
    free(s->kcache);
    free(s->vcache);
    free(s);
}

int trit_seq_n_past(const trit_seq *s) {
    return s->n_past;
}

void trit_ctx_free(trit_ctx *c) {
    if (!c) return;
    trit_pool_free(c->pool);
    trit_seq_free(c->own);
    free(c->span);
    free(c->out_blk);
    free(c->pad_q);
    free(c->pad_att);
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
    return c->own ? c->own->n_past : 0;
}
int trit_ctx_n_batch(const trit_ctx *c) {
    return c->n_batch;
}
int trit_ctx_n_threads(const trit_ctx *c) {
    return c->n_threads;
}
const char *trit_ctx_kernels_name(const trit_ctx *c) {
    return c->k->name;
}
const trit_model *trit_ctx_model(const trit_ctx *c) {
    return c->m;
}
void trit_kv_clear(trit_ctx *c) {
    if (c->own) c->own->n_past = 0;
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

/* One forward pass: the entries, and where each one's rows are in the scratch buffers. Rows
 * of entry i are sp[i].r0 .. sp[i].r0 + sp[i].n - 1, entries back to back in order. */
typedef struct fwd {
    const trit_batch_entry *e;
    int n;
    row_span *sp;
    int rows; /* rows computed now (all tokens; the wanted rows after the last attention) */
} fwd;

/* Whether the F32/F16/BF16 products of entry i sum in tinyBLAS order: as a trit_eval chunk,
 * which uses it when it multiplies >= 2 rows; a steps entry is a series of one-row products. */
static bool tile_rows(const fwd *f, int i) {
    return !f->e[i].steps && f->sp[i].n >= 2;
}

/* How a row's sum depends on the matmul call that computes it (kernels.h), which decides how
 * a batch's rows may share calls and still get their own sequence's trit_eval numbers:
 *   ORDER_FREE   never (vec_dot per row: ternary, Q8_0, unrepacked k-quants ...);
 *   ORDER_TILE   F32/F16/BF16: tinyBLAS order when the call has >= 2 rows, vec_dot with 1;
 *   ORDER_GROUP4 a weight the reference repacks with a separate gemm (Q4_K on AVX2, Q2_K on
 *                AVX-512, n_out % 8 == 0): rows in whole groups of 4 from the call's first
 *                row take the gemm order, the rest gemv's. */
enum order_kind { ORDER_FREE, ORDER_TILE, ORDER_GROUP4 };

/* The kind of np weights multiplied in one call (wtype may carry TRIT_NO_REPACK). */
static enum order_kind order_of(uint32_t wtype, const trit_weight *const *w, int np) {
    const uint32_t t = wtype & ~TRIT_NO_REPACK;
    if (t == TRIT_F32 || t == TRIT_F16 || t == TRIT_BF16) return ORDER_TILE;
    for (int p = 0; p < np; p++)
        if (trit_matmul_dot_type(wtype, w[p]->ne[1], 0, 4) !=
            trit_matmul_dot_type(wtype, w[p]->ne[1], 0, 1))
            return ORDER_GROUP4;
    return ORDER_FREE;
}

/* The next call of a batch, from entry i: returns the first entry after it and sets *single
 * (one-token order for every row). FREE: every row in one call. TILE: a run of entries of one
 * kind (one-row or multi-row; entries without rows join any run). GROUP4: a multi-row entry
 * alone (its groups of 4 start at its own first row, as in trit_eval), or a run of one-row
 * entries in one-token order. */
static int next_call(const fwd *f, int i, enum order_kind k, bool *single) {
    const bool tile = tile_rows(f, i);
    *single = k != ORDER_FREE && !tile;
    if (k == ORDER_FREE) return f->n;
    int j = i + 1;
    if (k == ORDER_GROUP4 && tile) {
        while (j < f->n && f->sp[j].n == 0) j++;
        return j;
    }
    while (j < f->n && (f->sp[j].n == 0 || tile_rows(f, j) == tile)) j++;
    return j;
}

/* Rows r0 .. r0+nr-1 of X through np weights of one type and row length (one quantization
 * of X, one pool run): Y[p] rows r0.. get W_p . X^T. single: one-token order for every row. */
static void mm_rows(trit_ctx *c, int np, const trit_weight *const *w, const float *X, int r0,
                    int nr, bool single, float *const *Y) {
    const int64_t n_in = w[0]->ne[0];
    trit_mm_part parts[TRIT_MM_MAX_PARTS];
    for (int p = 0; p < np; p++)
        parts[p] = (trit_mm_part){.W = w[p]->data,
                                  .w_scale = w[p]->scale,
                                  .n_out = w[p]->ne[1],
                                  .Y = Y[p] + (size_t)r0 * w[p]->ne[1]};
    trit_matmul_multi_order(c->k, c->pool, w[0]->type, n_in, X + (size_t)r0 * n_in, nr, np, parts,
                            single);
}

/* Y_p = W_p . X^T for every row of the batch (X rows of n_in floats, Y_p rows of n_out).
 * Weights read once per step: one call for all rows, except F32/F16/BF16 weights when the
 * batch mixes one-row (decode, steps) and multi-row (prefill) entries — one call per run of
 * entries of one kind, so each row gets its own sequence's order. Weights of different
 * types or row lengths (q/k/v of a mixed-type file) go one at a time. */
static void matmul_batch(trit_ctx *c, const fwd *f, int np, const trit_weight *const *w,
                         const float *X, float *const *Y) {
    bool same = true;
    for (int p = 1; p < np; p++)
        same = same && w[p]->type == w[0]->type && w[p]->ne[0] == w[0]->ne[0];
    if (!same) {
        for (int p = 0; p < np; p++) matmul_batch(c, f, 1, &w[p], X, &Y[p]);
        return;
    }
    const enum order_kind k = order_of(w[0]->type, w, np);
    for (int i = 0; i < f->n;) {
        bool single;
        const int j = next_call(f, i, k, &single); /* entries i .. j-1 share this call */
        const int r0 = f->sp[i].r0, r1 = f->sp[j - 1].r0 + f->sp[j - 1].n;
        if (r1 > r0) mm_rows(c, np, w, X, r0, r1 - r0, single, Y);
        i = j;
    }
}

static void rmsnorm_rows(const trit_ctx *c, const float *x, const trit_weight *w, float *y,
                         int64_t n, int rows, size_t stride_in, size_t stride_out) {
    for (int t = 0; t < rows; t++)
        trit_rmsnorm(x + t * stride_in, (const float *)w->data, y + t * stride_out, n,
                     c->hp.rms_eps);
}

/* Write T rows of K or V (src, [T][n_head_kv][head_dim]) into layer il of cache at p0.. */
static void store_kv(trit_ctx *c, int il, const float *src, void *cache, int T, int p0) {
    const trit_hparams *hp = &c->hp;
    const int D = hp->head_dim, nkv = hp->n_head_kv;
    /* check_batch proved this; a write past a layer's rows would corrupt the next layer */
    assert(il >= 0 && il < hp->n_layer && p0 >= 0 && T >= 0 && p0 + T <= c->n_ctx);
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

typedef void (*att_fn)(trit_pool *, const float *, const void *, const void *, uint32_t, int, int,
                       int, int, int, int, float, float *);

/* Whether entry e is the 2..63-row tail of a prefill chunk of >= 64 rows (chunk_rows): its
 * rows must take the tiled kernel a cold prefill gives them, which a call with fewer rows
 * would not. */
static bool padded_tiles(const trit_ctx *c, const trit_batch_entry *e) {
    return !e->steps && e->n_tokens >= 2 && e->n_tokens < ATT_TILE_ROWS &&
           e->chunk_rows >= ATT_TILE_ROWS && c->hp.head_dim % 16 == 0;
}

/* Attention of such an entry: one call of ATT_TILE_ROWS rows ending with the entry's rows,
 * the ones before it zero queries at the positions before the entry (cells the cache holds:
 * check_batch's chunk rule), whose outputs are dropped. Each row's sums are its own (a row
 * reads only its query and the cells up to its position), so the entry's rows get the tiled
 * kernel's numbers, as in the cold chunk. */
static void attention_padded(trit_ctx *c, att_fn att, const trit_batch_entry *e, const char *kc,
                             const char *vc, const float *q, float kq_scale, float *out) {
    const trit_hparams *hp = &c->hp;
    const size_t NQ = (size_t)hp->head_dim * hp->n_head;
    const int n = e->n_tokens, pad = ATT_TILE_ROWS - n;
    assert(e->pos >= pad); /* check_batch: chunk_rows - n_tokens <= pos, chunk_rows >= 64 */
    if (!c->pad_q) {
        c->pad_q = xmalloc(ATT_TILE_ROWS * NQ * sizeof(float));
        c->pad_att = xmalloc(ATT_TILE_ROWS * NQ * sizeof(float));
    }
    memset(c->pad_q, 0, (size_t)pad * NQ * sizeof(float));
    memcpy(c->pad_q + pad * NQ, q, (size_t)n * NQ * sizeof(float));
    att(c->pool, c->pad_q, kc, vc, c->kv_type, c->n_ctx, hp->n_head, hp->n_head_kv, hp->head_dim,
        e->pos - pad, ATT_TILE_ROWS, kq_scale, c->pad_att);
    memcpy(out, c->pad_att + pad * NQ, (size_t)n * NQ * sizeof(float));
}

/* Layer il's attention for every entry against its own cache: q rows -> att rows
 * ([rows][n_head][head_dim]). An entry runs as a trit_eval chunk of its size (tiled from 64
 * rows, split-KV for one row with the pool's threads); a steps entry runs one token at a time. */
static void attention_batch(trit_ctx *c, const fwd *f, int il) {
    const trit_hparams *hp = &c->hp;
    const int D = hp->head_dim;
    const int64_t NQ = (int64_t)D * hp->n_head;
    const size_t es = c->kv_type == TRIT_F16 ? 2 : 4;
    const size_t layer = (size_t)il * c->kv_layer_elems * es;
    const float kq_scale = 1.0f / sqrtf((float)D);
    /* the kernel set's attention when it has one (same numerics as trit_attention) */
    const att_fn att = c->k->attention ? c->k->attention : trit_attention;
    for (int i = 0; i < f->n; i++) {
        const trit_batch_entry *e = &f->e[i];
        const char *kc = (const char *)e->seq->kcache + layer;
        const char *vc = (const char *)e->seq->vcache + layer;
        const int r0 = f->sp[i].r0, per = e->steps ? 1 : e->n_tokens;
        if (padded_tiles(c, e)) {
            attention_padded(c, att, e, kc, vc, c->q + r0 * NQ, kq_scale, c->att + r0 * NQ);
            continue;
        }
        for (int t = 0; t < e->n_tokens; t += per)
            att(c->pool, c->q + (r0 + t) * NQ, kc, vc, c->kv_type, c->n_ctx, hp->n_head,
                hp->n_head_kv, D, e->pos + t, per, kq_scale, c->att + (r0 + t) * NQ);
    }
}

/* inp_out_ids: keep only the rows whose logits are wanted (each entry's last row, all, or
 * none), moved to the front; x and o hold E floats per row. Returns the rows kept. */
static int keep_wanted_rows(trit_ctx *c, fwd *f) {
    const int64_t E = c->hp.n_embd;
    int r = 0;
    for (int i = 0; i < f->n; i++) {
        const int n = f->sp[i].n;
        const int keep = f->e[i].out == TRIT_OUT_ALL ? n : f->e[i].out == TRIT_OUT_LAST ? 1 : 0;
        const int src = f->sp[i].r0 + n - keep;
        if (keep && src != r) {
            memmove(c->x + (size_t)r * E, c->x + (size_t)src * E, (size_t)keep * E * sizeof(float));
            memmove(c->o + (size_t)r * E, c->o + (size_t)src * E, (size_t)keep * E * sizeof(float));
        }
        f->sp[i] = (row_span){.r0 = r, .n = keep, .tok0 = f->sp[i].tok0 + n - keep};
        r += keep;
    }
    assert(r <= f->rows); /* rows only move to the front, never appear */
    f->rows = r;
    return r;
}

/* Hand row r (of entry i) to fn. */
static void give_row(const fwd *f, int r, const float *logits, trit_logits_fn fn, void *ud) {
    for (int i = 0; i < f->n; i++)
        if (r >= f->sp[i].r0 && r < f->sp[i].r0 + f->sp[i].n) {
            fn(ud, i, f->sp[i].tok0 + r - f->sp[i].r0, logits);
            return;
        }
    assert(!"give_row: a wanted row belongs to no entry"); /* the spans cover every kept row */
}

/* result_output: logits of the wanted rows (xn, normed), OUT_BLOCK rows per matmul so a long
 * all-logits prompt never holds more; a block of tinyBLAS rows keeps as many rows as the
 * reference's tinyBLAS needs (a row's sum does not depend on the other rows of its call, only
 * on the call having enough of them: 2 on x86, 8 for F16 / 4 for F32 on the NEON build). */
static void output_batch(trit_ctx *c, const fwd *f, const float *xn, trit_logits_fn fn, void *ud) {
    const trit_weight *w = &c->m->output;
    const int64_t V = c->hp.n_vocab;
    /* a tied head is token_embd, which the reference never repacks (TRIT_NO_REPACK) */
    const uint32_t wt = w->type | (c->m->tied_output ? TRIT_NO_REPACK : 0);
    const enum order_kind k = order_of(wt, &w, 1);
    for (int i = 0; i < f->n;) {
        bool single;
        const int j = next_call(f, i, k, &single);
        const int r1 = f->sp[j - 1].r0 + f->sp[j - 1].n;
        /* blocks of OUT_BLOCK (a multiple of 4, so GROUP4's groups stay aligned) */
        for (int r = f->sp[i].r0; r < r1;) {
            int nr = TRIT_MIN(OUT_BLOCK, r1 - r);
            const int rest = r1 - r - nr; /* never leave too few tinyBLAS rows for the last call */
            if (rest > 0 && rest <= OUT_TAIL &&
                trit_matmul_tinyblas(w->type, w->ne[0], w->ne[1], nr + rest) &&
                !trit_matmul_tinyblas(w->type, w->ne[0], w->ne[1], rest))
                nr += rest;
            const trit_mm_part part = {
                .W = w->data, .w_scale = w->scale, .n_out = w->ne[1], .Y = c->out_blk};
            trit_matmul_multi_order(c->k, c->pool, wt, w->ne[0], xn + (size_t)r * w->ne[0], nr, 1,
                                    &part, single);
            TRACE("result_output", -1, c->out_blk, V, nr);
            for (int t = 0; t < nr; t++) give_row(f, r + t, c->out_blk + (size_t)t * V, fn, ud);
            r += nr;
        }
        i = j;
    }
}

/* The forward pass of a batch (already validated): llama.cpp's graph per row, weights shared
 * by all rows, attention per entry. Logits of the wanted rows go to fn. */
static void forward(trit_ctx *c, fwd *f, trit_logits_fn fn, void *ud) {
    const trit_model *m = c->m;
    const trit_hparams *hp = &c->hp;
    /* bitnet, bitnet-b1.58, bitnet-25: sub-norms (the activation is hp->act) */
    const bool bitnet = trit_arch_is_bitnet(hp->arch);
    const int64_t E = hp->n_embd, F = hp->n_ff, D = hp->head_dim;
    const int64_t NQ = D * hp->n_head, NKV = D * hp->n_head_kv;

    /* token embeddings (get_rows: dequantize); rows laid out entry after entry */
    const size_t erow = trit_row_size(m->tok_embd.type, E);
    int r = 0;
    for (int i = 0; i < f->n; i++) {
        f->sp[i] = (row_span){.r0 = r, .n = f->e[i].n_tokens, .tok0 = 0};
        for (int t = 0; t < f->e[i].n_tokens; t++, r++)
            trit_dequantize_row(m->tok_embd.type,
                                (const uint8_t *)m->tok_embd.data +
                                    (size_t)f->e[i].tokens[t] * erow,
                                c->x + (size_t)r * E, E);
    }
    /* every row belongs to exactly one entry, in entry order, and fits the scratch buffers */
    assert(r == f->rows && r <= c->cap_rows);
    f->rows = r;

    for (int il = 0; il < hp->n_layer; il++) {
        const trit_layer *L = &m->layers[il];
        const bool last = il == hp->n_layer - 1;
        int rows = f->rows;

        rmsnorm_rows(c, c->x, &L->attn_norm, c->xn, E, rows, E, E);
        TRACE("attn_norm", il, c->xn, E, rows);

        matmul_batch(c, f, 3, (const trit_weight *[]){&L->wq, &L->wk, &L->wv}, c->xn,
                     (float *[]){c->q, c->kx, c->vx});
        for (int i = 0; i < f->n; i++)
            for (int t = 0; t < f->sp[i].n; t++) {
                const int row = f->sp[i].r0 + t, pos = f->e[i].pos + t;
                trit_rope(c->q + row * NQ, hp->n_head, (int)D, hp->n_rot, pos, hp->rope_freq_base,
                          hp->rope_mode);
                trit_rope(c->kx + row * NKV, hp->n_head_kv, (int)D, hp->n_rot, pos,
                          hp->rope_freq_base, hp->rope_mode);
            }
        TRACE("Qcur", il, c->q, NQ, rows);
        TRACE("Kcur", il, c->kx, NKV, rows);
        TRACE("Vcur", il, c->vx, NKV, rows);

        for (int i = 0; i < f->n; i++) {
            const size_t r0 = (size_t)f->sp[i].r0;
            store_kv(c, il, c->kx + r0 * NKV, f->e[i].seq->kcache, f->sp[i].n, f->e[i].pos);
            store_kv(c, il, c->vx + r0 * NKV, f->e[i].seq->vcache, f->sp[i].n, f->e[i].pos);
        }
        attention_batch(c, f, il);
        TRACE("kqv_out", il, c->att, NQ, rows);

        const float *attn_in = c->att;
        if (bitnet) {
            rmsnorm_rows(c, c->att, &L->attn_sub_norm, c->xn, NQ, rows, NQ, NQ);
            TRACE("attn_sub_norm", il, c->xn, NQ, rows);
            attn_in = c->xn;
        }
        matmul_batch(c, f, 1, (const trit_weight *[]){&L->wo}, attn_in, (float *[]){c->o});
        TRACE("attn_out", il, c->o, E, rows);

        if (last) {
            rows = keep_wanted_rows(c, f);
            if (rows == 0) return;
        }

        float *x = c->x, *o = c->o;
        for (size_t i = 0; i < (size_t)rows * E; i++) x[i] = o[i] + x[i];
        TRACE("ffn_inp", il, x, E, rows);

        rmsnorm_rows(c, x, &L->ffn_norm, c->xn, E, rows, E, E);
        TRACE("ffn_norm", il, c->xn, E, rows);

        matmul_batch(c, f, 2, (const trit_weight *[]){&L->ffn_up, &L->ffn_gate}, c->xn,
                     (float *[]){c->up, c->gate});
        TRACE("ffn_up", il, c->up, F, rows);
        TRACE("ffn_gate", il, c->gate, F, rows);
        const size_t nf = (size_t)rows * F;
        if (hp->act == TRIT_ACT_RELU2) {
            for (size_t i = 0; i < nf; i++) {
                const float r2 = c->gate[i] > 0.0f ? c->gate[i] : 0.0f;
                c->gate[i] = (r2 * r2) * c->up[i];
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
        matmul_batch(c, f, 1, (const trit_weight *[]){&L->ffn_down}, down_in, (float *[]){o});
        /* llama.cpp names the down projection "ffn_out" in llama, "ffn_down" in bitnet */
        TRACE(bitnet ? "ffn_down" : "ffn_out", il, o, E, rows);

        for (size_t i = 0; i < (size_t)rows * E; i++) x[i] = o[i] + x[i];
        TRACE("l_out", il, x, E, rows);
    }
    rmsnorm_rows(c, c->x, &m->output_norm, c->xn, E, f->rows, E, E);
    TRACE("result_norm", -1, c->xn, E, f->rows);
    output_batch(c, f, c->xn, fn, ud);
}

/* Refuse a batch that would read or write outside a cache, or mix up sequences. */
static int check_batch(const trit_ctx *c, const trit_batch_entry *e, int n, trit_err *err) {
    const int n_vocab = c->hp.n_vocab;
    if (n <= 0 || !e) return trit_fail(err, TRIT_EINVAL, "empty batch (%d entries)", n);
    for (int i = 0; i < n; i++) {
        const trit_batch_entry *b = &e[i];
        if (!b->seq || !b->tokens)
            return trit_fail(err, TRIT_EINVAL, "batch entry %d has no sequence or tokens", i);
        if (b->n_tokens < 1 || b->n_tokens > c->n_batch)
            return trit_fail(err, TRIT_EINVAL, "batch entry %d has %d tokens (1..n_batch %d)", i,
                             b->n_tokens, c->n_batch);
        if (b->pos < 0 || b->pos > b->seq->n_past)
            return trit_fail(err, TRIT_EINVAL,
                             "batch entry %d: position %d is outside 0..%d (tokens in the cache)",
                             i, b->pos, b->seq->n_past);
        if ((int64_t)b->pos + b->n_tokens > c->n_ctx)
            return trit_fail(err, TRIT_ERANGE, "batch entry %d: context full: %d + %d > n_ctx %d",
                             i, b->pos, b->n_tokens, c->n_ctx);
        if (b->chunk_rows && (b->chunk_rows < b->n_tokens || b->chunk_rows > c->n_batch ||
                              b->chunk_rows - b->n_tokens > b->pos))
            return trit_fail(err, TRIT_EINVAL,
                             "batch entry %d: chunk_rows %d is not %d..n_batch %d with the "
                             "rows before the entry (%d) in the cache (%d)",
                             i, b->chunk_rows, b->n_tokens, c->n_batch, b->chunk_rows - b->n_tokens,
                             b->pos);
        if (b->out != TRIT_OUT_NONE && b->out != TRIT_OUT_LAST && b->out != TRIT_OUT_ALL)
            return trit_fail(err, TRIT_EINVAL, "batch entry %d: out %d is not none/last/all", i,
                             (int)b->out);
        for (int t = 0; t < b->n_tokens; t++)
            if (b->tokens[t] < 0 || b->tokens[t] >= n_vocab)
                return trit_fail(err, TRIT_EINVAL,
                                 "batch entry %d: token id %d at index %d is outside 0..%d", i,
                                 b->tokens[t], t, n_vocab - 1);
        for (int j = 0; j < i; j++)
            if (e[j].seq == b->seq)
                return trit_fail(err, TRIT_EINVAL, "batch entries %d and %d share a sequence", j,
                                 i);
    }
    return 0;
}

int trit_batch_eval(trit_ctx *c, const trit_batch_entry *e, int n, trit_logits_fn fn, void *ud,
                    trit_err *err) {
    if (check_batch(c, e, n, err)) return -1;
    int rows = 0;
    for (int i = 0; i < n; i++) rows += e[i].n_tokens;
    ensure_rows(c, TRIT_MAX(rows, n));
    for (int i = 0; i < n; i++) e[i].seq->n_past = e[i].pos; /* discard the cache tail */
    fwd f = {.e = e, .n = n, .sp = c->span, .rows = rows};
    forward(c, &f, fn, ud);
    for (int i = 0; i < n; i++) {
        e[i].seq->n_past = e[i].pos + e[i].n_tokens;
        assert(e[i].seq->n_past <= c->n_ctx); /* check_batch's context rule */
    }
    return 0;
}

/* trit_eval's callback: keep the row in c->logits (row tok of the chunk at chunk_off). */
typedef struct keep_ud {
    trit_ctx *c;
    int off;
} keep_ud;
static void keep_logits(void *ud, int entry, int tok, const float *logits) {
    const keep_ud *k = ud;
    (void)entry;
    const size_t V = (size_t)k->c->hp.n_vocab;
    const size_t row = k->c->logits_all ? (size_t)(k->off + tok) : 0;
    memcpy(k->c->logits + row * V, logits, V * sizeof(float));
}

int trit_eval(trit_ctx *c, const int32_t *tokens, int n, int pos, bool logits_all, trit_err *err) {
    const int n_vocab = c->hp.n_vocab;
    if (n <= 0 || !tokens) return trit_fail(err, TRIT_EINVAL, "nothing to evaluate (n = %d)", n);
    /* the context's own cache is made on first use (a server's context only runs trit_seqs) */
    if (!c->own) c->own = trit_seq_new(c);
    if (pos < 0 || pos > c->own->n_past)
        return trit_fail(err, TRIT_EINVAL, "position %d is outside 0..%d (tokens in the cache)",
                         pos, c->own->n_past);
    if ((int64_t)pos + n > c->n_ctx)
        return trit_fail(err, TRIT_ERANGE, "context full: %d + %d tokens > n_ctx %d", pos, n,
                         c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return trit_fail(err, TRIT_EINVAL, "token id %d at index %d is outside 0..%d",
                             tokens[i], i, n_vocab - 1);
    const size_t need = logits_all ? (size_t)n : 1;
    if (need > c->logits_cap) {
        c->logits = xrealloc(c->logits, need * (size_t)n_vocab * sizeof(float));
        c->logits_cap = need;
    }
    c->n_eval = 0;
    c->logits_all = logits_all;
    c->own->n_past = pos; /* discard the cache tail */
    /* chunks of n_batch tokens (llama.cpp's n_ubatch), each one batch entry */
    for (int off = 0; off < n; off += c->n_batch) {
        const int T = TRIT_MIN(c->n_batch, n - off);
        const bool last_chunk = off + T == n;
        const trit_batch_entry e = {
            .seq = c->own,
            .tokens = tokens + off,
            .n_tokens = T,
            .pos = pos + off,
            .out = logits_all ? TRIT_OUT_ALL : (last_chunk ? TRIT_OUT_LAST : TRIT_OUT_NONE)};
        keep_ud k = {c, off};
        if (trit_batch_eval(c, &e, 1, keep_logits, &k, err)) return -1;
    }
    c->n_eval = n;
    return 0;
}

const float *trit_get_logits(const trit_ctx *c, int i) {
    if (c->n_eval <= 0) return NULL;
    if (i < 0) i = c->n_eval - 1;
    if (i >= c->n_eval) return NULL;
    if (c->logits_all) return c->logits + (size_t)i * c->hp.n_vocab;
    return i == c->n_eval - 1 ? c->logits : NULL;
}

/* ---- prefix reuse ---- */

/* Whether a layer weight of the model is multiplied in the group-of-4 order (order_of's
 * GROUP4): then a row's sums depend on its place in its entry's groups of 4. */
static bool has_group4(const trit_ctx *c) {
    for (int il = 0; il < c->hp.n_layer; il++) {
        const trit_layer *L = &c->m->layers[il];
        const trit_weight *w[] = {&L->wq,     &L->wk,       &L->wv,      &L->wo,
                                  &L->ffn_up, &L->ffn_gate, &L->ffn_down};
        for (size_t i = 0; i < TRIT_ARRAY_LEN(w); i++)
            if (order_of(w[i]->type, &w[i], 1) == ORDER_GROUP4) return true;
    }
    return false;
}

/* The numerics class of row r of a prefill entry of T tokens, the tail of a chunk of
 * `chunk` rows (engine.h): two rows of one class are summed alike whatever their entries.
 * One row: single-token orders; a chunk of >= 64 rows: tiled attention (padded_tiles gives a
 * shorter tail the chunk's kernel; head_dim % 16 == 0); group4: gemm or gemv row of T's. */
static int row_class(const trit_ctx *c, bool group4, int T, int chunk, int r) {
    if (T == 1) return 1;
    int k = 2;
    if (chunk >= ATT_TILE_ROWS && c->hp.head_dim % 16 == 0) k |= 4;
    if (group4 && r < T - T % 4) k |= 8;
    return k;
}

/* The rule of trit_ctx_reuse_exact, with has_group4 computed once by the caller. */
static bool reuse_exact(const trit_ctx *c, bool g4, int made, int n, int p) {
    const int nb = c->n_batch;
    if (p <= 0) return p == 0;
    if (p > made || p >= n) return false;
    const int k0 = p - p % nb; /* the cold chunk that holds cell p - 1 ... */
    if (k0 == p) return true;  /* ... unless p ends one: whole chunks, made alike */
    const int t_made = TRIT_MIN(made - k0, nb), t_cold = TRIT_MIN(n - k0, nb);
    const int s = p - k0, t_rest = t_cold - s; /* the new prompt's first entry: s .. t_cold */
    for (int r = 0; r < s; r++)
        if (row_class(c, g4, t_made, t_made, r) != row_class(c, g4, t_cold, t_cold, r))
            return false;
    for (int r = s; r < t_cold; r++)
        if (row_class(c, g4, t_rest, t_cold, r - s) != row_class(c, g4, t_cold, t_cold, r))
            return false;
    return true;
}

bool trit_ctx_reuse_exact(const trit_ctx *c, int made, int n, int p) {
    return reuse_exact(c, has_group4(c), made, n, p);
}

/* Downward from the most that could be shared: within one chunk of the first candidate a
 * multiple of n_batch is exact, so this looks at n_batch candidates at most. */
int trit_ctx_reuse_len(const trit_ctx *c, int made, int common, int n) {
    const bool g4 = has_group4(c);
    for (int p = TRIT_MIN(TRIT_MIN(common, made), n - 1); p > 0; p--)
        if (reuse_exact(c, g4, made, n, p)) return p;
    return 0;
}

int trit_ctx_chunk_at(const trit_ctx *c, int pos, int n) {
    return TRIT_MIN(c->n_batch - pos % c->n_batch, n - pos);
}

int trit_ctx_chunk_rows(const trit_ctx *c, int pos, int n) {
    return TRIT_MIN(c->n_batch, n - (pos - pos % c->n_batch));
}

size_t trit_seq_cells_bytes(const trit_ctx *c, int n) {
    const size_t es = c->kv_type == TRIT_F16 ? 2 : 4;
    return 2 * (size_t)c->hp.n_layer * c->hp.n_head_kv * (size_t)n * c->hp.head_dim * es;
}

/* Copy n cells of every (layer, kv head) between a cache and a compact block of n_block
 * cells per (layer, head); to_block picks the direction. */
static void copy_cells(const trit_ctx *c, void *cache, void *block, int n_block, int n,
                       bool to_block) {
    const size_t es = c->kv_type == TRIT_F16 ? 2 : 4;
    const size_t D = (size_t)c->hp.head_dim, rows = (size_t)c->hp.n_layer * c->hp.n_head_kv;
    for (size_t i = 0; i < rows; i++) {
        char *cp = (char *)cache + i * (size_t)c->n_ctx * D * es; /* layer-major, then head */
        char *bp = (char *)block + i * (size_t)n_block * D * es;
        if (to_block)
            memcpy(bp, cp, (size_t)n * D * es);
        else
            memcpy(cp, bp, (size_t)n * D * es);
    }
}

void trit_seq_get_cells(const trit_ctx *c, const trit_seq *s, int n, void *out) {
    assert(n >= 0 && n <= s->n_past); /* only cells the sequence holds */
    const size_t half = trit_seq_cells_bytes(c, n) / 2;
    copy_cells(c, s->kcache, out, n, n, true);
    copy_cells(c, s->vcache, (char *)out + half, n, n, true);
}

void trit_seq_set_cells(const trit_ctx *c, trit_seq *s, const void *block, int n_block, int n) {
    assert(n >= 0 && n <= n_block && n <= c->n_ctx); /* the block holds them, the cache too */
    const size_t half = trit_seq_cells_bytes(c, n_block) / 2;
    copy_cells(c, s->kcache, (void *)block, n_block, n, false);
    copy_cells(c, s->vcache, (char *)block + half, n_block, n, false);
    s->n_past = n;
}
