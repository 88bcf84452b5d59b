/* test_prefix — prefix reuse (engine.h): a prompt resumed from the first p KV cells of an
 * earlier prompt's cold prefill gets every cell and its last logits bit for bit as a cold
 * prefill whenever trit_ctx_reuse_exact says so (a resumed tail under 64 rows of a chunk of
 * >= 64 takes the tiled attention through padding), for every weight order the engine knows
 * (F16 tinyBLAS, Q8_0/Q6_K/Q4_0/ternary row-free, Q4_K/Q2_K group-of-4 repacked, F16 and
 * Q4_K heads), chunk boundaries anywhere (n_batch 96: partial chunks on both sides of the
 * 64-row tiled attention), and the exact numerics and the fast ones. Every p is tried, not
 * only the rule's (a sample of the refused ones: the log reports those equal anyway). Also: the
 * cell copies round-trip, and cells of single-token decode steps are not prefill cells. Models:
 * mkmodel's tiny preset over the reference's SPM vocab (skips without). */
#include "helpers.h"
#include "engine/engine.h"
#include "kernels/kernels.h"
#include "model/mkmodel.h"
#include "reference/reference.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NB = 96, NCTX = 512, THREADS = 2, MAXTOK = 320 };

static char dir[64];
static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/trit-test-prefix-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}
static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)system(cmd);
}
TestSuite(prefix, .init = setup, .fini = teardown, .timeout = 600);

static trit_model *make_model(enum trit_arch arch, uint32_t type, uint32_t embd_type) {
    return test_tiny_model(dir, arch, type, embd_type, 7);
}

static trit_ctx *make_ctx(trit_model *m, int numerics) {
    trit_ctx_params cp = trit_ctx_default_params();
    cp.n_ctx = NCTX;
    cp.n_batch = NB;
    cp.n_threads = THREADS;
    cp.numerics = numerics;
    trit_err err = {0};
    trit_ctx *c = trit_ctx_new(m, &cp, &err);
    cr_assert_not_null(c, "ctx: %s", err.msg);
    return c;
}

static void keep_last(void *ud, int entry, int tok, const float *logits) {
    (void)entry;
    (void)tok;
    float *const *dst = ud;
    memcpy(dst[0], logits, (size_t)(intptr_t)dst[1] * sizeof(float));
}

/* Evaluate tok[from..n) on s (holding from cells) in trit_ctx_chunk_at's entries, the last
 * one's logits into logits: a cold prefill when from == 0. */
static void prefill(trit_ctx *c, trit_seq *s, const int32_t *tok, int from, int n, float *logits) {
    float *dst[2] = {logits, (float *)(intptr_t)trit_ctx_model(c)->hp.n_vocab};
    for (int pos = from; pos < n;) {
        const int T = trit_ctx_chunk_at(c, pos, n);
        const trit_batch_entry e = {.seq = s,
                                    .tokens = tok + pos,
                                    .n_tokens = T,
                                    .pos = pos,
                                    .out = pos + T == n ? TRIT_OUT_LAST : TRIT_OUT_NONE,
                                    .chunk_rows = trit_ctx_chunk_rows(c, pos, n)};
        trit_err err = {0};
        cr_assert_eq(trit_batch_eval(c, &e, 1, keep_last, dst, &err), 0, "eval: %s", err.msg);
        pos += T;
    }
}

/* A prompt of n pseudo-random ids from stream seed. */
static void tokens(int32_t *t, int n, uint64_t seed, int V) {
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((seed >> 33) % (uint64_t)V);
    }
}

/* One case: an earlier prompt of `made` tokens and a new one of n sharing `common` leading
 * tokens. Every p in 1 .. min(common, made, n - 1) the rule accepts (and a sample of the others):
 * resume the new prompt from the earlier prompt's first p cells; where the rule says exact, cells
 * and logits must equal the cold prefill's. Returns the number of p the rule refused although the
 * result was equal. */
static int check_case(trit_ctx *c, int made, int common, int n, const char *what) {
    const int V = trit_ctx_model(c)->hp.n_vocab;
    int32_t a[MAXTOK], b[MAXTOK];
    tokens(a, n, 3, V);
    memcpy(b, a, (size_t)common * sizeof *a);
    tokens(b + common, made - common, 99, V); /* the earlier prompt goes on differently */
    const size_t nbytes = trit_seq_cells_bytes(c, n), mbytes = trit_seq_cells_bytes(c, made);
    float *want = malloc((size_t)V * sizeof(float)), *got = malloc((size_t)V * sizeof(float));
    char *cold = malloc(nbytes), *warm = malloc(nbytes), *earlier = malloc(mbytes);
    trit_seq *s = trit_seq_new(c);
    prefill(c, s, a, 0, n, want);
    trit_seq_get_cells(c, s, n, cold);
    prefill(c, s, b, 0, made, got);
    trit_seq_get_cells(c, s, made, earlier);
    int refused_equal = 0, exact = 0;
    const int most = TRIT_MIN(TRIT_MIN(common, made), n - 1);
    for (int p = 1; p <= most; p++) {
        const bool rule = trit_ctx_reuse_exact(c, made, n, p);
        /* a third of the accepted p (every one near the end: short padded tails), and a
         * seventh of the refused ones (what the rule costs): seconds, not minutes */
        if (rule ? p % 3 && p + 6 < most : p % 7) continue;
        trit_seq_set_cells(c, s, earlier, made, p);
        prefill(c, s, a, p, n, got);
        trit_seq_get_cells(c, s, n, warm);
        const bool same =
            !memcmp(want, got, (size_t)V * sizeof(float)) && !memcmp(cold, warm, nbytes);
        if (rule) {
            exact++;
            cr_expect(same, "%s: made %d common %d n %d: p = %d is exact by the rule but differs",
                      what, made, common, n, p);
        } else if (same) {
            refused_equal++;
        }
    }
    const int best = trit_ctx_reuse_len(c, made, common, n);
    cr_expect(best <= most && (best == 0 || trit_ctx_reuse_exact(c, made, n, best)),
              "%s: reuse_len %d", what, best);
    cr_log_info(
        "%s: made %d common %d n %d: reuse_len %d, %d of %d p exact by the rule, %d refused "
        "p (one in 7 tried) equal",
        what, made, common, n, best, exact, most, refused_equal);
    trit_seq_free(s);
    free(want);
    free(got);
    free(cold);
    free(warm);
    free(earlier);
    return refused_equal;
}

/* The cases: an earlier prompt inside the first chunk, under 64 rows, the new one past 64
 * (tiled attention); both over a chunk boundary; and a branch (the prompts part before the
 * end of both, the new one shorter). */
static void check_model(enum trit_arch arch, uint32_t type, uint32_t embd, int numerics,
                        const char *what) {
    trit_model *m = make_model(arch, type, embd);
    trit_ctx *c = make_ctx(m, numerics);
    check_case(c, 40, 40, 90, what);
    check_case(c, 150, 150, 250, what);
    check_case(c, 200, 120, 170, what);
    check_case(c, 70, 70, 80, what);
    /* the rule is not vacuous: a conversation's next turn reuses most of the previous one */
    cr_expect_geq(trit_ctx_reuse_len(c, 150, 150, 250), 96, "%s", what);
    trit_ctx_free(c);
    trit_model_free(m);
}

Test(prefix, llama_f16) {
    check_model(TRIT_ARCH_LLAMA, TRIT_F16, 0, 0, "llama F16");
}
Test(prefix, llama_q8_0) {
    check_model(TRIT_ARCH_LLAMA, TRIT_Q8_0, 0, 0, "llama Q8_0");
}
Test(prefix, llama_q4_0_repacked) {
    check_model(TRIT_ARCH_LLAMA, TRIT_Q4_0, 0, 0, "llama Q4_0");
}
Test(prefix, llama_q4_k_group4) {
    check_model(TRIT_ARCH_LLAMA, TRIT_Q4_K, TRIT_Q4_K, 0, "llama Q4_K (Q4_K head)");
}
Test(prefix, llama_q2_k) {
    check_model(TRIT_ARCH_LLAMA, TRIT_Q2_K, 0, 0, "llama Q2_K");
}
Test(prefix, llama_q6_k) {
    check_model(TRIT_ARCH_LLAMA, TRIT_Q6_K, 0, 0, "llama Q6_K");
}
Test(prefix, llama_tq2_0_f16_head) {
    check_model(TRIT_ARCH_LLAMA, TRIT_TQ2_0, 0, 0, "llama TQ2_0 (F16 head)");
}
Test(prefix, bitnet_tq2_0) {
    check_model(TRIT_ARCH_BITNET, TRIT_TQ2_0, 0, 0, "bitnet TQ2_0");
}
Test(prefix, bitnet_tq1_0) {
    check_model(TRIT_ARCH_BITNET, TRIT_TQ1_0, 0, 0, "bitnet TQ1_0");
}
Test(prefix, bitnet_i2_s) {
    check_model(TRIT_ARCH_BITNET, TRIT_I2_S, 0, 0, "bitnet I2_S");
}
Test(prefix, fast_numerics) {
    check_model(TRIT_ARCH_BITNET, TRIT_TQ2_0, 0, TRIT_NUMERICS_FAST, "bitnet TQ2_0 fast");
    check_model(TRIT_ARCH_LLAMA, TRIT_Q4_K, TRIT_Q4_K, TRIT_NUMERICS_FAST, "llama Q4_K fast");
}

/* The rule itself: whole chunks are always exact, one-token tails never, and p never
 * reaches the new prompt's last token or past the earlier prompt. */
Test(prefix, rule_shape) {
    trit_model *m = make_model(TRIT_ARCH_LLAMA, TRIT_Q4_K, TRIT_Q4_K);
    trit_ctx *c = make_ctx(m, 0);
    cr_expect(trit_ctx_reuse_exact(c, 300, 300, NB));
    cr_expect(trit_ctx_reuse_exact(c, 300, 300, 2 * NB));
    cr_expect(!trit_ctx_reuse_exact(c, 300, 300, 300));
    cr_expect_eq(trit_ctx_reuse_len(c, 70, 70, 80), 68, "a padded tail; whole groups of 4");
    cr_expect_eq(trit_ctx_chunk_rows(c, 100, 150), 150 - NB);
    cr_expect_eq(trit_ctx_chunk_rows(c, 10, 150), NB);
    cr_expect(!trit_ctx_reuse_exact(c, 100, 300, 101));
    cr_expect(!trit_ctx_reuse_exact(c, 300, 30, 29), "a one-token entry is not a prefill row");
    /* an earlier 30-token prompt's rows 28, 29 are gemv rows, a 50-token prompt's gemm rows */
    cr_expect(!trit_ctx_reuse_exact(c, 30, 50, 30));
    cr_expect_eq(trit_ctx_reuse_len(c, 30, 30, 50), 28);
    cr_expect_eq(trit_ctx_reuse_len(c, 300, 0, 300), 0);
    cr_expect_eq(trit_ctx_reuse_len(c, 300, 300, 1), 0);
    cr_expect_eq(trit_ctx_chunk_at(c, 0, 300), NB);
    cr_expect_eq(trit_ctx_chunk_at(c, 10, 300), NB - 10);
    cr_expect_eq(trit_ctx_chunk_at(c, 290, 300), 10);
    trit_ctx_free(c);
    trit_model_free(m);
}

/* A resumed entry's chunk_rows must fit n_batch and the rows before it must be cached. */
Test(prefix, bad_chunk_rows_refused) {
    trit_model *m = make_model(TRIT_ARCH_BITNET, TRIT_TQ2_0, 0);
    trit_ctx *c = make_ctx(m, 0);
    int32_t t[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    trit_seq *s = trit_seq_new(c);
    trit_err err = {0};
    trit_batch_entry e = {.seq = s, .tokens = t, .n_tokens = 4, .pos = 0, .chunk_rows = 8};
    cr_expect_neq(trit_batch_eval(c, &e, 1, keep_last, NULL, &err), 0, "rows before pos 0");
    e.chunk_rows = NB + 1;
    cr_expect_neq(trit_batch_eval(c, &e, 1, keep_last, NULL, &err), 0, "over n_batch");
    e.chunk_rows = 3;
    cr_expect_neq(trit_batch_eval(c, &e, 1, keep_last, NULL, &err), 0, "under n_tokens");
    e.chunk_rows = 4;
    cr_expect_eq(trit_batch_eval(c, &e, 1, keep_last, NULL, &err), 0, "%s", err.msg);
    trit_seq_free(s);
    trit_ctx_free(c);
    trit_model_free(m);
}

/* Cells round-trip through a block, and a prompt's cells made by one-token steps differ from
 * its prefill's (why the cache keeps prefill cells only). */
Test(prefix, cells_round_trip_and_decode_cells_differ) {
    trit_model *m = make_model(TRIT_ARCH_LLAMA, TRIT_Q4_K, TRIT_Q4_K);
    trit_ctx *c = make_ctx(m, 0);
    const int V = m->hp.n_vocab, n = 40;
    int32_t t[64];
    tokens(t, n, 5, V);
    float *lg = malloc((size_t)V * sizeof(float));
    const size_t bytes = trit_seq_cells_bytes(c, n);
    char *a = malloc(bytes), *b = malloc(bytes);
    trit_seq *s = trit_seq_new(c), *s2 = trit_seq_new(c);
    prefill(c, s, t, 0, n, lg);
    trit_seq_get_cells(c, s, n, a);
    trit_seq_set_cells(c, s2, a, n, n);
    cr_expect_eq(trit_seq_n_past(s2), n);
    trit_seq_get_cells(c, s2, n, b);
    cr_expect(!memcmp(a, b, bytes), "cells changed in a round trip");
    float *dst[2] = {lg, (float *)(intptr_t)V};
    for (int i = 0; i < n; i++) {
        const trit_batch_entry e = {.seq = s2, .tokens = t + i, .n_tokens = 1, .pos = i};
        trit_err err = {0};
        cr_assert_eq(trit_batch_eval(c, &e, 1, keep_last, dst, &err), 0, "%s", err.msg);
    }
    trit_seq_get_cells(c, s2, n, b);
    cr_expect(memcmp(a, b, bytes), "decode cells equal prefill cells for a repacked Q4_K model");
    trit_seq_free(s);
    trit_seq_free(s2);
    free(a);
    free(b);
    free(lg);
    trit_ctx_free(c);
    trit_model_free(m);
}
