/* test_base.c — base module: errors, fp16/bf16 (exhaustive, against F16C where the CPU has
 * it), sha256 known vectors, thread pool, trit_buf, UTF-8 helpers, atomic file writes. */
#include "base/base.h"

#include <criterion/criterion.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- errors ---- */
Test(base, errors) {
    trit_err err = {0};
    cr_assert_eq(trit_fail(&err, TRIT_EFORMAT, "bad %s at offset %d", "thing", 12), -1);
    cr_assert_eq(err.code, TRIT_EFORMAT);
    cr_assert_str_eq(err.msg, "bad thing at offset 12");
    trit_err_prefix(&err, "file %s", "x.gguf");
    cr_assert_str_eq(err.msg, "file x.gguf: bad thing at offset 12");
    cr_assert_eq(trit_fail(NULL, TRIT_EIO, "ignored"), -1, "NULL err is allowed");
    char big[2000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    trit_fail(&err, TRIT_EINVAL, "%s", big);
    cr_assert_lt(strlen(err.msg), sizeof err.msg, "message truncated, still terminated");
}

/* ---- fp16 ---- */
#if defined(__x86_64__)
__attribute__((target("f16c"))) static float hw_h2f(uint16_t h) {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}
__attribute__((target("f16c"))) static uint16_t hw_f2h(float f) {
    return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0);
}
static bool have_f16c(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c");
}
#elif defined(__aarch64__)
/* aarch64: the hardware's own half conversions (fcvt), the same cross-check as F16C's */
static float hw_h2f(uint16_t h) {
    __fp16 x;
    memcpy(&x, &h, 2);
    return (float)x;
}
static uint16_t hw_f2h(float f) {
    const __fp16 x = (__fp16)f;
    uint16_t h;
    memcpy(&h, &x, 2);
    return h;
}
static bool have_f16c(void) {
    return true;
}
#else
static float hw_h2f(uint16_t h) {
    return trit_fp16_to_fp32(h);
}
static uint16_t hw_f2h(float f) {
    return trit_fp32_to_fp16(f);
}
static bool have_f16c(void) {
    return false;
}
#endif

Test(fp16, exhaustive_roundtrip) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = trit_fp16_to_fp32((uint16_t)h);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan) {
            cr_assert(isnan(f), "half %04x must be NaN", h);
            cr_assert(isnan(trit_fp16_to_fp32(trit_fp32_to_fp16(f))), "NaN stays NaN (%04x)", h);
            continue;
        }
        uint16_t back = trit_fp32_to_fp16(f);
        cr_assert_eq(back, h, "half %04x -> %.9g -> %04x", h, f, back);
    }
}

Test(fp16, known_values) {
    cr_assert_eq(trit_fp16_to_fp32(0x3c00), 1.0f);
    cr_assert_eq(trit_fp16_to_fp32(0xc000), -2.0f);
    cr_assert_eq(trit_fp16_to_fp32(0x7bff), 65504.0f);
    cr_assert_eq(trit_fp16_to_fp32(0x0001), ldexpf(1, -24), "smallest subnormal");
    cr_assert_eq(trit_fp16_to_fp32(0x03ff), ldexpf(1023, -24), "largest subnormal");
    cr_assert_eq(trit_fp16_to_fp32(0x0400), ldexpf(1, -14), "smallest normal");
    cr_assert(isinf(trit_fp16_to_fp32(0x7c00)) && trit_fp16_to_fp32(0x7c00) > 0);
    cr_assert(isinf(trit_fp16_to_fp32(0xfc00)) && trit_fp16_to_fp32(0xfc00) < 0);
    cr_assert_eq(f2u(trit_fp16_to_fp32(0x8000)), 0x80000000u, "-0 keeps its sign");
}

Test(fp16, round_to_nearest_even) {
    /* halfway between 1 and 1+2^-10 -> even (1.0); 3 halves -> 1+2^-9 (even mantissa 2) */
    cr_assert_eq(trit_fp32_to_fp16(1.0f + ldexpf(1, -11)), 0x3c00);
    cr_assert_eq(trit_fp32_to_fp16(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
    cr_assert_eq(trit_fp32_to_fp16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)), 0x3c01,
                 "just above halfway rounds up");
    cr_assert_eq(trit_fp32_to_fp16(65504.0f), 0x7bff);
    cr_assert_eq(trit_fp32_to_fp16(65519.0f), 0x7bff, "below the halfway point to inf");
    cr_assert_eq(trit_fp32_to_fp16(65520.0f), 0x7c00, "halfway to 65536 ties to even: inf");
    cr_assert_eq(trit_fp32_to_fp16(1e10f), 0x7c00, "overflow -> inf");
    cr_assert_eq(trit_fp32_to_fp16(-1e10f), 0xfc00);
    cr_assert_eq(trit_fp32_to_fp16(ldexpf(1, -24)), 0x0001);
    cr_assert_eq(trit_fp32_to_fp16(ldexpf(1, -25)), 0x0000, "half the smallest subnormal -> 0");
    cr_assert_eq(trit_fp32_to_fp16(3 * ldexpf(1, -25)), 0x0002, "1.5 subnormal ulps -> 2");
    cr_assert_eq(trit_fp32_to_fp16(ldexpf(1, -26)), 0x0000);
    cr_assert_eq(trit_fp32_to_fp16(-0.0f), 0x8000);
    cr_assert_eq(trit_fp32_to_fp16(u2f(0x7f800000)), 0x7c00);
    uint16_t n = trit_fp32_to_fp16(nanf(""));
    cr_assert((n & 0x7c00) == 0x7c00 && (n & 0x3ff), "NaN -> half NaN (%04x)", n);
}

Test(fp16, matches_f16c_hardware) {
    if (!have_f16c()) cr_skip_test("CPU without F16C");
    for (uint32_t h = 0; h < 65536; h++) {
        float a = trit_fp16_to_fp32((uint16_t)h), b = hw_h2f((uint16_t)h);
        if (isnan(b))
            cr_assert(isnan(a));
        else
            cr_assert_eq(f2u(a), f2u(b), "half %04x", h);
    }
    /* every float around each half value (the halfway points and their neighbours), plus
     * pseudo-random bit patterns */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        float lo = trit_fp16_to_fp32((uint16_t)h), hi = trit_fp16_to_fp32((uint16_t)(h + 1));
        float mid = lo + (hi - lo) / 2;
        float cand[] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY), -mid};
        for (size_t k = 0; k < TRIT_ARRAY_LEN(cand); k++)
            cr_assert_eq(trit_fp32_to_fp16(cand[k]), hw_f2h(cand[k]), "f32 %08x", f2u(cand[k]));
    }
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < 2000000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float f = u2f((uint32_t)s);
        uint16_t a = trit_fp32_to_fp16(f), b = hw_f2h(f);
        if (isnan(f))
            cr_assert((a & 0x7c00) == 0x7c00 && (a & 0x3ff));
        else
            cr_assert_eq(a, b, "f32 %08x: trit %04x, F16C %04x", (uint32_t)s, a, b);
    }
}

/* ---- bf16 (ggml_compute_fp32_to_bf16: round to nearest even, NaN forced quiet) ---- */
Test(bf16, conversions) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = trit_bf16_to_fp32((uint16_t)h);
        cr_assert_eq(f2u(f), h << 16, "bf16 %04x widens exactly", h);
        if (isnan(f)) continue;
        cr_assert_eq(trit_fp32_to_bf16(f), h, "bf16 %04x round trip", h);
    }
    cr_assert_eq(trit_fp32_to_bf16(1.0f), 0x3f80);
    cr_assert_eq(trit_fp32_to_bf16(u2f(0x3f808000)), 0x3f80, "halfway, even stays");
    cr_assert_eq(trit_fp32_to_bf16(u2f(0x3f818000)), 0x3f82, "halfway, odd rounds up");
    cr_assert_eq(trit_fp32_to_bf16(u2f(0x3f808001)), 0x3f81, "above halfway");
    cr_assert_eq(trit_fp32_to_bf16(u2f(0x7f7fffff)), 0x7f80, "max float rounds to inf");
    cr_assert_eq(trit_fp32_to_bf16(u2f(0x7f800001)), 0x7fc0, "signalling NaN made quiet");
    cr_assert_eq(trit_fp32_to_bf16(u2f(0xffc00000)), 0xffc0);
    /* the formula itself on random patterns */
    uint64_t s = 1;
    for (int i = 0; i < 1000000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t u = (uint32_t)(s >> 32);
        uint16_t want = ((u & 0x7fffffff) > 0x7f800000)
                            ? (uint16_t)((u >> 16) | 64)
                            : (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
        cr_assert_eq(trit_fp32_to_bf16(u2f(u)), want, "f32 %08x", u);
    }
}

/* ---- sha256 ---- */
Test(sha256, known_vectors) {
    char hex[65];
    trit_sha256_hex("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    trit_sha256_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    trit_sha256_hex(two, strlen(two), hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *m = xmalloc(1000000);
    memset(m, 'a', 1000000);
    trit_sha256_hex(m, 1000000, hex);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* incremental, in awkward chunk sizes, gives the same digest */
    trit_sha256 s;
    trit_sha256_init(&s);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t k = TRIT_MIN(step, 1000000 - off);
        trit_sha256_update(&s, m + off, k);
        off += k;
        step = step * 3 % 131 + 1;
    }
    uint8_t d[32];
    trit_sha256_final(&s, d);
    cr_assert_eq(d[0], 0xcd);
    cr_assert_eq(d[31], 0xd0);
    /* file hashing */
    char path[] = "/tmp/trit-test-sha.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, m, 1000000), 1000000);
    close(fd);
    cr_assert_eq(trit_sha256_file(path, hex, NULL), 0);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    unlink(path);
    trit_err err = {0};
    cr_assert_eq(trit_sha256_file("/nonexistent/file", hex, &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent/file"), "%s", err.msg);
    free(m);
    cr_assert_eq(trit_hash64("abc", 3), trit_hash64("abc", 3));
    cr_assert_neq(trit_hash64("abc", 3), trit_hash64("abd", 3));
}

/* ---- thread pool ---- */
typedef struct sum_job {
    int64_t n;
    int64_t partial[64];
    int seen[64];
    int nth_seen;
} sum_job;

static void sum_fn(void *arg, int ith, int nth) {
    sum_job *j = arg;
    int64_t lo = j->n * ith / nth, hi = j->n * (ith + 1) / nth, s = 0;
    for (int64_t i = lo; i < hi; i++) s += i + 1;
    j->partial[ith] = s;
    j->seen[ith]++;
    j->nth_seen = nth;
}

Test(pool, sum_over_workers) {
    int sizes[] = {1, 2, 3, 8};
    for (size_t k = 0; k < TRIT_ARRAY_LEN(sizes); k++) {
        trit_pool *p = trit_pool_new(sizes[k]);
        cr_assert_eq(trit_pool_size(p), sizes[k]);
        for (int rep = 0; rep < 50; rep++) {
            sum_job j = {.n = 100000 + rep};
            trit_pool_run(p, sum_fn, &j);
            cr_assert_eq(j.nth_seen, sizes[k]);
            int64_t total = 0;
            for (int t = 0; t < sizes[k]; t++) {
                cr_assert_eq(j.seen[t], 1, "worker %d ran once (pool %d)", t, sizes[k]);
                total += j.partial[t];
            }
            cr_assert_eq(total, j.n * (j.n + 1) / 2);
        }
        trit_pool_free(p);
    }
    trit_pool *p = trit_pool_new(0);
    cr_assert_eq(trit_pool_size(p), trit_cpu_count());
    cr_assert_geq(trit_cpu_count(), 1);
    trit_pool_free(p);
}

/* ---- trit_buf ---- */
Test(buf, grow_printf_clear) {
    trit_buf b = {0};
    trit_buf_puts(&b, "");
    cr_assert_not_null(b.p);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.p, "");
    for (int i = 0; i < 10000; i++) trit_buf_printf(&b, "%d,", i % 10);
    cr_assert_eq(b.len, 20000);
    cr_assert_eq(b.p[b.len], 0);
    cr_assert_eq(strncmp(b.p, "0,1,2,", 6), 0);
    trit_buf_append(&b, "\0x", 2); /* binary-safe */
    cr_assert_eq(b.len, 20002);
    cr_assert_eq(b.p[20001], 'x');
    trit_buf_clear(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.p, "");
    char big[5000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = 0;
    trit_buf_printf(&b, "<%s>", big);
    cr_assert_eq(b.len, 5001);
    cr_assert_eq(b.p[5000], '>');
    trit_buf_free(&b);
    cr_assert_null(b.p);
    cr_assert_eq(b.len, 0);
}

/* ---- UTF-8 ---- */
Test(utf8, valid_and_prefix) {
    cr_assert(trit_utf8_valid("", 0));
    cr_assert(trit_utf8_valid("plain ascii", 11));
    cr_assert(trit_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    cr_assert(!trit_utf8_valid("\xc0\x80", 2), "overlong NUL");
    cr_assert(!trit_utf8_valid("\xe0\x80\xaf", 3), "overlong '/'");
    cr_assert(!trit_utf8_valid("\xed\xa0\x80", 3), "surrogate");
    cr_assert(!trit_utf8_valid("\xf4\x90\x80\x80", 4), "above U+10FFFF");
    cr_assert(!trit_utf8_valid("\x80", 1), "lone continuation");
    cr_assert(!trit_utf8_valid("\xe2\x82", 2), "truncated");
    cr_assert(!trit_utf8_valid("\xff", 1));
    cr_assert(trit_utf8_valid("a\0b", 3), "NUL is valid UTF-8");

    cr_assert_eq(trit_utf8_complete_prefix("ab\xe2\x82", 4), 2);
    cr_assert_eq(trit_utf8_complete_prefix("ab\xe2\x82\xac", 5), 5);
    cr_assert_eq(trit_utf8_complete_prefix("\xf0\x9f\x98", 3), 0);
    cr_assert_eq(trit_utf8_complete_prefix("\xf0\x9f\x98\x80", 4), 4);
    cr_assert_eq(trit_utf8_complete_prefix("x\xc3", 2), 1);
    cr_assert_eq(trit_utf8_complete_prefix("abc", 3), 3);
    cr_assert_eq(trit_utf8_complete_prefix("", 0), 0);
    /* every split of a mixed string: the prefix is complete and maximal */
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    size_t n = strlen(s);
    size_t bounds[] = {0, 1, 3, 6, 10, 11};
    for (size_t cut = 0; cut <= n; cut++) {
        size_t want = 0;
        for (size_t k = 0; k < TRIT_ARRAY_LEN(bounds); k++)
            if (bounds[k] <= cut) want = bounds[k];
        cr_assert_eq(trit_utf8_complete_prefix(s, cut), want, "cut %zu", cut);
    }
}

/* ---- files ---- */
Test(files, write_atomic_and_read) {
    char dir[] = "/tmp/trit-test-base.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    trit_err err = {0};
    cr_assert_eq(trit_write_file_atomic(path, "first\0version", 13, &err), 0, "%s", err.msg);
    trit_buf b = {0};
    cr_assert_eq(trit_read_file(path, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(b.len, 13);
    cr_assert_eq(memcmp(b.p, "first\0version", 13), 0);
    cr_assert_eq(trit_write_file_atomic(path, "2", 1, &err), 0, "%s", err.msg);
    trit_buf_clear(&b);
    cr_assert_eq(trit_read_file(path, &b, &err), 0);
    cr_assert_str_eq(b.p, "2");
    cr_assert_eq(trit_write_file_atomic(path, "", 0, &err), 0);
    trit_buf_free(&b);
    cr_assert_eq(trit_read_file(path, &b, &err), 0);
    cr_assert_eq(b.len, 0);
    cr_assert_not_null(b.p);
    trit_buf_free(&b);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", dir);
    cr_assert_eq(system(cmd), 0, "no temporary file left behind");
    cr_assert_eq(trit_write_file_atomic("/nonexistent-dir/x", "a", 1, &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent-dir/x"), "%s", err.msg);
    cr_assert_eq(trit_read_file("/nonexistent-dir/x", &b, &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent-dir/x"), "%s", err.msg);
    unlink(path);
    rmdir(dir);
}

/* ---- time ---- */
Test(base, time_and_iso8601) {
    uint64_t a = trit_now_ns();
    usleep(2000);
    uint64_t b = trit_now_ns();
    cr_assert_geq(b - a, 2000000ull);
    char iso[32];
    trit_iso8601(0.5, iso);
    cr_assert_str_eq(iso, "1970-01-01T00:00:00.500Z");
    trit_iso8601(1795552987.125, iso);
    cr_assert_str_eq(iso, "2026-11-24T20:43:07.125Z");
    cr_assert_gt(trit_wall_s(), 1.7e9);
}

/* ---- option parsing ---- */
Test(base, parse_long) {
    long v = 7;
    cr_assert_eq(trit_parse_long("42", 0, 100, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(trit_parse_long("-5", -10, 10, &v), 0);
    cr_assert_eq(v, -5);
    v = 7;
    cr_assert_eq(trit_parse_long("", 0, 100, &v), -1);
    cr_assert_eq(trit_parse_long("12x", 0, 100, &v), -1);
    cr_assert_eq(trit_parse_long("101", 0, 100, &v), -1);
    cr_assert_eq(trit_parse_long("-1", 0, 100, &v), -1);
    cr_assert_eq(trit_parse_long("99999999999999999999999", 0, LONG_MAX, &v), -1);
    cr_assert_eq(v, 7, "a rejected value leaves *out alone");
}

/* issue 13: private files are 0600; the temp file is created exclusively under an
 * unpredictable name, so a link planted at the old predictable name (path.tmp.PID) is never
 * followed and its target never written */
Test(files, write_atomic_private_mode_and_no_link_followed) {
    char dir[] = "/tmp/trit-test-base.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256], victim[300], planted[300];
    snprintf(path, sizeof path, "%s/state", dir);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    snprintf(planted, sizeof planted, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(victim, "w");
    fputs("untouched", f);
    fclose(f);
    cr_assert_eq(symlink(victim, planted), 0);
    trit_err err = {0};
    cr_assert_eq(trit_write_file_atomic_mode(path, "secret", 6, 0600, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    trit_buf b = {0};
    cr_assert_eq(trit_read_file(victim, &b, &err), 0);
    cr_assert_str_eq(b.p, "untouched");
    trit_buf_free(&b);
    unlink(planted);
    unlink(victim);
    unlink(path);
    rmdir(dir);
}

/* the one log-softmax and top-k (moved from the engine; parity and the server share them) */
Test(logits, logsumexp_and_top_k) {
    float x[5] = {1.0f, 3.0f, 3.0f, -2.0f, 0.5f};
    double want = 3.0 + log(exp(-2.0) + 1 + 1 + exp(-5.0) + exp(-2.5));
    cr_assert_float_eq(trit_logsumexp(x, 5), want, 1e-12);
    int32_t ids[3];
    cr_assert_eq(trit_top_k(x, 5, 3, ids), 3);
    cr_assert_eq(ids[0], 1, "equal logits: lowest id first");
    cr_assert_eq(ids[1], 2);
    cr_assert_eq(ids[2], 0);
    cr_assert_eq(trit_top_k(x, 5, 0, ids), 0);
    cr_assert_eq(trit_top_k(x, 2, 9, ids), 2, "k > n keeps n");
    float ninf[2] = {-INFINITY, -INFINITY};
    cr_assert(isinf(trit_logsumexp(ninf, 2)));
}
