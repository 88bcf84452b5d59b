/* parity/prompts.h — the burn-in prompt corpus.
 *
 * Contract: JSONL, one {"id","category","prompt"} per line, blank lines ignored; a bad line
 * is an error naming file:line (prompts.c). Depends on base, jansson. */
#ifndef TRIT_PARITY_PROMPTS_H
#define TRIT_PARITY_PROMPTS_H

#include "base/base.h"

typedef struct trit_prompt {
    char *id, *category, *prompt;
} trit_prompt;
/* Read a JSONL prompt corpus ({"id","category","prompt"} per line; blank lines ignored). */
int trit_prompts_load(const char *path, trit_prompt **out, int *n, trit_err *err);
void trit_prompts_free(trit_prompt *p, int n);

#endif
