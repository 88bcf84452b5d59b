/* engine/sampler.c — greedy, temperature, top-k, top-p, min-p with a seeded RNG.
 *
 * Order of the chain, as llama.cpp's default sampler chain: top-k -> top-p -> min-p ->
 * temperature -> draw. top-p and min-p look at the softmax of the (untempered) logits of the
 * candidates left. The RNG is splitmix64 seeded with `seed`: the same seed and logits give
 * the same tokens. Greedy (temp <= 0) ignores everything else and takes the argmax, ties to
 * the lowest id. Stop tokens are the caller's business. */
#include "engine/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct trit_sampler {
    trit_sampler_params p;
    uint64_t rng;
    int cap;
    int32_t *ids; /* candidate ids */
    float *vals;  /* their logits / probabilities */
};

trit_sampler_params trit_sampler_default_params(void) {
    trit_sampler_params p = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .seed = 0};
    return p;
}

trit_sampler *trit_sampler_new(const trit_sampler_params *p) {
    trit_sampler *s = xcalloc(1, sizeof *s);
    s->p = p ? *p : trit_sampler_default_params();
    s->rng = s->p.seed;
    return s;
}

void trit_sampler_free(trit_sampler *s) {
    if (!s) return;
    free(s->ids);
    free(s->vals);
    free(s);
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* uniform in [0, 1) with 53 random bits */
static double rng_uniform(uint64_t *x) {
    return (double)(splitmix64(x) >> 11) * (1.0 / 9007199254740992.0);
}

int32_t trit_argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) /* strict: ties keep the lowest id */
            best = i;
    return n > 0 ? best : -1;
}

/* a ranks before b: higher logit, or equal logit and lower id */
static inline bool before(float va, int32_t ia, float vb, int32_t ib) {
    return va > vb || (va == vb && ia < ib);
}

typedef struct {
    float v;
    int32_t id;
} cand;
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (before(x->v, x->id, y->v, y->id)) return -1;
    if (before(y->v, y->id, x->v, x->id)) return 1;
    return 0;
}

int32_t trit_sampler_sample(trit_sampler *s, const float *logits, int n_vocab) {
    const trit_sampler_params *p = &s->p;
    if (n_vocab <= 0) return -1;
    if (p->temp <= 0.0f) return trit_argmax(logits, n_vocab);
    if (s->cap < n_vocab) {
        s->ids = xrealloc(s->ids, (size_t)n_vocab * sizeof *s->ids);
        s->vals = xrealloc(s->vals, (size_t)n_vocab * sizeof *s->vals);
        s->cap = n_vocab;
    }
    /* candidates sorted by logit (best first) */
    int n;
    if (p->top_k > 0 && p->top_k < n_vocab) {
        n = trit_top_k(logits, n_vocab, p->top_k, s->ids);
    } else {
        cand *cs = xmalloc((size_t)n_vocab * sizeof *cs);
        for (int i = 0; i < n_vocab; i++) cs[i] = (cand){logits[i], i};
        qsort(cs, (size_t)n_vocab, sizeof *cs, cand_cmp);
        for (int i = 0; i < n_vocab; i++) s->ids[i] = cs[i].id;
        free(cs);
        n = n_vocab;
    }
    /* softmax of the candidates' logits (temperature 1) for top-p / min-p */
    const float mx = logits[s->ids[0]];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        s->vals[i] = expf(logits[s->ids[i]] - mx);
        sum += s->vals[i];
    }
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += s->vals[i] / sum;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0.0f) {
        /* vals[0] is the max probability (unnormalised 1.0) */
        int keep = 1;
        while (keep < n && s->vals[keep] >= p->min_p * s->vals[0]) keep++;
        n = keep;
    }
    /* temperature, then draw */
    double tot = 0.0;
    for (int i = 0; i < n; i++) {
        s->vals[i] = (float)exp(((double)logits[s->ids[i]] - mx) / p->temp);
        tot += s->vals[i];
    }
    double r = rng_uniform(&s->rng) * tot;
    for (int i = 0; i < n; i++) {
        r -= s->vals[i];
        if (r < 0.0) return s->ids[i];
    }
    return s->ids[n - 1];
}
