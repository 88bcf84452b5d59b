/* server/ident.c — what `trit serve` says it is (GET /props, /v1/models' meta and every
 * reply's system_fingerprint): build string, fingerprint, the per-process instance id, and
 * the model file's sha256 computed on a background thread. Pure of the model and the
 * network, so unit tests call it directly. */
#include "server/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Short and stable for one build and configuration (the same after a restart), different
 * when the build, the kernel set or the numerics mode differ — what OpenAI's
 * system_fingerprint promises a client. */
void srv_fingerprint(char *out, size_t n, const char *kernels, const char *numerics) {
    char build[96];
    trit_build_string(build, sizeof build);
    snprintf(out, n, "trit-%s-%s-%s", build, kernels && *kernels ? kernels : "unknown",
             numerics && *numerics ? numerics : "unknown");
}

/* 128 random bits as 32 lowercase hex: two processes (even on one port, one after the
 * other) never share it, so a client can tell "the same running server" from "a server
 * started the same way". getrandom() first; the clock, pid and address as a fallback. */
void srv_instance_id(char out[33]) {
    uint8_t b[16];
    ssize_t got = getrandom(b, sizeof b, GRND_NONBLOCK);
    if (got != (ssize_t)sizeof b) {
        uint64_t seed[3] = {trit_now_ns(), (uint64_t)getpid(), (uint64_t)(uintptr_t)out};
        uint64_t h1 = trit_hash64(seed, sizeof seed);
        seed[0] ^= h1;
        uint64_t h2 = trit_hash64(seed, sizeof seed);
        memcpy(b, &h1, 8);
        memcpy(b + 8, &h2, 8);
    }
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[32] = 0;
}

/* The hashing thread: reads the file once in 1 MiB chunks, checking the stop flag between
 * chunks so a shutdown never waits for a large file. */
static void *hash_main(void *arg) {
    srv_file_hash *h = arg;
    double t0 = trit_now_s();
    FILE *f = fopen(h->path, "rb");
    if (!f) {
        snprintf(h->error, sizeof h->error, "cannot open %s: %s", h->path, strerror(errno));
        atomic_store(&h->state, SRV_HASH_FAILED);
        return NULL;
    }
    trit_sha256 s;
    trit_sha256_init(&s);
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = xmalloc(CHUNK);
    size_t n;
    while (!atomic_load(&h->stop) && (n = fread(buf, 1, CHUNK, f)) > 0)
        trit_sha256_update(&s, buf, n);
    bool bad = ferror(f), stopped = atomic_load(&h->stop);
    fclose(f);
    free(buf);
    if (stopped) {
        snprintf(h->error, sizeof h->error, "stopped");
        atomic_store(&h->state, SRV_HASH_FAILED);
        return NULL;
    }
    if (bad) {
        snprintf(h->error, sizeof h->error, "read error on %s", h->path);
        atomic_store(&h->state, SRV_HASH_FAILED);
        return NULL;
    }
    uint8_t d[32];
    trit_sha256_final(&s, d);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        h->hex[2 * i] = hex[d[i] >> 4];
        h->hex[2 * i + 1] = hex[d[i] & 15];
    }
    h->hex[64] = 0;
    h->seconds = trit_now_s() - t0;
    atomic_store(&h->state, SRV_HASH_DONE); /* publishes hex and seconds */
    return NULL;
}

/* Start the hash without blocking startup; a thread that cannot start leaves the state
 * FAILED, so /props says so instead of "pending" forever. */
int srv_file_hash_start(srv_file_hash *h, const char *path) {
    memset(h, 0, sizeof *h);
    h->path = xstrdup(path);
    atomic_store(&h->state, SRV_HASH_PENDING);
    if (pthread_create(&h->thread, NULL, hash_main, h) != 0) {
        snprintf(h->error, sizeof h->error, "cannot start the hashing thread");
        atomic_store(&h->state, SRV_HASH_FAILED);
        return -1;
    }
    h->started = true;
    return 0;
}

/* For callers (tests, tools) that need the result before going on; the server never waits. */
int srv_file_hash_wait(srv_file_hash *h, double timeout_s) {
    double deadline = trit_now_s() + timeout_s;
    while (atomic_load(&h->state) == SRV_HASH_PENDING && trit_now_s() < deadline) usleep(2000);
    return atomic_load(&h->state);
}

/* Shutdown must not wait for a multi-GB read: the thread checks the flag between chunks. */
void srv_file_hash_stop(srv_file_hash *h) {
    atomic_store(&h->stop, true);
    if (h->started) pthread_join(h->thread, NULL);
    h->started = false;
    free(h->path);
    h->path = NULL;
}

/* The words /props uses for the hash's state (a client waits while it says "pending"). */
const char *srv_hash_state_name(int state) {
    switch (state) {
    case SRV_HASH_DONE:
        return "done";
    case SRV_HASH_FAILED:
        return "failed";
    default:
        return "pending";
    }
}

/* The template /props reports when the model has none and trit renders ChatML
 * (render_chatml in server.c): the same rendering written as a Jinja template, so a client
 * reading /props' "chat_template" sees what is used, as llama-server shows its default. */
const char *srv_chatml_jinja(void) {
    return "{%- for m in messages -%}"
           "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' -}}"
           "{%- endfor -%}"
           "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";
}
