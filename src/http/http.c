/* http/http.c — the HTTP intake shared by trit serve and trit shadow: open-door rule, checked
 * JSON replies, error bodies, Host/Origin/key checks, body budgets and the fairness guard
 * (header deadline, minimum body rate), and the libmicrohttpd daemon. */
#include "http/http.h"

#include "client/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- open doors ---- */

/* The loopback test every server shares: 127.0.0.0/8, as an IPv4 dotted quad. */
bool trit_http_is_loopback(const char *host) {
    struct in_addr a;
    if (!host || inet_pton(AF_INET, host, &a) != 1) return false;
    return (ntohl(a.s_addr) >> 24) == 127;
}

/* One rule for every listening server (docs/SECURITY.md): a door others can open needs a
 * key, and an empty key is a mistake, not a choice. */
int trit_http_door_check(const trit_http_door *d, trit_err *err) {
    const char *env = d->key_env ? getenv(d->key_env) : NULL;
    if (!d->api_key && env && !*env)
        return trit_fail(err, TRIT_EINVAL,
                         "%s is set but empty: give it a key, or unset it to run without one",
                         d->key_env);
    if (d->api_key && !*d->api_key) return trit_fail(err, TRIT_EINVAL, "the API key is empty");
    if (d->api_key) return 0;
    const bool any_origin = d->cors && !strcmp(d->cors, "*");
    struct in_addr a; /* an address that does not parse is refused when the daemon starts */
    const bool remote =
        d->host && inet_pton(AF_INET, d->host, &a) == 1 && !trit_http_is_loopback(d->host);
    if (!any_origin && !remote) return 0;
    const char *door = remote ? "a non-loopback --host" : "--cors '*'";
    if (!d->insecure_no_key)
        return trit_fail(err, TRIT_EINVAL,
                         "%s needs an API key (--api-key-file FILE or $%s); "
                         "--insecure-no-key starts it open anyway",
                         door, d->key_env ? d->key_env : "TRIT_API_KEY");
    fprintf(stderr,
            "%s: WARNING: %s without an API key (--insecure-no-key): anyone who can reach "
            "it can use it\n",
            d->who ? d->who : "trit", door);
    return 0;
}

/* ---- checked JSON replies ---- */
static atomic_uint fault_every;
static atomic_ulong fault_count;
static _Thread_local unsigned long json_fails;
static pthread_once_t json_once = PTHREAD_ONCE_INIT;

/* jansson's allocator: malloc, with each failure counted on the calling thread (and every
 * Nth call failed on purpose when the testing aid asks for it). */
static void *counted_malloc(size_t n) {
    const unsigned every = atomic_load(&fault_every);
    if (every && atomic_fetch_add(&fault_count, 1) % every == every - 1) {
        json_fails++;
        return NULL;
    }
    void *p = malloc(n);
    if (!p) json_fails++;
    return p;
}

/* pthread_once body: jansson takes its allocator before the first JSON value exists. */
static void json_install(void) {
    json_set_alloc_funcs(counted_malloc, free);
}

/* Idempotent; every server calls it before building a reply. */
void trit_http_json_init(void) {
    pthread_once(&json_once, json_install);
}

/* The failure count a reply builder compares against afterwards. */
unsigned long trit_http_json_mark(void) {
    return json_fails;
}

/* Whether every jansson allocation on this thread succeeded since mark. */
bool trit_http_json_ok(unsigned long mark) {
    return json_fails == mark;
}

/* Testing aid (--fault json-alloc=N): fail every Nth allocation from now on. */
void trit_http_json_fault(unsigned every) {
    trit_http_json_init();
    atomic_store(&fault_count, 0);
    atomic_store(&fault_every, every);
}

/* A reply is sent only when it was built whole: a member lost to a failed allocation makes
 * the text NULL, so the caller answers 500 instead of a 200 with partial data. */
char *trit_http_dumps(json_t *v, unsigned long mark) {
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (s && trit_http_json_ok(mark)) return s;
    free(s);
    return NULL;
}

/* jansson's escaping (RFC 8259: '"', '\\' and the controls; '/' left as is), written straight
 * into a buffer so that a reply of a million pieces needs no JSON tree. */
void trit_http_json_str(trit_buf *out, const char *s, size_t n) {
    trit_buf r = {0};
    trit_utf8_repair(s ? s : "", n, &r);
    trit_buf_puts(out, "\"");
    for (size_t i = 0; i < r.len; i++) {
        const unsigned char c = (unsigned char)r.p[i];
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                                      : NULL;
        if (esc)
            trit_buf_puts(out, esc);
        else if (c < 0x20)
            trit_buf_printf(out, "\\u%04X", c); /* jansson: upper case */
        else
            trit_buf_append(out, (const char *)&c, 1);
    }
    trit_buf_puts(out, "\"");
    trit_buf_free(&r);
}

static const char oom_body[] = "{\"error\":{\"message\":\"out of memory while building the "
                               "reply\",\"type\":\"server_error\",\"param\":null,\"code\":"
                               "\"out_of_memory\"}}";

/* The body of last resort: static, so it exists when nothing else can be allocated. */
const char *trit_http_body_static(void) {
    return oom_body;
}

/* Bodies travel as malloc'd strings; the static one must not reach free(). */
void trit_http_body_free(char *body) {
    if (body != oom_body) free(body);
}

/* An error body must never fail: a refusal under memory pressure is still a refusal. */
char *trit_http_error_body(const char *message, const char *type, const char *param,
                           const char *code) {
    const unsigned long mark = trit_http_json_mark();
    json_t *e = json_object();
    trit_buf m = {0};
    trit_utf8_repair(message ? message : "", message ? strlen(message) : 0, &m);
    json_object_set_new(e, "message", json_string(m.p ? m.p : ""));
    trit_buf_free(&m);
    json_object_set_new(e, "type", json_string(type ? type : "server_error"));
    json_object_set_new(e, "param", param && *param ? json_string(param) : json_null());
    json_object_set_new(e, "code", code && *code ? json_string(code) : json_null());
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    char *s = trit_http_dumps(o, mark);
    if (s) return s;
    char *fixed = malloc(sizeof oom_body);
    if (!fixed) return (char *)oom_body;
    memcpy(fixed, oom_body, sizeof oom_body);
    return fixed;
}

/* Every reply goes out the same way: its type, and a retry hint where retrying helps. */
struct MHD_Response *trit_http_response(unsigned status, const char *ctype, char *body) {
    const bool fixed = body == oom_body;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), body, fixed ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
    if (!r) {
        if (!fixed) free(body);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    if (status == 429 || status == 503) MHD_add_response_header(r, "Retry-After", "1");
    return r;
}

/* Queue and release in one step (a NULL response closes the connection). */
enum MHD_Result trit_http_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r) {
    if (!r) return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* The SSE framing llama-server uses: one data line per event, a blank line after it. */
void trit_http_sse_event(trit_buf *out, const char *data) {
    trit_buf_printf(out, "data: %s\n\n", data);
}

/* The CORS answer is the origin echoed (never "*" unless --cors '*'), so a page learns only
 * that its own origin is allowed; Vary keeps caches from mixing origins. */
void trit_http_cors_headers(struct MHD_Connection *c, struct MHD_Response *r, const char *cors) {
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!r || !origin || !trit_origin_allowed(origin, cors)) return;
    const bool any = cors && !strcmp(cors, "*");
    MHD_add_response_header(r, "Access-Control-Allow-Origin", any ? "*" : origin);
    MHD_add_response_header(r, "Vary", "Origin");
}

/* Browsers ask before a POST with JSON or a key: what a page may send, cached 10 minutes. */
enum MHD_Result trit_http_preflight(struct MHD_Connection *c, const char *cors) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    trit_http_cors_headers(c, r, cors);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    return trit_http_queue(c, 204, r);
}
