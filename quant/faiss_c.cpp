/* quant/faiss_c.cpp — qinx's own build of the part of the FAISS C API it uses.
 *
 * Debian 12's libfaiss-dev ships the C API headers (faiss/c_api/…) and a
 * static libfaiss.a, but not the compiled C API (no faiss_* symbols, no
 * libfaiss_c). This one translation unit implements the functions qinx calls,
 * with exactly the signatures of those headers (they are included, so the
 * compiler checks every signature). CMake leaves this file out when a system
 * libfaiss_c is found. See docs/faiss-binding.md.
 *
 * Decisions:
 * 1. Every entry point that returns int wraps its body in try/catch(...), so
 *    no C++ exception ever crosses into C. Codes follow upstream's
 *    FaissErrorCode: FaissException -> FAISS_EXCEPT (-2), other std::exception
 *    (bad_alloc, invalid_argument, …) -> STD_EXCEPT (-4), anything else ->
 *    UNKNOWN_EXCEPT (-1).
 * 2. The message is copied into a thread-local fixed buffer (no allocation, so
 *    a bad_alloc can still be reported), and faiss_get_last_error() returns it.
 *    Unlike upstream it never returns NULL ("" before any failure); portable
 *    callers must still handle NULL, since the system library may return it.
 *    Upstream's debug build also prints each exception to stderr; we do not:
 *    the caller decides what to report.
 * 3. Arguments that FAISS itself would turn into undefined behaviour rather
 *    than an exception (NULL handles or buffers, negative counts, k <= 0) are
 *    checked here and reported as FAISS_EXCEPT with a message naming the
 *    function and the argument.
 */
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <vector>

#include <faiss/AutoTune.h>
#include <faiss/Clustering.h>
#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>

// The faiss_* functions are this binding's exported API: default visibility
// in a library built with hidden visibility (qinx/defs.h).
#pragma GCC visibility push(default)
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#pragma GCC visibility pop

namespace {

constexpr size_t kErrBuf = 1024;
thread_local char last_error[kErrBuf];

void set_error(const char *what) {
    std::snprintf(last_error, sizeof last_error, "%s", what ? what : "unknown error");
}

/* Argument check: raises a FaissException like FAISS's own asserts do, so
 * the caller sees one kind of failure whatever rejected the call. */
[[noreturn]] void bad_arg(const char *func, const char *what) {
    char msg[256];
    std::snprintf(msg, sizeof msg, "%s: %s", func, what);
    throw faiss::FaissException(msg);
}

inline faiss::Index *idx(FaissIndex *p) { return reinterpret_cast<faiss::Index *>(p); }
inline const faiss::Index *idx(const FaissIndex *p) {
    return reinterpret_cast<const faiss::Index *>(p);
}

/* Runs f() and maps whatever it throws to a FaissErrorCode. */
template <typename F>
int guarded(F &&f) noexcept {
    try {
        f();
        return OK;
    } catch (const faiss::FaissException &e) {
        set_error(e.what());
        return FAISS_EXCEPT;
    } catch (const std::exception &e) {
        set_error(e.what());
        return STD_EXCEPT;
    } catch (...) {
        set_error("unknown C++ exception (not derived from std::exception)");
        return UNKNOWN_EXCEPT;
    }
}

void need_index(const char *func, const void *index) {
    if (!index) bad_arg(func, "index is NULL");
}

void need_rows(const char *func, int64_t n, const void *x, const char *xname) {
    if (n < 0) bad_arg(func, "n < 0");
    if (n > 0 && !x) {
        char m[96];
        std::snprintf(m, sizeof m, "%s is NULL with n > 0", xname);
        bad_arg(func, m);
    }
}

faiss::Clustering *clus(FaissClustering *p) { return reinterpret_cast<faiss::Clustering *>(p); }
const faiss::Clustering *clus(const FaissClustering *p) {
    return reinterpret_cast<const faiss::Clustering *>(p);
}

} // namespace

extern "C" {

/* ---- errors ---------------------------------------------------------------- */

const char *faiss_get_last_error() { return last_error; }

/* ---- Index ------------------------------------------------------------------ */

void faiss_Index_free(FaissIndex *obj) { delete idx(obj); }

int faiss_Index_d(const FaissIndex *obj) { return idx(obj)->d; }

int faiss_Index_is_trained(const FaissIndex *obj) { return idx(obj)->is_trained ? 1 : 0; }

idx_t faiss_Index_ntotal(const FaissIndex *obj) { return idx(obj)->ntotal; }

FaissMetricType faiss_Index_metric_type(const FaissIndex *obj) {
    return static_cast<FaissMetricType>(idx(obj)->metric_type);
}

int faiss_Index_verbose(const FaissIndex *obj) { return idx(obj)->verbose ? 1 : 0; }

void faiss_Index_set_verbose(FaissIndex *obj, int v) { idx(obj)->verbose = v != 0; }

int faiss_Index_train(FaissIndex *index, idx_t n, const float *x) {
    return guarded([&] {
        need_index("faiss_Index_train", index);
        need_rows("faiss_Index_train", n, x, "x");
        idx(index)->train(n, x);
    });
}

int faiss_Index_add(FaissIndex *index, idx_t n, const float *x) {
    return guarded([&] {
        need_index("faiss_Index_add", index);
        need_rows("faiss_Index_add", n, x, "x");
        idx(index)->add(n, x);
    });
}

int faiss_Index_add_with_ids(FaissIndex *index, idx_t n, const float *x, const idx_t *xids) {
    return guarded([&] {
        need_index("faiss_Index_add_with_ids", index);
        need_rows("faiss_Index_add_with_ids", n, x, "x");
        idx(index)->add_with_ids(n, x, xids);
    });
}

int faiss_Index_search(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                       float *distances, idx_t *labels) {
    return guarded([&] {
        const char *f = "faiss_Index_search";
        need_index(f, index);
        need_rows(f, n, x, "x");
        if (k <= 0) bad_arg(f, "k must be > 0");
        if (n > 0 && (!distances || !labels)) bad_arg(f, "distances or labels is NULL");
        idx(index)->search(n, x, k, distances, labels);
    });
}

int faiss_Index_assign(FaissIndex *index, idx_t n, const float *x, idx_t *labels, idx_t k) {
    return guarded([&] {
        const char *f = "faiss_Index_assign";
        need_index(f, index);
        need_rows(f, n, x, "x");
        if (k <= 0) bad_arg(f, "k must be > 0");
        if (n > 0 && !labels) bad_arg(f, "labels is NULL");
        idx(index)->assign(n, x, labels, k);
    });
}

int faiss_Index_reset(FaissIndex *index) {
    return guarded([&] {
        need_index("faiss_Index_reset", index);
        idx(index)->reset();
    });
}

int faiss_Index_reconstruct(const FaissIndex *index, idx_t key, float *recons) {
    return guarded([&] {
        const char *f = "faiss_Index_reconstruct";
        need_index(f, index);
        if (!recons) bad_arg(f, "recons is NULL");
        if (key < 0 || key >= idx(index)->ntotal) bad_arg(f, "key out of range [0, ntotal)");
        idx(index)->reconstruct(key, recons);
    });
}

int faiss_Index_reconstruct_n(const FaissIndex *index, idx_t i0, idx_t ni, float *recons) {
    return guarded([&] {
        const char *f = "faiss_Index_reconstruct_n";
        need_index(f, index);
        need_rows(f, ni, recons, "recons");
        if (i0 < 0 || i0 > idx(index)->ntotal || ni > idx(index)->ntotal - i0)
            bad_arg(f, "range [i0, i0 + ni) is outside [0, ntotal)");
        idx(index)->reconstruct_n(i0, ni, recons);
    });
}

int faiss_Index_sa_code_size(const FaissIndex *index, size_t *size) {
    return guarded([&] {
        need_index("faiss_Index_sa_code_size", index);
        if (!size) bad_arg("faiss_Index_sa_code_size", "size is NULL");
        *size = idx(index)->sa_code_size();
    });
}

int faiss_Index_sa_encode(const FaissIndex *index, idx_t n, const float *x, uint8_t *bytes) {
    return guarded([&] {
        const char *f = "faiss_Index_sa_encode";
        need_index(f, index);
        need_rows(f, n, x, "x");
        need_rows(f, n, bytes, "bytes");
        idx(index)->sa_encode(n, x, bytes);
    });
}

int faiss_Index_sa_decode(const FaissIndex *index, idx_t n, const uint8_t *bytes, float *x) {
    return guarded([&] {
        const char *f = "faiss_Index_sa_decode";
        need_index(f, index);
        need_rows(f, n, bytes, "bytes");
        need_rows(f, n, x, "x");
        idx(index)->sa_decode(n, bytes, x);
    });
}

/* ---- flat indexes --------------------------------------------------------- */

int faiss_IndexFlatL2_new_with(FaissIndexFlatL2 **p_index, idx_t d) {
    return guarded([&] {
        if (!p_index) bad_arg("faiss_IndexFlatL2_new_with", "p_index is NULL");
        *p_index = nullptr;
        if (d <= 0) bad_arg("faiss_IndexFlatL2_new_with", "d must be > 0");
        *p_index = reinterpret_cast<FaissIndexFlatL2 *>(new faiss::IndexFlatL2(d));
    });
}

int faiss_IndexFlatIP_new_with(FaissIndexFlatIP **p_index, idx_t d) {
    return guarded([&] {
        if (!p_index) bad_arg("faiss_IndexFlatIP_new_with", "p_index is NULL");
        *p_index = nullptr;
        if (d <= 0) bad_arg("faiss_IndexFlatIP_new_with", "d must be > 0");
        *p_index = reinterpret_cast<FaissIndexFlatIP *>(new faiss::IndexFlatIP(d));
    });
}

/* ---- index factory ---------------------------------------------------------- */

int faiss_index_factory(FaissIndex **p_index, int d, const char *description,
                        FaissMetricType metric) {
    return guarded([&] {
        const char *f = "faiss_index_factory";
        if (!p_index) bad_arg(f, "p_index is NULL");
        *p_index = nullptr;
        if (!description) bad_arg(f, "description is NULL");
        if (d <= 0) bad_arg(f, "d must be > 0");
        *p_index = reinterpret_cast<FaissIndex *>(
                faiss::index_factory(d, description, static_cast<faiss::MetricType>(metric)));
    });
}

/* ---- clustering --------------------------------------------------------------- */

void faiss_ClusteringParameters_init(FaissClusteringParameters *params) {
    faiss::ClusteringParameters d;
    params->niter = d.niter;
    params->nredo = d.nredo;
    params->verbose = d.verbose;
    params->spherical = d.spherical;
    params->int_centroids = d.int_centroids;
    params->update_index = d.update_index;
    params->frozen_centroids = d.frozen_centroids;
    params->min_points_per_centroid = d.min_points_per_centroid;
    params->max_points_per_centroid = d.max_points_per_centroid;
    params->seed = d.seed;
    params->decode_block_size = d.decode_block_size;
}

int faiss_Clustering_new(FaissClustering **p_clustering, int d, int k) {
    return guarded([&] {
        if (!p_clustering) bad_arg("faiss_Clustering_new", "p_clustering is NULL");
        *p_clustering = nullptr;
        if (d <= 0 || k <= 0) bad_arg("faiss_Clustering_new", "d and k must be > 0");
        *p_clustering = reinterpret_cast<FaissClustering *>(new faiss::Clustering(d, k));
    });
}

int faiss_Clustering_new_with_params(FaissClustering **p_clustering, int d, int k,
                                     const FaissClusteringParameters *cp) {
    return guarded([&] {
        const char *f = "faiss_Clustering_new_with_params";
        if (!p_clustering) bad_arg(f, "p_clustering is NULL");
        *p_clustering = nullptr;
        if (!cp) bad_arg(f, "cp is NULL");
        if (d <= 0 || k <= 0) bad_arg(f, "d and k must be > 0");
        faiss::ClusteringParameters p;
        p.niter = cp->niter;
        p.nredo = cp->nredo;
        p.verbose = cp->verbose != 0;
        p.spherical = cp->spherical != 0;
        p.int_centroids = cp->int_centroids != 0;
        p.update_index = cp->update_index != 0;
        p.frozen_centroids = cp->frozen_centroids != 0;
        p.min_points_per_centroid = cp->min_points_per_centroid;
        p.max_points_per_centroid = cp->max_points_per_centroid;
        p.seed = cp->seed;
        p.decode_block_size = cp->decode_block_size;
        *p_clustering = reinterpret_cast<FaissClustering *>(new faiss::Clustering(d, k, p));
    });
}

int faiss_Clustering_train(FaissClustering *clustering, idx_t n, const float *x,
                           FaissIndex *index) {
    return guarded([&] {
        const char *f = "faiss_Clustering_train";
        if (!clustering) bad_arg(f, "clustering is NULL");
        need_index(f, index);
        need_rows(f, n, x, "x");
        clus(clustering)->train(n, x, *idx(index));
    });
}

void faiss_Clustering_centroids(FaissClustering *clustering, float **centroids, size_t *size) {
    std::vector<float> &c = clus(clustering)->centroids;
    if (centroids) *centroids = c.data();
    if (size) *size = c.size();
}

size_t faiss_Clustering_d(const FaissClustering *c) { return clus(c)->d; }
size_t faiss_Clustering_k(const FaissClustering *c) { return clus(c)->k; }
int faiss_Clustering_niter(const FaissClustering *c) { return clus(c)->niter; }
int faiss_Clustering_seed(const FaissClustering *c) { return clus(c)->seed; }
int faiss_Clustering_max_points_per_centroid(const FaissClustering *c) {
    return clus(c)->max_points_per_centroid;
}

void faiss_Clustering_free(FaissClustering *clustering) { delete clus(clustering); }

int faiss_kmeans_clustering(size_t d, size_t n, size_t k, const float *x, float *centroids,
                            float *q_error) {
    return guarded([&] {
        const char *f = "faiss_kmeans_clustering";
        if (d == 0 || k == 0) bad_arg(f, "d and k must be > 0");
        if (!x || !centroids) bad_arg(f, "x or centroids is NULL");
        float err = faiss::kmeans_clustering(d, n, k, x, centroids);
        if (q_error) *q_error = err;
    });
}

/* ---- auto-tuning: runtime parameters such as nprobe ------------------------- */

int faiss_ParameterSpace_new(FaissParameterSpace **space) {
    return guarded([&] {
        if (!space) bad_arg("faiss_ParameterSpace_new", "space is NULL");
        *space = reinterpret_cast<FaissParameterSpace *>(new faiss::ParameterSpace());
    });
}

void faiss_ParameterSpace_free(FaissParameterSpace *space) {
    delete reinterpret_cast<faiss::ParameterSpace *>(space);
}

int faiss_ParameterSpace_set_index_parameter(const FaissParameterSpace *space,
                                             FaissIndex *index, const char *name, double value) {
    return guarded([&] {
        const char *f = "faiss_ParameterSpace_set_index_parameter";
        if (!space) bad_arg(f, "space is NULL");
        need_index(f, index);
        if (!name) bad_arg(f, "name is NULL");
        reinterpret_cast<const faiss::ParameterSpace *>(space)->set_index_parameter(
                idx(index), name, value);
    });
}

int faiss_ParameterSpace_set_index_parameters(const FaissParameterSpace *space,
                                              FaissIndex *index, const char *desc) {
    return guarded([&] {
        const char *f = "faiss_ParameterSpace_set_index_parameters";
        if (!space) bad_arg(f, "space is NULL");
        need_index(f, index);
        if (!desc) bad_arg(f, "description is NULL");
        reinterpret_cast<const faiss::ParameterSpace *>(space)->set_index_parameters(
                idx(index), desc);
    });
}

/* ---- IVF ----------------------------------------------------------------------- */

FaissIndexIVF *faiss_IndexIVF_cast(FaissIndex *index) {
    return reinterpret_cast<FaissIndexIVF *>(dynamic_cast<faiss::IndexIVF *>(idx(index)));
}

void faiss_IndexIVF_free(FaissIndexIVF *obj) { delete reinterpret_cast<faiss::IndexIVF *>(obj); }

size_t faiss_IndexIVF_nlist(const FaissIndexIVF *obj) {
    return reinterpret_cast<const faiss::IndexIVF *>(obj)->nlist;
}

size_t faiss_IndexIVF_nprobe(const FaissIndexIVF *obj) {
    return reinterpret_cast<const faiss::IndexIVF *>(obj)->nprobe;
}

void faiss_IndexIVF_set_nprobe(FaissIndexIVF *obj, size_t nprobe) {
    reinterpret_cast<faiss::IndexIVF *>(obj)->nprobe = nprobe;
}

} // extern "C"
