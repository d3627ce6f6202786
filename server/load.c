/* server/load.c — `qinx serve load`: upload a vector file (or seeded random
 * clustered vectors) to a running server in JSON batches over one keep-alive
 * HTTP/1.1 connection. It exists so that the demo and the load tests need
 * nothing beyond the qinx binary and curl (no Python): a minimal blocking
 * HTTP client that speaks only what our own server answers (Content-Length
 * bodies). Vectors are printed with %.9g, which round-trips float32 exactly.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netdb.h>
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

int qxs_load_main(int argc, char **argv) {
    const char *url = "http://127.0.0.1:6333", *coll = NULL, *src = NULL, *dist = NULL;
    size_t batch = 1000, limit = 0, id_base = 0;
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
        else if (!strcmp(a, "--api-key")) h.key = (char *)v;
        else {
            fprintf(stderr, "qinx serve load: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (!coll || !src || batch == 0 || batch > 65536) {
        fprintf(stderr, "usage: qinx serve load --url http://HOST:PORT --collection NAME [--distance Euclid|Cosine|Dot]\n"
                        "         [--batch N (1..65536, default 1000)] [--limit N] [--id-base N] [--api-key KEY]\n"
                        "         FILE.fvecs|FILE.bvecs|random:N:D[:SEED]\n"
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
    snprintf(path, sizeof path, "/collections/%s/points", coll);
    size_t cap = batch * (m.d * 17 + 48) + 64;
    char *body = qx_malloc(cap);
    if (!body) return 1;
    double t0 = qx_now();
    int rc = 0;
    for (size_t s = 0; s < m.n; s += batch) {
        size_t e = s + batch < m.n ? s + batch : m.n, len = 0;
        len += (size_t)snprintf(body + len, cap - len, "{\"points\":[");
        for (size_t i = s; i < e; i++) {
            len += (size_t)snprintf(body + len, cap - len, "%s{\"id\":%zu,\"vector\":[", i > s ? "," : "", id_base + i);
            const float *v = m.data + i * m.d;
            for (size_t j = 0; j < m.d; j++)
                len += (size_t)snprintf(body + len, cap - len, j ? ",%.9g" : "%.9g", (double)v[j]);
            len += (size_t)snprintf(body + len, cap - len, "]}");
        }
        len += (size_t)snprintf(body + len, cap - len, "]}");
        st = h_request(&h, "PUT", path, body, len, &resp);
        if (st != 200) {
            fprintf(stderr, "qinx serve load: batch at %zu: HTTP %d %s\n", s, st, resp ? resp : "(no reply)");
            qx_free(resp);
            rc = 1;
            break;
        }
        qx_free(resp);
        if ((s / batch) % 20 == 19) fprintf(stderr, "qinx serve load: %zu / %zu points\n", e, m.n);
    }
    double t = qx_now() - t0;
    if (!rc)
        fprintf(stderr, "qinx serve load: %zu points of dimension %zu uploaded to %s in %.2f s (%.0f points/s)\n", m.n,
                m.d, coll, t, m.n / (t > 0 ? t : 1e-9));
    qx_free(body);
    if (own) qx_free(own);
    else qx_matrix_free(&m);
    if (h.fd >= 0) close(h.fd);
    return rc;
}
