/* test_batch — batch invariance of trit_batch_eval: a sequence's logits in a batched step are
 * bit-identical to its single-stream trit_eval logits (fresh context, same threads), whatever
 * its neighbours, their number and order; prefill chunks and decode rows mixed; steps entries
 * (draft verification) equal successive one-token evals; bad batches refused.
 * Models: synthetic tiny llama (F16: the tinyBLAS/vec_dot order switch) and bitnet (TQ2_0,
 * F16 tied output), written with mkmodel over the reference's SPM vocab (skips without). */
#include "helpers.h"
#include "engine/engine.h"
#include "reference/reference.h"
#include "kernels/kernels.h"
#include "model/mkmodel.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NSEQ = 4, GEN = 5, NBATCH = 128, THREADS = 2 };
/* prompt lengths: a single token, < 64 (vector attention), >= 64 (tiled attention), and
 * > 256 (three chunks of NBATCH; its decode rows use split-KV attention with 2 threads) */
static const int prompt_len[NSEQ] = {1, 21, 70, 300};

static char dir[64];
static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/trit-test-batch-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}
static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)system(cmd);
}
TestSuite(batch, .init = setup, .fini = teardown);

static trit_model *make_model_embd(enum trit_arch arch, uint32_t type, uint32_t embd_type) {
    return test_tiny_model(dir, arch, type, embd_type, 5);
}

static trit_model *make_model(enum trit_arch arch, uint32_t type) {
    return make_model_embd(arch, type, 0);
}

static trit_ctx *make_ctx(trit_model *m) {
    trit_ctx_params cp = trit_ctx_default_params();
    cp.n_ctx = 512;
    cp.n_batch = NBATCH;
    cp.n_threads = THREADS;
    trit_err err = {0};
    trit_ctx *c = trit_ctx_new(m, &cp, &err);
    cr_assert_not_null(c, "ctx: %s", err.msg);
    return c;
}

/* Each sequence: prompt_len[s] + GEN fixed token ids; ref[s][g] = single-stream logits after
 * the prompt (g = 0) and after each decode token (g = 1..GEN). */
typedef struct fixture {
    trit_model *m;
    int V;
    int32_t tok[NSEQ][512];
    float *ref[NSEQ][GEN + 1];
} fixture;

static void make_reference(fixture *fx) {
    fx->V = fx->m->hp.n_vocab;
    uint64_t r = 11;
    for (int s = 0; s < NSEQ; s++)
        for (int i = 0; i < prompt_len[s] + GEN; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            fx->tok[s][i] = (int32_t)((r >> 33) % (uint64_t)fx->V);
        }
    for (int s = 0; s < NSEQ; s++) {
        trit_ctx *c = make_ctx(fx->m);
        trit_err err = {0};
        const int P = prompt_len[s];
        for (int g = 0; g <= GEN; g++) {
            int rc = g == 0 ? trit_eval(c, fx->tok[s], P, 0, false, &err)
                            : trit_eval(c, &fx->tok[s][P + g - 1], 1, P + g - 1, false, &err);
            cr_assert_eq(rc, 0, "reference eval: %s", err.msg);
            fx->ref[s][g] = malloc((size_t)fx->V * sizeof(float));
            memcpy(fx->ref[s][g], trit_get_logits(c, -1), (size_t)fx->V * sizeof(float));
        }
        trit_ctx_free(c);
    }
}

static void free_fixture(fixture *fx) {
    for (int s = 0; s < NSEQ; s++)
        for (int g = 0; g <= GEN; g++) free(fx->ref[s][g]);
    trit_model_free(fx->m);
}

/* What the callback checks: the logits of entry i, token t must equal want[i][t]. */
typedef struct check {
    const float *want[NSEQ][NBATCH]; /* [entry][token of the entry] */
    int V, n_seen, n_bad;
    char what[128];
} check;

static void on_logits(void *ud, int entry, int tok, const float *logits) {
    check *k = ud;
    k->n_seen++;
    const float *w = k->want[entry][tok];
    if (!w || memcmp(w, logits, (size_t)k->V * sizeof(float))) {
        k->n_bad++;
        cr_log_error("%s: entry %d token %d differs from single-stream", k->what, entry, tok);
    }
}

/* Run the sequences in subset[0..n) through batched steps (entries ordered by order(step)),
 * each step: the next prefill chunk (NBATCH-aligned) or the next decode token of every
 * sequence. Every wanted row must equal the reference. */
static void run_batched(fixture *fx, const int *subset, int n, int order_kind) {
    trit_ctx *c = make_ctx(fx->m);
    trit_seq *seq[NSEQ];
    int done[NSEQ] = {0}; /* tokens evaluated */
    for (int i = 0; i < n; i++) seq[i] = trit_seq_new(c);
    int n_checked = 0;
    for (int step = 0;; step++) {
        trit_batch_entry e[NSEQ];
        check k = {.V = fx->V};
        snprintf(k.what, sizeof k.what, "%d seqs, order %d, step %d", n, order_kind, step);
        int ne = 0;
        for (int j = 0; j < n; j++) {
            /* order 0: as given; 1: reversed; 2: rotated by the step */
            const int i = order_kind == 0 ? j : order_kind == 1 ? n - 1 - j : (j + step) % n;
            const int s = subset[i], P = prompt_len[s];
            if (done[i] >= P + GEN) continue;
            trit_batch_entry *b = &e[ne];
            *b = (trit_batch_entry){.seq = seq[i], .tokens = &fx->tok[s][done[i]], .pos = done[i]};
            if (done[i] < P) { /* prefill chunk */
                b->n_tokens = TRIT_MIN(NBATCH, P - done[i]);
                const bool final = done[i] + b->n_tokens == P;
                b->out = final ? TRIT_OUT_LAST : TRIT_OUT_NONE;
                if (final) k.want[ne][b->n_tokens - 1] = fx->ref[s][0];
            } else { /* decode */
                b->n_tokens = 1;
                b->out = TRIT_OUT_LAST;
                k.want[ne][0] = fx->ref[s][done[i] - P + 1];
            }
            done[i] += b->n_tokens;
            ne++;
        }
        if (!ne) break;
        trit_err err = {0};
        cr_assert_eq(trit_batch_eval(c, e, ne, on_logits, &k, &err), 0, "batch: %s", err.msg);
        cr_assert_eq(k.n_bad, 0, "%s: %d of %d rows differ", k.what, k.n_bad, k.n_seen);
        n_checked += k.n_seen;
    }
    int want = 0;
    for (int i = 0; i < n; i++) want += GEN + 1;
    cr_assert_eq(n_checked, want, "rows checked %d, expected %d", n_checked, want);
    for (int i = 0; i < n; i++) trit_seq_free(seq[i]);
    trit_ctx_free(c);
}

static void invariance_embd(enum trit_arch arch, uint32_t type, uint32_t embd_type) {
    fixture fx = {.m = make_model_embd(arch, type, embd_type)};
    make_reference(&fx);
    const int all[NSEQ] = {0, 1, 2, 3}, two[2] = {3, 1}, three[3] = {2, 0, 3};
    for (int s = 0; s < NSEQ; s++) run_batched(&fx, &all[s], 1, 0);
    run_batched(&fx, two, 2, 0);
    run_batched(&fx, three, 3, 2);
    for (int order = 0; order < 3; order++) run_batched(&fx, all, NSEQ, order);
    free_fixture(&fx);
}

static void invariance(enum trit_arch arch, uint32_t type) {
    invariance_embd(arch, type, 0);
}

Test(batch, llama_f16_invariant) {
    invariance(TRIT_ARCH_LLAMA, TRIT_F16);
}

Test(batch, bitnet_tq2_invariant) {
    invariance(TRIT_ARCH_BITNET, TRIT_TQ2_0);
}

/* Weights the reference repacks with a separate gemm order for groups of 4 rows (Q4_K on
 * AVX2: llama-quantize's default embedding/output for llama TQ2_0, and Q4_K_M's layers): a
 * prefill entry must keep its own groups and decode rows the one-token order. */
Test(batch, llama_q4k_repacked_invariant) {
    invariance_embd(TRIT_ARCH_LLAMA, TRIT_TQ2_0, TRIT_Q4_K);
    invariance_embd(TRIT_ARCH_LLAMA, TRIT_Q4_K, TRIT_Q4_K);
}

/* Draft verification: one steps entry with the next GEN tokens of sequence 3 (split-KV rows)
 * next to a decode row and a prefill chunk of other sequences gives each row the logits of
 * the one-token step. */
Test(batch, steps_equal_single_token_steps) {
    fixture fx = {.m = make_model(TRIT_ARCH_LLAMA, TRIT_F16)};
    make_reference(&fx);
    trit_ctx *c = make_ctx(fx.m);
    trit_seq *a = trit_seq_new(c), *b = trit_seq_new(c), *d = trit_seq_new(c);
    trit_err err = {0};
    /* a: sequence 3's prompt; b: sequence 1's prompt */
    for (int off = 0; off < prompt_len[3]; off += NBATCH) {
        trit_batch_entry e = {.seq = a,
                              .tokens = &fx.tok[3][off],
                              .n_tokens = TRIT_MIN(NBATCH, prompt_len[3] - off),
                              .pos = off};
        cr_assert_eq(trit_batch_eval(c, &e, 1, on_logits, &(check){.V = fx.V}, &err), 0, "%s",
                     err.msg);
    }
    trit_batch_entry pre = {.seq = b, .tokens = fx.tok[1], .n_tokens = prompt_len[1]};
    cr_assert_eq(trit_batch_eval(c, &pre, 1, on_logits, &(check){.V = fx.V}, &err), 0);
    check k = {.V = fx.V};
    snprintf(k.what, sizeof k.what, "steps");
    const int P3 = prompt_len[3], P1 = prompt_len[1];
    trit_batch_entry e[3] = {
        {.seq = b, .tokens = &fx.tok[1][P1], .n_tokens = 1, .pos = P1, .out = TRIT_OUT_LAST},
        {.seq = a,
         .tokens = &fx.tok[3][P3],
         .n_tokens = GEN,
         .pos = P3,
         .out = TRIT_OUT_ALL,
         .steps = true},
        {.seq = d, .tokens = fx.tok[2], .n_tokens = prompt_len[2], .out = TRIT_OUT_LAST},
    };
    k.want[0][0] = fx.ref[1][1];
    for (int t = 0; t < GEN; t++) k.want[1][t] = fx.ref[3][t + 1];
    k.want[2][prompt_len[2] - 1] = fx.ref[2][0];
    cr_assert_eq(trit_batch_eval(c, e, 3, on_logits, &k, &err), 0, "%s", err.msg);
    cr_assert_eq(k.n_seen, GEN + 2);
    cr_assert_eq(k.n_bad, 0, "%d rows differ", k.n_bad);
    /* a rejected draft: rewind sequence 3 to P3 + 2 and step on as plain decode */
    trit_batch_entry r = {
        .seq = a, .tokens = &fx.tok[3][P3 + 2], .n_tokens = 1, .pos = P3 + 2, .out = TRIT_OUT_LAST};
    check k2 = {.V = fx.V, .want[0][0] = fx.ref[3][3]};
    cr_assert_eq(trit_batch_eval(c, &r, 1, on_logits, &k2, &err), 0, "%s", err.msg);
    cr_assert_eq(k2.n_bad, 0);
    trit_seq_free(a);
    trit_seq_free(b);
    trit_seq_free(d);
    trit_ctx_free(c);
    free_fixture(&fx);
}

Test(batch, bad_batches_refused) {
    fixture fx = {.m = make_model(TRIT_ARCH_LLAMA, TRIT_F16)};
    trit_ctx *c = make_ctx(fx.m);
    trit_seq *a = trit_seq_new(c);
    int32_t toks[NBATCH + 1] = {0};
    trit_err err = {0};
    check k = {.V = fx.m->hp.n_vocab};
    trit_batch_entry twice[2] = {{.seq = a, .tokens = toks, .n_tokens = 1},
                                 {.seq = a, .tokens = toks, .n_tokens = 1}};
    cr_assert_eq(trit_batch_eval(c, twice, 2, on_logits, &k, &err), -1);
    cr_assert(strstr(err.msg, "share a sequence"), "%s", err.msg);
    trit_batch_entry big = {.seq = a, .tokens = toks, .n_tokens = NBATCH + 1};
    cr_assert_eq(trit_batch_eval(c, &big, 1, on_logits, &k, &err), -1);
    cr_assert(strstr(err.msg, "entry 0"), "%s", err.msg);
    trit_batch_entry gap = {.seq = a, .tokens = toks, .n_tokens = 1, .pos = 3};
    cr_assert_eq(trit_batch_eval(c, &gap, 1, on_logits, &k, &err), -1);
    cr_assert(strstr(err.msg, "position 3"), "%s", err.msg);
    toks[0] = fx.m->hp.n_vocab;
    trit_batch_entry badtok = {.seq = a, .tokens = toks, .n_tokens = 1};
    cr_assert_eq(trit_batch_eval(c, &badtok, 1, on_logits, &k, &err), -1);
    cr_assert(strstr(err.msg, "token id"), "%s", err.msg);
    cr_assert_eq(trit_batch_eval(c, NULL, 0, on_logits, &k, &err), -1);
    cr_assert_eq(k.n_seen, 0);
    cr_assert_eq(trit_seq_n_past(a), 0, "a refused batch evaluates nothing");
    trit_seq_free(a);
    trit_ctx_free(c);
    trit_model_free(fx.m);
}

/* The output matmul runs OUT_BLOCK (64) rows at a time: every row of a logits_all eval must
 * equal one trit_matmul over all rows at once (tinyBLAS order for >= 2 rows): 129 rows (blocks
 * 64 + 65: a last block of a single row would sum in the other order) and 130 (64 + 64 + 2).
 * result_norm (the output matmul's input) comes from the trace hook. */
typedef struct norm_capture {
    float *rows;
    int64_t n;
} norm_capture;
static void capture_norm(void *ud, const char *name, const float *data, int64_t ne0, int64_t ne1) {
    norm_capture *nc = ud;
    if (strcmp(name, "result_norm")) return;
    nc->rows = realloc(nc->rows, (size_t)(ne0 * ne1) * sizeof(float));
    memcpy(nc->rows, data, (size_t)(ne0 * ne1) * sizeof(float));
    nc->n = ne1;
}

Test(batch, all_logits_blocks_equal_one_matmul) {
    trit_model *m = make_model(TRIT_ARCH_LLAMA, TRIT_F16);
    const trit_weight *w = &m->output;
    const int V = m->hp.n_vocab;
    int32_t toks[130];
    for (int i = 0; i < 130; i++) toks[i] = (i * 7919 + 13) % V;
    trit_ctx_params cp = trit_ctx_default_params();
    cp.n_ctx = 512;
    cp.n_threads = THREADS; /* n_batch 512: one chunk */
    for (int n = 129; n <= 130; n++) {
        trit_err err = {0};
        trit_ctx *c = trit_ctx_new(m, &cp, &err);
        cr_assert_not_null(c, "%s", err.msg);
        norm_capture nc = {0};
        trit_ctx_set_trace(c, capture_norm, &nc);
        cr_assert_eq(trit_eval(c, toks, n, 0, true, &err), 0, "%s", err.msg);
        cr_assert_eq(nc.n, n, "result_norm rows");
        float *Y = malloc((size_t)nc.n * V * sizeof(float));
        trit_matmul(trit_kernels_best(), NULL, w->type, w->data, w->scale, w->ne[0], w->ne[1],
                    nc.rows, nc.n, Y);
        const int first = n - (int)nc.n;
        for (int r = 0; r < nc.n; r++)
            cr_assert(!memcmp(trit_get_logits(c, first + r), Y + (size_t)r * V,
                              (size_t)V * sizeof(float)),
                      "%d tokens: logits row %d differ from one matmul over all rows", n,
                      first + r);
        free(Y);
        free(nc.rows);
        trit_ctx_free(c);
    }
    trit_model_free(m);
}
