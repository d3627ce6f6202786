/* quant/qinco_train.c — training of the QINCo-style quantizer (QINCo,
 * arXiv 2401.14732 §3.3; schedule and re-seeding choices below are ours).
 *
 * 1. Hold out valid_fraction of the vectors (at most 5000) for the
 *    validation MSE; train a qinx RQ on the rest (or reuse the one given to
 *    qx_qinco_from_rq) and start from its codebooks with f = 0: concat layer
 *    and every W2 zero, W1 random (He init). The first Adam step moves the
 *    concat layer, which wakes up W2, which wakes up W1 — f grows from 0.
 * 2. Each batch is re-encoded with the current network (beam train_beam,
 *    pre-selection A) before its gradient: codes follow the network, as in
 *    QINCo — or, with reencode = k > 1, the whole training set is re-encoded
 *    every k epochs and the batches in between regress on those codes
 *    (encoding is most of an epoch's cost). The gradient is that of
 *    Σ_m w_m ||x − x̂_m||² through the whole recursion (qinco_net.c).
 * 3. Adam (β = 0.9, 0.999), learning rate: linear warm-up over the first
 *    steps, then cosine decay to lr/100 over the run, where the fraction of
 *    the run done is the larger of steps/planned steps and, under a time
 *    budget, elapsed/available time — continuous and monotone however the
 *    machine's load changes the epoch time, and ending with the budget.
 * 4. After each full epoch, codewords of a step that no vector of the epoch
 *    chose are re-seeded from residuals of that step in the last batch (plus
 *    a little noise), their Adam moments zeroed (CVQ-VAE's anchor idea,
 *    DESIGN.md "Enforcement").
 * 5. The validation MSE (beam and A of the final encoder) is measured before
 *    training and after every epoch; the best parameters are kept. With no
 *    hold-out it is the MSE of the first ntrain/8 training vectors (1,000 to
 *    5,000; in-sample: it only keeps the model from ending worse than its
 *    start; a run of seconds may not get past Adam's first disruption —
 *    siftsmall 16 B, 2 epochs in 23 s: 1.017x its RQ when the last epoch
 *    was kept).
 * 6. The budget (train_minutes) covers the whole call: the loop stops after
 *    the batch that crosses (deadline − reserve), where the reserve is the
 *    estimated time of the final LUT fit (encode + decode of the fit set).
 * 7. Finally the additive codebooks for look-up tables are fitted on the
 *    exact decodings of up to 65536 training vectors (qinco_lsq.c).
 * Determinism: one splitmix64 stream from the seed drives split, shuffles,
 * init and re-seeding; encoding does not depend on the thread count.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qinco_impl.h"
#include "qinx/rng.h"
#include "qinx/rq.h"

#define QX__MAX_VALID 5000
#define QX__MIN_MON 1000 /* monitored training vectors without a hold-out, at least */
#define QX__MAX_FIT 65536
#define QX__WARMUP 50

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) { return qx_rng_next(&r->s); }

static double rng_uniform(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static double rng_normal(rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void shuffle(size_t *idx, size_t n, rng *r) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(r) % i), t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* Sequential on purpose: a few million parameters take ~ms, less than an
 * OpenMP region's wake-up and spin on a loaded machine. */
static void adam_step(float *p, const float *g, float *m1, float *m2, size_t n, long t, float lr) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    double c1 = 1 - pow(b1, (double)t), c2 = 1 - pow(b2, (double)t);
    float a = (float)(lr * sqrt(c2) / c1), e = (float)(eps * sqrt(c2));
    for (size_t i = 0; i < n; i++) {
        m1[i] = b1 * m1[i] + (1 - b1) * g[i];
        m2[i] = b2 * m2[i] + (1 - b2) * g[i] * g[i];
        p[i] -= a * m1[i] / (sqrtf(m2[i]) + e);
    }
}

/* Adam per parameter group: a weight matrix of fan-in F moves with
 * lr·min(1, 4/√F). Adam's first steps are sign-like, so an output fed by F
 * inputs of order 1 moves by ~lr·F per step at equal rates: at d = 128 the
 * concat layer (F = 256) would jolt f by a fifth of a residual per step and
 * undo the RQ initialisation within the first batches.
 *
 * The x̂ half of the concat layer steps in centred coordinates: f = Wx·x̂ + b
 * is the same function as Wx·(x̂ − mu) + b' with b' = b + Wx·mu (mu = the
 * training vectors' mean, scaled), and Adam runs on (Wx, b'), whose gradient
 * is gWx − g_b·muᵀ. On data with a large mean (SIFT: non-negative, the mean
 * is ~40 % of the second moment) the raw gradient's mean part is the batch
 * noise of g_b copied into every column with one sign, and Adam's sign-like
 * steps moved f coherently along Wx·mu. Siftsmall 8 B, 5 minutes from the
 * same RQ: 0.885x the RQ's base MSE centred, 0.920x raw (78 / 79 epochs). */
static void adam_model(qx__qinco *q, float *g, float *m1, float *m2, long t, float lr,
                       const float *mu) {
    size_t d = q->d, h = q->h, K = QX__QK;
    float f2d = fminf(1.0f, 4.0f / sqrtf((float)(2 * d)));
    float fd = fminf(1.0f, 4.0f / sqrtf((float)d)), fh = fminf(1.0f, 4.0f / sqrtf((float)h));
    for (size_t m = 0; m < q->M; m++) {
        size_t o = qx__qinco_off_cb(q, m);
        adam_step(q->params + o, g + o, m1 + o, m2 + o, K * d, t, lr);
        if (m == 0) continue;
        o = qx__qinco_off_net(q, m);
        float *W = q->params + o, *gW = g + o, *bias = W + 2 * d * d;
        const float *gb = gW + 2 * d * d;
        for (size_t i = 0; i < d; i++) { /* to centred coordinates */
            double s = 0;
            for (size_t j = 0; j < d; j++) {
                s += (double)W[i * 2 * d + d + j] * mu[j];
                gW[i * 2 * d + d + j] -= gb[i] * mu[j];
            }
            bias[i] += (float)s;
        }
        adam_step(W, gW, m1 + o, m2 + o, 2 * d * d, t, lr * f2d);
        adam_step(bias, gb, m1 + o + 2 * d * d, m2 + o + 2 * d * d, d, t, lr);
        for (size_t i = 0; i < d; i++) { /* back: b = b' − Wx·mu */
            double s = 0;
            for (size_t j = 0; j < d; j++) s += (double)W[i * 2 * d + d + j] * mu[j];
            bias[i] -= (float)s;
        }
        o += 2 * d * d + d;
        for (size_t l = 0; l < q->L; l++, o += 2 * h * d) {
            adam_step(q->params + o, g + o, m1 + o, m2 + o, h * d, t, lr * fd);
            adam_step(q->params + o + h * d, g + o + h * d, m1 + o + h * d, m2 + o + h * d, d * h,
                      t, lr * fh);
        }
    }
}

/* Learning rate after t steps when a fraction f of the run is done. */
static float lr_at(const qx_qinco_opts *o, long t, double f) {
    double lr = o->lr, lo = lr / 100;
    if (t < QX__WARMUP) return (float)(lr * (t + 1) / QX__WARMUP);
    if (f > 1) f = 1;
    return (float)(lo + 0.5 * (lr - lo) * (1 + cos(3.141592653589793 * f)));
}

/* MSE (raw units) of n raw vectors under (params, tables). */
static int model_mse(const qx__qinco *q, const float *params, const float *tables, const float *x,
                     size_t n, int beam, int A, int T, uint8_t *codes, float *rec, double *out) {
    int rc = qx__qinco_encode_with(q, params, tables, x, n, beam, A, T, codes);
    if (rc == 0) rc = qx__qinco_decode_with(q, params, tables, codes, n, q->M, T, rec);
    if (rc) return rc;
    double s = 0;
    for (size_t i = 0; i < n * q->d; i++) {
        double e = (double)x[i] - rec[i];
        s += e * e;
    }
    *out = s / (double)n;
    return 0;
}

/* Seconds kept back for the final LUT fit (encode + decode of nfit vectors)
 * at sec_per_vec seconds per encoded vector. */
static double fit_reserve(double sec_per_vec, size_t nfit) {
    return 0.1 + 1.5 * sec_per_vec * (double)nfit;
}

static int train_rq(qx__qinco *q, const float *x, size_t n) {
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = q->M;
    ro.beam = q->opts.rq_beam;
    ro.seed = q->opts.seed;
    ro.threads = q->opts.threads;
    qx_quantizer *rq = NULL;
    int rc = qx_rq_new(&rq, q->d, &ro);
    if (rc == 0) rc = qx_quantizer_train(rq, x, n);
    if (rc == 0) {
        const float *cb = qx_rq_codebooks(rq);
        rc = cb ? qx__qinco_set_base(q, cb) : qx__fail(QX_EINTERNAL, "qinco: RQ has no codebooks");
    }
    qx_quantizer_free(rq);
    return rc ? qx__wrap(rc, "qinco: training the initial RQ") : 0;
}

typedef struct bufs {
    size_t *perm, *order;
    float *xt, *xv, *best, *grad, *m1, *m2, *tab, *xb, *xs, *resid, *recv, *mu;
    uint8_t *codes, *codesv, *tcodes;
    uint32_t *usage;
    qx__qinco_work work;
} bufs;

static void bufs_free(bufs *b) {
    qx__free(b->perm);
    qx__free(b->order);
    qx__aligned_free(b->xt);
    qx__aligned_free(b->xv);
    qx__aligned_free(b->best);
    qx__aligned_free(b->grad);
    qx__aligned_free(b->m1);
    qx__aligned_free(b->m2);
    qx__aligned_free(b->tab);
    qx__aligned_free(b->xb);
    qx__aligned_free(b->xs);
    qx__aligned_free(b->resid);
    qx__aligned_free(b->recv);
    qx__aligned_free(b->mu);
    qx__free(b->codes);
    qx__free(b->codesv);
    qx__free(b->tcodes);
    qx__free(b->usage);
    qx__qinco_work_free(&b->work);
}

static void *zalloc(size_t n, size_t size) {
    size_t bytes;
    if (!qx__mul(n, size, &bytes)) return NULL;
    void *p = qx__aligned_alloc(bytes ? bytes : 1);
    if (p) memset(p, 0, bytes);
    return p;
}

/* Codes of n raw vectors under the current network (tables recomputed). */
static int encode_current(qx__qinco *q, bufs *b, const float *x, size_t n, int beam, int T, uint8_t *codes) {
    int rc = qx__qinco_tables_compute(q, q->params, b->tab);
    return rc ? rc : qx__qinco_encode_with(q, q->params, b->tab, x, n, beam, q->opts.A, T, codes);
}

/* MSE of the n monitored vectors (hold-out, or training sample) under the
 * current network (tables recomputed); *reserve becomes the LUT fit's
 * reserve at the encoding speed just measured. */
static int monitor_mse(qx__qinco *q, bufs *b, const float *x, size_t n, int T, size_t nfit, double *mse,
                       double *reserve) {
    int rc = qx__qinco_tables_compute(q, q->params, b->tab);
    double t0 = qx__now();
    if (rc == 0) rc = model_mse(q, q->params, b->tab, x, n, q->opts.beam, q->opts.A, T, b->codesv, b->recv, mse);
    if (rc == 0) *reserve = fit_reserve((qx__now() - t0) / (double)n, nfit);
    return rc;
}

/* Final step: additive codebooks fitted to exact decodings of up to
 * QX__MAX_FIT training vectors (the first rows of the permutation). */
static int fit_lut(qx__qinco *q, const float *x, const size_t *perm, size_t n, int T) {
    size_t d = q->d, M = q->M, nf = n < QX__MAX_FIT ? n : QX__MAX_FIT;
    float *xf = zalloc(nf * d, sizeof(float)), *rec = zalloc(nf * d, sizeof(float));
    uint8_t *codes = zalloc(nf * M, 1);
    int rc = 0;
    if (!xf || !rec || !codes) rc = qx__fail(QX_ENOMEM, "qinco: LUT fit buffers (%zu vectors)", nf);
    for (size_t i = 0; rc == 0 && i < nf; i++) memcpy(xf + i * d, x + perm[i] * d, d * sizeof(float));
    if (rc == 0) rc = qx__qinco_encode_with(q, q->params, q->tables, xf, nf, q->opts.beam, q->opts.A, T, codes);
    if (rc == 0) rc = qx__qinco_decode_with(q, q->params, q->tables, codes, nf, M, T, rec);
    if (rc == 0) {
        /* Start from the RQ codebooks: with f = 0 they are the exact answer. */
        memcpy(q->additive, q->rq_cb, M * QX__QK * d * sizeof(float));
        rc = qx__qinco_fit_additive(codes, nf, M, rec, d, T, q->additive);
    }
    qx__aligned_free(xf);
    qx__aligned_free(rec);
    qx__aligned_free(codes);
    return rc;
}

int qx__qinco_train(qx_quantizer *base, const float *x, size_t n) {
    qx__qinco *q = (qx__qinco *)base;
    const qx_qinco_opts *o = &q->opts;
    size_t d = q->d, M = q->M, K = QX__QK, np = q->nparams;
    int T = qx__qinco_threads(q);
    double t0 = qx__now();
    double deadline = o->train_minutes > 0 ? t0 + 60.0 * o->train_minutes : INFINITY;
    rng r = {o->seed * 0x9E3779B97F4A7C15ull + 7};
    bufs b;
    memset(&b, 0, sizeof b);
    int rc = 0;

    size_t nvalid = (size_t)((double)o->valid_fraction * (double)n);
    if (nvalid > QX__MAX_VALID) nvalid = QX__MAX_VALID;
    if (n - nvalid < K) nvalid = n - K;
    size_t ntrain = n - nvalid, batch = (size_t)o->batch < ntrain ? (size_t)o->batch : ntrain;
    /* The vectors whose MSE picks the best epoch: the hold-out, or without
     * one the first ntrain/8 training vectors, clamped to [QX__MIN_MON,
     * QX__MAX_VALID] (in-sample: it then keeps the model from ending worse
     * than its start on the data it trains on, e.g. after a few epochs of
     * Adam's first disruption). An eighth keeps this pass at ~1/8 of an
     * epoch's encoding; 5,000 of siftsmall's 9,000 made it a third of the
     * epoch time. */
    size_t nmon = ntrain / 8;
    if (nmon < QX__MIN_MON) nmon = QX__MIN_MON;
    if (nmon > QX__MAX_VALID) nmon = QX__MAX_VALID;
    if (nmon > ntrain) nmon = ntrain;
    if (nvalid) nmon = nvalid;
    size_t E = (size_t)o->epochs;
    int train_beam = o->train_beam ? o->train_beam : o->beam;
    size_t reencode = (size_t)o->reencode; /* 1..1000, checked with the options */

    b.perm = qx__malloc(n * sizeof(size_t));
    b.order = qx__malloc(ntrain * sizeof(size_t));
    b.xt = zalloc(ntrain * d, sizeof(float));
    b.xv = zalloc(nvalid ? nvalid * d : 1, sizeof(float));
    b.best = zalloc(np, sizeof(float));
    b.grad = zalloc(np, sizeof(float));
    b.m1 = zalloc(np, sizeof(float));
    b.m2 = zalloc(np, sizeof(float));
    b.tab = zalloc(M * qx__qinco_table_stride(q), sizeof(float));
    b.xb = zalloc(batch * d, sizeof(float));
    b.xs = zalloc(batch * d, sizeof(float));
    b.resid = zalloc(batch * M * d, sizeof(float));
    b.recv = zalloc(nmon * d, sizeof(float));
    b.mu = zalloc(d, sizeof(float));
    b.codes = qx__malloc(batch * M);
    b.codesv = qx__malloc(nmon * M);
    b.tcodes = qx__malloc(reencode > 1 ? ntrain * M : 1);
    b.usage = qx__calloc(M * K, sizeof(uint32_t));
    qx__free(q->st_valid);
    qx__free(q->st_loss);
    qx__free(q->st_sec);
    q->st_valid = qx__calloc(E + 1, sizeof(double));
    q->st_loss = qx__calloc(E + 1, sizeof(double));
    q->st_sec = qx__calloc(E + 1, sizeof(double));
    q->st_epochs = q->st_best = 0;
    q->st_budget = 0;
    if (!b.perm || !b.order || !b.xt || !b.xv || !b.best || !b.grad || !b.m1 || !b.m2 || !b.tab ||
        !b.xb || !b.xs || !b.resid || !b.recv || !b.mu || !b.codes || !b.codesv || !b.tcodes || !b.usage ||
        !q->st_valid || !q->st_loss || !q->st_sec) {
        bufs_free(&b);
        return qx__fail(QX_ENOMEM, "qinco: training buffers (%zu parameters, %zu vectors)", np, n);
    }
    if ((rc = qx__qinco_work_alloc(q, batch, &b.work)) != 0) {
        bufs_free(&b);
        return rc;
    }
    q->st_ntrain = ntrain;
    q->st_nvalid = nvalid;
    q->st_nmon = nmon;

    for (size_t i = 0; i < n; i++) b.perm[i] = i;
    shuffle(b.perm, n, &r);
    for (size_t i = 0; i < nvalid; i++) memcpy(b.xv + i * d, x + b.perm[i] * d, d * sizeof(float));
    for (size_t i = 0; i < ntrain; i++)
        memcpy(b.xt + i * d, x + b.perm[nvalid + i] * d, d * sizeof(float));

    /* 1. Base codebooks and f = 0. */
    rc = q->rq_cb ? qx__qinco_set_base(q, q->rq_cb) : train_rq(q, b.xt, ntrain);
    if (rc) goto done;
    /* the centre of adam_model's x̂ coordinates, in model units (inv_scale is
     * set with the base codebooks) */
    for (size_t j = 0; j < d; j++) {
        double s = 0;
        for (size_t i = 0; i < ntrain; i++) s += b.xt[i * d + j];
        b.mu[j] = (float)(s / (double)ntrain * q->inv_scale);
    }
    qx__progress(base, "qinco-rq", 1.0);
    for (size_t m = 1; m < M; m++) {
        qx__qinco_net net;
        qx__qinco_net_view(q, q->params, m, &net);
        float sd = (float)sqrt(2.0 / (double)d);
        for (size_t l = 0; l < q->L; l++)
            for (size_t i = 0; i < q->h * d; i++) ((float *)net.W1[l])[i] = sd * (float)rng_normal(&r);
    }

    /* 2. Validation of the starting point (the RQ). */
    const float *xmon = nvalid ? b.xv : b.xt;
    size_t nfit = n < QX__MAX_FIT ? n : QX__MAX_FIT;
    double best, reserve;
    if ((rc = monitor_mse(q, &b, xmon, nmon, T, nfit, &best, &reserve)) != 0) goto done;
    q->st_valid[0] = best;
    memcpy(b.best, q->params, np * sizeof(float));
    if (o->verbose)
        fprintf(stderr, "qinco: d=%zu M=%zu L=%zu h=%zu A=%d beam=%d; %zu train, %zu valid; "
                "RQ init valid MSE %.6g (%.1f s)\n", d, M, q->L, q->h, o->A, o->beam, ntrain,
                nvalid, best, qx__now() - t0);

    /* Per-step weight of the intermediate errors: step_share x the last
     * step's error over their sum, on the first batch under the starting
     * RQ. A fixed per-step weight let the intermediate errors, which are
     * larger, grow with M: at 0.1 they were 64 % of the loss at 8 bytes
     * and 89 % at 16, where training then traded the final error for them
     * (siftsmall 16 B, 4 minutes: 1.000x the RQ at 0.1 per step, 0.986x at
     * 0.02; 8 B, 5 minutes: 0.885x at 0.1, 0.915x at 0.02; the better
     * setting puts the intermediate steps at ~1.7x the last step in both). */
    float sw = 0;
    if (o->step_share > 0 && M > 1) {
        size_t nb = batch;
        double sl[QX_MAX_STEPS], inter = 0, loss;
        for (size_t i = 0; i < nb * d; i++) b.xs[i] = b.xt[i] * q->inv_scale;
        if ((rc = encode_current(q, &b, b.xt, nb, train_beam, T, b.codes)) != 0 ||
            (rc = qx__qinco_loss_grad(q, q->params, b.xs, b.codes, nb, 1.0f, &b.work, b.grad, &loss,
                                      sl, NULL)) != 0)
            goto done;
        for (size_t m = 0; m + 1 < M; m++) inter += sl[m];
        sw = inter > 0 ? (float)(o->step_share * sl[M - 1] / inter) : 0;
    }
    if (o->verbose)
        fprintf(stderr, "qinco: intermediate steps weigh %.3g each (step_share %g)\n", sw, o->step_share);

    /* 3. Epochs. */
    size_t spe = (ntrain + batch - 1) / batch;
    long t = 0, horizon = (long)(E * spe);
    double frac = 0;
    int stop = qx__now() > deadline - reserve;
    q->st_budget = stop;
    double t_loop = qx__now();
    for (size_t i = 0; i < ntrain; i++) b.order[i] = i;
    for (size_t ep = 0; ep < E && !stop; ep++) {
        shuffle(b.order, ntrain, &r);
        memset(b.usage, 0, M * K * sizeof(uint32_t));
        double loss_sum = 0, mse_sum = 0;
        size_t seen = 0, last_nb = 0;
        /* Codes of the whole training set under the current network, every
         * reencode epochs; the batches in between regress on them. */
        if (reencode > 1 && ep % reencode == 0 &&
            (rc = encode_current(q, &b, b.xt, ntrain, train_beam, T, b.tcodes)) != 0)
            goto done;
        for (size_t b0 = 0; b0 < ntrain; b0 += batch) {
            size_t nb = ntrain - b0 < batch ? ntrain - b0 : batch;
            for (size_t i = 0; i < nb; i++) {
                const float *src = b.xt + b.order[b0 + i] * d;
                memcpy(b.xb + i * d, src, d * sizeof(float));
                for (size_t j = 0; j < d; j++) b.xs[i * d + j] = src[j] * q->inv_scale;
                if (reencode > 1) memcpy(b.codes + i * M, b.tcodes + b.order[b0 + i] * M, M);
            }
            if (reencode == 1 &&
                (rc = encode_current(q, &b, b.xb, nb, train_beam, T, b.codes)) != 0)
                goto done;
            double loss, step_loss[QX_MAX_STEPS];
            rc = qx__qinco_loss_grad(q, q->params, b.xs, b.codes, nb, sw, &b.work,
                                     b.grad, &loss, step_loss, b.resid);
            if (rc) goto done;
            /* The loss is in scaled units; report raw ones. */
            double s2 = (double)q->scale * q->scale;
            loss_sum += loss * s2 * (double)nb;
            /* training MSE with these codes: the last step's error */
            mse_sum += step_loss[M - 1] * s2 * (double)nb;
            seen += nb;
            for (size_t i = 0; i < nb; i++)
                for (size_t m = 0; m < M; m++) b.usage[m * K + b.codes[i * M + m]]++;
            t++;
            frac = (double)t / (double)horizon;
            if (isfinite(deadline)) {
                double avail = deadline - reserve - t_loop;
                double ft = avail > 0 ? (qx__now() - t_loop) / avail : 1;
                frac = ft > frac ? ft : frac;
            }
            adam_model(q, b.grad, b.m1, b.m2, t, lr_at(o, t - 1, frac), b.mu);
            last_nb = nb;
            if (qx__now() > deadline - reserve) {
                stop = 1;
                q->st_budget = 1;
                break;
            }
        }
        size_t dead = 0;
        if (!stop) {
            for (size_t m = 0; m < M; m++)
                for (size_t k = 0; k < K; k++) {
                    if (b.usage[m * K + k]) continue;
                    dead++;
                    size_t i = (size_t)(rng_next(&r) % last_nb), off = qx__qinco_off_cb(q, m) + k * d;
                    const float *res = b.resid + (i * M + m) * d;
                    double nr = 0;
                    for (size_t j = 0; j < d; j++) nr += (double)res[j] * res[j];
                    float sd = (float)(0.01 * sqrt(nr / (double)d));
                    for (size_t j = 0; j < d; j++) {
                        q->params[off + j] = (res[j] + sd * (float)rng_normal(&r)) / q->rho[m];
                        b.m1[off + j] = b.m2[off + j] = 0;
                    }
                }
        }
        double vm;
        if ((rc = monitor_mse(q, &b, xmon, nmon, T, nfit, &vm, &reserve)) != 0) goto done;
        q->st_epochs = ep + 1;
        q->st_valid[ep + 1] = vm;
        q->st_loss[ep + 1] = seen ? loss_sum / (double)seen : NAN;
        q->st_sec[ep + 1] = qx__now() - t0;
        if (vm < best) {
            best = vm;
            q->st_best = ep + 1;
            memcpy(b.best, q->params, np * sizeof(float));
        }
        double now = qx__now();
        qx__progress(base, "qinco-train", (double)(ep + 1) / (double)E);
        if (o->verbose)
            fprintf(stderr, "qinco: epoch %zu/%zu loss %.6g train_mse %.6g valid_mse %.6g%s "
                    "dead %zu lr %.3g %.1f s\n", ep + 1, E, q->st_loss[ep + 1],
                    seen ? mse_sum / (double)seen : NAN, vm, q->st_best == ep + 1 ? " *" : "",
                    dead, (double)lr_at(o, t - 1, frac), now - t0);
    }
    if (stop && o->verbose && q->st_budget)
        fprintf(stderr, "qinco: time budget reached after %zu epochs, keeping epoch %zu\n",
                q->st_epochs, q->st_best);

    /* 4. Best parameters, tables, additive codebooks. */
    memcpy(q->params, b.best, np * sizeof(float));
    if ((rc = qx__qinco_finish(q)) != 0) goto done;
    rc = fit_lut(q, x, b.perm, n, T);
    qx__progress(base, "qinco-lut", 1.0);
    q->st_total = qx__now() - t0;
    if (o->verbose && rc == 0)
        fprintf(stderr, "qinco: trained in %.1f s (best epoch %zu, valid MSE %.6g)\n", q->st_total,
                q->st_best, q->st_valid[q->st_best]);
done:
    bufs_free(&b);
    return rc;
}
