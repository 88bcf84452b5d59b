/* test_client.c — OpenAI client: reply shapes (llama-server, legacy, chat), error kinds
 * (refused, timeout, HTTP status, bad JSON) and SSE streaming against a canned loopback
 * server thread. */
#include "client/client.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- canned one-shot HTTP server ---- */
typedef struct canned {
    int lfd, port;
    const char *reply; /* full HTTP response; NULL: accept and never answer */
    char request[8192];
    pthread_t th;
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
    } else {
        sleep(2);
    }
    close(fd);
    return NULL;
}

static void canned_start(canned *c, const char *reply) {
    memset(c, 0, sizeof *c);
    c->reply = reply;
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
    pthread_join(c->th, NULL);
    close(c->lfd);
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

Test(client, timeout_when_server_never_answers) {
    canned c;
    canned_start(&c, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", c.port);
    trit_client_req q = {
        .url = url, .prompt = "x", .seed = -1, .temperature = -1, .timeout_s = 0.4};
    trit_client_resp r;
    double t0 = trit_now_s();
    cr_assert_eq(trit_client_completion(&q, &r), -1);
    cr_assert_eq(r.kind, TRIT_CLIENT_TIMEOUT, "kind %d: %s", r.kind, r.msg);
    cr_assert_lt(trit_now_s() - t0, 1.5);
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
