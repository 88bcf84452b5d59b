/* parity/shadow.c — the live shadow proxy (see shadow.h). One MHD thread per connection streams
 * the primary's answer through a pipe; one worker thread replays completions to the candidate,
 * compares and writes the ledger. */
#include "parity/shadow.h"

#include "client/client.h"
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
#include <unistd.h>

static volatile sig_atomic_t stop_flag;
void trit_shadow_request_stop(void) {
    stop_flag = 1;
}
static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

void trit_shadow_opts_default(trit_shadow_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->queue_max = 64;
    o->timeout_s = 600;
    o->tie_eps = TRIT_TIE_EPS_DEFAULT;
}

/* ---- one upstream call's outcome ---- */
typedef struct upstream {
    CURLcode rc;
    char errbuf[CURL_ERROR_SIZE];
    long status;
    char ctype[128];
    trit_buf body;
    double latency;
} upstream;

/* a copy for the candidate, and the primary's answer to compare with */
typedef struct job {
    struct job *next;
    char *path, *auth;
    trit_buf req;
    bool is_chat;
    upstream prim;
    double ts;
} job;

typedef struct proxy {
    trit_shadow_opts *o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    int queued;
    bool closing;
    trit_ledger *ledger;
    int64_t next_round;
    atomic_long forwarded, mirrored, dropped, compared, primary_errors;
} proxy;

/* ---- primary call streamed to the client ---- */
typedef struct stream {
    proxy *px;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int rfd, wfd;
    bool headers, done, client_gone;
    char method[16];
    char *url, *path, *auth, *ctype_req, *accept;
    trit_buf req;
    upstream up;
    double t0;
} stream;

static void stream_release(stream *s) {
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left) return;
    if (s->rfd >= 0) close(s->rfd);
    if (s->wfd >= 0) close(s->wfd);
    free(s->url), free(s->path), free(s->auth), free(s->ctype_req), free(s->accept);
    trit_buf_free(&s->req);
    trit_buf_free(&s->up.body);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

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

static size_t on_primary_data(char *p, size_t sz, size_t nm, void *ud) {
    wctx *w = ud;
    stream *s = w->s;
    size_t n = sz * nm;
    headers_ready(s, w->h);
    trit_buf_append(&s->up.body, p, n);
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

static struct curl_slist *req_headers(const char *auth, const char *ctype, const char *accept) {
    struct curl_slist *hl = NULL;
    char line[1024];
    if (auth) {
        snprintf(line, sizeof line, "Authorization: %s", auth);
        hl = curl_slist_append(hl, line);
    }
    snprintf(line, sizeof line, "Content-Type: %s", ctype ? ctype : "application/json");
    hl = curl_slist_append(hl, line);
    if (accept) {
        snprintf(line, sizeof line, "Accept: %s", accept);
        hl = curl_slist_append(hl, line);
    }
    hl = curl_slist_append(hl, "Expect:");
    return hl;
}

static bool mirrored_path(const char *path, bool *is_chat) {
    *is_chat = !strcmp(path, "/v1/chat/completions") || !strcmp(path, "/chat/completions");
    return *is_chat || !strcmp(path, "/v1/completions") || !strcmp(path, "/completions");
}

static void enqueue(proxy *px, job *j) {
    pthread_mutex_lock(&px->mu);
    if (px->queued >= px->o->queue_max || px->closing) {
        pthread_mutex_unlock(&px->mu);
        atomic_fetch_add(&px->dropped, 1);
        if (!px->o->quiet)
            fprintf(stderr, "shadow: candidate queue full; copy of %s dropped\n", j->path);
        free(j->path), free(j->auth);
        trit_buf_free(&j->req);
        trit_buf_free(&j->prim.body);
        free(j);
        return;
    }
    if (px->tail)
        px->tail->next = j;
    else
        px->head = j;
    px->tail = j;
    px->queued++;
    atomic_fetch_add(&px->mirrored, 1);
    pthread_cond_signal(&px->cv);
    pthread_mutex_unlock(&px->mu);
}

static void *primary_thread(void *arg) {
    stream *s = arg;
    proxy *px = s->px;
    CURL *h = curl_easy_init();
    wctx w = {s, h};
    struct curl_slist *hl = req_headers(s->auth, s->ctype_req, s->accept);
    curl_easy_setopt(h, CURLOPT_URL, s->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_primary_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->up.errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(px->o->timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    if (!strcmp(s->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->req.p ? s->req.p : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)s->req.len);
    } else if (strcmp(s->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, s->method);
        if (s->req.len) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->req.p);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)s->req.len);
        }
    }
    s->up.rc = curl_easy_perform(h);
    if (s->up.rc == CURLE_OK) headers_ready(s, h); /* an empty body has no data callback */
    s->up.latency = trit_now_s() - s->t0;
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    close(s->wfd);
    s->wfd = -1;
    if (s->up.rc != CURLE_OK) atomic_fetch_add(&px->primary_errors, 1);
    bool is_chat;
    if (!strcmp(s->method, "POST") && mirrored_path(s->path, &is_chat)) {
        job *j = xcalloc(1, sizeof *j);
        j->path = xstrdup(s->path);
        j->auth = s->px->o->api_key ? NULL : (s->auth ? xstrdup(s->auth) : NULL);
        trit_buf_append(&j->req, s->req.p ? s->req.p : "", s->req.len);
        j->is_chat = is_chat;
        j->prim = s->up;
        j->prim.body = (trit_buf){0};
        trit_buf_append(&j->prim.body, s->up.body.p ? s->up.body.p : "", s->up.body.len);
        j->ts = trit_wall_s();
        enqueue(px, j);
    }
    stream_release(s);
    return NULL;
}

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

static void reader_free(void *cls) {
    stream *s = cls;
    pthread_mutex_lock(&s->mu);
    s->client_gone = true;
    if (s->rfd >= 0) close(s->rfd); /* a writer blocked on a full pipe gets EPIPE */
    s->rfd = -1;
    pthread_mutex_unlock(&s->mu);
    stream_release(s);
}

typedef struct conn {
    trit_buf body;
} conn;

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg) {
    json_t *o = json_pack("{s:{s:s,s:s,s:i}}", "error", "message", msg, "type", "proxy_error",
                          "code", (int)status);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static const char *hdr(struct MHD_Connection *c, const char *name) {
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    (void)version;
    proxy *px = cls;
    conn *cn = *con_cls;
    if (!cn) {
        cn = xcalloc(1, sizeof *cn);
        *con_cls = cn;
        return MHD_YES;
    }
    if (*upload_size) {
        trit_buf_append(&cn->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&px->forwarded, 1);
    stream *s = xcalloc(1, sizeof *s);
    int fds[2];
    if (pipe(fds) != 0) {
        free(s);
        return send_error(c, 500, "shadow: cannot create a pipe");
    }
    s->px = px;
    s->rfd = fds[0], s->wfd = fds[1];
    s->refs = 2; /* primary thread + the response (or this handler on failure) */
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(s->method, sizeof s->method, "%s", method);
    s->path = xstrdup(url);
    trit_buf u = {0};
    const char *base = px->o->primary;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    trit_buf_append(&u, base, bl);
    trit_buf_puts(&u, url);
    s->url = u.p;
    const char *a = hdr(c, "Authorization"), *ct = hdr(c, "Content-Type"), *ac = hdr(c, "Accept");
    s->auth = a ? xstrdup(a) : NULL;
    s->ctype_req = ct ? xstrdup(ct) : NULL;
    s->accept = ac ? xstrdup(ac) : NULL;
    trit_buf_append(&s->req, cn->body.p ? cn->body.p : "", cn->body.len);
    s->t0 = trit_now_s();
    pthread_t th;
    if (pthread_create(&th, NULL, primary_thread, s) != 0) {
        s->refs = 1;
        stream_release(s);
        return send_error(c, 500, "shadow: cannot start a thread");
    }
    pthread_detach(th);
    pthread_mutex_lock(&s->mu);
    while (!s->headers && !s->done) pthread_cond_wait(&s->cv, &s->mu);
    bool ok = s->headers;
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        char msg[400];
        snprintf(msg, sizeof msg, "shadow: primary %s unreachable: %s", px->o->primary,
                 s->up.errbuf[0] ? s->up.errbuf : curl_easy_strerror(s->up.rc));
        s->client_gone = true;
        stream_release(s);
        return send_error(c, 502, msg);
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

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    conn *cn = *con_cls;
    if (!cn) return;
    trit_buf_free(&cn->body);
    free(cn);
    *con_cls = NULL;
}

/* ---- candidate side ---- */

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

static size_t on_cand_data(char *p, size_t sz, size_t nm, void *ud) {
    trit_buf_append(ud, p, sz * nm);
    return sz * nm;
}

static void call_candidate(proxy *px, const job *j, upstream *u) {
    memset(u, 0, sizeof *u);
    trit_buf url = {0};
    const char *base = px->o->candidate;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    trit_buf_append(&url, base, bl);
    trit_buf_puts(&url, j->path);
    char auth[600];
    if (px->o->api_key) snprintf(auth, sizeof auth, "Bearer %s", px->o->api_key);
    struct curl_slist *hl = req_headers(px->o->api_key ? auth : j->auth, NULL, NULL);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url.p);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->req.p ? j->req.p : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)j->req.len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_cand_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &u->body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, u->errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(px->o->timeout_s * 1000));
    double t0 = trit_now_s();
    u->rc = curl_easy_perform(h);
    u->latency = trit_now_s() - t0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &u->status);
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(u->ctype, sizeof u->ctype, "%s", ct ? ct : "");
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    trit_buf_free(&url);
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
            char *s = json_dumps(p, JSON_COMPACT);
            trit_buf_puts(out, s);
            free(s);
        }
    }
    json_decref(j);
}

static int ntok(const trit_client_resp *r) {
    return r->completion_tokens >= 0 ? r->completion_tokens : r->n_tokens;
}

static void process(proxy *px, job *j) {
    upstream cand;
    call_candidate(px, j, &cand);
    trit_client_resp r1, r2;
    to_resp(&j->prim, j->is_chat, &r1);
    to_resp(&cand, j->is_chat, &r2);
    trit_compare cmp;
    trit_compare_resps(&r1, &r2, px->o->tie_eps, &cmp);
    trit_buf prompt = {0};
    prompt_of(j->req.p ? j->req.p : "", j->req.len, j->is_chat, &prompt);
    char pid[32], h1[17], h2[17], iso[32];
    snprintf(pid, sizeof pid, "sh-%016llx",
             (unsigned long long)trit_hash64(prompt.p ? prompt.p : "", prompt.len));
    snprintf(h1, sizeof h1, "%016llx", (unsigned long long)trit_hash64(r1.content, r1.content_len));
    snprintf(h2, sizeof h2, "%016llx", (unsigned long long)trit_hash64(r2.content, r2.content_len));
    trit_iso8601(j->ts, iso);
    json_t *rec = json_object();
    json_object_set_new(rec, "type", json_string("round"));
    json_object_set_new(rec, "source", json_string("shadow"));
    json_object_set_new(rec, "ts", json_real(j->ts));
    json_object_set_new(rec, "time", json_string(iso));
    json_object_set_new(rec, "round", json_integer(px->next_round++));
    json_object_set_new(rec, "prompt_id", json_string(pid));
    json_object_set_new(rec, "category",
                        json_string(j->is_chat ? "shadow-chat" : "shadow-completions"));
    json_object_set_new(rec, "endpoint", json_string(j->is_chat ? "chat" : "completions"));
    json_object_set_new(rec, "path", json_string(j->path));
    json_object_set_new(rec, "bucket", json_string(trit_bucket_name(cmp.bucket)));
    json_object_set_new(rec, "tie",
                        cmp.tie == TRIT_TIE_TIE    ? json_string("tie")
                        : cmp.tie == TRIT_TIE_REAL ? json_string("real")
                                                   : json_null());
    json_object_set_new(rec, "prefix_len",
                        cmp.bucket <= TRIT_BUCKET_NOMATCH ? json_integer((json_int_t)cmp.prefix_len)
                                                          : json_null());
    json_object_set_new(rec, "div_byte", json_integer(cmp.div_byte));
    json_object_set_new(rec, "div_token_v1", json_integer(cmp.div_token_v1));
    json_object_set_new(rec, "div_token_v2", json_integer(cmp.div_token_v2));
    json_object_set_new(rec, "gap_v1", trit_json_num(cmp.gap_v1));
    json_object_set_new(rec, "gap_v2", trit_json_num(cmp.gap_v2));
    json_object_set_new(rec, "cause", cmp.cause[0] ? json_string(cmp.cause) : json_null());
    json_object_set_new(rec, "lat_v1", json_real(r1.latency_s));
    json_object_set_new(rec, "lat_v2", json_real(r2.latency_s));
    json_object_set_new(rec, "ntok_v1", json_integer(ntok(&r1)));
    json_object_set_new(rec, "ntok_v2", json_integer(ntok(&r2)));
    json_object_set_new(rec, "status_v1", json_integer(j->prim.status));
    json_object_set_new(rec, "status_v2", json_integer(cand.status));
    json_object_set_new(rec, "finish_v1", json_string(r1.finish_reason));
    json_object_set_new(rec, "finish_v2", json_string(r2.finish_reason));
    json_object_set_new(rec, "hash_v1", json_string(h1));
    json_object_set_new(rec, "hash_v2", json_string(h2));
    json_object_set_new(rec, "v1", json_pack("{s:s}", "url", px->o->primary));
    json_object_set_new(rec, "v2", json_pack("{s:s}", "url", px->o->candidate));
    json_object_set_new(rec, "dropped", json_integer(atomic_load(&px->dropped)));
    json_object_set_new(rec, "prompt",
                        trit_ledger_text_json(prompt.p, TRIT_MIN(prompt.len, (size_t)4000)));
    json_object_set_new(rec, "text_v1", trit_ledger_text_json(r1.content, r1.content_len));
    json_object_set_new(rec, "text_v2", trit_ledger_text_json(r2.content, r2.content_len));
    trit_err err = {0};
    if (px->ledger && trit_ledger_append(px->ledger, rec, &err))
        fprintf(stderr, "shadow: ledger: %s\n", err.msg);
    json_decref(rec);
    atomic_fetch_add(&px->compared, 1);
    if (!px->o->quiet)
        fprintf(stderr, "shadow: %s %-14s primary %.0f ms, candidate %.0f ms%s%s\n", j->path,
                trit_bucket_name(cmp.bucket), 1000 * r1.latency_s, 1000 * r2.latency_s,
                cmp.cause[0] ? " — " : "", cmp.cause);
    trit_buf_free(&prompt);
    trit_client_resp_free(&r1);
    trit_client_resp_free(&r2);
    trit_buf_free(&cand.body);
}

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
        pthread_mutex_unlock(&px->mu);
        process(px, j);
        free(j->path), free(j->auth);
        trit_buf_free(&j->req);
        trit_buf_free(&j->prim.body);
        free(j);
    }
}

static int max_round_cb(void *ud, const trit_ledger_rec *rec, const char *line, size_t len) {
    (void)ud, (void)rec, (void)line, (void)len;
    return 0;
}

int trit_shadow_run(trit_shadow_opts *o, trit_shadow_counts *counts, trit_err *err) {
    if (!o->primary || !o->candidate)
        return trit_fail(err, TRIT_EINVAL, "shadow needs a primary and a candidate URL");
    proxy px = {0};
    px.o = o;
    pthread_mutex_init(&px.mu, NULL);
    pthread_cond_init(&px.cv, NULL);
    if (o->ledger_path) {
        trit_ledger_scan_info info = {0};
        if (access(o->ledger_path, F_OK) == 0 &&
            trit_ledger_scan(o->ledger_path, max_round_cb, NULL, o->quiet, &info, err))
            return -1;
        px.next_round = access(o->ledger_path, F_OK) == 0 ? info.max_round + 1 : 0;
        if (!(px.ledger = trit_ledger_open(o->ledger_path, err))) return -1;
    }
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->host, &addr.sin_addr) != 1) {
        trit_ledger_close(px.ledger);
        return trit_fail(err, TRIT_EINVAL, "listen address '%s' is not an IPv4 address", o->host);
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t wt;
    pthread_create(&wt, NULL, worker, &px);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
            MHD_USE_ERROR_LOG,
        (uint16_t)o->port, NULL, NULL, handler, &px, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, completed, &px, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)900,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
    int rc = 0;
    if (!d) {
        rc = trit_fail(err, TRIT_EIO, "cannot listen on %s:%d (%s)", o->host, o->port,
                       strerror(errno));
    } else {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        o->bound_port = di ? di->port : o->port;
        if (!o->quiet)
            fprintf(stderr,
                    "shadow: listening on http://%s:%d  primary %s  candidate %s  ledger %s\n",
                    o->host, o->bound_port, o->primary, o->candidate,
                    o->ledger_path ? o->ledger_path : "(none)");
        struct sigaction sa = {0}, old_int, old_term;
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        while (!stop_flag) usleep(50 * 1000);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        MHD_stop_daemon(d);
    }
    pthread_mutex_lock(&px.mu);
    px.closing = true;
    pthread_cond_broadcast(&px.cv);
    pthread_mutex_unlock(&px.mu);
    pthread_join(wt, NULL);
    trit_ledger_close(px.ledger);
    trit_shadow_counts c = {atomic_load(&px.forwarded), atomic_load(&px.mirrored),
                            atomic_load(&px.dropped), atomic_load(&px.compared),
                            atomic_load(&px.primary_errors)};
    if (counts) *counts = c;
    if (!o->quiet && d)
        fprintf(stderr,
                "shadow: stopped: %ld forwarded, %ld copied to the candidate, %ld compared, %ld "
                "dropped, %ld primary errors\n",
                c.forwarded, c.mirrored, c.compared, c.dropped, c.primary_errors);
    pthread_mutex_destroy(&px.mu);
    pthread_cond_destroy(&px.cv);
    return rc;
}
