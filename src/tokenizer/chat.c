/* chat.c — the chat templates trit knows, rendered to text:
 *   llama3: <|begin_of_text|> then per message
 *           <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|> (content trimmed of
 *           ASCII whitespace, as llama.cpp's llm_chat_apply_template does), generation prompt
 *           <|start_header_id|>assistant<|end_header_id|>\n\n
 *   bitnet: <|begin_of_text|> then "System: C<|eot_id|>", "User: C<|eot_id|>",
 *           "Assistant: C<|eot_id|>" per message, generation prompt "Assistant: "
 *   raw:    the contents concatenated.
 * The output is meant to be encoded with add_special=false, parse_special=true. */
#include "tokenizer/tok_internal.h"

#include <ctype.h>
#include <string.h>

static const char *const k_names[] = {"raw", "llama3", "bitnet"};

int trit_chat_tmpl_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, k_names[i])) return i;
    return -1;
}

const char *trit_chat_tmpl_name(int tmpl) {
    return tmpl >= 0 && tmpl < 3 ? k_names[tmpl] : "unknown";
}

int trit_tok_chat_tmpl(const trit_tokenizer *t) {
    const char *s = t ? t->chat_template : NULL;
    if (!s) return TRIT_TMPL_LLAMA3;
    if (strstr(s, "<|start_header_id|>") && strstr(s, "<|end_header_id|>")) return TRIT_TMPL_LLAMA3;
    if (strstr(s, "Assistant: ") && strstr(s, "<|eot_id|>")) return TRIT_TMPL_BITNET;
    if (strstr(s, "User: ") && strstr(s, "<|eot_id|>")) return TRIT_TMPL_BITNET;
    return TRIT_TMPL_LLAMA3;
}

static void put_trimmed(trit_buf *out, const char *s) {
    size_t a = 0, b = strlen(s);
    while (a < b && isspace((unsigned char)s[a])) a++;
    while (b > a && isspace((unsigned char)s[b - 1])) b--;
    trit_buf_append(out, s + a, b - a);
}

int trit_chat_apply(int tmpl, const trit_chat_msg *msgs, size_t n, bool add_generation_prompt,
                    trit_buf *out, trit_err *err) {
    if (tmpl < 0 || tmpl > 2) return trit_fail(err, TRIT_EINVAL, "unknown chat template %d", tmpl);
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content)
            return trit_fail(err, TRIT_EINVAL, "message %zu has no role or no content", i);
        if (tmpl == TRIT_TMPL_BITNET && strcmp(msgs[i].role, "system") &&
            strcmp(msgs[i].role, "user") && strcmp(msgs[i].role, "assistant"))
            return trit_fail(err, TRIT_EINVAL,
                             "message %zu: role '%s' is not system, user or assistant", i,
                             msgs[i].role);
    }
    if (tmpl == TRIT_TMPL_RAW) {
        for (size_t i = 0; i < n; i++) trit_buf_puts(out, msgs[i].content);
        return 0;
    }
    trit_buf_puts(out, "<|begin_of_text|>");
    for (size_t i = 0; i < n; i++) {
        if (tmpl == TRIT_TMPL_LLAMA3) {
            trit_buf_printf(out, "<|start_header_id|>%s<|end_header_id|>\n\n", msgs[i].role);
            put_trimmed(out, msgs[i].content);
        } else {
            const char *r = msgs[i].role;
            trit_buf_puts(out, !strcmp(r, "system") ? "System: "
                               : !strcmp(r, "user") ? "User: "
                                                    : "Assistant: ");
            trit_buf_puts(out, msgs[i].content);
        }
        trit_buf_puts(out, "<|eot_id|>");
    }
    if (add_generation_prompt)
        trit_buf_puts(out, tmpl == TRIT_TMPL_LLAMA3
                               ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                               : "Assistant: ");
    return 0;
}
