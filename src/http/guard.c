/* http/guard.c — the intake's connection side: Host/Origin/key checks, body budgets (per
 * request, all requests, per peer), the fairness guard (absolute header deadline, minimum body
 * rate; a reaper thread shuts slow connections down) and the libmicrohttpd daemon itself. */
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

/* Where a connection is: waiting for a request's headers, receiving its body, or replying
 * (the reply is never timed here: a generation may take minutes). */
enum { PH_HEADERS, PH_BODY, PH_REPLY };

typedef struct track {
    trit_http_guard *g;
    int fd;
    uint32_t peer; /* IPv4 address, host order (0: unknown) */
    int phase;
    double t_phase; /* when the phase began (the header deadline counts from here) */
    double win_t0;  /* the current rate window */
    size_t win_bytes;
    size_t held; /* body bytes of the current request counted in the budgets */
    bool killed;
    struct track *prev, *next;
} track;

struct trit_http_guard {
    trit_http_limits l;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    track *head;
    size_t total; /* body bytes held over all connections */
    atomic_long dropped;
    bool stop;
    pthread_t reaper;
    bool reaper_started;
};

/* trit's defaults; the two servers share them (a limit is written once). */
void trit_http_limits_default(trit_http_limits *l) {
    *l = (trit_http_limits){.max_body = (size_t)1 << 20,
                            .body_total = (size_t)64 << 20,
                            .peer_share = 4,
                            .header_deadline_s = 15,
                            .min_rate = 1024,
                            .window_s = 5,
                            .max_conns = 1024,
                            .idle_timeout_s = 120};
}

/* The guard's record of connection c (NULL when no guard watches it). */
static track *track_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* MHD's connection callback: every accepted connection is watched from its first byte (the
 * header deadline runs from here) until it closes. MHD calls CLOSED before it closes the
 * socket, so the reaper never shuts down a descriptor that was reused. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    trit_http_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        track *t = calloc(1, sizeof *t);
        *socket_context = t;
        if (!t) return; /* unwatched: the MHD timeout still applies */
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        t->g = g;
        t->fd = fd ? fd->connect_fd : -1;
        if (ad && ad->client_addr && ad->client_addr->sa_family == AF_INET)
            t->peer = ntohl(((const struct sockaddr_in *)ad->client_addr)->sin_addr.s_addr);
        t->t_phase = trit_now_s();
        pthread_mutex_lock(&g->mu);
        t->next = g->head;
        if (g->head) g->head->prev = t;
        g->head = t;
        pthread_mutex_unlock(&g->mu);
        return;
    }
    track *t = *socket_context;
    if (!t) return;
    pthread_mutex_lock(&g->mu);
    g->total -= t->held;
    if (t->prev)
        t->prev->next = t->next;
    else
        g->head = t->next;
    if (t->next) t->next->prev = t->prev;
    pthread_mutex_unlock(&g->mu);
    free(t);
    *socket_context = NULL;
}

/* Body bytes held by one peer address (under g->mu). */
static size_t peer_held(const trit_http_guard *g, uint32_t peer) {
    size_t n = 0;
    for (const track *t = g->head; t; t = t->next)
        if (t->peer == peer) n += t->held;
    return n;
}

/* Three budgets, checked before a chunk is kept: the request's, everyone's, and the peer's
 * share of everyone's (so that a few connections from one address cannot take it all). A
 * refused request releases what it held at once. */
int trit_http_take_body(trit_http_guard *g, struct MHD_Connection *c, size_t held, size_t n) {
    track *t = track_of(c);
    if (!g) return TRIT_HTTP_BODY_OK; /* no guard: nothing to count against */
    if (!t) /* an unwatched connection (its record could not be made): the request bound only */
        return held + n > g->l.max_body ? TRIT_HTTP_BODY_TOO_BIG : TRIT_HTTP_BODY_OK;
    pthread_mutex_lock(&g->mu);
    int rc = TRIT_HTTP_BODY_OK;
    const size_t share = g->l.body_total / (size_t)TRIT_MAX(1, g->l.peer_share);
    if (held + n > g->l.max_body)
        rc = TRIT_HTTP_BODY_TOO_BIG;
    else if (g->total + n > g->l.body_total || peer_held(g, t->peer) + n > share)
        rc = TRIT_HTTP_BODY_BUSY;
    t->win_bytes += n; /* refused bytes still arrive: the rate counts them */
    if (rc == TRIT_HTTP_BODY_OK) {
        t->held += n;
        g->total += n;
    } else {
        g->total -= t->held;
        t->held = 0;
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* A refused body's bytes: not kept, but they show the client is sending. */
void trit_http_body_seen(trit_http_guard *g, struct MHD_Connection *c, size_t n) {
    track *t = track_of(c);
    if (!g || !t) return;
    pthread_mutex_lock(&g->mu);
    t->win_bytes += n;
    pthread_mutex_unlock(&g->mu);
}

/* The body is in: from here the connection is replying, which is never timed. */
void trit_http_body_done(trit_http_guard *g, struct MHD_Connection *c) {
    track *t = track_of(c);
    if (!g || !t) return;
    pthread_mutex_lock(&g->mu);
    t->phase = PH_REPLY;
    pthread_mutex_unlock(&g->mu);
}

/* End of a request: its bytes leave the budgets; a kept-alive connection's next request has
 * header_deadline_s from now. */
void trit_http_request_done(trit_http_guard *g, struct MHD_Connection *c) {
    track *t = c ? track_of(c) : NULL;
    if (!g || !t) return;
    pthread_mutex_lock(&g->mu);
    g->total -= t->held;
    t->held = 0;
    t->phase = PH_HEADERS;
    t->t_phase = trit_now_s();
    pthread_mutex_unlock(&g->mu);
}

/* How many connections the guard cut (for logs and tests). */
long trit_http_guard_dropped(const trit_http_guard *g) {
    return g ? atomic_load(&g->dropped) : 0;
}

/* Whether t broke a fairness rule by now (under g->mu). */
static bool too_slow(const trit_http_guard *g, track *t, double now) {
    if (t->phase == PH_HEADERS) return now - t->t_phase > g->l.header_deadline_s;
    if (t->phase != PH_BODY || now - t->win_t0 < g->l.window_s) return false;
    if ((double)t->win_bytes < g->l.min_rate * g->l.window_s) return true;
    t->win_t0 = now;
    t->win_bytes = 0;
    return false;
}

/* The reaper: MHD's own timeout is reset by every byte, so a trickle keeps a connection (and
 * its thread and body budget) forever; this one counts from the request's start. Shutting
 * the socket down wakes MHD's connection thread, which closes it. */
static void *reaper(void *arg) {
    trit_http_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        const double now = trit_now_s();
        for (track *t = g->head; t; t = t->next) {
            if (t->killed || t->fd < 0 || !too_slow(g, t, now)) continue;
            shutdown(t->fd, SHUT_RDWR);
            t->killed = true;
            atomic_fetch_add(&g->dropped, 1);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* ---- intake checks ---- */

/* Counts the Host headers of a request (MHD's lookup only sees the first). */
static enum MHD_Result count_host(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value) {
    (void)kind, (void)value;
    if (key && !strcasecmp(key, "Host")) (*(int *)cls)++;
    return MHD_YES;
}

/* Fill a refusal and return -1. */
static int refuse(trit_http_refusal *r, int status, const char *type, const char *code,
                  const char *fmt, const char *arg) {
    r->status = status;
    r->type = type;
    r->code = code;
    snprintf(r->message, sizeof r->message, fmt, arg ? arg : "");
    return -1;
}

/* True when origin is this server's own page: "http://" + the request's Host. A page the
 * server itself served (the chat page, the dashboard) posts with its own origin, which no
 * --cors list should have to name. Safe because Host is checked first: on loopback it must
 * name this server (a rebinding page's origin names its own host), and a server reachable
 * from other machines needs the key for its API anyway. */
static bool same_origin(const char *origin, const char *host) {
    if (!origin || !host || strncmp(origin, "http://", 7) != 0) return false;
    return strcasecmp(origin + 7, host) == 0;
}

/* Who is asking: one Host, the right Host (DNS rebinding), no foreign page. */
int trit_http_check_peer(struct MHD_Connection *c, const char *version, const trit_http_intake *in,
                         trit_http_refusal *r) {
    memset(r, 0, sizeof *r);
    track *t = track_of(c);
    if (t) { /* the headers are in: the body phase (rate-checked) starts */
        pthread_mutex_lock(&t->g->mu);
        t->phase = PH_BODY;
        t->win_t0 = trit_now_s();
        t->win_bytes = 0;
        pthread_mutex_unlock(&t->g->mu);
    }
    int hosts = 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_host, &hosts);
    if (hosts > 1)
        return refuse(r, 400, "invalid_request_error", "duplicate_host",
                      "the request has %sseveral Host headers", "");
    if (!hosts && version && !strcmp(version, MHD_HTTP_VERSION_1_1))
        return refuse(r, 400, "invalid_request_error", "missing_host",
                      "an HTTP/1.1 request needs a Host header%s", "");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (in->loopback && !trit_host_allowed(host, in->bound, in->host_allow)) {
        char h[120];
        snprintf(h, sizeof h, "%.100s", host ? host : "");
        return refuse(r, 403, "permission_error", "host_not_allowed",
                      "Host '%s' is not this server's name (add it with --host-allow)", h);
    }
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (origin && in->no_origin)
        return refuse(r, 403, "permission_error", "origin_not_allowed",
                      "requests from browser pages (with an Origin header) are refused%s", "");
    if (!in->no_origin && !same_origin(origin, host) && !trit_origin_allowed(origin, in->cors)) {
        char o[120];
        snprintf(o, sizeof o, "%.100s", origin ? origin : "");
        return refuse(r, 403, "permission_error", "origin_not_allowed",
                      "Origin '%s' is not allowed (see --cors)", o);
    }
    return 0;
}

/* What it may do: the key (when this route needs one) and the announced body size. */
int trit_http_check_entry(struct MHD_Connection *c, const trit_http_intake *in, bool needs_key,
                          trit_http_refusal *r) {
    memset(r, 0, sizeof *r);
    if (needs_key && in->api_key &&
        !trit_api_key_matches(in->api_key,
                              MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")))
        return refuse(r, 401, "authentication_error", "invalid_api_key",
                      "missing or invalid API key (send 'Authorization: Bearer KEY')%s", "");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > in->max_body) {
        char n[32];
        snprintf(n, sizeof n, "%zu", in->max_body);
        return refuse(r, 413, "invalid_request_error", "body_too_large",
                      "request body exceeds %s bytes", n);
    }
    return 0;
}

/* ---- daemon ---- */

/* One daemon shape for every server: a thread per connection (a request may block for a
 * whole generation), the guard watching every connection, the caller's callbacks. */
int trit_http_start(trit_http_daemon *hd, const char *host, int port, const trit_http_limits *l,
                    const trit_http_callbacks *cb, trit_err *err) {
    memset(hd, 0, sizeof *hd);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return trit_fail(err, TRIT_EINVAL, "listen address '%s' is not an IPv4 address", host);
    trit_http_json_init();
    trit_http_guard *g = xcalloc(1, sizeof *g);
    g->l = *l;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    hd->guard = g;
    hd->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
            MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, cb->handler, cb->cls, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, cb->completed, cb->cls,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, g, MHD_OPTION_URI_LOG_CALLBACK, cb->uri_log,
        cb->cls, MHD_OPTION_CONNECTION_TIMEOUT, l->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        l->max_conns, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)(l->reuse_port ? 1 : 0),
        MHD_OPTION_END);
    if (!hd->d) {
        int e = errno;
        trit_http_stop(hd);
        return trit_fail(err, TRIT_EIO, "cannot listen on %s:%d (%s)", host, port, strerror(e));
    }
    g->reaper_started = pthread_create(&g->reaper, NULL, reaper, g) == 0;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(hd->d, MHD_DAEMON_INFO_BIND_PORT);
    hd->port = di ? di->port : port;
    return 0;
}

/* Draining starts here: no new connection, the ones in flight go on. */
void trit_http_quiesce(trit_http_daemon *hd) {
    if (!hd->d || hd->quiesced) return;
    hd->lsock = MHD_quiesce_daemon(hd->d);
    hd->quiesced = true;
}

/* Stop the reaper first (it must not shut down descriptors MHD is about to close), then MHD. */
void trit_http_stop(trit_http_daemon *hd) {
    trit_http_guard *g = hd->guard;
    if (g && g->reaper_started) {
        pthread_mutex_lock(&g->mu);
        g->stop = true;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->reaper, NULL);
    }
    if (hd->d) MHD_stop_daemon(hd->d);
    hd->d = NULL;
    if (hd->quiesced && hd->lsock != MHD_INVALID_SOCKET) close(hd->lsock);
    hd->quiesced = false;
    if (g) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g);
    }
    hd->guard = NULL;
}
