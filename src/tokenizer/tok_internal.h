/* tok_internal.h — private to src/tokenizer: the vocabulary struct, string hash maps, Unicode
 * classification and the pre-tokenizer. Not part of the public contract (tokenizer.h). */
#ifndef TRIT_TOK_INTERNAL_H
#define TRIT_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"

/* token attributes (like llama.cpp's llama_token_attr) */
enum {
    TOK_ATTR_UNDEFINED = 0,
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_LSTRIP = 1 << 7,
    TOK_ATTR_RSTRIP = 1 << 8,
};

/* Unicode codepoint classes (one per codepoint) and flags. */
enum {
    UCP_UNDEF = 0x01, /* unassigned (Cn) */
    UCP_NUMBER = 0x02,
    UCP_LETTER = 0x04,
    UCP_SEPARATOR = 0x08,
    UCP_MARK = 0x10,
    UCP_PUNCT = 0x20,
    UCP_SYMBOL = 0x40,
    UCP_CONTROL = 0x80,
    UCP_WHITESPACE = 0x100,
};
/* Category + whitespace flags of a codepoint (0 for cpt > 0x10FFFF). Thread-safe. */
unsigned tok_ucp_flags(uint32_t cpt);

/* ---- string -> int32 hash map (open addressing; keys are borrowed, not copied) ---- */
typedef struct tok_map {
    const char **keys;
    uint32_t *lens;
    int32_t *vals;
    uint64_t *hashes;
    size_t cap, n;
} tok_map;
void tok_map_init(tok_map *m, size_t expected);
void tok_map_free(tok_map *m);
/* Insert or overwrite. */
void tok_map_put(tok_map *m, const char *key, size_t len, int32_t val);
/* -1 if missing. */
int32_t tok_map_get(const tok_map *m, const char *key, size_t len);

/* ---- pre-tokenizer ---- */
enum tok_pre {
    PRE_DEFAULT = 0,
    PRE_LLAMA3,
    PRE_GPT2,
    PRE_QWEN2,
    PRE_DEEPSEEK_LLM,
    PRE_DEEPSEEK_CODER,
    PRE_FALCON,
    PRE_MPT,
    PRE_STARCODER,
    PRE_REFACT,
    PRE_COMMAND_R,
    PRE_COUNT
};
typedef struct tok_pretok tok_pretok;
tok_pretok *tok_pretok_new(int pre, trit_err *err);
void tok_pretok_free(tok_pretok *p);
/* Split cpts[0..n) into words; returns the number of words and sets *lens (malloc'd, lengths
 * in codepoints, summing to n). */
size_t tok_pretok_split(const tok_pretok *p, const uint32_t *cpts, size_t n, size_t **lens);

/* Strict UTF-8 decoding: returns 0 and fills *cpts (malloc'd) / *n, or -1 with err naming the
 * byte offset of the first invalid sequence. */
int tok_utf8_decode(const char *s, size_t len, uint32_t **cpts, size_t *n, trit_err *err);
/* Append the UTF-8 encoding of cpt. Returns bytes written (1..4). */
int tok_utf8_put(uint32_t cpt, char out[4]);

/* GPT-2 byte <-> printable codepoint mapping. */
uint32_t tok_byte_to_cpt(uint8_t b);
int tok_cpt_to_byte(uint32_t cpt); /* -1 if not one of the 256 */

/* ---- the tokenizer ---- */
enum tok_type { TOK_BPE = 1, TOK_SPM = 2 };

struct trit_tokenizer {
    int type;         /* enum tok_type */
    char *model_name; /* tokenizer.ggml.model */
    char *pre_name;   /* canonical pre-tokenizer name in use */
    int pre;          /* enum tok_pre */
    int32_t n_vocab;
    char **text; /* raw vocab entries (NUL-terminated copies) */
    uint32_t *text_len;
    float *score;
    uint32_t *attr;
    char **piece; /* rendered bytes of each token (special=true) */
    uint32_t *piece_len;
    tok_map tok2id;
    tok_map merges; /* key: u16 len(left) + left + right -> rank */
    tok_pretok *pretok;

    int32_t bos, eos, eot, eom, unk, pad, sep;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    int32_t *eog;
    size_t n_eog;
    int32_t byte_tok[256]; /* SPM <0xXX> tokens, -1 if absent */
    int32_t *special;      /* control/user-defined/unknown ids, longest text first */
    size_t n_special;
    char *chat_template;
};

#endif
