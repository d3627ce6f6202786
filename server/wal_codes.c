/* server/wal_codes.c — codes of the log's records (wal_codes.h).
 *
 * Decisions:
 * 1. No fsync: the file only saves encoding time. After a power loss it may
 *    lack entries or hold entries of records the log lost; the exact match
 *    on (lsn, point count, record checksum) keeps a stale entry from being
 *    paired with another record of the same lsn.
 * 2. Opening rewrites the file from the entries the replay uses (and the
 *    ones it encodes), so after a restart it covers the log tail again and
 *    a second crash replays as fast as the first.
 * 3. Entries are checked before use (CRC, sizes, list numbers < nlist); a bad
 *    entry ends the cache for the rest of the replay (it is a tail torn by a
 *    crash or damage: the records after it are encoded).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "wal_codes.h"

#define WC_MAGIC "QXWCD001"
#define WC_VERSION 1
#define WC_HDR 32
#define WC_ENTRY_HDR 8  /* len + crc */
#define WC_BODY_HDR 16  /* lsn + record crc + n */

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

void qxs_wcodes_init(qxs_wcodes *w) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
}

static void header(uint8_t h[WC_HDR], uint64_t gen, size_t cs, size_t nlist) {
    memset(h, 0, WC_HDR);
    memcpy(h, WC_MAGIC, 8);
    uint32_t v = WC_VERSION, c = (uint32_t)cs, nl = (uint32_t)nlist;
    memcpy(h + 8, &v, 4);
    memcpy(h + 12, &c, 4);
    memcpy(h + 16, &gen, 8);
    memcpy(h + 24, &nl, 4);
    uint32_t crc = qx_crc32(0, h, 28);
    memcpy(h + 28, &crc, 4);
}

static void read_old(qxs_wcodes *w, const char *path, const uint8_t want[WC_HDR]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (fstat(fd, &st) == 0 && st.st_size > WC_HDR && (buf = qx_malloc((size_t)st.st_size))) {
        len = (size_t)st.st_size;
        size_t got = 0;
        while (got < len) {
            ssize_t r = pread(fd, buf + got, len - got, (off_t)got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
        if (got != len || memcmp(buf, want, WC_HDR) != 0) { /* another model, or unreadable */
            qx_free(buf);
            buf = NULL;
        }
    }
    close(fd);
    if (!buf) return;
    w->old = buf;
    w->old_len = len;
    w->old_pos = WC_HDR;
}

int qxs_wcodes_open(qxs_wcodes *w, const char *path, uint64_t gen, size_t cs, size_t nlist, int replay) {
    qxs_wcodes_close(w);
    if (!gen) {
        unlink(path);
        return 0;
    }
    w->gen = gen;
    w->cs = cs;
    w->nlist = nlist;
    uint8_t h[WC_HDR];
    header(h, gen, cs, nlist);
    if (replay) read_old(w, path, h);
    /* a fresh file in place of the old one (whose entries are in memory) */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return qx_error_set(QX_EINVAL, "path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return qx_error_set(QX_EIO, "%s: %s", tmp, strerror(errno));
    if (qx_write_all(fd, h, WC_HDR) || rename(tmp, path) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return qx_error_set(QX_EIO, "%s: %s", path, strerror(e));
    }
    w->fd = fd;
    return 0;
}

int qxs_wcodes_find(qxs_wcodes *w, uint64_t lsn, uint32_t crc, uint32_t n, const uint8_t **entries) {
    size_t rec = qxs_wcodes_rec(w);
    while (w->old && w->old_len - w->old_pos >= WC_ENTRY_HDR + WC_BODY_HDR) {
        const uint8_t *e = w->old + w->old_pos;
        uint32_t blen = rd32(e);
        if (blen < WC_BODY_HDR || blen > w->old_len - w->old_pos - WC_ENTRY_HDR ||
            qx_crc32(0, e + WC_ENTRY_HDR, blen) != rd32(e + 4))
            break; /* torn or damaged: no more entries */
        const uint8_t *b = e + WC_ENTRY_HDR;
        uint64_t elsn = rd64(b);
        uint32_t en = rd32(b + 12);
        if ((uint64_t)blen != WC_BODY_HDR + (uint64_t)en * rec) break;
        if (elsn > lsn) return 0; /* this record has no entry; later ones may */
        w->old_pos += WC_ENTRY_HDR + blen;
        if (elsn < lsn) continue; /* an entry of a record the log no longer has */
        if (en != n || rd32(b + 8) != crc) return 0;
        const uint8_t *ent = b + WC_BODY_HDR;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t l = rd32(ent + (size_t)i * rec);
            if (l != UINT32_MAX && l >= w->nlist) return 0;
        }
        *entries = ent;
        return 1;
    }
    qxs_wcodes_done_replay(w);
    return 0;
}

void qxs_wcodes_append(qxs_wcodes *w, uint64_t lsn, uint32_t crc, uint32_t n, const uint8_t *entries) {
    if (w->fd < 0) return;
    size_t blen = WC_BODY_HDR + (size_t)n * qxs_wcodes_rec(w);
    uint8_t h[WC_ENTRY_HDR + WC_BODY_HDR];
    uint32_t b32 = (uint32_t)blen;
    memcpy(h, &b32, 4);
    memcpy(h + 8, &lsn, 8);
    memcpy(h + 16, &crc, 4);
    memcpy(h + 20, &n, 4);
    uint32_t c = qx_crc32(0, h + WC_ENTRY_HDR, WC_BODY_HDR);
    c = qx_crc32(c, entries, blen - WC_BODY_HDR);
    memcpy(h + 4, &c, 4);
    struct iovec v[2] = {{h, sizeof h}, {(void *)entries, blen - WC_BODY_HDR}};
    size_t want = sizeof h + blen - WC_BODY_HDR;
    ssize_t wr;
    do wr = writev(w->fd, v, 2);
    while (wr < 0 && errno == EINTR);
    if (wr != (ssize_t)want) { /* a short entry fails its CRC at replay; stop writing */
        close(w->fd);
        w->fd = -1;
    }
}

void qxs_wcodes_done_replay(qxs_wcodes *w) {
    qx_free(w->old);
    w->old = NULL;
    w->old_len = w->old_pos = 0;
}

void qxs_wcodes_close(qxs_wcodes *w) {
    if (w->fd >= 0) close(w->fd);
    qxs_wcodes_done_replay(w);
    uint64_t used = w->used, missed = w->missed;
    qxs_wcodes_init(w);
    w->used = used;
    w->missed = missed;
}
