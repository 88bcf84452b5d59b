/* kernels/kernels.c — activation formats, CPU feature detection, kernel-set dispatch and the
 * threaded matmul (Y = w_scale * W . X^T) built on a kernel set's quantize_act/vec_dot_rows.
 * Contract: see kernels.h. The activation buffer is per calling thread and grows only, so a
 * steady-state matmul performs no allocation. */
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t trit_act_type(uint32_t wtype) {
    /* a dot type's repack flags name an order, not a format */
    switch (wtype & ~(TRIT_REPACK8 | TRIT_REPACK8_GEMM)) {
    case TRIT_TQ1_0:
    case TRIT_TQ2_0:
    case TRIT_Q2_K:
    case TRIT_Q3_K:
    case TRIT_Q4_K:
    case TRIT_Q5_K:
    case TRIT_Q6_K:
        return TRIT_Q8_K;
    case TRIT_Q8_0:
    case TRIT_Q4_0: /* ggml's vec_dot_type for the legacy types */
    case TRIT_Q5_0:
        return TRIT_Q8_0;
    case TRIT_Q4_1:
    case TRIT_Q5_1:
        return TRIT_Q8_1;
    case TRIT_F16:
        return TRIT_F16;
    case TRIT_BF16:
        return TRIT_BF16;
    case TRIT_F32:
        return TRIT_F32;
    case TRIT_I2_S:
        return TRIT_ACT_I8;
    default:
        return (uint32_t)-1;
    }
}

size_t trit_act_row_size(uint32_t wtype, int64_t n) {
    if (n <= 0) return 0;
    switch (trit_act_type(wtype)) {
    case TRIT_Q8_K:
        return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_q8_K);
    case TRIT_Q8_0:
        return n % QK8_0 ? 0 : (size_t)(n / QK8_0) * sizeof(block_q8_0);
    case TRIT_Q8_1:
        return n % QK8_1 ? 0 : (size_t)(n / QK8_1) * sizeof(block_q8_1);
    case TRIT_F16:
    case TRIT_BF16:
        return (size_t)n * 2;
    case TRIT_F32:
        return (size_t)n * 4;
    case TRIT_ACT_I8: /* int8 q[n], float scale, int32 sum(q) */
        return n % QK_I2_S ? 0 : (size_t)n + 8;
    default:
        return 0;
    }
}

/* Bytes of one weight row (as trit_row_size; kept local so kernels need no quant tables). */
static size_t weight_row_bytes(uint32_t wtype, int64_t n) {
    switch (wtype) {
    case TRIT_TQ1_0:
        return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_tq1_0);
    case TRIT_TQ2_0:
        return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_tq2_0);
    case TRIT_Q8_0:
        return n % QK8_0 ? 0 : (size_t)(n / QK8_0) * sizeof(block_q8_0);
    case TRIT_Q4_0:
        return n % QK4_0 ? 0 : (size_t)(n / QK4_0) * sizeof(block_q4_0);
    case TRIT_Q4_1:
        return n % QK4_1 ? 0 : (size_t)(n / QK4_1) * sizeof(block_q4_1);
    case TRIT_Q5_0:
        return n % QK5_0 ? 0 : (size_t)(n / QK5_0) * sizeof(block_q5_0);
    case TRIT_Q5_1:
        return n % QK5_1 ? 0 : (size_t)(n / QK5_1) * sizeof(block_q5_1);
    case TRIT_Q2_K:
        return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_q2_K);
    case TRIT_Q3_K:
        return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_q3_K);
    case TRIT_Q4_K:
        return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_q4_K);
    case TRIT_Q5_K:
        return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_q5_K);
    case TRIT_Q6_K:
        return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_q6_K);
    case TRIT_F16:
    case TRIT_BF16:
        return (size_t)n * 2;
    case TRIT_F32:
        return (size_t)n * 4;
    case TRIT_I2_S:
        return n % QK_I2_S ? 0 : (size_t)n / 4;
    default:
        return 0;
    }
}

/* ---- CPU features and dispatch ---- */

/* ---- x86 CPU features: one rule for every compiler ----
 * The features come from CPUID itself, not __builtin_cpu_supports (clang-14, the fuzz
 * compiler, rejects "avx512vnni" and "avxvnni" there). As gcc's libgcc does, a feature that
 * uses the AVX or AVX-512 registers counts only when the OS saves them (XGETBV: XCR0 bits 1-2
 * for SSE/AVX state, bits 5-7 for the opmask and upper ZMM state), so both compilers report
 * the same set. Bits (Intel SDM vol. 2A, CPUID):
 *   leaf 1 ECX: 20 SSE4.2, 12 FMA, 27 OSXSAVE, 28 AVX, 29 F16C
 *   leaf 7.0 EBX: 5 AVX2, 16 AVX512F, 17 AVX512DQ, 30 AVX512BW, 31 AVX512VL; ECX: 11 AVX512VNNI
 *   leaf 7.1 EAX: 4 AVX-VNNI, 5 AVX512_BF16 (read when leaf 7.0 EAX, the last subleaf, >= 1) */
typedef struct x86_features {
    bool sse42, avx, avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16,
        avxvnni;
} x86_features;

#if defined(__x86_64__)
static x86_features g_x86;

/* XCR0, the register state the OS saves on a context switch (0 without OSXSAVE). */
static uint64_t x86_xcr0(uint32_t leaf1_ecx) {
    if (!(leaf1_ecx >> 27 & 1)) return 0;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static void x86_detect(void) {
    unsigned a, b, c, d, max = __get_cpuid_max(0, NULL);
    x86_features f = {0};
    if (max < 1 || !__get_cpuid(1, &a, &b, &c, &d)) return;
    const uint64_t xcr0 = x86_xcr0(c);
    const bool avx_os = (xcr0 & 0x6) == 0x6, avx512_os = (xcr0 & 0xe6) == 0xe6;
    f.sse42 = c >> 20 & 1;
    f.avx = avx_os && (c >> 28 & 1);
    f.fma = avx_os && (c >> 12 & 1);
    f.f16c = avx_os && (c >> 29 & 1);
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        const unsigned sub = a, b7 = b, c7 = c;
        f.avx2 = avx_os && (b7 >> 5 & 1);
        f.avx512f = avx512_os && (b7 >> 16 & 1);
        f.avx512dq = avx512_os && (b7 >> 17 & 1);
        f.avx512bw = avx512_os && (b7 >> 30 & 1);
        f.avx512vl = avx512_os && (b7 >> 31 & 1);
        f.avx512vnni = avx512_os && (c7 >> 11 & 1);
        if (sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            f.avxvnni = avx_os && (a >> 4 & 1);
            f.avx512bf16 = avx512_os && (a >> 5 & 1);
        }
    }
    g_x86 = f;
}

static const x86_features *x86_get(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, x86_detect);
    return &g_x86;
}

static bool have_avx2(void) {
    const x86_features *f = x86_get();
    return f->avx2 && f->fma && f->f16c;
}

static bool have_avx512(void) {
    const x86_features *f = x86_get();
    return have_avx2() && f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && f->avx512vnni;
}
#else
/* CPUID is x86's: elsewhere (aarch64) no x86 set is available and the features are the
 * target's name (the scalar set runs). */
static bool have_avx2(void) {
    return false;
}
static bool have_avx512(void) {
    return false;
}
#endif

static char g_features[256];

#if !defined(__x86_64__)
static void features_init(void) {
#if defined(__aarch64__) && defined(__linux__)
    /* the HWCAP bits ggml's runtime checks read: asimddp 20, asimdhp 10, sve 22 (AT_HWCAP),
     * i8mm 13 (AT_HWCAP2) */
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    snprintf(g_features, sizeof g_features, "aarch64%s%s%s%s", (hw >> 20) & 1 ? " asimddp" : "",
             (hw >> 10) & 1 ? " asimdhp" : "", (hw2 >> 13) & 1 ? " i8mm" : "",
             (hw >> 22) & 1 ? " sve" : "");
#elif defined(__aarch64__)
    snprintf(g_features, sizeof g_features, "aarch64");
#else
    snprintf(g_features, sizeof g_features, "generic");
#endif
}
#else
/* The CPU's features by their gcc names, in one fixed order, space-separated. */
static void features_init(void) {
    const x86_features *f = x86_get();
    const struct {
        const char *name;
        bool on;
    } names[] = {{"sse4.2", f->sse42},
                 {"avx", f->avx},
                 {"avx2", f->avx2},
                 {"fma", f->fma},
                 {"f16c", f->f16c},
                 {"avx512f", f->avx512f},
                 {"avx512bw", f->avx512bw},
                 {"avx512vl", f->avx512vl},
                 {"avx512dq", f->avx512dq},
                 {"avx512vnni", f->avx512vnni},
                 {"avx512bf16", f->avx512bf16},
                 {"avxvnni", f->avxvnni}};
    size_t len = 0;
    g_features[0] = 0;
    for (size_t i = 0; i < TRIT_ARRAY_LEN(names); i++)
        if (names[i].on && len + strlen(names[i].name) + 2 < sizeof(g_features))
            len += (size_t)snprintf(g_features + len, sizeof(g_features) - len, "%s%s",
                                    len ? " " : "", names[i].name);
}

#endif

const char *trit_cpu_features(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, features_init);
    return g_features;
}

const trit_kernels *trit_kernels_avx2(void) {
    return trit_kernels_avx2_impl.name && have_avx2() ? &trit_kernels_avx2_impl : NULL;
}

const trit_kernels *trit_kernels_avx512(void) {
    return trit_kernels_avx512_impl.name && have_avx512() ? &trit_kernels_avx512_impl : NULL;
}

/* aarch64 Linux reports dotprod (sdot/udot) as HWCAP_ASIMDDP, bit 20 of AT_HWCAP, and fp16
 * vector arithmetic as HWCAP_ASIMDHP, bit 10: the neon set needs both. */
static bool have_dotprod(void) {
#if defined(__aarch64__) && defined(__linux__)
    const unsigned long hw = getauxval(AT_HWCAP);
    return ((hw >> 20) & 1) && ((hw >> 10) & 1);
#else
    return false;
#endif
}

const trit_kernels *trit_kernels_neon(void) {
    return trit_kernels_neon_impl.name && have_dotprod() ? &trit_kernels_neon_impl : NULL;
}

static const trit_kernels *g_best;

static void best_init(void) {
    const char *want = getenv("TRIT_KERNELS");
    const trit_kernels *k = NULL;
    if (want && *want) {
        if (!strcmp(want, "ref"))
            k = trit_kernels_ref();
        else if (!strcmp(want, "avx2"))
            k = trit_kernels_avx2();
        else if (!strcmp(want, "avx512"))
            k = trit_kernels_avx512();
        else if (!strcmp(want, "neon"))
            k = trit_kernels_neon();
        if (!k)
            trit_log(TRIT_LOG_WARN,
                     "TRIT_KERNELS=%s is not available on this CPU (or unknown; use "
                     "ref|avx2|avx512|neon); choosing automatically",
                     want);
    }
    if (!k) k = trit_kernels_avx512();
    if (!k) k = trit_kernels_avx2();
    if (!k) k = trit_kernels_neon();
    if (!k) k = trit_kernels_ref();
    g_best = k;
}

const trit_kernels *trit_kernels_best(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, best_init);
    return g_best;
}

/* ---- numerics tables (kernels.h) ---- */

const trit_numerics_table trit_numerics_avx512 = {
    .name = "avx512", .ref_build = "build-avx512vnni", .lanes = 16, .repack_q2_k = true};
const trit_numerics_table trit_numerics_avx2 = {
    .name = "avx2", .ref_build = "build-avx2", .lanes = 8, .repack_q2_k = false};
const trit_numerics_table trit_numerics_arm64 = {
    .name = "arm64",
    .ref_build = "build-arm64",
    .lanes = 4,
    .repack_q2_k = false,
    .tq_one_acc = true,
    .f16_arith = true,
    .q8k_fma = true,
    .partial = "Q2_K/Q3_K/Q5_K and Q4_1/Q5_0/Q5_1 dots, the non-repacked Q4_0 dot and the "
               "Q5_K/Q8_0/IQ4_NL repacks in the x86 build's order"};

static _Atomic(const trit_numerics_table *) g_table_override;

const trit_numerics_table *trit_numerics_table_named(const char *name) {
    if (name && !strcmp(name, "avx512")) return &trit_numerics_avx512;
    if (name && !strcmp(name, "avx2")) return &trit_numerics_avx2;
    if (name && !strcmp(name, "arm64")) return &trit_numerics_arm64;
    return NULL;
}

void trit_numerics_use(const trit_numerics_table *t) {
    atomic_store(&g_table_override, t);
}

/* The kernel set's table: avx512 and avx2 their own; ref the CPU's (its default reference
 * build: avx512 where the CPU has AVX-512, else avx2). */
const trit_numerics_table *trit_numerics_table_get(void) {
    const trit_numerics_table *t = atomic_load_explicit(&g_table_override, memory_order_relaxed);
    if (t) return t;
#if defined(__aarch64__)
    return &trit_numerics_arm64;
#endif
    const trit_kernels *k = trit_kernels_best();
    if (k == &trit_kernels_avx2_impl) return &trit_numerics_avx2;
    if (k == &trit_kernels_avx512_impl || have_avx512()) return &trit_numerics_avx512;
    return &trit_numerics_avx2;
}

/* ---- numerics modes ---- */

int trit_numerics_parse(const char *s) {
    if (s && !strcmp(s, "exact")) return TRIT_NUMERICS_EXACT;
    if (s && !strcmp(s, "fast")) return TRIT_NUMERICS_FAST;
    return -1;
}

const char *trit_numerics_name(int numerics) {
    return numerics == TRIT_NUMERICS_FAST ? "fast" : "exact";
}

/* The fast copies of the four sets (ref, avx2, avx512, neon), built once: the exact set's
 * entries, with the fast attention of the same instruction set. */
static trit_kernels g_fast[4];
static char g_fast_names[4][24];

static void fast_init(void) {
    const trit_kernels *base[4] = {trit_kernels_ref(), &trit_kernels_avx2_impl,
                                   &trit_kernels_avx512_impl, &trit_kernels_neon_impl};
    for (int i = 0; i < 4; i++) {
        g_fast[i] = *base[i];
        snprintf(g_fast_names[i], sizeof g_fast_names[i], "%s+fast",
                 base[i]->name ? base[i]->name : "none");
        g_fast[i].name = g_fast_names[i];
        g_fast[i].attention = i == 2 ? trit_attention_fast_avx512 : trit_attention_fast;
    }
}

const trit_kernels *trit_kernels_for(const trit_kernels *k, int numerics) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (!k) k = trit_kernels_best();
    if (numerics != TRIT_NUMERICS_FAST) return k;
    pthread_once(&once, fast_init);
    for (int i = 0; i < 4; i++)
        if (k == &g_fast[i]) return k; /* already a fast set */
    if (k == &trit_kernels_avx512_impl) return &g_fast[2];
    if (k == &trit_kernels_avx2_impl) return &g_fast[1];
    if (k == &trit_kernels_neon_impl) return &g_fast[3];
    return &g_fast[0];
}

/* ---- threaded matmul ---- */

bool trit_matmul_tinyblas(uint32_t wtype, int64_t n_in, int64_t n_out, int64_t n_tok) {
    /* tinyBLAS<KN> needs k % KN == 0, KN the build's lanes (16 on AVX-512, 8 on AVX2); the
     * NEON build takes F32 from 4 tokens (KN 4) and F16 from 8 (fp16 KN 8), never BF16 */
    const trit_numerics_table *t = trit_numerics_table_get();
    if (t->lanes == 4)
        return ((wtype == TRIT_F32 && n_tok >= 4 && n_in % 4 == 0) ||
                (wtype == TRIT_F16 && n_tok >= 8 && n_in % 8 == 0)) &&
               n_out % 4 == 0;
    return (wtype == TRIT_F32 || wtype == TRIT_F16 || wtype == TRIT_BF16) && n_tok >= 2 &&
           n_in % trit_numerics_table_get()->lanes == 0 && n_out % 4 == 0;
}

/* ggml_repack_get_optimal_repack_type on an arm64 core with dotprod and no i8mm (the arm64
 * table's build, run as a Neoverse-N1): Q4_0 -> q4_0_4x4 (ne[1] % 4), Q4_K -> q4_K_8x4
 * (ne[1] % 8; its gemm sums as its gemv), Q6_K -> q6_K_8x4 (ne[1] % 8; gemv = vec_dot's order,
 * the gemm's differs). Q5_K/Q8_0/IQ4_NL are not reproduced yet (the type's own order). */
static uint32_t dot_type_arm64(uint32_t wtype, int64_t n_out, int64_t tok, int64_t n_tok) {
    /* q4_0_4x4: per block fma((float)isum, ad * wd, acc), gemv and gemm: the x86 8x8 order */
    if (wtype == TRIT_Q4_0 && n_out % 4 == 0) return wtype | TRIT_REPACK8;
    if (n_out % 8 != 0) return wtype;
    if (wtype == TRIT_Q4_K) return wtype | TRIT_REPACK8;
    if (wtype == TRIT_Q6_K) /* repacked: its gemv (| TRIT_REPACK8) sums as vec_dot */
        return wtype | TRIT_REPACK8 | (tok < n_tok - n_tok % 4 ? TRIT_REPACK8_GEMM : 0);
    return wtype;
}

uint32_t trit_matmul_dot_type(uint32_t wtype, int64_t n_out, int64_t tok, int64_t n_tok) {
    if (trit_numerics_table_get()->lanes == 4) return dot_type_arm64(wtype, n_out, tok, n_tok);
    /* ggml-cpu repack.cpp's choice on x86: Q4_0 and Q4_K with AVX2, Q2_K with AVX-512 (a
     * compile-time check: the table's build), each only when ne[1] % 8 == 0 */
    const bool repacked = (wtype == TRIT_Q4_0 || wtype == TRIT_Q4_K ||
                           (wtype == TRIT_Q2_K && trit_numerics_table_get()->repack_q2_k)) &&
                          n_out % 8 == 0;
    if (!repacked) return wtype;
    /* Q4_0: gemm_q4_0_8x8_q8_0 sums each block as its gemv does, one order for every token */
    if (wtype == TRIT_Q4_0) return wtype | TRIT_REPACK8;
    /* forward_mul_mat_one_chunk: gemm for whole groups of 4 tokens, gemv for the rest */
    return wtype | TRIT_REPACK8 | (tok < n_tok - n_tok % 4 ? TRIT_REPACK8_GEMM : 0);
}

/* A matmul job: one or more parts sharing wtype, n_in and the quantized activations. Rows
 * are numbered across the parts (part p owns global rows row_end[p-1] .. row_end[p]-1) and
 * claimed in chunks that never cross a part boundary. */
typedef struct mm_job {
    const trit_kernels *k;
    uint32_t wtype;
    size_t wrow; /* bytes per weight row */
    int64_t n_in, n_tok;
    const float *X;
    char *act; /* n_tok quantized activation rows */
    size_t arow;
    int n_parts;
    trit_mm_part parts[TRIT_MM_MAX_PARTS];
    int64_t row_end[TRIT_MM_MAX_PARTS]; /* cumulative rows */
    bool use_gemm[TRIT_MM_MAX_PARTS];   /* tile with k->gemm (else vec_dot_rows per token) */
    bool repacked[TRIT_MM_MAX_PARTS];   /* dots per token in the reference's repacked order */
    bool single_order;                  /* every token as a one-token product (dot_type) */
    int64_t total_rows;
    int64_t max_chunk;        /* rows per claim at most (batches keep their tiles hot) */
    int nth;                  /* threads sharing the rows */
    int sweep_rows, pf_rows;  /* decode sweep and prefetch distance (decode_pf_rows) */
    bool quantize_in_run;     /* the pool's threads quantize X, then meet at a barrier */
    atomic_int quantized;     /* threads past quantization */
    atomic_int_fast64_t next; /* next unclaimed global row */
} mm_job;

/* Rows per claim are a multiple of this (tiles stay aligned), except at a part's end. */
#define MM_MIN_CHUNK 16
/* Token tile for the gemm path: activations of this many tokens stay hot while a chunk of
 * weight rows is swept. */
#define MM_TOK_TILE 8

static void mm_quantize(mm_job *j, int ith, int nth) {
    for (int64_t t = ith; t < j->n_tok; t += nth)
        j->k->quantize_act(j->wtype, j->X + t * j->n_in, j->act + t * j->arow, j->n_in);
}

/* Guided scheduling: a claim takes 1/(2 nth) of the rows still unclaimed (at least
 * MM_MIN_CHUNK), so threads start with long contiguous sweeps and finish on short ones,
 * and no thread waits long for the last chunk. Returns false when all rows are claimed. */
static bool mm_claim(mm_job *j, int *part, int64_t *r0, int64_t *nr) {
    int_fast64_t cur = atomic_load_explicit(&j->next, memory_order_relaxed);
    for (;;) {
        if (cur >= j->total_rows) return false;
        int p = 0;
        while (cur >= j->row_end[p]) p++;
        int64_t len = (j->total_rows - cur) / (2 * (int64_t)j->nth);
        len = (len + MM_MIN_CHUNK - 1) / MM_MIN_CHUNK * MM_MIN_CHUNK;
        len = TRIT_MIN(TRIT_MAX(len, MM_MIN_CHUNK), j->max_chunk);
        len = TRIT_MIN(len, j->row_end[p] - cur);
        if (atomic_compare_exchange_weak_explicit(&j->next, &cur, cur + len, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *part = p;
            *r0 = cur - (p ? j->row_end[p - 1] : 0);
            *nr = len;
            return true;
        }
    }
}

/* ---- per-CPU tuning of the decode sweep and the pool spin ----
 * Decode (one token) is memory-bound: a thread sweeps its rows sweep_rows at a time (one
 * vec_dot_rows call, so the rows share each activation load) and prefetches (into L2) the rows
 * pf_rows ahead of the current sweep, which keeps more loads in flight than the hardware
 * prefetcher does on these short rows (tg +10% on Sapphire Rapids). The best values depend on
 * the core (load ports, 512-bit width, miss buffers) and the memory latency, so they come from
 * a table keyed on the CPUID vendor and family; TRIT_SWEEP_ROWS, TRIT_PF_ROWS and TRIT_SPIN_US
 * override a field, and `kbench --tune` measures the candidates on a new machine.
 *
 *   row            match                          sweep  pf  pf cap  spin us
 *   intel-avx512   Intel, avx512 set in use         4     4   -       200
 *   amd-zen4       AMD family 0x19/0x1A, avx512 set 4     8   16 KiB  200
 *   avx2           avx2 (or ref) set in use         2     8   16 KiB  200
 *   default        anything else                    4     4   -       200
 * Why: intel-avx512 was measured on Sapphire Rapids (PERFORMANCE.md; 8-16 rows ahead were
 * worse there). amd-zen4 is reasoned, not measured: DRAM behind Infinity Fabric is farther
 * than on Intel's mesh, so ternary rows (660 bytes) are prefetched two sweeps ahead; AMD's
 * prefetcht2 fills L1 as well as L2, so the distance is capped at half of Zen 4's 32 KiB L1D
 * (an F16 output row of 2560 is 5 KiB: one sweep ahead, as on Intel); 8-row sweeps lost for
 * TQ1_0 (its decoder spills) in kbench --tune on Intel, so the sweep stays at 4. avx2: that
 * set pairs rows (dot_tq2_0_x2), so sweeps of 2 with a longer distance, capped as for AMD
 * since AVX2-only CPUs have 32-48 KiB L1D and may be AMD. default: the measured row.
 * The spin is the pool's wait before sleeping (base.c): 200 us covers the gap between the
 * hundreds of pool runs of one decode step on every CPU we met; it is per row so a CPU where
 * spinning hurts (SMT siblings sharing a core) can get its own. */
static trit_tuning g_tuning;

static void cpu_ident(char vendor[13], unsigned *family, unsigned *model) {
    memset(vendor, 0, 13);
    *family = *model = 0;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    memcpy(vendor, &b, 4), memcpy(vendor + 4, &d, 4), memcpy(vendor + 8, &c, 4);
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    /* CPUID leaf 1 EAX: base family 11:8, model 7:4, extended model 19:16, extended family
     * 27:20 (the extended fields count only for family 0xF, and model also for family 6) */
    const unsigned base_fam = (a >> 8) & 0xF, base_model = (a >> 4) & 0xF;
    *family = base_fam == 0xF ? base_fam + ((a >> 20) & 0xFF) : base_fam;
    *model =
        base_fam == 0x6 || base_fam == 0xF ? base_model | (((a >> 16) & 0xF) << 4) : base_model;
#endif
}

/* An integer from the environment variable name in [lo, hi], else dflt. */
static int env_int(const char *name, int lo, int hi, int dflt) {
    const char *e = getenv(name);
    long v;
    if (!e || !*e) return dflt;
    if (trit_parse_long(e, lo, hi, &v)) {
        trit_log(TRIT_LOG_WARN, "%s=%s is not a number in %d..%d; using %d", name, e, lo, hi, dflt);
        return dflt;
    }
    return (int)v;
}

static void tuning_init(void) {
    char vendor[13];
    unsigned family, model;
    cpu_ident(vendor, &family, &model);
    /* the set in use, not only the CPU: TRIT_KERNELS=avx2 on an AVX-512 CPU gets the avx2 row */
    const bool avx512 = trit_kernels_best() == &trit_kernels_avx512_impl;
    trit_tuning t = {
        .row = "default", .sweep_rows = 4, .pf_rows = 4, .pf_max_kb = 0, .spin_us = 200};
    if (!strcmp(vendor, "GenuineIntel") && avx512) {
        t.row = "intel-avx512";
    } else if (!strcmp(vendor, "AuthenticAMD") && (family == 0x19 || family == 0x1A) && avx512) {
        t = (trit_tuning){
            .row = "amd-zen4", .sweep_rows = 4, .pf_rows = 8, .pf_max_kb = 16, .spin_us = 200};
    } else if (!avx512) {
        t = (trit_tuning){
            .row = "avx2", .sweep_rows = 2, .pf_rows = 8, .pf_max_kb = 16, .spin_us = 200};
    }
    snprintf(t.cpu, sizeof t.cpu, "%s family 0x%x model 0x%x", vendor[0] ? vendor : "unknown",
             family, model);
    t.sweep_rows = env_int("TRIT_SWEEP_ROWS", 1, 64, t.sweep_rows);
    t.pf_rows = env_int("TRIT_PF_ROWS", 0, 256, t.pf_rows);
    t.pf_max_kb = env_int("TRIT_PF_MAX_KB", 0, 1 << 20, t.pf_max_kb);
    t.spin_us = env_int("TRIT_SPIN_US", 0, 1000000, t.spin_us);
    g_tuning = t;
}

static pthread_once_t g_tuning_once = PTHREAD_ONCE_INIT;

const trit_tuning *trit_tuning_get(void) {
    pthread_once(&g_tuning_once, tuning_init);
    return &g_tuning;
}

void trit_tuning_set(const trit_tuning *t) {
    pthread_once(&g_tuning_once, tuning_init);
    g_tuning.sweep_rows = TRIT_MAX(t->sweep_rows, 1);
    g_tuning.pf_rows = TRIT_MAX(t->pf_rows, 0);
    g_tuning.pf_max_kb = TRIT_MAX(t->pf_max_kb, 0);
    g_tuning.spin_us = TRIT_MAX(t->spin_us, 0);
}

/* Rows to prefetch ahead for rows of row_bytes: pf_rows, capped at pf_max_kb KiB but never
 * under one sweep (0 stays 0: no prefetch). */
static int decode_pf_rows(const trit_tuning *t, size_t row_bytes) {
    if (!t->pf_rows || !t->pf_max_kb || !row_bytes) return t->pf_rows;
    const int64_t cap = (int64_t)t->pf_max_kb * 1024 / (int64_t)row_bytes;
    return (int)TRIT_MAX(TRIT_MIN((int64_t)t->pf_rows, cap), (int64_t)t->sweep_rows);
}

/* One prefetch per 64-byte line of [p, p + n); unrolled, since a sweep prefetches whole rows
 * (80 lines per F16 row of 2560) and the loop's own compare and branch were 3 of every 4
 * instructions it spent (callgrind). */
static void prefetch_l2(const char *p, size_t n) {
#pragma GCC unroll 8
    for (size_t o = 0; o < n; o += 64) __builtin_prefetch(p + o, 0, 1);
}

/* The type part p's dots get for token t (trit_matmul_dot_type: the repacked orders). */
static inline uint32_t dot_type(const mm_job *j, int p, int64_t t) {
    if (!j->repacked[p]) return j->wtype;
    if (j->single_order) /* each row as the only token of its product */
        return trit_matmul_dot_type(j->wtype, j->parts[p].n_out, 0, 1);
    return trit_matmul_dot_type(j->wtype, j->parts[p].n_out, t, j->n_tok);
}

/* Rows r0 .. r0+nr-1 of part p for every token. */
static void mm_rows(const mm_job *j, int p, int64_t r0, int64_t nr) {
    const trit_mm_part *P = &j->parts[p];
    const char *w = (const char *)P->W + r0 * j->wrow;
    if (j->use_gemm[p] && j->n_tok > MM_TOK_TILE) {
        for (int64_t t0 = 0; t0 < j->n_tok; t0 += MM_TOK_TILE) {
            const int64_t nt = TRIT_MIN(MM_TOK_TILE, j->n_tok - t0);
            j->k->gemm(dot_type(j, p, t0), j->n_in, w, j->wrow, nr, j->act + t0 * j->arow, j->arow,
                       nt, P->Y + t0 * P->n_out + r0, P->n_out);
        }
    } else if (j->n_tok == 1 || j->use_gemm[p]) {
        /* decode rows (one token, or a batch's few tokens in one gemm tile), memory-bound:
         * sweeps of S rows; rows [r + S, r + D) are prefetched before the first sweep, then
         * each sweep prefetches the S rows D ahead of it (D = pf rows, at least one sweep) */
        const int64_t S = j->sweep_rows, D = j->pf_rows ? TRIT_MAX(j->pf_rows, S) : 0;
        if (D > S) prefetch_l2(w + S * j->wrow, (size_t)TRIT_MAX(TRIT_MIN(D, nr) - S, 0) * j->wrow);
        for (int64_t r = 0; r < nr; r += S) {
            const int64_t n = TRIT_MIN(S, nr - r);
            if (D && r + D < nr)
                prefetch_l2(w + (r + D) * j->wrow, (size_t)TRIT_MIN(S, nr - r - D) * j->wrow);
            if (j->n_tok == 1)
                j->k->vec_dot_rows(dot_type(j, p, 0), j->n_in, w + r * j->wrow, j->wrow, n, j->act,
                                   P->Y + r0 + r);
            else
                j->k->gemm(dot_type(j, p, 0), j->n_in, w + r * j->wrow, j->wrow, n, j->act, j->arow,
                           j->n_tok, P->Y + r0 + r, P->n_out);
        }
    } else if (j->k->vec_dot_tile && !j->repacked[p]) {
        /* one-token order for every token (a weight not repacked has one dot type) */
        j->k->vec_dot_tile(j->wtype, j->n_in, w, j->wrow, nr, j->act, j->arow, j->n_tok, P->Y + r0,
                           P->n_out);
    } else {
        for (int64_t t = 0; t < j->n_tok; t++)
            j->k->vec_dot_rows(dot_type(j, p, t), j->n_in, w, j->wrow, nr, j->act + t * j->arow,
                               P->Y + t * P->n_out + r0);
    }
    if (P->w_scale != 1.0f)
        for (int64_t t = 0; t < j->n_tok; t++) {
            float *y = P->Y + t * P->n_out + r0;
            for (int64_t r = 0; r < nr; r++) y[r] *= P->w_scale;
        }
}

static inline void mm_relax(unsigned i) {
    if (i < 4096) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield(); /* a peer was descheduled (oversubscribed machine) */
    }
}

static void mm_run(void *arg, int ith, int nth) {
    mm_job *j = arg;
    if (j->quantize_in_run) {
        mm_quantize(j, ith, nth);
        atomic_fetch_add_explicit(&j->quantized, 1, memory_order_release);
        for (unsigned i = 0; atomic_load_explicit(&j->quantized, memory_order_acquire) < nth; i++)
            mm_relax(i);
    }
    int p;
    int64_t r0, nr;
    while (mm_claim(j, &p, &r0, &nr)) mm_rows(j, p, r0, nr);
}

static _Thread_local char *tl_act;
static _Thread_local size_t tl_act_cap;

void trit_matmul_multi(const trit_kernels *k, trit_pool *pool, uint32_t wtype, int64_t n_in,
                       const float *X, int64_t n_tok, int n_parts, const trit_mm_part *parts) {
    trit_matmul_multi_order(k, pool, wtype, n_in, X, n_tok, n_parts, parts, false);
}

void trit_matmul_multi_order(const trit_kernels *k, trit_pool *pool, uint32_t wtype, int64_t n_in,
                             const float *X, int64_t n_tok, int n_parts, const trit_mm_part *parts,
                             bool single_order) {
    if (!k) k = trit_kernels_best();
    const bool no_repack = wtype & TRIT_NO_REPACK; /* the caller's word (kernels.h) */
    wtype &= ~TRIT_NO_REPACK;
    const size_t arow = trit_act_row_size(wtype, n_in);
    const size_t wrow = weight_row_bytes(wtype, n_in);
    if (!arow || !wrow || n_tok <= 0 || n_parts < 1 || n_parts > TRIT_MM_MAX_PARTS) {
        trit_log(TRIT_LOG_ERROR,
                 "trit_matmul: unsupported type %u or bad shape (n_in %lld, n_tok %lld, %d parts)",
                 wtype, (long long)n_in, (long long)n_tok, n_parts);
        abort();
    }
    const size_t need = arow * (size_t)n_tok + 64;
    if (need > tl_act_cap) {
        free(tl_act);
        tl_act_cap = need + need / 4;
        tl_act = xaligned_alloc(64, (tl_act_cap + 63) & ~(size_t)63);
    }
    mm_job j = {.k = k,
                .wtype = wtype,
                .wrow = wrow,
                .n_in = n_in,
                .n_tok = n_tok,
                .X = X,
                .act = tl_act,
                .arow = arow,
                .n_parts = n_parts,
                .single_order = single_order};
    /* F32/F16 follow the reference's choice between tinyBLAS and vec_dot (different orders) */
    const bool blas_type = wtype == TRIT_F32 || wtype == TRIT_F16 || wtype == TRIT_BF16;
    for (int p = 0; p < n_parts; p++) {
        if (parts[p].n_out <= 0) {
            trit_log(TRIT_LOG_ERROR, "trit_matmul: part %d has %lld rows", p,
                     (long long)parts[p].n_out);
            abort();
        }
        j.parts[p] = parts[p];
        j.total_rows += parts[p].n_out;
        j.row_end[p] = j.total_rows;
        j.repacked[p] = !no_repack && trit_matmul_dot_type(wtype, parts[p].n_out, 0, 1) != wtype;
        /* gemm takes one dot type per tile: a repacked part tiles only if all its tokens share
         * one (Q4_0 does; Q4_K/Q2_K's gemm/gemv token split may not). single_order: every row
         * is summed as a one-token product would be (a decode row in a batch); F32/F16/BF16
         * change order with the token count, repacked types through dot_type */
        const bool one_order = !j.repacked[p] || dot_type(&j, p, 0) == dot_type(&j, p, n_tok - 1);
        j.use_gemm[p] = k->gemm && n_tok > 1 && one_order &&
                        (!blas_type || (!single_order &&
                                        trit_matmul_tinyblas(wtype, n_in, parts[p].n_out, n_tok)));
    }
    j.nth = pool ? trit_pool_size(pool) : 1;
    j.sweep_rows = trit_tuning_get()->sweep_rows;
    j.pf_rows = decode_pf_rows(trit_tuning_get(), wrow);
    j.max_chunk = n_tok > 1 ? 64 : j.total_rows;
    atomic_init(&j.next, 0);
    atomic_init(&j.quantized, 0);
    if (j.nth > 1 && j.total_rows > MM_MIN_CHUNK) {
        j.quantize_in_run = n_tok > 1;
        if (!j.quantize_in_run) mm_quantize(&j, 0, 1);
        trit_pool_run(pool, mm_run, &j);
    } else {
        j.nth = 1;
        mm_quantize(&j, 0, 1);
        mm_run(&j, 0, 1);
    }
}

void trit_matmul(const trit_kernels *k, trit_pool *pool, uint32_t wtype, const void *W,
                 float w_scale, int64_t n_in, int64_t n_out, const float *X, int64_t n_tok,
                 float *Y) {
    const trit_mm_part part = {.W = W, .w_scale = w_scale, .n_out = n_out, .Y = Y};
    trit_matmul_multi(k, pool, wtype, n_in, X, n_tok, 1, &part);
}

/* ---- streaming-read bandwidth (the memory bound of decode) ---- */

typedef struct bw_job {
    const uint64_t *p;
    size_t n; /* uint64 words in all */
    uint64_t sink[16];
} bw_job;

/* Thread ith reads its contiguous slice with four independent xor chains (so the adds never
 * limit it), and stores the result so the reads cannot be dropped. */
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

double trit_read_bandwidth(trit_pool *pool, size_t bytes, int reps) {
    bytes &= ~(size_t)63;
    if (bytes < 64 || reps < 1) return 0;
    uint64_t *buf = xaligned_alloc(64, bytes);
    memset(buf, 1, bytes);
    bw_job j = {.p = buf, .n = bytes / 8};
    trit_pool_run(pool, bw_read, &j); /* warm-up (page faults, TLB) */
    double best = 0;
    for (int r = 0; r < reps; r++) {
        const double t0 = trit_now_s();
        trit_pool_run(pool, bw_read, &j);
        const double bps = (double)bytes / (trit_now_s() - t0);
        best = TRIT_MAX(best, bps);
    }
    free(buf);
    return best;
}
