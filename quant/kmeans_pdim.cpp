/* quant/kmeans_pdim.cpp — progressive-dimension k-means (qx_kmeans with
 * opts.progressive_dim_steps > 0), through FAISS's ProgressiveDimClustering.
 *
 * Liu, Lu & Shao, "Improved residual vector quantization for high-dimensional
 * approximate nearest neighbor search", AAAI 2015: rotate the data by PCA,
 * cluster on the first principal dimension, then on geometrically more
 * dimensions up to d, each stage starting from the previous centroids padded
 * with zeros. The low-variance directions are fitted last, from centroids
 * already placed by the high-variance ones, which on anisotropic data
 * (GloVe-100: the first 10 of 100 PCA dimensions carry a third of the
 * variance) generalises better than Lloyd from a random sample: RQ codebooks
 * trained this way have a lower held-out MSE (measured, see quant/rq_train.c).
 * It is FAISS's default for ResidualQuantizer training.
 *
 * The C API has no binding for this class, so this translation unit calls the
 * C++ API directly and catches every exception (FAISS throws FaissException,
 * std::bad_alloc from vectors). Arguments were validated by qx_kmeans.
 */
#include <faiss/Clustering.h>
#include <faiss/c_api/Clustering_c.h>

#include <cstring>
#include <exception>
#include <new>

#include "internal.h"

extern "C" int qx__kmeans_pdim(const float *x, size_t n, size_t d, size_t k,
                               const FaissClusteringParameters *p, int steps,
                               float *centroids) {
    try {
        /* the same parameters as Lloyd in quant/kmeans.c, plus the stages */
        faiss::ProgressiveDimClusteringParameters cp;
        cp.niter = p->niter;
        cp.nredo = p->nredo;
        cp.verbose = p->verbose != 0;
        cp.spherical = p->spherical != 0;
        cp.min_points_per_centroid = p->min_points_per_centroid;
        cp.max_points_per_centroid = p->max_points_per_centroid;
        cp.seed = p->seed;
        cp.progressive_dim_steps = steps;
        cp.apply_pca = true;
        faiss::ProgressiveDimClustering clus((int)d, (int)k, cp);
        faiss::ProgressiveDimIndexFactory factory; /* exact IndexFlatL2 per stage */
        clus.train((faiss::Index::idx_t)n, x, factory);
        if (clus.centroids.size() != k * d)
            return qx__fail(QX_EINTERNAL,
                            "qx_kmeans (progressive): FAISS returned %zu centroid floats, "
                            "expected %zu", clus.centroids.size(), k * d);
        std::memcpy(centroids, clus.centroids.data(), k * d * sizeof(float));
        return 0;
    } catch (const std::bad_alloc &) {
        return qx__fail(QX_ENOMEM, "qx_kmeans (progressive): out of memory, n=%zu d=%zu k=%zu",
                        n, d, k);
    } catch (const std::exception &e) {
        return qx__fail(QX_EFAISS, "qx_kmeans (progressive): n=%zu d=%zu k=%zu: %s", n, d, k,
                        e.what());
    } catch (...) {
        return qx__fail(QX_EFAISS, "qx_kmeans (progressive): unknown C++ exception");
    }
}
