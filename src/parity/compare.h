/* parity/compare.h — is gen-2's reply the same as gen-1's? buckets, divergence, tie rule.
 *
 * Contract: classifies two replies to the same prompt into a bucket (exact / prefix-only /
 * no-match / v1-unreachable / v2-unreachable); for a split it finds the first divergent byte
 * and the *token split*: the first index where the two token sequences differ, by token id
 * when every token on both sides has one, else by the tokens' bytes. Tokens can re-segment
 * the same bytes (" th"+"e" vs " the"), so the token split can come before the token that
 * holds the first divergent byte; tie vs real is decided from both sides' top-k at the token
 * split, the one position where both sides chose between the same alternatives. The tie rule is one
 * function, trit_tie_rule, used here and by the ladder's decode rung: a split is a tie when both
 * sides' top-1/top-2 gaps are within eps and each side's token is in the other's top-5; when a
 * side's gap is unknown (logprobs missing) the split is unclassified, never "real".
 * Depends on base, client. */
#ifndef TRIT_PARITY_COMPARE_H
#define TRIT_PARITY_COMPARE_H

#include "base/base.h"
#include "client/client.h"

typedef enum trit_bucket {
    TRIT_BUCKET_EXACT = 0,
    TRIT_BUCKET_PREFIX,       /* "prefix-only": one reply is a strict prefix of the other */
    TRIT_BUCKET_NOMATCH,      /* "no-match": they differ before the end of the shorter */
    TRIT_BUCKET_GEN1_UNREACH, /* "v1-unreachable" */
    TRIT_BUCKET_GEN2_UNREACH, /* "v2-unreachable" */
    TRIT_BUCKET_N,
} trit_bucket;
const char *trit_bucket_name(trit_bucket b);
int trit_bucket_parse(const char *s); /* -1 if unknown */

typedef enum { TRIT_TIE_UNKNOWN = -1, TRIT_TIE_REAL = 0, TRIT_TIE_TIE = 1 } trit_tie;

#define TRIT_TIE_EPS_DEFAULT 0.05 /* nats between top-1 and top-2 logprob */

/* How the two token sequences were aligned to find the token split. */
typedef enum trit_align {
    TRIT_ALIGN_NONE = 0, /* no token split (no tokens, or they do not cover the byte split) */
    TRIT_ALIGN_IDS,      /* by token id: every token on both sides has one */
    TRIT_ALIGN_TEXT,     /* by each token's bytes: a side returned no ids (-1) */
} trit_align;
const char *trit_align_name(trit_align a); /* "ids", "text"; NULL for none */

typedef struct trit_compare {
    trit_bucket bucket;
    size_t prefix_len;  /* common prefix, backed off to a UTF-8 character boundary */
    long div_byte;      /* first differing byte offset; -1 for exact / unreachable */
    int div_token_gen1; /* index of the token holding div_byte on each side; -1 if unknown */
    int div_token_gen2;
    int div_token;    /* the token split: first index where the sequences differ (the same on
                       * both sides); -1 when there is none (align NONE) */
    trit_align align; /* how div_token was found */
    trit_tie tie;     /* at div_token: for no-match (and prefix-only when both sides have a
                       * token there) */
    double gap_gen1, gap_gen2; /* top1 - top2 logprob at div_token; NAN if unknown */
    char cause[200];           /* unreachable: "refused: ...", "timeout: ...", "http 503: ..." */
} trit_compare;

/* Pure byte/token comparison (no network). tokens may be NULL / 0 (tie stays unknown). The
 * token split is used only when the tokens before it end at or before div_byte: tokens that
 * do not spell the replies give no token split (align NONE, tie unknown), never a guess. */
void trit_compare_texts(const char *t1, size_t n1, const trit_client_token *k1, int nk1,
                        const char *t2, size_t n2, const trit_client_token *k2, int nk2, double eps,
                        trit_compare *out);
/* Classify two responses (unreachable when a side's kind != OK; gen-1 is checked first). */
void trit_compare_resps(const trit_client_resp *gen1, const trit_client_resp *gen2, double eps,
                        trit_compare *out);
/* The token-split fields of a round record, set on rec (from trit_ledger_round_json):
 * "div_token", "div_align" ("ids" | "text" | null) and "split" (each side's token and top-5
 * at div_token, where the tie rule read them; replaces the record's "split"). The older
 * byte fields (div_byte, div_token_v1/v2: the token holding div_byte) stay as they are. */
void trit_compare_split_fields(json_t *rec, const trit_compare *cmp, const trit_client_resp *gen1,
                               const trit_client_resp *gen2);
/* The one tie rule (compare and the ladder's decode rung both call it). gap_a / gap_b: each
 * side's top-1 minus top-2 logprob (or logit) at the split, NAN when unknown; crossed: each
 * side's token is in the other's top-5. Unknown gap -> TRIT_TIE_UNKNOWN (unclassified);
 * both gaps within eps and crossed -> TIE; else REAL. */
trit_tie trit_tie_rule(double gap_a, double gap_b, bool crossed, double eps);
/* Tie test at a split of two replies (trit_tie_rule on their logprobs). Tokens match by id
 * when both ids are known, else by bytes. */
trit_tie trit_compare_tie(const trit_client_token *a, const trit_client_token *b, double eps,
                          double *gap_a, double *gap_b);

#endif
