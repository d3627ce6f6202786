/* server/wal.c — the per-collection write-ahead log (see wal.h).
 *
 * Decisions:
 * 1. One record per request batch, so a crash leaves a batch either whole
 *    (checksum good) or absent: nothing acknowledged is lost and nothing
 *    unacknowledged is half-present.
 * 2. Torn tail versus corruption: after the last good record the rest of
 *    the file is searched for a valid record (plausible length and type, a
 *    newer lsn, consistent sizes, good checksum). Appends are sequential and
 *    a failed append stops the log, so a valid record after bad bytes can
 *    only mean damage to bytes that were once good: acknowledged writes
 *    follow, and dropping them silently would lose them. Only when nothing
 *    valid follows is the tail torn, dropped and truncated (so that new
 *    records do not hide behind it).
 * 3. Group commit: writers append under the collection's writer mutex and
 *    then wait for durability here; one fdatasync covers every record
 *    written before it began, so N concurrent upserts cost ~1 fsync.
 * 4. An upsert record is written with one writev of its parts (head and
 *    pids, the request's vector rows, payload lengths, payload texts), the
 *    CRC chained over them: copying ~0.5 MB a 1,000-point batch into one
 *    buffer first cost ~6 % of a load (with its page faults).
 * Records are little-endian (the only byte order qinx supports).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "wal.h"

static uint32_t wal_rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t wal_rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

int qxs_wal_rec_pid(const qxs_wal_rec *r, uint32_t i, qxs_pid *id) {
    if (r->legacy) {
        uint64_t v = wal_rd64(r->ids + (size_t)i * 8);
        if (v > INT64_MAX) return -1;
        *id = qxs_pid_u64(v);
        return 0;
    }
    return qxs_pid_read(r->ids + (size_t)i * QXS_PID_DISK, id);
}

/* Structure of a payload of plen bytes (checksum not checked): 0 and *r, or -1. */
static int decode(const uint8_t *p, size_t plen, size_t d, qxs_wal_rec *r) {
    if (plen < QXS_WAL_PAYLOAD_HDR) return -1;
    memset(r, 0, sizeof *r);
    int type = p[0];
    r->lsn = wal_rd64(p + 1);
    r->n = wal_rd32(p + 9);
    size_t n = r->n, body = plen - QXS_WAL_PAYLOAD_HDR, idb, vb = 0, need;
    const uint8_t *q = p + QXS_WAL_PAYLOAD_HDR;
    r->legacy = type == QXS_WAL_UPSERT || type == QXS_WAL_DELETE;
    if (type < QXS_WAL_UPSERT || type > QXS_WAL_PAYLOAD) return -1;
    if (!qx_size_mul(n, r->legacy ? 8 : QXS_PID_DISK, &idb) || idb > body) return -1;
    r->type = type == QXS_WAL_UPSERT ? QXS_WAL_UPSERT2 : type == QXS_WAL_DELETE ? QXS_WAL_DELETE2 : type;
    r->ids = q;
    if (r->type == QXS_WAL_UPSERT2 && (!qx_size_mul3(n, d, 4, &vb) || !qx_size_add(idb, vb, &need) || need > body)) return -1;
    if (r->type == QXS_WAL_UPSERT2) r->vecs = q + idb;
    need = idb + vb;
    if (r->legacy || r->type == QXS_WAL_DELETE2) return need == body ? 0 : -1;
    size_t pl;
    if (!qx_size_mul(n, 4, &pl) || !qx_size_add(need, pl, &need) || need > body) return -1;
    r->plens = q + idb + vb;
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t l = wal_rd32(r->plens + i * 4);
        if (l > QXS_MAX_PAYLOAD) return -1;
        sum += l;
    }
    if (need + sum != body) return -1;
    r->pdata = r->plens + pl;
    return 0;
}

/* Is there a valid record at off (newer than after_lsn when check_lsn)? */
static int valid_at(const uint8_t *buf, size_t len, size_t off, size_t d, int check_lsn, uint64_t after_lsn,
                    qxs_wal_rec *r, size_t *next) {
    if (len - off < QXS_WAL_HDR + QXS_WAL_PAYLOAD_HDR) return 0;
    uint32_t plen = wal_rd32(buf + off);
    const uint8_t *p = buf + off + QXS_WAL_HDR;
    if (plen < QXS_WAL_PAYLOAD_HDR || plen > QXS_WAL_MAX_RECORD || plen > len - off - QXS_WAL_HDR) return 0;
    if (p[0] < QXS_WAL_UPSERT || p[0] > QXS_WAL_PAYLOAD) return 0;
    if (check_lsn && wal_rd64(p + 1) <= after_lsn) return 0;
    if (decode(p, plen, d, r)) return 0;
    if (qx_crc32(0, p, plen) != wal_rd32(buf + off + 4)) return 0;
    r->crc = wal_rd32(buf + off + 4);
    *next = off + QXS_WAL_HDR + plen;
    return 1;
}

/* First valid record after off (newer than after_lsn), or len. */
static size_t next_valid(const uint8_t *buf, size_t len, size_t off, size_t d, int check_lsn, uint64_t after_lsn) {
    qxs_wal_rec r;
    size_t nx;
    for (size_t o = off + 1; o + QXS_WAL_HDR + QXS_WAL_PAYLOAD_HDR <= len; o++)
        if (valid_at(buf, len, o, d, check_lsn, after_lsn, &r, &nx)) return o;
    return len;
}

size_t qxs_wal_parse(const uint8_t *buf, size_t len, size_t d, qxs_wal_apply_fn fn, void *ctx, int *fn_error,
                     qxs_wal_status *st) {
    size_t off = 0;
    qxs_wal_status s = {.corrupt_at = -1};
    if (fn_error) *fn_error = 0;
    qxs_wal_rec r;
    size_t nx;
    while (valid_at(buf, len, off, d, s.records > 0, s.last_lsn, &r, &nx)) {
        if (fn) {
            int rc = fn(ctx, &r);
            if (rc) {
                if (fn_error) *fn_error = rc;
                if (st) *st = s;
                return off;
            }
        }
        s.records++;
        s.last_lsn = r.lsn;
        off = nx;
    }
    if (off < len) {
        size_t v = next_valid(buf, len, off, d, s.records > 0, s.last_lsn);
        if (v < len) {
            s.corrupt_at = (int64_t)off;
            s.next_valid = v;
        } else {
            s.dropped = len - off;
        }
    }
    if (st) *st = s;
    return off;
}

static int read_file(const char *path, int fd, uint8_t **out, size_t *len_out) {
    struct stat st;
    if (fstat(fd, &st) != 0) return qx_error_set(QX_EIO, "stat %s: %s", path, strerror(errno));
    size_t len = (size_t)st.st_size, got = 0;
    uint8_t *buf = qx_malloc(len + 1);
    if (!buf) return qx_error_set(QX_ENOMEM, "WAL %s: %zu bytes", path, len);
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            qx_free(buf);
            return qx_error_set(QX_EIO, "read %s: %s", path, r < 0 ? strerror(errno) : "short read");
        }
        got += (size_t)r;
    }
    *out = buf;
    *len_out = len;
    return 0;
}

int qxs_wal_open(qxs_wal *w, const char *path, size_t d, qxs_wal_apply_fn fn, void *ctx, qxs_wal_status *st) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
    pthread_mutex_init(&w->sync_mu, NULL);
    qxs_wal_status s0, *s = st ? st : &s0;
    memset(s, 0, sizeof *s);
    s->corrupt_at = -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return qx_error_set(QX_EIO, "open %s: %s", path, strerror(errno));
    /* mapped, not read into a buffer: replay reads each byte once (the
     * copy and the first touch of a buffer as large as the log were a
     * quarter of replaying a 50 MB tail) */
    uint8_t *buf = NULL;
    size_t len = 0;
    struct stat fst;
    if (fstat(fd, &fst) != 0) {
        close(fd);
        return qx_error_set(QX_EIO, "stat %s: %s", path, strerror(errno));
    }
    len = (size_t)fst.st_size;
    int rc = 0;
    if (len) {
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return qx_error_set(QX_EIO, "mmap %s: %s", path, strerror(errno));
        }
        madvise(m, len, MADV_SEQUENTIAL);
        buf = m;
    }
    /* an empty log may have just been created by O_CREAT: its directory entry
     * must be durable before the first append is acknowledged (fdatasync of
     * the file does not cover it) */
    if (!len && (rc = qx_fsync_dir(path))) {
        qx_free(buf);
        close(fd);
        return rc;
    }
    int fn_err = 0;
    size_t good = qxs_wal_parse(buf, len, d, fn, ctx, &fn_err, s);
    if (buf) munmap(buf, len);
    if (fn_err) {
        close(fd);
        return fn_err;
    }
    if (s->corrupt_at >= 0) {
        /* keep the file exactly as it is; no appends */
        close(fd);
        w->failed = 1;
        w->size = len;
        qx_error_set(QX_EFORMAT, "%s: corrupt record at byte offset %lld, before the tail (a valid record follows at "
                 "byte %llu; %zu bytes after the damage): acknowledged writes may follow it, so recovery stopped "
                 "and the file was kept; see `qinx serve salvage-wal`",
                 path, (long long)s->corrupt_at, (unsigned long long)s->next_valid, len - (size_t)s->corrupt_at);
        return 0;
    }
    if (good < len) {
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

/* writev until every byte of iov[0..n) is written (iov is consumed). */
static int writev_all(int fd, struct iovec *iov, int n) {
    while (n > 0) {
        ssize_t w = writev(fd, iov, n > IOV_MAX ? IOV_MAX : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return qx_error_set(QX_EIO, "write: %s", strerror(errno));
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) left -= iov->iov_len, iov++, n--;
        if (n > 0) iov->iov_base = (char *)iov->iov_base + left, iov->iov_len -= left;
    }
    return 0;
}

/* The record [len][crc] + the concatenation of part[0..np) (the payload),
 * written with one writev: the payload's big parts (vectors, payload texts)
 * are checksummed and written where they lie, not copied (decision 4). */
static int append_parts(qxs_wal *w, uint8_t hdr[QXS_WAL_HDR], struct iovec *part, int np, uint64_t lsn) {
    size_t plen = 0;
    uint32_t crc = 0;
    for (int i = 1; i < np; i++) {
        crc = qx_crc32(crc, part[i].iov_base, part[i].iov_len);
        plen += part[i].iov_len;
    }
    uint32_t plen32 = (uint32_t)plen;
    memcpy(hdr, &plen32, 4);
    memcpy(hdr + 4, &crc, 4);
    part[0].iov_base = hdr;
    part[0].iov_len = QXS_WAL_HDR;
    int rc = writev_all(w->fd, part, np);
    if (rc) {
        /* A partial record may be on disk; later records would hide behind
         * it, so the log refuses further writes (replay truncates it). */
        w->failed = 1;
        return rc;
    }
    w->size += QXS_WAL_HDR + plen;
    w->last_crc = crc;
    atomic_store(&w->written_lsn, lsn);
    return 0;
}

static int append_rec(qxs_wal *w, uint8_t *rec, size_t plen, uint64_t lsn) {
    struct iovec part[2] = {{0}, {rec + QXS_WAL_HDR, plen}};
    int rc = append_parts(w, rec, part, 2, lsn);
    qx_free(rec);
    return rc;
}

int qxs_wal_append(qxs_wal *w, int type, uint64_t lsn, const qxs_pid *ids, const float *vecs, const qxs_bytes *p,
                   uint32_t n, size_t d) {
    if (w->failed || w->fd < 0) return qx_error_set(QX_EIO, "write-ahead log unusable (an I/O error, or corrupt)");
    if (type != QXS_WAL_UPSERT2 && type != QXS_WAL_DELETE2 && type != QXS_WAL_PAYLOAD)
        return qx_error_set(QX_EINVAL, "WAL record type %d", type);
    size_t vb = 0, plen = QXS_WAL_PAYLOAD_HDR + (size_t)n * QXS_PID_DISK, pb = 0;
    if (type == QXS_WAL_UPSERT2 && !qx_size_mul3(n, d, 4, &vb)) return qx_error_set(QX_ENOMEM, "WAL record size");
    size_t with_payload = 0; /* points with a non-empty payload: one part each */
    if (type != QXS_WAL_DELETE2) {
        pb = (size_t)n * 4;
        for (uint32_t i = 0; p && i < n; i++) {
            if (p[i].len > QXS_MAX_PAYLOAD)
                return qx_error_set(QX_ELIMIT, "payload of %u bytes above the %u-byte limit", p[i].len, QXS_MAX_PAYLOAD);
            pb += p[i].len;
            with_payload += p[i].len > 0;
        }
    }
    if (!qx_size_add(plen, vb, &plen) || !qx_size_add(plen, pb, &plen) || plen > QXS_WAL_MAX_RECORD)
        return qx_error_set(QX_ELIMIT, "WAL record of %zu bytes above the 1 GiB limit", plen);
    /* head: [len][crc] [type][lsn][n] pids; then the vectors; then the
     * payload lengths; then each payload text */
    size_t head = QXS_WAL_HDR + QXS_WAL_PAYLOAD_HDR + (size_t)n * QXS_PID_DISK;
    size_t lens = type != QXS_WAL_DELETE2 ? (size_t)n * 4 : 0;
    uint8_t *buf = qx_malloc(head + lens);
    struct iovec *part = qx_malloc((4 + with_payload) * sizeof *part);
    if (!buf || !part) {
        qx_free(buf);
        qx_free(part);
        return qx_error_set(QX_ENOMEM, "WAL record of %zu bytes", plen);
    }
    uint8_t *q = buf + QXS_WAL_HDR;
    q[0] = (uint8_t)type;
    memcpy(q + 1, &lsn, 8);
    memcpy(q + 9, &n, 4);
    q += QXS_WAL_PAYLOAD_HDR;
    for (uint32_t i = 0; i < n; i++, q += QXS_PID_DISK) qxs_pid_put(q, &ids[i]);
    int np = 0;
    part[np++] = (struct iovec){NULL, 0}; /* [len][crc], set by append_parts */
    part[np++] = (struct iovec){buf + QXS_WAL_HDR, head - QXS_WAL_HDR};
    if (vb) part[np++] = (struct iovec){(void *)vecs, vb};
    if (lens) {
        for (uint32_t i = 0; i < n; i++, q += 4) {
            uint32_t l = p ? p[i].len : 0;
            memcpy(q, &l, 4);
        }
        part[np++] = (struct iovec){buf + head, lens};
        for (uint32_t i = 0; p && i < n; i++)
            if (p[i].len) part[np++] = (struct iovec){(void *)p[i].data, p[i].len};
    }
    int rc = append_parts(w, buf, part, np, lsn);
    qx_free(buf);
    qx_free(part);
    return rc;
}

int qxs_wal_append_legacy(qxs_wal *w, int type, uint64_t lsn, const int64_t *ids, const float *vecs, uint32_t n,
                          size_t d) {
    if (w->failed || w->fd < 0) return qx_error_set(QX_EIO, "write-ahead log unusable");
    size_t vb = type == QXS_WAL_UPSERT ? (size_t)n * d * 4 : 0, plen = QXS_WAL_PAYLOAD_HDR + (size_t)8 * n + vb;
    uint8_t *rec = qx_malloc(QXS_WAL_HDR + plen);
    if (!rec) return qx_error_set(QX_ENOMEM, "WAL record");
    uint8_t *q = rec + QXS_WAL_HDR;
    q[0] = (uint8_t)type;
    memcpy(q + 1, &lsn, 8);
    memcpy(q + 9, &n, 4);
    memcpy(q + QXS_WAL_PAYLOAD_HDR, ids, (size_t)8 * n);
    if (vb) memcpy(q + QXS_WAL_PAYLOAD_HDR + (size_t)8 * n, vecs, vb);
    return append_rec(w, rec, plen, lsn);
}

int qxs_wal_salvage(const char *path, size_t d, uint64_t *kept, uint64_t *lost_bytes, char *backup,
                    size_t backup_cap) {
    *kept = *lost_bytes = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qx_error_set(QX_EIO, "open %s: %s", path, strerror(errno));
    uint8_t *buf = NULL, *out = NULL;
    size_t len = 0, olen = 0;
    int rc = read_file(path, fd, &buf, &len);
    close(fd);
    if (rc) return rc;
    out = qx_malloc(len + 1);
    if (!out) {
        qx_free(buf);
        return qx_error_set(QX_ENOMEM, "salvage buffer");
    }
    size_t off = 0;
    uint64_t last = 0;
    int any = 0;
    while (off < len) {
        qxs_wal_rec r;
        size_t nx;
        if (valid_at(buf, len, off, d, any, last, &r, &nx)) {
            memcpy(out + olen, buf + off, nx - off);
            olen += nx - off;
            off = nx;
            last = r.lsn;
            any = 1;
            (*kept)++;
            continue;
        }
        size_t v = next_valid(buf, len, off, d, any, last);
        *lost_bytes += v - off;
        off = v;
    }
    snprintf(backup, backup_cap, "%s.corrupt-%lld", path, (long long)time(NULL));
    if (link(path, backup) != 0) rc = qx_error_set(QX_EIO, "keeping %s as %s: %s", path, backup, strerror(errno));
    if (!rc) rc = qx_write_atomic(path, out, olen);
    qx_free(buf);
    qx_free(out);
    return rc;
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
