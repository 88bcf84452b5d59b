/* http — the one HTTP intake of trit's servers (`trit serve`, `trit shadow`): the rules every
 * listening socket follows are written here once.
 *
 * Contract:
 *  - Open doors (trit_http_door_check): a server reachable from other machines (any --host
 *    that is not loopback) or from any web page (--cors '*') needs an API key; without one it
 *    refuses to start unless insecure_no_key is set, and then prints a warning on every start.
 *    An API key variable that is set but empty (TRIT_API_KEY=) is an error, never "no key".
 *  - Intake (trit_http_check_peer, then trit_http_check_entry, before the body): Host is
 *    present on HTTP/1.1 and given once (400 otherwise); when bound to loopback it names this
 *    server (403: DNS rebinding); an Origin outside the allowed list gets 403; a route that
 *    needs the key gets 401 without it; a Content-Length over max_body 413.
 *  - Bodies (trit_http_take_body): a request's body is bounded (max_body -> 413), all bodies
 *    buffered at once are bounded (body_total -> 503), and one peer address holds at most
 *    1/peer_share of body_total (503): a few connections cannot lock everyone else out.
 *  - Fairness (the guard's reaper thread, every 250 ms): request headers must be complete
 *    within header_deadline_s of the connection's start (or of the previous reply on a
 *    kept-alive connection) — an absolute deadline that trickled bytes do not reset, unlike
 *    MHD's inactivity timeout —, and a body must arrive at min_rate bytes/s or more over each
 *    window_s window; a connection that misses either is shut down. Replies are exempt.
 *  - Replies: JSON built with jansson is checked — the allocator is counted
 *    (trit_http_json_mark / trit_http_json_ok) so a reply that lost a member to an allocation
 *    failure becomes a 500, never a 200 with partial data; trit_http_error_body never fails
 *    (a fixed body when memory is short). trit_http_json_fault makes every Nth jansson
 *    allocation fail: a testing aid (`trit serve --fault json-alloc=N`).
 *  - Pages (trit_http_send_asset): a page is a few assets compiled into the binary
 *    (the files under src/<module>/www/, turned into headers by scripts/embed at build time: no
 * file beside the binary, no CDN, no external font) and served with a strict
 * Content-Security-Policy (own origin only; no inline script or style, so a page keeps its script
 * in a .js asset), nosniff, no framing, no referrer, no caching. A page gets no more rights than
 * the route it is on: the server's Host/Origin checks apply before an asset is sent.
 *  - Daemon (trit_http_start / trit_http_stop): libmicrohttpd, a thread per connection, the
 *    guard attached; the caller's handler and completion callbacks get its own cls.
 * Depends on base, client (the one constant-time API-key comparison), libmicrohttpd, jansson. */
#ifndef TRIT_HTTP_H
#define TRIT_HTTP_H

#include "base/base.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>

/* ---- open doors ---- */
typedef struct trit_http_door {
    const char *who;      /* "trit serve", "trit shadow": names the messages */
    const char *host;     /* the bound IPv4 address */
    const char *cors;     /* --cors list, or NULL */
    const char *api_key;  /* the key in use, or NULL */
    const char *key_env;  /* the variable the key may come from ("TRIT_API_KEY") */
    bool insecure_no_key; /* --insecure-no-key */
} trit_http_door;
/* 0 when the server may start (a warning on stderr when it starts open on purpose), or -1
 * with err naming the open door and the two ways to close it. */
int trit_http_door_check(const trit_http_door *d, trit_err *err);
/* True for an IPv4 address in 127.0.0.0/8. */
bool trit_http_is_loopback(const char *host);

/* ---- checked JSON replies ---- */
/* Installs the counting allocator in jansson (idempotent; call before any JSON is built). */
void trit_http_json_init(void);
/* Allocation failures seen by this thread so far: take a mark before building a reply. */
unsigned long trit_http_json_mark(void);
/* True when no jansson allocation failed on this thread since mark. */
bool trit_http_json_ok(unsigned long mark);
/* Testing aid: make every Nth jansson allocation fail (0: never). */
void trit_http_json_fault(unsigned every);
/* v serialized (compact) and released; NULL when a jansson allocation failed on this thread
 * since mark (the tree may have lost members) or serializing failed. */
char *trit_http_dumps(json_t *v, unsigned long mark);
/* Append s[0..n) as a JSON string (quotes included; invalid UTF-8 replaced by U+FFFD, base's
 * rule) to out: reply builders that write a large reply directly, without a JSON tree. */
void trit_http_json_str(trit_buf *out, const char *s, size_t n);
/* An OpenAI error object {"error":{"message","type","param","code"}} as a malloc'd string;
 * param/code may be NULL or "" (null). Never NULL: when memory is short a fixed out-of-memory
 * body is returned (malloc'd when possible, else a static string: see trit_http_body_static). */
char *trit_http_error_body(const char *message, const char *type, const char *param,
                           const char *code);
/* The fixed body trit_http_error_body falls back to (static storage, not to be freed). */
const char *trit_http_body_static(void);
/* free() for a body that may be the static one. */
void trit_http_body_free(char *body);
/* A response holding body (taken; trit_http_body_static() is not freed) with its
 * Content-Type, and Retry-After: 1 on 429/503; NULL when out of memory. */
struct MHD_Response *trit_http_response(unsigned status, const char *ctype, char *body);
/* Queue r (may be NULL: MHD_NO, the connection closes) and release it. */
enum MHD_Result trit_http_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r);
/* ---- CORS (for an origin trit_http_check_peer accepted) ---- */
/* Access-Control-Allow-Origin (the origin echoed, "*" only for cors "*") and Vary: Origin on
 * r when the request's Origin is allowed; nothing otherwise. */
void trit_http_cors_headers(struct MHD_Connection *c, struct MHD_Response *r, const char *cors);
/* The answer to an allowed origin's preflight (OPTIONS): 204 with the methods and headers a
 * page may use. */
enum MHD_Result trit_http_preflight(struct MHD_Connection *c, const char *cors);
/* ---- SSE ---- */
/* One server-sent event: "data: <data>\n\n" appended to out. */
void trit_http_sse_event(trit_buf *out, const char *data);

/* ---- pages ---- */
typedef struct trit_http_asset {
    const char *path;          /* the URL path it answers ("/", "/chat.js") */
    const char *ctype;         /* "text/html; charset=utf-8", "text/javascript; charset=utf-8" */
    const unsigned char *data; /* static storage (an embedded www_* array) */
    size_t len;
} trit_http_asset;
/* The entry of tab[0..n) whose path is url, or NULL. */
const trit_http_asset *trit_http_asset_find(const trit_http_asset *tab, size_t n, const char *url);
/* The page headers (CSP, nosniff, no framing, no referrer, no-store) on r. */
void trit_http_page_headers(struct MHD_Response *r);
/* 200 with the asset's bytes (sent in place), its Content-Type and the page headers. */
enum MHD_Result trit_http_send_asset(struct MHD_Connection *c, const trit_http_asset *a);

/* ---- limits and the guard ---- */
typedef struct trit_http_limits {
    size_t max_body;          /* one request's body (413) */
    size_t body_total;        /* all buffered bodies (503) */
    int peer_share;           /* one peer holds at most body_total / peer_share (503) */
    double header_deadline_s; /* absolute deadline for a request's headers */
    double min_rate;          /* body bytes per second, at least, over each window */
    double window_s;
    unsigned max_conns;      /* MHD's connection limit */
    unsigned idle_timeout_s; /* MHD's inactivity timeout */
    bool reuse_port;         /* let a restarted server bind its port at once (SO_REUSEPORT) */
} trit_http_limits;
/* trit's defaults: 1 MiB, 64 MiB, 4, 15 s, 1024 B/s over 5 s, 1024 connections, 120 s. */
void trit_http_limits_default(trit_http_limits *l);

typedef struct trit_http_guard trit_http_guard;

/* What trit_http_take_body decided for one chunk. */
enum { TRIT_HTTP_BODY_OK = 0, TRIT_HTTP_BODY_TOO_BIG = 413, TRIT_HTTP_BODY_BUSY = 503 };
/* Account n more body bytes of connection c's current request (which already holds `held`
 * bytes): TRIT_HTTP_BODY_OK (counted: the caller keeps them), _TOO_BIG or _BUSY (nothing
 * counted; the caller drops the body it holds and answers that status once the request is
 * complete). */
int trit_http_take_body(trit_http_guard *g, struct MHD_Connection *c, size_t held, size_t n);
/* Body bytes of a request already refused (dropped by the caller): they still count for the
 * minimum rate, so a fast client gets its 413/503 at the end instead of being cut. */
void trit_http_body_seen(trit_http_guard *g, struct MHD_Connection *c, size_t n);
/* The request's body is complete: its connection leaves the rate check (the reply is exempt). */
void trit_http_body_done(trit_http_guard *g, struct MHD_Connection *c);
/* The request is over (call from the MHD completion callback): its body bytes are released and
 * the next request's header deadline starts now. */
void trit_http_request_done(trit_http_guard *g, struct MHD_Connection *c);
/* Connections the guard shut down so far (header deadline, slow body). */
long trit_http_guard_dropped(const trit_http_guard *g);

/* ---- intake checks (first call of a request, before its body) ---- */
typedef struct trit_http_intake {
    const char *bound;      /* the bound address */
    bool loopback;          /* bound to loopback: Host must name this server */
    const char *host_allow; /* extra Host names (comma list, '*': any) */
    const char *cors;       /* allowed browser origins (NULL: loopback pages) */
    bool no_origin;         /* refuse every request with an Origin (the shadow proxy) */
    const char *api_key;    /* NULL: no key */
    size_t max_body;
} trit_http_intake;
/* A refusal: status (0: accepted), OpenAI error type and code, and a message. */
typedef struct trit_http_refusal {
    int status;
    const char *type, *code;
    char message[300];
} trit_http_refusal;
/* Who is asking (call first): Host given once, and present on HTTP/1.1 (400); when bound to
 * loopback it names this server (403, DNS rebinding); an Origin outside the allowed list, or
 * any Origin when no_origin (403). 0, or -1 with r filled. Starts the request's body phase. */
int trit_http_check_peer(struct MHD_Connection *c, const char *version, const trit_http_intake *in,
                         trit_http_refusal *r);
/* What it may do (after routing): the API key when one is set and needs_key (401), a
 * Content-Length within max_body (413). 0, or -1 with r filled. */
int trit_http_check_entry(struct MHD_Connection *c, const trit_http_intake *in, bool needs_key,
                          trit_http_refusal *r);

/* ---- daemon ---- */
typedef struct trit_http_daemon {
    struct MHD_Daemon *d;
    trit_http_guard *guard;
    int port; /* the bound port */
    bool quiesced;
    int lsock; /* the listening socket once quiesced (closed after MHD stops, as MHD asks) */
} trit_http_daemon;
typedef struct trit_http_callbacks {
    MHD_AccessHandlerCallback handler;
    MHD_RequestCompletedCallback completed; /* must call trit_http_request_done */
    void *(*uri_log)(void *cls, const char *uri, struct MHD_Connection *c); /* optional: sees
                                                                             * the raw target */
    void *cls;
} trit_http_callbacks;
/* Listen on host:port (IPv4; port 0: any free port) with limits l; -1 with err. */
int trit_http_start(trit_http_daemon *hd, const char *host, int port, const trit_http_limits *l,
                    const trit_http_callbacks *cb, trit_err *err);
/* Stop accepting (the listening socket is closed); connections in flight go on. */
void trit_http_quiesce(trit_http_daemon *hd);
/* Stop the daemon and the guard; every connection is closed. */
void trit_http_stop(trit_http_daemon *hd);

#endif
