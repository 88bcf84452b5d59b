/* test_pcache — the server's prompt cache store (server/pcache.h) without a model: the best
 * entry by the caller's reuse rating, least recently used eviction by bytes, prompts that
 * supersede their prefixes, entries over the bound, counters; and the request field. */
#include "server/pcache.h"
#include "server/server.h"

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

/* A rating that takes every shared token but the prompt's last (and records the call). */
static int last_made;
static int take_common(void *ud, int made, int common, int n) {
    (void)ud;
    last_made = made;
    return common < n ? common : n - 1;
}

/* A block of `bytes` bytes, as the scheduler hands one over (the store frees it). */
static void *blk(size_t bytes) {
    void *p = malloc(bytes);
    cr_assert_not_null(p);
    memset(p, 0xab, bytes);
    return p;
}

static int best(srv_pcache *pc, const int32_t *t, int n) {
    const void *b;
    int nb;
    const int p = srv_pcache_best(pc, t, n, take_common, NULL, &b, &nb);
    cr_assert_eq(p > 0, b != NULL, "a block exactly when cells are taken");
    return p;
}

Test(pcache, best_entry_and_counters) {
    srv_pcache *pc = srv_pcache_new(1 << 20);
    const int32_t a[] = {1, 2, 3, 4, 5, 6}, b[] = {1, 2, 9, 9}, q[] = {1, 2, 3, 4, 7, 7, 7};
    srv_pcache_put(pc, a, 6, blk(600), 600);
    srv_pcache_put(pc, b, 4, blk(400), 400);
    cr_expect_eq(best(pc, q, 7), 4, "the longest shared prefix wins");
    cr_expect_eq(last_made, 6, "the rule sees the entry's own length"); /* b: no better */
    const int32_t none[] = {8, 8};
    cr_expect_eq(best(pc, none, 2), 0);
    const srv_pcache_stats st = srv_pcache_stats_get(pc);
    cr_expect_eq(st.lookups, 2);
    cr_expect_eq(st.hits, 1);
    cr_expect_eq(st.reused_tokens, 4);
    cr_expect_eq(st.entries, 2);
    cr_expect_eq(st.bytes, 1000);
    srv_pcache_free(pc);
}

Test(pcache, lru_by_bytes) {
    srv_pcache *pc = srv_pcache_new(1000);
    const int32_t a[] = {1, 1}, b[] = {2, 2}, c[] = {3, 3}, d[] = {4, 4};
    srv_pcache_put(pc, a, 2, blk(400), 400);
    srv_pcache_put(pc, b, 2, blk(400), 400);
    const int32_t qa[] = {1, 1, 5};
    cr_expect_eq(best(pc, qa, 3), 2);        /* a is now more recent than b */
    srv_pcache_put(pc, c, 2, blk(400), 400); /* 1200 > 1000: b (least recent) goes */
    const int32_t qb[] = {2, 2, 5}, qc[] = {3, 3, 5};
    cr_expect_eq(best(pc, qb, 3), 0, "the least recently used entry was evicted");
    cr_expect_eq(best(pc, qa, 3), 2);
    cr_expect_eq(best(pc, qc, 3), 2);
    srv_pcache_stats st = srv_pcache_stats_get(pc);
    cr_expect_eq(st.evictions, 1);
    cr_expect_leq(st.bytes, 1000);
    srv_pcache_put(pc, d, 2, blk(1001), 1001); /* over the bound: not kept, nothing evicted */
    st = srv_pcache_stats_get(pc);
    cr_expect_eq(st.entries, 2);
    cr_expect_eq(st.evictions, 1);
    srv_pcache_put(pc, d, 2, blk(1000), 1000); /* fits only alone */
    st = srv_pcache_stats_get(pc);
    cr_expect_eq(st.entries, 1);
    cr_expect_eq(st.bytes, 1000);
    cr_expect_eq(st.evictions, 3);
    srv_pcache_free(pc);
}

Test(pcache, supersede_and_duplicates) {
    srv_pcache *pc = srv_pcache_new(1 << 20);
    const int32_t t1[] = {1, 2, 3}, t2[] = {1, 2, 3, 4, 5}, t3[] = {1, 2};
    srv_pcache_put(pc, t1, 3, blk(30), 30);
    srv_pcache_put(pc, t2, 5, blk(50), 50); /* the next turn holds the first: one entry */
    srv_pcache_stats st = srv_pcache_stats_get(pc);
    cr_expect_eq(st.entries, 1);
    cr_expect_eq(st.bytes, 50);
    srv_pcache_put(pc, t3, 2, blk(20), 20); /* already held (a prefix of an entry) */
    srv_pcache_put(pc, t2, 5, blk(50), 50); /* the same prompt again */
    st = srv_pcache_stats_get(pc);
    cr_expect_eq(st.entries, 1);
    cr_expect_eq(st.stores, 2);
    srv_pcache_free(pc);
}

Test(pcache, zero_bound_keeps_nothing) {
    srv_pcache *pc = srv_pcache_new(0);
    const int32_t t[] = {1, 2, 3};
    srv_pcache_put(pc, t, 3, blk(30), 30);
    cr_expect_eq(best(pc, t, 3), 0);
    cr_expect_eq(srv_pcache_stats_get(pc).entries, 0);
    srv_pcache_free(pc);
}

/* "cache_prompt" per request, as llama-server has it: on unless false; a non-boolean is a 400. */
Test(pcache, request_cache_prompt) {
    srv_request r;
    srv_error e;
    const char *on = "{\"prompt\": \"hi\"}", *off = "{\"prompt\": \"hi\", \"cache_prompt\": false}",
               *bad = "{\"prompt\": \"hi\", \"cache_prompt\": 1}";
    cr_assert_eq(srv_parse_request(SRV_COMPLETION, on, strlen(on), &r, &e), 0, "%s", e.message);
    cr_expect(r.cache_prompt);
    srv_request_free(&r);
    cr_assert_eq(srv_parse_request(SRV_COMPLETION, off, strlen(off), &r, &e), 0, "%s", e.message);
    cr_expect(!r.cache_prompt);
    srv_request_free(&r);
    cr_expect_eq(srv_parse_request(SRV_COMPLETION, bad, strlen(bad), &r, &e), -1);
    cr_expect_eq(e.status, 400);
    cr_expect_str_eq(e.param, "cache_prompt");
}
