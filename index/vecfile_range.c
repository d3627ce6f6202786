/* index/vecfile_range.c — reading a .fvecs/.bvecs file by row ranges
 * (qinx/vecfile.h, qx_vecs_file): the out-of-core and distributed builds read
 * a training sample, then the base chunk by chunk, without ever holding the
 * whole file.
 *
 * Decisions:
 * 1. pread(2) on one descriptor, not mmap: a read of rows [a, b) costs one
 *    system call and a buffer the caller sized; no mapping of a 10 GB file
 *    competes with the codes for the address space (a `ulimit -v` or a
 *    cgroup counts mapped pages the caller never asked for). Thread-safe:
 *    pread has no shared file offset.
 * 2. Open checks what the whole-file reader checks by size alone (first
 *    dimension in range, a whole number of records); each read checks every
 *    record it returns (dimension header, NaN/Inf), so an error names the
 *    file and the record exactly like qx_vecs_read.
 * 3. The identity of the file (device, inode, size, mtime) is taken at open;
 *    qx_vecs_file_unchanged compares it with the path now, so a build can
 *    refuse a base that was rewritten or replaced while it was read.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "qinx/vecfile.h"

struct qx_vecs_file {
    int fd;
    int bytes;           /* .bvecs: uint8 values */
    size_t n, d, rec;    /* rows, dimension, bytes per record */
    struct stat st;      /* identity at open */
    uint8_t *buf;        /* staging for one read */
    size_t buf_rows;
    char path[QX__PATH_CAP];
};

#define QX__RANGE_CHUNK ((size_t)1 << 20) /* staging bytes per pread */

static bool has_suffix(const char *s, const char *x) {
    size_t ls = strlen(s), lx = strlen(x);
    return ls >= lx && !strcmp(s + ls - lx, x);
}

int qx_vecs_open(qx_vecs_file **out, const char *path) {
    if (!out || !path) return qx__fail(QX_EINVAL, "qx_vecs_open: NULL argument");
    *out = NULL;
    int bytes;
    if (has_suffix(path, ".fvecs")) bytes = 0;
    else if (has_suffix(path, ".bvecs")) bytes = 1;
    else
        return qx__fail(QX_EINVAL, "'%s': unknown vector file type: the name must end in .fvecs or .bvecs",
                        path);
    if (strlen(path) >= QX__PATH_CAP) return qx__fail(QX_EINVAL, "'%s': path too long", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return qx__fail(e == ENOENT ? QX_ENOTFOUND : QX_EIO, "cannot open '%s': %s", path, strerror(e));
    }
    struct stat st;
    int rc = 0;
    int32_t d32 = 0;
    if (fstat(fd, &st) != 0) rc = qx__fail(QX_EIO, "cannot stat '%s': %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode)) rc = qx__fail(QX_EIO, "'%s' is not a regular file", path);
    else if (st.st_size == 0) rc = qx__fail(QX_EFORMAT, "'%s' is empty (no records)", path);
    else if (st.st_size < 4)
        rc = qx__fail(QX_EFORMAT, "'%s': record 0 truncated: %lld bytes, not even a dimension", path,
                      (long long)st.st_size);
    else if (pread(fd, &d32, 4, 0) != 4)
        rc = qx__fail(QX_EIO, "cannot read '%s': %s", path, strerror(errno));
    else if (d32 <= 0 || d32 > QX_MAX_DIM)
        rc = qx__fail(QX_EDIM, "'%s': record 0: dimension %d outside 1..%d", path, (int)d32, QX_MAX_DIM);
    size_t rec = 4 + (size_t)(d32 > 0 ? d32 : 0) * (bytes ? 1 : 4);
    if (rc == 0 && ((size_t)st.st_size < rec || (size_t)st.st_size % rec))
        rc = qx__fail(QX_EFORMAT,
                      "'%s': size %lld is not a whole number of %zu-byte records (d=%d): truncated or corrupt",
                      path, (long long)st.st_size, rec, (int)d32);
    qx_vecs_file *f = rc ? NULL : qx__calloc(1, sizeof *f);
    if (rc == 0 && !f) rc = qx__fail(QX_ENOMEM, "qx_vecs_open");
    if (rc == 0) {
        f->fd = fd;
        f->bytes = bytes;
        f->d = (size_t)d32;
        f->rec = rec;
        f->n = (size_t)st.st_size / rec;
        f->st = st;
        f->buf_rows = QX__RANGE_CHUNK / rec ? QX__RANGE_CHUNK / rec : 1;
        f->buf = qx__malloc(f->buf_rows * rec);
        snprintf(f->path, sizeof f->path, "%s", path);
        if (!f->buf) {
            qx__free(f);
            f = NULL;
            rc = qx__fail(QX_ENOMEM, "qx_vecs_open: staging buffer");
        }
    }
    if (rc) {
        close(fd);
        return rc;
    }
    *out = f;
    return 0;
}

void qx_vecs_close(qx_vecs_file *f) {
    if (!f) return;
    close(f->fd);
    qx__free(f->buf);
    qx__free(f);
}

size_t qx_vecs_file_rows(const qx_vecs_file *f) { return f ? f->n : 0; }
size_t qx_vecs_file_dim(const qx_vecs_file *f) { return f ? f->d : 0; }

void qx_vecs_file_identity(const qx_vecs_file *f, uint64_t *size, int64_t *mtime_ns) {
    *size = (uint64_t)f->st.st_size;
    *mtime_ns = (int64_t)f->st.st_mtim.tv_sec * 1000000000 + f->st.st_mtim.tv_nsec;
}

int qx_vecs_file_unchanged(const qx_vecs_file *f) {
    if (!f) return qx__fail(QX_EINVAL, "qx_vecs_file_unchanged: NULL file");
    struct stat now;
    if (stat(f->path, &now) != 0)
        return qx__fail(QX_EFORMAT, "'%s' changed while it was read: it is gone (%s)", f->path,
                        strerror(errno));
    if (now.st_dev != f->st.st_dev || now.st_ino != f->st.st_ino)
        return qx__fail(QX_EFORMAT, "'%s' changed while it was read: it was replaced by another file",
                        f->path);
    if (now.st_size != f->st.st_size || now.st_mtim.tv_sec != f->st.st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != f->st.st_mtim.tv_nsec)
        return qx__fail(QX_EFORMAT,
                        "'%s' changed while it was read: size %lld -> %lld bytes, mtime %lld.%09ld -> %lld.%09ld",
                        f->path, (long long)f->st.st_size, (long long)now.st_size,
                        (long long)f->st.st_mtim.tv_sec, f->st.st_mtim.tv_nsec,
                        (long long)now.st_mtim.tv_sec, now.st_mtim.tv_nsec);
    return 0;
}

/* Convert and check nr records staged in buf (first is the row of record 0). */
static int unpack(const qx_vecs_file *f, const uint8_t *buf, size_t first, size_t nr, float *out) {
    size_t d = f->d;
    for (size_t r = 0; r < nr; r++) {
        const uint8_t *p = buf + r * f->rec;
        int32_t di;
        memcpy(&di, p, 4);
        if ((size_t)di != d || di <= 0)
            return qx__fail(QX_EDIM, "'%s': record %zu: dimension %d differs from record 0's %zu", f->path,
                            first + r, (int)di, d);
        float *dst = out + r * d;
        if (f->bytes) {
            for (size_t j = 0; j < d; j++) dst[j] = (float)p[4 + j];
        } else {
            memcpy(dst, p + 4, d * 4);
            long bad = qx__first_nonfinite(dst, d);
            if (bad >= 0)
                return qx__fail(QX_EFORMAT, "'%s': record %zu: component %ld is %s", f->path, first + r, bad,
                                isnan(dst[bad]) ? "NaN" : "infinite");
        }
    }
    return 0;
}

static int pread_all(const qx_vecs_file *f, void *buf, size_t len, size_t off, size_t row) {
    uint8_t *p = buf;
    while (len) {
        ssize_t got = pread(f->fd, p, len, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0)
            return qx__fail(QX_EIO, "'%s': record %zu: short read (%s)", f->path, row,
                            got < 0 ? strerror(errno) : "file shrank while reading");
        p += got;
        off += (size_t)got;
        len -= (size_t)got;
    }
    return 0;
}

int qx_vecs_read_rows(qx_vecs_file *f, size_t first, size_t count, float *out) {
    if (!f || (count && !out)) return qx__fail(QX_EINVAL, "qx_vecs_read_rows: NULL argument");
    if (first > f->n || count > f->n - first)
        return qx__fail(QX_EINVAL, "'%s': rows %zu..%zu outside the file's %zu rows", f->path, first,
                        first + count, f->n);
    for (size_t i = 0; i < count;) {
        size_t nr = count - i < f->buf_rows ? count - i : f->buf_rows;
        int rc = pread_all(f, f->buf, nr * f->rec, (first + i) * f->rec, first + i);
        if (rc == 0) rc = unpack(f, f->buf, first + i, nr, out + i * f->d);
        if (rc) return rc;
        i += nr;
    }
    return 0;
}

int qx_vecs_read_picked(qx_vecs_file *f, const size_t *rows, size_t count, float *out) {
    if (!f || (count && (!rows || !out))) return qx__fail(QX_EINVAL, "qx_vecs_read_picked: NULL argument");
    /* Runs of consecutive rows are read with one pread each. */
    for (size_t i = 0; i < count;) {
        size_t j = i + 1;
        while (j < count && j - i < f->buf_rows && rows[j] == rows[j - 1] + 1) j++;
        int rc = rows[i] < f->n && rows[j - 1] < f->n
                     ? qx_vecs_read_rows(f, rows[i], j - i, out + i * f->d)
                     : qx__fail(QX_EINVAL, "'%s': row %zu outside the file's %zu rows", f->path,
                                rows[j - 1], f->n);
        if (rc) return rc;
        i = j;
    }
    return 0;
}
