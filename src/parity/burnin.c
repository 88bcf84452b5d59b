/* burnin.c — the shadow burn-in loop: next prompt to gen-1 and gen-2 concurrently
 * (temperature 0, top_logprobs), classify, append one fsync'd ledger line, update the state
 * file by atomic rename.
 *
 * Crash safety: the ledger is the source of truth. Round r is "done" exactly when its line is
 * in the ledger. On start the next round is (highest complete round in the ledger) + 1 and the
 * prompt is a function of the round number, so a crash anywhere — before the append (round
 * redone), during it (truncated line skipped with a warning, round redone), or between the
 * append and the state update (state is stale, the ledger wins) — loses and duplicates
 * nothing. A lock (flock on the ledger) keeps two runs from writing the same ledger. */
#include "parity/burnin.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
void trit_burnin_request_stop(void) {
    stop_requested = 1;
}
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

void trit_burnin_opts_default(trit_burnin_opts *o) {
    memset(o, 0, sizeof *o);
    o->prompts_path = "prompts/burnin.jsonl";
    o->ledger_path = "burnin.ledger.jsonl";
    o->rounds = 0;
    o->pace_s = 2.5;
    o->max_tokens = 64;
    o->chat = false;
    o->timeout_s = 60;
    o->top_logprobs = 5;
    o->tie_eps = TRIT_TIE_EPS_DEFAULT;
    o->spike_nomatch = 0.20;
    o->spike_min_rounds = 20;
}

/* ---- prompts ---- */
void trit_prompts_free(trit_prompt *p, int n) {
    for (int i = 0; i < n; i++) free(p[i].id), free(p[i].category), free(p[i].prompt);
    free(p);
}

int trit_prompts_load(const char *path, trit_prompt **out, int *n, trit_err *err) {
    *out = NULL;
    *n = 0;
    trit_buf b = {0};
    if (trit_read_file(path, &b, err)) {
        trit_err_prefix(err, "prompts");
        return -1;
    }
    trit_prompt *v = NULL;
    int cnt = 0, lineno = 0;
    char *p = b.p, *e = b.p + b.len;
    while (p < e) {
        char *nl = memchr(p, '\n', (size_t)(e - p));
        char *le = nl ? nl : e;
        lineno++;
        size_t len = (size_t)(le - p);
        bool blank = true;
        for (size_t i = 0; i < len; i++)
            if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') blank = false;
        if (!blank) {
            json_error_t je;
            json_t *j = json_loadb(p, len, 0, &je);
            const char *id = json_string_value(json_object_get(j, "id"));
            const char *cat = json_string_value(json_object_get(j, "category"));
            const char *pr = json_string_value(json_object_get(j, "prompt"));
            if (!j || !id || !pr || !*id) {
                json_decref(j);
                trit_prompts_free(v, cnt);
                trit_buf_free(&b);
                return trit_fail(err, TRIT_EFORMAT,
                                 "%s:%d: expected {\"id\",\"category\",\"prompt\"}%s%s", path,
                                 lineno, j ? "" : ": ", j ? "" : je.text);
            }
            v = xrealloc(v, (size_t)(cnt + 1) * sizeof *v);
            v[cnt].id = xstrdup(id);
            v[cnt].category = xstrdup(cat ? cat : "");
            v[cnt].prompt = xstrdup(pr);
            cnt++;
            json_decref(j);
        }
        p = nl ? nl + 1 : e;
    }
    trit_buf_free(&b);
    if (cnt == 0) return trit_fail(err, TRIT_EFORMAT, "%s: no prompts", path);
    *out = v;
    *n = cnt;
    return 0;
}

/* ---- resume: what the ledger says ---- */
typedef struct hour_ring {
    double *ts;
    signed char *nm; /* 1 no-match, 0 other compared */
    long n, cap, head;
} hour_ring;

static void ring_push(hour_ring *h, double ts, bool nomatch) {
    if (h->n == h->cap) {
        /* compact then grow */
        long live = h->n - h->head;
        memmove(h->ts, h->ts + h->head, (size_t)live * sizeof *h->ts);
        memmove(h->nm, h->nm + h->head, (size_t)live);
        h->n = live;
        h->head = 0;
        if (h->n == h->cap) {
            h->cap = h->cap ? h->cap * 2 : 256;
            h->ts = xrealloc(h->ts, (size_t)h->cap * sizeof *h->ts);
            h->nm = xrealloc(h->nm, (size_t)h->cap);
        }
    }
    h->ts[h->n] = ts;
    h->nm[h->n] = nomatch;
    h->n++;
}

/* share of no-match among compared rounds in (now - 3600, now]; *cnt = their number */
static double ring_share(hour_ring *h, double now, long *cnt) {
    while (h->head < h->n && h->ts[h->head] <= now - 3600) h->head++;
    long nm = 0;
    for (long i = h->head; i < h->n; i++) nm += h->nm[i];
    *cnt = h->n - h->head;
    return *cnt ? (double)nm / (double)*cnt : 0;
}

typedef struct resume_ctx {
    hour_ring *ring;
    long rounds;
} resume_ctx;

static int resume_cb(void *user, const trit_ledger_rec *r, const char *line, size_t len) {
    resume_ctx *c = user;
    if (r->type != TRIT_REC_ROUND || r->bucket < 0) return 0;
    c->rounds++;
    if (r->bucket <= TRIT_BUCKET_NOMATCH && !isnan(r->ts))
        ring_push(c->ring, r->ts, r->bucket == TRIT_BUCKET_NOMATCH);
    return 0;
}

static int read_state(const char *path, long *next_round) {
    json_t *j = json_load_file(path, 0, NULL);
    if (!j) return -1;
    json_t *v = json_object_get(j, "next_round");
    int rc = json_is_integer(v) ? 0 : -1;
    if (!rc) *next_round = (long)json_integer_value(v);
    json_decref(j);
    return rc;
}

static int write_state(const char *path, const trit_burnin_opts *o, long next_round, long done,
                       trit_err *err) {
    char ts[32];
    trit_iso8601(trit_wall_s(), ts);
    json_t *j = json_pack("{s:I,s:I,s:s,s:s,s:s,s:s}", "next_round", (json_int_t)next_round,
                          "rounds_done", (json_int_t)done, "ledger", o->ledger_path, "v1", o->v1,
                          "v2", o->v2, "updated", ts);
    char *s = json_dumps(j, JSON_INDENT(1));
    json_decref(j);
    int rc = trit_write_file_atomic(path, s, strlen(s), err);
    free(s);
    return rc;
}

/* ---- one round ---- */
static json_t *side(const char *url, const char *model) {
    return json_pack("{s:s,s:s}", "url", url, "model", model ? model : "");
}

typedef struct prov {
    char v1[128], v2[128], noise[128];
    bool have_v1, have_v2, have_noise;
} prov;

static void refresh_prov(const trit_burnin_opts *o, prov *p) {
    if (!p->have_v1)
        p->have_v1 = !trit_client_model_id(o->v1, o->api_key, 5, p->v1, sizeof p->v1, NULL);
    if (!p->have_v2)
        p->have_v2 = !trit_client_model_id(o->v2, o->api_key, 5, p->v2, sizeof p->v2, NULL);
    if (o->noise && !p->have_noise)
        p->have_noise =
            !trit_client_model_id(o->noise, o->api_key, 5, p->noise, sizeof p->noise, NULL);
}

static void sleep_s(double s) {
    double end = trit_now_s() + s;
    while (!stop_requested) {
        double left = end - trit_now_s();
        if (left <= 0) break;
        if (left > 0.2) left = 0.2;
        struct timespec ts = {(time_t)left, (long)((left - (time_t)left) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

int trit_burnin_run(const trit_burnin_opts *o, trit_err *err) {
    if (!o->v1 || !o->v2) return trit_fail(err, TRIT_EINVAL, "--v1 and --v2 are required"), 1;
    if (!o->forever && o->rounds <= 0)
        return trit_fail(err, TRIT_EINVAL, "give --rounds N (N > 0) or --forever"), 1;
    trit_prompt *prompts;
    int np;
    if (trit_prompts_load(o->prompts_path, &prompts, &np, err)) return TRIT_BURNIN_ERROR;

    char *state_path = NULL;
    if (o->state_path)
        state_path = xstrdup(o->state_path);
    else {
        trit_buf sb = {0};
        trit_buf_printf(&sb, "%s.state", o->ledger_path);
        state_path = sb.p;
    }
    int rc = TRIT_BURNIN_OK;
    trit_ledger *led = NULL;
    hour_ring ring = {0};
    int lock_fd = -1;

    /* exclusive lock: one writer per ledger */
    lock_fd = open(o->ledger_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) {
        trit_fail(err, TRIT_EIO, "cannot open ledger %s: %s", o->ledger_path, strerror(errno));
        rc = TRIT_BURNIN_ERROR;
        goto out;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB)) {
        trit_fail(err, TRIT_EIO, "ledger %s is in use by another burn-in", o->ledger_path);
        rc = TRIT_BURNIN_ERROR;
        goto out;
    }

    /* reconcile with the ledger (source of truth) */
    resume_ctx rctx = {&ring, 0};
    trit_ledger_scan_info info;
    if (trit_ledger_scan(o->ledger_path, resume_cb, &rctx, false, &info, err)) {
        rc = TRIT_BURNIN_ERROR;
        goto out;
    }
    long next = info.max_round + 1;
    long done = rctx.rounds;
    long st_next;
    if (read_state(state_path, &st_next) == 0 && st_next != next && !o->quiet)
        fprintf(stderr,
                "burnin: state file says next round %ld, ledger says %ld; using the ledger\n",
                st_next, next);
    if (done > 0 && !o->quiet)
        fprintf(stderr, "burnin: resuming at round %ld (%ld rounds already in %s)\n", next, done,
                o->ledger_path);
    if (!o->forever && done >= o->rounds) {
        if (!o->quiet)
            fprintf(stderr, "burnin: %s already holds %ld rounds (target %ld); nothing to do\n",
                    o->ledger_path, done, o->rounds);
        goto out;
    }
    if (!(led = trit_ledger_open(o->ledger_path, err))) {
        rc = TRIT_BURNIN_ERROR;
        goto out;
    }
    if (write_state(state_path, o, next, done, err)) {
        rc = TRIT_BURNIN_ERROR;
        goto out;
    }

    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_requested = 0;

    prov pv = {0};
    refresh_prov(o, &pv);
    const char *endpoint = o->chat ? "chat" : "completions";
    while (!stop_requested && (o->forever || done < o->rounds)) {
        double t_round = trit_now_s();
        const trit_prompt *pr = &prompts[next % np];
        trit_client_msg msg = {"user", pr->prompt};
        trit_client_req q = {0};
        q.api_key = o->api_key;
        q.prompt = pr->prompt;
        q.messages = &msg;
        q.n_messages = 1;
        q.max_tokens = o->max_tokens;
        q.temperature = 0;
        q.top_logprobs = o->top_logprobs;
        q.seed = 42;
        q.timeout_s = o->timeout_s;
        trit_client_req q1 = q, q2 = q, q3 = q;
        q1.url = o->v1, q2.url = o->v2, q3.url = o->noise;
        trit_client_resp r1, r2, r3;
        trit_client_call_kind k = o->chat ? TRIT_CLIENT_CALL_CHAT : TRIT_CLIENT_CALL_COMPLETION;
        trit_client_call calls[3] = {{k, &q1, &r1}, {k, &q2, &r2}, {k, &q3, &r3}};
        trit_client_run_many(calls, o->noise ? 3 : 2);
        double ts = trit_wall_s();

        trit_compare cmp;
        trit_compare_resps(&r1, &r2, o->tie_eps, &cmp);
        trit_compare ncmp;
        if (o->noise) trit_compare_resps(&r1, &r3, o->tie_eps, &ncmp);
        if ((!pv.have_v1 && r1.kind == TRIT_CLIENT_OK) ||
            (!pv.have_v2 && r2.kind == TRIT_CLIENT_OK))
            refresh_prov(o, &pv);

        char iso[32];
        trit_iso8601(ts, iso);
        trit_round_meta meta = {.source = "burnin",
                                .ts = ts,
                                .round = next,
                                .prompt_id = pr->id,
                                .category = pr->category,
                                .endpoint = endpoint,
                                .v1_url = o->v1,
                                .v1_model = pv.v1,
                                .v2_url = o->v2,
                                .v2_model = pv.v2};
        json_t *rec = trit_ledger_round_json(&meta, &r1, &r2, &cmp);
        if (o->noise) {
            char h3[65];
            trit_sha256_hex(r3.content, r3.content_len, h3);
            json_object_set_new(rec, "noise_bucket", json_string(trit_bucket_name(ncmp.bucket)));
            json_object_set_new(rec, "noise_lat", json_real(r3.latency_s));
            json_object_set_new(rec, "noise_hash", json_string(h3));
            json_object_set_new(rec, "noise_cause",
                                ncmp.cause[0] ? json_string(ncmp.cause) : json_null());
            json_object_set_new(rec, "noise", side(o->noise, pv.noise));
            json_object_set_new(rec, "text_noise",
                                trit_ledger_text_json(r3.content, r3.content_len));
        }
        int arc = trit_ledger_append(led, rec, err);
        json_decref(rec);

        if (!o->quiet) {
            fprintf(stderr, "round %ld [%s/%s] %-14s v1 %.0f ms v2 %.0f ms", next, pr->category,
                    pr->id, trit_bucket_name(cmp.bucket), 1000 * r1.latency_s, 1000 * r2.latency_s);
            if (cmp.bucket == TRIT_BUCKET_NOMATCH)
                fprintf(stderr, " (byte %ld, token %d, %s)", cmp.div_byte, cmp.div_token_v1,
                        cmp.tie == TRIT_TIE_TIE    ? "tie"
                        : cmp.tie == TRIT_TIE_REAL ? "real"
                                                   : "unclassified");
            if (cmp.cause[0]) fprintf(stderr, " (%s)", cmp.cause);
            if (o->noise) fprintf(stderr, " noise %s", trit_bucket_name(ncmp.bucket));
            fprintf(stderr, "\n");
        }
        trit_client_resp_free(&r1);
        trit_client_resp_free(&r2);
        if (o->noise) trit_client_resp_free(&r3);
        if (arc) {
            rc = TRIT_BURNIN_ERROR;
            break;
        }
        next++;
        done++;
        if (write_state(state_path, o, next, done, err)) {
            rc = TRIT_BURNIN_ERROR;
            break;
        }

        /* spike: > spike_nomatch no-match within the last hour (with enough rounds) */
        if (cmp.bucket <= TRIT_BUCKET_NOMATCH)
            ring_push(&ring, ts, cmp.bucket == TRIT_BUCKET_NOMATCH);
        long cnt;
        double share = ring_share(&ring, ts, &cnt);
        if (o->spike_nomatch > 0 && cnt >= TRIT_MAX(o->spike_min_rounds, 1L) &&
            share > o->spike_nomatch) {
            json_t *ev = json_pack("{s:s,s:s,s:f,s:s,s:I,s:f,s:I}", "type", "event", "event",
                                   "spike", "ts", ts, "time", iso, "round", (json_int_t)(next - 1),
                                   "nomatch_share", share, "window_rounds", (json_int_t)cnt);
            trit_ledger_append(led, ev, NULL);
            json_decref(ev);
            trit_fail(err, TRIT_EINVAL,
                      "spike: %.1f%% no-match over the last hour (%ld compared rounds, limit "
                      "%.0f%%); burn-in halted",
                      100 * share, cnt, 100 * o->spike_nomatch);
            rc = TRIT_BURNIN_SPIKE;
            break;
        }
        if (o->forever || done < o->rounds) sleep_s(o->pace_s - (trit_now_s() - t_round));
    }
    if (stop_requested && !o->quiet)
        fprintf(stderr, "burnin: stopped by signal after round %ld (%ld rounds in ledger)\n",
                next - 1, done);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
out:
    trit_ledger_close(led);
    if (lock_fd >= 0) close(lock_fd);
    free(ring.ts);
    free(ring.nm);
    free(state_path);
    trit_prompts_free(prompts, np);
    return rc;
}
