/* train/graph.c — the trainable model: parameters, the forward and backward pass of the whole
 * graph (train.h), AdamW, gradient clipping, the learning-rate schedule, GGUF export and
 * checkpoints. */
#include "train/train.h"

#include "quant/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Activations of one forward pass, kept for the backward pass. N = B*T. */
typedef struct {
    float *x;         /* [L+1][N, E] residual stream entering each layer (x[L] = final) */
    float *nq;        /* [L][N, E] attn_norm output, activation-quantized */
    float *rn;        /* [L][N] its rstd */
    float *q, *k, *v; /* [L][N, E] after RoPE (q, k) */
    float *att;       /* [L][B, H, T, T] */
    float *ao;        /* [L][N, E] attention output */
    float *aoq;       /* [L][N, E] attn_sub_norm output, quantized */
    float *rao;       /* [L][N] */
    float *hres;      /* [L][N, E] residual after attention */
    float *mq;        /* [L][N, E] ffn_norm output, quantized */
    float *rm;        /* [L][N] */
    float *g, *u, *s; /* [L][N, F] gate, up, silu(g)*u */
    float *sq;        /* [L][N, F] ffn_sub_norm output, quantized */
    float *rs;        /* [L][N] */
    float *fn;        /* [N, E] output_norm output */
    float *rf;        /* [N] */
    float *logits;    /* [N, V] probabilities after the loss */
    /* backward scratch */
    float *dx, *dn, *dq, *dk, *dv, *datt, *dao, *dnorm, *dh, *dg, *du, *ds, *dlog;
    size_t cap_N, cap_BT2;
} acts;

struct trit_train_model {
    trit_train_config cfg;
    size_t n_params;
    float *params; /* latent weights */
    float *grads;
    float *wq; /* weights used in the forward pass: ternarized copies (qat) */
    trit_train_tensor *tensors;
    size_t n_tensors;
    trit_train_params P, Q, G; /* views into params, wq, grads */
    acts a;
};

/* ---- layout ---- */
static void add_tensor(trit_train_model *m, const char *name, int64_t ne0, int64_t ne1,
                       bool ternary) {
    trit_train_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->ternary = ternary;
    t->offset = m->n_params;
    m->n_params += (size_t)(ne0 * ne1);
}

/* The GGUF tensor order of mkmodel's bitnet (token_embd, per layer, output_norm). */
static void plan(trit_train_model *m) {
    const trit_train_config *c = &m->cfg;
    const int64_t E = c->n_embd, F = c->n_ff, V = c->n_vocab;
    m->tensors = xcalloc(2 + (size_t)c->n_layer * 11, sizeof *m->tensors);
    add_tensor(m, "token_embd.weight", E, V, false);
    for (int l = 0; l < c->n_layer; l++) {
        char b[48];
#define BLK(s) (snprintf(b, sizeof b, "blk.%d." s ".weight", l), b)
        add_tensor(m, BLK("attn_norm"), E, 1, false);
        add_tensor(m, BLK("attn_q"), E, E, true);
        add_tensor(m, BLK("attn_k"), E, E, true);
        add_tensor(m, BLK("attn_v"), E, E, true);
        add_tensor(m, BLK("attn_output"), E, E, true);
        add_tensor(m, BLK("attn_sub_norm"), E, 1, false);
        add_tensor(m, BLK("ffn_norm"), E, 1, false);
        add_tensor(m, BLK("ffn_gate"), E, F, true);
        add_tensor(m, BLK("ffn_up"), E, F, true);
        add_tensor(m, BLK("ffn_down"), F, E, true);
        add_tensor(m, BLK("ffn_sub_norm"), F, 1, false);
#undef BLK
    }
    add_tensor(m, "output_norm.weight", E, 1, false);
}

static void bind(const trit_train_model *m, float *base, trit_train_params *p) {
    const int L = m->cfg.n_layer;
    float ***lists[] = {&p->attn_norm,     &p->wq,       &p->wk,     &p->wv,   &p->wo,
                        &p->attn_sub_norm, &p->ffn_norm, &p->w_gate, &p->w_up, &p->w_down,
                        &p->ffn_sub_norm};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(lists); i++)
        *lists[i] = xcalloc((size_t)L, sizeof(float *));
    p->tok_embd = base + m->tensors[0].offset;
    for (int l = 0; l < L; l++)
        for (size_t i = 0; i < TRIT_ARRAY_LEN(lists); i++)
            (*lists[i])[l] = base + m->tensors[1 + (size_t)l * 11 + i].offset;
    p->output_norm = base + m->tensors[m->n_tensors - 1].offset;
}

static void unbind(trit_train_params *p) {
    float **lists[] = {p->attn_norm,     p->wq,       p->wk,     p->wv,   p->wo,
                       p->attn_sub_norm, p->ffn_norm, p->w_gate, p->w_up, p->w_down,
                       p->ffn_sub_norm};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(lists); i++) free(lists[i]);
}

/* ---- random init (splitmix64 + Box-Muller; deterministic) ---- */
static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float normal(uint64_t *s) {
    const double u1 = ((splitmix(s) >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = (splitmix(s) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

trit_train_model *trit_train_model_new(const trit_train_config *cfg, uint64_t seed) {
    trit_train_model *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    plan(m);
    m->params = xcalloc(m->n_params, sizeof(float));
    m->grads = xcalloc(m->n_params, sizeof(float));
    m->wq = xcalloc(m->n_params, sizeof(float));
    bind(m, m->params, &m->P);
    bind(m, m->wq, &m->Q);
    bind(m, m->grads, &m->G);
    /* GPT-2 style: N(0, 0.02), residual projections scaled by 1/sqrt(2L); norms 1 */
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    const float proj = 0.02f / sqrtf(2.0f * (float)cfg->n_layer);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const trit_train_tensor *t = &m->tensors[i];
        float *w = m->params + t->offset;
        const size_t n = (size_t)(t->ne0 * t->ne1);
        const bool norm = t->ne1 == 1;
        const bool residual = strstr(t->name, "attn_output") || strstr(t->name, "ffn_down");
        for (size_t k = 0; k < n; k++) w[k] = norm ? 1.0f : normal(&s) * (residual ? proj : 0.02f);
    }
    return m;
}

void trit_train_model_free(trit_train_model *m) {
    if (!m) return;
    unbind(&m->P);
    unbind(&m->Q);
    unbind(&m->G);
    acts *a = &m->a;
    float *bufs[] = {a->x,   a->nq,    a->rn,     a->q,  a->k,  a->v,  a->att, a->ao, a->aoq,
                     a->rao, a->hres,  a->mq,     a->rm, a->g,  a->u,  a->s,   a->sq, a->rs,
                     a->fn,  a->rf,    a->logits, a->dx, a->dn, a->dq, a->dk,  a->dv, a->datt,
                     a->dao, a->dnorm, a->dh,     a->dg, a->du, a->ds, a->dlog};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(bufs); i++) free(bufs[i]);
    free(m->params);
    free(m->grads);
    free(m->wq);
    free(m->tensors);
    free(m);
}

const trit_train_config *trit_train_model_config(const trit_train_model *m) {
    return &m->cfg;
}
size_t trit_train_n_params(const trit_train_model *m) {
    return m->n_params;
}
float *trit_train_param_data(trit_train_model *m) {
    return m->params;
}
float *trit_train_grad_data(trit_train_model *m) {
    return m->grads;
}
size_t trit_train_n_tensors(const trit_train_model *m) {
    return m->n_tensors;
}
const trit_train_tensor *trit_train_tensor_at(const trit_train_model *m, size_t i) {
    return i < m->n_tensors ? &m->tensors[i] : NULL;
}

/* (Re)allocate the activation buffers for N = B*T tokens. */
static void acts_reserve(trit_train_model *m, int B, int T) {
    acts *a = &m->a;
    const size_t N = (size_t)B * T, BT2 = N * T;
    if (N <= a->cap_N && BT2 <= a->cap_BT2) return;
    const trit_train_config *c = &m->cfg;
    const size_t L = (size_t)c->n_layer, E = (size_t)c->n_embd, F = (size_t)c->n_ff,
                 H = (size_t)c->n_head, V = (size_t)c->n_vocab;
#define R(p, n) (free(p), (p) = xcalloc((n), sizeof(float)))
    R(a->x, (L + 1) * N * E);
    R(a->nq, L * N * E);
    R(a->rn, L * N);
    R(a->q, L * N * E);
    R(a->k, L * N * E);
    R(a->v, L * N * E);
    R(a->att, L * BT2 * H);
    R(a->ao, L * N * E);
    R(a->aoq, L * N * E);
    R(a->rao, L * N);
    R(a->hres, L * N * E);
    R(a->mq, L * N * E);
    R(a->rm, L * N);
    R(a->g, L * N * F);
    R(a->u, L * N * F);
    R(a->s, L * N * F);
    R(a->sq, L * N * F);
    R(a->rs, L * N);
    R(a->fn, N * E);
    R(a->rf, N);
    R(a->logits, N * V);
    R(a->dx, N * E);
    R(a->dn, N * E);
    R(a->dq, N * E);
    R(a->dk, N * E);
    R(a->dv, N * E);
    R(a->datt, BT2 * H);
    R(a->dao, N * E);
    R(a->dnorm, N * F);
    R(a->dh, N * E);
    R(a->dg, N * F);
    R(a->du, N * F);
    R(a->ds, N * F);
    R(a->dlog, N * V);
#undef R
    a->cap_N = N;
    a->cap_BT2 = BT2;
}

/* Weights used by the forward pass: ternarized block matrices (qat) or the latent ones. */
static void effective_weights(trit_train_model *m) {
    for (size_t i = 0; i < m->n_tensors; i++) {
        const trit_train_tensor *t = &m->tensors[i];
        const size_t n = (size_t)(t->ne0 * t->ne1);
        if (t->ternary && m->cfg.qat)
            trit_ternarize_absmean(m->wq + t->offset, m->params + t->offset, n);
        else
            memcpy(m->wq + t->offset, m->params + t->offset, n * sizeof(float));
    }
}

/* The engine keeps K and V in an fp16 cache: round them the same way (qat only). */
static void fp16_round(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = trit_fp16_to_fp32(trit_fp32_to_fp16(x[i]));
}

/* Forward pass; leaves softmax probabilities in a->logits and returns the summed NLL over
 * scored positions (count in *n_scored); per-position NLL in nll when non-NULL. */
static double graph_forward(trit_train_model *m, trit_pool *pool, const int32_t *tok,
                            const int32_t *tgt, int B, int T, float *nll, long *n_scored) {
    const trit_train_config *c = &m->cfg;
    acts_reserve(m, B, T);
    effective_weights(m);
    acts *a = &m->a;
    const trit_train_params *W = &m->Q;
    const int N = B * T, E = c->n_embd, F = c->n_ff, H = c->n_head, D = E / H, V = c->n_vocab;
    const size_t NE = (size_t)N * E, NF = (size_t)N * F, BT2H = (size_t)N * T * H;

    /* embedding: x0[t] = tok_embd[tok[t]]   ([N, E]) */
    for (int t = 0; t < N; t++)
        memcpy(a->x + (size_t)t * E, W->tok_embd + (size_t)tok[t] * E, (size_t)E * sizeof(float));

    for (int l = 0; l < c->n_layer; l++) {
        const float *x = a->x + l * NE;
        float *nq = a->nq + l * NE, *q = a->q + l * NE, *k = a->k + l * NE, *v = a->v + l * NE;
        float *att = a->att + l * BT2H, *ao = a->ao + l * NE, *aoq = a->aoq + l * NE;
        float *h = a->hres + l * NE, *mq = a->mq + l * NE;
        float *g = a->g + l * NF, *u = a->u + l * NF, *s = a->s + l * NF, *sq = a->sq + l * NF;
        float *xo = a->x + (l + 1) * NE;

        trit_t_rmsnorm_fwd(nq, a->rn + (size_t)l * N, x, W->attn_norm[l], N, E, c->rms_eps);
        if (c->qat) trit_t_act_quant(nq, N, E);
        trit_t_matmul_fwd(pool, q, nq, W->wq[l], N, E, E);
        trit_t_matmul_fwd(pool, k, nq, W->wk[l], N, E, E);
        trit_t_matmul_fwd(pool, v, nq, W->wv[l], N, E, E);
        trit_t_rope_fwd(q, N, T, H, D, c->rope_freq_base);
        trit_t_rope_fwd(k, N, T, H, D, c->rope_freq_base);
        if (c->qat) {
            fp16_round(k, NE);
            fp16_round(v, NE);
        }
        trit_t_attention_fwd(pool, ao, att, q, k, v, B, T, H, D);
        trit_t_rmsnorm_fwd(aoq, a->rao + (size_t)l * N, ao, W->attn_sub_norm[l], N, E, c->rms_eps);
        if (c->qat) trit_t_act_quant(aoq, N, E);
        trit_t_matmul_fwd(pool, h, aoq, W->wo[l], N, E, E);
        for (size_t i = 0; i < NE; i++) h[i] += x[i];

        trit_t_rmsnorm_fwd(mq, a->rm + (size_t)l * N, h, W->ffn_norm[l], N, E, c->rms_eps);
        if (c->qat) trit_t_act_quant(mq, N, E);
        trit_t_matmul_fwd(pool, g, mq, W->w_gate[l], N, E, F);
        trit_t_matmul_fwd(pool, u, mq, W->w_up[l], N, E, F);
        trit_t_swiglu_fwd(s, g, u, NF);
        trit_t_rmsnorm_fwd(sq, a->rs + (size_t)l * N, s, W->ffn_sub_norm[l], N, F, c->rms_eps);
        if (c->qat) trit_t_act_quant(sq, N, F);
        trit_t_matmul_fwd(pool, xo, sq, W->w_down[l], N, F, E);
        for (size_t i = 0; i < NE; i++) xo[i] += h[i];
    }

    /* head: fn = rmsnorm(x_L) * output_norm; logits = fn · tok_embd^T   ([N, V]) */
    trit_t_rmsnorm_fwd(a->fn, a->rf, a->x + (size_t)c->n_layer * NE, W->output_norm, N, E,
                       c->rms_eps);
    trit_t_matmul_fwd(pool, a->logits, a->fn, W->tok_embd, N, E, V);

    /* softmax cross-entropy, in place: logits become probabilities */
    double total = 0.0;
    long count = 0;
    for (int t = 0; t < N; t++) {
        float *p = a->logits + (size_t)t * V;
        float mx = p[0];
        for (int i = 1; i < V; i++) mx = fmaxf(mx, p[i]);
        const float lt = tgt[t] >= 0 ? p[tgt[t]] : 0.0f; /* the target's logit */
        double sum = 0.0;
        for (int i = 0; i < V; i++) {
            p[i] = expf(p[i] - mx);
            sum += p[i];
        }
        const float inv = (float)(1.0 / sum);
        for (int i = 0; i < V; i++) p[i] *= inv;
        float l = 0.0f;
        if (tgt[t] >= 0) {
            /* -log softmax = log(sum exp(z - max)) - (z_target - max), as llama-perplexity
             * computes it: no underflow for improbable targets, unlike -log(p) */
            l = (float)(log(sum) - (double)(lt - mx));
            total += l;
            count++;
        }
        if (nll) nll[t] = l;
    }
    *n_scored = count;
    return total;
}

static void graph_backward(trit_train_model *m, trit_pool *pool, const int32_t *tok,
                           const int32_t *tgt, int B, int T, long count) {
    const trit_train_config *c = &m->cfg;
    acts *a = &m->a;
    const trit_train_params *W = &m->Q, *G = &m->G;
    const int N = B * T, E = c->n_embd, F = c->n_ff, H = c->n_head, D = E / H, V = c->n_vocab;
    const size_t NE = (size_t)N * E, NF = (size_t)N * F, BT2H = (size_t)N * T * H;
    memset(m->grads, 0, m->n_params * sizeof(float));

    /* dlogits = (p - onehot(target)) / count   ([N, V]) */
    const float inv = count > 0 ? 1.0f / (float)count : 0.0f;
    for (int t = 0; t < N; t++) {
        float *d = a->dlog + (size_t)t * V;
        const float *p = a->logits + (size_t)t * V;
        if (tgt[t] < 0) {
            memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        for (int i = 0; i < V; i++) d[i] = p[i] * inv;
        d[tgt[t]] -= inv;
    }
    /* head */
    memset(a->dn, 0, NE * sizeof(float));
    trit_t_matmul_bwd(pool, a->dn, G->tok_embd, a->dlog, a->fn, W->tok_embd, N, E, V);
    memset(a->dx, 0, NE * sizeof(float));
    trit_t_rmsnorm_bwd(a->dx, G->output_norm, a->dn, a->x + (size_t)c->n_layer * NE, W->output_norm,
                       a->rf, N, E);

    /* a->dx holds dL/dx_{l+1} on entry of each iteration and dL/dx_l on exit */
    for (int l = c->n_layer - 1; l >= 0; l--) {
        const float *x = a->x + l * NE;
        const float *nq = a->nq + l * NE, *q = a->q + l * NE, *k = a->k + l * NE,
                    *v = a->v + l * NE;
        const float *att = a->att + l * BT2H, *ao = a->ao + l * NE, *aoq = a->aoq + l * NE;
        const float *h = a->hres + l * NE, *mq = a->mq + l * NE;
        const float *g = a->g + l * NF, *u = a->u + l * NF, *s = a->s + l * NF,
                    *sq = a->sq + l * NF;

        /* FFN: xo = h + Wd sq. dh = dxo (residual) + the FFN branch */
        memcpy(a->dh, a->dx, NE * sizeof(float));
        memset(a->dnorm, 0, NF * sizeof(float));
        trit_t_matmul_bwd(pool, a->dnorm, G->w_down[l], a->dx, sq, W->w_down[l], N, F, E);
        memset(a->ds, 0, NF * sizeof(float));
        trit_t_rmsnorm_bwd(a->ds, G->ffn_sub_norm[l], a->dnorm, s, W->ffn_sub_norm[l],
                           a->rs + (size_t)l * N, N, F);
        memset(a->dg, 0, NF * sizeof(float));
        memset(a->du, 0, NF * sizeof(float));
        trit_t_swiglu_bwd(a->dg, a->du, a->ds, g, u, NF);
        memset(a->dn, 0, NE * sizeof(float));
        trit_t_matmul_bwd(pool, a->dn, G->w_gate[l], a->dg, mq, W->w_gate[l], N, E, F);
        trit_t_matmul_bwd(pool, a->dn, G->w_up[l], a->du, mq, W->w_up[l], N, E, F);
        trit_t_rmsnorm_bwd(a->dh, G->ffn_norm[l], a->dn, h, W->ffn_norm[l], a->rm + (size_t)l * N,
                           N, E);

        /* attention: h = x + Wo aoq. dx = dh (residual) + the attention branch */
        memcpy(a->dx, a->dh, NE * sizeof(float));
        memset(a->dn, 0, NE * sizeof(float));
        trit_t_matmul_bwd(pool, a->dn, G->wo[l], a->dh, aoq, W->wo[l], N, E, E);
        memset(a->dao, 0, NE * sizeof(float));
        trit_t_rmsnorm_bwd(a->dao, G->attn_sub_norm[l], a->dn, ao, W->attn_sub_norm[l],
                           a->rao + (size_t)l * N, N, E);
        memset(a->dq, 0, NE * sizeof(float));
        memset(a->dk, 0, NE * sizeof(float));
        memset(a->dv, 0, NE * sizeof(float));
        trit_t_attention_bwd(pool, a->dq, a->dk, a->dv, a->datt, a->dao, att, q, k, v, B, T, H, D);
        trit_t_rope_bwd(a->dq, N, T, H, D, c->rope_freq_base);
        trit_t_rope_bwd(a->dk, N, T, H, D, c->rope_freq_base);
        memset(a->dn, 0, NE * sizeof(float));
        trit_t_matmul_bwd(pool, a->dn, G->wq[l], a->dq, nq, W->wq[l], N, E, E);
        trit_t_matmul_bwd(pool, a->dn, G->wk[l], a->dk, nq, W->wk[l], N, E, E);
        trit_t_matmul_bwd(pool, a->dn, G->wv[l], a->dv, nq, W->wv[l], N, E, E);
        trit_t_rmsnorm_bwd(a->dx, G->attn_norm[l], a->dn, x, W->attn_norm[l], a->rn + (size_t)l * N,
                           N, E);
    }
    /* embedding rows, in token order (deterministic) */
    for (int t = 0; t < N; t++) {
        float *ge = G->tok_embd + (size_t)tok[t] * E;
        const float *d = a->dx + (size_t)t * E;
        for (int i = 0; i < E; i++) ge[i] += d[i];
    }
}

double trit_train_step_loss(trit_train_model *m, trit_pool *pool, const int32_t *tokens,
                            const int32_t *targets, int B, int T, bool grads) {
    long count = 0;
    const double total = graph_forward(m, pool, tokens, targets, B, T, NULL, &count);
    if (grads) graph_backward(m, pool, tokens, targets, B, T, count);
    return count > 0 ? total / (double)count : 0.0;
}

void trit_train_forward_nll(trit_train_model *m, trit_pool *pool, const int32_t *tokens,
                            const int32_t *targets, int B, int T, float *nll) {
    long count = 0;
    graph_forward(m, pool, tokens, targets, B, T, nll, &count);
}

/* ---- optimizer ---- */
void trit_adamw_update(trit_train_model *m, const trit_adamw *o, float lr, float *mom, float *var,
                       long t) {
    const float bc1 = 1.0f - powf(o->beta1, (float)t), bc2 = 1.0f - powf(o->beta2, (float)t);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const trit_train_tensor *tt = &m->tensors[i];
        /* decay the matrices (embedding included), not the norm gains */
        const float wd = tt->ne1 > 1 ? o->weight_decay : 0.0f;
        const size_t n = (size_t)(tt->ne0 * tt->ne1);
        float *p = m->params + tt->offset, *g = m->grads + tt->offset;
        float *mm = mom + tt->offset, *vv = var + tt->offset;
        for (size_t k = 0; k < n; k++) {
            mm[k] = o->beta1 * mm[k] + (1.0f - o->beta1) * g[k];
            vv[k] = o->beta2 * vv[k] + (1.0f - o->beta2) * g[k] * g[k];
            const float mh = mm[k] / bc1, vh = vv[k] / bc2;
            p[k] -= lr * (mh / (sqrtf(vh) + o->eps) + wd * p[k]);
        }
    }
}

double trit_clip_grad(trit_train_model *m, float max_norm) {
    double ss = 0.0;
    for (size_t i = 0; i < m->n_params; i++) ss += (double)m->grads[i] * m->grads[i];
    const double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        const float s = (float)(max_norm / norm);
        for (size_t i = 0; i < m->n_params; i++) m->grads[i] *= s;
    }
    return norm;
}

float trit_lr_at(long step, long warmup, long total_steps, float lr_max, float min_ratio) {
    if (step < warmup) return lr_max * (float)(step + 1) / (float)warmup;
    if (total_steps <= warmup) return lr_max;
    const double p = (double)(step - warmup) / (double)(total_steps - warmup);
    const double c = 0.5 * (1.0 + cos(3.141592653589793 * fmin(p, 1.0)));
    return lr_max * (float)(min_ratio + (1.0 - min_ratio) * c);
}

/* ---- export ---- */
typedef struct {
    trit_train_model *m;
    uint32_t wtype;
} export_ctx;

static uint32_t export_type(const export_ctx *x, const trit_train_tensor *t) {
    if (t->ternary) return x->wtype;
    return t->ne1 > 1 ? TRIT_F16 : TRIT_F32;
}

static int export_fill(void *ctx, size_t index, void *dst, size_t nbytes, trit_err *err) {
    export_ctx *x = ctx;
    const trit_train_tensor *t = &x->m->tensors[index];
    const size_t n = (size_t)(t->ne0 * t->ne1);
    float *w = xmalloc(n * sizeof(float));
    if (t->ternary)
        trit_ternarize_absmean(w, x->m->params + t->offset, n);
    else
        memcpy(w, x->m->params + t->offset, n * sizeof(float));
    const uint32_t type = export_type(x, t);
    const int rc = trit_quantize_tensor(type, w, dst, t->ne0, t->ne1);
    free(w);
    if (rc || trit_tensor_nbytes(type, t->ne0, t->ne1) != nbytes)
        return trit_fail(err, TRIT_EUNSUP, "cannot convert %s to %s", t->name,
                         trit_type_get(type)->name);
    return 0;
}

int trit_train_export(trit_train_model *m, const gguf_file *vocab, uint32_t wtype,
                      int context_length, const char *name, const char *path, trit_err *err) {
    const trit_train_config *c = &m->cfg;
    if (wtype != TRIT_TQ2_0 && wtype != TRIT_TQ1_0 && wtype != TRIT_I2_S)
        return trit_fail(err, TRIT_EINVAL, "export type %s is not ternary (tq2_0, tq1_0, i2_s)",
                         trit_type_get(wtype) ? trit_type_get(wtype)->name : "?");
    if (c->n_embd % 256 || c->n_ff % 256)
        return trit_fail(err, TRIT_EINVAL,
                         "n_embd %d and n_ff %d must be multiples of 256 for ternary GGUF blocks",
                         c->n_embd, c->n_ff);
    const gguf_kv *toks = gguf_find(vocab, "tokenizer.ggml.tokens");
    if (!toks || toks->type != GGUF_T_ARRAY || toks->arr_n != (uint64_t)c->n_vocab)
        return trit_fail(err, TRIT_EFORMAT,
                         "vocabulary: tokenizer.ggml.tokens missing or not %d entries", c->n_vocab);
    gguf_writer *w = gguf_writer_new();
    const char *arch = "bitnet";
    gguf_w_str(w, "general.architecture", arch);
    gguf_w_str(w, "general.type", "model");
    gguf_w_str(w, "general.name", name);
    gguf_w_u32(w, "bitnet.vocab_size", (uint32_t)c->n_vocab);
    gguf_w_u32(w, "bitnet.context_length",
               (uint32_t)(context_length > 0 ? context_length : c->n_ctx));
    gguf_w_u32(w, "bitnet.embedding_length", (uint32_t)c->n_embd);
    gguf_w_u32(w, "bitnet.block_count", (uint32_t)c->n_layer);
    gguf_w_u32(w, "bitnet.feed_forward_length", (uint32_t)c->n_ff);
    gguf_w_u32(w, "bitnet.rope.dimension_count", (uint32_t)(c->n_embd / c->n_head));
    gguf_w_u32(w, "bitnet.attention.head_count", (uint32_t)c->n_head);
    gguf_w_u32(w, "bitnet.attention.head_count_kv", (uint32_t)c->n_head);
    gguf_w_f32(w, "bitnet.rope.freq_base", c->rope_freq_base);
    gguf_w_f32(w, "bitnet.attention.layer_norm_rms_epsilon", c->rms_eps);
    gguf_w_str(w, "bitnet.rope.scaling.type", "linear");
    gguf_w_f32(w, "bitnet.rope.scaling.factor", 1.0f);
    gguf_w_u32(w, "general.file_type", wtype == TRIT_TQ2_0 ? 37 : wtype == TRIT_TQ1_0 ? 36 : 40);
    gguf_w_u32(w, "general.quantization_version", 2);
    for (size_t i = 0; i < gguf_n_kv(vocab); i++) {
        const gguf_kv *kv = gguf_kv_at(vocab, i);
        if (kv->key.n > 10 && !memcmp(kv->key.p, "tokenizer.", 10)) gguf_w_copy_kv(w, kv);
    }
    export_ctx x = {m, wtype};
    for (size_t i = 0; i < m->n_tensors; i++) {
        const trit_train_tensor *t = &m->tensors[i];
        const int64_t ne[2] = {t->ne0, t->ne1};
        const uint32_t type = export_type(&x, t);
        gguf_w_tensor(w, t->name, type, t->ne1 > 1 ? 2 : 1, ne, NULL,
                      trit_tensor_nbytes(type, t->ne0, t->ne1));
    }
    const int rc = gguf_writer_write(w, path, export_fill, &x, err);
    gguf_writer_free(w);
    return rc;
}

/* ---- checkpoints ----
 * Layout (little-endian): "TRITCKPT" | u32 version 1 | config: 6 x i32 (n_vocab, n_embd,
 * n_layer, n_head, n_ff, n_ctx), 2 x f32 (rope_freq_base, rms_eps), i32 qat |
 * i64 step | u64 seed | u64 n_params | params | adam m | adam v | u64 xxh3 of all before. */
#define CKPT_MAGIC "TRITCKPT"

/* the config as written: fixed-width fields, no padding */
typedef struct {
    int32_t n_vocab, n_embd, n_layer, n_head, n_ff, n_ctx;
    float rope_freq_base, rms_eps;
    int32_t qat;
} ckpt_cfg;

static ckpt_cfg ckpt_cfg_of(const trit_train_config *c) {
    ckpt_cfg k = {c->n_vocab, c->n_embd,         c->n_layer, c->n_head,     c->n_ff,
                  c->n_ctx,   c->rope_freq_base, c->rms_eps, c->qat ? 1 : 0};
    return k;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        const ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

int trit_ckpt_save(const char *path, trit_train_model *m, const float *mom, const float *var,
                   long step, uint64_t seed, trit_err *err) {
    trit_buf b = {0};
    const uint32_t version = 1;
    const int64_t st = step;
    const uint64_t np = m->n_params;
    trit_buf_append(&b, CKPT_MAGIC, 8);
    trit_buf_append(&b, &version, 4);
    ckpt_cfg cc = ckpt_cfg_of(&m->cfg);
    trit_buf_append(&b, &cc, sizeof cc);
    trit_buf_append(&b, &st, 8);
    trit_buf_append(&b, &seed, 8);
    trit_buf_append(&b, &np, 8);
    trit_buf_append(&b, m->params, np * 4);
    trit_buf_append(&b, mom, np * 4);
    trit_buf_append(&b, var, np * 4);
    const uint64_t h = trit_hash64(b.p, b.len);
    trit_buf_append(&b, &h, 8);

    size_t plen = strlen(path);
    char *tmp = xmalloc(plen + 8);
    snprintf(tmp, plen + 8, "%s.tmp", path);
    int rc = -1;
    const int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        trit_fail(err, TRIT_EIO, "checkpoint %s: %s", tmp, strerror(errno));
    } else if (write_all(fd, b.p, b.len) || fsync(fd)) {
        trit_fail(err, TRIT_EIO, "checkpoint %s: write failed: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
    } else if (close(fd) || rename(tmp, path)) {
        trit_fail(err, TRIT_EIO, "checkpoint %s: %s", path, strerror(errno));
        unlink(tmp);
    } else {
        /* make the rename itself durable */
        char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash)
            slash[slash == dir ? 1 : 0] = '\0';
        else
            strcpy(dir, ".");
        const int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
        rc = 0;
    }
    free(tmp);
    trit_buf_free(&b);
    return rc;
}

int trit_ckpt_load(const char *path, trit_train_model *m, float *mom, float *var, long *step,
                   uint64_t *seed, trit_err *err) {
    trit_buf b = {0};
    if (trit_read_file(path, &b, err)) return -1;
    const size_t np = m->n_params;
    const size_t head = 8 + 4 + sizeof(ckpt_cfg) + 8 + 8 + 8;
    const size_t want = head + 3 * np * 4 + 8;
    int rc = -1;
    uint32_t version;
    ckpt_cfg cfg, mine = ckpt_cfg_of(&m->cfg);
    uint64_t fnp, h;
    int64_t st;
    if (b.len < head || memcmp(b.p, CKPT_MAGIC, 8)) {
        trit_fail(err, TRIT_EFORMAT, "checkpoint %s: not a trit checkpoint (magic)", path);
        goto out;
    }
    memcpy(&version, b.p + 8, 4);
    memcpy(&cfg, b.p + 12, sizeof cfg);
    memcpy(&st, b.p + 12 + sizeof cfg, 8);
    memcpy(seed, b.p + 20 + sizeof cfg, 8);
    memcpy(&fnp, b.p + 28 + sizeof cfg, 8);
    if (version != 1) {
        trit_fail(err, TRIT_EUNSUP, "checkpoint %s: version %u (expected 1)", path, version);
        goto out;
    }
    if (memcmp(&cfg, &mine, sizeof cfg) || fnp != np) {
        trit_fail(err, TRIT_EINVAL, "checkpoint %s: model shape differs from the options", path);
        goto out;
    }
    if (b.len != want) {
        trit_fail(err, TRIT_EFORMAT, "checkpoint %s: %zu bytes (expected %zu)", path, b.len, want);
        goto out;
    }
    memcpy(&h, b.p + want - 8, 8);
    if (h != trit_hash64(b.p, want - 8)) {
        trit_fail(err, TRIT_EFORMAT, "checkpoint %s: checksum mismatch (corrupt)", path);
        goto out;
    }
    memcpy(m->params, b.p + head, np * 4);
    memcpy(mom, b.p + head + np * 4, np * 4);
    memcpy(var, b.p + head + 2 * np * 4, np * 4);
    *step = (long)st;
    rc = 0;
out:
    trit_buf_free(&b);
    return rc;
}
