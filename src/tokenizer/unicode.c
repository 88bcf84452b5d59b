/* unicode.c — strict UTF-8 decoding, per-codepoint Unicode classes and the GPT-2 byte map.
 *
 * Classes are the general categories that llama.cpp's pre-tokenizers use (L, N, Z, M, P, S, C
 * and unassigned) plus the White_Space property. They come from PCRE2's Unicode tables
 * (Unicode 14 in PCRE2 10.42), looked up once per codepoint and cached in a table. llama.cpp
 * uses Unicode 15.1 data: codepoints first assigned in 15.0/15.1 are "unassigned" here, which
 * can change how they are grouped (see tests/unit/test_tokenizer.c, which measures this). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/tok_internal.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CPT 0x110000

static _Atomic uint16_t g_flags[MAX_CPT]; /* 0 = not looked up yet */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pcre2_code *g_re;
static pcre2_match_data *g_md;

static bool is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static unsigned classify(uint32_t cpt) {
    static const unsigned group_flag[] = {0,          UCP_LETTER, UCP_NUMBER, UCP_SEPARATOR,
                                          UCP_MARK,   UCP_PUNCT,  UCP_SYMBOL, UCP_UNDEF,
                                          UCP_CONTROL};
    if (cpt >= 0xD800 && cpt <= 0xDFFF) return UCP_CONTROL; /* surrogates: Cs */
    unsigned flags = UCP_UNDEF;
    pthread_mutex_lock(&g_mu);
    if (!g_re) {
        int ec;
        PCRE2_SIZE eo;
        const char *pat =
            "(\\p{L})|(\\p{N})|(\\p{Z})|(\\p{M})|(\\p{P})|(\\p{S})|(\\p{Cn})|(\\p{C})";
        g_re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                             PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &ec, &eo, NULL);
        if (!g_re) {
            fprintf(stderr, "trit: tokenizer: PCRE2 failed to compile the class pattern\n");
            abort();
        }
        g_md = pcre2_match_data_create_from_pattern(g_re, NULL);
    }
    char buf[4];
    int n = tok_utf8_put(cpt, buf);
    int rc = pcre2_match(g_re, (PCRE2_SPTR)buf, (PCRE2_SIZE)n, 0, PCRE2_NO_UTF_CHECK, g_md, NULL);
    if (rc > 1) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(g_md);
        for (int g = 1; g < rc && g < 9; g++)
            if (ov[2 * g] != PCRE2_UNSET) {
                flags = group_flag[g];
                break;
            }
    }
    pthread_mutex_unlock(&g_mu);
    return flags;
}

unsigned tok_ucp_flags(uint32_t cpt) {
    if (cpt >= MAX_CPT) return 0;
    unsigned f = atomic_load_explicit(&g_flags[cpt], memory_order_relaxed);
    if (f) return f;
    f = classify(cpt) | (is_white_space(cpt) ? UCP_WHITESPACE : 0);
    atomic_store_explicit(&g_flags[cpt], (uint16_t)f, memory_order_relaxed);
    return f;
}

int tok_utf8_put(uint32_t c, char out[4]) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

int tok_utf8_decode(const char *s, size_t len, uint32_t **cpts, size_t *n, trit_err *err) {
    const unsigned char *p = (const unsigned char *)s;
    uint32_t *out = xmalloc((len + 1) * sizeof(uint32_t));
    size_t k = 0, i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            out[k++] = c;
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            need = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 4, cp = c & 0x07, min = 0x10000;
        } else {
            goto bad;
        }
        if (i + need > len) goto bad;
        for (size_t j = 1; j < need; j++) {
            if ((p[i + j] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
        out[k++] = cp;
        i += need;
    }
    *cpts = out;
    *n = k;
    return 0;
bad:
    free(out);
    return trit_fail(err, TRIT_EFORMAT, "invalid UTF-8 in input at byte offset %zu (byte 0x%02x)",
                     i, p[i]);
}

/* GPT-2: printable bytes map to themselves, the other 68 to U+0100.. in byte order. */
uint32_t tok_byte_to_cpt(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) n++;
    return 256 + n;
}

int tok_cpt_to_byte(uint32_t cpt) {
    if (cpt < 256) {
        uint8_t b = (uint8_t)cpt;
        if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
        return -1;
    }
    if (cpt >= 256 + 68) return -1;
    /* the n-th non-printable byte */
    uint32_t n = cpt - 256, seen = 0;
    for (unsigned x = 0; x < 256; x++) {
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) {
            if (seen == n) return (int)x;
            seen++;
        }
    }
    return -1;
}
