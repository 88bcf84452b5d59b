/* server/pcache.h — inside the server: the prompt cache, a bounded store of prompts' prefill KV
 * cells shared by every slot. Not a public API: only src/server includes it.
 *
 * Contract:
 *  - An entry is a prompt (its token ids) and the compact block of its cold-prefill KV cells
 *    (trit_seq_get_cells; never cells of decode steps), its bytes counted against the store's
 *    bound. srv_pcache_put takes an entry: entries whose prompts are a prefix of the new one
 *    are dropped (it holds all they hold), the new one is not kept when an entry already holds
 *    its prompt, and least recently used entries are evicted until the bytes fit (an entry
 *    larger than the bound is not kept).
 *  - srv_pcache_best: the entry that lets a prompt skip the most tokens, as the caller's reuse
 *    function rates it (the engine's trit_ctx_reuse_len: the store never decides numerics);
 *    it becomes the most recently used. The block stays valid until the next put or free.
 *  - Single-threaded: the scheduler thread alone calls it; counters are copied to metrics. */
#ifndef TRIT_SERVER_PCACHE_H
#define TRIT_SERVER_PCACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct srv_pcache srv_pcache;

/* Rates an entry: how many leading cells of an earlier prompt of `made` tokens, sharing
 * `common` leading tokens with a new prompt of n tokens, the new prompt may take. */
typedef int (*srv_reuse_fn)(void *ud, int made, int common, int n);

typedef struct srv_pcache_stats {
    unsigned long long lookups, hits, reused_tokens, stores, evictions;
    unsigned long long replayed_tokens; /* generated tokens re-evaluated as prompt rows */
    size_t bytes, max_bytes;
    int entries;
} srv_pcache_stats;

/* A store bounded to max_bytes of cell blocks (0: it keeps nothing). */
srv_pcache *srv_pcache_new(size_t max_bytes);
void srv_pcache_free(srv_pcache *pc);
/* Keep tok[0..n) with its block (malloc'd, bytes long; taken: freed by the store). */
void srv_pcache_put(srv_pcache *pc, const int32_t *tok, int n, void *block, size_t bytes);
/* The best entry for prompt tok[0..n): returns the cells it may take (0: none; then *block is
 * NULL), *block and *n_block (the entry's cells) set. Counts a lookup, a hit when > 0. */
int srv_pcache_best(srv_pcache *pc, const int32_t *tok, int n, srv_reuse_fn fn, void *ud,
                    const void **block, int *n_block);
srv_pcache_stats srv_pcache_stats_get(const srv_pcache *pc);
/* Count n generated tokens re-evaluated as prompt rows for the cache (the scheduler's idle
 * replay of a finished reply). */
void srv_pcache_count_replay(srv_pcache *pc, int n);

#endif
