/* server/http.c — the HTTP/1.1 edge: sockets, worker threads, connection
 * limits, timeouts, request framing (http_parse.c), the Qdrant envelope,
 * metrics and the per-request log line.
 *
 * Why our own edge rather than libmicrohttpd (which served here until issue
 * 19): the Debian 12 libmicrohttpd (0.9.75) answers its own errors with fixed
 * HTML pages (no hook to make them the JSON envelope), hangs instead of
 * sending 431 when its memory pool fills (about 450 query parameters),
 * accepts two different Content-Lengths, lets chunked win over
 * Content-Length, waits for the 120 s timeout on bad chunk sizes, has one
 * idle timeout for every phase and closes at once after an early reply (the
 * client, still uploading, gets a reset instead of the 413). A validating
 * proxy in front of it would parse the same framing and then relay every
 * byte a second time; parsing it here once costs less and leaves nothing of
 * the edge to a library we cannot change.
 *
 * Decisions:
 * 1. N worker threads (--threads), each with its own epoll set. They all
 *    wait on the listening socket (level-triggered; not EPOLLEXCLUSIVE, with
 *    which the fuzz target saw a connection stay unaccepted for seconds);
 *    the one that accepts hands each new connection to the worker with the
 *    fewest, which then owns it for its whole life. Without the hand-off, a
 *    burst of 16 connects landed on one or two workers and capped the QPS. A
 *    request is answered on its connection's worker (the handlers are
 *    synchronous; rebuilds run on their own threads).
 * 2. Connection limits: at most --max-connections in all and
 *    --max-connections-per-client per client address. When a limit is
 *    reached, the oldest connection that is only waiting for a request head
 *    (half-open, trickling, or an idle keep-alive) is closed to make room:
 *    a flood of idle connections can never lock out a health check or a new
 *    client, while requests in progress are never cut. Only when every
 *    connection is busy does a new one get 503.
 * 3. Timeouts: a request head must arrive whole within --header-timeout of
 *    its first byte (or of the connect); an idle keep-alive connection, a
 *    stalled body or a stalled reply is closed after --idle-timeout without
 *    progress. A request that was started gets 408 with the envelope.
 * 4. Every reply, errors from framing included, is the JSON envelope. Framing
 *    errors (400 head/chunks, 413, 414, 417, 431, 408, 505) and early replies
 *    close the connection; an application error (404, 422, …) after a
 *    complete request keeps it open.
 * 5. Lingering close: when the server closes, it sends its reply, shuts down
 *    its write side and then reads and discards whatever the client still
 *    sends, for at most QXS_HTTP_LINGER_S seconds or until the client
 *    closes. Closing with unread data would send a reset, and the client's
 *    kernel would drop the reply before the client read it (an early 413 to
 *    a client still uploading 100 MB).
 * 6. A body whose Content-Length exceeds --max-body is answered 413 at once
 *    (curl's Expect: 100-continue then never sends it); a chunked body is
 *    answered 413 as soon as a chunk would pass the limit.
 * 7. The API key is compared in constant time; /healthz and /readyz are open
 *    (orchestrators probe them without secrets), everything else needs it.
 * 8. Each worker sets OpenBLAS and OpenMP to one thread, so 2 cores serving
 *    16 connections are not oversubscribed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "http.h"
#include "http_parse.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"

void openblas_set_num_threads(int n);

#define QXS_HTTP_LINGER_S 5.0      /* lingering close: drain the client for at most this */
#define QXS_HTTP_IN_MAX 65536      /* read buffer per connection */
#define QXS_HTTP_STOP_GRACE_S 10.0 /* shutdown: in-flight requests may finish for this long */

typedef enum { ST_HEAD, ST_BODY, ST_WRITE, ST_LINGER } cstate;

typedef struct conn {
    int fd;
    int slot;
    cstate st;
    unsigned interest;    /* epoll events registered */
    int eof;              /* the client closed its side */
    struct conn *prev, *next;
    double deadline;
    double head_start;    /* first byte of the current head; 0 = none yet */
    char *in;
    size_t in_len, in_cap;
    /* the current request */
    int has_req;
    double t0;
    char method[16];
    char *path;           /* decoded, query removed */
    char logpath[160];
    const char *label;
    qxs_route rt;
    int keep_alive, is_head, http10, expect_continue;
    int dead;             /* close at the next step (out of memory, send failed) */
    int64_t declared;     /* Content-Length, -1 when absent */
    int64_t body_left;    /* Content-Length bytes still to read; -1 = chunked */
    qxs_chunked ck;
    char *body;
    size_t body_len, body_cap;
    /* the reply */
    char hdr[640];
    size_t hdr_len;
    char *out;
    size_t out_len, sent;
    int out_fd;           /* a file body (snapshot download), or -1: sent with sendfile */
    int close_after;
    int status;
    size_t resp_len;
} conn;

typedef struct slot {
    conn *c;              /* NULL = free */
    int fd;
    unsigned char ip[16];
    int evictable;        /* waiting for a request head, or lingering */
    int evicted;          /* shut down by the limiter: no longer counted */
    double since;
} slot;

typedef struct worker {
    struct qxs_http *h;
    int ep, efd;
    pthread_t th;
    conn *list;
    _Atomic int nconns;     /* connections owned (read by acceptors) */
    double accept_paused;   /* out of file descriptors: listen again after this */
    double emfile_logged;   /* last warning about it (one per 10 s) */
    pthread_mutex_t in_mu;  /* accepted connections handed to this worker */
    conn *incoming;
} worker;

struct qxs_http {
    qxs_server *s;
    int lfd, port;
    int nworkers;
    worker *w;
    _Atomic int stop;
    pthread_mutex_t mu;   /* the connection table */
    slot *slots;
    size_t nslots, live;
};

static _Thread_local char tl_scratch[65536];
static _Thread_local char tl_date[40];
static _Thread_local time_t tl_date_t;

/* "Date: Thu, 03 Dec 2026 18:05:07 GMT" (RFC 9110 §6.6.1), once a second per thread */
static const char *http_date(void) {
    time_t now = time(NULL);
    if (now != tl_date_t) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(tl_date, sizeof tl_date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        tl_date_t = now;
    }
    return tl_date;
}

/* ---- connection table and limits ------------------------------------------ */

static void ip_key(const struct sockaddr_storage *a, unsigned char k[16]) {
    memset(k, 0, 16);
    if (a->ss_family == AF_INET) {
        k[10] = k[11] = 0xff;
        memcpy(k + 12, &((const struct sockaddr_in *)a)->sin_addr, 4);
    } else if (a->ss_family == AF_INET6) {
        memcpy(k, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
    }
}

/* Admit a new connection: a slot index, or -1 (refused, *why filled). */
static int admit(struct qxs_http *h, int fd, const unsigned char ip[16], char *why, size_t whysz) {
    const qxs_config *cfg = &h->s->cfg;
    pthread_mutex_lock(&h->mu);
    size_t same = 0;
    for (size_t i = 0; i < h->nslots; i++)
        if (h->slots[i].c && !h->slots[i].evicted && !memcmp(h->slots[i].ip, ip, 16)) same++;
    int per_ip = same >= (size_t)cfg->max_conns_per_client, global = h->live >= (size_t)cfg->max_conns;
    if (per_ip || global) {
        /* the oldest connection only waiting for a request head: of this
         * client when its own cap is the reason, of anyone otherwise */
        long victim = -1;
        for (size_t i = 0; i < h->nslots; i++) {
            slot *sl = &h->slots[i];
            if (!sl->c || sl->evicted || !sl->evictable || (per_ip && memcmp(sl->ip, ip, 16))) continue;
            if (victim < 0 || sl->since < h->slots[victim].since) victim = (long)i;
        }
        if (victim < 0) {
            pthread_mutex_unlock(&h->mu);
            snprintf(why, whysz, "too many connections (%s limit of %d reached, all busy with requests)",
                     per_ip ? "per-client" : "server", per_ip ? cfg->max_conns_per_client : cfg->max_conns);
            return -1;
        }
        /* the owner sees EOF and closes it; the fd stays valid until it
         * frees the slot under this mutex, so it cannot be reused meanwhile */
        shutdown(h->slots[victim].fd, SHUT_RDWR);
        h->slots[victim].evicted = 1;
        h->live--;
        atomic_fetch_add(&h->s->m.conn_evicted, 1);
    }
    long free_i = -1;
    for (size_t i = 0; i < h->nslots && free_i < 0; i++)
        if (!h->slots[i].c) free_i = (long)i;
    if (free_i < 0) {
        size_t n = h->nslots ? h->nslots * 2 : 64;
        slot *ns = qx_realloc(h->slots, n * sizeof *ns);
        if (!ns) {
            pthread_mutex_unlock(&h->mu);
            snprintf(why, whysz, "out of memory for the connection table");
            return -1;
        }
        memset(ns + h->nslots, 0, (n - h->nslots) * sizeof *ns);
        free_i = (long)h->nslots;
        h->slots = ns;
        h->nslots = n;
    }
    slot *sl = &h->slots[free_i];
    sl->c = (conn *)1; /* claimed; the caller sets the pointer */
    sl->fd = fd;
    memcpy(sl->ip, ip, 16);
    sl->evictable = 1;
    sl->evicted = 0;
    sl->since = qx_now();
    h->live++;
    pthread_mutex_unlock(&h->mu);
    return (int)free_i;
}

static void slot_set(struct qxs_http *h, conn *c, int evictable) {
    pthread_mutex_lock(&h->mu);
    h->slots[c->slot].evictable = evictable;
    if (evictable) h->slots[c->slot].since = qx_now();
    pthread_mutex_unlock(&h->mu);
}

static void slot_free(struct qxs_http *h, int i) {
    pthread_mutex_lock(&h->mu);
    if (!h->slots[i].evicted) h->live--;
    memset(&h->slots[i], 0, sizeof h->slots[i]);
    pthread_mutex_unlock(&h->mu);
}

/* ---- connection life -------------------------------------------------------- */

static void want(worker *w, conn *c, unsigned ev) {
    if (c->interest == ev) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &e);
    c->interest = ev;
}

static void begin_request(qxs_server *s, conn *c) {
    c->has_req = 1;
    c->is_head = c->keep_alive = c->http10 = c->expect_continue = 0; /* nothing of the previous request */
    c->body_left = 0;
    c->declared = -1;
    c->t0 = c->head_start ? c->head_start : qx_now();
    snprintf(c->method, sizeof c->method, "-");
    snprintf(c->logpath, sizeof c->logpath, "-");
    c->label = "unknown";
    atomic_fetch_add(&s->active_requests, 1);
}

static void end_request(qxs_server *s, conn *c, int completed) {
    if (!c->has_req) return;
    double t = qx_now() - c->t0;
    qxs_metrics_observe(&s->m, c->label, c->status, t);
    if (qxs_log_level_cur >= QXS_LOG_INFO)
        qxs_log(QXS_LOG_INFO, "%s %s endpoint=%s status=%d bytes_in=%zu bytes_out=%zu ms=%.3f%s", c->method,
                c->logpath, c->label, c->status, c->body_len, c->resp_len, t * 1e3,
                completed ? "" : " (connection closed early)");
    qx_free(c->body);
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    qx_free(c->path);
    c->path = NULL;
    c->has_req = 0;
    c->status = 0;
    c->resp_len = 0;
    atomic_fetch_sub(&s->active_requests, 1);
}

/* Everything is freed before the close: the client sees EOF only once the
 * connection holds nothing (the fuzz target's leak check relies on it). */
static void close_conn(worker *w, conn *c) {
    int fd = c->fd;
    end_request(w->h->s, c, 0);
    epoll_ctl(w->ep, EPOLL_CTL_DEL, fd, NULL);
    if (c->prev) c->prev->next = c->next;
    else w->list = c->next;
    if (c->next) c->next->prev = c->prev;
    atomic_fetch_sub(&w->nconns, 1);
    qx_free(c->in);
    qx_free(c->out);
    if (c->out_fd >= 0) close(c->out_fd);
    qx_free(c->body);
    qx_free(c->path);
    int sl = c->slot;
    qx_free(c);
    slot_free(w->h, sl); /* the fd may be reused once its slot is free and it is closed */
    close(fd);
}

/* ---- replies ------------------------------------------------------------------ */

typedef struct dumpbuf {
    char *p;
    size_t len, cap;
} dumpbuf;

static int dump_cb(const char *buf, size_t size, void *data) {
    dumpbuf *d = data;
    if (d->len + size + 1 > d->cap) {
        size_t cap = (d->cap ? d->cap * 2 : 1024) + size;
        char *p = qx_realloc(d->p, cap);
        if (!p) return -1;
        d->p = p;
        d->cap = cap;
    }
    memcpy(d->p + d->len, buf, size);
    d->len += size;
    return 0;
}

/* Queue the reply (envelope or raw body); drive() sends it. */
static void reply(worker *w, conn *c, qxs_reply *rep) {
    qxs_server *s = w->h->s;
    char *body;
    size_t len;
    const char *ctype = "application/json";
    double t = qx_now() - c->t0;
    int fd = -1;
    if (rep->raw_file) {
        body = NULL;
        fd = rep->raw_fd;
        len = rep->raw_fd_len;
        ctype = rep->content_type;
        rep->raw_file = 0; /* the connection owns the descriptor now */
    } else if (rep->raw) {
        body = rep->raw;
        len = rep->raw_len;
        ctype = rep->content_type;
        rep->raw = NULL;
    } else {
        json_t *env;
        if (rep->status == 200)
            env = json_pack("{s:O, s:s, s:f}", "result", rep->result ? rep->result : json_null(), "status", "ok",
                            "time", t);
        else
            env = json_pack("{s:{s:s}, s:f}", "status", "error", rep->err, "time", t);
        dumpbuf d = {0};
        if (!env || json_dump_callback(env, dump_cb, &d, JSON_COMPACT | JSON_REAL_PRECISION(9)) != 0) {
            qx_free(d.p);
            d.p = NULL;
        }
        json_decref(env);
        body = d.p;
        len = d.len;
        if (!body) {
            static const char oom[] = "{\"status\":{\"error\":\"out of memory building the reply\"},\"time\":0}";
            len = sizeof oom - 1;
            body = qx_malloc(len);
            rep->status = 500;
            c->close_after = 1;
            if (!body) c->dead = 1;
            else memcpy(body, oom, len);
        }
    }
    if (rep->result) json_decref(rep->result);
    rep->result = NULL;
    if (atomic_load(&w->h->stop) || !c->keep_alive) c->close_after = 1;
    int allow = rep->status == 405 && rep->allow;
    int n = snprintf(c->hdr, sizeof c->hdr,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s%s%s\r\n",
                     rep->status, qxs_http_reason(rep->status), http_date(), ctype, len, allow ? "Allow: " : "", allow ? rep->allow : "",
                     allow ? "\r\n" : "", rep->status == 401 ? "WWW-Authenticate: Bearer\r\n" : "",
                     c->close_after ? "Connection: close\r\n" : c->http10 ? "Connection: keep-alive\r\n" : "");
    c->hdr_len = (size_t)n < sizeof c->hdr ? (size_t)n : sizeof c->hdr - 1;
    qx_free(c->out);
    if (c->out_fd >= 0) close(c->out_fd);
    c->out = body;
    c->out_fd = fd;
    c->out_len = c->is_head ? 0 : len;
    c->sent = 0;
    c->status = rep->status;
    c->resp_len = len;
    c->st = ST_WRITE;
    c->deadline = qx_now() + s->cfg.idle_timeout;
}

static void reply_error(worker *w, conn *c, int status, const char *msg, int close_after) {
    qxs_reply rep;
    memset(&rep, 0, sizeof rep);
    rep.status = status;
    snprintf(rep.err, sizeof rep.err, "%s", msg);
    if (close_after) c->close_after = 1;
    reply(w, c, &rep);
}

/* Send what the socket takes: 1 = all sent, 0 = would block, -1 = gone. */
static int flush(worker *w, conn *c) {
    while (c->sent < c->hdr_len + c->out_len) {
        struct iovec iov[2];
        int n = 0;
        if (c->sent < c->hdr_len) iov[n++] = (struct iovec){c->hdr + c->sent, c->hdr_len - c->sent};
        size_t bo = c->sent > c->hdr_len ? c->sent - c->hdr_len : 0;
        ssize_t r;
        if (c->out_fd >= 0 && n == 0) { /* the file body, once the head is out */
            off_t off = (off_t)bo;
            r = sendfile(c->fd, c->out_fd, &off, c->out_len - bo);
            if (r == 0) return -1; /* the file is shorter than it was: nothing more to send */
        } else {
            if (c->out_fd < 0 && c->out_len > bo) iov[n++] = (struct iovec){c->out + bo, c->out_len - bo};
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
            r = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        }
        if (r > 0) {
            c->sent += (size_t)r;
            c->deadline = qx_now() + w->h->s->cfg.idle_timeout;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        return -1; /* the client went away */
    }
    return 1;
}

/* ---- requests --------------------------------------------------------------------- */

static int auth_ok(const qxs_server *s, const qxs_http_head *h) {
    const char *key = s->cfg.api_key;
    if (!key[0]) return 1;
    const char *got = h->api_key;
    size_t gl = h->api_key_len;
    if (!got && h->authorization && h->authorization_len >= 7 && !strncasecmp(h->authorization, "Bearer ", 7)) {
        got = h->authorization + 7;
        gl = h->authorization_len - 7;
    }
    if (!got) return 0;
    size_t kl = strlen(key);
    unsigned char diff = (unsigned char)(kl != gl);
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)(key[i] ^ (i < gl ? got[i] : 0));
    return diff == 0;
}

static void dispatch(worker *w, conn *c) {
    qxs_reply rep;
    if (c->body) c->body[c->body_len] = 0;
    qxs_api_handle(w->h->s, &c->rt, c->method, c->body ? c->body : "", c->body_len, &rep);
    reply(w, c, &rep);
    qx_free(rep.raw);
    if (rep.raw_file) close(rep.raw_fd); /* not taken (cannot happen: reply takes it) */
}

/* A whole head was parsed: copy what the request needs out of the input
 * buffer (the head is consumed right after). 0, or -1 when out of memory. */
static int prepare_request(worker *w, conn *c, const qxs_http_head *h, int *auth) {
    qxs_server *s = w->h->s;
    begin_request(s, c);
    snprintf(c->method, sizeof c->method, "%s", h->method);
    c->keep_alive = h->keep_alive;
    c->http10 = h->minor == 0;
    c->is_head = !strcmp(c->method, "HEAD");
    c->body_left = h->chunked ? -1 : h->content_length > 0 ? h->content_length : 0;
    c->declared = h->content_length;
    c->expect_continue = h->expect_continue;
    *auth = auth_ok(s, h);
    c->path = qx_malloc(h->target_len + 1);
    if (!c->path) return -1;
    qxs_http_decode_path(h->target, h->target_len, c->path);
    /* log only printable ASCII of the path: a hostile URL must not forge log lines */
    size_t pl = 0;
    for (const char *p = c->path; *p && pl < sizeof c->logpath - 1; p++)
        c->logpath[pl++] = (*p > 32 && *p < 127) ? *p : '?';
    c->logpath[pl] = 0;
    qxs_route_parse(c->path, &c->rt);
    c->label = qxs_ep_label(c->rt.ep, c->method);
    return 0;
}

/* Answer what can be answered before the body, or go read the body. */
static void start_request(worker *w, conn *c, int auth) {
    qxs_server *s = w->h->s;
    int body_pending = c->body_left != 0;
    if (!auth && c->rt.ep != QXS_EP_HEALTHZ && c->rt.ep != QXS_EP_READYZ) {
        reply_error(w, c, 401, "missing or wrong API key (send 'api-key: KEY' or 'Authorization: Bearer KEY')",
                    body_pending);
        return;
    }
    if (c->declared > 0 && (uint64_t)c->declared > s->cfg.max_body) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body of %lld bytes exceeds the limit of %zu bytes", (long long)c->declared,
                 s->cfg.max_body);
        reply_error(w, c, 413, msg, 1);
        return;
    }
    slot_set(w->h, c, 0);
    if (!body_pending) {
        dispatch(w, c);
        return;
    }
    if (c->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof cont - 1)) {
            c->dead = 1;
            return;
        }
    }
    memset(&c->ck, 0, sizeof c->ck);
    c->st = ST_BODY;
    c->deadline = qx_now() + s->cfg.idle_timeout;
}

static int body_room(conn *c, size_t need, size_t max_body) {
    if (need > max_body) need = max_body;
    if (need + 1 <= c->body_cap) return 0;
    size_t cap = c->body_cap ? c->body_cap : 4096;
    while (cap < need + 1) cap *= 2;
    if (cap > max_body + 1) cap = max_body + 1;
    char *b = qx_realloc(c->body, cap);
    if (!b) return -1;
    c->body = b;
    c->body_cap = cap;
    return 0;
}

static void consume(conn *c, size_t n) {
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* Read the body from the buffer: 1 when the request was answered or needs
 * no more input, 0 when more input is needed. */
static int read_body(worker *w, conn *c) {
    qxs_server *s = w->h->s;
    char err[256];
    if (c->body_left > 0) {
        size_t k = c->in_len < (uint64_t)c->body_left ? c->in_len : (size_t)c->body_left;
        if (k) {
            if (body_room(c, c->body_len + (size_t)c->body_left, s->cfg.max_body)) {
                reply_error(w, c, 500, "out of memory for the request body", 1);
                return 1;
            }
            memcpy(c->body + c->body_len, c->in, k);
            c->body_len += k;
            c->body_left -= (int64_t)k;
            consume(c, k);
        }
        if (c->body_left == 0) {
            dispatch(w, c);
            return 1;
        }
    } else {
        size_t used = 0;
        if (body_room(c, c->body_len + c->in_len, s->cfg.max_body)) {
            reply_error(w, c, 500, "out of memory for the request body", 1);
            return 1;
        }
        qxs_chunk_sink sink = {.out = c->body, .len = &c->body_len, .limit = s->cfg.max_body};
        int rc = qxs_chunked_feed(&c->ck, c->in, c->in_len, &used, &sink, err, sizeof err);
        consume(c, used);
        if (rc == 1) {
            dispatch(w, c);
            return 1;
        }
        if (rc) {
            reply_error(w, c, rc, err, 1);
            return 1;
        }
    }
    if (c->eof) {
        if (c->body_left > 0)
            snprintf(err, sizeof err, "connection closed before the body was complete (%lld bytes missing)",
                     (long long)c->body_left);
        else
            snprintf(err, sizeof err, "chunked body ended before its last (zero-size) chunk");
        reply_error(w, c, 400, err, 1);
        return 1;
    }
    return 0;
}

/* The state machine: move buffered bytes through it, send replies, until it
 * needs the socket (more input, or room to write). May free c. */
static void drive(worker *w, conn *c) {
    qxs_server *s = w->h->s;
    char err[256];
    for (;;) {
        if (c->dead) {
            close_conn(w, c);
            return;
        }
        if (c->st == ST_WRITE) {
            int r = flush(w, c);
            if (r < 0) {
                close_conn(w, c);
                return;
            }
            if (r == 0) {
                want(w, c, EPOLLOUT);
                return;
            }
            end_request(s, c, 1);
            qx_free(c->out);
            c->out = NULL;
            if (c->out_fd >= 0) close(c->out_fd);
            c->out_fd = -1;
            if (c->close_after) {
                if (c->eof) {
                    close_conn(w, c);
                    return;
                }
                shutdown(c->fd, SHUT_WR);
                c->st = ST_LINGER;
                c->in_len = 0;
                c->deadline = qx_now() + QXS_HTTP_LINGER_S;
                slot_set(w->h, c, 1);
                want(w, c, EPOLLIN);
                return;
            }
            c->st = ST_HEAD;
            c->head_start = 0;
            c->deadline = qx_now() + s->cfg.idle_timeout;
            slot_set(w->h, c, 1);
            continue; /* a pipelined request may be waiting in the buffer */
        }
        if (c->st == ST_HEAD) {
            if (!c->in_len) {
                if (c->eof) {
                    close_conn(w, c);
                    return;
                }
                want(w, c, EPOLLIN);
                return;
            }
            if (!c->head_start) {
                c->head_start = qx_now();
                c->deadline = c->head_start + s->cfg.header_timeout;
            }
            qxs_http_head h;
            int rc = qxs_http_parse_head(c->in, c->in_len, &h, err, sizeof err);
            if (rc == 0 && !c->eof) {
                want(w, c, EPOLLIN);
                return;
            }
            if (rc != 1) {
                begin_request(s, c);
                reply_error(w, c, rc ? rc : 400, rc ? err : "connection closed in the middle of the request head", 1);
                continue;
            }
            int auth = 0;
            if (prepare_request(w, c, &h, &auth)) {
                consume(c, h.head_len);
                reply_error(w, c, 500, "out of memory for the request path", 1);
                continue;
            }
            consume(c, h.head_len);
            start_request(w, c, auth);
            continue;
        }
        if (c->st == ST_BODY) {
            if (read_body(w, c)) continue;
            want(w, c, c->eof ? 0 : EPOLLIN);
            return;
        }
        return; /* ST_LINGER: on_readable drains it */
    }
}

static void on_readable(worker *w, conn *c) {
    if (c->st == ST_LINGER) {
        for (int i = 0; i < 16; i++) {
            ssize_t r = recv(c->fd, tl_scratch, sizeof tl_scratch, 0);
            if (r > 0) continue;
            if (r < 0 && errno == EINTR) continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            close_conn(w, c); /* the client closed: done */
            return;
        }
        return;
    }
    if (c->st != ST_HEAD && c->st != ST_BODY) return;
    if (c->in_cap - c->in_len < 1024 && c->in_cap < QXS_HTTP_IN_MAX) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 4096;
        char *b = qx_realloc(c->in, cap);
        if (!b) {
            close_conn(w, c);
            return;
        }
        c->in = b;
        c->in_cap = cap;
    }
    if (c->in_len < c->in_cap) { /* a full buffer is the parser's to judge */
        ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (r < 0) {
            close_conn(w, c);
            return;
        }
        if (r == 0) {
            c->eof = 1;
            want(w, c, 0);
        } else {
            c->in_len += (size_t)r;
            if (c->st == ST_BODY) c->deadline = qx_now() + w->h->s->cfg.idle_timeout;
        }
    }
    drive(w, c);
}

/* ---- accept, timers, the worker loop --------------------------------------------- */

static void refuse(int fd, const char *why) {
    char body[320], msg[512];
    int bl = snprintf(body, sizeof body, "{\"status\":{\"error\":\"%s\"},\"time\":0}", why);
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "Connection: close\r\nRetry-After: 1\r\n\r\n%s", bl, body);
    ssize_t r = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)r;
    shutdown(fd, SHUT_WR);
    close(fd);
}

/* Take ownership of an accepted connection: into this worker's epoll set
 * and list. */
static void adopt(worker *w, conn *c) {
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    c->next = w->list;
    c->prev = NULL;
    if (w->list) w->list->prev = c;
    w->list = c;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &e)) {
        c->dead = 1;
        close_conn(w, c);
        return;
    }
    c->interest = EPOLLIN;
}

static void on_accept(worker *w) {
    struct qxs_http *h = w->h;
    for (int i = 0; i < 32; i++) {
        struct sockaddr_storage a;
        socklen_t al = sizeof a;
        int fd = accept4(h->lfd, (struct sockaddr *)&a, &al, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* the connection stays queued and the listening socket stays
                 * readable: stop watching it for 100 ms instead of spinning */
                double now = qx_now();
                if (now - w->emfile_logged > 10) {
                    w->emfile_logged = now;
                    qxs_log(QXS_LOG_WARN, "accept: %s (raise the open-files limit or lower --max-connections)",
                            strerror(errno));
                }
                epoll_ctl(w->ep, EPOLL_CTL_DEL, h->lfd, NULL);
                w->accept_paused = now + 0.1;
            }
            return;
        }
        unsigned char ip[16];
        ip_key(&a, ip);
        char why[200];
        int sl = admit(h, fd, ip, why, sizeof why);
        if (sl < 0) {
            atomic_fetch_add(&h->s->m.conn_refused, 1);
            refuse(fd, why);
            continue;
        }
        conn *c = qx_calloc(1, sizeof *c);
        if (!c) {
            slot_free(h, sl);
            close(fd);
            continue;
        }
        c->out_fd = -1;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        c->slot = sl;
        c->st = ST_HEAD;
        c->deadline = qx_now() + h->s->cfg.header_timeout;
        pthread_mutex_lock(&h->mu);
        h->slots[sl].c = c;
        pthread_mutex_unlock(&h->mu);
        /* the worker with the fewest connections takes it */
        worker *t = w;
        for (int k = 0; k < h->nworkers; k++)
            if (atomic_load(&h->w[k].nconns) < atomic_load(&t->nconns)) t = &h->w[k];
        atomic_fetch_add(&t->nconns, 1);
        if (t == w) {
            adopt(w, c);
        } else {
            pthread_mutex_lock(&t->in_mu);
            c->next = t->incoming;
            t->incoming = c;
            pthread_mutex_unlock(&t->in_mu);
            uint64_t v = 1;
            ssize_t r = write(t->efd, &v, sizeof v);
            (void)r;
        }
    }
}

static void sweep(worker *w, double now) {
    qxs_server *s = w->h->s;
    char msg[160];
    for (conn *c = w->list, *next; c; c = next) {
        next = c->next;
        if (now < c->deadline) continue;
        atomic_fetch_add(&s->m.conn_timeouts, 1);
        if (c->st == ST_HEAD && c->head_start) {
            begin_request(s, c);
            snprintf(msg, sizeof msg, "request head not complete within %d s (--header-timeout)", s->cfg.header_timeout);
            reply_error(w, c, 408, msg, 1);
            drive(w, c);
        } else if (c->st == ST_BODY) {
            snprintf(msg, sizeof msg, "request body stalled: no data for %d s (--idle-timeout)", s->cfg.idle_timeout);
            reply_error(w, c, 408, msg, 1);
            drive(w, c);
        } else {
            close_conn(w, c);
        }
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    struct qxs_http *h = w->h;
    openblas_set_num_threads(1);
    omp_set_num_threads(1);
    struct epoll_event ev[64];
    double last_sweep = qx_now(), grace_end = 0;
    int listening = 1;
    for (;;) {
        if (atomic_load(&h->stop)) {
            double now = qx_now();
            if (listening) {
                epoll_ctl(w->ep, EPOLL_CTL_DEL, h->lfd, NULL);
                listening = 0;
                grace_end = now + QXS_HTTP_STOP_GRACE_S;
            }
            /* idle connections go now; requests in progress may finish */
            for (conn *c = w->list, *next; c; c = next) {
                next = c->next;
                if ((c->st == ST_HEAD && !c->head_start) || c->st == ST_LINGER) close_conn(w, c);
            }
            if (!w->list || now > grace_end) break;
        }
        int n = epoll_wait(w->ep, ev, 64, 200);
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &h->lfd) {
                if (listening) on_accept(w);
            } else if (p == &w->efd) {
                uint64_t v;
                ssize_t r = read(w->efd, &v, sizeof v);
                (void)r;
                pthread_mutex_lock(&w->in_mu);
                conn *in = w->incoming;
                w->incoming = NULL;
                pthread_mutex_unlock(&w->in_mu);
                while (in) {
                    conn *next = in->next;
                    adopt(w, in);
                    in = next;
                }
            } else {
                conn *c = p;
                /* a connection closed earlier in this batch cannot appear
                 * again: its fd left the set before it was freed, and epoll
                 * returned at most one event per fd */
                if (c->st == ST_WRITE) {
                    if (ev[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) drive(w, c);
                } else if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                    on_readable(w, c);
                }
            }
        }
        double now = qx_now();
        if (w->accept_paused && now >= w->accept_paused) {
            w->accept_paused = 0;
            struct epoll_event el = {.events = EPOLLIN, .data.ptr = &h->lfd};
            if (listening) epoll_ctl(w->ep, EPOLL_CTL_ADD, h->lfd, &el);
        }
        if (now - last_sweep >= 0.2) {
            sweep(w, now);
            last_sweep = now;
        }
    }
    while (w->list) close_conn(w, w->list);
    return NULL;
}

qxs_http *qxs_http_start(qxs_server *s, const struct sockaddr *addr, socklen_t alen) {
    struct qxs_http *h = qx_calloc(1, sizeof *h);
    if (!h) return NULL;
    h->s = s;
    pthread_mutex_init(&h->mu, NULL);
    h->lfd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (h->lfd < 0) goto fail;
    setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr->sa_family == AF_INET6) setsockopt(h->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(h->lfd, addr, alen) || listen(h->lfd, 1024)) goto fail;
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    if (getsockname(h->lfd, (struct sockaddr *)&got, &gl)) goto fail;
    h->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                              : ((struct sockaddr_in *)&got)->sin_port);
    h->nworkers = s->cfg.threads;
    h->w = qx_calloc((size_t)h->nworkers, sizeof *h->w);
    if (!h->w) goto fail;
    for (int i = 0; i < h->nworkers; i++) {
        worker *w = &h->w[i];
        w->h = h;
        pthread_mutex_init(&w->in_mu, NULL);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event el = {.events = EPOLLIN, .data.ptr = &h->lfd};
        struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &w->efd};
        if (w->ep < 0 || w->efd < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, h->lfd, &el) ||
            epoll_ctl(w->ep, EPOLL_CTL_ADD, w->efd, &ee) || pthread_create(&w->th, NULL, worker_main, w)) {
            int e = errno;
            atomic_store(&h->stop, 1);
            for (int j = 0; j < i; j++) {
                uint64_t v = 1;
                ssize_t r = write(h->w[j].efd, &v, sizeof v);
                (void)r;
                pthread_join(h->w[j].th, NULL);
            }
            errno = e;
            goto fail;
        }
    }
    return h;
fail:;
    int e = errno;
    if (h->lfd >= 0) close(h->lfd);
    qx_free(h->w);
    qx_free(h);
    errno = e;
    return NULL;
}

int qxs_http_port(const struct qxs_http *h) { return h->port; }

void qxs_http_stop(struct qxs_http *h) {
    if (!h) return;
    atomic_store(&h->stop, 1);
    for (int i = 0; i < h->nworkers; i++) {
        uint64_t v = 1;
        ssize_t r = write(h->w[i].efd, &v, sizeof v);
        (void)r;
    }
    for (int i = 0; i < h->nworkers; i++) pthread_join(h->w[i].th, NULL);
    for (int i = 0; i < h->nworkers; i++) {
        worker *w = &h->w[i];
        while (w->incoming) { /* handed over while the workers stopped */
            conn *c = w->incoming;
            w->incoming = c->next;
            slot_free(h, c->slot);
            close(c->fd);
            qx_free(c);
        }
        close(w->ep);
        close(w->efd);
        pthread_mutex_destroy(&w->in_mu);
    }
    close(h->lfd);
    qx_free(h->slots);
    qx_free(h->w);
    pthread_mutex_destroy(&h->mu);
    qx_free(h);
}

void qxs_http_debug_dump(const qxs_http *h, FILE *f) {
    double now = qx_now();
    for (int i = 0; i < h->nworkers; i++) {
        const worker *w = &h->w[i];
        fprintf(f, "worker %d: nconns %d incoming %p\n", i, atomic_load(&w->nconns), (void *)w->incoming);
        for (const conn *c = w->list; c; c = c->next)
            fprintf(f, "  conn %p fd %d st %d interest %u eof %d close_after %d in_len %zu deadline %+.3f has_req %d status %d\n",
                    (const void *)c, c->fd, (int)c->st, c->interest, c->eof, c->close_after, c->in_len, c->deadline - now,
                    c->has_req, c->status);
    }
    fprintf(f, "slots %zu live %zu\n", h->nslots, h->live);
    for (size_t i = 0; i < h->nslots; i++)
        if (h->slots[i].c)
            fprintf(f, "  slot %zu fd %d conn %p evictable %d evicted %d\n", i, h->slots[i].fd, (void *)h->slots[i].c,
                    h->slots[i].evictable, h->slots[i].evicted);
}

int qxs_http_debug_fd_live(const qxs_http *h, int fd) {
    for (size_t i = 0; i < h->nslots; i++)
        if (h->slots[i].c && h->slots[i].fd == fd) return 1;
    return 0;
}

size_t qxs_http_debug_live(const qxs_http *h) { return h->live; }

double qxs_http_debug_newest(const qxs_http *h) {
    double newest = 0;
    for (size_t i = 0; i < h->nslots; i++)
        if (h->slots[i].c && h->slots[i].since > newest) newest = h->slots[i].since;
    return newest;
}
