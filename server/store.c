/* server/store.c — raw vector storage, exact search and snapshots (store.h).
 *
 * Decisions:
 * 1. Dense rows + swap-on-delete: exact search scans one contiguous block with
 *    the batched kernels (qx_l2sqr_ny / qx_dot_ny) in chunks, so brute force
 *    is memory-bandwidth bound, not pointer chasing.
 * 2. The id map is the index/ open-addressing map (row numbers as values).
 * 3. Snapshots carry a CRC over everything after the magic and are published
 *    by rename, so a reader sees either the old or the new file, never half.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qinx/kernels.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "store.h"
#include "wal.h"

#define SNAP_MAGIC "QXSNAP01"
#define SEARCH_CHUNK 1024

void qxs_store_init(qxs_store *s, size_t d) {
    memset(s, 0, sizeof *s);
    s->d = d;
}

void qxs_store_free(qxs_store *s) {
    qx_free(s->ids);
    qx_aligned_free(s->vecs);
    qx_idmap_free(&s->map);
    memset(s, 0, sizeof *s);
}

int qxs_store_reserve(qxs_store *s, size_t more) {
    size_t need;
    if (!qx_size_add(s->n, more, &need)) return qx_error_set(QX_ENOMEM, "store size overflow");
    if (need > UINT32_MAX) return qx_error_set(QX_ELIMIT, "a collection holds at most 2^32-1 points");
    if (qx_idmap_reserve(&s->map, need)) return qx_error_set(QX_ENOMEM, "id map for %zu points", need);
    if (need <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < need) cap *= 2;
    size_t bytes;
    if (!qx_size_mul3(cap, s->d, sizeof(float), &bytes)) return qx_error_set(QX_ENOMEM, "store size overflow");
    float *v = qx_aligned_alloc(bytes);
    int64_t *ids = qx_realloc(s->ids, cap * sizeof(int64_t));
    if (!v || !ids) {
        qx_aligned_free(v);
        if (ids) s->ids = ids;
        return qx_error_set(QX_ENOMEM, "store of %zu points", cap);
    }
    if (s->n) memcpy(v, s->vecs, s->n * s->d * sizeof(float));
    qx_aligned_free(s->vecs);
    s->vecs = v;
    s->ids = ids;
    s->cap = cap;
    return 0;
}

int qxs_store_upsert(qxs_store *s, const int64_t *ids, const float *x, size_t n) {
    int rc = qxs_store_reserve(s, n);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        uint64_t row;
        if (!qx_idmap_get(&s->map, ids[i], &row)) {
            row = s->n++;
            s->ids[row] = ids[i];
            if (qx_idmap_put(&s->map, ids[i], row)) return qx_error_set(QX_ENOMEM, "id map");
        }
        memcpy(s->vecs + row * s->d, x + i * s->d, s->d * sizeof(float));
    }
    return 0;
}

void qxs_store_delete(qxs_store *s, const int64_t *ids, size_t n, size_t *removed) {
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t row;
        if (!qx_idmap_get(&s->map, ids[i], &row)) continue;
        qx_idmap_del(&s->map, ids[i]);
        size_t last = s->n - 1;
        if (row != last) {
            s->ids[row] = s->ids[last];
            memcpy(s->vecs + row * s->d, s->vecs + last * s->d, s->d * sizeof(float));
            qx_idmap_put(&s->map, s->ids[row], row); /* overwrite: cannot grow */
        }
        s->n--;
        cnt++;
    }
    if (removed) *removed = cnt;
}

const float *qxs_store_get(const qxs_store *s, int64_t id) {
    uint64_t row;
    if (!qx_idmap_get(&s->map, id, &row)) return NULL;
    return s->vecs + row * s->d;
}

void qxs_topk_push(qxs_topk *h, float dist, int64_t id) {
    /* max-heap on dist: the root is the worst kept entry */
    float *D = h->dist;
    int64_t *I = h->ids;
    if (h->n < h->k) {
        size_t i = h->n++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (D[p] >= dist) break;
            D[i] = D[p];
            I[i] = I[p];
            i = p;
        }
        D[i] = dist;
        I[i] = id;
        return;
    }
    if (h->k == 0 || !(dist < D[0])) return;
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        float md = dist;
        if (l < n && D[l] > md) m = l, md = D[l];
        if (r < n && D[r] > md) m = r, md = D[r];
        if (m == i) break;
        D[i] = D[m];
        I[i] = I[m];
        i = m;
    }
    D[i] = dist;
    I[i] = id;
}

size_t qxs_topk_finish(qxs_topk *h) {
    size_t n = h->n;
    /* heap sort in place: repeatedly move the max to the end */
    for (size_t end = n; end > 1; end--) {
        float d = h->dist[end - 1];
        int64_t id = h->ids[end - 1];
        h->dist[end - 1] = h->dist[0];
        h->ids[end - 1] = h->ids[0];
        size_t i = 0, m2 = end - 1;
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            float md = d;
            if (l < m2 && h->dist[l] > md) m = l, md = h->dist[l];
            if (r < m2 && h->dist[r] > md) m = r, md = h->dist[r];
            if (m == i) break;
            h->dist[i] = h->dist[m];
            h->ids[i] = h->ids[m];
            i = m;
        }
        h->dist[i] = d;
        h->ids[i] = id;
    }
    for (size_t i = n; i < h->k; i++) {
        h->dist[i] = INFINITY;
        h->ids[i] = -1;
    }
    return n;
}

int qxs_store_search(const qxs_store *s, const float *q, size_t k, int metric, float *dist,
                     int64_t *ids, size_t *found) {
    float buf[SEARCH_CHUNK];
    qxs_topk h = {.k = k, .n = 0, .dist = dist, .ids = ids};
    for (size_t start = 0; start < s->n; start += SEARCH_CHUNK) {
        size_t m = s->n - start < SEARCH_CHUNK ? s->n - start : SEARCH_CHUNK;
        const float *rows = s->vecs + start * s->d;
        if (metric == 0) {
            qx_l2sqr_ny(buf, q, rows, s->d, m);
        } else {
            qx_dot_ny(buf, q, rows, s->d, m);
            for (size_t j = 0; j < m; j++) buf[j] = -buf[j];
        }
        for (size_t j = 0; j < m; j++) qxs_topk_push(&h, buf[j], s->ids[start + j]);
    }
    size_t f = qxs_topk_finish(&h);
    if (found) *found = f;
    return 0;
}

void qxs_store_dist(const qxs_store *s, const float *q, int metric, const int64_t *ids, size_t n,
                    float *dist) {
    for (size_t i = 0; i < n; i++) {
        const float *x = ids[i] >= 0 ? qxs_store_get(s, ids[i]) : NULL;
        if (!x) dist[i] = INFINITY;
        else if (metric == 0) dist[i] = qx_l2sqr(q, x, s->d);
        else dist[i] = -qx_dot(q, x, s->d);
    }
}

int qxs_store_save(const qxs_store *s, uint64_t lsn, const char *path) {
    qx_afile f;
    int rc = qx_afile_open(&f, path);
    if (rc) return rc;
    uint8_t hdr[32];
    uint32_t d32 = (uint32_t)s->d, zero = 0;
    uint64_t n64 = s->n;
    memcpy(hdr, SNAP_MAGIC, 8);
    memcpy(hdr + 8, &d32, 4);
    memcpy(hdr + 12, &zero, 4);
    memcpy(hdr + 16, &n64, 8);
    memcpy(hdr + 24, &lsn, 8);
    uint32_t crc = qx_crc32(0, hdr + 8, 24);
    crc = qx_crc32(crc, s->ids, s->n * 8);
    crc = qx_crc32(crc, s->vecs, s->n * s->d * 4);
    rc = qx_afile_write(&f, hdr, 32);
    if (!rc) rc = qx_afile_write(&f, s->ids, s->n * 8);
    if (!rc) rc = qx_afile_write(&f, s->vecs, s->n * s->d * 4);
    if (!rc) rc = qx_afile_write(&f, &crc, 4);
    if (rc) {
        qx_afile_abort(&f);
        return rc;
    }
    return qx_afile_commit(&f);
}

static int read_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int qxs_store_load(qxs_store *s, const char *path, uint64_t *lsn) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return qx_error_set(QX_ENOTFOUND, "%s: no snapshot", path);
        return qx_error_set(QX_EIO, "open %s: %s", path, strerror(errno));
    }
    struct stat st;
    uint8_t hdr[32];
    int rc = 0;
    if (fstat(fd, &st) != 0 || read_all(fd, hdr, 32) != 0 || memcmp(hdr, SNAP_MAGIC, 8) != 0) {
        close(fd);
        return qx_error_set(QX_EFORMAT, "%s: not a qinx snapshot (bad magic or truncated header)", path);
    }
    uint32_t d32;
    uint64_t n64;
    memcpy(&d32, hdr + 8, 4);
    memcpy(&n64, hdr + 16, 8);
    memcpy(lsn, hdr + 24, 8);
    size_t vbytes, total;
    if (d32 != s->d || n64 > UINT32_MAX || !qx_size_mul3(n64, s->d, 4, &vbytes) ||
        !qx_size_add(vbytes, 36 + 8 * n64, &total) || total != (size_t)st.st_size) {
        close(fd);
        return qx_error_set(QX_EFORMAT, "%s: header says d=%u n=%llu, file has %lld bytes (expected d=%zu)",
                        path, d32, (unsigned long long)n64, (long long)st.st_size, s->d);
    }
    if ((rc = qxs_store_reserve(s, n64))) {
        close(fd);
        return rc;
    }
    uint32_t crc_file;
    if (read_all(fd, s->ids, n64 * 8) || read_all(fd, s->vecs, vbytes) || read_all(fd, &crc_file, 4)) {
        close(fd);
        return qx_error_set(QX_EFORMAT, "%s: truncated", path);
    }
    close(fd);
    uint32_t crc = qx_crc32(0, hdr + 8, 24);
    crc = qx_crc32(crc, s->ids, n64 * 8);
    crc = qx_crc32(crc, s->vecs, vbytes);
    if (crc != crc_file) return qx_error_set(QX_EFORMAT, "%s: checksum mismatch", path);
    s->n = n64;
    for (size_t i = 0; i < s->n; i++) {
        uint64_t row;
        if (s->ids[i] < 0 || qx_idmap_get(&s->map, s->ids[i], &row)) {
            s->n = 0;
            return qx_error_set(QX_EFORMAT, "%s: bad or duplicate id at row %zu", path, i);
        }
        if (qx_idmap_put(&s->map, s->ids[i], i)) return qx_error_set(QX_ENOMEM, "id map");
    }
    return 0;
}
