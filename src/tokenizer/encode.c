/* encode.c — text -> token ids.
 *
 * 1. The input must be valid UTF-8 (else TRIT_EFORMAT naming the byte offset).
 * 2. Special tokens are cut out first, longest text first (user-defined tokens always;
 *    control/unknown tokens only with parse_special), honouring lstrip/rstrip attributes.
 * 3. Each remaining text fragment is encoded: BPE = pre-tokenize into words, map bytes to the
 *    GPT-2 alphabet, merge by rank (lowest rank first, leftmost on ties); SPM = spaces to U+2581
 *    (with a leading one after BOS/special tokens when add_space_prefix), merge by score
 *    (highest first, leftmost on ties), byte fallback <0xXX>.
 * Words are cached per call, so repeated words cost one hash lookup. */
#define _GNU_SOURCE /* memmem */
#include "tokenizer/tok_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct ivec {
    int32_t *v;
    size_t n, cap;
} ivec;

static void iv_push(ivec *a, int32_t x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = xrealloc(a->v, a->cap * sizeof(int32_t));
    }
    a->v[a->n++] = x;
}

/* ---------------- merge queue (binary heap) ---------------- */
typedef struct bigram {
    double prio; /* BPE: rank (lower first); SPM: -score (lower first) */
    int32_t left, right;
    uint32_t size;
} bigram;

typedef struct heap {
    bigram *v;
    size_t n, cap;
} heap;

static inline bool bg_before(const bigram *a, const bigram *b) {
    return a->prio < b->prio || (a->prio == b->prio && a->left < b->left);
}

static void heap_push(heap *h, bigram x) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = xrealloc(h->v, h->cap * sizeof(bigram));
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bg_before(&x, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
}

static bigram heap_pop(heap *h) {
    bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const bigram *best = &last;
        if (l < h->n && bg_before(&h->v[l], best)) m = l, best = &h->v[l];
        if (r < h->n && bg_before(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct sym {
    const char *text;
    uint32_t n;
    int32_t prev, next;
} sym;

typedef struct work {
    sym *syms;
    size_t nsym, capsym;
    heap q;
    trit_buf key;
} work;

static void split_chars(work *w, const char *s, size_t len) {
    w->nsym = 0;
    if (w->capsym < len) {
        w->capsym = len;
        w->syms = xrealloc(w->syms, len * sizeof(sym));
    }
    for (size_t off = 0; off < len;) {
        unsigned c = (unsigned char)s[off];
        size_t cl = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        if (cl > len - off) cl = len - off;
        sym *y = &w->syms[w->nsym];
        y->text = s + off;
        y->n = (uint32_t)cl;
        y->prev = (int32_t)w->nsym - 1;
        off += cl;
        y->next = off == len ? -1 : (int32_t)w->nsym + 1;
        w->nsym++;
    }
}

/* The merge loop BPE and SPM share: queue every adjacent pair (try_pair pushes the ones the
 * vocabulary knows, ranked its way), then repeatedly merge the best pair still intact and
 * queue the new neighbours. */
typedef void (*try_pair_fn)(const trit_tokenizer *t, work *w, int32_t l, int32_t r);
static void merge_symbols(const trit_tokenizer *t, work *w, try_pair_fn try_pair) {
    w->q.n = 0;
    for (size_t i = 1; i < w->nsym; i++) try_pair(t, w, (int32_t)i - 1, (int32_t)i);
    while (w->q.n) {
        bigram g = heap_pop(&w->q);
        sym *a = &w->syms[g.left], *b = &w->syms[g.right];
        if (a->n == 0 || b->n == 0 || a->n + b->n != g.size) continue;
        a->n += b->n;
        b->n = 0;
        a->next = b->next;
        if (b->next >= 0) w->syms[b->next].prev = g.left;
        try_pair(t, w, a->prev, g.left);
        try_pair(t, w, g.left, a->next);
    }
}

/* ---------------- BPE ---------------- */

static void bpe_try(const trit_tokenizer *t, work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const sym *a = &w->syms[l], *b = &w->syms[r];
    trit_buf_clear(&w->key);
    char hdr[2] = {(char)(a->n & 0xFF), (char)(a->n >> 8)};
    trit_buf_append(&w->key, hdr, 2);
    trit_buf_append(&w->key, a->text, a->n);
    trit_buf_append(&w->key, b->text, b->n);
    int32_t rank = tok_map_get(&t->merges, w->key.p, w->key.len);
    if (rank < 0) return;
    heap_push(&w->q, (bigram){(double)rank, l, r, a->n + b->n});
}

static void bpe_word(const trit_tokenizer *t, work *w, const char *s, size_t len, ivec *out) {
    if (t->ignore_merges) {
        int32_t id = tok_map_get(&t->tok2id, s, len);
        if (id >= 0) {
            iv_push(out, id);
            return;
        }
    }
    split_chars(w, s, len);
    merge_symbols(t, w, bpe_try);
    for (int32_t i = 0; i != -1 && w->nsym; i = w->syms[i].next) {
        const sym *y = &w->syms[i];
        if (y->n == 0) continue;
        int32_t id = tok_map_get(&t->tok2id, y->text, y->n);
        if (id >= 0) {
            iv_push(out, id);
            continue;
        }
        for (uint32_t j = 0; j < y->n; j++) { /* single bytes of the encoded text, as the ref */
            int32_t bid = tok_map_get(&t->tok2id, y->text + j, 1);
            if (bid >= 0) iv_push(out, bid);
        }
    }
}

/* per-call word cache: word -> (offset into ids, count) */
typedef struct wcache {
    tok_map map;
    ivec ids; /* [count, id...] records */
    char **keys;
    size_t nkeys, capkeys;
} wcache;

static void bpe_fragment(const trit_tokenizer *t, work *w, wcache *wc, const char *s, size_t len,
                         ivec *out) {
    uint32_t *cp = NULL;
    size_t ncp = 0;
    if (tok_utf8_decode(s, len, &cp, &ncp, NULL) != 0) return; /* validated by the caller */
    size_t *lens = NULL;
    size_t nw = tok_pretok_split(t->pretok, cp, ncp, &lens);
    trit_buf word = {0};
    static _Thread_local char enc[256][3];
    static _Thread_local uint8_t enc_len[256];
    if (!enc_len[0])
        for (int b = 0; b < 256; b++)
            enc_len[b] = (uint8_t)tok_utf8_put(tok_byte_to_cpt((uint8_t)b), enc[b]);
    size_t pos = 0;
    for (size_t wi = 0; wi < nw; wi++) {
        trit_buf_clear(&word);
        for (size_t k = pos; k < pos + lens[wi]; k++) {
            char u[4];
            int m = tok_utf8_put(cp[k], u);
            for (int j = 0; j < m; j++) {
                uint8_t b = (uint8_t)u[j];
                trit_buf_append(&word, enc[b], enc_len[b]);
            }
        }
        pos += lens[wi];
        int32_t at = tok_map_get(&wc->map, word.p, word.len);
        if (at >= 0) {
            int32_t cnt = wc->ids.v[at];
            for (int32_t k = 0; k < cnt; k++) iv_push(out, wc->ids.v[at + 1 + k]);
            continue;
        }
        size_t before = out->n;
        bpe_word(t, w, word.p, word.len, out);
        if (word.len <= 64) {
            char *key = xmalloc(word.len + 1);
            memcpy(key, word.p, word.len);
            if (wc->nkeys == wc->capkeys) {
                wc->capkeys = wc->capkeys ? wc->capkeys * 2 : 256;
                wc->keys = xrealloc(wc->keys, wc->capkeys * sizeof(char *));
            }
            wc->keys[wc->nkeys++] = key;
            int32_t rec = (int32_t)wc->ids.n;
            iv_push(&wc->ids, (int32_t)(out->n - before));
            for (size_t k = before; k < out->n; k++) iv_push(&wc->ids, out->v[k]);
            tok_map_put(&wc->map, key, word.len, rec);
        }
    }
    trit_buf_free(&word);
    free(lens);
    free(cp);
}

/* ---------------- SPM ---------------- */

static void spm_try(const trit_tokenizer *t, work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const sym *a = &w->syms[l], *b = &w->syms[r];
    uint32_t n = a->n + b->n;
    int32_t id = tok_map_get(&t->tok2id, a->text, n); /* a and b are contiguous */
    if (id < 0) return;
    heap_push(&w->q, (bigram){-t->score[id], l, r, n});
}

static void spm_fragment(const trit_tokenizer *t, work *w, const char *s, size_t len, bool prefix,
                         ivec *out) {
    trit_buf text = {0};
    if (prefix) trit_buf_puts(&text, "\xE2\x96\x81");
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ')
            trit_buf_puts(&text, "\xE2\x96\x81");
        else
            trit_buf_append(&text, s + i, 1);
    }
    if (!text.len) return;
    split_chars(w, text.p, text.len);
    merge_symbols(t, w, spm_try);
    for (int32_t i = 0; i != -1; i = w->syms[i].next) {
        const sym *y = &w->syms[i];
        int32_t id = tok_map_get(&t->tok2id, y->text, y->n);
        if (id >= 0) {
            iv_push(out, id);
            continue;
        }
        for (uint32_t j = 0; j < y->n; j++) {
            int32_t bid = t->byte_tok[(uint8_t)y->text[j]];
            if (bid < 0) bid = t->unk;
            if (bid >= 0) iv_push(out, bid);
        }
    }
    trit_buf_free(&text);
}

/* ---------------- special-token partition ---------------- */

typedef struct frag {
    int32_t tok; /* -1: raw text s[off..off+len) */
    size_t off, len;
} frag;

typedef struct fvec {
    frag *v;
    size_t n, cap;
} fvec;

static void fv_push(fvec *a, frag f) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = xrealloc(a->v, a->cap * sizeof(frag));
    }
    a->v[a->n++] = f;
}

static void partition(const trit_tokenizer *t, const char *s, size_t len, bool parse_special,
                      fvec *out) {
    fvec cur = {0}, nxt = {0};
    fv_push(&cur, (frag){-1, 0, len});
    bool present[256] = {0};
    for (size_t i = 0; i < len; i++) present[(uint8_t)s[i]] = true;
    for (size_t si = 0; si < t->n_special; si++) {
        int32_t id = t->special[si];
        uint32_t a = t->attr[id];
        if (!parse_special && (a & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
        const char *tx = t->text[id];
        size_t tl = t->text_len[id];
        if (tl == 0 || tl > len) continue;
        bool possible = true;
        for (size_t k = 0; k < tl && possible; k++) possible = present[(uint8_t)tx[k]];
        if (!possible) continue;
        nxt.n = 0;
        for (size_t fi = 0; fi < cur.n; fi++) {
            frag f = cur.v[fi];
            if (f.tok >= 0) {
                fv_push(&nxt, f);
                continue;
            }
            size_t base = f.off, blen = f.len;
            for (;;) {
                const char *m = blen >= tl ? memmem(s + base, blen, tx, tl) : NULL;
                if (!m) {
                    if (blen) fv_push(&nxt, (frag){-1, base, blen});
                    break;
                }
                size_t mpos = (size_t)(m - s);
                if (mpos > base) {
                    size_t ll = mpos - base;
                    if (a & TOK_ATTR_LSTRIP)
                        while (ll > 0 && isspace((unsigned char)s[base + ll - 1])) ll--;
                    if (ll) fv_push(&nxt, (frag){-1, base, ll});
                }
                fv_push(&nxt, (frag){id, 0, 0});
                size_t roff = mpos + tl, rlen = base + blen - roff;
                if (a & TOK_ATTR_RSTRIP)
                    while (rlen > 0 && isspace((unsigned char)s[roff])) roff++, rlen--;
                base = roff, blen = rlen;
                if (!blen) break;
            }
        }
        fvec tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    free(nxt.v);
    *out = cur;
}

int trit_tok_encode(const trit_tokenizer *t, const char *text, size_t len, bool add_special,
                    bool parse_special, int32_t **ids, size_t *n_ids, trit_err *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!t) return trit_fail(err, TRIT_EINVAL, "no tokenizer");
    if (len && !text) return trit_fail(err, TRIT_EINVAL, "text is NULL");
    {
        uint32_t *cp = NULL;
        size_t ncp;
        if (tok_utf8_decode(text, len, &cp, &ncp, err) != 0) return -1;
        free(cp);
    }
    ivec out = {0};
    fvec frags = {0};
    if (len) partition(t, text, len, parse_special, &frags);
    work w = {0};
    if (add_special && t->add_bos && t->bos >= 0) iv_push(&out, t->bos);
    if (t->type == TOK_SPM) {
        bool prev_special = true;
        for (size_t i = 0; i < frags.n; i++) {
            if (frags.v[i].tok >= 0) {
                iv_push(&out, frags.v[i].tok);
                prev_special = true;
            } else {
                spm_fragment(t, &w, text + frags.v[i].off, frags.v[i].len,
                             t->add_space_prefix && prev_special, &out);
                prev_special = false;
            }
        }
    } else {
        wcache wc = {0};
        tok_map_init(&wc.map, 1024);
        for (size_t i = 0; i < frags.n; i++) {
            if (frags.v[i].tok >= 0)
                iv_push(&out, frags.v[i].tok);
            else
                bpe_fragment(t, &w, &wc, text + frags.v[i].off, frags.v[i].len, &out);
        }
        for (size_t i = 0; i < wc.nkeys; i++) free(wc.keys[i]);
        free(wc.keys);
        free(wc.ids.v);
        tok_map_free(&wc.map);
    }
    if (add_special && t->add_eos && t->eos >= 0) iv_push(&out, t->eos);
    free(frags.v);
    free(w.syms);
    free(w.q.v);
    trit_buf_free(&w.key);
    if (!out.v) out.v = xmalloc(sizeof(int32_t));
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}
