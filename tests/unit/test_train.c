/* test_train — the trainer (src/train): every backward op against central finite
 * differences, the whole model's gradient (fp32 mode) against finite differences, the AVX2
 * matmul kernel against its scalar twin, the fake quantizers, determinism across runs and
 * thread counts, checkpoints (round trip, 0600, corrupt/bad files), the BPE vocabulary
 * (loads in trit's tokenizer, round-trips text), the learning-rate schedule. */
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t rs = 12345;
static float frand(void) { /* uniform in [-1, 1) */
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rs >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = frand() * scale;
}
static float *fvec(size_t n) {
    return xcalloc(n, sizeof(float));
}
static double wsum(const float *y, const float *r, size_t n) { /* loss = sum y * r */
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}
/* |fd - an| within an absolute + relative band */
static void expect_close(double an, double fd, const char *what, size_t i) {
    cr_expect(fabs(an - fd) <= 1e-3 + 5e-3 * fabs(fd), "%s[%zu]: analytic %.6g vs numeric %.6g",
              what, i, an, fd);
}

/* ---- ops ---- */
Test(train_ops, rmsnorm_backward_matches_finite_differences) {
    enum { N = 3, C = 10 };
    float *x = fvec(N * C), *w = fvec(C), *y = fvec(N * C), *r = fvec(N * C), *rstd = fvec(N);
    float *dx = fvec(N * C), *dw = fvec(C);
    fill(x, N * C, 1.0f);
    fill(w, C, 1.0f);
    fill(r, N * C, 1.0f);
    trit_t_rmsnorm_fwd(y, rstd, x, w, N, C, 1e-5f);
    trit_t_rmsnorm_bwd(dx, dw, r, x, w, rstd, N, C);
    const float h = 1e-2f;
    for (size_t i = 0; i < N * C; i++) {
        const float keep = x[i];
        x[i] = keep + h;
        trit_t_rmsnorm_fwd(y, rstd, x, w, N, C, 1e-5f);
        const double lp = wsum(y, r, N * C);
        x[i] = keep - h;
        trit_t_rmsnorm_fwd(y, rstd, x, w, N, C, 1e-5f);
        const double lm = wsum(y, r, N * C);
        x[i] = keep;
        expect_close(dx[i], (lp - lm) / (2 * h), "dx", i);
    }
    for (size_t i = 0; i < C; i++) {
        const float keep = w[i];
        w[i] = keep + h;
        trit_t_rmsnorm_fwd(y, rstd, x, w, N, C, 1e-5f);
        const double lp = wsum(y, r, N * C);
        w[i] = keep - h;
        trit_t_rmsnorm_fwd(y, rstd, x, w, N, C, 1e-5f);
        const double lm = wsum(y, r, N * C);
        w[i] = keep;
        expect_close(dw[i], (lp - lm) / (2 * h), "dw", i);
    }
    free(x), free(w), free(y), free(r), free(rstd), free(dx), free(dw);
}

Test(train_ops, matmul_backward_matches_finite_differences) {
    enum { N = 5, I = 13, O = 7 };
    float *x = fvec(N * I), *w = fvec(O * I), *y = fvec(N * O), *r = fvec(N * O);
    float *dx = fvec(N * I), *dw = fvec(O * I);
    fill(x, N * I, 1.0f);
    fill(w, O * I, 1.0f);
    fill(r, N * O, 1.0f);
    trit_t_matmul_bwd(NULL, dx, dw, r, x, w, N, I, O);
    const float h = 1e-2f;
    float *ps[] = {x, w}, *gs[] = {dx, dw};
    const size_t ns[] = {N * I, O * I};
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i < ns[p]; i++) {
            const float keep = ps[p][i];
            ps[p][i] = keep + h;
            trit_t_matmul_fwd(NULL, y, x, w, N, I, O);
            const double lp = wsum(y, r, N * O);
            ps[p][i] = keep - h;
            trit_t_matmul_fwd(NULL, y, x, w, N, I, O);
            const double lm = wsum(y, r, N * O);
            ps[p][i] = keep;
            expect_close(gs[p][i], (lp - lm) / (2 * h), p ? "dw" : "dx", i);
        }
    free(x), free(w), free(y), free(r), free(dx), free(dw);
}

Test(train_ops, rope_backward_matches_finite_differences) {
    enum { B = 2, T = 5, H = 2, D = 8, N = B * T, C = H * D };
    float *x = fvec(N * C), *y = fvec(N * C), *r = fvec(N * C), *dx = fvec(N * C);
    fill(x, N * C, 1.0f);
    fill(r, N * C, 1.0f);
    memcpy(dx, r, sizeof(float) * N * C);
    trit_t_rope_bwd(dx, N, T, H, D, 10000.0f);
    const float h = 1e-2f;
    for (size_t i = 0; i < N * C; i++) {
        memcpy(y, x, sizeof(float) * N * C);
        y[i] += h;
        trit_t_rope_fwd(y, N, T, H, D, 10000.0f);
        const double lp = wsum(y, r, N * C);
        memcpy(y, x, sizeof(float) * N * C);
        y[i] -= h;
        trit_t_rope_fwd(y, N, T, H, D, 10000.0f);
        const double lm = wsum(y, r, N * C);
        expect_close(dx[i], (lp - lm) / (2 * h), "dx", i);
    }
    free(x), free(y), free(r), free(dx);
}

Test(train_ops, attention_backward_matches_finite_differences) {
    enum { B = 2, T = 4, H = 2, D = 4, N = B * T, C = H * D };
    float *q = fvec(N * C), *k = fvec(N * C), *v = fvec(N * C), *o = fvec(N * C);
    float *att = fvec(B * H * T * T), *datt = fvec(B * H * T * T), *r = fvec(N * C);
    float *dq = fvec(N * C), *dk = fvec(N * C), *dv = fvec(N * C);
    fill(q, N * C, 1.0f);
    fill(k, N * C, 1.0f);
    fill(v, N * C, 1.0f);
    fill(r, N * C, 1.0f);
    trit_t_attention_fwd(NULL, o, att, q, k, v, B, T, H, D);
    trit_t_attention_bwd(NULL, dq, dk, dv, datt, r, att, q, k, v, B, T, H, D);
    const float h = 1e-2f;
    float *ps[] = {q, k, v}, *gs[] = {dq, dk, dv};
    const char *names[] = {"dq", "dk", "dv"};
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < N * C; i++) {
            const float keep = ps[p][i];
            ps[p][i] = keep + h;
            trit_t_attention_fwd(NULL, o, att, q, k, v, B, T, H, D);
            const double lp = wsum(o, r, N * C);
            ps[p][i] = keep - h;
            trit_t_attention_fwd(NULL, o, att, q, k, v, B, T, H, D);
            const double lm = wsum(o, r, N * C);
            ps[p][i] = keep;
            expect_close(gs[p][i], (lp - lm) / (2 * h), names[p], i);
        }
    free(q), free(k), free(v), free(o), free(att), free(datt), free(r), free(dq), free(dk),
        free(dv);
}

Test(train_ops, attention_is_causal) {
    enum { B = 1, T = 4, H = 1, D = 4, N = B * T, C = H * D };
    float *q = fvec(N * C), *k = fvec(N * C), *v = fvec(N * C), *o = fvec(N * C), *o2 = fvec(N * C),
          *att = fvec(T * T);
    fill(q, N * C, 1.0f);
    fill(k, N * C, 1.0f);
    fill(v, N * C, 1.0f);
    trit_t_attention_fwd(NULL, o, att, q, k, v, B, T, H, D);
    k[(T - 1) * C] += 5.0f; /* the last position's key and value */
    v[(T - 1) * C] += 5.0f;
    trit_t_attention_fwd(NULL, o2, att, q, k, v, B, T, H, D);
    cr_expect(memcmp(o, o2, sizeof(float) * (T - 1) * C) == 0, "earlier rows saw a later token");
    free(q), free(k), free(v), free(o), free(o2), free(att);
}

Test(train_ops, swiglu_backward_matches_finite_differences) {
    enum { n = 20 };
    float g[n], u[n], y[n], r[n], dg[n] = {0}, du[n] = {0};
    fill(g, n, 3.0f);
    fill(u, n, 1.0f);
    fill(r, n, 1.0f);
    trit_t_swiglu_bwd(dg, du, r, g, u, n);
    const float h = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float *ps[] = {g, u}, *gs[] = {dg, du};
        for (int p = 0; p < 2; p++) {
            const float keep = ps[p][i];
            ps[p][i] = keep + h;
            trit_t_swiglu_fwd(y, g, u, n);
            const double lp = wsum(y, r, n);
            ps[p][i] = keep - h;
            trit_t_swiglu_fwd(y, g, u, n);
            const double lm = wsum(y, r, n);
            ps[p][i] = keep;
            expect_close(gs[p][i], (lp - lm) / (2 * h), p ? "du" : "dg", i);
        }
    }
}

#if defined(__x86_64__) /* train/ops_avx2.c is built for x86-64 targets only (Makefile) */
Test(train_ops, avx2_kernel_matches_scalar_twin) {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        cr_skip_test("no AVX2+FMA on this CPU");
    enum { NA = 7, NB = 5, K = 37 }; /* odd sizes: row, column and K tails */
    float *A = fvec(NA * K), *B = fvec(NB * K), *c1 = fvec(NA * NB), *c2 = fvec(NA * NB);
    fill(A, NA * K, 1.0f);
    fill(B, NB * K, 1.0f);
    for (int acc = 0; acc < 2; acc++) {
        fill(c1, NA * NB, 1.0f);
        memcpy(c2, c1, sizeof(float) * NA * NB);
        trit_t_nt_ref(c1, NB, A, B, 0, NA, NB, K, acc);
        trit_t_nt_avx2(c2, NB, A, B, 0, NA, NB, K, acc);
        for (int i = 0; i < NA * NB; i++)
            cr_expect(fabsf(c1[i] - c2[i]) <= 1e-5f * (1.0f + fabsf(c1[i])),
                      "acc %d, C[%d]: scalar %.9g vs avx2 %.9g", acc, i, c1[i], c2[i]);
    }
    free(A), free(B), free(c1), free(c2);
}
#else
Test(train_ops, avx2_kernel_matches_scalar_twin) {
    cr_skip_test("not an x86-64 target");
}
#endif

/* ---- fake quantizers ---- */
Test(train_quant, ternarize_gives_three_fp16_exact_levels) {
    enum { n = 1000 };
    float w[n], q[n];
    fill(w, n, 0.05f);
    const float s = trit_ternarize_absmean(q, w, n);
    cr_assert(s > 0);
    cr_expect_eq(trit_fp16_to_fp32(trit_fp32_to_fp16(s)), s, "scale not fp16-exact");
    int zeros = 0;
    for (int i = 0; i < n; i++) {
        cr_expect(q[i] == 0.0f || q[i] == s || q[i] == -s, "q[%d] = %g", i, q[i]);
        cr_expect(!(q[i] == 0.0f && signbit(q[i])), "negative zero at %d", i);
        zeros += q[i] == 0.0f;
    }
    cr_expect(zeros > 0 && zeros < n, "all or nothing zero (%d)", zeros);
}

Test(train_quant, act_quant_is_int8_absmax_per_256_block) {
    enum { C = 300 }; /* one full block and a 44-value tail */
    float x[C], q[C];
    fill(x, C, 2.0f);
    x[7] = 9.0f; /* block 0's absmax */
    memcpy(q, x, sizeof q);
    trit_t_act_quant(q, 1, C);
    for (int i = 0; i < C; i++) {
        float amax = 0;
        const int b0 = i < 256 ? 0 : 256, n = i < 256 ? 256 : C - 256;
        for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[b0 + j]));
        const float step = amax / 127.0f, lvl = q[i] / step;
        cr_expect(fabsf(lvl - roundf(lvl)) < 1e-3f && fabsf(lvl) <= 127.001f, "q[%d] level %g", i,
                  lvl);
        cr_expect(fabsf(q[i] - x[i]) <= step * 0.5001f, "q[%d] error %g > step/2", i, q[i] - x[i]);
    }
    cr_expect_eq(q[7], 9.0f);
}

/* ---- the whole model ---- */
static trit_train_config tiny_cfg(bool qat) {
    return (trit_train_config){.n_vocab = 31,
                               .n_embd = 16,
                               .n_layer = 2,
                               .n_head = 2,
                               .n_ff = 24,
                               .n_ctx = 8,
                               .rope_freq_base = 10000.0f,
                               .rms_eps = 1e-5f,
                               .qat = qat};
}

static void tiny_batch(int32_t *tok, int32_t *tgt, int n) {
    for (int i = 0; i < n; i++) {
        tok[i] = (i * 7 + 3) % 31;
        tgt[i] = i % 5 == 4 ? -1 : (i * 11 + 1) % 31;
    }
}

Test(train_model, gradient_matches_finite_differences) {
    const trit_train_config cfg = tiny_cfg(false);
    trit_train_model *m = trit_train_model_new(&cfg, 3);
    float *p = trit_train_param_data(m);
    /* bigger weights than the init so every path carries signal */
    for (size_t i = 0; i < trit_train_n_tensors(m); i++) {
        const trit_train_tensor *t = trit_train_tensor_at(m, i);
        if (t->ne1 > 1)
            fill(p + t->offset, (size_t)(t->ne0 * t->ne1), 0.3f);
        else
            fill(p + t->offset, (size_t)t->ne0, 0.3f), p[t->offset] += 1.0f;
    }
    enum { B = 2, T = 8 };
    int32_t tok[B * T], tgt[B * T];
    tiny_batch(tok, tgt, B * T);
    trit_train_step_loss(m, NULL, tok, tgt, B, T, true);
    const float *g = trit_train_grad_data(m);
    float *gc = fvec(trit_train_n_params(m));
    memcpy(gc, g, trit_train_n_params(m) * sizeof(float));
    const float h = 1e-2f;
    /* a few entries of every tensor */
    for (size_t ti = 0; ti < trit_train_n_tensors(m); ti++) {
        const trit_train_tensor *t = trit_train_tensor_at(m, ti);
        const size_t n = (size_t)(t->ne0 * t->ne1);
        for (int k = 0; k < 3; k++) {
            const size_t i = t->offset + (size_t)(k * 7919) % n;
            const float keep = p[i];
            p[i] = keep + h;
            const double lp = trit_train_step_loss(m, NULL, tok, tgt, B, T, false);
            p[i] = keep - h;
            const double lm = trit_train_step_loss(m, NULL, tok, tgt, B, T, false);
            p[i] = keep;
            const double fd = (lp - lm) / (2 * h);
            cr_expect(fabs(gc[i] - fd) <= 1e-3 + 3e-2 * fabs(fd), "%s[%zu]: analytic %.6g vs %.6g",
                      t->name, i - t->offset, gc[i], fd);
        }
    }
    free(gc);
    trit_train_model_free(m);
}

Test(train_model, qat_training_lowers_the_loss_and_is_deterministic) {
    const trit_train_config cfg = tiny_cfg(true);
    enum { B = 2, T = 8 };
    int32_t tok[B * T], tgt[B * T];
    tiny_batch(tok, tgt, B * T);
    double last[2];
    float *params[2];
    for (int run = 0; run < 2; run++) {
        trit_train_model *m = trit_train_model_new(&cfg, 9);
        trit_pool *pool = trit_pool_new(run + 1); /* 1 thread, then 2 */
        const size_t np = trit_train_n_params(m);
        float *mom = fvec(np), *var = fvec(np);
        const trit_adamw o = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.0f};
        double first = 0;
        for (long s = 0; s < 40; s++) {
            const double l = trit_train_step_loss(m, pool, tok, tgt, B, T, true);
            if (s == 0) first = l;
            last[run] = l;
            trit_clip_grad(m, 1.0f);
            trit_adamw_update(m, &o, 1e-2f, mom, var, s + 1);
        }
        cr_expect(last[run] < first * 0.7, "loss %.4f -> %.4f", first, last[run]);
        params[run] = fvec(np);
        memcpy(params[run], trit_train_param_data(m), np * sizeof(float));
        if (run == 1)
            cr_expect(memcmp(params[0], params[1], np * sizeof(float)) == 0,
                      "1 and 2 threads gave different weights");
        free(mom), free(var);
        trit_pool_free(pool);
        trit_train_model_free(m);
    }
    cr_expect_eq(last[0], last[1]);
    free(params[0]), free(params[1]);
}

Test(train_model, lr_schedule_warms_up_then_decays) {
    cr_expect_float_eq(trit_lr_at(0, 10, 100, 1.0f, 0.1f), 0.1f, 1e-6);
    cr_expect_float_eq(trit_lr_at(9, 10, 100, 1.0f, 0.1f), 1.0f, 1e-6);
    cr_expect_float_eq(trit_lr_at(10, 10, 100, 1.0f, 0.1f), 1.0f, 1e-6);
    cr_expect_float_eq(trit_lr_at(55, 10, 100, 1.0f, 0.1f), 0.55f, 1e-6);
    cr_expect_float_eq(trit_lr_at(100, 10, 100, 1.0f, 0.1f), 0.1f, 1e-6);
}

/* ---- checkpoints ---- */
Test(train_ckpt, round_trip_mode_and_bad_files) {
    char dir[] = "/tmp/trit-test-train-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/c.ckpt", dir);
    const trit_train_config cfg = tiny_cfg(true);
    trit_train_model *m = trit_train_model_new(&cfg, 5);
    const size_t np = trit_train_n_params(m);
    float *mom = fvec(np), *var = fvec(np), *mom2 = fvec(np), *var2 = fvec(np);
    fill(mom, np, 1.0f);
    fill(var, np, 1.0f);
    trit_err err = {0};
    cr_assert_eq(trit_ckpt_save(path, m, mom, var, 17, 5, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);

    trit_train_model *m2 = trit_train_model_new(&cfg, 6); /* different init */
    long step = 0;
    uint64_t seed = 0;
    cr_assert_eq(trit_ckpt_load(path, m2, mom2, var2, &step, &seed, &err), 0, "%s", err.msg);
    cr_expect_eq(step, 17);
    cr_expect_eq(seed, 5u);
    cr_expect(memcmp(trit_train_param_data(m), trit_train_param_data(m2), np * 4) == 0);
    cr_expect(memcmp(mom, mom2, np * 4) == 0 && memcmp(var, var2, np * 4) == 0);

    /* a flipped byte: checksum */
    FILE *f = fopen(path, "r+b");
    fseek(f, 100, SEEK_SET);
    const int c = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    cr_expect_eq(trit_ckpt_load(path, m2, mom2, var2, &step, &seed, &err), -1);
    cr_expect(strstr(err.msg, "checksum"), "%s", err.msg);
    /* truncated */
    cr_assert_eq(truncate(path, 200), 0);
    cr_expect_eq(trit_ckpt_load(path, m2, mom2, var2, &step, &seed, &err), -1);
    cr_expect(strstr(err.msg, "bytes") || strstr(err.msg, "shape"), "%s", err.msg);
    /* not a checkpoint */
    f = fopen(path, "wb");
    fputs("hello", f);
    fclose(f);
    cr_expect_eq(trit_ckpt_load(path, m2, mom2, var2, &step, &seed, &err), -1);
    cr_expect(strstr(err.msg, "magic"), "%s", err.msg);
    /* another shape */
    cr_assert_eq(trit_ckpt_save(path, m, mom, var, 17, 5, &err), 0);
    trit_train_config other = cfg;
    other.n_ff = 32;
    trit_train_model *m3 = trit_train_model_new(&other, 5);
    float *mom3 = fvec(trit_train_n_params(m3)), *var3 = fvec(trit_train_n_params(m3));
    cr_expect_eq(trit_ckpt_load(path, m3, mom3, var3, &step, &seed, &err), -1);
    cr_expect(strstr(err.msg, "shape"), "%s", err.msg);

    free(mom), free(var), free(mom2), free(var2), free(mom3), free(var3);
    trit_train_model_free(m), trit_train_model_free(m2), trit_train_model_free(m3);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)system(cmd);
}

/* ---- BPE vocabulary ---- */
Test(train_bpe, vocabulary_loads_and_round_trips) {
    char dir[] = "/tmp/trit-test-bpe-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/v.gguf", dir);
    trit_buf text = {0};
    for (int i = 0; i < 50; i++)
        trit_buf_puts(&text, "In the beginning God created the heaven and the earth.\n"
                             "And the earth was without form, and void; it's 12 o'clock!\n");
    trit_err err = {0};
    cr_assert_eq(trit_bpe_train(text.p, text.len, 300, path, &err), 0, "%s", err.msg);
    trit_tokenizer *t = trit_tok_load_file(path, &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_expect_eq(trit_tok_n_vocab(t), 300);
    cr_expect_str_eq(trit_tok_pre(t), "gpt2");
    cr_expect_eq(trit_tok_bos(t), 298);
    cr_expect_eq(trit_tok_eos(t), 299);
    cr_expect(trit_tok_add_bos(t));
    const char *s = "And the earth was good: Zebra 42 \xc3\xa9t\xc3\xa9 \n\n end";
    int32_t *ids = NULL;
    size_t n = 0;
    cr_assert_eq(trit_tok_encode(t, s, strlen(s), true, false, &ids, &n, &err), 0, "%s", err.msg);
    cr_expect_eq(ids[0], 298);
    cr_expect(n < strlen(s), "merges did not shorten the text (%zu tokens)", n);
    trit_buf out = {0};
    trit_tok_decode(t, ids + 1, n - 1, false, &out);
    cr_expect_str_eq(out.p, s);
    /* determinism */
    char path2[128];
    snprintf(path2, sizeof path2, "%s/v2.gguf", dir);
    cr_assert_eq(trit_bpe_train(text.p, text.len, 300, path2, &err), 0);
    trit_buf a = {0}, b = {0};
    cr_assert_eq(trit_read_file(path, &a, NULL), 0);
    cr_assert_eq(trit_read_file(path2, &b, NULL), 0);
    cr_expect(a.len == b.len && !memcmp(a.p, b.p, a.len), "two runs wrote different files");
    /* bad size */
    cr_expect_eq(trit_bpe_train(text.p, text.len, 100, path2, &err), -1);
    cr_expect(strstr(err.msg, "vocabulary size"), "%s", err.msg);
    free(ids);
    trit_buf_free(&out), trit_buf_free(&text), trit_buf_free(&a), trit_buf_free(&b);
    trit_tok_free(t);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)system(cmd);
}
