/* train/ops_avx2.c — the training matmul kernel (train.h: trit_t_nt_*) with AVX2 + FMA.
 * Compiled with -mavx2 -mfma (Makefile: files named *_avx2*); called only when the CPU has
 * both (ops.c checks). Four rows of A times two rows of B per inner loop: 8 accumulators of
 * 8 lanes, lane j summing the elements k = j (mod 8) like the scalar twin trit_t_nt_ref,
 * reduced in the twin's order ((0+4)+(1+5))+((2+6)+(3+7)); only FMA rounding differs. */
#include "train/train.h"

#include <immintrin.h>

static inline float hsum(__m256 v) {
    float l[8];
    _mm256_storeu_ps(l, v);
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
}

/* dot of the tail k0..K (scalar, in order) */
static inline float tail(const float *a, const float *b, int k0, int K) {
    float s = 0.0f;
    for (int k = k0; k < K; k++) s += a[k] * b[k];
    return s;
}

static inline void put(float *c, float v, bool acc) {
    *c = acc ? *c + v : v;
}

void trit_t_nt_avx2(float *C, size_t ldc, const float *A, const float *B, int a0, int a1, int nb,
                    int K, bool acc) {
    const int K8 = K & ~7;
    int a = a0;
    for (; a + 4 <= a1; a += 4) {
        const float *r0 = A + (size_t)a * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
        int b = 0;
        for (; b + 2 <= nb; b += 2) {
            const float *c0 = B + (size_t)b * K, *c1 = c0 + K;
            __m256 s00 = _mm256_setzero_ps(), s01 = s00, s10 = s00, s11 = s00;
            __m256 s20 = s00, s21 = s00, s30 = s00, s31 = s00;
            for (int k = 0; k < K8; k += 8) {
                const __m256 b0 = _mm256_loadu_ps(c0 + k), b1 = _mm256_loadu_ps(c1 + k);
                __m256 x = _mm256_loadu_ps(r0 + k);
                s00 = _mm256_fmadd_ps(x, b0, s00);
                s01 = _mm256_fmadd_ps(x, b1, s01);
                x = _mm256_loadu_ps(r1 + k);
                s10 = _mm256_fmadd_ps(x, b0, s10);
                s11 = _mm256_fmadd_ps(x, b1, s11);
                x = _mm256_loadu_ps(r2 + k);
                s20 = _mm256_fmadd_ps(x, b0, s20);
                s21 = _mm256_fmadd_ps(x, b1, s21);
                x = _mm256_loadu_ps(r3 + k);
                s30 = _mm256_fmadd_ps(x, b0, s30);
                s31 = _mm256_fmadd_ps(x, b1, s31);
            }
            float *c = C + (size_t)a * ldc + b;
            put(c, hsum(s00) + tail(r0, c0, K8, K), acc);
            put(c + 1, hsum(s01) + tail(r0, c1, K8, K), acc);
            put(c + ldc, hsum(s10) + tail(r1, c0, K8, K), acc);
            put(c + ldc + 1, hsum(s11) + tail(r1, c1, K8, K), acc);
            put(c + 2 * ldc, hsum(s20) + tail(r2, c0, K8, K), acc);
            put(c + 2 * ldc + 1, hsum(s21) + tail(r2, c1, K8, K), acc);
            put(c + 3 * ldc, hsum(s30) + tail(r3, c0, K8, K), acc);
            put(c + 3 * ldc + 1, hsum(s31) + tail(r3, c1, K8, K), acc);
        }
        /* an odd last column */
        if (b < nb) trit_t_nt_ref(C + b, ldc, A, B + (size_t)b * K, a, a + 4, 1, K, acc);
    }
    if (a < a1) trit_t_nt_ref(C, ldc, A, B, a, a1, nb, K, acc);
}
