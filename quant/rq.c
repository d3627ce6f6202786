/* quant/rq.c — the residual quantizer object (qinx/rq.h): options and their
 * validation, the vtable, decoding, look-up tables, serialization.
 * Training lives in rq_train.c, the look-up-table beam search in
 * rq_encode.c.
 *
 * Decisions:
 * 1. The codebooks are the whole model; codeword norms and the cross inner
 *    products between steps are derived tables, rebuilt after training,
 *    set_codebooks and load (never serialized, so a blob cannot carry tables
 *    inconsistent with its codebooks).
 * 2. Additive codebooks = the codebooks: an RQ reconstruction is exactly the
 *    sum of one codeword per step, so the LUT of a query is <q, c_mk> from one
 *    sgemm against all M*256 codewords.
 * 3. Blob body (little-endian): u32 body version, i32 beam, train_beam,
 *    kmeans_iters, refine_iters, reseed_dead, threads, [version 2:
 *    kmeans_pdim], u64 seed, u32
 *    has_stats, M*256*d f32 codebooks, then (if has_stats) M f64 step MSEs
 *    and M u32 used counts. The loader checks the exact length, the option
 *    ranges and that every codeword is finite.
 */
#include <cblas.h>
#include <string.h>

#include "qinx/vecfile.h"
#include "rq_impl.h"

#define QX__RQ_BODY_VERSION 2u /* 1 (no kmeans_pdim, read as 0) is still read */

void qx_rq_opts_init(qx_rq_opts *opts) {
    if (!opts) return;
    opts->M = 8;
    opts->beam = 5;
    opts->train_beam = 5;
    opts->kmeans_iters = 10; /* per progressive-dimension stage */
    opts->kmeans_pdim = 5;
    opts->refine_iters = 6; /* rounds stop at the first that does not help */
    opts->refine_min_per_codeword = QX_RQ_REFINE_MIN_DEFAULT;
    opts->reseed_dead = 1;
    opts->seed = 1234;
    opts->threads = 0;
}

static int check_opts(const qx_rq_opts *o, int code) {
    if (o->M < 1 || o->M > QX_MAX_STEPS)
        return qx__fail(code, "rq: M=%zu steps, must be 1..%d", o->M, QX_MAX_STEPS);
    if (o->beam < 1 || o->beam > QX__RQ_MAX_BEAM)
        return qx__fail(code, "rq: beam=%d, must be 1..%d", o->beam, QX__RQ_MAX_BEAM);
    if (o->train_beam < 0 || o->train_beam > QX__RQ_MAX_BEAM)
        return qx__fail(code, "rq: train_beam=%d, must be 0 (= beam) or 1..%d", o->train_beam,
                        QX__RQ_MAX_BEAM);
    if (o->kmeans_iters < 1 || o->kmeans_iters > 10000)
        return qx__fail(code, "rq: kmeans_iters=%d, must be 1..10000", o->kmeans_iters);
    if (o->kmeans_pdim < 0 || o->kmeans_pdim > 64)
        return qx__fail(code, "rq: kmeans_pdim=%d, must be 0..64", o->kmeans_pdim);
    if (o->refine_iters < 0 || o->refine_iters > 1000)
        return qx__fail(code, "rq: refine_iters=%d, must be 0..1000", o->refine_iters);
    if (o->refine_min_per_codeword < 0 || o->refine_min_per_codeword > 1000000)
        return qx__fail(code, "rq: refine_min_per_codeword=%d, must be 0..1000000",
                        o->refine_min_per_codeword);
    if (o->reseed_dead != 0 && o->reseed_dead != 1)
        return qx__fail(code, "rq: reseed_dead=%d, must be 0 or 1", o->reseed_dead);
    if (o->threads < 0 || o->threads > 1024)
        return qx__fail(code, "rq: threads=%d, must be 0 (all cores) .. 1024", o->threads);
    return 0;
}

int qx__rq_threads(const qx__rq *rq) {
    return rq->opts.threads > 0 ? rq->opts.threads : qx__num_threads();
}

static void rq_destroy(qx_quantizer *q) {
    qx__rq *rq = (qx__rq *)q;
    qx__aligned_free(rq->codebooks);
    qx__aligned_free(rq->norms);
    qx__aligned_free(rq->cross);
    pthread_mutex_destroy(&rq->cross_mu);
    qx__free(rq->step_mse);
    qx__free(rq->step_used);
    qx__free(rq);
}

void qx__rq_decode_rows(const qx__rq *rq, const uint8_t *codes, size_t n, size_t stride,
                        size_t m, float *out) {
    size_t d = rq->base.d;
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * d;
        const uint8_t *c = codes + i * stride;
        memcpy(o, rq->codebooks + (size_t)c[0] * d, d * sizeof(float));
        for (size_t s = 1; s < m; s++) {
            const float *cw = rq->codebooks + (s * QX_KSUB + c[s]) * d;
            for (size_t j = 0; j < d; j++) o[j] += cw[j];
        }
    }
}

static int rq_decode(const qx_quantizer *q, const uint8_t *codes, size_t n, size_t m,
                     float *out) {
    qx__rq_decode_rows((const qx__rq *)q, codes, n, q->M, m, out);
    return 0;
}

static int rq_encode(const qx_quantizer *q, const float *x, size_t n, uint8_t *codes) {
    const qx__rq *rq = (const qx__rq *)q;
    return qx__rq_encode_beam(rq, x, n, rq->opts.beam, codes, NULL);
}

static int rq_lut(const qx_quantizer *q, const float *queries, size_t nq, float *lut) {
    const qx__rq *rq = (const qx__rq *)q;
    size_t K = q->M * QX_KSUB, d = q->d;
    if (nq > (size_t)INT32_MAX / 2 || d > (size_t)INT32_MAX)
        return qx__fail(QX_ELIMIT, "rq lut: nq=%zu too large for one BLAS call", nq);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)K, (int)d, 1.0f, queries,
                (int)d, rq->codebooks, (int)d, 0.0f, lut, (int)K);
    return 0;
}

static const float *rq_additive(const qx_quantizer *q) { return ((const qx__rq *)q)->codebooks; }

static void put32(uint8_t **p, uint32_t v) {
    memcpy(*p, &v, 4);
    *p += 4;
}
static uint32_t get32(const uint8_t **p) {
    uint32_t v;
    memcpy(&v, *p, 4);
    *p += 4;
    return v;
}

#define QX__RQ_FIXED_BODY_V1 (4 + 6 * 4 + 8 + 4)
#define QX__RQ_FIXED_BODY (QX__RQ_FIXED_BODY_V1 + 4)

static int rq_serialize(const qx_quantizer *q, uint8_t **buf, size_t *len) {
    const qx__rq *rq = (const qx__rq *)q;
    size_t M = q->M, d = q->d, cb_bytes, total;
    int has_stats = rq->step_mse != NULL;
    if (!qx__mul3(M * QX_KSUB, d, sizeof(float), &cb_bytes) ||
        !qx__add(cb_bytes, QX__RQ_FIXED_BODY + (has_stats ? M * 12 : 0), &total))
        return qx__fail(QX_ENOMEM, "rq serialize: size overflows");
    uint8_t *b = qx__malloc(total), *p = b;
    if (!b) return qx__fail(QX_ENOMEM, "rq serialize: %zu bytes", total);
    const qx_rq_opts *o = &rq->opts;
    put32(&p, QX__RQ_BODY_VERSION);
    put32(&p, (uint32_t)o->beam);
    put32(&p, (uint32_t)o->train_beam);
    put32(&p, (uint32_t)o->kmeans_iters);
    put32(&p, (uint32_t)o->refine_iters);
    put32(&p, (uint32_t)o->reseed_dead);
    put32(&p, (uint32_t)o->threads);
    put32(&p, (uint32_t)o->kmeans_pdim);
    memcpy(p, &o->seed, 8);
    p += 8;
    put32(&p, (uint32_t)has_stats);
    memcpy(p, rq->codebooks, cb_bytes);
    p += cb_bytes;
    if (has_stats) {
        memcpy(p, rq->step_mse, M * sizeof(double));
        p += M * sizeof(double);
        memcpy(p, rq->step_used, M * sizeof(uint32_t));
        p += M * sizeof(uint32_t);
    }
    *buf = b;
    *len = (size_t)(p - b);
    return 0;
}

static const qx__quantizer_ops rq_ops = {
    .train = qx__rq_train,
    .encode = rq_encode,
    .decode = rq_decode,
    .lut = rq_lut,
    .additive_codebooks = rq_additive,
    .serialize = rq_serialize,
    .destroy = rq_destroy,
};

static int rq_alloc(qx__rq **out, size_t d, const qx_rq_opts *o) {
    size_t M = o->M, cb, cross;
    if (!qx__mul3(M * QX_KSUB, d, sizeof(float), &cb) ||
        !qx__mul(qx__rq_cross_offset(M), sizeof(float), &cross))
        return qx__fail(QX_ENOMEM, "rq: d=%zu M=%zu overflows", d, M);
    qx__rq *rq = qx__calloc(1, sizeof *rq);
    if (!rq) return qx__fail(QX_ENOMEM, "rq: object");
    pthread_mutex_init(&rq->cross_mu, NULL);
    rq->base.ops = &rq_ops;
    rq->base.kind = QX_QUANT_RQ;
    rq->base.d = d;
    rq->base.M = M;
    rq->opts = *o;
    rq->codebooks = qx__aligned_alloc(cb);
    rq->norms = qx__aligned_alloc(M * QX_KSUB * sizeof(float));
    rq->cross = qx__aligned_alloc(cross);
    if (!rq->codebooks || !rq->norms || !rq->cross) {
        rq_destroy(&rq->base);
        return qx__fail(QX_ENOMEM, "rq: codebooks and tables for d=%zu M=%zu (%zu bytes)", d,
                        M, cb + cross);
    }
    memset(rq->codebooks, 0, cb);
    *out = rq;
    return 0;
}

int qx_rq_new(qx_quantizer **out, size_t d, const qx_rq_opts *opts) {
    if (!out) return qx__fail(QX_EINVAL, "rq_new: NULL out");
    *out = NULL;
    if (d < 1 || d > QX_MAX_DIM)
        return qx__fail(QX_EDIM, "rq_new: d=%zu, must be 1..%d", d, QX_MAX_DIM);
    qx_rq_opts o;
    if (opts) o = *opts;
    else qx_rq_opts_init(&o);
    int rc = check_opts(&o, QX_EINVAL);
    if (rc) return rc;
    qx__rq *rq;
    if ((rc = rq_alloc(&rq, d, &o))) return rc;
    *out = &rq->base;
    return 0;
}

int qx__rq_deserialize(const uint8_t *buf, size_t len, size_t d, size_t M, qx_quantizer **out) {
    if (len < QX__RQ_FIXED_BODY_V1)
        return qx__fail(QX_EFORMAT, "rq blob: body of %zu bytes is too short", len);
    const uint8_t *p = buf;
    uint32_t version = get32(&p);
    if (version != 1 && version != QX__RQ_BODY_VERSION)
        return qx__fail(QX_EFORMAT, "rq blob: body version %u, this build reads 1..%u", version,
                        QX__RQ_BODY_VERSION);
    size_t fixed = version == 1 ? QX__RQ_FIXED_BODY_V1 : QX__RQ_FIXED_BODY;
    if (len < fixed)
        return qx__fail(QX_EFORMAT, "rq blob: body of %zu bytes is too short", len);
    qx_rq_opts o;
    qx_rq_opts_init(&o); /* the training-only refine_min_per_codeword keeps its default */
    o.M = M;
    o.beam = (int32_t)get32(&p);
    o.train_beam = (int32_t)get32(&p);
    o.kmeans_iters = (int32_t)get32(&p);
    o.refine_iters = (int32_t)get32(&p);
    o.reseed_dead = (int32_t)get32(&p);
    o.threads = (int32_t)get32(&p);
    o.kmeans_pdim = version == 1 ? 0 : (int32_t)get32(&p);
    memcpy(&o.seed, p, 8);
    p += 8;
    uint32_t has_stats = get32(&p);
    int rc = check_opts(&o, QX_EFORMAT);
    if (rc) return qx__wrap(rc, "rq blob");
    if (has_stats > 1) return qx__fail(QX_EFORMAT, "rq blob: has_stats=%u", has_stats);
    size_t cb_bytes, want;
    if (!qx__mul3(M * QX_KSUB, d, sizeof(float), &cb_bytes) ||
        !qx__add(cb_bytes, fixed + (has_stats ? M * 12 : 0), &want))
        return qx__fail(QX_EFORMAT, "rq blob: d=%zu M=%zu overflows", d, M);
    if (len != want)
        return qx__fail(QX_EFORMAT, "rq blob: body is %zu bytes, d=%zu M=%zu needs %zu", len, d,
                        M, want);
    qx__rq *rq;
    if ((rc = rq_alloc(&rq, d, &o))) return rc;
    memcpy(rq->codebooks, p, cb_bytes);
    p += cb_bytes;
    long bad = qx__first_nonfinite(rq->codebooks, M * QX_KSUB * d);
    if (bad >= 0) {
        rq_destroy(&rq->base);
        return qx__fail(QX_EFORMAT, "rq blob: codeword %ld of step %ld is not finite",
                        (bad / (long)d) % QX_KSUB, bad / (long)d / QX_KSUB);
    }
    if (has_stats) {
        rq->step_mse = qx__malloc(M * sizeof(double));
        rq->step_used = qx__malloc(M * sizeof(uint32_t));
        if (!rq->step_mse || !rq->step_used) {
            rq_destroy(&rq->base);
            return qx__fail(QX_ENOMEM, "rq blob: stats");
        }
        memcpy(rq->step_mse, p, M * sizeof(double));
        memcpy(rq->step_used, p + M * sizeof(double), M * sizeof(uint32_t));
    }
    qx__rq_norms(rq); /* cross at the first encode (rq_impl.h) */
    *out = &rq->base;
    return 0;
}

static const qx__rq *as_rq(const qx_quantizer *q) {
    return q && q->kind == QX_QUANT_RQ ? (const qx__rq *)q : NULL;
}

const double *qx_rq_step_mse(const qx_quantizer *q) {
    const qx__rq *rq = as_rq(q);
    return rq ? rq->step_mse : NULL;
}

int qx_rq_refine_rounds(const qx_quantizer *q, int *rounds, int *skipped) {
    const qx__rq *rq = as_rq(q);
    if (!rq) return qx__fail(QX_EINVAL, "rq_refine_rounds: not an RQ");
    if (rounds) *rounds = rq->refine_rounds > 0 ? rq->refine_rounds : 0;
    if (skipped) *skipped = rq->refine_rounds < 0; /* -1 internally: skipped */
    return 0;
}

const uint32_t *qx_rq_step_used(const qx_quantizer *q) {
    const qx__rq *rq = as_rq(q);
    return rq ? rq->step_used : NULL;
}

const float *qx_rq_codebooks(const qx_quantizer *q) {
    const qx__rq *rq = as_rq(q);
    return rq ? rq->codebooks : NULL;
}

int qx_rq_set_codebooks(qx_quantizer *q, const float *codebooks) {
    if (!q || !codebooks) return qx__fail(QX_EINVAL, "rq_set_codebooks: NULL argument");
    if (q->kind != QX_QUANT_RQ)
        return qx__fail(QX_EINVAL, "rq_set_codebooks: quantizer is a %s, not an rq",
                        qx_quantizer_kind_name(q->kind));
    qx__rq *rq = (qx__rq *)q;
    size_t total = q->M * QX_KSUB * q->d;
    long bad = qx__first_nonfinite(codebooks, total);
    if (bad >= 0)
        return qx__fail(QX_EINVAL, "rq_set_codebooks: value %ld is not finite", bad);
    memcpy(rq->codebooks, codebooks, total * sizeof(float));
    int rc = qx__rq_tables(rq);
    if (rc) return rc;
    /* statistics described the old codebooks */
    qx__free(rq->step_mse);
    qx__free(rq->step_used);
    rq->step_mse = NULL;
    rq->step_used = NULL;
    q->trained = 1;
    return 0;
}
