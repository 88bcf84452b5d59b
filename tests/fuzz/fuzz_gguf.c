/* fuzz_gguf.c — libFuzzer target for the GGUF reader: parse arbitrary bytes, then touch
 * everything a caller could (every KV through every getter and the formatter, every array
 * element, every tensor's first and last data byte) so ASan sees any out-of-bounds view. */
#include "gguf/gguf.h"

#include <stdlib.h>
#include <string.h>

static volatile uint8_t sink;

static void walk_kv(const gguf_file *f, const gguf_kv *kv) {
    char key[256];
    size_t n = kv->key.n < sizeof key - 1 ? (size_t)kv->key.n : sizeof key - 1;
    memcpy(key, kv->key.p, n);
    key[n] = 0;
    if (!memchr(kv->key.p, 0, (size_t)kv->key.n) && n == kv->key.n) {
        /* lookups by name must find this KV (keys are unique) */
        if (gguf_find(f, key) != kv) abort();
        uint32_t u32;
        int64_t i64;
        float f32;
        bool b;
        gguf_get_u32(f, key, &u32);
        gguf_get_i64(f, key, &i64);
        gguf_get_f32(f, key, &f32);
        gguf_get_bool(f, key, &b);
        free(gguf_get_str(f, key));
    }
    trit_buf out = {0};
    gguf_kv_format(kv, &out, 16);
    if (kv->type == GGUF_T_ARRAY) {
        uint64_t lim = kv->arr_n < 4096 ? kv->arr_n : 4096;
        for (uint64_t i = 0; i <= lim; i++) { /* one past the end must be refused */
            int64_t iv;
            double dv;
            int ri = gguf_arr_i64(kv, i, &iv);
            int rd = gguf_arr_f64(kv, i, &dv);
            if (i == kv->arr_n && (ri == 0 || rd == 0)) abort();
            trit_buf_clear(&out);
            gguf_arr_format_elem(kv, i, &out);
            if (kv->arr_type == GGUF_T_STRING && i < kv->arr_n && kv->arr_strs[i].n)
                sink ^= (uint8_t)kv->arr_strs[i].p[kv->arr_strs[i].n - 1];
        }
    } else if (kv->type == GGUF_T_STRING && kv->v.str.n) {
        sink ^= (uint8_t)kv->v.str.p[kv->v.str.n - 1];
    }
    trit_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    trit_err err = {0};
    gguf_file *f = gguf_open_mem(data, size, &err);
    if (!f) {
        if (!err.msg[0]) abort(); /* every failure must say why */
        return 0;
    }
    for (size_t i = 0; i < gguf_n_kv(f); i++) walk_kv(f, gguf_kv_at(f, i));
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_find_tensor(f, t->cname) != t && strlen(t->cname) == t->name.n) abort();
        if (t->nbytes) {
            const uint8_t *p = t->data;
            sink ^= p[0];
            sink ^= p[t->nbytes - 1];
        }
    }
    gguf_close(f);
    return 0;
}
