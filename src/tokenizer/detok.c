/* detok.c — token ids -> bytes. A token's piece is computed once at load (vocab.c): byte-level
 * BPE tokens map back through the GPT-2 alphabet, SPM tokens turn U+2581 into spaces, byte
 * tokens <0xXX> give one byte, control/unknown tokens render only with special=true.
 * The streaming detokenizer holds back a trailing incomplete UTF-8 sequence. */
#include "tokenizer/tok_internal.h"

#include <string.h>

void trit_tok_piece(const trit_tokenizer *t, int32_t id, bool special, trit_buf *out) {
    if (!t || id < 0 || id >= t->n_vocab) return;
    if (!special && (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) return;
    if (t->piece_len[id]) trit_buf_append(out, t->piece[id], t->piece_len[id]);
}

void trit_tok_decode(const trit_tokenizer *t, const int32_t *ids, size_t n, bool special,
                     trit_buf *out) {
    for (size_t i = 0; i < n; i++) trit_tok_piece(t, ids[i], special, out);
}

void trit_detok_push(const trit_tokenizer *t, trit_detok *d, int32_t id, trit_buf *out) {
    trit_tok_piece(t, id, false, &d->pending);
    size_t ok = trit_utf8_complete_prefix(d->pending.p ? d->pending.p : "", d->pending.len);
    if (!ok) return;
    trit_buf_append(out, d->pending.p, ok);
    memmove(d->pending.p, d->pending.p + ok, d->pending.len - ok);
    d->pending.len -= ok;
    d->pending.p[d->pending.len] = 0;
}

void trit_detok_flush(trit_detok *d, trit_buf *out) {
    if (d->pending.len) trit_buf_append(out, d->pending.p, d->pending.len);
    trit_buf_clear(&d->pending);
}

void trit_detok_free(trit_detok *d) {
    trit_buf_free(&d->pending);
}
