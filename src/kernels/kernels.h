/* kernels — the arithmetic of inference: activation quantization, dot products, threaded
 * matmul, RMSNorm, RoPE, softmax, attention.
 *
 * Contract: every kernel exists as a scalar reference in kernels/ref/ (obviously right) and
 * optionally as optimized x86 versions (kernels/x86/..._avx2.c, ..._avx512.c) or aarch64 ones
 * (kernels/arm/..._neon.c), chosen at run time by trit_kernels_best() from the CPU's features
 * (CPUID, HWCAP); $TRIT_KERNELS=ref|avx2|avx512|neon overrides. Every set sums in the order of
 * one reference llama.cpp build (ggml CPU, GCC; the numerics table below: the AVX-512 build, the
 * AVX2 one or the aarch64 one; see ref/ggml_order.h), so results are
 * bit-identical to that llama.cpp's for the same op and thread count. tests/unit/test_kernels.c
 * checks each optimized kernel against its reference (NMSE, as llama.cpp's test-backend-ops) and,
 * where the reference is built, against ggml's own x86 functions bit for bit. I2_S (not in ggml)
 * follows bitnet.cpp's integer sums. trit_kernels_for(k, TRIT_NUMERICS_FAST) is a copy of a set
 * whose fast kernels (attention) sum in their own documented order instead (scalar twin + NMSE
 * test; see "numerics modes"). The decode sweep, prefetch distance and pool spin come from a
 * per-CPU table (trit_tuning). Depends on quant and base only; knows nothing of models, engines or
 * servers. */
#ifndef TRIT_KERNELS_H
#define TRIT_KERNELS_H

#include "base/base.h"
#include "quant/quant.h"

/* Which activation format a weight type is multiplied with (as ggml's vec_dot_type):
 * TQ1_0/TQ2_0 and Q2_K..Q6_K -> Q8_K, Q8_0/Q4_0/Q5_0 -> Q8_0, Q4_1/Q5_1 -> Q8_1, F16 -> F16,
 * BF16 -> BF16, F32 -> F32, I2_S -> TRIT_ACT_I8 (one int8 row with one fp32 scale per row,
 * bitnet.cpp's per-token absmax). A dot type's repack flags (TRIT_REPACK8, below) change the
 * summation order only, not the activation format: they are ignored here. */
#define TRIT_ACT_I8 1000
uint32_t trit_act_type(uint32_t wtype);
/* Bytes of one quantized activation row of n elements for weight type wtype. */
size_t trit_act_row_size(uint32_t wtype, int64_t n);

/* ---- numerics tables ----
 * Which reference build trit's sums reproduce. ggml's CPU code sums in other orders per
 * instruction set (GGML_F32_EPR lanes in ggml_vec_dot_f32/f16, tinyBLAS's register width,
 * ggml_v_expf's form, the SwiGLU/softmax vector width, which weights CPU_REPACK takes), so
 * "bit-identical to llama.cpp" means to one build of it: the table names it, and every kernel
 * whose order depends on the build reads the table in use (ref/ggml_order.h has each order):
 *   avx512  scripts/reference's default build on an AVX-512 CPU (build-avx512vnni): 16 lanes,
 *           Q2_K repacked (ggml_cpu_has_avx512()).
 *   avx2    the AVX2 + FMA + F16C build (build-avx2, TRIT_REF_SET=avx2): 8 lanes, the AVX2
 *           ggml_v_expf, Q2_K not repacked.
 *   arm64   the aarch64 NEON + dotprod + fp16 build (build-arm64, TRIT_REF_SET=arm64), run as a
 *           Neoverse-N1: 4 lanes, F16 sums in fp16, one float per TQ/Q6_K/Q4_K dot, the N1
 *           repacks of Q4_0/Q4_K/Q6_K, fused Q8_K rounding, NORM RoPE's vectorized form.
 * The table goes with the kernel set chosen at start (trit_kernels_best(): avx512 -> avx512,
 * avx2 -> avx2, ref -> the CPU's own: avx512 where it has AVX-512, else avx2), so
 * TRIT_KERNELS=avx2 reproduces build-avx2 and the default reproduces the CPU's default
 * reference build. Every set computes either table: under the avx2 one, the avx512 set hands
 * its float kernels (F32/F16/BF16 dots, tinyBLAS, attention) to the avx2 set's. */
typedef struct trit_numerics_table {
    const char *name;      /* "avx512", "avx2" */
    const char *ref_build; /* the reference build it matches: "build-avx512vnni", "build-avx2" */
    int lanes;             /* ggml's GGML_F32_EPR in that build: 16, 8 or 4 (NEON) */
    bool repack_q2_k;      /* CPU_REPACK takes Q2_K (8-row interleave) in that build */
    bool tq_one_acc;       /* TQ1_0/TQ2_0 x Q8_K: one float, fma per block (NEON), not 8 lanes */
    bool f16_arith;        /* F16 dots, tinyBLAS and the attention's V sum in fp16 (NEON fp16) */
    bool q8k_fma;        /* Q8_K quantizer: iscale * x + 1.5 * 2^23 fused (ggml-base on aarch64) */
    const char *partial; /* NULL: every order is the build's; else what is not yet */
} trit_numerics_table;
/* arm64 (issue 20): the aarch64 NEON + dotprod + fp16 build (build-arm64, cross-built by
 * TRIT_REF_SET=arm64 scripts/reference): 4 float lanes, fp16 arithmetic for F16 (ggml_order.h's
 * arm64 orders), one float per TQ dot, the contracted Q8_K quantizer. .partial names what does
 * not follow it yet. The table of every aarch64 target. */
extern const trit_numerics_table trit_numerics_avx512, trit_numerics_avx2, trit_numerics_arm64;
/* The table in use: the one paired with trit_kernels_best(), unless trit_numerics_use set one. */
const trit_numerics_table *trit_numerics_table_get(void);
/* Use table t from now on (NULL: back to the kernel set's). For tests that compare a scalar
 * twin with a kernel under another build's table; not thread-safe with running kernels. */
void trit_numerics_use(const trit_numerics_table *t);
/* "avx2" / "avx512" / "arm64" -> the table; NULL for anything else. */
const trit_numerics_table *trit_numerics_table_named(const char *name);

typedef struct trit_kernels {
    const char *name; /* "ref", "avx2", "avx512" */
    /* Quantize one activation row for weight type wtype into dst (trit_act_row_size bytes). */
    void (*quantize_act)(uint32_t wtype, const float *x, void *dst, int64_t n);
    /* dot(weight row, activation row) for n elements, including all block scales. I2_S
     * returns the dot scaled by the activation scale only (the per-tensor weight scale is
     * applied by the caller). Here and in vec_dot_rows/gemm, wtype is a dot type: a weight
     * type, or one with repack flags naming the reference's repacked order (TRIT_REPACK8). */
    float (*vec_dot)(uint32_t wtype, int64_t n, const void *w_row, const void *act_row);
    /* Row-block variant for cache efficiency: out[r] = vec_dot(w_row r, act) for nr rows
     * spaced row_bytes apart. */
    void (*vec_dot_rows)(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                         const void *act_row, float *out);
    /* Optional (NULL: trit_matmul uses vec_dot_rows per token). Tile of nr weight rows x nt
     * activation rows (act_bytes apart): out[t * ldo + r] = vec_dot(w row r, act row t),
     * except F32/F16/BF16 weights, where gemm sums in tinyBLAS's order (one 16-lane fma
     * accumulator, see ref/ggml_order.h) and is only called where trit_matmul_tinyblas() holds. */
    void (*gemm)(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                 const void *act, size_t act_bytes, int64_t nt, float *out, int64_t ldo);
    /* Optional (NULL: vec_dot_rows per token). gemm's tile in vec_dot's order for every type,
     * out[t * ldo + r] = vec_dot(w row r, act row t) bit for bit: decode rows of a batch that
     * must sum as one-token products would, with each weight row loaded once for all nt. */
    void (*vec_dot_tile)(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                         const void *act, size_t act_bytes, int64_t nt, float *out, int64_t ldo);
    /* Optional (NULL: use trit_attention): same contract and numerics as trit_attention. */
    void (*attention)(trit_pool *pool, const float *q, const void *kc, const void *vc,
                      uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int head_dim,
                      int pos0, int n_tok, float scale, float *out);
} trit_kernels;

/* Q2_K..Q6_K x Q8_K dots of n elements (whole QK_K blocks), bit-identical to the reference's x86
 * ggml_vec_dot_qN_K_q8_K: the scalar twin (ref/kquants_ref.c) and the optimized versions
 * (x86/kquants_avx2.c, x86/kquants_avx512.c; types without a fast path there use the twin).
 * The _rows forms: out[r] = dot(row r of nr rows row_bytes apart, act). Call the AVX2/AVX-512
 * ones only where trit_kernels_avx2()/avx512() is non-NULL. NAN for another type. */
float trit_ref_dot_kquant(uint32_t wtype, int64_t n, const void *w, const void *act);
/* TQ2_0 / TQ1_0 x Q8_K in the arm64 table's order (ref.c; the scalar twins of the neon set's
 * dots), and the arm64 table's Q8_K quantizer (ref.c; the neon set's). */
float trit_ref_dot_tq2_0_one_acc(int64_t n, const block_tq2_0 *x, const block_q8_K *y);
float trit_ref_dot_tq1_0_one_acc(int64_t n, const block_tq1_0 *x, const block_q8_K *y);
void trit_ref_quantize_q8_K_fma(const float *x, block_q8_K *y, int64_t n);
float trit_avx2_dot_kquant(uint32_t wtype, int64_t n, const void *w, const void *act);
void trit_avx2_dot_kquant_rows(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                               int64_t nr, const void *act, float *out);
float trit_avx512_dot_kquant(uint32_t wtype, int64_t n, const void *w, const void *act);
void trit_avx512_dot_kquant_rows(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                                 int64_t nr, const void *act, float *out);
/* nt F16 activation rows (act_bytes apart, n elements) as F32 rows of n floats in a per-thread
 * buffer (valid until the thread's next call; the conversion is exact): what the x86 sets'
 * vec_dot_tile multiplies F16 weights with. AVX2+F16C CPUs only (x86/kernels_avx2.c). */
const float *trit_x86_acts_f32(int64_t n, const void *act, size_t act_bytes, int64_t nt);
/* The reference's CPU_REPACK buffer (ggml-cpu repack.cpp, on by default in llama.cpp; its
 * choice is ggml_repack_get_optimal_repack_type) stores a 2-D weight matrix whose row count
 * (ne[1]) is a multiple of 8 as 8-row interleaved blocks when its type has an x86 repacked
 * kernel: Q4_0 and Q4_K (AVX2), Q2_K (AVX-512; the reference build has both). Its gemv/gemm
 * kernels reduce each step of a block to one integer per row, so their float order differs
 * from vec_dot's. trit names that order with flags OR-ed into the weight type, the "dot type"
 * trit_matmul_dot_type(wtype, n_out, tok, n_tok) returns, which trit_matmul passes to a kernel
 * set's vec_dot / vec_dot_rows / gemm, deciding per weight (part of a trit_matmul_multi), as
 * the reference repacks tensor by tensor. One mechanism for every repacked type:
 *   Q4_0 | TRIT_REPACK8: ggml_gemv/gemm_q4_0_8x8_q8_0, one float per output,
 *     acc = fma((float)block_isum, wd * ad, acc) block after block. The gemm (groups of 4
 *     tokens) sums each 32-element block exactly as the gemv, so every token gets this type.
 *   Q4_K / Q2_K | TRIT_REPACK8 (gemv) and | TRIT_REPACK8 | TRIT_REPACK8_GEMM (gemm):
 *     per step: acc = fma((float)sum(sc * q * q8), xd * yd, acc);
 *               accm = fma((float)sum(min * bsums), xdmin * yd, accm);   result = acc - accm.
 *     A step is the whole block in gemv, and 64 (Q4_K) or 128 (Q2_K) elements in gemm, which
 *     the reference uses for the first n_tok - n_tok % 4 tokens of a batch (the rest: gemv).
 * Any other type or shape: the type itself (vec_dot's order). */
#define TRIT_REPACK8      0x10000u
#define TRIT_REPACK8_GEMM 0x20000u
/* OR-ed into trit_matmul's wtype by a caller whose weight the reference does not repack: a
 * tied LM head is token_embd, loaded for GET_ROWS, which the repack buffer never takes. Its
 * products then use the type's vec_dot order for every shape. */
#define TRIT_NO_REPACK 0x40000u
uint32_t trit_matmul_dot_type(uint32_t wtype, int64_t n_out, int64_t tok, int64_t n_tok);

/* Whether wtype is one of Q2_K..Q6_K (repack flags allowed). */
static inline bool trit_is_kquant(uint32_t wtype) {
    const uint32_t t = wtype & ~(TRIT_REPACK8 | TRIT_REPACK8_GEMM);
    return t >= TRIT_Q2_K && t <= TRIT_Q6_K;
}

/* The optimized tables themselves (defined in x86/..._avx2.c and x86/..._avx512.c);
 * use trit_kernels_avx2()/avx512(), which check the CPU first. */
extern const trit_kernels trit_kernels_avx2_impl;
extern const trit_kernels trit_kernels_avx512_impl;
/* aarch64 NEON + dotprod + fp16 (kernels/arm/kernels_neon.c; empty elsewhere): the TQ1_0 and
 * TQ2_0 dots (sdot) and the F16 dot (fp16 fma) in the arm64 table's order, every other kernel
 * the scalar set's. trit_kernels_neon() checks HWCAP (asimddp, asimdhp). */
extern const trit_kernels trit_kernels_neon_impl;
const trit_kernels *trit_kernels_neon(void); /* NULL if not compiled or CPU lacks them */

const trit_kernels *trit_kernels_ref(void);
const trit_kernels *trit_kernels_avx2(void);   /* NULL if not compiled or CPU lacks it */
const trit_kernels *trit_kernels_avx512(void); /* NULL if not compiled or CPU lacks it */
const trit_kernels *trit_kernels_best(void);
/* CPU features as a string ("avx2 fma f16c avx512f avx512bw avx512vnni ..."). */
const char *trit_cpu_features(void);

/* Per-CPU tuning of the decode matmul and the pool spin, from a table keyed on the CPUID
 * vendor and family (documented in kernels.c and docs/PERFORMANCE.md); the environment
 * variables TRIT_SWEEP_ROWS, TRIT_PF_ROWS and TRIT_SPIN_US (whole numbers) override a field. None
 * of these change a result (each row's dot is the same whatever the sweep). */
typedef struct trit_tuning {
    const char *row; /* the table row chosen: "intel-avx512", "amd-zen4", "avx2", "default" */
    char cpu[64];    /* "GenuineIntel family 0x6 model 0x8f" */
    int sweep_rows;  /* decode: weight rows per vec_dot_rows call (they share activation loads) */
    int pf_rows;     /* decode: rows prefetched ahead of the current sweep (0: none) */
    int pf_max_kb;   /* ... but at most this many KiB ahead, never under one sweep (0: no cap) */
    int spin_us;     /* thread-pool spin before sleeping (trit_pool_set_spin_us) */
} trit_tuning;
const trit_tuning *trit_tuning_get(void);
/* Replace sweep_rows, pf_rows, pf_max_kb and spin_us (kbench --tune; not thread-safe with a
 * running matmul).
 */
void trit_tuning_set(const trit_tuning *t);

/* Whether the reference (llamafile tinyBLAS, AVX-512 build) handles this product, so trit_matmul
 * uses gemm's tinyBLAS order: F32/F16/BF16 weights, n_tok >= 2, n_in % 16 == 0,
 * n_out % 4 == 0. Elsewhere they sum in ggml_vec_dot's order (vec_dot). */
bool trit_matmul_tinyblas(uint32_t wtype, int64_t n_in, int64_t n_out, int64_t n_tok);

/* Y[t][r] = w_scale * dot(W row r, X row t) for t < n_tok, r < n_out.
 * W: n_out rows of n_in elements of wtype (row stride trit_row_size; I2_S packed rows).
 * X: n_tok rows of n_in floats. Y: n_tok rows of n_out floats. One pool run: activations are
 * quantized once per row (by the pool's threads), then rows of W are handed out to threads in
 * shrinking chunks (guided scheduling). */
void trit_matmul(const trit_kernels *k, trit_pool *pool, uint32_t wtype, const void *W,
                 float w_scale, int64_t n_in, int64_t n_out, const float *X, int64_t n_tok,
                 float *Y);

/* One product of a trit_matmul_multi: Y = w_scale * W . X^T, W n_out rows (Y n_tok rows of
 * n_out floats). */
typedef struct trit_mm_part {
    const void *W;
    float w_scale;
    int64_t n_out;
    float *Y;
} trit_mm_part;
#define TRIT_MM_MAX_PARTS 8

/* Several products of weights of the same type and row length with the same activations (q/k/v,
 * gate/up): X is quantized once and the rows of all parts are split across the pool in a single
 * run. Each Y is bit-identical to trit_matmul(k, pool, wtype, W, w_scale, n_in, n_out, X, n_tok,
 * Y) (a row's dot does not depend on how rows are grouped). 1 <= n_parts <= TRIT_MM_MAX_PARTS. */
void trit_matmul_multi(const trit_kernels *k, trit_pool *pool, uint32_t wtype, int64_t n_in,
                       const float *X, int64_t n_tok, int n_parts, const trit_mm_part *parts);

/* ---- legacy 32-weight types (kernels/ref/legacy_ref.c, kernels/x86/legacy_avx2.c) ----
 * Scalar twins and AVX2 versions, bit-identical to each other and to the reference's x86
 * build (orders: legacy_ref.c's header). The kernel sets dispatch Q4_0/Q4_1/Q5_0/Q5_1 and
 * Q4_0 | TRIT_REPACK8 to these; the _avx2 ones need an AVX2+FMA+F16C CPU (trit_kernels_avx2()). */
void trit_ref_quantize_q8_1(const float *x, block_q8_1 *y, int64_t n); /* x86 quantize_row_q8_1 */
float trit_ref_dot_legacy(uint32_t wtype, int64_t n, const void *w, const void *act);
float trit_ref_dot_q4_0_r8(int64_t n, const block_q4_0 *w, const block_q8_0 *act);
void trit_avx2_quantize_q8_1(const float *x, block_q8_1 *y, int64_t n);
float trit_avx2_dot_legacy(uint32_t wtype, int64_t n, const void *w, const void *act);
float trit_avx2_dot_q4_0_r8(int64_t n, const block_q4_0 *w, const block_q8_0 *act);
/* The (dot) types the legacy kernels compute: Q4_0/Q4_1/Q5_0/Q5_1 and repacked Q4_0. */
static inline bool trit_is_legacy_wtype(uint32_t t) {
    return t == TRIT_Q4_0 || t == TRIT_Q4_1 || t == TRIT_Q5_0 || t == TRIT_Q5_1 ||
           t == (TRIT_Q4_0 | TRIT_REPACK8);
}
/* gemm's contract (kernels.h) for those types: each result equals the type's vec_dot; a
 * weight block is unpacked once per tile of tokens. */
void trit_avx2_gemm_legacy(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                           const void *act, size_t act_bytes, int64_t nt, float *out, int64_t ldo);
/* Streaming-read bandwidth in bytes/s: the pool's threads each read a slice of a buffer of
 * `bytes` (much larger than the caches), the best of reps timed passes after one warm-up. The
 * decode bound is this divided by the weight bytes read per token (bench/engine-vs-llama's
 * rule; trit bench prints it). TRIT_BW_BYTES/REPS are the sizes both use. */
#define TRIT_BW_BYTES ((size_t)1 << 30)
#define TRIT_BW_REPS  5
double trit_read_bandwidth(trit_pool *pool, size_t bytes, int reps);
/* trit_matmul_multi with a choice of summation order: single_order = true sums every row of X
 * as a one-token product (n_tok == 1) would, whatever n_tok, so a batch that joins the decode
 * rows of several sequences gives each row the numbers of its own single-token step
 * (F32/F16/BF16 weights use ggml_vec_dot's order instead of tinyBLAS's, repacked Q4_K/Q2_K
 * their gemv order instead of the gemm one (TRIT_REPACK8); every other dot type sums a row the
 * same way for any n_tok). single_order = false is trit_matmul_multi. */
void trit_matmul_multi_order(const trit_kernels *k, trit_pool *pool, uint32_t wtype, int64_t n_in,
                             const float *X, int64_t n_tok, int n_parts, const trit_mm_part *parts,
                             bool single_order);

/* ---- elementwise ops (reference numerics = ggml CPU) ---- */
/* y = x / sqrt(mean(x^2) + eps) (sum accumulated in double, as ggml), then y *= w if w. */
void trit_rmsnorm(const float *x, const float *w, float *y, int64_t n, float eps);
/* RoPE in place on n_head heads of head_dim floats at position pos; n_rot dims rotated.
 * mode 0 = NORM (adjacent pairs, llama), 2 = NEOX (halves), as ggml's rope modes. */
void trit_rope(float *x, int n_head, int head_dim, int n_rot, int pos, float freq_base, int mode);
void trit_softmax(float *x, int64_t n); /* in place, max-subtracted */
float trit_silu(float x);               /* x / (1 + expf(-x)), libm expf (ggml_silu_f32) */
/* One row of SwiGLU, y = silu(g) * u, as ggml_vec_swiglu_f32 on the reference's AVX-512
 * build: ggml's polynomial exp (ggml_v_expf) for the first n - n%16 elements, libm after. */
void trit_swiglu(const float *g, const float *u, float *y, int64_t n);
/* AVX-512 twins (kernels/x86/kernels_avx512.c; call only when trit_kernels_avx512() is
 * non-NULL): trit_swiglu bit for bit (trit_swiglu runs it when the best set is avx512), and
 * go_v_expf of 16 floats (ref/ggml_order.h). */
void trit_swiglu_avx512(const float *g, const float *u, float *y, int64_t n);
void trit_v_expf16_avx512(const float *x, float *y);
/* The AVX2 attention's v_expf (kernels/x86/attention_avx2.c) on 8 floats: go_v_expf per lane
 * (call only when trit_kernels_avx2() is non-NULL). */
void trit_v_expf8_avx2(const float *x, float *y);
/* The AVX2 build's ggml_v_expf on 8 floats (attention_avx2.c, the avx2 table's softmax): go_v_expf8
 * per lane (call only when trit_kernels_avx2() is non-NULL). */
void trit_v_expf8b_avx2(const float *x, float *y);

/* Causal attention over a KV cache for n_tok new query tokens at positions pos0..pos0+n_tok-1;
 * the cache already holds K,V for positions 0..pos0+n_tok-1.
 * q:   [n_tok][n_head][head_dim] f32 (after RoPE)
 * kc:  [n_head_kv][n_ctx][head_dim] of kv_type (TRIT_F16 or TRIT_F32), vc likewise
 * out: [n_tok][n_head][head_dim] f32.  GQA: head h reads kv head h / (n_head / n_head_kv).
 * Work is split over (token, head) and, for long contexts, over KV chunks (split-KV): a single
 * query token whose KV view (llama.cpp's, padded to 256 cells: max(256, pad256(n_kv)),
 * independent of n_ctx) has >= 512 cells is split into one chunk per pool thread, each chunk's
 * (max, sum, V sum) combined with log-sum-exp rescaling, exactly as ggml's split-KV path with the
 * same thread count (so trit -t N matches llama.cpp -t N bit for bit; one thread never splits). */
void trit_attention(trit_pool *pool, const float *q, const void *kc, const void *vc,
                    uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int head_dim, int pos0,
                    int n_tok, float scale, float *out);

/* ggml's one_chunk attention kernel for one query row over keys [ic0, ic1) of one KV head
 * (kh, vh: that head's rows): the unnormalized V sum (f32; an F16 cache's fp16 accumulator
 * converted) in acc[head_dim], the running max in *M and sum in *S. */
typedef void (*trit_att_range_fn)(const float *qrow, const void *kh, const void *vh,
                                  uint32_t kv_type, int head_dim, float scale, int ic0, int ic1,
                                  float *acc, float *M, float *S);
/* trit_attention for one decode token with its split-KV chunks computed by range (a kernel
 * set's bit-identical one_chunk kernel); the chunking and combine are trit_attention's. */
void trit_attention_split(trit_pool *pool, trit_att_range_fn range, const float *q, const void *kc,
                          const void *vc, uint32_t kv_type, int n_ctx, int n_head, int n_head_kv,
                          int head_dim, int pos0, float scale, float *out);

/* Whether trit_attention splits a decode step (n_tok == 1) with n_kv keys over n_threads. */
bool trit_attention_splits(int n_ctx, int n_kv, int n_threads);

/* AVX-512 attention (kernels/x86/kernels_avx512.c): trit_attention's contract and numerics
 * (K.Q sums in f32 lanes instead of a sequential double sum), dynamic work split. Call only
 * when trit_kernels_avx512() is non-NULL (it is that set's .attention). */
void trit_attention_avx512(trit_pool *pool, const float *q, const void *kc, const void *vc,
                           uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int head_dim,
                           int pos0, int n_tok, float scale, float *out);

/* AVX2 attention (kernels/x86/attention_avx2.c): trit_attention bit for bit; its tiled path
 * (>= 64 query rows) vectorized, everything else is trit_attention itself. Call only when
 * trit_kernels_avx2() is non-NULL (it is that set's .attention). */
void trit_attention_avx2(trit_pool *pool, const float *q, const void *kc, const void *vc,
                         uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int head_dim,
                         int pos0, int n_tok, float scale, float *out);

/* ---- numerics modes ----
 * TRIT_NUMERICS_EXACT (the default): every result bit-identical to the reference ggml.
 * TRIT_NUMERICS_FAST (--numerics fast): kernels that sum in a faster order where ggml's costs
 * speed; each has a scalar twin in the same order and an NMSE test against the exact kernel
 * (test_kernels, test-backend-ops' thresholds). Results are still deterministic: independent
 * of the thread count and of the other work in the process. What fast changes today:
 * attention (trit_attention_fast: one f32 path, no fp16 round trips, 16-lane K.Q). */
enum trit_numerics { TRIT_NUMERICS_EXACT = 0, TRIT_NUMERICS_FAST = 1 };
/* "exact" / "fast" -> the mode; -1 for anything else. */
int trit_numerics_parse(const char *s);
const char *trit_numerics_name(int numerics);
/* The kernel set for a numerics mode: k itself for EXACT; for FAST a copy of k (same
 * quantizers and dots) whose name ends in "+fast" and whose fast kernels replace the exact
 * ones. NULL k: trit_kernels_best(). */
const trit_kernels *trit_kernels_for(const trit_kernels *k, int numerics);

/* Attention, --numerics fast: trit_attention's contract in the order documented in ops.c
 * (scalar twin) and followed bit for bit by trit_attention_fast_avx512 (call only when
 * trit_kernels_avx512() is non-NULL). */
void trit_attention_fast(trit_pool *pool, const float *q, const void *kc, const void *vc,
                         uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int head_dim,
                         int pos0, int n_tok, float scale, float *out);
void trit_attention_fast_avx512(trit_pool *pool, const float *q, const void *kc, const void *vc,
                                uint32_t kv_type, int n_ctx, int n_head, int n_head_kv,
                                int head_dim, int pos0, int n_tok, float scale, float *out);

#endif
