/* server/segcodes.c — seg-<no>.codes.<gen> files (segcodes.h).
 *
 * Decisions:
 * 1. Records interleave list and code so that both are written and read in
 *    one streaming pass of bounded memory (chunks of CODES_CHUNK rows), whatever
 *    the segment's size.
 * 2. The records' checksum is checked as the file is read; the entries of a
 *    file that turns out corrupt may already be in the index, so the caller
 *    drops the whole index (the collection is not opened).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "segcodes.h"
#include "segment.h"

#define CODES_MAGIC "QXCOD001"
#define CODES_VERSION 1
#define CODES_HDR 48
#define CODES_CHUNK 4096

void qxs_codes_name(char *out, size_t cap, const char *dir, uint32_t no, uint64_t gen) {
    if (snprintf(out, cap, "%s/seg-%08u.codes.%llu", dir, no, (unsigned long long)gen) >= (int)cap) out[0] = 0;
}

static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
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

int qxs_codes_write(const char *dir, uint32_t no, uint64_t gen, size_t n, const qx_ivf *ivf, uint64_t *bytes) {
    char path[PATH_MAX];
    qxs_codes_name(path, sizeof path, dir, no, gen);
    if (!path[0]) return qx_error_set(QX_EINVAL, "path too long");
    qx_ivf_info info;
    int rc = qx_ivf_get_info(ivf, &info);
    if (rc) return rc;
    size_t cs = info.code_size, rec = 4 + cs;
    uint8_t hdr[CODES_HDR] = {0};
    memcpy(hdr, CODES_MAGIC, 8);
    wr32(hdr + 8, CODES_VERSION);
    wr32(hdr + 12, no);
    wr64(hdr + 16, n);
    wr64(hdr + 24, gen);
    wr32(hdr + 32, (uint32_t)cs);
    wr32(hdr + 36, (uint32_t)info.nlist);
    wr32(hdr + 44, qx_crc32(0, hdr, 44));
    int64_t *keys = qx_malloc(CODES_CHUNK * sizeof *keys);
    uint32_t *lists = qx_malloc(CODES_CHUNK * sizeof *lists);
    uint8_t *codes = qx_malloc(CODES_CHUNK * cs), *buf = qx_malloc(CODES_CHUNK * rec);
    qx_afile f;
    int opened = 0;
    if (!keys || !lists || !codes || !buf) rc = qx_error_set(QX_ENOMEM, "%s", path);
    if (!rc && !(rc = qx_afile_open(&f, path))) opened = 1;
    if (!rc) rc = qx_afile_write(&f, hdr, CODES_HDR);
    uint32_t crc = 0;
    for (size_t r0 = 0; !rc && r0 < n; r0 += CODES_CHUNK) {
        size_t m = n - r0 < CODES_CHUNK ? n - r0 : CODES_CHUNK;
        for (size_t i = 0; i < m; i++) keys[i] = qxs_rowkey(no, (uint32_t)(r0 + i));
        if ((rc = qx_ivf_get_entries(ivf, keys, m, lists, codes))) break;
        for (size_t i = 0; i < m; i++) {
            wr32(buf + i * rec, lists[i]);
            memcpy(buf + i * rec + 4, codes + i * cs, cs);
        }
        crc = qx_crc32(crc, buf, m * rec);
        rc = qx_afile_write(&f, buf, m * rec);
    }
    uint8_t tail[4];
    wr32(tail, crc);
    if (!rc) rc = qx_afile_write(&f, tail, 4);
    if (!rc) rc = qx_afile_commit(&f);
    else if (opened) qx_afile_abort(&f);
    qx_free(keys);
    qx_free(lists);
    qx_free(codes);
    qx_free(buf);
    if (!rc && bytes) *bytes = CODES_HDR + (uint64_t)n * rec + 4;
    return rc;
}


int qxs_read_full(int fd, void *buf, size_t len) {
    uint8_t *p = buf;
    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int qxs_codes_load(const char *dir, uint32_t no, uint64_t gen, size_t n, const uint64_t *dead, qx_ivf *ivf) {
    char path[PATH_MAX];
    qxs_codes_name(path, sizeof path, dir, no, gen);
    qx_ivf_info info;
    int rc = qx_ivf_get_info(ivf, &info);
    if (rc) return rc;
    size_t cs = info.code_size, rec = 4 + cs;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qx_error_set(errno == ENOENT ? QX_EFORMAT : QX_EIO, "%s: %s (named by the manifest)", path,
                            strerror(errno));
    struct stat st;
    uint8_t hdr[CODES_HDR];
    if (fstat(fd, &st) != 0 || qxs_read_full(fd, hdr, CODES_HDR) != 0 || memcmp(hdr, CODES_MAGIC, 8) != 0 ||
        rd32(hdr + 44) != qx_crc32(0, hdr, 44)) {
        close(fd);
        return qx_error_set(QX_EFORMAT, "%s: not a qinx codes file (bad magic, truncated or corrupt header)", path);
    }
    if (rd32(hdr + 8) != CODES_VERSION || rd32(hdr + 12) != no || rd64(hdr + 16) != n || rd64(hdr + 24) != gen ||
        rd32(hdr + 32) != cs || rd32(hdr + 36) != info.nlist || (uint64_t)st.st_size != CODES_HDR + (uint64_t)n * rec + 4) {
        close(fd);
        return qx_error_set(QX_EFORMAT, "%s: header (segment %u, %llu rows, generation %llu, code size %u, nlist %u, "
                            "%lld bytes) does not match the manifest and index (%u, %zu, %llu, %zu, %zu)",
                            path, rd32(hdr + 12), (unsigned long long)rd64(hdr + 16), (unsigned long long)rd64(hdr + 24),
                            rd32(hdr + 32), rd32(hdr + 36), (long long)st.st_size, no, n, (unsigned long long)gen, cs,
                            info.nlist);
    }
    int64_t *keys = qx_malloc(CODES_CHUNK * sizeof *keys);
    uint32_t *lists = qx_malloc(CODES_CHUNK * sizeof *lists);
    uint8_t *codes = qx_malloc(CODES_CHUNK * cs), *buf = qx_malloc(CODES_CHUNK * rec);
    if (!keys || !lists || !codes || !buf) rc = qx_error_set(QX_ENOMEM, "%s", path);
    uint32_t crc = 0;
    for (size_t r0 = 0; !rc && r0 < n; r0 += CODES_CHUNK) {
        size_t m = n - r0 < CODES_CHUNK ? n - r0 : CODES_CHUNK;
        if (qxs_read_full(fd, buf, m * rec)) {
            rc = qx_error_set(QX_EIO, "%s: read failed", path);
            break;
        }
        crc = qx_crc32(crc, buf, m * rec);
        for (size_t i = 0; i < m; i++) {
            size_t r = r0 + i;
            keys[i] = qxs_rowkey(no, (uint32_t)r);
            lists[i] = rd32(buf + i * rec);
            if (lists[i] != UINT32_MAX && lists[i] >= info.nlist) {
                rc = qx_error_set(QX_EFORMAT, "%s: row %zu names list %u of %zu (corrupt)", path, r, lists[i],
                                  info.nlist);
                break;
            }
            if (dead && qxs_bit_get(dead, r)) lists[i] = UINT32_MAX;
            memcpy(codes + i * cs, buf + i * rec + 4, cs);
        }
        if (!rc && (rc = qx_ivf_add_entries(ivf, lists, codes, keys, m))) {
            char why[256];
            snprintf(why, sizeof why, "%s", qx_last_error());
            rc = qx_error_set(rc, "%s: %s", path, why);
        }
    }
    uint8_t tail[4];
    if (!rc && (qxs_read_full(fd, tail, 4) || rd32(tail) != crc))
        rc = qx_error_set(QX_EFORMAT, "%s: checksum mismatch (corrupt)", path);
    close(fd);
    qx_free(keys);
    qx_free(lists);
    qx_free(codes);
    qx_free(buf);
    return rc;
}
