/* quant/fastscan.c — the fast-scan quantizer object (qinx/fastscan.h):
 * options, vtable, decoding, byte-level additive codebooks, blob.
 * Training and encoding live in fastscan_train.c.
 *
 * Decisions:
 * 1. A code byte of the 4-bit part packs two steps, and the IVF fast-scan
 *    layout keeps exactly these bytes (transposed into 32-vector blocks), so
 *    the row-major code and the scanned code are the same bits.
 * 2. The byte-level additive codebooks (256 sums a_{2j}[lo] + a_{2j+1}[hi]
 *    per 4-bit byte, then the RQ codebooks) make this kind a plain additive
 *    quantizer for every generic caller: LUT search, decoding, DERP. They
 *    are derived (rebuilt after training and load), never stored.
 * 3. Blob body: u32 version, u32 M4, u32 M8, i32 beam4, beam, train_beam,
 *    kmeans_iters, threads, u64 seed, [version 2: u32 product4], M4*16*d
 *    f32 codebooks, u64 length of the RQ blob, the RQ blob
 *    (qx_quantizer_serialize, with its own header and checks). The loader
 *    checks every length, range and value. The residual shape is still
 *    written as version 1 (its files are byte-identical to older builds'
 *    and older builds read them); only the product shape needs version 2.
 * 4. A product-shaped 4-bit codebook is stored like a residual one (M4 × 16
 *    rows of d floats), zero outside its step's dimensions, so decoding,
 *    the byte-level table and DERP need no second path; the search reads
 *    rows4 (decision 1 of index/ivf_fastscan_search.c).
 */
#include <cblas.h>
#include <string.h>

#include "fastscan_impl.h"
#include "qinx/rq.h"

#define QX__FS_BODY_VERSION 2u
#define QX__FS_FIXED (4 * 3 + 4 * 5 + 8)

void qx_fs_opts_init(qx_fs_opts *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->M4 = 16;
    o->M8 = 7;
    o->beam4 = 4;
    o->beam = 5;
    o->train_beam = 0;
    o->kmeans_iters = 20;
    o->seed = 1234;
    o->product4 = 0;
}

static int check_opts(const qx_fs_opts *o, int code) {
    if (o->M4 < 2 || o->M4 > QX_FS_MAX_STEPS4 || o->M4 % 2)
        return qx__fail(code, "fastscan: M4=%zu 4-bit steps, must be even and 2..%d", o->M4,
                        QX_FS_MAX_STEPS4);
    if (o->M8 > QX_MAX_STEPS || o->M4 / 2 + o->M8 > QX_MAX_STEPS)
        return qx__fail(code, "fastscan: M4/2 + M8 = %zu code bytes, at most %d", o->M4 / 2 + o->M8,
                        QX_MAX_STEPS);
    if (o->beam4 < 1 || o->beam4 > 64) return qx__fail(code, "fastscan: beam4=%d, must be 1..64", o->beam4);
    if (o->beam < 1 || o->beam > 64) return qx__fail(code, "fastscan: beam=%d, must be 1..64", o->beam);
    if (o->train_beam < 0 || o->train_beam > 64)
        return qx__fail(code, "fastscan: train_beam=%d, must be 0..64", o->train_beam);
    if (o->kmeans_iters < 1 || o->kmeans_iters > 10000)
        return qx__fail(code, "fastscan: kmeans_iters=%d, must be 1..10000", o->kmeans_iters);
    if (o->threads < 0 || o->threads > 1024)
        return qx__fail(code, "fastscan: threads=%d, must be 0..1024", o->threads);
    if (o->product4 != 0 && o->product4 != 1)
        return qx__fail(code, "fastscan: product4=%d, must be 0 or 1", o->product4);
    return 0;
}

int qx__fs_threads(const qx__fs *fs) {
    return fs->opts.threads > 0 ? fs->opts.threads : qx__num_threads();
}

static void fs_destroy(qx_quantizer *q) {
    qx__fs *fs = (qx__fs *)q;
    qx__aligned_free(fs->cb4);
    qx__aligned_free(fs->norms4);
    qx__aligned_free(fs->additive);
    qx__aligned_free(fs->rows4);
    qx__aligned_free(fs->pack4);
    qx_quantizer_free(fs->rq);
    qx__free(fs);
}

int qx__fs_tables(qx__fs *fs) {
    size_t d = fs->base.d, H = fs->M4 / 2;
    for (size_t i = 0; i < fs->M4 * QX__FS_K4; i++) fs->norms4[i] = qx_dot(fs->cb4 + i * d, fs->cb4 + i * d, d);
    for (size_t j = 0; j < H; j++)
        for (size_t v = 0; v < 256; v++) {
            float *o = fs->additive + (j * 256 + v) * d;
            const float *lo = fs->cb4 + ((2 * j) * QX__FS_K4 + (v & 15)) * d;
            const float *hi = fs->cb4 + ((2 * j + 1) * QX__FS_K4 + (v >> 4)) * d;
            for (size_t t = 0; t < d; t++) o[t] = lo[t] + hi[t];
        }
    if (fs->M8) {
        const float *cb8 = qx_rq_codebooks(fs->rq);
        if (!cb8) return qx__fail(QX_EINTERNAL, "fastscan: 8-bit part has no codebooks");
        memcpy(fs->additive + H * 256 * d, cb8, sizeof(float) * fs->M8 * 256 * d);
    }
    if (fs->pack4) memset(fs->pack4 + d * QX__FS_K4, 0, sizeof(float) * 16);
    if (fs->rows4)
        for (size_t m = 0; m < fs->M4; m++) {
            size_t lo, hi;
            qx_fs_subspace(d, fs->M4, m, &lo, &hi);
            for (size_t t = lo; t < hi; t++)
                for (size_t k = 0; k < QX__FS_K4; k++) {
                    fs->rows4[t * QX__FS_K4 + k] = fs->cb4[(m * QX__FS_K4 + k) * d + t];
                    fs->pack4[QX__FS_K4 * lo + k * (hi - lo) + (t - lo)] = fs->cb4[(m * QX__FS_K4 + k) * d + t];
                }
        }
    return 0;
}

static int fs_decode(const qx_quantizer *q, const uint8_t *codes, size_t n, size_t m, float *out) {
    const qx__fs *fs = (const qx__fs *)q;
    size_t d = q->d, M = q->M;
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * d;
        const uint8_t *c = codes + i * M;
        memset(o, 0, sizeof(float) * d);
        for (size_t s = 0; s < m; s++) {
            const float *a = fs->additive + (s * 256 + c[s]) * d;
            for (size_t t = 0; t < d; t++) o[t] += a[t];
        }
    }
    return 0;
}

static int fs_lut(const qx_quantizer *q, const float *queries, size_t nq, float *lut) {
    const qx__fs *fs = (const qx__fs *)q;
    size_t K = q->M * 256, d = q->d;
    if (nq > (size_t)INT32_MAX / 2 || d > (size_t)INT32_MAX)
        return qx__fail(QX_ELIMIT, "fastscan lut: nq=%zu too large for one BLAS call", nq);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)K, (int)d, 1.0f, queries,
                (int)d, fs->additive, (int)d, 0.0f, lut, (int)K);
    return 0;
}

static const float *fs_additive(const qx_quantizer *q) { return ((const qx__fs *)q)->additive; }

/* A product-shaped codebook is zero outside its step's dimensions (decision 4):
 * the search concatenates sub-vectors, so any other value would make it
 * disagree with decoding. Index of the first offending float, or -1. */
static long product_stray(const float *cb4, size_t M4, size_t d) {
    for (size_t m = 0; m < M4; m++) {
        size_t lo, hi;
        qx_fs_subspace(d, M4, m, &lo, &hi);
        for (size_t k = 0; k < QX__FS_K4; k++) {
            const float *a = cb4 + (m * QX__FS_K4 + k) * d;
            for (size_t t = 0; t < d; t++)
                if ((t < lo || t >= hi) && a[t] != 0) return (long)((m * QX__FS_K4 + k) * d + t);
        }
    }
    return -1;
}

static void put32(uint8_t **p, uint32_t v) { memcpy(*p, &v, 4); *p += 4; }
static uint32_t get32(const uint8_t **p) { uint32_t v; memcpy(&v, *p, 4); *p += 4; return v; }

static int fs_serialize(const qx_quantizer *q, uint8_t **buf, size_t *len) {
    const qx__fs *fs = (const qx__fs *)q;
    uint8_t *rqb = NULL;
    size_t rql = 0, cb = sizeof(float) * fs->M4 * QX__FS_K4 * q->d;
    int rc = fs->rq ? qx_quantizer_serialize(fs->rq, &rqb, &rql) : 0;
    if (rc) return rc;
    uint32_t version = fs->opts.product4 ? 2u : 1u; /* decision 3 */
    size_t total = QX__FS_FIXED + (version >= 2 ? 4 : 0) + cb + 8 + rql;
    uint8_t *b = qx__malloc(total), *p = b;
    if (!b) {
        qx__free(rqb);
        return qx__fail(QX_ENOMEM, "fastscan serialize: %zu bytes", total);
    }
    const qx_fs_opts *o = &fs->opts;
    put32(&p, version);
    put32(&p, (uint32_t)fs->M4);
    put32(&p, (uint32_t)fs->M8);
    put32(&p, (uint32_t)o->beam4);
    put32(&p, (uint32_t)o->beam);
    put32(&p, (uint32_t)o->train_beam);
    put32(&p, (uint32_t)o->kmeans_iters);
    put32(&p, (uint32_t)o->threads);
    memcpy(p, &o->seed, 8);
    p += 8;
    if (version >= 2) put32(&p, (uint32_t)o->product4);
    memcpy(p, fs->cb4, cb);
    p += cb;
    uint64_t l64 = rql;
    memcpy(p, &l64, 8);
    p += 8;
    if (rql) memcpy(p, rqb, rql);
    qx__free(rqb);
    *buf = b;
    *len = total;
    return 0;
}

static const qx__quantizer_ops fs_ops = {
    .train = qx__fs_train,
    .encode = qx__fs_encode,
    .decode = fs_decode,
    .lut = fs_lut,
    .additive_codebooks = fs_additive,
    .serialize = fs_serialize,
    .destroy = fs_destroy,
};

static int fs_alloc(qx__fs **out, size_t d, const qx_fs_opts *o) {
    size_t M = o->M4 / 2 + o->M8, add;
    if (!qx__mul3(M * 256, d, sizeof(float), &add)) return qx__fail(QX_ENOMEM, "fastscan: d=%zu overflows", d);
    qx__fs *fs = qx__calloc(1, sizeof *fs);
    if (!fs) return qx__fail(QX_ENOMEM, "fastscan: object");
    fs->base.ops = &fs_ops;
    fs->base.kind = QX_QUANT_FASTSCAN;
    fs->base.d = d;
    fs->base.M = M;
    fs->opts = *o;
    fs->M4 = o->M4;
    fs->M8 = o->M8;
    fs->cb4 = qx__aligned_alloc(sizeof(float) * o->M4 * QX__FS_K4 * d);
    fs->norms4 = qx__aligned_alloc(sizeof(float) * o->M4 * QX__FS_K4);
    fs->additive = qx__aligned_alloc(add);
    if (o->product4) {
        fs->rows4 = qx__aligned_alloc(sizeof(float) * d * QX__FS_K4);
        fs->pack4 = qx__aligned_alloc(sizeof(float) * (d * QX__FS_K4 + 16)); /* padded: kernels_fs.h */
    }
    if (!fs->cb4 || !fs->norms4 || !fs->additive || (o->product4 && (!fs->rows4 || !fs->pack4))) {
        fs_destroy(&fs->base);
        return qx__fail(QX_ENOMEM, "fastscan: codebooks for d=%zu M=%zu", d, M);
    }
    memset(fs->cb4, 0, sizeof(float) * o->M4 * QX__FS_K4 * d);
    *out = fs;
    return 0;
}

static int new_rq(qx__fs *fs) {
    if (!fs->M8) return 0;
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = fs->M8;
    ro.beam = fs->opts.beam;
    ro.train_beam = fs->opts.train_beam ? fs->opts.train_beam : fs->opts.beam;
    ro.seed = fs->opts.seed + 1;
    ro.threads = fs->opts.threads;
    return qx_rq_new(&fs->rq, fs->base.d, &ro);
}

int qx_fs_new(qx_quantizer **out, size_t d, const qx_fs_opts *opts) {
    if (!out) return qx__fail(QX_EINVAL, "fs_new: NULL out");
    *out = NULL;
    if (d < 1 || d > QX_MAX_DIM) return qx__fail(QX_EDIM, "fs_new: d=%zu, must be 1..%d", d, QX_MAX_DIM);
    qx_fs_opts o;
    if (opts) o = *opts;
    else qx_fs_opts_init(&o);
    int rc = check_opts(&o, QX_EINVAL);
    if (rc) return rc;
    if (o.product4 && o.M4 > d)
        return qx__fail(QX_EINVAL, "fastscan: product shape needs M4=%zu <= d=%zu", o.M4, d);
    qx__fs *fs;
    if ((rc = fs_alloc(&fs, d, &o))) return rc;
    if ((rc = new_rq(fs))) {
        fs_destroy(&fs->base);
        return rc;
    }
    *out = &fs->base;
    return 0;
}

int qx__fs_deserialize(const uint8_t *buf, size_t len, size_t d, size_t M, qx_quantizer **out) {
    if (len < QX__FS_FIXED) return qx__fail(QX_EFORMAT, "fastscan blob: body of %zu bytes is too short", len);
    const uint8_t *p = buf;
    uint32_t version = get32(&p);
    if (version < 1 || version > QX__FS_BODY_VERSION)
        return qx__fail(QX_EFORMAT, "fastscan blob: body version %u, this build reads 1..%u", version,
                        QX__FS_BODY_VERSION);
    size_t fixed = QX__FS_FIXED + (version >= 2 ? 4 : 0);
    if (len < fixed) return qx__fail(QX_EFORMAT, "fastscan blob: body of %zu bytes is too short", len);
    qx_fs_opts o;
    qx_fs_opts_init(&o);
    o.M4 = get32(&p);
    o.M8 = get32(&p);
    o.beam4 = (int32_t)get32(&p);
    o.beam = (int32_t)get32(&p);
    o.train_beam = (int32_t)get32(&p);
    o.kmeans_iters = (int32_t)get32(&p);
    o.threads = (int32_t)get32(&p);
    memcpy(&o.seed, p, 8);
    p += 8;
    if (version >= 2) o.product4 = (int32_t)get32(&p);
    int rc = check_opts(&o, QX_EFORMAT);
    if (rc) return qx__wrap(rc, "fastscan blob");
    if (o.M4 / 2 + o.M8 != M)
        return qx__fail(QX_EFORMAT, "fastscan blob: M4=%zu M8=%zu do not make M=%zu bytes", o.M4, o.M8, M);
    if (o.product4 && o.M4 > d)
        return qx__fail(QX_EFORMAT, "fastscan blob: product shape with M4=%zu > d=%zu", o.M4, d);
    size_t cb = sizeof(float) * o.M4 * QX__FS_K4 * d;
    if (len - fixed < cb + 8) return qx__fail(QX_EFORMAT, "fastscan blob: truncated codebooks");
    uint64_t rql;
    memcpy(&rql, p + cb, 8);
    if (rql != len - fixed - cb - 8 || (rql == 0) != (o.M8 == 0))
        return qx__fail(QX_EFORMAT, "fastscan blob: 8-bit part of %llu bytes does not fit the body",
                        (unsigned long long)rql);
    qx__fs *fs;
    if ((rc = fs_alloc(&fs, d, &o))) return rc;
    memcpy(fs->cb4, p, cb);
    if (qx__first_nonfinite(fs->cb4, o.M4 * QX__FS_K4 * d) >= 0) {
        fs_destroy(&fs->base);
        return qx__fail(QX_EFORMAT, "fastscan blob: a 4-bit codeword is not finite");
    }
    if (o.product4 && product_stray(fs->cb4, o.M4, d) >= 0) {
        fs_destroy(&fs->base);
        return qx__fail(QX_EFORMAT, "fastscan blob: a product-shaped 4-bit codeword is not zero "
                                    "outside its dimensions");
    }
    if (rql) {
        rc = qx_quantizer_deserialize(p + cb + 8, (size_t)rql, &fs->rq);
        if (rc == 0 && (qx_quantizer_kind(fs->rq) != QX_QUANT_RQ || qx_quantizer_dim(fs->rq) != d ||
                        qx_quantizer_steps(fs->rq) != o.M8))
            rc = qx__fail(QX_EFORMAT, "fastscan blob: the 8-bit part is not an RQ of %zu steps", o.M8);
        if (rc) {
            fs_destroy(&fs->base);
            return qx__wrap(QX_EFORMAT, "fastscan blob: 8-bit part");
        }
    }
    if ((rc = qx__fs_tables(fs))) {
        fs_destroy(&fs->base);
        return rc;
    }
    *out = &fs->base;
    return 0;
}

static const qx__fs *as_fs(const qx_quantizer *q) {
    return q && q->kind == QX_QUANT_FASTSCAN ? (const qx__fs *)q : NULL;
}
size_t qx_fs_steps4(const qx_quantizer *q) { return as_fs(q) ? as_fs(q)->M4 : 0; }
size_t qx_fs_steps8(const qx_quantizer *q) { return as_fs(q) ? as_fs(q)->M8 : 0; }
const float *qx_fs_product_rows(const qx_quantizer *q) { return as_fs(q) ? as_fs(q)->rows4 : NULL; }
const float *qx_fs_product_codewords(const qx_quantizer *q) { return as_fs(q) ? as_fs(q)->pack4 : NULL; }
const float *qx_fs_codebooks4(const qx_quantizer *q) { return as_fs(q) ? as_fs(q)->cb4 : NULL; }
const float *qx_fs_codebooks8(const qx_quantizer *q) {
    return as_fs(q) && as_fs(q)->rq ? qx_rq_codebooks(as_fs(q)->rq) : NULL;
}

int qx_fs_set_codebooks(qx_quantizer *q, const float *cb4, const float *cb8) {
    if (!as_fs(q)) return qx__fail(QX_EINVAL, "fs_set_codebooks: not a fast-scan quantizer");
    qx__fs *fs = (qx__fs *)q;
    size_t d = q->d, n4 = fs->M4 * QX__FS_K4 * d;
    if (!cb4 || (fs->M8 && !cb8)) return qx__fail(QX_EINVAL, "fs_set_codebooks: NULL codebooks");
    long bad = qx__first_nonfinite(cb4, n4);
    if (bad >= 0) return qx__fail(QX_EINVAL, "fs_set_codebooks: 4-bit value %ld is not finite", bad);
    if (fs->opts.product4 && (bad = product_stray(cb4, fs->M4, d)) >= 0)
        return qx__fail(QX_EINVAL, "fs_set_codebooks: product shape, value %ld is outside its step's dimensions",
                        bad);
    int rc = fs->M8 ? qx_rq_set_codebooks(fs->rq, cb8) : 0;
    if (rc) return rc;
    memcpy(fs->cb4, cb4, sizeof(float) * n4);
    if ((rc = qx__fs_tables(fs))) return rc;
    q->trained = 1;
    return 0;
}
