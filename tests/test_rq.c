/* tests/test_rq.c — the residual quantizer on small synthetic clustered data
 * (tests/testutil.h, fixed seeds; a few seconds): per-step MSE, beam versus
 * greedy, stable codes, multi-rate decoding, LUTs, serialization round trip
 * and corrupt blobs, refinement never hurting (re-seeding staying close),
 * and the error codes of bad parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "qinx/error.h"
#include "qinx/kernels.h"
#include "qinx/rq.h"
#include "qinx/alloc.h"
#include "rq_impl.h" /* to change a trained quantizer's thread count */
#include <cblas.h>
#include <omp.h>

#define N 3000
#define D 16

static float *g_x;

static int setup(void **state) {
    (void)state;
    g_x = tu_clustered(N, D, 30, 42);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(g_x);
    return 0;
}

static qx_quantizer *train_rq(size_t M, int beam, int refine, int reseed) {
    qx_rq_opts o;
    qx_rq_opts_init(&o);
    o.M = M;
    o.beam = beam;
    o.train_beam = beam;
    o.refine_iters = refine;
    o.refine_min_per_codeword = 0; /* N is below the default minimum: these tests are about refinement itself */
    o.reseed_dead = reseed;
    o.kmeans_iters = 5;
    o.threads = 1;
    qx_quantizer *q = NULL;
    assert_int_equal(qx_rq_new(&q, D, &o), 0);
    int rc = qx_quantizer_train(q, g_x, N);
    if (rc) fprintf(stderr, "train: %s\n", qx_last_error());
    assert_int_equal(rc, 0);
    return q;
}

static double mse_of(const qx_quantizer *q, size_t m) {
    double mse;
    assert_int_equal(qx_quantizer_mse(q, g_x, N, m, &mse), 0);
    return mse;
}

static void test_step_mse_decreases(void **state) {
    (void)state;
    qx_quantizer *q = train_rq(6, 5, 2, 1);
    const double *sm = qx_rq_step_mse(q);
    const uint32_t *used = qx_rq_step_used(q);
    assert_non_null(sm);
    assert_non_null(used);
    double energy = 0;
    for (size_t i = 0; i < (size_t)N * D; i++) energy += (double)g_x[i] * g_x[i];
    energy /= N;
    assert_true(sm[0] < energy);
    for (size_t m = 1; m < 6; m++) {
        fprintf(stderr, "step %zu: mse %.4f used %u\n", m, sm[m], used[m]);
        assert_true(sm[m] < sm[m - 1]);
    }
    for (size_t m = 0; m < 6; m++) assert_true(used[m] > 0 && used[m] <= 256);
    /* the training MSE is what encoding the training set gives */
    double mse = mse_of(q, 0);
    assert_true(fabs(mse - sm[5]) <= 1e-3 * sm[5]);
    /* multi-rate: fewer steps, more error */
    for (size_t m = 1; m < 6; m++) assert_true(mse_of(q, m) > mse_of(q, m + 1));
    qx_quantizer_free(q);
}

static void test_beam_beats_greedy(void **state) {
    (void)state;
    qx_quantizer *q5 = train_rq(4, 5, 0, 1);
    qx_rq_opts o;
    qx_rq_opts_init(&o);
    o.M = 4;
    o.beam = 1;
    qx_quantizer *q1 = NULL;
    assert_int_equal(qx_rq_new(&q1, D, &o), 0);
    assert_int_equal(qx_rq_set_codebooks(q1, qx_rq_codebooks(q5)), 0);
    double m5 = mse_of(q5, 0), m1 = mse_of(q1, 0);
    fprintf(stderr, "same codebooks: beam 5 mse %.4f, greedy %.4f\n", m5, m1);
    assert_true(m5 <= m1);
    assert_null(qx_rq_step_mse(q1)); /* set_codebooks: no training statistics */
    qx_quantizer_free(q5);
    qx_quantizer_free(q1);
}

static void test_codes_stable_and_decode(void **state) {
    (void)state;
    const size_t M = 5;
    qx_quantizer *q = train_rq(M, 5, 1, 1);
    uint8_t *c1 = malloc(N * M), *c2 = malloc(N * M);
    assert_int_equal(qx_quantizer_encode(q, g_x, N, c1), 0);
    assert_int_equal(qx_quantizer_encode(q, g_x, N, c2), 0);
    assert_memory_equal(c1, c2, N * M);
    /* batch boundaries and thread counts do not change codes: one vector
     * at a time, then all of them on 3 threads (c1 was encoded on 1) */
    for (size_t i = 0; i < N; i += 37) {
        uint8_t one[8];
        assert_int_equal(qx_quantizer_encode(q, g_x + i * D, 1, one), 0);
        assert_memory_equal(one, c1 + i * M, M);
    }
    qx__rq *rq = (qx__rq *)q;
    assert_int_equal(rq->opts.threads, 1);
    rq->opts.threads = 3;
    assert_int_equal(qx__rq_threads(rq), 3);
    memset(c2, 0, N * M);
    assert_int_equal(qx_quantizer_encode(q, g_x, N, c2), 0);
    assert_memory_equal(c1, c2, N * M);
    rq->opts.threads = 1;
    const float *cb = qx_rq_codebooks(q);
    assert_ptr_equal(cb, qx_quantizer_additive_codebooks(q));
    float *rec = malloc(sizeof(float) * N * D);
    for (size_t m = 1; m <= M; m++) {
        assert_int_equal(qx_quantizer_decode(q, c1, N, m, rec), 0);
        for (size_t i = 0; i < N; i += 101) {
            for (size_t j = 0; j < D; j++) {
                double s = 0;
                for (size_t t = 0; t < m; t++) s += cb[(t * 256 + c1[i * M + t]) * D + j];
                assert_true(fabs(rec[i * D + j] - s) < 1e-4);
            }
        }
    }
    /* LUT: lut[m*256+k] = <q, c_mk>, and the LUT scan of a code is <q, decode> */
    float *lut = malloc(sizeof(float) * M * 256), scan[4];
    assert_int_equal(qx_quantizer_lut(q, g_x, 1, lut), 0);
    for (size_t k = 0; k < M * 256; k += 7)
        assert_true(fabs(lut[k] - qx_dot(g_x, cb + k * D, D)) < 1e-3);
    assert_int_equal(qx_quantizer_decode(q, c1, 4, 0, rec), 0);
    qx_lut_scan(scan, c1, 4, M, M, lut);
    for (size_t i = 0; i < 4; i++)
        assert_true(fabs(scan[i] - qx_dot(g_x, rec + i * D, D)) < 1e-2);
    free(lut);
    free(rec);
    free(c1);
    free(c2);
    qx_quantizer_free(q);
}

static void test_serialize_roundtrip(void **state) {
    (void)state;
    const size_t M = 3;
    qx_quantizer *q = train_rq(M, 5, 1, 1);
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(qx_quantizer_serialize(q, &blob, &len), 0);
    qx_quantizer *r = NULL;
    assert_int_equal(qx_quantizer_deserialize(blob, len, &r), 0);
    assert_int_equal(qx_quantizer_kind(r), QX_QUANT_RQ);
    assert_int_equal(qx_quantizer_steps(r), M);
    assert_int_equal(qx_quantizer_dim(r), D);
    assert_true(qx_quantizer_is_trained(r));
    assert_memory_equal(qx_rq_codebooks(q), qx_rq_codebooks(r), M * 256 * D * sizeof(float));
    assert_memory_equal(qx_rq_step_mse(q), qx_rq_step_mse(r), M * sizeof(double));
    assert_memory_equal(qx_rq_step_used(q), qx_rq_step_used(r), M * sizeof(uint32_t));
    uint8_t *c1 = malloc(N * M), *c2 = malloc(N * M);
    assert_int_equal(qx_quantizer_encode(q, g_x, N, c1), 0);
    assert_int_equal(qx_quantizer_encode(r, g_x, N, c2), 0);
    assert_memory_equal(c1, c2, N * M);
    /* every truncation is rejected, never crashes */
    for (size_t cut = 0; cut < len; cut += (cut < 64 ? 1 : 997)) {
        qx_quantizer *bad = NULL;
        assert_int_equal(qx_quantizer_deserialize(blob, cut, &bad), QX_EFORMAT);
        assert_null(bad);
    }
    /* a NaN codeword and an out-of-range option are rejected */
    uint8_t *copy = malloc(len);
    memcpy(copy, blob, len);
    float nan = NAN;
    memcpy(copy + len - M * 12 - 4 * 7, &nan, 4);
    qx_quantizer *bad = NULL;
    assert_int_equal(qx_quantizer_deserialize(copy, len, &bad), QX_EFORMAT);
    memcpy(copy, blob, len);
    int32_t beam = 1000;
    memcpy(copy + 20 + 4, &beam, 4);
    assert_int_equal(qx_quantizer_deserialize(copy, len, &bad), QX_EFORMAT);
    fprintf(stderr, "expected: %s\n", qx_last_error());
    /* a version-1 body (no kmeans_pdim field, 4 bytes shorter) still loads
     * and encodes identically: indexes written before the field existed */
    size_t pdim_at = 20 + 4 + 6 * 4;
    memcpy(copy, blob, pdim_at);
    memcpy(copy + pdim_at, blob + pdim_at + 4, len - pdim_at - 4);
    copy[20] = 1, copy[21] = copy[22] = copy[23] = 0;
    qx_quantizer *old = NULL;
    assert_int_equal(qx_quantizer_deserialize(copy, len - 4, &old), 0);
    assert_int_equal(qx_quantizer_encode(old, g_x, N, c2), 0);
    assert_memory_equal(c1, c2, N * M);
    qx_quantizer_free(old);
    free(copy);
    qx_free(blob);
    free(c1);
    free(c2);
    qx_quantizer_free(q);
    qx_quantizer_free(r);
}

static void test_refinement_and_reseed_never_hurt(void **state) {
    (void)state;
    qx_quantizer *plain = train_rq(4, 5, 0, 0), *ref = train_rq(4, 5, 3, 0);
    qx_quantizer *rs = train_rq(4, 5, 3, 1);
    double a = mse_of(plain, 0), b = mse_of(ref, 0), c = mse_of(rs, 0);
    fprintf(stderr, "mse: no refinement %.4f, refined %.4f, refined+reseed %.4f\n", a, b, c);
    assert_true(b <= a);
    /* re-seeding dead codewords is a heuristic, not a guarantee: on this data
     * (few dead codewords) it must keep the refinement's gain and stay within
     * 1% of refinement alone (measured: 0.9781 against 0.9770) */
    assert_true(c < a);
    assert_true(c <= b * 1.01);
    /* the refinement round is kept only if it helps: never worse than the
     * statistics before it */
    assert_true(qx_rq_step_mse(ref)[3] <= qx_rq_step_mse(plain)[3] + 1e-9);
    qx_quantizer_free(plain);
    qx_quantizer_free(ref);
    qx_quantizer_free(rs);
}

/* Refinement is skipped below refine_min_per_codeword training vectors per
 * codeword: then the codebooks are exactly those of refine_iters = 0. */
static void test_refinement_minimum(void **state) {
    (void)state;
    qx_quantizer *plain = train_rq(4, 5, 0, 1);
    qx_rq_opts o;
    qx_rq_opts_init(&o);
    assert_int_equal(o.refine_min_per_codeword, QX_RQ_REFINE_MIN_DEFAULT);
    o.M = 4;
    o.beam = o.train_beam = 5;
    o.refine_iters = 3;
    o.kmeans_iters = 5;
    o.threads = 1;
    size_t cb = 4 * 256 * D * sizeof(float);
    int mins[] = {QX_RQ_REFINE_MIN_DEFAULT, 3, 2}; /* N = 3000 vs 1024 codewords: 8192, 3072, 2048 */
    for (int i = 0; i < 3; i++) {
        o.refine_min_per_codeword = mins[i];
        qx_quantizer *q = NULL;
        assert_int_equal(qx_rq_new(&q, D, &o), 0);
        int rounds = -5, skipped = -5;
        assert_int_equal(qx_rq_refine_rounds(q, &rounds, &skipped), 0);
        assert_int_equal(rounds, 0);
        assert_int_equal(skipped, 0);
        assert_int_equal(qx_quantizer_train(q, g_x, N), 0);
        assert_int_equal(qx_rq_refine_rounds(q, &rounds, &skipped), 0);
        fprintf(stderr, "refine_min_per_codeword %d: %d rounds, MSE %.4f (no refinement %.4f)\n", mins[i],
                rounds, mse_of(q, 0), mse_of(plain, 0));
        if (i < 2) {
            assert_int_equal(skipped, 1);
            assert_int_equal(rounds, 0);
            assert_memory_equal(qx_rq_codebooks(q), qx_rq_codebooks(plain), cb);
        } else {
            assert_int_equal(skipped, 0);
            assert_true(rounds >= 1);
            assert_true(mse_of(q, 0) < mse_of(plain, 0));
        }
        qx_quantizer_free(q);
    }
    qx_quantizer_free(plain);
}

static void test_bad_parameters(void **state) {
    (void)state;
    qx_rq_opts o;
    qx_rq_opts_init(&o);
    qx_quantizer *q = NULL;
    o.M = 0;
    assert_int_equal(qx_rq_new(&q, D, &o), QX_EINVAL);
    assert_null(q);
    o.M = 65;
    assert_int_equal(qx_rq_new(&q, D, &o), QX_EINVAL);
    fprintf(stderr, "expected: %s\n", qx_last_error());
    o.M = 4;
    assert_int_equal(qx_rq_new(&q, 0, &o), QX_EDIM);
    assert_int_equal(qx_rq_new(&q, 65537, &o), QX_EDIM);
    o.beam = 0;
    assert_int_equal(qx_rq_new(&q, D, &o), QX_EINVAL);
    o.beam = 65;
    assert_int_equal(qx_rq_new(&q, D, &o), QX_EINVAL);
    o.beam = 5;
    o.kmeans_iters = 0;
    assert_int_equal(qx_rq_new(&q, D, &o), QX_EINVAL);
    o.kmeans_iters = 5;
    o.kmeans_pdim = 65;
    assert_int_equal(qx_rq_new(&q, D, &o), QX_EINVAL);
    o.kmeans_pdim = 5;
    o.refine_iters = -1;
    assert_int_equal(qx_rq_new(&q, D, &o), QX_EINVAL);
    o.refine_iters = 0;
    o.refine_min_per_codeword = -1;
    assert_int_equal(qx_rq_new(&q, D, &o), QX_EINVAL);
    fprintf(stderr, "expected: %s\n", qx_last_error());
    o.refine_min_per_codeword = 0;
    assert_int_equal(qx_rq_new(NULL, D, &o), QX_EINVAL);
    assert_int_equal(qx_rq_new(&q, D, &o), 0);
    uint8_t codes[4];
    float rec[D];
    assert_int_equal(qx_quantizer_encode(q, g_x, 1, codes), QX_ESTATE);
    assert_int_equal(qx_quantizer_decode(q, codes, 1, 0, rec), QX_ESTATE);
    assert_null(qx_rq_step_mse(q));
    assert_null(qx_quantizer_additive_codebooks(q));
    float *x = malloc(sizeof(float) * N * D);
    memcpy(x, g_x, sizeof(float) * N * D);
    x[77 * D + 3] = NAN;
    assert_int_equal(qx_quantizer_train(q, x, N), QX_EINVAL);
    fprintf(stderr, "expected: %s\n", qx_last_error());
    assert_int_equal(qx_quantizer_train(q, g_x, 100), QX_EINVAL); /* < 256 vectors */
    assert_int_equal(qx_quantizer_train(q, g_x, N), 0);
    assert_int_equal(qx_quantizer_encode(q, x + 77 * D, 1, codes), QX_EINVAL);
    assert_int_equal(qx_quantizer_decode(q, codes, 1, 5, rec), QX_EINVAL);
    float *cb = calloc(4 * 256 * D, sizeof(float));
    cb[5] = INFINITY;
    assert_int_equal(qx_rq_set_codebooks(q, cb), QX_EINVAL);
    free(cb);
    free(x);
    qx_quantizer_free(q);
    qx_quantizer_free(NULL);
}

/* Out-of-memory injection through the allocator seam: the k-th allocation
 * fails, for every k until a whole new/train/encode/serialize/deserialize
 * cycle succeeds. Every call must fail cleanly (QX_ENOMEM; no crash, and the
 * sanitizer build checks nothing leaks). */
static long g_fail_at = -1, g_count;
static void *oom_malloc(size_t s) {
    if (g_fail_at >= 0 && g_count++ == g_fail_at) return NULL;
    return malloc(s);
}
static void *oom_realloc(void *p, size_t s) {
    if (g_fail_at >= 0 && g_count++ == g_fail_at) return NULL;
    return realloc(p, s);
}

static void test_out_of_memory(void **state) {
    (void)state;
    const qx_allocator a = {oom_malloc, oom_realloc, free};
    qx_rq_opts o;
    qx_rq_opts_init(&o);
    o.M = 2;
    o.kmeans_iters = 2;
    o.refine_iters = 1;
    o.refine_min_per_codeword = 0; /* n = 400: reach the refinement's allocations too */
    o.threads = 1;
    size_t n = 400;
    int completed = 0;
    long k = 0;
    for (; k < 2000 && !completed; k++) {
        qx_set_allocator(&a);
        g_count = 0;
        g_fail_at = k;
        qx_quantizer *q = NULL, *r = NULL;
        uint8_t codes[8], *blob = NULL;
        size_t len;
        int rc = qx_rq_new(&q, D, &o);
        if (rc == 0) rc = qx_quantizer_train(q, g_x, n);
        if (rc == 0) rc = qx_quantizer_encode(q, g_x, 4, codes);
        if (rc == 0) rc = qx_quantizer_serialize(q, &blob, &len);
        if (rc == 0) rc = qx_quantizer_deserialize(blob, len, &r);
        completed = rc == 0 && g_count <= k; /* nothing was refused */
        g_fail_at = -1;
        qx_set_allocator(NULL);
        if (rc != 0 && rc != QX_ENOMEM && rc != QX_EFAISS) {
            fprintf(stderr, "allocation %ld refused: rc %d (%s)\n", k, rc, qx_last_error());
            fail();
        }
        qx_free(blob);
        qx_quantizer_free(q);
        qx_quantizer_free(r);
    }
    fprintf(stderr, "out-of-memory: %ld allocation points refused cleanly\n", k - 1);
    assert_true(completed);
    assert_true(k > 10);
}

int main(void) {
    /* small problems: one thread avoids OpenMP/OpenBLAS spin-wait contention
     * on a shared machine (results do not depend on the thread count) */
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_mse_decreases),
        cmocka_unit_test(test_beam_beats_greedy),
        cmocka_unit_test(test_codes_stable_and_decode),
        cmocka_unit_test(test_serialize_roundtrip),
        cmocka_unit_test(test_refinement_and_reseed_never_hurt),
        cmocka_unit_test(test_refinement_minimum),
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
