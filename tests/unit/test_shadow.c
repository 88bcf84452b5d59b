/* test_shadow.c — the shadow proxy's request path checks (issue 13's SSRF probes as unit
 * tests): origin-form targets only, encoded tricks refused, header limits, and upstream URLs
 * that always keep the configured host. */
#include "parity/shadow.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static int check(const char *t) {
    trit_shadow_target x;
    char why[300] = "";
    int st = trit_shadow_check_target(t, &x, why, sizeof why);
    if (st) cr_assert(why[0], "no reason for %s", t);
    return st;
}

Test(shadow, targets_refused) {
    const char *bad[] = {"",
                         "@127.0.0.1:9999/s.txt",
                         "//127.0.0.1:9999/s.txt",
                         "http://127.0.0.1:9999/s.txt",
                         "127.0.0.1:9999",
                         "*",
                         "/%2F127.0.0.1/s",
                         "/%2f%2f127.0.0.1/s",
                         "/%40evil/s",
                         "/%5cevil",
                         "/%2e%2e/x",
                         "/v1/../x",
                         "/v1/..",
                         "/./x",
                         "/a//b",
                         "/a\\b",
                         "/@evil",
                         "/a\r\nHost: x",
                         "/a\x01",
                         "/a%00",
                         "/a%0d%0a",
                         "/a%zz",
                         "/a%4",
                         "/a%",
                         "/a b",
                         "/a\x80",
                         "/x?a#b",
                         "/x?a b",
                         "/x?a\\b",
                         "/x?a%",
                         "/x#frag"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(check(bad[i]), 400, "not refused with 400: '%s'", bad[i]);
    char *longt = malloc(TRIT_SHADOW_MAX_TARGET + 10);
    memset(longt, 'a', TRIT_SHADOW_MAX_TARGET + 9);
    longt[0] = '/';
    longt[TRIT_SHADOW_MAX_TARGET + 9] = 0;
    cr_assert_eq(check(longt), 414);
    free(longt);
}

Test(shadow, targets_accepted) {
    const char *ok[] = {"/",       "/v1/completions", "/v1/chat/completions",
                        "/health", "/v1/models?x=1",  "/v1/models?after=a%20b&limit=5",
                        "/a%20b",  "/a.b/c..d/.e",    "/a:b;c=d",
                        "/x?",     "/x?a=b/c?d@e"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        cr_assert_eq(check(ok[i]), 0, "refused '%s'", ok[i]);
    trit_shadow_target t;
    char why[300];
    cr_assert_eq(trit_shadow_check_target("/v1/models?x=1&y", &t, why, sizeof why), 0);
    cr_assert_eq(t.path_len, strlen("/v1/models"));
    cr_assert_eq(t.query_len, 5);
    cr_assert(!strncmp(t.query, "x=1&y", 5));
}

Test(shadow, upstream_url_keeps_the_host) {
    trit_shadow_target t;
    char why[300];
    cr_assert_eq(trit_shadow_check_target("/v1/models?a=1", &t, why, sizeof why), 0);
    char *u = trit_shadow_upstream_url("http://127.0.0.1:8080", &t, why, sizeof why);
    cr_assert_str_eq(u, "http://127.0.0.1:8080/v1/models?a=1");
    free(u);
    u = trit_shadow_upstream_url("https://gen1.example/prefix/", &t, why, sizeof why);
    cr_assert_str_eq(u, "https://gen1.example/prefix/v1/models?a=1");
    free(u);
    cr_assert_eq(trit_shadow_check_target("/a:b@c", &t, why, sizeof why), 400);
    cr_assert_eq(trit_shadow_check_target("/a:b", &t, why, sizeof why), 0);
    u = trit_shadow_upstream_url("http://127.0.0.1:8080", &t, why, sizeof why);
    cr_assert_str_eq(u, "http://127.0.0.1:8080/a:b");
    free(u);
}

Test(shadow, bases) {
    char why[300];
    cr_assert_eq(trit_shadow_check_base("http://127.0.0.1:8080", why, sizeof why), 0);
    cr_assert_eq(trit_shadow_check_base("https://h.example/v", why, sizeof why), 0);
    const char *bad[] = {"ftp://h",     "http://u:p@h", "http://u@h", "http://h/?q=1",
                         "http://h/#f", "h:80",         "http://"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(trit_shadow_check_base(bad[i], why, sizeof why), -1, "accepted %s", bad[i]);
}

Test(shadow, headers) {
    char why[300];
    cr_assert_eq(trit_shadow_check_header("Accept", "text/event-stream", why, sizeof why), 0);
    cr_assert_eq(trit_shadow_check_header("Authorization", "Bearer a\tb", why, sizeof why), 0);
    cr_assert_eq(trit_shadow_check_header("Authorization", "Bearer a\r\nX: y", why, sizeof why),
                 400);
    cr_assert(strstr(why, "Authorization"));
    char *v = malloc(TRIT_SHADOW_MAX_HEADER + 2);
    memset(v, 'k', TRIT_SHADOW_MAX_HEADER + 1);
    v[TRIT_SHADOW_MAX_HEADER + 1] = 0;
    cr_assert_eq(trit_shadow_check_header("Authorization", v, why, sizeof why), 431);
    v[TRIT_SHADOW_MAX_HEADER] = 0;
    cr_assert_eq(trit_shadow_check_header("Authorization", v, why, sizeof why), 0);
    free(v);
}
