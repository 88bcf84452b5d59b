/* fuzz_tokenizer.c — libFuzzer target: encode arbitrary bytes with the llama-bpe vocabulary
 * (loaded once from the reference's models/ggml-vocab-llama-bpe.gguf) with every combination
 * of add_special/parse_special, then decode and stream-decode the ids. Valid UTF-8 must
 * encode and byte-level-decode back to the input; invalid UTF-8 must give TRIT_EFORMAT. */
#include "tokenizer/tokenizer.h"
#include "reference/reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static trit_tokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char path[1024];
    snprintf(path, sizeof path, "%s/src/models/ggml-vocab-llama-bpe.gguf", trit_ref_dir());
    trit_err err = {0};
    g_tok = trit_tok_load_file(path, &err);
    if (!g_tok) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    bool valid = trit_utf8_valid(s, size);
    for (int mode = 0; mode < 4; mode++) {
        bool add = mode & 1, parse = mode & 2;
        trit_err err = {0};
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = trit_tok_encode(g_tok, s, size, add, parse, &ids, &n, &err);
        if (rc != 0) {
            if (valid || err.code != TRIT_EFORMAT || !strstr(err.msg, "byte offset")) abort();
            continue;
        }
        if (!valid) abort();
        trit_buf out = {0}, stream = {0};
        trit_tok_decode(g_tok, ids, n, parse, &out);
        if (!parse && !add && (out.len != size || memcmp(out.p ? out.p : "", s, size))) abort();
        trit_detok d = {0};
        for (size_t i = 0; i < n; i++) trit_detok_push(g_tok, &d, ids[i], &stream);
        trit_detok_flush(&d, &stream);
        trit_detok_free(&d);
        trit_buf_free(&out);
        trit_buf_free(&stream);
        free(ids);
    }
    return 0;
}
