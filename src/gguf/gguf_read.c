/* gguf_read.c — GGUF v2/v3 reader: mmap (or a caller's buffer), validate everything, expose
 * zero-copy views. Every failure names the problem and the byte offset where it was found. */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAX_DIMS 4

struct gguf_file {
    const uint8_t *data;
    size_t size;
    bool mapped;
    char *path;
    uint32_t version;
    size_t alignment;
    size_t data_off;
    size_t n_kv;
    gguf_kv *kvs;
    size_t n_tensors;
    gguf_tensor *tensors;
    /* hash indexes (open addressing, power-of-two capacity; slot = index + 1, 0 = empty) */
    uint32_t *kv_idx, *t_idx;
    size_t kv_cap, t_cap;
};

static const char *const vtype_names[GGUF_T_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};
static const uint8_t vtype_sizes[GGUF_T_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_vtype_name(uint32_t t) {
    return t < GGUF_T_COUNT ? vtype_names[t] : "?";
}
size_t gguf_vtype_size(uint32_t t) {
    return t < GGUF_T_COUNT ? vtype_sizes[t] : 0;
}

/* ---- cursor ---- */
typedef struct cur {
    const uint8_t *p;
    size_t n, off;
    trit_err *err;
} cur;

static int need(cur *c, size_t k, const char *field) {
    if (k > c->n - c->off)
        return trit_fail(c->err, TRIT_EFORMAT,
                         "truncated: %s needs %zu bytes at offset %zu but the file is %zu "
                         "bytes",
                         field, k, c->off, c->n);
    return 0;
}
static int rd_u32(cur *c, uint32_t *v, const char *field) {
    if (need(c, 4, field)) return -1;
    const uint8_t *b = c->p + c->off;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    c->off += 4;
    return 0;
}
static int rd_u64(cur *c, uint64_t *v, const char *field) {
    if (need(c, 8, field)) return -1;
    uint64_t r = 0;
    for (int i = 7; i >= 0; i--) r = r << 8 | c->p[c->off + (size_t)i];
    *v = r;
    c->off += 8;
    return 0;
}
static int rd_str(cur *c, gguf_str *s, const char *field) {
    size_t at = c->off;
    uint64_t len;
    if (rd_u64(c, &len, field)) return -1;
    if (len > c->n - c->off)
        return trit_fail(c->err, TRIT_EFORMAT,
                         "%s string length %" PRIu64
                         " at offset %zu runs past the end of the file (%zu bytes)",
                         field, len, at, c->n);
    s->p = (const char *)c->p + c->off;
    s->n = len;
    c->off += (size_t)len;
    return 0;
}

/* ---- string hash index ---- */
static uint64_t str_hash(const char *p, size_t n) {
    return trit_hash64(p, n);
}
static bool str_eq(gguf_str a, const char *p, size_t n) {
    return a.n == n && (n == 0 || memcmp(a.p, p, n) == 0);
}
static size_t idx_cap_for(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    return cap;
}
/* Insert entry i (name s); returns the existing index + 1 if the name is already present. */
static size_t idx_insert(uint32_t *tab, size_t cap, gguf_str s, size_t i,
                         const gguf_str *(*name_of)(const gguf_file *, size_t),
                         const gguf_file *f) {
    size_t h = (size_t)str_hash(s.p, (size_t)s.n) & (cap - 1);
    for (;; h = (h + 1) & (cap - 1)) {
        if (!tab[h]) {
            tab[h] = (uint32_t)(i + 1);
            return 0;
        }
        if (str_eq(*name_of(f, tab[h] - 1), s.p, (size_t)s.n)) return tab[h];
    }
}
static long idx_find(const uint32_t *tab, size_t cap, const char *p, size_t n,
                     const gguf_str *(*name_of)(const gguf_file *, size_t), const gguf_file *f) {
    if (!tab) return -1;
    size_t h = (size_t)str_hash(p, n) & (cap - 1);
    for (;; h = (h + 1) & (cap - 1)) {
        if (!tab[h]) return -1;
        if (str_eq(*name_of(f, tab[h] - 1), p, n)) return (long)tab[h] - 1;
    }
}
static const gguf_str *kv_name(const gguf_file *f, size_t i) {
    return &f->kvs[i].key;
}
static const gguf_str *t_name(const gguf_file *f, size_t i) {
    return &f->tensors[i].name;
}

/* Printable, bounded copy of a key or name for error messages. */
static void show(gguf_str s, char out[80]) {
    size_t n = 0;
    for (size_t i = 0; i < s.n && n < 72; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        out[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (s.n > 72) out[n++] = '.', out[n++] = '.', out[n++] = '.';
    out[n] = 0;
}

/* ---- KVs ---- */
static int read_scalar(cur *c, gguf_kv *kv, uint32_t t, const char *key) {
    size_t sz = vtype_sizes[t];
    if (t == GGUF_T_STRING) return rd_str(c, &kv->v.str, "value");
    if (need(c, sz, "value")) return -1;
    const uint8_t *b = c->p + c->off;
    uint64_t u = 0;
    for (size_t i = sz; i-- > 0;) u = u << 8 | b[i];
    switch (t) {
    case GGUF_T_U8:
    case GGUF_T_U16:
    case GGUF_T_U32:
    case GGUF_T_U64:
        kv->v.u64 = u;
        break;
    case GGUF_T_BOOL:
        if (u > 1)
            return trit_fail(c->err, TRIT_EFORMAT,
                             "bool value %u of key '%s' at offset %zu is not 0 or 1", (unsigned)u,
                             key, c->off);
        kv->v.u64 = u;
        break;
    case GGUF_T_I8:
        kv->v.i64 = (int8_t)u;
        break;
    case GGUF_T_I16:
        kv->v.i64 = (int16_t)u;
        break;
    case GGUF_T_I32:
        kv->v.i64 = (int32_t)u;
        break;
    case GGUF_T_I64:
        kv->v.i64 = (int64_t)u;
        break;
    case GGUF_T_F32: {
        uint32_t u32 = (uint32_t)u;
        float fl;
        memcpy(&fl, &u32, 4);
        kv->v.f64 = fl;
        break;
    }
    case GGUF_T_F64:
        memcpy(&kv->v.f64, &u, 8);
        break;
    default:
        break;
    }
    c->off += sz;
    return 0;
}

static int read_kv(cur *c, gguf_kv *kv, size_t i) {
    char key[80];
    if (rd_str(c, &kv->key, "key")) {
        trit_err_prefix(c->err, "KV %zu", i);
        return -1;
    }
    show(kv->key, key);
    size_t type_at = c->off;
    if (rd_u32(c, &kv->type, "value type")) return -1;
    if (kv->type >= GGUF_T_COUNT)
        return trit_fail(c->err, TRIT_EFORMAT, "bad value type %u for key '%s' at offset %zu",
                         kv->type, key, type_at);
    if (kv->type != GGUF_T_ARRAY) {
        if (read_scalar(c, kv, kv->type, key)) {
            trit_err_prefix(c->err, "key '%s'", key);
            return -1;
        }
        return 0;
    }
    size_t at = c->off;
    if (rd_u32(c, &kv->arr_type, "array element type")) return -1;
    if (kv->arr_type >= GGUF_T_COUNT)
        return trit_fail(c->err, TRIT_EFORMAT,
                         "bad array element type %u for key '%s' at offset %zu", kv->arr_type, key,
                         at);
    if (kv->arr_type == GGUF_T_ARRAY)
        return trit_fail(c->err, TRIT_EUNSUP,
                         "nested arrays are not supported (key '%s' at offset %zu)", key, at);
    at = c->off;
    if (rd_u64(c, &kv->arr_n, "array length")) return -1;
    size_t left = c->n - c->off;
    size_t esz = kv->arr_type == GGUF_T_STRING ? 8 : vtype_sizes[kv->arr_type];
    if (kv->arr_n > left / esz)
        return trit_fail(c->err, TRIT_EFORMAT,
                         "array length %" PRIu64
                         " of key '%s' at offset %zu is too large for the %zu bytes left",
                         kv->arr_n, key, at, left);
    kv->arr_data = c->p + c->off;
    if (kv->arr_type != GGUF_T_STRING) {
        if (kv->arr_type == GGUF_T_BOOL)
            for (uint64_t j = 0; j < kv->arr_n; j++)
                if (kv->arr_data[j] > 1)
                    return trit_fail(c->err, TRIT_EFORMAT,
                                     "bool element %" PRIu64
                                     " of key '%s' at offset %zu is not 0 or 1",
                                     j, key, c->off + (size_t)j);
        c->off += (size_t)kv->arr_n * esz;
        return 0;
    }
    gguf_str *strs = xmalloc((size_t)(kv->arr_n ? kv->arr_n : 1) * sizeof *strs);
    kv->arr_strs = strs;
    for (uint64_t j = 0; j < kv->arr_n; j++) {
        if (rd_str(c, &strs[j], "array element")) {
            trit_err_prefix(c->err, "key '%s' element %" PRIu64, key, j);
            return -1;
        }
    }
    return 0;
}

static int check_alignment(gguf_file *f, cur *c) {
    const gguf_kv *kv = gguf_find(f, "general.alignment");
    if (!kv) return 0;
    if (kv->type != GGUF_T_U32 && kv->type != GGUF_T_U64 && kv->type != GGUF_T_U16 &&
        kv->type != GGUF_T_U8)
        return trit_fail(c->err, TRIT_EFORMAT,
                         "general.alignment has type %s; it must be an unsigned integer",
                         gguf_vtype_name(kv->type));
    uint64_t a = kv->v.u64;
    if (a == 0 || (a & (a - 1)) || a > (1u << 30))
        return trit_fail(c->err, TRIT_EFORMAT,
                         "general.alignment %" PRIu64 " is not a power of two (1..2^30)", a);
    f->alignment = (size_t)a;
    return 0;
}

/* ---- tensor infos ---- */
static int read_tensor_info(cur *c, gguf_tensor *t, size_t i) {
    char name[80];
    size_t at = c->off;
    if (rd_str(c, &t->name, "tensor name")) {
        trit_err_prefix(c->err, "tensor %zu", i);
        return -1;
    }
    show(t->name, name);
    at = c->off;
    if (rd_u32(c, &t->n_dims, "tensor n_dims")) return -1;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return trit_fail(c->err, TRIT_EFORMAT,
                         "tensor '%s' has n_dims %u at offset %zu (must be 1..%d)", name, t->n_dims,
                         at, GGUF_MAX_DIMS);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    int64_t nelem = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        at = c->off;
        if (rd_u64(c, &ne, "tensor dimension")) return -1;
        if (ne == 0)
            return trit_fail(c->err, TRIT_EFORMAT,
                             "tensor '%s' has zero dimension ne[%u] at offset %zu", name, d, at);
        if (ne > (uint64_t)INT64_MAX || (int64_t)ne > INT64_MAX / nelem)
            return trit_fail(c->err, TRIT_ERANGE,
                             "tensor '%s' dims overflow: ne[%u] = %" PRIu64
                             " at offset %zu makes the element count exceed 2^63",
                             name, d, ne, at);
        t->ne[d] = (int64_t)ne;
        nelem *= (int64_t)ne;
    }
    at = c->off;
    if (rd_u32(c, &t->type, "tensor type")) return -1;
    const trit_type_info *ti = trit_type_get(t->type);
    if (!ti || ti->blck <= 0 || ti->size == 0)
        return trit_fail(c->err, TRIT_EUNSUP,
                         "tensor '%s' has unknown tensor type %u at offset %zu", name, t->type, at);
    if (t->ne[0] % ti->blck)
        return trit_fail(c->err, TRIT_EFORMAT,
                         "tensor '%s' of type %s has row length %" PRId64
                         ", not a multiple of the block size %" PRId64 " (offset %zu)",
                         name, ti->name, t->ne[0], ti->blck, at);
    uint64_t nblocks = (uint64_t)nelem / (uint64_t)ti->blck;
    if (nblocks > (SIZE_MAX - 64) / ti->size)
        return trit_fail(c->err, TRIT_ERANGE,
                         "tensor '%s' is too large (%" PRId64 " elements of type %s)", name, nelem,
                         ti->name);
    t->nbytes = trit_tensor_nbytes(t->type, t->ne[0], nelem / t->ne[0]);
    if (t->nbytes == 0)
        return trit_fail(c->err, TRIT_EUNSUP,
                         "tensor '%s': row length %" PRId64 " is not valid for type %s", name,
                         t->ne[0], ti->name);
    at = c->off;
    if (rd_u64(c, &t->offset, "tensor offset")) return -1;
    (void)at;
    return 0;
}

static void file_free(gguf_file *f) {
    if (!f) return;
    if (f->kvs)
        for (size_t i = 0; i < f->n_kv; i++) free((void *)f->kvs[i].arr_strs);
    if (f->tensors)
        for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].cname);
    free(f->kvs);
    free(f->tensors);
    free(f->kv_idx);
    free(f->t_idx);
    if (f->mapped && f->data) munmap((void *)f->data, f->size);
    free(f->path);
    free(f);
}

/* The fixed header: magic, version and the two counts, each count checked against the
 * bytes left so that a hostile count cannot make parse allocate more than the file could
 * describe. */
static int read_header(gguf_file *f, cur *c, uint64_t *n_tensors, uint64_t *n_kv) {
    trit_err *err = c->err;
    if (f->size < 4 || memcmp(f->data, GGUF_MAGIC, 4) != 0) {
        if (f->size < 4)
            trit_fail(err, TRIT_EFORMAT,
                      "truncated: %zu bytes is too short for the GGUF magic at offset 0", f->size);
        else
            trit_fail(err, TRIT_EFORMAT,
                      "bad magic at offset 0: expected \"GGUF\", found %02x %02x %02x %02x",
                      f->data[0], f->data[1], f->data[2], f->data[3]);
        return -1;
    }
    c->off = 4;
    if (rd_u32(c, &f->version, "version")) return -1;
    if (f->version != 2 && f->version != 3) {
        trit_fail(err, TRIT_EUNSUP, "unsupported GGUF version %u at offset 4 (need 2 or 3)",
                  f->version);
        return -1;
    }
    if (rd_u64(c, n_tensors, "tensor count") || rd_u64(c, n_kv, "KV count")) return -1;
    size_t left = f->size - c->off;
    /* smallest KV: key length (8) + type (4) + 1-byte value; smallest tensor info: name
     * length (8) + n_dims (4) + one dim (8) + type (4) + offset (8) */
    if (*n_kv > left / 13) {
        trit_fail(err, TRIT_ERANGE,
                  "KV count %" PRIu64 " at offset 16 is too large for the %zu bytes left", *n_kv,
                  left);
        return -1;
    }
    if (*n_tensors > left / 32 || *n_tensors + *n_kv > UINT32_MAX - 1) {
        trit_fail(err, TRIT_ERANGE,
                  "tensor count %" PRIu64 " at offset 8 is too large for the %zu bytes left",
                  *n_tensors, left);
        return -1;
    }
    return 0;
}

/* The KV section, indexed by key as it is read so that a duplicate key is an error at
 * its own offset; then the alignment it may set, which the tensor infos depend on. */
static int read_kvs(gguf_file *f, cur *c, uint64_t n_kv) {
    f->kvs = xcalloc((size_t)n_kv + 1, sizeof *f->kvs);
    f->kv_cap = idx_cap_for((size_t)n_kv);
    f->kv_idx = xcalloc(f->kv_cap, sizeof *f->kv_idx);
    for (size_t i = 0; i < (size_t)n_kv; i++) {
        size_t at = c->off;
        f->n_kv = i + 1; /* so file_free releases what this KV allocated */
        if (read_kv(c, &f->kvs[i], i)) return -1;
        if (idx_insert(f->kv_idx, f->kv_cap, f->kvs[i].key, i, kv_name, f)) {
            char key[80];
            show(f->kvs[i].key, key);
            trit_fail(c->err, TRIT_EFORMAT, "duplicate key '%s' at offset %zu", key, at);
            return -1;
        }
    }
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    return check_alignment(f, c);
}

/* The tensor-info section, indexed by name (a duplicate is an error), each data offset
 * checked against the alignment. */
static int read_tensor_infos(gguf_file *f, cur *c, uint64_t n_tensors) {
    trit_err *err = c->err;
    f->tensors = xcalloc((size_t)n_tensors + 1, sizeof *f->tensors);
    f->t_cap = idx_cap_for((size_t)n_tensors);
    f->t_idx = xcalloc(f->t_cap, sizeof *f->t_idx);
    for (size_t i = 0; i < (size_t)n_tensors; i++) {
        size_t at = c->off;
        f->n_tensors = i + 1;
        gguf_tensor *t = &f->tensors[i];
        if (read_tensor_info(c, t, i)) return -1;
        t->cname = xstrndup(t->name.p, (size_t)t->name.n);
        if (idx_insert(f->t_idx, f->t_cap, t->name, i, t_name, f)) {
            char name[80];
            show(t->name, name);
            trit_fail(err, TRIT_EFORMAT, "duplicate tensor name '%s' at offset %zu", name, at);
            return -1;
        }
        if (t->offset % f->alignment) {
            char name[80];
            show(t->name, name);
            trit_fail(err, TRIT_EFORMAT,
                      "tensor '%s' data offset %" PRIu64 " (info at offset %zu) is "
                      "misaligned: not a multiple of the alignment %zu",
                      name, t->offset, at, f->alignment);
            return -1;
        }
    }
    return 0;
}

/* The data section starts at the next aligned offset after the infos; every tensor's
 * bytes must lie inside the file before its data pointer is set. */
static int place_tensor_data(gguf_file *f, cur *c) {
    size_t pad = (f->alignment - c->off % f->alignment) % f->alignment;
    f->data_off = c->off + pad;
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (f->data_off > f->size || t->offset > f->size - f->data_off ||
            t->nbytes > f->size - f->data_off - (size_t)t->offset) {
            char name[80];
            show(t->name, name);
            trit_fail(c->err, TRIT_EFORMAT,
                      "tensor '%s' data past end of file: %zu bytes at offset %zu + %" PRIu64
                      " but the file is %zu bytes",
                      name, t->nbytes, f->data_off, t->offset, f->size);
            return -1;
        }
        t->data = f->data + f->data_off + t->offset;
    }
    return 0;
}

/* Parses f's bytes in file order (header, KVs, tensor infos, data section); on failure
 * the error is prefixed with the path and f is freed. */
static gguf_file *parse(gguf_file *f, trit_err *err) {
    const char *what = f->path && f->path[0] ? f->path : "gguf";
    cur c = {.p = f->data, .n = f->size, .off = 0, .err = err};
    uint64_t n_tensors, n_kv;
    if (read_header(f, &c, &n_tensors, &n_kv) || read_kvs(f, &c, n_kv) ||
        read_tensor_infos(f, &c, n_tensors) || place_tensor_data(f, &c)) {
        trit_err_prefix(err, "%s", what);
        file_free(f);
        return NULL;
    }
    return f;
}

gguf_file *gguf_open_mem(const void *data, size_t n, trit_err *err) {
    if (!data && n) {
        trit_fail(err, TRIT_EINVAL, "gguf_open_mem: NULL buffer");
        return NULL;
    }
    gguf_file *f = xcalloc(1, sizeof *f);
    f->data = data ? data : (const uint8_t *)"";
    f->size = n;
    f->path = xstrdup("");
    return parse(f, err);
}

gguf_file *gguf_open(const char *path, trit_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        trit_fail(err, errno == ENOENT ? TRIT_ENOTFOUND : TRIT_EIO, "cannot open %s: %s", path,
                  strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        trit_fail(err, TRIT_EIO, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    gguf_file *f = xcalloc(1, sizeof *f);
    f->path = xstrdup(path);
    f->size = (size_t)st.st_size;
    if (f->size == 0) {
        close(fd);
        trit_fail(err, TRIT_EFORMAT, "%s: empty file (0 bytes; a GGUF starts with \"GGUF\")", path);
        file_free(f);
        return NULL;
    }
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) {
        trit_fail(err, TRIT_EIO, "cannot mmap %s: %s", path, strerror(e));
        file_free(f);
        return NULL;
    }
    f->data = m;
    f->mapped = true;
    return parse(f, err);
}

void gguf_close(gguf_file *f) {
    file_free(f);
}

uint32_t gguf_version(const gguf_file *f) {
    return f->version;
}
size_t gguf_alignment(const gguf_file *f) {
    return f->alignment;
}
size_t gguf_file_size(const gguf_file *f) {
    return f->size;
}
const char *gguf_path(const gguf_file *f) {
    return f->path;
}
size_t gguf_n_kv(const gguf_file *f) {
    return f->n_kv;
}
const gguf_kv *gguf_kv_at(const gguf_file *f, size_t i) {
    return i < f->n_kv ? &f->kvs[i] : NULL;
}
const gguf_kv *gguf_find(const gguf_file *f, const char *key) {
    long i = idx_find(f->kv_idx, f->kv_cap, key, strlen(key), kv_name, f);
    return i < 0 || (size_t)i >= f->n_kv ? NULL : &f->kvs[i];
}
size_t gguf_n_tensors(const gguf_file *f) {
    return f->n_tensors;
}
const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    long i = idx_find(f->t_idx, f->t_cap, name, strlen(name), t_name, f);
    return i < 0 || (size_t)i >= f->n_tensors ? NULL : &f->tensors[i];
}

/* ---- typed getters ---- */
static bool is_uint(uint32_t t) {
    return t == GGUF_T_U8 || t == GGUF_T_U16 || t == GGUF_T_U32 || t == GGUF_T_U64;
}
static bool is_sint(uint32_t t) {
    return t == GGUF_T_I8 || t == GGUF_T_I16 || t == GGUF_T_I32 || t == GGUF_T_I64;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return -1;
    if (is_uint(kv->type) && kv->v.u64 <= UINT32_MAX)
        *out = (uint32_t)kv->v.u64;
    else if (is_sint(kv->type) && kv->v.i64 >= 0 && kv->v.i64 <= (int64_t)UINT32_MAX)
        *out = (uint32_t)kv->v.i64;
    else
        return -1;
    return 0;
}
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return -1;
    if (is_sint(kv->type))
        *out = kv->v.i64;
    else if (is_uint(kv->type) && kv->v.u64 <= (uint64_t)INT64_MAX)
        *out = (int64_t)kv->v.u64;
    else
        return -1;
    return 0;
}
int gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || (kv->type != GGUF_T_F32 && kv->type != GGUF_T_F64)) return -1;
    *out = (float)kv->v.f64;
    return 0;
}
int gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || kv->type != GGUF_T_BOOL) return -1;
    *out = kv->v.u64 != 0;
    return 0;
}
char *gguf_get_str(const gguf_file *f, const char *key) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || kv->type != GGUF_T_STRING) return NULL;
    return xstrndup(kv->v.str.p, (size_t)kv->v.str.n);
}

static uint64_t load_le(const uint8_t *b, size_t sz) {
    uint64_t u = 0;
    for (size_t i = sz; i-- > 0;) u = u << 8 | b[i];
    return u;
}

int gguf_arr_i64(const gguf_kv *kv, uint64_t i, int64_t *out) {
    if (!kv || kv->type != GGUF_T_ARRAY || i >= kv->arr_n) return -1;
    uint32_t t = kv->arr_type;
    if (!is_uint(t) && !is_sint(t) && t != GGUF_T_BOOL) return -1;
    size_t sz = vtype_sizes[t];
    uint64_t u = load_le(kv->arr_data + (size_t)i * sz, sz);
    switch (t) {
    case GGUF_T_I8:
        *out = (int8_t)u;
        break;
    case GGUF_T_I16:
        *out = (int16_t)u;
        break;
    case GGUF_T_I32:
        *out = (int32_t)u;
        break;
    case GGUF_T_I64:
        *out = (int64_t)u;
        break;
    case GGUF_T_U64:
        if (u > (uint64_t)INT64_MAX) return -1;
        *out = (int64_t)u;
        break;
    default:
        *out = (int64_t)u;
        break;
    }
    return 0;
}

int gguf_arr_f64(const gguf_kv *kv, uint64_t i, double *out) {
    if (!kv || kv->type != GGUF_T_ARRAY || i >= kv->arr_n) return -1;
    uint32_t t = kv->arr_type;
    if (t == GGUF_T_F32) {
        uint32_t u = (uint32_t)load_le(kv->arr_data + (size_t)i * 4, 4);
        float fl;
        memcpy(&fl, &u, 4);
        *out = fl;
        return 0;
    }
    if (t == GGUF_T_F64) {
        uint64_t u = load_le(kv->arr_data + (size_t)i * 8, 8);
        memcpy(out, &u, 8);
        return 0;
    }
    if (t == GGUF_T_U64) {
        *out = (double)load_le(kv->arr_data + (size_t)i * 8, 8);
        return 0;
    }
    int64_t v;
    if (gguf_arr_i64(kv, i, &v)) return -1;
    *out = (double)v;
    return 0;
}

/* ---- display ---- */
static void fmt_str(trit_buf *out, const char *p, uint64_t n) {
    trit_buf_puts(out, "\"");
    for (uint64_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        switch (ch) {
        case '"':
            trit_buf_puts(out, "\\\"");
            break;
        case '\\':
            trit_buf_puts(out, "\\\\");
            break;
        case '\n':
            trit_buf_puts(out, "\\n");
            break;
        case '\r':
            trit_buf_puts(out, "\\r");
            break;
        case '\t':
            trit_buf_puts(out, "\\t");
            break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                trit_buf_printf(out, "\\x%02x", ch);
            else
                trit_buf_append(out, &p[i], 1);
        }
    }
    trit_buf_puts(out, "\"");
}

static void fmt_elem(trit_buf *out, const gguf_kv *kv, uint64_t i) {
    uint32_t t = kv->arr_type;
    if (t == GGUF_T_STRING) {
        fmt_str(out, kv->arr_strs[i].p, kv->arr_strs[i].n);
    } else if (t == GGUF_T_F32 || t == GGUF_T_F64) {
        double d = 0;
        gguf_arr_f64(kv, i, &d);
        trit_buf_printf(out, "%.9g", d);
    } else if (t == GGUF_T_BOOL) {
        trit_buf_puts(out, kv->arr_data[i] ? "true" : "false");
    } else if (t == GGUF_T_U64) {
        trit_buf_printf(out, "%" PRIu64, load_le(kv->arr_data + (size_t)i * 8, 8));
    } else {
        int64_t v = 0;
        gguf_arr_i64(kv, i, &v);
        trit_buf_printf(out, "%" PRId64, v);
    }
}

void gguf_arr_format_elem(const gguf_kv *kv, uint64_t i, trit_buf *out) {
    if (kv && kv->type == GGUF_T_ARRAY && i < kv->arr_n) fmt_elem(out, kv, i);
}

void gguf_kv_format(const gguf_kv *kv, trit_buf *out, size_t max_array_items) {
    switch (kv->type) {
    case GGUF_T_U8:
    case GGUF_T_U16:
    case GGUF_T_U32:
    case GGUF_T_U64:
        trit_buf_printf(out, "%" PRIu64, kv->v.u64);
        break;
    case GGUF_T_I8:
    case GGUF_T_I16:
    case GGUF_T_I32:
    case GGUF_T_I64:
        trit_buf_printf(out, "%" PRId64, kv->v.i64);
        break;
    case GGUF_T_F32:
    case GGUF_T_F64:
        trit_buf_printf(out, "%.9g", kv->v.f64);
        break;
    case GGUF_T_BOOL:
        trit_buf_puts(out, kv->v.u64 ? "true" : "false");
        break;
    case GGUF_T_STRING:
        fmt_str(out, kv->v.str.p, kv->v.str.n);
        break;
    case GGUF_T_ARRAY: {
        trit_buf_printf(out, "[%s x %" PRIu64 "]", gguf_vtype_name(kv->arr_type), kv->arr_n);
        if (max_array_items == 0 || kv->arr_n == 0) break;
        trit_buf_puts(out, " [");
        uint64_t shown = TRIT_MIN(kv->arr_n, (uint64_t)max_array_items);
        for (uint64_t i = 0; i < shown; i++) {
            if (i) trit_buf_puts(out, ", ");
            fmt_elem(out, kv, i);
        }
        if (shown < kv->arr_n) trit_buf_puts(out, ", ...");
        trit_buf_puts(out, "]");
        break;
    }
    default:
        trit_buf_puts(out, "?");
        break;
    }
}
