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

char *trit_ref_path(const char *name) {
    const char *d = trit_ref_dir();
    size_t n = strlen(d) + strlen(name) + 16;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/build/bin/%s", d, name);
    /* absent (reference not built yet): NULL, so callers can say what to run */
    if (access(p, F_OK) != 0) {
        free(p);
        return NULL;
    }
    return p;
}
