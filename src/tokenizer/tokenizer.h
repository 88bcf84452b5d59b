/* tokenizer — vocabularies from GGUF (tokenizer.ggml.*): byte-level BPE with llama.cpp's
 * pre-tokenizers (PCRE2, Unicode properties), SentencePiece (SPM), special tokens, streaming
 * detokenization and chat templates.
 *
 * Contract: encode/decode agree with llama.cpp's llama_tokenize / llama_token_to_piece for
 * the same vocabulary. Invalid UTF-8 input to encode is an error (TRIT_EFORMAT) naming the
 * byte offset, never a crash. Depends on gguf and base (and libpcre2-8). */
#ifndef TRIT_TOKENIZER_H
#define TRIT_TOKENIZER_H

#include "base/base.h"
#include "gguf/gguf.h"

typedef struct trit_tokenizer trit_tokenizer;

trit_tokenizer *trit_tok_load(const gguf_file *f, trit_err *err);
trit_tokenizer *trit_tok_load_file(const char *path, trit_err *err);
void trit_tok_free(trit_tokenizer *t);

int trit_tok_n_vocab(const trit_tokenizer *t);
const char *trit_tok_model(const trit_tokenizer *t); /* "gpt2" (BPE) | "llama" (SPM) */
const char *trit_tok_pre(const trit_tokenizer *t);   /* pre-tokenizer in use, e.g. "llama3" */

/* Encode text[0..len). add_special: add BOS/EOS as the vocabulary says (add_bos_token...).
 * parse_special: recognise special/control tokens in the text as single ids.
 * *ids is malloc'd (caller frees). */
int trit_tok_encode(const trit_tokenizer *t, const char *text, size_t len, bool add_special,
                    bool parse_special, int32_t **ids, size_t *n_ids, trit_err *err);

/* Append the bytes of one token. special=false renders control/special tokens as nothing. */
void trit_tok_piece(const trit_tokenizer *t, int32_t id, bool special, trit_buf *out);
void trit_tok_decode(const trit_tokenizer *t, const int32_t *ids, size_t n, bool special,
                     trit_buf *out);
const char *trit_tok_text(const trit_tokenizer *t, int32_t id); /* raw vocab entry or NULL */

int32_t trit_tok_bos(const trit_tokenizer *t); /* -1 when none */
int32_t trit_tok_eos(const trit_tokenizer *t);
int32_t trit_tok_eot(const trit_tokenizer *t);
bool trit_tok_add_bos(const trit_tokenizer *t);
bool trit_tok_is_eog(const trit_tokenizer *t, int32_t id); /* end of generation: eos, eot, ... */
bool trit_tok_is_control(const trit_tokenizer *t, int32_t id);

/* Streaming detokenizer: bytes of an incomplete UTF-8 sequence are held back until complete,
 * so a consumer never sees half a character. */
typedef struct trit_detok {
    trit_buf pending;
} trit_detok;
void trit_detok_push(const trit_tokenizer *t, trit_detok *d, int32_t id, trit_buf *out);
void trit_detok_flush(trit_detok *d, trit_buf *out); /* emit whatever is held (end of stream) */
void trit_detok_free(trit_detok *d);

/* ---- chat templates ---- */
typedef struct trit_chat_msg {
    const char *role; /* "system" | "user" | "assistant" */
    const char *content;
} trit_chat_msg;

enum trit_chat_tmpl { TRIT_TMPL_RAW = 0, TRIT_TMPL_LLAMA3 = 1, TRIT_TMPL_BITNET = 2 };
/* "llama3" | "bitnet" | "raw"; -1 if unknown. */
int trit_chat_tmpl_from_name(const char *name);
const char *trit_chat_tmpl_name(int tmpl);
/* The template the model's tokenizer.chat_template is recognised as (or llama3 default). */
int trit_tok_chat_tmpl(const trit_tokenizer *t);
/* Render messages; the result includes <|begin_of_text|> when the template has it (so encode
 * it with add_special=false, parse_special=true). */
int trit_chat_apply(int tmpl, const trit_chat_msg *msgs, size_t n, bool add_generation_prompt,
                    trit_buf *out, trit_err *err);

#endif
