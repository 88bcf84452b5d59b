/* bench/kbench — kernel micro-benchmark: streaming-read bandwidth, then trit_matmul throughput
 * (GB/s of weights, GMAC/s) per weight type for decode (1 token) and prefill (n tokens) shapes.
 * Usage: kbench [-t THREADS] [-k ref|avx2|avx512|best] [-n TOKENS] [--bw-only] [--vs-ggml] [--tune]
 *               [--attention]
 * --tune: decode (1-token) matmul time for each candidate sweep/prefetch pair of trit_tuning,
 * the candidates interleaved round by round and the minimum kept (robust on a loaded machine);
 * prints the best pair per weight type, to choose a row of kernels.c's table on a new CPU.
 * --attention: exact vs --numerics fast attention of the kernel set (2B-4T heads: 20 query /
 * 5 KV heads of 128, F16 cache) for decode at several context lengths and a 512-token
 * prefill; the two interleaved round by round, minimum kept.
 * Output lines are "key value" pairs so scripts can grep them. */
#include "kernels/kernels.h"
#include "reference/reference.h"
#include "quant/quant.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* One weight matrix of n_out x n_in (wt), filled so the fp16 scales stay finite. */
static char *make_weights(uint32_t wt, int64_t n_in, int64_t n_out) {
    const size_t rb = trit_row_size(wt, n_in);
    char *w = xaligned_alloc(64, rb * (size_t)n_out + 64);
    float *row = xmalloc((size_t)n_in * sizeof(float));
    for (int64_t r = 0; r < n_out; r++) {
        for (int64_t i = 0; i < n_in; i++) row[i] = (float)(((i + r) * 7) % 3) - 1.0f;
        trit_quantize_row(wt, row, w + rb * (size_t)r, n_in);
    }
    free(row);
    return w;
}

/* --tune: every (sweep, pf) candidate once per round, rounds interleaved, minimum kept. */
static void tune(const trit_kernels *k, trit_pool *pool) {
    static const int sweeps[] = {2, 4, 8}, pfs[] = {0, 4, 8, 16};
    enum { NS = TRIT_ARRAY_LEN(sweeps), NP = TRIT_ARRAY_LEN(pfs), ROUNDS = 7 };
    const trit_tuning saved = *trit_tuning_get();
    printf("tune cpu %s (table row %s: sweep %d pf %d cap %d KiB)\n", saved.cpu, saved.row,
           saved.sweep_rows, saved.pf_rows, saved.pf_max_kb);
    const struct {
        uint32_t t;
        int64_t n_in, n_out;
    } cases[] = {{TRIT_TQ2_0, 2560, 6912}, {TRIT_TQ1_0, 2560, 6912}, {TRIT_F16, 2560, 32000}};
    for (size_t c = 0; c < TRIT_ARRAY_LEN(cases); c++) {
        const uint32_t wt = cases[c].t;
        const int64_t n_in = cases[c].n_in, n_out = cases[c].n_out;
        /* copies of the matrix filling TRIT_BW_BYTES, used in turn, so every timed matmul
         * streams from memory as in decode, not from the (possibly huge) last-level cache */
        const size_t mb = trit_row_size(wt, n_in) * (size_t)n_out;
        const size_t ncopy = TRIT_MAX(TRIT_BW_BYTES / mb, (size_t)1);
        char *w = make_weights(wt, n_in, n_out), *arena = xaligned_alloc(64, mb * ncopy);
        for (size_t i = 0; i < ncopy; i++) memcpy(arena + i * mb, w, mb);
        float *x = xmalloc(sizeof(float) * (size_t)n_in),
              *y = xmalloc(sizeof(float) * (size_t)n_out);
        for (int64_t i = 0; i < n_in; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
        double best[NS][NP];
        for (int s = 0; s < NS; s++)
            for (int p = 0; p < NP; p++) best[s][p] = 1e9;
        size_t next = 0;
        for (int round = 0; round < ROUNDS; round++)
            for (int s = 0; s < NS; s++)
                for (int p = 0; p < NP; p++) {
                    trit_tuning t = saved;
                    t.sweep_rows = sweeps[s], t.pf_rows = pfs[p], t.pf_max_kb = 0;
                    trit_tuning_set(&t);
                    /* one timed sample = as many copies as make up ~128 MiB (or one) */
                    const size_t per = TRIT_MAX(((size_t)128 << 20) / mb, (size_t)1);
                    const double t0 = trit_now_s();
                    for (size_t i = 0; i < per; i++, next = (next + 1) % ncopy)
                        trit_matmul(k, pool, wt, arena + next * mb, 1.0f, n_in, n_out, x, 1, y);
                    best[s][p] = TRIT_MIN(best[s][p], (trit_now_s() - t0) / (double)per);
                }
        int bs = 0, bp = 0;
        for (int s = 0; s < NS; s++)
            for (int p = 0; p < NP; p++) {
                printf("tune %-5s sweep %d pf %2d  %8.3f ms  %7.2f GB/s\n", trit_type_get(wt)->name,
                       sweeps[s], pfs[p], best[s][p] * 1e3,
                       (double)trit_row_size(wt, n_in) * n_out / best[s][p] / 1e9);
                if (best[s][p] < best[bs][bp]) bs = s, bp = p;
            }
        printf("tune_best %s sweep %d pf %d\n", trit_type_get(wt)->name, sweeps[bs], pfs[bp]);
        free(w), free(arena), free(x), free(y);
    }
    trit_tuning_set(&saved);
}

/* --attention: exact vs fast, interleaved rounds, minimum time of each. */
static void attention_ab(const trit_kernels *k, trit_pool *pool) {
    const int H = 20, HKV = 5, D = 128, ROUNDS = 9;
    const struct { int pos0, n_tok; } shapes[] = {{127, 1}, {511, 1}, {2047, 1}, {0, 512}};
    const trit_kernels *f = trit_kernels_for(k, TRIT_NUMERICS_FAST);
    for (size_t c = 0; c < TRIT_ARRAY_LEN(shapes); c++) {
        const int n_tok = shapes[c].n_tok, pos0 = shapes[c].pos0, n_ctx = pos0 + n_tok;
        const size_t nkv = (size_t)HKV * n_ctx * D;
        uint16_t *kc = xmalloc(nkv * 2), *vc = xmalloc(nkv * 2);
        for (size_t i = 0; i < nkv; i++) {
            kc[i] = trit_fp32_to_fp16((float)((i * 37) % 101) / 50.0f - 1.0f);
            vc[i] = trit_fp32_to_fp16((float)((i * 53) % 97) / 48.0f - 1.0f);
        }
        const size_t nq = (size_t)n_tok * H * D;
        float *q = xmalloc(nq * sizeof(float)), *o = xmalloc(nq * sizeof(float));
        for (size_t i = 0; i < nq; i++) q[i] = (float)((i * 29) % 89) / 44.0f - 1.0f;
        double best[2] = {1e9, 1e9};
        for (int r = 0; r < ROUNDS; r++)
            for (int m = 0; m < 2; m++) {
                const trit_kernels *ks = m ? f : k;
                const double t0 = trit_now_s();
                (ks->attention ? ks->attention : trit_attention)(
                    pool, q, kc, vc, TRIT_F16, n_ctx, H, HKV, D, pos0, n_tok, 0.08838834764f, o);
                best[m] = TRIT_MIN(best[m], trit_now_s() - t0);
            }
        printf("attention n_kv %5d n_tok %4d  exact(%s) %8.3f ms  fast(%s) %8.3f ms  fast/exact "
               "%.2fx faster\n",
               n_ctx, n_tok, k->name, best[0] * 1e3, f->name, best[1] * 1e3, best[0] / best[1]);
        free(kc), free(vc), free(q), free(o);
    }
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
    bool bw_only = false, ggml = false, tuning = false, att = false;
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
        else if (!strcmp(argv[i], "--tune"))
            tuning = true;
        else if (!strcmp(argv[i], "--attention"))
            att = true;
        else {
            fprintf(stderr, "usage: kbench [-t THREADS] [-k ref|avx2|avx512|best] [-n TOKENS] "
                            "[--bw-only] [--vs-ggml] [--tune] [--attention]\n");
            return 2;
        }
    }
    trit_pool *pool = trit_pool_new(nth);
    if (!ggml && !tuning && !att)
        printf("bandwidth_gbs %.2f\n",
               trit_read_bandwidth(pool, TRIT_BW_BYTES, TRIT_BW_REPS) / 1e9);
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
    if (att) {
        attention_ab(k, pool);
        trit_pool_free(pool);
        return 0;
    }
    if (tuning) {
        tune(k, pool);
        trit_pool_free(pool);
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
