/* gguf_write.c — GGUF v3 writer: KVs (any type), tensor infos, aligned data from buffers or
 * a fill callback, written to a temporary file in the target's directory and renamed. */
#include "gguf/gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct wkv {
    char *key;
    uint32_t type;
    trit_buf val; /* serialized value (after the type field), little-endian */
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
    uint64_t offset;
} wtensor;

struct gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *ts;
    size_t n_t, cap_t;
};

gguf_writer *gguf_writer_new(void) {
    return xcalloc(1, sizeof(gguf_writer));
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        trit_buf_free(&w->kvs[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->ts[i].name);
    free(w->kvs);
    free(w->ts);
    free(w);
}

/* Returns the KV slot for key (existing one cleared, or a new one), value buffer empty. */
static wkv *slot(gguf_writer *w, const char *key, uint32_t type) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kvs[i].key, key)) {
            trit_buf_clear(&w->kvs[i].val);
            w->kvs[i].type = type;
            return &w->kvs[i];
        }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? w->cap_kv * 2 : 32;
        w->kvs = xrealloc(w->kvs, w->cap_kv * sizeof *w->kvs);
    }
    wkv *kv = &w->kvs[w->n_kv++];
    memset(kv, 0, sizeof *kv);
    kv->key = xstrdup(key);
    kv->type = type;
    return kv;
}

static void put_le(trit_buf *b, uint64_t v, size_t n) {
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    trit_buf_append(b, tmp, n);
}
static void put_str(trit_buf *b, const char *p, uint64_t n) {
    put_le(b, n, 8);
    trit_buf_append(b, p, (size_t)n);
}
static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static uint64_t d2u(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

void gguf_w_u8(gguf_writer *w, const char *key, uint8_t v) {
    put_le(&slot(w, key, GGUF_T_U8)->val, v, 1);
}
void gguf_w_i8(gguf_writer *w, const char *key, int8_t v) {
    put_le(&slot(w, key, GGUF_T_I8)->val, (uint8_t)v, 1);
}
void gguf_w_u16(gguf_writer *w, const char *key, uint16_t v) {
    put_le(&slot(w, key, GGUF_T_U16)->val, v, 2);
}
void gguf_w_i16(gguf_writer *w, const char *key, int16_t v) {
    put_le(&slot(w, key, GGUF_T_I16)->val, (uint16_t)v, 2);
}
void gguf_w_u32(gguf_writer *w, const char *key, uint32_t v) {
    put_le(&slot(w, key, GGUF_T_U32)->val, v, 4);
}
void gguf_w_i32(gguf_writer *w, const char *key, int32_t v) {
    put_le(&slot(w, key, GGUF_T_I32)->val, (uint32_t)v, 4);
}
void gguf_w_u64(gguf_writer *w, const char *key, uint64_t v) {
    put_le(&slot(w, key, GGUF_T_U64)->val, v, 8);
}
void gguf_w_i64(gguf_writer *w, const char *key, int64_t v) {
    put_le(&slot(w, key, GGUF_T_I64)->val, (uint64_t)v, 8);
}
void gguf_w_f32(gguf_writer *w, const char *key, float v) {
    put_le(&slot(w, key, GGUF_T_F32)->val, f2u(v), 4);
}
void gguf_w_f64(gguf_writer *w, const char *key, double v) {
    put_le(&slot(w, key, GGUF_T_F64)->val, d2u(v), 8);
}
void gguf_w_bool(gguf_writer *w, const char *key, bool v) {
    put_le(&slot(w, key, GGUF_T_BOOL)->val, v ? 1 : 0, 1);
}
void gguf_w_str(gguf_writer *w, const char *key, const char *v) {
    put_str(&slot(w, key, GGUF_T_STRING)->val, v, strlen(v));
}

void gguf_w_arr_raw(gguf_writer *w, const char *key, uint32_t elem_type, const void *data,
                    size_t n) {
    size_t esz = gguf_vtype_size(elem_type);
    if (!esz) {
        trit_log(TRIT_LOG_ERROR, "gguf writer: gguf_w_arr_raw('%s') with element type %s", key,
                 gguf_vtype_name(elem_type));
        abort(); /* programming error */
    }
    trit_buf *b = &slot(w, key, GGUF_T_ARRAY)->val;
    put_le(b, elem_type, 4);
    put_le(b, n, 8);
    /* elements are stored little-endian; x86/ARM hosts are little-endian already */
    if (n) trit_buf_append(b, data, n * esz);
}
void gguf_w_arr_str(gguf_writer *w, const char *key, const char *const *v, size_t n) {
    trit_buf *b = &slot(w, key, GGUF_T_ARRAY)->val;
    put_le(b, GGUF_T_STRING, 4);
    put_le(b, n, 8);
    for (size_t i = 0; i < n; i++) put_str(b, v[i], strlen(v[i]));
}
void gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, size_t n) {
    gguf_w_arr_raw(w, key, GGUF_T_I32, v, n);
}
void gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, size_t n) {
    gguf_w_arr_raw(w, key, GGUF_T_F32, v, n);
}

void gguf_w_copy_kv(gguf_writer *w, const gguf_kv *kv) {
    char *key = xstrndup(kv->key.p, (size_t)kv->key.n);
    wkv *s = slot(w, key, kv->type);
    free(key);
    trit_buf *b = &s->val;
    switch (kv->type) {
    case GGUF_T_U8:
    case GGUF_T_I8:
    case GGUF_T_BOOL:
        put_le(b, kv->v.u64, 1);
        break;
    case GGUF_T_U16:
    case GGUF_T_I16:
        put_le(b, kv->v.u64, 2);
        break;
    case GGUF_T_U32:
    case GGUF_T_I32:
        put_le(b, kv->v.u64, 4);
        break;
    case GGUF_T_U64:
    case GGUF_T_I64:
        put_le(b, kv->v.u64, 8);
        break;
    case GGUF_T_F32:
        put_le(b, f2u((float)kv->v.f64), 4);
        break;
    case GGUF_T_F64:
        put_le(b, d2u(kv->v.f64), 8);
        break;
    case GGUF_T_STRING:
        put_str(b, kv->v.str.p, kv->v.str.n);
        break;
    case GGUF_T_ARRAY:
        put_le(b, kv->arr_type, 4);
        put_le(b, kv->arr_n, 8);
        if (kv->arr_type == GGUF_T_STRING)
            for (uint64_t i = 0; i < kv->arr_n; i++)
                put_str(b, kv->arr_strs[i].p, kv->arr_strs[i].n);
        else if (kv->arr_n)
            trit_buf_append(b, kv->arr_data, (size_t)kv->arr_n * gguf_vtype_size(kv->arr_type));
        break;
    default:
        break;
    }
}

size_t gguf_w_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                     const int64_t *ne, const void *data, size_t nbytes) {
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? w->cap_t * 2 : 64;
        w->ts = xrealloc(w->ts, w->cap_t * sizeof *w->ts);
    }
    wtensor *t = &w->ts[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = (uint32_t)d < n_dims && n_dims <= 4 ? ne[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    return w->n_t++;
}

/* ---- output ---- */
typedef struct out {
    FILE *fp;
    const char *path;
    uint64_t pos;
    trit_err *err;
    int failed;
} out;

static void emit(out *o, const void *p, size_t n) {
    if (o->failed || !n) return;
    if (fwrite(p, 1, n, o->fp) != n) {
        trit_fail(o->err, TRIT_EIO, "write %s: %s", o->path, strerror(errno));
        o->failed = 1;
    }
    o->pos += n;
}
static void emit_le(out *o, uint64_t v, size_t n) {
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    emit(o, tmp, n);
}
static void emit_pad(out *o, size_t align) {
    static const uint8_t zeros[64];
    size_t pad = (size_t)((align - o->pos % align) % align);
    while (pad && !o->failed) {
        size_t k = TRIT_MIN(pad, sizeof zeros);
        emit(o, zeros, k);
        pad -= k;
    }
}

static int writer_alignment(const gguf_writer *w, size_t *align, trit_err *err) {
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment")) continue;
        const wkv *kv = &w->kvs[i];
        size_t sz = gguf_vtype_size(kv->type);
        bool uns = kv->type == GGUF_T_U8 || kv->type == GGUF_T_U16 || kv->type == GGUF_T_U32 ||
                   kv->type == GGUF_T_U64;
        if (!uns)
            return trit_fail(err, TRIT_EINVAL, "general.alignment must be an unsigned integer");
        uint64_t a = 0;
        for (size_t k = sz; k-- > 0;) a = a << 8 | (uint8_t)kv->val.p[k];
        if (a == 0 || (a & (a - 1)) || a > (1u << 30))
            return trit_fail(err, TRIT_EINVAL,
                             "general.alignment %" PRIu64 " is not a power of two", a);
        *align = (size_t)a;
    }
    return 0;
}

static int validate_tensors(gguf_writer *w, size_t align, trit_err *err) {
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->ts[i];
        for (size_t j = 0; j < i; j++)
            if (!strcmp(w->ts[j].name, t->name))
                return trit_fail(err, TRIT_EINVAL, "duplicate tensor name '%s'", t->name);
        if (t->n_dims < 1 || t->n_dims > 4)
            return trit_fail(err, TRIT_EINVAL, "tensor '%s': n_dims %u (must be 1..4)", t->name,
                             t->n_dims);
        int64_t rows = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (t->ne[d] < 1)
                return trit_fail(err, TRIT_EINVAL, "tensor '%s': ne[%u] = %" PRId64, t->name, d,
                                 t->ne[d]);
            if (d) rows *= t->ne[d];
        }
        const trit_type_info *ti = trit_type_get(t->type);
        if (!ti)
            return trit_fail(err, TRIT_EINVAL, "tensor '%s': unknown type %u", t->name, t->type);
        size_t want = trit_tensor_nbytes(t->type, t->ne[0], rows);
        if (want == 0 || want != t->nbytes)
            return trit_fail(err, TRIT_EINVAL,
                             "tensor '%s' (%s, %" PRId64 " x %" PRId64
                             "): nbytes %zu, expected %zu",
                             t->name, ti->name, t->ne[0], rows, t->nbytes, want);
        t->offset = off;
        off += t->nbytes;
        off += (align - off % align) % align;
    }
    return 0;
}

/* Opens a fresh temporary file next to path (PATH.tmp.XXXXXX, mode 0644, 1 MiB buffer),
 * so that a failed write never leaves a half-written file under the real name. On success
 * *tmp is the malloc'd temporary name and o is ready to emit into. */
static int open_temp(const char *path, char **tmp_out, out *o, trit_err *err) {
    size_t plen = strlen(path);
    char *tmp = xmalloc(plen + 16);
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        trit_fail(err, TRIT_EIO, "cannot create a temporary file next to %s: %s", path,
                  strerror(errno));
        free(tmp);
        return -1;
    }
    fchmod(fd, 0644);
    *o = (out){.fp = fdopen(fd, "wb"), .path = tmp, .err = err};
    if (!o->fp) {
        trit_fail(err, TRIT_EIO, "fdopen %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    setvbuf(o->fp, NULL, _IOFBF, 1 << 20);
    *tmp_out = tmp;
    return 0;
}

/* Everything before the data section, in GGUF v3 order: magic, version, the two counts,
 * the KVs, the tensor infos, then padding to the alignment. */
static void emit_header(out *o, const gguf_writer *w, size_t align) {
    emit(o, GGUF_MAGIC, 4);
    emit_le(o, 3, 4);
    emit_le(o, w->n_t, 8);
    emit_le(o, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kvs[i];
        emit_le(o, strlen(kv->key), 8);
        emit(o, kv->key, strlen(kv->key));
        emit_le(o, kv->type, 4);
        emit(o, kv->val.p, kv->val.len);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->ts[i];
        emit_le(o, strlen(t->name), 8);
        emit(o, t->name, strlen(t->name));
        emit_le(o, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) emit_le(o, (uint64_t)t->ne[d], 8);
        emit_le(o, t->type, 4);
        emit_le(o, t->offset, 8);
    }
    emit_pad(o, align);
}

/* The data section: each tensor's bytes (its own, or filled into one zeroed scratch
 * buffer reused across tensors) followed by padding. A fill failure sets o->failed. */
static void emit_data(out *o, const gguf_writer *w, size_t align, gguf_fill_fn fill, void *ctx,
                      trit_err *err) {
    void *scratch = NULL;
    size_t scratch_n = 0;
    for (size_t i = 0; i < w->n_t && !o->failed; i++) {
        const wtensor *t = &w->ts[i];
        const void *src = t->data;
        if (!src) {
            if (t->nbytes > scratch_n) {
                free(scratch);
                scratch = xmalloc(t->nbytes);
                scratch_n = t->nbytes;
            }
            memset(scratch, 0, t->nbytes);
            if (fill(ctx, i, scratch, t->nbytes, err) != 0) {
                trit_err_prefix(err, "tensor '%s'", t->name);
                o->failed = 1;
                break;
            }
            src = scratch;
        }
        emit(o, src, t->nbytes);
        emit_pad(o, align);
    }
    free(scratch);
}

/* Flushes, syncs and closes the temporary file, then renames it to path; on any failure
 * the temporary file is removed and path is left as it was. */
static int commit_temp(out *o, char *tmp, const char *path, trit_err *err) {
    if (!o->failed && (fflush(o->fp) != 0 || fsync(fileno(o->fp)) != 0)) {
        trit_fail(err, TRIT_EIO, "write %s: %s", tmp, strerror(errno));
        o->failed = 1;
    }
    if (fclose(o->fp) != 0 && !o->failed) {
        trit_fail(err, TRIT_EIO, "close %s: %s", tmp, strerror(errno));
        o->failed = 1;
    }
    if (!o->failed && rename(tmp, path) != 0) {
        trit_fail(err, TRIT_EIO, "rename %s -> %s: %s", tmp, path, strerror(errno));
        o->failed = 1;
    }
    if (o->failed) unlink(tmp);
    free(tmp);
    return o->failed ? -1 : 0;
}

/* Validates the writer, then writes it to a temporary file and renames that to path:
 * header, data, commit. */
int gguf_writer_write(gguf_writer *w, const char *path, gguf_fill_fn fill, void *ctx,
                      trit_err *err) {
    size_t align;
    if (writer_alignment(w, &align, err) || validate_tensors(w, align, err)) {
        trit_err_prefix(err, "cannot write %s", path);
        return -1;
    }
    for (size_t i = 0; i < w->n_t; i++)
        if (!w->ts[i].data && !fill)
            return trit_fail(err, TRIT_EINVAL,
                             "cannot write %s: tensor '%s' has no data and no fill callback", path,
                             w->ts[i].name);
    char *tmp;
    out o;
    if (open_temp(path, &tmp, &o, err)) return -1;
    emit_header(&o, w, align);
    emit_data(&o, w, align, fill, ctx, err);
    return commit_temp(&o, tmp, path, err);
}
