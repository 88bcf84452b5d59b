/* helpers.h — shared by the unit tests: a deterministic random stream (splitmix64) with
 * uniform [0, 1) and standard normal floats (each test file including it has its own state;
 * set rng_state to seed it), a GGUF string-value assertion, and the symbol lookup in the
 * reference's libggml-base / libggml-cpu (dlopen'd once per test process). */
#ifndef TRIT_TEST_HELPERS_H
#define TRIT_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "gguf/gguf.h"
#include "reference/reference.h"

static uint64_t rng_state;
static inline uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline float rng_uniform(void) {
    return (float)((rng_next() >> 40) * (1.0 / 16777216.0));
}
static inline float rng_normal(void) {
    float u = rng_uniform() + 1e-7f, v = rng_uniform();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

/* The string value of key is want (a missing or non-string key fails, naming the key). */
static inline void check_kv_str(const gguf_file *f, const char *key, const char *want) {
    char *v = gguf_get_str(f, key);
    cr_assert_not_null(v, "key %s missing or not a string", key);
    cr_assert_str_eq(v, want, "%s = '%s', want '%s'", key, v, want);
    free(v);
}

/* A symbol from the reference's libggml-cpu (initialised with ggml_cpu_init, so its x86
 * kernels are the ones the reference runs) or else libggml-base; NULL when the reference
 * build is absent or lacks the symbol. The libraries are loaded on the first call only.
 * Callers that honour TRIT_TEST_NO_REF check it themselves. */
static inline void *ggml_ref_sym(const char *name) {
    static void *base, *cpu;
    static bool tried;
    if (!tried) { /* first call: load both libraries (cpu needs base's symbols) */
        tried = true;
        char *pb = trit_ref_path("libggml-base.so"), *pc = trit_ref_path("libggml-cpu.so");
        if (pb) base = dlopen(pb, RTLD_NOW | RTLD_GLOBAL);
        if (pc && base) cpu = dlopen(pc, RTLD_NOW | RTLD_GLOBAL);
        free(pb), free(pc);
        if (cpu) {
            void (*init)(void) = (void (*)(void))dlsym(cpu, "ggml_cpu_init");
            if (init) init();
        }
    }
    void *s = cpu ? dlsym(cpu, name) : NULL;
    if (!s && base) s = dlsym(base, name);
    return s;
}

#endif
