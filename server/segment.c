/* server/segment.c — mutable and sealed segments, the pid hash map and
 * tombstone files (see segment.h for the formats).
 *
 * Decisions:
 * 1. A sealed segment is mapped read-only (MAP_SHARED) in one piece: ids,
 *    vectors and payloads are read through the page cache and count as file
 *    pages, not as the server's anonymous memory. Only the tombstone bitmap
 *    (n / 8 bytes) lives in RAM, and the vectors when on_disk is off.
 * 2. Id -> row in a sealed segment is a binary search over the sorted
 *    permutation stored in the file: no hash map in RAM for sealed data.
 * 3. Segment files (gigabytes) are streamed through the core's atomic file
 *    (qx_afile: temporary file, fsync, rename, directory fsync); tombstone
 *    files (small) through qx_write_atomic.
 * 4. Checksums: the header has its own; ids, permutation and payload offsets
 *    (what every lookup trusts) are checked at open; vectors and payload
 *    bytes carry checksums that qxs_seg_verify checks, so that opening a
 *    10M-point collection does not read 5 GB of vectors. They are checked
 *    where every byte is read anyway: before a merge copies a segment (a
 *    corrupt one must not be copied under a fresh checksum), before a
 *    rebuild encodes the segments, when on_disk = false copies the vectors
 *    to RAM, and by `qinx serve verify` (offline, everything).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "par.h"
#include "segment.h"
#include "wal.h"

#define SEG_MAGIC "QXSEG001"
#define DEL_MAGIC "QXDEL001"
#define SEG_VERSION 1

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }
static uint64_t seg_rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static uint32_t seg_rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ---- pid map --------------------------------------------------------------- */

#define EMPTY UINT32_MAX

int qxs_pidmap_reserve(qxs_pidmap *m, size_t n) {
    if (2 * n <= m->cap) return 0;
    size_t cap = m->cap ? m->cap : 64;
    while (cap < 2 * n) cap *= 2;
    qxs_pid *k = qx_malloc(cap * sizeof *k);
    uint32_t *r = qx_malloc(cap * sizeof *r);
    if (!k || !r) {
        qx_free(k);
        qx_free(r);
        return qx_error_set(QX_ENOMEM, "id map of %zu slots", cap);
    }
    for (size_t i = 0; i < cap; i++) r[i] = EMPTY;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->rows[i] == EMPTY) continue;
        size_t h = qxs_pid_hash(&m->keys[i]) & (cap - 1);
        while (r[h] != EMPTY) h = (h + 1) & (cap - 1);
        k[h] = m->keys[i];
        r[h] = m->rows[i];
    }
    qx_free(m->keys);
    qx_free(m->rows);
    m->keys = k;
    m->rows = r;
    m->cap = cap;
    return 0;
}

static size_t slot_of(const qxs_pidmap *m, const qxs_pid *k, int *found) {
    size_t h = qxs_pid_hash(k) & (m->cap - 1);
    while (m->rows[h] != EMPTY) {
        if (qxs_pid_eq(&m->keys[h], k)) {
            *found = 1;
            return h;
        }
        h = (h + 1) & (m->cap - 1);
    }
    *found = 0;
    return h;
}

int qxs_pidmap_put(qxs_pidmap *m, const qxs_pid *k, uint32_t row) {
    int rc = qxs_pidmap_reserve(m, m->count + 1);
    if (rc) return rc;
    int f;
    size_t h = slot_of(m, k, &f);
    if (!f) {
        m->keys[h] = *k;
        m->count++;
    }
    m->rows[h] = row;
    return 0;
}

int qxs_pidmap_get(const qxs_pidmap *m, const qxs_pid *k, uint32_t *row) {
    if (!m->cap) return 0;
    int f;
    size_t h = slot_of(m, k, &f);
    if (f) *row = m->rows[h];
    return f;
}

int qxs_pidmap_del(qxs_pidmap *m, const qxs_pid *k) {
    if (!m->cap) return 0;
    int f;
    size_t h = slot_of(m, k, &f);
    if (!f) return 0;
    /* backward-shift deletion keeps probe chains without tombstones */
    size_t mask = m->cap - 1, i = h, j = h;
    for (;;) {
        j = (j + 1) & mask;
        if (m->rows[j] == EMPTY) break;
        size_t home = qxs_pid_hash(&m->keys[j]) & mask;
        /* move j into i when its home is not in (i, j] cyclically */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->keys[i] = m->keys[j];
            m->rows[i] = m->rows[j];
            i = j;
        }
    }
    m->rows[i] = EMPTY;
    m->count--;
    return 1;
}

void qxs_pidmap_free(qxs_pidmap *m) {
    qx_free(m->keys);
    qx_free(m->rows);
    memset(m, 0, sizeof *m);
}

/* ---- mutable segment ---------------------------------------------------------- */

void qxs_mseg_init(qxs_mseg *m, uint32_t no, size_t d) {
    memset(m, 0, sizeof *m);
    m->no = no;
    m->d = d;
}

void qxs_mseg_free(qxs_mseg *m) {
    qx_free(m->pids);
    qx_aligned_free(m->vecs);
    qx_free(m->poff);
    qx_free(m->pblob);
    qx_free(m->dead);
    qxs_pidmap_free(&m->map);
    size_t d = m->d;
    uint32_t no = m->no;
    memset(m, 0, sizeof *m);
    m->d = d;
    m->no = no;
}

/* The mutable segment's vector array is filled row by row and reallocated
 * as it doubles: tens of MB of first touches per checkpoint interval, and a
 * page fault costs microseconds on this kind of virtual machine. Where
 * transparent huge pages are given on request (THP "madvise", the Debian
 * default) ask for them: one fault per 2 MB instead of per 4 KB. A hint;
 * nothing depends on it. */
void qxs_hint_huge_pages(void *p, size_t len) {
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (len < 4 * huge) return;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + len) & ~(huge - 1);
    if (e > a) madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
    (void)p, (void)len;
#endif
}

int qxs_mseg_reserve(qxs_mseg *m, size_t more, size_t pbytes) {
    size_t need, pneed, used = m->n ? m->poff[m->n] : 0;
    if (!qx_size_add(m->n, more, &need) || need > QXS_SEG_MAX_ROWS)
        return qx_error_set(QX_ELIMIT, "a segment holds at most %u rows", QXS_SEG_MAX_ROWS);
    if (!qx_size_add(used, pbytes, &pneed)) return qx_error_set(QX_ENOMEM, "payload size overflow");
    if (qxs_pidmap_reserve(&m->map, m->map.count + more)) return QX_ENOMEM;
    if (need > m->cap) {
        size_t cap = m->cap ? m->cap : 256, vb;
        while (cap < need) cap *= 2;
        if (!qx_size_mul3(cap, m->d, sizeof(float), &vb)) return qx_error_set(QX_ENOMEM, "segment size overflow");
        float *v = qx_aligned_alloc(vb);
        if (v) qxs_hint_huge_pages(v, vb);
        qxs_pid *p = qx_realloc(m->pids, cap * sizeof *p);
        if (p) m->pids = p;
        uint64_t *o = qx_realloc(m->poff, (cap + 1) * sizeof *o);
        if (o) m->poff = o;
        uint64_t *dd = qx_realloc(m->dead, (cap + 63) / 64 * 8);
        if (dd) m->dead = dd;
        if (!v || !p || !o || !dd) {
            qx_aligned_free(v);
            return qx_error_set(QX_ENOMEM, "mutable segment of %zu rows", cap);
        }
        if (m->n) memcpy(v, m->vecs, m->n * m->d * sizeof(float));
        qx_aligned_free(m->vecs);
        m->vecs = v;
        memset(m->dead + (m->cap + 63) / 64, 0, ((cap + 63) / 64 - (m->cap + 63) / 64) * 8);
        if (m->cap == 0) m->poff[0] = 0;
        m->cap = cap;
    }
    if (pneed > m->pblob_cap) {
        size_t cap = m->pblob_cap ? m->pblob_cap : 4096;
        while (cap < pneed) cap *= 2;
        uint8_t *b = qx_realloc(m->pblob, cap);
        if (!b) return qx_error_set(QX_ENOMEM, "payloads of %zu bytes", cap);
        m->pblob = b;
        m->pblob_cap = cap;
    }
    return 0;
}

uint32_t qxs_mseg_append(qxs_mseg *m, const qxs_pid *id, const float *x, const uint8_t *p, uint32_t plen) {
    uint32_t row = (uint32_t)m->n++;
    m->pids[row] = *id;
    memcpy(m->vecs + (size_t)row * m->d, x, m->d * sizeof(float));
    uint64_t at = m->poff[row];
    if (plen) memcpy(m->pblob + at, p, plen);
    m->poff[row + 1] = at + plen;
    qxs_pidmap_put(&m->map, id, row); /* reserved: cannot fail */
    return row;
}

void qxs_mseg_kill(qxs_mseg *m, uint32_t row) {
    if (row >= m->n || qxs_bit_get(m->dead, row)) return;
    qxs_bit_set(m->dead, row);
    m->ndead++;
    uint32_t r;
    if (qxs_pidmap_get(&m->map, &m->pids[row], &r) && r == row) qxs_pidmap_del(&m->map, &m->pids[row]);
}

size_t qxs_mseg_bytes(const qxs_mseg *m) {
    return m->cap * (m->d * sizeof(float) + sizeof(qxs_pid) + 8) + (m->cap + 63) / 64 * 8 + m->pblob_cap +
           m->map.cap * (sizeof(qxs_pid) + 4);
}

/* ---- sealed segments: writing ------------------------------------------------- */

void qxs_seg_name(char *out, size_t cap, const char *dir, uint32_t no) {
    if (snprintf(out, cap, "%s/seg-%08u.dat", dir, no) >= (int)cap) out[0] = 0;
}
void qxs_del_name(char *out, size_t cap, const char *dir, uint32_t no, uint64_t gen) {
    if (snprintf(out, cap, "%s/seg-%08u.del.%llu", dir, no, (unsigned long long)gen) >= (int)cap) out[0] = 0;
}

static int cmp_rows(const void *a, const void *b, void *ctx) {
    const qxs_pid *p = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int c = qxs_pid_cmp(&p[x], &p[y]);
    return c ? c : (x < y ? -1 : x > y);
}

static int write_zeros(qx_afile *f, size_t n) {
    static const uint8_t z[4096];
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        int rc = qx_afile_write(f, z, k);
        if (rc) return rc;
        n -= k;
    }
    return 0;
}

int qxs_seg_write(const char *dir, const qxs_mseg *m, uint64_t *bytes) {
    char path[PATH_MAX];
    qxs_seg_name(path, sizeof path, dir, m->no);
    size_t n = m->n, d = m->d, vb;
    if (!qx_size_mul3(n, d, sizeof(float), &vb)) return qx_error_set(QX_ENOMEM, "segment size");
    uint64_t pblob_len = n ? m->poff[n] : 0;
    size_t off_pids = QXS_SEG_HDR;
    size_t off_perm = align_up(off_pids + n * QXS_PID_DISK, 64);
    size_t off_vecs = align_up(off_perm + n * 4, 4096);
    size_t off_poff = align_up(off_vecs + vb, 64);
    size_t off_pblob = align_up(off_poff + (n + 1) * 8, 64);
    size_t file_len = off_pblob + pblob_len;
    uint8_t *pids = qx_malloc(n * QXS_PID_DISK + 1);
    uint32_t *perm = qx_malloc(n * 4 + 4);
    uint64_t *poff = qx_malloc((n + 1) * 8);
    if (!pids || !perm || !poff) {
        qx_free(pids);
        qx_free(perm);
        qx_free(poff);
        return qx_error_set(QX_ENOMEM, "writing segment %s", path);
    }
    for (size_t i = 0; i < n; i++) {
        qxs_pid_put(pids + i * QXS_PID_DISK, &m->pids[i]);
        perm[i] = (uint32_t)i;
    }
    qsort_r(perm, n, 4, cmp_rows, m->pids);
    if (n) memcpy(poff, m->poff, (n + 1) * 8);
    else poff[0] = 0;
    uint32_t crc_meta = qx_crc32(0, pids, n * QXS_PID_DISK);
    crc_meta = qx_crc32(crc_meta, perm, n * 4);
    crc_meta = qx_crc32(crc_meta, poff, (n + 1) * 8);
    uint32_t crc_vecs = qx_crc32(0, m->vecs, vb);
    uint32_t crc_pblob = qx_crc32(0, m->pblob, pblob_len);
    uint8_t hdr[QXS_SEG_HDR];
    memset(hdr, 0, sizeof hdr);
    memcpy(hdr, SEG_MAGIC, 8);
    uint32_t ver = SEG_VERSION, d32 = (uint32_t)d;
    uint64_t f[8] = {n, off_pids, off_perm, off_vecs, off_poff, off_pblob, pblob_len, file_len};
    memcpy(hdr + 8, &ver, 4);
    memcpy(hdr + 12, &d32, 4);
    memcpy(hdr + 16, f, 8 * 8); /* n .. file_len */
    memcpy(hdr + 80, &crc_meta, 4);
    memcpy(hdr + 84, &crc_vecs, 4);
    memcpy(hdr + 88, &crc_pblob, 4);
    uint32_t crc_hdr = qx_crc32(0, hdr, 92);
    memcpy(hdr + 92, &crc_hdr, 4);

    qx_afile af;
    int rc = qx_afile_open(&af, path);
    size_t pos = 0;
#define EMIT(buf, len)                                                                                   \
    do {                                                                                                 \
        if (!rc) rc = qx_afile_write(&af, buf, len);                                                    \
        pos += (len);                                                                                    \
    } while (0)
#define PAD_TO(off)                                                                                      \
    do {                                                                                                 \
        if (!rc) rc = write_zeros(&af, (off) - pos);                                                     \
        pos = (off);                                                                                     \
    } while (0)
    EMIT(hdr, sizeof hdr);
    EMIT(pids, n * QXS_PID_DISK);
    PAD_TO(off_perm);
    EMIT(perm, n * 4);
    PAD_TO(off_vecs);
    EMIT(m->vecs, vb);
    PAD_TO(off_poff);
    EMIT(poff, (n + 1) * 8);
    PAD_TO(off_pblob);
    EMIT(m->pblob, pblob_len);
#undef EMIT
#undef PAD_TO
    qx_free(pids);
    qx_free(perm);
    qx_free(poff);
    if (rc) {
        qx_afile_abort(&af);
        return rc;
    }
    if ((rc = qx_afile_commit(&af))) return rc;
    if (bytes) *bytes = file_len;
    return 0;
}

/* ---- sealed segments: reading -------------------------------------------------- */

static int load_dead(qxs_seg *s, const char *dir, uint64_t gen) {
    char path[PATH_MAX];
    qxs_del_name(path, sizeof path, dir, s->no, gen);
    size_t words = (s->n + 63) / 64, want = 32 + words * 8 + 4;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qx_error_set(QX_EFORMAT, "%s: tombstone file named by the manifest is missing: %s", path,
                                strerror(errno));
    uint8_t *buf = qx_malloc(want + 1);
    if (!buf) {
        close(fd);
        return qx_error_set(QX_ENOMEM, "%s", path);
    }
    ssize_t got = 0, r;
    while ((size_t)got < want + 1 && (r = read(fd, buf + got, want + 1 - (size_t)got)) > 0) got += r;
    close(fd);
    int rc = 0;
    uint64_t nd;
    if ((size_t)got != want) rc = qx_error_set(QX_EFORMAT, "%s: %zd bytes, expected %zu (truncated or wrong size)", path, got, want);
    else if (memcmp(buf, DEL_MAGIC, 8) || seg_rd32(buf + 8) != s->no || seg_rd64(buf + 16) != s->n)
        rc = qx_error_set(QX_EFORMAT, "%s: bad magic or header (not the tombstones of segment %u)", path, s->no);
    else if (qx_crc32(0, buf, want - 4) != seg_rd32(buf + want - 4))
        rc = qx_error_set(QX_EFORMAT, "%s: checksum mismatch", path);
    if (!rc) {
        memcpy(s->dead, buf + 32, words * 8);
        nd = 0;
        for (size_t i = 0; i < words; i++) nd += (uint64_t)__builtin_popcountll(s->dead[i]);
        if (nd != seg_rd64(buf + 24)) rc = qx_error_set(QX_EFORMAT, "%s: %llu bits set, header says %llu", path,
                                                (unsigned long long)nd, (unsigned long long)seg_rd64(buf + 24));
        s->ndead = nd;
    }
    qx_free(buf);
    return rc;
}

int qxs_seg_open(const char *dir, uint32_t no, size_t d, uint64_t n, uint64_t del_gen, int on_disk,
                 qxs_seg **out) {
    qxs_seg *s = qx_calloc(1, sizeof *s);
    if (!s) return qx_error_set(QX_ENOMEM, "segment");
    s->fd = -1;
    s->no = no;
    s->d = d;
    qxs_seg_name(s->path, sizeof s->path, dir, no);
    const char *path = s->path;
    int rc = 0;
    struct stat st;
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
        rc = qx_error_set(errno == ENOENT ? QX_EFORMAT : QX_EIO, "%s: segment named by the manifest: %s", path,
                      strerror(errno));
        goto fail;
    }
    if (fstat(s->fd, &st) != 0) {
        rc = qx_error_set(QX_EIO, "stat %s: %s", path, strerror(errno));
        goto fail;
    }
    if ((size_t)st.st_size < QXS_SEG_HDR) {
        rc = qx_error_set(QX_EFORMAT, "%s: %lld bytes, shorter than a segment header (truncated)", path,
                      (long long)st.st_size);
        goto fail;
    }
    s->map_len = (size_t)st.st_size;
    s->map = mmap(NULL, s->map_len, PROT_READ, MAP_SHARED, s->fd, 0);
    if (s->map == MAP_FAILED) {
        s->map = NULL;
        rc = qx_error_set(QX_EIO, "mmap %s: %s", path, strerror(errno));
        goto fail;
    }
    const uint8_t *h = s->map;
    if (memcmp(h, SEG_MAGIC, 8) || qx_crc32(0, h, 92) != seg_rd32(h + 92)) {
        rc = qx_error_set(QX_EFORMAT, "%s: bad magic or header checksum (not a qinx segment, or corrupt)", path);
        goto fail;
    }
    uint64_t f[8];
    memcpy(f, h + 16, sizeof f);
    uint64_t hn = f[0], off_pids = f[1], off_perm = f[2], off_vecs = f[3], off_poff = f[4], off_pblob = f[5],
             pblob_len = f[6], file_len = f[7];
    size_t vb;
    if (seg_rd32(h + 8) != SEG_VERSION || seg_rd32(h + 12) != d || hn != n || file_len != s->map_len ||
        !qx_size_mul3(n, d, 4, &vb) || off_pids != QXS_SEG_HDR || off_perm < off_pids + n * QXS_PID_DISK ||
        off_vecs < off_perm + n * 4 || off_vecs % 64 || off_poff < off_vecs + vb || off_pblob < off_poff + (n + 1) * 8 ||
        off_pblob + pblob_len != file_len) {
        rc = qx_error_set(QX_EFORMAT, "%s: header (version %u, d %u, n %llu, %llu bytes) does not match the manifest "
                      "(d %zu, n %llu) or the file's %zu bytes",
                      path, seg_rd32(h + 8), seg_rd32(h + 12), (unsigned long long)hn, (unsigned long long)file_len, d,
                      (unsigned long long)n, s->map_len);
        goto fail;
    }
    s->n = n;
    s->pids = h + off_pids;
    s->perm = h + off_perm;
    s->vecs = (const float *)(h + off_vecs);
    s->poff = h + off_poff;
    s->pblob = h + off_pblob;
    s->pblob_len = pblob_len;
    s->crc_vecs = seg_rd32(h + 84);
    s->crc_pblob = seg_rd32(h + 88);
    /* 29 bytes a row, every byte read: on every core (par.h) */
    uint32_t crc = qxs_crc32_par(0, s->pids, n * QXS_PID_DISK);
    crc = qxs_crc32_par(crc, s->perm, n * 4);
    crc = qxs_crc32_par(crc, s->poff, (n + 1) * 8);
    if (crc != seg_rd32(h + 80)) {
        rc = qx_error_set(QX_EFORMAT, "%s: checksum mismatch in the ids, order or payload offsets", path);
        goto fail;
    }
    if (seg_rd64(s->poff + n * 8) != pblob_len) {
        rc = qx_error_set(QX_EFORMAT, "%s: payload offsets do not end at the payload section's length", path);
        goto fail;
    }
    s->dead = qx_calloc((n + 63) / 64 + 1, 8);
    if (!s->dead) {
        rc = qx_error_set(QX_ENOMEM, "tombstones of %s", path);
        goto fail;
    }
    if (del_gen && (rc = load_dead(s, dir, del_gen))) goto fail;
    s->del_gen = del_gen;
    if (!on_disk && n) {
        s->vecs_ram = qx_aligned_alloc(vb);
        if (!s->vecs_ram) {
            rc = qx_error_set(QX_ENOMEM, "raw vectors of %s in RAM (on_disk false): %zu bytes", path, vb);
            goto fail;
        }
        memcpy(s->vecs_ram, s->vecs, vb);
        s->vecs = s->vecs_ram;
        /* every vector was just read: their checksum costs little more */
        if (qx_crc32(0, s->vecs_ram, vb) != s->crc_vecs) {
            rc = qx_error_set(QX_EFORMAT, "%s: checksum mismatch in the raw vectors", path);
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    qxs_seg_close(s);
    return rc;
}

void qxs_seg_close(qxs_seg *s) {
    if (!s) return;
    if (s->map) munmap(s->map, s->map_len);
    if (s->fd >= 0) close(s->fd);
    qx_aligned_free(s->vecs_ram);
    qx_free(s->dead);
    qx_free(s);
}

int qxs_seg_save_dead(qxs_seg *s, const char *dir, uint64_t gen, uint64_t *bytes) {
    char path[PATH_MAX];
    qxs_del_name(path, sizeof path, dir, s->no, gen);
    size_t words = (s->n + 63) / 64, len = 32 + words * 8 + 4;
    uint8_t *buf = qx_calloc(1, len);
    if (!buf) return qx_error_set(QX_ENOMEM, "%s", path);
    memcpy(buf, DEL_MAGIC, 8);
    uint32_t no = s->no;
    uint64_t n = s->n, nd = s->ndead;
    memcpy(buf + 8, &no, 4);
    memcpy(buf + 16, &n, 8);
    memcpy(buf + 24, &nd, 8);
    memcpy(buf + 32, s->dead, words * 8);
    uint32_t crc = qx_crc32(0, buf, len - 4);
    memcpy(buf + len - 4, &crc, 4);
    int rc = qx_write_atomic(path, buf, len);
    qx_free(buf);
    if (rc) return rc;
    s->del_gen = gen;
    s->del_dirty = 0;
    if (bytes) *bytes = len;
    return 0;
}

void qxs_seg_pid(const qxs_seg *s, uint32_t row, qxs_pid *id) {
    qxs_pid_read(s->pids + (size_t)row * QXS_PID_DISK, id);
}

long qxs_seg_find(const qxs_seg *s, const qxs_pid *id) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) { /* first position whose pid >= id */
        size_t mid = lo + (hi - lo) / 2;
        qxs_pid p;
        qxs_seg_pid(s, seg_rd32(s->perm + mid * 4), &p);
        if (qxs_pid_cmp(&p, id) < 0) lo = mid + 1;
        else hi = mid;
    }
    for (; lo < s->n; lo++) { /* equal ids: earlier rows were overwritten */
        uint32_t row = seg_rd32(s->perm + lo * 4);
        qxs_pid p;
        qxs_seg_pid(s, row, &p);
        if (!qxs_pid_eq(&p, id)) break;
        if (!qxs_bit_get(s->dead, row)) return (long)row;
    }
    return -1;
}

const uint8_t *qxs_seg_payload(const qxs_seg *s, uint32_t row, uint32_t *len) {
    uint64_t a = seg_rd64(s->poff + (size_t)row * 8), b = seg_rd64(s->poff + ((size_t)row + 1) * 8);
    if (a > b || b > s->pblob_len || b - a > QXS_MAX_PAYLOAD) { /* offsets are under crc_meta: cannot happen */
        *len = 0;
        return NULL;
    }
    *len = (uint32_t)(b - a);
    return s->pblob + a;
}

void qxs_seg_kill(qxs_seg *s, uint32_t row) {
    if (row >= s->n || qxs_bit_get(s->dead, row)) return;
    qxs_bit_set(s->dead, row);
    s->ndead++;
    s->del_dirty = 1;
}

int qxs_seg_verify(const qxs_seg *s) {
    const float *v = (const float *)(s->map + seg_rd64(s->map + 16 + 3 * 8));
    if (qx_crc32(0, v, s->n * s->d * 4) != s->crc_vecs)
        return qx_error_set(QX_EFORMAT, "%s: checksum mismatch in the raw vectors", s->path);
    if (qx_crc32(0, s->pblob, s->pblob_len) != s->crc_pblob)
        return qx_error_set(QX_EFORMAT, "%s: checksum mismatch in the payloads", s->path);
    return 0;
}

size_t qxs_seg_ram_bytes(const qxs_seg *s) {
    return ((s->n + 63) / 64 + 1) * 8 + (s->vecs_ram ? s->n * s->d * 4 : 0) + sizeof *s;
}
