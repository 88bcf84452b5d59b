/* test_tokenizer.c — the tokenizer against llama.cpp's own test vectors
 * (models/ggml-vocab-*.gguf + .inp/.out, encoded like tests/test-tokenizer-0.cpp does:
 * add_special=false, parse_special=false), plus special tokens, BOS, the missing-pre fallback,
 * invalid UTF-8, streaming detokenization, chat templates and the Unicode class table. */
#include "gguf/gguf.h"
#include "reference/reference.h"
#include "tokenizer/tokenizer.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *vocab_path(const char *name, const char *ext) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/src/models/ggml-vocab-%s.gguf%s", trit_ref_dir(), name, ext);
    return p;
}

static trit_tokenizer *load_vocab(const char *name) {
    trit_err err = {0};
    trit_tokenizer *t = trit_tok_load_file(vocab_path(name, ""), &err);
    cr_assert_not_null(t, "loading vocab %s: %s", name, err.msg);
    return t;
}

static void encode(const trit_tokenizer *t, const char *s, bool add, bool parse, int32_t **ids,
                   size_t *n) {
    trit_err err = {0};
    int rc = trit_tok_encode(t, s, strlen(s), add, parse, ids, n, &err);
    cr_assert_eq(rc, 0, "encode failed: %s", err.msg);
}

/* Run every case of one vocabulary; returns failures (and prints the first few). */
static void run_vocab(const char *name, bool byte_level) {
    trit_buf inp = {0}, out = {0};
    trit_err err = {0};
    cr_assert_eq(trit_read_file(vocab_path(name, ".inp"), &inp, &err), 0, "%s", err.msg);
    cr_assert_eq(trit_read_file(vocab_path(name, ".out"), &out, &err), 0, "%s", err.msg);
    trit_tokenizer *t = load_vocab(name);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep), pos = 0;
    int n_cases = 0, n_pass = 0, n_rt_fail = 0;
    char *op = out.p; /* one line of ids per case (empty for no ids) */
    while (pos < inp.len) {
        const char *next = strstr(inp.p + pos, sep);
        size_t clen = next ? (size_t)(next - (inp.p + pos)) : inp.len - pos;
        char *text = xstrndup(inp.p + pos, clen);
        pos = next ? (size_t)(next - inp.p) + seplen : inp.len;
        cr_assert_not_null(op, "%s: .out has fewer lines than .inp cases", name);
        char *eol = strchr(op, '\n');
        char *oline = eol ? xstrndup(op, (size_t)(eol - op)) : xstrdup(op);
        op = eol ? eol + 1 : NULL;
        int32_t want[4096];
        size_t nw = 0;
        for (char *s = oline, *e; *s; s = e) {
            long v = strtol(s, &e, 10);
            if (e == s) break;
            cr_assert_lt(nw, 4096);
            want[nw++] = (int32_t)v;
        }
        int32_t *got;
        size_t ng;
        encode(t, text, false, false, &got, &ng);
        n_cases++;
        bool same = ng == nw && (nw == 0 || !memcmp(got, want, nw * sizeof(int32_t)));
        if (same) {
            n_pass++;
        } else if (n_cases - n_pass <= 3) {
            fprintf(stderr, "%s case %d mismatch: text '%s'\n  want:", name, n_cases, text);
            for (size_t i = 0; i < nw; i++) fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n  got: ");
            for (size_t i = 0; i < ng; i++) fprintf(stderr, " %d", got[i]);
            fprintf(stderr, "\n");
        }
        if (byte_level) { /* byte-level BPE decodes back to the exact input */
            trit_buf d = {0};
            trit_tok_decode(t, got, ng, false, &d);
            if (d.len != strlen(text) || memcmp(d.p ? d.p : "", text, d.len)) n_rt_fail++;
            trit_buf_free(&d);
        }
        free(got);
        free(oline);
        free(text);
    }
    fprintf(stderr, "vocab %-15s %3d/%3d cases pass (pre=%s)%s\n", name, n_pass, n_cases,
            trit_tok_pre(t),
            byte_level ? (n_rt_fail ? " round-trip FAIL" : ", round trip ok") : "");
    trit_tok_free(t);
    trit_buf_free(&inp);
    trit_buf_free(&out);
    cr_assert_gt(n_cases, 10, "%s: too few cases read", name);
    cr_assert_eq(n_pass, n_cases, "%s: %d of %d cases differ from llama.cpp", name,
                 n_cases - n_pass, n_cases);
    cr_assert_eq(n_rt_fail, 0, "%s: %d cases do not decode back to the input", name, n_rt_fail);
}

Test(vocab, llama_bpe) {
    run_vocab("llama-bpe", true);
}
Test(vocab, gpt_2) {
    run_vocab("gpt-2", true);
}
Test(vocab, qwen2) {
    run_vocab("qwen2", true);
}
Test(vocab, deepseek_llm) {
    run_vocab("deepseek-llm", true);
}
Test(vocab, deepseek_coder) {
    run_vocab("deepseek-coder", true);
}
Test(vocab, falcon) {
    run_vocab("falcon", true);
}
Test(vocab, mpt) {
    run_vocab("mpt", true);
}
Test(vocab, starcoder) {
    run_vocab("starcoder", true);
}
Test(vocab, refact) {
    run_vocab("refact", true);
}
Test(vocab, command_r) {
    run_vocab("command-r", true);
}
Test(vocab, llama_spm) {
    run_vocab("llama-spm", false);
}
Test(vocab, phi_3) {
    run_vocab("phi-3", false);
}

Test(vocab, gpt_neox_load_and_round_trip) {
    trit_tokenizer *t = load_vocab("gpt-neox");
    cr_assert_str_eq(trit_tok_model(t), "gpt2");
    const char *texts[] = {"Hello world", "  two  spaces\tand tabs\n\nnewlines",
                           "Ünïcödé ✓ 🦙 日本語 'll 'S", "x = f(3.14159) // 1234567"};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(texts); i++) {
        int32_t *ids;
        size_t n;
        encode(t, texts[i], false, false, &ids, &n);
        cr_assert_gt(n, 0);
        trit_buf d = {0};
        trit_tok_decode(t, ids, n, false, &d);
        cr_assert_str_eq(d.p, texts[i]);
        trit_buf_free(&d);
        free(ids);
    }
    trit_tok_free(t);
}

Test(special, llama3_special_tokens_and_bos) {
    trit_tokenizer *t = load_vocab("llama-bpe");
    cr_assert_str_eq(trit_tok_pre(t), "llama3");
    cr_assert_eq(trit_tok_bos(t), 128000);
    cr_assert(trit_tok_add_bos(t));
    int32_t *ids;
    size_t n;
    encode(t, "<|eot_id|>hi", false, true, &ids, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(ids[0], 128009);
    cr_assert(trit_tok_is_eog(t, 128009));
    cr_assert(trit_tok_is_control(t, 128009));
    free(ids);
    encode(t, "<|eot_id|>hi", false, false, &ids, &n); /* not parsed: plain text */
    cr_assert_gt(n, 2);
    for (size_t i = 0; i < n; i++) cr_assert_neq(ids[i], 128009);
    free(ids);
    encode(t, "hi", true, false, &ids, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(ids[0], 128000);
    trit_buf b = {0};
    trit_tok_piece(t, 128000, false, &b);
    cr_assert_eq(b.len, 0, "control token leaked into text");
    trit_tok_piece(t, 128000, true, &b);
    cr_assert_str_eq(b.p, "<|begin_of_text|>");
    trit_buf_free(&b);
    free(ids);
    /* chat text from the template encodes with one id per special token */
    trit_chat_msg m[] = {{"user", "Hi"}};
    trit_buf c = {0};
    cr_assert_eq(trit_chat_apply(TRIT_TMPL_LLAMA3, m, 1, true, &c, NULL), 0);
    encode(t, c.p, false, true, &ids, &n);
    cr_assert_eq(ids[0], 128000);
    cr_assert_eq(ids[1], 128006); /* <|start_header_id|> */
    free(ids);
    trit_buf_free(&c);
    trit_tok_free(t);
}

Test(special, invalid_utf8_is_an_error_with_offset) {
    trit_tokenizer *t = load_vocab("llama-bpe");
    const char *bad[] = {"abc\xff", "ab\xc3", "\xe2\x82", "ok \xed\xa0\x80", "\xc0\xaf"};
    const size_t off[] = {3, 2, 0, 3, 0};
    for (size_t i = 0; i < TRIT_ARRAY_LEN(bad); i++) {
        trit_err err = {0};
        int32_t *ids = (int32_t *)1;
        size_t n = 7;
        int rc = trit_tok_encode(t, bad[i], strlen(bad[i]), false, false, &ids, &n, &err);
        cr_assert_eq(rc, -1, "case %zu accepted", i);
        cr_assert_eq(err.code, TRIT_EFORMAT);
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", off[i]);
        cr_assert_not_null(strstr(err.msg, want), "message '%s' lacks '%s'", err.msg, want);
        cr_assert_null(ids);
        cr_assert_eq(n, 0);
    }
    int32_t *ids;
    size_t n;
    encode(t, "", true, false, &ids, &n); /* empty text: just BOS */
    cr_assert_eq(n, 1);
    free(ids);
    trit_tok_free(t);
}

Test(special, streaming_detok_holds_incomplete_utf8) {
    trit_tokenizer *t = load_vocab("llama-bpe");
    int32_t *ids;
    size_t n;
    encode(t, "🦙!", false, false, &ids, &n);
    cr_assert_geq(n, 3); /* the llama is split over byte tokens */
    trit_detok d = {0};
    trit_buf out = {0};
    trit_detok_push(t, &d, ids[0], &out);
    cr_assert_eq(out.len, 0, "half a character was emitted");
    for (size_t i = 1; i < n; i++) trit_detok_push(t, &d, ids[i], &out);
    trit_detok_flush(&d, &out);
    cr_assert_str_eq(out.p, "🦙!");
    trit_buf_clear(&out);
    trit_detok_push(t, &d, ids[0], &out); /* an unfinished sequence comes out at flush */
    trit_detok_flush(&d, &out);
    cr_assert_gt(out.len, 0);
    trit_detok_free(&d);
    trit_buf_free(&out);
    free(ids);
    trit_tok_free(t);
}

/* Copy the llama-bpe vocab without tokenizer.ggml.pre (like the official BitNet 2B-4T GGUF). */
Test(load, missing_pre_falls_back_to_llama3) {
    trit_err err = {0};
    gguf_file *f = gguf_open(vocab_path("llama-bpe", ""), &err);
    cr_assert_not_null(f, "%s", err.msg);
    gguf_writer *w = gguf_writer_new();
    for (size_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        if (kv->key.n == 18 && !memcmp(kv->key.p, "tokenizer.ggml.pre", 18)) continue;
        gguf_w_copy_kv(w, kv);
    }
    char path[] = "/tmp/trit-test-tok-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(gguf_writer_write(w, path, NULL, NULL, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    gguf_close(f);
    trit_tokenizer *t = trit_tok_load_file(path, &err);
    unlink(path);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_str_eq(trit_tok_pre(t), "llama3");
    int32_t *ids;
    size_t n;
    encode(t, "Hello, y'all! 1314151", false, false, &ids, &n);
    const int32_t want[] = {9906, 11, 379, 65948, 0, 220, 9263, 18136, 16};
    cr_assert_eq(n, TRIT_ARRAY_LEN(want));
    cr_assert_arr_eq(ids, want, sizeof want);
    free(ids);
    trit_tok_free(t);
}

Test(load, bad_inputs_give_clear_errors) {
    trit_err err = {0};
    cr_assert_null(trit_tok_load_file("/nonexistent/x.gguf", &err));
    cr_assert_neq(err.code, 0);
    /* a GGUF with no vocabulary */
    gguf_writer *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", "llama");
    char path[] = "/tmp/trit-test-tok-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert_eq(gguf_writer_write(w, path, NULL, NULL, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    memset(&err, 0, sizeof err);
    cr_assert_null(trit_tok_load_file(path, &err));
    cr_assert_not_null(strstr(err.msg, "tokenizer.ggml.model"), "%s", err.msg);
    /* unknown pre-tokenizer */
    w = gguf_writer_new();
    const char *toks[] = {"a", "b", "ab"};
    const char *merges[] = {"a b"};
    gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_str(w, "tokenizer.ggml.pre", "no-such-pre");
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    cr_assert_eq(gguf_writer_write(w, path, NULL, NULL, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    memset(&err, 0, sizeof err);
    cr_assert_null(trit_tok_load_file(path, &err));
    cr_assert_eq(err.code, TRIT_EUNSUP);
    cr_assert_not_null(strstr(err.msg, "no-such-pre"), "%s", err.msg);
    /* a tiny valid BPE vocab: merges apply */
    w = gguf_writer_new();
    gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_str(w, "tokenizer.ggml.pre", "gpt-2");
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    cr_assert_eq(gguf_writer_write(w, path, NULL, NULL, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    trit_tokenizer *t = trit_tok_load_file(path, &err);
    unlink(path);
    cr_assert_not_null(t, "%s", err.msg);
    int32_t *ids;
    size_t n;
    encode(t, "abba", false, false, &ids, &n);
    const int32_t want[] = {2, 1, 0};
    cr_assert_eq(n, 3);
    cr_assert_arr_eq(ids, want, sizeof want);
    free(ids);
    trit_tok_free(t);
}

Test(chat, templates_render_exactly) {
    trit_chat_msg m[] = {{"system", "Be brief."}, {"user", " Hi \n"}, {"assistant", "Hello"}};
    trit_buf b = {0};
    cr_assert_eq(trit_chat_apply(TRIT_TMPL_LLAMA3, m, 3, true, &b, NULL), 0);
    cr_assert_str_eq(b.p, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe "
                          "brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_"
                          "id|><|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
                          "<|start_header_id|>assistant<|end_header_id|>\n\n");
    trit_buf_clear(&b);
    cr_assert_eq(trit_chat_apply(TRIT_TMPL_BITNET, m, 3, true, &b, NULL), 0);
    cr_assert_str_eq(b.p, "<|begin_of_text|>System: Be brief.<|eot_id|>User:  Hi \n<|eot_id|>"
                          "Assistant: Hello<|eot_id|>Assistant: ");
    trit_buf_clear(&b);
    cr_assert_eq(trit_chat_apply(TRIT_TMPL_RAW, m, 3, false, &b, NULL), 0);
    cr_assert_str_eq(b.p, "Be brief. Hi \nHello");
    trit_buf_clear(&b);
    trit_chat_msg bad[] = {{"tool", "x"}};
    trit_err err = {0};
    cr_assert_eq(trit_chat_apply(TRIT_TMPL_BITNET, bad, 1, true, &b, &err), -1);
    cr_assert_not_null(strstr(err.msg, "tool"));
    cr_assert_eq(trit_chat_apply(7, m, 1, true, &b, &err), -1);
    trit_buf_free(&b);
    cr_assert_eq(trit_chat_tmpl_from_name("llama3"), TRIT_TMPL_LLAMA3);
    cr_assert_eq(trit_chat_tmpl_from_name("bitnet"), TRIT_TMPL_BITNET);
    cr_assert_eq(trit_chat_tmpl_from_name("raw"), TRIT_TMPL_RAW);
    cr_assert_eq(trit_chat_tmpl_from_name("chatml"), -1);
    cr_assert_str_eq(trit_chat_tmpl_name(TRIT_TMPL_BITNET), "bitnet");
}

/* The reference's class table (unicode_cpt_flags_from_cpt in libllama.so, Unicode 15.1) vs
 * ours (PCRE2, Unicode 14): every difference must be a codepoint we consider unassigned. */
unsigned tok_ucp_flags(uint32_t cpt);
Test(unicode, classes_match_reference_where_assigned) {
    char *lib = trit_ref_path("libllama.so");
    if (!lib) {
        cr_skip_test("reference libllama.so not found");
        return;
    }
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    free(lib);
    cr_assert_not_null(h, "dlopen: %s", dlerror());
    uint16_t (*ref)(uint32_t) = (uint16_t(*)(uint32_t))dlsym(h, "_Z26unicode_cpt_flags_from_cptj");
    if (!ref) {
        dlclose(h);
        cr_skip_test("unicode_cpt_flags_from_cpt not exported");
        return;
    }
    size_t diff_assigned = 0, diff_new = 0;
    for (uint32_t c = 0; c < 0x110000; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        unsigned mine = tok_ucp_flags(c) & 0x1FF, theirs = ref(c) & 0x1FF;
        if (mine == theirs) continue;
        if ((mine & 0xFF) == 0x01 && !((theirs ^ mine) & 0x100))
            diff_new++; /* assigned after Unicode 14 */
        else if (diff_assigned++ < 5)
            fprintf(stderr, "U+%04X: ours 0x%03x, reference 0x%03x\n", c, mine, theirs);
    }
    fprintf(stderr,
            "unicode classes: %zu codepoints assigned after Unicode 14 differ, %zu "
            "others\n",
            diff_new, diff_assigned);
    dlclose(h);
    cr_assert_eq(diff_assigned, 0);
}
