/* kernels/ops.c — reference elementwise ops and attention, with ggml CPU numerics.
 *
 * What is mirrored from ggml-cpu (ops.cpp, vec.h) because it changes results at the 1e-4
 * level: RMSNorm sums squares in double; RoPE angles come from a cache built by repeated
 * multiplication theta *= base^(-2/n_dims) in float; flash attention takes two paths:
 *  - fewer than 64 query rows (decode, short prompts): Q is rounded to fp16 for the K·Q
 *    dot with the fp16 K cache, and the V accumulator is an fp16 vector, rounded after
 *    every scale and every multiply-add (ggml_vec_scale_f16 / ggml_vec_mad_f16);
 *  - 64 or more query rows (batched prefill): all in f32, online softmax per tile of 64
 *    keys (the rescale happens once per tile, as in the tiled kernel).
 * Every order that depends on the reference build (the K.Q dot's lanes, ggml_v_expf's form,
 * SwiGLU's vector width) follows the numerics table in use (kernels.h).
 * The split-KV decode path takes a kernel set's chunk kernel (trit_attention_split), and
 * trit_swiglu hands the avx512 set's identical vector version the work. trit_attention_fast is
 * --numerics fast's attention: its own documented order, scalar here, AVX-512 twin in x86/. */
#include "kernels/kernels.h"
#include "kernels/ref/ggml_order.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The hot loops are cloned for x86-64-v3 (AVX2, FMA: fmaf inline, vectorized lanes); the
 * arithmetic is the same in every clone. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("default", "arch=x86-64-v3")))
#else
#define HOT
#endif

/* ---- fp16 helpers ---- */
static float g_f16_table[65536];
static pthread_once_t g_f16_once = PTHREAD_ONCE_INIT;
static void f16_table_init(void) {
    for (uint32_t i = 0; i < 65536; i++) g_f16_table[i] = trit_fp16_to_fp32((uint16_t)i);
}
static inline float h2f(uint16_t h) {
    return g_f16_table[h];
}

/* Round a float to the nearest fp16 value (ties to even) and return it as a float. */
static inline float f16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x38800000u && a < 0x477ff000u) { /* normal fp16 range, no overflow */
        uint32_t lsb = (u >> 13) & 1u;
        u = (u + 0x0fffu + lsb) & ~0x1fffu;
        memcpy(&f, &u, 4);
        return f;
    }
    return trit_fp16_to_fp32(trit_fp32_to_fp16(f));
}

/* ---- elementwise ---- */
/* TEST-ONLY fault switch (tests/integration/86_gates_real_job.sh, docs/TRAINING.md):
 * TRIT_TEST_PERTURB=1 moves every RMSNorm scale up by 1 ulp — a gen-2 that differs from
 * gen-1 only by rounding, as a changed summation order would. Read once; off by default. */
static pthread_once_t g_perturb_once = PTHREAD_ONCE_INIT;
static bool g_perturb;
static void perturb_init(void) {
    const char *e = getenv("TRIT_TEST_PERTURB");
    g_perturb = e && !strcmp(e, "1");
}

void trit_rmsnorm(const float *x, const float *w, float *y, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    float scale = 1.0f / sqrtf(mean + eps);
    pthread_once(&g_perturb_once, perturb_init);
    if (g_perturb) scale = nextafterf(scale, INFINITY); /* the test-only 1-ulp fault */
    if (w) {
        for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
    } else {
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale;
    }
}

/* ggml's rotate_pairs compiled with -march=native contracts to these fmas (bit-exact) */
static inline float rot0(float x0, float x1, float c, float s) {
    return fmaf(x0, c, -(x1 * s));
}
static inline float rot1(float x0, float x1, float c, float s) {
    return fmaf(x0, s, x1 * c);
}

void trit_rope(float *x, int n_head, int head_dim, int n_rot, int pos, float freq_base, int mode) {
    float cs[1024]; /* cos, sin pairs for n_rot/2 angles (n_rot <= 1024) */
    if (n_rot > 1024) n_rot = 1024;
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        cs[i0] = cosf(theta);
        cs[i0 + 1] = sinf(theta);
        theta *= theta_scale;
    }
    /* aarch64's GCC vectorizes ggml's NORM rotate_pairs 4 pairs at a time (ld2/st2) and fuses
     * the other product there: x0 * c - x1 * s as fma(-x1, s, x0 * c) for the first
     * (n_rot / 2) & ~3 pairs (build-arm64's libggml-cpu); its scalar tail, NEOX and x86 as rot0 */
    const int nv = trit_numerics_table_get()->lanes == 4 ? (n_rot / 2 & ~3) * 2 : 0;
    for (int h = 0; h < n_head; h++) {
        float *v = x + (size_t)h * head_dim;
        if (mode == 2) { /* NEOX: pairs (i, i + n_rot/2) */
            const int half = n_rot / 2;
            for (int i = 0; i < half; i++) {
                const float c = cs[2 * i], s = cs[2 * i + 1];
                const float x0 = v[i], x1 = v[i + half];
                v[i] = rot0(x0, x1, c, s);
                v[i + half] = rot1(x0, x1, c, s);
            }
        } else { /* NORM: adjacent pairs */
            for (int i0 = 0; i0 < n_rot; i0 += 2) {
                const float c = cs[i0], s = cs[i0 + 1];
                const float x0 = v[i0], x1 = v[i0 + 1];
                v[i0] = i0 < nv ? fmaf(-x1, s, x0 * c) : rot0(x0, x1, c, s);
                v[i0 + 1] = rot1(x0, x1, c, s);
            }
        }
    }
}

void trit_softmax(float *x, int64_t n) {
    if (n <= 0) return;
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

float trit_silu(float x) {
    return x / (1.0f + expf(-x));
}

HOT void trit_swiglu(const float *g, const float *u, float *y, int64_t n) {
    const int w = trit_numerics_table_get()->lanes;
    if (w == 16 && trit_kernels_best() == &trit_kernels_avx512_impl) {
        trit_swiglu_avx512(g, u, y, n); /* the same numbers, 16 lanes at a time */
        return;
    }
    /* ggml_vec_swiglu_f32's w-wide part (the build's ggml_v_silu), libm for the rest */
    const int64_t nw = n & ~(int64_t)(w - 1);
    int64_t i = 0;
    for (; i < nw; i++) y[i] = go_v_silu_w(w, g[i]) * u[i];
    for (; i < n; i++) y[i] = trit_silu(g[i]) * u[i];
}

/* ---- attention ---- */
#define ATT_MAX_DIM 1024
#define FA_TILE_KV  64 /* GGML_FA_TILE_KV */
#define FA_TILE_Q   64 /* GGML_FA_TILE_Q: query rows needed for the tiled (f32) kernel */

typedef struct att_job {
    const float *q;
    const void *kc, *vc;
    uint32_t kv_type;
    int n_ctx, n_head, n_head_kv, head_dim, pos0, n_tok;
    float scale;
    float *out;
    bool tiled;
} att_job;

static inline const void *row_ptr(const void *base, uint32_t type, size_t idx, int d) {
    return type == TRIT_F16 ? (const void *)((const uint16_t *)base + idx * (size_t)d)
                            : (const void *)((const float *)base + idx * (size_t)d);
}

/* K.Q for one key: ggml's kq_vec_dot for the K type (vec_dot_f16 with Q rounded to fp16, or
 * vec_dot_f32), in the order of a build with w lanes. qf: the query as the dot sees it. */
static inline float dot_kv(const void *krow, uint32_t type, const float *qf, int d, int w) {
    if (type == TRIT_F16) {
        float k[ATT_MAX_DIM];
        const uint16_t *kh = krow;
        for (int i = 0; i < d; i++) k[i] = h2f(kh[i]);
        return go_dot_f16_w(w, d, k, qf);
    }
    return go_dot_f32_w(w, d, (const float *)krow, qf);
}

/* One query row, fewer than FA_TILE_Q rows in the batch: ggml's one_chunk kernel over keys
 * [ic0, ic1). Returns the running max M and sum S; acc holds the unnormalized V sum as f32
 * (converted from the fp16 accumulator for an F16 cache). */
HOT static void att_row_vec_range(const att_job *J, const float *qrow, const void *kh,
                                  const void *vh, int ic0, int ic1, float *acc, float *Mout,
                                  float *Sout) {
    const int D = J->head_dim;
    const bool f16 = J->kv_type == TRIT_F16;
    float q[ATT_MAX_DIM];
    for (int i = 0; i < D; i++) q[i] = f16 ? f16_round(qrow[i]) : qrow[i];
    memset(acc, 0, (size_t)D * sizeof(float));
    float S = 0.0f, M = -INFINITY;
    const int w = trit_numerics_table_get()->lanes;
    /* the NEON build's V sum is fp16 arithmetic (ggml_vec_scale_f16 / ggml_vec_mad_f16 with
     * fp16 vectors, the factor rounded to fp16) for whole steps of 32, f32 + rounding after */
    const int nh = f16 && trit_numerics_table_get()->f16_arith ? D & ~31 : 0;
    for (int ic = ic0; ic < ic1; ic++) {
        const float s =
            dot_kv(row_ptr(kh, J->kv_type, (size_t)ic, D), J->kv_type, q, D, w) * J->scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            const float Mold = M;
            M = s;
            ms = expf(Mold - M);
            if (f16) { /* ggml_vec_scale_f16: f32 multiply, rounded to fp16 */
                const float msh = f16_round(ms);
                for (int i = 0; i < nh; i++) acc[i] = f16_round(acc[i] * msh);
                for (int i = nh; i < D; i++) acc[i] = f16_round(acc[i] * ms);
            } else
                for (int i = 0; i < D; i++) acc[i] *= ms;
        } else {
            vs = expf(s - M);
        }
        if (f16) { /* ggml_vec_mad_f16: f32 fma, rounded to fp16 */
            const uint16_t *v = (const uint16_t *)vh + (size_t)ic * D;
            const float vsh = f16_round(vs);
            for (int i = 0; i < nh; i++) acc[i] = go_fma_h(h2f(v[i]), vsh, acc[i]);
            for (int i = nh; i < D; i++) acc[i] = f16_round(fmaf(h2f(v[i]), vs, acc[i]));
        } else {
            const float *v = (const float *)vh + (size_t)ic * D;
            for (int i = 0; i < D; i++) acc[i] = fmaf(v[i], vs, acc[i]);
        }
        S = fmaf(S, ms, vs); /* S*ms + vs, contracted as in ggml's build */
    }
    *Mout = M;
    *Sout = S;
}

static void att_row_vec(const att_job *J, const float *qrow, const void *kh, const void *vh,
                        int n_kv, float *dst) {
    float M, S;
    att_row_vec_range(J, qrow, kh, vh, 0, n_kv, dst, &M, &S);
    const float S_inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int i = 0; i < J->head_dim; i++) dst[i] *= S_inv;
}

/* One query row of a batch of >= FA_TILE_Q rows: ggml's tiled kernel (f32 throughout). Per
 * tile of 64 keys: K.Q as a sequential fma chain (simd_gemm), scaled; the tile max; the
 * running sum grows by the tile's ggml_vec_soft_max_f32 (v_expf, w-lane sums in double);
 * V accumulates as a sequential fma chain over the tile's keys (simd_gemm). */
HOT static void att_row_tiled(const att_job *J, const float *q, const void *kh, const void *vh,
                              int n_kv, float *dst) {
    const int D = J->head_dim;
    const bool f16 = J->kv_type == TRIT_F16;
    float acc[ATT_MAX_DIM], kq[FA_TILE_KV];
    const int w = trit_numerics_table_get()->lanes;
    memset(acc, 0, (size_t)D * sizeof(float));
    float S = 0.0f, M = -INFINITY;
    for (int ic = 0; ic < n_kv; ic += FA_TILE_KV) {
        const int nt = TRIT_MIN(FA_TILE_KV, n_kv - ic);
        float tmax = -INFINITY;
        for (int t = 0; t < FA_TILE_KV; t++) {
            if (t >= nt) {
                kq[t] = -INFINITY;
                continue;
            }
            const void *kr = row_ptr(kh, J->kv_type, (size_t)(ic + t), D);
            float s = 0.0f;
            if (f16) {
                const uint16_t *k = kr;
                for (int i = 0; i < D; i++) s = fmaf(q[i], h2f(k[i]), s);
            } else {
                const float *k = kr;
                for (int i = 0; i < D; i++) s = fmaf(q[i], k[i], s);
            }
            kq[t] = s * J->scale;
            tmax = kq[t] > tmax ? kq[t] : tmax;
        }
        const float Mnew = fmaxf(M, tmax);
        if (Mnew > M) {
            const float ms = expf(M - Mnew);
            for (int i = 0; i < D; i++) acc[i] *= ms;
            S *= ms;
        }
        M = Mnew;
        double sum = 0.0; /* ggml_vec_soft_max_f32: w lanes at a time, each hsum in double */
        for (int g = 0; g < FA_TILE_KV; g += w) {
            for (int t = g; t < g + w; t++) kq[t] = go_v_expf_w(w, kq[t] - M);
            sum += (double)(w == 16  ? go_reduce16(kq + g)
                            : w == 8 ? go_reduce8(kq + g)
                                     : go_reduce4(kq + g));
        }
        S = (float)((double)S + sum);
        for (int t = 0; t < nt; t++) {
            const float p = kq[t];
            if (f16) {
                const uint16_t *v = (const uint16_t *)vh + (size_t)(ic + t) * D;
                for (int i = 0; i < D; i++) acc[i] = fmaf(p, h2f(v[i]), acc[i]);
            } else {
                const float *v = (const float *)vh + (size_t)(ic + t) * D;
                for (int i = 0; i < D; i++) acc[i] = fmaf(p, v[i], acc[i]);
            }
        }
    }
    const float S_inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int i = 0; i < D; i++) dst[i] = acc[i] * S_inv;
}

static void att_worker(void *arg, int ith, int nth) {
    const att_job *J = arg;
    const int64_t units = (int64_t)J->n_tok * J->n_head;
    const int64_t per = (units + nth - 1) / nth;
    const int64_t u0 = per * ith, u1 = TRIT_MIN(units, u0 + per);
    const int group = J->n_head / J->n_head_kv;
    const size_t es = J->kv_type == TRIT_F16 ? 2 : 4;
    for (int64_t u = u0; u < u1; u++) {
        const int t = (int)(u / J->n_head), h = (int)(u % J->n_head);
        const int hk = h / group;
        const size_t off = (size_t)hk * J->n_ctx * J->head_dim * es;
        const void *kh = (const char *)J->kc + off;
        const void *vh = (const char *)J->vc + off;
        const int n_kv = J->pos0 + t + 1; /* causal: keys at positions <= this query's */
        const float *q = J->q + ((size_t)t * J->n_head + h) * J->head_dim;
        float *dst = J->out + ((size_t)t * J->n_head + h) * J->head_dim;
        if (J->tiled)
            att_row_tiled(J, q, kh, vh, n_kv, dst);
        else
            att_row_vec(J, q, kh, vh, n_kv, dst);
    }
}

/* ---- split-KV decode (ggml's use_split_kv_path) ----
 * One query token, KV view length L >= 512: chunk c of ceil(L / nth) keys goes to thread c,
 * which runs the one_chunk kernel for every head over its keys and leaves (M, S, V sum) as a
 * partial; the partials are then combined in chunk order with log-sum-exp rescaling
 * (ggml_flash_attn_ext_reduce_partials). L is llama.cpp's KV view, max(256, pad256(n_kv))
 * (its cache size is a multiple of 256, so the view's min(cache, ...) never binds), whatever
 * trit's own n_ctx: trit with N threads sums exactly as llama.cpp with N threads; with one
 * thread there is no split (ggml's single chunk is the unsplit result). */
/* a*so + b*sn as GCC contracted ggml's combine: fma(a, so, b*sn) (checked bit for bit against
 * ggml with 1..4 threads) */
#define SPLIT_COMBINE(a, so, b, sn) fmaf(a, so, (b) * (sn))
#define SPLIT_PAD                   256
#define SPLIT_MIN                   512

typedef struct split_job {
    const att_job *J;
    int n_kv, chunk, nth;
    float *partials;         /* [n_head][nth][2 + head_dim] */
    trit_att_range_fn range; /* a kernel set's one_chunk kernel; NULL: att_row_vec_range */
} split_job;

static void split_worker(void *arg, int ith, int nth) {
    const split_job *P = arg;
    const att_job *J = P->J;
    const int D = J->head_dim, group = J->n_head / J->n_head_kv;
    const size_t es = J->kv_type == TRIT_F16 ? 2 : 4;
    (void)nth;
    const int ic0 = ith * P->chunk, ic1 = TRIT_MIN(ic0 + P->chunk, P->n_kv);
    for (int h = 0; h < J->n_head; h++) {
        float *p = P->partials + ((size_t)h * P->nth + ith) * (size_t)(2 + D);
        if (ic0 >= ic1) { /* only masked cells (or past the view) */
            p[0] = -INFINITY;
            p[1] = 0.0f;
            continue;
        }
        const size_t off = (size_t)(h / group) * J->n_ctx * D * es;
        if (P->range)
            P->range(J->q + (size_t)h * D, (const char *)J->kc + off, (const char *)J->vc + off,
                     J->kv_type, D, J->scale, ic0, ic1, p + 2, &p[0], &p[1]);
        else
            att_row_vec_range(J, J->q + (size_t)h * D, (const char *)J->kc + off,
                              (const char *)J->vc + off, ic0, ic1, p + 2, &p[0], &p[1]);
    }
}

static void split_reduce(const split_job *P, int L) {
    const att_job *J = P->J;
    const int D = J->head_dim;
    for (int h = 0; h < J->n_head; h++) {
        float *o = J->out + (size_t)h * D;
        float M = -INFINITY, S = 0.0f;
        memset(o, 0, (size_t)D * sizeof(float));
        for (int c = 0; c < P->nth; c++) {
            if ((int64_t)c * P->chunk >= L) continue;
            const float *p = P->partials + ((size_t)h * P->nth + c) * (size_t)(2 + D);
            if (p[1] == 0.0f) continue;
            const float Mn = fmaxf(M, p[0]);
            const float so = expf(M - Mn), sn = expf(p[0] - Mn);
            for (int d = 0; d < D; d++) o[d] = SPLIT_COMBINE(o[d], so, p[2 + d], sn);
            S = SPLIT_COMBINE(S, so, p[1], sn);
            M = Mn;
        }
        if (S != 0.0f) {
            const float inv = 1.0f / S;
            for (int d = 0; d < D; d++) o[d] *= inv;
        }
    }
}

static _Thread_local float *tl_partials;
static _Thread_local size_t tl_partials_cap;

/* Whether (and in how many keys per chunk) a decode step is split; 0: not split. */
static int split_chunk(int n_ctx, int n_kv, int nth, int *L_out) {
    (void)n_ctx; /* llama.cpp pads its cache to 256 cells, so its view is never capped below */
    if (nth <= 1) return 0;
    const int L = TRIT_MAX(SPLIT_PAD, (n_kv + SPLIT_PAD - 1) / SPLIT_PAD * SPLIT_PAD);
    *L_out = L;
    return L >= SPLIT_MIN ? (L + nth - 1) / nth : 0;
}

bool trit_attention_splits(int n_ctx, int n_kv, int n_threads) {
    int L;
    return split_chunk(n_ctx, n_kv, n_threads, &L) > 0;
}

/* trit_attention with the split-KV chunks computed by range (NULL: att_row_vec_range). */
static void attention_core(trit_pool *pool, trit_att_range_fn range, const float *q, const void *kc,
                           const void *vc, uint32_t kv_type, int n_ctx, int n_head, int n_head_kv,
                           int head_dim, int pos0, int n_tok, float scale, float *out) {
    pthread_once(&g_f16_once, f16_table_init);
    if (n_tok <= 0 || head_dim > ATT_MAX_DIM || n_head_kv <= 0 || n_head % n_head_kv != 0) return;
    att_job J = {q,        kc,   vc,    kv_type, n_ctx, n_head, n_head_kv,
                 head_dim, pos0, n_tok, scale,   out,   false};
    /* ggml uses the tiled kernel when the batch has >= 64 query rows and DV is a multiple of
     * the f32 SIMD width (16 on AVX-512, the reference's native build; 4 on NEON) */
    J.tiled =
        n_tok >= FA_TILE_Q && head_dim % (trit_numerics_table_get()->lanes == 4 ? 4 : 16) == 0;
    const int nth = pool ? trit_pool_size(pool) : 1;
    int L = 0;
    const int chunk = n_tok == 1 ? split_chunk(n_ctx, pos0 + 1, nth, &L) : 0;
    if (chunk > 0) {
        const size_t need = (size_t)n_head * nth * (2 + (size_t)head_dim);
        if (need > tl_partials_cap) {
            free(tl_partials);
            tl_partials = xmalloc(need * sizeof(float));
            tl_partials_cap = need;
        }
        split_job P = {&J, pos0 + 1, chunk, nth, tl_partials, range};
        trit_pool_run(pool, split_worker, &P);
        split_reduce(&P, L);
        return;
    }
    if (pool && (int64_t)n_tok * n_head > 1)
        trit_pool_run(pool, att_worker, &J);
    else
        att_worker(&J, 0, 1);
}

void trit_attention(trit_pool *pool, const float *q, const void *kc, const void *vc,
                    uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int head_dim, int pos0,
                    int n_tok, float scale, float *out) {
    attention_core(pool, NULL, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, head_dim, pos0, n_tok,
                   scale, out);
}

void trit_attention_split(trit_pool *pool, trit_att_range_fn range, const float *q, const void *kc,
                          const void *vc, uint32_t kv_type, int n_ctx, int n_head, int n_head_kv,
                          int head_dim, int pos0, float scale, float *out) {
    attention_core(pool, range, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, head_dim, pos0, 1,
                   scale, out);
}

/* ---- attention, --numerics fast (scalar twin of trit_attention_fast_avx512) ----
 * Same contract as trit_attention, not bit-identical to ggml: every row (decode or batch) takes
 * one f32 path, with no fp16 rounding of Q or of the V accumulator, tiles of FA_TILE_KV keys:
 *   s[t]  = go_dot_lanes16(K row t, Q) * scale       (one 16-lane fma accumulator, reduce16)
 *   M'    = max(M, max_t s[t]); if M' > M: acc *= expf(M - M'), S *= expf(M - M')
 *   p[t]  = go_v_expf(s[t] - M'); S += p[t]          (float, key order)
 *   acc_i = fmaf(p[t], V[t][i], acc_i)               (key order)
 * then out = acc / S. Each (token, head) row is computed by one thread and claimed
 * dynamically, so the result does not depend on the thread count (no split-KV). The AVX-512
 * twin follows these orders exactly (test_kernels checks bytes); against the exact path the
 * NMSE is ~1e-13 for an F32 cache and 1e-7..1e-5 for F16 (mostly the exact path's own fp16
 * accumulator rounding; test: <= 5e-4, test-backend-ops' bound for flash attention). Needs head_dim
 * % 16 == 0, else it runs trit_attention. */
typedef struct fast_att_job {
    const att_job *J;
    atomic_int_fast64_t next;
} fast_att_job;

HOT static void fast_att_row(const att_job *J, const float *q, const void *kh, const void *vh,
                             int n_kv, float *dst) {
    const int D = J->head_dim;
    const bool f16 = J->kv_type == TRIT_F16;
    float acc[ATT_MAX_DIM], kf[ATT_MAX_DIM], s[FA_TILE_KV];
    memset(acc, 0, (size_t)D * sizeof(float));
    float S = 0.0f, M = -INFINITY;
    for (int ic = 0; ic < n_kv; ic += FA_TILE_KV) {
        const int nt = TRIT_MIN(FA_TILE_KV, n_kv - ic);
        float tmax = -INFINITY;
        for (int t = 0; t < nt; t++) {
            const void *kr = row_ptr(kh, J->kv_type, (size_t)(ic + t), D);
            if (f16)
                for (int i = 0; i < D; i++) kf[i] = h2f(((const uint16_t *)kr)[i]);
            s[t] = go_dot_lanes16(D, f16 ? kf : (const float *)kr, q) * J->scale;
            tmax = fmaxf(tmax, s[t]);
        }
        const float Mnew = fmaxf(M, tmax);
        if (Mnew > M) {
            const float ms = expf(M - Mnew);
            for (int i = 0; i < D; i++) acc[i] *= ms;
            S *= ms;
            M = Mnew;
        }
        for (int t = 0; t < nt; t++) {
            s[t] = go_v_expf(s[t] - M);
            S += s[t];
        }
        for (int t = 0; t < nt; t++) {
            const void *vr = row_ptr(vh, J->kv_type, (size_t)(ic + t), D);
            if (f16)
                for (int i = 0; i < D; i++)
                    acc[i] = fmaf(s[t], h2f(((const uint16_t *)vr)[i]), acc[i]);
            else
                for (int i = 0; i < D; i++) acc[i] = fmaf(s[t], ((const float *)vr)[i], acc[i]);
        }
    }
    const float S_inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int i = 0; i < D; i++) dst[i] = acc[i] * S_inv;
}

static void fast_att_worker(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    fast_att_job *F = arg;
    const att_job *J = F->J;
    const int64_t units = (int64_t)J->n_tok * J->n_head;
    const int group = J->n_head / J->n_head_kv;
    const size_t es = J->kv_type == TRIT_F16 ? 2 : 4;
    for (;;) {
        /* longest rows (last tokens) first, so causal rows of different lengths balance */
        const int64_t k = atomic_fetch_add_explicit(&F->next, 1, memory_order_relaxed);
        if (k >= units) break;
        const int64_t u = units - 1 - k;
        const int t = (int)(u / J->n_head), h = (int)(u % J->n_head);
        const size_t off = (size_t)(h / group) * J->n_ctx * J->head_dim * es;
        fast_att_row(J, J->q + ((size_t)t * J->n_head + h) * J->head_dim, (const char *)J->kc + off,
                     (const char *)J->vc + off, J->pos0 + t + 1,
                     J->out + ((size_t)t * J->n_head + h) * J->head_dim);
    }
}

void trit_attention_fast(trit_pool *pool, const float *q, const void *kc, const void *vc,
                         uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int head_dim,
                         int pos0, int n_tok, float scale, float *out) {
    pthread_once(&g_f16_once, f16_table_init);
    if (head_dim % 16) { /* lanes16 needs whole 16-lane steps: the exact path */
        trit_attention(pool, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, head_dim, pos0, n_tok,
                       scale, out);
        return;
    }
    if (n_tok <= 0 || head_dim > ATT_MAX_DIM || n_head_kv <= 0 || n_head % n_head_kv != 0) return;
    const att_job J = {q,        kc,   vc,    kv_type, n_ctx, n_head, n_head_kv,
                       head_dim, pos0, n_tok, scale,   out,   false};
    fast_att_job F = {.J = &J};
    atomic_init(&F.next, 0);
    if (pool && (int64_t)n_tok * n_head > 1)
        trit_pool_run(pool, fast_att_worker, &F);
    else
        fast_att_worker(&F, 0, 1);
}
