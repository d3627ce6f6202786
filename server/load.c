/* server/load.c — `qinx serve load`: upload a vector file (or seeded random
 * clustered vectors) to a running server in JSON batches over keep-alive
 * HTTP/1.1 connections. It exists so that the demo and the load tests need
 * nothing beyond the qinx binary and curl (no Python): a minimal blocking
 * HTTP client that speaks only what our own server answers (Content-Length
 * bodies).
 *
 * Decisions:
 * 1. Vectors are printed with 9 significant digits, which round-trips
 *    float32 exactly (fmt_f32: integer digits instead of snprintf's %.9g,
 *    which cost ~40 us a 128-d point; the decimal exponent from frexp and a
 *    table, not log10).
 * 2. --parallel connections (default 2), each with its own thread taking the
 *    next batch: with one connection the client formatted while the server
 *    waited and the server parsed while the client waited, so each side ran
 *    at most half the time. Batches hold distinct ids, so their order of
 *    arrival does not matter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qinx/rng.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "qinx/vecfile.h"

typedef struct hconn {
    char host[256], port[16];
    int fd;
    char *key;
} hconn;

static int h_connect(hconn *h) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(h->host, h->port, &hints, &res) != 0 || !res) return -1;
    h->fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd < 0 || connect(h->fd, res->ai_addr, res->ai_addrlen) != 0) {
        if (h->fd >= 0) close(h->fd);
        h->fd = -1;
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return 0;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One request; returns the HTTP status (or -1) and the body in *out (qx_free). */
static int h_request(hconn *h, const char *method, const char *path, const char *body, size_t blen, char **out) {
    *out = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (h->fd < 0 && h_connect(h)) return -1;
        char hdr[1024];
        int hl = snprintf(hdr, sizeof hdr,
                          "%s %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n%s%s%s\r\n",
                          method, path, h->host, h->port, blen, h->key ? "api-key: " : "", h->key ? h->key : "",
                          h->key ? "\r\n" : "");
        if (send_all(h->fd, hdr, (size_t)hl) || (blen && send_all(h->fd, body, blen))) {
            close(h->fd);
            h->fd = -1;
            continue; /* stale keep-alive connection: retry once */
        }
        size_t cap = 65536, len = 0;
        char *buf = qx_malloc(cap + 1);
        if (!buf) return -1;
        char *hend = NULL;
        while (!hend) {
            if (len == cap) break;
            ssize_t r = recv(h->fd, buf + len, cap - len, 0);
            if (r <= 0) break;
            len += (size_t)r;
            buf[len] = 0;
            hend = strstr(buf, "\r\n\r\n");
        }
        if (!hend) {
            qx_free(buf);
            close(h->fd);
            h->fd = -1;
            if (len == 0 && attempt == 0) continue;
            return -1;
        }
        int status = atoi(buf + 9);
        size_t clen = 0;
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl && cl < hend) clen = strtoull(cl + 17, NULL, 10);
        int closing = strcasestr(buf, "\r\nConnection: close") != NULL;
        size_t hsize = (size_t)(hend + 4 - buf);
        char *b = qx_malloc(clen + 1);
        if (!b) {
            qx_free(buf);
            return -1;
        }
        size_t have = len - hsize < clen ? len - hsize : clen;
        memcpy(b, buf + hsize, have);
        qx_free(buf);
        while (have < clen) {
            ssize_t r = recv(h->fd, b + have, clen - have, 0);
            if (r <= 0) break;
            have += (size_t)r;
        }
        b[have] = 0;
        if (closing || have < clen) {
            close(h->fd);
            h->fd = -1;
        }
        *out = b;
        return status;
    }
    return -1;
}


/* 10^k for k in [-60, 60] as doubles (pow() once, at first use). */
static double p10[121];
static void p10_init(void) {
    if (p10[60] == 1.0) return;
    for (int k = -60; k <= 60; k++) p10[k + 60] = pow(10.0, k);
}

/* f with 9 significant digits ("-1.23456789e-05", trailing zeros dropped):
 * within 1e-8 relative of f, well inside the half-ulp (6e-8) that makes the
 * text parse back to the same float32. Returns the length. */
static int fmt_f32(char *out, float f) {
    char *s = out;
    double x = f;
    if (!isfinite(x)) return sprintf(out, "%.9g", x); /* the server refuses it with a clear 422 */
    if (signbit(x)) *s++ = '-', x = -x;
    if (x == 0) {
        *s++ = '0';
        return (int)(s - out);
    }
    /* e = floor(log10 x) give or take one (the digit count below corrects
     * it): x = fr 2^b with fr in [0.5, 1), so log10 x is in [(b-1) lg 2, b lg 2) */
    int b;
    frexp(x, &b);
    int e = (int)floor((b - 1) * 0.30102999566398120);
    if (x >= p10[60 + e + 1]) e++;
    uint64_t m = (uint64_t)llround(x * p10[60 + 8 - e]);
    if (m >= 1000000000u) m = (m + 5) / 10, e++;
    else if (m < 100000000u) m = (uint64_t)llround(x * p10[60 + 9 - e]), e--;
    char dig[9];
    for (int i = 8; i >= 0; i--) dig[i] = (char)('0' + m % 10), m /= 10;
    int last = 8;
    while (last > 0 && dig[last] == '0') last--;
    *s++ = dig[0];
    if (last > 0) {
        *s++ = '.';
        memcpy(s, dig + 1, (size_t)last);
        s += last;
    }
    if (e) {
        *s++ = 'e';
        if (e < 0) *s++ = '-', e = -e;
        if (e >= 10) *s++ = (char)('0' + e / 10);
        *s++ = (char)('0' + e % 10);
    }
    return (int)(s - out);
}

/* v in decimal; returns the length. */
static size_t fmt_u64(char *out, uint64_t v) {
    char t[20];
    size_t n = 0;
    do t[n++] = (char)('0' + v % 10), v /= 10;
    while (v);
    for (size_t i = 0; i < n; i++) out[i] = t[n - 1 - i];
    return n;
}

/* n x d clustered Gaussian vectors (100 blobs), deterministic in seed. */
static float *make_random(size_t n, size_t d, uint64_t seed) {
    size_t nc = 100;
    float *cent = qx_malloc(nc * d * sizeof(float)), *x = qx_malloc(n * d * sizeof(float));
    if (!cent || !x) {
        qx_free(cent);
        qx_free(x);
        return NULL;
    }
    uint64_t s = seed;
    for (size_t i = 0; i < nc * d; i++) cent[i] = (float)(2.0 * qx_rng_normal(&s));
    for (size_t i = 0; i < n; i++) {
        size_t c = qx_rng_next(&s) % nc;
        for (size_t j = 0; j < d; j++) x[i * d + j] = cent[c * d + j] + (float)qx_rng_normal(&s);
    }
    qx_free(cent);
    return x;
}

/* The upload shared by the --parallel threads. */
typedef struct loader {
    const hconn *proto; /* host, port, key */
    const qx_matrix *m;
    const char *path;
    size_t batch, id_base, nbatches;
    atomic_size_t next; /* next batch to send */
    atomic_size_t sent; /* batches acknowledged */
    atomic_int failed;
    pthread_mutex_t mu; /* stderr lines */
} loader;

static void *load_thread(void *arg) {
    loader *L = arg;
    const qx_matrix *m = L->m;
    hconn h = *L->proto;
    h.fd = -1;
    size_t cap = L->batch * (m->d * 17 + 48) + 64; /* a number takes at most 16 characters + ',' */
    char *body = qx_malloc(cap), *resp = NULL;
    if (!body) {
        pthread_mutex_lock(&L->mu);
        if (!atomic_exchange(&L->failed, 1)) fprintf(stderr, "qinx serve load: out of memory for a batch\n");
        pthread_mutex_unlock(&L->mu);
        return NULL;
    }
    for (;;) {
        size_t b = atomic_fetch_add(&L->next, 1);
        if (b >= L->nbatches || atomic_load(&L->failed)) break;
        size_t s = b * L->batch, e = s + L->batch < m->n ? s + L->batch : m->n, len = 0;
        memcpy(body, "{\"points\":[", 11);
        len = 11;
        for (size_t i = s; i < e; i++) {
            if (i > s) body[len++] = ',';
            memcpy(body + len, "{\"id\":", 6);
            len += 6;
            len += fmt_u64(body + len, L->id_base + i);
            memcpy(body + len, ",\"vector\":[", 11);
            len += 11;
            const float *v = m->data + i * m->d;
            for (size_t j = 0; j < m->d; j++) {
                if (j) body[len++] = ',';
                len += (size_t)fmt_f32(body + len, v[j]);
            }
            memcpy(body + len, "]}", 2);
            len += 2;
        }
        memcpy(body + len, "]}", 2);
        len += 2;
        int st = h_request(&h, "PUT", L->path, body, len, &resp);
        if (st != 200) {
            pthread_mutex_lock(&L->mu);
            if (!atomic_exchange(&L->failed, 1))
                fprintf(stderr, "qinx serve load: batch at %zu: HTTP %d %s\n", s, st, resp ? resp : "(no reply)");
            pthread_mutex_unlock(&L->mu);
            qx_free(resp);
            break;
        }
        qx_free(resp);
        size_t done = atomic_fetch_add(&L->sent, 1) + 1;
        if (done % 20 == 0) {
            pthread_mutex_lock(&L->mu);
            fprintf(stderr, "qinx serve load: %zu / %zu points\n", done * L->batch < m->n ? done * L->batch : m->n,
                    m->n);
            pthread_mutex_unlock(&L->mu);
        }
    }
    qx_free(body);
    if (h.fd >= 0) close(h.fd);
    return NULL;
}

int qxs_load_main(int argc, char **argv) {
    const char *url = "http://127.0.0.1:6333", *coll = NULL, *src = NULL, *dist = NULL;
    size_t batch = 1000, limit = 0, id_base = 0, parallel = 2;
    hconn h = {.fd = -1};
    h.key = getenv("QINX_API_KEY");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            src = a;
            continue;
        }
        if (!v) {
            fprintf(stderr, "qinx serve load: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--url")) url = v;
        else if (!strcmp(a, "--collection")) coll = v;
        else if (!strcmp(a, "--distance")) dist = v;
        else if (!strcmp(a, "--batch")) batch = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--limit")) limit = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--id-base")) id_base = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--parallel")) parallel = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--api-key")) h.key = (char *)v;
        else {
            fprintf(stderr, "qinx serve load: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (!coll || !src || batch == 0 || batch > 65536 || parallel == 0 || parallel > 64) {
        fprintf(stderr, "usage: qinx serve load --url http://HOST:PORT --collection NAME [--distance Euclid|Cosine|Dot]\n"
                        "         [--batch N (1..65536, default 1000)] [--parallel N (connections, 1..64, default 2)]\n"
                        "         [--limit N] [--id-base N] [--api-key KEY] FILE.fvecs|FILE.bvecs|random:N:D[:SEED]\n"
                        "--distance creates the collection first (an existing one is appended to).\n");
        return 2;
    }
    if (strncmp(url, "http://", 7)) {
        fprintf(stderr, "qinx serve load: only http:// URLs are supported\n");
        return 2;
    }
    const char *hp = url + 7, *colon = strrchr(hp, ':');
    size_t hl = colon ? (size_t)(colon - hp) : strcspn(hp, "/");
    if (hl >= sizeof h.host) return 2;
    memcpy(h.host, hp, hl);
    snprintf(h.port, sizeof h.port, "%.*s", colon ? (int)strcspn(colon + 1, "/") : 2, colon ? colon + 1 : "80");

    qx_matrix m = {0};
    float *own = NULL;
    if (!strncmp(src, "random:", 7)) {
        unsigned long long n = 0, d = 0, seed = 42;
        if (sscanf(src + 7, "%llu:%llu:%llu", &n, &d, &seed) < 2 || n == 0 || d == 0 || d > QX_MAX_DIM) {
            fprintf(stderr, "qinx serve load: bad random spec '%s' (random:N:D[:SEED])\n", src);
            return 2;
        }
        own = make_random(n, d, seed);
        if (!own) return 1;
        m.data = own;
        m.n = n;
        m.d = d;
    } else if (qx_vecs_read(src, limit, &m)) {
        fprintf(stderr, "qinx serve load: %s\n", qx_last_error());
        return 1;
    }
    if (limit && m.n > limit) m.n = limit;
    char path[512], *resp = NULL;
    int st;
    if (dist) {
        char body[256];
        int bl = snprintf(body, sizeof body, "{\"vectors\":{\"size\":%zu,\"distance\":\"%s\"}}", m.d, dist);
        snprintf(path, sizeof path, "/collections/%s", coll);
        st = h_request(&h, "PUT", path, body, (size_t)bl, &resp);
        if (st != 200 && st != 409) {
            fprintf(stderr, "qinx serve load: creating %s: HTTP %d %s\n", coll, st, resp ? resp : "(no reply)");
            qx_free(resp);
            return 1;
        }
        if (st == 409) fprintf(stderr, "qinx serve load: collection %s exists; adding to it\n", coll);
        qx_free(resp);
    }
    if (h.fd >= 0) close(h.fd);
    h.fd = -1;
    snprintf(path, sizeof path, "/collections/%s/points", coll);
    p10_init();
    loader L = {.proto = &h, .m = &m, .path = path, .batch = batch, .id_base = id_base,
                .nbatches = (m.n + batch - 1) / batch};
    atomic_init(&L.next, 0);
    atomic_init(&L.sent, 0);
    atomic_init(&L.failed, 0);
    pthread_mutex_init(&L.mu, NULL);
    if (parallel > L.nbatches) parallel = L.nbatches ? L.nbatches : 1;
    pthread_t th[64];
    size_t started = 0;
    double t0 = qx_now();
    for (; started + 1 < parallel; started++)
        if (pthread_create(&th[started], NULL, load_thread, &L)) break;
    load_thread(&L);
    for (size_t i = 0; i < started; i++) pthread_join(th[i], NULL);
    double t = qx_now() - t0;
    int rc = atomic_load(&L.failed) ? 1 : 0;
    if (!rc)
        fprintf(stderr, "qinx serve load: %zu points of dimension %zu uploaded to %s in %.2f s (%.0f points/s)\n", m.n,
                m.d, coll, t, m.n / (t > 0 ? t : 1e-9));
    pthread_mutex_destroy(&L.mu);
    if (own) qx_free(own);
    else qx_matrix_free(&m);
    return rc;
}
