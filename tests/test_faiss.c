/* tests/test_faiss.c — the FAISS C API binding (quant/faiss_c.cpp), the qinx
 * extensions qx_faiss_set_beam and qx_faiss_set_lsq_iters, and k-means / nearest-centroid assignment
 * (quant/kmeans.c). Small synthetic data with fixed seeds; the whole binary
 * runs in a few seconds. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>

#include "qinx/alloc.h"
#include "qinx/error.h"
#include "qinx/faiss_ext.h"
#include "qinx/kmeans.h"
#include "testutil.h"

static void assert_faiss_msg(const char *needle) {
    const char *m = faiss_get_last_error();
    assert_non_null(m);
    assert_true(strlen(m) > 0);
    if (needle && !strstr(m, needle)) fail_msg("message '%s' lacks '%s'", m, needle);
}

static double mse(const float *a, const float *b, size_t n, size_t d) {
    double s = 0;
    for (size_t i = 0; i < n * d; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s / (double)n;
}

static double l2_double(const float *a, const float *b, size_t d) {
    double s = 0;
    for (size_t j = 0; j < d; j++) s += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
    return s;
}

/* ---- binding: construction and errors ---------------------------------------- */

static void test_factory_ok_and_bad_string(void **state) {
    (void)state;
    FaissIndex *idx = NULL;
    assert_int_equal(faiss_index_factory(&idx, 16, "Flat", METRIC_L2), 0);
    assert_non_null(idx);
    assert_int_equal(faiss_Index_d(idx), 16);
    assert_int_equal(faiss_Index_is_trained(idx), 1);
    assert_int_equal(faiss_Index_ntotal(idx), 0);
    faiss_Index_free(idx);

    idx = (FaissIndex *)0x1; /* must be reset to NULL on failure */
    int rc = faiss_index_factory(&idx, 16, "Bogus12", METRIC_L2);
    assert_int_not_equal(rc, 0);
    assert_int_equal(rc, FAISS_EXCEPT);
    assert_null(idx);
    assert_faiss_msg("Bogus12");

    assert_int_not_equal(faiss_index_factory(&idx, 0, "Flat", METRIC_L2), 0);
    assert_faiss_msg("d must be > 0");
    assert_int_not_equal(faiss_index_factory(&idx, 16, NULL, METRIC_L2), 0);
    assert_int_not_equal(faiss_index_factory(NULL, 16, "Flat", METRIC_L2), 0);
}

static void test_errors_become_codes(void **state) {
    (void)state;
    FaissIndexFlatL2 *flat = NULL;
    assert_int_equal(faiss_IndexFlatL2_new_with(&flat, 8), 0);
    float q[8] = {0}, dist[4];
    idx_t lab[4];
    /* k <= 0 on an empty index */
    assert_int_not_equal(faiss_Index_search(flat, 1, q, 0, dist, lab), 0);
    assert_faiss_msg("k must be > 0");
    assert_int_not_equal(faiss_Index_search(flat, 1, q, -3, dist, lab), 0);
    /* negative counts, NULL buffers, NULL handles */
    assert_int_not_equal(faiss_Index_add(flat, -1, q), 0);
    assert_faiss_msg("n < 0");
    assert_int_not_equal(faiss_Index_add(flat, 2, NULL), 0);
    assert_int_not_equal(faiss_Index_search(NULL, 1, q, 1, dist, lab), 0);
    assert_faiss_msg("index is NULL");
    /* reconstruct out of range */
    assert_int_not_equal(faiss_Index_reconstruct_n(flat, 0, 1, q), 0);
    /* an empty index searched with k > 0 is fine: padded with -1 */
    assert_int_equal(faiss_Index_search(flat, 1, q, 4, dist, lab), 0);
    for (int j = 0; j < 4; j++) assert_int_equal(lab[j], -1);
    faiss_Index_free(flat);

    /* train with n = 0 on an index that needs training: FAISS throws */
    FaissIndex *pq = NULL;
    assert_int_equal(faiss_index_factory(&pq, 16, "PQ4x8np", METRIC_L2), 0);
    assert_int_equal(faiss_Index_is_trained(pq), 0);
    int rc = faiss_Index_train(pq, 0, q);
    assert_int_not_equal(rc, 0);
    assert_faiss_msg(NULL);
    /* adding to an untrained index is a FAISS assertion, reported not fatal */
    float x16[16] = {0};
    assert_int_not_equal(faiss_Index_add(pq, 1, x16), 0);
    assert_faiss_msg(NULL);
    faiss_Index_free(pq);

    /* Clustering with fewer points than centroids: FAISS's own message */
    FaissClustering *c = NULL;
    assert_int_equal(faiss_Clustering_new(&c, 4, 10), 0);
    FaissIndexFlatL2 *ai = NULL;
    assert_int_equal(faiss_IndexFlatL2_new_with(&ai, 4), 0);
    float pts[5 * 4] = {0};
    assert_int_equal(faiss_Clustering_train(c, 5, pts, ai), FAISS_EXCEPT);
    assert_faiss_msg("training points");
    faiss_Index_free(ai);
    faiss_Clustering_free(c);
}

/* The message is per thread: a failure here must not be visible elsewhere is
 * hard to test portably, but a later failure must replace an earlier one. */
static void test_error_message_replaced(void **state) {
    (void)state;
    FaissIndex *idx = NULL;
    assert_int_not_equal(faiss_index_factory(&idx, 8, "Bogus12", METRIC_L2), 0);
    assert_faiss_msg("Bogus12");
    assert_int_not_equal(faiss_index_factory(&idx, 8, "Nonsense7", METRIC_L2), 0);
    assert_faiss_msg("Nonsense7");
    assert_null(strstr(faiss_get_last_error(), "Bogus12"));
}

static void *fail_in_thread(void *arg) {
    char *out = arg;
    FaissIndex *idx = NULL;
    if (faiss_index_factory(&idx, 8, "Bogus12", METRIC_L2) == 0) return NULL;
    snprintf(out, 512, "%s", faiss_get_last_error());
    return out;
}

/* The last error is per thread (like upstream's thread_local exception_ptr). */
static void test_error_is_per_thread(void **state) {
    (void)state;
    FaissIndex *idx = NULL;
    assert_int_not_equal(faiss_index_factory(&idx, 8, "Nonsense7", METRIC_L2), 0);
    char theirs[512] = "";
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fail_in_thread, theirs), 0);
    void *ret = NULL;
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_non_null(ret);
    assert_non_null(strstr(theirs, "Bogus12"));
    assert_faiss_msg("Nonsense7");
}

/* ---- binding: search and codecs ----------------------------------------------- */

static void test_flat_search_exact(void **state) {
    (void)state;
    const size_t nb = 2000, nq = 40, d = 24, k = 10;
    float *xb = tu_clustered(nb, d, 20, 11);
    float *xq = tu_clustered(nq, d, 20, 12);
    int64_t *gt = tu_brute_knn(xb, nb, xq, nq, d, k);

    FaissIndexFlatL2 *flat = NULL;
    assert_int_equal(faiss_IndexFlatL2_new_with(&flat, (idx_t)d), 0);
    assert_int_equal(faiss_Index_add(flat, (idx_t)nb, xb), 0);
    assert_int_equal(faiss_Index_ntotal(flat), (idx_t)nb);
    float *dist = malloc(sizeof(float) * nq * k);
    idx_t *lab = malloc(sizeof(idx_t) * nq * k);
    assert_int_equal(faiss_Index_search(flat, (idx_t)nq, xq, (idx_t)k, dist, lab), 0);
    /* FAISS computes in float through BLAS, the reference in double: a
     * near-tie may swap, nothing else. */
    size_t swapped = 0;
    for (size_t i = 0; i < nq * k; i++) {
        if (lab[i] == gt[i]) continue;
        swapped++;
        const float *qi = xq + (i / k) * d;
        double dl = l2_double(qi, xb + lab[i] * d, d), dg = l2_double(qi, xb + gt[i] * d, d);
        if (fabs(dl - dg) > 1e-4 * (1.0 + dg))
            fail_msg("query %zu rank %zu: FAISS id %ld (%.6f) vs exact %ld (%.6f)", i / k,
                     i % k, (long)lab[i], dl, (long)gt[i], dg);
    }
    assert_true(swapped <= 4);
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 1; j < k; j++) assert_true(dist[i * k + j - 1] <= dist[i * k + j]);

    /* reconstruct_n gives back the stored vectors */
    float *rec = malloc(sizeof(float) * 3 * d);
    assert_int_equal(faiss_Index_reconstruct_n(flat, 5, 3, rec), 0);
    assert_memory_equal(rec, xb + 5 * d, sizeof(float) * 3 * d);
    assert_int_equal(faiss_Index_reset(flat), 0);
    assert_int_equal(faiss_Index_ntotal(flat), 0);
    faiss_Index_free(flat);

    /* inner-product flat: the best is the largest dot product */
    FaissIndexFlatIP *ip = NULL;
    assert_int_equal(faiss_IndexFlatIP_new_with(&ip, (idx_t)d), 0);
    assert_int_equal(faiss_Index_add(ip, (idx_t)nb, xb), 0);
    assert_int_equal(faiss_Index_search(ip, 1, xq, 1, dist, lab), 0);
    double best = -INFINITY;
    int64_t arg = -1;
    for (size_t b = 0; b < nb; b++) {
        double s = 0;
        for (size_t j = 0; j < d; j++) s += (double)xq[j] * xb[b * d + j];
        if (s > best) best = s, arg = (int64_t)b;
    }
    assert_int_equal(lab[0], arg);
    faiss_Index_free(ip);

    /* add_with_ids on an IDMap keeps user ids */
    FaissIndex *idm = NULL;
    assert_int_equal(faiss_index_factory(&idm, (int)d, "IDMap,Flat", METRIC_L2), 0);
    idx_t ids[3] = {1000, 2000, 3000};
    assert_int_equal(faiss_Index_add_with_ids(idm, 3, xb, ids), 0);
    assert_int_equal(faiss_Index_search(idm, 1, xb + d, 1, dist, lab), 0);
    assert_int_equal(lab[0], 2000);
    faiss_Index_free(idm);
    /* a plain flat index refuses add_with_ids: an error, not an abort */
    assert_int_equal(faiss_IndexFlatL2_new_with(&flat, (idx_t)d), 0);
    assert_int_not_equal(faiss_Index_add_with_ids(flat, 3, xb, ids), 0);
    assert_faiss_msg(NULL);
    faiss_Index_free(flat);

    free(rec), free(dist), free(lab), free(gt), free(xb), free(xq);
}

/* train_beam > 0: set the RQ beam before training (beam 1 trains several
 * times faster than FAISS's default 5; the test is about the binding). */
static void roundtrip(const char *desc, size_t d, size_t want_code, double max_rel_mse,
                      float *xt, size_t nt, int train_beam) {
    FaissIndex *idx = NULL;
    assert_int_equal(faiss_index_factory(&idx, (int)d, desc, METRIC_L2), 0);
    if (train_beam > 0) assert_int_equal(qx_faiss_set_beam(idx, train_beam), 0);
    size_t cs = 0;
    assert_int_equal(faiss_Index_sa_code_size(idx, &cs), 0);
    assert_int_equal(cs, want_code);
    assert_int_equal(faiss_Index_train(idx, (idx_t)nt, xt), 0);
    assert_int_equal(faiss_Index_is_trained(idx), 1);
    const size_t n = 200;
    uint8_t *codes = malloc(n * cs);
    float *dec = malloc(sizeof(float) * n * d);
    assert_int_equal(faiss_Index_sa_encode(idx, (idx_t)n, xt, codes), 0);
    assert_int_equal(faiss_Index_sa_decode(idx, (idx_t)n, codes, dec), 0);
    /* mean squared norm as the scale of "no information" */
    double energy = 0;
    float zero[64] = {0};
    for (size_t i = 0; i < n; i++) energy += mse(xt + i * d, zero, 1, d);
    energy /= (double)n;
    double e = mse(xt, dec, n, d);
    assert_true(e < max_rel_mse * energy);
    free(codes), free(dec);
    faiss_Index_free(idx);
}

static void test_sa_roundtrip_pq_rq(void **state) {
    (void)state;
    /* FAISS prints "WARNING clustering 400 points to 256 centroids" per RQ
     * step: expected with so few points, kept small for speed. */
    const size_t d = 16, nt = 400;
    float *xt = tu_clustered(nt, d, 30, 21);
    roundtrip("PQ8x8np", d, 8, 0.2, xt, nt, 0);
    roundtrip("RQ8x8", d, 8, 0.2, xt, nt, 1);
    free(xt);
}

static void test_set_beam(void **state) {
    (void)state;
    const size_t d = 16, nt = 600, n = 400;
    /* encode held-out vectors: on its 600 training points a 4x256 RQ is
     * nearly exact whatever the beam */
    float *xt = tu_clustered(nt + n, d, 30, 31), *xh = xt + nt * d;
    FaissIndex *rq = NULL;
    assert_int_equal(faiss_index_factory(&rq, (int)d, "RQ4x8", METRIC_L2), 0);
    assert_int_equal(qx_faiss_set_beam(rq, 1), 0);
    assert_int_equal(faiss_Index_train(rq, (idx_t)nt, xt), 0);
    uint8_t *codes = malloc(n * 4);
    float *dec = malloc(sizeof(float) * n * d);
    assert_int_equal(qx_faiss_set_beam(rq, 1), 0);
    assert_int_equal(faiss_Index_sa_encode(rq, (idx_t)n, xh, codes), 0);
    assert_int_equal(faiss_Index_sa_decode(rq, (idx_t)n, codes, dec), 0);
    double e1 = mse(xh, dec, n, d);
    assert_int_equal(qx_faiss_set_beam(rq, 16), 0);
    assert_int_equal(faiss_Index_sa_encode(rq, (idx_t)n, xh, codes), 0);
    assert_int_equal(faiss_Index_sa_decode(rq, (idx_t)n, codes, dec), 0);
    double e16 = mse(xh, dec, n, d);
    /* the beam must really reach the encoder: a wider beam encodes better
     * (measured 4.74 at beam 1, 4.03 at beam 16) */
    if (!(e16 < 0.97 * e1)) fail_msg("beam 16 MSE %.4f not below beam 1 MSE %.4f", e16, e1);
    assert_int_equal(qx_faiss_set_beam(rq, 0), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "beam"));
    faiss_Index_free(rq);

    /* through IndexPreTransform and for IVF-RQ */
    FaissIndex *pre = NULL;
    assert_int_equal(faiss_index_factory(&pre, (int)d, "PCA8,RQ4x8", METRIC_L2), 0);
    assert_int_equal(qx_faiss_set_beam(pre, 8), 0);
    faiss_Index_free(pre);
    FaissIndex *ivfrq = NULL;
    assert_int_equal(faiss_index_factory(&ivfrq, (int)d, "IVF16,RQ4x8", METRIC_L2), 0);
    assert_int_equal(qx_faiss_set_beam(ivfrq, 8), 0);
    faiss_Index_free(ivfrq);

    /* no RQ inside: PQ, flat */
    FaissIndex *pq = NULL;
    assert_int_equal(faiss_index_factory(&pq, (int)d, "PQ4x8np", METRIC_L2), 0);
    qx_clear_error();
    assert_int_equal(qx_faiss_set_beam(pq, 4), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "residual quantizer"));
    faiss_Index_free(pq);
    FaissIndex *lsq = NULL;
    assert_int_equal(faiss_index_factory(&lsq, (int)d, "LSQ4x8", METRIC_L2), 0);
    assert_int_equal(qx_faiss_set_beam(lsq, 4), QX_EINVAL);
    faiss_Index_free(lsq);
    assert_int_equal(qx_faiss_set_beam(NULL, 4), QX_EINVAL);
    free(codes), free(dec), free(xt);
}

/* qx_faiss_set_lsq_iters reaches FAISS's LSQ: encoding with 1 local-search
 * round is worse than with 16 (FAISS keeps the best codes across rounds, so
 * more rounds never lose); errors for indexes without an LSQ and bad counts. */
static void test_set_lsq_iters(void **state) {
    (void)state;
    const size_t d = 16, nt = 600, n = 300;
    float *xt = tu_clustered(nt + n, d, 30, 33), *xh = xt + nt * d;
    FaissIndex *lsq = NULL;
    assert_int_equal(faiss_index_factory(&lsq, (int)d, "LSQ4x8", METRIC_L2), 0);
    qx_faiss_lsq_iters fast = {2, 2, 1, 2, 0};
    assert_int_equal(qx_faiss_set_lsq_iters(lsq, &fast), 0);
    assert_int_equal(faiss_Index_train(lsq, (idx_t)nt, xt), 0);
    uint8_t *codes = malloc(n * 4);
    float *dec = malloc(sizeof(float) * n * d);
    assert_int_equal(faiss_Index_sa_encode(lsq, (idx_t)n, xh, codes), 0);
    assert_int_equal(faiss_Index_sa_decode(lsq, (idx_t)n, codes, dec), 0);
    double e1 = mse(xh, dec, n, d);
    qx_faiss_lsq_iters more = {0, 0, 16, 0, 0}; /* 0: keep the other counts */
    assert_int_equal(qx_faiss_set_lsq_iters(lsq, &more), 0);
    assert_int_equal(faiss_Index_sa_encode(lsq, (idx_t)n, xh, codes), 0);
    assert_int_equal(faiss_Index_sa_decode(lsq, (idx_t)n, codes, dec), 0);
    double e16 = mse(xh, dec, n, d);
    if (!(e16 < e1)) fail_msg("16 ILS rounds MSE %.4f not below 1 round's %.4f", e16, e1);
    qx_faiss_lsq_iters bad = {-1, 0, 0, 0, 0};
    assert_int_equal(qx_faiss_set_lsq_iters(lsq, &bad), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "outside"));
    assert_int_equal(qx_faiss_set_lsq_iters(lsq, NULL), QX_EINVAL);
    faiss_Index_free(lsq);
    FaissIndex *rq = NULL;
    assert_int_equal(faiss_index_factory(&rq, (int)d, "RQ4x8", METRIC_L2), 0);
    assert_int_equal(qx_faiss_set_lsq_iters(rq, &fast), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "local search"));
    faiss_Index_free(rq);
    assert_int_equal(qx_faiss_set_lsq_iters(NULL, &fast), QX_EINVAL);
    free(codes), free(dec), free(xt);
}

static void test_ivf_nprobe(void **state) {
    (void)state;
    const size_t nb = 3000, nq = 30, d = 16, k = 5;
    float *xb = tu_clustered(nb, d, 25, 41);
    float *xq = tu_clustered(nq, d, 25, 42);
    int64_t *gt = tu_brute_knn(xb, nb, xq, nq, d, k);
    float *dist = malloc(sizeof(float) * nq * k);
    idx_t *lab = malloc(sizeof(idx_t) * nq * k);

    FaissIndex *ivf = NULL;
    assert_int_equal(faiss_index_factory(&ivf, (int)d, "IVF32,Flat", METRIC_L2), 0);
    FaissIndexIVF *cast = faiss_IndexIVF_cast(ivf);
    assert_non_null(cast);
    assert_int_equal(faiss_IndexIVF_nlist(cast), 32);
    assert_int_equal(faiss_Index_train(ivf, (idx_t)nb, xb), 0);
    assert_int_equal(faiss_Index_add(ivf, (idx_t)nb, xb), 0);
    faiss_IndexIVF_set_nprobe(cast, 3);
    assert_int_equal(faiss_IndexIVF_nprobe(cast), 3);

    FaissParameterSpace *ps = NULL;
    assert_int_equal(faiss_ParameterSpace_new(&ps), 0);
    assert_int_equal(faiss_ParameterSpace_set_index_parameter(ps, ivf, "nprobe", 32), 0);
    assert_int_equal(faiss_IndexIVF_nprobe(cast), 32);
    /* nprobe = nlist visits every list: exact results */
    assert_int_equal(faiss_Index_search(ivf, (idx_t)nq, xq, (idx_t)k, dist, lab), 0);
    for (size_t i = 0; i < nq * k; i++) assert_int_equal(lab[i], gt[i]);
    assert_int_not_equal(faiss_ParameterSpace_set_index_parameter(ps, ivf, "no_such_knob", 1), 0);
    assert_faiss_msg(NULL);
    faiss_Index_free(ivf);

    /* wrapped in a pre-transform: the downcast fails, ParameterSpace still works */
    FaissIndex *pre = NULL;
    assert_int_equal(faiss_index_factory(&pre, (int)d, "PCA16,IVF32,Flat", METRIC_L2), 0);
    assert_null(faiss_IndexIVF_cast(pre));
    assert_int_equal(faiss_Index_train(pre, (idx_t)nb, xb), 0);
    assert_int_equal(faiss_Index_add(pre, (idx_t)nb, xb), 0);
    assert_int_equal(faiss_ParameterSpace_set_index_parameter(ps, pre, "nprobe", 32), 0);
    assert_int_equal(faiss_Index_search(pre, (idx_t)nq, xq, (idx_t)k, dist, lab), 0);
    size_t same = 0;
    for (size_t i = 0; i < nq; i++) same += lab[i * k] == gt[i * k];
    assert_true(same >= nq - 1); /* full-rank PCA (a rotation) keeps distances */
    faiss_Index_free(pre);
    faiss_ParameterSpace_free(ps);
    free(dist), free(lab), free(gt), free(xb), free(xq);
}

/* ---- k-means ------------------------------------------------------------------------ */

static void test_kmeans_deterministic(void **state) {
    (void)state;
    const size_t n = 3000, d = 16, k = 32;
    float *x = tu_clustered(n, d, 40, 51);
    float *c1 = malloc(sizeof(float) * k * d), *c2 = malloc(sizeof(float) * k * d);
    float *c3 = malloc(sizeof(float) * k * d);
    qx_kmeans_opts o;
    qx_kmeans_opts_init(&o);
    o.niter = 10;
    o.seed = 77;
    omp_set_num_threads(2); /* determinism must hold with threads too */
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c1, NULL), 0);
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c2, NULL), 0);
    assert_memory_equal(c1, c2, sizeof(float) * k * d);
    /* and the same with one thread: FAISS splits the centroid update by
     * centroid and BLAS splits rows/columns, never a sum, so the thread count
     * does not change the result */
    omp_set_num_threads(1);
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c2, NULL), 0);
    assert_memory_equal(c1, c2, sizeof(float) * k * d);
    omp_set_num_threads(2);
    o.seed = 78;
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c3, NULL), 0);
    assert_memory_not_equal(c1, c3, sizeof(float) * k * d);
    /* seeds differing only in the high 32 bits also differ */
    o.seed = 77 | ((uint64_t)5 << 40);
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c3, NULL), 0);
    assert_memory_not_equal(c1, c3, sizeof(float) * k * d);
    omp_set_num_threads(1);
    free(c1), free(c2), free(c3), free(x);
}

static double quant_error(const float *x, size_t n, const float *c, size_t k, size_t d) {
    uint32_t *a = malloc(sizeof(uint32_t) * n);
    float *dist = malloc(sizeof(float) * n);
    assert_int_equal(qx_assign_nearest(x, n, c, k, d, a, dist), 0);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += dist[i];
    free(a), free(dist);
    return s / (double)n;
}

static void test_kmeans_reduces_error(void **state) {
    (void)state;
    const size_t n = 4000, d = 20, k = 64;
    float *x = tu_clustered(n, d, 50, 61);
    float *c = malloc(sizeof(float) * k * d), *r = malloc(sizeof(float) * k * d);
    uint32_t *assign = malloc(sizeof(uint32_t) * n), *a2 = malloc(sizeof(uint32_t) * n);
    /* random centroids: k data points chosen by a fixed generator */
    tu_rng g;
    tu_rng_seed(&g, 62);
    for (size_t j = 0; j < k; j++)
        memcpy(r + j * d, x + (tu_rng_next(&g) % n) * d, sizeof(float) * d);
    qx_kmeans_opts o;
    qx_kmeans_opts_init(&o);
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c, assign), 0);
    double ek = quant_error(x, n, c, k, d), er = quant_error(x, n, r, k, d);
    if (!(ek < 0.8 * er)) fail_msg("k-means error %.4f not below 0.8 x random %.4f", ek, er);
    /* the returned assignment is the nearest final centroid */
    assert_int_equal(qx_assign_nearest(x, n, c, k, d, a2, NULL), 0);
    assert_memory_equal(assign, a2, sizeof(uint32_t) * n);
    for (size_t i = 0; i < n; i++) assert_true(assign[i] < k);

    /* spherical: unit-norm centroids */
    o.spherical = 1;
    o.niter = 5;
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c, NULL), 0);
    for (size_t j = 0; j < k; j++) {
        double s = 0;
        for (size_t t = 0; t < d; t++) s += (double)c[j * d + t] * c[j * d + t];
        assert_true(fabs(s - 1.0) < 1e-3);
    }
    /* subsampling (n > k * max_points_per_centroid) still works */
    o.spherical = 0;
    o.max_points_per_centroid = 20;
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c, NULL), 0);
    assert_true(quant_error(x, n, c, k, d) < er);
    free(c), free(r), free(assign), free(a2), free(x);
}

/* Progressive-dimension k-means (PCA, then growing prefixes of the principal
 * dimensions): as good as Lloyd on clustered data, deterministic, and its
 * stage count is validated. */
static void test_kmeans_progressive(void **state) {
    (void)state;
    const size_t n = 4000, d = 20, k = 64;
    float *x = tu_clustered(n, d, 50, 63);
    float *c = malloc(sizeof(float) * k * d), *c2 = malloc(sizeof(float) * k * d);
    uint32_t *assign = malloc(sizeof(uint32_t) * n), *a2 = malloc(sizeof(uint32_t) * n);
    qx_kmeans_opts o;
    qx_kmeans_opts_init(&o);
    assert_int_equal(o.progressive_dim_steps, 0);
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c, NULL), 0);
    double lloyd = quant_error(x, n, c, k, d);
    o.progressive_dim_steps = 5;
    o.niter = 10;
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c, assign), 0);
    double pd = quant_error(x, n, c, k, d);
    fprintf(stderr, "k-means error: Lloyd %.4f, progressive-dim %.4f\n", lloyd, pd);
    if (!(pd < 1.1 * lloyd)) fail_msg("progressive %.4f vs Lloyd %.4f", pd, lloyd);
    assert_int_equal(qx_assign_nearest(x, n, c, k, d, a2, NULL), 0);
    assert_memory_equal(assign, a2, sizeof(uint32_t) * n);
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c2, NULL), 0);
    assert_memory_equal(c, c2, sizeof(float) * k * d);
    /* fewer points than dimensions: no PCA possible, Lloyd instead */
    {
        const size_t n2 = 300, d2 = 400, k2 = 8;
        float *y = tu_clustered(n2, d2, 8, 64), *cy = malloc(sizeof(float) * k2 * d2);
        assert_int_equal(qx_kmeans(y, n2, d2, k2, &o, cy, NULL), 0);
        free(y), free(cy);
    }
    o.progressive_dim_steps = -1;
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c, NULL), QX_EINVAL);
    o.progressive_dim_steps = 65;
    assert_int_equal(qx_kmeans(x, n, d, k, &o, c, NULL), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "progressive_dim_steps"));
    free(c), free(c2), free(assign), free(a2), free(x);
}

static void test_kmeans_bad_input(void **state) {
    (void)state;
    const size_t n = 100, d = 4;
    float *x = tu_clustered(n, d, 3, 71);
    float c[200 * 4];
    assert_int_equal(qx_kmeans(x, n, d, 101, NULL, c, NULL), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "at least"));
    assert_int_equal(qx_kmeans(x, n, 0, 4, NULL, c, NULL), QX_EDIM);
    assert_int_equal(qx_kmeans(x, n, d, 0, NULL, c, NULL), QX_EINVAL);
    assert_int_equal(qx_kmeans(NULL, n, d, 4, NULL, c, NULL), QX_EINVAL);
    assert_int_equal(qx_kmeans(x, n, d, 4, NULL, NULL, NULL), QX_EINVAL);
    qx_kmeans_opts o;
    qx_kmeans_opts_init(&o);
    o.niter = 0;
    assert_int_equal(qx_kmeans(x, n, d, 4, &o, c, NULL), QX_EINVAL);
    x[37 * d + 2] = NAN;
    assert_int_equal(qx_kmeans(x, n, d, 4, NULL, c, NULL), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "x[37][2]"));
    x[37 * d + 2] = INFINITY;
    uint32_t a[100];
    float cc[4 * 4] = {0};
    assert_int_equal(qx_assign_nearest(x, n, cc, 4, d, a, NULL), QX_EINVAL);
    x[37 * d + 2] = 0;
    cc[5] = NAN;
    assert_int_equal(qx_assign_nearest(x, n, cc, 4, d, a, NULL), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "centroids[1][1]"));
    cc[5] = 0;
    assert_int_equal(qx_assign_nearest(x, n, cc, 4, d, NULL, NULL), QX_EINVAL);
    assert_int_equal(qx_assign_nearest(x, 0, cc, 4, d, a, NULL), 0);
    /* n == k is allowed: every point its own centroid */
    assert_int_equal(qx_kmeans(x, 8, d, 8, NULL, c, a), 0);
    free(x);
}

/* BLAS assignment against a double-precision brute force, with k large enough
 * to force several row blocks (tile = 4M floats / k rows). */
static void test_assign_nearest_brute(void **state) {
    (void)state;
    const size_t n = 2500, d = 24, k = 6000;
    float *x = tu_clustered(n, d, 30, 81);
    float *c = tu_clustered(k, d, 30, 82);
    uint32_t *a = malloc(sizeof(uint32_t) * n);
    float *dist = malloc(sizeof(float) * n);
    assert_int_equal(qx_assign_nearest(x, n, c, k, d, a, dist), 0);
    size_t exact = 0;
    for (size_t i = 0; i < n; i++) {
        double best = INFINITY;
        size_t arg = 0;
        double chosen = 0;
        for (size_t j = 0; j < k; j++) {
            double s = 0;
            for (size_t t = 0; t < d; t++) {
                double u = (double)x[i * d + t] - c[j * d + t];
                s += u * u;
            }
            if (s < best) best = s, arg = j;
            if (j == a[i]) chosen = s;
        }
        exact += arg == a[i];
        /* float rounding may swap near-ties only */
        assert_true(chosen <= best + 1e-4 * (1.0 + best));
        assert_true(fabs((double)dist[i] - best) <= 1e-3 * (1.0 + best));
        assert_true(dist[i] >= 0.0f);
    }
    assert_true(exact >= n - 3);
    /* a point equal to a centroid: distance clamped to >= 0, index found */
    uint32_t a1;
    float d1;
    assert_int_equal(qx_assign_nearest(c + 123 * d, 1, c, k, d, &a1, &d1), 0);
    assert_int_equal(a1, 123);
    assert_true(d1 >= 0.0f && d1 < 1e-3f);
    free(a), free(dist), free(x), free(c);
}

static int oom_budget, oom_live;
static void *oom_malloc(size_t n) {
    if (oom_budget == 0) return NULL;
    oom_budget--;
    void *p = malloc(n);
    if (p) oom_live++;
    return p;
}
static void *oom_realloc(void *p, size_t n) {
    if (oom_budget == 0) return NULL;
    oom_budget--;
    if (!p) oom_live++;
    return realloc(p, n);
}
static void oom_free(void *p) {
    if (p) oom_live--;
    free(p);
}

/* qx_assign_nearest's scratch comes through the allocator seam: a failed
 * allocation is QX_ENOMEM, never a crash or a leak. */
static void test_assign_out_of_memory(void **state) {
    (void)state;
    const size_t n = 50, d = 6, k = 7;
    float *x = tu_clustered(n, d, 3, 95), *c = tu_clustered(k, d, 3, 96);
    uint32_t a[50];
    qx_allocator hooks = {oom_malloc, oom_realloc, oom_free};
    qx_set_allocator(&hooks);
    for (int budget = 0; budget < 3; budget++) {
        oom_budget = budget;
        oom_live = 0;
        int rc = qx_assign_nearest(x, n, c, k, d, a, NULL);
        assert_int_equal(oom_live, 0);
        if (budget < 2) assert_int_equal(rc, QX_ENOMEM);
        else assert_int_equal(rc, 0);
    }
    qx_set_allocator(NULL);
    free(x), free(c);
}

static void test_faiss_kmeans_clustering(void **state) {
    (void)state;
    const size_t n = 1000, d = 8, k = 10;
    float *x = tu_clustered(n, d, 10, 91);
    float *c = malloc(sizeof(float) * k * d);
    float err = -1;
    assert_int_equal(faiss_kmeans_clustering(d, n, k, x, c, &err), 0);
    assert_true(err > 0);
    assert_int_not_equal(faiss_kmeans_clustering(d, 5, k, x, c, &err), 0);
    assert_faiss_msg(NULL);
    FaissClusteringParameters p;
    faiss_ClusteringParameters_init(&p);
    assert_int_equal(p.niter, 25);
    assert_true(p.max_points_per_centroid > 0);
    free(c), free(x);
}

int main(void) {
    /* FAISS's OpenMP threads spin while waiting; on a shared, loaded machine
     * that makes RQ training ~10x slower. These tests check results, not
     * speed: one thread (k-means determinism is checked with two below). */
    omp_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_factory_ok_and_bad_string),
        cmocka_unit_test(test_errors_become_codes),
        cmocka_unit_test(test_error_message_replaced),
        cmocka_unit_test(test_error_is_per_thread),
        cmocka_unit_test(test_flat_search_exact),
        cmocka_unit_test(test_sa_roundtrip_pq_rq),
        cmocka_unit_test(test_set_beam),
        cmocka_unit_test(test_set_lsq_iters),
        cmocka_unit_test(test_ivf_nprobe),
        cmocka_unit_test(test_kmeans_deterministic),
        cmocka_unit_test(test_kmeans_reduces_error),
        cmocka_unit_test(test_kmeans_progressive),
        cmocka_unit_test(test_kmeans_bad_input),
        cmocka_unit_test(test_assign_nearest_brute),
        cmocka_unit_test(test_assign_out_of_memory),
        cmocka_unit_test(test_faiss_kmeans_clustering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
