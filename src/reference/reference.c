/* reference — implementation of reference.h (see the contract there). */
#include "reference/reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *trit_ref_dir(void) {
    static char dir[4096];
    /* computed once: the environment does not change under a running command */
    if (dir[0]) return dir;
    const char *e = getenv("TRIT_REF_DIR");
    if (e && *e) {
        snprintf(dir, sizeof dir, "%s", e);
        return dir;
    }
    /* the cache scripts/reference fills: $TRIT_CACHE, else ~/.cache/trit */
    const char *cache = getenv("TRIT_CACHE");
    const char *home = getenv("HOME");
    if (cache && *cache)
        snprintf(dir, sizeof dir, "%s/llama.cpp-%s", cache, TRIT_NLC_VERSION);
    else
        snprintf(dir, sizeof dir, "%s/.cache/trit/llama.cpp-%s", home ? home : "/root",
                 TRIT_NLC_VERSION);
    return dir;
}

const char *trit_ref_build(void) {
    static char build[64];
    /* computed once, as trit_ref_dir; a set name is letters and digits only */
    if (build[0]) return build;
    const char *e = getenv("TRIT_REF_SET");
    bool ok = e && *e && strlen(e) < sizeof build - 8;
    for (const char *c = e; ok && *c; c++)
        ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9');
    if (e && *e && !ok)
        trit_log(TRIT_LOG_WARN,
                 "TRIT_REF_SET=%s is not a set name (avx2, arm64, ...); using build/", e);
    snprintf(build, sizeof build, ok ? "build-%s" : "build", e);
    return build;
}

char *trit_ref_path(const char *name) {
    const char *d = trit_ref_dir();
    const char *b = trit_ref_build();
    size_t n = strlen(d) + strlen(b) + strlen(name) + 16;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s/bin/%s", d, b, name);
    /* absent (reference not built yet): NULL, so callers can say what to run */
    if (access(p, F_OK) != 0) {
        free(p);
        return NULL;
    }
    return p;
}
