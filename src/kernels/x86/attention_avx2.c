/* kernels/x86 AVX2 (+FMA, F16C) — exact attention for batches of >= 64 query rows.
 *
 * Contract: trit_attention_avx2 is trit_attention (ops.c) bit for bit. It computes ggml's tiled
 * kernel (ops.c att_row_tiled: n_tok >= FA_TILE_Q, head_dim % 16 == 0, F16 or F32 cache) with
 * vectors; every other call (decode, short batches, split-KV, other shapes or types) goes to
 * trit_attention unchanged. Per row the orders are ops.c's: each K.Q dot is the sequential fma
 * chain over head_dim (here lane j of a vector runs key j's chain over a transposed K tile);
 * the tile max in key order; go_v_expf per key (v_expf8 below, equal lane for lane); the tile
 * sum as four go_reduce16 sums added in double (under the avx2 numerics table: go_v_expf8 per
 * key by v_expf8_b and eight go_reduce8 sums, as the AVX2 build's ggml_vec_soft_max_f32);
 * V accumulated per element in key order (the
 * vector fmas are elementwise). Compiled with -mavx2 -mfma -mf16c; only reached through the
 * AVX2 kernel set, after kernels.c has checked the CPU. */
#include "kernels/kernels.h"
#include "kernels/x86/att_units.h"
#include "kernels/ref/ggml_order.h"

#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#define INL static inline __attribute__((always_inline))

#define ATT_TILE  64   /* keys per tile: ops.c FA_TILE_KV (GGML_FA_TILE_KV) */
#define ATT_ROWS  4    /* query rows of one head per work unit: they share each K tile */
#define ATT_MAX_D 1024 /* ops.c ATT_MAX_DIM */

/* go_v_expf (ref/ggml_order.h) on 8 lanes: its statements as vectors, so each lane equals
 * go_v_expf of it. The power of two is built from the exponent bits, exact for integral n in
 * [-126, 127]; |n| > 192 (masked keys: x = -inf) gives go_v_expf's 0 or infinity. When a lane
 * is neither (a subnormal or huge result, NaN), the 8 lanes are computed by go_v_expf itself,
 * so the result is go_v_expf's in every case. */
INL __m256 v_expf8(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 in_range = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_set1_ps(-126.0f), _CMP_GE_OQ),
                                          _mm256_cmp_ps(n, _mm256_set1_ps(127.0f), _CMP_LE_OQ));
    const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 big = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    if (_mm256_movemask_ps(_mm256_or_ps(in_range, big)) != 0xFF) { /* go_v_expf's ldexpf or NaN */
        float l[8];
        _mm256_storeu_ps(l, x);
        for (int i = 0; i < 8; i++) l[i] = go_v_expf(l[i]);
        return _mm256_loadu_ps(l);
    }
    /* fnmadd(n, c, x) is fma(-n, c, x) */
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
            _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    /* 2^n from its exponent field; j * 2^n is one rounding, as go_v_expf's product */
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    const __m256 res = _mm256_mul_ps(j, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
    if (_mm256_movemask_ps(big) == 0) return res;
    /* |n| > 192: 0 below, infinity above (go_v_expf's first branch) */
    const __m256 alt = _mm256_blendv_ps(_mm256_set1_ps(INFINITY), _mm256_setzero_ps(),
                                        _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ));
    return _mm256_blendv_ps(res, alt, big);
}

void trit_v_expf8_avx2(const float *x, float *y) {
    _mm256_storeu_ps(y, v_expf8(_mm256_loadu_ps(x)));
}

/* go_v_expf8 (the AVX2 build's ggml_v_expf, ref/ggml_order.h) on 8 lanes: its statements as
 * vectors. Lanes with |n| <= 126 give fma(j, k, k) whatever the other lanes are, so the
 * two-factor path runs (for all lanes, each then picked by its own |n|) only when some lane
 * needs it. */
INL __m256 v_expf8_b(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_set1_epi32(0x3f800000)));
    const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 c = _mm256_cmp_ps(abs_n, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
            _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    const __m256 plain = _mm256_fmadd_ps(j, k, k);
    if (!_mm256_movemask_ps(c)) return plain;
    const __m256i g =
        _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                         _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 d = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
    return _mm256_blendv_ps(_mm256_blendv_ps(plain, scaled, c), _mm256_mul_ps(s1, s1), d);
}

void trit_v_expf8b_avx2(const float *x, float *y) {
    _mm256_storeu_ps(y, v_expf8_b(_mm256_loadu_ps(x)));
}

/* 8 elements of a K or V row (fp16 or f32) as floats; fp16 -> f32 is exact (= h2f). */
INL __m256 ld8(const void *row, bool f16, int i) {
    return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)))
               : _mm256_loadu_ps((const float *)row + i);
}

/* In-register transpose of an 8 x 8 float block: r[i] lane j becomes r[j] lane i (32-bit and
 * 64-bit interleaves inside the 128-bit halves, then a swap of halves). */
INL void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    /* t[2p], half h: elements 4h, 4h+1 of rows 2p, 2p+1 interleaved; t[2p+1]: 4h+2, 4h+3 */
#pragma GCC unroll 8
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    /* u[4g + c], half h: element 4h + c of rows 4g .. 4g+3 */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

/* A tile's K rows transposed: kt[(g * D + i) * 8 + j] = element i of key 8g + j (groups of 8
 * keys, D floats each, packed). Keys past nt repeat key nt - 1 (their dots are discarded). */
static void kt_fill(const char *k0, size_t rs, bool f16, int D, int nt, float *kt) {
    for (int g = 0; g * 8 < nt; g++)
        for (int ib = 0; ib < D; ib += 8) {
            __m256 r[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                r[j] = ld8(k0 + (size_t)TRIT_MIN(8 * g + j, nt - 1) * rs, f16, ib);
            transpose8(r);
            float *o = kt + ((size_t)g * D + ib) * 8;
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) _mm256_store_ps(o + 8 * i, r[i]);
        }
}

/* K.Q of NG groups (8 keys each) from group g of a transposed tile, for two query rows at once
 * (they share each K load): lane j of acc[r][c] is the chain s = fma(q_r[i], k[i], s), i
 * ascending from s = 0, of key 8(g + c) + j. o0, o1: the rows' ATT_TILE outputs. */
INL void kq_groups(const float *q0, const float *q1, const float *kt, int D, int g, const int NG,
                   float *o0, float *o1) {
    __m256 a0[4], a1[4];
#pragma GCC unroll 4
    for (int c = 0; c < NG; c++) a0[c] = a1[c] = _mm256_setzero_ps();
    for (int i = 0; i < D; i++) {
        const __m256 x0 = _mm256_broadcast_ss(q0 + i), x1 = _mm256_broadcast_ss(q1 + i);
#pragma GCC unroll 4
        for (int c = 0; c < NG; c++) {
            const __m256 k = _mm256_load_ps(kt + ((size_t)(g + c) * D + i) * 8);
            a0[c] = _mm256_fmadd_ps(x0, k, a0[c]);
            a1[c] = _mm256_fmadd_ps(x1, k, a1[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NG; c++) {
        _mm256_storeu_ps(o0 + 8 * (g + c), a0[c]);
        _mm256_storeu_ps(o1 + 8 * (g + c), a1[c]);
    }
}

/* K.Q of the first nt keys of the tile for two query rows (lanes past nt are garbage): groups
 * four at a time (8 independent chains per row pair), the last 1-3 groups together. */
static void kq_dots2(const float *q0, const float *q1, const float *kt, int D, int nt, float *o0,
                     float *o1) {
    const int ng = (nt + 7) / 8;
    int g = 0;
    for (; g + 4 <= ng; g += 4) kq_groups(q0, q1, kt, D, g, 4, o0, o1);
    /* the remainder as one call with a constant group count, so the accumulators stay in
     * registers */
    if (ng - g == 3)
        kq_groups(q0, q1, kt, D, g, 3, o0, o1);
    else if (ng - g == 2)
        kq_groups(q0, q1, kt, D, g, 2, o0, o1);
    else if (ng - g == 1)
        kq_groups(q0, q1, kt, D, g, 1, o0, o1);
}

/* One row's softmax step over a tile (ops.c att_row_tiled, same statements): kq[0, nt) raw
 * dots in, scaled; lanes past nt -inf; the running max M and sum S updated and acc rescaled when
 * the max grows; kq out: the tile's probabilities go_v_expf(kq - M). */
static void softmax_tile(float *kq, int nt, float scale, float *M, float *S, float *acc, int D) {
    float tmax = -INFINITY;
    for (int t = 0; t < nt; t++) {
        kq[t] = kq[t] * scale;
        tmax = kq[t] > tmax ? kq[t] : tmax;
    }
    for (int t = nt; t < ATT_TILE; t++) kq[t] = -INFINITY;
    const float Mnew = fmaxf(*M, tmax);
    if (Mnew > *M) { /* the max grew: earlier keys' weights shrink by expf(M - Mnew) */
        const float ms = expf(*M - Mnew);
        const __m256 vms = _mm256_set1_ps(ms);
        for (int i = 0; i < D; i += 8)
            _mm256_store_ps(acc + i, _mm256_mul_ps(_mm256_load_ps(acc + i), vms));
        *S *= ms;
    }
    *M = Mnew;
    const __m256 vm = _mm256_set1_ps(Mnew);
    double sum = 0.0;
    if (trit_numerics_table_get()->lanes == 8) { /* the AVX2 build: its v_expf, 8-lane sums */
        for (int g = 0; g < ATT_TILE; g += 8) {
            _mm256_storeu_ps(kq + g, v_expf8_b(_mm256_sub_ps(_mm256_loadu_ps(kq + g), vm)));
            sum += (double)go_reduce8(kq + g);
        }
        *S = (float)((double)*S + sum);
        return;
    }
    for (int g = 0; g < ATT_TILE; g += 16) {
        _mm256_storeu_ps(kq + g, v_expf8(_mm256_sub_ps(_mm256_loadu_ps(kq + g), vm)));
        _mm256_storeu_ps(kq + g + 8, v_expf8(_mm256_sub_ps(_mm256_loadu_ps(kq + g + 8), vm)));
        sum += (double)go_reduce16(kq + g);
    }
    *S = (float)((double)*S + sum);
}

/* acc_r[i] = fma(p_r[t], v_t[i], acc_r[i]) for keys t in [t0, t1) ascending, elements
 * [ib, ib + 8 NB) of NR (1 or 2) rows sharing each V load; the accumulators stay in registers
 * across the keys. v0: V row of key 0 of the tile, rs bytes apart. */
INL void v_block(const char *v0, size_t rs, bool f16, int t0, int t1, int ib, const int NB,
                 const int NR, const float *p0, const float *p1, float *acc0, float *acc1) {
    __m256 a0[4], a1[4];
#pragma GCC unroll 4
    for (int c = 0; c < NB; c++) {
        a0[c] = _mm256_load_ps(acc0 + ib + 8 * c);
        if (NR == 2) a1[c] = _mm256_load_ps(acc1 + ib + 8 * c);
    }
    for (int t = t0; t < t1; t++) {
        const char *vr = v0 + (size_t)t * rs;
        const __m256 x0 = _mm256_broadcast_ss(p0 + t);
        const __m256 x1 = NR == 2 ? _mm256_broadcast_ss(p1 + t) : x0;
#pragma GCC unroll 4
        for (int c = 0; c < NB; c++) {
            const __m256 v = ld8(vr, f16, ib + 8 * c);
            a0[c] = _mm256_fmadd_ps(x0, v, a0[c]);
            if (NR == 2) a1[c] = _mm256_fmadd_ps(x1, v, a1[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NB; c++) {
        _mm256_store_ps(acc0 + ib + 8 * c, a0[c]);
        if (NR == 2) _mm256_store_ps(acc1 + ib + 8 * c, a1[c]);
    }
}

/* V for keys [t0, t1) of a tile over all D elements (D % 16 == 0): blocks of 32, then 16. */
INL void v_rows(const char *v0, size_t rs, bool f16, int D, int t0, int t1, const int NR,
                const float *p0, const float *p1, float *acc0, float *acc1) {
    int ib = 0;
    for (; ib + 32 <= D; ib += 32) v_block(v0, rs, f16, t0, t1, ib, 4, NR, p0, p1, acc0, acc1);
    if (ib < D) v_block(v0, rs, f16, t0, t1, ib, 2, NR, p0, p1, acc0, acc1);
}

typedef struct att2_job {
    att_call c; /* the call and its work units (x86/att_units.h) */
    bool f16;
    int head_dim;
    float scale;
} att2_job;

/* ggml's tiled kernel for nr (<= ATT_ROWS) consecutive query rows of one head, row r seeing
 * n_kv0 + r keys (q and dst rows q_stride floats apart): each K tile is transposed once for
 * the rows; rows go in pairs through K.Q and V (shared loads); every row keeps its own max,
 * sum and V accumulator in ops.c's order. */
static void att2_tiled(const att2_job *J, const float *q, size_t q_stride, const void *kh,
                       const void *vh, int n_kv0, int nr, float *dst) {
    const int D = J->head_dim;
    const size_t rs = (size_t)D * (J->f16 ? 2 : 4);
    static _Thread_local float kt[ATT_TILE * ATT_MAX_D] __attribute__((aligned(32)));
    float acc[ATT_ROWS][ATT_MAX_D] __attribute__((aligned(32)));
    float kq[ATT_ROWS][ATT_TILE];
    float S[ATT_ROWS], M[ATT_ROWS];
    for (int r = 0; r < nr; r++) {
        memset(acc[r], 0, (size_t)D * sizeof(float));
        S[r] = 0.0f, M[r] = -INFINITY;
    }
    const int n_kv_max = n_kv0 + nr - 1;
    for (int ic = 0; ic < n_kv_max; ic += ATT_TILE) {
        const int nt_max = TRIT_MIN(ATT_TILE, n_kv_max - ic);
        kt_fill((const char *)kh + (size_t)ic * rs, rs, J->f16, D, nt_max, kt);
        int nt[ATT_ROWS];
        for (int r = 0; r < nr; r++) nt[r] = TRIT_MAX(0, TRIT_MIN(ATT_TILE, n_kv0 + r - ic));
        /* K.Q for row pairs (an odd last row is paired with itself) */
        for (int r = 0; r < nr; r += 2) {
            const int r1 = TRIT_MIN(r + 1, nr - 1);
            kq_dots2(q + (size_t)r * q_stride, q + (size_t)r1 * q_stride, kt, D,
                     TRIT_MAX(nt[r], nt[r1]), kq[r], kq[r1]);
        }
        for (int r = 0; r < nr; r++)
            if (nt[r] > 0) softmax_tile(kq[r], nt[r], J->scale, &M[r], &S[r], acc[r], D);
        /* V: keys both rows of a pair see together, then the longer row's rest alone */
        const char *v0 = (const char *)vh + (size_t)ic * rs;
        for (int r = 0; r + 1 < nr; r += 2) {
            const int common = TRIT_MIN(nt[r], nt[r + 1]);
            v_rows(v0, rs, J->f16, D, 0, common, 2, kq[r], kq[r + 1], acc[r], acc[r + 1]);
            const int lr = nt[r] > nt[r + 1] ? r : r + 1;
            v_rows(v0, rs, J->f16, D, common, nt[lr], 1, kq[lr], NULL, acc[lr], NULL);
        }
        if (nr % 2) /* the odd last row */
            v_rows(v0, rs, J->f16, D, 0, nt[nr - 1], 1, kq[nr - 1], NULL, acc[nr - 1], NULL);
    }
    for (int r = 0; r < nr; r++) {
        const __m256 inv = _mm256_set1_ps(S[r] == 0.0f ? 0.0f : 1.0f / S[r]);
        for (int i = 0; i < D; i += 8)
            _mm256_storeu_ps(dst + (size_t)r * q_stride + i,
                             _mm256_mul_ps(_mm256_load_ps(acc[r] + i), inv));
    }
}

/* Pool worker: units of ATT_ROWS consecutive tokens of one head (x86/att_units.h). */
static void att2_worker(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    att2_job *J = arg;
    att_unit u;
    while (att_next_unit(&J->c, &u)) att2_tiled(J, u.q, u.stride, u.kh, u.vh, u.n_kv0, u.nr, u.dst);
}

void trit_attention_avx2(trit_pool *pool, const float *q, const void *kc, const void *vc,
                         uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int head_dim,
                         int pos0, int n_tok, float scale, float *out) {
    /* only ops.c's tiled path is vectorized here (its rule: >= 64 query rows, head_dim % 16) */
    if (n_tok < ATT_TILE || head_dim % 16 || head_dim > ATT_MAX_D ||
        (kv_type != TRIT_F16 && kv_type != TRIT_F32) || n_head_kv <= 0 || n_head % n_head_kv) {
        trit_attention(pool, q, kc, vc, kv_type, n_ctx, n_head, n_head_kv, head_dim, pos0, n_tok,
                       scale, out);
        return;
    }
    att2_job J = {.c = {.q = q,
                        .kc = kc,
                        .vc = vc,
                        .out = out,
                        .n_ctx = n_ctx,
                        .n_head = n_head,
                        .n_head_kv = n_head_kv,
                        .head_dim = head_dim,
                        .pos0 = pos0,
                        .n_tok = n_tok,
                        .es = kv_type == TRIT_F16 ? 2 : 4,
                        .rows = ATT_ROWS},
                  .f16 = kv_type == TRIT_F16,
                  .head_dim = head_dim,
                  .scale = scale};
    atomic_init(&J.c.next, 0);
    if (pool)
        trit_pool_run(pool, att2_worker, &J);
    else
        att2_worker(&J, 0, 1);
}
