/* fuzz_shadow — libFuzzer target for the shadow proxy's request path: the input's first line
 * is a raw request-target, the rest a header value. An accepted target must turn into an
 * upstream URL whose scheme, host and port are exactly the configured base's (libcurl's own
 * parser re-reads it) and whose path starts with the base path: no input may choose the host
 * (SSRF). Header values must be refused (400/431) exactly when they hold CR/LF/controls or are
 * too long. */
#include "parity/shadow.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

static const char *BASE = "http://127.0.0.1:8080/base";

static void expect_part(CURLU *u, CURLUPart p, const char *want) {
    char *v = NULL;
    if (curl_url_get(u, p, &v, 0) != CURLUE_OK || strcmp(v, want) != 0) abort();
    curl_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *z = malloc(size + 1);
    memcpy(z, data, size);
    z[size] = 0;
    char *nl = memchr(z, '\n', size);
    const char *value = "";
    if (nl) {
        *nl = 0;
        value = nl + 1;
    }
    char why[300];
    trit_shadow_target t;
    int st = trit_shadow_check_target(z, &t, why, sizeof why);
    if (st != 0 && st != 400 && st != 414) abort();
    if (st != 0 && !why[0]) abort();
    if (st == 0) {
        if (t.path != z || t.path_len == 0 || z[0] != '/' || (t.path_len > 1 && z[1] == '/'))
            abort();
        char *url = trit_shadow_upstream_url(BASE, &t, why, sizeof why);
        if (!url) abort(); /* a valid target always makes a URL */
        CURLU *u = curl_url();
        if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) abort();
        expect_part(u, CURLUPART_SCHEME, "http");
        expect_part(u, CURLUPART_HOST, "127.0.0.1");
        expect_part(u, CURLUPART_PORT, "8080");
        char *user = NULL;
        if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) abort();
        char *path = NULL;
        if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
            strncmp(path, "/base/", 6) != 0)
            abort();
        curl_free(path);
        curl_url_cleanup(u);
        free(url);
    }
    bool ctl = false;
    size_t n = strlen(value);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        ctl |= (c < 0x20 && c != '\t') || c == 0x7f;
    }
    int hs = trit_shadow_check_header("Authorization", value, why, sizeof why);
    int want = n > TRIT_SHADOW_MAX_HEADER ? 431 : ctl ? 400 : 0;
    if (hs != want) abort();
    free(z);
    return 0;
}
