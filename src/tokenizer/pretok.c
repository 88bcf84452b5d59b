/* pretok.c — BPE pre-tokenizers: split text into words the way llama.cpp does for each
 * tokenizer.ggml.pre.
 *
 * A pre-tokenizer is a list of regexes applied in turn: each one splits every current segment
 * into its matches and the gaps between them (both kept). Three regexes (GPT-2, Llama-3,
 * Qwen2) are implemented as hand-written scanners, because the reference implements them by
 * hand too and its scanners differ from true regex semantics in corner cases. The others run
 * on PCRE2 either on a "collapsed" text (every non-ASCII codepoint replaced by one byte naming
 * its class, as the reference does for regexes using \p{..}) or on the codepoints themselves
 * with non-ASCII whitespace mapped to U+000B. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/tok_internal.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

enum { RX_GPT2 = 1, RX_LLAMA3, RX_QWEN2, RX_COLLAPSED, RX_WIDE };

#define SEP       "\x01" /* separates regexes in the tables below */
#define GPT2_RX   "@gpt2"
#define LLAMA3_RX "@llama3"
#define QWEN2_RX  "@qwen2"

static const char *const k_pre_rx[PRE_COUNT] = {
    [PRE_DEFAULT] = "[\\p{P}\\$\\+<=>\\^~\\|]+" SEP GPT2_RX SEP "\\p{N}+" SEP "[0-9][0-9][0-9]",
    [PRE_LLAMA3] = LLAMA3_RX,
    [PRE_GPT2] = GPT2_RX,
    [PRE_MPT] = GPT2_RX,
    [PRE_QWEN2] = QWEN2_RX,
    [PRE_DEEPSEEK_LLM] =
        "[\r\n]" SEP
        "\\s?[A-Za-z\xC2\xB5\xC3\x80-\xC3\x96\xC3\x98-\xC3\xB6\xC3\xB8-\xC6\xBA\xC6\xBC-\xC6\xBF"
        "\xC7\x84-\xCA\x93\xCA\x95-\xCA\xAF\xCD\xB0-\xCD\xB3\xCD\xB6\xCD\xB7\xCD\xBB-\xCD\xBD\xCD"
        "\xBF\xCE\x86\xCE\x88-\xCE\x8A\xCE\x8C\xCE\x8E-\xCE\xA1\xCE\xA3-\xCF\xB5\xCF\xB7-\xD2\x81"
        "\xD2\x8A-\xD4\xAF\xD4\xB1-\xD5\x96\xE1\x82\xA0-\xE1\x83\x85\xE1\x8E\xA0-\xE1\x8F\xB5\xE1"
        "\x8F\xB8-\xE1\x8F\xBD\xE1\xB2\x90-\xE1\xB2\xBA\xE1\xB2\xBD-\xE1\xB2\xBF\xE1\xB4\x80-\xE1"
        "\xB4\xAB\xE1\xB5\xAB-\xE1\xB5\xB7\xE1\xB5\xB9-\xE1\xB6\x9A\xE1\xB8\x80-\xE1\xBC\x95\xE1"
        "\xBC\x98-\xE1\xBC\x9D\xE1\xBC\xA0-\xE1\xBD\x85\xE1\xBD\x88-\xE1\xBD\x8D\xE1\xBD\x90-\xE1"
        "\xBD\x97\xE1\xBD\x99\xE1\xBD\x9B\xE1\xBD\x9D\xE1\xBD\x9F-\xE1\xBD\xBD\xE1\xBE\x80-\xE1"
        "\xBE\xB4\xE1\xBE\xB6-\xE1\xBE\xBC\xE1\xBE\xBE\xE1\xBF\x82-\xE1\xBF\x84\xE1\xBF\x86-\xE1"
        "\xBF\x8C\xE1\xBF\x90-\xE1\xBF\x93\xE1\xBF\x96-\xE1\xBF\x9B\xE1\xBF\xA0-\xE1\xBF\xAC\xE1"
        "\xBF\xB2-\xE1\xBF\xB4\xE1\xBF\xB6-\xE1\xBF\xBC\xE2\x84\x82\xE2\x84\x87\xE2\x84\x8A-\xE2"
        "\x84\x93\xE2\x84\x95\xE2\x84\x99-\xE2\x84\x9D\xE2\x84\xA4\xE2\x84\xA6\xE2\x84\xA8\xE2"
        "\x84\xAA-\xE2\x84\xAD\xE2\x84\xAF-\xE2\x84\xB4\xE2\x84\xB9\xE2\x84\xBC-\xE2\x84\xBF\xE2"
        "\x85\x85-\xE2\x85\x89\xE2\x85\x8E\xE2\x86\x83\xE2\x86\x84\xE2\xB0\x80-\xE2\xB1\xBB\xE2"
        "\xB1\xBE-\xE2\xB3\xA4\xE2\xB3\xAB-\xE2\xB3\xAE\xE2\xB3\xB2\xE2\xB3\xB3\xEA\x99\x80-\xEA"
        "\x99\xAD\xEA\x9A\x80-\xEA\x9A\x9B\xEA\x9C\xA2-\xEA\x9D\xAF\xEA\x9D\xB1-\xEA\x9E\x87\xEA"
        "\x9E\x8B-\xEA\x9E\x8E\xEA\xAD\xB0-\xEA\xAE\xBF\xEF\xAC\x80-\xEF\xAC\x86\xEF\xAC\x93-\xEF"
        "\xAC\x97\xEF\xBC\xA1-\xEF\xBC\xBA\xEF\xBD\x81-\xEF\xBD\x9A\xF0\x90\x90\x80-\xF0\x90\x91"
        "\x8F\xF0\x90\x92\xB0-\xF0\x90\x93\x93\xF0\x90\x93\x98-\xF0\x90\x93\xBB\xF0\x90\xB2\x80"
        "-\xF0\x90\xB2\xB2\xF0\x90\xB3\x80-\xF0\x90\xB3\xB2\xF0\x91\xA2\xA0-\xF0\x91\xA3\x9F\xF0"
        "\x9E\xA4\x80-\xF0\x9E\xA5\x83]+" SEP "\\s?[!-/:-~！-／：-～‘-‟　-。]+" SEP "\\s+$" SEP
        "[一-龥ࠀ-一가-퟿]+" SEP "\\p{N}+",
    [PRE_DEEPSEEK_CODER] =
        "[\r\n]" SEP "\\s?\\p{L}+" SEP "\\s?\\p{P}+" SEP "[一-龥ࠀ-一가-퟿]+" SEP "\\p{N}",
    [PRE_FALCON] = "[\\p{P}\\$\\+<=>\\^~\\|`]+" SEP GPT2_RX SEP "[0-9][0-9][0-9]",
    [PRE_STARCODER] = "\\p{N}" SEP GPT2_RX,
    [PRE_REFACT] = "\\p{N}" SEP GPT2_RX,
    [PRE_COMMAND_R] = "\\p{N}" SEP GPT2_RX,
};

typedef struct rx {
    int kind;
    pcre2_code *re;
} rx;

struct tok_pretok {
    int pre;
    int n;
    rx rx[8];
};

/* Collapsed byte for a class (as in the reference) and the ASCII members of each class. */
static const struct {
    const char *prop;
    unsigned flag;
    char byte;
    const char *ascii;
} k_ucat[] = {
    {"\\p{N}", UCP_NUMBER, '\xD1', "0-9"},
    {"\\p{L}", UCP_LETTER, '\xD2', "A-Za-z"},
    {"\\p{P}", UCP_PUNCT, '\xD3', "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}"},
    {"\\p{M}", UCP_MARK, '\xD4', ""},
    {"\\p{S}", UCP_SYMBOL, '\xD5', "\\$\\+<->^`\\|\\~"},
    {"\\p{Lu}", UCP_LETTER, '\xD2', "A-Za-z"},
    {"\\p{Ll}", UCP_LETTER, '\xD2', "A-Za-z"},
    {"\\p{Lt}", UCP_LETTER, '\xD2', "A-Za-z"},
    {"\\p{Lm}", UCP_LETTER, '\xD2', "A-Za-z"},
    {"\\p{Lo}", UCP_LETTER, '\xD2', "A-Za-z"},
};

static bool uses_ucat(const char *r) {
    for (size_t i = 0; i < TRIT_ARRAY_LEN(k_ucat); i++)
        if (strstr(r, k_ucat[i].prop)) return true;
    return false;
}

/* Rewrite \p{X} into a byte class over the collapsed text. */
static char *collapse_regex(const char *r) {
    trit_buf b = {0};
    bool inside = false;
    size_t n = strlen(r);
    for (size_t i = 0; i < n; i++) {
        if (r[i] == '[' && (i == 0 || r[i - 1] != '\\')) {
            trit_buf_append(&b, "[", 1);
            inside = true;
            continue;
        }
        if (inside && r[i] == ']' && r[i - 1] != '\\') {
            trit_buf_append(&b, "]", 1);
            inside = false;
            continue;
        }
        if (r[i] == '\\' && i + 3 < n && r[i + 1] == 'p' && r[i + 2] == '{') {
            const char *close = strchr(r + i + 3, '}');
            bool done = false;
            if (close && (size_t)(close - r) <= i + 10) {
                size_t plen = (size_t)(close - r) - i + 1;
                for (size_t k = 0; k < TRIT_ARRAY_LEN(k_ucat); k++) {
                    if (strlen(k_ucat[k].prop) == plen && !memcmp(r + i, k_ucat[k].prop, plen)) {
                        if (!inside) trit_buf_append(&b, "[", 1);
                        trit_buf_append(&b, &k_ucat[k].byte, 1);
                        trit_buf_puts(&b, k_ucat[k].ascii);
                        if (!inside) trit_buf_append(&b, "]", 1);
                        i = (size_t)(close - r);
                        done = true;
                        break;
                    }
                }
            }
            if (done) continue;
        }
        trit_buf_append(&b, r + i, 1);
    }
    return b.p ? b.p : xstrdup("");
}

tok_pretok *tok_pretok_new(int pre, trit_err *err) {
    if (pre < 0 || pre >= PRE_COUNT || !k_pre_rx[pre]) {
        trit_fail(err, TRIT_EUNSUP, "unsupported pre-tokenizer %d", pre);
        return NULL;
    }
    tok_pretok *p = xcalloc(1, sizeof *p);
    p->pre = pre;
    char *all = xstrdup(k_pre_rx[pre]);
    char *save = NULL;
    for (char *r = strtok_r(all, SEP, &save); r; r = strtok_r(NULL, SEP, &save)) {
        rx *x = &p->rx[p->n++];
        if (!strcmp(r, GPT2_RX)) {
            x->kind = RX_GPT2;
            continue;
        }
        if (!strcmp(r, LLAMA3_RX)) {
            x->kind = RX_LLAMA3;
            continue;
        }
        if (!strcmp(r, QWEN2_RX)) {
            x->kind = RX_QWEN2;
            continue;
        }
        int ec;
        PCRE2_SIZE eo;
        if (uses_ucat(r)) {
            char *c = collapse_regex(r);
            x->kind = RX_COLLAPSED;
            x->re = pcre2_compile((PCRE2_SPTR)c, PCRE2_ZERO_TERMINATED, PCRE2_DOLLAR_ENDONLY, &ec,
                                  &eo, NULL);
            free(c);
        } else {
            x->kind = RX_WIDE;
            x->re = pcre2_compile((PCRE2_SPTR)r, PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
        }
        if (!x->re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            trit_fail(err, TRIT_EFORMAT, "pre-tokenizer regex %d does not compile at %zu: %s",
                      p->n - 1, (size_t)eo, (const char *)msg);
            free(all);
            tok_pretok_free(p);
            return NULL;
        }
        pcre2_jit_compile(x->re, PCRE2_JIT_COMPLETE); /* optional speed-up */
    }
    free(all);
    return p;
}

void tok_pretok_free(tok_pretok *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++)
        if (p->rx[i].re) pcre2_code_free(p->rx[i].re);
    free(p);
}

/* ---- segment lists ---- */
typedef struct seglist {
    size_t *v;
    size_t n, cap;
} seglist;

static void seg_push(seglist *s, size_t len) {
    if (len == 0) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = xrealloc(s->v, s->cap * sizeof(size_t));
    }
    s->v[s->n++] = len;
}

/* ---- hand-written scanners ---- */
typedef struct scan {
    const uint32_t *c;
    size_t ini, end, prev;
    seglist *out;
} scan;

#define OUT_OF_RANGE 0xFFFFFFFFu
static inline uint32_t sc_cpt(const scan *s, size_t pos) {
    return pos >= s->ini && pos < s->end ? s->c[pos] : OUT_OF_RANGE;
}
static inline unsigned sc_flags(const scan *s, size_t pos) {
    return pos >= s->ini && pos < s->end ? tok_ucp_flags(s->c[pos]) : 0;
}
static inline size_t sc_emit(scan *s, size_t end) {
    size_t len = end - s->prev;
    seg_push(s->out, len);
    s->prev = end;
    return len;
}
static inline uint32_t ascii_lower(uint32_t c) {
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's 't 're 've 'm 'll 'd (case-insensitive when ci): returns the match length or 0. */
static size_t contraction(const scan *s, size_t pos, bool ci) {
    if (sc_cpt(s, pos) != '\'' || pos + 1 >= s->end) return 0;
    uint32_t a = sc_cpt(s, pos + 1);
    if (ci) a = ascii_lower(a);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= s->end) return 0;
    uint32_t b = sc_cpt(s, pos + 2);
    if (ci) b = ascii_lower(b);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

#define LNW (UCP_LETTER | UCP_NUMBER | UCP_WHITESPACE)

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void scan_gpt2(scan *s) {
    size_t pos = s->ini;
    while (pos < s->end) {
        uint32_t c = sc_cpt(s, pos);
        unsigned f = sc_flags(s, pos);
        size_t k = contraction(s, pos, false);
        if (k) {
            pos += sc_emit(s, pos + k);
            continue;
        }
        unsigned f2 = c == ' ' ? sc_flags(s, pos + 1) : f;
        if (f2 & UCP_LETTER) {
            pos += (c == ' ');
            while (sc_flags(s, pos) & UCP_LETTER) pos++;
            sc_emit(s, pos);
            continue;
        }
        if (f2 & UCP_NUMBER) {
            pos += (c == ' ');
            while (sc_flags(s, pos) & UCP_NUMBER) pos++;
            sc_emit(s, pos);
            continue;
        }
        if (!(f2 & LNW) && f2) {
            pos += (c == ' ');
            for (f2 = sc_flags(s, pos); !(f2 & LNW) && f2; f2 = sc_flags(s, ++pos)) {
            }
            sc_emit(s, pos);
            continue;
        }
        size_t nws = 0;
        while (sc_flags(s, pos + nws) & UCP_WHITESPACE) nws++;
        if (nws > 1 && sc_cpt(s, pos + nws) != OUT_OF_RANGE) {
            pos += nws - 1;
            sc_emit(s, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            sc_emit(s, pos);
            continue;
        }
        sc_emit(s, ++pos);
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static void scan_llama3(scan *s, size_t max_digits) {
    size_t pos = s->ini;
    while (pos < s->end) {
        uint32_t c = sc_cpt(s, pos);
        unsigned f = sc_flags(s, pos);
        size_t k = contraction(s, pos, true);
        if (k) {
            pos += sc_emit(s, pos + k);
            continue;
        }
        if (!(c == '\r' || c == '\n' || (f & UCP_NUMBER))) {
            if ((f & UCP_LETTER) || (sc_flags(s, pos + 1) & UCP_LETTER)) {
                pos++;
                while (sc_flags(s, pos) & UCP_LETTER) pos++;
                sc_emit(s, pos);
                continue;
            }
        }
        if (f & UCP_NUMBER) {
            size_t run = 0;
            while (sc_flags(s, pos) & UCP_NUMBER) {
                pos++;
                if (++run == max_digits) {
                    sc_emit(s, pos);
                    run = 0;
                }
            }
            sc_emit(s, pos);
            continue;
        }
        unsigned f2 = c == ' ' ? sc_flags(s, pos + 1) : f;
        if (!(f2 & LNW) && f) {
            pos += (c == ' ');
            for (f2 = sc_flags(s, pos); !(f2 & LNW) && f2; f2 = sc_flags(s, ++pos)) {
            }
            for (uint32_t c2 = sc_cpt(s, pos); c2 == '\r' || c2 == '\n'; c2 = sc_cpt(s, ++pos)) {
            }
            sc_emit(s, pos);
            continue;
        }
        size_t nws = 0, last_rn = 0;
        while (sc_flags(s, pos + nws) & UCP_WHITESPACE) {
            uint32_t c2 = sc_cpt(s, pos + nws);
            if (c2 == '\r' || c2 == '\n') last_rn = pos + nws + 1;
            nws++;
        }
        if (last_rn > 0) {
            pos = last_rn;
            sc_emit(s, pos);
            continue;
        }
        if (nws > 1 && sc_cpt(s, pos + nws) != OUT_OF_RANGE) {
            pos += nws - 1;
            sc_emit(s, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            sc_emit(s, pos);
            continue;
        }
        sc_emit(s, ++pos);
    }
}

/* ---- PCRE2 over a subject; offsets in subject units mapped back to codepoints ---- */
static void split_pcre(const rx *x, const char *subj, const size_t *cpt_off,
                       const uint32_t *byte2cpt, const seglist *in, seglist *out,
                       pcre2_match_data *md) {
    size_t start = 0; /* codepoint index of the segment start */
    for (size_t si = 0; si < in->n; si++) {
        size_t len = in->v[si];
        size_t b0 = cpt_off[start], b1 = cpt_off[start + len];
        const char *seg = subj + b0;
        size_t seglen = b1 - b0, at = 0, last = 0; /* byte offsets within seg */
        while (at <= seglen) {
            int rc = pcre2_match(x->re, (PCRE2_SPTR)seg, seglen, at, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc < 0) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* empty match: skip one codepoint */
                if (ms >= seglen) break;
                size_t nx = ms + 1;
                while (nx < seglen && byte2cpt[b0 + nx] == byte2cpt[b0 + ms]) nx++;
                at = nx;
                continue;
            }
            if (ms > last) seg_push(out, byte2cpt[b0 + ms] - byte2cpt[b0 + last]);
            seg_push(out, byte2cpt[b0 + me] - byte2cpt[b0 + ms]);
            last = at = me;
        }
        if (last < seglen) seg_push(out, byte2cpt[b0 + seglen] - byte2cpt[b0 + last]);
        start += len;
    }
}

/* A PCRE2 subject built from the codepoints once per split: the text, each codepoint's
 * offset in it (off[n] is its length) and each subject unit's codepoint (b2c). */
typedef struct subject {
    char *s;
    size_t *off;
    uint32_t *b2c;
} subject;

/* The collapsed subject (one byte per codepoint, as in the reference): ASCII as is, other
 * whitespace 0x0B, other codepoints the byte of their Unicode class (0xD0 when none). */
static void build_collapsed(subject *sj, const uint32_t *cpts, size_t n) {
    sj->s = xmalloc(n + 1);
    sj->off = xmalloc((n + 1) * sizeof(size_t));
    sj->b2c = xmalloc((n + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cpts[i];
        char b;
        if (c < 128) {
            b = (char)c;
        } else {
            unsigned f = tok_ucp_flags(c);
            b = '\xD0';
            if (f & UCP_WHITESPACE) {
                b = 0x0B;
            } else {
                for (size_t k = 0; k < 5; k++)
                    if (f & k_ucat[k].flag) b = k_ucat[k].byte;
            }
        }
        sj->s[i] = b;
        sj->off[i] = i;
        sj->b2c[i] = (uint32_t)i;
    }
    sj->off[n] = n;
    sj->b2c[n] = (uint32_t)n;
}

/* The UTF-8 subject, with non-ASCII whitespace written as 0x0B. */
static void build_wide(subject *sj, const uint32_t *cpts, size_t n) {
    sj->s = xmalloc(4 * n + 1);
    sj->off = xmalloc((n + 1) * sizeof(size_t));
    sj->b2c = xmalloc((4 * n + 1) * sizeof(uint32_t));
    size_t b = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cpts[i];
        if (c > 0x7F && (tok_ucp_flags(c) & UCP_WHITESPACE)) c = 0x0B;
        sj->off[i] = b;
        int k = tok_utf8_put(c, sj->s + b);
        for (int j = 0; j < k; j++) sj->b2c[b + j] = (uint32_t)i;
        b += (size_t)k;
    }
    sj->off[n] = b;
    sj->b2c[b] = (uint32_t)n;
}

/* Frees what build_collapsed or build_wide allocated (nothing for an unbuilt subject). */
static void subject_free(subject *sj) {
    free(sj->s), free(sj->off), free(sj->b2c);
}

/* The hand-written scanners (GPT-2, Llama-3, Qwen2) over each segment of cur. */
static void split_native(const rx *x, const uint32_t *cpts, const seglist *cur, seglist *nxt) {
    size_t start = 0;
    for (size_t si = 0; si < cur->n; si++) {
        scan s = {cpts, start, start + cur->v[si], start, nxt};
        if (x->kind == RX_GPT2)
            scan_gpt2(&s);
        else
            scan_llama3(&s, x->kind == RX_LLAMA3 ? 3 : 1);
        start += cur->v[si];
    }
}

/* Applies the pre-tokenizer's regexes in turn, each splitting every segment the previous
 * one left; the PCRE2 subjects are built on first use and shared by later regexes. */
size_t tok_pretok_split(const tok_pretok *p, const uint32_t *cpts, size_t n, size_t **lens) {
    seglist cur = {0}, nxt = {0};
    seg_push(&cur, n);
    subject collapsed = {0}, wide = {0};
    pcre2_match_data *md = NULL;

    for (int r = 0; r < p->n && n > 0; r++) {
        const rx *x = &p->rx[r];
        nxt.n = 0;
        if (x->kind == RX_GPT2 || x->kind == RX_LLAMA3 || x->kind == RX_QWEN2) {
            split_native(x, cpts, &cur, &nxt);
        } else {
            if (!md) md = pcre2_match_data_create(4, NULL);
            if (x->kind == RX_COLLAPSED) {
                if (!collapsed.s) build_collapsed(&collapsed, cpts, n);
                split_pcre(x, collapsed.s, collapsed.off, collapsed.b2c, &cur, &nxt, md);
            } else {
                if (!wide.s) build_wide(&wide, cpts, n);
                split_pcre(x, wide.s, wide.off, wide.b2c, &cur, &nxt, md);
            }
        }
        seglist t = cur;
        cur = nxt;
        nxt = t;
    }
    if (md) pcre2_match_data_free(md);
    subject_free(&collapsed);
    subject_free(&wide);
    free(nxt.v);
    if (!cur.v) cur.v = xmalloc(sizeof(size_t));
    *lens = cur.v;
    return cur.n;
}
