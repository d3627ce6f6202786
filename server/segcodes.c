/* server/segcodes.c — seg-<no>.codes.<gen> files (segcodes.h).
 *
 * Decisions:
 * 1. Records interleave list and code so that both are written and read in
 *    one streaming pass of bounded memory (chunks of CODES_CHUNK rows), whatever
 *    the segment's size.
 * 2. Restart loads every segment's file in one call (qxs_codes_load_all),
 *    in two passes over the mapped files: the first checks the records'
 *    checksums and list numbers and counts each list's live entries, on
 *    every core (pieces of ~5 MB, their CRCs combined in order); the second
 *    adds the entries into lists and a row map reserved at their exact
 *    size, also on every core (qx_ivf_add_records: each thread its own
 *    lists). Nothing is added unless every file checks out, and lists never
 *    grow by copies (before: ~40 % of a restart went to list growth, its
 *    page faults and the trim after it). A corrupt file is still refused with
 *    its name, as before.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "par.h"
#include "rowmap.h"
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

/* ---- loading: check every file, count, reserve, then add ------------------ */

#ifndef CODES_PIECE /* the unit tests make it small, to cut files into many pieces */
#define CODES_PIECE ((size_t)1 << 18) /* rows one thread checks at a time (~5 MB of 16-byte codes) */
#endif

typedef struct cfile {
    char path[PATH_MAX];
    const qxs_codes_src *src;
    uint8_t *map;
    size_t map_len;
} cfile;

typedef struct cpiece {
    size_t f, r0, r1;
    uint32_t crc;
    size_t bad_row; /* SIZE_MAX: none */
    uint32_t bad_list;
} cpiece;

typedef struct cpass {
    cfile *files;
    cpiece *pieces;
    size_t npieces, rec, nlist;
    _Atomic size_t next;
    size_t *counts; /* nt x nlist */
} cpass;

/* Pass 1, on every thread: the records' CRC piece by piece, list numbers in
 * range, and the live entries each list will receive. */
static void check_pieces(void *ctx, int t, int nt) {
    cpass *p = ctx;
    (void)nt;
    size_t *cnt = p->counts + (size_t)t * p->nlist;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->npieces) break;
        cpiece *pc = &p->pieces[i];
        const cfile *f = &p->files[pc->f];
        const uint8_t *rec0 = f->map + CODES_HDR;
        const uint64_t *dead = f->src->dead;
        pc->crc = qx_crc32(0, rec0 + pc->r0 * p->rec, (pc->r1 - pc->r0) * p->rec);
        for (size_t r = pc->r0; r < pc->r1; r++) {
            uint32_t l = rd32(rec0 + r * p->rec);
            if (l == UINT32_MAX) continue;
            if (l >= p->nlist) {
                pc->bad_row = r;
                pc->bad_list = l;
                break;
            }
            if (!dead || !qxs_bit_get(dead, r)) cnt[l]++;
        }
    }
}

static int map_codes(cfile *f, const char *dir, size_t cs, size_t nlist) {
    const qxs_codes_src *c = f->src;
    qxs_codes_name(f->path, sizeof f->path, dir, c->no, c->gen);
    const char *path = f->path;
    size_t rec = 4 + cs;
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
    if (rd32(hdr + 8) != CODES_VERSION || rd32(hdr + 12) != c->no || rd64(hdr + 16) != c->n ||
        rd64(hdr + 24) != c->gen || rd32(hdr + 32) != cs || rd32(hdr + 36) != nlist ||
        (uint64_t)st.st_size != CODES_HDR + (uint64_t)c->n * rec + 4) {
        close(fd);
        return qx_error_set(QX_EFORMAT, "%s: header (segment %u, %llu rows, generation %llu, code size %u, nlist %u, "
                            "%lld bytes) does not match the manifest and index (%u, %zu, %llu, %zu, %zu)",
                            path, rd32(hdr + 12), (unsigned long long)rd64(hdr + 16), (unsigned long long)rd64(hdr + 24),
                            rd32(hdr + 32), rd32(hdr + 36), (long long)st.st_size, c->no, c->n,
                            (unsigned long long)c->gen, cs, nlist);
    }
    f->map_len = (size_t)st.st_size;
    void *m = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return qx_error_set(QX_EIO, "mmap %s: %s", path, strerror(errno));
    madvise(m, f->map_len, MADV_WILLNEED);
    f->map = m;
    return 0;
}

int qxs_codes_load_all(const char *dir, const qxs_codes_src *src, size_t k, qx_ivf *ivf, qxs_rowmap *rm) {
    qx_ivf_info info;
    int rc = qx_ivf_get_info(ivf, &info);
    if (rc || k == 0) return rc;
    size_t cs = info.code_size, rec = 4 + cs, nlist = info.nlist;
    int nt = qxs_par_threads();
    cpass p = {.rec = rec, .nlist = nlist};
    size_t npieces = 0;
    for (size_t i = 0; i < k; i++) npieces += (src[i].n + CODES_PIECE - 1) / CODES_PIECE;
    p.files = qx_calloc(k, sizeof *p.files);
    p.pieces = qx_calloc(npieces + 1, sizeof *p.pieces);
    p.counts = qx_calloc((size_t)nt * nlist, sizeof *p.counts);
    size_t *need = qx_calloc(nlist, sizeof *need);
    if (!p.files || !p.pieces || !p.counts || !need) rc = qx_error_set(QX_ENOMEM, "loading %zu codes files", k);
    for (size_t i = 0; !rc && i < k; i++) {
        p.files[i].src = &src[i];
        rc = map_codes(&p.files[i], dir, cs, nlist);
        for (size_t r0 = 0; !rc && r0 < src[i].n; r0 += CODES_PIECE)
            p.pieces[p.npieces++] = (cpiece){.f = i, .r0 = r0,
                                             .r1 = src[i].n - r0 < CODES_PIECE ? src[i].n : r0 + CODES_PIECE,
                                             .bad_row = SIZE_MAX};
    }
    if (!rc) qxs_par_run(nt, check_pieces, &p);
    /* report the first damage in file order (deterministic whatever the threads did) */
    for (size_t i = 0, j = 0; !rc && i < k; i++) {
        uint32_t crc = 0;
        for (; j < p.npieces && p.pieces[j].f == i; j++) {
            const cpiece *pc = &p.pieces[j];
            if (pc->bad_row != SIZE_MAX) {
                rc = qx_error_set(QX_EFORMAT, "%s: row %zu names list %u of %zu (corrupt)", p.files[i].path,
                                  pc->bad_row, pc->bad_list, nlist);
                break;
            }
            crc = qx_crc32_combine(crc, pc->crc, (pc->r1 - pc->r0) * rec);
        }
        if (!rc && rd32(p.files[i].map + CODES_HDR + src[i].n * rec) != crc)
            rc = qx_error_set(QX_EFORMAT, "%s: checksum mismatch (corrupt)", p.files[i].path);
    }
    /* every file checks out: exact room in each list and row map, then add */
    for (int t = 0; !rc && t < nt; t++)
        for (size_t l = 0; l < nlist; l++) need[l] += p.counts[(size_t)t * nlist + l];
    if (!rc) rc = qx_ivf_reserve_lists(ivf, need);
    for (size_t i = 0; !rc && rm && i < k; i++) rc = qxs_rowmap_reserve(rm, src[i].no, src[i].n);
    /* the records as mapped, on every core (each thread fills its own lists;
     * the row map's puts of reserved rows are safe from several threads) */
    if (rm) rm->bulk = 1;
    for (size_t i = 0; !rc && i < k; i++)
        if ((rc = qx_ivf_add_records(ivf, p.files[i].map + CODES_HDR, rec, src[i].n, qxs_rowkey(src[i].no, 0),
                                     src[i].dead, rm ? nt : 1))) {
            char why[256];
            snprintf(why, sizeof why, "%s", qx_last_error());
            rc = qx_error_set(rc, "%s: %s", p.files[i].path, why);
        }
    if (rm) {
        rm->bulk = 0;
        qxs_rowmap_recount(rm);
    }
    for (size_t i = 0; p.files && i < k; i++)
        if (p.files[i].map) munmap(p.files[i].map, p.files[i].map_len);
    qx_free(p.files);
    qx_free(p.pieces);
    qx_free(p.counts);
    qx_free(need);
    return rc;
}

int qxs_codes_load(const char *dir, uint32_t no, uint64_t gen, size_t n, const uint64_t *dead, qx_ivf *ivf) {
    qxs_codes_src src = {.no = no, .gen = gen, .n = n, .dead = dead};
    return qxs_codes_load_all(dir, &src, 1, ivf, NULL);
}
