/* core/file.c — the one atomic file writer and the one directory fsync.
 *
 * 1. An atomic write is: a temporary file beside the target (mkstemp, so two
 *    writers never share one), the bytes, fsync, close, rename over the
 *    target, then fsync of the directory so the rename itself survives a
 *    crash. A crash leaves the old file or the new one, never a mix; a failure
 *    removes the temporary file and leaves the target untouched.
 * 2. Files are made 0644 (mkstemp makes 0600): indexes, vectors, logs and
 *    reports are data, not secrets.
 * 3. Directory fsync has one rule everywhere: EINVAL and ENOTSUP mean a
 *    filesystem that cannot sync a directory (nothing more can be done there)
 *    and count as success; any other failure is QX_EIO.
 * 4. The streaming form (qx__afile_*) serves writers that produce their bytes
 *    in pieces (vector files, snapshots); qx__write_atomic is that form for one
 *    buffer. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h> /* mkstemp; before internal.h poisons malloc */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "qinx/core.h"

int qx__write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return qx__fail(QX_EIO, "write: %s", strerror(errno));
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int qx__fsync_dir(const char *path) {
    char buf[QX__PATH_CAP];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return qx__fail(QX_EINVAL, "%s: path too long", path);
    const char *dir = dirname(buf);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return qx__fail(QX_EIO, "cannot open directory %s to sync it: %s", dir, strerror(errno));
    int rc = fsync(fd), e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != ENOTSUP)
        return qx__fail(QX_EIO, "syncing directory %s failed: %s", dir, strerror(e));
    return 0;
}

int qx__afile_open(qx__afile *f, const char *path) {
    f->fd = -1;
    f->path = path;
    if (snprintf(f->tmp, sizeof f->tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof f->tmp)
        return qx__fail(QX_EINVAL, "%s: path too long", path);
    f->fd = mkstemp(f->tmp);
    if (f->fd < 0)
        return qx__fail(QX_EIO, "%s: cannot create a temporary file: %s", path, strerror(errno));
    (void)fchmod(f->fd, 0644);
    return 0;
}

int qx__afile_write(qx__afile *f, const void *data, size_t len) {
    int rc = qx__write_all(f->fd, data, len);
    return rc ? qx__wrap(rc, "%s", f->tmp) : 0;
}

void qx__afile_abort(qx__afile *f) {
    if (f->fd >= 0) {
        close(f->fd);
        unlink(f->tmp);
    }
    f->fd = -1;
}

int qx__afile_commit(qx__afile *f) {
    int fd = f->fd;
    f->fd = -1;
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(f->tmp);
        return qx__fail(QX_EIO, "%s: fsync failed: %s", f->tmp, strerror(e));
    }
    if (close(fd) != 0 || rename(f->tmp, f->path) != 0) {
        int e = errno;
        unlink(f->tmp);
        return qx__fail(QX_EIO, "%s: cannot rename %s over it: %s", f->path, f->tmp, strerror(e));
    }
    int rc = qx__fsync_dir(f->path);
    return rc ? qx__wrap(rc, "%s: written, but not yet durable", f->path) : 0;
}

int qx__write_atomic(const char *path, const void *data, size_t len) {
    qx__afile f;
    int rc = qx__afile_open(&f, path);
    if (!rc) rc = qx__afile_write(&f, data, len);
    if (rc) {
        qx__afile_abort(&f);
        return rc;
    }
    return qx__afile_commit(&f);
}

/* ---- the public forms (qinx/core.h) ---- */

int qx_write_atomic(const char *path, const void *data, size_t len) {
    return qx__write_atomic(path, data, len);
}

int qx_fsync_dir(const char *path) { return qx__fsync_dir(path); }
int qx_write_all(int fd, const void *buf, size_t len) { return qx__write_all(fd, buf, len); }
int qx_afile_open(qx_afile *f, const char *path) { return qx__afile_open(f, path); }
int qx_afile_write(qx_afile *f, const void *data, size_t len) { return qx__afile_write(f, data, len); }
int qx_afile_commit(qx_afile *f) { return qx__afile_commit(f); }
void qx_afile_abort(qx_afile *f) { qx__afile_abort(f); }
