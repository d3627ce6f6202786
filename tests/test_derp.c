/* tests/test_derp.c — DERP statistics: probes are unit and deterministic;
 * projections match a naive loop; the Kolmogorov distribution and the
 * Lilliefors p-value match published values; normal samples are rejected at
 * about the nominal rate while uniform, bimodal, skewed and heavy-tailed ones
 * are rejected; the two-sample test holds its level and catches shifts and
 * scale changes; Holm's rule on a worked example; codebook health on a
 * trained RQ and on a collapsed one; drift on a fresh sample versus a
 * shifted / permuted copy; the reservoir is uniform, deterministic and
 * survives serialization; the JSON report parses and has its documented
 * keys and types; out-of-memory at every allocation fails cleanly.
 * Fixed seeds throughout; the whole binary runs in a few seconds. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "derp_impl.h"
#include "qinx/alloc.h"
#include "qinx/derp.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "qinx/gate.h"
#include "qinx/rng.h"
#include "qinx/rq.h"
#include "qinx/vecfile.h"

/* ---- samplers ------------------------------------------------------------------ */

static float *normal_sample(tu_rng *r, size_t n, double mu, double sd) {
    float *v = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) v[i] = (float)(mu + sd * tu_rng_normal(r));
    return v;
}

typedef enum { D_UNIFORM, D_BIMODAL, D_LOGNORMAL, D_LAPLACE } dist_kind;

static float draw(tu_rng *r, dist_kind k) {
    double u = tu_rng_uniform(r);
    switch (k) {
    case D_UNIFORM: return (float)u;
    case D_BIMODAL: return (float)((u < 0.5 ? -2.0 : 2.0) + tu_rng_normal(r));
    case D_LOGNORMAL: return (float)exp(tu_rng_normal(r));
    case D_LAPLACE: {
        double e = -log(1.0 - tu_rng_uniform(r));
        return (float)(u < 0.5 ? -e : e);
    }
    }
    return 0;
}

/* ---- probes and projections -------------------------------------------------------- */

static void test_probes_unit_and_deterministic(void **state) {
    (void)state;
    size_t P = 64, d = 37;
    float *a = malloc(sizeof(float) * P * d), *b = malloc(sizeof(float) * P * d);
    float *c = malloc(sizeof(float) * 8 * d);
    assert_int_equal(qx_derp_probes_make(P, d, 42, a), 0);
    assert_int_equal(qx_derp_probes_make(P, d, 42, b), 0);
    assert_int_equal(qx_derp_probes_make(8, d, 42, c), 0);
    assert_memory_equal(a, b, sizeof(float) * P * d);
    assert_memory_equal(a, c, sizeof(float) * 8 * d); /* probe p does not depend on P */
    double mean_abs_coord = 0;
    for (size_t p = 0; p < P; p++) {
        double n2 = 0;
        for (size_t j = 0; j < d; j++) n2 += (double)a[p * d + j] * a[p * d + j];
        assert_true(fabs(n2 - 1.0) < 1e-5);
        mean_abs_coord += fabs(a[p * d]);
    }
    /* Uniform on the sphere: E|u_0| = sqrt(2/(pi d)) roughly. */
    mean_abs_coord /= (double)P;
    assert_true(fabs(mean_abs_coord - sqrt(2.0 / (M_PI * (double)d))) < 0.05);
    assert_int_equal(qx_derp_probes_make(P, d, 43, b), 0);
    assert_memory_not_equal(a, b, sizeof(float) * P * d);
    /* Pinned values: the generator must give the same probes everywhere. */
    float d1[4];
    assert_int_equal(qx_derp_probes_make(2, 2, 7, d1), 0);
    assert_true(fabs(hypot(d1[0], d1[1]) - 1) < 1e-6 && fabs(hypot(d1[2], d1[3]) - 1) < 1e-6);
    assert_int_equal(qx_derp_probes_make(0, d, 1, a), QX_EINVAL);
    assert_int_equal(qx_derp_probes_make(P, 0, 1, a), QX_EDIM);
    free(a);
    free(b);
    free(c);
}

static void test_project_matches_naive(void **state) {
    (void)state;
    size_t n = 53, d = 19, P = 7;
    float *x = tu_clustered(n, d, 3, 5), *u = malloc(sizeof(float) * P * d),
          *proj = malloc(sizeof(float) * P * n);
    assert_int_equal(qx_derp_probes_make(P, d, 9, u), 0);
    assert_int_equal(qx_derp_project(x, n, d, u, P, proj), 0);
    for (size_t p = 0; p < P; p++)
        for (size_t i = 0; i < n; i++) {
            double s = 0;
            for (size_t j = 0; j < d; j++) s += (double)u[p * d + j] * x[i * d + j];
            assert_true(fabs(s - proj[p * n + i]) < 1e-4 * (1 + fabs(s)));
        }
    x[5 * d + 3] = NAN;
    assert_int_equal(qx_derp_project(x, n, d, u, P, proj), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "vector 5"));
    free(x);
    free(u);
    free(proj);
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_radix_sort_matches_qsort(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 99);
    size_t sizes[] = {1, 2, 7, 100, 4097, 20000};
    for (size_t t = 0; t < 6; t++) {
        size_t n = sizes[t];
        float *v = malloc(sizeof(float) * n);
        double *got = malloc(sizeof(double) * n), *want = malloc(sizeof(double) * n);
        uint32_t *tmp = malloc(sizeof(uint32_t) * 2 * n);
        const float special[] = {0.0f, -0.0f, 1e-42f, -1e-42f, 3.4e38f, -3.4e38f, INFINITY,
                                 -INFINITY, 1.0f, -1.0f};
        for (size_t i = 0; i < n; i++) {
            uint64_t k = tu_rng_next(&r) % 13;
            v[i] = k < 10 ? special[k] : (float)(tu_rng_normal(&r) * pow(10, (double)(k - 11)));
            want[i] = v[i];
        }
        qsort(want, n, sizeof(double), cmp_dbl);
        qx__derp_sort_floats(v, n, got, tmp);
        for (size_t i = 0; i < n; i++) assert_true(got[i] == want[i]);
        free(v);
        free(got);
        free(want);
        free(tmp);
    }
}

/* ---- distributions and p-values --------------------------------------------------- */

static void test_kolmogorov_q_known_values(void **state) {
    (void)state;
    /* Q_KS = 1 - K(lambda); K(0.5) = 0.0360547563, K(1) = 0.7300003283,
     * K(1.36) = 0.9505, K(2) = 0.9993290747 (Kolmogorov 1933 tables). */
    assert_true(fabs(qx_derp_kolmogorov_q(0.0) - 1.0) < 1e-12);
    assert_true(fabs(qx_derp_kolmogorov_q(0.5) - (1 - 0.0360547563)) < 1e-8);
    assert_true(fabs(qx_derp_kolmogorov_q(1.0) - (1 - 0.7300003283)) < 1e-8);
    assert_true(fabs(qx_derp_kolmogorov_q(1.36) - 0.0495) < 5e-4);
    assert_true(fabs(qx_derp_kolmogorov_q(2.0) - (1 - 0.9993290747)) < 1e-9);
    assert_true(qx_derp_kolmogorov_q(10.0) < 1e-80);
    /* The two series meet at lambda = 1.18 without a jump, and Q decreases. */
    assert_true(fabs(qx_derp_kolmogorov_q(1.18 - 1e-12) - qx_derp_kolmogorov_q(1.18)) < 1e-10);
    for (double l = 0.01; l < 3; l += 0.01)
        assert_true(qx_derp_kolmogorov_q(l + 0.01) <= qx_derp_kolmogorov_q(l) + 1e-15);
    assert_true(isnan(qx_derp_kolmogorov_q(-1)));
}

static void test_lilliefors_pvalue_critical_values(void **state) {
    (void)state;
    /* Large-n Lilliefors critical values (Stephens 1974: the modified
     * statistic's 5% and 1% points 0.895 and 1.035, i.e. D ~ 0.895/sqrt(n)).
     * Dallal-Wilkinson's (n/100)^0.49 rescaling drifts slightly
     * conservative as n grows (p = 0.065 at the 5% point for n = 5000). */
    size_t ns[] = {200, 500, 1000, 5000};
    for (size_t i = 0; i < 4; i++) {
        double sn = sqrt((double)ns[i]);
        double p05 = qx_derp_lilliefors_pvalue(0.895 / sn, ns[i]);
        double p01 = qx_derp_lilliefors_pvalue(1.035 / sn, ns[i]);
        assert_true(p05 > 0.04 && p05 < 0.07);
        assert_true(p01 > 0.008 && p01 < 0.018);
    }
    /* Small n from Lilliefors' (1967) table: n = 20, 5% point 0.190. */
    double p = qx_derp_lilliefors_pvalue(0.190, 20);
    assert_true(p > 0.035 && p < 0.065);
    /* Monotone in D, within [0, 1]. */
    for (double D = 0; D < 0.2; D += 0.001) {
        double a = qx_derp_lilliefors_pvalue(D, 300), b = qx_derp_lilliefors_pvalue(D + 0.001, 300);
        assert_true(a >= 0 && a <= 1 && b <= a + 0.02); /* the 0.1 splice may step by ~0.01 */
    }
    assert_true(isnan(qx_derp_lilliefors_pvalue(0.1, 4)));
}

static void test_lilliefors_normal_rejected_at_nominal_rate(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 2026);
    size_t reps = 1000, n = 500, rej05 = 0, rej01 = 0;
    for (size_t t = 0; t < reps; t++) {
        /* Any mean and scale: the test estimates both. */
        float *v = normal_sample(&r, n, 10 * tu_rng_normal(&r), exp(tu_rng_normal(&r)));
        double D, p;
        assert_int_equal(qx_derp_lilliefors(v, n, &D, &p), 0);
        rej05 += p <= 0.05;
        rej01 += p <= 0.01;
        free(v);
    }
    double rate05 = (double)rej05 / reps, rate01 = (double)rej01 / reps;
    fprintf(stderr, "lilliefors null n=500: rejected %.3f at 0.05, %.3f at 0.01\n", rate05,
            rate01);
    assert_true(rate05 >= 0.02 && rate05 <= 0.09);
    assert_true(rate01 <= 0.025);
}

/* The calibration table of docs/derp.md (2000 replicates at n = 100, 1000,
 * 10000; ~10 s): run with QX_DERP_CALIBRATE=1. */
static void test_lilliefors_calibration_table(void **state) {
    (void)state;
    const char *env = getenv("QX_DERP_CALIBRATE");
    if (!env || strcmp(env, "1") != 0) {
        skip();
        return;
    }
    size_t ns[3] = {100, 1000, 10000}, reps = 2000;
    tu_rng r;
    tu_rng_seed(&r, 4242);
    for (int k = 0; k < 3; k++) {
        size_t n = ns[k], rej[3] = {0, 0, 0};
        for (size_t t = 0; t < reps; t++) {
            float *v = normal_sample(&r, n, 0, 1);
            double p;
            assert_int_equal(qx_derp_lilliefors(v, n, NULL, &p), 0);
            rej[0] += p <= 0.05;
            rej[1] += p <= 0.01;
            rej[2] += p <= 0.001;
            free(v);
        }
        fprintf(stderr, "| %zu | %.4f | %.4f | %.4f |\n", n, (double)rej[0] / reps,
                (double)rej[1] / reps, (double)rej[2] / reps);
        /* a calibrated test rejects a true null at its level: within about
         * four binomial standard deviations of 2000 replicates */
        assert_in_range(rej[0], 60, 140);  /* alpha 0.05: 100 expected, sd 9.7 */
        assert_in_range(rej[1], 4, 40);    /* alpha 0.01: 20 expected, sd 4.4 */
        assert_in_range(rej[2], 0, 10);    /* alpha 0.001: 2 expected, sd 1.4 */
    }
}

static void test_lilliefors_power(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 77);
    const char *names[] = {"uniform", "bimodal", "lognormal", "laplace"};
    for (int k = 0; k < 4; k++) {
        size_t reps = 50, n = 1000, rej = 0;
        double Dsum = 0;
        float *v = malloc(sizeof(float) * n);
        for (size_t t = 0; t < reps; t++) {
            for (size_t i = 0; i < n; i++) v[i] = draw(&r, (dist_kind)k);
            double D, p;
            assert_int_equal(qx_derp_lilliefors(v, n, &D, &p), 0);
            rej += p <= 0.05;
            Dsum += D;
        }
        fprintf(stderr, "lilliefors power n=1000 %-9s: %zu/%zu rejected, mean D %.4f\n", names[k],
                rej, reps, Dsum / reps);
        assert_true(rej >= 48); /* power near 1 */
        free(v);
    }
}

static void test_lilliefors_edge_cases(void **state) {
    (void)state;
    float c[10] = {3, 3, 3, 3, 3, 3, 3, 3, 3, 3}, s[4] = {1, 2, 3, 4};
    double D, p;
    assert_int_equal(qx_derp_lilliefors(c, 10, &D, &p), 0);
    assert_true(D == 1.0 && p < 1e-20); /* constant: degenerate, not normal */
    assert_int_equal(qx_derp_lilliefors(s, 4, &D, &p), QX_EINVAL);
    float bad[6] = {1, 2, NAN, 4, 5, 6};
    assert_int_equal(qx_derp_lilliefors(bad, 6, &D, &p), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "NaN"));
    /* Hand-computed D: {-1, 0, 1, 2, 3}: mean 1, sd sqrt(2.5). */
    float h[5] = {3, -1, 1, 0, 2};
    assert_int_equal(qx_derp_lilliefors(h, 5, &D, NULL), 0);
    double sd = sqrt(2.5), want = 0;
    for (int i = 0; i < 5; i++) {
        double F = 0.5 * erfc(-((double)(i - 1) - 1.0) / sd / sqrt(2.0));
        want = fmax(want, fmax((i + 1) / 5.0 - F, F - i / 5.0));
    }
    assert_true(fabs(D - want) < 1e-12);
}

static void test_ks2_level_and_power(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 31337);
    size_t reps = 1000, rej = 0;
    for (size_t t = 0; t < reps; t++) {
        float *a = normal_sample(&r, 400, 1, 2), *b = normal_sample(&r, 300, 1, 2);
        double p;
        assert_int_equal(qx_derp_ks2(a, 400, b, 300, NULL, &p), 0);
        rej += p <= 0.05;
        free(a);
        free(b);
    }
    double rate = (double)rej / reps;
    fprintf(stderr, "ks2 null 400 vs 300: rejected %.3f at 0.05\n", rate);
    assert_true(rate >= 0.02 && rate <= 0.09);
    size_t shift_rej = 0, scale_rej = 0;
    for (size_t t = 0; t < 20; t++) {
        float *a = normal_sample(&r, 1000, 0, 1), *b = normal_sample(&r, 1000, 0.3, 1),
              *c = normal_sample(&r, 1000, 0, 1.5);
        double p;
        assert_int_equal(qx_derp_ks2(a, 1000, b, 1000, NULL, &p), 0);
        shift_rej += p <= 0.05;
        assert_int_equal(qx_derp_ks2(a, 1000, c, 1000, NULL, &p), 0);
        scale_rej += p <= 0.05;
        free(a);
        free(b);
        free(c);
    }
    fprintf(stderr, "ks2 power n=1000: shift 0.3 sd %zu/20, scale x1.5 %zu/20\n", shift_rej,
            scale_rej);
    assert_true(shift_rej >= 19 && scale_rej >= 19);
}

static void test_ks2_exact_statistic_with_ties(void **state) {
    (void)state;
    float a[3] = {0, 0, 1}, b[3] = {1, 1, 1}, c[4] = {1, 0, 1, 0};
    double D, p;
    assert_int_equal(qx_derp_ks2(a, 3, a, 3, &D, &p), 0);
    assert_true(D == 0 && p == 1);
    assert_int_equal(qx_derp_ks2(a, 3, b, 3, &D, NULL), 0);
    assert_true(fabs(D - 2.0 / 3.0) < 1e-15);
    assert_int_equal(qx_derp_ks2(a, 3, c, 4, &D, NULL), 0);
    assert_true(fabs(D - (2.0 / 3.0 - 0.5)) < 1e-15);
    /* Disjoint samples: D = 1, p tiny. */
    float lo[50], hi[60];
    for (int i = 0; i < 50; i++) lo[i] = (float)i;
    for (int i = 0; i < 60; i++) hi[i] = 100.0f + (float)i;
    assert_int_equal(qx_derp_ks2(lo, 50, hi, 60, &D, &p), 0);
    assert_true(D == 1 && p < 1e-9);
    assert_int_equal(qx_derp_ks2(a, 0, b, 3, &D, &p), QX_EINVAL);
}

/* ---- effect sizes: the 1-D Wasserstein distance ------------------------------------- */

static void test_wasserstein_exact_small_cases(void **state) {
    (void)state;
    float a[3] = {0, 0, 1}, b[3] = {1, 1, 1}, c[4] = {3, 0, 2, 1}, e[4] = {5, 2, 4, 3};
    double w, rel;
    assert_int_equal(qx_derp_wasserstein1(a, 3, a, 3, &w, &rel), 0);
    assert_true(w == 0 && rel == 0);
    /* F_a - F_b = 2/3 on [0, 1), 0 elsewhere. */
    assert_int_equal(qx_derp_wasserstein1(a, 3, b, 3, &w, NULL), 0);
    assert_true(fabs(w - 2.0 / 3.0) < 1e-15);
    /* A shift by 2 of {0,1,2,3} (unsorted input): W = 2, sd = sqrt(5/3). */
    assert_int_equal(qx_derp_wasserstein1(c, 4, e, 4, &w, &rel), 0);
    assert_true(fabs(w - 2.0) < 1e-12);
    assert_true(fabs(rel - 2.0 / sqrt(5.0 / 3.0)) < 1e-12);
    /* Symmetric in its samples (rel uses the first one's spread). */
    double w2;
    assert_int_equal(qx_derp_wasserstein1(e, 4, c, 4, &w2, NULL), 0);
    assert_true(fabs(w - w2) < 1e-12);
    /* Point masses: W = distance; a constant reference uses b's spread,
     * two different constants are infinitely far apart in sd units. */
    float z[2] = {0, 0}, f[2] = {5, 5};
    assert_int_equal(qx_derp_wasserstein1(z, 2, f, 2, &w, &rel), 0);
    assert_true(fabs(w - 5) < 1e-12 && isinf(rel));
    assert_int_equal(qx_derp_wasserstein1(z, 2, c, 4, &w, &rel), 0);
    assert_true(fabs(w - 1.5) < 1e-12 && fabs(rel - 1.5 / sqrt(5.0 / 3.0)) < 1e-12);
    assert_int_equal(qx_derp_wasserstein1(a, 0, b, 3, &w, &rel), QX_EINVAL);
    float nan1[1] = {NAN};
    assert_int_equal(qx_derp_wasserstein1(nan1, 1, b, 3, &w, &rel), QX_EINVAL);
}

/* Known distributions, n = 20,000 each (sampling error of W ~ 0.01):
 * W1(N(0,1), N(delta,1)) = delta; W1(N(0,1), N(0,s)) = |s-1| sqrt(2/pi);
 * W1(U(0,1), U(c,1+c)) = c, relative c sqrt(12); W1(U(0,1), U(0,2)) = 1/2. */
static void test_wasserstein_known_distributions(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 4242);
    size_t n = 20000;
    double deltas[4] = {0.1, 0.5, 1.0, 2.0};
    for (int k = 0; k < 4; k++) {
        float *a = normal_sample(&r, n, 0, 1), *b = normal_sample(&r, n, deltas[k], 1);
        double w, rel;
        assert_int_equal(qx_derp_wasserstein1(a, n, b, n, &w, &rel), 0);
        fprintf(stderr, "W1 N(0,1) vs N(%.1f,1): %.4f (rel %.4f)\n", deltas[k], w, rel);
        assert_true(fabs(w - deltas[k]) < 0.03 && fabs(rel - deltas[k]) < 0.04);
        free(a);
        free(b);
    }
    float *a = normal_sample(&r, n, 0, 1), *b = normal_sample(&r, n, 0, 2);
    double w, rel;
    assert_int_equal(qx_derp_wasserstein1(a, n, b, n, &w, &rel), 0);
    fprintf(stderr, "W1 N(0,1) vs N(0,2): %.4f (expected %.4f)\n", w, sqrt(2 / M_PI));
    assert_true(fabs(w - sqrt(2 / M_PI)) < 0.03);
    free(a);
    free(b);
    float *u = malloc(sizeof(float) * n), *v = malloc(sizeof(float) * n),
          *u2 = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) {
        u[i] = (float)tu_rng_uniform(&r);
        v[i] = (float)(0.25 + tu_rng_uniform(&r));
        u2[i] = (float)(2 * tu_rng_uniform(&r));
    }
    assert_int_equal(qx_derp_wasserstein1(u, n, v, n, &w, &rel), 0);
    fprintf(stderr, "W1 U(0,1) vs U(.25,1.25): %.4f (rel %.4f, expected %.4f)\n", w, rel,
            0.25 * sqrt(12.0));
    assert_true(fabs(w - 0.25) < 0.01 && fabs(rel - 0.25 * sqrt(12.0)) < 0.04);
    assert_int_equal(qx_derp_wasserstein1(u, n, u2, n, &w, NULL), 0);
    assert_true(fabs(w - 0.5) < 0.02);
    /* Under the null the effect shrinks like 1/sqrt(n) and stays far below
     * the default min_effect (0.1 sd): 20 pairs of 5000 normals. */
    double wmax = 0;
    for (int t = 0; t < 20; t++) {
        float *x = normal_sample(&r, 5000, 3, 2), *y = normal_sample(&r, 5000, 3, 2);
        assert_int_equal(qx_derp_wasserstein1(x, 5000, y, 5000, NULL, &rel), 0);
        wmax = fmax(wmax, rel);
        free(x);
        free(y);
    }
    fprintf(stderr, "W1/sd null, 5000 vs 5000, max of 20: %.4f\n", wmax);
    assert_true(wmax < 0.05);
    free(u);
    free(v);
    free(u2);
}

/* A shift that K–S finds significant at n = 200,000 but that is tiny in sd
 * units is not a rejection; a large one is. */
static void test_two_sample_effect_gates_rejection(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 99);
    size_t n = 200000, d = 2;
    float *a = malloc(sizeof(float) * n * d), *b = malloc(sizeof(float) * n * d),
          *c = malloc(sizeof(float) * n * d);
    for (size_t i = 0; i < n * d; i++) {
        a[i] = (float)tu_rng_normal(&r);
        double z = tu_rng_normal(&r);
        b[i] = (float)(z + 0.03); /* |<u, shift>| <= 0.03 sqrt(2) = 0.042 sd */
        c[i] = (float)(z + 0.5);
    }
    qx_derp_opts o;
    qx_derp_opts_init(&o);
    o.max_test_n = 0;
    qx_derp_family f, g;
    assert_int_equal(qx_derp_two_sample(a, n, b, n, d, &o, &f), 0);
    assert_int_equal(qx_derp_two_sample(a, n, c, n, d, &o, &g), 0);
    fprintf(stderr, "small shift: %zu significant, %zu rejected, W_max %.4f | large: %zu, %zu, %.3f\n",
            f.significant, f.rejected, f.W_max, g.significant, g.rejected, g.W_max);
    assert_true(f.significant > f.P / 2);
    assert_int_equal(f.rejected, 0);
    assert_true(f.W_max < 0.05 && f.min_effect == QX_DERP_DEFAULT_MIN_EFFECT);
    assert_true(g.rejected > g.P / 2 && g.W_max > 0.6);
    for (size_t p = 0; p < g.P; p++) assert_true(g.W[p] >= 0);
    qx_derp_family_clear(&f);
    /* min_effect 0: significance alone, as before. */
    o.min_effect = 0;
    assert_int_equal(qx_derp_two_sample(a, n, b, n, d, &o, &f), 0);
    assert_int_equal(f.rejected, f.significant);
    qx_derp_family_clear(&f);
    qx_derp_family_clear(&g);
    o.min_effect = -1;
    assert_int_equal(qx_derp_two_sample(a, n, b, n, d, &o, &f), QX_EINVAL);
    o.min_effect = NAN;
    assert_int_equal(qx_derp_two_sample(a, n, b, n, d, &o, &f), QX_EINVAL);
    free(a);
    free(b);
    free(c);
}

static void test_holm_worked_example(void **state) {
    (void)state;
    double p[4] = {0.01, 0.04, 0.03, 0.005}, adj[4];
    assert_int_equal(qx_derp_holm(p, 4, adj), 0);
    /* sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.04, 0.06) */
    double want[4] = {0.03, 0.06, 0.06, 0.02};
    for (int i = 0; i < 4; i++) assert_true(fabs(adj[i] - want[i]) < 1e-15);
    /* In place, and capped at 1. */
    double q[3] = {0.5, 0.9, 0.4};
    assert_int_equal(qx_derp_holm(q, 3, q), 0);
    assert_true(q[0] == 1 && q[1] == 1 && q[2] == 1);
    double bad[2] = {0.1, NAN};
    assert_int_equal(qx_derp_holm(bad, 2, adj), QX_EINVAL);
}

/* ---- families ------------------------------------------------------------------ */

/* n Gaussian d-vectors with a random anisotropic covariance (x = A z):
 * every projection is exactly normal. */
static float *gaussian_vectors(size_t n, size_t d, uint64_t seed) {
    tu_rng r;
    tu_rng_seed(&r, seed);
    float *A = malloc(sizeof(float) * d * d), *x = malloc(sizeof(float) * n * d);
    double *z = malloc(sizeof(double) * d);
    for (size_t i = 0; i < d * d; i++) A[i] = (float)tu_rng_normal(&r);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) z[j] = tu_rng_normal(&r);
        for (size_t j = 0; j < d; j++) {
            double s = 3.0 * j;
            for (size_t k = 0; k < d; k++) s += A[j * d + k] * z[k];
            x[i * d + j] = (float)s;
        }
    }
    free(A);
    free(z);
    return x;
}

static void test_normality_family(void **state) {
    (void)state;
    size_t n = 2000, d = 24, family_rej = 0;
    double frac = 0;
    qx_derp_opts o;
    qx_derp_opts_init(&o);
    for (uint64_t s = 0; s < 20; s++) {
        float *x = gaussian_vectors(n, d, 100 + s);
        qx_derp_family f;
        o.seed = 1000 + s;
        assert_int_equal(qx_derp_normality(x, n, d, &o, &f), 0);
        assert_int_equal(f.P, 64);
        assert_int_equal(f.n, n);
        family_rej += f.reject;
        frac += f.rejected_fraction;
        for (size_t p = 0; p < f.P; p++) assert_true(f.p_holm[p] >= f.p[p]);
        qx_derp_family_clear(&f);
        free(x);
    }
    frac /= 20;
    fprintf(stderr, "normality family, Gaussian vectors: %zu/20 families rejected (Holm), mean "
                    "fraction of probes rejected %.3f\n", family_rej, frac);
    assert_true(family_rej <= 3); /* expected <= 1 at alpha = 0.05 */
    assert_true(frac > 0.01 && frac < 0.10);

    /* Clustered data is not normal along most directions. */
    float *x = tu_clustered(n, d, 4, 3);
    qx_derp_family f, g;
    assert_int_equal(qx_derp_normality(x, n, d, NULL, &f), 0);
    fprintf(stderr, "normality family, 4 clusters: fraction rejected %.3f, p_combined %.2e\n",
            f.rejected_fraction, f.p_combined);
    assert_true(f.reject && f.rejected_fraction > 0.5);
    /* Same seed, same answer. */
    assert_int_equal(qx_derp_normality(x, n, d, NULL, &g), 0);
    assert_memory_equal(f.D, g.D, sizeof(double) * f.P);
    qx_derp_family_clear(&g);
    /* max_test_n subsamples deterministically. */
    qx_derp_opts_init(&o);
    o.max_test_n = 500;
    assert_int_equal(qx_derp_normality(x, n, d, &o, &g), 0);
    assert_int_equal(g.n, 500);
    qx_derp_family_clear(&g);
    qx_derp_family_clear(&f);
    qx_derp_family_clear(&f); /* idempotent */
    o.alpha = 1.0;
    assert_int_equal(qx_derp_normality(x, n, d, &o, &g), QX_EINVAL);
    o.alpha = 0.05;
    o.probes = 0;
    assert_int_equal(qx_derp_normality(x, n, d, &o, &g), QX_EINVAL);
    assert_int_equal(qx_derp_normality(x, 4, d, NULL, &g), QX_EINVAL);
    free(x);
}

/* ---- drift and reservoir ------------------------------------------------------------ */

static void test_drift_fresh_vs_shifted_vs_permuted(void **state) {
    (void)state;
    size_t n = 4000, d = 32;
    float *all = tu_clustered(2 * n, d, 8, 11); /* i.i.d. rows: two halves, one law */
    float *ref = all, *fresh = all + n * d;
    float *moved = malloc(sizeof(float) * n * d), *perm = malloc(sizeof(float) * n * d);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            moved[i * d + j] = fresh[i * d + j] + 0.3f;
            /* half of the dimensions rotated among themselves */
            size_t src = j < d / 2 ? (j + 1) % (d / 2) : j;
            perm[i * d + j] = fresh[i * d + src];
        }
    qx_derp_opts o;
    qx_derp_opts_init(&o);
    qx_derp_drift a, b, c;
    assert_int_equal(qx_derp_drift_compute(ref, n, fresh, n, d, &o, &a), 0);
    assert_int_equal(qx_derp_drift_compute(ref, n, moved, n, d, &o, &b), 0);
    assert_int_equal(qx_derp_drift_compute(ref, n, perm, n, d, &o, &c), 0);
    fprintf(stderr,
            "drift: fresh score %.4f p %.3f rej %.3f | shifted %.4f p %.1e rej %.3f | "
            "permuted %.4f p %.1e rej %.3f\n",
            a.score, a.test.p_combined, a.test.rejected_fraction, b.score, b.test.p_combined,
            b.test.rejected_fraction, c.score, c.test.p_combined, c.test.rejected_fraction);
    assert_false(a.test.reject);
    assert_true(a.test.rejected_fraction < 0.15);
    assert_true(b.test.reject && c.test.reject);
    assert_true(b.score > 3 * a.score && c.score > 3 * a.score);
    assert_true(c.test.rejected_fraction > 0.5);
    /* Standard drift checks: fresh passes, shifted and permuted fail. */
    for (int i = 0; i < 3; i++) {
        qx_derp_report *rep;
        int pass;
        assert_int_equal(qx_derp_report_new(&rep, NULL), 0);
        assert_int_equal(
            qx_derp_report_add_standard_checks(rep, NULL, i == 0 ? &a : i == 1 ? &b : &c, NULL,
                                               &pass), 0);
        assert_int_equal(qx_derp_report_num_checks(rep), 1); /* the score check is off */
        assert_int_equal(pass, i == 0);
        qx_derp_report_free(rep);
    }
    /* top[] lists probes by decreasing D, starting at the maximum. */
    assert_int_equal(b.ntop, 5);
    assert_true(b.test.D[b.top[0]] == b.score);
    for (size_t t = 1; t < b.ntop; t++) {
        assert_true(b.test.D[b.top[t]] <= b.test.D[b.top[t - 1]]);
        assert_true(b.top[t] != b.top[t - 1]);
    }
    assert_int_equal(a.test.n_ref, n);
    qx_derp_drift_clear(&a);
    qx_derp_drift_clear(&b);
    qx_derp_drift_clear(&c);
    /* Across splits of one law the family rarely rejects. */
    size_t rej = 0;
    for (uint64_t s = 0; s < 10; s++) {
        float *y = tu_clustered(2000, d, 8, 11); /* same centres (same seed) … */
        float *z = tu_clustered(4000, d, 8, 11); /* … different draws in the tail */
        o.seed = 500 + s;
        qx_derp_drift e;
        assert_int_equal(qx_derp_drift_compute(y, 2000, z + 2000 * d, 2000, d, &o, &e), 0);
        rej += e.test.reject;
        qx_derp_drift_clear(&e);
        free(y);
        free(z);
    }
    fprintf(stderr, "drift null: %zu/10 families rejected\n", rej);
    assert_true(rej <= 2);
    free(all);
    free(moved);
    free(perm);
}

static void test_reservoir_uniform_deterministic_serializable(void **state) {
    (void)state;
    size_t N = 10000, cap = 100, d = 3;
    float *x = malloc(sizeof(float) * N * d);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < d; j++) x[i * d + j] = (float)i;
    /* Batch sizes must not change the sample. */
    qx_derp_reservoir *a, *b;
    assert_int_equal(qx_derp_reservoir_new(&a, d, cap, 9), 0);
    assert_int_equal(qx_derp_reservoir_new(&b, d, cap, 9), 0);
    assert_int_equal(qx_derp_reservoir_add(a, x, N), 0);
    for (size_t i = 0; i < N;) {
        size_t k = 1 + i % 37;
        if (k > N - i) k = N - i;
        assert_int_equal(qx_derp_reservoir_add(b, x + i * d, k), 0);
        i += k;
    }
    assert_int_equal(qx_derp_reservoir_size(a), cap);
    assert_true(qx_derp_reservoir_seen(a) == N);
    assert_memory_equal(qx_derp_reservoir_data(a), qx_derp_reservoir_data(b),
                        sizeof(float) * cap * d);
    /* Round trip, then both keep sampling identically. */
    uint8_t *blob;
    size_t len;
    qx_derp_reservoir *c;
    assert_int_equal(qx_derp_reservoir_serialize(a, &blob, &len), 0);
    assert_int_equal(qx_derp_reservoir_deserialize(blob, len, &c), 0);
    assert_int_equal(qx_derp_reservoir_add(a, x, 5000), 0);
    assert_int_equal(qx_derp_reservoir_add(c, x, 5000), 0);
    assert_memory_equal(qx_derp_reservoir_data(a), qx_derp_reservoir_data(c),
                        sizeof(float) * cap * d);
    /* Corrupt blobs are refused. */
    qx_derp_reservoir *e;
    assert_int_equal(qx_derp_reservoir_deserialize(blob, len - 1, &e), QX_EFORMAT);
    blob[0] ^= 1;
    assert_int_equal(qx_derp_reservoir_deserialize(blob, len, &e), QX_EFORMAT);
    blob[0] ^= 1;
    blob[24] ^= 1; /* size */
    assert_int_equal(qx_derp_reservoir_deserialize(blob, len, &e), QX_EFORMAT);
    blob[24] ^= 1;
    memcpy(blob + len - 4, &(float){NAN}, 4);
    assert_int_equal(qx_derp_reservoir_deserialize(blob, len, &e), QX_EFORMAT);
    /* Random mutations and truncations: accepted or QX_EFORMAT, never a crash
     * (the ASan build checks the reads). */
    tu_rng fz;
    tu_rng_seed(&fz, 5);
    uint8_t *mut = malloc(len);
    for (int t = 0; t < 3000; t++) {
        memcpy(mut, blob, len);
        size_t flips = 1 + tu_rng_next(&fz) % 4, ml = len;
        for (size_t k = 0; k < flips; k++) {
            /* bias mutations towards the 72-byte header */
            size_t at = tu_rng_next(&fz) % (k % 2 ? len : 72);
            mut[at] = (uint8_t)tu_rng_next(&fz);
        }
        if (t % 5 == 0) ml = tu_rng_next(&fz) % len;
        int rc = qx_derp_reservoir_deserialize(mut, ml, &e);
        assert_true(rc == 0 || rc == QX_EFORMAT);
        if (rc == 0) {
            assert_true(qx_derp_reservoir_size(e) <= 100);
            qx_derp_reservoir_free(e);
        }
    }
    free(mut);
    qx_free(blob);
    qx_derp_reservoir_free(a);
    qx_derp_reservoir_free(b);
    qx_derp_reservoir_free(c);
    /* Uniform: over 200 seeds the kept indices average (N-1)/2 and the
     * first half holds half of the sample. */
    double mean = 0, first_half = 0;
    for (uint64_t s = 0; s < 200; s++) {
        qx_derp_reservoir *r;
        assert_int_equal(qx_derp_reservoir_new(&r, d, cap, s), 0);
        assert_int_equal(qx_derp_reservoir_add(r, x, N), 0);
        const float *v = qx_derp_reservoir_data(r);
        for (size_t i = 0; i < cap; i++) {
            mean += v[i * d];
            first_half += v[i * d] < N / 2;
        }
        qx_derp_reservoir_free(r);
    }
    mean /= 200.0 * cap;
    first_half /= 200.0 * cap;
    fprintf(stderr, "reservoir: mean kept index %.1f (want %.1f), first-half share %.3f\n", mean,
            (N - 1) / 2.0, first_half);
    /* sd of the mean over 20000 draws: 2887/sqrt(20000) = 20 */
    assert_true(fabs(mean - (N - 1) / 2.0) < 100);
    assert_true(fabs(first_half - 0.5) < 0.02);
    /* Fewer vectors than capacity: all kept, in order. */
    qx_derp_reservoir *r;
    assert_int_equal(qx_derp_reservoir_new(&r, d, 0, 1), 0);
    assert_int_equal(qx_derp_reservoir_add(r, x, 50), 0);
    assert_int_equal(qx_derp_reservoir_size(r), 50);
    assert_memory_equal(qx_derp_reservoir_data(r), x, sizeof(float) * 50 * d);
    x[7] = INFINITY;
    assert_int_equal(qx_derp_reservoir_add(r, x, 10), QX_EINVAL);
    assert_int_equal(qx_derp_reservoir_size(r), 50);
    qx_derp_reservoir_free(r);
    assert_int_equal(qx_derp_reservoir_new(&r, 0, 10, 1), QX_EDIM);
    free(x);
}

/* ---- codebook health -------------------------------------------------------------- */

static qx_quantizer *train_rq(const float *x, size_t n, size_t d, size_t M) {
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = M;
    ro.kmeans_iters = 8;
    ro.refine_iters = 0;
    ro.beam = 2;
    ro.seed = 5;
    qx_quantizer *q;
    assert_int_equal(qx_rq_new(&q, d, &ro), 0);
    int rc = qx_quantizer_train(q, x, n);
    if (rc) fprintf(stderr, "rq train: %s\n", qx_last_error());
    assert_int_equal(rc, 0);
    return q;
}

static void test_health_rq_and_collapse(void **state) {
    (void)state;
    size_t n = 6000, d = 16, M = 3;
    float *x = tu_clustered(n, d, 20, 21);
    qx_quantizer *q = train_rq(x, n, d, M);
    qx_derp_health *h;
    assert_int_equal(qx_derp_health_compute(q, x, n, NULL, NULL, &h), 0);
    assert_int_equal(h->M, M);
    double prev = h->mse0;
    for (size_t m = 0; m < M; m++) {
        const qx_derp_step *s = &h->steps[m];
        fprintf(stderr,
                "healthy rq step %zu: used %.3f perplexity %.3f dead %zu mse %.3f drop %.3f "
                "residual rejected %.2f D_mean %.3f codebook rejected %.2f\n",
                m, s->used_fraction, s->perplexity, s->dead, s->mse, s->mse_drop,
                s->residual.rejected_fraction, s->residual.D_mean, s->codebook.rejected_fraction);
        assert_true(s->used_fraction > 0.9);
        assert_true(s->perplexity > 0.5 && s->perplexity <= 1.0);
        assert_int_equal(s->dead + s->used, 256);
        assert_true(s->mse < prev && s->mse_drop > 0);
        assert_true(fabs(s->mse_drop - (prev - s->mse)) < 1e-9 * prev);
        prev = s->mse;
        assert_int_equal(s->residual.P, 64);
        assert_int_equal(s->codebook.P, 64);
        assert_int_equal(s->codebook.n, 256);
        double mse;
        assert_int_equal(qx_quantizer_mse(q, x, n, m + 1, &mse), 0);
        assert_true(fabs(mse - s->mse) < 1e-4 * mse);
    }
    /* Precomputed codes give the same answer. */
    uint8_t *codes = malloc(n * M);
    assert_int_equal(qx_quantizer_encode(q, x, n, codes), 0);
    qx_derp_health *h2;
    assert_int_equal(qx_derp_health_compute(q, x, n, codes, NULL, &h2), 0);
    for (size_t m = 0; m < M; m++) {
        assert_true(h2->steps[m].mse == h->steps[m].mse);
        assert_true(h2->steps[m].perplexity == h->steps[m].perplexity);
    }
    qx_derp_health_free(h2);

    /* Collapse: 90% of every step's codewords set equal to codeword 0. */
    float *cb = malloc(sizeof(float) * M * 256 * d);
    memcpy(cb, qx_rq_codebooks(q), sizeof(float) * M * 256 * d);
    for (size_t m = 0; m < M; m++)
        for (size_t k = 26; k < 256; k++)
            memcpy(cb + (m * 256 + k) * d, cb + m * 256 * d, sizeof(float) * d);
    qx_rq_opts bo;
    qx_rq_opts_init(&bo);
    bo.M = M;
    bo.beam = 2;
    qx_quantizer *bad;
    assert_int_equal(qx_rq_new(&bad, d, &bo), 0);
    assert_int_equal(qx_rq_set_codebooks(bad, cb), 0); /* marks it trained */
    qx_derp_health *hb;
    assert_int_equal(qx_derp_health_compute(bad, x, n, NULL, NULL, &hb), 0);
    for (size_t m = 0; m < M; m++) {
        const qx_derp_step *s = &hb->steps[m];
        fprintf(stderr,
                "collapsed rq step %zu: used %.3f perplexity %.3f dead %zu mse %.3f "
                "codebook rejected %.2f\n",
                m, s->used_fraction, s->perplexity, s->dead, s->mse,
                s->codebook.rejected_fraction);
        /* 26 distinct codewords + copies of codeword 0 (the beam may pick
         * different copies of an exact tie). */
        assert_true(s->used_fraction <= 0.15);
        assert_true(s->perplexity < 0.12);
        assert_true(s->dead >= 217);
        assert_true(s->perplexity < h->steps[m].perplexity / 5);
        assert_true(s->codebook.reject); /* 230 tied values */
    }
    assert_true(hb->steps[M - 1].mse > h->steps[M - 1].mse);
    qx_derp_health_summary sh, sb;
    assert_int_equal(qx_derp_health_summarize(h, &sh), 0);
    assert_int_equal(qx_derp_health_summarize(hb, &sb), 0);
    assert_true(sh.min_used_fraction > 0.9 && sb.min_used_fraction <= 0.15);
    assert_true(sb.min_perplexity < sh.min_perplexity / 5);
    assert_true(sb.max_dead >= 217 && sh.max_dead <= 25);
    assert_true(sh.min_mse_drop_ratio > 0 && sh.min_mse_drop_ratio < 1);
    assert_true(sh.mse == h->steps[M - 1].mse && sh.relative_mse < 1);
    assert_true(sh.max_residual_D_mean > 0 && sh.max_residual_rejected_fraction <= 1);
    assert_int_equal(qx_derp_health_summarize(NULL, &sh), QX_EINVAL);
    /* Standard checks: the healthy model passes, the collapsed one fails on
     * both usage checks. */
    qx_derp_report *rg, *rb;
    int pass_g = 0, pass_b = 1;
    assert_int_equal(qx_derp_report_new(&rg, NULL), 0);
    assert_int_equal(qx_derp_report_new(&rb, NULL), 0);
    assert_int_equal(qx_derp_report_add_standard_checks(rg, h, NULL, NULL, &pass_g), 0);
    assert_int_equal(qx_derp_report_add_standard_checks(rb, hb, NULL, NULL, &pass_b), 0);
    assert_true(pass_g && qx_derp_report_passed(rg));
    assert_false(pass_b || qx_derp_report_passed(rb));
    assert_int_equal(qx_derp_report_num_checks(rg), 2);
    qx_derp_thresholds th;
    qx_derp_thresholds_init(&th);
    th.min_perplexity = NAN; /* off */
    assert_int_equal(qx_derp_report_add_standard_checks(rg, h, NULL, &th, NULL), 0);
    assert_int_equal(qx_derp_report_num_checks(rg), 3);
    qx_derp_report_free(rg);
    qx_derp_report_free(rb);

    /* Errors. */
    qx_derp_health *he;
    assert_int_equal(qx_derp_health_compute(NULL, x, n, NULL, NULL, &he), QX_EINVAL);
    assert_int_equal(qx_derp_health_compute(q, x, 3, NULL, NULL, &he), QX_EINVAL);
    qx_quantizer *untrained;
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    assert_int_equal(qx_rq_new(&untrained, d, &ro), 0);
    assert_int_equal(qx_derp_health_compute(untrained, x, n, NULL, NULL, &he), QX_ESTATE);
    qx_quantizer_free(untrained);

    qx_derp_health_free(h);
    qx_derp_health_free(hb);
    qx_quantizer_free(q);
    qx_quantizer_free(bad);
    free(cb);
    free(codes);
    free(x);
}

/* The siftsmall figures of docs/derp.md (RQ M=8 trained twice, ~1-4 min):
 * run with QX_DERP_CALIBRATE=1; skipped without the shared data. */
static void print_summary(const char *name, const qx_derp_health *h, qx_derp_health_summary *s) {
    assert_int_equal(qx_derp_health_summarize(h, s), 0);
    fprintf(stderr,
            "| %s | %.3f | %.3f (step %zu) | %zu | %.4f | %.3f | %.4f |\n", name,
            s->min_used_fraction, s->min_perplexity, s->min_perplexity_step, s->max_dead,
            s->relative_mse, s->max_residual_rejected_fraction, s->max_residual_D_mean);
}

static void test_siftsmall_health_and_faults(void **state) {
    (void)state;
    const char *env = getenv("QX_DERP_CALIBRATE");
    const char *path = tu_data_path("siftsmall/siftsmall_base.fvecs");
    if (!env || strcmp(env, "1") != 0 || !path) {
        skip();
        return;
    }
    qx_matrix b;
    assert_int_equal(qx_vecs_read(path, 0, &b), 0);
    size_t n = b.n, d = b.d, M = 8;
    /* Fault (b): half of the dimensions permuted, scaled by 1.5, shifted by 10. */
    float *pf = malloc(sizeof(float) * n * d);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            size_t src = j < d / 2 ? (j * 7 + 3) % (d / 2) : j;
            pf[i * d + j] = j < d / 2 ? 1.5f * b.data[i * d + src] + 10.0f : b.data[i * d + j];
        }
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = M;
    ro.kmeans_iters = 10;
    ro.refine_iters = 0;
    ro.beam = ro.train_beam = 2;
    qx_quantizer *good, *bad, *col;
    assert_int_equal(qx_rq_new(&good, d, &ro), 0);
    assert_int_equal(qx_rq_new(&bad, d, &ro), 0);
    assert_int_equal(qx_rq_new(&col, d, &ro), 0);
    assert_int_equal(qx_quantizer_train(good, b.data, n), 0);
    assert_int_equal(qx_quantizer_train(bad, pf, n), 0);
    /* Fault (a): 90% of each step's codewords collapsed onto 4 of them. */
    float *cb = malloc(sizeof(float) * M * 256 * d);
    memcpy(cb, qx_rq_codebooks(good), sizeof(float) * M * 256 * d);
    for (size_t m = 0; m < M; m++)
        for (size_t k = 26; k < 256; k++)
            memcpy(cb + (m * 256 + k) * d, cb + (m * 256 + k % 4) * d, sizeof(float) * d);
    assert_int_equal(qx_rq_set_codebooks(col, cb), 0);
    qx_derp_health *hg, *hb, *hc;
    assert_int_equal(qx_derp_health_compute(good, b.data, n, NULL, NULL, &hg), 0);
    assert_int_equal(qx_derp_health_compute(bad, b.data, n, NULL, NULL, &hb), 0);
    assert_int_equal(qx_derp_health_compute(col, b.data, n, NULL, NULL, &hc), 0);
    fprintf(stderr, "| siftsmall RQ M=8 | min used_fraction | min perplexity | max dead | "
                    "mse/mse0 | max residual rejected | max residual D_mean |\n");
    qx_derp_health_summary sg, sb, sc;
    print_summary("healthy", hg, &sg);
    print_summary("(a) 90% collapsed", hc, &sc);
    print_summary("(b) trained on permuted", hb, &sb);
    assert_true(sg.min_used_fraction > 0.9 && sc.min_used_fraction < 0.15);
    /* Drift: the training vectors of (b) against the data; even vs odd rows
     * (one law); first vs second half (the file is ordered: real drift). */
    size_t h = n / 2;
    float *ev = malloc(sizeof(float) * h * d), *od = malloc(sizeof(float) * h * d);
    for (size_t i = 0; i < h; i++) {
        memcpy(ev + i * d, b.data + 2 * i * d, sizeof(float) * d);
        memcpy(od + i * d, b.data + (2 * i + 1) * d, sizeof(float) * d);
    }
    qx_derp_drift dv[3];
    assert_int_equal(qx_derp_drift_compute(ev, h, od, h, d, NULL, &dv[0]), 0);
    assert_int_equal(qx_derp_drift_compute(b.data, h, b.data + h * d, n - h, d, NULL, &dv[1]), 0);
    assert_int_equal(qx_derp_drift_compute(pf, n, b.data, n, d, NULL, &dv[2]), 0);
    const char *dn[3] = {"even vs odd rows", "first vs second half", "(b) train vs data"};
    fprintf(stderr, "| siftsmall drift | score | score_mean | rejected_fraction | p_combined |\n");
    for (int i = 0; i < 3; i++)
        fprintf(stderr, "| %s | %.4f | %.4f | %.3f | %.3g |\n", dn[i], dv[i].score,
                dv[i].score_mean, dv[i].test.rejected_fraction, dv[i].test.p_combined);
    assert_false(dv[0].test.reject);
    assert_true(dv[2].test.rejected_fraction > 0.9);
    for (int i = 0; i < 3; i++) qx_derp_drift_clear(&dv[i]);
    qx_derp_health_free(hg);
    qx_derp_health_free(hb);
    qx_derp_health_free(hc);
    qx_quantizer_free(good);
    qx_quantizer_free(bad);
    qx_quantizer_free(col);
    free(cb);
    free(pf);
    free(ev);
    free(od);
    qx_matrix_free(&b);
}

/* False alarms of the standard drift check over 50 seeds (~5 s CPU):
 * QX_DERP_CALIBRATE=1. Gate-like: a 10,000-vector reservoir of 20,000
 * clustered vectors against all of them; and two independent halves. */
static void test_drift_false_alarms_50_seeds(void **state) {
    (void)state;
    const char *env = getenv("QX_DERP_CALIBRATE");
    if (!env || strcmp(env, "1") != 0) {
        skip();
        return;
    }
    size_t d = 32, n = 20000, fail_res = 0, fail_half = 0;
    double max_res = 0, max_half = 0;
    qx_derp_thresholds th;
    qx_derp_thresholds_init(&th);
    for (uint64_t s = 0; s < 50; s++) {
        float *x = tu_clustered(n, d, 8, 7000 + s);
        qx_derp_reservoir *r;
        assert_int_equal(qx_derp_reservoir_new(&r, d, 10000, s), 0);
        assert_int_equal(qx_derp_reservoir_add(r, x, n), 0);
        qx_derp_opts o;
        qx_derp_opts_init(&o);
        o.seed = 1000 + s;
        qx_derp_drift a, b;
        assert_int_equal(qx_derp_drift_compute(qx_derp_reservoir_data(r), 10000, x, n, d, &o, &a), 0);
        assert_int_equal(qx_derp_drift_compute(x, n / 2, x + n / 2 * d, n / 2, d, &o, &b), 0);
        fail_res += a.test.rejected_fraction > th.max_drift_rejected_fraction;
        fail_half += b.test.rejected_fraction > th.max_drift_rejected_fraction;
        max_res = fmax(max_res, a.test.rejected_fraction);
        max_half = fmax(max_half, b.test.rejected_fraction);
        qx_derp_drift_clear(&a);
        qx_derp_drift_clear(&b);
        qx_derp_reservoir_free(r);
        free(x);
    }
    fprintf(stderr,
            "drift false alarms over 50 seeds at max_drift_rejected_fraction %.2f: reservoir vs "
            "all %zu (max fraction %.3f), independent halves %zu (max fraction %.3f)\n",
            th.max_drift_rejected_fraction, fail_res, max_res, fail_half, max_half);
    assert_true(fail_res <= 2 && fail_half <= 2);
}

/* ---- calibration on real files: random vs ordered vs shifted training samples ---------- */

/* The gate's drift check for a training set chosen by rows[] (ntr rows of
 * x): the training reservoir (10,000, seeded) against an evenly strided
 * 10,000-row sample of the whole file, as in verify/gate.c. */
static void calib_drift(const float *x, size_t n, size_t d, const uint8_t *take, int shift,
                        uint64_t seed, double min_effect, qx_derp_drift *out) {
    qx_derp_reservoir *r;
    assert_int_equal(qx_derp_reservoir_new(&r, d, 10000, seed), 0);
    float *tmp = malloc(sizeof(float) * d);
    for (size_t i = 0; i < n; i++) {
        if (!take[i]) continue;
        memcpy(tmp, x + i * d, sizeof(float) * d);
        if (shift) /* the gate test's mismatch fault: half the dims reversed, x2, +20 */
            for (size_t j = 0; j < d / 2; j++) tmp[j] = 2.0f * x[i * d + d / 2 - 1 - j] + 20.0f;
        assert_int_equal(qx_derp_reservoir_add(r, tmp, 1), 0);
    }
    size_t ns = n < 10000 ? n : 10000;
    float *sample = malloc(sizeof(float) * ns * d);
    qx_sample_rows(x, n, d, ns, sample);
    qx_derp_opts o;
    qx_derp_opts_init(&o);
    o.min_effect = min_effect;
    assert_int_equal(qx_derp_drift_compute(qx_derp_reservoir_data(r), qx_derp_reservoir_size(r),
                                           sample, ns, d, &o, out), 0);
    free(sample);
    free(tmp);
    qx_derp_reservoir_free(r);
}

static void test_calibrate_real_splits(void **state) {
    (void)state;
    const char *env = getenv("QX_DERP_CALIBRATE");
    const char *files = getenv("QX_DERP_CALIB_FILES");
    if (!env || strcmp(env, "1") != 0 || !files) {
        skip();
        return;
    }
    char list[4096];
    snprintf(list, sizeof list, "%s", files);
    size_t seeds = getenv("QX_DERP_CALIB_SEEDS") ? (size_t)atoi(getenv("QX_DERP_CALIB_SEEDS")) : 50;
    fprintf(stderr, "| file | n x d | split | rejected_fraction (W >= min_effect) | significant fraction | "
                    "score (max D) | effect (max W) |\n");
    for (char *path = strtok(list, ":"); path; path = strtok(NULL, ":")) {
        qx_matrix m = {0};
        assert_int_equal(qx_vecs_read(path, 0, &m), 0);
        size_t n = m.n, d = m.d, ntr = n * 8 / 10;
        uint8_t *take = malloc(n);
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        /* ordered: the first 80 % of the rows; shifted: a random 80 % with the
         * mismatch transform */
        for (int kind = 0; kind < 2; kind++) {
            if (kind == 0) {
                for (size_t i = 0; i < n; i++) take[i] = i < ntr;
            } else {
                uint64_t st = 77;
                size_t got = 0;
                for (size_t i = 0; i < n; i++) {
                    take[i] = (double)(n - i) * qx_rng_uniform(&st) < (double)(ntr - got);
                    got += take[i];
                }
            }
            qx_derp_drift dr;
            calib_drift(m.data, n, d, take, kind, 1, QX_DERP_DEFAULT_MIN_EFFECT, &dr);
            fprintf(stderr, "| %s | %zu x %zu | %s | %.3f | %.3f | %.3f | %.3f |\n", base, n, d,
                    kind == 0 ? "ordered: first 80 %" : "shifted: mismatch fault", dr.test.rejected_fraction,
                    (double)dr.test.significant / dr.test.P, dr.score, dr.effect);
            qx_derp_drift_clear(&dr);
        }
        /* random 80 % samples over `seeds` seeds: false alarms at 0.25 with the
         * effect bar, and with significance alone (the old rule) */
        size_t fa = 0, fa_old = 0;
        double max_rf = 0, max_sig = 0, max_w = 0;
        for (uint64_t s = 1; s <= seeds; s++) {
            uint64_t st = 1000 + s;
            size_t got = 0;
            for (size_t i = 0; i < n; i++) {
                take[i] = (double)(n - i) * qx_rng_uniform(&st) < (double)(ntr - got);
                got += take[i];
            }
            qx_derp_drift dr;
            calib_drift(m.data, n, d, take, 0, s, QX_DERP_DEFAULT_MIN_EFFECT, &dr);
            double sig = (double)dr.test.significant / dr.test.P;
            fa += dr.test.rejected_fraction > 0.25;
            fa_old += sig > 0.25;
            max_rf = fmax(max_rf, dr.test.rejected_fraction);
            max_sig = fmax(max_sig, sig);
            max_w = fmax(max_w, dr.effect);
            qx_derp_drift_clear(&dr);
        }
        fprintf(stderr, "| %s | %zu x %zu | random 80 %%, %zu seeds | false alarms %zu/%zu (max %.3f) | "
                        "old rule %zu/%zu (max %.3f) | | max %.3f |\n",
                base, n, d, seeds, fa, seeds, max_rf, fa_old, seeds, max_sig, max_w);
        free(take);
        qx_matrix_free(&m);
    }
}

/* ---- a tiny JSON reader for the report test ------------------------------------------ */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype t;
    double num;
    int b;
    char *str;
    size_t n;        /* children */
    char **keys;     /* objects */
    struct jval *kids;
} jval;

static const char *jp;

static void jws(void) {
    while (*jp == ' ' || *jp == '\n' || *jp == '\t' || *jp == '\r') jp++;
}

static int jparse(jval *v);

static int jstring(char **out) {
    if (*jp != '"') return -1;
    jp++;
    size_t cap = 16, len = 0;
    char *s = malloc(cap);
    while (*jp && *jp != '"') {
        char c = *jp++;
        if ((unsigned char)c < 0x20) goto fail;
        if (c == '\\') {
            char e = *jp++;
            if (e == 'n') c = '\n';
            else if (e == 't') c = '\t';
            else if (e == 'r') c = '\r';
            else if (e == '"' || e == '\\' || e == '/') c = e;
            else if (e == 'u') {
                unsigned u;
                if (sscanf(jp, "%4x", &u) != 1) goto fail;
                jp += 4;
                c = (char)u; /* the report only escapes ASCII controls */
            } else goto fail;
        }
        if (len + 2 > cap) s = realloc(s, cap *= 2);
        s[len++] = c;
    }
    if (*jp != '"') goto fail;
    jp++;
    s[len] = 0;
    *out = s;
    return 0;
fail:
    free(s);
    return -1;
}

static int jparse(jval *v) {
    memset(v, 0, sizeof *v);
    jws();
    if (*jp == '{' || *jp == '[') {
        int obj = *jp == '{';
        char close = obj ? '}' : ']';
        v->t = obj ? J_OBJ : J_ARR;
        jp++;
        jws();
        if (*jp == close) {
            jp++;
            return 0;
        }
        for (;;) {
            v->kids = realloc(v->kids, sizeof(jval) * (v->n + 1));
            v->keys = realloc(v->keys, sizeof(char *) * (v->n + 1));
            v->keys[v->n] = NULL;
            if (obj) {
                jws();
                if (jstring(&v->keys[v->n])) return -1;
                jws();
                if (*jp++ != ':') return -1;
            }
            if (jparse(&v->kids[v->n])) return -1;
            v->n++;
            jws();
            if (*jp == ',') {
                jp++;
                continue;
            }
            if (*jp++ != close) return -1;
            return 0;
        }
    }
    if (*jp == '"') {
        v->t = J_STR;
        return jstring(&v->str);
    }
    if (!strncmp(jp, "true", 4) || !strncmp(jp, "false", 5)) {
        v->t = J_BOOL;
        v->b = *jp == 't';
        jp += v->b ? 4 : 5;
        return 0;
    }
    if (!strncmp(jp, "null", 4)) {
        jp += 4;
        return 0;
    }
    char *end;
    v->num = strtod(jp, &end);
    if (end == jp || (*jp != '-' && (*jp < '0' || *jp > '9'))) return -1;
    v->t = J_NUM;
    jp = end;
    return 0;
}

static void jfree(jval *v) {
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->kids[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->kids);
    free(v->keys);
    free(v->str);
}

static const jval *jget(const jval *o, const char *key, jtype t) {
    assert_int_equal(o->t, J_OBJ);
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key)) {
            if (o->kids[i].t != t) fail_msg("key %s has type %d, want %d", key, o->kids[i].t, t);
            return &o->kids[i];
        }
    fail_msg("key %s missing", key);
    return NULL;
}

static void parse_json(const char *s, jval *root) {
    jp = s;
    assert_int_equal(jparse(root), 0);
    jws();
    assert_int_equal(*jp, '\0');
}

static void check_family_json(const jval *f) {
    jget(f, "n", J_NUM);
    jget(f, "significant", J_NUM);
    jget(f, "rejected", J_NUM);
    jget(f, "rejected_fraction", J_NUM);
    jget(f, "holm_rejected", J_NUM);
    jget(f, "p_combined", J_NUM);
    jget(f, "reject", J_BOOL);
    jget(f, "D_mean", J_NUM);
    jget(f, "D_max", J_NUM);
}

static void test_report_json(void **state) {
    (void)state;
    size_t n = 3000, d = 8, M = 2;
    float *x = tu_clustered(n, d, 10, 4);
    qx_quantizer *q = train_rq(x, n, d, M);
    qx_derp_opts o;
    qx_derp_opts_init(&o);
    o.probes = 16;
    qx_derp_health *h;
    qx_derp_drift dr;
    assert_int_equal(qx_derp_health_compute(q, x, n, NULL, &o, &h), 0);
    assert_int_equal(qx_derp_drift_compute(x, n / 2, x + n / 2 * d, n / 2, d, &o, &dr), 0);

    qx_derp_report *r;
    assert_int_equal(qx_derp_report_new(&r, &o), 0);
    char *js;
    size_t len;
    /* Empty report: still valid, health/drift null, passes. */
    assert_int_equal(qx_derp_report_json(r, &js, &len), 0);
    jval root;
    parse_json(js, &root);
    assert_int_equal(jget(&root, "version", J_NUM)->num, QX_DERP_REPORT_VERSION);
    jget(&root, "health", J_NULL);
    jget(&root, "drift", J_NULL);
    assert_int_equal(jget(&root, "steps", J_ARR)->n, 0);
    assert_true(jget(&root, "pass", J_BOOL)->b);
    jfree(&root);
    qx_free(js);

    assert_int_equal(qx_derp_report_set_health(r, h), 0);
    assert_int_equal(qx_derp_report_set_drift(r, &dr), 0);
    assert_int_equal(qx_derp_report_set_meta(r, "index", "/tmp/a \"b\"\n\x01.qinx"), 0);
    assert_int_equal(qx_derp_report_set_meta(r, "stage", "candidate"), 0);
    assert_int_equal(qx_derp_report_set_meta(r, "stage", "live"), 0);
    int pass;
    assert_int_equal(qx_derp_report_add_check(r, "min_used_fraction", h->steps[0].used_fraction,
                                              0.5, QX_DERP_GE, &pass), 0);
    assert_true(pass);
    assert_int_equal(qx_derp_report_add_check(r, "max_drift_score", dr.score, 0.5, QX_DERP_LE,
                                              &pass), 0);
    assert_true(pass);
    assert_true(qx_derp_report_passed(r));
    assert_int_equal(qx_derp_report_add_check(r, "recall_at_10", NAN, 0.5, QX_DERP_GE, &pass), 0);
    assert_false(pass);
    assert_false(qx_derp_report_passed(r));
    assert_int_equal(qx_derp_report_num_checks(r), 3);
    /* A check that cannot be recorded makes the report fail, even for a
     * caller that ignores the return code. */
    qx_derp_report *lost;
    assert_int_equal(qx_derp_report_new(&lost, NULL), 0);
    assert_int_equal(qx_derp_report_add_check(lost, "ok", 1, 2, QX_DERP_LE, NULL), 0);
    assert_true(qx_derp_report_passed(lost));
    pass = 1;
    assert_int_equal(qx_derp_report_add_check(lost, "", 1, 1, QX_DERP_LE, &pass), QX_EINVAL);
    assert_false(pass);
    assert_false(qx_derp_report_passed(lost));
    assert_int_equal(qx_derp_report_add_check(lost, "x", 1, 1, (qx_derp_cmp)9, NULL), QX_EINVAL);
    assert_int_equal(qx_derp_report_add_check(lost, "x", 1, NAN, QX_DERP_LE, NULL), QX_EINVAL);
    assert_int_equal(qx_derp_report_num_checks(lost), 1);
    assert_int_equal(qx_derp_report_json(lost, &js, NULL), 0);
    parse_json(js, &root);
    assert_false(jget(&root, "complete", J_BOOL)->b);
    assert_false(jget(&root, "pass", J_BOOL)->b);
    jfree(&root);
    qx_free(js);
    qx_derp_report_free(lost);

    assert_int_equal(qx_derp_report_json(r, &js, &len), 0);
    assert_int_equal(strlen(js), len);
    parse_json(js, &root);
    assert_int_equal(jget(&root, "probes", J_NUM)->num, 16);
    assert_true(fabs(jget(&root, "alpha", J_NUM)->num - 0.05) < 1e-12);
    jget(&root, "seed", J_STR);
    assert_string_equal(jget(&root, "rule", J_STR)->str, "holm");
    const jval *meta = jget(&root, "meta", J_OBJ);
    assert_string_equal(jget(meta, "index", J_STR)->str, "/tmp/a \"b\"\n\x01.qinx");
    assert_string_equal(jget(meta, "stage", J_STR)->str, "live");
    const jval *hj = jget(&root, "health", J_OBJ);
    assert_string_equal(jget(hj, "kind", J_STR)->str, "rq");
    assert_int_equal(jget(hj, "M", J_NUM)->num, M);
    const jval *steps = jget(&root, "steps", J_ARR);
    assert_int_equal(steps->n, M);
    for (size_t m = 0; m < M; m++) {
        const jval *s = &steps->kids[m];
        assert_int_equal(jget(s, "step", J_NUM)->num, m);
        assert_true(fabs(jget(s, "used_fraction", J_NUM)->num - h->steps[m].used_fraction) < 1e-6);
        jget(s, "perplexity", J_NUM);
        assert_int_equal(jget(s, "dead", J_NUM)->num, h->steps[m].dead);
        assert_true(fabs(jget(s, "mse", J_NUM)->num - h->steps[m].mse) <= 1e-6 * h->steps[m].mse);
        jget(s, "mse_drop", J_NUM);
        jget(s, "residual_rejected_fraction", J_NUM);
        check_family_json(jget(s, "residual", J_OBJ));
        check_family_json(jget(s, "codebook", J_OBJ));
    }
    const jval *dj = jget(&root, "drift", J_OBJ);
    jget(dj, "n_ref", J_NUM);
    jget(dj, "n", J_NUM);
    assert_true(fabs(jget(dj, "score", J_NUM)->num - dr.score) < 1e-6);
    jget(dj, "score_mean", J_NUM);
    assert_true(fabs(jget(dj, "effect", J_NUM)->num - dr.effect) < 1e-6);
    jget(dj, "effect_mean", J_NUM);
    assert_true(fabs(jget(dj, "min_effect", J_NUM)->num - QX_DERP_DEFAULT_MIN_EFFECT) < 1e-12);
    jget(dj, "significant", J_NUM);
    jget(dj, "p_combined", J_NUM);
    jget(dj, "rejected_fraction", J_NUM);
    jget(dj, "holm_rejected", J_NUM);
    jget(dj, "reject", J_BOOL);
    const jval *top = jget(dj, "top_probes", J_ARR);
    assert_int_equal(top->n, 5);
    jget(&top->kids[0], "probe", J_NUM);
    jget(&top->kids[0], "D", J_NUM);
    jget(&top->kids[0], "p", J_NUM);
    jget(&top->kids[0], "W", J_NUM);
    assert_int_equal(jget(dj, "D", J_ARR)->n, 16);
    const jval *wj = jget(dj, "W", J_ARR);
    assert_int_equal(wj->n, 16);
    for (size_t p = 0; p < 16; p++) {
        assert_int_equal(wj->kids[p].t, J_NUM);
        assert_true(fabs(wj->kids[p].num - dr.test.W[p]) <= 1e-6 * fmax(1, dr.test.W[p]));
    }
    const jval *checks = jget(&root, "checks", J_ARR);
    assert_int_equal(checks->n, 3);
    assert_string_equal(jget(&checks->kids[0], "name", J_STR)->str, "min_used_fraction");
    assert_string_equal(jget(&checks->kids[0], "cmp", J_STR)->str, ">=");
    jget(&checks->kids[0], "value", J_NUM);
    jget(&checks->kids[0], "threshold", J_NUM);
    assert_true(jget(&checks->kids[0], "pass", J_BOOL)->b);
    assert_string_equal(jget(&checks->kids[0], "policy", J_STR)->str, "block");
    assert_string_equal(jget(&checks->kids[0], "outcome", J_STR)->str, "pass");
    assert_string_equal(jget(&checks->kids[2], "outcome", J_STR)->str, "fail");
    assert_int_equal(jget(&root, "warnings", J_ARR)->n, 0);
    jget(&checks->kids[2], "value", J_NULL); /* NaN is written as null */
    assert_false(jget(&checks->kids[2], "pass", J_BOOL)->b);
    assert_false(jget(&root, "pass", J_BOOL)->b);
    assert_true(jget(&root, "complete", J_BOOL)->b);
    jfree(&root);
    fprintf(stderr, "report: %zu bytes of JSON for M=%zu\n", len, M);
    qx_free(js);

    qx_derp_report_free(r);
    qx_derp_health_free(h);
    qx_derp_drift_clear(&dr);
    qx_quantizer_free(q);
    free(x);
}

/* ---- policies: block or warn --------------------------------------------------------- */

/* Every combination of a block health check, a warn drift check and a block
 * recall check: the verdict needs both block checks; a failed drift check is
 * a warning then, and a failure otherwise. */
static void test_policy_table(void **state) {
    (void)state;
    for (int mask = 0; mask < 8; mask++) {
        int health_ok = mask & 1, drift_ok = (mask >> 1) & 1, recall_ok = (mask >> 2) & 1;
        qx_derp_report *r;
        assert_int_equal(qx_derp_report_new(&r, NULL), 0);
        /* A policy may be set before its check exists … */
        assert_int_equal(qx_derp_report_set_policy(r, "max_drift_rejected_fraction", QX_DERP_WARN), 0);
        assert_int_equal(qx_derp_report_add_check(r, "min_used_fraction", health_ok ? 0.9 : 0.1, 0.3,
                                                  QX_DERP_GE, NULL), 0);
        assert_int_equal(qx_derp_report_add_check(r, "max_drift_rejected_fraction",
                                                  drift_ok ? 0.0 : 0.9, 0.25, QX_DERP_LE, NULL), 0);
        assert_int_equal(qx_derp_report_add_check(r, "min_recall", recall_ok ? 0.8 : 0.1, 0.3,
                                                  QX_DERP_GE, NULL), 0);
        int want_pass = health_ok && recall_ok;
        int want_drift = drift_ok ? 0 : want_pass ? 1 : -1;
        assert_int_equal(qx_derp_report_passed(r), want_pass);
        assert_int_equal(qx_derp_report_num_warnings(r), want_drift == 1);
        const char *name;
        assert_int_equal(qx_derp_report_check_outcome(r, 0, &name), health_ok ? 0 : -1);
        assert_string_equal(name, "min_used_fraction");
        assert_int_equal(qx_derp_report_check_outcome(r, 1, &name), want_drift);
        assert_string_equal(name, "max_drift_rejected_fraction");
        assert_int_equal(qx_derp_report_check_outcome(r, 2, NULL), recall_ok ? 0 : -1);
        assert_int_equal(qx_derp_report_check_outcome(r, 3, NULL), -1); /* out of range */
        char *js;
        assert_int_equal(qx_derp_report_json(r, &js, NULL), 0);
        jval root;
        parse_json(js, &root);
        assert_int_equal(jget(&root, "pass", J_BOOL)->b, want_pass);
        const jval *w = jget(&root, "warnings", J_ARR);
        assert_int_equal(w->n, want_drift == 1);
        if (w->n) assert_string_equal(w->kids[0].str, "max_drift_rejected_fraction");
        const jval *checks = jget(&root, "checks", J_ARR);
        assert_string_equal(jget(&checks->kids[0], "policy", J_STR)->str, "block");
        assert_string_equal(jget(&checks->kids[1], "policy", J_STR)->str, "warn");
        assert_string_equal(jget(&checks->kids[1], "outcome", J_STR)->str,
                            want_drift == 0 ? "pass" : want_drift == 1 ? "warn" : "fail");
        assert_int_equal(jget(&checks->kids[1], "pass", J_BOOL)->b, drift_ok);
        jfree(&root);
        qx_free(js);
        /* … or after: turning drift back to block makes it a failure. */
        assert_int_equal(qx_derp_report_set_policy(r, "max_drift_rejected_fraction", QX_DERP_BLOCK), 0);
        assert_int_equal(qx_derp_report_passed(r), want_pass && drift_ok);
        assert_int_equal(qx_derp_report_num_warnings(r), 0);
        qx_derp_report_free(r);
    }
    /* A lost check still fails the report whatever the policies. */
    qx_derp_report *r;
    assert_int_equal(qx_derp_report_new(&r, NULL), 0);
    assert_int_equal(qx_derp_report_set_policy(r, "x", QX_DERP_WARN), 0);
    assert_int_equal(qx_derp_report_add_check(r, "x", 1, NAN, QX_DERP_LE, NULL), QX_EINVAL);
    assert_false(qx_derp_report_passed(r));
    assert_int_equal(qx_derp_report_set_policy(r, "", QX_DERP_WARN), QX_EINVAL);
    assert_int_equal(qx_derp_report_set_policy(r, "x", (qx_derp_policy)7), QX_EINVAL);
    qx_derp_report_free(r);

    /* The gate's defaults and its config file. */
    qx_gate_config c;
    qx_gate_config_init(&c);
    for (int i = 0; i < QX_GATE_NUM_CHECKS; i++) {
        int drift = i == QX_GATE_MAX_DRIFT_REJECTED_FRACTION || i == QX_GATE_MAX_DRIFT_SCORE;
        assert_int_equal(c.policy[i], drift ? QX_DERP_WARN : QX_DERP_BLOCK);
        assert_non_null(qx_gate_check_name((qx_gate_check)i));
    }
    assert_null(qx_gate_check_name(QX_GATE_NUM_CHECKS));
    assert_true(c.derp.min_effect == QX_DERP_DEFAULT_MIN_EFFECT);
    char path[] = "/tmp/qx-gate-policy-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "policy.max_drift_rejected_fraction = block  # strict\npolicy.min_recall=warn\n"
               "derp.min_effect = 0.2\n");
    fclose(f);
    assert_int_equal(qx_gate_config_load(path, &c), 0);
    assert_int_equal(c.policy[QX_GATE_MAX_DRIFT_REJECTED_FRACTION], QX_DERP_BLOCK);
    assert_int_equal(c.policy[QX_GATE_MIN_RECALL], QX_DERP_WARN);
    assert_true(c.derp.min_effect == 0.2);
    const char *bad[] = {"policy.min_recall = maybe\n", "policy.no_such_check = warn\n",
                         "policy.min_recall = warn block\n", "derp.min_effect = -1\n"};
    for (int i = 0; i < 4; i++) {
        f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        assert_int_equal(qx_gate_config_load(path, &c), QX_EINVAL);
        assert_non_null(strstr(qx_last_error(), ":1:"));
    }
    unlink(path);
}

/* ---- concurrency: const inputs shared by threads ------------------------------------ */

typedef struct {
    const float *x;
    size_t n, d;
    const qx_quantizer *q;
    double D_drift[64], D_norm[64], mse;
    int rc;
} par_job;

static void *par_run(void *arg) {
    par_job *j = arg;
    qx_derp_drift dr;
    qx_derp_family f;
    qx_derp_health *h = NULL;
    j->rc = qx_derp_drift_compute(j->x, j->n / 2, j->x + j->n / 2 * j->d, j->n / 2, j->d, NULL,
                                  &dr);
    if (j->rc) return NULL;
    memcpy(j->D_drift, dr.test.D, sizeof j->D_drift);
    qx_derp_drift_clear(&dr);
    if ((j->rc = qx_derp_normality(j->x, j->n, j->d, NULL, &f))) return NULL;
    memcpy(j->D_norm, f.D, sizeof j->D_norm);
    qx_derp_family_clear(&f);
    if ((j->rc = qx_derp_health_compute(j->q, j->x, j->n, NULL, NULL, &h))) return NULL;
    j->mse = h->steps[h->M - 1].mse;
    qx_derp_health_free(h);
    return NULL;
}

static void test_concurrent_calls_agree(void **state) {
    (void)state;
    size_t n = 2000, d = 12;
    float *x = tu_clustered(n, d, 5, 17);
    qx_quantizer *q = train_rq(x, n, d, 2);
    par_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (par_job){.x = x, .n = n, .d = d, .q = q};
        assert_int_equal(pthread_create(&th[i], NULL, par_run, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(jobs[i].rc, 0);
        assert_memory_equal(jobs[i].D_drift, jobs[0].D_drift, sizeof jobs[0].D_drift);
        assert_memory_equal(jobs[i].D_norm, jobs[0].D_norm, sizeof jobs[0].D_norm);
        assert_true(jobs[i].mse == jobs[0].mse);
    }
    qx_quantizer_free(q);
    free(x);
}

/* ---- out of memory at every allocation ------------------------------------------------- */

static long oom_budget;
static void *oom_malloc(size_t s) { return oom_budget-- > 0 ? malloc(s) : NULL; }
static void *oom_realloc(void *p, size_t s) { return oom_budget-- > 0 ? realloc(p, s) : NULL; }
static const qx_allocator oom_alloc = {oom_malloc, oom_realloc, free};

static int run_all_under_budget(const float *x, size_t n, size_t d, const qx_quantizer *q) {
    qx_derp_opts o;
    qx_derp_opts_init(&o);
    o.probes = 8;
    qx_derp_family f;
    qx_derp_drift dr;
    qx_derp_report *r = NULL;
    qx_derp_reservoir *res = NULL;
    char *js = NULL;
    int rc = qx_derp_normality(x, n, d, &o, &f);
    if (rc) return rc;
    qx_derp_family_clear(&f);
    if ((rc = qx_derp_drift_compute(x, n / 2, x + n / 2 * d, n / 2, d, &o, &dr))) return rc;
    if ((rc = qx_derp_report_new(&r, &o)) == 0 && (rc = qx_derp_report_set_drift(r, &dr)) == 0 &&
        (rc = qx_derp_report_set_meta(r, "k", "v")) == 0 &&
        (rc = qx_derp_report_add_check(r, "c", 1, 2, QX_DERP_LE, NULL)) == 0)
        rc = qx_derp_report_json(r, &js, NULL);
    qx_free(js);
    qx_derp_report_free(r);
    qx_derp_drift_clear(&dr);
    if (rc) return rc;
    if ((rc = qx_derp_reservoir_new(&res, d, 64, 1)) == 0) rc = qx_derp_reservoir_add(res, x, n);
    qx_derp_reservoir_free(res);
    if (rc) return rc;
    qx_derp_health *h = NULL;
    rc = qx_derp_health_compute(q, x, n, NULL, &o, &h);
    qx_derp_health_free(h);
    return rc;
}

static void test_out_of_memory_everywhere(void **state) {
    (void)state;
    size_t n = 300, d = 6;
    float *x = tu_clustered(n, d, 3, 8);
    qx_quantizer *q = train_rq(x, n, d, 2);
    int ok = 0;
    for (long budget = 0; budget < 1000 && !ok; budget++) {
        oom_budget = budget;
        qx_set_allocator(&oom_alloc);
        int rc = run_all_under_budget(x, n, d, q);
        qx_set_allocator(NULL);
        if (rc == 0) ok = 1;
        else assert_int_equal(rc, QX_ENOMEM);
    }
    assert_true(ok);
    qx_quantizer_free(q);
    free(x);
}

/* Usage of a byte that holds two 4-bit steps is judged per nibble: with
 * the high nibble always equal to the low one, byte values use 16 of 256
 * (0.0625) although both steps use all 16 codewords; a high nibble
 * confined to 4 values reads 0.25 whatever the low nibble does. */
static void test_usage_per_nibble(void **state) {
    (void)state;
    enum { N = 4096, STRIDE = 3 };
    uint8_t *codes = malloc(N * STRIDE);
    assert_non_null(codes);
    for (size_t i = 0; i < N; i++) {
        uint8_t lo = (uint8_t)(i * 7 % 16);
        codes[i * STRIDE + 0] = (uint8_t)(lo | lo << 4);        /* correlated, healthy */
        codes[i * STRIDE + 1] = (uint8_t)(lo | (i % 4) << 4);   /* high nibble: 4 of 16 */
        codes[i * STRIDE + 2] = (uint8_t)(i % 256);             /* a plain byte, uniform */
    }
    qx_derp_step st;
    qx__derp_usage(codes, N, STRIDE, 0, 0, &st);
    assert_int_equal(st.ksub, 256);
    assert_int_equal(st.used, 16);
    assert_true(fabs(st.used_fraction - 0.0625) < 1e-12);
    qx__derp_usage(codes, N, STRIDE, 0, 1, &st);
    assert_int_equal(st.ksub, 16);
    assert_int_equal(st.used, 16);
    assert_int_equal(st.dead, 0);
    assert_true(fabs(st.used_fraction - 1) < 1e-12 && st.perplexity > 0.99);
    qx__derp_usage(codes, N, STRIDE, 1, 1, &st);
    assert_int_equal(st.used, 4);
    assert_int_equal(st.dead, 12);
    assert_true(fabs(st.used_fraction - 0.25) < 1e-12);
    assert_true(fabs(st.perplexity - 0.25) < 1e-9); /* 4 codewords used evenly */
    qx__derp_usage(codes, N, STRIDE, 2, 0, &st);
    assert_int_equal(st.used, 256);
    assert_true(st.perplexity > 0.99);
    qx__derp_usage(codes, 8, STRIDE, 2, 0, &st); /* 8 draws can use at most 8 */
    assert_true(fabs(st.used_fraction - 1) < 1e-12);
    free(codes);
}

int main(void) {
    /* QX_DERP_TEST_FILTER=name runs one test (e.g. a calibration). */
    if (getenv("QX_DERP_TEST_FILTER")) cmocka_set_test_filter(getenv("QX_DERP_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probes_unit_and_deterministic),
        cmocka_unit_test(test_project_matches_naive),
        cmocka_unit_test(test_radix_sort_matches_qsort),
        cmocka_unit_test(test_kolmogorov_q_known_values),
        cmocka_unit_test(test_lilliefors_pvalue_critical_values),
        cmocka_unit_test(test_lilliefors_normal_rejected_at_nominal_rate),
        cmocka_unit_test(test_lilliefors_calibration_table),
        cmocka_unit_test(test_lilliefors_power),
        cmocka_unit_test(test_lilliefors_edge_cases),
        cmocka_unit_test(test_ks2_level_and_power),
        cmocka_unit_test(test_ks2_exact_statistic_with_ties),
        cmocka_unit_test(test_wasserstein_exact_small_cases),
        cmocka_unit_test(test_wasserstein_known_distributions),
        cmocka_unit_test(test_two_sample_effect_gates_rejection),
        cmocka_unit_test(test_holm_worked_example),
        cmocka_unit_test(test_normality_family),
        cmocka_unit_test(test_drift_fresh_vs_shifted_vs_permuted),
        cmocka_unit_test(test_reservoir_uniform_deterministic_serializable),
        cmocka_unit_test(test_health_rq_and_collapse),
        cmocka_unit_test(test_usage_per_nibble),
        cmocka_unit_test(test_siftsmall_health_and_faults),
        cmocka_unit_test(test_drift_false_alarms_50_seeds),
        cmocka_unit_test(test_calibrate_real_splits),
        cmocka_unit_test(test_report_json),
        cmocka_unit_test(test_policy_table),
        cmocka_unit_test(test_concurrent_calls_agree),
        cmocka_unit_test(test_out_of_memory_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
