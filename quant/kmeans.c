/* quant/kmeans.c — k-means (qinx/kmeans.h): FAISS's Clustering through its C
 * API, and exact nearest-centroid assignment with OpenBLAS.
 *
 * Lloyd's algorithm with FAISS's k-means++-free random init and empty-cluster
 * splitting (faiss::Clustering); we only set its parameters and translate its
 * exceptions into QX_EFAISS with FAISS's message.
 *
 * Decisions:
 * 1. Determinism: the seed drives FAISS's initial sample and subsampling; the
 *    assignment index is a fresh IndexFlatL2 (exact), and FAISS's centroid
 *    update partitions work by centroid (and BLAS splits rows, not sums), so
 *    a seed gives bit-identical centroids run after run and whatever the
 *    thread count (checked: OpenMP 1/2 x OpenBLAS 1/2 threads on 20000 x 32,
 *    k = 256). The 64-bit seed is folded to the 31 bits FAISS takes.
 * 2. min_points_per_centroid is set to 1: in FAISS it only triggers a warning
 *    printed to stderr ("please provide at least …"), which would flood the
 *    output of RQ training (k = 256 per step on modest training sets).
 * 3. The returned assignment is recomputed by qx_assign_nearest on the final
 *    centroids, not taken from FAISS's last iteration (which precedes the last
 *    update), so assign[i] is exactly the nearest final centroid.
 * 4. qx_assign_nearest: ||x||² + ||c||² − 2 x·cᵀ with one sgemm per block of
 *    rows; the block is sized so the distance tile stays under ~16 MB whatever
 *    k is. Cancellation can make a distance slightly negative: clamped to 0.
 *    Ties go to the lowest centroid index.
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>

#include "internal.h"
#include "qinx/kmeans.h"

#define QX__ASSIGN_BLOCK_ROWS 1024
#define QX__ASSIGN_TILE_FLOATS ((size_t)4 << 20) /* 16 MB of distances */

void qx_kmeans_opts_init(qx_kmeans_opts *opts) {
    if (!opts) return;
    opts->niter = 25;
    opts->seed = 1234;
    opts->max_points_per_centroid = 256;
    opts->spherical = 0;
    opts->progressive_dim_steps = 0;
}

static const char *faiss_msg(void) {
    const char *m = faiss_get_last_error();
    return (m && *m) ? m : "(no message)";
}

/* Check pointers, sizes and finiteness shared by both entry points. */
static int check_matrix(const char *func, const char *name, const float *x, size_t n, size_t d) {
    size_t total;
    if (!x) return qx__fail(QX_EINVAL, "%s: %s is NULL", func, name);
    if (!qx__mul(n, d, &total))
        return qx__fail(QX_ENOMEM, "%s: %s size %zu x %zu overflows", func, name, n, d);
    long bad = qx__first_nonfinite(x, total);
    if (bad >= 0)
        return qx__fail(QX_EINVAL, "%s: %s[%zu][%zu] is not finite (NaN or Inf)", func, name,
                        (size_t)bad / d, (size_t)bad % d);
    return 0;
}

int qx_kmeans(const float *x, size_t n, size_t d, size_t k, const qx_kmeans_opts *opts,
              float *centroids, uint32_t *assign) {
    qx_kmeans_opts o;
    if (opts) {
        o = *opts;
    } else {
        qx_kmeans_opts_init(&o);
    }
    if (d == 0 || d > INT_MAX) return qx__fail(QX_EDIM, "qx_kmeans: d=%zu out of range", d);
    if (k == 0 || k > INT_MAX || k > UINT32_MAX)
        return qx__fail(QX_EINVAL, "qx_kmeans: k=%zu out of range", k);
    if (n < k)
        return qx__fail(QX_EINVAL, "qx_kmeans: n=%zu training vectors, need at least k=%zu", n,
                        k);
    if (n > (size_t)INT64_MAX) return qx__fail(QX_ELIMIT, "qx_kmeans: n=%zu too large", n);
    if (!centroids) return qx__fail(QX_EINVAL, "qx_kmeans: centroids is NULL");
    if (o.niter < 1) return qx__fail(QX_EINVAL, "qx_kmeans: niter=%d must be >= 1", o.niter);
    int rc = check_matrix("qx_kmeans", "x", x, n, d);
    if (rc) return rc;
    if (o.progressive_dim_steps < 0 || o.progressive_dim_steps > 64)
        return qx__fail(QX_EINVAL, "qx_kmeans: progressive_dim_steps=%d outside 0..64",
                        o.progressive_dim_steps);

    FaissClusteringParameters cp;
    faiss_ClusteringParameters_init(&cp);
    cp.niter = o.niter;
    cp.nredo = 1;
    cp.verbose = 0;
    cp.spherical = o.spherical ? 1 : 0;
    cp.min_points_per_centroid = 1;
    cp.max_points_per_centroid = (o.max_points_per_centroid == 0 ||
                                  o.max_points_per_centroid > INT_MAX)
                                         ? INT_MAX
                                         : (int)o.max_points_per_centroid;
    cp.seed = (int)((o.seed ^ (o.seed >> 32)) & 0x7fffffffu);
    /* PCA needs more points than dimensions (FAISS: "PCA matrix cannot
     * output d dimensions"): with n <= d the progressive stages have nothing
     * to order by, so fall back to Lloyd on all dimensions. */
    if (o.progressive_dim_steps > 0 && n > d) {
        if ((rc = qx__kmeans_pdim(x, n, d, k, &cp, o.progressive_dim_steps, centroids)))
            return rc;
        return assign ? qx_assign_nearest(x, n, centroids, k, d, assign, NULL) : 0;
    }

    FaissClustering *clus = NULL;
    FaissIndexFlatL2 *index = NULL;
    if (faiss_Clustering_new_with_params(&clus, (int)d, (int)k, &cp) != 0)
        return qx__fail(QX_EFAISS, "qx_kmeans: creating the clustering: %s", faiss_msg());
    if (faiss_IndexFlatL2_new_with(&index, (idx_t)d) != 0) {
        rc = qx__fail(QX_EFAISS, "qx_kmeans: creating the assignment index: %s", faiss_msg());
        goto out;
    }
    if (faiss_Clustering_train(clus, (idx_t)n, x, index) != 0) {
        rc = qx__fail(QX_EFAISS, "qx_kmeans: n=%zu d=%zu k=%zu: %s", n, d, k, faiss_msg());
        goto out;
    }
    float *c = NULL;
    size_t csize = 0;
    faiss_Clustering_centroids(clus, &c, &csize);
    if (!c || csize != k * d) {
        rc = qx__fail(QX_EINTERNAL, "qx_kmeans: FAISS returned %zu centroid floats, expected %zu",
                      csize, k * d);
        goto out;
    }
    memcpy(centroids, c, csize * sizeof(float));
    if (assign) rc = qx_assign_nearest(x, n, centroids, k, d, assign, NULL);
out:
    faiss_Index_free(index);
    faiss_Clustering_free(clus);
    return rc;
}

int qx_assign_nearest(const float *x, size_t n, const float *centroids, size_t k, size_t d,
                      uint32_t *assign, float *dist) {
    const char *f = "qx_assign_nearest";
    if (n == 0) return 0;
    if (d == 0 || d > INT_MAX) return qx__fail(QX_EDIM, "%s: d=%zu out of range", f, d);
    if (k == 0 || k > INT_MAX) return qx__fail(QX_EINVAL, "%s: k=%zu out of range", f, k);
    if (!assign) return qx__fail(QX_EINVAL, "%s: assign is NULL", f);
    int rc = check_matrix(f, "x", x, n, d);
    if (rc) return rc;
    rc = check_matrix(f, "centroids", centroids, k, d);
    if (rc) return rc;

    size_t rows = QX__ASSIGN_TILE_FLOATS / k;
    if (rows > QX__ASSIGN_BLOCK_ROWS) rows = QX__ASSIGN_BLOCK_ROWS;
    if (rows == 0) rows = 1;
    if (rows > n) rows = n;
    size_t tile_bytes, cn_bytes;
    if (!qx__mul3(rows, k, sizeof(float), &tile_bytes) || !qx__mul(k, sizeof(float), &cn_bytes))
        return qx__fail(QX_ENOMEM, "%s: k=%zu too large", f, k);
    float *tile = qx__aligned_alloc(tile_bytes);
    float *cnorm = qx__aligned_alloc(cn_bytes);
    if (!tile || !cnorm) {
        qx__aligned_free(tile);
        qx__aligned_free(cnorm);
        return qx__fail(QX_ENOMEM, "%s: %zu bytes for a distance tile", f, tile_bytes + cn_bytes);
    }
    for (size_t j = 0; j < k; j++) {
        const float *c = centroids + j * d;
        cnorm[j] = cblas_sdot((int)d, c, 1, c, 1);
    }
    for (size_t i0 = 0; i0 < n; i0 += rows) {
        size_t nb = n - i0 < rows ? n - i0 : rows;
        const float *xb = x + i0 * d;
        /* tile[i][j] = <x_i, c_j> */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)k, (int)d, 1.0f, xb,
                    (int)d, centroids, (int)d, 0.0f, tile, (int)k);
        for (size_t i = 0; i < nb; i++) {
            const float *ip = tile + i * k;
            size_t best = 0;
            float bestv = cnorm[0] - 2.0f * ip[0];
            for (size_t j = 1; j < k; j++) {
                float v = cnorm[j] - 2.0f * ip[j];
                if (v < bestv) {
                    bestv = v;
                    best = j;
                }
            }
            assign[i0 + i] = (uint32_t)best;
            if (dist) {
                const float *xi = xb + i * d;
                float dd = cblas_sdot((int)d, xi, 1, xi, 1) + bestv;
                dist[i0 + i] = dd > 0.0f ? dd : 0.0f;
            }
        }
    }
    qx__aligned_free(tile);
    qx__aligned_free(cnorm);
    return 0;
}
