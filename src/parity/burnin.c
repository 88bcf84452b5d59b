/* burnin.c — the shadow burn-in loop: next prompt to gen-1 and gen-2 concurrently
 * (temperature 0, top_logprobs), classify, append one fsync'd ledger line, update the state
 * file by atomic rename.
 *
 * Crash safety: the ledger is the source of truth. Round r is "done" exactly when its line is
 * in the ledger. On start the next round is (highest complete round in the ledger) + 1 and the
 * prompt is a function of the round number, so a crash anywhere — before the append (round
 * redone), during it (truncated line skipped with a warning, round redone), or between the
 * append and the state update (state is stale, the ledger wins) — loses and duplicates
 * nothing. The ledger's writer lock (trit_ledger_open) keeps a second burn-in, a shadow proxy
 * or a ppl run from writing the same ledger. */
#include "parity/burnin.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set by a signal, read by every lane: a lock-free atomic (safe in a signal handler, and no
 * data race between threads, which volatile sig_atomic_t does not promise). */
static atomic_int stop_requested;
void trit_burnin_request_stop(void) {
    atomic_store(&stop_requested, 1);
}
static void on_signal(int sig) {
    (void)sig;
    atomic_store(&stop_requested, 1);
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
    o->concurrency = 1;
    o->ident_every = 100;
}

/* ---- resume: what the ledger says ---- */
typedef struct hour_ring {
    double *ts;
    signed char *nm; /* 1 no-match, 0 other compared */
    long n, cap, head;
} hour_ring;

static void ring_push(hour_ring *h, double ts, bool nomatch) {
    if (h->n == h->cap) {
        /* compact then grow (nothing to move before the first push: no buffers yet) */
        long live = h->n - h->head;
        if (h->head > 0) {
            memmove(h->ts, h->ts + h->head, (size_t)live * sizeof *h->ts);
            memmove(h->nm, h->nm + h->head, (size_t)live);
        }
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

/* ---- what each side is: model ids and identities ---- */
static json_t *side(const char *url, const char *model) {
    return json_pack("{s:s,s:s}", "url", url, "model", model ? model : "");
}

typedef struct prov {
    char gen1[128], gen2[128], noise[128]; /* model ids */
    bool have_gen1, have_gen2, have_noise;
} prov;

/* each side's model id (/v1/models), asked with that side's own key */
static void refresh_prov(const trit_burnin_opts *o, prov *p) {
    if (!p->have_gen1)
        p->have_gen1 =
            !trit_client_model_id(o->gen1_url, o->gen1_key, 5, p->gen1, sizeof p->gen1, NULL);
    if (!p->have_gen2)
        p->have_gen2 =
            !trit_client_model_id(o->gen2_url, o->gen2_key, 5, p->gen2, sizeof p->gen2, NULL);
    if (o->noise_url && !p->have_noise)
        p->have_noise =
            !trit_client_model_id(o->noise_url, o->noise_key, 5, p->noise, sizeof p->noise, NULL);
}

static void sleep_s(double s) {
    double end = trit_now_s() + s;
    while (!atomic_load(&stop_requested)) {
        double left = end - trit_now_s();
        if (left <= 0) break;
        if (left > 0.2) left = 0.2;
        struct timespec ts = {(time_t)left, (long)((left - (time_t)left) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* ---- the state file (a hint; the ledger wins) ---- */

/* What the last run left: next round and the prompt file's hash ("" when absent). */
typedef struct state_hint {
    long next_round;
    char prompts_sha256[65];
} state_hint;

static int read_state(const char *path, state_hint *h) {
    json_t *j = json_load_file(path, 0, NULL);
    if (!j) return -1;
    json_t *v = json_object_get(j, "next_round");
    const char *sha = json_string_value(json_object_get(j, "prompts_sha256"));
    int rc = json_is_integer(v) ? 0 : -1;
    if (!rc) h->next_round = (long)json_integer_value(v);
    snprintf(h->prompts_sha256, sizeof h->prompts_sha256, "%s", sha ? sha : "");
    json_decref(j);
    return rc;
}

/* ---- one burn-in run ---- */

/* A finished round waiting for its turn: rounds are appended in round order, so the ledger
 * always holds rounds first..next-1 without a gap and a resume at (highest round) + 1 redoes
 * exactly the rounds that were in flight. */
typedef struct pending {
    bool ready;
    long round;
    json_t *rec;        /* the round record */
    trit_bucket bucket; /* for the spike check */
    double ts;
    char *line; /* the per-round line for stderr (NULL when quiet) */
} pending;

enum { SIDE_GEN1, SIDE_GEN2, SIDE_NOISE, SIDE_N };

typedef struct burnin {
    const trit_burnin_opts *o;
    trit_prompt *prompts;
    int n_prompts;
    char prompts_sha256[65]; /* of the prompt file's bytes, kept in the state file */
    char *state_path;
    trit_ledger *ledger; /* open = locked */
    hour_ring ring;      /* compared rounds of the last hour, for the spike check */
    /* the lanes share the rest, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* a round was written, or the run is stopping */
    long next, done;      /* next round to write; rounds in the ledger */
    long issue, to_issue; /* next round to hand to a lane; rounds this run still may start */
    pending *win;         /* rounds issued, not yet written: round r in win[r % n_win] */
    long n_win;
    trit_burnin_status halt; /* OK while running; ERROR or SPIKE stops issuing and writing */
    trit_err first_err;
    prov pv;
    /* identities: read by one lane at a time (ident_mu), swapped under mu */
    pthread_mutex_t ident_mu;
    trit_ident_track sides[SIDE_N];
    long ident_read_at; /* issue number at the last periodic read */
} burnin;

static int write_state(const burnin *b, trit_err *err) {
    const trit_burnin_opts *o = b->o;
    char ts[32];
    trit_iso8601(trit_wall_s(), ts);
    json_t *j = json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "next_round", (json_int_t)b->next,
                          "rounds_done", (json_int_t)b->done, "ledger", o->ledger_path, "prompts",
                          o->prompts_path, "prompts_sha256", b->prompts_sha256, "v1", o->gen1_url,
                          "v2", o->gen2_url, "updated", ts);
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    /* 0600: the state names servers and files; only the operator needs it */
    int rc = trit_write_file_atomic_mode(b->state_path, s, strlen(s), 0600, err);
    free(s);
    return rc;
}

/* Prompts (and their hash), the state path, and the ledger, opened (and so locked) before it
 * is read, so no other writer can append between the scan and our first round. */
static int burnin_open(burnin *b, trit_err *err) {
    const trit_burnin_opts *o = b->o;
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->ident_mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    const char *urls[SIDE_N] = {o->gen1_url, o->gen2_url, o->noise_url};
    const char *keys[SIDE_N] = {o->gen1_key, o->gen2_key, o->noise_key};
    const char *names[SIDE_N] = {"v1", "v2", "noise"};
    for (int i = 0; i < SIDE_N; i++)
        b->sides[i] = (trit_ident_track){.side = names[i], .url = urls[i], .key = keys[i]};
    if (trit_prompts_load(o->prompts_path, &b->prompts, &b->n_prompts, err)) return -1;
    if (trit_sha256_file(o->prompts_path, b->prompts_sha256, err)) return -1;
    if (o->state_path) {
        b->state_path = xstrdup(o->state_path);
    } else {
        trit_buf sb = {0};
        trit_buf_printf(&sb, "%s.state", o->ledger_path);
        b->state_path = sb.p;
    }
    b->ledger = trit_ledger_open(o->ledger_path, err);
    return b->ledger ? 0 : -1;
}

static void pending_free(pending *p) {
    json_decref(p->rec);
    free(p->line);
    memset(p, 0, sizeof *p);
}

static void burnin_close(burnin *b) {
    trit_ledger_close(b->ledger);
    for (long i = 0; i < b->n_win; i++) pending_free(&b->win[i]);
    free(b->win);
    for (int i = 0; i < SIDE_N; i++) trit_ident_track_free(&b->sides[i]);
    free(b->ring.ts);
    free(b->ring.nm);
    free(b->state_path);
    trit_prompts_free(b->prompts, b->n_prompts);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->ident_mu);
    pthread_mutex_destroy(&b->mu);
}

/* Where to continue: the ledger decides the next round; the state file is compared with it
 * and its prompt hash with the prompt file's (an edited corpus maps rounds to other prompts:
 * said on stderr and recorded as a ledger event). */
static int burnin_resume(burnin *b, trit_err *err) {
    const trit_burnin_opts *o = b->o;
    resume_ctx rctx = {&b->ring, 0};
    trit_ledger_scan_info info;
    if (trit_ledger_scan(o->ledger_path, resume_cb, &rctx, false, &info, err)) return -1;
    b->next = (long)info.max_round + 1;
    b->done = rctx.rounds;
    state_hint st;
    if (read_state(b->state_path, &st) != 0) return 0; /* first run, or no usable state */
    if (st.next_round != b->next && !o->quiet)
        fprintf(stderr,
                "burnin: state file says next round %ld, ledger says %ld; using the ledger\n",
                st.next_round, b->next);
    if (!st.prompts_sha256[0] || !strcmp(st.prompts_sha256, b->prompts_sha256)) return 0;
    fprintf(stderr,
            "burnin: the prompt file %s changed since the last run (sha256 %.16s -> %.16s); "
            "from round %ld on, rounds map to the new corpus\n",
            o->prompts_path, st.prompts_sha256, b->prompts_sha256, b->next);
    char iso[32];
    double now = trit_wall_s();
    trit_iso8601(now, iso);
    json_t *ev = json_pack("{s:s,s:s,s:f,s:s,s:I,s:s,s:s,s:s}", "type", "event", "event",
                           "prompts-changed", "ts", now, "time", iso, "next_round",
                           (json_int_t)b->next, "prompts", o->prompts_path, "old_sha256",
                           st.prompts_sha256, "new_sha256", b->prompts_sha256);
    int rc = trit_ledger_append(b->ledger, ev, err);
    json_decref(ev);
    return rc;
}

/* Stop issuing and writing (the first error wins; caller holds mu). */
static void halt(burnin *b, trit_burnin_status why, const trit_err *err) {
    if (b->halt != TRIT_BURNIN_OK) return;
    b->halt = why;
    if (err) b->first_err = *err;
    pthread_cond_broadcast(&b->cv);
}

/* ---- identities ---- */

json_t *trit_ident_track_read(const trit_ident_track *s, double timeout_s, char *why,
                              size_t why_sz) {
    trit_client_resp r; /* initialised by the call */
    json_t *ident = trit_client_identity(s->url, s->key, timeout_s, &r);
    snprintf(why, why_sz, "%s", ident ? "" : r.msg[0] ? r.msg : "no identity");
    trit_client_resp_free(&r);
    return ident;
}

/* The identity record of a side that could not be read: unknown, with the reason, never a
 * guessed identity ("ident" null is what readers skip as "no identity object"). */
static json_t *unknown_ident_json(const char *side, const char *why) {
    double ts = trit_wall_s();
    char iso[32];
    trit_iso8601(ts, iso);
    return json_pack("{s:s,s:f,s:s,s:s,s:n,s:n,s:s}", "type", "identity", "ts", ts, "time", iso,
                     "side", side, "digest", "ident", "error", why && why[0] ? why : "unknown");
}

int trit_ident_track_take(trit_ident_track *s, json_t *fresh, const char *why, trit_ledger *l,
                          bool force, bool quiet, trit_err *err) {
    char d[17] = "";
    if (fresh) trit_identity_digest(fresh, d);
    s->stale = false;
    /* a known side that cannot be read now (it is down) has not changed: keep what it was;
     * once it answers again, a different digest is recorded like any other change */
    if (!force && !fresh && s->ident) return 0;
    if (!force && !strcmp(d, s->digest)) {
        json_decref(fresh);
        return 0;
    }
    if (!quiet)
        fprintf(stderr, "%s identity: %s%s\n", s->side,
                fresh ? "digest " : "unknown: ", fresh ? d : why);
    json_t *rec =
        fresh ? trit_ledger_identity_json(s->side, fresh) : unknown_ident_json(s->side, why);
    int rc = trit_ledger_append(l, rec, err);
    json_decref(rec);
    json_decref(s->ident);
    s->ident = fresh;
    memcpy(s->digest, d, sizeof d);
    return rc;
}

void trit_ident_track_free(trit_ident_track *s) {
    json_decref(s->ident);
    s->ident = NULL;
    s->digest[0] = 0;
}

/* How long an identity read may take: the request timeout, at most 60 s. A trit serve that
 * has just started may still be hashing its model (its /props says "pending" and the client
 * asks again until the deadline); a read cut short there would record an identity without
 * the model's sha256, and the next read a different digest (the shadow proxy reads the
 * same way). */
static double ident_timeout(const burnin *b) {
    return TRIT_MIN(b->o->timeout_s, 60.0);
}

/* The sides to (re-)read before the next round: all at the start; afterwards a side a round
 * found unreachable, and every side each ident_every rounds. */
static bool ident_due(const burnin *b, const trit_ident_track *s) {
    long every = b->o->ident_every;
    return s->url && (s->stale || (every > 0 && b->issue - b->ident_read_at >= every));
}

/* Re-read the identities that are due (one lane at a time; the reads run outside mu so the
 * other lanes keep writing rounds). */
static void refresh_idents(burnin *b) {
    pthread_mutex_lock(&b->mu);
    bool due = false;
    for (int i = 0; i < SIDE_N; i++) due |= ident_due(b, &b->sides[i]);
    pthread_mutex_unlock(&b->mu);
    if (!due || pthread_mutex_trylock(&b->ident_mu)) return; /* another lane is reading */
    bool want[SIDE_N];
    pthread_mutex_lock(&b->mu);
    bool periodic = b->o->ident_every > 0 && b->issue - b->ident_read_at >= b->o->ident_every;
    for (int i = 0; i < SIDE_N; i++) want[i] = ident_due(b, &b->sides[i]);
    if (periodic) b->ident_read_at = b->issue;
    pthread_mutex_unlock(&b->mu);
    json_t *fresh[SIDE_N] = {0};
    char why[SIDE_N][160];
    for (int i = 0; i < SIDE_N; i++)
        if (want[i])
            fresh[i] = trit_ident_track_read(&b->sides[i], ident_timeout(b), why[i], sizeof why[i]);
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < SIDE_N; i++) {
        trit_err err = {0};
        if (!want[i]) continue;
        if (b->halt == TRIT_BURNIN_OK && trit_ident_track_take(&b->sides[i], fresh[i], why[i],
                                                               b->ledger, false, b->o->quiet, &err))
            halt(b, TRIT_BURNIN_ERROR, &err);
        else if (b->halt != TRIT_BURNIN_OK)
            json_decref(fresh[i]);
    }
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_unlock(&b->ident_mu);
}

/* ---- one round ---- */

/* The noise lane's fields on a round record: gen-1 against itself. */
static void add_noise_fields(json_t *rec, const trit_burnin_opts *o, const prov *pv,
                             const char *noise_ident, const trit_client_resp *r3,
                             const trit_compare *ncmp) {
    char h3[65];
    trit_sha256_hex(r3->content, r3->content_len, h3);
    json_object_set_new(rec, "noise_bucket", json_string(trit_bucket_name(ncmp->bucket)));
    json_object_set_new(rec, "noise_tie",
                        ncmp->tie == TRIT_TIE_TIE    ? json_string("tie")
                        : ncmp->tie == TRIT_TIE_REAL ? json_string("real")
                                                     : json_null());
    json_object_set_new(rec, "noise_div_token", json_integer(ncmp->div_token));
    json_object_set_new(rec, "noise_lat", json_real(r3->latency_s));
    json_object_set_new(rec, "noise_hash", json_string(h3));
    json_object_set_new(rec, "noise_cause",
                        ncmp->cause[0] ? json_string(ncmp->cause) : json_null());
    json_object_set_new(rec, "noise", side(o->noise_url, pv->noise));
    json_object_set_new(rec, "noise_ident",
                        noise_ident[0] ? json_string(noise_ident) : json_null());
    json_object_set_new(rec, "text_noise", trit_ledger_text_json(r3->content, r3->content_len));
}

/* "tie", "real" or "unclassified" */
static const char *tie_word(trit_tie t) {
    return t == TRIT_TIE_TIE ? "tie" : t == TRIT_TIE_REAL ? "real" : "unclassified";
}

/* The per-round line for stderr (printed when the round is written, in round order). */
static char *round_line(long round, const trit_prompt *pr, const trit_client_resp *r1,
                        const trit_client_resp *r2, const trit_compare *cmp,
                        const trit_compare *ncmp) {
    trit_buf l = {0};
    trit_buf_printf(&l, "round %ld [%s/%s] %-14s v1 %.0f ms v2 %.0f ms", round, pr->category,
                    pr->id, trit_bucket_name(cmp->bucket), 1000 * r1->latency_s,
                    1000 * r2->latency_s);
    if (cmp->bucket == TRIT_BUCKET_NOMATCH)
        trit_buf_printf(&l, " (byte %ld, token %d, %s)", cmp->div_byte, cmp->div_token,
                        tie_word(cmp->tie));
    if (cmp->cause[0]) trit_buf_printf(&l, " (%s)", cmp->cause);
    if (ncmp) {
        trit_buf_printf(&l, " noise %s", trit_bucket_name(ncmp->bucket));
        if (ncmp->bucket == TRIT_BUCKET_NOMATCH) trit_buf_printf(&l, " (%s)", tie_word(ncmp->tie));
    }
    trit_buf_puts(&l, "\n");
    return l.p;
}

/* A lane's view of the run for one round: the identities it names (held references). */
typedef struct round_idents {
    json_t *ident[SIDE_N];
    char digest[SIDE_N][17];
} round_idents;

/* Round r: its prompt to gen-1, gen-2 (and the noise lane) at once, each with its own key;
 * classify; build the record into *p (written later, in round order). Runs outside mu. */
static void burnin_round(burnin *b, long r, const round_idents *ids, pending *p) {
    const trit_burnin_opts *o = b->o;
    const trit_prompt *pr = &b->prompts[r % b->n_prompts];
    /* the request, the same on every side but the URL and the key */
    trit_client_msg msg = {"user", pr->prompt};
    trit_client_req q = {.prompt = pr->prompt,
                         .messages = &msg,
                         .n_messages = 1,
                         .max_tokens = o->max_tokens,
                         .temperature = 0,
                         .top_logprobs = o->top_logprobs,
                         .seed = 42,
                         .timeout_s = o->timeout_s};
    trit_client_req q1 = q, q2 = q, q3 = q;
    q1.url = o->gen1_url, q1.api_key = o->gen1_key;
    q2.url = o->gen2_url, q2.api_key = o->gen2_key;
    q3.url = o->noise_url, q3.api_key = o->noise_key;
    trit_client_resp r1, r2, r3;
    trit_client_call_kind k = o->chat ? TRIT_CLIENT_CALL_CHAT : TRIT_CLIENT_CALL_COMPLETION;
    trit_client_call calls[3] = {{k, &q1, &r1}, {k, &q2, &r2}, {k, &q3, &r3}};
    trit_client_run_many(calls, o->noise_url ? 3 : 2);
    double ts = trit_wall_s();

    /* classify gen-2 against gen-1, and the noise lane against gen-1 */
    trit_compare cmp, ncmp;
    trit_compare_resps(&r1, &r2, o->tie_eps, &cmp);
    if (o->noise_url) trit_compare_resps(&r1, &r3, o->tie_eps, &ncmp);

    /* model ids a side did not give before (asked outside mu), and the sides to read again:
     * an unreachable side may have been restarted as something else */
    pthread_mutex_lock(&b->mu);
    prov pv = b->pv;
    b->sides[SIDE_GEN1].stale |= r1.kind != TRIT_CLIENT_OK;
    b->sides[SIDE_GEN2].stale |= r2.kind != TRIT_CLIENT_OK;
    if (o->noise_url) b->sides[SIDE_NOISE].stale |= r3.kind != TRIT_CLIENT_OK;
    pthread_mutex_unlock(&b->mu);
    if ((!pv.have_gen1 && r1.kind == TRIT_CLIENT_OK) ||
        (!pv.have_gen2 && r2.kind == TRIT_CLIENT_OK)) {
        refresh_prov(o, &pv);
        pthread_mutex_lock(&b->mu);
        if (!b->pv.have_gen1 && pv.have_gen1) memcpy(b->pv.gen1, pv.gen1, sizeof pv.gen1);
        if (!b->pv.have_gen2 && pv.have_gen2) memcpy(b->pv.gen2, pv.gen2, sizeof pv.gen2);
        if (!b->pv.have_noise && pv.have_noise) memcpy(b->pv.noise, pv.noise, sizeof pv.noise);
        b->pv.have_gen1 |= pv.have_gen1;
        b->pv.have_gen2 |= pv.have_gen2;
        b->pv.have_noise |= pv.have_noise;
        pthread_mutex_unlock(&b->mu);
    }

    /* the record: the one builder shared with the shadow proxy, the token split, the noise
     * lane */
    trit_round_meta meta = {.source = "burnin",
                            .ts = ts,
                            .round = r,
                            .prompt_id = pr->id,
                            .category = pr->category,
                            .endpoint = o->chat ? "chat" : "completions",
                            .gen1_url = o->gen1_url,
                            .gen1_model = pv.gen1,
                            .gen2_url = o->gen2_url,
                            .gen2_model = pv.gen2,
                            .gen1_ident = ids->ident[SIDE_GEN1],
                            .gen2_ident = ids->ident[SIDE_GEN2]};
    p->rec = trit_ledger_round_json(&meta, &r1, &r2, &cmp);
    if (o->noise_url) add_noise_fields(p->rec, o, &pv, ids->digest[SIDE_NOISE], &r3, &ncmp);
    p->line = o->quiet ? NULL : round_line(r, pr, &r1, &r2, &cmp, o->noise_url ? &ncmp : NULL);
    p->round = r;
    p->bucket = cmp.bucket;
    p->ts = ts;
    p->ready = true;
    trit_client_resp_free(&r1);
    trit_client_resp_free(&r2);
    if (o->noise_url) trit_client_resp_free(&r3);
}

/* More than spike_nomatch no-match among the last hour's compared rounds (once the hour
 * holds spike_min_rounds): record a spike event, say why, and return true (halt). */
static bool burnin_spike(burnin *b, trit_bucket bucket, double ts, trit_err *err) {
    const trit_burnin_opts *o = b->o;
    if (bucket <= TRIT_BUCKET_NOMATCH) ring_push(&b->ring, ts, bucket == TRIT_BUCKET_NOMATCH);
    long cnt;
    double share = ring_share(&b->ring, ts, &cnt);
    if (o->spike_nomatch <= 0 || cnt < TRIT_MAX(o->spike_min_rounds, 1L) ||
        share <= o->spike_nomatch)
        return false;
    char iso[32];
    trit_iso8601(ts, iso);
    json_t *ev = json_pack("{s:s,s:s,s:f,s:s,s:I,s:f,s:I}", "type", "event", "event", "spike", "ts",
                           ts, "time", iso, "round", (json_int_t)(b->next - 1), "nomatch_share",
                           share, "window_rounds", (json_int_t)cnt);
    trit_ledger_append(b->ledger, ev, NULL); /* best effort: the halt matters more */
    json_decref(ev);
    trit_fail(err, TRIT_EINVAL,
              "spike: %.1f%% no-match over the last hour (%ld compared rounds, limit %.0f%%); "
              "burn-in halted",
              100 * share, cnt, 100 * o->spike_nomatch);
    return true;
}

/* Write every finished round whose turn has come, in round order: append, then the state
 * file, then the spike check (a round is done once its line is in the ledger; only then does
 * the state move). Caller holds mu. */
static void write_ready(burnin *b) {
    while (b->halt == TRIT_BURNIN_OK) {
        pending *p = &b->win[b->next % b->n_win];
        if (!p->ready || p->round != b->next) return;
        /* rounds reach the ledger in order, each once: the record says the round it is */
        assert(json_integer_value(json_object_get(p->rec, "round")) == b->next);
        trit_err err = {0};
        if (trit_ledger_append(b->ledger, p->rec, &err)) {
            halt(b, TRIT_BURNIN_ERROR, &err);
            return;
        }
        if (p->line) fputs(p->line, stderr);
        b->next++;
        b->done++;
        trit_bucket bucket = p->bucket;
        double ts = p->ts;
        pending_free(p);
        if (write_state(b, &err)) {
            halt(b, TRIT_BURNIN_ERROR, &err);
            return;
        }
        if (burnin_spike(b, bucket, ts, &err)) {
            halt(b, TRIT_BURNIN_SPIKE, &err);
            return;
        }
        pthread_cond_broadcast(&b->cv);
    }
}

/* Whether a lane may start another round (caller holds mu). */
static bool may_issue(const burnin *b) {
    return b->halt == TRIT_BURNIN_OK && !atomic_load(&stop_requested) &&
           (b->o->forever || b->to_issue > 0);
}

/* Wait on cv for at most 0.2 s (a signal cannot wake a condition variable: stop_requested is
 * polled). Caller holds mu. */
static void wait_a_little(burnin *b) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += 200000000L;
    if (t.tv_nsec >= 1000000000L) t.tv_sec++, t.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&b->cv, &b->mu, &t);
}

/* One lane: take the next round number, run it, hand it to the writer; pace from this lane's
 * round start to its next (N lanes = N clients each at --pace). A round is taken only while
 * fewer than n_win rounds wait to be written, so a slow round holds back at most n_win. */
static void *lane(void *arg) {
    burnin *b = arg;
    const trit_burnin_opts *o = b->o;
    double last_start = -INFINITY;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        bool more = may_issue(b);
        pthread_mutex_unlock(&b->mu);
        if (!more) break;
        sleep_s(o->pace_s - (trit_now_s() - last_start));
        refresh_idents(b);
        pthread_mutex_lock(&b->mu);
        while (may_issue(b) && b->issue >= b->next + b->n_win) wait_a_little(b);
        if (!may_issue(b)) {
            pthread_mutex_unlock(&b->mu);
            break;
        }
        long r = b->issue++;
        b->to_issue--;
        round_idents ids;
        for (int i = 0; i < SIDE_N; i++) {
            ids.ident[i] = json_incref(b->sides[i].ident);
            memcpy(ids.digest[i], b->sides[i].digest, sizeof ids.digest[i]);
        }
        pthread_mutex_unlock(&b->mu);
        last_start = trit_now_s();
        pending p = {0};
        burnin_round(b, r, &ids, &p);
        pthread_mutex_lock(&b->mu);
        /* references are taken and dropped under mu: jansson's refcount is atomic, but its
         * check for immortal values reads the count plainly */
        for (int i = 0; i < SIDE_N; i++) json_decref(ids.ident[i]);
        b->win[r % b->n_win] = p;
        write_ready(b);
        pthread_mutex_unlock(&b->mu);
    }
    return NULL;
}

/* The identities every run starts with: one "identity" record per side (unknown ones too).
 * All sides are read before any record is written, so a run whose gen-1 and gen-2 turn out
 * to be one server (the same instance behind two URLs) is refused with nothing appended. */
static int start_idents(burnin *b, trit_err *err) {
    json_t *fresh[SIDE_N] = {0};
    char why[SIDE_N][160];
    for (int i = 0; i < SIDE_N; i++) {
        why[i][0] = 0;
        if (b->sides[i].url)
            fresh[i] = trit_ident_track_read(&b->sides[i], ident_timeout(b), why[i], sizeof why[i]);
    }
    int rc = 0;
    if (fresh[SIDE_GEN1] && fresh[SIDE_GEN2] &&
        trit_identity_same_server(fresh[SIDE_GEN1], fresh[SIDE_GEN2]))
        rc = trit_fail(err, TRIT_EINVAL,
                       "--v1 %s and --v2 %s are the same server (one instance id): a server "
                       "compared with itself proves nothing",
                       b->o->gen1_url, b->o->gen2_url);
    for (int i = 0; i < SIDE_N; i++) {
        if (!b->sides[i].url) continue;
        if (rc) { /* refused: nothing is written */
            json_decref(fresh[i]);
            continue;
        }
        rc = trit_ident_track_take(&b->sides[i], fresh[i], why[i], b->ledger, true, b->o->quiet,
                                   err);
    }
    b->ident_read_at = b->issue;
    return rc;
}

/* Rounds until the target, a signal, a spike or an error, --concurrency lanes at once. */
static trit_burnin_status burnin_loop(burnin *b, trit_err *err) {
    const trit_burnin_opts *o = b->o;
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    atomic_store(&stop_requested, 0);
    refresh_prov(o, &b->pv);
    int n = TRIT_MAX(o->concurrency, 1);
    b->issue = b->next;
    b->to_issue = o->forever ? 0 : o->rounds - b->done;
    b->n_win = 4L * n; /* finished rounds may wait this many deep for a slow one */
    b->win = xcalloc((size_t)b->n_win, sizeof *b->win);
    if (start_idents(b, err)) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        return TRIT_BURNIN_ERROR;
    }
    pthread_t *th = xcalloc((size_t)n, sizeof *th);
    int started = 0;
    for (; started < n; started++)
        if (pthread_create(&th[started], NULL, lane, b)) break;
    if (started == 0) lane(b); /* no thread to be had: one lane, here */
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    trit_burnin_status rc = b->halt;
    if (rc != TRIT_BURNIN_OK) *err = b->first_err;
    if (rc == TRIT_BURNIN_OK && atomic_load(&stop_requested)) {
        rc = TRIT_BURNIN_INTERRUPTED;
        if (!o->quiet)
            fprintf(stderr, "burnin: stopped by signal after round %ld (%ld rounds in ledger)\n",
                    b->next - 1, b->done);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}

trit_burnin_status trit_burnin_run(const trit_burnin_opts *o, trit_err *err) {
    if (!o->gen1_url || !o->gen2_url)
        return trit_fail(err, TRIT_EINVAL, "--v1 and --v2 are required"), TRIT_BURNIN_ERROR;
    if (!o->forever && o->rounds <= 0)
        return trit_fail(err, TRIT_EINVAL, "give --rounds N (N > 0) or --forever"),
               TRIT_BURNIN_ERROR;
    if (o->concurrency < 1 || o->concurrency > TRIT_BURNIN_MAX_CONCURRENCY)
        return trit_fail(err, TRIT_EINVAL, "concurrency must be 1..%d, got %d",
                         TRIT_BURNIN_MAX_CONCURRENCY, o->concurrency),
               TRIT_BURNIN_ERROR;
    if (trit_same_server_url(o->gen1_url, o->gen2_url))
        return trit_fail(err, TRIT_EINVAL,
                         "--v1 %s and --v2 %s are the same server: a server compared with itself "
                         "proves nothing",
                         o->gen1_url, o->gen2_url),
               TRIT_BURNIN_ERROR;
    burnin b = {.o = o};
    trit_burnin_status rc = TRIT_BURNIN_OK;
    /* open (locks the ledger), then resume from what the ledger holds */
    if (burnin_open(&b, err) || burnin_resume(&b, err)) {
        burnin_close(&b);
        return TRIT_BURNIN_ERROR;
    }
    if (b.done > 0 && !o->quiet)
        fprintf(stderr, "burnin: resuming at round %ld (%ld rounds already in %s)\n", b.next,
                b.done, o->ledger_path);
    if (!o->forever && b.done >= o->rounds) {
        /* a finished run, re-run: nothing to add */
        if (!o->quiet)
            fprintf(stderr, "burnin: %s already holds %ld rounds (target %ld); nothing to do\n",
                    o->ledger_path, b.done, o->rounds);
    } else if (write_state(&b, err)) {
        rc = TRIT_BURNIN_ERROR;
    } else {
        rc = burnin_loop(&b, err);
    }
    burnin_close(&b);
    return rc;
}
