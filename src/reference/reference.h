/* reference — where the reference llama.cpp (gen-1) build lives on this machine.
 *
 * Contract: paths only (no loading, no parsing). The directory is $TRIT_REF_DIR, else
 * $TRIT_CACHE/llama.cpp-<ver>, else ~/.cache/trit/llama.cpp-<ver>, with <ver> the
 * node-llama-cpp version scripts/reference builds (TRIT_NLC_VERSION). Layout: <dir>/src
 * (source, test vocabularies under src/models) and <dir>/build/bin (llama-server,
 * libllama.so, ...). Used by the llama backend, the ppl reference run, `trit doctor`, the
 * synthetic-model vocabulary default and the tests; base/ knows nothing of it.
 * Depends on base. */
#ifndef TRIT_REFERENCE_H
#define TRIT_REFERENCE_H

#include "base/base.h"

/* The reference directory (computed once; the string lives for the process). */
const char *trit_ref_dir(void);
/* Full path of a reference binary or library under build/bin, malloc'd (caller frees);
 * NULL if it does not exist. */
char *trit_ref_path(const char *name);

#endif
