/* train/loop.c — `trit train`: vocabulary, tokenized corpus, the training loop with
 * checkpoints, held-out evaluation as llama-perplexity chunks it, the loss curve (JSONL and
 * SVG) and the GGUF export. */
#include "train/train.h"

#include "quant/quant.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void trit_train_default_opts(trit_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->cfg = (trit_train_config){.n_embd = 256,
                                 .n_layer = 2,
                                 .n_head = 4,
                                 .n_ff = 512,
                                 .n_ctx = 128,
                                 .rope_freq_base = 10000.0f,
                                 .rms_eps = 1e-5f,
                                 .qat = true};
    o->vocab_size = 2048;
    o->batch = 8;
    o->seq = 128;
    o->steps = 1000;
    o->warmup = 50;
    o->lr = 3e-3f;
    o->min_lr_ratio = 0.1f;
    o->weight_decay = 0.1f;
    o->clip = 1.0f;
    o->ckpt_every = 100;
    o->eval_every = 200;
    o->eval_chunks = 8;
    o->threads = 0;
    o->seed = 1;
    o->wtype = TRIT_TQ2_0;
    o->progress = stderr;
}

/* Tokenize a text file as llama-perplexity does (-f: one trailing '\n' dropped; BOS added
 * when the vocabulary says so). */
static int tokenize_file(const trit_tokenizer *tok, const char *path, int32_t **ids, size_t *n,
                         trit_err *err) {
    trit_buf b = {0};
    if (trit_read_file(path, &b, err)) return -1;
    size_t len = b.len;
    if (len && b.p[len - 1] == '\n') len--;
    const int rc = trit_tok_encode(tok, b.p, len, true, false, ids, n, err);
    if (rc) trit_err_prefix(err, "%s", path);
    trit_buf_free(&b);
    return rc;
}

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Batch of step `step`: B windows of T+1 tokens at positions drawn from (seed, step, b); the
 * first input token of each window is BOS, as in a perplexity chunk. */
static void make_batch(const int32_t *data, size_t n, uint64_t seed, long step, int B, int T,
                       int32_t bos, int32_t *tok, int32_t *tgt) {
    for (int b = 0; b < B; b++) {
        const uint64_t r = mix(mix(mix(seed) ^ (uint64_t)step) ^ (uint64_t)b);
        const size_t start = (size_t)(r % (uint64_t)(n - (size_t)T - 1));
        for (int t = 0; t < T; t++) {
            tok[b * T + t] = data[start + t];
            tgt[b * T + t] = data[start + t + 1];
        }
        if (bos >= 0) tok[b * T] = bos;
    }
}

/* Held-out NLL the way `trit ppl` / llama-perplexity computes it with n_ctx = T: chunk c is
 * tokens [c*T, c*T+T) with its first token replaced by BOS; positions T/2 .. T-2 are scored
 * (predicting tokens T/2+1 .. T-1). Returns the mean NLL; *count scored tokens. */
static double heldout_nll(trit_train_model *m, trit_pool *pool, const int32_t *ids, size_t n, int T,
                          int max_chunks, int32_t bos, long *count) {
    int n_chunk = (int)(n / (size_t)T);
    if (max_chunks > 0) n_chunk = TRIT_MIN(n_chunk, max_chunks);
    const int B = 4;
    int32_t *tok = xmalloc((size_t)B * T * sizeof(int32_t));
    int32_t *tgt = xmalloc((size_t)B * T * sizeof(int32_t));
    float *nll = xmalloc((size_t)B * T * sizeof(float));
    double sum = 0.0;
    *count = 0;
    for (int c0 = 0; c0 < n_chunk; c0 += B) {
        const int nb = TRIT_MIN(B, n_chunk - c0);
        for (int b = 0; b < nb; b++) {
            const int32_t *chunk = ids + (size_t)(c0 + b) * T;
            for (int t = 0; t < T; t++) {
                tok[b * T + t] = chunk[t];
                tgt[b * T + t] = t >= T / 2 && t <= T - 2 ? chunk[t + 1] : -1;
            }
            if (bos >= 0) tok[b * T] = bos;
        }
        trit_train_forward_nll(m, pool, tok, tgt, nb, T, nll);
        for (int i = 0; i < nb * T; i++)
            if (tgt[i] >= 0) {
                sum += nll[i];
                (*count)++;
            }
    }
    free(tok);
    free(tgt);
    free(nll);
    return *count ? sum / (double)*count : 0.0;
}

/* Keep the curve's lines up to step `upto` (a resumed run rewrites what follows). When the
 * run had finished (final), its closing held-out line is dropped too: it is written again. */
static void curve_truncate(const char *path, long upto, bool final) {
    trit_buf b = {0}, keep = {0};
    if (trit_read_file(path, &b, NULL)) return;
    char *line = b.p;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0'; /* one line at a time */
        long st = -1;
        const bool parsed = sscanf(line, "{\"step\":%ld", &st) == 1;
        const bool closing = final && st == upto && strstr(line, "heldout_loss");
        if (parsed && st <= upto && !closing) {
            trit_buf_puts(&keep, line);
            trit_buf_puts(&keep, "\n");
        }
        line = nl ? nl + 1 : NULL;
    }
    trit_write_file_atomic(path, keep.p ? keep.p : "", keep.len, NULL);
    trit_buf_free(&b);
    trit_buf_free(&keep);
}

/* SVG plot of the curve: training loss (line) and held-out loss (dots) against step. */
static void curve_svg(const char *jsonl, const char *svg) {
    trit_buf b = {0};
    if (trit_read_file(jsonl, &b, NULL)) return;
    long n = 0, cap = 1024;
    double *st = xmalloc((size_t)cap * sizeof(double)), *lo = xmalloc((size_t)cap * sizeof(double));
    char *kind = xmalloc((size_t)cap);
    double smax = 1, lmax = 0, lmin = 1e9;
    for (char *line = b.p; line && *line;) {
        char *nl = strchr(line, '\n');
        long s;
        double v;
        char k = 0;
        if (sscanf(line, "{\"step\":%ld,\"loss\":%lf", &s, &v) == 2)
            k = 't';
        else if (sscanf(line, "{\"step\":%ld,\"heldout_loss\":%lf", &s, &v) == 2)
            k = 'h';
        if (k) {
            if (n == cap) {
                cap *= 2;
                st = xrealloc(st, (size_t)cap * sizeof(double));
                lo = xrealloc(lo, (size_t)cap * sizeof(double));
                kind = xrealloc(kind, (size_t)cap);
            }
            st[n] = (double)s;
            lo[n] = v;
            kind[n++] = k;
            smax = fmax(smax, (double)s);
            lmax = fmax(lmax, v);
            lmin = fmin(lmin, v);
        }
        line = nl ? nl + 1 : NULL;
    }
    if (lmax <= lmin) lmax = lmin + 1;
    trit_buf o = {0};
    const double W = 800, H = 400, P = 50;
    trit_buf_printf(&o,
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">\n"
                    "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                    "<text x=\"%.0f\" y=\"20\" font-family=\"sans-serif\" font-size=\"14\">"
                    "trit train: loss per token (line: training batch, dots: held-out)</text>\n"
                    "<text x=\"5\" y=\"%.0f\" font-size=\"11\">%.2f</text>\n"
                    "<text x=\"5\" y=\"%.0f\" font-size=\"11\">%.2f</text>\n"
                    "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">step %.0f</text>\n"
                    "<polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"1\" points=\"",
                    W, H, P, P, lmax, H - P, lmin, W - P - 40, H - P + 20, smax);
    for (long i = 0; i < n; i++)
        if (kind[i] == 't')
            trit_buf_printf(&o, "%.1f,%.1f ", P + (W - 2 * P) * st[i] / smax,
                            (H - P) - (H - 2 * P) * (lo[i] - lmin) / (lmax - lmin));
    trit_buf_puts(&o, "\"/>\n");
    for (long i = 0; i < n; i++)
        if (kind[i] == 'h')
            trit_buf_printf(&o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"orangered\"/>\n",
                            P + (W - 2 * P) * st[i] / smax,
                            (H - P) - (H - 2 * P) * (lo[i] - lmin) / (lmax - lmin));
    trit_buf_puts(&o, "</svg>\n");
    trit_write_file_atomic(svg, o.p, o.len, NULL);
    trit_buf_free(&o);
    trit_buf_free(&b);
    free(st);
    free(lo);
    free(kind);
}

static char *with_suffix(const char *path, const char *suffix) {
    trit_buf b = {0};
    trit_buf_printf(&b, "%s%s", path, suffix);
    return b.p;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* One `trit train` run's state, shared by its steps (vocabulary, corpus, model, loop,
 * export) so that each reads as one named step; train_run_free releases all of it. */
typedef struct {
    const trit_train_opts *o;
    char *vocab_path, *ckpt, *curve, *svg;
    trit_tokenizer *tok;
    gguf_file *vf;
    int32_t bos;
    int32_t *train, *held;
    size_t n_train, n_held;
    int T, B;
    trit_train_config cfg;
    trit_train_model *m;
    trit_pool *pool;
    float *mom, *var;
    int32_t *btok, *btgt;
    long step;
    FILE *cf;
    FILE *pr;
} train_run;

/* 1. vocabulary: reuse, or learn from the training text (kept when it already exists, so a
 *    resumed run tokenizes exactly as before); then the tokenizer and its BOS. */
static int train_vocab(train_run *r, trit_err *err) {
    const trit_train_opts *o = r->o;
    if (!o->vocab_path && !exists(r->vocab_path)) {
        trit_buf text = {0};
        if (trit_read_file(o->train_path, &text, err)) return -1;
        const double t0 = trit_now_s();
        const int brc = trit_bpe_train(text.p, text.len, o->vocab_size, r->vocab_path, err);
        trit_buf_free(&text);
        if (brc) return -1;
        if (r->pr)
            fprintf(r->pr, "train: vocabulary %s learned in %.1f s\n", r->vocab_path,
                    trit_now_s() - t0);
    }
    r->vf = gguf_open(r->vocab_path, err);
    if (!r->vf) {
        trit_err_prefix(err, "vocabulary");
        return -1;
    }
    r->tok = trit_tok_load(r->vf, err);
    if (!r->tok) return -1;
    r->bos = trit_tok_add_bos(r->tok) ? trit_tok_bos(r->tok) : -1;
    return 0;
}

/* 2. corpus: the training text (at least seq + 2 tokens) and the held-out text, tokenized. */
static int train_corpus(train_run *r, trit_err *err) {
    const trit_train_opts *o = r->o;
    if (tokenize_file(r->tok, o->train_path, &r->train, &r->n_train, err)) return -1;
    if (o->heldout_path && tokenize_file(r->tok, o->heldout_path, &r->held, &r->n_held, err))
        return -1;
    r->T = o->seq, r->B = o->batch;
    if (r->n_train < (size_t)r->T + 2)
        return trit_fail(err, TRIT_EINVAL, "%s has %zu tokens: fewer than seq + 2 = %d",
                         o->train_path, r->n_train, r->T + 2);
    if (r->pr)
        fprintf(r->pr, "train: %zu training tokens, %zu held-out tokens, vocabulary %d\n",
                r->n_train, r->n_held, trit_tok_n_vocab(r->tok));
    return 0;
}

/* 3. model, optimizer state, resume: a checkpoint (same seed only) continues at its step and
 *    keeps the curve up to it; without one the curve starts afresh. Then the thread pool and
 *    the curve file, appended to. */
static int train_model(train_run *r, trit_err *err) {
    const trit_train_opts *o = r->o;
    r->cfg = o->cfg;
    r->cfg.n_vocab = trit_tok_n_vocab(r->tok);
    r->cfg.n_ctx = r->T;
    const trit_train_config *cfg = &r->cfg;
    if (cfg->n_embd % cfg->n_head || (cfg->n_embd / cfg->n_head) % 2)
        return trit_fail(err, TRIT_EINVAL, "n_embd %d is not n_head %d times an even head size",
                         cfg->n_embd, cfg->n_head);
    r->m = trit_train_model_new(cfg, o->seed);
    const size_t np = trit_train_n_params(r->m);
    r->mom = xcalloc(np, sizeof(float));
    r->var = xcalloc(np, sizeof(float));
    r->step = 0;
    if (exists(r->ckpt)) {
        uint64_t seed = 0;
        if (trit_ckpt_load(r->ckpt, r->m, r->mom, r->var, &r->step, &seed, err)) return -1;
        if (seed != o->seed)
            return trit_fail(err, TRIT_EINVAL, "checkpoint %s was made with seed %llu, not %llu",
                             r->ckpt, (unsigned long long)seed, (unsigned long long)o->seed);
        if (r->pr) fprintf(r->pr, "train: resumed from %s at step %ld\n", r->ckpt, r->step);
        curve_truncate(r->curve, r->step, r->step >= o->steps);
    } else {
        remove(r->curve);
    }
    r->pool = trit_pool_new(o->threads);
    if (r->pr)
        fprintf(r->pr,
                "train: %zu parameters (n_embd %d, n_layer %d, n_head %d, n_ff %d, ctx %d), "
                "batch %d x %d, %ld steps, %d threads\n",
                np, cfg->n_embd, cfg->n_layer, cfg->n_head, cfg->n_ff, r->T, r->B, r->T, o->steps,
                trit_pool_size(r->pool));
    r->cf = fopen(r->curve, "a");
    if (!r->cf) return trit_fail(err, TRIT_EIO, "%s: %s", r->curve, strerror(errno));
    return 0;
}

/* After training step r->step: a held-out evaluation every eval_every steps (not at the
 * end: the final one covers every chunk), and a checkpoint every ckpt_every steps and at the
 * end, the curve flushed to disk first so that a resume finds it complete. */
static int train_after_step(train_run *r, trit_err *err) {
    const trit_train_opts *o = r->o;
    const long step = r->step;
    if (r->held && o->eval_every > 0 && step % o->eval_every == 0 && step < o->steps) {
        long cnt = 0;
        const double hl =
            heldout_nll(r->m, r->pool, r->held, r->n_held, r->T, o->eval_chunks, r->bos, &cnt);
        fprintf(r->cf, "{\"step\":%ld,\"heldout_loss\":%.6f,\"tokens\":%ld}\n", step, hl, cnt);
        if (r->pr)
            fprintf(r->pr, "step %6ld  held-out loss %.4f (ppl %.2f, %ld tokens)\n", step, hl,
                    exp(hl), cnt);
    }
    if (o->ckpt_every > 0 && (step % o->ckpt_every == 0 || step == o->steps)) {
        fflush(r->cf);
        fsync(fileno(r->cf));
        if (trit_ckpt_save(r->ckpt, r->m, r->mom, r->var, step, o->seed, err)) return -1;
    }
    return 0;
}

/* 4. the loop: from the current step to o->steps, each a deterministic batch (seed, step),
 *    forward + backward, clipping, AdamW at the scheduled rate; one curve line per step and
 *    a progress line every 10 steps (and the first and last). */
static int train_loop(train_run *r, trit_err *err) {
    const trit_train_opts *o = r->o;
    const int B = r->B, T = r->T;
    r->btok = xmalloc((size_t)B * T * sizeof(int32_t));
    r->btgt = xmalloc((size_t)B * T * sizeof(int32_t));
    const trit_adamw adam = {o->lr, 0.9f, 0.95f, 1e-8f, o->weight_decay};
    const double t_start = trit_now_s();
    const long step0 = r->step;
    while (r->step < o->steps) {
        make_batch(r->train, r->n_train, o->seed, r->step, B, T, r->bos, r->btok, r->btgt);
        const double loss = trit_train_step_loss(r->m, r->pool, r->btok, r->btgt, B, T, true);
        const double gnorm = trit_clip_grad(r->m, o->clip);
        const float lr = trit_lr_at(r->step, o->warmup, o->steps, o->lr, o->min_lr_ratio);
        trit_adamw_update(r->m, &adam, lr, r->mom, r->var, r->step + 1);
        const long step = ++r->step;
        const double el = trit_now_s() - t_start;
        const double tps = (double)(step - step0) * B * T / fmax(el, 1e-9);
        fprintf(r->cf,
                "{\"step\":%ld,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.4f,\"elapsed_s\":%.2f}\n",
                step, loss, lr, gnorm, el);
        if (r->pr && (step % 10 == 0 || step == o->steps || step == step0 + 1)) {
            const double eta = (double)(o->steps - step) * B * T / fmax(tps, 1e-9);
            fprintf(r->pr, "step %6ld/%ld  loss %.4f  lr %.2e  %.0f tok/s  ETA %dm%02ds\n", step,
                    o->steps, loss, lr, tps, (int)(eta / 60), (int)eta % 60);
        }
        if (train_after_step(r, err)) return -1;
    }
    return 0;
}

/* 5. final held-out loss on every chunk (what `trit ppl -c T` reports), the curve closed and
 *    plotted, the model exported. */
static int train_finish(train_run *r, trit_err *err) {
    const trit_train_opts *o = r->o;
    if (r->held) {
        long cnt = 0;
        const double hl = heldout_nll(r->m, r->pool, r->held, r->n_held, r->T, 0, r->bos, &cnt);
        fprintf(r->cf, "{\"step\":%ld,\"heldout_loss\":%.6f,\"tokens\":%ld}\n", r->step, hl, cnt);
        if (r->pr)
            fprintf(r->pr, "train: held-out loss %.6f  ppl %.4f  (%ld tokens scored, ctx %d)\n", hl,
                    exp(hl), cnt, r->T);
    }
    fclose(r->cf);
    r->cf = NULL;
    curve_svg(r->curve, r->svg);
    char name[128];
    snprintf(name, sizeof name, "trit-trained bitnet %dx%d seed %llu", r->cfg.n_layer,
             r->cfg.n_embd, (unsigned long long)o->seed);
    if (trit_train_export(r->m, r->vf, o->wtype, o->context_length, name, o->out_path, err))
        return -1;
    if (r->pr)
        fprintf(r->pr, "train: wrote %s (curve %s, plot %s)\n", o->out_path, r->curve, r->svg);
    return 0;
}

/* Everything a run holds, whichever step it stopped at. */
static void train_run_free(train_run *r) {
    if (r->cf) fclose(r->cf);
    free(r->btok);
    free(r->btgt);
    free(r->mom);
    free(r->var);
    trit_pool_free(r->pool);
    trit_train_model_free(r->m);
    free(r->train);
    free(r->held);
    trit_tok_free(r->tok);
    gguf_close(r->vf);
    free(r->vocab_path);
    free(r->ckpt);
    free(r->curve);
    free(r->svg);
}

/* `trit train`: the five steps in order, each leaving its part of r for the next; whichever
 * step fails, everything is released. */
int trit_train_run(const trit_train_opts *o, trit_err *err) {
    if (!o->train_path || !o->out_path)
        return trit_fail(err, TRIT_EINVAL, "a training text and an output path are needed");
    if (o->batch < 1 || o->seq < 8 || o->steps < 1)
        return trit_fail(err, TRIT_EINVAL, "batch >= 1, seq >= 8 and steps >= 1 are needed");
    train_run r = {.o = o, .pr = o->progress};
    r.vocab_path = o->vocab_path ? xstrdup(o->vocab_path) : with_suffix(o->out_path, ".vocab.gguf");
    r.ckpt = o->ckpt_path ? xstrdup(o->ckpt_path) : with_suffix(o->out_path, ".ckpt");
    r.curve = o->curve_path ? xstrdup(o->curve_path) : with_suffix(o->out_path, ".curve.jsonl");
    r.svg = with_suffix(r.curve, ".svg");
    const bool ok = !train_vocab(&r, err) && !train_corpus(&r, err) && !train_model(&r, err) &&
                    !train_loop(&r, err) && !train_finish(&r, err);
    train_run_free(&r);
    return ok ? 0 : -1;
}
