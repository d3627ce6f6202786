/* qinx/kmeans.h — k-means clustering (FAISS's Clustering through its C API).
 * Thread-safe; uses OpenMP threads inside FAISS.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_KMEANS_H
#define QINX_KMEANS_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>

QX_BEGIN_DECLS

typedef struct qx_kmeans_opts {
    int niter;        /* iterations (default 25) */
    uint64_t seed;    /* default 1234 */
    size_t max_points_per_centroid; /* subsample above k * this (default 256) */
    int spherical;    /* normalise centroids (default 0) */
    int progressive_dim_steps; /* 0 (default): Lloyd on all d dimensions. N > 0:
                                * PCA, then k-means on the first d_i principal
                                * dimensions, d_i growing geometrically to d in
                                * N stages, each started from the last
                                * (FAISS's ProgressiveDimClustering).
                                * Lloyd is used when n <= d. */
} qx_kmeans_opts;

void qx_kmeans_opts_init(qx_kmeans_opts *opts);

/* Cluster n d-vectors x into k centroids (k*d floats, caller-allocated).
 * n must be >= k. If assign is not NULL it receives the nearest centroid of
 * each of the n vectors. Returns 0 or a QX_E* code (FAISS errors are caught
 * and reported with their message). */
int qx_kmeans(const float *x, size_t n, size_t d, size_t k, const qx_kmeans_opts *opts,
              float *centroids, uint32_t *assign);

/* Nearest centroid (exact L2) of each of n vectors among k centroids;
 * dist may be NULL. Uses BLAS in blocks. */
int qx_assign_nearest(const float *x, size_t n, const float *centroids, size_t k, size_t d,
                      uint32_t *assign, float *dist);

QX_END_DECLS
#endif
