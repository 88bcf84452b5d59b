/* gguf — GGUF v2/v3 reader (mmap, zero-copy) and writer.
 *
 * Reader contract: gguf_open validates everything before returning: magic, version, counts,
 * string lengths (and that they fit the file), value and array types, array lengths, key
 * uniqueness, tensor name uniqueness, n_dims <= 4, dims >= 1 and products without overflow,
 * tensor type known (quant/), general.alignment a power of two, offsets aligned, and every
 * tensor's data inside the file. Any failure returns NULL with err naming the problem and
 * the byte offset. After a successful open no accessor can read out of bounds.
 * Strings in the file are not NUL-terminated: they are returned as (pointer, length).
 *
 * Writer contract: collects KVs and tensor infos, then writes header, KVs, tensor infos,
 * padding to the alignment, and tensor data (each tensor padded to the alignment), via a
 * temporary file renamed into place. Tensor data comes from a buffer or from a callback
 * that fills one tensor at a time (so huge models never need to be in memory at once). */
#ifndef TRIT_GGUF_H
#define TRIT_GGUF_H

#include "base/base.h"
#include "quant/quant.h"

#define GGUF_MAGIC             "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32

enum gguf_vtype {
    GGUF_T_U8 = 0,
    GGUF_T_I8 = 1,
    GGUF_T_U16 = 2,
    GGUF_T_I16 = 3,
    GGUF_T_U32 = 4,
    GGUF_T_I32 = 5,
    GGUF_T_F32 = 6,
    GGUF_T_BOOL = 7,
    GGUF_T_STRING = 8,
    GGUF_T_ARRAY = 9,
    GGUF_T_U64 = 10,
    GGUF_T_I64 = 11,
    GGUF_T_F64 = 12,
    GGUF_T_COUNT
};
const char *gguf_vtype_name(uint32_t t);

typedef struct gguf_str {
    const char *p; /* not NUL-terminated */
    uint64_t n;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type; /* enum gguf_vtype */
    union {
        uint64_t u64; /* all unsigned ints and bool, widened */
        int64_t i64;  /* all signed ints, widened */
        double f64;   /* f32 and f64, widened */
        gguf_str str;
    } v;
    /* arrays (type == GGUF_T_ARRAY) */
    uint32_t arr_type;
    uint64_t arr_n;
    const uint8_t *arr_data;  /* raw little-endian elements (not for string arrays) */
    const gguf_str *arr_strs; /* string arrays: arr_n entries (owned by the file) */
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    char *cname; /* NUL-terminated copy of name */
    uint32_t n_dims;
    int64_t ne[4];    /* ne[0] is the row length; unused dims are 1 */
    uint32_t type;    /* ggml type id */
    uint64_t offset;  /* relative to the data section */
    const void *data; /* points into the mapping */
    size_t nbytes;
} gguf_tensor;

typedef struct gguf_file gguf_file;

gguf_file *gguf_open(const char *path, trit_err *err);
/* Parse an in-memory image (not copied; must outlive the handle). Used by tests and fuzzing. */
gguf_file *gguf_open_mem(const void *data, size_t n, trit_err *err);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
size_t gguf_alignment(const gguf_file *f);
size_t gguf_file_size(const gguf_file *f);
const char *gguf_path(const gguf_file *f); /* "" for memory images */
size_t gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, size_t i);
const gguf_kv *gguf_find(const gguf_file *f, const char *key);
size_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters: return 0 and set *out, or -1 (missing key or incompatible type; integer
 * types convert among themselves when the value fits, f32/f64 convert to each other). */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out);
/* Returns a malloc'd NUL-terminated copy, or NULL. */
char *gguf_get_str(const gguf_file *f, const char *key);
/* Array element accessors (bounds-checked; 0 on success). */
int gguf_arr_i64(const gguf_kv *kv, uint64_t i, int64_t *out);
int gguf_arr_f64(const gguf_kv *kv, uint64_t i, double *out);
/* Format a scalar value (or an array summary) for display. */
void gguf_kv_format(const gguf_kv *kv, trit_buf *out, size_t max_array_items);
/* Format array element i (strings quoted and escaped); nothing if i is out of bounds. */
void gguf_arr_format_elem(const gguf_kv *kv, uint64_t i, trit_buf *out);

/* ---- writer ---- */
typedef struct gguf_writer gguf_writer;
/* Fill dst (nbytes) with tensor `index`'s data; return 0 or -1 (with err). */
typedef int (*gguf_fill_fn)(void *ctx, size_t index, void *dst, size_t nbytes, trit_err *err);

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
void gguf_w_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_w_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_w_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_w_f32(gguf_writer *w, const char *key, float v);
void gguf_w_bool(gguf_writer *w, const char *key, bool v);
void gguf_w_str(gguf_writer *w, const char *key, const char *v);
void gguf_w_arr_str(gguf_writer *w, const char *key, const char *const *v, size_t n);
void gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, size_t n);
void gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, size_t n);
/* The remaining scalar types, and a raw array of any fixed-size element type (elements in
 * little-endian, n * element size bytes; not for strings or nested arrays). */
void gguf_w_u8(gguf_writer *w, const char *key, uint8_t v);
void gguf_w_i8(gguf_writer *w, const char *key, int8_t v);
void gguf_w_u16(gguf_writer *w, const char *key, uint16_t v);
void gguf_w_i16(gguf_writer *w, const char *key, int16_t v);
void gguf_w_i64(gguf_writer *w, const char *key, int64_t v);
void gguf_w_f64(gguf_writer *w, const char *key, double v);
void gguf_w_arr_raw(gguf_writer *w, const char *key, uint32_t elem_type, const void *data,
                    size_t n);
/* Size in bytes of one element of a fixed-size value type; 0 for string/array/unknown. */
size_t gguf_vtype_size(uint32_t t);
/* Setting a key that was already set replaces its value (keeping its position). */
/* Copy a KV (any type, arrays included) from a reader, under the same key. */
void gguf_w_copy_kv(gguf_writer *w, const gguf_kv *kv);
/* Add a tensor. data may be NULL when a fill callback is given to gguf_writer_write.
 * Returns the tensor's index. nbytes must equal trit_tensor_nbytes(type, ne[0], rows). */
size_t gguf_w_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                     const int64_t *ne, const void *data, size_t nbytes);
int gguf_writer_write(gguf_writer *w, const char *path, gguf_fill_fn fill, void *ctx,
                      trit_err *err);

/* ---- I2_S <-> TQ2_0 file conversion (gguf_convert.c) ----
 * Every `from` tensor converted with trit_convert_tensor (quant.h: the exactness rules), every
 * other tensor and every KV copied (general.file_type set to 37 = TQ2_0 or 40 = I2_S), tensor
 * order kept. total (may be NULL) sums the measured errors. */
int trit_convert_file(const char *in_path, const char *out_path, uint32_t from, uint32_t to,
                      trit_convert_report *total, trit_err *err);

#endif
