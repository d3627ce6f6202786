/* quant/qinco.c — the QINCo-style quantizer object (qinx/qinco.h): options,
 * construction (fresh, or from a trained RQ with f = 0), the vtable ops that
 * are not training (encode, decode, look-up tables) and the statistics.
 *
 * Model: Huijben et al., "Residual Quantization with Implicit Neural
 * Codebooks" (ICML 2024, arXiv 2401.14732); encoding after QINCo2 (Vallaeys
 * et al., arXiv 2501.03078). Training is in qinco_train.c, the network's
 * passes in qinco_net.c, encoding in qinco_encode.c, the additive
 * look-up-table codebooks in qinco_lsq.c, the blob in qinco_io.c.
 *
 * Decisions:
 * 1. The internal scale s is a power of two (see qinco_impl.h) taken from the
 *    RMS coordinate of the step-0 codebook, which is known both when training
 *    from data and when wrapping an existing RQ.
 * 2. Look-up tables use additive codebooks (least squares on the exact
 *    decodings), so an index can scan QINCo codes exactly like RQ codes; the
 *    exact decoder is for re-ranking a shortlist.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "qinco_impl.h"
#include "qinx/rq.h"

void qx_qinco_opts_init(qx_qinco_opts *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->M = 8;
    /* Defaults (session 3, measured on siftsmall and GloVe-100 8 B): beam 5
     * = rq_beam with A = 8 >= beam makes the untrained model encode exactly
     * like its RQ, so with the best-epoch selection QINCo is never worse than
     * its start (beam 2 started 10-13 % above RQ's MSE and training never
     * recovered it); L = 1, h = 128 learned as much as L = 2, h = 256 in
     * equal time (GloVe 0.998x vs siftsmall 0.992x held-out, both ~RQ) at a
     * third of the cost per candidate. Old and new defaults encode at about
     * the same speed (~1,300 vectors/s at 8 B on GloVe, idle). */
    o->L = 1;
    o->h = 128;
    o->A = 8;
    o->beam = 5;
    o->train_beam = 0;
    o->epochs = 30;
    o->reencode = 1;
    o->batch = 256;
    o->lr = 1e-3f;
    o->step_share = 1.7f;
    o->train_minutes = 0;
    o->seed = 1234;
    o->threads = 0;
    o->valid_fraction = 0.1f;
    o->rq_beam = 5;
    o->verbose = 0;
    o->rq_refine_min = -1;
    o->fallback = 1;
    /* Session 16, GloVe-100 16 B in an IVF of 1024 lists, 300k training
     * vectors: conditioned on the centroid, 43 minutes of training gave a
     * held-out MSE of 0.951x the RQ's and recall@1 +0.02 at nprobe 16-64
     * (re-ranked); without, 0.981x after 36 minutes and the check fell back */
    o->context = 1;
}

int qx__qinco_check_opts(const qx_qinco_opts *o, size_t d) {
    if (!o) return qx__fail(QX_EINVAL, "qinco: NULL options");
    if (d == 0 || d > QX_MAX_DIM)
        return qx__fail(QX_EDIM, "qinco: dimension %zu out of range 1..%d", d, QX_MAX_DIM);
    if (o->M == 0 || o->M > QX_MAX_STEPS)
        return qx__fail(QX_EINVAL, "qinco: M=%zu out of range 1..%d (bytes per code)", o->M,
                        QX_MAX_STEPS);
    if (o->L < 0 || o->L > QX_QINCO_MAX_L)
        return qx__fail(QX_EINVAL, "qinco: L=%d residual blocks out of range 0..%d", o->L,
                        QX_QINCO_MAX_L);
    if (o->h <= 0 || o->h > QX_QINCO_MAX_H)
        return qx__fail(QX_EINVAL, "qinco: hidden size h=%d out of range 1..%d", o->h,
                        QX_QINCO_MAX_H);
    if (o->A <= 0 || o->A > QX_KSUB)
        return qx__fail(QX_EINVAL, "qinco: A=%d pre-selected candidates out of range 1..%d",
                        o->A, QX_KSUB);
    if (o->beam <= 0 || o->beam > QX_QINCO_MAX_BEAM)
        return qx__fail(QX_EINVAL, "qinco: beam=%d out of range 1..%d", o->beam,
                        QX_QINCO_MAX_BEAM);
    if (o->train_beam < 0 || o->train_beam > QX_QINCO_MAX_BEAM)
        return qx__fail(QX_EINVAL, "qinco: train_beam=%d out of range 0..%d", o->train_beam,
                        QX_QINCO_MAX_BEAM);
    if (o->rq_beam <= 0 || o->rq_beam > QX_QINCO_MAX_BEAM)
        return qx__fail(QX_EINVAL, "qinco: rq_beam=%d out of range 1..%d", o->rq_beam,
                        QX_QINCO_MAX_BEAM);
    if (o->rq_refine_min < -1 || o->rq_refine_min > 1000000)
        return qx__fail(QX_EINVAL, "qinco: rq_refine_min=%d out of range -1..1000000",
                        o->rq_refine_min);
    if (o->fallback != 0 && o->fallback != 1)
        return qx__fail(QX_EINVAL, "qinco: fallback=%d is 0 or 1", o->fallback);
    if (o->reencode < 1 || o->reencode > 1000)
        return qx__fail(QX_EINVAL, "qinco: reencode=%d out of range 1..1000", o->reencode);
    if (o->epochs < 0 || o->epochs > QX_QINCO_MAX_EPOCHS)
        return qx__fail(QX_EINVAL, "qinco: epochs=%d out of range 0..%d", o->epochs,
                        QX_QINCO_MAX_EPOCHS);
    if (o->batch < 16 || o->batch > 65536)
        return qx__fail(QX_EINVAL, "qinco: batch=%d out of range 16..65536", o->batch);
    if (!(o->step_share >= 0 && o->step_share <= 100))
        return qx__fail(QX_EINVAL, "qinco: step_share=%g out of range 0..100",
                        (double)o->step_share);
    if (!(o->lr > 0 && o->lr <= 1))
        return qx__fail(QX_EINVAL, "qinco: learning rate %g out of range (0, 1]", (double)o->lr);
    if (!(o->train_minutes >= 0 && o->train_minutes < 1e7))
        return qx__fail(QX_EINVAL, "qinco: train_minutes=%g must be >= 0 (0 = no budget)",
                        o->train_minutes);
    if (o->threads < 0 || o->threads > 1024)
        return qx__fail(QX_EINVAL, "qinco: threads=%d out of range 0..1024", o->threads);
    if (!(o->valid_fraction >= 0 && o->valid_fraction <= 0.5f))
        return qx__fail(QX_EINVAL, "qinco: valid_fraction=%g out of range 0..0.5",
                        (double)o->valid_fraction);
    return 0;
}

int qx__qinco_threads(const qx__qinco *q) {
    return q->opts.threads > 0 ? q->opts.threads : qx__num_threads();
}

static qx__qinco *cast(const qx_quantizer *q) { return (qx__qinco *)q; }

/* After a fallback (stats.fallback) the quantizer is its RQ: encode, decode
 * and look-up tables go to it (same codes as f = 0, at the RQ's speed).
 * Contexts are used only by a model trained with them (q->ctx). */
static int op_encode_ctx(const qx_quantizer *base, const float *x, const float *ctx, size_t n,
                         uint8_t *codes) {
    const qx__qinco *q = cast(base);
    if (q->rq_fb) return qx_quantizer_encode(q->rq_fb, x, n, codes);
    return qx__qinco_encode_with(q, q->params, q->tables, x, q->ctx ? ctx : NULL, n, q->opts.beam,
                                 q->opts.A, qx__qinco_threads(q), codes);
}

static int op_encode(const qx_quantizer *base, const float *x, size_t n, uint8_t *codes) {
    return op_encode_ctx(base, x, NULL, n, codes);
}

static int op_decode_ctx(const qx_quantizer *base, const uint8_t *codes, const float *ctx,
                         size_t n, size_t m, float *out) {
    const qx__qinco *q = cast(base);
    if (q->rq_fb) return qx_quantizer_decode(q->rq_fb, codes, n, m, out);
    return qx__qinco_decode_with(q, q->params, q->tables, codes, q->ctx ? ctx : NULL, n, m,
                                 qx__qinco_threads(q), out);
}

static int op_decode(const qx_quantizer *base, const uint8_t *codes, size_t n, size_t m,
                     float *out) {
    return op_decode_ctx(base, codes, NULL, n, m, out);
}

static int op_train(qx_quantizer *base, const float *x, size_t n) {
    return qx__qinco_train(base, x, NULL, n);
}

static int op_uses_context(const qx_quantizer *base) {
    const qx__qinco *q = cast(base);
    return q->ctx && !q->rq_fb;
}

static int op_lut(const qx_quantizer *base, const float *queries, size_t nq, float *lut) {
    const qx__qinco *q = cast(base);
    if (q->rq_fb) return qx_quantizer_lut(q->rq_fb, queries, nq, lut);
    size_t MK = q->M * QX__QK;
    /* lut (nq × MK) = queries (nq × d) · additiveᵀ; rows of 64k queries keep
     * the int arguments of cblas in range whatever nq is. */
    for (size_t i = 0; i < nq; i += 65536) {
        size_t b = nq - i < 65536 ? nq - i : 65536;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)MK, (int)q->d, 1.0f,
                    queries + i * q->d, (int)q->d, q->additive, (int)q->d, 0.0f, lut + i * MK,
                    (int)MK);
    }
    return 0;
}

static const float *op_additive(const qx_quantizer *base) { return cast(base)->additive; }

static void op_destroy(qx_quantizer *base) {
    qx__qinco *q = cast(base);
    qx__aligned_free(q->params);
    qx__aligned_free(q->tables);
    qx__aligned_free(q->additive);
    qx__aligned_free(q->rq_cb);
    qx__free(q->st_valid);
    qx__free(q->st_loss);
    qx__free(q->st_sec);
    qx__free(q->st_gflops);
    qx_quantizer_free(q->rq_fb);
    qx__free(q);
}

static const qx__quantizer_ops qinco_ops = {
    .train = op_train,
    .encode = op_encode,
    .decode = op_decode,
    .lut = op_lut,
    .additive_codebooks = op_additive,
    .serialize = qx__qinco_serialize,
    .destroy = op_destroy,
    .train_ctx = qx__qinco_train,
    .encode_ctx = op_encode_ctx,
    .decode_ctx = op_decode_ctx,
    .uses_context = op_uses_context,
};

int qx__qinco_alloc(qx__qinco **out, size_t d, const qx_qinco_opts *opts) {
    int rc = qx__qinco_check_opts(opts, d);
    if (rc) return rc;
    size_t M = opts->M, L = (size_t)opts->L, h = (size_t)opts->h, np, npb, tb, ab;
    /* Overflow-checked sizes: net = 2d² + d + 2Lhd, params = MKd + (M-1)·net. */
    size_t net, t1, t2;
    if (!qx__mul3(2, d, d, &t1) || !qx__mul3(2 * L, h, d, &t2) || !qx__add(t1, t2, &net) ||
        !qx__add(net, d, &net) || !qx__mul(M - 1, net, &t1) ||
        !qx__mul3(M, QX__QK, d, &t2) || !qx__add(t1, t2, &np) ||
        !qx__mul(np, sizeof(float), &npb) || !qx__mul3(M, QX__QK * sizeof(float), d + h + 1, &tb) ||
        !qx__mul3(M, QX__QK * sizeof(float), d, &ab))
        return qx__fail(QX_ENOMEM, "qinco: model size overflows (d=%zu M=%zu L=%zu h=%zu)", d, M,
                        L, h);
    qx__qinco *q = qx__calloc(1, sizeof *q);
    if (!q) return qx__fail(QX_ENOMEM, "qinco: object");
    q->base.ops = &qinco_ops;
    q->base.kind = QX_QUANT_QINCO;
    q->base.d = d;
    q->base.M = M;
    q->opts = *opts;
    q->d = d;
    q->M = M;
    q->L = L;
    q->h = h;
    q->scale = q->inv_scale = 1.0f;
    for (size_t m = 0; m < QX_MAX_STEPS; m++) q->rho[m] = 1.0f;
    q->net_size = net;
    q->nparams = np;
    q->params = qx__aligned_alloc(npb);
    q->tables = qx__aligned_alloc(tb);
    q->additive = qx__aligned_alloc(ab);
    if (!q->params || !q->tables || !q->additive) {
        op_destroy(&q->base);
        return qx__fail(QX_ENOMEM, "qinco: %zu parameters (%zu MB)", np, npb >> 20);
    }
    memset(q->params, 0, npb);
    memset(q->tables, 0, tb);
    memset(q->additive, 0, ab);
    *out = q;
    return 0;
}

int qx__qinco_finish(qx__qinco *q) {
    return qx__qinco_tables_compute(q, q->params, q->tables);
}

int qx_qinco_new(qx_quantizer **out, size_t d, const qx_qinco_opts *opts) {
    if (!out) return qx__fail(QX_EINVAL, "qinco: NULL output");
    *out = NULL;
    qx_qinco_opts def;
    if (!opts) {
        qx_qinco_opts_init(&def);
        opts = &def;
    }
    qx__qinco *q;
    int rc = qx__qinco_alloc(&q, d, opts);
    if (rc) return rc;
    *out = &q->base;
    return 0;
}

/* s = 2^round(log2 rms) over the coordinates of codebook 0 (raw units). */
static int scale_exponent(const float *cb0, size_t d) {
    double s = 0;
    for (size_t i = 0; i < QX__QK * d; i++) s += (double)cb0[i] * cb0[i];
    double rms = sqrt(s / (double)(QX__QK * d));
    if (!(rms > 0) || !isfinite(rms)) return 0;
    int e = (int)lround(log2(rms));
    return e < -60 ? -60 : e > 60 ? 60 : e;
}

/* Base codebooks (raw units) → params with f = 0 (the network weights other
 * than W1 zero; W1 is set by the trainer). */
int qx__qinco_set_base(qx__qinco *q, const float *cb_raw) {
    size_t d = q->d, K = QX__QK, bytes = q->M * K * d * sizeof(float);
    if (!q->rq_cb && !(q->rq_cb = qx__aligned_alloc(bytes)))
        return qx__fail(QX_ENOMEM, "qinco: copy of the RQ codebooks");
    if (q->rq_cb != cb_raw) memcpy(q->rq_cb, cb_raw, bytes);
    q->scale_exp = scale_exponent(cb_raw, d);
    q->scale = ldexpf(1.0f, q->scale_exp);
    q->inv_scale = ldexpf(1.0f, -q->scale_exp);
    memset(q->params, 0, q->nparams * sizeof(float));
    for (size_t m = 0; m < q->M; m++) {
        int e = scale_exponent(cb_raw + m * K * d, d) - q->scale_exp;
        q->step_exp[m] = e < -60 ? -60 : e > 60 ? 60 : e;
        q->rho[m] = ldexpf(1.0f, q->step_exp[m]);
        float *cb = q->params + qx__qinco_off_cb(q, m), f = ldexpf(q->inv_scale, -q->step_exp[m]);
        for (size_t i = 0; i < K * d; i++) cb[i] = cb_raw[m * K * d + i] * f;
    }
    memcpy(q->additive, cb_raw, bytes);
    q->have_base = 1;
    return 0;
}

int qx_qinco_from_rq(qx_quantizer **out, const qx_quantizer *rq, const qx_qinco_opts *opts) {
    if (!out || !rq || !opts) return qx__fail(QX_EINVAL, "qinco_from_rq: NULL argument");
    *out = NULL;
    if (qx_quantizer_kind(rq) != QX_QUANT_RQ)
        return qx__fail(QX_EINVAL, "qinco_from_rq: the quantizer is %s, not rq",
                        qx_quantizer_kind_name(qx_quantizer_kind(rq)));
    if (!qx_quantizer_is_trained(rq)) return qx__fail(QX_ESTATE, "qinco_from_rq: RQ not trained");
    if (qx_quantizer_steps(rq) != opts->M)
        return qx__fail(QX_EINVAL, "qinco_from_rq: RQ has M=%zu steps, options ask M=%zu",
                        qx_quantizer_steps(rq), opts->M);
    const float *cb = qx_rq_codebooks(rq);
    if (!cb) return qx__fail(QX_ESTATE, "qinco_from_rq: RQ has no codebooks");
    qx__qinco *q;
    int rc = qx__qinco_alloc(&q, qx_quantizer_dim(rq), opts);
    if (rc) return rc;
    if ((rc = qx__qinco_set_base(q, cb)) != 0 || (rc = qx__qinco_finish(q)) != 0) {
        op_destroy(&q->base);
        return rc;
    }
    q->base.trained = 1;
    *out = &q->base;
    return 0;
}

static const qx__qinco *checked(const qx_quantizer *q) {
    return q && q->kind == QX_QUANT_QINCO && q->ops == &qinco_ops ? cast(q) : NULL;
}

int qx_qinco_get_stats(const qx_quantizer *base, qx_qinco_stats *st) {
    const qx__qinco *q = checked(base);
    if (!q || !st) return qx__fail(QX_EINVAL, "qinco_get_stats: not a qinco quantizer");
    memset(st, 0, sizeof *st);
    st->epochs = q->st_epochs;
    st->valid_mse = q->st_valid;
    st->train_loss = q->st_loss ? q->st_loss + 1 : NULL;
    st->seconds = q->st_sec ? q->st_sec + 1 : NULL;
    st->best_epoch = q->st_best;
    st->n_train = q->st_ntrain;
    st->n_valid = q->st_nvalid;
    st->n_monitor = q->st_nmon;
    st->budget_hit = q->st_budget;
    st->total_seconds = q->st_total;
    st->checked = q->ck.checked;
    st->fallback = q->ck.fallback;
    st->check_nq = q->ck.nq;
    st->check_nbase = q->ck.nbase;
    st->check_mse_rq = q->ck.mse_rq;
    st->check_mse_qinco = q->ck.mse_qinco;
    st->check_recall_rq = q->ck.recall_rq;
    st->check_recall_qinco = q->ck.recall_qinco;
    st->sgemm_gflops = q->ck.sgemm_gflops;
    st->train_gflops = q->ck.train_gflops;
    st->cores_used = q->ck.cores_used;
    st->epoch_gflops = q->st_gflops ? q->st_gflops + 1 : NULL;
    return 0;
}

int qx_qinco_get_opts(const qx_quantizer *base, qx_qinco_opts *opts) {
    const qx__qinco *q = checked(base);
    if (!q || !opts) return qx__fail(QX_EINVAL, "qinco_get_opts: not a qinco quantizer");
    *opts = q->opts;
    return 0;
}

int qx_qinco_set_search(qx_quantizer *base, int beam, int A) {
    qx__qinco *q = (qx__qinco *)checked(base);
    if (!q) return qx__fail(QX_EINVAL, "qinco_set_search: not a qinco quantizer");
    if (beam <= 0 || beam > QX_QINCO_MAX_BEAM)
        return qx__fail(QX_EINVAL, "qinco: beam=%d out of range 1..%d", beam, QX_QINCO_MAX_BEAM);
    if (A <= 0 || A > QX_KSUB)
        return qx__fail(QX_EINVAL, "qinco: A=%d out of range 1..%d", A, QX_KSUB);
    q->opts.beam = beam;
    q->opts.A = A;
    return 0;
}
