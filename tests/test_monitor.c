/* tests/test_monitor.c — live drift monitoring (verify/monitor.c) and the
 * reservoir behind it: Algorithm R keeps a uniform sample (chi-square tests
 * at fixed seeds); a stationary stream of 1,000,000 writes is never reported
 * drifted; a stream switched to half of its dimensions scaled is reported
 * drifted within (drifted_after + 1) windows and recovers when the writes
 * return; codeword usage of recent codes is measured when an index is given;
 * bad input is refused without changing the state. Fixed seeds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "qinx/alloc.h"
#include "qinx/derp.h"
#include "qinx/error.h"
#include "qinx/ivf.h"
#include "qinx/monitor.h"
#include "qinx/rq.h"

/* Upper 0.001 point of chi-square with 99 degrees of freedom. */
#define CHI2_99_P001 148.23

/* ---- reservoir uniformity ------------------------------------------------------- */

static void test_reservoir_chi_square(void **state) {
    (void)state;
    /* (a) Many small runs: 100 items into 10 slots, 20,000 seeds; each item
     * must be kept 2,000 times in expectation. */
    size_t N = 100, C = 10, T = 20000, count[100] = {0};
    float items[100];
    for (size_t i = 0; i < N; i++) items[i] = (float)i;
    for (size_t t = 0; t < T; t++) {
        qx_derp_reservoir *r;
        assert_int_equal(qx_derp_reservoir_new(&r, 1, C, 1000 + t), 0);
        for (size_t i = 0; i < N; i += 7) /* batch sizes must not matter */
            assert_int_equal(qx_derp_reservoir_add(r, items + i, N - i < 7 ? N - i : 7), 0);
        const float *kept = qx_derp_reservoir_data(r);
        for (size_t j = 0; j < C; j++) count[(size_t)kept[j]]++;
        qx_derp_reservoir_free(r);
    }
    double e = (double)T * C / N, chi = 0;
    for (size_t i = 0; i < N; i++) chi += (count[i] - e) * (count[i] - e) / e;
    fprintf(stderr, "reservoir 10 of 100 over %zu seeds: chi-square %.1f (99 df, 0.001 point %.1f)\n",
            T, chi, CHI2_99_P001);
    assert_true(chi < CHI2_99_P001);
    /* (b) One long stream: 1,000,000 positions into 10,000 slots; kept
     * positions in 100 equal bins must each hold ~100. */
    size_t n = 1000000, cap = 10000, bins[100] = {0};
    qx_derp_reservoir *r;
    assert_int_equal(qx_derp_reservoir_new(&r, 1, cap, 7), 0);
    float *pos = malloc(sizeof(float) * 1000);
    for (size_t b = 0; b < n; b += 1000) {
        for (size_t i = 0; i < 1000; i++) pos[i] = (float)(b + i);
        assert_int_equal(qx_derp_reservoir_add(r, pos, 1000), 0);
    }
    const float *kept = qx_derp_reservoir_data(r);
    for (size_t j = 0; j < cap; j++) bins[(size_t)kept[j] / (n / 100)]++;
    chi = 0;
    for (size_t i = 0; i < 100; i++) chi += (bins[i] - 100.0) * (bins[i] - 100.0) / 100.0;
    fprintf(stderr, "reservoir 10,000 of 1,000,000: chi-square over 100 bins %.1f\n", chi);
    assert_true(chi < CHI2_99_P001);
    qx_derp_reservoir_free(r);
    free(pos);
}

/* ---- a stationary law and its shifted version --------------------------------- */

#define LD 16
#define LK 8

typedef struct {
    float centre[LK][LD], scale[LD];
    tu_rng rng;
} law;

static void law_init(law *L, uint64_t seed) {
    tu_rng_seed(&L->rng, seed);
    for (int k = 0; k < LK; k++)
        for (int j = 0; j < LD; j++) L->centre[k][j] = (float)(2 * tu_rng_normal(&L->rng));
    for (int j = 0; j < LD; j++) L->scale[j] = (float)(0.5 + tu_rng_uniform(&L->rng));
}

/* n draws; shifted: the first half of the dimensions scaled by 2. */
static void law_draw(law *L, float *x, size_t n, int shifted) {
    for (size_t i = 0; i < n; i++) {
        int k = (int)(tu_rng_next(&L->rng) % LK);
        for (int j = 0; j < LD; j++) {
            float v = L->centre[k][j] + L->scale[j] * (float)tu_rng_normal(&L->rng);
            x[i * LD + j] = shifted && j < LD / 2 ? 2 * v : v;
        }
    }
}

static void test_stationary_stream_1M_never_drifted(void **state) {
    (void)state;
    law L;
    law_init(&L, 11);
    qx_monitor *m;
    /* No reference given: the first 10,000 writes form it. */
    assert_int_equal(qx_monitor_new(&m, LD, NULL, 0, NULL), 0);
    size_t B = 1000, total = 1000000, checks = 0, drifting_seen = 0;
    float *x = malloc(sizeof(float) * B * LD);
    qx_monitor_status st;
    for (size_t w = 0; w < total; w += B) {
        law_draw(&L, x, B, 0);
        size_t c;
        assert_int_equal(qx_monitor_add(m, x, B, NULL, &c), 0);
        checks += c;
        assert_int_equal(qx_monitor_get_status(m, &st), 0);
        assert_int_not_equal(st.state, QX_MONITOR_DRIFTED);
        drifting_seen += st.state == QX_MONITOR_DRIFTING && c;
    }
    assert_int_equal(qx_monitor_get_status(m, &st), 0);
    fprintf(stderr, "stationary: %llu writes, %llu checks, %llu drifting windows, %llu drifted, "
            "last rejected fraction %.3f effect %.3f\n",
            (unsigned long long)st.writes, (unsigned long long)st.checks,
            (unsigned long long)st.drifting_windows, (unsigned long long)st.drifted_events,
            st.rejected_fraction, st.effect);
    assert_int_equal(st.writes, total);
    assert_int_equal(st.reference_size, 10000);
    assert_false(st.reference_from_index);
    assert_int_equal(st.checks, (total - 10000) / 2000);
    assert_int_equal(checks, st.checks);
    assert_int_equal(st.drifted_events, 0);
    assert_true(st.drifting_windows <= 2);
    assert_int_equal(st.state, QX_MONITOR_OK);
    assert_true(isnan(st.code_used_fraction)); /* no index given */
    free(x);
    qx_monitor_free(m);
}

static void test_shifted_stream_drifted_then_recovers(void **state) {
    (void)state;
    law L;
    law_init(&L, 12);
    size_t nref = 10000, B = 100;
    float *ref = malloc(sizeof(float) * nref * LD), *x = malloc(sizeof(float) * B * LD);
    law_draw(&L, ref, nref, 0);
    qx_monitor_opts o;
    qx_monitor_opts_init(&o);
    qx_monitor *m;
    assert_int_equal(qx_monitor_new(&m, LD, ref, nref, &o), 0);
    qx_monitor_status st;
    assert_int_equal(qx_monitor_get_status(m, &st), 0);
    assert_int_equal(st.reference_size, nref);
    assert_true(isnan(st.rejected_fraction));
    /* 10,300 stationary writes (the switch falls inside a window). */
    for (size_t w = 0; w < 10300; w += B) {
        law_draw(&L, x, B, 0);
        assert_int_equal(qx_monitor_add(m, x, B, NULL, NULL), 0);
    }
    assert_int_equal(qx_monitor_get_status(m, &st), 0);
    assert_int_equal(st.state, QX_MONITOR_OK);
    size_t to_drifting = 0, to_drifted = 0, w = 0;
    for (; w < 20000 && !to_drifted; w += B) {
        law_draw(&L, x, B, 1);
        assert_int_equal(qx_monitor_add(m, x, B, NULL, NULL), 0);
        assert_int_equal(qx_monitor_get_status(m, &st), 0);
        if (st.state == QX_MONITOR_DRIFTING && !to_drifting) to_drifting = w + B;
        if (st.state == QX_MONITOR_DRIFTED) to_drifted = w + B;
    }
    fprintf(stderr, "shifted (half the dimensions x2): drifting after %zu writes, drifted after %zu "
            "(bound %zu); rejected fraction %.3f, effect %.2f sd\n",
            to_drifting, to_drifted, (o.drifted_after + 1) * o.window, st.rejected_fraction,
            st.effect);
    assert_true(to_drifting > 0 && to_drifted > to_drifting);
    assert_true(to_drifted <= (o.drifted_after + 1) * o.window);
    assert_int_equal(st.drifted_events, 1);
    /* Writes return to the old law: ok again after ok_after clean windows
     * (plus the mixed one under way). */
    size_t back = 0;
    for (w = 0; w < 20000 && !back; w += B) {
        law_draw(&L, x, B, 0);
        assert_int_equal(qx_monitor_add(m, x, B, NULL, NULL), 0);
        assert_int_equal(qx_monitor_get_status(m, &st), 0);
        if (st.state == QX_MONITOR_OK) back = w + B;
    }
    fprintf(stderr, "back to the old law: ok after %zu writes\n", back);
    assert_true(back > 0 && back <= (o.ok_after + 1) * o.window);
    /* A new reference starts over. */
    assert_int_equal(qx_monitor_set_reference(m, ref, nref, 1), 0);
    assert_int_equal(qx_monitor_get_status(m, &st), 0);
    assert_true(st.reference_from_index && st.state == QX_MONITOR_OK);
    free(ref);
    free(x);
    qx_monitor_free(m);
}

static void test_code_usage_and_bad_input(void **state) {
    (void)state;
    law L;
    law_init(&L, 13);
    size_t n = 4000;
    float *x = malloc(sizeof(float) * n * LD);
    law_draw(&L, x, n, 0);
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = 2;
    ro.kmeans_iters = 6;
    ro.refine_iters = 0;
    ro.beam = 1;
    ro.seed = 3;
    qx_quantizer *q;
    assert_int_equal(qx_rq_new(&q, LD, &ro), 0);
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = 4;
    qx_ivf *ivf;
    assert_int_equal(qx_ivf_new(&ivf, LD, q, &io), 0);
    assert_int_equal(qx_ivf_train(ivf, x, n), 0);
    const qx_derp_reservoir *res = qx_ivf_reservoir(ivf);
    assert_non_null(res);
    qx_monitor *m;
    assert_int_equal(qx_monitor_new(&m, LD, qx_derp_reservoir_data(res), qx_derp_reservoir_size(res),
                                    NULL), 0);
    law_draw(&L, x, 2000, 0);
    size_t c;
    assert_int_equal(qx_monitor_add(m, x, 2000, ivf, &c), 0);
    assert_int_equal(c, 1);
    qx_monitor_status st;
    assert_int_equal(qx_monitor_get_status(m, &st), 0);
    fprintf(stderr, "recent codes: used fraction %.3f, perplexity %.3f\n", st.code_used_fraction,
            st.code_perplexity);
    assert_true(st.code_used_fraction > 0.5 && st.code_perplexity > 0.3);
    /* Bad input: refused, nothing counted. */
    x[5] = NAN;
    assert_int_equal(qx_monitor_add(m, x, 10, ivf, &c), QX_EINVAL);
    qx_monitor_status st2;
    assert_int_equal(qx_monitor_get_status(m, &st2), 0);
    assert_int_equal(st2.writes, st.writes);
    qx_monitor_opts o;
    qx_monitor_opts_init(&o);
    o.recent = o.window + 1;
    qx_monitor *bad;
    assert_int_equal(qx_monitor_new(&bad, LD, NULL, 0, &o), QX_EINVAL);
    assert_int_equal(qx_monitor_new(&bad, 0, NULL, 0, NULL), QX_EDIM);
    assert_int_equal(qx_monitor_new(&bad, LD, x, 5, NULL), QX_EINVAL);
    assert_string_equal(qx_monitor_state_name(QX_MONITOR_DRIFTED), "drifted");
    assert_null(qx_monitor_state_name((qx_monitor_state)9));
    qx_monitor_free(m);
    qx_monitor_free(NULL);
    qx_ivf_free(ivf);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reservoir_chi_square),
        cmocka_unit_test(test_stationary_stream_1M_never_drifted),
        cmocka_unit_test(test_shifted_stream_drifted_then_recovers),
        cmocka_unit_test(test_code_usage_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
