/* parity/report.c — the self-contained HTML report (see report.h). */
#include "parity/report.h"

#include "parity/gates.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================= escaping ======================= */

void trit_html_escape(trit_buf *out, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            switch (c) {
            case '&':
                trit_buf_puts(out, "&amp;");
                break;
            case '<':
                trit_buf_puts(out, "&lt;");
                break;
            case '>':
                trit_buf_puts(out, "&gt;");
                break;
            case '"':
                trit_buf_puts(out, "&quot;");
                break;
            case '\'':
                trit_buf_puts(out, "&#39;");
                break;
            case '\n':
            case '\t':
                trit_buf_append(out, s + i, 1);
                break;
            default:
                if (c < 0x20 || c == 0x7f)
                    trit_buf_printf(out, "<span class=ctl>\\x%02x</span>", c);
                else
                    trit_buf_append(out, s + i, 1);
            }
            i++;
            continue;
        }
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (len > 1 && i + len <= n && trit_utf8_valid(s + i, len)) {
            trit_buf_append(out, s + i, len);
            i += len;
        } else {
            trit_buf_puts(out, "\xEF\xBF\xBD");
            i++;
        }
    }
}

static void esc(trit_buf *o, const char *s) {
    trit_html_escape(o, s ? s : "", s ? strlen(s) : 0);
}

/* ======================= data from the ledgers ======================= */

typedef struct miss {
    long round;
    char *prompt_id, *category, *bucket, *tie, *prompt, *t1, *t2, *cause, *time;
    size_t n1, n2;
    long split; /* byte where the replies part (UTF-8 boundary); -1 when unknown */
} miss;

typedef struct pstat {
    char *id, *category;
    long rounds, misses;
} pstat;

typedef struct data {
    /* per round, in ledger order */
    double *ts;
    signed char *ok; /* 1 exact, 0 other compared, -1 not compared */
    size_t n, cap;
    double *lat1, *lat2;
    size_t nl, capl;
    long *div;
    size_t nd, capd;
    miss *miss; /* ring of the latest max_misses */
    int max_misses, n_miss;
    long miss_total;
    pstat *ps; /* open-addressing table */
    size_t ps_cap, ps_n;
} data;

/* A record's string field, decoded by the ledger's one reader ("" when absent); *n gets its
 * length (it may hold NUL bytes). */
static char *unescaped(trit_ledger_str raw, size_t *n) {
    trit_buf b = {0};
    trit_ledger_unescape(raw, &b);
    if (n) *n = b.len;
    char *s = xmalloc(b.len + 1);
    if (b.len) memcpy(s, b.p, b.len);
    s[b.len] = 0;
    trit_buf_free(&b);
    return s;
}

static pstat *pstat_get(data *d, const char *id, size_t n, const char *cat, size_t cn) {
    if (d->ps_n * 2 >= d->ps_cap) {
        size_t nc = d->ps_cap ? d->ps_cap * 2 : 256;
        pstat *t = xcalloc(nc, sizeof *t);
        for (size_t i = 0; i < d->ps_cap; i++)
            if (d->ps[i].id) {
                size_t h = trit_hash64(d->ps[i].id, strlen(d->ps[i].id)) & (nc - 1);
                while (t[h].id) h = (h + 1) & (nc - 1);
                t[h] = d->ps[i];
            }
        free(d->ps);
        d->ps = t;
        d->ps_cap = nc;
    }
    size_t h = trit_hash64(id, n) & (d->ps_cap - 1);
    while (d->ps[h].id) {
        if (strlen(d->ps[h].id) == n && !memcmp(d->ps[h].id, id, n)) return &d->ps[h];
        h = (h + 1) & (d->ps_cap - 1);
    }
    d->ps[h].id = xstrndup(id, n);
    d->ps[h].category = xstrndup(cat, cn);
    d->ps_n++;
    return &d->ps[h];
}

static void miss_free(miss *m) {
    free(m->prompt_id), free(m->category), free(m->bucket), free(m->tie), free(m->prompt);
    free(m->t1), free(m->t2), free(m->cause), free(m->time);
    memset(m, 0, sizeof *m);
}

static int on_rec(void *ud, const trit_ledger_rec *r, const char *line, size_t len) {
    data *d = ud;
    if (r->type != TRIT_REC_ROUND) return 0;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1024;
        d->ts = xrealloc(d->ts, d->cap * sizeof *d->ts);
        d->ok = xrealloc(d->ok, d->cap);
    }
    bool compared = r->bucket >= 0 && r->bucket <= TRIT_BUCKET_NOMATCH;
    d->ts[d->n] = r->ts;
    d->ok[d->n] = compared ? (r->bucket == TRIT_BUCKET_EXACT) : -1;
    d->n++;
    if (!isnan(r->lat_gen1) && !isnan(r->lat_gen2) && compared) {
        if (d->nl == d->capl) {
            d->capl = d->capl ? d->capl * 2 : 1024;
            d->lat1 = xrealloc(d->lat1, d->capl * sizeof *d->lat1);
            d->lat2 = xrealloc(d->lat2, d->capl * sizeof *d->lat2);
        }
        d->lat1[d->nl] = r->lat_gen1, d->lat2[d->nl] = r->lat_gen2;
        d->nl++;
    }
    if ((r->bucket == TRIT_BUCKET_NOMATCH || r->bucket == TRIT_BUCKET_PREFIX) && r->div_byte >= 0) {
        if (d->nd == d->capd) {
            d->capd = d->capd ? d->capd * 2 : 256;
            d->div = xrealloc(d->div, d->capd * sizeof *d->div);
        }
        d->div[d->nd++] = r->div_byte;
    }
    pstat *p = pstat_get(d, r->prompt_id, r->prompt_id_len, r->category, r->category_len);
    p->rounds++;
    if (r->bucket == TRIT_BUCKET_EXACT || r->bucket < 0) return 0;
    p->misses++;
    d->miss_total++;
    miss *m = &d->miss[(d->miss_total - 1) % d->max_misses];
    miss_free(m);
    m->round = r->round;
    m->prompt_id = unescaped((trit_ledger_str){r->prompt_id, r->prompt_id_len}, NULL);
    m->category = unescaped((trit_ledger_str){r->category, r->category_len}, NULL);
    m->bucket = unescaped(r->bucket_raw, NULL);
    m->tie = unescaped(r->tie_raw, NULL);
    m->prompt = unescaped(r->prompt, NULL);
    m->cause = unescaped(r->cause, NULL);
    m->time = unescaped(r->time, NULL);
    m->t1 = unescaped(r->text_gen1, &m->n1);
    m->t2 = unescaped(r->text_gen2, &m->n2);
    m->split = r->prefix_len >= 0 ? r->prefix_len : r->div_byte;
    if (m->split > (long)TRIT_MIN(m->n1, m->n2)) m->split = (long)TRIT_MIN(m->n1, m->n2);
    if (d->n_miss < d->max_misses) d->n_miss++;
    return 0;
}

static void data_free(data *d) {
    free(d->ts), free(d->ok), free(d->lat1), free(d->lat2), free(d->div);
    for (int i = 0; i < d->max_misses; i++) miss_free(&d->miss[i]);
    free(d->miss);
    for (size_t i = 0; i < d->ps_cap; i++) free(d->ps[i].id), free(d->ps[i].category);
    free(d->ps);
}

/* ======================= SVG ======================= */

#define W  760
#define H  260
#define ML 58
#define MR 16
#define MT 30
#define MB 42

typedef struct series {
    const char *name, *color;
    const double *x, *y;
    size_t n;
    bool step; /* CDF steps */
} series;

static double nice_step(double span) {
    double raw = span / 5, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void axes(trit_buf *h, double x0, double x1, double y0, double y1, const char *xl,
                 const char *yl, bool ypct) {
    trit_buf_printf(h, "<rect x=%d y=%d width=%d height=%d class=plot />", ML, MT, W - ML - MR,
                    H - MT - MB);
    double ys = nice_step(y1 - y0), xs = nice_step(x1 - x0);
    for (double v = ceil(y0 / ys) * ys; v <= y1 + 1e-9 * ys; v += ys) {
        double py = MT + (H - MT - MB) * (1 - (v - y0) / (y1 - y0));
        trit_buf_printf(h, "<line x1=%d x2=%d y1=%.1f y2=%.1f class=grid />", ML, W - MR, py, py);
        if (ypct)
            trit_buf_printf(h, "<text x=%d y=%.1f class=yt>%g%%</text>", ML - 6, py + 4, v * 100);
        else
            trit_buf_printf(h, "<text x=%d y=%.1f class=yt>%g</text>", ML - 6, py + 4, v);
    }
    for (double v = ceil(x0 / xs) * xs; v <= x1 + 1e-9 * xs; v += xs) {
        double px = ML + (W - ML - MR) * (v - x0) / (x1 - x0);
        trit_buf_printf(h, "<line x1=%.1f x2=%.1f y1=%d y2=%d class=tick />", px, px, H - MB,
                        H - MB + 4);
        trit_buf_printf(h, "<text x=%.1f y=%d class=xt>%g</text>", px, H - MB + 16, v);
    }
    trit_buf_printf(h, "<text x=%d y=%d class=xl>", ML + (W - ML - MR) / 2, H - 6);
    esc(h, xl);
    trit_buf_printf(h, "</text><text x=14 y=%d class=yl transform='rotate(-90 14 %d)'>",
                    MT + (H - MT - MB) / 2, MT + (H - MT - MB) / 2);
    esc(h, yl);
    trit_buf_puts(h, "</text>");
}

static void line_chart(trit_buf *h, const series *s, int ns, double x0, double x1, double y0,
                       double y1, const char *xl, const char *yl, bool ypct) {
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > y0)) y1 = y0 + 1;
    trit_buf_printf(h, "<svg viewBox='0 0 %d %d' class=chart role=img>", W, H);
    axes(h, x0, x1, y0, y1, xl, yl, ypct);
    for (int k = 0; k < ns; k++) {
        trit_buf_printf(h, "<polyline fill=none stroke='%s' stroke-width=2 points='", s[k].color);
        double prev_y = NAN;
        for (size_t i = 0; i < s[k].n; i++) {
            double px = ML + (W - ML - MR) * (s[k].x[i] - x0) / (x1 - x0);
            double py = MT + (H - MT - MB) * (1 - (s[k].y[i] - y0) / (y1 - y0));
            if (s[k].step && !isnan(prev_y)) trit_buf_printf(h, "%.1f,%.1f ", px, prev_y);
            trit_buf_printf(h, "%.1f,%.1f ", px, py);
            prev_y = py;
        }
        trit_buf_puts(h, "' />");
        if (s[k].n == 1) {
            double px = ML + (W - ML - MR) * (s[k].x[0] - x0) / (x1 - x0);
            double py = MT + (H - MT - MB) * (1 - (s[k].y[0] - y0) / (y1 - y0));
            trit_buf_printf(h, "<circle cx=%.1f cy=%.1f r=3 fill='%s' />", px, py, s[k].color);
        }
        trit_buf_printf(h,
                        "<rect x=%d y=10 width=14 height=4 fill='%s' /><text x=%d y=16 class=lg>",
                        ML + 200 * k, s[k].color, ML + 20 + 200 * k);
        esc(h, s[k].name);
        trit_buf_puts(h, "</text>");
    }
    trit_buf_puts(h, "</svg>\n");
}

static void bar_chart(trit_buf *h, const double *edges, const long *counts, int nb, const char *xl,
                      const char *yl, const char *color) {
    long mx = 1;
    for (int i = 0; i < nb; i++) mx = TRIT_MAX(mx, counts[i]);
    double x0 = edges[0], x1 = edges[nb];
    if (!(x1 > x0)) x1 = x0 + 1;
    trit_buf_printf(h, "<svg viewBox='0 0 %d %d' class=chart role=img>", W, H);
    axes(h, x0, x1, 0, (double)mx, xl, yl, false);
    for (int i = 0; i < nb; i++) {
        if (!counts[i]) continue;
        double a = ML + (W - ML - MR) * (edges[i] - x0) / (x1 - x0);
        double b = ML + (W - ML - MR) * (edges[i + 1] - x0) / (x1 - x0);
        double ht = (H - MT - MB) * (double)counts[i] / (double)mx;
        trit_buf_printf(h,
                        "<rect x=%.1f y=%.1f width=%.1f height=%.1f fill='%s'><title>%g..%g: "
                        "%ld</title></rect>",
                        a + 0.5, H - MB - ht, fmax(1, b - a - 1), ht, color, edges[i], edges[i + 1],
                        counts[i]);
    }
    trit_buf_puts(h, "</svg>\n");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ======================= sections ======================= */

static const char *CSS =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;"
    "background:#f6f7f9;color:#1d2430}"
    "header{background:#1d2430;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}"
    "header p{margin:4px 0 0;color:#b8c2d0}main{padding:8px 28px 40px;max-width:1200px}"
    "section{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:14px 18px;"
    "margin:16px 0}h2{font-size:17px;margin:0 0 10px}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;"
    "border-bottom:1px solid #e8ebf0;vertical-align:top}th{background:#f0f2f5;font-weight:600}"
    ".PASS{color:#fff;background:#1a7f37;border-radius:4px;padding:1px 8px;font-weight:600}"
    ".FAIL{color:#fff;background:#cf222e;border-radius:4px;padding:1px 8px;font-weight:600}"
    ".verdict{font-size:20px;font-weight:700;margin:6px 0 12px}.go{color:#1a7f37}"
    ".nogo{color:#cf222e}.muted{color:#6b7585}.kv td:first-child{width:260px;color:#4b5565}"
    "svg.chart{width:100%;max-width:760px;height:auto;display:block}"
    "svg .plot{fill:#fbfcfd;stroke:#c9d0da}svg .grid{stroke:#e6e9ee}svg .tick{stroke:#8a94a3}"
    "svg text{font:11px system-ui,sans-serif;fill:#4b5565}svg .yt{text-anchor:end}"
    "svg .xt,svg .xl,svg .yl{text-anchor:middle}svg .lg{fill:#1d2430}"
    ".pair{display:grid;grid-template-columns:1fr 1fr;gap:10px}"
    "pre{white-space:pre-wrap;word-break:break-word;margin:0;background:#f7f8fa;"
    "border:1px solid #e3e7ed;border-radius:6px;padding:8px;font:12.5px/1.4 ui-monospace,"
    "'DejaVu Sans Mono',monospace;max-height:260px;overflow:auto}"
    "mark{background:#ffd5d5;color:#8a0010}.ctl{color:#8a94a3}"
    ".miss{border-top:1px solid #e3e7ed;padding:10px 0}.miss h3{font-size:14px;margin:0 0 6px}"
    ".tag{display:inline-block;background:#eef1f5;border-radius:4px;padding:0 6px;margin-right:6px;"
    "font-size:12px}.side{font-size:12px;color:#4b5565;margin-bottom:3px}";

static void gate_section(trit_buf *h, const trit_report_opts *o, trit_stats_acc *acc,
                         const trit_ppl_figs *ppl, trit_stats *all_out) {
    trit_gate_cfg cfg;
    trit_gate_cfg_default(&cfg);
    trit_err err = {0};
    bool cfg_bad = o->config && trit_gate_cfg_load(o->config, &cfg, &err);
    trit_stats all, recent, prev;
    trit_gates_windows(&cfg, acc, &all, &recent, &prev);
    trit_gate_table t;
    trit_gates_eval(&cfg, &all, &recent, &prev, ppl && ppl->present ? ppl : NULL, &t);
    *all_out = all;
    /* the evidence checked as `trit gate` checks it: a refused verdict is said, not GO */
    trit_provenance pv;
    bool refused =
        trit_gate_provenance(&cfg, o->ledgers, o->n_ledgers, ppl && ppl->present ? ppl : NULL,
                             false, trit_wall_s(), &pv, &err) == 0 &&
        pv.refused;
    trit_buf_puts(h, "<section id=gates><h2>Cutover gates</h2>");
    if (refused) {
        trit_buf_puts(h, "<div class='verdict nogo'>REFUSED — ");
        esc(h, pv.reason);
        trit_buf_puts(h, "</div><p class=muted>`trit gate` gives no verdict on this evidence; "
                         "the rows below are shown for reference only.</p>");
    } else {
        trit_buf_printf(h, "<div class='verdict %s'>%s</div>", t.go ? "go" : "nogo",
                        t.go ? "GO — every gate passes"
                             : "NO-GO — at least one gate does not pass");
    }
    trit_provenance_free(&pv);
    if (cfg_bad) {
        trit_buf_puts(h, "<p class=nogo>config not loaded (defaults used): ");
        esc(h, err.msg);
        trit_buf_puts(h, "</p>");
    }
    trit_buf_puts(h, "<table><tr><th>gate</th><th>target</th><th>current</th><th>verdict</th>"
                     "<th>why</th></tr>");
    for (int i = 0; i < t.n; i++) {
        const trit_gate_row *r = &t.row[i];
        const char *v = trit_gate_verdict_name(r->verdict);
        trit_buf_puts(h, "<tr><td>");
        esc(h, r->gate);
        trit_buf_puts(h, "</td><td>");
        esc(h, r->target);
        trit_buf_puts(h, "</td><td>");
        esc(h, r->current);
        trit_buf_printf(h, "</td><td><span class=%s>%s</span></td><td class=muted>", v, v);
        esc(h, r->why);
        trit_buf_puts(h, "</td></tr>");
    }
    trit_buf_puts(h, "</table><p class=muted>config: ");
    esc(h, o->config ? o->config : "production defaults (docs/parity.md)");
    trit_buf_puts(h, "</p></section>\n");
}

static void pct_cell(trit_buf *h, double v) {
    if (isnan(v))
        trit_buf_puts(h, "—");
    else
        trit_buf_printf(h, "%.2f%%", 100 * v);
}
static void ms_cell(trit_buf *h, double v) {
    if (isnan(v))
        trit_buf_puts(h, "—");
    else
        trit_buf_printf(h, "%.1f ms", 1000 * v);
}

static void summary_section(trit_buf *h, const trit_stats *s) {
    trit_buf_puts(h, "<section id=summary><h2>Summary</h2><table class=kv>");
    trit_buf_printf(
        h, "<tr><td>rounds</td><td>%ld (%ld compared; %ld malformed lines skipped)</td></tr>",
        s->rounds, s->compared, s->skipped_lines);
    trit_buf_puts(h, "<tr><td>buckets</td><td>");
    for (int b = 0; b < TRIT_BUCKET_N; b++)
        trit_buf_printf(h, "<span class=tag>%s %ld</span>", trit_bucket_name((trit_bucket)b),
                        s->bucket[b]);
    trit_buf_puts(h, "</td></tr><tr><td>exact-match rate</td><td>");
    pct_cell(h, s->exact_rate);
    trit_buf_printf(h,
                    "</td></tr><tr><td>no-match: tie / real / unclassified</td><td>%ld / %ld / "
                    "%ld</td></tr>",
                    s->ties, s->reals, s->tie_unknown);
    trit_buf_puts(h, "<tr><td>latency p50 / p95, gen-1</td><td>");
    ms_cell(h, s->p50_v1);
    trit_buf_puts(h, " / ");
    ms_cell(h, s->p95_v1);
    trit_buf_puts(h, "</td></tr><tr><td>latency p50 / p95, gen-2</td><td>");
    ms_cell(h, s->p50_v2);
    trit_buf_puts(h, " / ");
    ms_cell(h, s->p95_v2);
    trit_buf_puts(h, "</td></tr><tr><td>p95 gap (gen-2 − gen-1)</td><td>");
    ms_cell(h, s->p95_gap);
    trit_buf_puts(h, "</td></tr>");
    if (s->noise_rounds) {
        trit_buf_printf(h, "<tr><td>noise lane (gen-1 vs gen-1)</td><td>%ld rounds, exact ",
                        s->noise_rounds);
        pct_cell(h, s->noise_exact_rate);
        trit_buf_puts(h, "; excess miss rate of gen-2 ");
        pct_cell(h, s->excess_miss);
        trit_buf_puts(h, "</td></tr>");
    }
    if (s->top_miss[0]) {
        trit_buf_puts(h, "<tr><td>top miss</td><td>");
        esc(h, s->top_miss);
        trit_buf_printf(h, ": %ld of %ld misses (%.0f%%)</td></tr>", s->top_miss_count, s->misses,
                        100 * s->top_miss_share);
    }
    if (s->n_cat) {
        trit_buf_puts(h, "<tr><td>per category (exact / compared)</td><td>");
        for (int i = 0; i < s->n_cat; i++) {
            trit_buf_puts(h, "<span class=tag>");
            esc(h, s->cat[i].name);
            trit_buf_printf(h, " %ld/%ld</span>", s->cat[i].exact, s->cat[i].compared);
        }
        trit_buf_puts(h, "</td></tr>");
    }
    trit_buf_puts(h, "</table></section>\n");
}

static void jrow(trit_buf *h, const char *label, json_t *v, const char *fmt) {
    if (!json_is_number(v)) return;
    trit_buf_puts(h, "<tr><td>");
    esc(h, label);
    trit_buf_puts(h, "</td><td>");
    trit_buf_printf(h, fmt, json_number_value(v));
    trit_buf_puts(h, "</td></tr>");
}

static void ppl_section(trit_buf *h, const char *path) {
    trit_buf_puts(h, "<section id=ppl><h2>Perplexity and KL divergence</h2>");
    if (!path) {
        trit_buf_puts(h, "<p class=muted>no ppl file given (<code>trit ppl --gen1 … --gen2 … -o "
                         "ppl.json</code>, then <code>--ppl ppl.json</code>); the ppl gate "
                         "reads FAIL without it.</p></section>\n");
        return;
    }
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        trit_buf_puts(h, "<p class=nogo>cannot read ");
        esc(h, path);
        trit_buf_puts(h, ": ");
        esc(h, je.text);
        trit_buf_puts(h, "</p></section>\n");
        return;
    }
    json_t *g1 = json_object_get(j, "gen1"), *g2 = json_object_get(j, "gen2"),
           *k = json_object_get(j, "kld");
    trit_buf_puts(h, "<table class=kv>");
    const char *s1 = json_string_value(json_object_get(g1, "source"));
    const char *s2 = json_string_value(json_object_get(g2, "source"));
    trit_buf_puts(h, "<tr><td>gen-1</td><td>");
    esc(h, s1 ? s1 : "?");
    trit_buf_puts(h, "</td></tr><tr><td>gen-2</td><td>");
    esc(h, s2 ? s2 : "?");
    trit_buf_puts(h, "</td></tr>");
    json_t *tx = json_object_get(j, "text");
    if (json_is_string(tx)) {
        trit_buf_puts(h, "<tr><td>text</td><td>");
        esc(h, json_string_value(tx));
        trit_buf_printf(h, " (ctx %lld, %lld chunks)</td></tr>",
                        (long long)json_integer_value(json_object_get(j, "ctx")),
                        (long long)json_integer_value(json_object_get(j, "chunks")));
    }
    jrow(h, "PPL gen-1", json_object_get(g1, "ppl"), "%.6g");
    jrow(h, "PPL gen-1 error", json_object_get(g1, "ppl_err"), "± %.4g");
    jrow(h, "PPL gen-2", json_object_get(g2, "ppl"), "%.6g");
    jrow(h, "PPL gen-2 error", json_object_get(g2, "ppl_err"), "± %.4g");
    jrow(h, "Δ PPL (gen-2 − gen-1)", json_object_get(j, "delta_ppl"), "%+.6g");
    json_t *rel = json_object_get(j, "rel_delta_ppl");
    if (json_is_number(rel)) {
        trit_buf_printf(h, "<tr><td>relative Δ PPL</td><td>%+.4f%%</td></tr>",
                        100 * json_number_value(rel));
    }
    if (json_is_object(k)) {
        jrow(h, "mean KLD", json_object_get(k, "mean"), "%.6g");
        jrow(h, "mean KLD error", json_object_get(k, "err"), "± %.3g");
        jrow(h, "max KLD", json_object_get(k, "max"), "%.6g");
        jrow(h, "99.9% KLD", json_object_get(k, "p99.9"), "%.6g");
        jrow(h, "99% KLD", json_object_get(k, "p99"), "%.6g");
        jrow(h, "median KLD", json_object_get(k, "median"), "%.6g");
        json_t *rms = json_object_get(k, "rms_dp"), *st = json_object_get(k, "same_top");
        if (json_is_number(rms))
            trit_buf_printf(h, "<tr><td>RMS Δp</td><td>%.4f%%</td></tr>",
                            100 * json_number_value(rms));
        if (json_is_number(st))
            trit_buf_printf(h, "<tr><td>same top token</td><td>%.3f%%</td></tr>",
                            100 * json_number_value(st));
    } else {
        trit_buf_puts(h, "<tr><td>KLD</td><td class=muted>not available</td></tr>");
    }
    trit_buf_puts(h, "</table></section>\n");
    json_decref(j);
}

static void rate_section(trit_buf *h, const data *d) {
    trit_buf_puts(h, "<section id=exact-rate><h2>Exact-match rate over time</h2>");
    size_t nc = 0;
    for (size_t i = 0; i < d->n; i++) nc += d->ok[i] >= 0;
    if (!nc) {
        trit_buf_puts(h, "<p class=muted>no compared rounds yet</p></section>\n");
        return;
    }
    size_t nb = TRIT_MIN(nc, (size_t)60), per = (nc + nb - 1) / nb;
    double *x = xcalloc(nb + 1, sizeof *x), *y = xcalloc(nb + 1, sizeof *y),
           *yc = xcalloc(nb + 1, sizeof *yc), *xc = xcalloc(nb + 1, sizeof *xc);
    size_t k = 0, seen = 0, ex = 0, bin_n = 0, bin_ex = 0, cum_ex = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->ok[i] < 0) continue;
        seen++, bin_n++;
        ex += d->ok[i] == 1, bin_ex += d->ok[i] == 1, cum_ex += d->ok[i] == 1;
        if (bin_n == per || seen == nc) {
            x[k] = (double)seen;
            y[k] = (double)bin_ex / (double)bin_n;
            xc[k] = (double)seen;
            yc[k] = (double)cum_ex / (double)seen;
            k++;
            bin_n = bin_ex = 0;
        }
    }
    series s[2] = {{"", "#2f6fde", x, y, k, false}, {"cumulative", "#1a7f37", xc, yc, k, false}};
    char name[64];
    snprintf(name, sizeof name, "per %zu rounds", per);
    s[0].name = name;
    line_chart(h, s, 2, 0, (double)nc, 0, 1, "compared rounds", "exact-match rate", true);
    double t0 = d->ts[0], t1 = d->ts[d->n - 1];
    char a[32], b[32];
    trit_iso8601(t0, a);
    trit_iso8601(t1, b);
    trit_buf_printf(h, "<p class=muted>%zu compared rounds from %s to %s; %zu exact.</p>", nc, a, b,
                    ex);
    trit_buf_puts(h, "</section>\n");
    free(x), free(y), free(xc), free(yc);
}

static void cdf(const double *v, size_t n, double scale, double **x, double **y) {
    *x = xmalloc((n + 1) * sizeof **x);
    *y = xmalloc((n + 1) * sizeof **y);
    double *s = xmalloc((n + 1) * sizeof *s);
    for (size_t i = 0; i < n; i++) s[i] = v[i] * scale;
    qsort(s, n, sizeof *s, cmp_double);
    for (size_t i = 0; i < n; i++) (*x)[i] = s[i], (*y)[i] = (double)(i + 1) / (double)n;
    free(s);
}

static void latency_section(trit_buf *h, const data *d) {
    trit_buf_puts(h, "<section id=latency><h2>Latency distribution (CDF per side)</h2>");
    if (!d->nl) {
        trit_buf_puts(h, "<p class=muted>no latencies recorded</p></section>\n");
        return;
    }
    double *x1, *y1, *x2, *y2;
    cdf(d->lat1, d->nl, 1000, &x1, &y1);
    cdf(d->lat2, d->nl, 1000, &x2, &y2);
    /* x range up to the larger p99 so one outlier does not flatten the curves */
    size_t i99 = (size_t)(0.99 * (double)(d->nl - 1));
    double xmax = fmax(x1[i99], x2[i99]) * 1.05, xmin = fmin(x1[0], x2[0]);
    xmin = fmax(0, xmin - 0.05 * (xmax - xmin));
    size_t n1 = d->nl, n2 = d->nl;
    while (n1 > 1 && x1[n1 - 1] > xmax) n1--;
    while (n2 > 1 && x2[n2 - 1] > xmax) n2--;
    series s[2] = {{"gen-1 (v1)", "#2f6fde", x1, y1, n1, true},
                   {"gen-2 (v2)", "#e3760b", x2, y2, n2, true}};
    line_chart(h, s, 2, xmin, xmax, 0, 1, "latency (ms), up to the larger p99",
               "fraction of rounds", true);
    trit_buf_printf(h,
                    "<p class=muted>%zu rounds with both sides answering. gen-1 p50 %.1f ms, p95 "
                    "%.1f ms; gen-2 p50 %.1f ms, p95 %.1f ms.</p></section>\n",
                    d->nl, x1[(d->nl - 1) / 2], x1[(size_t)(0.95 * (double)(d->nl - 1))],
                    x2[(d->nl - 1) / 2], x2[(size_t)(0.95 * (double)(d->nl - 1))]);
    free(x1), free(y1), free(x2), free(y2);
}

static void divergence_section(trit_buf *h, const data *d) {
    trit_buf_puts(h,
                  "<section id=divergence><h2>Where replies diverge (first differing byte)</h2>");
    if (!d->nd) {
        trit_buf_puts(h, "<p class=muted>no divergent rounds</p></section>\n");
        return;
    }
    long mx = 0;
    for (size_t i = 0; i < d->nd; i++) mx = TRIT_MAX(mx, d->div[i]);
    int nb = 30;
    double w = fmax(1, ceil((double)(mx + 1) / nb));
    double edges[31];
    long counts[30] = {0};
    for (int i = 0; i <= nb; i++) edges[i] = i * w;
    for (size_t i = 0; i < d->nd; i++) {
        int b = (int)((double)d->div[i] / w);
        counts[TRIT_MIN(b, nb - 1)]++;
    }
    bar_chart(h, edges, counts, nb, "byte offset of the first difference", "rounds", "#cf6a2e");
    trit_buf_printf(h,
                    "<p class=muted>%zu no-match / prefix-only rounds; latest at byte %ld.</p>"
                    "</section>\n",
                    d->nd, d->div[d->nd - 1]);
}

static int cmp_pstat(const void *a, const void *b) {
    const pstat *x = a, *y = b;
    if (x->misses != y->misses) return x->misses < y->misses ? 1 : -1;
    return strcmp(x->id, y->id);
}

static void prompts_section(trit_buf *h, const data *d) {
    trit_buf_puts(h, "<section id=prompts><h2>Misses per prompt</h2>");
    pstat *v = xmalloc((d->ps_n + 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < d->ps_cap; i++)
        if (d->ps[i].id && d->ps[i].misses) v[n++] = d->ps[i];
    if (!n) {
        trit_buf_puts(h, "<p class=muted>every compared round was exact</p></section>\n");
        free(v);
        return;
    }
    qsort(v, n, sizeof *v, cmp_pstat);
    trit_buf_puts(h, "<table><tr><th>prompt</th><th>category</th><th>misses</th><th>rounds</th>"
                     "<th>share of all misses</th></tr>");
    for (size_t i = 0; i < TRIT_MIN(n, (size_t)25); i++) {
        trit_buf_puts(h, "<tr><td>");
        esc(h, v[i].id);
        trit_buf_puts(h, "</td><td>");
        esc(h, v[i].category);
        trit_buf_printf(h, "</td><td>%ld</td><td>%ld</td><td>%.1f%%</td></tr>", v[i].misses,
                        v[i].rounds, 100.0 * (double)v[i].misses / (double)d->miss_total);
    }
    trit_buf_puts(h, "</table>");
    if (n > 25) trit_buf_printf(h, "<p class=muted>… and %zu more prompts with misses</p>", n - 25);
    trit_buf_puts(h, "</section>\n");
    free(v);
}

static void reply(trit_buf *h, const char *t, size_t n, long split) {
    trit_buf_puts(h, "<pre>");
    if (split < 0 || (size_t)split > n) {
        trit_html_escape(h, t, n);
    } else {
        while (split > 0 && ((unsigned char)t[split] & 0xC0) == 0x80) split--; /* char boundary */
        trit_html_escape(h, t, (size_t)split);
        trit_buf_puts(h, "<mark>");
        trit_html_escape(h, t + split, n - (size_t)split);
        trit_buf_puts(h, "</mark>");
    }
    trit_buf_puts(h, "</pre>");
}

static void misses_section(trit_buf *h, const data *d) {
    trit_buf_printf(h,
                    "<section id=misses><h2>Latest misses (%d of %ld), replies side by side</h2>",
                    d->n_miss, d->miss_total);
    if (!d->n_miss) {
        trit_buf_puts(h, "<p class=muted>none</p></section>\n");
        return;
    }
    trit_buf_puts(h, "<p class=muted>The highlighted part is where the replies part ways "
                     "(from the first differing character).</p>");
    for (int k = 0; k < d->n_miss; k++) {
        long idx = (d->miss_total - 1 - k) % d->max_misses;
        const miss *m = &d->miss[idx];
        trit_buf_printf(h, "<div class=miss><h3>round %ld · ", m->round);
        esc(h, m->prompt_id);
        trit_buf_puts(h, " <span class=tag>");
        esc(h, m->category);
        trit_buf_puts(h, "</span><span class=tag>");
        esc(h, m->bucket);
        trit_buf_puts(h, "</span>");
        if (m->tie[0]) {
            trit_buf_puts(h, "<span class=tag>");
            esc(h, m->tie);
            trit_buf_puts(h, "</span>");
        }
        if (m->split >= 0) trit_buf_printf(h, "<span class=tag>byte %ld</span>", m->split);
        trit_buf_puts(h, "<span class=muted>");
        esc(h, m->time);
        trit_buf_puts(h, "</span></h3>");
        if (m->cause[0]) {
            trit_buf_puts(h, "<div class=side>cause: ");
            esc(h, m->cause);
            trit_buf_puts(h, "</div>");
        }
        if (m->prompt[0]) {
            trit_buf_puts(h, "<div class=side>prompt</div><pre>");
            esc(h, m->prompt);
            trit_buf_puts(h, "</pre>");
        }
        bool cmp = !strcmp(m->bucket, "no-match") || !strcmp(m->bucket, "prefix-only");
        trit_buf_puts(h, "<div class=pair><div><div class=side>gen-1 (v1)</div>");
        reply(h, m->t1, m->n1, cmp ? m->split : -1);
        trit_buf_puts(h, "</div><div><div class=side>gen-2 (v2)</div>");
        reply(h, m->t2, m->n2, cmp ? m->split : -1);
        trit_buf_puts(h, "</div></div></div>");
    }
    trit_buf_puts(h, "</section>\n");
}

int trit_report_html(const trit_report_opts *o, trit_buf *h, trit_err *err) {
    if (o->n_ledgers < 1) return trit_fail(err, TRIT_EINVAL, "report needs at least one ledger");
    /* a page drawn from a ledger whose chain is broken would present edited evidence */
    for (int i = 0; i < o->n_ledgers; i++) {
        trit_ledger_chain ch;
        if (trit_ledger_verify(o->ledgers[i], &ch, err)) return -1;
        if (ch.status == TRIT_CHAIN_BROKEN)
            return trit_fail(err, TRIT_EFORMAT,
                             "ledger %s: hash chain broken: %s (see `trit "
                             "burnin verify`)",
                             o->ledgers[i], ch.msg);
    }
    trit_ppl_figs ppl = {0};
    if (o->ppl_path && trit_ppl_figs_load(o->ppl_path, &ppl, err)) return -1;
    trit_stats_acc *acc = trit_stats_acc_load(o->ledgers, o->n_ledgers, true, err);
    if (!acc) return -1;
    data d = {0};
    d.max_misses = o->max_misses > 0 ? o->max_misses : 50;
    d.miss = xcalloc((size_t)d.max_misses, sizeof *d.miss);
    /* the same merged, de-duplicated records the gate counted */
    trit_ledger_scan_info info;
    if (trit_ledger_scan_many(o->ledgers, o->n_ledgers, on_rec, &d, true, &info, err)) {
        data_free(&d);
        trit_stats_acc_free(acc);
        return -1;
    }
    long skipped = info.skipped;
    const char *title = o->title ? o->title : "trit parity report";
    char now[32];
    trit_iso8601(trit_wall_s(), now);
    trit_buf_puts(h, "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
                     "<meta name=viewport content='width=device-width,initial-scale=1'><title>");
    esc(h, title);
    trit_buf_printf(h, "</title><style>%s</style></head><body><header><h1>", CSS);
    esc(h, title);
    trit_buf_printf(h, "</h1><p>generated %s by trit %s from ", now, TRIT_VERSION);
    for (int i = 0; i < o->n_ledgers; i++) {
        if (i) trit_buf_puts(h, ", ");
        esc(h, o->ledgers[i]);
    }
    if (o->ppl_path) {
        trit_buf_puts(h, " and ");
        esc(h, o->ppl_path);
    }
    trit_buf_puts(h, "</p></header><main>\n");
    trit_stats all;
    gate_section(h, o, acc, &ppl, &all);
    all.skipped_lines = skipped;
    summary_section(h, &all);
    ppl_section(h, o->ppl_path);
    rate_section(h, &d);
    latency_section(h, &d);
    divergence_section(h, &d);
    prompts_section(h, &d);
    misses_section(h, &d);
    trit_buf_puts(h, "</main></body></html>\n");
    data_free(&d);
    trit_stats_acc_free(acc);
    return 0;
}
