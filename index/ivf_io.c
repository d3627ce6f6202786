/* index/ivf_io.c — the on-disk format of a qx_ivf.
 *
 * Layout (little-endian):
 *   header, 64 bytes: magic "QINXIVF1", u32 version, u32 d, u32 metric,
 *     u32 quantizer kind, u32 M, u32 code_size, u64 nlist, u64 ntotal,
 *     u64 file length, u32 number of sections, u32 CRC-32 of bytes 0..59
 *   sections, each: u32 tag, u32 CRC-32 of payload, u64 payload length, payload
 *     1 OPTS       kmeans_iters u32, pad u32, seed u64
 *     2 CENTROIDS  nlist*d float32
 *     3 NORMS      256 float32 (norm levels)
 *     4 QUANTIZER  the quantizer blob (qx_quantizer_serialize)
 *     5 LISTS      per list: u64 size, size*code_size code bytes, size*8 ids
 *     6 RESERVOIR  optional: the training-vector reservoir (DERP drift reference)
 * Decisions: the whole file is read into memory and every length is checked
 * against what is left before it is used, so truncation, bit flips (CRC) and
 * lying headers all fail with a message naming the section. Saves go to a
 * temporary file in the same directory, are fsync'ed, renamed over the target
 * and the directory is fsync'ed: a crash leaves either the old or the new file.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ivf_impl.h"
#include "qinx/derp.h"

#define QX__IVF_MAGIC "QINXIVF1"
#define QX__IVF_VERSION 1u
#define QX__HDR 64u
enum { SEC_OPTS = 1, SEC_CENTROIDS = 2, SEC_NORMS = 3, SEC_QUANT = 4, SEC_LISTS = 5, SEC_RESERVOIR = 6 };

/* ---- a streaming writer --------------------------------------------------- */

/* Bytes go to the temporary file through a 1 MB stage, so saving an index
 * costs 1 MB of memory, not a copy of its lists (a 20M-row, 16-byte index
 * is 480 MB). The CRC of the open section runs over the bytes as they pass;
 * its header (and the file header) are written in place with pwrite once
 * known. */
#define STAGE ((size_t)1 << 20)
typedef struct {
    qx__afile f;
    uint8_t *p;     /* stage of STAGE bytes */
    size_t len;     /* staged */
    uint64_t off;   /* file offset of p[0] */
    uint32_t crc;   /* of the open section's payload so far */
    int rc;
} buf_t;

static void flush(buf_t *b) {
    if (b->rc || !b->len) return;
    b->rc = qx__afile_write(&b->f, b->p, b->len);
    b->off += b->len;
    b->len = 0;
}
static void put(buf_t *b, const void *src, size_t n) {
    const uint8_t *s = src;
    b->crc = n ? qx__crc32(b->crc, s, n) : b->crc; /* an empty list's codes may be NULL */
    while (!b->rc && n) {
        size_t k = STAGE - b->len < n ? STAGE - b->len : n;
        memcpy(b->p + b->len, s, k);
        b->len += k, s += k, n -= k;
        if (b->len == STAGE) flush(b);
    }
}
static void put_u32(buf_t *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf_t *b, uint64_t v) { put(b, &v, 8); }
static uint64_t pos(const buf_t *b) { return b->off + b->len; }
/* Write n bytes at file offset at (< pos), already written or still staged. */
static void patch(buf_t *b, uint64_t at, const void *src, size_t n) {
    const uint8_t *s = src;
    if (b->rc) return;
    if (at < b->off) {
        size_t k = b->off - at < n ? (size_t)(b->off - at) : n;
        if (pwrite(b->f.fd, s, k, (off_t)at) != (ssize_t)k) {
            b->rc = qx__fail(QX_EIO, "%s: pwrite: %s", b->f.tmp, strerror(errno));
            return;
        }
        at += k, s += k, n -= k;
    }
    if (n) memcpy(b->p + (at - b->off), s, n);
}

/* Start a section; returns the offset of its header for end_section. */
static uint64_t begin_section(buf_t *b, uint32_t tag) {
    uint64_t at = pos(b);
    put_u32(b, tag);
    put_u32(b, 0);
    put_u64(b, 0);
    b->crc = 0;
    return at;
}
static void end_section(buf_t *b, uint64_t at) {
    uint64_t len = pos(b) - at - 16;
    patch(b, at + 4, &b->crc, 4);
    patch(b, at + 8, &len, 8);
}

/* Saving streams into a temporary file (qx__afile, core/file.c): fsync, rename. */

static int save(const qx_ivf *ivf, const char *path, int with_lists) {
    if (!ivf || !path) return qx__fail(QX_EINVAL, "ivf_save: NULL argument");
    if (!ivf->trained) return qx__fail(QX_ESTATE, "ivf_save: index is not trained");
    uint8_t *qblob = NULL;
    size_t qlen = 0;
    int rc = qx_quantizer_serialize(ivf->quant, &qblob, &qlen);
    if (rc) return qx__wrap(rc, "saving %s", path);
    buf_t b = {.p = qx__malloc(STAGE)};
    if (!b.p) {
        qx__free(qblob);
        return qx__fail(QX_ENOMEM, "saving %s: out of memory", path);
    }
    if ((b.rc = qx__afile_open(&b.f, path))) {
        qx__free(qblob);
        qx__free(b.p);
        return b.rc;
    }
    uint8_t h[QX__HDR] = {0};
    put(&b, h, QX__HDR); /* filled at the end */
    uint64_t at = begin_section(&b, SEC_OPTS);
    put_u32(&b, (uint32_t)ivf->opts.kmeans_iters);
    put_u32(&b, 0);
    put_u64(&b, ivf->opts.seed);
    end_section(&b, at);
    at = begin_section(&b, SEC_CENTROIDS);
    put(&b, ivf->centroids, sizeof(float) * ivf->nlist * ivf->d);
    end_section(&b, at);
    at = begin_section(&b, SEC_NORMS);
    put(&b, ivf->norm_levels, sizeof ivf->norm_levels);
    end_section(&b, at);
    at = begin_section(&b, SEC_QUANT);
    put(&b, qblob, qlen);
    end_section(&b, at);
    qx__free(qblob);
    at = begin_section(&b, SEC_LISTS);
    uint8_t row[2 * QX_MAX_STEPS + 1];
    for (size_t l = 0; l < ivf->nlist; l++) {
        const qx__ivf_list *L = &ivf->lists[l];
        put_u64(&b, with_lists ? L->size : 0);
        if (!with_lists) continue;
        if (ivf->fs_pairs) { /* fast-scan kind: full row-major codes, unpacked */
            for (size_t i = 0; i < L->size; i++) {
                qx__ivf_fs_get(ivf, L, i, row);
                put(&b, row, ivf->code_size);
            }
        } else {
            put(&b, L->codes, L->size * ivf->code_size);
        }
        put(&b, L->ids, L->size * sizeof(int64_t));
    }
    end_section(&b, at);
    uint32_t nsec = 5;
    if (ivf->reservoir) {
        uint8_t *rblob = NULL;
        size_t rlen = 0;
        if ((rc = qx_derp_reservoir_serialize(ivf->reservoir, &rblob, &rlen))) {
            qx__afile_abort(&b.f);
            qx__free(b.p);
            return qx__wrap(rc, "saving %s", path);
        }
        at = begin_section(&b, SEC_RESERVOIR);
        put(&b, rblob, rlen);
        end_section(&b, at);
        qx__free(rblob);
        nsec = 6;
    }
    uint32_t u;
    uint64_t v;
    memcpy(h, QX__IVF_MAGIC, 8);
    u = QX__IVF_VERSION; memcpy(h + 8, &u, 4);
    u = (uint32_t)ivf->d; memcpy(h + 12, &u, 4);
    u = (uint32_t)ivf->opts.metric; memcpy(h + 16, &u, 4);
    u = (uint32_t)qx_quantizer_kind(ivf->quant); memcpy(h + 20, &u, 4);
    u = (uint32_t)ivf->M; memcpy(h + 24, &u, 4);
    u = (uint32_t)ivf->code_size; memcpy(h + 28, &u, 4);
    v = ivf->nlist; memcpy(h + 32, &v, 8);
    v = with_lists ? ivf->ntotal : 0; memcpy(h + 40, &v, 8);
    v = pos(&b); memcpy(h + 48, &v, 8);
    u = nsec; memcpy(h + 56, &u, 4);
    u = qx__crc32(0, h, 60); memcpy(h + 60, &u, 4);
    patch(&b, 0, h, QX__HDR);
    flush(&b);
    rc = b.rc;
    if (rc) qx__afile_abort(&b.f);
    else rc = qx__afile_commit(&b.f);
    qx__free(b.p);
    return rc;
}

int qx_ivf_save(const qx_ivf *ivf, const char *path) { return save(ivf, path, 1); }
int qx_ivf_save_model(const qx_ivf *ivf, const char *path) { return save(ivf, path, 0); }

/* ---- load ----------------------------------------------------------------------- */

static int read_file(const char *path, uint8_t **out, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return qx__fail(errno == ENOENT ? QX_ENOTFOUND : QX_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qx__fail(QX_EIO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *p = qx__malloc(n);
    if (!p) {
        close(fd);
        return qx__fail(QX_ENOMEM, "%s: %zu bytes", path, n);
    }
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        qx__free(p);
        return qx__fail(QX_EIO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    *out = p;
    *len = n;
    return 0;
}

typedef struct { const uint8_t *p; size_t left; } cur_t;

static int take(cur_t *c, void *dst, size_t n) {
    if (c->left < n) return -1;
    if (dst) memcpy(dst, c->p, n);
    c->p += n;
    c->left -= n;
    return 0;
}

static const char *section_name(uint32_t tag) {
    static const char *names[] = {"?", "options", "centroids", "norm levels", "quantizer", "lists", "reservoir"};
    return tag <= SEC_RESERVOIR ? names[tag] : "unknown";
}

int qx_ivf_load(const char *path, qx_ivf **out) {
    if (!path || !out) return qx__fail(QX_EINVAL, "ivf_load: NULL argument");
    *out = NULL;
    uint8_t *file = NULL;
    size_t flen = 0;
    int rc = read_file(path, &file, &flen);
    if (rc) return rc;
    qx_ivf *ivf = NULL;
    const uint8_t *h = file;
    uint32_t version, d, metric, kind, M, cs, nsec, crc;
    uint64_t nlist, ntotal, declared;
#define FAIL(...) do { rc = qx__fail(QX_EFORMAT, __VA_ARGS__); goto out; } while (0)
    if (flen < QX__HDR) FAIL("%s: truncated: %zu bytes, a qinx index has at least %u", path, flen, QX__HDR);
    if (memcmp(h, QX__IVF_MAGIC, 8) != 0) FAIL("%s: not a qinx index (bad magic)", path);
    memcpy(&version, h + 8, 4);
    memcpy(&d, h + 12, 4);
    memcpy(&metric, h + 16, 4);
    memcpy(&kind, h + 20, 4);
    memcpy(&M, h + 24, 4);
    memcpy(&cs, h + 28, 4);
    memcpy(&nlist, h + 32, 8);
    memcpy(&ntotal, h + 40, 8);
    memcpy(&declared, h + 48, 8);
    memcpy(&nsec, h + 56, 4);
    memcpy(&crc, h + 60, 4);
    if (version != QX__IVF_VERSION) FAIL("%s: format version %u, this build reads %u", path, version, QX__IVF_VERSION);
    if (qx__crc32(0, h, 60) != crc) FAIL("%s: header checksum mismatch (corrupt header)", path);
    if (declared != flen) FAIL("%s: truncated or extended: header says %llu bytes, file has %zu", path, (unsigned long long)declared, flen);
    if (d == 0 || d > 65536 || M == 0 || M > QX_MAX_STEPS || nlist == 0 || nlist > QX_MAX_NLIST ||
        metric > QX_METRIC_IP || cs != M + (metric == QX_METRIC_L2) || nsec < 5 || nsec > 6)
        FAIL("%s: header fields out of range (d=%u M=%u nlist=%llu metric=%u code_size=%u)", path, d, M,
             (unsigned long long)nlist, metric, cs);
    cur_t c = {file + QX__HDR, flen - QX__HDR};
    const uint8_t *sec[7] = {0};
    uint64_t seclen[7] = {0};
    for (uint32_t s = 0; s < nsec; s++) {
        uint32_t tag, scrc;
        uint64_t slen;
        if (take(&c, &tag, 4) || take(&c, &scrc, 4) || take(&c, &slen, 8))
            FAIL("%s: truncated in the header of section %u", path, s + 1);
        if (tag < SEC_OPTS || tag > SEC_RESERVOIR || sec[tag]) FAIL("%s: unexpected section tag %u", path, tag);
        if (slen > c.left) FAIL("%s: section '%s' needs %llu bytes, %zu left (truncated)", path,
                                section_name(tag), (unsigned long long)slen, c.left);
        if (qx__crc32(0, c.p, slen) != scrc) FAIL("%s: section '%s' checksum mismatch (corrupt)", path, section_name(tag));
        sec[tag] = c.p;
        seclen[tag] = slen;
        take(&c, NULL, slen);
    }
    if (c.left != 0) FAIL("%s: %zu trailing bytes after the last section", path, c.left);
    if (!sec[SEC_OPTS] || !sec[SEC_CENTROIDS] || !sec[SEC_NORMS] || !sec[SEC_QUANT] || !sec[SEC_LISTS])
        FAIL("%s: a required section is missing", path);
    if (seclen[SEC_OPTS] != 16) FAIL("%s: options section has %llu bytes, expected 16", path, (unsigned long long)seclen[SEC_OPTS]);
    if (seclen[SEC_CENTROIDS] != (uint64_t)nlist * d * 4) FAIL("%s: centroid section size does not match nlist*d", path);
    if (seclen[SEC_NORMS] != sizeof(float) * QX__NORM_LEVELS) FAIL("%s: norm section size is wrong", path);

    qx_quantizer *q = NULL;
    if ((rc = qx_quantizer_deserialize(sec[SEC_QUANT], seclen[SEC_QUANT], &q))) {
        rc = qx__wrap(QX_EFORMAT, "%s: quantizer section", path);
        goto out;
    }
    size_t qd = qx_quantizer_dim(q), qm = qx_quantizer_steps(q);
    uint32_t qk = (uint32_t)qx_quantizer_kind(q);
    if (qd != d || qm != M || qk != kind) {
        qx_quantizer_free(q); /* the message uses the copies: q is gone */
        FAIL("%s: quantizer (d=%zu M=%zu kind=%u) does not match the header (d=%u M=%u kind=%u)", path, qd, qm,
             qk, d, M, kind);
    }
    qx_ivf_opts o;
    qx_ivf_opts_init(&o);
    o.nlist = nlist;
    o.metric = (qx_metric)metric;
    uint32_t iters;
    memcpy(&iters, sec[SEC_OPTS], 4);
    memcpy(&o.seed, sec[SEC_OPTS] + 8, 8);
    o.kmeans_iters = (int)iters;
    if ((rc = qx_ivf_new(&ivf, d, q, &o))) goto out;
    ivf->centroids = qx__aligned_alloc(sizeof(float) * nlist * d);
    ivf->centroid_norms = qx__malloc(sizeof(float) * nlist);
    ivf->lists = qx__calloc(nlist, sizeof(qx__ivf_list));
    if (!ivf->centroids || !ivf->centroid_norms || !ivf->lists) {
        rc = qx__fail(QX_ENOMEM, "%s: %llu lists", path, (unsigned long long)nlist);
        goto out;
    }
    memcpy(ivf->centroids, sec[SEC_CENTROIDS], sizeof(float) * nlist * d);
    memcpy(ivf->norm_levels, sec[SEC_NORMS], sizeof ivf->norm_levels);
    if (qx__first_nonfinite(ivf->centroids, nlist * d) >= 0 || qx__first_nonfinite(ivf->norm_levels, QX__NORM_LEVELS) >= 0)
        FAIL("%s: centroids or norm levels hold NaN/Inf", path);
    for (size_t l = 0; l < nlist; l++) {
        double s = 0;
        for (size_t j = 0; j < d; j++) s += (double)ivf->centroids[l * d + j] * ivf->centroids[l * d + j];
        ivf->centroid_norms[l] = (float)s;
    }
    if ((rc = qx__idmap_reserve(&ivf->ids, ntotal > (1u << 30) ? 0 : ntotal))) goto out;
    if ((rc = qx__coarse2_build(ivf))) goto out;
    ivf->trained = 1;
    cur_t lc = {sec[SEC_LISTS], seclen[SEC_LISTS]};
    for (size_t l = 0; l < nlist; l++) {
        uint64_t size;
        if (take(&lc, &size, 8)) FAIL("%s: lists section truncated at list %zu", path, l);
        size_t need;
        if (size > UINT32_MAX || !qx__mul(size, cs + 8, &need) || need > lc.left)
            FAIL("%s: list %zu claims %llu entries, section too short", path, l, (unsigned long long)size);
        qx__ivf_list *L = &ivf->lists[l];
        if (size && ivf->fs_pairs) { /* fast-scan kind: repack into scan blocks */
            const uint8_t *codes = lc.p;
            take(&lc, NULL, size * cs);
            const int64_t *lids = (const int64_t *)(const void *)lc.p;
            for (size_t i = 0; i < size; i++) {
                int64_t id;
                memcpy(&id, lids + i, 8);
                if ((rc = qx__ivf_fs_push(ivf, L, codes + i * cs, id))) goto out;
            }
            take(&lc, NULL, size * 8);
        } else if (size) {
            L->codes = qx__aligned_alloc(size * cs);
            L->ids = qx__malloc(size * 8);
            if (!L->codes || !L->ids) { rc = qx__fail(QX_ENOMEM, "%s: list %zu", path, l); goto out; }
            L->cap = L->size = size;
            take(&lc, L->codes, size * cs);
            take(&lc, L->ids, size * 8);
        }
        for (size_t i = 0; i < size; i++) {
            uint64_t prev;
            if (qx__idmap_get(&ivf->ids, L->ids[i], &prev))
                FAIL("%s: id %lld appears twice", path, (long long)L->ids[i]);
            if ((rc = qx__idmap_put(&ivf->ids, L->ids[i], qx__loc((uint32_t)l, (uint32_t)i)))) goto out;
        }
        ivf->ntotal += size;
    }
    if (sec[SEC_RESERVOIR] &&
        (rc = qx_derp_reservoir_deserialize(sec[SEC_RESERVOIR], seclen[SEC_RESERVOIR], &ivf->reservoir))) {
        rc = qx__wrap(QX_EFORMAT, "%s: reservoir section", path);
        goto out;
    }
    if (ivf->reservoir && qx_derp_reservoir_dim(ivf->reservoir) != d)
        FAIL("%s: reservoir dimension does not match the index", path);
    if (lc.left) FAIL("%s: lists section has %zu extra bytes", path, lc.left);
    if (ivf->ntotal != ntotal) FAIL("%s: lists hold %zu vectors, header says %llu", path, ivf->ntotal, (unsigned long long)ntotal);
#undef FAIL
out:
    qx__free(file);
    if (rc) {
        qx_ivf_free(ivf);
        return rc;
    }
    *out = ivf;
    return 0;
}
