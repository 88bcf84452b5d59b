/* backends/backend_impl.h — private: the vtable each implementation fills, and helpers the
 * implementations share. Only the backend implementations include this. */
#ifndef TRIT_BACKEND_IMPL_H
#define TRIT_BACKEND_IMPL_H

#include "backends/backend.h"

typedef struct trit_backend_ops {
    void (*close)(trit_backend *b);
    int (*tokenize)(trit_backend *b, const char *text, bool add_special, bool parse_special,
                    int32_t **ids, size_t *n_ids, trit_err *err);
    int (*chat_prompt)(trit_backend *b, const char *user, trit_buf *out, trit_err *err);
    int (*eval_each)(trit_backend *b, const int32_t *ids, size_t n, trit_backend_logits_fn fn,
                     void *ud, trit_err *err);
    int (*generate)(trit_backend *b, const int32_t *ids, size_t n, int max_tokens,
                    trit_gen_step **steps, size_t *n_steps, trit_err *err);
    int (*trace)(trit_backend *b, const int32_t *ids, size_t n, const char *const *names,
                 size_t n_names, bool last_token_only, trit_trace_stat **stats, size_t *n_stats,
                 trit_err *err);
    /* NULL: trit_backend_score evaluates through eval_each (exact, from the full logits).
     * Else fills out[0 .. n-from) (allocated and zeroed by the caller); top_n already clamped
     * to 0..TRIT_BACKEND_TOPN_MAX. */
    int (*score)(trit_backend *b, const int32_t *ids, size_t n, size_t from, int top_n,
                 trit_pos_topn *out, trit_err *err);
    const char *(*score_mode)(trit_backend *b); /* NULL: "logits" */
    json_t *(*identity)(trit_backend *b);       /* NULL: built from info (in-process) */
} trit_backend_ops;

struct trit_backend {
    const trit_backend_ops *ops;
    trit_backend_info info;
    trit_backend_opts opts;
    bool keep_data;
    trit_backend_progress_fn progress;
    void *progress_ud;
    void *impl;
};

/* Each opens `target` (the spec without "kind:" and without "?options") into b. */
int trit_backend_open_trit(trit_backend *b, const char *target, trit_err *err);
int trit_backend_open_llama(trit_backend *b, const char *target, trit_err *err);
int trit_backend_open_http(trit_backend *b, const char *target, const char *query, trit_err *err);

/* Fill a greedy step from a row of logits: argmax (ties to the lowest id), top-k by logit
 * (descending, ties lowest id first), logprobs against the log-sum-exp. */
void trit_backend_step_from_logits(const float *logits, int n_vocab, trit_gen_step *st);

/* Growable list of trace stats used by the trace implementations. */
typedef struct trit_trace_list {
    trit_trace_stat *v;
    size_t n, cap;
    const char *const *names;
    size_t n_names;
    bool last_token_only, keep_data;
    /* a name seen again replaces the earlier tensor (llama.cpp names several tensors of one
     * pass alike, e.g. Qcur before and after RoPE: the last is the point); otherwise the rows
     * of a later prefill chunk are appended */
    bool replace_dups;
} trit_trace_list;
/* Add the stats of a [rows x ne0] float block (only the last row when last_token_only). */
void trit_trace_list_add(trit_trace_list *l, const char *name, const float *data, int64_t ne0,
                         int64_t rows);
/* Compute the stats of every collected point (dropping the data unless keep_data) and hand
 * the array over; the list is empty afterwards. */
void trit_trace_list_finish(trit_trace_list *l, trit_trace_stat **stats, size_t *n_stats);

#endif
