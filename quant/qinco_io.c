/* quant/qinco_io.c — the QINCo-style quantizer's blob body (after the common
 * header of quantizer.c: magic, version, kind, d, M).
 *
 * Body, little-endian:
 *   "QNCO", u32 body version, options (u32 L, h, A, beam, train_beam, epochs,
 *   batch, rq_beam, verbose, threads; f32 lr, valid_fraction; f64
 *   train_minutes; u64 seed), i32 scale exponent, u64 parameter count,
 *   u32 epochs recorded, u32 best epoch, u64 n_train, u64 n_valid,
 *   i32 step exponents[M], f32 params[count], f32 additive[M*256*d], f64 valid_mse[epochs + 1],
 *   [version 2:] u32 flags (1 = checked, 2 = fell back, 4 = uses contexts), u64 check queries, u64 check base,
 *   f64 MSE RQ, MSE QINCo, recall@1 RQ, recall@1 QINCo, sgemm GFLOP/s, training GFLOP/s,
 *   cores used, u64 length of the fallback RQ's blob (0 = none), that blob,
 *   u32 CRC-32 of everything before it in the body.
 * Version 1 files (before the fallback check) still load: no check, no RQ.
 * Decisions: every field is range-checked against the same limits as
 * qx_qinco_new, the parameter count must equal the one implied by d, M, L, h,
 * the length must match exactly, every float must be finite, and the CRC
 * catches flipped bits in the weights that range checks cannot see. Training
 * statistics travel with the model so `qinx info` can show them.
 */
#include <math.h>
#include <string.h>

#include "qinco_impl.h"

#define QX__QINCO_MAGIC "QNCO"
#define QX__QINCO_VERSION 2u
#define QX__QINCO_V2_EXTRA (4 + 8 + 8 + 7 * 8 + 8)
#define QX__QINCO_FIXED (4 + 4 + 10 * 4 + 2 * 4 + 8 + 8 + 4 + 8 + 4 + 4 + 8 + 8)

typedef struct wr {
    uint8_t *p;
} wr;

static void w_bytes(wr *w, const void *src, size_t n) {
    memcpy(w->p, src, n);
    w->p += n;
}
static void w_u32(wr *w, uint32_t v) { w_bytes(w, &v, 4); }
static void w_u64(wr *w, uint64_t v) { w_bytes(w, &v, 8); }
static void w_f32(wr *w, float v) { w_bytes(w, &v, 4); }
static void w_f64(wr *w, double v) { w_bytes(w, &v, 8); }

typedef struct rd {
    const uint8_t *p;
} rd;

static void r_bytes(rd *r, void *dst, size_t n) {
    memcpy(dst, r->p, n);
    r->p += n;
}
static uint32_t r_u32(rd *r) {
    uint32_t v;
    r_bytes(r, &v, 4);
    return v;
}
static uint64_t r_u64(rd *r) {
    uint64_t v;
    r_bytes(r, &v, 8);
    return v;
}
static float r_f32(rd *r) {
    float v;
    r_bytes(r, &v, 4);
    return v;
}
static double r_f64(rd *r) {
    double v;
    r_bytes(r, &v, 8);
    return v;
}

int qx__qinco_serialize(const qx_quantizer *base, uint8_t **buf, size_t *len) {
    const qx__qinco *q = (const qx__qinco *)base;
    const qx_qinco_opts *o = &q->opts;
    size_t na = q->M * QX__QK * q->d, total;
    /* the curve has epochs + 1 points; none without epochs (as the reader
     * expects: version 1 wrote one stray point after a 0-epoch run) */
    size_t ne = q->st_valid && q->st_epochs ? q->st_epochs + 1 : 0;
    uint8_t *rqb = NULL;
    size_t rql = 0;
    if (q->rq_fb) {
        int rc = qx_quantizer_serialize(q->rq_fb, &rqb, &rql);
        if (rc) return rc;
    }
    if (!qx__add(QX__QINCO_FIXED + 4 + 4 * q->M + QX__QINCO_V2_EXTRA + rql,
                 (q->nparams + na) * sizeof(float) + ne * sizeof(double),
                 &total)) {
        qx_free(rqb);
        return qx__fail(QX_ENOMEM, "qinco: blob size overflows");
    }
    uint8_t *b = qx__malloc(total);
    if (!b) {
        qx_free(rqb);
        return qx__fail(QX_ENOMEM, "qinco: blob of %zu bytes", total);
    }
    wr w = {b};
    w_bytes(&w, QX__QINCO_MAGIC, 4);
    w_u32(&w, QX__QINCO_VERSION);
    w_u32(&w, (uint32_t)o->L);
    w_u32(&w, (uint32_t)o->h);
    w_u32(&w, (uint32_t)o->A);
    w_u32(&w, (uint32_t)o->beam);
    w_u32(&w, (uint32_t)o->train_beam);
    w_u32(&w, (uint32_t)o->epochs);
    w_u32(&w, (uint32_t)o->batch);
    w_u32(&w, (uint32_t)o->rq_beam);
    w_u32(&w, (uint32_t)o->verbose);
    w_u32(&w, (uint32_t)o->threads);
    w_f32(&w, o->lr);
    w_f32(&w, o->valid_fraction);
    w_f64(&w, o->train_minutes);
    w_u64(&w, o->seed);
    w_u32(&w, (uint32_t)q->scale_exp);
    w_u64(&w, q->nparams);
    w_u32(&w, (uint32_t)(ne ? q->st_epochs : 0));
    w_u32(&w, (uint32_t)q->st_best);
    w_u64(&w, q->st_ntrain);
    w_u64(&w, q->st_nvalid);
    for (size_t m = 0; m < q->M; m++) w_u32(&w, (uint32_t)q->step_exp[m]);
    w_bytes(&w, q->params, q->nparams * sizeof(float));
    w_bytes(&w, q->additive, na * sizeof(float));
    if (ne) w_bytes(&w, q->st_valid, ne * sizeof(double));
    const qx__qinco_check *ck = &q->ck;
    w_u32(&w, (uint32_t)(ck->checked ? 1 : 0) | (uint32_t)(q->rq_fb ? 2 : 0) | (uint32_t)(q->ctx ? 4 : 0));
    w_u64(&w, ck->nq);
    w_u64(&w, ck->nbase);
    w_f64(&w, ck->mse_rq);
    w_f64(&w, ck->mse_qinco);
    w_f64(&w, ck->recall_rq);
    w_f64(&w, ck->recall_qinco);
    w_f64(&w, ck->sgemm_gflops);
    w_f64(&w, ck->train_gflops);
    w_f64(&w, ck->cores_used);
    w_u64(&w, rql);
    if (rql) w_bytes(&w, rqb, rql);
    qx_free(rqb);
    w_u32(&w, qx__crc32(0, b, (size_t)(w.p - b)));
    *buf = b;
    *len = total;
    return 0;
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* Version 2's check figures and fallback RQ, up to end (the CRC). */
static int read_v2(rd *r, const uint8_t *end, qx__qinco *q, size_t d, size_t M) {
    qx__qinco_check *ck = &q->ck;
    uint32_t flags = r_u32(r);
    ck->nq = (size_t)r_u64(r);
    ck->nbase = (size_t)r_u64(r);
    double *f[7] = {&ck->mse_rq, &ck->mse_qinco, &ck->recall_rq, &ck->recall_qinco,
                    &ck->sgemm_gflops, &ck->train_gflops, &ck->cores_used};
    for (int i = 0; i < 7; i++) {
        *f[i] = r_f64(r);
        if (!isfinite(*f[i]) || *f[i] < 0)
            return qx__fail(QX_EFORMAT, "qinco blob: check figure %d is %g", i, *f[i]);
    }
    uint64_t rql = r_u64(r);
    if (flags > 7 || ck->recall_rq > 1 || ck->recall_qinco > 1)
        return qx__fail(QX_EFORMAT, "qinco blob: bad check flags %u or recall", flags);
    if (rql != (uint64_t)(end - r->p) || (rql != 0) != ((flags & 2) != 0))
        return qx__fail(QX_EFORMAT, "qinco blob: fallback RQ of %llu bytes, %zu left, flags %u",
                        (unsigned long long)rql, (size_t)(end - r->p), flags);
    ck->checked = (flags & 1) != 0;
    ck->fallback = (flags & 2) != 0;
    q->ctx = (flags & 4) != 0;
    if (!rql) return 0;
    qx_quantizer *rq = NULL;
    int rc = qx_quantizer_deserialize(r->p, (size_t)rql, &rq);
    if (rc) return qx__wrap(QX_EFORMAT, "qinco blob: fallback RQ");
    if (qx_quantizer_kind(rq) != QX_QUANT_RQ || qx_quantizer_dim(rq) != d ||
        qx_quantizer_steps(rq) != M) {
        qx_quantizer_free(rq);
        return qx__fail(QX_EFORMAT, "qinco blob: the fallback quantizer is not an RQ of d=%zu M=%zu",
                        d, M);
    }
    r->p += rql;
    q->rq_fb = rq;
    return 0;
}

int qx__qinco_deserialize(const uint8_t *buf, size_t len, size_t d, size_t M, qx_quantizer **out) {
    *out = NULL;
    if (len < QX__QINCO_FIXED + 4 + 4 * M)
        return qx__fail(QX_EFORMAT, "qinco blob: %zu bytes, too short for its header", len);
    if (memcmp(buf, QX__QINCO_MAGIC, 4) != 0) return qx__fail(QX_EFORMAT, "qinco blob: bad magic");
    rd r = {buf + 4};
    uint32_t ver = r_u32(&r);
    if (ver < 1 || ver > QX__QINCO_VERSION)
        return qx__fail(QX_EFORMAT, "qinco blob: version %u, this build reads 1..%u", ver,
                        QX__QINCO_VERSION);
    uint32_t crc = 0;
    memcpy(&crc, buf + len - 4, 4);
    if (crc != qx__crc32(0, buf, len - 4))
        return qx__fail(QX_EFORMAT, "qinco blob: checksum mismatch (corrupt model)");
    qx_qinco_opts o;
    qx_qinco_opts_init(&o);
    o.M = M;
    uint32_t v[10];
    for (int i = 0; i < 10; i++) v[i] = r_u32(&r);
    /* Values above INT_MAX wrap negative and fail the range checks. */
    o.L = (int)v[0];
    o.h = (int)v[1];
    o.A = (int)v[2];
    o.beam = (int)v[3];
    o.train_beam = (int)v[4];
    o.epochs = (int)v[5];
    o.batch = (int)v[6];
    o.rq_beam = (int)v[7];
    o.verbose = v[8] != 0;
    o.threads = (int)v[9];
    o.lr = r_f32(&r);
    o.valid_fraction = r_f32(&r);
    o.train_minutes = r_f64(&r);
    o.seed = r_u64(&r);
    int rc = qx__qinco_check_opts(&o, d);
    if (rc) return qx__wrap(QX_EFORMAT, "qinco blob");
    int32_t se = (int32_t)r_u32(&r);
    uint64_t np = r_u64(&r);
    uint32_t ep = r_u32(&r), best = r_u32(&r);
    uint64_t ntrain = r_u64(&r), nvalid = r_u64(&r);
    if (se < -60 || se > 60) return qx__fail(QX_EFORMAT, "qinco blob: scale exponent %d", se);
    if (np != qx__qinco_param_count(d, M, (size_t)o.L, (size_t)o.h))
        return qx__fail(QX_EFORMAT,
                        "qinco blob: %llu parameters, d=%zu M=%zu L=%d h=%d needs %zu",
                        (unsigned long long)np, d, M, o.L, o.h,
                        qx__qinco_param_count(d, M, (size_t)o.L, (size_t)o.h));
    if (ep > QX_QINCO_MAX_EPOCHS || best > ep)
        return qx__fail(QX_EFORMAT, "qinco blob: %u epochs, best %u", ep, best);
    size_t na = M * QX__QK * d, ne = ep ? (size_t)ep + 1 : 0;
    size_t want = QX__QINCO_FIXED + 4 + 4 * M + (size_t)(np + na) * sizeof(float) + ne * sizeof(double);
    if (ver >= 2) want += QX__QINCO_V2_EXTRA; /* plus the fallback RQ's blob, checked below */
    /* Version-1 writers stored one stray curve point after a run of 0 epochs
     * (epochs = 0, or a budget spent before the first): such files load. */
    if (ver == 1 && ep == 0 && len == want + sizeof(double)) want += sizeof(double);
    if (ver == 1 ? len != want : len < want)
        return qx__fail(QX_EFORMAT, "qinco blob: %zu bytes, expected %s%zu for this model", len,
                        ver == 1 ? "" : "at least ", want);
    qx__qinco *q;
    if ((rc = qx__qinco_alloc(&q, d, &o)) != 0) return rc;
    q->scale_exp = se;
    q->scale = ldexpf(1.0f, se);
    q->inv_scale = ldexpf(1.0f, -se);
    q->have_base = 1;
    for (size_t m = 0; m < M; m++) {
        int32_t e = (int32_t)r_u32(&r);
        if (e < -60 || e > 60) {
            qx_quantizer_free(&q->base);
            return qx__fail(QX_EFORMAT, "qinco blob: step %zu exponent %d", m, e);
        }
        q->step_exp[m] = e;
        q->rho[m] = ldexpf(1.0f, e);
    }
    r_bytes(&r, q->params, np * sizeof(float));
    r_bytes(&r, q->additive, na * sizeof(float));
    if (!all_finite(q->params, np) || !all_finite(q->additive, na)) {
        qx_quantizer_free(&q->base);
        return qx__fail(QX_EFORMAT, "qinco blob: non-finite weights");
    }
    if (ne) {
        q->st_valid = qx__calloc(ne, sizeof(double));
        if (!q->st_valid) {
            qx_quantizer_free(&q->base);
            return qx__fail(QX_ENOMEM, "qinco: stats");
        }
        r_bytes(&r, q->st_valid, ne * sizeof(double));
        q->st_epochs = ep;
        q->st_best = best;
    }
    q->st_ntrain = (size_t)ntrain;
    q->st_nvalid = (size_t)nvalid;
    if (ver >= 2 && (rc = read_v2(&r, buf + len - 4, q, d, M)) != 0) {
        qx_quantizer_free(&q->base);
        return rc;
    }
    if ((rc = qx__qinco_finish(q)) != 0) {
        qx_quantizer_free(&q->base);
        return rc;
    }
    *out = &q->base;
    return 0;
}
