/* helpers.h — shared by the unit tests: a deterministic random stream (splitmix64) with
 * uniform [0, 1) and standard normal floats (each test file including it has its own state;
 * set rng_state to seed it), a GGUF string-value assertion, the symbol lookup in the
 * reference's libggml-base / libggml-cpu (dlopen'd once per test process), and a loaded
 * `tiny` mkmodel (test_tiny_model). */
#ifndef TRIT_TEST_HELPERS_H
#define TRIT_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "gguf/gguf.h"
#include "model/mkmodel.h"
#include "model/model.h"
#include "reference/reference.h"

#include <stdio.h>
#include <unistd.h>

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

/* A `tiny` mkmodel (the reference's llama-spm vocabulary) of arch, weight type and embedding
 * type (0: mkmodel's default), written into dir and loaded; skips the test when the
 * reference vocabulary is absent. Engines of the batch and prefix tests run on these. */
static inline trit_model *test_tiny_model(const char *dir, enum trit_arch arch, uint32_t type,
                                          uint32_t embd_type, uint64_t seed) {
    static char vocab[1024];
    snprintf(vocab, sizeof vocab, "%s/src/models/ggml-vocab-llama-spm.gguf", trit_ref_dir());
    if (access(vocab, R_OK)) cr_skip_test("reference vocab %s not present (scripts/setup)", vocab);
    char path[256];
    snprintf(path, sizeof path, "%s/m-%d-%u-%u.gguf", dir, (int)arch, type, embd_type);
    trit_mkmodel_params p = {.arch = arch,
                             .preset = "tiny",
                             .type = type,
                             .embd_type = embd_type,
                             .seed = seed,
                             .vocab_path = vocab,
                             .out_path = path};
    trit_err err = {0};
    cr_assert_eq(trit_mkmodel(&p, &err), 0, "mkmodel: %s", err.msg);
    trit_model *m = trit_model_load(path, &err);
    cr_assert_not_null(m, "load: %s", err.msg);
    return m;
}

#endif
