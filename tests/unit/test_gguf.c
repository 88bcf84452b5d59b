/* test_gguf.c — GGUF writer/reader round trips, the reference vocab file, and a corruption
 * suite: every malformed file must give NULL with a specific message, never a crash. */
#include "gguf/gguf.h"
#include "reference/reference.h"

#include <criterion/criterion.h>

#include "helpers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */
static char tmpdir[256];
static void setup_tmp(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/trit-test-gguf.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}
static void teardown_tmp(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", tmpdir);
}
static char *tpath(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

/* A byte builder for hand-made (possibly malformed) files. */
static void b_u32(trit_buf *b, uint32_t v) {
    trit_buf_append(b, &v, 4);
}
static void b_u64(trit_buf *b, uint64_t v) {
    trit_buf_append(b, &v, 8);
}
static void b_str(trit_buf *b, const char *s) {
    b_u64(b, strlen(s));
    trit_buf_append(b, s, strlen(s));
}
static void b_hdr(trit_buf *b, uint32_t version, uint64_t n_t, uint64_t n_kv) {
    trit_buf_append(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_t);
    b_u64(b, n_kv);
}
static void b_kv_u32(trit_buf *b, const char *key, uint32_t v) {
    b_str(b, key);
    b_u32(b, GGUF_T_U32);
    b_u32(b, v);
}
/* tensor info with up to 4 dims */
static void b_tinfo(trit_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                    uint32_t type, uint64_t off) {
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) b_u64(b, ne[d]);
    b_u32(b, type);
    b_u64(b, off);
}
static void b_pad(trit_buf *b, size_t align) {
    while (b->len % align) trit_buf_append(b, "", 1);
}
static void b_zeros(trit_buf *b, size_t n) {
    for (size_t i = 0; i < n; i++) trit_buf_append(b, "", 1);
}

/* Expect failure with all substrings present in the message. */
static void expect_fail(const trit_buf *b, const char *sub1, const char *sub2) {
    trit_err err = {0};
    gguf_file *f = gguf_open_mem(b->p, b->len, &err);
    if (f) gguf_close(f);
    cr_assert_null(f, "expected failure (%s)", sub1);
    cr_assert(err.code != 0, "error code set");
    cr_assert(strstr(err.msg, sub1), "message '%s' lacks '%s'", err.msg, sub1);
    if (sub2) cr_assert(strstr(err.msg, sub2), "message '%s' lacks '%s'", err.msg, sub2);
}

/* ---- round trip ---- */
static int fill_iota(void *ctx, size_t index, void *dst, size_t nbytes, trit_err *err) {
    (void)ctx;
    uint8_t *p = dst;
    for (size_t i = 0; i < nbytes; i++) p[i] = (uint8_t)(i * 7 + index);
    return 0;
}

Test(gguf, roundtrip_all_types, .init = setup_tmp, .fini = teardown_tmp) {
    gguf_writer *w = gguf_writer_new();
    gguf_w_u8(w, "t.u8", 250);
    gguf_w_i8(w, "t.i8", -120);
    gguf_w_u16(w, "t.u16", 65000);
    gguf_w_i16(w, "t.i16", -32000);
    gguf_w_u32(w, "t.u32", 4000000000u);
    gguf_w_i32(w, "t.i32", -2000000000);
    gguf_w_f32(w, "t.f32", 1.5f);
    gguf_w_bool(w, "t.bool", true);
    gguf_w_str(w, "t.str", "héllo \"world\"\n");
    gguf_w_u64(w, "t.u64", UINT64_MAX);
    gguf_w_i64(w, "t.i64", INT64_MIN);
    gguf_w_f64(w, "t.f64", 3.141592653589793);
    const char *strs[] = {"a", "", "ccc"};
    gguf_w_arr_str(w, "t.astr", strs, 3);
    int32_t ai[] = {1, -2, 3, -4};
    gguf_w_arr_i32(w, "t.ai32", ai, 4);
    float af[] = {0.5f, -0.25f};
    gguf_w_arr_f32(w, "t.af32", af, 2);
    uint8_t ab[] = {1, 0, 1};
    gguf_w_arr_raw(w, "t.abool", GGUF_T_BOOL, ab, 3);
    uint64_t au[] = {UINT64_MAX, 7};
    gguf_w_arr_raw(w, "t.au64", GGUF_T_U64, au, 2);
    double ad[] = {1e300};
    gguf_w_arr_raw(w, "t.af64", GGUF_T_F64, ad, 1);
    gguf_w_arr_i32(w, "t.empty", NULL, 0);
    gguf_w_u32(w, "t.replaced", 1);
    gguf_w_str(w, "t.replaced", "now a string");

    float f32data[64];
    for (int i = 0; i < 64; i++) f32data[i] = (float)i - 10.0f;
    int64_t ne1[2] = {16, 4};
    gguf_w_tensor(w, "w.f32", TRIT_F32, 2, ne1, f32data, sizeof f32data);
    int64_t ne2[1] = {256};
    size_t tq2 = trit_tensor_nbytes(TRIT_TQ2_0, 256, 1);
    gguf_w_tensor(w, "w.tq2", TRIT_TQ2_0, 1, ne2, NULL, tq2);
    int64_t ne3[3] = {32, 3, 2};
    size_t q8 = trit_tensor_nbytes(TRIT_Q8_0, 32, 6);
    gguf_w_tensor(w, "w.q8", TRIT_Q8_0, 3, ne3, NULL, q8);
    trit_err err = {0};
    cr_assert_eq(gguf_writer_write(w, tpath("rt.gguf"), fill_iota, NULL, &err), 0, "%s", err.msg);
    gguf_writer_free(w);

    gguf_file *f = gguf_open(tpath("rt.gguf"), &err);
    cr_assert_not_null(f, "%s", err.msg);
    cr_assert_eq(gguf_version(f), 3);
    cr_assert_eq(gguf_alignment(f), 32);
    cr_assert_eq(gguf_n_kv(f), 20);
    cr_assert_str_eq(gguf_path(f), tpath("rt.gguf"));
    uint32_t u32;
    int64_t i64;
    float fl;
    bool bo;
    cr_assert_eq(gguf_get_u32(f, "t.u8", &u32), 0);
    cr_assert_eq(u32, 250);
    cr_assert_eq(gguf_get_i64(f, "t.i8", &i64), 0);
    cr_assert_eq(i64, -120);
    cr_assert_eq(gguf_get_u32(f, "t.u16", &u32), 0);
    cr_assert_eq(u32, 65000);
    cr_assert_eq(gguf_get_i64(f, "t.i16", &i64), 0);
    cr_assert_eq(i64, -32000);
    cr_assert_eq(gguf_get_u32(f, "t.u32", &u32), 0);
    cr_assert_eq(u32, 4000000000u);
    cr_assert_eq(gguf_get_i64(f, "t.i32", &i64), 0);
    cr_assert_eq(i64, -2000000000);
    cr_assert_eq(gguf_get_u32(f, "t.i32", &u32), -1, "negative does not fit u32");
    cr_assert_eq(gguf_get_f32(f, "t.f32", &fl), 0);
    cr_assert_eq(fl, 1.5f);
    cr_assert_eq(gguf_get_bool(f, "t.bool", &bo), 0);
    cr_assert(bo);
    cr_assert_eq(gguf_get_bool(f, "t.u8", &bo), -1);
    check_kv_str(f, "t.str", "héllo \"world\"\n");
    cr_assert_null(gguf_get_str(f, "t.u8"));
    cr_assert_eq(gguf_get_u32(f, "t.u64", &u32), -1, "u64 max does not fit u32");
    cr_assert_eq(gguf_get_i64(f, "t.u64", &i64), -1, "u64 max does not fit i64");
    cr_assert_eq(gguf_find(f, "t.u64")->v.u64, UINT64_MAX);
    cr_assert_eq(gguf_get_i64(f, "t.i64", &i64), 0);
    cr_assert_eq(i64, INT64_MIN);
    cr_assert_eq(gguf_get_f32(f, "t.f64", &fl), 0);
    cr_assert_float_eq(fl, 3.14159265f, 1e-6);
    cr_assert_eq(gguf_find(f, "t.f64")->v.f64, 3.141592653589793);
    cr_assert_eq(gguf_get_f32(f, "t.u32", &fl), -1);
    cr_assert_eq(gguf_get_u32(f, "missing.key", &u32), -1);
    cr_assert_null(gguf_find(f, "missing.key"));

    const gguf_kv *kv = gguf_find(f, "t.astr");
    cr_assert_eq(kv->type, GGUF_T_ARRAY);
    cr_assert_eq(kv->arr_type, GGUF_T_STRING);
    cr_assert_eq(kv->arr_n, 3);
    cr_assert_eq(kv->arr_strs[2].n, 3);
    cr_assert_eq(memcmp(kv->arr_strs[2].p, "ccc", 3), 0);
    cr_assert_eq(kv->arr_strs[1].n, 0);
    cr_assert_eq(gguf_arr_i64(kv, 0, &i64), -1, "string array has no integers");
    kv = gguf_find(f, "t.ai32");
    cr_assert_eq(kv->arr_n, 4);
    cr_assert_eq(gguf_arr_i64(kv, 3, &i64), 0);
    cr_assert_eq(i64, -4);
    cr_assert_eq(gguf_arr_i64(kv, 4, &i64), -1, "out of bounds");
    double d;
    cr_assert_eq(gguf_arr_f64(kv, 1, &d), 0);
    cr_assert_eq(d, -2.0);
    kv = gguf_find(f, "t.af32");
    cr_assert_eq(gguf_arr_f64(kv, 1, &d), 0);
    cr_assert_eq(d, -0.25);
    cr_assert_eq(gguf_arr_f64(kv, 2, &d), -1);
    kv = gguf_find(f, "t.abool");
    cr_assert_eq(gguf_arr_i64(kv, 0, &i64), 0);
    cr_assert_eq(i64, 1);
    kv = gguf_find(f, "t.au64");
    cr_assert_eq(gguf_arr_i64(kv, 0, &i64), -1, "u64 max does not fit i64");
    cr_assert_eq(gguf_arr_i64(kv, 1, &i64), 0);
    cr_assert_eq(i64, 7);
    kv = gguf_find(f, "t.af64");
    cr_assert_eq(gguf_arr_f64(kv, 0, &d), 0);
    cr_assert_eq(d, 1e300);
    kv = gguf_find(f, "t.empty");
    cr_assert_eq(kv->arr_n, 0);
    cr_assert_eq(gguf_arr_i64(kv, 0, &i64), -1);
    kv = gguf_find(f, "t.replaced");
    cr_assert_eq(kv->type, GGUF_T_STRING);
    cr_assert_eq(gguf_kv_at(f, 19), kv, "replaced key keeps its position (last)");
    cr_assert_null(gguf_kv_at(f, 20));

    /* formatting */
    trit_buf b = {0};
    gguf_kv_format(gguf_find(f, "t.ai32"), &b, 2);
    cr_assert_str_eq(b.p, "[i32 x 4] [1, -2, ...]");
    trit_buf_clear(&b);
    gguf_kv_format(gguf_find(f, "t.astr"), &b, 8);
    cr_assert_str_eq(b.p, "[string x 3] [\"a\", \"\", \"ccc\"]");
    trit_buf_clear(&b);
    gguf_kv_format(gguf_find(f, "t.str"), &b, 8);
    cr_assert_str_eq(b.p, "\"héllo \\\"world\\\"\\n\"");
    trit_buf_clear(&b);
    gguf_kv_format(gguf_find(f, "t.bool"), &b, 8);
    cr_assert_str_eq(b.p, "true");
    trit_buf_clear(&b);
    gguf_kv_format(gguf_find(f, "t.i64"), &b, 8);
    cr_assert_str_eq(b.p, "-9223372036854775808");
    trit_buf_free(&b);

    /* tensors */
    cr_assert_eq(gguf_n_tensors(f), 3);
    const gguf_tensor *t = gguf_find_tensor(f, "w.f32");
    cr_assert_not_null(t);
    cr_assert_str_eq(t->cname, "w.f32");
    cr_assert_eq(t->n_dims, 2);
    cr_assert_eq(t->ne[0], 16);
    cr_assert_eq(t->ne[1], 4);
    cr_assert_eq(t->ne[2], 1);
    cr_assert_eq(t->nbytes, sizeof f32data);
    cr_assert_eq(memcmp(t->data, f32data, sizeof f32data), 0);
    t = gguf_find_tensor(f, "w.tq2");
    cr_assert_eq(t->type, TRIT_TQ2_0);
    cr_assert_eq(t->nbytes, tq2);
    cr_assert_eq(t->offset % 32, 0);
    for (size_t i = 0; i < tq2; i++)
        cr_assert_eq(((const uint8_t *)t->data)[i], (uint8_t)(i * 7 + 1));
    t = gguf_tensor_at(f, 2);
    cr_assert_str_eq(t->cname, "w.q8");
    cr_assert_eq(t->ne[2], 2);
    cr_assert_eq(((const uint8_t *)t->data)[5], (uint8_t)(5 * 7 + 2));
    cr_assert_null(gguf_tensor_at(f, 3));
    cr_assert_null(gguf_find_tensor(f, "nope"));
    gguf_close(f);
}

Test(gguf, writer_alignment_and_copy, .init = setup_tmp, .fini = teardown_tmp) {
    gguf_writer *w = gguf_writer_new();
    gguf_w_u32(w, "general.alignment", 64);
    gguf_w_str(w, "general.architecture", "llama");
    float x[32] = {1};
    int64_t ne[1] = {32};
    gguf_w_tensor(w, "a", TRIT_F32, 1, ne, x, sizeof x);
    int64_t ne2[1] = {8};
    gguf_w_tensor(w, "b", TRIT_F32, 1, ne2, x, 32);
    trit_err err = {0};
    cr_assert_eq(gguf_writer_write(w, tpath("al.gguf"), NULL, NULL, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    gguf_file *f = gguf_open(tpath("al.gguf"), &err);
    cr_assert_not_null(f, "%s", err.msg);
    cr_assert_eq(gguf_alignment(f), 64);
    const gguf_tensor *b = gguf_find_tensor(f, "b");
    cr_assert_eq(b->offset, 128);
    cr_assert_eq(((uintptr_t)b->data - (uintptr_t)gguf_tensor_at(f, 0)->data) % 64, 0);

    /* copy every KV into a new file and compare the formatted values */
    gguf_writer *w2 = gguf_writer_new();
    for (size_t i = 0; i < gguf_n_kv(f); i++) gguf_w_copy_kv(w2, gguf_kv_at(f, i));
    cr_assert_eq(gguf_writer_write(w2, tpath("cp.gguf"), NULL, NULL, &err), 0, "%s", err.msg);
    gguf_writer_free(w2);
    gguf_file *g = gguf_open(tpath("cp.gguf"), &err);
    cr_assert_not_null(g, "%s", err.msg);
    cr_assert_eq(gguf_n_kv(g), 2);
    cr_assert_eq(gguf_n_tensors(g), 0);
    gguf_close(g);
    gguf_close(f);
}

static int fill_fail(void *ctx, size_t index, void *dst, size_t nbytes, trit_err *err) {
    return trit_fail(err, TRIT_EIO, "synthetic fill failure");
}

Test(gguf, writer_errors, .init = setup_tmp, .fini = teardown_tmp) {
    trit_err err = {0};
    float x[32] = {0};
    int64_t ne[1] = {32};
    /* wrong nbytes */
    gguf_writer *w = gguf_writer_new();
    gguf_w_tensor(w, "a", TRIT_F32, 1, ne, x, 100);
    cr_assert_eq(gguf_writer_write(w, tpath("e1.gguf"), NULL, NULL, &err), -1);
    cr_assert(strstr(err.msg, "nbytes 100, expected 128"), "%s", err.msg);
    cr_assert_neq(access(tpath("e1.gguf"), F_OK), 0);
    gguf_writer_free(w);
    /* duplicate tensor */
    w = gguf_writer_new();
    gguf_w_tensor(w, "a", TRIT_F32, 1, ne, x, sizeof x);
    gguf_w_tensor(w, "a", TRIT_F32, 1, ne, x, sizeof x);
    cr_assert_eq(gguf_writer_write(w, tpath("e2.gguf"), NULL, NULL, &err), -1);
    cr_assert(strstr(err.msg, "duplicate tensor name 'a'"), "%s", err.msg);
    gguf_writer_free(w);
    /* bad alignment */
    w = gguf_writer_new();
    gguf_w_u32(w, "general.alignment", 24);
    cr_assert_eq(gguf_writer_write(w, tpath("e3.gguf"), NULL, NULL, &err), -1);
    cr_assert(strstr(err.msg, "not a power of two"), "%s", err.msg);
    gguf_writer_free(w);
    /* fill failure: no file, no temp file left */
    w = gguf_writer_new();
    gguf_w_tensor(w, "a", TRIT_F32, 1, ne, NULL, sizeof x);
    cr_assert_eq(gguf_writer_write(w, tpath("e4.gguf"), fill_fail, NULL, &err), -1);
    cr_assert(strstr(err.msg, "synthetic fill failure"), "%s", err.msg);
    cr_assert(strstr(err.msg, "tensor 'a'"), "%s", err.msg);
    cr_assert_neq(access(tpath("e4.gguf"), F_OK), 0);
    /* missing data and no callback */
    cr_assert_eq(gguf_writer_write(w, tpath("e5.gguf"), NULL, NULL, &err), -1);
    cr_assert(strstr(err.msg, "no data"), "%s", err.msg);
    gguf_writer_free(w);
    /* unwritable directory */
    w = gguf_writer_new();
    cr_assert_eq(gguf_writer_write(w, "/nonexistent-dir/x.gguf", NULL, NULL, &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent-dir/x.gguf"), "%s", err.msg);
    gguf_writer_free(w);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", tmpdir);
    cr_assert_neq(system(cmd), 0, "a temporary file was left behind");
}

/* ---- the reference vocab file ---- */
Test(gguf, reference_vocab, .init = setup_tmp, .fini = teardown_tmp) {
    char path[4096];
    snprintf(path, sizeof path, "%s/src/models/ggml-vocab-llama-bpe.gguf", trit_ref_dir());
    if (access(path, R_OK) != 0) cr_skip_test("reference vocab not present: %s", path);
    trit_err err = {0};
    gguf_file *f = gguf_open(path, &err);
    cr_assert_not_null(f, "%s", err.msg);
    check_kv_str(f, "general.architecture", "llama");
    check_kv_str(f, "tokenizer.ggml.model", "gpt2");
    check_kv_str(f, "tokenizer.ggml.pre", "llama-bpe");
    const gguf_kv *tok = gguf_find(f, "tokenizer.ggml.tokens");
    cr_assert_not_null(tok);
    cr_assert_eq(tok->arr_type, GGUF_T_STRING);
    cr_assert_eq(tok->arr_n, 128256);
    cr_assert_eq(tok->arr_strs[0].n, 1);
    cr_assert_eq(tok->arr_strs[0].p[0], '!');
    const gguf_kv *tt = gguf_find(f, "tokenizer.ggml.token_type");
    cr_assert_eq(tt->arr_n, 128256);
    cr_assert_eq(tt->arr_type, GGUF_T_I32);
    const gguf_kv *merges = gguf_find(f, "tokenizer.ggml.merges");
    cr_assert_not_null(merges);
    cr_assert_gt(merges->arr_n, 100000);
    uint32_t bos;
    cr_assert_eq(gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &bos), 0);
    cr_assert_eq(bos, 128000);
    cr_assert_eq(gguf_n_tensors(f), 0);

    /* copy all KVs (incl. 128k-string arrays) and reread: identical formatting */
    gguf_writer *w = gguf_writer_new();
    for (size_t i = 0; i < gguf_n_kv(f); i++) gguf_w_copy_kv(w, gguf_kv_at(f, i));
    cr_assert_eq(gguf_writer_write(w, tpath("vocab.gguf"), NULL, NULL, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    gguf_file *g = gguf_open(tpath("vocab.gguf"), &err);
    cr_assert_not_null(g, "%s", err.msg);
    cr_assert_eq(gguf_n_kv(g), gguf_n_kv(f));
    trit_buf a = {0}, b = {0};
    for (size_t i = 0; i < gguf_n_kv(f); i++) {
        trit_buf_clear(&a);
        trit_buf_clear(&b);
        gguf_kv_format(gguf_kv_at(f, i), &a, 5);
        gguf_kv_format(gguf_kv_at(g, i), &b, 5);
        cr_assert_str_eq(a.p, b.p);
    }
    const gguf_kv *tok2 = gguf_find(g, "tokenizer.ggml.tokens");
    for (uint64_t i = 0; i < tok2->arr_n; i += 997)
        cr_assert(tok2->arr_strs[i].n == tok->arr_strs[i].n &&
                  !memcmp(tok2->arr_strs[i].p, tok->arr_strs[i].p, tok->arr_strs[i].n));
    trit_buf_free(&a);
    trit_buf_free(&b);
    gguf_close(g);
    gguf_close(f);
}

/* ---- corruption suite ---- */

/* A small valid file (2 KVs incl. a string array, 2 tensors) built by hand. Returns the end
 * of the last tensor's data (a prefix at least that long is still a valid file). */
static size_t small_valid(trit_buf *b) {
    b_hdr(b, 3, 2, 3);
    b_kv_u32(b, "general.alignment", 32);
    b_str(b, "general.architecture");
    b_u32(b, GGUF_T_STRING);
    b_str(b, "llama");
    b_str(b, "tok");
    b_u32(b, GGUF_T_ARRAY);
    b_u32(b, GGUF_T_STRING);
    b_u64(b, 2);
    b_str(b, "x");
    b_str(b, "yz");
    uint64_t ne[2] = {8, 2};
    b_tinfo(b, "t0", 2, ne, TRIT_F32, 0);
    uint64_t ne1[1] = {32};
    b_tinfo(b, "t1", 1, ne1, TRIT_Q8_0, 64);
    b_pad(b, 32);
    b_zeros(b, 64);
    b_zeros(b, 34);
    return b->len;
}

Test(gguf_corrupt, valid_base_opens) {
    trit_buf b = {0};
    small_valid(&b);
    trit_err err = {0};
    gguf_file *f = gguf_open_mem(b.p, b.len, &err);
    cr_assert_not_null(f, "%s", err.msg);
    cr_assert_eq(gguf_n_tensors(f), 2);
    cr_assert_eq(gguf_find_tensor(f, "t1")->nbytes, 34);
    gguf_close(f);
    trit_buf_free(&b);
}

Test(gguf_corrupt, truncated_at_every_offset) {
    trit_buf b = {0};
    size_t end = small_valid(&b);
    for (size_t n = 0; n < end; n++) {
        trit_err err = {0};
        gguf_file *f = gguf_open_mem(b.p, n, &err);
        if (f) gguf_close(f);
        cr_assert_null(f, "prefix of %zu bytes must not open", n);
        cr_assert(err.msg[0], "prefix of %zu bytes: empty message", n);
        cr_assert(strstr(err.msg, "truncated") || strstr(err.msg, "past the end") ||
                      strstr(err.msg, "past end") || strstr(err.msg, "too large"),
                  "prefix %zu: unexpected message '%s'", n, err.msg);
    }
    /* also through the mmap path, with a few prefixes on disk */
    char path[] = "/tmp/trit-test-gguf-trunc.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    size_t cuts[] = {0, 3, 10, 23, 40, end - 1};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(cuts); i++) {
        cr_assert_eq(trit_write_file_atomic(path, b.p, cuts[i], NULL), 0);
        trit_err err = {0};
        gguf_file *f = gguf_open(path, &err);
        cr_assert_null(f);
        cr_assert(strstr(err.msg, path), "message names the file: %s", err.msg);
    }
    unlink(path);
    trit_buf_free(&b);
}

Test(gguf_corrupt, bad_magic_and_version) {
    trit_buf b = {0};
    small_valid(&b);
    b.p[0] = 'X';
    expect_fail(&b, "bad magic", "offset 0");
    b.p[0] = 'G';
    uint32_t v = 1;
    memcpy(b.p + 4, &v, 4);
    expect_fail(&b, "unsupported GGUF version 1", "offset 4");
    v = 4;
    memcpy(b.p + 4, &v, 4);
    expect_fail(&b, "unsupported GGUF version 4", NULL);
    v = 2; /* version 2 has the same layout */
    memcpy(b.p + 4, &v, 4);
    trit_err err = {0};
    gguf_file *f = gguf_open_mem(b.p, b.len, &err);
    cr_assert_not_null(f, "%s", err.msg);
    cr_assert_eq(gguf_version(f), 2);
    gguf_close(f);
    trit_buf_free(&b);
}

Test(gguf_corrupt, huge_counts) {
    trit_buf b = {0};
    b_hdr(&b, 3, 0, UINT64_MAX);
    b_kv_u32(&b, "a", 1);
    expect_fail(&b, "KV count 18446744073709551615", "too large");
    trit_buf_clear(&b);
    b_hdr(&b, 3, 1000000, 0);
    b_zeros(&b, 100);
    expect_fail(&b, "tensor count 1000000", "too large");
    trit_buf_free(&b);
}

Test(gguf_corrupt, string_length_past_eof) {
    trit_buf b = {0};
    b_hdr(&b, 3, 0, 1);
    b_u64(&b, 1000); /* key length */
    trit_buf_append(&b, "abcdefghij", 10);
    expect_fail(&b, "key string length 1000 at offset 24 runs past the end", NULL);
    trit_buf_clear(&b);
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k");
    b_u32(&b, GGUF_T_STRING);
    b_u64(&b, UINT64_MAX);
    b_zeros(&b, 16);
    expect_fail(&b, "value string length 18446744073709551615", "past the end");
    trit_buf_free(&b);
}

Test(gguf_corrupt, bad_value_types) {
    trit_buf b = {0};
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "k.x");
    b_u32(&b, 13);
    b_u32(&b, 0);
    expect_fail(&b, "bad value type 13 for key 'k.x' at offset 35", NULL);
    trit_buf_clear(&b);
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "arr");
    b_u32(&b, GGUF_T_ARRAY);
    b_u32(&b, 77);
    b_u64(&b, 1);
    b_zeros(&b, 8);
    expect_fail(&b, "bad array element type 77", "'arr'");
    trit_buf_clear(&b);
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "arr");
    b_u32(&b, GGUF_T_ARRAY);
    b_u32(&b, GGUF_T_ARRAY);
    b_u64(&b, 1);
    b_zeros(&b, 16);
    expect_fail(&b, "nested arrays", "'arr'");
    trit_buf_clear(&b);
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "arr");
    b_u32(&b, GGUF_T_ARRAY);
    b_u32(&b, GGUF_T_U32);
    b_u64(&b, 1ull << 61);
    b_zeros(&b, 16);
    expect_fail(&b, "array length 2305843009213693952", "too large");
    trit_buf_clear(&b);
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "arr");
    b_u32(&b, GGUF_T_ARRAY);
    b_u32(&b, GGUF_T_STRING);
    b_u64(&b, 3);
    b_str(&b, "ok");
    b_u64(&b, 99);
    b_zeros(&b, 10);
    expect_fail(&b, "element 1", "runs past the end");
    trit_buf_clear(&b);
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "flag");
    b_u32(&b, GGUF_T_BOOL);
    trit_buf_append(&b, "\x02", 1);
    expect_fail(&b, "bool value 2 of key 'flag'", NULL);
    trit_buf_free(&b);
}

Test(gguf_corrupt, duplicates) {
    trit_buf b = {0};
    b_hdr(&b, 3, 0, 3);
    b_kv_u32(&b, "a.b", 1);
    b_kv_u32(&b, "c", 2);
    b_kv_u32(&b, "a.b", 3);
    expect_fail(&b, "duplicate key 'a.b' at offset 60", NULL);
    trit_buf_clear(&b);
    uint64_t ne[1] = {8};
    b_hdr(&b, 3, 2, 0);
    b_tinfo(&b, "w", 1, ne, TRIT_F32, 0);
    b_tinfo(&b, "w", 1, ne, TRIT_F32, 32);
    b_pad(&b, 32);
    b_zeros(&b, 64);
    expect_fail(&b, "duplicate tensor name 'w'", NULL);
    trit_buf_free(&b);
}

/* One tensor file with the given info; data section sized `data` bytes. */
static void one_tensor(trit_buf *b, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                       uint64_t off, size_t data) {
    trit_buf_clear(b);
    b_hdr(b, 3, 1, 0);
    b_tinfo(b, "w", n_dims, ne, type, off);
    b_pad(b, 32);
    b_zeros(b, data);
}

Test(gguf_corrupt, tensor_infos) {
    trit_buf b = {0};
    uint64_t ne[5] = {8, 1, 1, 1, 1};
    one_tensor(&b, 5, ne, TRIT_F32, 0, 64);
    expect_fail(&b, "n_dims 5", "at offset 33");
    one_tensor(&b, 0, ne, TRIT_F32, 0, 64);
    expect_fail(&b, "n_dims 0", NULL);
    uint64_t nz[2] = {8, 0};
    one_tensor(&b, 2, nz, TRIT_F32, 0, 64);
    expect_fail(&b, "zero dimension ne[1]", "'w'");
    uint64_t big[3] = {1ull << 32, 1ull << 30, 4}; /* 2^62 fits, x4 does not */
    one_tensor(&b, 3, big, TRIT_F32, 0, 64);
    expect_fail(&b, "dims overflow", "ne[2]");
    uint64_t neg[1] = {1ull << 63};
    one_tensor(&b, 1, neg, TRIT_F32, 0, 64);
    expect_fail(&b, "dims overflow", "ne[0]");
    uint64_t large[2] = {1ull << 31, 1ull << 31}; /* 2^62 elements: fits int64, not bytes */
    one_tensor(&b, 2, large, TRIT_F32, 0, 64);
    expect_fail(&b, "too large", NULL);
    one_tensor(&b, 1, ne, 99, 0, 64);
    expect_fail(&b, "unknown tensor type 99", "'w'");
    one_tensor(&b, 1, ne, 4, 0, 64); /* id 4 was removed from ggml */
    expect_fail(&b, "unknown tensor type 4", NULL);
    uint64_t odd[1] = {33};
    one_tensor(&b, 1, odd, TRIT_Q8_0, 0, 64);
    expect_fail(&b, "not a multiple of the block size 32", NULL);
    uint64_t i2[1] = {64};
    one_tensor(&b, 1, i2, TRIT_I2_S, 0, 64);
    expect_fail(&b, "row length 64 is not valid for type i2_s", NULL);
    one_tensor(&b, 1, ne, TRIT_F32, 16, 64);
    expect_fail(&b, "misaligned", "offset 16");
    one_tensor(&b, 1, ne, TRIT_F32, 0, 31);
    expect_fail(&b, "data past end of file", "'w'");
    one_tensor(&b, 1, ne, TRIT_F32, UINT64_MAX - 31, 64);
    expect_fail(&b, "data past end of file", NULL);
    one_tensor(&b, 1, ne, TRIT_F32, 0, 32); /* exactly fits */
    trit_err err = {0};
    gguf_file *f = gguf_open_mem(b.p, b.len, &err);
    cr_assert_not_null(f, "%s", err.msg);
    gguf_close(f);
    trit_buf_free(&b);
}

Test(gguf_corrupt, bad_alignment) {
    trit_buf b = {0};
    uint32_t bad[] = {0, 3, 24, 1u << 31};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(bad); i++) {
        trit_buf_clear(&b);
        b_hdr(&b, 3, 0, 1);
        b_kv_u32(&b, "general.alignment", bad[i]);
        expect_fail(&b, "general.alignment", "not a power of two");
    }
    trit_buf_clear(&b);
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "general.alignment");
    b_u32(&b, GGUF_T_STRING);
    b_str(&b, "32");
    expect_fail(&b, "general.alignment has type string", "unsigned integer");
    /* alignment 16: a tensor offset of 16 is then fine */
    trit_buf_clear(&b);
    uint64_t ne[1] = {4};
    b_hdr(&b, 3, 1, 1);
    b_kv_u32(&b, "general.alignment", 16);
    b_tinfo(&b, "w", 1, ne, TRIT_F32, 16);
    b_pad(&b, 16);
    b_zeros(&b, 32);
    trit_err err = {0};
    gguf_file *f = gguf_open_mem(b.p, b.len, &err);
    cr_assert_not_null(f, "%s", err.msg);
    cr_assert_eq(gguf_alignment(f), 16);
    gguf_close(f);
    trit_buf_free(&b);
}

Test(gguf_corrupt, open_errors) {
    trit_err err = {0};
    cr_assert_null(gguf_open("/nonexistent/model.gguf", &err));
    cr_assert(strstr(err.msg, "/nonexistent/model.gguf"), "%s", err.msg);
    cr_assert_eq(err.code, TRIT_ENOTFOUND);
    cr_assert_null(gguf_open("/tmp", &err));
    cr_assert(strstr(err.msg, "not a regular file"), "%s", err.msg);
    char path[] = "/tmp/trit-test-gguf-empty.XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert_null(gguf_open(path, &err));
    cr_assert(strstr(err.msg, "empty file"), "%s", err.msg);
    unlink(path);
    cr_assert_null(gguf_open_mem(NULL, 0, &err));
    cr_assert(strstr(err.msg, "truncated"), "%s", err.msg);
}

/* Random byte flips on the valid file: each result is either a clean open or a NULL with a
 * message; under ASan this also proves no out-of-bounds read. */
Test(gguf_corrupt, random_mutations) {
    trit_buf b = {0};
    small_valid(&b);
    uint8_t *copy = xmalloc(b.len);
    uint64_t s = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(copy, b.p, b.len);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(s >> 33) % b.len;
            copy[pos] = (uint8_t)(s >> 17);
        }
        trit_err err = {0};
        gguf_file *f = gguf_open_mem(copy, b.len, &err);
        if (f) {
            trit_buf out = {0};
            for (size_t i = 0; i < gguf_n_kv(f); i++) gguf_kv_format(gguf_kv_at(f, i), &out, 4);
            gguf_close(f);
            trit_buf_free(&out);
        } else {
            cr_assert(err.msg[0], "iteration %d: NULL without a message", iter);
        }
    }
    free(copy);
    trit_buf_free(&b);
}

/* ---- the CLI commands built on the reader (trit inspect, trit doctor) ----
 * The binary is the `trit` next to this test's build dir (build/<B>/trit); skipped if absent. */
static bool trit_bin(char *out, size_t n) {
    char self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return false;
    self[k] = 0;
    char *slash = strrchr(self, '/'); /* .../build/B/tests/test_gguf */
    if (!slash) return false;
    *slash = 0;
    snprintf(out, n, "%s/../trit", self);
    return access(out, X_OK) == 0;
}

/* Run a shell command; capture stdout+stderr; return the exit status. */
static int run(const char *cmd, trit_buf *out) {
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char chunk[4096];
    size_t k;
    trit_buf_clear(out);
    while ((k = fread(chunk, 1, sizeof chunk, p)) > 0) trit_buf_append(out, chunk, k);
    if (!out->p) trit_buf_puts(out, "");
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(cli, inspect, .init = setup_tmp, .fini = teardown_tmp) {
    char bin[4200];
    if (!trit_bin(bin, sizeof bin)) cr_skip_test("trit binary not built next to the tests");
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", "llama");
    gguf_w_u32(w, "llama.embedding_length", 64);
    gguf_w_u32(w, "llama.block_count", 1);
    const char *toks[] = {"a", "b", "c", "d", "e", "f", "g"};
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 7);
    float x[64] = {0};
    int64_t ne[2] = {32, 2};
    gguf_w_tensor(w, "output_norm.weight", TRIT_F32, 2, ne, x, sizeof x);
    trit_err err = {0};
    cr_assert_eq(gguf_writer_write(w, tpath("m.gguf"), NULL, NULL, &err), 0, "%s", err.msg);
    gguf_writer_free(w);

    trit_buf o = {0};
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' 2>&1", bin, tpath("m.gguf"));
    cr_assert_eq(run(cmd, &o), 0, "%s", o.p);
    cr_assert(strstr(o.p, "GGUF v3"), "%s", o.p);
    cr_assert(strstr(o.p, "[string x 7] [\"a\", \"b\", \"c\", \"d\", \"e\", ...]"), "%s", o.p);
    cr_assert(strstr(o.p, "architecture: llama"), "%s", o.p);
    cr_assert(strstr(o.p, "vocab_size       7"), "%s", o.p);
    cr_assert(strstr(o.p, "silu (default: llama.cpp behaviour)"), "%s", o.p);
    cr_assert(strstr(o.p, "output_norm.weight"), "%s", o.p);
    cr_assert(strstr(o.p, "32 x 2"), "%s", o.p);
    cr_assert(strstr(o.p, "1 tensors, 64 parameters, 256 B"), "%s", o.p);

    snprintf(cmd, sizeof cmd, "'%s' inspect --json '%s'", bin, tpath("m.gguf"));
    cr_assert_eq(run(cmd, &o), 0, "%s", o.p);
    cr_assert(strstr(o.p, "\"ffn_activation\": \"silu\""), "%s", o.p);
    cr_assert(strstr(o.p, "\"ffn_activation_source\": \"default\""), "%s", o.p);
    cr_assert(strstr(o.p, "\"bytes\": 256"), "%s", o.p);
    cr_assert(strstr(o.p, "\"n\": 7"), "%s", o.p);

    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' --kv tokenizer.ggml.tokens", bin, tpath("m.gguf"));
    cr_assert_eq(run(cmd, &o), 0, "%s", o.p);
    cr_assert_str_eq(o.p, "0\ta\n1\tb\n2\tc\n3\td\n4\te\n5\tf\n6\tg\n");
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' --kv no.such.key 2>&1", bin, tpath("m.gguf"));
    cr_assert_eq(run(cmd, &o), 1);
    cr_assert(strstr(o.p, "key 'no.such.key' not found"), "%s", o.p);

    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' 2>&1", bin, tpath("missing.gguf"));
    cr_assert_eq(run(cmd, &o), 1);
    cr_assert(strstr(o.p, "cannot open"), "%s", o.p);
    char src[600];
    snprintf(src, sizeof src, "%s", tpath("m.gguf")); /* tpath() reuses one buffer */
    snprintf(cmd, sizeof cmd, "head -c 100 '%s' > '%s' && '%s' inspect '%s' 2>&1", src,
             tpath("cut.gguf"), bin, tpath("cut.gguf"));
    cr_assert_eq(run(cmd, &o), 1);
    cr_assert(strstr(o.p, "cut.gguf") && strstr(o.p, "offset"), "%s", o.p);
    snprintf(cmd, sizeof cmd, "'%s' inspect 2>&1", bin);
    cr_assert_eq(run(cmd, &o), 2, "no argument is a usage error");
    snprintf(cmd, sizeof cmd, "'%s' inspect --help", bin);
    cr_assert_eq(run(cmd, &o), 0);
    cr_assert(strstr(o.p, "usage: trit inspect"), "%s", o.p);
    trit_buf_free(&o);
}

Test(cli, doctor) {
    char bin[4200];
    if (!trit_bin(bin, sizeof bin)) cr_skip_test("trit binary not built next to the tests");
    trit_buf o = {0};
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "'%s' doctor --help", bin);
    cr_assert_eq(run(cmd, &o), 0);
    snprintf(cmd, sizeof cmd, "'%s' doctor --bogus 2>&1", bin);
    cr_assert_eq(run(cmd, &o), 2);
    /* a missing reference is a required failure: exit 1 and a red line naming it */
    snprintf(cmd, sizeof cmd, "TRIT_REF_DIR=/nonexistent/ref '%s' doctor --no-color", bin);
    cr_assert_eq(run(cmd, &o), 1, "%s", o.p);
    cr_assert(strstr(o.p, "\u2717 reference dir") && strstr(o.p, "/nonexistent/ref"), "%s", o.p);
    cr_assert(strstr(o.p, "\u2713 compiler"), "%s", o.p);
    cr_assert(strstr(o.p, "\u2713 jansson"), "%s", o.p);
    cr_assert(strstr(o.p, "required item"), "%s", o.p);
    trit_buf_free(&o);
}
