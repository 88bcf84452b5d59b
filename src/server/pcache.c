/* server/pcache.c — the prompt cache: entries (prompt ids + prefill KV cells) in an array,
 * least recently used evicted first, bounded by bytes. See pcache.h. */
#include "server/pcache.h"

#include "base/base.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    int32_t *tok;
    int n;
    void *block;
    size_t bytes;
    unsigned long long used; /* the store's clock at the last put or hit */
} entry;

struct srv_pcache {
    entry *e;
    int n, cap;
    unsigned long long clock;
    srv_pcache_stats st;
};

srv_pcache *srv_pcache_new(size_t max_bytes) {
    srv_pcache *pc = xcalloc(1, sizeof *pc);
    pc->st.max_bytes = max_bytes;
    return pc;
}

/* Drop entry i (the last one takes its place: order means nothing, `used` does). */
static void drop(srv_pcache *pc, int i) {
    pc->st.bytes -= pc->e[i].bytes;
    free(pc->e[i].tok);
    free(pc->e[i].block);
    pc->e[i] = pc->e[--pc->n];
    pc->st.entries = pc->n;
}

void srv_pcache_free(srv_pcache *pc) {
    if (!pc) return;
    while (pc->n) drop(pc, pc->n - 1);
    free(pc->e);
    free(pc);
}

/* Leading tokens a and b share. */
static int common_len(const int32_t *a, int na, const int32_t *b, int nb) {
    int i = 0;
    const int m = TRIT_MIN(na, nb);
    while (i < m && a[i] == b[i]) i++;
    return i;
}

/* Evict least recently used entries until `need` more bytes fit. */
static void make_room(srv_pcache *pc, size_t need) {
    while (pc->n && pc->st.bytes + need > pc->st.max_bytes) {
        int lru = 0;
        for (int i = 1; i < pc->n; i++)
            if (pc->e[i].used < pc->e[lru].used) lru = i;
        drop(pc, lru);
        pc->st.evictions++;
    }
}

void srv_pcache_put(srv_pcache *pc, const int32_t *tok, int n, void *block, size_t bytes) {
    pc->clock++;
    if (n <= 0 || bytes > pc->st.max_bytes) { /* a store of 0 bytes, or too large to keep */
        free(block);
        return;
    }
    for (int i = 0; i < pc->n;) {
        const int c = common_len(pc->e[i].tok, pc->e[i].n, tok, n);
        if (c == n) { /* an entry holds this prompt already (perhaps more): keep that one */
            pc->e[i].used = pc->clock;
            free(block);
            return;
        }
        if (c == pc->e[i].n) { /* a prefix of the new prompt: the new entry supersedes it */
            drop(pc, i);
            continue;
        }
        i++;
    }
    make_room(pc, bytes);
    if (pc->n == pc->cap) {
        pc->cap = pc->cap ? 2 * pc->cap : 8;
        pc->e = xrealloc(pc->e, (size_t)pc->cap * sizeof *pc->e);
    }
    entry *e = &pc->e[pc->n++];
    e->tok = xmalloc((size_t)n * sizeof *tok);
    memcpy(e->tok, tok, (size_t)n * sizeof *tok);
    e->n = n;
    e->block = block;
    e->bytes = bytes;
    e->used = pc->clock;
    pc->st.bytes += bytes;
    pc->st.entries = pc->n;
    pc->st.stores++;
}

int srv_pcache_best(srv_pcache *pc, const int32_t *tok, int n, srv_reuse_fn fn, void *ud,
                    const void **block, int *n_block) {
    int best = 0, at = -1;
    pc->st.lookups++;
    for (int i = 0; i < pc->n; i++) {
        const int c = common_len(pc->e[i].tok, pc->e[i].n, tok, n);
        const int p = c > best ? fn(ud, pc->e[i].n, c, n) : 0; /* never more than c */
        if (p > best) {
            best = p;
            at = i;
        }
    }
    *block = NULL;
    *n_block = 0;
    if (at < 0) return 0;
    pc->e[at].used = ++pc->clock;
    *block = pc->e[at].block;
    *n_block = pc->e[at].n;
    pc->st.hits++;
    pc->st.reused_tokens += (unsigned long long)best;
    return best;
}

srv_pcache_stats srv_pcache_stats_get(const srv_pcache *pc) {
    return pc->st;
}

void srv_pcache_count_replay(srv_pcache *pc, int n) {
    pc->st.replayed_tokens += (unsigned long long)(n > 0 ? n : 0);
}
