/* bench/kbench — kernel micro-benchmark: streaming-read bandwidth, then trit_matmul throughput
 * (GB/s of weights, GMAC/s) per weight type for decode (1 token) and prefill (n tokens) shapes.
 * Usage: kbench [-t THREADS] [-k ref|avx2|avx512|best] [-n TOKENS] [--bw-only]
 * Output lines are "key value" pairs so scripts can grep them. */
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint64_t *p;
    size_t n; /* uint64 words per thread slice */
    uint64_t sink[16];
} bw_job;

static void bw_read(void *arg, int ith, int nth) {
    bw_job *j = arg;
    const size_t per = j->n / (size_t)nth;
    const uint64_t *p = j->p + per * (size_t)ith;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 8 <= per; i += 8) {
        a ^= p[i] + p[i + 4];
        b ^= p[i + 1] + p[i + 5];
        c ^= p[i + 2] + p[i + 6];
        d ^= p[i + 3] + p[i + 7];
    }
    j->sink[ith & 15] = a ^ b ^ c ^ d;
}

/* Streaming-read bandwidth (GB/s) over a buffer much larger than the caches. */
double kbench_bandwidth(trit_pool *pool, size_t bytes, int reps) {
    uint64_t *buf = xaligned_alloc(64, bytes);
    memset(buf, 1, bytes);
    bw_job j = {.p = buf, .n = bytes / 8};
    trit_pool_run(pool, bw_read, &j); /* warm-up (page faults) */
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = trit_now_s();
        trit_pool_run(pool, bw_read, &j);
        double gbs = (double)bytes / (trit_now_s() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}

static void bench_type(const trit_kernels *k, trit_pool *pool, uint32_t wt, int64_t n_in,
                       int64_t n_out, int64_t n_tok, int reps) {
    const size_t rb = trit_row_size(wt, n_in);
    char *w = xaligned_alloc(64, rb * (size_t)n_out + 64);
    for (size_t i = 0; i < rb * (size_t)n_out; i++) w[i] = (char)(i * 2654435761u >> 13);
    if (wt == TRIT_TQ2_0 || wt == TRIT_TQ1_0 || wt == TRIT_Q8_0 || wt == TRIT_F16) {
        /* keep the fp16 scales finite */
        float *row = xmalloc((size_t)n_in * sizeof(float));
        for (int64_t i = 0; i < n_in; i++) row[i] = (float)((i * 7) % 3) - 1.0f;
        for (int64_t r = 0; r < n_out; r++) trit_quantize_row(wt, row, w + rb * (size_t)r, n_in);
        free(row);
    }
    float *x = xmalloc(sizeof(float) * (size_t)(n_in * n_tok));
    for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    float *y = xmalloc(sizeof(float) * (size_t)(n_out * n_tok));
    trit_matmul(k, pool, wt, w, 1.0f, n_in, n_out, x, n_tok, y);
    double best = 1e9;
    for (int r = 0; r < reps; r++) {
        double t0 = trit_now_s();
        trit_matmul(k, pool, wt, w, 1.0f, n_in, n_out, x, n_tok, y);
        double dt = trit_now_s() - t0;
        if (dt < best) best = dt;
    }
    printf("matmul %-6s %-5s %5lldx%-6lld tok %3lld  %8.3f ms  %7.2f GB/s  %8.2f GMAC/s\n", k->name,
           trit_type_get(wt)->name, (long long)n_in, (long long)n_out, (long long)n_tok, best * 1e3,
           (double)rb * n_out / best / 1e9, (double)n_in * n_out * n_tok / best / 1e9);
    free(w), free(x), free(y);
}

int main(int argc, char **argv) {
    int nth = 2, n_tok = 64;
    bool bw_only = false;
    const char *kn = "best";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            nth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-k") && i + 1 < argc)
            kn = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc)
            n_tok = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bw-only"))
            bw_only = true;
        else {
            fprintf(
                stderr,
                "usage: kbench [-t THREADS] [-k ref|avx2|avx512|best] [-n TOKENS] [--bw-only]\n");
            return 2;
        }
    }
    trit_pool *pool = trit_pool_new(nth);
    printf("bandwidth_gbs %.2f\n", kbench_bandwidth(pool, (size_t)1 << 30, 5));
    printf("kernels %s (cpu: %s)\n", trit_kernels_best()->name, trit_cpu_features());
    if (bw_only) return 0;
    const trit_kernels *k = !strcmp(kn, "ref")      ? trit_kernels_ref()
                            : !strcmp(kn, "avx2")   ? trit_kernels_avx2()
                            : !strcmp(kn, "avx512") ? trit_kernels_avx512()
                                                    : trit_kernels_best();
    if (!k) {
        fprintf(stderr, "kbench: kernel set %s not available\n", kn);
        return 1;
    }
    const uint32_t types[] = {TRIT_TQ2_0, TRIT_TQ1_0, TRIT_I2_S, TRIT_Q8_0, TRIT_F16};
    for (size_t t = 0; t < TRIT_ARRAY_LEN(types); t++) {
        bench_type(k, pool, types[t], 2560, 6912, 1, 20);
        bench_type(k, pool, types[t], 2560, 6912, n_tok, 3);
    }
    bench_type(k, pool, TRIT_F16, 2560, 128256 / 4, 1, 5);
    trit_pool_free(pool);
    return 0;
}
