/* parity/ppl.c — perplexity and KL divergence with llama-perplexity's chunking, numerics and
 * base-logits file format (see ppl.h for the contract). */
#include "parity/ppl.h"
#include "reference/reference.h"

#include "client/client.h"
#include "parity/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const double trit_ppl_pct[TRIT_PPL_NPCT] = {0.999, 0.99, 0.95, 0.90, 0.10, 0.05, 0.01, 0.001};

/* ======================= base-logits file ======================= */

trit_ppl_base *trit_ppl_base_create(const char *path, int n_ctx, int n_vocab, int n_chunk,
                                    const int32_t *tokens, trit_err *err) {
    if (n_ctx < 4 || n_vocab < 1 || n_chunk < 1) {
        trit_fail(err, TRIT_EINVAL, "%s: bad base-logits shape (n_ctx %d, n_vocab %d, chunks %d)",
                  path, n_ctx, n_vocab, n_chunk);
        return NULL;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        trit_fail(err, TRIT_EIO, "%s: cannot create: %s", path, strerror(errno));
        return NULL;
    }
    int32_t hdr[3] = {n_ctx, n_vocab, n_chunk};
    size_t nt = (size_t)n_ctx * (size_t)n_chunk;
    if (fwrite(TRIT_PPL_MAGIC, 1, 8, f) != 8 || fwrite(hdr, sizeof hdr, 1, f) != 1 ||
        fwrite(tokens, sizeof(int32_t), nt, f) != nt) {
        trit_fail(err, TRIT_EIO, "%s: write failed: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    trit_ppl_base *b = xcalloc(1, sizeof *b);
    b->f = f;
    b->path = xstrdup(path);
    b->writing = true;
    b->n_ctx = n_ctx, b->n_vocab = n_vocab, b->n_chunk = n_chunk;
    return b;
}

trit_ppl_base *trit_ppl_base_open(const char *path, trit_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        trit_fail(err, TRIT_EIO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char magic[8];
    int32_t hdr[3];
    struct stat st;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, TRIT_PPL_MAGIC, 8) != 0) {
        trit_fail(err, TRIT_EFORMAT,
                  "%s: not a base-logits file (no \"_logits_\" magic at offset 0)", path);
        goto fail;
    }
    if (fread(hdr, sizeof hdr, 1, f) != 1) {
        trit_fail(err, TRIT_EFORMAT, "%s: truncated header at offset 8", path);
        goto fail;
    }
    int n_ctx = hdr[0], n_vocab = hdr[1], n_chunk = hdr[2];
    if (n_ctx < 4 || n_ctx > (1 << 22) || n_vocab < 1 || n_vocab > (1 << 24) || n_chunk < 1 ||
        n_chunk > (1 << 20)) {
        trit_fail(err, TRIT_EFORMAT,
                  "%s: implausible header at offset 8 (n_ctx %d, n_vocab %d, n_chunk %d)", path,
                  n_ctx, n_vocab, n_chunk);
        goto fail;
    }
    uint64_t want = 20 + 4ull * (uint64_t)n_ctx * (uint64_t)n_chunk +
                    2ull * (uint64_t)trit_ppl_nv(n_vocab) *
                        (uint64_t)trit_ppl_rows_per_chunk(n_ctx) * (uint64_t)n_chunk;
    if (fstat(fileno(f), &st) == 0 && (uint64_t)st.st_size != want) {
        trit_fail(err, TRIT_EFORMAT,
                  "%s: size %lld bytes, but its header (n_ctx %d, n_vocab %d, n_chunk %d) needs "
                  "%llu",
                  path, (long long)st.st_size, n_ctx, n_vocab, n_chunk, (unsigned long long)want);
        goto fail;
    }
    size_t nt = (size_t)n_ctx * (size_t)n_chunk;
    int32_t *tokens = xmalloc(nt * sizeof *tokens);
    if (fread(tokens, sizeof *tokens, nt, f) != nt) {
        free(tokens);
        trit_fail(err, TRIT_EFORMAT, "%s: truncated token list at offset 20", path);
        goto fail;
    }
    for (size_t i = 0; i < nt; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            trit_fail(err, TRIT_EFORMAT, "%s: token %zu is %d, outside the vocabulary (%d)", path,
                      i, tokens[i], n_vocab);
            free(tokens);
            goto fail;
        }
    trit_ppl_base *b = xcalloc(1, sizeof *b);
    b->f = f;
    b->path = xstrdup(path);
    b->n_ctx = n_ctx, b->n_vocab = n_vocab, b->n_chunk = n_chunk;
    b->tokens = tokens;
    return b;
fail:
    fclose(f);
    return NULL;
}

int trit_ppl_base_write_row(trit_ppl_base *b, const uint16_t *row, trit_err *err) {
    size_t nv = (size_t)trit_ppl_nv(b->n_vocab);
    if (fwrite(row, sizeof *row, nv, b->f) != nv)
        return trit_fail(err, TRIT_EIO, "%s: write failed: %s", b->path, strerror(errno));
    b->rows++;
    return 0;
}

int trit_ppl_base_read_row(trit_ppl_base *b, uint16_t *row, trit_err *err) {
    size_t nv = (size_t)trit_ppl_nv(b->n_vocab);
    if (fread(row, sizeof *row, nv, b->f) != nv)
        return trit_fail(err, TRIT_EFORMAT, "%s: truncated at log-prob row %ld", b->path, b->rows);
    b->rows++;
    return 0;
}

int trit_ppl_base_close(trit_ppl_base *b, trit_err *err) {
    if (!b) return 0;
    int rc = 0;
    if (b->writing) {
        if (fflush(b->f) != 0 || fsync(fileno(b->f)) != 0)
            rc = trit_fail(err, TRIT_EIO, "%s: flush failed: %s", b->path, strerror(errno));
    }
    if (fclose(b->f) != 0 && rc == 0)
        rc = trit_fail(err, TRIT_EIO, "%s: close failed: %s", b->path, strerror(errno));
    free(b->tokens);
    free(b->path);
    free(b);
    return rc;
}

/* ======================= numerics (as perplexity.cpp) ======================= */

double trit_ppl_quantize_row(const float *logits, int n_vocab, int32_t tok, uint16_t *row) {
    float max_logit = logits[0], min_logit = logits[0];
    for (int i = 1; i < n_vocab; i++) {
        max_logit = fmaxf(max_logit, logits[i]);
        min_logit = fminf(min_logit, logits[i]);
    }
    min_logit = fmaxf(min_logit, max_logit - 16);
    double sum_exp = 0.0;
    for (int i = 0; i < n_vocab; i++) sum_exp += expf(logits[i] - max_logit);
    const float log_sum_exp = (float)log(sum_exp);
    const float min_log_prob = min_logit - max_logit - log_sum_exp;
    const float scale = (max_logit - min_logit) / 65535.f;
    memcpy(row, &scale, sizeof scale);
    memcpy(row + 2, &min_log_prob, sizeof min_log_prob);
    uint16_t *q = row + 4;
    if (scale != 0) {
        const float inv_scale = 1 / scale;
        for (int i = 0; i < n_vocab; i++)
            q[i] = logits[i] > min_logit
                       ? (uint16_t)trit_nearest_int(inv_scale * (logits[i] - min_logit))
                       : 0;
    } else {
        memset(q, 0, (size_t)n_vocab * sizeof *q);
    }
    for (int i = n_vocab + 4; i < trit_ppl_nv(n_vocab); i++) row[i] = 0; /* padding */
    const float nll = max_logit + log_sum_exp - logits[tok];
    return nll;
}

double trit_ppl_nll(const float *logits, int n_vocab, int32_t tok) {
    float max_logit = logits[0];
    for (int i = 1; i < n_vocab; i++) max_logit = fmaxf(max_logit, logits[i]);
    double sum_exp = 0.0;
    for (int i = 0; i < n_vocab; i++) sum_exp += expf(logits[i] - max_logit);
    return -((double)(logits[tok] - max_logit) - log(sum_exp));
}

void trit_ppl_acc_free(trit_ppl_acc *a) {
    free(a->kld_vals);
    free(a->p_diff_vals);
    memset(a, 0, sizeof *a);
}

void trit_ppl_acc_nll(trit_ppl_acc *a, double nll) {
    a->nll += nll;
    a->nll2 += nll * nll;
    a->count++;
}

/* Keep one position's KLD and Δp for the percentiles and medians. */
static void acc_push_vals(trit_ppl_acc *a, double kld, double p_diff) {
    if (a->n_vals == a->cap_vals) {
        a->cap_vals = a->cap_vals ? 2 * a->cap_vals : 1024;
        a->kld_vals = xrealloc(a->kld_vals, a->cap_vals * sizeof(float));
        a->p_diff_vals = xrealloc(a->p_diff_vals, a->cap_vals * sizeof(float));
    }
    a->kld_vals[a->n_vals] = (float)kld;
    a->p_diff_vals[a->n_vals] = (float)p_diff;
    a->n_vals++;
}

void trit_ppl_acc_kld(trit_ppl_acc *a, const float *logits, int n_vocab, int32_t tok,
                      const uint16_t *base_row) {
    float max_logit = logits[0];
    int imax = 0;
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > max_logit) max_logit = logits[i], imax = i;
    double sum_exp = 0.0;
    for (int i = 0; i < n_vocab; i++) sum_exp += expf(logits[i] - max_logit);
    const float log_sum_exp = (float)log(sum_exp);
    float scale, min_log_prob;
    memcpy(&scale, base_row, sizeof scale);
    memcpy(&min_log_prob, base_row + 2, sizeof min_log_prob);
    const uint16_t *base = base_row + 4;

    const float nll = max_logit + log_sum_exp - logits[tok];
    a->nll += nll;
    a->nll2 += nll * nll;
    const float nll_base = -(scale * base[tok] + min_log_prob);
    a->sum_nll_base += nll_base;
    a->sum_nll_base2 += nll_base * nll_base;
    a->sum_nll_nll_base += nll * nll_base;

    /* KL(base || model) = sum p (log p - log q), in double. The base row holds quantized
     * log-probabilities that do not sum to exactly one (llama-perplexity's kl_divergence()
     * uses them as they are, so a token's value could go negative, -2e-5 in the demo); here
     * the base is renormalized over the entries the reference counts (log p > -16), and the
     * model side is the project's one log-softmax (trit_logsumexp). By Gibbs' inequality the
     * sum is then >= 0; only rounding can dip below, and that is clamped. */
    const double lse_model = trit_logsumexp(logits, n_vocab);
    double base_mass = 0;
    int imax_base = -1;
    float p_log_base_max = 0;
    for (int i = 0; i < n_vocab; i++) {
        const float p_log_base = scale * base[i] + min_log_prob;
        if (i == 0 || p_log_base > p_log_base_max) p_log_base_max = p_log_base, imax_base = i;
        if (p_log_base > -16.f) base_mass += exp((double)p_log_base);
    }
    const double log_base_mass = log(base_mass);
    double sum = 0;
    for (int i = 0; i < n_vocab; i++) {
        const float p_log_base = scale * base[i] + min_log_prob;
        if (!(p_log_base > -16.f)) continue;
        const double lp = (double)p_log_base - log_base_mass;
        sum += exp(lp) * (lp - ((double)logits[i] - lse_model));
    }
    if (sum < 0 && sum > -1e-9) sum = 0; /* rounding only */
    a->sum_kld += sum;
    a->sum_kld2 += sum * sum;
    a->count++;
    if (imax == imax_base) a->n_same_top++;

    const float p_base = expf(-nll_base);
    const float p = expf(-nll);
    const float p_diff = p - p_base;
    a->sum_p_diff += p_diff;
    const double p_diff2 = p_diff * p_diff;
    a->sum_p_diff2 += p_diff2;
    a->sum_p_diff4 += p_diff2 * p_diff2;
    a->max_p_diff = fmaxf(a->max_p_diff, fabsf(p_diff));

    acc_push_vals(a, sum, p_diff);
}

void trit_ppl_acc_kld_topn(trit_ppl_acc *a, const trit_pos_topn *base, const trit_pos_topn *model) {
    const double nll = -model->next_logprob, nll_base = -base->next_logprob;
    a->nll += nll;
    a->nll2 += nll * nll;
    a->sum_nll_base += nll_base;
    a->sum_nll_base2 += nll_base * nll_base;
    a->sum_nll_nll_base += nll * nll_base;
    const double kld = trit_pos_topn_kld(base, model, NULL);
    a->sum_kld += kld;
    a->sum_kld2 += kld * kld;
    a->count++;
    if (base->n_top > 0 && model->n_top > 0 && base->top_id[0] == model->top_id[0]) a->n_same_top++;
    const double p_diff = exp(-nll) - exp(-nll_base);
    a->sum_p_diff += p_diff;
    a->sum_p_diff2 += p_diff * p_diff;
    a->sum_p_diff4 += p_diff * p_diff * p_diff * p_diff;
    a->max_p_diff = fmaxf(a->max_p_diff, (float)fabs(p_diff));
    acc_push_vals(a, kld, p_diff);
}

void trit_ppl_result_init(trit_ppl_result *r) {
    memset(r, 0, sizeof *r);
    double *nanfields[] = {&r->ppl,          &r->ppl_err,    &r->ppl_base,     &r->ppl_base_err,
                           &r->cor,          &r->ln_ratio,   &r->ln_ratio_err, &r->ppl_diff,
                           &r->ppl_diff_err, &r->kld_mean,   &r->kld_err,      &r->kld_max,
                           &r->kld_min,      &r->kld_median, &r->dp_mean,      &r->dp_err,
                           &r->dp_max,       &r->dp_min,     &r->dp_median,    &r->rms_dp,
                           &r->rms_dp_err,   &r->same_top,   &r->same_top_err};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(nanfields); i++) *nanfields[i] = NAN;
    for (int i = 0; i < TRIT_PPL_NPCT; i++) r->kld_pct[i] = NAN;
}

static void mean_unc(double sum, double sum2, long count, double *mean, double *unc) {
    if (count < 1) {
        *mean = *unc = 0;
        return;
    }
    double f = sum / count, df = sum2 / count - f * f;
    *mean = f;
    *unc = df > 0 && count > 10 ? sqrt(df / (count - 1)) : 0.;
}

static double covariance(double suma, double sumb, double sumab, long count) {
    if (count < 10) return 0.0;
    double var = sumab / count - (suma / count) * (sumb / count);
    return var / (count - 1);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const float *v, size_t n, float fraction) {
    if (fraction <= 0) return v[0];
    if (fraction >= 1) return v[n - 1];
    float p = fraction * (float)(n - 1);
    size_t ip = (size_t)p;
    p -= (float)ip;
    return (1 - p) * v[ip] + p * v[TRIT_MIN(ip + 1, n - 1)];
}

static double median(const float *v, size_t n) {
    return n % 2 == 0 ? 0.5f * (v[n / 2] + v[n / 2 - 1]) : v[n / 2];
}

void trit_ppl_acc_result(const trit_ppl_acc *a, trit_ppl_result *r) {
    r->count = a->count;
    if (a->count < 1) return;
    if (!a->n_vals) { /* plain mode: the reference's final estimate */
        double nll = a->nll / a->count, nll2 = a->nll2 / a->count - nll * nll;
        r->ppl = exp(nll);
        r->ppl_err = nll2 > 0 && a->count > 1 ? sqrt(nll2 / (a->count - 1)) * r->ppl : NAN;
        r->has_kld = false;
        return;
    }
    r->has_kld = true;
    double lp, lpu, lb, lbu;
    mean_unc(a->nll, a->nll2, a->count, &lp, &lpu);
    r->ppl = exp(lp);
    r->ppl_err = r->ppl * lpu;
    mean_unc(a->sum_nll_base, a->sum_nll_base2, a->count, &lb, &lbu);
    r->ppl_base = exp(lb);
    r->ppl_base_err = r->ppl_base * lbu;
    double cov = covariance(a->nll, a->sum_nll_base, a->sum_nll_nll_base, a->count);
    r->cor = lpu > 0 && lbu > 0 ? cov / (lpu * lbu) : NAN;
    r->ln_ratio = lp - lb;
    r->ln_ratio_err = sqrt(fmax(0, lpu * lpu + lbu * lbu - 2.0 * cov));
    double ppl_cov = r->ppl * r->ppl_base * cov;
    r->ppl_diff = r->ppl - r->ppl_base;
    r->ppl_diff_err =
        sqrt(fmax(0, r->ppl_err * r->ppl_err + r->ppl_base_err * r->ppl_base_err - 2.0 * ppl_cov));
    mean_unc(a->sum_kld, a->sum_kld2, a->count, &r->kld_mean, &r->kld_err);
    mean_unc(a->sum_p_diff, a->sum_p_diff2, a->count, &r->dp_mean, &r->dp_err);
    double mse, mse_unc;
    mean_unc(a->sum_p_diff2, a->sum_p_diff4, a->count, &mse, &mse_unc);
    r->rms_dp = sqrt(mse);
    r->rms_dp_err = r->rms_dp > 0 ? 0.5 / r->rms_dp * mse_unc : 0;
    r->same_top = (double)a->n_same_top / a->count;
    r->same_top_err = a->count > 1 ? sqrt(r->same_top * (1.0 - r->same_top) / (a->count - 1)) : NAN;

    size_t n = a->n_vals;
    float *k = xmalloc(n * sizeof *k), *d = xmalloc(n * sizeof *d);
    memcpy(k, a->kld_vals, n * sizeof *k);
    memcpy(d, a->p_diff_vals, n * sizeof *d);
    qsort(k, n, sizeof *k, cmp_float);
    qsort(d, n, sizeof *d, cmp_float);
    r->kld_max = k[n - 1];
    r->kld_min = k[0];
    r->kld_median = median(k, n);
    for (int i = 0; i < TRIT_PPL_NPCT; i++)
        r->kld_pct[i] = percentile(k, n, (float)trit_ppl_pct[i]);
    r->dp_max = d[n - 1];
    r->dp_min = d[0];
    r->dp_median = median(d, n);
    free(k);
    free(d);
}

/* ======================= printing / JSON ======================= */

const char *trit_ppl_kld_support(const trit_ppl_result *r) {
    return r->kld_topn > 0 ? "top-N: the ids in both sides' top-N plus one bucket for the "
                             "rest (a lower bound of the full-vocabulary KLD)"
                           : "full vocabulary";
}

void trit_ppl_print(FILE *out, const trit_ppl_result *r) {
    fprintf(out, "source: %s\n", r->source);
    fprintf(out, "chunks: %d x %d tokens (%ld text tokens), %ld positions scored, %.1f s\n",
            r->n_chunk, r->n_ctx, r->n_tokens, r->count, r->seconds);
    if (!r->has_kld) {
        fprintf(out, "Final estimate: PPL = %.4f +/- %.5f\n", r->ppl, r->ppl_err);
        return;
    }
    fprintf(out, "====== Perplexity statistics ======\n");
    fprintf(out, "Mean PPL(Q)                   : %10.6f ± %10.6f\n", r->ppl, r->ppl_err);
    fprintf(out, "Mean PPL(base)                : %10.6f ± %10.6f\n", r->ppl_base, r->ppl_base_err);
    fprintf(out, "Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * r->cor);
    fprintf(out, "Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", r->ln_ratio, r->ln_ratio_err);
    fprintf(out, "Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", exp(r->ln_ratio),
            exp(r->ln_ratio) * r->ln_ratio_err);
    fprintf(out, "Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", r->ppl_diff, r->ppl_diff_err);
    if (r->kld_topn > 0)
        fprintf(out,
                "\n====== KL divergence statistics (over the top-%d support: shared top-%d ids + "
                "one bucket for the rest, a lower bound of the full KLD) ======\n",
                r->kld_topn, r->kld_topn);
    else
        fprintf(out, "\n====== KL divergence statistics ======\n");
    fprintf(out, "Mean    KLD: %10.6f ± %10.6f\n", r->kld_mean, r->kld_err);
    fprintf(out, "Maximum KLD: %10.6f\n", r->kld_max);
    static const char *lab[TRIT_PPL_NPCT] = {"99.9%", "99.0%", "95.0%", "90.0%",
                                             "10.0%", " 5.0%", " 1.0%", " 0.1%"};
    for (int i = 0; i < 4; i++) fprintf(out, "%-7s KLD: %10.6f\n", lab[i], r->kld_pct[i]);
    fprintf(out, "Median  KLD: %10.6f\n", r->kld_median);
    for (int i = 4; i < TRIT_PPL_NPCT; i++)
        fprintf(out, "%-7s KLD: %10.6f\n", lab[i], r->kld_pct[i]);
    fprintf(out, "Minimum KLD: %10.6f\n", r->kld_min);
    fprintf(out, "\n====== Token probability statistics ======\n");
    fprintf(out, "Mean    Δp: %6.3f ± %5.3f %%\n", 100.0 * r->dp_mean, 100.0 * r->dp_err);
    fprintf(out, "Maximum Δp: %6.3f%%\n", 100.0 * r->dp_max);
    fprintf(out, "Median  Δp: %6.3f%%\n", 100.0 * r->dp_median);
    fprintf(out, "Minimum Δp: %6.3f%%\n", 100.0 * r->dp_min);
    fprintf(out, "RMS Δp    : %6.3f ± %5.3f %%\n", 100.0 * r->rms_dp, 100.0 * r->rms_dp_err);
    fprintf(out, "Same top p: %6.3f ± %5.3f %%\n", 100.0 * r->same_top, 100.0 * r->same_top_err);
}

json_t *trit_ppl_result_json(const trit_ppl_result *r) {
    json_t *o = json_object();
    json_object_set_new(o, "source", json_string(r->source));
    json_object_set_new(o, "ctx", json_integer(r->n_ctx));
    json_object_set_new(o, "chunks", json_integer(r->n_chunk));
    json_object_set_new(o, "text_tokens", json_integer(r->n_tokens));
    json_object_set_new(o, "count", json_integer(r->count));
    json_object_set_new(o, "ppl", trit_json_num(r->ppl));
    json_object_set_new(o, "ppl_err", trit_json_num(r->ppl_err));
    json_object_set_new(o, "seconds", trit_json_num(r->seconds));
    if (r->score_mode[0]) json_object_set_new(o, "score_mode", json_string(r->score_mode));
    if (r->has_kld) {
        json_t *k = json_object();
        json_object_set_new(k, "kld_topn",
                            r->kld_topn > 0 ? json_integer(r->kld_topn) : json_null());
        json_object_set_new(k, "kld_support", json_string(trit_ppl_kld_support(r)));
        json_object_set_new(k, "mean", trit_json_num(r->kld_mean));
        json_object_set_new(k, "err", trit_json_num(r->kld_err));
        json_object_set_new(k, "max", trit_json_num(r->kld_max));
        static const char *key[TRIT_PPL_NPCT] = {"p99.9", "p99", "p95", "p90",
                                                 "p10",   "p5",  "p1",  "p0.1"};
        for (int i = 0; i < TRIT_PPL_NPCT; i++)
            json_object_set_new(k, key[i], trit_json_num(r->kld_pct[i]));
        json_object_set_new(k, "median", trit_json_num(r->kld_median));
        json_object_set_new(k, "min", trit_json_num(r->kld_min));
        json_object_set_new(k, "ppl_base", trit_json_num(r->ppl_base));
        json_object_set_new(k, "ppl_base_err", trit_json_num(r->ppl_base_err));
        json_object_set_new(k, "ln_ppl_ratio", trit_json_num(r->ln_ratio));
        json_object_set_new(k, "ln_ppl_ratio_err", trit_json_num(r->ln_ratio_err));
        json_object_set_new(k, "dp_mean", trit_json_num(r->dp_mean));
        json_object_set_new(k, "dp_max", trit_json_num(r->dp_max));
        json_object_set_new(k, "dp_min", trit_json_num(r->dp_min));
        json_object_set_new(k, "rms_dp", trit_json_num(r->rms_dp));
        json_object_set_new(k, "rms_dp_err", trit_json_num(r->rms_dp_err));
        json_object_set_new(k, "same_top", trit_json_num(r->same_top));
        json_object_set_new(k, "same_top_err", trit_json_num(r->same_top_err));
        json_object_set_new(o, "kld", k);
    }
    return o;
}

/* ======================= runs ======================= */

void trit_ppl_opts_default(trit_ppl_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_ctx = 512;
    o->timeout_s = 300;
}

int trit_ppl_read_text(const char *path, trit_buf *out, trit_err *err) {
    if (trit_read_file(path, out, err)) return -1;
    if (out->len && out->p[out->len - 1] == '\n') out->p[--out->len] = 0;
    return 0;
}

/* Chunk plan shared by every source. */
static int plan_chunks(long n_tokens, int n_ctx, int n_chunks_req, int *n_chunk, trit_err *err) {
    if (n_ctx < 4) return trit_fail(err, TRIT_EINVAL, "--ctx %d: must be at least 4", n_ctx);
    if (n_tokens < 2L * n_ctx)
        return trit_fail(err, TRIT_EINVAL,
                         "the text tokenizes to only %ld tokens; a context of %d needs at least %d",
                         n_tokens, n_ctx, 2 * n_ctx);
    long max = n_tokens / n_ctx;
    *n_chunk = (int)(n_chunks_req > 0 ? TRIT_MIN((long)n_chunks_req, max) : max);
    return 0;
}

typedef struct {
    trit_ppl_acc *acc;
    const int32_t *chunk; /* original tokens of the chunk (targets) */
    int n_ctx, first;
    trit_ppl_base *out, *in;
    uint16_t *row;
    trit_err *err;
} chunk_ctx;

static int on_logits(void *ud, size_t pos, const float *logits, int n_vocab) {
    chunk_ctx *c = ud;
    if ((int)pos < c->first || (int)pos >= c->n_ctx - 1) return 0;
    int32_t tok = c->chunk[pos + 1];
    if (tok < 0 || tok >= n_vocab)
        return trit_fail(c->err, TRIT_EFORMAT, "token %d outside the model's vocabulary (%d)", tok,
                         n_vocab);
    if (c->in) {
        if (trit_ppl_base_read_row(c->in, c->row, c->err)) return -1;
        trit_ppl_acc_kld(c->acc, logits, n_vocab, tok, c->row);
    } else if (c->out) {
        trit_ppl_acc_nll(c->acc, trit_ppl_quantize_row(logits, n_vocab, tok, c->row));
        if (trit_ppl_base_write_row(c->out, c->row, c->err)) return -1;
    } else {
        trit_ppl_acc_nll(c->acc, trit_ppl_nll(logits, n_vocab, tok));
    }
    return 0;
}

/* BOS id the vocabulary adds (tokenizing "" with add_special), -1 when none. */
static int find_bos(trit_backend *b, const int32_t *text_tokens, size_t n, int32_t *bos,
                    trit_err *err) {
    int32_t *ids = NULL;
    size_t ni = 0;
    if (trit_backend_tokenize(b, "", true, false, &ids, &ni, err)) return -1;
    *bos = -1;
    int rc = 0;
    if (ni == 1 && n > 0 && text_tokens[0] == ids[0])
        *bos = ids[0];
    else if (ni > 0)
        rc = trit_fail(err, TRIT_EUNSUP,
                       "the vocabulary adds an end-of-sequence token; perplexity (like "
                       "llama-perplexity) needs a BOS-only vocabulary");
    free(ids);
    return rc;
}

static void progress(const trit_ppl_opts *o, int i, const trit_ppl_acc *a) {
    if (!o->progress || a->count < 1) return;
    fprintf(stderr, "[%d]%.4f,", i + 1, exp(a->nll / a->count));
    fflush(stderr);
}

/* The tokens to score and the chunk plan: from the base file being read (its tokens, its
 * n_ctx), or the text tokenized by the backend. */
static int ppl_tokens(trit_backend *b, const char *text, const trit_ppl_opts *o, trit_ppl_base *in,
                      int32_t **tokens, size_t *n_tokens, int *n_ctx, int *n_chunk, trit_err *err) {
    *n_ctx = o->n_ctx;
    if (!in) {
        if (trit_backend_tokenize(b, text, true, false, tokens, n_tokens, err)) return -1;
        return plan_chunks((long)*n_tokens, *n_ctx, o->n_chunks, n_chunk, err);
    }
    *n_ctx = in->n_ctx;
    *n_chunk = o->n_chunks > 0 ? TRIT_MIN(o->n_chunks, in->n_chunk) : in->n_chunk;
    *n_tokens = (size_t)in->n_ctx * (size_t)in->n_chunk;
    *tokens = xmalloc(*n_tokens * sizeof **tokens);
    memcpy(*tokens, in->tokens, *n_tokens * sizeof **tokens);
    return 0;
}

/* With a base file (read or written): the model's vocabulary size (from a one-token
 * evaluation when the backend does not say), checked against the file being read; the file
 * being written created; *row sized for one position. */
static int ppl_base_rows(trit_backend *b, const trit_ppl_opts *o, trit_ppl_base *in, int32_t first,
                         const int32_t *tokens, int n_ctx, int n_chunk, trit_ppl_base **out,
                         uint16_t **row, trit_err *err) {
    const trit_backend_info *bi = trit_backend_describe(b);
    int nv_model = bi->n_vocab;
    if (nv_model <= 0) {
        float *lg = NULL;
        if (trit_backend_eval(b, &first, 1, &lg, &nv_model, err)) return -1;
        free(lg);
    }
    if (in && in->n_vocab != nv_model)
        return trit_fail(err, TRIT_EFORMAT,
                         "%s: base logits have %d vocabulary entries, the model %d (a different "
                         "vocabulary)",
                         o->base_in, in->n_vocab, nv_model);
    if (o->base_out &&
        !(*out = trit_ppl_base_create(o->base_out, n_ctx, nv_model, n_chunk, tokens, err)))
        return -1;
    *row = xmalloc((size_t)trit_ppl_nv(nv_model) * sizeof **row);
    return 0;
}

void trit_ppl_topn_free(trit_ppl_topn *t) {
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* Top-N mode's per-chunk state: the accumulator, the entries to keep or compare against. */
typedef struct {
    trit_ppl_acc *acc;
    const trit_ppl_opts *o;
    long k;       /* scored positions so far (index into topn_base / topn_keep) */
    int topn_min; /* smallest n_top seen on either side (the KLD's N) */
    int chunk, n_chunk;
    double t_last;
} topn_run;

/* Progress of one chunk's requests over HTTP (one request per position: a line rewritten at
 * most once a second; the chunk's end is reported by topn_chunk_done). */
static void topn_progress(void *ud, size_t done, size_t total) {
    topn_run *t = ud;
    double now = trit_now_s();
    if (done == total || now - t->t_last < 1.0) return;
    t->t_last = now;
    fprintf(stderr, "  chunk %d/%d: %zu/%zu positions scored\r", t->chunk + 1, t->n_chunk, done,
            total);
    fflush(stderr);
}

/* One line per chunk in top-N mode: the running PPL, positions, time. */
static void topn_chunk_done(const trit_ppl_opts *o, const topn_run *t, double t0) {
    if (!o->progress || t->acc->count < 1) return;
    fprintf(stderr, "  chunk %d/%d: running PPL %.4f over %ld positions, %.1f s          \n",
            t->chunk + 1, t->n_chunk, exp(t->acc->nll / t->acc->count), t->acc->count,
            trit_now_s() - t0);
}

/* One chunk in top-N mode: trit_backend_score over positions first .. n_ctx-1 (the last has
 * no next token and is not scored); each scored position's next token must be the chunk's,
 * and, against a base, the base's (the same text tokenized the same way). */
static int score_chunk(trit_backend *b, const int32_t *ids, const int32_t *chunk, int n_ctx,
                       topn_run *t, trit_err *err) {
    const int first = n_ctx / 2;
    trit_pos_topn *pos = NULL;
    if (trit_backend_score(b, ids, (size_t)n_ctx, (size_t)first, t->o->top_n, &pos, err)) return -1;
    int rc = 0;
    for (int p = first; p < n_ctx - 1 && rc == 0; p++) {
        const trit_pos_topn *e = &pos[p - first];
        const trit_ppl_topn *base = t->o->topn_base;
        if (e->next_id != chunk[p + 1] || !(e->next_logprob <= 0)) {
            rc = trit_fail(err, TRIT_EFORMAT,
                           "position %d: scored token %d (log-probability %g), the text's is %d", p,
                           e->next_id, e->next_logprob, chunk[p + 1]);
        } else if (base && t->k >= base->n) {
            rc = trit_fail(err, TRIT_EFORMAT,
                           "position %d: gen-1 scored only %ld positions (different text or "
                           "tokenization)",
                           p, base->n);
        } else if (base && base->v[t->k].next_id != e->next_id) {
            rc = trit_fail(err, TRIT_EFORMAT,
                           "position %d: the text's next token is %d here, %d on gen-1 (the two "
                           "sides tokenize the text differently: a different vocabulary?)",
                           p, e->next_id, base->v[t->k].next_id);
        } else if (base) {
            trit_ppl_acc_kld_topn(t->acc, &base->v[t->k], e);
            t->topn_min = TRIT_MIN(t->topn_min, TRIT_MIN(e->n_top, base->v[t->k].n_top));
        } else {
            trit_ppl_acc_nll(t->acc, -e->next_logprob);
        }
        if (rc == 0 && t->o->topn_keep) {
            trit_ppl_topn *keep = t->o->topn_keep;
            if (keep->n == keep->cap) {
                keep->cap = keep->cap ? 2 * keep->cap : 1024;
                keep->v = xrealloc(keep->v, (size_t)keep->cap * sizeof *keep->v);
            }
            keep->v[keep->n++] = *e;
        }
        t->k++;
    }
    free(pos);
    return rc;
}

/* A base-logits file needs every logit (a source that evaluates, not top-N mode) and is
 * either read or written: the options this run cannot honour, refused before any work. */
static int check_base_mode(const trit_backend_info *bi, const trit_ppl_opts *o, bool topn,
                           trit_err *err) {
    if (topn && (o->base_in || o->base_out))
        return trit_fail(err, TRIT_EUNAVAIL,
                         "%s: a base-logits file holds every logit of every position; this "
                         "source gives top-N log-probabilities (prompt-token logprobs) only: use "
                         "compare mode (--gen1/--gen2) for KLD over the top-N support",
                         bi->spec);
    if (o->base_in && o->base_out)
        return trit_fail(err, TRIT_EINVAL,
                         "a base-logits file is either read or written, not both");
    return 0;
}

/* The finished run's figures into r: the accumulated PPL/KLD, the top-N support the KLD was
 * taken over, how positions were scored, and the time since t0. */
static void fill_result(trit_backend *b, const trit_backend_info *bi, const trit_ppl_acc *acc,
                        bool topn, const topn_run *tr, double t0, trit_ppl_result *r) {
    r->n_vocab = bi->n_vocab;
    trit_ppl_acc_result(acc, r);
    if (r->has_kld && topn) r->kld_topn = tr->topn_min;
    snprintf(r->score_mode, sizeof r->score_mode, "%s",
             topn ? trit_backend_score_mode(b) : "logits");
    r->seconds = trit_now_s() - t0;
}

int trit_ppl_run_backend(trit_backend *b, const char *text, size_t len, const trit_ppl_opts *o,
                         trit_ppl_result *r, trit_err *err) {
    const trit_backend_info *bi = trit_backend_describe(b);
    trit_ppl_result_init(r);
    snprintf(r->source, sizeof r->source, "%s", bi->spec);
    const bool topn = !bi->can_eval || o->top_n > 0;
    if (check_base_mode(bi, o, topn, err)) return -1;
    double t0 = trit_now_s();
    int32_t *tokens = NULL, *ids = NULL, bos;
    size_t n_tokens = 0;
    trit_ppl_base *in = NULL, *out = NULL;
    trit_ppl_acc acc = {0};
    uint16_t *row = NULL;
    int rc = -1, n_ctx, n_chunk = 0;
    topn_run tr = {.acc = &acc, .o = o, .topn_min = TRIT_BACKEND_TOPN_MAX};
    /* tokens, chunk plan, BOS, and the base files */
    if (o->base_in && !(in = trit_ppl_base_open(o->base_in, err))) goto done;
    if (ppl_tokens(b, text, o, in, &tokens, &n_tokens, &n_ctx, &n_chunk, err)) goto done;
    if (find_bos(b, tokens, n_tokens, &bos, err)) goto done;
    r->n_tokens = (long)n_tokens;
    r->n_ctx = n_ctx;
    r->n_chunk = n_chunk;
    if ((in || o->base_out) && ppl_base_rows(b, o, in, bos >= 0 ? bos : tokens[0], tokens, n_ctx,
                                             n_chunk, &out, &row, err))
        goto done;
    tr.n_chunk = n_chunk;
    if (topn && o->progress) trit_backend_set_progress(b, topn_progress, &tr);
    /* each chunk from an empty cache, BOS first; only its second half is scored */
    ids = xmalloc((size_t)n_ctx * sizeof *ids);
    for (int i = 0; i < n_chunk; i++) {
        const int32_t *chunk = tokens + (size_t)i * (size_t)n_ctx;
        memcpy(ids, chunk, (size_t)n_ctx * sizeof *ids);
        if (bos >= 0) ids[0] = bos;
        chunk_ctx c = {&acc, chunk, n_ctx, n_ctx / 2, out, in, row, err};
        tr.chunk = i;
        int crc = topn ? score_chunk(b, ids, chunk, n_ctx, &tr, err)
                       : trit_backend_eval_each(b, ids, (size_t)n_ctx, on_logits, &c, err);
        if (crc) {
            trit_err_prefix(err, "chunk %d", i + 1);
            goto done;
        }
        if (topn)
            topn_chunk_done(o, &tr, t0);
        else
            progress(o, i, &acc);
    }
    if (o->progress && !topn) fprintf(stderr, "\n");
    if (o->topn_base && tr.k != o->topn_base->n) {
        trit_fail(err, TRIT_EFORMAT, "gen-1 scored %ld positions, this side %ld", o->topn_base->n,
                  tr.k);
        goto done;
    }
    /* the written base file is complete only once closed (fsync'd) */
    if (out) {
        int crc = trit_ppl_base_close(out, err);
        out = NULL;
        if (crc) goto done;
    }
    fill_result(b, bi, &acc, topn, &tr, t0, r);
    rc = 0;
done:
    trit_backend_set_progress(b, NULL, NULL);
    if (out) trit_ppl_base_close(out, NULL);
    if (in) trit_ppl_base_close(in, NULL);
    trit_ppl_acc_free(&acc);
    free(ids);
    free(row);
    free(tokens);
    return rc;
}

int trit_ppl_run_url(const char *url, const char *text, size_t len, const trit_ppl_opts *o,
                     trit_ppl_result *r, trit_err *err) {
    trit_ppl_result_init(r);
    snprintf(r->source, sizeof r->source, "%s", url);
    trit_backend_opts bo = trit_backend_default_opts();
    bo.api_key = o->api_key;
    bo.timeout_s = o->timeout_s;
    trit_backend *b = trit_backend_open(url, &bo, err);
    if (!b) return -1;
    int rc = trit_ppl_run_backend(b, text, len, o, r, err);
    trit_backend_close(b);
    return rc;
}

/* ---- the reference binary ---- */

/* Last occurrence of label in text; returns the text after it or NULL. */
static const char *after_last(const char *text, const char *label) {
    const char *p = text, *last = NULL;
    while ((p = strstr(p, label))) last = p++;
    return last ? last + strlen(label) : NULL;
}

static void scan2(const char *text, const char *label, double *a, double *b) {
    const char *p = after_last(text, label);
    double x, y;
    if (!p) return;
    int n = sscanf(p, " : %lf ± %lf", &x, &y);
    if (n < 1) n = sscanf(p, " %lf ± %lf", &x, &y);
    if (n >= 1) *a = x;
    if (n >= 2 && b) *b = y;
}

int trit_ppl_parse_reference_output(const char *text, trit_ppl_result *r, trit_err *err) {
    const char *p;
    if ((p = after_last(text, "over ")) && strstr(p, "chunks, n_ctx="))
        sscanf(p, "%d chunks, n_ctx=%d", &r->n_chunk, &r->n_ctx);
    if ((p = after_last(text, "Final estimate: PPL = "))) {
        if (sscanf(p, "%lf +/- %lf", &r->ppl, &r->ppl_err) < 1)
            return trit_fail(err, TRIT_EFORMAT, "llama-perplexity: unreadable final estimate");
        r->has_kld = false;
    } else if (after_last(text, "Mean PPL(Q)")) {
        r->has_kld = true;
        scan2(text, "Mean PPL(Q)                   ", &r->ppl, &r->ppl_err);
        scan2(text, "Mean PPL(base)                ", &r->ppl_base, &r->ppl_base_err);
        scan2(text, "Mean ln(PPL(Q)/PPL(base))     ", &r->ln_ratio, &r->ln_ratio_err);
        scan2(text, "Mean PPL(Q)-PPL(base)         ", &r->ppl_diff, &r->ppl_diff_err);
        if ((p = after_last(text, "Cor(ln(PPL(Q)), ln(PPL(base))):")) && sscanf(p, "%lf", &r->cor))
            r->cor /= 100;
        scan2(text, "Mean    KLD:", &r->kld_mean, &r->kld_err);
        scan2(text, "Maximum KLD:", &r->kld_max, NULL);
        scan2(text, "Median  KLD:", &r->kld_median, NULL);
        scan2(text, "Minimum KLD:", &r->kld_min, NULL);
        static const char *lab[TRIT_PPL_NPCT] = {
            "99.9%   KLD:", "99.0%   KLD:", "95.0%   KLD:", "90.0%   KLD:",
            "10.0%   KLD:", " 5.0%   KLD:", " 1.0%   KLD:", " 0.1%   KLD:"};
        for (int i = 0; i < TRIT_PPL_NPCT; i++) scan2(text, lab[i], &r->kld_pct[i], NULL);
        double pct[2] = {NAN, NAN};
        scan2(text, "Mean    Δp:", &pct[0], &pct[1]);
        r->dp_mean = pct[0] / 100, r->dp_err = pct[1] / 100;
        scan2(text, "RMS Δp    :", &pct[0], &pct[1]);
        r->rms_dp = pct[0] / 100, r->rms_dp_err = pct[1] / 100;
        scan2(text, "Same top p:", &pct[0], &pct[1]);
        r->same_top = pct[0] / 100, r->same_top_err = pct[1] / 100;
        scan2(text, "Maximum Δp:", &pct[0], NULL);
        r->dp_max = pct[0] / 100;
        scan2(text, "Minimum Δp:", &pct[0], NULL);
        r->dp_min = pct[0] / 100;
        scan2(text, "Median  Δp:", &pct[0], NULL);
        r->dp_median = pct[0] / 100;
        if (isnan(r->ppl))
            return trit_fail(err, TRIT_EFORMAT, "llama-perplexity: unreadable KLD statistics");
    } else {
        const char *e = after_last(text, "you need at least");
        if (e)
            return trit_fail(err, TRIT_EINVAL,
                             "llama-perplexity: the text is too short: you need at least%.*s",
                             (int)strcspn(e, "\n"), e);
        return trit_fail(err, TRIT_EFORMAT,
                         "llama-perplexity printed no final estimate (KLD statistics need at least "
                         "100 scored positions)");
    }
    if (r->n_ctx > 0 && r->n_chunk > 0)
        r->count = (long)r->n_chunk * trit_ppl_rows_per_chunk(r->n_ctx);
    return 0;
}

int trit_ppl_run_reference(const char *model, const trit_ppl_opts *o, trit_ppl_result *r,
                           trit_err *err) {
    trit_ppl_result_init(r);
    snprintf(r->source, sizeof r->source, "llama-perplexity:%s", model);
    char *bin = trit_ref_path("llama-perplexity");
    if (!bin)
        return trit_fail(err, TRIT_ENOTFOUND,
                         "llama-perplexity not found under %s/build/bin (run scripts/setup)",
                         trit_ref_dir());
    int n_ctx = o->n_ctx;
    if (o->base_in) { /* the reference takes n_ctx from the file but needs -c at least that */
        trit_ppl_base *b = trit_ppl_base_open(o->base_in, err);
        if (!b) {
            free(bin);
            return -1;
        }
        n_ctx = b->n_ctx;
        trit_ppl_base_close(b, NULL);
    }
    char ctx_s[16], chunks_s[16], thr_s[16];
    snprintf(ctx_s, sizeof ctx_s, "%d", n_ctx);
    snprintf(chunks_s, sizeof chunks_s, "%d", o->n_chunks);
    snprintf(thr_s, sizeof thr_s, "%d", o->n_threads);
    const char *argv[24];
    int ac = 0;
    argv[ac++] = bin;
    argv[ac++] = "-m", argv[ac++] = model;
    argv[ac++] = "-f",
    argv[ac++] = o->text_path ? o->text_path : "/usr/share/common-licenses/GPL-3";
    argv[ac++] = "-c", argv[ac++] = ctx_s;
    if (o->n_chunks > 0) argv[ac++] = "--chunks", argv[ac++] = chunks_s;
    if (o->n_threads > 0) argv[ac++] = "-t", argv[ac++] = thr_s;
    if (o->base_in)
        argv[ac++] = "--kl-divergence-base", argv[ac++] = o->base_in,
        argv[ac++] = "--kl-divergence";
    else if (o->base_out)
        argv[ac++] = "--kl-divergence-base", argv[ac++] = o->base_out;
    argv[ac] = NULL;

    char logpath[] = "/tmp/trit-ppl-ref-XXXXXX";
    int fd = mkstemp(logpath);
    if (fd < 0) {
        free(bin);
        return trit_fail(err, TRIT_EIO, "cannot create a temporary file: %s", strerror(errno));
    }
    double t0 = trit_now_s();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fd);
    int status = 0, rc = -1;
    if (pid < 0) {
        trit_fail(err, TRIT_EIO, "fork failed: %s", strerror(errno));
    } else {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        trit_buf log = {0};
        if (trit_read_file(logpath, &log, err) == 0) {
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                const char *tail = log.len > 600 ? log.p + log.len - 600 : log.p;
                trit_fail(err, TRIT_EIO, "llama-perplexity failed (status %d): ...%s",
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1, tail);
            } else if (trit_ppl_parse_reference_output(log.p, r, err) == 0) {
                rc = 0;
            }
        }
        trit_buf_free(&log);
    }
    unlink(logpath);
    free(bin);
    r->seconds = trit_now_s() - t0;
    return rc;
}
