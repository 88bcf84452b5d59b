/* train/bpe.c — learn a byte-level BPE vocabulary (GPT-2 style) from text and write it as a
 * vocabulary-only GGUF that llama.cpp and trit's tokenizer load (see train.h).
 *
 * Words: an ASCII reading of the GPT-2 pre-tokenizer regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with every byte >= 0x80 counted as a letter. It only decides which merges are learned;
 * tokenizing with the vocabulary afterwards uses the real pre-tokenizer (tokenizer.ggml.pre
 * = "gpt-2", which trit's src/tokenizer/pretok.c and llama.cpp both implement).
 * Alphabet: GPT-2's bytes_to_unicode (printable bytes map to themselves, the others to
 * U+0100 + k in byte order), so every token text is valid UTF-8 without spaces. */
#include "train/train.h"

#include <stdlib.h>
#include <string.h>

/* ---- GPT-2 byte-to-unicode ---- */
static int byte_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    int k = 0;
    for (int i = 0; i < b; i++)
        if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255))) k++;
    return 256 + k;
}

static void put_utf8(trit_buf *out, int cp) {
    char u[3];
    if (cp < 0x80) {
        u[0] = (char)cp;
        trit_buf_append(out, u, 1);
    } else {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        trit_buf_append(out, u, 2);
    }
}

/* ---- word counting ---- */
typedef struct {
    char *s;
    size_t n;
    long count;
} word;

typedef struct {
    word *slots;
    size_t cap, used;
} word_map;

static void wm_add(word_map *m, const char *s, size_t n);

static void wm_grow(word_map *m) {
    word_map g = {xcalloc(m->cap ? m->cap * 2 : 1024, sizeof(word)), m->cap ? m->cap * 2 : 1024, 0};
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].s) {
            const uint64_t h = trit_hash64(m->slots[i].s, m->slots[i].n);
            size_t k = h & (g.cap - 1);
            while (g.slots[k].s) k = (k + 1) & (g.cap - 1);
            g.slots[k] = m->slots[i];
            g.used++;
        }
    free(m->slots);
    *m = g;
}

static void wm_add(word_map *m, const char *s, size_t n) {
    if (n == 0) return;
    if ((m->used + 1) * 2 > m->cap) wm_grow(m);
    size_t k = trit_hash64(s, n) & (m->cap - 1);
    while (m->slots[k].s) {
        if (m->slots[k].n == n && !memcmp(m->slots[k].s, s, n)) {
            m->slots[k].count++;
            return;
        }
        k = (k + 1) & (m->cap - 1);
    }
    m->slots[k] = (word){xstrndup(s, n), n, 1};
    m->used++;
}

static bool is_letter(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}
static bool is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}
static bool is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Length of the contraction at s ('s 't 're 've 'm 'll 'd), or 0. */
static size_t contraction(const char *s, size_t n) {
    if (n < 2 || s[0] != '\'') return 0;
    if (s[1] == 's' || s[1] == 't' || s[1] == 'm' || s[1] == 'd') return 2;
    if (n >= 3 && ((s[1] == 'r' && s[2] == 'e') || (s[1] == 'v' && s[2] == 'e') ||
                   (s[1] == 'l' && s[2] == 'l')))
        return 3;
    return 0;
}

static void split_words(word_map *m, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const size_t c = contraction(s + i, n - i);
        if (c) {
            wm_add(m, s + i, c);
            i += c;
            continue;
        }
        /* optional leading space, then a run of one class */
        size_t j = i + (s[i] == ' ' && i + 1 < n && !is_space((unsigned char)s[i + 1]) ? 1 : 0);
        const unsigned char c0 = (unsigned char)s[j];
        if (!is_space(c0)) {
            size_t k = j;
            if (is_letter(c0))
                while (k < n && is_letter((unsigned char)s[k])) k++;
            else if (is_digit(c0))
                while (k < n && is_digit((unsigned char)s[k])) k++;
            else
                while (k < n && !is_space((unsigned char)s[k]) && !is_letter((unsigned char)s[k]) &&
                       !is_digit((unsigned char)s[k]))
                    k++;
            wm_add(m, s + i, k - i);
            i = k;
            continue;
        }
        /* whitespace run: all but the last char when a word follows (\s+(?!\S)) */
        size_t k = i;
        while (k < n && is_space((unsigned char)s[k])) k++;
        if (k < n && k - i > 1) k--;
        wm_add(m, s + i, k - i);
        i = k;
    }
}

/* ---- pair counting ---- */
typedef struct {
    uint64_t key; /* left << 32 | right, +1 so that 0 means empty */
    long count;
} pair_slot;

static int cmp_word(const void *a, const void *b) {
    const word *x = a, *y = b;
    const size_t n = TRIT_MIN(x->n, y->n);
    const int c = memcmp(x->s, y->s, n);
    return c ? c : (x->n < y->n ? -1 : x->n > y->n);
}

/* The text's unique words (GPT-2 pre-tokenizer reading), with their counts, in a fixed
 * order (sorted), so that hashing never affects the result; *nw of them. */
static word *sorted_words(const char *text, size_t len, size_t *nw) {
    word_map wm = {0};
    split_words(&wm, text, len);
    word *words = xmalloc((wm.used ? wm.used : 1) * sizeof(word));
    *nw = 0;
    for (size_t i = 0; i < wm.cap; i++)
        if (wm.slots[i].s) words[(*nw)++] = wm.slots[i];
    free(wm.slots);
    qsort(words, *nw, sizeof(word), cmp_word);
    return words;
}

/* Every pair of adjacent symbols in every word, counted by the words' counts, into the
 * open-addressed table pairs (pcap slots, a power of two; cleared first). */
static void count_pairs(pair_slot *pairs, size_t pcap, const word *words, int32_t *const *sym,
                        const size_t *nsym, size_t nw) {
    memset(pairs, 0, pcap * sizeof(pair_slot));
    for (size_t w = 0; w < nw; w++)
        for (size_t k = 0; k + 1 < nsym[w]; k++) {
            const uint64_t key = ((uint64_t)sym[w][k] << 32 | (uint32_t)sym[w][k + 1]) + 1;
            size_t h = (key * 0x9e3779b97f4a7c15ull) >> 47;
            while (pairs[h].key && pairs[h].key != key) h = (h + 1) & (pcap - 1);
            pairs[h].key = key;
            pairs[h].count += words[w].count;
        }
}

/* The most frequent pair's key (ties to the smallest (left, right)) and its count. */
static uint64_t best_pair(const pair_slot *pairs, size_t pcap, long *best_count) {
    uint64_t best = 0;
    *best_count = 0;
    for (size_t h = 0; h < pcap; h++)
        if (pairs[h].key && (pairs[h].count > *best_count ||
                             (pairs[h].count == *best_count && pairs[h].key < best))) {
            best = pairs[h].key;
            *best_count = pairs[h].count;
        }
    return best;
}

/* Every adjacent (L, R) in every word, left to right, replaced by the merged token id. */
static void apply_merge(int32_t **sym, size_t *nsym, size_t nw, int32_t L, int32_t R, int32_t id) {
    for (size_t w = 0; w < nw; w++) {
        size_t o = 0;
        for (size_t k = 0; k < nsym[w]; k++) {
            if (k + 1 < nsym[w] && sym[w][k] == L && sym[w][k + 1] == R) {
                sym[w][o++] = id;
                k++;
            } else {
                sym[w][o++] = sym[w][k];
            }
        }
        nsym[w] = o;
    }
}

/* The vocabulary-only GGUF: n_tok token texts (bos and eos last, as control tokens), the
 * merges in the order learned, the GPT-2 pre-tokenizer, BOS added and EOS not. */
static int write_vocab(const char *out_path, char **texts, int n_tok, char **merges, int n_merges,
                       int32_t bos, int32_t eos, trit_err *err) {
    int32_t *types = xmalloc((size_t)n_tok * sizeof(int32_t));
    for (int i = 0; i < n_tok; i++) types[i] = i >= bos ? 3 : 1; /* control : normal */
    gguf_writer *gw = gguf_writer_new();
    gguf_w_str(gw, "general.architecture", "bitnet");
    gguf_w_str(gw, "general.type", "vocab");
    gguf_w_str(gw, "tokenizer.ggml.model", "gpt2");
    gguf_w_str(gw, "tokenizer.ggml.pre", "gpt-2");
    gguf_w_arr_str(gw, "tokenizer.ggml.tokens", (const char *const *)texts, (size_t)n_tok);
    gguf_w_arr_i32(gw, "tokenizer.ggml.token_type", types, (size_t)n_tok);
    gguf_w_arr_str(gw, "tokenizer.ggml.merges", (const char *const *)merges, (size_t)n_merges);
    gguf_w_u32(gw, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    gguf_w_u32(gw, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    gguf_w_bool(gw, "tokenizer.ggml.add_bos_token", true);
    gguf_w_bool(gw, "tokenizer.ggml.add_eos_token", false);
    const int rc = gguf_writer_write(gw, out_path, NULL, NULL, err);
    gguf_writer_free(gw);
    free(types);
    return rc;
}

int trit_bpe_train(const char *text, size_t len, int n_vocab, const char *out_path, trit_err *err) {
    const int n_special = 2;
    if (n_vocab < 256 + n_special + 1 || n_vocab > 65536)
        return trit_fail(err, TRIT_EINVAL, "vocabulary size %d is outside %d..65536", n_vocab,
                         256 + n_special + 1);
    size_t nw;
    word *words = sorted_words(text, len, &nw);

    /* symbols of each word, as token ids (bytes first) */
    int32_t **sym = xmalloc((nw ? nw : 1) * sizeof(int32_t *));
    size_t *nsym = xmalloc((nw ? nw : 1) * sizeof(size_t));
    for (size_t w = 0; w < nw; w++) {
        sym[w] = xmalloc(words[w].n * sizeof(int32_t));
        nsym[w] = words[w].n;
        for (size_t k = 0; k < words[w].n; k++) sym[w][k] = (unsigned char)words[w].s[k];
    }

    /* token texts */
    const int n_merge_max = n_vocab - 256 - n_special;
    char **texts = xcalloc((size_t)n_vocab, sizeof(char *));
    char **merges = xcalloc((size_t)n_merge_max, sizeof(char *));
    for (int b = 0; b < 256; b++) {
        trit_buf t = {0};
        put_utf8(&t, byte_cp(b));
        texts[b] = t.p;
    }
    int n_tok = 256, n_merges = 0;
    const size_t pcap = 1u << 17;
    pair_slot *pairs = xmalloc(pcap * sizeof(pair_slot));
    while (n_merges < n_merge_max) {
        count_pairs(pairs, pcap, words, sym, nsym, nw);
        long best_count;
        const uint64_t best = best_pair(pairs, pcap, &best_count);
        if (best_count < 2) break; /* nothing left worth merging */
        const int32_t L = (int32_t)((best - 1) >> 32), R = (int32_t)((best - 1) & 0xffffffffu);
        const int32_t id = n_tok++;
        trit_buf t = {0};
        trit_buf_puts(&t, texts[L]);
        trit_buf_puts(&t, texts[R]);
        texts[id] = t.p;
        trit_buf mg = {0};
        trit_buf_printf(&mg, "%s %s", texts[L], texts[R]);
        merges[n_merges++] = mg.p;
        apply_merge(sym, nsym, nw, L, R, id);
    }
    free(pairs);
    const int32_t bos = n_tok, eos = n_tok + 1;
    texts[n_tok++] = xstrdup("<s>");
    texts[n_tok++] = xstrdup("</s>");
    const int rc = write_vocab(out_path, texts, n_tok, merges, n_merges, bos, eos, err);

    for (int i = 0; i < n_tok; i++) free(texts[i]);
    for (int i = 0; i < n_merges; i++) free(merges[i]);
    for (size_t w = 0; w < nw; w++) {
        free(sym[w]);
        free(words[w].s);
    }
    free(texts);
    free(merges);
    free(sym);
    free(nsym);
    free(words);
    return rc;
}
