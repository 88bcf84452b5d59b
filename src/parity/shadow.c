/* parity/shadow.c — the live shadow proxy (see shadow.h). One MHD thread per connection streams
 * gen-1's answer through a pipe fed by one gen-1 thread per request; one worker thread replays
 * completions to gen-2, compares and writes the ledger. Every thread started here is counted
 * and waited for before trit_shadow_run returns. */
#include "parity/shadow.h"

#include "client/client.h"
#include "http/http.h"
#include "parity/dashboard.h"
#include "parity/parity.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define QUEUE_BYTES_MAX ((size_t)256 << 20) /* request + gen-1 reply bytes waiting for gen-2 */

/* Tests and embedders stop the proxy the way a signal does (base's stop request). */
void trit_shadow_request_stop(void) {
    trit_stop_request();
}

/* The proxy's defaults (shadow.h): loopback, 1 MiB bodies, 16 MiB replies kept. */
void trit_shadow_opts_default(trit_shadow_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->queue_max = 64;
    o->max_body = (size_t)1 << 20;
    o->max_reply = (size_t)16 << 20;
    o->timeout_s = 600;
    o->grace_s = 5;
    o->tie_eps = TRIT_TIE_EPS_DEFAULT;
}

/* ======================= the request path's pure checks ======================= */

/* A hex digit of a percent-escape, or -1. */
static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* RFC 3986 pchar minus '@' and '%' (escapes are checked separately) plus '/'. */
static bool path_char(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c && strchr("-._~!$&'()*+,;=:/", c) != NULL;
}

/* Fill why with a refusal naming the offset, and return the status. */
static int refuse(char *why, size_t why_sz, int status, const char *msg, size_t at) {
    snprintf(why, why_sz, "%s (request-target byte %zu)", msg, at);
    return status;
}

/* The request-target, byte by byte: origin-form only, so the upstream host can never come
 * from the client. */
int trit_shadow_check_target(const char *target, trit_shadow_target *t, char *why, size_t why_sz) {
    memset(t, 0, sizeof *t);
    size_t n = strlen(target);
    if (n > TRIT_SHADOW_MAX_TARGET) {
        snprintf(why, why_sz, "request-target is %zu bytes; at most %d are accepted", n,
                 TRIT_SHADOW_MAX_TARGET);
        return 414;
    }
    /* origin-form only: absolute-form ("http://h/"), authority-form ("h:1"), asterisk-form
     * and anything else that is not a path would let the target choose the upstream host */
    if (n == 0 || target[0] != '/')
        return refuse(why, why_sz, 400, "only origin-form request-targets (\"/path\") are proxied",
                      0);
    size_t i = 0;
    size_t seg = 0; /* start of the current path segment */
    for (; i < n && target[i] != '?'; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c == '/') {
            /* an empty segment ("//host") or a dot segment can change what the URL means */
            if (i > 0 && i == seg)
                return refuse(why, why_sz, 400, "empty path segment (\"//\") refused", i);
            size_t len = i - seg;
            if (i > 0 && ((len == 1 && target[seg] == '.') ||
                          (len == 2 && target[seg] == '.' && target[seg + 1] == '.')))
                return refuse(why, why_sz, 400, "dot segment refused", seg);
            seg = i + 1;
            continue;
        }
        if (c == '%') {
            /* an escape must be well formed and must not hide a byte the raw check refuses */
            int hi = i + 2 < n ? hexval(target[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(target[i + 2]) : -1;
            if (hi < 0 || lo < 0) return refuse(why, why_sz, 400, "malformed percent-escape", i);
            int v = hi * 16 + lo;
            if (v < 0x20 || v > 0x7e || strchr("/\\@%.?#", v))
                return refuse(why, why_sz, 400,
                              "percent-escape of a control byte or of / \\ @ % . ? # refused", i);
            i += 2;
            continue;
        }
        if (c == '@') return refuse(why, why_sz, 400, "'@' in the path refused", i);
        if (c == '\\') return refuse(why, why_sz, 400, "backslash in the path refused", i);
        if (c < 0x20 || c == 0x7f) return refuse(why, why_sz, 400, "control byte refused", i);
        if (!path_char(c)) return refuse(why, why_sz, 400, "byte not allowed in a path", i);
    }
    size_t len = i - seg; /* the last segment */
    if ((len == 1 && target[seg] == '.') ||
        (len == 2 && target[seg] == '.' && target[seg + 1] == '.'))
        return refuse(why, why_sz, 400, "dot segment refused", seg);
    t->path = target;
    t->path_len = i;
    if (i == n) return 0;
    size_t q0 = i + 1;
    for (size_t k = q0; k < n; k++) {
        unsigned char c = (unsigned char)target[k];
        if (c < 0x21 || c > 0x7e)
            return refuse(why, why_sz, 400, "control, space or non-ASCII byte in the query", k);
        if (c == '#' || c == '\\')
            return refuse(why, why_sz, 400, "'#' or backslash in the query refused", k);
        if (c == '%' && (k + 2 >= n || hexval(target[k + 1]) < 0 || hexval(target[k + 2]) < 0))
            return refuse(why, why_sz, 400, "malformed percent-escape in the query", k);
    }
    t->query = target + q0;
    t->query_len = n - q0;
    return 0;
}

/* A forwarded header value: no control bytes (header injection), bounded size. */
int trit_shadow_check_header(const char *name, const char *value, char *why, size_t why_sz) {
    size_t n = strlen(value);
    if (n > TRIT_SHADOW_MAX_HEADER) {
        snprintf(why, why_sz, "header %s is %zu bytes; at most %d are forwarded", name, n,
                 TRIT_SHADOW_MAX_HEADER);
        return 431;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        /* CR/LF would start a new header line upstream (header injection) */
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            snprintf(why, why_sz, "header %s has a control byte 0x%02x at byte %zu", name, c, i);
            return 400;
        }
    }
    return 0;
}

/* Parse base with libcurl's URL parser; fills u. 0 or -1 with why. */
static int parse_base(const char *base, CURLU *u, char *why, size_t why_sz) {
    if (strncasecmp(base, "http://", 7) != 0 && strncasecmp(base, "https://", 8) != 0) {
        snprintf(why, why_sz, "'%s' is not an http:// or https:// URL", base);
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK) {
        snprintf(why, why_sz, "'%s' is not a valid URL", base);
        return -1;
    }
    char *part = NULL;
    /* user info would be sent upstream; query and fragment would mix with the client's */
    const struct {
        CURLUPart p;
        const char *name;
    } no[] = {{CURLUPART_USER, "user info"},
              {CURLUPART_PASSWORD, "a password"},
              {CURLUPART_QUERY, "a query"},
              {CURLUPART_FRAGMENT, "a fragment"}};
    for (size_t k = 0; k < TRIT_ARRAY_LEN(no); k++)
        if (curl_url_get(u, no[k].p, &part, 0) == CURLUE_OK) {
            curl_free(part);
            snprintf(why, why_sz, "'%s' has %s; give only scheme://host[:port][/path]", base,
                     no[k].name);
            return -1;
        }
    if (curl_url_get(u, CURLUPART_HOST, &part, 0) != CURLUE_OK) {
        snprintf(why, why_sz, "'%s' has no host", base);
        return -1;
    }
    curl_free(part);
    return 0;
}

/* An upstream base URL given on the command line, checked once at start. */
int trit_shadow_check_base(const char *base, char *why, size_t why_sz) {
    CURLU *u = curl_url();
    int rc = parse_base(base, u, why, why_sz);
    curl_url_cleanup(u);
    return rc;
}

/* The URL a request goes to: the configured base's scheme, host and port, always. */
char *trit_shadow_upstream_url(const char *base, const trit_shadow_target *t, char *why,
                               size_t why_sz) {
    CURLU *u = curl_url();
    char *out = NULL, *bpath = NULL;
    if (parse_base(base, u, why, why_sz)) goto done;
    /* the path is the base's own path joined with the validated one: the host, port and
     * scheme never come from the request */
    trit_buf p = {0};
    if (curl_url_get(u, CURLUPART_PATH, &bpath, 0) == CURLUE_OK && bpath) {
        size_t bl = strlen(bpath);
        while (bl && bpath[bl - 1] == '/') bl--;
        trit_buf_append(&p, bpath, bl);
    }
    trit_buf_append(&p, t->path, t->path_len);
    CURLUcode rc = curl_url_set(u, CURLUPART_PATH, p.p, 0);
    trit_buf_free(&p);
    if (rc == CURLUE_OK) {
        trit_buf q = {0};
        if (t->query) trit_buf_append(&q, t->query, t->query_len);
        rc = curl_url_set(u, CURLUPART_QUERY, t->query ? q.p : NULL, 0);
        trit_buf_free(&q);
    }
    if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_URL, &out, 0);
    if (rc != CURLUE_OK) snprintf(why, why_sz, "cannot build the upstream URL (%d)", (int)rc);
done:
    curl_free(bpath);
    curl_url_cleanup(u);
    if (!out) return NULL;
    char *r = xstrdup(out); /* callers free() it */
    curl_free(out);
    return r;
}

/* ======================= the proxy ======================= */

/* Append without aborting on out-of-memory (bodies and replies are client-sized). */
static int buf_try_append(trit_buf *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

/* ---- one upstream call's outcome ---- */
typedef struct upstream {
    CURLcode rc;
    char errbuf[CURL_ERROR_SIZE];
    long status;
    char ctype[128];
    trit_buf body;
    bool truncated; /* over max_reply (or out of memory): body is incomplete */
    double latency;
} upstream;

/* a copy for gen-2, and gen-1's answer to compare with */
typedef struct job {
    struct job *next;
    char *target; /* validated request-target (path + query) */
    char *auth;   /* Authorization to send to gen-2, or NULL */
    trit_buf req;
    bool is_chat;
    upstream gen1;
    double ts;
} job;

typedef struct proxy {
    trit_shadow_opts *o;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* queue changes and gen-1 threads ending */
    job *head, *tail;
    int queued;
    size_t queued_bytes;
    bool closing;         /* no new copies; the worker ends when the queue is empty */
    int live;             /* gen-1 threads running */
    atomic_bool aborting; /* grace is over: every upstream transfer stops now */
    trit_ledger *ledger;
    int64_t next_round;
    /* each side's identity (worker thread only, after the start): gen-1 is read without a
     * key (the shadow has none of its own for it), gen-2 with gen2_key */
    trit_ident_track ident[2];
    int64_t ident_read_round; /* round of the last periodic read */
    atomic_long forwarded, mirrored, dropped, compared, gen1_errors, refused;
    trit_http_daemon hd; /* http's intake: daemon, guard (deadlines, body budgets) */
    trit_http_intake in; /* its checks: Host, no Origin, key, body size */
    trit_dash *dash;     /* /parity: the dashboard over the ledger (NULL without one) */
} proxy;

/* a job's memory goes back */
static void job_free(job *j) {
    free(j->target), free(j->auth);
    trit_buf_free(&j->req);
    trit_buf_free(&j->gen1.body);
    free(j);
}

/* curl's progress callback: nonzero aborts the transfer once the grace period is over */
static int abort_check(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    (void)a, (void)b, (void)c, (void)d;
    proxy *px = ud;
    return atomic_load(&px->aborting) ? 1 : 0;
}

/* options every upstream transfer shares: timeouts, no signals, abort at shutdown */
static void common_opts(proxy *px, CURL *h, upstream *u) {
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, u->errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(px->o->timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(TRIT_MIN(px->o->timeout_s, 10.0) * 1000));
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, abort_check);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, px);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is passed to the client */
}

/* ---- gen-1 call streamed to the client ---- */
typedef struct stream {
    proxy *px;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int rfd, wfd;
    bool headers, done, client_gone;
    char method[16];
    char *url, *target, *auth, *ctype_req, *accept;
    trit_buf req;
    upstream up;
    double t0;
} stream;

/* Drop a reference to a stream; the last one frees it. */
static void stream_release(stream *s) {
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left) return;
    if (s->rfd >= 0) close(s->rfd);
    if (s->wfd >= 0) close(s->wfd);
    free(s->url), free(s->target), free(s->auth), free(s->ctype_req), free(s->accept);
    trit_buf_free(&s->req);
    trit_buf_free(&s->up.body);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* gen-1's status line and headers are in: the client's reply can start. */
static void headers_ready(stream *s, CURL *h) {
    pthread_mutex_lock(&s->mu);
    if (!s->headers) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->up.status);
        char *ct = NULL;
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(s->up.ctype, sizeof s->up.ctype, "%s", ct ? ct : "");
        s->headers = true;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

typedef struct {
    stream *s;
    CURL *h;
} wctx;

/* gen-1 bytes: to the client through the pipe, and (up to max_reply) kept for gen-2 */
static size_t on_gen1_data(char *p, size_t sz, size_t nm, void *ud) {
    wctx *w = ud;
    stream *s = w->s;
    size_t n = sz * nm;
    headers_ready(s, w->h);
    if (!s->up.truncated) {
        /* past the limit the comparison is abandoned, but the client still gets every byte */
        if (s->up.body.len + n > s->px->o->max_reply || buf_try_append(&s->up.body, p, n)) {
            s->up.truncated = true;
            trit_buf_free(&s->up.body);
        }
    }
    for (size_t off = 0; off < n && !s->client_gone;) {
        ssize_t k = write(s->wfd, p + off, n - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            s->client_gone = true; /* keep reading: the comparison still wants the answer */
            break;
        }
        off += (size_t)k;
    }
    return n;
}

/* The headers sent upstream: only these three (checked by trit_shadow_check_header). */
static struct curl_slist *req_headers(const char *auth, const char *ctype, const char *accept) {
    struct curl_slist *hl = NULL;
    trit_buf line = {0};
    if (auth) {
        trit_buf_printf(&line, "Authorization: %s", auth);
        hl = curl_slist_append(hl, line.p);
    }
    trit_buf_clear(&line);
    trit_buf_printf(&line, "Content-Type: %s", ctype ? ctype : "application/json");
    hl = curl_slist_append(hl, line.p);
    if (accept) {
        trit_buf_clear(&line);
        trit_buf_printf(&line, "Accept: %s", accept);
        hl = curl_slist_append(hl, line.p);
    }
    trit_buf_free(&line);
    hl = curl_slist_append(hl, "Expect:");
    return hl;
}

/* Which requests are copied to gen-2: the two completions routes. */
static bool mirrored_path(const char *target, bool *is_chat) {
    size_t n = strcspn(target, "?");
    const char *chat[] = {"/v1/chat/completions", "/chat/completions"};
    const char *cmpl[] = {"/v1/completions", "/completions"};
    *is_chat = false;
    for (int k = 0; k < 2; k++) {
        if (strlen(chat[k]) == n && !strncmp(target, chat[k], n)) return *is_chat = true;
        if (strlen(cmpl[k]) == n && !strncmp(target, cmpl[k], n)) return true;
    }
    return false;
}

/* A copy that will not be compared is counted, never silently lost. */
static void drop(proxy *px, job *j, const char *why) {
    atomic_fetch_add(&px->dropped, 1);
    if (!px->o->quiet) fprintf(stderr, "shadow: copy of %s dropped: %s\n", j->target, why);
    job_free(j);
}

/* A copy for gen-2 into the bounded queue (dropped when the queue or its bytes are full). */
static void enqueue(proxy *px, job *j) {
    size_t bytes = j->req.len + j->gen1.body.len;
    pthread_mutex_lock(&px->mu);
    const char *why = px->closing                                  ? "shutting down"
                      : px->queued >= px->o->queue_max             ? "gen-2 queue full"
                      : px->queued_bytes + bytes > QUEUE_BYTES_MAX ? "gen-2 queue bytes full"
                                                                   : NULL;
    if (why) {
        pthread_mutex_unlock(&px->mu);
        drop(px, j, why);
        return;
    }
    if (px->tail)
        px->tail->next = j;
    else
        px->head = j;
    px->tail = j;
    px->queued++;
    px->queued_bytes += bytes;
    atomic_fetch_add(&px->mirrored, 1);
    pthread_cond_broadcast(&px->cv);
    pthread_mutex_unlock(&px->mu);
}

/* After gen-1 answered: a completion becomes a job for gen-2 (the request and reply buffers
 * move into it: nothing is copied). */
static void mirror(proxy *px, stream *s) {
    bool is_chat;
    if (strcmp(s->method, "POST") != 0 || !mirrored_path(s->target, &is_chat)) return;
    job *j = xcalloc(1, sizeof *j);
    j->target = xstrdup(s->target);
    j->auth = px->o->gen2_key ? NULL : (px->o->forward_auth && s->auth ? xstrdup(s->auth) : NULL);
    j->req = s->req;
    s->req = (trit_buf){0};
    j->is_chat = is_chat;
    j->gen1 = s->up;
    s->up.body = (trit_buf){0};
    j->ts = trit_wall_s();
    if (j->gen1.truncated) {
        drop(px, j, "gen-1 reply over --max-reply");
        return;
    }
    enqueue(px, j);
}

/* One request's transfer to gen-1, its bytes into the client's pipe as they arrive. */
static void *gen1_thread(void *arg) {
    stream *s = arg;
    proxy *px = s->px;
    CURL *h = curl_easy_init();
    wctx w = {s, h};
    struct curl_slist *hl = req_headers(s->auth, s->ctype_req, s->accept);
    if (h) {
        curl_easy_setopt(h, CURLOPT_URL, s->url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_gen1_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
        common_opts(px, h, &s->up);
        if (!strcmp(s->method, "POST")) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->req.p ? s->req.p : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)s->req.len);
        } else if (!strcmp(s->method, "HEAD")) {
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (strcmp(s->method, "GET") != 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, s->method);
            if (s->req.len) {
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->req.p);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)s->req.len);
            }
        }
        s->up.rc = curl_easy_perform(h);
        if (s->up.rc == CURLE_OK) headers_ready(s, h); /* an empty body has no data callback */
    } else {
        s->up.rc = CURLE_OUT_OF_MEMORY;
    }
    s->up.latency = trit_now_s() - s->t0;
    curl_slist_free_all(hl);
    if (h) curl_easy_cleanup(h);
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    close(s->wfd);
    s->wfd = -1;
    if (s->up.rc != CURLE_OK) atomic_fetch_add(&px->gen1_errors, 1);
    mirror(px, s);
    stream_release(s);
    /* the last thing this thread does: trit_shadow_run waits for live == 0 */
    pthread_mutex_lock(&px->mu);
    px->live--;
    pthread_cond_broadcast(&px->cv);
    pthread_mutex_unlock(&px->mu);
    return NULL;
}

/* MHD's content reader: the client's reply bytes, from the pipe gen-1's thread fills. */
static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *s = cls;
    for (;;) {
        ssize_t n = read(s->rfd, buf, max);
        if (n > 0) return n;
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 && s->up.rc == CURLE_OK) return MHD_CONTENT_READER_END_OF_STREAM;
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

/* The client's reply is over (done or gone): gen-1's thread sees it and stops writing. */
static void reader_free(void *cls) {
    stream *s = cls;
    pthread_mutex_lock(&s->mu);
    s->client_gone = true;
    if (s->rfd >= 0) close(s->rfd); /* a writer blocked on a full pipe gets EPIPE */
    s->rfd = -1;
    pthread_mutex_unlock(&s->mu);
    stream_release(s);
}

/* per-connection state; created by the URI log callback, which sees the raw request-target */
typedef struct conn {
    char *target; /* raw, as sent (MHD percent-decodes the url it gives the handler) */
    bool checked;
    int refused; /* TRIT_HTTP_BODY_TOO_BIG / _BUSY once a body chunk was refused */
    bool oom, body_done;
    bool parity; /* a /parity route: answered by the dashboard, not forwarded */
    trit_buf body;
} conn;

/* MHD's URI callback: the request's state, made while the raw request-target is at hand. */
static void *uri_log(void *cls, const char *uri, struct MHD_Connection *c) {
    (void)cls, (void)c;
    conn *cn = xcalloc(1, sizeof *cn);
    cn->target = xstrdup(uri ? uri : "");
    return cn;
}

/* The proxy's own refusals, OpenAI-shaped ("code" is the status, as before); under memory
 * pressure http's fixed error body. */
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *type,
                                  const char *msg) {
    const unsigned long mark = trit_http_json_mark();
    json_t *o = json_pack("{s:{s:o,s:s,s:n,s:i}}", "error", "message",
                          trit_ledger_text_json(msg, strlen(msg)), "type", type, "param", "code",
                          (int)status);
    char *s = trit_http_dumps(o, mark);
    if (!s) s = trit_http_error_body(msg, type, NULL, NULL);
    return trit_http_queue(c, status, trit_http_response(status, "application/json", s));
}

/* An http intake refusal as the proxy's error reply (counted as refused). */
static enum MHD_Result send_refusal(proxy *px, struct MHD_Connection *c,
                                    const trit_http_refusal *r) {
    atomic_fetch_add(&px->refused, 1);
    return send_error(c, (unsigned)r->status, r->type, r->message);
}

/* A request header by name (case-insensitive). */
static const char *hdr(struct MHD_Connection *c, const char *name) {
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* First call for a request: everything that can be refused before reading the body. The
 * target is the proxy's own check; Host, Origin, key and size are http's intake. */
static enum MHD_Result check_request(proxy *px, struct MHD_Connection *c, conn *cn, const char *url,
                                     const char *method, const char *version) {
    char why[300];
    trit_shadow_target t;
    trit_http_refusal rf;
    int st = trit_shadow_check_target(cn->target, &t, why, sizeof why);
    if (st) {
        atomic_fetch_add(&px->refused, 1);
        return send_error(c, (unsigned)st, "invalid_request_error", why);
    }
    /* Host (DNS rebinding, once, present on HTTP/1.1) and browser pages: the proxy is not for
     * browsers, so any Origin (even a DNS-rebound page's: browsers send it on every POST) */
    if (trit_http_check_peer(c, version, &px->in, &rf)) return send_refusal(px, c, &rf);
    const char *names[] = {"Authorization", "Content-Type", "Accept"};
    for (size_t k = 0; k < TRIT_ARRAY_LEN(names); k++) {
        const char *v = hdr(c, names[k]);
        if (v && (st = trit_shadow_check_header(names[k], v, why, sizeof why))) {
            atomic_fetch_add(&px->refused, 1);
            return send_error(c, (unsigned)st, "invalid_request_error", why);
        }
    }
    /* like trit serve, GET (or HEAD) /health stays open so load balancers can probe without a
     * key; any other method on it needs the key like every other request */
    const bool health = (!strcmp(cn->target, "/health") || !strcmp(cn->target, "/v1/health")) &&
                        (!strcmp(method, "GET") || !strcmp(method, "HEAD"));
    /* /parity: the dashboard's page is open like /health (it holds no data), its API is not.
     * Judged on MHD's decoded path, the one the dashboard answers ("/parity/%61pi/" is api) */
    bool api = false;
    cn->parity = px->dash && trit_dash_route("/parity", url, &api);
    if (trit_http_check_entry(c, &px->in, !health && !(cn->parity && !api), &rf))
        return send_refusal(px, c, &rf);
    cn->checked = true;
    return MHD_YES;
}

/* A body chunk: counted in http's budgets (the request's, everyone's, this peer's share) and
 * kept without aborting on out-of-memory; a refused body is dropped and answered once
 * complete. */
static void take_body(proxy *px, struct MHD_Connection *c, conn *cn, const char *data, size_t n) {
    if (cn->refused || cn->oom) {
        trit_http_body_seen(px->hd.guard, c, n);
        return;
    }
    cn->refused = trit_http_take_body(px->hd.guard, c, cn->body.len, n);
    if (!cn->refused && buf_try_append(&cn->body, data, n)) cn->oom = true;
    if (cn->refused || cn->oom) trit_buf_free(&cn->body);
}

/* The request to gen-1 (its own thread, a pipe to this connection) and gen-1's answer back as
 * it arrives: status, Content-Type and bytes; 502 when gen-1 cannot be reached. */
static enum MHD_Result forward(proxy *px, struct MHD_Connection *c, conn *cn, const char *method) {
    char msg[400];
    trit_shadow_target t;
    trit_shadow_check_target(cn->target, &t, msg, sizeof msg); /* passed in check_request */
    char *upurl = trit_shadow_upstream_url(px->o->gen1_url, &t, msg, sizeof msg);
    if (!upurl) return send_error(c, 500, "server_error", msg);
    atomic_fetch_add(&px->forwarded, 1);
    stream *s = xcalloc(1, sizeof *s);
    int fds[2];
    if (pipe(fds) != 0) {
        free(s), free(upurl);
        return send_error(c, 503, "server_error", "shadow: cannot create a pipe");
    }
    s->px = px;
    s->rfd = fds[0], s->wfd = fds[1];
    s->refs = 2; /* gen-1 thread + the response (or this handler on failure) */
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(s->method, sizeof s->method, "%s", method);
    s->url = upurl;
    s->target = xstrdup(cn->target);
    const char *a = hdr(c, "Authorization"), *ct = hdr(c, "Content-Type"), *ac = hdr(c, "Accept");
    s->auth = a ? xstrdup(a) : NULL;
    s->ctype_req = ct ? xstrdup(ct) : NULL;
    s->accept = ac ? xstrdup(ac) : NULL;
    s->req = cn->body; /* moved, not copied */
    cn->body = (trit_buf){0};
    s->t0 = trit_now_s();
    pthread_mutex_lock(&px->mu);
    px->live++;
    pthread_mutex_unlock(&px->mu);
    pthread_t th;
    if (pthread_create(&th, NULL, gen1_thread, s) != 0) {
        pthread_mutex_lock(&px->mu);
        px->live--;
        pthread_cond_broadcast(&px->cv);
        pthread_mutex_unlock(&px->mu);
        s->refs = 1;
        stream_release(s);
        return send_error(c, 503, "server_error", "shadow: cannot start a thread");
    }
    pthread_detach(th); /* counted in px->live; trit_shadow_run waits for it */
    pthread_mutex_lock(&s->mu);
    while (!s->headers && !s->done) pthread_cond_wait(&s->cv, &s->mu);
    bool ok = s->headers;
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        snprintf(msg, sizeof msg, "shadow: primary %s unreachable: %s", px->o->gen1_url,
                 s->up.errbuf[0] ? s->up.errbuf : curl_easy_strerror(s->up.rc));
        pthread_mutex_lock(&s->mu);
        s->client_gone = true;
        pthread_mutex_unlock(&s->mu);
        stream_release(s);
        return send_error(c, 502, "proxy_error", msg);
    }
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, s, reader_free);
    if (!r) {
        reader_free(s);
        return MHD_NO;
    }
    if (s->up.ctype[0]) MHD_add_response_header(r, "Content-Type", s->up.ctype);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)s->up.status, r);
    MHD_destroy_response(r);
    return rc;
}

/* MHD's access handler: check the request, take its body, then forward it to gen-1. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    (void)version; /* url is percent-decoded: the raw target in cn is checked; the dashboard
                    * gets url (its routes have no escapes) */
    proxy *px = cls;
    conn *cn = *con_cls;
    if (!cn) return MHD_NO; /* the URI callback always runs first */
    if (!cn->checked) return check_request(px, c, cn, url, method, version);
    if (*upload_size) {
        /* a chunked body has no Content-Length: the limit is enforced as it arrives */
        take_body(px, c, cn, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!cn->body_done) trit_http_body_done(px->hd.guard, c);
    cn->body_done = true;
    char msg[400];
    if (cn->refused == TRIT_HTTP_BODY_TOO_BIG) {
        atomic_fetch_add(&px->refused, 1);
        snprintf(msg, sizeof msg, "request body exceeds %zu bytes", px->o->max_body);
        return send_error(c, 413, "invalid_request_error", msg);
    }
    if (cn->refused) {
        atomic_fetch_add(&px->refused, 1);
        return send_error(c, 503, "server_error",
                          "shadow: too many request bodies in flight (a quarter per client); "
                          "retry shortly");
    }
    if (cn->oom) return send_error(c, 503, "server_error", "shadow: out of memory for the body");
    if (cn->parity) return trit_dash_answer(px->dash, c, method, "/parity", url);
    return forward(px, c, cn, method);
}

/* MHD's end of a request: its body leaves http's budgets, its state is freed. */
static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)toe;
    proxy *px = cls;
    trit_http_request_done(px->hd.guard, c);
    conn *cn = *con_cls;
    if (!cn) return;
    trit_buf_free(&cn->body);
    free(cn->target);
    free(cn);
    *con_cls = NULL;
}

/* ======================= gen-2 side ======================= */

/* A stream's text: the deltas of every data event joined, and the finish reason. */
void trit_shadow_sse_text(const char *body, size_t n, bool is_chat, trit_buf *out, char *finish,
                          size_t finish_sz) {
    trit_buf_puts(out, "");
    if (finish_sz) finish[0] = 0;
    const char *p = body, *end = body + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le - p > 5 && !strncmp(p, "data:", 5)) {
            const char *d = p + 5;
            while (d < le && *d == ' ') d++;
            json_t *j = json_loadb(d, (size_t)(le - d), 0, NULL);
            json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
            json_t *t = is_chat ? json_object_get(json_object_get(ch, "delta"), "content")
                                : json_object_get(ch, "text");
            if (json_is_string(t))
                trit_buf_append(out, json_string_value(t), json_string_length(t));
            const char *fr = json_string_value(json_object_get(ch, "finish_reason"));
            if (fr && finish_sz) snprintf(finish, finish_sz, "%s", fr);
            json_decref(j);
        }
        p = le + 1;
    }
}

/* An upstream's answer as the comparison's input (SSE reassembled, errors kept). */
static void to_resp(const upstream *u, bool is_chat, trit_client_resp *r) {
    trit_client_resp_init(r);
    r->latency_s = u->latency;
    r->http_status = u->status;
    if (u->rc != CURLE_OK) {
        r->kind = u->rc == CURLE_OPERATION_TIMEDOUT ? TRIT_CLIENT_TIMEOUT
                  : (u->rc == CURLE_COULDNT_CONNECT || u->rc == CURLE_COULDNT_RESOLVE_HOST ||
                     u->rc == CURLE_GOT_NOTHING || u->rc == CURLE_RECV_ERROR)
                      ? TRIT_CLIENT_REFUSED
                      : TRIT_CLIENT_OTHER;
        snprintf(r->msg, sizeof r->msg, "%s", u->errbuf[0] ? u->errbuf : curl_easy_strerror(u->rc));
        return;
    }
    if (u->truncated) {
        r->kind = TRIT_CLIENT_OTHER;
        snprintf(r->msg, sizeof r->msg, "reply over the shadow's --max-reply limit");
        return;
    }
    const char *b = u->body.p ? u->body.p : "";
    if (u->status < 200 || u->status > 299) {
        r->kind = TRIT_CLIENT_HTTP_STATUS;
        snprintf(r->msg, sizeof r->msg, "%.200s", b);
        return;
    }
    if (strstr(u->ctype, "event-stream") || !strncmp(b, "data:", 5)) {
        trit_buf t = {0};
        trit_shadow_sse_text(b, u->body.len, is_chat, &t, r->finish_reason,
                             sizeof r->finish_reason);
        free(r->content);
        r->content = t.p;
        r->content_len = t.len;
        r->kind = TRIT_CLIENT_OK;
        return;
    }
    trit_client_parse_reply(b, u->body.len, is_chat, r);
    r->latency_s = u->latency;
}

typedef struct {
    upstream *u;
    size_t max;
} gen2_sink;

/* gen-2's reply bytes, bounded like gen-1's. */
static size_t on_gen2_data(char *p, size_t sz, size_t nm, void *ud) {
    gen2_sink *k = ud;
    size_t n = sz * nm;
    /* a reply over the limit ends the transfer (curl reports a write error) */
    if (k->u->body.len + n > k->max || buf_try_append(&k->u->body, p, n)) {
        k->u->truncated = true;
        return 0;
    }
    return n;
}

/* The same request to gen-2, with its own key and timeout. */
static void call_gen2(proxy *px, const job *j, upstream *u) {
    memset(u, 0, sizeof *u);
    trit_shadow_target t;
    char why[300];
    char *url = NULL;
    if (trit_shadow_check_target(j->target, &t, why, sizeof why) == 0)
        url = trit_shadow_upstream_url(px->o->gen2_url, &t, why, sizeof why);
    CURL *h = url ? curl_easy_init() : NULL;
    if (!h) {
        u->rc = CURLE_URL_MALFORMAT;
        snprintf(u->errbuf, sizeof u->errbuf, "%s", url ? "curl_easy_init failed" : why);
        free(url);
        return;
    }
    trit_buf auth = {0};
    if (px->o->gen2_key) trit_buf_printf(&auth, "Bearer %s", px->o->gen2_key);
    struct curl_slist *hl = req_headers(px->o->gen2_key ? auth.p : j->auth, NULL, NULL);
    gen2_sink sink = {u, px->o->max_reply};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->req.p ? j->req.p : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)j->req.len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_gen2_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    common_opts(px, h, u);
    double t0 = trit_now_s();
    u->rc = curl_easy_perform(h);
    u->latency = trit_now_s() - t0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &u->status);
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(u->ctype, sizeof u->ctype, "%s", ct ? ct : "");
    if (u->truncated) u->rc = CURLE_OK; /* to_resp reports the limit */
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    trit_buf_free(&auth);
    free(url);
}

/* The user-visible prompt of a request (for the report), and a stable id for it. */
static void prompt_of(const char *body, size_t n, bool is_chat, trit_buf *out) {
    json_t *j = json_loadb(body, n, 0, NULL);
    trit_buf_puts(out, "");
    if (!j) return;
    if (is_chat) {
        json_t *msgs = json_object_get(j, "messages");
        for (size_t i = 0; i < json_array_size(msgs); i++) {
            json_t *m = json_array_get(msgs, i);
            const char *c = json_string_value(json_object_get(m, "content"));
            const char *role = json_string_value(json_object_get(m, "role"));
            if (c) trit_buf_printf(out, "%s%s: %s", i ? "\n" : "", role ? role : "?", c);
        }
    } else {
        json_t *p = json_object_get(j, "prompt");
        if (json_is_string(p))
            trit_buf_append(out, json_string_value(p), json_string_length(p));
        else if (p) {
            /* token ids or any other JSON value: its text (a bare number needs ENCODE_ANY,
             * and json_dumps can still fail: NULL) */
            char *s = json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY);
            if (s) trit_buf_puts(out, s);
            free(s);
        }
    }
    json_decref(j);
}

/* Every this many rounds each side's identity is read again (burn-in's default too). */
#define SHADOW_IDENT_EVERY 100

/* Before a round's record: read a side's identity again when the side failed in this round
 * (it may come back as something else) or every SHADOW_IDENT_EVERY rounds; a changed digest
 * appends an "identity" record first (trit_ident_track_take). Worker thread only. */
static void idents_update(proxy *px, const trit_client_resp *r1, const trit_client_resp *r2) {
    if (!px->ledger) return;
    px->ident[0].stale |= r1->kind != TRIT_CLIENT_OK;
    px->ident[1].stale |= r2->kind != TRIT_CLIENT_OK;
    bool periodic = px->next_round - px->ident_read_round >= SHADOW_IDENT_EVERY;
    if (periodic) px->ident_read_round = px->next_round;
    for (int i = 0; i < 2; i++) {
        if (!periodic && !px->ident[i].stale) continue;
        trit_err err = {0};
        char why[160];
        json_t *fresh =
            trit_ident_track_read(&px->ident[i], TRIT_MIN(px->o->timeout_s, 60.0), why, sizeof why);
        if (trit_ident_track_take(&px->ident[i], fresh, why, px->ledger, false, px->o->quiet, &err))
            fprintf(stderr, "shadow: ledger: %s\n", err.msg);
    }
}

/* One copy: ask gen-2, compare, append the round record (trit_ledger_round_json). */
static void process(proxy *px, job *j) {
    upstream gen2;
    call_gen2(px, j, &gen2);
    trit_client_resp r1, r2;
    to_resp(&j->gen1, j->is_chat, &r1);
    to_resp(&gen2, j->is_chat, &r2);
    trit_compare cmp;
    trit_compare_resps(&r1, &r2, px->o->tie_eps, &cmp);
    trit_buf prompt = {0};
    prompt_of(j->req.p ? j->req.p : "", j->req.len, j->is_chat, &prompt);
    char pid[32];
    snprintf(pid, sizeof pid, "sh-%016llx",
             (unsigned long long)trit_hash64(prompt.p ? prompt.p : "", prompt.len));
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)strcspn(j->target, "?"), j->target);
    idents_update(px, &r1, &r2);
    trit_round_meta m = {
        .source = "shadow",
        .ts = j->ts,
        .round = px->next_round++,
        .prompt_id = pid,
        .category = j->is_chat ? "shadow-chat" : "shadow-completions",
        .endpoint = j->is_chat ? "chat" : "completions",
        .gen1_url = px->o->gen1_url,
        .gen1_model = r1.model,
        .gen2_url = px->o->gen2_url,
        .gen2_model = r2.model,
        .gen1_ident = px->ident[0].ident,
        .gen2_ident = px->ident[1].ident,
    };
    json_t *rec = trit_ledger_round_json(&m, &r1, &r2, &cmp);
    json_object_set_new(rec, "path", json_string(path));
    json_object_set_new(rec, "status_v1", json_integer(j->gen1.status));
    json_object_set_new(rec, "status_v2", json_integer(gen2.status));
    json_object_set_new(rec, "dropped", json_integer(atomic_load(&px->dropped)));
    json_object_set_new(rec, "prompt",
                        trit_ledger_text_json(prompt.p, TRIT_MIN(prompt.len, (size_t)4000)));
    trit_err err = {0};
    if (px->ledger && trit_ledger_append(px->ledger, rec, &err))
        fprintf(stderr, "shadow: ledger: %s\n", err.msg);
    json_decref(rec);
    atomic_fetch_add(&px->compared, 1);
    if (!px->o->quiet)
        fprintf(stderr, "shadow: %s %-14s gen-1 %.0f ms, gen-2 %.0f ms%s%s\n", path,
                trit_bucket_name(cmp.bucket), 1000 * r1.latency_s, 1000 * r2.latency_s,
                cmp.cause[0] ? " — " : "", cmp.cause);
    trit_buf_free(&prompt);
    trit_client_resp_free(&r1);
    trit_client_resp_free(&r2);
    trit_buf_free(&gen2.body);
}

/* The one gen-2 worker: copies from the queue, compared and recorded in order. */
static void *worker(void *arg) {
    proxy *px = arg;
    for (;;) {
        pthread_mutex_lock(&px->mu);
        while (!px->head && !px->closing) pthread_cond_wait(&px->cv, &px->mu);
        job *j = px->head;
        if (!j) { /* closing and drained */
            pthread_mutex_unlock(&px->mu);
            return NULL;
        }
        px->head = j->next;
        if (!px->head) px->tail = NULL;
        px->queued--;
        px->queued_bytes -= j->req.len + j->gen1.body.len;
        pthread_mutex_unlock(&px->mu);
        /* after the grace period the rest of the queue is dropped, not compared */
        if (atomic_load(&px->aborting))
            drop(px, j, "shutdown grace period over");
        else {
            process(px, j);
            job_free(j);
        }
    }
}

/* The ledger's highest round, so that rounds continue after a restart. */
static int max_round_cb(void *ud, const trit_ledger_rec *rec, const char *line, size_t len) {
    (void)ud, (void)rec, (void)line, (void)len;
    return 0;
}

/* Wait on px->cv until pred holds or the deadline (monotonic seconds) passes. */
static bool wait_until(proxy *px, bool (*pred)(proxy *), double deadline) {
    pthread_mutex_lock(&px->mu);
    while (!pred(px) && trit_now_s() < deadline) {
        pthread_mutex_unlock(&px->mu);
        usleep(20 * 1000);
        pthread_mutex_lock(&px->mu);
    }
    bool ok = pred(px);
    pthread_mutex_unlock(&px->mu);
    return ok;
}
/* Shutdown predicate: every gen-1 transfer has ended. */
static bool no_gen1_threads(proxy *px) {
    return px->live == 0;
}
/* Shutdown predicate: every queued copy has been compared or dropped. */
static bool queue_empty(proxy *px) {
    return px->head == NULL;
}

/* With a ledger: open (and so lock) it first, then find the next round: no other writer can
 * append in between, and a second writer is refused by trit_ledger_open; then each side's
 * identity opens the run's records (unknown ones too). On failure nothing is left open. */
static int shadow_open_ledger(proxy *px, trit_err *err) {
    const trit_shadow_opts *o = px->o;
    if (!(px->ledger = trit_ledger_open(o->ledger_path, err))) return -1;
    trit_ledger_scan_info info = {0};
    if (trit_ledger_scan(o->ledger_path, max_round_cb, NULL, o->quiet, &info, err)) {
        trit_ledger_close(px->ledger);
        return -1;
    }
    px->next_round = info.max_round + 1; /* -1 + 1 = 0 for a new ledger */
    px->ident[0] = (trit_ident_track){.side = "v1", .url = o->gen1_url};
    px->ident[1] = (trit_ident_track){.side = "v2", .url = o->gen2_url, .key = o->gen2_key};
    px->ident_read_round = px->next_round;
    for (int i = 0; i < 2; i++) {
        char why[160];
        json_t *fresh =
            trit_ident_track_read(&px->ident[i], TRIT_MIN(o->timeout_s, 60.0), why, sizeof why);
        if (trit_ident_track_take(&px->ident[i], fresh, why, px->ledger, true, o->quiet, err)) {
            trit_ident_track_free(&px->ident[0]);
            trit_ident_track_free(&px->ident[1]);
            trit_ledger_close(px->ledger);
            return -1;
        }
    }
    return 0;
}

/* The listening proxy announces itself and serves until SIGINT/SIGTERM or a stop request
 * (trit_wait_for_stop); then the bounded shutdown starts. */
static void shadow_serve_until_stopped(const trit_shadow_opts *o) {
    if (!o->quiet)
        fprintf(stderr, "shadow: listening on http://%s:%d  primary %s  candidate %s  ledger %s\n",
                o->host, o->bound_port, o->gen1_url, o->gen2_url,
                o->ledger_path ? o->ledger_path : "(none)");
    trit_wait_for_stop();
}

/* Shutdown, bounded: in-flight gen-1 calls and the gen-2 queue get grace_s; then every
 * transfer is aborted (progress callback), which ends the connections, the gen-1 threads
 * and the worker wt within about a second; the ledger and identities are closed last. */
static void shadow_shutdown(proxy *px, bool listening, pthread_t wt) {
    double deadline = trit_now_s() + px->o->grace_s;
    if (listening) {
        trit_http_quiesce(&px->hd);
        wait_until(px, no_gen1_threads, deadline);
        wait_until(px, queue_empty, deadline);
    }
    atomic_store(&px->aborting, true);
    trit_http_stop(&px->hd);
    wait_until(px, no_gen1_threads, trit_now_s() + 3600); /* each ends within ~1 s now */
    pthread_mutex_lock(&px->mu);
    px->closing = true;
    pthread_cond_broadcast(&px->cv);
    pthread_mutex_unlock(&px->mu);
    pthread_join(wt, NULL);
    trit_ledger_close(px->ledger);
    trit_ident_track_free(&px->ident[0]);
    trit_ident_track_free(&px->ident[1]);
}

/* The run's counts into *counts (when asked) and, after a run that listened, one summary
 * line. */
static void shadow_report(proxy *px, bool listening, trit_shadow_counts *counts) {
    trit_shadow_counts c = {atomic_load(&px->forwarded),   atomic_load(&px->mirrored),
                            atomic_load(&px->dropped),     atomic_load(&px->compared),
                            atomic_load(&px->gen1_errors), atomic_load(&px->refused)};
    if (counts) *counts = c;
    if (!px->o->quiet && listening)
        fprintf(stderr,
                "shadow: stopped: %ld forwarded, %ld copied to the candidate, %ld compared, %ld "
                "dropped, %ld primary errors, %ld refused\n",
                c.forwarded, c.mirrored, c.compared, c.dropped, c.gen1_errors, c.refused);
}

/* The proxy: ledger and identities, then the intake, until stopped; shutdown is bounded. */
int trit_shadow_run(trit_shadow_opts *o, trit_shadow_counts *counts, trit_err *err) {
    if (!o->gen1_url || !o->gen2_url)
        return trit_fail(err, TRIT_EINVAL, "shadow needs a primary and a candidate URL");
    char why[300];
    if (trit_shadow_check_base(o->gen1_url, why, sizeof why) ||
        trit_shadow_check_base(o->gen2_url, why, sizeof why))
        return trit_fail(err, TRIT_EINVAL, "%s", why);
    const trit_http_door door = {.who = "trit shadow",
                                 .host = o->host,
                                 .api_key = o->api_key,
                                 .key_env = "TRIT_API_KEY",
                                 .insecure_no_key = o->insecure_no_key};
    if (trit_http_door_check(&door, err)) return -1;
    proxy px = {0};
    px.o = o;
    pthread_mutex_init(&px.mu, NULL);
    pthread_cond_init(&px.cv, NULL);
    if (o->ledger_path && shadow_open_ledger(&px, err)) return -1;
    if (o->ledger_path)
        px.dash = trit_dash_new(&(trit_dash_opts){.ledgers = &o->ledger_path, .n_ledgers = 1});
    px.in = (trit_http_intake){.bound = o->host,
                               .loopback = trit_http_is_loopback(o->host),
                               .host_allow = o->host_allow,
                               .no_origin = true,
                               .api_key = o->api_key,
                               .max_body = o->max_body};
    trit_http_limits lim;
    trit_http_limits_default(&lim);
    lim.max_body = o->max_body;
    lim.max_conns = 256;
    lim.idle_timeout_s = 900;
    lim.reuse_port = true;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t wt;
    pthread_create(&wt, NULL, worker, &px);
    const trit_http_callbacks cb = {
        .handler = handler, .completed = completed, .uri_log = uri_log, .cls = &px};
    const bool listening = !trit_http_start(&px.hd, o->host, o->port, &lim, &cb, err);
    int rc = 0;
    if (!listening) {
        rc = -1;
    } else {
        o->bound_port = px.hd.port;
        shadow_serve_until_stopped(o);
    }
    shadow_shutdown(&px, listening, wt);
    shadow_report(&px, listening, counts);
    trit_dash_free(px.dash);
    pthread_mutex_destroy(&px.mu);
    pthread_cond_destroy(&px.cv);
    return rc;
}
