/* qinx/eval.h — search quality against ground truth, one definition for the
 * CLI, the bench and the tests.
 *   r1, r10, r100: fraction of queries whose true nearest neighbour (ground
 *                  truth row 0) is among the first 1 / 10 / 100 results
 *   r10at10:       mean overlap of the first 10 results with the true 10
 * A figure that k (results per query) or gt_k cannot support is NaN.
 * Thread-safe (pure function).
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_EVAL_H
#define QINX_EVAL_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>

QX_BEGIN_DECLS

typedef struct qx_recall {
    double r1, r10, r100, r10at10;
} qx_recall;

/* ids: nq*k results (best first, -1 padding); gt: nq*gt_k true ids; out:
 * the figures. Returns 0, or QX_EINVAL (NULL argument with nq > 0, k or
 * gt_k = 0). */
int qx_recall_compute(const int64_t *ids, size_t k, const int32_t *gt, size_t gt_k, size_t nq,
                      qx_recall *out);

/* Largest dimension qx_gauss_rd accepts (its d x d covariance is in doubles). */
#define QX_RD_MAX_DIM 4096

/* A reference for quantizer MSE: the distortion-rate function of a Gaussian
 * source with the covariance of x, i.e. the smallest mean ||x - x^||^2 that
 * any code of bits[i] bits per vector reaches on such a source (reverse
 * water-filling over the covariance's eigenvalues, Cover & Thomas, Elements
 * of Information Theory, 10.3.3). A Gaussian is the hardest source for a given
 * covariance, so real data can go below it by as much as it is not Gaussian
 * (clusters, manifolds); a quantizer near or below it has already used the
 * second-order structure.
 *   x:        n rows of d floats (finite), n >= 2, 1 <= d <= QX_RD_MAX_DIM
 *   bits:     nb code sizes in bits per vector (>= 0)
 *   dist:     out, nb distortions (same units as an MSE of ||x - x^||^2)
 *   variance: out (may be NULL), the total variance (trace of the covariance)
 * Returns 0 or QX_EINVAL / QX_EDIM / QX_ENOMEM. Thread-safe; uses BLAS and
 * LAPACK (dsyev). */
int qx_gauss_rd(const float *x, size_t n, size_t d, const double *bits, size_t nb, double *dist,
                double *variance);

QX_END_DECLS
#endif
