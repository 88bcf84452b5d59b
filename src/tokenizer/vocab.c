/* vocab.c — load a vocabulary from GGUF (tokenizer.ggml.*) into a trit_tokenizer: token
 * texts, scores, types, BPE merge ranks, special ids, end-of-generation set, the special-token
 * list used to partition text, and the rendered piece of every token. Mirrors the decisions
 * llama.cpp's llama_vocab::load makes for the "gpt2" (BPE) and "llama" (SPM) models. */
#include "tokenizer/tok_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- hash map ---------------- */

void tok_map_init(tok_map *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap <<= 1;
    m->cap = cap;
    m->n = 0;
    m->keys = xcalloc(cap, sizeof(char *));
    m->lens = xcalloc(cap, sizeof(uint32_t));
    m->vals = xcalloc(cap, sizeof(int32_t));
    m->hashes = xcalloc(cap, sizeof(uint64_t));
}

void tok_map_free(tok_map *m) {
    free(m->keys), free(m->lens), free(m->vals), free(m->hashes);
    memset(m, 0, sizeof *m);
}

static void map_grow(tok_map *m) {
    tok_map g;
    tok_map_init(&g, m->cap);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = m->hashes[i] & (g.cap - 1);
        while (g.keys[j]) j = (j + 1) & (g.cap - 1);
        g.keys[j] = m->keys[i], g.lens[j] = m->lens[i], g.vals[j] = m->vals[i];
        g.hashes[j] = m->hashes[i];
        g.n++;
    }
    tok_map_free(m);
    *m = g;
}

void tok_map_put(tok_map *m, const char *key, size_t len, int32_t val) {
    if ((m->n + 1) * 2 > m->cap) map_grow(m);
    uint64_t h = trit_hash64(key, len);
    size_t j = h & (m->cap - 1);
    while (m->keys[j]) {
        if (m->hashes[j] == h && m->lens[j] == len && !memcmp(m->keys[j], key, len)) {
            m->vals[j] = val;
            return;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key, m->lens[j] = (uint32_t)len, m->vals[j] = val, m->hashes[j] = h;
    m->n++;
}

int32_t tok_map_get(const tok_map *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    uint64_t h = trit_hash64(key, len);
    size_t j = h & (m->cap - 1);
    while (m->keys[j]) {
        if (m->hashes[j] == h && m->lens[j] == len && !memcmp(m->keys[j], key, len))
            return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

/* ---------------- loading ---------------- */

static const struct {
    const char *name;
    int pre;
} k_pre_names[] = {
    {"default", PRE_DEFAULT},
    {"llama3", PRE_LLAMA3},
    {"llama-v3", PRE_LLAMA3},
    {"llama-bpe", PRE_LLAMA3},
    {"falcon3", PRE_LLAMA3},
    {"falcon-h1", PRE_LLAMA3},
    {"pixtral", PRE_LLAMA3},
    {"dbrx", PRE_LLAMA3},      /* same regex as llama3 */
    {"smaug-bpe", PRE_LLAMA3}, /* same regex as llama3 */
    {"deepseek-llm", PRE_DEEPSEEK_LLM},
    {"deepseek-coder", PRE_DEEPSEEK_CODER},
    {"falcon", PRE_FALCON},
    {"mpt", PRE_MPT},
    {"starcoder", PRE_STARCODER},
    {"gpt-2", PRE_GPT2},
    {"gpt2", PRE_GPT2},
    {"phi-2", PRE_GPT2},
    {"gpt-neox", PRE_GPT2},
    {"olmo", PRE_GPT2},
    {"jais", PRE_GPT2},
    {"refact", PRE_REFACT},
    {"command-r", PRE_COMMAND_R},
    {"qwen2", PRE_QWEN2},
    {"stablelm2", PRE_QWEN2},
    {"deepseek-r1-qwen", PRE_QWEN2},
    {"smollm", PRE_STARCODER},
    {"codeshell", PRE_STARCODER},
    {"exaone", PRE_STARCODER},
};

static const char *k_pre_canon[PRE_COUNT] = {
    [PRE_DEFAULT] = "default",
    [PRE_LLAMA3] = "llama3",
    [PRE_GPT2] = "gpt2",
    [PRE_QWEN2] = "qwen2",
    [PRE_DEEPSEEK_LLM] = "deepseek-llm",
    [PRE_DEEPSEEK_CODER] = "deepseek-coder",
    [PRE_FALCON] = "falcon",
    [PRE_MPT] = "mpt",
    [PRE_STARCODER] = "starcoder",
    [PRE_REFACT] = "refact",
    [PRE_COMMAND_R] = "command-r",
};

/* LLAMA_TOKEN_TYPE_* in GGUF -> attributes */
static uint32_t type_to_attr(int64_t t) {
    switch (t) {
    case 1:
        return TOK_ATTR_NORMAL;
    case 2:
        return TOK_ATTR_UNKNOWN;
    case 3:
        return TOK_ATTR_CONTROL;
    case 4:
        return TOK_ATTR_USER_DEFINED;
    case 5:
        return TOK_ATTR_UNUSED;
    case 6:
        return TOK_ATTR_BYTE;
    default:
        return TOK_ATTR_UNDEFINED;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* byte of a "<0xXX>" token, or -1 */
static int byte_token_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int a = hexval(s[3]), b = hexval(s[4]);
    return a < 0 || b < 0 ? -1 : a * 16 + b;
}

static void render_piece(trit_tokenizer *t, int32_t id, trit_buf *out) {
    const char *s = t->text[id];
    size_t n = t->text_len[id];
    uint32_t a = t->attr[id];
    if (a & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED)) {
        trit_buf_append(out, s, n);
    } else if (a & TOK_ATTR_NORMAL) {
        if (t->type == TOK_SPM) {
            for (size_t i = 0; i < n; i++) {
                if (i + 2 < n && !memcmp(s + i, "\xE2\x96\x81", 3)) {
                    trit_buf_append(out, " ", 1);
                    i += 2;
                } else {
                    trit_buf_append(out, s + i, 1);
                }
            }
        } else {
            uint32_t *cp = NULL;
            size_t nc = 0;
            if (tok_utf8_decode(s, n, &cp, &nc, NULL) != 0) {
                trit_buf_append(out, s, n); /* not UTF-8: keep the raw bytes */
                return;
            }
            for (size_t i = 0; i < nc; i++) {
                int b = tok_cpt_to_byte(cp[i]);
                if (b >= 0) {
                    char c = (char)b;
                    trit_buf_append(out, &c, 1);
                } else { /* as the reference: a visible marker instead of a byte */
                    char u[4];
                    int k = tok_utf8_put(cp[i], u);
                    trit_buf_puts(out, "[UNK_BYTE_0x");
                    for (int j = 0; j < k; j++) trit_buf_printf(out, "%02x", (uint8_t)u[j]);
                    trit_buf_append(out, s, n);
                    trit_buf_puts(out, "]");
                }
            }
            free(cp);
        }
    } else if (a & TOK_ATTR_BYTE) {
        int b = byte_token_value(s, n);
        if (b >= 0) {
            char c = (char)b;
            trit_buf_append(out, &c, 1);
        }
    }
}

static int32_t find_text(const trit_tokenizer *t, const char *s) {
    return tok_map_get(&t->tok2id, s, strlen(s));
}

static void get_id(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *id) {
    int64_t v;
    if (*id >= n_vocab) *id = -1;
    if (gguf_get_i64(f, key, &v) != 0) return;
    if (v < 0 || v >= n_vocab) {
        trit_log(TRIT_LOG_WARN, "tokenizer: %s = %lld is out of the vocabulary, keeping %d", key,
                 (long long)v, *id);
        return;
    }
    *id = (int32_t)v;
}

static void add_eog(trit_tokenizer *t, int32_t id) {
    if (id < 0) return;
    for (size_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return;
    t->eog = xrealloc(t->eog, (t->n_eog + 1) * sizeof(int32_t));
    t->eog[t->n_eog++] = id;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Step 1: the model kind (tokenizer.ggml.model) and its default special ids. */
static int load_model_kind(trit_tokenizer *t, const gguf_file *f, trit_err *err) {
    t->model_name = gguf_get_str(f, "tokenizer.ggml.model");
    if (!t->model_name)
        return trit_fail(err, TRIT_ENOTFOUND, "tokenizer.ggml.model is missing (no vocabulary)");
    if (!strcmp(t->model_name, "gpt2")) {
        t->type = TOK_BPE;
        t->bos = 11, t->eos = 11, t->unk = -1;
    } else if (!strcmp(t->model_name, "llama")) {
        t->type = TOK_SPM;
        t->bos = 1, t->eos = 2, t->unk = 0;
    } else {
        return trit_fail(err, TRIT_EUNSUP,
                         "tokenizer.ggml.model '%s' is not supported (only gpt2 = BPE, llama = "
                         "SPM)",
                         t->model_name);
    }
    t->eot = t->eom = t->pad = t->sep = -1;
    return 0;
}

/* Step 2: token texts (an empty one becomes "[EMPTY_i]", as the reference), scores and
 * types; every array checked for its type and length before it is read. */
static int load_tokens(trit_tokenizer *t, const gguf_file *f, trit_err *err) {
    const gguf_kv *toks = gguf_find(f, "tokenizer.ggml.tokens");
    if (!toks || toks->type != GGUF_T_ARRAY || toks->arr_type != GGUF_T_STRING)
        return trit_fail(err, TRIT_EFORMAT,
                         "tokenizer.ggml.tokens is missing or not a string array");
    if (toks->arr_n == 0 || toks->arr_n > INT32_MAX)
        return trit_fail(err, TRIT_EFORMAT, "tokenizer.ggml.tokens has %llu entries",
                         (unsigned long long)toks->arr_n);
    int32_t n = (int32_t)toks->arr_n;
    const gguf_kv *scores = gguf_find(f, "tokenizer.ggml.scores");
    if (scores && (scores->type != GGUF_T_ARRAY ||
                   (scores->arr_type != GGUF_T_F32 && scores->arr_type != GGUF_T_I32) ||
                   scores->arr_n < (uint64_t)n))
        return trit_fail(err, TRIT_EFORMAT,
                         "tokenizer.ggml.scores: wrong type or fewer than %d entries", n);
    const gguf_kv *types = gguf_find(f, "tokenizer.ggml.token_type");
    if (types && (types->type != GGUF_T_ARRAY || types->arr_type != GGUF_T_I32 ||
                  types->arr_n < (uint64_t)n))
        return trit_fail(err, TRIT_EFORMAT,
                         "tokenizer.ggml.token_type: not i32 or fewer than %d entries", n);

    t->n_vocab = n;
    t->text = xcalloc((size_t)n, sizeof(char *));
    t->text_len = xcalloc((size_t)n, sizeof(uint32_t));
    t->score = xcalloc((size_t)n, sizeof(float));
    t->attr = xcalloc((size_t)n, sizeof(uint32_t));
    tok_map_init(&t->tok2id, (size_t)n);
    for (int32_t i = 0; i < n; i++) {
        gguf_str s = toks->arr_strs[i];
        if (s.n == 0) {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "[EMPTY_%d]", i);
            t->text[i] = xstrdup(tmp);
            t->text_len[i] = (uint32_t)strlen(tmp);
        } else {
            t->text[i] = xstrndup(s.p, s.n);
            t->text_len[i] = (uint32_t)s.n;
        }
        tok_map_put(&t->tok2id, t->text[i], t->text_len[i], i);
        if (scores) {
            double d = 0;
            int64_t v = 0;
            if (scores->arr_type == GGUF_T_F32 && gguf_arr_f64(scores, (uint64_t)i, &d) == 0)
                t->score[i] = (float)d;
            else if (gguf_arr_i64(scores, (uint64_t)i, &v) == 0)
                t->score[i] = (float)v;
        }
        t->attr[i] = TOK_ATTR_NORMAL;
        if (types) {
            int64_t v = 0;
            gguf_arr_i64(types, (uint64_t)i, &v);
            t->attr[i] = type_to_attr(v);
        }
    }
    return 0;
}

/* BPE merge ranks: "left right" -> rank, keyed by (u16 left length, left, right); the first
 * occurrence of a pair keeps its rank (the reference's emplace). */
static int load_merges(trit_tokenizer *t, const gguf_file *f, trit_err *err) {
    const gguf_kv *mg = gguf_find(f, "tokenizer.ggml.merges");
    if (!mg || mg->type != GGUF_T_ARRAY || mg->arr_type != GGUF_T_STRING)
        return trit_fail(err, TRIT_EFORMAT,
                         "tokenizer.ggml.merges is missing or not a string array (BPE needs it)");
    tok_map_init(&t->merges, (size_t)mg->arr_n);
    for (uint64_t i = 0; i < mg->arr_n && i < INT32_MAX; i++) {
        gguf_str s = mg->arr_strs[i];
        const char *sp = s.n > 1 ? memchr(s.p + 1, ' ', s.n - 1) : NULL;
        size_t ll = sp ? (size_t)(sp - s.p) : 0, rl = sp ? s.n - ll - 1 : 0;
        if (ll > 0xFFFF) continue; /* cannot be keyed; no real vocabulary has one */
        char *key = xmalloc(2 + ll + rl);
        key[0] = (char)(ll & 0xFF), key[1] = (char)(ll >> 8);
        if (sp) {
            memcpy(key + 2, s.p, ll);
            memcpy(key + 2 + ll, sp + 1, rl);
        }
        if (tok_map_get(&t->merges, key, 2 + ll + rl) >= 0) {
            free(key);
            continue;
        }
        tok_map_put(&t->merges, key, 2 + ll + rl, (int32_t)i);
    }
    return 0;
}

/* Step 3: the pre-tokenizer and flags. BPE: tokenizer.ggml.pre (llama3 when absent, as
 * BitNet b1.58 2B-4T needs) and the merges; SPM: its fixed defaults. */
static int load_pretokenizer(trit_tokenizer *t, const gguf_file *f, trit_err *err) {
    if (t->type != TOK_BPE) {
        t->pre = PRE_DEFAULT;
        t->pre_name = xstrdup("spm");
        t->add_space_prefix = true, t->add_bos = true, t->add_eos = false;
        gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
        return 0;
    }
    char *pre = gguf_get_str(f, "tokenizer.ggml.pre");
    t->pre = -1;
    if (!pre) {
        trit_log(TRIT_LOG_WARN, "tokenizer: tokenizer.ggml.pre is missing; using the llama3 "
                                "pre-tokenizer (as BitNet b1.58 2B-4T needs)");
        t->pre = PRE_LLAMA3;
    } else {
        for (size_t i = 0; i < TRIT_ARRAY_LEN(k_pre_names); i++)
            if (!strcmp(pre, k_pre_names[i].name)) t->pre = k_pre_names[i].pre;
    }
    if (t->pre < 0) {
        trit_fail(err, TRIT_EUNSUP, "pre-tokenizer '%s' (tokenizer.ggml.pre) is not supported",
                  pre);
        free(pre);
        return -1;
    }
    free(pre);
    if (t->pre == PRE_LLAMA3) t->ignore_merges = true, t->add_bos = true;
    t->pre_name = xstrdup(k_pre_canon[t->pre]);
    t->pretok = tok_pretok_new(t->pre, err);
    if (!t->pretok) return -1;
    if (load_merges(t, f, err)) return -1;
    gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
    return 0;
}

/* Step 4: the token of every byte (SPM byte fallback): "<0xXX>", else the one-byte text. */
static void load_byte_tokens(trit_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        t->byte_tok[b] = find_text(t, buf);
        if (t->byte_tok[b] < 0) {
            char one = (char)b;
            t->byte_tok[b] = tok_map_get(&t->tok2id, &one, 1);
        }
    }
}

/* Step 5: special ids from the GGUF (out-of-range ones warned and ignored); EOT / EOM found
 * by text when not given (and made control tokens); control tokens named "unused" unused. */
static void load_special_ids(trit_tokenizer *t, const gguf_file *f) {
    int32_t n = t->n_vocab;
    get_id(f, "tokenizer.ggml.bos_token_id", n, &t->bos);
    get_id(f, "tokenizer.ggml.eos_token_id", n, &t->eos);
    get_id(f, "tokenizer.ggml.eot_token_id", n, &t->eot);
    get_id(f, "tokenizer.ggml.eom_token_id", n, &t->eom);
    get_id(f, "tokenizer.ggml.unknown_token_id", n, &t->unk);
    get_id(f, "tokenizer.ggml.seperator_token_id", n, &t->sep);
    get_id(f, "tokenizer.ggml.padding_token_id", n, &t->pad);
    gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos);
    gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos);

    static const char *const eot_texts[] = {
        "<|eot_id|>",      "<|im_end|>", "<|end|>", "<end_of_turn>",         "<|endoftext|>",
        "<|end_of_text|>", "<EOT>",      "_<EOT>",  "<｜end▁of▁sentence｜>", "<end_of_utterance>"};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(eot_texts) && t->eot < 0; i++) {
        int32_t id = find_text(t, eot_texts[i]);
        if (id >= 0) t->eot = id, t->attr[id] |= TOK_ATTR_CONTROL;
    }
    if (t->eom < 0) {
        int32_t id = find_text(t, "<|eom_id|>");
        if (id >= 0) t->eom = id, t->attr[id] |= TOK_ATTR_CONTROL;
    }
    for (int32_t i = 0; i < n; i++)
        if ((t->attr[i] & TOK_ATTR_CONTROL) && strstr(t->text[i], "unused"))
            t->attr[i] |= TOK_ATTR_UNUSED;
}

/* Step 6: the end-of-generation set: known texts, then eos, eot, eom. */
static void load_eog_set(trit_tokenizer *t) {
    static const char *const eog_texts[] = {
        "<|eot_id|>", "<|im_end|>",    "<|end|>",         "<|return|>",
        "<|call|>",   "<end_of_turn>", "<|endoftext|>",   "<|eom_id|>",
        "<EOT>",      "_<EOT>",        "<|end_of_text|>", "<end_of_utterance>",
        "</s>",       "<|flush|>",     "<|calls|>",       "[EOT]",
        "[EOS]",      "<eos>",         "<turn|>",         "<｜end▁of▁sentence｜>"};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(eog_texts); i++) add_eog(t, find_text(t, eog_texts[i]));
    add_eog(t, t->eos);
    add_eog(t, t->eot);
    add_eog(t, t->eom);
}

/* Step 7: the special tokens that partition text, longest first (then by id). */
static void load_special_list(trit_tokenizer *t) {
    int32_t n = t->n_vocab;
    uint64_t *keys = xmalloc((size_t)n * sizeof(uint64_t)); /* (UINT32_MAX - len) << 32 | id */
    for (int32_t i = 0; i < n; i++)
        if (t->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            keys[t->n_special++] = ((uint64_t)(UINT32_MAX - t->text_len[i]) << 32) | (uint32_t)i;
    qsort(keys, t->n_special, sizeof(uint64_t), cmp_u64);
    t->special = xmalloc((t->n_special + 1) * sizeof(int32_t));
    for (size_t i = 0; i < t->n_special; i++) t->special[i] = (int32_t)(keys[i] & 0xFFFFFFFF);
    free(keys);
}

/* Step 8: Phi-3 only: special tokens swallow the whitespace after them (as the reference),
 * except <unk>, <s> and <|endoftext|>. */
static void load_phi3_rstrip(trit_tokenizer *t, const gguf_file *f) {
    char *name = gguf_get_str(f, "general.name");
    if (!name) return;
    for (char *p = name; *p; p++) *p = (char)tolower((unsigned char)*p);
    bool phi3 = strstr(name, "phi-3") || strstr(name, "phi3");
    free(name);
    if (!phi3) return;
    for (size_t i = 0; i < t->n_special; i++) t->attr[t->special[i]] |= TOK_ATTR_RSTRIP;
    int32_t id = find_text(t, "</s>");
    if (id >= 0) t->attr[id] |= TOK_ATTR_RSTRIP;
    static const char *const no_rstrip[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(no_rstrip); i++) {
        id = find_text(t, no_rstrip[i]);
        if (id >= 0) t->attr[id] &= ~(uint32_t)TOK_ATTR_RSTRIP;
    }
}

/* Step 9: every token's rendered piece (the bytes decoding yields), computed once. */
static void render_all_pieces(trit_tokenizer *t) {
    int32_t n = t->n_vocab;
    t->piece = xcalloc((size_t)n, sizeof(char *));
    t->piece_len = xcalloc((size_t)n, sizeof(uint32_t));
    trit_buf b = {0};
    for (int32_t i = 0; i < n; i++) {
        trit_buf_clear(&b);
        render_piece(t, i, &b);
        t->piece[i] = xmalloc(b.len + 1);
        if (b.len) memcpy(t->piece[i], b.p, b.len);
        t->piece[i][b.len] = 0;
        t->piece_len[i] = (uint32_t)b.len;
    }
    trit_buf_free(&b);
}

trit_tokenizer *trit_tok_load(const gguf_file *f, trit_err *err) {
    trit_tokenizer *t = xcalloc(1, sizeof *t);
    /* the steps that can fail: kind, tokens, pre-tokenizer (and merges) */
    if (load_model_kind(t, f, err) || load_tokens(t, f, err) || load_pretokenizer(t, f, err)) {
        trit_tok_free(t);
        return NULL;
    }
    /* the rest derives from what is loaded, in the reference's order */
    load_byte_tokens(t);
    load_special_ids(t, f);
    load_eog_set(t);
    load_special_list(t);
    load_phi3_rstrip(t, f);
    render_all_pieces(t);
    t->chat_template = gguf_get_str(f, "tokenizer.chat_template");
    return t;
}

trit_tokenizer *trit_tok_load_file(const char *path, trit_err *err) {
    gguf_file *f = gguf_open(path, err);
    if (!f) return NULL;
    trit_tokenizer *t = trit_tok_load(f, err);
    if (!t) trit_err_prefix(err, "%s", path);
    gguf_close(f);
    return t;
}

void trit_tok_free(trit_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; t->text && i < t->n_vocab; i++) free(t->text[i]);
    for (int32_t i = 0; t->piece && i < t->n_vocab; i++) free(t->piece[i]);
    for (size_t i = 0; i < t->merges.cap; i++) free((void *)t->merges.keys[i]);
    tok_map_free(&t->merges);
    tok_map_free(&t->tok2id);
    tok_pretok_free(t->pretok);
    free(t->text), free(t->text_len), free(t->score), free(t->attr), free(t->piece);
    free(t->piece_len), free(t->eog), free(t->special), free(t->chat_template);
    free(t->model_name), free(t->pre_name);
    free(t);
}

/* ---------------- accessors ---------------- */

int trit_tok_n_vocab(const trit_tokenizer *t) {
    return t->n_vocab;
}
const char *trit_tok_model(const trit_tokenizer *t) {
    return t->model_name;
}
const char *trit_tok_pre(const trit_tokenizer *t) {
    return t->pre_name;
}
const char *trit_tok_text(const trit_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->text[id] : NULL;
}
int32_t trit_tok_bos(const trit_tokenizer *t) {
    return t->bos;
}
int32_t trit_tok_eos(const trit_tokenizer *t) {
    return t->eos;
}
int32_t trit_tok_eot(const trit_tokenizer *t) {
    return t->eot;
}
bool trit_tok_add_bos(const trit_tokenizer *t) {
    return t->add_bos;
}
bool trit_tok_is_eog(const trit_tokenizer *t, int32_t id) {
    for (size_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return true;
    return false;
}
bool trit_tok_is_control(const trit_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->attr[id] & TOK_ATTR_CONTROL);
}
