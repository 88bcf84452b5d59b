/* Unit tests for the server's pure parts: request parsing/validation, the OpenAI error object,
 * llama-server's text rules (stop strings, UTF-8 hold-back and repair), metrics text, the identity
 * helpers (build, fingerprint, instance id, file hash). */
#include "server/server.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

static int parse(int kind, const char *body, srv_request *r, srv_error *e) {
    memset(e, 0, sizeof *e);
    return srv_parse_request(kind, body, strlen(body), r, e);
}

static void expect_400(int kind, const char *body, const char *param) {
    srv_request r;
    srv_error e;
    cr_assert_eq(parse(kind, body, &r, &e), -1, "accepted: %s", body);
    cr_assert_eq(e.status, 400, "status %d for %s", e.status, body);
    cr_assert(e.message[0], "no message for %s", body);
    if (param) cr_assert_str_eq(e.param, param, "param for %s: %s", body, e.message);
}

Test(request, completion_defaults) {
    srv_request r;
    srv_error e;
    cr_assert_eq(parse(SRV_COMPLETION, "{\"prompt\":\"Hello\"}", &r, &e), 0, "%s", e.message);
    cr_assert_str_eq(r.prompt, "Hello");
    cr_assert(!r.has_ids);
    cr_assert_eq(r.max_tokens, -1);
    cr_assert_eq(r.logprobs, -1);
    cr_assert_float_eq(r.temperature, 0.8f, 1e-6);
    cr_assert_eq(r.top_k, 40);
    cr_assert(!r.stream && !r.echo && !r.has_seed);
    cr_assert_eq(r.n_stop, 0);
    srv_request_free(&r);
}

Test(request, completion_full) {
    srv_request r;
    srv_error e;
    const char *b = "{\"model\":\"m\",\"prompt\":[1,2,3],\"max_tokens\":7,\"temperature\":0,"
                    "\"top_p\":0.5,\"top_k\":3,\"min_p\":0.1,\"seed\":42,\"stop\":[\"\\n\",\"ab\"],"
                    "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"logprobs\":3,"
                    "\"n\":1,\"user\":\"x\",\"frequency_penalty\":0}";
    cr_assert_eq(parse(SRV_COMPLETION, b, &r, &e), 0, "%s", e.message);
    cr_assert_str_eq(r.model, "m");
    cr_assert(r.has_ids);
    cr_assert_eq(r.n_prompt_ids, 3);
    cr_assert_eq(r.prompt_ids[2], 3);
    cr_assert_eq(r.max_tokens, 7);
    cr_assert_float_eq(r.temperature, 0.0f, 1e-9);
    cr_assert_eq(r.top_k, 3);
    cr_assert(r.has_seed && r.seed == 42);
    cr_assert_eq(r.n_stop, 2);
    cr_assert_str_eq(r.stop[1], "ab");
    cr_assert(r.stream && r.include_usage);
    cr_assert_eq(r.logprobs, 3);
    srv_request_free(&r);
}

Test(request, prompt_batch_of_one_and_echo) {
    srv_request r;
    srv_error e;
    cr_assert_eq(parse(SRV_COMPLETION,
                       "{\"prompt\":[\"x\"],\"echo\":true,\"max_tokens\":0,"
                       "\"logprobs\":0}",
                       &r, &e),
                 0, "%s", e.message);
    cr_assert_str_eq(r.prompt, "x");
    cr_assert(r.echo);
    cr_assert_eq(r.max_tokens, 0);
    cr_assert_eq(r.logprobs, 0);
    srv_request_free(&r);
    cr_assert_eq(parse(SRV_COMPLETION, "{\"prompt\":[[5,6]]}", &r, &e), 0, "%s", e.message);
    cr_assert(r.has_ids && r.n_prompt_ids == 2 && r.prompt_ids[0] == 5);
    srv_request_free(&r);
}

Test(request, chat) {
    srv_request r;
    srv_error e;
    const char *b = "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
                    "{\"role\":\"developer\",\"content\":null}],"
                    "\"logprobs\":true,\"top_logprobs\":2,\"stop\":\"END\"}";
    cr_assert_eq(parse(SRV_CHAT, b, &r, &e), 0, "%s", e.message);
    cr_assert_eq(r.n_msgs, 3);
    cr_assert_str_eq(r.msgs[0].role, "system");
    cr_assert_str_eq(r.msgs[1].content, "hi");
    cr_assert_str_eq(r.msgs[2].role, "system");
    cr_assert_str_eq(r.msgs[2].content, "");
    cr_assert_eq(r.logprobs, 2);
    cr_assert_eq(r.n_stop, 1);
    srv_request_free(&r);
}

Test(request, rejects_bad_input) {
    expect_400(SRV_COMPLETION, "", NULL);
    expect_400(SRV_COMPLETION, "{", NULL);
    expect_400(SRV_COMPLETION, "[1,2]", NULL);
    expect_400(SRV_COMPLETION, "{\"prompt\":\"\xff\"}", NULL); /* invalid UTF-8 */
    expect_400(SRV_COMPLETION, "{}", "prompt");
    expect_400(SRV_COMPLETION, "{\"prompt\":5}", "prompt");
    expect_400(SRV_COMPLETION, "{\"prompt\":[]}", "prompt");
    expect_400(SRV_COMPLETION, "{\"prompt\":[1,-2]}", "prompt");
    expect_400(SRV_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":\"7\"}", "max_tokens");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":1.5}", "max_tokens");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"temperature\":-1}", "temperature");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"top_p\":2}", "top_p");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"n\":2}", "n");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"stream\":1}", "stream");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"stop\":[1]}", "stop");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":99}", "logprobs");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"seed\":\"x\"}", "seed");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"echo\":true,\"stream\":true}", "echo");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"model\":3}", "model");
    expect_400(SRV_CHAT, "{\"messages\":[]}", "messages");
    expect_400(SRV_CHAT, "{\"messages\":\"hi\"}", "messages");
    expect_400(SRV_CHAT, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages");
    expect_400(SRV_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", "messages");
    expect_400(SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":7}]}", "messages");
    expect_400(SRV_CHAT,
               "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":3}",
               "top_logprobs");
    expect_400(SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":3}",
               "logprobs");
}

Test(request, error_object_shape) {
    srv_error e;
    srv_fail(&e, 400, NULL, "prompt", "missing_field", "'prompt' is required");
    char *s = srv_error_json(&e);
    json_error_t je;
    json_t *v = json_loads(s, 0, &je);
    cr_assert(v, "not JSON: %s", s);
    json_t *err = json_object_get(v, "error");
    cr_assert(json_is_object(err));
    cr_assert_str_eq(json_string_value(json_object_get(err, "message")), "'prompt' is required");
    cr_assert_str_eq(json_string_value(json_object_get(err, "type")), "invalid_request_error");
    cr_assert_str_eq(json_string_value(json_object_get(err, "param")), "prompt");
    cr_assert_str_eq(json_string_value(json_object_get(err, "code")), "missing_field");
    json_decref(v);
    free(s);
    srv_fail(&e, 500, "server_error", NULL, NULL, "bad \xff byte");
    s = srv_error_json(&e);
    v = json_loads(s, 0, &je);
    cr_assert(v, "invalid UTF-8 in a message must still give JSON: %s", s);
    cr_assert(json_is_null(json_object_get(json_object_get(v, "error"), "param")));
    json_decref(v);
    free(s);
}

Test(request, tokenize_detokenize) {
    srv_tokenize_req q;
    srv_error e;
    const char *b = "{\"content\":\"hi\",\"add_special\":true,\"with_pieces\":true}";
    cr_assert_eq(srv_parse_tokenize(b, strlen(b), &q, &e), 0, "%s", e.message);
    cr_assert_str_eq(q.content, "hi");
    cr_assert(q.add_special && q.with_pieces && q.parse_special);
    free(q.content);
    b = "{\"content\":1}";
    cr_assert_eq(srv_parse_tokenize(b, strlen(b), &q, &e), -1);
    cr_assert_eq(e.status, 400);
    int32_t *ids;
    size_t n;
    b = "{\"tokens\":[1,2,128000]}";
    cr_assert_eq(srv_parse_detokenize(b, strlen(b), &ids, &n, &e), 0, "%s", e.message);
    cr_assert_eq(n, 3);
    cr_assert_eq(ids[2], 128000);
    free(ids);
    b = "{\"tokens\":[\"a\"]}";
    cr_assert_eq(srv_parse_detokenize(b, strlen(b), &ids, &n, &e), -1);
    b = "{}";
    cr_assert_eq(srv_parse_detokenize(b, strlen(b), &ids, &n, &e), -1);
}

/* The server holds back a cut-off character with base's one rule (no server copy of it). */
Test(text, utf8_complete_prefix) {
    cr_assert_eq(trit_utf8_complete_prefix("abc", 3), 3);
    cr_assert_eq(trit_utf8_complete_prefix("a\xc3", 2), 1);
    cr_assert_eq(trit_utf8_complete_prefix("a\xc3\xa9", 3), 3);
    cr_assert_eq(trit_utf8_complete_prefix("a\xe2\x82", 3), 1);
    cr_assert_eq(trit_utf8_complete_prefix("\xf0\x9f\x98", 3), 0);
    cr_assert_eq(trit_utf8_complete_prefix("\xf0\x9f\x98\x80", 4), 4);
    cr_assert_eq(trit_utf8_complete_prefix("", 0), 0);
    /* and the streamed text never ends inside a character */
    srv_text t = {0};
    trit_buf send = {0};
    srv_text_push(&t, "caf\xc3", 4, true, NULL, 0, &send);
    cr_assert_eq(send.len, 0, "a token ending in a cut-off character is held back");
    srv_text_push(&t, "\xa9!", 2, true, NULL, 0, &send);
    cr_assert_eq(send.len, 6);
    cr_assert(trit_utf8_valid(send.p, send.len));
    srv_text_free(&t);
    trit_buf_free(&send);
}

static void repair_eq(const char *in, size_t n, const char *want) {
    trit_buf b = {0};
    trit_utf8_repair(in, n, &b);
    cr_assert_str_eq(b.p, want);
    cr_assert(trit_utf8_valid(b.p, b.len));
    trit_buf_free(&b);
}

Test(text, utf8_repair_maximal_subparts) {
    repair_eq("ok \xc3\xa9", 5, "ok \xc3\xa9");
    repair_eq("a\xff"
              "b",
              3,
              "a\xef\xbf\xbd"
              "b");
    repair_eq("\xe2\x82", 2, "\xef\xbf\xbd"); /* truncated at end: one U+FFFD */
    repair_eq("\xe2\x82"
              "a",
              3,
              "\xef\xbf\xbd"
              "a");                                                       /* truncated then ASCII */
    repair_eq("\xe0\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd");                 /* overlong: two */
    repair_eq("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
    repair_eq("\x80\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd");
    repair_eq("", 0, "");
}

Test(text, partial_stop) {
    cr_assert_eq(srv_partial_stop("hello wo", 8, "world"), 6);
    cr_assert_eq(srv_partial_stop("hello", 5, "world"), (size_t)-1);
    cr_assert_eq(srv_partial_stop("abc", 3, "c"), 2);
    cr_assert_eq(srv_partial_stop("", 0, "x"), (size_t)-1);
}

Test(text, stop_string_truncates_and_holds_back) {
    char *stops[] = {"END"};
    srv_text t = {0};
    trit_buf send = {0};
    srv_text_push(&t, "Hello ", 6, true, stops, 1, &send);
    cr_assert_str_eq(send.p, "Hello ");
    trit_buf_clear(&send);
    srv_text_push(&t, "E", 1, true, stops, 1, &send); /* could start "END": held */
    cr_assert_eq(send.len, 0);
    srv_text_push(&t, "N", 1, true, stops, 1, &send);
    cr_assert_eq(send.len, 0);
    srv_text_push(&t, "Dxyz", 4, true, stops, 1, &send);
    cr_assert(t.stopped);
    cr_assert_eq(send.len, 0);
    cr_assert_str_eq(t.gen.p, "Hello ");
    srv_text_free(&t);
    trit_buf_free(&send);
}

Test(text, held_text_released_when_not_a_stop) {
    char *stops[] = {"END"};
    srv_text t = {0};
    trit_buf send = {0};
    srv_text_push(&t, "xE", 2, true, stops, 1, &send); /* llama-server holds the whole delta */
    cr_assert_eq(send.len, 0);
    srv_text_push(&t, "at", 2, true, stops, 1, &send);
    cr_assert_str_eq(send.p, "xEat");
    cr_assert(!t.stopped);
    srv_text_free(&t);
    trit_buf_free(&send);
}

Test(text, utf8_never_split) {
    srv_text t = {0};
    trit_buf send = {0};
    srv_text_push(&t, "a\xe2\x82", 3, true, NULL, 0, &send); /* "a€" cut after 2 bytes of € */
    cr_assert_eq(send.len, 0);
    srv_text_push(&t, "\xac", 1, true, NULL, 0, &send);
    cr_assert_str_eq(send.p, "a\xe2\x82\xac");
    srv_text_free(&t);
    trit_buf_free(&send);
}

Test(metrics, render) {
    srv_metrics *m = srv_metrics_new();
    srv_metrics_request(m, "/v1/completions", 200, 0.02);
    srv_metrics_request(m, "/v1/completions", 200, 3.0);
    srv_metrics_request(m, "/v1/completions", 400, 0.001);
    srv_metrics_tokens(m, 10, 5, 0.5);
    srv_metrics_drafts(m, 8, 3);
    srv_metrics_step(m, 2, 4);
    srv_metrics_step(m, 1, 2);
    trit_buf b = {0};
    srv_metrics_render(m, 2, 1, 4, &b);
    cr_assert(strstr(b.p, "trit_requests_total{route=\"/v1/completions\",code=\"200\"} 2\n"), "%s",
              b.p);
    cr_assert(strstr(b.p, "trit_requests_total{route=\"/v1/completions\",code=\"400\"} 1\n"));
    cr_assert(strstr(b.p, "trit_request_duration_seconds_bucket{route=\"/v1/completions\","
                          "le=\"0.025\"} 2\n"));
    cr_assert(strstr(b.p, "trit_request_duration_seconds_count{route=\"/v1/completions\"} 3\n"));
    cr_assert(strstr(b.p, "trit_prompt_tokens_total 10\n"));
    cr_assert(strstr(b.p, "trit_generated_tokens_total 5\n"));
    cr_assert(strstr(b.p, "trit_tokens_per_second 10.000\n"));
    cr_assert(strstr(b.p, "trit_queue_depth 2\n"));
    cr_assert(strstr(b.p, "trit_slots_busy 1\n"));
    cr_assert(strstr(b.p, "trit_draft_tokens_total 8\n"));
    cr_assert(strstr(b.p, "trit_draft_accepted_total 3\n"));
    cr_assert(strstr(b.p, "trit_batch_steps_total 2\n"));
    cr_assert(strstr(b.p, "trit_batch_sequences_total 3\n"));
    cr_assert(strstr(b.p, "trit_batch_rows_total 6\n"));
    trit_buf_free(&b);
    srv_metrics_free(m);
}

Test(request, logit_bias) {
    srv_request r;
    srv_error e;
    cr_assert_eq(parse(SRV_COMPLETION,
                       "{\"prompt\":\"a\",\"logit_bias\":{\"128009\":100,\"5\":-2.5}}", &r, &e),
                 0, "%s", e.message);
    cr_assert_eq(r.n_bias, 2);
    cr_assert_eq(r.bias_ids[0], 128009);
    cr_assert_float_eq(r.bias[1], -2.5f, 1e-6);
    srv_request_free(&r);
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":[1]}", "logit_bias");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"-1\":1}}", "logit_bias");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"7\":\"x\"}}", "logit_bias");
    expect_400(SRV_COMPLETION, "{\"prompt\":\"a\",\"logit_bias\":{\"7\":101}}", "logit_bias");
}

/* ---- browser and DNS-rebinding policy ---- */
Test(policy, origins_default_loopback_only) {
    const char *ok[] = {NULL,
                        "http://localhost",
                        "http://localhost:3000",
                        "http://127.0.0.1:5173",
                        "http://[::1]:8080",
                        "HTTP://LOCALHOST:1"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        cr_assert(trit_origin_allowed(ok[i], NULL), "refused %s", ok[i] ? ok[i] : "(none)");
    const char *bad[] = {"http://evil.example",
                         "https://localhost:3000",
                         "null",
                         "",
                         "http://localhost.evil.example",
                         "http://127.0.0.1.evil.example:80",
                         "http://localhost:",
                         "http://localhost:80x",
                         "http://localhost:123456",
                         "http://[::1].evil",
                         "http://localhost@evil.example",
                         "file://"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert(!trit_origin_allowed(bad[i], NULL), "allowed %s", bad[i]);
}

Test(policy, origins_explicit_list) {
    const char *list = "https://app.example, http://tool.local:9000";
    cr_assert(trit_origin_allowed("https://app.example", list));
    cr_assert(trit_origin_allowed("http://tool.local:9000", list));
    cr_assert(!trit_origin_allowed("http://localhost:3000", list), "list replaces the default");
    cr_assert(!trit_origin_allowed("https://app.example.evil", list));
    cr_assert(!trit_origin_allowed("https://app.exampl", list));
    cr_assert(trit_origin_allowed("http://anything", "*"));
    cr_assert(trit_origin_allowed("http://anything", "https://a, *"));
}

Test(policy, host_header) {
    cr_assert(trit_host_allowed(NULL, "127.0.0.1", NULL));
    const char *ok[] = {"localhost",   "localhost:8180", "127.0.0.1",
                        "127.0.0.1:1", "[::1]:80",       "LocalHost"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        cr_assert(trit_host_allowed(ok[i], "127.0.0.1", NULL), "refused %s", ok[i]);
    const char *bad[] = {
        "evil.example",  "evil.example:8180", "localhost.evil.example", "127.0.0.1.nip.io", "",
        "localhost:abc", "127.0.0.2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert(!trit_host_allowed(bad[i], "127.0.0.1", NULL), "allowed %s", bad[i]);
    cr_assert(trit_host_allowed("127.0.0.2:80", "127.0.0.2", NULL), "the bound address");
    cr_assert(trit_host_allowed("llm.lan", "127.0.0.1", "llm.lan"));
    cr_assert(trit_host_allowed("llm.lan:8180", "127.0.0.1", "other, llm.lan"));
    cr_assert(!trit_host_allowed("llm.lan.evil", "127.0.0.1", "llm.lan"));
    cr_assert(trit_host_allowed("anything", "127.0.0.1", "*"));
}

/* ---- identity: build string, fingerprint, instance id, background file hash ---- */
Test(ident, build_and_fingerprint) {
    char build[96], fp[160], want[200];
    trit_build_string(build, sizeof build);
    snprintf(want, sizeof want, "%s+%s", TRIT_VERSION, trit_build_commit());
    cr_assert_str_eq(build, want);
    cr_assert(trit_build_commit()[0], "the commit is never empty (\"unknown\" at worst)");
    cr_assert_null(strchr(build, ' '), "one token: %s", build);
    srv_fingerprint(fp, sizeof fp, "avx512", "exact");
    snprintf(want, sizeof want, "trit-%s-avx512-exact", build);
    cr_assert_str_eq(fp, want);
    /* kernels and numerics both change it; the same inputs give the same string */
    char fp2[160];
    srv_fingerprint(fp2, sizeof fp2, "avx512+fast", "fast");
    cr_assert_str_neq(fp, fp2);
    srv_fingerprint(fp2, sizeof fp2, "avx512", "exact");
    cr_assert_str_eq(fp, fp2);
    srv_fingerprint(fp2, sizeof fp2, NULL, "");
    snprintf(want, sizeof want, "trit-%s-unknown-unknown", build);
    cr_assert_str_eq(fp2, want);
}

Test(ident, instance_ids_are_random_hex) {
    char a[33], b[33];
    srv_instance_id(a);
    srv_instance_id(b);
    cr_assert_eq(strlen(a), 32);
    cr_assert_eq(strspn(a, "0123456789abcdef"), 32, "%s", a);
    cr_assert_str_neq(a, b, "two ids were equal: %s", a);
}

Test(ident, file_hash_matches_sha256) {
    char path[] = "/tmp/trit-ident-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    /* over one 1 MiB chunk, so the chunk loop is exercised */
    size_t n = (1u << 20) + 12345;
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i * 131 + (i >> 9));
    cr_assert_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
    char want[65];
    trit_sha256_hex(data, n, want);
    srv_file_hash h;
    cr_assert_eq(srv_file_hash_start(&h, path), 0);
    cr_assert_eq(srv_file_hash_wait(&h, 30), SRV_HASH_DONE, "%s", h.error);
    cr_assert_str_eq(h.hex, want);
    cr_assert_str_eq(srv_hash_state_name(atomic_load(&h.state)), "done");
    srv_file_hash_stop(&h);
    unlink(path);
    free(data);
}

Test(ident, file_hash_missing_file_fails) {
    srv_file_hash h;
    srv_file_hash_start(&h, "/nonexistent/trit-model.gguf");
    cr_assert_eq(srv_file_hash_wait(&h, 10), SRV_HASH_FAILED);
    cr_assert(strstr(h.error, "/nonexistent/trit-model.gguf"), "%s", h.error);
    cr_assert_str_eq(h.hex, "");
    cr_assert_str_eq(srv_hash_state_name(SRV_HASH_PENDING), "pending");
    srv_file_hash_stop(&h);
}
