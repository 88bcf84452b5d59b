/* reference — where the reference llama.cpp (gen-1) build lives on this machine.
 *
 * Contract: paths only (no loading, no parsing). The directory is $TRIT_REF_DIR, else
 * $TRIT_CACHE/llama.cpp-<ver>, else ~/.cache/trit/llama.cpp-<ver>, with <ver> the
 * node-llama-cpp version scripts/reference builds (TRIT_NLC_VERSION). Layout: <dir>/src
 * (source, test vocabularies under src/models) and <dir>/build/bin, or <dir>/build-<set>/bin
 * with $TRIT_REF_SET (trit_ref_build) (llama-server,
 * libllama.so, ...). Used by the llama backend, the ppl reference run, `trit doctor`, the
 * synthetic-model vocabulary default and the tests; base/ knows nothing of it.
 * Depends on base. */
#ifndef TRIT_REFERENCE_H
#define TRIT_REFERENCE_H

#include "base/base.h"

/* The reference directory (computed once; the string lives for the process). */
const char *trit_ref_dir(void);
/* The build directory under trit_ref_dir(): "build" (scripts/reference's build for this CPU,
 * a symlink to build-<set>), or "build-<set>" when $TRIT_REF_SET names one (avx2, avx512vnni,
 * arm64, ...: the builds `TRIT_REF_SET=<set> scripts/reference` makes beside it). The llama
 * backend, the reference binaries and the tests' dlopen of ggml all come from it. */
const char *trit_ref_build(void);
/* Full path of a reference binary or library under <build>/bin, malloc'd (caller frees);
 * NULL if it does not exist. */
char *trit_ref_path(const char *name);

#endif
