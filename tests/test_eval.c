/* tests/test_eval.c — the evaluation references of qinx/eval.h: recall
 * figures on hand-made results, and the Gaussian distortion-rate bound
 * (exact values on a source with a known spectrum, the closed form on
 * isotropic samples, bad input, and the two sides of the bound for a real
 * quantizer: qinx RQ cannot beat it on Gaussian data and does on clustered
 * data). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qinx/error.h"
#include "qinx/eval.h"
#include "qinx/quantizer.h"
#include "qinx/rq.h"
#include "testutil.h"

static void test_recall_hand_made(void **state) {
    (void)state;
    /* k = 10: query 0 finds its neighbour first, query 1 at rank 4, query 2
     * never; top-10 overlaps 2, 3 and 0 of the true 10 */
    int64_t ids[30];
    int32_t gt[30];
    for (int i = 0; i < 30; i++) ids[i] = -1, gt[i] = 100 + i;
    ids[0] = gt[0] = 7, ids[1] = gt[5] = 1;
    ids[13] = gt[10] = 4, ids[10] = gt[11] = 5, ids[11] = gt[19] = 6;
    ids[20] = 3, gt[20] = 0;
    qx_recall r;
    assert_int_equal(qx_recall_compute(ids, 10, gt, 10, 3, &r), 0);
    assert_true(fabs(r.r1 - 1.0 / 3) < 1e-12);
    assert_true(fabs(r.r10 - 2.0 / 3) < 1e-12);
    assert_true(fabs(r.r10at10 - 5.0 / 30) < 1e-12);
    assert_true(isnan(r.r100)); /* k = 10 cannot support recall@100 */
    assert_int_equal(qx_recall_compute(ids, 10, gt, 3, 3, &r), 0);
    assert_true(isnan(r.r10at10)); /* nor gt_k = 3 a 10-recall@10 */
    /* bad arguments are errors, not silent zeros */
    assert_int_equal(qx_recall_compute(NULL, 10, gt, 10, 3, &r), QX_EINVAL);
    assert_int_equal(qx_recall_compute(ids, 0, gt, 10, 3, &r), QX_EINVAL);
    assert_int_equal(qx_recall_compute(ids, 10, gt, 10, 3, NULL), QX_EINVAL);
}

/* Rows ±a·e1, ±b·e2: covariance diag(a²/2, b²/2) = diag(4, 1). Reverse
 * water-filling by hand: 0 bits → 5 (all the variance); 0.5 bit → θ = 2,
 * D = 2 + 1; 1 bit → θ = 1, D = 2; 3 bits → θ = 1/4, D = 1/2. */
static void test_rd_known_spectrum(void **state) {
    (void)state;
    const float a = sqrtf(8.0f), b = sqrtf(2.0f);
    const float x[] = {a, 0, -a, 0, 0, b, 0, -b};
    const double bits[] = {0, 0.5, 1, 3};
    double D[4], var = 0;
    assert_int_equal(qx_gauss_rd(x, 4, 2, bits, 4, D, &var), 0);
    assert_float_equal(var, 5.0, 1e-9);
    assert_float_equal(D[0], 5.0, 1e-9);
    assert_float_equal(D[1], 3.0, 1e-9);
    assert_float_equal(D[2], 2.0, 1e-9);
    assert_float_equal(D[3], 0.5, 1e-9);
}

static float *gaussian(size_t n, size_t d, double sigma, uint64_t seed) {
    tu_rng r;
    tu_rng_seed(&r, seed);
    float *x = malloc(sizeof(float) * n * d);
    for (size_t i = 0; i < n * d; i++) x[i] = (float)(3.0 + sigma * tu_rng_normal(&r));
    return x;
}

/* Isotropic N(µ, σ²I): D(R) = d σ² 2^(−2R/d), whatever the mean. */
static void test_rd_isotropic(void **state) {
    (void)state;
    const size_t n = 40000, d = 16;
    float *x = gaussian(n, d, 2.0, 11);
    const double bits[] = {32, 64};
    double D[2];
    assert_int_equal(qx_gauss_rd(x, n, d, bits, 2, D, NULL), 0);
    for (int i = 0; i < 2; i++) {
        double want = d * 4.0 * pow(2.0, -2.0 * bits[i] / d);
        fprintf(stderr, "isotropic d=%zu, %g bits: %.4f (closed form %.4f)\n", d, bits[i], D[i], want);
        assert_true(fabs(D[i] / want - 1) < 0.03);
    }
    free(x);
}

static double rq_mse(const float *train, size_t nt, const float *test, size_t n, size_t d, size_t M) {
    qx_rq_opts o;
    qx_rq_opts_init(&o);
    o.M = M;
    o.seed = 5;
    qx_quantizer *q = NULL;
    double mse = 0;
    assert_int_equal(qx_rq_new(&q, d, &o), 0);
    assert_int_equal(qx_quantizer_train(q, train, nt), 0);
    assert_int_equal(qx_quantizer_mse(q, test, n, 0, &mse), 0);
    qx_quantizer_free(q);
    return mse;
}

/* The bound holds for a real quantizer on a Gaussian source (qinx RQ, held-out
 * vectors), and is beaten on clustered data, where the codebooks find the
 * clusters that a covariance does not see. */
static void test_rd_two_sides(void **state) {
    (void)state;
    const size_t n = 8000, d = 16, M = 2;
    const double bits = 8.0 * M;
    float *g = gaussian(2 * n, d, 1.0, 12);
    double Dg, Dc;
    assert_int_equal(qx_gauss_rd(g + n * d, n, d, &bits, 1, &Dg, NULL), 0);
    double mg = rq_mse(g, n, g + n * d, n, d, M);
    fprintf(stderr, "gaussian: RQ %zu B mse %.4f, bound %.4f (%.3fx)\n", M, mg, Dg, mg / Dg);
    assert_true(mg > Dg);
    float *c = tu_clustered(2 * n, d, 64, 13);
    assert_int_equal(qx_gauss_rd(c + n * d, n, d, &bits, 1, &Dc, NULL), 0);
    double mc = rq_mse(c, n, c + n * d, n, d, M);
    fprintf(stderr, "clustered: RQ %zu B mse %.4f, bound %.4f (%.3fx)\n", M, mc, Dc, mc / Dc);
    assert_true(mc < Dc);
    free(g);
    free(c);
}

static void test_rd_bad_input(void **state) {
    (void)state;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    double bits = 8, neg = -1, D;
    assert_int_equal(qx_gauss_rd(x, 4, 0, &bits, 1, &D, NULL), QX_EDIM);
    assert_int_equal(qx_gauss_rd(x, 4, QX_RD_MAX_DIM + 1, &bits, 1, &D, NULL), QX_EDIM);
    assert_int_equal(qx_gauss_rd(x, 1, 2, &bits, 1, &D, NULL), QX_EINVAL);
    assert_int_equal(qx_gauss_rd(x, 4, 2, &neg, 1, &D, NULL), QX_EINVAL);
    assert_int_equal(qx_gauss_rd(NULL, 4, 2, &bits, 1, &D, NULL), QX_EINVAL);
    x[5] = NAN;
    assert_int_equal(qx_gauss_rd(x, 4, 2, &bits, 1, &D, NULL), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "vector 2"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recall_hand_made),
        cmocka_unit_test(test_rd_known_spectrum),
        cmocka_unit_test(test_rd_isotropic),
        cmocka_unit_test(test_rd_two_sides),
        cmocka_unit_test(test_rd_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
