/* backends/llama.c — the reference libllama, in process.
 *
 * Compiled against the reference build's llama.h (TRIT_HAVE_LLAMA_H, set by the Makefile when
 * the reference is present) but linked at run time: libllama.so is dlopen'd from
 * <trit_ref_dir()>/build/bin and every function is resolved with dlsym, typed from its
 * declaration, so the trit binary starts without the reference. Contexts come from
 * llama_context_default_params() with only n_ctx, n_batch and threads changed.
 * Traces use the context's eval callback (cb_eval) on a separate context made per call, so
 * evaluation contexts never carry a callback. */
#include "backends/backend_impl.h"
#include "reference/reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TRIT_HAVE_LLAMA_H

int trit_backend_open_llama(trit_backend *b, const char *target, trit_err *err) {
    (void)b;
    (void)target;
    return trit_fail(err, TRIT_EUNAVAIL,
                     "llama backend not built: the reference llama.h was not found at build time "
                     "(run scripts/setup, then rebuild)");
}

#else

#include <dlfcn.h>
#include <math.h>

#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

/* Function pointers resolved from the shared libraries, typed from the headers. */
#define LLAMA_FNS(X)                                                                               \
    X(llama_backend_init)                                                                          \
    X(llama_log_set)                                                                               \
    X(llama_model_default_params)                                                                  \
    X(llama_context_default_params)                                                                \
    X(llama_model_load_from_file)                                                                  \
    X(llama_model_free)                                                                            \
    X(llama_init_from_model)                                                                       \
    X(llama_free)                                                                                  \
    X(llama_model_get_vocab)                                                                       \
    X(llama_vocab_n_tokens)                                                                        \
    X(llama_vocab_is_eog)                                                                          \
    X(llama_model_n_ctx_train)                                                                     \
    X(llama_model_desc)                                                                            \
    X(llama_model_chat_template)                                                                   \
    X(llama_chat_apply_template)                                                                   \
    X(llama_tokenize)                                                                              \
    X(llama_batch_init)                                                                            \
    X(llama_batch_free)                                                                            \
    X(llama_decode)                                                                                \
    X(llama_get_logits_ith)                                                                        \
    X(llama_get_memory)                                                                            \
    X(llama_memory_clear)                                                                          \
    X(llama_n_ctx)                                                                                 \
    X(llama_n_threads)

#define GGML_FNS(X)                                                                                \
    X(ggml_backend_tensor_get)                                                                     \
    X(ggml_nbytes)                                                                                 \
    X(ggml_version)                                                                                \
    X(ggml_commit)

static struct {
    bool loaded;
    void *lib, *glib;
    char dir[512];
#define X(f) __typeof__(&f) f;
    LLAMA_FNS(X) GGML_FNS(X)
#undef X
} L;

static void quiet_log(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (trit_log_level() >= TRIT_LOG_DEBUG ||
        (level == GGML_LOG_LEVEL_ERROR && trit_log_level() >= TRIT_LOG_ERROR))
        fputs(text, stderr);
}

static int load_lib(trit_err *err) {
    if (L.loaded) return 0;
    char *path = trit_ref_path("libllama.so");
    if (!path)
        return trit_fail(err, TRIT_EUNAVAIL,
                         "reference libllama.so not found under %s/build/bin (run scripts/setup "
                         "or set TRIT_REF_DIR)",
                         trit_ref_dir());
    /* RTLD_DEEPBIND: trit exports symbols (-rdynamic) with ggml's names (gguf_*); the reference
     * must bind to its own. */
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!lib) {
        trit_fail(err, TRIT_EUNAVAIL, "dlopen %s: %s", path, dlerror());
        free(path);
        return -1;
    }
    snprintf(L.dir, sizeof L.dir, "%s", path);
    char *slash = strrchr(L.dir, '/');
    if (slash) *slash = 0;
    free(path);
    char gpath[600];
    snprintf(gpath, sizeof gpath, "%s/libggml-base.so", L.dir);
    void *glib = dlopen(gpath, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!glib) {
        trit_fail(err, TRIT_EUNAVAIL, "dlopen %s: %s", gpath, dlerror());
        dlclose(lib);
        return -1;
    }
#define X(f)                                                                                       \
    if (!(*(void **)&L.f = dlsym(lib, #f))) {                                                      \
        trit_fail(err, TRIT_EUNAVAIL, "libllama.so in %s lacks %s (incompatible reference?)",      \
                  L.dir, #f);                                                                      \
        dlclose(glib);                                                                             \
        dlclose(lib);                                                                              \
        return -1;                                                                                 \
    }
    LLAMA_FNS(X)
#undef X
#define X(f)                                                                                       \
    if (!(*(void **)&L.f = dlsym(glib, #f))) {                                                     \
        trit_fail(err, TRIT_EUNAVAIL, "libggml-base.so in %s lacks %s", L.dir, #f);                \
        dlclose(glib);                                                                             \
        dlclose(lib);                                                                              \
        return -1;                                                                                 \
    }
    GGML_FNS(X)
#undef X
    L.lib = lib;
    L.glib = glib;
    L.llama_log_set(quiet_log, NULL);
    L.llama_backend_init();
    L.loaded = true;
    return 0;
}

typedef struct llama_impl {
    struct llama_model *model;
    struct llama_context *ctx;
    const struct llama_vocab *vocab;
    int n_vocab, n_ctx, n_threads;
    /* trace state (valid during a trace call) */
    trit_trace_list *tl;
    int64_t tr_tokens, tr_outputs;
    float *tr_buf;
    size_t tr_cap;
    uint8_t *tr_raw;
    size_t tr_raw_cap;
} llama_impl;

static int n_threads_of(const trit_backend *b) {
    return b->opts.n_threads > 0 ? b->opts.n_threads : trit_cpu_count();
}

static void apply_fa(const trit_backend *b, struct llama_context_params *cp) {
    if (b->opts.flash_attn == 1) cp->flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    if (b->opts.flash_attn == 2) cp->flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
}

static void l_close(trit_backend *b) {
    llama_impl *m = b->impl;
    if (!m) return;
    if (m->ctx) L.llama_free(m->ctx);
    if (m->model) L.llama_model_free(m->model);
    free(m->tr_buf);
    free(m->tr_raw);
    free(m);
}

static int l_tokenize(trit_backend *b, const char *text, bool add_special, bool parse_special,
                      int32_t **ids, size_t *n_ids, trit_err *err) {
    llama_impl *m = b->impl;
    size_t len = strlen(text);
    if (len > INT32_MAX / 2) return trit_fail(err, TRIT_ERANGE, "tokenize: text too long");
    int32_t cap = (int32_t)len + 8;
    llama_token *out = xmalloc((size_t)cap * sizeof *out);
    int32_t n =
        L.llama_tokenize(m->vocab, text, (int32_t)len, out, cap, add_special, parse_special);
    if (n < 0 && n != INT32_MIN) {
        cap = -n;
        out = xrealloc(out, (size_t)cap * sizeof *out);
        n = L.llama_tokenize(m->vocab, text, (int32_t)len, out, cap, add_special, parse_special);
    }
    if (n < 0) {
        free(out);
        return trit_fail(err, TRIT_EFORMAT, "llama_tokenize failed (%d)", n);
    }
    *ids = out;
    *n_ids = (size_t)n;
    return 0;
}

static int l_chat_prompt(trit_backend *b, const char *user, trit_buf *out, trit_err *err) {
    llama_impl *m = b->impl;
    const char *tmpl = L.llama_model_chat_template(m->model, NULL);
    if (!tmpl)
        return trit_fail(err, TRIT_EUNAVAIL,
                         "model has no tokenizer.chat_template (llama_model_chat_template)");
    struct llama_chat_message msg = {.role = "user", .content = user};
    int32_t cap = (int32_t)(2 * strlen(user) + 1024);
    char *buf = xmalloc((size_t)cap);
    int32_t n = L.llama_chat_apply_template(tmpl, &msg, 1, true, buf, cap);
    if (n > cap) {
        buf = xrealloc(buf, (size_t)n + 1);
        n = L.llama_chat_apply_template(tmpl, &msg, 1, true, buf, n + 1);
    }
    if (n < 0) {
        free(buf);
        return trit_fail(err, TRIT_EUNSUP,
                         "llama_chat_apply_template does not know this "
                         "model's template");
    }
    trit_buf_append(out, buf, (size_t)n);
    free(buf);
    return 0;
}

/* Decode ids[0..n) from an empty cache on ctx; out_mode 1: every token's logits, 0: last. */
static int decode_all(llama_impl *m, struct llama_context *ctx, const int32_t *ids, size_t n,
                      bool all_logits, trit_err *err) {
    if (n > (size_t)L.llama_n_ctx(ctx))
        return trit_fail(err, TRIT_ERANGE, "%zu tokens do not fit the context (n_ctx %u)", n,
                         L.llama_n_ctx(ctx));
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->n_vocab)
            return trit_fail(err, TRIT_EINVAL,
                             "token id %d at position %zu is out of range "
                             "(n_vocab %d)",
                             ids[i], i, m->n_vocab);
    L.llama_memory_clear(L.llama_get_memory(ctx), true);
    struct llama_batch batch = L.llama_batch_init((int32_t)n, 0, 1);
    for (size_t i = 0; i < n; i++) {
        batch.token[i] = ids[i];
        batch.pos[i] = (llama_pos)i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = all_logits || i + 1 == n;
    }
    batch.n_tokens = (int32_t)n;
    int rc = L.llama_decode(ctx, batch);
    L.llama_batch_free(batch);
    if (rc != 0) return trit_fail(err, TRIT_EIO, "llama_decode failed (%d)", rc);
    return 0;
}

static int l_eval_each(trit_backend *b, const int32_t *ids, size_t n, trit_backend_logits_fn fn,
                       void *ud, trit_err *err) {
    llama_impl *m = b->impl;
    if (decode_all(m, m->ctx, ids, n, true, err) != 0) return -1;
    for (size_t i = 0; i < n; i++) {
        const float *lg = L.llama_get_logits_ith(m->ctx, (int32_t)i);
        if (!lg) return trit_fail(err, TRIT_EIO, "llama_get_logits_ith(%zu) returned NULL", i);
        int rc = fn(ud, i, lg, m->n_vocab);
        if (rc) return rc;
    }
    return 0;
}

static int l_generate(trit_backend *b, const int32_t *ids, size_t n, int max_tokens,
                      trit_gen_step **steps, size_t *n_steps, trit_err *err) {
    llama_impl *m = b->impl;
    if (decode_all(m, m->ctx, ids, n, false, err) != 0) return -1;
    trit_gen_step *out = xcalloc((size_t)max_tokens, sizeof *out);
    size_t k = 0, pos = n;
    struct llama_batch batch = L.llama_batch_init(1, 0, 1);
    int rc = 0;
    while (k < (size_t)max_tokens) {
        const float *lg = L.llama_get_logits_ith(m->ctx, -1);
        if (!lg) {
            rc = trit_fail(err, TRIT_EIO, "llama_get_logits_ith(-1) returned NULL");
            break;
        }
        trit_backend_step_from_logits(lg, m->n_vocab, &out[k]);
        int32_t id = out[k++].id;
        if (L.llama_vocab_is_eog(m->vocab, id) || k == (size_t)max_tokens) break;
        if (pos + 1 > (size_t)m->n_ctx) break; /* context full: stop like a server would */
        batch.n_tokens = 1;
        batch.token[0] = id;
        batch.pos[0] = (llama_pos)pos++;
        batch.n_seq_id[0] = 1;
        batch.seq_id[0][0] = 0;
        batch.logits[0] = 1;
        int d = L.llama_decode(m->ctx, batch);
        if (d != 0) {
            rc = trit_fail(err, TRIT_EIO, "llama_decode failed at step %zu (%d)", k, d);
            break;
        }
    }
    L.llama_batch_free(batch);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *steps = out;
    *n_steps = k;
    return 0;
}

/* Names llama.cpp's graph callback gives: "attn_norm-0", "result_norm", ... Skip ggml's
 * derived names ("x (view)", "node_12") and the KV cache. */
static bool llama_point_name(const char *name) {
    if (!name[0] || strchr(name, ' ') || strchr(name, '(')) return false;
    if (!strncmp(name, "node_", 5) || !strncmp(name, "leaf_", 5) || !strncmp(name, "cache_", 6))
        return false;
    return true;
}

static bool trace_cb(struct ggml_tensor *t, bool ask, void *ud) {
    llama_impl *m = ud;
    trit_trace_list *tl = m->tl;
    if (ask)
        return (t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16) &&
               llama_point_name(t->name) && trit_trace_name_wanted(t->name, tl->names, tl->n_names);
    /* rows = the outermost non-trivial dimension when it counts tokens (or outputs, for the
     * last layer's tail); otherwise the tensor holds one token's values */
    int64_t nel = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    if (nel <= 0) return true;
    int nd = 3;
    while (nd > 0 && t->ne[nd] == 1) nd--;
    int64_t rows = 1;
    if (nd >= 1 && (t->ne[nd] == m->tr_tokens || t->ne[nd] == m->tr_outputs)) rows = t->ne[nd];
    if ((size_t)nel > m->tr_cap) {
        m->tr_cap = (size_t)nel;
        m->tr_buf = xrealloc(m->tr_buf, m->tr_cap * sizeof(float));
    }
    size_t nbytes = L.ggml_nbytes(t);
    if (nbytes > m->tr_raw_cap) {
        m->tr_raw_cap = nbytes;
        m->tr_raw = xrealloc(m->tr_raw, nbytes);
    }
    L.ggml_backend_tensor_get(t, m->tr_raw, 0, nbytes);
    size_t k = 0;
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < t->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < t->ne[0]; i0++) {
                    const uint8_t *p =
                        m->tr_raw + i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
                    float v;
                    if (t->type == GGML_TYPE_F32) {
                        memcpy(&v, p, sizeof v);
                    } else {
                        uint16_t h;
                        memcpy(&h, p, sizeof h);
                        v = trit_fp16_to_fp32(h);
                    }
                    m->tr_buf[k++] = v;
                }
    trit_trace_list_add(tl, t->name, m->tr_buf, nel / rows, rows);
    return true;
}

static int l_trace(trit_backend *b, const int32_t *ids, size_t n, const char *const *names,
                   size_t n_names, bool last_token_only, trit_trace_stat **stats, size_t *n_stats,
                   trit_err *err) {
    llama_impl *m = b->impl;
    /* one ubatch holding the whole prompt, so every callback sees all its rows at once */
    uint32_t nc = (uint32_t)((n + 255) / 256 * 256);
    struct llama_context_params cp = L.llama_context_default_params();
    cp.n_ctx = nc;
    cp.n_batch = nc;
    cp.n_ubatch = nc;
    cp.n_threads = cp.n_threads_batch = m->n_threads;
    apply_fa(b, &cp);
    cp.cb_eval = trace_cb;
    cp.cb_eval_user_data = m;
    struct llama_context *ctx = L.llama_init_from_model(m->model, cp);
    if (!ctx) return trit_fail(err, TRIT_EIO, "llama_init_from_model failed (trace context)");
    trit_trace_list tl = {.names = names,
                          .n_names = n_names,
                          .last_token_only = last_token_only,
                          .keep_data = b->keep_data,
                          .replace_dups = true};
    m->tl = &tl;
    m->tr_tokens = (int64_t)n;
    m->tr_outputs = last_token_only ? 1 : (int64_t)n;
    int rc = decode_all(m, ctx, ids, n, !last_token_only, err);
    m->tl = NULL;
    L.llama_free(ctx);
    trit_trace_list_finish(&tl, stats, n_stats);
    if (rc != 0) {
        trit_trace_stats_free(*stats, *n_stats);
        *stats = NULL;
        *n_stats = 0;
        return -1;
    }
    return 0;
}

static const trit_backend_ops llama_ops = {
    .close = l_close,
    .tokenize = l_tokenize,
    .chat_prompt = l_chat_prompt,
    .eval_each = l_eval_each,
    .generate = l_generate,
    .trace = l_trace,
};

int trit_backend_open_llama(trit_backend *b, const char *target, trit_err *err) {
    if (load_lib(err) != 0) return -1;
    llama_impl *m = xcalloc(1, sizeof *m);
    b->impl = m;
    b->ops = &llama_ops;
    struct llama_model_params mp = L.llama_model_default_params();
    m->model = L.llama_model_load_from_file(target, mp);
    if (!m->model) {
        l_close(b);
        b->impl = NULL;
        return trit_fail(err, TRIT_EIO,
                         "llama_model_load_from_file('%s') failed (set TRIT_LOG=debug for "
                         "llama.cpp's log)",
                         target);
    }
    m->vocab = L.llama_model_get_vocab(m->model);
    m->n_vocab = L.llama_vocab_n_tokens(m->vocab);
    int train = L.llama_model_n_ctx_train(m->model);
    m->n_ctx = b->opts.n_ctx > 0 ? b->opts.n_ctx : TRIT_MIN(train > 0 ? train : 4096, 4096);
    m->n_threads = n_threads_of(b);
    struct llama_context_params cp = L.llama_context_default_params();
    cp.n_ctx = (uint32_t)m->n_ctx;
    cp.n_batch = (uint32_t)m->n_ctx; /* eval submits the whole prompt in one llama_decode */
    cp.n_threads = cp.n_threads_batch = m->n_threads;
    apply_fa(b, &cp);
    m->ctx = L.llama_init_from_model(m->model, cp);
    if (!m->ctx) {
        l_close(b);
        b->impl = NULL;
        return trit_fail(err, TRIT_EIO, "llama_init_from_model failed for '%s'", target);
    }
    m->n_ctx = (int)L.llama_n_ctx(m->ctx);

    trit_backend_info *in = &b->info;
    snprintf(in->version, sizeof in->version, "llama.cpp (node-llama-cpp %s, ggml %s %s)",
             TRIT_NLC_VERSION, L.ggml_version(), L.ggml_commit());
    snprintf(in->model_path, sizeof in->model_path, "%s", target);
    trit_err e2 = {0};
    if (trit_sha256_file(target, in->model_sha256, &e2) != 0) in->model_sha256[0] = 0;
    char desc[200];
    L.llama_model_desc(m->model, desc, sizeof desc);
    snprintf(in->model_desc, sizeof in->model_desc, "%s", desc);
    in->n_vocab = m->n_vocab;
    in->n_ctx = m->n_ctx;
    in->n_threads = m->n_threads;
    snprintf(in->numerics, sizeof in->numerics,
             "threads=%d n_ctx=%d n_batch=%u n_ubatch=%u flash_attn=%s kv=f16 (default params)",
             m->n_threads, m->n_ctx, cp.n_batch, cp.n_ubatch,
             cp.flash_attn_type == LLAMA_FLASH_ATTN_TYPE_ENABLED    ? "on"
             : cp.flash_attn_type == LLAMA_FLASH_ATTN_TYPE_DISABLED ? "off"
                                                                    : "auto");
    in->can_eval = in->can_trace = in->can_tokenize = true;
    return 0;
}

#endif
