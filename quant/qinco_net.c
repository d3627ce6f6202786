/* quant/qinco_net.c — parameter layout and the training pass (forward and
 * hand-written backward) of the QINCo-style quantizer (arXiv 2401.14732).
 *
 * Decisions:
 * 1. Loss = Σ_m w_m ||x − x̂_m||² (w = step_weight for m < M−1, 1 for the
 *    last step), back-propagated through the whole recursion: x̂_{m-1} is
 *    an input of f_m, so a step's parameters also answer for the later
 *    steps' errors. (Session-2 code held x̂ constant, each step regressing
 *    its own residual: that pulls the jointly refined RQ codebooks towards
 *    greedy per-step centroids and raised the final training MSE on
 *    siftsmall 8 B from 14.4k to 15.1k in 5 epochs.) Every step's
 *    activations are kept for the backward pass: M × (2d + (L+1)d + Lh)
 *    floats per row.
 * 2. Everything is batched through cblas_sgemm over the nb rows of a batch;
 *    the per-row work left (gather of codewords, ReLU masks, scatter-add of
 *    codebook gradients) is sequential, so a gradient is deterministic.
 * 3. Post-ReLU activations are stored instead of pre-activations: the ReLU
 *    mask is (R > 0) either way and R is the sgemm operand of both passes.
 */
#include <cblas.h>
#include <string.h>

#include "qinco_impl.h"

size_t qx__qinco_net_size(size_t d, size_t L, size_t h) {
    return 2 * d * d + d + L * 2 * h * d;
}

size_t qx__qinco_param_count(size_t d, size_t M, size_t L, size_t h) {
    return M * QX__QK * d + (M - 1) * qx__qinco_net_size(d, L, h);
}

size_t qx__qinco_off_cb(const qx__qinco *q, size_t m) {
    return m == 0 ? 0 : QX__QK * q->d + (m - 1) * (QX__QK * q->d + q->net_size);
}

size_t qx__qinco_off_net(const qx__qinco *q, size_t m) {
    return qx__qinco_off_cb(q, m) + QX__QK * q->d;
}

void qx__qinco_net_view(const qx__qinco *q, const float *params, size_t m, qx__qinco_net *net) {
    size_t d = q->d, h = q->h;
    const float *p = params + qx__qinco_off_net(q, m);
    net->Wc = p;
    net->bc = p + 2 * d * d;
    p += 2 * d * d + d;
    for (size_t l = 0; l < q->L; l++) {
        net->W1[l] = p;
        net->W2[l] = p + h * d;
        p += 2 * h * d;
    }
}

int qx__qinco_work_alloc(const qx__qinco *q, size_t rows, qx__qinco_work *w) {
    size_t d = q->d, h = q->h, L = q->L, M = q->M, nd, nh, ndm, nhm;
    memset(w, 0, sizeof *w);
    if (!qx__mul3(rows, d, sizeof(float), &nd) || !qx__mul3(rows, h ? h : 1, sizeof(float), &nh) ||
        !qx__mul(nd, M, &ndm) || !qx__mul(nh, M, &nhm) || !qx__mul(ndm, 2 * (L + 2), &ndm) ||
        !qx__mul(nhm, L ? L : 1, &nhm))
        return qx__fail(QX_ENOMEM, "qinco: work buffer for %zu rows overflows", rows);
    w->cap = rows;
    /* every step's activations are kept for the backward pass */
    w->U = qx__aligned_alloc(2 * nd * M);
    w->Z = qx__aligned_alloc((L + 1) * nd * M);
    w->H = qx__aligned_alloc(nhm);
    w->G = qx__aligned_alloc(nd);
    w->dH = qx__aligned_alloc(nh);
    w->dU = qx__aligned_alloc(2 * nd);
    w->xh = qx__aligned_alloc((M + 1) * nd);
    w->r = qx__aligned_alloc(nd);
    w->cp = qx__aligned_alloc(nd * M);
    if (!w->U || !w->Z || !w->H || !w->G || !w->dH || !w->dU || !w->xh || !w->r || !w->cp) {
        qx__qinco_work_free(w);
        return qx__fail(QX_ENOMEM, "qinco: work buffers for %zu rows", rows);
    }
    return 0;
}

void qx__qinco_work_free(qx__qinco_work *w) {
    qx__aligned_free(w->U);
    qx__aligned_free(w->Z);
    qx__aligned_free(w->H);
    qx__aligned_free(w->G);
    qx__aligned_free(w->dH);
    qx__aligned_free(w->dU);
    qx__aligned_free(w->xh);
    qx__aligned_free(w->r);
    qx__aligned_free(w->cp);
    memset(w, 0, sizeof *w);
}

/* Step m's activations inside the work buffers (capacity rows each). */
typedef struct acts {
    float *U, *Z, *H, *cp, *xh; /* xh: x̂_{m-1}, the input of step m */
} acts;

static acts step_acts(const qx__qinco *q, const qx__qinco_work *w, size_t m) {
    size_t c = w->cap, d = q->d, h = q->h, L = q->L;
    acts a = {w->U + m * c * 2 * d, w->Z + m * c * (L + 1) * d, w->H + m * c * (L ? L : 1) * h,
              w->cp + m * c * d, w->xh + m * c * d};
    return a;
}

/* Forward of step m >= 1 for nb rows: fills U, Z (L+1 layers), H
 * (post-ReLU) and cp = c' of step m from its input x̂_{m-1}. */
static void step_forward(const qx__qinco *q, const float *params, size_t m, const uint8_t *codes,
                         size_t nb, const acts *a) {
    size_t d = q->d, h = q->h, L = q->L, M = q->M;
    const float *cb = params + qx__qinco_off_cb(q, m);
    qx__qinco_net net;
    qx__qinco_net_view(q, params, m, &net);
    for (size_t i = 0; i < nb; i++) {
        memcpy(a->U + i * 2 * d, cb + (size_t)codes[i * M + m] * d, d * sizeof(float));
        memcpy(a->U + i * 2 * d + d, a->xh + i * d, d * sizeof(float));
        memcpy(a->Z + i * d, net.bc, d * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)d, (int)(2 * d), 1.0f,
                a->U, (int)(2 * d), net.Wc, (int)(2 * d), 1.0f, a->Z, (int)d);
    for (size_t l = 0; l < L; l++) {
        float *Zl = a->Z + l * nb * d, *Zn = Zl + nb * d, *R = a->H + l * nb * h;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)h, (int)d, 1.0f, Zl,
                    (int)d, net.W1[l], (int)d, 0.0f, R, (int)h);
#pragma omp simd
        for (size_t j = 0; j < nb * h; j++) R[j] = R[j] > 0 ? R[j] : 0;
        memcpy(Zn, Zl, nb * d * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)d, (int)h, 1.0f, R,
                    (int)h, net.W2[l], (int)h, 1.0f, Zn, (int)d);
    }
    const float *ZL = a->Z + L * nb * d, rho = q->rho[m];
    for (size_t i = 0; i < nb; i++)
        for (size_t j = 0; j < d; j++)
            a->cp[i * d + j] = rho * (a->U[i * 2 * d + j] + ZL[i * d + j]);
}

/* Backward of step m >= 1; w->G holds dL/d(ĉ + z) = rho_m dL/dc' on entry
 * (and is clobbered); on return w->dU holds dL/d[c ; x̂_{m-1}] through the
 * network (its second half is the path back to the earlier steps). */
static void step_backward(const qx__qinco *q, const float *params, size_t m,
                          const uint8_t *codes, size_t nb, const acts *a, qx__qinco_work *w,
                          float *grad) {
    size_t d = q->d, h = q->h, L = q->L, M = q->M;
    qx__qinco_net net, gnet;
    qx__qinco_net_view(q, params, m, &net);
    qx__qinco_net_view(q, grad, m, &gnet);
    float *dcb = grad + qx__qinco_off_cb(q, m);
    float *dWc = (float *)gnet.Wc, *dbc = (float *)gnet.bc;
    /* c' = c + z_L: the direct path to the codebook. */
    for (size_t i = 0; i < nb; i++) {
        float *row = dcb + (size_t)codes[i * M + m] * d;
        for (size_t j = 0; j < d; j++) row[j] += w->G[i * d + j];
    }
    for (size_t l = L; l-- > 0;) {
        const float *Zl = a->Z + l * nb * d, *R = a->H + l * nb * h;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)h, (int)nb, 1.0f, w->G,
                    (int)d, R, (int)h, 1.0f, (float *)gnet.W2[l], (int)h);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)h, (int)d, 1.0f,
                    w->G, (int)d, net.W2[l], (int)h, 0.0f, w->dH, (int)h);
#pragma omp simd
        for (size_t j = 0; j < nb * h; j++) w->dH[j] = R[j] > 0 ? w->dH[j] : 0;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)h, (int)d, (int)nb, 1.0f,
                    w->dH, (int)h, Zl, (int)d, 1.0f, (float *)gnet.W1[l], (int)d);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)d, (int)h, 1.0f,
                    w->dH, (int)h, net.W1[l], (int)d, 1.0f, w->G, (int)d);
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)(2 * d), (int)nb, 1.0f,
                w->G, (int)d, a->U, (int)(2 * d), 1.0f, dWc, (int)(2 * d));
    for (size_t i = 0; i < nb; i++)
        for (size_t j = 0; j < d; j++) dbc[j] += w->G[i * d + j];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)(2 * d), (int)d, 1.0f,
                w->G, (int)d, net.Wc, (int)(2 * d), 0.0f, w->dU, (int)(2 * d));
    for (size_t i = 0; i < nb; i++) {
        float *row = dcb + (size_t)codes[i * M + m] * d;
        for (size_t j = 0; j < d; j++) row[j] += w->dU[i * 2 * d + j];
    }
}

int qx__qinco_loss_grad(const qx__qinco *q, const float *params, const float *xs,
                        const float *x0, const uint8_t *codes, size_t nb, float step_weight, qx__qinco_work *w,
                        float *grad, double *loss, double *step_loss, float *resid) {
    size_t d = q->d, M = q->M;
    if (nb == 0 || nb > w->cap) return qx__fail(QX_EINTERNAL, "qinco: batch %zu > work %zu", nb, w->cap);
    memset(grad, 0, q->nparams * sizeof(float));
    if (x0) memcpy(w->xh, x0, nb * d * sizeof(float));
    else memset(w->xh, 0, nb * d * sizeof(float));
    /* Forward: x̂_m = x̂_{m-1} + c'_m, every step's activations kept. */
    double total = 0;
    for (size_t m = 0; m < M; m++) {
        acts a = step_acts(q, w, m);
        if (resid)
            for (size_t i = 0; i < nb; i++)
                for (size_t j = 0; j < d; j++)
                    resid[(i * M + m) * d + j] = xs[i * d + j] - a.xh[i * d + j];
        if (m == 0) {
            for (size_t i = 0; i < nb; i++)
                for (size_t j = 0; j < d; j++)
                    a.cp[i * d + j] = q->rho[0] * params[(size_t)codes[i * M] * d + j];
        } else {
            step_forward(q, params, m, codes, nb, &a);
        }
        float *next = w->xh + (m + 1) * w->cap * d;
        double sl = 0;
#pragma omp simd reduction(+ : sl)
        for (size_t j = 0; j < nb * d; j++) {
            next[j] = a.xh[j] + a.cp[j];
            double e = (double)xs[j] - next[j];
            sl += e * e;
        }
        sl /= (double)nb;
        total += (m + 1 == M ? 1.0 : (double)step_weight) * sl;
        if (step_loss) step_loss[m] = sl;
    }
    /* Backward: g = dL/dx̂_m, accumulated from the last step down; the loss
     * of step m enters at x̂_m, and g flows to x̂_{m-1} both directly (x̂_m =
     * x̂_{m-1} + c'_m) and through step m's network input. */
    float *g = w->r;
    memset(g, 0, nb * d * sizeof(float));
    for (size_t m = M; m-- > 0;) {
        acts a = step_acts(q, w, m);
        const float *xm = w->xh + (m + 1) * w->cap * d;
        float wt = 2.0f * (m + 1 == M ? 1.0f : step_weight) / (float)nb;
        if (wt != 0)
#pragma omp simd
            for (size_t j = 0; j < nb * d; j++) g[j] += wt * (xm[j] - xs[j]);
        const float rho = q->rho[m];
        if (m == 0) {
            for (size_t i = 0; i < nb; i++) {
                float *row = grad + (size_t)codes[i * M] * d;
                for (size_t j = 0; j < d; j++) row[j] += rho * g[i * d + j];
            }
            break;
        }
#pragma omp simd
        for (size_t j = 0; j < nb * d; j++) w->G[j] = rho * g[j];
        step_backward(q, params, m, codes, nb, &a, w, grad);
        for (size_t i = 0; i < nb; i++)
            for (size_t j = 0; j < d; j++) g[i * d + j] += w->dU[i * 2 * d + d + j];
    }
    if (loss) *loss = total;
    return 0;
}

/* --- data-parallel pass ---------------------------------------------------
 * The batch is cut into T contiguous shards, one per thread; each runs the
 * pass above on its rows (single-threaded sgemm: OpenBLAS's own threads are
 * off, qinco_blas.c) into its own gradient, and the gradients are summed in
 * shard order, weighted by shard size, over parameter ranges in parallel.
 * Fixed shards and a fixed summation order: the same T gives the same bits. */
int qx__qinco_par_alloc(const qx__qinco *q, size_t rows, int T, qx__qinco_par *p) {
    memset(p, 0, sizeof *p);
    if (T < 1) T = 1;
    if (T > QX_QINCO_MAX_SHARDS) T = QX_QINCO_MAX_SHARDS;
    if ((size_t)T > rows) T = rows ? (int)rows : 1;
    p->w = qx__calloc((size_t)T, sizeof *p->w);
    p->g = qx__calloc((size_t)T, sizeof *p->g);
    if (!p->w || !p->g) {
        qx__free(p->w);
        qx__free(p->g);
        memset(p, 0, sizeof *p);
        return qx__fail(QX_ENOMEM, "qinco: %d training shards", T);
    }
    size_t per = (rows + (size_t)T - 1) / (size_t)T;
    for (; p->T < T; p->T++) {
        int rc = qx__qinco_work_alloc(q, per, &p->w[p->T]);
        if (rc == 0 && !(p->g[p->T] = qx__aligned_alloc(q->nparams * sizeof(float)))) {
            qx__qinco_work_free(&p->w[p->T]);
            rc = qx__fail(QX_ENOMEM, "qinco: shard gradient (%zu parameters)", q->nparams);
        }
        if (rc) {
            qx__qinco_par_free(p);
            return rc;
        }
    }
    return 0;
}

void qx__qinco_par_free(qx__qinco_par *p) {
    for (int t = 0; t < p->T; t++) {
        qx__qinco_work_free(&p->w[t]);
        qx__aligned_free(p->g[t]);
    }
    qx__free(p->w);
    qx__free(p->g);
    memset(p, 0, sizeof *p);
}

int qx__qinco_loss_grad_par(const qx__qinco *q, const float *params, const float *xs,
                            const float *x0, const uint8_t *codes, size_t nb, float step_weight, qx__qinco_par *p,
                            float *grad, double *loss, double *step_loss, float *resid) {
    size_t d = q->d, M = q->M, np = q->nparams;
    int T = p->T;
    if ((size_t)T > nb) T = (int)nb;
    if (nb == 0 || (nb + (size_t)T - 1) / (size_t)T > p->w[0].cap)
        return qx__fail(QX_EINTERNAL, "qinco: batch %zu > %d shards of %zu", nb, p->T, p->w[0].cap);
    if (T == 1) /* bit for bit the sequential pass */
        return qx__qinco_loss_grad(q, params, xs, x0, codes, nb, step_weight, &p->w[0], grad, loss,
                                   step_loss, resid);
    double sl[QX_QINCO_MAX_SHARDS][QX_MAX_STEPS], ls[QX_QINCO_MAX_SHARDS];
    size_t r0[QX_QINCO_MAX_SHARDS + 1];
    if (T > QX_QINCO_MAX_SHARDS) T = QX_QINCO_MAX_SHARDS;
    for (int t = 0; t <= T; t++) r0[t] = nb * (size_t)t / (size_t)T;
    int tok = qx__qinco_blas_single_begin(T);
#pragma omp parallel for num_threads(T) schedule(static, 1)
    for (int t = 0; t < T; t++) {
        size_t a = r0[t], cnt = r0[t + 1] - a;
        qx__qinco_loss_grad(q, params, xs + a * d, x0 ? x0 + a * d : NULL, codes + a * M, cnt, step_weight, &p->w[t],
                            p->g[t], &ls[t], sl[t], resid ? resid + a * M * d : NULL);
    }
    float wt[QX_QINCO_MAX_SHARDS];
    for (int t = 0; t < T; t++) wt[t] = (float)((double)(r0[t + 1] - r0[t]) / (double)nb);
    float *const *g = p->g;
#pragma omp parallel for num_threads(T) schedule(static)
    for (size_t i = 0; i < np; i++) {
        float s = wt[0] * g[0][i];
        for (int t = 1; t < T; t++) s += wt[t] * g[t][i];
        grad[i] = s;
    }
    qx__qinco_blas_single_end(tok);
    double tl = 0;
    for (int t = 0; t < T; t++) tl += wt[t] * ls[t];
    if (loss) *loss = tl;
    if (step_loss)
        for (size_t m = 0; m < M; m++) {
            double v = 0;
            for (int t = 0; t < T; t++) v += wt[t] * sl[t][m];
            step_loss[m] = v;
        }
    return 0;
}
