/* bench/kbench — kernel micro-benchmark: streaming-read bandwidth, then trit_matmul throughput
 * (GB/s of weights, GMAC/s) per weight type for decode (1 token) and prefill (n tokens) shapes.
 * Usage: kbench [-t THREADS] [-k ref|avx2|avx512|best] [-n TOKENS] [--bw-only] [--vs-ggml]
 * Output lines are "key value" pairs so scripts can grep them. */
#include "kernels/kernels.h"
#include "reference/reference.h"
#include "quant/quant.h"

#include <dlfcn.h>
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

typedef void (*ggml_dot_fn)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y,
                            size_t by, int nrc);

/* Single-thread kernel comparison with the reference ggml's own x86 vec_dot (dlopen'd):
 * one activation row against nrows weight rows (cache-resident), and n_tok rows x nrows. */
static void vs_ggml(const trit_kernels *k, int n_tok) {
    char *pb = trit_ref_path("libggml-base.so"), *pc = trit_ref_path("libggml-cpu.so");
    void *hb = pb ? dlopen(pb, RTLD_NOW | RTLD_GLOBAL) : NULL;
    void *hc = hb && pc ? dlopen(pc, RTLD_NOW | RTLD_GLOBAL) : NULL;
    free(pb), free(pc);
    if (!hc) {
        printf("ggml not found\n");
        return;
    }
    ((void (*)(void))dlsym(hc, "ggml_cpu_init"))();
    const struct {
        uint32_t t;
        const char *sym;
    } cases[] = {{TRIT_TQ2_0, "ggml_vec_dot_tq2_0_q8_K"},
                 {TRIT_TQ1_0, "ggml_vec_dot_tq1_0_q8_K"},
                 {TRIT_Q8_0, "ggml_vec_dot_q8_0_q8_0"},
                 {TRIT_F16, "ggml_vec_dot_f16"}};
    const int64_t n = 2560, nr = 1024;
    for (size_t c = 0; c < TRIT_ARRAY_LEN(cases); c++) {
        ggml_dot_fn g = (ggml_dot_fn)dlsym(hc, cases[c].sym);
        if (!g) continue;
        const uint32_t wt = cases[c].t;
        const size_t rb = trit_row_size(wt, n), ab = trit_act_row_size(wt, n);
        char *w = xaligned_alloc(64, rb * nr);
        float *row = xmalloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++)
            row[i] = (float)((i * 7) % 3) - 1.0f + 0.01f * (float)(i % 5);
        for (int64_t r = 0; r < nr; r++) trit_quantize_row(wt, row, w + rb * r, n);
        char *act = xaligned_alloc(64, ab * (size_t)n_tok);
        for (int t = 0; t < n_tok; t++) k->quantize_act(wt, row, act + ab * t, n);
        float *out = xmalloc(sizeof(float) * (size_t)(nr * n_tok));
        for (int pass = 0; pass < 2; pass++) {
            const int nt = pass ? n_tok : 1;
            double tg = 1e9, tt = 1e9;
            for (int rep = 0; rep < 5; rep++) {
                double t0 = trit_now_s();
                for (int t = 0; t < nt; t++)
                    for (int64_t r = 0; r < nr; r++)
                        g((int)n, &out[t * nr + r], 0, w + rb * r, 0, act + ab * t, 0, 1);
                double t1 = trit_now_s();
                if (nt > 1 && k->gemm)
                    k->gemm(wt, n, w, rb, nr, act, ab, nt, out, nr);
                else
                    for (int t = 0; t < nt; t++)
                        k->vec_dot_rows(wt, n, w, rb, nr, act + ab * t, out + t * nr);
                double t2 = trit_now_s();
                tg = TRIT_MIN(tg, t1 - t0), tt = TRIT_MIN(tt, t2 - t1);
            }
            printf("vs_ggml %-5s tok %3d  ggml %7.2f GMAC/s  trit(%s) %7.2f GMAC/s  ratio %.2fx\n",
                   trit_type_get(wt)->name, nt, (double)n * nr * nt / tg / 1e9, k->name,
                   (double)n * nr * nt / tt / 1e9, tg / tt);
        }
        free(w), free(row), free(act), free(out);
    }
}

int main(int argc, char **argv) {
    int nth = 2, n_tok = 64;
    bool bw_only = false, ggml = false;
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
        else if (!strcmp(argv[i], "--vs-ggml"))
            ggml = true;
        else {
            fprintf(stderr, "usage: kbench [-t THREADS] [-k ref|avx2|avx512|best] [-n TOKENS] "
                            "[--bw-only] [--vs-ggml]\n");
            return 2;
        }
    }
    trit_pool *pool = trit_pool_new(nth);
    if (!ggml) printf("bandwidth_gbs %.2f\n", kbench_bandwidth(pool, (size_t)1 << 30, 5));
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
    if (ggml) {
        vs_ggml(k, n_tok);
        return 0;
    }
    const uint32_t types[] = {TRIT_TQ2_0, TRIT_TQ1_0, TRIT_I2_S, TRIT_Q8_0, TRIT_F16};
    for (size_t t = 0; t < TRIT_ARRAY_LEN(types); t++) {
        bench_type(k, pool, types[t], 2560, 6912, 1, 20);
        bench_type(k, pool, types[t], 2560, 6912, n_tok, 3);
    }
    bench_type(k, pool, TRIT_F16, 2560, 128256, 1, 5); /* the output matrix: beyond the caches */
    trit_pool_free(pool);
    return 0;
}
