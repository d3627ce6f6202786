/* server/wal.c — the per-collection write-ahead log (see wal.h).
 *
 * Decisions:
 * 1. One record per request batch, so a crash leaves a batch either whole
 *    (checksum good) or absent: nothing acknowledged is lost and nothing
 *    unacknowledged is half-present.
 * 2. A bad record ends the log (we cannot tell a torn tail from later
 *    garbage); the file is truncated there before any new append, otherwise
 *    records written after restart would hide behind the bad bytes.
 * 3. Group commit: writers append under the collection's writer mutex and
 *    then wait for durability here; one fdatasync covers every record
 *    written before it began, so N concurrent upserts cost ~1 fsync.
 * Records are little-endian (the only byte order qinx supports).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "wal.h"

static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

size_t qxs_wal_parse(const uint8_t *buf, size_t len, size_t d, qxs_wal_apply_fn fn, void *ctx,
                     int *fn_error) {
    size_t off = 0;
    if (fn_error) *fn_error = 0;
    while (len - off >= QXS_WAL_HDR) {
        uint32_t plen = rd32(buf + off), crc = rd32(buf + off + 4);
        if (plen < QXS_WAL_PAYLOAD_HDR || plen > QXS_WAL_MAX_RECORD || plen > len - off - QXS_WAL_HDR)
            break;
        const uint8_t *p = buf + off + QXS_WAL_HDR;
        if (qx_crc32(0, p, plen) != crc) break;
        qxs_wal_rec r = {.type = p[0], .lsn = rd64(p + 1), .n = rd32(p + 9)};
        size_t per = 8, need;
        if (r.type == QXS_WAL_UPSERT) {
            if (!qx_size_mul(d, 4, &per) || !qx_size_add(per, 8, &per)) break;
        } else if (r.type == QXS_WAL_META) {
            per = 1;
        } else if (r.type != QXS_WAL_DELETE) {
            break;
        }
        if (!qx_size_mul(per, r.n, &need) || need != plen - QXS_WAL_PAYLOAD_HDR) break;
        r.ids = p + QXS_WAL_PAYLOAD_HDR;
        r.vecs = r.type == QXS_WAL_UPSERT ? r.ids + (size_t)8 * r.n : NULL;
        if (fn) {
            int rc = fn(ctx, &r);
            if (rc) {
                if (fn_error) *fn_error = rc;
                return off;
            }
        }
        off += QXS_WAL_HDR + plen;
    }
    return off;
}

int qxs_wal_open(qxs_wal *w, const char *path, size_t d, qxs_wal_apply_fn fn, void *ctx,
                 uint64_t *dropped) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
    pthread_mutex_init(&w->sync_mu, NULL);
    if (dropped) *dropped = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return qx_error_set(QX_EIO, "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return qx_error_set(QX_EIO, "stat %s: %s", path, strerror(errno));
    }
    size_t len = (size_t)st.st_size;
    /* an empty log may have just been created by O_CREAT: its directory entry
     * must be durable before the first append is acknowledged (fdatasync of
     * the file does not cover it) */
    int drc = len ? 0 : qx_fsync_dir(path);
    if (drc) {
        close(fd);
        return drc;
    }
    uint8_t *buf = qx_malloc(len);
    if (!buf) {
        close(fd);
        return qx_error_set(QX_ENOMEM, "WAL %s: %zu bytes", path, len);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            qx_free(buf);
            close(fd);
            return qx_error_set(QX_EIO, "read %s: %s", path, r < 0 ? strerror(errno) : "short read");
        }
        got += (size_t)r;
    }
    int fn_err = 0;
    size_t good = qxs_wal_parse(buf, len, d, fn, ctx, &fn_err);
    qx_free(buf);
    if (fn_err) {
        close(fd);
        return fn_err;
    }
    if (good < len) {
        if (dropped) *dropped = len - good;
        if (ftruncate(fd, (off_t)good) != 0 || fdatasync(fd) != 0) {
            close(fd);
            return qx_error_set(QX_EIO, "truncate %s: %s", path, strerror(errno));
        }
    }
    if (lseek(fd, (off_t)good, SEEK_SET) < 0) {
        close(fd);
        return qx_error_set(QX_EIO, "seek %s: %s", path, strerror(errno));
    }
    w->fd = fd;
    w->size = good;
    return 0;
}

/* One record: header, then a (abytes) and b (bbytes). */
static int append_rec(qxs_wal *w, int type, uint64_t lsn, uint32_t n, const void *a, size_t abytes,
                      const void *b, size_t bbytes) {
    if (w->failed || w->fd < 0) return qx_error_set(QX_EIO, "write-ahead log unusable after an I/O error");
    size_t plen;
    if (!qx_size_add(QXS_WAL_PAYLOAD_HDR + abytes, bbytes, &plen) || plen > QXS_WAL_MAX_RECORD)
        return qx_error_set(QX_ELIMIT, "WAL record of %zu bytes above the 1 GiB limit", plen);
    uint8_t *rec = qx_malloc(QXS_WAL_HDR + plen);
    if (!rec) return qx_error_set(QX_ENOMEM, "WAL record of %zu bytes", plen);
    uint8_t *p = rec + QXS_WAL_HDR;
    uint32_t n32 = n, plen32 = (uint32_t)plen;
    p[0] = (uint8_t)type;
    memcpy(p + 1, &lsn, 8);
    memcpy(p + 9, &n32, 4);
    if (abytes) memcpy(p + QXS_WAL_PAYLOAD_HDR, a, abytes);
    if (bbytes) memcpy(p + QXS_WAL_PAYLOAD_HDR + abytes, b, bbytes);
    uint32_t crc = qx_crc32(0, p, plen);
    memcpy(rec, &plen32, 4);
    memcpy(rec + 4, &crc, 4);
    int rc = qx_write_all(w->fd, rec, QXS_WAL_HDR + plen);
    qx_free(rec);
    if (rc) {
        /* A partial record may be on disk; later records would hide behind
         * it, so the log refuses further writes (replay truncates it). */
        w->failed = 1;
        return rc;
    }
    w->size += QXS_WAL_HDR + plen;
    atomic_store(&w->written_lsn, lsn);
    return 0;
}

int qxs_wal_append(qxs_wal *w, int type, uint64_t lsn, const int64_t *ids, const float *vecs,
                   uint32_t n, size_t d) {
    size_t vbytes = 0;
    if (type == QXS_WAL_UPSERT && !qx_size_mul3(n, d, 4, &vbytes)) return qx_error_set(QX_ENOMEM, "WAL record size");
    return append_rec(w, type, lsn, n, ids, (size_t)8 * n, vecs, vbytes);
}

int qxs_wal_append_meta(qxs_wal *w, uint64_t lsn, const uint8_t *body, uint32_t len) {
    return append_rec(w, QXS_WAL_META, lsn, len, body, len, NULL, 0);
}

int qxs_wal_sync(qxs_wal *w, uint64_t lsn) {
    if (atomic_load(&w->synced_lsn) >= lsn) return 0;
    pthread_mutex_lock(&w->sync_mu);
    int rc = 0;
    if (atomic_load(&w->synced_lsn) < lsn) {
        uint64_t target = atomic_load(&w->written_lsn);
        if (w->failed || fdatasync(w->fd) != 0) {
            w->failed = 1;
            rc = qx_error_set(QX_EIO, "fdatasync of the write-ahead log failed: %s", strerror(errno));
        } else {
            atomic_store(&w->synced_lsn, target);
        }
    }
    pthread_mutex_unlock(&w->sync_mu);
    return rc;
}

int qxs_wal_reset(qxs_wal *w, const char *path) {
    int rc = qx_write_atomic(path, "", 0);
    if (rc) return rc;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return qx_error_set(QX_EIO, "open %s: %s", path, strerror(errno));
    pthread_mutex_lock(&w->sync_mu);
    if (w->fd >= 0) close(w->fd);
    w->fd = fd;
    w->size = 0;
    w->failed = rc != 0;
    /* Everything written so far is covered by the snapshot. */
    atomic_store(&w->synced_lsn, atomic_load(&w->written_lsn));
    pthread_mutex_unlock(&w->sync_mu);
    return rc;
}

void qxs_wal_close(qxs_wal *w) {
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    pthread_mutex_destroy(&w->sync_mu);
}
