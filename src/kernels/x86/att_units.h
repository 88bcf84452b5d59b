/* kernels/x86/att_units.h — how the x86 attention kernels (kernels_avx512.c, attention_avx2.c)
 * share one attention call out among the pool's threads.
 *
 * Contract: the call's (token, head) pairs are grouped into units of `rows` consecutive tokens
 * of one head (rows that can share each K tile); att_next_unit hands the units out from an
 * atomic counter, the last tokens first (under the causal mask they see the most keys), so the
 * threads finish together. Each unit is handed out exactly once; which thread computes a unit
 * never changes a result. */
#ifndef TRIT_KERNELS_X86_ATT_UNITS_H
#define TRIT_KERNELS_X86_ATT_UNITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct att_call {
    const float *q;      /* [n_tok][n_head][head_dim] */
    const void *kc, *vc; /* [n_head_kv][n_ctx][head_dim], es bytes per element */
    float *out;          /* as q */
    int n_ctx, n_head, n_head_kv, head_dim, pos0, n_tok;
    size_t es;
    int rows; /* tokens per unit */
    atomic_int_fast64_t next;
} att_call;

typedef struct att_unit {
    const float *q;      /* the first row's query; the unit's rows are stride floats apart */
    float *dst;          /* the first row's output, same stride */
    const void *kh, *vh; /* the head's K and V cache */
    size_t stride;
    int n_kv0; /* keys the first row sees; row r sees n_kv0 + r */
    int nr;    /* rows in this unit (<= rows) */
} att_unit;

/* The next unit into u; false when all are handed out. */
static inline bool att_next_unit(att_call *c, att_unit *u) {
    const int64_t units = (int64_t)((c->n_tok + c->rows - 1) / c->rows) * c->n_head;
    const int64_t k = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
    if (k >= units) return false;
    const int64_t v = units - 1 - k; /* last tokens first */
    const int t = (int)(v / c->n_head) * c->rows, h = (int)(v % c->n_head);
    const size_t off =
        (size_t)(h / (c->n_head / c->n_head_kv)) * (size_t)c->n_ctx * (size_t)c->head_dim * c->es;
    u->stride = (size_t)c->n_head * (size_t)c->head_dim; /* next token, same head */
    u->q = c->q + ((size_t)t * c->n_head + h) * c->head_dim;
    u->dst = c->out + ((size_t)t * c->n_head + h) * c->head_dim;
    u->kh = (const char *)c->kc + off;
    u->vh = (const char *)c->vc + off;
    u->n_kv0 = c->pos0 + t + 1;
    u->nr = c->n_tok - t < c->rows ? c->n_tok - t : c->rows;
    return true;
}

#endif
