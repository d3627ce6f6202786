/* tests/test_kernels.c — every SIMD kernel against the scalar reference for
 * every dimension 1..130 (unaligned pointers included), lut_scan for
 * M = 1..64 with odd n and padded row strides, qx_l2sqr_matrix against a
 * naive double-precision loop, and the QX_SIMD override. Levels the CPU lacks
 * are skipped and named on stderr. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "kernels_impl.h"
#include "qinx/error.h"

static float *rand_floats(size_t n, uint64_t seed) {
    tu_rng r;
    tu_rng_seed(&r, seed);
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = (float)tu_rng_normal(&r);
    return v;
}

static double ref_l2(const float *a, const float *b, size_t d, double *mag) {
    double s = 0;
    for (size_t i = 0; i < d; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    *mag = s;
    return s;
}

static double ref_dot(const float *a, const float *b, size_t d, double *mag) {
    double s = 0, m = 0;
    for (size_t i = 0; i < d; i++) {
        s += (double)a[i] * b[i];
        m += fabs((double)a[i] * b[i]);
    }
    *mag = m;
    return s;
}

static void check_close(double got, double want, double mag, const char *what, const char *lvl,
                        size_t d) {
    double tol = 1e-5 * mag + 1e-6;
    if (fabs(got - want) > tol) {
        fprintf(stderr, "%s/%s d=%zu: got %.9g want %.9g\n", lvl, what, d, got, want);
        fail();
    }
}

/* The first test: QX_SIMD=scalar set before the first dispatch is honoured. */
static void test_simd_override_scalar(void **state) {
    (void)state;
    setenv("QX_SIMD", "scalar", 1);
    assert_int_equal(qx_simd_active(), QX_SIMD_SCALAR);
    assert_string_equal(qx__kernels()->name, "scalar");
    assert_string_equal(qx_simd_name(QX_SIMD_AVX512), "avx512");
    assert_non_null(qx__kernels_for(QX_SIMD_SCALAR));
    /* the CPU's level is one of the three, its kernels exist, and a level
     * is claimed only when the CPU has the instructions it needs */
    qx_simd_level cpu = qx__simd_cpu_level();
    assert_true(cpu == QX_SIMD_SCALAR || cpu == QX_SIMD_AVX2 || cpu == QX_SIMD_AVX512);
    assert_non_null(qx__kernels_for(cpu));
    assert_int_equal(cpu >= QX_SIMD_AVX2, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
    if (cpu == QX_SIMD_AVX512) assert_true(__builtin_cpu_supports("avx512f"));
    if (cpu < QX_SIMD_AVX512) assert_null(qx__kernels_for(QX_SIMD_AVX512));
}

static void test_pairwise_all_dims(void **state) {
    (void)state;
    enum { DMAX = 130, NY = 7 };
    /* +1 so that a and b can start one float off alignment. */
    float *a = rand_floats(DMAX + 1, 1), *y = rand_floats(NY * DMAX + 1, 2);
    float out[NY];
    for (int lvl = QX_SIMD_SCALAR; lvl <= QX_SIMD_AVX512; lvl++) {
        const qx__kernel_table *k = qx__kernels_for((qx_simd_level)lvl);
        if (!k) {
            fprintf(stderr, "skipping level %s: CPU lacks it\n", qx_simd_name(lvl));
            continue;
        }
        for (size_t d = 1; d <= DMAX; d++) {
            for (int off = 0; off <= 1; off++) {
                const float *x = a + off, *b = y + off;
                double mag, want = ref_l2(x, b, d, &mag);
                check_close(k->l2sqr(x, b, d), want, mag, "l2sqr", k->name, d);
                want = ref_dot(x, b, d, &mag);
                check_close(k->dot(x, b, d), want, mag, "dot", k->name, d);
                k->l2sqr_ny(out, x, b, d, NY);
                for (size_t j = 0; j < NY; j++) {
                    want = ref_l2(x, b + j * d, d, &mag);
                    check_close(out[j], want, mag, "l2sqr_ny", k->name, d);
                }
                k->dot_ny(out, x, b, d, NY);
                for (size_t j = 0; j < NY; j++) {
                    want = ref_dot(x, b + j * d, d, &mag);
                    check_close(out[j], want, mag, "dot_ny", k->name, d);
                }
            }
        }
    }
    free(a);
    free(y);
}

static void check_lut_scan(void (*scan)(float *, const uint8_t *, size_t, size_t, size_t,
                                        const float *),
                           const char *name) {
    enum { MMAX = 64 };
    static const size_t ns[] = {1, 3, 7, 9, 17, 33, 101};
    float *lut = rand_floats(MMAX * 256, 3);
    tu_rng r;
    tu_rng_seed(&r, 4);
    for (size_t M = 1; M <= MMAX; M++) {
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
            size_t n = ns[ni], stride = M + (M % 3); /* padded rows too */
            /* exact-size buffer so ASan catches any read past the last code */
            uint8_t *codes = malloc(n * stride);
            for (size_t i = 0; i < n * stride; i++) codes[i] = (uint8_t)tu_rng_next(&r);
            float *got = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
            scan(got, codes, n, stride, M, lut);
            for (size_t i = 0; i < n; i++) {
                double s = 0, mag = 0;
                for (size_t m = 0; m < M; m++) {
                    float v = lut[m * 256 + codes[i * stride + m]];
                    s += v;
                    mag += fabs(v);
                }
                want[i] = (float)s;
                if (fabs(got[i] - s) > 1e-5 * mag + 1e-6) {
                    fprintf(stderr, "%s lut_scan M=%zu n=%zu i=%zu: got %.9g want %.9g\n", name,
                            M, n, i, got[i], s);
                    fail();
                }
            }
            free(codes);
            free(got);
            free(want);
        }
    }
    free(lut);
}

static void test_lut_scan(void **state) {
    (void)state;
    check_lut_scan(qx__lut_scan_scalar_ref, "scalar_ref");
    check_lut_scan(qx__lut_scan_scalar_unrolled, "scalar_unrolled");
    for (int lvl = QX_SIMD_SCALAR; lvl <= QX_SIMD_AVX512; lvl++) {
        const qx__kernel_table *k = qx__kernels_for((qx_simd_level)lvl);
        if (!k) {
            fprintf(stderr, "skipping lut_scan level %s: CPU lacks it\n", qx_simd_name(lvl));
            continue;
        }
        check_lut_scan(k->lut_scan, k->name);
    }
    if (qx__kernels_for(QX_SIMD_AVX2)) check_lut_scan(qx__lut_scan_avx2_gather, "avx2_gather");
}

static void test_lut_scan_unrolled_is_bit_exact(void **state) {
    (void)state;
    size_t n = 13, M = 16;
    float *lut = rand_floats(M * 256, 5);
    uint8_t codes[13 * 16];
    for (size_t i = 0; i < sizeof codes; i++) codes[i] = (uint8_t)(i * 37 + 11);
    float a[13], b[13];
    qx__lut_scan_scalar_ref(a, codes, n, M, M, lut);
    qx__lut_scan_scalar_unrolled(b, codes, n, M, M, lut);
    assert_memory_equal(a, b, sizeof a);
    free(lut);
}

static void test_beam_kernels(void **state) {
    (void)state;
    enum { MMAX = 64 };
    float *rows = rand_floats((size_t)MMAX * 256 * 256, 6), *norms = rand_floats(256, 7);
    float *xc = rand_floats(256, 8);
    uint8_t codes[MMAX];
    for (size_t i = 0; i < MMAX; i++) codes[i] = (uint8_t)(i * 53 + 7);
    float want[256], got[256];
    for (int lvl = QX_SIMD_SCALAR; lvl <= QX_SIMD_AVX512; lvl++) {
        const qx__kernel_table *k = qx__kernels_for((qx_simd_level)lvl);
        if (!k) {
            fprintf(stderr, "skipping beam kernels level %s: CPU lacks it\n", qx_simd_name(lvl));
            continue;
        }
        for (size_t m = 0; m <= MMAX; m++) {
            qx__beam_scores_scalar(want, norms, xc, 1.5f, rows, codes, m);
            k->beam_scores(got, norms, xc, 1.5f, rows, codes, m);
            /* same order of additions, no FMA: bit-identical, so codes do not
             * depend on the SIMD level */
            assert_memory_equal(want, got, sizeof want);
        }
        for (size_t n = 0; n <= 40; n++)
            for (size_t at = 0; at <= n; at++) {
                float v[40];
                for (size_t i = 0; i < n; i++) v[i] = i < at ? 5.0f : -1.0f;
                assert_int_equal(k->find_lt(v, n, 0.0f), at);
                assert_int_equal(k->find_lt(v, n, -2.0f), n);
            }
    }
    free(rows);
    free(norms);
    free(xc);
}

static void test_l2sqr_matrix(void **state) {
    (void)state;
    static const size_t dims[] = {1, 3, 17, 128};
    for (size_t di = 0; di < 4; di++) {
        size_t d = dims[di], nx = 13, ny = 29;
        float *x = rand_floats(nx * d, 10 + di), *y = rand_floats(ny * d, 20 + di);
        float *dist = malloc(sizeof(float) * nx * ny), *dist2 = malloc(sizeof(float) * nx * ny);
        float *xn = malloc(sizeof(float) * nx), *yn = malloc(sizeof(float) * ny);
        assert_int_equal(qx_l2sqr_matrix(dist, x, nx, y, ny, d, NULL, NULL), 0);
        for (size_t i = 0; i < nx; i++) xn[i] = qx_dot(x + i * d, x + i * d, d);
        for (size_t j = 0; j < ny; j++) yn[j] = qx_dot(y + j * d, y + j * d, d);
        assert_int_equal(qx_l2sqr_matrix(dist2, x, nx, y, ny, d, xn, yn), 0);
        for (size_t i = 0; i < nx; i++)
            for (size_t j = 0; j < ny; j++) {
                double mag, want = ref_l2(x + i * d, y + j * d, d, &mag);
                double tol = 1e-4 * (xn[i] + yn[j]) + 1e-5;
                assert_true(fabs(dist[i * ny + j] - want) <= tol);
                assert_true(fabs(dist2[i * ny + j] - want) <= tol);
                assert_true(dist[i * ny + j] >= 0);
            }
        /* identical rows give exactly 0, never a negative distance */
        assert_int_equal(qx_l2sqr_matrix(dist, x, nx, x, nx, d, NULL, NULL), 0);
        for (size_t i = 0; i < nx; i++) assert_true(dist[i * nx + i] >= 0 && dist[i * nx + i] < 1e-3);
        free(x), free(y), free(dist), free(dist2), free(xn), free(yn);
    }
    float one = 1;
    assert_int_equal(qx_l2sqr_matrix(NULL, &one, 1, &one, 1, 1, NULL, NULL), QX_EINVAL);
    assert_int_equal(qx_l2sqr_matrix(&one, &one, 1, &one, 1, 0, NULL, NULL), QX_EINVAL);
    assert_int_equal(qx_l2sqr_matrix(&one, &one, 0, &one, 1, 1, NULL, NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simd_override_scalar),
        cmocka_unit_test(test_pairwise_all_dims),
        cmocka_unit_test(test_lut_scan),
        cmocka_unit_test(test_lut_scan_unrolled_is_bit_exact),
        cmocka_unit_test(test_beam_kernels),
        cmocka_unit_test(test_l2sqr_matrix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
