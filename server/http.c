/* server/http.c — libmicrohttpd glue: body accumulation under the size limit,
 * authentication, the Qdrant envelope, metrics and the per-request log line.
 *
 * Decisions:
 * 1. A body whose Content-Length exceeds the limit is answered 413 before it
 *    is read (curl's Expect: 100-continue then never sends it); a chunked
 *    body is counted as it arrives, dropped once over the limit, and answered
 *    413 at its end — MHD cannot reply in the middle of an upload.
 * 2. The API key is compared in constant time; /healthz and /readyz are open
 *    (orchestrators probe them without secrets), everything else needs it.
 * 3. Each request thread sets OpenBLAS and OpenMP to one thread the first
 *    time it runs, so 2 cores serving 16 connections are not oversubscribed.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <microhttpd.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "http.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"

void openblas_set_num_threads(int n);

typedef struct req {
    double t0;
    char *body;
    size_t len, cap;
    int too_large;
    int responded;
    int status;
    size_t resp_len;
    const char *label;
    char method[8];
    char path[160];
} req;

static _Thread_local int tl_threads_set;

static int auth_ok(qxs_server *s, struct MHD_Connection *c) {
    const char *key = s->cfg.api_key;
    if (!key[0]) return 1;
    const char *got = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "api-key");
    if (!got) {
        const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (a && !strncasecmp(a, "Bearer ", 7)) got = a + 7;
    }
    if (!got) return 0;
    size_t kl = strlen(key), gl = strlen(got);
    unsigned char diff = (unsigned char)(kl != gl);
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)(key[i] ^ (i < gl ? got[i] : 0));
    return diff == 0;
}

/* jansson -> growable buffer */
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

static void free_cb(void *p) { qx_free(p); }

static enum MHD_Result send_reply(struct MHD_Connection *conn, req *r, qxs_reply *rep) {
    char *body;
    size_t len;
    const char *ctype = "application/json";
    double t = qx_now() - r->t0;
    if (rep->raw) {
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
        if (!d.p) {
            static const char oom[] = "{\"status\":{\"error\":\"out of memory\"},\"time\":0}";
            d.p = qx_malloc(sizeof oom);
            if (!d.p) return MHD_NO;
            memcpy(d.p, oom, sizeof oom);
            d.len = sizeof oom - 1;
            rep->status = 500;
        }
        body = d.p;
        len = d.len;
    }
    if (rep->result) json_decref(rep->result);
    rep->result = NULL;
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, body, free_cb);
    if (!resp) {
        qx_free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    if (rep->status == 405 && rep->allow) MHD_add_response_header(resp, "Allow", rep->allow);
    if (rep->status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    r->status = rep->status;
    r->resp_len = len;
    r->responded = 1;
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)rep->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, req *r, int status, const char *msg) {
    qxs_reply rep;
    memset(&rep, 0, sizeof rep);
    rep.status = status;
    snprintf(rep.err, sizeof rep.err, "%s", msg);
    return send_reply(conn, r, &rep);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    qxs_server *s = cls;
    req *r = *con_cls;
    if (!r) {
        if (!tl_threads_set) {
            openblas_set_num_threads(1);
            omp_set_num_threads(1);
            tl_threads_set = 1;
        }
        r = qx_calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->t0 = qx_now();
        *con_cls = r;
        snprintf(r->method, sizeof r->method, "%s", method);
        /* log only printable ASCII of the path: a hostile URL must not
         * forge log lines */
        size_t pl = 0;
        for (const char *p = url; *p && pl < sizeof r->path - 1; p++)
            r->path[pl++] = (*p > 32 && *p < 127) ? *p : '?';
        r->path[pl] = 0;
        atomic_fetch_add(&s->active_requests, 1);
        qxs_route rt;
        qxs_route_parse(url, &rt);
        r->label = qxs_ep_label(rt.ep, method);
        if (!auth_ok(s, conn) && rt.ep != QXS_EP_HEALTHZ && rt.ep != QXS_EP_READYZ)
            return reply_error(conn, r, 401, "missing or wrong API key (send 'api-key: KEY' or "
                                             "'Authorization: Bearer KEY')");
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            unsigned long long v = strtoull(cl, &end, 10);
            if (v > s->cfg.max_body) {
                char msg[128];
                snprintf(msg, sizeof msg, "request body of %llu bytes exceeds the limit of %zu bytes", v,
                         s->cfg.max_body);
                return reply_error(conn, r, 413, msg);
            }
        }
        return MHD_YES;
    }
    if (r->responded) {
        *upload_size = 0; /* an early reply was queued: drop the rest */
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_large) return MHD_YES;
        if (r->len + n > s->cfg.max_body) {
            r->too_large = 1;
            qx_free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->len + n + 1) cap *= 2;
            if (cap > s->cfg.max_body + 1) cap = s->cfg.max_body + 1;
            char *b = qx_realloc(r->body, cap);
            if (!b) return reply_error(conn, r, 500, "out of memory for the request body") == MHD_YES ? MHD_YES : MHD_NO;
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body exceeds the limit of %zu bytes", s->cfg.max_body);
        return reply_error(conn, r, 413, msg);
    }
    qxs_route rt;
    qxs_route_parse(url, &rt);
    qxs_reply rep;
    qxs_api_handle(s, &rt, method, r->body ? r->body : "", r->len, &rep);
    enum MHD_Result ret = send_reply(conn, r, &rep);
    qx_free(rep.raw);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    qxs_server *s = cls;
    req *r = *con_cls;
    if (!r) return;
    double t = qx_now() - r->t0;
    qxs_metrics_observe(&s->m, r->label ? r->label : "unknown", r->responded ? r->status : 0, t);
    if (qxs_log_level_cur >= QXS_LOG_INFO)
        qxs_log(QXS_LOG_INFO, "%s %s endpoint=%s status=%d bytes_in=%zu bytes_out=%zu ms=%.3f%s", r->method,
                r->path, r->label ? r->label : "?",
                r->responded ? r->status : 0, r->len, r->resp_len, t * 1e3,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    qx_free(r->body);
    qx_free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->active_requests, 1);
}

/* Percent-decoding of the path, except %00: a NUL would silently cut the
 * path short ("/collections/a%00b" -> "a"); kept as "%00" it fails the name
 * check instead. Returns the new length. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s) {
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2])) {
            char hex[3] = {r[1], r[2], 0};
            long v = strtol(hex, NULL, 16);
            if (v != 0) {
                *w++ = (char)v;
                r += 3;
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = 0;
    return (size_t)(w - s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n') buf[--n] = 0;
    qxs_log(QXS_LOG_DEBUG, "libmicrohttpd: %s", buf);
}

struct MHD_Daemon *qxs_http_start(qxs_server *s, struct sockaddr *addr) {
    /* TURBO: no per-connection shutdown()/extra checks; keep-alive clients
     * (wrk, SDKs) dominate and gain a few syscalls per request. */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    if (addr->sa_family == AF_INET6) flags |= MHD_USE_IPv6;
    return MHD_start_daemon(flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->cfg.threads, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_UNESCAPE_CALLBACK,
                            unescape, s, MHD_OPTION_END);
}
