/* test_http.c — the HTTP intake's pure rules: the open-door rule (a key for a non-loopback
 * host or --cors '*', an empty key is an error), checked JSON replies under injected
 * allocation failures (never a partial text), the never-failing error body, and the direct
 * JSON string writer (jansson's bytes). */
#include "http/http.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static int door(const char *host, const char *cors, const char *key, bool insecure) {
    trit_http_door d = {.who = "test",
                        .host = host,
                        .cors = cors,
                        .api_key = key,
                        .key_env = "TRIT_TEST_HTTP_KEY",
                        .insecure_no_key = insecure};
    trit_err err = {0};
    int rc = trit_http_door_check(&d, &err);
    if (rc) cr_assert(err.msg[0], "a refusal without a reason");
    return rc;
}

Test(http, open_doors_need_a_key) {
    unsetenv("TRIT_TEST_HTTP_KEY");
    cr_assert_eq(door("127.0.0.1", NULL, NULL, false), 0);
    cr_assert_eq(door("127.0.0.5", "http://app.example", NULL, false), 0);
    cr_assert_eq(door("127.0.0.1", "*", NULL, false), -1, "--cors '*' without a key");
    cr_assert_eq(door("0.0.0.0", NULL, NULL, false), -1, "a non-loopback host without a key");
    cr_assert_eq(door("192.168.1.10", NULL, NULL, false), -1);
    cr_assert_eq(door("0.0.0.0", "*", "k", false), 0, "a key closes both doors");
    cr_assert_eq(door("0.0.0.0", "*", NULL, true), 0, "--insecure-no-key opens them (warned)");
    cr_assert_eq(door("127.0.0.1", NULL, "", false), -1, "an empty key is an error");
    setenv("TRIT_TEST_HTTP_KEY", "", 1);
    cr_assert_eq(door("127.0.0.1", NULL, NULL, false), -1, "an empty key variable is an error");
    cr_assert_eq(door("127.0.0.1", NULL, "from-a-file", false), 0);
    unsetenv("TRIT_TEST_HTTP_KEY");
    cr_assert(trit_http_is_loopback("127.1.2.3"));
    cr_assert(!trit_http_is_loopback("128.0.0.1"));
    cr_assert(!trit_http_is_loopback("localhost"));
}

/* A reply of several members, built the way the servers build theirs. */
static json_t *reply(void) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string("cmpl-1"));
    json_t *a = json_array();
    for (int i = 0; i < 20; i++) json_array_append_new(a, json_integer(i));
    json_object_set_new(o, "tokens", a);
    json_object_set_new(o, "text", json_string("In the beginning"));
    return o;
}

Test(http, a_reply_that_lost_a_member_is_never_sent) {
    trit_http_json_init();
    unsigned long mark = trit_http_json_mark();
    char *whole = trit_http_dumps(reply(), mark);
    cr_assert_not_null(whole);
    int failed = 0, same = 0;
    for (unsigned every = 2; every < 200; every++) {
        trit_http_json_fault(every);
        mark = trit_http_json_mark();
        char *s = trit_http_dumps(reply(), mark);
        trit_http_json_fault(0);
        if (!s) {
            failed++;
            continue;
        }
        cr_assert_str_eq(s, whole, "every=%u: a text came back that is not the whole reply", every);
        same++;
        free(s);
    }
    cr_assert_gt(failed, 0, "the fault never hit");
    cr_assert_gt(same, 0, "the fault hit every time (the test cannot tell a whole reply)");
    free(whole);
}

Test(http, error_bodies_never_fail) {
    trit_http_json_fault(1); /* every allocation fails */
    char *b = trit_http_error_body("the \"model\" is busy", "server_error", NULL, "busy");
    trit_http_json_fault(0);
    cr_assert_not_null(b);
    cr_assert(strstr(b, "\"error\"") && strstr(b, "out_of_memory"), "%s", b);
    trit_http_body_free(b);
    b = trit_http_error_body("bad \"x\"", "invalid_request_error", "x", NULL);
    cr_assert_str_eq(b,
                     "{\"error\":{\"message\":\"bad \\\"x\\\"\",\"type\":\"invalid_request_error\","
                     "\"param\":\"x\",\"code\":null}}");
    trit_http_body_free(b);
    trit_http_body_free((char *)trit_http_body_static()); /* not freed: no crash */
}

Test(http, json_strings_are_janssons_bytes) {
    const char *cases[] = {"plain",
                           "q\"uote\\back",
                           "nl\ncr\rtab\tbs\bff\f",
                           "\x01\x1f\x7f",
                           "caf\xc3\xa9 \xe4\xb8\x96",
                           "slash/ok"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        trit_buf out = {0};
        trit_http_json_str(&out, cases[i], strlen(cases[i]));
        json_t *v = json_string(cases[i]);
        char *want = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        cr_assert_str_eq(out.p, want, "case %zu", i);
        free(want);
        json_decref(v);
        trit_buf_free(&out);
    }
    /* embedded NUL and invalid UTF-8: base's repair, then the same escaping */
    trit_buf out = {0};
    trit_http_json_str(&out, "a\0b\xff", 4);
    cr_assert_str_eq(out.p, "\"a\\u0000b\xef\xbf\xbd\"");
    trit_buf_free(&out);
}

Test(http, limits_default) {
    trit_http_limits l;
    trit_http_limits_default(&l);
    cr_assert_eq(l.max_body, (size_t)1 << 20);
    cr_assert_eq(l.body_total, (size_t)64 << 20);
    cr_assert_gt(l.peer_share, 1, "one peer must not hold the whole body budget");
    cr_assert_gt(l.min_rate, 0);
    cr_assert_gt(l.header_deadline_s, 0);
}
