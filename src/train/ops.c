/* train/ops.c — forward/backward pairs of the training graph (see train.h), in the manner of
 * llm.c's train_gpt2.c: each *_fwd has a *_bwd that accumulates into the input gradients.
 * Shapes in the comments: N = tokens (B*T rows), C/I = row length, O = output features,
 * H = heads, D = head_dim. Threaded functions split their outputs between workers, never a
 * sum, so results do not depend on the number of threads. */
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* Eight independent partial sums so the compiler can vectorize without reassociating. */
static float dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* y[0..n) += a * x[0..n) */
static void axpy(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* [lo, hi) of worker ith out of nth over n items */
static void split(int n, int ith, int nth, int *lo, int *hi) {
    const int per = (n + nth - 1) / nth;
    *lo = TRIT_MIN(n, ith * per);
    *hi = TRIT_MIN(n, *lo + per);
}

static void run(trit_pool *pool, trit_pool_fn fn, void *arg) {
    if (pool)
        trit_pool_run(pool, fn, arg);
    else
        fn(arg, 0, 1);
}

/* ---- RMSNorm: y = x / sqrt(mean(x^2) + eps) * w   (x, y: [N, C]; w: [C]; rstd: [N]) ---- */
void trit_t_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int N, int C,
                        float eps) {
    for (int t = 0; t < N; t++) {
        const float *xt = x + (size_t)t * C;
        /* the engine's trit_rmsnorm order: sum of squares in double */
        double ss = 0.0;
        for (int i = 0; i < C; i++) ss += (double)(xt[i] * xt[i]);
        const float r = 1.0f / sqrtf((float)(ss / (double)C) + eps);
        rstd[t] = r;
        float *yt = y + (size_t)t * C;
        for (int i = 0; i < C; i++) yt[i] = (xt[i] * r) * w[i];
    }
}

/* dx += r * (w*dy) - x * r^3 / C * sum(w*dy*x);  dw += sum_t dy * x * r */
void trit_t_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
                        const float *rstd, int N, int C) {
    for (int t = 0; t < N; t++) {
        const float *xt = x + (size_t)t * C, *dyt = dy + (size_t)t * C;
        float *dxt = dx + (size_t)t * C;
        const float r = rstd[t];
        double dot_wdy_x = 0.0;
        for (int i = 0; i < C; i++) dot_wdy_x += (double)(w[i] * dyt[i] * xt[i]);
        const float k = (float)(dot_wdy_x * (double)r * r * r / C);
        for (int i = 0; i < C; i++) {
            dxt[i] += r * w[i] * dyt[i] - xt[i] * k;
            dw[i] += dyt[i] * xt[i] * r;
        }
    }
}

/* ---- matmul ----
 * Every product is one kernel, C[a, b] (+)= A[a, :] · B[b, :] over K ("NT": both operands
 * row-major along K), so each output is one dot product and threads split rows of C:
 *   forward  y[N, O]  = x[N, I] · w[O, I]^T          A = x,    B = w,    K = I
 *   backward dx[N, I] += dy[N, O] · (w^T)[I, O]^T   A = dy,   B = w^T,  K = O
 *            dw[O, I] += (dy^T)[O, N] · (x^T)[I, N]^T  A = dy^T, B = x^T, K = N
 * The transposes cost O(size) against O(N·I·O) for the product. */
typedef void (*nt_fn)(float *C, size_t ldc, const float *A, const float *B, int a0, int a1, int nb,
                      int K, bool acc);

/* Scalar twin: one dot per output, eight partial sums (the AVX2 kernel's lane layout). */
void trit_t_nt_ref(float *C, size_t ldc, const float *A, const float *B, int a0, int a1, int nb,
                   int K, bool acc) {
    for (int a = a0; a < a1; a++)
        for (int b = 0; b < nb; b++) {
            const float d = dot(A + (size_t)a * K, B + (size_t)b * K, K);
            float *c = C + (size_t)a * ldc + b;
            *c = acc ? *c + d : d;
        }
}

static nt_fn nt_kernel(void) {
    static nt_fn fn;
    if (!fn) {
#if defined(__x86_64__) /* ops_avx2.c is built for x86-64 targets only (Makefile) */
        const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        fn = avx2 && !getenv("TRIT_TRAIN_SCALAR") ? trit_t_nt_avx2 : trit_t_nt_ref;
#else
        fn = trit_t_nt_ref;
#endif
    }
    return fn;
}

typedef struct {
    float *C;
    const float *A, *B;
    int na, nb, K;
    bool acc;
    nt_fn fn;
} nt_job;

static void nt_worker(void *arg, int ith, int nth) {
    const nt_job *j = arg;
    int lo, hi;
    split(j->na, ith, nth, &lo, &hi);
    /* columns in blocks of 64 rows of B, so the block stays in cache across all rows of A */
    for (int b0 = 0; b0 < j->nb; b0 += 64) {
        const int nb = TRIT_MIN(64, j->nb - b0);
        j->fn(j->C + b0, (size_t)j->nb, j->A, j->B + (size_t)b0 * j->K, lo, hi, nb, j->K, j->acc);
    }
}

static void nt(trit_pool *pool, float *C, const float *A, const float *B, int na, int nb, int K,
               bool acc) {
    nt_job j = {C, A, B, na, nb, K, acc, nt_kernel()};
    run(pool, nt_worker, &j);
}

/* dst[c, r] = src[r, c]   (src: [R, Cn]) */
static float *transpose(const float *src, int R, int Cn) {
    float *t = xmalloc((size_t)R * Cn * sizeof(float));
    for (int r0 = 0; r0 < R; r0 += 32)
        for (int c0 = 0; c0 < Cn; c0 += 32)
            for (int r = r0; r < TRIT_MIN(R, r0 + 32); r++)
                for (int c = c0; c < TRIT_MIN(Cn, c0 + 32); c++)
                    t[(size_t)c * R + r] = src[(size_t)r * Cn + c];
    return t;
}

/* y[N, O] = x[N, I] · w[O, I]^T (w is a GGUF weight: ne0 = I, ne1 = O) */
void trit_t_matmul_fwd(trit_pool *pool, float *y, const float *x, const float *w, int N, int I,
                       int O) {
    nt(pool, y, x, w, N, O, I, false);
}

/* dx[N, I] += dy[N, O] · w[O, I];  dw[O, I] += dy^T · x. Either may be NULL. */
void trit_t_matmul_bwd(trit_pool *pool, float *dx, float *dw, const float *dy, const float *x,
                       const float *w, int N, int I, int O) {
    if (dx) {
        float *wt = transpose(w, O, I); /* [I, O] */
        nt(pool, dx, dy, wt, N, I, O, true);
        free(wt);
    }
    if (dw) {
        float *dyt = transpose(dy, N, O); /* [O, N] */
        float *xt = transpose(x, N, I);   /* [I, N] */
        nt(pool, dw, dyt, xt, O, I, N, true);
        free(dyt);
        free(xt);
    }
}

/* ---- RoPE, NEOX mode (pairs i, i + D/2), position = row index within its sequence ----
 * Angles as the engine's trit_rope computes them: theta_i = pos * base^(-2i/D) by repeated
 * multiplication in float. x: [N, H*D] with N = B*T. */
static void rope_table(float *cs, int pos, int D, float freq_base) {
    const float theta_scale = powf(freq_base, -2.0f / (float)D);
    float theta = (float)pos;
    for (int i = 0; i < D / 2; i++) {
        cs[2 * i] = cosf(theta);
        cs[2 * i + 1] = sinf(theta);
        theta *= theta_scale;
    }
}

static void rope_apply(float *x, int N, int T, int n_head, int D, float freq_base, float sign) {
    float cs[1024];
    const int half = D / 2;
    for (int r = 0; r < N; r++) {
        rope_table(cs, r % T, D, freq_base);
        for (int h = 0; h < n_head; h++) {
            float *v = x + (size_t)r * n_head * D + (size_t)h * D;
            for (int i = 0; i < half; i++) {
                const float c = cs[2 * i], s = sign * cs[2 * i + 1];
                const float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c - x1 * s;
                v[i + half] = x0 * s + x1 * c;
            }
        }
    }
}

void trit_t_rope_fwd(float *x, int N, int T, int n_head, int head_dim, float freq_base) {
    rope_apply(x, N, T, n_head, head_dim, freq_base, 1.0f);
}

/* The rotation is orthogonal: its gradient is the rotation by -theta (in place on dx). */
void trit_t_rope_bwd(float *dx, int N, int T, int n_head, int head_dim, float freq_base) {
    rope_apply(dx, N, T, n_head, head_dim, freq_base, -1.0f);
}

/* ---- causal attention ----
 * q, k, v, out: [B*T, H*D]; att: [B, H, T, T] softmax probabilities (row t, columns <= t).
 * Workers take (b, h) pairs: each writes only its own head slices. */
typedef struct {
    float *out, *att, *dq, *dk, *dv, *datt;
    const float *q, *k, *v, *dout, *att_c;
    int B, T, H, D;
} att_job;

static void att_fwd_worker(void *arg, int ith, int nth) {
    const att_job *j = arg;
    const int T = j->T, H = j->H, D = j->D, C = H * D;
    const float scale = 1.0f / sqrtf((float)D);
    int lo, hi;
    split(j->B * H, ith, nth, &lo, &hi);
    for (int bh = lo; bh < hi; bh++) {
        const int b = bh / H, h = bh % H;
        for (int t = 0; t < T; t++) {
            const float *qt = j->q + ((size_t)b * T + t) * C + h * D;
            float *p = j->att + ((size_t)bh * T + t) * T;
            float mx = -INFINITY;
            for (int s = 0; s <= t; s++) {
                p[s] = dot(qt, j->k + ((size_t)b * T + s) * C + h * D, D) * scale;
                if (p[s] > mx) mx = p[s];
            }
            float sum = 0.0f;
            for (int s = 0; s <= t; s++) {
                p[s] = expf(p[s] - mx);
                sum += p[s];
            }
            const float inv = 1.0f / sum;
            for (int s = 0; s <= t; s++) p[s] *= inv;
            for (int s = t + 1; s < T; s++) p[s] = 0.0f;
            float *ot = j->out + ((size_t)b * T + t) * C + h * D;
            memset(ot, 0, (size_t)D * sizeof(float));
            for (int s = 0; s <= t; s++) axpy(ot, p[s], j->v + ((size_t)b * T + s) * C + h * D, D);
        }
    }
}

void trit_t_attention_fwd(trit_pool *pool, float *out, float *att, const float *q, const float *k,
                          const float *v, int B, int T, int n_head, int head_dim) {
    att_job j = {
        .out = out, .att = att, .q = q, .k = k, .v = v, .B = B, .T = T, .H = n_head, .D = head_dim};
    run(pool, att_fwd_worker, &j);
}

/* dv[s] += p[t,s] dout[t]; dp[t,s] = dout[t]·v[s]; dscore = p (dp - sum_s p dp);
 * dq[t] += scale dscore k[s]; dk[s] += scale dscore q[t]. datt: scratch [B, H, T, T]. */
static void att_bwd_worker(void *arg, int ith, int nth) {
    const att_job *j = arg;
    const int T = j->T, H = j->H, D = j->D, C = H * D;
    const float scale = 1.0f / sqrtf((float)D);
    int lo, hi;
    split(j->B * H, ith, nth, &lo, &hi);
    for (int bh = lo; bh < hi; bh++) {
        const int b = bh / H, h = bh % H;
        for (int t = 0; t < T; t++) {
            const size_t rt = ((size_t)b * T + t) * C + h * D;
            const float *p = j->att_c + ((size_t)bh * T + t) * T;
            float *dp = j->datt + ((size_t)bh * T + t) * T;
            const float *dot_ = j->dout + rt;
            float pdp = 0.0f;
            for (int s = 0; s <= t; s++) {
                const size_t rs = ((size_t)b * T + s) * C + h * D;
                dp[s] = dot(dot_, j->v + rs, D);
                axpy(j->dv + rs, p[s], dot_, D);
                pdp += p[s] * dp[s];
            }
            for (int s = 0; s <= t; s++) {
                const size_t rs = ((size_t)b * T + s) * C + h * D;
                const float ds = p[s] * (dp[s] - pdp) * scale;
                axpy(j->dq + rt, ds, j->k + rs, D);
                axpy(j->dk + rs, ds, j->q + rt, D);
            }
        }
    }
}

void trit_t_attention_bwd(trit_pool *pool, float *dq, float *dk, float *dv, float *datt,
                          const float *dout, const float *att, const float *q, const float *k,
                          const float *v, int B, int T, int n_head, int head_dim) {
    att_job j = {.dq = dq,
                 .dk = dk,
                 .dv = dv,
                 .datt = datt,
                 .dout = dout,
                 .att_c = att,
                 .q = q,
                 .k = k,
                 .v = v,
                 .B = B,
                 .T = T,
                 .H = n_head,
                 .D = head_dim};
    run(pool, att_bwd_worker, &j);
}

/* ---- SwiGLU: h = silu(g) * u = g * sigmoid(g) * u   ([N*F] each) ---- */
void trit_t_swiglu_fwd(float *h, const float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* dg += dh u sig (1 + g (1 - sig)); du += dh silu(g) */
void trit_t_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u,
                       size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float sig = 1.0f / (1.0f + expf(-g[i]));
        dg[i] += dh[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
        du[i] += dh[i] * g[i] * sig;
    }
}

/* ---- fake quantizers ---- */

/* int8 absmax per block of 256 values of each row (ggml Q8_K's layout; the whole row when
 * C < 256): x = round(x * 127 / amax) * amax / 127. x: [N, C]. */
void trit_t_act_quant(float *x, int N, int C) {
    for (int t = 0; t < N; t++) {
        for (int b0 = 0; b0 < C; b0 += 256) {
            float *v = x + (size_t)t * C + b0;
            const int n = TRIT_MIN(256, C - b0);
            float amax = 0.0f;
            for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(v[i]));
            if (amax == 0.0f) continue;
            const float is = 127.0f / amax, d = amax / 127.0f;
            for (int i = 0; i < n; i++) v[i] = roundf(v[i] * is) * d;
        }
    }
}
