/* server/metrics.c — Prometheus counters, a latency histogram and token throughput, rendered
 * in the text exposition format (version 0.0.4). Thread-safe (one mutex). */
#include "server/server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 64
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NB ((int)TRIT_ARRAY_LEN(buckets))

typedef struct series {
    char route[32];
    int code;
    unsigned long count;
} series;

typedef struct hist {
    char route[32];
    unsigned long b[NB + 1]; /* cumulative per bucket, last = +Inf */
    double sum;
    unsigned long count;
} hist;

struct srv_metrics {
    pthread_mutex_t mu;
    series s[MAX_SERIES];
    int ns;
    hist h[MAX_SERIES];
    int nh;
    unsigned long long prompt_tokens, gen_tokens;
    double gen_seconds;
    double last_tps; /* generated tokens/s of the most recent request that generated */
    unsigned long long drafted, accepted;           /* prompt-lookup drafts (--draft) */
    unsigned long long steps, step_seqs, step_rows; /* batched forward passes, their sequences
                                                       and token rows */
    srv_metrics_pcache pc;                          /* the prompt cache, as last set */
};

/* Counters start at zero with the process; /metrics reports them since the start. */
srv_metrics *srv_metrics_new(void) {
    srv_metrics *m = xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

/* The metrics die with the server. */
void srv_metrics_free(srv_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* One finished request: its route, status and latency (a histogram per route). */
void srv_metrics_request(srv_metrics *m, const char *route, int code, double seconds) {
    pthread_mutex_lock(&m->mu);
    int i;
    for (i = 0; i < m->ns; i++)
        if (m->s[i].code == code && !strcmp(m->s[i].route, route)) break;
    if (i == m->ns && m->ns < MAX_SERIES) {
        snprintf(m->s[i].route, sizeof m->s[i].route, "%s", route);
        m->s[i].code = code;
        m->ns++;
    }
    if (i < m->ns) m->s[i].count++;
    for (i = 0; i < m->nh; i++)
        if (!strcmp(m->h[i].route, route)) break;
    if (i == m->nh && m->nh < MAX_SERIES) {
        snprintf(m->h[i].route, sizeof m->h[i].route, "%s", route);
        m->nh++;
    }
    if (i < m->nh) {
        hist *h = &m->h[i];
        for (int b = 0; b < NB; b++)
            if (seconds <= buckets[b]) h->b[b]++;
        h->b[NB]++;
        h->sum += seconds;
        h->count++;
    }
    pthread_mutex_unlock(&m->mu);
}

/* One finished generation: prompt and generated tokens, and the decode time. */
void srv_metrics_tokens(srv_metrics *m, long prompt, long generated, double gen_seconds) {
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (unsigned long long)TRIT_MAX(prompt, 0);
    m->gen_tokens += (unsigned long long)TRIT_MAX(generated, 0);
    m->gen_seconds += gen_seconds;
    if (generated > 0 && gen_seconds > 0) m->last_tps = generated / gen_seconds;
    pthread_mutex_unlock(&m->mu);
}

/* Prompt-lookup drafts of one request: proposed and accepted (the --draft gain). */
void srv_metrics_drafts(srv_metrics *m, long drafted, long accepted) {
    pthread_mutex_lock(&m->mu);
    m->drafted += (unsigned long long)TRIT_MAX(drafted, 0);
    m->accepted += (unsigned long long)TRIT_MAX(accepted, 0);
    pthread_mutex_unlock(&m->mu);
}

/* One batched forward pass: how full the batches are (sequences and rows). */
void srv_metrics_step(srv_metrics *m, int seqs, int rows) {
    pthread_mutex_lock(&m->mu);
    m->steps++;
    m->step_seqs += (unsigned long long)TRIT_MAX(seqs, 0);
    m->step_rows += (unsigned long long)TRIT_MAX(rows, 0);
    pthread_mutex_unlock(&m->mu);
}

/* The prompt cache's counters: the scheduler copies them here after each lookup or store. */
void srv_metrics_pcache_set(srv_metrics *m, const srv_metrics_pcache *pc) {
    pthread_mutex_lock(&m->mu);
    m->pc = *pc;
    pthread_mutex_unlock(&m->mu);
}

/* The prompt cache's series (--cache-mib): lookups, hits, reused tokens; entries, bytes. */
static void render_pcache(const srv_metrics_pcache *pc, trit_buf *out) {
    trit_buf_printf(
        out,
        "# HELP trit_prompt_cache_lookups_total Prompts looked up in the prompt cache.\n"
        "# TYPE trit_prompt_cache_lookups_total counter\n"
        "trit_prompt_cache_lookups_total %llu\n"
        "# HELP trit_prompt_cache_hits_total Prompts that took KV cells from the cache.\n"
        "# TYPE trit_prompt_cache_hits_total counter\n"
        "trit_prompt_cache_hits_total %llu\n"
        "# HELP trit_prompt_cache_reused_tokens_total Prompt tokens not evaluated (cells taken).\n"
        "# TYPE trit_prompt_cache_reused_tokens_total counter\n"
        "trit_prompt_cache_reused_tokens_total %llu\n"
        "# HELP trit_prompt_cache_replayed_tokens_total Generated tokens re-evaluated as prompt "
        "rows while idle.\n"
        "# TYPE trit_prompt_cache_replayed_tokens_total counter\n"
        "trit_prompt_cache_replayed_tokens_total %llu\n"
        "# HELP trit_prompt_cache_stores_total Prompts whose cells were kept.\n"
        "# TYPE trit_prompt_cache_stores_total counter\n"
        "trit_prompt_cache_stores_total %llu\n"
        "# HELP trit_prompt_cache_evictions_total Entries evicted to fit the bound.\n"
        "# TYPE trit_prompt_cache_evictions_total counter\n"
        "trit_prompt_cache_evictions_total %llu\n"
        "# HELP trit_prompt_cache_entries Prompts held.\n"
        "# TYPE trit_prompt_cache_entries gauge\n"
        "trit_prompt_cache_entries %llu\n"
        "# HELP trit_prompt_cache_bytes Bytes of KV cells held.\n"
        "# TYPE trit_prompt_cache_bytes gauge\n"
        "trit_prompt_cache_bytes %llu\n"
        "# HELP trit_prompt_cache_max_bytes The bound (--cache-mib).\n"
        "# TYPE trit_prompt_cache_max_bytes gauge\n"
        "trit_prompt_cache_max_bytes %llu\n",
        pc->lookups, pc->hits, pc->reused_tokens, pc->replayed_tokens, pc->stores, pc->evictions,
        pc->entries, pc->bytes, pc->max_bytes);
}

/* Prometheus' text format, as llama-server names its counters where it has them. */
void srv_metrics_render(srv_metrics *m, int queue_depth, int busy_slots, int n_slots,
                        trit_buf *out) {
    pthread_mutex_lock(&m->mu);
    trit_buf_puts(out, "# HELP trit_requests_total HTTP requests by route and status code.\n"
                       "# TYPE trit_requests_total counter\n");
    for (int i = 0; i < m->ns; i++)
        trit_buf_printf(out, "trit_requests_total{route=\"%s\",code=\"%d\"} %lu\n", m->s[i].route,
                        m->s[i].code, m->s[i].count);
    trit_buf_puts(out, "# HELP trit_request_duration_seconds Request latency (until the last "
                       "byte was produced).\n"
                       "# TYPE trit_request_duration_seconds histogram\n");
    for (int i = 0; i < m->nh; i++) {
        hist *h = &m->h[i];
        for (int b = 0; b < NB; b++)
            trit_buf_printf(out,
                            "trit_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lu\n",
                            h->route, buckets[b], h->b[b]);
        trit_buf_printf(out, "trit_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lu\n",
                        h->route, h->b[NB]);
        trit_buf_printf(out, "trit_request_duration_seconds_sum{route=\"%s\"} %.6f\n", h->route,
                        h->sum);
        trit_buf_printf(out, "trit_request_duration_seconds_count{route=\"%s\"} %lu\n", h->route,
                        h->count);
    }
    trit_buf_printf(out,
                    "# HELP trit_prompt_tokens_total Prompt tokens evaluated.\n"
                    "# TYPE trit_prompt_tokens_total counter\n"
                    "trit_prompt_tokens_total %llu\n"
                    "# HELP trit_generated_tokens_total Tokens generated.\n"
                    "# TYPE trit_generated_tokens_total counter\n"
                    "trit_generated_tokens_total %llu\n"
                    "# HELP trit_generation_seconds_total Time spent generating tokens.\n"
                    "# TYPE trit_generation_seconds_total counter\n"
                    "trit_generation_seconds_total %.6f\n"
                    "# HELP trit_tokens_per_second Generation speed of the latest request.\n"
                    "# TYPE trit_tokens_per_second gauge\n"
                    "trit_tokens_per_second %.3f\n"
                    "# HELP trit_draft_tokens_total Prompt-lookup drafted tokens evaluated.\n"
                    "# TYPE trit_draft_tokens_total counter\n"
                    "trit_draft_tokens_total %llu\n"
                    "# HELP trit_draft_accepted_total Drafted tokens that became output.\n"
                    "# TYPE trit_draft_accepted_total counter\n"
                    "trit_draft_accepted_total %llu\n"
                    "# HELP trit_batch_steps_total Batched forward passes (one per step).\n"
                    "# TYPE trit_batch_steps_total counter\n"
                    "trit_batch_steps_total %llu\n"
                    "# HELP trit_batch_sequences_total Sequences in those passes (summed).\n"
                    "# TYPE trit_batch_sequences_total counter\n"
                    "trit_batch_sequences_total %llu\n"
                    "# HELP trit_batch_rows_total Token rows evaluated by those passes.\n"
                    "# TYPE trit_batch_rows_total counter\n"
                    "trit_batch_rows_total %llu\n"
                    "# HELP trit_queue_depth Requests waiting for a slot.\n"
                    "# TYPE trit_queue_depth gauge\n"
                    "trit_queue_depth %d\n"
                    "# HELP trit_slots_busy Slots processing a request.\n"
                    "# TYPE trit_slots_busy gauge\n"
                    "trit_slots_busy %d\n"
                    "# HELP trit_slots_total Slots (KV caches).\n"
                    "# TYPE trit_slots_total gauge\n"
                    "trit_slots_total %d\n",
                    m->prompt_tokens, m->gen_tokens, m->gen_seconds, m->last_tps, m->drafted,
                    m->accepted, m->steps, m->step_seqs, m->step_rows, queue_depth, busy_slots,
                    n_slots);
    render_pcache(&m->pc, out);
    pthread_mutex_unlock(&m->mu);
}
