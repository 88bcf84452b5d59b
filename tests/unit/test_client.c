/* test_client.c — OpenAI client: reply shapes (llama-server, legacy, chat), error kinds
 * (refused, timeout, HTTP status, bad JSON) and SSE streaming against a canned loopback
 * server thread; server identity (normalizer on recorded /props and /v1/models replies,
 * digest, same-server, trit_client_identity against a routed canned server). */
#include "client/client.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- canned one-shot HTTP server ---- */
typedef struct canned {
    int lfd, port;
    const char *reply; /* full HTTP response; NULL: accept and never answer */
    char request[8192];
    pthread_t th;
    int quit[2]; /* canned_stop writes here: the silent server's wait ends */
} canned;

static void *canned_main(void *arg) {
    canned *c = arg;
    int fd = accept(c->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, c->request + got, sizeof c->request - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
        c->request[got] = 0;
        char *hdr_end = strstr(c->request, "\r\n\r\n");
        if (!hdr_end) continue;
        char *cl = strstr(c->request, "Content-Length:");
        size_t want = cl ? (size_t)atol(cl + 15) : 0;
        if (got >= (size_t)(hdr_end + 4 - c->request) + want) break;
    }
    if (c->reply) {
        ssize_t w = write(fd, c->reply, strlen(c->reply));
        (void)w;
    } else { /* silent until the test is done: only the client's own timeout ends its wait
              * (a fixed sleep here raced the client's timer on a loaded machine) */
        struct pollfd p = {.fd = c->quit[0], .events = POLLIN};
        (void)poll(&p, 1, -1);
    }
    close(fd);
    return NULL;
}

static void canned_start(canned *c, const char *reply) {
    memset(c, 0, sizeof *c);
    c->reply = reply;
    cr_assert(pipe(c->quit) == 0);
    c->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(c->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(c->lfd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert(listen(c->lfd, 4) == 0);
    socklen_t al = sizeof a;
    getsockname(c->lfd, (struct sockaddr *)&a, &al);
    c->port = ntohs(a.sin_port);
    pthread_create(&c->th, NULL, canned_main, c);
}

static void canned_stop(canned *c) {
    ssize_t w = write(c->quit[1], "q", 1);
    (void)w;
    pthread_join(c->th, NULL);
    close(c->lfd);
    close(c->quit[0]);
    close(c->quit[1]);
}

/* True when a second connection waits to be accepted (canned accepts one): the client asked
 * again. An event, where a time bound (two timeouts take longer than one) raced the clock. */
static bool canned_asked_again(canned *c) {
    struct pollfd p = {.fd = c->lfd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

static char *http_ok(const char *ctype, const char *body) {
    static char buf[16384];
    snprintf(buf, sizeof buf,
             "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: "
             "close\r\n\r\n%s",
             ctype, strlen(body), body);
    return buf;
}

static const char *LLAMA_REPLY =
    "{\"choices\":[{\"text\":\"\xc3\xa9t\xc3\xa9\",\"index\":0,\"logprobs\":{\"content\":["
    "{\"id\":10,\"token\":\"\",\"bytes\":[195],\"logprob\":-0.5,\"top_logprobs\":["
    "{\"id\":10,\"token\":\"\",\"bytes\":[195],\"logprob\":-0.5},"
    "{\"id\":11,\"token\":\"a\",\"bytes\":[97],\"logprob\":-1.5}]},"
    "{\"id\":12,\"token\":\"\",\"bytes\":[169,116,195,169],\"logprob\":-0.1,\"top_logprobs\":[]}"
    "]},\"finish_reason\":\"length\"}],\"model\":\"tiny.gguf\","
    "\"usage\":{\"completion_tokens\":2,\"prompt_tokens\":3,\"total_tokens\":5}}";

Test(client, parse_llama_server_shape_uses_bytes) {
    trit_client_resp r;
    trit_client_resp_init(&r);
    cr_assert_eq(trit_client_parse_reply(LLAMA_REPLY, strlen(LLAMA_REPLY), false, &r), 0);
    cr_assert_eq(r.kind, TRIT_CLIENT_OK);
    cr_assert_str_eq(r.content, "\xc3\xa9t\xc3\xa9");
    cr_assert_eq(r.n_tokens, 2);
    cr_assert_eq(r.tokens[0].len, 1);
    cr_assert_eq((unsigned char)r.tokens[0].text[0], 195); /* half a character survives */
    cr_assert_eq(r.tokens[0].id, 10);
    cr_assert_eq(r.tokens[0].n_top, 2);
    cr_assert_float_eq(r.tokens[0].top[1].logprob, -1.5, 1e-9);
    cr_assert_eq(r.tokens[1].len, 4);
    cr_assert_str_eq(r.finish_reason, "length");
    cr_assert_str_eq(r.model, "tiny.gguf");
    cr_assert_eq(r.completion_tokens, 2);
    cr_assert_eq(r.prompt_tokens, 3);
    trit_client_resp_free(&r);
}

Test(client, parse_legacy_openai_shape) {
    const char *b = "{\"choices\":[{\"text\":\" a b\",\"logprobs\":{\"tokens\":[\" a\",\" b\"],"
                    "\"token_logprobs\":[-0.1,-0.2],\"top_logprobs\":[{\" c\":-2.0,\" a\":-0.1},"
                    "{\" b\":-0.2}]},\"finish_reason\":\"stop\"}]}";
    trit_client_resp r;
    trit_client_resp_init(&r);
    cr_assert_eq(trit_client_parse_reply(b, strlen(b), false, &r), 0);
    cr_assert_eq(r.n_tokens, 2);
    cr_assert_str_eq(r.tokens[0].text, " a");
    cr_assert_eq(r.tokens[0].id, -1);
    cr_assert_eq(r.tokens[0].n_top, 2);
    cr_assert_str_eq(r.tokens[0].top[0].text, " a"); /* sorted by logprob */
    cr_assert_eq(r.completion_tokens, -1);
    trit_client_resp_free(&r);
}

Test(client, parse_chat_and_errors) {
    const char *b = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},"
                    "\"finish_reason\":\"stop\"}]}";
    trit_client_resp r;
    trit_client_resp_init(&r);
    cr_assert_eq(trit_client_parse_reply(b, strlen(b), true, &r), 0);
    cr_assert_str_eq(r.content, "hi");
    trit_client_resp_free(&r);

    trit_client_resp_init(&r);
    cr_assert_eq(trit_client_parse_reply("{\"choices\":", 11, false, &r), -1);
    cr_assert_eq(r.kind, TRIT_CLIENT_BAD_JSON);
    trit_client_resp_free(&r);

    trit_client_resp_init(&r);
    cr_assert_eq(trit_client_parse_reply("{\"x\":1}", 7, false, &r), -1);
    cr_assert_eq(r.kind, TRIT_CLIENT_BAD_JSON);
    cr_assert(strstr(r.msg, "choices") != NULL);
    trit_client_resp_free(&r);

    /* completions reply read as chat: no message.content */
    trit_client_resp_init(&r);
    cr_assert_eq(trit_client_parse_reply(LLAMA_REPLY, strlen(LLAMA_REPLY), true, &r), -1);
    cr_assert_eq(r.kind, TRIT_CLIENT_BAD_JSON);
    trit_client_resp_free(&r);
}

Test(client, errkind_names) {
    cr_assert_str_eq(trit_client_errkind_name(TRIT_CLIENT_REFUSED), "refused");
    cr_assert_str_eq(trit_client_errkind_name(TRIT_CLIENT_TIMEOUT), "timeout");
    cr_assert_str_eq(trit_client_errkind_name(TRIT_CLIENT_HTTP_STATUS), "http_status");
    cr_assert_str_eq(trit_client_errkind_name(TRIT_CLIENT_BAD_JSON), "bad_json");
}

Test(client, refused_on_closed_port) {
    /* bind then close: the port is (almost certainly) free and nothing listens */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    trit_client_req q = {.url = url, .prompt = "x", .temperature = 0, .seed = -1, .timeout_s = 2};
    trit_client_resp r;
    cr_assert_eq(trit_client_completion(&q, &r), -1);
    cr_assert_eq(r.kind, TRIT_CLIENT_REFUSED, "kind %d: %s", r.kind, r.msg);
    cr_assert_str_eq(r.content, "");
    trit_client_resp_free(&r);
}

Test(client, timeout_when_server_never_answers, .timeout = 120) {
    canned c;
    canned_start(&c, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", c.port);
    trit_client_req q = {
        .url = url, .prompt = "x", .seed = -1, .temperature = -1, .timeout_s = 0.4};
    trit_client_resp r;
    double t0 = trit_now_s();
    /* the server stays silent until canned_stop: a client that ignores its timeout never
     * returns (the test's own timeout fails it); the bound only catches a gross misreading of
     * the 0.4 s (a unit off by 100x), with room for a loaded machine */
    cr_assert_eq(trit_client_completion(&q, &r), -1);
    cr_assert_eq(r.kind, TRIT_CLIENT_TIMEOUT, "kind %d: %s", r.kind, r.msg);
    cr_assert_lt(trit_now_s() - t0, 30.0);
    trit_client_resp_free(&r);
    canned_stop(&c);
}

Test(client, http_status_with_error_message) {
    canned c;
    static char reply[512];
    const char *body = "{\"error\":{\"message\":\"Loading model\",\"x\":1}}";
    snprintf(reply, sizeof reply,
             "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             strlen(body), body);
    canned_start(&c, reply);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", c.port);
    trit_client_req q = {.url = url, .prompt = "x", .seed = -1, .temperature = 0};
    trit_client_resp r;
    cr_assert_eq(trit_client_completion(&q, &r), -1);
    cr_assert_eq(r.kind, TRIT_CLIENT_HTTP_STATUS);
    cr_assert_eq(r.http_status, 503);
    cr_assert(strstr(r.msg, "Loading model") != NULL, "%s", r.msg);
    trit_client_resp_free(&r);
    canned_stop(&c);
}

Test(client, bad_json_on_2xx) {
    canned c;
    canned_start(&c, http_ok("text/html", "<html>hello</html>"));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", c.port);
    trit_client_req q = {.url = url, .prompt = "x", .seed = -1, .temperature = 0};
    trit_client_resp r;
    cr_assert_eq(trit_client_completion(&q, &r), -1);
    cr_assert_eq(r.kind, TRIT_CLIENT_BAD_JSON);
    trit_client_resp_free(&r);
    canned_stop(&c);
}

Test(client, request_body_and_reply) {
    canned c;
    canned_start(&c, http_ok("application/json", LLAMA_REPLY));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", c.port);
    const char *stop[] = {"\n"};
    trit_client_req q = {.url = url,
                         .api_key = "sekret",
                         .prompt = "Hello",
                         .max_tokens = 7,
                         .temperature = 0,
                         .top_logprobs = 5,
                         .seed = 42,
                         .stop = stop,
                         .n_stop = 1};
    trit_client_resp r;
    cr_assert_eq(trit_client_completion(&q, &r), 0, "%s", r.msg);
    canned_stop(&c);
    cr_assert(strstr(c.request, "POST /v1/completions ") != NULL, "%s", c.request);
    cr_assert(strstr(c.request, "Authorization: Bearer sekret") != NULL);
    cr_assert(strstr(c.request, "\"logprobs\":5") != NULL, "%s", c.request);
    cr_assert(strstr(c.request, "\"max_tokens\":7") != NULL);
    cr_assert(strstr(c.request, "\"seed\":42") != NULL);
    cr_assert(strstr(c.request, "\"stop\":[\"\\n\"]") != NULL, "%s", c.request);
    cr_assert_eq(r.n_tokens, 2);
    cr_assert_gt(r.latency_s, 0);
    cr_assert_not_null(r.body);
    trit_client_resp_free(&r);
}

static int count_chunks(void *user, const char *d, size_t n, const trit_client_token *tok) {
    (*(int *)user)++;
    return 0;
}

Test(client, chat_stream_sse) {
    canned c;
    canned_start(
        &c,
        http_ok("text/event-stream",
                "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
                "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"logprobs\":{\"content\":"
                "[{\"id\":1,\"token\":\"Hel\",\"logprob\":-0.1,\"top_logprobs\":[]}]}}]}\n\n"
                "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
                "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"model\":\"m\","
                "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n"
                "data: [DONE]\n\n"));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", c.port);
    trit_client_msg m = {"user", "hi"};
    int chunks = 0;
    trit_client_req q = {.url = url,
                         .messages = &m,
                         .n_messages = 1,
                         .temperature = 0,
                         .seed = -1,
                         .top_logprobs = 2,
                         .stream = true,
                         .on_chunk = count_chunks,
                         .user = &chunks};
    trit_client_resp r;
    cr_assert_eq(trit_client_chat(&q, &r), 0, "%s", r.msg);
    canned_stop(&c);
    cr_assert(strstr(c.request, "POST /v1/chat/completions ") != NULL);
    cr_assert(strstr(c.request, "\"logprobs\":true") != NULL);
    cr_assert(strstr(c.request, "\"top_logprobs\":2") != NULL);
    cr_assert(strstr(c.request, "\"stream\":true") != NULL);
    cr_assert_str_eq(r.content, "Hello");
    cr_assert_eq(chunks, 2);
    cr_assert_eq(r.n_tokens, 1);
    cr_assert_str_eq(r.finish_reason, "stop");
    cr_assert_eq(r.completion_tokens, 2);
    cr_assert_str_eq(r.model, "m");
    trit_client_resp_free(&r);
}

Test(client, model_id_and_run_many) {
    canned c1, c2;
    canned_start(&c1, http_ok("application/json",
                              "{\"object\":\"list\",\"data\":[{\"id\":\"gen1-model\"}]}"));
    char url[64], id[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", c1.port);
    cr_assert_eq(trit_client_model_id(url, NULL, 2, id, sizeof id, NULL), 0);
    cr_assert_str_eq(id, "gen1-model");
    canned_stop(&c1);

    canned_start(&c1, http_ok("application/json", LLAMA_REPLY));
    canned_start(&c2, "HTTP/1.1 500 Internal\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    char u1[64], u2[64];
    snprintf(u1, sizeof u1, "http://127.0.0.1:%d", c1.port);
    snprintf(u2, sizeof u2, "http://127.0.0.1:%d", c2.port);
    trit_client_req q1 = {.url = u1, .prompt = "a", .seed = -1, .temperature = 0};
    trit_client_req q2 = q1;
    q2.url = u2;
    trit_client_resp r1, r2;
    trit_client_call calls[2] = {{TRIT_CLIENT_CALL_COMPLETION, &q1, &r1},
                                 {TRIT_CLIENT_CALL_COMPLETION, &q2, &r2}};
    trit_client_run_many(calls, 2);
    canned_stop(&c1);
    canned_stop(&c2);
    cr_assert_eq(r1.kind, TRIT_CLIENT_OK);
    cr_assert_eq(r2.kind, TRIT_CLIENT_HTTP_STATUS);
    cr_assert_eq(r2.http_status, 500);
    trit_client_resp_free(&r1);
    trit_client_resp_free(&r2);
}

/* a reply over max_reply ends the call with a message naming the limit (plain and SSE) */
Test(client, reply_limit) {
    static char body[8192];
    memset(body, ' ', sizeof body - 1);
    body[sizeof body - 1] = 0;
    memcpy(body, "{\"choices\":[{\"text\":\"x\"}]}", 26);
    for (int stream = 0; stream < 2; stream++) {
        canned c;
        canned_start(&c, http_ok(stream ? "text/event-stream" : "application/json", body));
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d", c.port);
        trit_client_req q = {.url = url,
                             .prompt = "x",
                             .seed = -1,
                             .temperature = 0,
                             .stream = stream,
                             .max_reply = 4096};
        trit_client_resp r;
        cr_assert_eq(trit_client_completion(&q, &r), -1);
        cr_assert_eq(r.kind, TRIT_CLIENT_OTHER);
        cr_assert(strstr(r.msg, "4096-byte limit") != NULL, "%s", r.msg);
        trit_client_resp_free(&r);
        canned_stop(&c);
    }
    /* under the limit the same reply is fine */
    canned c;
    canned_start(&c, http_ok("application/json", body));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", c.port);
    trit_client_req q = {.url = url, .prompt = "x", .seed = -1, .temperature = 0};
    trit_client_resp r;
    cr_assert_eq(trit_client_completion(&q, &r), 0, "%s", r.msg);
    trit_client_resp_free(&r);
    canned_stop(&c);
}

static void write_key(const char *path, const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

Test(client, api_key_files) {
    char dir[] = "/tmp/trit-keyXXXXXX", path[64];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/key", dir);
    char *k = NULL;
    trit_err err = {0};
    write_key(path, "  s3cret \r\n", 0600);
    cr_assert_eq(trit_api_key_load(path, NULL, &k, &err), 0, "%s", err.msg);
    cr_assert_str_eq(k, "s3cret");
    free(k);
    write_key(path, "s3cret\n", 0644);
    cr_assert_eq(trit_api_key_load(path, NULL, &k, &err), -1);
    cr_assert(strstr(err.msg, "chmod 600"), "%s", err.msg);
    cr_assert_null(k);
    write_key(path, "\n\n", 0600);
    cr_assert_eq(trit_api_key_load(path, NULL, &k, &err), -1);
    write_key(path, "a\nb\n", 0600);
    cr_assert_eq(trit_api_key_load(path, NULL, &k, &err), -1);
    cr_assert_eq(trit_api_key_load(dir, NULL, &k, &err), -1, "a directory");
    unlink(path);
    cr_assert_eq(trit_api_key_load(path, NULL, &k, &err), -1, "a missing file");
    cr_assert(strstr(err.msg, path), "%s", err.msg);
    rmdir(dir);
    setenv("TRIT_TEST_KEY", "from-env", 1);
    cr_assert_eq(trit_api_key_load(NULL, "TRIT_TEST_KEY", &k, &err), 0);
    cr_assert_str_eq(k, "from-env");
    free(k);
    setenv("TRIT_TEST_KEY", "", 1);
    cr_assert_eq(trit_api_key_load(NULL, "TRIT_TEST_KEY", &k, &err), 0);
    cr_assert_null(k);
    cr_assert(trit_api_key_matches("abc", "Bearer abc"));
    cr_assert(trit_api_key_matches("abc", "bearer  abc"));
    cr_assert(!trit_api_key_matches("abc", "Bearer abcd"));
    cr_assert(!trit_api_key_matches("abc", "Bearer ab"));
    cr_assert(!trit_api_key_matches("abc", "abc"));
    cr_assert(!trit_api_key_matches("abc", NULL));
}

/* ---- server identity: the normalizer on recorded replies, the digest, same-server ---- */

/* A recorded reply from tests/unit/data/identity/ (next to this file), parsed. */
static json_t *recorded(const char *name) {
    char dir[512], path[700];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    snprintf(path, sizeof path, "%s/data/identity/%s", dir, name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s: %s", path, je.text);
    return j;
}

static const char *sget(const json_t *id, const char *key) {
    const char *s = json_string_value(json_object_get(id, key));
    cr_assert_not_null(s, "identity has no string '%s'", key);
    return s;
}

static long long iget(const json_t *id, const char *key) {
    const json_t *v = json_object_get(id, key);
    cr_assert(json_is_integer(v), "identity has no integer '%s'", key);
    return json_integer_value(v);
}

static void expect_reported(const json_t *id, const char *a, const char *b) {
    const json_t *r = json_object_get(id, "reported");
    cr_assert_eq(json_array_size(r), (size_t)(a ? 1 : 0) + (b ? 1 : 0));
    if (a) cr_assert_str_eq(json_string_value(json_array_get(r, 0)), a);
    if (b) cr_assert_str_eq(json_string_value(json_array_get(r, a ? 1 : 0)), b);
}

#define DEMO_SHA "b1d08f81ded86e6f9c1b03ec74301210a950a0235ecc518683223748873fb346"

Test(identity, llama_server_recorded) {
    json_t *p = recorded("llama-server-props.json"), *m = recorded("llama-server-models.json");
    json_t *id = trit_identity_normalize("http://127.0.0.1:8080/v1/", p, m);
    cr_assert_str_eq(sget(id, "url"), "http://127.0.0.1:8080");
    cr_assert_str_eq(sget(id, "engine"), "llama.cpp");
    cr_assert_str_eq(sget(id, "build"), "b1-de3ff81");
    cr_assert_str_eq(sget(id, "model"), "models/kjv-bitnet-tq2_0.gguf");
    cr_assert_str_eq(sget(id, "model_sha256"), "");
    cr_assert_eq(iget(id, "model_size"), 0, "llama-server's meta.size is tensor bytes");
    cr_assert_eq(iget(id, "n_vocab"), 2048);
    cr_assert_eq(iget(id, "n_ctx"), 2048);
    cr_assert_eq(iget(id, "n_ctx_train"), 2048);
    cr_assert_str_eq(sget(id, "numerics"), "");
    cr_assert_str_eq(sget(id, "kernels"), "");
    cr_assert_eq(iget(id, "threads"), 0);
    cr_assert_str_eq(sget(id, "instance"), "");
    cr_assert_str_eq(sget(id, "system_fingerprint"), "b1-de3ff81");
    expect_reported(id, "/props", "/v1/models");
    char d[17];
    trit_identity_digest(id, d);
    /* pinned: the canonical string of docs/parity.md (Identity), recomputed with Python's
     * hashlib over "trit-identity-v1\nengine=llama.cpp\nbuild=b1-de3ff81\n..." */
    cr_assert_str_eq(d, "45478c6d77b5ab4a");
    /* only /v1/models (an older llama-server, or /props refused): owned_by "llamacpp" */
    json_t *id2 = trit_identity_normalize("http://127.0.0.1:8080", NULL, m);
    cr_assert_str_eq(sget(id2, "engine"), "llama.cpp");
    cr_assert_str_eq(sget(id2, "build"), "");
    cr_assert_str_eq(sget(id2, "model"), "models/kjv-bitnet-tq2_0.gguf");
    cr_assert_eq(iget(id2, "n_vocab"), 2048);
    expect_reported(id2, "/v1/models", NULL);
    /* only /props: build_info says llama.cpp */
    json_t *id3 = trit_identity_normalize("http://127.0.0.1:8080", p, NULL);
    cr_assert_str_eq(sget(id3, "engine"), "llama.cpp");
    cr_assert_eq(iget(id3, "n_vocab"), 0);
    cr_assert_eq(iget(id3, "n_ctx"), 2048);
    expect_reported(id3, "/props", NULL);
    json_decref(id);
    json_decref(id2);
    json_decref(id3);
    json_decref(p);
    json_decref(m);
}

Test(identity, trit_serve_recorded) {
    json_t *p = recorded("trit-serve-props.json"), *m = recorded("trit-serve-models.json");
    json_t *id = trit_identity_normalize("http://localhost:8180", p, m);
    cr_assert_str_eq(sget(id, "engine"), "trit");
    cr_assert_str_eq(sget(id, "build"), "0.1.0+3abeb9e-dirty");
    cr_assert_str_eq(sget(id, "model"), "models/kjv-bitnet-tq2_0.gguf");
    cr_assert_str_eq(sget(id, "model_sha256"), DEMO_SHA);
    cr_assert_eq(iget(id, "model_size"), 1460512);
    cr_assert_eq(iget(id, "n_vocab"), 2048);
    cr_assert_eq(iget(id, "n_ctx"), 2048);
    cr_assert_eq(iget(id, "n_ctx_train"), 2048);
    cr_assert_str_eq(sget(id, "numerics"), "exact");
    cr_assert_str_eq(sget(id, "kernels"), "avx512");
    cr_assert_eq(iget(id, "threads"), 1);
    cr_assert_eq(strlen(sget(id, "instance")), 32);
    cr_assert_str_eq(sget(id, "system_fingerprint"), "trit-0.1.0+3abeb9e-dirty-avx512-exact");
    expect_reported(id, "/props", "/v1/models");
    char d[17];
    trit_identity_digest(id, d);
    cr_assert_str_eq(d, "03654cde371c1021"); /* pinned like the llama-server one */
    /* only /v1/models: owned_by "trit", the sha256 and file size from meta */
    json_t *id2 = trit_identity_normalize("http://localhost:8180", NULL, m);
    cr_assert_str_eq(sget(id2, "engine"), "trit");
    cr_assert_str_eq(sget(id2, "model_sha256"), DEMO_SHA);
    cr_assert_eq(iget(id2, "model_size"), 1460512);
    cr_assert_str_eq(sget(id2, "model"), "kjv-bitnet-tq2_0.gguf");
    json_decref(id);
    json_decref(id2);
    json_decref(p);
    json_decref(m);
}

Test(identity, openai_only_server) {
    json_t *m = recorded("openai-only-models.json");
    json_t *id = trit_identity_normalize("https://api.example.com/v1", NULL, m);
    cr_assert_str_eq(sget(id, "url"), "https://api.example.com");
    cr_assert_str_eq(sget(id, "engine"), "unknown");
    cr_assert_str_eq(sget(id, "model"), "Qwen/Qwen2.5-0.5B-Instruct");
    cr_assert_str_eq(sget(id, "build"), "");
    cr_assert_eq(iget(id, "n_vocab"), 0);
    cr_assert_str_eq(sget(id, "system_fingerprint"), "");
    expect_reported(id, "/v1/models", NULL);
    json_decref(id);
    json_decref(m);
}

Test(identity, hostile_values_are_bounded) {
    /* wrong types, negative counts, a bad sha, an uppercase sha, a huge string */
    size_t big = 100000;
    char *path = malloc(big + 1);
    memset(path, 'a', big);
    memcpy(path + 1023, "\xc3\xa9", 2); /* a 2-byte character across the 1024-byte cut */
    path[big] = 0;
    json_t *p =
        json_pack("{s:s, s:{s:s, s:i, s:s, s:f, s:[]}}", "model_path", path, "trit", "model_sha256",
                  "XYZ", "n_vocab", -5, "kernels", "avx2", "threads", 2.5, "numerics");
    json_t *arr = json_pack("[]");
    json_t *id = trit_identity_normalize("http://h:1", p, arr);
    json_decref(arr);
    cr_assert_str_eq(sget(id, "engine"), "trit");
    cr_assert_eq(strlen(sget(id, "model")), 1023, "cut before the split character");
    cr_assert_str_eq(sget(id, "model_sha256"), "");
    cr_assert_eq(iget(id, "n_vocab"), 0);
    cr_assert_eq(iget(id, "threads"), 0);
    cr_assert_str_eq(sget(id, "numerics"), "");
    expect_reported(id, "/props", NULL); /* a non-object /v1/models reply did not answer */
    json_decref(id);
    json_decref(p);
    p = json_pack("{s:{s:s, s:f}}", "trit", "model_sha256",
                  "B1D08F81DED86E6F9C1B03EC74301210A950A0235ECC518683223748873FB346", "model_size",
                  1460512.0);
    id = trit_identity_normalize("http://h:1", p, NULL);
    cr_assert_str_eq(sget(id, "model_sha256"), DEMO_SHA);
    cr_assert_eq(iget(id, "model_size"), 1460512);
    json_decref(id);
    json_decref(p);
    /* nothing at all: every field present, empty */
    id = trit_identity_normalize(NULL, NULL, NULL);
    cr_assert_str_eq(sget(id, "url"), "");
    cr_assert_str_eq(sget(id, "engine"), "unknown");
    expect_reported(id, NULL, NULL);
    json_decref(id);
    free(path);
}

Test(identity, digest_covers_what_a_side_is) {
    json_t *p = recorded("trit-serve-props.json"), *m = recorded("trit-serve-models.json");
    json_t *base = trit_identity_normalize("http://127.0.0.1:8180", p, m);
    char d0[17], d[17];
    trit_identity_digest(base, d0);
    cr_assert_eq(strlen(d0), 16);
    cr_assert_eq(strspn(d0, "0123456789abcdef"), 16);
    /* not part of it: where it runs, which process, how many threads, what it reports */
    static const char *const same[] = {"url", "instance", "system_fingerprint"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        json_t *x = json_deep_copy(base);
        json_object_set_new(x, same[i], json_string("other"));
        trit_identity_digest(x, d);
        cr_assert_str_eq(d, d0, "%s changed the digest", same[i]);
        json_decref(x);
    }
    static const char *const same_n[] = {"threads", "n_vocab", "n_ctx", "n_ctx_train"};
    for (size_t i = 0; i < sizeof same_n / sizeof *same_n; i++) {
        json_t *x = json_deep_copy(base);
        json_object_set_new(x, same_n[i], json_integer(7));
        trit_identity_digest(x, d);
        cr_assert_str_eq(d, d0, "%s changed the digest", same_n[i]);
        json_decref(x);
    }
    /* part of it: each of the seven fields */
    static const char *const diff[] = {"engine",       "build",    "model",
                                       "model_sha256", "numerics", "kernels"};
    for (size_t i = 0; i < sizeof diff / sizeof *diff; i++) {
        json_t *x = json_deep_copy(base);
        json_object_set_new(x, diff[i], json_string("other"));
        trit_identity_digest(x, d);
        cr_assert_str_neq(d, d0, "%s did not change the digest", diff[i]);
        json_decref(x);
    }
    json_t *x = json_deep_copy(base);
    json_object_set_new(x, "model_size", json_integer(1460513));
    trit_identity_digest(x, d);
    cr_assert_str_neq(d, d0, "model_size did not change the digest");
    json_decref(x);
    /* a field boundary cannot be moved: "ab"+"c" and "a"+"bc" differ */
    json_t *y = json_pack("{s:s, s:s}", "engine", "ab", "build", "c");
    json_t *z = json_pack("{s:s, s:s}", "engine", "a", "build", "bc");
    char dy[17], dz[17], dn[17];
    trit_identity_digest(y, dy);
    trit_identity_digest(z, dz);
    cr_assert_str_neq(dy, dz);
    trit_identity_digest(NULL, dn);
    cr_assert_eq(strlen(dn), 16);
    json_decref(y);
    json_decref(z);
    json_decref(base);
    json_decref(p);
    json_decref(m);
}

static bool same_urls(const char *a, const char *b) {
    json_t *x = json_pack("{s:s, s:s}", "url", a, "instance", "");
    json_t *y = json_pack("{s:s, s:s}", "url", b, "instance", "");
    bool same = trit_identity_same_server(x, y);
    cr_assert_eq(trit_identity_same_server(y, x), same, "not symmetric: %s %s", a, b);
    json_decref(x);
    json_decref(y);
    return same;
}

Test(identity, same_server) {
    cr_assert(same_urls("http://127.0.0.1:8080", "http://127.0.0.1:8080/"));
    cr_assert(same_urls("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080"));
    cr_assert(same_urls("HTTP://LocalHost:8080/v1/", "http://127.0.0.1:8080"));
    cr_assert(same_urls("http://[::1]:8080", "http://localhost:8080"));
    cr_assert(same_urls("http://127.0.0.1", "http://127.0.0.1:80"));
    cr_assert(same_urls("https://Example.COM/v1", "https://example.com:443"));
    cr_assert(same_urls("http://user:pw@127.0.0.1:8080", "http://127.0.0.1:8080"));
    cr_assert(!same_urls("http://127.0.0.1:8080", "http://127.0.0.1:8180"));
    cr_assert(!same_urls("http://127.0.0.1:8080", "http://127.0.0.2:8080"));
    cr_assert(!same_urls("http://127.0.0.1:443", "https://127.0.0.1:443"));
    cr_assert(!same_urls("http://h:1/a", "http://h:1/b"));
    cr_assert(!same_urls("", ""), "no URL is no evidence of sameness");
    /* instance: equal non-empty ids are one process whatever the URLs (a proxy in front) */
    json_t *a = json_pack("{s:s, s:s}", "url", "http://a:1", "instance", "abc");
    json_t *b = json_pack("{s:s, s:s}", "url", "http://b:2", "instance", "abc");
    json_t *c = json_pack("{s:s, s:s}", "url", "http://b:2", "instance", "abd");
    json_t *e = json_pack("{s:s, s:s}", "url", "http://a:9", "instance", "");
    cr_assert(trit_identity_same_server(a, b));
    cr_assert(!trit_identity_same_server(a, c));
    cr_assert(trit_identity_same_server(b, c), "same URL");
    cr_assert(!trit_identity_same_server(e, json_object_get(NULL, "x")));
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(e);
}

/* ---- trit_client_identity over HTTP: a routed canned server (path -> replies in turn) ---- */
typedef struct route_reply {
    const char *path;
    const char *replies[4]; /* full HTTP responses, one per request to path; the last repeats */
    int n, served;
} route_reply;

typedef struct router {
    int lfd, port;
    route_reply *routes;
    int n_routes;
    char auth[256]; /* the last Authorization header seen */
    int requests;
    pthread_t th;
} router;

static void *router_main(void *arg) {
    router *rt = arg;
    for (;;) {
        int fd = accept(rt->lfd, NULL, NULL);
        if (fd < 0) return NULL;
        char req[8192];
        size_t got = 0;
        while (got < sizeof req - 1) {
            ssize_t n = read(fd, req + got, sizeof req - 1 - got);
            if (n <= 0) break;
            got += (size_t)n;
            req[got] = 0;
            if (strstr(req, "\r\n\r\n")) break;
        }
        req[got] = 0;
        rt->requests++;
        const char *h = strstr(req, "\r\nAuthorization: ");
        if (h) snprintf(rt->auth, sizeof rt->auth, "%.*s", (int)strcspn(h + 17, "\r"), h + 17);
        const char *reply =
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        for (int i = 0; i < rt->n_routes; i++) {
            route_reply *r = &rt->routes[i];
            size_t pl = strlen(r->path);
            if (!strncmp(req + 4, r->path, pl) && req[4 + pl] == ' ') {
                reply = r->replies[r->served < r->n ? r->served : r->n - 1];
                r->served++;
            }
        }
        ssize_t w = write(fd, reply, strlen(reply));
        (void)w;
        close(fd);
    }
}

static void router_start(router *rt, route_reply *routes, int n) {
    memset(rt, 0, sizeof *rt);
    rt->routes = routes;
    rt->n_routes = n;
    rt->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(rt->lfd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert(listen(rt->lfd, 8) == 0);
    socklen_t al = sizeof a;
    getsockname(rt->lfd, (struct sockaddr *)&a, &al);
    rt->port = ntohs(a.sin_port);
    pthread_create(&rt->th, NULL, router_main, rt);
}

static void router_stop(router *rt) {
    shutdown(rt->lfd, SHUT_RDWR);
    close(rt->lfd);
    pthread_join(rt->th, NULL);
}

/* "HTTP/1.1 <status>" with a JSON body (malloc'd). */
static char *http_json(const char *status, const char *body) {
    trit_buf b = {0};
    trit_buf_printf(&b,
                    "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                    "Connection: close\r\n\r\n%s",
                    status, strlen(body), body);
    return b.p;
}

static char *recorded_reply(const char *name) {
    json_t *j = recorded(name);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char *r = http_json("200 OK", s);
    free(s);
    return r;
}

Test(identity, client_asks_both_endpoints) {
    char *props = recorded_reply("llama-server-props.json");
    char *models = recorded_reply("llama-server-models.json");
    route_reply routes[] = {{"/props", {props}, 1, 0}, {"/v1/models", {models}, 1, 0}};
    router rt;
    router_start(&rt, routes, 2);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/", rt.port);
    trit_client_resp r;
    json_t *id = trit_client_identity(url, "sekret", 5, &r);
    cr_assert_not_null(id, "%s", r.msg);
    cr_assert_eq(r.kind, TRIT_CLIENT_OK);
    cr_assert_str_eq(sget(id, "engine"), "llama.cpp");
    cr_assert_eq(iget(id, "n_vocab"), 2048);
    expect_reported(id, "/props", "/v1/models");
    cr_assert_eq(routes[0].served, 1, "/props asked at the root, not under /v1");
    cr_assert_str_eq(rt.auth, "Bearer sekret");
    json_decref(id);
    trit_client_resp_free(&r);
    router_stop(&rt);
    free(props);
    free(models);
}

Test(identity, client_without_props) {
    char *models = recorded_reply("openai-only-models.json");
    route_reply routes[] = {{"/v1/models", {models}, 1, 0}};
    router rt;
    router_start(&rt, routes, 1);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", rt.port);
    json_t *id = trit_client_identity(url, NULL, 5, NULL);
    cr_assert_not_null(id);
    cr_assert_str_eq(sget(id, "engine"), "unknown");
    expect_reported(id, "/v1/models", NULL);
    cr_assert_str_eq(rt.auth, "", "no key, no header");
    json_decref(id);
    router_stop(&rt);
    free(models);
}

Test(identity, client_waits_for_a_pending_hash, .timeout = 120) {
    char *pending = http_json("200 OK", "{\"trit\":{\"model_sha256\":\"\","
                                        "\"model_sha256_state\":\"pending\",\"instance\":\"i1\"}}");
    char *done = http_json("200 OK", "{\"trit\":{\"model_sha256\":\"" DEMO_SHA "\","
                                     "\"model_sha256_state\":\"done\",\"instance\":\"i1\"}}");
    route_reply routes[] = {{"/props", {pending, pending, done}, 3, 0}};
    router rt;
    router_start(&rt, routes, 1);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", rt.port);
    trit_client_resp r;
    json_t *id = trit_client_identity(url, NULL, 5, &r);
    cr_assert_not_null(id, "%s", r.msg);
    cr_assert_str_eq(sget(id, "model_sha256"), DEMO_SHA);
    cr_assert_eq(routes[0].served, 3);
    expect_reported(id, "/props", NULL); /* /v1/models: 404 */
    json_decref(id);
    trit_client_resp_free(&r);
    /* a hash still pending when the time is up: the identity, with no sha256 */
    routes[0].served = 0;
    routes[0].n = 1;
    double t0 = trit_now_s();
    id = trit_client_identity(url, NULL, 0.5, &r);
    cr_assert_not_null(id, "%s", r.msg);
    cr_assert_str_eq(sget(id, "model_sha256"), "");
    /* a client that polls past its 0.5 s never returns (the test's timeout fails it); this
     * bound is generous for a loaded machine */
    cr_assert_lt(trit_now_s() - t0, 30.0);
    json_decref(id);
    trit_client_resp_free(&r);
    router_stop(&rt);
    free(pending);
    free(done);
}

Test(identity, client_errors, .timeout = 120) {
    /* both endpoints refuse the key: an error naming both, kind http_status */
    char *denied = http_json("401 Unauthorized", "{\"error\":{\"message\":\"Invalid API Key\"}}");
    route_reply routes[] = {{"/props", {denied}, 1, 0}, {"/v1/models", {denied}, 1, 0}};
    router rt;
    router_start(&rt, routes, 2);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", rt.port);
    trit_client_resp r;
    json_t *id = trit_client_identity(url, "wrong", 5, &r);
    cr_assert_null(id);
    cr_assert_eq(r.kind, TRIT_CLIENT_HTTP_STATUS, "%s", r.msg);
    cr_assert_eq(r.http_status, 401);
    cr_assert(strstr(r.msg, "/props") && strstr(r.msg, "/v1/models"), "%s", r.msg);
    cr_assert(strstr(r.msg, "Invalid API Key"), "%s", r.msg);
    trit_client_resp_free(&r);
    router_stop(&rt);
    free(denied);
    /* nothing listens: refused, asked once */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    id = trit_client_identity(url, NULL, 2, &r);
    cr_assert_null(id);
    cr_assert_eq(r.kind, TRIT_CLIENT_REFUSED, "%s", r.msg);
    trit_client_resp_free(&r);
    /* a server that accepts and never answers: one timeout, /v1/models is not asked after it */
    canned c;
    canned_start(&c, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", c.port);
    id = trit_client_identity(url, NULL, 0.5, &r);
    cr_assert_null(id);
    cr_assert_eq(r.kind, TRIT_CLIENT_TIMEOUT, "%s", r.msg);
    cr_assert_not(canned_asked_again(&c), "asked again after a timeout");
    trit_client_resp_free(&r);
    canned_stop(&c);
    id = trit_client_identity("", NULL, 2, &r);
    cr_assert_null(id);
    cr_assert_eq(r.kind, TRIT_CLIENT_OTHER);
    trit_client_resp_free(&r);
    /* 200 with a body that is not a JSON object, on both */
    char *junk = http_json("200 OK", "[1,2]");
    route_reply jr[] = {{"/props", {junk}, 1, 0}, {"/v1/models", {junk}, 1, 0}};
    router_start(&rt, jr, 2);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", rt.port);
    id = trit_client_identity(url, NULL, 5, &r);
    cr_assert_null(id);
    cr_assert_eq(r.kind, TRIT_CLIENT_BAD_JSON, "%s", r.msg);
    trit_client_resp_free(&r);
    router_stop(&rt);
    free(junk);
}
