/* tests/fuzz/recipe.h — what fuzz_model and fuzz_engine share to build a GGUF model from a
 * fuzz input: tensor bytes taken from the input (repeated), tensors added through the real
 * GGUF writer, and the "(offset, byte) patches after a 0xFF 0xFF marker" rule applied to the
 * written file. Header-only (static functions): each fuzz target is one translation unit. */
#ifndef TRIT_FUZZ_RECIPE_H
#define TRIT_FUZZ_RECIPE_H

#include "gguf/gguf.h"
#include "quant/quant.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct data_src {
    const uint8_t *p;
    size_t n;
} data_src;

/* tensor bytes: the fuzz bytes repeated (zeros when there are none) */
static void *fill(const data_src *d, size_t nbytes) {
    uint8_t *b = calloc(1, nbytes ? nbytes : 1);
    if (!d->n || !nbytes) return b;
    /* memcpy doubling: a byte loop here was most of the run time under coverage hooks */
    size_t have = d->n < nbytes ? d->n : nbytes;
    memcpy(b, d->p, have);
    while (have < nbytes) {
        size_t k = have < nbytes - have ? have : nbytes - have;
        memcpy(b + have, b, k);
        have += k;
    }
    return b;
}

/* One tensor of the recipe (ne1 > 1: a matrix), its bytes kept in keep[] until written. */
static void add(gguf_writer *w, const char *name, uint32_t type, int64_t ne0, int64_t ne1,
                const data_src *d, void **keep, int *nkeep) {
    int64_t ne[2] = {ne0, ne1};
    size_t nb = trit_tensor_nbytes(type, ne0, ne1);
    void *b = fill(d, nb);
    keep[(*nkeep)++] = b;
    gguf_w_tensor(w, name, type, ne1 > 1 ? 2 : 1, ne, b, nb);
}

/* Splits rest[0..*n) at the first 0xFF 0xFF: *n becomes the data part's length, and the
 * patch bytes after the marker are returned (NULL, *npatch 0 when there is no marker). */
static const uint8_t *split_patch(const uint8_t *rest, size_t *n, size_t *npatch) {
    for (size_t i = 0; i + 1 < *n; i++)
        if (rest[i] == 0xFF && rest[i + 1] == 0xFF) {
            *npatch = *n - i - 2;
            *n = i;
            return rest + i + 2;
        }
    *npatch = 0;
    return NULL;
}

/* (hi, lo, byte) triples: byte written at ((hi << 8 | lo) * 7) % file length. */
static void apply_patch(const char *path, const uint8_t *patch, size_t npatch) {
    if (!npatch) return;
    int fd = open(path, O_WRONLY);
    if (fd < 0) return;
    off_t len = lseek(fd, 0, SEEK_END);
    for (size_t i = 0; i + 2 < npatch && len > 0; i += 3) {
        off_t off = (off_t)((patch[i] << 8 | patch[i + 1]) * 7) % len;
        if (pwrite(fd, &patch[i + 2], 1, off) != 1) break;
    }
    close(fd);
}

#endif
