/* base — implementation of base.h (see the contract there). */
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* The Makefile writes build/gen/trit_commit.h (`git describe --always --dirty`); a build
 * without it (another build system) says "unknown" rather than failing. */
#if defined(__has_include)
#if __has_include("trit_commit.h")
#include "trit_commit.h"
#endif
#endif
#ifndef TRIT_COMMIT
#define TRIT_COMMIT "unknown"
#endif

/* ---- errors ---- */
int trit_fail(trit_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code ? code : TRIT_EINVAL;
    }
    return -1;
}

void trit_err_prefix(trit_err *err, const char *fmt, ...) {
    if (!err) return;
    char pre[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", pre, old);
}

/* ---- logging ---- */
static int g_log_level = -1;

int trit_log_level(void) {
    if (g_log_level < 0) {
        const char *e = getenv("TRIT_LOG");
        g_log_level = TRIT_LOG_WARN;
        if (e) {
            if (!strcmp(e, "error"))
                g_log_level = TRIT_LOG_ERROR;
            else if (!strcmp(e, "info"))
                g_log_level = TRIT_LOG_INFO;
            else if (!strcmp(e, "debug"))
                g_log_level = TRIT_LOG_DEBUG;
        }
    }
    return g_log_level;
}

void trit_log_set_level(int level) {
    g_log_level = level;
}

void trit_log(int level, const char *fmt, ...) {
    if (level > trit_log_level()) return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "trit: %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], line);
}

/* ---- memory ---- */
static void oom(size_t n) {
    fprintf(stderr, "trit: out of memory allocating %zu bytes\n", n);
    abort();
}
void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}
void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}
void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}
char *xstrdup(const char *s) {
    return xstrndup(s, strlen(s));
}
char *xstrndup(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}
void *xaligned_alloc(size_t align, size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, n ? n : 1)) oom(n);
    return p;
}

/* ---- buffers ---- */
void trit_buf_reserve(trit_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}
void trit_buf_append(trit_buf *b, const void *data, size_t n) {
    trit_buf_reserve(b, n);
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
}
void trit_buf_puts(trit_buf *b, const char *s) {
    trit_buf_append(b, s, strlen(s));
}
void trit_buf_printf(trit_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        trit_buf_reserve(b, (size_t)n);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}
void trit_buf_clear(trit_buf *b) {
    b->len = 0;
    if (b->p) b->p[0] = 0;
}
void trit_buf_free(trit_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int trit_read_file(const char *path, trit_buf *out, trit_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return trit_fail(err, TRIT_EIO, "cannot open %s: %s", path, strerror(errno));
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) trit_buf_append(out, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return trit_fail(err, TRIT_EIO, "read error on %s", path);
    if (!out->p) trit_buf_reserve(out, 0), out->p[0] = 0;
    return 0;
}

/* A temp file next to path with an unpredictable name, created exclusively (never through a
 * link an attacker planted): fd, or -1 with errno set. tmp gets the name. */
static int create_temp_beside(const char *path, unsigned mode, char *tmp, size_t tmp_sz) {
    for (int attempt = 0; attempt < 16; attempt++) {
        uint64_t r = 0;
        /* getentropy when it works; else time, pid and the attempt, still never reused */
        if (getentropy(&r, sizeof r) != 0)
            r = (uint64_t)(trit_now_s() * 1e9) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)attempt;
        snprintf(tmp, tmp_sz, "%s.tmp.%016llx", path, (unsigned long long)r);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

/* fsync the directory holding path, so a rename into it survives a crash */
static int fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int trit_write_file_atomic_mode(const char *path, const void *data, size_t n, unsigned mode,
                                trit_err *err) {
    size_t tmp_sz = strlen(path) + 32;
    char *tmp = xmalloc(tmp_sz);
    int fd = create_temp_beside(path, mode, tmp, tmp_sz);
    if (fd < 0) {
        trit_fail(err, TRIT_EIO, "cannot create a temp file for %s: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    /* the whole content, then fsync, close, rename over path, fsync of the directory */
    const char *p = data;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            trit_fail(err, TRIT_EIO, "write %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        trit_fail(err, TRIT_EIO, "cannot commit %s: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    if (fsync_parent_dir(path) != 0)
        return trit_fail(err, TRIT_EIO, "cannot sync the directory of %s: %s", path,
                         strerror(errno));
    return 0;
}

int trit_write_file_atomic(const char *path, const void *data, size_t n, trit_err *err) {
    return trit_write_file_atomic_mode(path, data, n, 0644, err);
}

/* ---- fp16 / bf16 ---- */
static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float trit_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return u2f(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (man << 13));
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t trit_fp32_to_fp16(float f) {
    uint32_t x = f2u(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) { /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
    }
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {                                  /* below 2^-14: subnormal half */
        /* add 0.5 (as float) so the FPU rounds to nearest-even at 2^-24 granularity */
        float v = u2f(ax) + 0.5f;
        return (uint16_t)(sign | ((f2u(v) - 0x3f000000u) & 0x7ff));
    }
    uint32_t mant_odd = (ax >> 13) & 1;
    ax += 0xc8000fffu + mant_odd; /* rebias exponent (-112<<23) and round to nearest even */
    return (uint16_t)(sign | (ax >> 13));
}

float trit_bf16_to_fp32(uint16_t h) {
    return u2f((uint32_t)h << 16);
}

uint16_t trit_fp32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet nan */
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

/* ---- time ---- */
uint64_t trit_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
double trit_now_s(void) {
    return (double)trit_now_ns() * 1e-9;
}

/* ---- waiting for a stop ---- */
/* Set by the handler (async-signal-safe: one store) or by trit_stop_request. */
static volatile sig_atomic_t stop_requested;

static void stop_on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

void trit_stop_request(void) {
    stop_requested = 1;
}

/* Polling rather than sigwait: the signal may land on any thread, and the flag is what a
 * test's trit_stop_request sets too. */
void trit_wait_for_stop(void) {
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = stop_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    while (!stop_requested) usleep(50 * 1000);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    stop_requested = 0;
}
double trit_wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
void trit_iso8601(double wall_s, char out[32]) {
    time_t t = (time_t)wall_s;
    int ms = (int)((wall_s - (double)t) * 1000.0);
    if (ms < 0) ms = 0;
    if (ms > 999) ms = 999;
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[24];
    strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", tmp, ms);
}

/* ---- thread pool ----
 * A run publishes (fn, arg) and bumps `generation`; workers spin on it for a bounded time
 * (TRIT_SPIN_US, default 200 us) before sleeping on a condition variable, and the caller spins
 * on `pending` the same way. A decode step issues hundreds of runs per token, so waking
 * sleeping threads each time would cost more than the work; on an oversubscribed machine the
 * bounded spin falls back to sleeping. */
struct trit_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    _Atomic uint64_t generation;
    _Atomic int pending;
    _Atomic bool quit;
    trit_pool_fn fn;
    void *arg;
    _Atomic uint64_t spin_ns; /* trit_pool_set_spin_us may change it between runs */
};

typedef struct {
    trit_pool *p;
    int ith;
} pool_worker;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spin until *gen != seen (returns true) or the spin budget is spent (false). */
static bool spin_for_generation(trit_pool *p, uint64_t seen) {
    uint64_t t0 = 0;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&p->generation, memory_order_acquire) != seen ||
            atomic_load_explicit(&p->quit, memory_order_relaxed))
            return true;
        cpu_relax();
        if ((i & 63) == 0) {
            uint64_t now = trit_now_ns();
            if (!t0)
                t0 = now;
            else if (now - t0 > p->spin_ns)
                return false;
        }
    }
}

static void *pool_main(void *v) {
    pool_worker *w = v;
    trit_pool *p = w->p;
    int ith = w->ith;
    free(w);
    uint64_t seen = 0;
    for (;;) {
        if (!spin_for_generation(p, seen)) {
            pthread_mutex_lock(&p->mu);
            while (!atomic_load(&p->quit) && atomic_load(&p->generation) == seen)
                pthread_cond_wait(&p->cv_work, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        p->fn(p->arg, ith, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

int trit_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

trit_pool *trit_pool_new(int n_threads) {
    if (n_threads <= 0) n_threads = trit_cpu_count();
    trit_pool *p = xcalloc(1, sizeof *p);
    p->n = n_threads;
    const char *e = getenv("TRIT_SPIN_US");
    p->spin_ns = (uint64_t)((e && *e ? atof(e) : 200.0) * 1000.0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->threads = xcalloc((size_t)n_threads, sizeof(pthread_t));
    for (int i = 1; i < n_threads; i++) {
        pool_worker *w = xmalloc(sizeof *w);
        w->p = p;
        w->ith = i;
        pthread_create(&p->threads[i], NULL, pool_main, w);
    }
    return p;
}

int trit_pool_size(const trit_pool *p) {
    return p ? p->n : 1;
}

/* Atomic because a spinning worker reads it; a worker that read the old value only falls back
 * to sleeping sooner or later. */
void trit_pool_set_spin_us(trit_pool *p, int us) {
    if (p) p->spin_ns = (uint64_t)TRIT_MAX(us, 0) * 1000u;
}

void trit_pool_run(trit_pool *p, trit_pool_fn fn, void *arg) {
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_mutex_lock(&p->mu); /* wakes workers that stopped spinning */
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    uint64_t t0 = 0;
    for (unsigned i = 1; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if ((i & 63) == 0) {
            uint64_t now = trit_now_ns();
            if (!t0)
                t0 = now;
            else if (now - t0 > p->spin_ns) {
                pthread_mutex_lock(&p->mu);
                while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->cv_done, &p->mu);
                pthread_mutex_unlock(&p->mu);
                break;
            }
        }
    }
}

void trit_pool_free(trit_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    free(p->threads);
    free(p);
}

/* ---- sha256 (FIPS 180-4) ---- */
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(trit_sha256 *s, const uint8_t *b) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
               (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], bb = s->h[1], c = s->h[2], d = s->h[3];
    uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + K256[i] + w[i];
        uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
        uint32_t mj = (a & bb) ^ (a & c) ^ (bb & c);
        uint32_t t2 = S0 + mj;
        h = g, g = f, f = e, e = d + t1, d = c, c = bb, bb = a, a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += bb, s->h[2] += c, s->h[3] += d;
    s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

void trit_sha256_init(trit_sha256 *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->nbuf = 0;
}

void trit_sha256_update(trit_sha256 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->len += n;
    if (s->nbuf) {
        size_t k = TRIT_MIN(n, 64 - s->nbuf);
        memcpy(s->buf + s->nbuf, p, k);
        s->nbuf += k, p += k, n -= k;
        if (s->nbuf == 64) sha256_block(s, s->buf), s->nbuf = 0;
    }
    while (n >= 64) sha256_block(s, p), p += 64, n -= 64;
    if (n) memcpy(s->buf, p, n), s->nbuf = n;
}

void trit_sha256_final(trit_sha256 *s, uint8_t out[32]) {
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80;
    trit_sha256_update(s, &pad, 1);
    uint8_t zero = 0;
    while (s->nbuf != 56) trit_sha256_update(s, &zero, 1);
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    trit_sha256_update(s, lenb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24), out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8), out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

static void hex32(const uint8_t d[32], char out[65]) {
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) out[2 * i] = hx[d[i] >> 4], out[2 * i + 1] = hx[d[i] & 15];
    out[64] = 0;
}

void trit_sha256_hex(const void *data, size_t n, char out[65]) {
    trit_sha256 s;
    uint8_t d[32];
    trit_sha256_init(&s);
    trit_sha256_update(&s, data, n);
    trit_sha256_final(&s, d);
    hex32(d, out);
}

int trit_sha256_file(const char *path, char out[65], trit_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return trit_fail(err, TRIT_EIO, "cannot open %s: %s", path, strerror(errno));
    trit_sha256 s;
    trit_sha256_init(&s);
    static __thread uint8_t chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) trit_sha256_update(&s, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return trit_fail(err, TRIT_EIO, "read error on %s", path);
    uint8_t d[32];
    trit_sha256_final(&s, d);
    hex32(d, out);
    return 0;
}

uint64_t trit_hash64(const void *data, size_t n) {
    return XXH3_64bits(data, n);
}

/* ---- one row of logits ---- */
double trit_logsumexp(const float *logits, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    /* an empty row or one of -inf/NaN only: the maximum is the answer (no exp of inf - inf) */
    if (!isfinite(mx)) return mx;
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp((double)logits[i] - (double)mx);
    return (double)mx + log(s);
}

/* a ranks before b: higher logit, or equal logit and lower id (llama.cpp's greedy order) */
static inline bool ranks_before(float va, int32_t ia, float vb, int32_t ib) {
    return va > vb || (va == vb && ia < ib);
}

int trit_top_k(const float *logits, int n, int k, int32_t *ids) {
    if (k <= 0 || n <= 0) return 0;
    if (k > n) k = n;
    int m = 0; /* ids[0..m) sorted best first: one insertion pass, O(n k) */
    for (int i = 0; i < n; i++) {
        const float v = logits[i];
        /* full and not better than the last kept: skip */
        if (m == k && !ranks_before(v, i, logits[ids[m - 1]], ids[m - 1])) continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && ranks_before(v, i, logits[ids[j - 1]], ids[j - 1])) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
    return m;
}

/* ---- utf8 ---- */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    /* returns length of a valid sequence at s, 0 if invalid, (size_t)-1 if truncated */
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    unsigned cp = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if (i >= n) return (size_t)-1;
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

bool trit_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq_len(p + i, n - i);
        if (l == 0 || l == (size_t)-1) return false;
        i += l;
    }
    return true;
}

size_t trit_utf8_complete_prefix(const char *s, size_t n) {
    /* Scan back at most 3 bytes for a lead byte whose sequence runs past the end. */
    const unsigned char *p = (const unsigned char *)s;
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned c = p[n - back];
        if ((c & 0xc0) == 0x80) continue; /* continuation byte */
        size_t need = c < 0x80             ? 1
                      : (c & 0xe0) == 0xc0 ? 2
                      : (c & 0xf0) == 0xe0 ? 3
                      : (c & 0xf8) == 0xf0 ? 4
                                           : 1;
        return need > back ? n - back : n;
    }
    return n;
}

/* Bytes of the longest valid (possibly incomplete) sequence prefix at s[0..n), and whether it
 * is a complete character. Follows Unicode Table 3-7 (well-formed byte sequences). */
static size_t utf8_scan(const unsigned char *s, size_t n, bool *complete) {
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    *complete = false;
    if (c < 0x80) {
        *complete = true;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0; /* invalid lead byte */
    }
    size_t i = 1;
    for (; i < need && i < n; i++) {
        unsigned char b = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) return i;
    }
    *complete = i == need;
    return i;
}

void trit_utf8_repair(const char *s, size_t n, trit_buf *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    trit_buf_reserve(out, n);
    while (i < n) {
        bool complete;
        size_t k = utf8_scan(u + i, n - i, &complete);
        if (complete) {
            trit_buf_append(out, u + i, k);
            i += k;
        } else {
            trit_buf_append(out, "\xEF\xBF\xBD", 3);
            i += k ? k : 1;
        }
    }
    if (out->p)
        out->p[out->len] = 0;
    else
        trit_buf_puts(out, "");
}

/* ---- browser and DNS-rebinding policy ---- */

/* Is s[0..n) equal to one element of the comma-separated list (blanks around items ignored)? */
static bool in_list(const char *s, size_t n, const char *list) {
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p + strcspn(p, ",");
        const char *t = e;
        while (t > p && t[-1] == ' ') t--;
        if ((size_t)(t - p) == n && n && !strncasecmp(p, s, n)) return true;
        if (t - p == 1 && *p == '*') return true;
        p = e;
    }
    return false;
}

/* host[:port] where host is one of the loopback names; port digits only */
static bool loopback_authority(const char *a, size_t n) {
    static const char *names[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t k = 0; k < TRIT_ARRAY_LEN(names); k++) {
        size_t L = strlen(names[k]);
        if (n < L || strncasecmp(a, names[k], L) != 0) continue;
        if (n == L) return true;
        if (a[L] != ':' || n == L + 1) continue;
        bool digits = true;
        for (size_t i = L + 1; i < n; i++) digits &= a[i] >= '0' && a[i] <= '9';
        if (digits && n - L - 1 <= 5) return true;
    }
    return false;
}

bool trit_origin_allowed(const char *origin, const char *cors) {
    if (!origin) return true; /* not a browser request */
    size_t n = strlen(origin);
    if (cors && *cors) return in_list(origin, n, cors);
    /* default: pages served from this machine's loopback addresses over http */
    if (n < 7 || strncasecmp(origin, "http://", 7) != 0) return false;
    return loopback_authority(origin + 7, n - 7);
}

bool trit_host_allowed(const char *host, const char *bound, const char *allow) {
    if (!host) return true; /* HTTP/1.0 without Host: no name to rebind */
    size_t n = strlen(host);
    if (loopback_authority(host, n)) return true;
    /* the bound address itself, with an optional port */
    size_t name_len = n;
    const char *colon = host[0] == '[' ? NULL : strrchr(host, ':');
    if (colon) name_len = (size_t)(colon - host);
    if (bound && strlen(bound) == name_len && !strncasecmp(host, bound, name_len)) return true;
    return allow && *allow && (in_list(host, n, allow) || in_list(host, name_len, allow));
}

int trit_parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* The commit is a compile-time string; one accessor so every caller reports the same. */
const char *trit_build_commit(void) {
    return TRIT_COMMIT[0] ? TRIT_COMMIT : "unknown";
}

/* Semantic-version build metadata: one token without blanks. */
void trit_build_string(char *out, size_t n) {
    snprintf(out, n, "%s+%s", TRIT_VERSION, trit_build_commit());
}
