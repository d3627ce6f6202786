/* verify/rd_bound.c — the Gaussian distortion-rate reference of qinx/eval.h.
 *
 * 1. Covariance in blocks: rows are centred on the mean (computed in double)
 *    and ROWS at a time go through one ssyrk into a float block, summed in
 *    double — float accumulation over 331k rows would lose the small
 *    eigenvalues that decide the bound at high rates.
 * 2. Eigenvalues with LAPACK dsyev (eigenvalues only), as FAISS's OPQ does
 *    with its own LAPACK calls.
 * 3. Reverse water-filling: D(R) = sum_i min(lambda_i, theta), where theta
 *    solves sum_i max(0, log2(lambda_i / theta) / 2) = R; the left side is
 *    monotone in theta, so theta is found by bisection in log space.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "internal.h"
#include "qinx/eval.h"

#define ROWS 4096

/* LAPACK (Fortran ABI), linked with OpenBLAS */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                   double *w, double *work, const int *lwork, int *info);

static double water_fill(const double *ev, size_t d, double bits) {
    double hi = 0, lo;
    for (size_t i = 0; i < d; i++) hi = ev[i] > hi ? ev[i] : hi;
    if (hi <= 0) return 0;
    lo = hi * 1e-300;
    for (int it = 0; it < 400 && hi > lo * (1 + 1e-15); it++) {
        double th = sqrt(lo) * sqrt(hi), r = 0;
        for (size_t i = 0; i < d; i++)
            if (ev[i] > th) r += 0.5 * log2(ev[i] / th);
        if (r > bits) lo = th;
        else hi = th;
    }
    double th = hi, D = 0; /* hi: the rate at theta = hi is <= bits */
    for (size_t i = 0; i < d; i++) D += ev[i] < th ? (ev[i] > 0 ? ev[i] : 0) : th;
    return D;
}

static int covariance(const float *x, size_t n, size_t d, double *cov) {
    double *mu = qx__calloc(d, sizeof *mu);
    float *blk = qx__malloc(sizeof(float) * ROWS * d), *c = qx__malloc(sizeof(float) * d * d);
    if (!mu || !blk || !c) {
        qx__free(mu);
        qx__free(blk);
        qx__free(c);
        return qx__fail(QX_ENOMEM, "gauss rd: %zu x %zu covariance", d, d);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) mu[j] += x[i * d + j];
    for (size_t j = 0; j < d; j++) mu[j] /= (double)n;
    memset(cov, 0, sizeof(double) * d * d);
    for (size_t i0 = 0; i0 < n; i0 += ROWS) {
        size_t nr = n - i0 < ROWS ? n - i0 : ROWS;
        for (size_t i = 0; i < nr; i++)
            for (size_t j = 0; j < d; j++) blk[i * d + j] = (float)(x[(i0 + i) * d + j] - mu[j]);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)nr, 1.0f, blk, (int)d, 0.0f,
                    c, (int)d);
        for (size_t j = 0; j < d; j++)
            for (size_t k = j; k < d; k++) cov[j * d + k] += c[j * d + k];
    }
    for (size_t j = 0; j < d; j++)
        for (size_t k = j; k < d; k++) cov[k * d + j] = cov[j * d + k] /= (double)n;
    qx__free(mu);
    qx__free(blk);
    qx__free(c);
    return 0;
}

int qx_gauss_rd(const float *x, size_t n, size_t d, const double *bits, size_t nb, double *dist,
                double *variance) {
    if (!x || !dist || (nb && !bits)) return qx__fail(QX_EINVAL, "gauss rd: NULL argument");
    if (d < 1 || d > QX_RD_MAX_DIM)
        return qx__fail(QX_EDIM, "gauss rd: dimension %zu outside 1..%d", d, QX_RD_MAX_DIM);
    if (n < 2) return qx__fail(QX_EINVAL, "gauss rd: %zu vectors, need at least 2", n);
    for (size_t i = 0; i < nb; i++)
        if (!(bits[i] >= 0) || isinf(bits[i]))
            return qx__fail(QX_EINVAL, "gauss rd: %g bits", bits[i]);
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(x[i])) return qx__fail(QX_EINVAL, "gauss rd: vector %zu is not finite", i / d);
    double *cov = qx__malloc(sizeof(double) * d * d), *ev = qx__malloc(sizeof(double) * d), wq;
    int rc = cov && ev ? covariance(x, n, d, cov) : qx__fail(QX_ENOMEM, "gauss rd: %zu x %zu", d, d);
    int nd = (int)d, lwork = -1, info = 0;
    double *work = NULL;
    if (rc == 0) dsyev_("N", "U", &nd, cov, &nd, ev, &wq, &lwork, &info); /* workspace query */
    if (rc == 0 && info == 0) {
        lwork = (int)wq;
        if (!(work = qx__malloc(sizeof(double) * (size_t)lwork)))
            rc = qx__fail(QX_ENOMEM, "gauss rd: LAPACK workspace");
        else dsyev_("N", "U", &nd, cov, &nd, ev, work, &lwork, &info);
    }
    if (rc == 0 && info != 0) rc = qx__fail(QX_EINTERNAL, "gauss rd: dsyev failed (info %d)", info);
    if (rc == 0) {
        double tot = 0;
        for (size_t i = 0; i < d; i++) tot += ev[i] > 0 ? ev[i] : 0;
        for (size_t i = 0; i < nb; i++) dist[i] = water_fill(ev, d, bits[i]);
        if (variance) *variance = tot;
    }
    qx__free(cov);
    qx__free(ev);
    qx__free(work);
    return rc;
}
