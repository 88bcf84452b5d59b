/* backends/trit.c — the trit engine in process (engine.h, tokenizer.h, model.h).
 * Spec options rope=norm|neox and act=silu|relu2 force trit_ctx_params.rope_mode / act: fault
 * injection for the parity tests. Traces come from trit_ctx_set_trace. */
#include "backends/backend_impl.h"
#include "engine/engine.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct trit_impl {
    trit_model *model;
    trit_tokenizer *tok;
    trit_ctx *ctx;
    int n_vocab;
} trit_impl;

static void t_close(trit_backend *b) {
    trit_impl *m = b->impl;
    if (!m) return;
    if (m->ctx) trit_ctx_free(m->ctx);
    if (m->tok) trit_tok_free(m->tok);
    if (m->model) trit_model_free(m->model);
    free(m);
}

static int t_tokenize(trit_backend *b, const char *text, bool add_special, bool parse_special,
                      int32_t **ids, size_t *n_ids, trit_err *err) {
    trit_impl *m = b->impl;
    return trit_tok_encode(m->tok, text, strlen(text), add_special, parse_special, ids, n_ids, err);
}

static int t_chat_prompt(trit_backend *b, const char *user, trit_buf *out, trit_err *err) {
    trit_impl *m = b->impl;
    trit_chat_msg msg = {.role = "user", .content = user};
    return trit_chat_apply(trit_tok_chat_tmpl(m->tok), &msg, 1, true, out, err);
}

static int t_eval_each(trit_backend *b, const int32_t *ids, size_t n, trit_backend_logits_fn fn,
                       void *ud, trit_err *err) {
    trit_impl *m = b->impl;
    if (n > (size_t)trit_ctx_n_ctx(m->ctx))
        return trit_fail(err, TRIT_ERANGE, "%zu tokens do not fit the context (n_ctx %d)", n,
                         trit_ctx_n_ctx(m->ctx));
    if (trit_eval(m->ctx, ids, (int)n, 0, true, err) != 0) return -1;
    for (size_t i = 0; i < n; i++) {
        const float *lg = trit_get_logits(m->ctx, (int)i);
        if (!lg) return trit_fail(err, TRIT_EIO, "engine kept no logits for position %zu", i);
        int rc = fn(ud, i, lg, m->n_vocab);
        if (rc) return rc;
    }
    return 0;
}

static int t_generate(trit_backend *b, const int32_t *ids, size_t n, int max_tokens,
                      trit_gen_step **steps, size_t *n_steps, trit_err *err) {
    trit_impl *m = b->impl;
    if (n > (size_t)trit_ctx_n_ctx(m->ctx))
        return trit_fail(err, TRIT_ERANGE, "%zu tokens do not fit the context (n_ctx %d)", n,
                         trit_ctx_n_ctx(m->ctx));
    if (trit_eval(m->ctx, ids, (int)n, 0, false, err) != 0) return -1;
    trit_gen_step *out = xcalloc((size_t)max_tokens, sizeof *out);
    size_t k = 0, pos = n;
    while (k < (size_t)max_tokens) {
        const float *lg = trit_get_logits(m->ctx, -1);
        if (!lg) {
            free(out);
            return trit_fail(err, TRIT_EIO, "engine kept no logits at step %zu", k);
        }
        trit_backend_step_from_logits(lg, m->n_vocab, &out[k]);
        int32_t id = out[k++].id;
        if (trit_tok_is_eog(m->tok, id) || k == (size_t)max_tokens) break;
        if (pos + 1 > (size_t)trit_ctx_n_ctx(m->ctx)) break;
        if (trit_eval(m->ctx, &id, 1, (int)pos++, false, err) != 0) {
            free(out);
            return -1;
        }
    }
    *steps = out;
    *n_steps = k;
    return 0;
}

static void t_trace_hook(void *ud, const char *name, const float *data, int64_t ne0, int64_t ne1) {
    trit_trace_list_add(ud, name, data, ne0, ne1);
}

static int t_trace(trit_backend *b, const int32_t *ids, size_t n, const char *const *names,
                   size_t n_names, bool last_token_only, trit_trace_stat **stats, size_t *n_stats,
                   trit_err *err) {
    trit_impl *m = b->impl;
    if (n > (size_t)trit_ctx_n_ctx(m->ctx))
        return trit_fail(err, TRIT_ERANGE, "%zu tokens do not fit the context (n_ctx %d)", n,
                         trit_ctx_n_ctx(m->ctx));
    trit_trace_list tl = {.names = names,
                          .n_names = n_names,
                          .last_token_only = last_token_only,
                          .keep_data = b->keep_data};
    trit_ctx_set_trace(m->ctx, t_trace_hook, &tl);
    int rc = trit_eval(m->ctx, ids, (int)n, 0, !last_token_only, err);
    trit_ctx_set_trace(m->ctx, NULL, NULL);
    trit_trace_list_finish(&tl, stats, n_stats);
    if (rc != 0) {
        trit_trace_stats_free(*stats, *n_stats);
        *stats = NULL;
        *n_stats = 0;
        return -1;
    }
    return 0;
}

static const trit_backend_ops trit_ops = {
    .close = t_close,
    .tokenize = t_tokenize,
    .chat_prompt = t_chat_prompt,
    .eval_each = t_eval_each,
    .generate = t_generate,
    .trace = t_trace,
};

int trit_backend_open_trit(trit_backend *b, const char *target, trit_err *err) {
    trit_impl *m = xcalloc(1, sizeof *m);
    b->impl = m;
    b->ops = &trit_ops;
    m->model = trit_model_load(target, err);
    if (!m->model) goto fail;
    m->tok = trit_tok_load(trit_model_gguf(m->model), err);
    if (!m->tok) goto fail;
    trit_ctx_params p = trit_ctx_default_params();
    if (b->opts.n_threads > 0) p.n_threads = b->opts.n_threads;
    if (b->opts.n_ctx > 0) p.n_ctx = b->opts.n_ctx;
    p.rope_mode = b->opts.rope_mode;
    p.act = b->opts.act;
    m->ctx = trit_ctx_new(m->model, &p, err);
    if (!m->ctx) goto fail;
    m->n_vocab = m->model->hp.n_vocab;

    trit_backend_info *in = &b->info;
    trit_build_string(in->version, sizeof in->version); /* as trit serve reports it */
    snprintf(in->model_path, sizeof in->model_path, "%s", target);
    snprintf(in->model_sha256, sizeof in->model_sha256, "%s", trit_model_sha256(m->model));
    trit_buf d = {0};
    trit_model_describe(m->model, &d);
    snprintf(in->model_desc, sizeof in->model_desc, "%s", d.p ? d.p : "");
    trit_buf_free(&d);
    in->n_vocab = m->n_vocab;
    in->n_ctx = trit_ctx_n_ctx(m->ctx);
    in->n_threads = p.n_threads > 0 ? p.n_threads : trit_cpu_count();
    snprintf(in->numerics, sizeof in->numerics, "threads=%d n_ctx=%d kv=%s rope=%s act=%s",
             in->n_threads, in->n_ctx, p.kv_type == 0 ? "f32" : "f16",
             p.rope_mode < 0    ? "model"
             : p.rope_mode == 2 ? "neox(forced)"
                                : "norm(forced)",
             p.act < 0    ? trit_act_name(m->model->hp.act)
             : p.act == 1 ? "relu2(forced)"
                          : "silu(forced)");
    snprintf(in->kernels, sizeof in->kernels, "%s", trit_ctx_kernels_name(m->ctx));
    in->can_eval = in->can_trace = in->can_tokenize = true;
    return 0;
fail:
    t_close(b);
    b->impl = NULL;
    return -1;
}
