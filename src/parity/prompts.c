/* parity/prompts.c — the burn-in prompt corpus (JSONL); the contract is prompts.h. */
#include "parity/prompts.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Each prompt owns its three strings; the array is one allocation. */
void trit_prompts_free(trit_prompt *p, int n) {
    for (int i = 0; i < n; i++) free(p[i].id), free(p[i].category), free(p[i].prompt);
    free(p);
}

/* The whole file is read at once (corpora are small), then split at newlines: a line that is
 * not a JSON object with a string "id" and "prompt" stops the load with file:line, so a
 * corpus is never half-used; blank lines (spaces, tabs, CR) are skipped. */
int trit_prompts_load(const char *path, trit_prompt **out, int *n, trit_err *err) {
    *out = NULL;
    *n = 0;
    trit_buf b = {0};
    if (trit_read_file(path, &b, err)) {
        trit_err_prefix(err, "prompts");
        return -1;
    }
    trit_prompt *v = NULL;
    int cnt = 0, lineno = 0;
    char *p = b.p, *e = b.p + b.len;
    while (p < e) {
        char *nl = memchr(p, '\n', (size_t)(e - p));
        char *le = nl ? nl : e;
        lineno++;
        size_t len = (size_t)(le - p);
        bool blank = true;
        for (size_t i = 0; i < len; i++)
            if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') blank = false;
        if (!blank) {
            json_error_t je;
            json_t *j = json_loadb(p, len, 0, &je);
            const char *id = json_string_value(json_object_get(j, "id"));
            const char *cat = json_string_value(json_object_get(j, "category"));
            const char *pr = json_string_value(json_object_get(j, "prompt"));
            if (!j || !id || !pr || !*id) {
                json_decref(j);
                trit_prompts_free(v, cnt);
                trit_buf_free(&b);
                return trit_fail(err, TRIT_EFORMAT,
                                 "%s:%d: expected {\"id\",\"category\",\"prompt\"}%s%s", path,
                                 lineno, j ? "" : ": ", j ? "" : je.text);
            }
            v = xrealloc(v, (size_t)(cnt + 1) * sizeof *v);
            v[cnt].id = xstrdup(id);
            v[cnt].category = xstrdup(cat ? cat : "");
            v[cnt].prompt = xstrdup(pr);
            cnt++;
            json_decref(j);
        }
        p = nl ? nl + 1 : e;
    }
    trit_buf_free(&b);
    if (cnt == 0) return trit_fail(err, TRIT_EFORMAT, "%s: no prompts", path);
    *out = v;
    *n = cnt;
    return 0;
}
