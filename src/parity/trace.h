/* parity/trace.h — layer traces: trace files (JSON) and the trace diff between two backends.
 *
 * Contract: a trace is a list of per-(layer, point) statistics (backend.h trit_trace_stat),
 * written and read as JSON with the backend, model and prompt they came from. A diff compares
 * two traces point by point in computation order and names the first point whose std ratio
 * or NMSE is outside its band; it refuses to compare stats whose element counts differ
 * (all-tokens vs last-token sampling is the classic false alarm), and a pair with no common
 * point. `trit trace` and `trit ladder --bisect` use it. Depends on backends, base, jansson. */
#ifndef TRIT_PARITY_TRACE_H
#define TRIT_PARITY_TRACE_H

#include "backends/backend.h"
#include "base/base.h"

#include <jansson.h>

typedef struct trit_trace_file {
    char backend[512], model_sha256[65], prompt_sha256[65];
    bool last_token;
    size_t n_tokens;
    trit_trace_stat *stats;
    size_t n;
} trit_trace_file;
json_t *trit_trace_to_json(const trit_backend_info *info, const char *prompt, size_t n_tokens,
                           bool last_token, const trit_trace_stat *st, size_t n, bool values);
int trit_trace_from_json(json_t *j, trit_trace_file *f, trit_err *err);
int trit_trace_load(const char *path, trit_trace_file *f, trit_err *err);
void trit_trace_file_free(trit_trace_file *f);

/* Order for comparison: layer (inputs first, then 0..L-1, then outputs), then graph order. */
void trit_trace_sort(trit_trace_stat *st, size_t n);
/* Normalised MSE of b against a: sum (a-b)^2 / sum a^2 (absolute MSE when a is all zero). */
double trit_nmse(const float *a, const float *b, size_t n);

typedef struct trit_trace_diff_opts {
    double std_lo, std_hi; /* [0.5, 2.0] */
    double nmse;           /* 1e-3 */
} trit_trace_diff_opts;
typedef struct trit_trace_diff_point {
    char name[64];
    int layer;
    double std_a, std_b, std_ratio, mean_a, mean_b;
    double nmse; /* from values when both have them; else NAN */
    bool only_a, only_b, outside;
    int first_pos; /* values: first row beyond the NMSE bound; -1 */
} trit_trace_diff_point;
typedef struct trit_trace_diff {
    trit_trace_diff_point *pts;
    size_t n;
    long first_bad; /* index into pts of the first point outside; -1 none */
    size_t n_common;
} trit_trace_diff;
/* Refuses (TRIT_EINVAL, clear message) when a common point's element counts differ
 * (typically all-tokens vs last-token sampling), or when there is no common point. */
int trit_trace_diff_run(const trit_trace_stat *a, size_t na, const trit_trace_stat *b, size_t nb,
                        const trit_trace_diff_opts *o, trit_trace_diff *d, trit_err *err);
void trit_trace_diff_free(trit_trace_diff *d);

#endif
