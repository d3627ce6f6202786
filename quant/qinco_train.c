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
 * 7. Never worse than its RQ (opts.fallback, with a hold-out): the kept
 *    model is compared with the starting RQ on the hold-out, by MSE and by
 *    recall@1 of held-out vectors against the training vectors
 *    (qinco_check.c). Unless it wins on both, the quantizer becomes an RQ
 *    trained on all n vectors with the initial RQ's options — the codes an
 *    RQ build would write — and stats.fallback says so. The budget keeps
 *    back the time of that retraining and of the check.
 * 8. Finally the additive codebooks for look-up tables are fitted on the
 *    exact decodings of up to 65536 training vectors (qinco_lsq.c).
 * Throughput: each epoch's matrix FLOPs (counted from the sgemm shapes) over
 * its wall time, against a 1024³ sgemm timed at the start of the run, and
 * process CPU time over wall time (cores used): verbose lines and stats.
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
#define QX__CHECK_Q 1000     /* held-out queries of the recall check, at most */
#define QX__CHECK_BASE 10000 /* training vectors it searches, at most */

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

/* Adam on one range with the step's bias-corrected rate a and epsilon e. */
static void adam_range(float *p, const float *g, float *m1, float *m2, size_t n, float a, float e) {
    const float b1 = 0.9f, b2 = 0.999f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        m1[i] = b1 * m1[i] + (1 - b1) * g[i];
        m2[i] = b2 * m2[i] + (1 - b2) * g[i] * g[i];
        p[i] -= a * m1[i] / (sqrtf(m2[i]) + e);
    }
}

/* A range of parameters and its learning-rate factor (its group's). */
typedef struct adam_piece {
    size_t off, n;
    float rate;
} adam_piece;

#define QX__ADAM_PIECE 16384

/* Adam per parameter group: a weight matrix of fan-in F moves with
 * lr·min(1, 4/√F). Adam's first steps are sign-like, so an output fed by F
 * inputs of order 1 moves by ~lr·F per step at equal rates: at d = 128 the
 * concat layer (F = 256) would jolt f by a fifth of a residual per step and
 * undo the RQ initialisation within the first batches. The groups, cut into
 * pieces of at most QX__ADAM_PIECE floats, fill `out` (NULL: count only). */
static size_t adam_pieces(const qx__qinco *q, adam_piece *out) {
    size_t d = q->d, h = q->h, K = QX__QK, np = 0;
    float f2d = fminf(1.0f, 4.0f / sqrtf((float)(2 * d)));
    float fd = fminf(1.0f, 4.0f / sqrtf((float)d)), fh = fminf(1.0f, 4.0f / sqrtf((float)h));
    adam_piece grp[3 + 2 * QX_QINCO_MAX_L];
    for (size_t m = 0; m < q->M; m++) {
        size_t ng = 0, o = qx__qinco_off_net(q, m ? m : 1);
        grp[ng++] = (adam_piece){qx__qinco_off_cb(q, m), K * d, 1.0f};
        if (m > 0) {
            grp[ng++] = (adam_piece){o, 2 * d * d, f2d};
            grp[ng++] = (adam_piece){o + 2 * d * d, d, 1.0f};
            o += 2 * d * d + d;
            for (size_t l = 0; l < q->L; l++, o += 2 * h * d) {
                grp[ng++] = (adam_piece){o, h * d, fd};
                grp[ng++] = (adam_piece){o + h * d, d * h, fh};
            }
        }
        for (size_t g = 0; g < ng; g++)
            for (size_t a = 0; a < grp[g].n; a += QX__ADAM_PIECE, np++)
                if (out) {
                    size_t len = grp[g].n - a < QX__ADAM_PIECE ? grp[g].n - a : QX__ADAM_PIECE;
                    out[np] = (adam_piece){grp[g].off + a, len, grp[g].rate};
                }
    }
    return np;
}

/* One Adam step of the model: the pieces in one parallel region (element-
 * wise, so the bits do not depend on the thread count; a region per group
 * cost ~1 ms each on a loaded machine, where a sleeping thread's wake-up
 * waits for a time slice).
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
                       const float *mu, const adam_piece *pc, size_t npc, int T) {
    size_t d = q->d;
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    double c1 = 1 - pow(b1, (double)t), c2 = 1 - pow(b2, (double)t);
    float e = (float)(eps * sqrt(c2));
    for (size_t m = 1; m < q->M; m++) { /* to centred coordinates */
        size_t o = qx__qinco_off_net(q, m);
        float *W = q->params + o, *gW = g + o, *bias = W + 2 * d * d;
        const float *gb = gW + 2 * d * d;
        for (size_t i = 0; i < d; i++) {
            double s = 0;
            for (size_t j = 0; j < d; j++) {
                s += (double)W[i * 2 * d + d + j] * mu[j];
                gW[i * 2 * d + d + j] -= gb[i] * mu[j];
            }
            bias[i] += (float)s;
        }
    }
    float *p = q->params;
#pragma omp parallel for num_threads(T) schedule(static)
    for (size_t k = 0; k < npc; k++) {
        size_t o = pc[k].off;
        float lrg = lr * pc[k].rate;
        adam_range(p + o, g + o, m1 + o, m2 + o, pc[k].n, (float)(lrg * sqrt(c2) / c1), e);
    }
    for (size_t m = 1; m < q->M; m++) { /* back: b = b' − Wx·mu */
        float *W = q->params + qx__qinco_off_net(q, m), *bias = W + 2 * d * d;
        for (size_t i = 0; i < d; i++) {
            double s = 0;
            for (size_t j = 0; j < d; j++) s += (double)W[i * 2 * d + d + j] * mu[j];
            bias[i] -= (float)s;
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
                     const float *ctx, size_t n, int beam, int A, int T, uint8_t *codes, float *rec,
                     double *out, qx__qinco_encws **ews, qx__qinco_encws **dws) {
    int rc = qx__qinco_encode_ws(q, params, tables, x, ctx, n, beam, A, T, codes, ews);
    if (rc == 0) rc = qx__qinco_decode_ws(q, params, tables, codes, ctx, n, q->M, T, rec, dws);
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

/* A qinx RQ with the options of the initial one, trained on x (n rows). */
static int make_rq(const qx__qinco *q, const float *x, size_t n, qx_quantizer **out) {
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = q->M;
    ro.beam = ro.train_beam = q->opts.rq_beam; /* as `qinx build --quantizer rq --beam B` */
    ro.seed = q->opts.seed;
    ro.threads = q->opts.threads;
    if (q->opts.rq_refine_min >= 0) ro.refine_min_per_codeword = q->opts.rq_refine_min;
    qx_quantizer *rq = NULL;
    int rc = qx_rq_new(&rq, q->d, &ro);
    if (rc == 0) rc = qx_quantizer_train(rq, x, n);
    if (rc == 0 && !qx_rq_codebooks(rq)) rc = qx__fail(QX_EINTERNAL, "qinco: RQ has no codebooks");
    if (rc) {
        qx_quantizer_free(rq);
        return qx__wrap(rc, "qinco: training the RQ");
    }
    *out = rq;
    return 0;
}

static int train_rq(qx__qinco *q, const float *x, size_t n) {
    qx_quantizer *rq = NULL;
    int rc = make_rq(q, x, n, &rq);
    if (rc == 0) rc = qx__qinco_set_base(q, qx_rq_codebooks(rq));
    qx_quantizer_free(rq);
    return rc;
}

typedef struct bufs {
    size_t *perm, *order;
    float *xt, *xv, *best, *grad, *m1, *m2, *tab, *xb, *xs, *resid, *recv, *mu, *init;
    float *ct, *cv, *cb, *x0; /* contexts (raw) of xt, xv, xb; x0: xb's, scaled; NULL without */
    uint8_t *codes, *codesv, *tcodes;
    uint32_t *usage;
    qx__qinco_par par;          /* gradient shards, one per thread */
    adam_piece *adam;           /* Adam's parameter pieces */
    size_t nadam;
    qx__qinco_encws *ews, *mews, *mdws; /* encoder scratch: batches; monitoring encode, decode */
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
    qx__aligned_free(b->init);
    qx__aligned_free(b->ct);
    qx__aligned_free(b->cv);
    qx__aligned_free(b->cb);
    qx__aligned_free(b->x0);
    qx__free(b->codes);
    qx__free(b->codesv);
    qx__free(b->tcodes);
    qx__free(b->usage);
    qx__qinco_par_free(&b->par);
    qx__free(b->adam);
    qx__qinco_encws_free(b->ews);
    qx__qinco_encws_free(b->mews);
    qx__qinco_encws_free(b->mdws);
}

static void *zalloc(size_t n, size_t size) {
    size_t bytes;
    if (!qx__mul(n, size, &bytes)) return NULL;
    void *p = qx__aligned_alloc(bytes ? bytes : 1);
    if (p) memset(p, 0, bytes);
    return p;
}

/* Codes of n raw vectors under the current network (tables recomputed). */
static int encode_current(qx__qinco *q, bufs *b, const float *x, const float *ctx, size_t n, int beam,
                          int T, uint8_t *codes) {
    int rc = qx__qinco_tables_compute(q, q->params, b->tab);
    return rc ? rc : qx__qinco_encode_ws(q, q->params, b->tab, x, ctx, n, beam, q->opts.A, T, codes, &b->ews);
}

/* MSE of the n monitored vectors (hold-out, or training sample) under the
 * current network (tables recomputed); *reserve becomes the LUT fit's
 * reserve at the encoding speed just measured. */
static int monitor_mse(qx__qinco *q, bufs *b, const float *x, const float *ctx, size_t n, int T,
                       size_t nfit, double *mse, double *reserve) {
    int rc = qx__qinco_tables_compute(q, q->params, b->tab);
    double t0 = qx__now();
    if (rc == 0) rc = model_mse(q, q->params, b->tab, x, ctx, n, q->opts.beam, q->opts.A, T, b->codesv,
                               b->recv, mse, &b->mews, &b->mdws);
    if (rc == 0) *reserve = fit_reserve((qx__now() - t0) / (double)n, nfit);
    return rc;
}

/* Recall@1 of the nq first held-out vectors against the first nbase training
 * vectors, both raw, under (params) with the final encoder. With contexts
 * (cv, ct) the vectors are context + residual, the reconstructions context +
 * decoded residual: in an IVF, whole vectors against whole vectors. */
static int model_recall(qx__qinco *q, const float *params, float *tab, const float *xv,
                        const float *cv, size_t nq, const float *xt, const float *ct, size_t nbase,
                        int T, double *recall) {
    size_t d = q->d;
    float *rec = zalloc(nbase * d, sizeof(float));
    float *qf = ct ? zalloc(nq * d, sizeof(float)) : NULL, *bf = ct ? zalloc(nbase * d, sizeof(float)) : NULL;
    uint8_t *codes = zalloc(nbase * q->M, 1);
    int rc = rec && codes && (!ct || (qf && bf)) ? 0 : qx__fail(QX_ENOMEM, "qinco: recall check (%zu vectors)", nbase);
    if (rc == 0) rc = qx__qinco_tables_compute(q, params, tab);
    if (rc == 0) rc = qx__qinco_encode_with(q, params, tab, xt, ct, nbase, q->opts.beam, q->opts.A, T, codes);
    if (rc == 0) rc = qx__qinco_decode_with(q, params, tab, codes, ct, nbase, q->M, T, rec);
    if (rc == 0 && ct) {
        for (size_t i = 0; i < nq * d; i++) qf[i] = xv[i] + cv[i];
        for (size_t i = 0; i < nbase * d; i++) {
            bf[i] = xt[i] + ct[i];
            rec[i] += ct[i];
        }
    }
    if (rc == 0) rc = qx__qinco_recall1(ct ? qf : xv, nq, ct ? bf : xt, rec, nbase, d, recall);
    qx__aligned_free(rec);
    qx__aligned_free(qf);
    qx__aligned_free(bf);
    qx__aligned_free(codes);
    return rc;
}

/* The never-worse-than-RQ check (qx_qinco_opts.fallback): the kept model
 * against the starting RQ on the hold-out, by MSE (the monitored figures)
 * and by recall@1 of held-out vectors against the training vectors. Unless
 * the model wins on both, the quantizer becomes an RQ trained on all n
 * vectors with the initial RQ's options (or the RQ it was built from), so a
 * build gets exactly the codes an RQ build would. */
static int check_or_fallback(qx__qinco *q, bufs *b, const float *x, size_t n, size_t nvalid,
                             size_t ntrain, int given_rq, int T) {
    qx__qinco_check *ck = &q->ck;
    ck->checked = 1;
    ck->nq = nvalid < QX__CHECK_Q ? nvalid : QX__CHECK_Q;
    ck->nbase = ntrain < QX__CHECK_BASE ? ntrain : QX__CHECK_BASE;
    ck->mse_rq = q->st_valid[0];
    ck->mse_qinco = q->st_valid[q->st_best];
    int rc = model_recall(q, b->init, b->tab, b->xv, b->cv, ck->nq, b->xt, b->ct, ck->nbase, T,
                          &ck->recall_rq);
    if (rc) return rc;
    if (q->st_best == 0) {
        ck->recall_qinco = ck->recall_rq;
    } else if ((rc = model_recall(q, q->params, b->tab, b->xv, b->cv, ck->nq, b->xt, b->ct,
                                  ck->nbase, T, &ck->recall_qinco)) != 0) {
        return rc;
    }
    ck->fallback = !(ck->mse_qinco < ck->mse_rq && ck->recall_qinco >= ck->recall_rq);
    if (q->opts.verbose)
        fprintf(stderr, "qinco: held-out check (%zu queries, %zu training vectors): MSE %.6g vs RQ "
                "%.6g, recall@1 %.4f vs RQ %.4f: %s\n", ck->nq, ck->nbase, ck->mse_qinco,
                ck->mse_rq, ck->recall_qinco, ck->recall_rq,
                ck->fallback ? "FALLBACK to the RQ" : "network kept");
    if (!ck->fallback) return 0;
    qx_quantizer *rq = NULL;
    if (given_rq) {
        /* the caller's RQ (qx_qinco_from_rq): the same codebooks, our beam */
        qx_rq_opts ro;
        qx_rq_opts_init(&ro);
        ro.M = q->M;
        ro.beam = q->opts.beam;
        ro.threads = q->opts.threads;
        rc = qx_rq_new(&rq, q->d, &ro);
        if (rc == 0) rc = qx_rq_set_codebooks(rq, q->rq_cb);
    } else {
        rc = make_rq(q, x, n, &rq);
    }
    if (rc == 0) rc = qx__qinco_set_base(q, qx_rq_codebooks(rq));
    if (rc == 0) rc = qx__qinco_finish(q);
    if (rc) {
        qx_quantizer_free(rq);
        return rc;
    }
    qx_quantizer_free(q->rq_fb);
    q->rq_fb = rq;
    return 0;
}

/* Final step: additive codebooks fitted to exact decodings of up to
 * QX__MAX_FIT training vectors (the first rows of the permutation). */
static int fit_lut(qx__qinco *q, const float *x, const float *ctx, const size_t *perm, size_t n, int T) {
    size_t d = q->d, M = q->M, nf = n < QX__MAX_FIT ? n : QX__MAX_FIT;
    float *xf = zalloc(nf * d, sizeof(float)), *rec = zalloc(nf * d, sizeof(float));
    float *cf = ctx ? zalloc(nf * d, sizeof(float)) : NULL;
    uint8_t *codes = zalloc(nf * M, 1);
    int rc = 0;
    if (!xf || !rec || !codes || (ctx && !cf)) rc = qx__fail(QX_ENOMEM, "qinco: LUT fit buffers (%zu vectors)", nf);
    for (size_t i = 0; rc == 0 && i < nf; i++) {
        memcpy(xf + i * d, x + perm[i] * d, d * sizeof(float));
        if (cf) memcpy(cf + i * d, ctx + perm[i] * d, d * sizeof(float));
    }
    if (rc == 0) rc = qx__qinco_encode_with(q, q->params, q->tables, xf, cf, nf, q->opts.beam, q->opts.A, T, codes);
    if (rc == 0) rc = qx__qinco_decode_with(q, q->params, q->tables, codes, cf, nf, M, T, rec);
    if (rc == 0) {
        /* Start from the RQ codebooks: with f = 0 they are the exact answer. */
        memcpy(q->additive, q->rq_cb, M * QX__QK * d * sizeof(float));
        rc = qx__qinco_fit_additive(codes, nf, M, rec, d, T, q->additive);
    }
    qx__aligned_free(xf);
    qx__aligned_free(cf);
    qx__aligned_free(rec);
    qx__aligned_free(codes);
    return rc;
}

int qx__qinco_train(qx_quantizer *base, const float *x, const float *ctx, size_t n) {
    qx__qinco *q = (qx__qinco *)base;
    const qx_qinco_opts *o = &q->opts;
    size_t d = q->d, M = q->M, K = QX__QK, np = q->nparams;
    int T = qx__qinco_threads(q);
    double t0 = qx__now();
    double deadline = o->train_minutes > 0 ? t0 + 60.0 * o->train_minutes : INFINITY;
    rng r = {o->seed * 0x9E3779B97F4A7C15ull + 7};
    bufs b;
    memset(&b, 0, sizeof b);
    int rc = 0, blas_tok = 0;

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
    b.init = zalloc(np, sizeof(float));
    if (!o->context) ctx = NULL; /* a model without contexts ignores them */
    q->ctx = ctx != NULL;
    if (ctx) {
        b.ct = zalloc(ntrain * d, sizeof(float));
        b.cv = zalloc(nvalid ? nvalid * d : 1, sizeof(float));
        b.cb = zalloc(batch * d, sizeof(float));
        b.x0 = zalloc(batch * d, sizeof(float));
    }
    b.codes = qx__malloc(batch * M);
    b.codesv = qx__malloc(nmon * M);
    b.tcodes = qx__malloc(reencode > 1 ? ntrain * M : 1);
    b.usage = qx__calloc(M * K, sizeof(uint32_t));
    qx__free(q->st_valid);
    qx__free(q->st_loss);
    qx__free(q->st_sec);
    qx__free(q->st_gflops);
    qx_quantizer_free(q->rq_fb);
    q->rq_fb = NULL;
    memset(&q->ck, 0, sizeof q->ck);
    q->st_gflops = qx__calloc(E + 1, sizeof(double));
    q->st_valid = qx__calloc(E + 1, sizeof(double));
    q->st_loss = qx__calloc(E + 1, sizeof(double));
    q->st_sec = qx__calloc(E + 1, sizeof(double));
    q->st_epochs = q->st_best = 0;
    q->st_budget = 0;
    if (!b.perm || !b.order || !b.xt || !b.xv || !b.best || !b.grad || !b.m1 || !b.m2 || !b.tab ||
        !b.xb || !b.xs || !b.resid || !b.recv || !b.mu || !b.codes || !b.codesv || !b.tcodes || !b.usage ||
        !b.init || (ctx && (!b.ct || !b.cv || !b.cb || !b.x0)) || !q->st_gflops || !q->st_valid || !q->st_loss || !q->st_sec) {
        bufs_free(&b);
        return qx__fail(QX_ENOMEM, "qinco: training buffers (%zu parameters, %zu vectors)", np, n);
    }
    b.nadam = adam_pieces(q, NULL);
    if (!(b.adam = qx__malloc(b.nadam * sizeof *b.adam))) {
        bufs_free(&b);
        return qx__fail(QX_ENOMEM, "qinco: Adam pieces");
    }
    adam_pieces(q, b.adam);
    if ((rc = qx__qinco_par_alloc(q, batch, T, &b.par)) != 0) {
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
    for (size_t i = 0; ctx && i < nvalid; i++) memcpy(b.cv + i * d, ctx + b.perm[i] * d, d * sizeof(float));
    for (size_t i = 0; ctx && i < ntrain; i++)
        memcpy(b.ct + i * d, ctx + b.perm[nvalid + i] * d, d * sizeof(float));

    /* 1. Base codebooks and f = 0. */
    int given_rq = q->rq_cb != NULL;
    double t_rq = qx__now();
    rc = given_rq ? qx__qinco_set_base(q, q->rq_cb) : train_rq(q, b.xt, ntrain);
    if (rc) goto done;
    /* time kept back for retraining the RQ on all n vectors, should the
     * held-out check fail (scaled from this training's time) */
    double rq_reserve = given_rq || !o->fallback || !nvalid ? 0
                        : (qx__now() - t_rq) * (double)n / (double)ntrain;
    /* the centre of adam_model's x̂ coordinates, in model units (inv_scale is
     * set with the base codebooks) */
    for (size_t j = 0; j < d; j++) {
        double s = 0;
        for (size_t i = 0; i < ntrain; i++) s += b.xt[i * d + j] + (ctx ? b.ct[i * d + j] : 0.0f);
        b.mu[j] = (float)(s / (double)ntrain * q->inv_scale);
    }
    qx__progress(base, "qinco-rq", 1.0);
    /* The sgemm rate with OpenBLAS's threads as the caller set them, then
     * one level of threads: ours (qinco_blas.c) until the epochs are done. */
    if (E > 0) q->ck.sgemm_gflops = qx__qinco_sgemm_rate();
    blas_tok = qx__qinco_blas_single_begin(T);
    for (size_t m = 1; m < M; m++) {
        qx__qinco_net net;
        qx__qinco_net_view(q, q->params, m, &net);
        float sd = (float)sqrt(2.0 / (double)d);
        for (size_t l = 0; l < q->L; l++)
            for (size_t i = 0; i < q->h * d; i++) ((float *)net.W1[l])[i] = sd * (float)rng_normal(&r);
    }
    memcpy(b.init, q->params, np * sizeof(float)); /* the starting RQ, for the check */

    /* 2. Validation of the starting point (the RQ). */
    const float *xmon = nvalid ? b.xv : b.xt, *cmon = nvalid ? b.cv : b.ct;
    size_t nfit = n < QX__MAX_FIT ? n : QX__MAX_FIT;
    double best, reserve, t_mon = qx__now();
    if ((rc = monitor_mse(q, &b, xmon, cmon, nmon, T, nfit, &best, &reserve)) != 0) goto done;
    /* the check encodes up to QX__CHECK_BASE training vectors twice */
    size_t nbase_ck = ntrain < QX__CHECK_BASE ? ntrain : QX__CHECK_BASE;
    double ck_reserve = o->fallback && nvalid
                        ? 2.5 * (qx__now() - t_mon) / (double)nmon * (double)nbase_ck : 0;
    reserve += ck_reserve + rq_reserve;
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
        for (size_t i = 0; i < nb * d; i++) {
            b.xs[i] = (b.xt[i] + (ctx ? b.ct[i] : 0.0f)) * q->inv_scale;
            if (ctx) b.x0[i] = b.ct[i] * q->inv_scale;
        }
        if ((rc = encode_current(q, &b, b.xt, b.ct, nb, train_beam, T, b.codes)) != 0 ||
            (rc = qx__qinco_loss_grad_par(q, q->params, b.xs, b.x0, b.codes, nb, 1.0f, &b.par, b.grad,
                                          &loss, sl, NULL)) != 0)
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
    /* Throughput: matrix FLOPs counted per epoch (qinco_check.c) against
     * the sgemm rate measured now, and CPU seconds against wall seconds. */
    double f_tab = (double)(M - 1) * 2.0 * K * d * (double)(d + (q->L ? q->h : 0));
    double f_enc_t = qx__qinco_flops_encode(q, train_beam, o->A);
    double f_mon = f_tab + (double)nmon * (qx__qinco_flops_encode(q, o->beam, o->A) +
                                           qx__qinco_flops_decode(q));
    double f_row = qx__qinco_flops_train_row(q), f_all = 0, t_all = 0, cpu_all = 0;
    double t_loop = qx__now();
    for (size_t i = 0; i < ntrain; i++) b.order[i] = i;
    for (size_t ep = 0; ep < E && !stop; ep++) {
        double t_ep = qx__now(), cpu_ep = qx__cpu_seconds(), f_ep = f_mon;
        double s_enc = 0, s_grad = 0, s_adam = 0, s_mon = 0, tk = 0; /* where the epoch went */
        if (reencode > 1 && ep % reencode == 0) f_ep += f_tab + (double)ntrain * f_enc_t;
        shuffle(b.order, ntrain, &r);
        memset(b.usage, 0, M * K * sizeof(uint32_t));
        double loss_sum = 0, mse_sum = 0;
        size_t seen = 0, last_nb = 0;
        /* Codes of the whole training set under the current network, every
         * reencode epochs; the batches in between regress on them. */
        if (reencode > 1 && ep % reencode == 0 &&
            (rc = encode_current(q, &b, b.xt, b.ct, ntrain, train_beam, T, b.tcodes)) != 0)
            goto done;
        for (size_t b0 = 0; b0 < ntrain; b0 += batch) {
            size_t nb = ntrain - b0 < batch ? ntrain - b0 : batch;
            for (size_t i = 0; i < nb; i++) {
                const float *src = b.xt + b.order[b0 + i] * d;
                memcpy(b.xb + i * d, src, d * sizeof(float));
                for (size_t j = 0; j < d; j++) b.xs[i * d + j] = src[j] * q->inv_scale;
                if (ctx) {
                    const float *cs = b.ct + b.order[b0 + i] * d;
                    memcpy(b.cb + i * d, cs, d * sizeof(float));
                    for (size_t j = 0; j < d; j++) {
                        b.x0[i * d + j] = cs[j] * q->inv_scale;
                        b.xs[i * d + j] += b.x0[i * d + j];
                    }
                }
                if (reencode > 1) memcpy(b.codes + i * M, b.tcodes + b.order[b0 + i] * M, M);
            }
            if (reencode == 1 &&
                (tk = qx__now(), rc = encode_current(q, &b, b.xb, b.cb, nb, train_beam, T, b.codes)) != 0)
                goto done;
            f_ep += (double)nb * f_row + (reencode == 1 ? f_tab + (double)nb * f_enc_t : 0);
            double loss, step_loss[QX_MAX_STEPS];
            if (reencode == 1) s_enc += qx__now() - tk;
            tk = qx__now();
            rc = qx__qinco_loss_grad_par(q, q->params, b.xs, b.x0, b.codes, nb, sw, &b.par,
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
            s_grad += qx__now() - tk;
            tk = qx__now();
            adam_model(q, b.grad, b.m1, b.m2, t, lr_at(o, t - 1, frac), b.mu, b.adam, b.nadam, T);
            s_adam += qx__now() - tk;
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
        tk = qx__now();
        if ((rc = monitor_mse(q, &b, xmon, cmon, nmon, T, nfit, &vm, &reserve)) != 0) goto done;
        s_mon = qx__now() - tk;
        reserve += ck_reserve + rq_reserve;
        q->st_epochs = ep + 1;
        q->st_valid[ep + 1] = vm;
        q->st_loss[ep + 1] = seen ? loss_sum / (double)seen : NAN;
        q->st_sec[ep + 1] = qx__now() - t0;
        if (vm < best) {
            best = vm;
            q->st_best = ep + 1;
            memcpy(b.best, q->params, np * sizeof(float));
        }
        double now = qx__now(), dt = now - t_ep, dcpu = qx__cpu_seconds() - cpu_ep;
        q->st_gflops[ep + 1] = dt > 0 ? f_ep / dt * 1e-9 : 0;
        f_all += f_ep;
        t_all += dt;
        cpu_all += dcpu;
        /* done: epochs over the plan, or time over the budget */
        double done_f = (double)(ep + 1) / (double)E;
        if (isfinite(deadline)) {
            double avail = deadline - reserve - t_loop, ft = avail > 0 ? (now - t_loop) / avail : 1;
            done_f = ft > done_f ? ft : done_f;
        }
        if (done_f > 1) done_f = 1;
        qx__progress(base, "qinco-train", done_f);
        if (o->verbose) {
            char bar[21];
            int fill = (int)(20 * done_f);
            for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
            bar[20] = 0;
            double eta = done_f > 0 ? (now - t_loop) * (1 - done_f) / done_f : 0;
            fprintf(stderr, "qinco: [%s] epoch %zu  ETA %.0f s  %s MSE %.6g%s  loss %.6g "
                    "train_mse %.6g dead %zu lr %.3g  %.1f GFLOP/s (%.0f%% of sgemm %.1f) "
                    "cores %.2f  %.1f s  (encode %.2f grad %.2f adam %.2f monitor %.2f s)\n",
                    bar, ep + 1, eta,
                    nvalid ? "held-out" : "monitored (training)", vm,
                    q->st_best == ep + 1 ? " *" : "", q->st_loss[ep + 1],
                    seen ? mse_sum / (double)seen : NAN, dead, (double)lr_at(o, t - 1, frac),
                    q->st_gflops[ep + 1],
                    q->ck.sgemm_gflops > 0 ? 100 * q->st_gflops[ep + 1] / q->ck.sgemm_gflops : 0,
                    q->ck.sgemm_gflops, dt > 0 ? dcpu / dt : 0, now - t0, s_enc, s_grad,
                    s_adam, s_mon);
        }
    }
    q->ck.train_gflops = t_all > 0 ? f_all / t_all * 1e-9 : 0;
    q->ck.cores_used = t_all > 0 ? cpu_all / t_all : 0;
    if (stop && o->verbose && q->st_budget)
        fprintf(stderr, "qinco: time budget reached after %zu epochs, keeping epoch %zu\n",
                q->st_epochs, q->st_best);

    /* 4. Best parameters, the check against the RQ, tables, additive
     * codebooks (after a fallback the RQ's own). */
    qx__qinco_blas_single_end(blas_tok);
    blas_tok = 0;
    memcpy(q->params, b.best, np * sizeof(float));
    if ((rc = qx__qinco_finish(q)) != 0) goto done;
    if (o->fallback && nvalid &&
        (rc = check_or_fallback(q, &b, x, n, nvalid, ntrain, given_rq, T)) != 0)
        goto done;
    if (!q->rq_fb) rc = fit_lut(q, x, ctx, b.perm, n, T);
    qx__progress(base, "qinco-lut", 1.0);
    q->st_total = qx__now() - t0;
    if (o->verbose && rc == 0)
        fprintf(stderr, "qinco: trained in %.1f s (best epoch %zu, valid MSE %.6g%s); epochs at "
                "%.1f GFLOP/s, %.0f%% of the sgemm rate %.1f GFLOP/s, %.2f cores\n", q->st_total,
                q->st_best, q->st_valid[q->st_best], q->rq_fb ? ", fell back to the RQ" : "",
                q->ck.train_gflops,
                q->ck.sgemm_gflops > 0 ? 100 * q->ck.train_gflops / q->ck.sgemm_gflops : 0,
                q->ck.sgemm_gflops, q->ck.cores_used);
done:
    qx__qinco_blas_single_end(blas_tok);
    bufs_free(&b);
    return rc;
}
