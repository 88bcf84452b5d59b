/* base — errors, logging, memory, strings, fp16/bf16 and ggml's nearest_int, time, thread pool,
 * hashing.
 *
 * Contract: depends on libc (and libxxhash) only; every other module may use it.
 * Errors: functions that can fail take a `trit_err *` (may be NULL) and return a status
 * (0 ok, -1 failure) or NULL; on failure they fill err->msg with one human-readable sentence
 * naming what was wrong (file, offset, key...). Out-of-memory aborts the process (xmalloc). */
#ifndef TRIT_BASE_H
#define TRIT_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef TRIT_NLC_VERSION
#define TRIT_NLC_VERSION "3.22.1" /* node-llama-cpp version the reference is built from */
#endif
#define TRIT_VERSION "0.1.0"
/* The commit trit was built from (`git describe --always --dirty` at build time, written by
 * the Makefile to build/gen/trit_commit.h; "unknown" outside a git checkout). */
const char *trit_build_commit(void);
/* "<version>+<commit>", e.g. "0.1.0+b08b9d8-dirty": the build every identity reports (trit
 * --version, /props, the in-process backend). */
void trit_build_string(char *out, size_t n);

/* ---- errors ---- */
typedef struct trit_err {
    int code; /* 0 = none; otherwise a TRIT_E* value */
    char msg[512];
} trit_err;

enum {
    TRIT_EOK = 0,
    TRIT_EIO = 1,     /* open/read/write/mmap failed */
    TRIT_EFORMAT = 2, /* malformed input (file or request) */
    TRIT_EUNSUP = 3,  /* well-formed but not supported (type, arch) */
    TRIT_EINVAL = 4,  /* bad argument from the caller */
    TRIT_ENOTFOUND = 5,
    TRIT_ERANGE = 6,   /* too big / out of bounds */
    TRIT_ENET = 7,     /* network: refused, timeout, HTTP error */
    TRIT_EUNAVAIL = 8, /* capability not available (backend) */
};

/* Set err (if non-NULL) and return -1, so `return trit_fail(err, ...)` reads naturally. */
int trit_fail(trit_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefix an existing message: "ctx: old message". */
void trit_err_prefix(trit_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- logging (stderr; level from $TRIT_LOG = error|warn|info|debug, default warn) ---- */
enum { TRIT_LOG_ERROR = 0, TRIT_LOG_WARN = 1, TRIT_LOG_INFO = 2, TRIT_LOG_DEBUG = 3 };
void trit_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int trit_log_level(void);
void trit_log_set_level(int level);

/* ---- memory (abort on OOM) ---- */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xaligned_alloc(size_t align, size_t n); /* free with free() */

/* ---- growable byte/string buffer; p is always NUL-terminated ---- */
typedef struct trit_buf {
    char *p;
    size_t len, cap;
} trit_buf;
void trit_buf_reserve(trit_buf *b, size_t extra);
void trit_buf_append(trit_buf *b, const void *data, size_t n);
void trit_buf_puts(trit_buf *b, const char *s);
void trit_buf_printf(trit_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void trit_buf_clear(trit_buf *b);
void trit_buf_free(trit_buf *b);
/* Read a whole file (binary-safe). */
int trit_read_file(const char *path, trit_buf *out, trit_err *err);
/* Write a whole file atomically: a temp file beside it with an unpredictable name, created
 * O_EXCL|O_NOFOLLOW with `mode`, written, fsync'd, renamed over path, then the directory
 * fsync'd. Readers see the old or the new content, never a mix; a planted link is never
 * followed. trit_write_file_atomic uses 0644 (reports, receipts); private files (burn-in
 * state) use 0600. */
int trit_write_file_atomic_mode(const char *path, const void *data, size_t n, unsigned mode,
                                trit_err *err);
int trit_write_file_atomic(const char *path, const void *data, size_t n, trit_err *err);

/* ---- fp16 / bf16 (IEEE binary16 with round-to-nearest-even like F16C; bf16 as ggml) ---- */
float trit_fp16_to_fp32(uint16_t h);
uint16_t trit_fp32_to_fp16(float f);
float trit_bf16_to_fp32(uint16_t h);
uint16_t
trit_fp32_to_bf16(float f); /* round-to-nearest-even, NaN kept quiet (ggml_compute_fp32_to_bf16) */

/* ggml's nearest_int: round to nearest, ties to even, via the 1.5*2^23 trick (|f| <= 2^22).
 * The one rounding rule of ggml's quantizers (quant/, kernels/ref) and of perplexity.cpp's
 * logit rows (parity/ppl.c). */
static inline int trit_nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- time ---- */
uint64_t trit_now_ns(void);                     /* monotonic */
double trit_now_s(void);                        /* monotonic, seconds */
double trit_wall_s(void);                       /* CLOCK_REALTIME seconds since epoch */
void trit_iso8601(double wall_s, char out[32]); /* "2026-11-24T20:43:07.123Z" */

/* ---- waiting for a stop (a foreground server's main thread: trit shadow, the dashboard) ----
 * trit_wait_for_stop blocks until SIGINT or SIGTERM arrives or trit_stop_request is called
 * (another thread, a test), polling every 50 ms; on return the previous signal handlers are
 * back and the request is cleared. A request made before the wait starts ends it at once. */
void trit_wait_for_stop(void);
void trit_stop_request(void);

/* ---- thread pool: fn(arg, ith, nth) runs on nth workers (the caller is worker 0) and
 * trit_pool_run returns when all are done. A pool of 1 runs fn inline. Not reentrant. ---- */
typedef struct trit_pool trit_pool;
typedef void (*trit_pool_fn)(void *arg, int ith, int nth);
trit_pool *trit_pool_new(int n_threads); /* n_threads <= 0: number of online CPUs */
int trit_pool_size(const trit_pool *p);
/* How long idle workers (and the caller, waiting for them) spin before sleeping; the default is
 * $TRIT_SPIN_US or 200 us. The engine sets its CPU's value (trit_tuning_get in kernels). */
void trit_pool_set_spin_us(trit_pool *p, int us);
void trit_pool_run(trit_pool *p, trit_pool_fn fn, void *arg);
void trit_pool_free(trit_pool *p);
int trit_cpu_count(void);

/* ---- hashing ---- */
typedef struct trit_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} trit_sha256;
void trit_sha256_init(trit_sha256 *s);
void trit_sha256_update(trit_sha256 *s, const void *data, size_t n);
void trit_sha256_final(trit_sha256 *s, uint8_t out[32]);
void trit_sha256_hex(const void *data, size_t n, char out[65]);
int trit_sha256_file(const char *path, char out[65], trit_err *err);
uint64_t trit_hash64(const void *data, size_t n); /* XXH3-64 */

/* ---- one row of logits: log-softmax and top-k (sampler, server logprobs, parity) ----
 * lp[i] = logit[i] - trit_logsumexp(row); the sum is taken in double after subtracting the
 * row's maximum, so every caller's logprobs and KL divergences agree bit for bit. */
double trit_logsumexp(const float *logits, int n);
/* Top-k ids by logit (descending, ties lowest id first); returns the count written. */
int trit_top_k(const float *logits, int n, int k, int32_t *ids);

/* ---- browser and DNS-rebinding policy (pure; trit serve and trit shadow) ---- */
/* Whether a browser page from origin (the Origin header) may use a server. cors NULL or "":
 * only loopback pages — http://localhost, http://127.0.0.1 and http://[::1], any port; else a
 * comma-separated list of exact origins, where "*" allows every origin. */
bool trit_origin_allowed(const char *origin, const char *cors);
/* Whether a Host header names this server: localhost, 127.0.0.1, [::1] or the bound address
 * (each with an optional port), or a name in the comma-separated allow list ("*": any).
 * A server bound to loopback checks this so that a DNS-rebinding page (evil.example resolving
 * to 127.0.0.1) gets 403. */
bool trit_host_allowed(const char *host, const char *bound, const char *allow);

/* ---- misc ---- */
/* A whole decimal integer (strtol base 10, nothing after it, no overflow) in [lo, hi]:
 * 0, or -1 without touching *out. For command-line options. */
int trit_parse_long(const char *s, long lo, long hi, long *out);
bool trit_utf8_valid(const char *s, size_t n);
/* Length of the longest prefix of s[0..n) that ends on a complete UTF-8 sequence. */
size_t trit_utf8_complete_prefix(const char *s, size_t n);
/* The project's one rule for text that must become valid UTF-8 (JSON replies, ledger records,
 * the shadow proxy): append s[0..n) to out with every invalid sequence replaced by U+FFFD,
 * one per maximal subpart (Unicode Table 3-7), which is what llama-server sends. out is
 * NUL-terminated afterwards. */
void trit_utf8_repair(const char *s, size_t n, trit_buf *out);
#define TRIT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TRIT_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define TRIT_MAX(a, b)    ((a) > (b) ? (a) : (b))

#endif
