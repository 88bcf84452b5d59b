/* parity/trace.c — trace files (JSON) and the trace diff. A diff refuses to compare stats
 * whose element counts differ: all-tokens vs last-token sampling is the classic false alarm.
 * The contract is trace.h. */
#include "parity/trace.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- ordering: inputs (layer -1, "inp*") first, then layers 0..L-1, then outputs ---- */
static int layer_key(const trit_trace_stat *s) {
    if (s->layer >= 0) return s->layer;
    return !strncmp(s->name, "inp", 3) ? -1 : 1 << 30;
}

static int cmp_stat(const void *x, const void *y) {
    const trit_trace_stat *a = x, *b = y;
    int ka = layer_key(a), kb = layer_key(b);
    if (ka != kb) return ka < kb ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

void trit_trace_sort(trit_trace_stat *st, size_t n) {
    qsort(st, n, sizeof *st, cmp_stat);
}

double trit_nmse(const float *a, const float *b, size_t n) {
    double se = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        se += d * d;
        ss += (double)a[i] * a[i];
    }
    if (ss == 0) return n ? se / (double)n : 0;
    return se / ss;
}

/* ---- JSON ---- */
static const char b64c[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const void *data, size_t n) {
    const uint8_t *p = data;
    char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *o++ = b64c[v >> 18 & 63];
        *o++ = b64c[v >> 12 & 63];
        *o++ = i + 1 < n ? b64c[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? b64c[v & 63] : '=';
    }
    *o = 0;
    return out;
}

static int b64_val(char c) {
    const char *p = c ? strchr(b64c, c) : NULL;
    return p ? (int)(p - b64c) : -1;
}

static int b64_decode(const char *s, size_t len, uint8_t *out, size_t want) {
    if (len % 4) return -1;
    size_t k = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++) v[j] = s[i + j] == '=' ? 0 : b64_val(s[i + j]);
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0) return -1;
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | v[3];
        uint8_t bytes[3] = {x >> 16 & 255, x >> 8 & 255, x & 255};
        int nb = s[i + 2] == '=' ? 1 : s[i + 3] == '=' ? 2 : 3;
        for (int j = 0; j < nb; j++) {
            if (k >= want) return -1;
            out[k++] = bytes[j];
        }
    }
    return k == want ? 0 : -1;
}

json_t *trit_trace_to_json(const trit_backend_info *info, const char *prompt, size_t n_tokens,
                           bool last_token, const trit_trace_stat *st, size_t n, bool values) {
    char psha[65];
    trit_sha256_hex(prompt, strlen(prompt), psha);
    json_t *pts = json_array();
    for (size_t i = 0; i < n; i++) {
        const trit_trace_stat *s = &st[i];
        char hash[17];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)s->hash);
        json_t *p = json_pack("{s:s, s:i, s:i, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:I, s:I, "
                              "s:s}",
                              "name", s->name, "layer", s->layer, "order", s->order, "ne0",
                              (json_int_t)s->ne0, "rows", (json_int_t)s->rows, "count",
                              (json_int_t)s->count, "mean", s->mean, "std", s->std, "min", s->min,
                              "max", s->max, "nan", (json_int_t)s->nan, "inf", (json_int_t)s->inf,
                              "zero", (json_int_t)s->zero, "hash", hash);
        if (values && s->data) {
            char *b = b64_encode(s->data, (size_t)s->count * sizeof(float));
            json_object_set_new(p, "values_f32_b64", json_string(b));
            free(b);
        }
        json_array_append_new(pts, p);
    }
    char ts[32];
    trit_iso8601(trit_wall_s(), ts);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:b, s:o}", "tool", "trit trace", "time", ts,
        "backend", info->spec, "version", info->version, "model_sha256", info->model_sha256,
        "prompt", prompt, "prompt_sha256", psha, "n_tokens", (json_int_t)n_tokens, "sampling",
        last_token ? "last-token" : "all-tokens", "last_token", last_token, "points", pts);
}

int trit_trace_from_json(json_t *j, trit_trace_file *f, trit_err *err) {
    memset(f, 0, sizeof *f);
    json_t *pts = json_object_get(j, "points");
    json_t *lt = json_object_get(j, "last_token");
    if (!json_is_array(pts) || !json_is_boolean(lt))
        return trit_fail(err, TRIT_EFORMAT,
                         "not a trit trace file (needs \"points\" array and \"last_token\")");
    f->last_token = json_is_true(lt);
    const char *s;
    if ((s = json_string_value(json_object_get(j, "backend"))))
        snprintf(f->backend, sizeof f->backend, "%s", s);
    if ((s = json_string_value(json_object_get(j, "model_sha256"))))
        snprintf(f->model_sha256, sizeof f->model_sha256, "%s", s);
    if ((s = json_string_value(json_object_get(j, "prompt_sha256"))))
        snprintf(f->prompt_sha256, sizeof f->prompt_sha256, "%s", s);
    f->n_tokens = (size_t)json_integer_value(json_object_get(j, "n_tokens"));
    f->n = json_array_size(pts);
    f->stats = xcalloc(f->n ? f->n : 1, sizeof *f->stats);
    for (size_t i = 0; i < f->n; i++) {
        json_t *p = json_array_get(pts, i);
        trit_trace_stat *st = &f->stats[i];
        const char *name = json_string_value(json_object_get(p, "name"));
        json_t *cnt = json_object_get(p, "count"), *sd = json_object_get(p, "std");
        if (!name || !json_is_integer(cnt) || !json_is_number(sd)) {
            trit_trace_file_free(f);
            return trit_fail(err, TRIT_EFORMAT, "trace point %zu: needs name, count and std", i);
        }
        snprintf(st->name, sizeof st->name, "%s", name);
        st->layer = trit_trace_name_layer(name);
        st->order = (int)json_integer_value(json_object_get(p, "order"));
        st->ne0 = json_integer_value(json_object_get(p, "ne0"));
        st->rows = json_integer_value(json_object_get(p, "rows"));
        st->count = json_integer_value(cnt);
        st->mean = json_number_value(json_object_get(p, "mean"));
        st->std = json_number_value(sd);
        st->min = json_number_value(json_object_get(p, "min"));
        st->max = json_number_value(json_object_get(p, "max"));
        st->nan = json_integer_value(json_object_get(p, "nan"));
        st->inf = json_integer_value(json_object_get(p, "inf"));
        st->zero = json_integer_value(json_object_get(p, "zero"));
        const char *h = json_string_value(json_object_get(p, "hash"));
        st->hash = h ? strtoull(h, NULL, 16) : 0;
        const char *v = json_string_value(json_object_get(p, "values_f32_b64"));
        if (v && st->count > 0) {
            st->data = xmalloc((size_t)st->count * sizeof(float));
            if (b64_decode(v, strlen(v), (uint8_t *)st->data, (size_t)st->count * sizeof(float))) {
                trit_trace_file_free(f);
                return trit_fail(err, TRIT_EFORMAT,
                                 "trace point %s: values do not decode to count (%lld) floats",
                                 name, (long long)st->count);
            }
        }
    }
    return 0;
}

int trit_trace_load(const char *path, trit_trace_file *f, trit_err *err) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return trit_fail(err, TRIT_EFORMAT, "%s: line %d: %s", path, je.line, je.text);
    int rc = trit_trace_from_json(j, f, err);
    json_decref(j);
    if (rc) trit_err_prefix(err, "%s", path);
    return rc;
}

void trit_trace_file_free(trit_trace_file *f) {
    trit_trace_stats_free(f->stats, f->n);
    f->stats = NULL;
    f->n = 0;
}

/* ---- diff ---- */
int trit_trace_diff_run(const trit_trace_stat *a, size_t na, const trit_trace_stat *b, size_t nb,
                        const trit_trace_diff_opts *o, trit_trace_diff *d, trit_err *err) {
    memset(d, 0, sizeof *d);
    d->first_bad = -1;
    /* refuse first: any common point with a different element count */
    for (size_t i = 0; i < na; i++)
        for (size_t k = 0; k < nb; k++)
            if (!strcmp(a[i].name, b[k].name) && a[i].count != b[k].count)
                return trit_fail(
                    err, TRIT_EINVAL,
                    "refusing to compare: point %s has %lld elements in A (%lld rows) and %lld "
                    "in B (%lld rows); the traces were sampled differently (all-tokens vs "
                    "last-token, or different prompts) and their stats are not comparable",
                    a[i].name, (long long)a[i].count, (long long)a[i].rows, (long long)b[k].count,
                    (long long)b[k].rows);
    trit_trace_stat *sa = xmalloc((na ? na : 1) * sizeof *sa);
    memcpy(sa, a, na * sizeof *sa);
    trit_trace_sort(sa, na);
    d->pts = xcalloc(na + nb + 1, sizeof *d->pts);
    for (size_t i = 0; i < na; i++) {
        trit_trace_diff_point *p = &d->pts[d->n++];
        snprintf(p->name, sizeof p->name, "%s", sa[i].name);
        p->layer = sa[i].layer;
        p->std_a = sa[i].std;
        p->mean_a = sa[i].mean;
        p->nmse = NAN;
        p->first_pos = -1;
        const trit_trace_stat *pb = NULL;
        for (size_t k = 0; k < nb; k++)
            if (!strcmp(b[k].name, sa[i].name)) pb = &b[k];
        if (!pb) {
            p->only_a = true;
            continue;
        }
        d->n_common++;
        p->std_b = pb->std;
        p->mean_b = pb->mean;
        p->std_ratio = sa[i].std > 0 ? pb->std / sa[i].std : (pb->std > 0 ? INFINITY : 1);
        p->outside = !(p->std_ratio >= o->std_lo && p->std_ratio <= o->std_hi) ||
                     (sa[i].nan == 0 && pb->nan > 0) || (sa[i].inf == 0 && pb->inf > 0);
        if (sa[i].data && pb->data && sa[i].ne0 == pb->ne0 && sa[i].ne0 > 0) {
            p->nmse = trit_nmse(sa[i].data, pb->data, (size_t)sa[i].count);
            for (int64_t r = 0; r < sa[i].rows; r++)
                if (trit_nmse(sa[i].data + r * sa[i].ne0, pb->data + r * sa[i].ne0,
                              (size_t)sa[i].ne0) > o->nmse) {
                    p->first_pos = (int)r;
                    break;
                }
            if (p->nmse > o->nmse || isnan(p->nmse)) p->outside = true;
        }
        if (p->outside && d->first_bad < 0) d->first_bad = (long)(d->n - 1);
    }
    for (size_t k = 0; k < nb; k++) {
        bool found = false;
        for (size_t i = 0; i < na && !found; i++) found = !strcmp(a[i].name, b[k].name);
        if (found) continue;
        trit_trace_diff_point *p = &d->pts[d->n++];
        snprintf(p->name, sizeof p->name, "%s", b[k].name);
        p->layer = b[k].layer;
        p->std_b = b[k].std;
        p->only_b = true;
        p->nmse = NAN;
        p->first_pos = -1;
    }
    free(sa);
    if (d->n_common == 0) {
        trit_trace_diff_free(d);
        return trit_fail(err, TRIT_EINVAL, "the traces have no point name in common");
    }
    return 0;
}

void trit_trace_diff_free(trit_trace_diff *d) {
    free(d->pts);
    memset(d, 0, sizeof *d);
}
