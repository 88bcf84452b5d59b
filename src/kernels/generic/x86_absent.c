/* kernels/generic/x86_absent.c — the x86 kernel symbols on a target without x86 (aarch64 ...).
 *
 * Contract: the Makefile compiles this file only when the target is not x86-64, in place of
 * kernels/x86/ (whose -mavx flags other compilers reject). The two x86 sets are empty (name NULL:
 * trit_kernels_avx2()/avx512() return NULL, so trit_kernels_best() picks the scalar set), and
 * every x86-only entry point kernels.h declares exists so callers and tests link; kernels.h
 * says to call them only when the set is available, so reaching one is a bug: it aborts. */
#include "kernels/kernels.h"

#include <stdlib.h>

#if !defined(__x86_64__)

const trit_kernels trit_kernels_avx2_impl = {0};
const trit_kernels trit_kernels_avx512_impl = {0};

/* Why one helper: every stub below is unreachable by kernels.h's contract; say so and stop. */
static void absent(const char *fn) {
    trit_log(TRIT_LOG_ERROR, "%s called on a target without x86 kernels", fn);
    abort();
}

float trit_avx2_dot_kquant(uint32_t wtype, int64_t n, const void *w, const void *act) {
    absent(__func__);
    return 0;
}
void trit_avx2_dot_kquant_rows(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                               int64_t nr, const void *act, float *out) {
    absent(__func__);
}
float trit_avx512_dot_kquant(uint32_t wtype, int64_t n, const void *w, const void *act) {
    absent(__func__);
    return 0;
}
void trit_avx512_dot_kquant_rows(uint32_t wtype, int64_t n, const void *w, size_t row_bytes,
                                 int64_t nr, const void *act, float *out) {
    absent(__func__);
}
const float *trit_x86_acts_f32(int64_t n, const void *act, size_t act_bytes, int64_t nt) {
    absent(__func__);
    return NULL;
}
void trit_avx2_quantize_q8_1(const float *x, block_q8_1 *y, int64_t n) {
    absent(__func__);
}
float trit_avx2_dot_legacy(uint32_t wtype, int64_t n, const void *w, const void *act) {
    absent(__func__);
    return 0;
}
float trit_avx2_dot_q4_0_r8(int64_t n, const block_q4_0 *w, const block_q8_0 *act) {
    absent(__func__);
    return 0;
}
void trit_avx2_gemm_legacy(uint32_t wtype, int64_t n, const void *w, size_t row_bytes, int64_t nr,
                           const void *act, size_t act_bytes, int64_t nt, float *out, int64_t ldo) {
    absent(__func__);
}
void trit_swiglu_avx512(const float *g, const float *u, float *y, int64_t n) {
    absent(__func__);
}
void trit_v_expf16_avx512(const float *x, float *y) {
    absent(__func__);
}
void trit_v_expf8_avx2(const float *x, float *y) {
    absent(__func__);
}
void trit_v_expf8b_avx2(const float *x, float *y) {
    absent(__func__);
}
void trit_attention_avx512(trit_pool *pool, const float *q, const void *kc, const void *vc,
                           uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int head_dim,
                           int pos0, int n_tok, float scale, float *out) {
    absent(__func__);
}
void trit_attention_avx2(trit_pool *pool, const float *q, const void *kc, const void *vc,
                         uint32_t kv_type, int n_ctx, int n_head, int n_head_kv, int head_dim,
                         int pos0, int n_tok, float scale, float *out) {
    absent(__func__);
}
void trit_attention_fast_avx512(trit_pool *pool, const float *q, const void *kc, const void *vc,
                                uint32_t kv_type, int n_ctx, int n_head, int n_head_kv,
                                int head_dim, int pos0, int n_tok, float scale, float *out) {
    absent(__func__);
}

#endif
