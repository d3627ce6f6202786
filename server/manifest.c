/* server/manifest.c — encode, decode, write and read MANIFEST (manifest.h).
 *
 * Decisions:
 * 1. Binary with one checksum over the whole file rather than JSON: a
 *    flipped byte anywhere (even in whitespace) must be refused, and the
 *    size is checked against the segment count before the checksum, so a
 *    truncated or padded file is refused with a precise reason.
 * 2. Written only through qx_write_atomic (temp file, fsync, rename,
 *    directory fsync): a reader sees the old or the new manifest, never half.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "manifest.h"

#define MAGIC "QXMAN001"
#define HDR 48
#define ENTRY_V1 24
#define ENTRY 32

static uint32_t man_rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t man_rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static void man_wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void man_wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

int qxs_manifest_encode(const qxs_manifest *m, uint8_t **buf, size_t *len) {
    if (m->nseg > QXS_MANIFEST_MAX_SEGS) return qx_error_set(QX_ELIMIT, "manifest: %zu segments", m->nseg);
    size_t n = HDR + m->nseg * ENTRY + 4;
    uint8_t *b = qx_calloc(1, n);
    if (!b) return qx_error_set(QX_ENOMEM, "manifest");
    memcpy(b, MAGIC, 8);
    man_wr32(b + 8, QXS_MANIFEST_VERSION);
    man_wr32(b + 12, (uint32_t)m->d);
    man_wr64(b + 16, m->lsn);
    man_wr32(b + 24, m->next_seg);
    man_wr32(b + 28, (uint32_t)m->nseg);
    man_wr64(b + 32, m->index_gen);
    for (size_t i = 0; i < m->nseg; i++) {
        uint8_t *e = b + HDR + i * ENTRY;
        man_wr32(e, m->segs[i].no);
        man_wr64(e + 8, m->segs[i].n);
        man_wr64(e + 16, m->segs[i].del_gen);
        man_wr64(e + 24, m->segs[i].codes_gen);
    }
    man_wr32(b + n - 4, qx_crc32(0, b, n - 4));
    *buf = b;
    *len = n;
    return 0;
}

int qxs_manifest_decode(const uint8_t *b, size_t len, const char *path, qxs_manifest *m) {
    memset(m, 0, sizeof *m);
    if (len < HDR + 4 || memcmp(b, MAGIC, 8))
        return qx_error_set(QX_EFORMAT, "%s: not a qinx manifest (bad magic or %zu bytes: truncated)", path, len);
    uint32_t nseg = man_rd32(b + 28), version = man_rd32(b + 8);
    if (version != 1 && version != QXS_MANIFEST_VERSION)
        return qx_error_set(QX_EFORMAT, "%s: version %u, this server reads 1 and %d", path, version, QXS_MANIFEST_VERSION);
    size_t entry = version == 1 ? ENTRY_V1 : ENTRY;
    if (nseg > QXS_MANIFEST_MAX_SEGS || len != HDR + (size_t)nseg * entry + 4)
        return qx_error_set(QX_EFORMAT, "%s: %zu bytes but the header counts %u segments (truncated or corrupt)", path,
                        len, nseg);
    if (qx_crc32(0, b, len - 4) != man_rd32(b + len - 4)) return qx_error_set(QX_EFORMAT, "%s: checksum mismatch", path);
    m->version = (int)version;
    m->d = man_rd32(b + 12);
    m->lsn = man_rd64(b + 16);
    m->next_seg = man_rd32(b + 24);
    m->index_gen = man_rd64(b + 32);
    m->nseg = nseg;
    m->segs = qx_calloc(nseg ? nseg : 1, sizeof *m->segs);
    if (!m->segs) return qx_error_set(QX_ENOMEM, "%s", path);
    for (size_t i = 0; i < nseg; i++) {
        const uint8_t *e = b + HDR + i * entry;
        m->segs[i].no = man_rd32(e);
        m->segs[i].n = man_rd64(e + 8);
        m->segs[i].del_gen = man_rd64(e + 16);
        m->segs[i].codes_gen = version == 1 ? 0 : man_rd64(e + 24);
        if (m->segs[i].codes_gen && m->segs[i].codes_gen != m->index_gen) {
            qxs_manifest_free(m);
            return qx_error_set(QX_EFORMAT, "%s: segment codes of generation other than the index's", path);
        }
        if (m->segs[i].no >= m->next_seg || (i && m->segs[i].no <= m->segs[i - 1].no)) {
            qxs_manifest_free(m);
            return qx_error_set(QX_EFORMAT, "%s: segment numbers out of order", path);
        }
    }
    return 0;
}

int qxs_manifest_write(const char *dir, const qxs_manifest *m) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, QXS_MANIFEST) >= (int)sizeof path)
        return qx_error_set(QX_EINVAL, "path too long");
    uint8_t *b;
    size_t len;
    int rc = qxs_manifest_encode(m, &b, &len);
    if (rc) return rc;
    rc = qx_write_atomic(path, b, len);
    qx_free(b);
    return rc;
}

int qxs_manifest_read(const char *dir, qxs_manifest *m) {
    char path[PATH_MAX];
    memset(m, 0, sizeof *m);
    if (snprintf(path, sizeof path, "%s/%s", dir, QXS_MANIFEST) >= (int)sizeof path)
        return qx_error_set(QX_EINVAL, "path too long");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return qx_error_set(QX_ENOTFOUND, "%s: no manifest", path);
        return qx_error_set(QX_EIO, "open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > HDR + (off_t)QXS_MANIFEST_MAX_SEGS * ENTRY + 4) {
        close(fd);
        return qx_error_set(QX_EFORMAT, "%s: unreadable or too large", path);
    }
    size_t len = (size_t)st.st_size, got = 0;
    uint8_t *b = qx_malloc(len + 1);
    if (!b) {
        close(fd);
        return qx_error_set(QX_ENOMEM, "%s", path);
    }
    while (got < len) {
        ssize_t r = read(fd, b + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    int rc = got == len ? qxs_manifest_decode(b, len, path, m) : qx_error_set(QX_EIO, "%s: short read", path);
    qx_free(b);
    return rc;
}

void qxs_manifest_free(qxs_manifest *m) {
    qx_free(m->segs);
    m->segs = NULL;
    m->nseg = 0;
}
